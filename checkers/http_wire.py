"""HTTP/1.x for HTTP_GET, SSL_GET and genhash, sans-IO: request bytes and a response parser.

No sockets and no clock here: `build_request` returns the bytes to send, and a
`ResponseParser` is fed the bytes received (split anywhere, down to one byte at a time)
and returns events: one `ResponseHead`, `BodyData` per feed, one `ResponseEnd`.
Problems raise `ResponseError` with a `Problem` kind and a message a person can act on.

What the digest covers, as in keepalived 2.2.7 (its checker and its genhash alike):
the raw bytes that follow the first CRLF CRLF of the response. A chunked body is *not*
de-chunked: chunk-size lines and CRLFs are hashed with the data. When the header block
contains the exact text ``Content-Length:`` (keepalived finds it as a case-sensitive
substring and reads it with ``atoi``), hashing stops after that many bytes; a header
spelled ``content-length:`` does not limit it. Digests made by keepalived's genhash
therefore match ours for the same bytes, and the other way round.

Two modes:
- ``strict=True`` (health checks): the status line, header lines, Content-Length and
  chunk framing must be well formed, and the parser knows where the message ends
  (Content-Length, the last chunk, or 204/304/1xx), so a reader can stop without
  waiting for the server to close. A body cut short is an error.
- ``strict=False`` (keepalived's leniency, used by genhash): anything with a CRLF CRLF
  is a response; the status code is keepalived's ``atoi`` of the second word (0 if
  none); framing problems are only recorded in `ResponseParser.framing_problem`, and the
  body ends when the connection closes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum

HEADER_END = b"\r\n\r\n"
# keepalived reads the header into a 4096-byte buffer it keeps NUL-terminated: a header
# block (with whatever body bytes arrived with it) must end within 4095 bytes.
KEEPALIVED_HEADER_LIMIT = 4095
DEFAULT_MAX_HEADER_SIZE = 64 * 1024
MAX_CHUNK_LINE = 1024  # a chunk-size line or trailer line longer than this is junk
USER_AGENT = b"KeepAliveClient"

_PROTOCOLS = {"1.0": (b"HTTP/1.0", False), "1.0C": (b"HTTP/1.0", True),
              "1.1": (b"HTTP/1.1", True)}
_TEXT = rb"[^\x00-\x08\x0a-\x1f\x7f]"  # visible bytes, space, tab and obs-text
_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?: (" + _TEXT + rb"*))?")
_HEADER_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(" + _TEXT + rb"*?)[ \t]*")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;" + _TEXT + rb"*)?")
_C_SPACE = b" \t\n\v\f\r"


class Problem(StrEnum):
    """Why a response could not be read (values double as machine-readable reasons)."""

    MALFORMED = "malformed"                  # not HTTP, or broken framing
    HEADERS_TOO_LARGE = "headers-too-large"  # no end of headers within the cap
    BODY_TOO_LARGE = "body-too-large"        # more body than the caller allows
    NO_RESPONSE = "no-response"              # closed before the end of the headers
    TRUNCATED = "truncated"                  # closed before the framed end of the body


class ResponseError(Exception):
    """The response is unusable; `kind` says why, the message says it for people."""

    def __init__(self, kind: Problem, message: str):
        super().__init__(message)
        self.kind = kind


# ---------------------------------------------------------------- request


def _as_bytes(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")


def build_request(path: str | bytes, host: str, port: int, *,
                  virtualhost: str | bytes | None = None, protocol: str = "1.0") -> bytes:
    """The GET request keepalived sends for `path` to `host` (an IP address) and `port`.

    `protocol` is "1.0", "1.0C" (HTTP/1.0 with ``Connection: close``) or "1.1" (which
    always adds ``Connection: close``); case does not matter. The Host header is the
    virtualhost as given (no port), else ``IP:PORT`` with an IPv6 address in brackets.
    """
    try:
        version, close = _PROTOCOLS[str(protocol).upper()]
    except KeyError:
        raise ValueError(f"unknown HTTP protocol {protocol!r} (1.0, 1.0C or 1.1)") from None
    raw_path = _as_bytes(path)
    if virtualhost is not None:
        host_value = _as_bytes(virtualhost)
    else:
        literal = host.encode("ascii")
        host_value = (b"[%s]:%d" if ":" in host else b"%s:%d") % (literal, port)
    for what, value in (("path", raw_path), ("virtualhost", host_value)):
        if any(c in value for c in b"\r\n\0"):
            raise ValueError(f"{what} contains a line break or NUL: {value!r}")
    return (b"GET " + raw_path + b" " + version + b"\r\n"
            + b"User-Agent: " + USER_AGENT + b"\r\n"
            + (b"Connection: close\r\n" if close else b"")
            + b"Host: " + host_value + b"\r\n\r\n")


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """The status line and headers. `status` is 0 when a lenient parse found none."""

    status: int
    reason: str
    version: str                          # "HTTP/1.1"; "" when the line had none
    headers: tuple[tuple[str, str], ...]  # names as sent, values stripped
    raw: bytes                            # the header block, blank line included

    def header(self, name: str) -> str | None:
        """The last value of header `name` (case-insensitive), or None."""
        lname = name.lower()
        found = None
        for key, value in self.headers:
            if key.lower() == lname:
                found = value
        return found


@dataclass(frozen=True, slots=True)
class BodyData:
    """Body bytes of one feed, as received; the first `digested` of them were hashed."""

    data: bytes
    digested: int


@dataclass(frozen=True, slots=True)
class ResponseEnd:
    """The response is over. `complete`: its framing was satisfied (always true for a
    body that runs until the connection closes)."""

    complete: bool


Event = ResponseHead | BodyData | ResponseEnd


# ---------------------------------------------------------------- keepalived's arithmetic


def _c_strtol(text: bytes) -> int:
    """C strtol(text, NULL, 10): leading space, a sign, digits; 0 without digits;
    clamped to a 64-bit long."""
    text = text.lstrip(_C_SPACE)
    sign = 1
    if text[:1] in (b"+", b"-"):
        sign = -1 if text[:1] == b"-" else 1
        text = text[1:]
    digits = re.match(rb"\d*", text).group()
    value = sign * int(digits) if digits else 0
    return max(-(2**63), min(2**63 - 1, value))


def keepalived_content_length(header_block: bytes) -> int | None:
    """How many body bytes keepalived hashes, None for all of them.

    keepalived looks for the substring ``Content-Length:`` (case-sensitive, anywhere in
    the NUL-terminated header text) and converts what follows with atoi into a size_t;
    -1 (and anything that wraps to it) means "no length".
    """
    text = header_block.split(b"\0", 1)[0]
    at = text.find(b"Content-Length:")
    if at < 0:
        return None
    as_int = (_c_strtol(text[at + len(b"Content-Length:"):]) + 2**31) % 2**32 - 2**31
    as_size = as_int % 2**64
    return None if as_size == 2**64 - 1 else as_size


def keepalived_status_code(header_block: bytes) -> int:
    """keepalived's status code: atoi of what lies between the first and second space."""
    first = header_block.find(b" ")
    if first < 0:
        return 0
    word = header_block[first + 1:].split(b" ", 1)[0]
    return (_c_strtol(word) + 2**31) % 2**32 - 2**31


# ---------------------------------------------------------------- framing


class _Framing:
    """Where the body ends: a length, chunked coding, or the connection's close.

    `feed` returns how many of the bytes belong to the message; it raises
    ResponseError(MALFORMED) on broken chunk framing.
    """

    def __init__(self, length: int | None, chunked: bool):
        self.length = length          # None: not length-framed
        self.chunked = chunked
        self.received = 0
        self.done = length == 0 and not chunked
        self._line = bytearray()      # partial chunk-size or trailer line
        self._state = "size"          # size, data, data-crlf, trailer
        self._left = 0                # bytes left in the current chunk (or CRLF)

    def feed(self, data: bytes) -> int:
        if self.done:
            return 0
        if not self.chunked:
            if self.length is None:
                self.received += len(data)
                return len(data)
            take = min(len(data), self.length - self.received)
            self.received += take
            self.done = self.received == self.length
            return take
        at = 0
        while at < len(data) and not self.done:
            if self._state == "data":
                take = min(len(data) - at, self._left)
                at += take
                self._left -= take
                if not self._left:
                    self._state, self._left = "data-crlf", 2
            elif self._state == "data-crlf":
                expected = b"\r\n"[2 - self._left]
                if data[at] != expected:
                    raise ResponseError(Problem.MALFORMED,
                                        "chunk data not followed by CRLF (bad chunk size?)")
                at += 1
                self._left -= 1
                if not self._left:
                    self._state = "size"
            else:
                at = self._feed_line(data, at)
        return at

    def _feed_line(self, data: bytes, at: int) -> int:
        end = data.find(b"\n", at)
        stop = len(data) if end < 0 else end + 1
        self._line += data[at:stop]
        if len(self._line) > MAX_CHUNK_LINE:
            what = "chunk size line" if self._state == "size" else "trailer line"
            raise ResponseError(Problem.MALFORMED,
                                f"{what} longer than {MAX_CHUNK_LINE} bytes: "
                                f"{_show(bytes(self._line))}")
        if end < 0:
            return stop
        line = bytes(self._line)
        self._line.clear()
        if not line.endswith(b"\r\n"):
            raise ResponseError(Problem.MALFORMED, f"bare LF in chunk framing: {_show(line)}")
        line = line[:-2]
        if self._state == "trailer":
            if not line:
                self.done = True
            elif not _HEADER_LINE.fullmatch(line):
                raise ResponseError(Problem.MALFORMED, f"bad chunk trailer line: {_show(line)}")
            return stop
        match = _CHUNK_SIZE.fullmatch(line)
        if not match:
            raise ResponseError(Problem.MALFORMED, f"bad chunk size line: {_show(line)}")
        size = int(match.group(1), 16)
        self.received += size
        if size:
            self._state, self._left = "data", size
        else:
            self._state = "trailer"
        return stop

    def problem_at_eof(self) -> str | None:
        """Why the body is incomplete when the connection closes now (None: it is not)."""
        if self.done or (self.length is None and not self.chunked):
            return None
        if self.chunked:
            return "connection closed inside the chunked body (no last chunk)"
        return f"connection closed after {self.received} of {self.length} body bytes"


def _show(data: bytes, limit: int = 60) -> str:
    return repr(data[:limit]) + ("..." if len(data) > limit else "")


# ---------------------------------------------------------------- head parsing


def _parse_head_strict(block: bytes) -> ResponseHead:
    lines = block[:-4].split(b"\r\n")
    match = _STATUS_LINE.fullmatch(lines[0])
    if not match:
        raise ResponseError(Problem.MALFORMED, f"HTTP status line malformed: {_show(lines[0])}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t") and headers and _HEADER_LINE.fullmatch(b"x:" + line):
            name, value = headers[-1]  # obsolete line folding: part of the previous value
            more = line.strip(b" \t").decode("latin-1")
            headers[-1] = (name, f"{value} {more}".strip())
            continue
        header = _HEADER_LINE.fullmatch(line)
        if not header:
            raise ResponseError(Problem.MALFORMED, f"HTTP header line malformed: {_show(line)}")
        headers.append((header.group(1).decode("ascii"), header.group(2).decode("latin-1")))
    reason = (match.group(4) or b"").decode("latin-1")
    return ResponseHead(status=int(match.group(3)), reason=reason,
                        version=f"HTTP/{match.group(1).decode()}.{match.group(2).decode()}",
                        headers=tuple(headers), raw=block)


def _parse_head_lenient(block: bytes) -> ResponseHead:
    lines = block[:-4].split(b"\r\n")
    first = lines[0].split(b" ", 2)
    version = first[0].decode("latin-1") if first[0].startswith(b"HTTP/") else ""
    reason = first[2].decode("latin-1") if len(first) > 2 else ""
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip():
            headers.append((name.strip().decode("latin-1"), value.strip().decode("latin-1")))
    return ResponseHead(status=keepalived_status_code(block), reason=reason, version=version,
                        headers=tuple(headers), raw=block)


def _framing_for(head: ResponseHead, strict: bool) -> tuple[_Framing, str | None]:
    """The framing of the body after `head`, and a problem found (lenient mode only)."""
    if 100 <= head.status < 200 or head.status in (204, 304):
        return _Framing(0, False), None
    codings = [c.strip().lower() for name, value in head.headers
               if name.lower() == "transfer-encoding" for c in value.split(",") if c.strip()]
    if codings:
        return _Framing(None, codings[-1] == "chunked"), None
    lengths = {v.strip() for name, value in head.headers
               if name.lower() == "content-length" for v in value.split(",")}
    if not lengths:
        return _Framing(None, False), None
    if len(lengths) == 1 and (value := lengths.pop()).isdigit() and value.isascii():
        return _Framing(int(value), False), None
    problem = f"invalid Content-Length: {head.header('content-length')!r}"
    if strict:
        raise ResponseError(Problem.MALFORMED, problem)
    return _Framing(None, False), problem


# ---------------------------------------------------------------- the parser


class ResponseParser:
    """Incremental parser of one HTTP/1.x response, with the body's MD5 as keepalived
    computes it (see the module docstring).

    `max_header_size` caps the header block (blank line included); `body_limit` caps the
    body bytes received (None: no cap); `keep_body` keeps them for `body`.
    """

    def __init__(self, *, strict: bool = True, max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
                 body_limit: int | None = None, keep_body: bool = False):
        if max_header_size < len(b"HTTP/1.0 200\r\n\r\n"):
            raise ValueError(f"max_header_size too small: {max_header_size}")
        self.strict = strict
        self.max_header_size = max_header_size
        self.body_limit = body_limit
        self.head: ResponseHead | None = None
        self.body_length = 0        # body bytes received (after the header block)
        self.digested_length = 0    # of which hashed
        self.framing_problem: str | None = None
        self.finished = False       # ResponseEnd was returned
        self.complete = False       # ... and the framing was satisfied
        self._buffer = bytearray()
        self._md5 = hashlib.md5()
        self._digest_left: int | None = None
        self._framing = _Framing(None, False)
        self._body = bytearray() if keep_body else None

    @property
    def header_room(self) -> int:
        """How many more bytes the header block may take (0 once the head is parsed)."""
        return 0 if self.head is not None else self.max_header_size - len(self._buffer)

    @property
    def digest(self) -> str:
        """MD5 (hex) of the body bytes hashed so far."""
        return self._md5.hexdigest()

    @property
    def digest_bytes(self) -> bytes:
        return self._md5.digest()

    @property
    def body(self) -> bytes | None:
        """The body as received (framing included), when `keep_body` was asked for."""
        return None if self._body is None else bytes(self._body)

    def feed(self, data: bytes) -> list[Event]:
        """Take the next received bytes; return what they completed."""
        if self.finished or not data:
            return []
        events: list[Event] = []
        if self.head is None:
            data = self._feed_head(data, events)
            if self.head is None:
                return events
        if data:
            self._feed_body(data, events)
        if self.strict and self._framing.done and not self.finished:
            self._finish(events, True)
        return events

    def feed_eof(self) -> list[Event]:
        """The connection closed (or the TLS session ended)."""
        if self.finished:
            return []
        if self.head is None:
            got = len(self._buffer)
            detail = "no data received" if not got else f"{got} bytes received"
            raise ResponseError(Problem.NO_RESPONSE,
                                f"connection closed before the end of the response headers "
                                f"({detail})")
        problem = self._framing.problem_at_eof()
        if problem and self.strict:
            raise ResponseError(Problem.TRUNCATED, problem)
        if problem and not self.framing_problem:
            self.framing_problem = problem
        events: list[Event] = []
        self._finish(events, problem is None and self.framing_problem is None)
        return events

    def _finish(self, events: list[Event], complete: bool) -> None:
        self.finished = True
        self.complete = complete
        events.append(ResponseEnd(complete))

    def _feed_head(self, data: bytes, events: list[Event]) -> bytes:
        # Look for the blank line from just before the new bytes (it may straddle feeds).
        start = max(0, len(self._buffer) - 3)
        self._buffer += data
        end = self._buffer.find(HEADER_END, start)
        if end < 0 or end + len(HEADER_END) > self.max_header_size:
            if self.strict:
                self._check_status_line_so_far()
            if len(self._buffer) >= self.max_header_size:
                raise ResponseError(Problem.HEADERS_TOO_LARGE,
                                    f"response headers exceed {self.max_header_size} bytes")
            return b""
        split = end + len(HEADER_END)
        block = bytes(self._buffer[:split])
        rest = bytes(self._buffer[split:])
        self._buffer.clear()
        head = _parse_head_strict(block) if self.strict else _parse_head_lenient(block)
        self._framing, self.framing_problem = _framing_for(head, self.strict)
        self._digest_left = keepalived_content_length(block)
        length = self._framing.length
        if (self.strict and self.body_limit is not None and length is not None
                and length > self.body_limit):
            raise ResponseError(Problem.BODY_TOO_LARGE,
                                f"response body of {length} bytes (Content-Length) exceeds "
                                f"the {self.body_limit}-byte limit")
        self.head = head
        events.append(head)
        return rest

    def _check_status_line_so_far(self) -> None:
        """Fail early on junk instead of waiting for a blank line that never comes."""
        start = bytes(self._buffer[:5])
        if not b"HTTP/".startswith(start[:5]):
            raise ResponseError(Problem.MALFORMED,
                                f"HTTP status line malformed: {_show(bytes(self._buffer))}")
        line_end = self._buffer.find(b"\r\n")
        if line_end >= 0 and not _STATUS_LINE.fullmatch(bytes(self._buffer[:line_end])):
            raise ResponseError(Problem.MALFORMED, "HTTP status line malformed: "
                                f"{_show(bytes(self._buffer[:line_end]))}")

    def _feed_body(self, data: bytes, events: list[Event]) -> None:
        if self.strict:
            data = data[:self._framing.feed(data)]
            if not data:
                return
        else:
            try:
                self._framing.feed(data)
            except ResponseError as exc:
                self.framing_problem = self.framing_problem or str(exc)
                self._framing = _Framing(None, False)
        if self.body_limit is not None and self.body_length + len(data) > self.body_limit:
            raise ResponseError(Problem.BODY_TOO_LARGE,
                                f"response body exceeded {self.body_limit} bytes")
        self.body_length += len(data)
        hashed = len(data) if self._digest_left is None else min(len(data), self._digest_left)
        if hashed:
            self._md5.update(data[:hashed])
            self.digested_length += hashed
            if self._digest_left is not None:
                self._digest_left -= hashed
        if self._body is not None:
            self._body += data
        events.append(BodyData(data, hashed))
