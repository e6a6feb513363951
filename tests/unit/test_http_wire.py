"""checkers.http_wire: keepalived's request bytes, and the response parser fed in pieces."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checkers.http_wire import (
    KEEPALIVED_HEADER_LIMIT,
    BodyData,
    Problem,
    ResponseEnd,
    ResponseError,
    ResponseHead,
    ResponseParser,
    build_request,
    keepalived_content_length,
    keepalived_status_code,
)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def feed_all(parser: ResponseParser, data: bytes, *, step: int | None = None,
             eof: bool = True) -> list:
    events: list = []
    pieces = [data] if step is None else [data[i:i + step] for i in range(0, len(data), step)]
    for piece in pieces:
        events += parser.feed(piece)
    if eof:
        events += parser.feed_eof()
    return events


def body_of(events: list) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, BodyData))


# ---------------------------------------------------------------- requests

@pytest.mark.parametrize(("protocol", "expected"), [
    ("1.0", b"GET /a HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 192.0.2.7:8080\r\n\r\n"),
    ("1.0C", b"GET /a HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\n"
             b"Host: 192.0.2.7:8080\r\n\r\n"),
    ("1.0c", b"GET /a HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\n"
             b"Host: 192.0.2.7:8080\r\n\r\n"),
    ("1.1", b"GET /a HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\n"
            b"Host: 192.0.2.7:8080\r\n\r\n"),
])
def test_request_bytes_per_protocol(protocol: str, expected: bytes) -> None:
    assert build_request("/a", "192.0.2.7", 8080, protocol=protocol) == expected


def test_virtualhost_replaces_host_and_port() -> None:
    assert build_request("/", "192.0.2.7", 80, virtualhost="www.example.test") == (
        b"GET / HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: www.example.test\r\n\r\n")
    # keepalived sends an empty virtualhost as given
    assert b"\r\nHost: \r\n" in build_request("/", "192.0.2.7", 80, virtualhost="")


def test_ipv6_host_in_brackets_unless_virtualhost() -> None:
    assert b"\r\nHost: [2001:db8::1]:443\r\n" in build_request("/", "2001:db8::1", 443)
    assert b"\r\nHost: h.example\r\n" in build_request("/", "2001:db8::1", 443,
                                                        virtualhost="h.example")


def test_request_keeps_path_bytes() -> None:
    assert build_request("/caf\u00e9?q=1 2", "192.0.2.1", 80).startswith(
        b"GET /caf\xc3\xa9?q=1 2 HTTP/1.0\r\n")
    assert build_request(b"/\xff", "192.0.2.1", 80).startswith(b"GET /\xff HTTP/1.0\r\n")


@pytest.mark.parametrize("kwargs", [
    {"path": "/a\r\nX-Injected: 1"}, {"path": "/a\n"}, {"path": "/\0"},
    {"path": "/", "virtualhost": "h\r\nX: y"}, {"path": "/", "protocol": "2"},
])
def test_request_refuses_line_breaks_and_unknown_protocols(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        build_request(host="192.0.2.1", port=80, **kwargs)


# ---------------------------------------------------------------- parsing whole responses

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 12\r\n\r\n"
            b"hello world\n")
CHUNKED_BODY = b"3\r\nabc\r\n5;ext=1\r\ndefgh\r\n0\r\nX-Trailer: t\r\n\r\n"
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + CHUNKED_BODY


@pytest.mark.parametrize("strict", [True, False])
def test_content_length_response(strict: bool) -> None:
    parser = ResponseParser(strict=strict)
    events = feed_all(parser, RESPONSE)
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert (head.status, head.reason, head.version) == (200, "OK", "HTTP/1.1")
    assert head.header("content-type") == "text/html"
    assert head.raw == RESPONSE[:RESPONSE.index(b"\r\n\r\n") + 4]
    assert body_of(events) == b"hello world\n"
    assert events[-1] == ResponseEnd(True)
    assert parser.digest == md5(b"hello world\n")
    assert parser.body_length == 12


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("response", [RESPONSE, CHUNKED, b"HTTP/1.0 404 Not Found\r\n\r\nnope"])
def test_split_at_every_byte_gives_the_same_result(strict: bool, response: bytes) -> None:
    whole = ResponseParser(strict=strict)
    whole_events = feed_all(whole, response)
    bytewise = ResponseParser(strict=strict)
    byte_events = feed_all(bytewise, response, step=1)
    assert [e for e in byte_events if not isinstance(e, BodyData)] == \
        [e for e in whole_events if not isinstance(e, BodyData)]
    assert body_of(byte_events) == body_of(whole_events)
    assert bytewise.digest == whole.digest
    assert bytewise.complete == whole.complete


def test_strict_parser_finds_the_end_of_a_chunked_body_without_eof() -> None:
    parser = ResponseParser()
    events = feed_all(parser, CHUNKED, step=1, eof=False)
    assert events[-1] == ResponseEnd(True)
    assert parser.finished and parser.complete


def test_chunked_body_is_hashed_raw_like_keepalived() -> None:
    # keepalived hashes what follows the blank line as it came: chunk framing included.
    for strict in (True, False):
        parser = ResponseParser(strict=strict)
        feed_all(parser, CHUNKED)
        assert parser.digest == md5(CHUNKED_BODY)
        assert parser.digest != md5(b"abcdefgh")


def test_bytes_after_the_last_chunk_are_ignored_when_strict() -> None:
    parser = ResponseParser()
    events = feed_all(parser, CHUNKED + b"junk after the end")
    assert body_of(events) == CHUNKED_BODY
    assert parser.digest == md5(CHUNKED_BODY)


@pytest.mark.parametrize(("body", "message"), [
    (b"zz\r\nabc\r\n0\r\n\r\n", "bad chunk size line"),
    (b"-3\r\nabc\r\n0\r\n\r\n", "bad chunk size line"),
    (b"3\r\nabcdef\r\n0\r\n\r\n", "chunk data not followed by CRLF"),
    (b"3\nabc\r\n0\r\n\r\n", "bare LF"),
    (b"1" * 2000, "chunk size line longer than"),
    (b"0\r\n\x01bad\r\n\r\n", "bad chunk trailer line"),
])
def test_bad_chunks_fail_when_strict(body: bytes, message: str) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    with pytest.raises(ResponseError, match=message) as caught:
        feed_all(ResponseParser(), head + body, step=7)
    assert caught.value.kind is Problem.MALFORMED
    lenient = ResponseParser(strict=False)
    feed_all(lenient, head + body, step=7)
    assert lenient.digest == md5(body)  # keepalived hashes whatever came
    assert lenient.framing_problem is not None and not lenient.complete


def test_chunked_body_cut_short() -> None:
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"
    with pytest.raises(ResponseError, match="inside the chunked body") as caught:
        feed_all(ResponseParser(), data)
    assert caught.value.kind is Problem.TRUNCATED


# ---------------------------------------------------------------- malformed input

@pytest.mark.parametrize(("data", "message"), [
    (b"garbage\r\n\r\nbody", "HTTP status line malformed: b'garbage'"),
    (b"HTTP/1.1 OK\r\n\r\n", "HTTP status line malformed"),
    (b"HTTP/1.1 20 OK\r\n\r\n", "HTTP status line malformed"),
    (b"ICY 200 OK\r\n\r\n", "HTTP status line malformed"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "HTTP header line malformed"),
    (b"HTTP/1.1 200 OK\r\nName : v\r\n\r\n", "HTTP header line malformed"),
    (b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", "HTTP header line malformed"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n", "invalid Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
     "invalid Content-Length"),
])
def test_malformed_heads_fail_when_strict(data: bytes, message: str) -> None:
    with pytest.raises(ResponseError, match=message) as caught:
        feed_all(ResponseParser(), data)
    assert caught.value.kind is Problem.MALFORMED


def test_binary_junk_fails_at_once_without_waiting_for_a_blank_line() -> None:
    parser = ResponseParser()
    with pytest.raises(ResponseError, match="HTTP status line malformed") as caught:
        parser.feed(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    assert caught.value.kind is Problem.MALFORMED
    with pytest.raises(ResponseError, match="status line malformed"):
        ResponseParser().feed(b"HTTP/1.1 2xx whatever\r\nrest")


def test_garbage_is_a_response_to_keepalived() -> None:
    parser = ResponseParser(strict=False)
    events = feed_all(parser, b"garbage\r\n\r\nbody")
    assert events[0].status == 0
    assert parser.digest == md5(b"body")


def test_keepalived_status_code() -> None:
    assert keepalived_status_code(b"HTTP/1.0 404 Not Found\r\n\r\n") == 404
    assert keepalived_status_code(b"HTTP/1.0 200\r\nX: y\r\n\r\n") == 200
    assert keepalived_status_code(b"garbage\r\n\r\n") == 0
    assert keepalived_status_code(b"HTTP/1.0 abc\r\n\r\n") == 0


def test_endless_headers_hit_the_cap() -> None:
    parser = ResponseParser(max_header_size=1000)
    parser.feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(ResponseError, match="response headers exceed 1000 bytes") as caught:
        for _ in range(100):
            parser.feed(b"X-Filler: " + b"a" * 40 + b"\r\n")
    assert caught.value.kind is Problem.HEADERS_TOO_LARGE


def test_header_room_tells_a_reader_how_much_to_read() -> None:
    parser = ResponseParser(strict=False, max_header_size=KEEPALIVED_HEADER_LIMIT)
    assert parser.header_room == 4095
    parser.feed(b"HTTP/1.0 200 OK\r\n")
    assert parser.header_room == 4095 - 17
    parser.feed(b"\r\nbody")
    assert parser.header_room == 0


def test_headers_must_end_within_keepalived_buffer() -> None:
    # The blank line ending at byte 4095 still fits keepalived's buffer; at 4096 not.
    line = b"HTTP/1.0 200 OK\r\nX: "
    fits = line + b"a" * (4095 - len(line) - 4) + b"\r\n\r\n"
    assert len(fits) == 4095
    parser = ResponseParser(strict=False, max_header_size=KEEPALIVED_HEADER_LIMIT)
    assert isinstance(parser.feed(fits)[0], ResponseHead)
    too_long = line + b"a" * (4096 - len(line) - 4) + b"\r\n\r\n"
    with pytest.raises(ResponseError) as caught:
        ResponseParser(strict=False, max_header_size=KEEPALIVED_HEADER_LIMIT).feed(too_long)
    assert caught.value.kind is Problem.HEADERS_TOO_LARGE


def test_eof_before_the_end_of_the_headers() -> None:
    with pytest.raises(ResponseError, match="no data received") as caught:
        ResponseParser().feed_eof()
    assert caught.value.kind is Problem.NO_RESPONSE
    parser = ResponseParser(strict=False)
    parser.feed(b"HTTP/1.0 200 OK\r\nX: y\r\n")
    with pytest.raises(ResponseError, match="23 bytes received"):
        parser.feed_eof()


# ---------------------------------------------------------------- body limits and lengths

def test_body_over_the_limit_by_content_length_fails_at_the_head() -> None:
    parser = ResponseParser(body_limit=100)
    with pytest.raises(ResponseError, match=r"1000000 bytes .* exceeds the 100-byte limit") as c:
        parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
    assert c.value.kind is Problem.BODY_TOO_LARGE


@pytest.mark.parametrize("strict", [True, False])
def test_huge_body_without_length_fails_past_the_limit(strict: bool) -> None:
    parser = ResponseParser(strict=strict, body_limit=64 * 1024)
    parser.feed(b"HTTP/1.0 200 OK\r\n\r\n")
    with pytest.raises(ResponseError, match="response body exceeded 65536 bytes") as caught:
        for _ in range(100):
            parser.feed(b"x" * 4096)
    assert caught.value.kind is Problem.BODY_TOO_LARGE
    assert parser.body_length <= 64 * 1024


def test_body_exactly_at_the_limit_passes() -> None:
    parser = ResponseParser(body_limit=10)
    feed_all(parser, b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 10)
    assert parser.complete and parser.body_length == 10


def test_short_body_is_truncated_when_strict_and_hashed_when_lenient() -> None:
    data = b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    with pytest.raises(ResponseError, match="after 3 of 10 body bytes") as caught:
        feed_all(ResponseParser(), data)
    assert caught.value.kind is Problem.TRUNCATED
    lenient = ResponseParser(strict=False)
    events = feed_all(lenient, data)
    assert events[-1] == ResponseEnd(False)
    assert lenient.digest == md5(b"abc")


def test_content_length_limits_the_digest_like_keepalived() -> None:
    parser = ResponseParser(strict=False)
    events = feed_all(parser, b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabcdef")
    assert parser.digest == md5(b"abc")
    assert [(e.data, e.digested) for e in events if isinstance(e, BodyData)] == [(b"abcdef", 3)]


def test_lowercase_content_length_does_not_limit_keepalived_digest() -> None:
    parser = ResponseParser(strict=False)
    feed_all(parser, b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\nabcdef")
    assert parser.digest == md5(b"abcdef")


@pytest.mark.parametrize(("block", "expected"), [
    (b"HTTP/1.0 200 OK\r\nContent-Length: 12\r\n\r\n", 12),
    (b"HTTP/1.0 200 OK\r\ncontent-length: 12\r\n\r\n", None),
    (b"HTTP/1.0 200 OK\r\nX-Content-Length: 7\r\n\r\n", 7),   # strstr finds it
    (b"HTTP/1.0 200 OK\r\nContent-Length:   5abc\r\n\r\n", 5),
    (b"HTTP/1.0 200 OK\r\nContent-Length: abc\r\n\r\n", 0),
    (b"HTTP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n", None),
    (b"HTTP/1.0 200 OK\r\nContent-Length: -2\r\n\r\n", 2**64 - 2),
    (b"HTTP/1.0 200 OK\r\nX: \0\r\nContent-Length: 5\r\n\r\n", None),  # C string ends
    (b"HTTP/1.0 200 OK\r\n\r\n", None),
])
def test_keepalived_content_length(block: bytes, expected: int | None) -> None:
    assert keepalived_content_length(block) == expected


def test_no_body_for_204_when_strict() -> None:
    parser = ResponseParser()
    events = parser.feed(b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n")
    assert events[-1] == ResponseEnd(True)
    assert parser.digest == md5(b"")


def test_folded_header_lines_join_the_previous_value() -> None:
    events = ResponseParser().feed(b"HTTP/1.1 200 OK\r\nX-Long: one\r\n two\r\n\r\n")
    assert events[0].header("x-long") == "one two"


def test_keep_body_keeps_the_raw_body() -> None:
    parser = ResponseParser(keep_body=True)
    feed_all(parser, CHUNKED, step=5)
    assert parser.body == CHUNKED_BODY
    assert ResponseParser().body is None


# ---------------------------------------------------------------- properties

@given(body=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3200), max_size=12),
       chunk=st.integers(1, 700), chunked=st.booleans())
def test_any_split_gives_keepalived_digest(body: bytes, cuts: list[int], chunk: int,
                                            chunked: bool) -> None:
    if chunked:
        coded = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + chunk]), body[i:i + chunk])
                         for i in range(0, len(body), chunk)) + b"0\r\n\r\n"
        data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + coded
    else:
        coded = body
        data = b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    points = sorted({c for c in cuts if c < len(data)} | {0, len(data)})
    parser = ResponseParser()
    events = []
    for start, end in itertools.pairwise(points):
        events += parser.feed(data[start:end])
    events += parser.feed_eof()
    assert parser.complete
    assert body_of(events) == coded
    assert parser.digest == md5(coded)
