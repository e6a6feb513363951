"""What a health checker is configured to do: one frozen dataclass per checker kind.

The classes mirror the checker blocks of keepalived.conf(5) (keepalived 2.2.7) with
keepalived's defaults; `director.config` builds them from a keepalived.conf or YAML.
A built checker carries *resolved* values: its connect address and port, its timers
and retry counts are filled in from the checker, the real server, the virtual server
and keepalived's per-kind defaults (see `resolved_timing`), so that the code that runs
checks never looks anything up.

Every class has a ``kind`` field whose default names its keepalived block (``TCP_CHECK``,
``HTTP_GET``, ...): a YAML codec rebuilds the right class from it. Durations are seconds.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_DELAY_LOOP = 60.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_SMTP_HELO = "smtpchecker.keepalived.org"
DEFAULT_MAX_BODY_SIZE = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckDefaults:
    """Checker settings inherited from virtual_server, then real_server keywords."""

    delay_loop: float = 60.0
    connect_timeout: float = 5.0
    retry: int | None = None              # None: the kind's default
    delay_before_retry: float | None = None
    warmup: bool = True
    alpha: bool = False


def default_retry(kind: str) -> int:
    """keepalived's retry count when neither checker, real nor virtual server sets one."""
    return {"MISC_CHECK": 0, "DNS_CHECK": 3}.get(kind, 1)


def default_delay_before_retry(kind: str, delay_loop: float) -> float:
    """keepalived's delay_before_retry when nobody sets one (DNS_CHECK: its delay_loop)."""
    if kind in ("HTTP_GET", "SSL_GET"):
        return 3.0
    if kind == "DNS_CHECK":
        return delay_loop
    return 1.0


def resolved_timing(kind: str, defaults: CheckDefaults, *, delay_loop: float | None = None,
                    retry: int | None = None, delay_before_retry: float | None = None,
                    warmup: float | None = None, alpha: bool | None = None,
                    connect_timeout: float | None = None) -> dict[str, float | int | bool]:
    """The timing fields of a checker of ``kind``: what the checker block set (the
    keyword arguments; None where it set nothing), else what the real/virtual server set
    (``defaults``), else keepalived's default for the kind.

    Warmup is the upper bound of the random delay before the first check: the
    checker's own value, else its delay_loop (0 when the server turned warmup off).
    """
    loop = delay_loop if delay_loop is not None else defaults.delay_loop
    if retry is None:
        retry = defaults.retry if defaults.retry is not None else default_retry(kind)
    if delay_before_retry is None:
        delay_before_retry = (defaults.delay_before_retry
                              if defaults.delay_before_retry is not None
                              else default_delay_before_retry(kind, loop))
    if warmup is None:
        warmup = loop if defaults.warmup else 0.0
    return {
        "delay_loop": loop,
        "retry": retry,
        "delay_before_retry": delay_before_retry,
        "warmup": warmup,
        "alpha": defaults.alpha if alpha is None else alpha,
        "connect_timeout": (defaults.connect_timeout if connect_timeout is None
                            else connect_timeout),
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Where a checker connects: an address and a port (0 when the kind has none)."""

    address: IPAddress | None = None
    port: int = 0


# ---------------------------------------------------------------- shared option groups

@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduledChecker:
    """Options of every checker that runs on a timer (all kinds but FILE_CHECK and
    BFD_CHECK). Not a checker kind itself."""

    delay_loop: float = DEFAULT_DELAY_LOOP
    retry: int = 1
    delay_before_retry: float = 1.0
    warmup: float = DEFAULT_DELAY_LOOP  # random start delay, up to this; 0: none
    alpha: bool = False                 # start as failed until the first success
    rise: int = 1            # beyond keepalived: successes in a row that bring it up
    fall: int | None = None  # beyond keepalived: failures in a row to go down; None: retry + 1
    log_all_failures: bool | None = None  # None: global_defs checker_log_all_failures
    origin: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectingChecker(ScheduledChecker):
    """Options of every checker that talks to the network. Not a checker kind itself.

    connect_ip/connect_port default to the real server's address and port; a built
    checker always has them resolved.
    """

    connect_ip: IPAddress | None = None
    connect_port: int = 0
    bindto: IPAddress | None = None
    bind_port: int | None = None
    bind_if: str | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    fwmark: int = 0  # SO_MARK of the checker's packets; 0: none

    @property
    def target(self) -> Target:
        return Target(address=self.connect_ip, port=self.connect_port)


# ---------------------------------------------------------------- TCP / PING

@dataclass(frozen=True, slots=True, kw_only=True)
class TcpCheck(ConnectingChecker):
    """TCP_CHECK: success when a TCP connection opens."""

    kind: str = "TCP_CHECK"


@dataclass(frozen=True, slots=True, kw_only=True)
class PingCheck(ConnectingChecker):
    """PING_CHECK: success when an ICMP/ICMPv6 echo is answered (the port is unused)."""

    kind: str = "PING_CHECK"


# ---------------------------------------------------------------- HTTP_GET / SSL_GET

class HttpProtocol(StrEnum):
    HTTP_1_0 = "1.0"
    HTTP_1_0C = "1.0C"  # 1.0 plus "Connection: close"
    HTTP_1_1 = "1.1"


class RegexOption(StrEnum):
    """The PCRE2 options keepalived accepts in ``regex_options``."""

    ALLOW_EMPTY_CLASS = "allow_empty_class"
    ALT_BSUX = "alt_bsux"
    AUTO_CALLOUT = "auto_callout"
    CASELESS = "caseless"
    DOLLAR_ENDONLY = "dollar_endonly"
    DOTALL = "dotall"
    DUPNAMES = "dupnames"
    EXTENDED = "extended"
    FIRSTLINE = "firstline"
    MATCH_UNSET_BACKREF = "match_unset_backref"
    MULTILINE = "multiline"
    NEVER_UCP = "never_ucp"
    NEVER_UTF = "never_utf"
    NO_AUTO_CAPTURE = "no_auto_capture"
    NO_AUTO_POSSESS = "no_auto_possess"
    NO_DOTSTAR_ANCHOR = "no_dotstar_anchor"
    NO_START_OPTIMIZE = "no_start_optimize"
    UCP = "ucp"
    UNGREEDY = "ungreedy"
    UTF = "utf"
    NEVER_BACKSLASH_C = "never_backslash_c"
    ALT_CIRCUMFLEX = "alt_circumflex"
    ALT_VERBNAMES = "alt_verbnames"
    USE_OFFSET_LIMIT = "use_offset_limit"


# PCRE2 options and the Python `re` flag that does the same.
REGEX_FLAGS: dict[RegexOption, re.RegexFlag] = {
    RegexOption.CASELESS: re.IGNORECASE,
    RegexOption.DOTALL: re.DOTALL,
    RegexOption.EXTENDED: re.VERBOSE,
    RegexOption.MULTILINE: re.MULTILINE,
}
# Options that only tune PCRE2's engine or restate Python's behaviour on bytes:
# accepted, and matching is the same without them.
REGEX_OPTIONS_WITHOUT_EFFECT: frozenset[RegexOption] = frozenset({
    RegexOption.AUTO_CALLOUT, RegexOption.DUPNAMES, RegexOption.NEVER_UCP,
    RegexOption.NEVER_UTF, RegexOption.NO_AUTO_POSSESS, RegexOption.NO_DOTSTAR_ANCHOR,
    RegexOption.NO_START_OPTIMIZE, RegexOption.UCP, RegexOption.UTF,
    RegexOption.NEVER_BACKSLASH_C, RegexOption.USE_OFFSET_LIMIT,
})


def regex_flags(options: tuple[RegexOption, ...]) -> int:
    """The Python `re` flags for a url's regex_options (patterns compile as bytes)."""
    flags = 0
    for option in options:
        flags |= REGEX_FLAGS.get(option, 0)
    return flags


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusRange:
    """HTTP status codes ``low`` to ``high`` inclusive (``status_code 200-299``)."""

    low: int = 200
    high: int = 299

    def __contains__(self, code: object) -> bool:
        return isinstance(code, int) and self.low <= code <= self.high


@dataclass(frozen=True, slots=True, kw_only=True)
class Url:
    """One ``url { }`` block: every url of a checker must pass for the check to pass."""

    path: str = "/"
    digest: str | None = None  # MD5 of the body, 32 lower-case hex digits
    status_code: tuple[StatusRange, ...] = (StatusRange(),)
    virtualhost: str | None = None  # None: the checker's, else the server's
    # The pattern as keepalived passes it to PCRE2: quotes removed and backslash
    # escapes already applied (keepalived reads ``regex`` as a quoted-escaped string).
    regex: str | None = None
    regex_no_match: bool = False
    regex_options: tuple[RegexOption, ...] = ()
    regex_stack_start: int | None = None  # PCRE2 JIT stack sizes in bytes
    regex_stack_max: int | None = None
    regex_min_offset: int = 0
    regex_max_offset: int | None = None  # last offset where a match may start
    origin: str = field(default="", compare=False, repr=False)

    def accepts_status(self, code: int) -> bool:
        return any(code in r for r in self.status_code)


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpGetCheck(ConnectingChecker):
    """HTTP_GET: fetch every url; each must answer with an accepted status and, where
    set, a body with the right MD5 digest and regex result."""

    kind: str = "HTTP_GET"
    retry: int = 1
    delay_before_retry: float = 3.0
    urls: tuple[Url, ...] = ()
    http_protocol: HttpProtocol = HttpProtocol.HTTP_1_0
    # Host header; None: the real server's / virtual server's virtualhost (filled in
    # by whoever builds the server), else the connect address.
    virtualhost: str | None = None
    fast_recovery: bool = False
    # Beyond keepalived: a body larger than this fails the check (bytes).
    max_body_size: int = DEFAULT_MAX_BODY_SIZE


@dataclass(frozen=True, slots=True, kw_only=True)
class SslGetCheck(ConnectingChecker):
    """SSL_GET: HTTP_GET over TLS."""

    kind: str = "SSL_GET"
    retry: int = 1
    delay_before_retry: float = 3.0
    urls: tuple[Url, ...] = ()
    http_protocol: HttpProtocol = HttpProtocol.HTTP_1_0
    virtualhost: str | None = None
    fast_recovery: bool = False
    max_body_size: int = DEFAULT_MAX_BODY_SIZE
    enable_sni: bool = False
    # Beyond keepalived: the SNI name to send (default: the virtualhost, as keepalived),
    # and certificate verification, off by default as in keepalived.
    sni_name: str | None = None
    verify_cert: bool = False
    ca_file: str | None = None  # None with verify_cert: the system's trust store


# ---------------------------------------------------------------- MISC_CHECK

@dataclass(frozen=True, slots=True, kw_only=True)
class MiscCheck(ScheduledChecker):
    """MISC_CHECK: run a program; exit 0 is success (with misc_dynamic, 2-255 is
    success and sets the weight to status - 2)."""

    kind: str = "MISC_CHECK"
    retry: int = 0
    misc_path: tuple[str, ...] = ()  # the program and its arguments, split as keepalived
    misc_timeout: float | None = None  # None: the checker's delay_loop
    misc_dynamic: bool = False
    user: str | None = None   # None: global_defs script_user
    group: str | None = None  # None: the user's group


# ---------------------------------------------------------------- SMTP_CHECK

@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpHost:
    """One endpoint of an SMTP_CHECK (from a deprecated ``host { }`` block, or the
    checker's own connection), fully resolved."""

    connect_ip: IPAddress | None = None
    connect_port: int = 0
    bindto: IPAddress | None = None
    bind_port: int | None = None
    bind_if: str | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    fwmark: int = 0
    origin: str = field(default="", compare=False, repr=False)

    @property
    def target(self) -> Target:
        return Target(address=self.connect_ip, port=self.connect_port)


@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpCheck(ConnectingChecker):
    """SMTP_CHECK: banner 220, HELO 250, QUIT 221 - on every endpoint in ``hosts``.

    A built checker lists every endpoint it probes in ``hosts`` (never empty); the
    checker's own connect_ip/connect_port are those of ``hosts[0]``. A hand-made one
    with no hosts probes its own connection.
    """

    kind: str = "SMTP_CHECK"
    helo_name: str = DEFAULT_SMTP_HELO
    hosts: tuple[SmtpHost, ...] = ()

    @property
    def targets(self) -> tuple[Target, ...]:
        return tuple(h.target for h in self.hosts) or (self.target,)


# ---------------------------------------------------------------- DNS_CHECK

class DnsType(StrEnum):
    A = "A"
    NS = "NS"
    CNAME = "CNAME"
    SOA = "SOA"
    MX = "MX"
    TXT = "TXT"
    AAAA = "AAAA"


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsCheck(ConnectingChecker):
    """DNS_CHECK: a query over UDP must be answered without error."""

    kind: str = "DNS_CHECK"
    retry: int = 3
    delay_before_retry: float = DEFAULT_DELAY_LOOP  # keepalived: the delay_loop
    type: DnsType = DnsType.SOA
    name: str = "."


# ---------------------------------------------------------------- UDP_CHECK

@dataclass(frozen=True, slots=True, kw_only=True)
class UdpCheck(ConnectingChecker):
    """UDP_CHECK: send a datagram; fail on an ICMP error (or, with require_reply, on
    no reply, a reply of the wrong length or not matching require_reply_data)."""

    kind: str = "UDP_CHECK"
    payload: str | None = None  # hex digits, two per byte; None: a random payload
    require_reply: bool = False
    # Hex digits, two per byte; "x" is a nibble that may have any value.
    require_reply_data: str | None = None
    min_reply_length: int = 0
    max_reply_length: int = 255


# ---------------------------------------------------------------- FILE_CHECK / BFD_CHECK

@dataclass(frozen=True, slots=True, kw_only=True)
class FileCheck:
    """FILE_CHECK: follow a global ``track_file``: the number read from it, times
    weight, is added to the real server's weight (weight 0: a non-zero value is a
    failure); ``dynamic`` lets the value move the weight as keepalived.conf(5) says."""

    kind: str = "FILE_CHECK"
    track_file: str = ""  # the name of a global track_file block
    weight: int | None = None  # None: the track_file's own weight
    reverse: bool = False
    dynamic: bool = False
    origin: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class BfdCheck:
    """BFD_CHECK: follow the state of a named bfd_instance."""

    kind: str = "BFD_CHECK"
    name: str = ""
    alpha: bool = False
    origin: str = field(default="", compare=False, repr=False)


CheckerSpec: TypeAlias = (TcpCheck | HttpGetCheck | SslGetCheck | MiscCheck | SmtpCheck
                          | DnsCheck | UdpCheck | PingCheck | FileCheck | BfdCheck)

# kind -> class. (A slotted dataclass has no class-level default, hence ``cls()``.)
CHECKER_CLASSES: dict[str, type[CheckerSpec]] = {
    cls().kind: cls
    for cls in (TcpCheck, HttpGetCheck, SslGetCheck, MiscCheck, SmtpCheck, DnsCheck,
                UdpCheck, PingCheck, FileCheck, BfdCheck)
}
