"""Gratuitous ARP and unsolicited neighbour advertisements: frames, sending, schedule.

A new master tells the segment that its VIPs moved: for IPv4 a gratuitous ARP per VIP,
for IPv6 an unsolicited neighbour advertisement (RFC 4861 7.2.6) per VIP, in bursts.
Three layers, the first and last pure:

Frames (sans-IO; MACs are 6 ``bytes``, addresses `ipaddress` objects)
- ``gratuitous_arp(mac, address) -> bytes``: the 42-byte Ethernet frame keepalived
  sends: destination ff:ff:ff:ff:ff:ff, source ``mac``, type 0x0806; an ARP *request*
  with sender = target = ``address``, sender MAC ``mac``, target MAC broadcast.
- ``neighbour_advertisement(mac, target, source=None) -> bytes``: the 32-byte ICMPv6
  message: type 136, only the Override flag, ``target``, a target link-layer address
  option with ``mac``. Checksum 0 unless ``source`` is given (then it is computed for
  destination ff02::1); the kernel fills it in when sent on an ICMPv6 raw socket.
- ``na_frame(mac, target, source=None) -> bytes``: the whole Ethernet frame keepalived
  sends (33:33:00:00:00:01, IPv6 flow label 0, hop limit 255, from ``source`` to
  ff02::1; keepalived's source is the VIP itself, the default).
- ``vrrp_mac(vrid, family) -> bytes``: 00:00:5e:00:01:VRID (IPv6: 00:00:5e:00:02:VRID);
  ``format_mac`` / ``parse_mac``.

Sending (thin, synchronous, non-blocking: safe to call on the event loop)
- ``GarpSender.open(interface, *, netns=None, mac=None) -> GarpSender``: ARP through an
  AF_PACKET socket bound to the interface, NA through an ICMPv6 raw socket bound to it
  (hop limit 255, flow label 0, from the VIP to ff02::1 like keepalived; the kernel
  computes the checksum). The frames on the wire are `gratuitous_arp` and `na_frame`
  byte for byte, as captured from keepalived 2.2.7. ``mac`` None:
  the interface's own MAC (a VMAC interface's is the VRRP MAC). Sockets open on first use.
- ``sender.send(address) -> bool`` (ARP or NA by the address's version),
  ``sender.send_all(addresses) -> int``, ``sender.counters`` (arp_sent, na_sent,
  errors), ``sender.last_error``, ``sender.close()``. Failures are counted, never raised.

Schedule (pure; times are seconds as float, on whatever clock the caller uses)
- ``GarpPolicy(master_delay=5.0, master_repeat=5, master_refresh=0.0,
  master_refresh_repeat=1, lower_prio_delay=5.0, lower_prio_repeat=5, interval=0.0)``
  with ``GarpPolicy.from_instance(instance, interval=0.0)``.
- ``master_rounds(policy, became_master, until) -> list[float]``: when a round (one
  GARP/NA per VIP) goes out after becoming master at ``became_master``: ``master_repeat``
  rounds at once, as many ``master_delay`` later (none if the delay is 0), then
  ``master_refresh_repeat`` rounds every ``master_refresh`` seconds (if not 0) up to
  ``until`` - keepalived's behaviour.
- ``lower_priority_rounds(policy, at) -> list[float]``: the same two bursts with the
  lower_prio settings, for a master that hears a lower priority advert.
- ``pace(rounds, per_round, interval) -> list[float]``: the time of every single packet
  when ``per_round`` are sent per round and two sends on an interface are at least
  ``interval`` apart (vrrp_garp_interval / vrrp_gna_interval).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass

from vrrp.spec import AddressFamily, VrrpInstance
from vrrp.transport import interface_index, interface_mac, socket_in_netns

BROADCAST_MAC = b"\xff" * 6
ALL_NODES = ipaddress.IPv6Address("ff02::1")
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"
ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ARPHRD_ETHER = 1
ARPOP_REQUEST = 1
ICMPV6_NEIGHBOUR_ADVERTISEMENT = 136
NA_FLAG_OVERRIDE = 0x20000000
ND_OPT_TARGET_LINKADDR = 2
HOP_LIMIT = 255
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
IPV6_AUTOFLOWLABEL = 70
IPV6_FREEBIND = 78


# ----------------------------------------------------------------- MACs


def vrrp_mac(vrid: int, family: AddressFamily = AddressFamily.INET) -> bytes:
    """The virtual router MAC of RFC 5798 7.3."""
    if not 1 <= vrid <= 255:
        raise ValueError(f"VRID {vrid} not in 1-255")
    return bytes([0, 0, 0x5E, 0, 1 if family is AddressFamily.INET else 2, vrid])


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def parse_mac(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)


def _check_mac(mac: bytes) -> bytes:
    if len(mac) != 6:
        raise ValueError(f"a MAC address is 6 bytes, not {len(mac)}")
    return bytes(mac)


# ----------------------------------------------------------------- frames


def arp_message(mac: bytes, address: ipaddress.IPv4Address) -> bytes:
    """The 28-byte ARP request of a gratuitous ARP (without the Ethernet header)."""
    mac = _check_mac(mac)
    ip = ipaddress.IPv4Address(address).packed
    return struct.pack("!HHBBH6s4s6s4s", ARPHRD_ETHER, ETH_P_IP, 6, 4, ARPOP_REQUEST,
                       mac, ip, BROADCAST_MAC, ip)


def gratuitous_arp(mac: bytes, address: ipaddress.IPv4Address) -> bytes:
    """The Ethernet frame of a gratuitous ARP, as keepalived sends it."""
    mac = _check_mac(mac)
    return BROADCAST_MAC + mac + struct.pack("!H", ETH_P_ARP) + arp_message(mac, address)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def neighbour_advertisement(mac: bytes, target: ipaddress.IPv6Address,
                            source: ipaddress.IPv6Address | None = None) -> bytes:
    """The ICMPv6 unsolicited neighbour advertisement for ``target`` (see the module
    docstring)."""
    mac = _check_mac(mac)
    target = ipaddress.IPv6Address(target)
    body = struct.pack("!BBHI16sBB6s", ICMPV6_NEIGHBOUR_ADVERTISEMENT, 0, 0, NA_FLAG_OVERRIDE,
                       target.packed, ND_OPT_TARGET_LINKADDR, 1, mac)
    if source is None:
        return body
    pseudo = (ipaddress.IPv6Address(source).packed + ALL_NODES.packed
              + struct.pack("!I3xB", len(body), socket.IPPROTO_ICMPV6))
    checksum = _checksum(pseudo + body)
    return body[:2] + struct.pack("!H", checksum) + body[4:]


def na_frame(mac: bytes, target: ipaddress.IPv6Address,
             source: ipaddress.IPv6Address | None = None) -> bytes:
    """The whole Ethernet frame of an unsolicited NA from ``source`` (None: the target
    itself, as keepalived sends it) to ff02::1, flow label 0."""
    mac = _check_mac(mac)
    target = ipaddress.IPv6Address(target)
    source = target if source is None else source
    icmp = neighbour_advertisement(mac, target, source)
    ipv6 = struct.pack("!IHBB16s16s", 6 << 28, len(icmp), socket.IPPROTO_ICMPV6, HOP_LIMIT,
                       ipaddress.IPv6Address(source).packed, ALL_NODES.packed)
    return ALL_NODES_MAC + mac + struct.pack("!H", ETH_P_IPV6) + ipv6 + icmp


# ----------------------------------------------------------------- sending


@dataclass(slots=True)
class GarpCounters:
    arp_sent: int = 0
    na_sent: int = 0
    errors: int = 0


class GarpSender:
    """Sends gratuitous ARPs and unsolicited NAs on one interface."""

    def __init__(self, interface: str, *, netns: str | os.PathLike[str] | None = None,
                 mac: bytes | None = None):
        self.interface = interface
        self.netns = netns
        self._mac = _check_mac(mac) if mac is not None else None
        self._arp: socket.socket | None = None
        self._icmp6: socket.socket | None = None
        self._ifindex = 0
        self.counters = GarpCounters()
        self.last_error: OSError | None = None

    @classmethod
    def open(cls, interface: str, *, netns: str | os.PathLike[str] | None = None,
             mac: bytes | None = None) -> GarpSender:
        """A sender on ``interface``; raises OSError if there is no such interface."""
        sender = cls(interface, netns=netns, mac=mac)
        sender._arp_socket()  # fails now rather than at the first send
        return sender

    @property
    def mac(self) -> bytes:
        if self._mac is None:
            self._mac = interface_mac(self._arp_socket(), self.interface)
        return self._mac

    def _arp_socket(self) -> socket.socket:
        if self._arp is None:
            # Protocol 0 at creation: the socket never receives, and one created with a
            # protocol makes the bind below wait for the kernel to re-register it
            # (~14 ms measured, paid by the first gratuitous ARP of a new master).
            sock = socket_in_netns(self.netns, socket.AF_PACKET, socket.SOCK_RAW, 0)
            try:
                sock.setblocking(False)
                sock.bind((self.interface, ETH_P_ARP))
                self._ifindex = interface_index(sock, self.interface)
            except BaseException:
                sock.close()
                raise
            self._arp = sock
        return self._arp

    def _icmp6_socket(self) -> socket.socket:
        if self._icmp6 is None:
            self._arp_socket()  # the interface index
            sock = socket_in_netns(self.netns, socket.AF_INET6, socket.SOCK_RAW,
                                   socket.IPPROTO_ICMPV6)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE,
                                self.interface.encode())
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, HOP_LIMIT)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, HOP_LIMIT)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self._ifindex)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
                # A flow label of 0 as in keepalived's frames; a VIP source even before
                # (or after) the VIP is on the interface.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_IPV6, IPV6_AUTOFLOWLABEL, 0)
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
            except BaseException:
                sock.close()
                raise
            self._icmp6 = sock
        return self._icmp6

    def send(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address | str) -> bool:
        """One gratuitous ARP (IPv4) or unsolicited NA (IPv6) for ``address``."""
        try:
            address = ipaddress.ip_address(address)
            if address.version == 4:
                self._arp_socket().send(gratuitous_arp(self.mac, address))
                self.counters.arp_sent += 1
            else:
                sock = self._icmp6_socket()
                # From the VIP itself, as keepalived does (the kernel fills the checksum).
                pktinfo = struct.pack("=16sI", address.packed, self._ifindex)
                sock.sendmsg([neighbour_advertisement(self.mac, address)],
                             [(socket.IPPROTO_IPV6, IPV6_PKTINFO, pktinfo)], 0,
                             (str(ALL_NODES), 0, 0, self._ifindex))
                self.counters.na_sent += 1
        except OSError as error:
            self.counters.errors += 1
            self.last_error = error
            return False
        return True

    def send_all(self, addresses) -> int:
        """One packet per address; how many went out."""
        return sum(self.send(address) for address in addresses)

    def close(self) -> None:
        for sock in (self._arp, self._icmp6):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        self._arp = self._icmp6 = None

    def __enter__(self) -> GarpSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------- schedule


@dataclass(frozen=True, slots=True)
class GarpPolicy:
    master_delay: float = 5.0
    master_repeat: int = 5
    master_refresh: float = 0.0
    master_refresh_repeat: int = 1
    lower_prio_delay: float = 5.0
    lower_prio_repeat: int = 5
    interval: float = 0.0  # vrrp_garp_interval / vrrp_gna_interval

    @classmethod
    def from_instance(cls, instance: VrrpInstance, interval: float = 0.0) -> GarpPolicy:
        return cls(master_delay=instance.garp_master_delay,
                   master_repeat=instance.garp_master_repeat,
                   master_refresh=instance.garp_master_refresh,
                   master_refresh_repeat=instance.garp_master_refresh_repeat,
                   lower_prio_delay=instance.garp_lower_prio_delay,
                   lower_prio_repeat=instance.garp_lower_prio_repeat,
                   interval=interval)


def _two_bursts(at: float, repeat: int, delay: float) -> list[float]:
    rounds = [at] * max(repeat, 0)
    if delay > 0:
        rounds += [at + delay] * max(repeat, 0)
    return rounds


def master_rounds(policy: GarpPolicy, became_master: float, until: float) -> list[float]:
    """The start times of the GARP rounds of a master (see the module docstring)."""
    rounds = _two_bursts(became_master, policy.master_repeat, policy.master_delay)
    if policy.master_refresh > 0 and policy.master_refresh_repeat > 0:
        n = 1
        while (at := became_master + n * policy.master_refresh) <= until:
            rounds += [at] * policy.master_refresh_repeat
            n += 1
    return sorted(t for t in rounds if t <= until)


def lower_priority_rounds(policy: GarpPolicy, at: float) -> list[float]:
    """Rounds of a master that received a lower priority advert at ``at``."""
    return _two_bursts(at, policy.lower_prio_repeat, policy.lower_prio_delay)


def pace(rounds: list[float], per_round: int, interval: float = 0.0) -> list[float]:
    """The send time of every packet: ``per_round`` per round, in order, no two on the
    interface closer than ``interval``."""
    times: list[float] = []
    for start in sorted(rounds):
        for _ in range(per_round):
            at = start if not times else max(start, times[-1] + interval)
            times.append(at)
    return times
