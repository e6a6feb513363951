"""DNS_CHECK: one query over UDP, judged the way keepalived 2.2.7 judges it.

The query asks for (``name``, ``type``, IN) with recursion desired and a random ID,
from a connected socket (so only the server's address and port can answer). Until
connect_timeout, each datagram that comes back is read:
- shorter than a DNS header, with another ID, or not a response (QR clear): ignored,
  the probe keeps waiting (the reason on timeout says how many were ignored and why);
- a response with RCODE other than NOERROR: failure ("NXDOMAIN", "SERVFAIL", ...);
- a response with NOERROR: success. As in keepalived, only the header is judged: an
  answer section is not required (a NOERROR reply without records, NODATA, passes)
  and the rest of the message is not parsed.
An ICMP destination unreachable error (nothing listening, no route) is a failure.
Retries are the scheduler's (DNS_CHECK's retry defaults to 3 there).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import time

from checkers.dns_wire import DnsWireError, decode_header, encode_query
from checkers.probe import ProbeContext, ProbeResult
from checkers.probe_sockets import (
    ProbeFailure,
    SocketError,
    connect_datagram,
    endpoint,
    open_socket,
    receive,
    seconds,
    strerror,
)
from checkers.spec import DnsCheck

_RECEIVE_SIZE = 65535
_MAX_DATAGRAMS = 1000  # bound on datagrams read in one check


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


async def probe_dns(spec: DnsCheck, context: ProbeContext) -> ProbeResult:
    started = time.monotonic()
    try:
        ok, reason = await _check(spec)
    except ProbeFailure as failure:
        ok, reason = False, str(failure)
    return ProbeResult(ok, reason, time.monotonic() - started)


async def _check(spec: DnsCheck) -> tuple[bool, str]:
    where = endpoint(spec.connect_ip, spec.connect_port, bindto=spec.bindto,
                     bind_port=spec.bind_port, bind_if=spec.bind_if, fwmark=spec.fwmark,
                     require_port=True)
    question = f"{spec.type} {spec.name}"
    query_id = secrets.randbits(16)
    try:
        query = encode_query(query_id, spec.name, str(spec.type))
    except DnsWireError as exc:
        raise ProbeFailure(f"DNS_CHECK cannot ask {question}: {exc}") from None
    target = where.target
    timeout = spec.connect_timeout
    deadline = asyncio.get_running_loop().time() + timeout
    sock = open_socket(where, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        connect_datagram(sock, where)
        try:
            sock.send(query)
        except OSError as exc:
            return False, f"cannot send the DNS query to {target}: {strerror(exc.errno)}"
        ignored: dict[str, int] = {}
        for _ in range(_MAX_DATAGRAMS):
            got = await receive(sock, _RECEIVE_SIZE, deadline)
            if got is None:
                break
            if isinstance(got, SocketError):
                if got.icmp is not None and got.icmp.is_icmp and not got.icmp.is_unreachable:
                    why = f"ICMP {got.icmp.describe()}"
                    ignored[why] = ignored.get(why, 0) + 1
                    continue
                return False, f"DNS server {target} unreachable: {got.describe()}"
            why = _ignore(got, query_id)
            if why is not None:
                ignored[why] = ignored.get(why, 0) + 1
                continue
            header = decode_header(got)
            if header.rcode != 0:
                return False, (f"DNS {question} answered {header.rcode_name} "
                               f"(rcode {header.rcode}) by {target}")
            return True, (f"DNS {question} answered NOERROR by {target} "
                          f"({_plural(header.ancount, 'answer')})")
        detail = ""
        if ignored:
            parts = ", ".join(f"{count} {why}" for why, count in ignored.items())
            detail = f" (ignored: {parts})"
        return False, f"no DNS reply from {target} within {seconds(timeout)} s{detail}"
    finally:
        sock.close()


def _ignore(datagram: bytes, query_id: int) -> str | None:
    """Why keepalived would ignore this datagram, or None when it is our response."""
    try:
        header = decode_header(datagram)
    except DnsWireError:
        return "too short for a DNS header"
    if header.id != query_id:
        return "with another ID"
    if not header.qr:
        return "not a response"
    return None
