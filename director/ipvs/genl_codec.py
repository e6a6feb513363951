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
from functools import lru_cache
from typing import Any

from director.ipvs.backend import kernel_destination_settings
from director.ipvs.table import (
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
FORWARDING_CODES = {Forwarding.NAT: 0, Forwarding.TUN: 2, Forwarding.DR: 3}
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
