"""Virtual-server policy: from the configuration and the real servers' health to the
IPVS table the director wants, and the quorum state machine that decides when the
sorry server stands in and which quorum scripts run.

Pure and sans-IO: no clock (callers pass ``now``), no processes (scripts come back as
`RunScript` values), no kernel (the result is a `Table` for `reconcile`).

The rules follow keepalived 2.2.7 (keepalived.conf(5) and its ipwrapper behaviour):

- quorum: the sum of the (dynamic) weights of the live real servers. While the quorum
  is up it is lost when that sum falls below ``quorum - hysteresis`` (or reaches 0);
  while it is down it is gained when the sum reaches ``quorum + hysteresis``. At
  start-up the quorum is up when the sum is at least ``quorum + hysteresis``.
- sorry_server: while the quorum is down it replaces the real servers (those with
  inhibit_on_failure stay at weight 0, the others are removed); while the quorum is up
  it is removed, or kept at weight 0 with sorry_server_inhibit. Without a sorry server
  losing the quorum changes nothing in the table: only quorum_down runs.
- inhibit_on_failure: a failed real server stays at weight 0 (its connections drain)
  instead of being removed.
- alpha: a real server without a health verdict yet counts as down (without alpha it
  counts as up, as keepalived adds it at start-up).
- omega: at shutdown quorum_down and the live real servers' notify_down run.

Beyond keepalived:
- operator drain: a drained real server is kept at weight 0 and does not count
  towards the quorum; the caller keeps the set of drained `RealServerId`s, which
  name servers by address, so a drain survives reloads;
- slow start (the virtual server's ``slow_start``, our keyword): a real server that
  came up ``elapsed`` seconds ago gets ``weight * elapsed / slow_start`` (at least 1)
  until ``slow_start`` seconds have passed. The quorum counts the full weight: the
  server is healthy, and counting the ramp would make the quorum flap when a pool
  comes back.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, replace

from director.config.model import (
    Config,
    LvsMethod,
    RealServer,
    Script,
    SorryServer,
    VirtualServer,
    address_text,
    service_families,
)
from director.ipvs.table import (
    DestinationKey,
    DestinationSettings,
    Forwarding,
    IPAddress,
    Protocol,
    Service,
    ServiceKey,
    ServiceSettings,
    Table,
    TunnelType,
)
from vrrp.spec import AddressFamily

WEIGHT_MAX = 65535  # ipvsadm's upper bound; keepalived clamps dynamic weights into 0..max


# --- identities and health ---------------------------------------------------------


def virtual_server_id(vs: VirtualServer) -> str:
    """A name for a virtual server that stays the same across reloads: how keepalived
    names it, with the protocol for a group (a group may serve TCP and UDP) and the
    family for a fwmark service given one."""
    if vs.group is not None:
        return f"group {vs.group} {vs.effective_protocol.value}"
    if vs.fwmark is not None:
        family = f" {vs.ip_family.value}" if vs.ip_family is not None else ""
        return f"FWM {vs.fwmark}{family}"
    return vs.describe()


@dataclass(frozen=True, slots=True, order=True)
class RealServerId:
    """A real server of one virtual server, as health results and drains name it."""

    virtual_server: str  # virtual_server_id()
    address: str  # the address as text, so ids of both families sort together
    port: int = 0

    @classmethod
    def of(cls, vs: VirtualServer, rs: RealServer) -> RealServerId:
        return cls(virtual_server_id(vs), address_text(rs.address), rs.port)


@dataclass(frozen=True, slots=True)
class ServerHealth:
    """What the checkers last said about a real server."""

    up: bool = True
    weight: int | None = None  # misc_dynamic: replaces the configured weight
    weight_delta: int = 0  # dynamic track_file / FILE_CHECK weight, added
    up_since: float | None = None  # when it last came up (slow start); None: no ramp


Health = Mapping[RealServerId, ServerHealth]


def health_of(vs: VirtualServer, rs: RealServer, health: Health) -> ServerHealth:
    return _health(RealServerId.of(vs, rs), rs, health)


def _health(rs_id: RealServerId, rs: RealServer, health: Health) -> ServerHealth:
    found = health.get(rs_id)
    if found is not None:
        return found
    return _ALPHA if rs.alpha else _UP


_UP, _ALPHA = ServerHealth(up=True), ServerHealth(up=False)


def _ids(vs: VirtualServer) -> list[tuple[RealServerId, RealServer]]:
    vs_id = virtual_server_id(vs)
    known = _KNOWN_IDS
    if len(known) > _KNOWN_IDS_MAX:
        known.clear()
    result = []
    for rs in vs.real_servers:
        key = (vs_id, rs.address, rs.port)
        rs_id = known.get(key)
        if rs_id is None:
            rs_id = known[key] = RealServerId(vs_id, address_text(rs.address), rs.port)
        result.append((rs_id, rs))
    return result


# Every pass names every real server; making a frozen RealServerId costs more than
# finding the one made before.
_KNOWN_IDS: dict[tuple[str, IPAddress, int], RealServerId] = {}
_KNOWN_IDS_MAX = 1 << 18


def effective_weight(rs: RealServer, state: ServerHealth) -> int:
    """The weight the server has when up: configured or dynamic, plus the delta,
    clamped to what IPVS takes."""
    base = rs.weight if state.weight is None else state.weight
    return max(0, min(WEIGHT_MAX, base + state.weight_delta))


def live_weight(vs: VirtualServer, health: Health,
                drains: Collection[RealServerId] = frozenset()) -> int:
    """The quorum's measure: the summed weight of the live, undrained real servers."""
    return _live_weight(_ids(vs), health, drains)


def _live_weight(servers: list[tuple[RealServerId, RealServer]], health: Health,
                 drains: Collection[RealServerId]) -> int:
    total = 0
    for rs_id, rs in servers:
        state = _health(rs_id, rs, health)
        if state.up and rs_id not in drains:
            total += effective_weight(rs, state)
    return total


def ramped_weight(weight: int, up_since: float | None, now: float, slow_start: float) -> int:
    """Slow start: linear from 1 (at the moment it came up) to `weight`."""
    if weight == 0 or up_since is None or slow_start <= 0:
        return weight
    elapsed = now - up_since
    if elapsed >= slow_start:
        return weight
    return max(1, int(weight * max(0.0, elapsed) / slow_start))


# --- quorum state machine ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuorumChanged:
    """The quorum went up or down (for the log, the notify FIFO, SMTP and SNMP)."""

    virtual_server: str
    up: bool
    weight_sum: int
    threshold: int
    starting: bool = False
    stopping: bool = False


@dataclass(frozen=True, slots=True)
class RunScript:
    """Run a notify script (not run here: the caller owns processes)."""

    script: Script
    event: str  # "quorum_up", "quorum_down" or "notify_down"


@dataclass(frozen=True, slots=True)
class SorryServerChange:
    """The sorry server goes into service (`active`) or out of it; with `inhibit` it
    is enabled/disabled (weight) rather than added/removed."""

    virtual_server: str
    active: bool
    inhibit: bool


QuorumAction = QuorumChanged | RunScript | SorryServerChange


@dataclass(frozen=True, slots=True)
class QuorumState:
    """One virtual server's quorum: `start`, then `update` with each new live weight
    sum, and `stop` at shutdown. Each returns the next state and the actions."""

    virtual_server: str
    quorum: int = 1
    hysteresis: int = 0
    up: bool = True
    sorry_server: SorryServer | None = None
    quorum_up: Script | None = None
    quorum_down: Script | None = None
    omega: bool = False

    @property
    def sorry_active(self) -> bool:
        return self.sorry_server is not None and not self.up

    @property
    def threshold(self) -> int:
        """The weight sum the next transition is measured against."""
        return self.quorum - self.hysteresis if self.up else self.quorum + self.hysteresis

    @classmethod
    def start(cls, vs: VirtualServer, weight_sum: int
              ) -> tuple[QuorumState, tuple[QuorumAction, ...]]:
        """At start-up (or when a reload brings a new virtual server)."""
        up = weight_sum >= vs.quorum + vs.hysteresis
        state = cls(virtual_server_id(vs), quorum=vs.quorum, hysteresis=vs.hysteresis,
                    up=up, sorry_server=vs.sorry_server, quorum_up=vs.quorum_up,
                    quorum_down=vs.quorum_down, omega=vs.omega)
        if up or state.sorry_server is None:
            # keepalived announces a start with the quorum down only when it has a
            # sorry server to put in.
            return state, ()
        return state, state._lost(weight_sum, vs.quorum + vs.hysteresis, starting=True)

    def reconfigured(self, vs: VirtualServer) -> QuorumState:
        """The same state with a reloaded virtual server's settings; call `update` next."""
        return replace(self, quorum=vs.quorum, hysteresis=vs.hysteresis,
                       sorry_server=vs.sorry_server, quorum_up=vs.quorum_up,
                       quorum_down=vs.quorum_down, omega=vs.omega)

    def update(self, weight_sum: int) -> tuple[QuorumState, tuple[QuorumAction, ...]]:
        threshold = self.threshold
        if not self.up and weight_sum >= threshold:
            gained = replace(self, up=True)
            actions: list[QuorumAction] = []
            if self.sorry_server is not None:
                actions.append(SorryServerChange(self.virtual_server, False,
                                                 self.sorry_server.inhibit))
            actions.append(QuorumChanged(self.virtual_server, True, weight_sum, threshold))
            if self.quorum_up is not None:
                actions.append(RunScript(self.quorum_up, "quorum_up"))
            return gained, tuple(actions)
        if self.up and (weight_sum == 0 or weight_sum < threshold):
            lost = replace(self, up=False)
            return lost, lost._lost(weight_sum, threshold)
        return self, ()

    def stop(self, weight_sum: int) -> tuple[QuorumState, tuple[QuorumAction, ...]]:
        """At shutdown the quorum goes down; scripts run only in omega mode."""
        down = replace(self, up=False)
        actions: list[QuorumAction] = [QuorumChanged(
            self.virtual_server, False, weight_sum, self.quorum - self.hysteresis,
            stopping=True)]
        if self.omega and self.quorum_down is not None:
            actions.append(RunScript(self.quorum_down, "quorum_down"))
        return down, tuple(actions)

    def _lost(self, weight_sum: int, threshold: int,
              starting: bool = False) -> tuple[QuorumAction, ...]:
        actions: list[QuorumAction] = []
        if self.sorry_server is not None:
            actions.append(SorryServerChange(self.virtual_server, True,
                                             self.sorry_server.inhibit))
        actions.append(QuorumChanged(self.virtual_server, False, weight_sum, threshold,
                                     starting=starting))
        if self.quorum_down is not None:
            actions.append(RunScript(self.quorum_down, "quorum_down"))
        return tuple(actions)


def shutdown_notifies(vs: VirtualServer, health: Health) -> tuple[RunScript, ...]:
    """Omega mode: notify_down of each live real server when the director stops."""
    if not vs.omega:
        return ()
    return tuple(RunScript(rs.notify_down, "notify_down") for rs in vs.real_servers
                 if rs.notify_down is not None and health_of(vs, rs, health).up)


# --- the desired table ---------------------------------------------------------------


def _af(family: AddressFamily) -> int:
    return socket.AF_INET6 if family is AddressFamily.INET6 else socket.AF_INET


def _af_of(address: IPAddress) -> int:
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET


def service_keys(vs: VirtualServer, config: Config) -> list[ServiceKey]:
    """The kernel services a virtual server stands for: one, or one per member of its
    group (each address of each range, each fwmark)."""
    protocol = Protocol(vs.effective_protocol.value)
    groups = {g.name: g for g in config.virtual_server_groups}
    if vs.group is not None:
        group = groups.get(vs.group)
        if group is None:
            return []
        keys = []
        for entry in group.address_ranges:
            family = _af(entry.family)
            for number in range(int(entry.first), int(entry.last) + 1):
                keys.append(ServiceKey(family, protocol, type(entry.first)(number), entry.port))
        families = sorted(service_families(vs, groups))
        for mark in group.fwmarks:
            marked = [mark.ip_family] if mark.ip_family is not None else families
            keys.extend(ServiceKey(_af(f), fwmark=mark.fwmark) for f in marked)
        return keys
    if vs.fwmark is not None:
        return [ServiceKey(_af(f), fwmark=vs.fwmark)
                for f in sorted(service_families(vs, groups))]
    if vs.address is None:
        return []
    return [ServiceKey(_af_of(vs.address), protocol, vs.address, vs.port)]


def service_settings(vs: VirtualServer) -> ServiceSettings:
    timeout = vs.persistence_timeout
    return ServiceSettings(
        scheduler=vs.lvs_sched,
        sched_flags=frozenset(flag.value for flag in vs.sched_flags),
        persistence_timeout=None if timeout is None else round(timeout),
        persistence_netmask=vs.persistence_granularity,
        one_packet=vs.ops,
        persistence_engine=vs.persistence_engine,
    )


@functools.lru_cache(maxsize=4096)  # few distinct ones: spares 40,000 enum look-ups
def _destination(method: LvsMethod, weight: int, uthreshold: int = 0,
                 lthreshold: int = 0) -> DestinationSettings:
    return DestinationSettings(
        forwarding=Forwarding(method.forwarding.value), weight=weight,
        upper_threshold=uthreshold, lower_threshold=lthreshold,
        tunnel_type=TunnelType(method.tunnel_type.value), tunnel_port=method.tunnel_port,
        tunnel_checksum=method.tunnel_checksum.value)


def _fits(key: ServiceKey, address: IPAddress, method: LvsMethod) -> bool:
    # Only tunnelled servers may be of another family than the service.
    return method.forwarding.value == "TUN" or _af_of(address) == key.family


def _real_destinations(vs: VirtualServer, servers: list[tuple[RealServerId, RealServer]],
                       health: Health, now: float, drains: Collection[RealServerId],
                       sorry_active: bool) -> Iterator[tuple[RealServer, int]]:
    """(real server, weight) for each real server that has a place in the table."""
    for rs_id, rs in servers:
        state = _health(rs_id, rs, health)
        if sorry_active or not state.up:
            if rs.inhibit_on_failure:
                yield rs, 0
            continue
        if rs_id in drains:
            yield rs, 0
            continue
        yield rs, ramped_weight(effective_weight(rs, state), state.up_since, now,
                                vs.slow_start)


def desired_table(config: Config, health: Health, now: float,
                  drains: Collection[RealServerId] = frozenset(),
                  quorum: Mapping[str, bool] | None = None) -> Table:
    """The IPVS table the director wants now.

    `health`: the checkers' verdicts (a server without one is up, unless alpha);
    `drains`: real servers an operator set to weight 0; `quorum`: each virtual
    server's quorum state (`QuorumState.up`, by `virtual_server_id`), the start-up
    rule where missing. A returning server's weight ramps up over its virtual
    server's `slow_start` seconds (0: at once). Two virtual servers naming the same
    kernel service: the later one's wins (the config validator reports the clash)."""
    table: Table = {}
    for vs in config.virtual_servers:
        vs_id = virtual_server_id(vs)
        ids = _ids(vs)
        if quorum is not None and vs_id in quorum:
            quorum_up = quorum[vs_id]
        else:
            quorum_up = _live_weight(ids, health, drains) >= vs.quorum + vs.hysteresis
        sorry = vs.sorry_server
        sorry_active = sorry is not None and not quorum_up
        servers = list(_real_destinations(vs, ids, health, now, drains, sorry_active))
        settings = service_settings(vs)
        for key in service_keys(vs, config):
            destinations: dict[DestinationKey, DestinationSettings] = {}
            for rs, weight in servers:
                if _fits(key, rs.address, rs.lvs_method):
                    destinations[DestinationKey(rs.address, rs.port or key.port)] = \
                        _destination(rs.lvs_method, weight, rs.uthreshold, rs.lthreshold)
            if sorry is not None and _fits(key, sorry.address, sorry.lvs_method):
                where = DestinationKey(sorry.address, sorry.port or key.port)
                if sorry_active:
                    destinations[where] = _destination(sorry.lvs_method, 1)
                elif sorry.inhibit:
                    destinations.setdefault(where, _destination(sorry.lvs_method, 0))
            table[key] = Service(settings, destinations)
    return table
