"""Whole-config checks of the VRRP part (`director.config.validate_vrrp`)."""

from __future__ import annotations

from functools import partial
from ipaddress import IPv4Address, IPv6Address, ip_interface, ip_network

import pytest
from config_helpers import dedent, errors, warnings
from config_helpers import where as where_in

from director.config.build_vrrp import build_vrrp_config, build_vrrp_globals
from director.config.errors import Diagnostics
from director.config.model import Config, GlobalDefs, LvsSyncDaemon
from director.config.reader import read_text
from director.config.validate_vrrp import validate_vrrp
from vrrp.spec import (
    AddressFamily,
    Authentication,
    FieldOrigin,
    InstanceState,
    Route,
    Scope,
    SyncGroup,
    UnicastPeer,
    VirtualAddress,
    VrrpConfig,
    VrrpInstance,
)

FILE = "v.conf"
where = partial(where_in, file=FILE)


def check(text: str) -> tuple[VrrpConfig, Diagnostics, Diagnostics]:
    """Build ``text`` (which must build cleanly) and validate it; returns the config,
    the build's problems and the validation's."""
    built = Diagnostics()
    nodes = read_text(dedent(text), FILE, built)
    lines = [c for n in nodes if n.keyword == "global_defs" for c in n.children or ()]
    config = build_vrrp_config(nodes, built, build_vrrp_globals(lines, built))
    assert not built.errors, [str(p) for p in built.errors]
    diag = Diagnostics()
    validate_vrrp(config, diag)
    return config, built, diag


def validate(config: VrrpConfig) -> Diagnostics:
    diag = Diagnostics()
    validate_vrrp(config, diag)
    return diag


def inst(name: str, vrid: int = 1, interface: str = "eth0", vips: str = "192.0.2.1/24",
         **extra) -> str:
    body = "".join(f"    {line}\n" for line in dedent(extra.get("body", "")).splitlines())
    return (f"vrrp_instance {name} {{\n    interface {interface}\n"
            f"    virtual_router_id {vrid}\n{body}"
            f"    virtual_ipaddress {{\n        {vips}\n    }}\n}}\n")


def vrrp_instance(**fields) -> VrrpInstance:
    """An instance as a YAML file could give it (no builder adjustments)."""
    values = {"name": "Y", "interface": "eth0", "virtual_router_id": 1,
              "virtual_ipaddresses": (VirtualAddress(address=ip_interface("192.0.2.1/24"),
                                                     origin="y.yaml:9:5"),),
              "origin": "y.yaml:1:1"}
    values.update(fields)
    return VrrpInstance(**values)


# ----------------------------------------------------------------- a clean config


def test_a_sound_config_has_no_problems():
    _, built, diag = check(inst("A", 1) + inst("B", 2, vips="192.0.2.2/24"))
    assert not built.problems and not diag.problems


def test_accepts_the_director_config():
    config, _, _ = check(inst("A", 1))
    diag = Diagnostics()
    syncd = LvsSyncDaemon(interface="eth0", vrrp_instance="NOPE", origin="g.conf:3:5")
    validate_vrrp(Config(vrrp=config, global_defs=GlobalDefs(lvs_sync_daemon=syncd)), diag)
    assert errors(diag) == [("g.conf:3:5", "lvs_sync_daemon: no valid vrrp_instance NOPE")]
    diag = Diagnostics()
    syncd = LvsSyncDaemon(interface="eth0", vrrp_instance="A")
    validate_vrrp(Config(vrrp=config, global_defs=GlobalDefs(lvs_sync_daemon=syncd)), diag)
    assert not diag.problems


# ----------------------------------------------------------------- VRIDs


def test_duplicate_vrid_on_one_interface_and_family():
    text = inst("A", 10) + inst("B", 10, vips="192.0.2.2/24")
    _, _, diag = check(text)
    assert errors(diag) == [(where(text, "10", 1), f"(B) VRID 10 is already used by A "
                                                   f"({FILE}:1:1) with inet on interface eth0")]


@pytest.mark.parametrize("second", [
    inst("B", 10, interface="eth1", vips="192.0.2.2/24"),  # another interface
    inst("B", 10, vips="fe80::2"),  # another family
    inst("B", 10, vips="192.0.2.2/24", body="mcast_dst_ip 224.0.0.99"),  # another group
    inst("B", 10, vips="192.0.2.2/24", body="unicast_peer {\n    192.0.2.9\n}"),  # unicast
])
def test_the_same_vrid_may_be_used_on_separate_sockets(second):
    _, _, diag = check(inst("A", 10) + second)
    assert not diag.errors


def test_unicast_instances_share_a_vrid_only_without_common_peers():
    peers = "unicast_peer {{\n    {}\n}}"
    text = (inst("A", 7, body=peers.format("192.0.2.8")) +
            inst("B", 7, vips="192.0.2.2/24", body=peers.format("192.0.2.9")))
    assert not check(text)[2].errors
    text = (inst("A", 7, body=peers.format("192.0.2.8")) +
            inst("B", 7, vips="192.0.2.2/24", body=peers.format("192.0.2.8")))
    _, _, diag = check(text)
    assert [o for o, _ in errors(diag)] == [where(text, "7", 1)]


@pytest.mark.parametrize(("vrid", "message"), [
    (0, "(Y) virtual_router_id is not set"),
    (256, "(Y) virtual_router_id 256 is out of range (1-255)"),
])
def test_vrid_range(vrid, message):
    config = VrrpConfig(instances=(vrrp_instance(
        virtual_router_id=vrid,
        field_origins=(FieldOrigin(name="virtual_router_id", origin="y.yaml:4:9"),)),))
    assert errors(validate(config)) == [("y.yaml:4:9", message)]


# ----------------------------------------------------------------- priority, timers


def test_priority_range():
    config = VrrpConfig(instances=(vrrp_instance(priority=0),))
    assert errors(validate(config)) == [("y.yaml:1:1", "(Y) priority 0 is out of range "
                                                       "(1-255)")]


def test_priority_255_means_address_owner():
    text = inst("A", 1, body="priority 255")
    _, _, diag = check(text)
    assert warnings(diag) == [(where(text, "255"),
                               "(A) priority 255 makes this instance the address owner: it "
                               "takes over at once, and tracking never changes its priority")]
    text = inst("A", 1, body="state MASTER")
    _, _, diag = check(text)
    assert warnings(diag) == [(where(text, "MASTER"),
                               "(A) priority 255 (keepalived's default for state MASTER "
                               "without a priority) makes this instance the address owner: "
                               "it takes over at once, and tracking never changes its "
                               "priority")]


@pytest.mark.parametrize(("version", "advert_int", "ok"), [
    (2, 1.0, True), (2, 255.0, True), (2, 1.5, False), (2, 0.5, False), (2, 256.0, False),
    (3, 0.01, True), (3, 40.95, True), (3, 0.015, False), (3, 41.0, False), (3, 0.0, False),
])
def test_advert_int_range_by_version(version, advert_int, ok):
    config = VrrpConfig(instances=(vrrp_instance(
        version=version, advert_int=advert_int,
        field_origins=(FieldOrigin(name="advert_int", origin="y.yaml:5:9"),)),))
    diag = validate(config)
    assert not diag.errors if ok else [o for o, _ in errors(diag)] == ["y.yaml:5:9"]


# ----------------------------------------------------------------- instance settings


def test_authentication_with_version_3_is_ignored():
    auth = Authentication(auth_pass="x", origin="y.yaml:6:5")
    diag = validate(VrrpConfig(instances=(vrrp_instance(version=3, authentication=auth),)))
    assert warnings(diag) == [("y.yaml:6:5", "(Y) VRRP version 3 has no authentication; "
                                             "ignored")]


def test_nopreempt_with_state_master():
    diag = validate(VrrpConfig(instances=(vrrp_instance(state=InstanceState.MASTER,
                                                        nopreempt=True),)))
    assert warnings(diag) == [("y.yaml:1:1", "(Y) nopreempt does not work with initial "
                                             "state MASTER")]


def test_unicast_peer_of_the_other_family():
    peer = UnicastPeer(address=IPv6Address("2001:db8::5"), origin="y.yaml:7:7")
    diag = validate(VrrpConfig(instances=(vrrp_instance(unicast_peers=(peer,)),)))
    assert errors(diag) == [("y.yaml:7:7", "(Y) unicast peer 2001:db8::5 is not inet like "
                                           "the instance")]


def test_vip_and_source_of_the_other_family():
    vip = VirtualAddress(address=ip_interface("2001:db8::1/64"), origin="y.yaml:9:5")
    diag = validate(VrrpConfig(instances=(vrrp_instance(
        virtual_ipaddresses=(vip,), unicast_src_ip=IPv6Address("2001:db8::9"),
        field_origins=(FieldOrigin(name="unicast_src_ip", origin="y.yaml:8:5"),)),)))
    assert [o for o, _ in errors(diag)] == ["y.yaml:9:5", "y.yaml:8:5"]


def test_mcast_dst_ip_must_be_multicast():
    text = inst("A", 1, body="mcast_dst_ip 192.0.2.77")
    _, _, diag = check(text)
    assert errors(diag) == [(where(text, "192.0.2.77"), "(A) mcast_dst_ip 192.0.2.77 is not "
                                                        "a multicast address")]
    _, _, diag = check(inst("A", 1, vips="fe80::1", body="mcast_dst_ip ff05::12"))
    assert [m for _, m in errors(diag)] == [
        "(A) mcast_dst_ip ff05::12 is not a link-local multicast address"]


def test_strict_mode_accepts_unicast_peers():
    # keepalived 2.2.7 accepts them and runs the instance in unicast (checked against
    # keepalived -t in tests/netns: strict-mode-unicast.conf).
    config, built, diag = check(inst("A", 1, body="strict_mode\nunicast_peer {\n    192.0.2.9\n}"))
    (instance,) = config.instances
    assert instance.strict_mode and instance.unicast
    assert not built.problems and not diag.problems


def test_numeric_scopes_must_be_0_to_255():
    # The keepalived.conf builder refuses such a scope; a YAML file reaches the model
    # without it, so validation checks it too.
    def vip(scope, origin):
        return VirtualAddress(address=ip_interface("192.0.2.1/24"), scope=scope, origin=origin)

    def route(scope, origin):
        return Route(destination=ip_network("198.51.100.0/24"), scope=scope, origin=origin)

    diag = validate(VrrpConfig(
        instances=(vrrp_instance(
            virtual_ipaddresses=(vip(300, "y.yaml:9:5"), vip(255, "y.yaml:10:5")),
            virtual_ipaddresses_excluded=(vip(-1, "y.yaml:12:5"),),
            virtual_routes=(route(256, "y.yaml:14:5"), route(0, "y.yaml:15:5"),
                            route(Scope.LINK, "y.yaml:16:5"))),),
        static_addresses=(vip(1000, "y.yaml:20:3"), vip(Scope.HOST, "y.yaml:21:3")),
        static_routes=(route(-5, "y.yaml:23:3"), route(None, "y.yaml:24:3"))))
    assert errors(diag) == [
        ("y.yaml:9:5", "(Y) virtual_ipaddress 192.0.2.1/24: scope 300 is out of range (0-255)"),
        ("y.yaml:12:5", "(Y) virtual_ipaddress_excluded 192.0.2.1/24: scope -1 is out of "
                        "range (0-255)"),
        ("y.yaml:14:5", "(Y) virtual_routes 198.51.100.0/24: scope 256 is out of range "
                        "(0-255)"),
        ("y.yaml:20:3", "static_ipaddress 192.0.2.1/24: scope 1000 is out of range (0-255)"),
        ("y.yaml:23:3", "static_routes 198.51.100.0/24: scope -5 is out of range (0-255)")]


def test_first_ipv6_vip_should_be_link_local():
    text = inst("A", 1, vips="2001:db8::1/64")
    _, _, diag = check(text)
    assert warnings(diag) == [(where(text, "2001:db8::1/64"), "(A) the first IPv6 "
                               "virtual_ipaddress should be link local (RFC 5798)")]


def test_instance_without_interface_or_peers():
    diag = validate(VrrpConfig(instances=(vrrp_instance(interface=None),)))
    assert errors(diag) == [("y.yaml:1:1", "(Y) no interface: an instance needs one unless "
                                           "it has unicast peers")]


def test_ipv4_ipvlan_needs_an_address():
    text = inst("A", 1, body="use_ipvlan ipv0")
    _, _, diag = check(text)
    assert errors(diag) == [(where(text, "use_ipvlan"), "(A) an IPv4 ipvlan needs an address "
                                                        "(use_ipvlan NAME ADDRESS)")]


def test_two_instances_with_one_vmac_name():
    text = inst("A", 1, body="use_vmac vm1") + inst("B", 2, vips="192.0.2.2/24",
                                                    body="use_vmac vm1")
    _, _, diag = check(text)
    assert errors(diag) == [(where(text, "vm1", 1), "(B) interface vm1 is already the "
                                                    "VMAC/ipvlan of A")]


def test_duplicate_names():
    text = inst("A", 1) + inst("A", 2, vips="192.0.2.2/24")
    _, _, diag = check(text)
    assert errors(diag) == [(f"{FILE}:8:1", f"vrrp_instance A is already defined at "
                                            f"{FILE}:1:1")]


# ----------------------------------------------------------------- tracking


def test_unknown_tracked_names_are_flagged_where_used():
    text = inst("A", 1, body="""
        track_script {
            nosuch_script
        }
        track_file {
            nosuch_file
        }
        track_process {
            nosuch_process
        }
    """)
    _, _, diag = check(text)
    assert warnings(diag) == [
        (where(text, "nosuch_script"), "(A) track_script nosuch_script is not defined; "
                                       "ignored"),
        (where(text, "nosuch_file"), "(A) track_file nosuch_file is not defined; ignored"),
        (where(text, "nosuch_process"), "(A) track_process nosuch_process is not defined; "
                                        "ignored"),
    ]
    assert not diag.errors


def sync_text(option: str = "") -> str:
    return dedent(f"""
        vrrp_script chk {{
            script /bin/true
            weight 10
        }}
        vrrp_sync_group G {{
            group {{
                A
                B
            }}
            {option}
        }}
    """) + "\n" + inst("A", 1, body="track_script {\n    chk\n}") + \
        inst("B", 2, vips="192.0.2.2/24")


def test_weights_of_sync_group_members_are_ignored():
    text = sync_text()
    config, _, diag = check(text)
    assert warnings(diag) == [(where(text, "chk", 1),
                               "(A) the weight of track_script chk is ignored: the instance "
                               "is in sync group G (see sync_group_tracking_weight)")]
    tracked = config.instance("A").track_scripts[0]
    assert config.tracked_weight(tracked, "A") == (0, False)
    assert not check(sync_text("sync_group_tracking_weight"))[2].warnings


# ----------------------------------------------------------------- sync groups


SYNC = """
    vrrp_sync_group G1 {
        group {
            A
            B
            NOPE
        }
    }
    vrrp_sync_group G2 {
        group {
            A
            C
        }
    }
"""


def test_sync_group_members():
    text = SYNC + inst("A", 1) + inst("B", 2, vips="192.0.2.2/24") + \
        inst("C", 3, vips="192.0.2.3/24")
    _, _, diag = check(text)
    assert warnings(diag) == [(where(text, "group {", 0), "sync group G1: vrrp_instance NOPE "
                                                          "does not exist; ignored")]
    assert errors(diag) == [(where(text, "group {", 1), "sync group G2: vrrp_instance A is "
                                                      "already in sync group G1; an instance "
                                                      "can be in only one")]


def test_sync_group_of_one_instance():
    group = SyncGroup(name="G", group=("Y",), origin="y.yaml:2:1")
    diag = validate(VrrpConfig(instances=(vrrp_instance(),), sync_groups=(group,)))
    assert warnings(diag) == [("y.yaml:2:1", "sync group G has only one instance: it "
                                             "synchronises nothing")]


# ----------------------------------------------------------------- static track groups


def test_track_groups():
    text = """
        track_group TG {
            group {
                A
                GHOST
            }
        }
        static_ipaddress {
            192.0.2.200/24 dev eth0 track_group TG
            192.0.2.201/24 dev eth0 track_group NOPE
        }
    """ + inst("A", 1)
    _, _, diag = check(text)
    assert warnings(diag) == [
        (where(text, "track_group TG"), "track_group TG: vrrp_instance GHOST does not "
                                        "exist; ignored"),
        (where(text, "192.0.2.201/24"), "track_group NOPE is not defined; not tracked"),
    ]


def test_family_field_of_instances_is_used_for_checks():
    # an IPv6 instance whose group is IPv4 (a YAML mistake)
    diag = validate(VrrpConfig(instances=(vrrp_instance(
        family=AddressFamily.INET6, version=3,
        virtual_ipaddresses=(VirtualAddress(address=ip_interface("fe80::1/64")),),
        mcast_dst_ip=IPv4Address("224.0.0.18")),)))
    assert [m for _, m in errors(diag)] == [
        "(Y) mcast_dst_ip 224.0.0.18 is not inet6 like the instance"]
