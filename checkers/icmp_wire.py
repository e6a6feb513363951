"""ICMP and ICMPv6 on the wire, for PING_CHECK and for reading ICMP errors: sans-IO.

- `encode_echo_request` / `decode_icmp`: echo requests and whatever comes back (an
  echo reply, or an error that quotes the datagram that caused it).
- `strip_ipv4_header`: what a raw IPv4 socket returns is the IP packet; ICMP sockets
  of the other kinds (ping sockets, raw ICMPv6) return the ICMP message alone.
- `decode_extended_error`: the ``struct sock_extended_err`` (linux/errqueue.h) that a
  socket with IP_RECVERR / IPV6_RECVERR returns from its error queue, with the address
  of the host that sent the ICMP error.
- `describe_error`: "port unreachable", "host unreachable", ... for reasons.

Decoders raise only `IcmpWireError`, whatever the bytes.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass

# ICMP (RFC 792) types
ICMP_ECHO_REPLY = 0
ICMP_DEST_UNREACH = 3
ICMP_ECHO_REQUEST = 8
ICMP_TIME_EXCEEDED = 11
ICMP_PARAMETER_PROBLEM = 12
# ICMPv6 (RFC 4443) types
ICMPV6_DEST_UNREACH = 1
ICMPV6_PACKET_TOO_BIG = 2
ICMPV6_TIME_EXCEEDED = 3
ICMPV6_PARAMETER_PROBLEM = 4
ICMPV6_ECHO_REQUEST = 128
ICMPV6_ECHO_REPLY = 129

# sock_extended_err.ee_origin
SO_EE_ORIGIN_LOCAL = 1
SO_EE_ORIGIN_ICMP = 2
SO_EE_ORIGIN_ICMP6 = 3

HEADER_SIZE = 8  # type, code, checksum, and 4 bytes (identifier + sequence for echoes)
_IPV6_HEADER_SIZE = 40
_EXTENDED_ERROR = struct.Struct("=IBBBBII")  # native order: it comes from our own kernel

_UNREACHABLE = {
    0: "network unreachable", 1: "host unreachable", 2: "protocol unreachable",
    3: "port unreachable", 4: "fragmentation needed", 5: "source route failed",
    6: "destination network unknown", 7: "destination host unknown",
    9: "network administratively prohibited", 10: "host administratively prohibited",
    11: "network unreachable for TOS", 12: "host unreachable for TOS",
    13: "communication administratively prohibited", 14: "host precedence violation",
    15: "precedence cutoff in effect",
}
_UNREACHABLE_V6 = {
    0: "no route to destination", 1: "communication administratively prohibited",
    2: "beyond scope of source address", 3: "address unreachable", 4: "port unreachable",
    5: "source address failed ingress/egress policy", 6: "reject route to destination",
}


class IcmpWireError(ValueError):
    """Bytes that are not the ICMP message (or kernel structure) they should be."""


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of `data`."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def encode_echo_request(ident: int, sequence: int, payload: bytes = b"", *,
                        ipv6: bool = False) -> bytes:
    """An echo request. ICMPv4 carries its checksum; for ICMPv6 the kernel fills it in
    (it covers a pseudo-header with addresses only the kernel knows for sure)."""
    if not (0 <= ident <= 0xFFFF and 0 <= sequence <= 0xFFFF):
        raise IcmpWireError(f"echo identifier {ident} / sequence {sequence} out of range")
    kind = ICMPV6_ECHO_REQUEST if ipv6 else ICMP_ECHO_REQUEST
    message = struct.pack("!BBHHH", kind, 0, 0, ident, sequence) + payload
    if ipv6:
        return message
    return message[:2] + struct.pack("!H", checksum(message)) + message[4:]


@dataclass(frozen=True, slots=True)
class Quoted:
    """The start of the datagram an ICMP error quotes: where it went, its protocol and
    (for an echo) its identifier and sequence."""

    destination: str
    protocol: int
    ident: int | None = None     # set when the quoted datagram is an ICMP echo request
    sequence: int | None = None


@dataclass(frozen=True, slots=True)
class IcmpMessage:
    type: int
    code: int
    checksum: int
    ident: int  # meaningful for echoes: the first and second 16-bit words after the checksum
    sequence: int
    payload: bytes
    ipv6: bool = False
    quoted: Quoted | None = None  # for errors, the datagram that caused it (when readable)

    @property
    def is_echo_reply(self) -> bool:
        return self.type == (ICMPV6_ECHO_REPLY if self.ipv6 else ICMP_ECHO_REPLY)

    @property
    def is_error(self) -> bool:
        if self.ipv6:
            return self.type < 128
        return self.type in (ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED, ICMP_PARAMETER_PROBLEM)

    def describe(self) -> str:
        return describe_error(self.type, self.code, ipv6=self.ipv6)


def decode_icmp(data: bytes, *, ipv6: bool = False, verify_checksum: bool = False) -> IcmpMessage:
    """An ICMP (or ICMPv6) message, starting at its type byte.

    `verify_checksum` checks an ICMPv4 checksum (a raw socket gets packets before the
    kernel checks them); ICMPv6 checksums need the pseudo-header and are left to the
    kernel.
    """
    if len(data) < HEADER_SIZE:
        raise IcmpWireError(f"ICMP message of {len(data)} bytes is shorter than its header")
    kind, code, sum_, ident, sequence = struct.unpack_from("!BBHHH", data)
    if verify_checksum and not ipv6 and checksum(data) != 0:
        raise IcmpWireError("ICMP checksum mismatch")
    message = IcmpMessage(kind, code, sum_, ident, sequence, bytes(data[HEADER_SIZE:]), ipv6)
    if message.is_error:
        quoted = _quoted_v6(message.payload) if ipv6 else _quoted_v4(message.payload)
        message = IcmpMessage(kind, code, sum_, ident, sequence, message.payload, ipv6, quoted)
    return message


def _quoted_v4(data: bytes) -> Quoted | None:
    try:
        _length, protocol, destination, rest = _ipv4_parts(data)
    except IcmpWireError:
        return None
    ident = sequence = None
    if (protocol == socket.IPPROTO_ICMP and len(rest) >= HEADER_SIZE
            and rest[0] == ICMP_ECHO_REQUEST):
        ident, sequence = struct.unpack_from("!HH", rest, 4)
    return Quoted(destination, protocol, ident, sequence)


def _quoted_v6(data: bytes) -> Quoted | None:
    if len(data) < _IPV6_HEADER_SIZE or data[0] >> 4 != 6:
        return None
    protocol = data[6]  # the next header; extension headers are not followed
    destination = str(ipaddress.IPv6Address(data[24:40]))
    rest = data[_IPV6_HEADER_SIZE:]
    ident = sequence = None
    if (protocol == socket.IPPROTO_ICMPV6 and len(rest) >= HEADER_SIZE
            and rest[0] == ICMPV6_ECHO_REQUEST):
        ident, sequence = struct.unpack_from("!HH", rest, 4)
    return Quoted(destination, protocol, ident, sequence)


def _ipv4_parts(packet: bytes) -> tuple[int, int, str, bytes]:
    if len(packet) < 20:
        raise IcmpWireError(f"IPv4 packet of {len(packet)} bytes is shorter than its header")
    version, header_length = packet[0] >> 4, (packet[0] & 0x0F) * 4
    if version != 4 or header_length < 20 or len(packet) < header_length:
        raise IcmpWireError("not an IPv4 header")
    destination = str(ipaddress.IPv4Address(packet[16:20]))
    return header_length, packet[9], destination, bytes(packet[header_length:])


@dataclass(frozen=True, slots=True)
class Ipv4Packet:
    source: str
    destination: str
    protocol: int
    payload: bytes


def strip_ipv4_header(packet: bytes) -> Ipv4Packet:
    """Split what a raw IPv4 socket received into its addresses, protocol and payload."""
    _length, protocol, destination, payload = _ipv4_parts(packet)
    source = str(ipaddress.IPv4Address(packet[12:16]))
    return Ipv4Packet(source, destination, protocol, payload)


@dataclass(frozen=True, slots=True)
class ExtendedError:
    """One entry of a socket's error queue (``struct sock_extended_err``)."""

    errno: int
    origin: int
    type: int
    code: int
    info: int
    data: int
    offender: str | None = None  # who sent the ICMP error

    @property
    def is_icmp(self) -> bool:
        return self.origin in (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6)

    @property
    def ipv6(self) -> bool:
        return self.origin == SO_EE_ORIGIN_ICMP6

    @property
    def is_unreachable(self) -> bool:
        """A destination unreachable error: the only kind keepalived's UDP_CHECK fails on."""
        if self.origin == SO_EE_ORIGIN_ICMP:
            return self.type == ICMP_DEST_UNREACH
        if self.origin == SO_EE_ORIGIN_ICMP6:
            return self.type == ICMPV6_DEST_UNREACH
        return False

    def describe(self) -> str:
        if self.is_icmp:
            return describe_error(self.type, self.code, ipv6=self.ipv6)
        return f"local error {self.errno}"


def decode_extended_error(data: bytes) -> ExtendedError:
    """The payload of an IP_RECVERR / IPV6_RECVERR control message."""
    if len(data) < _EXTENDED_ERROR.size:
        raise IcmpWireError(f"sock_extended_err of {len(data)} bytes is too short")
    err, origin, kind, code, _pad, info, extra = _EXTENDED_ERROR.unpack_from(data)
    return ExtendedError(err, origin, kind, code, info, extra,
                         _sockaddr_address(data[_EXTENDED_ERROR.size:]))


def _sockaddr_address(data: bytes) -> str | None:
    if len(data) < 2:
        return None
    family = struct.unpack_from("=H", data)[0]
    if family == socket.AF_INET and len(data) >= 8:
        return str(ipaddress.IPv4Address(data[4:8]))
    if family == socket.AF_INET6 and len(data) >= 24:
        return str(ipaddress.IPv6Address(data[8:24]))
    return None


def describe_error(kind: int, code: int, *, ipv6: bool = False) -> str:
    """A short description of an ICMP error type and code."""
    if ipv6:
        if kind == ICMPV6_DEST_UNREACH:
            return _UNREACHABLE_V6.get(code, f"destination unreachable (code {code})")
        if kind == ICMPV6_PACKET_TOO_BIG:
            return "packet too big"
        if kind == ICMPV6_TIME_EXCEEDED:
            return "time exceeded"
        if kind == ICMPV6_PARAMETER_PROBLEM:
            return "parameter problem"
        return f"ICMPv6 type {kind} code {code}"
    if kind == ICMP_DEST_UNREACH:
        return _UNREACHABLE.get(code, f"destination unreachable (code {code})")
    if kind == ICMP_TIME_EXCEEDED:
        return "time exceeded"
    if kind == ICMP_PARAMETER_PROBLEM:
        return "parameter problem"
    return f"ICMP type {kind} code {code}"
