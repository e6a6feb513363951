"""Reading the lines of keepalived.conf blocks: what every builder shares.

A builder reads a block through a table that maps each keyword to a `Handler`: the
handler reads its line, reports bad values into `Diagnostics`, and records the value
and where it was written in `Fields`. The factories below make the handlers of the
usual line shapes (``keyword [on|off]``, ``keyword WORD``, ``keyword NUMBER``,
``keyword SECONDS``...); the value readers read what several builders read alike
(scripts, FIFOs, interface names, CPU lists); the last section holds the handlers of the
``global_defs`` keywords that both the global settings and the VRRP globals read.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Any

from director.config import convert
from director.config.errors import Diagnostics
from director.config.model import Script
from director.config.tree import Node, Word
from vrrp.spec import FieldOrigin, NotifyFifo

UINT32_MAX = 2**32 - 1
INT32_MAX = 2**31 - 1
MAX_SECONDS = 1e9  # ~31 years: beyond any sensible timer, and safe for timer arithmetic
IFNAMSIZ = 16  # the kernel's limit on interface names, with their terminating NUL


# ----------------------------------------------------------------- reading a block


class Fields:
    """What one block set: field values and where each was written."""

    __slots__ = ("origins", "values")

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.origins: dict[str, str] = {}

    def set(self, name: str, value: Any, origin: str) -> None:
        self.values[name] = value
        self.origins[name] = origin

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def origin(self, name: str, default: str = "") -> str:
        return self.origins.get(name, default)

    def field_origins(self) -> tuple[FieldOrigin, ...]:
        return tuple(FieldOrigin(name=n, origin=o) for n, o in self.origins.items())


Handler = Callable[[Node, Diagnostics, Fields], None]
Reader = Callable[[Node, Diagnostics], Any]  # a line's value, or None (reported)


def read_block(children: Iterable[Node], diag: Diagnostics, table: Mapping[str, Handler],
               where: str, fields: Fields | None = None,
               skip: Iterable[str] = ()) -> Fields:
    """Run each line of a block through its handler; unknown keywords are warnings
    (but for those in ``skip``, which another builder reads)."""
    fields = Fields() if fields is None else fields
    skipped = frozenset(skip)
    for node in children:
        handler = table.get(node.keyword)
        if handler is not None:
            handler(node, diag, fields)
        elif node.keyword not in skipped:
            unknown_keyword(node, diag, where, table)
    return fields


def unknown_keyword(node: Node, diag: Diagnostics, where: str, known: Iterable[str],
                    hint: str = "") -> None:
    """Warn of an unknown keyword, with the closest known one (or ``hint``)."""
    if not hint:
        close = difflib.get_close_matches(str(node.keyword), list(known), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
    diag.warning(node.origin, f"unknown keyword '{node.keyword}' in {where}{hint}; ignored")


def no_block(node: Node, diag: Diagnostics) -> None:
    if node.children is not None:
        diag.warning(node.origin, f"'{node.keyword}' takes no block; the block is ignored")


def value_origin(node: Node) -> str:
    """Where a keyword's value is (its first argument), else where the keyword is."""
    return node.args[0].origin if node.args else node.origin


def list_block(node: Node, diag: Diagnostics) -> list[Node] | None:
    """The lines of a list block (``virtual_ipaddress { ... }``, ``group { ... }``)."""
    if node.children is None:
        diag.error(node.origin, f"'{node.keyword}' needs a {{ }} block")
        return None
    if node.args:
        diag.warning(node.args[0].origin, f"'{node.keyword}' takes no arguments; "
                                          f"'{' '.join(node.args)}' ignored")
    for child in node.children:
        if child.children is not None:
            diag.warning(child.origin, f"unexpected block after '{child.keyword}' in "
                                       f"'{node.keyword}'; ignored")
    return node.children


def named_block(node: Node, diag: Diagnostics, what: str) -> str | None:
    """The name of ``KEYWORD NAME { ... }``; None (reported) when it cannot be used."""
    if node.children is None:
        diag.error(node.origin, f"'{node.keyword}' needs a {{ }} block")
        return None
    if len(node.args) != 1:
        where = node.args[1].origin if len(node.args) > 1 else node.origin
        diag.error(where, f"{what} must have exactly one name")
        return None
    return str(node.args[0])


# ----------------------------------------------------------------- value readers


def read_timer(word: Word, diag: Diagnostics, what: str, positive: bool = False,
               high: float = MAX_SECONDS, low: float = 0,
               whole: bool = False) -> float | None:
    """A duration in seconds from ``low`` to ``high``. ``positive``: 0 is refused (as
    keepalived words it); ``whole``: keepalived reads a whole number of seconds."""
    if whole:
        number = convert.integer(word, diag, int(low), int(high), what)
        value = None if number is None else float(number)
    else:
        value = convert.number(word, diag, low, high, what)
    if value is not None and positive and value == 0:
        diag.error(word.origin, f"{what} must be greater than 0")
        return None
    return value


def read_owned(node: Node, diag: Diagnostics) -> tuple[Word, str | None, str | None] | None:
    """``keyword THING [USER [GROUP]]`` (a script or a FIFO, and who runs or owns it)."""
    no_block(node, diag)
    if not convert.args(node, diag, 1, 3):
        return None
    words = node.args
    return (words[0], str(words[1]) if len(words) > 1 else None,
            str(words[2]) if len(words) > 2 else None)


def read_script(node: Node, diag: Diagnostics) -> Script | None:
    """``keyword COMMAND [USER [GROUP]]`` (a command with arguments is quoted)."""
    owned = read_owned(node, diag)
    if owned is None:
        return None
    command, user, group = owned
    if not command.strip():
        diag.error(command.origin, f"'{node.keyword}' needs a command")
        return None
    return Script(command=str(command), user=user, group=group, origin=node.origin)


def read_fifo(node: Node, diag: Diagnostics) -> NotifyFifo | None:
    """``keyword PATH [USER [GROUP]]``."""
    owned = read_owned(node, diag)
    if owned is None:
        return None
    path, user, group = owned
    return NotifyFifo(path=str(path), user=user, group=group, origin=node.origin)


def read_interface_name(word: Word, diag: Diagnostics, what: str = "interface") -> str | None:
    name = str(word)
    if not name or len(name) >= IFNAMSIZ or name in (".", "..") or any(
            c in "/:" or c.isspace() for c in name):
        diag.error(word.origin, f"'{name}' is not a valid {what} name")
        return None
    return name


def read_cpus(node: Node, diag: Diagnostics) -> tuple[int, ...] | None:
    """``keyword CPU...`` (a process's CPU affinity)."""
    if not convert.args(node, diag, 1):
        return None
    cpus = [convert.integer(w, diag, 0, 4095, "cpu") for w in node.args]
    return None if None in cpus else tuple(c for c in cpus if c is not None)


def read_rlimit_rttime(node: Node, diag: Diagnostics) -> float | None:
    """``keyword USECS``: keepalived takes 1 and uses 2, its minimum (in seconds here)."""
    word = convert.first(node, diag)
    if word is None:
        return None
    usecs = convert.integer(word, diag, 1, UINT32_MAX, str(node.keyword))
    return None if usecs is None else max(usecs, 2) / 1e6


# ----------------------------------------------------------------- handler factories


def flag_field(name: str) -> Handler:
    """A keyword that is on when present (``keyword [on|off|yes|no|true|false]``)."""
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
        value = convert.flag(node, diag)
        if value is not None:
            fields.set(name, value, value_origin(node))
    return handler


def set_value(name: str, value: Any) -> Handler:
    """A keyword without arguments that sets ``name`` to ``value``."""
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
        if convert.args(node, diag, 0, 0):
            fields.set(name, value, node.origin)
    return handler


def word_field(name: str) -> Handler:
    """``keyword WORD``: a name, a path."""
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
        word = convert.first(node, diag)
        if word is not None:
            fields.set(name, str(word), word.origin)
    return handler


def text_field(name: str) -> Handler:
    """``keyword TEXT...``: free text, its words joined by a space (as keepalived)."""
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
        if convert.args(node, diag, 1):
            fields.set(name, " ".join(node.args), node.args[0].origin)
    return handler


def int_field(name: str, low: int, high: int, what: str | None = None) -> Handler:
    """``keyword NUMBER``; problems name the keyword, or ``what``."""
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
        word = convert.first(node, diag)
        if word is None:
            return
        value = convert.integer(word, diag, low, high, what or str(node.keyword))
        if value is not None:
            fields.set(name, value, word.origin)
    return handler


def enum_field(name: str, enum: type[StrEnum], what: str,
               case_sensitive: bool = False) -> Handler:
    """``keyword VALUE``: one of ``enum``'s values."""
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
        word = convert.first(node, diag)
        if word is not None:
            value = convert.choice(word, [e.value for e in enum], diag, what, case_sensitive)
            if value is not None:
                fields.set(name, enum(value), word.origin)
    return handler


def timer_field(name: str, low: float = 0, high: float = MAX_SECONDS, *,
                positive: bool = False, whole: bool = False, large: float | None = None,
                scale: float = 1.0) -> Handler:
    """``keyword SECONDS`` (see `read_timer`); ``large``: warn (as keepalived) from this
    value up; ``scale`` converts other units (1e-6 for usecs)."""
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
        word = convert.first(node, diag)
        if word is None:
            return
        value = read_timer(word, diag, str(node.keyword), positive, high, low, whole)
        if value is None:
            return
        if large is not None and value >= large:
            diag.warning(word.origin, f"{node.keyword} {word} seconds is very large")
        fields.set(name, value * scale, word.origin)
    return handler


def interface_field(name: str) -> Handler:
    """``keyword INTERFACE``."""
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
        word = convert.first(node, diag)
        if word is not None:
            value = read_interface_name(word, diag)
            if value is not None:
                fields.set(name, value, word.origin)
    return handler


def reader_field(name: str, read: Reader) -> Handler:
    """A line that ``read`` reads whole (it checks the block and the arguments)."""
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        value = read(node, diag)
        if value is not None:
            fields.set(name, value, value_origin(node))
    return handler


def script_field(name: str) -> Handler:
    return reader_field(name, read_script)


def once_field(name: str, read: Reader) -> Handler:
    """A setting keepalived takes only once (notify scripts): a repeat is an error."""
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        if name in fields:
            diag.error(node.origin, f"'{node.keyword}' already set at "
                                    f"{fields.origin(name)}; this one is ignored")
            return
        value = read(node, diag)
        if value is not None:
            fields.set(name, value, value_origin(node))
    return handler


def deprecated(keyword: str, handler: Handler, instead: str) -> Handler:
    """``handler`` after a warning that ``keyword`` is deprecated (``instead``: the
    keyword to use, or a phrase)."""
    use = instead if " " in instead else f"'{instead}'"

    def wrapped(node: Node, diag: Diagnostics, fields: Fields) -> None:
        diag.warning(node.origin, f"'{keyword}' is deprecated; use {use}")
        handler(node, diag, fields)
    return wrapped


# ----------------------------------------------------------------- global_defs lines both
# the global settings (build_globals) and the VRRP globals (build_vrrp) read


def script_user(node: Node, diag: Diagnostics, fields: Fields) -> None:
    """``script_user USER [GROUP]``."""
    no_block(node, diag)
    if not convert.args(node, diag, 1, 2):
        return
    fields.set("script_user", str(node.args[0]), node.args[0].origin)
    if len(node.args) == 2:
        fields.set("script_group", str(node.args[1]), node.args[1].origin)


def dynamic_interfaces(node: Node, diag: Diagnostics, fields: Fields) -> None:
    """``dynamic_interfaces [allow_if_changes]``."""
    no_block(node, diag)
    if not convert.args(node, diag, 0, 1):
        return
    if node.args:
        if node.args[0] != "allow_if_changes":
            diag.error(node.args[0].origin, f"unknown option '{node.args[0]}' of "
                                            "dynamic_interfaces (expected allow_if_changes)")
            return
        fields.set("dynamic_interfaces_allow_if_changes", True, node.args[0].origin)
    fields.set("dynamic_interfaces", True, node.origin)
