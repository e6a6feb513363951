"""genhash side by side: keepalived 2.2.7's /usr/bin/genhash and ours, same servers.

The servers run on the host's loopback (127.0.0.1 and ::1, ports picked at run time):
aiohttp apps, scripted asyncio servers (plain and TLS, with certificates made by
trustme) in a thread of this process, and Debian's nginx (plain and TLS, with a
virtual host chosen by Host and by SNI) started from a config in a tmp dir. The
unreachable and connect-timeout cases run both programs inside a network namespace
made for them. Compared byte for byte: stdout, stderr and the exit code; with -v,
everything but the "= N usecs" figure.

The HTTP client under genhash (checkers.http_client.fetch) is also exercised here
against the same live servers: its one deadline, strict parsing, TLS verification,
SNI and bind address.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from checkers.http_client import Failure, fetch
from checkers.http_wire import build_request
from tests.netns.lab import IP, Lab, netns_unavailable_reason, run
from tests.netns.servers.process import NGINX, closed_port, ipv6_loopback
from tests.netns.servers.process import nginx as start_nginx

REPO = Path(__file__).resolve().parents[2]
KEEPALIVED_GENHASH = Path("/usr/bin/genhash")
KEEPALIVED_MISSING = (f"{KEEPALIVED_GENHASH} missing, nothing to compare with: "
                      "`make test-netns` installs Debian's keepalived (which has genhash)")
NGINX_MISSING = f"{NGINX} missing: `make test-netns` installs Debian's nginx"
OURS = [sys.executable, "-c",
        "import sys; sys.argv[0] = 'genhash'; from director.cli.genhash import main; "
        "sys.exit(main())"]
BASE_ENV = {"PATH": f"{KEEPALIVED_GENHASH.parent}:/usr/bin:/bin", "LANG": "C",
            "PYTHONPATH": str(REPO)}
USECS = re.compile(rb"= \d+ usecs\n")
VHOST = "www.example.test"
FIXED_HEADERS = {"Date": "Thu, 01 Jan 2026 00:00:00 GMT", "Server": "genhash-test"}
PAGE = b"<html><body>lvs-director genhash test page</body></html>\n"
BIG = bytes(range(256)) * 800  # 200 KiB
NGINX_PAGE = b"nginx default site\n"
NGINX_VHOST_PAGE = b"nginx virtual host www.example.test\n"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# ---------------------------------------------------------------- running the programs


@dataclass(frozen=True)
class Outcome:
    stdout: bytes
    stderr: bytes
    code: int
    elapsed: float

    def normalised(self) -> tuple[bytes, bytes, int]:
        return USECS.sub(b"= N usecs\n", self.stdout), self.stderr, self.code


def _run(argv: list[str], *, executable: str | None = None, ns: str | None = None,
         timeout: float = 30.0) -> Outcome:
    if ns is not None:
        argv = [IP, "netns", "exec", ns, *argv]
        executable = None
    started = time.monotonic()
    done = subprocess.run(argv, executable=executable, capture_output=True, timeout=timeout,
                          env=BASE_ENV, stdin=subprocess.DEVNULL, cwd=REPO)
    return Outcome(done.stdout, done.stderr, done.returncode, time.monotonic() - started)


def keepalived_genhash(args: list[str], ns: str | None = None) -> Outcome:
    return _run(["genhash", *args], executable=str(KEEPALIVED_GENHASH), ns=ns)


def our_genhash(args: list[str], ns: str | None = None) -> Outcome:
    return _run([*OURS, *args], ns=ns)


def _dates(data: bytes) -> list[bytes]:
    return re.findall(rb"\nDate: [^\r\n]*", data)


def assert_same(args: list[str], ns: str | None = None, attempts: int = 3) -> Outcome:
    """Run both genhash programs; their outputs must be identical. A run pair that
    straddles a second boundary sees two Date headers (nginx's): run it again."""
    for _ in range(attempts):
        theirs, ours = keepalived_genhash(args, ns), our_genhash(args, ns)
        if theirs.normalised() == ours.normalised():
            return ours
        if _dates(theirs.stdout) == _dates(ours.stdout):
            break
    diff = "\n".join(difflib.unified_diff(
        theirs.stdout.decode("latin-1").splitlines(), ours.stdout.decode("latin-1").splitlines(),
        "keepalived stdout", "ours stdout", lineterm="", n=2))
    raise AssertionError(
        f"genhash {' '.join(args)}: outputs differ\n{diff}\n"
        f"stderr keepalived={theirs.stderr!r} ours={ours.stderr!r}\n"
        f"exit keepalived={theirs.code} ours={ours.code}")


@pytest.fixture(scope="module")
def keepalived() -> None:
    if not KEEPALIVED_GENHASH.exists():
        pytest.skip(KEEPALIVED_MISSING)


# ---------------------------------------------------------------- in-process servers


@dataclass(frozen=True)
class Script:
    """What a scripted server does with each connection."""

    parts: tuple[bytes, ...] = ()
    pause: float = 0.0     # seconds between parts, and before the end
    read: str = "request"  # request: up to the blank line; any: one read; none
    end: str = "close"     # close (TLS: with close_notify); abort (no close_notify);
    #                        reset (RST); hang (stay silent)


@dataclass
class ScriptServer:
    script: Script
    tls: ssl.SSLContext | None = None
    port: int = 0
    requests: list[bytes] = field(default_factory=list)
    peers: list[str] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)


class ServerLoop:
    """An asyncio loop in a thread, serving on loopback for the whole module."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        # Failed TLS handshakes and reset connections are what some tests are about.
        self.loop.set_exception_handler(lambda loop, context: None)
        self.thread = threading.Thread(target=self.loop.run_forever, name="genhash-servers",
                                       daemon=True)
        self.thread.start()
        self.handlers: set[asyncio.Task] = set()
        self.closers: list[Callable[[], object]] = []

    def call(self, coro, timeout: float = 15.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def shutdown() -> None:
            for task in list(self.handlers):
                task.cancel()
            for closer in reversed(self.closers):
                with contextlib.suppress(Exception):
                    await closer()
        with contextlib.suppress(Exception):
            self.call(shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def start_script(self, server: ScriptServer, host: str) -> ScriptServer:
        if server.tls is not None:
            def record_sni(sslobj: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
                server.server_names.append(name)
            server.tls.sni_callback = record_sni

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            self.handlers.add(task)
            try:
                await self._play(server, reader, writer)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    TimeoutError):
                pass
            finally:
                self.handlers.discard(task)
                writer.transport.abort()

        listener = await asyncio.start_server(handle, host, 0, ssl=server.tls)
        server.port = listener.sockets[0].getsockname()[1]
        self.closers.append(self._closer(listener))
        return server

    @staticmethod
    def _closer(listener: asyncio.Server) -> Callable[[], object]:
        async def close() -> None:
            listener.close()
        return close

    @staticmethod
    async def _play(server: ScriptServer, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        script = server.script
        server.peers.append(writer.get_extra_info("peername")[0])
        if script.read == "request":
            server.requests.append(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10))
        elif script.read == "any":
            server.requests.append(await asyncio.wait_for(reader.read(4096), 10))
        for i, part in enumerate(script.parts):
            if i and script.pause:
                await asyncio.sleep(script.pause)
            writer.write(part)
            await writer.drain()
        if script.pause:
            await asyncio.sleep(script.pause)
        if script.end == "hang":
            await asyncio.sleep(60)
        elif script.end == "reset":
            writer.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        elif script.end == "abort":
            writer.transport.abort()
        else:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)

    async def start_aiohttp(self, host: str) -> int:
        async def page(request: web.Request) -> web.Response:
            return web.Response(body=PAGE, content_type="text/html", headers=FIXED_HEADERS)

        async def host_header(request: web.Request) -> web.Response:
            return web.Response(text=f"Host: {request.headers.get('Host')}\n",
                                headers=FIXED_HEADERS)

        async def big(request: web.Request) -> web.Response:
            return web.Response(body=BIG, content_type="application/octet-stream",
                                headers=FIXED_HEADERS)

        app = web.Application()
        app.router.add_get("/", page)
        app.router.add_get("/host", host_header)
        app.router.add_get("/big", big)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        self.closers.append(runner.cleanup)
        return runner.addresses[0][1]


HAVE_IPV6 = ipv6_loopback()
needs_ipv6 = pytest.mark.skipif(not HAVE_IPV6, reason="no IPv6 on loopback (::1)")


@dataclass
class Certificates:
    ca_file: Path
    server_pem: Path       # key and chain in one file (nginx takes it for both)
    other_ca_file: Path    # a CA that signed nothing here

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.server_pem)
        return ctx


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    where = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "::1", "localhost", VHOST)
    found = Certificates(where / "ca.pem", where / "server.pem", where / "other-ca.pem")
    ca.cert_pem.write_to_path(found.ca_file)
    cert.private_key_and_cert_chain_pem.write_to_path(found.server_pem)
    trustme.CA().cert_pem.write_to_path(found.other_ca_file)
    return found


SCRIPTS = {
    "chunked": Script(parts=(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n",)),
    "chunked-kept-open": Script(parts=(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                       b"3\r\nabc\r\n0\r\n\r\n",), end="hang"),
    "content-length-short": Script(parts=(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n"
                                          b"abcdef",)),
    "content-length-lowercase": Script(parts=(b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\n"
                                              b"abcdef",)),
    "garbage": Script(parts=(b"garbage\r\n\r\nbody",)),
    "binary-junk": Script(parts=(bytes(range(256)) * 4,)),
    "no-end-of-headers": Script(parts=(b"HTTP/1.0 200 OK\r\nX: y\r\n",)),
    "headers-over-4095": Script(parts=(b"HTTP/1.0 200 OK\r\nX-Big: " + b"a" * 5000
                                       + b"\r\n\r\nbody",)),
    "empty": Script(),
    "split-header-body": Script(parts=(b"HTTP/1.0 200 OK\r\nContent-Length: 500\r\n\r\n",
                                       bytes(range(250)) * 2), pause=0.2),
    "binary-body": Script(parts=(b"HTTP/1.0 200 OK\r\n\r\n" + bytes(range(256)) * 2,)),
    "nul-in-header": Script(parts=(b"HTTP/1.0 200 OK\r\nX: a\0b\r\n\r\nbody",)),
    "silent": Script(end="hang"),
    "stalls-in-headers": Script(parts=(b"HTTP/1.0 200 OK\r\n",), end="hang"),
    "reset-in-body": Script(parts=(b"HTTP/1.0 200 OK\r\n\r\nab",), pause=0.2, end="reset"),
    "answers-anything": Script(parts=(b"HTTP/1.1 400 Bad Request\r\n\r\n",), read="any"),
    "accepts-only": Script(read="none", end="hang"),
    "dribble": Script(parts=(b"HTTP/1.0 200 OK\r\n\r\n", *(bytes([c]) for c in b"x" * 60)),
                      pause=0.2),
}
TLS_SCRIPTS = {
    "tls-two-records": Script(parts=(b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\n",
                                     b"hello tls\n"), pause=0.1),
    "tls-no-close-notify": Script(parts=(b"HTTP/1.0 200 OK\r\n\r\nabc",), pause=0.1,
                                  end="abort"),
    "tls-close-notify-only": Script(),
    "tls-silent": Script(end="hang"),
    "tls-dribble": Script(parts=(b"HTTP/1.0 200 OK\r\n\r\n", *(bytes([c]) for c in b"y" * 60)),
                          pause=0.2),
}


@dataclass
class Servers:
    ports: dict[str, int]
    scripts: dict[str, ScriptServer]


@pytest.fixture(scope="module")
def servers(certificates: Certificates) -> Iterator[Servers]:
    loop = ServerLoop()
    try:
        ports = {"aio": loop.call(loop.start_aiohttp("127.0.0.1"))}
        if HAVE_IPV6:
            ports["aio6"] = loop.call(loop.start_aiohttp("::1"))
        scripts: dict[str, ScriptServer] = {}
        for name, script in SCRIPTS.items():
            scripts[name] = loop.call(loop.start_script(ScriptServer(script), "127.0.0.1"))
        for name, script in TLS_SCRIPTS.items():
            server = ScriptServer(script, tls=certificates.server_context())
            scripts[name] = loop.call(loop.start_script(server, "127.0.0.1"))
        if HAVE_IPV6:
            scripts["chunked6"] = loop.call(loop.start_script(ScriptServer(SCRIPTS["chunked"]),
                                                              "::1"))
        ports.update({name: server.port for name, server in scripts.items()})
        ports["closed"] = closed_port()
        yield Servers(ports, scripts)
    finally:
        loop.close()


# ---------------------------------------------------------------- nginx

@dataclass
class Nginx:
    http: int
    https: int
    prefix: Path


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory, certificates: Certificates) -> Iterator[Nginx]:
    if not Path(NGINX).exists():
        pytest.skip(NGINX_MISSING)
    prefix = tmp_path_factory.mktemp("nginx")
    pages = {"default": {"index.html": NGINX_PAGE, "big.html": BIG},
             "vhost": {"index.html": NGINX_VHOST_PAGE, "big.html": BIG}}
    with start_nginx(prefix, pem=certificates.server_pem, vhost=VHOST, pages=pages,
                     ipv6=HAVE_IPV6) as (http, https):
        yield Nginx(http, https, prefix)


# ---------------------------------------------------------------- a namespace without routes


@dataclass
class NetLab:
    ns: str


@pytest.fixture(scope="module")
def netlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetLab]:
    """A namespace where 198.51.100.0/24 and 2001:db8:ff::/48 have no route,
    203.0.113.0/24 has an `unreachable` route, and 192.0.2.2 / 2001:db8::2 sit on a veth
    with fixed neighbour entries but nobody behind them (SYNs go unanswered)."""
    why = netns_unavailable_reason()
    if why is not None:
        pytest.skip(f"needs root and network namespaces: {why}")
    with Lab(tmp_path_factory.mktemp("lab")) as lab:
        ns = lab.add_namespace("gh")
        lab.add_veth(ns, "gh0", "gh1")
        run(ns, IP, "link", "set", "gh1", "up")
        run(ns, IP, "addr", "add", "192.0.2.1/24", "dev", "gh0")
        run(ns, IP, "-6", "addr", "add", "2001:db8::1/64", "dev", "gh0", "nodad")
        run(ns, IP, "neigh", "replace", "192.0.2.2", "lladdr", "02:00:00:00:00:02",
            "dev", "gh0", "nud", "permanent")
        run(ns, IP, "-6", "neigh", "replace", "2001:db8::2", "lladdr", "02:00:00:00:00:02",
            "dev", "gh0", "nud", "permanent")
        run(ns, IP, "route", "add", "unreachable", "203.0.113.0/24")
        yield NetLab(ns)


# ---------------------------------------------------------------- side by side: servers

PLAIN_CASES = {
    "aiohttp": "-s 127.0.0.1 -p {aio} -u /",
    "aiohttp-404": "-s 127.0.0.1 -p {aio} -u /missing",
    "http-1.1": "-s 127.0.0.1 -p {aio} -u /host -P 1.1",
    "http-1.0c": "-s 127.0.0.1 -p {aio} -u /host -P 1.0c",
    "http-1.0C": "-s 127.0.0.1 -p {aio} -u /host -P 1.0C",
    "virtualhost": "-s 127.0.0.1 -p {aio} -u /host -V www.example.test",
    "host-with-port": "-s 127.0.0.1 -p {aio} -u /host",
    "long-options": "--server=127.0.0.1 --port {aio} --url /host --protocol 1.1 "
                    "--use-virtualhost=h.example --timeout 5 --fwmark 0",
    "chunked-hashed-raw": "-s 127.0.0.1 -p {chunked} -u /",
    "content-length-cuts-digest": "-s 127.0.0.1 -p {content-length-short} -u /",
    "lowercase-content-length": "-s 127.0.0.1 -p {content-length-lowercase} -u /",
    "garbage-status-line": "-s 127.0.0.1 -p {garbage} -u /",
    "binary-junk": "-s 127.0.0.1 -p {binary-junk} -u /",
    "no-end-of-headers": "-s 127.0.0.1 -p {no-end-of-headers} -u /",
    "headers-over-4095": "-s 127.0.0.1 -p {headers-over-4095} -u /",
    "empty-response": "-s 127.0.0.1 -p {empty} -u /",
    "header-and-body-apart": "-s 127.0.0.1 -p {split-header-body} -u /",
    "binary-body": "-s 127.0.0.1 -p {binary-body} -u /",
    "nul-in-header": "-s 127.0.0.1 -p {nul-in-header} -u /",
    "silent-server": "-s 127.0.0.1 -p {silent} -u / -t 1",
    "stalls-in-headers": "-s 127.0.0.1 -p {stalls-in-headers} -u / -t 1",
    "reset-in-body": "-s 127.0.0.1 -p {reset-in-body} -u /",
    "connection-refused": "-s 127.0.0.1 -p {closed} -u /",
}
IPV6_CASES = {
    "aiohttp-ipv6": "-s ::1 -p {aio6} -u /",
    "host-ipv6-in-brackets": "-s ::1 -p {aio6} -u /host",
    "ipv6-long-form": "-s 0:0:0:0:0:0:0:1 -p {chunked6} -u /",
    "ipv4-mapped": "-s ::ffff:127.0.0.1 -p {chunked} -u /",
}
TLS_CASES = {
    "tls": "-S -s 127.0.0.1 -p {tls-two-records} -u /",
    "tls-sni": "-S -I -V www.example.test -s 127.0.0.1 -p {tls-two-records} -u /",
    "tls-no-close-notify": "-S -s 127.0.0.1 -p {tls-no-close-notify} -u /",
    "tls-close-notify-only": "-S -s 127.0.0.1 -p {tls-close-notify-only} -u /",
    "tls-silent": "-S -s 127.0.0.1 -p {tls-silent} -u / -t 1",
    "tls-to-plain-http": "-S -s 127.0.0.1 -p {answers-anything} -u /",
    "tls-no-handshake": "-S -s 127.0.0.1 -p {accepts-only} -u / -t 1",
    "tls-refused": "-S -s 127.0.0.1 -p {closed} -u /",
}
NOT_VERBOSE_ONLY = {"aiohttp-big": "-s 127.0.0.1 -p {aio} -u /big"}


def _args(template: str, ports: dict[str, int]) -> list[str]:
    return [word.format(**ports) for word in template.split()]


@pytest.mark.parametrize("verbose", [False, True], ids=["plain", "verbose"])
@pytest.mark.parametrize("case", [*PLAIN_CASES, *TLS_CASES])
def test_same_output_as_keepalived(keepalived, servers: Servers, case: str,
                                   verbose: bool) -> None:
    args = _args({**PLAIN_CASES, **TLS_CASES}[case], servers.ports)
    assert_same(["-v", *args] if verbose else args)


@needs_ipv6
@pytest.mark.parametrize("verbose", [False, True], ids=["plain", "verbose"])
@pytest.mark.parametrize("case", list(IPV6_CASES))
def test_same_output_as_keepalived_ipv6(keepalived, servers: Servers, case: str,
                                        verbose: bool) -> None:
    args = _args(IPV6_CASES[case], servers.ports)
    assert_same(["-v", *args] if verbose else args)


def test_same_digest_of_a_large_page(keepalived, servers: Servers) -> None:
    ours = assert_same(_args(NOT_VERBOSE_ONLY["aiohttp-big"], servers.ports))
    assert ours.stdout == f"{md5(BIG)}\n".encode()


def test_what_users_see(keepalived, servers: Servers) -> None:
    """The facts behind the comparisons, spelled out."""
    ports = servers.ports
    page = our_genhash(["-s", "127.0.0.1", "-p", str(ports["aio"]), "-u", "/"])
    assert (page.stdout, page.stderr, page.code) == (f"{md5(PAGE)}\n".encode(), b"", 0)
    missing = our_genhash(["-s", "127.0.0.1", "-p", str(ports["aio"]), "-u", "/nope"])
    assert (missing.stdout, missing.code) == (f"{md5(b'404: Not Found')}\n".encode(), 0)
    chunked = our_genhash(["-s", "127.0.0.1", "-p", str(ports["chunked"]), "-u", "/"])
    raw_body = b"3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n"  # hashed as sent, not de-chunked
    assert chunked.stdout == f"{md5(raw_body)}\n".encode()
    refused = our_genhash(["-s", "127.0.0.1", "-p", str(ports["closed"]), "-u", "/"])
    assert (refused.stdout, refused.stderr, refused.code) == (b"Connection failed\n", b"", 0)
    empty = our_genhash(["-s", "127.0.0.1", "-p", str(ports["empty"]), "-u", "/"])
    assert (empty.stdout, empty.stderr, empty.code) == \
        (b"", b"no data received from remote webserver\n", 0)
    verbose = our_genhash(["-v", "-s", "127.0.0.1", "-p", str(ports["aio"]), "-u", "/"])
    assert b"[    HTTP Header Buffer    ]" in verbose.stdout
    assert re.search(rb"\nGlobal response time for \[/\] = \d+ usecs\n$", verbose.stdout)


def test_same_request_bytes(keepalived, servers: Servers) -> None:
    recorder = servers.scripts["chunked"]
    port = recorder.port
    variants = [[], ["-P", "1.1"], ["-P", "1.0c"], ["-V", VHOST], ["-V", ""], ["-u", "/x?y=1"]]
    for extra in variants:
        args = ["-s", "127.0.0.1", "-p", str(port), "-u", "/a", *extra]
        requests = []
        for program in (keepalived_genhash, our_genhash):
            before = len(recorder.requests)
            program(args)
            requests.append(recorder.requests[before])
        assert requests[0] == requests[1], f"request for {args}"
    assert requests[1] == build_request("/x?y=1", "127.0.0.1", port)


def test_same_sni_as_keepalived(keepalived, servers: Servers) -> None:
    server = servers.scripts["tls-two-records"]
    port = str(server.port)
    for args, expected in ((["-S"], None), (["-S", "-V", VHOST], None), (["-S", "-I"], None),
                           (["-S", "-I", "-V", VHOST], VHOST)):
        seen = []
        for program in (keepalived_genhash, our_genhash):
            before = len(server.server_names)
            program([*args, "-s", "127.0.0.1", "-p", port, "-u", "/"])
            seen.append(server.server_names[before:] or [None])
        assert seen == [[expected], [expected]], args


# ---------------------------------------------------------------- side by side: nginx

NGINX_CASES = {
    "nginx": "-s 127.0.0.1 -p {http} -u /",
    "nginx-file": "-s 127.0.0.1 -p {http} -u /index.html -P 1.1",
    "nginx-404": "-s 127.0.0.1 -p {http} -u /nope -P 1.0c",
    "nginx-virtualhost": "-s 127.0.0.1 -p {http} -u / -V www.example.test",
    "nginx-tls": "-S -s 127.0.0.1 -p {https} -u /",
    "nginx-tls-sni": "-S -I -V www.example.test -s 127.0.0.1 -p {https} -u /",
    "nginx-tls-host-without-sni": "-S -V www.example.test -s 127.0.0.1 -p {https} -u /",
}


@pytest.mark.parametrize("verbose", [False, True], ids=["plain", "verbose"])
@pytest.mark.parametrize("case", list(NGINX_CASES))
def test_same_output_as_keepalived_with_nginx(keepalived, nginx: Nginx, case: str,
                                              verbose: bool) -> None:
    args = _args(NGINX_CASES[case], {"http": nginx.http, "https": nginx.https})
    assert_same(["-v", *args] if verbose else args)


@needs_ipv6
def test_same_output_as_keepalived_with_nginx_ipv6(keepalived, nginx: Nginx) -> None:
    assert_same(["-s", "::1", "-p", str(nginx.http), "-u", "/"])


def test_nginx_digests(keepalived, nginx: Nginx) -> None:
    for args, page in ((["-p", str(nginx.http)], NGINX_PAGE),
                       (["-p", str(nginx.http), "-V", VHOST], NGINX_VHOST_PAGE),
                       (["-S", "-p", str(nginx.https)], NGINX_PAGE),
                       (["-S", "-I", "-V", VHOST, "-p", str(nginx.https)], NGINX_VHOST_PAGE)):
        ours = assert_same(["-s", "127.0.0.1", "-u", "/", *args])
        assert ours.stdout == f"{md5(page)}\n".encode(), args
    big = assert_same(["-s", "127.0.0.1", "-p", str(nginx.http), "-u", "/big.html"])
    assert big.stdout == f"{md5(BIG)}\n".encode()


# ---------------------------------------------------------------- side by side: no route, no answer

NETWORK_CASES = {
    "no-route-ipv4": ("-s 198.51.100.1 -p 80 -u /", b"HTTP_CHECK - network unreachable\n"),
    "no-route-ipv6": ("-s 2001:db8:ff::1 -p 80 -u /", b"HTTP_CHECK - network unreachable\n"),
    "unreachable-route": ("-s 203.0.113.1 -p 80 -u /", b"HTTP_CHECK - network unreachable\n"),
    "connect-timeout-ipv4": ("-s 192.0.2.2 -p 80 -u / -t 1", b"Timeout connecting\n"),
    "connect-timeout-ipv6": ("-s 2001:db8::2 -p 80 -u / -t 1", b"Timeout connecting\n"),
    "tls-connect-timeout": ("-S -s 192.0.2.2 -p 443 -u / -t 1", b"Timeout connecting\n"),
    "refused-in-namespace": ("-s 127.0.0.1 -p 9 -u /", b"Connection failed\n"),
}


@pytest.mark.parametrize("verbose", [False, True], ids=["plain", "verbose"])
@pytest.mark.parametrize("case", list(NETWORK_CASES))
def test_same_output_as_keepalived_without_a_server(keepalived, netlab: NetLab, case: str,
                                                    verbose: bool) -> None:
    template, message = NETWORK_CASES[case]
    args = template.split()
    ours = assert_same(["-v", *args] if verbose else args, ns=netlab.ns)
    assert ours.stdout.startswith(message) and ours.code == 0
    if "-t" in args:
        assert 0.9 < ours.elapsed < 5


# ---------------------------------------------------------------- side by side: usage errors

USAGE_CASES = [
    "", "-h", "-v", "-s", "-x", "-s 127.0.0.1", "-s localhost -p 80 -u /",
    "-s [::1] -p 80 -u /", "-s 127.1 -p 80 -u /", "-s fe80::1%lo -p 80 -u /",
    "-s 127.0.0.1 -p 0 -u /", "-s 127.0.0.1 -p 65536 -u /", "-s 127.0.0.1 -p -5 -u /",
    "-s 127.0.0.1 -p 0x10 -u /", "-s 127.0.0.1 -p 99999999999999999999 -u /",
    "-s 127.0.0.1 -p 80", "-s 127.0.0.1 -u /", "-p 80 -u /",
    "-s 127.0.0.1 -p 80 -u / -t 0x", "-s 127.0.0.1 -p 80 -u / -t -1",
    "-s 127.0.0.1 -p 80 -u / -t 1.5", "-s 127.0.0.1 -p 80 -u / -m -1",
    "-s 127.0.0.1 -p 80 -u / -m x", "-s 127.0.0.1 -p 80 -u / -P 2.0",
    "-s 127.0.0.1 -p 80 -u / -P 1.0k", "-s 127.0.0.1 -p 80 -u / -x -y",
    "-s 127.0.0.1 -p 80 -u / -x extra", "-s 127.0.0.1 -p 80 -u / extra more",
    "-s 127.0.0.1 extra -p 80 -u /", "-s 127.0.0.1 -p 80 -u / -- -x",
    "-s 127.0.0.1 -p 80 -u / -", "-s 127.0.0.1 -p 80 -u / -vx", "-s 127.0.0.1 -p 80 -u / -xs",
    "-s 127.0.0.1 -p 80 -u / --bogus", "-s 127.0.0.1 -p 80 -u / --use",
    "-s 127.0.0.1 -p 80 -u / --use-s", "-s 127.0.0.1 -p 80 -u / --verbose=1",
    "-s 127.0.0.1 -p 80 -u / --help", "-s 127.0.0.1 -p 80 -u / --help=x",
    "-h -s 127.0.0.1 -p 80 -u /", "-x -h", "-p 0 -x", "-x -p 0", "-P 9 -x -s localhost",
    "-x -s localhost -p 80", "-s -p 80 -u /", "-s 127.0.0.1 -p 80 -u / -T",
    "-s 127.0.0.1 -p 80 -u / -H md5", "-s 127.0.0.1 -p 80 -u / --genhash",
    "-s 127.0.0.1 -p 80 extra", "-s 127.0.0.1 -x -p 80",
]


@pytest.mark.parametrize("args", USAGE_CASES)
def test_same_usage_errors_as_keepalived(keepalived, args: str) -> None:
    ours = assert_same(args.split())
    assert ours.code == 1 and ours.stdout == b""
    assert b"Usage: genhash COMMAND [OPTIONS]\n" in ours.stderr


def test_same_usage_errors_for_empty_values(keepalived) -> None:
    for args in (["-s", "", "-p", "80", "-u", "/"], ["-s", "127.0.0.1", "-p", "", "-u", "/"],
                 ["-s", "127.0.0.1", "-p", "80 ", "-u", "/"],
                 ["-s", "127.0.0.1", "-p", "80", "-u", "/", "-t", ""],
                 ["-s", "127.0.0.1", "-p", "80", "-u", "/", "-t", "2 "]):
        ours = assert_same(args)
        assert ours.code == 1


# ---------------------------------------------------------------- beyond keepalived: one deadline


def test_a_dribbling_server_cannot_hold_our_genhash_past_its_deadline(servers: Servers) -> None:
    args = ["-s", "127.0.0.1", "-p", str(servers.ports["dribble"]), "-u", "/", "-t", "1"]
    ours = our_genhash(args)
    assert (ours.stdout, ours.code) == (b"Timeout HTTP read\n", 0)
    assert ours.elapsed < 3
    tls = our_genhash(["-S", "-s", "127.0.0.1", "-p", str(servers.ports["tls-dribble"]),
                       "-u", "/", "-t", "1"])
    assert (tls.stdout, tls.code) == (b"Timeout SSL read\n", 0)
    assert tls.elapsed < 3


def test_keepalived_genhash_is_held_by_a_dribbling_server(keepalived, servers: Servers) -> None:
    """The reference's known weakness (its timeout restarts on every read)."""
    args = ["-s", "127.0.0.1", "-p", str(servers.ports["dribble"]), "-u", "/", "-t", "1"]
    process = subprocess.Popen(["genhash", *args], executable=str(KEEPALIVED_GENHASH),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=BASE_ENV, start_new_session=True)
    try:
        time.sleep(2.5)
        assert process.poll() is None, "keepalived's genhash stopped at its -t 1"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(10)


# ---------------------------------------------------------------- the client for HTTP_GET / SSL_GET


async def test_fetch_reads_a_page(servers: Servers) -> None:
    result = await fetch("127.0.0.1", servers.ports["aio"], "/", timeout=5.0)
    assert result.ok and result.status == 200 and result.complete
    assert result.digest == md5(PAGE) and result.body_length == len(PAGE)
    assert dict(result.headers)["Server"] == "genhash-test"
    missing = await fetch("127.0.0.1", servers.ports["aio"], "/missing", timeout=5.0)
    assert missing.ok and missing.status == 404


async def test_fetch_stops_at_the_end_of_a_chunked_body_without_waiting_for_close(
        servers: Servers) -> None:
    result = await fetch("127.0.0.1", servers.ports["chunked-kept-open"], "/", timeout=5.0,
                         protocol="1.1", keep_body=True)
    assert result.ok and result.complete and result.elapsed < 2
    assert result.body == b"3\r\nabc\r\n0\r\n\r\n"
    assert result.digest == md5(result.body)


async def test_fetch_one_deadline_against_a_dribbling_server(servers: Servers) -> None:
    result = await fetch("127.0.0.1", servers.ports["dribble"], "/", timeout=1.0)
    assert result.failure is Failure.READ_TIMEOUT
    assert re.fullmatch(r"response exceeded 1\.0 s deadline \(\d+ bytes received\)",
                        result.reason)
    assert 1.0 <= result.elapsed < 1.5


@pytest.mark.parametrize(("port", "failure", "reason"), [
    ("garbage", Failure.MALFORMED, "HTTP status line malformed: b'garbage'"),
    ("binary-junk", Failure.MALFORMED, "HTTP status line malformed: b'\\x00"),
    ("content-length-short", None, ""),
    ("empty", Failure.NO_RESPONSE, "connection closed before the end of the response headers "
                                   "(no data received)"),
    ("silent", Failure.READ_TIMEOUT, "response exceeded 1.0 s deadline (no data received)"),
    ("reset-in-body", Failure.READ_FAILED, "read error: Connection reset by peer"),
    ("closed", Failure.CONNECT_FAILED, "connection refused"),
    ("split-header-body", None, ""),
])
async def test_fetch_failure_reasons(servers: Servers, port: str, failure, reason) -> None:
    result = await fetch("127.0.0.1", servers.ports[port], "/", timeout=1.0)
    assert result.failure is failure
    assert result.reason.startswith(reason)


async def test_fetch_body_limit(servers: Servers) -> None:
    result = await fetch("127.0.0.1", servers.ports["aio"], "/big", timeout=5.0,
                         body_limit=1000)
    assert result.failure is Failure.BODY_TOO_LARGE
    assert result.reason == (f"response body of {len(BIG)} bytes (Content-Length) exceeds the "
                             "1000-byte limit")
    unframed = await fetch("127.0.0.1", servers.ports["binary-body"], "/", timeout=5.0,
                           body_limit=100)
    assert unframed.failure is Failure.BODY_TOO_LARGE
    assert unframed.reason == "response body exceeded 100 bytes"


async def test_fetch_tls_with_and_without_verification(servers: Servers,
                                                       certificates: Certificates) -> None:
    port = servers.ports["tls-two-records"]
    plain = await fetch("127.0.0.1", port, "/", tls=True, timeout=5.0)
    assert plain.ok and plain.digest == md5(b"hello tls\n")
    assert not plain.tls_close_notify  # strict: done at Content-Length, before the close
    to_the_end = await fetch("127.0.0.1", port, "/", tls=True, timeout=5.0, strict=False)
    assert to_the_end.digest == md5(b"hello tls\n") and to_the_end.tls_close_notify
    verified = await fetch("127.0.0.1", port, "/", tls=True, timeout=5.0,
                           ca_file=str(certificates.ca_file))
    assert verified.ok
    by_name = await fetch("127.0.0.1", port, "/", tls=True, timeout=5.0, sni=VHOST,
                          ca_file=str(certificates.ca_file))
    assert by_name.ok and servers.scripts["tls-two-records"].server_names[-1] == VHOST
    wrong_ca = await fetch("127.0.0.1", port, "/", tls=True, timeout=5.0,
                           ca_file=str(certificates.other_ca_file))
    assert wrong_ca.failure is Failure.TLS_FAILED
    assert wrong_ca.reason.startswith("TLS handshake failed: certificate verification failed")
    wrong_name = await fetch("127.0.0.1", port, "/", tls=True, timeout=5.0,
                             sni="other.example.test", ca_file=str(certificates.ca_file))
    assert wrong_name.failure is Failure.TLS_FAILED
    assert "other.example.test" in wrong_name.reason
    not_tls = await fetch("127.0.0.1", servers.ports["answers-anything"], "/", tls=True,
                          timeout=5.0)
    assert not_tls.failure is Failure.TLS_FAILED
    assert not_tls.reason.startswith("TLS handshake failed: ")
    no_handshake = await fetch("127.0.0.1", servers.ports["accepts-only"], "/", tls=True,
                               timeout=1.0)
    assert no_handshake.failure is Failure.TLS_TIMEOUT
    assert no_handshake.reason == "TLS handshake timeout after 1.0 s"


async def test_fetch_sni_picks_the_nginx_virtual_host(nginx: Nginx) -> None:
    default = await fetch("127.0.0.1", nginx.https, "/", tls=True, timeout=5.0)
    vhost = await fetch("127.0.0.1", nginx.https, "/", tls=True, timeout=5.0, sni=VHOST,
                        virtualhost=VHOST, protocol="1.1")
    assert (default.digest, vhost.digest) == (md5(NGINX_PAGE), md5(NGINX_VHOST_PAGE))


async def test_fetch_from_a_bind_address_with_a_fwmark(servers: Servers) -> None:
    server = servers.scripts["chunked"]
    result = await fetch("127.0.0.1", server.port, "/", timeout=5.0, bind="127.0.0.2",
                         fwmark=7)
    assert result.ok
    assert server.peers[-1] == "127.0.0.2"
    bad = await fetch("127.0.0.1", server.port, "/", timeout=5.0, bind="192.0.2.99")
    assert bad.failure is Failure.BIND_FAILED
    assert bad.reason == "cannot bind to 192.0.2.99: Cannot assign requested address"


FETCH_IN_NAMESPACE = """
import asyncio, json, sys
from checkers.http_client import fetch
result = asyncio.run(fetch(sys.argv[1], 80, "/", timeout=1.0))
print(json.dumps([result.failure, result.reason, result.elapsed]))
"""


@pytest.mark.parametrize(("address", "failure", "reason"), [
    ("192.0.2.2", "connect-timeout", "connect timeout after 1.0 s"),
    ("2001:db8::2", "connect-timeout", "connect timeout after 1.0 s"),
    ("198.51.100.1", "unreachable", "network unreachable: Network is unreachable"),
    ("203.0.113.1", "unreachable", "network unreachable: No route to host"),
])
def test_fetch_without_a_server(netlab: NetLab, address: str, failure: str, reason: str) -> None:
    done = subprocess.run([IP, "netns", "exec", netlab.ns, sys.executable, "-c",
                           FETCH_IN_NAMESPACE, address], capture_output=True, text=True,
                          timeout=30, env=BASE_ENV, cwd=REPO)
    assert done.returncode == 0, done.stderr
    got_failure, got_reason, elapsed = json.loads(done.stdout)
    assert (got_failure, got_reason) == (failure, reason)
    assert elapsed < 1.5
