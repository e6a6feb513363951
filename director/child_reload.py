"""A child's SIGHUP: one reload at a time, the file loaded and validated again (a
broken one is refused, every problem logged with its location, and the running
configuration stays), the change applied, and its record (in a file of its own and in
the child's status file)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from director import heap, state_files
from director.config.errors import ConfigError
from director.config.load import load_config, reuse_summary, settle_config
from director.config.relocate import Unrelocatable

# Each child's reload record alone, written the moment a reload is done: the supervisor
# and `director reload` wait for it, and a status file of 40,000 real servers takes
# half a second to write.
RECORD_FILES = {"vrrp": "vrrp-reload.json", "checkers": "checkers-reload.json"}


@dataclass
class ReloadRecord:
    """The ``reload`` object of both children's status files (see the shared brief)."""

    count: int = 0
    at: float | None = None  # epoch seconds the SIGHUP came
    ok: bool | None = None
    seconds: float | None = None  # SIGHUP -> diff applied
    load_seconds: float | None = None
    apply_seconds: float | None = None
    problems: list[str] = field(default_factory=list)
    operations: int | None = None  # checkers only: IPVS operations the reload made

    def as_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "count": self.count, "at": self.at, "ok": self.ok, "seconds": self.seconds,
            "load_seconds": self.load_seconds, "apply_seconds": self.apply_seconds,
            "problems": list(self.problems)}
        if self.operations is not None:
            data["operations"] = self.operations
        return data


async def reloaded_config(options: argparse.Namespace, log) -> tuple[Any, list[str]]:
    """SIGHUP: the file loaded again and its warnings, or None and every problem (each
    logged with its location) when it has errors: the caller keeps running the previous
    configuration."""
    log.info("SIGHUP: reloading %s", options.config)
    try:
        new, problems = await asyncio.to_thread(
            load_config, options.config, strict=options.strict,
            config_id=options.config_id, input_format=options.input_format,
            defer_moves=True)
    except ConfigError as error:
        for problem in error.problems:
            log.error("reload: %s", problem)
        log.error("reload: %s has errors; still running the previous configuration",
                  options.config)
        return None, [str(p) for p in error.problems]
    except Exception as error:  # unreadable file and the like
        log.error("reload: cannot load %s: %s; still running the previous "
                  "configuration", options.config, error)
        return None, [f"{options.config}: {error}"]
    for problem in problems:
        log.warning("reload: %s", problem)
    log.info("reload: %s loaded: %s", options.config, reuse_summary())
    return new, [str(p) for p in problems]


def refused(record: ReloadRecord, role: str, problems: list[str], started: float,
            loaded: float) -> None:
    """A reload whose file has errors: the record and the event line."""
    from director import events

    record.ok = False
    record.problems = problems
    record.load_seconds = round(loaded - started, 6)
    record.seconds = record.load_seconds
    record.apply_seconds = None
    events.emit("reload_refused", role=role, problems=len(problems),
                first=problems[0] if problems else None)


def applied(record: ReloadRecord, role: str, problems: list[str], started: float,
            loaded: float, done: float, **extra: Any) -> None:
    """A reload applied: the record and the event line."""
    from director import events

    record.ok = True
    record.problems = problems
    record.load_seconds = round(loaded - started, 6)
    record.apply_seconds = round(done - loaded, 6)
    record.seconds = round(done - started, 6)
    events.emit("reload_ok", role=role, seconds=record.seconds,
                load_seconds=record.load_seconds, apply_seconds=record.apply_seconds,
                warnings=len(problems) or None, **extra)


class Reloader:
    """Turns SIGHUPs into reloads of `options.config`: `apply(config)` takes a valid new
    configuration (returning the IPVS operations it made, or None), `after()` runs once
    each reload is recorded (status files).

    The file is loaded with its moved blocks' origins left behind (``defer_moves``), so
    that the change is applied sooner. A role that keeps the virtual servers (the
    checkers: their origins appear in its messages) passes ``adopt_origins``: once the
    reload is recorded it is given the same configuration with its origins moved."""

    def __init__(self, options: argparse.Namespace, log: Any, role: str,
                 apply: Callable[[Any], Awaitable[int | None]],
                 after: Callable[[], Awaitable[None]], stopping: asyncio.Event,
                 loading: Callable[[bool], None] | None = None,
                 adopt_origins: Callable[[Any], Awaitable[None]] | None = None,
                 state_dir: str | None = None) -> None:
        self.options = options
        self.log = log
        self.role = role
        self.apply = apply
        self.after = after
        self.stopping = stopping
        self.loading = loading or (lambda _: None)  # told while the file loads
        self.adopt_origins = adopt_origins
        self.record = ReloadRecord(operations=0 if role == "checkers" else None)
        self.record_path = (os.path.join(state_dir, RECORD_FILES[role])
                            if state_dir else None)
        self._lock = asyncio.Lock()
        self._started = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def on_hup(self) -> None:
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._reload(loop.time(), time.time()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.record_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.record_path)

    async def started(self) -> None:
        """The child runs: reloads may apply from now on (a SIGHUP during the start
        waits for it), and the record file says so."""
        self._started.set()
        await self.publish()

    async def publish(self) -> None:
        """The record to its file (once the child runs, and after each reload)."""
        if self.record_path is None:
            return
        data = {"pid": os.getpid(), "reload": self.record.as_data()}
        try:
            await asyncio.to_thread(state_files.write_json_atomic, self.record_path, data)
        except (OSError, state_files.StateFileError) as error:
            self.log.error("cannot write %s: %s", self.record_path, error)

    async def _reload(self, received: float, at: float) -> None:
        loop = asyncio.get_running_loop()
        await self._started.wait()
        async with self._lock:
            self.record.at = at
            self.loading(True)
            try:
                new, problems = await reloaded_config(self.options, self.log)
            finally:
                self.loading(False)
            loaded = loop.time()
            if self.stopping.is_set():
                return
            if new is None:
                refused(self.record, self.role, problems, received, loaded)
            else:
                operations = await self.apply(new)
                extra = {} if operations is None else {"operations": operations}
                if operations is not None:
                    self.record.operations = operations
                applied(self.record, self.role, problems, received, loaded, loop.time(),
                        **extra)
            self.record.count += 1
            await self.publish()
            await self.after()
            if new is not None:
                # with another SIGHUP waiting, its reload moves them (from where they are)
                if self.adopt_origins is not None and len(self._tasks) == 1:
                    await self._settle(new, self.adopt_origins)
                heap.settle()

    async def _settle(self, new: Any, adopt: Callable[[Any], Awaitable[None]]) -> None:
        """After the reload: its moved virtual servers take their new lines' origins."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            settled = await asyncio.to_thread(settle_config, new)
        except Unrelocatable as error:  # a model class relocate.py does not know
            self.log.error("reload: messages about the virtual servers that moved keep "
                           "their previous lines: %s", error)
            return
        if settled is not new and not self.stopping.is_set():
            await adopt(settled)
            self.log.info("reload: the virtual servers that moved take their new lines "
                          "(%.3f s after the apply)", loop.time() - started)


def read_record(state_dir: str, role: str) -> dict[str, Any] | None:
    """A running child's reload record (None while there is none, or its process is
    gone)."""
    data = read_status_file(os.path.join(state_dir, RECORD_FILES[role]))
    pid = data.get("pid") if data is not None else None
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return reload_record(data)


def newer_records(state_dir: str, before: dict[str, int]) -> dict[str, dict[str, Any]]:
    """The reload record of each role in ``before`` (role -> count) that is newer than
    that count."""
    newer = {}
    for role, count in before.items():
        record = read_record(state_dir, role)
        if record is not None and record["count"] > count:
            newer[role] = record
    return newer


def reload_record(status: dict[str, Any] | None) -> dict[str, Any] | None:
    """The "reload" record of a status file (None: the file has none)."""
    record = status.get("reload") if isinstance(status, dict) else None
    if not isinstance(record, dict) or not isinstance(record.get("count"), int):
        return None
    return record


def read_status_file(path: str) -> dict[str, Any] | None:
    """A child's status file, or None while it is missing or unreadable (a child being
    restarted, or a file from another version)."""
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
