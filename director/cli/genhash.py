"""genhash: the MD5 digest of a web page's body, for HTTP_GET / SSL_GET ``digest``.

The same command line, output and exit codes as keepalived 2.2.7's genhash (measured
side by side in tests/netns/test_genhash.py): usage errors go to stderr with exit 1;
the digest, or keepalived's message for a network failure, goes to stdout with exit 0;
``-v`` adds keepalived's hex dumps, banners and response time. The digest covers what
keepalived hashes (see checkers.http_wire): the raw bytes after the header block,
chunked framing included, cut at ``Content-Length:`` when present.

Deliberate differences from keepalived 2.2.7:
- ``-t`` is one deadline for the whole exchange (keepalived re-arms it on every read,
  so a server dribbling bytes can hold it forever); the message still names the phase
  the deadline interrupted. Without ``-t`` the deadline is keepalived's (2^32 - 1) us.
  Large ``-t`` values are taken as given (keepalived wraps them modulo 2^32 us).
- A connect() that fails at once for another reason than "no route" (EACCES from a
  ``prohibit`` route, EINVAL from a ``blackhole`` one) prints ``Error connecting: ...``;
  keepalived retries such a connect forever without a word.
- A long option missing its argument at the end of the line prints its name
  (keepalived prints stray memory there).
- A url or virtualhost with a CR, LF or NUL is refused (``invalid url``).
- ``-t 0`` times out before the connection is made ("Timeout connecting"); keepalived
  still completes a loopback connect first ("Timeout WEB write").
- Run as a console script, the usage line names the program by its base name.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from checkers.http_client import Failure, HttpResult, fetch
from checkers.http_wire import KEEPALIVED_HEADER_LIMIT, BodyData, Event, ResponseHead

USAGE = """\
Usage: {prog} COMMAND [OPTIONS]
Commands:
   -s server-address -p port -u url
   -S -s server-address -p port -u url
   -h

Options:
Either long or short options are allowed.
   --use-ssl         -S       Use SSL connection to remote server.
   --use-sni         -I       Use SNI during SSL handshake (uses virtualhost setting; see -V).
   --server          -s       Use the specified remote server address.
   --port            -p       Use the specified remote server port.
   --url             -u       Use the specified remote server url.
   --use-virtualhost -V       Use the specified virtualhost in GET query.
   --verbose         -v       Use verbose mode output.
   --help            -h       Display this short inlined help screen.
   --fwmark          -m       Use the specified FW mark.
   --protocol        -P       Use the specified HTTP protocol - '1.0', 1.0c', '1.1'.
                                1.0c means 1.0 with 'Connection: close'
   --timeout         -t       Timeout in seconds
"""

# keepalived's connection timeout when -t is not given: UINT_MAX microseconds.
DEFAULT_TIMEOUT = (2**32 - 1) / 1_000_000
# keepalived reads into a 4096-byte buffer, one byte kept for a NUL.
READ_SIZE = 4095

SHORT_OPTIONS = {"h": False, "v": False, "S": False, "I": False, "s": True, "V": True,
                 "p": True, "u": True, "m": True, "P": True, "t": True}
LONG_OPTIONS = {"use-ssl": "S", "use-sni": "I", "server": "s", "port": "p", "url": "u",
                "use-virtualhost": "V", "verbose": "v", "help": "h", "fwmark": "m",
                "protocol": "P", "timeout": "t"}
PROTOCOLS = {"1.0": "1.0", "1.0c": "1.0C", "1.0C": "1.0C", "1.1": "1.1"}
C_SPACE = " \t\n\v\f\r"

# What keepalived prints (stdout) when a check fails, by how it failed.
FAILURE_MESSAGES = {
    Failure.UNREACHABLE: "HTTP_CHECK - network unreachable",
    Failure.CONNECT_TIMEOUT: "Timeout connecting",
    Failure.CONNECT_FAILED: "Connection failed",
    Failure.TLS_TIMEOUT: "Timeout connecting",
    Failure.TLS_FAILED: "SSL handshake/communication error connecting to",
    Failure.WRITE_TIMEOUT: "Timeout WEB write",
    Failure.WRITE_FAILED: "Cannot send get request to",
    Failure.READ_FAILED: "Read error with",
    Failure.TLS_CLOSED: "SSL read error from",
}
NO_DATA = "no data received from remote webserver"


def _banner(title: str) -> bytes:
    return f"-----------------------[{title}]-----------------------\n".encode()


HTTP_HEADER_HEXA = _banner("    HTTP Header Buffer    ")
HTTP_HEADER_ASCII = _banner(" HTTP Header Ascii Buffer ")
HTML_HEADER_HEXA = _banner("        HTML Buffer        ")
HTML_HASH = _banner("    HTML hash resulting    ")
HTML_HASH_FINAL = _banner(" HTML hash final resulting ")


Sink = Callable[[bytes], None]


class UsageError(Exception):
    """The command line is wrong; the message (maybe empty) goes before the usage."""


@dataclass
class Options:
    server: str = ""
    port: int = 0
    url: str = ""
    tls: bool = False
    sni: bool = False
    virtualhost: str | None = None
    verbose: bool = False
    fwmark: int = 0
    protocol: str = "1.0"
    timeout: float = DEFAULT_TIMEOUT


# ---------------------------------------------------------------- command line


def _getopt(args: Sequence[str]) -> tuple[list[tuple[str, str | None, str]], list[str]]:
    """GNU getopt_long over `args`, keepalived's option table: returns the options in
    order as (letter, argument, error) with letter "?" (unknown) or ":" (argument
    missing) and the error text, and the operands. Options and operands may mix, ``--``
    ends the options (unless POSIXLY_CORRECT asks for the first operand to)."""
    found: list[tuple[str, str | None, str]] = []
    operands: list[str] = []
    posix = "POSIXLY_CORRECT" in os.environ
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            operands += args[i:]
            break
        if not arg.startswith("-") or arg == "-":
            operands.append(arg)
            if posix:
                operands += args[i:]
                break
            continue
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            matches = [name] if name in LONG_OPTIONS else \
                [n for n in LONG_OPTIONS if n.startswith(name)]
            if len(matches) != 1:
                found.append(("?", None, f"Unknown option {arg}"))
                continue
            letter = LONG_OPTIONS[matches[0]]
            if not SHORT_OPTIONS[letter]:
                found.append((letter, None, "") if not eq else
                             ("?", None, f"Unknown option {arg}"))
            elif eq:
                found.append((letter, value, ""))
            elif i < len(args):
                found.append((letter, args[i], ""))
                i += 1
            else:
                found.append((":", None, f"Missing parameter for option --{matches[0]}"))
            continue
        at = 1
        while at < len(arg):
            letter = arg[at]
            at += 1
            if letter not in SHORT_OPTIONS:
                found.append(("?", None, f"Unknown option -{letter}"))
            elif not SHORT_OPTIONS[letter]:
                found.append((letter, None, ""))
            elif at < len(arg):
                found.append((letter, arg[at:], ""))
                break
            elif i < len(args):
                found.append((letter, args[i], ""))
                i += 1
                break
            else:
                found.append((":", None, f"Missing parameter for option -{letter}"))
    return found, operands


def _strtol_whole(text: str) -> int | None:
    """C strtol(text, &end, 10) with *end required to be NUL; None when it is not."""
    body = text.lstrip(C_SPACE)
    digits = body[1:] if body[:1] in ("+", "-") else body
    if not text:
        return 0
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    return -int(digits) if body[:1] == "-" else int(digits)


def _unsigned(text: str, *, empty_is_zero: bool) -> int | None:
    """keepalived's reading of -t and -m: strtoul after leading blanks, no minus sign,
    no trailing text; None when invalid. (keepalived takes an empty -m as 0, not -t.)"""
    start = text.lstrip(" \t")
    if not start:
        return 0 if empty_is_zero else None
    if start[0] == "-":
        return None
    value = _strtol_whole(start)
    if value is None:
        return None
    return min(value, 2**64 - 1) if value >= 0 else value % 2**64


def parse_args(args: Sequence[str]) -> Options:
    """The options of a genhash command line (without the program name). Raises
    UsageError carrying the messages keepalived prints before its usage text."""
    if len(args) <= 1:
        raise UsageError("")
    options = Options()
    given: set[str] = set()
    messages: list[str] = []
    found, operands = _getopt(args)
    for letter, value, error in found:
        if letter in "?:":
            messages.append(error)
            continue
        if letter == "h":
            raise UsageError("\n".join(messages))
        _apply(options, letter, value, messages)
        given.add(letter)
    if messages:
        raise UsageError("\n".join(messages))
    if operands:
        raise UsageError("Unexpected argument(s): " + " ".join(operands))
    if not {"s", "p", "u"} <= given:
        raise UsageError("")
    return options


def _apply(options: Options, letter: str, value: str | None, messages: list[str]) -> None:
    """Take one option; raise UsageError (after the messages so far) on a bad value."""
    def bad(text: str) -> UsageError:
        return UsageError("\n".join([*messages, text]))

    assert value is not None or not SHORT_OPTIONS[letter]
    if letter == "v":
        options.verbose = True
    elif letter == "S":
        options.tls = True
    elif letter == "I":
        options.sni = True
    elif letter == "s":
        address = _ip_literal(value or "")
        if address is None:
            raise bad(f"server should be an IP, not {value}")
        options.server = address
    elif letter == "V":
        options.virtualhost = value
    elif letter == "p":
        port = _strtol_whole(value or "")
        if port is None or not 0 < port <= 65535:
            raise bad(f"invalid port number '{value}'")
        options.port = port
    elif letter == "u":
        options.url = value or ""
    elif letter == "m":
        mark = _unsigned(value or "", empty_is_zero=True)
        if mark is None:
            raise bad(f"invalid fwmark '{value}'")
        options.fwmark = mark % 2**32
    elif letter == "P":
        if value not in PROTOCOLS:
            raise bad(f"invalid HTTP protocol version '{value}'")
        options.protocol = PROTOCOLS[value]
    elif letter == "t":
        seconds = _unsigned(value or "", empty_is_zero=False)
        if seconds is None:
            raise bad(f"invalid timeout '{value}'")
        options.timeout = float(seconds)


def _ip_literal(text: str) -> str | None:
    """The address as inet_ntop writes it, when inet_pton takes `text` (no names, no
    scope ids, no brackets), else None."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            return socket.inet_ntop(family, socket.inet_pton(family, text))
        except (OSError, ValueError, UnicodeError):
            continue
    return None


# ---------------------------------------------------------------- output


def hexdump(data: bytes) -> bytes:
    """keepalived's dump_buffer: 16 bytes a line, decimal offsets, ASCII at the right."""
    lines = []
    for offset in range(0, len(data), 16):
        row = data[offset:offset + 16]
        cells = []
        for i in range(16):
            cells.append(f"{row[i]:02x} " if i < len(row) else "   ")
            if i == 7:
                cells.append("- ")
        text = "".join(chr(c) if 32 <= c < 127 else "." for c in row)
        lines.append(f"{offset:04d}  {''.join(cells)}  {text:<16}\n")
    return "".join(lines).encode("ascii")


class VerboseDump:
    """Writes what keepalived's genhash -v writes as each read arrives."""

    def __init__(self, out: Sink):
        self.out = out
        self.extracted = False

    def on_read(self, data: bytes, events: list[Event]) -> None:
        text = bytearray()
        if not self.extracted:
            text += HTTP_HEADER_HEXA
        for event in events:
            if isinstance(event, ResponseHead):
                self.extracted = True
                text += hexdump(event.raw) + HTTP_HEADER_ASCII
                text += event.raw.split(b"\0", 1)[0] + b"\n"  # printed as a C string
                first = next((e for e in events if isinstance(e, BodyData)), None)
                if first is not None and first.digested:
                    text += HTML_HEADER_HEXA
            elif isinstance(event, BodyData) and event.digested:
                text += hexdump(event.data[:event.digested])
        self.out(bytes(text))

    def digest(self, digest: bytes) -> None:
        self.out(b"\n" + HTML_HASH + hexdump(digest) + HTML_HASH_FINAL)


def report(options: Options, result: HttpResult, verbose: VerboseDump | None,
           out: Sink, err: Sink) -> None:
    """keepalived's last words for `result`: the digest, or why there is none."""
    # keepalived dumps the digest when the stream ends: a TCP close, or for TLS only a
    # close_notify (not a close without one, nor a read error).
    ended = result.failure in (None, Failure.NO_RESPONSE, Failure.HEADERS_TOO_LARGE,
                               Failure.TLS_CLOSED)
    if options.tls:
        ended = ended and result.tls_close_notify
    if verbose is not None and ended:
        verbose.digest(bytes.fromhex(result.digest) if result.digest
                       else hashlib.md5(b"").digest())
    if result.failure is None:
        out(f"{result.digest}\n".encode())
    elif result.failure in (Failure.NO_RESPONSE, Failure.HEADERS_TOO_LARGE):
        err(f"{NO_DATA}\n".encode())
    elif result.failure is Failure.READ_TIMEOUT:
        if options.tls:
            out(b"Timeout SSL read\n")
        else:
            out(b"Timeout HTTP read\n" if result.bytes_received else b"Timeout WEB read\n")
    elif result.failure is Failure.CONNECT_ERROR:
        out(f"Error connecting: {result.reason.partition(': ')[2]}\n".encode())
    elif result.failure in FAILURE_MESSAGES:
        out(f"{FAILURE_MESSAGES[result.failure]}\n".encode())
    else:
        out(f"{result.reason}\n".encode())


async def genhash(options: Options, out: Sink, err: Sink) -> None:
    """Fetch and report, as keepalived's genhash does."""
    started = time.monotonic()
    verbose = VerboseDump(out) if options.verbose else None
    result = await fetch(
        options.server, options.port, options.url, tls=options.tls,
        sni=options.virtualhost if options.sni else None, virtualhost=options.virtualhost,
        protocol=options.protocol, timeout=options.timeout, body_limit=None,
        fwmark=options.fwmark or None, strict=False, max_header_size=KEEPALIVED_HEADER_LIMIT,
        read_size=READ_SIZE, on_read=verbose.on_read if verbose else None)
    report(options, result, verbose, out, err)
    if verbose is not None:
        usecs = int((time.monotonic() - started) * 1_000_000)
        out(f"\nGlobal response time for [{options.url}] = {usecs} usecs\n".encode(
            "utf-8", "surrogateescape"))


def _sink(stream: object) -> Sink:
    """Write bytes to a text stream's binary buffer as they come."""
    def write(data: bytes) -> None:
        if not data:
            return
        buffer = getattr(stream, "buffer", None)
        if buffer is None:  # a text-only stream: keep the bytes readable
            stream.write(data.decode("utf-8", "surrogateescape"))  # type: ignore[attr-defined]
            return
        stream.flush()  # type: ignore[attr-defined]
        buffer.write(data)
        buffer.flush()
    return write


def main(argv: Sequence[str] | None = None) -> int:
    """Run genhash with `argv` (default: sys.argv[1:]); returns the exit code."""
    if argv is None:
        prog = os.path.basename(sys.argv[0]) or "genhash"
        args = list(sys.argv[1:])
    else:
        prog, args = "genhash", list(argv)
    try:
        options = parse_args(args)
        for value in (options.url, options.virtualhost or ""):
            if any(c in value for c in "\r\n\0"):
                raise UsageError(f"invalid url or virtualhost {value!r}: line break or NUL")
    except UsageError as exc:
        message = str(exc)
        text = (message + "\n" if message else "") + USAGE.format(prog=prog)
        _sink(sys.stderr)(text.encode("utf-8", "surrogateescape"))
        return 1
    with contextlib.suppress(KeyboardInterrupt):  # keepalived's genhash ends quietly
        asyncio.run(genhash(options, _sink(sys.stdout), _sink(sys.stderr)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
