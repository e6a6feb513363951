"""checkers.icmp_wire: echo requests and replies, ICMP errors, error-queue entries."""

from __future__ import annotations

import contextlib
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checkers.icmp_wire import (
    ICMP_DEST_UNREACH,
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    ICMPV6_DEST_UNREACH,
    ICMPV6_ECHO_REPLY,
    ICMPV6_ECHO_REQUEST,
    SO_EE_ORIGIN_ICMP,
    SO_EE_ORIGIN_ICMP6,
    SO_EE_ORIGIN_LOCAL,
    IcmpWireError,
    Quoted,
    checksum,
    decode_extended_error,
    decode_icmp,
    describe_error,
    encode_echo_request,
    strip_ipv4_header,
)


def ipv4_header(source: str, destination: str, protocol: int, length: int) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 1, 0, 64, protocol, 0,
                         socket.inet_aton(source), socket.inet_aton(destination))
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:]


def test_checksum_of_rfc1071_example():
    # RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2; the checksum is ~.
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2


def test_checksum_pads_an_odd_length():
    assert checksum(b"\x01") == checksum(b"\x01\x00")


def test_echo_request_v4_carries_a_valid_checksum():
    request = encode_echo_request(0x1234, 7, b"hello")
    assert request[:2] == bytes([ICMP_ECHO_REQUEST, 0])
    assert struct.unpack("!HH", request[4:8]) == (0x1234, 7)
    assert request[8:] == b"hello"
    assert checksum(request) == 0


def test_echo_request_v6_leaves_the_checksum_to_the_kernel():
    request = encode_echo_request(1, 2, b"x", ipv6=True)
    assert request == bytes([ICMPV6_ECHO_REQUEST, 0, 0, 0, 0, 1, 0, 2]) + b"x"


def test_echo_request_out_of_range():
    with pytest.raises(IcmpWireError, match="out of range"):
        encode_echo_request(70000, 1)


def test_echo_reply_decodes_with_its_identifier_and_sequence():
    reply = bytearray(encode_echo_request(0xBEEF, 0x0102, b"payload"))
    reply[0] = ICMP_ECHO_REPLY
    reply[2:4] = b"\0\0"
    reply[2:4] = struct.pack("!H", checksum(bytes(reply)))
    message = decode_icmp(bytes(reply), verify_checksum=True)
    assert message.is_echo_reply and not message.is_error
    assert (message.ident, message.sequence, message.payload) == (0xBEEF, 0x0102, b"payload")


def test_v6_echo_reply():
    message = decode_icmp(bytes([ICMPV6_ECHO_REPLY, 0, 0, 0, 0, 5, 0, 6]), ipv6=True)
    assert message.is_echo_reply and (message.ident, message.sequence) == (5, 6)
    # the same bytes are not an ICMPv4 echo reply
    assert not decode_icmp(bytes([ICMPV6_ECHO_REPLY, 0, 0, 0, 0, 5, 0, 6])).is_echo_reply


def test_bad_checksum_is_refused_only_when_asked():
    reply = bytes([ICMP_ECHO_REPLY, 0, 0x12, 0x34, 0, 1, 0, 1])
    with pytest.raises(IcmpWireError, match="checksum mismatch"):
        decode_icmp(reply, verify_checksum=True)
    assert decode_icmp(reply).ident == 1


def test_v4_error_quotes_the_echo_that_caused_it():
    echo = encode_echo_request(0x4242, 9, b"abcdefgh")
    quoted = ipv4_header("192.0.2.1", "198.51.100.7", socket.IPPROTO_ICMP, len(echo)) + echo[:8]
    error = struct.pack("!BBHI", ICMP_DEST_UNREACH, 1, 0, 0) + quoted
    message = decode_icmp(error)
    assert message.is_error and not message.is_echo_reply
    assert message.quoted == Quoted("198.51.100.7", socket.IPPROTO_ICMP, 0x4242, 9)
    assert message.describe() == "host unreachable"


def test_v4_error_quoting_udp_has_no_echo_fields():
    quoted = ipv4_header("192.0.2.1", "203.0.113.5", socket.IPPROTO_UDP, 8) + b"\0" * 8
    message = decode_icmp(struct.pack("!BBHI", ICMP_DEST_UNREACH, 3, 0, 0) + quoted)
    assert message.quoted == Quoted("203.0.113.5", socket.IPPROTO_UDP)


def test_v6_error_quotes_the_echo_that_caused_it():
    echo = encode_echo_request(77, 78, ipv6=True)
    header = struct.pack("!IHBB16s16s", 6 << 28, len(echo), socket.IPPROTO_ICMPV6, 64,
                         socket.inet_pton(socket.AF_INET6, "2001:db8::1"),
                         socket.inet_pton(socket.AF_INET6, "2001:db8:1::9"))
    error = struct.pack("!BBHI", ICMPV6_DEST_UNREACH, 3, 0, 0) + header + echo
    message = decode_icmp(error, ipv6=True)
    assert message.quoted == Quoted("2001:db8:1::9", socket.IPPROTO_ICMPV6, 77, 78)
    assert message.describe() == "address unreachable"


def test_error_with_an_unreadable_quote_has_no_quote():
    message = decode_icmp(struct.pack("!BBHI", ICMP_DEST_UNREACH, 3, 0, 0) + b"\x45\0")
    assert message.is_error and message.quoted is None


def test_short_messages():
    with pytest.raises(IcmpWireError, match="7 bytes is shorter than its header"):
        decode_icmp(b"\0" * 7)


def test_strip_ipv4_header():
    body = encode_echo_request(1, 1)
    packet = strip_ipv4_header(ipv4_header("192.0.2.9", "192.0.2.1", 1, len(body)) + body)
    assert (packet.source, packet.destination, packet.protocol, packet.payload) == \
        ("192.0.2.9", "192.0.2.1", 1, body)
    with pytest.raises(IcmpWireError, match="not an IPv4 header"):
        strip_ipv4_header(b"\x60" + b"\0" * 39)
    with pytest.raises(IcmpWireError, match="shorter than its header"):
        strip_ipv4_header(b"\x45\0")


def sockaddr_in(address: str) -> bytes:
    return struct.pack("=H", socket.AF_INET) + b"\0\0" + socket.inet_aton(address) + b"\0" * 8


def sockaddr_in6(address: str) -> bytes:
    return (struct.pack("=H", socket.AF_INET6) + b"\0" * 6
            + socket.inet_pton(socket.AF_INET6, address) + b"\0" * 4)


def test_extended_error_of_a_port_unreachable():
    data = struct.pack("=IBBBBII", 111, SO_EE_ORIGIN_ICMP, 3, 3, 0, 0, 0) \
        + sockaddr_in("192.0.2.5")
    err = decode_extended_error(data)
    assert (err.errno, err.offender, err.is_icmp, err.is_unreachable) == \
        (111, "192.0.2.5", True, True)
    assert err.describe() == "port unreachable"


def test_extended_error_v6_and_time_exceeded():
    data = struct.pack("=IBBBBII", 113, SO_EE_ORIGIN_ICMP6, 3, 0, 0, 0, 0) \
        + sockaddr_in6("2001:db8::1")
    err = decode_extended_error(data)
    assert err.offender == "2001:db8::1" and err.ipv6 and not err.is_unreachable
    assert err.describe() == "time exceeded"


def test_extended_error_from_the_local_stack():
    err = decode_extended_error(struct.pack("=IBBBBII", 90, SO_EE_ORIGIN_LOCAL, 0, 0, 0, 0, 0))
    assert not err.is_icmp and err.offender is None
    assert err.describe() == "local error 90"


def test_extended_error_too_short():
    with pytest.raises(IcmpWireError, match="too short"):
        decode_extended_error(b"\0" * 15)


@pytest.mark.parametrize("kind, code, ipv6, text", [
    (3, 0, False, "network unreachable"), (3, 3, False, "port unreachable"),
    (3, 13, False, "communication administratively prohibited"),
    (3, 99, False, "destination unreachable (code 99)"), (11, 0, False, "time exceeded"),
    (1, 4, True, "port unreachable"), (1, 0, True, "no route to destination"),
    (2, 0, True, "packet too big"), (200, 1, True, "ICMPv6 type 200 code 1"),
])
def test_describe_error(kind, code, ipv6, text):
    assert describe_error(kind, code, ipv6=ipv6) == text


@given(st.binary(max_size=200), st.booleans(), st.booleans())
def test_decoding_any_bytes_raises_nothing_but_icmp_wire_error(data, ipv6, verify):
    with contextlib.suppress(IcmpWireError):
        decode_icmp(data, ipv6=ipv6, verify_checksum=verify)
    with contextlib.suppress(IcmpWireError):
        strip_ipv4_header(data)
    with contextlib.suppress(IcmpWireError):
        decode_extended_error(data)
