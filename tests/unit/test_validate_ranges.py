"""A YAML config gets the value checks a keepalived.conf gets from its builders: each
constrained field, just outside its range, is an error at the value's line; just
inside, it loads. Configs built from keepalived.conf files never trip these checks."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path

import pytest

from checkers.spec import (
    FileCheck,
    HttpGetCheck,
    MiscCheck,
    SmtpHost,
    SslGetCheck,
    StatusRange,
    TcpCheck,
    UdpCheck,
    Url,
)
from director.config.errors import Diagnostics
from director.config.keepalived import build_config
from director.config.model import (
    AddressRange,
    GlobalDefs,
    GroupFwmark,
    InterfaceDelays,
    LvsMethod,
    LvsSyncDaemon,
    LvsTimeouts,
    ProcessTuning,
    RealServer,
    SmtpServer,
    SorryServer,
    VirtualServer,
)
from director.config.reader import read_file, read_text
from director.config.validate_ranges import CHECKED_ELSEWHERE, RANGES, Bound, validate_ranges
from director.config.yaml_config import dump_yaml, load_yaml
from vrrp.spec import (
    GarpGroup,
    NextHop,
    Route,
    Rule,
    TrackedBfd,
    TrackedFile,
    TrackedInterface,
    TrackedProcess,
    TrackedScript,
    TrackFile,
    TrackProcess,
    UnicastPeer,
    VirtualAddress,
    VrrpGlobals,
    VrrpInstance,
    VrrpScript,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted(Path("/usr/share/doc/keepalived/samples").glob("keepalived.conf.*"))
TEST_CONFIGS = sorted((REPO / "tests").rglob("*.conf")) + sorted((REPO / "conf").glob("*.conf"))

# Where a field is written: a YAML document with one "@" line, replaced by
# "FIELD: VALUE". A mapping whose class records no field_origins (checkers, tracked
# entries, ...) is located at its first key: the field is written first there.
_INSTANCE = """\
vrrp:
  instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 51
    virtual_ipaddresses:
    - address: 192.0.2.100/32
"""
_VS = """\
virtual_servers:
- address: 192.0.2.1
  port: 80
  protocol: TCP
"""
_RS = _VS + """\
  real_servers:
  - address: 192.0.2.10
    port: 80
"""
CONTEXTS: dict[str, str] = {
    "global_defs": "global_defs:\n  router_id: lb1\n  @\n",
    "smtp_server": "global_defs:\n  smtp_server:\n    @\n    host: 192.0.2.25\n",
    "vrrp_process": "global_defs:\n  vrrp_process:\n    @\n",
    "lvs_timeouts": "global_defs:\n  lvs_timeouts:\n    @\n",
    "lvs_sync_daemon": "global_defs:\n  lvs_sync_daemon:\n    @\n    interface: eth0\n",
    "interface_delays": "interface_up_down_delays:\n- @\n  interface: eth0\n",
    "vrrp_globals": "vrrp:\n  globals:\n    vrrp_strict: false\n    @\n",
    "script": "vrrp:\n  scripts:\n  - name: chk\n    script: [/bin/true]\n    @\n",
    "track_file": "vrrp:\n  track_files:\n  - name: tf\n    file: /run/tf\n    @\n",
    "track_process": "vrrp:\n  track_processes:\n  - name: tp\n    process: nginx\n    @\n",
    "instance": _INSTANCE + "    @\n",
    "track_interfaces": _INSTANCE + "    track_interfaces:\n    - @\n      name: eth1\n",
    "track_scripts": _INSTANCE + "    track_scripts:\n    - @\n      name: chk\n",
    "track_files": _INSTANCE + "    track_files:\n    - @\n      name: tf\n",
    "track_processes": _INSTANCE + "    track_processes:\n    - @\n      name: tp\n",
    "track_bfds": _INSTANCE + "    track_bfds:\n    - @\n      name: bfd1\n",
    "unicast_peers": _INSTANCE + "    unicast_peers:\n    - @\n      address: 192.0.2.2\n",
    "vip": _INSTANCE.replace("    - address: 192.0.2.100/32\n",
                             "    - @\n      address: 192.0.2.100/32\n"),
    "route": _INSTANCE + "    virtual_routes:\n    - @\n      destination: 198.51.100.0/24\n",
    "nexthop": _INSTANCE + ("    virtual_routes:\n    - destination: 198.51.100.0/24\n"
                            "      nexthops:\n      - @\n        via: 192.0.2.254\n"),
    "rule": _INSTANCE + "    virtual_rules:\n    - @\n      source: 192.0.2.0/24\n",
    "garp_group": "vrrp:\n  garp_groups:\n  - @\n    interface: eth0\n",
    "address_range": ("virtual_server_groups:\n- name: g\n  address_ranges:\n  - @\n"
                      "    first: 192.0.2.1\n    last: 192.0.2.1\n"),
    "group_fwmark": "virtual_server_groups:\n- name: g\n  fwmarks:\n  - @\n",
    "virtual_server": _RS.replace("  protocol: TCP\n", "  protocol: TCP\n  @\n"),
    "fwmark_service": ("virtual_servers:\n- @\n  real_servers:\n  - address: 192.0.2.10\n"
                       "    port: 80\n"),
    "lvs_method": _RS.replace("  protocol: TCP\n", "  protocol: TCP\n  lvs_method:\n    @\n"
                                                   "    forwarding: TUN\n"
                                                   "    tunnel_type: gue\n"),
    "sorry_server": _RS.replace("  protocol: TCP\n",
                                "  protocol: TCP\n  sorry_server:\n    @\n"
                                "    address: 192.0.2.99\n"),
    "real_server": _RS + "    @\n",
    "vs_port": _RS.replace("  port: 80\n", "  @\n", 1),
    "rs_port": _RS.replace("    port: 80\n", "    @\n"),
    "TCP_CHECK": _RS + "    checkers:\n    - @\n      kind: TCP_CHECK\n",
    "HTTP_GET": _RS + "    checkers:\n    - @\n      kind: HTTP_GET\n      urls: [{path: /}]\n",
    "SSL_GET": _RS + "    checkers:\n    - @\n      kind: SSL_GET\n      urls: [{path: /}]\n",
    "MISC_CHECK": (_RS + "    checkers:\n    - @\n      kind: MISC_CHECK\n"
                         "      misc_path: [/bin/true]\n"),
    "UDP_CHECK": _RS + "    checkers:\n    - @\n      kind: UDP_CHECK\n",
    "FILE_CHECK": _RS + "    checkers:\n    - @\n      kind: FILE_CHECK\n      track_file: tf\n",
    "smtp_host": (_RS + "    checkers:\n    - kind: SMTP_CHECK\n      hosts:\n      - @\n"
                        "        connect_ip: 192.0.2.10\n"),
    "url": (_RS + "    checkers:\n    - kind: HTTP_GET\n      urls:\n      - @\n"
                  "        path: /\n"),
    "status_code": (_RS + "    checkers:\n    - kind: HTTP_GET\n      urls:\n"
                          "      - status_code: [{@}]\n        path: /\n"),
}

# (model class, context, field, just outside, just inside): values as YAML text.
CASES: list[tuple[type, str, str, str, str]] = [
    (GlobalDefs, "global_defs", "smtp_connect_timeout", "0", "0.5"),
    (GlobalDefs, "global_defs", "max_auto_priority", "100", "99"),
    (GlobalDefs, "global_defs", "max_auto_priority", "-2", "-1"),
    (GlobalDefs, "global_defs", "min_auto_priority_delay", "10.5", "10"),
    (GlobalDefs, "global_defs", "child_wait_time", "0", "0.1"),
    (GlobalDefs, "global_defs", "startup_script_timeout", "1001", "1000"),
    (GlobalDefs, "global_defs", "shutdown_script_timeout", "0", "1"),
    (GlobalDefs, "global_defs", "umask", "512", "511"),
    (GlobalDefs, "global_defs", "random_seed", "-1", "0"),
    (GlobalDefs, "global_defs", "lvs_netlink_cmd_rcv_bufs", "0", "1"),
    (GlobalDefs, "global_defs", "lvs_netlink_monitor_rcv_bufs", "2147483648", "2147483647"),
    (GlobalDefs, "global_defs", "process_monitor_rcv_bufs", "0", "1"),
    (GlobalDefs, "global_defs", "nftables_ipvs_priority", "-2147483649", "-2147483648"),
    (GlobalDefs, "global_defs", "nftables_ipvs_start_fwmark", "0", "1"),
    (SmtpServer, "smtp_server", "port", "0", "1"),
    (ProcessTuning, "vrrp_process", "priority", "20", "19"),
    (ProcessTuning, "vrrp_process", "rt_priority", "0", "1"),
    (ProcessTuning, "vrrp_process", "cpu_affinity", "[0, 4096]", "[0, 4095]"),
    (ProcessTuning, "vrrp_process", "rlimit_rttime", "0", "0.000002"),
    (LvsTimeouts, "lvs_timeouts", "tcp", "0", "1"),
    (LvsTimeouts, "lvs_timeouts", "tcpfin", "31536001", "31536000"),
    (LvsTimeouts, "lvs_timeouts", "udp", "1.5", "2"),
    (LvsSyncDaemon, "lvs_sync_daemon", "sync_id", "256", "255"),
    (LvsSyncDaemon, "lvs_sync_daemon", "maxlen", "0", "1"),
    (LvsSyncDaemon, "lvs_sync_daemon", "port", "65536", "65535"),
    (LvsSyncDaemon, "lvs_sync_daemon", "ttl", "0", "1"),
    (InterfaceDelays, "interface_delays", "down_delay", "256", "255"),
    (InterfaceDelays, "interface_delays", "up_delay", "-1", "0"),
    (VrrpGlobals, "vrrp_globals", "vrrp_version", "4", "3"),
    (VrrpGlobals, "vrrp_globals", "vrrp_garp_master_delay", "4295", "4294"),
    (VrrpGlobals, "vrrp_globals", "vrrp_garp_master_repeat", "0", "1"),
    (VrrpGlobals, "vrrp_globals", "vrrp_garp_master_refresh", "1.5", "2"),
    (VrrpGlobals, "vrrp_globals", "vrrp_garp_master_refresh_repeat", "-1", "0"),
    (VrrpGlobals, "vrrp_globals", "vrrp_garp_lower_prio_delay", "-1", "0"),
    (VrrpGlobals, "vrrp_globals", "vrrp_garp_lower_prio_repeat", "-1", "0"),
    (VrrpGlobals, "vrrp_globals", "vrrp_garp_interval", "4295", "4294"),
    (VrrpGlobals, "vrrp_globals", "vrrp_gna_interval", "-1", "0.5"),
    (VrrpGlobals, "vrrp_globals", "vrrp_garp_extra_if", "86401", "86400"),
    (VrrpGlobals, "vrrp_globals", "vrrp_startup_delay", "-0.5", "60"),
    (VrrpGlobals, "vrrp_globals", "vrrp_down_timer_adverts", "101", "100"),
    (VrrpGlobals, "vrrp_globals", "nftables_priority", "2147483648", "2147483647"),
    (VrrpGlobals, "vrrp_globals", "vrrp_priority", "-21", "-20"),
    (VrrpGlobals, "vrrp_globals", "vrrp_rt_priority", "100", "99"),
    (VrrpGlobals, "vrrp_globals", "vrrp_cpu_affinity", "[-1]", "[0]"),
    (VrrpGlobals, "vrrp_globals", "vrrp_rlimit_rttime", "0", "0.01"),
    (VrrpGlobals, "vrrp_globals", "vrrp_netlink_cmd_rcv_bufs", "0", "1"),
    (VrrpGlobals, "vrrp_globals", "vrrp_netlink_monitor_rcv_bufs", "0", "1"),
    (VrrpGlobals, "vrrp_globals", "process_monitor_rcv_bufs", "4294967296", "4294967295"),
    (VrrpGlobals, "vrrp_globals", "vrrp_rx_bufs_size", "-1", "0"),
    (VrrpGlobals, "vrrp_globals", "vrrp_rx_bufs_multiplier", "0", "1"),
    (VrrpScript, "script", "interval", "0", "1"),
    (VrrpScript, "script", "interval", "1.5", "2"),
    (VrrpScript, "script", "timeout", "4295", "4294"),
    (VrrpScript, "script", "weight", "254", "253"),
    (VrrpScript, "script", "weight", "-254", "-253"),
    (VrrpScript, "script", "rise", "0", "1"),
    (VrrpScript, "script", "fall", "0", "1"),
    (TrackFile, "track_file", "weight", "255", "254"),
    (TrackFile, "track_file", "init_value", "2147483648", "2147483647"),
    (TrackProcess, "track_process", "weight", "-255", "-254"),
    (TrackProcess, "track_process", "quorum", "65536", "65535"),
    (TrackProcess, "track_process", "quorum_max", "65536", "65535"),
    (TrackProcess, "track_process", "fork_delay", "3601", "3600"),
    (TrackProcess, "track_process", "terminate_delay", "-1", "0"),
    (TrackedInterface, "track_interfaces", "weight", "254", "253"),
    (TrackedScript, "track_scripts", "weight", "-254", "-253"),
    (TrackedFile, "track_files", "weight", "255", "254"),
    (TrackedProcess, "track_processes", "weight", "-255", "-254"),
    (TrackedBfd, "track_bfds", "weight", "254", "253"),
    (VrrpInstance, "instance", "unicast_ttl", "256", "255"),
    (VrrpInstance, "instance", "preempt_delay", "1001", "1000"),
    (VrrpInstance, "instance", "debug", "5", "4"),
    (VrrpInstance, "instance", "kernel_rx_buf_size", "-1", "0"),
    (VrrpInstance, "instance", "garp_master_delay", "4295", "4294"),
    (VrrpInstance, "instance", "garp_master_repeat", "0", "1"),
    (VrrpInstance, "instance", "garp_master_refresh", "-1", "0"),
    (VrrpInstance, "instance", "garp_master_refresh_repeat", "-1", "0"),
    (VrrpInstance, "instance", "garp_lower_prio_delay", "0.5", "1"),
    (VrrpInstance, "instance", "garp_lower_prio_repeat", "-1", "0"),
    (VrrpInstance, "instance", "garp_extra_if", "86401", "86400"),
    (VrrpInstance, "instance", "down_timer_adverts", "0", "1"),
    (UnicastPeer, "unicast_peers", "min_ttl", "-1", "0"),
    (UnicastPeer, "unicast_peers", "max_ttl", "256", "255"),
    (VirtualAddress, "vip", "preferred_lft", "4294967296", "4294967295"),
    (Route, "route", "table", "-1", "0"),
    (Route, "route", "metric", "4294967296", "4294967295"),
    (Route, "route", "tos", "256", "255"),
    (NextHop, "nexthop", "weight", "0", "1"),
    (NextHop, "nexthop", "weight", "257", "256"),
    (Rule, "rule", "table", "4294967296", "4294967295"),
    (Rule, "rule", "preference", "-1", "0"),
    (Rule, "rule", "goto", "-1", "0"),
    (Rule, "rule", "suppress_prefixlength", "-1", "0"),
    (Rule, "rule", "tos", "256", "255"),
    (Rule, "rule", "fwmark", "-1", "0"),
    (Rule, "rule", "fwmask", "4294967296", "4294967295"),
    (Rule, "rule", "uidrange", "[0, 4294967296]", "[0, 4294967295]"),
    (Rule, "rule", "sport", "[-1, 80]", "[0, 80]"),
    (Rule, "rule", "dport", "[1, 65536]", "[1, 65535]"),
    (GarpGroup, "garp_group", "garp_interval", "2147.49", "2147.48"),
    (GarpGroup, "garp_group", "gna_interval", "-1", "0"),
    (AddressRange, "address_range", "port", "65536", "65535"),
    (GroupFwmark, "group_fwmark", "fwmark", "0", "1"),
    (GroupFwmark, "group_fwmark", "fwmark", "4294967296", "4294967295"),
    (VirtualServer, "vs_port", "port", "65536", "65535"),
    (VirtualServer, "fwmark_service", "fwmark", "0", "1"),
    (VirtualServer, "virtual_server", "persistence_timeout", "0", "1"),
    (VirtualServer, "virtual_server", "persistence_timeout", "1.5", "2"),
    (VirtualServer, "virtual_server", "quorum", "0", "1"),
    (VirtualServer, "virtual_server", "hysteresis", "-1", "0"),
    (VirtualServer, "virtual_server", "slow_start", "-1", "0"),
    (VirtualServer, "virtual_server", "delay_loop", "0", "1"),
    (VirtualServer, "virtual_server", "connect_timeout", "0", "0.1"),
    (VirtualServer, "virtual_server", "retry", "-1", "0"),
    (VirtualServer, "virtual_server", "delay_before_retry", "-1", "0"),
    (VirtualServer, "virtual_server", "warmup", "-1", "0"),
    (VirtualServer, "virtual_server", "weight", "-1", "1"),
    (VirtualServer, "virtual_server", "weight", "65536", "65535"),
    (LvsMethod, "lvs_method", "tunnel_port", "65536", "65535"),
    (SorryServer, "sorry_server", "port", "-1", "0"),
    (RealServer, "rs_port", "port", "65536", "65535"),
    (RealServer, "real_server", "uthreshold", "-1", "0"),
    (RealServer, "real_server", "lthreshold", "4294967296", "0"),
    (RealServer, "real_server", "delay_loop", "-1", "1"),
    (RealServer, "real_server", "connect_timeout", "0", "1"),
    (RealServer, "real_server", "retry", "4294967296", "4294967295"),
    (RealServer, "real_server", "delay_before_retry", "-1", "0"),
    (RealServer, "real_server", "warmup", "-1", "0"),
    (RealServer, "real_server", "weight", "65536", "65535"),
    (TcpCheck, "TCP_CHECK", "delay_loop", "0", "1"),
    (TcpCheck, "TCP_CHECK", "retry", "-1", "0"),
    (TcpCheck, "TCP_CHECK", "delay_before_retry", "-1", "0"),
    (TcpCheck, "TCP_CHECK", "warmup", "-1", "0"),
    (TcpCheck, "TCP_CHECK", "rise", "0", "1"),
    (TcpCheck, "TCP_CHECK", "fall", "0", "1"),
    (TcpCheck, "TCP_CHECK", "connect_port", "65536", "65535"),
    (TcpCheck, "TCP_CHECK", "bind_port", "0", "1"),
    (TcpCheck, "TCP_CHECK", "connect_timeout", "0", "1"),
    (TcpCheck, "TCP_CHECK", "fwmark", "-1", "0"),
    (HttpGetCheck, "HTTP_GET", "max_body_size", "0", "1"),
    (SslGetCheck, "SSL_GET", "max_body_size", "4611686018427387905", "4611686018427387904"),
    (MiscCheck, "MISC_CHECK", "misc_timeout", "0", "0.5"),
    (MiscCheck, "MISC_CHECK", "fall", "0", "1"),
    (UdpCheck, "UDP_CHECK", "min_reply_length", "-1", "0"),
    (UdpCheck, "UDP_CHECK", "max_reply_length", "65536", "65535"),
    (FileCheck, "FILE_CHECK", "weight", "-2147483648", "-2147483647"),
    (SmtpHost, "smtp_host", "connect_port", "65536", "65535"),
    (SmtpHost, "smtp_host", "bind_port", "0", "1"),
    (SmtpHost, "smtp_host", "connect_timeout", "0", "1"),
    (SmtpHost, "smtp_host", "fwmark", "4294967296", "4294967295"),
    (Url, "url", "regex_stack_start", "-1", "0"),
    (Url, "url", "regex_stack_max", "-1", "0"),
    (Url, "url", "regex_min_offset", "-1", "0"),
    (Url, "url", "regex_max_offset", "4611686018427387905", "4611686018427387904"),
    (StatusRange, "status_code", "low", "99", "100"),
    (StatusRange, "status_code", "high", "600", "599"),
]


def _document(context: str, entry: str) -> tuple[str, int]:
    """The YAML text of a case and the (1-based) line of its entry."""
    template = CONTEXTS[context]
    text = template.replace("@", entry)
    line = template[:template.index("@")].count("\n") + 1
    return text, line


def _load(tmp_path: Path, text: str, name: str = "director.yaml") -> tuple[object, Diagnostics,
                                                                            str]:
    path = tmp_path / name
    path.write_text(text)
    diag = Diagnostics()
    return load_yaml(str(path), diag), diag, str(path)


def _case_id(case: tuple) -> str:
    cls, _, field, outside, _ = case
    return f"{cls.__name__}.{field}={outside}"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_a_value_just_outside_its_range_is_an_error_at_its_line(case, tmp_path: Path):
    _, context, field, outside, _ = case
    text, line = _document(context, f"{field}: {outside}")
    config, diag, path = _load(tmp_path, text)
    assert config is None
    errors = [p for p in diag.errors if f".{field} " in p.message or f"{field} " in p.message]
    assert errors, f"no error about {field} {outside} in:\n{text}\n{diag.problems}"
    for problem in errors:
        file, at_line, column = problem.origin.rsplit(":", 2)
        assert (file, int(at_line)) == (path, line), (str(problem), text)
        assert int(column) >= 1
    assert any("out of range" in p.message or "reversed" in p.message or "less than" in
               p.message for p in errors)


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_a_value_just_inside_its_range_loads(case, tmp_path: Path):
    _, context, field, _, inside = case
    text, _ = _document(context, f"{field}: {inside}")
    config, diag, _ = _load(tmp_path, text)
    assert diag.errors == [], (text, [str(p) for p in diag.errors])
    assert config is not None


def test_a_recorded_field_is_reported_at_its_value(tmp_path: Path):
    text = "virtual_servers:\n- address: 192.0.2.1\n  port: 80\n  protocol: TCP\n" \
           "  weight:    70000\n"
    _, diag, path = _load(tmp_path, text)
    assert [(p.origin, p.message) for p in diag.errors] == [
        (f"{path}:5:14", "virtual_servers[0].weight 70000 is out of range (0-65535)")]


def _declaring_class(cls: type, field: str) -> type:
    for base in reversed(cls.__mro__):
        if field in getattr(base, "__annotations__", {}):
            return base
    raise AssertionError(f"{cls.__name__} has no field {field}")


def test_every_constrained_field_has_a_case():
    covered = {(_declaring_class(cls, field), field) for cls, _, field, _, _ in CASES}
    wanted = {(_declaring_class(cls, field), field)
              for cls, bounds in RANGES.items() for field in bounds}
    assert wanted - covered == set()


def test_the_table_names_only_fields_of_the_model():
    for cls, bounds in RANGES.items():
        names = {f.name for f in dataclasses.fields(cls)}
        assert set(bounds) <= names, cls.__name__
        assert not set(bounds) & set(CHECKED_ELSEWHERE.get(cls, ())), cls.__name__


def test_every_default_is_within_its_range():
    required = {(GroupFwmark, "fwmark")}  # 0: not given
    for cls, bounds in RANGES.items():
        instance = cls()
        for name, bound in bounds.items():
            value = getattr(instance, name)
            if value is None or (cls, name) in required:
                continue
            for item in (value if bound.items else (value,)):
                assert bound.accepts(item), (cls.__name__, name, item)


# ----------------------------------------------------------------- the same bounds as
# the keepalived.conf builders: the keyword written there with the same values


BUILDER_CASES: list[tuple[str, str, str, str]] = [
    # (keepalived.conf with "@" for "KEYWORD VALUE", keyword, outside, inside)
    ("global_defs {\n  @\n}\n", "smtp_connect_timeout", "0", "0.5"),
    ("global_defs {\n  @\n}\n", "max_auto_priority", "100", "99"),
    ("global_defs {\n  @\n}\n", "startup_script_timeout", "1001", "1000"),
    ("global_defs {\n  @\n}\n", "random_seed", "-1", "0"),
    ("global_defs {\n  @\n}\n", "lvs_netlink_monitor_rcv_bufs", "2147483648", "2147483647"),
    ("global_defs {\n  @\n}\n", "vrrp_priority", "-21", "-20"),
    ("global_defs {\n  @\n}\n", "vrrp_rt_priority", "100", "99"),
    ("global_defs {\n  @\n}\n", "vrrp_garp_master_delay", "4295", "4294"),
    ("global_defs {\n  @\n}\n", "vrrp_down_timer_adverts", "101", "100"),
    ("global_defs {\n  @\n}\n", "vrrp_garp_extra_if", "86401", "86400"),
    ("vrrp_script chk {\n  script /bin/true\n  @\n}\n", "weight", "254", "253"),
    ("vrrp_script chk {\n  script /bin/true\n  @\n}\n", "rise", "0", "1"),
    ("vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n"
     "  virtual_ipaddress {\n    192.0.2.100\n  }\n  @\n}\n", "debug", "5", "4"),
    ("vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n"
     "  virtual_ipaddress {\n    192.0.2.100\n  }\n  @\n}\n", "preempt_delay", "1001", "1000"),
    ("vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n"
     "  virtual_ipaddress {\n    192.0.2.100\n  }\n  @\n}\n", "down_timer_adverts", "0", "1"),
    ("virtual_server 192.0.2.1 80 {\n  protocol TCP\n  @\n  real_server 192.0.2.10 80 {\n"
     "  }\n}\n", "weight", "65536", "65535"),
    ("virtual_server 192.0.2.1 80 {\n  protocol TCP\n  @\n  real_server 192.0.2.10 80 {\n"
     "  }\n}\n", "delay_loop", "0", "1"),
    ("virtual_server 192.0.2.1 80 {\n  protocol TCP\n  @\n  real_server 192.0.2.10 80 {\n"
     "  }\n}\n", "quorum", "0", "1"),
    ("virtual_server 192.0.2.1 80 {\n  protocol TCP\n  @\n  real_server 192.0.2.10 80 {\n"
     "  }\n}\n", "persistence_timeout", "0", "1"),
    ("virtual_server 192.0.2.1 80 {\n  protocol TCP\n  @\n  real_server 192.0.2.10 80 {\n"
     "  }\n}\n", "slow_start", "-1", "0"),
    ("virtual_server 192.0.2.1 80 {\n  protocol TCP\n  real_server 192.0.2.10 80 {\n"
     "    @\n  }\n}\n", "uthreshold", "-1", "0"),
    ("virtual_server 192.0.2.1 80 {\n  protocol TCP\n  real_server 192.0.2.10 80 {\n"
     "    TCP_CHECK {\n      @\n    }\n  }\n}\n", "connect_port", "65536", "65535"),
    ("virtual_server 192.0.2.1 80 {\n  protocol TCP\n  real_server 192.0.2.10 80 {\n"
     "    TCP_CHECK {\n      @\n    }\n  }\n}\n", "connect_timeout", "0", "1"),
    ("virtual_server 192.0.2.1 80 {\n  protocol TCP\n  real_server 192.0.2.10 80 {\n"
     "    UDP_CHECK {\n      @\n    }\n  }\n}\n", "max_reply_length", "65536", "65535"),
]


@pytest.mark.parametrize("case", BUILDER_CASES, ids=[f"{c[1]}={c[2]}" for c in BUILDER_CASES])
def test_the_keepalived_conf_builders_draw_the_same_lines(case):
    template, keyword, outside, inside = case

    def errors(value: str) -> list[str]:
        diag = Diagnostics()
        build_config(read_text(template.replace("@", f"{keyword} {value}"), "t.conf", diag),
                     diag)
        return [p.message for p in diag.errors]

    assert any(keyword in m or "out of range" in m or "greater than 0" in m
               for m in errors(outside)), errors(outside)
    assert errors(inside) == []


# ----------------------------------------------------------------- keepalived.conf configs


@pytest.mark.parametrize("path", SAMPLES + TEST_CONFIGS, ids=lambda p: p.name)
def test_configs_built_from_keepalived_conf_files_pass(path: Path, tmp_path: Path):
    diag = Diagnostics()
    config = build_config(read_file(str(path), diag), diag)
    checked = Diagnostics()
    validate_ranges(config, checked)
    assert checked.problems == []
    # ... and as YAML: no error beyond those the keepalived.conf had
    yaml_path = tmp_path / "converted.yaml"
    yaml_path.write_text(dump_yaml(config, concise=True))
    again = Diagnostics()
    load_yaml(str(yaml_path), again)
    assert not [p for p in again.errors if "out of range" in p.message]
    assert len(again.errors) <= len(diag.errors)


def test_there_are_configs_to_check():
    assert len(SAMPLES) >= 20 or not Path("/usr/share/doc/keepalived/samples").is_dir()
    assert len(TEST_CONFIGS) >= 20


# ----------------------------------------------------------------- one report per mistake


def test_an_inherited_bad_value_is_reported_once_where_it_was_written(tmp_path: Path):
    text = textwrap.dedent("""\
        virtual_servers:
        - address: 192.0.2.1
          port: 80
          protocol: TCP
          delay_loop: -1
          weight: 70000
          real_servers:
          - address: 192.0.2.10
            checkers:
            - kind: TCP_CHECK
            - kind: MISC_CHECK
              misc_path: [/bin/true]
          - address: 192.0.2.11
            weight: 70001
        vrrp:
          globals:
            vrrp_garp_master_delay: 5000
          scripts:
          - name: chk
            script: [/bin/true]
            interval: 0
          instances:
          - name: VI_1
            interface: eth0
            virtual_router_id: 51
            virtual_ipaddresses:
            - address: 192.0.2.100/32
        """)
    _, diag, path = _load(tmp_path, text)
    assert sorted((p.origin, p.message) for p in diag.errors) == sorted([
        (f"{path}:5:15", "virtual_servers[0].delay_loop -1 is out of range (> 0, <= 1000000000)"),
        (f"{path}:6:11", "virtual_servers[0].weight 70000 is out of range (0-65535)"),
        (f"{path}:14:13", "virtual_servers[0].real_servers[1].weight 70001 is out of range "
                          "(0-65535)"),
        (f"{path}:17:29", "vrrp.globals.vrrp_garp_master_delay 5000 is out of range "
                          "(0-4294, whole numbers)"),
        (f"{path}:21:15", "vrrp.scripts[0].interval 0 is out of range (> 0, <= 4294, "
                          "whole numbers)"),
    ])


def test_checks_made_elsewhere_are_not_repeated(tmp_path: Path):
    text, _ = _document("instance", "priority: 300")
    _, diag, _ = _load(tmp_path, text)
    assert [p.message for p in diag.errors] == ["(VI_1) priority 300 is out of range (1-255)"]


def test_a_json_file_names_the_path_of_the_value(tmp_path: Path):
    data = {"virtual_servers": [{"address": "192.0.2.1", "port": 80, "protocol": "TCP",
                                 "real_servers": [{"address": "192.0.2.10", "port": 80,
                                                   "uthreshold": -5}]}]}
    _, diag, _ = _load(tmp_path, json.dumps(data), "director.json")
    assert [(p.origin, p.message) for p in diag.errors] == [
        ("", "virtual_servers[0].real_servers[0].uthreshold -5 is out of range "
             "(0-4294967295)")]


# ----------------------------------------------------------------- values that go together


@pytest.mark.parametrize(("context", "entry", "message", "warning"), [
    ("status_code", "low: 300, high: 200", "status code range 300-200 is reversed", False),
    ("url", "digest: 640205B7B0FC66C1EA91C463FAC6334D",
     "digest '640205B7B0FC66C1EA91C463FAC6334D' is not an MD5 digest", False),
    ("url", "regex_stack_start: 10\n        regex_stack_max: 5",
     "regex_stack_start 10 exceeds regex_stack_max 5", False),
    ("url", "regex_min_offset: 10\n        regex_max_offset: 5",
     "regex_min_offset 10 is beyond regex_max_offset 5", False),
    ("UDP_CHECK", "min_reply_length: 10\n      max_reply_length: 5",
     "min_reply_length 10 > max_reply_length 5", True),
    ("track_process", "quorum: 0", "quorum 0 is out of range (1-65535", False),
    ("track_process", "quorum_max: 2\n    quorum: 3", "quorum_max 2 is less than quorum 3",
     False),
    ("unicast_peers", "min_ttl: 10\n      max_ttl: 5", "min_ttl 10 > max_ttl 5", True),
    ("rule", "sport: [1, 2, 3]", "sport needs a range of two numbers", False),
    ("rule", "dport: [90, 80]", "dport 90-80: the range ends before it starts", False),
    ("lvs_method", "tunnel_checksum: remcsum", "", False),  # gue: fine, but no port
    ("virtual_server", "lvs_method: {forwarding: TUN, tunnel_checksum: csum}",
     "checksum option 'csum' needs tunnel type gue or gre", False),
    ("virtual_server", "lvs_method: {forwarding: TUN, tunnel_type: gre, "
                       "tunnel_checksum: remcsum}",
     "tunnel type gre does not support remcsum", False),
])
def test_values_that_depend_on_each_other(context, entry, message, warning, tmp_path: Path):
    text, line = _document(context, entry)
    _, diag, path = _load(tmp_path, text)
    found = diag.warnings if warning else diag.errors
    if not message:  # a GUE tunnel without its port
        message = "tunnel type gue needs a tunnel_port (1-65535)"
    matching = [p for p in found if message in p.message]
    assert matching, (text, [str(p) for p in diag.problems])
    assert all(p.origin.startswith(f"{path}:{line}:") for p in matching), \
        [str(p) for p in matching]


def test_bound_descriptions():
    assert Bound(0, 65535).describe() == "0-65535"
    assert Bound(0, None, above=True).describe() == "> 0"
    assert Bound(0, 1000, above=True).describe() == "> 0, <= 1000"
    assert Bound(0, None).describe() == ">= 0"
    assert Bound(0, 4294, whole=True).describe() == "0-4294, whole numbers"
    assert not Bound(0, 10, whole=True).accepts(1.5)
    assert Bound(0, 10, whole=True).accepts(2.0)
    assert not Bound(0, 10).accepts(float("nan"))
