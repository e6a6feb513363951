"""The asyncio check engine (`checkers.engine`) with injected probes: no network."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import pytest

from checkers import engine as engine_module
from checkers.engine import CheckEngine, probe_limit
from checkers.probe import ProbeContext, ProbeResult
from checkers.schedule import Event, EventKind
from checkers.spec import CheckerSpec, HttpGetCheck, MiscCheck, TcpCheck, Url

FAST = dict(delay_loop=0.05, warmup=0.0, delay_before_retry=0.02, connect_timeout=0.1)


def tcp(port: int = 80, **kw) -> TcpCheck:
    return TcpCheck(connect_port=port, **{**FAST, **kw})


class FakeProbes:
    """A probe whose outcome per connect_port the test sets: "ok", "fail", "hang",
    "raise"; records every start."""

    def __init__(self) -> None:
        self.mode: dict[int, str] = {}
        self.starts: list[tuple[int, float]] = []
        self.running = 0
        self.most_running = 0
        self.cancelled = 0
        self.delay = 0.0

    async def __call__(self, spec: CheckerSpec, context: ProbeContext) -> ProbeResult:
        port = spec.connect_port
        self.starts.append((port, time.monotonic()))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            mode = self.mode.get(port, "ok")
            if self.delay:
                await asyncio.sleep(self.delay)
            if mode == "hang":
                await asyncio.Event().wait()
            if mode == "raise":
                raise RuntimeError("probe bug")
            if mode == "fail":
                return ProbeResult(False, f"connection refused on {port}", 0.001)
            return ProbeResult(True, f"connected to {port}", 0.001)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1

    def count(self, port: int) -> int:
        return sum(1 for p, _ in self.starts if p == port)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Event]] = []

    def __call__(self, key: str, event: Event) -> None:
        self.events.append((key, event))

    def of(self, key: str, *kinds: EventKind) -> list[Event]:
        return [e for k, e in self.events if k == key and (not kinds or e.kind in kinds)]


async def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def make(probes: FakeProbes, recorder: Recorder | None = None, **kw) -> CheckEngine:
    return CheckEngine(probe=probes, on_event=recorder, random=random.Random(3).random, **kw)


async def test_probes_every_checker_on_its_delay_loop():
    probes = FakeProbes()
    engine = make(probes)
    engine.start({"a": [tcp(1)], "b": [tcp(2), tcp(3, delay_loop=0.1)]})
    await asyncio.sleep(0.52)
    await engine.stop()
    # 0.5 s at 0.05 s (jitter 10%) and 0.1 s
    assert 9 <= probes.count(1) <= 12 and 9 <= probes.count(2) <= 12
    assert 5 <= probes.count(3) <= 6


async def test_down_after_retries_and_back_up_with_reasons_and_wall_clock_times():
    probes, recorder = FakeProbes(), Recorder()
    engine = make(probes, recorder)
    engine.start({"rs1": [tcp(1, retry=2)]})
    await wait_for(lambda: probes.count(1) >= 2)
    failed_at = time.time()
    probes.mode[1] = "fail"
    await wait_for(lambda: recorder.of("rs1", EventKind.SERVER_DOWN))
    [down] = recorder.of("rs1", EventKind.SERVER_DOWN)
    assert down.reason == "connection refused on 1" and down.check == "TCP_CHECK"
    assert len(recorder.of("rs1", EventKind.RETRY)) == 2
    # at most one delay_loop, then two retries (plus jitter and scheduling slack)
    assert failed_at <= down.at <= failed_at + 0.055 + 2 * 0.022 + 0.1
    assert not engine.status("rs1").up
    probes.mode[1] = "ok"
    await wait_for(lambda: recorder.of("rs1", EventKind.SERVER_UP))
    assert engine.status("rs1").up
    await engine.stop()


async def test_alpha_server_is_reported_down_at_start_then_up():
    probes, recorder = FakeProbes(), Recorder()
    engine = make(probes, recorder)
    engine.start({"rs": [tcp(1, alpha=True)]})
    assert [e.kind for e in recorder.of("rs")] == [EventKind.SERVER_DOWN]
    await wait_for(lambda: recorder.of("rs", EventKind.SERVER_UP))
    await engine.stop()


async def test_snapshot_shows_state_reason_latency_and_times():
    probes = FakeProbes()
    engine = make(probes)
    before = time.time()
    engine.start({"x": [tcp(7, retry=0)], "y": [tcp(8)]})
    probes.mode[7] = "fail"
    await wait_for(lambda: not engine.status("x").up)
    snap = engine.snapshot()
    await engine.stop()
    assert set(snap) == {"x", "y"}
    x, y = snap["x"], snap["y"]
    assert (x.up, x.reason) == (False, "connection refused on 7")
    assert y.up and y.weight is None
    [checker] = x.checkers
    assert checker.kind == "TCP_CHECK" and checker.ok is False and checker.latency == 0.001
    assert before <= checker.last_check <= time.time()
    assert before <= x.since <= time.time() and x.last_check == checker.last_check


async def test_a_hanging_probe_does_not_stall_the_others_and_is_stopped(monkeypatch):
    monkeypatch.setattr(engine_module, "WATCHDOG_GRACE", 0.2)
    monkeypatch.setattr(engine_module, "WATCHDOG_INTERVAL", 0.05)
    probes, recorder = FakeProbes(), Recorder()
    probes.mode[9] = "hang"
    engine = make(probes, recorder)
    engine.start({"stuck": [tcp(9, retry=0)], "fine": [tcp(1)]})
    assert probe_limit(tcp(9)) == pytest.approx(0.4)
    await asyncio.sleep(0.7)
    stats = engine.stats()
    await engine.stop()
    assert probes.count(1) >= 12  # kept its rhythm meanwhile
    [down] = recorder.of("stuck", EventKind.SERVER_DOWN)
    assert "did not finish" in down.reason
    assert stats.overdue >= 1 and stats.lateness_max < 0.1


async def test_a_probe_that_raises_is_a_failed_check():
    probes, recorder = FakeProbes(), Recorder()
    probes.mode[5] = "raise"
    engine = make(probes, recorder)
    engine.start({"bug": [tcp(5, retry=0)]})
    await wait_for(lambda: recorder.of("bug", EventKind.SERVER_DOWN))
    await engine.stop()
    assert "probe bug" in recorder.of("bug", EventKind.SERVER_DOWN)[0].reason


async def test_a_failing_event_consumer_does_not_stop_the_checks():
    probes = FakeProbes()

    def broken(key: str, event: Event) -> None:
        raise ValueError("consumer bug")

    probes.mode[1] = "fail"
    engine = CheckEngine(probe=probes, on_event=broken)
    engine.start({"a": [tcp(1, retry=0)]})
    await asyncio.sleep(0.2)
    await engine.stop()
    assert probes.count(1) >= 3


async def test_concurrency_is_bounded():
    probes = FakeProbes()
    probes.delay = 0.03
    engine = make(probes, max_concurrency=3)
    engine.start({f"s{i}": [tcp(i)] for i in range(20)})
    await asyncio.sleep(0.15)
    stats = engine.stats()
    await engine.stop()
    assert probes.most_running == 3
    assert stats.in_flight <= 3 and stats.lateness_max > 0.03  # they had to wait


async def test_update_keeps_the_state_of_unchanged_servers():
    probes, recorder = FakeProbes(), Recorder()
    probes.mode[1] = "fail"
    engine = make(probes, recorder)
    engine.start({"down": [tcp(1, retry=0)], "gone": [tcp(2)], "changed": [tcp(3)]})
    await wait_for(lambda: recorder.of("down", EventKind.SERVER_DOWN))
    probes_before = engine.status("down").checkers[0].probes
    engine.update({"down": [tcp(1, retry=0, origin="new.conf:1:1")],
                   "changed": [tcp(3, delay_loop=0.06)], "new": [tcp(4, alpha=True)]})
    assert set(engine.snapshot()) == {"down", "changed", "new"}
    # still down, no fresh "down" event, its counters go on
    assert not engine.status("down").up
    assert len(recorder.of("down", EventKind.SERVER_DOWN)) == 1
    assert engine.status("down").checkers[0].probes >= probes_before
    assert [e.kind for e in recorder.of("new")] == [EventKind.SERVER_DOWN]
    count2 = probes.count(2)
    await wait_for(lambda: recorder.of("new", EventKind.SERVER_UP))
    await asyncio.sleep(0.1)
    await engine.stop()
    assert probes.count(2) == count2  # removed: no more probes


async def test_update_with_a_new_context_applies_it_to_the_next_probes():
    seen: list[str | None] = []

    async def probe(spec: CheckerSpec, context: ProbeContext) -> ProbeResult:
        seen.append(context.script_user)
        return ProbeResult(True, "ok", 0.001)

    engine = CheckEngine(probe=probe, context=ProbeContext(script_user="before"))
    engine.start({"a": [tcp(1)]})
    await wait_for(lambda: "before" in seen)
    engine.update({"a": [tcp(1)]}, ProbeContext(script_user="after"))
    await wait_for(lambda: "after" in seen)
    await engine.stop()
    assert seen[seen.index("after"):] == ["after"] * (len(seen) - seen.index("after"))


async def test_update_cancels_the_running_probe_of_a_removed_server():
    probes = FakeProbes()
    probes.mode[9] = "hang"
    engine = make(probes)
    engine.start({"stuck": [tcp(9)]})
    await wait_for(lambda: probes.running == 1)
    engine.update({})
    await wait_for(lambda: probes.cancelled == 1)
    assert engine.stats().in_flight == 0 and engine.snapshot() == {}
    await engine.stop()


async def test_stop_cancels_probes_and_leaves_no_task():
    probes = FakeProbes()
    probes.mode.update({1: "hang", 2: "hang"})
    engine = make(probes)
    engine.start({"a": [tcp(1)], "b": [tcp(2)], "c": [tcp(3)]})
    await wait_for(lambda: probes.running == 2)
    await engine.stop()
    assert probes.cancelled == 2 and probes.running == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}
    count = len(probes.starts)
    await asyncio.sleep(0.1)
    assert len(probes.starts) == count


async def test_dynamic_weight_is_reported():
    async def weighted(spec, context):
        return ProbeResult(True, "exit status 12", 0.001, weight=10)

    recorder = Recorder()
    engine = CheckEngine(probe=weighted, on_event=recorder)
    misc = MiscCheck(misc_path=("/x",), misc_dynamic=True, **{
        k: v for k, v in FAST.items() if k != "connect_timeout"})
    engine.start({"m": [misc]})
    await wait_for(lambda: recorder.of("m", EventKind.WEIGHT))
    await engine.stop()
    assert recorder.of("m", EventKind.WEIGHT)[0].weight == 10


def test_probe_limits_follow_the_checks_own_limits():
    assert probe_limit(TcpCheck(connect_timeout=3.0)) == 2 * 3.0 + engine_module.WATCHDOG_GRACE
    http = HttpGetCheck(connect_timeout=2.0, urls=(Url(path="/a"), Url(path="/b")))
    assert probe_limit(http) == 2 * 4.0 + engine_module.WATCHDOG_GRACE
    assert probe_limit(MiscCheck(misc_timeout=7.0)) == 14.0 + engine_module.WATCHDOG_GRACE


async def test_engine_must_be_started_before_update():
    engine = CheckEngine(probe=FakeProbes())
    with pytest.raises(RuntimeError):
        engine.update({})
    engine.start({})
    with pytest.raises(RuntimeError):
        engine.start({})
    await engine.stop()
