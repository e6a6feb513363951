"""The status API's IPVS counters with the real ip_vs and real traffic: `director run
--checkers-only` keeps a director namespace's IPVS table, the API runs in the same
namespace (as the supervisor does) on a unix socket, the client sends connections
through the VIP, and /status and /metrics count them per real server as the kernel
does (`ipvsadm -Ln --stats` is the reference).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_lab import wait_for
from lvs_lab import VIP, LvsLab, lab_fixture
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
PORT = 8080
NAT1, NAT2 = "192.0.2.11", "192.0.2.12"
SERVICE = f"TCP {VIP}:{PORT}"
START_TIMEOUT = 40.0  # Python + pyroute2 + aiohttp start slowly in the guest
REQUESTS = 10

lab = lab_fixture(nat=2, dr=0, directors=1)

CONFIG = f"""virtual_server {VIP} {PORT} {{
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server {NAT1} {PORT} {{
        TCP_CHECK {{
            connect_timeout 1
        }}
    }}
    real_server {NAT2} {PORT} {{
        TCP_CHECK {{
            connect_timeout 1
        }}
    }}
}}
"""

# The API as the supervisor serves it, in the director's namespace, with the
# supervisor's view of the checkers child (not a dry run: the kernel is read).
API_PROGRAM = textwrap.dedent("""
    import asyncio, os, sys, time
    from director.api import ApiSettings, start_api

    socket_path, state_dir, child = sys.argv[1], sys.argv[2], int(sys.argv[3])
    started = time.time()

    def daemon_info():
        return {"pid": os.getpid(), "started_at": started, "config": "keepalived.conf",
                "dry_run": False,
                "children": [{"role": "checkers", "pid": child, "running": True,
                              "started_at": started, "restarts": 0, "last_exit": None}],
                "reload": {"count": 0, "at": None, "ok": None, "problems": []}}

    async def main():
        await start_api(ApiSettings(socket_path=socket_path), state_dir, daemon_info)
        print("serving", flush=True)
        await asyncio.sleep(120)

    asyncio.run(main())
""")


def get(socket_path: str, path: str) -> str:
    """GET over the unix socket (HTTP/1.0: the server closes when done)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(socket_path)
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200"), head
    return body.decode()


@pytest.fixture
def director_with_api(lab: LvsLab, tmp_path: Path) -> Iterator[str]:
    lab.clear_ipvs()
    conf = tmp_path / "keepalived.conf"
    conf.write_text(CONFIG)
    state = tmp_path / "state"
    netns = lab.directors[0].netns.name
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    socket_path = str(tmp_path / "api.sock")
    procs: list[subprocess.Popen] = []
    logs = [tmp_path / "checkers.log", tmp_path / "api.log"]
    try:
        with logs[0].open("w") as out:
            checkers = subprocess.Popen(
                ["ip", "netns", "exec", netns, sys.executable, "-m", "director.cli.main",
                 "run", "-f", str(conf), "--checkers-only", "--supervised",
                 "--state-dir", str(state)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                env=env)
            procs.append(checkers)
        with logs[1].open("w") as out:
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", netns, sys.executable, "-c", API_PROGRAM,
                 socket_path, str(state), str(checkers.pid)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                env=env))

        def serving() -> bool:
            for proc, log in zip(procs, logs, strict=True):
                if proc.poll() is not None:
                    raise AssertionError(f"exited ({proc.returncode}):\n{log.read_text()}")
            return "serving" in logs[1].read_text()

        wait_for(serving, START_TIMEOUT, "the API serving")
        yield socket_path
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        lab.stop_servers()
        lab.clear_ipvs()


def real_servers(view: dict) -> dict[str, dict]:
    return {rs["name"]: rs for vs in view["virtual_servers"] for rs in vs["real_servers"]}


def kernel_connections(lab: LvsLab) -> dict[str, int]:
    """ipvsadm -Ln --stats: connections per real server, as the kernel counts them."""
    out = lab.directors[0].netns.ipvsadm("-Ln", "--stats", "--exact")
    found = {}
    for line in out.splitlines():
        words = line.split()
        if words[:1] == ["->"] and words[1][0].isdigit():
            found[words[1]] = int(words[2])
    return found


def test_status_and_metrics_count_the_kernels_connections(lab: LvsLab, director_with_api):
    socket_path = director_with_api
    lab.start_servers([("nat1", PORT), ("nat2", PORT)])
    names = (f"{NAT1}:{PORT}", f"{NAT2}:{PORT}")

    def both_up() -> dict | None:
        view = json.loads(get(socket_path, "/status"))
        servers = real_servers(view)
        ready = all(servers.get(n, {}).get("up") and servers[n].get("last_check")
                    for n in names)
        return view if ready and view["ipvs"]["available"] else None

    view = wait_for(both_up, 20, "both real servers up, IPVS counters read")
    assert view["ipvs"]["problem"] is None
    served = lab.requests(REQUESTS, PORT)
    assert sum(served.values()) == REQUESTS
    held = lab.open_connection(PORT)
    held.ask("hello")
    behind = {"nat1": names[0], "nat2": names[1]}[held.server]
    expected = {names[0]: served["nat1"], names[1]: served["nat2"]}
    expected[behind] += 1

    # the kernel folds its counters every 2 s; the API caches its read for 1 s
    def counted() -> dict | None:
        view = json.loads(get(socket_path, "/status"))
        servers = real_servers(view)
        got = {n: sum(s["connections"] for s in servers[n]["ipvs"]) for n in names}
        return view if got == expected else None

    try:
        view = wait_for(counted, 10, f"the API counting {expected}")
    except AssertionError:
        raise AssertionError(f"kernel: {kernel_connections(lab)}, "
                             f"expected {expected}") from None
    assert kernel_connections(lab) == expected
    servers = real_servers(view)
    assert sum(s["active_connections"] for s in servers[behind]["ipvs"]) == 1
    [service] = view["virtual_servers"][0]["ipvs"]
    assert service["service"] == SERVICE and service["connections"] == REQUESTS + 1
    assert service["packets_in"] > 0 and service["bytes_in"] > 0

    metrics = get(socket_path, "/metrics")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(metrics) for s in f.samples}
    for name in names:
        labels = (("real_server", name), ("service", SERVICE))
        assert samples[("lvs_director_ipvs_connections_total", labels)] == expected[name]
    assert samples[("lvs_director_ipvs_active_connections",
                    (("real_server", behind), ("service", SERVICE)))] == 1
    assert samples[("lvs_director_ipvs_stats_available", ())] == 1
    held.close()
