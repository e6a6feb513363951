"""Just enough VRRP decoding to see what a peer puts on the wire (RFC 3768 / RFC 5798).

Written apart from `vrrp.packet` on purpose: tests that hold our config against a real
keepalived should not trust our own packet code to read the answer.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from tests.netns.lab import IPv4Packet, PacketCapture

VRRP_PROTO = 112
VRRP_GROUP_V4 = ipaddress.IPv4Address("224.0.0.18")


@dataclass(frozen=True)
class Advert:
    time: float
    src: ipaddress.IPv4Address
    version: int
    vrid: int
    priority: int
    advert_int: float  # seconds
    addresses: tuple[ipaddress.IPv4Address, ...]


def decode_advert(packet: IPv4Packet) -> Advert | None:
    data = packet.payload
    if len(data) < 8 or data[0] & 0x0F != 1:  # type 1: advertisement
        return None
    version = data[0] >> 4
    vrid, priority, count = data[1], data[2], data[3]
    if version == 3:
        interval = (struct.unpack("!H", data[4:6])[0] & 0x0FFF) / 100
    elif version == 2:
        interval = float(data[5])
    else:
        return None
    raw = data[8:8 + 4 * count]
    addresses = tuple(ipaddress.IPv4Address(raw[i:i + 4]) for i in range(0, len(raw), 4))
    return Advert(packet.time, packet.src, version, vrid, priority, interval, addresses)


def adverts(capture: PacketCapture) -> list[Advert]:
    """Every VRRP advertisement to 224.0.0.18 seen so far on the capture."""
    found = []
    for packet in capture.ipv4(proto=VRRP_PROTO):
        if packet.dst == VRRP_GROUP_V4:
            advert = decode_advert(packet)
            if advert is not None:
                found.append(advert)
    return found
