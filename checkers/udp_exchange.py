"""One request datagram and what comes back, for the UDP-based checks (UDP_CHECK,
DNS_CHECK): the endpoint from the check's connect fields, a connected socket that asks
for ICMP errors, a send, then each datagram or socket error until a deadline (with a
bound on how many are read), and the timed verdict."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Iterator

from checkers.icmp_wire import ExtendedError
from checkers.probe import ProbeResult
from checkers.probe_sockets import (
    Endpoint,
    ProbeFailure,
    SocketError,
    connect_datagram,
    endpoint,
    open_socket,
    receive,
    strerror,
)
from checkers.spec import DnsCheck, UdpCheck

_RECEIVE_SIZE = 65535
_MAX_DATAGRAMS = 1000  # bound on datagrams read in one check (a flood cannot spin it)


async def timed_verdict(check: Awaitable[tuple[bool, str]]) -> ProbeResult:
    """The (ok, reason) of `check` as a ProbeResult; a ProbeFailure it raises is a
    failure with its text."""
    started = time.monotonic()
    try:
        ok, reason = await check
    except ProbeFailure as failure:
        ok, reason = False, str(failure)
    return ProbeResult(ok, reason, time.monotonic() - started)


def target_of(spec: UdpCheck | DnsCheck) -> Endpoint:
    """Where the check's datagram goes, from its connect/bind fields (a port is required)."""
    return endpoint(spec.connect_ip, spec.connect_port, bindto=spec.bindto,
                    bind_port=spec.bind_port, bind_if=spec.bind_if, fwmark=spec.fwmark,
                    require_port=True)


@contextlib.contextmanager
def exchange(where: Endpoint, payload: bytes, timeout: float,
             what: str) -> Iterator[AsyncIterator[bytes | SocketError]]:
    """Send `payload` (`what`, for the reason when it cannot go) from a UDP socket
    connected to `where` (so only it can answer) and give what comes back within
    `timeout`; the socket is closed on exit. Raises ProbeFailure when the send fails."""
    deadline = asyncio.get_running_loop().time() + timeout
    sock = open_socket(where, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        connect_datagram(sock, where)
        try:
            sock.send(payload)
        except OSError as exc:
            raise ProbeFailure(f"cannot send {what} to {where.target}: "
                               f"{strerror(exc.errno)}") from None
        yield replies(sock, deadline)
    finally:
        sock.close()


async def replies(sock: socket.socket, deadline: float) -> AsyncIterator[bytes | SocketError]:
    """Each datagram or socket error that comes back before the loop's clock reaches
    `deadline` (at most _MAX_DATAGRAMS of them)."""
    for _ in range(_MAX_DATAGRAMS):
        got = await receive(sock, _RECEIVE_SIZE, deadline)
        if got is None:
            return
        yield got


def passing_icmp(error: SocketError) -> ExtendedError | None:
    """The ICMP error behind `error` when it is not destination unreachable (time
    exceeded, parameter problem): no verdict on the server, so the check keeps
    waiting. None for every other error."""
    icmp = error.icmp
    if icmp is not None and icmp.is_icmp and not icmp.is_unreachable:
        return icmp
    return None
