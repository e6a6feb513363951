"""`director run --checkers-only`: the checker/IPVS half of the director as one process
(the health checks and the kernel's IPVS table; no VRRP).

Under the supervisor (`--supervised`) it leaves director.pid to the parent and always
writes its status file; either way its log lines carry the role (``[checkers]``) so the
parent's combined output stays readable, and status.json holds ``running`` and the last
reload's record (`ReloadRecord`)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from director.config.errors import ConfigError
from director.config.load import load_config


def setup_logging(options: argparse.Namespace, role: str) -> None:
    import logging

    logging.basicConfig(level=options.log_level.upper(), stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s [{role}] %(message)s")


def run_checkers(options: argparse.Namespace, config) -> int:
    """The balancer in the foreground until SIGTERM; returns the exit status."""
    import asyncio
    import logging

    from director import state_files
    from director.ipvs.backend import IpvsError

    setup_logging(options, "checkers")
    log = logging.getLogger("director")
    state_dir = options.state_dir or state_files.DEFAULT_STATE_DIR
    supervised = getattr(options, "supervised", False)
    if not supervised:
        try:
            state_files.write_pid(state_dir)
        except state_files.StateFileError as error:
            print(f"director run: {error}", file=sys.stderr)
            return 1
    try:
        return asyncio.run(_serve(options, config, state_dir, log))
    except IpvsError as error:
        log.error("cannot start: %s", error.message)
        return 1
    finally:
        if not supervised:
            state_files.remove_pid(state_dir)


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
    import asyncio

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


def mail_delivery(options: argparse.Namespace) -> dict:
    """SmtpAlerts' keyword for how mail leaves: in a dry run, into the log."""
    from director.smtp_alert import log_instead_of_sending

    return {"deliver": log_instead_of_sending} if options.dry_run else {}


async def _serve(options: argparse.Namespace, config, state_dir: str, log) -> int:
    import asyncio
    import signal

    from director import heap
    from director.balancer import Balancer
    from director.notify import LvsFifos, Notifications
    from director.smtp_alert import SmtpAlerts

    in_memory = options.dry_run or options.memory_ipvs
    if in_memory:
        from director.ipvs.memory import MemoryBackend

        backend = MemoryBackend()
        log.info("dry run: the IPVS table is kept in memory; the kernel's is not touched")
    else:
        from director.ipvs.netlink import NetlinkBackend
        from director.ipvs.threaded import ThreadedBackend

        backend = ThreadedBackend(NetlinkBackend)
    alerts = SmtpAlerts(config.global_defs, **mail_delivery(options))
    fifos = [LvsFifos(config.global_defs, dry_run=options.dry_run)]
    notifications = Notifications(alerts, fifos[0])
    balancer = Balancer(config, backend, state_dir, config_path=os.path.abspath(options.config),
                        dry_run=in_memory, scripts_logged=options.dry_run,
                        alerts=notifications)
    record = ReloadRecord(operations=0)
    balancer.status_extra = {"running": True, "reload": record.as_data()}
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    reloads: list[asyncio.Task[None]] = []
    lock = asyncio.Lock()

    async def reload(received: float, at: float) -> None:
        async with lock:
            record.at = at
            new, problems = await reloaded_config(options, log)
            loaded = loop.time()
            if stopping.is_set():
                return
            if new is None:
                refused(record, "checkers", problems, received, loaded)
            else:
                alerts.reconfigure(new.global_defs)
                if LvsFifos.paths_of(new.global_defs) != fifos[0].paths:
                    fifos[0].close()
                    fifos[0] = notifications.listeners[1] = LvsFifos(
                        new.global_defs, dry_run=options.dry_run)
                operations = await balancer.reload(new)
                heap.settle()
                record.operations = operations
                applied(record, "checkers", problems, received, loaded, loop.time(),
                        operations=operations)
            record.count += 1
            balancer.status_extra = {"running": True, "reload": record.as_data()}
            await balancer.flush_status()

    def on_hup() -> None:
        task = loop.create_task(reload(loop.time(), time.time()))
        reloads.append(task)
        task.add_done_callback(reloads.remove)

    def on_stop(name: str) -> None:
        if not stopping.is_set():
            log.info("%s: stopping", name)
        stopping.set()

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    loop.add_signal_handler(signal.SIGTERM, on_stop, "SIGTERM")
    loop.add_signal_handler(signal.SIGINT, on_stop, "SIGINT")
    try:
        await balancer.start()
        heap.settle(full=True)
        log.info("running: %d virtual server(s); pid %d", len(config.virtual_servers),
                 os.getpid())
        await stopping.wait()
    finally:
        for task in list(reloads):
            task.cancel()
        if reloads:
            await asyncio.gather(*reloads, return_exceptions=True)
        await balancer.stop(keep_table=options.keep_ipvs)
        balancer.status_extra = {"running": False, "reload": record.as_data()}
        balancer.write_status()
        await asyncio.to_thread(alerts.close)
        fifos[0].close()
        close = getattr(backend, "close", None)
        if close is not None:
            close()
        for number in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(number)
    log.info("stopped")
    return 0
