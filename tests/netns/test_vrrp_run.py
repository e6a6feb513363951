"""`director run --vrrp-only` as an operator starts it: two of ours, one per namespace,
on one bridge, VRRPv3 at advert_int 0.2 s (master-down 0.6 s + skew).

- the higher priority becomes MASTER and holds the VIP, the other is BACKUP;
- kill -9 the master: the backup holds the VIP within the master-down interval;
  restarted, the old master cleans its leftover VIP and takes the VIP back (preempt);
- SIGTERM the master: graceful handover, the VIP is on one of the two at every sample;
- a tracked vrrp_script failing on the master moves the VIP within about one advert
  interval plus the script's interval.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from tests.netns.lab import Lab, Node, Process, wait_until

ROOT = Path(__file__).resolve().parents[2]
VIP = "192.0.2.100"
ADVERT = 0.2
MASTER_DOWN = 3 * ADVERT + ADVERT  # 3 x advert_int + skew (at most advert_int)


def config(priority: int, *, vrid: int = 51, advert: float = ADVERT, version: int = 3,
           extra: str = "", instance_extra: str = "", auth: str = "") -> str:
    return f"""
global_defs {{
    script_user root
    vrrp_version {version}
}}
{extra}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id {vrid}
    priority {priority}
    advert_int {advert}
    {auth}
    {instance_extra}
    virtual_ipaddress {{
        {VIP}/24
    }}
}}
"""


class Ours:
    """One `director run --vrrp-only` in a node."""

    def __init__(self, lab: Lab, node: Node, text: str, name: str = "ours",
                 args: tuple[str, ...] = ()):
        self.lab, self.node = lab, node
        self.args = args
        self.conf = lab.workdir / f"{name}-{node.role}.conf"
        self.conf.write_text(text)
        self.name = name
        self.runs = 0
        self.process: Process | None = None

    def start(self) -> Ours:
        self.runs += 1
        log = self.lab.workdir / f"{self.name}-{self.node.role}.{self.runs}.log"
        self.process = self.lab.spawn(
            self.node.ns, sys.executable, "-m", "director.cli.main", "run", "--vrrp-only",
            "-f", self.conf, "--log-level", "debug", *self.args, log=log,
            env={"PYTHONPATH": str(ROOT)})
        return self

    def output(self) -> str:
        return self.process.output() if self.process else ""

    def wait_log(self, text: str, timeout: float = 10.0) -> None:
        def seen() -> bool:
            assert self.process is not None
            if not self.process.alive():
                raise AssertionError(f"director exited ({self.process.returncode}):\n"
                                     f"{self.output()}")
            return text in self.output()

        try:
            wait_until(seen, timeout, interval=0.02, message=text)
        except TimeoutError:
            raise AssertionError(f"{text!r} not logged within {timeout} s:\n"
                                 f"{self.output()}") from None

    def count(self, text: str) -> int:
        return self.output().count(text)


def holds(node: Node, address: str = VIP) -> bool:
    return node.has_address(address)


def wait_holds(node: Node, timeout: float, address: str = VIP) -> float:
    """Seconds until `node` holds `address` (AssertionError after `timeout`)."""
    start = time.monotonic()
    try:
        wait_until(lambda: holds(node, address), timeout, interval=0.01)
    except TimeoutError:
        raise AssertionError(f"{node.role} does not hold {address} after {timeout} s") from None
    return time.monotonic() - start


def wait_released(node: Node, timeout: float, address: str = VIP) -> None:
    wait_until(lambda: not holds(node, address), timeout, interval=0.01,
               message=f"{node.role} releases {address}")


def pair(lab: Lab) -> tuple[Node, Node]:
    return lab.add_node("dir1"), lab.add_node("dir2")


def test_election_kill_and_preempt(lab: Lab):
    a, b = pair(lab)
    ours_a = Ours(lab, a, config(150)).start()
    ours_a.wait_log("(VI_1) Entering MASTER STATE")
    wait_holds(a, 5)
    # started while a is master (started together, both may be master for a moment)
    ours_b = Ours(lab, b, config(100)).start()
    ours_b.wait_log("(VI_1) Entering BACKUP STATE")
    time.sleep(3 * ADVERT + 0.5)
    assert not holds(b)
    assert "(VI_1) Entering MASTER STATE" not in ours_b.output()

    # kill -9: the backup takes over within the master-down interval
    assert ours_a.process is not None
    ours_a.process.stop(signal.SIGKILL)
    took = wait_holds(b, 5)
    assert took < MASTER_DOWN + 0.3, f"backup took {took:.3f} s"
    assert holds(a), "a killed director leaves its VIP behind (as keepalived does)"

    # restarted: leftovers cleaned, then preemption takes the VIP back
    ours_a.start()
    ours_a.wait_log("removed a leftover of a previous run")
    ours_a.wait_log("(VI_1) Entering MASTER STATE")
    wait_holds(a, 5)
    wait_released(b, 3)
    ours_b.wait_log("(VI_1) Entering BACKUP STATE (")
    assert ours_b.count("(VI_1) Entering BACKUP STATE") == 2


def test_sigterm_hands_over_without_gap(lab: Lab):
    a, b = pair(lab)
    ours_a = Ours(lab, a, config(150)).start()
    ours_b = Ours(lab, b, config(100)).start()
    ours_a.wait_log("(VI_1) Entering MASTER STATE")
    ours_b.wait_log("(VI_1) Entering BACKUP STATE")
    wait_holds(a, 5)
    time.sleep(3 * ADVERT)  # b has heard a: settled as backup
    assert not holds(b)
    assert ours_a.process is not None
    ours_a.process.send_signal(signal.SIGTERM)
    start = time.monotonic()
    gaps = 0
    samples = 0
    while time.monotonic() - start < 3.0:
        # the old holder first, then the new one: a miss on both is a real gap
        old, new = holds(a), holds(b)
        samples += 1
        if not old and not new:
            gaps += 1
        if new and not old:
            break
    took = time.monotonic() - start
    assert holds(b)
    assert gaps == 0, f"nobody held the VIP in {gaps} of {samples} samples"
    assert took < 1.0, f"handover took {took:.3f} s"
    assert ours_a.process.wait(5) == 0
    assert not holds(a)
    ours_b.wait_log("(VI_1) Entering MASTER STATE")
    assert "graceful handover" in ours_a.output()


def test_failing_script_moves_the_vip(lab: Lab):
    a, b = pair(lab)
    flag = lab.workdir / "healthy"
    flag.write_text("ok\n")
    script = f"""
vrrp_script chk {{
    script "/usr/bin/test -e {flag}"
    interval 1
    fall 1
    rise 1
    weight -60
}}
"""
    track = "track_script {\n        chk\n    }"
    ours_a = Ours(lab, a, config(150, extra=script, instance_extra=track)).start()
    ours_b = Ours(lab, b, config(100)).start()
    ours_a.wait_log("(VI_1) Entering MASTER STATE")
    ours_b.wait_log("(VI_1) Entering BACKUP STATE")
    wait_holds(a, 5)
    time.sleep(1.2)  # a few successful runs
    assert holds(a) and not holds(b)
    flag.unlink()
    took = wait_holds(b, 5)
    assert took < ADVERT + 1.0 + 0.5, f"script failover took {took:.3f} s"
    wait_released(a, 2)
    ours_a.wait_log("effective priority 90")
    # healthy again: a preempts back
    flag.write_text("ok\n")
    wait_holds(a, 5)
    wait_released(b, 3)


def test_reload_keeps_unchanged_instances_and_survives_a_bad_file(lab: Lab):
    a = lab.add_node("dir1")
    ours = Ours(lab, a, config(150)).start()
    ours.wait_log("(VI_1) Entering MASTER STATE")
    wait_holds(a, 5)
    assert ours.process is not None
    # same instance: kept, no new election, the VIP stays
    ours.process.send_signal(signal.SIGHUP)
    ours.wait_log("reload: 1 instance(s) kept, 0 changed in place, 0 restarted, 0 stopped, "
                  "0 started")
    assert ours.count("Entering") == 2 and holds(a)
    # an error in the file: logged with its place, the old config keeps running
    ours.conf.write_text(config(150).replace("priority 150", "priority 150\n    bogus {"))
    ours.process.send_signal(signal.SIGHUP)
    ours.wait_log("still running the previous configuration")
    assert f"{ours.conf}:" in ours.output()
    assert holds(a) and ours.process.alive()
    # a second instance added: started; the first one untouched
    ours.conf.write_text(config(150) + config(150, vrid=52).split("}\n", 1)[1]
                         .replace("VI_1", "VI_2").replace(VIP, "192.0.2.101"))
    ours.process.send_signal(signal.SIGHUP)
    ours.wait_log("reload: 1 instance(s) kept, 0 changed in place, 0 restarted, 0 stopped, "
                  "1 started")
    ours.wait_log("(VI_2) Entering MASTER STATE")
    wait_holds(a, 5, "192.0.2.101")
    assert holds(a)
    ours.process.send_signal(signal.SIGINT)
    assert ours.process.wait(5) == 0
    assert not holds(a) and not holds(a, "192.0.2.101")


# ----------------------------------------------------------------- sync groups

VIP2 = "198.51.100.100"


def sync_config(priority: int, workdir: Path, role: str, *, track: str = "") -> str:
    """Two instances on two interfaces in one vrrp_sync_group, a group notify script
    and a notify FIFO; ``track``: extra lines in VI_1 (track_interface/track_script)."""
    notify = workdir / f"notify-{role}.sh"
    notify.write_text(f'#!/bin/sh\necho "$@" >> {workdir}/notify-{role}.log\n')
    notify.chmod(0o755)
    return f"""
global_defs {{
    script_user root
    vrrp_version 3
    vrrp_notify_fifo {workdir}/fifo-{role}
}}
vrrp_script chk {{
    script "/usr/bin/test -e {workdir}/healthy-{role}"
    interval 1
    fall 1
    rise 1
    weight -60
}}
vrrp_sync_group G1 {{
    group {{
        VI_1
        VI_2
    }}
    notify {notify}
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int {ADVERT}
    {track}
    virtual_ipaddress {{
        {VIP}/24
    }}
}}
vrrp_instance VI_2 {{
    state BACKUP
    interface eth1
    virtual_router_id 52
    priority {priority}
    advert_int {ADVERT}
    virtual_ipaddress {{
        {VIP2}/24
    }}
}}
"""


class FifoReader:
    """Reads the lines a director writes to its notify FIFO (opened before it starts)."""

    def __init__(self, path: Path):
        os.mkfifo(path)
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.text = ""

    def lines(self) -> list[str]:
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self.fd, 65536):
                self.text += chunk.decode()
        return self.text.splitlines()

    def close(self) -> None:
        os.close(self.fd)


def sync_pair(lab: Lab, how: str) -> tuple[Node, Node, Ours, Ours, FifoReader]:
    a, b = (lab.add_node(role, ["lan", "dmz"]) for role in ("dir1", "dir2"))
    track = ""
    if how == "interface":
        a.run("ip", "link", "add", "trk0", "type", "veth", "peer", "name", "trk0p")
        a.run("ip", "link", "set", "trk0p", "up")
        a.run("ip", "link", "set", "trk0", "up")
        track = "track_interface {\n        trk0\n    }"
    elif how == "script":
        track = "track_script {\n        chk\n    }"
    (lab.workdir / "healthy-dir1").write_text("ok\n")
    fifo = FifoReader(lab.workdir / "fifo-dir1")
    ours_a = Ours(lab, a, sync_config(150, lab.workdir, "dir1", track=track), "sync").start()
    ours_a.wait_log("VRRP_Group(G1) MASTER")
    wait_holds(a, 5)
    wait_holds(a, 5, VIP2)
    ours_b = Ours(lab, b, sync_config(100, lab.workdir, "dir2"), "sync").start()
    ours_b.wait_log("VRRP_Group(G1) BACKUP")
    time.sleep(3 * ADVERT + 0.3)
    assert not holds(b) and not holds(b, VIP2)
    return a, b, ours_a, ours_b, fifo


def test_sync_group_members_move_together(lab: Lab):
    """A fault of one member on the master (its tracked interface goes down) moves BOTH
    VIPs to the backup; the group's notify script and FIFO lines say so; back up, the
    master preempts both back together."""
    a, b, ours_a, ours_b, fifo = sync_pair(lab, "interface")
    try:
        assert "VRRP_Group(G1) Syncing instances to MASTER state" in ours_a.output()
        a.run("ip", "link", "set", "trk0", "down")
        start = time.monotonic()
        wait_holds(b, 3)
        wait_holds(b, 3, VIP2)
        took = time.monotonic() - start
        assert took < 0.2 + 3 * ADVERT + 0.5, f"the group moved in {took:.3f} s"
        wait_released(a, 2)
        wait_released(a, 2, VIP2)
        ours_a.wait_log("(VI_2) Entering FAULT STATE")
        ours_b.wait_log("VRRP_Group(G1) MASTER")
        wait_until(lambda: 'GROUP "G1" FAULT 0' in fifo.lines(), 3)
        notify_a = lab.workdir / "notify-dir1.log"
        wait_until(lambda: notify_a.exists() and "GROUP G1 FAULT 0" in notify_a.read_text(),
                   3)
        assert "GROUP G1 MASTER 0" in notify_a.read_text().splitlines()
        wait_until(lambda: 'INSTANCE "VI_2" FAULT 150' in fifo.lines(), 3)
        lines = fifo.lines()
        assert 'INSTANCE "VI_1" FAULT 150' in lines
        # the group's line comes after its members'
        assert lines.index('GROUP "G1" FAULT 0') > lines.index('INSTANCE "VI_2" FAULT 150')
        assert lines.index('GROUP "G1" MASTER 0') > lines.index('INSTANCE "VI_2" MASTER 150')
        # the interface comes back: both preempt back, together
        a.run("ip", "link", "set", "trk0", "up")
        wait_holds(a, 5)
        wait_holds(a, 5, VIP2)
        wait_released(b, 3)
        wait_released(b, 3, VIP2)
        wait_until(lambda: fifo.lines().count('GROUP "G1" MASTER 0') == 2, 3)
        for node in (a, b):  # never split: each holds both VIPs or none
            assert holds(node) == holds(node, VIP2)
    finally:
        fifo.close()


def test_sync_group_failing_script_moves_both_vips(lab: Lab):
    """A tracked script failing on one member (weights count as 0 in a sync group: a
    fault) moves both VIPs."""
    a, b, ours_a, _ours_b, fifo = sync_pair(lab, "script")
    try:
        (lab.workdir / "healthy-dir1").unlink()
        start = time.monotonic()
        wait_holds(b, 4)
        wait_holds(b, 4, VIP2)
        took = time.monotonic() - start
        assert took < 1.0 + 3 * ADVERT + 0.6, f"the group moved in {took:.3f} s"
        wait_released(a, 2)
        wait_released(a, 2, VIP2)
        ours_a.wait_log("(VI_2) Entering FAULT STATE")
    finally:
        fifo.close()


def test_sync_group_moves_only_when_every_member_wants_master(lab: Lab):
    """keepalived's vrrp_sync_can_goto_master: one member that would preempt does not
    move the group while another member hears a higher-priority master (no split)."""
    a, b = (lab.add_node(role, ["lan", "dmz"]) for role in ("dir1", "dir2"))
    (lab.workdir / "healthy-dir1").write_text("ok\n")
    ours_a = Ours(lab, a, sync_config(100, lab.workdir, "dir1"), "sync").start()
    ours_a.wait_log("VRRP_Group(G1) MASTER")
    wait_holds(a, 5, VIP2)
    # b: VI_1 higher than a's, VI_2 lower: b's VI_1 preempts... only once its whole
    # group wants MASTER; its VI_2 never does (a's 100 > b's 90): so nothing moves
    text = sync_config(200, lab.workdir, "dir2").replace(
        "virtual_router_id 52\n    priority 200", "virtual_router_id 52\n    priority 90")
    ours_b = Ours(lab, b, text, "sync").start()
    ours_b.wait_log("VRRP_Group(G1) BACKUP")
    time.sleep(6 * ADVERT)
    assert holds(a) and holds(a, VIP2) and not holds(b) and not holds(b, VIP2)
    assert "Entering MASTER STATE" not in ours_b.output()
    ours_b.wait_log("(VI_1) wants MASTER")


# ----------------------------------------------------------------- unicast and IPv6

VIP6 = "2001:db8::100"


def unicast_lines(me: Node, *peers: Node | str) -> str:
    """unicast_src_ip and unicast_peer for ``me`` (IPv4, eth0's address)."""
    assert me.ipv4 is not None
    addresses = [p if isinstance(p, str) else str(p.ipv4.ip) for p in peers]  # type: ignore
    listed = "\n        ".join(addresses)
    return f"unicast_src_ip {me.ipv4.ip}\n    unicast_peer {{\n        {listed}\n    }}"


def ipv6_config(priority: int, *, advert: float = ADVERT, instance_extra: str = "") -> str:
    return config(priority, advert=advert, instance_extra=instance_extra).replace(
        f"{VIP}/24", f"{VIP6}/64")


def elect_and_fail_over(lab: Lab, a: Node, b: Node, text_a: str, text_b: str,
                        vip: str, name: str) -> tuple[Ours, Ours]:
    """a (higher) becomes master and holds ``vip``, b stays backup; a killed: b takes
    over within the master-down interval; a back: it preempts."""
    ours_a = Ours(lab, a, text_a, name).start()
    ours_a.wait_log("(VI_1) Entering MASTER STATE")
    wait_holds(a, 5, vip)
    ours_b = Ours(lab, b, text_b, name).start()
    ours_b.wait_log("(VI_1) Entering BACKUP STATE")
    time.sleep(3 * ADVERT + 0.5)
    assert not holds(b, vip) and "(VI_1) Entering MASTER STATE" not in ours_b.output()
    assert ours_a.process is not None
    ours_a.process.stop(signal.SIGKILL)
    took = wait_holds(b, 5, vip)
    assert took < MASTER_DOWN + 0.3, f"backup took {took:.3f} s"
    ours_a.start()
    ours_a.wait_log("(VI_1) Entering MASTER STATE")
    wait_holds(a, 5, vip)
    wait_released(b, 3, vip)
    return ours_a, ours_b


def test_unicast_two_of_ours(lab: Lab):
    from tests.netns.vrrp_wire import adverts

    a, b = pair(lab)
    watcher = lab.add_node("watch")
    with lab.capture(watcher.ns, "eth0") as capture:
        _ours_a, ours_b = elect_and_fail_over(
            lab, a, b, config(150, instance_extra=unicast_lines(a, b)),
            config(100, instance_extra=unicast_lines(b, a)), VIP, "unicast")
        assert "Entering MASTER STATE" in ours_b.output()
        assert adverts(capture) == [], "unicast mode sent to the multicast group"


def test_ipv6_two_of_ours(lab: Lab):
    """VRRPv3 to ff02::12 from link-local sources."""
    a, b = pair(lab)
    elect_and_fail_over(lab, a, b, ipv6_config(150), ipv6_config(100), VIP6, "ipv6")


# ----------------------------------------------------------------- link down, preemption, tracking


def settled_pair(lab: Lab, text_a: str, text_b: str, name: str) -> tuple[Node, Node, Ours, Ours]:
    """a (higher) master holding the VIP, b backup that has heard it."""
    a, b = pair(lab)
    ours_a = Ours(lab, a, text_a, name).start()
    ours_a.wait_log("(VI_1) Entering MASTER STATE")
    wait_holds(a, 5)
    ours_b = Ours(lab, b, text_b, name).start()
    ours_b.wait_log("(VI_1) Entering BACKUP STATE")
    time.sleep(3 * ADVERT + 0.3)
    assert holds(a) and not holds(b)
    return a, b, ours_a, ours_b


def test_master_link_down_fails_over_and_faults(lab: Lab):
    """The master's own interface goes down (tracked by default): the backup takes over
    within the master-down interval, the old master goes FAULT and drops the VIP; the
    link back up: it leaves FAULT and preempts back."""
    a, b, ours_a, ours_b = settled_pair(lab, config(150), config(100), "linkdown")
    a.run("ip", "link", "set", "eth0", "down")
    took = wait_holds(b, 5)
    assert took < MASTER_DOWN + 0.3, f"backup took {took:.3f} s"
    ours_a.wait_log("(VI_1) Entering FAULT STATE", 3)
    wait_released(a, 2)
    a.run("ip", "link", "set", "eth0", "up")
    ours_a.wait_log("(VI_1) Entering BACKUP STATE (", 5)
    wait_holds(a, 5)
    wait_released(b, 3)
    assert ours_b.count("(VI_1) Entering BACKUP STATE") == 2


def test_master_link_down_without_preempt_comes_back_backup(lab: Lab):
    """Same with nopreempt on the old master: back up, it stays BACKUP."""
    a, b, ours_a, _ = settled_pair(
        lab, config(150, instance_extra="nopreempt"), config(100), "linkdown-np")
    a.run("ip", "link", "set", "eth0", "down")
    wait_holds(b, 5)
    ours_a.wait_log("(VI_1) Entering FAULT STATE", 3)
    a.run("ip", "link", "set", "eth0", "up")
    ours_a.wait_log("(VI_1) Entering BACKUP STATE (", 5)
    time.sleep(3 * MASTER_DOWN)
    assert holds(b) and not holds(a)
    assert ours_a.count("(VI_1) Entering MASTER STATE") == 1


def test_nopreempt_returning_higher_priority_stays_backup(lab: Lab):
    a, b, ours_a, ours_b = settled_pair(
        lab, config(150, instance_extra="nopreempt"), config(100), "nopreempt")
    assert ours_a.process is not None
    ours_a.process.stop(signal.SIGKILL)
    wait_holds(b, 5)
    ours_a.start()
    ours_a.wait_log("removed a leftover of a previous run")
    ours_a.wait_log("(VI_1) Entering BACKUP STATE")
    time.sleep(3 * MASTER_DOWN)
    assert holds(b) and not holds(a)
    assert "(VI_1) Entering MASTER STATE" not in ours_a.output()
    assert "(VI_1) Entering MASTER STATE" in ours_b.output()


def test_preempt_delay(lab: Lab):
    """preempt_delay 1.5: the returning higher priority takes over after the delay,
    not before."""
    delay = 1.5
    a, b, ours_a, _ = settled_pair(
        lab, config(150, instance_extra=f"preempt_delay {delay}"), config(100), "pdelay")
    assert ours_a.process is not None
    ours_a.process.stop(signal.SIGKILL)
    wait_holds(b, 5)
    ours_a.start()
    ours_a.wait_log("(VI_1) Entering BACKUP STATE")
    start = time.monotonic()
    took = wait_holds(a, delay + MASTER_DOWN + 2)
    elapsed = time.monotonic() - start
    assert elapsed > delay - 0.3, f"took over after {took:.3f} s, before the delay"
    assert elapsed < delay + MASTER_DOWN + 1.0, f"took over after {elapsed:.3f} s"
    wait_released(b, 3)


def test_track_file_weight_moves_the_vip(lab: Lab):
    """track_file: value x weight changes the priority; below the peer's, the VIP moves;
    back to 0, the master preempts back."""
    path = lab.workdir / "track-file"
    path.write_text("0\n")
    extra = f'vrrp_track_file tf {{\n    file "{path}"\n    weight 10\n}}'
    a, b, ours_a, _ = settled_pair(
        lab, config(150, extra=extra, instance_extra="track_file {\n        tf\n    }"),
        config(100), "trackfile")
    path.write_text("-6\n")  # 150 + (-6 x 10) = 90 < 100
    took = wait_holds(b, 5)
    assert took < 0.5 + ADVERT + 1.0, f"track_file failover took {took:.3f} s"
    wait_released(a, 2)
    ours_a.wait_log("effective priority 90")
    path.write_text("-3\n")  # 120 > 100: preempts back
    wait_holds(a, 5)
    wait_released(b, 3)
    ours_a.wait_log("effective priority 120")


def test_track_interface_weight_moves_the_vip(lab: Lab):
    """track_interface with a weight: down costs the weight (BACKUP, not FAULT)."""
    a, b = pair(lab)
    a.run("ip", "link", "add", "trk0", "type", "veth", "peer", "name", "trk0p")
    a.run("ip", "link", "set", "trk0p", "up")
    a.run("ip", "link", "set", "trk0", "up")
    track = "track_interface {\n        trk0 weight -60\n    }"
    ours_a = Ours(lab, a, config(150, instance_extra=track), "trackif").start()
    ours_a.wait_log("(VI_1) Entering MASTER STATE")
    wait_holds(a, 5)
    ours_b = Ours(lab, b, config(100), "trackif").start()
    ours_b.wait_log("(VI_1) Entering BACKUP STATE")
    time.sleep(3 * ADVERT + 0.3)
    a.run("ip", "link", "set", "trk0", "down")
    took = wait_holds(b, 5)
    assert took < 0.2 + ADVERT + 0.8, f"track_interface failover took {took:.3f} s"
    wait_released(a, 2)
    ours_a.wait_log("effective priority 90")
    assert "FAULT" not in ours_a.output()
    a.run("ip", "link", "set", "trk0", "up")
    wait_holds(a, 5)
    wait_released(b, 3)
