"""Virtual-server policy: the IPVS table the director wants from config + health, and
the quorum state machine (hysteresis, sorry server, quorum scripts, omega)."""

from __future__ import annotations

import socket
from ipaddress import ip_address

from hypothesis import given, settings
from hypothesis import strategies as st

from director.config.model import (
    AddressRange,
    Config,
    Forwarding,
    GroupFwmark,
    LvsMethod,
    Protocol,
    RealServer,
    SchedulerFlag,
    Script,
    SorryServer,
    VirtualServer,
    VirtualServerGroup,
)
from director.ipvs.reconcile import reconcile
from director.ipvs.table import DestinationKey, OperationKind, ServiceKey
from director.ipvs.table import Forwarding as KernelForwarding
from director.ipvs.table import Protocol as KernelProtocol
from director.pool import (
    QuorumChanged,
    QuorumState,
    RealServerId,
    RunScript,
    ServerHealth,
    SorryServerChange,
    desired_table,
    live_weight,
    shutdown_notifies,
    virtual_server_id,
)
from vrrp.spec import AddressFamily

VIP = ip_address("192.0.2.10")
DR = LvsMethod(forwarding=Forwarding.DR)
UP_SCRIPT = Script(command="/bin/quorum-up")
DOWN_SCRIPT = Script(command="/bin/quorum-down")


def rs(last: int, weight: int = 1, **kw) -> RealServer:
    return RealServer(address=ip_address(f"198.51.100.{last}"), port=80, weight=weight,
                      lvs_method=DR, **kw)


def vs(*servers: RealServer, **kw) -> VirtualServer:
    kw.setdefault("address", VIP)
    kw.setdefault("port", 80)
    return VirtualServer(protocol=Protocol.TCP, lvs_method=DR, real_servers=servers, **kw)


def key_of(v: VirtualServer) -> ServiceKey:
    return ServiceKey(socket.AF_INET, KernelProtocol.TCP, v.address, v.port)


def down(v: VirtualServer, *servers: RealServer) -> dict[RealServerId, ServerHealth]:
    return {RealServerId.of(v, s): ServerHealth(up=False) for s in servers}


def weights(table, key: ServiceKey) -> dict[str, int]:
    return {f"{d.address}:{d.port}": s.weight for d, s in table[key].destinations.items()}


# --- service mapping -------------------------------------------------------------------


def test_an_ip_service_maps_scheduler_flags_persistence_and_thresholds() -> None:
    server = rs(1, weight=3, uthreshold=100, lthreshold=10)
    v = vs(server, lvs_sched="sh", sched_flags=(SchedulerFlag.SH_PORT,),
           persistence_timeout=600.0, persistence_granularity=24, ops=True)
    service = desired_table(Config(virtual_servers=(v,)), {}, now=0.0)[key_of(v)]
    assert service.settings.scheduler == "sh"
    assert service.settings.sched_flags == frozenset({"sh-port"})
    assert service.settings.persistence_timeout == 600
    assert service.settings.persistence_netmask == 24
    assert service.settings.one_packet
    dest = service.destinations[DestinationKey(server.address, 80)]
    assert (dest.forwarding, dest.weight, dest.upper_threshold, dest.lower_threshold) == (
        KernelForwarding.DR, 3, 100, 10)


def test_ipv6_service_and_real_servers() -> None:
    server = RealServer(address=ip_address("2001:db8::5"), port=443, weight=2)
    v = VirtualServer(address=ip_address("2001:db8::1"), port=443, protocol=Protocol.TCP,
                      real_servers=(server,))
    table = desired_table(Config(virtual_servers=(v,)), {}, now=0.0)
    key = ServiceKey(socket.AF_INET6, KernelProtocol.TCP, ip_address("2001:db8::1"), 443)
    assert weights(table, key) == {"2001:db8::5:443": 2}


def test_fwmark_service_takes_the_family_of_its_real_servers() -> None:
    server = RealServer(address=ip_address("2001:db8::5"), port=0)
    v = VirtualServer(fwmark=7, real_servers=(server,))
    table = desired_table(Config(virtual_servers=(v,)), {}, now=0.0)
    assert list(table) == [ServiceKey(socket.AF_INET6, fwmark=7)]
    assert list(table[ServiceKey(socket.AF_INET6, fwmark=7)].destinations) == [
        DestinationKey(server.address, 0)]


def test_group_expands_ranges_and_fwmarks_into_one_service_each() -> None:
    group = VirtualServerGroup(name="web", address_ranges=(
        AddressRange(first=ip_address("192.0.2.1"), last=ip_address("192.0.2.3"), port=80),
        AddressRange(first=ip_address("203.0.113.9"), last=ip_address("203.0.113.9"),
                     port=8080),
    ), fwmarks=(GroupFwmark(fwmark=5),))
    server = RealServer(address=ip_address("198.51.100.1"), port=0, lvs_method=DR)
    v = VirtualServer(group="web", protocol=Protocol.TCP, real_servers=(server,))
    table = desired_table(Config(virtual_server_groups=(group,), virtual_servers=(v,)),
                          {}, now=0.0)
    tcp = KernelProtocol.TCP
    assert set(table) == {
        ServiceKey(socket.AF_INET, tcp, ip_address("192.0.2.1"), 80),
        ServiceKey(socket.AF_INET, tcp, ip_address("192.0.2.2"), 80),
        ServiceKey(socket.AF_INET, tcp, ip_address("192.0.2.3"), 80),
        ServiceKey(socket.AF_INET, tcp, ip_address("203.0.113.9"), 8080),
        ServiceKey(socket.AF_INET, fwmark=5),
    }
    # a real server without a port takes each member's port
    member = ServiceKey(socket.AF_INET, tcp, ip_address("203.0.113.9"), 8080)
    assert list(table[member].destinations) == [DestinationKey(server.address, 8080)]


def test_group_ipv6_fwmark_with_its_family() -> None:
    group = VirtualServerGroup(name="g6", fwmarks=(
        GroupFwmark(fwmark=9, ip_family=AddressFamily.INET6),))
    server = RealServer(address=ip_address("2001:db8::7"), port=0,
                        lvs_method=LvsMethod(forwarding=Forwarding.TUN))
    v = VirtualServer(group="g6", real_servers=(server,))
    table = desired_table(Config(virtual_server_groups=(group,), virtual_servers=(v,)),
                          {}, now=0.0)
    assert list(table) == [ServiceKey(socket.AF_INET6, fwmark=9)]


def test_group_ipv6_address_range() -> None:
    group = VirtualServerGroup(name="v6", address_ranges=(AddressRange(
        first=ip_address("2001:db8::a"), last=ip_address("2001:db8::b"), port=443),))
    server = RealServer(address=ip_address("2001:db8::100"), port=443, lvs_method=DR)
    v = VirtualServer(group="v6", protocol=Protocol.TCP, real_servers=(server,))
    table = desired_table(Config(virtual_server_groups=(group,), virtual_servers=(v,)),
                          {}, now=0.0)
    assert sorted(str(k) for k in table) == ["TCP [2001:db8::a]:443", "TCP [2001:db8::b]:443"]


def test_undefined_group_gives_no_service() -> None:
    v = VirtualServer(group="missing", real_servers=(rs(1),))
    assert desired_table(Config(virtual_servers=(v,)), {}, now=0.0) == {}


# --- real server state ---------------------------------------------------------------


def test_down_server_is_removed_or_inhibited_at_weight_zero() -> None:
    plain, inhibited, healthy = rs(1), rs(2, inhibit_on_failure=True), rs(3, weight=5)
    v = vs(plain, inhibited, healthy)
    table = desired_table(Config(virtual_servers=(v,)), down(v, plain, inhibited), now=0.0)
    assert weights(table, key_of(v)) == {"198.51.100.2:80": 0, "198.51.100.3:80": 5}


def test_alpha_server_without_verdict_starts_down() -> None:
    v = vs(rs(1, alpha=True), rs(2))
    assert weights(desired_table(Config(virtual_servers=(v,)), {}, now=0.0),
                   key_of(v)) == {"198.51.100.2:80": 1}


def test_dynamic_weight_replaces_and_delta_adds_clamped_at_zero() -> None:
    a, b, c = rs(1, weight=10), rs(2, weight=10), rs(3, weight=2)
    v = vs(a, b, c)
    health = {RealServerId.of(v, a): ServerHealth(weight=4),
              RealServerId.of(v, b): ServerHealth(weight=4, weight_delta=3),
              RealServerId.of(v, c): ServerHealth(weight_delta=-5)}
    assert weights(desired_table(Config(virtual_servers=(v,)), health, now=0.0),
                   key_of(v)) == {"198.51.100.1:80": 4, "198.51.100.2:80": 7,
                                  "198.51.100.3:80": 0}
    assert live_weight(v, health) == 11


def test_drained_server_is_kept_at_weight_zero_and_leaves_the_quorum() -> None:
    a, b = rs(1, weight=3), rs(2, weight=3)
    v = vs(a, b)
    drains = frozenset({RealServerId.of(v, a)})
    table = desired_table(Config(virtual_servers=(v,)), {}, now=0.0, drains=drains)
    assert weights(table, key_of(v)) == {"198.51.100.1:80": 0, "198.51.100.2:80": 3}
    assert live_weight(v, {}, drains) == 3


def test_drain_survives_a_reload_that_changes_the_weight() -> None:
    v1 = vs(rs(1, weight=3))
    drains = frozenset({RealServerId.of(v1, v1.real_servers[0])})
    v2 = vs(rs(1, weight=8), rs(2))
    table = desired_table(Config(virtual_servers=(v2,)), {}, now=0.0, drains=drains)
    assert weights(table, key_of(v2))["198.51.100.1:80"] == 0


def test_slow_start_ramps_linearly_from_one_to_the_weight() -> None:
    server = rs(1, weight=100)
    v = vs(server, slow_start=60.0)
    health = {RealServerId.of(v, server): ServerHealth(up_since=1000.0)}
    config = Config(virtual_servers=(v,))

    def at(now: float) -> int:
        table = desired_table(config, health, now=now)
        return weights(table, key_of(v))["198.51.100.1:80"]

    assert (at(1000.0), at(1030.0), at(1060.0), at(5000.0)) == (1, 50, 100, 100)
    # quorum counts the full weight
    assert live_weight(v, health) == 100
    # without slow start the weight is full at once
    at_once = vs(server)
    assert weights(desired_table(Config(virtual_servers=(at_once,)), health, now=1000.0),
                   key_of(at_once)) == {"198.51.100.1:80": 100}


def test_slow_start_is_each_virtual_servers_own() -> None:
    server = rs(1, weight=100)
    ramped = vs(server, slow_start=100.0)
    plain = vs(server, address=ip_address("192.0.2.20"))
    health = {RealServerId.of(v, server): ServerHealth(up_since=0.0) for v in (ramped, plain)}
    table = desired_table(Config(virtual_servers=(ramped, plain)), health, now=25.0)
    assert weights(table, key_of(ramped)) == {"198.51.100.1:80": 25}
    assert weights(table, key_of(plain)) == {"198.51.100.1:80": 100}


def test_slow_start_does_not_raise_a_drained_or_inhibited_server() -> None:
    up = rs(1, weight=10)
    down = rs(2, weight=10, inhibit_on_failure=True)
    v = vs(up, down, slow_start=30.0)
    health = {RealServerId.of(v, up): ServerHealth(up_since=0.0),
              RealServerId.of(v, down): ServerHealth(up=False, up_since=0.0)}
    drains = frozenset({RealServerId.of(v, up)})
    table = desired_table(Config(virtual_servers=(v,)), health, now=15.0, drains=drains)
    assert weights(table, key_of(v)) == {"198.51.100.1:80": 0, "198.51.100.2:80": 0}


# --- quorum, hysteresis and the sorry server -------------------------------------------


def quorum_vs(**kw) -> VirtualServer:
    kw.setdefault("sorry_server", SorryServer(address=ip_address("198.51.100.99"), lvs_method=DR))
    return vs(*(rs(n, weight=1) for n in range(1, 6)), quorum=3, hysteresis=1,
              quorum_up=UP_SCRIPT, quorum_down=DOWN_SCRIPT, **kw)


def test_start_rule_needs_quorum_plus_hysteresis() -> None:
    v = quorum_vs()
    assert QuorumState.start(v, 4)[0].up
    state, actions = QuorumState.start(v, 3)
    assert not state.up and state.sorry_active
    assert actions == (SorryServerChange(virtual_server_id(v), True, False),
                       QuorumChanged(virtual_server_id(v), False, 3, 4, starting=True),
                       RunScript(DOWN_SCRIPT, "quorum_down"))


def test_start_with_quorum_down_and_no_sorry_server_announces_nothing() -> None:
    state, actions = QuorumState.start(quorum_vs(sorry_server=None), 0)
    assert not state.up and actions == ()


def test_hysteresis_lost_below_quorum_minus_h_gained_at_quorum_plus_h() -> None:
    v = quorum_vs()
    state, _ = QuorumState.start(v, 5)
    trace = []
    for weight_sum in (4, 3, 2, 1, 2, 3, 4, 5):
        state, actions = state.update(weight_sum)
        trace.append((weight_sum, state.up, [type(a).__name__ for a in actions]))
    assert trace == [
        (4, True, []), (3, True, []), (2, True, []),  # 2 == quorum - hysteresis: kept
        (1, False, ["SorryServerChange", "QuorumChanged", "RunScript"]),
        (2, False, []), (3, False, []),  # 3 < quorum + hysteresis: still down
        (4, True, ["SorryServerChange", "QuorumChanged", "RunScript"]),
        (5, True, []),
    ]


def test_quorum_scripts_and_sorry_server_actions() -> None:
    state, _ = QuorumState.start(quorum_vs(), 5)
    lost, actions = state.update(0)
    assert RunScript(DOWN_SCRIPT, "quorum_down") in actions
    assert SorryServerChange(state.virtual_server, True, False) in actions
    gained, actions = lost.update(5)
    assert gained.up
    assert RunScript(UP_SCRIPT, "quorum_up") in actions
    assert SorryServerChange(state.virtual_server, False, False) in actions


def test_zero_weight_loses_the_quorum_even_when_the_threshold_is_not_positive() -> None:
    state, _ = QuorumState.start(vs(rs(1), quorum=1, hysteresis=1), 2)
    assert not state.update(0)[0].up


def test_sorry_server_replaces_the_pool_while_quorum_is_down() -> None:
    v = quorum_vs()
    servers = v.real_servers
    config = Config(virtual_servers=(v,))
    health = down(v, *servers[:3])
    up_table = desired_table(config, health, now=0.0, quorum={virtual_server_id(v): True})
    assert weights(up_table, key_of(v)) == {"198.51.100.4:80": 1, "198.51.100.5:80": 1}
    down_table = desired_table(config, health, now=0.0,
                               quorum={virtual_server_id(v): False})
    assert weights(down_table, key_of(v)) == {"198.51.100.99:80": 1}


def test_sorry_server_goes_in_and_out_with_hysteresis_as_servers_fail_and_return() -> None:
    v = quorum_vs()  # quorum 3, hysteresis 1, five servers of weight 1
    config = Config(virtual_servers=(v,))
    state, _ = QuorumState.start(v, live_weight(v, {}))
    sorry_seen = []
    for live in (5, 2, 1, 2, 3, 4, 3, 2):
        health = down(v, *v.real_servers[live:])
        state, _ = state.update(live_weight(v, health))
        table = desired_table(config, health, now=0.0, quorum={state.virtual_server: state.up})
        sorry_seen.append("198.51.100.99:80" in weights(table, key_of(v)))
    assert sorry_seen == [False, False, True, True, True, False, False, False]


def test_sorry_server_keeps_inhibited_real_servers_at_weight_zero() -> None:
    v = vs(rs(1, inhibit_on_failure=True), rs(2), quorum=5,
           sorry_server=SorryServer(address=ip_address("198.51.100.99"), port=8080,
                                    lvs_method=DR))
    table = desired_table(Config(virtual_servers=(v,)), {}, now=0.0)  # start rule: down
    assert weights(table, key_of(v)) == {"198.51.100.1:80": 0, "198.51.100.99:8080": 1}


def test_sorry_server_inhibit_keeps_it_at_weight_zero_while_quorum_is_up() -> None:
    v = quorum_vs(sorry_server=SorryServer(address=ip_address("198.51.100.99"),
                                           lvs_method=DR, inhibit=True))
    table = desired_table(Config(virtual_servers=(v,)), {}, now=0.0)
    assert weights(table, key_of(v))["198.51.100.99:80"] == 0
    no_inhibit = quorum_vs()
    table = desired_table(Config(virtual_servers=(no_inhibit,)), {}, now=0.0)
    assert "198.51.100.99:80" not in weights(table, key_of(no_inhibit))


def test_without_sorry_server_losing_quorum_leaves_the_table_alone() -> None:
    v = quorum_vs(sorry_server=None)
    config = Config(virtual_servers=(v,))
    health = down(v, *v.real_servers[:4])
    table = desired_table(config, health, now=0.0, quorum={virtual_server_id(v): False})
    assert weights(table, key_of(v)) == {"198.51.100.5:80": 1}


def test_omega_runs_quorum_down_and_notify_down_at_shutdown() -> None:
    notify = Script(command="/bin/rs-down")
    server = rs(1, notify_down=notify)
    with_omega = vs(server, omega=True, quorum_down=DOWN_SCRIPT)
    state, _ = QuorumState.start(with_omega, 1)
    stopped, actions = state.stop(1)
    assert not stopped.up
    assert RunScript(DOWN_SCRIPT, "quorum_down") in actions
    assert shutdown_notifies(with_omega, {}) == (RunScript(notify, "notify_down"),)
    without = vs(server, quorum_down=DOWN_SCRIPT)
    state, _ = QuorumState.start(without, 1)
    assert not any(isinstance(a, RunScript) for a in state.stop(1)[1])
    assert shutdown_notifies(without, {}) == ()


# --- properties and reconcile ------------------------------------------------------------


POOL = quorum_vs(sorry_server=SorryServer(address=ip_address("198.51.100.99"), lvs_method=DR),
                 slow_start=30.0)
POOL_CONFIG = Config(virtual_servers=(POOL,))
SERVER_IDS = [RealServerId.of(POOL, s) for s in POOL.real_servers]

health_maps = st.dictionaries(
    st.sampled_from(SERVER_IDS),
    st.builds(ServerHealth, up=st.booleans(),
              weight=st.none() | st.integers(-5, 70000),
              weight_delta=st.integers(-5, 5),
              up_since=st.none() | st.floats(0.0, 100.0)))


@settings(max_examples=200, deadline=None)
@given(health=health_maps, drains=st.frozensets(st.sampled_from(SERVER_IDS)),
       quorum_up=st.none() | st.booleans(), now=st.floats(0.0, 200.0))
def test_every_destination_is_a_configured_server_with_a_sane_weight(
        health, drains, quorum_up, now) -> None:
    quorum = None if quorum_up is None else {virtual_server_id(POOL): quorum_up}
    table = desired_table(POOL_CONFIG, health, now, drains, quorum)
    configured = {DestinationKey(s.address, s.port): s for s in POOL.real_servers}
    sorry = DestinationKey(POOL.sorry_server.address, POOL.port)
    for dest, dest_settings in table[key_of(POOL)].destinations.items():
        assert dest in configured or dest == sorry
        if dest in configured:
            server = configured[dest]
            state = health.get(RealServerId.of(POOL, server), ServerHealth())
            limit = server.weight if state.weight is None else state.weight
            assert 0 <= dest_settings.weight <= max(0, min(65535, limit + state.weight_delta))
        else:
            assert dest_settings.weight in (0, 1)


def test_one_server_going_down_is_one_kernel_operation() -> None:
    v = vs(rs(1), rs(2), rs(3, inhibit_on_failure=True))
    config = Config(virtual_servers=(v,))
    before = desired_table(config, {}, now=0.0)
    for server, kind in ((v.real_servers[0], OperationKind.DELETE_DESTINATION),
                         (v.real_servers[2], OperationKind.EDIT_DESTINATION)):
        after = desired_table(config, down(v, server), now=10.0)
        ops = reconcile(after, before)
        assert [(op.kind, op.destination.address) for op in ops] == [(kind, server.address)]
