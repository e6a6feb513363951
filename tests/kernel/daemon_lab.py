"""The whole director daemon (`director run -f CONF`) on the LVS lab's two directors,
and what a test watches while it runs: client traffic to the VIP, who holds the VIP.

    pair_config(lab, priority, weights={"dr2": 3}) -> keepalived.conf text: VRRP
        instance VI_1 for the lab's VIP on "front", lvs_sync_daemon on "back", one DR
        virtual server (TCP_CHECK) on the lab's DR real servers
    Daemon(lab, director, conf, state_dir, log, *options): `director run` started in
        that director's namespace; .proc, .pid, .output(), .logged(text),
        .status() / .vrrp_status() (the children's status files), .child_pids(),
        .wait_ready(), .instance() (VI_1's status), .send(sig), .stop(sig), .kill()
    Prober(lab, port).start() ... .stop() -> ProbeReport: a request every ~20 ms from
        the client, each timed; failures and the longest gap between answers
    VipWatch(lab): `ip -ts monitor address` in each director; .changes(since) (who
        held the VIP after each change), .overlaps(since) / .gaps(since) (when both /
        neither held it; `longest(spans)` the longest of them)
    master_down_interval(priority), holds_vip(node), wait_for(predicate, timeout, what)

Every wait is bounded; whatever is started here is stopped by pid.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from lvs_lab import VIP, LabError, LvsLab, Node

REPO = Path(__file__).resolve().parents[2]
PORT = 8080
VRID = 51
ADVERT_INT = 0.5
START_TIMEOUT = 45.0  # three Pythons with pyroute2 start slowly in the guest
STOP_TIMEOUT = 20.0


def master_down_interval(priority: int) -> float:
    """VRRPv3 (RFC 5798): 3 x advert interval + skew."""
    return 3 * ADVERT_INT + (256 - priority) * ADVERT_INT / 256


def wait_for(predicate: Callable[[], object], timeout: float, what: str,
             step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(step)


def pair_config(lab: LvsLab, priority: int, weights: dict[str, int] | None = None) -> str:
    weights = weights or {}

    def real(node: Node) -> str:
        return f"""
    real_server {node.address} {PORT} {{
        weight {weights.get(node.name, 1)}
        TCP_CHECK {{
            connect_timeout 1
            retry 0
            delay_before_retry 1
        }}
    }}"""

    return f"""global_defs {{
    lvs_sync_daemon back VI_1
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface front
    virtual_router_id {VRID}
    priority {priority}
    version 3
    advert_int {ADVERT_INT}
    virtual_ipaddress {{
        {VIP}/32 dev front
    }}
}}
virtual_server {VIP} {PORT} {{
    delay_loop 1
    lb_algo wrr
    lb_kind DR
    protocol TCP
{"".join(real(node) for node in lab.dr)}
}}
"""


def holds_vip(node: Node) -> bool:
    return f" {VIP}/32 " in node.run("ip", "-4", "-o", "addr", "show", "dev", "front").stdout


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ------------------------------------------------------------------ the daemon

class Daemon:
    """`director run -f CONF --state-dir DIR` in a director's namespace."""

    def __init__(self, lab: LvsLab, director: Node | str, conf: Path, state_dir: Path,
                 log: Path, *options: str) -> None:
        self.node = lab.director(director)
        self.conf = conf
        self.state_dir = state_dir
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.node.netns.name, sys.executable, "-m",
                 "director.cli.main", "run", "-f", str(conf), "--state-dir", str(state_dir),
                 *options],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)})

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def logged(self, text: str, timeout: float = START_TIMEOUT) -> None:
        def seen() -> bool:
            if text in self.output():
                return True
            if not self.running:
                raise AssertionError(f"{self.node.name}: the daemon exited "
                                     f"({self.proc.returncode}) before logging {text!r}:"
                                     f"\n{self.output()}")
            return False

        try:
            wait_for(seen, timeout, f"{self.node.name} logs {text!r}", step=0.1)
        except AssertionError as error:
            raise AssertionError(f"{error}\n--- {self.node.name}'s log:\n"
                                 f"{self.output()}") from None

    def ipvs_lines(self, after: int = 0) -> list[str]:
        """The changes to the IPVS table it logged (" ipvs: " lines; not the sync
        daemons, which follow VRRP), from line `after` on."""
        return [line for line in self.output().splitlines()[after:]
                if " ipvs: " in line and " sync daemon " not in line]

    def lines(self) -> int:
        return len(self.output().splitlines())

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.state_dir / name).read_text())
        except (OSError, ValueError):
            return None

    def status(self) -> dict[str, Any] | None:
        return self._read("status.json")

    def vrrp_status(self) -> dict[str, Any] | None:
        return self._read("vrrp-status.json")

    def child_pids(self) -> dict[str, int | None]:
        """{"vrrp": pid, "checkers": pid} from the status files, when that child is a
        live child of this daemon and says it is running."""
        pids: dict[str, int | None] = {}
        for role, status in (("vrrp", self.vrrp_status()), ("checkers", self.status())):
            pid = status.get("pid") if status else None
            ok = (isinstance(pid, int) and status.get("running") is True and alive(pid)
                  and _ppid(pid) == self.pid)
            pids[role] = pid if ok else None
        return pids

    def wait_ready(self, timeout: float = START_TIMEOUT) -> dict[str, int]:
        """Both children running (their own status files): their pids."""
        def ready() -> dict[str, int] | None:
            if not self.running:
                raise AssertionError(f"{self.node.name}: the daemon exited "
                                     f"({self.proc.returncode}):\n{self.output()}")
            pids = self.child_pids()
            return pids if all(pids.values()) else None  # type: ignore[return-value]

        try:
            return wait_for(ready, timeout, f"{self.node.name}: both children running",
                            step=0.1)
        except AssertionError as error:
            raise AssertionError(f"{error}\n--- {self.node.name}'s log:\n"
                                 f"{self.output()}") from None

    def instance(self) -> dict[str, Any]:
        """VI_1's status in vrrp-status.json ({} when not there)."""
        status = self.vrrp_status() or {}
        return status.get("instances", {}).get("VI_1", {})

    def state(self) -> str | None:
        return self.instance().get("state")

    def send(self, sig: int) -> None:
        if self.running:
            self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        self.send(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.node.name}: the daemon did not stop on "
                                 f"{signal.Signals(sig).name}:\n{self.output()}") from None

    def kill(self) -> None:
        """kill -9 of the parent (its children die with it: PR_SET_PDEATHSIG)."""
        if self.running:
            self.proc.kill()
        self.proc.wait(10)


# ------------------------------------------------------------------ client traffic

@dataclass
class ProbeReport:
    requests: int
    failures: list[tuple[float, str]]  # (time, error)
    slowest: float  # the longest a request took (s)
    worst_gap: float  # the longest time between two answers (s)
    servers: set[str]

    def describe(self, since: float) -> str:
        """A line for a person; failure times relative to `since` (epoch s)."""
        failed = ""
        if self.failures:
            first, last = (self.failures[0][0] - since, self.failures[-1][0] - since)
            failed = (f" (from {first:+.3f} s to {last:+.3f} s: "
                      f"{sorted({error for _, error in self.failures})})")
        return (f"{self.requests} requests, {len(self.failures)} failed{failed}, slowest "
                f"{self.slowest * 1000:.0f} ms, longest without an answer "
                f"{self.worst_gap * 1000:.0f} ms")


@dataclass
class Prober:
    """A fresh connection and one line to the VIP every `interval` s, from the
    client's namespace, until stopped (at most `limit` s)."""

    lab: LvsLab
    port: int = PORT
    interval: float = 0.02
    timeout: float = 3.0
    limit: float = 60.0
    _records: list[tuple[float, float, str | None, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Prober:
        self._thread = threading.Thread(target=self._run, daemon=True, name="prober")
        self._thread.start()
        wait_for(lambda: any(r[2] for r in self._records), 5.0, "a first answer to the prober")
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            begun = time.time()
            try:
                server: str | None = self.lab.request(self.port, timeout=self.timeout)
                error = ""
            except (OSError, LabError) as failure:
                server, error = None, f"{type(failure).__name__}: {failure}"
            ended = time.time()
            self._records.append((begun, ended, server, error))
            self._stop.wait(max(0.0, self.interval - (ended - begun)))

    def stop(self) -> ProbeReport:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 5)
        records = list(self._records)
        answers = [ended for _, ended, server, _ in records if server]
        gaps = [b - a for a, b in itertools.pairwise(answers)]
        return ProbeReport(
            requests=len(records),
            failures=[(begun, error) for begun, _, server, error in records if not server],
            slowest=max((ended - begun for begun, ended, _, _ in records), default=0.0),
            worst_gap=max(gaps, default=0.0),
            servers={server for _, _, server, _ in records if server})


# ------------------------------------------------------------------ who holds the VIP

class VipWatch:
    """`ip -ts monitor address` in every director: when each got or lost the VIP."""

    def __init__(self, lab: LvsLab) -> None:
        self.directors = [node.name for node in lab.directors]
        self._events: list[tuple[float, str, bool]] = []
        self._lock = threading.Lock()
        self._procs: list[subprocess.Popen] = []
        self._threads: list[threading.Thread] = []
        for node in lab.directors:
            proc = subprocess.Popen(["ip", "-ts", "-n", node.netns.name, "monitor", "address"],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True)
            self._procs.append(proc)
            thread = threading.Thread(target=self._read, args=(node.name, proc), daemon=True)
            thread.start()
            self._threads.append(thread)
        time.sleep(0.3)  # the monitors subscribe; what happened before is in the snapshot
        self.since = time.time()
        self._initial = {node.name: holds_vip(node) for node in lab.directors}

    def _read(self, name: str, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if f" {VIP}/32 " not in line or not line.startswith("["):
                continue
            stamp, rest = line[1:].split("]", 1)
            when = datetime.fromisoformat(stamp).timestamp()
            with self._lock:
                self._events.append((when, name, not rest.lstrip().startswith("Deleted")))

    def timeline(self) -> list[tuple[float, dict[str, bool]]]:
        """(time, {director: holds the VIP}) at the start and after every change."""
        held = dict(self._initial)
        points = [(self.since, dict(held))]
        with self._lock:
            events = sorted(e for e in self._events if e[0] >= self.since)
        for when, name, present in events:
            if held[name] != present:
                held[name] = present
                points.append((when, dict(held)))
        return points

    def _spans(self, holders: Callable[[int], bool], since: float) -> list[tuple[float, float]]:
        points = self.timeline()
        spans = []
        for i, (when, held) in enumerate(points):
            end = points[i + 1][0] if i + 1 < len(points) else time.time()
            if holders(sum(held.values())) and end > since:
                spans.append((max(when, since), end))
        return spans

    def overlaps(self, since: float = 0.0) -> list[tuple[float, float]]:
        """When both directors held the VIP (start, end), from `since` on."""
        return self._spans(lambda n: n > 1, since)

    def gaps(self, since: float = 0.0) -> list[tuple[float, float]]:
        """When no director held it."""
        return self._spans(lambda n: n == 0, since)

    def changes(self, since: float = 0.0) -> list[tuple[float, dict[str, bool]]]:
        return [(when, held) for when, held in self.timeline()[1:] if when >= since]

    def close(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        for thread in self._threads:
            thread.join(5)


def longest(spans: list[tuple[float, float]]) -> float:
    return max((end - start for start, end in spans), default=0.0)
