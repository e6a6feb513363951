"""IPVS generic netlink requests as bytes, and the kernel's answers to them (sans-IO).

`encode(op, family_id, seq)` is one complete netlink message for one `Operation`:
exactly the attributes, in the same order, with the same values and header flags as
pyroute2's `IPVS.service()` / `IPVS.dest()` send for it (tests/unit/test_genl_codec.py
compares the bytes), including pyroute2's quirks: a service's netmask typed as an IPv4
address (an IPv6 service's prefix length as a host-order u32), full objects on SET
(the kernel replaces every field), the scheduler/timeout/flags defaults on deletes.

A request the kernel would not be asked about fails here with the exception the
pyroute2 path raises for it (`ValueError`, `struct.error`, `OverflowError`), before
any byte is produced. `parse_acks(data)` reads the kernel's NLMSG_ERROR answers
(acknowledgements carry errno 0) as `(seq, errno)` pairs.

The field computations (`service_fields`, `destination_fields`, ...) are shared with
the pyroute2 path in `director.ipvs.netlink`, so both refuse the same requests.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from director.ipvs.backend import (
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
    ServiceKey,
    ServiceSettings,
    TunnelType,
)

# ------------------------------------------------------------------ constants

# netlink (linux/netlink.h)
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE, NLMSG_OVERRUN = 1, 2, 3, 4
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NETLINK_GENERIC = 16  # the protocol of a netlink socket
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10  # error answers without a copy of the request
NETLINK_EXT_ACK = 11

# pyroute2's request types: "create" for add, "change" for set, "req" for del
FLAGS_CREATE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
FLAGS_CHANGE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE
FLAGS_REQUEST = NLM_F_REQUEST | NLM_F_ACK

GENL_VERSION = 1

IPVS_CMD_NEW_SERVICE, IPVS_CMD_SET_SERVICE, IPVS_CMD_DEL_SERVICE = 1, 2, 3
IPVS_CMD_NEW_DEST, IPVS_CMD_SET_DEST, IPVS_CMD_DEL_DEST = 5, 6, 7

IPVS_CMD_ATTR_SERVICE, IPVS_CMD_ATTR_DEST = 1, 2

(SVC_AF, SVC_PROTOCOL, SVC_ADDR, SVC_PORT, SVC_FWMARK, SVC_SCHED_NAME, SVC_FLAGS,
 SVC_TIMEOUT, SVC_NETMASK) = range(1, 10)
SVC_PE_NAME = 11

(DEST_ADDR, DEST_PORT, DEST_FWD_METHOD, DEST_WEIGHT, DEST_U_THRESH,
 DEST_L_THRESH) = range(1, 7)
DEST_ADDR_FAMILY, DEST_TUN_TYPE, DEST_TUN_PORT, DEST_TUN_FLAGS = 11, 13, 14, 15

# IP_VS_SVC_F_* service flags
PERSISTENT, HASHED, ONE_PACKET = 0x1, 0x2, 0x4
SCHED_FLAG_1, SCHED_FLAG_2, SCHED_FLAG_3 = 0x8, 0x10, 0x20
ALL_FLAGS = 0xFFFF
SCHED_FLAG_BITS = {
    "flag-1": SCHED_FLAG_1, "flag-2": SCHED_FLAG_2, "flag-3": SCHED_FLAG_3,
    "sh-fallback": SCHED_FLAG_1, "sh-port": SCHED_FLAG_2,
    "mh-fallback": SCHED_FLAG_1, "mh-port": SCHED_FLAG_2,
}

# IP_VS_CONN_F_* forwarding methods, IP_VS_CONN_F_TUNNEL_TYPE_*, IP_VS_TUNNEL_ENCAP_FLAG_*
FORWARDING_CODES = {Forwarding.NAT: 0, Forwarding.LOCAL: 1, Forwarding.TUN: 2, Forwarding.DR: 3}
TUNNEL_TYPE_CODES = {TunnelType.IPIP: 0, TunnelType.GUE: 1, TunnelType.GRE: 2}
TUNNEL_CSUM_CODES = {"nocsum": 0, "csum": 1, "remcsum": 2}

PROTOCOL_NUMBERS = {
    Protocol.TCP: socket.IPPROTO_TCP,
    Protocol.UDP: socket.IPPROTO_UDP,
    Protocol.SCTP: socket.IPPROTO_SCTP,
}

FULL_PREFIX = {socket.AF_INET: 32, socket.AF_INET6: 128}

# What pyroute2's IPVSService / IPVSDest hold when a field is not given.
SERVICE_DEFAULTS: dict[str, Any] = {
    "timeout": 0, "sched_name": "wlc", "flags": {"flags": 0, "mask": ALL_FLAGS}}
DESTINATION_DEFAULTS: dict[str, Any] = {
    "fwd_method": 3, "weight": 1, "tun_type": 0, "tun_port": 0, "tun_flags": 0,
    "u_thresh": 0, "l_thresh": 0}


# ------------------------------------------------------------------ field values
# Shared with the pyroute2 path (`IPVSService(**service_fields(...))`).

def netmask_attr(family: int, prefix: int | None) -> str:
    """IPVS_SVC_ATTR_NETMASK as pyroute2 sends it (typed as an IPv4 address)."""
    if prefix is None:
        prefix = FULL_PREFIX[family]
    if family == socket.AF_INET:
        return str(ipaddress.IPv4Network(f"0.0.0.0/{prefix}").netmask)
    # IPv6 services: the kernel reads a prefix length as a host-order u32.
    return socket.inet_ntoa(struct.pack("=I", prefix))


def service_key_fields(key: ServiceKey) -> dict[str, Any]:
    if key.fwmark:
        return {"fwmark": key.fwmark, "af": key.family}
    if key.protocol is None or key.address is None:
        raise ValueError(f"service key without protocol or address: {key!r}")
    return {
        "af": key.family,
        "protocol": PROTOCOL_NUMBERS[key.protocol],
        "addr": str(key.address),
        "port": key.port,
    }


def service_flags(settings: ServiceSettings) -> int:
    unknown = sorted(settings.sched_flags - SCHED_FLAG_BITS.keys())
    if unknown:
        raise ValueError(f"unknown scheduler flags {', '.join(unknown)}")
    flags = 0
    for name in settings.sched_flags:
        flags |= SCHED_FLAG_BITS[name]
    if settings.persistence_timeout is not None:
        flags |= PERSISTENT
    if settings.one_packet:
        flags |= ONE_PACKET
    return flags


def service_fields(key: ServiceKey, settings: ServiceSettings | None) -> dict[str, Any]:
    """Every field of an add or set: the kernel's SET replaces the whole object."""
    if settings is None:
        raise ValueError("no service settings given")
    flags = service_flags(settings)
    fields = service_key_fields(key)
    fields.update(
        sched_name=settings.scheduler,
        flags={"flags": flags, "mask": ALL_FLAGS},
        timeout=settings.persistence_timeout or 0,
        netmask=netmask_attr(key.family, settings.persistence_netmask),
    )
    if settings.persistence_engine:
        fields["pe_name"] = settings.persistence_engine
    return fields


def destination_fields(
    key: DestinationKey, settings: DestinationSettings | None = None
) -> dict[str, Any]:
    if settings is None:  # a delete: the kernel looks at the address and port only
        return {"addr": str(key.address), "port": key.port}
    # Tunnel fields that do not apply to the forwarding method are not sent, so the
    # kernel holds what a dump reports.
    settings = kernel_destination_settings(settings)
    return {
        "addr": str(key.address),
        "port": key.port,
        "fwd_method": FORWARDING_CODES[settings.forwarding],
        "weight": settings.weight,
        "u_thresh": settings.upper_threshold,
        "l_thresh": settings.lower_threshold,
        "tun_type": TUNNEL_TYPE_CODES[settings.tunnel_type],
        # pyroute2 types the tunnel port as a host-order u16; the kernel wants be16.
        "tun_port": socket.htons(settings.tunnel_port),
        "tun_flags": TUNNEL_CSUM_CODES[settings.tunnel_checksum],
    }


# ------------------------------------------------------------------ attribute packing
# The struct formats are pyroute2's (native order and size), so a value that does not
# fit fails with the same `struct.error` text.

_NLA = struct.Struct("HH")
_NLMSG = struct.Struct("IHHII")
_GENL = struct.Struct("BBH")


def _nla(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return _NLA.pack(size, kind) + payload + b"\0" * (-size & 3)


def _u8(kind: int, value: int) -> bytes:
    return _nla(kind, struct.pack("B", value))


def _u16(kind: int, value: int) -> bytes:
    return _nla(kind, struct.pack("H", value))


def _be16(kind: int, value: int) -> bytes:
    return _nla(kind, struct.pack(">H", value))


def _u32(kind: int, value: int) -> bytes:
    return _nla(kind, struct.pack("I", value))


def _asciiz(kind: int, value: str) -> bytes:
    return _nla(kind, value.encode("utf-8") + b"\0")


def _svc_flags(flags: int) -> bytes:
    return _nla(SVC_FLAGS, struct.pack("II", flags, ALL_FLAGS))


@lru_cache(maxsize=256)
def _netmask_bytes(family: int, prefix: int | None) -> bytes:
    return _nla(SVC_NETMASK, socket.inet_pton(socket.AF_INET, netmask_attr(family, prefix)))


_SVC_DEFAULTS = (_u32(SVC_TIMEOUT, 0) + _asciiz(SVC_SCHED_NAME, "wlc") + _svc_flags(0))


def _service_key_attrs(key: ServiceKey) -> list[bytes]:
    """The identifying attributes, in pyroute2's order (for fwmark: mark, then af)."""
    fields = service_key_fields(key)
    if key.fwmark:
        return [_u32(SVC_FWMARK, fields["fwmark"]), _u16(SVC_AF, fields["af"])]
    return [
        _u16(SVC_AF, fields["af"]),
        _u16(SVC_PROTOCOL, fields["protocol"]),
        _nla(SVC_ADDR, socket.inet_pton(fields["af"], fields["addr"])),
        _be16(SVC_PORT, fields["port"]),
    ]


@lru_cache(maxsize=4096)
def _service_key_nest(key: ServiceKey) -> bytes:
    """IPVS_CMD_ATTR_SERVICE of a real-server request (the key fields only); cached,
    as a service's real servers all repeat it."""
    return _nla(IPVS_CMD_ATTR_SERVICE, b"".join(_service_key_attrs(key)))


def _service_full_nest(key: ServiceKey, settings: ServiceSettings | None) -> bytes:
    fields = service_fields(key, settings)
    assert settings is not None
    attrs = _service_key_attrs(key)
    attrs.append(_asciiz(SVC_SCHED_NAME, fields["sched_name"]))
    attrs.append(_svc_flags(fields["flags"]["flags"]))
    attrs.append(_u32(SVC_TIMEOUT, fields["timeout"]))
    attrs.append(_netmask_bytes(key.family, settings.persistence_netmask))
    if "pe_name" in fields:
        attrs.append(_asciiz(SVC_PE_NAME, fields["pe_name"]))
    return _nla(IPVS_CMD_ATTR_SERVICE, b"".join(attrs))


def _service_delete_nest(key: ServiceKey) -> bytes:
    # pyroute2 puts its defaults first; an IPv4 address gains a /32 netmask.
    attrs = _service_key_attrs(key)
    if not key.fwmark and key.family == socket.AF_INET:
        attrs.insert(3, _netmask_bytes(socket.AF_INET, None))
    return _nla(IPVS_CMD_ATTR_SERVICE, _SVC_DEFAULTS + b"".join(attrs))


def _dest_address(key: DestinationKey) -> tuple[int, bytes]:
    family = socket.AF_INET6 if key.address.version == 6 else socket.AF_INET
    return family, socket.inet_pton(family, str(key.address))


_DEST_DELETE_DEFAULTS = (
    _u32(DEST_FWD_METHOD, 3) + _u32(DEST_WEIGHT, 1) + _u8(DEST_TUN_TYPE, 0)
    + _u16(DEST_TUN_PORT, 0) + _u16(DEST_TUN_FLAGS, 0) + _u32(DEST_U_THRESH, 0)
    + _u32(DEST_L_THRESH, 0))


def _dest_delete_nest(key: DestinationKey) -> bytes:
    family, packed = _dest_address(key)
    return _nla(IPVS_CMD_ATTR_DEST, _DEST_DELETE_DEFAULTS + _nla(DEST_ADDR, packed)
                + _u16(DEST_ADDR_FAMILY, family) + _be16(DEST_PORT, key.port))


def _dest_full_nest(key: DestinationKey, fields: dict[str, Any]) -> bytes:
    family, packed = _dest_address(key)
    return _nla(IPVS_CMD_ATTR_DEST, b"".join((
        _nla(DEST_ADDR, packed),
        _u16(DEST_ADDR_FAMILY, family),
        _be16(DEST_PORT, fields["port"]),
        _u32(DEST_FWD_METHOD, fields["fwd_method"]),
        _u32(DEST_WEIGHT, fields["weight"]),
        _u32(DEST_U_THRESH, fields["u_thresh"]),
        _u32(DEST_L_THRESH, fields["l_thresh"]),
        _u8(DEST_TUN_TYPE, fields["tun_type"]),
        _u16(DEST_TUN_PORT, fields["tun_port"]),
        _u16(DEST_TUN_FLAGS, fields["tun_flags"]),
    )))


# ------------------------------------------------------------------ messages

_SERVICE_COMMANDS = {
    OperationKind.ADD_SERVICE: (IPVS_CMD_NEW_SERVICE, FLAGS_CREATE),
    OperationKind.EDIT_SERVICE: (IPVS_CMD_SET_SERVICE, FLAGS_CHANGE),
    OperationKind.DELETE_SERVICE: (IPVS_CMD_DEL_SERVICE, FLAGS_REQUEST),
}
_DEST_COMMANDS = {
    OperationKind.ADD_DESTINATION: (IPVS_CMD_NEW_DEST, FLAGS_CREATE),
    OperationKind.EDIT_DESTINATION: (IPVS_CMD_SET_DEST, FLAGS_CHANGE),
    OperationKind.DELETE_DESTINATION: (IPVS_CMD_DEL_DEST, FLAGS_REQUEST),
}


def payload(op: Operation) -> tuple[int, int, bytes]:
    """(genl command, pyroute2's header flags, attributes) of `op`; raises what the
    pyroute2 path raises for a request it cannot build, in the same order."""
    kind = op.kind
    service_command = _SERVICE_COMMANDS.get(kind)
    if service_command is not None:
        command, flags = service_command
        if kind is OperationKind.DELETE_SERVICE:
            return command, flags, _service_delete_nest(op.service)
        return command, flags, _service_full_nest(op.service, op.service_settings)
    command, flags = _DEST_COMMANDS[kind]
    if op.destination is None:
        raise ValueError("no real server given")
    service_key_fields(op.service)  # refused before the real server is looked at
    if kind is OperationKind.DELETE_DESTINATION:
        return command, flags, _service_key_nest(op.service) + _dest_delete_nest(op.destination)
    if op.destination_settings is None:
        raise ValueError("no real server settings given")
    # Every field is computed before any is packed (pyroute2 builds the whole request
    # object first), so the first error is the same as on the pyroute2 path.
    fields = destination_fields(op.destination, op.destination_settings)
    return command, flags, (_service_key_nest(op.service)
                            + _dest_full_nest(op.destination, fields))


def message(family_id: int, seq: int, command: int, flags: int, attrs: bytes,
            pid: int = 0) -> bytes:
    size = _NLMSG.size + _GENL.size + len(attrs)
    return _NLMSG.pack(size, family_id, flags, seq, pid) + _GENL.pack(
        command, GENL_VERSION, 0) + attrs


def encode(op: Operation, family_id: int, seq: int, *, pid: int = 0, ack: bool = True) -> bytes:
    """One netlink message for `op`. `ack=False` leaves NLM_F_ACK out: the kernel then
    answers only if it refuses the request."""
    command, flags, attrs = payload(op)
    if not ack:
        flags &= ~NLM_F_ACK
    return message(family_id, seq, command, flags, attrs, pid)


# ------------------------------------------------------------------ answers

_ERRNO = struct.Struct("i")


def parse_acks(data: bytes | bytearray | memoryview) -> list[tuple[int, int]]:
    """(seq, errno) of every NLMSG_ERROR message in `data` (one or more netlink
    messages as read from the socket); errno 0 is an acknowledgement. Other message
    types are skipped. `ValueError` for a truncated or malformed buffer."""
    result: list[tuple[int, int]] = []
    offset, end = 0, len(data)
    while offset < end:
        if end - offset < _NLMSG.size:
            raise ValueError(f"truncated netlink header at offset {offset}")
        size, kind, _flags, seq, _pid = _NLMSG.unpack_from(data, offset)
        if size < _NLMSG.size or offset + size > end:
            raise ValueError(f"bad netlink message length {size} at offset {offset}")
        if kind == NLMSG_ERROR:
            if size < _NLMSG.size + _ERRNO.size:
                raise ValueError(f"truncated netlink error message at offset {offset}")
            (error,) = _ERRNO.unpack_from(data, offset + _NLMSG.size)
            result.append((seq, -error))
        offset += (size + 3) & ~3
    return result


# ------------------------------------------------------------------ reading the table
# The kernel's answers to IPVS_CMD_GET_SERVICE / IPVS_CMD_GET_DEST dumps, decoded to
# the values the pyroute2 path computes from pyroute2's messages (one decoder serves
# `dump`, `stats` and `connection_counts`).

IPVS_CMD_GET_SERVICE, IPVS_CMD_GET_DEST = 4, 8
NLM_F_MULTI, NLM_F_DUMP_INTR = 0x2, 0x10
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
FLAGS_DUMP = NLM_F_REQUEST | NLM_F_DUMP
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER

SVC_STATS, SVC_STATS64 = 10, 12
(DEST_ACTIVE_CONNS, DEST_INACT_CONNS, DEST_PERSIST_CONNS, DEST_STATS) = range(7, 11)
DEST_STATS64 = 12
STATS_ATTR_COUNT = 10  # IPVS_STATS_ATTR_CONNS (1) .. IPVS_STATS_ATTR_OUTBPS (10); 11 is padding

# Scheduler flag names as ipvsadm prints them: sh and mh name the first two flags.
SCHED_FLAG_NAMES: dict[str, dict[int, str]] = {
    "sh": {SCHED_FLAG_1: "sh-fallback", SCHED_FLAG_2: "sh-port", SCHED_FLAG_3: "flag-3"},
    "mh": {SCHED_FLAG_1: "mh-fallback", SCHED_FLAG_2: "mh-port", SCHED_FLAG_3: "flag-3"},
}
GENERIC_FLAG_NAMES = {SCHED_FLAG_1: "flag-1", SCHED_FLAG_2: "flag-2", SCHED_FLAG_3: "flag-3"}
FWD_MASK = 0x7
FORWARDING_BY_CODE = {code: fwd for fwd, code in FORWARDING_CODES.items()}
TUNNEL_TYPE_BY_CODE = {code: kind for kind, code in TUNNEL_TYPE_CODES.items()}
TUNNEL_CSUM_BY_CODE = {code: name for name, code in TUNNEL_CSUM_CODES.items()}
PROTOCOL_BY_NUMBER = {number: proto for proto, number in PROTOCOL_NUMBERS.items()}


class MalformedAnswer(ValueError):
    """The kernel's answer is not what netlink and IPVS define (truncated, say)."""


def encode_service_dump(family_id: int, seq: int, *, pid: int = 0) -> bytes:
    """IPVS_CMD_GET_SERVICE as a dump: every service of the namespace."""
    return message(family_id, seq, IPVS_CMD_GET_SERVICE, FLAGS_DUMP, b"", pid)


def encode_destination_dump(key: ServiceKey, family_id: int, seq: int, *,
                            pid: int = 0) -> bytes:
    """IPVS_CMD_GET_DEST as a dump: every real server of the service `key` (its key
    fields only, as pyroute2 sends them)."""
    return message(family_id, seq, IPVS_CMD_GET_DEST, FLAGS_DUMP, _service_key_nest(key), pid)


class DumpAnswer:
    """The answer to one dump request, fed as the socket gives it (sans-IO).

    `feed(data)` takes one datagram (one or more netlink messages) and returns the
    attributes of each data message of this request (the bytes after the generic
    netlink header); messages of other sequence numbers are skipped. After NLMSG_DONE
    or NLMSG_ERROR, `done` is true; `error` is then the errno the kernel reported (0:
    none), and `interrupted` says the kernel flagged a message NLM_F_DUMP_INTR (the
    table changed during the dump: its result may be inconsistent)."""

    __slots__ = ("done", "error", "interrupted", "seq")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.done = False
        self.error = 0
        self.interrupted = False

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        result: list[bytes] = []
        offset, end = 0, len(data)
        unpack = _NLMSG.unpack_from
        header = _NLMSG.size + _GENL.size
        while offset < end:
            if end - offset < _NLMSG.size:
                raise MalformedAnswer(f"truncated netlink header at offset {offset}")
            size, kind, flags, seq, _pid = unpack(data, offset)
            if size < _NLMSG.size or offset + size > end:
                raise MalformedAnswer(f"bad netlink message length {size} at offset {offset}")
            if seq == self.seq and not self.done:
                if flags & NLM_F_DUMP_INTR:
                    self.interrupted = True
                if kind in (NLMSG_DONE, NLMSG_ERROR):
                    if size >= _NLMSG.size + _ERRNO.size:
                        (code,) = _ERRNO.unpack_from(data, offset + _NLMSG.size)
                        self.error = -code if code < 0 else code
                    elif kind == NLMSG_ERROR:
                        raise MalformedAnswer(
                            f"truncated netlink error message at offset {offset}")
                    self.done = True
                elif kind >= 16:  # a data message (types below 16 are netlink's own)
                    if size < header:
                        raise MalformedAnswer(
                            f"truncated generic netlink message at offset {offset}")
                    result.append(bytes(data[offset + header:offset + size]))
            offset += (size + 3) & ~3
        return result


def _attributes(data: bytes, start: int = 0, end: int | None = None) -> dict[int, bytes]:
    """The payload of the first attribute of each type (as pyroute2's `get`); unknown
    types and padding are kept and ignored by the callers."""
    if end is None:
        end = len(data)
    found: dict[int, bytes] = {}
    unpack = _NLA.unpack_from
    offset = start
    while offset + 4 <= end:
        size, kind = unpack(data, offset)
        if size < 4 or offset + size > end:
            raise MalformedAnswer(f"bad netlink attribute length {size}")
        kind &= NLA_TYPE_MASK
        if kind not in found:
            found[kind] = data[offset + 4:offset + size]
        offset += (size + 3) & ~3
    return found


def _nested(message_attrs: bytes, kind: int, what: str) -> dict[int, bytes]:
    nest = _attributes(message_attrs).get(kind)
    if nest is None:
        raise MalformedAnswer(f"an IPVS answer without its {what}")
    return _attributes(nest)


def _uint(attrs: dict[int, bytes], kind: int, fmt: struct.Struct) -> int | None:
    value = attrs.get(kind)
    if value is None:
        return None
    return fmt.unpack_from(value)[0]


_U8, _U16 = struct.Struct("B"), struct.Struct("H")
_U32, _U64 = struct.Struct("I"), struct.Struct("Q")
_BE16 = struct.Struct(">H")


def _asciiz_value(value: bytes | None) -> str | bytes | None:
    if value is None:
        return None
    value = value.strip(b"\0")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:  # kept undecoded, as pyroute2 does
        return value


def _address(family: int | None, value: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if family == socket.AF_INET:
        return ipaddress.IPv4Address(value[:4])
    if family == socket.AF_INET6:
        return ipaddress.IPv6Address(value[:16])
    return ipaddress.ip_address(value)


@lru_cache(maxsize=1024)
def netmask_prefix(family: int | None, value: bytes) -> int:
    """IPVS_SVC_ATTR_NETMASK as a prefix length: an IPv4 service's is a netmask, an
    IPv6 service's a host-order u32 prefix length."""
    if family == socket.AF_INET:
        return ipaddress.IPv4Network(f"0.0.0.0/{socket.inet_ntoa(value[:4])}").prefixlen
    return struct.unpack_from("=I", value)[0]


def counters(stats64: bytes | None) -> Counters:
    """IPVS_*_ATTR_STATS64; unknown attributes (the kernel's padding) are skipped."""
    if stats64 is None:
        return Counters()
    values = [0] * STATS_ATTR_COUNT
    unpack_attr, unpack_u64 = _NLA.unpack_from, _U64.unpack_from
    offset, end = 0, len(stats64)
    while offset + 4 <= end:
        size, kind = unpack_attr(stats64, offset)
        if size < 4 or offset + size > end:
            raise MalformedAnswer(f"bad netlink attribute length {size} in statistics")
        kind &= NLA_TYPE_MASK
        if 1 <= kind <= STATS_ATTR_COUNT:
            values[kind - 1] = unpack_u64(stats64, offset + 4)[0]
        offset += (size + 3) & ~3
    return Counters(*values)


@dataclass(frozen=True, slots=True)
class DumpedService:
    key: ServiceKey
    settings: ServiceSettings
    counters: Counters


@dataclass(frozen=True, slots=True)
class DumpedDestination:
    key: DestinationKey
    settings: DestinationSettings
    counters: Counters
    connections: ConnectionCounts


def service_settings(family: int | None, scheduler: Any, flags: int, timeout: int | None,
                     netmask: int | None, engine: Any) -> ServiceSettings:
    """A dumped service's settings as the kernel holds them (see
    `kernel_service_settings`); shared with the pyroute2 path."""
    scheduler = scheduler or ""
    names = SCHED_FLAG_NAMES.get(scheduler, GENERIC_FLAG_NAMES)
    settings = ServiceSettings(
        scheduler=scheduler,
        sched_flags=frozenset(name for bit, name in names.items() if flags & bit),
        persistence_timeout=timeout if flags & PERSISTENT else None,
        persistence_netmask=netmask,
        one_packet=bool(flags & ONE_PACKET),
        persistence_engine=engine or None,
    )
    return kernel_service_settings(settings, family)  # type: ignore[arg-type]


def decode_service(message_attrs: bytes) -> DumpedService:
    """One message of a service dump (its attributes after the generic netlink header)."""
    attrs = _nested(message_attrs, IPVS_CMD_ATTR_SERVICE, "service")
    family = _uint(attrs, SVC_AF, _U16)
    fwmark = _uint(attrs, SVC_FWMARK, _U32) or 0
    if fwmark:
        key = ServiceKey(family=family, fwmark=fwmark)  # type: ignore[arg-type]
    else:
        raw_address = attrs.get(SVC_ADDR)
        if raw_address is None:
            raise MalformedAnswer("a service without an address or a firewall mark")
        key = ServiceKey(
            family=family,  # type: ignore[arg-type]
            protocol=PROTOCOL_BY_NUMBER.get(_uint(attrs, SVC_PROTOCOL, _U16)),  # type: ignore[arg-type]
            address=_address(family, raw_address),
            port=_uint(attrs, SVC_PORT, _BE16) or 0,
        )
    raw_flags = attrs.get(SVC_FLAGS)
    flags = _U32.unpack_from(raw_flags)[0] if raw_flags is not None else 0
    raw_netmask = attrs.get(SVC_NETMASK)
    settings = service_settings(
        family,
        _asciiz_value(attrs.get(SVC_SCHED_NAME)),
        flags,
        _uint(attrs, SVC_TIMEOUT, _U32),
        netmask_prefix(family, raw_netmask) if raw_netmask is not None else None,
        _asciiz_value(attrs.get(SVC_PE_NAME)),
    )
    return DumpedService(key, settings, counters(attrs.get(SVC_STATS64)))


def unknown_forwarding(key: DestinationKey, code: int) -> IpvsError:
    return IpvsError(
        f"real server {destination_text(key)} has forwarding method {code}, "
        "which this director does not know")


@lru_cache(maxsize=4096)
def destination_settings(fwd_method: int, weight: int, upper: int, lower: int,
                         tun_type: int, tun_port: int, tun_flags: int
                         ) -> DestinationSettings | None:
    """A dumped real server's settings from the kernel's values (`tun_port` in host
    order); None for a forwarding method this director does not know. Shared with the
    pyroute2 path."""
    forwarding = FORWARDING_BY_CODE.get(fwd_method & FWD_MASK)
    if forwarding is None:
        return None
    return kernel_destination_settings(DestinationSettings(
        forwarding=forwarding,
        weight=weight,
        upper_threshold=upper,
        lower_threshold=lower,
        tunnel_type=TUNNEL_TYPE_BY_CODE.get(tun_type, TunnelType.IPIP),
        tunnel_port=tun_port,
        tunnel_checksum=TUNNEL_CSUM_BY_CODE.get(tun_flags, "nocsum"),
    ))


@lru_cache(maxsize=65536)
def _destination_key(family: int | None, raw_address: bytes, port: int) -> DestinationKey:
    return DestinationKey(address=_address(family, raw_address), port=port)


def decode_destination(message_attrs: bytes, service_family: int | None = None
                       ) -> DumpedDestination:
    """One message of a real-server dump. A real server's address family is its own
    (IPVS_DEST_ATTR_ADDR_FAMILY); kernels before 4.3 leave it out: the service's then.
    `IpvsError` for a forwarding method this director does not know."""
    attrs = _nested(message_attrs, IPVS_CMD_ATTR_DEST, "real server")
    raw_address = attrs.get(DEST_ADDR)
    if raw_address is None:
        raise MalformedAnswer("a real server without an address")
    family = _uint(attrs, DEST_ADDR_FAMILY, _U16)
    key = _destination_key(family if family is not None else service_family, raw_address,
                           _uint(attrs, DEST_PORT, _BE16) or 0)
    code = (_uint(attrs, DEST_FWD_METHOD, _U32) or 0) & FWD_MASK
    raw_tun_port = attrs.get(DEST_TUN_PORT)
    settings = destination_settings(
        code,
        _uint(attrs, DEST_WEIGHT, _U32) or 0,
        _uint(attrs, DEST_U_THRESH, _U32) or 0,
        _uint(attrs, DEST_L_THRESH, _U32) or 0,
        _uint(attrs, DEST_TUN_TYPE, _U8) or 0,
        _BE16.unpack_from(raw_tun_port)[0] if raw_tun_port is not None else 0,
        _uint(attrs, DEST_TUN_FLAGS, _U16) or 0,
    )
    if settings is None:
        raise unknown_forwarding(key, code)
    return DumpedDestination(
        key, settings, counters(attrs.get(DEST_STATS64)),
        ConnectionCounts(
            active=_uint(attrs, DEST_ACTIVE_CONNS, _U32) or 0,
            inactive=_uint(attrs, DEST_INACT_CONNS, _U32) or 0,
            persistent=_uint(attrs, DEST_PERSIST_CONNS, _U32) or 0,
        ))
