"""Run the check schedules of many real servers on one asyncio loop.

`CheckEngine` is the thin adapter around `checkers.schedule`: it owns the clock
(the loop's monotonic time), one heap of due probes for every checker of every server
and ONE loop timer armed at the earliest of them (not a task per server asleep), starts
each due probe as a task (`checkers.probe.run_probe` unless another is injected), feeds
results back to the server's schedule and hands the events it returns to ``on_event``.

- Servers are named by an opaque key string of the caller's. `update()` takes the new
  set of servers: a server whose checkers did not change keeps its whole state, a
  changed one keeps the state of its unchanged checkers (see `ServerSchedule.start`),
  new ones start with their warmup, removed ones are dropped and their probes
  cancelled.
- At most ``max_concurrency`` probes run at once; a probe that falls due when they are
  all busy waits its turn (and shows up as lateness in `stats()`).
- A probe that runs far past its own time limits (a bug in a check) is cancelled by a
  watchdog and counts as a failure, so one checker can never hang for good.
- Events are delivered with ``at`` in wall-clock seconds (``time.time()``); so are
  the times in `snapshot()`.
- `stop()` cancels every probe and waits for them: no task or socket outlives it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random as random_module
import resource
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from checkers.probe import Probe, ProbeContext, ProbeResult, run_probe
from checkers.schedule import (
    DEFAULT_JITTER,
    CheckerState,
    Event,
    ProbeAt,
    Random,
    ServerSchedule,
)
from checkers.spec import CheckerSpec, ConnectingChecker, MiscCheck

log = logging.getLogger(__name__)

OnEvent = Callable[[str, Event], None]

WATCHDOG_INTERVAL = 1.0  # seconds between watchdog passes
WATCHDOG_GRACE = 5.0     # seconds a probe may overrun twice its own limits
LATENESS_SAMPLES = 65536  # probe starts kept for the lateness figures
LAUNCH_BATCH = 64         # probes started per turn of the loop, at most


def default_concurrency() -> int:
    """Half the process's file descriptor limit (each probe holds one or two), within
    16..4096."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(16, min(4096, soft // 2))


def probe_limit(spec: CheckerSpec) -> float:
    """How long a probe of ``spec`` may run before the watchdog stops it: twice the
    limits the check itself should keep, plus `WATCHDOG_GRACE`."""
    if isinstance(spec, MiscCheck):
        own = spec.misc_timeout if spec.misc_timeout is not None else spec.delay_loop
    elif isinstance(spec, ConnectingChecker):
        steps = max(1, len(getattr(spec, "urls", ())), len(getattr(spec, "hosts", ())))
        own = spec.connect_timeout * steps
    else:
        own = 0.0
    return 2.0 * own + WATCHDOG_GRACE


@dataclass(frozen=True, slots=True)
class CheckerStatus:
    kind: str
    up: bool
    ok: bool | None             # the last probe's outcome; None before the first
    reason: str                 # the last probe's reason ("" before the first)
    latency: float | None       # seconds the last probe took
    last_check: float | None    # wall clock when the last probe ended
    next_check: float | None    # wall clock when the next probe is due
    failures: int               # in a row
    successes: int              # in a row
    weight: int | None          # weight this checker last set
    weight_delta: int | None    # amount this checker last said to add to the weight
    probes: int                 # probes finished


@dataclass(frozen=True, slots=True)
class ServerStatus:
    key: str
    up: bool
    weight: int | None   # set by a check (misc_dynamic); None: the configured weight
    weight_delta: int    # added to that weight by the checks (FILE_CHECK)
    reason: str          # why it is in its state (the probe reason that put it there)
    since: float         # wall clock of the last change (or of the start)
    checkers: tuple[CheckerStatus, ...]

    @property
    def last_check(self) -> float | None:
        times = [c.last_check for c in self.checkers if c.last_check is not None]
        return max(times) if times else None

    @property
    def latency(self) -> float | None:
        """The latency of the most recent probe of any of its checkers."""
        done = [c for c in self.checkers if c.last_check is not None]
        return max(done, key=lambda c: c.last_check).latency if done else None


@dataclass(frozen=True, slots=True)
class EngineStats:
    servers: int
    checkers: int
    probes_started: int
    probes_finished: int
    in_flight: int
    waiting: int              # due, held back by max_concurrency
    overdue: int              # probes the watchdog stopped
    lateness_p50: float       # seconds from due to start, over the last probe starts
    lateness_p99: float
    lateness_max: float


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class CheckEngine:
    def __init__(self, *, probe: Probe = run_probe, context: ProbeContext | None = None,
                 on_event: OnEvent | None = None, max_concurrency: int | None = None,
                 jitter: float = DEFAULT_JITTER, random: Random | None = None):
        self._probe = probe
        self._context = context if context is not None else ProbeContext()
        self._on_event = on_event
        self._max = max_concurrency if max_concurrency is not None else default_concurrency()
        if self._max < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._jitter = jitter
        self._random: Random = random if random is not None else \
            random_module.Random().random
        self._loop: asyncio.AbstractEventLoop | None = None
        self._servers: dict[str, ServerSchedule] = {}
        # (due, sequence, key, checker): stale entries are skipped when popped
        self._heap: list[tuple[float, int, str, CheckerState]] = []
        self._sequence = itertools.count()
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._timer_at = 0.0
        self._watchdog: asyncio.TimerHandle | None = None
        self._running: dict[CheckerState, tuple[asyncio.Task[None], float]] = {}  # launched
        self._waiting: deque[tuple[float, str, CheckerState]] = deque()
        self._overdue: set[CheckerState] = set()
        self._dying: set[asyncio.Task[None]] = set()
        self._lateness: deque[float] = deque(maxlen=LATENESS_SAMPLES)
        self._started = 0
        self._finished = 0
        self._stopped_by_watchdog = 0

    # ------------------------------------------------------------------ control

    def start(self, servers: Mapping[str, Sequence[CheckerSpec]]) -> None:
        """Start checking ``servers`` (key -> its checkers). Call from the running loop."""
        if self._loop is not None:
            raise RuntimeError("the engine is already started")
        self._loop = asyncio.get_running_loop()
        self._watchdog = self._loop.call_later(WATCHDOG_INTERVAL, self._watch)
        self.update(servers)

    def update(self, servers: Mapping[str, Sequence[CheckerSpec]],
               context: ProbeContext | None = None) -> None:
        """Check ``servers`` from now on; unchanged servers and checkers keep their state.
        A new ``context`` (script user, tracked files) applies from the next probe on."""
        if context is not None:
            self._context = context
        loop = self._require_loop()
        now = loop.time()
        for key in [k for k in self._servers if k not in servers]:
            self._forget(self._servers.pop(key).checkers)
        for key, checkers in servers.items():
            specs = tuple(checkers)
            old = self._servers.get(key)
            if old is not None and old.specs == specs:
                for state, spec in zip(old.checkers, specs, strict=True):
                    state.spec = spec  # equal; this configuration's origin
                continue
            schedule = ServerSchedule(specs, jitter=self._jitter)
            actions = schedule.start(now, self._random, old)
            self._servers[key] = schedule
            if old is not None:
                kept = set(schedule.checkers)
                self._forget([c for c in old.checkers if c not in kept])
            self._apply(key, schedule, actions)
        self._arm()

    async def stop(self) -> None:
        """Stop checking: cancel every probe and wait for them to end."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        tasks = [task for task, _ in self._running.values()] + list(self._dying)
        self._running.clear()
        self._dying.clear()
        self._waiting.clear()
        self._heap.clear()
        self._servers.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._loop = None

    async def __aenter__(self) -> CheckEngine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ reading

    def snapshot(self) -> dict[str, ServerStatus]:
        """Every server's state now."""
        offset = self._wall_offset()
        return {key: self._status(key, schedule, offset)
                for key, schedule in self._servers.items()}

    def status(self, key: str) -> ServerStatus:
        return self._status(key, self._servers[key], self._wall_offset())

    def stats(self) -> EngineStats:
        ordered = sorted(self._lateness)
        return EngineStats(
            servers=len(self._servers),
            checkers=sum(len(s.checkers) for s in self._servers.values()),
            probes_started=self._started, probes_finished=self._finished,
            in_flight=len(self._running), waiting=len(self._waiting),
            overdue=self._stopped_by_watchdog,
            lateness_p50=_percentile(ordered, 0.50), lateness_p99=_percentile(ordered, 0.99),
            lateness_max=ordered[-1] if ordered else 0.0)

    def lateness(self) -> list[float]:
        """Seconds from due to start of the most recent probes (oldest first)."""
        return list(self._lateness)

    # ------------------------------------------------------------------ internals

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the engine is not started")
        return self._loop

    def _wall_offset(self) -> float:
        loop = self._loop
        return time.time() - (loop.time() if loop is not None else time.monotonic())

    def _status(self, key: str, schedule: ServerSchedule, offset: float) -> ServerStatus:
        def wall(t: float | None) -> float | None:
            return None if t is None else t + offset

        checkers = tuple(
            CheckerStatus(kind=c.kind, up=c.up, ok=c.last.ok if c.last else None,
                          reason=c.last.reason if c.last else "",
                          latency=c.last.latency if c.last else None,
                          last_check=wall(c.last_at),
                          next_check=None if c in self._running else wall(c.due),
                          failures=c.failures, successes=c.successes, weight=c.weight,
                          weight_delta=c.weight_delta, probes=c.probes)
            for c in schedule.checkers)
        return ServerStatus(key=key, up=schedule.up, weight=schedule.weight,
                            weight_delta=schedule.weight_delta,
                            reason=schedule.reason, since=schedule.since + offset,
                            checkers=checkers)

    def _owned(self, key: str, state: CheckerState) -> ServerSchedule | None:
        """The schedule ``state`` belongs to, if it still is part of one."""
        schedule = self._servers.get(key)
        if schedule is None:
            return None
        checkers = schedule.checkers
        i = state.index
        return schedule if i < len(checkers) and checkers[i] is state else None

    def _forget(self, states: Sequence[CheckerState]) -> None:
        for state in states:
            running = self._running.pop(state, None)
            if running is not None:
                task = running[0]
                task.cancel()
                self._dying.add(task)
                task.add_done_callback(self._dying.discard)
            self._overdue.discard(state)

    def _apply(self, key: str, schedule: ServerSchedule, actions: list) -> None:
        for action in actions:
            if type(action) is ProbeAt:
                heapq.heappush(self._heap, (action.at, next(self._sequence), key,
                                            schedule.checkers[action.checker]))
            else:
                self._emit(key, action)

    def _emit(self, key: str, event: Event) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(key, event._replace(at=event.at + self._wall_offset()))
        except Exception:  # a consumer's bug must not stop the checks
            log.exception("on_event failed for %s %s", key, event.kind)

    def _arm(self) -> None:
        if self._loop is None:
            return
        heap = self._heap
        if not heap:
            return
        at = heap[0][0]
        if self._timer is not None:
            if self._timer_at <= at:
                return
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._timer = None
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        heap = self._heap
        running = self._running
        launched = 0
        while heap and heap[0][0] <= now:
            if launched >= LAUNCH_BATCH:
                # Let the loop read what is ready before starting more: a backlog of
                # due probes must not delay the results of those already running
                # (their timeouts are counting).
                self._timer = loop.call_soon(self._fire)
                self._timer_at = now
                return
            due, _, key, state = heapq.heappop(heap)
            if state.due != due or state in running or self._owned(key, state) is None:
                continue
            if len(running) >= self._max:
                self._waiting.append((due, key, state))
            else:
                self._launch(key, state, due)
                launched += 1
        self._arm()

    def _launch(self, key: str, state: CheckerState, due: float) -> None:
        loop = self._loop
        assert loop is not None
        self._running[state] = (loop.create_task(self._run(key, state, due)), loop.time())

    def _drain_waiting(self) -> None:
        waiting = self._waiting
        while waiting and len(self._running) < self._max:
            due, key, state = waiting.popleft()
            if state.due == due and state not in self._running and self._owned(key, state):
                self._launch(key, state, due)

    async def _run(self, key: str, state: CheckerState, due: float) -> None:
        loop = self._loop
        assert loop is not None
        started = loop.time()
        self._lateness.append(started - due)
        self._started += 1
        try:
            result = await self._probe(state.spec, self._context)
        except asyncio.CancelledError:
            if state not in self._overdue:
                raise  # stop() or update()
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            result = ProbeResult(
                False, f"{state.kind} probe did not finish within "
                       f"{probe_limit(state.spec):g} s; stopped", loop.time() - started)
        except Exception as error:  # an injected probe that raises: a failed check
            result = ProbeResult(False, f"{state.kind} failed internally: {error!r}",
                                 loop.time() - started)
        self._overdue.discard(state)  # also when a probe swallowed the cancellation
        if self._running.pop(state, None) is None:
            return  # forgotten meanwhile
        self._finished += 1
        schedule = self._owned(key, state)
        if schedule is not None:
            self._apply(key, schedule, schedule.result(state.index, result, loop.time()))
        if self._waiting:
            self._drain_waiting()
        self._arm()

    def _watch(self) -> None:
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        for state, (task, launched) in self._running.items():
            if now - launched >= probe_limit(state.spec) and state not in self._overdue:
                self._overdue.add(state)
                self._stopped_by_watchdog += 1
                task.cancel()
        self._watchdog = loop.call_later(WATCHDOG_INTERVAL, self._watch)
