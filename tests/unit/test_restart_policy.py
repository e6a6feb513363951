"""The supervisor's restart schedule: 1 s doubling to 30 s, reset after 60 s up, and
giving up on a child that never starts."""

from __future__ import annotations

from director.restart_policy import BackoffSettings, GiveUp, Restart, RestartPolicy


def crash_loop(policy: RestartPolicy, times: int, start: float = 100.0,
               up: float = 0.5, ready: bool = True) -> list[float]:
    """Start, (get ready,) exit after `up` seconds, restart when told; the delays."""
    now, delays = start, []
    for _ in range(times):
        policy.started(now)
        if ready:
            policy.ready(now + up / 2)
        now += up
        decision = policy.exited(now)
        assert isinstance(decision, Restart)
        assert decision.at == now + decision.delay
        delays.append(decision.delay)
        now = decision.at
    return delays


def test_delay_doubles_from_one_second_up_to_thirty():
    assert crash_loop(RestartPolicy(), 8) == [1, 2, 4, 8, 16, 30, 30, 30]


def test_a_child_up_for_a_minute_starts_again_from_one_second():
    policy = RestartPolicy()
    assert crash_loop(policy, 4) == [1, 2, 4, 8]
    policy.started(1000.0)
    policy.ready(1000.5)
    decision = policy.exited(1060.0)
    assert isinstance(decision, Restart) and decision.delay == 1
    assert crash_loop(policy, 2, start=1061.0) == [2, 4]


def test_up_for_less_than_a_minute_keeps_the_backoff():
    policy = RestartPolicy()
    crash_loop(policy, 3)
    policy.started(500.0)
    policy.ready(501.0)
    decision = policy.exited(559.0)
    assert isinstance(decision, Restart) and decision.delay == 8


def test_a_child_that_never_starts_is_given_up_after_five_tries():
    policy = RestartPolicy()
    now = 0.0
    decisions = []
    for _ in range(5):
        policy.started(now)
        decision = policy.exited(now + 0.2)
        decisions.append(decision)
        now = decision.at if isinstance(decision, Restart) else now
    assert [d.delay for d in decisions[:4] if isinstance(d, Restart)] == [1, 2, 4, 8]
    assert decisions[4] == GiveUp(5)
    assert policy.startup_failures == 5


def test_once_it_has_run_a_child_is_restarted_for_ever():
    policy = RestartPolicy(BackoffSettings(give_up_after=2))
    crash_loop(policy, 1)  # got ready once
    delays = crash_loop(policy, 10, start=10.0, ready=False)
    assert delays == [2, 4, 8, 16, 30, 30, 30, 30, 30, 30]
    assert policy.startup_failures == 10


def test_getting_ready_clears_the_start_up_failures():
    policy = RestartPolicy(BackoffSettings(give_up_after=3))
    crash_loop(policy, 2, ready=False)
    assert policy.startup_failures == 2
    crash_loop(policy, 1, start=50.0)
    assert policy.startup_failures == 0


def test_settings_are_honoured():
    policy = RestartPolicy(BackoffSettings(initial=0.25, maximum=1.0))
    assert crash_loop(policy, 5) == [0.25, 0.5, 1.0, 1.0, 1.0]
