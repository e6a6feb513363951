"""PING_CHECK: one ICMP (or ICMPv6) echo to the real server, as keepalived 2.2.7 does.

The check passes when an echo reply with our identifier and sequence number comes back
from the server within connect_timeout. It fails at once on an ICMP error about our
echo (host unreachable after ARP/neighbour discovery gave up, prohibited, ...), when
the echo cannot be sent (no route), and at the deadline.

Sockets: an unprivileged ping socket (SOCK_DGRAM, IPPROTO_ICMP/ICMPV6: the kernel picks
the identifier and hands the socket only the replies to it) when
net.ipv4.ping_group_range admits our group; else a raw socket (needs CAP_NET_RAW),
where we choose the identifier and sort the replies ourselves. keepalived widens
ping_group_range to make ping sockets work; we leave the host's sysctl alone and fall
back to a raw socket instead. bindto, bind_if and fwmark apply; ports do not.
The echo format is `checkers.icmp_wire`'s (sans-IO).
"""

from __future__ import annotations

import asyncio
import errno
import secrets
import socket
import time
from enum import StrEnum

from checkers.icmp_wire import (
    IcmpMessage,
    IcmpWireError,
    decode_icmp,
    encode_echo_request,
    strip_ipv4_header,
)
from checkers.probe import ProbeContext, ProbeResult
from checkers.probe_sockets import (
    Endpoint,
    ProbeFailure,
    SocketError,
    connect_datagram,
    endpoint,
    open_socket,
    receive_from,
    seconds,
    strerror,
)
from checkers.spec import PingCheck

PAYLOAD_PREFIX = b"lvs-director PING_CHECK "
_RECEIVE_SIZE = 4096
_MAX_PACKETS = 10_000  # bound on packets read in one check (a raw socket sees others')
_NOT_PERMITTED = (errno.EACCES, errno.EPERM)


class PingMode(StrEnum):
    AUTO = "auto"    # a ping socket if allowed, else a raw socket
    DGRAM = "dgram"  # a ping socket only
    RAW = "raw"      # a raw socket only


async def probe_ping(spec: PingCheck, context: ProbeContext) -> ProbeResult:
    started = time.monotonic()
    try:
        where = endpoint(spec.connect_ip, 0, bindto=spec.bindto, bind_if=spec.bind_if,
                         fwmark=spec.fwmark)
        ok, reason = await ping_once(where, spec.connect_timeout)
    except ProbeFailure as failure:
        ok, reason = False, str(failure)
    return ProbeResult(ok, reason, time.monotonic() - started)


async def ping_once(where: Endpoint, timeout: float, *,
                    mode: PingMode = PingMode.AUTO) -> tuple[bool, str]:
    """One echo to `where.address`: (ok, reason). Raises ProbeFailure when no socket
    can be had or set up."""
    ipv6 = where.family == socket.AF_INET6
    sock, raw = _icmp_socket(where, mode)
    protocol = "ICMPv6" if ipv6 else "ICMP"
    target = where.address
    try:
        connect_datagram(sock, where, 0)
        ident = secrets.randbits(16)
        sequence = secrets.randbits(16)
        payload = PAYLOAD_PREFIX + secrets.token_bytes(32)
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            sock.send(encode_echo_request(ident, sequence, payload, ipv6=ipv6))
        except OSError as exc:
            return False, f"cannot send {protocol} echo to {target}: {strerror(exc.errno)}"
        if not raw:
            ident = sock.getsockname()[1]  # a ping socket's identifier is its "port"
        for _ in range(_MAX_PACKETS):
            got = await receive_from(sock, _RECEIVE_SIZE, deadline)
            if got is None:
                break
            if isinstance(got, SocketError):
                return False, f"no {protocol} echo reply from {target}: {got.describe()}"
            data, sender = got
            message, source = _decode(data, sender, ipv6=ipv6, raw=raw)
            if message is None:
                continue
            if message.is_echo_reply and (message.ident, message.sequence) == (ident, sequence):
                return True, f"{protocol} echo reply from {target}"
            quoted = message.quoted
            if (message.is_error and quoted is not None and quoted.destination == target
                    and (quoted.ident, quoted.sequence) == (ident, sequence)):
                return False, (f"no {protocol} echo reply from {target}: "
                               f"{protocol} {message.describe()} from {source}")
        return False, f"no {protocol} echo reply from {target} within {seconds(timeout)} s"
    finally:
        sock.close()


def _decode(data: bytes, sender: object, *, ipv6: bool,
            raw: bool) -> tuple[IcmpMessage | None, str]:
    """The ICMP message in a received datagram and who sent it; None for junk."""
    source = sender[0] if isinstance(sender, tuple) and sender else "?"
    try:
        if raw and not ipv6:
            packet = strip_ipv4_header(data)
            if packet.protocol != socket.IPPROTO_ICMP:
                return None, source
            return decode_icmp(packet.payload, verify_checksum=True), packet.source
        return decode_icmp(data, ipv6=ipv6), str(source).split("%")[0]
    except IcmpWireError:
        return None, source


def _icmp_socket(where: Endpoint, mode: PingMode) -> tuple[socket.socket, bool]:
    """A socket for `mode` and whether it is raw."""
    proto = socket.IPPROTO_ICMPV6 if where.family == socket.AF_INET6 else socket.IPPROTO_ICMP
    dgram_error: ProbeFailure | None = None
    if mode in (PingMode.AUTO, PingMode.DGRAM):
        try:
            return open_socket(where, socket.SOCK_DGRAM, proto, bind_port=False), False
        except ProbeFailure as failure:
            if mode is PingMode.DGRAM or failure.errno not in _NOT_PERMITTED:
                raise _socket_failure(failure, "ping") from None
            dgram_error = failure
    try:
        return open_socket(where, socket.SOCK_RAW, proto, bind_port=False), True
    except ProbeFailure as failure:
        if dgram_error is not None and failure.errno in _NOT_PERMITTED:
            raise ProbeFailure(
                "cannot open an ICMP socket: ping sockets are not allowed for this group "
                "(sysctl net.ipv4.ping_group_range) and raw sockets need CAP_NET_RAW",
                failure.errno) from None
        raise _socket_failure(failure, "raw ICMP") from None


def _socket_failure(failure: ProbeFailure, kind: str) -> ProbeFailure:
    if failure.errno is None:  # an option could not be applied: its reason says which
        return failure
    return ProbeFailure(f"cannot open a {kind} socket: {strerror(failure.errno)}",
                        failure.errno)
