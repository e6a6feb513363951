"""The VRRP state machine (`vrrp.machine`): every row of its transition table, the timer
arithmetic, and elections between machines wired by a simulated network on a fake clock."""

from __future__ import annotations

import heapq
import itertools
import re
from collections.abc import Callable
from ipaddress import ip_address

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vrrp.machine as machine_module
from vrrp.machine import (
    TRANSITIONS,
    AddAddresses,
    AdvertDiscarded,
    AdvertReceived,
    DiscardReason,
    FaultOff,
    FaultOn,
    Force,
    GarpKind,
    LowerPriorityReceived,
    Machine,
    PriorityChanged,
    Reconfigure,
    RemoveAddresses,
    SendAdvert,
    SendGratuitous,
    Shutdown,
    Start,
    State,
    StateChanged,
    Timeout,
    WantMaster,
    master_down_interval,
    render_table,
    skew_time,
)
from vrrp.spec import InstanceState, VrrpInstance

A = ip_address("192.0.2.1")
B = ip_address("192.0.2.2")
C = ip_address("192.0.2.3")
A6 = ip_address("2001:db8::1")
B6 = ip_address("2001:db8::2")


def inst(**kw) -> VrrpInstance:
    kw.setdefault("name", "VI_1")
    kw.setdefault("virtual_router_id", 51)
    return VrrpInstance(**kw)


def kinds(actions) -> list[str]:
    out = []
    for action in actions:
        name = type(action).__name__
        if isinstance(action, SendAdvert) and action.priority == 0:
            name += "(0)"
        out.append(name)
    return out


def advert(source=B, priority=100, interval=1.0, match=True) -> AdvertReceived:
    return AdvertReceived(source, priority, interval, match)


def backup(now: float = 0.0, address=A, **kw) -> Machine:
    m = Machine(inst(**kw), address)
    m.handle(Start(), now)
    assert m.state is State.BACKUP
    return m


def master(now: float = 0.0, address=A, **kw) -> Machine:
    """A MASTER that took over at ``now`` (master-down timer with no advert heard)."""
    m = backup(now - 1000.0, address, **kw)
    m.handle(Timeout(), now)
    assert m.state is State.MASTER
    return m


def handing_over(now: float = 0.0, **kw) -> Machine:
    m = master(now, **kw)
    assert kinds(m.handle(Shutdown(graceful=True), now)) == ["SendAdvert(0)"]
    assert m.handing_over
    return m


def faulted(now: float = 0.0, **kw) -> Machine:
    m = backup(now, **kw)
    m.handle(FaultOn("eth0 down"), now)
    assert m.state is State.FAULT
    return m


# ----------------------------------------------------------------- the table, row by row

Scenario = Callable[[], tuple[Machine, State, list]]


def _init(**kw) -> Machine:
    return Machine(inst(**kw), A)


def _run(m: Machine, event, now: float = 0.7) -> tuple[Machine, State, list]:
    before = m.state
    return m, before, m.handle(event, now)


def _then(m: Machine, first, event, now: float = 0.7,
          first_at: float = 0.5) -> tuple[Machine, State, list]:
    m.handle(first, first_at)
    return _run(m, event, now)


SCENARIOS: dict[str, Scenario] = {
    "init-start-owner": lambda: _run(_init(priority=255, state=InstanceState.MASTER), Start()),
    "init-start-fault": lambda: _then(_init(), FaultOn("x"), Start()),
    "init-start-master": lambda: _run(_init(state=InstanceState.MASTER), Start()),
    "init-start-backup": lambda: _run(_init(), Start()),
    "init-advert": lambda: _run(_init(), advert()),
    "init-priority": lambda: _run(_init(), PriorityChanged(80)),
    "init-fault": lambda: _run(_init(), FaultOn("x")),
    "init-shutdown": lambda: _run(_init(), Shutdown()),
    "backup-advert-bad": lambda: _run(backup(), advert(match=False)),
    "backup-advert-zero": lambda: _run(backup(), advert(priority=0)),
    "backup-advert-accept": lambda: _run(backup(), advert(priority=100)),
    "backup-advert-lower-delay": lambda: _run(backup(preempt_delay=5.0), advert(priority=50)),
    "backup-advert-lower": lambda: _run(backup(), advert(priority=50)),
    "backup-timeout-down": lambda: _run(backup(), Timeout(), 10.0),
    "backup-timeout-preempt": lambda: _then(backup(preempt_delay=5.0), advert(priority=50),
                                            Timeout(), 6.0),
    "backup-priority-takeover": lambda: _then(backup(priority=90), advert(priority=100),
                                              PriorityChanged(110)),
    "backup-priority-delay": lambda: _then(backup(priority=90, preempt_delay=5.0),
                                           advert(priority=100), PriorityChanged(110)),
    "backup-priority": lambda: _then(backup(priority=90), advert(priority=100),
                                     PriorityChanged(95)),
    "backup-fault": lambda: _run(backup(), FaultOn("eth0 down")),
    "backup-shutdown": lambda: _run(backup(), Shutdown(graceful=True)),
    "master-advert-bad": lambda: _run(master(), advert(priority=200, interval=2.0)),
    "master-advert-zero": lambda: _run(master(), advert(priority=0)),
    "master-advert-higher": lambda: _run(master(higher_prio_send_advert=True),
                                         advert(priority=150)),
    "master-advert-owner-conflict": lambda: _owner_conflict(),
    "master-advert-lower": lambda: _run(master(), advert(priority=50)),
    "master-timeout-advert": lambda: _run(master(), Timeout(), 1.0),
    "master-priority": lambda: _run(master(), PriorityChanged(120), 0.3),
    "master-fault": lambda: _run(master(), FaultOn("eth0 down")),
    "master-shutdown": lambda: _run(master(), Shutdown()),
    "master-shutdown-graceful": lambda: _run(master(), Shutdown(graceful=True)),
    "handover-advert-new-master": lambda: _run(handing_over(), advert(priority=90), 0.7),
    "handover-advert-zero": lambda: _run(handing_over(), advert(priority=0), 0.3),
    "handover-timeout-advert": lambda: _run(handing_over(), Timeout(), 1.0),
    "handover-timeout-end": lambda: _then(handing_over(advert_int=10.0), Timeout(), Timeout(),
                                          31.0, first_at=30.0),
    "handover-shutdown": lambda: _run(handing_over(), Shutdown(graceful=True), 0.1),
    "handover-fault": lambda: _run(handing_over(), FaultOn("eth0 down"), 0.1),
    "handover-priority": lambda: _run(handing_over(), PriorityChanged(10), 0.1),
    "fault-fault-off-owner": lambda: _run(_faulted_owner(), FaultOff()),
    "fault-fault-off": lambda: _run(faulted(), FaultOff("eth0 up")),
    "fault-advert": lambda: _run(faulted(), advert()),
    "fault-priority": lambda: _run(faulted(), PriorityChanged(20)),
    "fault-shutdown": lambda: _run(faulted(), Shutdown()),
    "stop-any": lambda: _then(backup(), Shutdown(), advert(priority=0)),
    "any-start": lambda: _run(master(), Start(), 0.5),
    "any-fault-repeat": lambda: _run(backup(), FaultOff()),
    "sync-init-start-owner": lambda: _run(_synced(priority=255, state=InstanceState.MASTER),
                                          Start()),
    "sync-backup-take-over": lambda: _run(_synced_backup(), Timeout(), 10.0),
    "sync-fault-off-owner": lambda: _run(_synced_faulted_owner(), FaultOff()),
    "force-backup-master": lambda: _run(backup(), Force(State.MASTER, "VI_2 is master")),
    "force-master-backup": lambda: _run(master(), Force(State.BACKUP, "VI_2 is backup")),
    "force-ignored": lambda: _run(master(), Force(State.MASTER)),
    "master-reconfigure": lambda: _run(master(), Reconfigure(inst(priority=110), 110), 0.3),
    "backup-reconfigure-takeover": lambda: _then(backup(priority=90), advert(priority=100),
                                                 Reconfigure(inst(priority=110), 110)),
    "reconfigure-quiet": lambda: _run(backup(), Reconfigure(inst(advert_int=2.0), 100)),
}


def _synced(**kw) -> Machine:
    return Machine(inst(**kw), A, synced=True)


def _synced_backup(now: float = 0.0, **kw) -> Machine:
    m = _synced(**kw)
    m.handle(Start(), now)
    assert m.state is State.BACKUP
    return m


def _synced_faulted_owner() -> Machine:
    m = _synced(priority=255, state=InstanceState.MASTER)
    m.handle(Start(), 0.0)
    m.handle(FaultOn("eth0 down"), 0.5)
    assert m.state is State.FAULT
    return m


def _owner_conflict() -> tuple[Machine, State, list]:
    m = Machine(inst(priority=255, state=InstanceState.MASTER), A)
    m.handle(Start(), 0.0)
    return _run(m, advert(source=B, priority=255), 0.5)


def _faulted_owner() -> Machine:
    m = Machine(inst(priority=255, state=InstanceState.MASTER), A)
    m.handle(Start(), 0.0)
    m.handle(FaultOn("eth0 down"), 0.5)
    assert m.state is State.FAULT
    return m


def test_every_row_has_a_scenario():
    assert set(SCENARIOS) == {row.name for row in TRANSITIONS}
    assert len({row.name for row in TRANSITIONS}) == len(TRANSITIONS)


@pytest.mark.parametrize("row", TRANSITIONS, ids=lambda row: row.name)
def test_row(row):
    m, before, actions = SCENARIOS[row.name]()
    assert kinds(actions) == [name.strip("[]") for name in row.actions]
    if row.next == "unchanged":
        assert m.state is before
    elif row.next == "HANDOVER":
        assert m.state is State.MASTER and m.handing_over
    else:
        assert m.state is State(row.next)
        assert not m.handing_over
    if row.state == "HANDOVER":
        assert before is State.MASTER
    elif row.state != "STOP":  # the STOP scenario shuts down first
        assert before.value in row.state.split("/")
    changes = [a for a in actions if isinstance(a, StateChanged)]
    for change in changes:
        assert change.old is before and change.new is m.state and change.reason


def test_the_docstring_shows_the_table_and_names_force():
    assert "Force(state" in machine_module.__doc__
    assert "WantMaster(reason)" in machine_module.__doc__


def test_the_docstring_shows_the_table():
    def squash(text: str) -> str:
        return re.sub(r"\s+", " ", text)

    assert squash(render_table()) in squash(machine_module.__doc__)


# ----------------------------------------------------------------- rows in detail


def test_owner_starts_master_at_once_in_keepalived_order():
    m = Machine(inst(priority=255, state=InstanceState.MASTER), A)
    actions = m.handle(Start(), 5.0)
    assert actions == [SendAdvert(255), AddAddresses(), SendGratuitous(GarpKind.MASTER),
                       StateChanged(State.INIT, State.MASTER, actions[3].reason)]
    assert m.next_deadline == 6.0
    assert m.counters.became_master == 1
    assert m.master_address == A and m.master_priority == 255


def test_start_backup_waits_the_master_down_interval():
    m = backup(now=2.0, priority=100)
    assert m.next_deadline == pytest.approx(2.0 + 3 + 156 / 256)
    assert m.handle(Timeout(), 5.6) == []
    assert kinds(m.handle(Timeout(), 5.61)) == ["SendAdvert", "AddAddresses",
                                                 "SendGratuitous", "StateChanged"]


def test_state_master_listens_one_advert_interval():
    m = Machine(inst(state=InstanceState.MASTER, priority=100), A)
    m.handle(Start(), 0.0)
    assert m.state is State.BACKUP
    assert m.next_deadline == pytest.approx(1 + 156 / 256)
    # a live master is heard within that time: we stay backup
    m.handle(advert(priority=150), 0.9)
    assert m.next_deadline == pytest.approx(0.9 + 3 + 156 / 256)


def test_state_master_with_nopreempt_waits_the_full_interval():
    m = Machine(inst(state=InstanceState.MASTER, priority=100, nopreempt=True), A)
    m.handle(Start(), 0.0)
    assert m.next_deadline == pytest.approx(3 + 156 / 256)


def test_start_when_a_fault_is_already_known():
    m = Machine(inst(), A)
    m.handle(FaultOn("eth0 down"), 0.0)
    assert m.state is State.INIT and m.fault
    actions = m.handle(Start(), 0.0)
    assert actions == [StateChanged(State.INIT, State.FAULT, "fault at start: eth0 down")]
    assert m.next_deadline is None
    m.handle(FaultOff(), 1.0)
    assert m.state is State.BACKUP
    assert m.next_deadline == pytest.approx(1.0 + 3 + 156 / 256)


def test_priority_before_start_is_used():
    m = Machine(inst(priority=100), A)
    m.handle(PriorityChanged(200), 0.0)
    m.handle(Start(), 0.0)
    assert m.priority == 200
    assert m.next_deadline == pytest.approx(3 + 56 / 256)


@pytest.mark.parametrize(("bad", "reason"), [
    (advert(match=False), DiscardReason.ADDRESS_LIST),
    (advert(interval=2.0), DiscardReason.INTERVAL),
    (advert(source=A), DiscardReason.OWN_ADDRESS),
    (advert(priority=256), DiscardReason.INVALID),
    (advert(priority=-1), DiscardReason.INVALID),
])
def test_discarded_adverts_do_not_touch_the_timers(bad, reason):
    m = backup()
    deadline = m.next_deadline
    assert m.handle(bad, 1.0) == [AdvertDiscarded(bad.source, bad.priority, reason)]
    assert m.next_deadline == deadline and m.master_address is None


def test_v3_discards_a_zero_interval_but_accepts_another_interval():
    m = backup(version=3, advert_int=1.0)
    assert kinds(m.handle(advert(interval=0.0), 1.0)) == ["AdvertDiscarded"]
    assert m.handle(advert(interval=0.5), 1.0) == []
    assert m.master_adver_interval == 0.5


def test_backup_priority_zero_sets_the_timer_to_skew():
    m = backup(priority=90)
    m.handle(advert(priority=100), 0.5)
    assert m.handle(advert(priority=0), 1.0) == []
    assert m.next_deadline == pytest.approx(1.0 + 166 / 256)
    assert m.counters.priority_zero_received == 1
    assert m.master_priority is None


def test_backup_accepts_equal_priority_whatever_the_address():
    m = backup(address=B, priority=100)
    assert m.handle(advert(source=A, priority=100), 1.0) == []
    assert m.state is State.BACKUP and m.master_address == A


def test_nopreempt_backup_accepts_lower_priority():
    m = backup(priority=200, nopreempt=True)
    assert m.handle(advert(priority=50), 1.0) == []
    assert m.state is State.BACKUP
    assert m.next_deadline == pytest.approx(1.0 + 3 + 56 / 256)
    assert m.handle(PriorityChanged(250), 1.5) == []
    assert m.state is State.BACKUP


def test_preempt_delay_counts_from_the_first_lower_advert():
    m = backup(priority=150, preempt_delay=5.0)
    for t in (1.0, 2.0, 3.0, 4.0, 5.0):
        m.handle(advert(priority=100), t)
    assert m.timers["preempt"] == 6.0  # not restarted
    assert m.handle(Timeout(), 5.99) == []
    actions = m.handle(Timeout(), 6.0)
    assert kinds(actions)[0] == "SendAdvert" and m.state is State.MASTER


def test_preempt_delay_stops_when_the_master_is_higher_again():
    m = backup(priority=150, preempt_delay=5.0)
    m.handle(advert(priority=100), 1.0)
    m.handle(advert(priority=200), 2.0)
    assert "preempt" not in m.timers
    m.handle(advert(priority=100), 3.0)
    assert m.timers["preempt"] == 8.0


def test_preempt_delay_stops_when_our_priority_falls():
    m = backup(priority=150, preempt_delay=5.0)
    m.handle(advert(priority=100), 1.0)
    m.handle(PriorityChanged(90), 2.0)
    assert "preempt" not in m.timers
    m.handle(PriorityChanged(150), 3.0)
    assert m.timers["preempt"] == 8.0


def test_master_higher_priority_steps_down_without_priority_zero():
    m = master(priority=100)
    actions = m.handle(advert(priority=150), 0.5)
    assert kinds(actions) == ["RemoveAddresses", "StateChanged"]
    assert m.counters.priority_zero_sent == 0 and m.counters.released_master == 1
    assert m.master_address == B and m.master_priority == 150
    assert m.next_deadline == pytest.approx(0.5 + 3 + 156 / 256)


def test_master_equal_priority_decided_by_address_as_numbers():
    low = master(address=ip_address("192.0.2.9"))
    assert kinds(low.handle(advert(source=ip_address("192.0.2.10")), 0.5))[-1] == "StateChanged"
    high = master(address=ip_address("192.0.2.10"))
    assert kinds(high.handle(advert(source=ip_address("192.0.2.9")), 0.5)) == [
        "SendAdvert", "SendGratuitous", "LowerPriorityReceived"]
    low6 = master(address=ip_address("2001:db8::9"), version=3)
    assert low6.handle(advert(source=ip_address("2001:db8::10")), 0.5)[-1].new is State.BACKUP


def test_master_lower_priority_options():
    m = master(lower_prio_no_advert=True, garp_lower_prio_repeat=0)
    assert m.handle(advert(priority=50), 0.5) == [LowerPriorityReceived(B, 50)]
    m = master()
    assert m.handle(advert(priority=50), 0.5) == [
        SendAdvert(100), SendGratuitous(GarpKind.LOWER_PRIORITY), LowerPriorityReceived(B, 50)]
    assert m.next_deadline == 1.0  # the regular advert timer is kept


def test_master_priority_zero_restarts_the_advert_timer():
    m = master()
    assert m.handle(advert(priority=0), 0.4) == [SendAdvert(100)]
    assert m.next_deadline == pytest.approx(1.4)
    assert m.counters.priority_zero_received == 1


def test_master_v3_learns_the_new_masters_interval():
    m = master(version=3, advert_int=1.0, priority=100)
    m.handle(advert(priority=200, interval=0.25), 0.5)
    assert m.master_adver_interval == 0.25
    assert m.next_deadline == pytest.approx(0.5 + 0.75 + 156 * 0.25 / 256)


def test_owner_conflict_lowers_our_priority():
    _m, _before, actions = _owner_conflict()
    assert _m.priority == 254 and _m.base_priority == 254
    assert "254" in actions[-1].reason


def test_master_priority_change_is_advertised_at_once():
    m = master()
    assert m.handle(PriorityChanged(100), 0.3) == []  # no change: nothing
    assert m.handle(PriorityChanged(300), 0.3) == [SendAdvert(254)]  # clamped
    assert m.next_deadline == pytest.approx(1.3)
    assert m.handle(PriorityChanged(-5), 0.4) == [SendAdvert(1)]
    assert m.master_priority == 1


def test_owner_ignores_priority_changes():
    m = Machine(inst(priority=255, state=InstanceState.MASTER), A)
    m.handle(Start(), 0.0)
    assert m.handle(PriorityChanged(100), 0.5) == []
    assert m.priority == 255


def test_master_adverts_stay_on_schedule_and_skip_when_late():
    m = master()
    sent = []
    for t in (1.0, 2.0, 3.0, 3.5):
        sent += m.handle(Timeout(), t)
    assert sent == [SendAdvert(100)] * 3 and m.next_deadline == 4.0
    assert m.handle(Timeout(), 9.7) == [SendAdvert(100)]  # one advert, not six
    assert m.next_deadline == pytest.approx(10.7)


def test_master_fault_sends_priority_zero_and_leaves():
    m = master()
    actions = m.handle(FaultOn("eth0 down"), 0.5)
    assert actions[:2] == [SendAdvert(0), RemoveAddresses()]
    assert actions[2].reason == "fault: eth0 down"
    assert m.next_deadline is None and m.counters.priority_zero_sent == 1
    assert m.handle(FaultOn("again"), 0.6) == []
    assert m.handle(Timeout(), 100.0) == []


def test_fault_off_resets_the_learned_interval():
    m = backup(version=3, advert_int=1.0, priority=100)
    m.handle(advert(interval=0.2, priority=200), 0.5)
    m.handle(FaultOn(), 1.0)
    m.handle(FaultOff(), 2.0)
    assert m.master_adver_interval == 1.0
    assert m.next_deadline == pytest.approx(2.0 + 3 + 156 / 256)


def test_handover_repeats_priority_zero_then_gives_up():
    m = handing_over(advert_int=1.0, priority=100)
    bound = 3 + 255 / 256
    assert m.timers["handover"] == pytest.approx(bound)
    sent = []
    for t in (1.0, 2.0, 3.0):
        sent += m.handle(Timeout(), t)
    assert sent == [SendAdvert(0)] * 3
    assert m.counters.priority_zero_sent == 4
    assert m.handle(PriorityChanged(200), 3.1) == []  # no advert while handing over
    actions = m.handle(Timeout(), bound)
    assert kinds(actions) == ["RemoveAddresses", "StateChanged"]
    assert m.state is State.STOP and m.next_deadline is None


def test_handover_ends_on_the_new_masters_advert():
    m = handing_over()
    assert m.handle(advert(priority=0), 0.1) == []
    assert kinds(m.handle(advert(priority=90, match=False), 0.2)) == ["AdvertDiscarded"]
    actions = m.handle(advert(priority=90), 0.65)
    assert actions[0] == RemoveAddresses()
    assert actions[1] == StateChanged(State.MASTER, State.STOP,
                                      "handed over to 192.0.2.2 (priority 90)")
    assert m.counters.released_master == 1


def test_stopped_machine_ignores_everything():
    m = master()
    m.handle(Shutdown(), 0.0)
    for event in (Start(), Timeout(), advert(), PriorityChanged(1), FaultOn(), FaultOff(),
                  Shutdown(graceful=True)):
        assert m.handle(event, 5.0) == []
    assert m.state is State.STOP and m.next_deadline is None


def test_time_going_backwards_counts_as_the_last_time():
    m = backup()
    m.handle(advert(), 10.0)
    m.handle(Timeout(), 3.0)
    assert m.state is State.BACKUP
    assert m.next_deadline == pytest.approx(10.0 + 3 + 156 / 256)


def test_unknown_event_is_a_type_error():
    with pytest.raises(TypeError):
        backup().handle(object(), 1.0)  # type: ignore[arg-type]


# ----------------------------------------------------------------- timer arithmetic


def test_v2_skew_and_master_down():
    assert skew_time(2, 100, 1.0) == 156 / 256
    assert skew_time(2, 100, 3.0) == 156 / 256  # v2 skew ignores the interval
    assert master_down_interval(2, 100, 1.0) == 3 + 156 / 256
    assert master_down_interval(2, 90, 1.0) == pytest.approx(3.6484375)
    assert master_down_interval(2, 254, 2.0) == 6 + 2 / 256
    assert master_down_interval(2, 100, 1.0, down_timer_adverts=5) == 5 + 156 / 256


def test_v3_skew_and_master_down():
    assert skew_time(3, 100, 0.1) == pytest.approx(156 * 0.1 / 256)
    assert master_down_interval(3, 90, 0.1) == pytest.approx(0.3 + 166 * 0.1 / 256)
    assert master_down_interval(3, 90, 0.05) == pytest.approx(0.15 + 166 * 0.05 / 256)


def test_v3_backup_uses_the_learned_interval():
    m = backup(version=3, advert_int=1.0, priority=90)
    m.handle(advert(priority=100, interval=0.1), 2.0)
    assert m.master_adver_interval == 0.1
    assert m.master_down_interval == pytest.approx(0.3 + 166 * 0.1 / 256)
    assert m.next_deadline == pytest.approx(2.0 + 0.3 + 166 * 0.1 / 256)
    m.handle(advert(priority=0, interval=0.1), 2.05)
    assert m.next_deadline == pytest.approx(2.05 + 166 * 0.1 / 256)


def test_v2_backup_keeps_its_own_interval():
    m = backup(version=2, advert_int=2.0, priority=90)
    m.handle(advert(priority=100, interval=2.0), 1.0)
    assert m.master_adver_interval == 2.0
    assert m.next_deadline == pytest.approx(1.0 + 6 + 166 / 256)


def test_down_timer_adverts_is_honoured():
    m = backup(down_timer_adverts=5, priority=100)
    assert m.next_deadline == pytest.approx(5 + 156 / 256)


# ----------------------------------------------------------------- a simulated network

LATENCY = 0.001


class Network:
    """Machines on one segment: each SendAdvert reaches every other live machine after
    LATENCY, in order. Records who holds the addresses over time."""

    def __init__(self, machines: dict, latency: float = LATENCY) -> None:
        self.machines = machines
        self.latency = latency
        self.now = 0.0
        self.queue: list = []
        self.seq = itertools.count()
        self.dead: set = set()
        self.holders: set = set()
        self.history: list[tuple[float, frozenset]] = [(0.0, frozenset())]
        self.sent: list[tuple[float, object, int]] = []
        self.changes: list[tuple[float, object, StateChanged]] = []

    def at(self, when: float, address, event) -> None:
        heapq.heappush(self.queue, (when, next(self.seq), address, event))

    def start_all(self, when: float = 0.0) -> None:
        for address in self.machines:
            self.at(when, address, Start())

    def kill(self, address) -> None:
        """kill -9: silent at once (its addresses count as gone)."""
        self.dead.add(address)
        self._hold(address, False)

    def _hold(self, address, holds: bool) -> None:
        before = set(self.holders)
        (self.holders.add if holds else self.holders.discard)(address)
        if self.holders != before:
            self.history.append((self.now, frozenset(self.holders)))

    def _apply(self, address, actions) -> None:
        sender = self.machines[address]
        for action in actions:
            if isinstance(action, SendAdvert):
                self.sent.append((self.now, address, action.priority))
                for other in self.machines:
                    if other != address and other not in self.dead:
                        self.at(self.now + self.latency, other, AdvertReceived(
                            address, action.priority, sender.instance.advert_int, True))
            elif isinstance(action, AddAddresses):
                self._hold(address, True)
            elif isinstance(action, RemoveAddresses):
                self._hold(address, False)
            elif isinstance(action, StateChanged):
                self.changes.append((self.now, address, action))

    def run_until(self, end: float) -> None:
        while True:
            deadlines = [(m.next_deadline, address) for address, m in self.machines.items()
                         if address not in self.dead and m.next_deadline is not None]
            timer = min(deadlines, key=lambda item: item[0]) if deadlines else None
            packet = self.queue[0] if self.queue else None
            if packet is not None and (timer is None or packet[0] <= timer[0]):
                if packet[0] > end:
                    break
                heapq.heappop(self.queue)
                self.now = max(self.now, packet[0])
                if packet[2] not in self.dead:
                    self._apply(packet[2], self.machines[packet[2]].handle(packet[3],
                                                                           self.now))
            elif timer is not None:
                if timer[0] > end:
                    break
                self.now = max(self.now, timer[0])
                self._apply(timer[1], self.machines[timer[1]].handle(Timeout(), self.now))
            else:
                break
        self.now = max(self.now, end)

    def masters(self) -> list:
        return [a for a, m in self.machines.items()
                if a not in self.dead and m.state is State.MASTER]

    def became_master_at(self, address, after: float = 0.0) -> float:
        return next(t for t, a, c in self.changes
                    if a == address and c.new is State.MASTER and t >= after)

    def longest(self, predicate) -> float:
        """The longest stretch of time during which predicate(holders) held."""
        longest, since = 0.0, None
        for (t, holders) in [*self.history, (self.now, None)]:
            if since is not None:
                longest = max(longest, t - since)
                since = None
            if holders is not None and predicate(holders):
                since = t
        return longest


def pair(a_kw: dict, b_kw: dict, addresses=(A, B)) -> Network:
    return Network({addresses[0]: Machine(inst(**a_kw), addresses[0]),
                    addresses[1]: Machine(inst(**b_kw), addresses[1])})


def test_election_highest_priority_wins():
    net = Network({A: Machine(inst(priority=80), A), B: Machine(inst(priority=100), B),
                   C: Machine(inst(priority=90), C)})
    net.start_all()
    net.run_until(30.0)
    assert net.masters() == [B]
    assert net.became_master_at(B) == pytest.approx(3 + 156 / 256)
    assert net.longest(lambda h: len(h) > 1) == 0.0


@pytest.mark.parametrize("addresses", [(A, B), (A6, B6)], ids=["ipv4", "ipv6"])
def test_election_equal_priority_higher_address_wins(addresses):
    version = 3 if addresses[0].version == 6 else 2
    net = pair({"version": version}, {"version": version}, addresses)
    net.start_all()
    net.run_until(20.0)
    assert net.masters() == [addresses[1]]
    assert net.longest(lambda h: len(h) > 1) <= 2 * LATENCY


def steady(a_kw=None, b_kw=None, until: float = 10.0) -> Network:
    """A master at 100 (A), a backup at 90 (B), settled."""
    net = pair({"priority": 100, **(a_kw or {})}, {"priority": 90, **(b_kw or {})})
    net.start_all()
    net.run_until(until)
    assert net.masters() == [A]
    return net


def test_kill_failover_takes_the_master_down_interval():
    net = steady()
    last_advert = max(t for t, a, _p in net.sent if a == A)
    net.kill(A)
    net.run_until(20.0)
    assert net.masters() == [B]
    expected = last_advert + LATENCY + master_down_interval(2, 90, 1.0)
    assert net.became_master_at(B, 10.0) == pytest.approx(expected)


def test_kill_failover_v3_fast_adverts():
    net = steady({"version": 3, "advert_int": 0.05}, {"version": 3, "advert_int": 0.05})
    last_advert = max(t for t, a, _p in net.sent if a == A)
    net.kill(A)
    net.run_until(20.0)
    failover = net.became_master_at(B, 10.0) - last_advert - LATENCY
    assert failover == pytest.approx(0.15 + 166 * 0.05 / 256)  # keepalived measured ~0.157


def test_shutdown_leaves_a_skew_gap_like_keepalived():
    net = steady()
    net.at(10.3, A, Shutdown())
    net.run_until(20.0)
    assert net.masters() == [B]
    net.history = [(t, h) for t, h in net.history if t >= 10.0]
    assert net.longest(lambda h: not h) == pytest.approx(LATENCY + 166 / 256)


def test_graceful_shutdown_leaves_no_gap():
    net = steady()
    net.at(10.3, A, Shutdown(graceful=True))
    net.run_until(20.0)
    assert net.masters() == [B]
    assert net.machines[A].state is State.STOP
    # after start-up (nobody held the addresses for the first 3.6 s) there is no gap
    start = net.became_master_at(A)
    gaps = [t for t, holders in net.history if not holders and t > start]
    assert gaps == []
    assert net.longest(lambda h: len(h) > 1) == pytest.approx(LATENCY)
    assert net.became_master_at(B, 10.0) == pytest.approx(10.3 + LATENCY + 166 / 256)


def test_graceful_shutdown_without_a_backup_gives_up_after_the_bound():
    net = steady()
    net.kill(B)
    net.at(10.3, A, Shutdown(graceful=True))
    net.run_until(30.0)
    stop = next(t for t, a, c in net.changes if a == A and c.new is State.STOP)
    assert stop == pytest.approx(10.3 + 3 + 255 / 256)


def test_backup_priority_rise_takes_over_at_once():
    net = steady()
    net.at(10.3, B, PriorityChanged(110))
    net.run_until(20.0)
    assert net.masters() == [B]
    assert net.became_master_at(B, 10.0) == pytest.approx(10.3)
    assert net.longest(lambda h: len(h) > 1) == pytest.approx(LATENCY)


def test_master_priority_drop_moves_the_vip_within_one_advert_interval():
    """A tracked script fails on the master (weight -30): keepalived measured ~3.7 s."""
    net = steady()
    net.at(10.3, A, PriorityChanged(70))
    net.run_until(20.0)
    assert net.masters() == [B]
    assert net.became_master_at(B, 10.0) - 10.3 <= 1.0
    assert net.became_master_at(B, 10.0) == pytest.approx(10.3 + LATENCY)


def test_preempt_delay_is_respected():
    """A higher-priority node starts with preempt_delay 5 (keepalived: 8.6 s)."""
    net = Network({A: Machine(inst(priority=100), A)})
    net.start_all()
    net.run_until(10.0)
    net.machines[B] = Machine(inst(priority=150, preempt_delay=5.0), B)
    net.at(10.2, B, Start())
    net.run_until(30.0)
    first_heard = min(t for t, a, _p in net.sent if a == A and t >= 10.2) + LATENCY
    assert net.masters() == [B]
    assert net.became_master_at(B, 10.0) == pytest.approx(first_heard + 5.0)


def test_restarted_higher_priority_node_preempts_within_one_interval():
    """keepalived: 3.63 s."""
    net = Network({A: Machine(inst(priority=100), A)})
    net.start_all()
    net.run_until(10.0)
    net.machines[B] = Machine(inst(priority=150), B)
    net.at(10.2, B, Start())
    net.run_until(30.0)
    assert net.masters() == [B]
    assert net.became_master_at(B, 10.0) - 10.2 <= 1.0 + LATENCY


def test_nopreempt_holds():
    net = Network({A: Machine(inst(priority=100), A)})
    net.start_all()
    net.run_until(10.0)
    net.machines[B] = Machine(inst(priority=150, nopreempt=True), B)
    net.at(10.2, B, Start())
    net.at(12.0, B, PriorityChanged(200))
    net.run_until(60.0)
    assert net.masters() == [A]
    net.kill(A)
    net.run_until(70.0)
    assert net.masters() == [B]


def test_fault_on_master_fails_over_after_skew():
    net = steady()
    net.at(10.3, A, FaultOn("eth0 down"))
    net.at(15.0, A, FaultOff("eth0 up"))
    net.run_until(30.0)
    assert net.became_master_at(B, 10.0) == pytest.approx(10.3 + LATENCY + 166 / 256)
    # A comes back as backup, hears B's lower priority and takes the addresses back
    assert net.masters() == [A]
    assert net.became_master_at(A, 15.0) <= 15.0 + 1.0 + LATENCY


# ----------------------------------------------------------------- random sequences

ADDRESSES = (A, B, C)
operation = st.tuples(
    st.floats(min_value=0.0, max_value=3.0),  # time since the previous operation
    st.integers(min_value=0, max_value=2),  # which machine
    st.one_of(
        st.builds(PriorityChanged, st.integers(min_value=-10, max_value=300)),
        st.builds(FaultOn, st.just("tracker")),
        st.builds(FaultOff, st.just("tracker")),
        st.builds(Shutdown, st.booleans()),
        st.builds(AdvertReceived, st.sampled_from([*ADDRESSES, A6]),
                  st.integers(min_value=-1, max_value=256),
                  st.sampled_from([0.0, 0.5, 1.0, 2.0]), st.booleans()),
        st.just(Timeout()),
        st.just(Start()),
    ),
)
machine_config = st.fixed_dictionaries({
    "priority": st.sampled_from([50, 100, 100, 200, 254, 255]),
    "nopreempt": st.booleans(),
    "preempt_delay": st.sampled_from([0.0, 0.0, 2.0]),
    "state": st.sampled_from([InstanceState.BACKUP, InstanceState.MASTER]),
    "lower_prio_no_advert": st.booleans(),
    "higher_prio_send_advert": st.booleans(),
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=2, max_value=3), st.sampled_from([2, 3]),
       st.lists(machine_config, min_size=3, max_size=3),
       st.lists(operation, max_size=25))
def test_random_events_never_leave_two_masters(count, version, configs, operations):
    advert_int = 1.0 if version == 2 else 0.5
    machines = {}
    for address, config in zip(ADDRESSES[:count], configs, strict=False):
        machines[address] = Machine(inst(version=version, advert_int=advert_int, **config),
                                    address)
    net = Network(machines)
    net.start_all()
    when = 0.0
    for delay, index, event in operations:
        when += delay
        net.at(when, ADDRESSES[index % count], event)
    net.run_until(when + 30.0)
    bound = master_down_interval(version, 1, advert_int) + 2 * LATENCY
    assert net.longest(lambda h: len(h) > 1) <= bound
    for address, m in machines.items():
        assert (address in net.holders) == (m.state is State.MASTER) == m.holds_addresses
        assert m.next_deadline is None or m.state in (State.BACKUP, State.MASTER)


# ----------------------------------------------------------------- sync groups: Force, WantMaster


@pytest.mark.parametrize("route", ["timeout", "lower-advert", "priority", "preempt-delay"])
def test_a_synced_backup_never_takes_over_on_its_own(route):
    m = _synced_backup(priority=100, preempt_delay=2.0 if route == "preempt-delay" else 0.0)
    if route == "timeout":
        actions = m.handle(Timeout(), 10.0)
    elif route == "lower-advert":
        actions = m.handle(advert(priority=50), 0.5)
    elif route == "preempt-delay":
        m.handle(advert(priority=50), 0.5)
        actions = m.handle(Timeout(), 2.6)
    else:
        m.handle(advert(priority=120), 0.5)
        actions = m.handle(PriorityChanged(130), 0.6)
    assert [type(a) for a in actions] == [WantMaster]
    assert actions[0].reason
    assert m.state is State.BACKUP and m.wants_master and not m.holds_addresses
    # the timer runs again: the wish is repeated, never acted on alone
    deadline = m.next_deadline
    assert deadline is not None
    assert [type(a) for a in m.handle(Timeout(), deadline)] == [WantMaster]
    assert m.state is State.BACKUP
    # then the group says go
    actions = m.handle(Force(State.MASTER, "all members want MASTER"), deadline + 0.1)
    assert kinds(actions) == ["SendAdvert", "AddAddresses", "SendGratuitous", "StateChanged"]
    assert "sync group" in actions[-1].reason
    assert m.state is State.MASTER and not m.wants_master
    assert m.counters.became_master == 1


def test_an_advert_at_or_above_ours_clears_the_wish():
    m = _synced_backup(priority=100)
    m.handle(Timeout(), 10.0)
    assert m.wants_master
    assert m.handle(advert(priority=100), 10.1) == []
    assert not m.wants_master
    assert m.next_deadline == pytest.approx(10.1 + m.master_down_interval)


def test_a_fault_clears_the_wish():
    m = _synced_backup()
    m.handle(Timeout(), 10.0)
    m.handle(FaultOn("eth1 down"), 10.1)
    assert m.state is State.FAULT and not m.wants_master


def test_force_backup_releases_without_priority_zero_and_listens():
    m = master(0.0, priority=150)
    actions = m.handle(Force(State.BACKUP, "VI_2 heard a higher priority"), 0.3)
    assert kinds(actions) == ["RemoveAddresses", "StateChanged"]
    assert not any(isinstance(a, SendAdvert) for a in actions)
    assert m.state is State.BACKUP and m.counters.released_master == 1
    assert m.master_address is None
    assert m.timers == {"master_down": pytest.approx(0.3 + m.master_down_interval)}
    # unsynced: after master-down with nobody heard, it takes over again on its own
    assert kinds(m.handle(Timeout(), 0.3 + m.master_down_interval))[-1] == "StateChanged"
    assert m.state is State.MASTER


@pytest.mark.parametrize("state", [State.MASTER, State.BACKUP])
def test_force_is_ignored_in_init_fault_and_handover(state):
    m = _init()
    assert m.handle(Force(state), 0.0) == [] and m.state is State.INIT
    f = faulted()
    assert f.handle(Force(state), 0.1) == [] and f.state is State.FAULT
    h = handing_over()
    assert h.handle(Force(state), 0.1) == [] and h.handing_over
    b = backup()
    if state is State.BACKUP:
        assert b.handle(Force(state), 0.1) == [] and b.state is State.BACKUP


def test_force_takes_only_master_or_backup():
    with pytest.raises(ValueError, match="MASTER or BACKUP"):
        backup().handle(Force(State.FAULT), 0.1)


def test_two_synced_members_go_master_when_both_want():
    """What the glue does with `sync_transition`: the group moves when all want."""
    from vrrp.track import SyncMember, sync_transition

    vi1, vi2 = _synced_backup(priority=100), _synced_backup(priority=100)
    vi1.handle(Timeout(), 10.0)
    members = {"VI_1": SyncMember(vi1.state, vi1.wants_master, vi1.fault),
               "VI_2": SyncMember(vi2.state, vi2.wants_master, vi2.fault)}
    assert sync_transition(State.BACKUP, members, "VI_1", State.MASTER).state is State.BACKUP
    vi2.handle(Timeout(), 10.0)
    members["VI_2"] = SyncMember(vi2.state, vi2.wants_master, vi2.fault)
    decision = sync_transition(State.BACKUP, members, "VI_2", State.MASTER)
    assert decision.state is State.MASTER and decision.others == (("VI_1", State.MASTER),)
    vi2.handle(Force(State.MASTER), 10.0)
    vi1.handle(Force(State.MASTER), 10.0)
    assert vi1.state is vi2.state is State.MASTER


# ----------------------------------------------------------------- reload in place


def test_reconfigure_master_advertises_once_and_keeps_its_state():
    m = master(0.0)
    actions = m.handle(Reconfigure(inst(priority=110, advert_int=2.0), 110), 0.3)
    assert actions == [SendAdvert(110)]
    assert m.state is State.MASTER and m.counters.became_master == 1
    assert m.timers == {"advert": 2.3} and m.master_priority == 110
    # nothing advertised changed (a notify script, say): no advert, the timer stays
    other = inst(priority=110, advert_int=2.0, notify_priority_changes=True)
    assert m.handle(Reconfigure(other, 110), 0.4) == []
    assert m.timers == {"advert": 2.3}


def test_reconfigure_a_new_vip_list_is_advertised():
    from ipaddress import ip_interface

    from vrrp.spec import VirtualAddress

    m = master(0.0)
    new = inst(virtual_ipaddresses=(VirtualAddress(address=ip_interface("192.0.2.9/24")),))
    assert kinds(m.handle(Reconfigure(new, 100), 0.3)) == ["SendAdvert"]


def test_reconfigure_backup_takes_the_new_preempt_settings():
    m = backup(preempt_delay=5.0)
    m.handle(advert(priority=50), 0.5)
    assert "preempt" in m.timers
    m.handle(Reconfigure(inst(preempt_delay=1.0), 100), 0.6)
    assert m.timers["preempt"] == pytest.approx(1.6)
    m.handle(Reconfigure(inst(nopreempt=True), 100), 0.7)
    assert "preempt" not in m.timers
    assert m.handle(Timeout(), 2.0) == [] and m.state is State.BACKUP


def test_reconfigure_v2_backup_uses_the_new_interval():
    m = backup(version=2, advert_int=1.0)
    m.handle(Reconfigure(inst(version=2, advert_int=2.0), 100), 0.5)
    assert m.master_adver_interval == 2.0
    assert kinds(m.handle(advert(interval=1.0), 0.6)) == ["AdvertDiscarded"]
    assert m.handle(advert(interval=2.0), 0.7) == []


def test_reconfigure_leaving_a_sync_group_acts_alone():
    m = _synced_backup()
    assert kinds(m.handle(Timeout(), 10.0)) == ["WantMaster"]
    m.handle(Reconfigure(inst(), 100, synced=False), 10.1)
    assert not m.synced and not m.wants_master
    assert "MASTER" in [str(a.new) for a in m.handle(Timeout(), 20.0)
                        if isinstance(a, StateChanged)]


@pytest.mark.parametrize("change", [dict(virtual_router_id=52), dict(version=3),
                                    dict(priority=255)])
def test_reconfigure_refuses_an_identity_change(change):
    m = backup()
    with pytest.raises(ValueError, match="new machine"):
        m.handle(Reconfigure(inst(**change), 100), 0.5)


def test_priority_zero_names_the_master_that_left():
    m = backup()
    m.handle(advert(priority=150), 0.5)
    m.handle(advert(priority=0), 0.6)
    actions = m.handle(Timeout(), 5.0)
    changed = [a for a in actions if isinstance(a, StateChanged)]
    assert changed[0].reason == f"master {B} sent priority 0"
