"""Reload in place, on one of ours run in-process in a namespace (`VrrpRuntime` with
netns=), while another node listens on the link and ``ip monitor address`` records
every address added or deleted:

- a MASTER whose priority goes 100 -> 110 keeps its VIP (no RTM_DELADDR), holds no
  election (became_master stays 1, no transition) and advertises 110 at once;
- a second VIP added: only it is added (and gratuitously ARPed); one removed: only it
  goes;
- a new VRID restarts the instance (logged, a STOP transition saying why) and its
  adverts carry the new VRID;
- new unicast peers: the next advert goes to the new peer at once, none to the old;
- two MASTERs joining a sync group stay MASTER (the group becomes MASTER), and leaving
  it, act alone again: no election, no address deleted.

The helpers here are shared with test_vrrp_dry_run.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
import time
from pathlib import Path

from director.config.load import load_config
from tests.netns.lab import Lab, Node, PacketCapture, Process
from vrrp.machine import State
from vrrp.runtime import Transition, VrrpRuntime
from vrrp.spec import VrrpConfig

ETH_P_ARP = 0x0806


def conf_text(*, priority: int = 100, vrid: int = 51, vips: tuple[str, ...] = (),
              advert: float = 0.5, extra: str = "", global_extra: str = "") -> str:
    lines = "\n        ".join(vips)
    return f"""
global_defs {{
    script_user root
    vrrp_version 3
    {global_extra}
}}
vrrp_instance VI_1 {{
    state MASTER
    interface eth0
    virtual_router_id {vrid}
    priority {priority}
    advert_int {advert}
    {extra}
    virtual_ipaddress {{
        {lines}
    }}
}}
"""


def load(path: Path, text: str) -> VrrpConfig:
    path.write_text(text)
    config, _problems = load_config(str(path))
    return config.vrrp


async def no_scripts(argv, timeout, user, group) -> int | None:
    raise AssertionError(f"no script expected: {argv}")


class Director:
    """One `VrrpRuntime` in ``node``'s namespace, with its transitions recorded."""

    def __init__(self, lab: Lab, node: Node, text: str, *, dry_run: bool = False,
                 run_script=no_scripts):
        self.path = lab.workdir / f"{node.role}.conf"
        self.transitions: list[Transition] = []
        self.runtime = VrrpRuntime(load(self.path, text), run_script, netns=node.ns,
                                   on_transition=self.transitions.append, dry_run=dry_run)

    async def reload(self, text: str) -> float:
        """Seconds the reload took."""
        start = time.monotonic()
        await self.runtime.reload(load(self.path, text))
        return time.monotonic() - start

    async def wait_state(self, state: State, timeout: float, name: str = "VI_1") -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            runner = self.runtime.runners.get(name)
            if runner is not None and runner.state is state:
                return time.monotonic() - start
            await asyncio.sleep(0.02)
        runner = self.runtime.runners.get(name)
        raise AssertionError(f"{name} not {state} within {timeout} s: "
                             f"{runner.state if runner else 'not running'}")


def adverts(capture: PacketCapture, source: str | None = None) -> list[tuple[float, int, int]]:
    """(receive time, VRID, priority) of the VRRP adverts heard so far."""
    return [(p.time, p.payload[1], p.payload[2]) for p in capture.ipv4(112)
            if len(p.payload) >= 3 and (source is None or str(p.src) == source)]


def arp_senders(capture: PacketCapture) -> list[str]:
    """The sender IPv4 addresses of the ARP frames heard so far."""
    capture.poll()
    senders = []
    for _when, frame in capture.frames:
        if len(frame) >= 42 and struct.unpack("!H", frame[12:14])[0] == ETH_P_ARP:
            senders.append(str(ipaddress.IPv4Address(frame[28:32])))
    return senders


class AddressMonitor:
    """``ip -o monitor address`` in a namespace: every RTM_NEWADDR / RTM_DELADDR line."""

    def __init__(self, lab: Lab, node: Node) -> None:
        self.process: Process = lab.spawn(node.ns, "ip", "-o", "monitor", "address",
                                          log=lab.workdir / f"monitor-{node.role}.log")
        time.sleep(0.3)  # listening before anything happens

    def deleted(self, address: str) -> list[str]:
        return [line for line in self.process.output().splitlines()
                if line.startswith("Deleted") and f" {address}/" in line]

    def added(self, address: str) -> list[str]:
        return [line for line in self.process.output().splitlines()
                if not line.startswith("Deleted") and f" {address}/" in line]

    def stop(self) -> None:
        self.process.stop()


# ----------------------------------------------------------------- the tests

VIP = "192.0.2.100"
VIP2 = "192.0.2.101"
ADVERT = 0.5


async def started_master(lab: Lab, text: str) -> tuple[Node, Node, Director]:
    a, b = lab.add_node("dir1"), lab.add_node("listener")
    ours = Director(lab, a, text)
    await ours.runtime.start()
    await ours.wait_state(State.MASTER, 5)
    await settled(ours, a)
    return a, b, ours


async def settled(ours: Director, node: Node, timeout: float = 5.0) -> None:
    """Every instance that is MASTER has told its transition and holds its VIPs: a
    runner's state changes a moment before its addresses and events follow."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        masters = [r for r in ours.runtime.runners.values() if r.state is State.MASTER]
        told = {t.name for t in ours.transitions if t.kind == "instance" and t.new == "MASTER"}
        if all(r.name in told and all(node.has_address(v) for v in r.status()
                                      ["virtual_addresses"]) for r in masters):
            await asyncio.sleep(0.2)
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the masters did not settle")


async def test_priority_change_keeps_the_vip_and_is_advertised_at_once(lab: Lab):
    a, b, ours = await started_master(lab, conf_text(priority=100, vips=(f"{VIP}/24",)))
    try:
        runner = ours.runtime.runners["VI_1"]
        monitor = AddressMonitor(lab, a)
        with lab.capture(b.ns, "eth0") as capture:
            await asyncio.sleep(ADVERT + 0.1)
            before = len(ours.transitions)
            reloaded_at = time.time()
            await ours.reload(conf_text(priority=110, vips=(f"{VIP}/24",)))
            await asyncio.sleep(2 * ADVERT)
            heard = [(t, p) for t, vrid, p in adverts(capture) if vrid == 51]
        assert ours.runtime.runners["VI_1"] is runner
        assert runner.state is State.MASTER and runner.machine.priority == 110
        assert runner.status()["counters"]["became_master"] == 1
        assert ours.transitions[before:] == []  # no election, no state change
        assert a.has_address(VIP) and monitor.deleted(VIP) == []
        first = next(t for t, p in heard if p == 110)
        assert first - reloaded_at < ADVERT / 2, "110 not advertised at once"
        assert all(p == 100 for t, p in heard if t < reloaded_at)
        assert all(p == 110 for t, p in heard if t > first)
    finally:
        await ours.runtime.stop(graceful=False)
    assert not a.has_address(VIP)


async def test_vips_added_and_removed_one_by_one(lab: Lab):
    a, b, ours = await started_master(lab, conf_text(vips=(f"{VIP}/24",)))
    try:
        runner = ours.runtime.runners["VI_1"]
        monitor = AddressMonitor(lab, a)
        with lab.capture(b.ns, "eth0") as capture:
            await ours.reload(conf_text(vips=(f"{VIP}/24", f"{VIP2}/24")))
            await asyncio.sleep(0.5)
            assert a.has_address(VIP2) and a.has_address(VIP)
            assert VIP2 in arp_senders(capture), "no gratuitous ARP for the new VIP"
        assert len(monitor.added(VIP2)) == 1
        assert monitor.added(VIP) == [] and monitor.deleted(VIP) == []

        await ours.reload(conf_text(vips=(f"{VIP2}/24",)))
        await asyncio.sleep(0.5)
        assert not a.has_address(VIP) and a.has_address(VIP2)
        assert len(monitor.deleted(VIP)) == 1 and monitor.deleted(VIP2) == []
        assert runner is ours.runtime.runners["VI_1"] and runner.state is State.MASTER
        assert runner.status()["counters"]["became_master"] == 1
        assert runner.status()["virtual_addresses"] == [VIP2]
    finally:
        await ours.runtime.stop(graceful=False)
    assert not a.has_address(VIP2)


async def test_a_new_vrid_restarts_the_instance(lab: Lab, caplog):
    caplog.set_level("INFO", logger="vrrp")
    a, b, ours = await started_master(lab, conf_text(vips=(f"{VIP}/24",)))
    try:
        old_runner = ours.runtime.runners["VI_1"]
        with lab.capture(b.ns, "eth0") as capture:
            await ours.reload(conf_text(vrid=52, vips=(f"{VIP}/24",)))
            assert "(VI_1) reload: restarting: VRID 51 -> 52" in caplog.text
            await ours.wait_state(State.MASTER, 5)
            await asyncio.sleep(ADVERT + 0.1)
            vrids = {vrid for _t, vrid, _p in adverts(capture)}
        runner = ours.runtime.runners["VI_1"]
        assert runner is not old_runner and runner.instance.virtual_router_id == 52
        stops = [t for t in ours.transitions if t.new == "STOP"]
        assert len(stops) == 1 and stops[0].reason.startswith("reload: VRID 51 -> 52")
        assert stops[0].vrid == 51 and stops[0].kind == "instance"
        assert ours.transitions[-1].new == "MASTER" and ours.transitions[-1].vrid == 52
        assert 52 in vrids and a.has_address(VIP)
    finally:
        await ours.runtime.stop(graceful=False)


async def test_new_unicast_peers_apply_in_place(lab: Lab):
    a, b, c = lab.add_node("dir1"), lab.add_node("peer1"), lab.add_node("peer2")

    def text(peer: Node) -> str:
        return conf_text(vips=(f"{VIP}/24",), extra=f"unicast_peer {{\n {peer.ipv4.ip}\n }}")

    ours = Director(lab, a, text(b))
    await ours.runtime.start()
    try:
        await ours.wait_state(State.MASTER, 5)
        runner = ours.runtime.runners["VI_1"]
        with lab.capture(b.ns, "eth0") as at_b, lab.capture(c.ns, "eth0") as at_c:
            await asyncio.sleep(ADVERT + 0.1)
            reloaded_at = time.time()
            await ours.reload(text(c))
            await asyncio.sleep(2 * ADVERT)
            to_b = [p.time for p in at_b.ipv4(112) if p.dst == b.ipv4.ip]
            to_c = [p.time for p in at_c.ipv4(112) if p.dst == c.ipv4.ip]
        assert to_b and max(to_b) < reloaded_at + 0.05, "adverts still go to the old peer"
        assert to_c and min(to_c) - reloaded_at < ADVERT / 2
        assert ours.runtime.runners["VI_1"] is runner and runner.state is State.MASTER
        assert runner.status()["counters"]["became_master"] == 1
        assert ours.runtime.status()["sockets"][0]["instances"] == ["VI_1"]
    finally:
        await ours.runtime.stop(graceful=False)


def two_instances(group: str = "") -> str:
    second = conf_text(vrid=52, vips=(f"{VIP2}/24",)).split("}\n", 1)[1]
    return conf_text(vips=(f"{VIP}/24",)) + second.replace("VI_1", "VI_2") + group


async def test_joining_a_sync_group_keeps_the_masters(lab: Lab):
    a, _b, ours = await started_master(lab, two_instances())
    try:
        await ours.wait_state(State.MASTER, 5, "VI_2")
        await settled(ours, a)
        runners = dict(ours.runtime.runners)
        monitor = AddressMonitor(lab, a)
        before = len(ours.transitions)
        await ours.reload(two_instances("vrrp_sync_group G {\n group {\n VI_1\n VI_2\n }\n}\n"))
        await asyncio.sleep(2 * ADVERT)
        assert ours.runtime.runners == runners
        assert all(r.state is State.MASTER and r.machine.synced for r in runners.values())
        assert [(t.kind, t.name, t.new) for t in ours.transitions[before:]] == [
            ("group", "G", "MASTER")]
        assert ours.runtime.status()["sync_groups"] == {"G": "MASTER"}
        assert monitor.deleted(VIP) == [] and monitor.deleted(VIP2) == []
        # leaving it: each acts alone again, still no election
        await ours.reload(two_instances())
        await asyncio.sleep(2 * ADVERT)
        assert all(r.state is State.MASTER and not r.machine.synced
                   for r in runners.values())
        assert all(r.status()["counters"]["became_master"] == 1 for r in runners.values())
        assert monitor.deleted(VIP) == [] and a.has_address(VIP2)
    finally:
        await ours.runtime.stop(graceful=False)
