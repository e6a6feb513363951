"""A tiny reader for classic pcap files (libpcap format, Ethernet link type): enough to
take test vectors out of captures without scapy."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LINKTYPE_ETHERNET = 1
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}


@dataclass(frozen=True)
class Frame:
    timestamp: float
    data: bytes  # the Ethernet frame as captured


@dataclass(frozen=True)
class IPv6Packet:
    source: ipaddress.IPv6Address
    destination: ipaddress.IPv6Address
    next_header: int
    hop_limit: int
    traffic_class: int
    payload: bytes


def read_frames(path: str | Path) -> list[Frame]:
    data = Path(path).read_bytes()
    if data[:4] not in _MAGICS:
        raise ValueError(f"{path}: not a classic pcap file")
    order, unit = _MAGICS[data[:4]]
    linktype = struct.unpack_from(order + "I", data, 20)[0]
    if linktype != LINKTYPE_ETHERNET:
        raise ValueError(f"{path}: link type {linktype}, only Ethernet (1) is read")
    frames, offset = [], 24
    while offset + 16 <= len(data):
        seconds, fraction, captured, _original = struct.unpack_from(order + "IIII", data,
                                                                    offset)
        offset += 16
        frames.append(Frame(seconds + fraction * unit, data[offset:offset + captured]))
        offset += captured
    return frames


def ip_packets(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """(ethertype, IP packet) of each IPv4/IPv6 frame, VLAN tags skipped; an IPv4
    packet is cut to its total length and an IPv6 one to its payload length (Ethernet
    pads short frames)."""
    for frame in read_frames(path):
        offset = 12
        ethertype = struct.unpack_from("!H", frame.data, offset)[0]
        while ethertype == ETH_P_8021Q:
            offset += 4
            ethertype = struct.unpack_from("!H", frame.data, offset)[0]
        packet = frame.data[offset + 2:]
        if ethertype == ETH_P_IP:
            yield ethertype, packet[:struct.unpack_from("!H", packet, 2)[0]]
        elif ethertype == ETH_P_IPV6:
            yield ethertype, packet[:40 + struct.unpack_from("!H", packet, 4)[0]]


def parse_ipv6(packet: bytes) -> IPv6Packet:
    """The fixed IPv6 header (no extension headers are followed)."""
    first, length, next_header, hop_limit = struct.unpack_from("!IHBB", packet)
    return IPv6Packet(source=ipaddress.IPv6Address(packet[8:24]),
                      destination=ipaddress.IPv6Address(packet[24:40]),
                      next_header=next_header, hop_limit=hop_limit,
                      traffic_class=(first >> 20) & 0xFF, payload=packet[40:40 + length])
