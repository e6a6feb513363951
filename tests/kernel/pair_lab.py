"""The LVS-DR director pair, end to end, inside the User-Mode-Linux guest: the scenario
that `make demo` narrates (demo_pair.py) and test_pair.py asserts.

The lab is `lvs_lab`'s (client, dirA, dirB on the front LAN 198.51.100.0/24 and the
back LAN 192.0.2.0/24) with three DR real servers running nginx: dr1 and dr2 serve
the site, dr3 is the sorry server. Each holds the VIP on lo with arp_ignore/announce.
The VIP is not placed by the lab: VRRP, run by our daemon, floats it. Both directors
run `director run` on conf/director-a.conf and conf/director-b.yaml, adapted to the
lab (the addresses and interfaces an operator edits, nothing else).

    with pair_scenario(say=print) as pair:
        pair.start_directors(); pair.balance(); pair.stop_real_server("dr1"); ...
        pair.report: measured figures; verdicts(pair) -> every check, passed or not

Every wait is bounded; everything started is stopped by pid on the way out, and the
namespaces go with the lab.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lvs_lab import VIP, IpvsConnection, LvsLab, NetnsWorker, Node, lvs_lab

from director.config.load import load_config

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
CONFIGS = {"dirA": CONF / "director-a.conf", "dirB": CONF / "director-b.yaml"}
PORT = 80
SERVICE = f"TCP {VIP}:{PORT}"
SITE = ("dr1", "dr2")
SORRY = "dr3"
# What conf/director-a.conf defines ($NAME=value) -> the lab's value.
LAB_VALUES = {"VIP": VIP, "WEB_PORT": str(PORT), "VRRP_IFACE": "front",
              "SYNC_IFACE": "back", "RS1": "198.51.100.21", "RS2": "198.51.100.22",
              "SORRY": "198.51.100.23"}

REQUEST_INTERVAL = 0.075  # the client's pace: one fresh connection every 75 ms
REQUEST_TIMEOUT = 2.0
START_TIMEOUT = 40.0  # four Python daemons start at once in the slow guest
STEP_TIMEOUT = 20.0
# Beyond the configured timing: the guest's slow Python, GARP, a scheduling hiccup.
VRRP_SLACK = 2.0
CHECK_SLACK = 2.0
POLL = 0.05


class ScenarioError(Exception):
    """A step did not happen within its bound."""


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> float:
    """Poll until true; the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise ScenarioError(f"not within {timeout:g} s: {what}")
        time.sleep(POLL)
    return time.monotonic()


# ------------------------------------------------------------------ the configurations

def conf_definitions(path: Path) -> dict[str, str]:
    """The `$NAME=value` lines of a keepalived.conf (comments cut)."""
    found = {}
    for line in path.read_text().splitlines():
        if match := re.match(r"\$(\w+)=(\S+)", line):
            found[match.group(1)] = match.group(2)
    return found


def adapt_to_lab(path: Path, values: dict[str, str] = LAB_VALUES) -> str:
    """The example config with the lab's addresses and interfaces. A keepalived.conf
    gets new `$NAME=` lines; a YAML file gets each example value replaced where it
    stands as a whole word."""
    text = path.read_text()
    if path.suffix == ".conf":
        for name, value in values.items():
            text, count = re.subn(rf"(?m)^\${name}=\S+", f"${name}={value}", text)
            if count != 1:
                raise ScenarioError(f"{path.name}: no single ${name}= line to adapt")
        return text
    examples = conf_definitions(CONF / "director-a.conf")
    for name, value in values.items():
        text = re.sub(rf"(?<![\w.]){re.escape(examples[name])}(?![\w.])", value, text)
    return text


@dataclass(frozen=True)
class Timing:
    """What the configuration promises, from the model the director loads."""

    check_bound: float  # a stopped real server is out of the table within this
    master_down: float  # the backup takes over this long after the master's last advert
    preempt: bool
    advert_int: float
    backup_priority: int


def timing_of(conf_a: Path, conf_b: Path) -> Timing:
    a, _ = load_config(str(conf_a))
    b, _ = load_config(str(conf_b))
    (rs, *_) = a.virtual_servers[0].real_servers
    (check,) = rs.checkers
    # a probe every delay_loop, then `retry` retries delay_before_retry apart, each at
    # most connect_timeout; intervals jittered by up to 10%
    bound = (1.1 * (check.delay_loop + check.retry * check.delay_before_retry)
             + (check.retry + 1) * check.connect_timeout)
    (vb,) = b.vrrp.instances
    (va,) = a.vrrp.instances
    master_down = 3 * vb.advert_int + (256 - vb.priority) / 256 * vb.advert_int
    return Timing(bound, master_down, not va.nopreempt, vb.advert_int, vb.priority)


# ------------------------------------------------------------------ nginx real servers

NGINX_CONF = """\
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 512; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_timeout 300s;
    keepalive_requests 100000;
    default_type text/plain;
    server {{
        listen {port} default_server;
        location = /healthz {{ return 200 "ok\\n"; }}
        location / {{ return 200 "{body}\\n"; }}
    }}
}}
"""


@dataclass
class Nginx:
    """nginx in a real server's namespace: its own prefix, config and pid file, in the
    foreground (the process we started is the master)."""

    node: Node
    prefix: Path
    proc: subprocess.Popen | None = None

    def start(self, body: str) -> None:
        self.prefix.mkdir(parents=True, exist_ok=True)
        conf = self.prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(d=self.prefix, port=PORT, body=body))
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.node.netns.name, "nginx", "-p", str(self.prefix),
             "-e", str(self.prefix / "error.log"), "-c", str(conf), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def errors(self) -> str:
        with contextlib.suppress(OSError):
            return (self.prefix / "error.log").read_text()
        return ""


# ------------------------------------------------------------------ HTTP from the client

def _read_response(sock: socket.socket, buffer: bytes, until_close: bool) -> tuple[str, bytes]:
    """One HTTP response's body (and what was read beyond it)."""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(4096)
        if not data:
            raise OSError("connection closed before the response headers")
        buffer += data
    head, rest = buffer.split(b"\r\n\r\n", 1)
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or status[1] != b"200":
        raise OSError(f"HTTP status {status[1:2]}")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if length is None and not until_close:
        raise OSError("no Content-Length on a keep-alive response")
    need = int(length.group(1)) if length else None
    while need is None or len(rest) < need:
        data = sock.recv(4096)
        if not data:
            if need is None:
                break
            raise OSError("connection closed in the middle of the body")
        rest += data
    body, beyond = (rest, b"") if need is None else (rest[:need], rest[need:])
    return body.decode(errors="replace").strip(), beyond


@dataclass(frozen=True, slots=True)
class Request:
    started: float  # monotonic
    ended: float
    server: str | None  # the real server's name from the page, None: failed
    error: str | None = None
    port: int | None = None  # the client's source port


def _local_port(sock: socket.socket) -> int | None:
    try:
        return sock.getsockname()[1] or None
    except OSError:
        return None


class Traffic:
    """A client that opens a fresh connection to the VIP every REQUEST_INTERVAL and
    GETs /, in a thread; every request is recorded."""

    def __init__(self, worker: NetnsWorker, vip: str = VIP, port: int = PORT) -> None:
        self.worker, self.vip, self.port = worker, vip, port
        self.records: list[Request] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="traffic")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(REQUEST_TIMEOUT + 5)

    def one(self) -> Request:
        started = time.monotonic()
        try:
            sock = self.worker.socket()
        except Exception as error:  # the worker thread is gone: the lab is closing
            return Request(started, time.monotonic(), None, f"no socket: {error}")
        try:
            sock.settimeout(REQUEST_TIMEOUT)
            sock.connect((self.vip, self.port))
            sock.sendall(f"GET / HTTP/1.0\r\nHost: {self.vip}\r\n\r\n".encode())
            body, _ = _read_response(sock, b"", until_close=True)
            return Request(started, time.monotonic(), body.split()[0] if body else "?",
                           port=_local_port(sock))
        except OSError as error:
            return Request(started, time.monotonic(), None, str(error) or type(error).__name__,
                           _local_port(sock))
        finally:
            sock.close()

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            record = self.one()
            with self._lock:
                self.records.append(record)
            due = max(due + REQUEST_INTERVAL, time.monotonic())
            self._stop.wait(max(0.0, due - time.monotonic()))

    def between(self, start: float, end: float) -> list[Request]:
        with self._lock:
            return [r for r in self.records if start <= r.started < end]

    def failures(self) -> list[Request]:
        with self._lock:
            return [r for r in self.records if r.server is None]


class KeepAlive:
    """One HTTP/1.1 keep-alive connection to the VIP: every get() on the same TCP
    connection, so on the same real server."""

    def __init__(self, worker: NetnsWorker, vip: str = VIP, port: int = PORT) -> None:
        self.sock = worker.socket()
        self.sock.settimeout(REQUEST_TIMEOUT)
        self.sock.connect((vip, port))
        host, local_port = self.sock.getsockname()[:2]
        self.local = f"{host}:{local_port}"
        self.vip = vip
        self._buffer = b""
        self.server: str | None = None

    def get(self, timeout: float = REQUEST_TIMEOUT) -> str:
        self.sock.settimeout(timeout)
        self.sock.sendall(f"GET / HTTP/1.1\r\nHost: {self.vip}\r\n\r\n".encode())
        body, self._buffer = _read_response(self.sock, self._buffer, until_close=False)
        name = body.split()[0] if body else "?"
        self.server = self.server or name
        return name

    def close(self) -> None:
        self.sock.close()


# ------------------------------------------------------------------ our daemon

def supervisor_available() -> bool:
    """`director run` without --vrrp-only/--checkers-only: the supervising parent.
    LVS_PAIR_SPLIT=1 runs the two halves as two processes all the same."""
    if os.environ.get("LVS_PAIR_SPLIT") == "1":
        return False
    return importlib.util.find_spec("director.supervisor") is not None


@dataclass
class Daemon:
    """`director run` on one director: one supervised process, or (until the
    supervisor exists) its two halves as two processes."""

    node: Node
    procs: list[subprocess.Popen]
    logs: list[Path]
    started_at: float

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def exited(self) -> list[str]:
        return [f"pid {p.pid} exited {p.returncode}" for p in self.procs if p.poll() is not None]

    def output(self) -> str:
        return "\n".join(log.read_text(errors="replace") for log in self.logs if log.exists())

    def kill9(self) -> tuple[list[int], list[int]]:
        """kill -9 the daemon (every process we started for it) and, under a
        supervisor, check its children die with it: (pids killed, children gone)."""
        children = [c for p in self.procs for c in child_pids(p.pid)]
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            proc.wait(5)
        wait_for(lambda: not any(pid_alive(c) for c in children), 5,
                 f"the daemon's children {children} die with it (PR_SET_PDEATHSIG)")
        return self.pids, children

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def child_pids(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rfind(")") + 2:].split()[1]) == parent:
                    found.append(int(entry.name))
    return found


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[0] != "Z"


def start_daemon(node: Node, conf: Path, state_dir: Path, log_dir: Path) -> Daemon:
    """`director run -f CONF` in the director's namespace: the one place that knows how
    the daemon is started."""
    base = [sys.executable, "-m", "director.cli.main", "run", "-f", str(conf)]
    if supervisor_available():
        runs = [([*base, "--state-dir", str(state_dir)], "director")]
    else:
        runs = [([*base, "--vrrp-only", "--state-dir", str(state_dir / "vrrp")], "vrrp"),
                ([*base, "--checkers-only", "--state-dir", str(state_dir / "checkers")],
                 "checkers")]
    procs, logs = [], []
    for argv, role in runs:
        log = log_dir / f"{node.name}-{role}-{len(list(log_dir.glob(f'{node.name}-*')))}.log"
        with log.open("w") as out:
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", node.netns.name, *argv], cwd=REPO,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(REPO)}))
        logs.append(log)
    return Daemon(node, procs, logs, time.monotonic())


# ------------------------------------------------------------------ the scenario

@dataclass
class Report:
    """What the scenario measured (monotonic times; seconds)."""

    timing: Timing
    started: float = 0.0
    a_master_after: float | None = None  # daemons started -> the client reaches dirA
    tables_ready_after: float | None = None
    balance: Counter | None = None  # requests per real server (None: failed)
    rs_name: str | None = None  # the real server stopped and started again
    rs_stopped_at: float | None = None
    rs_removed_at: float | None = None
    rs_restarted_at: float | None = None
    rs_back_at: float | None = None
    keepalive_server: str | None = None
    keepalive_synced: IpvsConnection | None = None
    a_killed_at: float | None = None
    b_vip_at: float | None = None  # dirB holds the VIP
    client_on_b_at: float | None = None  # the client's ARP entry points at dirB
    keepalive_after_failover: str | None = None
    keepalive_error: str | None = None
    a_restarted_at: float | None = None
    a_back_at: float | None = None  # the client reaches dirA again
    b_released_at: float | None = None
    keepalive_after_return: str | None = None
    ended: float | None = None
    windows: list[tuple[str, float, float]] = field(default_factory=list)

    @property
    def removal_seconds(self) -> float | None:
        if self.rs_removed_at is None or self.rs_stopped_at is None:
            return None
        return self.rs_removed_at - self.rs_stopped_at

    @property
    def back_seconds(self) -> float | None:
        if self.rs_back_at is None or self.rs_restarted_at is None:
            return None
        return self.rs_back_at - self.rs_restarted_at

    @property
    def takeover_seconds(self) -> float | None:
        if self.b_vip_at is None or self.a_killed_at is None:
            return None
        return self.b_vip_at - self.a_killed_at


class PairScenario:
    def __init__(self, lab: LvsLab, workdir: Path, say: Callable[[str], None]) -> None:
        self.lab = lab
        self.workdir = workdir
        self.say = say
        self.confs = {name: workdir / f"{name}{path.suffix}" for name, path in CONFIGS.items()}
        for name, path in CONFIGS.items():
            self.confs[name].write_text(adapt_to_lab(path))
        self.report = Report(timing_of(self.confs["dirA"], self.confs["dirB"]))
        self.nginx = {rs.name: Nginx(rs, workdir / f"nginx-{rs.name}") for rs in lab.dr}
        self.daemons: dict[str, Daemon] = {}
        self.worker = NetnsWorker(lab.client.netns.name)
        self.traffic = Traffic(self.worker)
        self.keepalive: KeepAlive | None = None
        self.macs = {d.name: d.run("cat", "/sys/class/net/front/address").stdout.strip()
                     for d in lab.directors}

    # -------------------------------------------------------------- observations

    def at(self, when: float | None = None) -> str:
        return f"[{(when or time.monotonic()) - self.report.started:5.1f} s]"

    def holds_vip(self, director: str) -> bool:
        out = subprocess.run(["ip", "-n", self.lab.node(director).netns.name, "-4", "-o",
                              "addr", "show", "dev", "front"], capture_output=True,
                             text=True, timeout=10).stdout
        return f" {VIP}/" in out

    def client_reaches(self) -> str | None:
        """The director whose MAC the client's ARP entry for the VIP holds."""
        out = self.lab.client.run("ip", "neigh", "show", VIP).stdout
        for name, mac in self.macs.items():
            if f"lladdr {mac}" in out:
                return name
        return None

    def weights(self, director: str) -> dict[str, int]:
        services = self.lab.node(director).netns.listing()
        if SERVICE not in services:
            return {}
        return {str(d["address"]).split(":")[0]: int(d["Weight"])
                for d in services[SERVICE].dests}

    def site_in_table(self, director: str) -> set[str]:
        """Which of the site's real servers the director's table holds (weight > 0)."""
        addresses = {rs.front: rs.name for rs in self.lab.dr}
        return {addresses.get(a, a) for a, w in self.weights(director).items() if w > 0}

    def lvsadm(self, director: str) -> str:
        done = self.lab.node(director).run(sys.executable, "-m", "director.cli.lvsadm", "-Ln",
                                           check=False)
        return (done.stdout + done.stderr).rstrip()

    def show_table(self, director: str) -> None:
        self.say(f"    {director}$ lvsadm -Ln")
        for line in self.lvsadm(director).splitlines():
            self.say(f"      {line}")

    def show_log_line(self, director: str, text: str) -> None:
        """The director's last log line with TEXT, as the operator would grep it."""
        daemon = self.daemons.get(director)
        lines = [line for line in (daemon.output() if daemon else "").splitlines()
                 if text in line]
        if lines:
            self.say(f"    {director}'s log: {lines[-1].strip()}")

    def check_daemons(self) -> None:
        for name, daemon in self.daemons.items():
            if not daemon.alive():
                tail = "\n".join(daemon.output().splitlines()[-12:])
                raise ScenarioError(f"{name}'s daemon exited: {daemon.exited()}; its log "
                                    f"ends:\n{tail}")

    # -------------------------------------------------------------- steps

    def start_real_servers(self) -> None:
        for rs in self.lab.dr:
            body = f"{rs.name} sorry, the site is down" if rs.name == SORRY else rs.name
            self.nginx[rs.name].start(body)
        for rs in self.lab.dr:
            self._wait_rs_answers(rs)
        self.say(f"real servers: nginx on {', '.join(SITE)} (the site) and {SORRY} (the "
                 f"sorry server), each with the VIP {VIP} on lo, arp_ignore=1, "
                 "arp_announce=2")

    def _wait_rs_answers(self, rs: Node) -> None:
        def answers() -> bool:
            nginx = self.nginx[rs.name]
            if nginx.proc is None or nginx.proc.poll() is not None:
                raise ScenarioError(f"nginx on {rs.name} exited: {nginx.errors()}")
            return self.traffic_to(rs.front) is not None
        wait_for(answers, STEP_TIMEOUT, f"nginx on {rs.name} answers")

    def traffic_to(self, address: str) -> str | None:
        return Traffic(self.worker, vip=address).one().server

    def start_directors(self) -> None:
        mode = ("`director run -f CONF` (supervisor with its VRRP and checkers children)"
                if supervisor_available() else
                "`director run --vrrp-only` + `director run --checkers-only` (the "
                "daemon's two halves as two processes)")
        self.say(f"directors: {mode}")
        self.say("    dirA: conf/director-a.conf  dirB: conf/director-b.yaml "
                 f"(adapted: VIP {VIP}, VRRP on front, sync on back, real servers "
                 f"{LAB_VALUES['RS1']} {LAB_VALUES['RS2']}, sorry {LAB_VALUES['SORRY']})")
        self.report.started = started = time.monotonic()
        for name in ("dirA", "dirB"):
            self.daemons[name] = self._start(name)

        def ready() -> bool:
            self.check_daemons()
            return (self.holds_vip("dirA") and not self.holds_vip("dirB")
                    and all(self.site_in_table(d) == set(SITE) for d in ("dirA", "dirB")))
        ready_at = wait_for(ready, START_TIMEOUT, "dirA holds the VIP and both directors' "
                            "tables hold both real servers")
        self.report.a_master_after = self.report.tables_ready_after = ready_at - started
        self.say(f"{self.at()} dirA is MASTER and holds {VIP}; dirB is BACKUP; both "
                 f"tables hold {' and '.join(SITE)}: {ready_at - started:.1f} s after the "
                 "start")
        self.traffic.start()
        wait_for(lambda: self.client_reaches() == "dirA", STEP_TIMEOUT,
                 "the client reaches the VIP at dirA")
        self.show_table("dirA")

    def _start(self, name: str) -> Daemon:
        return start_daemon(self.lab.node(name), self.confs[name], self.workdir / f"state-{name}",
                            self.workdir)

    def balance(self, seconds: float = 2.0) -> Counter:
        start = time.monotonic()
        time.sleep(seconds)
        counts = Counter(r.server for r in self.traffic.between(start, time.monotonic()))
        self.report.balance = counts
        shares = ", ".join(f"{name} {counts[name]}" for name in sorted(counts, key=str))
        self.say(f"{self.at()} traffic balanced over {seconds:g} s "
                 f"({sum(counts.values())} requests, one every {REQUEST_INTERVAL * 1000:.0f} "
                 f"ms, wrr weights 1:1): {shares}")
        return counts

    def stop_real_server(self, name: str) -> None:
        report = self.report
        report.rs_name = name
        self.nginx[name].stop()
        report.rs_stopped_at = time.monotonic()
        self.say(f"{self.at()} nginx on {name} stopped (SIGTERM to its pid); its HTTP_GET check "
                 f"should take it out within {report.timing.check_bound:.1f} s")
        report.rs_removed_at = wait_for(
            lambda: name not in self.site_in_table("dirA"),
            report.timing.check_bound + CHECK_SLACK + STEP_TIMEOUT, f"{name} leaves dirA's table")
        self.say(f"{self.at()} {name} removed from dirA's table after "
                 f"{report.removal_seconds:.1f} s (bound {report.timing.check_bound:.1f} s)")
        report.windows.append((f"{name} stopped, still in the table", report.rs_stopped_at,
                               report.rs_removed_at + 0.5))
        self.show_log_line("dirA", "is DOWN")
        meanwhile = self.traffic.between(report.rs_stopped_at, report.rs_removed_at)
        refused = [r for r in meanwhile if r.server is None]
        self.say(f"    {len(refused)} of {len(meanwhile)} requests failed in between: those "
                 f"the table still sent to {name} ({refused[0].error if refused else 'none'})")
        self.show_table("dirA")
        self.check_daemons()

    def restart_real_server(self, name: str) -> None:
        report = self.report
        quiet_from = time.monotonic()
        time.sleep(1.5)  # traffic meanwhile: the other real server takes it all
        rest = self.traffic.between(quiet_from, time.monotonic())
        self.say(f"{self.at()} meanwhile: {len(rest)} requests, "
                 f"{Counter(r.server for r in rest).get(name, 0)} to {name}, "
                 f"{sum(r.server is None for r in rest)} failed")
        self.nginx[name].start(name)
        report.rs_restarted_at = time.monotonic()
        self.say(f"{self.at()} nginx on {name} started again")
        report.rs_back_at = wait_for(lambda: name in self.site_in_table("dirA"),
                                     report.timing.check_bound + STEP_TIMEOUT,
                                     f"{name} back in dirA's table")
        self.say(f"{self.at()} {name} back in dirA's table after {report.back_seconds:.1f} s "
                 "(its next check)")
        self.show_log_line("dirA", "is UP")
        start = time.monotonic()
        wait_for(lambda: any(r.server == name for r in self.traffic.between(start, 1e12)),
                 STEP_TIMEOUT, f"{name} answers requests again")
        self.say(f"{self.at()} {name} answers requests again")
        self.check_daemons()

    def open_keepalive(self) -> None:
        report = self.report
        self.keepalive = conn = KeepAlive(self.worker)
        report.keepalive_server = conn.get()
        conn.get()
        self.say(f"{self.at()} a keep-alive HTTP connection from {conn.local} through dirA "
                 f"to {report.keepalive_server}")
        found: list[IpvsConnection] = []

        def synced() -> bool:
            found[:] = [c for c in self.lab.connections("dirB")
                        if c.client == conn.local and c.state == "ESTABLISHED"]
            return bool(found)
        try:
            wait_for(synced, STEP_TIMEOUT, "")
        except ScenarioError:  # the failover step shows what that costs
            self.say(f"{self.at()} connection sync: NOT in dirB's /proc/net/ip_vs_conn "
                     f"within {STEP_TIMEOUT:g} s")
            return
        report.keepalive_synced = entry = found[0]
        self.say(f"{self.at()} connection sync: dirB's /proc/net/ip_vs_conn has it: "
                 f"{entry.protocol} {entry.client} -> {entry.virtual} -> {entry.destination} "
                 f"{entry.state}")

    def kill_director(self, name: str = "dirA", other: str = "dirB") -> None:
        report = self.report
        pids, children = self.daemons.pop(name).kill9()
        report.a_killed_at = killed = time.monotonic()
        bound = report.timing.master_down + VRRP_SLACK
        with_it = (f" (its children {' '.join(map(str, children))} died with it)"
                   if children else "")
        self.say(f"{self.at()} kill -9 {' '.join(map(str, pids))}{with_it}: {name}'s daemon "
                 "is gone "
                 f"({other} should take over {report.timing.master_down:.2f} s, the "
                 f"master-down interval, after {name}'s last advert)")
        report.b_vip_at = wait_for(lambda: self.holds_vip(other), bound + STEP_TIMEOUT,
                                   f"{other} takes the VIP")
        report.client_on_b_at = wait_for(lambda: self.client_reaches() == other, STEP_TIMEOUT,
                                         f"the client's ARP entry for {VIP} points at {other}")
        report.windows.append((f"{name} killed", killed, killed + bound))
        self.say(f"{self.at()} {other} is MASTER and holds {VIP}: "
                 f"{report.takeover_seconds:.2f} s after the kill; the client reaches "
                 f"{other} (gratuitous ARP) at {report.client_on_b_at - killed:.2f} s")
        self.show_log_line(other, "Entering MASTER STATE")
        if self.holds_vip(name):
            self.say(f"    ({name} still holds {VIP}: nobody removed it at the kill -9; "
                     "the client's ARP entry follows the gratuitous ARP)")
        time.sleep(1.0)
        self._ask_keepalive("after_failover", other)
        self.show_table(other)
        window = self.traffic.between(killed - 1, time.monotonic())
        failed = [r for r in window if r.server is None]
        self.say(f"{self.at()} requests since the kill: {len(window)}, failed {len(failed)}"
                 + (f", outage {failed[-1].ended - failed[0].started:.2f} s" if failed else
                    f" (longest gap between answers {max_gap(window):.2f} s)"))
        if not failed:
            self.say(f"    (a kill -9 stops the daemon, not the kernel: {name}'s IPVS kept "
                     f"forwarding until the client followed {other}'s gratuitous ARP)")
        self.check_daemons()

    def _ask_keepalive(self, when: str, through: str) -> None:
        conn = self.keepalive
        if conn is None:
            return
        try:
            answer = conn.get()
        except OSError as error:
            answer = None
            self.report.keepalive_error = f"{when}: {error or type(error).__name__}"
        setattr(self.report, f"keepalive_{when}", answer)
        verdict = (f"answered by {answer}, the same real server" if answer ==
                   self.report.keepalive_server else f"FAILED ({self.report.keepalive_error})"
                   if answer is None else f"answered by {answer}, NOT the same real server")
        self.say(f"{self.at()} the keep-alive connection, now through {through}: {verdict}")

    def return_director(self, name: str = "dirA", other: str = "dirB") -> None:
        report = self.report
        self.daemons[name] = self._start(name)
        report.a_restarted_at = restarted = time.monotonic()
        if report.timing.preempt:
            self.say(f"{self.at()} {name}'s daemon started again; with priority above "
                     f"{other}'s and preemption on, it should take the VIP back")
            report.b_released_at = wait_for(lambda: not self.holds_vip(other),
                                            START_TIMEOUT, f"{other} releases the VIP")
            report.a_back_at = wait_for(lambda: self.client_reaches() == name, STEP_TIMEOUT,
                                        f"the client reaches {name} again")
            report.windows.append((f"{name} returns", restarted,
                                   report.a_back_at + VRRP_SLACK))
            self.say(f"{self.at()} {name} is MASTER again ({report.a_back_at - restarted:.1f} s "
                     f"after its start, Python start-up included); {other} released the VIP")
            self.show_log_line(name, "Entering MASTER STATE")
            self.show_log_line(other, "Entering BACKUP STATE")
            time.sleep(1.0)
            self._ask_keepalive("after_return", name)
        else:
            self.say(f"{self.at()} {name}'s daemon started again; nopreempt: {other} keeps "
                     "the VIP")
            time.sleep(report.timing.master_down + VRRP_SLACK)
            if not self.holds_vip(other):
                raise ScenarioError(f"{other} lost the VIP though {name} does not preempt")
        self.show_table(name)
        self.check_daemons()

    def finish(self) -> None:
        self.traffic.stop()
        self.report.ended = time.monotonic()
        records = self.traffic.records
        failed = [r for r in records if r.server is None]
        self.say(f"{self.at()} the client sent {len(records)} requests: "
                 f"{len(records) - len(failed)} answered, {len(failed)} failed")
        where = Counter((window_of(self.report, r) or "outside every window", r.error)
                        for r in failed)
        for (window, error), count in sorted(where.items(), key=str):
            self.say(f"    {count} failed: {window}: {error}")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.traffic.stop()
        if self.keepalive is not None:
            self.keepalive.close()
        for daemon in self.daemons.values():
            daemon.stop()
        for nginx in self.nginx.values():
            nginx.stop()
        self.worker.close()


def max_gap(records: list[Request]) -> float:
    answered = [r.ended for r in records if r.server is not None]
    return max((b - a for a, b in itertools.pairwise(answered)), default=0.0)


def _drop_lab_vip(lab: LvsLab) -> None:
    """lvs_lab puts the VIP on dirA by hand; here VRRP places it."""
    lab.directors[0].run("ip", "addr", "del", f"{VIP}/32", "dev", "front")
    lab.directors[0].run("ip", "addr", "del", "192.0.2.1/24", "dev", "back")


@contextlib.contextmanager
def pair_scenario(say: Callable[[str], None] = lambda text: None) -> Iterator[PairScenario]:
    """The lab with nginx on dr1..dr3 and no daemon yet; everything goes on the way out."""
    with tempfile.TemporaryDirectory(prefix="lvs-pair-") as workdir, \
            lvs_lab(nat=0, dr=len(SITE) + 1, directors=2) as lab:
        _drop_lab_vip(lab)
        scenario = PairScenario(lab, Path(workdir), say)
        try:
            scenario.start_real_servers()
            yield scenario
        finally:
            scenario.close()


# ------------------------------------------------------------------ verdicts

@dataclass(frozen=True)
class Verdict:
    ok: bool
    text: str


def failures_outside_windows(scenario: PairScenario) -> list[Request]:
    """Failed requests outside every window in which a failure is expected: the
    failovers (master-down interval + slack) and a stopped real server's check time."""
    return [r for r in scenario.traffic.failures() if window_of(scenario.report, r) is None]


def window_of(report: Report, request: Request) -> str | None:
    """The window a request falls in (it may have been sent a little before)."""
    for name, start, end in report.windows:
        if start - REQUEST_TIMEOUT <= request.started <= end:
            return name
    return None


def verdicts(scenario: PairScenario) -> dict[str, Verdict]:
    """Every promise of the scenario that was reached, kept or not: what the demo's exit
    status and the test's assertions rest on."""
    report, timing = scenario.report, scenario.report.timing
    out: dict[str, Verdict] = {}
    if (balance := report.balance) is not None:
        out["balanced"] = Verdict(
            all(balance[name] >= 3 for name in SITE) and balance[None] == 0,
            f"traffic balanced over {', '.join(SITE)}: {dict(balance)}")
    stopped = report.rs_name
    if report.rs_removed_at is not None and report.removal_seconds is not None:
        out["removed"] = Verdict(
            report.removal_seconds <= timing.check_bound + CHECK_SLACK,
            f"the stopped real server {stopped} left the table in "
            f"{report.removal_seconds:.1f} s (bound {timing.check_bound:.1f} s + "
            f"{CHECK_SLACK:g} s slack)")
        after = scenario.traffic.between(report.rs_removed_at + 0.5,
                                         report.rs_restarted_at or time.monotonic())
        elsewhere = [r for r in after if r.server is None or r.server == stopped]
        out["no_requests_while_out"] = Verdict(
            bool(after) and not elsewhere,
            f"once removed, {stopped} gets no request: {len(after)} requests, "
            f"{len(elsewhere)} to {stopped} or failed")
    if report.rs_back_at is not None:
        back = scenario.traffic.between(report.rs_back_at, report.a_killed_at or 1e12)
        count = sum(r.server == stopped for r in back)
        out["back"] = Verdict(count > 0, f"back in the table, {stopped} gets requests "
                              f"again: {count} of {len(back)}")
    if report.takeover_seconds is not None:
        bound = timing.master_down + VRRP_SLACK
        out["takeover"] = Verdict(
            report.takeover_seconds <= bound,
            f"dirB took the VIP {report.takeover_seconds:.2f} s after the kill (bound: "
            f"master-down {timing.master_down:.2f} s + {VRRP_SLACK:g} s)")
    outside = failures_outside_windows(scenario)
    shown = [(round(r.started - report.started, 2), r.error, r.port,
              [(round(o.started - report.started, 2), o.server)
               for o in scenario.traffic.records if o.port == r.port and o is not r])
             for r in outside[:5]]
    out["no_failures_outside_windows"] = Verdict(
        not outside, f"failed requests outside the failover windows: {len(outside)} {shown}")
    if report.a_killed_at is not None:
        out["synced"] = Verdict(report.keepalive_synced is not None,
                                "the keep-alive connection was in dirB's connection table "
                                "before the failover")
        out["keepalive"] = Verdict(
            report.keepalive_after_failover is not None
            and report.keepalive_after_failover == report.keepalive_server,
            f"the keep-alive connection kept working through dirB: answered by "
            f"{report.keepalive_after_failover} (before: {report.keepalive_server})"
            + (f"; {report.keepalive_error}" if report.keepalive_error else ""))
    if report.a_restarted_at is not None and timing.preempt:
        out["returned"] = Verdict(report.a_back_at is not None,
                                  "dirA took the VIP back on its return (preemption)")
    return out
