"""Dry-run stand-ins for everything the VRRP runtime changes: each logs what it would
do ("dry-run: vrrp: would add 198.51.100.100/24 dev eth0") and does nothing.

They are real implementations of "change nothing", not test doubles: `VrrpRuntime`
uses them with ``dry_run=True`` so that a director can run its instances beside a live
pair (hearing its adverts) and show what it would do. Reading the kernel (an
interface's primary address, whether a leftover VIP is there) still happens.

Public API::

    DryRunAddresses(netns=None)       # an AddressManager that changes nothing
    DryRunFirewall(netns=None, ...)   # a Firewall that changes nothing
    DryRunGarp(interface)             # .send(address) logs; .close()
    DryRunFifo(path)                  # .write(line) logs; .close()
    DeafSocket(family, interface, destinations)
        # stands in for a VrrpSocket that could not be opened: hears nothing
    async dry_run_script(argv, timeout, user, group) -> 0   # a notify script, logged
    PREFIX = "dry-run: vrrp: "
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass

from vrrp.addresses import AddressManager, Vmac, instance_interface, vmac_address, vmac_name
from vrrp.firewall import Blocked, Firewall
from vrrp.spec import AddressFamily, IPAddress, Route, VirtualAddress, VrrpInstance
from vrrp.transport import TransportCounters

log = logging.getLogger("vrrp")

PREFIX = "dry-run: vrrp: "


def _route_text(route: Route, default_interface: str | None) -> str:
    device = route.dev or default_interface
    text = f"route {route.destination}"
    if route.via is not None:
        text += f" via {route.via}"
    return f"{text} dev {device}" if device else text


class DryRunAddresses(AddressManager):
    """An `AddressManager` that logs each change instead of making it."""

    def add(self, vip: VirtualAddress, default_interface: str | None) -> bool:
        log.info("%swould add %s dev %s", PREFIX, vip.address,
                 self._device(vip, default_interface))
        return True

    def remove(self, vip: VirtualAddress, default_interface: str | None) -> bool:
        log.info("%swould delete %s dev %s", PREFIX, vip.address,
                 self._device(vip, default_interface))
        return True

    def add_route(self, route: Route, default_interface: str | None = None) -> bool:
        log.info("%swould add %s", PREFIX, _route_text(route, default_interface))
        return True

    def remove_route(self, route: Route, default_interface: str | None = None) -> bool:
        log.info("%swould delete %s", PREFIX, _route_text(route, default_interface))
        return True

    def add_vmac(self, instance: VrrpInstance, prefix: str = "vrrp") -> Vmac:
        name = vmac_name(instance, prefix)
        mac = instance.vmac_address or vmac_address(instance.virtual_router_id,
                                                    instance.family)
        log.info("%swould add the VMAC %s (macvlan, %s) on %s", PREFIX, name, mac,
                 instance.interface)
        return Vmac(name=name, base=instance.interface or "",
                    vrid=instance.virtual_router_id, family=instance.family, mac=mac)

    def remove_vmac(self, name: str) -> bool:
        log.info("%swould delete the VMAC %s", PREFIX, name)
        return True

    def remove_leftovers(self, instances: Iterable[VrrpInstance],
                         vmac_prefix: str = "vrrp") -> list[str]:
        """Logs the leftover VIPs it finds (reading the kernel) and removes nothing."""
        for instance in instances:
            default = instance_interface(instance, vmac_prefix)
            for vip in (*instance.virtual_ipaddresses,
                        *instance.virtual_ipaddresses_excluded):
                try:
                    found = (vip.dev or default) is not None and self.present(vip, default)
                except Exception as error:  # an interface that is not there, say
                    log.debug("%scannot look for a leftover %s: %s", PREFIX, vip.address,
                              error)
                    continue
                if found:
                    log.info("%swould remove a leftover of a previous run: %s: address "
                             "%s dev %s", PREFIX, instance.name, vip.address,
                             self._device(vip, default))
        return []

    def stop(self) -> list:
        return []


class DryRunFirewall(Firewall):
    """A `Firewall` (nftables) that logs its rules instead of setting them."""

    def block(self, instance_name: str, vips: Iterable[Blocked]) -> None:
        addresses = ", ".join(sorted(str(v.address) for v in vips))
        log.info("%s(%s) would set the firewall drop rule (nftables table %s) for %s",
                 PREFIX, instance_name, self.table, addresses)

    def unblock(self, instance_name: str, vips: Iterable[Blocked] | None = None) -> None:
        log.info("%s(%s) would remove the firewall drop rule", PREFIX, instance_name)

    def remove_leftovers(self) -> list[str]:
        return []

    def close(self) -> None:
        pass


class DryRunGarp:
    """A `GarpSender` that logs each gratuitous ARP / unsolicited NA."""

    def __init__(self, interface: str) -> None:
        self.interface = interface

    def send(self, address: IPAddress | str) -> bool:
        what = "unsolicited NA" if ":" in str(address) else "gratuitous ARP"
        log.info("%swould send a %s for %s on %s", PREFIX, what, address, self.interface)
        return True

    def close(self) -> None:
        pass


class DryRunFifo:
    """A notify FIFO that logs the lines it would write (it is neither made nor opened)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.written = 0

    def write(self, line: str | bytes) -> bool:
        text = line.decode(errors="replace") if isinstance(line, bytes) else line
        log.info("%swould write to the FIFO %s: %s", PREFIX, self.path, text.rstrip("\n"))
        self.written += 1
        return True

    def close(self, *, remove: bool | None = None) -> None:
        pass


async def dry_run_script(argv: tuple[str, ...], timeout: float, user: str | None,
                         group: str | None) -> int:
    """A notify script: logged, not run."""
    who = f" as {user}" if user else ""
    log.info("%swould run%s: %s", PREFIX, who, " ".join(argv))
    return 0


@dataclass
class DeafSocket:
    """Stands in for a VRRP socket that could not be opened in a dry run (no
    CAP_NET_RAW, say): it hears nothing and sends nothing, so the instance runs as if
    alone on its link."""

    family: AddressFamily
    interface: str | None
    destinations: tuple[IPAddress, ...]
    hdrincl: bool = False

    def __post_init__(self) -> None:
        self.counters = TransportCounters()

    def send(self, payload: bytes, destination: IPAddress | str | None = None) -> int:
        return 0

    def close(self) -> None:
        pass
