"""A process serving every HTTP behaviour the HTTP_GET / SSL_GET probe must judge.

Run as ``python -m tests.netns.servers.behaviours CONFIG.json``; CONFIG names the
addresses to listen on and the certificate files (see `ServerConfig`). When everything
listens it prints one JSON line, ``{"name": port, ...}``, and serves until SIGTERM.

It runs in a process of its own so that a test can count its own file descriptors
around a probe without the servers' sockets in the figure.

- ``http`` (and ``http6`` on ::1, ``tls-*`` over TLS): an aiohttp app, see `ROUTES`.
- ``raw-*``: asyncio servers that misbehave on purpose, as aiohttp cannot: each reads
  the request, then plays its script (`SCRIPTS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import ssl
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

PAGE = b"<html><body>lvs-director probe test page</body></html>\n"
BINARY = bytes(range(256)) * 4
HUGE_SIZE = 20 * 1024 * 1024
DRIBBLE_LENGTH = 600     # bytes, one per DRIBBLE_PAUSE
DRIBBLE_PAUSE = 0.1
VHOSTS = {"a.example.test": b"site a\n", "b.example.test": b"site b\n"}
MAX_SLOW = 30.0


# ---------------------------------------------------------------- aiohttp routes


async def ok(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def page(request: web.Request) -> web.Response:
    return web.Response(body=PAGE, content_type="text/html")


async def health(request: web.Request) -> web.Response:
    return web.Response(text="status: healthy\nversion: 1.2.3\n")


async def error_page(request: web.Request) -> web.Response:
    return web.Response(text="status: error\ndatabase unreachable\n")


async def status(request: web.Request) -> web.Response:
    code = int(request.match_info["code"])
    return web.Response(status=code, text=f"status {code}\n")


async def redirect(request: web.Request) -> web.Response:
    return web.Response(status=302, headers={"Location": "/ok"}, text="moved\n")


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(min(float(request.match_info["seconds"]), MAX_SLOW))
    return web.Response(text="slow\n")


async def dribble(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Length": str(DRIBBLE_LENGTH)})
    await response.prepare(request)
    for _ in range(DRIBBLE_LENGTH):
        await response.write(b"x")
        await asyncio.sleep(DRIBBLE_PAUSE)
    return response


async def huge(request: web.Request) -> web.StreamResponse:
    """HUGE_SIZE bytes, with a Content-Length (/huge/framed), or without one (chunked
    for HTTP/1.1, until the close for HTTP/1.0)."""
    response = web.StreamResponse()
    if request.match_info["how"] == "framed":
        response.content_length = HUGE_SIZE
    await response.prepare(request)
    block = b"h" * 65536
    for _ in range(HUGE_SIZE // len(block)):
        await response.write(block)
    return response


async def reset(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Length": "1000"})
    await response.prepare(request)
    await response.write(b"r" * 100)
    await asyncio.sleep(0.1)
    transport = request.transport
    assert transport is not None
    transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()  # RST: the client reads ECONNRESET mid-body
    return response


async def vhost(request: web.Request) -> web.Response:
    body = VHOSTS.get(request.host)
    if body is None:
        return web.Response(status=404, text=f"no site {request.host}\n")
    return web.Response(body=body)


async def echo(request: web.Request) -> web.Response:
    connection = request.headers.get("Connection", "-")
    return web.Response(text=f"Host: {request.host}\nVersion: HTTP/{request.version.major}."
                             f"{request.version.minor}\nConnection: {connection}\n")


async def peer(request: web.Request) -> web.Response:
    address, port = request.transport.get_extra_info("peername")[:2]
    return web.Response(text=f"peer {address} {port}\n")


async def binary(request: web.Request) -> web.Response:
    return web.Response(body=BINARY, content_type="application/octet-stream")


SNI_CONTEXT_NAMES: dict[int, str] = {}  # id(an SNI site's context) -> its server name


async def sni(request: web.Request) -> web.Response:
    """Which certificate the SNI site presented: the name the client asked for, else
    "default"."""
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    name = SNI_CONTEXT_NAMES.get(id(ssl_object.context)) if ssl_object is not None else None
    return web.Response(text=f"site for {name or 'default'}\n")


ROUTES = {
    "/ok": ok, "/page": page, "/health": health, "/error-page": error_page,
    "/status/{code}": status, "/redirect": redirect, "/slow/{seconds}": slow,
    "/dribble": dribble, "/huge/{how}": huge, "/reset": reset, "/vhost": vhost,
    "/echo": echo, "/peer": peer, "/binary": binary, "/sni": sni,
}


def make_app() -> web.Application:
    app = web.Application()
    for path, handler in ROUTES.items():
        app.router.add_get(path, handler)
    return app


# ---------------------------------------------------------------- raw scripted servers


@dataclass(frozen=True)
class Script:
    parts: tuple[bytes, ...] = ()
    repeat: bytes = b""      # then this, every `pause`, until the client goes away
    pause: float = 0.001
    end: str = "close"       # close; hang (stay silent until the client goes away)
    read: bool = True        # read the request first


SCRIPTS = {
    "raw-garbage": Script(parts=(b"garbage\r\n\r\nbody",)),
    "raw-binary-junk": Script(parts=(BINARY,)),
    "raw-truncated-headers": Script(parts=(b"HTTP/1.0 200 OK\r\nContent-Type: text/pl",)),
    "raw-endless-headers": Script(parts=(b"HTTP/1.0 200 OK\r\n",),
                                  repeat=(b"X-Filler: " + b"f" * 100 + b"\r\n") * 10),
    "raw-stalled-headers": Script(parts=(b"HTTP/1.0 200 OK\r\n",), end="hang"),
    "raw-bad-chunk-size": Script(parts=(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                        b"zz\r\nabc\r\n0\r\n\r\n",)),
    "raw-chunk-missing-crlf": Script(parts=(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
                                            b"\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",)),
    "raw-chunked-cut": Script(parts=(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     b"3\r\nabc\r\n",)),
    "raw-chunked-ok": Script(parts=(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                    b"3\r\nabc\r\n0\r\n\r\n",)),
    "raw-short-body": Script(parts=(b"HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\nabc",)),
    "raw-binary-body": Script(parts=(b"HTTP/1.0 200 OK\r\nContent-Length: 1024\r\n\r\n"
                                     + BINARY,)),
    "raw-empty": Script(),
    "raw-silent": Script(end="hang"),
    "raw-accept-only": Script(read=False, end="hang"),
}
HANG_LIMIT = 120.0  # seconds a hanging script waits for its client at most
REPEAT_LIMIT = 100_000


async def play(script: Script, reader: asyncio.StreamReader,
               writer: asyncio.StreamWriter) -> None:
    try:
        if script.read:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        for part in script.parts:
            writer.write(part)
            await writer.drain()
        if script.repeat:
            for _ in range(REPEAT_LIMIT):
                writer.write(script.repeat)
                await writer.drain()
                await asyncio.sleep(script.pause)
        if script.end == "hang":
            # Until the client closes (read returns b"") or the limit.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader.read(), HANG_LIMIT)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
        pass
    finally:
        writer.transport.abort() if script.end == "hang" else writer.close()


# ---------------------------------------------------------------- TLS


def tls_context(pem: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pem)
    return ctx


def sni_context(default_pem: str, by_name: dict[str, str]) -> ssl.SSLContext:
    """A context that presents the certificate of the name the client asks for."""
    contexts = {name: tls_context(pem) for name, pem in by_name.items()}
    SNI_CONTEXT_NAMES.update({id(ctx): name for name, ctx in contexts.items()})
    ctx = tls_context(default_pem)

    def choose(sslobj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        if name in contexts:
            sslobj.context = contexts[name]
    ctx.sni_callback = choose
    return ctx


# ---------------------------------------------------------------- the process


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    host6: str | None = None
    good: str = ""
    expired: str = ""
    wrong_name: str = ""
    self_signed: str = ""
    sni: dict[str, str] | None = None


async def serve(config: ServerConfig) -> None:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda loop, context: None)  # failures are the point
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    ports: dict[str, int] = {}
    runners: list[web.AppRunner] = []
    servers: list[asyncio.Server] = []

    async def site(name: str, host: str, ctx: ssl.SSLContext | None = None) -> None:
        runner = web.AppRunner(make_app(), access_log=None, handle_signals=False,
                               shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, host, 0, ssl_context=ctx).start()
        runners.append(runner)
        ports[name] = runner.addresses[0][1]

    await site("http", config.host)
    if config.host6:
        await site("http6", config.host6)
    tls = {"tls-good": config.good, "tls-expired": config.expired,
           "tls-wrong-name": config.wrong_name, "tls-self-signed": config.self_signed}
    for name, pem in tls.items():
        if pem:
            await site(name, config.host, tls_context(pem))
    if config.sni:
        await site("tls-sni", config.host, sni_context(config.good, config.sni))
    for name, script in SCRIPTS.items():
        def handler(reader, writer, script=script):
            return play(script, reader, writer)
        server = await asyncio.start_server(handler, config.host, 0)
        servers.append(server)
        ports[name] = server.sockets[0].getsockname()[1]
    print(json.dumps(ports), flush=True)
    await stop.wait()
    for server in servers:
        server.close()
    for runner in runners:
        await runner.cleanup()


def main() -> None:
    config = ServerConfig(**json.loads(Path(sys.argv[1]).read_text()))
    asyncio.run(serve(config))


if __name__ == "__main__":
    main()
