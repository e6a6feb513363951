"""The IPVS table as `ipvsadm -L [-n]` prints it (ipvsadm 1.31), byte for byte.

Pure: a `Table` plus the kernel's per-destination connection counts and statistics in,
text out; also the sync daemons (`--daemon`), the timeouts (`--timeout`) and our own
health columns (`--health`). Host and service names (ipvsadm without -n) come from a
`Names` the caller passes; `director.cli.lvsadm` does the reading and the look-ups.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from director.ipvs.table import (
    ConnectionCounts,
    Counters,
    DestinationKey,
    DestinationSettings,
    Forwarding,
    IPAddress,
    Service,
    ServiceKey,
    SyncDaemon,
    SyncState,
    Table,
    Timeouts,
)


class Format(StrEnum):
    PLAIN = "plain"
    STATS = "stats"
    RATE = "rate"
    THRESHOLDS = "thresholds"
    PERSISTENT_CONN = "persistent-conn"


# Per service: its own counters and its real servers' (missing ones count as zero).
ServiceCounters = tuple[Counters, Mapping[DestinationKey, Counters]]

_FORWARD_NAMES: dict[str, str] = {
    Forwarding.NAT: "Masq", Forwarding.DR: "Route", Forwarding.TUN: "Tunnel",
    Forwarding.LOCAL: "Local"}
_FLAG_BIT = {
    "flag-1": 1, "sh-fallback": 1, "mh-fallback": 1,
    "flag-2": 2, "sh-port": 2, "mh-port": 2,
    "flag-3": 3,
}
_FLAG_NAMES = {
    "sh": ("sh-fallback", "sh-port", "flag-3"),
    "mh": ("mh-fallback", "mh-port", "flag-3"),
}
_GENERIC_FLAG_NAMES = ("flag-1", "flag-2", "flag-3")
_PROTOCOL_NUMBER = {"TCP": socket.IPPROTO_TCP, "UDP": socket.IPPROTO_UDP,
                    "SCTP": socket.IPPROTO_SCTP}


# ------------------------------------------------------------------ ordering (--sort)

def _int32(value: int) -> int:
    """C's conversion of an unsigned difference to int: ipvsadm compares that way."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _address_cmp(a: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
                 b: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> int:
    pa = a.packed if a is not None else b"\0" * 4
    pb = b.packed if b is not None else b"\0" * 4
    if len(pa) != len(pb):
        return len(pa) - len(pb)
    result = 0
    for i in range(0, len(pa), 4):
        result = _int32(int.from_bytes(pa[i:i + 4], "big") - int.from_bytes(pb[i:i + 4], "big"))
        if result:
            break
    return result


def _service_cmp(a: ServiceKey, b: ServiceKey) -> int:
    for left, right in ((a.fwmark, b.fwmark), (a.family, b.family),
                        (_PROTOCOL_NUMBER.get(str(a.protocol), 0),
                         _PROTOCOL_NUMBER.get(str(b.protocol), 0))):
        result = _int32(left - right)
        if result:
            return result
    return _address_cmp(a.address, b.address) or a.port - b.port


def _destination_cmp(a: DestinationKey, b: DestinationKey) -> int:
    return _address_cmp(a.address, b.address) or a.port - b.port


def sorted_services(keys: list[ServiceKey]) -> list[ServiceKey]:
    return sorted(keys, key=functools.cmp_to_key(_service_cmp))


def sorted_destinations(keys: list[DestinationKey]) -> list[DestinationKey]:
    return sorted(keys, key=functools.cmp_to_key(_destination_cmp))


# ------------------------------------------------------------------ names (no -n)

class Names(Protocol):
    """Host and service names for ipvsadm's listing without -n."""

    def host(self, address: IPAddress) -> str | None:
        """The address's host name (reverse lookup), None when it has none."""
        ...

    def service(self, port: int, protocol: str) -> str | None:
        """The port's service name for "tcp", "udp" or "sctp", None when it has none."""
        ...


_NAME_BUFFER = 60  # ipvsadm formats an address:port into a 60-byte buffer


def numeric_address(address: IPAddress) -> str:
    """The address as inet_ntop writes it (as ipvsadm prints it)."""
    if isinstance(address, ipaddress.IPv6Address):
        return socket.inet_ntop(socket.AF_INET6, address.packed)
    return str(address)


def address_port(address: IPAddress, port: int, protocol: str | None = None,
                 names: Names | None = None) -> str:
    """ipvsadm's "address:port": numeric without `names`; with them, the host name and
    the service name of the port for `protocol` (TCP, UDP, SCTP; other protocols and
    fwmark services keep the number) where they exist."""
    if names is None:
        host, service = numeric_address(address), str(port)
    else:
        host = names.host(address) or numeric_address(address)
        known = protocol.lower() if protocol else None
        name = names.service(port, known) if known in ("tcp", "udp", "sctp") else None
        service = name or str(port)
    if isinstance(address, ipaddress.IPv6Address):
        text = f"[{host}]:{service}"
    else:
        text = f"{host}:{service}"
    return text[:_NAME_BUFFER - 1]


# ------------------------------------------------------------------ text pieces

def service_name(key: ServiceKey, names: Names | None = None) -> str:
    if key.fwmark:
        # ipvsadm prints the mark as a signed int
        mark = _int32(key.fwmark)
        return f"FWM  {mark}" + (" IPv6" if key.family == socket.AF_INET6 else "")
    assert key.address is not None
    protocol = str(key.protocol) if key.protocol else None
    name = f"{key.protocol:<4} {address_port(key.address, key.port, protocol, names)}"
    return name if key.family == socket.AF_INET6 else name[:33]


def _destination_name(key: DestinationKey, service: ServiceKey | None,
                      names: Names | None) -> str:
    protocol = str(service.protocol) if service is not None and service.protocol else None
    name = address_port(key.address, key.port, protocol, names)
    return name if isinstance(key.address, ipaddress.IPv6Address) else name[:28]


def sched_flags_text(service: Service) -> str:
    settings = service.settings
    names = _FLAG_NAMES.get(settings.scheduler, _GENERIC_FLAG_NAMES)
    bits = sorted({_FLAG_BIT[flag] for flag in settings.sched_flags if flag in _FLAG_BIT})
    return ",".join(names[bit - 1] for bit in bits)


def _netmask_text(family: int, prefix: int | None) -> str:
    if prefix is None:
        return ""
    if family == socket.AF_INET6:
        return "" if prefix == 128 else f" mask {prefix}"
    if prefix == 32:
        return ""
    return f" mask {ipaddress.IPv4Network(f'0.0.0.0/{prefix}').netmask}"


def largenum(value: int, exact: bool) -> str:
    if exact:
        digits = str(value)
        return digits.rjust(9 if len(digits) <= 8 else len(digits) + 1)
    for limit, divisor, suffix in ((100_000_000, 1, ""), (1_000_000_000, 1000, "K"),
                                   (100_000_000_000, 1_000_000, "M"),
                                   (100_000_000_000_000, 1_000_000_000, "G")):
        if value < limit:
            return f"{value // divisor:8d}{suffix}" if suffix else f"{value:9d}"
    return f"{value // 1_000_000_000_000:8d}T"


def _counter_columns(fmt: Format, counters: Counters, exact: bool) -> str | None:
    """The --stats or --rate columns of a service or real server line; None for the
    other formats."""
    if fmt is Format.STATS:
        values = (counters.connections, counters.packets_in, counters.packets_out,
                  counters.bytes_in, counters.bytes_out)
    elif fmt is Format.RATE:
        values = (counters.connections_per_second, counters.packets_in_per_second,
                  counters.packets_out_per_second, counters.bytes_in_per_second,
                  counters.bytes_out_per_second)
    else:
        return None
    return "".join(largenum(v, exact) for v in values)


def _service_line(key: ServiceKey, service: Service, fmt: Format, counters: Counters,
                  exact: bool, names: Names | None) -> str:
    name = service_name(key, names)
    columns = _counter_columns(fmt, counters, exact)
    if columns is not None:
        return f"{name:<33}{columns}"
    settings = service.settings
    line = f"{name} {settings.scheduler}"
    flags = sched_flags_text(service)
    if flags:
        line += f" ({flags})"
    if settings.persistence_timeout is not None:
        line += f" persistent {settings.persistence_timeout}"
        line += _netmask_text(key.family, settings.persistence_netmask)
        if settings.persistence_engine:
            line += f" pe {settings.persistence_engine}"
    if settings.one_packet:
        line += " ops"
    return line


def _destination_line(key: DestinationKey, dest: DestinationSettings, fmt: Format,
                      conns: ConnectionCounts, counters: Counters, exact: bool,
                      service: ServiceKey | None = None, names: Names | None = None) -> str:
    name = _destination_name(key, service, names)
    columns = _counter_columns(fmt, counters, exact)
    if columns is not None:
        return f"  -> {name:<28}{columns}"
    if fmt is Format.THRESHOLDS:
        return (f"  -> {name:<28} {dest.upper_threshold:<10} {dest.lower_threshold:<10} "
                f"{conns.active:<10} {conns.inactive:<10}")
    if fmt is Format.PERSISTENT_CONN:
        return (f"  -> {name:<28} {dest.weight:<9} {conns.persistent:<11} "
                f"{conns.active:<10} {conns.inactive:<10}")
    forward = _FORWARD_NAMES.get(str(dest.forwarding), str(dest.forwarding))
    return (f"  -> {name:<28} {forward:<7} {dest.weight:<6} "
            f"{conns.active:<10} {conns.inactive:<10}")


def title(fmt: Format, health: bool = False) -> str:
    columns = {
        Format.STATS: ("Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"),
        Format.RATE: ("CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"),
    }
    if fmt in columns:
        heads = " ".join(f"{head:>8}" for head in columns[fmt])
        return f"{'Prot LocalAddress:Port':<33} {heads}\n  -> RemoteAddress:Port\n"
    if fmt is Format.THRESHOLDS:
        return (f"{'Prot LocalAddress:Port':<33} {'Uthreshold':<10} {'Lthreshold':<10} "
                f"{'ActiveConn':<10} {'InActConn':<10}\n  -> RemoteAddress:Port\n")
    if fmt is Format.PERSISTENT_CONN:
        return (f"{'Prot LocalAddress:Port':<33} {'Weight':<9} {'PersistConn':<11} "
                f"{'ActiveConn':<10} {'InActConn':<10}\n  -> RemoteAddress:Port\n")
    text = ("Prot LocalAddress:Port Scheduler Flags\n"
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn")
    if health:
        text += f" {'Health':<{_HEALTH_WIDTH}} Reason"
    return text + "\n"


def header(version: str, size: int) -> str:
    return f"IP Virtual Server version {version} (size={size})\n"


def service_text(key: ServiceKey, service: Service, *, fmt: Format = Format.PLAIN,
                 connections: Mapping[DestinationKey, ConnectionCounts] | None = None,
                 counters: ServiceCounters | None = None, exact: bool = False,
                 sort: bool = True, names: Names | None = None,
                 health: Mapping[DestinationKey, Health] | None = None) -> str:
    """One service and its real servers, as ipvsadm prints them under the title.
    `health` (plain format only): our two extra columns, "?" for a real server
    missing from it."""
    connections = connections or {}
    service_counters, dest_counters = counters or (Counters(), {})
    lines = [_service_line(key, service, fmt, service_counters, exact, names)]
    dests = list(service.destinations)
    if sort:
        dests = sorted_destinations(dests)
    for dest in dests:
        line = _destination_line(
            dest, service.destinations[dest], fmt, connections.get(dest, ConnectionCounts()),
            dest_counters.get(dest, Counters()), exact, key, names)
        if health is not None:
            line += " " + health_columns(health.get(dest))
        lines.append(line)
    return "".join(line + "\n" for line in lines)


def listing(table: Table, *, version: str, size: int, fmt: Format = Format.PLAIN,
            connections: Mapping[ServiceKey, Mapping[DestinationKey, ConnectionCounts]]
            | None = None,
            counters: Mapping[ServiceKey, ServiceCounters] | None = None,
            exact: bool = False, sort: bool = True,
            only: ServiceKey | None = None, names: Names | None = None,
            health: Mapping[ServiceKey, Mapping[DestinationKey, Health]] | None = None,
            ) -> str:
    """The whole `ipvsadm -L -n` text (`only`: one service, as with -t/-u/-f: no version
    line). Sorted as ipvsadm sorts by default; `sort=False`: the table's (kernel's) order.
    `names`: host and service names as `ipvsadm -L` (without -n) shows them.
    `health` (plain format only): two more columns per real server (see `Health`)."""
    connections = connections or {}
    counters = counters or {}
    if health is not None and fmt is not Format.PLAIN:
        raise ValueError("health columns go with the plain listing only")
    keys = list(table) if only is None else [only]
    if sort and only is None:
        keys = sorted_services(keys)
    text = "" if only is not None else header(version, size)
    text += title(fmt, health=health is not None)
    for key in keys:
        text += service_text(key, table[key], fmt=fmt, connections=connections.get(key),
                             counters=counters.get(key), exact=exact, sort=sort,
                             names=names,
                             health=None if health is None else health.get(key, {}))
    return text


# ------------------------------------------------------------------ health (our columns)

class HealthState(StrEnum):
    UP = "UP"
    DOWN = "DOWN"
    DRAIN = "DRAIN"  # up, but drained by an operator (weight 0)
    UNKNOWN = "?"  # the running director does not know this real server


@dataclass(frozen=True, slots=True)
class Health:
    """What the running director knows of one real server (from its status.json)."""

    state: HealthState
    reason: str = ""  # the last check's result


_HEALTH_WIDTH = 6
REASON_WIDTH = 48


def short_reason(reason: str, width: int = REASON_WIDTH) -> str:
    """The reason on one line, at most `width` characters ("..." marks a cut)."""
    text = " ".join(reason.split())
    return text if len(text) <= width else text[:width - 3].rstrip() + "..."


def health_columns(health: Health | None) -> str:
    if health is None:
        return f"{HealthState.UNKNOWN:<{_HEALTH_WIDTH}}".rstrip()
    reason = short_reason(health.reason)
    return f"{health.state:<{_HEALTH_WIDTH}} {reason}".rstrip()


# ------------------------------------------------------------------ --daemon, --timeout

def sync_daemons_text(daemons: Iterable[SyncDaemon]) -> str:
    """`ipvsadm -L --daemon`: one line per running sync daemon, master first; the
    optional fields are printed when set (the kernel reports them all since 4.3)."""
    order = {SyncState.MASTER: 0, SyncState.BACKUP: 1}
    text = ""
    for daemon in sorted(daemons, key=lambda d: order.get(d.state, 2)):
        line = (f"{daemon.state} sync daemon (mcast={daemon.interface}, "
                f"syncid={daemon.sync_id}")
        if daemon.maxlen:
            line += f", maxlen={daemon.maxlen}"
        if daemon.group is not None:
            line += f", group={numeric_address(daemon.group)}"
        if daemon.port:
            line += f", port={daemon.port}"
        if daemon.ttl:
            line += f", ttl={daemon.ttl}"
        text += line + ")\n"
    return text


def timeouts_text(timeouts: Timeouts) -> str:
    """`ipvsadm -L --timeout`."""
    return f"Timeout (tcp tcpfin udp): {timeouts.tcp} {timeouts.tcp_fin} {timeouts.udp}\n"
