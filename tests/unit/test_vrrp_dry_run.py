"""`vrrp.dry_run`: the stand-ins log what they would change and change nothing (no
netlink, no nft, no socket is touched: these run without root)."""

from __future__ import annotations

import ipaddress
import logging

from vrrp.dry_run import (
    DeafSocket,
    DryRunAddresses,
    DryRunFifo,
    DryRunFirewall,
    DryRunGarp,
    dry_run_script,
)
from vrrp.firewall import Blocked
from vrrp.instance import VrrpInstanceRunner
from vrrp.machine import State
from vrrp.spec import AddressFamily, Route, VirtualAddress, VrrpInstance
from vrrp.track import Effective

VIP = VirtualAddress(address=ipaddress.IPv4Interface("198.51.100.100/24"))
GROUP = ipaddress.IPv4Address("224.0.0.18")


def test_addresses_routes_and_vmac_are_logged_not_made(caplog, tmp_path):
    caplog.set_level(logging.INFO, logger="vrrp")
    manager = DryRunAddresses(netns=str(tmp_path / "no-such-netns"))
    route = Route(destination=ipaddress.ip_network("203.0.113.0/24"),
                  via=ipaddress.IPv4Address("198.51.100.1"))
    assert manager.add(VIP, "eth0") and manager.add_route(route, "eth0")
    assert manager.remove_route(route, "eth0") and manager.remove(VIP, "eth0")
    vmac = manager.add_vmac(VrrpInstance(name="VI_1", interface="eth0",
                                         virtual_router_id=51, use_vmac=True))
    assert (vmac.name, vmac.mac, vmac.base) == ("vrrp.51", "00:00:5e:00:01:33", "eth0")
    assert manager.stop() == [] and manager.added() == []
    assert manager._ipr is None  # no netlink socket was opened
    assert caplog.messages == [
        "dry-run: vrrp: would add 198.51.100.100/24 dev eth0",
        "dry-run: vrrp: would add route 203.0.113.0/24 via 198.51.100.1 dev eth0",
        "dry-run: vrrp: would delete route 203.0.113.0/24 via 198.51.100.1 dev eth0",
        "dry-run: vrrp: would delete 198.51.100.100/24 dev eth0",
        "dry-run: vrrp: would add the VMAC vrrp.51 (macvlan, 00:00:5e:00:01:33) on eth0",
    ]


def test_firewall_garp_fifo_and_scripts_are_logged(caplog, tmp_path):
    caplog.set_level(logging.INFO, logger="vrrp")
    firewall = DryRunFirewall(nft=str(tmp_path / "nft-must-not-run"))
    firewall.block("VI_1", [Blocked(VIP.address.ip)])
    firewall.unblock("VI_1")
    firewall.close()
    DryRunGarp("eth0").send(VIP.address.ip)
    fifo = DryRunFifo(tmp_path / "fifo")
    assert fifo.write('INSTANCE "VI_1" MASTER 100\n')
    assert not (tmp_path / "fifo").exists()
    assert caplog.messages == [
        "dry-run: vrrp: (VI_1) would set the firewall drop rule (nftables table "
        "keepalived) for 198.51.100.100",
        "dry-run: vrrp: (VI_1) would remove the firewall drop rule",
        "dry-run: vrrp: would send a gratuitous ARP for 198.51.100.100 on eth0",
        'dry-run: vrrp: would write to the FIFO ' + str(tmp_path / "fifo")
        + ': INSTANCE "VI_1" MASTER 100',
    ]


async def test_a_notify_script_is_logged_not_run(caplog, tmp_path):
    caplog.set_level(logging.INFO, logger="vrrp")
    marker = tmp_path / "ran"
    assert await dry_run_script(("/usr/bin/touch", str(marker)), 5.0, "root", None) == 0
    assert not marker.exists()
    assert caplog.messages == [f"dry-run: vrrp: would run as root: /usr/bin/touch {marker}"]


async def test_a_dry_runner_sends_no_advert_but_runs_the_machine(caplog):
    caplog.set_level(logging.DEBUG, logger="vrrp")
    sock = DeafSocket(AddressFamily.INET, "eth0", (GROUP,))
    sent: list[bytes] = []
    sock.send = lambda payload, destination=None: sent.append(payload) or 1  # type: ignore
    instance = VrrpInstance(name="VI_1", interface="eth0", virtual_router_id=51,
                            priority=255, advert_int=0.05, version=3,
                            virtual_ipaddresses=(VIP,))
    runner = VrrpInstanceRunner(instance, socket=sock,
                                source=ipaddress.IPv4Address("198.51.100.1"),
                                addresses=DryRunAddresses(), dry_run=True)
    runner.apply(Effective(priority=255))
    runner.start()
    assert runner.state is State.MASTER
    await runner.drain(1)
    runner.shutdown(graceful=False)
    assert await runner.stopped(1)
    await runner.close()
    assert sent == [] and runner.counters["adverts_sent"] == 0
    assert "dry-run: vrrp: (VI_1) would send an advert (priority 255) to 224.0.0.18" \
        in caplog.messages
    assert "dry-run: vrrp: (VI_1) would send an advert (priority 0) to 224.0.0.18" \
        in caplog.messages
    assert "dry-run: vrrp: would add 198.51.100.100/24 dev eth0" in caplog.messages
