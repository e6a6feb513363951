"""vrrp.track: script rise/fall, weights, files, priority limits, sync groups, and the
script runner adapter (fake runner)."""

from __future__ import annotations

import asyncio

import pytest

from vrrp.spec import (
    SyncGroup,
    TrackedFile,
    TrackedInterface,
    TrackedScript,
    TrackFile,
    TrackProcess,
    VrrpConfig,
    VrrpInstance,
    VrrpScript,
)
from vrrp.track import (
    Effective,
    Kind,
    ScriptState,
    ScriptTracker,
    State,
    SyncMember,
    Tracked,
    Tracker,
    Tracking,
    file_status,
    initial_group_state,
    parse_track_file,
    process_quorum,
    script_verdicts,
    sync_transition,
    tracked_scripts,
)

OK, KO = 0, 1

# ----------------------------------------------------------------- script state machine


def test_first_result_decides_from_init() -> None:
    assert script_verdicts([OK], rise=3, fall=3) == [True]
    assert script_verdicts([KO], rise=3, fall=3) == [False]
    assert ScriptState(3, 3).up is None


def test_rise_and_fall_count_consecutive_results() -> None:
    # up at once (init), then fall=2 failures to go down, then rise=3 successes
    seq = [OK, KO, KO, OK, OK, OK]
    assert script_verdicts(seq, rise=3, fall=2) == [True, True, False, False, False, True]


def test_a_success_resets_the_fall_count_and_a_failure_the_rise_count() -> None:
    assert script_verdicts([OK, KO, OK, KO, OK], rise=1, fall=2) == [True] * 5
    seq = [KO, OK, OK, KO, OK, OK, OK]
    assert script_verdicts(seq, rise=3, fall=1) == [False] * 6 + [True]


def test_init_fail_needs_rise_successes() -> None:
    assert ScriptState(2, 1, init_fail=True).up is False
    assert script_verdicts([OK, OK], rise=2, fall=1, init_fail=True) == [False, True]


def test_timeout_or_refusal_is_a_failure() -> None:
    state = ScriptState()
    assert state.result(OK) is True
    assert state.result(None) is False
    assert state.result(2) is None  # still down: no change
    assert state.result(OK) is True


# ----------------------------------------------------------------- weights


def _tracker(*tracked: Tracked, priority: int = 100) -> Tracker:
    return Tracker(priority, tracked)


@pytest.mark.parametrize(("weight", "reverse", "up_prio", "down_prio"), [
    (10, False, 110, 100),
    (-30, False, 100, 70),
    (10, True, 90, 100),
    (-30, True, 100, 130),
])
def test_script_weights(weight: int, reverse: bool, up_prio: int, down_prio: int) -> None:
    tracker = _tracker(Tracked(Kind.SCRIPT, "chk", weight, reverse))
    assert tracker.effective == Effective(100)  # no verdict yet: nothing added
    tracker.script("chk", True, 1.0)
    assert tracker.effective == Effective(up_prio)
    assert tracker.script("chk", False, 2.0) == Effective(down_prio)
    assert not tracker.effective.fault


def test_weight_zero_script_faults_and_waits() -> None:
    tracker = _tracker(Tracked(Kind.SCRIPT, "chk"))
    assert tracker.effective.pending and tracker.effective.waiting == ("script chk",)
    assert tracker.script("chk", True, 1.0) == Effective(100)
    assert tracker.script("chk", False, 2.0) == Effective(100, fault=True,
                                                          faults=("script chk",))
    assert tracker.changed_at == 2.0
    assert tracker.script("chk", False, 3.0) is None
    assert tracker.script("chk", True, 4.0) == Effective(100)


def test_weight_zero_reverse_faults_while_up() -> None:
    tracker = _tracker(Tracked(Kind.SCRIPT, "chk", 0, True))
    assert tracker.script("chk", True, 1.0).fault
    assert not tracker.script("chk", False, 2.0).fault


def test_interface_fault_and_weight() -> None:
    tracker = _tracker(Tracked(Kind.INTERFACE, "eth0"), Tracked(Kind.INTERFACE, "eth1", -20))
    tracker.link("eth0", True, 0)
    assert tracker.link("eth1", False, 0).priority == 80
    assert tracker.link("eth0", False, 1).fault
    assert tracker.effective.faults == ("interface eth0",)
    assert tracker.link("eth9", False, 1) is None  # not tracked


def test_priority_is_clamped_and_the_owner_keeps_255() -> None:
    tracker = _tracker(Tracked(Kind.SCRIPT, "a", 200), Tracked(Kind.SCRIPT, "b", -253))
    assert tracker.script("a", True, 0).priority == 254
    tracker.script("a", False, 0)
    assert tracker.script("b", False, 0).priority == 1
    owner = _tracker(Tracked(Kind.SCRIPT, "b", -253), Tracked(Kind.SCRIPT, "z"), priority=255)
    assert owner.script("b", False, 0) is None
    assert owner.effective.priority == 255
    assert owner.script("z", False, 0).fault  # faults still apply to an owner


# ----------------------------------------------------------------- track files


@pytest.mark.parametrize(("data", "value"), [
    (b"10\n", 10), (b"  -5", -5), (b"+7x", 7), (b"0x1f", 31), (b"010", 8), (b"", 0),
    (b"abc", 0), (b"300", 254), (b"-999999999999999999999", -254), (None, 0), ("12", 12),
    (b"0x", 0), (b"09", 0),
])
def test_parse_track_file_like_strtol(data: bytes | str | None, value: int) -> None:
    assert parse_track_file(data) == value


def test_file_status() -> None:
    assert file_status(10, -1) == -10
    assert file_status(254, -1) is None  # -254: FAULT
    assert file_status(200, 2) == 253
    assert file_status(3, 0) is None and file_status(0, 0) == 0
    assert file_status(0, 0, reverse=True) is None and file_status(3, 0, True) == 0
    assert file_status(10, 5, reverse=True) == -50


def test_file_sequence_matches_keepalived() -> None:
    """Measured with keepalived 2.2.7 (priority 100, track_file weight -1): the
    priorities it reported for values 0, 10, 254, 0, 300, -5."""
    tracker = _tracker(Tracked(Kind.FILE, "tf", -1))
    seen = []
    for value in (0, 10, 254, 0, 300, -5):
        tracker.file("tf", value, 0)
        seen.append((tracker.effective.priority, tracker.effective.fault))
    assert seen == [(100, False), (90, False), (90, True), (100, False), (100, True),
                    (105, False)]


def test_process_quorum() -> None:
    process = TrackProcess(name="p", process="nginx", quorum=2, quorum_max=3)
    assert [process_quorum(n, process) for n in range(5)] == [False, False, True, True, False]
    assert process_quorum(9, TrackProcess(name="p", quorum=1))


# ----------------------------------------------------------------- from a config


def _config(*, group_weight: bool | None = None) -> VrrpConfig:
    scripts = (VrrpScript(name="chk", script=("/bin/true",), weight=-30),
               VrrpScript(name="gate", script=("/bin/true",), init_fail=True),
               VrrpScript(name="unused", script=("/bin/true",)))
    files = (TrackFile(name="tf", file="/run/tf", weight=1),)
    vi1 = VrrpInstance(name="VI_1", interface="eth0", priority=100,
                       track_scripts=(TrackedScript(name="chk"), TrackedScript(name="nope")),
                       track_interfaces=(TrackedInterface(name="eth1", weight=-10),),
                       track_files=(TrackedFile(name="tf", weight=-2),))
    vi2 = VrrpInstance(name="VI_2", interface="eth0", priority=90, dont_track_primary=True)
    groups = ()
    if group_weight is not None:
        groups = (SyncGroup(name="G1", group=("VI_1", "VI_2"),
                            track_scripts=(TrackedScript(name="gate"),),
                            sync_group_tracking_weight=group_weight),)
    return VrrpConfig(scripts=scripts, track_files=files, instances=(vi1, vi2),
                      sync_groups=groups)


def test_for_instance_reads_the_config() -> None:
    tracker = Tracker.for_instance(_config(), "VI_1")
    assert tracker.tracked == (
        Tracked(Kind.INTERFACE, "eth0"), Tracked(Kind.INTERFACE, "eth1", -10),
        Tracked(Kind.SCRIPT, "chk", -30), Tracked(Kind.FILE, "tf", -2))
    assert tracker.effective.waiting == ("interface eth0",)
    tracker.link("eth0", True, 0)
    tracker.link("eth1", True, 0)
    assert tracker.script("chk", False, 0).priority == 70
    assert tracker.file("tf", 5, 0).priority == 60
    assert Tracker.for_instance(_config(), "VI_2").tracked == ()
    with pytest.raises(KeyError):
        Tracker.for_instance(_config(), "VI_9")


def test_sync_group_members_track_the_group_with_weight_zero() -> None:
    tracker = Tracker.for_instance(_config(group_weight=False), "VI_1")
    assert Tracked(Kind.SCRIPT, "chk", 0) in tracker.tracked
    assert Tracked(Kind.INTERFACE, "eth1", 0) in tracker.tracked
    assert Tracked(Kind.SCRIPT, "gate", 0) in tracker.tracked
    assert tracker.effective.fault  # gate is init_fail: down from the start
    weighted = Tracker.for_instance(_config(group_weight=True), "VI_1")
    assert Tracked(Kind.SCRIPT, "chk", -30) in weighted.tracked


def test_tracking_fans_out() -> None:
    tracking = Tracking.for_config(_config(group_weight=False))
    changed = tracking.update(Kind.SCRIPT, "gate", True, 1.0)
    assert list(changed) == ["VI_1", "VI_2"]
    assert not tracking.effective("VI_2").fault
    assert tracking.update(Kind.SCRIPT, "gate", True, 2.0) == {}


def test_tracked_scripts_are_those_in_use() -> None:
    assert [s.name for s in tracked_scripts(_config(group_weight=True))] == ["chk", "gate"]


# ----------------------------------------------------------------- sync groups

M, B, F, IN, S = State.MASTER, State.BACKUP, State.FAULT, State.INIT, State.STOP


def members(**states: SyncMember | State) -> dict[str, SyncMember]:
    return {k: v if isinstance(v, SyncMember) else SyncMember(v) for k, v in states.items()}


def test_a_fault_takes_the_group_down() -> None:
    got = sync_transition(M, members(a=M, b=M, c=S), "a", F)
    assert got.state is F and got.others == (("b", F),) and got.group_state is F


def test_master_only_when_everyone_wants_it() -> None:
    group = members(a=SyncMember(B, wants_master=True), b=B, c=SyncMember(B, True))
    assert sync_transition(B, group, "a", M).state is B  # b still hears its master
    group["b"] = SyncMember(B, wants_master=True)
    got = sync_transition(B, group, "a", M)
    assert got.state is M and got.others == (("b", M), ("c", M)) and got.group_state is M
    assert sync_transition(M, group, "a", M).others == ()


def test_backup_takes_the_others_out_of_master() -> None:
    got = sync_transition(M, members(a=M, b=M), "a", B)
    assert got == type(got)(B, (("b", B),), B)


def test_leaving_fault_waits_for_every_member() -> None:
    group = members(a=F, b=SyncMember(F, fault=True))
    got = sync_transition(F, group, "a", B)
    assert got.state is F and got.others == () and got.group_state is None
    group["b"] = SyncMember(F)
    got = sync_transition(F, group, "a", B)
    assert got.state is B and got.others == (("b", B),) and got.group_state is B
    assert sync_transition(F, group, "a", M).state is F


def test_stop_and_initial_state() -> None:
    assert sync_transition(M, members(a=M, b=M), "a", S).group_state is None
    assert sync_transition(M, members(a=M, b=S), "a", S).group_state is S
    assert initial_group_state(members(a=B, b=SyncMember(B, fault=True))) is F
    assert initial_group_state(members(a=B, b=IN)) is IN
    assert initial_group_state(members(a=B, b=B)) is B


# ----------------------------------------------------------------- the runner adapter


async def test_script_tracker_runs_scripts_and_reports_changes() -> None:
    results = {"a": [0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]}
    calls: list[tuple[tuple[str, ...], float, str | None, str | None]] = []

    async def run(argv, timeout, user, group):
        calls.append((argv, timeout, user, group))
        queue = results["a"]
        return queue.pop(0) if queue else 0

    changes: list[tuple[str, bool]] = []
    script = VrrpScript(name="a", script=("/bin/check", "x"), interval=0.01, timeout=0.5,
                        fall=2, user="nobody")
    tracker = ScriptTracker([script], run, lambda n, up: changes.append((n, up)))
    tracker.start()
    for _ in range(200):
        await asyncio.sleep(0.01)
        if len(changes) >= 3:
            break
    await tracker.stop()
    assert changes[:3] == [("a", True), ("a", False), ("a", True)]
    assert calls[0] == (("/bin/check", "x"), 0.5, "nobody", None)
    assert tracker.runs["a"] >= 4


async def test_a_runner_that_raises_is_a_failure_and_callbacks_cannot_kill() -> None:
    async def run(argv, timeout, user, group):
        raise OSError("boom")

    def bad(name: str, up: bool) -> None:
        raise RuntimeError("callback")

    tracker = ScriptTracker([VrrpScript(name="a", script=("/x",))], run, bad)
    assert await tracker.run_once(tracker.scripts[0]) is False
    assert tracker.verdict("a") is False


async def test_a_real_runner() -> None:
    """The adapter with a tiny real runner (what the director injects, in miniature)."""
    async def run(argv, timeout, user, group):
        proc = await asyncio.create_subprocess_exec(*argv)
        try:
            return await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return None

    ok = VrrpScript(name="ok", script=("/bin/true",), timeout=5)
    slow = VrrpScript(name="slow", script=("/bin/sleep", "5"), timeout=0.1)
    tracker = ScriptTracker([ok, slow], run, lambda n, up: None)
    assert await tracker.run_once(ok) is True
    assert await tracker.run_once(slow) is False


def test_sync_accepts_the_machines_states() -> None:
    from enum import StrEnum

    class Other(StrEnum):  # stands for vrrp.machine.State: same names
        MASTER = "MASTER"
        FAULT = "FAULT"

    got = sync_transition(Other.MASTER, {"a": SyncMember(Other.MASTER),
                                         "b": SyncMember(Other.MASTER)}, "a", Other.FAULT)
    assert got == type(got)(F, (("b", F),), F) and got.state == "FAULT"
