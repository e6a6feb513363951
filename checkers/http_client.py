"""One HTTP(S) GET for HTTP_GET, SSL_GET and genhash: a thin asyncio adapter around
`checkers.http_wire`.

`fetch()` connects (optionally from a bind address, with a firewall mark), does TLS
when asked (no certificate verification unless asked, as keepalived; SNI only when a
name is given), sends keepalived's request, reads the response and closes. ONE
deadline covers all of it: a server that dribbles its response a byte at a time is cut
off when the deadline passes, not when it pauses. It never raises for network or
protocol trouble: the `HttpResult` says what happened, with a reason a person can act
on and a `Failure` kind a program can branch on.

TLS runs over memory BIOs, so each TLS read returns at most one record, as OpenSSL's
SSL_read does for keepalived (genhash's verbose dumps show each read).
Plain HTTP is driven by the loop's readiness callbacks (`_PlainExchange`), as it runs
thousands of times a second; TLS by awaits. Both give the same phases and reasons.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import os
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from checkers.http_wire import (
    DEFAULT_MAX_HEADER_SIZE,
    Event,
    Problem,
    ResponseError,
    ResponseParser,
    build_request,
)
from checkers.probe_sockets import Endpoint, ProbeFailure, open_socket

DEFAULT_BODY_LIMIT = 16 * 1024 * 1024
DEFAULT_READ_SIZE = 64 * 1024
_TLS_RECV = 64 * 1024
_IMMEDIATE_UNREACHABLE = (errno.ENETUNREACH, errno.EHOSTUNREACH)


class Failure(StrEnum):
    """What went wrong, by phase."""

    BIND_FAILED = "bind-failed"          # the bind address could not be used
    UNREACHABLE = "unreachable"          # connect() failed at once: no route
    CONNECT_ERROR = "connect-error"      # connect() failed at once otherwise
    CONNECT_TIMEOUT = "connect-timeout"
    CONNECT_FAILED = "connect-failed"    # refused, reset, host unreachable (ARP) ...
    TLS_TIMEOUT = "tls-timeout"
    TLS_FAILED = "tls-failed"            # handshake refused, not TLS, bad certificate
    WRITE_TIMEOUT = "write-timeout"
    WRITE_FAILED = "write-failed"
    READ_TIMEOUT = "read-timeout"
    READ_FAILED = "read-failed"
    NO_RESPONSE = Problem.NO_RESPONSE.value    # closed before the end of the headers
    TLS_CLOSED = "tls-closed"            # close_notify before the end of the headers
    HEADERS_TOO_LARGE = Problem.HEADERS_TOO_LARGE.value
    MALFORMED = Problem.MALFORMED.value
    TRUNCATED = Problem.TRUNCATED.value
    BODY_TOO_LARGE = Problem.BODY_TOO_LARGE.value


@dataclass(frozen=True, slots=True)
class HttpResult:
    """The outcome of one fetch. `failure` is None when a whole response was read; the
    status code is the caller's to judge."""

    failure: Failure | None = None
    reason: str = ""                # for people; "" on success
    status: int | None = None       # None: no status line was read
    digest: str | None = None       # MD5 hex of the body as keepalived hashes it
    body_length: int = 0            # body bytes received
    elapsed: float = 0.0            # seconds from the start to the end (or failure)
    bytes_received: int = 0         # everything read, headers included
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None       # with keep_body=True
    complete: bool = False          # the body's framing was satisfied
    tls_close_notify: bool = False  # the TLS session ended with a close_notify

    @property
    def ok(self) -> bool:
        return self.failure is None


OnRead = Callable[[bytes, list[Event]], None]


class _Progress:
    """How far a fetch got: the phase a deadline would interrupt, the bytes read."""

    def __init__(self) -> None:
        self.phase = Failure.CONNECT_TIMEOUT
        self.received = 0


class _Failed(Exception):
    def __init__(self, failure: Failure, reason: str):
        super().__init__(reason)
        self.failure = failure


def _seconds(value: float) -> str:
    return str(float(value))


def _strerror(err: int) -> str:
    return os.strerror(err) if err else "unknown error"


def _tls_reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verification failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return "connection closed by the server"
    return exc.reason or exc.strerror or str(exc)


@functools.lru_cache(maxsize=64)
def tls_context(*, verify: bool = False, ca_file: str | None = None) -> ssl.SSLContext:
    """A client context: no verification (keepalived's way) unless `verify` or
    `ca_file`; with `ca_file`, only that CA is trusted, else the system's store.
    Contexts are shared between fetches (a CA file is read once per process)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # OpenSSL's own default list, as keepalived gets it, rather than Python's narrower one:
    # a check must reach the same (sometimes old) real servers keepalived reaches.
    ctx.set_ciphers("DEFAULT")
    if verify or ca_file:
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        if ca_file:
            ctx.load_verify_locations(cafile=ca_file)
        else:
            ctx.load_default_certs()
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class _Connection:
    """A connected non-blocking socket, with TLS over memory BIOs when asked."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket):
        self.loop = loop
        self.sock = sock
        self.tls: ssl.SSLObject | None = None
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.close_notify = False

    async def connect(self, address: tuple) -> None:
        err = self.sock.connect_ex(address)
        if err == 0:
            return
        if err != errno.EINPROGRESS:
            kind = Failure.UNREACHABLE if err in _IMMEDIATE_UNREACHABLE else Failure.CONNECT_ERROR
            what = "network unreachable" if kind is Failure.UNREACHABLE else "cannot connect"
            raise _Failed(kind, f"{what}: {_strerror(err)}")
        writable = self.loop.create_future()
        fd = self.sock.fileno()
        self.loop.add_writer(fd, lambda: writable.done() or writable.set_result(None))
        try:
            await writable
        finally:
            self.loop.remove_writer(fd)
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err == errno.ECONNREFUSED:
            raise _Failed(Failure.CONNECT_FAILED, "connection refused")
        if err:
            raise _Failed(Failure.CONNECT_FAILED, f"connect failed: {_strerror(err)}")

    async def start_tls(self, ctx: ssl.SSLContext, server_hostname: str | None) -> None:
        self.tls = ctx.wrap_bio(self._incoming, self._outgoing, server_side=False,
                                server_hostname=server_hostname)
        try:
            while True:
                try:
                    self.tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    pass
                await self._flush()
                await self._receive()
            await self._flush()
        except ssl.SSLError as exc:  # before OSError: it is one
            raise _Failed(Failure.TLS_FAILED,
                          f"TLS handshake failed: {_tls_reason(exc)}") from None
        except OSError as exc:
            raise _Failed(Failure.CONNECT_FAILED,
                          f"TLS handshake failed: {_strerror(exc.errno or 0)}") from None

    async def send(self, data: bytes) -> None:
        try:
            if self.tls is None:
                await self.loop.sock_sendall(self.sock, data)
            else:
                self.tls.write(data)
                await self._flush()
        except (OSError, ssl.SSLError) as exc:
            detail = _tls_reason(exc) if isinstance(exc, ssl.SSLError) else \
                _strerror(exc.errno or 0)
            raise _Failed(Failure.WRITE_FAILED, f"cannot send the request: {detail}") from None

    async def read(self, size: int) -> bytes:
        """Up to `size` bytes (at most one TLS record); b"" at the end of the stream.
        Raises OSError, or ssl.SSLError for TLS trouble other than the end."""
        if self.tls is None:
            return await self.loop.sock_recv(self.sock, size)
        while True:
            try:
                data = self.tls.read(size)
                if not data:  # Python's way of reporting close_notify
                    self.close_notify = True
                return data
            except ssl.SSLWantReadError:
                await self._flush()  # e.g. a key update answer
                await self._receive()
            except ssl.SSLZeroReturnError:
                self.close_notify = True
                return b""
            except ssl.SSLEOFError:
                return b""  # closed without close_notify: most servers do that

    async def _receive(self) -> None:
        data = await self.loop.sock_recv(self.sock, _TLS_RECV)
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    async def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            await self.loop.sock_sendall(self.sock, data)


def _make_socket(where: Endpoint) -> socket.socket:
    """A non-blocking stream socket with the fwmark, interface and bind address of
    `where` applied (the one implementation the probes share, in keepalived's order)."""
    try:
        return open_socket(where, socket.SOCK_STREAM)
    except ProbeFailure as exc:
        raise _Failed(Failure.BIND_FAILED, str(exc)) from None


async def fetch(host: str, port: int, path: str = "/", *, tls: bool = False,
                sni: str | None = None, virtualhost: str | None = None,
                protocol: str = "1.0", timeout: float = 5.0,
                body_limit: int | None = DEFAULT_BODY_LIMIT, bind: str | None = None,
                fwmark: int | None = None, verify: bool = False, ca_file: str | None = None,
                bind_port: int | None = None, bind_if: str | None = None,
                keep_body: bool = False, strict: bool = True,
                max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
                read_size: int = DEFAULT_READ_SIZE, on_read: OnRead | None = None) -> HttpResult:
    """GET `path` from `host` (an IP address) and `port`; never raises for network or
    protocol trouble.

    `protocol`: "1.0", "1.0C" or "1.1" (see `http_wire.build_request`). `sni`: the TLS
    server name to send (None: none, as keepalived without enable_sni). `verify` /
    `ca_file`: check the server certificate (against `sni`, else the IP address).
    `bind` / `bind_port` / `bind_if` / `fwmark`: the source address and port, the
    interface (SO_BINDTODEVICE) and the firewall mark of the connection.
    `timeout`: the one deadline, in seconds, for connect, TLS, request and response.
    `body_limit`: fail on a larger body (None: no limit). `strict`: see http_wire;
    with strict=False a TLS error while reading ends the response like a close, as in
    keepalived. `read_size`: the most bytes taken per read. `on_read(data, events)`
    sees every read and the parser events it produced (genhash's verbose output).

    Raises ValueError only for bad arguments: a host that is not an IP address, an
    unknown protocol, a path or virtualhost with a line break or NUL.
    """
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    parser = ResponseParser(strict=strict, max_header_size=max_header_size,
                            body_limit=body_limit, keep_body=keep_body)
    host = _canonical_host(str(host))
    request = _request(path, host, port, virtualhost, protocol)
    where = _endpoint(address=host, port=port, bindto=bind or None, bind_port=bind_port,
                      bind_if=bind_if, fwmark=fwmark or 0)
    if not tls:
        return await _fetch_plain(loop, started, where, request, parser, timeout,
                                  read_size, on_read)
    progress = _Progress()
    failure: Failure | None = None
    reason = ""
    sock: socket.socket | None = None
    conn: _Connection | None = None
    try:
        async with asyncio.timeout(timeout) as deadline:
            try:
                sock = _make_socket(where)
                conn = _Connection(loop, sock)
                await conn.connect(where.sockaddr())
                if tls:
                    progress.phase = Failure.TLS_TIMEOUT
                    server_name = sni or (host if verify or ca_file else None)
                    await conn.start_tls(tls_context(verify=verify, ca_file=ca_file),
                                         server_name)
                progress.phase = Failure.WRITE_TIMEOUT
                await conn.send(request)
                progress.phase = Failure.READ_TIMEOUT
                await _read_response(conn, parser, strict, read_size, on_read, progress)
            except _Failed as exc:
                failure, reason = exc.failure, str(exc)
    except TimeoutError:
        if not deadline.expired():
            raise
        failure = progress.phase
        reason = _timeout_reason(progress.phase, timeout, progress.received)
    finally:
        if sock is not None:
            sock.close()
    return _result(parser, failure, reason, started, progress.received,
                   conn.close_notify if conn else False)


def _timeout_reason(phase: Failure, timeout: float, received: int) -> str:
    limit = _seconds(timeout)
    if phase is Failure.CONNECT_TIMEOUT:
        return f"connect timeout after {limit} s"
    if phase is Failure.TLS_TIMEOUT:
        return f"TLS handshake timeout after {limit} s"
    if phase is Failure.WRITE_TIMEOUT:
        return f"request not sent within the {limit} s deadline"
    got = "no data received" if not received else f"{received} bytes received"
    return f"response exceeded {limit} s deadline ({got})"


async def _read_response(conn: _Connection, parser: ResponseParser, strict: bool,
                         read_size: int, on_read: OnRead | None, progress: _Progress) -> None:
    """Read until the response ends, counting into `progress`. Raises _Failed."""
    while True:
        room = parser.header_room
        size = read_size if parser.head is not None else min(read_size, room)
        try:
            data = await conn.read(size)
        except ssl.SSLError as exc:
            if not strict:
                data = b""
            else:
                raise _Failed(Failure.READ_FAILED,
                              f"TLS error while reading: {_tls_reason(exc)}") from None
        except OSError as exc:
            if not strict and conn.tls is not None:
                data = b""  # keepalived ends a TLS response on any read error
            else:
                raise _Failed(Failure.READ_FAILED,
                              f"read error: {_strerror(exc.errno or 0)}") from None
        if _take(data, parser, on_read, progress, conn.close_notify):
            return


def _take(data: bytes, parser: ResponseParser, on_read: OnRead | None, progress: _Progress,
          close_notify: bool = False) -> bool:
    """Feed one read (b"": the end of the stream) to `parser`; True once the response is
    over. Raises _Failed."""
    if not data:
        try:
            parser.feed_eof()
        except ResponseError as exc:
            if exc.kind is Problem.NO_RESPONSE and close_notify:
                raise _Failed(Failure.TLS_CLOSED, "TLS session closed (close_notify) "
                              "before the end of the response headers") from None
            raise _Failed(Failure(exc.kind.value), str(exc)) from None
        return True
    progress.received += len(data)
    problem: ResponseError | None = None
    try:
        events = parser.feed(data)
    except ResponseError as exc:
        events, problem = [], exc
    if on_read is not None:
        on_read(data, events)
    if problem is not None:
        raise _Failed(Failure(problem.kind.value), str(problem))
    return parser.finished


# ------------------------------------------------------------ plain HTTP, on callbacks

# connect() results that mean "in progress", as asyncio's sock_connect takes them.
_CONNECTING = frozenset({errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY, errno.EINTR})
# Reads taken per readiness callback before letting the loop (and the deadline) run.
_READS_PER_WAKEUP = 16


async def _fetch_plain(loop: asyncio.AbstractEventLoop, started: float, where: Endpoint,
                       request: bytes, parser: ResponseParser, timeout: float | None,
                       read_size: int, on_read: OnRead | None) -> HttpResult:
    """`fetch` without TLS. The loop's callbacks drive it (see `_PlainExchange`)."""
    when = None if timeout is None else loop.time() + timeout
    exchange: _PlainExchange | None = None
    failure: Failure | None = None
    reason = ""
    sock: socket.socket | None = None
    try:
        try:
            sock = _make_socket(where)
        except _Failed as exc:
            failure, reason = exc.failure, str(exc)
        else:
            exchange = _PlainExchange(loop, sock, parser, request, timeout, read_size,
                                      on_read)
            try:
                exchange.start(where.sockaddr(), when)
                await exchange.done
            finally:
                exchange.stop()
            failure, reason = exchange.failure, exchange.reason
    finally:
        if sock is not None:
            sock.close()
    return _result(parser, failure, reason, started,
                   exchange.received if exchange is not None else 0, False)


class _PlainExchange(_Progress):
    """One plain-HTTP exchange driven by readiness callbacks rather than awaits: the
    socket is watched for writing while it connects, then for reading until the
    response ends, and one timer is the deadline. Per check this saves a task switch
    and an epoll registration per read and the machinery of an asyncio.timeout;
    the outcome (phases, reasons, reads seen by `on_read`) is that of the awaiting
    code path TLS takes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 parser: ResponseParser, request: bytes, timeout: float | None,
                 read_size: int, on_read: OnRead | None):
        super().__init__()
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.parser = parser
        self.unsent: bytes | memoryview = request
        self.timeout = timeout
        self.read_size = read_size
        self.on_read = on_read
        self.done: asyncio.Future[None] = loop.create_future()
        self.failure: Failure | None = None
        self.reason = ""
        self.reading = False
        self.writing = False
        self.timer: asyncio.Handle | None = None

    def start(self, address: tuple, when: float | None) -> None:
        if when is not None:
            # A deadline already passed comes first, as asyncio.timeout makes it.
            self.timer = (self.loop.call_soon(self._expire) if when <= self.loop.time()
                          else self.loop.call_at(when, self._expire))
        err = self.sock.connect_ex(address)
        if err == 0:
            self._send()
        elif err in _CONNECTING:
            self.writing = True
            self.loop.add_writer(self.fd, self._connected)
        else:
            kind = Failure.UNREACHABLE if err in _IMMEDIATE_UNREACHABLE else Failure.CONNECT_ERROR
            what = "network unreachable" if kind is Failure.UNREACHABLE else "cannot connect"
            self._end(kind, f"{what}: {_strerror(err)}")

    def stop(self) -> None:
        """Stop watching the socket and the clock (before the socket is closed)."""
        if self.writing:
            self.writing = False
            self.loop.remove_writer(self.fd)
        if self.reading:
            self.reading = False
            self.loop.remove_reader(self.fd)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _end(self, failure: Failure | None, reason: str) -> None:
        self.stop()
        if not self.done.done():
            self.failure, self.reason = failure, reason
            self.done.set_result(None)

    def _crash(self, exc: Exception) -> None:
        self.stop()
        if not self.done.done():
            self.done.set_exception(exc)

    def _expire(self) -> None:
        self.timer = None
        phase = self.phase
        self._end(phase, _timeout_reason(phase, float(self.timeout or 0), self.received))

    def _connected(self) -> None:
        try:
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err == errno.ECONNREFUSED:
                self._end(Failure.CONNECT_FAILED, "connection refused")
            elif err:
                self._end(Failure.CONNECT_FAILED, f"connect failed: {_strerror(err)}")
            else:
                self._send()
        except Exception as exc:  # handed to the awaiting fetch
            self._crash(exc)

    def _send(self) -> None:
        self.phase = Failure.WRITE_TIMEOUT
        try:
            sent = self.sock.send(self.unsent)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._end(Failure.WRITE_FAILED,
                      f"cannot send the request: {_strerror(exc.errno or 0)}")
            return
        if sent:
            self.unsent = memoryview(self.unsent)[sent:]
        if self.unsent:
            self.writing = True
            self.loop.add_writer(self.fd, self._send_more)
            return
        if self.writing:
            self.writing = False
            self.loop.remove_writer(self.fd)
        self.phase = Failure.READ_TIMEOUT
        self.reading = True
        self.loop.add_reader(self.fd, self._readable)

    def _send_more(self) -> None:
        try:
            self._send()
        except Exception as exc:  # handed to the awaiting fetch
            self._crash(exc)

    def _readable(self) -> None:
        parser = self.parser
        try:
            for _ in range(_READS_PER_WAKEUP):
                size = (self.read_size if parser.head is not None
                        else min(self.read_size, parser.header_room))
                try:
                    data = self.sock.recv(size)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:
                    self._end(Failure.READ_FAILED, f"read error: {_strerror(exc.errno or 0)}")
                    return
                if _take(data, parser, self.on_read, self):
                    self._end(None, "")
                    return
        except _Failed as exc:
            self._end(exc.failure, str(exc))
        except Exception as exc:  # handed to the awaiting fetch
            self._crash(exc)


# Endpoints are frozen: one per server and options is enough.
_endpoint = functools.lru_cache(maxsize=16384)(Endpoint)


@functools.lru_cache(maxsize=4096)
def _canonical_host(host: str) -> str:
    """`host` as an IP address in its normal spelling (raises ValueError)."""
    return str(ipaddress.ip_address(host))


@functools.lru_cache(maxsize=16384)
def _request(path: str | bytes, host: str, port: int, virtualhost: str | None,
             protocol: str) -> bytes:
    """The request bytes, made once per url and server (raises ValueError)."""
    return build_request(path, host, port, virtualhost=virtualhost, protocol=protocol)


def _result(parser: ResponseParser, failure: Failure | None, reason: str, started: float,
            received: int, close_notify: bool) -> HttpResult:
    head = parser.head
    return HttpResult(
        failure=failure, reason=reason, status=head.status if head else None,
        digest=parser.digest if head else None, body_length=parser.body_length,
        elapsed=time.monotonic() - started, bytes_received=received,
        headers=head.headers if head else (), body=parser.body if head else None,
        complete=parser.complete, tls_close_notify=close_notify)
