"""`director check-servers`: every configured check once, against real local servers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def health_server():
    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=503, text="maintenance\n")

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/broken", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield port
    await runner.cleanup()


def write_config(tmp_path: Path, http_port: int, closed_port: int) -> Path:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(f"""
virtual_server 127.0.0.1 {http_port} {{
    lvs_sched wrr
    lvs_method NAT
    protocol TCP
    real_server 127.0.0.1 {http_port} {{
        weight 3
        HTTP_GET {{
            url {{
                path /health
            }}
            connect_timeout 2
        }}
    }}
    real_server 127.0.0.2 {http_port} {{
        HTTP_GET {{
            connect_ip 127.0.0.1
            url {{
                path /broken
            }}
            connect_timeout 2
        }}
    }}
    real_server 127.0.0.1 {closed_port} {{
        TCP_CHECK {{
            connect_timeout 2
        }}
    }}
}}
""")
    return conf


async def run_cli(*args: str) -> subprocess.CompletedProcess:
    import asyncio

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "director.cli.main", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return subprocess.CompletedProcess(args, process.returncode, out.decode(), err.decode())


async def test_check_servers_reports_each_real_server_with_its_reason(
        tmp_path: Path, health_server: int) -> None:
    closed = free_port()
    conf = write_config(tmp_path, health_server, closed)

    text = await run_cli("check-servers", "-f", str(conf))
    assert text.returncode == 3, text.stderr  # some real servers are down
    lines = text.stdout.splitlines()
    assert lines[0] == f"[127.0.0.1]:TCP:{health_server} wrr: 1/3 real servers up"
    assert lines[1].split()[:4] == [f"127.0.0.1:{health_server}", "UP", "weight", "3"]
    assert lines[2].split()[:2] == [f"127.0.0.2:{health_server}", "DOWN"]
    assert "HTTP status 503 on /broken" in lines[2]
    assert lines[3].split()[:2] == [f"127.0.0.1:{closed}", "DOWN"]
    assert "connection refused" in lines[3].lower()

    data = json.loads((await run_cli("check-servers", "-f", str(conf), "--json")).stdout)
    (service,) = data
    up = [(r["address"], r["port"], r["up"]) for r in service["real_servers"]]
    assert up == [("127.0.0.1", health_server, True), ("127.0.0.2", health_server, False),
                  ("127.0.0.1", closed, False)]
    assert all(r["latency_ms"] >= 0 for r in service["real_servers"])


async def test_check_servers_exits_zero_when_everything_is_up(
        tmp_path: Path, health_server: int) -> None:
    conf = tmp_path / "ok.conf"
    conf.write_text(f"""
virtual_server 127.0.0.1 {health_server} {{
    protocol TCP
    real_server 127.0.0.1 {health_server} {{
        TCP_CHECK {{
        }}
    }}
}}
""")
    result = await run_cli("check-servers", "-f", str(conf))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1/1 real servers up" in result.stdout


async def test_check_servers_refuses_an_invalid_config(tmp_path: Path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text("virtual_server 127.0.0.1 99999 {\n}\n")
    result = await run_cli("check-servers", "-f", str(conf))
    assert result.returncode == 1
    assert f"{conf}:1:" in result.stderr
