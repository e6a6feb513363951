"""Load for the checker benchmark: a private nginx on many loopback addresses, and a
runner that checks N real servers with `checkers.engine` in a process of its own.

Run by tests/bench/test_checkers_bench.py; by hand:

    python -m tests.bench.checkers_load '{"servers": 10000, "port": 18080, ...}'

prints one JSON line of figures. The runner measures only itself: nginx is another
process (pinned to another CPU when there is one), so its CPU is not counted.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import ipaddress
import json
import os
import pstats
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from array import array
from pathlib import Path

from checkers import engine as engine_module
from checkers.engine import CheckEngine
from checkers.probe import ProbeResult, run_probe
from checkers.spec import HttpGetCheck, TcpCheck, Url

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
FIRST_ADDRESS = ipaddress.IPv4Address("127.1.0.1")


def addresses(count: int) -> list[str]:
    """``count`` loopback addresses (all of 127/8 is local on Linux): many destination
    addresses keep the connection 4-tuples apart, so TIME_WAIT never runs out of ports."""
    return [str(FIRST_ADDRESS + i) for i in range(count)]


# ------------------------------------------------------------------ nginx

NGINX_CONF = """\
worker_processes 1;
worker_rlimit_nofile 65536;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log crit;
events {{
    worker_connections 16384;
    multi_accept on;
}}
http {{
    access_log off;
    keepalive_timeout 0;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    default_type text/plain;
    server {{
{listen}
        location / {{
            return 200 "healthy\\n";
        }}
    }}
}}
"""


class Nginx:
    """Debian's nginx, our own instance in ``prefix``, listening on ``port`` of every
    address in ``listen``; stopped by its pid."""

    def __init__(self, prefix: Path, listen: list[str], port: int, cpu: int | None = None):
        self.prefix = prefix
        self.port = port
        (prefix / "tmp").mkdir(parents=True, exist_ok=True)
        lines = "\n".join(f"        listen {a}:{port} backlog=4096;" for a in listen)
        self.conf = prefix / "nginx.conf"
        self.conf.write_text(NGINX_CONF.format(prefix=prefix, listen=lines))
        self.cpu = cpu
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, first_address: str, timeout: float = 10.0) -> Nginx:
        cpu = self.cpu

        def pin() -> None:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})

        self.process = subprocess.Popen(
            [NGINX, "-c", str(self.conf), "-p", str(self.prefix), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=pin)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.process.stderr.read().decode()}")
            try:
                socket.create_connection((first_address, self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nginx did not start listening")

    def cpu_seconds(self) -> float:
        """CPU time of the master and its workers so far (from /proc)."""
        if self.process is None:
            return 0.0
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in [self.process.pid, *_children(self.process.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


async def _null_probe(spec, context):
    """No I/O at all: what the engine itself costs per check."""
    return ProbeResult(True, "null probe", 0.0)


# ------------------------------------------------------------------ runner

def servers(count: int, port: int, destinations: int, delay_loop: float,
            kinds: str = "mixed") -> dict[str, list]:
    """Half TCP_CHECK, half HTTP_GET (or all of one ``kinds``: "tcp", "http"; "null" is
    TCP_CHECK specs for a probe that does nothing), spread over the destinations."""
    targets = addresses(destinations)
    out: dict[str, list] = {}
    for i in range(count):
        ip = ipaddress.IPv4Address(targets[i % destinations])
        common = dict(connect_ip=ip, connect_port=port, delay_loop=delay_loop,
                      warmup=delay_loop, connect_timeout=2.0, retry=1,
                      delay_before_retry=1.0)
        http = kinds == "http" or (kinds == "mixed" and i % 2)
        checker = HttpGetCheck(urls=(Url(path="/health"),), **common) if http else \
            TcpCheck(**common)
        out[f"{ip}:{port}#{i}"] = [checker]
    return out


def _rss_kb() -> tuple[int, int]:
    status = Path("/proc/self/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


async def _run(options: dict) -> dict:
    events: dict[str, int] = {}

    def on_event(key, event):
        events[event.kind.value] = events.get(event.kind.value, 0) + 1

    specs = servers(options["servers"], options["port"], options["destinations"],
                    options["delay_loop"], options.get("kinds", "mixed"))
    rss_specs, _ = _rss_kb()
    probe = _null_probe if options.get("kinds") == "null" else run_probe
    engine = CheckEngine(probe=probe, on_event=on_event)
    engine.start(specs)
    del specs
    await asyncio.sleep(options["warmup"])
    lateness = array("d")
    taken = engine.stats().probes_started
    start_stats = engine.stats()
    wall, usage = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
    profile = cProfile.Profile() if options.get("profile") else None
    if profile:
        profile.enable()
    deadline = wall + options["duration"]
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(1.0, left))
        started = engine.stats().probes_started
        recent = engine.lateness()
        lateness.extend(recent[max(0, len(recent) - (started - taken)):])
        taken = started
    if profile:
        profile.disable()
    end_stats = engine.stats()
    wall = time.monotonic() - wall
    after = resource.getrusage(resource.RUSAGE_SELF)
    rss, hwm = _rss_kb()
    snapshot = engine.snapshot()
    await engine.stop()
    ordered = sorted(lateness)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else 0.0

    failed = [s for s in snapshot.values() if not s.up]
    latencies = sorted(s.latency for s in snapshot.values() if s.latency is not None)
    by_kind: dict[str, list[float]] = {}
    for status in snapshot.values():
        for checker in status.checkers:
            if checker.latency is not None:
                by_kind.setdefault(checker.kind, []).append(checker.latency)
    slow = {kind: round(1000 * sorted(values)[len(values) // 2], 3)
            for kind, values in by_kind.items()}
    result = {
        "servers": options["servers"], "delay_loop": options["delay_loop"],
        "kinds": options.get("kinds", "mixed"),
        "duration": wall,
        "checks": end_stats.probes_finished - start_stats.probes_finished,
        "checks_per_s": (end_stats.probes_finished - start_stats.probes_finished) / wall,
        "cpu_percent": 100.0 * ((after.ru_utime - usage.ru_utime)
                                + (after.ru_stime - usage.ru_stime)) / wall,
        "involuntary_switches": after.ru_nivcsw - usage.ru_nivcsw,
        "user_s": after.ru_utime - usage.ru_utime, "sys_s": after.ru_stime - usage.ru_stime,
        "rss_mb": rss / 1024, "rss_peak_mb": hwm / 1024, "rss_after_specs_mb": rss_specs / 1024,
        "lateness_samples": len(ordered),
        "lateness_p50_ms": 1000 * pct(0.50), "lateness_p99_ms": 1000 * pct(0.99),
        "lateness_max_ms": 1000 * (ordered[-1] if ordered else 0.0),
        "probe_latency_p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else 0,
        "probe_latency_p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies
        else 0,
        "probe_latency_p50_ms_by_kind": slow,
        "in_flight_at_end": end_stats.in_flight, "waiting_at_end": end_stats.waiting,
        "servers_down_at_end": len(failed),
        "down_reasons": sorted({s.reason for s in failed})[:5],
        "events": events, "lateness_ring": engine_module.LATENESS_SAMPLES,
    }
    if profile:
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(25)
        result["profile"] = text.getvalue()
    return result


def main(argv: list[str]) -> None:
    options = json.loads(argv[1])
    if options.get("cpu") is not None:
        os.sched_setaffinity(0, {options["cpu"]})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    print(json.dumps(asyncio.run(_run(options))))


if __name__ == "__main__":
    main(sys.argv)
