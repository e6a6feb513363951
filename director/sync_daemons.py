"""Keeps the kernel's IPVS connection-sync daemons as ``lvs_sync_daemon`` wants them:
a master daemon on the director whose followed VRRP instance is MASTER, a backup
daemon on the other (`director.sync_policy` decides; this applies and logs).

The VRRP half calls `follow` with the instance's state on every state change (and
"STOP" when it stops); without a named instance the checker half runs both daemons
all along, as keepalived does. A refusal (no ip_vs, an unknown interface) is logged
once, not on every state change, and never stops VRRP.
"""

from __future__ import annotations

import logging

from director.config.model import LvsSyncDaemon
from director.ipvs.backend import Backend, IpvsError
from director.sync_policy import apply_sync_change, desired_sync_daemons, sync_daemon_changes

log = logging.getLogger(__name__)


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

    def _report(self, message: str) -> None:
        if message not in self._reported:
            self._reported.add(message)
            log.error("%s", message)
