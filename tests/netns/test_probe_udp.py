"""UDP_CHECK against UDP servers on loopback: an echo server, a silent one, a closed port."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest

from checkers.spec import UdpCheck
from checkers.udp import DEFAULT_PAYLOAD
from tests.netns.servers.datagram import DatagramServer, DatagramServers, Reply, free_port, probe


@pytest.fixture
async def udp_server():
    servers = DatagramServers()

    async def start(reply: Reply, host: str = "127.0.0.1") -> tuple[DatagramServer, int]:
        return await servers.start(DatagramServer(reply), host)

    yield start
    servers.close()


def echo(data: bytes) -> list[bytes]:
    return [data]


def silent(data: bytes) -> list[bytes]:
    return []


def check(port: int, host: str = "127.0.0.1", timeout: float = 0.3, **fields) -> UdpCheck:
    return UdpCheck(connect_ip=ipaddress.ip_address(host), connect_port=port,
                    connect_timeout=timeout, **fields)


async def test_default_payload_and_any_reply(udp_server):
    server, port = await udp_server(echo)
    result = await probe(check(port))
    assert (result.ok, result.reason) == (True, f"UDP reply of 32 bytes from 127.0.0.1:{port}")
    assert server.received[0][0] == DEFAULT_PAYLOAD and len(DEFAULT_PAYLOAD) == 32


async def test_payload_is_sent_as_hex_says(udp_server):
    server, port = await udp_server(echo)
    assert (await probe(check(port, payload="deadbeef00"))).ok
    assert server.received[0][0] == bytes.fromhex("deadbeef00")


async def test_silence_is_success_without_require_reply(udp_server):
    _, port = await udp_server(silent)
    result = await probe(check(port))
    assert (result.ok, result.reason) == (
        True, f"no ICMP error from 127.0.0.1:{port} within 0.3 s")


async def test_silence_fails_with_require_reply(udp_server):
    _, port = await udp_server(silent)
    result = await probe(check(port, require_reply=True))
    assert (result.ok, result.reason) == (
        False, f"no UDP reply from 127.0.0.1:{port} within 0.3 s")


async def test_closed_port_fails_on_the_icmp_error(udp_server):
    port = free_port()
    for spec in (check(port), check(port, require_reply=True)):
        result = await probe(spec)
        assert (result.ok, result.reason) == (
            False, f"UDP to 127.0.0.1:{port}: ICMP port unreachable from 127.0.0.1")
        assert result.latency < 0.3  # at once, not at the deadline


async def test_closed_port_ipv6():
    port = free_port("::1")
    result = await probe(check(port, host="::1"))
    assert (result.ok, result.reason) == (
        False, f"UDP to [::1]:{port}: ICMP port unreachable from ::1")


async def test_required_reply_data_with_wildcards(udp_server):
    _, port = await udp_server(lambda data: [b"\x12\x34\x56\x78 and more"])
    result = await probe(check(port, require_reply=True, require_reply_data="12x45x"))
    assert (result.ok, result.reason) == (
        True, f"UDP reply of 13 bytes from 127.0.0.1:{port} as required")


async def test_required_reply_data_mismatch(udp_server):
    _, port = await udp_server(lambda data: [b"\x12\x44"])
    result = await probe(check(port, require_reply=True, require_reply_data="1234"))
    assert (result.ok, result.reason) == (
        False, f"UDP reply from 127.0.0.1:{port}: byte 1 is 0x44, expected 0x34")


async def test_reply_length_limits(udp_server):
    _, port = await udp_server(lambda data: [b"x" * 300])
    result = await probe(check(port, require_reply=True))
    assert (result.ok, result.reason) == (
        False, f"UDP reply from 127.0.0.1:{port}: 300 bytes, outside the 0..255 bytes allowed")
    _, port = await udp_server(lambda data: [b"ok"])
    result = await probe(check(port, require_reply=True, min_reply_length=4,
                               max_reply_length=10))
    assert (result.ok, result.reason) == (
        False, f"UDP reply from 127.0.0.1:{port}: 2 bytes, outside the 4..10 bytes allowed")
    result = await probe(check(port, require_reply=True, min_reply_length=2,
                               max_reply_length=2))
    assert result.ok


async def test_empty_reply_is_a_reply(udp_server):
    # asyncio will not send an empty datagram; a plain socket will.
    plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    plain.bind(("127.0.0.1", 0))
    plain.setblocking(False)
    port = plain.getsockname()[1]
    loop = asyncio.get_running_loop()

    async def serve() -> None:
        _data, addr = await loop.sock_recvfrom(plain, 100)
        await loop.sock_sendto(plain, b"", addr)

    try:
        server = asyncio.create_task(serve())
        result = await probe(check(port, require_reply=True))
        await server
    finally:
        plain.close()
    assert (result.ok, result.reason) == (
        True, f"UDP reply of 0 bytes from 127.0.0.1:{port} as required")


async def test_bind_address_and_port(udp_server):
    server, port = await udp_server(echo)
    source = free_port("127.0.0.4")
    spec = check(port, bindto=ipaddress.ip_address("127.0.0.4"), bind_port=source,
                 require_reply=True)
    assert (await probe(spec)).ok
    assert server.received[0][1] == ("127.0.0.4", source)


async def test_bad_payload_in_a_hand_made_spec():
    result = await probe(check(9, payload="zz"))
    assert (result.ok, result.reason) == (False, "UDP_CHECK configuration: 'zz' is not hex data")


async def test_bind_address_of_the_wrong_family():
    result = await probe(check(9, bindto=ipaddress.ip_address("::1")))
    assert (result.ok, result.reason) == (
        False, "cannot bind to ::1: not the address family of 127.0.0.1")


async def test_hand_made_spec_without_port_or_address():
    result = await probe(UdpCheck(connect_ip=ipaddress.ip_address("127.0.0.1")))
    assert (result.ok, result.reason) == (False, "no port to check (connect_port is not set)")
    result = await probe(UdpCheck(connect_port=9))
    assert (result.ok, result.reason) == (False, "no address to check (connect_ip is not set)")
