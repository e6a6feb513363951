"""VRRP statements of keepalived.conf -> `vrrp.spec` objects."""

from __future__ import annotations

import gzip
import re
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_interface, ip_network
from pathlib import Path

import pytest
from config_helpers import FILE, dedent, errors, warnings, where

from director.config.build_vrrp import (
    TOP_LEVEL_VRRP_KEYWORDS,
    VRRP_GLOBAL_KEYWORDS,
    VRRP_SHARED_GLOBAL_KEYWORDS,
    build_garp_group,
    build_instance,
    build_static_addresses,
    build_static_routes,
    build_static_rules,
    build_sync_group,
    build_track_file,
    build_track_group,
    build_track_process,
    build_vrrp_config,
    build_vrrp_globals,
    build_vrrp_script,
    resolve_instance,
)
from director.config.errors import Diagnostics
from director.config.reader import read_text
from director.config.validate_vrrp import validate_vrrp
from vrrp.spec import (
    PREFERRED_LFT_FOREVER,
    AddressFamily,
    AuthType,
    InstanceState,
    IpvlanMode,
    NextHop,
    NotifyFifo,
    NotifyScript,
    OldUnicastChecksum,
    ParamMatch,
    RouteMetric,
    RouteType,
    RuleAction,
    RxBufsPolicy,
    Scope,
    TrackedFile,
    TrackedInterface,
    TrackedProcess,
    TrackedScript,
    UnicastPeer,
    VrrpConfig,
    VrrpGlobals,
    VrrpInstance,
    origin_of,
)

SAMPLES = Path("/usr/share/doc/keepalived/samples")
MAN_PAGE = Path("/usr/share/man/man5/keepalived.conf.5.gz")


def read(text: str) -> tuple[list, Diagnostics]:
    diag = Diagnostics()
    nodes = read_text(dedent(text), FILE, diag)
    assert not diag.problems, [str(p) for p in diag.problems]
    return nodes, diag


def clean(diag: Diagnostics) -> None:
    assert not diag.problems, [str(p) for p in diag.problems]


def globals_of(text: str) -> tuple[VrrpGlobals, Diagnostics]:
    nodes, diag = read(f"global_defs {{\n{dedent(text)}\n}}")
    return build_vrrp_globals(nodes[0].children, diag), diag


def one(builder, text: str, *extra):
    nodes, diag = read(text)
    assert len(nodes) == 1
    return builder(nodes[0], diag, *extra), diag


def instance(body: str, globals: VrrpGlobals | None = None, vips: bool = True
             ) -> tuple[VrrpInstance | None, Diagnostics]:
    """An instance on eth0, VRID 51, with one IPv4 VIP unless the body has VIPs."""
    text = instance_text(body, vips)
    return one(build_instance, text, globals or VrrpGlobals())


def instance_text(body: str, vips: bool = True) -> str:
    lines = ["vrrp_instance VI_1 {"]
    body = dedent(body)
    if not re.search(r"^\s*interface\s", body, re.M):
        lines.append("    interface eth0")
    if "virtual_router_id" not in body:
        lines.append("    virtual_router_id 51")
    lines += ["    " + line for line in body.splitlines()]
    if vips and "virtual_ipaddress {" not in body:
        lines += ["    virtual_ipaddress {", "        192.0.2.10/24", "    }"]
    lines.append("}")
    return "\n".join(lines)


def ok_instance(body: str, globals: VrrpGlobals | None = None, vips: bool = True
                ) -> VrrpInstance:
    built, diag = instance(body, globals, vips)
    clean(diag)
    assert built is not None
    return built


# ======================================================================= global_defs


def test_globals_defaults_are_keepalived_s():
    built = build_vrrp_globals([], Diagnostics())
    assert built == VrrpGlobals()
    assert built.vrrp_mcast_group4 == IPv4Address("224.0.0.18")
    assert built.vrrp_mcast_group6 == IPv6Address("ff02::12")
    assert built.vrrp_version == 2
    assert (built.vrrp_garp_master_delay, built.vrrp_garp_master_repeat) == (5.0, 5)
    assert (built.vrrp_garp_master_refresh, built.vrrp_garp_master_refresh_repeat) == (0.0, 1)
    assert (built.vrrp_garp_lower_prio_delay, built.vrrp_garp_lower_prio_repeat) == (5.0, 5)
    assert built.vrrp_down_timer_adverts == 3
    assert built.vrrp_rx_bufs_multiplier == 3
    assert built.vmac_prefix == "vrrp"
    assert built.default_interface == "eth0"
    assert not built.vrrp_strict and not built.vrrp_skip_check_adv_addr


GLOBALS_TEXT = """\
    vrrp_mcast_group4 224.0.0.19
    vrrp_mcast_group6 ff02::13
    vrrp_version 3
    vrrp_garp_master_delay 10
    vrrp_garp_master_repeat 2
    vrrp_garp_master_refresh 60
    vrrp_garp_master_refresh_repeat 3
    vrrp_garp_lower_prio_delay 7
    vrrp_garp_lower_prio_repeat 4
    vrrp_garp_interval 0.001
    vrrp_gna_interval 0.000002
    vrrp_garp_extra_if all 100
    vrrp_down_timer_adverts 5
    vrrp_lower_prio_no_advert
    vrrp_higher_prio_send_advert on
    vrrp_iptables in_chain out_chain
    vrrp_ipsets set4
    nftables ka_table
    nftables_priority -5
    nftables_counters
    nftables_ifindex
    disable_local_igmp
    vrrp_check_unicast_src
    vrrp_skip_check_adv_addr
    vrrp_strict
    vrrp_startup_delay 5.5
    log_unknown_vrids
    vmac_prefix vm
    vmac_addr_prefix va
    vrrp_priority -10
    vrrp_no_swap
    vrrp_rt_priority 50
    vrrp_cpu_affinity 0 1
    vrrp_rlimit_rttime 20000
    vrrp_netlink_cmd_rcv_bufs 1000
    vrrp_netlink_cmd_rcv_bufs_force
    vrrp_netlink_monitor_rcv_bufs 2000
    vrrp_netlink_monitor_rcv_bufs_force yes
    process_monitor_rcv_bufs 3000
    process_monitor_rcv_bufs_force
    vrrp_rx_bufs_policy MTU
    vrrp_rx_bufs_multiplier 4
    notify_fifo /run/all.fifo root root
    notify_fifo_script "/usr/bin/all arg"
    vrrp_notify_fifo /run/vrrp.fifo
    vrrp_notify_fifo_script /usr/bin/vrrp-fifo nobody
    vrrp_notify_priority_changes
    fifo_write_vrrp_states_on_reload
    smtp_alert off
    smtp_alert_vrrp on
    script_user ka ka_group
    enable_script_security
    dynamic_interfaces allow_if_changes
    default_interface eth9
    router_id ignored_here
"""


def test_every_global_keyword_is_read():
    built, diag = globals_of(GLOBALS_TEXT)
    clean(diag)
    assert built.vrrp_mcast_group4 == IPv4Address("224.0.0.19")
    assert built.vrrp_mcast_group6 == IPv6Address("ff02::13")
    assert built.vrrp_version == 3
    assert built.vrrp_garp_master_delay == 10.0
    assert built.vrrp_garp_master_repeat == 2
    assert built.vrrp_garp_master_refresh == 60.0
    assert built.vrrp_garp_master_refresh_repeat == 3
    assert built.vrrp_garp_lower_prio_delay == 7.0
    assert built.vrrp_garp_lower_prio_repeat == 4
    assert built.vrrp_garp_interval == pytest.approx(0.001)
    assert built.vrrp_gna_interval == pytest.approx(0.000002)
    assert (built.vrrp_garp_extra_if, built.vrrp_garp_extra_if_all) == (100.0, True)
    assert built.vrrp_down_timer_adverts == 5
    assert built.vrrp_lower_prio_no_advert and built.vrrp_higher_prio_send_advert
    assert (built.vrrp_iptables_inchain, built.vrrp_iptables_outchain) == ("in_chain",
                                                                            "out_chain")
    assert built.vrrp_ipsets == ("set4", "set46", "set4_if6", "set4_igmp", "set4_mld")
    assert (built.nftables, built.nftables_priority) == ("ka_table", -5)
    assert built.nftables_counters and built.nftables_ifindex and built.disable_local_igmp
    assert built.vrrp_check_unicast_src and built.vrrp_skip_check_adv_addr
    assert built.vrrp_strict
    assert built.vrrp_startup_delay == 5.5
    assert built.log_unknown_vrids
    assert (built.vmac_prefix, built.vmac_addr_prefix) == ("vm", "va")
    assert (built.vrrp_priority, built.vrrp_no_swap, built.vrrp_rt_priority) == (-10, True, 50)
    assert built.vrrp_cpu_affinity == (0, 1)
    assert built.vrrp_rlimit_rttime == pytest.approx(0.02)
    assert (built.vrrp_netlink_cmd_rcv_bufs, built.vrrp_netlink_cmd_rcv_bufs_force) == (1000,
                                                                                      True)
    assert built.vrrp_netlink_monitor_rcv_bufs == 2000
    assert built.vrrp_netlink_monitor_rcv_bufs_force
    assert (built.process_monitor_rcv_bufs, built.process_monitor_rcv_bufs_force) == (3000,
                                                                                    True)
    assert built.vrrp_rx_bufs_policy is RxBufsPolicy.MTU
    assert built.vrrp_rx_bufs_multiplier == 4
    assert built.notify_fifo == NotifyFifo(path="/run/all.fifo", user="root", group="root")
    assert built.notify_fifo_script == NotifyScript(command=("/usr/bin/all", "arg"))
    assert built.vrrp_notify_fifo == NotifyFifo(path="/run/vrrp.fifo")
    assert built.vrrp_notify_fifo_script == NotifyScript(command=("/usr/bin/vrrp-fifo",),
                                                         user="nobody")
    assert built.vrrp_notify_priority_changes and built.fifo_write_vrrp_states_on_reload
    assert (built.smtp_alert, built.smtp_alert_vrrp) == (False, True)
    assert built.effective_smtp_alert is True
    assert (built.script_user, built.script_group) == ("ka", "ka_group")
    assert built.enable_script_security
    assert built.dynamic_interfaces and built.dynamic_interfaces_allow_if_changes
    assert built.default_interface == "eth9"


def test_global_value_origin_is_the_value():
    text = f"global_defs {{\n{dedent(GLOBALS_TEXT)}\n}}"
    built, _ = globals_of(GLOBALS_TEXT)
    line = text.splitlines().index("vrrp_version 3") + 1
    assert origin_of(built, "vrrp_version") == f"{FILE}:{line}:14"


def test_global_keyword_sets_are_disjoint_and_cover_the_man_page():
    assert not VRRP_GLOBAL_KEYWORDS & VRRP_SHARED_GLOBAL_KEYWORDS
    if not MAN_PAGE.exists():
        pytest.skip("keepalived.conf(5) is not installed")
    text = gzip.decompress(MAN_PAGE.read_bytes()).decode("utf-8", "replace")
    text = re.sub(r"\\f[BIRP]", "", text)  # troff font changes
    section = text[text.index("global_defs {"):text.index(".SH Linkbeat interfaces")]
    documented = set(re.findall(r"^\s+(vrrp_\w+)", section, re.M))
    documented -= {"vrrp_process_name"}  # a process setting of the daemon
    assert len(documented) > 30
    assert documented <= VRRP_GLOBAL_KEYWORDS | VRRP_SHARED_GLOBAL_KEYWORDS


def man_page_block(start: str, end: str) -> set[str]:
    """The words that start lines of a block's syntax in keepalived.conf(5)."""
    if not MAN_PAGE.exists():
        pytest.skip("keepalived.conf(5) is not installed")
    text = gzip.decompress(MAN_PAGE.read_bytes()).decode("utf-8", "replace")
    text = re.sub(r"\\f[BIRP]", "", text)
    section = text[text.index(start):text.index(end)]
    return set(re.findall(r"^\s+([a-z][a-z0-9_]+)", section, re.M))


def test_every_documented_instance_keyword_is_known():
    documented = man_page_block("vrrp_instance <STRING> {", ".SH Interface up/down")
    inner = {"auth_type", "auth_pass", "eth0", "eth1", "eth2", "from", "to", "src",
             "blackhole", "be"}  # lines inside blocks, and prose
    assert len(documented) > 60
    # Read through the builder: a known keyword yields no "unknown keyword" warning.
    for keyword in sorted(documented - inner):
        _, diag = instance(keyword)
        assert not [m for _, m in warnings(diag) if "unknown keyword" in m], keyword


def test_every_documented_sync_group_keyword_is_known():
    documented = man_page_block("vrrp_sync_group <STRING> {", ".SH VRRP gratuitous")
    # keepalived 2.2.7 does not know the documented notify_deleted in a sync group
    documented -= {"eth0", "eth1", "eth2", "notify_deleted"}
    assert len(documented) > 12
    for keyword in sorted(documented):
        _, diag = one(build_sync_group, f"vrrp_sync_group G {{\n group {{\n A\n }}\n"
                                        f" {keyword}\n}}")
        assert not [m for _, m in warnings(diag) if "unknown keyword" in m], keyword


def test_lower_priority_garp_follows_master_garp():
    built, diag = globals_of("""
        vrrp_garp_master_delay 3
        vrrp_garp_master_repeat 2
    """)
    clean(diag)
    assert (built.vrrp_garp_lower_prio_delay, built.vrrp_garp_lower_prio_repeat) == (3.0, 2)


def test_min_garp_sends_one_burst_unless_told_otherwise():
    built, diag = globals_of("vrrp_min_garp")
    clean(diag)
    assert built.vrrp_garp_master_repeat == 1
    assert built.vrrp_garp_master_delay == 0.0
    assert built.vrrp_garp_lower_prio_repeat == 1
    built, _ = globals_of("""
        vrrp_min_garp true
        vrrp_garp_master_repeat 3
    """)
    assert built.vrrp_garp_master_repeat == 3
    built, _ = globals_of("vrrp_min_garp off")
    assert built.vrrp_garp_master_repeat == 5


def test_firewall_defaults():
    built, diag = globals_of("""
        vrrp_iptables
        nftables
    """)
    clean(diag)
    assert (built.vrrp_iptables_inchain, built.vrrp_iptables_outchain) == ("INPUT", "OUTPUT")
    assert built.nftables == "keepalived" and built.nftables_priority == -1


def test_rx_bufs_size_policy():
    built, diag = globals_of("vrrp_rx_bufs_policy 65536")
    clean(diag)
    assert (built.vrrp_rx_bufs_policy, built.vrrp_rx_bufs_size) == (RxBufsPolicy.SIZE, 65536)


def test_shared_keywords_are_read_without_reporting():
    # The global_defs builder reports on these; reporting twice would be noise.
    built, diag = globals_of("""
        vrrp_priority 40
        script_user
        router_id r1
    """)
    clean(diag)
    assert built.vrrp_priority == 0 and built.script_user is None


def test_deprecated_vmac_garp_intvl():
    text = "vrrp_vmac_garp_intvl 30"
    built, diag = globals_of(text)
    assert built.vrrp_garp_extra_if == 30.0
    assert [m for _, m in warnings(diag)] == [
        "'vrrp_vmac_garp_intvl' is deprecated; use 'vrrp_garp_extra_if'"]


@pytest.mark.parametrize(("line", "needle", "message"), [
    ("vrrp_version 4", "4", "vrrp_version 4 is out of range (2-3)"),
    ("vrrp_mcast_group4 10.0.0.1", "10.0.0.1",
     "vrrp_mcast_group4 10.0.0.1 is not a multicast address"),
    ("vrrp_mcast_group4 ff02::12", "ff02::12", "vrrp_mcast_group4 must be an IPv4 address"),
    ("vrrp_garp_interval 0", "0", "vrrp_garp_interval 0 is out of range (1e-06-4294)"),
    ("vrrp_garp_master_delay 1.5", "1.5", "vrrp_garp_master_delay '1.5' is not a whole number"),
    ("vrrp_down_timer_adverts 101", "101", "vrrp_down_timer_adverts 101 is out of range (1-100)"),
    ("vrrp_strict maybe", "maybe", "'vrrp_strict' expects on/off, true/false or yes/no, "
                                   "not 'maybe'"),
])
def test_bad_global_values_are_errors_at_the_value(line, needle, message):
    built, diag = globals_of(line)
    text = f"global_defs {{\n{line}\n}}"
    assert errors(diag) == [(where(text, needle, text.count(needle) - 1), message)]
    assert built == VrrpGlobals()


def test_garp_master_repeat_zero_is_one():
    built, diag = globals_of("vrrp_garp_master_repeat 0")
    assert built.vrrp_garp_master_repeat == 1
    assert [m for _, m in warnings(diag)] == [
        "vrrp_garp_master_repeat must be greater than 0; using 1"]


# ======================================================================= vrrp_script


def test_vrrp_script_every_option():
    text = """
        vrrp_script chk {
            script "/usr/bin/check --port 80"
            interval 2
            timeout 3
            weight -20 reverse
            rise 4
            fall 5
            user nobody nogroup
            init_fail
        }
    """
    built, diag = one(build_vrrp_script, text)
    clean(diag)
    assert built.name == "chk"
    assert built.script == ("/usr/bin/check", "--port", "80")
    assert (built.interval, built.timeout) == (2.0, 3.0)
    assert (built.weight, built.weight_reverse) == (-20, True)
    assert (built.rise, built.fall) == (4, 5)
    assert (built.user, built.group) == ("nobody", "nogroup")
    assert built.init_fail
    assert built.origin == f"{FILE}:1:1"


def test_vrrp_script_defaults_and_timeout_follows_interval():
    built, diag = one(build_vrrp_script, """
        vrrp_script chk {
            script /bin/true
            interval 7
        }
    """)
    clean(diag)
    assert (built.interval, built.timeout) == (7.0, 7.0)
    assert (built.weight, built.weight_reverse, built.rise, built.fall) == (0, False, 1, 1)
    assert built.user is None and not built.init_fail
    built, _ = one(build_vrrp_script, "vrrp_script s {\n script /bin/true\n}")
    assert (built.interval, built.timeout) == (1.0, 1.0)


def test_vrrp_script_command_split_like_keepalived():
    built, diag = one(build_vrrp_script, """
        vrrp_script chk {
            script "bash -c '</dev/tcp/127.0.0.1/80'"
        }
    """)
    clean(diag)
    assert built.script == ("bash", "-c", "</dev/tcp/127.0.0.1/80")
    built, _ = one(build_vrrp_script, "vrrp_script s {\n script killall -0 sshd\n}")
    assert built.script == ("killall", "-0", "sshd")


def test_vrrp_script_without_script_is_dropped_with_a_warning():
    built, diag = one(build_vrrp_script, "vrrp_script s {\n interval 2\n}")
    assert built is None
    assert warnings(diag) == [(f"{FILE}:1:1", "vrrp_script s has no 'script'; ignored")]


def test_vrrp_script_bad_values():
    text = """
        vrrp_script s {
            script /bin/true
            interval 1.5
            weight 254
            rise 0
        }
    """
    built, diag = one(build_vrrp_script, text)
    assert errors(diag) == [
        (where(text, "1.5"), "vrrp_script interval '1.5' is not a whole number"),
        (where(text, "254"), "weight 254 is out of range (-253-253)"),
        (where(text, "0"), "rise 0 is out of range (1-2147483647)"),
    ]
    assert built is not None and built.interval == 1.0


def test_vrrp_script_needs_a_name():
    built, diag = one(build_vrrp_script, "vrrp_script {\n script /bin/true\n}")
    assert built is None
    assert errors(diag) == [(f"{FILE}:1:1", "vrrp_script must have exactly one name")]


# ======================================================================= track_file, process


def test_track_file_every_option():
    built, diag = one(build_track_file, """
        track_file f1 {
            file "/run/prio"
            weight -3 reverse
            init_file 7 overwrite
        }
    """)
    clean(diag)
    assert (built.name, built.file) == ("f1", "/run/prio")
    assert (built.weight, built.weight_reverse) == (-3, True)
    assert (built.init_file, built.init_value, built.init_overwrite) == (True, 7, True)


def test_track_file_defaults_and_old_name():
    text = "vrrp_track_file f {\n file /run/x\n init_file\n}"
    built, diag = one(build_track_file, text)
    assert (built.weight, built.weight_reverse) == (1, False)
    assert (built.init_file, built.init_value, built.init_overwrite) == (True, 0, False)
    assert warnings(diag) == [(f"{FILE}:1:1",
                               "'vrrp_track_file' is deprecated; use 'track_file'")]


def test_track_file_weight_range_is_254():
    text = "track_file f {\n file /run/x\n weight 300\n}"
    _, diag = one(build_track_file, text)
    assert errors(diag) == [(where(text, "300"), "weight 300 is out of range (-254-254)")]


def test_track_process_every_option():
    built, diag = one(build_track_process, """
        vrrp_track_process nginx {
            process nginx "-g" "daemon off;"
            param_match partial
            weight 10 reverse
            quorum 2
            quorum_max 4
            fork_delay 0.5
            terminate_delay 1.5
        }
    """)
    clean(diag)
    assert (built.process, built.parameters) == ("nginx", ("-g", "daemon off;"))
    assert built.param_match is ParamMatch.PARTIAL and built.full_command
    assert (built.weight, built.weight_reverse) == (10, True)
    assert (built.quorum, built.quorum_max) == (2, 4)
    assert (built.fork_delay, built.terminate_delay) == (0.5, 1.5)


def test_track_process_defaults_and_shortcuts():
    built, diag = one(build_track_process, "vrrp_track_process p {\n process haproxy\n}")
    clean(diag)
    assert built.param_match is None and not built.full_command
    assert (built.weight, built.quorum, built.quorum_max) == (0, 1, None)
    built, _ = one(build_track_process,
                   "vrrp_track_process p {\n process a b\n delay 2\n}")
    assert built.param_match is ParamMatch.EXACT and built.full_command
    assert (built.fork_delay, built.terminate_delay) == (2.0, 2.0)
    built, _ = one(build_track_process, "vrrp_track_process p {\n process a\n quorum_max 0\n}")
    assert (built.quorum, built.quorum_max) == (0, 0)


def test_track_process_quorum_max_below_quorum():
    text = "vrrp_track_process p {\n process a\n quorum 3\n quorum_max 2\n}"
    built, diag = one(build_track_process, text)
    assert built is None
    assert errors(diag) == [(where(text, "2"), "quorum_max 2 is less than quorum 3")]


# ======================================================================= sync groups


SYNC_GROUP = """
    vrrp_sync_group G1 {
        group {
            VI_1
            VI_2
        }
        track_interface {
            eth1
            eth2 weight 10 reverse
        }
        track_script {
            chk
            chk2 weight -5 noreverse
        }
        track_file {
            f1 weight 3
        }
        track_process {
            p1
        }
        track_bfd {
            b1 weight 2
        }
        notify_master "/usr/bin/notify master" root
        notify_backup /usr/bin/backup
        notify_fault /usr/bin/fault
        notify_stop /usr/bin/stop
        notify /usr/bin/any
        smtp_alert
        sync_group_tracking_weight
        notify_priority_changes on
    }
"""


def test_sync_group_every_option():
    built, diag = one(build_sync_group, SYNC_GROUP)
    clean(diag)
    assert built.name == "G1" and built.group == ("VI_1", "VI_2")
    assert built.track_interfaces == (TrackedInterface(name="eth1"),
                                      TrackedInterface(name="eth2", weight=10, reverse=True))
    assert built.track_scripts == (TrackedScript(name="chk"),
                                   TrackedScript(name="chk2", weight=-5, reverse=False))
    assert built.track_files == (TrackedFile(name="f1", weight=3),)
    assert built.track_processes == (TrackedProcess(name="p1"),)
    assert built.track_bfds[0].name == "b1" and built.track_bfds[0].weight == 2
    assert built.notify_master == NotifyScript(command=("/usr/bin/notify", "master"),
                                               user="root")
    assert built.notify_backup.command == ("/usr/bin/backup",)
    assert built.notify_fault.command == ("/usr/bin/fault",)
    assert built.notify_stop.command == ("/usr/bin/stop",)
    assert built.notify.command == ("/usr/bin/any",)
    assert built.smtp_alert and built.sync_group_tracking_weight
    assert built.notify_priority_changes


def test_sync_group_inherits_alerts_from_globals():
    text = "vrrp_sync_group G {\n group {\n VI_1\n }\n}"
    built, _ = one(build_sync_group, text)
    assert not built.smtp_alert and not built.notify_priority_changes
    globals = VrrpGlobals(smtp_alert=True, vrrp_notify_priority_changes=True)
    built, _ = one(build_sync_group, text, globals)
    assert built.smtp_alert and built.notify_priority_changes


def test_sync_group_global_tracking_is_deprecated():
    text = "vrrp_sync_group G {\n group {\n VI_1\n }\n global_tracking\n}"
    built, diag = one(build_sync_group, text)
    assert built.sync_group_tracking_weight
    assert warnings(diag) == [(where(text, "global_tracking"),
                               "'global_tracking' is deprecated; use track_interface/"
                               "track_script/track_file on the sync group")]


def test_sync_group_old_member_syntax_is_flagged_and_empty_group_dropped():
    text = "vrrp_sync_group VG1 {\n  VI_2\n  VI_3\n}"
    built, diag = one(build_sync_group, text)
    assert built is None
    assert warnings(diag) == [
        (where(text, "VI_2"), "unknown keyword 'VI_2' in vrrp_sync_group VG1 (instance "
                              "names go in a 'group { }' block); ignored"),
        (where(text, "VI_3"), "unknown keyword 'VI_3' in vrrp_sync_group VG1 (instance "
                              "names go in a 'group { }' block); ignored"),
        (f"{FILE}:1:1", "sync group VG1 has no members; ignored"),
    ]


def test_sync_group_second_notify_is_an_error():
    text = ("vrrp_sync_group G {\n group {\n VI_1\n }\n notify_master /a\n"
            " notify_master /b\n}")
    built, diag = one(build_sync_group, text)
    assert built.notify_master.command == ("/a",)
    assert errors(diag) == [(where(text, "notify_master", 1),
                             f"'notify_master' already set at {where(text, '/a')}; "
                             "this one is ignored")]


# ======================================================================= instances: defaults


def test_instance_defaults_are_keepalived_s():
    built = ok_instance("")
    assert built.name == "VI_1" and built.interface == "eth0"
    assert built.virtual_router_id == 51
    assert built.state is InstanceState.BACKUP
    assert built.priority == 100
    assert built.advert_int == 1.0
    assert built.version == 2
    assert built.family is AddressFamily.INET
    assert built.mcast_dst_ip == IPv4Address("224.0.0.18")
    assert not built.nopreempt and built.preempt_delay == 0.0
    assert built.accept and not built.strict_mode
    assert (built.garp_master_delay, built.garp_master_repeat) == (5.0, 5)
    assert (built.garp_master_refresh, built.garp_master_refresh_repeat) == (0.0, 1)
    assert (built.garp_lower_prio_delay, built.garp_lower_prio_repeat) == (5.0, 5)
    assert built.down_timer_adverts == 3
    assert not built.lower_prio_no_advert and not built.higher_prio_send_advert
    assert not built.smtp_alert and not built.check_unicast_src
    assert built.authentication is None
    assert built.virtual_ipaddresses[0].address == ip_interface("192.0.2.10/24")
    assert built.origin == f"{FILE}:1:1"


def test_state_master_without_priority_is_the_address_owner():
    # keepalived derives priority 255 from "state MASTER" when no priority is given
    built = ok_instance("state MASTER")
    assert (built.state, built.priority) == (InstanceState.MASTER, 255)
    assert built.address_owner


def test_priority_255_without_state_is_master():
    built = ok_instance("priority 255")
    assert built.state is InstanceState.MASTER


def test_instance_inherits_from_globals():
    globals, diag = globals_of("""
        vrrp_version 3
        vrrp_garp_master_delay 9
        vrrp_garp_master_repeat 3
        vrrp_garp_master_refresh 30
        vrrp_garp_master_refresh_repeat 2
        vrrp_garp_lower_prio_delay 4
        vrrp_garp_lower_prio_repeat 6
        vrrp_garp_extra_if 50
        vrrp_down_timer_adverts 4
        vrrp_lower_prio_no_advert
        vrrp_higher_prio_send_advert
        vrrp_skip_check_adv_addr
        vrrp_check_unicast_src
        vrrp_notify_priority_changes
        vrrp_mcast_group4 224.0.0.20
        smtp_alert_vrrp on
    """)
    clean(diag)
    built = ok_instance("", globals)
    assert built.version == 3
    assert (built.garp_master_delay, built.garp_master_repeat) == (9.0, 3)
    assert (built.garp_master_refresh, built.garp_master_refresh_repeat) == (30.0, 2)
    assert (built.garp_lower_prio_delay, built.garp_lower_prio_repeat) == (4.0, 6)
    assert built.garp_extra_if == 50.0
    assert built.down_timer_adverts == 4
    assert built.lower_prio_no_advert and built.higher_prio_send_advert
    assert built.skip_check_adv_addr and built.check_unicast_src
    assert built.notify_priority_changes and built.smtp_alert
    assert built.mcast_dst_ip == IPv4Address("224.0.0.20")


def test_instance_settings_beat_globals():
    globals = VrrpGlobals(vrrp_version=3, vrrp_garp_master_delay=9.0,
                          vrrp_skip_check_adv_addr=True, smtp_alert=True)
    built = ok_instance("""
        version 2
        garp_master_delay 2
        skip_check_adv_addr off
        smtp_alert false
    """, globals)
    assert built.version == 2 and built.garp_master_delay == 2.0
    assert not built.skip_check_adv_addr and not built.smtp_alert


def test_ipv6_instance_uses_version_3_and_the_ipv6_group():
    built = ok_instance("""
        virtual_ipaddress {
            fe80::10
            2001:db8::10/64
        }
    """, VrrpGlobals(vrrp_mcast_group6=IPv6Address("ff02::99")))
    assert built.family is AddressFamily.INET6
    assert built.version == 3
    assert built.mcast_dst_ip == IPv6Address("ff02::99")


def test_strict_mode_from_globals_and_what_it_implies():
    built = ok_instance("", VrrpGlobals(vrrp_strict=True))
    assert built.strict_mode
    assert not built.accept
    assert built.lower_prio_no_advert and not built.higher_prio_send_advert
    assert (built.garp_lower_prio_delay, built.garp_lower_prio_repeat) == (0.0, 0)
    built = ok_instance("strict_mode off", VrrpGlobals(vrrp_strict=True))
    assert not built.strict_mode and built.accept


# ======================================================================= instances: options


FULL_INSTANCE = """
    state BACKUP
    interface eth1
    use_vmac vrrp51 02:00:5e:00:09
    vmac_xmit_base
    use_vmac_addr
    dont_track_primary
    track_interface {
        eth2
        eth3 weight -10
    }
    track_script {
        chk
        chk2 weight 20 reverse
    }
    track_file {
        f1 weight 5 noreverse
    }
    track_process {
        p1 weight -7
    }
    track_bfd {
        bfd1
    }
    unicast_src_ip 192.0.2.2
    track_src_ip
    unicast_peer {
        192.0.2.3
        192.0.2.4 min_ttl 2 max_ttl 64
    }
    unicast_ttl 10
    unicast_fault_no_peer
    old_unicast_checksum never
    virtual_router_id 77
    priority 150
    advert_int 2
    version 2
    nopreempt
    authentication {
        auth_type PASS
        auth_pass secret
    }
    virtual_ipaddress {
        192.0.2.100/24 dev eth1 label eth1:vip
    }
    virtual_ipaddress_excluded {
        2001:db8::100/64
    }
    virtual_routes {
        198.51.100.0/24 via 192.0.2.254
    }
    virtual_rules {
        from 198.51.100.0/24 table 100 preference 10
    }
    no_accept
    skip_check_adv_addr
    debug 2
    notify_master "/usr/bin/to master" root wheel
    notify_backup /usr/bin/to_backup
    notify_fault /usr/bin/to_fault
    notify_stop /usr/bin/on_stop
    notify_deleted /usr/bin/on_delete
    notify /usr/bin/any_state
    notify_master_rx_lower_pri /usr/bin/lower
    notify_priority_changes
    smtp_alert
    garp_master_delay 1
    garp_master_repeat 2
    garp_master_refresh 30
    garp_master_refresh_repeat 3
    garp_lower_prio_delay 4
    garp_lower_prio_repeat 5
    garp_extra_if all 60
    down_timer_adverts 6
    lower_prio_no_advert
    higher_prio_send_advert yes
    kernel_rx_buf_size 65536
"""


def test_every_instance_option_is_read():
    built = ok_instance(FULL_INSTANCE)
    assert built.interface == "eth1" and built.state is InstanceState.BACKUP
    assert built.use_vmac and built.vmac_interface == "vrrp51"
    assert built.vmac_address == "02:00:5e:00:09" and built.vmac_xmit_base
    assert built.use_vmac_addr and built.dont_track_primary
    assert built.track_interfaces == (TrackedInterface(name="eth2"),
                                      TrackedInterface(name="eth3", weight=-10))
    assert built.track_scripts == (TrackedScript(name="chk"),
                                   TrackedScript(name="chk2", weight=20, reverse=True))
    assert built.track_files == (TrackedFile(name="f1", weight=5, reverse=False),)
    assert built.track_processes == (TrackedProcess(name="p1", weight=-7),)
    assert [b.name for b in built.track_bfds] == ["bfd1"]
    assert built.unicast_src_ip == IPv4Address("192.0.2.2") and built.track_src_ip
    assert built.unicast_peers == (
        UnicastPeer(address=IPv4Address("192.0.2.3")),
        UnicastPeer(address=IPv4Address("192.0.2.4"), min_ttl=2, max_ttl=64))
    assert built.check_unicast_src  # min_ttl/max_ttl turn it on
    assert built.unicast_ttl == 10 and built.unicast_fault_no_peer
    assert built.old_unicast_checksum is OldUnicastChecksum.NEVER
    assert (built.virtual_router_id, built.priority, built.advert_int) == (77, 150, 2.0)
    assert built.version == 2 and built.nopreempt
    assert built.authentication.auth_type is AuthType.PASS
    assert built.authentication.auth_pass == "secret"
    vip = built.virtual_ipaddresses[0]
    assert (vip.address, vip.dev, vip.label) == (ip_interface("192.0.2.100/24"), "eth1",
                                                 "eth1:vip")
    assert built.virtual_ipaddresses_excluded[0].address == ip_interface("2001:db8::100/64")
    assert built.virtual_routes[0].destination == ip_network("198.51.100.0/24")
    assert built.virtual_routes[0].via == IPv4Address("192.0.2.254")
    assert built.virtual_rules[0].source == ip_network("198.51.100.0/24")
    assert built.virtual_rules[0].table == 100 and built.virtual_rules[0].preference == 10
    assert not built.accept and built.skip_check_adv_addr and built.debug == 2
    assert built.notify_master == NotifyScript(command=("/usr/bin/to", "master"),
                                               user="root", group="wheel")
    assert built.notify_backup.command == ("/usr/bin/to_backup",)
    assert built.notify_fault.command == ("/usr/bin/to_fault",)
    assert built.notify_stop.command == ("/usr/bin/on_stop",)
    assert built.notify_deleted and built.notify_deleted_script.command == (
        "/usr/bin/on_delete",)
    assert built.notify.command == ("/usr/bin/any_state",)
    assert built.notify_master_rx_lower_pri.command == ("/usr/bin/lower",)
    assert built.notify_priority_changes and built.smtp_alert
    assert (built.garp_master_delay, built.garp_master_repeat) == (1.0, 2)
    assert (built.garp_master_refresh, built.garp_master_refresh_repeat) == (30.0, 3)
    assert (built.garp_lower_prio_delay, built.garp_lower_prio_repeat) == (4.0, 5)
    assert (built.garp_extra_if, built.garp_extra_if_all) == (60.0, True)
    assert built.down_timer_adverts == 6
    assert built.lower_prio_no_advert and built.higher_prio_send_advert
    assert built.kernel_rx_buf_size == 65536


def test_field_origins_point_at_values():
    text = instance_text("priority 150\nadvert_int 3")
    built, diag = one(build_instance, text, VrrpGlobals())
    clean(diag)
    assert origin_of(built, "priority") == where(text, "150")
    assert origin_of(built, "advert_int") == where(text, "3", text.count("3") - 1)
    assert origin_of(built, "virtual_router_id") == where(text, "51")


def test_ipvlan_and_vrf():
    built = ok_instance("""
        use_ipvlan ipvl0 192.0.2.50/24 private
        vrf blue
    """)
    assert built.use_ipvlan and built.ipvlan_interface == "ipvl0"
    assert built.ipvlan_address == ip_interface("192.0.2.50/24")
    assert built.ipvlan_mode is IpvlanMode.PRIVATE and built.vrf == "blue"


def test_mcast_dst_ip_sets_the_group():
    built = ok_instance("mcast_dst_ip 224.0.0.77")
    assert built.mcast_dst_ip == IPv4Address("224.0.0.77")


def test_interface_may_be_omitted_with_unicast_peers():
    text = """
        virtual_router_id 5
        unicast_peer {
            192.0.2.3
        }
    """
    built, diag = one(build_instance, "vrrp_instance U {\n" + dedent(text) +
                      "\n virtual_ipaddress {\n 192.0.2.9 dev eth0\n }\n}", VrrpGlobals())
    clean(diag)
    assert built.interface is None and built.unicast


# ======================================================================= aliases


def test_mcast_src_ip_is_unicast_src_ip():
    built = ok_instance("mcast_src_ip 192.0.2.5")
    assert built.unicast_src_ip == IPv4Address("192.0.2.5")
    peers = "unicast_peer {\n 192.0.2.6\n}\n"
    assert ok_instance(peers + "mcast_src_ip 192.0.2.5") == \
        ok_instance(peers + "unicast_src_ip 192.0.2.5")


def test_promote_secondaries():
    assert ok_instance("promote_secondaries").promote_secondaries
    built, diag = instance("promote_secondaries\nuse_vmac")
    assert not built.promote_secondaries
    assert "set automatically on a VMAC" in warnings(diag)[0][1]


def test_preempt_is_the_default():
    built = ok_instance("nopreempt\npreempt")
    assert not built.nopreempt


def test_vmac_garp_intvl_is_garp_extra_if():
    built, diag = instance("vmac_garp_intvl 40")
    assert built.garp_extra_if == 40.0
    assert [m for _, m in warnings(diag)] == [
        "'vmac_garp_intvl' is deprecated; use 'garp_extra_if'"]


def test_old_track_weight_254_is_clamped():
    text = instance_text("track_interface {\n    eth1 weight 254\n}\n"
                         "track_script {\n    chk weight -254\n}")
    built, diag = one(build_instance, text, VrrpGlobals())
    assert built.track_interfaces[0].weight == 253
    assert built.track_scripts[0].weight == -253
    assert warnings(diag) == [
        (where(text, "254"), "weight 254 is deprecated: the limit is +/-253; using 253"),
        (where(text, "-254"), "weight -254 is deprecated: the limit is +/-253; using -253"),
    ]


def test_native_ipv6_lvs_sync_daemon_interface_and_linkbeat_are_deprecated():
    text = instance_text("""
        native_ipv6
        lvs_sync_daemon_interface eth1
        linkbeat_use_polling
        virtual_ipaddress {
            fe80::1
        }
    """)
    built, diag = one(build_instance, text, VrrpGlobals())
    assert built.native_ipv6 and built.family is AddressFamily.INET6 and built.version == 3
    assert built.lvs_sync_daemon_interface == "eth1" and built.linkbeat_use_polling
    assert [o for o, _ in warnings(diag)] == [where(text, "native_ipv6"),
                                             where(text, "lvs_sync"),
                                             where(text, "linkbeat")]
    assert not diag.errors


# ======================================================================= keepalived's adjustments


def test_nopreempt_with_state_master_is_cleared():
    text = instance_text("state MASTER\npriority 100\nnopreempt")
    built, diag = one(build_instance, text, VrrpGlobals())
    assert not built.nopreempt
    assert warnings(diag) == [(where(text, "nopreempt"), "(VI_1) nopreempt does not work with "
                                                         "initial state MASTER; cleared")]


def test_nopreempt_with_the_address_owner_is_cleared():
    built, diag = instance("priority 255\nnopreempt")
    assert not built.nopreempt
    assert "nopreempt does not apply to priority 255" in warnings(diag)[0][1]


def test_preempt_delay_with_nopreempt_is_cleared():
    built, diag = instance("nopreempt\npreempt_delay 5")
    assert built.nopreempt and built.preempt_delay == 0.0
    assert len(warnings(diag)) == 1


def test_vrrpv2_fractional_advert_int_is_rounded():
    text = instance_text("advert_int 1.5")
    built, diag = one(build_instance, text, VrrpGlobals())
    assert built.advert_int == 2.0
    assert warnings(diag) == [(where(text, "1.5"), "(VI_1) a VRRPv2 advert_int must be "
                                                   "whole seconds; 1.5 rounded to 2")]
    built, _ = instance("advert_int 0.4")
    assert built.advert_int == 1.0


def test_vrrpv3_advert_int_is_clamped_and_rounded():
    built, diag = instance("version 3\nadvert_int 50")
    assert built.advert_int == 40.95
    assert "must be below 40.96s" in warnings(diag)[0][1]
    built, diag = instance("version 3\nadvert_int 0.015")
    assert built.advert_int == pytest.approx(0.02)
    built = ok_instance("version 3\nadvert_int 0.05")
    assert built.advert_int == pytest.approx(0.05)


def test_authentication_is_ignored_with_version_3():
    text = instance_text("version 3\nauthentication {\n auth_type PASS\n auth_pass abc\n}")
    built, diag = one(build_instance, text, VrrpGlobals())
    assert built.authentication is None
    assert warnings(diag) == [(where(text, "authentication"),
                               "(VI_1) VRRP version 3 does not support authentication; "
                               "authentication ignored")]


def test_auth_pass_is_cut_to_8_characters():
    text = instance_text("authentication {\n auth_type AH\n auth_pass 123456789\n}")
    built, diag = one(build_instance, text, VrrpGlobals())
    assert built.authentication.auth_type is AuthType.AH
    assert built.authentication.auth_pass == "12345678"
    assert warnings(diag) == [(where(text, "123456789"),
                               "auth_pass is cut to its first 8 characters")]


def test_strict_mode_adjustments():
    text = instance_text("""
        strict_mode
        state MASTER
        priority 100
        preempt_delay 3
        authentication {
            auth_type PASS
            auth_pass x
        }
        accept
        garp_lower_prio_repeat 3
    """)
    built, diag = one(build_instance, text, VrrpGlobals())
    assert built.state is InstanceState.BACKUP  # MASTER only for the address owner
    assert built.preempt_delay == 0.0 and built.authentication is None
    assert not built.accept and built.garp_lower_prio_repeat == 0
    assert len(warnings(diag)) == 5 and not diag.errors


def test_unicast_ttl_without_peers_is_dropped():
    built, diag = instance("unicast_ttl 5")
    assert built.unicast_ttl is None
    assert "unicast_ttl without unicast peers" in warnings(diag)[0][1]


def test_unicast_keyword_without_peers_is_flagged():
    built, diag = instance("check_unicast_src")
    assert built.check_unicast_src and not built.unicast
    assert "a unicast keyword is given without unicast peers" in warnings(diag)[0][1]


def test_unicast_with_vmac_needs_xmit_base():
    built, diag = instance("use_vmac\nunicast_peer {\n 192.0.2.3\n}")
    assert built.vmac_xmit_base
    assert "needs vmac_xmit_base" in warnings(diag)[0][1]


def test_vmac_xmit_base_without_vmac_is_cleared():
    built, diag = instance("vmac_xmit_base")
    assert not built.vmac_xmit_base and len(warnings(diag)) == 1


def test_own_interface_is_not_tracked():
    built, diag = instance("track_interface {\n eth0\n eth1\n}")
    assert [t.name for t in built.track_interfaces] == ["eth1"]
    assert "is the instance's own interface" in warnings(diag)[0][1]


def test_ipv6_with_version_2_in_strict_mode_uses_version_3():
    built, _diag = instance("version 2\nstrict_mode\nvirtual_ipaddress {\n fe80::1\n}")
    assert built.version == 3
    built = ok_instance("version 2\nvirtual_ipaddress {\n fe80::1\n}")
    assert built.version == 2  # keepalived keeps it outside strict mode


# ======================================================================= instance errors


@pytest.mark.parametrize(("body", "needle", "message"), [
    ("priority 0", "priority 0", "priority 0 is out of range (1-255)"),
    ("priority 256", "priority 256", "priority 256 is out of range (1-255)"),
    ("advert_int abc", "advert_int abc", "advert_int 'abc' is not a number"),
    ("advert_int 0.005", "advert_int 0.005", "advert_int 0.005 is out of range (0.01-255.0)"),
    ("state master", "state master", "unknown state 'master' (expected one of: MASTER, "
                                     "BACKUP)"),
    ("version 4", "version 4", "version 4 is out of range (2-3)"),
    ("debug 5", "debug 5", "debug 5 is out of range (0-4)"),
    ("preempt_delay 2000", "preempt_delay 2000", "preempt_delay 2000 is out of range (0-1000)"),
    ("garp_master_repeat x", "garp_master_repeat x",
     "garp_master_repeat 'x' is not a whole number"),
    ("unicast_peer {\n 192.0.2.3 min_ttl 300\n}", "min_ttl 300",
     "min_ttl 300 is out of range (0-255)"),
    ("unicast_peer {\n 192.0.2.3 ttl 3\n}", "3 ttl",
     "unknown unicast_peer option 'ttl' (expected min_ttl or max_ttl)"),
    ("unicast_src_ip 192.0.2.300", "ip 192.0.2.300",
     "'192.0.2.300' is not a valid IP source address"),
    ("track_interface {\n eth1 weight x\n}", "weight x", "weight 'x' is not a whole number"),
    ("track_script {\n chk weight 1 sideways\n}", "1 sideways",
     "unknown weight option 'sideways' (expected reverse or noreverse)"),
    ("track_script {\n chk heavy\n}", "chk heavy",
     "unknown option 'heavy' of 'track_script' (expected 'weight')"),
    ("authentication {\n auth_type SHA\n}", "type SHA",
     "unknown auth_type 'SHA' (expected one of: PASS, AH)"),
    ("use_vmac 01:00:5e:00:00:01", "vmac 01:00:5e:00:00:01",
     "VMAC address 01:00:5e:00:00:01 is a multicast address"),
    ("notify_master \"/bin/x 'oops\"", "master \"/bin/x", "notify_master: missing closing '"),
])
def test_bad_instance_values_are_errors_at_the_value(body, needle, message):
    """``needle``: the text around the bad value, which is its last word."""
    text = instance_text(body)
    built, diag = one(build_instance, text, VrrpGlobals())
    start = where(text, needle)
    file, line, col = start.rsplit(":", 2)
    at = f"{file}:{line}:{int(col) + needle.rindex(' ') + 1}"
    assert errors(diag) == [(at, message)]
    assert built is not None  # the rest of the instance still loads


def test_vrid_out_of_range_leaves_the_instance_without_one():
    text = instance_text("virtual_router_id 300")
    built, diag = one(build_instance, text, VrrpGlobals())
    assert built is None
    # One error: its bad value, not a second "is not set" for the same line.
    assert errors(diag) == [
        (where(text, "300"), "virtual_router_id 300 is out of range (1-255)")]


def test_loopback_interface_is_refused():
    text = instance_text("interface lo")
    _, diag = one(build_instance, text, VrrpGlobals())
    assert (where(text, "lo", 0), "a loopback interface cannot be used for VRRP") in \
        errors(diag)


def test_instance_without_vrid_or_interface():
    text = "vrrp_instance X {\n virtual_ipaddress {\n 192.0.2.1\n }\n}"
    built, diag = one(build_instance, text, VrrpGlobals())
    assert built is None
    assert errors(diag) == [
        (f"{FILE}:1:1", "(X) virtual_router_id is not set"),
        (f"{FILE}:1:1", "(X) no interface: an instance needs one unless it has unicast "
                        "peers"),
    ]


def test_family_mismatch_is_an_error_at_the_address():
    text = instance_text("""
        unicast_peer {
            2001:db8::5
        }
    """)
    built, diag = one(build_instance, text, VrrpGlobals())
    assert built is None
    assert errors(diag) == [(where(text, "2001:db8::5"),
                             "(VI_1) 2001:db8::5 is not of the instance's family (inet): "
                             "every VIP, peer and source address must be")]


def test_vips_are_required_with_version_3():
    built, diag = instance("version 3", vips=False)
    assert built is None
    assert errors(diag) == [(f"{FILE}:1:1", "(VI_1) no virtual_ipaddress: at least one is "
                                            "required (VRRPv3, IPv6 or strict mode)")]
    built, diag = instance("", vips=False)
    assert built is not None and not diag.errors
    assert warnings(diag) == [(f"{FILE}:1:1",
                               "(VI_1) no virtual_ipaddress: at least one is sensible")]


def test_unknown_instance_keyword_is_a_warning_with_a_hint():
    text = instance_text("priorty 100")
    built, diag = one(build_instance, text, VrrpGlobals())
    assert built is not None
    assert warnings(diag) == [(where(text, "priorty"),
                               "unknown keyword 'priorty' in vrrp_instance VI_1 (did you mean "
                               "'priority'?); ignored")]


# ======================================================================= addresses


def vips(lines: str, static: bool = False):
    block = "static_ipaddress" if static else "virtual_ipaddress"
    text = instance_text(f"{block} {{\n{dedent(lines)}\n}}") if not static else \
        f"static_ipaddress {{\n{dedent(lines)}\n}}"
    nodes, diag = read(text)
    if static:
        return build_static_addresses(nodes[0], diag), diag, text
    built = build_instance(nodes[0], diag, VrrpGlobals())
    return (built.virtual_ipaddresses if built else ()), diag, text


def test_address_options():
    built, diag, _ = vips("""
        192.0.2.1/24 brd + dev eth1 scope link label eth1:a no_track
        192.0.2.2/24 broadcast - home -nodad mngtmpaddr noprefixroute autojoin use_vmac
        192.0.2.3 brd 192.0.2.255 peer 192.0.2.99/32 preferred_lft forever
        192.0.2.4 scope host preferred_lft 0
    """)
    clean(diag)
    a, b, c, d = built
    assert a.address == ip_interface("192.0.2.1/24")
    assert a.broadcast == IPv4Address("192.0.2.255")
    assert (a.dev, a.scope, a.label, a.no_track) == ("eth1", Scope.LINK, "eth1:a", True)
    assert b.broadcast == IPv4Address("192.0.2.0")
    assert b.home and b.nodad and b.mngtmpaddr and b.noprefixroute and b.autojoin
    assert b.use_vmac
    assert c.address == ip_interface("192.0.2.3/32") and c.scope is Scope.GLOBAL
    assert c.broadcast == IPv4Address("192.0.2.255")
    assert c.peer == ip_interface("192.0.2.99/32")
    assert c.preferred_lft == PREFERRED_LFT_FOREVER
    assert (d.scope, d.preferred_lft) == (Scope.HOST, 0)
    assert a.dev is not None and c.dev is None  # None: the instance's interface


def test_unknown_address_option_is_skipped_with_a_warning():
    built, diag, text = vips("192.0.2.1 nodad home")
    assert built[0].home and not built[0].nodad
    assert warnings(diag) == [(where(text, "nodad"), "unknown option 'nodad' of address "
                                                     "192.0.2.1/32 (did you mean '-nodad'?); "
                                                     "ignored")]


def test_track_group_is_for_static_addresses_only():
    built, diag, _ = vips("192.0.2.1 dev eth0 track_group G1", static=True)
    clean(diag)
    assert built[0].track_group == "G1" and built[0].dev == "eth0"
    built, diag, text = vips("192.0.2.1 track_group G1")
    assert built[0].track_group is None
    assert [o for o, _ in warnings(diag)] == [where(text, "track_group"),
                                             where(text, "G1", 0)]


@pytest.mark.parametrize(("line", "needle", "message"), [
    ("192.0.2.300/24", "192.0.2.300/24",
     "'192.0.2.300/24' is not a valid IP address (with optional /prefix)"),
    ("192.0.2.1 scope bogus", "bogus",
     "unknown scope 'bogus' (expected one of: global, site, link, host, nowhere)"),
    ("2001:db8::1 brd +", "+", "an IPv6 address (2001:db8::1/128) has no broadcast address"),
    ("192.0.2.1 dev", "dev", "'dev' needs a value"),
    ("192.0.2.1 preferred_lft soon", "soon", "preferred_lft 'soon' is not a whole number"),
])
def test_bad_address_values(line, needle, message):
    _, diag, text = vips(line, static=True)
    assert errors(diag) == [(where(text, needle), message)]


def test_vip_of_the_other_family_is_an_error():
    _built, diag, text = vips("192.0.2.1\n2001:db8::1")
    assert errors(diag) == [(where(text, "2001:db8::1"),
                             "(VI_1) 2001:db8::1/128 is not of the instance's family (inet): "
                             "every VIP, peer and source address must be")]


# ======================================================================= routes


def routes(lines: str):
    text = f"static_routes {{\n{dedent(lines)}\n}}"
    nodes, diag = read(text)
    return build_static_routes(nodes[0], diag), diag, text


def test_route_forms():
    built, diag, _text = routes("""
        src 192.168.100.1 192.168.109.0/24 via 192.168.200.254 dev eth1
        192.0.2.0/24 via 198.51.100.1 dev eth0 track_group G1 table 100 metric 5
        blackhole 192.0.2.128/25
        192.0.2.0/25 table main nexthop via 198.51.100.1 dev eth0 onlink weight 1 \
            nexthop via 198.51.100.2 weight 2
        2001:db8:1::/64 dev eth0 append pref high mtu lock 1400 features ecn congctl cubic
        src 192.0.2.1 to 203.0.113.0/26 dev eth0 scope link protocol bird tos 0x10 realms 3/4
        default via 198.51.100.9 no_track
        default via fe80::1 dev eth0 inet6
        203.0.113.0/24 via 198.51.100.1 encap mpls 100 dev eth0 vrf blue
    """)
    clean(diag)
    r = built
    assert r[0].source == IPv4Address("192.168.100.1")
    assert r[0].destination == ip_network("192.168.109.0/24")
    assert (r[0].via, r[0].dev) == (IPv4Address("192.168.200.254"), "eth1")
    assert (r[1].track_group, r[1].table, r[1].metric) == ("G1", 100, 5)
    assert (r[2].type, r[2].destination) == (RouteType.BLACKHOLE, ip_network("192.0.2.128/25"))
    assert r[3].table == 254 and r[3].via is None
    assert r[3].nexthops == (
        NextHop(via=IPv4Address("198.51.100.1"), dev="eth0", weight=1, onlink=True),
        NextHop(via=IPv4Address("198.51.100.2"), weight=2))
    assert r[4].family is AddressFamily.INET6 and r[4].append
    assert r[4].metrics == (RouteMetric(name="pref", value="high"),
                            RouteMetric(name="mtu", value="1400", lock=True),
                            RouteMetric(name="features", value="ecn"),
                            RouteMetric(name="congctl", value="cubic"))
    assert (r[5].scope, r[5].protocol, r[5].tos, r[5].realms) == (Scope.LINK, "bird", 16,
                                                                  "3/4")
    assert r[6].destination == ip_network("0.0.0.0/0") and r[6].no_track
    assert r[7].destination == ip_network("::/0")
    assert r[8].encap == ("mpls", "100") and (r[8].dev, r[8].vrf) == ("eth0", "blue")


def test_deprecated_route_spellings():
    built, diag, text = routes("""
        192.168.113.0/24 via 192.168.100.252 or 192.168.100.253
        0.0.0.0/0 gw 192.168.0.1 table 100
    """)
    assert built[0].via is None
    assert [h.via for h in built[0].nexthops] == [IPv4Address("192.168.100.252"),
                                                  IPv4Address("192.168.100.253")]
    assert built[1].via == IPv4Address("192.168.0.1")
    assert warnings(diag) == [(where(text, "or"), "'or' for routes is deprecated; use "
                                                  "'nexthop'"),
                              (where(text, "gw"), "'gw' for routes is deprecated; use 'via'")]


@pytest.mark.parametrize(("line", "needle", "message"), [
    ("192.0.2.0/24 bogus 3", "bogus", "unknown route option 'bogus'"),
    ("192.0.2.0/24 via 198.51.100.1 realms PQA/0x14", "PQA",
     "invalid realms 'PQA/0x14' (realm numbers or names from rt_realms, FROM/TO)"),
    ("192.0.2.0/24 table nosuch", "nosuch", "routing table 'nosuch' not found"),
    ("192.0.2.0/24 mtu big", "big", "mtu 'big' is not a whole number"),
    ("192.0.2.x/24 dev eth0", "192.0.2.x/24",
     "'192.0.2.x/24' is not a valid route destination (ADDRESS[/PREFIX])"),
    ("via 198.51.100.1 dev eth0", "via", "the route has no destination"),
    ("inet6 2001:db8::/64 dev eth0", "inet6",
     "'inet6' must end the line (keepalived takes the word after it, '2001:db8::/64', as "
     "its value)"),
    ("203.0.113.128/26 via inet6 fe80::1 dev eth0", "203",
     "cannot mix IPv4 and IPv6 addresses in a route (gateway fe80::1, destination "
     "203.0.113.128/26)"),
])
def test_bad_routes_are_errors(line, needle, message):
    built, diag, text = routes(line)
    assert built == ()
    assert errors(diag) == [(where(text, needle), message)]


@pytest.mark.parametrize(("line", "destination", "lost", "instead"), [
    ("default inet6 via 2001:db8::1 dev eth0 table 6", "2001:db8::1/128", "gateway",
     " (instead of a default route)"),
    ("2001:db8:5::/64 inet6 gw 2001:db8::7 dev eth0", "2001:db8::7/128", "gateway",
     " (instead of a route to 2001:db8:5::/64)"),
    ("inet6 src 2001:db8::9 dev eth0", "2001:db8::9/128", "source address", ""),
])
def test_a_keyword_after_inet6_is_dropped_as_keepalived_does(line, destination, lost, instead):
    # keepalived 2.2.7 takes the word after 'inet6' as its value: 'via ADDR' there
    # loads a route to ADDR with no gateway (measured: ip -6 route after it started).
    built, diag, text = routes(line)
    (route,) = built
    assert route.destination == ip_network(destination) and route.family is AddressFamily.INET6
    assert (route.via, route.source, route.dev) == (None, None, "eth0")
    dropped, address = line.split("inet6 ", 1)[1].split()[:2]
    assert not diag.errors
    assert warnings(diag) == [(where(text, "inet6"), (
        f"keepalived 2.2.7 takes '{dropped}' as the value of 'inet6' and drops it: it loads "
        f"a route to {destination} with no {lost}{instead}; put 'inet6' at the end of the "
        f"line for a route {dropped} {address}"))]


def test_a_dropped_keyword_keeps_the_checks_of_inet6():
    built, diag, text = routes("""
        192.0.2.0/24 inet6 via 2001:db8::1 dev eth0
        default inet6 via 192.0.2.1 dev eth0
        default inet6 via
    """)
    assert [str(r.destination) for r in built] == ["::/0"]
    assert errors(diag) == [
        (where(text, "inet6"), "'inet6' with the IPv4 destination 192.0.2.0/24"),
        (where(text, "inet6", 1), "'inet6' with the IPv4 destination 192.0.2.1/32")]
    assert warnings(diag) == [(where(text, "inet6", 2), "keepalived 2.2.7 takes 'via' as the "
                                                        "value of 'inet6' and drops it: the "
                                                        "route has no gateway")]


# ======================================================================= rules


def rules(lines: str):
    text = f"static_rules {{\n{dedent(lines)}\n}}"
    nodes, diag = read(text)
    return build_static_rules(nodes[0], diag), diag, text


def test_rule_forms():
    built, diag, _text = rules("""
        from 192.0.2.0/24 table 1 track_group G1 preference 10
        from 192.168.28.0/24 to 192.168.29.0/26 table 5 iif eth0 oif eth1 tos 22 \
            fwmark 24/12 priority 39 realms 30/20 goto 40
        to 2001:db8::/112 from 2001:db8:1::/96 table 6908 uidrange 10000-19999 preference 5
        not from 10.0.0.0/8 lookup main suppress_prefixlength 0 priority 100
        from all blackhole priority 101
        from all type unreachable priority 102
        to 2001:db8::/64 table 3 protocol 12 no_track ipproto UDP sport 10-20 dport 20-20 \
            priority 7
        l3mdev priority 9 inet6
        from all table 5 no_track suppress_ifgroup 3 priority 108
    """)
    clean(diag)
    r = built
    assert (r[0].source, r[0].table, r[0].track_group, r[0].preference) == (
        ip_network("192.0.2.0/24"), 1, "G1", 10)
    assert (r[1].destination, r[1].iif, r[1].oif, r[1].tos) == (ip_network("192.168.29.0/26"),
                                                                "eth0", "eth1", 22)
    assert (r[1].fwmark, r[1].fwmask, r[1].realms, r[1].goto) == (24, 12, "30/20", 40)
    assert r[1].action is RuleAction.GOTO
    assert r[2].family is AddressFamily.INET6 and r[2].uidrange == (10000, 19999)
    assert r[3].invert and r[3].table == 254 and r[3].suppress_prefixlength == 0
    assert r[4].action is RuleAction.BLACKHOLE and r[4].source is None
    assert r[5].action is RuleAction.UNREACHABLE
    assert (r[6].protocol, r[6].ip_proto, r[6].sport, r[6].dport) == ("12", "UDP", (10, 20),
                                                                      (20, 20))
    assert r[7].family is AddressFamily.INET6 and r[7].l3mdev
    assert r[8].no_track and r[8].suppress_ifgroup == "3"


def test_tracked_rule_protocol_must_be_keepalived_s():
    built, diag, text = rules("from all table 5 priority 1 protocol 12")
    assert built[0].protocol is None
    assert warnings(diag) == [(where(text, "protocol"), "a tracked rule must have protocol 18 "
                               "(keepalived); protocol ignored (or add no_track)")]


def test_rule_without_preference_is_flagged():
    built, diag, _text = rules("from 192.0.2.0/24 table 1")
    assert len(built) == 1
    assert warnings(diag) == [(f"{FILE}:2:1", "the rule has no preference; keepalived then "
                                              "picks one, probably not what you want")]


@pytest.mark.parametrize(("line", "needle", "message"), [
    ("to 192.168.100./24 table 1 priority 1", "192.168.100./24",
     "'192.168.100./24' is not a valid rule 'to' address (ADDRESS[/PREFIX])"),
    ("to 192.0.2.0/24 priority 4", "to", "the rule has no action: give a table, goto or type"),
    ("from all table 5 pref 3", "pref", "unknown rule option 'pref'"),
    ("inet6 from all table 5 priority 1", "inet6",
     "'inet6' must end the line (keepalived takes the word after it, 'from', as its value)"),
    ("from all table 5 priority 1 sport 10", "10",
     "sport needs a range FIRST-LAST, not '10'"),
    ("from all table 5 priority 1 ip_proto 17", "ip_proto",
     "unknown rule option 'ip_proto' (keepalived 2.2.7 spells it 'ipproto')"),
    ("from all table 5 priority 1 protocol keepalived", "keepalived",
     "rule protocol 'keepalived' is not a whole number"),
    ("from all table 5 l3mdev priority 1", "from", "l3mdev is the rule's action: it takes no "
                                                   "other"),
    ("from all type nat priority 1", "nat",
     "unknown rule action 'nat' (expected one of: blackhole, unreachable, prohibit, nop)"),
    ("from 192.0.2.0/24 to 2001:db8::/64 table 1 priority 1", "from",
     "cannot mix IPv4 and IPv6 addresses in a rule"),
])
def test_bad_rules_are_errors(line, needle, message):
    built, diag, text = rules(line)
    assert built == ()
    assert errors(diag) == [(where(text, needle), message)]


def test_virtual_rules_take_no_track_group():
    text = instance_text("virtual_rules {\n from all table 1 priority 1 track_group G\n}")
    built, diag = one(build_instance, text, VrrpGlobals())
    assert built.virtual_rules == ()
    assert errors(diag) == [(where(text, "track_group"),
                             "track_group applies to static rules only")]


# ======================================================================= track_group, garp_group


def test_track_group():
    built, diag = one(build_track_group, "track_group G1 {\n group {\n VI_1\n VI_2\n }\n}")
    clean(diag)
    assert (built.name, built.group) == ("G1", ("VI_1", "VI_2"))


def test_garp_group():
    built, diag = one(build_garp_group, """
        garp_group {
            garp_interval 0.002
            gna_interval 0.003
            interfaces {
                eth0
                eth1
            }
        }
    """)
    clean(diag)
    assert (built.garp_interval, built.gna_interval) == (0.002, 0.003)
    assert built.interfaces == ("eth0", "eth1") and built.interface is None
    built, diag = one(build_garp_group, "garp_group {\n interface eth0\n}")
    assert built is None and "sets no delay" in warnings(diag)[0][1]


# ======================================================================= the whole config


WHOLE = """
    vrrp_script chk {
        script /bin/true
        weight 5
    }
    track_file f1 {
        file /run/f1
    }
    vrrp_track_process p1 {
        process nginx
    }
    vrrp_sync_group G {
        group {
            VI_1
        }
    }
    vrrp_instance VI_1 {
        interface eth0
        virtual_router_id 1
        track_script {
            chk
        }
        virtual_ipaddress {
            192.0.2.1/24
        }
    }
    static_ipaddress {
        192.0.2.200/24 dev eth0
    }
    static_routes {
        198.51.100.0/24 via 192.0.2.254
    }
    static_rules {
        from 198.51.100.0/24 table 7 priority 70
    }
    track_group TG {
        group {
            VI_1
        }
    }
    garp_group {
        garp_interval 0.01
        interface eth0
    }
    virtual_server 192.0.2.1 80 {
    }
"""


def test_build_vrrp_config_collects_every_block():
    nodes, diag = read(WHOLE)
    globals = VrrpGlobals(vrrp_version=3)
    config = build_vrrp_config(nodes, diag, globals)
    clean(diag)
    assert config.globals is globals
    assert [s.name for s in config.scripts] == ["chk"]
    assert [f.name for f in config.track_files] == ["f1"]
    assert [p.name for p in config.track_processes] == ["p1"]
    assert [g.name for g in config.sync_groups] == ["G"]
    assert [i.name for i in config.instances] == ["VI_1"]
    assert config.instances[0].version == 3
    assert len(config.static_addresses) == len(config.static_routes) == 1
    assert len(config.static_rules) == 1
    assert [g.name for g in config.track_groups] == ["TG"]
    assert len(config.garp_groups) == 1
    assert set(TOP_LEVEL_VRRP_KEYWORDS) == {
        "vrrp_script", "track_file", "vrrp_track_file", "vrrp_track_process",
        "vrrp_sync_group", "vrrp_instance", "static_ipaddress", "static_routes",
        "static_rules", "track_group", "garp_group"}
    # a tracked script without its own weight takes the script's, except in a sync group
    tracked = config.instances[0].track_scripts[0]
    assert config.tracked_weight(tracked) == (5, False)
    assert config.tracked_weight(tracked, "VI_1") == (0, False)


# ======================================================================= Debian's samples


def build_file(path: Path, config_id: str | None = None) -> tuple[VrrpConfig, Diagnostics]:
    """The VRRP part of a keepalived.conf, built and validated."""
    diag = Diagnostics()
    nodes = read_text(path.read_text(errors="replace"), str(path), diag, config_id)
    lines = [c for n in nodes if n.keyword == "global_defs" for c in n.children or ()]
    globals = build_vrrp_globals(lines, diag)
    config = build_vrrp_config(nodes, diag, globals)
    validate_vrrp(config, diag)
    return config, diag


VRRP_SAMPLES = [*sorted(SAMPLES.glob("keepalived.conf.vrrp*")),
                SAMPLES / "keepalived.conf.sample", SAMPLES / "keepalived.conf.track_interface"]


@pytest.mark.skipif(not SAMPLES.exists(), reason="keepalived's samples are not installed")
@pytest.mark.parametrize("path", VRRP_SAMPLES, ids=lambda p: p.name)
def test_debian_samples_build_without_errors(path: Path):
    config, diag = build_file(path)
    problems = [(p.origin, p.message) for p in diag.errors]
    if path.name == "keepalived.conf.vrrp.rules":
        # keepalived rejects these two lines too ("Invalid rule to address")
        assert [(o.rsplit(":", 2)[1], m) for o, m in problems] == [
            ("11", "'192.168.100./24' is not a valid rule 'to' address (ADDRESS[/PREFIX])"),
            ("26", "'192.168.200./24' is not a valid rule 'to' address (ADDRESS[/PREFIX])")]
    else:
        assert not problems, [str(p) for p in diag.errors]
    assert config.instances or config.static_addresses


@pytest.mark.skipif(not SAMPLES.exists(), reason="keepalived's samples are not installed")
def test_sample_localcheck_in_detail():
    config, diag = build_file(SAMPLES / "keepalived.conf.vrrp.localcheck")
    assert not diag.problems, [str(p) for p in diag.problems]
    chk_sshd = config.script("chk_sshd")
    assert chk_sshd.script == ("killall", "-0", "sshd")
    assert (chk_sshd.interval, chk_sshd.weight, chk_sshd.fall, chk_sshd.rise) == (2.0, -4, 2, 2)
    vi_1 = config.instance("VI_1")
    assert vi_1.state is InstanceState.MASTER and vi_1.priority == 100
    assert vi_1.track_interfaces == (TrackedInterface(name="eth1", weight=2),
                                     TrackedInterface(name="eth2", weight=-2),
                                     TrackedInterface(name="eth3"))
    assert config.tracked_weight(vi_1.track_scripts[0]) == (-4, False)
    assert config.tracked_weight(vi_1.track_scripts[1]) == (2, False)
    assert len(config.instances) == 9


@pytest.mark.skipif(not SAMPLES.exists(), reason="keepalived's samples are not installed")
def test_sample_conditional_config_ids():
    high, diag = build_file(SAMPLES / "keepalived.conf.conditional_conf", "high")
    assert not diag.errors
    low, _ = build_file(SAMPLES / "keepalived.conf.conditional_conf", "low")
    assert high.instance("VI_0").priority == 170 and low.instance("VI_0").priority == 85
    assert high.script("check_VI_0").script == ("/etc/keepalived/scripts/check_high_VI_0.sh",)
    assert high.script("check_VI_0").timeout == 10.0


def test_unknown_address_in_a_sample_like_line_is_located():
    built, diag, _text = vips("192.168.200.18 label eth0:1")
    clean(diag)
    assert built[0].label == "eth0:1" and built[0].address.ip == ip_address("192.168.200.18")


def test_resolve_instance_for_other_front_ends():
    """Settings given as data resolve as keepalived.conf text does."""
    text = instance_text("state MASTER\nadvert_int 1.5")
    from_text = ok_instance_warned(text)
    settings = {"interface": "eth0", "virtual_router_id": 51, "state": InstanceState.MASTER,
                "advert_int": 1.5, "virtual_ipaddresses": from_text.virtual_ipaddresses}
    diag = Diagnostics()
    built = resolve_instance("VI_1", settings, diag, VrrpGlobals(), origin="y.yaml:3:1",
                             origins={"advert_int": "y.yaml:5:17"})
    assert built == from_text
    assert (built.priority, built.advert_int) == (255, 2.0)
    assert warnings(diag) == [("y.yaml:5:17", "(VI_1) a VRRPv2 advert_int must be whole "
                                              "seconds; 1.5 rounded to 2")]


def ok_instance_warned(text: str) -> VrrpInstance:
    built, diag = one(build_instance, text, VrrpGlobals())
    assert not diag.errors and built is not None
    return built


# ======================================================================= numeric scopes


def test_scopes_may_be_rt_scopes_numbers():
    """keepalived reads a scope as a name or a number 0-255: a number with a name is
    that name (200 site, 253 link, 254 host, 255 nowhere, 0 global), any other stays
    a number."""
    built, diag, _ = vips("""
        192.0.2.1/24 scope 200
        192.0.2.2/24 scope 253
        192.0.2.3/24 scope 254
        192.0.2.4/24 scope 255
        192.0.2.5/24 scope 0
        192.0.2.6/24 scope 17
        192.0.2.7/24 scope 0x11
        192.0.2.8/24 scope site
    """)
    clean(diag)
    assert [vip.scope for vip in built] == [Scope.SITE, Scope.LINK, Scope.HOST, Scope.NOWHERE,
                                            Scope.GLOBAL, 17, 17, Scope.SITE]
    built_routes, diag, _ = routes("""
        192.0.2.0/25 dev eth0 scope 253
        192.0.2.128/25 dev eth0 scope 42
    """)
    clean(diag)
    assert [route.scope for route in built_routes] == [Scope.LINK, 42]


@pytest.mark.parametrize(("line", "needle", "message"), [
    ("192.0.2.1 scope 256", "256", "scope 256 is out of range (0-255)"),
    ("192.0.2.1 scope 0x100", "0x100", "scope 0x100 is out of range (0-255)"),
    ("192.0.2.1 scope 2x", "2x", "scope '2x' is not a whole number"),
    ("192.0.2.1 scope universe", "universe",
     "unknown scope 'universe' (expected one of: global, site, link, host, nowhere)"),
])
def test_bad_scope_numbers(line, needle, message):
    _, diag, text = vips(line, static=True)
    assert errors(diag) == [(where(text, needle), message)]


def test_a_scope_has_one_form_in_the_model_whatever_its_source():
    from director.config.codec import from_data, to_data
    from vrrp.spec import Route, VirtualAddress, scope_number

    from_text, diag, _ = vips("192.0.2.1/24 scope 200\n192.0.2.2/24 scope 17")
    clean(diag)
    assert from_text[0] == VirtualAddress(address=ip_interface("192.0.2.1/24"), scope=200)
    assert from_text[0].scope is Scope.SITE
    assert [scope_number(vip.scope) for vip in from_text] == [200, 17]
    for value in (*from_text, Route(scope=253), Route(scope=42), Route()):
        data = to_data(value)
        diag = Diagnostics()
        assert from_data(type(value), data, diag) == value and diag.problems == []
    assert to_data(from_text[0])["scope"] == "site" and to_data(from_text[1])["scope"] == 17
    diag = Diagnostics()
    assert from_data(Route, {"scope": 254}, diag).scope is Scope.HOST
    assert from_data(Route, {"scope": "link"}, diag).scope is Scope.LINK
    assert diag.problems == []
