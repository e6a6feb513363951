"""`director run --checkers-only --dry-run` as an operator starts it: a subprocess in a
director namespace checking real servers in their own namespaces; the IPVS changes it
would make are in its log."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from tests.netns.lab import Lab, Node, Process, logged, wait_until

ROOT = Path(__file__).resolve().parents[2]
VIP = "203.0.113.10"


def serve(lab: Lab, node: Node) -> Process:
    """A TCP server on the node's address, port 80 (what TCP_CHECK checks)."""
    address = str(node.ipv4.ip)
    return lab.spawn(node.ns, sys.executable, "-m", "http.server", "80", "--bind", address,
                     log=lab.workdir / f"http-{node.role}.log")


def config_text(servers: list[Node], weight: int = 1) -> str:
    reals = "".join(f"""
    real_server {node.ipv4.ip} 80 {{
        weight {weight}
        TCP_CHECK {{
            connect_timeout 1
            retry 0
        }}
    }}""" for node in servers)
    return f"""
virtual_server {VIP} 80 {{
    delay_loop 1
    lb_algo wrr
    lb_kind DR
    protocol TCP
{reals}
}}
"""


def start_director(lab: Lab, node: Node, conf: Path, state: Path) -> Process:
    return lab.spawn(node.ns, sys.executable, "-m", "director.cli.main", "run", "-f", conf,
                     "--checkers-only", "--dry-run", "--state-dir", state,
                     log=lab.workdir / "director.log", env={"PYTHONPATH": str(ROOT)})


def test_dry_run_follows_real_servers_and_reloads(lab: Lab, tmp_path: Path):
    director = lab.add_node("director")
    rs1, rs2 = lab.add_node("rs1"), lab.add_node("rs2")
    a1, a2 = rs1.ipv4.ip, rs2.ipv4.ip
    http1 = serve(lab, rs1)
    http2 = serve(lab, rs2)
    conf = tmp_path / "keepalived.conf"
    conf.write_text(config_text([rs1, rs2]))
    state = tmp_path / "state"
    proc = start_director(lab, director, conf, state)
    service = f"TCP {VIP}:80"
    logged(proc, f"dry-run: ipvs: add virtual service {service}: scheduler wrr")
    logged(proc, f"dry-run: ipvs: add real server {a1}:80 to {service}: weight 1 DR")
    logged(proc, f"dry-run: ipvs: add real server {a2}:80 to {service}: weight 1 DR")
    assert (state / "director.pid").read_text().strip() == str(proc.pid)

    # a real server stops: the next check (delay_loop 1) takes it out
    http1.stop()
    logged(proc, f"real server {a1}:80 of [{VIP}]:TCP:80 is DOWN: TCP_CHECK", timeout=5)
    logged(proc, f"dry-run: ipvs: delete real server {a1}:80 from {service}")
    # and back
    serve(lab, rs1)
    logged(proc, f"real server {a1}:80 of [{VIP}]:TCP:80 is UP", timeout=5)
    wait_until(lambda: proc.output().count(
        f"dry-run: ipvs: add real server {a1}:80 to {service}: weight 1 DR") == 2, 5)

    # SIGHUP with a weight change: one change
    conf.write_text(config_text([rs1, rs2], weight=4))
    proc.send_signal(signal.SIGHUP)
    logged(proc, "configuration reloaded")
    logged(proc, f"dry-run: ipvs: change real server {a1}:80 of {service}: weight 1 -> 4")
    logged(proc, f"dry-run: ipvs: change real server {a2}:80 of {service}: weight 1 -> 4")

    # SIGHUP with a broken config: keeps running the old one, says where the problems are
    conf.write_text(config_text([rs1, rs2]).replace("lb_algo wrr", "lb_algo nosuch")
                    .replace("weight 1", "weight -3", 1))
    proc.send_signal(signal.SIGHUP)
    logged(proc, "still running the previous configuration")
    out = proc.output()
    assert f"reload: {conf}:4:13: unknown scheduler 'nosuch'" in out
    assert f"reload: {conf}:9:16: weight -3 is out of range" in out
    assert out.count("configuration reloaded") == 1
    # the previous configuration still runs: its checks still move the table
    http2.stop()
    logged(proc, f"dry-run: ipvs: delete real server {a2}:80 from {service}", timeout=5)

    # SIGTERM: the services it made go, and it ends cleanly
    assert proc.stop(signal.SIGTERM, timeout=10) == 0, proc.output()
    out = proc.output()
    assert f"dry-run: ipvs: delete virtual service {service}" in out
    assert "Traceback" not in out
    assert not (state / "director.pid").exists()

