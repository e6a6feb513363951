"""Sockets for the probes: made with a checker's connection options (bindto,
bind_port, bind_if, fwmark), connected, and read with a deadline.

All of a checker's socket options are set here, in keepalived's order: SO_MARK,
SO_BINDTODEVICE, bind, connect. `receive` waits for a datagram or an ICMP error
(IP_RECVERR / IPV6_RECVERR): a connected datagram socket learns of an ICMP error from
the error queue, which says which ICMP message it was and who sent it.

Nothing here raises for what the network does: failures are `ProbeFailure` exceptions
carrying a reason for people, which the probes turn into failed results.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket
from dataclasses import dataclass

from checkers.icmp_wire import ExtendedError, IcmpWireError, decode_extended_error

IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
_ERRQUEUE_CONTROL = 512


class ProbeFailure(Exception):
    """The check failed; the message is the reason a person reads."""

    def __init__(self, reason: str, errno: int | None = None):
        super().__init__(reason)
        self.errno = errno  # the system error behind it, when there was one


def seconds(value: float) -> str:
    """A duration as reasons write it: 5.0, 0.25."""
    return str(float(value))


def strerror(err: int | None) -> str:
    return os.strerror(err) if err else "unknown error"


def format_target(address: str, port: int | None = None) -> str:
    """``192.0.2.1:25``, ``[2001:db8::1]:53``; the bare address without a port."""
    if port is None:
        return address
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """Where a probe connects and how its socket is set up."""

    address: str
    port: int = 0
    bindto: str | None = None
    bind_port: int | None = None
    bind_if: str | None = None
    fwmark: int = 0

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ":" in self.address else socket.AF_INET

    @property
    def target(self) -> str:
        return format_target(self.address, self.port)

    def sockaddr(self, port: int | None = None) -> tuple:
        port = self.port if port is None else port
        if self.family == socket.AF_INET6:
            return (self.address, port, 0, self.scope_id(self.address))
        return (self.address, port)

    def scope_id(self, address: str) -> int:
        # A link-local address needs its interface: bind_if gives it, as in keepalived.
        if self.bind_if and ipaddress.ip_address(address).is_link_local:
            try:
                return socket.if_nametoindex(self.bind_if)
            except OSError:
                return 0
        return 0


def endpoint(connect_ip: object, connect_port: int = 0, *, bindto: object = None,
             bind_port: int | None = None, bind_if: str | None = None,
             fwmark: int = 0, require_port: bool = False) -> Endpoint:
    """An `Endpoint` from a checker's (or SMTP host's) connection fields.
    Raises ProbeFailure when there is no address (or, with `require_port`, no port)
    to connect to."""
    if connect_ip is None:
        raise ProbeFailure("no address to check (connect_ip is not set)")
    if require_port and not connect_port:
        raise ProbeFailure("no port to check (connect_port is not set)")
    return Endpoint(address=str(connect_ip), port=connect_port,
                    bindto=None if bindto is None else str(bindto), bind_port=bind_port,
                    bind_if=bind_if, fwmark=fwmark)


def open_socket(where: Endpoint, kind: int, proto: int = 0, *,
                bind_port: bool = True) -> socket.socket:
    """A non-blocking socket with `where`'s options set and bound as asked (not yet
    connected). `bind_port=False` ignores bind_port (ICMP has no ports).
    Raises ProbeFailure (with the socket closed) when an option cannot be applied."""
    family = where.family
    try:
        sock = socket.socket(family, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, proto)
    except OSError as exc:
        raise ProbeFailure(f"cannot create a socket: {strerror(exc.errno)}", exc.errno) from None
    try:
        _apply_options(sock, where, bind_port)
    except BaseException:
        sock.close()
        raise
    return sock


def _apply_options(sock: socket.socket, where: Endpoint, bind_port: bool) -> None:
    if where.fwmark:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, where.fwmark)
        except OSError as exc:
            raise ProbeFailure(f"cannot set fwmark {where.fwmark}: "
                               f"{strerror(exc.errno)}") from None
    if where.bind_if:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE,
                            where.bind_if.encode() + b"\0")
        except OSError as exc:
            raise ProbeFailure(f"cannot bind to interface {where.bind_if}: "
                               f"{strerror(exc.errno)}") from None
    port = where.bind_port if bind_port and where.bind_port else 0
    if where.bindto is None and not port:
        return
    local = where.bindto or ("::" if where.family == socket.AF_INET6 else "0.0.0.0")
    if (":" in local) != (where.family == socket.AF_INET6):
        raise ProbeFailure(f"cannot bind to {local}: not the address family of "
                           f"{where.address}")
    if where.family == socket.AF_INET6:
        address: tuple = (local, port, 0, where.scope_id(local))
    else:
        address = (local, port)
    try:
        sock.bind(address)
    except OSError as exc:
        raise ProbeFailure(f"cannot bind to {format_target(local, port or None)}: "
                           f"{strerror(exc.errno)}") from None


async def connect_stream(where: Endpoint, timeout: float) -> socket.socket:
    """A connected TCP socket to `where` within `timeout` seconds.
    Raises ProbeFailure: refused, timed out, unreachable, ..."""
    loop = asyncio.get_running_loop()
    sock = open_socket(where, socket.SOCK_STREAM)
    try:
        try:
            async with asyncio.timeout(timeout) as scope:
                await loop.sock_connect(sock, where.sockaddr())
        except TimeoutError:
            if not scope.expired():
                raise ProbeFailure(f"cannot connect to {where.target}: "
                                   f"{strerror(errno.ETIMEDOUT)}") from None
            raise ProbeFailure(f"connect timeout after {seconds(timeout)} s to "
                               f"{where.target}") from None
        except ConnectionRefusedError:
            raise ProbeFailure(f"connection refused by {where.target}") from None
        except OSError as exc:
            raise ProbeFailure(f"cannot connect to {where.target}: "
                               f"{strerror(exc.errno)}") from None
    except BaseException:
        sock.close()
        raise
    return sock


def connect_datagram(sock: socket.socket, where: Endpoint, port: int | None = None) -> None:
    """connect() a datagram socket (it fails at once or not at all); asks for ICMP
    errors first. Raises ProbeFailure."""
    level, option = ((socket.IPPROTO_IPV6, IPV6_RECVERR) if where.family == socket.AF_INET6
                     else (socket.IPPROTO_IP, IP_RECVERR))
    sock.setsockopt(level, option, 1)
    target = where.target if port is None else format_target(where.address, port or None)
    try:
        sock.connect(where.sockaddr(port))
    except OSError as exc:
        raise ProbeFailure(f"cannot reach {target}: {strerror(exc.errno)}") from None


def read_error_queue(sock: socket.socket) -> ExtendedError | None:
    """The oldest entry of the socket's error queue, if any."""
    try:
        _data, ancillary, _flags, _address = sock.recvmsg(
            512, _ERRQUEUE_CONTROL, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
    except OSError:
        return None
    for level, kind, data in ancillary:
        if (level, kind) in ((socket.IPPROTO_IP, IP_RECVERR),
                             (socket.IPPROTO_IPV6, IPV6_RECVERR)):
            try:
                return decode_extended_error(data)
            except IcmpWireError:
                return None
    return None


@dataclass(frozen=True, slots=True)
class SocketError:
    """A receive that failed: the errno, and the ICMP error behind it when the error
    queue had one."""

    errno: int
    icmp: ExtendedError | None

    def describe(self) -> str:
        if self.icmp is not None and self.icmp.is_icmp:
            sender = f" from {self.icmp.offender}" if self.icmp.offender else ""
            return f"ICMP {self.icmp.describe()}{sender}"
        if self.errno == errno.ECONNREFUSED:
            return "ICMP port unreachable"
        return strerror(self.errno)


async def receive(sock: socket.socket, size: int, deadline: float) -> bytes | SocketError | None:
    """One datagram, or the error the socket reported, or None when the loop's clock
    reaches `deadline` first."""
    got = await receive_from(sock, size, deadline)
    return got[0] if isinstance(got, tuple) else got


async def receive_from(sock: socket.socket, size: int,
                       deadline: float) -> tuple[bytes, object] | SocketError | None:
    """`receive`, with the sender's address beside the datagram."""
    loop = asyncio.get_running_loop()
    remaining = deadline - loop.time()
    if remaining <= 0:
        return None
    try:
        async with asyncio.timeout(remaining) as scope:
            return await loop.sock_recvfrom(sock, size)
    except OSError as exc:  # TimeoutError is one too
        if isinstance(exc, TimeoutError) and scope.expired():
            return None
        return SocketError(exc.errno or 0, read_error_queue(sock))
