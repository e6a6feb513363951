"""Hostile input on the wire: a third namespace on the directors' bridge sends crafted
VRRP packets (built with `vrrp.packet`, then corrupted by hand) on a plain raw socket.
The master stays master, the backup stays backup (no VIP moves), the right counters
go up in `<state-dir>/vrrp-status.json`, nobody crashes.

Two instances per director: VI_1 VRRPv3 (VRID 51, advert_int 0.2) and VI_2 VRRPv2 with
auth_type PASS (VRID 52, advert_int 1). And a unicast pair, where a well-formed advert
of a higher priority from a non-peer is dropped and counted (dropped_not_peer).
"""

from __future__ import annotations

import ipaddress
import json
import random
import socket
import struct
import time
from pathlib import Path

from tests.netns.lab import Lab, Node, wait_until
from tests.netns.test_vrrp_run import (
    ADVERT,
    VIP,
    Ours,
    config,
    holds,
    unicast_lines,
    wait_holds,
)
from vrrp.packet import Advert, checksum, encode
from vrrp.spec import AuthType

GROUP = ipaddress.IPv4Address("224.0.0.18")
VIP_V2 = "192.0.2.101"
PASSWORD = "s3cret"
REPEAT = 10  # copies of each crafted packet


def hostile_config(priority: int) -> str:
    v2 = f"""
vrrp_instance VI_2 {{
    state BACKUP
    interface eth0
    virtual_router_id 52
    priority {priority}
    version 2
    advert_int 1
    authentication {{
        auth_type PASS
        auth_pass {PASSWORD}
    }}
    virtual_ipaddress {{
        {VIP_V2}/24
    }}
}}
"""
    return config(priority) + v2


def ipv4_header(payload: bytes, source: ipaddress.IPv4Address,
                destination: ipaddress.IPv4Address, ttl: int = 255) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(payload), 0, 0, ttl, 112, 0,
                         source.packed, destination.packed)
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:]


class Attacker:
    """A raw IPPROTO_RAW socket in a node: whole IPv4 datagrams, our TTL and bytes."""

    def __init__(self, node: Node):
        assert node.ipv4 is not None
        self.source = node.ipv4.ip
        node.run("ip", "route", "add", "224.0.0.0/4", "dev", "eth0")
        self.sock = node.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                             socket.inet_aton(str(self.source)))
        self.sent = 0

    def send(self, payload: bytes, *, ttl: int = 255,
             destination: ipaddress.IPv4Address = GROUP, repeat: int = REPEAT) -> None:
        datagram = ipv4_header(payload, self.source, destination, ttl) + payload
        for _ in range(repeat):
            self.sock.sendto(datagram, (str(destination), 0))
            self.sent += 1
            time.sleep(0.005)

    def close(self) -> None:
        self.sock.close()


OUR_VIPS = (ipaddress.IPv4Address(VIP),)


def v3(priority: int = 254, vrid: int = 51, addresses=OUR_VIPS,
       source=None, destination: ipaddress.IPv4Address = GROUP) -> bytes:
    advert = Advert(version=3, vrid=vrid, priority=priority, interval=ADVERT,
                    addresses=tuple(addresses))
    return encode(advert, source, destination)


def v2(password: str, priority: int = 254) -> bytes:
    advert = Advert(version=2, vrid=52, priority=priority, interval=1.0,
                    addresses=(ipaddress.IPv4Address(VIP_V2),), auth_type=AuthType.PASS,
                    password=password.encode())
    return encode(advert, GROUP, GROUP)


def read_status(path: Path) -> dict:
    return json.loads(path.read_text())


def counters(status: dict, instance: str) -> dict[str, int]:
    return status["instances"][instance]["counters"]


def states(status: dict) -> dict[str, str]:
    return {name: i["state"] for name, i in status["instances"].items()}


def start_pair(lab: Lab, text_a: str, text_b: str, name: str):
    a, b = lab.add_node("dir1"), lab.add_node("dir2")
    dirs = {n.role: lab.workdir / f"state-{name}-{n.role}" for n in (a, b)}
    ours_a = Ours(lab, a, text_a, name, ("--state-dir", str(dirs["dir1"]))).start()
    ours_a.wait_log("(VI_1) Entering MASTER STATE")
    wait_holds(a, 5)
    ours_b = Ours(lab, b, text_b, name, ("--state-dir", str(dirs["dir2"]))).start()
    ours_b.wait_log("(VI_1) Entering BACKUP STATE")
    return a, b, ours_a, ours_b, dirs["dir1"] / "vrrp-status.json", \
        dirs["dir2"] / "vrrp-status.json"


def settled(path: Path, expected: dict[str, str]) -> dict:
    """The status once it shows ``expected`` states (and was written since)."""
    def ok() -> dict | None:
        try:
            status = read_status(path)
        except (OSError, ValueError):
            return None
        return status if states(status) == expected else None

    return wait_until(ok, 10, interval=0.1, message=f"{path} shows {expected}")


def fresh(path: Path, after: float) -> dict:
    """A status written after ``after`` (epoch seconds): it is rewritten every second."""
    def ok() -> dict | None:
        try:
            status = read_status(path)
        except (OSError, ValueError):
            return None
        return status if status["written_at"] > after else None

    return wait_until(ok, 3, interval=0.1, message=f"{path} rewritten")


def test_crafted_packets_are_counted_and_dropped(lab: Lab):
    a, b, ours_a, ours_b, status_a, status_b = start_pair(
        lab, hostile_config(150), hostile_config(100), "hostile")
    masters = {"VI_1": "MASTER", "VI_2": "MASTER"}
    backups = {"VI_1": "BACKUP", "VI_2": "BACKUP"}
    before = {"a": settled(status_a, masters), "b": settled(status_b, backups)}
    assert before["a"]["version"] == 1 and before["a"]["running"] is True
    assert holds(a) and holds(a, VIP_V2) and not holds(b) and not holds(b, VIP_V2)
    entering = (ours_a.count("Entering"), ours_b.count("Entering"))

    evil = Attacker(lab.add_node("evil"))
    rng = random.Random(6)
    try:
        good = v3(source=evil.source)
        # wrong checksum
        evil.send(good[:6] + bytes([good[6] ^ 0xFF]) + good[7:])
        # TTL below 255 (a routed packet)
        evil.send(good, ttl=254)
        evil.send(good, ttl=1)
        # wrong PASS password (VRRPv2)
        evil.send(v2("wrong"))
        # bogus lengths and counts: 3 addresses announced, 1 present; a trailing byte;
        # a truncated header; no address at all but count 1
        three = bytearray(good)
        three[3] = 3
        evil.send(bytes(three))
        evil.send(good + b"\x00")
        evil.send(good[:6])
        evil.send(good[:8] if good[3] else good)
        # a different address list (well formed, higher priority)
        evil.send(v3(addresses=(ipaddress.IPv4Address("192.0.2.222"),), source=evil.source))
        # wrong VRID (well formed, higher priority)
        evil.send(v3(vrid=99, source=evil.source))
        # VRRPv3 where v2 is configured, and a bad version / type
        evil.send(v3(vrid=52, source=evil.source))
        bad_type = bytearray(good)
        bad_type[0] = 0x32
        evil.send(bytes(bad_type))
        # random bytes, aimed at VRID 51
        for _ in range(50):
            junk = bytearray(rng.randbytes(rng.randrange(1, 80)))
            if len(junk) > 1:
                junk[1] = 51
            evil.send(bytes(junk), repeat=1)
        time.sleep(3 * ADVERT + 0.5)
    finally:
        evil.close()

    after = {"a": fresh(status_a, time.time()), "b": fresh(status_b, time.time())}
    # nobody moved
    assert states(after["a"]) == masters and states(after["b"]) == backups
    assert holds(a) and holds(a, VIP_V2) and not holds(b) and not holds(b, VIP_V2)
    assert (ours_a.count("Entering"), ours_b.count("Entering")) == entering
    assert ours_a.process.alive() and ours_b.process.alive()  # type: ignore[union-attr]
    assert "Traceback" not in ours_a.output() + ours_b.output()

    for side in ("a", "b"):
        vi1_0, vi1 = counters(before[side], "VI_1"), counters(after[side], "VI_1")
        vi2_0, vi2 = counters(before[side], "VI_2"), counters(after[side], "VI_2")

        def grew(now: dict, then: dict, name: str) -> int:
            return now[name] - then[name]

        assert grew(vi1, vi1_0, "bad_checksum") >= REPEAT, side
        assert grew(vi1, vi1_0, "bad_ttl") >= 2 * REPEAT, side
        assert grew(vi2, vi2_0, "auth_failure") >= REPEAT, side
        assert grew(vi1, vi1_0, "bad_length") >= 3 * REPEAT, side
        assert grew(vi1, vi1_0, "wrong_address_list") >= REPEAT, side
        assert grew(vi1, vi1_0, "wrong_vrid") >= REPEAT, side
        assert grew(vi2, vi2_0, "bad_version") >= REPEAT, side
        assert grew(vi1, vi1_0, "bad_type") >= REPEAT, side
        errors = sum(grew(vi1, vi1_0, n) for n in (
            "bad_checksum", "bad_ttl", "bad_length", "bad_type", "bad_version",
            "auth_failure"))
        assert errors >= 8 * REPEAT + 40, side  # most of the random ones too
        # none of it reached an election
        assert vi1["became_master"] == vi1_0["became_master"]
        assert vi1["released_master"] == vi1_0["released_master"]


class _At:
    """What `unicast_lines` reads of a node: its address (known before it exists)."""

    def __init__(self, address: ipaddress.IPv4Address):
        self.ipv4 = ipaddress.IPv4Interface(f"{address}/24")


def test_unicast_drops_a_higher_priority_from_a_non_peer(lab: Lab):
    one, two = ipaddress.IPv4Address("192.0.2.1"), ipaddress.IPv4Address("192.0.2.2")
    text_a = config(150, instance_extra=unicast_lines(_At(one), _At(two)))  # type: ignore
    text_b = config(100, instance_extra=unicast_lines(_At(two), _At(one)))  # type: ignore
    a, b, ours_a, ours_b, status_a, status_b = start_pair(lab, text_a, text_b, "unicast")
    assert a.ipv4.ip == one and b.ipv4.ip == two  # type: ignore[union-attr]
    settled(status_a, {"VI_1": "MASTER"})
    settled(status_b, {"VI_1": "BACKUP"})
    time.sleep(3 * ADVERT)
    before = {"a": read_status(status_a), "b": read_status(status_b)}
    entering = (ours_a.count("Entering"), ours_b.count("Entering"))

    evil = Attacker(lab.add_node("evil"))
    try:
        for target in (one, two):  # well formed, priority 254, to each director
            evil.send(v3(source=evil.source, destination=target), destination=target)
        time.sleep(3 * ADVERT + 0.3)
    finally:
        evil.close()
    after = {"a": fresh(status_a, time.time()), "b": fresh(status_b, time.time())}
    assert states(after["a"]) == {"VI_1": "MASTER"}
    assert states(after["b"]) == {"VI_1": "BACKUP"}
    assert holds(a) and not holds(b)
    assert (ours_a.count("Entering"), ours_b.count("Entering")) == entering
    for side in ("a", "b"):
        then = before[side]["sockets"][0]["counters"]["dropped_not_peer"]
        now = after[side]["sockets"][0]["counters"]["dropped_not_peer"]
        assert now - then >= REPEAT, (side, then, now)
    assert after["b"]["instances"]["VI_1"]["master"] == str(one)
