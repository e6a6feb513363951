"""A child's SIGHUP: one reload at a time, the file loaded and validated again (a
broken one is refused, every problem logged with its location, and the running
configuration stays), the change applied, and the record the status files carry."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from director import heap
from director.config.errors import ConfigError
from director.config.load import load_config


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
            config_id=options.config_id, input_format=options.input_format)
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
    each reload is recorded (status files)."""

    def __init__(self, options: argparse.Namespace, log: Any, role: str,
                 apply: Callable[[Any], Awaitable[int | None]],
                 after: Callable[[], Awaitable[None]], stopping: asyncio.Event,
                 loading: Callable[[bool], None] | None = None) -> None:
        self.options = options
        self.log = log
        self.role = role
        self.apply = apply
        self.after = after
        self.stopping = stopping
        self.loading = loading or (lambda _: None)  # told while the file loads
        self.record = ReloadRecord(operations=0 if role == "checkers" else None)
        self._lock = asyncio.Lock()
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

    async def _reload(self, received: float, at: float) -> None:
        loop = asyncio.get_running_loop()
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
                heap.settle()
                extra = {} if operations is None else {"operations": operations}
                if operations is not None:
                    self.record.operations = operations
                applied(self.record, self.role, problems, received, loaded, loop.time(),
                        **extra)
            self.record.count += 1
            await self.after()


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
