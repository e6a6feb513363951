"""When the supervisor restarts a child that exited: exponential backoff, sans-IO.

The policy takes what happened and when (`started(now)`, `ready(now)`,
`exited(now)`) and answers what to do; it reads no clock and starts no process.

- A child that exits is restarted after a delay: 1 s the first time, doubling on each
  exit up to 30 s; a child that had been up for 60 s or more before it exited starts
  again from 1 s (it was healthy; this is a new failure, not the same one).
- A start-up failure is an exit before the child ever got ready (wrote its status file)
  during this daemon's life. After `give_up_after` of them in a row the policy says
  give up: a child that cannot start at all (say, no IPVS in the kernel) makes the
  daemon fail loudly instead of retrying forever behind a unit that looks started. Once
  the child has been ready once, it is restarted for ever (at most every 30 s): the
  other half of the director keeps running meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffSettings:
    initial: float = 1.0
    maximum: float = 30.0
    reset_after: float = 60.0
    give_up_after: int = 5  # start-up failures in a row


@dataclass(frozen=True)
class Restart:
    """Start the child again at `at` (`delay` seconds after it exited)."""

    at: float
    delay: float


@dataclass(frozen=True)
class GiveUp:
    """The child failed to start `failures` times in a row: stop trying."""

    failures: int


class RestartPolicy:
    """The restart schedule of one child."""

    def __init__(self, settings: BackoffSettings | None = None) -> None:
        self.settings = settings or BackoffSettings()
        self._delay = self.settings.initial
        self._started_at: float | None = None
        self._ready_once = False
        self._ready_this_run = False
        self._startup_failures = 0

    @property
    def startup_failures(self) -> int:
        return self._startup_failures

    def started(self, now: float) -> None:
        self._started_at = now
        self._ready_this_run = False

    def ready(self, now: float) -> None:
        """The child wrote its status file: it has started."""
        self._ready_once = True
        self._ready_this_run = True
        self._startup_failures = 0

    def exited(self, now: float) -> Restart | GiveUp:
        up_for = 0.0 if self._started_at is None else now - self._started_at
        self._started_at = None
        if up_for >= self.settings.reset_after:
            self._delay = self.settings.initial
        if not self._ready_this_run:
            self._startup_failures += 1
            if not self._ready_once and self._startup_failures >= self.settings.give_up_after:
                return GiveUp(self._startup_failures)
        delay = self._delay
        self._delay = min(self._delay * 2, self.settings.maximum)
        return Restart(now + delay, delay)
