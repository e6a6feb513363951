"""What the config unit tests share: where a word stands in a config text, and the
problems a `Diagnostics` collected, as (origin, message) pairs."""

from __future__ import annotations

import textwrap

from director.config.errors import Diagnostics, Severity

FILE = "t.conf"


def dedent(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def where(text: str, needle: str, nth: int = 0, *, file: str = FILE) -> str:
    """FILE:LINE:COL of the nth occurrence of ``needle`` in the dedented ``text``."""
    seen = 0
    for number, line in enumerate(dedent(text).splitlines(), 1):
        start = 0
        while (col := line.find(needle, start)) >= 0:
            if seen == nth:
                return f"{file}:{number}:{col + 1}"
            seen += 1
            start = col + 1
    raise AssertionError(f"{needle!r} not in text")


def problems(diag: Diagnostics, severity: Severity | None = None) -> list[tuple[str, str]]:
    return [(p.origin, p.message) for p in diag.problems
            if severity is None or p.severity is severity]


def errors(diag: Diagnostics) -> list[tuple[str, str]]:
    return [(p.origin, p.message) for p in diag.errors]


def warnings(diag: Diagnostics) -> list[tuple[str, str]]:
    return [(p.origin, p.message) for p in diag.warnings]
