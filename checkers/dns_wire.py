"""DNS messages on the wire (RFC 1035), for DNS_CHECK: sans-IO.

`encode_query` builds the one query DNS_CHECK sends (recursion desired, class IN);
`decode_header` reads the 12-byte header that keepalived judges a response by;
`decode_message` / `encode_message` handle whole messages (names with compression
pointers, the four record sections), for diagnostics and for test servers.

Decoders raise only `DnsWireError`, whatever the bytes: a message too short, a name
running past the end, a compression pointer loop, a label longer than 63 bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER_SIZE = 12
CLASS_IN = 1
MAX_NAME_LENGTH = 255  # octets on the wire, length bytes included
MAX_LABEL_LENGTH = 63

# The query types keepalived's DNS_CHECK knows.
QTYPES: dict[str, int] = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16,
                          "AAAA": 28}

RCODE_NAMES: dict[int, str] = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
    6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE",
}

_HEADER = struct.Struct("!HHHHHH")
_FIXED = struct.Struct("!HH")       # type, class of a question
_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength of a record
_MAX_POINTERS = 64


class DnsWireError(ValueError):
    """Bytes that are not a well-formed DNS message (or a name that cannot be sent)."""


def rcode_name(rcode: int) -> str:
    return RCODE_NAMES.get(rcode, f"RCODE{rcode}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Header:
    id: int = 0
    qr: bool = False        # a response
    opcode: int = 0
    aa: bool = False
    tc: bool = False        # truncated
    rd: bool = False        # recursion desired
    ra: bool = False
    z: int = 0
    rcode: int = 0
    qdcount: int = 0
    ancount: int = 0
    nscount: int = 0
    arcount: int = 0

    @property
    def flags(self) -> int:
        return ((self.qr << 15) | ((self.opcode & 0xF) << 11) | (self.aa << 10)
                | (self.tc << 9) | (self.rd << 8) | (self.ra << 7) | ((self.z & 0x7) << 4)
                | (self.rcode & 0xF))

    @property
    def rcode_name(self) -> str:
        return rcode_name(self.rcode)

    def encode(self) -> bytes:
        return _HEADER.pack(self.id & 0xFFFF, self.flags, self.qdcount, self.ancount,
                            self.nscount, self.arcount)


@dataclass(frozen=True, slots=True)
class Question:
    name: str
    qtype: int
    qclass: int = CLASS_IN


@dataclass(frozen=True, slots=True)
class Record:
    name: str
    rtype: int
    rclass: int
    ttl: int
    data: bytes  # the RDATA as sent (names inside it are not expanded)


@dataclass(frozen=True, slots=True)
class Message:
    header: Header
    questions: tuple[Question, ...] = ()
    answers: tuple[Record, ...] = ()
    authorities: tuple[Record, ...] = ()
    additionals: tuple[Record, ...] = ()


# ------------------------------------------------------------------ encoding

def encode_name(name: str) -> bytes:
    """`name` as length-prefixed labels ending with the root ("." alone is the root).
    A trailing dot is optional. Labels are sent as their UTF-8 bytes, as keepalived
    sends the configured text."""
    if name in ("", "."):
        return b"\0"
    text = name[:-1] if name.endswith(".") else name
    out = bytearray()
    for label in text.split("."):
        raw = label.encode("utf-8")
        if not raw:
            raise DnsWireError(f"empty label in DNS name {name!r}")
        if len(raw) > MAX_LABEL_LENGTH:
            raise DnsWireError(f"label {label!r} of DNS name {name!r} is longer than 63 bytes")
        out += bytes((len(raw),)) + raw
    out += b"\0"
    if len(out) > MAX_NAME_LENGTH:
        raise DnsWireError(f"DNS name {name!r} is longer than 255 bytes")
    return bytes(out)


def encode_query(query_id: int, name: str, qtype: int | str, *,
                 recursion_desired: bool = True) -> bytes:
    """A standard query for (`name`, `qtype`, IN), as keepalived's DNS_CHECK sends it."""
    if isinstance(qtype, str):
        try:
            qtype = QTYPES[qtype.upper()]
        except KeyError:
            raise DnsWireError(f"unknown DNS query type {qtype!r}") from None
    if not 0 <= query_id <= 0xFFFF:
        raise DnsWireError(f"DNS message ID {query_id} out of range")
    header = Header(id=query_id, rd=recursion_desired, qdcount=1)
    return header.encode() + encode_name(name) + _FIXED.pack(qtype, CLASS_IN)


def encode_message(message: Message) -> bytes:
    """A whole message, without name compression. The header's counts are taken from
    the sections given, not from `message.header`."""
    h = message.header
    header = Header(id=h.id, qr=h.qr, opcode=h.opcode, aa=h.aa, tc=h.tc, rd=h.rd, ra=h.ra,
                    z=h.z, rcode=h.rcode, qdcount=len(message.questions),
                    ancount=len(message.answers), nscount=len(message.authorities),
                    arcount=len(message.additionals))
    out = bytearray(header.encode())
    for q in message.questions:
        out += encode_name(q.name) + _FIXED.pack(q.qtype, q.qclass)
    for record in (*message.answers, *message.authorities, *message.additionals):
        if len(record.data) > 0xFFFF:
            raise DnsWireError("record data longer than 65535 bytes")
        out += encode_name(record.name)
        out += _RR_FIXED.pack(record.rtype, record.rclass, record.ttl, len(record.data))
        out += record.data
    return bytes(out)


# ------------------------------------------------------------------ decoding

def decode_header(data: bytes) -> Header:
    """The header of a message: the first 12 bytes."""
    if len(data) < HEADER_SIZE:
        raise DnsWireError(f"DNS message of {len(data)} bytes is shorter than its 12-byte header")
    ident, flags, qd, an, ns, ar = _HEADER.unpack_from(data)
    return Header(id=ident, qr=bool(flags >> 15), opcode=(flags >> 11) & 0xF,
                  aa=bool(flags & 0x400), tc=bool(flags & 0x200), rd=bool(flags & 0x100),
                  ra=bool(flags & 0x80), z=(flags >> 4) & 0x7, rcode=flags & 0xF,
                  qdcount=qd, ancount=an, nscount=ns, arcount=ar)


def decode_name(data: bytes, offset: int) -> tuple[str, int]:
    """The name at `offset` (following compression pointers) and the offset just past
    it in the message. Names are returned with a trailing dot; the root is "."."""
    labels: list[str] = []
    length_on_wire = 0
    end: int | None = None
    pointers = 0
    while True:
        if offset >= len(data):
            raise DnsWireError("DNS name runs past the end of the message")
        length = data[offset]
        kind = length & 0xC0
        if kind == 0xC0:
            if offset + 1 >= len(data):
                raise DnsWireError("DNS compression pointer runs past the end of the message")
            pointers += 1
            if pointers > _MAX_POINTERS:
                raise DnsWireError("DNS name has a compression pointer loop")
            target = ((length & 0x3F) << 8) | data[offset + 1]
            if end is None:
                end = offset + 2
            if target >= offset:
                # Pointers must point back; one that does not could loop forever.
                raise DnsWireError("DNS compression pointer does not point backwards")
            offset = target
            continue
        if kind:
            raise DnsWireError(f"DNS label type 0x{kind:02x} is not supported")
        offset += 1
        if length == 0:
            break
        if offset + length > len(data):
            raise DnsWireError("DNS label runs past the end of the message")
        length_on_wire += length + 1
        if length_on_wire + 1 > MAX_NAME_LENGTH:
            raise DnsWireError("DNS name is longer than 255 bytes")
        labels.append(data[offset:offset + length].decode("utf-8", "backslashreplace"))
        offset += length
    name = ".".join(labels) + "." if labels else "."
    return name, end if end is not None else offset


def _decode_record(data: bytes, offset: int) -> tuple[Record, int]:
    name, offset = decode_name(data, offset)
    if offset + _RR_FIXED.size > len(data):
        raise DnsWireError("DNS record runs past the end of the message")
    rtype, rclass, ttl, rdlength = _RR_FIXED.unpack_from(data, offset)
    offset += _RR_FIXED.size
    if offset + rdlength > len(data):
        raise DnsWireError("DNS record data runs past the end of the message")
    return Record(name, rtype, rclass, ttl, bytes(data[offset:offset + rdlength])), \
        offset + rdlength


def decode_message(data: bytes) -> Message:
    """A whole message: header, questions and the three record sections. Bytes after
    the last record are ignored (as resolvers do)."""
    header = decode_header(data)
    offset = HEADER_SIZE
    questions: list[Question] = []
    for _ in range(header.qdcount):
        name, offset = decode_name(data, offset)
        if offset + _FIXED.size > len(data):
            raise DnsWireError("DNS question runs past the end of the message")
        qtype, qclass = _FIXED.unpack_from(data, offset)
        offset += _FIXED.size
        questions.append(Question(name, qtype, qclass))
    sections: list[tuple[Record, ...]] = []
    for count in (header.ancount, header.nscount, header.arcount):
        records: list[Record] = []
        for _ in range(count):
            record, offset = _decode_record(data, offset)
            records.append(record)
        sections.append(tuple(records))
    return Message(header, tuple(questions), *sections)
