"""When to probe each checker of one real server, and what its results mean: sans-IO.

A `ServerSchedule` holds the state of every checker of one real server and the
server's combined verdict. It reads no clock and does no I/O: the caller gives it
the time with every input and carries out what it returns.

Inputs:
  ``start(now, random, previous=None)``  begin (or take over from ``previous``, the
                                         schedule the server had before a reload);
  ``result(index, probe_result, now)``   checker ``index`` finished a probe.
Outputs (lists of):
  ``ProbeAt(checker, at)``               probe checker ``checker`` at time ``at``;
  ``Event(kind, at, ...)``               the server went up or down, its weight
                                         changed, a checker changed or will retry.

Rules (keepalived 2.2.7's, with its defaults; `rise` and `fall` are our extension):
- A checker starts up, or down with ``alpha``. Its first probe is at a random time
  in ``[now, now + warmup]``.
- While up, a failed probe is retried ``delay_before_retry`` after it failed; after
  ``fall`` failures in a row (default ``retry + 1``: the first try and ``retry``
  retries) the checker is down. A success in between starts the count again.
- While down, ``rise`` successes in a row (default 1) bring it up; with rise above 1
  the confirming probes also come ``delay_before_retry`` apart.
- Otherwise the next probe is due ``delay_loop`` after the last one was *due* (not
  after it ended): neither the engine's lateness nor a probe's latency drifts the
  rhythm. A probe that outlasts ``delay_loop`` skips the slots it missed, so a hanging
  server is never probed back to back. (keepalived counts from the end of a probe;
  with probes that take milliseconds the two are the same.)
- A server is up only while all its checkers are up; a server without checkers is
  always up. A probe result that carries a ``weight`` (MISC_CHECK's misc_dynamic) sets
  the server's weight; the last weight set wins, as in keepalived. One that carries a
  ``weight_delta`` (FILE_CHECK) sets that checker's share of an amount added to the
  weight; the server's `weight_delta` is the sum of its checkers' last shares. The
  weight in force is (``weight`` if set, else the configured one) + ``weight_delta``.

Jitter: every interval (delay_loop and delay_before_retry) is stretched or shrunk by a
uniform random amount of at most ``jitter`` times itself (default 10%) and never more
than `MAX_JITTER` seconds. It has a mean of zero, so each checker keeps its delay_loop
on average, while thousands of checkers that happen to be in step (a reload, a switch
that failed under all of them at once) drift apart within a few intervals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import NamedTuple

from checkers.probe import ProbeResult
from checkers.spec import CheckerSpec, ScheduledChecker

DEFAULT_JITTER = 0.1  # fraction of each interval
MAX_JITTER = 1.0      # seconds
# FILE_CHECK and BFD_CHECK have no timers of their own (keepalived follows them by
# events): they are polled at this interval, with no warmup and no retries.
POLL_INTERVAL = 1.0

Random = Callable[[], float]  # uniform in [0, 1), e.g. random.Random(seed).random


class EventKind(StrEnum):
    SERVER_UP = "up"
    SERVER_DOWN = "down"
    WEIGHT = "weight"              # the server's weight or weight_delta changed
    CHECKER_UP = "checker-up"
    CHECKER_DOWN = "checker-down"
    RETRY = "retry"                # an up checker failed and will be retried


class ProbeAt(NamedTuple):
    checker: int  # index in the server's checkers
    at: float


class Event(NamedTuple):
    kind: EventKind
    at: float
    checker: int        # index of the checker whose result caused it; -1: none
    check: str          # that checker's kind ("TCP_CHECK", ...); "" when none
    reason: str         # for a person: the probe's reason, or why else it happened
    # WEIGHT: the server's weight set by a check (None: the configured one) and the
    # amount its checks add to it, both as they are now.
    weight: int | None = None
    weight_delta: int = 0

    def describe(self) -> str:
        what = {EventKind.SERVER_UP: "up", EventKind.SERVER_DOWN: "down",
                EventKind.WEIGHT: f"weight {self._weight_text()}",
                EventKind.CHECKER_UP: "checker up", EventKind.CHECKER_DOWN: "checker down",
                EventKind.RETRY: "check failed, will retry"}[self.kind]
        source = f"{self.check} " if self.check else ""
        return f"{what}: {source}{self.reason}" if self.reason else what

    def _weight_text(self) -> str:
        base = "configured" if self.weight is None else str(self.weight)
        return f"{base} {self.weight_delta:+d}" if self.weight_delta else base


Action = ProbeAt | Event


class CheckerState:
    """One checker's timers, counters and last result. Read it; only the schedule
    writes it."""

    __slots__ = ("alpha", "delay_loop", "due", "failures", "fall", "index", "jitter",
                 "kind", "last", "last_at", "probes", "reason", "retry_delay", "rise",
                 "since", "spec", "successes", "up", "warmup", "weight", "weight_delta")

    def __init__(self, spec: CheckerSpec, index: int, jitter: float):
        self.spec = spec
        self.index = index
        self.kind: str = spec.kind
        self.jitter = jitter
        if isinstance(spec, ScheduledChecker):
            self.delay_loop = spec.delay_loop
            self.retry_delay = spec.delay_before_retry
            self.warmup = spec.warmup
            self.rise = max(1, spec.rise)
            self.fall = max(1, spec.retry + 1 if spec.fall is None else spec.fall)
        else:
            self.delay_loop = self.retry_delay = POLL_INTERVAL
            self.warmup = 0.0
            self.rise = self.fall = 1
        self.alpha: bool = bool(getattr(spec, "alpha", False))
        self.up = not self.alpha
        self.failures = 0   # in a row
        self.successes = 0  # in a row
        self.due: float | None = None  # when the outstanding probe is (was) due
        self.weight: int | None = None        # last weight this checker set
        self.weight_delta: int | None = None  # last amount this checker adds
        self.last: ProbeResult | None = None
        self.last_at: float | None = None  # when the last probe ended
        self.probes = 0
        self.reason = "alpha: down until the first successful check" if self.alpha else ""
        self.since = 0.0  # when `up` last changed (or the start)

    def jittered(self, interval: float, random: Random) -> float:
        bound = min(interval * self.jitter, MAX_JITTER)
        return interval + (2.0 * random() - 1.0) * bound

    def __repr__(self) -> str:
        return (f"<CheckerState {self.index} {self.kind} {'up' if self.up else 'down'} "
                f"failures={self.failures} successes={self.successes} due={self.due}>")


def _never() -> float:
    raise RuntimeError("ServerSchedule used before start()")


class ServerSchedule:
    """The checkers of one real server and its verdict. See the module docstring."""

    __slots__ = ("_random", "checkers", "reason", "since", "up", "weight", "weight_delta")

    def __init__(self, checkers: Sequence[CheckerSpec], *, jitter: float = DEFAULT_JITTER):
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"jitter must be in [0, 1), not {jitter}")
        self.checkers: tuple[CheckerState, ...] = tuple(
            CheckerState(spec, i, jitter) for i, spec in enumerate(checkers))
        self.up = all(c.up for c in self.checkers)
        self.weight: int | None = None  # set by a check; None: the configured weight
        self.weight_delta = 0           # added to the weight by the checks
        self.reason = "" if self.up else self._down_reason()
        self.since = 0.0
        self._random: Random = _never

    @property
    def specs(self) -> tuple[CheckerSpec, ...]:
        return tuple(c.spec for c in self.checkers)

    # ------------------------------------------------------------------ inputs

    def start(self, now: float, random: Random,
              previous: ServerSchedule | None = None) -> list[Action]:
        """Begin at ``now``. With ``previous`` (this server's schedule before a
        configuration change), every checker whose spec is unchanged keeps its state,
        its counters and its next due time; the others start afresh."""
        self._random = random
        self.since = now
        actions: list[Action] = []
        spare = list(previous.checkers) if previous is not None else []
        fresh = []
        for i, checker in enumerate(self.checkers):
            old = next((o for o in spare if o.spec == checker.spec), None)
            if old is None:
                fresh.append(checker)
                checker.since = now
                continue
            spare.remove(old)
            old.index = i
            old.spec = checker.spec  # equal, but with this configuration's origin
            self.checkers = (*self.checkers[:i], old, *self.checkers[i + 1:])
        for checker in fresh:
            checker.due = now + checker.warmup * random()
            actions.append(ProbeAt(checker.index, checker.due))
        if previous is None:
            self.up = all(c.up for c in self.checkers)
            self.reason = "" if self.up else self._down_reason()
            if not self.up:
                down = next(c for c in self.checkers if not c.up)
                actions.append(self._server_event(EventKind.SERVER_DOWN, now, down,
                                                  down.reason))
            return actions
        return self._take_over(previous, now, actions)

    def result(self, index: int, result: ProbeResult, now: float) -> list[Action]:
        """Checker ``index`` finished the probe it was asked for, at ``now``."""
        checker = self.checkers[index]
        checker.last = result
        checker.last_at = now
        checker.probes += 1
        actions: list[Action] = []
        was_up = checker.up
        pending = False  # a streak that may change the verdict is under way
        if result.ok:
            checker.failures = 0
            checker.successes += 1
            if not checker.up:
                if checker.successes >= checker.rise:
                    self._checker_turned(checker, True, result, now, actions)
                else:
                    pending = True
        else:
            checker.successes = 0
            checker.failures += 1
            if checker.up:
                if checker.failures >= checker.fall:
                    self._checker_turned(checker, False, result, now, actions)
                else:
                    pending = True
                    actions.append(Event(EventKind.RETRY, now, index, checker.kind,
                                         result.reason))
        weight_changed = False
        if result.weight is not None:
            checker.weight = result.weight
            if result.weight != self.weight:
                self.weight = result.weight
                weight_changed = True
        if result.weight_delta is not None and result.weight_delta != checker.weight_delta:
            checker.weight_delta = result.weight_delta
            delta = self._delta()
            if delta != self.weight_delta:
                self.weight_delta = delta
                weight_changed = True
        if weight_changed:
            actions.append(Event(EventKind.WEIGHT, now, index, checker.kind, result.reason,
                                 self.weight, self.weight_delta))
        up = all(c.up for c in self.checkers) if checker.up else False
        if up != self.up:
            self.up = up
            self.since = now
            self.reason = checker.reason
            kind = EventKind.SERVER_UP if up else EventKind.SERVER_DOWN
            actions.append(Event(kind, now, index, checker.kind, checker.reason))
        elif not up and checker.up and not was_up:
            self.reason = self._down_reason()  # that checker is fine now; another is not
        actions.append(ProbeAt(index, self._next_due(checker, pending, now)))
        return actions

    # ------------------------------------------------------------------ internals

    def _next_due(self, checker: CheckerState, pending: bool, now: float) -> float:
        if pending:
            due = now + checker.jittered(checker.retry_delay, self._random)
        else:
            loop = checker.delay_loop
            base = checker.due if checker.due is not None else now
            due = base + checker.jittered(loop, self._random)
            if due < now:
                due += math.ceil((now - due) / loop) * loop if loop > 0 else now - due
        checker.due = due
        return due

    def _checker_turned(self, checker: CheckerState, up: bool, result: ProbeResult,
                        now: float, actions: list[Action]) -> None:
        checker.up = up
        checker.since = now
        checker.reason = result.reason
        kind = EventKind.CHECKER_UP if up else EventKind.CHECKER_DOWN
        actions.append(Event(kind, now, checker.index, checker.kind, result.reason))

    def _delta(self) -> int:
        return sum(c.weight_delta for c in self.checkers if c.weight_delta is not None)

    def _down_reason(self) -> str:
        return next(c for c in self.checkers if not c.up).reason

    def _server_event(self, kind: EventKind, now: float, checker: CheckerState | None,
                      reason: str) -> Event:
        return Event(kind, now, checker.index if checker else -1,
                     checker.kind if checker else "", reason)

    def _take_over(self, previous: ServerSchedule, now: float,
                   actions: list[Action]) -> list[Action]:
        why = "the configuration changed its checkers"
        kept_weight = any(c.weight is not None for c in self.checkers)
        self.weight = previous.weight if kept_weight else None
        self.up = all(c.up for c in self.checkers)
        if self.up == previous.up:
            self.since, self.reason = previous.since, previous.reason
        elif self.up:
            self.reason = why
            actions.append(self._server_event(EventKind.SERVER_UP, now, None, why))
        else:
            down = next(c for c in self.checkers if not c.up)
            self.reason = down.reason
            actions.append(self._server_event(EventKind.SERVER_DOWN, now, down, down.reason))
        self.weight_delta = self._delta()
        if (self.weight, self.weight_delta) != (previous.weight, previous.weight_delta):
            actions.append(Event(EventKind.WEIGHT, now, -1, "", why, self.weight,
                                 self.weight_delta))
        return actions
