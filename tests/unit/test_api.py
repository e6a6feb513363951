"""The status view (merging the children's files, stale detection) and the status API
served on loopback and on a unix socket: what each path answers, the bearer token, and
clear errors for bad options."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from director import status_view
from director.api import ApiError, ApiSettings, parse_listen, start_api
from director.state_files import write_json_atomic, write_status

VIP = "192.0.2.10"
RS1, RS2 = "198.51.100.11", "198.51.100.12"
SERVICE = f"TCP {VIP}:80"
VS_ID = f"[{VIP}]:TCP:80"


# ---------------------------------------------------------------- fake state files


def vrrp_status(pid: int, state: str = "MASTER", written_at: float | None = None,
                running: bool = True) -> dict[str, Any]:
    return {
        "version": 1, "written_at": time.time() if written_at is None else written_at,
        "pid": pid, "config": "/etc/keepalived/keepalived.conf", "running": running,
        "reload": {"count": 2, "at": time.time() - 30, "ok": True, "seconds": 0.012,
                   "problems": []},
        "instances": {"VI_1": {
            "name": "VI_1", "vrid": 51, "interface": "eth0", "family": "inet",
            "version": 3, "state": state, "priority": 150, "base_priority": 150,
            "master": "192.0.2.1", "master_priority": 150, "address": "192.0.2.1",
            "fault": False, "handing_over": False, "holds_addresses": state == "MASTER",
            "virtual_addresses": [VIP],
            "counters": {"adverts_sent": 42, "adverts_received": 7, "bad_ttl": 3,
                         "became_master": 1, "released_master": 0, "auth_failure": 0}}},
        "sync_groups": {"G1": state},
    }


def checkers_status(pid: int, rs2_up: bool = False, written_at: float | None = None
                    ) -> dict[str, Any]:
    now = time.time()
    return {
        "version": 1, "written_at": now if written_at is None else written_at, "pid": pid,
        "running": True, "config": "/etc/keepalived/keepalived.conf",
        "reload": {"count": 1, "at": now - 60, "ok": False, "seconds": 0.2,
                   "problems": ["x.conf:3:1: unknown keyword"]},
        "virtual_servers": [{
            "id": VS_ID, "services": [SERVICE], "quorum_up": True, "sorry_active": False,
            "real_servers": [
                {"address": RS1, "port": 80, "up": True, "drained": False, "weight": 3,
                 "configured_weight": 3, "reason": f"connected to {RS1}:80",
                 "last_check": now - 0.5, "latency": 0.0025, "since": now - 100},
                {"address": RS2, "port": 80, "up": rs2_up, "drained": False,
                 "weight": 2 if rs2_up else 0, "configured_weight": 2,
                 "reason": "connection refused" if not rs2_up else "connected",
                 "last_check": now - 0.7, "latency": 0.0004, "since": now - 5},
            ]}],
    }


def write_state(state_dir: Path, vrrp_pid: int | None = None,
                checkers_pid: int | None = None, **kwargs: Any) -> None:
    pid = os.getpid()
    write_json_atomic(str(state_dir / "vrrp-status.json"),
                      vrrp_status(vrrp_pid or pid, **kwargs))
    write_status(str(state_dir), checkers_status(checkers_pid or pid))


def daemon_info(vrrp_pid: int | None = None, checkers_pid: int | None = None,
                checkers_running: bool = True, dry_run: bool = True) -> dict[str, Any]:
    pid = os.getpid()
    return {
        "pid": pid, "started_at": time.time() - 3600, "config": "/etc/k.conf",
        "dry_run": dry_run,
        "children": [
            {"role": "vrrp", "pid": vrrp_pid or pid, "running": True,
             "started_at": time.time() - 3600, "restarts": 0, "last_exit": None},
            {"role": "checkers", "pid": (checkers_pid or pid) if checkers_running else None,
             "running": checkers_running, "started_at": time.time() - 10, "restarts": 2,
             "last_exit": None if checkers_running else "killed by SIGKILL"}],
        "reload": {"count": 3, "at": time.time() - 30, "ok": True, "problems": [],
                   "ok_total": 2, "refused_total": 1},
    }


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


class FakeReader:
    """Stands in for the kernel read in tests of the merging (never of the kernel)."""

    def __init__(self, snapshot: status_view.IpvsSnapshot | None, problem: str | None = None):
        self.result = (snapshot, problem)
        self.calls = 0

    def read(self) -> tuple[status_view.IpvsSnapshot | None, str | None]:
        self.calls += 1
        return self.result


def snapshot() -> status_view.IpvsSnapshot:
    counters = {"connections": 120, "packets_in": 900, "packets_out": 0,
                "bytes_in": 65000, "bytes_out": 0, "connections_per_second": 4,
                "packets_in_per_second": 30, "packets_out_per_second": 0,
                "bytes_in_per_second": 2100, "bytes_out_per_second": 0}
    dest = {"active_connections": 5, "inactive_connections": 9,
            "persistent_connections": 0, **counters}
    return status_view.IpvsSnapshot(
        services={SERVICE: counters},
        destinations={SERVICE: {(RS1, 80): dest}}, read_at=time.time())


# ---------------------------------------------------------------- the view


def test_view_merges_daemon_vrrp_and_real_servers(tmp_path: Path):
    write_state(tmp_path)
    view = status_view.collect(str(tmp_path), daemon_info(), ipvs=False)
    assert view["daemon"]["children"][1]["restarts"] == 2
    [instance] = view["vrrp"]["instances"]
    assert (instance["name"], instance["state"], instance["priority"], instance["master"]) \
        == ("VI_1", "MASTER", 150, "192.0.2.1")
    assert instance["counters"]["adverts_sent"] == 42
    assert view["vrrp"]["sync_groups"] == [{"name": "G1", "state": "MASTER"}]
    [vs] = view["virtual_servers"]
    assert vs["id"] == VS_ID and vs["services"] == [SERVICE]
    by_name = {rs["name"]: rs for rs in vs["real_servers"]}
    assert by_name[f"{RS1}:80"]["up"] is True and by_name[f"{RS1}:80"]["weight"] == 3
    assert by_name[f"{RS2}:80"]["up"] is False
    assert by_name[f"{RS2}:80"]["reason"] == "connection refused"
    assert not view["files"]["vrrp"]["stale"] and not view["files"]["checkers"]["stale"]
    assert view["files"]["checkers"]["reload"]["problems"] == ["x.conf:3:1: unknown keyword"]
    # a dry run: the kernel is not read, and the view says so
    assert view["ipvs"]["available"] is False and "dry run" in view["ipvs"]["problem"]
    assert status_view.health_problems(view) == []


def test_view_attaches_ipvs_counters_to_services_and_real_servers(tmp_path: Path):
    write_state(tmp_path)
    reader = FakeReader(snapshot())
    view = status_view.collect(str(tmp_path), None, ipvs=True, reader=reader)  # type: ignore[arg-type]
    [vs] = view["virtual_servers"]
    assert vs["ipvs"][0]["service"] == SERVICE and vs["ipvs"][0]["connections"] == 120
    rs1, rs2 = vs["real_servers"]
    assert rs1["ipvs"][0]["active_connections"] == 5
    assert rs2["ipvs"] == []  # not in the kernel's table (it is down)
    assert view["ipvs"]["available"] is True


def test_kernel_without_ip_vs_is_said_not_raised(tmp_path: Path):
    if os.path.exists("/proc/net/ip_vs"):
        pytest.skip("this kernel has ip_vs: the failure path cannot be seen here")
    write_state(tmp_path)
    reader = status_view.IpvsStatsReader()
    view = status_view.collect(str(tmp_path), None, ipvs=True, reader=reader)
    reader.close()
    assert view["ipvs"]["available"] is False
    assert "ip_vs" in view["ipvs"]["problem"]
    assert view["virtual_servers"][0]["real_servers"][0]["ipvs"] == []


def test_ipvs_reads_are_cached_for_a_second():
    reads = []

    class Counting(status_view.IpvsStatsReader):
        def _read_now(self):
            reads.append(time.monotonic())
            return snapshot(), None

    reader = Counting(max_age=0.3)
    for _ in range(5):
        reader.read()
    assert len(reads) == 1
    time.sleep(0.35)
    reader.read()
    assert len(reads) == 2


def test_stale_files_are_marked_with_the_reason(tmp_path: Path):
    gone = dead_pid()
    write_json_atomic(str(tmp_path / "vrrp-status.json"), vrrp_status(gone))
    write_status(str(tmp_path), checkers_status(os.getpid(), written_at=time.time() - 60))
    view = status_view.collect(str(tmp_path), None, ipvs=False)
    vrrp, checkers = view["files"]["vrrp"], view["files"]["checkers"]
    assert vrrp["stale"] and vrrp["stale_reason"] == f"its writer (pid {gone}) is gone"
    assert checkers["stale"] and "written 60" in checkers["stale_reason"]
    # the last known state is still shown, marked
    assert view["vrrp"]["instances"][0]["state"] == "MASTER"
    problems = status_view.health_problems(view)
    assert len(problems) == 2 and "is gone" in problems[0] and "stuck" in problems[1]


def test_a_stopped_writer_or_another_childs_file_is_stale(tmp_path: Path):
    write_json_atomic(str(tmp_path / "vrrp-status.json"),
                      vrrp_status(os.getpid(), running=False))
    write_status(str(tmp_path), checkers_status(os.getpid()))
    other = os.getppid()
    view = status_view.collect(str(tmp_path), daemon_info(checkers_pid=other), ipvs=False)
    assert view["files"]["vrrp"]["stale_reason"] == f"its writer (pid {os.getpid()}) " \
                                                   f"has stopped"
    assert view["files"]["checkers"]["stale_reason"] == \
        f"written by pid {os.getpid()}, but the running child is pid {other}"


def test_missing_and_broken_files(tmp_path: Path):
    (tmp_path / "status.json").write_text("{not json")
    view = status_view.collect(str(tmp_path), None, ipvs=False)
    assert view["files"]["vrrp"]["present"] is False
    assert view["files"]["vrrp"]["stale_reason"] == "no status file yet"
    assert view["files"]["checkers"]["present"] is True
    assert "unreadable" in view["files"]["checkers"]["problem"]
    assert view["virtual_servers"] == [] and view["vrrp"]["instances"] == []


def test_health_names_a_child_that_is_not_running(tmp_path: Path):
    write_state(tmp_path)
    view = status_view.collect(str(tmp_path), daemon_info(checkers_running=False),
                               ipvs=False)
    assert status_view.health_problems(view) == [
        "checkers child: not running (killed by SIGKILL)"]


# ---------------------------------------------------------------- settings


def test_settings_off_unless_configured(tmp_path: Path):
    assert ApiSettings.from_options(None, None, None) is None
    token = tmp_path / "token"
    token.write_text("  abc123\n")
    settings = ApiSettings.from_options("9100", None, str(token))
    assert settings is not None
    assert settings.listen == ("127.0.0.1", 9100) and settings.token == "abc123"
    assert "abc123" not in repr(settings)


@pytest.mark.parametrize(("text", "expected"), [
    ("9100", ("127.0.0.1", 9100)), (":9100", ("127.0.0.1", 9100)),
    ("0.0.0.0:80", ("0.0.0.0", 80)), ("[::1]:9100", ("::1", 9100)),
    ("localhost:9100", ("localhost", 9100))])
def test_listen_forms(text: str, expected: tuple[str, int]):
    assert parse_listen(text) == expected


@pytest.mark.parametrize(("listen", "socket_path", "token", "message"), [
    ("99999", None, None, "'99999' is not a port"),
    ("web:80", None, None, "'web' is not an IP address"),
    ("::1:80", None, None, "write an IPv6 address as [ADDRESS]:PORT"),
    ("9100", None, "missing", "cannot read: No such file or directory"),
    ("9100", None, "empty", "the file is empty"),
    ("9100", None, "blanks", "one word of printable ASCII"),
    (None, None, "ok", "--api-token-file needs --api-listen or --api-socket"),
    (None, "/nonexistent-dir/api.sock", None, "directory /nonexistent-dir does not exist"),
])
def test_settings_errors_are_clear(tmp_path: Path, listen, socket_path, token, message):
    files = {"empty": "\n", "blanks": "two words\n", "ok": "abc\n"}
    token_file = None
    if token is not None:
        token_file = tmp_path / token
        if token in files:
            token_file.write_text(files[token])
    with pytest.raises(ValueError) as caught:
        ApiSettings.from_options(listen, socket_path, token_file and str(token_file))
    assert message in str(caught.value)


# ---------------------------------------------------------------- the server


@contextlib.contextmanager
def short_dir() -> Iterator[Path]:
    """A directory with a path short enough for a unix socket."""
    with tempfile.TemporaryDirectory(prefix="lvsd-api-") as name:
        yield Path(name)


async def get(url: str, token: str | None = None, method: str = "GET",
              connector: aiohttp.BaseConnector | None = None
              ) -> tuple[int, dict[str, str], str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(connector=connector) as session, \
            session.request(method, url, headers=headers) as answer:
        return answer.status, dict(answer.headers), await answer.text()


async def test_status_metrics_healthz_and_page_without_token(tmp_path: Path):
    write_state(tmp_path)
    info = daemon_info()
    api = await start_api(ApiSettings(listen=("127.0.0.1", 0)), str(tmp_path), lambda: info)
    try:
        base = f"http://127.0.0.1:{api.port}"
        status, headers, body = await get(f"{base}/status")
        assert status == 200 and headers["Content-Type"].startswith("application/json")
        view = json.loads(body)
        assert view["vrrp"]["instances"][0]["state"] == "MASTER"
        assert view["daemon"]["pid"] == os.getpid()
        status, headers, body = await get(f"{base}/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert 'lvs_director_vrrp_state{instance="VI_1",state="MASTER"} 1.0' in body
        status, _, body = await get(f"{base}/healthz")
        assert (status, body) == (200, "ok\n")
        status, headers, body = await get(f"{base}/")
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert "fetch(\"status\"" in body
        assert (await get(f"{base}/nothing"))[0] == 404
        assert (await get(f"{base}/status", method="POST"))[0] == 405
        # a child stops: 503 with the reason
        info["children"][1].update(running=False, pid=None, last_exit="exited with status 1")
        status, _, body = await get(f"{base}/healthz")
        assert status == 503 and "checkers child: not running (exited with status 1)" in body
    finally:
        await api.close()


async def test_bearer_token(tmp_path: Path):
    write_state(tmp_path)
    api = await start_api(ApiSettings(listen=("127.0.0.1", 0), token="s3cret-token"),
                          str(tmp_path), daemon_info)
    try:
        base = f"http://127.0.0.1:{api.port}"
        for path in ("/status", "/metrics"):
            status, headers, _ = await get(base + path)
            assert status == 401, path
            assert headers["WWW-Authenticate"] == 'Bearer realm="lvs-director"'
            status, headers, _ = await get(base + path, token="wrong")
            assert status == 401
            assert 'error="invalid_token"' in headers["WWW-Authenticate"]
            assert (await get(base + path, token="s3cret-token"))[0] == 200
        # a health probe carries no token; the page holds no data
        assert (await get(f"{base}/healthz"))[0] == 200
        assert (await get(f"{base}/"))[0] == 200
    finally:
        await api.close()


async def test_unix_socket_mode_and_cleanup(tmp_path: Path):
    write_state(tmp_path)
    with short_dir() as directory:
        path = directory / "api.sock"
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(str(path))  # a socket left by a previous run is replaced
        stale.close()
        api = await start_api(ApiSettings(socket_path=str(path)), str(tmp_path), daemon_info)
        try:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
            assert api.urls == [f"unix:{path}"]
            status, _, body = await get("http://localhost/status",
                                        connector=aiohttp.UnixConnector(path=str(path)))
            assert status == 200 and json.loads(body)["virtual_servers"][0]["id"] == VS_ID
        finally:
            await api.close()
        assert not path.exists()


async def test_addresses_that_cannot_be_used(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ApiError, match=f"cannot listen on 127.0.0.1:{port}: "):
            await start_api(ApiSettings(listen=("127.0.0.1", port)), str(tmp_path),
                            daemon_info)
    regular = tmp_path / "not-a-socket"
    regular.write_text("keep me")
    with pytest.raises(ApiError, match="exists and is not a unix socket"):
        await start_api(ApiSettings(socket_path=str(regular)), str(tmp_path), daemon_info)
    assert regular.read_text() == "keep me"
