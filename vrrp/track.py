"""Tracking: what vrrp_script, track_interface, track_file, track_process and track_bfd
do to a VRRP instance's priority and fault state, with keepalived 2.2.7's rules.

Sans-IO core (no clock, no processes, no files): objects fed with levels and ``now``
return what changed. One asyncio adapter, `ScriptTracker`, runs the vrrp_scripts with
a runner the caller injects (`RunScript`); vrrp never imports checkers or director.

Public API (priorities are ints, times seconds as float):

- ``RunScript = Callable[[argv, timeout, user, group], Awaitable[int | None]]``: runs
  ``argv`` (tuple[str, ...]) as ``user``/``group`` (None: the global script_user) for at
  most ``timeout`` seconds; returns the exit status, or None when it timed out, died
  by a signal or could not be started. All of those count as a failure.
- `ScriptState(rise, fall, init_fail=False)`: one vrrp_script's rise/fall state machine.
  ``.up`` is None until the first result (keepalived's "init" state), then a bool;
  ``.result(status)`` (status: exit status, or None) returns the new verdict when the
  verdict changes, else None. `script_verdicts(statuses, ...)` runs a sequence.
- `Tracked(kind, name, weight, reverse)`: one tracking entry with the weight keepalived
  applies. `Kind`: SCRIPT, INTERFACE, FILE, PROCESS, BFD.
- `Tracker(priority, tracked, initial=None, now=0.0)`; `Tracker.for_instance(config,
  name, now)` builds one from a `VrrpConfig` (the instance's entries, its sync group's
  entries, and its own interface unless dont_track_primary). Feed it with
  ``.script(name, up, now)``, ``.link(ifname, up, now)``, ``.file(name, value, now)``,
  ``.process(name, up, now)``, ``.bfd(name, up, now)`` (or ``.update(kind, name,
  level, now)``): each returns the new `Effective` when it differs from the previous
  one, else None. ``.effective`` is the current one, ``.changed_at`` when it last
  changed.
- `Effective(priority, fault, pending, faults, waiting)`: ``priority`` 1..254 (255 for
  an address owner, never changed by tracking); ``fault`` True while a weight-0 entry
  is down (or a file's status is <= -254): the instance must be in FAULT;
  ``pending`` True while a weight-0 script (or a weight-0 interface, process or bfd
  not yet reported) has no verdict: keepalived keeps such an instance in INIT;
  ``faults``/``waiting`` name the entries ("script chk", "interface eth0", ...).
- `Tracking.for_config(config, now)`: the trackers of every instance; ``.update(kind,
  name, level, now)`` fans one level out and returns ``{instance: Effective}`` for
  those that changed.
- `parse_track_file(data)`: the value keepalived reads from a track file (strtol base
  0, clamped to -254..254; empty/unreadable: 0). `file_status(value, weight, reverse)`:
  the entry's contribution, None for FAULT. `process_quorum(count, process)`.
- `State` (INIT, BACKUP, MASTER, FAULT, STOP) and the sync group rule:
  `sync_transition(group_state, members, instance, to)` -> `SyncDecision(state, others,
  group_state)`; `initial_group_state(members)`.
- `ScriptTracker(scripts, run, on_change, ...)`: runs each script every ``interval``
  (first run at start, a tick is skipped while the previous run is still going),
  feeds `ScriptState`, calls ``on_change(name, up)`` on each verdict change.
  `tracked_scripts(config)`: the scripts some instance or sync group tracks (keepalived
  runs only those).

The rules (keepalived's vrrp_track.c, vrrp_scheduler.c, keepalived.conf(5)):

- A script, interface, process or bfd entry is up or down. Weight 0: down means
  FAULT (with ``reverse``: *up* means FAULT). Weight w != 0, m = -1 with reverse else 1:
  it adds w*m while up when w > 0, and w*m while down when w < 0, else nothing
  (so "weight -30" costs 30 while down; "weight 10 reverse" costs 10 while up).
- Scripts: ``result`` counts in 0..rise+fall-1, up iff result >= rise. Before the first
  result the script is "init": one success makes it up, one failure down; an init
  script adds nothing. ``init_fail``: it starts down (result 0, so ``rise``
  successes are needed). A success below rise-1 counts up; reaching rise-1 -> up and
  result jumps to rise+fall-1. A failure above rise counts down; at rise -> down, and
  any failure at or below rise resets result to 0. A timeout or a refusal is a
  failure. (keepalived 2.2.7's source resets init_fail when a script is tracked; we
  do what keepalived.conf(5) documents.)
- Files: the value v (-254..254) gives status = v*weight*m, clamped to -254..253;
  status <= -254 means FAULT, else status is added. Weight 0: a non-zero value means
  FAULT (with reverse: a zero value). A missing file reads as 0. While a file faults
  the instance its last non-FAULT status still counts (0 if it never had one), so the
  priority reported with FAULT is keepalived's (measured: value 10 x weight -1 gives
  90, then 254 -> `INSTANCE "VI_1" FAULT 90`).
- The effective priority is base + the sum, clamped to 1..254; an address owner (255)
  keeps 255 whatever its tracking says (faults still apply).
- In a sync group without ``sync_group_tracking_weight`` every tracking weight counts
  as 0 (`VrrpConfig.tracked_weight`), the group's own entries apply to every member.

What to advertise at once (issue 6 §2, beyond keepalived): every `Effective` a tracker
returns is acted on immediately. A priority change is advertised at once by a master
(keepalived waits for the next scheduled advert), and a backup whose new priority is
above the master's advertised priority preempts at once when preempting; ``fault``
True -> FAULT now (a master sends priority 0 and drops its VIPs); ``fault`` False and
``pending`` False -> leave FAULT/INIT for BACKUP (through `sync_transition` when in a
sync group).

Sync groups (vrrp_sync.c): members change state together. A member going FAULT takes
every other member (not in FAULT/STOP/INIT) to FAULT and the group to FAULT. A member
may go MASTER only when every other member is MASTER or wants to be (its own
master-down timer expired, or it is preempting); otherwise it stays BACKUP and the
caller restarts its master-down timer ("prefer backup to avoid thrashing"); when it
may, the others go MASTER too. A member going BACKUP takes the others out of MASTER
(and out of FAULT once nothing is faulted); a member may leave FAULT only when no
other member is still faulted. STOP changes nobody else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from vrrp.machine import State
from vrrp.spec import (
    PRIORITY_OWNER,
    TrackProcess,
    VrrpConfig,
    VrrpScript,
)

log = logging.getLogger(__name__)

RunScript = Callable[[tuple[str, ...], float, str | None, str | None], Awaitable[int | None]]

PRIORITY_MIN = 1
PRIORITY_MAX = 254  # the highest priority tracking can give (255 is the address owner's)
FILE_VALUE_MAX = 254  # a track file's value is clamped to -254..254
FILE_FAULT = -254  # a file status at or below this means FAULT
FILE_STATUS_MAX = 253
TRACK_FILE_READ_MAX = 127  # keepalived reads at most this many bytes of a track file


class Kind(StrEnum):
    SCRIPT = "script"
    INTERFACE = "interface"
    FILE = "file"
    PROCESS = "process"
    BFD = "bfd"


# ----------------------------------------------------------------- vrrp_script results


class ScriptState:
    """One vrrp_script's rise/fall state machine (keepalived's ``result`` counter)."""

    __slots__ = ("fall", "result_count", "rise", "up")

    def __init__(self, rise: int = 1, fall: int = 1, init_fail: bool = False):
        self.rise = max(1, rise)
        self.fall = max(1, fall)
        # keepalived: init -> result = rise - 1; init_fail -> result = 0
        self.up: bool | None = False if init_fail else None
        self.result_count = 0 if init_fail else self.rise - 1

    @classmethod
    def of(cls, script: VrrpScript) -> ScriptState:
        return cls(script.rise, script.fall, script.init_fail)

    def result(self, status: int | None) -> bool | None:
        """Record one run (exit status; None: timed out or not run). Returns the new
        verdict when it changed (always, for the first result), else None."""
        top = self.rise + self.fall - 1
        before = self.up
        if status == 0:
            if self.result_count < self.rise - 1:
                self.result_count += 1
            else:
                self.result_count = top
                self.up = True
        else:
            if self.result_count > self.rise:
                self.result_count -= 1
            else:
                self.result_count = 0
                self.up = False
        return self.up if self.up != before else None


def script_verdicts(statuses: Iterable[int | None], rise: int = 1, fall: int = 1,
                    init_fail: bool = False) -> list[bool | None]:
    """The verdict after each result of a sequence (None: still init)."""
    state = ScriptState(rise, fall, init_fail)
    verdicts: list[bool | None] = []
    for status in statuses:
        state.result(status)
        verdicts.append(state.up)
    return verdicts


# ----------------------------------------------------------------- files and processes


def parse_track_file(data: bytes | str | None) -> int:
    """The value keepalived takes from a track file's content: C strtol(buf, NULL, 0)
    of its first 127 bytes (leading blanks, a sign, 0x hex / 0 octal / decimal; what
    follows the number is ignored; no number: 0), clamped to -254..254. None (the file
    is missing or unreadable) is 0."""
    if data is None:
        return 0
    if isinstance(data, bytes):
        data = data[:TRACK_FILE_READ_MAX].decode("latin-1")
    else:
        data = data[:TRACK_FILE_READ_MAX]
    text = data.lstrip(" \t\n\r\f\v")
    sign = 1
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    base = 10
    if text[:2].lower() == "0x" and text[2:3] and text[2].lower() in "0123456789abcdef":
        base, text = 16, text[2:]
    elif text[:1] == "0":
        base = 8
    digits = "0123456789abcdef"[:base]
    end = 0
    while end < len(text) and text[end].lower() in digits:
        end += 1
    value = sign * int(text[:end], base) if end else 0
    return max(-FILE_VALUE_MAX, min(FILE_VALUE_MAX, value))


def file_status(value: int, weight: int, reverse: bool = False) -> int | None:
    """A track file entry's contribution to the priority; None means FAULT."""
    if weight == 0:
        return None if (value != 0) != reverse else 0
    status = value * weight * (-1 if reverse else 1)
    if status <= FILE_FAULT:
        return None
    return min(status, FILE_STATUS_MAX)


def process_quorum(count: int, process: TrackProcess) -> bool:
    """Whether ``count`` matching processes make a vrrp_track_process up."""
    high = process.quorum_max if process.quorum_max is not None else count
    return process.quorum <= count <= high


# ----------------------------------------------------------------- one instance


@dataclass(frozen=True, slots=True)
class Tracked:
    """One tracking entry, with the weight and direction keepalived applies to it."""

    kind: Kind
    name: str
    weight: int = 0
    reverse: bool = False

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True, slots=True)
class Effective:
    """What tracking makes of an instance (see the module docstring)."""

    priority: int
    fault: bool = False
    pending: bool = False
    faults: tuple[str, ...] = ()
    waiting: tuple[str, ...] = ()


Level = bool | int | None  # up/down, a file's value, or None: not known yet


class Tracker:
    """Tracking of one VRRP instance: levels in, `Effective` out when it changes."""

    def __init__(self, priority: int, tracked: Iterable[Tracked],
                 initial: Mapping[tuple[Kind, str], Level] | None = None, now: float = 0.0):
        self.base_priority = priority
        self.tracked: tuple[Tracked, ...] = tuple(tracked)
        self._levels: dict[tuple[Kind, str], Level] = {}
        for entry in self.tracked:
            self._levels.setdefault((entry.kind, entry.name), 0 if entry.kind is Kind.FILE
                                    else None)
        for key, level in (initial or {}).items():
            if key in self._levels:
                self._levels[key] = level
        # a file entry's last status that was not FAULT: it still counts while faulted
        self._file_last: list[int] = [0] * len(self.tracked)
        self.effective, self._file_last = self._evaluate()
        self.changed_at = now

    @classmethod
    def for_instance(cls, config: VrrpConfig, name: str, now: float = 0.0) -> Tracker:
        """The tracker of ``vrrp_instance name`` as the config describes it."""
        instance = config.instance(name)
        if instance is None:
            raise KeyError(f"no vrrp_instance {name}")
        group = config.sync_group_of(name)
        weighted = group is None or group.sync_group_tracking_weight
        tracked: list[Tracked] = []
        if instance.interface is not None and not instance.dont_track_primary:
            tracked.append(Tracked(Kind.INTERFACE, instance.interface))
        initial: dict[tuple[Kind, str], Level] = {}
        for source in (instance, group) if group is not None else (instance,):
            for interface in source.track_interfaces:
                tracked.append(Tracked(Kind.INTERFACE, interface.name,
                                       interface.weight if weighted else 0,
                                       interface.reverse if weighted else False))
            for script in source.track_scripts:
                block = config.script(script.name)
                if block is None:
                    continue  # keepalived: "track script not found, ignoring"
                weight, reverse = config.tracked_weight(script, name)
                tracked.append(Tracked(Kind.SCRIPT, script.name, weight, reverse))
                if block.init_fail:
                    initial[(Kind.SCRIPT, script.name)] = False
            for file in source.track_files:
                if config.track_file(file.name) is None:
                    continue
                weight, reverse = config.tracked_weight(file, name)
                tracked.append(Tracked(Kind.FILE, file.name, weight, reverse))
            for process in source.track_processes:
                if config.track_process(process.name) is None:
                    continue
                weight, reverse = config.tracked_weight(process, name)
                tracked.append(Tracked(Kind.PROCESS, process.name, weight, reverse))
            for bfd in source.track_bfds:
                weight = bfd.weight if bfd.weight is not None and weighted else 0
                reverse = bool(bfd.reverse) if weighted else False
                tracked.append(Tracked(Kind.BFD, bfd.name, weight, reverse))
        return cls(instance.priority, tracked, initial, now)

    @property
    def owner(self) -> bool:
        return self.base_priority == PRIORITY_OWNER

    def tracks(self, kind: Kind, name: str) -> bool:
        return (kind, name) in self._levels

    def level(self, kind: Kind, name: str) -> Level:
        return self._levels.get((kind, name))

    def update(self, kind: Kind, name: str, level: Level, now: float) -> Effective | None:
        """Record a new level (bool for up/down, int for a file's value). Returns the
        new `Effective` when it changed, else None (also for an untracked name)."""
        key = (kind, name)
        if key not in self._levels:
            return None
        if kind is Kind.FILE:
            level = 0 if level is None else max(-FILE_VALUE_MAX,
                                                min(FILE_VALUE_MAX, int(level)))
        elif level is not None:
            level = bool(level)
        if self._levels[key] == level and type(self._levels[key]) is type(level):
            return None
        self._levels[key] = level
        effective, self._file_last = self._evaluate()
        if effective == self.effective:
            return None
        self.effective = effective
        self.changed_at = now
        return effective

    def script(self, name: str, up: bool, now: float) -> Effective | None:
        return self.update(Kind.SCRIPT, name, up, now)

    def link(self, interface: str, up: bool, now: float) -> Effective | None:
        return self.update(Kind.INTERFACE, interface, up, now)

    def file(self, name: str, value: int, now: float) -> Effective | None:
        return self.update(Kind.FILE, name, value, now)

    def process(self, name: str, up: bool, now: float) -> Effective | None:
        return self.update(Kind.PROCESS, name, up, now)

    def bfd(self, name: str, up: bool, now: float) -> Effective | None:
        return self.update(Kind.BFD, name, up, now)

    def _evaluate(self) -> tuple[Effective, list[int]]:
        total = self.base_priority
        faults: list[str] = []
        waiting: list[str] = []
        file_last = list(self._file_last)
        for index, entry in enumerate(self.tracked):
            level = self._levels[(entry.kind, entry.name)]
            if entry.kind is Kind.FILE:
                status = file_status(int(level or 0), entry.weight, entry.reverse)
                if status is None:
                    faults.append(entry.label)
                else:
                    file_last[index] = status
                total += file_last[index]
                continue
            if level is None:  # no verdict yet: adds nothing
                if entry.weight == 0:
                    waiting.append(entry.label)
                continue
            up = bool(level)
            if entry.weight == 0:
                if up == entry.reverse:
                    faults.append(entry.label)
                continue
            signed = entry.weight * (-1 if entry.reverse else 1)
            if (up and entry.weight > 0) or (not up and entry.weight < 0):
                total += signed
        clamped = max(PRIORITY_MIN, min(PRIORITY_MAX, total))
        priority = PRIORITY_OWNER if self.owner else clamped
        return Effective(priority=priority, fault=bool(faults), pending=bool(waiting),
                         faults=tuple(faults), waiting=tuple(waiting)), file_last


class Tracking:
    """The trackers of every instance of a config, fed once per event."""

    def __init__(self, trackers: Mapping[str, Tracker]):
        self.trackers: dict[str, Tracker] = dict(trackers)

    @classmethod
    def for_config(cls, config: VrrpConfig, now: float = 0.0) -> Tracking:
        return cls({i.name: Tracker.for_instance(config, i.name, now)
                    for i in config.instances})

    def effective(self, instance: str) -> Effective:
        return self.trackers[instance].effective

    def update(self, kind: Kind, name: str, level: Level, now: float) -> dict[str, Effective]:
        """Feed one level to every tracker; returns the instances whose `Effective`
        changed, in config order."""
        changed: dict[str, Effective] = {}
        for instance, tracker in self.trackers.items():
            effective = tracker.update(kind, name, level, now)
            if effective is not None:
                changed[instance] = effective
        return changed


# ----------------------------------------------------------------- sync groups


@dataclass(frozen=True, slots=True)
class SyncMember:
    """A sync group member as `sync_transition` sees it."""

    state: State
    wants_master: bool = False  # its master-down timer expired, or it would preempt now
    fault: bool = False  # its tracking says FAULT (or pending)


@dataclass(frozen=True, slots=True)
class SyncDecision:
    """``state``: what the member asking must do (``to``, or what it must stay in);
    ``others``: the transitions the other members make now, in group order;
    ``group_state``: the group's new state, None when unchanged."""

    state: State
    others: tuple[tuple[str, State], ...] = ()
    group_state: State | None = None


def _coerce(members: Mapping[str, SyncMember]) -> dict[str, SyncMember]:
    return {name: m if type(m.state) is State else
            SyncMember(State(m.state), m.wants_master, m.fault) for name, m in members.items()}


def initial_group_state(members: Mapping[str, SyncMember]) -> State:
    """The state a group starts in: FAULT if a member is faulted, INIT while a member
    waits for its first script results, else BACKUP."""
    members = _coerce(members)
    states = [m.state for m in members.values()]
    if any(m.fault and m.state is not State.INIT for m in members.values()) or \
            State.FAULT in states:
        return State.FAULT
    if State.INIT in states:
        return State.INIT
    if states and all(s is State.MASTER for s in states):
        return State.MASTER
    return State.BACKUP


def sync_transition(group_state: State, members: Mapping[str, SyncMember], instance: str,
                    to: State) -> SyncDecision:
    """What the sync group does when ``instance`` wants to go ``to`` (see the module
    docstring). ``members`` holds every member, ``instance`` included, in group order.
    States may also be given by their names (str)."""
    group_state, to, members = State(group_state), State(to), _coerce(members)
    others = [(name, m) for name, m in members.items() if name != instance]
    group = group_state

    def new_group(state: State) -> State | None:
        return state if state != group else None

    if to is State.FAULT:
        moves = tuple((name, State.FAULT) for name, m in others
                      if m.state in (State.MASTER, State.BACKUP))
        return SyncDecision(State.FAULT, moves, new_group(State.FAULT))
    if to is State.MASTER:
        if group is State.MASTER:
            return SyncDecision(State.MASTER)
        me = members.get(instance)
        current = me.state if me is not None else State.BACKUP
        if group is State.FAULT or any(m.fault for _, m in others):
            return SyncDecision(State.FAULT if current is State.FAULT else current)
        if not all(m.state is State.MASTER or m.wants_master for _, m in others):
            return SyncDecision(State.BACKUP if current is not State.INIT else current)
        moves = tuple((name, State.MASTER) for name, m in others
                      if m.state in (State.BACKUP, State.INIT))
        return SyncDecision(State.MASTER, moves, new_group(State.MASTER))
    if to is State.BACKUP:
        if any(m.fault for _, m in others):
            return SyncDecision(State.FAULT, (), new_group(State.FAULT))
        moves = tuple((name, State.BACKUP) for name, m in others
                      if m.state in (State.MASTER, State.FAULT))
        return SyncDecision(State.BACKUP, moves, new_group(State.BACKUP))
    if to is State.STOP:
        done = all(m.state is State.STOP for _, m in others)
        return SyncDecision(State.STOP, (), new_group(State.STOP) if done else None)
    return SyncDecision(to)


# ----------------------------------------------------------------- running the scripts


def tracked_scripts(config: VrrpConfig) -> tuple[VrrpScript, ...]:
    """The vrrp_scripts some instance or sync group tracks, in config order."""
    names = {t.name for source in (*config.instances, *config.sync_groups)
             for t in source.track_scripts}
    return tuple(s for s in config.scripts if s.name in names)


class ScriptTracker:
    """Runs vrrp_scripts on their intervals through an injected `RunScript`.

    ``on_change(name, up)`` is called with each verdict change (the first verdict of
    a script included); ``on_result(name, status)`` (optional) with every result.
    ``clock`` (default time.monotonic) only paces the runs. A callback that raises is
    logged, never fatal.
    """

    def __init__(self, scripts: Iterable[VrrpScript], run: RunScript,
                 on_change: Callable[[str, bool], None], *,
                 on_result: Callable[[str, int | None], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.scripts: tuple[VrrpScript, ...] = tuple(scripts)
        self.states: dict[str, ScriptState] = {s.name: ScriptState.of(s) for s in self.scripts}
        self.runs: dict[str, int] = {s.name: 0 for s in self.scripts}
        self._run = run
        self._on_change = on_change
        self._on_result = on_result
        self._clock = clock
        self._tasks: list[asyncio.Task[None]] = []

    def verdict(self, name: str) -> bool | None:
        return self.states[name].up

    def start(self) -> None:
        """Start one task per script (needs a running event loop)."""
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._loop(s), name=f"vrrp_script {s.name}")
                       for s in self.scripts]

    async def stop(self) -> None:
        """Cancel the loops (a running script is cancelled with them)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run_once(self, script: VrrpScript) -> bool | None:
        """Run ``script`` once and feed the result; returns the verdict change."""
        try:
            status = await self._run(tuple(script.script), script.timeout, script.user,
                                     script.group)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("vrrp_script %s could not be run", script.name)
            status = None
        self.runs[script.name] += 1
        self._call(self._on_result, script.name, status)
        change = self.states[script.name].result(status)
        if change is not None:
            log.info("VRRP_Script(%s) %s", script.name, "succeeded" if change else "failed")
            self._call(self._on_change, script.name, change)
        return change

    async def _loop(self, script: VrrpScript) -> None:
        interval = max(script.interval, 0.001)
        start = self._clock()
        ticks = 0
        while True:
            await self.run_once(script)
            # the next tick on the interval grid; ticks missed while running are skipped
            elapsed = self._clock() - start
            ticks = max(ticks + 1, int(elapsed // interval) + 1)
            await asyncio.sleep(max(0.0, start + ticks * interval - self._clock()))

    @staticmethod
    def _call(callback: Callable[..., None] | None, *args: object) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            log.exception("vrrp_script callback failed")
