"""`director run --checkers-only` with the real NetlinkBackend, in a director namespace
of the LVS lab: the kernel's IPVS table follows the health checks, a `kill -9` and a
restart change nothing (an established connection keeps answering), and a reload
changes only what the configuration changed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lvs_lab import VIP, LvsLab, lab_fixture

REPO = Path(__file__).resolve().parents[2]
PORT = 8080
NAT1, NAT2 = "192.0.2.11", "192.0.2.12"
SERVICE = f"TCP {VIP}:{PORT}"
START_TIMEOUT = 30.0  # Python + pyroute2 start slowly in the guest
CHECK_TIMEOUT = 8.0  # delay_loop 1, connect_timeout 1, retry 0: down after ~1-2 s

lab = lab_fixture(nat=2, dr=0, directors=1)


def config_text(weight2: int = 1) -> str:
    # alpha: a fresh start waits for the checks; a restart must not (see below)
    def real(address: str, weight: int) -> str:
        return f"""
    real_server {address} {PORT} {{
        weight {weight}
        alpha
        TCP_CHECK {{
            connect_timeout 1
            retry 0
            delay_before_retry 1
        }}
    }}"""

    return f"""virtual_server {VIP} {PORT} {{
    delay_loop 1
    lb_algo wrr
    lb_kind NAT
    protocol TCP
{real(NAT1, 1)}{real(NAT2, weight2)}
}}
"""


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


class Director:
    """`director run --checkers-only` in the lab's director namespace."""

    def __init__(self, lab: LvsLab, conf: Path, state: Path, log: Path,
                 *options: str) -> None:
        self.lab = lab
        self.log = log
        netns = lab.directors[0].netns.name
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", netns, sys.executable, "-m", "director.cli.main",
                 "run", "-f", str(conf), "--checkers-only", "--state-dir", str(state),
                 *options],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)})

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def logged(self, text: str, timeout: float = START_TIMEOUT) -> None:
        def seen() -> bool:
            if self.proc.poll() is not None and text not in self.output():
                raise AssertionError(f"the director exited ({self.proc.returncode}):\n"
                                     f"{self.output()}")
            return text in self.output()

        try:
            wait_for(seen, timeout, text)
        except AssertionError as error:
            raise AssertionError(f"{error}\n--- director log:\n{self.output()}") from None

    def ipvs_lines(self) -> list[str]:
        return [line for line in self.output().splitlines() if " ipvs: " in line]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"the director did not stop on {sig}:\n"
                                 f"{self.output()}") from None


@pytest.fixture
def run(lab: LvsLab, tmp_path: Path) -> Iterator[Callable[[], Director]]:
    lab.clear_ipvs()
    conf = tmp_path / "keepalived.conf"
    conf.write_text(config_text())
    started: list[Director] = []

    def start(*options: str) -> Director:
        director = Director(lab, conf, tmp_path / "state",
                            tmp_path / f"director-{len(started)}.log", *options)
        started.append(director)
        return director

    yield start
    lab.stop_servers()  # the real servers this test left running
    for director in started:
        if director.proc.poll() is None:
            director.proc.kill()
            director.proc.wait(5)
    lab.clear_ipvs()


def weights(lab: LvsLab) -> dict[str, int]:
    services = lab.directors[0].netns.listing()
    if SERVICE not in services:
        return {}
    return {str(d["address"]): int(d["Weight"]) for d in services[SERVICE].dests}


def test_the_kernel_table_follows_the_checks_and_survives_a_restart(lab: LvsLab,
                                                                     run, tmp_path: Path):
    servers = {s.node.name: s for s in lab.start_servers([("nat1", PORT), ("nat2", PORT)])}
    director = run()
    director.logged("running:")
    both = {f"{NAT1}:{PORT}": 1, f"{NAT2}:{PORT}": 1}
    wait_for(lambda: weights(lab) == both, CHECK_TIMEOUT, "both real servers, checked")
    assert lab.directors[0].netns.service(SERVICE).scheduler == "wrr"
    assert {lab.request(PORT) for _ in range(4)} == {"nat1", "nat2"}

    # nat1 stops: out of the table within its check timing; it gets no new connections
    lab.stop_server(servers["nat1"])
    stopped = time.monotonic()
    wait_for(lambda: weights(lab) == {f"{NAT2}:{PORT}": 1}, CHECK_TIMEOUT, "nat1 removed")
    assert time.monotonic() - stopped < CHECK_TIMEOUT
    assert set(lab.requests(4, PORT)) == {"nat2"}
    director.logged(f"real server {NAT1}:{PORT} of [{VIP}]:TCP:{PORT} is DOWN: TCP_CHECK", 1)
    director.logged(f"ipvs: delete real server {NAT1}:{PORT} from {SERVICE}", 1)

    # back
    lab.start_server("nat1", PORT)
    wait_for(lambda: weights(lab) == both, CHECK_TIMEOUT, "nat1 back")
    director.logged(f"ipvs: add real server {NAT1}:{PORT} to {SERVICE}: weight 1 NAT", 1)

    # kill -9 and start again: nothing removed, nothing changed, a held connection answers
    conn = lab.open_connection(PORT)
    behind = conn.ask("before").split()[0]
    assert behind in ("nat1", "nat2")
    director.proc.kill()
    director.proc.wait(5)
    assert weights(lab) == both
    again = run()
    again.logged("running:")
    assert weights(lab) == both  # alpha, but served already: kept until checked
    again.logged(f"real server {NAT1}:{PORT} of [{VIP}]:TCP:{PORT}: in the kernel's table "
                 "already; kept in service until its first check (alpha)", 1)
    time.sleep(2.5)  # a couple of check rounds
    assert weights(lab) == both
    assert again.ipvs_lines() == [], again.output()
    assert conn.ask("after the restart") == f"{behind} after the restart"
    held = [c for c in lab.connections() if c.client == conn.local]
    assert [c.state for c in held] == ["ESTABLISHED"]

    # SIGHUP with a changed weight: exactly one change in the kernel
    (tmp_path / "keepalived.conf").write_text(config_text(weight2=3))
    again.proc.send_signal(signal.SIGHUP)
    again.logged("configuration reloaded")
    wait_for(lambda: weights(lab) == {f"{NAT1}:{PORT}": 1, f"{NAT2}:{PORT}": 3}, 5,
             "the new weight")
    time.sleep(1.5)
    assert again.ipvs_lines() and len(again.ipvs_lines()) == 1, again.output()
    assert f"ipvs: change real server {NAT2}:{PORT} of {SERVICE}: weight 1 -> 3" in \
        again.ipvs_lines()[0]
    assert conn.ask("after the reload") == f"{behind} after the reload"

    # SIGTERM: its service goes, exit 0
    assert again.stop() == 0, again.output()
    assert SERVICE not in lab.directors[0].netns.listing()
    assert "Traceback" not in again.output()
    conn.close()


def test_keep_ipvs_and_foreign_services(lab: LvsLab, run):
    lab.start_servers([("nat1", PORT), ("nat2", PORT)])
    netns = lab.directors[0].netns
    netns.ipvsadm("-A", "-t", f"{VIP}:25", "-s", "rr")
    netns.ipvsadm("-a", "-t", f"{VIP}:25", "-r", f"{NAT1}:25", "-m")
    foreign = netns.rules()
    both = {f"{NAT1}:{PORT}": 1, f"{NAT2}:{PORT}": 1}

    # --keep-ipvs: the table stays as it is after the stop
    director = run("--keep-ipvs")
    director.logged("running:")
    wait_for(lambda: weights(lab) == both, CHECK_TIMEOUT, "both real servers")
    assert director.stop() == 0, director.output()
    assert weights(lab) == both

    # a plain stop: its own service goes, the foreign one stays exactly as it was
    director = run()
    director.logged("running:")
    assert director.ipvs_lines() == [], director.output()
    assert director.stop() == 0, director.output()
    assert SERVICE not in netns.listing()
    assert netns.rules() == [r for r in foreign if f"{VIP}:25" in r]


def test_a_service_the_kernel_refuses_is_logged_and_the_rest_carries_traffic(
        lab: LvsLab, run, tmp_path: Path):
    """`twos` passes the config check but this kernel has no ip_vs_twos: the director
    says which service and why, once, and the other service works."""
    lab.start_servers([("nat1", PORT), ("nat2", PORT)])
    refused_port = PORT + 1
    (tmp_path / "keepalived.conf").write_text(config_text() + f"""
virtual_server {VIP} {refused_port} {{
    delay_loop 1
    lb_algo twos
    lb_kind NAT
    protocol TCP
    real_server {NAT1} {PORT} {{
        TCP_CHECK {{
            connect_timeout 1
        }}
    }}
}}
""")
    director = run()
    director.logged("running:")
    both = {f"{NAT1}:{PORT}": 1, f"{NAT2}:{PORT}": 1}
    wait_for(lambda: weights(lab) == both, CHECK_TIMEOUT, "the good service")
    director.logged(f"cannot add virtual service TCP {VIP}:{refused_port}: unknown scheduler "
                    "'twos'", 1)
    assert {lab.request(PORT) for _ in range(4)} == {"nat1", "nat2"}
    assert f"TCP {VIP}:{refused_port}" not in lab.directors[0].netns.listing()
    time.sleep(2.5)  # check rounds go by: the refusal is not logged again
    assert director.output().count(f"TCP {VIP}:{refused_port}: unknown scheduler") == 1, \
        director.output()
    assert director.proc.poll() is None
    assert director.stop() == 0, director.output()
