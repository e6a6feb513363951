"""TCP_CHECK: the real server is up when a TCP connection to it opens.

One connect to connect_ip:connect_port within connect_timeout, from bindto/bind_port,
on bind_if, with the fwmark; the socket options are those every probe shares
(`checkers.probe_sockets`). As keepalived does, the connection is closed as soon as it
is open: nothing is sent.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import socket
import time

from checkers.probe import ProbeContext, ProbeResult
from checkers.probe_sockets import ProbeFailure, endpoint, open_socket, seconds, strerror
from checkers.spec import TcpCheck

# What connect() errors mean to a person reading why a server is down.
_CONNECT_ERRORS = {
    errno.ECONNREFUSED: "connection refused",
    errno.EHOSTUNREACH: "no route to host",
    errno.ENETUNREACH: "network unreachable",
    errno.ECONNRESET: "connection reset",
    errno.ETIMEDOUT: "connection timed out (no answer to SYN retries)",
    errno.EACCES: "connect not permitted (firewall?)",
    errno.EPERM: "connect not permitted (firewall?)",
}


# Endpoints are frozen: one per server and options is enough.
_endpoint = functools.lru_cache(maxsize=16384)(endpoint)


def connect_error_reason(err: int | None) -> str:
    """The reason for a failed connect() with errno `err`."""
    if err in _CONNECT_ERRORS:
        return _CONNECT_ERRORS[err]
    return f"connect failed: {strerror(err)}"


async def probe_tcp(spec: TcpCheck, context: ProbeContext) -> ProbeResult:
    started = time.monotonic()
    try:
        where = _endpoint(spec.connect_ip, spec.connect_port, bindto=spec.bindto,
                          bind_port=spec.bind_port, bind_if=spec.bind_if, fwmark=spec.fwmark)
        if not spec.connect_port:
            raise ProbeFailure("no port to check (connect_port is not set)")
        await _connect(where.sockaddr(), open_socket(where, socket.SOCK_STREAM),
                       spec.connect_timeout)
    except ProbeFailure as failure:
        return ProbeResult(False, str(failure), time.monotonic() - started)
    latency = time.monotonic() - started
    return ProbeResult(True, f"connected to {where.target}", latency)


# connect() results that mean "in progress", as asyncio's sock_connect takes them.
_CONNECTING = frozenset({errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY, errno.EINTR})


async def _connect(address: tuple, sock: socket.socket, timeout: float) -> None:
    """Connect `sock` (closed in every case) within `timeout`. Raises ProbeFailure.

    One writer callback and one timer wake the probe (no asyncio.timeout, no
    sock_connect task machinery): this runs thousands of times a second."""
    try:
        try:
            err = sock.connect_ex(address)
        except OSError as exc:
            raise ProbeFailure(connect_error_reason(exc.errno)) from None
        if err == 0:
            return
        if err not in _CONNECTING:
            raise ProbeFailure(connect_error_reason(err))
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        fd = sock.fileno()
        # A deadline already passed comes first, as asyncio.timeout makes it.
        timer = (loop.call_soon(_wake, waiter, False) if timeout <= 0
                 else loop.call_later(timeout, _wake, waiter, False))
        loop.add_writer(fd, _wake, waiter, True)
        try:
            connected = await waiter
        finally:
            loop.remove_writer(fd)
            timer.cancel()
        if not connected:
            raise ProbeFailure(f"connect timeout after {seconds(timeout)} s")
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise ProbeFailure(connect_error_reason(err))
    finally:
        sock.close()


def _wake(waiter: asyncio.Future[bool], connected: bool) -> None:
    if not waiter.done():
        waiter.set_result(connected)
