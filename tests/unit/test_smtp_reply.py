"""SMTP_CHECK's reply reader: bytes in, whole replies out."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checkers.smtp import MAX_LINE, MAX_REPLY_LINES, ReplyReader, SmtpReplyError, excerpt


def replies(*chunks: bytes) -> list[tuple[int, tuple[bytes, ...]]]:
    reader = ReplyReader()
    out = []
    for chunk in chunks:
        reader.feed(chunk)
        while (reply := reader.reply()) is not None:
            out.append((reply.code, reply.lines))
    return out


def test_one_line_reply():
    assert replies(b"220 mail.example ESMTP\r\n") == [(220, (b"220 mail.example ESMTP",))]


def test_a_reply_split_anywhere_comes_out_whole():
    assert replies(b"2", b"50 o", b"k\r", b"\n") == [(250, (b"250 ok",))]


def test_multi_line_reply_ends_at_the_line_without_a_hyphen():
    assert replies(b"220-first\r\n220-second\r\n220 last\r\n") == \
        [(220, (b"220-first", b"220-second", b"220 last"))]


def test_bare_code_and_bare_lf_are_accepted():
    assert replies(b"221\n") == [(221, (b"221",))]


def test_two_replies_in_one_read():
    assert replies(b"250 a\r\n221 b\r\n") == [(250, (b"250 a",)), (221, (b"221 b",))]


@pytest.mark.parametrize("data", [b"HTTP/1.1 400 Bad Request\r\n", b"22\r\n", b"\r\n",
                                  b"2x0 hi\r\n"])
def test_not_smtp(data):
    with pytest.raises(SmtpReplyError, match="not an SMTP reply"):
        replies(data)


def test_endless_line_is_refused_before_it_grows_without_bound():
    with pytest.raises(SmtpReplyError, match=f"longer than {MAX_LINE} bytes"):
        replies(b"220 " + b"x" * MAX_LINE)


def test_endless_multi_line_reply_is_refused():
    with pytest.raises(SmtpReplyError, match=f"more than {MAX_REPLY_LINES} lines"):
        replies(b"220-more\r\n" * (MAX_REPLY_LINES + 1))


def test_excerpt_is_printable_short_and_quoted():
    assert excerpt(b"554 no\x00 way\r") == '"554 no. way"'
    assert excerpt(b"x" * 100) == '"' + "x" * 60 + '..."'


@given(st.lists(st.binary(max_size=300), max_size=10))
def test_any_bytes_give_replies_or_smtp_reply_error(chunks):
    with contextlib.suppress(SmtpReplyError):
        replies(*chunks)
