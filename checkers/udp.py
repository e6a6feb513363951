"""UDP_CHECK: send one datagram to the real server, as keepalived 2.2.7 does.

- The datagram is ``payload`` (hex, two digits a byte), else 32 bytes of filler
  (keepalived sends its own filler text when no payload is set).
- The socket is connected and asks for ICMP errors. A *destination unreachable* error
  (port, host, network unreachable, prohibited, ...) fails the check at once, with
  the ICMP message and its sender in the reason.
- Without ``require_reply``: a reply of any kind, or silence until connect_timeout,
  is success (keepalived's rule: only an ICMP error means down).
- With ``require_reply``: a reply must come within connect_timeout; its length must be
  within ``min_reply_length``..``max_reply_length``; with ``require_reply_data`` its
  first bytes must match the data (up to the shorter of the two, as keepalived
  compares), where an ``x`` digit matches any nibble.

Differences from keepalived, both toward telling the truth: other ICMP errors (time
exceeded, parameter problem) do not count as success at once, the probe keeps waiting
for the reply or the deadline; and the reply length is checked whenever
``require_reply`` is set, as keepalived.conf(5) says (keepalived 2.2.7 itself checks
it only when reply data is given).
"""

from __future__ import annotations

from dataclasses import dataclass

from checkers.probe import ProbeContext, ProbeResult
from checkers.probe_sockets import ProbeFailure, SocketError, seconds
from checkers.spec import UdpCheck
from checkers.udp_exchange import exchange, passing_icmp, target_of, timed_verdict

DEFAULT_PAYLOAD = b"lvs-director UDP_CHECK probe - \n"  # 32 bytes, like keepalived's filler


@dataclass(frozen=True, slots=True)
class ReplyPattern:
    """Expected reply bytes; a 0 bit in `mask` is a bit that may have any value."""

    data: bytes
    mask: bytes


def parse_hex(text: str) -> bytes:
    """Bytes from hex digits, two per byte (whitespace ignored; a last odd digit is a
    byte of its own, as keepalived reads it). Raises ValueError."""
    pattern = parse_pattern(text, wildcard=False)
    return pattern.data


def parse_pattern(text: str, *, wildcard: bool = True) -> ReplyPattern:
    """A reply pattern from hex digits where ``x`` (with `wildcard`) is any nibble.
    Raises ValueError."""
    data = bytearray()
    mask = bytearray()
    for word in text.split():
        for i in range(0, len(word), 2):
            pair = word[i:i + 2].lower()
            if len(pair) == 1:
                pair = "0" + pair
            value = care = 0
            for digit in pair:
                value <<= 4
                care <<= 4
                if digit == "x" and wildcard:
                    continue
                if digit not in "0123456789abcdef":
                    raise ValueError(f"{word!r} is not hex data")
                value |= int(digit, 16)
                care |= 0xF
            data.append(value)
            mask.append(care)
    return ReplyPattern(bytes(data), bytes(mask))


def reply_problem(reply: bytes, spec: UdpCheck, pattern: ReplyPattern | None) -> str | None:
    """What is wrong with a reply under `spec`'s rules, or None when it passes."""
    if not spec.min_reply_length <= len(reply) <= spec.max_reply_length:
        return (f"{len(reply)} bytes, outside the {spec.min_reply_length}.."
                f"{spec.max_reply_length} bytes allowed")
    if pattern is not None:
        for offset in range(min(len(reply), len(pattern.data))):
            if (reply[offset] ^ pattern.data[offset]) & pattern.mask[offset]:
                return (f"byte {offset} is 0x{reply[offset]:02x}, expected "
                        f"{_expected(pattern, offset)}")
    return None


def _expected(pattern: ReplyPattern, offset: int) -> str:
    digits = f"{pattern.data[offset]:02x}"
    mask = pattern.mask[offset]
    return "0x" + "".join("x" if not (mask >> shift) & 0xF else digit
                          for digit, shift in zip(digits, (4, 0), strict=True))


async def probe_udp(spec: UdpCheck, context: ProbeContext) -> ProbeResult:
    return await timed_verdict(_check(spec))


async def _check(spec: UdpCheck) -> tuple[bool, str]:
    where = target_of(spec)
    try:
        payload = DEFAULT_PAYLOAD if spec.payload is None else parse_hex(spec.payload)
        pattern = (parse_pattern(spec.require_reply_data)
                   if spec.require_reply and spec.require_reply_data else None)
    except ValueError as exc:
        raise ProbeFailure(f"UDP_CHECK configuration: {exc}") from None
    target = where.target
    timeout = spec.connect_timeout
    with exchange(where, payload, timeout, "UDP") as answers:
        ignored = 0
        async for got in answers:
            if isinstance(got, SocketError):
                if passing_icmp(got) is not None:
                    ignored += 1
                    continue
                return False, f"UDP to {target}: {got.describe()}"
            if not spec.require_reply:
                return True, f"UDP reply of {len(got)} bytes from {target}"
            problem = reply_problem(got, spec, pattern)
            if problem is not None:
                return False, f"UDP reply from {target}: {problem}"
            return True, f"UDP reply of {len(got)} bytes from {target} as required"
        if spec.require_reply:
            extra = f" ({ignored} ICMP errors ignored)" if ignored else ""
            return False, f"no UDP reply from {target} within {seconds(timeout)} s{extra}"
        return True, f"no ICMP error from {target} within {seconds(timeout)} s"
