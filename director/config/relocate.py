"""Move built configuration objects to other lines of their file.

A block reused from an earlier load (`director.config.incremental`) may have moved
since: every ``FILE:LINE:COL`` origin in what was built from it must then name the new
line. `shift_lines` copies the objects that hold such origins, with the line numbers
moved, and leaves the rest shared. It knows the kinds of values a configuration is made
of; on anything else it raises `Unrelocatable`, so that the caller builds afresh
rather than keep a stale origin.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import re
import types
import typing
from collections.abc import Callable
from typing import Any

from director.config.tree import Word


class Unrelocatable(Exception):
    """A value whose origins this module cannot be sure to find."""


_LEAF, _STR, _TUPLE, _OBJECT, _FROZENSET, _LIST, _DICT, _WORD = range(8)

_KINDS: dict[type, int] = {
    type(None): _LEAF, bool: _LEAF, int: _LEAF, float: _LEAF, bytes: _LEAF,
    ipaddress.IPv4Address: _LEAF, ipaddress.IPv6Address: _LEAF,
    ipaddress.IPv4Network: _LEAF, ipaddress.IPv6Network: _LEAF,
    ipaddress.IPv4Interface: _LEAF, ipaddress.IPv6Interface: _LEAF,
    re.Pattern: _LEAF, str: _STR, tuple: _TUPLE, frozenset: _FROZENSET, list: _LIST,
    dict: _DICT,
}
_PLANS: dict[type, tuple[tuple[str, ...], tuple[int, ...]]] = {}


def _kind(cls: type) -> int:
    kind = _KINDS.get(cls)
    if kind is None:
        if issubclass(cls, enum.Enum):
            kind = _LEAF
        elif issubclass(cls, Word):
            kind = _WORD
        elif dataclasses.is_dataclass(cls):
            kind = _OBJECT
        else:
            raise Unrelocatable(f"cannot relocate a {cls.__qualname__}")
        _KINDS[cls] = kind
    return kind


def _plan(cls: type) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Every attribute an instance of the dataclass ``cls`` may hold, and the indexes
    of those that may hold an origin (all but the fields whose type says they hold
    only numbers, enums or addresses)."""
    plan = _PLANS.get(cls)
    if plan is None:
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            if "__dict__" in vars(klass) and klass is not object:
                raise Unrelocatable(f"{cls.__qualname__} is not a slots dataclass")
            slots = vars(klass).get("__slots__", ())
            for name in (slots,) if isinstance(slots, str) else slots:
                if name not in ("__weakref__", "__dict__") and name not in names:
                    names.append(name)
        try:
            hints = typing.get_type_hints(cls)
        except Exception as error:  # an annotation that does not resolve
            raise Unrelocatable(f"{cls.__qualname__}: {error}") from error
        fields = {f.name for f in dataclasses.fields(cls)}
        visit = tuple(i for i, name in enumerate(names)
                      if name not in fields or not _holds_no_text(hints.get(name, str)))
        plan = _PLANS[cls] = (tuple(names), visit)
    return plan


_PLAIN_TYPES = (int, float, bool, bytes, type(None), enum.Enum, ipaddress.IPv4Address,
                ipaddress.IPv6Address, ipaddress.IPv4Network, ipaddress.IPv6Network)


def _holds_no_text(hint: Any) -> bool:
    if hint is type(None) or hint is None:
        return True
    if isinstance(hint, type):
        if issubclass(hint, enum.Enum):
            return True
        return issubclass(hint, _PLAIN_TYPES) and not issubclass(hint, str)
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return True  # constants written in the code, not read from a file
    if origin in (typing.Union, types.UnionType, tuple, frozenset):
        return all(arg is Ellipsis or _holds_no_text(arg) for arg in typing.get_args(hint))
    return False


class _Shifter:
    __slots__ = ("delta", "length", "memo", "prefix")

    def __init__(self, filename: str, delta: int):
        self.prefix = f"{filename}:"
        self.length = len(self.prefix)
        self.delta = delta
        self.memo: dict[int, Any] = {}  # id -> relocated object (shared objects stay shared)

    def value(self, value: Any) -> Any:
        cls = value.__class__
        if cls is str:
            return self.text(value) if value.startswith(self.prefix) else value
        if cls is tuple:
            return self.tuple(value)
        copier = _COPIERS.get(cls)
        if copier is not None:
            return self.object(value, copier)
        kind = _KINDS.get(cls)
        if kind is None:
            kind = _kind(cls)
        if kind == _LEAF:
            return value
        if kind == _OBJECT:
            return self.object(value, _copier(cls))
        if kind == _FROZENSET:
            items = [self.value(item) for item in value]
            if all(a is b for a, b in zip(items, value, strict=True)):
                return value
            return frozenset(items)
        if kind == _LIST:
            return [self.value(item) for item in value]
        if kind == _DICT:
            return {self.value(k): self.value(v) for k, v in value.items()}
        if kind == _STR:  # a str subclass: a new plain str only when moved
            moved = self.text(value)
            return value if moved == value else moved
        return Word(self.text(str(value)), self.text(value.origin))  # _WORD

    def tuple(self, items: tuple[Any, ...]) -> tuple[Any, ...]:
        value = self.value
        moved = [value(item) for item in items]
        for a, b in zip(moved, items):  # noqa: B905 - same length
            if a is not b:
                return tuple(moved)
        return items

    def text(self, text: str) -> str:
        if not text.startswith(self.prefix):
            return text
        line, colon, col = text[self.length:].partition(":")
        if not (colon and line.isdigit() and col.isdigit()):
            return text
        return f"{self.prefix}{int(line) + self.delta}:{col}"

    def object(self, obj: Any, copier: _Copier) -> Any:
        key = id(obj)
        done = self.memo.get(key)
        if done is not None:
            return done
        try:
            result = copier(obj, self.value, self.text, self.prefix)
        except AttributeError as error:  # a slot left unset
            raise Unrelocatable(f"{type(obj).__qualname__}: {error}") from error
        self.memo[key] = result
        return result


_Copier = Callable[[Any, Callable[[Any], Any], Callable[[str], str], str], Any]
_COPIERS: dict[type, _Copier] = {}


def _copier(cls: type) -> _Copier:
    """A function made for ``cls`` (generated: a loop over the attributes costs twice
    as much): ``(obj, value, text, prefix) -> obj`` or a copy with its origins moved."""
    names, visit = _plan(cls)
    lines = ["def copy(obj, value, text, prefix):"]
    for index in visit:
        lines += [f"    o{index} = obj.{names[index]}",
                  f"    if o{index}.__class__ is str:",
                  f"        n{index} = text(o{index}) if o{index}.startswith(prefix) "
                  f"else o{index}",
                  f"    elif o{index} is None:",
                  f"        n{index} = None",
                  "    else:",
                  f"        n{index} = value(o{index})"]
    same = " and ".join(f"n{i} is o{i}" for i in visit) or "True"
    lines.append(f"    if {same}:")
    lines.append("        return obj")
    lines.append("    new = make(cls)")
    for index, name in enumerate(names):
        source = f"n{index}" if index in visit else f"obj.{name}"
        lines.append(f"    put(new, {name!r}, {source})")
    lines.append("    return new")
    namespace: dict[str, Any] = {"make": object.__new__, "put": object.__setattr__,
                                 "cls": cls}
    exec(compile("\n".join(lines), f"<relocate {cls.__qualname__}>", "exec"), namespace)
    copier = _COPIERS[cls] = namespace["copy"]
    return copier


_UNSET = object()


def shift_lines(value: Any, filename: str, delta: int) -> Any:
    """``value`` with every origin in ``filename`` moved ``delta`` lines (copies where
    something changes). Raises `Unrelocatable` on a value of an unknown kind."""
    if delta == 0:
        return value
    return _Shifter(filename, delta).value(value)
