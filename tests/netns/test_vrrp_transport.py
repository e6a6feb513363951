"""vrrp.transport on real sockets: two or three lab nodes on one bridge.

Adverts cross with TTL / hop limit 255 and arrive with the receiving interface's index;
a packet crafted with TTL 1 by a plain raw socket is seen as TTL 1 (the caller's check
has something to check); in unicast mode sources that are not peers are dropped and
counted. The payloads are VRRP-looking bytes made by hand: this tier does not depend
on vrrp.packet.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import struct

import pytest

from tests.netns.conftest import KeepalivedFactory
from tests.netns.keepalived_peer import GLOBAL_DEFS
from tests.netns.lab import Lab, Node, wait_until
from vrrp.garp import (
    GarpSender,
    format_mac,
    gratuitous_arp,
    na_frame,
    parse_mac,
    vrrp_mac,
)
from vrrp.spec import AddressFamily, UnicastPeer
from vrrp.transport import (
    TransportCounters,
    VrrpSocket,
    _setup_ipv4,
)

GROUP4 = ipaddress.IPv4Address("224.0.0.18")
GROUP6 = ipaddress.IPv6Address("ff02::12")


def advert(vrid: int, priority: int = 100, version: int = 3) -> bytes:
    """A VRRP-shaped message (type 1 advertisement, one IPv4 address, checksum 0)."""
    return bytes([version << 4 | 1, vrid, priority, 1, 0, 100, 0, 0]) + bytes([192, 0, 2, 100])


def ifindex(node: Node, ifname: str = "eth0") -> int:
    links = json.loads(node.run("ip", "-j", "link", "show", ifname).stdout)
    return links[0]["ifindex"]


async def next_packet(sock: VrrpSocket, timeout: float = 3.0):
    async with asyncio.timeout(timeout):
        return await sock.receive()


async def nothing_arrives(sock: VrrpSocket, wait: float = 0.3) -> bool:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(wait):
            await sock.receive()
    return True


@pytest.fixture
def pair(lab: Lab) -> tuple[Node, Node]:
    return lab.add_node("dir1"), lab.add_node("dir2")


async def test_multicast_advert_crosses_with_ttl_255(pair: tuple[Node, Node]):
    a, b = pair
    tx = await VrrpSocket.open(AddressFamily.INET, "eth0", netns=a.ns)
    rx = await VrrpSocket.open(AddressFamily.INET, "eth0", netns=b.ns)
    try:
        assert rx.ifindex == ifindex(b)
        assert tx.destinations == (GROUP4,)
        assert tx.send(advert(51)) == 1
        got = await next_packet(rx)
        assert got.source == a.ipv4.ip
        assert got.destination == GROUP4
        assert got.ttl == 255
        assert got.ifindex == ifindex(b)
        assert got.payload == advert(51)
        header = got.data[:20]
        assert header[9] == 112 and header[1] == 0xC0  # protocol, TOS as keepalived
        assert struct.unpack("!H", header[6:8])[0] & 0x4000 == 0  # no DF
        assert got.data[20:] == advert(51)
        assert rx.counters.delivered == 1
        # Our own adverts do not come back to us (no multicast loop).
        assert await nothing_arrives(tx)
    finally:
        tx.close()
        rx.close()


async def test_ttl_1_packet_is_reported_with_ttl_1(pair: tuple[Node, Node]):
    a, b = pair
    rx = await VrrpSocket.open(AddressFamily.INET, "eth0", netns=b.ns)
    raw = a.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    try:
        raw.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
        raw.sendto(advert(7), (str(GROUP4), 0))
        got = await next_packet(rx)
        assert got.ttl == 1
        assert got.payload == advert(7)
    finally:
        raw.close()
        rx.close()


async def test_unicast_peers_only(lab: Lab):
    a, b, c = lab.add_node("dir1"), lab.add_node("dir2"), lab.add_node("intruder")
    # b listens in unicast mode with a as its only peer; c is on the same segment.
    rx = await VrrpSocket.open(AddressFamily.INET, "eth0", netns=b.ns,
                               unicast_peers=[UnicastPeer(address=a.ipv4.ip)],
                               source=b.ipv4.ip)
    tx_a = await VrrpSocket.open(AddressFamily.INET, "eth0", netns=a.ns,
                                 unicast_peers=[b.ipv4.ip], source=a.ipv4.ip)
    tx_c = await VrrpSocket.open(AddressFamily.INET, "eth0", netns=c.ns,
                                 unicast_peers=[str(b.ipv4.ip)])
    mcast_c = await VrrpSocket.open(AddressFamily.INET, "eth0", netns=c.ns)
    try:
        assert rx.unicast and rx.destinations == (a.ipv4.ip,)
        assert tx_c.send(advert(9, priority=254)) == 1  # higher priority, not a peer
        assert mcast_c.send(advert(9, priority=254)) == 1  # multicast: not joined
        assert tx_a.send(advert(9)) == 1
        got = await next_packet(rx)
        assert got.source == a.ipv4.ip
        assert got.destination == b.ipv4.ip
        assert got.ttl == 255
        assert got.payload == advert(9)
        assert await nothing_arrives(rx)
        assert rx.counters.dropped_not_peer == 1
        assert rx.counters.delivered == 1
    finally:
        for s in (rx, tx_a, tx_c, mcast_c):
            s.close()


async def test_unicast_ttl_and_source_address(pair: tuple[Node, Node]):
    a, b = pair
    a.run("ip", "addr", "add", "192.0.2.50/24", "dev", "eth0")
    rx = await VrrpSocket.open(AddressFamily.INET, "eth0", netns=b.ns)
    tx = await VrrpSocket.open(AddressFamily.INET, "eth0", netns=a.ns,
                               unicast_peers=[b.ipv4.ip], source="192.0.2.50",
                               unicast_ttl=64)
    mtx = await VrrpSocket.open(AddressFamily.INET, "eth0", netns=a.ns, source="192.0.2.50")
    try:
        tx.send(advert(3))
        got = await next_packet(rx)
        assert (got.source, got.destination, got.ttl) == (
            ipaddress.IPv4Address("192.0.2.50"), b.ipv4.ip, 64)
        mtx.send(advert(4))
        got = await next_packet(rx)
        assert (got.source, got.destination, got.ttl) == (
            ipaddress.IPv4Address("192.0.2.50"), GROUP4, 255)
    finally:
        for s in (rx, tx, mtx):
            s.close()


async def test_ipv6_hop_limit_and_pktinfo(pair: tuple[Node, Node]):
    a, b = pair
    tx = await VrrpSocket.open(AddressFamily.INET6, "eth0", netns=a.ns)
    rx = await VrrpSocket.open(AddressFamily.INET6, "eth0", netns=b.ns)
    raw = a.socket(socket.AF_INET6, socket.SOCK_RAW, 112)
    try:
        assert tx.send(advert(60)) == 1
        got = await next_packet(rx)
        assert got.source.is_link_local  # the kernel's choice for ff02::12
        assert got.destination == GROUP6
        assert got.ttl == 255
        assert got.ifindex == ifindex(b)
        assert got.data == got.payload == advert(60)

        raw.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
        raw.sendto(advert(61), (str(GROUP6), 0, 0, ifindex(a)))
        got = await next_packet(rx)
        assert got.ttl == 1 and got.payload == advert(61)
    finally:
        raw.close()
        tx.close()
        rx.close()


async def test_ipv6_unicast_peers(lab: Lab):
    a, b, c = lab.add_node("dir1"), lab.add_node("dir2"), lab.add_node("intruder")
    rx = await VrrpSocket.open(AddressFamily.INET6, "eth0", netns=b.ns,
                               unicast_peers=[a.ipv6.ip])
    tx_a = await VrrpSocket.open(AddressFamily.INET6, "eth0", netns=a.ns,
                                 unicast_peers=[b.ipv6.ip], source=a.ipv6.ip)
    tx_c = await VrrpSocket.open(AddressFamily.INET6, "eth0", netns=c.ns,
                                 unicast_peers=[b.ipv6.ip])
    try:
        tx_c.send(advert(5, 254))
        tx_a.send(advert(5))
        got = await next_packet(rx)
        assert (got.source, got.destination, got.ttl) == (a.ipv6.ip, b.ipv6.ip, 255)
        assert await nothing_arrives(rx)
        assert rx.counters.dropped_not_peer == 1
    finally:
        for s in (rx, tx_a, tx_c):
            s.close()


async def test_callback_iteration_close_and_send_errors(pair: tuple[Node, Node]):
    a, b = pair
    seen = []

    def callback(received):
        seen.append(received)
        if len(seen) == 2:
            raise RuntimeError("a bug in the caller")

    rx_cb = await VrrpSocket.open(AddressFamily.INET, "eth0", netns=b.ns, on_receive=callback)
    rx = await VrrpSocket.open(AddressFamily.INET, "eth0", netns=b.ns, queue_size=2)
    tx = await VrrpSocket.open(AddressFamily.INET, "eth0", netns=a.ns)
    try:
        for vrid in (1, 2, 3, 4):
            tx.send(advert(vrid))
        await asyncio.sleep(0.3)
        assert [r.payload[1] for r in seen] == [1, 2, 3, 4]
        assert rx_cb.counters.callback_errors == 1
        # The queue holds 2: the other two are dropped and counted.
        assert rx.counters.dropped_overflow == 2
        got = []
        rx.close()
        async for received in rx:  # drains what was queued, then ends
            got.append(received.payload[1])
        assert got == [1, 2]
        assert rx.send(advert(1)) == 0
        # A failure is counted, not raised.
        assert tx.send(advert(1), "2001:db8::1") == 0  # wrong family
        assert tx.counters.send_errors == 1 and tx.last_send_error is not None
        assert tx.counters.sent == 4
    finally:
        for s in (rx_cb, rx, tx):
            s.close()


async def test_link_down_and_missing_interface(pair: tuple[Node, Node]):
    a, _b = pair
    with pytest.raises(OSError):
        await VrrpSocket.open(AddressFamily.INET, "nosuch0", netns=a.ns)
    with pytest.raises(ValueError):
        await VrrpSocket.open(AddressFamily.INET, None, netns=a.ns)
    with pytest.raises(ValueError):
        await VrrpSocket.open(AddressFamily.INET, "eth0", netns=a.ns, group="ff02::12")
    tx = await VrrpSocket.open(AddressFamily.INET, "eth0", netns=a.ns)
    try:
        a.run("ip", "link", "set", "eth0", "down")
        assert tx.send(advert(1)) == 0
        assert tx.counters.send_errors == 1
        a.run("ip", "link", "set", "eth0", "up")
        assert tx.send(advert(1)) == 1
    finally:
        tx.close()


async def test_odd_input_is_dropped_not_raised():
    """The parser meets what a raw socket could hand it; none of it raises."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # never read: only parsed
    _setup_ipv4(sock, 0, GROUP4, 255, join=False)
    vrrp_sock = VrrpSocket(sock, family=AddressFamily.INET, interface=None, ifindex=0,
                           group=GROUP4, peers=(), source=None, protocol=112,
                           on_receive=None, queue_size=4)
    try:
        for junk in (b"", b"\x45", b"\x60" + bytes(30), b"\x4f" + bytes(19),
                     b"\x41" + bytes(25), b"\x45\x00\x00\x05" + bytes(16)):
            assert vrrp_sock._parse(junk, [], 0, ("0.0.0.0", 0)) is None
        ok = vrrp_sock._parse(b"\x45\x00\x00\x1c" + bytes(4) + b"\xff\x70\x00\x00"
                              + bytes([192, 0, 2, 1]) + GROUP4.packed + advert(1)[:8],
                              [(socket.IPPROTO_IP, 8, b"\x01")], 0, ("192.0.2.1", 0))
        assert ok is not None and ok.ttl == 255 and ok.ifindex == 0
        assert ok.payload == advert(1)[:8]
        assert TransportCounters().dropped_malformed == 0
    finally:
        vrrp_sock.close()


# ----------------------------------------------------------------- GARP and NA


def mac_of(node: Node, ifname: str = "eth0") -> bytes:
    links = json.loads(node.run("ip", "-j", "link", "show", ifname).stdout)
    return parse_mac(links[0]["address"])


def neighbour(node: Node, address: str) -> dict | None:
    entries = json.loads(node.run("ip", "-j", "neigh", "show", address).stdout or "[]")
    return entries[0] if entries else None


def arp_frames(cap) -> list[bytes]:
    cap.poll(0.05)
    return [frame for _t, frame in cap.frames if frame[12:14] == b"\x08\x06"]


def na_frames(cap) -> list[bytes]:
    cap.poll(0.05)
    return [frame for _t, frame in cap.frames
            if frame[12:14] == b"\x86\xdd" and frame[20] == 58 and frame[54] == 136]


def test_gratuitous_arp_updates_the_neighbour_table(lab: Lab):
    a = lab.add_node("dir1")
    b = lab.add_node("dir2", sysctls={"net.ipv4.conf.all.arp_accept": 1,
                                      "net.ipv4.conf.eth0.arp_accept": 1})
    vip = ipaddress.IPv4Address("192.0.2.100")
    with lab.capture(b.ns, "eth0") as cap, GarpSender.open("eth0", netns=a.ns) as sender:
        assert sender.mac == mac_of(a)
        assert sender.send(vip)
        frames = wait_until(lambda: arp_frames(cap), 3)
        assert frames[0] == gratuitous_arp(mac_of(a), vip)
        entry = wait_until(lambda: neighbour(b, str(vip)), 3)
        assert entry["lladdr"] == format_mac(mac_of(a))
        # An entry that names another MAC is moved to ours.
        b.run("ip", "neigh", "replace", str(vip), "lladdr", "02:00:00:00:00:99",
              "dev", "eth0", "nud", "stale")
        assert sender.send_all([vip, vip]) == 2
        wait_until(lambda: neighbour(b, str(vip))["lladdr"] == format_mac(mac_of(a)), 3)
        assert sender.counters.arp_sent == 3 and sender.counters.errors == 0


def test_unsolicited_na_updates_the_neighbour_table(lab: Lab):
    a = lab.add_node("dir1")
    b = lab.add_node("dir2")
    vip = ipaddress.IPv6Address("2001:db8::100")
    b.run("ip", "-6", "neigh", "replace", str(vip), "lladdr", "02:00:00:00:00:99",
          "dev", "eth0", "nud", "stale")
    with lab.capture(b.ns, "eth0") as cap, GarpSender.open("eth0", netns=a.ns) as sender:
        assert sender.send(vip)
        frames = wait_until(lambda: na_frames(cap), 3)
        assert frames[0] == na_frame(mac_of(a), vip)  # from the VIP; checksum: the kernel's
        wait_until(lambda: neighbour(b, str(vip))["lladdr"] == format_mac(mac_of(a)), 3)
        assert sender.counters.na_sent == 1


def test_garp_sender_failures_are_counted(lab: Lab):
    a = lab.add_node("dir1")
    with pytest.raises(OSError):
        GarpSender.open("nosuch0", netns=a.ns)
    with GarpSender.open("eth0", netns=a.ns, mac=vrrp_mac(51)) as sender:
        a.run("ip", "link", "set", "eth0", "down")
        assert not sender.send("192.0.2.100")
        assert not sender.send("2001:db8::100")
        assert sender.counters.errors == 2 and sender.last_error is not None


KEEPALIVED_GARP_CONF = GLOBAL_DEFS + """
vrrp_instance VI_4 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 255
    advert_int 1
    garp_master_delay 0
    virtual_ipaddress {
        192.0.2.100/24
    }
}
vrrp_instance VI_6 {
    state MASTER
    interface eth0
    virtual_router_id 52
    priority 255
    advert_int 1
    garp_master_delay 0
    virtual_ipaddress {
        2001:db8::100/64
    }
}
"""


def test_frames_are_keepalived_s(lab: Lab, keepalived: KeepalivedFactory):
    """keepalived's own GARP and NA, captured, are byte for byte our builders' frames."""
    a = lab.add_node("dir1")
    b = lab.add_node("dir2")
    with lab.capture(b.ns, "eth0") as cap:
        peer = keepalived(a, KEEPALIVED_GARP_CONF)
        peer.wait_master("VI_4", 10)
        peer.wait_master("VI_6", 10)
        arp = wait_until(lambda: len(arp_frames(cap)) >= 5 and arp_frames(cap), 5)
        na = wait_until(lambda: len(na_frames(cap)) >= 5 and na_frames(cap), 5)
    vip4 = ipaddress.IPv4Address("192.0.2.100")
    vip6 = ipaddress.IPv6Address("2001:db8::100")
    ours = gratuitous_arp(mac_of(a), vip4).hex()
    assert {f.hex() for f in arp if f[28:32] == vip4.packed} == {ours}
    assert {f.hex() for f in na} == {na_frame(mac_of(a), vip6).hex()}
