"""The kernel's IPVS table through generic netlink (pyroute2's `IPVS` socket).

Reads the whole table into a `Table` and applies `Operation`s one request each.
Every request carries the full object: the kernel's SET commands replace every
field, so a field left out would be reset, not kept. (pyroute2's "update" command
is a DELETE in 0.9.7 and is never used.)
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPVS, IPVSDest, IPVSService
from pyroute2.netlink.exceptions import NetlinkError

from director.ipvs.backend import (
    Backend,
    IpvsError,
    destination_text,
    kernel_destination_settings,
    kernel_service_settings,
)
from director.ipvs.table import (
    ConnectionCounts,
    Counters,
    DestinationKey,
    DestinationSettings,
    Forwarding,
    Operation,
    OperationKind,
    Protocol,
    Service,
    ServiceKey,
    ServiceSettings,
    SyncDaemon,
    SyncState,
    Table,
    Timeouts,
    TunnelType,
)

# IP_VS_SVC_F_* service flags
PERSISTENT, HASHED, ONE_PACKET = 0x1, 0x2, 0x4
SCHED_FLAG_1, SCHED_FLAG_2, SCHED_FLAG_3 = 0x8, 0x10, 0x20
ALL_FLAGS = 0xFFFF

# Scheduler flag names as ipvsadm prints them: sh and mh name the first two flags.
_SCHED_FLAG_NAMES: dict[str, dict[int, str]] = {
    "sh": {SCHED_FLAG_1: "sh-fallback", SCHED_FLAG_2: "sh-port", SCHED_FLAG_3: "flag-3"},
    "mh": {SCHED_FLAG_1: "mh-fallback", SCHED_FLAG_2: "mh-port", SCHED_FLAG_3: "flag-3"},
}
_GENERIC_FLAG_NAMES = {SCHED_FLAG_1: "flag-1", SCHED_FLAG_2: "flag-2", SCHED_FLAG_3: "flag-3"}
_SCHED_FLAG_BITS = {
    "flag-1": SCHED_FLAG_1, "flag-2": SCHED_FLAG_2, "flag-3": SCHED_FLAG_3,
    "sh-fallback": SCHED_FLAG_1, "sh-port": SCHED_FLAG_2,
    "mh-fallback": SCHED_FLAG_1, "mh-port": SCHED_FLAG_2,
}

# IP_VS_CONN_F_* forwarding methods (the low bits of the destination's conn flags)
_FORWARDING_CODES = {Forwarding.NAT: 0, Forwarding.TUN: 2, Forwarding.DR: 3}
_FORWARDING_BY_CODE = {code: fwd for fwd, code in _FORWARDING_CODES.items()}
_FWD_MASK = 0x7

# IP_VS_CONN_F_TUNNEL_TYPE_* and IP_VS_TUNNEL_ENCAP_FLAG_*
_TUNNEL_TYPE_CODES = {TunnelType.IPIP: 0, TunnelType.GUE: 1, TunnelType.GRE: 2}
_TUNNEL_TYPE_BY_CODE = {code: kind for kind, code in _TUNNEL_TYPE_CODES.items()}
_TUNNEL_CSUM_CODES = {"nocsum": 0, "csum": 1, "remcsum": 2}
_TUNNEL_CSUM_BY_CODE = {code: name for name, code in _TUNNEL_CSUM_CODES.items()}

_PROTOCOL_NUMBERS = {
    Protocol.TCP: socket.IPPROTO_TCP,
    Protocol.UDP: socket.IPPROTO_UDP,
    Protocol.SCTP: socket.IPPROTO_SCTP,
}
_PROTOCOL_BY_NUMBER = {number: proto for proto, number in _PROTOCOL_NUMBERS.items()}

_FULL_PREFIX = {socket.AF_INET: 32, socket.AF_INET6: 128}


# ------------------------------------------------------------------ encoding

def _netmask_attr(family: int, prefix: int | None) -> str:
    """IPVS_SVC_ATTR_NETMASK as pyroute2 sends it (typed as an IPv4 address)."""
    if prefix is None:
        prefix = _FULL_PREFIX[family]
    if family == socket.AF_INET:
        return str(ipaddress.IPv4Network(f"0.0.0.0/{prefix}").netmask)
    # IPv6 services: the kernel reads a prefix length as a host-order u32.
    return socket.inet_ntoa(struct.pack("=I", prefix))


def _netmask_prefix(family: int, value: str | None) -> int | None:
    """The persistence netmask as a prefix length."""
    if value is None:
        return None
    if family == socket.AF_INET:
        return ipaddress.IPv4Network(f"0.0.0.0/{value}").prefixlen
    return struct.unpack("=I", socket.inet_aton(value))[0]


def _service_key_fields(key: ServiceKey) -> dict[str, Any]:
    if key.fwmark:
        return {"fwmark": key.fwmark, "af": key.family}
    if key.protocol is None or key.address is None:
        raise ValueError(f"service key without protocol or address: {key!r}")
    return {
        "af": key.family,
        "protocol": _PROTOCOL_NUMBERS[key.protocol],
        "addr": str(key.address),
        "port": key.port,
    }


def _service_request(key: ServiceKey, settings: ServiceSettings | None) -> IPVSService:
    if settings is None:
        raise ValueError("no service settings given")
    unknown = sorted(settings.sched_flags - _SCHED_FLAG_BITS.keys())
    if unknown:
        raise ValueError(f"unknown scheduler flags {', '.join(unknown)}")
    flags = 0
    for name in settings.sched_flags:
        flags |= _SCHED_FLAG_BITS[name]
    if settings.persistence_timeout is not None:
        flags |= PERSISTENT
    if settings.one_packet:
        flags |= ONE_PACKET
    fields = _service_key_fields(key)
    fields.update(
        sched_name=settings.scheduler,
        flags={"flags": flags, "mask": ALL_FLAGS},
        timeout=settings.persistence_timeout or 0,
        netmask=_netmask_attr(key.family, settings.persistence_netmask),
    )
    if settings.persistence_engine:
        fields["pe_name"] = settings.persistence_engine
    return IPVSService(**fields)


def _destination_request(
    key: DestinationKey, settings: DestinationSettings | None = None
) -> IPVSDest:
    if settings is None:  # a delete: the kernel looks at the address and port only
        return IPVSDest(addr=str(key.address), port=key.port)
    # Tunnel fields that do not apply to the forwarding method are not sent, so the
    # kernel holds what a dump reports.
    settings = kernel_destination_settings(settings)
    return IPVSDest(
        addr=str(key.address),
        port=key.port,
        fwd_method=_FORWARDING_CODES[settings.forwarding],
        weight=settings.weight,
        u_thresh=settings.upper_threshold,
        l_thresh=settings.lower_threshold,
        tun_type=_TUNNEL_TYPE_CODES[settings.tunnel_type],
        # pyroute2 types the tunnel port as a host-order u16; the kernel wants be16.
        tun_port=socket.htons(settings.tunnel_port),
        tun_flags=_TUNNEL_CSUM_CODES[settings.tunnel_checksum],
    )


# ------------------------------------------------------------------ decoding

def _service_from_attrs(attrs: Any) -> tuple[ServiceKey, ServiceSettings]:
    family = attrs.get("IPVS_SVC_ATTR_AF")
    fwmark = attrs.get("IPVS_SVC_ATTR_FWMARK") or 0
    if fwmark:
        key = ServiceKey(family=family, fwmark=fwmark)
    else:
        key = ServiceKey(
            family=family,
            protocol=_PROTOCOL_BY_NUMBER.get(attrs.get("IPVS_SVC_ATTR_PROTOCOL")),
            address=ipaddress.ip_address(attrs.get("IPVS_SVC_ATTR_ADDR")),
            port=attrs.get("IPVS_SVC_ATTR_PORT") or 0,
        )
    scheduler = attrs.get("IPVS_SVC_ATTR_SCHED_NAME") or ""
    flags = (attrs.get("IPVS_SVC_ATTR_FLAGS") or {}).get("flags", 0)
    names = _SCHED_FLAG_NAMES.get(scheduler, _GENERIC_FLAG_NAMES)
    settings = ServiceSettings(
        scheduler=scheduler,
        sched_flags=frozenset(name for bit, name in names.items() if flags & bit),
        persistence_timeout=attrs.get("IPVS_SVC_ATTR_TIMEOUT") if flags & PERSISTENT else None,
        persistence_netmask=_netmask_prefix(family, attrs.get("IPVS_SVC_ATTR_NETMASK")),
        one_packet=bool(flags & ONE_PACKET),
        persistence_engine=attrs.get("IPVS_SVC_ATTR_PE_NAME") or None,
    )
    return key, kernel_service_settings(settings, family)


def _destination_from_attrs(attrs: Any) -> tuple[DestinationKey, DestinationSettings]:
    key = DestinationKey(
        address=ipaddress.ip_address(attrs.get("IPVS_DEST_ATTR_ADDR")),
        port=attrs.get("IPVS_DEST_ATTR_PORT") or 0,
    )
    code = (attrs.get("IPVS_DEST_ATTR_FWD_METHOD") or 0) & _FWD_MASK
    forwarding = _FORWARDING_BY_CODE.get(code)
    if forwarding is None:
        raise IpvsError(
            f"real server {destination_text(key)} has forwarding method {code}, "
            "which this director does not know")
    settings = DestinationSettings(
        forwarding=forwarding,
        weight=attrs.get("IPVS_DEST_ATTR_WEIGHT") or 0,
        upper_threshold=attrs.get("IPVS_DEST_ATTR_U_THRESH") or 0,
        lower_threshold=attrs.get("IPVS_DEST_ATTR_L_THRESH") or 0,
        tunnel_type=_TUNNEL_TYPE_BY_CODE.get(
            attrs.get("IPVS_DEST_ATTR_TUN_TYPE") or 0, TunnelType.IPIP),
        tunnel_port=socket.ntohs(attrs.get("IPVS_DEST_ATTR_TUN_PORT") or 0),
        tunnel_checksum=_TUNNEL_CSUM_BY_CODE.get(
            attrs.get("IPVS_DEST_ATTR_TUN_FLAGS") or 0, "nocsum"),
    )
    return key, kernel_destination_settings(settings)


# ------------------------------------------------------------------ statistics

@dataclass(frozen=True, slots=True)
class ServiceStats:
    service: Counters
    destinations: dict[DestinationKey, Counters]


_COUNTER_ATTRS = {
    "IPVS_STATS_ATTR_CONNS": "connections",
    "IPVS_STATS_ATTR_INPKTS": "packets_in",
    "IPVS_STATS_ATTR_OUTPKTS": "packets_out",
    "IPVS_STATS_ATTR_INBYTES": "bytes_in",
    "IPVS_STATS_ATTR_OUTBYTES": "bytes_out",
    "IPVS_STATS_ATTR_CPS": "connections_per_second",
    "IPVS_STATS_ATTR_INPPS": "packets_in_per_second",
    "IPVS_STATS_ATTR_OUTPPS": "packets_out_per_second",
    "IPVS_STATS_ATTR_INBPS": "bytes_in_per_second",
    "IPVS_STATS_ATTR_OUTBPS": "bytes_out_per_second",
}


def _counters(attrs: Any, name: str) -> Counters:
    stats = attrs.get(name)
    if stats is None:
        return Counters()
    values: dict[str, int] = {}
    # Attributes pyroute2 does not know (the kernel's padding) are skipped.
    for attr, value in stats.get("attrs", ()):
        field_name = _COUNTER_ATTRS.get(attr)
        if field_name is not None and isinstance(value, int):
            values[field_name] = value
    return Counters(**values)


# ------------------------------------------------------------------ the backend

class NetlinkBackend(Backend):
    """The IPVS table of one network namespace (None: this process's), through netlink."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._socket: IPVS | None = None

    def _ipvs(self) -> IPVS:
        if self._socket is None:
            try:
                self._socket = IPVS(netns=self.netns) if self.netns else IPVS()
            except NetlinkError as error:
                where = f" in network namespace {self.netns!r}" if self.netns else ""
                raise IpvsError(
                    f"cannot open the kernel's IPVS interface{where}: "
                    f"{os.strerror(error.code)} (errno {error.code}; is the ip_vs module "
                    "loaded?)", None, error.code) from error
        return self._socket

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> NetlinkBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --------------------------------------------------------------- reading

    def _dump_raw(self) -> list[tuple[ServiceKey, ServiceSettings, Any, list[Any]]]:
        ipvs = self._ipvs()
        try:
            result = []
            for message in ipvs.service("dump"):
                attrs = message.get("IPVS_CMD_ATTR_SERVICE")
                key, settings = _service_from_attrs(attrs)
                request = IPVSService(**_service_key_fields(key))
                try:
                    replies = ipvs.dest("dump", request)
                except NetlinkError as error:
                    if error.code == errno.ESRCH:  # deleted since the service dump
                        continue
                    raise
                dests = [m.get("IPVS_CMD_ATTR_DEST") for m in replies]
                result.append((key, settings, attrs, dests))
            return result
        except NetlinkError as error:
            raise IpvsError(
                f"reading the IPVS table failed: {os.strerror(error.code)} "
                f"(errno {error.code}; is the ip_vs module loaded?)", None, error.code,
            ) from error

    def dump(self) -> Table:
        table: Table = {}
        for key, settings, _, dests in self._dump_raw():
            destinations = dict(_destination_from_attrs(attrs) for attrs in dests)
            table[key] = Service(settings=settings, destinations=destinations)
        return table

    def stats(self) -> dict[ServiceKey, ServiceStats]:
        """Counters of every service and real server (the kernel folds them every 2 s)."""
        result: dict[ServiceKey, ServiceStats] = {}
        for key, _settings, attrs, dests in self._dump_raw():
            result[key] = ServiceStats(
                service=_counters(attrs, "IPVS_SVC_ATTR_STATS64"),
                destinations={
                    _destination_from_attrs(d)[0]: _counters(d, "IPVS_DEST_ATTR_STATS64")
                    for d in dests
                },
            )
        return result

    # --------------------------------------------------------------- writing

    def apply(self, op: Operation) -> None:
        ipvs = self._ipvs()
        kind = op.kind
        try:
            if kind is OperationKind.ADD_SERVICE:
                ipvs.service("add", service=_service_request(op.service, op.service_settings))
            elif kind is OperationKind.EDIT_SERVICE:
                ipvs.service("set", service=_service_request(op.service, op.service_settings))
            elif kind is OperationKind.DELETE_SERVICE:
                ipvs.service("del", service=IPVSService(**_service_key_fields(op.service)))
            else:
                if op.destination is None:
                    raise ValueError("no real server given")
                service = IPVSService(**_service_key_fields(op.service))
                if kind is OperationKind.DELETE_DESTINATION:
                    dest = _destination_request(op.destination)
                    command = "del"
                else:
                    if op.destination_settings is None:
                        raise ValueError("no real server settings given")
                    dest = _destination_request(op.destination, op.destination_settings)
                    command = "add" if kind is OperationKind.ADD_DESTINATION else "set"
                ipvs.dest(command, service=service, dest=dest)
        except NetlinkError as error:
            raise IpvsError.refused(op, error.code) from error
        except (struct.error, OverflowError) as error:
            # pyroute2 could not pack a number into its netlink field.
            raise IpvsError.refused(
                op, errno.ERANGE, f"a value does not fit the kernel's field ({error})") from error
        except ValueError as error:
            # Refused before asking the kernel, with the errno the kernel gives for a
            # malformed request (as the memory backend does).
            raise IpvsError.refused(op, errno.EINVAL, str(error)) from error

    # ------------------------------------------------ sync daemons and timeouts
    # The requests are in `director.ipvs.netlink_sync` (pyroute2 has no message
    # classes for them).

    def sync_daemons(self) -> list[SyncDaemon]:
        from director.ipvs import netlink_sync
        return netlink_sync.sync_daemons(self._ipvs())

    def start_sync_daemon(self, daemon: SyncDaemon) -> None:
        from director.ipvs import netlink_sync
        netlink_sync.start_sync_daemon(self._ipvs(), daemon)

    def stop_sync_daemon(self, state: SyncState) -> None:
        from director.ipvs import netlink_sync
        netlink_sync.stop_sync_daemon(self._ipvs(), state)

    def timeouts(self) -> Timeouts:
        from director.ipvs import netlink_sync
        return netlink_sync.timeouts(self._ipvs())

    def set_timeouts(self, timeouts: Timeouts) -> None:
        from director.ipvs import netlink_sync
        netlink_sync.set_timeouts(self._ipvs(), timeouts)


# (added for `lvsadm`: ipvsadm's ActiveConn / InActConn / PersistConn columns)

def connection_counts(
    backend: NetlinkBackend,
) -> dict[ServiceKey, dict[DestinationKey, ConnectionCounts]]:
    """Per service and real server: the kernel's current connection counts."""
    result: dict[ServiceKey, dict[DestinationKey, ConnectionCounts]] = {}
    for key, _settings, _attrs, dests in backend._dump_raw():
        result[key] = {
            _destination_from_attrs(d)[0]: ConnectionCounts(
                active=d.get("IPVS_DEST_ATTR_ACTIVE_CONNS") or 0,
                inactive=d.get("IPVS_DEST_ATTR_INACT_CONNS") or 0,
                persistent=d.get("IPVS_DEST_ATTR_PERSIST_CONNS") or 0,
            )
            for d in dests
        }
    return result
