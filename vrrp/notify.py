"""keepalived's VRRP notifications: notify scripts and notify FIFO lines.

Pure builders (no processes, no files) turn a state change into the commands to run
and the FIFO lines to write; two thin adapters do the I/O: `FifoWriter` (one FIFO,
never blocks, never raises) and `Notifier` (launches commands through the injected
`vrrp.track.RunScript` and writes lines to its FIFOs).

What keepalived 2.2.7 does (vrrp_notify.c, keepalived.conf(5)), and so we do:

- On an instance's state change: ``notify_master``/``notify_backup``/``notify_fault``/
  ``notify_stop`` (the one for the new state) run with their own arguments only; then
  ``notify`` runs with four more: ``INSTANCE NAME STATE PRIORITY`` (STATE in capitals,
  PRIORITY the effective priority, ``%d``); then the line goes to the FIFOs. A sync
  group's change does the same with the group's scripts and ``GROUP NAME STATE 0``
  (a group's priority is always 0).
- FIFO line: ``TYPE "NAME" STATE PRIORITY\\n`` (C ``"%s \\"%s\\" %s %d\\n"``), e.g.
  ``INSTANCE "VI_1" MASTER 100`` and ``GROUP "G1" BACKUP 0``. Every line goes to both
  global_defs ``notify_fifo`` and ``vrrp_notify_fifo`` when both are set.
- ``notify_master_rx_lower_pri``: a master received an advert with a lower priority:
  that script runs with no added arguments (``notify`` does not run) and the FIFO gets
  ``INSTANCE "NAME" MASTER_RX_LOWER_PRI PRIO``.
- ``notify_priority_changes`` (instance, or global vrrp_notify_priority_changes): on
  an effective priority change the FIFO (only) gets ``INSTANCE "NAME"
  MASTER_PRIORITY PRIO`` when master, ``BACKUP_PRIORITY`` in any other state. Only
  for a change that comes without a state change: leaving FAULT with a new priority
  writes just ``INSTANCE "VI_1" BACKUP 105`` (measured).
- Order, as keepalived 2.2.7 writes it (measured): a member's change first, then the
  members it takes along, then the group's line (``INSTANCE "VI_1" FAULT 90``,
  ``INSTANCE "VI_2" FAULT 100``, ``GROUP "G1" FAULT 0``); at start-up the group's
  BACKUP line comes before its members'; at stop every instance's STOP, then every
  group's. The state script and ``notify`` are started together (their order is not
  defined).
- An instance removed by a reload reports FAULT, or DELETED with ``notify_deleted``
  (then ``notify_deleted``'s script, if given, runs instead of notify_fault).
- ``notify_stop`` and ``notify`` at stop: keepalived waits for them (at most 1 s,
  `STOP_TIMEOUT`) before it exits; other notify scripts are not waited for.
- An instance in a sync group sends no notifies for a change into the state its group
  is already in once it has sent its first ones (``group_state`` below).
- ``notify_fifo_script``/``vrrp_notify_fifo_script`` get the FIFO's path as their last
  argument (`fifo_script_command`).

Public API:

- `NotifyState` (MASTER, BACKUP, FAULT, STOP, DELETED), `FifoEvent` (MASTER_RX_LOWER_PRI,
  MASTER_PRIORITY, BACKUP_PRIORITY); plain strings with the same values are accepted.
- `NotifyCommand(argv, user, group, wait, origin, kind)`: one script to run; ``wait``
  is the seconds the caller should wait for it at shutdown (None: fire and forget).
- `Notification(commands, fifo_lines)`; `Notification.empty`.
- `fifo_line(type, name, state, priority) -> str`.
- `instance_transition(instance, state, priority, *, group_state=None,
  first=True) -> Notification`; `group_transition(group, state) -> Notification`;
  `rx_lower_priority(instance, priority)`; `priority_change(instance, state, priority,
  *, enabled=None)`; `removed_state(instance)`; `removed(instance, priority)`;
  `fifo_script_command(script, fifo_path)`.
- `FifoWriter(path, *, create=False)`: ``.write(line) -> bool``; counters ``written``
  and ``dropped``; ``close()``.
- `Notifier(run, fifos, *, timeout)`: ``.send(notification)``, ``await .close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from vrrp.spec import NotifyScript, SyncGroup, VrrpInstance
from vrrp.track import RunScript

log = logging.getLogger(__name__)

STOP_TIMEOUT = 1.0  # keepalived waits this long for notify_stop / notify at stop
DEFAULT_TIMEOUT = 60.0  # a notify script's run is bounded (keepalived does not bound it)
TYPE_INSTANCE = "INSTANCE"
TYPE_GROUP = "GROUP"


class NotifyState(StrEnum):
    MASTER = "MASTER"
    BACKUP = "BACKUP"
    FAULT = "FAULT"
    STOP = "STOP"
    DELETED = "DELETED"


class FifoEvent(StrEnum):
    MASTER_RX_LOWER_PRI = "MASTER_RX_LOWER_PRI"
    MASTER_PRIORITY = "MASTER_PRIORITY"
    BACKUP_PRIORITY = "BACKUP_PRIORITY"


@dataclass(frozen=True, slots=True)
class NotifyCommand:
    """One notify script to run: its argv (configured words, then added arguments)."""

    argv: tuple[str, ...]
    user: str | None = None
    group: str | None = None
    wait: float | None = None  # wait this long for it at shutdown; None: don't wait
    origin: str = field(default="", compare=False)
    kind: str = ""  # "notify_master", "notify", ... (for logs)


@dataclass(frozen=True, slots=True)
class Notification:
    commands: tuple[NotifyCommand, ...] = ()
    fifo_lines: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.commands and not self.fifo_lines

    def __add__(self, other: Notification) -> Notification:
        return Notification(self.commands + other.commands, self.fifo_lines + other.fifo_lines)


def _state(value: str) -> str:
    text = str(value).upper()
    if text not in NotifyState.__members__ and text not in FifoEvent.__members__:
        raise ValueError(f"not a notify state: {value!r}")
    return text


def fifo_line(type: str, name: str, state: str, priority: int) -> str:
    """keepalived's notify FIFO line (with its newline)."""
    return f'{type} "{name}" {_state(state)} {int(priority)}\n'


def _command(script: NotifyScript | None, kind: str, extra: tuple[str, ...] = (),
             wait: float | None = None) -> tuple[NotifyCommand, ...]:
    if script is None or not script.command:
        return ()
    return (NotifyCommand(argv=(*script.command, *extra), user=script.user,
                          group=script.group, wait=wait, origin=script.origin, kind=kind),)


def _state_script(source: VrrpInstance | SyncGroup, state: str) -> tuple[NotifyScript | None,
                                                                        str]:
    if state == NotifyState.DELETED:
        if isinstance(source, VrrpInstance):
            return source.notify_deleted_script, "notify_deleted"
        return None, ""
    kind = f"notify_{state.lower()}"
    return getattr(source, kind, None), kind


def instance_transition(instance: VrrpInstance, state: str, priority: int, *,
                        group_state: str | None = None, first: bool = True) -> Notification:
    """What an instance's change to ``state`` (MASTER, BACKUP, FAULT, STOP, DELETED)
    runs and writes. ``priority``: its effective priority. ``group_state``: its sync
    group's state, if any; with ``first`` False (it has notified before) a change into
    the group's current state notifies nothing, as keepalived does."""
    state = _state(state)
    if group_state is not None and not first and _state(group_state) == state:
        return Notification()
    wait = STOP_TIMEOUT if state == NotifyState.STOP else None
    script, kind = _state_script(instance, state)
    commands = _command(script, kind, wait=wait)
    commands += _command(instance.notify, "notify",
                         (TYPE_INSTANCE, instance.name, state, str(int(priority))), wait)
    return Notification(commands, (fifo_line(TYPE_INSTANCE, instance.name, state, priority),))


def group_transition(group: SyncGroup, state: str) -> Notification:
    """What a sync group's change to ``state`` runs and writes (priority 0)."""
    state = _state(state)
    wait = STOP_TIMEOUT if state == NotifyState.STOP else None
    script, kind = _state_script(group, state)
    commands = _command(script, kind, wait=wait)
    commands += _command(group.notify, "notify", (TYPE_GROUP, group.name, state, "0"), wait)
    return Notification(commands, (fifo_line(TYPE_GROUP, group.name, state, 0),))


def rx_lower_priority(instance: VrrpInstance, priority: int) -> Notification:
    """A master received an advert with a lower priority than its own."""
    return Notification(
        _command(instance.notify_master_rx_lower_pri, "notify_master_rx_lower_pri"),
        (fifo_line(TYPE_INSTANCE, instance.name, FifoEvent.MASTER_RX_LOWER_PRI, priority),))


def priority_change(instance: VrrpInstance, state: str, priority: int, *,
                    enabled: bool | None = None) -> Notification:
    """An effective priority change: a FIFO line when notify_priority_changes is set
    (``enabled`` overrides the instance's setting, e.g. with the global one)."""
    on = instance.notify_priority_changes if enabled is None else enabled
    if not on:
        return Notification()
    event = (FifoEvent.MASTER_PRIORITY if _state(state) == NotifyState.MASTER
             else FifoEvent.BACKUP_PRIORITY)
    return Notification((), (fifo_line(TYPE_INSTANCE, instance.name, event, priority),))


def removed_state(instance: VrrpInstance) -> NotifyState:
    """The state an instance removed by a reload reports."""
    return NotifyState.DELETED if instance.notify_deleted else NotifyState.FAULT


def removed(instance: VrrpInstance, priority: int) -> Notification:
    return instance_transition(instance, removed_state(instance), priority)


def fifo_script_command(script: NotifyScript, fifo_path: str) -> NotifyCommand:
    """(vrrp_)notify_fifo_script: started with the FIFO's path as last argument."""
    return NotifyCommand(argv=(*script.command, fifo_path), user=script.user,
                         group=script.group, origin=script.origin, kind="notify_fifo_script")


# ----------------------------------------------------------------- adapters


class FifoWriter:
    """Writes lines to one FIFO without ever blocking or raising.

    The FIFO is opened write-only and non-blocking when a line comes and it is not
    open yet: with no reader the open fails (ENXIO) and the line is dropped and
    counted; a reader that went away (EPIPE) or a full pipe (EAGAIN) drops the line
    too. Lines shorter than PIPE_BUF (4096) are written atomically. ``create``:
    make the FIFO (mode 0600) if the path does not exist, as keepalived does.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False,
                 mode: int = 0o600):
        self.path = os.fspath(path)
        self.written = 0
        self.dropped = 0
        self.last_error: str | None = None
        self._fd: int | None = None
        self.created = False
        if create:
            try:
                os.mkfifo(self.path, mode)
                self.created = True
            except FileExistsError:
                pass
            except OSError as error:
                self.last_error = f"mkfifo: {os.strerror(error.errno or 0)}"
                log.warning("cannot create notify FIFO %s: %s", self.path, self.last_error)

    def write(self, line: str | bytes) -> bool:
        data = line.encode() if isinstance(line, str) else line
        try:
            if self._fd is None:
                self._fd = self._open()
            written = os.write(self._fd, data)
        except OSError as error:
            self._drop(error)
            return False
        if written != len(data):  # only possible for lines > PIPE_BUF
            self._drop(OSError(errno.EAGAIN, "short write"))
            return False
        self.written += 1
        return True

    def _open(self) -> int:
        fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a FIFO")
        except OSError:
            os.close(fd)
            raise
        return fd

    def _drop(self, error: OSError) -> None:
        self.dropped += 1
        reason = os.strerror(error.errno) if error.errno else str(error)
        if reason != self.last_error:
            log.debug("notify FIFO %s: line dropped (%s)", self.path, reason)
        self.last_error = reason
        if error.errno != errno.EAGAIN:
            self._close_fd()

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def close(self, *, remove: bool | None = None) -> None:
        """Close it; ``remove`` (default: if we created it) unlinks the FIFO."""
        self._close_fd()
        if remove if remove is not None else self.created:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


class Notifier:
    """Sends notifications: commands through the injected runner (in the background,
    at most `max_running` at once), lines to every FIFO. Never raises."""

    def __init__(self, run: RunScript, fifos: Sequence[FifoWriter] = (), *,
                 timeout: float = DEFAULT_TIMEOUT, max_running: int = 256):
        self._run = run
        self.fifos = list(fifos)
        self.timeout = timeout
        self.max_running = max_running
        self.launched = 0
        self.refused = 0
        self.failed = 0
        self._tasks: dict[asyncio.Task[None], NotifyCommand] = {}

    def send(self, notification: Notification) -> None:
        """Launch its commands in order and write its lines (needs a running loop
        when there are commands)."""
        for command in notification.commands:
            self.launch(command)
        for line in notification.fifo_lines:
            for fifo in self.fifos:
                fifo.write(line)

    def send_all(self, notifications: Iterable[Notification]) -> None:
        for notification in notifications:
            self.send(notification)

    def launch(self, command: NotifyCommand) -> None:
        if len(self._tasks) >= self.max_running:
            self.refused += 1
            log.error("%s %s not run: %d scripts are running", command.kind,
                      command.argv[0], len(self._tasks))
            return
        try:
            task = asyncio.get_running_loop().create_task(self._one(command))
        except RuntimeError:
            self.refused += 1
            log.error("%s %s not run: no event loop", command.kind, command.argv[0])
            return
        self.launched += 1
        self._tasks[task] = command
        task.add_done_callback(lambda t: self._tasks.pop(t, None))

    async def _one(self, command: NotifyCommand) -> None:
        timeout = command.wait if command.wait is not None else self.timeout
        try:
            status = await self._run(command.argv, timeout, command.user, command.group)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.failed += 1
            log.exception("%s %s failed to run", command.kind, command.argv[0])
            return
        if status != 0:
            self.failed += 1
            log.warning("%s %s ended with %s", command.kind, command.argv[0],
                        "no exit status" if status is None else f"status {status}")

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def close(self, timeout: float = STOP_TIMEOUT) -> None:
        """Wait up to ``timeout`` for running scripts, cancel the rest, close FIFOs."""
        tasks = set(self._tasks)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=max(0.0, timeout))
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        for fifo in self.fifos:
            fifo.close()
