"""vrrp.packet: VRRPv2/v3 over IPv4/IPv6 against keepalived 2.2.7's captured adverts,
checksums, PASS and AH authentication, every malformed case, and a fuzzed decoder."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pcap import ETH_P_IP, ETH_P_IPV6, ip_packets, parse_ipv6

from vrrp.packet import (
    IPPROTO_AH,
    IPPROTO_VRRP,
    Advert,
    Counter,
    PacketError,
    Received,
    auth_key,
    checksum,
    decode,
    decode_ipv4,
    encode,
    encode_ipv4,
    verify_auth,
)
from vrrp.spec import VRRP_MCAST_GROUP4, VRRP_MCAST_GROUP6, Authentication, AuthType

VECTORS = Path("/work/shared/vectors/vrrp")
PASS = Authentication(auth_type=AuthType.PASS, auth_pass="s3cr3t")
AH = Authentication(auth_type=AuthType.AH, auth_pass="k3yp4ss")
A1 = ipaddress.IPv4Address("10.9.0.1")
A2 = ipaddress.IPv4Address("10.9.0.2")
VIP = ipaddress.IPv4Address("10.9.0.100")
LL1 = ipaddress.IPv6Address("fe80::1")

# keepalived 2.2.7, VRRPv2 auth_type AH, auth_pass k3yp4ss, VRID 52, prio 100, VIP
# 10.9.1.100, captured on a veth in this project (start as MASTER, SIGTERM: prio 0).
AH_MULTICAST = [bytes.fromhex(h) for h in (
    "45c0004000010000ff33cfad0a090101e0000012700400000a09010100000001279750bcb888126d"
    "0f85bee32134640102016d5c0a0901640000000000000000",
    "45c0004000020000ff33cfac0a090101e0000012700400000a0901010000000253c799e18c6542a1"
    "6586e00c2134640102016d5c0a0901640000000000000000",
    "45c0004000030000ff33cfab0a090101e0000012700400000a09010100000003c1db1ec41fa7225b"
    "cfe801fb2134640102016d5c0a0901640000000000000000",
    "45c0004000040000ff33cfaa0a090101e0000012700400000a09010100000004c8e0fdf6509f33db"
    "b67e35fb2134640102016d5c0a0901640000000000000000",
    "45c0004000050000ff33cfa90a090101e0000012700400000a09010100000005d595c28ee558393e"
    "1e47fec2213400010201d15c0a0901640000000000000000",
)]
# The same with unicast_src_ip 10.9.1.1 and unicast_peer 10.9.1.2 (VRID 53, VIP
# 10.9.1.101): keepalived zeroes the TTL in the ICV of unicast adverts.
AH_UNICAST = [bytes.fromhex(h) for h in (
    "45c0004000010000ff33a4b50a0901010a090102700400000a090101000000015c7e9dd5d93a8297"
    "0b99ba802135640102016d5a0a0901650000000000000000",
    "45c0004000020000ff33a4b40a0901010a090102700400000a0901010000000231752e95971aba88"
    "2e491b372135640102016d5a0a0901650000000000000000",
    "45c0004000030000ff33a4b30a0901010a090102700400000a09010100000003f61ca68be824dc5d"
    "c452c48c2135640102016d5a0a0901650000000000000000",
    "45c0004000040000ff33a4b20a0901010a090102700400000a0901010000000499e2b6d02860e31b"
    "70718cad2135640102016d5a0a0901650000000000000000",
    "45c0004000050000ff33a4b10a0901010a090102700400000a09010100000005387a800f1c098a3f"
    "2cd21cd9213500010201d15a0a0901650000000000000000",
)]


def ipv4_adverts(name: str) -> list[bytes]:
    return [packet for ethertype, packet in ip_packets(VECTORS / name)
            if ethertype == ETH_P_IP and packet[9] in (IPPROTO_VRRP, IPPROTO_AH)]


def ipv6_adverts(name: str):
    packets = (parse_ipv6(packet) for ethertype, packet in ip_packets(VECTORS / name)
               if ethertype == ETH_P_IPV6)
    return [packet for packet in packets if packet.next_header == IPPROTO_VRRP]


def ident_of(datagram: bytes) -> int:
    return struct.unpack_from("!H", datagram, 4)[0]


def reencode(received: Received, datagram: bytes, auth=None) -> bytes:
    return encode_ipv4(received.advert, received.source, received.destination,
                       ident_of(datagram), auth=auth,
                       ah_sequence=received.ah.sequence if received.ah else 1)


def error_of(call, *args, **kwargs) -> PacketError:
    with pytest.raises(PacketError) as caught:
        call(*args, **kwargs)
    return caught.value


# ----------------------------------------------------------------- captured vectors


@pytest.mark.parametrize(("name", "version"), [("v2-pass.pcap", 2), ("v3-ipv4.pcap", 3)])
def test_every_ipv4_advert_decodes_verifies_and_reencodes(name, version):
    datagrams = ipv4_adverts(name)
    assert len(datagrams) >= 10
    priorities = set()
    for datagram in datagrams:
        received = decode_ipv4(datagram)
        advert = received.advert
        payload = datagram[20:]
        if version == 2:
            assert checksum(payload) == 0
        else:
            pseudo = (received.source.packed + received.destination.packed
                      + struct.pack("!BBH", 0, IPPROTO_VRRP, len(payload)))
            assert checksum(pseudo + payload) == 0
        assert (advert.version, advert.vrid, advert.interval) == (version, 51, 1.0)
        assert advert.addresses == (VIP,)
        assert received.source in (A1, A2)
        assert received.destination == VRRP_MCAST_GROUP4
        assert received.ttl == 255
        assert received.ah is None
        assert encode(advert, received.source, received.destination) == payload
        assert reencode(received, datagram) == datagram
        priorities.add((received.source, advert.priority))
        if version == 2:
            assert advert.auth_type is AuthType.PASS
            assert advert.password == b"s3cr3t"
            verify_auth(received, PASS)
        else:
            assert (advert.auth_type, advert.password) == (None, b"")
            verify_auth(received, None)
    # both nodes advertised, and both sent priority 0 when stopped with SIGTERM
    assert priorities == {(A1, 100), (A1, 0), (A2, 90), (A2, 0)}


def test_every_ipv6_advert_decodes_verifies_and_reencodes():
    packets = ipv6_adverts("v3-ipv6.pcap")
    assert len(packets) >= 10
    priorities = set()
    for packet in packets:
        assert packet.source.is_link_local
        assert packet.destination == VRRP_MCAST_GROUP6
        assert packet.hop_limit == 255
        pseudo = (packet.source.packed + packet.destination.packed
                  + struct.pack("!I3xB", len(packet.payload), IPPROTO_VRRP))
        assert checksum(pseudo + packet.payload) == 0
        advert = decode(packet.payload, packet.source, packet.destination)
        assert (advert.version, advert.vrid, advert.interval) == (3, 51, 1.0)
        assert advert.addresses == (ipaddress.IPv6Address("fd00:9::100"),)
        assert encode(advert, packet.source, packet.destination) == packet.payload
        verify_auth(advert, None)
        priorities.add(advert.priority)
    assert priorities == {100, 90, 0}


def test_ipv6_checksum_covers_the_pseudo_header():
    packet = ipv6_adverts("v3-ipv6.pcap")[0]
    assert error_of(decode, packet.payload, LL1, packet.destination).counter == \
        Counter.BAD_CHECKSUM


@pytest.mark.parametrize("datagrams", [AH_MULTICAST, AH_UNICAST], ids=["mcast", "ucast"])
def test_keepalived_ah_adverts_verify_and_reencode(datagrams):
    for sequence, datagram in enumerate(datagrams, 1):
        received = decode_ipv4(datagram)
        assert received.ah is not None
        assert received.ah.sequence == sequence
        assert received.ah.spi == int(received.source)
        assert received.advert.auth_type is AuthType.AH
        assert received.advert.password == b""
        verify_auth(received, AH)
        assert reencode(received, datagram, AH) == datagram
    assert decode_ipv4(datagrams[-1]).advert.priority == 0


def test_ah_rejections():
    received = decode_ipv4(AH_MULTICAST[0])
    wrong = Authentication(auth_type=AuthType.AH, auth_pass="other")
    assert error_of(verify_auth, received, wrong).counter == Counter.AUTH_FAILURE
    assert error_of(verify_auth, received, PASS).counter == Counter.AUTH_FAILURE
    assert error_of(verify_auth, received, None).counter == Counter.AUTH_FAILURE
    # without the IP header there is nothing to check the ICV against
    assert error_of(verify_auth, received.advert, AH).counter == Counter.AUTH_FAILURE
    # an advert that claims AH but travels without an AH header
    bare = Received(advert=received.advert, source=received.source,
                    destination=received.destination, ttl=255)
    assert error_of(verify_auth, bare, AH).counter == Counter.AUTH_FAILURE
    # a tampered priority (checksums fixed up, ICV kept)
    forged = bytearray(AH_MULTICAST[0])
    vrrp = forged[44:]
    vrrp[2] = 200
    vrrp[6:8] = b"\0\0"
    vrrp[6:8] = struct.pack("!H", checksum(bytes(vrrp)))
    forged[44:] = vrrp
    tampered = decode_ipv4(bytes(forged))
    assert tampered.advert.priority == 200
    assert "ICV" in error_of(verify_auth, tampered, AH).reason
    # an SPI that is not the source address
    spied = bytearray(AH_MULTICAST[0])
    spied[24:28] = bytes(4)
    assert "SPI" in error_of(verify_auth, decode_ipv4(bytes(spied)), AH).reason


# ----------------------------------------------------------------- authentication


def test_pass_authentication():
    advert = Advert(version=2, vrid=1, addresses=(VIP,), auth_type=AuthType.PASS,
                    password=b"s3cr3t")
    verify_auth(advert, PASS)
    wrong = Authentication(auth_type=AuthType.PASS, auth_pass="s3cr3")
    assert error_of(verify_auth, advert, wrong).counter == Counter.AUTH_FAILURE
    assert error_of(verify_auth, advert, None).counter == Counter.AUTH_FAILURE
    plain = Advert(version=2, vrid=1, addresses=(VIP,))
    assert error_of(verify_auth, plain, PASS).counter == Counter.AUTH_FAILURE
    verify_auth(plain, None)
    # keepalived keeps 8 bytes of a longer auth_pass
    long_pass = Authentication(auth_type=AuthType.PASS, auth_pass="0123456789")
    assert auth_key(long_pass) == b"01234567"
    verify_auth(Advert(version=2, auth_type=AuthType.PASS, password=b"01234567"),
                long_pass)
    # v3 carries no authentication: keepalived ignores it
    verify_auth(Advert(version=3), PASS)


def test_pass_password_on_the_wire():
    advert = Advert(version=2, vrid=7, priority=50, interval=3, addresses=(VIP,),
                    auth_type=AuthType.PASS, password=b"ab")
    message = encode(advert, A1, VRRP_MCAST_GROUP4)
    assert message[4:6] == b"\x01\x03"
    assert message[-8:] == b"ab\0\0\0\0\0\0"
    assert decode(message, A1, VRRP_MCAST_GROUP4) == advert


def test_encode_ah_advert_roundtrips():
    advert = Advert(version=2, vrid=9, priority=150, addresses=(VIP, A2),
                    auth_type=AuthType.AH)
    for destination in (VRRP_MCAST_GROUP4, A2):
        datagram = encode_ipv4(advert, A1, destination, 7, auth=AH, ah_sequence=42)
        assert datagram[9] == IPPROTO_AH
        received = decode_ipv4(datagram)
        assert received.advert == advert
        assert received.ah.sequence == 42
        verify_auth(received, AH)
    with pytest.raises(ValueError):
        encode_ipv4(advert, A1, VRRP_MCAST_GROUP4, 7)


# ----------------------------------------------------------------- encoding details


def test_v3_interval_in_centiseconds():
    advert = Advert(version=3, vrid=1, interval=0.1, addresses=(VIP,))
    message = encode(advert, A1, VRRP_MCAST_GROUP4)
    assert message[4:6] == b"\x00\x0a"
    assert decode(message, A1, VRRP_MCAST_GROUP4).interval == 0.1
    top = encode(Advert(version=3, interval=40.95), A1, VRRP_MCAST_GROUP4)
    assert decode(top, A1, VRRP_MCAST_GROUP4).interval == 40.95
    # reserved bits are ignored on reception
    reserved = bytearray(message)
    reserved[4] |= 0xF0
    reserved[6:8] = b"\0\0"
    reserved[6:8] = struct.pack("!H", checksum(
        A1.packed + VRRP_MCAST_GROUP4.packed + struct.pack("!BBH", 0, 112, len(reserved))
        + bytes(reserved)))
    assert decode(bytes(reserved), A1, VRRP_MCAST_GROUP4).interval == 0.1


def test_ipv4_header_as_keepalived_sends_it():
    advert = Advert(version=3, vrid=51, priority=100, addresses=(VIP,))
    datagram = encode_ipv4(advert, A1, VRRP_MCAST_GROUP4, 0x1234)
    version_ihl, tos, total, ident, frag, ttl, proto = struct.unpack_from("!BBHHHBB",
                                                                          datagram)
    assert (version_ihl, tos, total, ident, frag, ttl, proto) == \
        (0x45, 0xC0, len(datagram), 0x1234, 0, 255, 112)
    assert checksum(datagram[:20]) == 0


def test_old_unicast_checksum():
    """keepalived < 1.3.6 put the multicast group in the v3 unicast pseudo-header."""
    advert = Advert(version=3, vrid=5, addresses=(VIP,))
    datagram = encode_ipv4(advert, A1, A2, 1, checksum_destination=VRRP_MCAST_GROUP4)
    assert error_of(decode_ipv4, datagram).counter == Counter.BAD_CHECKSUM
    received = decode_ipv4(datagram, checksum_destination=VRRP_MCAST_GROUP4)
    assert (received.advert, received.destination) == (advert, A2)


def test_ttl():
    datagram = encode_ipv4(Advert(version=3, addresses=(VIP,)), A1, A2, 1, ttl=64)
    error = error_of(decode_ipv4, datagram)
    assert (error.counter, error.reason) == (Counter.BAD_TTL, "TTL 64, expected 255")
    assert decode_ipv4(datagram, expected_ttl=None).ttl == 64


def test_ip_options_are_skipped():
    message = encode(Advert(version=2, addresses=(VIP,)), A1, VRRP_MCAST_GROUP4)
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x46, 0xC0, 24 + len(message), 1, 0,
                                   255, 112, 0, A1.packed, VRRP_MCAST_GROUP4.packed))
    header += b"\x94\x04\0\0"  # router alert
    header[10:12] = struct.pack("!H", checksum(bytes(header)))
    assert decode_ipv4(bytes(header) + message).advert.addresses == (VIP,)


@pytest.mark.parametrize(("advert", "family"), [
    (Advert(version=2, addresses=(LL1,)), 6),  # v2 is IPv4 only
    (Advert(version=3, auth_type=AuthType.PASS), 4),
    (Advert(version=3, password=b"x"), 4),
    (Advert(version=4), 4),
    (Advert(version=3, vrid=256), 4),
    (Advert(version=3, priority=-1), 4),
    (Advert(version=3, interval=41), 4),
    (Advert(version=2, interval=256), 4),
    (Advert(version=2, password=b"123456789"), 4),
    (Advert(version=3, addresses=(LL1,)), 4),
    (Advert(version=3, addresses=(VIP,) * 256), 4),
])
def test_encode_refuses(advert, family):
    source, destination = (A1, VRRP_MCAST_GROUP4) if family == 4 else \
        (LL1, VRRP_MCAST_GROUP6)
    with pytest.raises(ValueError):
        encode(advert, source, destination)


def test_decode_refuses_mixed_families():
    with pytest.raises(ValueError):
        decode(b"", A1, VRRP_MCAST_GROUP6)


# ----------------------------------------------------------------- malformed packets


def v2_message() -> bytearray:
    advert = Advert(version=2, vrid=1, addresses=(VIP, A2))
    return bytearray(encode(advert, A1, VRRP_MCAST_GROUP4))


def with_v2_checksum(message: bytearray) -> bytes:
    message[6:8] = b"\0\0"
    message[6:8] = struct.pack("!H", checksum(bytes(message)))
    return bytes(message)


def datagram_of(message: bytes, *, protocol=112, total=None, ihl=5, version=4,
                fix_checksum=True) -> bytes:
    header = bytearray(struct.pack(
        "!BBHHHBBH4s4s", version << 4 | ihl, 0xC0,
        total if total is not None else 20 + len(message), 1, 0, 255, protocol, 0,
        A1.packed, VRRP_MCAST_GROUP4.packed))
    if fix_checksum:
        header[10:12] = struct.pack("!H", checksum(bytes(header)))
    return bytes(header) + message


@pytest.mark.parametrize(("payload", "counter"), [
    (b"", Counter.BAD_LENGTH),
    (bytes(v2_message()[:7]), Counter.BAD_LENGTH),
    (bytes(v2_message()[:-1]), Counter.BAD_LENGTH),  # truncated
    (bytes(v2_message()) + b"\0\0\0\0", Counter.BAD_LENGTH),  # longer than the count
    (with_v2_checksum(bytearray(b"\x21\x01\x64\x05" + bytes(v2_message()[4:]))),
     Counter.BAD_LENGTH),  # count 5 with 2 addresses
    (with_v2_checksum(bytearray(b"\x11" + bytes(v2_message()[1:]))), Counter.BAD_VERSION),
    (with_v2_checksum(bytearray(b"\x41" + bytes(v2_message()[1:]))), Counter.BAD_VERSION),
    (with_v2_checksum(bytearray(b"\x22" + bytes(v2_message()[1:]))), Counter.BAD_TYPE),
    (with_v2_checksum(bytearray(bytes(v2_message()[:4]) + b"\x03"
                                + bytes(v2_message()[5:]))), Counter.AUTH_FAILURE),
    (bytes(v2_message()[:2]) + b"\x65" + bytes(v2_message()[3:]), Counter.BAD_CHECKSUM),
])
def test_decode_rejects(payload, counter):
    error = error_of(decode, payload, A1, VRRP_MCAST_GROUP4)
    assert error.counter == counter
    assert error.reason
    assert str(error).startswith(str(counter))


def test_v3_checksum_covers_the_pseudo_header():
    message = encode(Advert(version=3, addresses=(VIP,)), A1, VRRP_MCAST_GROUP4)
    assert error_of(decode, message, A2, VRRP_MCAST_GROUP4).counter == Counter.BAD_CHECKSUM


def test_v2_over_ipv6_is_refused():
    message = bytes(v2_message())
    assert error_of(decode, message, LL1, VRRP_MCAST_GROUP6).counter == Counter.BAD_VERSION


@pytest.mark.parametrize(("datagram", "counter"), [
    (b"\x45" * 19, Counter.BAD_LENGTH),
    (datagram_of(bytes(v2_message()), version=6), Counter.BAD_VERSION),
    (datagram_of(bytes(v2_message()), ihl=4), Counter.BAD_LENGTH),
    (datagram_of(bytes(v2_message()), ihl=15), Counter.BAD_LENGTH),
    (datagram_of(bytes(v2_message()), total=100), Counter.BAD_LENGTH),
    (datagram_of(bytes(v2_message()), fix_checksum=False), Counter.BAD_CHECKSUM),
    (datagram_of(bytes(v2_message()), protocol=17), Counter.BAD_TYPE),
    (datagram_of(bytes(v2_message()), protocol=51), Counter.BAD_TYPE),  # next hdr 0x21
    (datagram_of(b"\x70\x04\0\0\0\0", protocol=51), Counter.BAD_LENGTH),
    (datagram_of(b"\x70\x09\0\0" + bytes(12), protocol=51), Counter.BAD_LENGTH),
])
def test_decode_ipv4_rejects(datagram, counter):
    assert error_of(decode_ipv4, datagram).counter == counter


def test_ah_with_another_icv_length_decodes_but_does_not_verify():
    ah = b"\x70\x01\0\0" + A1.packed + struct.pack("!I", 1)  # no ICV at all
    advert = Advert(version=2, addresses=(VIP,), auth_type=AuthType.AH)
    received = decode_ipv4(datagram_of(ah + encode(advert, A1, VRRP_MCAST_GROUP4),
                                       protocol=51))
    assert received.advert == advert
    assert received.ah.icv == b""
    assert "HMAC-MD5-96" in error_of(verify_auth, received, AH).reason


# ----------------------------------------------------------------- properties and fuzzing

ipv4s = st.builds(ipaddress.IPv4Address, st.integers(0, 2**32 - 1))
ipv6s = st.builds(ipaddress.IPv6Address, st.integers(0, 2**128 - 1))
byte = st.integers(0, 255)


@st.composite
def adverts(draw):
    family = draw(st.sampled_from([4, 6]))
    version = 3 if family == 6 else draw(st.sampled_from([2, 3]))
    addresses = tuple(draw(st.lists(ipv4s if family == 4 else ipv6s, max_size=8)))
    if version == 2:
        auth_type = draw(st.sampled_from([None, AuthType.PASS, AuthType.AH]))
        password = draw(st.binary(max_size=8)).rstrip(b"\0")
        interval = float(draw(byte))
    else:
        auth_type, password = None, b""
        interval = draw(st.integers(0, 4095)) / 100
    advert = Advert(version=version, vrid=draw(byte), priority=draw(byte),
                    interval=interval, addresses=addresses, auth_type=auth_type,
                    password=password)
    pair = draw(st.tuples(ipv4s, ipv4s) if family == 4 else st.tuples(ipv6s, ipv6s))
    return advert, pair


@given(adverts())
def test_decode_inverts_encode(case):
    advert, (source, destination) = case
    assert decode(encode(advert, source, destination), source, destination) == advert


@given(adverts(), st.integers(1, 0xFFFF), st.integers(0, 0xFFFFFFFF))
def test_decode_ipv4_inverts_encode_ipv4(case, ident, sequence):
    advert, (source, destination) = case
    if source.version != 4:
        return
    datagram = encode_ipv4(advert, source, destination, ident, auth=AH,
                           ah_sequence=sequence)
    received = decode_ipv4(datagram)
    assert (received.advert, received.source, received.destination, received.ttl) == \
        (advert, source, destination, 255)
    if advert.auth_type is AuthType.AH:
        verify_auth(received, AH)


def all_vectors() -> list[tuple]:
    """(bytes, source, destination): IPv4 datagrams (None, None) and IPv6 payloads."""
    cases = [(datagram, None, None) for name in ("v2-pass.pcap", "v3-ipv4.pcap")
             for datagram in ipv4_adverts(name)[:3]]
    cases += [(AH_MULTICAST[0], None, None), (AH_UNICAST[0], None, None)]
    cases += [(packet.payload, packet.source, packet.destination)
              for packet in ipv6_adverts("v3-ipv6.pcap")[:2]]
    return cases


VECTOR_CASES = all_vectors()


def decode_any(data: bytes, source, destination):
    """Decode as the transport would, then every check the instance makes."""
    if source is None:
        received = decode_ipv4(data)
        for auth in (None, PASS, AH):
            try:
                verify_auth(received, auth)
            except PacketError as error:
                assert error.counter == Counter.AUTH_FAILURE
        return received.advert
    advert = decode(data, source, destination)
    verify_auth(advert, None)
    return advert


def only_packet_errors(data: bytes, source, destination) -> None:
    try:
        advert = decode_any(data, source, destination)
    except PacketError as error:
        assert isinstance(error.counter, Counter)
        assert error.reason
        return
    # whatever decodes re-encodes to something that decodes to the same advert
    if source is None:
        received = decode_ipv4(data)
        source, destination = received.source, received.destination
    assert decode(encode(advert, source, destination), source, destination) == advert


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=120), st.sampled_from([(A1, VRRP_MCAST_GROUP4),
                                                 (LL1, VRRP_MCAST_GROUP6)]))
def test_fuzz_random_payloads(data, pair):
    only_packet_errors(data, *pair)


@settings(max_examples=500)
@given(st.binary(max_size=120))
def test_fuzz_random_datagrams(data):
    only_packet_errors(data, None, None)


@settings(max_examples=1000)
@given(st.sampled_from(VECTOR_CASES), st.data())
def test_fuzz_mutated_adverts(case, data):
    original, source, destination = case
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(mutated) - 1))
        mutated[position] = data.draw(byte)
    only_packet_errors(bytes(mutated), source, destination)


@pytest.mark.parametrize("case", VECTOR_CASES)
def test_every_truncation_and_extension_is_a_length_error(case):
    original, source, destination = case
    for length in range(len(original)):
        only_packet_errors(original[:length], source, destination)
    only_packet_errors(original + b"\0", source, destination)
    if source is None:
        assert error_of(decode_ipv4, original[:-1]).counter == Counter.BAD_LENGTH
    else:
        assert error_of(decode, original[:-1], source, destination).counter == \
            Counter.BAD_LENGTH


def fix_checksums(data: bytearray, source, destination) -> bytes:
    """Make the checksums right again, so mutations reach the checks behind them."""
    if source is None:
        if len(data) < 20 or data[0] >> 4 != 4 or not 20 <= (data[0] & 0x0F) * 4 <= len(data):
            return bytes(data)
        header_len = (data[0] & 0x0F) * 4
        data[10:12] = b"\0\0"
        data[10:12] = struct.pack("!H", checksum(bytes(data[:header_len])))
        start = header_len + (24 if data[9] == IPPROTO_AH else 0)
        source = ipaddress.IPv4Address(bytes(data[12:16]))
        destination = ipaddress.IPv4Address(bytes(data[16:20]))
    else:
        start = 0
    message = data[start:]
    if len(message) < 8:
        return bytes(data)
    message[6:8] = b"\0\0"
    prefix = b""
    if message[0] >> 4 != 2:
        prefix = source.packed + destination.packed + (
            struct.pack("!BBH", 0, 112, len(message)) if source.version == 4
            else struct.pack("!I3xB", len(message), 112))
    message[6:8] = struct.pack("!H", checksum(prefix + bytes(message)))
    data[start:] = message
    return bytes(data)


@settings(max_examples=1000)
@given(st.sampled_from(VECTOR_CASES), st.data())
def test_fuzz_mutated_adverts_with_right_checksums(case, data):
    original, source, destination = case
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(mutated) - 1))
        mutated[position] = data.draw(byte)
    only_packet_errors(fix_checksums(mutated, source, destination), source, destination)
