"""Readers for keyword arguments: each returns the value, or None after reporting a
problem at the word's location, so that one bad value never stops the load."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from director.config.errors import Diagnostics
from director.config.tree import Node, Word

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

_TRUE = {"on", "true", "yes", "1"}
_FALSE = {"off", "false", "no", "0"}


def args(node: Node, diag: Diagnostics, minimum: int, maximum: int | None = None) -> bool:
    """Check the number of arguments; report and return False when it is wrong."""
    count = len(node.args)
    if count < minimum:
        need = "an argument" if minimum == 1 else f"{minimum} arguments"
        diag.error(node.origin, f"'{node.keyword}' needs {need}")
        return False
    if maximum is not None and count > maximum:
        extra = node.args[maximum]
        diag.error(extra.origin, f"'{node.keyword}' takes at most {maximum} argument(s), "
                                 f"unexpected '{extra}'")
        return False
    return True


def first(node: Node, diag: Diagnostics) -> Word | None:
    """The single argument of a ``keyword VALUE`` line."""
    return node.args[0] if args(node, diag, 1, 1) else None


def integer(word: Word, diag: Diagnostics, low: int | None = None, high: int | None = None,
            what: str = "value") -> int | None:
    try:
        value = int(word, 0) if word.lower().startswith(("0x", "0o")) else int(word)
    except ValueError:
        diag.error(word.origin, f"{what} '{word}' is not a whole number")
        return None
    return _in_range(word, value, diag, low, high, what)


def number(word: Word, diag: Diagnostics, low: float | None = None, high: float | None = None,
           what: str = "value") -> float | None:
    try:
        value = float(word)
    except ValueError:
        diag.error(word.origin, f"{what} '{word}' is not a number")
        return None
    if value != value or value in (float("inf"), float("-inf")):
        diag.error(word.origin, f"{what} '{word}' is not a finite number")
        return None
    return _in_range(word, value, diag, low, high, what)


def _in_range(word: Word, value, diag: Diagnostics, low, high, what: str):
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"{low}-{high}" if low is not None and high is not None else (
            f">= {low}" if low is not None else f"<= {high}")
        diag.error(word.origin, f"{what} {word} is out of range ({span})")
        return None
    return value


def flag(node: Node, diag: Diagnostics) -> bool | None:
    """A keyword that is on by being present, optionally followed by on/off/true/false."""
    if not node.args:
        return True
    if not args(node, diag, 1, 1):
        return None
    word = node.args[0].lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    diag.error(node.args[0].origin, f"'{node.keyword}' expects on/off, true/false or yes/no, "
                                    f"not '{node.args[0]}'")
    return None


def choice(word: Word, choices: Iterable[str], diag: Diagnostics, what: str = "value",
           case_sensitive: bool = False) -> str | None:
    options = list(choices)
    key = str(word) if case_sensitive else word.lower()
    for option in options:
        if key == (option if case_sensitive else option.lower()):
            return option
    diag.error(word.origin, f"unknown {what} '{word}' (expected one of: {', '.join(options)})")
    return None


def address(word: Word, diag: Diagnostics, what: str = "address") -> IPAddress | None:
    try:
        return ipaddress.ip_address(str(word).split("%", 1)[0])
    except ValueError:
        diag.error(word.origin, f"'{word}' is not a valid IP {what}")
        return None


def interface(word: Word, diag: Diagnostics, what: str = "address") -> IPInterface | None:
    """An address with an optional /prefix (a host prefix when none is given)."""
    try:
        return ipaddress.ip_interface(str(word))
    except ValueError:
        diag.error(word.origin, f"'{word}' is not a valid IP {what} (with optional /prefix)")
        return None


def port(word: Word, diag: Diagnostics) -> int | None:
    return integer(word, diag, 0, 65535, "port")
