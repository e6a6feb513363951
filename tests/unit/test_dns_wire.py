"""checkers.dns_wire: the DNS_CHECK query, headers and whole messages."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checkers.dns_wire import (
    QTYPES,
    DnsWireError,
    Header,
    Message,
    Question,
    Record,
    decode_header,
    decode_message,
    decode_name,
    encode_message,
    encode_name,
    encode_query,
    rcode_name,
)


def test_query_for_the_root_soa_is_keepalived_s_default_query():
    # ID 0x1234, RD set, one question: root name, type SOA (6), class IN.
    assert encode_query(0x1234, ".", "SOA") == bytes.fromhex(
        "1234 0100 0001 0000 0000 0000" "00" "0006 0001".replace(" ", ""))


def test_query_names_are_length_prefixed_labels_with_or_without_a_trailing_dot():
    expected = bytes.fromhex("abcd010000010000000000000377777707657861"
                             "6d706c6503636f6d00001c0001")
    assert encode_query(0xABCD, "www.example.com", "AAAA") == expected
    assert encode_query(0xABCD, "www.example.com.", "AAAA") == expected
    assert encode_query(0xABCD, "www.example.com", QTYPES["AAAA"]) == expected


@pytest.mark.parametrize("qtype, code", [("A", 1), ("NS", 2), ("CNAME", 5), ("SOA", 6),
                                         ("MX", 15), ("TXT", 16), ("AAAA", 28), ("mx", 15)])
def test_query_types_keepalived_knows(qtype, code):
    assert encode_query(1, "example.org", qtype)[-4:] == struct.pack("!HH", code, 1)


def test_query_without_recursion_desired_clears_rd():
    assert decode_header(encode_query(7, ".", "A", recursion_desired=False)).rd is False
    assert decode_header(encode_query(7, ".", "A")).rd is True


@pytest.mark.parametrize("name, problem", [
    ("a..b", "empty label"),
    (".a", "empty label"),
    ("x" * 64 + ".com", "longer than 63 bytes"),
    (".".join(["abcdefghi"] * 26), "longer than 255 bytes"),
])
def test_names_that_cannot_be_sent(name, problem):
    with pytest.raises(DnsWireError, match=problem):
        encode_name(name)


def test_query_with_bad_arguments():
    with pytest.raises(DnsWireError, match="unknown DNS query type 'PTR'"):
        encode_query(1, ".", "PTR")
    with pytest.raises(DnsWireError, match="ID 65536 out of range"):
        encode_query(65536, ".", "A")


def test_header_round_trip_keeps_every_flag():
    header = Header(id=0xBEEF, qr=True, opcode=2, aa=True, tc=True, rd=True, ra=True, z=5,
                    rcode=3, qdcount=1, ancount=2, nscount=3, arcount=4)
    assert decode_header(header.encode()) == header
    assert header.rcode_name == "NXDOMAIN"


def test_header_of_a_short_datagram_is_an_error():
    with pytest.raises(DnsWireError, match="11 bytes is shorter than its 12-byte header"):
        decode_header(b"\0" * 11)


@pytest.mark.parametrize("code, name", [(0, "NOERROR"), (2, "SERVFAIL"), (3, "NXDOMAIN"),
                                        (5, "REFUSED"), (12, "RCODE12")])
def test_rcode_names(code, name):
    assert rcode_name(code) == name


def test_message_round_trip():
    message = Message(
        Header(id=9, qr=True, rd=True, ra=True),
        (Question("example.com.", 6),),
        (Record("example.com.", 6, 1, 3600, b"soa-rdata"),),
        (Record("example.com.", 2, 1, 60, b"\x02ns\x00"),),
        (Record("ns.example.com.", 1, 1, 60, bytes([192, 0, 2, 53])),),
    )
    data = encode_message(message)
    decoded = decode_message(data)
    assert decoded.questions == message.questions
    assert decoded.answers == message.answers
    assert decoded.authorities == message.authorities
    assert decoded.additionals == message.additionals
    assert (decoded.header.ancount, decoded.header.nscount, decoded.header.arcount) == (1, 1, 1)


def test_decode_follows_compression_pointers():
    # Question "example.com." at offset 12; the answer's owner is a pointer to it and
    # "www" + pointer names a second name.
    question = encode_name("example.com") + struct.pack("!HH", 1, 1)
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + bytes([192, 0, 2, 1])
    extra = b"\x03www\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + bytes([192, 0, 2, 2])
    data = Header(id=1, qr=True, qdcount=1, ancount=1, arcount=1).encode() + question \
        + answer + extra
    message = decode_message(data)
    assert message.answers[0].name == "example.com."
    assert message.additionals[0].name == "www.example.com."
    assert decode_name(data, 12) == ("example.com.", 12 + len(encode_name("example.com")))


def test_root_name_decodes_as_a_dot():
    assert decode_name(b"\0", 0) == (".", 1)


@pytest.mark.parametrize("data, problem", [
    (Header(qdcount=1).encode(), "runs past the end"),
    (Header(qdcount=1).encode() + b"\x05abc", "label runs past the end"),
    (Header(qdcount=1).encode() + b"\x00\x00", "question runs past the end"),
    # a pointer to itself, and one pointing forward
    (Header(qdcount=1).encode() + b"\xc0\x0c", "does not point backwards"),
    (Header(qdcount=1).encode() + b"\xc0\x20", "does not point backwards"),
    (Header(qdcount=1).encode() + b"\xc0", "pointer runs past the end"),
    (Header(qdcount=1).encode() + b"\x40abc", "label type 0x40"),
    (Header(ancount=1).encode() + b"\x00\x00\x01", "record runs past the end"),
    (Header(ancount=1).encode() + b"\x00" + struct.pack("!HHIH", 1, 1, 0, 9) + b"abc",
     "record data runs past the end"),
])
def test_malformed_messages(data, problem):
    with pytest.raises(DnsWireError, match=problem):
        decode_message(data)


def test_a_pointer_chain_that_only_goes_backwards_still_ends():
    # 64 labels each pointing to the previous one is a long but finite chain.
    body = bytearray(b"\x01a\x00")
    for _ in range(70):
        target = 12 + len(body) - 3 if len(body) > 3 else 12
        body += b"\x01a" + struct.pack("!H", 0xC000 | target) + b"\x00"
    data = Header().encode() + bytes(body)
    with pytest.raises(DnsWireError):
        decode_name(data, len(data) - 5)


@given(st.binary(max_size=600))
def test_decoding_any_bytes_raises_nothing_but_dns_wire_error(data):
    with contextlib.suppress(DnsWireError):
        decode_message(data)


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(max_size=200))
def test_decoding_any_bytes_after_a_header_raises_nothing_but_dns_wire_error(ident, flags, rest):
    data = struct.pack("!HHHHHH", ident, flags, 2, 3, 1, 1) + rest
    with contextlib.suppress(DnsWireError):
        decode_message(data)
