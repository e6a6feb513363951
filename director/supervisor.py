"""`director run -f CONF`: the parent process of the director.

It runs two children, each `python -m director.cli.main run ... --supervised`:

- the VRRP child (`--vrrp-only`): instances, VIPs, tracking; its adverts never wait
  behind health checks because it is another process;
- the checkers child (`--checkers-only`): health checks and the IPVS table.

A child that exits is started again after a backoff (`director.restart_policy`); the
other child is not touched. The children die with the parent (PR_SET_PDEATHSIG), so a
kill -9 of the parent leaves no orphan half-director behind.

Signals to the parent:
- SIGHUP: SIGHUP both children at once (each loads and validates the file, keeps its
  configuration when it has errors, else applies the difference) and wait for their
  reload records: a refusal is logged once, with the first problem;
- SIGTERM: SIGTERM to the VRRP child (it hands over), then, once it is gone, to the
  checkers (they remove their IPVS services unless --keep-ipvs): each waited up to 30 s
  (then SIGKILL); exit 0. SIGINT: both at once, the VRRP child stopping at once;
- `director.dumps.DUMP_SIGNALS`: a dump file (written in a thread).

Readiness (systemd Type=notify): READY=1 once both children wrote their status file
with their own pid; RELOADING=1 ... READY=1 around a reload; STOPPING=1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from director import state_files
from director.child_reload import newer_records, read_record, read_status_file
from director.dumps import DUMP_SIGNALS, write_dump
from director.events import emit
from director.restart_policy import GiveUp, RestartPolicy
from director.sd_notify import NOTIFY_SOCKET, Notifier

log = logging.getLogger("director.supervisor")

VRRP, CHECKERS = "vrrp", "checkers"
STATUS_FILES = {VRRP: "vrrp-status.json", CHECKERS: state_files.STATUS_FILE}
STOP_TIMEOUT = 30.0
KILL_TIMEOUT = 5.0
RELOAD_TIMEOUT = 30.0
POLL_INTERVAL = 0.1
RELOAD_POLL_INTERVAL = 0.05
PR_SET_PDEATHSIG = 1
LOG_FORMAT = "%(asctime)s %(levelname)s [supervisor] %(message)s"


# ---------------------------------------------------------------- pure helpers


def child_argv(role: str, options: argparse.Namespace, state_dir: str,
               python: str = sys.executable) -> list[str]:
    """The command line of a child: the options it shares with the parent, its half,
    and --supervised."""
    argv = [python, "-m", "director.cli.main", "run",
            "--vrrp-only" if role == VRRP else "--checkers-only",
            "-f", options.config, "--input-format", options.input_format,
            "--state-dir", state_dir, "--log-level", options.log_level]
    if options.config_id is not None:
        argv += ["-i", options.config_id]
    if options.strict:
        argv.append("--strict")
    if options.dry_run:
        argv.append("--dry-run")
    elif role == CHECKERS and options.memory_ipvs:
        argv.append("--memory-ipvs")
    if role == CHECKERS and options.keep_ipvs:
        argv.append("--keep-ipvs")
    return [*argv, "--supervised"]


def exit_description(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def is_ready(status: dict[str, Any] | None, pid: int) -> bool:
    """Whether a child's status file says the child with this pid has started."""
    return (isinstance(status, dict) and status.get("pid") == pid
            and status.get("running", True) is not False)


def _die_with_parent(parent: int) -> Callable[[], None]:
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:  # runs in the child between fork and exec
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


# ---------------------------------------------------------------- the children


class Child:
    """One child process and its restart schedule."""

    def __init__(self, role: str, argv: list[str], status_path: str) -> None:
        self.role = role
        self.argv = argv
        self.status_path = status_path
        self.policy = RestartPolicy()
        self.process: asyncio.subprocess.Process | None = None
        self.waiter: asyncio.Task[None] | None = None
        self.restart_timer: asyncio.TimerHandle | None = None
        self.started_at: float | None = None
        self.restarts = 0
        self.last_exit: str | None = None
        self.ready = False
        self.reload_pending = False

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def signal(self, number: int) -> None:
        if self.running:
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(number)

    def info(self) -> dict[str, Any]:
        return {"role": self.role, "pid": self.pid if self.running else None,
                "running": self.running, "started_at": self.started_at,
                "restarts": self.restarts, "last_exit": self.last_exit}


class Supervisor:
    def __init__(self, options: argparse.Namespace, state_dir: str, notifier: Notifier,
                 api_settings: Any = None) -> None:
        self.options = options
        self.state_dir = state_dir
        self.notifier = notifier
        self.api_settings = api_settings
        self.config_path = os.path.abspath(options.config)
        self.started_at = time.time()
        self.children = [Child(role, child_argv(role, options, state_dir),
                               os.path.join(state_dir, STATUS_FILES[role]))
                         for role in (VRRP, CHECKERS)]
        self.reload = {"count": 0, "at": None, "ok": None, "seconds": None, "problems": [],
                       "ok_total": 0, "refused_total": 0}
        self.exit_status = 0
        self._stopping = asyncio.Event()
        self._stop_signal = signal.SIGTERM
        self._ready_sent = False
        self._reload_task: asyncio.Task[None] | None = None
        self._reload_again = False
        self._background: set[asyncio.Task[Any]] = set()
        self._preexec = _die_with_parent(os.getpid())
        self._env = {k: v for k, v in os.environ.items() if k != NOTIFY_SOCKET}

    # ------------------------------------------------------------ status

    def daemon_info(self) -> dict[str, Any]:
        """What the status API and the dumps say about the supervisor."""
        return {"pid": os.getpid(), "started_at": self.started_at,
                "config": self.config_path, "dry_run": bool(self.options.dry_run),
                "children": [child.info() for child in self.children],
                "reload": {k: (list(v) if isinstance(v, list) else v)
                           for k, v in self.reload.items()}}

    def _status_text(self) -> str:
        parts = [f"{c.role} pid {c.pid}" if c.running else f"{c.role} restarting"
                 for c in self.children]
        return f"running: {', '.join(parts)}; reloads: {self.reload['count']}"

    # ------------------------------------------------------------ main

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        handled = self._install_signals(loop)
        api = None
        try:
            if self.api_settings is not None:
                from director.api import start_api

                try:
                    api = await start_api(self.api_settings, self.state_dir,
                                          self.daemon_info)
                except OSError as error:  # the address is in use, and the like
                    log.error("cannot start the status API: %s", error.strerror or error)
                    return 1
            log.info("starting: config %s, state directory %s; pid %d",
                     self.options.config, self.state_dir, os.getpid())
            self.notifier.status("starting")
            for child in self.children:
                await self._spawn(child)
            watcher = self._spawn_task(self._watch_readiness())
            await self._stopping.wait()
            watcher.cancel()
            await self._stop_children()
        finally:
            for number in handled:
                loop.remove_signal_handler(number)
            if self._reload_task is not None:
                self._reload_task.cancel()
            for task in list(self._background):
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            if api is not None:
                await api.close()
        log.info("stopped")
        return self.exit_status

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        handlers: dict[int, Callable[[], None]] = {
            signal.SIGHUP: self._on_hup,
            signal.SIGTERM: lambda: self._on_stop(signal.SIGTERM),
            signal.SIGINT: lambda: self._on_stop(signal.SIGINT),
        }
        for number, kind in DUMP_SIGNALS.items():
            handlers[number] = lambda kind=kind: self._on_dump(kind)
        for number, handler in handlers.items():
            loop.add_signal_handler(number, handler)
        return list(handlers)

    def _spawn_task(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # ------------------------------------------------------------ children

    async def _spawn(self, child: Child) -> None:
        child.restart_timer = None
        child.ready = False
        child.reload_pending = False
        now = time.monotonic()
        child.policy.started(now)
        try:
            child.process = await asyncio.create_subprocess_exec(
                *child.argv, stdin=asyncio.subprocess.DEVNULL, env=self._env,
                preexec_fn=self._preexec, process_group=0)
        except OSError as error:
            log.error("cannot start the %s child: %s", child.role, error)
            child.process = None
            self._exited(child, None, f"not started: {error.strerror or error}")
            return
        child.started_at = time.time()
        log.info("%s child started: pid %d", child.role, child.process.pid)
        if child.restarts:
            emit("child_restart", role=child.role, pid=child.process.pid,
                  restarts=child.restarts)
        child.waiter = self._spawn_task(self._wait_child(child, child.process))
        if self._stopping.is_set():  # stop came while it was being started
            child.signal(signal.SIGTERM)

    async def _wait_child(self, child: Child, process: asyncio.subprocess.Process) -> None:
        returncode = await process.wait()
        self._exited(child, process.pid, exit_description(returncode),
                     clean=returncode == 0)

    def _exited(self, child: Child, pid: int | None, how: str, clean: bool = False) -> None:
        child.last_exit = how
        child.ready = False
        if self._stopping.is_set():
            log.info("%s child (pid %s) stopped: %s", child.role, pid, how)
            return
        decision = child.policy.exited(time.monotonic())
        if isinstance(decision, GiveUp):
            log.error("%s child failed to start %d times in a row (last: %s); giving up",
                      child.role, decision.failures, how)
            emit("child_exit", role=child.role, pid=pid, status=how, restart_in=None)
            self.exit_status = 1
            self._on_stop(signal.SIGTERM, why=f"no {child.role} child")
            return
        (log.info if clean else log.error)(
            "%s child (pid %s) exited: %s; restarting in %g s", child.role, pid, how,
            decision.delay)
        emit("child_exit", role=child.role, pid=pid, status=how, restart_in=decision.delay)
        self.notifier.status(self._status_text())
        child.restarts += 1
        child.restart_timer = asyncio.get_running_loop().call_later(
            decision.delay, lambda: self._spawn_task(self._spawn(child)))

    async def _watch_readiness(self) -> None:
        """Mark children ready when their status file names them; READY=1 once both
        are (the first time)."""
        while True:
            for child in self.children:
                if child.ready or not child.running or child.pid is None:
                    continue
                status = await asyncio.to_thread(read_status_file, child.status_path)
                if child.ready or not is_ready(status, child.pid):
                    continue
                child.ready = True
                child.policy.ready(time.monotonic())
                log.info("%s child ready (pid %d)", child.role, child.pid)
                if child.reload_pending:  # started while a reload was being validated
                    child.reload_pending = False
                    child.signal(signal.SIGHUP)
                if self._ready_sent:
                    self.notifier.status(self._status_text())
            if not self._ready_sent and all(c.ready for c in self.children):
                self._ready_sent = True
                took = time.time() - self.started_at
                log.info("ready in %.2f s: %s", took, self._status_text())
                self.notifier.ready(self._status_text())
            await asyncio.sleep(POLL_INTERVAL)

    async def _stop_children(self) -> None:
        """SIGTERM: the VRRP child first, and the checkers only once it has handed the VIPs
        over: a director that still holds a VIP must keep its IPVS services, or new
        connections are refused until the peer takes over. SIGINT: both at once."""
        self.notifier.stopping("stopping")
        for child in self.children:
            if child.restart_timer is not None:
                child.restart_timer.cancel()
                child.restart_timer = None
        if self._stop_signal == signal.SIGINT:
            await self._stop(self.children)
            return
        await self._stop([c for c in self.children if c.role == VRRP])
        await self._stop([c for c in self.children if c.role != VRRP])

    async def _stop(self, children: list[Child]) -> None:
        for child in children:
            child.signal(self._stop_signal if child.role == VRRP else signal.SIGTERM)
        waiters = [c.waiter for c in children if c.waiter is not None and not c.waiter.done()]
        if not waiters:
            return
        _, pending = await asyncio.wait(waiters, timeout=STOP_TIMEOUT)
        if pending:
            for child in children:
                if child.running:
                    log.error("%s child (pid %s) still running after %g s: SIGKILL",
                              child.role, child.pid, STOP_TIMEOUT)
                    child.signal(signal.SIGKILL)
            await asyncio.wait(pending, timeout=KILL_TIMEOUT)

    # ------------------------------------------------------------ signals

    def _on_stop(self, number: int, why: str | None = None) -> None:
        name = signal.Signals(number).name
        if self._stopping.is_set():
            if number == signal.SIGINT and self._stop_signal != signal.SIGINT:
                log.info("%s: the VRRP child stops at once", name)
                self._stop_signal = signal.SIGINT
                for child in self.children:
                    if child.role == VRRP:
                        child.signal(signal.SIGINT)
            return
        how = "graceful handover" if number == signal.SIGTERM else "no handover"
        log.info("%s: stopping the children (VRRP: %s)", why or name, how)
        self._stop_signal = number
        self._stopping.set()

    def _on_hup(self) -> None:
        if self._stopping.is_set():
            return
        if self._reload_task is not None and not self._reload_task.done():
            self._reload_again = True  # one more pass once this one is done
            return
        self._reload_task = self._spawn_task(self._reload_loop())

    def _on_dump(self, kind: str) -> None:
        self._spawn_task(self._dump(kind))

    async def _dump(self, kind: str) -> None:
        try:
            path = await asyncio.to_thread(write_dump, kind, self.state_dir,
                                           self.daemon_info())
        except Exception as error:  # a dump must never take the daemon down
            log.error("cannot write the %s dump: %s", kind, error)
            return
        log.info("%s dump written: %s", kind, path)

    # ------------------------------------------------------------ reload

    async def _reload_loop(self) -> None:
        while True:
            self._reload_again = False
            await self._reload_once()
            if not self._reload_again or self._stopping.is_set():
                return

    async def _reload_once(self) -> None:
        # The children validate the file themselves and keep their configuration when it
        # has errors; a load here first would only double the time a big file takes to
        # reload (`director reload` leaves it to them too).
        start = time.monotonic()
        self.reload["count"] += 1
        self.reload["at"] = time.time()
        self.notifier.reloading(f"reloading {self.options.config}")
        log.info("SIGHUP: reloading %s", self.options.config)
        problems: list[str] = []
        before: dict[str, int] = {}
        for child in self.children:
            if not child.ready:
                child.reload_pending = True  # signalled once it is up
                continue
            record = await asyncio.to_thread(read_record, self.state_dir, child.role)
            if record is not None:
                before[child.role] = record["count"]
            child.signal(signal.SIGHUP)
        records = await self._wait_reloaded(before, time.monotonic() + RELOAD_TIMEOUT)
        refusing = sorted(role for role, record in records.items() if record.get("ok") is False)
        for role in refusing:  # both children read the same file: each problem once
            problems += [p for p in records[role].get("problems") or []
                         if p not in problems] or [f"{role}: the reload failed"]
        missing = sorted(set(before) - set(records))
        problems += [f"{role}: no reload record after {RELOAD_TIMEOUT:g} s" for role in missing]
        seconds = time.monotonic() - start
        if refusing:
            log.error("reload refused (%s): %d problem(s), the first: %s; the previous "
                      "configuration still runs", ", ".join(refusing), len(problems),
                      problems[0])
        elif problems:
            for problem in problems:
                log.error("reload: %s", problem)
        else:
            log.info("reload: %s applied in %.3f s", self.options.config, seconds)
        self._reloaded(not problems, problems, seconds)

    async def _wait_reloaded(self, before: dict[str, int],
                             deadline: float) -> dict[str, dict[str, Any]]:
        """The new reload record of every child in `before` (the children that exit
        meanwhile are left out: they start again with the new file)."""
        done: dict[str, dict[str, Any]] = {}
        children = {c.role: c for c in self.children}
        while True:
            asked = {r: c for r, c in before.items() if r not in done and children[r].running}
            if asked:
                done |= await asyncio.to_thread(newer_records, self.state_dir, asked)
            waiting = [r for r in before if r not in done and children[r].running]
            if not waiting or time.monotonic() >= deadline or self._stopping.is_set():
                return done
            await asyncio.sleep(RELOAD_POLL_INTERVAL)

    def _reloaded(self, ok: bool, problems: list[str], seconds: float) -> None:
        self.reload.update(ok=ok, problems=problems, seconds=round(seconds, 6))
        self.reload["ok_total" if ok else "refused_total"] += 1
        if ok:
            emit("reload_ok", config=self.options.config, seconds=round(seconds, 3))
        else:
            emit("reload_refused", config=self.options.config, problems=len(problems))
        self.notifier.ready(self._status_text())


# ---------------------------------------------------------------- entry point


def api_settings_of(options: argparse.Namespace) -> Any:
    """The status API's settings, or None when it is off; ValueError when the options
    are wrong."""
    listen, socket_path = options.api_listen, options.api_socket
    token_file = options.api_token_file
    if listen is None and socket_path is None and token_file is None:
        return None  # and aiohttp is not even imported
    from director.api import ApiSettings

    return ApiSettings.from_options(listen, socket_path, token_file)


def run_supervisor(options: argparse.Namespace) -> int:
    """`director run` without --vrrp-only/--checkers-only; the exit status."""
    logging.basicConfig(level=options.log_level.upper(), stream=sys.stderr,
                        format=LOG_FORMAT)
    state_dir = options.state_dir or state_files.DEFAULT_STATE_DIR
    try:
        state_files.write_pid(state_dir)  # first: it also makes the state directory
    except state_files.StateFileError as error:
        print(f"director run: {error}", file=sys.stderr)
        return 1
    try:
        try:
            api_settings = api_settings_of(options)
        except ValueError as error:
            print(f"director run: {error}", file=sys.stderr)
            return 1
        notifier = Notifier.from_environment(on_error=log.warning)
        return asyncio.run(_supervise(options, state_dir, notifier, api_settings))
    except KeyboardInterrupt:  # before the signal handlers were in place
        return 130
    finally:
        state_files.remove_pid(state_dir)


async def _supervise(options: argparse.Namespace, state_dir: str, notifier: Notifier,
                     api_settings: Any) -> int:
    return await Supervisor(options, state_dir, notifier, api_settings).run()
