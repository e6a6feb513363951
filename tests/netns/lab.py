"""A small network lab for the netns test tier, on the host kernel.

A `Lab` makes network namespaces with names unique to this run (prefix, pid, counter,
so parallel or aborted runs never collide), one "switch" namespace holding a bridge per
segment (nothing is created in the host's root namespace), and nodes: one namespace
each, joined to segments by veth pairs, with addresses from the documentation ranges.
It starts background processes inside namespaces and keeps their pids. `Lab.close()`
stops only the processes it started (SIGTERM, then SIGKILL, bounded waits), then any
process still left inside one of its own namespaces (a daemon's forked child), and
deletes only the namespaces it made. Every wait here is bounded in time.

Use (the `lab` fixture of tests/netns/conftest.py gives a fresh Lab per test):

    a = lab.add_node("dir1")                    # eth0 on segment "lan": 192.0.2.1/24,
    b = lab.add_node("dir2", sysctls={"net.ipv4.conf.all.arp_accept": 1})  # 2001:db8::2/64
    c = lab.add_node("rs", ["lan", "dmz"])      # eth0 on lan, eth1 on dmz (198.51.100.0/24)
    a.run("ip", "-j", "addr")                   # run to completion inside a's namespace
    proc = a.spawn("some-daemon", "-f", conf)   # background, output in proc.log
    proc.stop()                                 # SIGTERM, then SIGKILL (bounded)
    sock = b.socket(socket.AF_INET, socket.SOCK_DGRAM)   # a socket living in b's namespace
    with lab.capture(c.ns, "eth0") as cap:      # frames c receives, kernel-timestamped
        wait_until(lambda: cap.ipv4(proto=112), 5)
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import ipaddress
import itertools
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from vrrp.transport import socket_in_netns

NETNS_DIR = Path("/run/netns")
IP = shutil.which("ip") or "/usr/sbin/ip"
SYSCTL = shutil.which("sysctl") or "/usr/sbin/sysctl"
CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35  # <asm-generic/socket.h>; the kernel's receive time of each frame

# Documentation ranges, one pair per segment in the order segments are made.
SEGMENT_RANGES = (
    ("192.0.2.0/24", "2001:db8::/64"),
    ("198.51.100.0/24", "2001:db8:1::/64"),
    ("203.0.113.0/24", "2001:db8:2::/64"),
)

# Sysctls set in every namespace the lab makes, before any link exists: addresses are
# usable at once (no duplicate address detection delay) so tests stay short.
BASE_SYSCTLS: Mapping[str, str] = {
    "net.ipv6.conf.all.accept_dad": "0",
    "net.ipv6.conf.default.accept_dad": "0",
    "net.ipv6.conf.default.dad_transmits": "0",
}

_counter = itertools.count(1)
_open_labs: weakref.WeakSet[Lab] = weakref.WeakSet()

T = TypeVar("T")


class LabError(RuntimeError):
    """A lab command failed; carries the command and its output."""


# ---------------------------------------------------------------- helpers


def wait_until(predicate: Callable[[], T], timeout: float, *, interval: float = 0.05,
               message: str = "") -> T:
    """Call `predicate` until it returns something truthy and return that value.

    Raises TimeoutError after `timeout` seconds; the predicate is always tried at least
    once, and once more at the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            what = message or getattr(predicate, "__name__", repr(predicate))
            raise TimeoutError(f"not true within {timeout:g} s: {what}")
        time.sleep(min(interval, left))


def logged(proc: Process, text: str, timeout: float = 10.0) -> None:
    """Wait until `proc`'s output has `text`; fails at once, with the output, if it exits."""
    def seen() -> bool:
        if not proc.alive():
            raise AssertionError(f"process exited ({proc.returncode}):\n{proc.output()}")
        return text in proc.output()

    try:
        wait_until(seen, timeout, message=text)
    except TimeoutError:
        raise AssertionError(f"{text!r} not logged within {timeout} s:\n"
                             f"{proc.output()}") from None


def run(ns: str | None, *cmd: str | os.PathLike[str], check: bool = True,
        timeout: float = 10.0, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command to completion inside namespace `ns` (None: the current namespace)."""
    argv = [str(c) for c in cmd]
    if ns is not None:
        argv = [IP, "netns", "exec", ns, *argv]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              input=input, stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"timed out after {timeout:g} s: {' '.join(argv)}") from exc
    if check and done.returncode != 0:
        raise LabError(f"exit {done.returncode}: {' '.join(argv)}\n{done.stdout}{done.stderr}")
    return done


def netns_unavailable_reason() -> str | None:
    """Why this tier cannot run here, or None when it can (root and `ip netns` work)."""
    if os.geteuid() != 0:
        return "not root"
    if not Path(IP).exists():
        return "no `ip` command (iproute2)"
    probe = f"lvsdprobe{os.getpid()}x{next(_counter)}"
    try:
        run(None, IP, "netns", "add", probe, timeout=10)
    except (LabError, OSError) as exc:
        return f"`ip netns add` failed: {exc}"
    try:
        run(None, IP, "netns", "delete", probe, timeout=10)
    except (LabError, OSError) as exc:
        return f"`ip netns delete` failed: {exc}"
    return None


def namespace_id(ns: str) -> tuple[int, int] | None:
    """The (device, inode) identity of a named namespace, None when it is gone."""
    try:
        st = os.stat(NETNS_DIR / ns)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def pids_in_namespace(ns: str) -> list[int]:
    """Pids of live processes whose network namespace is the named one."""
    ident = namespace_id(ns)
    if ident is None:
        return []
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry.name}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == ident and not _is_zombie(int(entry.name)):
            found.append(int(entry.name))
    return found


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # gone
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _wait_gone(pid: int, timeout: float) -> bool:
    try:
        wait_until(lambda: _is_zombie(pid), timeout, interval=0.02)
    except TimeoutError:
        return False
    return True


def open_socket(ns: str, family: int, type: int, proto: int = 0) -> socket.socket:
    """A socket created inside namespace `ns`; it stays bound to that namespace.

    Only the calling thread switches namespace, and only for the socket() call.
    """
    return socket_in_netns(ns, family, type, proto)


# ---------------------------------------------------------------- processes


@dataclass
class Process:
    """A background process the lab started inside a namespace."""

    ns: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def send_signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int | None:
        """Send `sig`, wait up to `timeout`, then SIGKILL and wait again; the exit code."""
        if self.popen.poll() is not None:
            return self.popen.returncode
        self.send_signal(sig)
        rc = self.wait(timeout)
        if rc is None:
            self.send_signal(signal.SIGKILL)
            rc = self.wait(timeout)
        return rc

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""


# ---------------------------------------------------------------- topology


@dataclass
class Segment:
    """A layer-2 segment: a bridge in the lab's switch namespace, with address ranges."""

    name: str
    bridge: str
    ipv4: ipaddress.IPv4Network
    ipv6: ipaddress.IPv6Network
    next_host: int = 1
    ports: int = 0


@dataclass
class Link:
    """One interface of a node, attached to a segment."""

    node: str
    ifname: str
    segment: str
    port: str  # the veth end on the bridge, in the switch namespace
    ipv4: ipaddress.IPv4Interface | None
    ipv6: ipaddress.IPv6Interface | None


@dataclass
class Node:
    """A host of the lab: its own namespace and one link per segment it is on."""

    lab: Lab
    role: str
    ns: str
    links: dict[str, Link] = field(default_factory=dict)  # by ifname

    @property
    def link(self) -> Link:
        return next(iter(self.links.values()))

    @property
    def ipv4(self) -> ipaddress.IPv4Interface | None:
        return self.link.ipv4

    @property
    def ipv6(self) -> ipaddress.IPv6Interface | None:
        return self.link.ipv6

    def run(self, *cmd: str | os.PathLike[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return run(self.ns, *cmd, **kwargs)

    def spawn(self, *cmd: str | os.PathLike[str], **kwargs: Any) -> Process:
        return self.lab.spawn(self.ns, *cmd, **kwargs)

    def sysctl(self, values: Mapping[str, object]) -> None:
        self.lab.sysctl(self.ns, values)

    def addresses(self) -> list[dict[str, Any]]:
        return self.lab.addresses(self.ns)

    def socket(self, family: int, type: int, proto: int = 0) -> socket.socket:
        return open_socket(self.ns, family, type, proto)

    def has_address(self, address: str) -> bool:
        wanted = ipaddress.ip_address(address)
        return any(ipaddress.ip_address(a["local"]) == wanted
                   for iface in self.addresses() for a in iface.get("addr_info", ()))


class Lab:
    """Namespaces, segments, nodes and processes of one test; `close()` undoes it all."""

    def __init__(self, workdir: Path, prefix: str = "lvsd", stop_timeout: float = 5.0):
        self.stop_timeout = stop_timeout  # per signal, when closing
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = f"{prefix}{os.getpid()}x{next(_counter)}"
        self.namespaces: list[str] = []
        self.processes: list[Process] = []
        self.segments: dict[str, Segment] = {}
        self.nodes: dict[str, Node] = {}
        self._switch: str | None = None
        self._closed = False
        _open_labs.add(self)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- namespaces

    def add_namespace(self, role: str, sysctls: Mapping[str, object] | None = None) -> str:
        ns = f"{self.name}-{role}"
        if ns in self.namespaces:
            raise LabError(f"namespace {ns} already made")
        run(None, IP, "netns", "add", ns)
        self.namespaces.append(ns)
        self.sysctl(ns, {**BASE_SYSCTLS, **(sysctls or {})})
        run(ns, IP, "link", "set", "lo", "up")
        return ns

    def sysctl(self, ns: str, values: Mapping[str, object]) -> None:
        if values:
            run(ns, SYSCTL, "-q", "-w", *(f"{k}={v}" for k, v in values.items()))

    def read_sysctl(self, ns: str, key: str) -> str:
        return run(ns, SYSCTL, "-n", key).stdout.strip()

    @property
    def switch(self) -> str:
        """The namespace holding the bridges (made on first use)."""
        if self._switch is None:
            self._switch = self.add_namespace("sw")
        return self._switch

    # -- topology

    def add_segment(self, name: str = "lan", ipv4: str | None = None,
                    ipv6: str | None = None) -> Segment:
        if name in self.segments:
            return self.segments[name]
        default4, default6 = SEGMENT_RANGES[len(self.segments) % len(SEGMENT_RANGES)]
        bridge = f"br{len(self.segments)}"
        run(self.switch, IP, "link", "add", bridge, "type", "bridge",
            "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0")
        run(self.switch, IP, "link", "set", bridge, "up")
        seg = Segment(name, bridge, ipaddress.IPv4Network(ipv4 or default4),
                      ipaddress.IPv6Network(ipv6 or default6))
        self.segments[name] = seg
        return seg

    def add_node(self, role: str, segment: str | Sequence[str] | None = "lan", *,
                 sysctls: Mapping[str, object] | None = None, host: int | None = None) -> Node:
        """A new node namespace with eth0 (eth1, ...) on the named segment(s).

        `host` picks the host number on every segment (address = network + host);
        by default the next free number of each segment is used.
        """
        if role in self.nodes:
            raise LabError(f"node {role} already exists")
        sysctls = dict(sysctls or {})
        # all/default keys before the links exist (new interfaces inherit "default"),
        # keys naming an interface once it does.
        per_interface = {k: v for k, v in sysctls.items() if _names_interface(k)}
        early = {k: v for k, v in sysctls.items() if k not in per_interface}
        node = Node(self, role, self.add_namespace(role, early))
        self.nodes[role] = node
        segments = [segment] if isinstance(segment, str) else list(segment or ())
        for i, seg in enumerate(segments):
            self.connect(node, seg, ifname=f"eth{i}", host=host)
        self.sysctl(node.ns, per_interface)
        return node

    def connect(self, node: Node, segment: str, ifname: str, *, host: int | None = None,
                address: bool = True) -> Link:
        seg = self.add_segment(segment)
        if host is None:
            host = seg.next_host
        seg.next_host = max(seg.next_host, host + 1)
        seg.ports += 1
        port = f"{seg.bridge}p{seg.ports}"
        run(self.switch, IP, "link", "add", port, "type", "veth",
            "peer", "name", ifname, "netns", node.ns)
        run(self.switch, IP, "link", "set", port, "master", seg.bridge, "up")
        ipv4 = ipv6 = None
        if address:
            ipv4 = ipaddress.IPv4Interface((seg.ipv4.network_address + host, seg.ipv4.prefixlen))
            ipv6 = ipaddress.IPv6Interface((seg.ipv6.network_address + host, seg.ipv6.prefixlen))
            run(node.ns, IP, "addr", "add", str(ipv4), "dev", ifname)
            run(node.ns, IP, "-6", "addr", "add", str(ipv6), "dev", ifname, "nodad")
        run(node.ns, IP, "link", "set", ifname, "up")
        link = Link(node.role, ifname, segment, port, ipv4, ipv6)
        node.links[ifname] = link
        return link

    def add_veth(self, ns: str, ifname: str, peer: str | None = None) -> None:
        """A veth pair wholly inside `ns` (a stand-in interface with a given name)."""
        run(ns, IP, "link", "add", ifname, "type", "veth",
            "peer", "name", peer or f"vx{next(_counter)}")
        run(ns, IP, "link", "set", ifname, "up")

    def addresses(self, ns: str) -> list[dict[str, Any]]:
        return json.loads(run(ns, IP, "-j", "addr", "show").stdout or "[]")

    # -- processes

    def spawn(self, ns: str, *cmd: str | os.PathLike[str], log: Path | None = None,
              env: Mapping[str, str] | None = None) -> Process:
        """Start `cmd` in the background inside `ns`; stdout and stderr go to `log`."""
        argv = [str(c) for c in cmd]
        if log is None:
            log = self.workdir / f"{Path(argv[0]).name}.{len(self.processes)}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                [IP, "netns", "exec", ns, *argv], stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
                env=None if env is None else {**os.environ, **env})
        proc = Process(ns, argv, popen, log)
        self.processes.append(proc)
        return proc

    # -- capture

    @contextlib.contextmanager
    def capture(self, ns: str, ifname: str) -> Iterator[PacketCapture]:
        cap = PacketCapture(ns, ifname)
        try:
            yield cap
        finally:
            cap.close()

    # -- teardown

    def close(self) -> None:
        """Stop our processes, then delete our namespaces. Raises LabError listing
        anything that could not be cleaned up, after trying everything."""
        if self._closed:
            return
        self._closed = True
        problems: list[str] = []
        for proc in reversed(self.processes):
            if proc.stop(signal.SIGTERM, timeout=self.stop_timeout) is None:
                problems.append(f"pid {proc.pid} ({proc.argv[0]}) did not exit")
        for ns in reversed(self.namespaces):
            # Children our processes forked (a daemon's worker) live on in our namespace.
            for pid in pids_in_namespace(ns):
                problems.extend(terminate_pid(pid, self.stop_timeout))
            try:
                run(None, IP, "netns", "delete", ns)
            except LabError as exc:
                problems.append(str(exc))
        _open_labs.discard(self)
        if problems:
            raise LabError("lab teardown: " + "; ".join(problems))


def _names_interface(key: str) -> bool:
    parts = key.replace("/", ".").split(".")
    return (len(parts) > 4 and parts[0] == "net" and parts[1] in ("ipv4", "ipv6")
            and parts[2] in ("conf", "neigh") and parts[3] not in ("all", "default"))


def terminate_pid(pid: int, timeout: float = 3.0) -> list[str]:
    """SIGTERM, then SIGKILL, a process that is not our child (it cannot be waited for)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return []
        if _wait_gone(pid, timeout):
            return []
    return [f"pid {pid} left in a lab namespace did not exit"]


@atexit.register
def _close_forgotten_labs() -> None:
    for lab in list(_open_labs):
        with contextlib.suppress(Exception):
            lab.close()


# ---------------------------------------------------------------- packets


@dataclass(frozen=True)
class IPv4Packet:
    time: float  # kernel receive time, CLOCK_REALTIME seconds
    src: ipaddress.IPv4Address
    dst: ipaddress.IPv4Address
    proto: int
    ttl: int
    tos: int
    payload: bytes


class PacketCapture:
    """Frames received on one interface of a namespace (AF_PACKET, incoming only),
    each with the kernel's receive time (CLOCK_REALTIME seconds)."""

    def __init__(self, ns: str, ifname: str):
        self.sock = open_socket(ns, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.bind((ifname, ETH_P_ALL))
        self.sock.setblocking(False)
        self.frames: list[tuple[float, bytes]] = []

    def close(self) -> None:
        self.sock.close()

    def poll(self, timeout: float = 0.0, limit: int = 10_000) -> list[tuple[float, bytes]]:
        """Read what has arrived (waiting up to `timeout` for the first frame)."""
        got: list[tuple[float, bytes]] = []
        ready, _, _ = select.select([self.sock], [], [], timeout)
        while ready and len(got) < limit:
            try:
                data, ancillary, _flags, addr = self.sock.recvmsg(65535, socket.CMSG_SPACE(16))
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.ENETDOWN:
                    break
                raise
            if addr[2] != PACKET_OUTGOING:
                got.append((_receive_time(ancillary), data))
        self.frames.extend(got)
        return got

    def ipv4(self, proto: int | None = None) -> list[IPv4Packet]:
        """The IPv4 packets seen so far (reads pending frames first)."""
        self.poll()
        packets = []
        for when, frame in self.frames:
            if len(frame) < 34 or struct.unpack("!H", frame[12:14])[0] != ETH_P_IP:
                continue
            ip = frame[14:]
            ihl = (ip[0] & 0x0F) * 4
            total = struct.unpack("!H", ip[2:4])[0]
            if proto is not None and ip[9] != proto:
                continue
            packets.append(IPv4Packet(when, ipaddress.IPv4Address(ip[12:16]),
                                      ipaddress.IPv4Address(ip[16:20]), ip[9], ip[8], ip[1],
                                      ip[ihl:total]))
        return packets


def _receive_time(ancillary: list[tuple[int, int, bytes]]) -> float:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            return seconds + nanoseconds / 1e9
    return time.time()
