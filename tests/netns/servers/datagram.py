"""UDP servers on the test's own event loop, and the leak-checked probe run, for the
probes that speak UDP (UDP_CHECK, DNS_CHECK)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from typing import TypeVar

from checkers.probe import ProbeContext, ProbeResult, run_probe
from checkers.spec import CheckerSpec

Reply = Callable[[bytes], list[bytes]]
S = TypeVar("S", bound="DatagramServer")


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def free_port(host: str = "127.0.0.1") -> int:
    """A UDP port nothing listens on (just released by us)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


async def probe(spec: CheckerSpec) -> ProbeResult:
    """`run_probe` with a default context, failing the test if it leaks a descriptor."""
    before = fd_count()
    result = await run_probe(spec, ProbeContext())
    assert fd_count() == before, "file descriptors leaked"
    return result


class DatagramServer(asyncio.DatagramProtocol):
    """Answers each datagram with what `reply(data)` returns (zero or more datagrams)
    and keeps (data, sender) of each it got."""

    def __init__(self, reply: Reply):
        self.reply = reply
        self.received: list[tuple[bytes, tuple]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.received.append((data, addr))
        for datagram in self.reply(data):
            self.transport.sendto(datagram, addr)


class DatagramServers:
    """Servers started on the running loop, all stopped by `close()`."""

    def __init__(self) -> None:
        self.transports: list[asyncio.DatagramTransport] = []

    async def start(self, server: S, host: str = "127.0.0.1") -> tuple[S, int]:
        """Serve `server` on an ephemeral port of `host`; returns it and the port."""
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: server, local_addr=(host, 0))
        self.transports.append(transport)
        return server, transport.get_extra_info("sockname")[1]

    def close(self) -> None:
        for transport in self.transports:
            transport.close()
