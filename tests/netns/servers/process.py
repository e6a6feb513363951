"""Start and stop the server processes of the probe tests, by pid, with bounded waits."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from tests.netns.servers.behaviours import ServerConfig
from tests.netns.servers.certs import Certificates

REPO = Path(__file__).resolve().parents[3]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
STOP_TIMEOUT = 5.0


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def closed_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (just released by us)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL, to this pid only; bounded waits."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)


@contextlib.contextmanager
def behaviour_servers(workdir: Path, certs: Certificates,
                      startup: float = 20.0) -> Iterator[dict[str, int]]:
    """The `tests.netns.servers.behaviours` process; yields {server name: port}."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = ServerConfig(host6="::1" if ipv6_loopback() else None, good=str(certs.good),
                          expired=str(certs.expired), wrong_name=str(certs.wrong_name),
                          self_signed=str(certs.self_signed),
                          sni={name: str(path) for name, path in certs.sni.items()})
    config_file = workdir / "servers.json"
    config_file.write_text(json.dumps(asdict(config)))
    log = open(workdir / "servers.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.netns.servers.behaviours", str(config_file)],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
        env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + startup
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([process.stdout], [], [], max(0.0, left))
            if not ready:
                raise RuntimeError(f"servers not ready within {startup} s: "
                                   f"{(workdir / 'servers.log').read_text(errors='replace')}")
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError("servers exited: "
                                   f"{(workdir / 'servers.log').read_text(errors='replace')}")
            line += chunk
        yield json.loads(line)
    finally:
        stop(process)
        if process.stdout is not None:
            process.stdout.close()
        log.close()


NGINX_CONF = """\
worker_processes 1;
user root;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile off;
    default_type text/plain;
    types {{ text/html html; }}
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    ssl_certificate {pem};
    ssl_certificate_key {pem};
    server {{
{listen_default}
        server_name _;
        root {prefix}/default;
        location = /health {{ return 200 "healthy\\n"; }}
        location = /maintenance {{ return 503 "down for maintenance\\n"; }}
        location = /moved {{ return 301 /index.html; }}
    }}
    server {{
{listen_vhost}
        server_name {vhost};
        root {prefix}/vhost;
    }}
}}
"""


@contextlib.contextmanager
def nginx(prefix: Path, *, pem: Path, vhost: str, pages: dict[str, dict[str, bytes]],
          ipv6: bool = False, startup: float = 10.0) -> Iterator[tuple[int, int]]:
    """Debian's nginx with a config of ours in `prefix`: a default site and the site of
    `vhost` (both over HTTP and HTTPS on 127.0.0.1, with `pem`; with `ipv6` also HTTP on
    [::1]); `pages` = {"default"|"vhost": {file name: content}}. Yields (http port,
    https port); stops nginx by its pid."""
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    for site in ("default", "vhost"):
        (prefix / site).mkdir(exist_ok=True)
        for name, content in pages.get(site, {}).items():
            (prefix / site / name).write_bytes(content)
    http, https = closed_port(), closed_port()
    conf = prefix / "nginx.conf"
    listens = [f"127.0.0.1:{http}", f"127.0.0.1:{https} ssl"]
    if ipv6:
        listens.append(f"[::1]:{http}")
    conf.write_text(NGINX_CONF.format(
        prefix=prefix, pem=pem, vhost=vhost,
        listen_default="\n".join(f"        listen {x} default_server;" for x in listens),
        listen_vhost="\n".join(f"        listen {x};" for x in listens)))
    log = open(prefix / "nginx.out", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(prefix), "-g", "daemon off;"],
                               stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + startup
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited {process.returncode}: "
                                   f"{(prefix / 'nginx.out').read_text(errors='replace')}"
                                   f"{(prefix / 'error.log').read_text(errors='replace')}")
            if all(_listening(port) for port in (http, https)):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx not listening within {startup} s")
            time.sleep(0.05)
        yield http, https
    finally:
        stop(process)  # the master's pid: it stops its worker
        log.close()


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
