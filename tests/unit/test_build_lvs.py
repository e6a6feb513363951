"""virtual_server_group / virtual_server / real_server blocks -> the LVS model, and the
checks of `validate_lvs`, each problem at its FILE:LINE:COL."""

from __future__ import annotations

import textwrap
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from config_helpers import problems

from checkers.spec import DnsCheck, HttpGetCheck, MiscCheck, TcpCheck
from director.config.build_lvs import build_virtual_server, build_virtual_server_group
from director.config.errors import Diagnostics, Severity
from director.config.keepalived import build_config
from director.config.model import (
    AddressRange,
    Config,
    Forwarding,
    GroupFwmark,
    IPFamily,
    LvsMethod,
    Protocol,
    RealServer,
    SchedulerFlag,
    Script,
    SorryServer,
    TunnelChecksum,
    TunnelType,
    VirtualServer,
    VirtualServerGroup,
)
from director.config.reader import read_text
from director.config.validate_lvs import validate_lvs

FILE = "t.conf"


def _text(text: str) -> str:
    return textwrap.dedent(text).strip("\n") + "\n"


def at(text: str, needle: str, occurrence: int = 1) -> str:
    """FILE:LINE:COL of the ``occurrence``-th ``needle`` in (dedented) ``text``."""
    text = _text(text)
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"{FILE}:{line}:{col}"


def at_in(text: str, line: str, needle: str) -> str:
    """FILE:LINE:COL of ``needle`` in the first place ``line`` is written."""
    text = _text(text)
    index = text.index(needle, text.index(line))
    row = text.count("\n", 0, index) + 1
    return f"{FILE}:{row}:{index - (text.rfind(chr(10), 0, index) + 1) + 1}"


def value_at(text: str, phrase: str) -> str:
    """FILE:LINE:COL of the last word of ``phrase`` (``"quorum 5"``: the 5)."""
    where = at(text, phrase)
    file, line, col = where.rsplit(":", 2)
    return f"{file}:{line}:{int(col) + phrase.rindex(' ') + 1}"


def load(text: str) -> tuple[Config, Diagnostics]:
    """Read, build and validate a whole config."""
    diag = Diagnostics()
    nodes = read_text(_text(text), FILE, diag)
    return build_config(nodes, diag), diag


def vs_only(text: str) -> tuple[VirtualServer | None, Diagnostics]:
    """Build the single virtual_server in ``text`` (no validation)."""
    diag = Diagnostics()
    nodes = read_text(_text(text), FILE, diag)
    assert not diag.problems and len(nodes) == 1
    return build_virtual_server(nodes[0], diag), diag


def vs_ok(text: str) -> VirtualServer:
    vs, diag = vs_only(text)
    assert not diag.problems, [str(p) for p in diag.problems]
    assert vs is not None
    return vs


def with_line(line: str, rs_line: str = "") -> str:
    return f"""
        virtual_server 192.0.2.1 80 {{
            protocol TCP
            {line}
            real_server 192.0.2.11 80 {{
                {rs_line}
            }}
        }}
    """


# ------------------------------------------------------------------ defaults


def test_a_bare_service_has_keepalived_defaults() -> None:
    text = """
        virtual_server 192.0.2.1 80 {
            real_server 192.0.2.11 80 {
            }
        }
    """
    vs, diag = vs_only(text)
    assert vs is not None
    assert problems(diag) == [(at(text, "virtual_server"), "virtual server 192.0.2.1 80 has "
                                                           "no protocol; keepalived defaults "
                                                           "to UDP (set 'protocol TCP' if "
                                                           "meant)")]
    assert vs.address == IPv4Address("192.0.2.1") and vs.port == 80
    assert vs.addressing == "address" and vs.fwmark is None and vs.group is None
    assert vs.lvs_sched == "wlc"
    assert vs.lvs_method == LvsMethod(forwarding=Forwarding.NAT)
    assert vs.protocol is None and vs.effective_protocol is Protocol.UDP
    assert (vs.delay_loop, vs.connect_timeout) == (60.0, 5.0)
    assert (vs.retry, vs.delay_before_retry, vs.warmup) == (None, None, None)
    assert (vs.quorum, vs.hysteresis) == (1, 0)
    assert vs.persistence_timeout is None and vs.persistence_granularity is None
    assert not (vs.alpha or vs.omega or vs.ha_suspend or vs.inhibit_on_failure or vs.ops)
    assert vs.smtp_alert is False and vs.sorry_server is None and vs.sched_flags == ()
    (rs,) = vs.real_servers
    assert rs.address == IPv4Address("192.0.2.11") and rs.port == 80
    assert rs.weight == 1 and rs.lvs_method.forwarding is Forwarding.NAT
    assert rs.smtp_alert is True  # keepalived's odd default for real servers
    assert not (rs.alpha or rs.inhibit_on_failure)
    assert (rs.uthreshold, rs.lthreshold) == (0, 0)
    assert rs.checkers == ()
    # the model's own defaults say the same
    assert rs == RealServer(address=rs.address, port=80)


# ------------------------------------------------------------------ every option


VS_OPTIONS = [
    ("lvs_sched rr", "lvs_sched", "rr"),
    ("lb_algo sh", "lvs_sched", "sh"),
    ("lvs_method DR", "lvs_method", LvsMethod(forwarding=Forwarding.DR)),
    ("lb_kind TUN", "lvs_method", LvsMethod(forwarding=Forwarding.TUN)),
    ("lvs_method TUN type gue port 6080 csum", "lvs_method",
     LvsMethod(forwarding=Forwarding.TUN, tunnel_type=TunnelType.GUE, tunnel_port=6080,
               tunnel_checksum=TunnelChecksum.CSUM)),
    ("lvs_method TUN type gre nocsum", "lvs_method",
     LvsMethod(forwarding=Forwarding.TUN, tunnel_type=TunnelType.GRE)),
    ("lvs_method TUN type ipip", "lvs_method", LvsMethod(forwarding=Forwarding.TUN)),
    ("persistence_timeout", "persistence_timeout", 360.0),
    ("persistence_timeout 50", "persistence_timeout", 50.0),
    ("persistence_granularity 255.255.255.0", "persistence_granularity", 24),
    ("persistence_engine sip", "persistence_engine", "sip"),
    ("protocol TCP", "protocol", Protocol.TCP),
    ("protocol udp", "protocol", Protocol.UDP),
    ("protocol SCTP", "protocol", Protocol.SCTP),
    ("ha_suspend", "ha_suspend", True),
    ("alpha", "alpha", True),
    ("omega", "omega", True),
    ("hysteresis 0", "hysteresis", 0),
    ("quorum 1", "quorum", 1),
    ("quorum_up /bin/up", "quorum_up", Script(command="/bin/up")),
    ('quorum_down "/bin/down VS 80" nobody nogroup', "quorum_down",
     Script(command="/bin/down VS 80", user="nobody", group="nogroup")),
    ("virtualhost www.example.com", "virtualhost", "www.example.com"),
    ("snmp_name web", "snmp_name", "web"),
    ("smtp_alert", "smtp_alert", True),
    ("smtp_alert off", "smtp_alert", False),
    ("delay_loop 2.5", "delay_loop", 2.5),
    ("connect_timeout 3", "connect_timeout", 3.0),
    ("retry 4", "retry", 4),
    ("nb_get_retry 4", "retry", 4),
    ("delay_before_retry 2", "delay_before_retry", 2.0),
    ("warmup 0", "warmup", 0.0),
    ("inhibit_on_failure", "inhibit_on_failure", True),
    ("weight 3", "weight", 3),
    ("ops", "ops", True),
    ("hashed", "hashed", True),
    ("flag-1", "sched_flags", (SchedulerFlag.FLAG_1,)),
    ("flag-3", "sched_flags", (SchedulerFlag.FLAG_3,)),
    ("sh-port", "sched_flags", (SchedulerFlag.SH_PORT,)),
    ("mh-fallback", "sched_flags", (SchedulerFlag.MH_FALLBACK,)),
    ("sorry_server 192.0.2.250 8080", "sorry_server",
     SorryServer(address=IPv4Address("192.0.2.250"), port=8080)),
    ("sorry_server 192.0.2.250", "sorry_server",
     SorryServer(address=IPv4Address("192.0.2.250"), port=80)),
]


@pytest.mark.parametrize(("line", "name", "value"), VS_OPTIONS, ids=[o[0] for o in VS_OPTIONS])
def test_virtual_server_option(line: str, name: str, value: object) -> None:
    vs = vs_ok(with_line(line))
    assert getattr(vs, name) == value


RS_OPTIONS = [
    ("weight 3", "weight", 3),
    ("weight 0", "weight", 0),
    ("lvs_method DR", "lvs_method", LvsMethod(forwarding=Forwarding.DR)),
    ("notify_up /bin/up", "notify_up", Script(command="/bin/up")),
    ('notify_down "/bin/down rs" root', "notify_down", Script(command="/bin/down rs",
                                                              user="root")),
    ("uthreshold 100", "uthreshold", 100),
    ("lthreshold 10", "lthreshold", 10),
    ("inhibit_on_failure", "inhibit_on_failure", True),
    ("inhibit_on_failure yes", "inhibit_on_failure", True),
    ("alpha", "alpha", True),
    ("smtp_alert off", "smtp_alert", False),
    ("virtualhost www.example.com", "virtualhost", "www.example.com"),
    ("snmp_name rs1", "snmp_name", "rs1"),
    ("delay_loop 3", "delay_loop", 3.0),
    ("connect_timeout 2", "connect_timeout", 2.0),
    ("retry 0", "retry", 0),
    ("nb_get_retry 2", "retry", 2),
    ("delay_before_retry 0.5", "delay_before_retry", 0.5),
    ("warmup 1", "warmup", 1.0),
]


@pytest.mark.parametrize(("line", "name", "value"), RS_OPTIONS, ids=[o[0] for o in RS_OPTIONS])
def test_real_server_option(line: str, name: str, value: object) -> None:
    vs = vs_ok(with_line("", line))
    assert getattr(vs.real_servers[0], name) == value


def test_sorry_server_settings_and_inherited_method() -> None:
    vs = vs_ok("""
        virtual_server 192.0.2.1 80 {
            protocol TCP
            lvs_method DR
            sorry_server_inhibit
            sorry_server 192.0.2.250
            real_server 192.0.2.11 80 {
            }
        }
    """)
    assert vs.sorry_server == SorryServer(address=IPv4Address("192.0.2.250"), port=80,
                                          lvs_method=LvsMethod(forwarding=Forwarding.DR),
                                          inhibit=True)
    vs = vs_ok(with_line("sorry_server 192.0.2.250 80\n sorry_server_lvs_method NAT"))
    assert vs.sorry_server is not None
    assert vs.sorry_server.lvs_method.forwarding is Forwarding.NAT


def test_sorry_server_options_without_sorry_server_warn() -> None:
    text = with_line("sorry_server_inhibit")
    vs, diag = vs_only(text)
    assert vs is not None and vs.sorry_server is None
    assert problems(diag) == [(at(text, "sorry_server_inhibit"),
                               "sorry_server_inhibit without a sorry_server; ignored")]


def test_scheduler_flags_accumulate_and_can_be_turned_off() -> None:
    vs = vs_ok(with_line("lvs_sched sh\n sh-port\n sh-fallback\n flag-3\n flag-3 off"))
    assert vs.sched_flags == (SchedulerFlag.SH_PORT, SchedulerFlag.SH_FALLBACK)


def test_persistence_granularity_forms() -> None:
    vs = vs_ok("""
        virtual_server 2001:db8::1 443 {
            protocol TCP
            persistence_granularity 64
            real_server 2001:db8::11 443 {
            }
        }
    """)
    # setting a granularity makes the service persistent, as keepalived does
    assert (vs.persistence_granularity, vs.persistence_timeout) == (64, 360.0)


# ------------------------------------------------------------------ addressing


def test_fwmark_and_group_services() -> None:
    vs = vs_ok("""
        virtual_server fwmark 7 {
            real_server 192.0.2.11 {
            }
        }
    """)
    assert (vs.addressing, vs.fwmark, vs.address, vs.port) == ("fwmark", 7, None, 0)
    assert vs.real_servers[0].port == 0  # fwmark services have no port to inherit
    vs = vs_ok("""
        virtual_server group WEB {
            real_server 192.0.2.11 80 {
            }
        }
    """)
    assert (vs.addressing, vs.group) == ("group", "WEB")


def test_real_server_without_port_takes_the_service_port() -> None:
    vs = vs_ok("""
        virtual_server 192.0.2.1 8080 {
            protocol TCP
            real_server 192.0.2.11 {
            }
            real_server 192.0.2.12
        }
    """)
    assert [rs.port for rs in vs.real_servers] == [8080, 8080]


def test_ipv6_service() -> None:
    vs = vs_ok("""
        virtual_server 2001:db8::1 80 {
            protocol TCP
            ip_family inet6
            real_server 2001:db8::11 80 {
            }
        }
    """)
    assert vs.address == IPv6Address("2001:db8::1") and vs.ip_family is IPFamily.INET6


# ------------------------------------------------------------------ groups


def group(text: str) -> tuple[VirtualServerGroup | None, Diagnostics]:
    diag = Diagnostics()
    nodes = read_text(_text(text), FILE, diag)
    return build_virtual_server_group(nodes[0], diag), diag


def _range(first: str, last: str, port: int) -> AddressRange:
    return AddressRange(first=ip_address(first), last=ip_address(last), port=port)


def test_group_entries() -> None:
    built, diag = group("""
        virtual_server_group G {
            192.0.2.1 80
            192.0.2.3-10 80
            192.0.2.250-192.0.3.10 443
            198.51.100.8/29 25
            203.0.113.1
            2001:db8::2-9 80
            2001:db8::a-ff 80
            fwmark 1
            fwmark 2 inet6
        }
    """)
    assert not diag.problems, [str(p) for p in diag.problems]
    assert built is not None and built.name == "G"
    assert built.address_ranges == (
        _range("192.0.2.1", "192.0.2.1", 80),
        _range("192.0.2.3", "192.0.2.10", 80),
        _range("192.0.2.250", "192.0.3.10", 443),
        _range("198.51.100.8", "198.51.100.15", 25),
        _range("203.0.113.1", "203.0.113.1", 0),
        _range("2001:db8::2", "2001:db8::9", 80),
        _range("2001:db8::a", "2001:db8::ff", 80),
    )
    assert built.address_ranges[1].size == 8
    assert built.fwmarks == (GroupFwmark(fwmark=1), GroupFwmark(fwmark=2,
                                                                ip_family=IPFamily.INET6))
    assert built.families == {IPFamily.INET, IPFamily.INET6}


@pytest.mark.parametrize(("entry", "needle", "message"), [
    ("192.0.2.10-3 80", "192.0.2.10-3", "range '192.0.2.10-3' does not end after its start"),
    ("192.0.2.1-300 80", "192.0.2.1-300", "range end '300' in '192.0.2.1-300' is out of range"),
    ("192.0.2.1-2001:db8::1 80", "192.0.2.1-2001",
     "the ends of range '192.0.2.1-2001:db8::1' are of different families"),
    ("192.0.2.9/29 80", "192.0.2.9/29",
     "'192.0.2.9/29' is not a valid network (192.0.2.9/29 has host bits set)"),
    ("192.0.2.1 99999", "99999", "port 99999 is out of range (0-65535)"),
    ("192.0.2.1 80 81", "81", "unexpected '81' after the port of a virtual_server_group entry"),
    ("fwmark 0", "0", "fwmark 0 is out of range (1-4294967295)"),
    ("fwmark 1 inet7", "inet7",
     "unknown address family 'inet7' (expected one of: inet, inet6)"),
])
def test_bad_group_entries_are_errors_at_the_entry(entry: str, needle: str,
                                                   message: str) -> None:
    text = f"""
        virtual_server_group G {{
            {entry}
        }}
    """
    built, diag = group(text)
    assert built is not None and not built.address_ranges and not built.fwmarks
    assert problems(diag) == [(at(text, needle), message)]


# ------------------------------------------------------------------ inheritance


def test_real_servers_inherit_the_service_settings_and_may_override_them() -> None:
    vs = vs_ok("""
        virtual_server 192.0.2.1 80 {
            protocol TCP
            lvs_method DR
            inhibit_on_failure
            alpha
            weight 4
            virtualhost www.example.com
            delay_loop 7
            connect_timeout 2
            retry 5
            delay_before_retry 4
            warmup 0
            real_server 192.0.2.11 80 {
            }
            real_server 192.0.2.12 80 {
                lvs_method TUN
                inhibit_on_failure off
                alpha off
                weight 2
                virtualhost other.example.com
                delay_loop 3
                connect_timeout 1
                retry 1
                delay_before_retry 0.5
                warmup 9
            }
        }
    """)
    inherited, own = vs.real_servers
    assert inherited.lvs_method.forwarding is Forwarding.DR
    assert (inherited.inhibit_on_failure, inherited.alpha, inherited.weight) == (True, True, 4)
    assert inherited.virtualhost == "www.example.com"
    assert (inherited.delay_loop, inherited.connect_timeout, inherited.retry,
            inherited.delay_before_retry, inherited.warmup) == (7.0, 2.0, 5, 4.0, 0.0)
    assert own.lvs_method.forwarding is Forwarding.TUN
    assert (own.inhibit_on_failure, own.alpha, own.weight) == (False, False, 2)
    assert own.virtualhost == "other.example.com"
    assert (own.delay_loop, own.connect_timeout, own.retry, own.delay_before_retry,
            own.warmup) == (3.0, 1.0, 1, 0.5, 9.0)


def test_smtp_alert_defaults_come_from_global_defs() -> None:
    cfg, diag = load("""
        global_defs {
            smtp_alert_checker off
            smtp_alert on
        }
        virtual_server 192.0.2.1 80 {
            protocol TCP
            real_server 192.0.2.11 80 {
            }
        }
    """)
    assert not diag.problems, [str(p) for p in diag.problems]
    vs = cfg.virtual_servers[0]
    assert vs.smtp_alert is False and vs.real_servers[0].smtp_alert is False
    cfg, _ = load("""
        virtual_server 192.0.2.1 80 {
            protocol TCP
            real_server 192.0.2.11 80 {
            }
        }
        global_defs {
            smtp_alert on
        }
    """)
    assert cfg.virtual_servers[0].smtp_alert is True


def checker_of(vs_lines: str, rs_lines: str, checker: str) -> object:
    vs = vs_ok(f"""
        virtual_server 192.0.2.1 80 {{
            protocol TCP
            {vs_lines}
            real_server 192.0.2.11 {{
                {rs_lines}
                {checker}
            }}
        }}
    """)
    (built,) = vs.real_servers[0].checkers
    return built


def test_checkers_take_keepalived_defaults_per_kind() -> None:
    tcp = checker_of("", "", "TCP_CHECK {\n}")
    assert isinstance(tcp, TcpCheck)
    assert (tcp.delay_loop, tcp.connect_timeout, tcp.retry, tcp.delay_before_retry,
            tcp.warmup, tcp.alpha) == (60.0, 5.0, 1, 1.0, 60.0, False)
    assert (tcp.connect_ip, tcp.connect_port) == (IPv4Address("192.0.2.11"), 80)
    http = checker_of("", "", "HTTP_GET {\n url {\n path /\n }\n}")
    assert isinstance(http, HttpGetCheck)
    assert (http.retry, http.delay_before_retry) == (1, 3.0)
    misc = checker_of("delay_loop 9", "", "MISC_CHECK {\n misc_path /bin/true\n}")
    assert isinstance(misc, MiscCheck) and (misc.retry, misc.delay_before_retry) == (0, 1.0)
    dns = checker_of("delay_loop 9", "", "DNS_CHECK {\n}")
    assert isinstance(dns, DnsCheck) and (dns.retry, dns.delay_before_retry) == (3, 9.0)


def test_checker_settings_come_from_checker_then_real_then_virtual_server() -> None:
    tcp = checker_of("delay_loop 10\n retry 4\n delay_before_retry 2\n connect_timeout 7\n"
                     " alpha",
                     "connect_timeout 3\n delay_before_retry 6",
                     "TCP_CHECK {\n retry 9\n}")
    assert isinstance(tcp, TcpCheck)
    assert (tcp.delay_loop, tcp.retry, tcp.delay_before_retry, tcp.connect_timeout,
            tcp.alpha, tcp.warmup) == (10.0, 9, 6.0, 3.0, True, 10.0)
    # settings written after the real_server block still count
    vs = vs_ok("""
        virtual_server 192.0.2.1 80 {
            protocol TCP
            real_server 192.0.2.11 80 {
                TCP_CHECK {
                }
                retry 2
            }
            delay_loop 4
        }
    """)
    (late,) = vs.real_servers[0].checkers
    assert isinstance(late, TcpCheck) and (late.delay_loop, late.retry) == (4.0, 2)


def test_warmup_is_inherited_and_zero_turns_the_random_start_off() -> None:
    tcp = checker_of("warmup 0", "", "TCP_CHECK {\n}")
    assert isinstance(tcp, TcpCheck) and tcp.warmup == 0.0
    tcp = checker_of("warmup 0", "warmup 12", "TCP_CHECK {\n}")
    assert isinstance(tcp, TcpCheck) and tcp.warmup == 12.0
    tcp = checker_of("warmup 12", "", "TCP_CHECK {\n warmup 3\n}")
    assert isinstance(tcp, TcpCheck) and tcp.warmup == 3.0


def test_http_checkers_get_the_server_virtualhost() -> None:
    http = checker_of("virtualhost www.example.com", "",
                      "HTTP_GET {\n url {\n path /\n }\n}")
    assert isinstance(http, HttpGetCheck) and http.virtualhost == "www.example.com"
    own = checker_of("virtualhost www.example.com", "",
                     "HTTP_GET {\n virtualhost mine\n url {\n path /\n }\n}")
    assert isinstance(own, HttpGetCheck) and own.virtualhost == "mine"


# ------------------------------------------------------------------ bad values, located


@pytest.mark.parametrize(("line", "needle", "message"), [
    ("delay_loop abc", "abc", "delay_loop 'abc' is not a number"),
    ("delay_loop 0", "0", "delay_loop must be greater than 0"),
    ("connect_timeout -1", "-1", "connect_timeout -1 is out of range (0-1000000000.0)"),
    ("retry x", "x", "retry 'x' is not a whole number"),
    ("lvs_method FOO", "FOO",
     "unknown forwarding method 'FOO' (expected one of: NAT, DR, TUN)"),
    ("lvs_method DR type gre", "type", "unexpected 'type': only TUN takes options"),
    ("lvs_method TUN type gue", "gue", "tunnel type gue needs 'port N'"),
    ("lvs_method TUN type gre remcsum", "lvs_method",
     "tunnel type gre does not support remcsum"),
    ("lvs_method TUN csum", "lvs_method", "checksum option 'csum' needs tunnel type gue or gre"),
    ("protocol ICMP", "ICMP", "unknown protocol 'ICMP' (expected one of: TCP, UDP, SCTP)"),
    ("persistence_timeout 0", "0", "persistence_timeout 0 is out of range (1-4294967295)"),
    ("persistence_granularity 255.0.255.0", "255.0.255.0",
     "persistence_granularity '255.0.255.0' is not a netmask with contiguous bits "
     "(e.g. 255.255.255.0)"),
    ("persistence_granularity 0.0.0.255", "0.0.0.255",
     "persistence_granularity '0.0.0.255' is not a netmask with contiguous bits "
     "(e.g. 255.255.255.0)"),
    ("persistence_granularity 24", "24",
     "persistence_granularity of an inet service must be a netmask such as 255.255.255.0"),
    ("quorum 0", "0", "quorum 0 is out of range (1-4294967295)"),
    ("hysteresis -1", "-1", "hysteresis -1 is out of range (0-4294967295)"),
    ("weight 70000", "70000", "weight 70000 is out of range (0-65535)"),
    ("sorry_server 192.0.2.300", "192.0.2.300",
     "'192.0.2.300' is not a valid IP sorry server address"),
    ("ip_family inet4", "inet4", "unknown address family 'inet4' (expected one of: inet, "
                                 "inet6)"),
    ("alpha maybe", "maybe", "'alpha' expects on/off, true/false or yes/no, not 'maybe'"),
    ("quorum_up", "quorum_up", "'quorum_up' needs an argument"),
])
def test_bad_values_are_errors_at_the_value(line: str, needle: str, message: str) -> None:
    text = with_line(line)
    vs, diag = vs_only(text)
    assert vs is not None  # the rest of the service still loads
    assert problems(diag) == [(at_in(text, line, needle), message)]
    assert all(p.severity is Severity.ERROR for p in diag.problems)


def test_unknown_keywords_are_warnings_with_a_hint() -> None:
    text = with_line("delay_lop 5", "wieght 3")
    vs, diag = vs_only(text)
    assert vs is not None and vs.real_servers[0].weight == 1
    assert problems(diag, Severity.WARNING) == [
        (at(text, "delay_lop"),
         "unknown keyword 'delay_lop' in virtual_server (did you mean 'delay_loop'?); ignored"),
        (at(text, "wieght"),
         "unknown keyword 'wieght' in real_server (did you mean 'weight'?); ignored"),
    ]
    assert not diag.failed


@pytest.mark.parametrize(("header", "needle", "message"), [
    ("virtual_server 192.0.2.256 80", "192.0.2.256",
     "'192.0.2.256' is not a valid IP virtual server address"),
    ("virtual_server 192.0.2.1 65536", "65536", "port 65536 is out of range (0-65535)"),
    ("virtual_server fwmark x", "x", "fwmark 'x' is not a whole number"),
    ("virtual_server fwmark", "fwmark", "'virtual_server fwmark' needs a number"),
])
def test_a_bad_service_header_skips_the_service(header: str, needle: str,
                                                message: str) -> None:
    text = f"{header} {{\n real_server 192.0.2.11 80\n}}\n"
    vs, diag = vs_only(text)
    assert vs is None
    assert problems(diag) == [(at(text, needle), message)]


def test_a_bad_real_server_is_left_out() -> None:
    text = with_line("real_server 192.0.2.1111 80 {\n}")
    vs, diag = vs_only(text)
    assert vs is not None and [str(rs.address) for rs in vs.real_servers] == ["192.0.2.11"]
    assert problems(diag) == [(at(text, "192.0.2.1111"),
                               "'192.0.2.1111' is not a valid IP real server address")]


# ------------------------------------------------------------------ validation


SERVICE = """
    virtual_server 192.0.2.1 80 {{
        protocol TCP
        {vs}
        real_server 192.0.2.11 {port} {{
            {rs}
        }}
        real_server 192.0.2.12 80 {{
        }}
    }}
"""


def check(vs: str = "", rs: str = "", port: int = 80) -> tuple[str, Diagnostics]:
    text = SERVICE.format(vs=vs, rs=rs, port=port)
    _, diag = load(text)
    return text, diag


def test_a_sound_service_has_no_problem() -> None:
    _, diag = check("lvs_sched wrr\n quorum 2\n hysteresis 1\n lvs_method DR", "weight 1")
    assert not diag.problems, [str(p) for p in diag.problems]


@pytest.mark.parametrize(("vs", "rs", "phrase", "message"), [
    ("lvs_sched fastest", "", "lvs_sched fastest",
     "unknown scheduler 'fastest' (expected one of: dh, fo, lblc, lblcr, lc, mh, nq, ovf, "
     "rr, sed, sh, twos, wlc, wrr)"),
    ("quorum 5", "weight 3", "quorum 5",
     "quorum 5 can never be reached: the real servers' weights add up to 4"),
    ("quorum 2\n hysteresis 7", "", "hysteresis 7", "hysteresis 7 must be below quorum 2"),
    ("hysteresis 1", "", "hysteresis 1", "hysteresis 1 must be below quorum 1"),
])
def test_service_errors_are_at_the_value(vs: str, rs: str, phrase: str, message: str) -> None:
    text, diag = check(vs, rs)
    assert problems(diag, Severity.ERROR) == [(value_at(text, phrase), message)]


def test_granularity_netmask_on_an_ipv6_fwmark_service_is_an_error() -> None:
    text = """
        virtual_server fwmark 3 {
            ip_family inet6
            persistence_granularity 255.255.255.0
            real_server 2001:db8::11
        }
    """
    _, diag = load(text)
    assert problems(diag) == [(at(text, "255.255.255.0"), "persistence_granularity of an "
                                                          "inet6 service must be a prefix "
                                                          "length (1-128)")]


def test_ip_family_against_the_service_address_is_ignored_with_a_warning() -> None:
    text, diag = check("ip_family inet6")
    assert problems(diag) == [(at(text, "inet6"), "ip_family inet6 does not match the "
                                                  "service address 192.0.2.1; ignored")]


def test_sorry_server_of_another_family_is_an_error() -> None:
    text, diag = check("sorry_server 2001:db8::250 80")
    assert problems(diag) == [(at(text, "sorry_server"),
                               "sorry server 2001:db8::250 is not inet like its virtual "
                               "server; only TUN forwarding can cross address families")]


def test_real_servers_across_families_need_tun() -> None:
    text = """
        virtual_server 192.0.2.1 80 {
            protocol TCP
            real_server 2001:db8::11 80 {
            }
            real_server 2001:db8::12 80 {
                lvs_method TUN
            }
        }
    """
    _, diag = load(text)
    assert problems(diag) == [(at(text, "real_server"),
                               "real server 2001:db8::11 is not inet like its virtual server; "
                               "only TUN forwarding can cross address families "
                               "(NAT cannot)")]


def test_duplicate_services_and_real_servers() -> None:
    text = """
        virtual_server 192.0.2.1 80 {
            protocol TCP
            real_server 192.0.2.11 80
            real_server 192.0.2.11
        }
        virtual_server 192.0.2.1 80 {
            protocol TCP
            real_server 192.0.2.11 80
        }
        virtual_server 192.0.2.1 80 {
            protocol UDP
            real_server 192.0.2.11 80
        }
    """
    _, diag = load(text)
    assert problems(diag) == [
        (at(text, "real_server", 2),
         f"real server 192.0.2.11 port 80 is already in this virtual server at "
         f"{at(text, 'real_server', 1)}"),
        (at(text, "virtual_server", 2),
         f"virtual server [192.0.2.1]:TCP:80 is already defined at "
         f"{at(text, 'virtual_server', 1)}"),
    ]


def test_groups_are_checked() -> None:
    text = """
        virtual_server group NOPE {
            real_server 192.0.2.11 80
        }
        virtual_server_group G {
            192.0.2.1-3
            fwmark 4
        }
        virtual_server group G {
            protocol TCP
            lvs_method DR
            real_server 192.0.2.11 80
        }
        virtual_server_group G {
            192.0.2.9 80
        }
    """
    _, diag = load(text)
    assert problems(diag) == [
        (at(text, "virtual_server_group", 2),
         f"virtual_server_group G is already defined at {at(text, 'virtual_server_group')}"),
        (at(text, "NOPE"), "unknown virtual_server_group 'NOPE'"),
        (at(text, "192.0.2.1-3"),
         f"group G entry has no port, but virtual server at "
         f"{at(text, 'virtual_server group G')} "
         "is not persistent (set persistence_timeout)"),
        (at(text, "80", 2),
         "real server port 80 is ignored for a fwmark service with DR"),
    ]


@pytest.mark.parametrize(("vs", "rs", "port", "where", "message"), [
    ("lvs_sched rr\n mh-port", "", 80, "mh-port",
     "mh-port only applies to the mh scheduler, not rr; ignored"),
    ("ops", "", 80, "ops", "one-packet scheduling (ops) needs protocol UDP; ignored"),
    ("lvs_method DR", "", 81, "81",
     "real server port 81 differs from the service's port 80; DR forwards to the "
     "service's port"),
    ("", "uthreshold 10\n lthreshold 20", 80, "20", "lthreshold 20 is above uthreshold 10"),
])
def test_settings_keepalived_ignores_are_warnings(vs: str, rs: str, port: int, where: str,
                                                  message: str) -> None:
    text, diag = check(vs, rs, port)
    assert problems(diag) == [(at(text, where), message)]
    assert not diag.failed


def test_service_without_port_must_be_persistent() -> None:
    text = """
        virtual_server 192.0.2.1 0 {
            protocol TCP
            real_server 192.0.2.11
        }
        virtual_server 192.0.2.2 {
            protocol TCP
            persistence_timeout 60
            real_server 192.0.2.11
        }
    """
    _, diag = load(text)
    assert problems(diag) == [(at(text, "virtual_server"),
                               "virtual server 192.0.2.1 has no port: a service on all ports "
                               "must be persistent (set persistence_timeout)")]


def test_missing_protocol_and_empty_service_are_warnings() -> None:
    text = """
        virtual_server 192.0.2.1 80 {
            real_server 192.0.2.11 80
        }
        virtual_server fwmark 3 {
        }
    """
    _, diag = load(text)
    assert problems(diag) == [
        (at(text, "virtual_server"), "virtual server 192.0.2.1 80 has no protocol; "
                                     "keepalived defaults to UDP (set 'protocol TCP' if "
                                     "meant)"),
        (at(text, "virtual_server", 2), "virtual server FWM 3 has no real servers "
                                        "(keepalived ignores it)"),
    ]
    assert not diag.failed


def test_granularity_is_checked_against_the_family_of_fwmark_services() -> None:
    text = """
        virtual_server fwmark 3 {
            persistence_granularity 64
            real_server 192.0.2.11
        }
    """
    _, diag = load(text)
    assert problems(diag) == [(at(text, "64"), "persistence_granularity /64 is not valid for "
                                               "an inet service (1-32)")]


def test_fwmark_service_family_follows_its_real_servers() -> None:
    text = """
        virtual_server fwmark 3 {
            real_server 2001:db8::11 {
            }
            real_server 2001:db8::12
            real_server 192.0.2.11 {
                lvs_method TUN
            }
        }
    """
    _, diag = load(text)
    assert not diag.problems, [str(p) for p in diag.problems]


def test_validation_of_hand_made_configs() -> None:
    """A Config from elsewhere (YAML) has no field origins: problems fall back to the
    statement's origin, and impossible combinations are caught."""
    bad = VirtualServer(address=IPv4Address("192.0.2.1"), port=80, fwmark=3,
                        origin="y.yaml:3:5")
    unreachable = VirtualServer(address=IPv4Address("192.0.2.2"), port=80,
                                protocol=Protocol.TCP, quorum=3, origin="y.yaml:9:5",
                                real_servers=(RealServer(address=IPv4Address("192.0.2.11"),
                                                         port=80, weight=2),))
    diag = Diagnostics()
    validate_lvs(Config(virtual_servers=(bad, unreachable)), diag)
    assert problems(diag) == [
        ("y.yaml:3:5", "a virtual server needs exactly one of an address, a fwmark or a "
                       "group"),
        ("y.yaml:9:5", "quorum 3 can never be reached: the real servers' weights add up "
                       "to 2"),
    ]


@pytest.mark.parametrize("method", ["DR", "TUN"])
def test_a_real_server_port_only_nat_can_map_is_reset_to_the_service_port(method: str) -> None:
    text = f"""
        virtual_server 192.0.2.1 80 {{
            lvs_method {method}
            protocol TCP
            real_server 192.0.2.11 8080 {{
                TCP_CHECK {{
                }}
            }}
        }}
        """
    config, diag = load(text)
    real = config.virtual_servers[0].real_servers[0]
    assert (real.port, real.checkers[0].connect_port) == (80, 80)
    assert problems(diag, Severity.WARNING) == [(
        value_at(text, "real_server 192.0.2.11 8080"),
        f"real server port 8080 differs from the service's port 80; {method} forwards to the "
        "service's port")]


def test_nat_keeps_a_different_real_server_port() -> None:
    config, diag = load("""
        virtual_server 192.0.2.1 80 {
            lvs_method NAT
            protocol TCP
            real_server 192.0.2.11 8080 {
            }
        }
        """)
    assert config.virtual_servers[0].real_servers[0].port == 8080
    assert not diag.problems


# ------------------------------------------------------------------ slow_start (ours)


def test_slow_start_is_a_virtual_server_setting_in_seconds() -> None:
    assert vs_ok(with_line("")).slow_start == 0.0
    assert vs_ok(with_line("slow_start 30")).slow_start == 30.0
    assert vs_ok(with_line("slow_start 2.5")).slow_start == 2.5


def test_a_negative_slow_start_is_an_error_at_the_value() -> None:
    text = with_line("slow_start -1")
    vs, diag = vs_only(text)
    assert vs is not None and vs.slow_start == 0.0
    assert problems(diag) == [(value_at(text, "slow_start -1"),
                               "slow_start -1 is out of range (0-1000000000.0)")]


def test_slow_start_in_a_real_server_is_ignored_with_a_warning() -> None:
    text = with_line("slow_start 10", "slow_start 5")
    vs, diag = vs_only(text)
    assert vs is not None and vs.slow_start == 10.0
    assert problems(diag, Severity.WARNING) == [
        (at(text, "slow_start 5"), "slow_start is a virtual_server setting (it applies to "
                                   "all its real servers); ignored in a real_server")]


def test_slow_start_passes_strict_validation() -> None:
    _, diag = load(with_line("slow_start 60"))
    assert diag.problems == []
