"""Which IPVS connection-sync daemons should run, and the connection timeouts: pure
policy, as keepalived 2.2 applies its global ``lvs_sync_daemon`` and ``lvs_timeouts``.

``lvs_sync_daemon INTERFACE [VRRP_INSTANCE] [id N] [maxlen N] [port N] [ttl N]
[group ADDR]`` follows one vrrp_instance (keepalived: vrrp.c, vrrp_scheduler.c):

- before the instance has a state (start-up): a backup daemon (keepalived starts
  one in vrrp_init_state for every instance that is not an address owner going
  straight to MASTER; an owner's start runs through BACKUP too);
- MASTER: a master daemon (keepalived's ipvs_syncd_master also stops the backup; we
  keep it: the kernel runs both at once, and the old master's last connections, sent
  after a handover, need a backup daemon here to land in);
- BACKUP or FAULT: a backup daemon only (leaving MASTER for either runs
  ipvs_syncd_backup);
- stopping: none (keepalived stops the daemon of the current state on exit).

With no instance named, the checker process runs a master and a backup daemon all
along (check_daemon.c: IPVS_MASTER_BACKUP). The sync id defaults to the instance's
VRID (vrrp.c: "If no syncid configured, use vrid"), or 0 without an instance;
maxlen, port, ttl and group left out are the kernel's defaults.

Everything here is data in, data out; `apply_sync_changes` is the one function that
talks to a backend.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from director.config.model import LvsSyncDaemon, LvsTimeouts
from director.ipvs.backend import Backend, IpvsError
from director.ipvs.sync_rules import DEFAULT_PORT, kernel_sync_daemon
from director.ipvs.table import SyncDaemon, SyncState, Timeouts

# VRRP states (as vrrp reports them) in which the followed instance's director is
# the one sending its connections; every other known state takes them in.
_MASTER_STATES = frozenset({"MASTER"})
_BACKUP_STATES = frozenset({"BACKUP", "FAULT", "INIT"})
_STOPPED_STATES = frozenset({"STOP", "STOPPED", "DELETED"})


@dataclass(frozen=True, slots=True)
class SyncChange:
    """Start `daemon`, or stop the daemon of state `stop`: exactly one is set."""

    daemon: SyncDaemon | None = None
    stop: SyncState | None = None

    def __post_init__(self) -> None:
        if (self.daemon is None) == (self.stop is None):
            raise ValueError("a SyncChange starts a daemon or stops one, not both or neither")

    @classmethod
    def start(cls, daemon: SyncDaemon) -> SyncChange:
        return cls(daemon=daemon)

    @classmethod
    def stopping(cls, state: SyncState) -> SyncChange:
        return cls(stop=state)

    def __str__(self) -> str:
        if self.daemon is not None:
            return f"start the {self.daemon.state} sync daemon on {self.daemon.interface}"
        return f"stop the {self.stop} sync daemon"


def _daemon(setting: LvsSyncDaemon, state: SyncState, sync_id: int) -> SyncDaemon:
    return SyncDaemon(
        state=state,
        interface=setting.interface,
        sync_id=sync_id,
        maxlen=setting.maxlen or 0,
        # The config model spells the kernel's default port out (8848); 0 asks for it.
        port=0 if setting.port in (None, DEFAULT_PORT) else setting.port,
        ttl=setting.ttl or 0,
        group=setting.group,
    )


def desired_sync_daemons(setting: LvsSyncDaemon | None, vrrp_state: str | None,
                         vrid: int | None = None) -> frozenset[SyncDaemon]:
    """The daemons keepalived would have running: `vrrp_state` is the state of the
    instance `setting` names ("MASTER", "BACKUP", "FAULT", "INIT"; None before it
    has one; "STOP" when shutting down: then none, named instance or not), `vrid`
    its virtual router id."""
    if setting is None or not setting.interface:
        return frozenset()
    if vrrp_state is not None and vrrp_state.upper() in _STOPPED_STATES:
        return frozenset()
    if setting.vrrp_instance is None:
        sync_id = setting.sync_id if setting.sync_id is not None else 0
        return frozenset(_daemon(setting, state, sync_id) for state in SyncState)
    sync_id = setting.sync_id if setting.sync_id is not None else (vrid or 0)
    if vrrp_state is None:
        return frozenset({_daemon(setting, SyncState.BACKUP, sync_id)})
    state = vrrp_state.upper()
    if state in _MASTER_STATES:
        return frozenset(_daemon(setting, s, sync_id) for s in SyncState)
    if state in _BACKUP_STATES:
        return frozenset({_daemon(setting, SyncState.BACKUP, sync_id)})
    if state in _STOPPED_STATES:
        return frozenset()
    raise ValueError(f"unknown VRRP state {vrrp_state!r}")


def same_daemon(desired: SyncDaemon, running: SyncDaemon) -> bool:
    """Whether `running` (as a backend reports it, defaults spelled out) is what
    `desired` (defaults as 0/None) asks for. A default maxlen depends on the
    interface's MTU, which this pure code does not know: any running maxlen fits."""
    wanted = kernel_sync_daemon(desired, mtu=None)
    if not desired.maxlen:
        wanted = replace(wanted, maxlen=running.maxlen)
    return wanted == running


def sync_daemon_changes(desired: Iterable[SyncDaemon],
                        running: Iterable[SyncDaemon]) -> list[SyncChange]:
    """What turns the `running` daemons into the `desired` ones: every stop before
    every start (a daemon whose settings changed is stopped, then started again), in
    the order master, backup."""
    wanted = {daemon.state: daemon for daemon in desired}
    have = {daemon.state: daemon for daemon in running}
    order = list(SyncState)
    stops = [SyncChange.stopping(state) for state in order
             if state in have and (state not in wanted or not same_daemon(wanted[state],
                                                                             have[state]))]
    starts = [SyncChange.start(wanted[state]) for state in order
              if state in wanted and (state not in have or not same_daemon(wanted[state],
                                                                              have[state]))]
    return stops + starts


def apply_sync_change(backend: Backend, change: SyncChange) -> None:
    """Carry one change out; `IpvsError` when the kernel refuses it."""
    if change.daemon is not None:
        backend.start_sync_daemon(change.daemon)
    elif change.stop is not None:
        backend.stop_sync_daemon(change.stop)


def apply_sync_changes(backend: Backend, changes: Iterable[SyncChange]) -> list[IpvsError]:
    """Carry the changes out, collecting refusals rather than stopping at the first
    (a backup daemon that cannot start must not keep the master from stopping)."""
    failures: list[IpvsError] = []
    for change in changes:
        try:
            apply_sync_change(backend, change)
        except IpvsError as failure:
            failures.append(failure)
    return failures


def whole_seconds(seconds: float | None) -> int:
    """A configured timeout as the kernel's whole seconds. keepalived reads only
    whole numbers (read_unsigned_strvec); a fraction (YAML) is rounded up, so that a
    positive timeout never becomes 0, which the kernel reads as "leave it"."""
    if seconds is None or seconds <= 0:
        return 0
    return max(1, math.ceil(seconds))


def desired_timeouts(setting: LvsTimeouts | None) -> Timeouts | None:
    """The `Timeouts` to set (0: leave that one), or None when none is configured."""
    if setting is None:
        return None
    timeouts = Timeouts(tcp=whole_seconds(setting.tcp), tcp_fin=whole_seconds(setting.tcpfin),
                        udp=whole_seconds(setting.udp))
    return timeouts if timeouts != Timeouts() else None
