"""use_vmac with two of ours (`director run --vrrp-only`) and a client on one bridge.

The master holds the VIP on the macvlan ``vrrp.51`` with the VRRP MAC
00:00:5e:00:01:33; adverts and gratuitous ARPs leave from that MAC, the base interface
no longer answers ARP for it (arp_ignore/arp_filter), so the client's neighbour entry
for the VIP shows the virtual MAC, and after a failover the very same MAC: no ARP
update is needed. At stop the VMAC goes away and the base's sysctls come back.
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import time

from tests.netns.lab import ETH_P_IP, Lab, Node, wait_until
from tests.netns.test_vrrp_run import (
    ADVERT,
    MASTER_DOWN,
    VIP,
    Ours,
    config,
    holds,
    pair,
    wait_holds,
    wait_released,
)

VMAC = "00:00:5e:00:01:33"  # VRID 51
ETH_P_ARP = 0x0806


def link(node: Node, name: str) -> dict | None:
    done = node.run("ip", "-j", "-d", "link", "show", "dev", name, check=False)
    if done.returncode != 0:
        return None
    return json.loads(done.stdout)[0]


def vip_device(node: Node) -> str | None:
    for iface in node.addresses():
        for address in iface.get("addr_info", ()):
            if address.get("local") == VIP:
                return iface["ifname"]
    return None


def reach(client: Node) -> bool:
    """A TCP connect from the client to the VIP is answered (a RST: port closed)."""
    sock = client.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(1.0)
    try:
        sock.connect((VIP, 9))
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        sock.close()
    return True


def neighbour_mac(client: Node) -> str | None:
    reach(client)
    done = client.run("ip", "-j", "neigh", "show", VIP)
    entries = json.loads(done.stdout or "[]")
    return entries[0].get("lladdr") if entries else None


def sysctl(node: Node, interface: str, key: str) -> str:
    return node.run("cat", f"/proc/sys/net/ipv4/conf/{interface}/{key}").stdout.strip()


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def test_vmac_failover_keeps_the_mac(lab: Lab):
    a, b = pair(lab)
    client = lab.add_node("client")
    before = {key: sysctl(a, "eth0", key) for key in ("arp_ignore", "arp_filter",
                                                         "arp_announce")}
    text_a = config(150, instance_extra="use_vmac")
    text_b = config(100, instance_extra="use_vmac")
    with lab.capture(client.ns, "eth0") as capture:
        ours_a = Ours(lab, a, text_a, "vmac").start()
        ours_a.wait_log("(VI_1) Entering MASTER STATE")
        wait_holds(a, 5)
        ours_b = Ours(lab, b, text_b, "vmac").start()
        ours_b.wait_log("(VI_1) Entering BACKUP STATE")
        time.sleep(3 * ADVERT + 0.3)
        assert holds(a) and not holds(b)

        # the VMAC: a private macvlan with the VRRP MAC, holding the VIP
        for node in (a, b):
            info = link(node, "vrrp.51")
            assert info is not None, f"no vrrp.51 on {node.role}"
            assert info["address"] == VMAC
            assert info["linkinfo"]["info_kind"] == "macvlan"
            assert info["linkinfo"]["info_data"]["mode"] == "private"
            assert sysctl(node, "vrrp.51", "arp_ignore") == "1"
            assert sysctl(node, "vrrp.51", "rp_filter") == "0"
            assert sysctl(node, "vrrp.51", "accept_local") == "1"
            assert sysctl(node, "eth0", "arp_ignore") == "1"
            assert sysctl(node, "eth0", "arp_filter") == "1"
            assert sysctl(node, "eth0", "arp_announce") == "2"
        assert vip_device(a) == "vrrp.51"

        # what the client sees: adverts and GARPs from the virtual MAC
        capture.poll(0.1)
        frames = capture.frames
        vrrp_macs = {mac_text(f[6:12]) for _, f in frames
                     if struct.unpack("!H", f[12:14])[0] == ETH_P_IP and f[23] == 112}
        assert vrrp_macs == {VMAC}, vrrp_macs
        garps = [f for _, f in frames if struct.unpack("!H", f[12:14])[0] == ETH_P_ARP
                 and f[28:32] == bytes(map(int, VIP.split(".")))]
        assert garps, "no gratuitous ARP for the VIP"
        assert {mac_text(f[6:12]) for f in garps} == {VMAC}
        assert {mac_text(f[22:28]) for f in garps} == {VMAC}  # ARP sender MAC

    assert neighbour_mac(client) == VMAC

    # graceful failover: b holds the VIP on its own vrrp.51, with the same MAC
    assert ours_a.process is not None
    ours_a.process.send_signal(signal.SIGTERM)
    took = wait_holds(b, 5)
    assert took < MASTER_DOWN + 0.3
    assert vip_device(b) == "vrrp.51"
    assert ours_a.process.wait(5) == 0
    wait_released(a, 2)
    assert link(a, "vrrp.51") is None, "the VMAC outlived its director"
    assert {key: sysctl(a, "eth0", key) for key in before} == before
    mac = None
    for _ in range(3):  # the bridge relearns the port from b's GARPs
        mac = neighbour_mac(client)
        if reach(client):
            break
    assert mac == VMAC
    assert reach(client)


def test_vmac_link_down_failover(lab: Lab):
    """The master's base link goes down: the backup takes the VIP on its VMAC; the
    client keeps reaching it through the same neighbour entry."""
    a, b = pair(lab)
    client = lab.add_node("client")
    ours_a = Ours(lab, a, config(150, instance_extra="use_vmac"), "vmac-ld").start()
    ours_a.wait_log("(VI_1) Entering MASTER STATE")
    wait_holds(a, 5)
    ours_b = Ours(lab, b, config(100, instance_extra="use_vmac"), "vmac-ld").start()
    ours_b.wait_log("(VI_1) Entering BACKUP STATE")
    time.sleep(3 * ADVERT + 0.3)
    assert neighbour_mac(client) == VMAC
    a.run("ip", "link", "set", "eth0", "down")
    wait_holds(b, 5)
    ours_a.wait_log("(VI_1) Entering FAULT STATE", 3)
    wait_until(lambda: reach(client), 5)
    assert neighbour_mac(client) == VMAC
