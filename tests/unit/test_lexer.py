"""keepalived.conf lexical rules: comments, words, quotes, braces, command splitting."""

from __future__ import annotations

import pytest

from director.config.lexer import (
    CommandSyntaxError,
    brace_balance,
    decomment,
    first_brace,
    split_command,
    tokenize,
    unescape,
)


def text_of(line: str) -> str:
    found = decomment(line)
    return line[found.start:found.end]


def words(text: str) -> list[str]:
    return [t.text for t in tokenize(text)[0]]


@pytest.mark.parametrize(("line", "expected"), [
    ("  router_id x # comment", "router_id x"),
    ("router_id x ! comment", "router_id x"),
    ("\t\tweight 1\t", "weight 1"),
    ("# only a comment", ""),
    ("! only a comment", ""),
    ("router_id q#r", "router_id q"),  # a comment may start inside a word
    ('script "/bin/a # b ! c" # real comment', 'script "/bin/a # b ! c"'),
    ("router_id w\\#x", "router_id w\\#x"),  # escaped: not a comment
    ("", ""),
])
def test_decomment_removes_comments_and_blanks(line: str, expected: str) -> None:
    assert text_of(line) == expected


def test_decomment_marks_a_continuation_backslash() -> None:
    found = decomment("$A=one two  \\")
    assert found.continued
    assert "$A=one two  \\"[found.start:found.end] == "$A=one two"
    assert not decomment("a \\# b").continued


def test_decomment_reports_an_open_quote() -> None:
    assert decomment('notify "/bin/x # y').open_quote == 7
    assert decomment('notify "/bin/x" # y').open_quote is None


def test_words_and_quoted_strings() -> None:
    tokens, open_quote = tokenize('script "/usr/bin/check --x 1"  user')
    assert open_quote is None
    assert [(t.text, t.index) for t in tokens] == [
        ("script", 0), ("/usr/bin/check --x 1", 7), ("user", 31)]


def test_a_quote_inside_a_word_splits_it_as_keepalived_does() -> None:
    assert words('e"f g"h') == ["e", "f g", "h"]
    assert words('"y z"aa') == ["y z", "aa"]


def test_quoted_text_is_kept_verbatim() -> None:
    # keepalived's general word splitter does not unescape: \x41 stays as typed.
    assert words('router_id "o\\x41p" \'i j\'') == ["router_id", "o\\x41p", "'i", "j'"]


def test_braces_are_tokens_wherever_they_stand() -> None:
    tokens = tokenize("a{b}c { d }")[0]
    assert [(t.text, t.brace) for t in tokens] == [
        ("a", False), ("{", True), ("b", False), ("}", True), ("c", False),
        ("{", True), ("d", False), ("}", True)]
    assert [t.brace for t in tokenize('"{" "}"')[0]] == [False, False]


def test_escaped_comment_marks_become_plain_characters() -> None:
    assert words("router_id w\\#x y\\!z") == ["router_id", "w#x", "y!z"]


def test_unterminated_quote_drops_the_rest() -> None:
    tokens, open_quote = tokenize('a b "c d')
    assert [t.text for t in tokens] == ["a", "b"]
    assert open_quote == 4


def test_first_brace_skips_quoted_text() -> None:
    assert first_brace('x "a { b" {') == 10
    assert first_brace('x "a { b') == -1
    assert first_brace("x y") == -1


def test_brace_balance() -> None:
    assert brace_balance("vrrp_instance X {") == (1, True)
    assert brace_balance("a { b } }") == (-1, True)
    assert brace_balance('a "{"') == (0, False)


@pytest.mark.parametrize(("command", "expected"), [
    ("/bin/check a b", ["/bin/check", "a", "b"]),
    ("/bin/check 'a b' \"c d\"", ["/bin/check", "a b", "c d"]),
    ("/bin/echo \\x41\\102\\n\\t\\cA\\E\\\\", ["/bin/echo", "AB\n\t\x01\x1b\\"]),
    ("/bin/echo \"say \\\"hi\\\"\"", ["/bin/echo", 'say "hi"']),
    ("/bin/echo ab'c d'e", ["/bin/echo", "abc de"]),
    ("  ", []),
])
def test_split_command_like_keepalived_scripts(command: str, expected: list[str]) -> None:
    assert split_command(command) == expected


@pytest.mark.parametrize("command", ["/bin/x 'open", '/bin/x "open', "/bin/x \\"])
def test_split_command_rejects_broken_lines(command: str) -> None:
    with pytest.raises(CommandSyntaxError):
        split_command(command)


def test_unescape_decodes_one_word_and_keeps_quotes_and_spaces() -> None:
    assert unescape("a 'b' \\x41\\101\\cA\\\\.") == "a 'b' AA\x01\\."
    with pytest.raises(CommandSyntaxError):
        unescape("ok\\")
