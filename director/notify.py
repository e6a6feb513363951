"""Running the LVS notify scripts (a real server's notify_up/notify_down, a virtual
server's quorum_up/quorum_down) in the background, as keepalived 2.2.7 does.

What keepalived does (check/ipwrapper.c, core/notify.c):

- the command line is split as written (quotes, escapes) and run with no arguments
  added: unlike VRRP notify scripts, LVS scripts are not told which server or state
  they are about; an operator writes ``notify_down "/bin/rs-down 192.0.2.11 80"``;
- it runs as the script's own user/group, else global_defs script_user/script_group,
  else ``keepalived_script`` when that user exists, else the daemon's user; with
  enable_script_security a script that would run as root from an unsafe path is
  refused, and so is running as root when no user is set (see `checkers.misc`, whose
  rules and runner are used here as they are for MISC_CHECK);
- in its own session and process group, stdin from /dev/null; the director does not
  wait for it, and its exit status is not a server failure.

Beyond keepalived: a run is bounded (`DEFAULT_TIMEOUT`; then the whole process group
is killed), a non-zero exit, a death by signal, a timeout or a refusal is logged with
the script's place in the configuration and the last line it printed, and at most
`MAX_RUNNING` scripts run at once (a flapping pool cannot fork without bound). At
shutdown `close` gives running scripts `CLOSE_TIMEOUT` seconds (keepalived gives the
omega scripts one second) and then kills their process groups.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from checkers.misc import (
    ScriptRefused,
    ScriptRun,
    last_output_line,
    resolve_identity,
    run_script,
    secure_executable,
)
from checkers.probe import ProbeContext
from director.config.lexer import CommandSyntaxError, split_command
from director.config.model import GlobalDefs, RealServer, Script, VirtualServer
from director.pool import QuorumChanged

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0  # seconds a notify script may run before its group is killed
CLOSE_TIMEOUT = 1.0  # seconds `close` waits for running scripts (keepalived's at shutdown)
MAX_RUNNING = 256


class LoggedScripts:
    """`--dry-run`'s script runner: says which script it would run, runs none."""

    def launch(self, script: Script, *extra_args: str) -> None:
        log.info("dry-run: would run %s: %s", _name(script),
                 " ".join((script.command, *extra_args)))

    async def close(self) -> None:
        pass


class ScriptRunner:
    """Launches notify and quorum scripts without waiting for them; never raises."""

    def __init__(self, global_defs: GlobalDefs, *, timeout: float = DEFAULT_TIMEOUT,
                 close_timeout: float = CLOSE_TIMEOUT, max_running: int = MAX_RUNNING):
        self.context = ProbeContext(script_user=global_defs.script_user,
                                    script_group=global_defs.script_group,
                                    enable_script_security=global_defs.enable_script_security)
        self.timeout = timeout
        self.close_timeout = close_timeout
        self.max_running = max_running
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def running(self) -> int:
        """How many scripts are running now."""
        return len(self._tasks)

    def launch(self, script: Script, *extra_args: str) -> None:
        """Start `script` (its command line, then `extra_args`) in the background.
        Needs a running event loop. Problems are logged, never raised."""
        name = _name(script)
        try:
            if self._closed:
                log.error("%s not run: the director is stopping", name)
                return
            if len(self._tasks) >= self.max_running:
                log.error("%s not run: %d scripts are already running", name, len(self._tasks))
                return
            loop = asyncio.get_running_loop()
            task = loop.create_task(self._run(script, extra_args), name=f"notify {name}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        except Exception:  # never let a script take the caller down
            log.exception("%s not run", name)

    async def close(self, timeout: float | None = None) -> None:
        """Stop launching; wait up to `timeout` (default `close_timeout`) seconds for
        the running scripts, then kill their process groups and wait for that."""
        self._closed = True
        tasks = set(self._tasks)
        if not tasks:
            return
        wait = self.close_timeout if timeout is None else timeout
        _done, pending = await asyncio.wait(tasks, timeout=max(0.0, wait))
        for task in pending:
            task.cancel()  # run_script kills the process group when cancelled
        if pending:
            log.warning("killed %d notify script(s) still running at shutdown", len(pending))
            await asyncio.wait(pending)

    async def _run(self, script: Script, extra_args: tuple[str, ...]) -> None:
        name = _name(script)
        try:
            argv = (*split_command(script.command), *extra_args)
            if not argv or not argv[0]:
                log.error("%s not run: the command is empty", name)
                return
            identity = resolve_identity(script, self.context)
            executable = (secure_executable(argv[0], identity)
                          if self.context.enable_script_security else None)
            log.info("running %s", name)
            run = await run_script(argv, timeout=self.timeout, identity=identity,
                                   executable=executable)
        except CommandSyntaxError as error:
            log.error("%s not run: bad command line: %s", name, error)
            return
        except ScriptRefused as refused:
            log.error("%s not run: %s", name, refused)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed to run", name)
            return
        _log_result(name, run, self.timeout)


def _name(script: Script) -> str:
    where = f" ({script.origin})" if script.origin else ""
    return f"notify script '{script.command}'{where}"


def _log_result(name: str, run: ScriptRun, timeout: float) -> None:
    line = last_output_line(run.output_tail)
    said = f': "{line}"' if line else ""
    if run.timed_out:
        log.warning("%s timed out after %g s (process group killed)%s", name, timeout, said)
    elif run.signal is not None:
        log.warning("%s killed by signal %d%s", name, run.signal, said)
    elif run.status:
        log.warning("%s exited with status %d%s", name, run.status, said)
    else:
        log.debug("%s exited with status 0 after %.3f s", name, run.elapsed)


# ------------------------------------------------------------------ notify FIFOs


def virtual_server_text(vs: VirtualServer) -> str:
    """keepalived's FMT_VS: ``[192.0.2.10]:tcp:80``, ``FWM 5``, ``[group]:80``."""
    if vs.group is not None:
        return f"[{vs.group}]:{vs.port}"
    if vs.fwmark is not None:
        return f"FWM {vs.fwmark}"
    return f"[{vs.address}]:{vs.effective_protocol.value.lower()}:{vs.port}"


def real_server_text(vs: VirtualServer, rs: RealServer) -> str:
    """keepalived's FMT_RS: ``[198.51.100.11]:tcp:80``."""
    return f"[{rs.address}]:{vs.effective_protocol.value.lower()}:{rs.port}"


def real_server_line(vs: VirtualServer, rs: RealServer, up: bool) -> str:
    """keepalived's checker FIFO line: ``RS [rs]:tcp:80 [vs]:tcp:80 UP``."""
    return f"RS {real_server_text(vs, rs)} {virtual_server_text(vs)} {'UP' if up else 'DOWN'}\n"


def virtual_server_line(vs: VirtualServer, up: bool) -> str:
    """keepalived's quorum FIFO line: ``VS [vs]:tcp:80 DOWN``."""
    return f"VS {virtual_server_text(vs)} {'UP' if up else 'DOWN'}\n"


class LvsFifos:
    """The checker half's lines on global_defs ``notify_fifo`` and ``lvs_notify_fifo``
    (keepalived's check/ipwrapper.c: a real server up or down, a quorum change). The
    writers never block: without a reader a line is dropped. (The FIFOs' reader
    scripts are started by the VRRP half for notify_fifo; lvs_notify_fifo_script is
    not run.)"""

    def __init__(self, global_defs: GlobalDefs, *, dry_run: bool = False) -> None:
        from vrrp.notify import FifoWriter

        self.paths = self.paths_of(global_defs)
        self.dry_run = dry_run
        self._writers = [] if dry_run else [FifoWriter(path, create=True)
                                            for path in self.paths]

    @staticmethod
    def paths_of(global_defs: GlobalDefs) -> tuple[str, ...]:
        fifos = (global_defs.notify_fifo, global_defs.lvs_notify_fifo)
        return tuple(dict.fromkeys(f.path for f in fifos if f is not None and f.path))

    def real_server(self, vs: VirtualServer, rs: RealServer, up: bool,
                    check: str | None) -> None:
        self._write(real_server_line(vs, rs, up))

    def quorum(self, vs: VirtualServer, change: QuorumChanged) -> None:
        self._write(virtual_server_line(vs, change.up))

    def _write(self, line: str) -> None:
        if self.dry_run and self.paths:
            log.info("dry-run: would write to %s: %s", ", ".join(self.paths), line.rstrip())
        for writer in self._writers:
            writer.write(line)

    def close(self) -> None:
        for writer in self._writers:
            writer.close(remove=False)


class Notifications:
    """Tells every listener (mail, FIFOs) of a real server's or a quorum's change; one
    that fails does not keep the others from hearing of it."""

    def __init__(self, *listeners: Any) -> None:
        self.listeners = list(listeners)

    def real_server(self, vs: VirtualServer, rs: RealServer, up: bool,
                    check: str | None) -> None:
        for listener in self.listeners:
            try:
                listener.real_server(vs, rs, up, check)
            except Exception:
                log.exception("notification of %s failed", real_server_text(vs, rs))

    def quorum(self, vs: VirtualServer, change: QuorumChanged) -> None:
        for listener in self.listeners:
            try:
                listener.quorum(vs, change)
            except Exception:
                log.exception("notification of %s failed", virtual_server_text(vs))
