"""Reload of a 2,000 virtual x 20 real server config with 1% changed (issue 7: "reloads
in under 1 s"). 20 virtual servers spread over the file each lose a real server, get a
new weight on another and gain one with another kind of checker, so the lines after
each change move: 60 IPVS operations.

(a) in-process, on the host: the load, fresh (before the incremental load) and
    through `LoadCache` (as a reload does: moved blocks' origins left for after the
    apply; and with the moves made during the load), then the balancer's reload on the
    memory backend, `desired_table`, `reconcile` and the operations;
(b) on the host, through the whole daemon: `director run --memory-ipvs` (supervisor and
    both children), SIGHUP and `director reload` after each edit, the children's reload
    records (SIGHUP -> change applied) and the time until both are in;
(c) in the kernel-tier guest only: `director run --checkers-only` with the real ip_vs in
    a namespace, SIGHUP after the change, the child's reload record (written once the
    kernel acknowledged every operation; the kernel is checked with ipvsadm after). A
    40,000-server Python process in UML needs more host mappings than the host's
    default vm.max_map_count: run with `uml.py --uml-max-map-count 262144` (`make bench`
    does);
(d) in the guest only: keepalived 2.2.7's own reload of a smaller config, beside
    ours on the same config (keepalived needs ~2 minutes for the big one).

Figures are printed, never asserted; what is asserted is that each reload gives the
right result (the incremental load equals a fresh one; the kernel ends with the change).

    sudo .venv/bin/python -m pytest tests/bench/test_reload_bench.py -s
    sudo .venv/bin/python tests/kernel/uml.py --uml-max-map-count 262144 \
        tests/bench/test_reload_bench.py -s -v
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from director import heap
from director.balancer import Balancer
from director.child_reload import RECORD_FILES
from director.config.incremental import LoadCache
from director.config.keepalived import load_keepalived
from director.ipvs.memory import MemoryBackend
from director.ipvs.reconcile import reconcile
from director.pool import desired_table
from tests.bench.config_gen import changed_virtual_servers, generate, rip
from tests.kernel.conftest import (
    SKIP_REASON,
    Netns,
    in_kernel_guest,
    make_netns,
)

__all__ = ["make_netns"]  # the fixture, from the kernel tier

VIRTUAL, REAL, CHANGED = 2000, 20, 20
ROOT = Path(__file__).resolve().parents[2]


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


async def _idle_probe(spec: Any, context: Any = None) -> Any:
    await asyncio.sleep(3600)  # no verdict during the bench: every server stays as it is


@pytest.mark.skipif(in_kernel_guest(), reason="on the host: the guest's figure is "
                    "test_reload_in_the_kernel")
def test_reload_in_process(tmp_path: Path) -> None:
    # In a process of its own: the memory it takes (several 40,000-server configs) goes
    # back before the kernel part, which the guest's 1 GB must hold.
    measure = "from tests.bench.test_reload_bench import measure; measure()"
    result = subprocess.run([sys.executable, "-c", measure, str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    print(result.stdout, end="")
    assert result.returncode == 0, result.stderr[-3000:]


def weights_changed_in_place(text: str, count: int) -> str:
    """`text` with `count` real servers' weights changed, spread over the file, no line
    added or removed: the edit that moves no block."""
    lines = text.splitlines(keepends=True)
    weights = [i for i, line in enumerate(lines) if line.lstrip().startswith("weight ")]
    step = len(weights) // count
    for i in weights[step // 2::step][:count]:
        indent, _, value = lines[i].partition("weight ")
        lines[i] = f"{indent}weight {int(value) + 1}\n"
    return "".join(lines)


def measure() -> None:
    tmp_path = Path(sys.argv[1])
    before, after = generate(VIRTUAL, REAL), generate(VIRTUAL, REAL, CHANGED)
    in_place = weights_changed_in_place(after, CHANGED)
    path = tmp_path / "keepalived.conf"
    path.write_text(before)
    print(f"\nreload, in-process on the host: {VIRTUAL:,} x {REAL} "
          f"({before.count(chr(10)):,} lines), {CHANGED} virtual servers changed")

    cache = LoadCache()
    (old, _), cold = timed(lambda: cache.load(str(path)))
    eager = LoadCache()  # the same transition with the moves made during the load
    eager.load(str(path))
    heap.settle(full=True)  # as the daemon does once it runs (director/heap.py)
    path.write_text(after)
    # as a reload in the daemon: the moved blocks keep their origins until settled
    (new, problems), incremental = timed(lambda: cache.load(str(path), defer_moves=True))
    reused, moved, deferred = cache.reused, cache.moved, cache.deferred
    _, eager_load = timed(lambda: eager.load(str(path)))
    eager.clear()
    settled, settle_seconds = timed(lambda: cache.settle(new))
    (fresh, fresh_problems), fresh_new = timed(lambda: load_keepalived(str(path)))
    assert new == fresh and settled == fresh and problems == fresh_problems
    assert [vs.origin for vs in settled.virtual_servers] == [
        vs.origin for vs in fresh.virtual_servers]
    del fresh, fresh_problems
    _, unchanged = timed(lambda: cache.load(str(path)))
    print(f"  load, fresh (before): {fresh_new:.3f} s")
    print(f"  load, first through the cache: {cold:.3f} s")
    print(f"  load, incremental, as a reload does (after): {incremental:.3f} s ({reused} "
          f"virtual servers reused, {moved} of them moved to other lines, {deferred} "
          f"of those with their origins left for later; {VIRTUAL - reused} built)")
    print(f"  load, incremental, moving them during the load: {eager_load:.3f} s")
    print(f"  the moves, after the reload (LoadCache.settle): {settle_seconds:.3f} s")
    print(f"  load, incremental, file unchanged: {unchanged:.3f} s")
    heap.settle()
    path.write_text(in_place)
    (weighted, _), in_place_load = timed(lambda: cache.load(str(path), defer_moves=True))
    print(f"  load, incremental, {CHANGED} weights changed in place (no block moves): "
          f"{in_place_load:.3f} s ({cache.moved} moved)")

    async def reload(balancer: Balancer, backend: MemoryBackend, config: Any,
                     what: str, load_seconds: float) -> list[Any]:
        before = backend.dump()
        started = time.perf_counter()
        await balancer.reload(config)
        reload_seconds = time.perf_counter() - started
        heap.settle()  # as the daemon does after a reload
        quorum = {name: state.up for name, state in balancer.quorum.items()}
        desired, desired_seconds = timed(lambda: desired_table(
            config, balancer.health, time.monotonic(), balancer.drains, quorum))
        ops, reconcile_seconds = timed(lambda: reconcile(desired, before))
        # Balancer.reload returns once its operations are applied: the table has them
        assert reconcile(desired, backend.dump()) == []
        print(f"  {what}: Balancer.reload (its operations applied) {reload_seconds:.3f} s; "
              f"desired_table alone {desired_seconds:.3f} s, reconcile alone "
              f"{reconcile_seconds:.3f} s -> {len(ops)} operations")
        print(f"  {what}: total, SIGHUP to the change in the table: "
              f"{load_seconds + reload_seconds:.3f} s")
        return ops

    async def balance() -> None:
        backend = MemoryBackend()
        with tempfile.TemporaryDirectory() as state_dir:
            balancer = Balancer(old, backend, state_dir, dry_run=True, probe=_idle_probe)
            started = time.perf_counter()
            await balancer.start()
            start = time.perf_counter() - started
            heap.settle(full=True)
            full = sum(len(s.destinations) for s in backend.dump().values())
            print(f"  balancer start (memory backend, {full:,} real servers): {start:.3f} s")
            ops = await reload(balancer, backend, new, "blocks moved", incremental)
            assert len(ops) == 3 * CHANGED
            started = time.perf_counter()
            assert await balancer.reload(settled, announce=False) == 0
            print(f"  blocks moved, then: the balancer takes the settled origins in "
                  f"{time.perf_counter() - started:.3f} s (0 operations)")
            ops = await reload(balancer, backend, weighted, "in place", in_place_load)
            assert len(ops) == CHANGED
            print(f"  (a fresh load instead of the incremental one: {fresh_new:.3f} s)")
            await balancer.stop(keep_table=True)

    asyncio.run(balance())


# --------------------------------------------------------------------- in the kernel

RESPONDER = r"""
import asyncio
async def answer(reader, writer):
    try:
        await asyncio.wait_for(reader.read(4096), 5)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
    except Exception:
        pass
    writer.close()
async def main():
    server = await asyncio.start_server(answer, "0.0.0.0", 80, backlog=4096)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


@contextmanager
def started(ns: Netns, argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        process = subprocess.Popen(["ip", "netns", "exec", ns.name, *argv], cwd=ROOT,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def real_servers_up(ns: Netns, count: int) -> None:
    """The real servers' addresses on the namespace's loopback (`RESPONDER`, started
    in the namespace, answers for all of them: TCP_CHECK and HTTP_GET pass)."""
    for r in range(count):
        ns.run("ip", "addr", "add", f"{rip(r)}/32", "dev", "lo")


def wait_for(condition: Callable[[], bool], timeout: float, step: float = 0.02) -> float:
    """Seconds until ``condition()`` held; raises after ``timeout``."""
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > timeout:
            raise AssertionError(f"not reached within {timeout} s")
        time.sleep(step)
    return time.perf_counter() - started


def weights(ns: Netns, vip: str, port: int = 80) -> dict[str, int]:
    """Real server -> weight of one service, from `ipvsadm -Ln -t VIP:PORT` (which
    prints no version line: `parse_listing` does not take it)."""
    result = ns.run("ipvsadm", "-L", "-n", "-t", f"{vip}:{port}", check=False)
    if result.returncode != 0:
        return {}
    rows = (line.split() for line in result.stdout.splitlines())
    return {row[1]: int(row[3]) for row in rows
            if len(row) >= 4 and row[0] == "->" and row[3].isdigit()}


def changed_in_kernel(ns: Netns, vip: str) -> bool:
    listed = weights(ns, vip)
    return (f"{rip(REAL)}:80" in listed and f"{rip(0)}:80" not in listed
            and listed.get(f"{rip(1)}:80") == 100)


def table_size(ns: Netns) -> tuple[int, int]:
    lines = ns.ipvsadm("-S", "-n").splitlines()
    return (sum(line.startswith("-A") for line in lines),
            sum(line.startswith("-a") for line in lines))


def status(state_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((state_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}


@pytest.mark.skipif(not in_kernel_guest(), reason=SKIP_REASON)
@pytest.mark.parametrize("delay_loop", [3600, 60], ids=["quiet", "probing"])
def test_reload_in_the_kernel(tmp_path: Path, make_netns: Callable[[], Netns],
                              delay_loop: int) -> None:
    """quiet: almost no probes run during the reload; probing: 40,000 probes a minute
    (~670/s) share the guest's one CPU with it (every 10 s would swamp it)."""
    ns = make_netns()
    real_servers_up(ns, REAL + 1)
    conf = tmp_path / "keepalived.conf"
    conf.write_text(generate(VIRTUAL, REAL, delay_loop=delay_loop))
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    print(f"\nreload in the kernel (guest, one CPU): director run --checkers-only, "
          f"{VIRTUAL:,} x {REAL}, {CHANGED} virtual servers changed, delay_loop {delay_loop}")
    with started(ns, [sys.executable, "-c", RESPONDER], tmp_path / "responder.log"), \
            started(ns, [sys.executable, "-m", "director.cli.main", "run", "--checkers-only",
                         "-f", str(conf), "--state-dir", str(state_dir), "--log-level",
                         "info"], tmp_path / "director.log") as director:
        up = wait_for(lambda: table_size(ns) == (VIRTUAL, VIRTUAL * REAL), 300, step=1.0)
        # The child runs once it wrote its reload record; its first status.json (40,000
        # servers: seconds of the guest's one CPU) is written right after: a reload
        # meanwhile would share the CPU with it.
        wait_for(lambda: bool(record(state_dir, "checkers"))
                 and status(state_dir).get("running") is True, 120, step=0.2)
        print(f"  start: the whole table in the kernel after {up:.1f} s")
        before = generate(VIRTUAL, REAL, delay_loop=delay_loop)
        after = generate(VIRTUAL, REAL, CHANGED, delay_loop=delay_loop)
        changed = changed_virtual_servers(VIRTUAL, CHANGED)
        last = max(changed, key=lambda a: tuple(int(x) for x in a.split(".")))
        edits = [
            ("right after the start: 1%, every later block moves", after,
             lambda: all(changed_in_kernel(ns, vip) for vip in changed)),
            ("running for 10 s: the same 1% back, every later block moves", before,
             lambda: not any(changed_in_kernel(ns, vip) for vip in changed)),
            ("running for 10 s: 1%, weights changed in place",
             weights_changed_in_place(before, CHANGED), lambda: weights(ns, last) != {}),
        ]
        for count, (what, text, in_kernel) in enumerate(edits, 1):
            if count > 1:
                time.sleep(10)
            conf.write_text(text)
            director.send_signal(signal.SIGHUP)
            # The record is written once the kernel acknowledged every operation. (Polling
            # ipvsadm meanwhile would take most of the guest's one CPU from the reload.)
            try:
                seen = wait_for(lambda n=count: record(state_dir, "checkers").get("count") == n,
                                120, 0.1)
            except AssertionError:
                raise AssertionError(f"no reload: {weights(ns, last)}; director exit status "
                                     f"{director.poll()}; record: "
                                     f"{record(state_dir, 'checkers')}\n"
                                     f"{tail(tmp_path / 'director.log', 20)}") from None
            assert in_kernel(), weights(ns, last)
            done = record(state_dir, "checkers")
            print(f"  {what}: SIGHUP -> the record (the kernel checked after with ipvsadm) "
                  f"{seen:.3f} s from outside; the record: {done['seconds']:.3f} s (load "
                  f"{done['load_seconds']:.3f}, apply {done['apply_seconds']:.3f}), "
                  f"{done['operations']} operations")
        assert table_size(ns) == (VIRTUAL, VIRTUAL * REAL)


def record(state_dir: Path, role: str) -> dict[str, Any]:
    try:
        data = json.loads((state_dir / RECORD_FILES[role]).read_text())
    except (OSError, ValueError):
        return {}
    return data.get("reload") or {} if isinstance(data, dict) else {}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.skipif(in_kernel_guest(), reason="on the host (IPVS in memory): the "
                    "guest's figure is test_reload_in_the_kernel")
def test_reload_through_the_daemon(tmp_path: Path, make_netns: Callable[[], Netns]) -> None:
    """The whole daemon on the host: `director run` (supervisor, VRRP child, checkers
    child) with the IPVS table in memory (--memory-ipvs: the host has no ip_vs), 40,000
    real servers answering on a namespace's lo; SIGHUP (and `director reload`) after
    each edit, each child's reload record (SIGHUP -> change applied) and the time until
    both records are in, polled from outside."""
    ns = make_netns()
    real_servers_up(ns, REAL + 1)
    conf = tmp_path / "keepalived.conf"
    conf.write_text(generate(VIRTUAL, REAL, delay_loop=3600))
    state_dir = tmp_path / "state"
    print(f"\nreload through the whole daemon on the host (2 CPUs, IPVS in memory): "
          f"{VIRTUAL:,} x {REAL}, {CHANGED} virtual servers changed")
    with started(ns, [sys.executable, "-c", RESPONDER], tmp_path / "responder.log"), \
            started(ns, [sys.executable, "-m", "director.cli.main", "run", "-f", str(conf),
                         "--memory-ipvs", "--state-dir", str(state_dir), "--log-level",
                         "info"], tmp_path / "director.log") as director:
        up = wait_for(lambda: status(state_dir).get("running") is True
                      and all(record(state_dir, role) for role in RECORD_FILES), 300, 0.2)
        pids = {role: json.loads((state_dir / name).read_text())["pid"]
                for role, name in RECORD_FILES.items()}
        print(f"  start: both children running after {up:.1f} s; RSS " + ", ".join(
            f"{role} {rss_mib(pid):.0f} MiB" for role, pid in pids.items()))
        time.sleep(3)
        counts = {role: 0 for role in RECORD_FILES}

        def reload_by_signal(text: str, what: str, operations: int) -> None:
            conf.write_text(text)
            director.send_signal(signal.SIGHUP)
            took = wait_for(lambda: all(record(state_dir, role).get("count") == counts[role] + 1
                                        for role in RECORD_FILES), 60, 0.01)
            for role in RECORD_FILES:
                counts[role] += 1
            records = {role: record(state_dir, role) for role in RECORD_FILES}
            assert all(r["ok"] for r in records.values()), records
            assert records["checkers"]["operations"] == operations
            print(f"  {what}: SIGHUP -> both records in {took:.3f} s; " + "; ".join(
                      f"{role} {r['seconds']:.3f} s (load {r['load_seconds']:.3f}, apply "
                      f"{r['apply_seconds']:.3f})" for role, r in records.items())
                  + f"; {operations} IPVS operations")
            time.sleep(3)  # the origins moved after the apply, and the heap settled

        reload_by_signal(generate(VIRTUAL, REAL, CHANGED, delay_loop=3600),
                         "1%, every later block moves", 3 * CHANGED)
        text = weights_changed_in_place(conf.read_text(), CHANGED)
        reload_by_signal(text, "1%, weights changed in place", CHANGED)
        conf.write_text(generate(VIRTUAL, REAL, 2 * CHANGED, delay_loop=3600))
        started_at = time.perf_counter()
        done = subprocess.run(["ip", "netns", "exec", ns.name, sys.executable, "-m",
                               "director.cli.main", "reload", "--state-dir", str(state_dir)],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        took = time.perf_counter() - started_at
        assert done.returncode == 0, done.stdout + done.stderr
        print(f"  `director reload` (another 1% edit, blocks moved), the command's whole "
              f"run: {took:.3f} s")
        for line in done.stdout.splitlines():
            print(f"    {line}")
        print("  RSS after the reloads: " + ", ".join(
            f"{role} {rss_mib(pid):.0f} MiB" for role, pid in pids.items()))

        def moved() -> list[str]:
            log = (tmp_path / "director.log").read_text(errors="replace")
            return [line for line in log.splitlines() if "take their new lines" in line]

        wait_for(lambda: len(moved()) == 2, 30)  # the two reloads whose blocks moved
        for line in moved():
            print(f"  log: {line.split('] ', 1)[-1]}")
        assert "Traceback" not in (tmp_path / "director.log").read_text(errors="replace")


def tail(path: Path, lines: int = 5) -> str:
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(f"  log: {line}" for line in text)


@pytest.mark.skipif(not in_kernel_guest() or shutil.which("keepalived") is None,
                    reason=SKIP_REASON)
def test_keepalived_reload_beside_ours(tmp_path: Path, make_netns: Callable[[], Netns]
                                       ) -> None:
    """keepalived's checker reloads a config by rebuilding every checker: for the
    2,000 x 20 file that takes minutes, so both run a 200 x 20 file here."""
    virtual, changed = 200, 2
    results = {}
    vips = changed_virtual_servers(virtual, changed)
    for name in ("keepalived", "ours"):
        ns = make_netns()
        real_servers_up(ns, REAL + 1)
        conf = tmp_path / f"{name}.conf"
        conf.write_text(generate(virtual, REAL, delay_loop=60))
        state_dir = tmp_path / f"{name}-state"
        state_dir.mkdir()
        if name == "keepalived":
            argv = ["keepalived", "-C", "-n", "-l", "-D", "-f", str(conf),
                    "-p", str(state_dir / "k.pid"), "-c", str(state_dir / "c.pid")]
        else:
            argv = [sys.executable, "-m", "director.cli.main", "run", "--checkers-only",
                    "-f", str(conf), "--state-dir", str(state_dir), "--log-level", "warning"]
        with started(ns, [sys.executable, "-c", RESPONDER], tmp_path / f"{name}-resp.log"), \
                started(ns, argv, tmp_path / f"{name}.log") as process:
            up = wait_for(lambda ns=ns: table_size(ns) == (virtual, virtual * REAL), 120,
                          step=0.5)
            conf.write_text(generate(virtual, REAL, changed, delay_loop=60))
            sent = time.perf_counter()
            process.send_signal(signal.SIGHUP)
            wait_for(lambda ns=ns: all(changed_in_kernel(ns, vip) for vip in vips), 240,
                     step=0.05)
            results[name] = (up, time.perf_counter() - sent)
    print(f"\nreload of {virtual} x {REAL} ({changed} virtual servers changed) in the guest:")
    for name, (up, seconds) in results.items():
        print(f"  {name:>10}: table up after start {up:.1f} s; SIGHUP -> change in the "
              f"kernel {seconds:.3f} s")
    print(f"  ratio keepalived/ours: {results['keepalived'][1] / results['ours'][1]:.1f}x")
