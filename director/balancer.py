"""The running checker/IPVS half of the director: a configuration's virtual servers
become the kernel's IPVS table and follow the health checks.

`Balancer` ties the pure parts together on one asyncio loop:

- a `checkers.engine.CheckEngine` probes every real server; its events update the
  servers' `pool.ServerHealth` (up/down, dynamic weights, ``up_since`` for slow start);
- each virtual server has a `pool.QuorumState`; quorum and sorry-server changes and the
  real servers' notify scripts run through `director.notify.ScriptRunner`;
- after every change (coalesced: at most one pass per `MIN_RECONCILE_INTERVAL`) the
  wanted table is `pool.desired_table(...)` and `reconcile(desired, actual, owned)`
  gives the few operations that make the kernel follow, applied in batches. `actual` is
  the table the last pass left (reading 20,000 real servers back from the kernel costs
  far more than the change itself); it is read from the kernel again at start, after
  any refused or held operation, and every `RESYNC_INTERVAL` seconds, so a change made
  behind the director's back is noticed and undone;
- backend calls are awaited off the loop (`ThreadedBackend`), so reading or writing a
  big table never delays the checks;
- the state directory holds ``status.json`` (rewritten on every change and every
  `STATUS_INTERVAL` seconds), ``drains.json`` (polled every `DRAIN_POLL_INTERVAL`
  seconds; drains apply at once) and ``owned.json`` (the services this director made,
  so that a restart deletes only those and never what someone else put in the table).

Start-up adopts what the kernel already holds (no flush unless ``lvs_flush``): a
restart changes nothing that is already right and drops no connection. A real server
with ``alpha`` counts as down until its first check, as in keepalived, except one
the kernel already serves with a weight above 0 (a restart adopting its own table):
that one stays as it is until every one of its checkers has answered once, so a
restart does not take healthy servers out of service for a delay_loop.

A refused kernel operation is logged once per distinct problem, naming the service
and the virtual_server's place in the configuration; the rest of the table is set up
regardless. The refused operation is retried with a growing delay
(`RETRY_FIRST` .. `RETRY_MAX`), at once after a reload, or sooner when what it should
do changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from checkers.engine import CheckEngine, ServerStatus
from checkers.probe import Probe, run_probe
from checkers.schedule import Event, EventKind
from checkers.spec import CheckerSpec
from director import events, state_files
from director.check_servers import probe_context
from director.config.model import (
    Config,
    FlushOnStop,
    RealServer,
    Script,
    VirtualServer,
    address_text,
)
from director.ipvs.backend import Backend, IpvsError, destination_text
from director.ipvs.reconcile import reconcile
from director.ipvs.table import (
    DestinationKey,
    Operation,
    OperationKind,
    ServiceKey,
    Table,
    Timeouts,
)
from director.ipvs.threaded import ThreadedBackend
from director.pool import (
    QuorumAction,
    QuorumChanged,
    QuorumState,
    RealServerId,
    RunScript,
    ServerHealth,
    SorryServerChange,
    desired_table,
    live_weight,
    service_keys,
    shutdown_notifies,
    virtual_server_id,
)
from director.sync_daemons import SyncDaemonFollower
from director.sync_policy import desired_timeouts

log = logging.getLogger("director.balancer")

MIN_RECONCILE_INTERVAL = 0.05  # seconds between two passes over the table, at least
STATUS_INTERVAL = 2.0          # status.json is rewritten at least this often
# ... unless building it costs more: at 40,000 real servers it takes ~0.5 s of the
# loop (and the GIL a reload's load needs), so it may take this share of the time at most
STATUS_COST_SHARE = 0.1
DRAIN_POLL_INTERVAL = 1.0      # drains.json's mtime is looked at this often
RAMP_INTERVAL = 1.0            # slow start: weights are recomputed this often
PROVISIONAL_INTERVAL = 0.5     # adopted alpha servers: how often to look for a verdict
RETRY_FIRST = 5.0              # a refused operation is retried after this long ...
RETRY_MAX = 300.0              # ... doubling up to this
RESYNC_INTERVAL = 30.0         # the kernel's table is read again at least this often


class Scripts(Protocol):
    """What the balancer needs of `director.notify.ScriptRunner`."""

    def launch(self, script: Script, *extra_args: str) -> None: ...

    async def close(self) -> None: ...


class Alerts(Protocol):
    """What the balancer needs of `director.smtp_alert.SmtpAlerts`."""

    def real_server(self, vs: VirtualServer, rs: RealServer, up: bool,
                    check: str | None) -> None: ...

    def quorum(self, vs: VirtualServer, change: QuorumChanged) -> None: ...


def server_key(rs_id: RealServerId) -> str:
    """The CheckEngine key of a real server: stable across reloads."""
    return f"{rs_id.virtual_server}|{rs_id.address}|{rs_id.port}"


def describe_operation(op: Operation, actual: Table) -> str:
    """One log line's worth for a kernel operation: what changes, from what to what."""
    service = op.service
    kind = op.kind
    if kind is OperationKind.ADD_SERVICE or kind is OperationKind.EDIT_SERVICE:
        s = op.service_settings
        assert s is not None
        text = f"scheduler {s.scheduler}"
        if s.sched_flags:
            text += " flags " + ",".join(sorted(s.sched_flags))
        if s.persistence_timeout is not None:
            text += f" persistent {s.persistence_timeout}"
            if s.persistence_netmask is not None:
                text += f" netmask /{s.persistence_netmask}"
        if s.one_packet:
            text += " ops"
        if s.persistence_engine:
            text += f" pe {s.persistence_engine}"
        verb = "add" if kind is OperationKind.ADD_SERVICE else "change"
        return f"{verb} virtual service {service}: {text}"
    if kind is OperationKind.DELETE_SERVICE:
        return f"delete virtual service {service}"
    assert op.destination is not None
    where = destination_text(op.destination)
    if kind is OperationKind.DELETE_DESTINATION:
        return f"delete real server {where} from {service}"
    d = op.destination_settings
    assert d is not None
    if kind is OperationKind.ADD_DESTINATION:
        text = f"weight {d.weight} {d.forwarding}"
        if d.upper_threshold or d.lower_threshold:
            text += f" thresholds {d.lower_threshold}/{d.upper_threshold}"
        return f"add real server {where} to {service}: {text}"
    before = actual.get(service)
    old = before.destinations.get(op.destination) if before is not None else None
    changes = []
    if old is None:
        changes.append(f"weight {d.weight}")
    else:
        for name in ("weight", "forwarding", "upper_threshold", "lower_threshold",
                     "tunnel_type", "tunnel_port", "tunnel_checksum"):
            was, now = getattr(old, name), getattr(d, name)
            if was != now:
                changes.append(f"{name} {was} -> {now}")
    return f"change real server {where} of {service}: {', '.join(changes) or 'settings'}"


@dataclass
class _Held:
    """A refused operation waiting for its retry."""

    op: Operation
    retry_at: float  # loop time
    delay: float


def _problem_key(op: Operation) -> tuple[Any, ...]:
    return (op.kind, op.service, op.destination)


class Balancer:
    """Config + checkers -> the kernel's IPVS table, live. `await start()`, then
    `await reload(config)` any number of times, then `await stop()`."""

    def __init__(self, config: Config, backend: Backend, state_dir: str, *,
                 config_path: str = "", dry_run: bool = False,
                 scripts_logged: bool | None = None,
                 persist_owned: bool | None = None, probe: Probe = run_probe,
                 scripts: Scripts | None = None, alerts: Alerts | None = None,
                 max_concurrency: int | None = None, jitter: float | None = None) -> None:
        self.config = config
        self.backend = backend
        self.state_dir = state_dir
        self.config_path = config_path
        self.dry_run = dry_run
        self.scripts_logged = dry_run if scripts_logged is None else scripts_logged
        self.persist_owned = (not dry_run) if persist_owned is None else persist_owned
        self._probe = probe
        self._scripts = scripts
        self.alerts = alerts
        self.status_extra: dict[str, Any] = {}  # merged into status.json (the process's own)
        self._engine_options: dict[str, Any] = {}
        if max_concurrency is not None:
            self._engine_options["max_concurrency"] = max_concurrency
        if jitter is not None:
            self._engine_options["jitter"] = jitter
        self._engine: CheckEngine | None = None
        self._ids: dict[str, RealServerId] = {}  # engine key -> real server
        self._servers: dict[RealServerId, tuple[VirtualServer, RealServer]] = {}
        self._vs_by_id: dict[str, VirtualServer] = {}
        self._members: dict[str, list[tuple[RealServerId, str]]] = {}  # vs id -> (id, key)
        # The desired table in parts, one per virtual server, recomputed only for the
        # virtual servers in `_stale` (None: all): a pass after one server's change costs
        # that server's virtual server, not 20,000 real servers.
        self._parts: dict[str, Table] = {}
        self._stale: set[str] | None = None
        self._ramping_vs: set[str] = set()
        self._gone: set[ServiceKey] = set()  # services of virtual servers a reload removed
        self._reconcile_all = True  # next pass: every service, not only the changed ones
        self._applied = 0  # IPVS operations applied, all told
        self.health: dict[RealServerId, ServerHealth] = {}
        self._provisional: set[RealServerId] = set()  # adopted alpha servers, unchecked
        self._fresh: set[str] = set()  # engine keys being started: events ignored
        self.quorum: dict[str, QuorumState] = {}
        self.drains: frozenset[RealServerId] = frozenset()
        self._drains_stamp: tuple[int, int, int] | None = None
        self._drains_problem: str | None = None
        self.owned: set[ServiceKey] = set()
        self._table: Table = {}  # the kernel's table after the last pass
        self._known: Table | None = None  # the same, when it can be trusted without a read
        self._next_resync = 0.0
        self._pass_lock = asyncio.Lock()
        self._kernel_timeouts: Timeouts | None = None  # as found, before lvs_timeouts
        self._sync: SyncDaemonFollower | None = None
        self._origins: dict[ServiceKey, str] = {}
        self._problems: dict[tuple[Any, ...], str] = {}  # logged refusals, by operation
        self._held: dict[tuple[Any, ...], _Held] = {}
        self._state_problem: str | None = None
        self._dump_retry_at: float | None = None  # loop time; the table could not be read
        self._dump_delay = RETRY_FIRST
        self._dirty = True
        self._status_dirty = True
        self._ramping = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_pass = 0.0
        self._next_status = 0.0
        self._status_earliest = 0.0  # loop time: a dirty status waits until then
        self.status_paused = False  # set while a reload loads its file
        self._next_drain_poll = 0.0
        self._next_ramp = 0.0
        self._next_provisional = 0.0
        self._stopped = False
        self._started = False
        self._old_runners: list[asyncio.Task[None]] = []
        self._status_write: asyncio.Future[None] | None = None  # under way in a thread

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Set up the table from the kernel's current one and start checking. Raises
        `IpvsError` when the kernel's table cannot be read at all."""
        self._loop = asyncio.get_running_loop()
        if self._scripts is None:
            self._scripts = self._new_runner(self.config)
        self._apply_timeouts(None, self.config)
        self._follow_sync(self.config)
        actual = await self._ipvs("dump")
        if self.config.global_defs.lvs_flush and actual:
            log.info("lvs_flush: deleting every virtual service in the IPVS table (%d)",
                     len(actual))
            await self._run_ops([Operation(OperationKind.DELETE_SERVICE, key)
                                 for key in sorted(actual, key=str)], actual)
            actual = await self._ipvs("dump")
            self.owned = set()
            self._save_owned()
        elif self.persist_owned:
            try:
                self.owned = state_files.read_owned(self.state_dir)
            except state_files.StateFileError as error:
                log.error("%s; taking no service as this director's own", error)
                self.owned = set()
        self._poll_drains(force=True)
        self._index(self.config)
        self._engine = CheckEngine(probe=self._probe, context=probe_context(self.config),
                                   on_event=self._on_event, **self._engine_options)
        servers = self._checker_map(self.config)
        self._fresh = set(servers)
        try:
            self._engine.start(servers)
        finally:
            self._fresh = set()
        self._take_initial_health(servers, actual)
        for vs in self.config.virtual_servers:
            self._start_quorum(vs)
        self._table = self._known = actual
        self._next_resync = self._loop.time() + RESYNC_INTERVAL
        self._started = True
        await self._pass()
        self._write_status()
        self._task = self._loop.create_task(self._run(), name="balancer")

    async def reload(self, config: Config, *, announce: bool = True) -> int:
        """Take a new (validated) configuration: unchanged real servers keep their
        checkers' state, unchanged services are not touched, the rest follows at once.
        Returns the number of IPVS operations applied. The table the last pass left is
        trusted as it is (the periodic resync and any refusal still read the kernel's):
        reading 40,000 entries back would cost more than the reload itself.
        ``announce=False``: no log line (the same configuration with other origins)."""
        if self._engine is None or self._stopped:
            raise RuntimeError("the balancer is not running")
        old = self.config
        self.config = config
        if config.global_defs != old.global_defs and self._scripts is not None:
            previous = self._scripts
            self._scripts = self._new_runner(config)
            self._old_runners.append(asyncio.get_running_loop().create_task(previous.close()))
        self._apply_timeouts(old, config)
        self._follow_sync(config)
        old_vs = self._vs_by_id
        unchanged = set()
        for vs in config.virtual_servers:
            vs_id = virtual_server_id(vs)
            before = old_vs.get(vs_id)
            if before is vs or before == vs:
                unchanged.add(vs_id)
        known = self._ids
        self._index(config, unchanged)
        servers = self._checker_map(config)
        self._fresh = servers.keys() - known.keys()
        try:
            self._engine.update(servers, probe_context(config))
        finally:
            fresh, self._fresh = self._fresh, set()
        for key in fresh:
            rs_id = self._ids[key]
            status = self._engine.status(key)
            self.health[rs_id] = self._health_from(status, None)
            self._log_start(rs_id, status)
        for key in known.keys() - servers.keys():  # real servers gone
            self.health.pop(known[key], None)
        if self._provisional:
            self._provisional &= self._servers.keys()
        kept: dict[str, QuorumState] = {}
        for vs_id, vs in self._vs_by_id.items():
            state = self.quorum.get(vs_id)
            if state is None:
                kept[vs_id] = self._start_quorum(vs)
            else:  # equal settings when unchanged, but this configuration's origins
                kept[vs_id] = state.reconfigured(vs)
        self.quorum = kept
        self._mark_reloaded(old, unchanged)
        self._held.clear()
        self._problems.clear()
        if announce:
            log.info("configuration reloaded: %d virtual server(s), %d real server(s)",
                     len(config.virtual_servers), len(self._servers))
        before = self._applied
        try:
            await self._pass()
        except Exception:  # the loop's next pass tries again
            log.exception("balancer pass after the reload failed")
            self._changed()
        self._status_dirty = True
        self._wake.set()
        return self._applied - before

    def _mark_reloaded(self, old: Config, unchanged: set[str]) -> None:
        """The virtual servers whose part of the desired table a reload changed."""
        for vs_id in [i for i in self._parts if i not in self._vs_by_id]:
            self._forget_part(vs_id)
        if old.virtual_server_groups != self.config.virtual_server_groups:
            self._stale = None
            return
        for vs_id in self._vs_by_id:
            if vs_id not in unchanged:
                self._mark_stale(vs_id)

    def _forget_part(self, vs_id: str) -> None:
        """A virtual server gone: its services are left to reconcile (deleted)."""
        part = self._parts.pop(vs_id)
        self._gone.update(part)

    def _mark_stale(self, vs_id: str) -> None:
        if self._stale is not None:
            self._stale.add(vs_id)

    async def stop(self, keep_table: bool = False) -> None:
        """Stop checking; unless `keep_table`, run the omega scripts and remove the
        virtual services (this director's, or all with lvs_flush_on_stop)."""
        if self._stopped:
            return
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._status_write is not None:  # a later write must not be overtaken by it
            await asyncio.gather(self._status_write, return_exceptions=True)
        if self._engine is not None:
            await self._engine.stop()
        if not self._started:
            pass  # start() failed: nothing of ours to take down
        elif keep_table:
            log.info("stopping; the IPVS table is left as it is (%d service(s) of this "
                     "director)", len(self.owned))
        else:
            self._shutdown_scripts()
            await self._remove_table()
            self._follow_sync(self.config, stopping=True)
        if self._scripts is not None:
            await self._scripts.close()
        if self._old_runners:
            await asyncio.gather(*self._old_runners, return_exceptions=True)
            self._old_runners.clear()

    # ------------------------------------------------------------------ setup

    def _new_runner(self, config: Config) -> Scripts:
        from director.notify import LoggedScripts, ScriptRunner

        return LoggedScripts() if self.scripts_logged else ScriptRunner(config.global_defs)

    def _apply_timeouts(self, old: Config | None, new: Config) -> None:
        """lvs_timeouts; when a reload drops them, the kernel's own come back (as
        keepalived restores the timeouts it found at start)."""
        wanted = desired_timeouts(new.global_defs.lvs_timeouts)
        before = None if old is None else desired_timeouts(old.global_defs.lvs_timeouts)
        if wanted == before:
            return
        if wanted is None:
            wanted = self._kernel_timeouts
            if wanted is None:
                return
        elif self._kernel_timeouts is None:
            try:
                self._kernel_timeouts = self.backend.timeouts()
            except IpvsError as error:
                log.warning("cannot read the kernel's IPVS timeouts: %s", error.message)
        try:
            self.backend.set_timeouts(wanted)
        except IpvsError as error:
            log.error("lvs_timeouts (%s): %s", new.global_defs.lvs_timeouts.origin
                      if new.global_defs.lvs_timeouts else "", error.message)
            return
        log.info("%sipvs: set timeouts tcp %d tcpfin %d udp %d (0: unchanged)",
                 self._prefix(), wanted.tcp, wanted.tcp_fin, wanted.udp)

    def _follow_sync(self, config: Config, stopping: bool = False) -> None:
        """lvs_sync_daemon without a vrrp_instance: a master and a backup daemon all
        along, run by this half as keepalived's checker process does (with an
        instance named, the VRRP half starts and stops them as its state changes)."""
        setting = config.global_defs.lvs_sync_daemon
        if self._sync is None or self._sync.setting != setting:
            if self._sync is not None and self._sync.setting is not None \
                    and self._sync.setting.vrrp_instance is None:
                self._sync.follow("STOP")  # the old setting's daemons go
            self._sync = SyncDaemonFollower(setting, self.backend)
        if setting is not None and setting.vrrp_instance is None:
            self._sync.follow("STOP" if stopping else None)

    def _index(self, config: Config, unchanged: Collection[str] = ()) -> None:
        """Real servers by id and by engine key; the `unchanged` virtual servers (equal
        to the previous configuration's) keep their real servers' ids."""
        self._servers = {}
        self._ids = {}
        self._origins = {}
        self._vs_by_id = {}
        members = self._members
        self._members = {}
        for vs in config.virtual_servers:
            vs_id = virtual_server_id(vs)
            self._vs_by_id[vs_id] = vs
            for key in service_keys(vs, config):
                self._origins[key] = vs.origin
            ids = members.get(vs_id) if vs_id in unchanged else None
            if ids is None:
                ids = []
                for rs in vs.real_servers:
                    rs_id = RealServerId(vs_id, address_text(rs.address), rs.port)
                    ids.append((rs_id, server_key(rs_id)))
            self._members[vs_id] = ids
            for rs, (rs_id, key) in zip(vs.real_servers, ids, strict=True):
                self._servers[rs_id] = (vs, rs)
                self._ids[key] = rs_id

    def _checker_map(self, config: Config) -> dict[str, Sequence[CheckerSpec]]:
        return {server_key(rs_id): rs.checkers for rs_id, (_, rs) in self._servers.items()}

    @staticmethod
    def _health_from(status: ServerStatus, previous: ServerHealth | None) -> ServerHealth:
        return ServerHealth(up=status.up, weight=status.weight,
                            weight_delta=status.weight_delta,
                            up_since=previous.up_since if previous is not None else None)

    def _take_initial_health(self, servers: Mapping[str, object], actual: Table) -> None:
        assert self._engine is not None
        snapshot = self._engine.snapshot()
        served = self._served_destinations(actual)
        for key in servers:
            rs_id = self._ids[key]
            status = snapshot[key]
            health = self._health_from(status, None)
            vs, rs = self._servers[rs_id]
            if not status.up and any(
                    (svc, DestinationKey(rs.address, rs.port or svc.port)) in served
                    for svc in service_keys(vs, self.config)):
                # alpha, but the kernel serves it already: keep it until checked
                health = replace(health, up=True)
                self._provisional.add(rs_id)
                log.info("%s: in the kernel's table already; kept in service until "
                         "its first check (alpha)", self._name(rs_id))
            else:
                self._log_start(rs_id, status)
            self.health[rs_id] = health

    def _log_start(self, rs_id: RealServerId, status: ServerStatus) -> None:
        if status.up:
            log.debug("%s starts UP", self._name(rs_id))
        else:
            log.info("%s starts DOWN: %s", self._name(rs_id), status.reason)

    @staticmethod
    def _served_destinations(actual: Table) -> set[tuple[ServiceKey, DestinationKey]]:
        return {(svc, dest) for svc, service in actual.items()
                for dest, settings in service.destinations.items() if settings.weight > 0}

    def _start_quorum(self, vs: VirtualServer) -> QuorumState:
        state, actions = QuorumState.start(vs, live_weight(vs, self.health, self.drains))
        self.quorum[state.virtual_server] = state
        self._quorum_actions(actions, vs)
        return state

    # ------------------------------------------------------------------ events

    def _on_event(self, key: str, event: Event) -> None:
        rs_id = self._ids.get(key)
        if rs_id is None or key in self._fresh:
            return  # a server being started: its health is taken from the snapshot
        previous = self.health.get(rs_id, ServerHealth())
        kind = event.kind
        if kind is EventKind.SERVER_UP or kind is EventKind.SERVER_DOWN:
            up = kind is EventKind.SERVER_UP
            provisional = rs_id in self._provisional
            self._provisional.discard(rs_id)
            if up == previous.up:
                if provisional:
                    log.info("%s is UP: %s (adopted, now checked)", self._name(rs_id),
                             self._reason(event))
                return
            self.health[rs_id] = replace(previous, up=up, up_since=event.at if up else None)
            log.info("%s is %s: %s", self._name(rs_id), "UP" if up else "DOWN",
                     self._reason(event))
            self._server_changed(rs_id, up, event.check, event.reason)
        elif kind is EventKind.WEIGHT:
            self.health[rs_id] = replace(previous, weight=event.weight,
                                         weight_delta=event.weight_delta)
            log.info("%s: %s", self._name(rs_id), event.describe())
            self._mark_stale(rs_id.virtual_server)
            self._changed()
        elif kind is EventKind.CHECKER_DOWN or kind is EventKind.CHECKER_UP:
            log.debug("%s: %s", self._name(rs_id), event.describe())
        else:
            log.debug("%s: %s", self._name(rs_id), event.describe())

    def _server_changed(self, rs_id: RealServerId, up: bool, check: str | None,
                        reason: str) -> None:
        """A real server went up or down: its notify script, event line and mail."""
        vs, rs = self._servers[rs_id]
        events.emit("real_server_up" if up else "real_server_down",
                    virtual_server=rs_id.virtual_server, address=rs_id.address,
                    port=rs_id.port, check=check or None, reason=reason or None)
        script = rs.notify_up if up else rs.notify_down
        if script is not None:
            self._launch(script)
        if self.alerts is not None:
            try:
                self.alerts.real_server(vs, rs, up, check)
            except Exception:  # an alert must not break the balancer
                log.exception("cannot queue the mail alert for %s", self._name(rs_id))
        self._mark_stale(rs_id.virtual_server)
        self._changed()

    def _reason(self, event: Event) -> str:
        source = f"{event.check} " if event.check else ""
        return f"{source}{event.reason}".strip() or "(no reason given)"

    def _name(self, rs_id: RealServerId) -> str:
        host = f"[{rs_id.address}]" if ":" in rs_id.address else rs_id.address
        return f"real server {host}:{rs_id.port} of {rs_id.virtual_server}"

    def _launch(self, script: Script, *args: str) -> None:
        if self._scripts is None:
            return
        try:
            self._scripts.launch(script, *args)
        except Exception:  # the runner must not break the balancer
            log.exception("cannot run %s (%s)", script.command, script.origin)

    def _quorum_actions(self, actions: Iterable[QuorumAction], vs: VirtualServer) -> None:
        for action in actions:
            if isinstance(action, QuorumChanged):
                self._quorum_event(action, vs)
                if action.stopping:
                    log.info("quorum of %s: down (stopping)", action.virtual_server)
                    continue
                elif action.up:
                    log.info("quorum of %s gained: weight %d >= %d", action.virtual_server,
                             action.weight_sum, action.threshold)
                else:
                    log.warning("quorum of %s %s: weight %d < %d", action.virtual_server,
                                "down at start" if action.starting else "lost",
                                action.weight_sum, action.threshold)
            elif isinstance(action, SorryServerChange):
                log.info("sorry server of %s %s", action.virtual_server,
                         "put into service" if action.active else "taken out of service")
                sorry = vs.sorry_server
                events.emit("sorry_server_in" if action.active else "sorry_server_out",
                            virtual_server=action.virtual_server,
                            address=str(sorry.address) if sorry is not None else None,
                            port=sorry.port if sorry is not None else None)
            elif isinstance(action, RunScript):
                self._launch(action.script)
            self._status_dirty = True

    def _quorum_event(self, action: QuorumChanged, vs: VirtualServer) -> None:
        events.emit("quorum_up" if action.up else "quorum_down",
                    virtual_server=action.virtual_server, weight=action.weight_sum,
                    threshold=action.threshold, starting=action.starting or None,
                    stopping=action.stopping or None)
        if self.alerts is not None:
            try:
                self.alerts.quorum(vs, action)
            except Exception:  # an alert must not break the balancer
                log.exception("cannot queue the mail alert for %s", action.virtual_server)

    def _changed(self) -> None:
        self._dirty = True
        self._status_dirty = True
        self._wake.set()

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            delay = self._next_deadline() - loop.time()
            if delay > 0 and not self._wake.is_set():
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow the
                # cancellation of a stop() that comes as the event is set
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
            since = loop.time() - self._last_pass
            if since < MIN_RECONCILE_INTERVAL:
                await asyncio.sleep(MIN_RECONCILE_INTERVAL - since)  # let a burst gather
            self._wake.clear()
            try:
                await self._tick(loop.time())
            except Exception:  # never let one bad pass end the balancer
                log.exception("balancer pass failed")
                self._last_pass = loop.time()

    def _next_deadline(self) -> float:
        deadlines = [self._next_status, self._next_drain_poll, self._next_resync]
        if self._status_dirty:
            deadlines.append(self._status_earliest)
        if self._ramping:
            deadlines.append(self._next_ramp)
        if self._provisional:
            deadlines.append(self._next_provisional)
        if self._dump_retry_at is not None:
            deadlines.append(self._dump_retry_at)
        elif self._held:
            deadlines.append(min(h.retry_at for h in self._held.values()))
        return min(deadlines)

    async def _tick(self, now: float) -> None:
        if now >= self._next_drain_poll:
            self._poll_drains()
        if self._provisional and now >= self._next_provisional:
            self._settle_provisional()
            self._next_provisional = now + PROVISIONAL_INTERVAL
        if self._dump_retry_at is not None:
            if now < self._dump_retry_at:
                self._dirty = False  # wait for the retry; _pass sets it again
                retry_due = False
            else:
                retry_due = True
        else:
            retry_due = any(h.retry_at <= now for h in self._held.values())
        resync_due = now >= self._next_resync
        if self._dirty or retry_due or resync_due or (self._ramping and now >= self._next_ramp):
            await self._pass()
        if not self.status_paused and (
                (self._status_dirty and now >= self._status_earliest)
                or now >= self._next_status):
            await self._write_status_off_loop()

    def _settle_provisional(self) -> None:
        assert self._engine is not None
        for rs_id in sorted(self._provisional):
            key = server_key(rs_id)
            try:
                status = self._engine.status(key)
            except KeyError:
                self._provisional.discard(rs_id)
                continue
            if any(c.last_check is None for c in status.checkers):
                continue
            self._provisional.discard(rs_id)
            if status.up:
                continue  # the SERVER_UP event said so already
            log.info("%s is DOWN: %s (adopted, first check failed)", self._name(rs_id),
                     status.reason or "check failed")
            self.health[rs_id] = replace(self.health[rs_id], up=False, up_since=None)
            failed = [c for c in status.checkers if c.up is False]
            self._server_changed(rs_id, False, failed[0].kind if failed else None,
                                 status.reason or "check failed")

    async def _pass(self) -> None:
        """Quorum, the desired table, and the operations that make the kernel hold it.
        One at a time: a reload or a stop waits for the pass under way."""
        async with self._pass_lock:
            await self._locked_pass()

    async def _locked_pass(self) -> None:
        loop_now = self._loop.time() if self._loop is not None else 0.0
        self._last_pass = loop_now
        self._dirty = False
        stale = self._stale
        self._stale = set()
        if stale is not None:
            stale |= self._ramping_vs
        for vs_id, vs in self._vs_by_id.items():
            if stale is not None and vs_id not in stale:
                continue
            state = self.quorum.get(vs_id)
            if state is None:
                continue
            state, actions = state.update(live_weight(vs, self.health, self.drains))
            self.quorum[vs_id] = state
            self._quorum_actions(actions, vs)
        try:
            actual = self._known
            fresh = actual is None or loop_now >= self._next_resync
            if fresh:
                actual = await self._ipvs("dump")
                self._next_resync = loop_now + RESYNC_INTERVAL
        except IpvsError as error:
            self._known = None
            self._stale = None if stale is None else self._stale | stale
            self._report(("dump",), f"cannot read the IPVS table: {error.message}")
            self._dump_delay = min(RETRY_MAX, self._dump_delay * 2) if self._dump_retry_at \
                else RETRY_FIRST
            self._dump_retry_at = loop_now + self._dump_delay
            self._dirty = True  # still to do, once the table can be read
            return
        assert actual is not None
        self._dump_retry_at = None
        self._cleared(("dump",), "the IPVS table can be read again")
        now = time.time()
        touched = self._update_parts(stale, now)
        desired: Table = {}
        for vs_id in self._vs_by_id:
            part = self._parts.get(vs_id)
            if part:
                desired.update(part)
        if fresh or self._reconcile_all:
            wanted = reconcile(desired, actual, self.owned | set(desired))
        else:
            # The kernel holds what the last pass left: only the services whose part
            # changed can need an operation.
            touched |= self._gone
            wanted = reconcile({k: desired[k] for k in touched if k in desired},
                               {k: actual[k] for k in touched if k in actual},
                               (self.owned | set(desired)) & touched)
        self._gone = set()
        self._reconcile_all = False
        ops = self._not_held(wanted, loop_now)
        adding = {op.service for op in ops if op.kind is OperationKind.ADD_SERVICE}
        if adding - self.owned:
            self.owned |= adding  # first on disk, so a crash cannot orphan them
            self._save_owned()
        deleted, refused = await self._run_ops(ops, actual)
        leftover = {k for k in self.owned if k in actual and k not in desired
                    and k not in deleted}
        owned = set(desired) | leftover
        if owned != self.owned:
            self.owned = owned
            self._save_owned()
        if ops:
            self._status_dirty = True
        if refused or len(ops) != len(wanted):
            # The kernel is not as planned: read it again next time.
            self._known = None
            self._table = await self._ipvs("dump") if ops else actual
        else:
            # Exactly as reconcile promised: the desired services, the others as they were
            # less the ones deleted.
            self._known = {k: v for k, v in actual.items()
                           if k not in desired and k not in deleted} | desired
            self._table = self._known
        self._ramping_vs = self._ramping_servers(now)
        self._ramping = bool(self._ramping_vs)
        self._next_ramp = loop_now + RAMP_INTERVAL

    def _update_parts(self, stale: set[str] | None, now: float) -> set[ServiceKey]:
        """Recompute the desired services of the `stale` virtual servers (None: all);
        the service keys whose part was recomputed (before or after)."""
        touched: set[ServiceKey] = set()
        quorum = {vs_id: state.up for vs_id, state in self.quorum.items()}
        for vs_id, vs in self._vs_by_id.items():
            if stale is not None and vs_id not in stale:
                continue
            old = self._parts.get(vs_id)
            if old:
                touched.update(old)
            part = desired_table(replace(self.config, virtual_servers=(vs,)), self.health,
                                 now, self.drains, quorum)
            self._parts[vs_id] = part
            touched.update(part)
        return touched

    def _not_held(self, ops: list[Operation], loop_now: float) -> list[Operation]:
        """`ops` without the refused ones whose retry is not due yet (and without the
        operations on a service whose creation is waiting for its retry)."""
        wanted = {_problem_key(op) for op in ops}
        for key in [k for k in self._held if k not in wanted]:
            del self._held[key]  # no longer needed: the problem is moot
            self._problems.pop(key, None)
        if not self._held:
            return ops
        blocked: set[ServiceKey] = set()
        kept = []
        for op in ops:
            held = self._held.get(_problem_key(op))
            if held is not None and held.op == op and held.retry_at > loop_now:
                if op.kind is OperationKind.ADD_SERVICE:
                    blocked.add(op.service)
                continue
            if op.service in blocked:
                continue
            kept.append(op)
        return kept

    async def _run_ops(self, ops: Sequence[Operation],
                       actual: Table) -> tuple[set[ServiceKey], bool]:
        """Apply `ops` in one batch, logging each; the services deleted, and whether
        any operation was refused or not attempted."""
        deleted: set[ServiceKey] = set()
        if not ops:
            return deleted, False
        failures = await self._ipvs("apply_all", list(ops))
        refused = {id(f.op): f for f in failures if f.op is not None}
        failed_adds: set[ServiceKey] = set()
        loop_now = self._loop.time() if self._loop is not None else 0.0
        for op in ops:
            if op.service in failed_adds:
                continue  # not attempted: its service could not be made
            problem = _problem_key(op)
            text = describe_operation(op, actual)
            error = refused.get(id(op))
            if error is not None:
                if op.kind is OperationKind.ADD_SERVICE and error.code != errno.EEXIST:
                    failed_adds.add(op.service)
                origin = self._origins.get(op.service)
                where = f" (virtual_server at {origin})" if origin else ""
                self._report(problem, f"ipvs: {error.message}{where}")
                held = self._held.get(problem)
                delay = RETRY_FIRST if held is None or held.op != op else \
                    min(RETRY_MAX, held.delay * 2)
                self._held[problem] = _Held(op, loop_now + delay, delay)
                continue
            log.info("%sipvs: %s", self._prefix(), text)
            self._applied += 1
            self._held.pop(problem, None)
            self._cleared(problem, f"ipvs: {text}: applied now")
            if op.kind is OperationKind.DELETE_SERVICE:
                deleted.add(op.service)
        return deleted, bool(failures)

    async def _ipvs(self, name: str, *args: Any) -> Any:
        """A backend call; one that blocks (the kernel's) is awaited off the loop."""
        if isinstance(self.backend, ThreadedBackend):
            return await self.backend.call(name, *args)
        return getattr(self.backend, name)(*args)

    def _report(self, problem: tuple[Any, ...], message: str) -> None:
        if self._problems.get(problem) != message:
            self._problems[problem] = message
            log.error("%s", message)
        self._status_dirty = True

    def _cleared(self, problem: tuple[Any, ...], message: str) -> None:
        if self._problems.pop(problem, None) is not None:
            log.info("%s", message)

    def _prefix(self) -> str:
        return "dry-run: " if self.dry_run else ""

    def _ramping_servers(self, now: float) -> set[str]:
        """The virtual servers with a real server in slow start."""
        ramping = set()
        for rs_id, health in self.health.items():
            if not health.up or health.up_since is None:
                continue
            vs, _ = self._servers[rs_id]
            if vs.slow_start > 0 and now - health.up_since < vs.slow_start:
                ramping.add(rs_id.virtual_server)
        return ramping

    # ------------------------------------------------------------------ drains

    def _poll_drains(self, force: bool = False) -> None:
        loop_now = self._loop.time() if self._loop is not None else 0.0
        self._next_drain_poll = loop_now + DRAIN_POLL_INTERVAL
        path = state_files.drains_path(self.state_dir)
        try:
            info = os.stat(path)
            stamp: tuple[int, int, int] | None = (info.st_mtime_ns, info.st_size, info.st_ino)
        except FileNotFoundError:
            stamp = None
        except OSError as error:
            self._drains_error(f"{path}: {error.strerror or error}")
            return
        if stamp == self._drains_stamp and not force:
            return
        try:
            drains = state_files.read_drains(self.state_dir)
        except state_files.StateFileError as error:
            self._drains_error(str(error))
            return
        self._drains_stamp = stamp
        if self._drains_problem is not None:
            log.info("%s: readable again", path)
            self._drains_problem = None
        if drains == self.drains:
            return
        for rs_id in sorted(drains - self.drains):
            log.info("%s: drained (weight 0)", self._name(rs_id))
        for rs_id in sorted(self.drains - drains):
            log.info("%s: no longer drained", self._name(rs_id))
        for rs_id in drains ^ self.drains:
            self._mark_stale(rs_id.virtual_server)
        self.drains = drains
        self._changed()

    def _drains_error(self, message: str) -> None:
        if message != self._drains_problem:
            self._drains_problem = message
            log.error("%s; keeping the drains as they were", message)

    # ------------------------------------------------------------------ state files

    def _save_owned(self) -> None:
        if not self.persist_owned:
            return
        try:
            state_files.write_owned(self.state_dir, self.owned)
        except state_files.StateFileError as error:
            self._state_error(str(error))

    def _state_error(self, message: str) -> None:
        if message != self._state_problem:
            self._state_problem = message
            log.error("%s", message)

    def status(self) -> dict[str, Any]:
        """status.json's content (schema version 1, see the shared brief)."""
        snapshot = self._engine.snapshot() if self._engine is not None else {}
        virtual_servers = []
        for vs in self.config.virtual_servers:
            vs_id = virtual_server_id(vs)
            keys = service_keys(vs, self.config)
            quorum = self.quorum.get(vs_id)
            real_servers = []
            members = self._members.get(vs_id)
            if members is None or len(members) != len(vs.real_servers):  # not started
                members = [(r, server_key(r)) for r in
                           (RealServerId.of(vs, rs) for rs in vs.real_servers)]
            for rs, (rs_id, key) in zip(vs.real_servers, members, strict=True):
                health = self.health.get(rs_id, ServerHealth(up=not rs.alpha))
                status = snapshot.get(key)
                real_servers.append({
                    "address": rs_id.address, "port": rs.port, "up": health.up,
                    "drained": rs_id in self.drains,
                    "weight": self._kernel_weight(keys, rs),
                    "configured_weight": rs.weight,
                    "reason": _status_reason(status, rs),
                    "last_check": status.last_check if status is not None else None,
                    "latency": status.latency if status is not None else None,
                    "since": status.since if status is not None else None,
                })
            virtual_servers.append({
                "id": vs_id, "services": [str(k) for k in keys],
                "quorum_up": quorum.up if quorum is not None else True,
                "sorry_active": quorum.sorry_active if quorum is not None else False,
                "real_servers": real_servers,
            })
        return {"pid": os.getpid(), "config": self.config_path, **self.status_extra,
                "virtual_servers": virtual_servers}

    def _kernel_weight(self, keys: Sequence[ServiceKey], rs: RealServer) -> int:
        for key in keys:
            service = self._table.get(key)
            if service is None:
                continue
            found = service.destinations.get(DestinationKey(rs.address, rs.port or key.port))
            if found is not None:
                return found.weight
        return 0

    async def flush_status(self) -> None:
        """Rewrite status.json now, off the loop (after a reload: `director reload`
        waits for its record)."""
        if self._status_write is not None:
            await asyncio.gather(self._status_write, return_exceptions=True)
        await self._write_status_off_loop()

    def write_status(self) -> None:
        """Rewrite status.json now."""
        self._write_status()

    async def _write_status_off_loop(self) -> None:
        """status.json from a thread: serializing and syncing 40,000 real servers'
        status must not hold the checks up (the data is taken on the loop)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._next_status = started + STATUS_INTERVAL
        self._status_dirty = False
        data = self.status()
        self._status_write = loop.run_in_executor(None, state_files.write_status,
                                                  self.state_dir, data)
        try:
            await asyncio.shield(self._status_write)
        except state_files.StateFileError as error:
            self._state_error(str(error))
        finally:
            ended = loop.time()
            spacing = (ended - started) / STATUS_COST_SHARE
            self._status_earliest = ended + spacing
            self._next_status = max(self._next_status, ended + spacing)

    def _write_status(self) -> None:
        loop_now = self._loop.time() if self._loop is not None else 0.0
        self._next_status = loop_now + STATUS_INTERVAL
        self._status_dirty = False
        try:
            state_files.write_status(self.state_dir, self.status())
        except state_files.StateFileError as error:
            self._state_error(str(error))

    # ------------------------------------------------------------------ stopping

    def _shutdown_scripts(self) -> None:
        for vs in self.config.virtual_servers:
            vs_id = virtual_server_id(vs)
            state = self.quorum.get(vs_id)
            if state is not None:
                was_up = state.up
                state, actions = state.stop(live_weight(vs, self.health, self.drains))
                self.quorum[vs_id] = state
                self._quorum_actions((a for a in actions
                                      if was_up or not isinstance(a, QuorumChanged)), vs)
            for action in shutdown_notifies(vs, self.health):
                self._launch(action.script)

    async def _remove_table(self) -> None:
        try:
            actual = await self._ipvs("dump")
        except IpvsError as error:
            log.error("cannot read the IPVS table to remove this director's services: %s",
                      error.message)
            return
        flush = self.config.global_defs.lvs_flush_on_stop
        if flush is FlushOnStop.ALL:
            doomed = set(actual)
            log.info("lvs_flush_on_stop: deleting every virtual service (%d)", len(doomed))
        else:
            doomed = {k for k in self.owned if k in actual}
            log.info("stopping: deleting this director's %d virtual service(s)", len(doomed))
        self._held.clear()
        async with self._pass_lock:
            deleted, _ = await self._run_ops([Operation(OperationKind.DELETE_SERVICE, k)
                                              for k in sorted(doomed, key=str)], actual)
        self.owned = {k for k in self.owned if k in actual and k not in deleted}
        self._save_owned()


def _status_reason(status: ServerStatus | None, rs: RealServer) -> str:
    if status is None:
        return ""
    if not rs.checkers:
        return "no checker: always up"
    done = [c for c in status.checkers if c.last_check is not None]
    if not done:
        return status.reason or "not checked yet"
    return max(done, key=lambda c: c.last_check).reason
