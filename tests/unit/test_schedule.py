"""The check scheduler (`checkers.schedule`), driven by a fake clock."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checkers.probe import ProbeResult
from checkers.schedule import (
    MAX_JITTER,
    POLL_INTERVAL,
    Event,
    EventKind,
    ProbeAt,
    ServerSchedule,
)
from checkers.spec import BfdCheck, FileCheck, HttpGetCheck, MiscCheck, TcpCheck

OK = ProbeResult(True, "connected", 0.001)
REFUSED = ProbeResult(False, "connection refused", 0.001)
TIMEOUT = ProbeResult(False, "connect timeout after 5.0 s", 5.0)


def tcp(**kw) -> TcpCheck:
    kw.setdefault("delay_loop", 10.0)
    kw.setdefault("warmup", 0.0)
    return TcpCheck(**kw)


def probes(actions) -> list[ProbeAt]:
    return [a for a in actions if isinstance(a, ProbeAt)]


def events(actions) -> list[Event]:
    return [a for a in actions if isinstance(a, Event)]


def kinds(actions) -> list[EventKind]:
    return [e.kind for e in events(actions)]


def started(*checkers, now: float = 100.0, seed: int = 1, jitter: float = 0.0,
            previous: ServerSchedule | None = None):
    schedule = ServerSchedule(checkers, jitter=jitter)
    actions = schedule.start(now, random.Random(seed).random, previous)
    return schedule, actions


class Clock:
    """Runs one schedule against scripted probe outcomes: each probe starts when due
    (plus ``late``) and ends ``latency`` later; records every probe and event."""

    def __init__(self, schedule: ServerSchedule, actions, outcome: Callable[[int, float],
                 ProbeResult], *, latency: float = 0.0, late: float = 0.0):
        self.schedule = schedule
        self.outcome = outcome
        self.latency = latency
        self.late = late
        self.pending: dict[int, float] = {}
        self.probed: list[tuple[int, float]] = []  # (checker, due)
        self.events: list[Event] = []
        self._apply(actions)

    def _apply(self, actions) -> None:
        for action in actions:
            if isinstance(action, ProbeAt):
                assert action.checker not in self.pending  # one outstanding probe each
                self.pending[action.checker] = action.at
            else:
                self.events.append(action)

    def run_until(self, end: float) -> None:
        for _ in range(100_000):
            if not self.pending:
                return
            checker, due = min(self.pending.items(), key=lambda item: item[1])
            done = due + self.late + self.latency
            if done > end:
                return
            del self.pending[checker]
            self.probed.append((checker, due))
            self._apply(self.schedule.result(checker, self.outcome(checker, due), done))
        raise AssertionError("too many probes")

    def dues(self, checker: int = 0) -> list[float]:
        return [due for c, due in self.probed if c == checker]


# ------------------------------------------------------------------ start

def test_a_server_starts_up_and_is_probed_at_once_without_warmup():
    schedule, actions = started(tcp())
    assert schedule.up and schedule.checkers[0].up
    assert actions == [ProbeAt(0, 100.0)]


def test_warmup_spreads_first_probes_over_the_warmup_window():
    firsts = []
    for seed in range(400):
        _, actions = started(tcp(warmup=30.0), seed=seed)
        [probe] = probes(actions)
        assert 100.0 <= probe.at <= 130.0
        firsts.append(probe.at)
    assert min(firsts) < 101.0 and max(firsts) > 129.0  # the whole window is used


def test_alpha_starts_down_and_says_why():
    schedule, actions = started(tcp(alpha=True))
    assert not schedule.up
    [down] = events(actions)
    assert down.kind is EventKind.SERVER_DOWN and down.at == 100.0
    assert "alpha" in down.reason and down.check == "TCP_CHECK" and down.checker == 0
    assert probes(actions) == [ProbeAt(0, 100.0)]


def test_alpha_server_comes_up_on_its_first_success():
    schedule, _ = started(tcp(alpha=True))
    actions = schedule.result(0, OK, 100.01)
    assert kinds(actions) == [EventKind.CHECKER_UP, EventKind.SERVER_UP]
    assert events(actions)[1].reason == "connected"
    assert schedule.up


def test_alpha_server_stays_down_while_failing_without_retries():
    schedule, _ = started(tcp(alpha=True, retry=3, delay_before_retry=1.0))
    for n in range(3):
        actions = schedule.result(0, REFUSED, 100.0 + 10 * n)
        assert events(actions) == []  # no retry while already down
        assert probes(actions) == [ProbeAt(0, 110.0 + 10 * n)]
    assert not schedule.up


def test_a_server_without_checkers_is_always_up():
    schedule, actions = started()
    assert schedule.up and actions == []


def test_jitter_must_be_a_fraction():
    with pytest.raises(ValueError):
        ServerSchedule([tcp()], jitter=1.5)


# ------------------------------------------------------------------ retries and verdicts

def test_failure_is_retried_then_declared_down_keepalived_timing():
    schedule, _ = started(tcp(retry=2, delay_before_retry=3.0))
    first = schedule.result(0, REFUSED, 100.1)
    assert kinds(first) == [EventKind.RETRY]
    assert probes(first) == [ProbeAt(0, 103.1)]  # delay_before_retry after the failure
    second = schedule.result(0, REFUSED, 103.2)
    assert kinds(second) == [EventKind.RETRY]
    assert probes(second) == [ProbeAt(0, 106.2)]
    assert schedule.up
    third = schedule.result(0, TIMEOUT, 111.2)
    assert kinds(third) == [EventKind.CHECKER_DOWN, EventKind.SERVER_DOWN]
    down = events(third)[1]
    assert (down.at, down.reason, down.check) == (111.2, "connect timeout after 5.0 s",
                                                  "TCP_CHECK")
    # after the verdict: delay_loop after that probe was due (106.2), slots missed skipped
    assert probes(third) == [ProbeAt(0, 116.2)]
    assert not schedule.up and schedule.reason == "connect timeout after 5.0 s"


def test_a_success_between_retries_starts_the_count_again():
    schedule, _ = started(tcp(retry=1, delay_before_retry=1.0))
    assert kinds(schedule.result(0, REFUSED, 100.0)) == [EventKind.RETRY]
    assert kinds(schedule.result(0, OK, 101.0)) == []
    assert kinds(schedule.result(0, REFUSED, 111.0)) == [EventKind.RETRY]
    assert schedule.up


def test_retry_zero_goes_down_on_the_first_failure():
    schedule, _ = started(MiscCheck(misc_path=("/bin/false",), warmup=0.0, delay_loop=5.0))
    assert schedule.checkers[0].fall == 1  # MISC_CHECK's default retry is 0
    actions = schedule.result(0, ProbeResult(False, "exit status 1", 0.01), 100.0)
    assert kinds(actions) == [EventKind.CHECKER_DOWN, EventKind.SERVER_DOWN]


def test_fall_overrides_retry():
    schedule, _ = started(tcp(retry=5, fall=2, delay_before_retry=1.0))
    assert kinds(schedule.result(0, REFUSED, 100.0)) == [EventKind.RETRY]
    assert kinds(schedule.result(0, REFUSED, 101.0)) == [EventKind.CHECKER_DOWN,
                                                         EventKind.SERVER_DOWN]


def test_rise_needs_successes_in_a_row_confirmed_at_the_retry_delay():
    schedule, _ = started(tcp(alpha=True, rise=3, delay_before_retry=2.0))
    first = schedule.result(0, OK, 100.0)
    assert kinds(first) == [] and probes(first) == [ProbeAt(0, 102.0)]
    schedule.result(0, OK, 102.0)
    assert kinds(schedule.result(0, REFUSED, 104.0)) == []  # resets the count
    schedule.result(0, OK, 114.0)
    schedule.result(0, OK, 116.0)
    assert not schedule.up
    actions = schedule.result(0, OK, 118.0)
    assert kinds(actions) == [EventKind.CHECKER_UP, EventKind.SERVER_UP]
    assert probes(actions) == [ProbeAt(0, 128.0)]  # delay_loop after it was due (118)


def test_down_server_comes_back_on_one_success_by_default():
    schedule, _ = started(tcp(retry=0))
    schedule.result(0, REFUSED, 100.0)
    actions = schedule.result(0, OK, 110.0)
    assert kinds(actions) == [EventKind.CHECKER_UP, EventKind.SERVER_UP]
    assert schedule.since == 110.0 and schedule.reason == "connected"


def test_checker_state_keeps_the_last_result():
    schedule, _ = started(tcp())
    schedule.result(0, TIMEOUT, 105.0)
    checker = schedule.checkers[0]
    assert checker.last == TIMEOUT and checker.last_at == 105.0 and checker.probes == 1
    assert checker.failures == 1 and checker.successes == 0


# ------------------------------------------------------------------ several checkers

def test_server_is_up_only_while_every_checker_is_up():
    http = HttpGetCheck(delay_loop=10.0, warmup=0.0, retry=0)
    schedule, actions = started(tcp(retry=0), http)
    assert sorted(probes(actions)) == [ProbeAt(0, 100.0), ProbeAt(1, 100.0)]
    status = ProbeResult(False, "HTTP status 503 on /health", 0.01)
    actions = schedule.result(1, status, 100.0)
    assert kinds(actions) == [EventKind.CHECKER_DOWN, EventKind.SERVER_DOWN]
    down = events(actions)[1]
    assert (down.checker, down.check, down.reason) == (1, "HTTP_GET",
                                                       "HTTP status 503 on /health")
    # the other checker failing too changes that checker, not the server
    assert kinds(schedule.result(0, REFUSED, 100.1)) == [EventKind.CHECKER_DOWN]
    # one of two recovering is not enough; the server's reason is now the other's
    assert kinds(schedule.result(1, OK, 110.0)) == [EventKind.CHECKER_UP]
    assert not schedule.up and schedule.reason == "connection refused"
    actions = schedule.result(0, OK, 110.1)
    assert kinds(actions) == [EventKind.CHECKER_UP, EventKind.SERVER_UP]
    assert events(actions)[1].checker == 0 and schedule.up


def test_alpha_on_one_checker_starts_the_server_down():
    schedule, actions = started(tcp(), tcp(alpha=True, connect_port=81))
    assert kinds(actions) == [EventKind.SERVER_DOWN]
    assert events(actions)[0].checker == 1
    assert kinds(schedule.result(0, OK, 100.0)) == []
    assert kinds(schedule.result(1, OK, 100.0)) == [EventKind.CHECKER_UP, EventKind.SERVER_UP]


def test_checkers_keep_their_own_timers():
    schedule, actions = started(tcp(delay_loop=2.0), tcp(delay_loop=3.0, connect_port=81))
    clock = Clock(schedule, actions, lambda i, t: OK)
    clock.run_until(112.0)
    assert clock.dues(0) == [100.0 + 2 * k for k in range(7)]
    assert clock.dues(1) == [100.0 + 3 * k for k in range(5)]


# ------------------------------------------------------------------ weight

def test_dynamic_weight_sets_the_server_weight_and_reports_changes_only():
    schedule, _ = started(MiscCheck(misc_path=("/x",), misc_dynamic=True, warmup=0.0))
    assert schedule.weight is None
    weighted = ProbeResult(True, "exit status 7: weight 5", 0.01, weight=5)
    actions = schedule.result(0, weighted, 100.0)
    assert [(e.kind, e.weight, e.reason) for e in events(actions)] == [
        (EventKind.WEIGHT, 5, "exit status 7: weight 5")]
    assert schedule.weight == 5 and schedule.checkers[0].weight == 5
    assert events(schedule.result(0, weighted, 160.0)) == []
    assert events(schedule.result(0, OK, 220.0)) == []  # exit 0 keeps the weight
    assert schedule.weight == 5
    actions = schedule.result(0, ProbeResult(True, "exit status 2: weight 0", 0, weight=0),
                              280.0)
    assert [(e.kind, e.weight) for e in events(actions)] == [(EventKind.WEIGHT, 0)]
    assert schedule.up  # weight 0 is not down


def test_the_last_weight_set_by_any_checker_wins():
    misc = MiscCheck(misc_path=("/x",), misc_dynamic=True, warmup=0.0)
    other = MiscCheck(misc_path=("/y",), misc_dynamic=True, warmup=0.0)
    schedule, _ = started(misc, other)
    schedule.result(0, ProbeResult(True, "w3", 0, weight=3), 100.0)
    actions = schedule.result(1, ProbeResult(True, "w9", 0, weight=9), 100.5)
    assert [(e.kind, e.checker, e.weight) for e in events(actions)] == [
        (EventKind.WEIGHT, 1, 9)]
    assert schedule.weight == 9


def test_weight_deltas_of_file_checks_add_up():
    schedule, _ = started(FileCheck(track_file="a"), FileCheck(track_file="b"))
    actions = schedule.result(0, ProbeResult(True, "a reads 2", 0, weight_delta=20), 100.0)
    [event] = events(actions)
    assert (event.kind, event.weight, event.weight_delta) == (EventKind.WEIGHT, None, 20)
    assert "weight configured +20" in event.describe()
    actions = schedule.result(1, ProbeResult(True, "b reads -1", 0, weight_delta=-5), 100.1)
    assert [(e.weight, e.weight_delta) for e in events(actions)] == [(None, 15)]
    assert events(schedule.result(0, ProbeResult(True, "a", 0, weight_delta=20), 101.0)) == []
    assert schedule.weight_delta == 15 and schedule.checkers[1].weight_delta == -5


def test_a_set_weight_and_deltas_are_reported_together():
    misc = MiscCheck(misc_path=("/x",), misc_dynamic=True, warmup=0.0)
    schedule, _ = started(misc, FileCheck(track_file="a"))
    schedule.result(1, ProbeResult(True, "a", 0, weight_delta=3), 100.0)
    actions = schedule.result(0, ProbeResult(True, "w", 0, weight=7), 100.5)
    [event] = events(actions)
    assert (event.weight, event.weight_delta) == (7, 3)
    assert event.describe() == "weight 7 +3: MISC_CHECK w"


def test_a_reload_that_drops_a_file_check_drops_its_delta():
    old, _ = started(FileCheck(track_file="a"), tcp())
    old.result(0, ProbeResult(True, "a", 0, weight_delta=4), 100.0)
    new, actions = started(tcp(), now=101.0, previous=old)
    assert new.weight_delta == 0
    assert [(e.kind, e.weight_delta) for e in events(actions)] == [(EventKind.WEIGHT, 0)]


# ------------------------------------------------------------------ timing

def test_steady_probes_keep_their_rhythm_whatever_the_latency_and_lateness():
    schedule, actions = started(tcp(delay_loop=1.0))
    clock = Clock(schedule, actions, lambda i, t: OK, latency=0.3, late=0.2)
    clock.run_until(110.0)
    assert clock.dues() == pytest.approx([100.0 + k for k in range(10)])


def test_a_probe_that_outlasts_delay_loop_skips_the_missed_slots():
    schedule, _ = started(tcp(delay_loop=1.0, retry=0))
    actions = schedule.result(0, TIMEOUT, 105.5)  # due at 100, took 5.5 s
    assert probes(actions) == [ProbeAt(0, 106.0)]
    assert schedule.checkers[0].due == 106.0


def test_retry_delay_counts_from_the_end_of_the_failed_probe():
    schedule, _ = started(tcp(delay_loop=1.0, retry=1, delay_before_retry=3.0))
    assert probes(schedule.result(0, TIMEOUT, 105.0)) == [ProbeAt(0, 108.0)]


def test_down_is_detected_within_retry_times_delay_before_retry():
    # failing from t=100.5 on: the next steady probe (<= delay_loop), then `retry` retries
    spec = tcp(delay_loop=4.0, retry=3, delay_before_retry=1.5)
    schedule, actions = started(spec)
    clock = Clock(schedule, actions, lambda i, t: OK if t < 100.5 else REFUSED,
                  latency=0.01)
    clock.run_until(130.0)
    [down] = [e for e in clock.events if e.kind is EventKind.SERVER_DOWN]
    assert down.at <= 100.5 + spec.delay_loop + spec.retry * (spec.delay_before_retry + 0.01)
    assert [e.kind for e in clock.events].count(EventKind.RETRY) == 3


@pytest.mark.parametrize(("delay_loop", "bound"), [(1.0, 0.1), (3.0, 0.3), (60.0, MAX_JITTER)])
def test_jitter_is_bounded_and_centred(delay_loop, bound):
    schedule, actions = started(tcp(delay_loop=delay_loop), jitter=0.1, seed=7)
    clock = Clock(schedule, actions, lambda i, t: OK)
    clock.run_until(100.0 + 2000 * delay_loop)
    dues = clock.dues()
    gaps = [b - a for a, b in itertools.pairwise(dues)]
    assert len(gaps) > 1500
    assert all(delay_loop - bound - 1e-9 <= g <= delay_loop + bound + 1e-9 for g in gaps)
    assert max(gaps) > delay_loop + 0.8 * bound and min(gaps) < delay_loop - 0.8 * bound
    mean = sum(gaps) / len(gaps)
    assert abs(mean - delay_loop) < bound * 0.1


def test_jitter_spreads_checkers_that_started_in_step():
    schedules = [started(tcp(delay_loop=1.0), jitter=0.1, seed=s) for s in range(200)]
    last = []
    for schedule, actions in schedules:
        clock = Clock(schedule, actions, lambda i, t: OK)
        clock.run_until(160.0)
        last.append(clock.dues()[-1] % 1.0)
    # after a minute, the phases cover the second rather than sitting at .0
    buckets = {int(phase * 10) for phase in last}
    assert len(buckets) >= 8


def test_retry_delays_are_jittered_too():
    seen = set()
    for seed in range(50):
        schedule, _ = started(tcp(delay_before_retry=2.0), jitter=0.1, seed=seed)
        [probe] = probes(schedule.result(0, REFUSED, 100.0))
        assert 101.8 <= probe.at <= 102.2
        seen.add(round(probe.at, 3))
    assert len(seen) > 40


@pytest.mark.parametrize("spec", [FileCheck(track_file="f"), BfdCheck(name="b")])
def test_unscheduled_kinds_are_polled(spec):
    schedule, actions = started(spec)
    assert probes(actions) == [ProbeAt(0, 100.0)]
    assert probes(schedule.result(0, OK, 100.0)) == [ProbeAt(0, 100.0 + POLL_INTERVAL)]
    assert kinds(schedule.result(0, REFUSED, 100.0 + POLL_INTERVAL)) == [
        EventKind.CHECKER_DOWN, EventKind.SERVER_DOWN]


def test_bfd_alpha_starts_down():
    schedule, _ = started(BfdCheck(name="b", alpha=True))
    assert not schedule.up


# ------------------------------------------------------------------ taking over after a reload

def test_unchanged_checkers_keep_their_state_across_a_reload():
    old, _ = started(tcp(retry=0), tcp(connect_port=81))
    old.result(0, REFUSED, 100.0)  # down
    kept = old.checkers[0]
    # same checkers, as another configuration file writes them (origin differs)
    new, actions = started(tcp(retry=0, origin="b.conf:9:9"), tcp(connect_port=81),
                           now=105.0, previous=old)
    assert new.checkers[0] is kept and kept.spec.origin == "b.conf:9:9"
    assert actions == []  # nothing to probe afresh, nothing changed
    assert not new.up and new.since == old.since and new.reason == "connection refused"


def test_a_reload_that_drops_the_failing_checker_brings_the_server_up():
    old, _ = started(tcp(retry=0), tcp(connect_port=81))
    old.result(0, REFUSED, 100.0)
    new, actions = started(tcp(connect_port=81), now=105.0, previous=old)
    assert kinds(actions) == [EventKind.SERVER_UP]
    assert "configuration" in events(actions)[0].reason
    assert new.checkers[0].index == 0 and new.checkers[0] is old.checkers[1]


def test_a_new_checker_starts_afresh_with_its_warmup_and_alpha():
    old, _ = started(tcp())
    new, actions = started(tcp(), tcp(connect_port=81, alpha=True, warmup=5.0), now=200.0,
                           previous=old)
    assert kinds(actions) == [EventKind.SERVER_DOWN]
    [probe] = probes(actions)
    assert probe.checker == 1 and 200.0 <= probe.at <= 205.0
    assert new.checkers[0] is old.checkers[0]


def test_a_changed_checker_replaces_the_old_one():
    old, _ = started(tcp(retry=0))
    old.result(0, REFUSED, 100.0)
    new, actions = started(tcp(retry=0, delay_loop=3.0), now=101.0, previous=old)
    assert new.checkers[0] is not old.checkers[0]
    assert kinds(actions) == [EventKind.SERVER_UP]  # the new checker starts up
    assert probes(actions) == [ProbeAt(0, 101.0)]


def test_a_reload_keeps_the_dynamic_weight_of_kept_checkers():
    misc = MiscCheck(misc_path=("/x",), misc_dynamic=True, warmup=0.0)
    old, _ = started(misc)
    old.result(0, ProbeResult(True, "w", 0, weight=4), 100.0)
    new, actions = started(misc, tcp(), now=101.0, previous=old)
    assert new.weight == 4 and kinds(actions) == []
    dropped, actions = started(tcp(), now=102.0, previous=new)
    assert dropped.weight is None
    assert [(e.kind, e.weight) for e in events(actions)] == [(EventKind.WEIGHT, None)]


# ------------------------------------------------------------------ properties

@settings(max_examples=200, deadline=None)
@given(retry=st.integers(0, 4), rise=st.integers(1, 4), alpha=st.booleans(),
       outcomes=st.lists(st.booleans(), max_size=60))
def test_verdicts_follow_the_streaks(retry, rise, alpha, outcomes):
    schedule, _ = started(tcp(retry=retry, rise=rise, alpha=alpha))
    up, streak_ok, streak_bad = not alpha, 0, 0
    now = 100.0
    for ok in outcomes:
        now += 1.0
        actions = schedule.result(0, OK if ok else REFUSED, now)
        streak_ok, streak_bad = (streak_ok + 1, 0) if ok else (0, streak_bad + 1)
        before = up
        if up and streak_bad >= retry + 1:
            up = False
        elif not up and streak_ok >= rise:
            up = True
        assert schedule.up is up
        server = [e.kind for e in events(actions)
                  if e.kind in (EventKind.SERVER_UP, EventKind.SERVER_DOWN)]
        assert server == ([] if up == before else
                          [EventKind.SERVER_UP if up else EventKind.SERVER_DOWN])
        [probe] = probes(actions)
        assert probe.at >= now
