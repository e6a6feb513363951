"""DNS_CHECK against a small asyncio UDP DNS responder on loopback."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest

from checkers.dns_wire import (
    Header,
    Message,
    Question,
    Record,
    decode_message,
    encode_message,
)
from checkers.spec import DnsCheck, DnsType
from tests.netns.servers.datagram import DatagramServer, DatagramServers, free_port, probe

Behaviour = Callable[[Message, bytes], list[bytes]]


class Responder(DatagramServer):
    """Answers each query with what `behaviour(query, raw)` returns (zero or more
    datagrams) and keeps the queries it got."""

    def __init__(self, behaviour: Behaviour):
        super().__init__(self._answer)
        self.behaviour = behaviour
        self.queries: list[Message] = []

    def _answer(self, data: bytes) -> list[bytes]:
        query = decode_message(data)
        self.queries.append(query)
        return self.behaviour(query, data)


@pytest.fixture
async def dns_server():
    servers = DatagramServers()

    async def start(behaviour: Behaviour, host: str = "127.0.0.1") -> tuple[Responder, int]:
        return await servers.start(Responder(behaviour), host)

    yield start
    servers.close()


def reply(query: Message, *, rcode: int = 0, answers: int = 1, ident: int | None = None,
          qr: bool = True) -> bytes:
    q = query.header
    header = Header(id=q.id if ident is None else ident, qr=qr, rd=q.rd, ra=True, rcode=rcode)
    records = tuple(Record(query.questions[0].name, query.questions[0].qtype, 1, 60,
                           b"\x00" * 4) for _ in range(answers))
    return encode_message(Message(header, query.questions, records))


def answer(**kwargs) -> Behaviour:
    return lambda query, raw: [reply(query, **kwargs)]


def check(port: int, host: str = "127.0.0.1", timeout: float = 0.5, **fields) -> DnsCheck:
    return DnsCheck(connect_ip=ipaddress.ip_address(host), connect_port=port,
                    connect_timeout=timeout, **fields)


async def test_default_query_is_soa_for_the_root_with_recursion_desired(dns_server):
    responder, port = await dns_server(answer())
    result = await probe(check(port))
    assert (result.ok, result.reason) == (
        True, f"DNS SOA . answered NOERROR by 127.0.0.1:{port} (1 answer)")
    [query] = responder.queries
    assert query.questions == (Question(".", 6, 1),)
    assert (query.header.rd, query.header.qr, query.header.qdcount) == (True, False, 1)


async def test_query_type_and_name(dns_server):
    responder, port = await dns_server(answer(answers=2))
    result = await probe(check(port, type=DnsType.AAAA, name="www.example.com"))
    assert (result.ok, result.reason) == (
        True, f"DNS AAAA www.example.com answered NOERROR by 127.0.0.1:{port} (2 answers)")
    assert responder.queries[0].questions == (Question("www.example.com.", 28, 1),)


async def test_each_probe_uses_a_new_random_id(dns_server):
    responder, port = await dns_server(answer())
    for _ in range(4):
        assert (await probe(check(port))).ok
    assert len({q.header.id for q in responder.queries}) > 1


async def test_noerror_without_answers_passes_as_in_keepalived(dns_server):
    _, port = await dns_server(answer(answers=0))
    result = await probe(check(port, type=DnsType.MX, name="example.org"))
    assert (result.ok, result.reason) == (
        True, f"DNS MX example.org answered NOERROR by 127.0.0.1:{port} (0 answers)")


@pytest.mark.parametrize("rcode, name", [(3, "NXDOMAIN"), (2, "SERVFAIL"), (5, "REFUSED")])
async def test_error_rcodes_fail(dns_server, rcode, name):
    _, port = await dns_server(answer(rcode=rcode, answers=0))
    result = await probe(check(port, type=DnsType.A, name="nowhere.example"))
    assert (result.ok, result.reason) == (
        False, f"DNS A nowhere.example answered {name} (rcode {rcode}) by 127.0.0.1:{port}")


async def test_wrong_id_is_ignored_and_the_right_reply_still_counts(dns_server):
    _, port = await dns_server(lambda q, raw: [reply(q, ident=q.header.id ^ 1), reply(q)])
    assert (await probe(check(port))).ok


async def test_wrong_id_only_times_out_saying_what_was_ignored(dns_server):
    _, port = await dns_server(lambda q, raw: [reply(q, ident=q.header.id ^ 1)])
    result = await probe(check(port, timeout=0.3))
    assert (result.ok, result.reason) == (
        False, f"no DNS reply from 127.0.0.1:{port} within 0.3 s (ignored: 1 with another ID)")


async def test_truncated_garbage_and_echoed_queries_are_ignored(dns_server):
    def behaviour(query: Message, raw: bytes) -> list[bytes]:
        return [raw[:5], raw, b"\xff" * 3, raw[:11]]
    _, port = await dns_server(behaviour)
    result = await probe(check(port, timeout=0.3))
    assert (result.ok, result.reason) == (
        False, f"no DNS reply from 127.0.0.1:{port} within 0.3 s (ignored: "
               "3 too short for a DNS header, 1 not a response)")


async def test_garbage_after_a_good_header_passes_as_in_keepalived(dns_server):
    # keepalived judges the header only.
    _, port = await dns_server(lambda q, raw: [reply(q)[:12] + b"\xc0\xff garbage"])
    assert (await probe(check(port))).ok


async def test_silent_server(dns_server):
    _, port = await dns_server(lambda q, raw: [])
    result = await probe(check(port, timeout=0.3))
    assert (result.ok, result.reason) == (
        False, f"no DNS reply from 127.0.0.1:{port} within 0.3 s")
    assert result.latency >= 0.3


async def test_nothing_listening():
    port = free_port()
    result = await probe(check(port))
    assert (result.ok, result.reason) == (
        False, f"DNS server 127.0.0.1:{port} unreachable: ICMP port unreachable from 127.0.0.1")


async def test_ipv6(dns_server):
    _, port = await dns_server(answer(), "::1")
    result = await probe(check(port, host="::1"))
    assert (result.ok, result.reason) == (
        True, f"DNS SOA . answered NOERROR by [::1]:{port} (1 answer)")
    port = free_port("::1")
    result = await probe(check(port, host="::1"))
    assert (result.ok, result.reason) == (
        False, f"DNS server [::1]:{port} unreachable: ICMP port unreachable from ::1")


async def test_bind_address(dns_server):
    seen = []

    def behaviour(query: Message, raw: bytes) -> list[bytes]:
        return [reply(query)]

    responder, port = await dns_server(behaviour)
    original = responder.datagram_received
    responder.datagram_received = lambda data, addr: (seen.append(addr), original(data, addr))
    source_port = free_port("127.0.0.3")
    spec = check(port, bindto=ipaddress.ip_address("127.0.0.3"), bind_port=source_port)
    assert (await probe(spec)).ok
    assert seen == [("127.0.0.3", source_port)]


async def test_name_that_cannot_be_sent():
    result = await probe(check(53, name="a..b"))
    assert (result.ok, result.reason) == (
        False, "DNS_CHECK cannot ask SOA a..b: empty label in DNS name 'a..b'")
