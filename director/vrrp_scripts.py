"""The script runner the VRRP side is given (`vrrp.track.RunScript`): vrrp_script
checks and VRRP notify scripts run with `checkers.misc`'s rules and runner, as the
LVS notify scripts are (`director.notify`): the script's own user, else global_defs
script_user/script_group, else ``keepalived_script``; enable_script_security refuses
unsafe paths for root; each run in its own session, bounded by its timeout (then its
process group is killed).

``make_run_script(globals: vrrp.spec.VrrpGlobals) -> RunScript``: the coroutine
``run(argv, timeout, user, group) -> int | None`` returns the exit status, or None when
the script timed out, died by a signal or was refused (refusals are logged once per
script with the reason).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from checkers.misc import ScriptRefused, resolve_identity, run_script, secure_executable
from checkers.probe import ProbeContext
from vrrp.spec import VrrpGlobals
from vrrp.track import RunScript

log = logging.getLogger("director.vrrp_scripts")


@dataclass(frozen=True, slots=True)
class _RunsAs:
    user: str | None
    group: str | None


def make_run_script(globals: VrrpGlobals) -> RunScript:
    context = ProbeContext(script_user=globals.script_user,
                           script_group=globals.script_group,
                           enable_script_security=globals.enable_script_security)
    refused: set[tuple[str, ...]] = set()

    async def run(argv: tuple[str, ...], timeout: float, user: str | None,
                  group: str | None) -> int | None:
        if not argv or not argv[0]:
            return None
        try:
            identity = resolve_identity(_RunsAs(user, group), context)
            executable = (secure_executable(argv[0], identity)
                          if context.enable_script_security else None)
            result = await run_script(tuple(argv), timeout=max(timeout, 0.001),
                                      identity=identity, executable=executable)
        except ScriptRefused as error:
            if tuple(argv) not in refused:
                refused.add(tuple(argv))
                log.error("script %s not run: %s", " ".join(argv), error)
            return None
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("script %s failed to run", " ".join(argv))
            return None
        if result.timed_out or result.signal is not None:
            return None
        return result.status

    return run
