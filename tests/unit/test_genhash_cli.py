"""director.cli.genhash without a network: command line, usage errors, output format.

Expected texts are keepalived 2.2.7's genhash output, recorded on Debian; the netns
tier compares the two programs side by side on live servers.
"""

from __future__ import annotations

import hashlib
import sys

import pytest

from checkers.http_client import Failure, HttpResult
from checkers.http_wire import BodyData, ResponseHead
from director.cli import genhash
from director.cli.genhash import (
    DEFAULT_TIMEOUT,
    Options,
    UsageError,
    VerboseDump,
    hexdump,
    main,
    parse_args,
    report,
)

USAGE_FIRST_LINE = "Usage: genhash COMMAND [OPTIONS]"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- usage errors

@pytest.mark.parametrize("args", [(), ("-h",), ("-v",), ("-s",), ("-x",), ("-s", "127.0.0.1"),
                                  ("-s", "127.0.0.1", "-p", "80"), ("-p", "80", "-u", "/"),
                                  ("-s", "127.0.0.1", "-u", "/"), ("-I", "-u", "/")])
def test_incomplete_command_lines_print_only_the_usage(capsys, args) -> None:
    code, out, err = run(capsys, *args)
    assert code == 1
    assert out == ""
    assert err == genhash.USAGE.format(prog="genhash")
    assert err.startswith(USAGE_FIRST_LINE + "\nCommands:\n")
    assert err.endswith("   --timeout         -t       Timeout in seconds\n")


@pytest.mark.parametrize(("args", "messages"), [
    (["-s", "localhost", "-p", "80", "-u", "/"], ["server should be an IP, not localhost"]),
    (["-s", "127.1", "-p", "80", "-u", "/"], ["server should be an IP, not 127.1"]),
    (["-s", "[::1]", "-p", "80", "-u", "/"], ["server should be an IP, not [::1]"]),
    (["-s", "fe80::1%lo", "-p", "80", "-u", "/"], ["server should be an IP, not fe80::1%lo"]),
    (["-s", "127.0.0.1", "-p", "0", "-u", "/"], ["invalid port number '0'"]),
    (["-s", "127.0.0.1", "-p", "65536", "-u", "/"], ["invalid port number '65536'"]),
    (["-s", "127.0.0.1", "-p", "80 ", "-u", "/"], ["invalid port number '80 '"]),
    (["-s", "127.0.0.1", "-p", "0x50", "-u", "/"], ["invalid port number '0x50'"]),
    (["-s", "127.0.0.1", "-p", "", "-u", "/"], ["invalid port number ''"]),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "-t", ""], ["invalid timeout ''"]),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "-t", "-1"], ["invalid timeout '-1'"]),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "-t", "1.5"], ["invalid timeout '1.5'"]),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "-m", "x"], ["invalid fwmark 'x'"]),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "-m", "-1"], ["invalid fwmark '-1'"]),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "-P", "2"], ["invalid HTTP protocol version '2'"]),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "-P", "1.1k"],
     ["invalid HTTP protocol version '1.1k'"]),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "-x", "-y"],
     ["Unknown option -x", "Unknown option -y"]),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "-vx"], ["Unknown option -x"]),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "-xs"],
     ["Unknown option -x", "Missing parameter for option -s"]),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "--bogus"], ["Unknown option --bogus"]),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "--use"], ["Unknown option --use"]),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "--verbose=1"], ["Unknown option --verbose=1"]),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "-H", "md5"], ["Unknown option -H"]),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "--port"],
     ["Missing parameter for option --port"]),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "extra", "more"],
     ["Unexpected argument(s): extra more"]),
    (["-s", "127.0.0.1", "extra", "-p", "80", "-u", "/"], ["Unexpected argument(s): extra"]),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "--", "-x"], ["Unexpected argument(s): -x"]),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "-"], ["Unexpected argument(s): -"]),
    # unknown options are all reported, then nothing else; bad values stop at once
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "-x", "extra"], ["Unknown option -x"]),
    (["-x", "-s", "localhost", "-p", "80"],
     ["Unknown option -x", "server should be an IP, not localhost"]),
    (["-p", "0", "-x", "-u", "/"], ["invalid port number '0'"]),
    (["-x", "-h", "-p", "0"], ["Unknown option -x"]),
    (["-s", "-p", "80", "-u", "/"], ["server should be an IP, not -p"]),
])
def test_usage_errors(capsys, args: list[str], messages: list[str]) -> None:
    code, out, err = run(capsys, *args)
    assert code == 1
    assert out == ""
    assert err == "".join(m + "\n" for m in messages) + genhash.USAGE.format(prog="genhash")


def test_program_name_comes_from_argv0(capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/genhash", "-s", "localhost", "-u", "/"])
    assert main() == 1
    err = capsys.readouterr().err
    assert err.startswith("server should be an IP, not localhost\nUsage: genhash COMMAND")


def test_url_with_a_line_break_is_refused(capsys) -> None:
    code, out, err = run(capsys, "-s", "127.0.0.1", "-p", "80", "-u", "/a\r\nX-Evil: 1")
    assert code == 1 and out == ""
    assert err.startswith("invalid url or virtualhost '/a\\r\\nX-Evil: 1'")


# ---------------------------------------------------------------- options

def test_defaults() -> None:
    options = parse_args(["-s", "192.0.2.1", "-p", "80", "-u", "/"])
    assert options == Options(server="192.0.2.1", port=80, url="/")
    assert options.timeout == DEFAULT_TIMEOUT == 4294.967295
    assert options.protocol == "1.0" and options.virtualhost is None and not options.tls


def test_every_option_long_and_short() -> None:
    short = parse_args(["-S", "-I", "-v", "-s", "2001:DB8:0:0::1", "-p", " +443", "-u", "/a",
                        "-V", "www.example.test", "-m", " 7", "-P", "1.0c", "-t", " 3"])
    long_ = parse_args(["--use-ssl", "--use-sni", "--verbose", "--server=2001:DB8:0:0::1",
                        "--port", " +443", "--url=/a", "--use-virtualhost", "www.example.test",
                        "--fwmark", " 7", "--protocol", "1.0c", "--timeout", " 3"])
    expected = Options(server="2001:db8::1", port=443, url="/a", tls=True, sni=True,
                       virtualhost="www.example.test", verbose=True, fwmark=7,
                       protocol="1.0C", timeout=3.0)
    assert short == long_ == expected


def test_gnu_getopt_forms() -> None:
    assert parse_args(["-vs127.0.0.1", "-p80", "-u/x"]) == \
        Options(server="127.0.0.1", port=80, url="/x", verbose=True)
    assert parse_args(["--serv", "127.0.0.1", "--po", "80", "--ur", "/"]).port == 80
    assert parse_args(["-s", "127.0.0.1", "-p", "80", "-u", "/x", "-u", "/y"]).url == "/y"
    assert parse_args(["-s", "127.0.0.1", "-p", "80", "-u", "/", "-m", ""]).fwmark == 0
    assert parse_args(["-s", "127.0.0.1", "-p", "80", "-u", "/", "-V", ""]).virtualhost == ""
    assert parse_args(["-s", "::ffff:127.0.0.1", "-p", "80", "-u", "/"]).server == \
        "::ffff:127.0.0.1"


def test_posixly_correct_stops_at_the_first_operand(monkeypatch) -> None:
    monkeypatch.setenv("POSIXLY_CORRECT", "1")
    with pytest.raises(UsageError, match=r"Unexpected argument\(s\): extra -s 127.0.0.1 -p 1"):
        parse_args(["-u", "/", "extra", "-s", "127.0.0.1", "-p", "1"])


# ---------------------------------------------------------------- output

def test_hexdump_matches_keepalived() -> None:
    # lines copied from keepalived 2.2.7's genhash -v
    assert hexdump(b"HTTP/1.0 200 OK\r\n") == (
        b"0000  48 54 54 50 2f 31 2e 30 - 20 32 30 30 20 4f 4b 0d   HTTP/1.0 200 OK.\n"
        b"0016  0a                      -                           .               \n")
    assert hexdump(b"rld\n") == (
        b"0000  72 6c 64 0a             -                           rld.            \n")
    assert hexdump(b"HTTP/1.0 200 OK\r\nContent-Length: 500\r\n\r\n")[-75:] == (
        b"0032  20 35 30 30 0d 0a 0d 0a -                            500....        \n")
    assert hexdump(hashlib.md5(b"").digest()) == (
        b"0000  d4 1d 8c d9 8f 00 b2 04 - e9 80 09 98 ec f8 42 7e   ..............B~\n")
    assert hexdump(bytes(range(0x78, 0x88))).endswith(b"   xyz{|}~.........\n")
    assert hexdump(b"") == b""
    assert hexdump(bytes(4095)).splitlines()[-1].startswith(b"4080  00")


def head(raw: bytes) -> ResponseHead:
    return ResponseHead(status=200, reason="OK", version="HTTP/1.0", headers=(), raw=raw)


def test_verbose_dump_follows_keepalived_reads() -> None:
    out = bytearray()
    dump = VerboseDump(out.extend)
    raw = b"HTTP/1.0 200 OK\r\n\r\n"
    dump.on_read(raw[:10], [])                                   # header still incomplete
    dump.on_read(raw[10:] + b"ab", [head(raw), BodyData(b"ab", 2)])
    dump.on_read(b"cdef", [BodyData(b"cdef", 1)])                # Content-Length cut
    dump.on_read(b"gh", [BodyData(b"gh", 0)])                    # past Content-Length
    dump.digest(hashlib.md5(b"abc").digest())
    assert bytes(out) == (
        genhash.HTTP_HEADER_HEXA * 2 + hexdump(raw) + genhash.HTTP_HEADER_ASCII + raw + b"\n"
        + genhash.HTML_HEADER_HEXA + hexdump(b"ab") + hexdump(b"c")
        + b"\n" + genhash.HTML_HASH + hexdump(hashlib.md5(b"abc").digest())
        + genhash.HTML_HASH_FINAL)
    assert genhash.HTTP_HEADER_HEXA == (
        b"-----------------------[    HTTP Header Buffer    ]-----------------------\n")


def test_verbose_dump_without_body_in_the_first_read_has_no_html_banner() -> None:
    out = bytearray()
    dump = VerboseDump(out.extend)
    raw = b"HTTP/1.0 200 OK\r\nX: \0y\r\n\r\n"
    dump.on_read(raw, [head(raw)])
    dump.on_read(b"body", [BodyData(b"body", 4)])
    assert genhash.HTML_HEADER_HEXA not in out
    # the ASCII copy of the header stops at a NUL, as C's printf does
    assert genhash.HTTP_HEADER_ASCII + b"HTTP/1.0 200 OK\r\nX: \n" in out


PLAIN = Options(server="192.0.2.1", port=80, url="/")
TLS = Options(server="192.0.2.1", port=443, url="/", tls=True)


@pytest.mark.parametrize(("options", "result", "stdout", "stderr"), [
    (PLAIN, HttpResult(status=200, digest="ab" * 16), "ab" * 16 + "\n", ""),
    (PLAIN, HttpResult(status=404, digest="cd" * 16), "cd" * 16 + "\n", ""),
    (PLAIN, HttpResult(failure=Failure.CONNECT_FAILED), "Connection failed\n", ""),
    (PLAIN, HttpResult(failure=Failure.UNREACHABLE), "HTTP_CHECK - network unreachable\n", ""),
    (PLAIN, HttpResult(failure=Failure.CONNECT_TIMEOUT), "Timeout connecting\n", ""),
    (TLS, HttpResult(failure=Failure.TLS_TIMEOUT), "Timeout connecting\n", ""),
    (TLS, HttpResult(failure=Failure.TLS_FAILED),
     "SSL handshake/communication error connecting to\n", ""),
    (PLAIN, HttpResult(failure=Failure.WRITE_TIMEOUT), "Timeout WEB write\n", ""),
    (PLAIN, HttpResult(failure=Failure.WRITE_FAILED), "Cannot send get request to\n", ""),
    (PLAIN, HttpResult(failure=Failure.READ_TIMEOUT), "Timeout WEB read\n", ""),
    (PLAIN, HttpResult(failure=Failure.READ_TIMEOUT, bytes_received=3),
     "Timeout HTTP read\n", ""),
    (TLS, HttpResult(failure=Failure.READ_TIMEOUT), "Timeout SSL read\n", ""),
    (PLAIN, HttpResult(failure=Failure.READ_FAILED), "Read error with\n", ""),
    (TLS, HttpResult(failure=Failure.TLS_CLOSED), "SSL read error from\n", ""),
    (PLAIN, HttpResult(failure=Failure.NO_RESPONSE), "",
     "no data received from remote webserver\n"),
    (PLAIN, HttpResult(failure=Failure.HEADERS_TOO_LARGE), "",
     "no data received from remote webserver\n"),
    (PLAIN, HttpResult(failure=Failure.CONNECT_ERROR, reason="cannot connect: Invalid argument"),
     "Error connecting: Invalid argument\n", ""),
])
def test_report_prints_keepalived_messages(options, result, stdout, stderr) -> None:
    out, err = bytearray(), bytearray()
    report(options, result, None, out.extend, err.extend)
    assert (out.decode(), err.decode()) == (stdout, stderr)


@pytest.mark.parametrize(("options", "result", "dumped"), [
    (PLAIN, HttpResult(status=200, digest="00" * 16), True),
    (PLAIN, HttpResult(failure=Failure.NO_RESPONSE), True),     # EOF: digest of nothing
    (PLAIN, HttpResult(failure=Failure.READ_FAILED), False),
    (PLAIN, HttpResult(failure=Failure.READ_TIMEOUT), False),
    (TLS, HttpResult(status=200, digest="00" * 16, tls_close_notify=True), True),
    (TLS, HttpResult(status=200, digest="00" * 16), False),     # no close_notify
    (TLS, HttpResult(failure=Failure.TLS_CLOSED, tls_close_notify=True), True),
])
def test_verbose_digest_dump_only_when_keepalived_reaches_the_end(options, result,
                                                                   dumped) -> None:
    out = bytearray()
    report(options, result, VerboseDump(out.extend), out.extend, out.extend)
    assert (genhash.HTML_HASH in out) is dumped
    if dumped and result.digest is None:
        assert hexdump(hashlib.md5(b"").digest()) in out
