"""Load a keepalived.conf again, reusing what an earlier load of the same file built.

A reload usually changes a few blocks of a large file. `LoadCache.load` cuts the file
into pieces of whole top-level statements, and keeps the virtual servers built from
each piece under the piece's exact text: a piece whose text was loaded before is not
read or built again; when it has moved, its origins are moved with it
(`director.config.relocate`), at once or, with ``defer_moves``, only when `settle` is
called (a reload applies its change first; moving 2,000 blocks costs half a second).
Everything else (global_defs, VRRP, groups, and the validation of the whole) is done
afresh on every load, as `load_keepalived` does.

It is only done where the meaning of a piece depends on nothing but its own text:
a file without includes, ``$`` definitions, ``@`` conditionals, ``~SEQ``/``~LST``,
backslashes or control characters (quotes, and '@' or '~' inside a word, are fine),
whose pieces read without a problem, and
whose global settings (which virtual servers inherit) are those of the earlier load.
Anything else is loaded from scratch by `load_keepalived`, so the result is always the
one a fresh load gives: the same configuration and the same problems at the same
``FILE:LINE:COL``.
"""

from __future__ import annotations

import os
import re
import stat
from collections import OrderedDict
from dataclasses import dataclass, replace

from director.config.build_lvs import build_virtual_server
from director.config.errors import ConfigError, Diagnostics, Problem
from director.config.keepalived import build_config, gc_paused, load_keepalived
from director.config.lexer import brace_balance, decomment
from director.config.model import Config, GlobalDefs, VirtualServer
from director.config.reader import read_piece
from director.config.relocate import Unrelocatable, shift_lines
from director.config.tree import Node, Word

# Text that makes a piece's meaning depend on more than itself, or that the reader
# reports (control characters, a byte order mark, CR line ends).
_NOT_PLAIN = re.compile(r'[$\\\x00-\x08\x0b-\x1f\x7f\ufeff]')  # and "include"
# Where a top-level statement may start: a word at the start of a line.
_STATEMENT_START = re.compile(r"^[^\s#!{}]", re.MULTILINE)
_COMMENT = re.compile(r"[#!][^\n]*")


def split_pieces(text: str) -> list[tuple[int, str]] | None:
    """Cut plain keepalived.conf text (see `_NOT_PLAIN`) into pieces of whole top-level
    statements: (number of the piece's first line, its text). Each piece but the first
    starts at the start of a line, outside any block. None when a '}' closes more
    blocks than are open (the reader reports it; a fresh load does that)."""
    pieces: list[tuple[int, str]] = []
    depth = 0
    piece_start, piece_line = 0, 1
    line = 1
    previous = 0
    count = text.count
    for match in _STATEMENT_START.finditer(text):
        at = match.start()
        if at == 0:
            continue
        line += count("\n", previous, at)
        if text.find('"', previous, at) >= 0:  # braces and comment marks in quotes
            depth += sum(_braces(line) for line in text[previous:at].split("\n"))
        elif text.find("#", previous, at) >= 0 or text.find("!", previous, at) >= 0:
            body = _COMMENT.sub("", text[previous:at])
            depth += body.count("{") - body.count("}")
        else:
            depth += count("{", previous, at) - count("}", previous, at)
        previous = at
        if depth < 0:
            return None
        if depth == 0:
            pieces.append((piece_line, text[piece_start:at]))
            piece_start, piece_line = at, line
    if piece_start < len(text):
        pieces.append((piece_line, text[piece_start:]))
    return pieces


def _braces(line: str) -> int:
    """Opening minus closing braces of a line, as the reader counts them (quotes)."""
    cut = decomment(line)
    return brace_balance(line[cut.start:cut.end])[0]


@dataclass(slots=True)
class _Built:
    """A virtual server built from a piece that started at ``first_line``."""

    first_line: int
    virtual_server: VirtualServer


@dataclass(slots=True)
class _FileState:
    global_defs: GlobalDefs
    pieces: dict[str, _Built]  # piece text -> what it built


class _Reused(Node):
    """A virtual_server statement whose piece was built before: read only if needed."""

    __slots__ = ("built", "first_line", "piece")


class _Fallback(Exception):
    """The incremental load cannot be sure of its result: load from scratch."""


@dataclass(slots=True)
class _Deferred:
    """A reused virtual server left where it was built: its origins name the lines of
    ``built.first_line``'s piece; the piece now starts at ``first_line``."""

    built: _Built
    piece: str
    first_line: int


@dataclass(slots=True)
class _Unsettled:
    path: str
    config: Config
    moves: list[_Deferred]


class LoadCache:
    """What the last loads of a few files built. Not thread-safe: one load at a time."""

    def __init__(self, files: int = 4):
        self._files: OrderedDict[str, _FileState] = OrderedDict()
        self._size = files
        self.reused = 0  # virtual servers reused by the last load (for benches and tests)
        self.moved = 0  # ... of which moved to other lines
        self.deferred = 0  # ... of which left with their earlier origins until `settle`
        self._moves: list[_Deferred] = []  # the deferred moves of the load under way
        self._unsettled: _Unsettled | None = None

    def clear(self) -> None:
        self._files.clear()

    def load(self, path: str, *, strict: bool = False, config_id: str | None = None,
             defer_moves: bool = False) -> tuple[Config, list[Problem]]:
        """`load_keepalived(path, ...)`, reusing the earlier loads' work where it can.

        ``defer_moves``: reused virtual servers whose lines moved keep the origins of
        their earlier lines (nothing is copied) until `settle` is given the config, as
        long as the load reports no problem (problems always name the right lines: the
        load is then done again with the moves made)."""
        self._unsettled = None
        with gc_paused():
            try:
                config, diag = self._load(path, strict, config_id, defer_moves)
                if self._moves and diag.problems:
                    config, diag = self._load(path, strict, config_id, False)
            except _Fallback:
                self.reused = self.moved = self.deferred = 0
                self._moves = []
                return load_keepalived(path, strict=strict, config_id=config_id)
        if self._moves:
            self._unsettled = _Unsettled(path, config, self._moves)
            self._moves = []
        if diag.failed:
            raise ConfigError(diag.problems)
        return config, list(diag.problems)

    def settle(self, config: Config) -> Config:
        """``config``, the last load's, with the moves it deferred made (the same config
        when it has none). Raises `Unrelocatable` where a move cannot be made."""
        unsettled, self._unsettled = self._unsettled, None
        if unsettled is None or unsettled.config is not config:
            return config
        state = self._files.get(unsettled.path)
        moved: dict[int, VirtualServer] = {}
        with gc_paused():
            for move in unsettled.moves:
                old = move.built.virtual_server
                vs = shift_lines(old, unsettled.path,
                                 move.first_line - move.built.first_line)
                moved[id(old)] = vs
                if state is not None and state.pieces.get(move.piece) is move.built:
                    state.pieces[move.piece] = _Built(move.first_line, vs)
        return replace(config, virtual_servers=tuple(
            moved.get(id(vs), vs) for vs in config.virtual_servers))

    def _load(self, path: str, strict: bool, config_id: str | None,
              defer_moves: bool) -> tuple[Config, Diagnostics]:
        self.reused = self.moved = self.deferred = 0
        self._moves = []
        text = _plain_text(path)
        pieces = split_pieces(text) if text is not None else None
        if pieces is None:
            self._files.pop(path, None)
            raise _Fallback
        earlier = self._files.get(path)
        known = earlier.pieces if earlier is not None else {}
        diag = Diagnostics(strict=strict)
        nodes: list[Node] = []
        sources: dict[int, tuple[str, int]] = {}  # id(virtual_server node) -> its piece
        for first_line, piece in pieces:
            built = known.get(piece)
            if built is not None:
                node = _Reused(Word("virtual_server", f"{path}:{first_line}:1"), [], [])
                node.built, node.first_line, node.piece = built, first_line, piece
                nodes.append(node)
                continue
            read = _read(piece, path, first_line, config_id)
            if len(read) == 1 and read[0].keyword == "virtual_server":
                sources[id(read[0])] = (piece, first_line)
            nodes.extend(read)
        kept: dict[str, _Built] = {}
        inherited: list[GlobalDefs] = []

        def virtual_servers(vs_nodes: list[Node], diag: Diagnostics,
                            global_defs: GlobalDefs) -> list[VirtualServer]:
            inherited.append(global_defs)
            reuse = earlier is not None and earlier.global_defs == global_defs
            result: list[VirtualServer] = []
            for node in vs_nodes:
                if isinstance(node, _Reused):
                    if reuse:
                        result.append(self._reuse(node, path, kept, defer_moves))
                        continue
                    piece, first_line = node.piece, node.first_line
                    node = _read(piece, path, first_line, config_id)[0]
                    sources[id(node)] = (piece, first_line)
                before = len(diag.problems)
                vs = build_virtual_server(node, diag, global_defs)
                if vs is None:
                    continue
                result.append(vs)
                source = sources.get(id(node))
                if source is not None and len(diag.problems) == before:
                    kept[source[0]] = _Built(source[1], vs)
            return result

        try:
            config = build_config(nodes, diag, virtual_servers)
        except Unrelocatable as error:
            raise _Fallback from error
        if inherited:
            self._remember(path, _FileState(inherited[0], kept))
        return config, diag

    def _reuse(self, node: _Reused, path: str, kept: dict[str, _Built],
               defer_moves: bool) -> VirtualServer:
        built: _Built = node.built
        vs = built.virtual_server
        if node.first_line != built.first_line:
            self.moved += 1
            if defer_moves:
                self._moves.append(_Deferred(built, node.piece, node.first_line))
                self.deferred += 1
            else:
                vs = shift_lines(vs, path, node.first_line - built.first_line)
                built = _Built(node.first_line, vs)
        self.reused += 1
        kept[node.piece] = built
        return vs

    def _remember(self, path: str, state: _FileState) -> None:
        self._files[path] = state
        self._files.move_to_end(path)
        while len(self._files) > self._size:
            self._files.popitem(last=False)


def _plain_text(path: str) -> str | None:
    """The text of the regular file at ``path`` when it is plain; None otherwise (and
    for anything a fresh load reports: unreadable, not UTF-8, a directory...)."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o111:
            return None
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if "include" in text or _NOT_PLAIN.search(text) or _marked_statement(text):
        return None
    return text


def _marked_statement(text: str) -> bool:
    """Whether a statement starts with '@' (a conditional line) or '~' (~SEQ, ~LST).
    A statement starts a line or follows a brace ("ops@example.org" is only a word)."""
    for mark in "@~":
        at = text.find(mark)
        while at >= 0:
            before = at - 1
            while before >= 0 and text[before] in " \t":
                before -= 1
            if before < 0 or text[before] in "\n{}":
                return True
            at = text.find(mark, at + 1)
    return False


def _read(piece: str, path: str, first_line: int, config_id: str | None) -> list[Node]:
    diag = Diagnostics()
    nodes = read_piece(piece, path, first_line, diag, config_id)
    if diag.problems:
        raise _Fallback  # reported, in their place among the others, by a fresh load
    return nodes
