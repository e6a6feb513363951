"""The IPVS table as `ipvsadm -L -n` prints it (ipvsadm 1.31), byte for byte.

Pure: a `Table` plus the kernel's per-destination connection counts and statistics in,
text out. `director.cli.lvsadm` does the reading.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from director.ipvs.table import (
    ConnectionCounts,
    Counters,
    DestinationKey,
    DestinationSettings,
    Forwarding,
    Service,
    ServiceKey,
    Table,
)


class Format(StrEnum):
    PLAIN = "plain"
    STATS = "stats"
    RATE = "rate"
    THRESHOLDS = "thresholds"
    PERSISTENT_CONN = "persistent-conn"


# Per service: its own counters and its real servers' (missing ones count as zero).
ServiceCounters = tuple[Counters, Mapping[DestinationKey, Counters]]

_FORWARD_NAMES = {Forwarding.NAT: "Masq", Forwarding.DR: "Route", Forwarding.TUN: "Tunnel"}
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


# ------------------------------------------------------------------ text pieces

def _host_port(address: Any, port: int) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return f"[{address}]:{port}"
    return f"{address}:{port}"


def service_name(key: ServiceKey) -> str:
    if key.fwmark:
        # ipvsadm prints the mark as a signed int
        mark = _int32(key.fwmark)
        return f"FWM  {mark}" + (" IPv6" if key.family == socket.AF_INET6 else "")
    name = f"{key.protocol:<4} {_host_port(key.address, key.port)}"
    return name if key.family == socket.AF_INET6 else name[:33]


def _destination_name(key: DestinationKey) -> str:
    name = _host_port(key.address, key.port)
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


def _service_line(key: ServiceKey, service: Service, fmt: Format, counters: Counters,
                  exact: bool) -> str:
    name = service_name(key)
    if fmt is Format.STATS:
        return f"{name:<33}" + "".join(largenum(v, exact) for v in (
            counters.connections, counters.packets_in, counters.packets_out,
            counters.bytes_in, counters.bytes_out))
    if fmt is Format.RATE:
        return f"{name:<33}" + "".join(largenum(v, exact) for v in (
            counters.connections_per_second, counters.packets_in_per_second,
            counters.packets_out_per_second, counters.bytes_in_per_second,
            counters.bytes_out_per_second))
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
                      conns: ConnectionCounts, counters: Counters, exact: bool) -> str:
    name = _destination_name(key)
    if fmt is Format.STATS:
        return f"  -> {name:<28}" + "".join(largenum(v, exact) for v in (
            counters.connections, counters.packets_in, counters.packets_out,
            counters.bytes_in, counters.bytes_out))
    if fmt is Format.RATE:
        return f"  -> {name:<28}" + "".join(largenum(v, exact) for v in (
            counters.connections_per_second, counters.packets_in_per_second,
            counters.packets_out_per_second, counters.bytes_in_per_second,
            counters.bytes_out_per_second))
    if fmt is Format.THRESHOLDS:
        return (f"  -> {name:<28} {dest.upper_threshold:<10} {dest.lower_threshold:<10} "
                f"{conns.active:<10} {conns.inactive:<10}")
    if fmt is Format.PERSISTENT_CONN:
        return (f"  -> {name:<28} {dest.weight:<9} {conns.persistent:<11} "
                f"{conns.active:<10} {conns.inactive:<10}")
    return (f"  -> {name:<28} {_FORWARD_NAMES[dest.forwarding]:<7} {dest.weight:<6} "
            f"{conns.active:<10} {conns.inactive:<10}")


def title(fmt: Format) -> str:
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
    return ("Prot LocalAddress:Port Scheduler Flags\n"
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")


def header(version: str, size: int) -> str:
    return f"IP Virtual Server version {version} (size={size})\n"


def service_text(key: ServiceKey, service: Service, *, fmt: Format = Format.PLAIN,
                 connections: Mapping[DestinationKey, ConnectionCounts] | None = None,
                 counters: ServiceCounters | None = None, exact: bool = False,
                 sort: bool = True) -> str:
    """One service and its real servers, as ipvsadm prints them under the title."""
    connections = connections or {}
    service_counters, dest_counters = counters or (Counters(), {})
    lines = [_service_line(key, service, fmt, service_counters, exact)]
    dests = list(service.destinations)
    if sort:
        dests = sorted_destinations(dests)
    for dest in dests:
        lines.append(_destination_line(
            dest, service.destinations[dest], fmt, connections.get(dest, ConnectionCounts()),
            dest_counters.get(dest, Counters()), exact))
    return "".join(line + "\n" for line in lines)


def listing(table: Table, *, version: str, size: int, fmt: Format = Format.PLAIN,
            connections: Mapping[ServiceKey, Mapping[DestinationKey, ConnectionCounts]]
            | None = None,
            counters: Mapping[ServiceKey, ServiceCounters] | None = None,
            exact: bool = False, sort: bool = True,
            only: ServiceKey | None = None) -> str:
    """The whole `ipvsadm -L -n` text (`only`: one service, as with -t/-u/-f: no version
    line). Sorted as ipvsadm sorts by default; `sort=False`: the table's (kernel's) order."""
    connections = connections or {}
    counters = counters or {}
    keys = list(table) if only is None else [only]
    if sort and only is None:
        keys = sorted_services(keys)
    text = "" if only is not None else header(version, size)
    text += title(fmt)
    for key in keys:
        text += service_text(key, table[key], fmt=fmt, connections=connections.get(key),
                             counters=counters.get(key), exact=exact, sort=sort)
    return text
