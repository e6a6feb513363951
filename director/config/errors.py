"""Configuration problems and the collector that gathers them with their locations.

A location is the string ``FILE:LINE:COL`` (1-based line and column). It is a plain
string so that `checkers.spec` and `vrrp.spec` can carry it (as ``origin``) without
importing anything from `director`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


def location(file: str, line: int, col: int) -> str:
    return f"{file}:{line}:{col}"


@dataclass(frozen=True, slots=True)
class Problem:
    origin: str  # "FILE:LINE:COL", or "" when the problem has no place in a file
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        where = f"{self.origin}: " if self.origin else ""
        kind = "warning: " if self.severity is Severity.WARNING else ""
        return f"{where}{kind}{self.message}"


class ConfigError(Exception):
    """Raised when a configuration cannot be loaded or does not validate."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class Diagnostics:
    """Collects problems while a config is read, built and validated.

    With ``strict`` set, warnings count as errors (``check-config --strict``).
    """

    strict: bool = False
    problems: list[Problem] = field(default_factory=list)

    def error(self, origin: str, message: str) -> None:
        self.problems.append(Problem(origin, message, Severity.ERROR))

    def warning(self, origin: str, message: str) -> None:
        self.problems.append(Problem(origin, message, Severity.WARNING))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.WARNING]

    @property
    def failed(self) -> bool:
        return bool(self.errors) or (self.strict and bool(self.warnings))

    def raise_if_failed(self) -> None:
        if self.failed:
            raise ConfigError(self.problems)
