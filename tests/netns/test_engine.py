"""The check engine against real servers on loopback: an aiohttp server that stops and
starts again, a TCP port that closes, a server that never answers, and a clean stop.

The probes are the real ones: `checkers.probe.run_probe` (checkers.tcp, checkers.http)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import time
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from checkers.engine import CheckEngine
from checkers.probe import run_probe
from checkers.schedule import Event, EventKind
from checkers.spec import HttpGetCheck, TcpCheck, Url

HOST = "127.0.0.1"
LOOPBACK = ipaddress.IPv4Address(HOST)
# Short timers so that each test takes seconds.
DELAY_LOOP, RETRY, DELAY_BEFORE_RETRY, CONNECT_TIMEOUT = 0.4, 2, 0.3, 1.0
SLACK = 0.5  # scheduling and jitter (10% of each interval) on a busy machine


def timing(**kw) -> dict:
    return {"delay_loop": DELAY_LOOP, "retry": RETRY, "delay_before_retry": DELAY_BEFORE_RETRY,
            "connect_timeout": CONNECT_TIMEOUT, "warmup": 0.0, **kw}


def http_check(port: int, **kw) -> HttpGetCheck:
    return HttpGetCheck(connect_ip=LOOPBACK, connect_port=port, urls=(Url(path="/health"),),
                        **timing(**kw))


def tcp_check(port: int, **kw) -> TcpCheck:
    return TcpCheck(connect_ip=LOOPBACK, connect_port=port, **timing(**kw))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Event]] = []
        self.changed = asyncio.Event()

    def __call__(self, key: str, event: Event) -> None:
        self.seen.append((key, event))
        self.changed.set()

    def of(self, key: str, kind: EventKind) -> list[Event]:
        return [e for k, e in self.seen if k == key and e.kind is kind]

    async def wait(self, key: str, kind: EventKind, count: int = 1,
                   timeout: float = 15.0) -> Event:
        async with asyncio.timeout(timeout):
            while len(self.of(key, kind)) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.of(key, kind)[count - 1]


class HealthServer:
    """An aiohttp server answering /health with 200, which the test stops and starts."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def health(request: web.Request) -> web.Response:
            return web.Response(text="ok\n")

        app = web.Application()
        app.router.add_get("/health", health)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, HOST, self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def engine_factory() -> AsyncIterator[Callable[..., CheckEngine]]:
    engines: list[CheckEngine] = []

    def make(**kw) -> CheckEngine:
        engine = CheckEngine(probe=run_probe, **kw)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.stop()


def down_bound() -> float:
    """From a failure to the down event, for a failure seen at once (refused): up to a
    delay_loop to the next probe, then `retry` retries delay_before_retry apart, each
    within connect_timeout."""
    return (DELAY_LOOP + RETRY * DELAY_BEFORE_RETRY + CONNECT_TIMEOUT) * 1.1 + SLACK


async def test_http_server_going_down_and_coming_back(engine_factory):
    port = free_port()
    server = HealthServer(port)
    await server.start()
    events = Events()
    engine = engine_factory(on_event=events)
    try:
        engine.start({"web": [http_check(port)]})
        await asyncio.sleep(DELAY_LOOP * 2)
        assert engine.status("web").up and engine.status("web").checkers[0].probes >= 1
        await server.stop()
        stopped = time.time()
        down = await events.wait("web", EventKind.SERVER_DOWN)
        assert stopped < down.at <= stopped + down_bound()
        assert "refused" in down.reason and down.check == "HTTP_GET"
        assert len(events.of("web", EventKind.RETRY)) == RETRY
        status = engine.status("web")
        assert not status.up and status.reason == down.reason
        await server.start()
        restarted = time.time()
        up = await events.wait("web", EventKind.SERVER_UP)
        assert restarted < up.at <= restarted + DELAY_LOOP * 1.1 + CONNECT_TIMEOUT + SLACK
        assert engine.status("web").up
    finally:
        await server.stop()


async def test_tcp_port_that_closes_and_reopens(engine_factory):
    port = free_port()
    listener = socket.create_server((HOST, port), reuse_port=False)
    events = Events()
    engine = engine_factory(on_event=events)
    engine.start({"tcp": [tcp_check(port)]})
    try:
        await asyncio.sleep(DELAY_LOOP * 2)
        assert engine.status("tcp").up
        listener.close()
        closed = time.time()
        down = await events.wait("tcp", EventKind.SERVER_DOWN)
        assert closed < down.at <= closed + down_bound()
        assert "refused" in down.reason
        listener = socket.create_server((HOST, port))
        reopened = time.time()
        up = await events.wait("tcp", EventKind.SERVER_UP)
        assert reopened < up.at <= reopened + DELAY_LOOP * 1.1 + CONNECT_TIMEOUT + SLACK
    finally:
        listener.close()


@contextlib.contextmanager
def blackhole():
    """A port where connections hang: a listener that never accepts, its one-slot
    backlog already full, so further SYNs are dropped."""
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(0)
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    try:
        yield listener.getsockname()[1]
    finally:
        for sock in [*fillers, listener]:
            sock.close()


@contextlib.contextmanager
def silent_server():
    """A port that accepts connections and never says anything."""
    listener = socket.create_server((HOST, 0))
    listener.setblocking(False)
    accepted: list[socket.socket] = []
    loop = asyncio.get_running_loop()

    def accept() -> None:
        with contextlib.suppress(BlockingIOError):
            accepted.append(listener.accept()[0])

    loop.add_reader(listener.fileno(), accept)
    try:
        yield listener.getsockname()[1]
    finally:
        loop.remove_reader(listener.fileno())
        for sock in [*accepted, listener]:
            sock.close()


async def test_hanging_servers_do_not_stall_the_engine(engine_factory):
    port = free_port()
    server = HealthServer(port)
    await server.start()
    events = Events()
    engine = engine_factory(on_event=events)
    try:
        with blackhole() as hole, silent_server() as silent:
            engine.start({"healthy": [http_check(port)], "hole": [tcp_check(hole, retry=0)],
                          "silent": [http_check(silent, retry=0)]})
            started = time.time()
            hole_down = await events.wait("hole", EventKind.SERVER_DOWN)
            silent_down = await events.wait("silent", EventKind.SERVER_DOWN)
            assert "timeout" in hole_down.reason
            assert "deadline" in silent_down.reason or "timeout" in silent_down.reason
            for event in (hole_down, silent_down):
                assert event.at - started <= CONNECT_TIMEOUT + SLACK
            await asyncio.sleep(2 * CONNECT_TIMEOUT)
            healthy = engine.status("healthy")
            elapsed = time.time() - started
            # the healthy server kept its rhythm all along
            assert healthy.up and healthy.checkers[0].probes >= elapsed / (DELAY_LOOP * 1.1) - 1
            stats = engine.stats()
            assert stats.lateness_max < CONNECT_TIMEOUT / 4, stats  # a stall would be a timeout
    finally:
        await server.stop()


def describe_fds(fds: set[str]) -> list[str]:
    out = []
    for fd in sorted(fds):
        with contextlib.suppress(OSError):
            out.append(f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
    return out


async def test_stop_closes_every_probe_socket(engine_factory):
    before = open_fds()
    port = free_port()
    server = HealthServer(port)
    await server.start()
    try:
        with blackhole() as hole, silent_server() as silent:
            engine = engine_factory()
            engine.start({
                **{f"web{i}": [http_check(port)] for i in range(20)},
                **{f"hole{i}": [tcp_check(hole, connect_timeout=30.0)] for i in range(20)},
                **{f"silent{i}": [http_check(silent, connect_timeout=30.0)] for i in range(20)},
            })
            await asyncio.sleep(0.5)
            assert engine.stats().in_flight >= 20  # the hanging probes hold sockets
            await engine.stop()
            assert engine.stats().in_flight == 0
            assert asyncio.all_tasks() == {asyncio.current_task()}
    finally:
        await server.stop()
    # the test's own servers are closed too now: every descriptor is back as it was
    async with asyncio.timeout(5):
        while open_fds() - before:
            await asyncio.sleep(0.02)
    assert describe_fds(open_fds() - before) == []
