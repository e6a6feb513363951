"""IPVS connection-synchronisation daemons and connection timeouts over generic
netlink: the requests pyroute2 0.9.7 has no helpers for.

pyroute2 types IPVS_CMD_ATTR_DAEMON and the IPVS_CMD_ATTR_TIMEOUT_* attributes as
opaque ("hex"), so requests are encoded with the message class below (attribute
types as in the kernel's policy, net/netfilter/ipvs/ip_vs_ctl.c) and replies are
read from the raw attribute payload.

Kernel facts these functions rely on (Linux 6.1, measured in tests/kernel/
test_sync_daemon.py):
- IPVS_DAEMON_ATTR_STATE, SYNC_ID: u32; MCAST_IFN: NUL-terminated string of at most
  15 characters; SYNC_MAXLEN, MCAST_PORT: u16 in host byte order; MCAST_TTL: u8;
  MCAST_GROUP: an IPv4 address in network byte order; MCAST_GROUP6: 16 bytes.
- Starting: ENODEV for an unknown interface (checked first), EEXIST when a daemon of
  that state already runs, EINVAL for a group that is not multicast or while the
  table holds a real server of the other address family.
- Stopping a daemon that does not run: ESRCH. Stopping one whose kernel thread has
  not run yet gets no netlink answer at all (see stop_sync_daemon).
- The kernel reports its defaults explicitly: group 224.0.0.81, port 8848, ttl 1,
  maxlen 1472 for a master (1500 less the IPv4 and UDP headers) and
  clamp(MTU, 1500, 65535) - 28 for a backup; an explicit maxlen is clamped to
  1..65507 for a master and 1024..65507 for a backup (65487 with an IPv6 group).
- Timeouts are whole seconds; 0 or an absent attribute leaves that timeout as it
  is; a value above INT_MAX / HZ is refused with EINVAL.
"""

from __future__ import annotations

import errno
import ipaddress
import struct
from typing import Any

from pyroute2.netlink import NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, genlmsg, nla
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic import ipvs as genl_ipvs

from director.ipvs.backend import IpvsError
from director.ipvs.sync_rules import (
    check_sync_daemon,
    describe_start_failure,
    describe_stop_failure,
    describe_timeouts_failure,
    generic_reason,
)
from director.ipvs.table import IPAddress, SyncDaemon, SyncState, Timeouts

# IP_VS_STATE_* (include/uapi/linux/ip_vs.h)
STATE_CODES = {SyncState.MASTER: 1, SyncState.BACKUP: 2}
_STATE_BY_CODE = {code: state for state, code in STATE_CODES.items()}

# Attribute numbers of the nested IPVS_CMD_ATTR_DAEMON.
_D_STATE, _D_IFN, _D_SYNC_ID, _D_MAXLEN, _D_GROUP, _D_GROUP6, _D_PORT, _D_TTL = range(1, 9)
# Top-level attributes of IPVS_CMD_GET_CONFIG's answer.
_C_DAEMON, _C_TCP, _C_TCP_FIN, _C_UDP = 3, 4, 5, 6
_NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER


class _SyncMessage(genlmsg):
    """pyroute2's IPVS message with the daemon and timeout attributes typed.

    Not a subclass of pyroute2's `ipvsmsg`: pyroute2 compiles a message class's
    attribute table once and marks the class, and a subclass inherits that mark, so
    after any `ipvsmsg` was used a subclass would encode with the parent's table."""

    prefix = "IPVS_CMD_ATTR_"
    service = genl_ipvs.ipvsmsg.service
    dest = genl_ipvs.ipvsmsg.dest
    nla_map = (
        ("IPVS_CMD_ATTR_UNSPEC", "none"),
        ("IPVS_CMD_ATTR_SERVICE", "service"),
        ("IPVS_CMD_ATTR_DEST", "dest"),
        ("IPVS_CMD_ATTR_DAEMON", "daemon"),
        ("IPVS_CMD_ATTR_TIMEOUT_TCP", "uint32"),
        ("IPVS_CMD_ATTR_TIMEOUT_TCP_FIN", "uint32"),
        ("IPVS_CMD_ATTR_TIMEOUT_UDP", "uint32"),
    )

    class daemon(nla):
        prefix = "IPVS_DAEMON_ATTR_"
        nla_map = (
            ("IPVS_DAEMON_ATTR_UNSPEC", "none"),
            ("IPVS_DAEMON_ATTR_STATE", "uint32"),
            ("IPVS_DAEMON_ATTR_MCAST_IFN", "asciiz"),
            ("IPVS_DAEMON_ATTR_SYNC_ID", "uint32"),
            ("IPVS_DAEMON_ATTR_SYNC_MAXLEN", "uint16"),
            ("IPVS_DAEMON_ATTR_MCAST_GROUP", "ip4addr"),
            ("IPVS_DAEMON_ATTR_MCAST_GROUP6", "ip6addr"),
            ("IPVS_DAEMON_ATTR_MCAST_PORT", "uint16"),
            ("IPVS_DAEMON_ATTR_MCAST_TTL", "uint8"),
        )


def _request(command: int) -> _SyncMessage:
    msg = _SyncMessage()
    msg["cmd"] = command
    msg["version"] = genl_ipvs.GENL_VERSION
    return msg


def _payload(value: object) -> bytes:
    """An attribute's payload as pyroute2 gives it: bytes, or the 'hex' type's
    'xx:xx:...' text."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return bytes.fromhex(value.replace(":", ""))
    raise TypeError(f"unexpected attribute value {value!r}")


def _attributes(payload: bytes) -> dict[int, bytes]:
    """The attributes packed in a nested attribute's payload: type -> payload."""
    found: dict[int, bytes] = {}
    offset = 0
    while offset + 4 <= len(payload):
        length, kind = struct.unpack_from("=HH", payload, offset)
        if length < 4 or offset + length > len(payload):
            break
        found[kind & _NLA_TYPE_MASK] = payload[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


def _uint(raw: bytes | None) -> int:
    if not raw:
        return 0
    fmt = {1: "=B", 2: "=H", 4: "=I", 8: "=Q"}.get(len(raw))
    if fmt is None:
        raise ValueError(f"unexpected integer attribute of {len(raw)} bytes")
    return int(struct.unpack(fmt, raw)[0])


def _daemon_from_payload(payload: bytes) -> SyncDaemon:
    attrs = _attributes(payload)
    code = _uint(attrs.get(_D_STATE))
    state = _STATE_BY_CODE.get(code)
    if state is None:
        raise IpvsError(f"the kernel reported a sync daemon in unknown state {code}")
    group: IPAddress | None = None
    if len(attrs.get(_D_GROUP6, b"")) == 16:
        group = ipaddress.IPv6Address(attrs[_D_GROUP6])
    elif len(attrs.get(_D_GROUP, b"")) == 4:
        group = ipaddress.IPv4Address(attrs[_D_GROUP])
    return SyncDaemon(
        state=state,
        interface=attrs.get(_D_IFN, b"").split(b"\0", 1)[0].decode(errors="replace"),
        sync_id=_uint(attrs.get(_D_SYNC_ID)),
        maxlen=_uint(attrs.get(_D_MAXLEN)),
        port=_uint(attrs.get(_D_PORT)),
        ttl=_uint(attrs.get(_D_TTL)),
        group=group,
    )


def _raw_attr(message: Any, name: str) -> object | None:
    return message.get(name)


def sync_daemons(sock: genl_ipvs.IPVSSocket) -> list[SyncDaemon]:
    """The running sync daemons (IPVS_CMD_GET_DAEMON dump), master first."""
    try:
        replies = sock.nlm_request(_request(genl_ipvs.IPVS_CMD_GET_DAEMON),
                                   msg_type=sock.prid, msg_flags=NLM_F_REQUEST | NLM_F_DUMP)
        daemons = []
        for reply in replies:
            value = _raw_attr(reply, "IPVS_CMD_ATTR_DAEMON")
            if value is not None:
                daemons.append(_daemon_from_payload(_payload(value)))
    except NetlinkError as error:
        raise IpvsError(f"reading the IPVS sync daemons failed: {generic_reason(error.code)}",
                        None, error.code) from error
    return sorted(daemons, key=lambda d: STATE_CODES[d.state])


def start_sync_daemon(sock: genl_ipvs.IPVSSocket, daemon: SyncDaemon) -> None:
    """IPVS_CMD_NEW_DAEMON. Fields left 0/None are not sent: the kernel's defaults."""
    check_sync_daemon(daemon)
    attrs: list[tuple[str, object]] = [
        ("IPVS_DAEMON_ATTR_STATE", STATE_CODES[daemon.state]),
        ("IPVS_DAEMON_ATTR_MCAST_IFN", daemon.interface),
        ("IPVS_DAEMON_ATTR_SYNC_ID", daemon.sync_id),
    ]
    if daemon.maxlen:
        attrs.append(("IPVS_DAEMON_ATTR_SYNC_MAXLEN", daemon.maxlen))
    if daemon.group is not None:
        if daemon.group.version == 6:
            attrs.append(("IPVS_DAEMON_ATTR_MCAST_GROUP6", str(daemon.group)))
        else:
            attrs.append(("IPVS_DAEMON_ATTR_MCAST_GROUP", str(daemon.group)))
    if daemon.port:
        attrs.append(("IPVS_DAEMON_ATTR_MCAST_PORT", daemon.port))
    if daemon.ttl:
        attrs.append(("IPVS_DAEMON_ATTR_MCAST_TTL", daemon.ttl))
    msg = _request(genl_ipvs.IPVS_CMD_NEW_DAEMON)
    msg["attrs"] = [("IPVS_CMD_ATTR_DAEMON", {"attrs": attrs})]
    try:
        sock.nlm_request(msg, msg_type=sock.prid, msg_flags=NLM_F_REQUEST | NLM_F_ACK)
    except NetlinkError as error:
        raise IpvsError(describe_start_failure(daemon, error.code), None, error.code) from error


def stop_sync_daemon(sock: genl_ipvs.IPVSSocket, state: SyncState) -> None:
    """IPVS_CMD_DEL_DAEMON for the daemon of that state.

    The request goes without NLM_F_ACK and the result is read back with a dump: when
    the daemon's kernel thread has not run yet (a stop right after a start), the
    kernel stops it but its kthread_stop() answers -EINTR, for which netlink sends
    no reply at all, so waiting for an acknowledgement would wait forever."""
    if not any(d.state is state for d in sync_daemons(sock)):
        raise IpvsError(describe_stop_failure(state, errno.ESRCH), None, errno.ESRCH)
    msg = _request(genl_ipvs.IPVS_CMD_DEL_DAEMON)
    msg["attrs"] = [("IPVS_CMD_ATTR_DAEMON",
                     {"attrs": [("IPVS_DAEMON_ATTR_STATE", STATE_CODES[state])]})]
    try:
        sock.put(msg, msg_type=sock.prid, msg_flags=NLM_F_REQUEST)
    except NetlinkError as error:
        raise IpvsError(describe_stop_failure(state, error.code), None, error.code) from error
    if any(d.state is state for d in sync_daemons(sock)):
        raise IpvsError(describe_stop_failure(state, 0), None, 0)


def timeouts(sock: genl_ipvs.IPVSSocket) -> Timeouts:
    """IPVS_CMD_GET_CONFIG: the tcp, tcpfin and udp timeouts in seconds."""
    try:
        replies = sock.nlm_request(_request(genl_ipvs.IPVS_CMD_GET_CONFIG),
                                   msg_type=sock.prid, msg_flags=NLM_F_REQUEST | NLM_F_ACK)
    except NetlinkError as error:
        raise IpvsError(f"reading the IPVS timeouts failed: {generic_reason(error.code)}",
                        None, error.code) from error
    for reply in replies:
        values = [_raw_attr(reply, f"IPVS_CMD_ATTR_TIMEOUT_{name}")
                  for name in ("TCP", "TCP_FIN", "UDP")]
        if any(value is not None for value in values):
            tcp, tcp_fin, udp = (_uint(_payload(v)) if v is not None else 0 for v in values)
            return Timeouts(tcp=tcp, tcp_fin=tcp_fin, udp=udp)
    raise IpvsError("the kernel answered the IPVS timeouts request without timeouts")


def set_timeouts(sock: genl_ipvs.IPVSSocket, wanted: Timeouts) -> None:
    """IPVS_CMD_SET_CONFIG with the fields that are not 0 (0 keeps the kernel's)."""
    attrs = []
    for attr, value in (("IPVS_CMD_ATTR_TIMEOUT_TCP", wanted.tcp),
                        ("IPVS_CMD_ATTR_TIMEOUT_TCP_FIN", wanted.tcp_fin),
                        ("IPVS_CMD_ATTR_TIMEOUT_UDP", wanted.udp)):
        if value < 0 or value > 0xFFFFFFFF:
            raise IpvsError(describe_timeouts_failure(
                wanted, errno.EINVAL, f"{value} seconds is out of range"), None, errno.EINVAL)
        if value:
            attrs.append((attr, value))
    if not attrs:
        return
    msg = _request(genl_ipvs.IPVS_CMD_SET_CONFIG)
    msg["attrs"] = attrs
    try:
        sock.nlm_request(msg, msg_type=sock.prid, msg_flags=NLM_F_REQUEST | NLM_F_ACK)
    except NetlinkError as error:
        raise IpvsError(describe_timeouts_failure(wanted, error.code), None,
                        error.code) from error
