"""SMTP_CHECK: an SMTP conversation with every host of the checker, as keepalived
2.2.7 has it.

For each host in turn (``SmtpCheck.hosts``, else the checker's own connection), one
after the other, stopping at the first failure:
  connect; read the banner, which must be 220; send ``HELO <helo_name>``, whose reply
  must be 250; send ``QUIT`` and read its reply (any reply: keepalived does not judge
  it, but the server must answer).
Each step (connect, each reply) has its own connect_timeout, as in keepalived; a reply
must be complete within it even if it arrives a byte at a time. The check passes only
when every host passed.

Replies are read as RFC 5321 says: ``220-...`` lines continue a reply up to the line
with ``220 `` (keepalived reads only the first line of a multi-line banner and then
takes the banner's next line for the HELO reply, failing such servers; we do not).
`ReplyReader` is the sans-IO part: bytes in, whole replies out.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass

from checkers.probe import ProbeContext, ProbeResult
from checkers.probe_sockets import (
    Endpoint,
    ProbeFailure,
    connect_stream,
    endpoint,
    seconds,
    strerror,
)
from checkers.spec import SmtpCheck

MAX_LINE = 2048         # bytes in one reply line (RFC 5321 allows 512)
MAX_REPLY_LINES = 100   # lines in one multi-line reply
_READ_SIZE = 4096
_EXCERPT = 60


class SmtpReplyError(ValueError):
    """Bytes that are not an SMTP reply."""

    def __init__(self, message: str, line: bytes):
        super().__init__(message)
        self.line = line


@dataclass(frozen=True, slots=True)
class SmtpReply:
    code: int
    lines: tuple[bytes, ...]  # each without its line ending

    @property
    def text(self) -> str:
        """The reply's last line, as people read it in reasons."""
        return excerpt(self.lines[-1])


def excerpt(data: bytes) -> str:
    """Up to 60 characters of what a server sent, printable, in double quotes."""
    text = data.decode("utf-8", "replace").strip()
    text = "".join(c if c.isprintable() else "." for c in text)
    if len(text) > _EXCERPT:
        text = text[:_EXCERPT] + "..."
    return f'"{text}"'


class ReplyReader:
    """Collects SMTP replies from a byte stream: `feed` bytes, then `reply()` returns
    the next whole reply (None until one is complete). Raises SmtpReplyError on a line
    that does not start with three digits, a line longer than MAX_LINE or a reply of
    more than MAX_REPLY_LINES lines."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._lines: list[bytes] = []

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def reply(self) -> SmtpReply | None:
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:
                    raise SmtpReplyError(f"a reply line longer than {MAX_LINE} bytes",
                                         bytes(self._buffer[:MAX_LINE]))
                return None
            line = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[:end + 1]
            if len(line) > MAX_LINE:
                raise SmtpReplyError(f"a reply line longer than {MAX_LINE} bytes", line)
            if len(line) < 3 or not line[:3].isdigit():
                raise SmtpReplyError("not an SMTP reply", line)
            self._lines.append(line)
            if line[3:4] == b"-":
                if len(self._lines) >= MAX_REPLY_LINES:
                    raise SmtpReplyError(f"a reply of more than {MAX_REPLY_LINES} lines",
                                         line)
                continue
            lines, self._lines = tuple(self._lines), []
            return SmtpReply(int(lines[0][:3]), lines)


async def probe_smtp(spec: SmtpCheck, context: ProbeContext) -> ProbeResult:
    started = time.monotonic()
    try:
        hosts = _endpoints(spec)
        summaries = [await _check_host(where, timeout, spec.helo_name)
                     for where, timeout in hosts]
        if len(summaries) == 1:
            ok, reason = True, summaries[0]
        else:
            ok, reason = True, ("SMTP banner, HELO and QUIT answered by "
                                + ", ".join(where.target for where, _ in hosts))
    except ProbeFailure as failure:
        ok, reason = False, str(failure)
    return ProbeResult(ok, reason, time.monotonic() - started)


def _endpoints(spec: SmtpCheck) -> list[tuple[Endpoint, float]]:
    if spec.hosts:
        return [(endpoint(h.connect_ip, h.connect_port, bindto=h.bindto,
                          bind_port=h.bind_port, bind_if=h.bind_if, fwmark=h.fwmark,
                          require_port=True),
                 h.connect_timeout) for h in spec.hosts]
    return [(endpoint(spec.connect_ip, spec.connect_port, bindto=spec.bindto,
                      bind_port=spec.bind_port, bind_if=spec.bind_if, fwmark=spec.fwmark,
                      require_port=True),
             spec.connect_timeout)]


async def _check_host(where: Endpoint, timeout: float, helo_name: str) -> str:
    """One host's conversation; its summary, or ProbeFailure."""
    sock = await connect_stream(where, timeout)
    try:
        loop = asyncio.get_running_loop()
        reader = ReplyReader()
        banner = await _read_reply(loop, sock, reader, where, timeout, "banner")
        if banner.code != 220:
            raise ProbeFailure(f"SMTP banner {banner.code} from {where.target}: {banner.text}")
        await _send(loop, sock, f"HELO {helo_name}\r\n".encode(), where, timeout, "HELO")
        helo = await _read_reply(loop, sock, reader, where, timeout, "reply to HELO")
        if helo.code != 250:
            raise ProbeFailure(f"SMTP HELO reply {helo.code} from {where.target}: {helo.text}")
        await _send(loop, sock, b"QUIT\r\n", where, timeout, "QUIT")
        quit_ = await _read_reply(loop, sock, reader, where, timeout, "reply to QUIT")
        return (f"SMTP banner {banner.code}, HELO {helo.code}, QUIT {quit_.code} "
                f"from {where.target}")
    finally:
        sock.close()


async def _send(loop: asyncio.AbstractEventLoop, sock: socket.socket, data: bytes,
                where: Endpoint, timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_sendall(sock, data)
    except TimeoutError:
        raise ProbeFailure(f"SMTP {what} not sent to {where.target} within "
                           f"{seconds(timeout)} s") from None
    except OSError as exc:
        raise ProbeFailure(f"SMTP {what} not sent to {where.target}: "
                           f"{strerror(exc.errno)}") from None


async def _read_reply(loop: asyncio.AbstractEventLoop, sock: socket.socket,
                      reader: ReplyReader, where: Endpoint, timeout: float,
                      stage: str) -> SmtpReply:
    """The next whole reply within `timeout` (from now, however the bytes dribble in)."""
    no_reply = "no SMTP banner" if stage == "banner" else f"no SMTP {stage}"
    try:
        async with asyncio.timeout(timeout) as scope:
            while True:
                reply = reader.reply()
                if reply is not None:
                    return reply
                data = await loop.sock_recv(sock, _READ_SIZE)
                if not data:
                    raise ProbeFailure(f"SMTP connection closed by {where.target} "
                                       f"before the {stage}")
                reader.feed(data)
    except SmtpReplyError as exc:
        raise ProbeFailure(f"SMTP {stage} from {where.target} is {exc}: "
                           f"{excerpt(exc.line)}") from None
    except OSError as exc:  # TimeoutError is one too
        if isinstance(exc, TimeoutError) and scope.expired():
            raise ProbeFailure(f"{no_reply} from {where.target} within "
                               f"{seconds(timeout)} s") from None
        raise ProbeFailure(f"SMTP connection to {where.target} failed before the {stage}: "
                           f"{strerror(exc.errno)}") from None
