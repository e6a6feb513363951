"""Read keepalived.conf text into a tree of `Node`s (see `director.config.tree`).

The reader does what keepalived 2.2.7's configuration reader does before any keyword
is looked at, line by line:

1. comments are removed (`director.config.lexer.decomment`);
2. ``@ID`` / ``@^ID`` conditional lines are kept or dropped against the config id;
3. ``$NAME=VALUE`` lines define parameters (a trailing ``\\`` continues a multi-line
   definition until a line without it; an empty line ends it too);
4. ``~SEQ(...)`` / ``~SEQx(...)`` / ``~LST(...)`` lines repeat the rest of the line;
5. ``$NAME`` (followed by a blank, ``,``, ``)`` or the end of the line) and
   ``${NAME}`` are replaced, the replacement being scanned again;
6. ``include PATTERN`` splices the matching files in place, relative to the
   directory of the including file;
7. the line is cut at each ``{`` / ``}`` and each piece goes through 2-6 again.

Every `Word` carries the ``FILE:LINE:COL`` it came from. A word that a substitution
produced carries the place of the ``$`` that produced it; the lines of a multi-line
definition carry their own places in the definition.

Like keepalived, a line is cut into statements only at braces, so
``{ weight 1 TCP_CHECK { ... } }`` gives the statement ``weight 1 TCP_CHECK`` with a
block, for the builder to report; an undefined ``$NAME`` is kept as it is (so ``$``
in scripts keeps working), with a warning.

Deliberate differences from keepalived 2.2.7, each reported so a user sees it:
an undefined ``${NAME}`` is an error (keepalived keeps the text, whose braces then
break the block structure); a block whose opening line is dropped by ``@ID`` is
skipped whole, with a warning (keepalived drops only that line and reads the block's
contents at the outer level); ``${_HASH}`` and ``${_BANG}`` give ``#`` and ``!`` as
documented (keepalived 2.2.7 then treats them as comment starts); pathological
input (runaway definitions, deep nesting, long lines, NUL bytes) is capped and
reported instead of hanging or being silently cut.
"""

from __future__ import annotations

import contextlib
import gc
import glob
import itertools
import os
import random
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from director.config import lexer
from director.config.errors import Diagnostics, location
from director.config.tree import Node, Word

MAX_INCLUDE_DEPTH = 16
MAX_BLOCK_DEPTH = 32
MAX_EXPANSION_DEPTH = 32  # nested multi-line definitions and ~SEQ/~LST
MAX_EXPANDED_LINES = 1_000_000  # lines produced by definitions and ~SEQ/~LST in one read
MAX_SUBSTITUTIONS_PER_LINE = 10_000
MAX_LEXICAL_PROBLEMS = 100  # per file, for binary or garbled input
_MANY_NEW_OBJECTS = 100_000

# A line with only these characters (and not mentioning include) needs no preprocessing:
# printable ASCII and tab, less '!', '"', '#', '$', '@', '\\' and '~'.
_NEEDS_CARE = re.compile(r"[^\t\n\x20\x25-\x3f\x41-\x5b\x5d-\x7d]")
_FAST_TOKEN = re.compile(r"[{}]|[^\s{}]+")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFINITION = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)=")
_SEQ_NUMBER = re.compile(r"\s*([+-]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*))\s*")


def default_config_id() -> str:
    """keepalived's default config id: the host's node name up to the first dot."""
    return os.uname().nodename.split(".", 1)[0]


def read_text(text: str, filename: str, diag: Diagnostics,
              config_id: str | None = None) -> list[Node]:
    """Read keepalived.conf ``text``; ``filename`` names it in origins and anchors
    relative includes. Problems go to ``diag``; nothing is raised."""
    with collector_paused():
        reader = _Reader(diag, config_id)
        reader.read_source(text, filename, [])
        return reader.finish()


def read_piece(text: str, filename: str, first_line: int, diag: Diagnostics,
               config_id: str | None = None) -> list[Node]:
    """Read whole top-level statements cut from the file ``filename``, its line
    ``first_line`` on, as `read_text` would read them in place; for text without
    includes, definitions or conditionals, whose meaning does not depend on what
    comes before (see `director.config.incremental`)."""
    reader = _Reader(diag, config_id)
    reader.read_source(text, filename, [], first_line)
    return reader.finish()


def read_file(path: str, diag: Diagnostics, config_id: str | None = None) -> list[Node]:
    """Read the keepalived.conf at ``path`` (and what it includes)."""
    with collector_paused():
        reader = _Reader(diag, config_id)
        text = reader.load(path, "", error=True)
        if text is not None:
            reader.read_source(text, path, [])
        return reader.finish()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a large tree is built.

    A 2,000 x 20 configuration is over a million new objects without cycles;
    collections triggered while they are made would double the reading time, and
    the first one after would walk them all again. So the collector is off inside,
    and on the way out of a large read (unless someone froze objects on purpose) the
    new objects go straight to the oldest generation, to be walked only by the next
    full collection if they live that long. Nesting is harmless: only the outermost
    use turns the collector back on. Wrapping a whole load (read, build, validate)
    in it lets the tree die before any collection sees it.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if gc.get_count()[0] > _MANY_NEW_OBJECTS and gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()


class _Text:
    """A piece of one line with the column of each character."""

    __slots__ = ("cols", "continued", "file", "line", "start", "text")

    def __init__(self, text: str, file: str, line: int, start: int,
                 cols: list[int] | None = None, continued: bool = False):
        self.text = text
        self.file = file
        self.line = line
        self.start = start  # column of text[0] when cols is None
        self.cols = cols
        self.continued = continued

    def col(self, index: int) -> int:
        if self.cols is None:
            return self.start + index
        if not self.cols:
            return self.start
        return self.cols[min(index, len(self.cols) - 1)]

    def origin(self, index: int) -> str:
        return f"{self.file}:{self.line}:{self.col(index)}"

    def column_list(self) -> list[int]:
        if self.cols is not None:
            return list(self.cols)
        return list(range(self.start, self.start + len(self.text)))

    def tail(self, index: int) -> _Text:
        """The text from ``index`` on, leading blanks removed."""
        n = len(self.text)
        while index < n and self.text[index] in lexer.WHITESPACE:
            index += 1
        cols = self.cols[index:] if self.cols is not None else None
        return _Text(self.text[index:], self.file, self.line, self.col(index), cols,
                     self.continued)

    def head(self, end: int) -> _Text:
        cols = self.cols[:end] if self.cols is not None else None
        return _Text(self.text[:end], self.file, self.line, self.start, cols)


@dataclass(slots=True)
class _Definition:
    name: str
    value: str = ""
    lines: list[_Text] = field(default_factory=list)  # a multi-line definition
    multiline: bool = False
    function: Callable[[_Reader, str | None], str] | None = None
    max_params: int = 0


class _Builder:
    """Turns the stream of statements and braces into the Node tree."""

    __slots__ = ("current", "diag", "last", "root", "skip", "skip_next", "stack")

    def __init__(self, diag: Diagnostics):
        self.diag = diag
        self.root: list[Node] = []
        self.current = self.root
        self.stack: list[tuple[list[Node], str, str]] = []  # (outer list, opener, what)
        self.last: Node | None = None  # the statement a '{' would open
        self.skip = 0  # depth of a block being skipped
        self.skip_next: tuple[str, str] | None = None  # (origin, id) of a dropped @ID line

    def statement(self, words: list[Word]) -> None:
        if self.skip:
            return
        self.skip_next = None
        node = Node(words[0], words[1:])
        self.current.append(node)
        self.last = node

    def open(self, origin: str) -> None:
        if self.skip:
            self.skip += 1
            return
        if self.skip_next is not None:
            where, ident = self.skip_next
            self.skip_next = None
            self.diag.warning(where, _dropped_block_message(ident))
            self.skip = 1
            return
        node = self.last
        self.last = None
        if node is None or node.children is not None:
            self.diag.error(origin, "'{' with no statement before it")
            children: list[Node] = []
            opener, what = origin, "'{'"
        else:
            children = node.children = []
            opener, what = node.origin, f"block '{node.keyword}'"
        if len(self.stack) >= MAX_BLOCK_DEPTH:
            self.diag.error(origin, f"blocks nested more than {MAX_BLOCK_DEPTH} deep; "
                                    "the contents of this one are ignored")
            self.skip = 1
            return
        self.stack.append((self.current, opener, what))
        self.current = children

    def close(self, origin: str) -> None:
        if self.skip:
            self.skip -= 1
            return
        self.skip_next = None
        self.last = None
        if not self.stack:
            self.diag.error(origin, "'}' with no block to close")
            return
        self.current = self.stack.pop()[0]

    def skip_block(self, depth: int) -> None:
        self.skip += depth

    def finish(self) -> list[Node]:
        for _, opener, what in reversed(self.stack):
            self.diag.error(opener, f"{what} is never closed: missing '}}'")
        self.stack.clear()
        self.current = self.root
        return self.root


def _dropped_block_message(ident: str) -> str:
    return (f"conditional '@{ident}' drops this line, and this block with it; keepalived "
            "2.2.7 drops only the line and reads the block's contents at the outer level, "
            f"so put '@{ident}' on each line of the block")


class _Reader:
    def __init__(self, diag: Diagnostics, config_id: str | None):
        self.diag = diag
        self.config_id = default_config_id() if config_id is None else config_id
        self.builder = _Builder(diag)
        self.defs: dict[str, _Definition] = {}
        self.collecting: _Definition | None = None  # a multi-line definition being read
        self.current_file = ""
        self.expanded_lines = 0
        self.expansion_stopped = False
        self.lexical_problems = 0
        self.include_check = False  # global_defs include_check: include problems are errors
        self._standard_definitions()

    # ----- files -----------------------------------------------------------------

    def load(self, path: str, origin: str, error: bool) -> str | None:
        """The text of the file at ``path``; a problem is reported at ``origin``."""
        report = self.diag.error if error else self.diag.warning
        try:
            info = os.stat(path)
            if stat.S_ISDIR(info.st_mode):
                report(origin, f"{path} is a directory, not a configuration file")
                return None
            if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o111:
                report(origin, f"{path} is not a regular non-executable file; "
                               "keepalived skips it")
                return None
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            self.diag.error(origin, f"cannot read {path}: {e.strerror or e}")
            return None
        return self._decode(data, path)

    def _decode(self, data: bytes, path: str) -> str:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("utf-8", "replace")
            for lineno, raw in enumerate(data.split(b"\n"), 1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    col = len(raw[:e.start].decode("utf-8", "replace")) + 1
                    self._lexical(location(path, lineno, col),
                                  f"bytes that are not UTF-8 (0x{raw[e.start]:02x}); "
                                  "read as U+FFFD")
        if text.startswith("\ufeff"):
            self.diag.warning(location(path, 1, 1), "UTF-8 byte order mark ignored "
                              "(keepalived would read it as part of the first word)")
            text = text[1:]
        return text

    def _lexical(self, origin: str, message: str) -> None:
        self.lexical_problems += 1
        if self.lexical_problems <= MAX_LEXICAL_PROBLEMS:
            self.diag.error(origin, message)
        elif self.lexical_problems == MAX_LEXICAL_PROBLEMS + 1:
            self.diag.error(origin, "too many problems in this file; no more are reported")

    def finish(self) -> list[Node]:
        return self.builder.finish()

    # ----- lines -----------------------------------------------------------------

    def read_source(self, text: str, filename: str, chain: list[str],
                    first_line: int = 1) -> None:
        """Read one file's text; ``chain`` lists the real paths of the including files.
        ``first_line``: the line number of the text's first line (a piece of a file)."""
        outer_file, outer_problems = self.current_file, self.lexical_problems
        outer_check = self.include_check
        self.current_file = filename
        self.lexical_problems = 0
        chain = [*chain, os.path.realpath(filename)]
        if "\r\n" in text:
            text = text.replace("\r\n", "\n")
        careful = _lines_needing_care(text)
        if first_line != 1:
            careful = {n + first_line - 1 for n in careful}
        builder = self.builder
        statement, open_, close = builder.statement, builder.open, builder.close
        new_word = str.__new__
        longest = lexer.KEEPALIVED_MAX_LINE
        collecting = False
        for lineno, raw in enumerate(text.split("\n"), first_line):
            if collecting:
                self._definition_line(raw, filename, lineno)
                collecting = self.collecting is not None
                continue
            if lineno in careful:
                self._careful_line(raw, filename, lineno, chain)
                collecting = self.collecting is not None
                continue
            parts = raw.split()
            if not parts:
                continue
            if len(raw) > longest:
                self._long_line(filename, lineno)
            prefix = f"{filename}:{lineno}:"
            opening = 0
            if "{" in raw or "}" in raw:
                if parts[-1] == "}" and len(parts) == 1:
                    close(f"{prefix}{raw.index('}') + 1}")
                    continue
                if parts[-1] == "{" and raw.count("{") == 1 and "}" not in raw:
                    opening = raw.index("{") + 1  # the usual 'keyword args {'
                    parts.pop()
                else:
                    self._fast_braces(raw, parts, prefix)
                    continue
            words: list[Word] = []
            at = 0
            for part in parts:
                at = raw.find(part, at)
                word = new_word(_PlacedWord, part)
                word._where = prefix
                word._col = at + 1
                words.append(word)
                at += len(part)
            if words:
                statement(words)
            if opening:
                open_(f"{prefix}{opening}")
        if self.collecting is not None:
            self._end_definition()
        self.current_file, self.lexical_problems = outer_file, outer_problems
        self.include_check = outer_check

    def _fast_braces(self, raw: str, parts: list[str], prefix: str) -> None:
        """A plain line with several braces: statements and braces in their order."""
        builder = self.builder
        if raw.count("{") + raw.count("}") != parts.count("{") + parts.count("}"):
            parts = _FAST_TOKEN.findall(raw)  # a brace touches a word
        words: list[Word] = []
        at = 0
        for part in parts:
            at = raw.find(part, at)
            if part == "{" or part == "}":
                if words:
                    builder.statement(words)
                    words = []
                (builder.open if part == "{" else builder.close)(f"{prefix}{at + 1}")
            else:
                word = str.__new__(_PlacedWord, part)
                word._where = prefix
                word._col = at + 1
                words.append(word)
            at += len(part)
        if words:
            builder.statement(words)

    def _long_line(self, filename: str, lineno: int) -> None:
        self.diag.error(location(filename, lineno, lexer.KEEPALIVED_MAX_LINE + 1),
                        f"line longer than {lexer.KEEPALIVED_MAX_LINE} bytes; keepalived "
                        "2.2.7 would cut it into several lines")

    def _checked(self, raw: str, filename: str, lineno: int) -> str:
        """The line with NUL and control characters reported (a NUL ends the line)."""
        if len(raw) > lexer.KEEPALIVED_MAX_LINE // 4 and \
                len(raw.encode("utf-8", "surrogatepass")) > lexer.KEEPALIVED_MAX_LINE:
            self._long_line(filename, lineno)
        for m in _CONTROL.finditer(raw):
            char = m.group()
            if char == "\0":
                self._lexical(location(filename, lineno, m.start() + 1),
                              "NUL byte: the rest of the line is ignored")
                return raw[:m.start()]
            self._lexical(location(filename, lineno, m.start() + 1),
                          f"control character U+{ord(char):04X} in the configuration")
        return raw

    def _careful_line(self, raw: str, filename: str, lineno: int, chain: list[str]) -> None:
        raw = self._checked(raw, filename, lineno)
        found = lexer.decomment(raw)
        if found.start >= found.end:
            return
        text = _Text(raw[found.start:found.end], filename, lineno, found.start + 1,
                     continued=found.continued)
        self._process(text, chain, 0)

    # ----- multi-line definitions --------------------------------------------------

    def _definition_line(self, raw: str, filename: str, lineno: int) -> None:
        if not raw:
            self._end_definition()
            return
        raw = self._checked(raw, filename, lineno)
        found = lexer.decomment(raw)
        definition = self.collecting
        assert definition is not None
        if found.start < found.end:
            definition.lines.append(_Text(raw[found.start:found.end], filename, lineno,
                                          found.start + 1))
        if not found.continued and found.start < found.end:
            self._end_definition()

    def _end_definition(self) -> None:
        definition = self.collecting
        self.collecting = None
        if definition is not None and not definition.lines:
            definition.multiline = False
            definition.value = ""

    # ----- preprocessing -------------------------------------------------------------

    def _process(self, text: _Text | None, chain: list[str], depth: int) -> None:
        """Preprocess one line (and the pieces it is cut into at braces)."""
        if text is not None and depth > MAX_EXPANSION_DEPTH:
            if not self.expansion_stopped:
                self.expansion_stopped = True
                self.diag.error(text.origin(0), f"definitions nested more than "
                                                f"{MAX_EXPANSION_DEPTH} deep (does one "
                                                "use itself?); expansion stopped")
            return
        followups: list[list[_Text]] = []
        while text is not None:
            text = self._step(text, followups, chain, depth)
        for lines in reversed(followups):
            for line in lines:
                if not self._count_expanded(line):
                    return
                self._process(_Text(line.text, line.file, line.line, line.start, line.cols),
                              chain, depth + 1)

    def _count_expanded(self, near: _Text) -> bool:
        if self.expansion_stopped:
            return False
        self.expanded_lines += 1
        if self.expanded_lines > MAX_EXPANDED_LINES:
            self.expansion_stopped = True
            self.diag.error(near.origin(0), f"definitions and ~SEQ/~LST expand to more than "
                                            f"{MAX_EXPANDED_LINES} lines; expansion stopped")
            return False
        return True

    def _step(self, text: _Text, followups: list[list[_Text]], chain: list[str],
              depth: int) -> _Text | None:
        """Preprocess ``text``, emit its first statement or brace; return the rest."""
        for _ in range(MAX_EXPANSION_DEPTH):
            if text.text.startswith("@"):
                kept = self._conditional(text)
                if kept is None:
                    return None
                text = kept
            if text.text.startswith("$") and self._definition(text):
                return None
            if text.text.startswith(("~SEQ", "~LST")):
                self._sequence(text, chain, depth)
                return None
            if text.text.startswith("~") or "$" not in text.text:
                break
            replaced = self._substitute(text, followups)
            if replaced is None:
                break
            text = replaced
            if not text.text.startswith("@"):
                break
        else:
            self.diag.error(text.origin(0), "conditionals and definitions keep producing "
                                            "each other on this line; reading stopped")
            return None
        body = text.text
        if not body:
            return None
        if _is_include(body):
            self._include(text, chain)
            return None
        brace = lexer.first_brace(body)
        if brace < 0:
            self._emit(text)
            return None
        if brace == 0:
            origin = text.origin(0)
            (self.builder.open if body[0] == "{" else self.builder.close)(origin)
            rest = text.tail(1)
        else:
            self._emit(text.head(brace))
            rest = text.tail(brace)
        return rest if rest.text else None

    def _emit(self, text: _Text) -> None:
        tokens, open_quote = lexer.tokenize(text.text)
        if open_quote is not None:
            self.diag.error(text.origin(open_quote),
                            "quoted string not terminated: the rest of the line is ignored")
        if tokens:
            if tokens[0].text == "include_check":
                self._include_check([t.text for t in tokens[1:]])
            self.builder.statement([Word(t.text, text.origin(t.index)) for t in tokens])

    def _include_check(self, options: list[str]) -> None:
        """global_defs 'include_check': which include problems are errors (keepalived
        keeps the setting until the end of the file that sets it)."""
        if not options:
            self.include_check = True
            return
        for option in options:
            if option.startswith("-"):
                continue  # removing one check leaves the others on
            self.include_check = True

    def _conditional(self, text: _Text) -> _Text | None:
        body = text.text
        negated = body.startswith("@^")
        start = 2 if negated else 1
        gap = len(body)
        for blank in " \t":
            at = body.find(blank, start)
            if 0 <= at < gap:
                gap = at
        ident = body[start:gap]
        if gap < len(body) and (ident == self.config_id) != negated:
            return text.tail(gap)
        balance, braces = lexer.brace_balance(body)
        shown = ("^" if negated else "") + ident
        if balance > 0:
            self.diag.warning(text.origin(0), _dropped_block_message(shown))
            self.builder.skip_block(balance)
        elif balance < 0:
            self.diag.warning(text.origin(0), f"conditional '@{shown}' drops this line and "
                                              "the '}' on it")
        elif not braces:
            self.builder.skip_next = (text.origin(0), shown)
        return None

    def _definition(self, text: _Text) -> bool:
        m = _DEFINITION.match(text.text)
        if m is None:
            return False
        name = m.group(1)
        value = text.tail(m.end())
        definition = _Definition(name, value.text)
        self.defs[name] = definition
        if text.continued:
            definition.multiline = True
            if value.text:
                definition.lines.append(value)
            self.collecting = definition
        return True

    # ----- substitution ----------------------------------------------------------------

    def _standard_definitions(self) -> None:
        # Plain functions taking the reader: a closure over it would make a reference
        # cycle that keeps the whole tree alive until a full garbage collection.
        for name, function, params in (("_PWD", _pwd, 0), ("_INSTANCE", _instance, 0),
                                       ("_RANDOM", _random, 2)):
            self.defs[name] = _Definition(name, function=function, max_params=params)
        self.defs["_HASH"] = _Definition("_HASH", "#")
        self.defs["_BANG"] = _Definition("_BANG", "!")

    def _substitute(self, text: _Text, followups: list[list[_Text]]) -> _Text | None:
        """Replace the parameters in ``text``; None when nothing was replaced."""
        body = text.text
        cols: list[int] | None = None
        changed = False
        count = 0
        at = 0
        while True:
            at = body.find("$", at)
            if at < 0 or at == len(body) - 1:
                break
            ref = _reference(body, at)
            if ref is None:
                at += 1
                continue
            name, end, params, braced = ref
            where = text.origin(at) if cols is None else f"{text.file}:{text.line}:{cols[at]}"
            definition = self.defs.get(name)
            problem = None
            if definition is None:
                problem = "undefined"
            elif definition.multiline and end != len(body):
                problem = "multiline"
            elif params is not None and not definition.max_params:
                problem = "params"
            if problem is not None:
                if braced:
                    self.diag.error(where, _reference_problem(problem, name))
                    # Keep the text readable without letting its braces open a block.
                    replacement = f"${name}"
                    if cols is None:
                        cols = text.column_list()
                    cols[at:end] = [cols[at]] * len(replacement)
                    body = body[:at] + replacement + body[end:]
                    changed = True
                    at += len(replacement)
                else:
                    if problem == "undefined":
                        self.diag.warning(where, f"${name} is not defined; "
                                                 "kept as it is")
                    else:
                        self.diag.error(where, _reference_problem(problem, name))
                    at = end
                continue
            count += 1
            if count > MAX_SUBSTITUTIONS_PER_LINE:
                self.diag.error(where, f"${name}: definitions keep expanding on this line; "
                                       "substitution stopped")
                break
            assert definition is not None
            if definition.multiline:
                first = definition.lines[0]
                followups.append(definition.lines[1:])
                if at == 0 and end == len(body):
                    text = _Text(first.text, first.file, first.line, first.start, first.cols)
                    body, cols, at, changed = first.text, None, 0, True
                    if body.lstrip(" \t").startswith("~"):
                        break
                    continue
                value = first.text
            elif definition.function is not None:
                value = definition.function(self, params)
            else:
                value = definition.value
            new_body = body[:at] + value + body[end:]
            if len(new_body) > lexer.KEEPALIVED_MAX_LINE:
                self.diag.error(where, f"substituting ${name} makes the line longer than "
                                       f"{lexer.KEEPALIVED_MAX_LINE} characters; "
                                       "substitution stopped")
                break
            if cols is None:
                cols = text.column_list()
            cols[at:end] = [cols[at] if at < len(cols) else text.col(at)] * len(value)
            body = new_body
            changed = True
            if value.lstrip(" \t").startswith("~"):
                break
        if not changed:
            return None
        return _Text(body, text.file, text.line, text.start, cols, text.continued)

    def _substitute_plain(self, body: str) -> str:
        """Substitute single-line parameters in a string that has no location."""
        scratch = _Text(body, "", 0, 1)
        replaced = self._substitute(scratch, [])
        return body if replaced is None else replaced.text

    # ----- ~SEQ and ~LST ----------------------------------------------------------------

    def _sequence(self, text: _Text, chain: list[str], depth: int) -> None:
        body = text.text
        kind = "~LST" if body.startswith("~LST") else "~SEQ"
        parsed = _parse_lst(body) if kind == "~LST" else _parse_seq(body, self._substitute_plain)
        if isinstance(parsed, str):
            self.diag.error(text.origin(0), f"invalid {kind} specification: {parsed}")
            return
        names, value_sets, rest_at = parsed
        if depth >= MAX_EXPANSION_DEPTH:
            self.diag.error(text.origin(0), f"{kind} nested more than {MAX_EXPANSION_DEPTH} "
                                            "deep; not expanded")
            return
        for values in value_sets:
            if not self._count_expanded(text):
                return
            for name, value in zip(names, values, strict=True):
                self.defs[name] = _Definition(name, value)
            rest = text.tail(rest_at)
            if rest.text:
                self._process(rest, chain, depth + 1)

    # ----- include ----------------------------------------------------------------------

    def _include(self, text: _Text, chain: list[str]) -> None:
        body = text.text
        variant = "" if body[7] in lexer.WHITESPACE else body[7]
        pattern = body[8 + bool(variant):].lstrip(" \t")
        origin = text.origin(0)
        strict = bool(variant) or self.include_check  # problems are errors
        report = self.diag.error if strict else self.diag.warning
        if not pattern:
            self.diag.error(origin, "include needs a file name or pattern")
            return
        if len(chain) > MAX_INCLUDE_DEPTH:
            self.diag.error(origin, f"includes nested more than {MAX_INCLUDE_DEPTH} deep; "
                                    f"{pattern} not read")
            return
        base = os.path.dirname(self.current_file)
        matches: list[str] = []
        for alternative in _expand_braces(pattern):
            if os.path.isabs(alternative) or not base:
                full = alternative
            else:
                full = os.path.join(glob.escape(base), alternative)
            matches.extend(sorted(glob.glob(full)))
        if not matches:
            report(origin, f"include: no file matches {pattern}")
            return
        for path in matches:
            real = os.path.realpath(path)
            if real in chain:
                names = " -> ".join([*chain[chain.index(real):], real])
                self.diag.error(origin, f"include cycle: {names}")
                continue
            content = self.load(path, origin, error=strict)
            if content is not None:
                self.read_source(content, path, chain)


class _PlacedWord(Word):
    """A `Word` made by the fast path: its ``FILE:LINE:`` prefix is shared with the
    other words of its line and the origin string is built when first read, which
    saves a large configuration a million small strings."""

    __slots__ = ("_col", "_where")

    @property  # type: ignore[override]
    def origin(self) -> str:
        if self._col:
            self._where = f"{self._where}{self._col}"
            self._col = 0
        return self._where

    @origin.setter
    def origin(self, value: str) -> None:
        self._where = value
        self._col = 0


def _lines_needing_care(text: str) -> set[int]:
    """Numbers of the lines that need more than splitting into words and braces."""
    lines: set[int] = set()
    count = text.count
    for find in (_find_special, _find_include):
        pos = 0
        lineno = 1
        while (at := find(text, pos)) is not None:
            lineno += count("\n", pos, at)
            lines.add(lineno)
            pos = text.find("\n", at)
            if pos < 0:
                break
            pos += 1
            lineno += 1
    return lines


def _find_special(text: str, pos: int) -> int | None:
    m = _NEEDS_CARE.search(text, pos)
    return None if m is None else m.start()


def _find_include(text: str, pos: int) -> int | None:
    at = text.find("include", pos)
    return None if at < 0 else at


def _pwd(reader: _Reader, _: str | None) -> str:
    return os.path.dirname(os.path.abspath(reader.current_file or "."))


def _instance(reader: _Reader, _: str | None) -> str:
    return reader.config_id


def _random(_: _Reader, params: str | None) -> str:
    numbers = [int(p) for p in (params or "").split()]
    low = numbers[0] if numbers else 0
    high = numbers[1] if len(numbers) > 1 else 32767
    if high < low:
        low, high = high, low
    return str(random.randint(low, high))


def _is_include(body: str) -> bool:
    if not body.startswith("include") or len(body) < 8:
        return False
    if body[7] in lexer.WHITESPACE:
        return True
    return body[7] in "rmwba" and len(body) > 8 and body[8] in lexer.WHITESPACE


def _reference(body: str, at: int) -> tuple[str, int, str | None, bool] | None:
    """The parameter reference at body[at] == '$': (name, end, params, braced)."""
    start = at + 1
    braced = body.startswith("{", start)
    if braced:
        start += 1
    m = _NAME.match(body, start)
    if m is None:
        return None
    name = m.group()
    end = m.end()
    if not braced:
        if end < len(body) and body[end] not in " \t,)":
            return None
        return name, end, None, False
    params_end = end
    while params_end < len(body) and (body[params_end] == " " or body[params_end].isdigit()):
        params_end += 1
    params = body[end:params_end]
    if params.strip() and params != params.rstrip():
        return None
    if params_end >= len(body) or body[params_end] != "}":
        return None
    return name, params_end + 1, params.strip() or None, True


def _reference_problem(problem: str, name: str) -> str:
    if problem == "undefined":
        return f"${{{name}}} is not defined"
    if problem == "multiline":
        return f"${name} is a multi-line definition: it must end the line"
    return f"${name} takes no parameters"


def _expand_braces(pattern: str) -> list[str]:
    """csh-style {a,b} alternatives, as glob(GLOB_BRACE) expands them, in order."""
    depth = 0
    open_at = -1
    commas: list[int] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            if depth == 0:
                open_at = i
                commas = []
            depth += 1
        elif ch == "," and depth == 1:
            commas.append(i)
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                cuts = [open_at, *commas, i]
                head, tail = pattern[:open_at], pattern[i + 1:]
                results: list[str] = []
                for a, b in itertools.pairwise(cuts):
                    results.extend(_expand_braces(head + pattern[a + 1:b] + tail))
                return results
        i += 1
    return [pattern]


def _strtol(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    if digits[:2].lower() == "0x":
        return sign * int(digits[2:], 16)
    if len(digits) > 1 and digits.startswith("0"):
        return sign * int(digits, 8)
    return sign * int(digits)


def _parse_seq(body: str, substitute: Callable[[str], str]
               ) -> tuple[list[str], list[list[str]], int] | str:
    """Parse ``~SEQ(var, [start,] [step,] end) rest``: names, value sets, rest index."""
    at = 4
    hexadecimal = body.startswith("x", at)
    at += hexadecimal
    while at < len(body) and body[at] in " \t":
        at += 1
    if not body.startswith("(", at):
        return "'(' expected"
    close = body.find(")", at)
    if close < 0:
        return "')' expected"
    inner = body[at + 1:close]
    name, _, numbers = inner.partition(",")
    name = name.strip(" \t")
    if not _NAME.fullmatch(name):
        return f"'{name}' is not a parameter name"
    fields = substitute(numbers).split(",") if numbers.strip() else []
    values: list[int] = []
    for item in fields:
        m = _SEQ_NUMBER.fullmatch(item)
        if m is None:
            return f"'{item.strip()}' is not a number"
        values.append(_strtol(m.group(1)))
    if len(values) == 1:
        end = values[0]
        start, step = (-1 if end < 0 else 1), (-1 if end < 1 else 1)
    elif len(values) == 2:
        start, end = values
        step = 1 if start <= end else -1
    elif len(values) == 3:
        start, step, end = values
        if step == 0 or (start < end and step < 0) or (start > end and step > 0):
            return "the step does not lead from start to end"
    else:
        return "one to three numbers expected after the name"
    if hexadecimal and (start < 0 or end < 0):
        return "~SEQx takes positive numbers only"
    count = (end - start) // step + 1
    if count > MAX_EXPANDED_LINES:
        return f"more than {MAX_EXPANDED_LINES} values"
    sets = [[format(start + k * step, "x" if hexadecimal else "d")] for k in range(count)]
    return [name], sets, close + 1


def _parse_lst(body: str) -> tuple[list[str], list[list[str]], int] | str:
    """Parse ``~LST(var, v1, v2...)`` or ``~LST({a, b}, {1, 2}, {3, 4}) rest``."""
    at = 4
    while at < len(body) and body[at] in " \t":
        at += 1
    if not body.startswith("(", at):
        return "'(' expected"
    close = body.find(")", at)
    if close < 0:
        return "')' expected"
    items = _top_level_items(body[at + 1:close])
    if items is None or len(items) < 2:
        return "a name and at least one value expected"
    names = items[0]
    for name in names:
        if not _NAME.fullmatch(name):
            return f"'{name}' is not a parameter name"
    sets: list[list[str]] = []
    for values in items[1:]:
        if len(values) > len(names):
            return "a value set has more values than there are names"
        sets.append(values + [""] * (len(names) - len(values)))
    return names, sets, close + 1


def _top_level_items(inner: str) -> list[list[str]] | None:
    """Split ``a, {b, c}, d`` into [[a], [b, c], [d]]; None when braces do not pair."""
    items: list[list[str]] = []
    i = 0
    n = len(inner)
    while True:
        while i < n and inner[i] in " \t":
            i += 1
        if i < n and inner[i] == "{":
            close = inner.find("}", i)
            if close < 0:
                return None
            items.append([v.strip(" \t") for v in inner[i + 1:close].split(",")])
            i = close + 1
            while i < n and inner[i] in " \t":
                i += 1
            if i < n and inner[i] != ",":
                return None
        else:
            comma = inner.find(",", i)
            comma = n if comma < 0 else comma
            items.append([inner[i:comma].strip(" \t")])
            i = comma
        if i >= n:
            return items
        i += 1
