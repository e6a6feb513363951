"""The status API over real status files: `director run --checkers-only --dry-run` and
`director run --vrrp-only` run in a director namespace (real servers in their own
namespaces), and the API is started here with the supervisor's view of those two
processes. /status, /metrics, /healthz, the token and the unix socket are checked as an
operator and Prometheus would; the HTML page in a real headless Chromium, which must
show the VRRP state and a real server going DOWN when it is stopped."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from director.api import ApiSettings, start_api
from tests.netns.lab import Lab, Node, Process, netns_unavailable_reason, wait_until

ROOT = Path(__file__).resolve().parents[2]
VIP = "203.0.113.10"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
TOKEN = "netns-test-token"


def config_text(servers: list[Node]) -> str:
    reals = "".join(f"""
    real_server {node.ipv4.ip} 80 {{
        weight 2
        TCP_CHECK {{
            connect_timeout 1
            retry 0
        }}
    }}""" for node in servers)
    return f"""
global_defs {{
    vrrp_version 3
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 0.2
    virtual_ipaddress {{
        {VIP}/24
    }}
}}
virtual_server {VIP} 80 {{
    delay_loop 1
    lb_algo wrr
    lb_kind DR
    protocol TCP
{reals}
}}
"""


@dataclass
class Director:
    lab: Lab
    node: Node
    conf: Path
    state: Path
    servers: dict[str, Node]
    http: dict[str, Process]
    children: dict[str, Process]
    started_at: float

    def start_child(self, role: str) -> None:
        flag = "--vrrp-only" if role == "vrrp" else "--checkers-only"
        extra = ["--dry-run"] if role == "checkers" else []
        # --supervised: as the supervisor starts them (no pid file of their own)
        self.children[role] = self.lab.spawn(
            self.node.ns, sys.executable, "-m", "director.cli.main", "run", flag,
            "-f", self.conf, "--state-dir", self.state, "--supervised", *extra,
            log=self.lab.workdir / f"{role}.{time.monotonic_ns()}.log",
            env={"PYTHONPATH": str(ROOT)})

    def serve(self, name: str) -> None:
        node = self.servers[name]
        self.http[name] = self.lab.spawn(
            node.ns, sys.executable, "-m", "http.server", "80", "--bind", str(node.ipv4.ip),
            log=self.lab.workdir / f"http-{name}.{time.monotonic_ns()}.log")

    def daemon_info(self) -> dict[str, Any]:
        """What the supervisor would say about these two processes."""
        return {"pid": os.getpid(), "started_at": self.started_at, "config": str(self.conf),
                "dry_run": True,
                "children": [{"role": role, "pid": proc.pid if proc.alive() else None,
                              "running": proc.alive(), "started_at": self.started_at,
                              "restarts": 0,
                              "last_exit": None if proc.alive() else
                              f"exited with status {proc.returncode}"}
                             for role, proc in self.children.items()],
                "reload": {"count": 0, "at": None, "ok": None, "problems": []}}

    def real_server(self, name: str) -> str:
        return f"{self.servers[name].ipv4.ip}:80"


@pytest.fixture(scope="module")
def director(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Director]:
    why = netns_unavailable_reason()
    if why is not None:
        pytest.skip(f"netns tier: needs root and network namespaces (run `sudo make "
                    f"test-netns`) [{why}]")
    workdir = tmp_path_factory.mktemp("api")
    with Lab(workdir / "lab") as lab:
        node = lab.add_node("director")
        servers = {"rs1": lab.add_node("rs1"), "rs2": lab.add_node("rs2")}
        conf = workdir / "keepalived.conf"
        conf.write_text(config_text(list(servers.values())))
        d = Director(lab, node, conf, workdir / "state", servers, {}, {}, time.time())
        for name in servers:
            d.serve(name)
        for role in ("vrrp", "checkers"):
            d.start_child(role)
        yield d


def fresh_view(d: Director, predicate, timeout: float = 10.0) -> dict[str, Any]:
    """The view (as collected for the API) once `predicate(view)` holds."""
    from director import status_view

    found: list[dict[str, Any]] = []

    def ready() -> bool:
        for role, proc in d.children.items():
            if not proc.alive():
                raise AssertionError(f"{role} exited:\n{proc.output()}")
        view = status_view.collect(str(d.state), d.daemon_info(), ipvs=False)
        found[:] = [view]
        return bool(predicate(view))

    try:
        wait_until(ready, timeout, interval=0.1)
    except TimeoutError:
        raise AssertionError(f"not within {timeout} s: {json.dumps(found, indent=1)}"
                             ) from None
    return found[0]


def health_of(view: dict[str, Any]) -> dict[str, bool]:
    return {rs["name"]: rs["up"] for vs in view["virtual_servers"]
            for rs in vs["real_servers"]}


def settled(d: Director):
    def check(view: dict[str, Any]) -> bool:
        instances = view["vrrp"]["instances"]
        health = health_of(view)
        return (bool(instances) and instances[0]["state"] == "MASTER"
                and health.get(d.real_server("rs1")) is True
                and health.get(d.real_server("rs2")) is True
                and all(rs["last_check"] for vs in view["virtual_servers"]
                        for rs in vs["real_servers"])
                and not any(f["stale"] for f in view["files"].values()))
    return check


@contextlib.asynccontextmanager
async def api_of(d: Director, **settings: Any):
    api = await start_api(ApiSettings(**settings), str(d.state), d.daemon_info)
    try:
        yield api
    finally:
        await api.close()


async def get(url: str, token: str | None = None,
              connector: aiohttp.BaseConnector | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(connector=connector) as session, \
            session.get(url, headers=headers) as answer:
        return answer.status, await answer.text()


async def test_status_and_metrics_from_the_running_children(director: Director):
    d = director
    fresh_view(d, settled(d))
    async with api_of(d, listen=("127.0.0.1", 0)) as api:
        base = f"http://127.0.0.1:{api.port}"
        status, body = await get(f"{base}/status")
        assert status == 200
        view = json.loads(body)
        [instance] = view["vrrp"]["instances"]
        assert instance["state"] == "MASTER" and instance["priority"] == 150
        assert instance["virtual_addresses"] == [VIP]
        assert instance["counters"]["adverts_sent"] > 0
        assert view["files"]["vrrp"]["pid"] == d.children["vrrp"].pid
        assert view["files"]["checkers"]["pid"] == d.children["checkers"].pid
        [vs] = view["virtual_servers"]
        assert vs["services"] == [f"TCP {VIP}:80"]
        for rs in vs["real_servers"]:
            assert rs["up"] is True and rs["weight"] == 2
            assert rs["reason"].startswith("connected to")
            assert 0 < rs["latency"] < 1 and time.time() - rs["last_check"] < 5
        assert view["ipvs"]["available"] is False and "dry run" in view["ipvs"]["problem"]

        status, text = await get(f"{base}/metrics")
        assert status == 200
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in text_string_to_metric_families(text) for s in f.samples}
        assert samples[("lvs_director_vrrp_state",
                        (("instance", "VI_1"), ("state", "MASTER")))] == 1
        vs_id = vs["id"]
        for name in ("rs1", "rs2"):
            labels = (("real_server", d.real_server(name)), ("virtual_server", vs_id))
            assert samples[("lvs_director_real_server_up", labels)] == 1
            assert samples[("lvs_director_real_server_weight", labels)] == 2
            assert 0 < samples[("lvs_director_check_latency_seconds", labels)] < 1
        assert samples[("lvs_director_child_up", (("role", "checkers"),))] == 1
        assert samples[("lvs_director_vrrp_adverts_sent_total",
                        (("instance", "VI_1"),))] > 0


async def test_healthz_follows_the_children(director: Director):
    d = director
    fresh_view(d, settled(d))
    async with api_of(d, listen=("127.0.0.1", 0)) as api:
        url = f"http://127.0.0.1:{api.port}/healthz"
        assert await get(url) == (200, "ok\n")
        # kill -9 the checkers child: its file's writer is gone
        checkers = d.children["checkers"]
        checkers.stop(signal.SIGKILL)
        status, body = await get(url)
        assert status == 503
        assert "checkers child: not running" in body
        assert f"its writer (pid {checkers.pid}) is gone" in body
        # started again (as the supervisor would): healthy once it has written its file
        d.start_child("checkers")
        fresh_view(d, settled(d))
        assert await get(url) == (200, "ok\n")


async def test_token_and_unix_socket(director: Director):
    d = director
    fresh_view(d, settled(d))
    with tempfile.TemporaryDirectory(prefix="lvsd-api-") as directory:
        path = os.path.join(directory, "api.sock")
        async with api_of(d, listen=("127.0.0.1", 0), socket_path=path, token=TOKEN) as api:
            base = f"http://127.0.0.1:{api.port}"
            assert (await get(f"{base}/status"))[0] == 401
            assert (await get(f"{base}/metrics", token="not-it"))[0] == 401
            status, body = await get(f"{base}/status", token=TOKEN)
            assert status == 200 and json.loads(body)["vrrp"]["instances"][0]["name"] == "VI_1"
            assert (await get(f"{base}/healthz"))[0] == 200  # health probes carry no token
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
            status, body = await get("http://localhost/status", token=TOKEN,
                                     connector=aiohttp.UnixConnector(path=path))
            assert status == 200 and len(json.loads(body)["virtual_servers"]) == 1
            # director status reads the same, as an operator types it
            token_file = Path(directory) / "token"
            token_file.write_text(TOKEN + "\n")
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "director.cli.main", "status", "--socket", path,
                "--token-file", str(token_file), stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
            out, err = await asyncio.wait_for(proc.communicate(), 20)
            assert proc.returncode == 0, err.decode()
            text = out.decode()
            assert any(line.split()[:2] == ["VI_1", "MASTER"] for line in text.splitlines())
            assert any(line.split()[:2] == [d.real_server("rs1"), "UP"]
                       for line in text.splitlines())
        assert not os.path.exists(path)


def _chromium(user_data: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                f"--user-data-dir={user_data}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


async def test_status_page_in_a_real_browser(director: Director, tmp_path: Path):
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip(f"{CHROMIUM} or {CHROMEDRIVER} missing (`make deps` installs Debian's "
                    f"chromium and chromium-driver)")
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    d = director
    fresh_view(d, settled(d))
    async with api_of(d, listen=("127.0.0.1", 0), token=TOKEN) as api:
        browser = await asyncio.to_thread(_chromium, str(tmp_path / "chromium"))
        try:
            def text_of(selector: str) -> str | None:
                # the page redraws its tables every 2 s: an element found just before a
                # redraw is gone when read (None: look again)
                try:
                    found = browser.find_elements(By.CSS_SELECTOR, selector)
                    return found[0].text if found else None
                except StaleElementReferenceException:
                    return None

            async def shown(selector: str, expected: str, timeout: float) -> float:
                start = time.monotonic()
                while time.monotonic() - start < timeout:
                    if await asyncio.to_thread(text_of, selector) == expected:
                        return time.monotonic() - start
                    await asyncio.sleep(0.2)
                page = await asyncio.to_thread(lambda: browser.find_element(
                    By.TAG_NAME, "body").text)
                raise AssertionError(f"{selector} not {expected!r} within {timeout} s; "
                                     f"the page shows:\n{page}")

            # the token in the fragment: the page sends it, the server never logs it
            await asyncio.to_thread(browser.get,
                                    f"http://127.0.0.1:{api.port}/#token={TOKEN}")
            await shown('tr[data-instance="VI_1"] td.state', "MASTER", 15)
            rs2 = d.real_server("rs2")
            await shown(f'tr[data-real-server="{rs2}"] td.health', "UP", 15)
            # stop a real server: the page (refreshing by itself) shows it DOWN
            d.http["rs2"].stop()
            took = await shown(f'tr[data-real-server="{rs2}"] td.health', "DOWN", 20)
            print(f"real server shown DOWN on the page {took:.1f} s after it stopped")
            await shown(f'tr[data-real-server="{d.real_server("rs1")}"] td.health', "UP", 5)
            await shown("#error", "", 5)
            # without the token, the page says how to give it
            await asyncio.to_thread(browser.get, f"http://127.0.0.1:{api.port}/")
            start = time.monotonic()
            while "needs a token" not in (await asyncio.to_thread(text_of, "#error") or ""):
                assert time.monotonic() - start < 15, "no token message on the page"
                await asyncio.sleep(0.2)
        finally:
            await asyncio.to_thread(browser.quit)
            d.serve("rs2")
