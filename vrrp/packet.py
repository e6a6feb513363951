"""VRRP advertisements on the wire: VRRPv2 (RFC 3768) and VRRPv3 (RFC 5798) over IPv4
and IPv6, as keepalived 2.2.7 sends them. Sans-IO: bytes in, values out; no sockets,
no clock. Standard library only.

Public API (seconds are floats, priorities and VRIDs ints 0-255):

`Advert` (frozen dataclass) - one advertisement:
    version     2 or 3
    vrid        0-255 (0 and a VRID that is not the instance's are the instance's
                business: decode accepts any)
    priority    0-255 (0: the master is stopping; 255: the address owner)
    interval    seconds. v2: whole seconds 0-255 (an 8-bit field); v3: centiseconds
                0.00-40.95 (a 12-bit field), so 0.1 decodes as 0.1. decode accepts 0.
    addresses   tuple of IPv4Address (IPv4) or IPv6Address (IPv6): the virtual
                addresses in wire order, at most 255
    auth_type   v2 only: None (no authentication), AuthType.PASS or AuthType.AH
                (`vrrp.spec.AuthType`); always None for v3
    password    v2 only: the 8-byte authentication data field without its trailing
                NULs (the PASS password; b"" otherwise). encode writes it NUL-padded.
                For AH the field is zero and the key is the instance's auth_pass
                (`auth_key`).
    `Advert.owner` / `Advert.stopping`: priority 255 / 0.

`encode(advert, source, destination) -> bytes`
    The VRRP message (what follows the IP header), checksum included: v2 over the
    message alone, v3 over the IPv4 or IPv6 pseudo-header (RFC 5798 section 5.2.8) made
    of ``source`` and ``destination``. For keepalived's ``old_unicast_checksum`` (v3
    unicast), pass the multicast group as ``destination``. Raises ValueError for an
    advert that cannot be encoded (v2 over IPv6, v3 with authentication, fields out of
    range, addresses of the other family).

`encode_ipv4(advert, source, destination, ident, *, ttl=255, auth=None,
             ah_sequence=1, checksum_destination=None) -> bytes`
    The whole IPv4 datagram as keepalived builds it for its IP_HDRINCL socket: TOS 0xc0,
    TTL 255, no DF, IP id ``ident``, protocol 112, the header checksum filled in (the
    kernel recomputes it). keepalived counts ``ident`` up from 1 and skips 0, which the
    kernel would replace with its own id (breaking an AH ICV). With ``advert.auth_type``
    AH, ``auth`` (the instance's `Authentication`, type AH) gives the key: protocol 51,
    an RFC 2402 AH
    header (next header 112, SPI = source address, sequence ``ah_sequence``, HMAC-MD5-96
    ICV over the datagram with TOS, flags/fragment offset and header checksum zeroed,
    and TTL zeroed too when the destination is unicast, as keepalived does).

`decode(payload, source, destination) -> Advert`
    Parses and checks a VRRP message (the bytes after the IPv4 header, or what an IPv6
    raw socket delivers): length, version, type, exact length for the address count,
    checksum (v3 over the pseudo-header of ``source`` and ``destination``). It does not
    check authentication (`verify_auth`), the TTL/hop limit (decode_ipv4 does for IPv4;
    the IPv6 transport reads IPV6_HOPLIMIT), the VRID, the address list, the advert
    interval or whether the version is the instance's.

`decode_ipv4(datagram, *, expected_ttl=255, checksum_destination=None) -> Received`
    What an IPv4 raw socket delivers: the IPv4 header (IHL, total length, header
    checksum, TTL == ``expected_ttl`` unless None - unicast peers may be routed), an
    optional AH header (protocol 51, decoded; its ICV is checked by `verify_auth`), then
    `decode`. ``checksum_destination`` replaces the header's destination in the v3
    pseudo-header (keepalived's old unicast checksum).

`Received` (frozen dataclass): advert, source, destination, ttl (the hop limit for
    IPv6, filled by the transport), ah (`AuthHeader`: spi, sequence, icv, or None).

IPv6: the transport sends `encode`'s bytes on a raw IPPROTO_VRRP socket (keepalived:
    hop limit 255, traffic class 0xc0 in the captures, source chosen with IPV6_PKTINFO);
    with IPV6_CHECKSUM at offset 6 the kernel writes and checks the same checksum.

`verify_auth(packet, expected) -> None`
    ``packet`` an Advert or a Received; ``expected`` the instance's `Authentication` or
    None. v3 adverts carry no authentication: always accepted (keepalived ignores
    authentication for v3). v2: the advert's auth type must be the expected one (None
    with None); PASS: the 8-byte field must equal `auth_key` (auth_pass NUL-padded, as
    keepalived compares); AH: only a Received with an AH header whose SPI is its source
    and whose ICV verifies with the key. Raises PacketError(auth_failure). Anti-replay
    (``ah.sequence`` must grow) is the instance's business.

`auth_key(auth) -> bytes`: keepalived's 8-byte auth_data: auth_pass UTF-8, cut to 8
    bytes, NUL-padded.

`PacketError(counter, reason)`: the only exception decode, decode_ipv4 and verify_auth
    raise on any bytes. ``.counter`` (a `Counter`, a str) names the per-instance counter
    to bump: bad_checksum, bad_ttl, auth_failure, bad_version, bad_type, bad_length;
    ``.reason`` says what was wrong for a person.

`checksum(data) -> int`: the Internet checksum (RFC 1071).
"""

from __future__ import annotations

import hmac
import ipaddress
import struct
from dataclasses import dataclass, field
from enum import StrEnum

from vrrp.spec import Authentication, AuthType, IPAddress

IPPROTO_VRRP = 112
IPPROTO_AH = 51
VRRP_TTL = 255
VRRP_TOS = 0xC0  # internetwork control
ADVERT = 1  # the only VRRP packet type
HEADER_LEN = 8
AUTH_DATA_LEN = 8  # v2 authentication data (IPv4)
AH_LEN = 24  # next header, length, reserved, SPI, sequence, 12-byte ICV
AH_ICV_LEN = 12  # HMAC-MD5-96
IPV4_HEADER_LEN = 20

_AUTH_WIRE: dict[AuthType | None, int] = {None: 0, AuthType.PASS: 1, AuthType.AH: 2}
_AUTH_FROM_WIRE = {number: kind for kind, number in _AUTH_WIRE.items()}


class Counter(StrEnum):
    """The per-instance counter a dropped packet bumps."""

    BAD_CHECKSUM = "bad_checksum"
    BAD_TTL = "bad_ttl"
    AUTH_FAILURE = "auth_failure"
    BAD_VERSION = "bad_version"
    BAD_TYPE = "bad_type"
    BAD_LENGTH = "bad_length"


class PacketError(Exception):
    """A packet to count (``counter``) and drop; ``reason`` is for a person."""

    def __init__(self, counter: Counter, reason: str) -> None:
        super().__init__(counter, reason)  # (picklable: args rebuild it)
        self.counter = counter
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.counter}: {self.reason}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Advert:
    """One VRRP advertisement (see the module docstring for each field)."""

    version: int = 3
    vrid: int = 1
    priority: int = 100
    interval: float = 1.0
    addresses: tuple[IPAddress, ...] = ()
    auth_type: AuthType | None = None
    password: bytes = b""

    @property
    def owner(self) -> bool:
        return self.priority == 255

    @property
    def stopping(self) -> bool:
        return self.priority == 0


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthHeader:
    """An RFC 2402 AH header around a VRRPv2 advert. ``signed`` is what the ICV covers
    (the datagram with the mutable IP fields and the ICV zeroed, TTL as received)."""

    spi: int
    sequence: int
    icv: bytes
    signed: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    """An advert and what its IP header said. ``ttl``: the IPv4 TTL or IPv6 hop limit."""

    advert: Advert
    source: IPAddress
    destination: IPAddress
    ttl: int
    ah: AuthHeader | None = None


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``: 0 over data that carries a right
    one."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def auth_key(auth: Authentication) -> bytes:
    """keepalived's auth_data: the password cut to 8 bytes and NUL-padded."""
    return auth.auth_pass.encode()[:AUTH_DATA_LEN].ljust(AUTH_DATA_LEN, b"\0")


def _pseudo_header(source: IPAddress, destination: IPAddress, length: int) -> bytes:
    if source.version == 4:
        return source.packed + destination.packed + struct.pack("!BBH", 0, IPPROTO_VRRP,
                                                                 length)
    return source.packed + destination.packed + struct.pack("!I3xB", length, IPPROTO_VRRP)


def _check_pair(source: IPAddress, destination: IPAddress) -> None:
    if not isinstance(source, ipaddress.IPv4Address | ipaddress.IPv6Address) or \
            not isinstance(destination, ipaddress.IPv4Address | ipaddress.IPv6Address):
        raise TypeError("source and destination must be IPv4Address or IPv6Address")
    if source.version != destination.version:
        raise ValueError(f"source {source} and destination {destination} are of "
                         "different families")


# ----------------------------------------------------------------- encoding


def encode(advert: Advert, source: IPAddress, destination: IPAddress) -> bytes:
    """The VRRP message of ``advert`` with its checksum (see the module docstring)."""
    _check_pair(source, destination)
    family = source.version
    if advert.version not in (2, 3):
        raise ValueError(f"VRRP version {advert.version}: only 2 and 3 exist")
    if advert.version == 2 and family == 6:
        raise ValueError("VRRPv2 is IPv4 only (IPv6 uses VRRPv3)")
    for name in ("vrid", "priority"):
        value = getattr(advert, name)
        if not 0 <= value <= 255:
            raise ValueError(f"{name} {value} is not 0-255")
    if len(advert.addresses) > 255:
        raise ValueError(f"{len(advert.addresses)} addresses: at most 255 fit")
    for address in advert.addresses:
        if address.version != family:
            raise ValueError(f"address {address} is not of the packet's family "
                             f"(IPv{family})")
    addresses = b"".join(address.packed for address in advert.addresses)
    head = struct.pack("!BBBB", advert.version << 4 | ADVERT, advert.vrid, advert.priority,
                       len(advert.addresses))
    if advert.version == 2:
        seconds = round(advert.interval)
        if not 0 <= seconds <= 255:
            raise ValueError(f"VRRPv2 advert interval {advert.interval} s is not 0-255 s")
        if advert.auth_type not in _AUTH_WIRE:
            raise ValueError(f"authentication type {advert.auth_type!r}")
        if len(advert.password) > AUTH_DATA_LEN:
            raise ValueError(f"password of {len(advert.password)} bytes: at most 8 fit")
        message = bytearray(head + struct.pack("!BBH", _AUTH_WIRE[advert.auth_type],
                                                seconds, 0)
                            + addresses + advert.password.ljust(AUTH_DATA_LEN, b"\0"))
        prefix = b""
    else:
        centiseconds = round(advert.interval * 100)
        if not 0 <= centiseconds <= 0xFFF:
            raise ValueError(f"VRRPv3 advert interval {advert.interval} s is not "
                             "0-40.95 s")
        if advert.auth_type is not None or advert.password:
            raise ValueError("VRRPv3 has no authentication")
        message = bytearray(head + struct.pack("!HH", centiseconds, 0) + addresses)
        prefix = _pseudo_header(source, destination, len(message))
    struct.pack_into("!H", message, 6, checksum(prefix + bytes(message)))
    return bytes(message)


def encode_ipv4(advert: Advert, source: ipaddress.IPv4Address,
                destination: ipaddress.IPv4Address, ident: int, *, ttl: int = VRRP_TTL,
                auth: Authentication | None = None, ah_sequence: int = 1,
                checksum_destination: ipaddress.IPv4Address | None = None) -> bytes:
    """The IPv4 datagram keepalived sends for ``advert`` (see the module docstring)."""
    _check_pair(source, destination)
    if source.version != 4:
        raise ValueError("encode_ipv4 needs IPv4 addresses")
    if not 0 <= ident <= 0xFFFF or not 0 <= ttl <= 255:
        raise ValueError(f"IP id {ident} / TTL {ttl} out of range")
    message = encode(advert, source, checksum_destination or destination)
    with_ah = advert.auth_type == AuthType.AH
    if with_ah:
        if auth is None or auth.auth_type != AuthType.AH:
            raise ValueError("an AH advert needs the instance's AH Authentication")
        if not 0 <= ah_sequence <= 0xFFFFFFFF:
            raise ValueError(f"AH sequence number {ah_sequence} out of range")
    extra = AH_LEN if with_ah else 0
    header = bytearray(struct.pack(
        "!BBHHHBBH4s4s", 0x45, VRRP_TOS, IPV4_HEADER_LEN + extra + len(message), ident, 0,
        ttl, IPPROTO_AH if with_ah else IPPROTO_VRRP, 0, source.packed,
        destination.packed))
    ah = b""
    if with_ah:
        assert auth is not None
        blank = struct.pack("!BBH4sI", IPPROTO_VRRP, AH_LEN // 4 - 2, 0, source.packed,
                            ah_sequence)
        signed = _mutable_zeroed(bytes(header), zero_ttl=not destination.is_multicast)
        icv = _icv(auth_key(auth), signed + blank + bytes(AH_ICV_LEN) + message)
        ah = blank + icv
    struct.pack_into("!H", header, 10, checksum(bytes(header)))
    return bytes(header) + ah + message


def _mutable_zeroed(header: bytes, *, zero_ttl: bool) -> bytes:
    """An IPv4 header with what AH does not protect zeroed (RFC 2402 section 3.3.3.1.1.1),
    TTL only when ``zero_ttl`` (keepalived keeps it for multicast adverts)."""
    out = bytearray(header)
    out[1] = 0  # TOS
    out[6:8] = b"\0\0"  # flags, fragment offset
    out[10:12] = b"\0\0"  # header checksum
    if zero_ttl:
        out[8] = 0
    return bytes(out)


def _icv(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, "md5").digest()[:AH_ICV_LEN]


# ----------------------------------------------------------------- decoding


def decode(payload: bytes, source: IPAddress, destination: IPAddress) -> Advert:
    """The advert in a VRRP message, checked (see the module docstring)."""
    _check_pair(source, destination)
    payload = bytes(payload)
    if len(payload) < HEADER_LEN:
        raise PacketError(Counter.BAD_LENGTH, f"{len(payload)} bytes: shorter than the "
                          "8-byte VRRP header")
    version_type, vrid, priority, count, word, _ = struct.unpack_from("!BBBBHH", payload)
    version, kind = version_type >> 4, version_type & 0x0F
    if version not in (2, 3):
        raise PacketError(Counter.BAD_VERSION, f"VRRP version {version}")
    family = source.version
    if version == 2 and family == 6:
        raise PacketError(Counter.BAD_VERSION, "VRRPv2 over IPv6")
    if kind != ADVERT:
        raise PacketError(Counter.BAD_TYPE, f"packet type {kind}, not 1 (advertisement)")
    address_len = 4 if family == 4 else 16
    expected = HEADER_LEN + count * address_len + (AUTH_DATA_LEN if version == 2 else 0)
    if len(payload) != expected:
        raise PacketError(Counter.BAD_LENGTH, f"{len(payload)} bytes for {count} "
                          f"address(es): VRRPv{version} over IPv{family} needs {expected}")
    if version == 2:
        if checksum(payload):
            raise PacketError(Counter.BAD_CHECKSUM, "VRRPv2 checksum does not match")
        wire_auth, interval = word >> 8, float(word & 0xFF)
        if wire_auth not in _AUTH_FROM_WIRE:
            raise PacketError(Counter.AUTH_FAILURE,
                              f"unknown authentication type {wire_auth}")
        auth_type = _AUTH_FROM_WIRE[wire_auth]
        password = payload[-AUTH_DATA_LEN:].rstrip(b"\0")
    else:
        if checksum(_pseudo_header(source, destination, len(payload)) + payload):
            raise PacketError(Counter.BAD_CHECKSUM, "VRRPv3 checksum does not match "
                              f"(pseudo-header {source} -> {destination})")
        auth_type, password = None, b""
        interval = (word & 0x0FFF) / 100
    make = ipaddress.IPv4Address if family == 4 else ipaddress.IPv6Address
    addresses = tuple(make(payload[start:start + address_len])
                      for start in range(HEADER_LEN, HEADER_LEN + count * address_len,
                                         address_len))
    return Advert(version=version, vrid=vrid, priority=priority, interval=interval,
                  addresses=addresses, auth_type=auth_type, password=password)


def decode_ipv4(datagram: bytes, *, expected_ttl: int | None = VRRP_TTL,
                checksum_destination: ipaddress.IPv4Address | None = None) -> Received:
    """The advert in an IPv4 datagram from a raw socket (see the module docstring)."""
    datagram = bytes(datagram)
    if len(datagram) < IPV4_HEADER_LEN:
        raise PacketError(Counter.BAD_LENGTH, f"{len(datagram)} bytes: shorter than an "
                          "IPv4 header")
    version_ihl, _tos, total, _ident, _frag, ttl, protocol, _sum, src, dst = \
        struct.unpack_from("!BBHHHBBH4s4s", datagram)
    if version_ihl >> 4 != 4:
        raise PacketError(Counter.BAD_VERSION, f"IP version {version_ihl >> 4}, not 4")
    header_len = (version_ihl & 0x0F) * 4
    if header_len < IPV4_HEADER_LEN or header_len > len(datagram):
        raise PacketError(Counter.BAD_LENGTH, f"IPv4 header length {header_len} in a "
                          f"{len(datagram)}-byte datagram")
    if total != len(datagram):
        raise PacketError(Counter.BAD_LENGTH, f"IPv4 total length {total}, received "
                          f"{len(datagram)} bytes")
    if checksum(datagram[:header_len]):
        raise PacketError(Counter.BAD_CHECKSUM, "IPv4 header checksum does not match")
    source, destination = ipaddress.IPv4Address(src), ipaddress.IPv4Address(dst)
    if expected_ttl is not None and ttl != expected_ttl:
        raise PacketError(Counter.BAD_TTL, f"TTL {ttl}, expected {expected_ttl}")
    ah = None
    start = header_len
    if protocol == IPPROTO_AH:
        if len(datagram) - header_len < 12:
            raise PacketError(Counter.BAD_LENGTH, "truncated AH header")
        next_header, length_word, _, spi, sequence = struct.unpack_from(
            "!BBHII", datagram, header_len)
        ah_len = (length_word + 2) * 4
        if ah_len < 12 or header_len + ah_len > len(datagram):
            raise PacketError(Counter.BAD_LENGTH, f"AH header of {ah_len} bytes in a "
                              f"{len(datagram)}-byte datagram")
        if next_header != IPPROTO_VRRP:
            raise PacketError(Counter.BAD_TYPE, f"AH carries protocol {next_header}, "
                              "not VRRP (112)")
        start = header_len + ah_len
        icv = datagram[header_len + 12:start]
        signed = (_mutable_zeroed(datagram[:header_len], zero_ttl=False)
                  + datagram[header_len:header_len + 12] + bytes(len(icv))
                  + datagram[start:])
        ah = AuthHeader(spi=spi, sequence=sequence, icv=icv, signed=signed)
    elif protocol != IPPROTO_VRRP:
        raise PacketError(Counter.BAD_TYPE, f"IP protocol {protocol}, not VRRP (112)")
    advert = decode(datagram[start:], source, checksum_destination or destination)
    return Received(advert=advert, source=source, destination=destination, ttl=ttl, ah=ah)


# ----------------------------------------------------------------- authentication


def verify_auth(packet: Advert | Received, expected: Authentication | None) -> None:
    """Raise PacketError(auth_failure) unless ``packet`` carries the authentication the
    instance expects (see the module docstring)."""
    received = packet if isinstance(packet, Received) else None
    advert = packet.advert if isinstance(packet, Received) else packet
    if advert.version != 2:
        return
    want = expected.auth_type if expected is not None else None
    if advert.auth_type != want:
        raise PacketError(Counter.AUTH_FAILURE, f"authentication {_auth_name(advert.auth_type)}"
                          f", expected {_auth_name(want)}")
    if received is not None and received.ah is not None and want != AuthType.AH:
        raise PacketError(Counter.AUTH_FAILURE, "AH-protected advert, AH not configured")
    if expected is None:
        return
    key = auth_key(expected)
    if want == AuthType.PASS:
        if not hmac.compare_digest(advert.password.ljust(AUTH_DATA_LEN, b"\0"), key):
            raise PacketError(Counter.AUTH_FAILURE, "wrong password")
        return
    ah = received.ah if received is not None else None
    if ah is None or received is None:
        raise PacketError(Counter.AUTH_FAILURE, "AH authentication configured but the "
                          "advert has no AH header")
    if ah.spi != int(received.source):
        raise PacketError(Counter.AUTH_FAILURE, f"AH SPI {ah.spi:#010x} is not the source "
                          f"address {received.source}")
    if len(ah.icv) != AH_ICV_LEN:
        raise PacketError(Counter.AUTH_FAILURE, f"AH ICV of {len(ah.icv)} bytes, "
                          "not HMAC-MD5-96")
    # keepalived zeroes the TTL in the ICV only for unicast adverts: accept either.
    candidates = (ah.signed, ah.signed[:8] + b"\0" + ah.signed[9:])
    if not any(hmac.compare_digest(_icv(key, signed), ah.icv) for signed in candidates):
        raise PacketError(Counter.AUTH_FAILURE, "AH ICV does not match (wrong password or "
                          "altered packet)")


def _auth_name(kind: AuthType | None) -> str:
    return "none" if kind is None else str(kind)
