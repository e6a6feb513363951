"""VIP semantics: what our model says a virtual_ipaddress line means is what a real
keepalived puts on the interfaces, field for field (address/prefix, device, label,
scope, broadcast).

One keepalived (priority 255, so it is master at once) runs in a namespace with two
links; once its instances are master, `ip -j addr` there must show exactly the
addresses our model of the same file describes, beside the node's own.
"""

from __future__ import annotations

import contextlib

from director.config.keepalived import load_keepalived
from tests.netns.keepalived_peer import KeepalivedFactory
from tests.netns.lab import Lab, Node, wait_until
from tests.netns.vrrp_model import (
    KernelAddress,
    expected_addresses,
    instance_named,
    kernel_addresses,
)

CONF = """\
global_defs {
    script_user root
    enable_script_security
}

vrrp_instance VI_4 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 255
    version 3
    advert_int 0.1
    virtual_ipaddress {
        192.0.2.100/24
        192.0.2.101
        192.0.2.102/24 dev eth0 label eth0:vip
        198.51.100.10/24 dev eth1 brd 198.51.100.255 label eth1:one
        198.51.100.11/25 dev eth1 brd 198.51.100.99
        198.51.100.12/25 dev eth1 brd +
        198.51.100.13/25 dev eth1 brd -
        203.0.113.5/28 scope link
        203.0.113.7 dev eth1 scope site
    }
    virtual_ipaddress_excluded {
        2001:db8::100/64
        2001:db8:1::5 dev eth1
        203.0.113.77/32 dev eth1 label eth1:x
    }
}

vrrp_instance VI_6 {
    state MASTER
    interface eth0
    virtual_router_id 52
    priority 255
    advert_int 0.1
    virtual_ipaddress {
        2001:db8::200/64
        2001:db8:1::201 dev eth1
    }
}
"""
INSTANCES = ("VI_4", "VI_6")
VIP_LINES = 14  # address lines in CONF: the model must account for every one


# Scopes as rt_scopes numbers: named ones (200 site, 253 link, 254 host, 0 global) and
# one ip has no name for. One prefix each: the kernel refuses a secondary address whose
# scope differs from its primary's ("ipv4: Invalid scope value").
NUMERIC_SCOPE_CONF = """\
vrrp_instance VI_4 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 255
    version 3
    advert_int 0.1
    virtual_ipaddress {
        192.0.2.100/24
        198.51.100.14/28 dev eth1 scope 200
        198.51.100.30/28 dev eth1 scope 253
        198.51.100.46/28 dev eth1 scope 254
        198.51.100.62/28 dev eth1 scope 0
        198.51.100.78/28 dev eth1 scope 17
    }
}
"""


def settled_view(node: Node, base: set[KernelAddress], count: int) -> set[KernelAddress]:
    """The addresses keepalived added, once `count` are there (or what is there after
    the wait, for the failure message)."""
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: len(kernel_addresses(node) - base) >= count, 5)
    return kernel_addresses(node) - base


def compare_with_keepalived(lab: Lab, keepalived: KeepalivedFactory, text: str,
                            instances: tuple[str, ...], lines: int) -> None:
    conf = lab.workdir / "vips.conf"
    conf.write_text(text)
    config, _warnings = load_keepalived(str(conf))
    expected: set[KernelAddress] = set()
    for name in instances:
        expected |= expected_addresses(instance_named(config, name))
    assert len(expected) == lines, sorted(expected)

    node = lab.add_node("director", ["lan", "dmz"])
    base = kernel_addresses(node)
    peer = keepalived(node, conf)
    for name in instances:
        peer.wait_master(name, 10)
    actual = settled_view(node, base, len(expected))
    assert sorted(actual) == sorted(expected), (
        f"\nonly on the interfaces: {sorted(actual - expected)}"
        f"\nonly in our model:      {sorted(expected - actual)}")


def test_vips_on_the_interfaces_are_what_our_model_says(lab: Lab,
                                                        keepalived: KeepalivedFactory):
    compare_with_keepalived(lab, keepalived, CONF, INSTANCES, VIP_LINES)


def test_numeric_scopes_mean_what_keepalived_makes_of_them(lab: Lab,
                                                           keepalived: KeepalivedFactory):
    compare_with_keepalived(lab, keepalived, NUMERIC_SCOPE_CONF, ("VI_4",), 6)
