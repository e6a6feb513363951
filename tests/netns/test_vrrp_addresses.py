"""vrrp.addresses against the host kernel: what AddressManager puts on the interfaces is
what our model says (the same comparison test_keepalived_vips.py makes for keepalived,
on the same configuration), what `stop` removes is exactly what it added, leftovers of
a crashed run are cleaned, routes are what `ip route add` makes of the same route, and
a VMAC is the macvlan keepalived makes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json

import pytest

from director.config.keepalived import load_keepalived
from tests.netns.conftest import KeepalivedFactory
from tests.netns.keepalived_peer import GLOBAL_DEFS
from tests.netns.lab import Lab, Node, wait_until
from tests.netns.test_keepalived_vips import CONF, INSTANCES, VIP_LINES
from tests.netns.vrrp_model import expected_addresses, instance_named, kernel_addresses
from vrrp.addresses import (
    AddressError,
    AddressManager,
    instance_interface,
    vmac_name,
)
from vrrp.spec import (
    AddressFamily,
    NextHop,
    Route,
    RouteMetric,
    RouteType,
    Scope,
    VirtualAddress,
    VrrpInstance,
)


def load_instances(lab: Lab, text: str, names: tuple[str, ...]) -> list[VrrpInstance]:
    conf = lab.workdir / "vrrp.conf"
    conf.write_text(text)
    config, _warnings = load_keepalived(str(conf))
    return [instance_named(config, name) for name in names]


def all_vips(instance: VrrpInstance) -> tuple[VirtualAddress, ...]:
    return instance.virtual_ipaddresses + instance.virtual_ipaddresses_excluded


def test_vips_are_what_our_model_says_and_stop_removes_them(lab: Lab):
    instances = load_instances(lab, CONF, INSTANCES)
    expected = set().union(*(expected_addresses(i) for i in instances))
    assert len(expected) == VIP_LINES
    node = lab.add_node("director", ["lan", "dmz"])
    base = kernel_addresses(node)
    with AddressManager(netns=node.ns) as manager:
        for instance in instances:
            for vip in all_vips(instance):
                assert not manager.present(vip, instance.interface)
                assert manager.add(vip, instance.interface)
                assert manager.present(vip, instance.interface)
        actual = kernel_addresses(node) - base
        assert sorted(actual) == sorted(expected), (
            f"\nonly on the interfaces: {sorted(actual - expected)}"
            f"\nonly in our model:      {sorted(expected - actual)}")
        # Adding again changes nothing and is not recorded twice.
        vip = instances[0].virtual_ipaddresses[0]
        assert not manager.add(vip, "eth0")
        assert len(manager.added()) == VIP_LINES
        assert manager.stop() == []
        assert kernel_addresses(node) == base
        assert manager.added() == []


def test_remove_and_stop_leave_what_is_not_ours(lab: Lab):
    node = lab.add_node("director")
    node.run("ip", "addr", "add", "192.0.2.100/24", "dev", "eth0")  # the admin's
    ours = VirtualAddress(address=ipaddress.ip_interface("192.0.2.101/24"))
    admins = VirtualAddress(address=ipaddress.ip_interface("192.0.2.100/24"))
    v6 = VirtualAddress(address=ipaddress.ip_interface("2001:db8::101/64"), nodad=True)
    with AddressManager(netns=node.ns) as manager:
        assert not manager.add(admins, "eth0")  # there already: not recorded
        assert manager.add(ours, "eth0")
        assert manager.add(v6, "eth0")
        assert manager.remove(v6, "eth0")
        assert not manager.remove(v6, "eth0")
        assert not manager.present(v6, "eth0")
        assert manager.stop() == []
    assert node.has_address("192.0.2.100")
    assert not node.has_address("192.0.2.101")
    assert node.has_address(str(node.ipv4.ip))


def test_address_options(lab: Lab):
    node = lab.add_node("director")
    vips = [
        VirtualAddress(address=ipaddress.ip_interface("192.0.2.120/32"),
                       peer=ipaddress.ip_interface("192.0.2.200/32"), label="eth0:p"),
        VirtualAddress(address=ipaddress.ip_interface("2001:db8::120/64"), nodad=True,
                       noprefixroute=True, preferred_lft=0),
        VirtualAddress(address=ipaddress.ip_interface("203.0.113.9/24"), scope=Scope.HOST,
                       broadcast=ipaddress.IPv4Address("203.0.113.255")),
    ]
    with AddressManager(netns=node.ns) as manager:
        for vip in vips:
            assert manager.add(vip, "eth0")
            assert manager.present(vip, "eth0")
        infos = {info["local"]: info for iface in node.addresses()
                 for info in iface["addr_info"]}
        assert infos["192.0.2.120"]["address"] == "192.0.2.200"
        assert infos["192.0.2.120"]["label"] == "eth0:p"
        v6 = infos["2001:db8::120"]
        assert v6.get("noprefixroute") and v6.get("nodad") and v6["preferred_life_time"] == 0
        assert infos["203.0.113.9"]["scope"] == "host"
        assert infos["203.0.113.9"]["broadcast"] == "203.0.113.255"
        assert manager.stop() == []
        assert not any(node.has_address(a) for a in infos if a.endswith(("120", ".9")))
        with pytest.raises(AddressError) as info:
            manager.add(vips[0], "nosuch0")
        assert info.value.code == 19


VMAC_CONF = GLOBAL_DEFS + """
vrrp_instance VI_4 {
    state MASTER
    interface eth0
    use_vmac
    virtual_router_id 51
    priority 255
    advert_int 1
    virtual_ipaddress {
        192.0.2.100/24
    }
}
vrrp_instance VI_6 {
    state MASTER
    interface eth0
    use_vmac vrrp6.52
    virtual_router_id 52
    priority 255
    advert_int 1
    virtual_ipaddress {
        2001:db8::100/64
    }
}
"""


def vmac_view(node: Node, name: str) -> dict:
    link = json.loads(node.run("ip", "-d", "-j", "link", "show", name).stdout)[0]
    info = link["linkinfo"]
    return {"name": link["ifname"], "mac": link["address"], "kind": info["info_kind"],
            "mode": info["info_data"]["mode"], "up": "UP" in link["flags"]}


def test_leftovers_of_a_crashed_run_are_removed(lab: Lab):
    vmac_conf = (VMAC_CONF.replace(GLOBAL_DEFS, "").replace("VI_", "VM_")
                 .replace("id 51", "id 61").replace("id 52", "id 62")
                 .replace("vrrp6.52", "vrrp6.62"))
    instances = load_instances(lab, CONF + vmac_conf, (*INSTANCES, "VM_4"))
    node = lab.add_node("director", ["lan", "dmz"])
    base = kernel_addresses(node)
    with AddressManager(netns=node.ns) as crashed:
        vmac = crashed.add_vmac(instances[2])
        for instance in instances:
            for vip in all_vips(instance):
                crashed.add(vip, instance_interface(instance))
    # (the crashed run never called stop)
    node.run("ip", "addr", "add", "192.0.2.77/24", "dev", "eth0")  # not in the config
    with AddressManager(netns=node.ns) as manager:
        removed = manager.remove_leftovers(instances)
        # (Deleting a primary address takes its secondaries with it: fewer lines.)
        assert 0 < len(removed) <= VIP_LINES + 2
        assert removed[-2:] == ["VM_4: address 192.0.2.100/24 dev vrrp.61",
                                "VM_4: vmac vrrp.61"]
        assert kernel_addresses(node) - base == {
            a for a in kernel_addresses(node) if a.address == "192.0.2.77/24"}
        assert manager.interface_index(vmac.name) is None
        assert manager.remove_leftovers(instances) == []
        assert manager.added() == []


def test_vmac_is_the_macvlan_keepalived_makes(lab: Lab, keepalived: KeepalivedFactory):
    ref = lab.add_node("keepalived")
    node = lab.add_node("director")
    instances = load_instances(lab, VMAC_CONF, ("VI_4", "VI_6"))
    peer = keepalived(ref, VMAC_CONF)
    peer.wait_master("VI_4", 10)
    peer.wait_master("VI_6", 10)
    with AddressManager(netns=node.ns) as manager:
        made = [manager.add_vmac(instance) for instance in instances]
        assert [v.name for v in made] == ["vrrp.51", "vrrp6.52"]
        assert [v.mac for v in made] == ["00:00:5e:00:01:33", "00:00:5e:00:02:34"]
        for instance in instances:
            name = vmac_name(instance)
            assert vmac_view(node, name) == vmac_view(ref, name)
            assert vmac_view(node, name)["mode"] == "private"
            for vip in instance.virtual_ipaddresses:
                assert manager.add(vip, instance_interface(instance))
        assert node.has_address("192.0.2.100") and node.has_address("2001:db8::100")
        # Adopting an existing VMAC does not make it ours.
        assert manager.add_vmac(instances[0]).name == "vrrp.51"
        assert len([a for a in manager.added() if a[0] == "vmac"]) == 2
        assert manager.stop() == []
        assert manager.interface_index("vrrp.51") is None
        assert manager.interface_index("vrrp6.52") is None


def routes(node: Node, family: str) -> list[dict]:
    found = json.loads(node.run("ip", "-j", family, "route", "show", "table", "all").stdout)
    skip = ("kernel",)
    return sorted((r for r in found if r.get("protocol") not in skip
                   and r.get("type") not in ("local", "broadcast", "multicast")
                   and not r.get("dst", "").startswith("fe80")),
                  key=json.dumps)


ROUTES = [
    (Route(destination=ipaddress.ip_network("198.51.100.0/24"),
           via=ipaddress.ip_address("192.0.2.254"), dev="eth0"),
     "198.51.100.0/24 via 192.0.2.254 dev eth0"),
    (Route(destination=ipaddress.ip_network("203.0.113.0/24"), dev="eth0",
           scope=Scope.LINK, source=ipaddress.ip_address("192.0.2.1")),
     "203.0.113.0/24 dev eth0 scope link src 192.0.2.1"),
    (Route(destination=ipaddress.ip_network("10.9.0.0/16"),
           via=ipaddress.ip_address("192.0.2.254"), metric=50, table=100),
     "10.9.0.0/16 via 192.0.2.254 metric 50 table 100"),
    (Route(type=RouteType.BLACKHOLE, destination=ipaddress.ip_network("10.10.0.0/16")),
     "blackhole 10.10.0.0/16"),
    (Route(destination=ipaddress.ip_network("10.11.0.0/16"),
           nexthops=(NextHop(via=ipaddress.ip_address("192.0.2.253"), weight=2),
                     NextHop(via=ipaddress.ip_address("192.0.2.254"), dev="eth0"))),
     "10.11.0.0/16 nexthop via 192.0.2.253 weight 2 nexthop via 192.0.2.254 dev eth0"),
    (Route(destination=ipaddress.ip_network("10.12.0.0/16"),
           via=ipaddress.ip_address("192.0.2.254"), protocol="static",
           metrics=(RouteMetric(name="mtu", value="1400"),)),
     "10.12.0.0/16 via 192.0.2.254 proto static mtu 1400"),
    (Route(destination=ipaddress.ip_network("10.13.0.0/16"),
           via=ipaddress.ip_address("198.18.0.1"), dev="eth0", onlink=True),
     "10.13.0.0/16 via 198.18.0.1 dev eth0 onlink"),
    (Route(destination=ipaddress.ip_network("2001:db8:5::/48"),
           via=ipaddress.ip_address("2001:db8::fe"), dev="eth0"),
     "2001:db8:5::/48 via 2001:db8::fe dev eth0"),
    (Route(type=RouteType.UNREACHABLE, destination=ipaddress.ip_network("2001:db8:6::/48")),
     "unreachable 2001:db8:6::/48"),
]


def test_routes_are_what_ip_route_add_makes(lab: Lab):
    ours = lab.add_node("ours", "lan", host=1)
    lab.add_segment("lan2", "192.0.2.0/24", "2001:db8::/64")
    theirs = lab.add_node("theirs", "lan2", host=1)
    for _route, text in ROUTES:
        family = "-6" if ":" in text.split()[0] + text.split()[1] else "-4"
        theirs.run("ip", family, "route", "add", *text.split())
    before = {f: routes(ours, f) for f in ("-4", "-6")}
    with AddressManager(netns=ours.ns) as manager:
        for route, _text in ROUTES:
            assert manager.add_route(route), route
        assert not manager.add_route(ROUTES[0][0])  # exists: not recorded again
        assert len(routes(ours, "-4")) == len(before["-4"]) + 7
        for family in ("-4", "-6"):
            assert routes(ours, family) == routes(theirs, family)
        with pytest.raises(AddressError) as info:
            manager.add_route(Route(destination=ipaddress.ip_network("10.14.0.0/16"),
                                    encap=("mpls", "100")))
        assert info.value.code == 95
        assert manager.remove_route(ROUTES[3][0])
        assert not manager.remove_route(ROUTES[3][0])
        assert manager.stop() == []
        assert {f: routes(ours, f) for f in ("-4", "-6")} == before


async def test_used_from_an_event_loop_through_a_thread(lab: Lab):
    node = lab.add_node("director")
    vips = [VirtualAddress(address=ipaddress.ip_interface(f"192.0.2.{n}/24"))
            for n in range(100, 110)]
    with AddressManager(netns=node.ns) as manager:
        results = await asyncio.gather(*(asyncio.to_thread(manager.add, vip, "eth0")
                                         for vip in vips))
        assert all(results)
        assert await asyncio.to_thread(manager.primary_address, "eth0",
                                       AddressFamily.INET) == node.ipv4.ip
        link_local = await asyncio.to_thread(manager.primary_address, "eth0",
                                             AddressFamily.INET6)
        assert link_local is not None and link_local.is_link_local
        assert await asyncio.to_thread(manager.stop) == []
    wait_until(lambda: not node.has_address("192.0.2.105"), 2)
