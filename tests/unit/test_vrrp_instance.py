"""The glue of vrrp.instance without a network: datagram checks and counters, the
adverts it sends, the actions it carries out, its timer; a fake socket and a fake
address manager stand in for the kernel (what they record is what the runner asked)."""

from __future__ import annotations

import asyncio
import ipaddress
import struct

import pytest

from vrrp.instance import (
    Dropped,
    VrrpInstanceRunner,
    advert_addresses,
    check_datagram,
    make_advert,
)
from vrrp.machine import State
from vrrp.packet import Advert, checksum, decode, encode
from vrrp.spec import Authentication, AuthType, InstanceState, VirtualAddress, VrrpInstance
from vrrp.track import Effective
from vrrp.transport import Datagram

OURS = ipaddress.IPv4Address("192.0.2.1")
PEER = ipaddress.IPv4Address("192.0.2.2")
GROUP = ipaddress.IPv4Address("224.0.0.18")
VIP = ipaddress.IPv4Interface("192.0.2.100/24")


def inst(**kw) -> VrrpInstance:
    values = dict(name="VI_1", interface="eth0", virtual_router_id=51, priority=100,
                  advert_int=0.05, version=3,
                  virtual_ipaddresses=(VirtualAddress(address=VIP),))
    values.update(kw)
    return VrrpInstance(**values)


def ipv4(payload: bytes, source=PEER, destination=GROUP, ttl: int = 255) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(payload), 1, 0, ttl, 112, 0,
                         source.packed, destination.packed)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def datagram(advert: Advert, *, source=PEER, destination=GROUP, ttl: int = 255,
             corrupt: bool = False) -> Datagram:
    payload = bytearray(encode(advert, source, destination))
    if corrupt:
        payload[7] ^= 0xFF
    return Datagram(data=ipv4(bytes(payload), source, destination, ttl), source=source,
                    destination=destination, ttl=ttl, ifindex=2)


class FakeSocket:
    destinations = (GROUP,)

    def __init__(self):
        self.sent: list[tuple[bytes, object]] = []

    def send(self, payload: bytes, destination=None) -> int:
        self.sent.append((payload, destination))
        return 1


class FakeAddresses:
    def __init__(self):
        self.calls: list[tuple[str, str]] = []

    def add(self, vip, default):
        self.calls.append(("add", str(vip.address)))
        return True

    def remove(self, vip, default):
        self.calls.append(("remove", str(vip.address)))
        return True

    def add_route(self, route, default=None):
        return True

    def remove_route(self, route, default=None):
        return True


def password(text: str) -> Authentication:
    return Authentication(auth_type=AuthType.PASS, auth_pass=text)


def runner(instance: VrrpInstance, **kw):
    sock, addresses = FakeSocket(), FakeAddresses()
    states: list[tuple[State, State]] = []
    r = VrrpInstanceRunner(instance, socket=sock, source=OURS, addresses=addresses,
                           on_state=lambda _r, old, new, _why: states.append((old, new)), **kw)
    return r, sock, addresses, states


# ----------------------------------------------------------------- pure parts


def test_advert_carries_the_vips_of_the_family_and_the_password():
    instance = inst(version=2, advert_int=1.0,
                    virtual_ipaddresses=(VirtualAddress(address=VIP),
                                         VirtualAddress(address=ipaddress.IPv6Interface(
                                             "2001:db8::1/64"))),
                    authentication=password("s3cret"))
    assert advert_addresses(instance) == (VIP.ip,)
    advert = make_advert(instance, 100)
    assert advert.auth_type is AuthType.PASS and advert.password == b"s3cret"
    back = decode(encode(advert, OURS, GROUP), OURS, GROUP)
    assert back.addresses == (VIP.ip,) and back.priority == 100 and back.vrid == 51


@pytest.mark.parametrize(("change", "counter"), [
    (dict(ttl=254), "bad_ttl"),
    (dict(corrupt=True), "bad_checksum"),
])
def test_bad_datagrams_are_counted(change, counter):
    instance = inst()
    with pytest.raises(Dropped) as caught:
        check_datagram(instance, datagram(make_advert(instance, 100), **change))
    assert caught.value.counter == counter


def test_wrong_vrid_version_and_password():
    instance = inst()
    other = inst(virtual_router_id=52)
    with pytest.raises(Dropped, match="wrong_vrid"):
        check_datagram(instance, datagram(make_advert(other, 100)))
    v2 = inst(version=2, advert_int=1.0, authentication=password("good"))
    with pytest.raises(Dropped, match="bad_version"):
        check_datagram(v2, datagram(make_advert(instance, 100)))
    wrong = inst(version=2, advert_int=1.0, authentication=password("bad"))
    with pytest.raises(Dropped, match="auth_failure"):
        check_datagram(v2, datagram(make_advert(wrong, 100)))
    assert check_datagram(v2, datagram(make_advert(v2, 90))).priority == 90


def test_unicast_ttl_is_not_checked():
    instance = inst()
    ours = ipaddress.IPv4Address("192.0.2.1")
    got = check_datagram(instance, datagram(make_advert(instance, 100), destination=ours,
                                            ttl=64))
    assert got.priority == 100


# ----------------------------------------------------------------- the runner


async def test_owner_starts_master_adds_vips_then_stops():
    r, sock, addresses, states = runner(inst(priority=255))
    r.start()
    assert r.state is State.MASTER
    assert len(sock.sent) == 1  # the advert goes out at once
    sent = decode(sock.sent[0][0], OURS, GROUP)
    assert sent.priority == 255 and sent.addresses == (VIP.ip,)
    await r.drain(1)
    assert addresses.calls == [("add", str(VIP))]
    assert states == [(State.INIT, State.MASTER)]
    await asyncio.sleep(0.12)  # the advert timer runs: a few more adverts
    assert 2 <= len(sock.sent) <= 5
    r.shutdown(graceful=False)
    assert await r.stopped(1)
    assert decode(sock.sent[-1][0], OURS, GROUP).priority == 0
    assert addresses.calls[-1] == ("remove", str(VIP))
    assert r.status()["counters"]["priority_zero_sent"] == 1
    assert r.status()["counters"]["became_master"] == 1
    await r.close()


async def test_backup_hears_a_master_and_counts():
    instance = inst()
    r, sock, addresses, _states = runner(instance)
    r.start()
    assert r.state is State.BACKUP
    for _ in range(8):  # a master every 20 ms keeps us backup
        r.receive(datagram(make_advert(instance, 150)))
        await asyncio.sleep(0.02)
    assert r.state is State.BACKUP and not sock.sent
    r.receive(datagram(make_advert(instance, 150), ttl=1))
    r.receive(datagram(make_advert(instance, 150), corrupt=True))
    other = inst(virtual_ipaddresses=(VirtualAddress(
        address=ipaddress.IPv4Interface("192.0.2.200/24")),))
    r.receive(datagram(make_advert(other, 150)))
    counters = r.status()["counters"]
    assert counters["adverts_received"] == 9
    assert counters["bad_ttl"] == 1 and counters["bad_checksum"] == 1
    assert counters["wrong_address_list"] == 1
    assert r.status()["master"] == str(PEER)
    # the master goes quiet: master-down (3 x 0.05 + skew) later we take over
    await asyncio.sleep(0.3)
    assert r.state is State.MASTER
    await r.drain(1)
    assert addresses.calls == [("add", str(VIP))]
    r.shutdown(graceful=False)
    await r.stopped(1)
    await r.close()


async def test_tracking_priority_and_fault():
    instance = inst(priority=255 - 155)
    r, _sock, _addresses, states = runner(instance)
    r.apply(Effective(priority=100, pending=True, waiting=("script chk",)))
    r.start()
    assert r.state is State.INIT  # waiting for the script's first verdict
    r.apply(Effective(priority=100))
    assert r.state is State.BACKUP
    r.apply(Effective(priority=100, fault=True, faults=("script chk",)))
    assert r.state is State.FAULT
    r.apply(Effective(priority=120))
    assert r.state is State.BACKUP
    assert r.machine.priority == 120
    r.shutdown()
    await r.stopped(1)
    await r.close()
    assert [new for _old, new in states] == [State.BACKUP, State.FAULT, State.BACKUP,
                                            State.STOP]


async def test_graceful_shutdown_keeps_the_vips_until_the_new_master():
    instance = inst(priority=255)
    r, _sock, addresses, _states = runner(inst(priority=200))
    r.apply(Effective(priority=200))
    r.start()
    await asyncio.sleep(0.25)
    assert r.state is State.MASTER
    await r.drain(1)
    r.shutdown(graceful=True)
    assert r.machine.handing_over
    await asyncio.sleep(0.01)
    assert addresses.calls == [("add", str(VIP))]  # still ours
    r.receive(datagram(make_advert(instance, 100)))  # the new master
    assert await r.stopped(1)
    assert addresses.calls == [("add", str(VIP)), ("remove", str(VIP))]
    await r.close()


async def test_a_synced_member_asks_the_group_and_is_forced():
    calls: list[tuple[str, str]] = []
    r, sock, addresses, states = runner(inst(), synced=True,
                                        on_sync=lambda rr, what: calls.append((rr.name, what)))
    r.start()
    await asyncio.sleep(0.3)  # master-down passed: it wants MASTER, stays BACKUP
    assert r.state is State.BACKUP and r.machine.wants_master
    assert ("VI_1", "want_master") in calls and not sock.sent
    assert r.status()["wants_master"] and r.status()["synced"]
    r.force(State.MASTER, "every member wants MASTER")
    assert r.state is State.MASTER and sock.sent
    await r.drain(1)
    assert addresses.calls == [("add", str(VIP))]
    calls.clear()
    r.force(State.BACKUP, "VI_2 is BACKUP")
    assert r.state is State.BACKUP
    await asyncio.sleep(0)  # on_sync is called soon, never inside the event
    assert calls == [("VI_1", "left_master")]
    await r.drain(1)
    assert addresses.calls[-1] == ("remove", str(VIP))
    assert [new for _old, new in states] == [State.BACKUP, State.MASTER, State.BACKUP]
    r.shutdown()
    await r.stopped(1)
    await r.close()


# ----------------------------------------------------------------- AH, VMAC


AH = Authentication(auth_type=AuthType.AH, auth_pass="k3yp4ss")


class FakeRawSocket(FakeSocket):
    hdrincl = True


async def test_ah_needs_a_hdrincl_socket():
    instance = inst(version=2, advert_int=1.0, authentication=AH)
    with pytest.raises(ValueError, match="IP_HDRINCL"):
        runner(instance)


async def test_ah_adverts_are_whole_datagrams_that_verify():
    from vrrp.packet import decode_ipv4, verify_auth

    instance = inst(version=2, advert_int=1.0, authentication=AH, priority=255)
    sock, addresses = FakeRawSocket(), FakeAddresses()
    r = VrrpInstanceRunner(instance, socket=sock, source=OURS, addresses=addresses)
    r.start()
    r.shutdown(graceful=False)
    assert await r.stopped(1)
    assert len(sock.sent) == 2
    idents, sequences = [], []
    for payload, _ in sock.sent:
        received = decode_ipv4(payload)
        verify_auth(received, AH)
        assert received.ah is not None and received.ah.spi == int(OURS)
        idents.append(struct.unpack_from("!H", payload, 4)[0])
        sequences.append(received.ah.sequence)
    assert idents == [1, 2]
    assert sequences[1] == sequences[0] + 1
    assert [decode_ipv4(p).advert.priority for p, _ in sock.sent] == [255, 0]
    # what we send is what our own check accepts
    own = Datagram(data=sock.sent[0][0], source=OURS, destination=GROUP, ttl=255,
                   ifindex=2)
    assert check_datagram(instance, own).priority == 255
    await r.close()


async def test_vmac_instance_puts_its_vips_on_the_vmac():
    seen: list[str | None] = []

    class Recording(FakeAddresses):
        def add(self, vip, default):
            seen.append(default)
            return True

    instance = inst(priority=255, use_vmac=True)
    sock = FakeSocket()
    r = VrrpInstanceRunner(instance, socket=sock, source=OURS, addresses=Recording(),
                           vmac_prefix="vr")
    r.start()
    await r.drain(1)
    assert seen == ["vr.51"]
    r.shutdown(graceful=False)
    assert await r.stopped(1)
    await r.close()


# ----------------------------------------------------------------- reload in place

VIP2 = ipaddress.IPv4Interface("192.0.2.101/24")


class FakeGarp:
    def __init__(self, device: str, sent: list[tuple[str, str]]):
        self.device, self.sent = device, sent

    def send(self, address) -> bool:
        self.sent.append((self.device, str(address)))
        return True


async def owner_master(**kw):
    garps: list[tuple[str, str]] = []
    r, sock, addresses, states = runner(inst(priority=255, **kw),
                                        garp=lambda device: FakeGarp(device, garps))
    r.start()
    await r.drain(1)
    assert r.state is State.MASTER
    return r, sock, addresses, states, garps


async def test_reconfigure_master_priority_is_advertised_at_once_without_election():
    r, sock, addresses, states = runner(inst(priority=100, state=InstanceState.MASTER))
    r.apply(Effective(priority=100))
    r.start()
    await asyncio.sleep(0.15)  # state MASTER: one interval + skew, then MASTER
    assert r.state is State.MASTER
    await r.drain(1)
    sent_before = len(sock.sent)
    r.reconfigure(inst(priority=110, state=InstanceState.MASTER), Effective(priority=110))
    assert len(sock.sent) == sent_before + 1
    assert decode(sock.sent[-1][0], OURS, GROUP).priority == 110
    await r.drain(1)
    assert addresses.calls == [("add", str(VIP))]  # nothing removed, nothing re-added
    assert states == [(State.INIT, State.BACKUP), (State.BACKUP, State.MASTER)]
    assert r.status()["counters"]["became_master"] == 1
    r.shutdown()
    await r.stopped(1)
    await r.close()


async def test_reconfigure_master_applies_only_the_vip_difference():
    r, sock, addresses, states, garps = await owner_master()
    garps.clear()
    both = (VirtualAddress(address=VIP), VirtualAddress(address=VIP2))
    r.reconfigure(inst(priority=255, virtual_ipaddresses=both), Effective(priority=255))
    await r.drain(1)
    assert addresses.calls == [("add", str(VIP)), ("add", str(VIP2))]
    assert garps and {address for _device, address in garps} == {str(VIP2.ip)}
    assert decode(sock.sent[-1][0], OURS, GROUP).addresses == (VIP.ip, VIP2.ip)
    r.reconfigure(inst(priority=255, virtual_ipaddresses=both[1:]), Effective(priority=255))
    await r.drain(1)
    assert addresses.calls[2:] == [("remove", str(VIP))]
    assert r.status()["virtual_addresses"] == [str(VIP2.ip)]
    assert states == [(State.INIT, State.MASTER)]
    r.shutdown()
    await r.stopped(1)
    await r.close()


async def test_reconfigure_backup_touches_no_address_and_hears_the_new_list():
    instance = inst()
    r, sock, addresses, _states = runner(instance)
    r.start()
    both = (VirtualAddress(address=VIP), VirtualAddress(address=VIP2))
    new = inst(virtual_ipaddresses=both)
    r.reconfigure(new, Effective(priority=100))
    r.receive(datagram(make_advert(new, 150)))
    assert r.counters["wrong_address_list"] == 0 and r.status()["master"] == str(PEER)
    r.receive(datagram(make_advert(instance, 150)))
    assert r.counters["wrong_address_list"] == 1
    await r.drain(1)
    assert addresses.calls == [] and not sock.sent
    r.shutdown()
    await r.stopped(1)
    await r.close()


async def test_reconfigure_refuses_a_new_vrid():
    r, *_ = runner(inst())
    with pytest.raises(ValueError, match="needs a restart"):
        r.reconfigure(inst(virtual_router_id=52), Effective(priority=100))
    await r.close()


async def test_a_fault_names_what_failed():
    r, _sock, _addresses, _states = runner(inst())
    reasons: list[str] = []
    r._on_state = lambda _r, _old, new, why: reasons.append(why)
    r.start()
    r.apply(Effective(priority=100, fault=True,
                      faults=("interface eth0", "script chk_x", "sync group G: VI_2 is in FAULT")))
    await r.drain(1)
    assert reasons[-1] == ("fault: interface eth0 down, tracking script chk_x failed, "
                           "sync group G: VI_2 is in FAULT")
    r.shutdown()
    await r.stopped(1)
    await r.close()
