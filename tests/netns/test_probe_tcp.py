"""TCP_CHECK against real sockets: listeners on loopback, and a namespace where SYNs go
unanswered, routes are missing or unreachable, and a firewall mark picks a route."""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from checkers.probe import ProbeContext, ProbeResult, run_probe
from checkers.spec import TcpCheck
from tests.netns.lab import Lab
from tests.netns.servers.netns import (
    BLACKHOLE,
    BLACKHOLE6,
    MARK,
    NO_ROUTE,
    UNREACHABLE,
    run_in_namespace,
    unreachable_namespace,
)
from tests.netns.servers.process import closed_port, ipv6_loopback

CONTEXT = ProbeContext()


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def tcp(address: str, port: int, **options) -> TcpCheck:
    return TcpCheck(connect_ip=ipaddress.ip_address(address), connect_port=port,
                    connect_timeout=options.pop("connect_timeout", 2.0), **options)


async def probe(spec: TcpCheck) -> ProbeResult:
    """Run the probe; no file descriptor may be left behind."""
    before = fds()
    result = await run_probe(spec, CONTEXT)
    assert fds() == before, "the probe leaked a file descriptor"
    return result


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.settimeout(5)
        yield sock


def peer_of_next_connection(listener: socket.socket) -> tuple[str, int]:
    conn, peer = listener.accept()
    conn.close()
    return peer


async def test_an_open_port_is_up(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    result = await probe(tcp("127.0.0.1", port))
    assert (result.ok, result.reason) == (True, f"connected to 127.0.0.1:{port}")
    assert 0 <= result.latency < 1
    peer_of_next_connection(listener)  # the connection really was made


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 on loopback")
async def test_ipv6() -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
        sock.bind(("::1", 0))
        sock.listen(4)
        port = sock.getsockname()[1]
        result = await probe(tcp("::1", port))
    assert (result.ok, result.reason) == (True, f"connected to [::1]:{port}")
    refused = await probe(tcp("::1", closed_port("::1")))
    assert (refused.ok, refused.reason) == (False, "connection refused")


async def test_a_closed_port_is_refused() -> None:
    result = await probe(tcp("127.0.0.1", closed_port()))
    assert (result.ok, result.reason) == (False, "connection refused")


async def test_bindto_and_bind_port_set_the_source(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    source_port = closed_port("127.0.0.2")
    result = await probe(tcp("127.0.0.1", port, bindto=ipaddress.ip_address("127.0.0.2"),
                             bind_port=source_port))
    assert result.ok, result.reason
    assert peer_of_next_connection(listener) == ("127.0.0.2", source_port)


async def test_bind_failures_are_reported(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    foreign = await probe(tcp("127.0.0.1", port, bindto=ipaddress.ip_address("192.0.2.99")))
    assert (foreign.ok, foreign.reason) == (
        False, "cannot bind to 192.0.2.99: Cannot assign requested address")
    family = await probe(tcp("127.0.0.1", port, bindto=ipaddress.ip_address("::1")))
    assert (family.ok, family.reason) == (
        False, "cannot bind to ::1: not the address family of 127.0.0.1")


async def test_bind_if(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    on_lo = await probe(tcp("127.0.0.1", port, bind_if="lo"))
    assert on_lo.ok, on_lo.reason
    peer_of_next_connection(listener)
    missing = await probe(tcp("127.0.0.1", port, bind_if="nosuch0"))
    assert (missing.ok, missing.reason) == (
        False, "cannot bind to interface nosuch0: No such device")


async def test_no_address_or_port() -> None:
    assert (await probe(TcpCheck(connect_port=80))).reason == (
        "no address to check (connect_ip is not set)")
    assert (await probe(tcp("127.0.0.1", 0))).reason == (
        "no port to check (connect_port is not set)")


# ---------------------------------------------------------------- in a namespace


@pytest.fixture(scope="module")
def netlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with Lab(Path(tmp_path_factory.mktemp("lab"))) as lab:
        yield unreachable_namespace(lab, "tcp")


def probe_in(ns: str, spec: TcpCheck) -> tuple[ProbeResult, float]:
    async def go() -> tuple[ProbeResult, float]:
        started = time.monotonic()
        return await probe(spec), time.monotonic() - started
    return run_in_namespace(ns, go)


@pytest.mark.parametrize("address", [BLACKHOLE, BLACKHOLE6])
def test_unanswered_syns_time_out_at_connect_timeout(netlab: str, address: str) -> None:
    result, elapsed = probe_in(netlab, tcp(address, 80, connect_timeout=1.0))
    assert (result.ok, result.reason) == (False, "connect timeout after 1.0 s")
    assert 1.0 <= elapsed < 1.5


def test_unreachable_routes(netlab: str) -> None:
    result, elapsed = probe_in(netlab, tcp(UNREACHABLE, 80))
    assert (result.ok, result.reason) == (False, "no route to host")
    assert elapsed < 0.5
    result, elapsed = probe_in(netlab, tcp(NO_ROUTE, 80))
    assert (result.ok, result.reason) == (False, "network unreachable")
    assert elapsed < 0.5


def test_fwmark_marks_the_probes_packets(netlab: str) -> None:
    marked, elapsed = probe_in(netlab, tcp(BLACKHOLE, 80, fwmark=MARK, connect_timeout=1.0))
    assert (marked.ok, marked.reason) == (False, "no route to host")  # table 100 was used
    assert elapsed < 0.5
    other, _ = probe_in(netlab, tcp(BLACKHOLE, 80, fwmark=MARK + 1, connect_timeout=0.3))
    assert other.reason == "connect timeout after 0.3 s"
