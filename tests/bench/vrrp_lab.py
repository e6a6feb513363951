"""The lab of the VRRP failover bench (tests/bench/test_vrrp_failover.py).

Two directors and a client on one bridge (`tests.netns.lab.Lab`, documentation
addresses: dir1 192.0.2.1, dir2 192.0.2.2, client 192.0.2.3, the VIP 192.0.2.100),
and the instruments, all threads of the bench process with sockets that live in the
lab's namespaces:

- `AddressMonitor(ns)`: an rtnetlink socket (RTMGRP_IPV4_IFADDR) in a namespace; every
  IPv4 address added or removed there, with the monotonic time the thread read it
  (resolution well below 1 ms). `first_added(address, after)` answers "when did the
  VIP appear on the backup".
- `Responder(ns, port)`: a UDP echo on 0.0.0.0:port in a director's namespace; it
  answers for the VIP only while the kernel there holds the VIP (no forwarding).
- `Prober(ns, target, port, interval)`: the client; a UDP probe to the VIP every
  `interval` s (5 ms), each answer recorded with its receive time and the director
  that answered (the reply's source is that director's own address).
  `outage(start, end)` = the longest time without an answer, less one probe interval
  (0 when no probe went unanswered).
- `Ours` / `Keepalived` (the `Implementation`s): start a config in a node and return
  a `Daemon`: kill -9, SIGTERM, stop, its processes. Ours is `director run
  --vrrp-only` (the netns tier's `tests.netns.test_vrrp_run.Ours`, at log level info);
  keepalived is the netns tier's `KeepalivedPeer` (VRRP only, foreground).
- `vrrp_config(...)`: one keepalived-syntax config read by both.
- `cpu_seconds(pid)`, `rss_kib(pid)`: from /proc (utime+stime, VmRSS).

Every wait is bounded; only processes the lab started are signalled, by pid.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import select
import signal
import socket
import statistics
import struct
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tests.netns.keepalived_peer import KEEPALIVED, KeepalivedPeer
from tests.netns.lab import (
    IP,
    Lab,
    LabError,
    Node,
    open_socket,
    pids_in_namespace,
    run,
    terminate_pid,
    wait_until,
)
from tests.netns.test_vrrp_run import ROOT
from tests.netns.test_vrrp_run import Ours as _OursProcess

VIP = "192.0.2.100"
PROBE_PORT = 5405
PROBE_INTERVAL = 0.005  # seconds between client probes

NETLINK_ROUTE = 0
RTMGRP_IPV4_IFADDR = 0x10
RTM_NEWLINK, RTM_NEWADDR, RTM_DELADDR = 16, 20, 21
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
IFA_ADDRESS, IFA_LOCAL = 1, 2
IFF_UP = 0x1
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- instruments


class AddressMonitor:
    """IPv4 addresses added to / removed from a namespace, as rtnetlink reports them."""

    def __init__(self, ns: str):
        self.ns = ns
        self.sock = open_socket(ns, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((0, RTMGRP_IPV4_IFADDR))
        self.events: list[tuple[float, str, str]] = []  # (monotonic, "add"|"del", address)
        self.overruns = 0
        self._lock = threading.Lock()
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._loop, name=f"addrmon-{ns}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            ready, _, _ = select.select([self.sock, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                data = self.sock.recv(1 << 16)
            except OSError:  # ENOBUFS: events were lost (counted, never silent)
                self.overruns += 1
                continue
            now = time.monotonic()
            found = list(_address_messages(data))
            if found:
                with self._lock:
                    self.events.extend((now, kind, addr) for kind, addr in found)

    def first_added(self, address: str, after: float) -> float | None:
        """The time `address` was first added at or after `after`, None if not (yet)."""
        with self._lock:
            for when, kind, addr in self.events:
                if when >= after and kind == "add" and addr == address:
                    return when
        return None

    def wait_added(self, address: str, after: float, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while True:
            when = self.first_added(address, after)
            if when is not None or time.monotonic() >= deadline:
                return when
            time.sleep(0.002)

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(5)
        self.sock.close()
        os.close(self._stop_r)
        os.close(self._stop_w)


def _address_messages(data: bytes) -> Iterable[tuple[str, str]]:
    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if length < 16:
            return
        if kind in (RTM_NEWADDR, RTM_DELADDR) and length >= 24:
            family = data[offset + 16]
            attrs: dict[int, bytes] = {}
            pos, end = offset + 24, offset + length
            while pos + 4 <= end:
                rta_len, rta_type = struct.unpack_from("=HH", data, pos)
                if rta_len < 4:
                    break
                attrs[rta_type] = data[pos + 4:pos + rta_len]
                pos += (rta_len + 3) & ~3
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if family == socket.AF_INET and raw is not None and len(raw) == 4:
                yield ("add" if kind == RTM_NEWADDR else "del",
                       str(ipaddress.IPv4Address(raw)))
        offset += (length + 3) & ~3


def set_link(ns: str, ifname: str, up: bool) -> float:
    """`ip link set IFNAME up|down` in `ns`, through one rtnetlink request on a socket
    opened beforehand; returns the monotonic time just before the request was sent."""
    with contextlib.closing(open_socket(ns, socket.AF_INET, socket.SOCK_DGRAM)) as probe:
        from vrrp.transport import interface_index

        index = interface_index(probe, ifname)
    with contextlib.closing(open_socket(ns, socket.AF_NETLINK, socket.SOCK_RAW,
                                        NETLINK_ROUTE)) as nl:
        nl.bind((0, 0))
        body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, IFF_UP if up else 0, IFF_UP)
        message = struct.pack("=IHHII", 16 + len(body), RTM_NEWLINK,
                              NLM_F_REQUEST | NLM_F_ACK, 1, 0) + body
        nl.settimeout(5)
        sent = time.monotonic()
        nl.send(message)
        answer = nl.recv(4096)
    _length, kind = struct.unpack_from("=IH", answer)
    if kind == NLMSG_ERROR:
        (error,) = struct.unpack_from("=i", answer, 16)
        if error != 0:
            raise OSError(-error, f"link {ifname} {'up' if up else 'down'} in {ns}")
    return sent


class Responder:
    """UDP echo on 0.0.0.0:port in a namespace (answers for whatever it holds)."""

    def __init__(self, ns: str, port: int = PROBE_PORT):
        self.sock = open_socket(ns, socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("0.0.0.0", port))
        self.sock.settimeout(0.2)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"echo-{ns}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                data, peer = self.sock.recvfrom(2048)
                self.sock.sendto(data, peer)
            except (TimeoutError, OSError):
                continue

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        self.sock.close()


class Prober:
    """The client: a probe to target:port every `interval` s; answers with their times."""

    def __init__(self, ns: str, target: str, port: int = PROBE_PORT,
                 interval: float = PROBE_INTERVAL):
        self.target, self.port, self.interval = target, port, interval
        self.sock = open_socket(ns, socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(0.2)
        self.sent = 0
        self.answers: list[tuple[float, str]] = []  # (monotonic receive time, source)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._send, name="probe-send", daemon=True),
                         threading.Thread(target=self._receive, name="probe-recv", daemon=True)]
        for thread in self._threads:
            thread.start()

    def _send(self) -> None:
        next_at = time.monotonic()
        while not self._stopping.is_set():
            with contextlib.suppress(OSError):  # no route / ARP failed: a lost probe
                self.sock.sendto(struct.pack("!Q", self.sent), (self.target, self.port))
            self.sent += 1
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:  # fell behind (a stall): do not burst to catch up
                next_at = time.monotonic()

    def _receive(self) -> None:
        while not self._stopping.is_set():
            try:
                _data, peer = self.sock.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            now = time.monotonic()
            with self._lock:
                self.answers.append((now, peer[0]))

    def answered_by(self, source: str, since: float) -> int:
        with self._lock:
            return sum(1 for when, who in self.answers if when >= since and who == source)

    def steady(self, source: str, span: float = 0.15) -> bool:
        """Every answer of the last `span` s came from `source`, and enough of them."""
        since = time.monotonic() - span
        with self._lock:
            recent = [who for when, who in self.answers if when >= since]
        return len(recent) >= 0.6 * span / self.interval and set(recent) == {source}

    def outage(self, start: float, end: float) -> float:
        """The longest time without an answer within [start, end], less one interval."""
        with self._lock:
            times = [when for when, _ in self.answers if start <= when <= end]
        points = [start, *times, end]
        longest = max(b - a for a, b in itertools.pairwise(points))
        return max(0.0, longest - self.interval)

    def trim(self, before: float) -> None:
        with self._lock:
            self.answers = [a for a in self.answers if a[0] >= before]

    def close(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(5)
        self.sock.close()


# ---------------------------------------------------------------- /proc


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def resource_use(ns: str, window: float) -> tuple[float, float, int]:
    """(% of one core, over `window` s; MiB of RSS; process count) of every process in
    `ns` (the implementation's processes: nothing else runs in a director's namespace)."""
    pids = pids_in_namespace(ns)
    before = {pid: cpu_seconds(pid) for pid in pids}
    started = time.monotonic()
    time.sleep(window)
    elapsed = time.monotonic() - started
    after = {pid: cpu_seconds(pid) for pid in pids}
    used = sum(max(0.0, after[p] - before[p]) for p in pids if after[p] > 0)
    rss = sum(rss_kib(pid) for pid in pids)
    return 100.0 * used / elapsed, rss / 1024.0, len(pids)


# ---------------------------------------------------------------- configs


@dataclass(frozen=True)
class Instance:
    name: str
    vrid: int
    priority: int
    version: int
    advert: float
    vips: Sequence[str]
    track_script: str | None = None


def vrrp_config(instances: Sequence[Instance], scripts: dict[str, str] | None = None) -> str:
    """A keepalived-syntax config (both implementations read it). `scripts`: name ->
    the body of a vrrp_script block."""
    out = ["global_defs {\n    script_user root\n    enable_script_security\n}\n"]
    for name, body in (scripts or {}).items():
        out.append(f"vrrp_script {name} {{\n{body}}}\n")
    for inst in instances:
        track = (f"    track_script {{\n        {inst.track_script}\n    }}\n"
                 if inst.track_script else "")
        vips = "".join(f"        {v}\n" for v in inst.vips)
        out.append(f"""vrrp_instance {inst.name} {{
    state BACKUP
    interface eth0
    virtual_router_id {inst.vrid}
    priority {inst.priority}
    version {inst.version}
    advert_int {inst.advert:g}
{track}    virtual_ipaddress {{
{vips}    }}
}}
""")
    return "".join(out)


# ---------------------------------------------------------------- implementations


class Daemon(Protocol):
    node: Node

    def alive(self) -> bool: ...
    def pids(self) -> list[int]: ...
    def logged(self, text: str) -> bool: ...
    def output(self) -> str: ...
    def kill9(self) -> float: ...
    def terminate(self) -> float: ...
    def stop(self) -> None: ...


class Implementation(Protocol):
    name: str

    def start(self, lab: Lab, node: Node, text: str, tag: str) -> Daemon: ...


@dataclass
class OursDaemon:
    node: Node
    proc: _OursProcess

    @property
    def pid(self) -> int:
        assert self.proc.process is not None
        return self.proc.process.pid

    def alive(self) -> bool:
        return self.proc.process is not None and self.proc.process.alive()

    def pids(self) -> list[int]:
        return pids_in_namespace(self.node.ns)

    def output(self) -> str:
        return self.proc.output()

    def logged(self, text: str) -> bool:
        if not self.alive():
            raise LabError(f"director in {self.node.role} exited:\n{self.output()[-3000:]}")
        return text in self.output()

    def kill9(self) -> float:
        now = time.monotonic()
        os.kill(self.pid, signal.SIGKILL)
        assert self.proc.process is not None
        self.proc.process.wait(5)
        return now

    def terminate(self) -> float:
        now = time.monotonic()
        os.kill(self.pid, signal.SIGTERM)
        return now

    def stop(self) -> None:
        # SIGINT: stop at once (priority 0, VIPs removed), no handover to wait for
        if self.proc.process is not None:
            self.proc.process.stop(signal.SIGINT, timeout=10)


class _OursQuiet(_OursProcess):
    """The netns tier's runner of `director run --vrrp-only`, at log level info (debug
    lines for 2,000 adverts/s would be part of what the resource figures measure)."""

    def start(self) -> _OursQuiet:
        self.runs += 1
        log = self.lab.workdir / f"{self.name}-{self.node.role}.{self.runs}.log"
        self.process = self.lab.spawn(
            self.node.ns, sys.executable, "-m", "director.cli.main", "run", "--vrrp-only",
            "-f", self.conf, "--log-level", "info", log=log, env={"PYTHONPATH": str(ROOT)})
        return self


class Ours:
    name = "ours"

    def start(self, lab: Lab, node: Node, text: str, tag: str) -> OursDaemon:
        return OursDaemon(node, _OursQuiet(lab, node, text, name=f"ours-{tag}").start())


@dataclass
class KeepalivedDaemon:
    node: Node
    peer: KeepalivedPeer
    child: int | None = field(default=None)

    def alive(self) -> bool:
        return self.peer.alive()

    def pids(self) -> list[int]:
        return pids_in_namespace(self.node.ns)

    def output(self) -> str:
        return self.peer.output()

    def logged(self, text: str) -> bool:
        if not self.alive():
            raise LabError(f"keepalived in {self.node.role} exited:\n{self.output()[-3000:]}")
        return text in self.output()

    def vrrp_child(self) -> int:
        """The VRRP process's pid (keepalived's pid file, checked to be in our netns)."""
        def found() -> int | None:
            pid = self.peer.vrrp_pid()
            return pid if pid is not None and pid in self.pids() else None

        self.child = wait_until(found, 10, interval=0.02, message="keepalived VRRP child")
        return self.child

    def kill9(self) -> float:
        """The VRRP process dies (SIGKILL); its parent is stopped first so it cannot
        respawn it (nor signal it), then killed too: a crash of the whole daemon."""
        child = self.vrrp_child()
        parent = self.peer.pid
        assert parent is not None
        os.kill(parent, signal.SIGSTOP)
        now = time.monotonic()
        os.kill(child, signal.SIGKILL)
        os.kill(parent, signal.SIGKILL)
        assert self.peer.process is not None
        self.peer.process.wait(5)
        terminate_pid(child, 5)  # already dead: only waits until it is reaped
        return now

    def terminate(self) -> float:
        self.vrrp_child()
        now = time.monotonic()
        self.peer.send_signal(signal.SIGTERM)  # the parent relays it to its VRRP child
        return now

    def stop(self) -> None:
        self.peer.stop(signal.SIGTERM, timeout=10)


class Keepalived:
    name = "keepalived"

    def start(self, lab: Lab, node: Node, text: str, tag: str) -> KeepalivedDaemon:
        conf = lab.workdir / f"keepalived-{tag}-{node.role}.conf"
        conf.write_text(text)
        peer = KeepalivedPeer(lab, node.ns, conf, name=f"keepalived-{tag}")
        return KeepalivedDaemon(node, peer.start())


IMPLEMENTATIONS: tuple[Implementation, ...] = (Keepalived(), Ours())


# ---------------------------------------------------------------- the lab


class VrrpLab:
    """dir1 (master), dir2 (backup), client; responders, monitors and the prober."""

    def __init__(self, workdir: Path):
        self.lab = Lab(workdir, prefix="lvsdvb")
        try:
            self.master = self.lab.add_node("dir1", host=1)
            self.backup = self.lab.add_node("dir2", host=2)
            self.client = self.lab.add_node("client", host=3)
            self.monitors = {n.role: AddressMonitor(n.ns) for n in (self.master, self.backup)}
            self.responders = [Responder(n.ns) for n in (self.master, self.backup)]
            self.prober = Prober(self.client.ns, VIP)
        except BaseException:
            self.lab.close()
            raise

    def address_of(self, node: Node) -> str:
        assert node.ipv4 is not None
        return str(node.ipv4.ip)

    def holds(self, node: Node, address: str = VIP) -> bool:
        return node.has_address(address)

    def count_held(self, node: Node, addresses: set[str]) -> int:
        held = {a["local"] for iface in node.addresses() for a in iface.get("addr_info", ())}
        return len(held & addresses)

    def remove_addresses(self, node: Node, addresses: Iterable[str]) -> None:
        """Delete leftovers (a killed daemon's VIPs) so the next run starts clean."""
        wanted = set(addresses)
        for iface in node.addresses():
            for a in iface.get("addr_info", ()):
                if a.get("family") == "inet" and a["local"] in wanted:
                    run(node.ns, IP, "addr", "del", f"{a['local']}/{a['prefixlen']}",
                        "dev", iface["ifname"], check=False)

    def link_up(self, node: Node) -> None:
        set_link(node.ns, "eth0", True)

    def close(self) -> None:
        problems: list[str] = []
        for closer in (self.prober, *self.responders, *self.monitors.values()):
            try:
                closer.close()
            except Exception as exc:
                problems.append(repr(exc))
        self.lab.close()
        if problems:
            raise LabError("vrrp lab teardown: " + "; ".join(problems))


# ---------------------------------------------------------------- figures


def summary(values: Sequence[float]) -> tuple[float, float, float] | None:
    if not values:
        return None
    return min(values), statistics.median(values), max(values)


def fmt(values: Sequence[float]) -> str:
    s = summary(values)
    if s is None:
        return "-"
    return "/".join(f"{v:.0f}" for v in s)


def ratio(ours: Sequence[float], theirs: Sequence[float], floor: float = 10.0) -> str:
    """Ours' median over keepalived's; "-" when both are below `floor` ms (no outage
    either way: probe-interval noise, not a ratio worth printing), "ka ~0" when only
    keepalived's is."""
    a, b = summary(ours), summary(theirs)
    if a is None or b is None:
        return "-"
    if a[1] < floor and b[1] < floor:
        return "-"
    if b[1] < floor:
        return "ka ~0"
    return f"{a[1] / b[1]:.2f}"


def keepalived_available() -> bool:
    return KEEPALIVED.exists()
