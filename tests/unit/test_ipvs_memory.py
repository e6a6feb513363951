"""The memory backend holds a table and refuses what the kernel refuses, with the errno
the kernel answers (tests/kernel/test_ipvs_pyroute2.py measured them)."""

from __future__ import annotations

import errno
import ipaddress
import socket

import pytest

from director.ipvs.backend import IpvsError
from director.ipvs.memory import Interface, MemoryBackend
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
    SyncDaemon,
    SyncState,
    Timeouts,
    TunnelType,
)

WEB = ServiceKey(socket.AF_INET, Protocol.TCP, ipaddress.ip_address("192.0.2.10"), 80)
DNS6 = ServiceKey(socket.AF_INET6, Protocol.UDP, ipaddress.ip_address("2001:db8::1"), 53)
MARK = ServiceKey(socket.AF_INET, fwmark=7)
RS1 = DestinationKey(ipaddress.ip_address("198.51.100.1"), 80)
RS2 = DestinationKey(ipaddress.ip_address("198.51.100.2"), 80)
RS6 = DestinationKey(ipaddress.ip_address("2001:db8:1::5"), 53)


def add_service(key: ServiceKey = WEB, **settings: object) -> Operation:
    return Operation(OperationKind.ADD_SERVICE, key, ServiceSettings(**settings))


def edit_service(key: ServiceKey = WEB, **settings: object) -> Operation:
    return Operation(OperationKind.EDIT_SERVICE, key, ServiceSettings(**settings))


def delete_service(key: ServiceKey = WEB) -> Operation:
    return Operation(OperationKind.DELETE_SERVICE, key)


def add_dest(dest: DestinationKey = RS1, key: ServiceKey = WEB, **settings: object) -> Operation:
    return Operation(OperationKind.ADD_DESTINATION, key, destination=dest,
                     destination_settings=DestinationSettings(**settings))


def edit_dest(dest: DestinationKey = RS1, key: ServiceKey = WEB, **settings: object) -> Operation:
    return Operation(OperationKind.EDIT_DESTINATION, key, destination=dest,
                     destination_settings=DestinationSettings(**settings))


def delete_dest(dest: DestinationKey = RS1, key: ServiceKey = WEB) -> Operation:
    return Operation(OperationKind.DELETE_DESTINATION, key, destination=dest)


def refusal(backend: MemoryBackend, op: Operation) -> IpvsError:
    before = backend.dump()
    with pytest.raises(IpvsError) as caught:
        backend.apply(op)
    assert backend.dump() == before  # a refused operation changes nothing
    assert caught.value.op == op
    return caught.value


def test_add_edit_delete_service_and_real_servers() -> None:
    backend = MemoryBackend()
    backend.apply(add_service(scheduler="rr"))
    backend.apply(add_dest(RS1, forwarding=Forwarding.NAT, weight=3))
    backend.apply(add_dest(RS2))
    assert backend.dump() == {WEB: Service(ServiceSettings(scheduler="rr"), {
        RS1: DestinationSettings(forwarding=Forwarding.NAT, weight=3),
        RS2: DestinationSettings(),
    })}

    backend.apply(edit_service(scheduler="wrr", persistence_timeout=300))
    backend.apply(edit_dest(RS1, forwarding=Forwarding.NAT, weight=7))
    backend.apply(delete_dest(RS2))
    table = backend.dump()
    assert table[WEB].settings.scheduler == "wrr"
    assert table[WEB].settings.persistence_timeout == 300
    assert table[WEB].destinations == {
        RS1: DestinationSettings(forwarding=Forwarding.NAT, weight=7)}

    backend.apply(delete_service())
    assert backend.dump() == {}
    assert [op.kind for op in backend.log] == [
        "add-service", "add-destination", "add-destination", "edit-service",
        "edit-destination", "delete-destination", "delete-service"]


def test_an_edit_writes_every_field_like_the_kernel() -> None:
    backend = MemoryBackend()
    backend.apply(add_service(scheduler="rr", persistence_timeout=60))
    backend.apply(add_dest(forwarding=Forwarding.NAT, weight=2, upper_threshold=100))
    backend.apply(edit_service(scheduler="rr"))
    backend.apply(edit_dest(weight=5))
    [service] = backend.dump().values()
    assert service.settings.persistence_timeout is None
    assert service.destinations[RS1] == DestinationSettings(forwarding=Forwarding.DR, weight=5)


def test_deleting_a_service_takes_its_real_servers() -> None:
    backend = MemoryBackend()
    backend.apply(add_service())
    backend.apply(add_dest(RS1))
    backend.apply(delete_service())
    backend.apply(add_service())
    assert backend.dump()[WEB].destinations == {}


def test_starts_from_a_given_table_with_an_empty_log() -> None:
    table = {WEB: Service(ServiceSettings(scheduler="wrr"), {RS1: DestinationSettings(weight=4)})}
    backend = MemoryBackend(table)
    assert backend.dump() == table
    assert backend.log == []


def test_dump_is_a_copy() -> None:
    backend = MemoryBackend({WEB: Service(ServiceSettings(), {RS1: DestinationSettings()})})
    backend.dump()[WEB].destinations.clear()
    assert RS1 in backend.dump()[WEB].destinations


def test_ipv6_and_fwmark_services() -> None:
    backend = MemoryBackend()
    backend.apply(add_service(DNS6, scheduler="sh", sched_flags=frozenset({"flag-1"}),
                              persistence_timeout=60, persistence_netmask=64))
    backend.apply(add_dest(RS6, DNS6, forwarding=Forwarding.NAT, weight=2))
    backend.apply(add_service(MARK, scheduler="wrr"))
    backend.apply(add_dest(DestinationKey(ipaddress.ip_address("198.51.100.9")), MARK))
    table = backend.dump()
    # Reported as ipvsadm names them for the scheduler.
    assert table[DNS6].settings.sched_flags == {"sh-fallback"}
    assert table[DNS6].settings.persistence_netmask == 64
    assert set(table) == {DNS6, MARK}


def test_persistence_netmask_defaults_to_one_client() -> None:
    backend = MemoryBackend()
    backend.apply(add_service(persistence_timeout=300))
    backend.apply(add_service(DNS6, persistence_timeout=300))
    table = backend.dump()
    assert table[WEB].settings.persistence_netmask == 32
    assert table[DNS6].settings.persistence_netmask == 128


# ------------------------------------------------------------------ refusals


def test_duplicate_service_is_eexist_and_keeps_the_first() -> None:
    backend = MemoryBackend()
    backend.apply(add_service(scheduler="rr"))
    error = refusal(backend, add_service(scheduler="wrr"))
    assert error.code == 17
    assert str(error) == "cannot add virtual service TCP 192.0.2.10:80: it already exists"
    assert backend.dump()[WEB].settings.scheduler == "rr"


def test_duplicate_real_server_is_eexist() -> None:
    backend = MemoryBackend()
    backend.apply(add_service())
    backend.apply(add_dest(weight=5))
    error = refusal(backend, add_dest(weight=9))
    assert error.code == 17
    assert "real server 198.51.100.1:80 of virtual service TCP 192.0.2.10:80" in str(error)


def test_missing_service_is_esrch() -> None:
    backend = MemoryBackend()
    for op in (delete_service(), edit_service(), add_dest(), edit_dest(), delete_dest()):
        error = refusal(backend, op)
        assert error.code == 3
        assert str(error).endswith("no such virtual service")


def test_missing_real_server_is_enoent() -> None:
    backend = MemoryBackend()
    backend.apply(add_service())
    for op in (edit_dest(), delete_dest()):
        error = refusal(backend, op)
        assert error.code == 2
        assert str(error).endswith("no such real server in this service")


def test_unknown_scheduler_is_enoent_with_the_module_named() -> None:
    backend = MemoryBackend()
    error = refusal(backend, add_service(scheduler="nosuch"))
    assert error.code == 2
    assert str(error) == ("cannot add virtual service TCP 192.0.2.10:80: unknown scheduler "
                          "'nosuch' (no ip_vs_nosuch kernel module)")
    backend.apply(add_service(scheduler="rr"))
    assert refusal(backend, edit_service(scheduler="nosuch")).code == 2
    assert backend.dump()[WEB].settings.scheduler == "rr"


def test_schedulers_can_be_limited_to_what_a_kernel_has() -> None:
    backend = MemoryBackend(schedulers={"rr"})
    assert refusal(backend, add_service(scheduler="mh")).code == 2


def test_unknown_persistence_engine_is_enoent() -> None:
    backend = MemoryBackend()
    error = refusal(backend, add_service(persistence_timeout=60, persistence_engine="nope"))
    assert error.code == 2
    assert "persistence engine 'nope'" in str(error)
    backend.apply(add_service(persistence_timeout=60, persistence_engine="sip"))


@pytest.mark.parametrize(
    "settings",
    [{"weight": -1}, {"upper_threshold": 5, "lower_threshold": 10},
     {"lower_threshold": 1}],
    ids=["negative-weight", "lower-above-upper", "lower-without-upper"],
)
def test_bad_weight_or_thresholds_are_erange(settings: dict) -> None:
    backend = MemoryBackend()
    backend.apply(add_service())
    error = refusal(backend, add_dest(**settings))
    assert error.code == 34
    assert "lower threshold not above the upper one" in str(error)
    backend.apply(add_dest())
    assert refusal(backend, edit_dest(**settings)).code == 34


@pytest.mark.parametrize(
    "key",
    [
        ServiceKey(socket.AF_INET, Protocol.TCP, None, 80),
        ServiceKey(socket.AF_INET6, Protocol.TCP, ipaddress.ip_address("192.0.2.1"), 80),
        ServiceKey(socket.AF_INET, Protocol.TCP, ipaddress.ip_address("192.0.2.1"), 70000),
        ServiceKey(socket.AF_INET, Protocol.TCP, ipaddress.ip_address("192.0.2.1"), fwmark=3),
        ServiceKey(99, fwmark=3),
    ],
    ids=["no-address", "family-mismatch", "port-range", "fwmark-and-address", "family"],
)
def test_malformed_service_keys_are_einval(key: ServiceKey) -> None:
    assert refusal(MemoryBackend(), add_service(key)).code == 22


def test_other_family_real_server_needs_tunnel_forwarding() -> None:
    backend = MemoryBackend()
    backend.apply(add_service())
    error = refusal(backend, add_dest(RS6, forwarding=Forwarding.DR))
    assert error.code == 22
    assert "tunnel forwarding" in str(error)
    backend.apply(add_dest(RS6, forwarding=Forwarding.TUN))


def test_tunnel_fields_are_kept_only_where_they_apply() -> None:
    backend = MemoryBackend()
    backend.apply(add_service())
    backend.apply(add_dest(RS1, forwarding=Forwarding.DR, tunnel_type=TunnelType.GUE,
                           tunnel_port=5555))
    backend.apply(add_dest(RS2, forwarding=Forwarding.TUN, tunnel_type=TunnelType.GUE,
                           tunnel_port=5555, tunnel_checksum="csum"))
    destinations = backend.dump()[WEB].destinations
    assert destinations[RS1] == DestinationSettings(forwarding=Forwarding.DR)
    assert destinations[RS2].tunnel_port == 5555


def test_refused_operations_are_not_logged() -> None:
    backend = MemoryBackend()
    with pytest.raises(IpvsError):
        backend.apply(delete_service())
    assert backend.log == []


# ------------------------------------------------------------------ apply_all


def test_apply_all_goes_on_past_a_bad_entry() -> None:
    backend = MemoryBackend()
    other = ServiceKey(socket.AF_INET, Protocol.TCP, ipaddress.ip_address("192.0.2.11"), 80)
    errors = backend.apply_all([
        add_service(WEB, scheduler="nosuch"),
        add_dest(RS1, WEB),
        add_dest(RS2, WEB),
        add_service(other, scheduler="rr"),
        add_dest(RS1, other, weight=-1),
        add_dest(RS2, other),
    ])
    assert [(e.op.kind, e.op.service, e.code) for e in errors] == [
        ("add-service", WEB, 2), ("add-destination", other, 34)]
    # The failed service's own real servers are not tried, and the message says so.
    assert str(errors[0]).endswith(
        "(no ip_vs_nosuch kernel module); 2 further operations on it not attempted")
    assert backend.dump() == {
        other: Service(ServiceSettings(scheduler="rr"), {RS2: DestinationSettings()})}


def test_apply_all_returns_nothing_when_all_succeed() -> None:
    backend = MemoryBackend()
    assert backend.apply_all([add_service(), add_dest()]) == []
    assert len(backend.log) == 2


def test_apply_all_still_fills_a_service_that_already_exists() -> None:
    backend = MemoryBackend({WEB: Service(ServiceSettings(scheduler="rr"))})
    errors = backend.apply_all([add_service(scheduler="rr"), add_dest(RS1)])
    assert [e.code for e in errors] == [17]
    assert str(errors[0]).endswith("it already exists")
    assert backend.dump()[WEB].destinations == {RS1: DestinationSettings()}


def test_persistence_limits_are_the_kernel_s() -> None:
    # Measured in the UML guest (tests/kernel/test_netlink_backend.py).
    backend = MemoryBackend()
    backend.apply(add_service(persistence_timeout=0))
    backend.apply(edit_service(persistence_timeout=60, persistence_netmask=0))
    assert backend.dump()[WEB].settings.persistence_netmask == 0
    for netmask in (0, 129):
        assert refusal(backend, add_service(DNS6, persistence_timeout=60,
                                            persistence_netmask=netmask)).code == 22


def test_a_weight_past_the_kernel_s_signed_int_is_out_of_range() -> None:
    backend = MemoryBackend()
    backend.apply(add_service())
    assert refusal(backend, add_dest(weight=2**31)).code == 34
    backend.apply(add_dest(weight=2**31 - 1))


# ------------------------------------------------------------------ sync daemons
# Measured on Linux 6.1 in tests/kernel/test_sync_daemon.py, which also runs the same
# scenario against both backends.

MASTER, BACKUP = SyncState.MASTER, SyncState.BACKUP
GROUP = ipaddress.ip_address("224.0.0.81")


def sync_backend(**kwargs: object) -> MemoryBackend:
    interfaces = {"eth0": Interface(), "eth1": Interface(mtu=9000),
                  "lo": Interface(mtu=65536), "down0": Interface(up=False)}
    return MemoryBackend(interfaces=interfaces, **kwargs)  # type: ignore[arg-type]


def refused(call, *args: object) -> IpvsError:
    with pytest.raises(IpvsError) as caught:
        call(*args)
    assert caught.value.op is None
    return caught.value


def test_sync_daemons_report_the_kernels_defaults() -> None:
    backend = sync_backend()
    assert backend.sync_daemons() == []
    backend.start_sync_daemon(SyncDaemon(BACKUP, "eth1", sync_id=5))
    backend.start_sync_daemon(SyncDaemon(MASTER, "eth0"))
    assert backend.sync_daemons() == [
        SyncDaemon(MASTER, "eth0", 0, maxlen=1472, port=8848, ttl=1, group=GROUP),
        SyncDaemon(BACKUP, "eth1", 5, maxlen=8972, port=8848, ttl=1, group=GROUP),
    ]


@pytest.mark.parametrize(("state", "interface", "asked", "reported"), [
    (MASTER, "eth0", 100, 100),
    (BACKUP, "eth0", 100, 1024),  # a backup's buffer is at least 1024 bytes
    (MASTER, "eth0", 65535, 65507),
    (BACKUP, "lo", 0, 65507),  # MTU 65536, clamped to 65535 - 28
    (MASTER, "eth1", 0, 1472),  # a master sizes for 1500 whatever the MTU
])
def test_sync_daemon_maxlen_is_clamped_like_the_kernel(
        state: SyncState, interface: str, asked: int, reported: int) -> None:
    backend = sync_backend()
    backend.start_sync_daemon(SyncDaemon(state, interface, maxlen=asked))
    assert backend.sync_daemons()[0].maxlen == reported


def test_sync_daemon_with_every_option_and_an_ipv6_group() -> None:
    backend = sync_backend()
    group6 = ipaddress.ip_address("ff02::8000:81")
    full = SyncDaemon(MASTER, "eth0", sync_id=7, maxlen=1400, port=9000, ttl=3,
                      group=ipaddress.ip_address("239.1.2.3"))
    backend.start_sync_daemon(full)
    backend.start_sync_daemon(SyncDaemon(BACKUP, "eth1", maxlen=65535, group=group6))
    assert backend.sync_daemons() == [
        full, SyncDaemon(BACKUP, "eth1", 0, 65487, 8848, 1, group6)]


def test_sync_daemon_refusals_carry_the_kernels_errno_and_a_clear_message() -> None:
    backend = sync_backend()
    error = refused(backend.start_sync_daemon, SyncDaemon(MASTER, "eth9"))
    assert (error.code, error.message) == (
        errno.ENODEV, "cannot start the master sync daemon on eth9: no such interface")
    backend.start_sync_daemon(SyncDaemon(BACKUP, "eth0"))
    error = refused(backend.start_sync_daemon, SyncDaemon(BACKUP, "eth1"))
    assert (error.code, error.message) == (
        errno.EEXIST, "cannot start the backup sync daemon on eth1: a backup sync daemon "
                      "already runs")
    # The interface is looked at before whether one runs.
    assert refused(backend.start_sync_daemon, SyncDaemon(BACKUP, "eth9")).code == errno.ENODEV
    error = refused(backend.stop_sync_daemon, MASTER)
    assert (error.code, error.message) == (
        errno.ESRCH, "cannot stop the master sync daemon: none runs")
    assert refused(backend.start_sync_daemon,
                   SyncDaemon(MASTER, "down0")).code == errno.ENETUNREACH
    backend.stop_sync_daemon(BACKUP)
    assert backend.sync_daemons() == []
    backend.start_sync_daemon(SyncDaemon(BACKUP, "down0"))  # a backup just listens


@pytest.mark.parametrize(("daemon", "words"), [
    (SyncDaemon(MASTER, "a-very-long-name0"), "interface name longer than 15"),
    (SyncDaemon(MASTER, "eth0", group=ipaddress.ip_address("192.0.2.1")),
     "group 192.0.2.1 is not a multicast address"),
    (SyncDaemon(MASTER, "eth0", port=70000), "port 70000 out of range"),
    (SyncDaemon(MASTER, "eth0", ttl=256), "ttl 256 out of range"),
])
def test_sync_daemon_settings_the_kernel_refuses_as_invalid(daemon: SyncDaemon,
                                                            words: str) -> None:
    error = refused(sync_backend().start_sync_daemon, daemon)
    assert error.code == errno.EINVAL
    assert words in error.message


def test_no_sync_daemon_starts_while_a_real_server_is_of_the_other_family() -> None:
    backend = sync_backend()
    backend.apply(add_service())
    backend.apply(Operation(OperationKind.ADD_DESTINATION, WEB, destination=RS6,
                            destination_settings=DestinationSettings(Forwarding.TUN)))
    error = refused(backend.start_sync_daemon, SyncDaemon(MASTER, "eth0"))
    assert error.code == errno.EINVAL
    assert "other address family" in error.message


def test_any_interface_name_is_taken_when_none_are_given() -> None:
    backend = MemoryBackend()
    backend.start_sync_daemon(SyncDaemon(MASTER, "whatever0"))
    assert refused(backend.start_sync_daemon, SyncDaemon(BACKUP, "")).code == errno.ENODEV


# ------------------------------------------------------------------ timeouts

def test_timeouts_start_at_the_kernels_defaults_and_zero_keeps_a_value() -> None:
    backend = MemoryBackend()
    assert backend.timeouts() == Timeouts(900, 120, 300)
    backend.set_timeouts(Timeouts(tcp=1000))
    assert backend.timeouts() == Timeouts(1000, 120, 300)
    backend.set_timeouts(Timeouts(tcp_fin=5, udp=7))
    assert backend.timeouts() == Timeouts(1000, 5, 7)


def test_a_timeout_above_int_max_over_hz_is_refused_and_nothing_changes() -> None:
    backend = MemoryBackend(hz=100)
    backend.set_timeouts(Timeouts(udp=21474836))
    error = refused(backend.set_timeouts, Timeouts(tcp=5, udp=21474837))
    assert error.code == errno.EINVAL
    assert error.message.startswith("cannot set the connection timeouts (tcp 5, udp 21474837)")
    assert backend.timeouts() == Timeouts(900, 120, 21474836)


def test_the_operation_log_is_bounded() -> None:
    from director.ipvs import memory

    backend = MemoryBackend()
    for _ in range(memory.LOG_LIMIT + 10):
        backend.apply(add_service())
        backend.apply(Operation(OperationKind.DELETE_SERVICE, WEB))
    assert memory.LOG_LIMIT <= len(backend.log) <= 2 * memory.LOG_LIMIT
    assert backend.log[-1].kind is OperationKind.DELETE_SERVICE
