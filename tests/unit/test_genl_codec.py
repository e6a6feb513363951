"""The IPVS generic netlink codec against pyroute2's encoding of the same requests.

`NetlinkBackend.apply` (the pyroute2 path) runs unchanged with a stand-in for the
`IPVS` socket that builds each request with pyroute2's own `AsyncIPVS.service/dest`
code and encodes it with pyroute2's message classes, as the real socket would before
sending it. The codec must produce the very same bytes, or refuse the request with
the same error (errno and message).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyroute2.ipvs import AsyncIPVS
from pyroute2.netlink.generic import ipvs as pyroute2_ipvs

from director.ipvs import genl_codec
from director.ipvs.backend import IpvsError
from director.ipvs.netlink import NetlinkBackend, _local_refusal
from director.ipvs.table import (
    DestinationKey,
    DestinationSettings,
    Forwarding,
    Operation,
    OperationKind,
    Protocol,
    ServiceKey,
    ServiceSettings,
    TunnelType,
)

FAMILY_ID, SEQ, PID = 0x23, 4242, 777
AF4, AF6 = socket.AF_INET, socket.AF_INET6
K = OperationKind


class _Capture:
    """Where `AsyncIPVS.service/dest` hand their finished request."""

    def __init__(self) -> None:
        self.data: bytes | None = None

    async def _do_request(self, msg, msg_flags):
        msg["header"]["type"] = FAMILY_ID
        msg["header"]["flags"] = msg_flags
        msg["header"]["sequence_number"] = SEQ
        msg["header"]["pid"] = PID
        msg.encode()  # inside the call, as on the real socket: apply() sees its errors
        self.data = bytes(msg.data)
        return []


def _run(coroutine) -> None:
    try:
        coroutine.send(None)
    except StopIteration:
        return
    raise AssertionError("the request waited for something")


class _RecordingIPVS:
    def __init__(self) -> None:
        self.capture = _Capture()

    def service(self, command, service=None):
        _run(AsyncIPVS.service(self.capture, command, service))

    def dest(self, command, service, dest=None):
        _run(AsyncIPVS.dest(self.capture, command, service, dest))


def pyroute2_outcome(op: Operation) -> bytes | tuple[int, str]:
    """What the pyroute2 path sends for `op`, or its refusal (errno, message)."""
    backend = NetlinkBackend()
    recorder = _RecordingIPVS()
    backend._socket = recorder  # type: ignore[assignment]
    try:
        backend.apply(op)
    except IpvsError as error:
        return error.code, error.message
    assert recorder.capture.data is not None
    return recorder.capture.data


def codec_outcome(op: Operation) -> bytes | tuple[int, str]:
    try:
        return genl_codec.encode(op, FAMILY_ID, SEQ, pid=PID)
    except (ValueError, struct.error, OverflowError) as error:
        refusal = _local_refusal(op, error)
        return refusal.code, refusal.message


def ip(text: str):
    return ipaddress.ip_address(text)


TCP4 = ServiceKey(AF4, Protocol.TCP, ip("192.0.2.10"), 80)
UDP6 = ServiceKey(AF6, Protocol.UDP, ip("2001:db8::10"), 53)
SCTP4 = ServiceKey(AF4, Protocol.SCTP, ip("192.0.2.11"), 3868)
FWM4 = ServiceKey(AF4, fwmark=7)
FWM6 = ServiceKey(AF6, fwmark=8)
REAL4 = DestinationKey(ip("198.51.100.1"), 8080)
REAL6 = DestinationKey(ip("2001:db8:1::1"), 0)

SETTINGS = [
    ServiceSettings(),
    ServiceSettings(scheduler="wrr", persistence_timeout=300),
    ServiceSettings(scheduler="sh", sched_flags=frozenset({"sh-port", "flag-1"}),
                    persistence_timeout=30, persistence_netmask=24, one_packet=True),
    ServiceSettings(scheduler="mh", sched_flags=frozenset({"mh-fallback"}),
                    persistence_timeout=60, persistence_netmask=48,
                    persistence_engine="sip"),
]
DEST_SETTINGS = [
    DestinationSettings(),
    DestinationSettings(forwarding=Forwarding.NAT, weight=0, upper_threshold=100,
                        lower_threshold=10),
    DestinationSettings(forwarding=Forwarding.TUN, weight=7, tunnel_type=TunnelType.GUE,
                        tunnel_port=6080, tunnel_checksum="remcsum"),
    DestinationSettings(forwarding=Forwarding.TUN, tunnel_type=TunnelType.GRE,
                        tunnel_port=99, tunnel_checksum="csum"),
    # tunnel fields that do not apply are not sent
    DestinationSettings(forwarding=Forwarding.DR, tunnel_type=TunnelType.GUE, tunnel_port=5),
]


def examples() -> list[Operation]:
    ops: list[Operation] = []
    for key in (TCP4, UDP6, SCTP4, FWM4, FWM6):
        for service_settings in SETTINGS:
            if key.family == AF4 and service_settings.persistence_netmask == 48:
                continue
            ops.append(Operation(K.ADD_SERVICE, key, service_settings))
            ops.append(Operation(K.EDIT_SERVICE, key, service_settings))
        ops.append(Operation(K.DELETE_SERVICE, key))
        for real in (REAL4, REAL6):
            for dest_settings in DEST_SETTINGS:
                ops.append(Operation(K.ADD_DESTINATION, key, destination=real,
                                     destination_settings=dest_settings))
                ops.append(Operation(K.EDIT_DESTINATION, key, destination=real,
                                     destination_settings=dest_settings))
            ops.append(Operation(K.DELETE_DESTINATION, key, destination=real))
    return ops


@pytest.mark.parametrize("op", examples(), ids=lambda op: f"{op.kind}-{op.service}")
def test_bytes_are_pyroute2s(op: Operation) -> None:
    ours = codec_outcome(op)
    assert isinstance(ours, bytes)
    assert ours == pyroute2_outcome(op)


REFUSED = [
    (Operation(K.ADD_SERVICE, TCP4), errno.EINVAL, "no service settings given"),
    (Operation(K.ADD_SERVICE, TCP4, ServiceSettings(sched_flags=frozenset({"bogus"}))),
     errno.EINVAL, "unknown scheduler flags bogus"),
    (Operation(K.ADD_SERVICE, ServiceKey(AF4), ServiceSettings()), errno.EINVAL,
     "service key without protocol"),
    (Operation(K.DELETE_SERVICE, ServiceKey(AF4)), errno.EINVAL, "service key without"),
    (Operation(K.ADD_SERVICE, TCP4, ServiceSettings(persistence_timeout=1,
                                                    persistence_netmask=40)),
     errno.EINVAL, "not a valid netmask"),
    (Operation(K.ADD_SERVICE, ServiceKey(AF4, Protocol.TCP, ip("192.0.2.1"), 70000),
               ServiceSettings()), errno.ERANGE, "does not fit"),
    (Operation(K.ADD_SERVICE, ServiceKey(AF4, fwmark=2**32), ServiceSettings()),
     errno.ERANGE, "does not fit"),
    (Operation(K.EDIT_SERVICE, FWM6, ServiceSettings(persistence_timeout=-1)),
     errno.ERANGE, "does not fit"),
    (Operation(K.ADD_SERVICE, FWM6, ServiceSettings(persistence_timeout=3,
                                                    persistence_netmask=2**32)),
     errno.ERANGE, "does not fit"),
    (Operation(K.ADD_DESTINATION, TCP4, destination_settings=DestinationSettings()),
     errno.EINVAL, "no real server given"),
    (Operation(K.ADD_DESTINATION, TCP4, destination=REAL4), errno.EINVAL,
     "no real server settings given"),
    (Operation(K.DELETE_DESTINATION, ServiceKey(AF4), destination=REAL4), errno.EINVAL,
     "service key without"),
    (Operation(K.ADD_DESTINATION, TCP4, destination=REAL4,
               destination_settings=DestinationSettings(weight=-1)), errno.ERANGE,
     "argument out of range"),
    (Operation(K.EDIT_DESTINATION, TCP4, destination=REAL4,
               destination_settings=DestinationSettings(weight=2**32)), errno.ERANGE,
     "'I' format requires"),
    (Operation(K.ADD_DESTINATION, TCP4, destination=DestinationKey(ip("198.51.100.1"), 70000),
               destination_settings=DestinationSettings()), errno.ERANGE, "'H' format"),
    (Operation(K.ADD_DESTINATION, TCP4, destination=REAL4,
               destination_settings=DestinationSettings(
                   forwarding=Forwarding.TUN, tunnel_type=TunnelType.GUE,
                   tunnel_port=70000)), errno.ERANGE, "htons"),
    # the first problem wins, as on the pyroute2 path: fields before packing...
    (Operation(K.ADD_DESTINATION, ServiceKey(AF4, fwmark=2**32), destination=REAL4,
               destination_settings=DestinationSettings(
                   forwarding=Forwarding.TUN, tunnel_type=TunnelType.GUE,
                   tunnel_port=70000)), errno.ERANGE, "htons"),
    # ...and the service's attributes before the real server's
    (Operation(K.ADD_DESTINATION, ServiceKey(AF4, fwmark=2**32), destination=REAL4,
               destination_settings=DestinationSettings(weight=-1)), errno.ERANGE,
     "'I' format requires"),
]


@pytest.mark.parametrize(("op", "code", "text"), REFUSED)
def test_refusals_are_pyroute2s(op: Operation, code: int, text: str) -> None:
    ours = codec_outcome(op)
    assert ours == pyroute2_outcome(op)
    assert isinstance(ours, tuple)
    assert ours[0] == code and text in ours[1], ours


def test_weight_2_to_the_31_is_sent_for_the_kernel_to_refuse() -> None:
    op = Operation(K.ADD_DESTINATION, TCP4, destination=REAL4,
                   destination_settings=DestinationSettings(weight=2**31))
    assert isinstance(codec_outcome(op), bytes)
    assert codec_outcome(op) == pyroute2_outcome(op)


# ------------------------------------------------------------------ any request

addresses4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
addresses6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)
numbers = st.one_of(st.integers(0, 70000), st.integers(-5, 2**33), st.just(2**32 - 1))


@st.composite
def service_keys(draw) -> ServiceKey:
    family = draw(st.sampled_from([AF4, AF6]))
    if draw(st.booleans()):
        return ServiceKey(family, fwmark=draw(st.integers(1, 2**32 + 5)))
    address = draw(addresses4 if family == AF4 else addresses6)
    return ServiceKey(family, draw(st.sampled_from(list(Protocol))), address,
                      draw(st.integers(0, 70000)))


service_settings = st.builds(
    ServiceSettings,
    scheduler=st.sampled_from(["wlc", "rr", "wrr", "sh", "mh", "nosuch", "ü"]),
    sched_flags=st.frozensets(st.sampled_from(
        ["flag-1", "flag-2", "flag-3", "sh-port", "mh-fallback", "odd"]), max_size=2),
    persistence_timeout=st.one_of(st.none(), numbers),
    persistence_netmask=st.one_of(st.none(), st.integers(-1, 140)),
    one_packet=st.booleans(),
    persistence_engine=st.one_of(st.none(), st.just(""), st.just("sip")),
)
destination_settings = st.builds(
    DestinationSettings,
    forwarding=st.sampled_from(list(Forwarding)),
    weight=numbers,
    upper_threshold=numbers,
    lower_threshold=numbers,
    tunnel_type=st.sampled_from(list(TunnelType)),
    tunnel_port=st.integers(0, 70000),
    tunnel_checksum=st.sampled_from(["nocsum", "csum", "remcsum"]),
)
destination_keys = st.builds(
    DestinationKey, st.one_of(addresses4, addresses6), st.integers(0, 70000))


@st.composite
def operations(draw) -> Operation:
    kind = draw(st.sampled_from(list(OperationKind)))
    key = draw(service_keys())
    if kind in (K.ADD_SERVICE, K.EDIT_SERVICE):
        return Operation(kind, key, draw(st.one_of(service_settings, st.just(None))))
    if kind is K.DELETE_SERVICE:
        return Operation(kind, key)
    return Operation(kind, key, destination=draw(destination_keys),
                     destination_settings=draw(st.one_of(destination_settings,
                                                         st.just(None))))


@settings(max_examples=400, deadline=None)
@given(operations())
def test_any_operation_encodes_as_pyroute2_does(op: Operation) -> None:
    assert codec_outcome(op) == pyroute2_outcome(op)


def test_without_ack_only_the_flag_differs() -> None:
    op = Operation(K.ADD_SERVICE, TCP4, ServiceSettings())
    with_ack = genl_codec.encode(op, FAMILY_ID, SEQ)
    without = genl_codec.encode(op, FAMILY_ID, SEQ, ack=False)
    flags_with = int.from_bytes(with_ack[6:8], "little")
    assert flags_with & genl_codec.NLM_F_ACK
    assert without == with_ack[:6] + (flags_with & ~genl_codec.NLM_F_ACK).to_bytes(
        2, "little") + with_ack[8:]


def test_the_message_parses_back_with_pyroute2() -> None:
    op = Operation(K.ADD_DESTINATION, UDP6, destination=REAL6,
                   destination_settings=DestinationSettings(weight=9))
    msg = pyroute2_ipvs.ipvsmsg(genl_codec.encode(op, FAMILY_ID, SEQ))
    msg.decode()
    assert msg["header"]["sequence_number"] == SEQ
    assert msg["cmd"] == genl_codec.IPVS_CMD_NEW_DEST
    assert msg.get("IPVS_CMD_ATTR_DEST").get("IPVS_DEST_ATTR_WEIGHT") == 9
    assert msg.get("IPVS_CMD_ATTR_SERVICE").get("IPVS_SVC_ATTR_ADDR") == "2001:db8::10"


# ------------------------------------------------------------------ answers

def answer(seq: int, error: int, request: bytes = b"", kind: int = genl_codec.NLMSG_ERROR
           ) -> bytes:
    """An NLMSG_ERROR as the kernel writes it: errno, then the request's header (and,
    without NETLINK_CAP_ACK, the rest of a refused request)."""
    original = request or struct.pack("IHHII", 16, FAMILY_ID, 5, seq, PID)
    body = struct.pack("i", error) + original
    size = 16 + len(body)
    return struct.pack("IHHII", size, kind, 0x100, seq, 0) + body + b"\0" * (-size & 3)


def test_parse_acks_reads_acknowledgements_and_errors() -> None:
    request = genl_codec.encode(Operation(K.DELETE_SERVICE, TCP4), FAMILY_ID, 9)
    data = answer(7, 0) + answer(8, -errno.ESRCH) + answer(9, -errno.ENOENT, request)
    assert genl_codec.parse_acks(data) == [(7, 0), (8, errno.ESRCH), (9, errno.ENOENT)]


def test_parse_acks_skips_other_messages() -> None:
    done = struct.pack("IHHIIi", 20, genl_codec.NLMSG_DONE, 0, 5, 0, 0)
    assert genl_codec.parse_acks(done + answer(6, -errno.EEXIST)) == [(6, errno.EEXIST)]
    assert genl_codec.parse_acks(b"") == []


@pytest.mark.parametrize("cut", [3, 15, 19, 30])
def test_parse_acks_refuses_truncated_data(cut: int) -> None:
    data = answer(1, 0) + answer(2, -errno.EINVAL)
    with pytest.raises(ValueError):
        genl_codec.parse_acks(data[:len(answer(1, 0)) + cut])
