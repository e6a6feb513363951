"""PING_CHECK: echoes to loopback, and inside a lab to a server that answers, one that
ignores pings, an address nobody has and a network with no route."""

from __future__ import annotations

import asyncio
import ctypes
import ipaddress
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from checkers.ping import PingMode, ping_once
from checkers.probe import ProbeContext, ProbeResult, run_probe
from checkers.probe_sockets import ProbeFailure, endpoint
from checkers.spec import PingCheck
from tests.netns.lab import NETNS_DIR, Lab

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def in_namespace(ns: str, work: Callable[[], Awaitable[T]], timeout: float = 30) -> T:
    """Run the coroutine `work()` on an event loop of its own, in a thread that has
    moved into namespace `ns`: every socket it opens lives there. The thread ends with
    the work, so no other code ever runs in that namespace."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            fd = os.open(NETNS_DIR / ns, os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err))
            finally:
                os.close(fd)
            outcome["value"] = asyncio.run(work())
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=f"in-{ns}")
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"work in {ns} did not end within {timeout} s"
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


async def probe(spec: PingCheck) -> ProbeResult:
    before = fd_count()
    result = await run_probe(spec, ProbeContext())
    assert fd_count() == before, "file descriptors leaked"
    return result


async def once(address: str, timeout: float, mode: PingMode) -> tuple[bool, str]:
    before = fd_count()
    outcome = await ping_once(endpoint(address), timeout, mode=mode)
    assert fd_count() == before, "file descriptors leaked"
    return outcome


def ping(address: str, timeout: float = 1.0, **fields) -> PingCheck:
    return PingCheck(connect_ip=ipaddress.ip_address(address), connect_timeout=timeout,
                     **fields)


async def test_loopback_v4_and_v6():
    result = await probe(ping("127.0.0.1"))
    assert (result.ok, result.reason) == (True, "ICMP echo reply from 127.0.0.1")
    result = await probe(ping("::1"))
    assert (result.ok, result.reason) == (True, "ICMPv6 echo reply from ::1")


@pytest.mark.parametrize("mode", [PingMode.RAW, PingMode.DGRAM])
async def test_loopback_with_each_kind_of_socket(mode):
    if mode is PingMode.DGRAM:
        text = Path("/proc/sys/net/ipv4/ping_group_range").read_text()
        low, high = map(int, text.split())
        if not low <= os.getgid() <= high:
            pytest.skip("ping sockets are not allowed for our group here")
    assert await once("127.0.0.1", 1.0, mode) == (True, "ICMP echo reply from 127.0.0.1")
    assert await once("::1", 1.0, mode) == (True, "ICMPv6 echo reply from ::1")


async def test_bind_to_a_missing_interface():
    result = await probe(ping("127.0.0.1", bind_if="nosuch0"))
    assert (result.ok, result.reason) == (False, "cannot bind to interface nosuch0: No such device")


@pytest.fixture
def pair(lab: Lab):
    """A director and a real server on one segment; the director answers fast when a
    neighbour is missing (one ARP/ND probe of 100 ms)."""
    director = lab.add_node("dir", sysctls={
        "net.ipv4.neigh.eth0.mcast_solicit": 1, "net.ipv4.neigh.eth0.retrans_time_ms": 100,
        "net.ipv6.neigh.eth0.mcast_solicit": 1, "net.ipv6.neigh.eth0.retrans_time_ms": 100})
    server = lab.add_node("rs")
    return director, server


def test_real_server_in_a_namespace_answers(pair):
    director, server = pair
    v4, v6 = str(server.ipv4.ip), str(server.ipv6.ip)
    # A fresh namespace admits no group to ping sockets: the raw socket is used.
    assert director.run("sysctl", "-n", "net.ipv4.ping_group_range").stdout.split() == \
        ["1", "0"]
    result = in_namespace(director.ns, lambda: probe(ping(v4)))
    assert (result.ok, result.reason) == (True, f"ICMP echo reply from {v4}")
    result = in_namespace(director.ns, lambda: probe(ping(v6)))
    assert (result.ok, result.reason) == (True, f"ICMPv6 echo reply from {v6}")
    director.sysctl({"net.ipv4.ping_group_range": "0 2147483647"})
    for address, protocol in ((v4, "ICMP"), (v6, "ICMPv6")):
        outcome = in_namespace(director.ns, lambda a=address: once(a, 1.0, PingMode.DGRAM))
        assert outcome == (True, f"{protocol} echo reply from {address}")


def test_ping_socket_not_allowed_for_our_group(pair):
    director, server = pair
    with pytest.raises(ProbeFailure) as failure:
        in_namespace(director.ns, lambda: ping_once(endpoint(str(server.ipv4.ip)), 1.0,
                                                    mode=PingMode.DGRAM))
    assert str(failure.value) == "cannot open a ping socket: Permission denied"


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_server_ignoring_pings_times_out(pair, family):
    director, server = pair
    server.sysctl({"net.ipv4.icmp_echo_ignore_all": 1, "net.ipv6.icmp.echo_ignore_all": 1})
    address = str(getattr(server, family).ip)
    protocol = "ICMP" if family == "ipv4" else "ICMPv6"
    result = in_namespace(director.ns, lambda: probe(ping(address, timeout=0.5)))
    assert (result.ok, result.reason) == (
        False, f"no {protocol} echo reply from {address} within 0.5 s")
    assert 0.5 <= result.latency < 2.0


@pytest.mark.parametrize("mode", [PingMode.RAW, PingMode.DGRAM])
def test_address_nobody_has_is_host_unreachable(pair, mode):
    director, _server = pair
    director.sysctl({"net.ipv4.ping_group_range": "0 2147483647"})
    own = str(director.ipv4.ip)
    outcome = in_namespace(director.ns, lambda: once("192.0.2.200", 3.0, mode))
    assert outcome == (False, "no ICMP echo reply from 192.0.2.200: "
                              f"ICMP host unreachable from {own}")


def test_network_without_route(pair):
    director, _server = pair
    director.run("ip", "route", "add", "unreachable", "203.0.113.0/24")
    result = in_namespace(director.ns, lambda: probe(ping("203.0.113.9")))
    assert (result.ok, result.reason) == (False, "cannot reach 203.0.113.9: No route to host")


def test_fwmark_selects_the_route(pair):
    director, server = pair
    # Marked packets look up a table where the server's network is unreachable.
    director.run("ip", "rule", "add", "fwmark", "7", "table", "100")
    director.run("ip", "route", "add", "unreachable", "192.0.2.0/24", "table", "100")
    address = str(server.ipv4.ip)
    result = in_namespace(director.ns, lambda: probe(ping(address, fwmark=7)))
    assert (result.ok, result.reason) == (False, f"cannot reach {address}: No route to host")
    result = in_namespace(director.ns, lambda: probe(ping(address, fwmark=8)))
    assert (result.ok, result.reason) == (True, f"ICMP echo reply from {address}")


def test_bindto_sets_the_source_address(pair, lab):
    director, server = pair
    lab.connect(director, "lan", "eth1")  # a second address on the segment
    second = director.links["eth1"].ipv4.ip
    with lab.capture(server.ns, "eth0") as capture:
        result = in_namespace(director.ns, lambda: probe(ping(str(server.ipv4.ip),
                                                               bindto=second)))
        assert result.ok
        requests = [p for p in capture.ipv4(proto=1) if p.dst == server.ipv4.ip]
    assert requests and all(p.src == second for p in requests)
