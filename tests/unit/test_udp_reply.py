"""UDP_CHECK's pure parts: hex payloads, reply patterns with x nibbles, reply rules."""

from __future__ import annotations

import pytest

from checkers.spec import UdpCheck
from checkers.udp import ReplyPattern, parse_hex, parse_pattern, reply_problem


def test_hex_is_read_two_digits_a_byte_with_a_last_odd_digit_alone():
    # keepalived.conf(5)'s example: "Ab12f 3 456 546443123" -> AB 12 0F 03 45 06 54 64 43 12 03
    assert parse_hex("Ab12f 3 456 546443123") == bytes.fromhex("ab120f03450654644312 03")


def test_hex_refuses_other_characters():
    with pytest.raises(ValueError, match="'12zz' is not hex data"):
        parse_hex("12zz")
    with pytest.raises(ValueError, match="'x1' is not hex data"):
        parse_hex("x1")  # x is a wildcard only in reply data


def test_pattern_x_is_any_nibble():
    assert parse_pattern("1x x2 xx") == ReplyPattern(bytes.fromhex("100200"),
                                                     bytes.fromhex("f00f00"))


def spec(**fields) -> UdpCheck:
    return UdpCheck(require_reply=True, **fields)


def test_reply_matches_up_to_the_shorter_of_reply_and_pattern():
    pattern = parse_pattern("abcdef")
    assert reply_problem(b"\xab\xcd", spec(), pattern) is None          # shorter reply
    assert reply_problem(b"\xab\xcd\xef\x99", spec(), pattern) is None  # longer reply
    assert reply_problem(b"\xab\xcc", spec(), pattern) == "byte 1 is 0xcc, expected 0xcd"


def test_reply_wildcards():
    pattern = parse_pattern("a x")  # a lone digit is a byte of its own: 0a, then 0x
    assert pattern == ReplyPattern(bytes.fromhex("0a00"), bytes.fromhex("fff0"))
    pattern = parse_pattern("4x")
    assert reply_problem(b"\x41", spec(), pattern) is None
    assert reply_problem(b"\x51", spec(), pattern) == "byte 0 is 0x51, expected 0x4x"


def test_reply_length_limits():
    assert reply_problem(b"", spec(), None) is None
    assert reply_problem(b"a" * 255, spec(), None) is None
    assert reply_problem(b"a" * 256, spec(), None) == \
        "256 bytes, outside the 0..255 bytes allowed"
    assert reply_problem(b"ab", spec(min_reply_length=3, max_reply_length=8), None) == \
        "2 bytes, outside the 3..8 bytes allowed"
