"""The whole director daemon (`director run -f CONF`: a supervisor, its VRRP child and
its checker/IPVS child) on both directors of the LVS lab, against the real ip_vs:
children killed and restarted, reloads, a graceful stop, a kill -9 and a restart.

dirA (priority 150) and dirB (100) float the lab's VIP with VRRP v3 (advert_int 0.5 s)
and run the same DR virtual server (TCP_CHECK on dr1 and dr2) with the kernel's
connection sync between them. The tests share one lab and one pair of daemons; each
starts from "both running, dirA MASTER with the VIP and both real servers in its table".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_lab import (
    PORT,
    REPO,
    START_TIMEOUT,
    Daemon,
    Prober,
    ProbeReport,
    VipWatch,
    holds_vip,
    longest,
    master_down_interval,
    pair_config,
    wait_for,
)
from lvs_lab import GATEWAY, VIP, Conn, LvsLab, lab_fixture

SERVICE = f"TCP {VIP}:{PORT}"
PRIORITY = {"dirA": 150, "dirB": 100}
FAILOVER = master_down_interval(PRIORITY["dirB"]) + 2.0  # + the slow guest's margin
# a lost SYN is retransmitted after 1 s: anything near that is a failure a client saw
GAP_LIMIT = 0.25
# A connection begun this long after the new master took the VIP may still have
# sent its SYN to the old one: the client learns the move from the GARP just after.
IN_FLIGHT = 0.05
MOVE_WINDOW = 1.0  # s after the VIP changes hands

lab = lab_fixture(nat=0, dr=2, directors=2)


class Pair:
    """The two daemons, their configs and state directories, and the VIP watch."""

    def __init__(self, lab: LvsLab, workdir: Path) -> None:
        self.lab = lab
        self.workdir = workdir
        self.daemons: dict[str, Daemon] = {}
        self.started = 0
        self.watch = VipWatch(lab)
        for name in PRIORITY:
            self.configure(name)

    def conf(self, name: str) -> Path:
        return self.workdir / f"{name}.conf"

    def state_dir(self, name: str) -> Path:
        return self.workdir / f"{name}-state"

    def configure(self, name: str, priority: int | None = None,
                  weights: dict[str, int] | None = None) -> None:
        self.conf(name).write_text(pair_config(self.lab, priority or PRIORITY[name], weights))

    def start(self, name: str, *options: str) -> Daemon:
        self.started += 1
        daemon = Daemon(self.lab, name, self.conf(name), self.state_dir(name),
                        self.workdir / f"{name}-{self.started}.log", *options)
        self.daemons[name] = daemon
        return daemon

    def a(self) -> Daemon:
        return self.daemons["dirA"]

    def b(self) -> Daemon:
        return self.daemons["dirB"]

    def ensure(self) -> None:
        """Both daemons running with the tests' configs, dirA MASTER, dirB BACKUP, dr1
        and dr2 in dirA's table."""
        for name in PRIORITY:
            daemon = self.daemons.get(name)
            if daemon is None or not daemon.running or \
                    self.conf(name).read_text() != pair_config(self.lab, PRIORITY[name]):
                if daemon is not None:
                    daemon.stop()
                self.configure(name)
                self.start(name)
        for daemon in self.daemons.values():
            daemon.wait_ready()
        a, b = self.lab.directors
        wait_for(lambda: self.a().state() == "MASTER" and self.b().state() == "BACKUP"
                 and holds_vip(a) and not holds_vip(b), START_TIMEOUT,
                 "dirA MASTER with the VIP, dirB BACKUP")
        wait_for(lambda: weights(self.lab, "dirA") == BOTH, START_TIMEOUT,
                 "dr1 and dr2 in dirA's table")

    def close(self) -> None:
        for daemon in self.daemons.values():
            daemon.kill()
        self.watch.close()


def weights(lab: LvsLab, director: str) -> dict[str, int]:
    services = lab.node(director).netns.listing()
    if SERVICE not in services:
        return {}
    return {str(d["address"]): int(d["Weight"]) for d in services[SERVICE].dests}


BOTH = {f"198.51.100.21:{PORT}": 1, f"198.51.100.22:{PORT}": 1}


@pytest.fixture(scope="module")
def pair(lab: LvsLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    # VRRP owns the VIP here (the lab puts it on dirA; DR needs no gateway)
    lab.directors[0].run("ip", "addr", "del", f"{VIP}/32", "dev", "front")
    lab.directors[0].run("ip", "addr", "del", f"{GATEWAY}/24", "dev", "back")
    lab.clear_ipvs()
    lab.start_servers([(rs, PORT) for rs in lab.dr])
    pair = Pair(lab, tmp_path_factory.mktemp("daemons"))
    try:
        yield pair
    finally:
        pair.close()
        lab.clear_ipvs()
        for node in lab.directors:
            node.run("ip", "addr", "del", f"{VIP}/32", "dev", "front", check=False)


@pytest.fixture
def running(pair: Pair) -> Pair:
    pair.ensure()
    return pair


def synced(lab: LvsLab, conn: Conn) -> None:
    """The connection is in dirB's table (the kernel's sync daemons, as an operator
    would check before a planned failover)."""
    wait_for(lambda: any(c.client == conn.local for c in lab.connections("dirB")), 10,
             f"{conn.local} synced to dirB")


def no_traceback(*daemons: Daemon) -> None:
    for daemon in daemons:
        assert "Traceback" not in daemon.output(), daemon.output()


# ------------------------------------------------------------------ children


def test_a_killed_checkers_child_is_restarted_and_nothing_else_moves(running: Pair):
    lab, a = running.lab, running.a()
    before = a.wait_ready()
    rules = lab.directors[0].netns.rules()
    vrrp = a.instance()
    conn = lab.open_connection(PORT)
    behind = conn.ask("before").split()[0]
    lines = a.lines()

    os.kill(before["checkers"], signal.SIGKILL)
    after = wait_for(lambda: (p := a.child_pids())["checkers"] not in (None, before["checkers"])
                     and p, 15, "a new checkers child")
    assert after["vrrp"] == before["vrrp"]
    a.logged(f"event=child_exit role=checkers pid={before['checkers']}", 1)
    time.sleep(2.5)  # check rounds of the new child
    assert lab.directors[0].netns.rules() == rules
    assert a.ipvs_lines(lines) == [], a.output()
    assert conn.ask("after") == f"{behind} after"
    now = a.instance()
    assert now["state"] == "MASTER"
    assert now["counters"]["became_master"] == vrrp["counters"]["became_master"]
    assert holds_vip(lab.directors[0]) and not holds_vip(lab.directors[1])
    conn.close()
    no_traceback(a)


def test_a_killed_vrrp_child_is_restarted_and_the_checkers_are_untouched(running: Pair):
    lab, a, b = running.lab, running.a(), running.b()
    before = a.wait_ready()
    rules = lab.directors[0].netns.rules()
    conn = lab.open_connection(PORT)
    behind = conn.ask("before").split()[0]
    synced(lab, conn)
    since = time.time()

    os.kill(before["vrrp"], signal.SIGKILL)
    after = wait_for(lambda: (p := a.child_pids())["vrrp"] not in (None, before["vrrp"])
                     and p, 20, "a new VRRP child")
    assert after["checkers"] == before["checkers"]
    # the stale VIP is taken off at start; dirA is MASTER again by preemption
    wait_for(lambda: a.state() == "MASTER" and b.state() == "BACKUP"
             and not holds_vip(lab.directors[1]), START_TIMEOUT, "dirA MASTER again")
    assert holds_vip(lab.directors[0])
    assert a.child_pids()["checkers"] == before["checkers"]
    assert lab.directors[0].netns.rules() == rules
    assert conn.ask("after") == f"{behind} after"
    conn.close()
    a.logged(f"removed a leftover of a previous run: VI_1: address {VIP}/32 dev front", 5)
    # once the new child took the stale VIP off, it was never on both for long
    removed = [when for when, held in running.watch.changes(since) if not held["dirA"]]
    assert removed, running.watch.changes(since)
    overlap = longest(running.watch.overlaps(removed[0]))
    assert overlap <= master_down_interval(PRIORITY["dirA"]), running.watch.changes(since)
    no_traceback(a, b)


# ------------------------------------------------------------------ reload


def reload_counts(daemon: Daemon) -> tuple[int, int]:
    """How many reloads each child handled (checkers, VRRP)."""
    return tuple((status or {}).get("reload", {}).get("count", 0)  # type: ignore[return-value]
                 for status in (daemon.status(), daemon.vrrp_status()))


def reloaded(daemon: Daemon, before: tuple[int, int]) -> None:
    wait_for(lambda: all(n > c for n, c in zip(reload_counts(daemon), before, strict=True)),
             20, "both children reloaded")


def director_reload(daemon: Daemon) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "director.cli.main", "reload", "-f", str(daemon.conf),
         "--state-dir", str(daemon.state_dir), "--timeout", "20"],
        capture_output=True, text=True, timeout=40, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)})


def test_reload_applies_only_the_diff_and_refuses_a_broken_config(running: Pair):
    lab, a = running.lab, running.a()
    dir_a, dir_b = lab.directors
    became = a.instance()["counters"]["became_master"]
    pids = a.wait_ready()
    conn = lab.open_connection(PORT)
    behind = conn.ask("before").split()[0]
    since = time.time()

    # SIGHUP, one real server's weight changed: exactly that change in the kernel
    counts, lines = reload_counts(a), a.lines()
    running.configure("dirA", weights={"dr2": 3})
    a.send(signal.SIGHUP)
    reloaded(a, counts)
    wait_for(lambda: weights(lab, "dirA") == {**BOTH, f"198.51.100.22:{PORT}": 3}, 5,
             "dr2's new weight")
    time.sleep(1.5)  # a check round: nothing else changes
    assert [line.split(" ipvs: ", 1)[1] for line in a.ipvs_lines(lines)] == [
        f"change real server 198.51.100.22:{PORT} of {SERVICE}: weight 1 -> 3"], a.output()
    assert a.status()["reload"]["operations"] == 1  # type: ignore[index]
    assert conn.ask("after the weight") == f"{behind} after the weight"

    # `director reload`, the VRRP priority changed on the master: the VIP stays put
    counts = reload_counts(a)
    running.configure("dirA", priority=140, weights={"dr2": 3})
    done = director_reload(a)
    assert done.returncode == 0, done.stdout + done.stderr
    reloaded(a, counts)
    time.sleep(2 * master_down_interval(140))
    assert a.state() == "MASTER" and a.instance()["priority"] == 140
    assert a.instance()["counters"]["became_master"] == became
    assert running.watch.changes(since) == [], running.watch.changes(since)

    # a broken config, by SIGHUP and by `director reload`: refused, nothing moves
    counts, lines, rules = reload_counts(a), a.lines(), dir_a.netns.rules()
    text = running.conf("dirA").read_text()
    running.conf("dirA").write_text(text.replace("weight 3", "weight many", 1))
    line = text.splitlines().index("        weight 3") + 1
    problem = f"{running.conf('dirA')}:{line}:16: weight 'many' is not a whole number"
    a.send(signal.SIGHUP)
    a.logged(problem, 15)
    a.logged("reload refused (checkers, vrrp)", 5)
    refused = tuple(n + 1 for n in counts)
    assert reload_counts(a) == refused  # each child refused it
    assert [s["reload"]["ok"] for s in (a.status(), a.vrrp_status())] == [False, False]
    done = director_reload(a)
    assert done.returncode == 1, done.stdout + done.stderr
    assert problem in done.stderr  # as the children found it
    assert reload_counts(a) == tuple(n + 1 for n in refused)  # refused again
    assert a.wait_ready() == pids
    assert dir_a.netns.rules() == rules
    assert a.ipvs_lines(lines) == []
    assert running.watch.changes(since) == []
    assert holds_vip(dir_a) and not holds_vip(dir_b)
    assert conn.ask("after the refusal") == f"{behind} after the refusal"
    conn.close()
    no_traceback(a)
    running.configure("dirA")  # back to the tests' config, for the next test
    a.send(signal.SIGHUP)
    reloaded(a, refused)


# ------------------------------------------------------------------ stop


def no_failure_but_in_flight(report: ProbeReport, running: Pair, stopped: float,
                             said: str) -> None:
    """No request failed, but for the one connection in flight when dirB took the VIP
    (SYN through dirA, its next packet through dirB): dirB learns dirA's connections
    from the kernel's sync daemon, which sends every 2 s. Every connection begun after
    the switch answers."""
    switched = next(when for when, held in running.watch.changes(stopped) if held["dirB"])
    in_flight = [f for f in report.failures if f[0] <= switched + IN_FLIGHT]
    assert len(in_flight) <= 1, said
    assert [f for f in report.failures if f not in in_flight] == [], said



def test_sigterm_hands_the_vip_over_without_a_gap(running: Pair):
    lab, a, b = running.lab, running.a(), running.b()
    dir_a, dir_b = lab.directors
    prober = Prober(lab).start()
    time.sleep(0.5)
    stopped = time.time()
    assert a.stop() == 0, a.output()
    took = time.time() - stopped
    time.sleep(0.5)
    report = prober.stop()

    assert holds_vip(dir_b) and not holds_vip(dir_a)
    assert b.state() == "MASTER"
    said = f"client, from the SIGTERM on: {report.describe(stopped)}\n{a.output()}"
    no_failure_but_in_flight(report, running, stopped, said)
    assert report.worst_gap < GAP_LIMIT, said
    assert longest(running.watch.gaps(stopped)) < 0.05, running.watch.changes(stopped)
    assert dir_a.netns.rules() == []  # its service is gone (and it had no other)
    assert took < master_down_interval(PRIORITY["dirB"]) + 5, took
    print(f"SIGTERM: stopped in {took:.2f} s; client: {report.describe(stopped)}")
    no_traceback(a)

    # --keep-ipvs: the table stays as it was
    a = running.start("dirA", "--keep-ipvs")
    a.wait_ready()
    wait_for(lambda: a.state() == "MASTER" and not holds_vip(dir_b), START_TIMEOUT,
             "dirA MASTER again")
    wait_for(lambda: weights(lab, "dirA") == BOTH, START_TIMEOUT, "dirA's table")
    rules = dir_a.netns.rules()
    prober = Prober(lab).start()
    stopped = time.time()
    assert a.stop() == 0, a.output()
    report = prober.stop()
    assert dir_a.netns.rules() == rules
    no_failure_but_in_flight(report, running, stopped, report.describe(stopped))
    assert holds_vip(dir_b) and not holds_vip(dir_a)
    no_traceback(a)


def test_a_connection_opened_just_before_sigterm_survives_it(running: Pair):
    """With no other traffic, the kernel's master sync daemon sends a part-filled buffer
    only every 2 s and drops its queue when stopped: the stopping master keeps it
    running until the queue is out, and dirB, MASTER now, still runs its backup daemon
    to take it in (keepalived stops both at once, and this connection is reset)."""
    lab, a, b = running.lab, running.a(), running.b()
    time.sleep(2.5)  # what the checks' traffic queued is out
    late = lab.open_connection(PORT)
    behind = late.ask("before").split()[0]
    assert a.stop() == 0, a.output()
    wait_for(lambda: holds_vip(lab.directors[1]) and b.state() == "MASTER", 10,
             "dirB MASTER with the VIP")
    assert late.ask("after the stop") == f"{behind} after the stop", a.output()
    late.close()
    assert "last connections have reached the peer" in a.output()


def test_kill_9_and_a_restart_adopt_the_table_and_clean_the_stale_vip(running: Pair):
    lab, a, b = running.lab, running.a(), running.b()
    dir_a, dir_b = lab.directors
    rules = dir_a.netns.rules()
    conn = lab.open_connection(PORT)
    behind = conn.ask("before").split()[0]
    synced(lab, conn)
    children = a.wait_ready()
    prober = Prober(lab).start()

    killed = time.time()
    a.kill()
    wait_for(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in children.values()),
             5, "the children died with the parent")
    wait_for(lambda: holds_vip(dir_b), FAILOVER, "dirB takes the VIP")
    failover = time.time() - killed
    assert holds_vip(dir_a)  # the stale VIP: nobody is left on dirA to take it off
    assert conn.ask("through dirB") == f"{behind} through dirB"  # connection sync
    assert dir_a.netns.rules() == rules

    restarted = time.time()
    a = running.start("dirA")
    a.wait_ready()
    a.logged(f"removed a leftover of a previous run: VI_1: address {VIP}/32 dev front", 5)
    wait_for(lambda: a.state() == "MASTER" and b.state() == "BACKUP"
             and not holds_vip(dir_b), START_TIMEOUT, "dirA MASTER again (preemption)")
    time.sleep(2.0)  # check rounds of the new checkers child
    assert dir_a.netns.rules() == rules
    assert a.ipvs_lines() == [], a.output()
    assert conn.ask("through dirA again") == f"{behind} through dirA again"
    report = prober.stop()
    moves = [when for when, _ in running.watch.changes(killed)]
    # the kernel keeps forwarding through the dead daemon's table; a fresh connection
    # caught by a VIP move may fail, but no failure outside the moments it moves
    outside = [(round(when - killed, 3), error) for when, error in report.failures
               if not any(0 <= when - move <= MOVE_WINDOW for move in moves)]
    assert outside == [], f"{report.describe(killed)}; VIP moves at " \
        f"{[round(move - killed, 3) for move in moves]} s"
    # once the restarted VRRP child took the stale VIP off, never on both for long
    removed = [when for when, held in running.watch.changes(restarted) if not held["dirA"]]
    assert removed, running.watch.changes(killed)
    overlap = longest(running.watch.overlaps(removed[0]))
    assert overlap <= master_down_interval(PRIORITY["dirA"]), running.watch.changes(killed)
    print(f"kill -9: dirB took the VIP after {failover:.2f} s; after the restart the VIP "
          f"was on both for {overlap * 1000:.0f} ms at most; client: "
          f"{report.describe(killed)}")
    conn.close()
    no_traceback(a, b)
