"""VRRP failover, ours beside keepalived 2.2.7, in the same lab and the same run
(issue 6 §7).

Lab (tests/bench/vrrp_lab.py): dir1 and dir2, the two directors, and a client on one
bridge; VIP 192.0.2.100 on eth0. Every run starts both daemons afresh: the master
(priority 100) first, and once it is MASTER and holds the VIP the backup (priority
90); once the backup is BACKUP, a few adverts have passed and the client's probes are
all answered by dir1, the event:

- ``kill``: kill -9 of the master's VRRP process (keepalived: its parent is SIGSTOPped
  first and killed right after, so it neither respawns nor signals its VRRP child);
- ``term``: SIGTERM to the master (keepalived's parent relays it to its VRRP child);
- ``link``: the master's eth0 set down (one rtnetlink request in its namespace);
- ``script``: a ``vrrp_script`` the master tracks (interval 1, fall 1, weight -30)
  starts failing: the file its ``test -e`` looks for is removed.

Measured per run (ms): "VIP on backup", the event to the VIP's RTM_NEWADDR in the
backup's namespace (an rtnetlink monitor thread); "client outage", the longest time
the client went without an answer (a UDP probe every 5 ms to the VIP, answered by an
echo in whichever director holds it), less one probe interval: 0 = no probe lost.
The event's phase against the master's adverts (and, for the script, against the
script's runs) is spread evenly over one period across the runs of a cell, the same
for both implementations. A killed master's VIP stays on its interface (both
implementations) and its echo still answers, so kill -9 costs the client nothing until
the backup's gratuitous ARP.

Resource: 200 instances (VRIDs 1..200, one VIP each, 198.51.100.N/32) at v3 advert
0.1 s on the same pair; % of one core (utime+stime over the window, every process of
the implementation in that namespace) and RSS (sum) of the master and of the backup.

Runs per cell: VRRP_BENCH_RUNS (default 7); VRRP_BENCH_QUICK=1 for a smoke run (1 run
per cell unless VRRP_BENCH_RUNS says otherwise, a 3 s resource window). Figures only:
nothing asserts a time; asserted: the VIP moved, and at the end exactly one of the
directors that are running and connected holds it. Needs root (network namespaces).

Run: sudo .venv/bin/python -m pytest tests/bench/test_vrrp_failover.py -s -q
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.bench.vrrp_lab import (
    IMPLEMENTATIONS,
    KEEPALIVED,
    VIP,
    Daemon,
    Implementation,
    Instance,
    VrrpLab,
    fmt,
    ratio,
    resource_use,
    set_link,
    vrrp_config,
)
from tests.netns.lab import netns_unavailable_reason, wait_until

QUICK = os.environ.get("VRRP_BENCH_QUICK", "") not in ("", "0")
RUNS = int(os.environ.get("VRRP_BENCH_RUNS", "1" if QUICK else "7"))
RESOURCE_WINDOW = 3.0 if QUICK else 10.0
RESOURCE_INSTANCES = 200
MASTER_PRIORITY, BACKUP_PRIORITY = 100, 90
SCRIPT_INTERVAL = 1.0


@dataclass(frozen=True)
class Scenario:
    id: str
    label: str
    version: int
    advert: float
    event: str  # kill | term | link | script

    @property
    def master_down(self) -> float:
        """The backup's master-down interval (s): 3 x advert + skew."""
        if self.version == 2:
            return 3 * self.advert + (256 - BACKUP_PRIORITY) / 256
        return 3 * self.advert + (256 - BACKUP_PRIORITY) * self.advert / 256


SCENARIOS = [
    Scenario("v2-1s-kill", "v2 advert 1 s, kill -9", 2, 1.0, "kill"),
    Scenario("v2-1s-term", "v2 advert 1 s, SIGTERM", 2, 1.0, "term"),
    Scenario("v2-1s-link", "v2 advert 1 s, link down", 2, 1.0, "link"),
    Scenario("v2-1s-script", "v2 advert 1 s, vrrp_script fails", 2, 1.0, "script"),
    Scenario("v3-0.1s-kill", "v3 advert 0.1 s, kill -9", 3, 0.1, "kill"),
    Scenario("v3-0.1s-term", "v3 advert 0.1 s, SIGTERM", 3, 0.1, "term"),
    Scenario("v3-0.1s-script", "v3 advert 0.1 s, vrrp_script fails", 3, 0.1, "script"),
    Scenario("v3-0.05s-kill", "v3 advert 0.05 s, kill -9", 3, 0.05, "kill"),
    Scenario("v3-0.05s-link", "v3 advert 0.05 s, link down", 3, 0.05, "link"),
]

# scenario id -> implementation -> measure -> values (ms)
RESULTS: dict[str, dict[str, dict[str, list[float]]]] = {}
# implementation -> role -> (cpu %, rss MiB, processes)
RESOURCES: dict[str, dict[str, tuple[float, float, int]]] = {}


@pytest.fixture(scope="module")
def vlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VrrpLab]:
    why = netns_unavailable_reason()
    if why is not None:
        pytest.skip(f"VRRP failover bench: needs root and network namespaces [{why}]")
    assert KEEPALIVED.exists(), f"{KEEPALIVED} missing: `make bench` installs keepalived"
    lab = VrrpLab(tmp_path_factory.mktemp("vrrp-bench"))
    try:
        yield lab
    finally:
        try:
            lab.close()
        finally:
            if RESULTS or RESOURCES:
                print(table())


# ---------------------------------------------------------------- one run


def wait_logged(daemon: Daemon, text: str, timeout: float) -> None:
    try:
        wait_until(lambda: daemon.logged(text), timeout, interval=0.01, message=text)
    except TimeoutError:
        raise AssertionError(f"{text!r} not logged within {timeout:g} s in "
                             f"{daemon.node.role}:\n{daemon.output()[-3000:]}") from None


def run_once(vlab: VrrpLab, impl: Implementation, scenario: Scenario, index: int,
             flag: Path) -> tuple[float, float]:
    """One failover: (VIP on backup, client outage), ms."""
    lab, m, b = vlab.lab, vlab.master, vlab.backup
    flag.write_text("ok\n")
    track = scenario.event == "script"
    scripts = {"chk": (f'    script "/usr/bin/test -e {flag}"\n    interval '
                       f"{SCRIPT_INTERVAL:g}\n    fall 1\n    rise 1\n    weight -30\n")}
    conf = {node.role: vrrp_config(
        [Instance("VI_1", 51, prio, scenario.version, scenario.advert, [f"{VIP}/24"],
                  "chk" if track and node is m else None)],
        scripts if track and node is m else None)
        for node, prio in ((m, MASTER_PRIORITY), (b, BACKUP_PRIORITY))}
    tag = f"{scenario.id}-{index}"
    settle = 2 * scenario.master_down + 10
    master = impl.start(lab, m, conf[m.role], tag)
    backup: Daemon | None = None
    link_down = False
    try:
        wait_logged(master, "(VI_1) Entering MASTER STATE", settle)
        wait_until(lambda: vlab.holds(m), 5, interval=0.01, message="master holds the VIP")
        backup = impl.start(lab, b, conf[b.role], tag)
        wait_logged(backup, "(VI_1) Entering BACKUP STATE", settle)
        time.sleep(max(3 * scenario.advert, 0.3) + (2 * SCRIPT_INTERVAL if track else 0))
        master_ip, backup_ip = vlab.address_of(m), vlab.address_of(b)
        wait_until(lambda: vlab.prober.steady(master_ip), 5, interval=0.01,
                   message="the client's probes are all answered by the master")
        assert vlab.holds(m) and not vlab.holds(b), "no stable master before the event"
        assert "(VI_1) Entering MASTER STATE" not in backup.output()
        assert master.alive() and backup.alive()
        # the event's phase against the master's adverts (and the script's runs) would
        # otherwise be the same in every run: spread it evenly over one period, the
        # same for both implementations in run `index`
        period = max(scenario.advert, SCRIPT_INTERVAL if track else 0.0)
        time.sleep((index + 0.5) / RUNS * period)

        event: Callable[[], float] = {
            "kill": master.kill9,
            "term": master.terminate,
            "link": lambda: set_link(m.ns, "eth0", False),
            "script": lambda: _unlink(flag),
        }[scenario.event]
        link_down = scenario.event == "link"
        started = event()

        bound = 3 * scenario.master_down + (SCRIPT_INTERVAL if track else 0) + 5
        moved = vlab.monitors[b.role].wait_added(VIP, started, bound)
        assert moved is not None, (f"the VIP did not move to the backup within {bound:g} s\n"
                                   f"--- backup ---\n{backup.output()[-3000:]}")
        wait_until(lambda: vlab.prober.steady(backup_ip, 0.1), 5, interval=0.01,
                   message="the client's probes are answered by the backup")
        outage = vlab.prober.outage(started - 0.2, time.monotonic())

        # correctness: the backup holds the VIP; the master, when it still runs and is
        # connected, does not (it may take one advert of the new master to let go)
        assert vlab.holds(b)
        if scenario.event == "term":
            wait_until(lambda: not master.alive(), 3 * scenario.master_down + 5,
                       message="the master exits after SIGTERM")
        if scenario.event in ("term", "script"):
            wait_until(lambda: not vlab.holds(m), scenario.master_down + 2, interval=0.01,
                       message="the old master releases the VIP")
        holders = [n for n in (m, b) if vlab.holds(n)
                   and (n is b or scenario.event in ("term", "script"))]
        assert holders == [b], f"held by {[n.role for n in holders]} at the end"
        return (moved - started) * 1000, outage * 1000
    finally:
        for daemon in (master, backup):
            if daemon is not None and daemon.alive():
                daemon.stop()
        if link_down:
            vlab.link_up(m)
        for node in (m, b):
            vlab.remove_addresses(node, [VIP])
        flag.write_text("ok\n")


def _unlink(path: Path) -> float:
    now = time.monotonic()
    path.unlink()
    return now


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_failover(vlab: VrrpLab, scenario: Scenario) -> None:
    flag = vlab.lab.workdir / f"healthy-{scenario.id}"
    cell = RESULTS.setdefault(scenario.id, {})
    for index in range(RUNS):
        for impl in IMPLEMENTATIONS:  # alternated: both see the same conditions
            vip, outage = run_once(vlab, impl, scenario, index, flag)
            values = cell.setdefault(impl.name, {"vip": [], "outage": []})
            values["vip"].append(vip)
            values["outage"].append(outage)
            print(f"\n  {scenario.label:<36} {impl.name:<10} run {index + 1}/{RUNS}: "
                  f"VIP on backup {vip:7.1f} ms, client outage {outage:7.1f} ms", end="")
    print()


# ---------------------------------------------------------------- resources


def test_resources_200_instances(vlab: VrrpLab) -> None:
    lab, m, b = vlab.lab, vlab.master, vlab.backup
    vips = [f"198.51.100.{n}" for n in range(1, RESOURCE_INSTANCES + 1)]

    def conf(priority: int) -> str:
        return vrrp_config([Instance(f"VI_{n}", n, priority, 3, 0.1, [f"{vips[n - 1]}/32"])
                            for n in range(1, RESOURCE_INSTANCES + 1)])

    wanted = set(vips)
    for impl in IMPLEMENTATIONS:
        master = impl.start(lab, m, conf(MASTER_PRIORITY), "res")
        backup: Daemon | None = None
        try:
            wait_until(lambda: vlab.count_held(m, wanted) == len(wanted), 60, interval=0.2,
                       message=f"{impl.name}: the master holds all {len(wanted)} VIPs")
            backup = impl.start(lab, b, conf(BACKUP_PRIORITY), "res")
            wait_until(lambda: backup.output().count("Entering BACKUP STATE")  # noqa: B023
                       >= RESOURCE_INSTANCES, 60, interval=0.2,
                       message=f"{impl.name}: every backup instance is BACKUP")
            time.sleep(6.0)  # past the masters' second GARP burst (garp_master_delay 5)
            use = {}
            for role, node in (("master", m), ("backup", b)):
                use[role] = resource_use(node.ns, RESOURCE_WINDOW)
            RESOURCES[impl.name] = use
            print(f"\n  {impl.name}: 200 instances v3 0.1 s: master {use['master'][0]:.1f}% "
                  f"of a core, {use['master'][1]:.1f} MiB RSS ({use['master'][2]} processes);"
                  f" backup {use['backup'][0]:.1f}%, {use['backup'][1]:.1f} MiB", end="")
            assert vlab.count_held(m, wanted) == len(wanted)
            assert vlab.count_held(b, wanted) == 0
            assert master.alive() and backup.alive()
        finally:
            for daemon in (backup, master):
                if daemon is not None and daemon.alive():
                    daemon.stop()
            for node in (m, b):
                vlab.remove_addresses(node, vips)
    print()


# ---------------------------------------------------------------- the table


def table() -> str:
    head = (f"{'scenario':<36} | {'measure':<13} | {'keepalived min/med/max':>22} | "
            f"{'ours min/med/max':>18} | {'ours/ka':>7}")
    lines = ["", f"VRRP failover (ms), {RUNS} run(s) per cell; master prio 100, backup 90",
             head, "-" * len(head)]
    for scenario in SCENARIOS:
        cell = RESULTS.get(scenario.id)
        if not cell:
            continue
        ka = cell.get("keepalived", {"vip": [], "outage": []})
        ours = cell.get("ours", {"vip": [], "outage": []})
        for key, measure in (("vip", "VIP on backup"), ("outage", "client outage")):
            lines.append(f"{scenario.label if key == 'vip' else '':<36} | {measure:<13} | "
                         f"{fmt(ka[key]):>22} | {fmt(ours[key]):>18} | "
                         f"{ratio(ours[key], ka[key]):>7}")
    if RESOURCES:
        lines += ["", f"{RESOURCE_INSTANCES} instances, v3 advert 0.1 s, "
                  f"{RESOURCE_WINDOW:g} s window: % of one core / RSS MiB (processes)"]
        for name, use in RESOURCES.items():
            lines.append(f"  {name:<11} master {use['master'][0]:5.1f}% "
                         f"{use['master'][1]:6.1f} MiB ({use['master'][2]})   "
                         f"backup {use['backup'][0]:5.1f}% {use['backup'][1]:6.1f} MiB "
                         f"({use['backup'][2]})")
    return "\n".join(lines)
