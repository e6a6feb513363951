"""The one interface through which VRRP changes the host: VIPs, virtual routes, VMACs.

Every address, route and VMAC interface the VRRP side puts on (or takes off) the host
goes through an `AddressManager`, which remembers what it added so that `stop()`
removes exactly that, and nothing an administrator put there.

Threading: the calls are synchronous netlink requests (pyroute2 ``IPRoute``), each a
few hundred microseconds. pyroute2's synchronous sockets cannot be used inside a
running asyncio loop (they run a loop of their own): asyncio callers run them in a
thread, ``await asyncio.to_thread(manager.add, vip, "eth0")``. One manager may be used
from any thread, one call at a time (it holds a lock).

Public API
----------
``AddressManager(netns=None)``: ``netns`` a namespace name (/run/netns) or None.
``close()`` (also a context manager) closes the netlink socket, removes nothing.

Addresses (``vip``: `vrrp.spec.VirtualAddress`; its ``dev`` or else ``default_interface``
is the device; for an instance that is `instance_interface(instance)`):
- ``add(vip, default_interface) -> bool``: puts the address on with its prefix, label
  (IPv4; default: the device name, as ``ip`` does), scope, broadcast, peer, IPv6 flags
  (nodad, home, mngtmpaddr, noprefixroute, autojoin) and preferred_lft. True if added;
  False if it was already there (then it is not recorded as ours: `stop` leaves it).
- ``remove(vip, default_interface) -> bool``: takes it off (ours or not, as keepalived
  does when leaving MASTER); False if it was not there.
- ``present(vip, default_interface) -> bool``: whether that address/prefix is on that
  device.
- ``remove_leftovers(instances, vmac_prefix="vrrp") -> list[str]``: at start, before
  anything else: takes off every VIP and eVIP of ``instances`` (VrrpInstance values)
  found on its device, deletes their virtual routes if present and the VMAC
  interfaces of use_vmac instances that a crashed run left (a macvlan of that name
  with the VRRP MAC); returns a line per thing removed (for the log).
- ``primary_address(interface, family) -> IPv4Address | IPv6Address | None``: the
  source of adverts: the first primary IPv4 address, or the IPv6 link-local address.
- ``interface_index(interface) -> int | None``.

Routes (``route``: `vrrp.spec.Route`): ``add_route(route, default_interface=None) ->
bool`` (False: it existed, not recorded), ``remove_route(route, default_interface=None)
-> bool`` (False: it was not there). Supported: type, destination, via, dev, src,
scope, table, metric, protocol, tos, onlink, multipath nexthops (via, dev, weight,
onlink) and numeric metrics without ``lock`` (mtu, advmss, window, rtt, hoplimit,
initcwnd, initrwnd...). Anything else (encap, vrf, realms, locked metrics, an IPv6
gateway on an IPv4 route) raises `AddressError` with errno 95 (EOPNOTSUPP) before
anything is sent.

VMAC (``use_vmac``): ``add_vmac(instance) -> Vmac`` or ``add_vmac_on(base, vrid,
family, name=None, mac=None) -> Vmac``: a macvlan in private mode, as keepalived makes
it, named `vmac_name(instance)` (``vmac_interface``, else ``vrrp.VRID``), with MAC
00:00:5e:00:01:VRID (IPv6: 00:00:5e:00:02:VRID) unless the instance sets one, up.
An existing interface of that name that is already such a macvlan is adopted (not
recorded as ours). ``remove_vmac(name) -> bool``.

``stop() -> list[AddressError]``: removes everything recorded as added, newest first
(routes, then addresses, then VMACs); what fails is returned, not raised.
``added()`` lists what is recorded (for status and tests).

Errors: `AddressError(message, op, code)` with the kernel's errno in ``code``.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from vrrp.spec import (
    AddressFamily,
    Route,
    RouteType,
    VirtualAddress,
    VrrpInstance,
    scope_number,
)

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface: TypeAlias = ipaddress.IPv4Interface | ipaddress.IPv6Interface

AF_INET, AF_INET6 = 2, 10
IFA_F_SECONDARY = 0x01
IFA_F_NODAD = 0x02
IFA_F_HOMEADDRESS = 0x10
IFA_F_MANAGETEMPADDR = 0x100
IFA_F_NOPREFIXROUTE = 0x200
IFA_F_MCAUTOJOIN = 0x400
RTNH_F_ONLINK = 0x04
MACVLAN_MODE_PRIVATE = 1
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3

ROUTE_PROTOCOLS = {"unspec": 0, "redirect": 1, "kernel": 2, "boot": 3, "static": 4,
                   "gated": 8, "ra": 9, "mrt": 10, "zebra": 11, "bird": 12,
                   "dnrouted": 13, "xorp": 14, "ntk": 15, "dhcp": 16, "keepalived": 18,
                   "babel": 42, "bgp": 186, "isis": 187, "ospf": 188, "rip": 189,
                   "eigrp": 192}
ROUTE_TYPES = {RouteType.UNICAST: 1, RouteType.LOCAL: 2, RouteType.BROADCAST: 3,
               RouteType.ANYCAST: 4, RouteType.MULTICAST: 5, RouteType.BLACKHOLE: 6,
               RouteType.UNREACHABLE: 7, RouteType.PROHIBIT: 8, RouteType.THROW: 9}
NUMERIC_METRICS = {"mtu", "advmss", "window", "rtt", "rttvar", "ssthresh", "cwnd",
                   "reordering", "hoplimit", "initcwnd", "initrwnd", "quickack",
                   "rto_min", "fastopen_no_cookie"}


class AddressError(Exception):
    """A netlink request failed: ``op`` says which, ``code`` is the errno."""

    def __init__(self, message: str, op: str = "", code: int = 0):
        super().__init__(message)
        self.message = message
        self.op = op
        self.code = code


@dataclass(frozen=True, slots=True)
class Vmac:
    name: str
    base: str
    vrid: int
    family: AddressFamily
    mac: str  # aa:bb:cc:dd:ee:ff


@dataclass(frozen=True, slots=True)
class _Added:
    kind: str  # "address", "route", "vmac"
    item: Any
    interface: str | None


def vmac_name(instance: VrrpInstance, prefix: str = "vrrp") -> str:
    """The VMAC interface of a use_vmac instance: its ``vmac_interface``, else
    PREFIX.VRID as keepalived names it."""
    return instance.vmac_interface or f"{prefix}.{instance.virtual_router_id}"


def vmac_address(vrid: int, family: AddressFamily = AddressFamily.INET) -> str:
    """00:00:5e:00:01:VRID, or 00:00:5e:00:02:VRID for IPv6 (RFC 5798 7.3)."""
    if not 1 <= vrid <= 255:
        raise ValueError(f"VRID {vrid} not in 1-255")
    return f"00:00:5e:00:0{1 if family is AddressFamily.INET else 2}:{vrid:02x}"


def instance_interface(instance: VrrpInstance, prefix: str = "vrrp") -> str | None:
    """Where an instance's VIPs without ``dev`` go: its VMAC with use_vmac, else its
    interface."""
    if instance.use_vmac and instance.interface is not None:
        return vmac_name(instance, prefix)
    return instance.interface


def _errno_of(error: NetlinkError) -> int:
    return abs(error.code or 0)


class AddressManager:
    """See the module docstring."""

    def __init__(self, netns: str | os.PathLike[str] | None = None):
        self.netns = os.fspath(netns) if netns is not None else None
        self._ipr: IPRoute | None = None
        self._lock = threading.RLock()
        self._added: list[_Added] = []

    # -- plumbing

    def _ip(self) -> IPRoute:
        if self._ipr is None:
            self._ipr = IPRoute(netns=self.netns) if self.netns else IPRoute()
        return self._ipr

    def close(self) -> None:
        with self._lock:
            if self._ipr is not None:
                self._ipr.close()
                self._ipr = None

    def __enter__(self) -> AddressManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, op: str, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self._ip(), method)(*args, **kwargs)
        except NetlinkError as error:
            code = _errno_of(error)
            raise AddressError(f"{op}: {os.strerror(code)}", op, code) from error

    def interface_index(self, interface: str) -> int | None:
        with self._lock:
            found = self._ip().link_lookup(ifname=interface)
            return found[0] if found else None

    def _index(self, interface: str, op: str) -> int:
        index = self.interface_index(interface)
        if index is None:
            raise AddressError(f"{op}: no interface {interface}", op, errno.ENODEV)
        return index

    def added(self) -> list[tuple[str, Any, str | None]]:
        with self._lock:
            return [(a.kind, a.item, a.interface) for a in self._added]

    def _record(self, kind: str, item: Any, interface: str | None) -> None:
        self._added.append(_Added(kind, item, interface))

    def _forget(self, kind: str, item: Any, interface: str | None) -> None:
        self._added = [a for a in self._added if (a.kind, a.item, a.interface)
                       != (kind, item, interface)]

    # -- addresses

    @staticmethod
    def _device(vip: VirtualAddress, default_interface: str | None) -> str:
        device = vip.dev or default_interface
        if not device:
            raise AddressError(f"{vip.address}: no device", "address", errno.ENODEV)
        return device

    def _address_request(self, vip: VirtualAddress, index: int, device: str) -> dict:
        ip = vip.address
        request: dict[str, Any] = {
            "index": index,
            "family": AF_INET if ip.version == 4 else AF_INET6,
            "prefixlen": ip.network.prefixlen,
            "scope": scope_number(vip.scope),
        }
        if vip.peer is not None:
            request["local"] = str(ip.ip)
            request["address"] = str(vip.peer.ip)
            request["prefixlen"] = vip.peer.network.prefixlen
        else:
            request["address"] = str(ip.ip)
        if ip.version == 4:
            request["label"] = vip.label or device
            if vip.broadcast is not None:
                request["broadcast"] = str(vip.broadcast)
        flags = ((IFA_F_NODAD if vip.nodad else 0) | (IFA_F_HOMEADDRESS if vip.home else 0)
                 | (IFA_F_MANAGETEMPADDR if vip.mngtmpaddr else 0)
                 | (IFA_F_NOPREFIXROUTE if vip.noprefixroute else 0)
                 | (IFA_F_MCAUTOJOIN if vip.autojoin else 0))
        if flags:
            request["flags"] = flags
        if vip.preferred_lft is not None:
            request["preferred_lft"] = vip.preferred_lft
        return request

    def _find(self, vip: VirtualAddress, index: int) -> bool:
        family = AF_INET if vip.address.version == 4 else AF_INET6
        wanted = vip.address.ip
        prefixlen = (vip.peer or vip.address).network.prefixlen
        for msg in self._ip().addr("dump", index=index, family=family):
            local = msg.get("IFA_LOCAL") or msg.get("IFA_ADDRESS")
            if local is None or msg["index"] != index:
                continue
            if ipaddress.ip_address(local) == wanted and msg["prefixlen"] == prefixlen:
                return True
        return False

    def present(self, vip: VirtualAddress, default_interface: str | None) -> bool:
        with self._lock:
            device = self._device(vip, default_interface)
            index = self.interface_index(device)
            return index is not None and self._find(vip, index)

    def add(self, vip: VirtualAddress, default_interface: str | None) -> bool:
        with self._lock:
            device = self._device(vip, default_interface)
            op = f"add address {vip.address} dev {device}"
            index = self._index(device, op)
            try:
                self._call(op, "addr", "add", **self._address_request(vip, index, device))
            except AddressError as error:
                if error.code == errno.EEXIST:
                    return False
                raise
            self._record("address", vip, device)
            return True

    def remove(self, vip: VirtualAddress, default_interface: str | None) -> bool:
        with self._lock:
            device = self._device(vip, default_interface)
            op = f"delete address {vip.address} dev {device}"
            index = self.interface_index(device)
            self._forget("address", vip, device)
            if index is None:
                return False
            request = self._address_request(vip, index, device)
            for key in ("flags", "preferred_lft", "label", "broadcast", "scope"):
                request.pop(key, None)
            try:
                self._call(op, "addr", "del", **request)
            except AddressError as error:
                if error.code in (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ENODEV, errno.ESRCH):
                    return False
                raise
            return True

    def primary_address(self, interface: str, family: AddressFamily) -> IPAddress | None:
        with self._lock:
            index = self.interface_index(interface)
            if index is None:
                return None
            v4 = family is AddressFamily.INET
            for msg in self._ip().addr("dump", index=index, family=AF_INET if v4 else AF_INET6):
                if msg["index"] != index:
                    continue
                local = msg.get("IFA_LOCAL") or msg.get("IFA_ADDRESS")
                if local is None:
                    continue
                address = ipaddress.ip_address(local)
                flags = msg.get("IFA_FLAGS") or msg["flags"]
                if v4 and not flags & IFA_F_SECONDARY:
                    return address
                if not v4 and address.is_link_local:
                    return address
            return None

    # -- routes

    def _route_request(self, route: Route, default_interface: str | None, op: str) -> dict:
        unsupported = [name for name, value in (("encap", route.encap), ("vrf", route.vrf),
                                                 ("realms", route.realms)) if value]
        unsupported += [f"{m.name} lock" for m in route.metrics if m.lock]
        unsupported += [m.name for m in route.metrics if m.name not in NUMERIC_METRICS]
        if route.protocol is not None and not (route.protocol.isdigit()
                                               or route.protocol in ROUTE_PROTOCOLS):
            unsupported.append(f"protocol {route.protocol}")
        if route.via is not None and route.via.version != route.destination.version:
            unsupported.append("via of the other family")
        if unsupported:
            raise AddressError(f"{op}: not supported: {', '.join(unsupported)}", op,
                               errno.EOPNOTSUPP)
        dst = route.destination
        request: dict[str, Any] = {
            "family": AF_INET if dst.version == 4 else AF_INET6,
            "dst_len": dst.prefixlen,
            "type": ROUTE_TYPES[route.type],
            "table": route.table if route.table is not None else RT_TABLE_MAIN,
        }
        if dst.prefixlen:
            request["dst"] = str(dst.network_address)
        device = route.dev or (default_interface if not route.nexthops else None)
        if device and route.type in (RouteType.UNICAST, RouteType.LOCAL, RouteType.BROADCAST,
                                     RouteType.ANYCAST, RouteType.MULTICAST):
            request["oif"] = self._index(device, op)
        if route.via is not None:
            request["gateway"] = str(route.via)
        if route.source is not None:
            request["prefsrc"] = str(route.source)
        if route.scope is not None:
            request["scope"] = scope_number(route.scope)
        if route.metric is not None:
            request["priority"] = route.metric
        if route.protocol is not None:
            proto = route.protocol
            request["proto"] = int(proto) if proto.isdigit() else ROUTE_PROTOCOLS[proto]
        else:
            request["proto"] = RTPROT_BOOT  # as `ip route add`
        if route.tos is not None:
            request["tos"] = route.tos
        if route.onlink:
            request["flags"] = RTNH_F_ONLINK
        if route.nexthops:
            hops = []
            for hop in route.nexthops:
                entry: dict[str, Any] = {"hops": max(hop.weight, 1) - 1}
                if hop.via is not None:
                    entry["gateway"] = str(hop.via)
                if hop.dev is not None:
                    entry["oif"] = self._index(hop.dev, op)
                if hop.onlink:
                    entry["flags"] = RTNH_F_ONLINK
                hops.append(entry)
            request["multipath"] = hops
        if route.metrics:
            request["metrics"] = {f"RTAX_{m.name.upper()}": int(m.value) for m in route.metrics}
        return request

    def add_route(self, route: Route, default_interface: str | None = None) -> bool:
        with self._lock:
            op = f"add route {route.destination}"
            request = self._route_request(route, default_interface, op)
            try:
                self._call(op, "route", "append" if route.append else "add", **request)
            except AddressError as error:
                if error.code == errno.EEXIST:
                    return False
                raise
            self._record("route", route, default_interface)
            return True

    def remove_route(self, route: Route, default_interface: str | None = None) -> bool:
        with self._lock:
            op = f"delete route {route.destination}"
            self._forget("route", route, default_interface)
            try:
                request = self._route_request(route, default_interface, op)
            except AddressError as error:
                if error.code == errno.ENODEV:
                    return False
                raise
            request.pop("metrics", None)
            request.pop("proto", None)
            try:
                self._call(op, "route", "del", **request)
            except AddressError as error:
                if error.code in (errno.ESRCH, errno.ENOENT, errno.ENODEV):
                    return False
                raise
            return True

    # -- VMAC

    def _link(self, name: str) -> Any | None:
        found = self._ip().link_lookup(ifname=name)
        if not found:
            return None
        return self._ip().link("get", index=found[0])[0]

    @staticmethod
    def _is_vmac(link: Any, mac: str) -> bool:
        info = link.get("IFLA_LINKINFO")
        kind = info.get("IFLA_INFO_KIND") if info is not None else None
        return kind == "macvlan" and (link.get("IFLA_ADDRESS") or "").lower() == mac.lower()

    def add_vmac(self, instance: VrrpInstance, prefix: str = "vrrp") -> Vmac:
        if instance.interface is None:
            raise AddressError(f"{instance.name}: use_vmac needs an interface", "vmac",
                               errno.EINVAL)
        return self.add_vmac_on(instance.interface, instance.virtual_router_id,
                                instance.family, vmac_name(instance, prefix),
                                instance.vmac_address)

    def add_vmac_on(self, base: str, vrid: int, family: AddressFamily = AddressFamily.INET,
                    name: str | None = None, mac: str | None = None) -> Vmac:
        name = name or f"vrrp.{vrid}"
        mac = (mac or vmac_address(vrid, family)).lower()
        vmac = Vmac(name, base, vrid, family, mac)
        op = f"add vmac {name} link {base}"
        with self._lock:
            existing = self._link(name)
            if existing is not None:
                if not self._is_vmac(existing, mac):
                    raise AddressError(f"{op}: {name} exists and is not that VMAC", op,
                                       errno.EEXIST)
            else:
                base_index = self._index(base, op)
                self._call(op, "link", "add", ifname=name, kind="macvlan", link=base_index,
                           macvlan_mode="private", address=mac)
                self._record("vmac", vmac, base)
            index = self._index(name, op)
            self._call(op, "link", "set", index=index, state="up")
            return vmac

    def remove_vmac(self, name: str) -> bool:
        with self._lock:
            self._added = [a for a in self._added
                           if not (a.kind == "vmac" and a.item.name == name)]
            index = self.interface_index(name)
            if index is None:
                return False
            try:
                self._call(f"delete vmac {name}", "link", "del", index=index)
            except AddressError as error:
                if error.code == errno.ENODEV:
                    return False
                raise
            return True

    # -- start and stop

    def remove_leftovers(self, instances: Iterable[VrrpInstance],
                         vmac_prefix: str = "vrrp") -> list[str]:
        removed: list[str] = []
        with self._lock:
            for instance in instances:
                default = instance_interface(instance, vmac_prefix)
                for route in instance.virtual_routes:
                    try:
                        if self.remove_route(route, default):
                            removed.append(f"{instance.name}: route {route.destination}")
                    except AddressError:
                        pass  # a form we cannot express was never added by us
                for vip in (*instance.virtual_ipaddresses,
                            *instance.virtual_ipaddresses_excluded):
                    device = vip.dev or default
                    if device and self.present(vip, default) and self.remove(vip, default):
                        removed.append(f"{instance.name}: address {vip.address} dev {device}")
                if instance.use_vmac and instance.interface is not None:
                    name = vmac_name(instance, vmac_prefix)
                    mac = instance.vmac_address or vmac_address(instance.virtual_router_id,
                                                                instance.family)
                    link = self._link(name)
                    if link is not None and self._is_vmac(link, mac) and self.remove_vmac(name):
                        removed.append(f"{instance.name}: vmac {name}")
        return removed

    def stop(self) -> list[AddressError]:
        failures: list[AddressError] = []
        with self._lock:
            order = {"route": 0, "address": 1, "vmac": 2}
            for entry in sorted(reversed(self._added), key=lambda a: order[a.kind]):
                try:
                    if entry.kind == "route":
                        self.remove_route(entry.item, entry.interface)
                    elif entry.kind == "address":
                        self.remove(entry.item, entry.interface)
                    else:
                        self.remove_vmac(entry.item.name)
                except AddressError as error:
                    failures.append(error)
            self._added.clear()
        return failures
