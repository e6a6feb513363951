"""Keeps the kernel's IPVS connection-sync daemons as ``lvs_sync_daemon`` wants them:
a master daemon on the director whose followed VRRP instance is MASTER, a backup
daemon on the other (`director.sync_policy` decides; this applies and logs).

The VRRP half calls `follow` with the instance's state on every state change (and
"STOP" when it stops); without a named instance the checker half runs both daemons
all along, as keepalived does. A refusal (no ip_vs, an unknown interface) is logged
once, not on every state change, and never stops VRRP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from director.config.model import LvsSyncDaemon
from director.ipvs.backend import Backend, IpvsError
from director.ipvs.table import SyncState
from director.sync_policy import apply_sync_change, desired_sync_daemons, sync_daemon_changes

if TYPE_CHECKING:
    from vrrp.runtime import VrrpRuntime

log = logging.getLogger(__name__)

# The kernel's master sync daemon sends a part-filled buffer only every 2 s
# (IPVS_SYNC_FLUSH_TIME) and drops what is queued when it is stopped: a master that
# stops keeps it this long, so the connections of its last 2 s reach the new master.
SYNC_FLUSH_WAIT = 2.5


class SyncDaemonFollower:
    def __init__(self, setting: LvsSyncDaemon | None, backend: Backend) -> None:
        self.setting = setting
        self.backend = backend
        self._reported: set[str] = set()

    def follow(self, vrrp_state: str | None, vrid: int | None = None) -> None:
        """Start and stop daemons so that those `vrrp_state` calls for run."""
        desired = desired_sync_daemons(self.setting, vrrp_state, vrid)
        try:
            running = self.backend.sync_daemons()
        except IpvsError as error:
            self._report(f"cannot read the IPVS sync daemons: {error.message}")
            return
        for change in sync_daemon_changes(desired, running):
            try:
                apply_sync_change(self.backend, change)
            except IpvsError as error:
                self._report(f"ipvs: {error.message}")
                continue
            log.info("ipvs: %s (VRRP %s)", change, vrrp_state or "starting")

    def stops_master(self, vrrp_state: str | None, vrid: int | None = None) -> bool:
        """Whether following `vrrp_state` would stop the master daemon that runs."""
        desired = desired_sync_daemons(self.setting, vrrp_state, vrid)
        if any(d.state is SyncState.MASTER for d in desired):
            return False
        try:
            return any(d.state is SyncState.MASTER for d in self.backend.sync_daemons())
        except IpvsError:
            return False

    def _report(self, message: str) -> None:
        if message not in self._reported:
            self._reported.add(message)
            log.error("%s", message)


async def follow_vrrp(setting: LvsSyncDaemon | None, runtime: VrrpRuntime,
                      changed: asyncio.Event, backend: Callable[[], Backend]) -> None:
    """The VRRP half's task: after every state change (`changed` set), the daemons
    follow the state of the instance `setting` names; "STOP" when cancelled. Backend
    calls run in a thread: the adverts never wait for the kernel."""
    if setting is None or setting.vrrp_instance is None:
        return
    name = setting.vrrp_instance
    follower: SyncDaemonFollower | None = None
    try:
        follower = SyncDaemonFollower(setting, await asyncio.to_thread(backend))
    except IpvsError as error:
        log.error("lvs_sync_daemon (%s): %s; connections are not synchronised",
                  setting.origin, error.message)
        return

    def state() -> tuple[str | None, int | None]:
        runner = runtime.runners.get(name)
        if runner is None or not runner.started:
            return None, None
        return runner.state.value, runner.instance.virtual_router_id

    loop = asyncio.get_running_loop()
    flush_until: float | None = None  # loop time: the master daemon may stop then

    def flush_wait(vrrp_state: str | None) -> float:
        """Seconds the master daemon has yet to run before `vrrp_state` may stop it."""
        nonlocal flush_until
        if flush_until is None:
            flush_until = loop.time() + SYNC_FLUSH_WAIT
            log.info("ipvs: the master sync daemon stops in %g s (VRRP %s), when its last "
                     "connections have reached the peer", SYNC_FLUSH_WAIT, vrrp_state)
        return flush_until - loop.time()

    try:
        while True:
            changed.clear()
            now_state, vrid = state()
            if await asyncio.to_thread(follower.stops_master, now_state, vrid):
                left = flush_wait(now_state)
                if left > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(left):
                            await changed.wait()
                    continue
            flush_until = None
            await asyncio.to_thread(follower.follow, now_state, vrid)
            await changed.wait()
    finally:
        vrid = state()[1]

        async def stop() -> None:
            if await asyncio.to_thread(follower.stops_master, "STOP", vrid):
                await asyncio.sleep(max(0.0, flush_wait("STOP")))
            await asyncio.to_thread(follower.follow, "STOP", vrid)

        await asyncio.shield(stop())
