"""Health checker blocks of keepalived.conf -> `checkers.spec` objects."""

from __future__ import annotations

import dataclasses
import glob
import subprocess
import sys
import textwrap
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from config_helpers import FILE, errors, warnings, where

from checkers.spec import (
    CHECKER_CLASSES,
    BfdCheck,
    CheckDefaults,
    DnsCheck,
    DnsType,
    FileCheck,
    HttpGetCheck,
    HttpProtocol,
    MiscCheck,
    PingCheck,
    RegexOption,
    SmtpCheck,
    SslGetCheck,
    StatusRange,
    Target,
    TcpCheck,
    UdpCheck,
    Url,
    resolved_timing,
)
from director.config.build_checkers import CHECKER_KEYWORDS, build_checker
from director.config.errors import Diagnostics
from director.config.reader import read_text
from director.config.tree import Node, Word

RS = IPv4Address("192.0.2.10")


def build(text: str, defaults: CheckDefaults | None = None, address=RS, port: int = 80,
          strict: bool = False):
    """Build the single checker block in ``text``; return (checker, diagnostics)."""
    diag = Diagnostics(strict=strict)
    nodes = read_text(textwrap.dedent(text).strip("\n"), FILE, diag)
    assert not diag.problems, diag.problems  # the text itself must read cleanly
    assert len(nodes) == 1
    checker = build_checker(nodes[0], diag, defaults or CheckDefaults(), address, port)
    return checker, diag


def ok(text: str, **kw):
    checker, diag = build(text, **kw)
    assert not diag.problems, [str(p) for p in diag.problems]
    assert checker is not None
    return checker


def only_error(diag: Diagnostics, origin: str, *words: str) -> None:
    assert len(diag.errors) == 1, [str(p) for p in diag.problems]
    problem = diag.errors[0]
    assert problem.origin == origin, str(problem)
    for word in words:
        assert word in problem.message, str(problem)


def only_warning(diag: Diagnostics, origin: str, *words: str) -> None:
    assert not diag.errors, [str(p) for p in diag.problems]
    assert len(diag.warnings) == 1, [str(p) for p in diag.problems]
    problem = diag.warnings[0]
    assert problem.origin == origin, str(problem)
    for word in words:
        assert word in problem.message, str(problem)


MINIMAL = {
    "TCP_CHECK": "TCP_CHECK {\n}",
    "PING_CHECK": "PING_CHECK {\n}",
    "HTTP_GET": "HTTP_GET {\n  url {\n    path /\n  }\n}",
    "SSL_GET": "SSL_GET {\n  url {\n    path /\n  }\n}",
    "MISC_CHECK": "MISC_CHECK {\n  misc_path /bin/true\n}",
    "SMTP_CHECK": "SMTP_CHECK {\n}",
    "DNS_CHECK": "DNS_CHECK {\n}",
    "UDP_CHECK": "UDP_CHECK {\n}",
    "FILE_CHECK": "FILE_CHECK {\n  track_file health\n}",
    "BFD_CHECK": "BFD_CHECK {\n  name bfd1\n}",
}


# ------------------------------------------------------------------ the model

def test_checker_keywords_are_the_ten_kinds():
    kinds = {"TCP_CHECK", "HTTP_GET", "SSL_GET", "MISC_CHECK", "SMTP_CHECK", "DNS_CHECK",
             "UDP_CHECK", "PING_CHECK", "FILE_CHECK", "BFD_CHECK"}
    assert kinds == CHECKER_KEYWORDS
    assert set(CHECKER_CLASSES) == CHECKER_KEYWORDS


@pytest.mark.parametrize("kind", sorted(CHECKER_CLASSES))
def test_every_class_follows_the_model_conventions(kind):
    cls = CHECKER_CLASSES[kind]
    plain = cls()
    assert plain.kind == kind
    assert cls.__dataclass_params__.frozen
    assert all(f.kw_only for f in dataclasses.fields(cls))
    assert "__slots__" in cls.__dict__
    with pytest.raises(dataclasses.FrozenInstanceError):
        plain.kind = "x"  # type: ignore[misc]
    origin = next(f for f in dataclasses.fields(cls) if f.name == "origin")
    assert origin.compare is False and origin.repr is False
    assert cls(origin="a:1:1") == cls(origin="b:2:2")


def test_class_defaults_are_keepalived_defaults():
    assert TcpCheck().retry == 1 and TcpCheck().delay_before_retry == 1.0
    assert HttpGetCheck().delay_before_retry == 3.0 and SslGetCheck().delay_before_retry == 3.0
    assert MiscCheck().retry == 0
    assert DnsCheck().retry == 3 and DnsCheck().delay_before_retry == DnsCheck().delay_loop
    assert TcpCheck().delay_loop == 60.0 and TcpCheck().connect_timeout == 5.0
    assert TcpCheck().warmup == TcpCheck().delay_loop
    assert HttpGetCheck().http_protocol is HttpProtocol.HTTP_1_0
    assert Url().status_code == (StatusRange(low=200, high=299),)
    assert DnsCheck().type is DnsType.SOA and DnsCheck().name == "."
    assert SmtpCheck().helo_name == "smtpchecker.keepalived.org"
    assert UdpCheck().min_reply_length == 0 and UdpCheck().max_reply_length == 255
    assert SslGetCheck().verify_cert is False and SslGetCheck().enable_sni is False


def test_checkers_spec_does_not_import_director():
    code = ("import sys, checkers.spec; "
            "sys.exit(any(m == 'director' or m.startswith('director.') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_url_accepts_status_in_any_range():
    url = Url(status_code=(StatusRange(low=200, high=204), StatusRange(low=302, high=302)))
    assert url.accepts_status(204) and url.accepts_status(302)
    assert not url.accepts_status(205) and not url.accepts_status(301)


def test_smtp_targets_fall_back_to_own_connection():
    own = SmtpCheck(connect_ip=RS, connect_port=25)
    assert own.targets == (Target(address=RS, port=25),)


def test_resolved_timing_order_checker_then_server_then_kind():
    defaults = CheckDefaults(delay_loop=10.0, retry=None, delay_before_retry=None)
    assert resolved_timing("DNS_CHECK", defaults) == {
        "delay_loop": 10.0, "retry": 3, "delay_before_retry": 10.0, "warmup": 10.0,
        "alpha": False, "connect_timeout": 5.0}
    timing = resolved_timing("HTTP_GET", CheckDefaults(retry=5), retry=2, delay_loop=4.0)
    assert timing["retry"] == 2 and timing["delay_before_retry"] == 3.0
    assert timing["warmup"] == 4.0


# ------------------------------------------------------------------ defaults and inheritance

RETRY = {"TCP_CHECK": 1, "PING_CHECK": 1, "HTTP_GET": 1, "SSL_GET": 1, "MISC_CHECK": 0,
         "SMTP_CHECK": 1, "DNS_CHECK": 3, "UDP_CHECK": 1}
DELAY_BEFORE_RETRY = {"HTTP_GET": 3.0, "SSL_GET": 3.0, "DNS_CHECK": 60.0}


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_minimal_block_builds_with_keepalived_defaults(kind):
    checker = ok(MINIMAL[kind], port=0 if kind not in RETRY or kind == "PING_CHECK" else 80)
    assert type(checker) is CHECKER_CLASSES[kind]
    assert checker.origin == f"{FILE}:1:1"
    if kind in RETRY:
        assert checker.delay_loop == 60.0
        assert checker.retry == RETRY[kind]
        assert checker.delay_before_retry == DELAY_BEFORE_RETRY.get(kind, 1.0)
        assert checker.warmup == 60.0
        assert checker.alpha is False
        assert checker.log_all_failures is None
    if kind in RETRY and kind != "MISC_CHECK":
        assert checker.connect_timeout == 5.0
        assert checker.connect_ip == RS
        assert checker.target.address == RS


@pytest.mark.parametrize("kind", sorted(RETRY))
def test_server_settings_are_inherited(kind):
    defaults = CheckDefaults(delay_loop=10.0, connect_timeout=2.0, retry=4,
                             delay_before_retry=7.0, warmup=False, alpha=True)
    checker = ok(MINIMAL[kind], defaults=defaults)
    assert (checker.delay_loop, checker.retry, checker.delay_before_retry) == (10.0, 4, 7.0)
    assert checker.warmup == 0.0 and checker.alpha is True
    if kind != "MISC_CHECK":
        assert checker.connect_timeout == 2.0


@pytest.mark.parametrize("kind", sorted(RETRY))
def test_checker_settings_override_server_settings(kind):
    body = ("  delay_loop 12.5\n  retry 6\n  delay_before_retry 0.5\n  warmup 4\n"
            "  alpha off\n  log_all_failures\n")
    text = MINIMAL[kind].replace("{\n", "{\n" + body, 1)
    if kind != "MISC_CHECK":
        text = text.replace("{\n", "{\n  connect_timeout 1.5\n", 1)
    defaults = CheckDefaults(delay_loop=10.0, connect_timeout=2.0, retry=4,
                             delay_before_retry=7.0, warmup=False, alpha=True)
    checker = ok(text, defaults=defaults)
    assert (checker.delay_loop, checker.retry, checker.delay_before_retry) == (12.5, 6, 0.5)
    assert checker.warmup == 4.0 and checker.alpha is False and checker.log_all_failures is True
    if kind != "MISC_CHECK":
        assert checker.connect_timeout == 1.5


def test_kind_default_retry_applies_when_servers_set_none():
    # retry unset on the servers: each kind keeps its own default
    assert ok(MINIMAL["DNS_CHECK"], defaults=CheckDefaults(delay_loop=9)).retry == 3
    assert ok(MINIMAL["MISC_CHECK"], defaults=CheckDefaults(retry=None)).retry == 0


def test_dns_delay_before_retry_follows_its_own_delay_loop():
    checker = ok("DNS_CHECK {\n  delay_loop 20\n}")
    assert checker.delay_before_retry == 20.0 and checker.warmup == 20.0
    assert ok("DNS_CHECK {\n}", defaults=CheckDefaults(delay_loop=7)).delay_before_retry == 7.0


def test_warmup_zero_disables_the_random_start():
    assert ok("TCP_CHECK {\n  warmup 0\n}").warmup == 0.0


def test_bfd_alpha_is_inherited_and_can_be_set():
    assert ok(MINIMAL["BFD_CHECK"], defaults=CheckDefaults(alpha=True)).alpha is True
    assert ok("BFD_CHECK {\n  name b\n  alpha\n}").alpha is True


def test_checker_without_block_is_a_default_checker():
    checker = ok("TCP_CHECK")
    assert checker == TcpCheck(connect_ip=RS, connect_port=80)


# ------------------------------------------------------------------ connection options

def test_connection_options():
    checker = ok("""
        TCP_CHECK {
            connect_ip 198.51.100.7
            connect_port 8080
            bindto 198.51.100.1
            bind_port 40000
            bind_if eth1
            connect_timeout 2.5
            fwmark 0x10
        }""")
    assert checker.connect_ip == IPv4Address("198.51.100.7")
    assert checker.connect_port == 8080
    assert checker.bindto == IPv4Address("198.51.100.1")
    assert checker.bind_port == 40000 and checker.bind_if == "eth1"
    assert checker.connect_timeout == 2.5 and checker.fwmark == 16
    assert checker.target == Target(address=IPv4Address("198.51.100.7"), port=8080)


def test_ipv6_link_local_needs_bind_if():
    text = "TCP_CHECK {\n  connect_ip fe80::1\n}"
    checker, diag = build(text)
    only_error(diag, where(text, "fe80::1"), "link-local", "bind_if")
    assert checker is None
    checker = ok("TCP_CHECK {\n  connect_ip fe80::1\n  bind_if eth0\n}")
    assert checker.connect_ip == IPv6Address("fe80::1")


def test_bindto_must_match_the_connect_family():
    text = "TCP_CHECK {\n  connect_ip 2001:db8::5\n  bindto 192.0.2.1\n}"
    checker, diag = build(text)
    only_error(diag, where(text, "192.0.2.1"), "family")
    assert checker is None


def test_port_is_needed_where_the_kind_connects_to_one():
    text = "TCP_CHECK {\n  connect_timeout 3\n}"
    checker, diag = build(text, port=0)
    only_error(diag, f"{FILE}:1:1", "TCP_CHECK", "connect_port")
    assert checker is None
    assert ok("TCP_CHECK {\n  connect_port 81\n}", port=0).connect_port == 81
    assert ok("PING_CHECK {\n}", port=0).connect_port == 0


def test_real_server_in_ipv6():
    checker = ok("HTTP_GET {\n  url {\n    path /\n  }\n}", address=ip_address("2001:db8::10"))
    assert checker.connect_ip == IPv6Address("2001:db8::10")


# ------------------------------------------------------------------ HTTP_GET / SSL_GET

HTTP_FULL = """
    HTTP_GET {
        http_protocol 1.1
        virtualhost www.example.test
        fast_recovery
        max_body_size 65536
        url {
            path /health?full=1
            digest 9B3A0C85A887A256D6939DA88AABD8CD
            status_code 200 301-302
            status_code 404
            virtualhost api.example.test
            regex "^OK [0-9]+"
            regex_no_match
            regex_options caseless multiline
            regex_stack 32768 524288
            regex_min_offset 2
            regex_max_offset 100
        }
        url {
            path /second
        }
    }"""


def test_http_get_every_option():
    checker = ok(HTTP_FULL)
    assert isinstance(checker, HttpGetCheck)
    assert checker.http_protocol is HttpProtocol.HTTP_1_1
    assert checker.virtualhost == "www.example.test"
    assert checker.fast_recovery is True and checker.max_body_size == 65536
    first, second = checker.urls
    assert first.path == "/health?full=1"
    assert first.digest == "9b3a0c85a887a256d6939da88aabd8cd"
    assert first.status_code == (StatusRange(low=200, high=200), StatusRange(low=301, high=302),
                                 StatusRange(low=404, high=404))
    assert first.accepts_status(302) and not first.accepts_status(204)
    assert first.virtualhost == "api.example.test"
    assert first.regex == "^OK [0-9]+" and first.regex_no_match is True
    assert first.regex_options == (RegexOption.CASELESS, RegexOption.MULTILINE)
    assert (first.regex_stack_start, first.regex_stack_max) == (32768, 524288)
    assert (first.regex_min_offset, first.regex_max_offset) == (2, 100)
    assert first.origin == where(HTTP_FULL, "url")
    assert second == Url(path="/second")
    assert second.status_code == (StatusRange(low=200, high=299),)


@pytest.mark.parametrize(("word", "protocol"), [("1.0", HttpProtocol.HTTP_1_0),
                                                ("1.0C", HttpProtocol.HTTP_1_0C),
                                                ("1.0c", HttpProtocol.HTTP_1_0C),
                                                ("1.1", HttpProtocol.HTTP_1_1)])
def test_http_protocol_versions(word, protocol):
    text = f"HTTP_GET {{\n  http_protocol {word}\n  url {{\n    path /\n  }}\n}}"
    assert ok(text).http_protocol is protocol


def test_ssl_get_options():
    checker = ok("""
        SSL_GET {
            enable_sni
            verify_cert on
            ca_file /etc/ssl/test-ca.pem
            url {
                path /
            }
        }""")
    assert isinstance(checker, SslGetCheck)
    assert checker.enable_sni and checker.verify_cert
    assert checker.ca_file == "/etc/ssl/test-ca.pem" and checker.sni_name is None


def test_ssl_sni_name_turns_sni_on():
    checker = ok("SSL_GET {\n  sni_name tls.example.test\n  url {\n    path /\n  }\n}")
    assert checker.sni_name == "tls.example.test" and checker.enable_sni is True


def test_ssl_ca_file_without_verification_is_questioned():
    text = "SSL_GET {\n  ca_file /x.pem\n  url {\n    path /\n  }\n}"
    checker, diag = build(text)
    only_warning(diag, f"{FILE}:1:1", "ca_file", "verify_cert")
    assert checker.verify_cert is False


def test_ssl_only_options_are_not_http_get_options():
    text = "HTTP_GET {\n  enable_sni\n  url {\n    path /\n  }\n}"
    checker, diag = build(text)
    only_warning(diag, where(text, "enable_sni"), "not an option of HTTP_GET")
    assert isinstance(checker, HttpGetCheck)


def test_http_get_without_url_is_left_out():
    text = "HTTP_GET {\n  connect_timeout 3\n}"
    checker, diag = build(text)
    only_error(diag, f"{FILE}:1:1", "no url")
    assert checker is None


def test_url_without_path_is_left_out():
    text = "HTTP_GET {\n  url {\n    digest 00000000000000000000000000000000\n  }\n" \
           "  url {\n    path /ok\n  }\n}"
    checker, diag = build(text)
    only_error(diag, f"{FILE}:2:3", "no path")
    assert [u.path for u in checker.urls] == ["/ok"]


def test_url_needs_a_block():
    text = "HTTP_GET {\n  url /x\n  url {\n    path /\n  }\n}"
    checker, diag = build(text)
    only_error(diag, f"{FILE}:2:3", "needs a block")
    assert len(checker.urls) == 1


@pytest.mark.parametrize("code", ["99", "600", "abc", "200-", "2xx", "-1"])
def test_bad_status_codes(code):
    text = f"HTTP_GET {{\n  url {{\n    path /\n    status_code 200 {code}\n  }}\n}}"
    checker, diag = build(text)
    only_error(diag, f"{FILE}:4:21", code)
    assert checker.urls[0].status_code == (StatusRange(low=200, high=200),)


def test_reversed_status_range():
    text = "HTTP_GET {\n  url {\n    path /\n    status_code 299-200\n  }\n}"
    checker, diag = build(text)
    only_error(diag, f"{FILE}:4:17", "reversed")
    assert checker.urls[0].status_code == (StatusRange(low=200, high=299),)


@pytest.mark.parametrize("digest", ["9b3a0c85a887a256d6939da88aabd8c",   # 31
                                    "9b3a0c85a887a256d6939da88aabd8cd0",  # 33
                                    "9b3a0c85a887a256d6939da88aabd8cg"])  # not hex
def test_digest_must_be_md5_hex(digest):
    text = f"HTTP_GET {{\n  url {{\n    path /\n    digest {digest}\n  }}\n}}"
    checker, diag = build(text)
    only_error(diag, f"{FILE}:4:12", "MD5")
    assert checker.urls[0].digest is None


def test_second_digest_keeps_the_first():
    text = ("HTTP_GET {\n  url {\n    path /\n    digest " + "a" * 32 + "\n    digest "
            + "b" * 32 + "\n  }\n}")
    checker, diag = build(text)
    only_error(diag, f"{FILE}:5:12", "second digest")
    assert checker.urls[0].digest == "a" * 32


def test_regex_escapes_are_read_as_keepalived_reads_them():
    # keepalived reads regex as a quoted-escaped string: "\\." is a backslash-dot
    text = 'HTTP_GET {\n  url {\n    path /\n    regex "v1\\\\.2\\tx"\n  }\n}'
    assert ok(text).urls[0].regex == "v1\\.2\tx"


def test_regex_hex_escape_is_decoded_as_keepalived_does():
    text = 'HTTP_GET {\n  url {\n    path /\n    regex "v\\x31\\056x"\n  }\n}'
    assert ok(text).urls[0].regex == "v1.x"


@pytest.mark.parametrize(("pattern", "message"), [
    ('"(unclosed"', "does not compile"),
    ('"(?<word>ok)"', "PCRE2"),  # PCRE2-only syntax is reported, not crashed on
    ('"ok\\"', "regex: a backslash ends the command line"),
    ("a b", "one pattern"),  # unquoted spaces
])
def test_bad_regex_is_an_error_at_the_pattern(pattern: str, message: str):
    text = f"HTTP_GET {{\n  url {{\n    path /\n    regex {pattern}\n  }}\n}}"
    checker, diag = build(text)
    only_error(diag, f"{FILE}:4:11", message)
    assert checker.urls[0].regex is None


def test_regex_options_without_python_equivalent_warn():
    text = ('HTTP_GET {\n  url {\n    path /\n    regex "x"\n'
            "    regex_options ungreedy utf bogus_opt\n  }\n}")
    checker, diag = build(text)
    assert errors(diag) == []
    assert [o for o, _ in warnings(diag)] == [f"{FILE}:5:19", f"{FILE}:5:32"]
    assert "Python" in warnings(diag)[0][1] and "unknown" in warnings(diag)[1][1]
    assert checker.urls[0].regex_options == (RegexOption.UNGREEDY, RegexOption.UTF)


def test_regex_settings_without_regex_are_dropped():
    text = "HTTP_GET {\n  url {\n    path /\n    regex_no_match\n  }\n}"
    checker, diag = build(text)
    only_warning(diag, f"{FILE}:4:5", "without a regex")
    assert checker.urls[0].regex_no_match is False


def test_regex_offsets_must_be_ordered():
    text = ('HTTP_GET {\n  url {\n    path /\n    regex "x"\n    regex_min_offset 50\n'
            "    regex_max_offset 10\n  }\n}")
    checker, diag = build(text)
    only_error(diag, f"{FILE}:5:22", "regex_min_offset")
    assert checker.urls[0].regex_min_offset == 0


def test_regex_stack_start_above_max():
    text = ('HTTP_GET {\n  url {\n    path /\n    regex "x"\n    regex_stack 9 8\n  }\n}')
    checker, diag = build(text)
    only_error(diag, f"{FILE}:5:17", "regex_stack")
    assert checker.urls[0].regex_stack_start is None


# ------------------------------------------------------------------ MISC_CHECK

def test_misc_check_every_option():
    checker = ok("""
        MISC_CHECK {
            misc_path "/usr/local/bin/check.sh --host 'a b' x\\\\y"
            misc_timeout 7
            misc_dynamic
            user nobody nogroup
        }""")
    assert isinstance(checker, MiscCheck)
    assert checker.misc_path == ("/usr/local/bin/check.sh", "--host", "a b", "x\\y")
    assert checker.misc_timeout == 7.0 and checker.misc_dynamic is True
    assert (checker.user, checker.group) == ("nobody", "nogroup")


def test_misc_path_escapes_are_keepalived_s_hex_octal_and_control_forms():
    # keepalived 2.2.7's alloc_strvec_quoted_escaped decodes \xHH, \NNN and \cC
    checker = ok('MISC_CHECK {\n  misc_path "/bin/echo \\x41\\102 \\cA"\n}')
    assert checker.misc_path == ("/bin/echo", "AB", "\x01")


def test_misc_path_unterminated_quote_is_an_error():
    text = "MISC_CHECK {\n  misc_path /bin/check 'a b\n}"
    checker, diag = build(text)
    assert (f"{FILE}:2:13", "misc_path: missing closing '") in errors(diag)
    assert checker is None


def test_misc_user_alone_leaves_group_to_the_user():
    checker = ok("MISC_CHECK {\n  misc_path /bin/true\n  user nobody\n}")
    assert (checker.user, checker.group) == ("nobody", None)


def test_misc_timeout_zero_or_unset_is_the_delay_loop():
    assert ok("MISC_CHECK {\n  misc_path /bin/true\n}").misc_timeout == 60.0
    text = "MISC_CHECK {\n  misc_path /bin/true\n  misc_timeout 0\n  delay_loop 9\n}"
    assert ok(text).misc_timeout == 9.0


def test_misc_path_unquoted_words_follow_keepalived():
    text = "MISC_CHECK {\n  misc_path /bin/check arg1\n}"
    checker, diag = build(text)
    only_warning(diag, where(text, "arg1"), "quote the whole command line")
    assert checker.misc_path == ("/bin/check",)


def test_misc_path_empty_is_an_error():
    text = 'MISC_CHECK {\n  misc_path ""\n}'
    checker, diag = build(text)
    assert (f"{FILE}:2:13", "misc_path is empty") in errors(diag)
    assert checker is None  # and without a program the checker is left out


def test_misc_check_without_path_is_left_out():
    checker, diag = build("MISC_CHECK {\n  misc_dynamic\n}")
    only_error(diag, f"{FILE}:1:1", "misc_path")
    assert checker is None


def test_misc_check_has_no_connection_options():
    text = "MISC_CHECK {\n  misc_path /bin/true\n  connect_port 80\n}"
    checker, diag = build(text)
    only_warning(diag, f"{FILE}:3:3", "not an option of MISC_CHECK")
    assert checker.misc_path == ("/bin/true",)


# ------------------------------------------------------------------ SMTP_CHECK

def test_smtp_check_own_endpoint():
    checker = ok('SMTP_CHECK {\n  helo_name "mail.example.test"\n  connect_timeout 9\n}',
                 port=25)
    assert isinstance(checker, SmtpCheck)
    assert checker.helo_name == "mail.example.test"
    assert [(h.connect_ip, h.connect_port, h.connect_timeout) for h in checker.hosts] == [
        (RS, 25, 9.0)]
    assert checker.targets == (Target(address=RS, port=25),)


SMTP_HOSTS = """
    SMTP_CHECK {
        connect_timeout 10
        bindto 192.0.2.1
        host {
            connect_ip 192.0.2.10
        }
        host {
            connect_ip 198.51.100.20
            connect_port 587
            bindto 198.51.100.1
            connect_timeout 3
        }
    }"""


def test_smtp_host_blocks_are_the_endpoints():
    checker = ok(SMTP_HOSTS, port=25)
    first, second = checker.hosts
    assert (first.connect_ip, first.connect_port, first.bindto, first.connect_timeout) == (
        IPv4Address("192.0.2.10"), 25, IPv4Address("192.0.2.1"), 10.0)
    assert (second.connect_ip, second.connect_port, second.bindto, second.connect_timeout) == (
        IPv4Address("198.51.100.20"), 587, IPv4Address("198.51.100.1"), 3.0)
    assert first.origin == where(SMTP_HOSTS, "host")
    assert checker.connect_ip == first.connect_ip
    assert checker.targets == (Target(address=IPv4Address("192.0.2.10"), port=25),
                               Target(address=IPv4Address("198.51.100.20"), port=587))


def test_smtp_own_connect_ip_is_probed_besides_hosts():
    text = ("SMTP_CHECK {\n  connect_ip 192.0.2.99\n  host {\n    connect_ip 192.0.2.98\n"
            "  }\n}")
    checker = ok(text, port=25)
    assert [h.connect_ip for h in checker.hosts] == [IPv4Address("192.0.2.99"),
                                                      IPv4Address("192.0.2.98")]


def test_smtp_timing_inside_host_applies_to_the_checker():
    text = "SMTP_CHECK {\n  host {\n    retry 5\n  }\n}"
    checker, diag = build(text, port=25)
    only_warning(diag, f"{FILE}:3:5", "whole SMTP_CHECK")
    assert checker.retry == 5


# ------------------------------------------------------------------ DNS / UDP / PING

def test_dns_check_options():
    checker = ok("DNS_CHECK {\n  type aaaa\n  name www.example.test.\n}", port=53)
    assert isinstance(checker, DnsCheck)
    assert checker.type is DnsType.AAAA and checker.name == "www.example.test."


@pytest.mark.parametrize(("line", "col"), [("type SRV", 8), ("name a..b", 8),
                                           ("name " + "x" * 64 + ".test", 8)])
def test_dns_bad_values(line, col):
    checker, diag = build(f"DNS_CHECK {{\n  {line}\n}}", port=53)
    only_error(diag, f"{FILE}:2:{col}")
    assert (checker.type, checker.name) == (DnsType.SOA, ".")


def test_udp_check_options():
    checker = ok("""
        UDP_CHECK {
            payload Ab12f 3 456 546443123
            require_reply 0a0Bxx 3x
            min_reply_length 4
            max_reply_length 512
        }""", port=53)
    assert isinstance(checker, UdpCheck)
    # keepalived.conf(5): "Ab12f 3 456 546443123" is AB 12 0F 03 45 06 54 64 43 12 03
    assert checker.payload == "ab120f034506546443" + "1203"
    assert checker.require_reply is True and checker.require_reply_data == "0a0bxx3x"
    assert (checker.min_reply_length, checker.max_reply_length) == (4, 512)


def test_udp_require_reply_without_data():
    checker = ok("UDP_CHECK {\n  require_reply\n}")
    assert checker.require_reply is True and checker.require_reply_data is None


def test_udp_bad_hex_and_contradictory_lengths():
    text = "UDP_CHECK {\n  payload 12 zz\n  min_reply_length 9\n  max_reply_length 8\n}"
    checker, diag = build(text)
    assert errors(diag) == [(f"{FILE}:2:14", "payload: 'zz' is not hex data")]
    assert [o for o, _ in warnings(diag)] == [f"{FILE}:1:1"]
    assert checker.payload is None


def test_ping_check():
    checker = ok("PING_CHECK {\n  retry 4\n  connect_ip 2001:db8::7\n}")
    assert isinstance(checker, PingCheck)
    assert checker.retry == 4 and checker.connect_ip == IPv6Address("2001:db8::7")


# ------------------------------------------------------------------ FILE / BFD

def test_file_check_options():
    checker = ok("FILE_CHECK {\n  track_file app_state\n  weight -10 reverse\n  dynamic\n}")
    assert checker == FileCheck(track_file="app_state", weight=-10, reverse=True, dynamic=True)
    assert ok(MINIMAL["FILE_CHECK"]).weight is None


def test_file_check_without_track_file_is_left_out():
    checker, diag = build("FILE_CHECK {\n  weight 3\n}")
    only_error(diag, f"{FILE}:1:1", "track_file")
    assert checker is None


def test_file_check_has_no_timing_options():
    text = "FILE_CHECK {\n  track_file f\n  delay_loop 3\n}"
    checker, diag = build(text)
    only_warning(diag, f"{FILE}:3:3", "not an option of FILE_CHECK")
    assert checker.track_file == "f"


def test_bfd_check():
    assert ok(MINIMAL["BFD_CHECK"]) == BfdCheck(name="bfd1")
    checker, diag = build("BFD_CHECK {\n}")
    only_error(diag, f"{FILE}:1:1", "name")
    assert checker is None


# ------------------------------------------------------------------ aliases, unknowns, errors

def test_nb_get_retry_is_retry_with_a_deprecation_warning():
    text = "HTTP_GET {\n  nb_get_retry 4\n  url {\n    path /\n  }\n}"
    checker, diag = build(text)
    only_warning(diag, f"{FILE}:2:3", "deprecated", "retry")
    assert checker.retry == 4


def test_unknown_keyword_warns_at_its_place_and_suggests():
    text = "TCP_CHECK {\n  conect_port 81\n  connect_timeout 3\n}"
    checker, diag = build(text)
    only_warning(diag, f"{FILE}:2:3", "unknown keyword 'conect_port'", "connect_port")
    assert checker.connect_timeout == 3.0 and checker.connect_port == 80


def test_warnings_fail_in_strict_mode():
    checker, diag = build("TCP_CHECK {\n  frobnicate\n}", strict=True)
    assert diag.failed and not diag.errors
    assert isinstance(checker, TcpCheck)


def test_checker_arguments_are_ignored_with_a_warning():
    checker, diag = build("TCP_CHECK extra {\n}")
    only_warning(diag, f"{FILE}:1:11", "no arguments")
    assert isinstance(checker, TcpCheck)


def test_value_keyword_with_block_warns():
    checker, diag = build("TCP_CHECK {\n  connect_port 81 {\n  }\n}")
    only_warning(diag, f"{FILE}:2:3", "no block")
    assert checker.connect_port == 81


@pytest.mark.parametrize(("line", "col", "words"), [
    ("connect_port 70000", 16, ("port", "70000")),
    ("connect_port 0", 16, ("port",)),
    ("connect_port http", 16, ("http",)),
    ("bind_port 65536", 13, ("port",)),
    ("connect_ip 192.0.2.300", 14, ("192.0.2.300",)),
    ("bindto nowhere", 10, ("nowhere",)),
    ("bind_if this-name-is-too-long", 11, ("interface",)),
    ("connect_timeout 0", 19, ("connect_timeout",)),
    ("connect_timeout -1", 19, ("connect_timeout",)),
    ("delay_loop 0", 14, ("delay_loop",)),
    ("delay_loop soon", 14, ("soon",)),
    ("delay_before_retry -2", 22, ("delay_before_retry",)),
    ("warmup x", 10, ("x",)),
    ("retry -1", 9, ("retry",)),
    ("retry 1.5", 9, ("retry",)),
    ("fwmark 4294967296", 10, ("fwmark",)),
    ("alpha maybe", 9, ("maybe",)),
    ("log_all_failures 2", 20, ("2",)),
])
def test_bad_common_values_are_errors_at_the_value(line, col, words):
    checker, diag = build(f"TCP_CHECK {{\n  {line}\n}}")
    only_error(diag, f"{FILE}:2:{col}", *words)
    assert checker is None or checker.connect_port == 80


def test_missing_value_is_an_error_at_the_keyword():
    checker, diag = build("TCP_CHECK {\n  connect_port\n}")
    only_error(diag, f"{FILE}:2:3", "connect_port")
    assert checker.connect_port == 80


def test_bad_values_do_not_stop_the_rest():
    text = "TCP_CHECK {\n  connect_timeout never\n  connect_port 81\n  retry 3\n}"
    checker, diag = build(text)
    assert len(diag.errors) == 1
    assert (checker.connect_timeout, checker.connect_port, checker.retry) == (5.0, 81, 3)


def test_bad_http_values():
    text = ("HTTP_GET {\n  http_protocol 2.0\n  max_body_size 0\n"
            "  url {\n    path /\n  }\n}")
    checker, diag = build(text)
    assert [o for o, _ in errors(diag)] == [f"{FILE}:2:17", f"{FILE}:3:17"]
    assert checker.http_protocol is HttpProtocol.HTTP_1_0


def test_not_a_checker_keyword():
    diag = Diagnostics()
    node = Node(Word("real_server", "x.conf:3:5"), [], [])
    assert build_checker(node, diag, CheckDefaults(), RS, 80) is None
    assert diag.errors[0].origin == "x.conf:3:5"


def test_hand_built_nodes():
    def w(text, col):
        return Word(text, f"h.conf:7:{col}")
    node = Node(w("TCP_CHECK", 5), [], [Node(w("connect_port", 9), [w("8443", 22)])])
    diag = Diagnostics()
    checker = build_checker(node, diag, CheckDefaults(), IPv4Address("203.0.113.4"), 443)
    assert not diag.problems
    assert checker.target == Target(address=IPv4Address("203.0.113.4"), port=8443)
    assert checker.origin == "h.conf:7:5"


# ------------------------------------------------------------------ keepalived's samples

SAMPLES = sorted(glob.glob("/usr/share/doc/keepalived/samples/keepalived.conf.*"))


def _checker_blocks(nodes, found):
    for node in nodes:
        if node.keyword == "real_server":
            address = ip_address(node.args[0])
            port = int(node.args[1]) if len(node.args) > 1 else 0
            found.extend((c, address, port) for c in node.children or ()
                         if c.keyword in CHECKER_KEYWORDS)
        elif node.children:
            _checker_blocks(node.children, found)
    return found


@pytest.mark.skipif(not SAMPLES, reason="keepalived's sample configs are not installed")
def test_every_checker_in_keepalived_samples_builds_cleanly():
    built = []
    for path in SAMPLES:
        diag = Diagnostics()
        with open(path, encoding="utf-8", errors="replace") as f:
            nodes = read_text(f.read(), path, diag)
        for node, address, port in _checker_blocks(nodes, []):
            checker_diag = Diagnostics()
            checker = build_checker(node, checker_diag, CheckDefaults(), address, port)
            assert not checker_diag.problems, [str(p) for p in checker_diag.problems]
            assert checker is not None and checker.kind == node.keyword
            built.append(checker)
    kinds = {c.kind for c in built}
    assert {"HTTP_GET", "SSL_GET", "TCP_CHECK", "MISC_CHECK", "SMTP_CHECK", "UDP_CHECK",
            "PING_CHECK"} <= kinds
    misc_arg = [c for c in built if c.kind == "MISC_CHECK" and len(c.misc_path) > 1]
    assert misc_arg[0].misc_path == ("/usr/local/bin/script.sh", "arg1", "arg2")
    smtp = [c for c in built if c.kind == "SMTP_CHECK" and len(c.hosts) == 3]
    assert [str(h.connect_ip) for h in smtp[0].hosts] == ["172.16.1.11", "192.168.155.10",
                                                          "64.233.167.99"]


# ------------------------------------------------------------------ rise / fall (our extension)

@pytest.mark.parametrize("kind", sorted(RETRY))
def test_rise_and_fall_default_to_keepalived_behaviour(kind):
    checker = ok(MINIMAL[kind])
    assert checker.rise == 1
    assert checker.fall is None  # the scheduler uses retry + 1


@pytest.mark.parametrize("kind", sorted(RETRY))
def test_rise_and_fall_are_read_in_every_scheduled_checker(kind):
    text = MINIMAL[kind].replace("{\n", "{\n  rise 3\n  fall 2\n", 1)
    checker = ok(text)
    assert (checker.rise, checker.fall) == (3, 2)


@pytest.mark.parametrize(("line", "col"), [("rise 0", 8), ("fall 0", 8), ("rise -1", 8),
                                           ("fall 1.5", 8), ("rise often", 8)])
def test_bad_rise_or_fall_is_an_error_at_the_value(line, col):
    checker, diag = build(f"TCP_CHECK {{\n  {line}\n}}")
    only_error(diag, f"{FILE}:2:{col}", line.split()[1])
    assert (checker.rise, checker.fall) == (1, None)


@pytest.mark.parametrize("kind", ["FILE_CHECK", "BFD_CHECK"])
def test_rise_and_fall_are_not_options_of_unscheduled_checkers(kind):
    text = MINIMAL[kind].replace("{\n", "{\n  rise 2\n", 1)
    checker, diag = build(text)
    assert checker is not None and not diag.errors
    assert len(diag.warnings) == 1 and "rise" in diag.warnings[0].message
