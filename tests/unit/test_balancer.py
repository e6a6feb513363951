"""The balancer: config + checker verdicts -> the IPVS table, live, on a MemoryBackend
with a fake probe (each real server's health is a switch the test flips)."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import textwrap
from dataclasses import replace
from ipaddress import ip_address

import pytest

from checkers.probe import ProbeResult
from director import balancer as balancer_module
from director import state_files
from director.balancer import Balancer, describe_operation
from director.config.load import load_config
from director.config.model import Config
from director.ipvs.backend import IpvsError
from director.ipvs.memory import MemoryBackend
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
    Timeouts,
)
from director.pool import RealServerId

VIP = "192.0.2.10"
TCP80 = ServiceKey(socket.AF_INET, Protocol.TCP, ip_address(VIP), 80)
TCP443 = ServiceKey(socket.AF_INET, Protocol.TCP, ip_address(VIP), 443)
FOREIGN = ServiceKey(socket.AF_INET, Protocol.TCP, ip_address("192.0.2.99"), 25)
VS80 = f"[{VIP}]:TCP:80"
TICK = 0.05  # the fake checkers' delay_loop


def rsk(last: int, port: int = 80) -> DestinationKey:
    return DestinationKey(ip_address(f"198.51.100.{last}"), port)


def rsid(last: int, vs: str = VS80, port: int = 80) -> RealServerId:
    return RealServerId(vs, f"198.51.100.{last}", port)


def real_server(last: int, weight: int = 1, extra: str = "", port: int = 80) -> str:
    return f"""
    real_server 198.51.100.{last} {port} {{
        weight {weight}
        {extra}
        TCP_CHECK {{
            connect_timeout 1
            retry 0
        }}
    }}"""


def virtual_server(*servers: str, port: int = 80, sched: str = "wrr", extra: str = "") -> str:
    return (f"virtual_server {VIP} {port} {{\n    delay_loop 1\n    lb_algo {sched}\n"
            f"    lb_kind DR\n    protocol TCP\n    {extra}\n" + "".join(servers) + "\n}\n")


def fast(config: Config) -> Config:
    """The same configuration with checkers that probe every TICK seconds, at once."""
    def speed(spec):
        return replace(spec, delay_loop=TICK, warmup=0.0, delay_before_retry=TICK)

    vss = tuple(replace(vs, real_servers=tuple(
        replace(rs, checkers=tuple(speed(c) for c in rs.checkers)) for rs in vs.real_servers))
        for vs in config.virtual_servers)
    return replace(config, virtual_servers=vss)


def load(tmp_path, text: str, name: str = "keepalived.conf") -> Config:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    config, _ = load_config(str(path))
    return fast(config)


class Health:
    """The fake probe: a real server is up unless its address is in `down`."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.probes = 0

    async def __call__(self, spec, context) -> ProbeResult:
        self.probes += 1
        address = str(spec.connect_ip)
        if address in self.down:
            return ProbeResult(False, "connection refused", 0.001)
        return ProbeResult(True, "connected", 0.001)


class Scripts:
    def __init__(self) -> None:
        self.launched: list[str] = []
        self.closed = False

    def launch(self, script, *args: str) -> None:
        self.launched.append(script.command)

    async def close(self) -> None:
        self.closed = True


class CountingBackend(MemoryBackend):
    def __init__(self, *args, **kw) -> None:
        self.attempts: list[Operation] = []
        self.set: list[Timeouts] = []
        super().__init__(*args, **kw)
        self.attempts.clear()

    def apply(self, op: Operation) -> None:
        self.attempts.append(op)
        super().apply(op)

    def set_timeouts(self, timeouts: Timeouts) -> None:
        self.set.append(timeouts)


async def until(condition, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def weights(backend: MemoryBackend, key: ServiceKey = TCP80) -> dict[DestinationKey, int]:
    service = backend.dump().get(key)
    return {} if service is None else {d: s.weight for d, s in service.destinations.items()}


@pytest.fixture
def probe() -> Health:
    return Health()


@pytest.fixture
def scripts() -> Scripts:
    return Scripts()


@pytest.fixture(autouse=True)
def quick(monkeypatch) -> None:
    monkeypatch.setattr(balancer_module, "DRAIN_POLL_INTERVAL", 0.05)
    monkeypatch.setattr(balancer_module, "RAMP_INTERVAL", 0.05)
    monkeypatch.setattr(balancer_module, "PROVISIONAL_INTERVAL", 0.02)


def make(config, backend, tmp_path, probe, scripts, **kw) -> Balancer:
    return Balancer(config, backend, str(tmp_path / "state"), probe=probe, scripts=scripts,
                    jitter=0.0, **kw)


# ---------------------------------------------------------------- up and down


async def test_servers_follow_their_checks(tmp_path, probe, scripts, caplog):
    caplog.set_level(logging.INFO, "director.balancer")
    config = load(tmp_path, virtual_server(
        real_server(11, 3, 'notify_up "/bin/up 11"\n notify_down "/bin/down 11"'),
        real_server(12, 1)))
    backend = MemoryBackend()
    b = make(config, backend, tmp_path, probe, scripts)
    await b.start()
    try:
        assert weights(backend) == {rsk(11): 3, rsk(12): 1}
        probe.down.add("198.51.100.11")
        await until(lambda: rsk(11) not in weights(backend))
        assert weights(backend) == {rsk(12): 1}
        assert scripts.launched == ["/bin/down 11"]
        probe.down.clear()
        await until(lambda: weights(backend).get(rsk(11)) == 3)
        assert scripts.launched == ["/bin/down 11", "/bin/up 11"]
    finally:
        await b.stop()
    text = caplog.text
    assert "real server 198.51.100.11:80 of [192.0.2.10]:TCP:80 is DOWN: TCP_CHECK " \
           "connection refused" in text
    assert "ipvs: delete real server 198.51.100.11:80 from TCP 192.0.2.10:80" in text
    assert "ipvs: add real server 198.51.100.11:80 to TCP 192.0.2.10:80: weight 3 DR" in text
    assert backend.dump() == {}
    assert scripts.closed


async def test_inhibit_on_failure_keeps_a_failed_server_at_weight_zero(tmp_path, probe,
                                                                     scripts):
    config = load(tmp_path, virtual_server(real_server(11, 2, "inhibit_on_failure"),
                                           real_server(12)))
    backend = MemoryBackend()
    b = make(config, backend, tmp_path, probe, scripts)
    await b.start()
    try:
        probe.down.add("198.51.100.11")
        await until(lambda: weights(backend).get(rsk(11)) == 0)
        probe.down.clear()
        await until(lambda: weights(backend).get(rsk(11)) == 2)
    finally:
        await b.stop()


async def test_alpha_servers_wait_for_their_first_check(tmp_path, probe, scripts):
    config = load(tmp_path, virtual_server(real_server(11, 1, "alpha")))
    backend = CountingBackend()
    probe.down.add("198.51.100.11")
    b = make(config, backend, tmp_path, probe, scripts)
    await b.start()
    try:
        assert weights(backend) == {}
        await until(lambda: probe.probes >= 2)
        assert weights(backend) == {}
        probe.down.clear()
        await until(lambda: weights(backend) == {rsk(11): 1})
    finally:
        await b.stop()


async def test_bursts_are_coalesced_into_one_pass(tmp_path, probe, scripts):
    servers = [real_server(n) for n in range(11, 31)]
    config = load(tmp_path, virtual_server(*servers))
    backend = CountingBackend()
    b = make(config, backend, tmp_path, probe, scripts)
    await b.start()
    try:
        passes = []
        original = b._pass

        async def counted():
            passes.append(1)
            await original()

        b._pass = counted
        probe.down.update(f"198.51.100.{n}" for n in range(11, 31))
        await until(lambda: weights(backend) == {})
        await asyncio.sleep(3 * TICK)
        # 20 servers went down; they are probed in step, so a few passes at most
        assert len(passes) <= 4
    finally:
        await b.stop()


# ---------------------------------------------------------------- quorum and sorry server


async def test_quorum_loss_puts_the_sorry_server_in(tmp_path, probe, scripts, caplog):
    caplog.set_level(logging.INFO, "director.balancer")
    config = load(tmp_path, virtual_server(
        real_server(11), real_server(12),
        extra='quorum 2\n sorry_server 203.0.113.5 80\n quorum_up "/bin/qup"\n '
              'quorum_down "/bin/qdown"'))
    backend = MemoryBackend()
    b = make(config, backend, tmp_path, probe, scripts)
    await b.start()
    sorry = DestinationKey(ip_address("203.0.113.5"), 80)
    try:
        assert weights(backend) == {rsk(11): 1, rsk(12): 1}
        probe.down.add("198.51.100.11")
        await until(lambda: weights(backend) == {sorry: 1})
        assert scripts.launched == ["/bin/qdown"]

        def quorum_in_status() -> tuple[bool, bool]:
            [vs] = state_files.read_status(str(tmp_path / "state"))["virtual_servers"]
            return vs["quorum_up"], vs["sorry_active"]

        # status.json is written from a thread, just after the pass
        await until(lambda: quorum_in_status() == (False, True))
        probe.down.clear()
        await until(lambda: weights(backend) == {rsk(11): 1, rsk(12): 1})
        assert scripts.launched == ["/bin/qdown", "/bin/qup"]
    finally:
        await b.stop()
    assert "quorum of [192.0.2.10]:TCP:80 lost: weight 1 < 2" in caplog.text
    assert "sorry server of [192.0.2.10]:TCP:80 put into service" in caplog.text


async def test_omega_runs_the_shutdown_scripts_unless_the_table_is_kept(tmp_path, probe,
                                                                      scripts):
    text = virtual_server(real_server(11, 1, 'notify_down "/bin/down 11"'),
                          extra='omega\n quorum_down "/bin/qdown"')
    config = load(tmp_path, text)
    b = make(config, MemoryBackend(), tmp_path, probe, scripts)
    await b.start()
    await b.stop()
    assert sorted(scripts.launched) == ["/bin/down 11", "/bin/qdown"]
    kept = Scripts()
    b = make(config, MemoryBackend(), tmp_path, probe, kept)
    await b.start()
    await b.stop(keep_table=True)
    assert kept.launched == []


# ---------------------------------------------------------------- drains


async def test_a_drain_applies_at_once_and_survives_a_reload(tmp_path, probe, scripts):
    config = load(tmp_path, virtual_server(real_server(11, 5), real_server(12, 5)))
    backend = MemoryBackend()
    state = str(tmp_path / "state")
    b = make(config, backend, tmp_path, probe, scripts)
    await b.start()
    try:
        state_files.write_drains(state, [rsid(11)])
        await until(lambda: weights(backend) == {rsk(11): 0, rsk(12): 5})
        await b.reload(config)
        await asyncio.sleep(3 * TICK)
        assert weights(backend) == {rsk(11): 0, rsk(12): 5}
        await until(lambda: state_files.read_status(state)["virtual_servers"][0]
                    ["real_servers"][0]["drained"])
        state_files.write_drains(state, [])
        await until(lambda: weights(backend) == {rsk(11): 5, rsk(12): 5})
    finally:
        await b.stop()


async def test_a_broken_drains_file_keeps_the_drains(tmp_path, probe, scripts, caplog):
    config = load(tmp_path, virtual_server(real_server(11, 5), real_server(12, 5)))
    backend = MemoryBackend()
    state = tmp_path / "state"
    state_files.write_drains(str(state), [rsid(11)])
    b = make(config, backend, tmp_path, probe, scripts)
    await b.start()
    try:
        assert weights(backend) == {rsk(11): 0, rsk(12): 5}
        (state / "drains.json").write_text("{not json")
        await until(lambda: "keeping the drains as they were" in caplog.text)
        assert weights(backend) == {rsk(11): 0, rsk(12): 5}
        await asyncio.sleep(0.2)
        assert caplog.text.count("keeping the drains as they were") == 1
    finally:
        await b.stop()


# ---------------------------------------------------------------- reload


async def test_reload_keeps_health_and_changes_only_the_difference(tmp_path, probe, scripts):
    text = virtual_server(real_server(11), real_server(12, 2)) + \
        virtual_server(real_server(21), port=443, sched="rr")
    config = load(tmp_path, text)
    backend = CountingBackend()
    b = make(config, backend, tmp_path, probe, scripts)
    await b.start()
    try:
        probe.down.add("198.51.100.11")
        await until(lambda: rsk(11) not in weights(backend))
        probes = probe.probes
        backend.attempts.clear()
        # 12's weight changes, 443 goes, 8080 comes; 11 is still down (its checker kept)
        changed = virtual_server(real_server(11), real_server(12, 7)) + \
            virtual_server(real_server(31, port=8080), port=8080)
        await b.reload(load(tmp_path, changed, "new.conf"))
        await until(lambda: len(backend.dump()) == 2 and TCP443 not in backend.dump())
        kinds = sorted((op.kind, str(op.service)) for op in backend.attempts)
        assert kinds == sorted([
            (OperationKind.EDIT_DESTINATION, "TCP 192.0.2.10:80"),
            (OperationKind.ADD_SERVICE, "TCP 192.0.2.10:8080"),
            (OperationKind.ADD_DESTINATION, "TCP 192.0.2.10:8080"),
            (OperationKind.DELETE_SERVICE, "TCP 192.0.2.10:443")])
        assert weights(backend) == {rsk(12): 7}
        assert b.health[rsid(11)].up is False
        await until(lambda: probe.probes > probes)  # its checker goes on
        assert b.health[rsid(11)].up is False
        owned = state_files.read_owned(str(tmp_path / "state"))
        assert {str(k) for k in owned} == {"TCP 192.0.2.10:80", "TCP 192.0.2.10:8080"}
    finally:
        await b.stop()
    assert backend.dump() == {}


async def test_reload_with_a_new_quorum_reconfigures_the_state(tmp_path, probe, scripts):
    config = load(tmp_path, virtual_server(real_server(11, 2), real_server(12, 2),
                                           extra="sorry_server 203.0.113.5 80"))
    backend = MemoryBackend()
    b = make(config, backend, tmp_path, probe, scripts)
    probe.down.add("198.51.100.12")
    await b.start()
    try:
        await until(lambda: weights(backend) == {rsk(11): 2})
        assert b.quorum[VS80].up
        higher = load(tmp_path, virtual_server(real_server(11, 2), real_server(12, 2),
                                               extra="quorum 3\n sorry_server 203.0.113.5 80"),
                      "new.conf")
        await b.reload(higher)
        sorry = DestinationKey(ip_address("203.0.113.5"), 80)
        await until(lambda: weights(backend) == {sorry: 1})
        assert not b.quorum[VS80].up
    finally:
        await b.stop()


async def test_an_equal_config_from_other_lines_gives_its_origins(tmp_path, probe, scripts):
    """A reload whose virtual servers only moved (or the origins a reload moves after
    it applied the change): nothing changes but where messages say things were."""
    text = virtual_server(real_server(11, 2), extra="quorum_up /bin/true")
    b = make(load(tmp_path, text), MemoryBackend(), tmp_path, probe, scripts)
    await b.start()
    try:
        moved = load(tmp_path, "\n\n" + text, "moved.conf")
        assert await b.reload(moved, announce=False) == 0
        state = b.quorum[VS80]
        assert state.quorum_up is not None
        assert state.quorum_up.origin == moved.virtual_servers[0].quorum_up.origin
        assert "moved.conf:" in state.quorum_up.origin
    finally:
        await b.stop()


# ---------------------------------------------------------------- adopting the kernel's table


def _service(*dests: tuple[int, int], scheduler: str = "wrr") -> Service:
    return Service(ServiceSettings(scheduler=scheduler),
                   {rsk(last): DestinationSettings(Forwarding.DR, weight)
                    for last, weight in dests})


async def test_start_adopts_and_leaves_foreign_services_alone(tmp_path, probe, scripts):
    state = str(tmp_path / "state")
    stale = ServiceKey(socket.AF_INET, Protocol.TCP, ip_address(VIP), 21)
    state_files.write_owned(state, [stale, TCP80])
    backend = CountingBackend({TCP80: _service((11, 1), (12, 9)),
                               FOREIGN: _service((50, 1), scheduler="rr"),
                               stale: _service((11, 1))})
    config = load(tmp_path, virtual_server(real_server(11), real_server(12, 2)))
    b = make(config, backend, tmp_path, probe, scripts)
    await b.start()
    try:
        assert [(op.kind, op.service) for op in backend.attempts] == [
            (OperationKind.EDIT_DESTINATION, TCP80), (OperationKind.DELETE_SERVICE, stale)]
        assert backend.dump()[FOREIGN] == _service((50, 1), scheduler="rr")
        assert state_files.read_owned(state) == {TCP80}
    finally:
        await b.stop()
    assert set(backend.dump()) == {FOREIGN}


async def test_a_restart_changes_nothing_that_is_right(tmp_path, probe, scripts):
    config = load(tmp_path, virtual_server(real_server(11, 1, "alpha"), real_server(12)))
    backend = CountingBackend()
    first = make(config, backend, tmp_path, probe, scripts)
    await first.start()
    await until(lambda: weights(backend) == {rsk(11): 1, rsk(12): 1})
    await first.stop(keep_table=True)
    assert weights(backend) == {rsk(11): 1, rsk(12): 1}
    backend.attempts.clear()
    second = make(config, backend, tmp_path, probe, scripts)
    await second.start()
    try:
        # the alpha server is served already: it is not taken out until checked
        assert backend.attempts == []
        await until(lambda: rsid(11) not in second._provisional)
        await asyncio.sleep(3 * TICK)
        assert backend.attempts == []
    finally:
        await second.stop()


async def test_an_adopted_alpha_server_that_fails_its_first_check_goes(tmp_path, probe,
                                                                       scripts):
    config = load(tmp_path, virtual_server(real_server(11, 1, "alpha"), real_server(12)))
    backend = MemoryBackend({TCP80: _service((11, 1), (12, 1))})
    probe.down.add("198.51.100.11")
    b = make(config, backend, tmp_path, probe, scripts)
    await b.start()
    try:
        assert weights(backend) == {rsk(11): 1, rsk(12): 1}
        await until(lambda: weights(backend) == {rsk(12): 1})
    finally:
        await b.stop()


async def test_lvs_flush_empties_the_table_first(tmp_path, probe, scripts):
    backend = MemoryBackend({FOREIGN: _service((50, 1))})
    config = load(tmp_path, "global_defs {\n lvs_flush\n}\n" +
                  virtual_server(real_server(11)))
    b = make(config, backend, tmp_path, probe, scripts)
    await b.start()
    try:
        assert set(backend.dump()) == {TCP80}
    finally:
        await b.stop()


# ---------------------------------------------------------------- refused operations


async def test_a_refused_service_is_reported_once_and_the_rest_works(tmp_path, probe, scripts,
                                                                    caplog, monkeypatch):
    monkeypatch.setattr(balancer_module, "RETRY_FIRST", 0.2)
    caplog.set_level(logging.INFO, "director.balancer")
    text = virtual_server(real_server(11), sched="wrr") + \
        virtual_server(real_server(21, port=443), port=443, sched="rr")
    config = load(tmp_path, text)
    backend = CountingBackend(schedulers={"rr"})  # no ip_vs_wrr module
    b = make(config, backend, tmp_path, probe, scripts)
    await b.start()
    try:
        assert set(backend.dump()) == {TCP443}
        probe.down.add("198.51.100.21")
        await until(lambda: weights(backend, TCP443) == {})
        probe.down.clear()
        await until(lambda: weights(backend, TCP443) == {rsk(21, 443): 1})
        await asyncio.sleep(0.5)  # at least one retry
        adds = [op for op in backend.attempts
                if op.kind is OperationKind.ADD_SERVICE and op.service == TCP80]
        assert 2 <= len(adds) <= 3  # the first try, then a retry every 0.2 s, 0.4 s, ...
        assert not any(op.service == TCP80 and op.kind is OperationKind.ADD_DESTINATION
                       for op in backend.attempts)
    finally:
        await b.stop()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith("ipvs: cannot add virtual service TCP 192.0.2.10:80: unknown "
                                "scheduler 'wrr'")
    assert f"(virtual_server at {tmp_path}/keepalived.conf:1:1)" in errors[0]


async def test_a_reload_retries_a_refused_operation_at_once(tmp_path, probe, scripts):
    text = virtual_server(real_server(11), sched="wrr")
    config = load(tmp_path, text)
    backend = CountingBackend(schedulers={"rr"})
    b = make(config, backend, tmp_path, probe, scripts)
    await b.start()
    try:
        assert backend.dump() == {}
        backend.schedulers = frozenset({"rr", "wrr"})  # the module got loaded
        await b.reload(config)
        await until(lambda: weights(backend) == {rsk(11): 1})
    finally:
        await b.stop()


class UnreadableBackend(MemoryBackend):
    broken = False

    def dump(self):
        if self.broken:
            raise IpvsError("reading the IPVS table failed: no ip_vs", None, errno.ENOENT)
        return super().dump()


async def test_an_unreadable_table_is_retried_with_backoff(tmp_path, probe, scripts, caplog,
                                                         monkeypatch):
    monkeypatch.setattr(balancer_module, "RETRY_FIRST", 0.1)
    monkeypatch.setattr(balancer_module, "RESYNC_INTERVAL", 0.0)  # read on every pass
    config = load(tmp_path, virtual_server(real_server(11)))
    backend = UnreadableBackend()
    b = make(config, backend, tmp_path, probe, scripts)
    await b.start()
    try:
        backend.broken = True
        probe.down.add("198.51.100.11")
        await until(lambda: "cannot read the IPVS table" in caplog.text)
        backend.broken = False
        await until(lambda: weights(backend) == {})
        assert caplog.text.count("cannot read the IPVS table") == 1
    finally:
        await b.stop()


class ReadCountingBackend(MemoryBackend):
    reads = 0

    def dump(self):
        self.reads += 1
        return super().dump()


async def test_a_pass_trusts_the_table_it_left_and_a_resync_undoes_outside_changes(
        tmp_path, probe, scripts, monkeypatch):
    config = load(tmp_path, virtual_server(real_server(11), real_server(12)))
    backend = ReadCountingBackend()
    b = make(config, backend, tmp_path, probe, scripts)
    await b.start()
    def now() -> dict[DestinationKey, int]:  # read without counting
        service = MemoryBackend.dump(backend).get(TCP80)
        return {} if service is None else {d: x.weight for d, x in service.destinations.items()}

    try:
        reads = backend.reads
        probe.down.add("198.51.100.11")
        await until(lambda: now() == {rsk(12): 1})
        probe.down.clear()
        await until(lambda: now() == {rsk(11): 1, rsk(12): 1})
        assert backend.reads == reads  # two changes, no read of the whole table
        # Someone deletes a real server behind the director's back: the next resync
        # reads the table and puts it back.
        backend.apply(Operation(OperationKind.DELETE_DESTINATION, TCP80, destination=rsk(12)))
        monkeypatch.setattr(b, "_next_resync", 0.0)
        b._wake.set()
        await until(lambda: now() == {rsk(11): 1, rsk(12): 1})
        assert backend.reads > reads
    finally:
        await b.stop()


# ---------------------------------------------------------------- stop, status, timeouts


async def test_stop_removes_only_this_directors_services(tmp_path, probe, scripts):
    backend = MemoryBackend({FOREIGN: _service((50, 1))})
    config = load(tmp_path, virtual_server(real_server(11)))
    b = make(config, backend, tmp_path, probe, scripts)
    await b.start()
    await b.stop()
    assert set(backend.dump()) == {FOREIGN}
    assert state_files.read_owned(str(tmp_path / "state")) == set()


async def test_lvs_flush_on_stop_flushes_everything(tmp_path, probe, scripts):
    backend = MemoryBackend({FOREIGN: _service((50, 1))})
    config = load(tmp_path, "global_defs {\n lvs_flush_on_stop\n}\n" +
                  virtual_server(real_server(11)))
    b = make(config, backend, tmp_path, probe, scripts)
    await b.start()
    await b.stop()
    assert backend.dump() == {}


async def test_stop_keep_table_leaves_everything(tmp_path, probe, scripts):
    backend = MemoryBackend()
    config = load(tmp_path, virtual_server(real_server(11)))
    b = make(config, backend, tmp_path, probe, scripts)
    await b.start()
    await b.stop(keep_table=True)
    assert weights(backend) == {rsk(11): 1}
    assert state_files.read_owned(str(tmp_path / "state")) == {TCP80}
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]


async def test_dry_run_does_not_write_owned(tmp_path, probe, scripts):
    config = load(tmp_path, virtual_server(real_server(11)))
    b = make(config, MemoryBackend(), tmp_path, probe, scripts, dry_run=True)
    await b.start()
    await b.stop()
    assert not (tmp_path / "state" / "owned.json").exists()


async def test_status_json(tmp_path, probe, scripts):
    config = load(tmp_path, virtual_server(real_server(11, 3), real_server(12, 1)))
    b = make(config, MemoryBackend(), tmp_path, probe, scripts, config_path="/etc/k.conf")
    probe.down.add("198.51.100.12")
    await b.start()
    try:
        await until(lambda: not b.health[rsid(12)].up)
        await until(lambda: not state_files.read_status(str(tmp_path / "state"))
                    ["virtual_servers"][0]["real_servers"][1]["up"])
        status = state_files.read_status(str(tmp_path / "state"), max_age=5)
    finally:
        await b.stop()
    assert status["version"] == 1 and status["config"] == "/etc/k.conf"
    [vs] = status["virtual_servers"]
    assert vs["id"] == VS80 and vs["services"] == ["TCP 192.0.2.10:80"]
    up, down = vs["real_servers"]
    assert up["address"] == "198.51.100.11" and up["port"] == 80
    assert (up["up"], up["weight"], up["configured_weight"], up["drained"]) == (True, 3, 3, False)
    assert up["reason"] == "connected" and up["last_check"] and up["latency"] == 0.001
    assert (down["up"], down["weight"], down["reason"]) == (False, 0, "connection refused")


async def test_timeouts_are_set_at_start(tmp_path, probe, scripts):
    config = load(tmp_path, "global_defs {\n lvs_timeouts tcp 7200 udp 60\n}\n" +
                  virtual_server(real_server(11)))
    backend = CountingBackend()
    b = make(config, backend, tmp_path, probe, scripts)
    await b.start()
    await b.reload(config)  # unchanged: not set again
    await b.stop()
    assert backend.set == [Timeouts(tcp=7200, tcp_fin=0, udp=60)]


async def test_a_reload_without_timeouts_puts_the_kernels_own_back(tmp_path, probe, scripts):
    config = load(tmp_path, "global_defs {\n lvs_timeouts tcp 7200 udp 60\n}\n" +
                  virtual_server(real_server(11)))
    backend = MemoryBackend()
    b = make(config, backend, tmp_path, probe, scripts)
    await b.start()
    assert backend.timeouts() == Timeouts(tcp=7200, tcp_fin=120, udp=60)
    await b.reload(load(tmp_path, virtual_server(real_server(11))))
    await b.stop()
    assert backend.timeouts() == Timeouts(tcp=900, tcp_fin=120, udp=300)


async def test_slow_start_ramps_a_returning_server(tmp_path, probe, scripts):
    config = load(tmp_path, virtual_server(real_server(11, 100), real_server(12, 100),
                                           extra="slow_start 1"))
    backend = MemoryBackend()
    b = make(config, backend, tmp_path, probe, scripts)
    await b.start()
    try:
        assert weights(backend) == {rsk(11): 100, rsk(12): 100}  # no ramp at start
        probe.down.add("198.51.100.11")
        await until(lambda: rsk(11) not in weights(backend))
        probe.down.clear()
        await until(lambda: rsk(11) in weights(backend))
        seen = {weights(backend)[rsk(11)]}
        while weights(backend)[rsk(11)] < 100:
            seen.add(weights(backend)[rsk(11)])
            await asyncio.sleep(0.02)
        assert len(seen) >= 4 and min(seen) < 30
        await asyncio.sleep(0.2)
        assert not b._ramping
    finally:
        await b.stop()


def test_describe_operation():
    before = {TCP80: _service((11, 1))}
    op = Operation(OperationKind.EDIT_DESTINATION, TCP80, destination=rsk(11),
                   destination_settings=DestinationSettings(Forwarding.DR, 0))
    assert describe_operation(op, before) == \
        "change real server 198.51.100.11:80 of TCP 192.0.2.10:80: weight 1 -> 0"
    op = Operation(OperationKind.ADD_SERVICE, TCP80, ServiceSettings("sh", frozenset(
        {"sh-port"}), persistence_timeout=300))
    assert describe_operation(op, {}) == \
        "add virtual service TCP 192.0.2.10:80: scheduler sh flags sh-port persistent 300"


async def test_a_sync_daemon_setting_without_an_instance_runs_both_daemons_until_stop(
        tmp_path, probe, scripts):
    config = load(tmp_path, "global_defs {\n lvs_sync_daemon eth1 id 7\n}\n" +
                  virtual_server(real_server(11)))
    backend = MemoryBackend()
    b = make(config, backend, tmp_path, probe, scripts)
    await b.start()
    running = {(d.state.value, d.interface, d.sync_id) for d in backend.sync_daemons()}
    assert running == {("master", "eth1", 7), ("backup", "eth1", 7)}
    await b.stop()
    assert backend.sync_daemons() == []


class DumpCounting(MemoryBackend):
    def __init__(self, *args, **kw) -> None:
        self.dumps = 0
        super().__init__(*args, **kw)

    def dump(self):
        self.dumps += 1
        return super().dump()


async def test_reload_applies_at_once_without_reading_the_kernel_table(tmp_path, probe,
                                                                     scripts, caplog):
    caplog.set_level(logging.INFO, "director.events")
    config = load(tmp_path, virtual_server(real_server(11), real_server(12, 2)) +
                  virtual_server(real_server(21), port=443))
    backend = DumpCounting()
    b = make(config, backend, tmp_path, probe, scripts)
    await b.start()
    try:
        dumps = backend.dumps
        changed = load(tmp_path, virtual_server(real_server(11), real_server(12, 5)) +
                       virtual_server(real_server(21), port=443), "new.conf")
        operations = await b.reload(changed)
        # applied when reload returns: one weight edit, nothing else, no table read
        assert operations == 1
        assert backend.dumps == dumps
        assert weights(backend) == {rsk(11): 1, rsk(12): 5}
        # the trusted table is still right: a change behind the director's back is
        # found by the periodic resync, and the next health change lands normally
        probe.down.add("198.51.100.21")
        await until(lambda: weights(backend, TCP443) == {})
    finally:
        await b.stop()
    assert ("event=real_server_down virtual_server=[192.0.2.10]:TCP:443 "
            "address=198.51.100.21 port=443 check=TCP_CHECK "
            'reason="connection refused"') in caplog.text


async def test_alerts_hear_of_real_server_and_quorum_changes(tmp_path, probe, scripts):
    config = load(tmp_path, virtual_server(real_server(11, 2), real_server(12, 1),
                                           extra="quorum 2"))

    class Alerts:
        def __init__(self) -> None:
            self.said: list[tuple] = []

        def real_server(self, vs, rs, up, check):
            self.said.append(("rs", str(rs.address), up, check))

        def quorum(self, vs, change):
            self.said.append(("quorum", change.up))

    alerts = Alerts()
    b = make(config, MemoryBackend(), tmp_path, probe, scripts, alerts=alerts)
    await b.start()
    try:
        probe.down.add("198.51.100.11")
        await until(lambda: ("quorum", False) in alerts.said)
    finally:
        await b.stop(keep_table=True)
    assert alerts.said == [("rs", "198.51.100.11", False, "TCP_CHECK"), ("quorum", False)]
