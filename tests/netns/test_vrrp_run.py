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

    def __init__(self, lab: Lab, node: Node, text: str, name: str = "ours"):
        self.lab, self.node = lab, node
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
            "-f", self.conf, "--log-level", "debug", log=log,
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
    ours.wait_log("reload: 1 instance(s) kept, 0 stopped, 0 started")
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
    ours.wait_log("reload: 1 instance(s) kept, 0 stopped, 1 started")
    ours.wait_log("(VI_2) Entering MASTER STATE")
    wait_holds(a, 5, "192.0.2.101")
    assert holds(a)
    ours.process.send_signal(signal.SIGINT)
    assert ours.process.wait(5) == 0
    assert not holds(a) and not holds(a, "192.0.2.101")
