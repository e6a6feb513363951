"""VRRP on the wire: asyncio adapters around raw IP protocol 112 sockets. Bytes only.

This module moves VRRP messages between the network and the caller; it does not
encode nor decode them (that is `vrrp.packet`), and it decides nothing but what the
socket layer must decide: which interface, which group, TTL/hop limit 255 on what it
sends, and in unicast mode which sources are peers.

Public API
----------
``sock = await VrrpSocket.open(family, interface, *, group=None, unicast_peers=(),
source=None, unicast_ttl=None, protocol=112, netns=None, on_receive=None,
queue_size=1024, rcvbuf=None, kernel_checksum=False, hdrincl=False)``

- ``family``: `vrrp.spec.AddressFamily` (or ``socket.AF_INET`` / ``socket.AF_INET6``).
- ``interface``: the interface name (str), or None for a unicast-only socket that is
  not bound to a device. With an interface the socket is bound to it
  (SO_BINDTODEVICE), sends multicast through it (IP_MULTICAST_IF / IPV6_MULTICAST_IF)
  and, when there are no unicast peers, joins ``group`` on it.
- ``group``: the multicast group; None: 224.0.0.18 / ff02::12 (``vrrp_mcast_group4/6``).
- ``unicast_peers``: addresses (`ipaddress` objects or strings) or `vrrp.spec.UnicastPeer`
  values. Non-empty means unicast mode: no group is joined, `destinations` are the
  peers, and every received packet whose source is not a peer is dropped and counted
  in ``counters.dropped_not_peer``.
- ``source``: the source address of what is sent (unicast_src_ip / mcast_src_ip);
  None: the kernel's choice (the interface's primary address; IPv6: its link-local).
  Set per packet with IP_PKTINFO / IPV6_PKTINFO, so receiving is not restricted by it.
- ``unicast_ttl``: TTL / hop limit of unicast sends (keepalived's ``unicast_ttl``);
  None: 255. Multicast always goes out with 255.
- ``protocol``: 112 (VRRP); 51 for a socket carrying VRRPv2 ``auth_type AH``.
- ``netns``: a network namespace name (under /run/netns) or path, or None for the
  caller's own; the sockets are created inside it and stay there.
- ``on_receive``: a callable taking one `Datagram`; when given, packets are handed to
  it from the event loop's reader callback (an exception it raises is counted in
  ``counters.callback_errors`` and swallowed) and the queue is not used.
- ``queue_size``: otherwise packets wait in a queue of this many (then the newest are
  dropped, ``counters.dropped_overflow``) for ``await sock.receive()`` or
  ``async for received in sock``.
- ``hdrincl``: IPv4 only: IP_HDRINCL, the caller sends whole IPv4 datagrams (header
  included: `vrrp.packet.encode_ipv4`, needed for VRRPv2 ``auth_type AH`` whose ICV
  covers the IP header, with ``protocol=51``); `send` then takes the datagram. The
  kernel fills in nothing but the header checksum (and the id when it is 0).
- ``kernel_checksum``: IPv6 only: let the kernel fill in (and verify: bad ones are then
  dropped unseen) the VRRPv3 checksum at offset 6 (IPV6_CHECKSUM). Off by default so
  that the caller sees and counts bad checksums itself.

``open`` raises OSError when the socket cannot be made (no such interface: ENODEV;
not root: EPERM) and ValueError for inconsistent arguments (no interface and no peers).

``sock.send(payload: bytes, destination=None) -> int``: sends ``payload`` as one
VRRP message (the kernel writes the IP header: TOS 0xc0, TTL/hop limit 255, no DF)
to ``destination``, or when None to every address of `sock.destinations` (the group,
or each unicast peer in turn). Returns how many datagrams left; a failure (link down,
no route...) never raises: it is counted in ``counters.send_errors`` and kept in
``sock.last_send_error``. A VRRPv3 checksum covers the destination address, so a
caller encoding v3 for several peers sends once per peer with ``destination`` set.

``Datagram`` (frozen): ``data`` (bytes: for IPv4 the whole IP datagram, header
included, as the kernel gives it; for IPv6 the VRRP message, the kernel never gives
the IPv6 header), ``source`` and ``destination`` (`ipaddress` objects; the
destination is the packet's, a group or one of our addresses), ``ttl`` (int: IPv4 TTL
or IPv6 hop limit; -1 if the kernel did not say), ``ifindex`` (int, the receiving
interface; 0 if unknown), and the property ``payload`` (the VRRP message in both
families). Checking that ``ttl`` is 255 is the caller's job (it counts it per
instance).

``sock.counters`` (`TransportCounters`): received, delivered, dropped_not_peer,
dropped_malformed, dropped_overflow, receive_errors, callback_errors, sent,
send_errors. ``sock.close()`` (idempotent, also ``async with``) stops reading, closes
the socket and ends the iteration. ``sock.set_peers(peers)``: a reload's new unicast
peer list (ValueError when it would turn multicast into unicast or back).
Attributes: family, interface, ifindex, group, peers, source, destinations, protocol.

Everything runs on the event loop's thread: reading is a loop reader callback
(``add_reader``), sending a non-blocking ``sendmsg``; nothing here blocks. Odd input
(truncated, not IPv4, bogus header length, unknown ancillary data) is counted and
dropped, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import ipaddress
import logging
import os
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from vrrp.spec import VRRP_MCAST_GROUP4, VRRP_MCAST_GROUP6, AddressFamily, UnicastPeer

log = logging.getLogger(__name__)

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

VRRP_PROTOCOL = 112
AH_PROTOCOL = 51
TTL = 255  # RFC 5798 5.1.1.3: sent with 255, anything else is dropped by the receiver
IPTOS_PREC_INTERNETCONTROL = 0xC0  # what keepalived's adverts carry
VRRP_CHECKSUM_OFFSET = 6

# Linux constants the socket module does not export everywhere.
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IP_MTU_DISCOVER = 10
IP_PMTUDISC_DONT = 0
IP_MULTICAST_ALL = 49
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
IPV6_CHECKSUM = getattr(socket, "IPV6_CHECKSUM", 7)
IPV6_MULTICAST_ALL = 29
SIOCGIFINDEX = 0x8933
SIOCGIFHWADDR = 0x8927
IFNAMSIZ = 16

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

MAX_DATAGRAM = 65535
READS_PER_WAKEUP = 64  # then yield to the loop, so a flood cannot starve timers


# ----------------------------------------------------------------- namespaces, interfaces


def netns_path(netns: str | os.PathLike[str]) -> Path:
    text = os.fspath(netns)
    return Path(text) if "/" in text else NETNS_DIR / text


def socket_in_netns(netns: str | os.PathLike[str] | None, family: int, type: int,
                    proto: int = 0) -> socket.socket:
    """A socket created inside ``netns`` (None: here). It stays in that namespace.

    Only the calling thread changes namespace, only for the socket() call, and it is
    put back before returning (if that fails the process aborts: nothing it did
    afterwards could be trusted)."""
    if netns is None:
        return socket.socket(family, type, proto)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(netns_path(netns), os.O_RDONLY)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns into {os.fspath(netns)}: {os.strerror(err)}")
            try:
                return socket.socket(family, type, proto)
            finally:
                if _libc.setns(own, CLONE_NEWNET) != 0:
                    os.abort()
        finally:
            os.close(target)
    finally:
        os.close(own)


def interface_index(sock: socket.socket, interface: str) -> int:
    """The index of ``interface`` in the socket's own namespace (SIOCGIFINDEX)."""
    name = interface.encode()
    if not name or len(name) >= IFNAMSIZ:
        raise OSError(19, f"bad interface name {interface!r}")  # ENODEV
    answer = fcntl.ioctl(sock.fileno(), SIOCGIFINDEX, struct.pack("16si12x", name, 0))
    return struct.unpack_from("16si", answer)[1]


def interface_mac(sock: socket.socket, interface: str) -> bytes:
    """The hardware address of ``interface`` in the socket's namespace (SIOCGIFHWADDR)."""
    name = interface.encode()
    if not name or len(name) >= IFNAMSIZ:
        raise OSError(19, f"bad interface name {interface!r}")
    answer = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, struct.pack("16s16x", name))
    return answer[18:24]  # struct sockaddr after the name: family (2), then the MAC


def _family(family: AddressFamily | int | str) -> AddressFamily:
    if family in (socket.AF_INET, AddressFamily.INET, "inet", 4):
        return AddressFamily.INET
    if family in (socket.AF_INET6, AddressFamily.INET6, "inet6", 6):
        return AddressFamily.INET6
    raise ValueError(f"not an address family: {family!r}")


# ----------------------------------------------------------------- what comes in


@dataclass(frozen=True, slots=True)
class Datagram:
    """One datagram received (see the module docstring)."""

    data: bytes
    source: IPAddress
    destination: IPAddress | None
    ttl: int
    ifindex: int

    @property
    def payload(self) -> bytes:
        """The VRRP message: for IPv4 what follows the IP header (up to its total
        length), for IPv6 ``data`` itself."""
        if self.source.version == 6:
            return self.data
        header = (self.data[0] & 0x0F) * 4
        total = struct.unpack_from("!H", self.data, 2)[0]
        return self.data[header:min(total, len(self.data))]


@dataclass(slots=True)
class TransportCounters:
    received: int = 0  # datagrams read from the socket
    delivered: int = 0  # handed to the caller
    dropped_not_peer: int = 0  # unicast mode: the source is not a peer
    dropped_malformed: int = 0  # truncated, not IPv4, bad header length
    dropped_overflow: int = 0  # the queue was full
    receive_errors: int = 0  # recvmsg failed (other than "nothing to read")
    callback_errors: int = 0  # on_receive raised
    sent: int = 0
    send_errors: int = 0


_CLOSED = object()


def _peer_address(peer: UnicastPeer | IPAddress | str) -> IPAddress:
    if isinstance(peer, UnicastPeer):
        return peer.address
    return ipaddress.ip_address(peer)


class VrrpSocket:
    """A raw VRRP socket on one interface (see the module docstring)."""

    def __init__(self, sock: socket.socket, *, family: AddressFamily, interface: str | None,
                 ifindex: int, group: IPAddress, peers: tuple[IPAddress, ...],
                 source: IPAddress | None, protocol: int,
                 on_receive: Callable[[Datagram], object] | None, queue_size: int):
        self.sock = sock
        self.family = family
        self.interface = interface
        self.ifindex = ifindex
        self.group = group
        self.peers = peers
        self._peer_set = frozenset(peers)
        self.source = source
        self.protocol = protocol
        self.counters = TransportCounters()
        self.last_send_error: OSError | None = None
        self.hdrincl = False
        self._on_receive = on_receive
        self._queue: asyncio.Queue[Datagram | object] = asyncio.Queue(maxsize=queue_size + 1)
        self._queue_size = queue_size
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._ancillary = socket.CMSG_SPACE(20) + socket.CMSG_SPACE(4) + 64
        self._send_ancillary = self._pktinfo(source)
        self._loop.add_reader(sock.fileno(), self._readable)

    # -- opening

    @classmethod
    async def open(cls, family: AddressFamily | int | str, interface: str | None, *,
                   group: IPAddress | str | None = None,
                   unicast_peers: Iterable[UnicastPeer | IPAddress | str] = (),
                   source: IPAddress | str | None = None,
                   unicast_ttl: int | None = None,
                   protocol: int = VRRP_PROTOCOL,
                   netns: str | os.PathLike[str] | None = None,
                   on_receive: Callable[[Datagram], object] | None = None,
                   queue_size: int = 1024,
                   rcvbuf: int | None = None,
                   kernel_checksum: bool = False,
                   hdrincl: bool = False) -> VrrpSocket:
        fam = _family(family)
        peers = tuple(_peer_address(p) for p in unicast_peers)
        if interface is None and not peers:
            raise ValueError("a VRRP socket needs an interface or unicast peers")
        version = 4 if fam is AddressFamily.INET else 6
        if group is None:
            group = VRRP_MCAST_GROUP4 if version == 4 else VRRP_MCAST_GROUP6
        group = ipaddress.ip_address(group)
        src = ipaddress.ip_address(source) if source is not None else None
        for address in (group, *peers, *([src] if src else [])):
            if address.version != version:
                raise ValueError(f"{address} is not an IPv{version} address")
        ttl = TTL if unicast_ttl is None else unicast_ttl
        if not 1 <= ttl <= 255:
            raise ValueError(f"unicast_ttl {ttl} not in 1-255")

        af = socket.AF_INET if version == 4 else socket.AF_INET6
        sock = socket_in_netns(netns, af, socket.SOCK_RAW, protocol)
        try:
            sock.setblocking(False)
            ifindex = 0
            if interface is not None:
                ifindex = interface_index(sock, interface)
                sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, interface.encode())
            if rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if version == 4:
                _setup_ipv4(sock, ifindex, group, ttl, join=not peers and ifindex != 0)
                if hdrincl:
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
            elif hdrincl:
                raise ValueError("IP_HDRINCL is IPv4 only")
            else:
                _setup_ipv6(sock, ifindex, group, ttl, join=not peers and ifindex != 0,
                            kernel_checksum=kernel_checksum)
        except BaseException:
            sock.close()
            raise
        made = cls(sock, family=fam, interface=interface, ifindex=ifindex, group=group,
                   peers=peers, source=src, protocol=protocol, on_receive=on_receive,
                   queue_size=queue_size)
        if hdrincl:
            made.hdrincl = True
            made._send_ancillary = []  # the datagram carries its own source
        return made

    # -- properties

    @property
    def unicast(self) -> bool:
        return bool(self.peers)

    @property
    def destinations(self) -> tuple[IPAddress, ...]:
        """Where `send` goes without a destination: the peers, else the group."""
        return self.peers if self.peers else (self.group,)

    def set_peers(self, unicast_peers: Iterable[UnicastPeer | IPAddress | str]) -> None:
        """A reload changed the unicast peers (unicast stays unicast: a socket that
        joined the multicast group is not turned into a unicast one here)."""
        peers = tuple(_peer_address(p) for p in unicast_peers)
        if bool(peers) != bool(self.peers):
            raise ValueError("multicast <-> unicast needs a new socket")
        for address in peers:
            if address.version != self.group.version:
                raise ValueError(f"{address} is not an IPv{self.group.version} address")
        self.peers = peers
        self._peer_set = frozenset(peers)

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- sending

    def _pktinfo(self, source: IPAddress | None) -> list[tuple[int, int, bytes]]:
        if source is None:
            return []
        if source.version == 4:
            return [(socket.IPPROTO_IP, IP_PKTINFO,
                     struct.pack("=i4s4s", 0, source.packed, bytes(4)))]
        return [(socket.IPPROTO_IPV6, IPV6_PKTINFO,
                 struct.pack("=16sI", source.packed, self.ifindex))]

    def _sockaddr(self, destination: IPAddress) -> tuple:
        if destination.version == 4:
            return (str(destination), 0)
        scoped = destination.is_link_local or (destination.is_multicast
                                               and (destination.packed[1] & 0x0F) <= 2)
        return (str(destination), 0, 0, self.ifindex if scoped else 0)

    def send(self, payload: bytes, destination: IPAddress | str | None = None) -> int:
        """Send ``payload`` to ``destination`` or to every address of `destinations`;
        the number of datagrams sent (failures are counted, never raised)."""
        if self._closed:
            return 0
        targets = (self.destinations if destination is None
                   else (ipaddress.ip_address(destination),))
        sent = 0
        for target in targets:
            try:
                if target.version != (4 if self.family is AddressFamily.INET else 6):
                    raise OSError(97, f"{target}: wrong address family")  # EAFNOSUPPORT
                self.sock.sendmsg([payload], self._send_ancillary, 0, self._sockaddr(target))
            except OSError as error:
                self.counters.send_errors += 1
                self.last_send_error = error
                log.debug("VRRP send to %s on %s failed: %s", target, self.interface, error)
            else:
                self.counters.sent += 1
                sent += 1
        return sent

    # -- receiving

    def _readable(self) -> None:
        for _ in range(READS_PER_WAKEUP):
            if self._closed:
                return
            try:
                data, ancillary, flags, address = self.sock.recvmsg(MAX_DATAGRAM,
                                                                    self._ancillary)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # e.g. ENETDOWN when the link went away
                self.counters.receive_errors += 1
                log.debug("VRRP receive on %s failed: %s", self.interface, error)
                return
            self.counters.received += 1
            try:
                received = self._parse(data, ancillary, flags, address)
            except (ValueError, struct.error, IndexError, TypeError):
                received = None
            if received is None:
                self.counters.dropped_malformed += 1
                continue
            if self._peer_set and received.source not in self._peer_set:
                self.counters.dropped_not_peer += 1
                continue
            self._deliver(received)

    def _parse(self, data: bytes, ancillary: list[tuple[int, int, bytes]], flags: int,
               address: tuple) -> Datagram | None:
        if flags & socket.MSG_TRUNC:
            return None
        ifindex = 0
        if self.family is AddressFamily.INET:
            if len(data) < 20 or data[0] >> 4 != 4:
                return None
            header = (data[0] & 0x0F) * 4
            total = struct.unpack_from("!H", data, 2)[0]
            if header < 20 or header > len(data) or total < header:
                return None
            for level, kind, value in ancillary:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(value) >= 12:
                    ifindex = struct.unpack_from("=i", value)[0]
            return Datagram(data, ipaddress.IPv4Address(data[12:16]),
                            ipaddress.IPv4Address(data[16:20]), data[8], ifindex)
        hop_limit = -1
        destination = None
        for level, kind, value in ancillary:
            if level != socket.IPPROTO_IPV6:
                continue
            if kind == IPV6_HOPLIMIT and len(value) >= 4:
                hop_limit = struct.unpack_from("=i", value)[0]
            elif kind == IPV6_PKTINFO and len(value) >= 20:
                raw, ifindex = struct.unpack_from("=16sI", value)
                destination = ipaddress.IPv6Address(raw)
        source = ipaddress.IPv6Address(str(address[0]).split("%", 1)[0])
        return Datagram(data, source, destination, hop_limit, ifindex)

    def _deliver(self, received: Datagram) -> None:
        if self._on_receive is not None:
            try:
                self._on_receive(received)
            except Exception:
                self.counters.callback_errors += 1
                log.exception("VRRP receive callback failed")
            else:
                self.counters.delivered += 1
            return
        if self._queue.qsize() >= self._queue_size:
            self.counters.dropped_overflow += 1
            return
        self._queue.put_nowait(received)
        self.counters.delivered += 1

    async def receive(self) -> Datagram:
        """The next packet; raises EOFError once the socket is closed (and drained)."""
        if self._on_receive is not None:
            raise RuntimeError("this socket hands packets to its on_receive callback")
        if self._closed and self._queue.empty():
            raise EOFError("VRRP socket closed")
        item = await self._queue.get()
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # for any other waiter
            raise EOFError("VRRP socket closed")
        assert isinstance(item, Datagram)
        return item

    def __aiter__(self) -> VrrpSocket:
        return self

    async def __anext__(self) -> Datagram:
        try:
            return await self.receive()
        except EOFError:
            raise StopAsyncIteration from None

    # -- closing

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_CLOSED)

    async def __aenter__(self) -> VrrpSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------- socket options


def _mreqn(group: ipaddress.IPv4Address | None, ifindex: int) -> bytes:
    """struct ip_mreqn: multicast group, local address (any), interface index."""
    return struct.pack("=4s4si", group.packed if group else bytes(4), bytes(4), ifindex)


def _setup_ipv4(sock: socket.socket, ifindex: int, group: IPAddress, ttl: int,
                join: bool) -> None:
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, TTL)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, IPTOS_PREC_INTERNETCONTROL)
    sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)  # no DF
    sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    # Only the groups this socket joined, not every group some socket joined.
    sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
    if ifindex:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, _mreqn(None, ifindex))
    if join:
        assert isinstance(group, ipaddress.IPv4Address)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, _mreqn(group, ifindex))


def _setup_ipv6(sock: socket.socket, ifindex: int, group: IPAddress, hops: int,
                join: bool, kernel_checksum: bool) -> None:
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, TTL)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, hops)
    sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
    with contextlib.suppress(OSError):  # kernels before 4.20 lack it
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)
    if kernel_checksum:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_CHECKSUM, VRRP_CHECKSUM_OFFSET)
    if ifindex:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
    if join:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                        struct.pack("=16sI", group.packed, ifindex))
