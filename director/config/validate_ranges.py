"""The value checks of the keepalived.conf builders, for a `Config` built from elsewhere.

A keepalived.conf value out of range never reaches the model: its builder reports it
at the value (`director.config.convert`, `blocks.timer_field`, ...). A YAML or JSON file
goes through the codec, which checks types only. `validate_ranges` applies the same
bounds to a built `Config`: one table (`RANGES`) of the numeric constraints of each
model field, taken from the builders, and a few checks of values that depend on each
other (`_EXTRA_CHECKS`). On a config built from a keepalived.conf it reports nothing.

Each problem is reported at the field's own location when the model records it
(``field_origins``), else at the object's (``origin``), else at the nearest enclosing
object's. Messages name the value by its path in the file (as the codec's do), say the
value and the allowed range: ``virtual_servers[0].weight -7 is out of range (0-65535)``.

A value the file did not write but inherited from a value already reported (a real
server's weight from its virtual server's, a checker's delay_loop from its real
server's) is not reported again.

Checked elsewhere, so not in the table: a VRRP instance's ``virtual_router_id``,
``priority``, ``version`` and ``advert_int``, numeric ``scope`` of addresses and routes
(`validate_vrrp`); ``persistence_granularity`` against the service's family
(`validate_lvs`).
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from checkers.spec import (
    ConnectingChecker,
    FileCheck,
    HttpGetCheck,
    MiscCheck,
    ScheduledChecker,
    SmtpCheck,
    SmtpHost,
    SslGetCheck,
    StatusRange,
    UdpCheck,
    Url,
)
from director.config import codec
from director.config.blocks import INT32_MAX, MAX_SECONDS, UINT32_MAX
from director.config.build_lvs import FWMARK_MAX, WEIGHT_MAX
from director.config.build_vrrp import SCRIPT_SECONDS_MAX, TIMER_MAX_SEC
from director.config.errors import Diagnostics
from director.config.model import (
    AddressRange,
    Config,
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
    TunnelChecksum,
    TunnelType,
    VirtualServer,
)
from vrrp.spec import (
    PREFERRED_LFT_FOREVER,
    TRACK_FILE_WEIGHT_MAX,
    TRACK_WEIGHT_MAX,
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

# Bounds that the builders write as literals: the same numbers, named here (the
# builders do not share these names yet).
PORT_MAX = 65535
INT32_MIN = -INT32_MAX - 1
NICE_MIN, NICE_MAX = -20, 19  # *_priority: a nice value
RT_PRIORITY_MIN, RT_PRIORITY_MAX = 1, 99  # *_rt_priority: SCHED_RR
CPU_MAX = 4095  # *_cpu_affinity
GARP_DELAY_MAX = UINT32_MAX // 1_000_000  # keepalived keeps these delays in usecs
DOWN_TIMER_ADVERTS_MAX = 100
LVS_TIMEOUT_MAX = 86400 * 365  # lvs_timeouts: a year
SYNC_MAXLEN_MAX = 65507  # lvs_sync_daemon maxlen: the largest UDP payload
TTL_MAX = 255
SCRIPT_TIMEOUT_MAX = 1000  # startup_script_timeout, shutdown_script_timeout
AUTO_PRIORITY_DELAY_MAX = 10.0  # min_auto_priority_delay: 10,000,000 usecs
RLIMIT_RTTIME_MAX = UINT32_MAX / 1e6  # *_rlimit_rttime: usecs in keepalived.conf
PROCESS_DELAY_MAX = 3600  # vrrp_track_process fork_delay / terminate_delay
GARP_GROUP_INTERVAL_MAX = INT32_MAX / 1e6
GARP_EXTRA_IF_MAX = 86400
INTERFACE_DELAY_MAX = 255  # interface_up_down_delays
STATUS_MIN, STATUS_MAX = 100, 599  # HTTP status codes
BIG = 2**62  # byte counts and offsets of the HTTP checkers
DEBUG_MAX = 4
NEXTHOP_WEIGHT_MAX = 256
TOS_MAX = 255
PROCESS_QUORUM_MAX = 65535
UMASK_MAX = 0o777
MAX_AUTO_PRIORITY_MIN, MAX_AUTO_PRIORITY_MAX = -1, 99


@dataclass(frozen=True, slots=True)
class Bound:
    """What a numeric field may hold: ``low`` to ``high`` inclusive (None: no bound);
    ``above``: ``low`` itself excluded (keepalived's "must be greater than 0");
    ``whole``: a whole number (whole seconds in a float field); ``items``: the field is
    a list, each item bounded. ``inherits``: the fields whose value this one takes when
    the file does not write it (besides the field of the same name), in this object or
    above."""

    low: float | None = None
    high: float | None = None
    above: bool = False
    whole: bool = False
    items: bool = False
    inherits: tuple[str, ...] = ()

    def accepts(self, value: Any) -> bool:
        """Whether a number is within bounds (anything else is the codec's business)."""
        low = -_INF if self.low is None else self.low
        high = _INF if self.high is None else self.high
        return _in_bound(value, low, high, self.above, self.whole)

    def describe(self) -> str:
        if self.above:
            span = f"> {_show(self.low)}"
            if self.high is not None:
                span += f", <= {_show(self.high)}"
        elif self.low is not None and self.high is not None:
            span = f"{_show(self.low)}-{_show(self.high)}"
        else:
            span = f">= {_show(self.low)}" if self.low is not None else f"<= {_show(self.high)}"
        return f"{span}, whole numbers" if self.whole else span


def _show(value: Any) -> str:
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    return str(value)


def _range(low: float, high: float, **options: Any) -> Bound:
    return Bound(low=low, high=high, **options)


def _seconds(high: float | None = MAX_SECONDS, **options: Any) -> Bound:
    """A duration: 0 and more (``seconds(above=True)``: more than 0)."""
    return Bound(low=0, high=high, **options)


_PORT = _range(0, PORT_MAX)  # 0: none, or the service's
_PORT_SET = _range(1, PORT_MAX)
_UINT32 = _range(0, UINT32_MAX)
_COUNT_1 = _range(1, UINT32_MAX)
_INT32 = _range(INT32_MIN, INT32_MAX)
_NICE = _range(NICE_MIN, NICE_MAX)
_RT = _range(RT_PRIORITY_MIN, RT_PRIORITY_MAX)
_CPUS = _range(0, CPU_MAX, items=True)
_RLIMIT = _seconds(RLIMIT_RTTIME_MAX, above=True)
_TTL = _range(0, TTL_MAX)
_GARP_DELAY = _seconds(GARP_DELAY_MAX, whole=True)

# The server settings a virtual server passes to its real servers (build_lvs's
# _CHECK_SETTINGS) and the timing every scheduled checker has (build_checkers' _TIMING).
_SERVER_CHECK_SETTINGS: dict[str, Bound] = {
    "delay_loop": _seconds(above=True),
    "connect_timeout": _seconds(above=True),
    "retry": _UINT32,
    "delay_before_retry": _seconds(),
    "warmup": _seconds(),
    "weight": _range(0, WEIGHT_MAX),
}
_CHECKER_TIMING: dict[str, Bound] = {
    "delay_loop": _seconds(None, above=True),
    "retry": _UINT32,
    "delay_before_retry": _seconds(None),
    "warmup": _seconds(None, inherits=("delay_loop",)),  # unset: up to the delay_loop
    "rise": _range(1, INT32_MAX),
    "fall": _range(1, INT32_MAX),
}
_CONNECTION: dict[str, Bound] = {
    "connect_port": Bound(low=0, high=PORT_MAX, inherits=("port",)),  # 0: PING_CHECK's none
    "bind_port": _PORT_SET,
    "connect_timeout": _seconds(None, above=True),
    "fwmark": _UINT32,
}
_HTTP: dict[str, Bound] = {"max_body_size": _range(1, BIG)}

RANGES: dict[type, dict[str, Bound]] = {
    # ------------------------------------------------------------ global_defs
    GlobalDefs: {
        "smtp_connect_timeout": _seconds(above=True),
        "max_auto_priority": _range(MAX_AUTO_PRIORITY_MIN, MAX_AUTO_PRIORITY_MAX),
        "min_auto_priority_delay": _seconds(AUTO_PRIORITY_DELAY_MAX, above=True),
        "child_wait_time": _seconds(above=True),
        "startup_script_timeout": _seconds(SCRIPT_TIMEOUT_MAX, above=True),
        "shutdown_script_timeout": _seconds(SCRIPT_TIMEOUT_MAX, above=True),
        "umask": _range(0, UMASK_MAX),
        "random_seed": _UINT32,
        "lvs_netlink_cmd_rcv_bufs": _range(1, INT32_MAX),
        "lvs_netlink_monitor_rcv_bufs": _range(1, INT32_MAX),
        "process_monitor_rcv_bufs": _COUNT_1,
        "nftables_ipvs_priority": _INT32,
        "nftables_ipvs_start_fwmark": _COUNT_1,
    },
    SmtpServer: {"port": _PORT_SET},
    ProcessTuning: {"priority": _NICE, "rt_priority": _RT, "cpu_affinity": _CPUS,
                    "rlimit_rttime": _RLIMIT},
    LvsTimeouts: {name: _seconds(LVS_TIMEOUT_MAX, above=True, whole=True)
                  for name in ("tcp", "tcpfin", "udp")},
    LvsSyncDaemon: {"sync_id": _range(0, 255), "maxlen": _range(1, SYNC_MAXLEN_MAX),
                    "port": _PORT_SET, "ttl": _range(1, TTL_MAX)},
    InterfaceDelays: {"down_delay": _seconds(INTERFACE_DELAY_MAX),
                      "up_delay": _seconds(INTERFACE_DELAY_MAX)},
    # ------------------------------------------------------------ VRRP
    VrrpGlobals: {
        "vrrp_version": _range(2, 3),
        "vrrp_garp_master_delay": _GARP_DELAY,
        "vrrp_garp_master_repeat": _COUNT_1,
        "vrrp_garp_master_refresh": _seconds(UINT32_MAX, whole=True),
        "vrrp_garp_master_refresh_repeat": _UINT32,  # vrrp_min_garp: 0
        "vrrp_garp_lower_prio_delay": _seconds(GARP_DELAY_MAX, whole=True,
                                               inherits=("vrrp_garp_master_delay",)),
        # keepalived.conf writes 0-2147483647, or takes vrrp_garp_master_repeat's value
        "vrrp_garp_lower_prio_repeat": _range(0, UINT32_MAX,
                                              inherits=("vrrp_garp_master_repeat",)),
        # 0 (the default) leaves these unset; keepalived.conf cannot write 0
        "vrrp_garp_interval": _seconds(SCRIPT_SECONDS_MAX),
        "vrrp_gna_interval": _seconds(SCRIPT_SECONDS_MAX),
        "vrrp_garp_extra_if": _seconds(GARP_EXTRA_IF_MAX, whole=True),
        "vrrp_startup_delay": _seconds(SCRIPT_SECONDS_MAX),
        "vrrp_down_timer_adverts": _range(1, DOWN_TIMER_ADVERTS_MAX),
        "nftables_priority": _INT32,
        "vrrp_priority": _range(NICE_MIN, NICE_MAX, inherits=("priority",)),
        "vrrp_rt_priority": _range(RT_PRIORITY_MIN, RT_PRIORITY_MAX, inherits=("rt_priority",)),
        "vrrp_cpu_affinity": _range(0, CPU_MAX, items=True, inherits=("cpu_affinity",)),
        "vrrp_rlimit_rttime": _seconds(RLIMIT_RTTIME_MAX, above=True,
                                       inherits=("rlimit_rttime",)),
        "vrrp_netlink_cmd_rcv_bufs": _COUNT_1,
        "vrrp_netlink_monitor_rcv_bufs": _COUNT_1,
        "process_monitor_rcv_bufs": _COUNT_1,
        "vrrp_rx_bufs_size": _UINT32,
        "vrrp_rx_bufs_multiplier": _COUNT_1,
    },
    VrrpScript: {
        "interval": _seconds(SCRIPT_SECONDS_MAX, above=True, whole=True),
        "timeout": _seconds(SCRIPT_SECONDS_MAX, above=True, whole=True, inherits=("interval",)),
        "weight": _range(-TRACK_WEIGHT_MAX, TRACK_WEIGHT_MAX),
        "rise": _range(1, INT32_MAX),
        "fall": _range(1, INT32_MAX),
    },
    TrackFile: {"weight": _range(-TRACK_FILE_WEIGHT_MAX, TRACK_FILE_WEIGHT_MAX),
                "init_value": _INT32},
    TrackProcess: {
        "weight": _range(-TRACK_FILE_WEIGHT_MAX, TRACK_FILE_WEIGHT_MAX),
        "quorum": _range(0, PROCESS_QUORUM_MAX),  # 0 only with quorum_max 0: see below
        "quorum_max": _range(0, PROCESS_QUORUM_MAX),
        "fork_delay": _seconds(PROCESS_DELAY_MAX),
        "terminate_delay": _seconds(PROCESS_DELAY_MAX),
    },
    TrackedInterface: {"weight": _range(-TRACK_WEIGHT_MAX, TRACK_WEIGHT_MAX)},
    TrackedScript: {"weight": _range(-TRACK_WEIGHT_MAX, TRACK_WEIGHT_MAX)},
    TrackedFile: {"weight": _range(-TRACK_FILE_WEIGHT_MAX, TRACK_FILE_WEIGHT_MAX)},
    TrackedProcess: {"weight": _range(-TRACK_FILE_WEIGHT_MAX, TRACK_FILE_WEIGHT_MAX)},
    TrackedBfd: {"weight": _range(-TRACK_WEIGHT_MAX, TRACK_WEIGHT_MAX)},
    VrrpInstance: {
        "unicast_ttl": _TTL,
        "preempt_delay": _seconds(TIMER_MAX_SEC),
        "debug": _range(0, DEBUG_MAX),
        "kernel_rx_buf_size": _UINT32,
        "garp_master_delay": _seconds(GARP_DELAY_MAX, whole=True,
                                      inherits=("vrrp_garp_master_delay",)),
        "garp_master_repeat": _range(1, UINT32_MAX, inherits=("vrrp_garp_master_repeat",)),
        "garp_master_refresh": _seconds(UINT32_MAX, whole=True,
                                        inherits=("vrrp_garp_master_refresh",)),
        "garp_master_refresh_repeat": _range(0, UINT32_MAX,
                                             inherits=("vrrp_garp_master_refresh_repeat",)),
        "garp_lower_prio_delay": _seconds(GARP_DELAY_MAX, whole=True,
                                          inherits=("vrrp_garp_lower_prio_delay",)),
        "garp_lower_prio_repeat": _range(0, UINT32_MAX,  # as vrrp_garp_lower_prio_repeat
                                         inherits=("vrrp_garp_lower_prio_repeat",)),
        "garp_extra_if": _seconds(GARP_EXTRA_IF_MAX, whole=True, inherits=("vrrp_garp_extra_if",)),
        "down_timer_adverts": _range(1, DOWN_TIMER_ADVERTS_MAX,
                                     inherits=("vrrp_down_timer_adverts",)),
    },
    UnicastPeer: {"min_ttl": _TTL, "max_ttl": _TTL},
    VirtualAddress: {"preferred_lft": _range(0, PREFERRED_LFT_FOREVER)},
    Route: {"table": _UINT32, "metric": _UINT32, "tos": _range(0, TOS_MAX)},
    NextHop: {"weight": _range(1, NEXTHOP_WEIGHT_MAX)},
    Rule: {"table": _UINT32, "preference": _UINT32, "goto": _UINT32,
           "suppress_prefixlength": _UINT32, "tos": _range(0, TOS_MAX), "fwmark": _UINT32,
           "fwmask": _UINT32, "uidrange": _range(0, UINT32_MAX, items=True),
           "sport": _range(0, PORT_MAX, items=True), "dport": _range(0, PORT_MAX, items=True)},
    GarpGroup: {"garp_interval": _seconds(GARP_GROUP_INTERVAL_MAX),
                "gna_interval": _seconds(GARP_GROUP_INTERVAL_MAX)},
    # ------------------------------------------------------------ LVS
    AddressRange: {"port": _PORT},
    GroupFwmark: {"fwmark": _range(1, FWMARK_MAX)},
    VirtualServer: {
        "port": _PORT,
        "fwmark": _range(1, FWMARK_MAX),
        "persistence_timeout": _seconds(UINT32_MAX, above=True, whole=True),
        "quorum": _range(1, UINT32_MAX),
        "hysteresis": _UINT32,
        "slow_start": _seconds(),
        **_SERVER_CHECK_SETTINGS,
    },
    LvsMethod: {"tunnel_port": _PORT},  # GUE's must be set: see below
    SorryServer: {"port": _PORT},
    RealServer: {"port": _PORT, "uthreshold": _UINT32, "lthreshold": _UINT32,
                 **_SERVER_CHECK_SETTINGS},
    # ------------------------------------------------------------ checkers
    ScheduledChecker: _CHECKER_TIMING,
    ConnectingChecker: {**_CHECKER_TIMING, **_CONNECTION},
    HttpGetCheck: {**_CHECKER_TIMING, **_CONNECTION, **_HTTP},
    SslGetCheck: {**_CHECKER_TIMING, **_CONNECTION, **_HTTP},
    MiscCheck: {**_CHECKER_TIMING,
                "misc_timeout": _seconds(None, above=True, inherits=("delay_loop",))},
    UdpCheck: {**_CHECKER_TIMING, **_CONNECTION, "min_reply_length": _range(0, PORT_MAX),
               "max_reply_length": _range(0, PORT_MAX)},
    FileCheck: {"weight": _range(-INT32_MAX, INT32_MAX)},
    SmtpHost: dict(_CONNECTION),
    Url: {"regex_stack_start": _range(0, BIG), "regex_stack_max": _range(0, BIG),
          "regex_min_offset": _range(0, BIG), "regex_max_offset": _range(0, BIG)},
    StatusRange: {"low": _range(STATUS_MIN, STATUS_MAX), "high": _range(STATUS_MIN, STATUS_MAX)},
}
"""model class -> field -> `Bound`. A class not listed takes its nearest listed base's
entry (every network checker is a `ConnectingChecker`)."""

CHECKED_ELSEWHERE: dict[type, tuple[str, ...]] = {
    VrrpInstance: ("virtual_router_id", "priority", "version", "advert_int"),
    VirtualAddress: ("scope",),
    Route: ("scope",),
    VirtualServer: ("persistence_granularity",),
}
"""Numeric fields that `validate_vrrp` / `validate_lvs` check (not repeated here)."""


# ----------------------------------------------------------------- checks across fields

Problems = list[tuple[str, str, bool]]  # (field, message, a warning only)
_NONE: Problems = []

_DIGEST = re.compile(r"[0-9a-f]{32}")


def _status_range(item: StatusRange) -> Problems:
    if item.low > item.high >= STATUS_MIN:
        return [("low", f"status code range {item.low}-{item.high} is reversed", False)]
    return _NONE


def _url(url: Url) -> Problems:
    found: Problems = []
    if url.digest is not None and not _DIGEST.fullmatch(url.digest):
        found.append(("digest", f"digest '{url.digest}' is not an MD5 digest (32 lower-case "
                                "hex digits)", False))
    start, most = url.regex_stack_start, url.regex_stack_max
    if start is not None and most is not None and start > most:
        found.append(("regex_stack_start", f"regex_stack_start {start} exceeds "
                                           f"regex_stack_max {most}", False))
    low, high = url.regex_min_offset, url.regex_max_offset
    if high is not None and low > high:
        found.append(("regex_min_offset", f"regex_min_offset {low} is beyond "
                                          f"regex_max_offset {high}", False))
    return found


def _udp_check(check: UdpCheck) -> Problems:
    if check.min_reply_length > check.max_reply_length:
        return [("min_reply_length", f"min_reply_length {check.min_reply_length} > "
                                     f"max_reply_length {check.max_reply_length}: the check "
                                     "always fails", True)]
    return _NONE


def _track_process(process: TrackProcess) -> Problems:
    quorum, most = process.quorum, process.quorum_max
    if quorum == 0 and most != 0:
        return [("quorum", f"quorum 0 is out of range (1-{PROCESS_QUORUM_MAX}; 0 only with "
                           "quorum_max 0)", False)]
    if most is not None and most < quorum:
        return [("quorum_max", f"quorum_max {most} is less than quorum {quorum}", False)]
    return _NONE


def _unicast_peer(peer: UnicastPeer) -> Problems:
    if peer.min_ttl > peer.max_ttl:
        return [("min_ttl", f"min_ttl {peer.min_ttl} > max_ttl {peer.max_ttl}: every "
                            "advert is dropped", True)]
    return _NONE


def _rule(rule: Rule) -> Problems:
    found: Problems = []
    for name in ("uidrange", "sport", "dport"):
        span = getattr(rule, name)
        if not span:
            continue
        if len(span) != 2:
            found.append((name, f"{name} needs a range of two numbers [FIRST, LAST], not "
                                f"{list(span)}", False))
        elif span[0] > span[1]:
            found.append((name, f"{name} {span[0]}-{span[1]}: the range ends before it "
                                "starts", False))
    return found


def _lvs_method(method: LvsMethod) -> Problems:
    kind, checksum = method.tunnel_type, method.tunnel_checksum
    if kind is TunnelType.IPIP and checksum is TunnelChecksum.NOCSUM:
        return _NONE  # the usual case: nothing to say
    found: Problems = []
    if kind is TunnelType.GUE and not method.tunnel_port:
        found.append(("tunnel_port", f"tunnel type gue needs a tunnel_port (1-{PORT_MAX})",
                      False))
    if checksum is not TunnelChecksum.NOCSUM and kind is TunnelType.IPIP:
        found.append(("tunnel_checksum", f"checksum option '{checksum}' needs tunnel type "
                                         "gue or gre", False))
    if checksum is TunnelChecksum.REMCSUM and kind is TunnelType.GRE:
        found.append(("tunnel_checksum", "tunnel type gre does not support remcsum", False))
    return found


_EXTRA_CHECKS: dict[type, Callable[[Any], Problems]] = {
    StatusRange: _status_range,
    Url: _url,
    UdpCheck: _udp_check,
    TrackProcess: _track_process,
    UnicastPeer: _unicast_peer,
    Rule: _rule,
    LvsMethod: _lvs_method,
}


# ----------------------------------------------------------------- the walk


def validate_ranges(config: Config, diag: Diagnostics) -> None:
    """Report every value of ``config`` outside what a keepalived.conf may give it."""
    check_object(config, diag)


def check_object(obj: Any, diag: Diagnostics, path: codec.PathLink = None) -> None:
    """The same checks for any model object (and what it holds); ``path``: where the
    object is in its file, for the messages."""
    _Walk(diag).visit(obj, path, None, "", frozenset())


Seen = frozenset[tuple[str, Any]]  # (field, value) pairs already reported above
_NOTHING: Seen = frozenset()
_INF = math.inf

# (field, low, high, low excluded, whole, items, the bound) with -inf/inf for no bound:
# the walk runs for every server of a large config, and this is its inner loop.
_Check = tuple[str, float, float, bool, bool, bool, Bound]


# Fields holding the objects that an object takes its unwritten values from: checked
# before the object itself, so that a bad value is reported where it was written.
_SOURCES: dict[type, tuple[str, ...]] = {SmtpCheck: ("hosts",)}  # from the first host


@dataclass(frozen=True, slots=True)
class _Plan:
    checks: tuple[_Check, ...]
    sources: tuple[str, ...]  # fields that may hold objects with checks: before
    children: tuple[str, ...]  # and after the object's own checks
    extra: Callable[[Any], Problems] | None
    clean: Callable[[Any], bool]  # all checks pass (the fast way)


def _clean_function(cls: type, checks: tuple[_Check, ...]) -> Callable[[Any], bool]:
    """A function that tells whether every value ``checks`` bounds is within bounds,
    written out for ``cls``: it runs for every object of a large config, and the loop
    over `_Check` tuples costs several times more. (Values that are not numbers, NaN
    included, fail it: the full check then says what is wrong, if anything.)"""
    lines = [f"def clean_{cls.__name__}(obj):"]
    constants: dict[str, Any] = {}
    for index, (name, low, high, above, whole, items, _) in enumerate(checks):
        constants[f"low{index}"], constants[f"high{index}"] = low, high
        test = f"low{index} {'<' if above else '<='} {{v}} <= high{index}"
        if whole:
            test += " and (type({v}) is int or {v}.is_integer())"
        lines.append(f"    v = obj.{name}")
        if items:
            lines.append(f"    if v and not all({test.format(v='x')} for x in v):")
        else:
            lines.append(f"    if v is not None and not ({test.format(v='v')}):")
        lines.append("        return False")
    lines.append("    return True")
    exec("\n".join(lines), constants)  # names and numbers from RANGES only
    return constants[f"clean_{cls.__name__}"]


_PLANS: dict[type, _Plan | None] = {}


def _bounds_of(cls: type) -> dict[str, Bound]:
    for base in cls.__mro__:
        if base in RANGES:
            return RANGES[base]
    return {}


def _classes_in(hint: Any) -> Iterator[type]:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        yield hint
        return
    for arg in typing.get_args(hint):
        yield from _classes_in(arg)


def _plan(cls: type) -> _Plan | None:
    """What to check in objects of ``cls``; None when they hold nothing to check."""
    if cls in _PLANS:
        return _PLANS[cls]
    if not dataclasses.is_dataclass(cls):
        _PLANS[cls] = None
        return None
    _PLANS[cls] = None  # while working it out (the model may refer to itself)
    names = [f.name for f in dataclasses.fields(cls)]
    bounds = _bounds_of(cls)
    checks = tuple(
        (name, -_INF if b.low is None else b.low, _INF if b.high is None else b.high,
         b.above, b.whole, b.items, b)
        for name in names if (b := bounds.get(name)) is not None)  # in the model's order
    hints = codec.type_hints(cls)
    children = tuple(name for name in names if name != codec.FIELD_ORIGINS and any(
        _plan(c) is not None for c in _classes_in(hints[name])))
    extra = _EXTRA_CHECKS.get(cls)
    sources = tuple(name for name in _SOURCES.get(cls, ()) if name in children)
    children = tuple(name for name in children if name not in sources)
    plan = None
    if checks or sources or children or extra:
        plan = _Plan(checks, sources, children, extra, _clean_function(cls, checks))
    _PLANS[cls] = plan
    return plan


def _in_bound(value: Any, low: float, high: float, above: bool, whole: bool) -> bool:
    kind = type(value)
    if kind is not int and kind is not float:
        return True  # not a number (a bool, say): the codec has said what is wrong
    if value > high or (value <= low if above else value < low):
        return False
    if value != value:
        return False  # NaN
    return not whole or kind is int or value.is_integer()


def _written(obj: Any) -> frozenset[str]:
    return frozenset(record.name for record in getattr(obj, codec.FIELD_ORIGINS, ()))


def _origin(obj: Any, name: str) -> str:
    """Where ``obj`` wrote ``name``, else where ``obj`` is ("" when unknown)."""
    for record in getattr(obj, codec.FIELD_ORIGINS, ()):
        if record.name == name:
            return record.origin
    return getattr(obj, codec.ORIGIN, "")


class _Walk:
    __slots__ = ("diag",)

    def __init__(self, diag: Diagnostics):
        self.diag = diag

    def visit(self, obj: Any, path: codec.PathLink, parent: Any, parent_field: str,
              seen: Seen) -> Seen:
        """Check ``obj`` (held in ``parent_field`` of ``parent``) and what it holds;
        return the (field, value) pairs reported in it and in the single objects it
        holds (what the parts after it may inherit)."""
        plan = _PLANS[type(obj)] if type(obj) in _PLANS else _plan(type(obj))
        if plan is None:
            return _NOTHING
        reported: Seen = _NOTHING
        if plan.sources:
            seen = seen | self._visit_children(obj, path, plan.sources, seen, sources=True)
        try:
            clean = plan.clean(obj)
        except TypeError:  # a value that is not a number: see below
            clean = False
        if not clean:
            for name, low, high, above, whole, items, bound in plan.checks:
                value = getattr(obj, name)
                if value is None:
                    continue
                values = value if items else (value,)
                bad = [v for v in values if not _in_bound(v, low, high, above, whole)]
                if bad:
                    reported |= self._report(obj, path, parent, parent_field, name, bad,
                                             bound, seen | reported)
        if plan.extra is not None:
            for name, message, warning in plan.extra(obj):
                self._problem(obj, path, parent, parent_field, name, message, warning)
        if plan.children:
            reported |= self._visit_children(obj, path, plan.children,
                                             seen | reported if reported else seen)
        return reported

    def _visit_children(self, obj: Any, path: codec.PathLink, names: tuple[str, ...],
                        seen: Seen, sources: bool = False) -> Seen:
        """Visit what ``names`` hold; return what the single objects among them reported
        (what the rest may inherit: nothing from the items of a list, but from the first
        item of a `_SOURCES` list)."""
        found: Seen = _NOTHING
        for name in names:
            value = getattr(obj, name)
            if value is None:
                continue
            if type(value) is tuple:
                for index, item in enumerate(value):
                    reported = self.visit(item, ((path, name), index), obj, name, seen)
                    if index == 0 and sources and reported:
                        found |= reported
            else:
                reported = self.visit(value, (path, name), obj, name, seen)
                if reported:
                    found |= reported
                    seen = seen | reported
        return found

    def _where(self, obj: Any, name: str, parent: Any, parent_field: str) -> str:
        return _origin(obj, name) or (_origin(parent, parent_field) if parent else "")

    def _report(self, obj: Any, path: codec.PathLink, parent: Any, parent_field: str,
                name: str, values: list, bound: Bound, seen: Seen) -> Seen:
        """Report the bad ``values`` of ``name``, but for those it inherited from a
        value reported already; return them all as reported."""
        written = name in _written(obj)
        sources = (name, *bound.inherits)
        for value in values:
            if written or not any((source, value) in seen for source in sources):
                self.diag.error(self._where(obj, name, parent, parent_field),
                                f"{codec.render_path((path, name))} {_show(value)} is out "
                                f"of range ({bound.describe()})")
        return frozenset((name, value) for value in values)

    def _problem(self, obj: Any, path: codec.PathLink, parent: Any, parent_field: str,
                 name: str, message: str, warning: bool) -> None:
        where = self._where(obj, name, parent, parent_field)
        text = f"{codec.render_path(path)}: {message}" if path is not None else message
        (self.diag.warning if warning else self.diag.error)(where, text)
