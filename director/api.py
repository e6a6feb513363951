"""The director's status API (aiohttp), served by the supervisor; off unless configured.

Listens on TCP (``--api-listen [HOST:]PORT``, host 127.0.0.1 by default) and/or a unix
socket (``--api-socket PATH``, mode 0660). With ``--api-token-file FILE`` every request
but ``/healthz`` and the page itself needs ``Authorization: Bearer TOKEN``.

  GET /status   the merged status view as JSON (see director/status_view.py)
  GET /metrics  Prometheus text format (see director/metrics.py for the names)
  GET /healthz  200 "ok" when both children run and their status files are fresh;
                503 and the reasons otherwise. Open: a load balancer's health probe
                carries no token, and the answer says nothing an attacker could use.
  GET /         a small HTML status page; it fetches /status every 2 s. With a token,
                open it as ``/#token=TOKEN``: a URL fragment never reaches the server
                (nor its logs); the page holds no data of its own, so it is open too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from director import status_view
from director.metrics import metrics_text
from director.status_page import PAGE

log = logging.getLogger("director.api")

DEFAULT_HOST = "127.0.0.1"
SOCKET_MODE = 0o660
OPEN_PATHS = frozenset({"/healthz", "/"})
REALM = "lvs-director"
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ApiError(OSError):
    """The API cannot start (address in use, socket path taken, ...); the message
    says where and why."""


def parse_listen(text: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT``, ``:PORT`` or ``[IPv6]:PORT`` -> (host, port); ValueError
    with a clear message otherwise."""
    spec = text.strip()
    host, port_text = DEFAULT_HOST, spec
    if spec.startswith("["):
        end = spec.find("]")
        if end < 0 or not spec[end + 1:].startswith(":"):
            raise ValueError(f"--api-listen {text!r}: expected [IPv6]:PORT")
        host, port_text = spec[1:end], spec[end + 2:]
    elif ":" in spec:
        host, _, port_text = spec.rpartition(":")
        host = host or DEFAULT_HOST
        if ":" in host:
            raise ValueError(f"--api-listen {text!r}: write an IPv6 address as [ADDRESS]:PORT")
    if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
        raise ValueError(f"--api-listen {text!r}: {port_text!r} is not a port (1-65535)")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ValueError(f"--api-listen {text!r}: {host!r} is not an IP address") from None
    return host, int(port_text)


def read_token(path: str) -> str:
    """The bearer token in `path` (surrounding blanks removed); ValueError when the file
    cannot be read or holds no usable token."""
    try:
        with open(path, encoding="utf-8") as stream:
            token = stream.read(4096).strip()
    except (OSError, UnicodeDecodeError) as error:
        detail = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise ValueError(f"--api-token-file {path}: cannot read: {detail}") from None
    if not token:
        raise ValueError(f"--api-token-file {path}: the file is empty")
    if any(c.isspace() or not c.isprintable() for c in token) or not token.isascii():
        raise ValueError(f"--api-token-file {path}: the token must be one word of "
                         f"printable ASCII (no blanks)")
    return token


@dataclass(frozen=True)
class ApiSettings:
    listen: tuple[str, int] | None = None  # TCP; default host 127.0.0.1
    socket_path: str | None = None  # unix socket
    token: str | None = field(default=None, repr=False)  # bearer token

    @classmethod
    def from_options(cls, listen: str | None, socket_path: str | None,
                     token_file: str | None) -> ApiSettings | None:
        """None when neither `listen` nor `socket_path` is given (the API is off);
        ValueError with a clear message for a bad address, socket path or token file."""
        if not listen and not socket_path:
            if token_file:
                raise ValueError("--api-token-file needs --api-listen or --api-socket")
            return None
        address = parse_listen(listen) if listen else None
        if socket_path is not None:
            directory = os.path.dirname(os.path.abspath(socket_path))
            if not os.path.isdir(directory):
                raise ValueError(f"--api-socket {socket_path}: directory {directory} "
                                 f"does not exist")
            if len(os.fsencode(os.path.abspath(socket_path))) > 107:
                raise ValueError(f"--api-socket {socket_path}: path too long for a unix "
                                 f"socket (at most 107 bytes)")
        token = read_token(token_file) if token_file else None
        return cls(listen=address, socket_path=socket_path, token=token)


class ApiServer:
    """A running API; `urls` says where it listens."""

    def __init__(self, runner: web.AppRunner, settings: ApiSettings, urls: list[str]):
        self._runner = runner
        self.settings = settings
        self.urls = urls

    @property
    def port(self) -> int | None:
        """The TCP port (useful with port 0: the one the system chose)."""
        for url in self.urls:
            if url.startswith("http://"):
                return int(url.rsplit(":", 1)[1].rstrip("/"))
        return None

    async def close(self) -> None:
        await self._runner.cleanup()
        path = self.settings.socket_path
        if path is not None:
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(os.lstat(path).st_mode):
                    os.unlink(path)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _authorized(request: web.Request, token: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"),
                               token.encode("utf-8"))


def _auth_middleware(token: str | None) -> Any:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is None or request.path in OPEN_PATHS or _authorized(request, token):
            return await handler(request)
        given = "Authorization" in request.headers
        challenge = f'Bearer realm="{REALM}"' + (', error="invalid_token"' if given else "")
        message = "wrong bearer token" if given else \
            "this API needs a bearer token (Authorization: Bearer TOKEN)"
        return web.Response(status=401, text=message + "\n",
                            headers={"WWW-Authenticate": challenge})
    return check


class _Views:
    """Builds the view for each request: daemon_info in the event loop (the
    supervisor's state lives there), the files and the kernel in a thread."""

    def __init__(self, state_dir: str, daemon_info: Callable[[], dict[str, Any]]):
        self.state_dir = state_dir
        self.daemon_info = daemon_info
        self.reader = status_view.IpvsStatsReader()

    async def view(self) -> dict[str, Any]:
        daemon = self.daemon_info()
        ipvs = not daemon.get("dry_run", False)
        return await asyncio.to_thread(status_view.collect, self.state_dir, daemon, ipvs,
                                       self.reader)


def _app(settings: ApiSettings, views: _Views) -> web.Application:
    async def status(request: web.Request) -> web.Response:
        view = await views.view()
        return web.Response(text=json.dumps(view, indent=2) + "\n",
                            content_type="application/json",
                            headers={"Cache-Control": "no-store"})

    async def metrics(request: web.Request) -> web.Response:
        view = await views.view()
        body = await asyncio.to_thread(metrics_text, view)
        return web.Response(body=body, headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})

    async def healthz(request: web.Request) -> web.Response:
        problems = status_view.health_problems(await views.view())
        if problems:
            return web.Response(status=503, text="".join(f"{p}\n" for p in problems),
                                headers={"Cache-Control": "no-store"})
        return web.Response(text="ok\n", headers={"Cache-Control": "no-store"})

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html",
                            headers={"Cache-Control": "no-store",
                                     "Content-Security-Policy":
                                         "default-src 'self'; script-src 'unsafe-inline'; "
                                         "style-src 'unsafe-inline'; connect-src 'self'",
                                     "Referrer-Policy": "no-referrer"})

    app = web.Application(middlewares=[_auth_middleware(settings.token)])
    app.router.add_get("/status", status)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", page)
    app.on_cleanup.append(lambda _app: asyncio.to_thread(views.reader.close))
    return app


def _prepare_socket_path(path: str) -> None:
    """Remove a unix socket left by a previous run; refuse to replace anything else."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise ApiError(f"api: {path}: {error.strerror or error}") from None
    if not stat.S_ISSOCK(mode):
        raise ApiError(f"api: {path} exists and is not a unix socket; not replacing it")
    os.unlink(path)


async def start_api(settings: ApiSettings, state_dir: str,
                    daemon_info: Callable[[], dict[str, Any]]) -> ApiServer:
    """Start serving; ApiError (an OSError) when an address cannot be used."""
    views = _Views(state_dir, daemon_info)
    runner = web.AppRunner(_app(settings, views), access_log=None, handle_signals=False)
    await runner.setup()
    urls: list[str] = []
    try:
        if settings.listen is not None:
            host, port = settings.listen
            site = web.TCPSite(runner, host, port)
            try:
                await site.start()
            except OSError as error:
                raise ApiError(f"api: cannot listen on {host}:{port}: "
                               f"{error.strerror or error}") from None
            for address in runner.addresses:
                if isinstance(address, tuple):
                    bound_host, bound_port = address[:2]
                    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
                    urls.append(f"http://{shown}:{bound_port}/")
        if settings.socket_path is not None:
            path = settings.socket_path
            _prepare_socket_path(path)
            try:
                await web.UnixSite(runner, path).start()
            except OSError as error:
                raise ApiError(f"api: cannot listen on unix socket {path}: "
                               f"{error.strerror or error}") from None
            os.chmod(path, SOCKET_MODE)
            urls.append(f"unix:{path}")
    except BaseException:
        await runner.cleanup()
        raise
    log.info("status API on %s%s", ", ".join(urls),
             " (bearer token required)" if settings.token else "")
    return ApiServer(runner, settings, urls)
