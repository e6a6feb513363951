"""vrrp.garp without the network: frame layouts byte by byte and the burst schedule.

The wire side (a GARP/NA updating a neighbour table, keepalived's frames captured) is
in tests/netns/test_vrrp_transport.py.
"""

from __future__ import annotations

import ipaddress
import struct

import pytest

from vrrp.garp import (
    GarpPolicy,
    format_mac,
    gratuitous_arp,
    lower_priority_rounds,
    master_rounds,
    na_frame,
    neighbour_advertisement,
    pace,
    parse_mac,
    vrrp_mac,
)
from vrrp.spec import AddressFamily, VrrpInstance

MAC = bytes.fromhex("020000000a01")
VIP4 = ipaddress.IPv4Address("192.0.2.100")
VIP6 = ipaddress.IPv6Address("2001:db8::100")
LINK_LOCAL = ipaddress.IPv6Address("fe80::1")


def test_gratuitous_arp_is_keepalived_s_request():
    frame = gratuitous_arp(MAC, VIP4)
    assert frame == bytes.fromhex(
        "ffffffffffff" "020000000a01" "0806"  # broadcast, from us, ARP
        "0001" "0800" "06" "04" "0001"  # Ethernet/IPv4, request
        "020000000a01" "c0000264"  # sender: our MAC, the VIP
        "ffffffffffff" "c0000264")  # target: broadcast MAC, the VIP again
    assert len(frame) == 42


def test_neighbour_advertisement_override_only():
    na = neighbour_advertisement(MAC, VIP6)
    kind, code, checksum, flags = struct.unpack("!BBHI", na[:8])
    assert (kind, code, checksum) == (136, 0, 0)
    assert flags == 0x20000000  # O only: not a router, not solicited
    assert na[8:24] == VIP6.packed
    assert na[24:] == bytes([2, 1]) + MAC  # target link-layer address option
    assert len(na) == 32


def test_neighbour_advertisement_checksum():
    na = neighbour_advertisement(MAC, VIP6, LINK_LOCAL)
    # Summing the pseudo-header and the message with its checksum gives 0xffff.
    pseudo = LINK_LOCAL.packed + ipaddress.IPv6Address("ff02::1").packed + \
        struct.pack("!I3xB", len(na), 58)
    data = pseudo + na
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    assert total == 0xFFFF
    assert na[:2] + b"\0\0" + na[4:] == neighbour_advertisement(MAC, VIP6)


def test_na_frame_layout():
    frame = na_frame(MAC, VIP6, LINK_LOCAL)
    assert frame[:14] == bytes.fromhex("333300000001") + MAC + b"\x86\xdd"
    ipv6 = frame[14:54]
    assert ipv6[0] >> 4 == 6
    assert struct.unpack("!H", ipv6[4:6])[0] == 32
    assert (ipv6[6], ipv6[7]) == (58, 255)  # ICMPv6, hop limit 255
    assert ipv6[8:24] == LINK_LOCAL.packed
    assert ipv6[24:40] == ipaddress.IPv6Address("ff02::1").packed
    assert frame[54:] == neighbour_advertisement(MAC, VIP6, LINK_LOCAL)
    # keepalived sends it from the VIP itself: the default.
    assert na_frame(MAC, VIP6) == na_frame(MAC, VIP6, VIP6)
    assert na_frame(MAC, VIP6)[22:38] == VIP6.packed


def test_macs():
    assert format_mac(vrrp_mac(51)) == "00:00:5e:00:01:33"
    assert format_mac(vrrp_mac(255, AddressFamily.INET6)) == "00:00:5e:00:02:ff"
    assert parse_mac("00:00:5E:00:01:33") == vrrp_mac(51)
    for bad in (0, 256):
        with pytest.raises(ValueError):
            vrrp_mac(bad)
    with pytest.raises(ValueError):
        parse_mac("00:00:5e")
    with pytest.raises(ValueError):
        gratuitous_arp(b"\0" * 5, VIP4)


def test_master_rounds_keepalived_defaults():
    # 5 at once, 5 more after 5 s, no refresh.
    assert master_rounds(GarpPolicy(), 100.0, 1000.0) == [100.0] * 5 + [105.0] * 5


def test_master_rounds_without_delay_and_with_refresh():
    policy = GarpPolicy(master_delay=0, master_repeat=2, master_refresh=60,
                        master_refresh_repeat=3)
    assert master_rounds(policy, 0.0, 150.0) == [0.0, 0.0] + [60.0] * 3 + [120.0] * 3
    # `until` bounds the refreshes (and the second burst).
    assert master_rounds(GarpPolicy(master_delay=5), 0.0, 4.0) == [0.0] * 5
    assert master_rounds(GarpPolicy(master_repeat=0, master_delay=0), 0.0, 99.0) == []


def test_lower_priority_rounds():
    policy = GarpPolicy(lower_prio_delay=2.5, lower_prio_repeat=2)
    assert lower_priority_rounds(policy, 10.0) == [10.0, 10.0, 12.5, 12.5]
    assert lower_priority_rounds(GarpPolicy(lower_prio_delay=0, lower_prio_repeat=1),
                                 1.0) == [1.0]


def test_pace_spaces_sends_on_an_interface():
    assert pace([0.0, 0.0], per_round=3) == [0.0] * 6
    assert pace([0.0, 0.0, 5.0], per_round=2, interval=0.01) == pytest.approx(
        [0.0, 0.01, 0.02, 0.03, 5.0, 5.01])
    # A round that starts while the previous one is still pacing waits for it.
    assert pace([0.0, 0.015], per_round=2, interval=0.01) == pytest.approx(
        [0.0, 0.01, 0.02, 0.03])


def test_policy_from_instance():
    instance = VrrpInstance(name="VI", garp_master_delay=0, garp_master_repeat=3,
                            garp_master_refresh=30, garp_master_refresh_repeat=2,
                            garp_lower_prio_delay=1, garp_lower_prio_repeat=4)
    policy = GarpPolicy.from_instance(instance, interval=0.002)
    assert policy == GarpPolicy(master_delay=0, master_repeat=3, master_refresh=30,
                                master_refresh_repeat=2, lower_prio_delay=1,
                                lower_prio_repeat=4, interval=0.002)
