"""global_defs and the top-level daemon statements -> `GlobalDefs`."""

from __future__ import annotations

import textwrap
from ipaddress import IPv4Address

import pytest

from director.config.build_globals import GLOBAL_HANDLERS, build_global_defs
from director.config.build_vrrp import VRRP_GLOBAL_KEYWORDS, VRRP_SHARED_GLOBAL_KEYWORDS
from director.config.errors import Diagnostics, Severity
from director.config.keepalived import build_config
from director.config.model import (
    Config,
    Fifo,
    FlushOnStop,
    GlobalDefs,
    LvsSyncDaemon,
    LvsTimeouts,
    ProcessTuning,
    Script,
    SmtpServer,
    origin_of,
)
from director.config.reader import read_text

FILE = "g.conf"


def load(text: str) -> tuple[Config, Diagnostics]:
    diag = Diagnostics()
    nodes = read_text(textwrap.dedent(text).strip("\n") + "\n", FILE, diag)
    return build_config(nodes, diag), diag


def globals_ok(lines: str) -> GlobalDefs:
    """The global_defs block alone (no whole-config validation)."""
    diag = Diagnostics()
    (block,) = read_text(f"global_defs {{\n{lines}\n}}\n", FILE, diag)
    defs, _ = build_global_defs(block.children or [], diag, origin=block.origin)
    assert not diag.problems, [str(p) for p in diag.problems]
    return defs


def test_an_empty_block_gives_keepalived_defaults() -> None:
    defs = globals_ok("")
    assert defs == GlobalDefs()
    assert defs.router_id is None and defs.smtp_server is None
    assert defs.smtp_connect_timeout == 30.0
    assert defs.lvs_flush is False and defs.lvs_flush_on_stop is FlushOnStop.OFF
    assert defs.checker_process == ProcessTuning() and defs.max_auto_priority == 0
    assert defs.startup_script_timeout == 10.0 and defs.child_wait_time == 5.0
    assert defs.nftables_ipvs is None and defs.nftables_ipvs_start_fwmark == 1000


OPTIONS = [
    ("router_id LVS_A", "router_id", "LVS_A"),
    ("notification_email_from lvs@example.com", "notification_email_from",
     "lvs@example.com"),
    ("smtp_server 192.0.2.25", "smtp_server", SmtpServer(host="192.0.2.25")),
    ("smtp_server mail.example.com 587", "smtp_server",
     SmtpServer(host="mail.example.com", port=587)),
    ("smtp_helo_name director", "smtp_helo_name", "director"),
    ("smtp_connect_timeout 10", "smtp_connect_timeout", 10.0),
    ("smtp_alert", "smtp_alert", True),
    ("smtp_alert off", "smtp_alert", False),
    ("smtp_alert_checker no", "smtp_alert_checker", False),
    ("checker_log_all_failures", "checker_log_all_failures", True),
    ("no_email_faults", "no_email_faults", True),
    ("no_checker_emails", "no_checker_emails", True),
    ("rs_init_notifies", "rs_init_notifies", True),
    ("process_names", "process_names", True),
    ("process_name ka", "process_name", "ka"),
    ("vrrp_process_name ka_vrrp", "vrrp_process_name", "ka_vrrp"),
    ("checker_process_name ka_ipvs", "checker_process_name", "ka_ipvs"),
    ("lvs_process_name ka_ipvs", "checker_process_name", "ka_ipvs"),
    ("bfd_process_name ka_bfd", "bfd_process_name", "ka_bfd"),
    ("checker_priority -5", "checker_process", ProcessTuning(priority=-5)),
    ("checker_no_swap", "checker_process", ProcessTuning(no_swap=True)),
    ("checker_rt_priority 50", "checker_process", ProcessTuning(rt_priority=50)),
    ("checker_cpu_affinity 0 2", "checker_process", ProcessTuning(cpu_affinity=(0, 2))),
    ("checker_rlimit_rttime 5000", "checker_process", ProcessTuning(rlimit_rttime=0.005)),
    ("checker_rlimit_rtime 5000", "checker_process", ProcessTuning(rlimit_rttime=0.005)),
    # keepalived -t takes 1 (and uses its minimum, 2 usecs)
    ("bfd_rlimit_rttime 1", "bfd_process", ProcessTuning(rlimit_rttime=2e-6)),
    ("bfd_priority 3", "bfd_process", ProcessTuning(priority=3)),
    ("max_auto_priority", "max_auto_priority", 99),
    ("max_auto_priority -1", "max_auto_priority", -1),
    ("min_auto_priority_delay 500000", "min_auto_priority_delay", 0.5),
    ("startup_script /usr/local/bin/up root", "startup_script",
     Script(command="/usr/local/bin/up", user="root")),
    ("startup_script_timeout 20", "startup_script_timeout", 20.0),
    ('shutdown_script "/bin/down now" nobody nogroup', "shutdown_script",
     Script(command="/bin/down now", user="nobody", group="nogroup")),
    ("shutdown_script_timeout 1000", "shutdown_script_timeout", 1000.0),
    ("umask 0027", "umask", 0o027),
    ("umask 0x12", "umask", 0x12),
    ("umask 18", "umask", 18),
    ("umask IWGRP|IWOTH", "umask", 0o022),
    ("umask IWGRP | IWOTH | IXOTH", "umask", 0o023),
    ("random_seed 42", "random_seed", 42),
    ("script_user keepalived_script", "script_user", "keepalived_script"),
    ("enable_script_security", "enable_script_security", True),
    ("notify_fifo /run/ka.fifo root", "notify_fifo", Fifo(path="/run/ka.fifo", user="root")),
    ("notify_fifo_script /bin/fifo", "notify_fifo_script", Script(command="/bin/fifo")),
    ("lvs_notify_fifo /run/lvs.fifo", "lvs_notify_fifo", Fifo(path="/run/lvs.fifo")),
    ("lvs_notify_fifo_script /bin/lvs nobody", "lvs_notify_fifo_script",
     Script(command="/bin/lvs", user="nobody")),
    ("tmp_config_directory /var/tmp", "tmp_config_directory", "/var/tmp"),
    ("config_save_dir /var/lib/ka", "config_save_dir", "/var/lib/ka"),
    ("data_use_instance", "data_use_instance", True),
    ("reload_check_config", "reload_check_config", True),
    ("reload_check_config /var/log/check", "reload_check_config_log", "/var/log/check"),
    ("reload_time_file /run/ka.reload_at", "reload_time_file", "/run/ka.reload_at"),
    ("reload_repeat", "reload_repeat", True),
    ("reload_file", "reload_file", "keepalived.reload"),
    ("reload_file /run/ka.reload", "reload_file", "/run/ka.reload"),
    ("include_check", "include_check", ("all",)),
    ("include_check +match -readable", "include_check", ("+match", "-readable")),
    ("lvs_timeouts tcp 900 tcpfin 30 udp 60", "lvs_timeouts",
     LvsTimeouts(tcp=900.0, tcpfin=30.0, udp=60.0)),
    ("lvs_timeouts udp 5", "lvs_timeouts", LvsTimeouts(udp=5.0)),
    ("lvs_flush", "lvs_flush", True),
    ("lvs_flush_on_stop", "lvs_flush_on_stop", FlushOnStop.ALL),
    ("lvs_flush_on_stop VS", "lvs_flush_on_stop", FlushOnStop.VS),
    ("lvs_flush_onstop", "lvs_flush_on_stop", FlushOnStop.ALL),
    ("lvs_sync_daemon eth1", "lvs_sync_daemon", LvsSyncDaemon(interface="eth1")),
    ("lvs_sync_daemon eth1 VI_1 id 5 maxlen 1400 port 8849 ttl 2 group 224.0.0.82",
     "lvs_sync_daemon",
     LvsSyncDaemon(interface="eth1", vrrp_instance="VI_1", sync_id=5, maxlen=1400, port=8849,
                   ttl=2, group=IPv4Address("224.0.0.82"))),
    ("lvs_sync_daemon eth1 inst VI_1", "lvs_sync_daemon",
     LvsSyncDaemon(interface="eth1", vrrp_instance="VI_1")),
    ("lvs_netlink_cmd_rcv_bufs 1048576", "lvs_netlink_cmd_rcv_bufs", 1048576),
    ("lvs_netlink_cmd_rcv_bufs_force", "lvs_netlink_cmd_rcv_bufs_force", True),
    ("lvs_netlink_monitor_rcv_bufs 524288", "lvs_netlink_monitor_rcv_bufs", 524288),
    ("lvs_netlink_monitor_rcv_bufs_force on", "lvs_netlink_monitor_rcv_bufs_force", True),
    ("nftables_ipvs", "nftables_ipvs", "keepalived"),
    ("nftables_ipvs ipvs_table", "nftables_ipvs", "ipvs_table"),
    ("nftables_ipvs_priority -10", "nftables_ipvs_priority", -10),
    ("nftables_ipvs_start_fwmark 2000", "nftables_ipvs_start_fwmark", 2000),
    ("nftables_counters", "nftables_counters", True),
    ("snmp_socket udp:192.0.2.5:705", "snmp_socket", "udp:192.0.2.5:705"),
    ("enable_traps", "enable_traps", True),
    ("enable_snmp_vrrp", "enable_snmp_vrrp", True),
    ("enable_snmp_keepalived", "enable_snmp_vrrp", True),
    ("enable_snmp_checker", "enable_snmp_checker", True),
    ("enable_snmp_rfc", "enable_snmp_rfc", True),
    ("enable_snmp_rfcv2", "enable_snmp_rfcv2", True),
    ("enable_snmp_rfcv3", "enable_snmp_rfcv3", True),
    ("enable_dbus", "enable_dbus", True),
    ("dbus_service_name org.example.Vrrp", "dbus_service_name", "org.example.Vrrp"),
]


@pytest.mark.parametrize(("line", "name", "value"), OPTIONS, ids=[o[0] for o in OPTIONS])
def test_global_option(line: str, name: str, value: object) -> None:
    defs = globals_ok(line)
    assert getattr(defs, name) == value
    # and where it was written is kept for later messages
    assert origin_of(defs, name).startswith(f"{FILE}:2:")


def test_script_user_with_group() -> None:
    defs = globals_ok("script_user nobody nogroup")
    assert (defs.script_user, defs.script_group) == ("nobody", "nogroup")


def test_notification_email_block() -> None:
    defs = globals_ok("notification_email {\n  ops@example.com\n  noc@example.com\n}")
    assert defs.notification_email == ("ops@example.com", "noc@example.com")


def test_several_global_defs_blocks_merge_and_the_last_value_wins() -> None:
    config, diag = load("""
        global_defs {
            router_id first
            lvs_flush
        }
        global_defs {
            router_id second
        }
    """)
    assert not diag.problems
    assert (config.global_defs.router_id, config.global_defs.lvs_flush) == ("second", True)
    assert config.global_defs.origin == f"{FILE}:1:1"


def test_top_level_daemon_statements() -> None:
    config, diag = load("""
        net_namespace blue
        net_namespace_ipvs
        namespace_with_ipsets
        instance lb1
        use_pid_dir
        linkbeat_use_polling
        child_wait_time 12
        global_defs {
            router_id r
        }
    """)
    assert not diag.problems, [str(p) for p in diag.problems]
    defs = config.global_defs
    assert (defs.net_namespace, defs.net_namespace_ipvs, defs.instance) == ("blue", "", "lb1")
    assert defs.namespace_with_ipsets and defs.use_pid_dir and defs.linkbeat_use_polling
    assert defs.child_wait_time == 12.0 and defs.router_id == "r"


def test_vrrp_keywords_go_to_the_vrrp_globals() -> None:
    config, diag = load("""
        global_defs {
            vrrp_garp_master_delay 10
            lvs_flush
        }
    """)
    assert not diag.problems, [str(p) for p in diag.problems]
    assert config.vrrp.globals.vrrp_garp_master_delay == 10.0
    assert config.global_defs.lvs_flush is True


@pytest.mark.parametrize(("line", "needle", "message"), [
    ("smtp_server 192.0.2.1 0", "0", "port 0 is out of range (1-65535)"),
    ("smtp_connect_timeout 0", "0", "smtp_connect_timeout must be greater than 0"),
    ("umask 0999", "0999", "umask '0999' is not a number"),
    ("umask 01777", "01777", "umask 01777 is out of range (0-0777)"),
    ("umask IWFOO", "IWFOO", "unknown umask bit 'IWFOO' (expected numbers or "
                             "IRUSR|IWUSR|IXUSR|IRGRP|IWGRP|IXGRP|IROTH|IWOTH|IXOTH)"),
    ("lvs_timeouts tcp", "lvs_timeouts", "'lvs_timeouts' needs 2 arguments"),
    ("lvs_timeouts tcp x", "x", "tcp timeout 'x' is not a whole number"),
    ("lvs_timeouts sctp 5", "sctp",
     "unknown lvs_timeouts option 'sctp' (expected one of: tcp, tcpfin, udp)"),
    ("lvs_timeouts tcp 5 udp", "udp", "lvs_timeouts 'udp' needs a number of seconds"),
    ("lvs_sync_daemon eth1 id 300", "300", "sync id 300 is out of range (0-255)"),
    ("lvs_sync_daemon eth1 group 192.0.2.1", "192.0.2.1",
     "lvs_sync_daemon group 192.0.2.1 is not a multicast address"),
    ("lvs_sync_daemon eth1 VI_1 bogus 1", "bogus",
     "unknown lvs_sync_daemon option 'bogus' (expected one of: inst, id, maxlen, port, ttl, "
     "group)"),
    ("lvs_sync_daemon eth1 port", "port", "lvs_sync_daemon 'port' needs a value"),
    ("checker_priority 20", "20", "checker_priority 20 is out of range (-20-19)"),
    ("checker_rt_priority 0", "0", "checker_rt_priority 0 is out of range (1-99)"),
    ("checker_cpu_affinity 1 x", "x", "cpu 'x' is not a whole number"),
    ("checker_rlimit_rttime 0", "0", "checker_rlimit_rttime 0 is out of range "
                                     "(1-4294967295)"),
    ("max_auto_priority 100", "100", "max_auto_priority 100 is out of range (-1-99)"),
    ("startup_script_timeout 1001", "1001",
     "startup_script_timeout 1001 is out of range (0-1000)"),
    ("lvs_flush maybe", "maybe", "'lvs_flush' expects on/off, true/false or yes/no, not "
                                 "'maybe'"),
    ("router_id", "router_id", "'router_id' needs an argument"),
    ("router_id a b", "b", "'router_id' takes at most 1 argument(s), unexpected 'b'"),
    ("notification_email", "notification_email",
     "'notification_email' needs a { } block of addresses"),
])
def test_bad_values_are_errors_at_the_value(line: str, needle: str, message: str) -> None:
    config, diag = load(f"global_defs {{\n  lvs_flush\n  {line}\n}}\n")
    col = 3 + line.rindex(needle)
    assert [(p.origin, p.message) for p in diag.problems] == [(f"{FILE}:3:{col}", message)]
    assert diag.problems[0].severity is Severity.ERROR
    assert config.global_defs.lvs_flush is True  # the rest still loads


def test_unknown_keywords_are_warnings_with_a_hint() -> None:
    config, diag = load("global_defs {\n  router_idd r\n  lvs_flush\n}\n")
    assert [(p.origin, p.message, p.severity) for p in diag.problems] == [
        (f"{FILE}:2:3", "unknown keyword 'router_idd' in global_defs (did you mean "
                        "'router_id'?); ignored", Severity.WARNING)]
    assert config.global_defs.lvs_flush is True and not diag.failed


def test_a_block_where_none_belongs_is_a_warning() -> None:
    config, diag = load("global_defs {\n  lvs_flush {\n  }\n}\n")
    assert [(p.origin, p.message) for p in diag.problems] == [
        (f"{FILE}:2:3", "'lvs_flush' takes no block; the block is ignored")]
    assert config.global_defs.lvs_flush is True


def test_every_keyword_shared_with_the_vrrp_side_is_read_and_reported_here() -> None:
    # The VRRP builder reads these quietly: a bad value must be reported by this builder.
    assert GLOBAL_HANDLERS.keys() >= VRRP_SHARED_GLOBAL_KEYWORDS
    assert not VRRP_GLOBAL_KEYWORDS & GLOBAL_HANDLERS.keys()
    config, diag = load("global_defs {\n  vrrp_priority 42\n}\n")
    assert [(p.origin, p.message) for p in diag.problems] == [
        (f"{FILE}:2:17", "vrrp_priority 42 is out of range (-20-19)")]
    config, diag = load("global_defs {\n  vrrp_priority -5\n  script_user ka ka\n}\n")
    assert not diag.problems
    assert config.global_defs.vrrp_process == ProcessTuning(priority=-5)
    assert config.vrrp.globals.vrrp_priority == -5
    assert config.vrrp.globals.script_user == config.global_defs.script_user == "ka"
