"""lvs_sync_daemon follows VRRP (issue 5 §5): `director run --vrrp-only` on both
directors of the lab starts the kernel's master sync daemon where its instance is
MASTER and a backup daemon on the other director, and swaps them on failover."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lvs_lab import LvsLab, lab_fixture

REPO = Path(__file__).resolve().parents[2]
VRRP_VIP = "198.51.100.200"
VRID = 51
TIMEOUT = 30.0  # the guest starts Python slowly

lab = lab_fixture(nat=0, dr=0, directors=2)


def config(priority: int) -> str:
    return f"""global_defs {{
    lvs_sync_daemon back VI_1
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface front
    virtual_router_id {VRID}
    priority {priority}
    version 3
    advert_int 0.2
    virtual_ipaddress {{
        {VRRP_VIP}/24
    }}
}}
"""


def wait_for(predicate: Callable[[], object], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


@pytest.fixture
def start(lab: LvsLab, tmp_path: Path) -> Iterator[Callable[[str, int], subprocess.Popen]]:
    started: list[subprocess.Popen] = []

    def run(director: str, priority: int) -> subprocess.Popen:
        conf = tmp_path / f"{director}.conf"
        conf.write_text(config(priority))
        log = (tmp_path / f"{director}.log").open("w")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", lab.node(director).netns.name, sys.executable, "-m",
             "director.cli.main", "run", "--vrrp-only", "-f", str(conf)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)})
        started.append(proc)
        return proc

    yield run
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def daemons(lab: LvsLab, director: str) -> list[str]:
    """`ipvsadm -L --daemon` in that director's namespace, one line per daemon."""
    return lab.node(director).netns.ipvsadm("-L", "--daemon").splitlines()


def holds_vip(lab: LvsLab, director: str) -> bool:
    return VRRP_VIP in lab.node(director).netns.run("ip", "-4", "addr", "show", "front").stdout


def test_the_sync_daemons_follow_the_vrrp_roles(lab: LvsLab, start, tmp_path: Path):
    master = f"master sync daemon (mcast=back, syncid={VRID}"
    backup = f"backup sync daemon (mcast=back, syncid={VRID}"
    a = start("dirA", 100)
    wait_for(lambda: holds_vip(lab, "dirA"), "dirA holds the VIP")
    wait_for(lambda: any(master in line for line in daemons(lab, "dirA")),
             "a master sync daemon on dirA")
    b = start("dirB", 90)
    wait_for(lambda: any(backup in line for line in daemons(lab, "dirB")),
             "a backup sync daemon on dirB")
    assert not holds_vip(lab, "dirB")
    # the master keeps a backup daemon too (unlike keepalived): a peer's last
    # connections, sent after a handover, land there
    assert sorted(line.split(" (")[0] for line in daemons(lab, "dirA")
                  if "sync daemon" in line) == ["backup sync daemon", "master sync daemon"]

    # dirA dies: dirB takes the VIP, and its daemon becomes the master
    a.kill()
    a.wait(10)
    wait_for(lambda: holds_vip(lab, "dirB"), "dirB holds the VIP")
    wait_for(lambda: any(master in line for line in daemons(lab, "dirB")),
             "dirB runs the master daemon")

    # a stop takes its daemon down with it
    b.send_signal(signal.SIGTERM)
    assert b.wait(20) == 0, (tmp_path / "dirB.log").read_text()
    assert not any("sync daemon" in line for line in daemons(lab, "dirB"))
    log = (tmp_path / "dirB.log").read_text()
    assert "ipvs: start the master sync daemon on back (VRRP MASTER)" in log, log
    assert "Traceback" not in log, log
