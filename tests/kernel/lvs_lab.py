"""An LVS lab inside the User-Mode-Linux guest: a client, one or two directors, NAT and
DR real servers, and real TCP traffic through the kernel's IPVS.

Topology (every part is a network namespace; the two bridges live in a namespace of
their own, the "switch", so deleting the namespaces removes everything)::

    client 198.51.100.10 ---+---------- front bridge (198.51.100.0/24) ---------+
                            |                 |                               |
                  dirA .2 (+ VIP .100)   dirB .3          dr1 .21, dr2 .22 ... (VIP on lo/32,
                  back 192.0.2.2         back 192.0.2.3        arp_ignore=1, arp_announce=2)
                  (+ gateway 192.0.2.1)
                            |                 |
                            +---- back bridge (192.0.2.0/24) ---- nat1 .11, nat2 .12 ...
                                                                  (default route via 192.0.2.1)

The active director (dirA at first) holds the VIP on its front side and the NAT real
servers' gateway 192.0.2.1 on its back side; both directors forward (ip_forward=1).
The services are not made here: a test puts them in a director's IPVS table.

API (tests import it as `from lvs_lab import ...`; tests/kernel is on sys.path):

    lab = lab_fixture(nat=2, dr=2, directors=2)   # in a test module: a module-scoped
                                                  # fixture named "lab" (name=, scope=)
    with lvs_lab(nat=2, dr=2, directors=2) as lab: ...   # the same as a context manager

    lab.client, lab.directors ([dirA, dirB]), lab.nat ([nat1, ...]), lab.dr ([dr1, ...]):
        `Node`s: .name ("dirA", "nat1", ...), .netns (conftest.Netns: .name, .run(),
        .ipvsadm(), .listing()), .address (the address it serves or sends from),
        .front / .back addresses (None where it has no such side)
    lab.node(name) -> Node
    lab.active -> the director that holds the VIP now

    lab.start_server(rs, port) -> Server (.pid, .node, .port, .name): runs lab_server.py
        in the real server's namespace; it answers every line with "<rs name> <line>"
        on a connection it keeps open ("?peer" -> "<rs name> peer HOST:PORT")
    lab.start_servers([(rs, port), ...]) -> list[Server]  (several at once, in parallel:
        the guest's Python starts slowly)
    lab.stop_server(server_or_pid); lab.stop_servers(*servers) (none given: all)
    lab.running_servers -> list[Server]

    lab.request(port, vip=VIP) -> name of the real server that answered a fresh
        connection's first line (raises OSError / LabError on no answer)
    lab.requests(n, port, vip=VIP, failures_ok=False) -> Counter {name: count}
        (with failures_ok, failed connections count under None)
    lab.open_connection(port, vip=VIP) -> Conn: .ask(line) -> "<rs name> <line>",
        .server (the name of the real server behind it), .local ("HOST:PORT" of the
        client side), .close(); also a context manager

    lab.move_vip(to_director): the VIP and the gateway address move; the client's and
        real servers' neighbour caches are flushed so traffic follows at once
    lab.ipvs(director) -> NetlinkBackend of that director's namespace (closed at teardown)
    lab.clear_ipvs(director=None): empty that director's (or every director's) table
    lab.connections(director) -> list[IpvsConnection]: /proc/net/ip_vs_conn, parsed

Constants: VIP, CLIENT, GATEWAY, FRONT_NET, BACK_NET, TIMEOUT; `IpvsConnection` has
.protocol, .client, .virtual, .destination ("HOST:PORT" each), .state ("ESTABLISHED",
...), .expires (seconds).

Directors, nodes and real servers may be given as `Node`s or names ("dirA", "nat1").
Every wait is bounded (`TIMEOUT`); teardown stops the servers, closes connections and
sockets and deletes the namespaces even when a test failed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import queue
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import NETNS_PREFIX, Netns

from director.ipvs.netlink import NetlinkBackend

HERE = Path(__file__).resolve().parent
SERVER_PROGRAM = HERE / "lab_server.py"

FRONT_NET = "198.51.100.0/24"
BACK_NET = "192.0.2.0/24"
VIP = "198.51.100.100"
GATEWAY = "192.0.2.1"
CLIENT = "198.51.100.10"
DIRECTOR_NAMES = ("dirA", "dirB")
DIRECTOR_HOST = 2  # dirA .2, dirB .3 on both sides
NAT_HOST = 11  # nat1 192.0.2.11, nat2 .12, ...
DR_HOST = 21  # dr1 198.51.100.21, dr2 .22, ...

TIMEOUT = 5.0  # any single wait: connect, answer, server start
SERVER_START_TIMEOUT = 20.0  # a Python start in the slow guest, several at once

CLONE_NEWNET = 0x40000000
T = TypeVar("T")


class LabError(Exception):
    """The lab could not be built, or traffic did not get the expected answer."""


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    role: str  # client | director | nat | dr
    netns: Netns
    front: str | None = None
    back: str | None = None

    @property
    def address(self) -> str:
        """The address it serves (real servers) or sends (client, directors) from."""
        address = self.back if self.role == "nat" else self.front
        assert address is not None
        return address

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.netns.run(*argv, check=check)


@dataclass(frozen=True, slots=True)
class Server:
    pid: int
    node: Node
    port: int
    log: Path

    @property
    def name(self) -> str:
        return self.node.name


@dataclass(frozen=True, slots=True)
class IpvsConnection:
    """One line of /proc/net/ip_vs_conn."""

    protocol: str
    client: str  # "HOST:PORT"
    virtual: str
    destination: str
    state: str
    expires: int


def _hexaddr(text: str) -> str:
    address, port = text.split(":")
    return f"{ipaddress.IPv4Address(int(address, 16))}:{int(port, 16)}"


def parse_ip_vs_conn(text: str) -> list[IpvsConnection]:
    entries = []
    for line in text.splitlines()[1:]:
        words = line.split()
        if len(words) < 8 or words[0] == "Pro":
            continue
        # Pro FromIP FPrt ToIP TPrt DestIP DPrt State Expires [PEName PEData]
        protocol, fa, fp, ta, tp, da, dp, state, expires = words[:9]
        entries.append(IpvsConnection(
            protocol=protocol, client=_hexaddr(f"{fa}:{fp}"), virtual=_hexaddr(f"{ta}:{tp}"),
            destination=_hexaddr(f"{da}:{dp}"), state=state, expires=int(expires)))
    return entries


# ------------------------------------------------------------------ sockets in a netns

_libc = ctypes.CDLL(None, use_errno=True)


class NetnsWorker:
    """A thread that lives in another network namespace: whatever it creates (sockets)
    belongs to that namespace, and stays there when used from other threads."""

    def __init__(self, netns_name: str) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], Any], queue.Queue] | None] = queue.Queue()
        ready: queue.Queue[BaseException | None] = queue.Queue()
        self._thread = threading.Thread(
            target=self._main, args=(netns_name, ready), daemon=True,
            name=f"netns-{netns_name}")
        self._thread.start()
        failure = ready.get(timeout=TIMEOUT)
        if failure is not None:
            raise LabError(f"cannot enter network namespace {netns_name}: {failure}")

    def _main(self, netns_name: str, ready: queue.Queue) -> None:
        try:
            fd = os.open(f"/run/netns/{netns_name}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            finally:
                os.close(fd)
        except BaseException as failure:
            ready.put(failure)
            return
        ready.put(None)
        while (job := self._jobs.get()) is not None:
            call, answer = job
            try:
                answer.put((True, call()))
            except BaseException as failure:
                answer.put((False, failure))

    def call(self, fn: Callable[[], T]) -> T:
        answer: queue.Queue = queue.Queue()
        self._jobs.put((fn, answer))
        ok, value = answer.get(timeout=TIMEOUT)
        if not ok:
            raise value
        return value

    def socket(self, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM
               ) -> socket.socket:
        return self.call(lambda: socket.socket(family, kind))

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=TIMEOUT)


class Conn:
    """A client connection to the VIP, opened in the client's namespace."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""
        self.server: str | None = None
        host, port = sock.getsockname()[:2]
        self.local = f"{host}:{port}"

    def ask(self, line: str, timeout: float = TIMEOUT) -> str:
        """Send one line; the real server's answer ("<name> <line>") without newline."""
        self.sock.settimeout(timeout)
        self.sock.sendall(line.encode() + b"\n")
        while b"\n" not in self._buffer:
            data = self.sock.recv(4096)
            if not data:
                raise LabError(f"connection {self.local} closed without an answer to {line!r}")
            self._buffer += data
        answer, self._buffer = self._buffer.split(b"\n", 1)
        text = answer.decode()
        if self.server is None:
            self.server = text.split(" ", 1)[0]
        return text

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------ the lab

def _ip_batch(netns: str | None, commands: list[str]) -> None:
    argv = ["ip"] + (["-n", netns] if netns else []) + ["-batch", "-"]
    done = subprocess.run(argv, input="\n".join(commands) + "\n", capture_output=True,
                          text=True, timeout=60)
    if done.returncode != 0:
        where = f" in {netns}" if netns else ""
        raise LabError(f"ip -batch{where} failed: {done.stderr.strip()}\n"
                       + "\n".join(commands))


def _sysctl(netns: Netns, settings: dict[str, str]) -> None:
    netns.run("sysctl", "-q", "-w", *(f"{k}={v}" for k, v in settings.items()))


@dataclass
class LvsLab:
    switch: Netns
    client: Node
    directors: list[Node]
    nat: list[Node]
    dr: list[Node]
    workdir: Path
    active: Node = field(init=False)
    _servers: dict[int, tuple[Server, subprocess.Popen]] = field(default_factory=dict)
    _backends: dict[str, NetlinkBackend] = field(default_factory=dict)
    _conns: list[Conn] = field(default_factory=list)
    _worker: NetnsWorker | None = None

    def __post_init__(self) -> None:
        self.active = self.directors[0]

    @property
    def nodes(self) -> list[Node]:
        return [self.client, *self.directors, *self.nat, *self.dr]

    def node(self, which: Node | str) -> Node:
        if isinstance(which, Node):
            return which
        for node in self.nodes:
            if node.name == which:
                return node
        raise KeyError(f"no node {which!r} in the lab: {[n.name for n in self.nodes]}")

    # -------------------------------------------------------------- real servers

    def start_server(self, rs: Node | str, port: int) -> Server:
        return self._start([(self.node(rs), port)])[0]

    def start_servers(self, pairs: list[tuple[Node | str, int]]) -> list[Server]:
        """Start several servers at once (the guest's Python starts slowly)."""
        return self._start([(self.node(rs), port) for rs, port in pairs])

    @property
    def running_servers(self) -> list[Server]:
        return [server for server, _ in self._servers.values()]

    def stop_servers(self, *servers: Server | int) -> None:
        """Stop these servers; with none given, every server still running."""
        for server in servers or self.running_servers:
            self.stop_server(server)

    def _start(self, pairs: list[tuple[Node, int]]) -> list[Server]:
        started: list[tuple[Server, subprocess.Popen]] = []
        for node, port in pairs:
            log = self.workdir / f"{node.name}-{port}-{uuid.uuid4().hex[:6]}.log"
            with log.open("w") as stderr:
                proc = subprocess.Popen(
                    ["ip", "netns", "exec", node.netns.name, sys.executable, "-I", "-S",
                     str(SERVER_PROGRAM), "--name", node.name, "--port", str(port)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
            server = Server(proc.pid, node, port, log)
            self._servers[proc.pid] = (server, proc)
            started.append((server, proc))
        for server, proc in started:
            self._await_ready(server, proc)
        return [server for server, _ in started]

    def _await_ready(self, server: Server, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], SERVER_START_TIMEOUT)
        line = proc.stdout.readline() if ready else b""
        proc.stdout.close()
        if line.strip() != b"ready":
            self.stop_server(server.pid)
            raise LabError(f"real server {server.name}:{server.port} did not start "
                           f"(exit {proc.poll()}): {server.log.read_text().strip()}")

    def stop_server(self, server: Server | int) -> None:
        pid = server.pid if isinstance(server, Server) else server
        entry = self._servers.pop(pid, None)
        if entry is None:
            return
        proc = entry[1]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=TIMEOUT)

    # -------------------------------------------------------------- the client

    def _client_worker(self) -> NetnsWorker:
        if self._worker is None:
            self._worker = NetnsWorker(self.client.netns.name)
        return self._worker

    def _connect(self, port: int, vip: str, timeout: float) -> Conn:
        sock = self._client_worker().socket()
        try:
            sock.settimeout(timeout)
            sock.connect((vip, port))
            return Conn(sock)
        except BaseException:
            sock.close()
            raise

    def open_connection(self, port: int, vip: str = VIP, timeout: float = TIMEOUT) -> Conn:
        """An established connection through the director, kept until closed (or the
        lab's teardown)."""
        conn = self._connect(port, vip, timeout)
        self._conns.append(conn)
        return conn

    def request(self, port: int, vip: str = VIP, timeout: float = TIMEOUT) -> str:
        """A fresh connection, one line: the name of the real server that answered."""
        with self._connect(port, vip, timeout) as conn:
            conn.ask("hello", timeout)
            assert conn.server is not None
            return conn.server

    def requests(self, n: int, port: int, vip: str = VIP, failures_ok: bool = False,
                 timeout: float = TIMEOUT) -> Counter:
        counts: Counter = Counter()
        for _ in range(n):
            try:
                counts[self.request(port, vip, timeout)] += 1
            except (OSError, LabError):
                if not failures_ok:
                    raise
                counts[None] += 1
        return counts

    # -------------------------------------------------------------- directors

    def director(self, which: Node | str) -> Node:
        node = self.node(which)
        if node.role != "director":
            raise LabError(f"{node.name} is not a director")
        return node

    def ipvs(self, director: Node | str | None = None) -> NetlinkBackend:
        node = self.director(director or self.active)
        backend = self._backends.get(node.name)
        if backend is None:
            backend = self._backends[node.name] = NetlinkBackend(node.netns.name)
        return backend

    def clear_ipvs(self, director: Node | str | None = None) -> None:
        targets = self.directors if director is None else [self.director(director)]
        for node in targets:
            node.netns.ipvsadm("-C")

    def connections(self, director: Node | str | None = None) -> list[IpvsConnection]:
        node = self.director(director or self.active)
        return parse_ip_vs_conn(node.run("cat", "/proc/net/ip_vs_conn").stdout)

    def move_vip(self, to_director: Node | str) -> None:
        new = self.director(to_director)
        old = self.active
        if new is old:
            return
        _ip_batch(old.netns.name, [f"addr del {VIP}/32 dev front",
                                   f"addr del {GATEWAY}/24 dev back"])
        _ip_batch(new.netns.name, [f"addr add {VIP}/32 dev front",
                                   f"addr add {GATEWAY}/24 dev back"])
        self.active = new
        # What a gratuitous ARP would do, without waiting on arp_accept/locktime rules.
        for node in [self.client, *self.nat]:
            node.run("ip", "neigh", "flush", "all")

    # -------------------------------------------------------------- teardown

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()
        self._conns.clear()
        for pid in list(self._servers):
            with contextlib.suppress(Exception):
                self.stop_server(pid)
        for backend in self._backends.values():
            with contextlib.suppress(Exception):
                backend.close()
        self._backends.clear()
        if self._worker is not None:
            self._worker.close()
            self._worker = None


def _make_netns(made: list[Netns]) -> Netns:
    ns = Netns(f"{NETNS_PREFIX}{uuid.uuid4().hex[:8]}")
    subprocess.run(["ip", "netns", "add", ns.name], check=True, capture_output=True,
                   timeout=30)
    made.append(ns)
    return ns


def _build(made: list[Netns], nat: int, dr: int, directors: int, workdir: Path) -> LvsLab:
    if not 1 <= directors <= len(DIRECTOR_NAMES):
        raise ValueError(f"directors must be 1 or 2, not {directors}")
    switch = _make_netns(made)
    client = Node("client", "client", _make_netns(made), front=CLIENT)
    dirs = [Node(name, "director", _make_netns(made),
                 front=f"198.51.100.{DIRECTOR_HOST + i}", back=f"192.0.2.{DIRECTOR_HOST + i}")
            for i, name in enumerate(DIRECTOR_NAMES[:directors])]
    nats = [Node(f"nat{i + 1}", "nat", _make_netns(made), back=f"192.0.2.{NAT_HOST + i}")
            for i in range(nat)]
    drs = [Node(f"dr{i + 1}", "dr", _make_netns(made), front=f"198.51.100.{DR_HOST + i}")
           for i in range(dr)]
    lab = LvsLab(switch, client, dirs, nats, drs, workdir)

    wiring = ["link add front type bridge", "link add back type bridge",
              "link set front up", "link set back up"]
    for node in lab.nodes:
        for side, address in (("front", node.front), ("back", node.back)):
            if address is None:
                continue
            port = f"{node.name}-{side[0]}"
            wiring += [f"link add {port} type veth peer name {side} netns {node.netns.name}",
                       f"link set {port} master {side} up"]
    _ip_batch(switch.name, wiring)

    for node in lab.nodes:
        commands = ["link set lo up"]
        if node.front:
            commands += ["link set front up", f"addr add {node.front}/24 dev front"]
        if node.back:
            commands += ["link set back up", f"addr add {node.back}/24 dev back"]
        if node is lab.active:
            commands += [f"addr add {VIP}/32 dev front", f"addr add {GATEWAY}/24 dev back"]
        if node.role == "nat":
            commands.append(f"route add default via {GATEWAY} dev back")
        if node.role == "dr":
            commands.append(f"addr add {VIP}/32 dev lo")
        _ip_batch(node.netns.name, commands)
    for node in lab.directors:
        _sysctl(node.netns, {"net.ipv4.ip_forward": "1"})
    for node in lab.dr:
        _sysctl(node.netns, {"net.ipv4.conf.all.arp_ignore": "1",
                             "net.ipv4.conf.all.arp_announce": "2",
                             "net.ipv4.conf.front.arp_ignore": "1",
                             "net.ipv4.conf.front.arp_announce": "2"})
    return lab


@contextlib.contextmanager
def lvs_lab(nat: int = 2, dr: int = 2, directors: int = 2) -> Iterator[LvsLab]:
    """Build the lab; everything is stopped and removed on the way out."""
    made: list[Netns] = []
    lab: LvsLab | None = None
    with tempfile.TemporaryDirectory(prefix="lvs-lab-") as workdir:
        try:
            lab = _build(made, nat, dr, directors, Path(workdir))
            yield lab
        finally:
            if lab is not None:
                lab.close()
            for ns in reversed(made):
                subprocess.run(["ip", "netns", "del", ns.name], check=False,
                               capture_output=True, timeout=30)


def lab_fixture(nat: int = 2, dr: int = 2, directors: int = 2, *, name: str = "lab",
                scope: str = "module") -> Any:
    """A pytest fixture (module-scoped by default) yielding an `LvsLab`; assign it at
    module level: `lab = lab_fixture(nat=3, dr=2)`."""

    @pytest.fixture(scope=scope, name=name)
    def fixture() -> Iterator[LvsLab]:
        with lvs_lab(nat=nat, dr=dr, directors=directors) as lab:
            yield lab

    return fixture
