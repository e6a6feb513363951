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
from director.config.model import GlobalDefs, Script

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0  # seconds a notify script may run before its group is killed
CLOSE_TIMEOUT = 1.0  # seconds `close` waits for running scripts (keepalived's at shutdown)
MAX_RUNNING = 256


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
