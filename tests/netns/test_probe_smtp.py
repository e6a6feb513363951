"""SMTP_CHECK against small asyncio SMTP servers on loopback, one behaviour each."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import struct
import time
from collections.abc import Awaitable, Callable

import pytest

from checkers.probe import ProbeContext, ProbeResult, run_probe
from checkers.spec import SmtpCheck, SmtpHost

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, list[bytes]], Awaitable[None]]


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


async def fds_back_to(count: int) -> int:
    """The fd count once the servers' ends have closed too (bounded wait)."""
    for _ in range(100):
        if fd_count() <= count:
            break
        await asyncio.sleep(0.02)
    return fd_count()


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class SmtpServer:
    """A listening socket whose connections run `script`; every line a client sent is
    kept in `received`, every client address in `peers`."""

    def __init__(self, script: Script, host: str = "127.0.0.1"):
        self.script = script
        self.host = host
        self.received: list[bytes] = []
        self.peers: list[tuple] = []
        self.tasks: set[asyncio.Task] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> SmtpServer:
        self.server = await asyncio.start_server(self._handle, self.host, 0)
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    @property
    def target(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.peers.append(writer.get_extra_info("peername"))
        try:
            await self.script(reader, writer, self.received)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self.tasks.discard(task)

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()


@pytest.fixture
async def smtp_server():
    servers: list[SmtpServer] = []

    async def start(script: Script, host: str = "127.0.0.1") -> SmtpServer:
        server = await SmtpServer(script, host).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 received: list[bytes], reply: bytes) -> None:
    line = await reader.readline()
    received.append(line)
    if line:
        writer.write(reply)
        await writer.drain()


async def good(reader, writer, received, banner=b"220 mail.test ESMTP ready\r\n"):
    writer.write(banner)
    await writer.drain()
    await answer(reader, writer, received, b"250 mail.test\r\n")
    await answer(reader, writer, received, b"221 2.0.0 bye\r\n")


def check(server: SmtpServer, timeout: float = 0.5, **fields) -> SmtpCheck:
    return SmtpCheck(connect_ip=ipaddress.ip_address(server.host), connect_port=server.port,
                     connect_timeout=timeout, **fields)


async def probe(spec: SmtpCheck) -> ProbeResult:
    before = fd_count()
    result = await run_probe(spec, ProbeContext())
    assert await fds_back_to(before) == before, "file descriptors leaked"
    return result


async def test_good_server_passes_and_hears_helo_then_quit(smtp_server):
    server = await smtp_server(good)
    result = await probe(check(server))
    assert (result.ok, result.reason) == (True, f"SMTP banner 220, HELO 250, QUIT 221 from "
                                                f"{server.target}")
    assert server.received == [b"HELO smtpchecker.keepalived.org\r\n", b"QUIT\r\n"]


async def test_helo_name_is_sent(smtp_server):
    server = await smtp_server(good)
    assert (await probe(check(server, helo_name="director.example"))).ok
    assert server.received[0] == b"HELO director.example\r\n"


async def test_ipv6_server(smtp_server):
    server = await smtp_server(good, "::1")
    result = await probe(check(server))
    assert (result.ok, result.reason) == (True, f"SMTP banner 220, HELO 250, QUIT 221 from "
                                                f"[::1]:{server.port}")


async def test_multi_line_banner_is_one_reply(smtp_server):
    async def script(reader, writer, received):
        await good(reader, writer, received, banner=b"220-mail.test ESMTP\r\n220-no UCE\r\n"
                                                    b"220 ready\r\n")
    server = await smtp_server(script)
    assert (await probe(check(server))).ok


async def test_bad_banner(smtp_server):
    async def script(reader, writer, received):
        writer.write(b"554 5.3.2 no service here\r\n")
        await writer.drain()
        await reader.read(100)
    server = await smtp_server(script)
    result = await probe(check(server))
    assert (result.ok, result.reason) == (
        False, f'SMTP banner 554 from {server.target}: "554 5.3.2 no service here"')


async def test_helo_refused(smtp_server):
    async def script(reader, writer, received):
        writer.write(b"220 hi\r\n")
        await answer(reader, writer, received, b"550 5.7.1 go away\r\n")
        await reader.read(100)
    server = await smtp_server(script)
    result = await probe(check(server))
    assert (result.ok, result.reason) == (
        False, f'SMTP HELO reply 550 from {server.target}: "550 5.7.1 go away"')


async def test_quit_reply_code_is_not_judged_but_must_come(smtp_server):
    async def odd_quit(reader, writer, received):
        writer.write(b"220 hi\r\n")
        await answer(reader, writer, received, b"250 ok\r\n")
        await answer(reader, writer, received, b"500 what\r\n")

    async def no_quit_reply(reader, writer, received):
        writer.write(b"220 hi\r\n")
        await answer(reader, writer, received, b"250 ok\r\n")
        received.append(await reader.readline())

    server = await smtp_server(odd_quit)
    result = await probe(check(server))
    assert (result.ok, result.reason) == (True, f"SMTP banner 220, HELO 250, QUIT 500 from "
                                                f"{server.target}")
    server = await smtp_server(no_quit_reply)
    result = await probe(check(server))
    assert (result.ok, result.reason) == (
        False, f"SMTP connection closed by {server.target} before the reply to QUIT")


async def test_silent_server_times_out(smtp_server):
    async def script(reader, writer, received):
        await reader.read()  # until the client gives up
    server = await smtp_server(script)
    started = time.monotonic()
    result = await probe(check(server, timeout=0.3))
    assert (result.ok, result.reason) == (
        False, f"no SMTP banner from {server.target} within 0.3 s")
    assert time.monotonic() - started < 2


async def test_dribbled_banner_is_cut_off_at_the_deadline(smtp_server):
    async def script(reader, writer, received):
        for byte in b"220 " + b"x" * 200 + b"\r\n":
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.02)
    server = await smtp_server(script)
    result = await probe(check(server, timeout=0.4))
    assert (result.ok, result.reason) == (
        False, f"no SMTP banner from {server.target} within 0.4 s")
    assert result.latency < 1.0  # one deadline for the reply, not one per byte


async def test_slow_helo_reply_times_out(smtp_server):
    async def script(reader, writer, received):
        writer.write(b"220 hi\r\n")
        received.append(await reader.readline())
        await reader.read()
    server = await smtp_server(script)
    result = await probe(check(server, timeout=0.3))
    assert (result.ok, result.reason) == (
        False, f"no SMTP reply to HELO from {server.target} within 0.3 s")


async def test_server_closing_before_the_banner(smtp_server):
    async def script(reader, writer, received):
        pass
    server = await smtp_server(script)
    result = await probe(check(server))
    assert (result.ok, result.reason) == (
        False, f"SMTP connection closed by {server.target} before the banner")


async def test_server_closing_after_helo(smtp_server):
    async def script(reader, writer, received):
        writer.write(b"220 hi\r\n")
        received.append(await reader.readline())
    server = await smtp_server(script)
    result = await probe(check(server))
    assert (result.ok, result.reason) == (
        False, f"SMTP connection closed by {server.target} before the reply to HELO")


async def test_server_resetting_the_connection(smtp_server):
    async def script(reader, writer, received):
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    server = await smtp_server(script)
    result = await probe(check(server))
    assert (result.ok, result.reason) == (
        False, f"SMTP connection to {server.target} failed before the banner: "
               "Connection reset by peer")


async def test_garbage_banner(smtp_server):
    async def script(reader, writer, received):
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
    server = await smtp_server(script)
    result = await probe(check(server))
    assert (result.ok, result.reason) == (
        False, f'SMTP banner from {server.target} is not an SMTP reply: '
               '"HTTP/1.1 400 Bad Request"')


async def test_endless_banner_line(smtp_server):
    async def script(reader, writer, received):
        writer.write(b"220 " + b"y" * 5000)
        await writer.drain()
        await reader.read()
    server = await smtp_server(script)
    result = await probe(check(server))
    assert not result.ok
    assert result.reason.startswith(
        f'SMTP banner from {server.target} is a reply line longer than 2048 bytes: "220 yyy')


async def test_connection_refused():
    port = free_port()
    result = await probe(SmtpCheck(connect_ip=ipaddress.ip_address("127.0.0.1"),
                                   connect_port=port, connect_timeout=0.5))
    assert (result.ok, result.reason) == (False, f"connection refused by 127.0.0.1:{port}")


def host(server: SmtpServer, **fields) -> SmtpHost:
    return SmtpHost(connect_ip=ipaddress.ip_address(server.host), connect_port=server.port,
                    connect_timeout=0.5, **fields)


async def test_every_host_must_pass(smtp_server):
    first, second = await smtp_server(good), await smtp_server(good)
    spec = SmtpCheck(hosts=(host(first), host(second)))
    result = await probe(spec)
    assert (result.ok, result.reason) == (
        True, f"SMTP banner, HELO and QUIT answered by {first.target}, {second.target}")
    assert len(first.received) == len(second.received) == 2

    async def refuse(reader, writer, received):
        writer.write(b"421 busy\r\n")
        await writer.drain()
    third = await smtp_server(refuse)
    result = await probe(SmtpCheck(hosts=(host(first), host(third), host(second))))
    assert (result.ok, result.reason) == (False, f'SMTP banner 421 from {third.target}: '
                                                 '"421 busy"')
    assert len(second.received) == 2  # hosts after a failed one are not tried


async def test_bind_address_and_port(smtp_server):
    server = await smtp_server(good)
    port = free_port("127.0.0.2")
    spec = SmtpCheck(hosts=(host(server, bindto=ipaddress.ip_address("127.0.0.2"),
                                 bind_port=port),))
    assert (await probe(spec)).ok
    assert server.peers == [("127.0.0.2", port)]


async def test_bind_to_an_address_that_is_not_ours(smtp_server):
    server = await smtp_server(good)
    spec = SmtpCheck(hosts=(host(server, bindto=ipaddress.ip_address("192.0.2.77")),))
    result = await probe(spec)
    assert (result.ok, result.reason) == (
        False, "cannot bind to 192.0.2.77: Cannot assign requested address")


async def test_bind_to_a_missing_interface(smtp_server):
    server = await smtp_server(good)
    result = await probe(check(server, bind_if="nosuch0"))
    assert (result.ok, result.reason) == (
        False, "cannot bind to interface nosuch0: No such device")


async def test_hand_made_spec_without_address():
    result = await probe(SmtpCheck(connect_port=25))
    assert (result.ok, result.reason) == (False, "no address to check (connect_ip is not set)")
