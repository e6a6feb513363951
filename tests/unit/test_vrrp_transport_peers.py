"""`VrrpSocket.set_peers` (a reload's new unicast peers), on a plain UDP socket: no
root needed, the peer filter and the destinations are what changes."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from vrrp.spec import AddressFamily
from vrrp.transport import VrrpSocket

A, B, C = (ipaddress.IPv4Address(f"192.0.2.{n}") for n in (2, 3, 4))


async def make(peers) -> VrrpSocket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return VrrpSocket(sock, family=AddressFamily.INET, interface="eth0", ifindex=1,
                      group=ipaddress.IPv4Address("224.0.0.18"), peers=peers, source=None,
                      protocol=112, on_receive=None, queue_size=4)


async def test_new_peers_replace_the_old_ones():
    vs = await make((A,))
    vs.set_peers([B, str(C)])
    assert vs.destinations == (B, C) and vs.peers == (B, C)
    assert vs._peer_set == frozenset({B, C})
    vs.close()


async def test_multicast_and_unicast_do_not_swap():
    unicast, multicast = await make((A,)), await make(())
    with pytest.raises(ValueError, match="new socket"):
        unicast.set_peers([])
    with pytest.raises(ValueError, match="new socket"):
        multicast.set_peers([A])
    with pytest.raises(ValueError, match="IPv4"):
        unicast.set_peers(["2001:db8::1"])
    unicast.close()
    multicast.close()
