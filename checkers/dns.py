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

import secrets

from checkers.dns_wire import DnsWireError, decode_header, encode_query
from checkers.probe import ProbeContext, ProbeResult
from checkers.probe_sockets import ProbeFailure, SocketError, seconds
from checkers.spec import DnsCheck
from checkers.udp_exchange import exchange, passing_icmp, target_of, timed_verdict


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


async def probe_dns(spec: DnsCheck, context: ProbeContext) -> ProbeResult:
    return await timed_verdict(_check(spec))


async def _check(spec: DnsCheck) -> tuple[bool, str]:
    where = target_of(spec)
    question = f"{spec.type} {spec.name}"
    query_id = secrets.randbits(16)
    try:
        query = encode_query(query_id, spec.name, str(spec.type))
    except DnsWireError as exc:
        raise ProbeFailure(f"DNS_CHECK cannot ask {question}: {exc}") from None
    target = where.target
    timeout = spec.connect_timeout
    with exchange(where, query, timeout, "the DNS query") as answers:
        ignored: dict[str, int] = {}
        async for got in answers:
            if isinstance(got, SocketError):
                icmp = passing_icmp(got)
                if icmp is not None:
                    why = f"ICMP {icmp.describe()}"
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
