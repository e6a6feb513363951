"""reconcile(desired, actual): the fewest kernel operations, in an order the kernel
accepts, that make the table what the director wants, leaving others' services alone."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from director.ipvs.backend import kernel_destination_settings, kernel_service_settings
from director.ipvs.memory import MemoryBackend
from director.ipvs.reconcile import reconcile
from director.ipvs.table import (
    DestinationKey,
    DestinationSettings,
    Forwarding,
    Operation,
    OperationKind,
    Protocol,
    Service,
    ServiceKey,
    ServiceSettings,
    Table,
    TunnelType,
)

ADD_S, EDIT_S, DEL_S = (OperationKind.ADD_SERVICE, OperationKind.EDIT_SERVICE,
                        OperationKind.DELETE_SERVICE)
ADD_D, EDIT_D, DEL_D = (OperationKind.ADD_DESTINATION, OperationKind.EDIT_DESTINATION,
                        OperationKind.DELETE_DESTINATION)


def v4(address: str, port: int = 80, protocol: Protocol = Protocol.TCP) -> ServiceKey:
    return ServiceKey(socket.AF_INET, protocol, ipaddress.ip_address(address), port)


def v6(address: str, port: int = 80, protocol: Protocol = Protocol.TCP) -> ServiceKey:
    return ServiceKey(socket.AF_INET6, protocol, ipaddress.ip_address(address), port)


def rs(address: str, port: int = 80) -> DestinationKey:
    return DestinationKey(ipaddress.ip_address(address), port)


WEB = v4("192.0.2.10")
RS1, RS2, RS3 = rs("198.51.100.1"), rs("198.51.100.2"), rs("198.51.100.3")


def service(scheduler: str = "wrr", **weights: int) -> Service:
    """service(rs1=3, rs2=1): real servers 198.51.100.N:80 with those weights."""
    return Service(ServiceSettings(scheduler=scheduler), {
        rs(f"198.51.100.{name[2:]}"): DestinationSettings(weight=weight)
        for name, weight in weights.items()})


def kernel_view(key: ServiceKey, entry: Service) -> tuple:
    return (kernel_service_settings(entry.settings, key.family),
            {d: kernel_destination_settings(s) for d, s in entry.destinations.items()})


def assert_same_tables(left: Table, right: Table) -> None:
    assert {k: kernel_view(k, v) for k, v in left.items()} == {
        k: kernel_view(k, v) for k, v in right.items()}


# ------------------------------------------------------------------ examples


def test_from_empty_adds_each_service_before_its_real_servers() -> None:
    ops = reconcile({WEB: service(rs1=3, rs2=1)}, {})
    assert [(op.kind, op.destination) for op in ops] == [
        (ADD_S, None), (ADD_D, RS1), (ADD_D, RS2)]
    assert ops[0].service_settings == ServiceSettings(scheduler="wrr")
    assert ops[1].destination_settings == DestinationSettings(weight=3)


def test_nothing_to_do_when_the_kernel_already_matches() -> None:
    table = {WEB: service(rs1=3, rs2=1)}
    assert reconcile(table, table) == []


def test_one_weight_change_is_one_edit() -> None:
    ops = reconcile({WEB: service(rs1=3, rs2=5)}, {WEB: service(rs1=3, rs2=1)})
    assert ops == [Operation(EDIT_D, WEB, destination=RS2,
                             destination_settings=DestinationSettings(weight=5))]


def test_changed_scheduler_is_one_edit_keeping_the_real_servers() -> None:
    ops = reconcile({WEB: service("rr", rs1=1)}, {WEB: service("wrr", rs1=1)})
    assert ops == [Operation(EDIT_S, WEB, ServiceSettings(scheduler="rr"))]


def test_changed_forwarding_method_is_an_edit_not_delete_and_add() -> None:
    # The kernel changes a real server's forwarding method in place (see
    # tests/kernel/test_ipvs_pyroute2.py::test_edit_real_server_weight_and_thresholds).
    nat = Service(destinations={RS1: DestinationSettings(forwarding=Forwarding.NAT)})
    dr = Service(destinations={RS1: DestinationSettings(forwarding=Forwarding.DR)})
    assert [op.kind for op in reconcile({WEB: dr}, {WEB: nat})] == [EDIT_D]


def test_replacing_the_pool_adds_before_it_removes() -> None:
    ops = reconcile({WEB: service(rs3=1)}, {WEB: service(rs1=1, rs2=1)})
    assert [(op.kind, op.destination) for op in ops] == [
        (ADD_D, RS3), (DEL_D, RS1), (DEL_D, RS2)]
    backend = MemoryBackend({WEB: service(rs1=1, rs2=1)})
    for op in ops:
        backend.apply(op)
        assert backend.dump()[WEB].destinations, "the service's pool went empty"


def test_a_removed_service_is_one_delete() -> None:
    other = v4("192.0.2.11")
    ops = reconcile({WEB: service(rs1=1)}, {WEB: service(rs1=1), other: service(rs1=1, rs2=1)})
    assert ops == [Operation(DEL_S, other)]


def test_services_others_made_are_left_alone() -> None:
    theirs, ours_before = v4("192.0.2.50"), v4("192.0.2.11")
    actual = {WEB: service(rs1=1), theirs: service(rs2=1), ours_before: service(rs1=1)}
    ops = reconcile({WEB: service(rs1=1)}, actual, owned={WEB, ours_before})
    assert ops == [Operation(DEL_S, ours_before)]
    assert reconcile({}, actual, owned=set()) == []


def test_a_desired_service_that_already_exists_is_adopted_not_recreated() -> None:
    # A restart with an unchanged config: no operation at all, so no connection drops.
    actual = {WEB: service(rs1=3, rs2=1)}
    assert reconcile({WEB: service(rs1=3, rs2=1)}, actual, owned=set()) == []
    ops = reconcile({WEB: service("rr", rs1=3)}, actual, owned=set())
    assert [op.kind for op in ops] == [EDIT_S, DEL_D]


def test_two_spellings_of_the_same_kernel_state_need_no_change() -> None:
    desired = {WEB: Service(ServiceSettings(
        scheduler="sh", sched_flags=frozenset({"flag-1"}), persistence_timeout=60),
        {RS1: DestinationSettings(forwarding=Forwarding.DR, tunnel_port=9)})}
    actual = {WEB: Service(ServiceSettings(
        scheduler="sh", sched_flags=frozenset({"sh-fallback"}), persistence_timeout=60,
        persistence_netmask=32), {RS1: DestinationSettings(forwarding=Forwarding.DR)})}
    assert reconcile(desired, actual) == []


def test_services_are_visited_in_a_stable_order_across_families() -> None:
    keys = [v6("2001:db8::1"), ServiceKey(socket.AF_INET, fwmark=3), v4("192.0.2.9"),
            v4("192.0.2.10", protocol=Protocol.UDP), v4("192.0.2.10")]
    desired = {key: Service() for key in keys}
    first = [op.service for op in reconcile(desired, {})]
    again = [op.service for op in reconcile(dict(reversed(desired.items())), {})]
    assert first == again and sorted(first, key=str) == sorted(keys, key=str)


# ------------------------------------------------------------------ properties

SERVICE_KEYS = [
    v4("192.0.2.10"), v4("192.0.2.10", protocol=Protocol.UDP), v4("192.0.2.11", 443),
    v6("2001:db8::10"), ServiceKey(socket.AF_INET, fwmark=7),
    ServiceKey(socket.AF_INET6, fwmark=8),
]
DESTS = {
    socket.AF_INET: [rs(f"198.51.100.{n}", port) for n in (1, 2, 3) for port in (80, 8080)],
    socket.AF_INET6: [rs(f"2001:db8:1::{n}") for n in (1, 2, 3)],
}

service_settings = st.builds(
    ServiceSettings,
    scheduler=st.sampled_from(["rr", "wrr", "sh", "mh"]),
    sched_flags=st.frozensets(st.sampled_from(["flag-1", "flag-2", "sh-port", "mh-fallback"])),
    persistence_timeout=st.sampled_from([None, 60, 300]),
    persistence_netmask=st.sampled_from([None, 24]),
)
destination_settings = st.builds(
    DestinationSettings,
    forwarding=st.sampled_from(list(Forwarding)),
    weight=st.integers(0, 3),
    upper_threshold=st.sampled_from([0, 100]),
    tunnel_type=st.sampled_from(list(TunnelType)),
    tunnel_port=st.sampled_from([0, 6080]),
)


@st.composite
def tables(draw: st.DrawFn) -> Table:
    keys = draw(st.lists(st.sampled_from(SERVICE_KEYS), unique=True, max_size=4))
    return {key: Service(draw(service_settings), draw(st.dictionaries(
        st.sampled_from(DESTS[key.family]), destination_settings, max_size=4)))
        for key in keys}


@settings(max_examples=300, deadline=None)
@given(desired=tables(), actual=tables(), data=st.data())
def test_applying_the_operations_yields_the_desired_table(
    desired: Table, actual: Table, data: st.DataObject
) -> None:
    owned = data.draw(st.sets(st.sampled_from(SERVICE_KEYS)))
    backend = MemoryBackend(actual)
    before = backend.dump()
    ops = reconcile(desired, actual, owned)
    assert backend.apply_all(ops) == []
    after = backend.dump()

    assert_same_tables({k: after[k] for k in desired}, desired)
    left_alone = {k for k in actual if k not in desired and k not in owned}
    assert {k: after[k] for k in left_alone} == {k: before[k] for k in left_alone}
    assert set(after) == set(desired) | left_alone
    assert reconcile(desired, after, owned) == []


@settings(max_examples=300, deadline=None)
@given(desired=tables(), actual=tables())
def test_without_owned_the_whole_table_becomes_desired(desired: Table, actual: Table) -> None:
    backend = MemoryBackend(actual)
    assert backend.apply_all(reconcile(desired, actual)) == []
    assert_same_tables(backend.dump(), desired)


@settings(max_examples=300, deadline=None)
@given(desired=tables(), actual=tables())
def test_every_operation_is_needed(desired: Table, actual: Table) -> None:
    ops = reconcile(desired, actual)
    # One operation per entry at most, and never delete + add of the same entry.
    touched = [(op.service, op.destination) for op in ops]
    assert len(touched) == len(set(touched))
    deleted = {op.service for op in ops if op.kind is DEL_S}
    # A deleted service is one operation: its real servers go with it.
    assert not any(op.service in deleted for op in ops if op.kind is not DEL_S)
    # Each operation changes the table.
    backend = MemoryBackend(actual)
    for op in ops:
        before = backend.dump()
        backend.apply(op)
        assert backend.dump() != before, op


@settings(max_examples=200, deadline=None)
@given(table=tables())
def test_a_table_needs_nothing_to_become_itself(table: Table) -> None:
    assert reconcile(table, table) == []
    assert reconcile(table, MemoryBackend(table).dump()) == []


@settings(max_examples=200, deadline=None)
@given(table=tables(), data=st.data())
def test_one_weight_change_is_exactly_one_edit(table: Table, data: st.DataObject) -> None:
    pools = [(key, dest) for key, entry in table.items() for dest in entry.destinations]
    if not pools:
        return
    key, dest = data.draw(st.sampled_from(pools))
    current = table[key].destinations[dest]
    changed = replace(current, weight=current.weight + data.draw(st.integers(1, 100)))
    desired = {**table, key: Service(table[key].settings,
                                     {**table[key].destinations, dest: changed})}
    assert reconcile(desired, table) == [
        Operation(EDIT_D, key, destination=dest, destination_settings=changed)]


def big_table(services: int, real_servers: int) -> Table:
    return {
        v4(f"10.{i // 250}.{i % 250}.1"): Service(ServiceSettings(scheduler="wrr"), {
            rs(f"172.16.{j}.{i % 250 + 1}", 80 + i // 250): DestinationSettings(weight=1)
            for j in range(real_servers)})
        for i in range(services)
    }


def test_a_one_percent_change_costs_about_one_percent_of_a_full_apply() -> None:
    actual = big_table(1000, 20)
    from_empty = reconcile(actual, {})
    assert len(from_empty) == 1000 * 21
    desired = dict(actual)
    # 1% of the real servers get a new weight: 200 of 20,000.
    for i, key in enumerate(list(desired)[:100]):
        entry = desired[key]
        dests = dict(entry.destinations)
        for dest in list(dests)[:2]:
            dests[dest] = DestinationSettings(weight=2 + i % 3)
        desired[key] = Service(entry.settings, dests)
    ops = reconcile(desired, actual)
    assert len(ops) == 200
    assert len(ops) / len(from_empty) < 0.011
    assert {op.kind for op in ops} == {EDIT_D}
