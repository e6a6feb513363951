"""vrrp.firewall without a kernel: the ruleset text (keepalived 2.2.7's table, chains,
sets and rules, as `nft list ruleset` shows them after keepalived set them), which
instances block which addresses, the Firewall's state with a fake ``nft`` that records
what it was fed, and the runner's order (drop rule before the VIPs, removed after)."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import stat
from pathlib import Path

import pytest

from tests.unit.test_vrrp_instance import FakeAddresses, FakeSocket
from vrrp.firewall import (
    Blocked,
    Firewall,
    FirewallError,
    blocked_addresses,
    blocks,
    ruleset,
)
from vrrp.instance import VrrpInstanceRunner
from vrrp.machine import State
from vrrp.spec import VirtualAddress, VrrpInstance

A4 = ipaddress.IPv4Address("192.0.2.100")
B4 = ipaddress.IPv4Address("192.0.2.101")
A6 = ipaddress.IPv6Address("2001:db8::100")
LL = ipaddress.IPv6Address("fe80::100")
OURS = ipaddress.IPv4Address("192.0.2.1")


def vip(text: str, **kw) -> VirtualAddress:
    return VirtualAddress(address=ipaddress.ip_interface(text), **kw)


def inst(**kw) -> VrrpInstance:
    values = dict(name="VI_1", interface="eth0", virtual_router_id=51, priority=100,
                  advert_int=0.05, version=3, accept=False, strict_mode=True,
                  virtual_ipaddresses=(vip("192.0.2.100/24"),))
    values.update(kw)
    return VrrpInstance(**values)


def statements(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


# ----------------------------------------------------------------- ruleset


def test_nothing_blocked_only_deletes_both_tables():
    assert statements(ruleset("keepalived", ())) == [
        "add table ip keepalived", "delete table ip keepalived",
        "add table ip6 keepalived", "delete table ip6 keepalived"]


def test_ipv4_is_keepalived_table():
    text = ruleset("keepalived", [Blocked(B4), Blocked(A4), Blocked(A4)])
    lines = statements(text)
    # always rebuilt from scratch: one nft run, one transaction
    assert lines[:4] == ["add table ip keepalived", "delete table ip keepalived",
                         "add table ip6 keepalived", "delete table ip6 keepalived"]
    assert "table ip keepalived {" in lines
    assert "table ip6 keepalived {" not in lines
    assert "elements = { 192.0.2.100, 192.0.2.101 }" in lines  # sorted, no duplicates
    assert "type filter hook input priority -1; policy accept;" in lines
    assert "type filter hook output priority -1; policy accept;" in lines
    assert "ip daddr @vips drop" in lines
    assert "ip saddr @vips drop" in lines
    assert not any("counter" in line for line in lines)


def test_priority_and_counters():
    lines = statements(ruleset("mine", [Blocked(A4), Blocked(A6)], priority=-150,
                               counters=True))
    assert "table ip mine {" in lines and "table ip6 mine {" in lines
    assert "type filter hook input priority -150; policy accept;" in lines
    assert "ip daddr @vips counter drop" in lines
    assert "ip6 daddr @vips counter drop" in lines
    assert "icmpv6 type @neighbor-discovery counter accept" in lines


def test_ipv6_neighbour_discovery_and_link_local():
    text = ruleset("keepalived", [Blocked(A6), Blocked(LL, "eth0")])
    lines = statements(text)
    assert "table ip keepalived {" not in lines
    body = text[text.index("table ip6 keepalived {"):]
    # ND first (the VIPs still resolve), link-local by interface, then the VIPs
    order = ["icmpv6 type @neighbor-discovery accept",
             "ip6 daddr fe80::/10 goto in_link_local", "ip6 daddr @vips drop"]
    assert [body.index(rule) for rule in order] == sorted(body.index(r) for r in order)
    assert "elements = { nd-neighbor-solicit, nd-neighbor-advert }" in lines
    assert "elements = { 2001:db8::100 }" in lines
    assert 'elements = { fe80::100 . "eth0" }' in lines
    assert "ip6 daddr . iifname @vips_link_local drop" in lines
    assert "ip6 saddr . oifname @vips_link_local drop" in lines
    assert "ip6 saddr @vips drop" in lines


def test_bad_names_are_refused():
    with pytest.raises(ValueError):
        ruleset("a b", [Blocked(A4)])
    with pytest.raises(ValueError):
        ruleset("t", [Blocked(LL, 'eth0"; flush ruleset')])
    with pytest.raises(ValueError):
        ruleset("t", [Blocked(LL)])  # a link-local address needs its interface


# ----------------------------------------------------------------- which addresses


def test_blocks_follows_keepalived():
    assert blocks(inst())
    assert not blocks(inst(accept=True))
    assert not blocks(inst(priority=255))  # the address owner always accepts


def test_blocked_addresses_vips_and_excluded():
    instance = inst(virtual_ipaddresses=(vip("192.0.2.100/24"), vip("fe80::100/64"),
                                         vip("fe80::200/64", dev="eth1")),
                    virtual_ipaddresses_excluded=(vip("2001:db8::100/64"),
                                                  vip("192.0.2.100/32")))
    assert blocked_addresses(instance, "vrrp.51") == (
        Blocked(A4), Blocked(LL, "vrrp.51"),
        Blocked(ipaddress.IPv6Address("fe80::200"), "eth1"), Blocked(A6))


# ----------------------------------------------------------------- Firewall


@pytest.fixture
def fake_nft(tmp_path: Path) -> tuple[Path, Path]:
    """An ``nft`` that appends its arguments and stdin to a log; `list tables` prints
    what the file ``tables`` holds; it fails when the file ``fail`` exists."""
    log = tmp_path / "nft.log"
    script = tmp_path / "nft"
    script.write_text(f"""#!/bin/sh
[ -e {tmp_path}/fail ] && {{ echo "Error: no" >&2; exit 1; }}
echo "ARGS $*" >> {log}
if [ "$1" = list ]; then cat {tmp_path}/tables 2>/dev/null; exit 0; fi
cat >> {log}
echo END >> {log}
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, log


def runs(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [chunk for chunk in log.read_text().split("END\n") if chunk.strip()]


def test_firewall_block_unblock_close(fake_nft):
    nft, log = fake_nft
    fw = Firewall(nft=str(nft))
    fw.close()
    assert runs(log) == []  # nothing made, nothing to delete
    fw.block("VI_1", [Blocked(A4)])
    fw.block("VI_2", [Blocked(B4)])
    fw.block("VI_2", [Blocked(B4)])  # no change: no run
    assert len(runs(log)) == 2
    assert "192.0.2.100, 192.0.2.101" in runs(log)[-1]
    fw.unblock("VI_1")
    assert "elements = { 192.0.2.101 }" in runs(log)[-1]
    assert fw.blocked == {"VI_2": frozenset({Blocked(B4)})}
    fw.unblock("VI_9")  # unknown: nothing
    assert len(runs(log)) == 3
    fw.unblock("VI_2")
    last = runs(log)[-1]
    assert "table ip keepalived {" not in last and "delete table ip keepalived" in last
    fw.close()
    assert len(runs(log)) == 4  # already deleted


def test_firewall_close_deletes_what_it_made(fake_nft):
    nft, log = fake_nft
    fw = Firewall(nft=str(nft), table="kat")
    fw.block("VI_1", [Blocked(A4), Blocked(A6)])
    fw.close()
    last = runs(log)[-1]
    assert "delete table ip kat" in last and "delete table ip6 kat" in last
    assert "{" not in last
    assert fw.blocked == {}


def test_firewall_leftovers(fake_nft, tmp_path):
    nft, log = fake_nft
    fw = Firewall(nft=str(nft))
    assert fw.remove_leftovers() == []
    (tmp_path / "tables").write_text("table ip filter\ntable ip keepalived\n"
                                     "table inet keepalived\ntable ip6 keepalived\n")
    assert fw.remove_leftovers() == ["ip keepalived", "ip6 keepalived"]
    assert "delete table ip6 keepalived" in runs(log)[-1]


def test_firewall_errors(fake_nft, tmp_path):
    nft, _ = fake_nft
    (tmp_path / "fail").write_text("")
    fw = Firewall(nft=str(nft))
    with pytest.raises(FirewallError, match="exited 1: Error: no"):
        fw.block("VI_1", [Blocked(A4)])
    assert fw.blocked == {"VI_1": frozenset({Blocked(A4)})}  # wanted, applied later
    os.unlink(tmp_path / "fail")
    fw.close()  # it may have made something: deletes
    missing = Firewall(nft=str(tmp_path / "no-such-nft"))
    with pytest.raises(FirewallError, match="not found"):
        missing.block("VI_1", [Blocked(A4)])


def test_netns_prefix():
    assert Firewall("ns1")._argv("-f", "-") == ["ip", "netns", "exec", "ns1", "nft",
                                                "-f", "-"]


# ----------------------------------------------------------------- the runner


class RecordingFirewall:
    def __init__(self, calls: list):
        self.calls = calls

    def block(self, name, vips):
        self.calls.append(("block", name, tuple(vips)))

    def unblock(self, name, vips=None):
        self.calls.append(("unblock", name))


class Addresses(FakeAddresses):
    def __init__(self, calls: list):
        super().__init__()
        self.calls = calls


async def run_master(instance: VrrpInstance) -> list:
    calls: list = []
    r = VrrpInstanceRunner(instance, socket=FakeSocket(), source=OURS,
                           addresses=Addresses(calls),
                           firewall=RecordingFirewall(calls))  # type: ignore[arg-type]
    r.start()
    if instance.priority != 255:
        await asyncio.sleep(0.25)  # master-down timer (3 x 0.05 s + skew)
    await r.drain(1)
    assert r.state is State.MASTER
    r.shutdown(graceful=False)
    assert await r.stopped(1)
    await r.close()
    return calls


async def test_runner_blocks_before_adding_and_unblocks_after_removing():
    calls = await run_master(inst())
    assert calls == [("block", "VI_1", (Blocked(A4),)), ("add", "192.0.2.100/24"),
                     ("remove", "192.0.2.100/24"), ("unblock", "VI_1")]


async def test_runner_owner_and_accept_never_block():
    for instance in (inst(priority=255), inst(accept=True)):
        calls = await run_master(instance)
        assert calls == [("add", "192.0.2.100/24"), ("remove", "192.0.2.100/24")]
