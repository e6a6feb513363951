"""keepalived's lvs_sync_daemon and lvs_timeouts semantics as pure policy
(director/sync_policy.py), applied through the memory backend."""

from __future__ import annotations

import errno
import ipaddress

import pytest

from director.config.model import LvsSyncDaemon, LvsTimeouts
from director.ipvs.memory import Interface, MemoryBackend
from director.ipvs.table import SyncDaemon, SyncState, Timeouts
from director.sync_policy import (
    SyncChange,
    apply_sync_changes,
    desired_sync_daemons,
    desired_timeouts,
    same_daemon,
    sync_daemon_changes,
    whole_seconds,
)

MASTER, BACKUP = SyncState.MASTER, SyncState.BACKUP
GROUP = ipaddress.ip_address("224.0.0.81")
FOLLOWING = LvsSyncDaemon(interface="eth0", vrrp_instance="VI_1")


def daemon(state: SyncState, sync_id: int = 51, **fields: object) -> SyncDaemon:
    return SyncDaemon(state, "eth0", sync_id, **fields)  # type: ignore[arg-type]


# ------------------------------------------------------------------ which daemons

@pytest.mark.parametrize(("vrrp_state", "expected"), [
    (None, {BACKUP}),  # start-up, before the instance has a state
    ("INIT", {BACKUP}),
    ("BACKUP", {BACKUP}),
    ("FAULT", {BACKUP}),  # leaving MASTER for FAULT switches to a backup daemon
    # keepalived keeps only the master; we keep the backup too, so that the peer's last
    # connections, sent after a handover, still land here
    ("MASTER", {MASTER, BACKUP}),
    ("master", {MASTER, BACKUP}),
    ("STOP", set()),
])
def test_the_daemon_follows_the_vrrp_instance(vrrp_state: str | None,
                                              expected: set[SyncState]) -> None:
    daemons = desired_sync_daemons(FOLLOWING, vrrp_state, vrid=51)
    assert {d.state for d in daemons} == expected
    assert all(d == daemon(d.state) for d in daemons)


def test_the_sync_id_is_the_vrid_unless_given() -> None:
    assert {d.sync_id for d in desired_sync_daemons(FOLLOWING, "MASTER", vrid=51)} == {51}
    given = LvsSyncDaemon(interface="eth0", vrrp_instance="VI_1", sync_id=0)
    assert {d.sync_id for d in desired_sync_daemons(given, "MASTER", vrid=51)} == {0}


def test_without_an_instance_master_and_backup_run_all_along_with_id_0() -> None:
    setting = LvsSyncDaemon(interface="eth1")
    for state in (None, "MASTER", "BACKUP"):
        assert desired_sync_daemons(setting, state, vrid=9) == {
            SyncDaemon(MASTER, "eth1"), SyncDaemon(BACKUP, "eth1")}


def test_options_pass_through_and_the_default_port_is_left_to_the_kernel() -> None:
    group = ipaddress.ip_address("239.1.2.3")
    setting = LvsSyncDaemon(interface="eth0", vrrp_instance="VI_1", sync_id=3, maxlen=1400,
                            port=9000, ttl=4, group=group)
    assert desired_sync_daemons(setting, "BACKUP") == {
        SyncDaemon(BACKUP, "eth0", 3, maxlen=1400, port=9000, ttl=4, group=group)}
    assert desired_sync_daemons(setting, "MASTER") == {
        SyncDaemon(state, "eth0", 3, maxlen=1400, port=9000, ttl=4, group=group)
        for state in (MASTER, BACKUP)}
    (plain,) = desired_sync_daemons(FOLLOWING, "BACKUP", vrid=1)
    assert (plain.port, plain.ttl, plain.maxlen, plain.group) == (0, 0, 0, None)


def test_no_setting_no_daemons_and_unknown_states_are_refused() -> None:
    assert desired_sync_daemons(None, "MASTER", vrid=1) == frozenset()
    with pytest.raises(ValueError, match="unknown VRRP state"):
        desired_sync_daemons(FOLLOWING, "LEADER", vrid=1)


# ------------------------------------------------------------------ changes

def test_becoming_master_starts_a_master_beside_the_running_backup() -> None:
    running = [daemon(BACKUP, maxlen=1472, port=8848, ttl=1, group=GROUP)]
    changes = sync_daemon_changes(desired_sync_daemons(FOLLOWING, "MASTER", vrid=51), running)
    assert changes == [SyncChange.start(daemon(MASTER))]
    assert [str(c) for c in changes] == ["start the master sync daemon on eth0"]
    # and leaving MASTER stops only the master
    running = [daemon(MASTER, maxlen=1472, port=8848, ttl=1, group=GROUP), running[0]]
    changes = sync_daemon_changes(desired_sync_daemons(FOLLOWING, "BACKUP", vrid=51), running)
    assert changes == [SyncChange.stopping(MASTER)]


def test_a_running_daemon_as_the_kernel_reports_it_is_left_alone() -> None:
    # The kernel spells out its defaults; a default maxlen depends on the MTU.
    running = [daemon(MASTER, maxlen=1472, port=8848, ttl=1, group=GROUP)]
    assert sync_daemon_changes({daemon(MASTER)}, running) == []
    backup = [daemon(BACKUP, maxlen=8972, port=8848, ttl=1, group=GROUP)]
    assert sync_daemon_changes({daemon(BACKUP)}, backup) == []
    # An explicit maxlen is compared as the kernel clamps it (backup: at least 1024).
    clamped = [daemon(BACKUP, maxlen=1024, port=8848, ttl=1, group=GROUP)]
    assert sync_daemon_changes({daemon(BACKUP, maxlen=100)}, clamped) == []
    assert same_daemon(daemon(MASTER, maxlen=100),
                       daemon(MASTER, maxlen=100, port=8848, ttl=1, group=GROUP))


def test_a_daemon_whose_settings_changed_is_stopped_then_started() -> None:
    running = [daemon(MASTER, maxlen=1472, port=8848, ttl=1, group=GROUP),
               daemon(BACKUP, maxlen=1472, port=8848, ttl=1, group=GROUP)]
    wanted = {daemon(MASTER, sync_id=9), daemon(BACKUP, port=9000)}
    assert sync_daemon_changes(wanted, running) == [
        SyncChange.stopping(MASTER), SyncChange.stopping(BACKUP),
        SyncChange.start(daemon(MASTER, sync_id=9)), SyncChange.start(daemon(BACKUP, port=9000))]


def test_stopping_everything_at_shutdown() -> None:
    running = [daemon(MASTER, maxlen=1472, port=8848, ttl=1, group=GROUP)]
    assert sync_daemon_changes(desired_sync_daemons(FOLLOWING, "STOP", vrid=51), running) == [
        SyncChange.stopping(MASTER)]


def test_a_sync_change_is_a_start_or_a_stop() -> None:
    with pytest.raises(ValueError):
        SyncChange()
    with pytest.raises(ValueError):
        SyncChange(daemon=daemon(MASTER), stop=MASTER)


def test_applying_changes_through_a_backend_follows_vrrp_transitions() -> None:
    backend = MemoryBackend(interfaces={"eth0": Interface()})
    for vrrp_state, expected in ((None, [BACKUP]), ("MASTER", [MASTER, BACKUP]),
                                 ("FAULT", [BACKUP]), ("BACKUP", [BACKUP]),
                                 ("MASTER", [MASTER, BACKUP]), ("STOP", [])):
        wanted = desired_sync_daemons(FOLLOWING, vrrp_state, vrid=51)
        changes = sync_daemon_changes(wanted, backend.sync_daemons())
        assert apply_sync_changes(backend, changes) == []
        assert [d.state for d in backend.sync_daemons()] == expected
        assert sync_daemon_changes(wanted, backend.sync_daemons()) == []


def test_apply_collects_refusals_and_goes_on() -> None:
    backend = MemoryBackend(interfaces={"eth0": Interface()})
    changes = [SyncChange.stopping(MASTER), SyncChange.start(SyncDaemon(BACKUP, "eth9")),
               SyncChange.start(daemon(MASTER))]
    failures = apply_sync_changes(backend, changes)
    assert [f.code for f in failures] == [errno.ESRCH, errno.ENODEV]
    assert [d.state for d in backend.sync_daemons()] == [MASTER]


# ------------------------------------------------------------------ timeouts

def test_desired_timeouts_whole_seconds_and_zero_for_those_not_given() -> None:
    assert desired_timeouts(None) is None
    assert desired_timeouts(LvsTimeouts()) is None
    assert desired_timeouts(LvsTimeouts(tcp=7200.0, udp=60.0)) == Timeouts(7200, 0, 60)
    assert desired_timeouts(LvsTimeouts(tcpfin=0.2)) == Timeouts(0, 1, 0)


@pytest.mark.parametrize(("seconds", "whole"), [
    (None, 0), (0, 0), (1.0, 1), (1.2, 2), (0.001, 1), (900, 900)])
def test_whole_seconds_rounds_up_so_a_timeout_never_becomes_leave_it(
        seconds: float | None, whole: int) -> None:
    assert whole_seconds(seconds) == whole
