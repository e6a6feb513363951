"""Lexical rules of keepalived.conf, as keepalived 2.2.7 applies them to one line.

Two steps, both on plain strings and indexes (the reader maps indexes to columns):

- `decomment`: a comment starts at ``#`` or ``!`` outside double quotes and runs to
  the end of the line; ``\\#`` and ``\\!`` stand for the characters themselves; a
  ``\\`` ending the line continues a multi-line definition.
- `tokenize`: braces are tokens of their own wherever they stand outside quotes (a
  line is cut into statements at each ``{`` and ``}``); a word runs to whitespace, a
  brace or a double quote; ``"..."`` is one word without its quotes, and nothing is
  escaped inside it (keepalived's word splitter keeps backslashes as they are).

`split_command` is the second splitter keepalived uses for script command lines
(``notify``, ``script``, ``misc_path``...): single and double quotes, and shell-like
backslash escapes; `unescape` decodes those escapes in one word (``regex``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

WHITESPACE = " \t\f\n\r\v"

# Longest line keepalived 2.2.7 reads in one piece (fgets into a 1024-byte buffer);
# a longer line is silently cut into several lines there.
KEEPALIVED_MAX_LINE = 1023

_TOKEN = re.compile(r'([{}])|"([^"]*)(")?|([^ \t\f\n\r\v{}"]+)')


@dataclass(slots=True)
class Token:
    text: str
    index: int  # 0-based index in the tokenized string
    brace: bool = False  # an unquoted '{' or '}'


@dataclass(slots=True)
class Decommented:
    start: int  # the text without comment is line[start:end]
    end: int
    continued: bool  # the line ends with a continuation '\'
    open_quote: int | None  # index of a double quote that is never closed


def decomment(line: str) -> Decommented:
    """Locate the text of ``line`` once its comment and surrounding blanks are removed."""
    start = 0
    n = len(line)
    while start < n and line[start] in " \t":
        start += 1
    if '"' not in line and "\\" not in line:
        cut = n
        for mark in "#!":
            at = line.find(mark, start)
            if 0 <= at < cut:
                cut = at
        end = cut
        while end > start and line[end - 1] in " \t":
            end -= 1
        return Decommented(start, end, False, None)
    quote_at: int | None = None
    cut: int | None = None
    continued = False
    i = start
    while i < n:
        ch = line[i]
        if ch == "\\":
            if i + 1 < n:
                i += 2
                continue
            continued = True
            if cut is None:
                cut = i
            break
        if cut is None:
            if ch == '"':
                quote_at = None if quote_at is not None else i
            elif quote_at is None and ch in "#!":
                cut = i
        i += 1
    end = n if cut is None else cut
    while end > start and line[end - 1] in " \t":
        end -= 1
    return Decommented(start, end, continued, quote_at)


def unescape_comment_marks(word: str) -> str:
    """``\\#`` and ``\\!`` outside quotes stand for ``#`` and ``!``."""
    if "\\" not in word:
        return word
    return word.replace("\\#", "#").replace("\\!", "!")


def tokenize(text: str) -> tuple[list[Token], int | None]:
    """Tokens of a decommented line, and the index of an unterminated quote (or None).

    Like keepalived, the words after an unterminated quote are dropped.
    """
    tokens: list[Token] = []
    for m in _TOKEN.finditer(text):
        brace, quoted, closed, bare = m.groups()
        if brace is not None:
            tokens.append(Token(brace, m.start(), True))
        elif bare is not None:
            tokens.append(Token(unescape_comment_marks(bare), m.start()))
        elif closed is None:
            return tokens, m.start()
        else:
            tokens.append(Token(quoted, m.start()))
    return tokens, None


def first_brace(text: str) -> int:
    """Index of the first '{' or '}' outside double quotes, or -1."""
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in "{}":
            return i
        if ch == '"':
            close = text.find('"', i + 1)
            if close < 0:
                return -1
            i = close
        i += 1
    return -1


def brace_balance(text: str) -> tuple[int, bool]:
    """(opening minus closing braces, whether any brace occurs) outside quotes."""
    balance = 0
    seen = False
    for token in tokenize(text)[0]:
        if token.brace:
            seen = True
            balance += 1 if token.text == "{" else -1
    return balance, seen


_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r",
                   "t": "\t", "v": "\v"}


class CommandSyntaxError(ValueError):
    """A command line has an unterminated quote or ends with a lone backslash."""


def split_command(text: str) -> list[str]:
    """Split a script command line the way keepalived does for scripts.

    Words are separated by whitespace; ``'...'`` and ``"..."`` quote (the quotes are
    removed, quoted whitespace kept); backslash escapes ``\\a \\b \\E \\f \\n \\r \\t \\v``,
    ``\\NNN`` (octal), ``\\xHH`` (hex), ``\\cC`` (control-C) and ``\\C`` (C itself) work
    inside and outside quotes. Raises `CommandSyntaxError` on an unterminated quote
    or a trailing backslash.
    """
    words: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in WHITESPACE:
            i += 1
        if i >= n:
            return words
        out: list[str] = []
        quote = ""
        while i < n:
            ch = text[i]
            if ch == "\\":
                i += 1
                if i >= n:
                    raise CommandSyntaxError("a backslash ends the command line")
                i = _escape(text, i, out)
            elif quote:
                if ch == quote:
                    quote = ""
                else:
                    out.append(ch)
                i += 1
            elif ch in "'\"":
                quote = ch
                i += 1
            elif ch in WHITESPACE:
                break
            else:
                out.append(ch)
                i += 1
        if quote:
            raise CommandSyntaxError(f"missing closing {quote}")
        words.append("".join(out))


def unescape(text: str) -> str:
    """Decode the backslash escapes `split_command` knows, leaving quotes and
    whitespace as they are (for a single word keepalived reads quoted-escaped).
    Raises `CommandSyntaxError` on a trailing backslash."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == "\\":
            i += 1
            if i >= n:
                raise CommandSyntaxError("a backslash ends the command line")
            i = _escape(text, i, out)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _escape(text: str, i: int, out: list[str]) -> int:
    """Decode the escape whose letter is at text[i]; return the index after it."""
    ch = text[i]
    n = len(text)
    if ch == "x" and i + 1 < n and text[i + 1] in "0123456789abcdefABCDEF":
        j = i + 1
        value = 0
        while j < n and text[j] in "0123456789abcdefABCDEF":
            value = (value * 16 + int(text[j], 16)) & 0xFF
            j += 1
        out.append(chr(value))
        return j
    if ch == "c" and i + 1 < n:
        out.append(chr(ord(text[i + 1]) & 0x1F))
        return i + 2
    if "0" <= ch <= "7":
        j = i
        value = 0
        while j < n and j < i + 3 and "0" <= text[j] <= "7":
            value = value * 8 + int(text[j])
            j += 1
        out.append(chr(value & 0xFF))
        return j
    out.append(_SIMPLE_ESCAPES.get(ch, ch))
    return i + 1
