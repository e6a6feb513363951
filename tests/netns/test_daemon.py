"""`director run -f CONF` (the supervisor and its two children) as systemd starts it:
in a namespace, with NOTIFY_SOCKET, the IPVS table in memory (--memory-ipvs: the host
has no ip_vs), VRRP for real (v3, advert_int 0.2 s) on a bridge with a second director.

- READY=1 once both children are up; a child killed with -9 comes back after the
  backoff without disturbing the other (the VRRP instance stays MASTER, no election);
- SIGHUP: a valid change reaches both children (RELOADING=1 ... READY=1); a broken one
  is refused by both children, every problem located, nothing changed;
  `director reload` finds the problems itself and signals nobody;
- SIGTERM: the backup has the VIP at once and the parent exits 0, its children gone;
  kill -9 of the parent: the children die with it, and the next start removes the
  VIP that was left behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.netns.lab import Lab, Node, Process, wait_until

ROOT = Path(__file__).resolve().parents[2]
VIP = "192.0.2.100"
SERVICE_VIP = "203.0.113.10"
ADVERT = 0.2
MASTER_DOWN = 4 * ADVERT


def config(priority: int, weight: int = 1, broken: bool = False) -> str:
    algo = "nosuch" if broken else "wrr"
    return f"""
global_defs {{
    script_user root
    vrrp_version 3
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int {ADVERT}
    virtual_ipaddress {{
        {VIP}/24
    }}
}}
virtual_server {SERVICE_VIP} 80 {{
    delay_loop 1
    lb_algo {algo}
    lb_kind DR
    protocol TCP
    real_server 198.51.100.7 80 {{
        weight {weight}
    }}
}}
"""


class Notifications:
    """A NOTIFY_SOCKET the test listens on, as systemd does."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.received: list[dict[str, str]] = []

    def _poll(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return
        self.received.append(dict(line.split("=", 1)
                                  for line in data.decode().splitlines() if "=" in line))

    def wait(self, key: str, timeout: float = 10.0) -> dict[str, str]:
        """The next message (after those already taken) that has `key`."""
        deadline = time.monotonic() + timeout
        while True:
            while self.received:
                message = self.received.pop(0)
                if key in message:
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {key} from the daemon within {timeout} s")
            self._poll(left)

    def close(self) -> None:
        self.sock.close()


class Daemon:
    """One `director run` (the supervisor) in a node."""

    def __init__(self, lab: Lab, node: Node, priority: int):
        self.lab, self.node = lab, node
        self.conf = lab.workdir / f"director-{node.role}.conf"
        self.conf.write_text(config(priority))
        self.state = lab.workdir / f"state-{node.role}"
        self.notify = Notifications(lab.workdir / f"notify-{node.role}")
        self.runs = 0
        self.process: Process | None = None

    def start(self, *args: str | Path) -> Daemon:
        self.runs += 1
        self.process = self.lab.spawn(
            self.node.ns, sys.executable, "-m", "director.cli.main", "run", "-f", self.conf,
            "--memory-ipvs", "--state-dir", self.state, *args,
            log=self.lab.workdir / f"director-{self.node.role}.{self.runs}.log",
            env={"PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": str(self.notify.path)})
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        return self.process.output() if self.process else ""

    def status(self, name: str) -> dict[str, Any]:
        return json.loads((self.state / name).read_text())

    def checkers(self) -> dict[str, Any]:
        return self.status("status.json")

    def vrrp(self) -> dict[str, Any]:
        return self.status("vrrp-status.json")

    def instance(self) -> dict[str, Any]:
        return self.vrrp()["instances"]["VI_1"]

    def child_pids(self) -> tuple[int, int]:
        return self.vrrp()["pid"], self.checkers()["pid"]

    def wait_state(self, state: str, timeout: float = 5.0) -> None:
        wait_until(lambda: self._try(lambda: self.instance()["state"] == state), timeout,
                   interval=0.02, message=f"{self.node.role} VI_1 {state}\n{self.output()}")

    def wait_child(self, name: str, old_pid: int, timeout: float) -> int:
        """The pid of the child that replaced `old_pid` once its status file says so."""
        def new_pid() -> int | None:
            pid = self._try(lambda: self.status(name)["pid"])
            return pid if pid not in (None, old_pid) and alive(pid) else None

        try:
            return wait_until(new_pid, timeout, interval=0.02)
        except TimeoutError:
            raise AssertionError(f"{name}: no new child within {timeout} s\n"
                                 f"{self.output()}") from None

    def reload_counts(self) -> tuple[int, int]:
        return self.vrrp()["reload"]["count"], self.checkers()["reload"]["count"]

    @staticmethod
    def _try(read):
        try:
            return read()
        except (OSError, ValueError, KeyError):
            return None


def where(text: str, words: str) -> str:
    """LINE:COL of the value in `words` (e.g. "lb_algo nosuch") in a config text."""
    for number, line in enumerate(text.splitlines(), 1):
        if words in line:
            return f"{number}:{line.index(words) + len(words.split()[0]) + 2}"
    raise AssertionError(f"{words!r} not in the config")


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def api_status(socket_path: Path) -> dict[str, Any]:
    """GET /status from the API's unix socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(socket_path))
        sock.sendall(b"GET /status HTTP/1.0\r\nHost: director\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0], head
    return json.loads(body)


def director_reload(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "director.cli.main", "reload", "--state-dir",
         str(daemon.state), *args], capture_output=True, text=True, timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)


@pytest.fixture
def daemons(lab: Lab) -> Iterator[list[Daemon]]:
    made: list[Daemon] = []
    yield made
    for daemon in made:
        daemon.notify.close()


def test_children_restart_alone_and_reloads(lab: Lab, daemons: list[Daemon]):
    node = lab.add_node("dir1")
    daemon = Daemon(lab, node, 150)
    daemons.append(daemon)
    started = time.monotonic()
    api = daemon.state / "api.sock"
    daemon.start("--api-socket", api)
    ready = daemon.notify.wait("READY", timeout=15)
    took = time.monotonic() - started
    vrrp_pid, checkers_pid = daemon.child_pids()
    assert parent_of(vrrp_pid) == parent_of(checkers_pid) == daemon.pid
    assert (daemon.state / "director.pid").read_text().strip() == str(daemon.pid)
    assert f"vrrp pid {vrrp_pid}" in ready.get("STATUS", "")
    print(f"READY=1 {took:.2f} s after start")
    daemon.wait_state("MASTER")
    wait_until(lambda: node.has_address(VIP), 5)
    elections = daemon.instance()["counters"]["became_master"]

    # kill -9 of the checkers child: a new one after the backoff, VRRP untouched
    os.kill(checkers_pid, signal.SIGKILL)
    killed = time.monotonic()
    new_checkers = daemon.wait_child("status.json", checkers_pid, timeout=6)
    print(f"checkers child back {time.monotonic() - killed:.2f} s after kill -9")
    assert daemon.vrrp()["pid"] == vrrp_pid
    assert daemon.instance()["state"] == "MASTER"
    assert daemon.instance()["counters"]["became_master"] == elections
    assert f"checkers child (pid {checkers_pid}) exited: killed by SIGKILL; restarting " \
           f"in 1 s" in daemon.output()
    children = {c["role"]: c for c in api_status(api)["daemon"]["children"]}
    assert children["checkers"]["pid"] == new_checkers
    assert children["checkers"]["restarts"] == 1
    assert children["checkers"]["last_exit"] == "killed by SIGKILL"
    assert children["vrrp"]["restarts"] == 0 and children["vrrp"]["pid"] == vrrp_pid
    # a dump on SIGUSR1 (keepalived's data dump)
    daemon.process.send_signal(signal.SIGUSR1)
    wait_until(lambda: (daemon.state / "director.data").exists(), 5)

    # kill -9 of the VRRP child: a new one, the checkers child untouched
    os.kill(vrrp_pid, signal.SIGKILL)
    new_vrrp = daemon.wait_child("vrrp-status.json", vrrp_pid, timeout=6)
    daemon.wait_state("MASTER")
    assert daemon.checkers()["pid"] == new_checkers and alive(new_checkers)
    assert parent_of(new_vrrp) == parent_of(new_checkers) == daemon.pid

    # SIGHUP with a valid change: both children reload, RELOADING=1 then READY=1
    wait_until(lambda: daemon._try(daemon.reload_counts) is not None, 5)
    before = daemon.reload_counts()
    elections = daemon.instance()["counters"]["became_master"]
    daemon.conf.write_text(config(150, weight=3))
    daemon.process.send_signal(signal.SIGHUP)
    reloading = daemon.notify.wait("RELOADING")
    assert int(reloading["MONOTONIC_USEC"]) > 0
    daemon.notify.wait("READY")
    after = daemon.reload_counts()
    assert after[0] > before[0] and after[1] > before[1], (before, after)
    assert daemon.checkers()["reload"]["ok"] is True
    wait_until(lambda: "weight 1 -> 3" in daemon.output(), 5)
    assert daemon.instance()["state"] == "MASTER"
    assert daemon.instance()["counters"]["became_master"] == elections
    assert daemon.child_pids() == (new_vrrp, new_checkers)

    # SIGHUP with a broken config: refused by both children, located, nothing changes
    broken = config(150, weight=-4, broken=True)
    daemon.conf.write_text(broken)
    before = daemon.reload_counts()
    daemon.process.send_signal(signal.SIGHUP)
    daemon.notify.wait("RELOADING")
    daemon.notify.wait("READY")
    out = daemon.output()
    scheduler = f"{daemon.conf}:{where(broken, 'lb_algo nosuch')}: unknown scheduler 'nosuch'"
    assert f"reload: {scheduler}" in out
    assert f"reload: {daemon.conf}:{where(broken, 'weight -4')}: weight -4 is out of range" \
        in out
    assert "reload refused (checkers, vrrp)" in out
    assert daemon.reload_counts() == (before[0] + 1, before[1] + 1)
    assert daemon.vrrp()["reload"]["ok"] is False
    assert daemon.checkers()["reload"]["ok"] is False
    assert daemon.child_pids() == (new_vrrp, new_checkers)
    assert daemon.instance()["state"] == "MASTER"

    # director reload: refused (1) with the children's problems, then applied (0)
    done = director_reload(daemon)
    assert done.returncode == 1, done.stdout + done.stderr
    assert scheduler in done.stderr and done.stderr.count(scheduler) == 1
    assert "checkers: FAILED" in done.stdout and "vrrp: FAILED" in done.stdout
    assert daemon.reload_counts() == (before[0] + 2, before[1] + 2)
    assert daemon.child_pids() == (new_vrrp, new_checkers)
    daemon.conf.write_text(config(150, weight=5))
    done = director_reload(daemon)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "checkers: applied in" in done.stdout and "vrrp: applied in" in done.stdout
    after = daemon.reload_counts()
    assert after[0] > before[0] and after[1] > before[1]
    assert "weight 3 -> 5" in daemon.output()

    # SIGTERM: everything stops, exit 0; then nothing to reload (7)
    assert daemon.process.stop(signal.SIGTERM, timeout=15) == 0, daemon.output()
    assert not alive(new_vrrp) and not alive(new_checkers)
    assert not (daemon.state / "director.pid").exists()
    assert director_reload(daemon).returncode == 7
    assert "Traceback" not in daemon.output()


def test_stop_hands_over_and_kill9_leaves_no_child(lab: Lab, daemons: list[Daemon]):
    a, b = lab.add_node("dir1"), lab.add_node("dir2")
    first = Daemon(lab, a, 150)
    second = Daemon(lab, b, 100)
    daemons += [first, second]
    first.start()
    first.notify.wait("READY", timeout=15)
    first.wait_state("MASTER")
    second.start()
    second.notify.wait("READY", timeout=15)
    second.wait_state("BACKUP")
    wait_until(lambda: a.has_address(VIP), 5)
    time.sleep(3 * ADVERT)
    assert not b.has_address(VIP)

    # SIGTERM: graceful handover, the parent exits 0 and its children are gone
    children = first.child_pids()
    first.process.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    wait_until(lambda: b.has_address(VIP), 2, interval=0.01)
    handover = time.monotonic() - stopped
    print(f"SIGTERM -> the backup holds the VIP: {handover:.3f} s")
    assert handover < 1.0
    assert first.process.wait(10) == 0, first.output()
    assert not any(alive(pid) for pid in children)
    first.notify.wait("STOPPING", timeout=1)
    assert not a.has_address(VIP)

    # back, and preempts
    first.start()
    first.notify.wait("READY", timeout=15)
    first.wait_state("MASTER")
    wait_until(lambda: a.has_address(VIP), 5)
    children = first.child_pids()

    # kill -9 of the parent: the children follow it (PDEATHSIG), the VIP stays behind
    killed = time.monotonic()
    first.process.stop(signal.SIGKILL)
    wait_until(lambda: not any(alive(pid) for pid in children), 1.0, interval=0.01,
               message="the children die with the parent")
    print(f"children gone {time.monotonic() - killed:.3f} s after kill -9 of the parent")
    assert a.has_address(VIP), "a killed VRRP child leaves its VIP (as keepalived does)"
    wait_until(lambda: b.has_address(VIP), 3 * MASTER_DOWN, interval=0.01)

    # restarted: the stale VIP goes first, then the election gives it back to a
    first.start()
    first.notify.wait("READY", timeout=15)
    wait_until(lambda: "removed a leftover of a previous run" in first.output(), 5)
    first.wait_state("MASTER")
    wait_until(lambda: a.has_address(VIP), 5)
    wait_until(lambda: not b.has_address(VIP), 3)
    assert "Traceback" not in first.output() + second.output()
