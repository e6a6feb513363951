"""Build the `vrrp.spec` objects from keepalived.conf statements.

Public builders (each reports problems into `Diagnostics` and returns the object, or
None when the statement cannot be used at all):

- `build_vrrp_globals`: the VRRP keywords of ``global_defs``. It reads the keywords
  of `VRRP_GLOBAL_KEYWORDS` (which it owns: the global_defs builder skips them) and
  those of `VRRP_SHARED_GLOBAL_KEYWORDS` (which the global_defs builder reads and
  reports on too, so they are read here without reporting); it ignores the rest.
- `build_vrrp_script`, `build_track_file`, `build_track_process`, `build_sync_group`,
  `build_instance`, `build_static_addresses`/`_routes`/`_rules`, `build_track_group`,
  `build_garp_group`: one top-level block each; `TOP_LEVEL_VRRP_KEYWORDS` maps the
  keyword of each to its builder, and `build_vrrp_config` builds them all.
- `resolve_instance`: an instance from settings given as data (for other front ends).

As keepalived does, an instance inherits from the globals (version, garp settings,
multicast group, strict mode and what it implies...) and comes out with effective
values; the adjustments keepalived makes (clearing nopreempt for an address owner,
rounding a VRRPv2 advert interval...) are made here with a warning where keepalived
warns. Deprecated spellings are read as their current names with a warning. Unknown
keywords are warnings; bad values are errors at the value, and the rest still loads.
Checks that need the whole configuration are in `director.config.validate_vrrp`.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from director.config import convert
from director.config.errors import Diagnostics
from director.config.lexer import CommandSyntaxError, split_command
from director.config.tree import Node, Word
from vrrp.spec import (
    ADVERT_INT_V2_MAX,
    ADVERT_INT_V3_MAX,
    AUTH_PASS_MAX,
    PREFERRED_LFT_FOREVER,
    PRIORITY_DEFAULT,
    PRIORITY_OWNER,
    SCOPE_MAX,
    TRACK_FILE_WEIGHT_MAX,
    TRACK_WEIGHT_MAX,
    AddressFamily,
    Authentication,
    AuthType,
    FieldOrigin,
    GarpGroup,
    InstanceState,
    IPAddress,
    IpvlanMode,
    NextHop,
    NotifyFifo,
    NotifyScript,
    OldUnicastChecksum,
    ParamMatch,
    Route,
    RouteMetric,
    RouteType,
    Rule,
    RuleAction,
    RxBufsPolicy,
    Scope,
    StaticTrackGroup,
    SyncGroup,
    TrackedBfd,
    TrackedFile,
    TrackedInterface,
    TrackedProcess,
    TrackedScript,
    TrackFile,
    TrackProcess,
    UnicastPeer,
    VirtualAddress,
    VrrpConfig,
    VrrpGlobals,
    VrrpInstance,
    VrrpScript,
    family_of,
    scope_of,
)

UINT32_MAX = 2**32 - 1
INT32_MAX = 2**31 - 1
SCRIPT_SECONDS_MAX = UINT32_MAX // 1_000_000  # keepalived keeps timers in usecs
IFNAMSIZ = 16
TIMER_MAX_SEC = 1000  # preempt_delay's maximum


# ======================================================================= block reading


class _Values:
    """What one block set: field values and where each was written."""

    __slots__ = ("origins", "values")

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.origins: dict[str, str] = {}

    def set(self, name: str, value: Any, origin: str) -> None:
        self.values[name] = value
        self.origins[name] = origin

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def origin(self, name: str, default: str = "") -> str:
        return self.origins.get(name, default)

    def field_origins(self) -> tuple[FieldOrigin, ...]:
        return tuple(FieldOrigin(name=n, origin=o) for n, o in self.origins.items())


_Handler = Callable[[Node, Diagnostics, _Values], None]


def _read_block(children: Iterable[Node], diag: Diagnostics, table: Mapping[str, _Handler],
                where: str, values: _Values | None = None) -> _Values:
    """Run each line of a block through its handler; unknown keywords are warnings."""
    values = _Values() if values is None else values
    for node in children:
        handler = table.get(node.keyword)
        if handler is None:
            _unknown_keyword(node, diag, where, table)
        else:
            handler(node, diag, values)
    return values


def _unknown_keyword(node: Node, diag: Diagnostics, where: str, known: Iterable[str],
                     hint: str = "") -> None:
    if not hint:
        close = difflib.get_close_matches(str(node.keyword), list(known), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
    diag.warning(node.origin, f"unknown keyword '{node.keyword}' in {where}{hint}; ignored")


def _no_block(node: Node, diag: Diagnostics) -> None:
    if node.children is not None:
        diag.warning(node.origin, f"'{node.keyword}' takes no block; the block is ignored")


def _value_origin(node: Node) -> str:
    return node.args[0].origin if node.args else node.origin


def _list_block(node: Node, diag: Diagnostics) -> list[Node] | None:
    """The lines of a list block (``virtual_ipaddress { ... }``, ``group { ... }``)."""
    if node.children is None:
        diag.error(node.origin, f"'{node.keyword}' needs a {{ }} block")
        return None
    if node.args:
        diag.warning(node.args[0].origin, f"'{node.keyword}' takes no arguments; "
                                          f"'{' '.join(node.args)}' ignored")
    for child in node.children:
        if child.children is not None:
            diag.warning(child.origin, f"unexpected block after '{child.keyword}' in "
                                       f"'{node.keyword}'; ignored")
    return node.children


def _named_block(node: Node, diag: Diagnostics, what: str) -> str | None:
    """The name of ``KEYWORD NAME { ... }``; None (reported) when it cannot be used."""
    if node.children is None:
        diag.error(node.origin, f"'{node.keyword}' needs a {{ }} block")
        return None
    if len(node.args) != 1:
        where = node.args[1].origin if len(node.args) > 1 else node.origin
        diag.error(where, f"{what} must have exactly one name")
        return None
    return str(node.args[0])


# ----------------------------------------------------------------- value readers


def _seconds(word: Word, diag: Diagnostics, what: str, low: float, high: float,
             whole: bool = False) -> float | None:
    """A duration; ``whole``: keepalived reads it as a whole number of seconds."""
    if whole:
        value = convert.integer(word, diag, int(low), int(high), what)
        return None if value is None else float(value)
    return convert.number(word, diag, low, high, what)


def _command(word: Word, diag: Diagnostics, what: str) -> tuple[str, ...] | None:
    """A command line split as keepalived splits scripts (quotes, escapes)."""
    try:
        argv = split_command(str(word))
    except CommandSyntaxError as error:
        diag.error(word.origin, f"{what}: {error}")
        return None
    if not argv or not argv[0]:
        diag.error(word.origin, f"{what}: empty command")
        return None
    return tuple(argv)


def _notify_script(node: Node, diag: Diagnostics) -> NotifyScript | None:
    """``keyword COMMAND [USER [GROUP]]`` (a command with arguments is quoted)."""
    _no_block(node, diag)
    if not convert.args(node, diag, 1, 3):
        return None
    command = _command(node.args[0], diag, str(node.keyword))
    if command is None:
        return None
    words = [str(w) for w in node.args]
    return NotifyScript(command=command, user=words[1] if len(words) > 1 else None,
                        group=words[2] if len(words) > 2 else None, origin=node.origin)


def _fifo(node: Node, diag: Diagnostics) -> NotifyFifo | None:
    _no_block(node, diag)
    if not convert.args(node, diag, 1, 3):
        return None
    words = [str(w) for w in node.args]
    return NotifyFifo(path=words[0], user=words[1] if len(words) > 1 else None,
                      group=words[2] if len(words) > 2 else None, origin=node.origin)


def _interface_name(word: Word, diag: Diagnostics, what: str = "interface") -> str | None:
    name = str(word)
    if not name or len(name) >= IFNAMSIZ or name in (".", "..") or any(
            c in "/:" or c.isspace() for c in name):
        diag.error(word.origin, f"'{name}' is not a valid {what} name")
        return None
    return name


def _weight(words: list[Word], at: int, node: Node, diag: Diagnostics, limit: int,
            allow_noreverse: bool, old_limit: int | None = None
            ) -> tuple[int | None, bool | None] | None:
    """``NAME [weight W [reverse|noreverse]]`` from ``words[at:]``: (weight, reverse),
    None for what is not written; None (reported) when the entry is bad.

    ``old_limit``: weights up to it are accepted with a warning and clamped to
    ``limit`` (keepalived once allowed +/-254 where it now allows +/-253)."""
    if len(words) <= at:
        return None, None
    if words[at] != "weight":
        diag.error(words[at].origin, f"unknown option '{words[at]}' of '{node.keyword}' "
                                     "(expected 'weight')")
        return None
    if len(words) == at + 1:
        diag.error(words[at].origin, "'weight' needs a value")
        return None
    bound = old_limit or limit
    weight = convert.integer(words[at + 1], diag, -bound, bound, "weight")
    if weight is None:
        return None
    if abs(weight) > limit:
        diag.warning(words[at + 1].origin,
                     f"weight {weight} is deprecated: the limit is +/-{limit}; using "
                     f"{limit if weight > 0 else -limit}")
        weight = limit if weight > 0 else -limit
    reverse: bool | None = None
    if len(words) > at + 2:
        option = words[at + 2]
        if option == "reverse":
            reverse = True
        elif option == "noreverse" and allow_noreverse:
            reverse = False
        else:
            expected = "reverse or noreverse" if allow_noreverse else "reverse"
            diag.error(option.origin, f"unknown weight option '{option}' (expected "
                                      f"{expected})")
            return None
        if len(words) > at + 3:
            diag.error(words[at + 3].origin, f"unexpected '{words[at + 3]}'")
            return None
    return weight, reverse


# ----------------------------------------------------------------- handler factories


def _flag(name: str) -> _Handler:
    """``keyword [on|off|yes|no|true|false]``: on when present."""
    def handler(node: Node, diag: Diagnostics, values: _Values) -> None:
        _no_block(node, diag)
        value = convert.flag(node, diag)
        if value is not None:
            values.set(name, value, _value_origin(node))
    return handler


def _set_value(name: str, value: Any) -> _Handler:
    """A keyword without arguments that sets ``name`` to ``value``."""
    def handler(node: Node, diag: Diagnostics, values: _Values) -> None:
        _no_block(node, diag)
        if convert.args(node, diag, 0, 0):
            values.set(name, value, node.origin)
    return handler


def _word(name: str) -> _Handler:
    def handler(node: Node, diag: Diagnostics, values: _Values) -> None:
        _no_block(node, diag)
        word = convert.first(node, diag)
        if word is not None:
            values.set(name, str(word), word.origin)
    return handler


def _integer(name: str, low: int, high: int) -> _Handler:
    def handler(node: Node, diag: Diagnostics, values: _Values) -> None:
        _no_block(node, diag)
        word = convert.first(node, diag)
        if word is None:
            return
        value = convert.integer(word, diag, low, high, str(node.keyword))
        if value is not None:
            values.set(name, value, word.origin)
    return handler


def _at_least_one(name: str) -> _Handler:
    """A repeat count: 0 is read as 1 with a warning (as keepalived does)."""
    def handler(node: Node, diag: Diagnostics, values: _Values) -> None:
        _no_block(node, diag)
        word = convert.first(node, diag)
        if word is None:
            return
        value = convert.integer(word, diag, 0, UINT32_MAX, str(node.keyword))
        if value == 0:
            diag.warning(word.origin, f"{node.keyword} must be greater than 0; using 1")
            value = 1
        if value is not None:
            values.set(name, value, word.origin)
    return handler


def _duration(name: str, low: float, high: float, whole: bool = False,
              large: float | None = None) -> _Handler:
    """``keyword SECONDS``; ``large``: warn (as keepalived) from this value up."""
    def handler(node: Node, diag: Diagnostics, values: _Values) -> None:
        _no_block(node, diag)
        word = convert.first(node, diag)
        if word is None:
            return
        value = _seconds(word, diag, str(node.keyword), low, high, whole)
        if value is None:
            return
        if large is not None and value >= large:
            diag.warning(word.origin, f"{node.keyword} {word} seconds is very large")
        values.set(name, value, word.origin)
    return handler


def _once(name: str, read: Callable[[Node, Diagnostics], Any]) -> _Handler:
    """A setting keepalived takes only once (notify scripts): a repeat is an error."""
    def handler(node: Node, diag: Diagnostics, values: _Values) -> None:
        if name in values:
            diag.error(node.origin, f"'{node.keyword}' already set at "
                                    f"{values.origin(name)}; this one is ignored")
            return
        value = read(node, diag)
        if value is not None:
            values.set(name, value, _value_origin(node))
    return handler


def _deprecated(keyword: str, handler: _Handler, instead: str) -> _Handler:
    use = instead if " " in instead else f"'{instead}'"

    def wrapped(node: Node, diag: Diagnostics, values: _Values) -> None:
        diag.warning(node.origin, f"'{keyword}' is deprecated; use {use}")
        handler(node, diag, values)
    return wrapped


def _address_of(name: str, family: int | None = None, multicast: bool = False) -> _Handler:
    def handler(node: Node, diag: Diagnostics, values: _Values) -> None:
        _no_block(node, diag)
        word = convert.first(node, diag)
        if word is None:
            return
        value = convert.address(word, diag)
        if value is None:
            return
        if family is not None and value.version != family:
            diag.error(word.origin, f"{node.keyword} must be an IPv{family} address")
            return
        if multicast and not value.is_multicast:
            diag.error(word.origin, f"{node.keyword} {value} is not a multicast address")
            return
        values.set(name, value, word.origin)
    return handler


# ======================================================================= global_defs


def _garp_extra_if(name: str, low: int) -> _Handler:
    """``[vrrp_]garp_extra_if [all] SECONDS`` (and its old name ``vmac_garp_intvl``)."""
    def handler(node: Node, diag: Diagnostics, values: _Values) -> None:
        _no_block(node, diag)
        if not convert.args(node, diag, 1, 2):
            return
        seconds = None
        every = False
        for word in node.args:
            if word == "all":
                every = True
                continue
            seconds = convert.integer(word, diag, low, 86400, str(node.keyword))
            if seconds is None:
                return
        if seconds is None:
            diag.error(node.origin, f"'{node.keyword}' needs a number of seconds")
            return
        values.set(name, float(seconds), _value_origin(node))
        values.set(name + "_all", every, _value_origin(node))
    return handler


def _iptables(node: Node, diag: Diagnostics, values: _Values) -> None:
    _no_block(node, diag)
    if not convert.args(node, diag, 0, 2):
        return
    chains = [str(w) for w in node.args] or ["INPUT", "OUTPUT"]
    for word in node.args:
        if len(word) >= 29:  # XT_EXTENSION_MAXNAMELEN - 1
            diag.error(word.origin, f"iptables chain name '{word}' is too long")
            return
    values.set("vrrp_iptables_inchain", chains[0], _value_origin(node))
    values.set("vrrp_iptables_outchain", chains[1] if len(chains) > 1 else None,
               _value_origin(node))


def _ipsets(node: Node, diag: Diagnostics, values: _Values) -> None:
    """``vrrp_ipsets [ADDR [ADDR6 [ADDR_IF6 [IGMP [MLD]]]]]``: unnamed sets are derived
    from the names before them, as keepalived does; no names: ipsets not used."""
    _no_block(node, diag)
    if not convert.args(node, diag, 0, 5):
        return
    names = [str(w) for w in node.args]
    for word in node.args:
        if len(word) >= 31:  # IPSET_MAXNAMELEN - 1
            diag.error(word.origin, f"ipset name '{word}' is too long")
            return
    if names:
        base = names[0]
        if len(names) < 2:
            names.append(base + "6")
        if len(names) < 3:
            names.append(names[1].removesuffix("6") + "_if6")
        if len(names) < 4:
            names.append(base + "_igmp")
        if len(names) < 5:
            names.append(base + "_mld")
    values.set("vrrp_ipsets", tuple(names), _value_origin(node))


def _nftables(node: Node, diag: Diagnostics, values: _Values) -> None:
    _no_block(node, diag)
    if not convert.args(node, diag, 0, 1):
        return
    name = str(node.args[0]) if node.args else "keepalived"
    if len(name) >= 256:  # NFT_TABLE_MAXNAMELEN
        diag.error(node.args[0].origin, "nftables table name is too long")
        return
    values.set("nftables", name, _value_origin(node))


def _rx_bufs_policy(node: Node, diag: Diagnostics, values: _Values) -> None:
    _no_block(node, diag)
    word = convert.first(node, diag)
    if word is None:
        return
    if word.upper() in ("MTU", "ADVERT"):
        values.set("vrrp_rx_bufs_policy", RxBufsPolicy(word.upper()), word.origin)
        return
    size = convert.integer(word, diag, 0, UINT32_MAX, "vrrp_rx_bufs_policy")
    if size is not None:
        values.set("vrrp_rx_bufs_policy", RxBufsPolicy.SIZE, word.origin)
        values.set("vrrp_rx_bufs_size", size, word.origin)


def _script_user(node: Node, diag: Diagnostics, values: _Values) -> None:
    _no_block(node, diag)
    if not convert.args(node, diag, 1, 2):
        return
    values.set("script_user", str(node.args[0]), node.args[0].origin)
    if len(node.args) == 2:
        values.set("script_group", str(node.args[1]), node.args[1].origin)


def _dynamic_interfaces(node: Node, diag: Diagnostics, values: _Values) -> None:
    _no_block(node, diag)
    if not convert.args(node, diag, 0, 1):
        return
    if node.args:
        if node.args[0] != "allow_if_changes":
            diag.error(node.args[0].origin, f"unknown option '{node.args[0]}' of "
                                            "dynamic_interfaces (expected allow_if_changes)")
            return
        values.set("dynamic_interfaces_allow_if_changes", True, node.args[0].origin)
    values.set("dynamic_interfaces", True, node.origin)


def _reader(name: str, read: Callable[[Node, Diagnostics], Any]) -> _Handler:
    def handler(node: Node, diag: Diagnostics, values: _Values) -> None:
        value = read(node, diag)
        if value is not None:
            values.set(name, value, _value_origin(node))
    return handler


def _cpus(node: Node, diag: Diagnostics, values: _Values) -> None:
    _no_block(node, diag)
    if not convert.args(node, diag, 1):
        return
    cpus = [convert.integer(w, diag, 0, 4095, "cpu") for w in node.args]
    if None not in cpus:
        values.set("vrrp_cpu_affinity", tuple(cpus), node.args[0].origin)


def _rlimit(node: Node, diag: Diagnostics, values: _Values) -> None:
    _no_block(node, diag)
    word = convert.first(node, diag)
    if word is None:
        return
    usecs = convert.integer(word, diag, 1, UINT32_MAX, str(node.keyword))
    if usecs is not None:
        values.set("vrrp_rlimit_rttime", max(usecs, 2) / 1e6, word.origin)


# Keywords of global_defs that only the VRRP side reads.
_GLOBAL_HANDLERS: dict[str, _Handler] = {
    "vrrp_mcast_group4": _address_of("vrrp_mcast_group4", 4, multicast=True),
    "vrrp_mcast_group6": _address_of("vrrp_mcast_group6", 6, multicast=True),
    "vrrp_version": _integer("vrrp_version", 2, 3),
    "vrrp_garp_master_delay": _duration("vrrp_garp_master_delay", 0, UINT32_MAX // 1_000_000,
                                        whole=True),
    "vrrp_garp_master_repeat": _at_least_one("vrrp_garp_master_repeat"),
    "vrrp_garp_master_refresh": _duration("vrrp_garp_master_refresh", 0, UINT32_MAX,
                                          whole=True),
    "vrrp_garp_master_refresh_repeat": _at_least_one("vrrp_garp_master_refresh_repeat"),
    "vrrp_garp_lower_prio_delay": _duration("vrrp_garp_lower_prio_delay", 0,
                                            UINT32_MAX // 1_000_000, whole=True),
    "vrrp_garp_lower_prio_repeat": _integer("vrrp_garp_lower_prio_repeat", 0, INT32_MAX),
    "vrrp_garp_interval": _duration("vrrp_garp_interval", 1e-6, SCRIPT_SECONDS_MAX, large=1),
    "vrrp_gna_interval": _duration("vrrp_gna_interval", 1e-6, SCRIPT_SECONDS_MAX, large=1),
    "vrrp_min_garp": _flag("vrrp_min_garp"),
    "vrrp_garp_extra_if": _garp_extra_if("vrrp_garp_extra_if", 1),
    "vrrp_down_timer_adverts": _integer("vrrp_down_timer_adverts", 1, 100),
    "vrrp_lower_prio_no_advert": _flag("vrrp_lower_prio_no_advert"),
    "vrrp_higher_prio_send_advert": _flag("vrrp_higher_prio_send_advert"),
    "vrrp_iptables": _iptables,
    "vrrp_ipsets": _ipsets,
    "nftables": _nftables,
    "nftables_priority": _integer("nftables_priority", -INT32_MAX - 1, INT32_MAX),
    "nftables_ifindex": _flag("nftables_ifindex"),
    "disable_local_igmp": _flag("disable_local_igmp"),
    "vrrp_check_unicast_src": _flag("vrrp_check_unicast_src"),
    "vrrp_skip_check_adv_addr": _flag("vrrp_skip_check_adv_addr"),
    "vrrp_strict": _flag("vrrp_strict"),
    "vrrp_startup_delay": _duration("vrrp_startup_delay", 1e-9, SCRIPT_SECONDS_MAX, large=60),
    "log_unknown_vrids": _flag("log_unknown_vrids"),
    "vmac_prefix": _word("vmac_prefix"),
    "vmac_addr_prefix": _word("vmac_addr_prefix"),
    "vrrp_netlink_cmd_rcv_bufs": _integer("vrrp_netlink_cmd_rcv_bufs", 1, UINT32_MAX),
    "vrrp_netlink_cmd_rcv_bufs_force": _flag("vrrp_netlink_cmd_rcv_bufs_force"),
    "vrrp_netlink_monitor_rcv_bufs": _integer("vrrp_netlink_monitor_rcv_bufs", 1, UINT32_MAX),
    "vrrp_netlink_monitor_rcv_bufs_force": _flag("vrrp_netlink_monitor_rcv_bufs_force"),
    "vrrp_rx_bufs_policy": _rx_bufs_policy,
    "vrrp_rx_bufs_multiplier": _integer("vrrp_rx_bufs_multiplier", 1, UINT32_MAX),
    "vrrp_notify_fifo": _reader("vrrp_notify_fifo", _fifo),
    "vrrp_notify_fifo_script": _reader("vrrp_notify_fifo_script", _notify_script),
    "vrrp_notify_priority_changes": _flag("vrrp_notify_priority_changes"),
    "fifo_write_vrrp_states_on_reload": _flag("fifo_write_vrrp_states_on_reload"),
}
_GLOBAL_HANDLERS["vrrp_vmac_garp_intvl"] = _deprecated(  # renamed after v2.2.2
    "vrrp_vmac_garp_intvl", _GLOBAL_HANDLERS["vrrp_garp_extra_if"], "vrrp_garp_extra_if")

# Keywords of global_defs that the daemon's global settings read too.
_SHARED_HANDLERS: dict[str, _Handler] = {
    "vrrp_priority": _integer("vrrp_priority", -20, 19),
    "vrrp_no_swap": _flag("vrrp_no_swap"),
    "vrrp_rt_priority": _integer("vrrp_rt_priority", 1, 99),
    "vrrp_cpu_affinity": _cpus,
    "vrrp_rlimit_rttime": _rlimit,
    "vrrp_rlimit_rtime": _rlimit,
    "process_monitor_rcv_bufs": _integer("process_monitor_rcv_bufs", 1, UINT32_MAX),
    "process_monitor_rcv_bufs_force": _flag("process_monitor_rcv_bufs_force"),
    "nftables_counters": _flag("nftables_counters"),
    "notify_fifo": _reader("notify_fifo", _fifo),
    "notify_fifo_script": _reader("notify_fifo_script", _notify_script),
    "smtp_alert": _flag("smtp_alert"),
    "smtp_alert_vrrp": _flag("smtp_alert_vrrp"),
    "script_user": _script_user,
    "enable_script_security": _flag("enable_script_security"),
    "dynamic_interfaces": _dynamic_interfaces,
    "default_interface": _word("default_interface"),
}

VRRP_GLOBAL_KEYWORDS: frozenset[str] = frozenset(_GLOBAL_HANDLERS)
VRRP_SHARED_GLOBAL_KEYWORDS: frozenset[str] = frozenset(_SHARED_HANDLERS)


def build_vrrp_globals(nodes: Iterable[Node], diag: Diagnostics) -> VrrpGlobals:
    """`VrrpGlobals` from global_defs lines (any of them: others are skipped)."""
    values = _Values()
    quiet = Diagnostics()  # the global_defs builder reports on the shared keywords
    for node in nodes:
        handler = _GLOBAL_HANDLERS.get(node.keyword)
        if handler is not None:
            handler(node, diag, values)
            continue
        handler = _SHARED_HANDLERS.get(node.keyword)
        if handler is not None:
            handler(node, quiet, values)
    found = values.values
    if found.get("vrrp_min_garp"):
        # One GARP/NA burst, no repeat, no refresh: for what is not set explicitly.
        for name, value in (("vrrp_garp_master_repeat", 1), ("vrrp_garp_master_delay", 0.0),
                            ("vrrp_garp_master_refresh", 0.0),
                            ("vrrp_garp_master_refresh_repeat", 0)):
            found.setdefault(name, value)
    defaults = VrrpGlobals()
    found.setdefault("vrrp_garp_lower_prio_delay",
                     found.get("vrrp_garp_master_delay", defaults.vrrp_garp_master_delay))
    found.setdefault("vrrp_garp_lower_prio_repeat",
                     found.get("vrrp_garp_master_repeat", defaults.vrrp_garp_master_repeat))
    return VrrpGlobals(**found, field_origins=values.field_origins())


# ======================================================================= vrrp_script


def _script_command(node: Node, diag: Diagnostics, values: _Values) -> None:
    """``script COMMAND...``: every word of the line is part of the command line."""
    _no_block(node, diag)
    if not convert.args(node, diag, 1):
        return
    command = _command(Word(" ".join(node.args), node.args[0].origin), diag, "script")
    if command is not None:
        values.set("script", command, node.args[0].origin)


def _script_seconds(name: str) -> _Handler:
    """interval/timeout: whole seconds; 0 is read as 1 with a warning (keepalived)."""
    def handler(node: Node, diag: Diagnostics, values: _Values) -> None:
        _no_block(node, diag)
        word = convert.first(node, diag)
        if word is None:
            return
        value = convert.integer(word, diag, 0, SCRIPT_SECONDS_MAX, f"vrrp_script {name}")
        if value == 0:
            diag.warning(word.origin, f"vrrp_script {name} must be greater than 0; using 1")
            value = 1
        if value is not None:
            values.set(name, float(value), word.origin)
    return handler


def _block_weight(limit: int) -> _Handler:
    """``weight W [reverse]`` in a vrrp_script / track_file / vrrp_track_process."""
    def handler(node: Node, diag: Diagnostics, values: _Values) -> None:
        _no_block(node, diag)
        if not convert.args(node, diag, 1, 2):
            return
        weight = convert.integer(node.args[0], diag, -limit, limit, "weight")
        if weight is None:
            return
        reverse = False
        if len(node.args) == 2:
            if node.args[1] != "reverse":
                diag.error(node.args[1].origin, f"unknown weight option '{node.args[1]}' "
                                                "(expected reverse)")
                return
            reverse = True
        values.set("weight", weight, node.args[0].origin)
        values.set("weight_reverse", reverse, node.args[0].origin)
    return handler


def _script_user_group(node: Node, diag: Diagnostics, values: _Values) -> None:
    _no_block(node, diag)
    if not convert.args(node, diag, 1, 2):
        return
    values.set("user", str(node.args[0]), node.args[0].origin)
    values.set("group", str(node.args[1]) if len(node.args) == 2 else None,
               node.args[-1].origin)


def _rise_fall(name: str) -> _Handler:
    return _integer(name, 1, INT32_MAX)


_SCRIPT_HANDLERS: dict[str, _Handler] = {
    "script": _script_command,
    "interval": _script_seconds("interval"),
    "timeout": _script_seconds("timeout"),
    "weight": _block_weight(TRACK_WEIGHT_MAX),
    "rise": _rise_fall("rise"),
    "fall": _rise_fall("fall"),
    "user": _script_user_group,
    "init_fail": _set_value("init_fail", True),
}


def build_vrrp_script(node: Node, diag: Diagnostics) -> VrrpScript | None:
    name = _named_block(node, diag, "vrrp_script")
    if name is None:
        return None
    values = _read_block(node.children or (), diag, _SCRIPT_HANDLERS, f"vrrp_script {name}")
    if "script" not in values:  # keepalived drops it and carries on
        diag.warning(node.origin, f"vrrp_script {name} has no 'script'; ignored")
        return None
    found = values.values
    found.setdefault("timeout", found.get("interval", VrrpScript().interval))
    return VrrpScript(name=name, **found, field_origins=values.field_origins(),
                      origin=node.origin)


# ======================================================================= track_file


def _track_file_path(node: Node, diag: Diagnostics, values: _Values) -> None:
    _no_block(node, diag)
    word = convert.first(node, diag)
    if word is not None:
        if not word:
            diag.error(word.origin, "file: empty path")
            return
        values.set("file", str(word), word.origin)


def _init_file(node: Node, diag: Diagnostics, values: _Values) -> None:
    """``init_file [VALUE] [overwrite]``."""
    _no_block(node, diag)
    if not convert.args(node, diag, 0, 2):
        return
    init_value = 0
    overwrite = False
    for word in node.args:
        if word == "overwrite":
            overwrite = True
            continue
        number = convert.integer(word, diag, -INT32_MAX - 1, INT32_MAX, "init_file value")
        if number is None:
            return
        init_value = number
    values.set("init_file", True, node.origin)
    values.set("init_value", init_value, _value_origin(node))
    values.set("init_overwrite", overwrite, _value_origin(node))


_TRACK_FILE_HANDLERS: dict[str, _Handler] = {
    "file": _track_file_path,
    "weight": _block_weight(TRACK_FILE_WEIGHT_MAX),
    "init_file": _init_file,
}


def build_track_file(node: Node, diag: Diagnostics) -> TrackFile | None:
    """``track_file NAME { }`` (or the deprecated ``vrrp_track_file``)."""
    if node.keyword == "vrrp_track_file":
        diag.warning(node.origin, "'vrrp_track_file' is deprecated; use 'track_file'")
    name = _named_block(node, diag, str(node.keyword))
    if name is None:
        return None
    values = _read_block(node.children or (), diag, _TRACK_FILE_HANDLERS,
                         f"track_file {name}")
    if "file" not in values:
        diag.warning(node.origin, f"track_file {name} has no 'file'; ignored")
        return None
    return TrackFile(name=name, **values.values, field_origins=values.field_origins(),
                     origin=node.origin)


# ======================================================================= vrrp_track_process


def _process(node: Node, diag: Diagnostics, values: _Values) -> None:
    _no_block(node, diag)
    if not convert.args(node, diag, 1):
        return
    if "process" in values:
        diag.error(node.origin, f"'process' already set at {values.origin('process')}; "
                                "this one is ignored")
        return
    values.set("process", str(node.args[0]), node.args[0].origin)
    if len(node.args) > 1:
        values.set("parameters", tuple(str(w) for w in node.args[1:]), node.args[1].origin)
        values.set("full_command", True, node.args[1].origin)


def _param_match(node: Node, diag: Diagnostics, values: _Values) -> None:
    _no_block(node, diag)
    if not convert.args(node, diag, 0, 1):
        return
    match = ParamMatch.EXACT
    if node.args:
        word = convert.choice(node.args[0], ("initial", "partial"), diag, "param_match",
                              case_sensitive=True)
        if word is None:
            return
        match = ParamMatch(word)
    values.set("param_match", match, _value_origin(node))
    values.set("full_command", True, _value_origin(node))


def _process_delay(*names: str) -> _Handler:
    def handler(node: Node, diag: Diagnostics, values: _Values) -> None:
        _no_block(node, diag)
        word = convert.first(node, diag)
        if word is None:
            return
        seconds = convert.number(word, diag, 1e-6, 3600, str(node.keyword))
        if seconds is not None:
            for name in names:
                values.set(name, seconds, word.origin)
    return handler


_TRACK_PROCESS_HANDLERS: dict[str, _Handler] = {
    "process": _process,
    "param_match": _param_match,
    "weight": _block_weight(TRACK_FILE_WEIGHT_MAX),
    "quorum": _integer("quorum", 1, 65535),
    "quorum_max": _integer("quorum_max", 0, 65535),
    "delay": _process_delay("fork_delay", "terminate_delay"),
    "fork_delay": _process_delay("fork_delay"),
    "terminate_delay": _process_delay("terminate_delay"),
    "full_command": _set_value("full_command", True),
}


def build_track_process(node: Node, diag: Diagnostics) -> TrackProcess | None:
    name = _named_block(node, diag, "vrrp_track_process")
    if name is None:
        return None
    values = _read_block(node.children or (), diag, _TRACK_PROCESS_HANDLERS,
                         f"vrrp_track_process {name}")
    if "process" not in values:
        diag.warning(node.origin, f"vrrp_track_process {name} has no 'process'; ignored")
        return None
    found = values.values
    if "parameters" in found:
        found.setdefault("param_match", ParamMatch.EXACT)
    quorum, quorum_max = found.get("quorum", 1), found.get("quorum_max")
    if quorum_max is not None:
        if quorum_max == 0 and "quorum" not in found:
            found["quorum"] = 0  # "quorum_max 0": up only while no such process runs
        elif quorum_max < quorum:
            diag.error(values.origin("quorum_max"),
                       f"quorum_max {quorum_max} is less than quorum {quorum}")
            return None
    return TrackProcess(name=name, **found, field_origins=values.field_origins(),
                        origin=node.origin)


# ======================================================================= tracking lists


def _tracked_interfaces(node: Node, diag: Diagnostics) -> tuple[TrackedInterface, ...] | None:
    entries = _list_block(node, diag)
    if entries is None:
        return None
    found: dict[str, TrackedInterface] = {}
    for entry in entries:
        name = _interface_name(entry.keyword, diag)
        if name is None:
            continue
        weight = _weight([entry.keyword, *entry.args], 1, node, diag, TRACK_WEIGHT_MAX,
                         allow_noreverse=False, old_limit=TRACK_FILE_WEIGHT_MAX)
        if weight is None:
            continue
        if name in found:
            diag.warning(entry.origin, f"duplicate track_interface {name}; ignored")
            continue
        found[name] = TrackedInterface(name=name, weight=weight[0] or 0,
                                       reverse=bool(weight[1]), origin=entry.origin)
    return tuple(found.values())


def _tracked(cls: type, limit: int, old_limit: int | None = None
             ) -> Callable[[Node, Diagnostics], tuple | None]:
    """A track_script / track_file / track_process / track_bfd list: ``NAME [weight W
    [reverse|noreverse]]`` per line."""
    def read(node: Node, diag: Diagnostics) -> tuple | None:
        entries = _list_block(node, diag)
        if entries is None:
            return None
        found: dict[str, Any] = {}
        for entry in entries:
            weight = _weight([entry.keyword, *entry.args], 1, node, diag, limit,
                             allow_noreverse=True, old_limit=old_limit)
            if weight is None:
                continue
            name = str(entry.keyword)
            if name in found:
                diag.warning(entry.origin, f"duplicate {node.keyword} {name}; ignored")
                continue
            found[name] = cls(name=name, weight=weight[0], reverse=weight[1],
                              origin=entry.origin)
        return tuple(found.values())
    return read


_TRACK_READERS: dict[str, tuple[str, Callable[[Node, Diagnostics], tuple | None]]] = {
    "track_interface": ("track_interfaces", _tracked_interfaces),
    "track_script": ("track_scripts", _tracked(TrackedScript, TRACK_WEIGHT_MAX,
                                               TRACK_FILE_WEIGHT_MAX)),
    "track_file": ("track_files", _tracked(TrackedFile, TRACK_FILE_WEIGHT_MAX)),
    "track_process": ("track_processes", _tracked(TrackedProcess, TRACK_FILE_WEIGHT_MAX)),
    "track_bfd": ("track_bfds", _tracked(TrackedBfd, TRACK_WEIGHT_MAX)),
}


def _track_handler(keyword: str) -> _Handler:
    name, read = _TRACK_READERS[keyword]

    def handler(node: Node, diag: Diagnostics, values: _Values) -> None:
        entries = read(node, diag)
        if entries is not None:
            values.set(name, values.get(name, ()) + entries, node.origin)
    return handler


# ======================================================================= vrrp_sync_group


def _member_list(name: str) -> _Handler:
    """``group { NAME... }``: keepalived takes one such block."""
    def handler(node: Node, diag: Diagnostics, values: _Values) -> None:
        if name in values:
            diag.error(node.origin, f"the group list is already given at "
                                    f"{values.origin(name)}; this one is ignored")
            return
        entries = _list_block(node, diag)
        if entries is None:
            return
        members: list[str] = []
        for entry in entries:
            for word in (entry.keyword, *entry.args):
                if word in members:
                    diag.warning(word.origin, f"'{word}' is listed twice; ignored")
                else:
                    members.append(str(word))
        values.set(name, tuple(members), node.origin)
    return handler


_SYNC_GROUP_HANDLERS: dict[str, _Handler] = {
    "group": _member_list("group"),
    **{keyword: _track_handler(keyword) for keyword in _TRACK_READERS},
    "notify_master": _once("notify_master", _notify_script),
    "notify_backup": _once("notify_backup", _notify_script),
    "notify_fault": _once("notify_fault", _notify_script),
    "notify_stop": _once("notify_stop", _notify_script),
    "notify": _once("notify", _notify_script),
    "smtp_alert": _flag("smtp_alert"),
    "global_tracking": _deprecated("global_tracking",
                                   _set_value("sync_group_tracking_weight", True),
                                   "track_interface/track_script/track_file on the sync "
                                   "group"),
    "sync_group_tracking_weight": _set_value("sync_group_tracking_weight", True),
    "notify_priority_changes": _flag("notify_priority_changes"),
}


def build_sync_group(node: Node, diag: Diagnostics,
                     globals: VrrpGlobals | None = None) -> SyncGroup | None:
    """``vrrp_sync_group NAME { }``; smtp_alert and notify_priority_changes inherit
    from ``globals`` (keepalived's defaults without)."""
    name = _named_block(node, diag, "vrrp_sync_group")
    if name is None:
        return None
    globals = globals or VrrpGlobals()
    values = _Values()
    where = f"vrrp_sync_group {name}"
    for child in node.children or ():
        handler = _SYNC_GROUP_HANDLERS.get(child.keyword)
        if handler is not None:
            handler(child, diag, values)
        elif not child.args and child.children is None:
            _unknown_keyword(child, diag, where, _SYNC_GROUP_HANDLERS,
                             hint=" (instance names go in a 'group { }' block)")
        else:
            _unknown_keyword(child, diag, where, _SYNC_GROUP_HANDLERS)
    if not values.get("group"):
        diag.warning(node.origin, f"sync group {name} has no members; ignored")
        return None
    found = values.values
    found.setdefault("smtp_alert", globals.effective_smtp_alert)
    found.setdefault("notify_priority_changes", globals.vrrp_notify_priority_changes)
    return SyncGroup(name=name, **found, field_origins=values.field_origins(),
                     origin=node.origin)


# ======================================================================= track_group, garp_group


def build_track_group(node: Node, diag: Diagnostics) -> StaticTrackGroup | None:
    """``track_group NAME { group { INSTANCE... } }``."""
    name = _named_block(node, diag, "track_group")
    if name is None:
        return None
    values = _read_block(node.children or (), diag, {"group": _member_list("group")},
                         f"track_group {name}")
    if not values.get("group"):
        diag.warning(node.origin, f"track_group {name} has no members; ignored")
        return None
    return StaticTrackGroup(name=name, group=values.get("group"), origin=node.origin)


def _interfaces(node: Node, diag: Diagnostics, values: _Values) -> None:
    entries = _list_block(node, diag)
    if entries is None:
        return
    names = [_interface_name(w, diag) for e in entries for w in (e.keyword, *e.args)]
    if not names:
        diag.warning(node.origin, "empty 'interfaces' block")
        return
    values.set("interfaces", tuple(n for n in names if n is not None), node.origin)


def _interface_field(name: str) -> _Handler:
    def handler(node: Node, diag: Diagnostics, values: _Values) -> None:
        _no_block(node, diag)
        word = convert.first(node, diag)
        if word is not None:
            value = _interface_name(word, diag)
            if value is not None:
                values.set(name, value, word.origin)
    return handler


_GARP_GROUP_HANDLERS: dict[str, _Handler] = {
    "garp_interval": _duration("garp_interval", 0, INT32_MAX / 1e6, large=1),
    "gna_interval": _duration("gna_interval", 0, INT32_MAX / 1e6, large=1),
    "interface": _interface_field("interface"),
    "interfaces": _interfaces,
}


def build_garp_group(node: Node, diag: Diagnostics) -> GarpGroup | None:
    if node.children is None:
        diag.error(node.origin, "'garp_group' needs a { } block")
        return None
    values = _read_block(node.children, diag, _GARP_GROUP_HANDLERS, "garp_group")
    if "garp_interval" not in values and "gna_interval" not in values:
        diag.warning(node.origin, "garp_group sets no delay; ignored")
        return None
    if "interface" in values and "interfaces" in values:
        diag.warning(node.origin, "garp_group: use only one of 'interface' and "
                                  "'interfaces'")
    return GarpGroup(**values.values, origin=node.origin)


# ======================================================================= addresses


def _scope(word: Word, diag: Diagnostics) -> Scope | int | None:
    """A scope name, or a number 0-255 as keepalived also takes (rt_scopes numbers)."""
    if word[:1].isdigit():
        number = convert.integer(word, diag, 0, SCOPE_MAX, "scope")
        return None if number is None else scope_of(number)
    value = convert.choice(word, [s.value for s in Scope], diag, "scope",
                           case_sensitive=True)
    return None if value is None else Scope(value)


_ADDRESS_FLAGS = {"home": "home", "-nodad": "nodad", "mngtmpaddr": "mngtmpaddr",
                  "noprefixroute": "noprefixroute", "autojoin": "autojoin",
                  "no_track": "no_track", "use_vmac": "use_vmac"}
_ADDRESS_OPTIONS = ("brd", "broadcast", "dev", "scope", "label", "peer", "preferred_lft",
                    "track_group")


def _address_entry(node: Node, diag: Diagnostics, static: bool) -> VirtualAddress | None:
    """``ADDR[/PREFIX] [brd ADDR|+|-] [dev IF] [scope S] [label L] [peer ADDR] [home]
    [-nodad] [mngtmpaddr] [noprefixroute] [autojoin] [no_track] [use_vmac]
    [preferred_lft N|forever] [track_group G]`` (track_group: static addresses only)."""
    address = convert.interface(node.keyword, diag)
    if address is None:
        return None
    values: dict[str, Any] = {"address": address}
    words = node.args
    i = 0
    broadcast: Word | None = None
    while i < len(words):
        word = words[i]
        if word in _ADDRESS_FLAGS:
            values[_ADDRESS_FLAGS[word]] = True
            i += 1
            continue
        if word not in _ADDRESS_OPTIONS or (word == "track_group" and not static):
            # keepalived skips a word it does not know and keeps the address
            known = list(_ADDRESS_FLAGS) + [o for o in _ADDRESS_OPTIONS
                                             if static or o != "track_group"]
            close = difflib.get_close_matches(str(word), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            diag.warning(word.origin, f"unknown option '{word}' of address {address}{hint}; "
                                      "ignored")
            i += 1
            continue
        if i + 1 >= len(words):
            diag.error(word.origin, f"'{word}' needs a value")
            return None
        value = words[i + 1]
        i += 2
        if word in ("brd", "broadcast"):
            broadcast = value
        elif word == "dev":
            name = _interface_name(value, diag)
            if name is None:
                return None
            values["dev"] = name
        elif word == "scope":
            scope = _scope(value, diag)
            if scope is None:
                return None
            values["scope"] = scope
        elif word == "label":
            if len(value) >= IFNAMSIZ:
                diag.error(value.origin, f"label '{value}' is too long (at most "
                                         f"{IFNAMSIZ - 1} characters)")
                return None
            values["label"] = str(value)
        elif word == "peer":
            peer = convert.interface(value, diag, "peer address")
            if peer is None:
                return None
            if peer.version != address.version:
                diag.error(value.origin, f"peer {peer.ip} is not of the family of {address}")
                return None
            values["peer"] = peer
        elif word == "preferred_lft":
            if value == "forever":
                values["preferred_lft"] = PREFERRED_LFT_FOREVER
            else:
                lft = convert.integer(value, diag, 0, PREFERRED_LFT_FOREVER, "preferred_lft")
                if lft is None:
                    return None
                values["preferred_lft"] = lft
        else:
            values["track_group"] = str(value)
    if broadcast is not None:
        resolved = _broadcast(broadcast, address, diag)
        if resolved is None:
            return None
        values["broadcast"] = resolved
    return VirtualAddress(**values, origin=node.origin)


def _broadcast(word: Word, address: Any, diag: Diagnostics) -> ipaddress.IPv4Address | None:
    if address.version != 4:
        diag.error(word.origin, f"an IPv6 address ({address}) has no broadcast address")
        return None
    if word == "+":
        return address.network.broadcast_address
    if word == "-":
        return address.network.network_address
    value = convert.address(word, diag, "broadcast address")
    if value is None:
        return None
    if value.version != 4:
        diag.error(word.origin, f"broadcast {value} is not an IPv4 address")
        return None
    return value


def _addresses(node: Node, diag: Diagnostics, static: bool) -> tuple[VirtualAddress, ...]:
    entries = _list_block(node, diag)
    built = (_address_entry(e, diag, static) for e in entries or ())
    return tuple(a for a in built if a is not None)


def build_static_addresses(node: Node, diag: Diagnostics) -> tuple[VirtualAddress, ...]:
    """``static_ipaddress { }``."""
    return _addresses(node, diag, static=True)


# ======================================================================= routes


_RT_TABLE_NAMES = {"unspec": 0, "default": 253, "main": 254, "local": 255}
_RT_TABLE_FILES = ("/etc/iproute2/rt_tables", "/usr/share/iproute2/rt_tables",
                   "/usr/lib/iproute2/rt_tables")


@functools.cache
def _rt_tables() -> dict[str, int]:
    """Routing table names: iproute2's well-known ones and the host's rt_tables."""
    tables = dict(_RT_TABLE_NAMES)
    for path in _RT_TABLE_FILES:
        try:
            with open(path, encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    fields = line.split("#", 1)[0].split()
                    if len(fields) >= 2 and fields[0].isdigit():
                        tables.setdefault(fields[1], int(fields[0]))
        except OSError:
            continue
    return tables


def _table(word: Word, diag: Diagnostics) -> int | None:
    if word[:1].isdigit():
        return convert.integer(word, diag, 0, UINT32_MAX, "routing table")
    table = _rt_tables().get(str(word))
    if table is None:
        diag.error(word.origin, f"routing table '{word}' not found")
    return table


_RT_REALMS_FILES = ("/etc/iproute2/rt_realms", "/usr/share/iproute2/rt_realms",
                    "/usr/lib/iproute2/rt_realms")


@functools.cache
def _rt_realm_names() -> frozenset[str]:
    names = {"unknown"}
    for path in _RT_REALMS_FILES:
        try:
            with open(path, encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    fields = line.split("#", 1)[0].split()
                    if len(fields) >= 2:
                        names.add(fields[1])
        except OSError:
            continue
    return frozenset(names)


def _realms(word: Word, diag: Diagnostics) -> bool:
    """``[FROM/]TO``: realm numbers (0-65535, hex allowed) or names from rt_realms."""
    for part in str(word).split("/", 1):
        try:
            ok = 0 <= int(part, 0) <= 65535
        except ValueError:
            ok = part in _rt_realm_names()
        if not ok:
            diag.error(word.origin, f"invalid realms '{word}' (realm numbers or names from "
                                    "rt_realms, FROM/TO)")
            return False
    return True


def _network(word: Word, diag: Diagnostics, what: str) -> Any:
    try:
        return ipaddress.ip_network(str(word), strict=False)
    except ValueError:
        diag.error(word.origin, f"'{word}' is not a valid {what} (ADDRESS[/PREFIX])")
        return None


_ROUTE_TYPES = frozenset(t.value for t in RouteType)
# Route attributes kept as written: name -> whether "lock" may precede the value.
_ROUTE_METRICS: dict[str, bool] = {
    "mtu": True, "advmss": True, "hoplimit": True, "rtt": True, "rttvar": True,
    "reordering": True, "window": True, "cwnd": True, "ssthresh": True, "rto_min": True,
    "initcwnd": True, "initrwnd": True, "quickack": False, "fastopen_no_cookie": False,
    "features": False, "congctl": True, "pref": False, "expires": False,
    "ttl-propagate": False,
}
_NUMERIC_METRICS = frozenset({"mtu", "advmss", "hoplimit", "rtt", "rttvar", "reordering",
                              "window", "cwnd", "ssthresh", "rto_min", "initcwnd",
                              "initrwnd", "quickack", "fastopen_no_cookie", "expires"})
_METRIC_CHOICES = {"features": ("ecn",), "pref": ("low", "medium", "high"),
                   "ttl-propagate": ("enabled", "disabled")}
_ROUTE_WORDS = frozenset({"src", "to", "via", "gw", "or", "dev", "oif", "scope", "table",
                          "metric", "priority", "preference", "protocol", "proto", "tos",
                          "dsfield", "realms", "onlink", "nexthop", "encap", "vrf",
                          "append", "no_track", "track_group", "inet6", "inet"}) \
    | _ROUTE_TYPES | frozenset(_ROUTE_METRICS)


class _RouteParser:
    """One ``ip route`` line of keepalived's route lists."""

    def __init__(self, node: Node, diag: Diagnostics, static: bool):
        self.words: list[Word] = [node.keyword, *node.args]
        self.node = node
        self.diag = diag
        self.static = static
        self.i = 0
        self.values: dict[str, Any] = {}
        self.nexthops: list[NextHop] = []
        self.metrics: list[RouteMetric] = []
        self.inet6: Word | None = None
        self.default: Word | None = None

    def next(self, what: str) -> Word | None:
        if self.i >= len(self.words):
            self.diag.error(self.words[-1].origin, f"'{self.words[-1]}' needs {what}")
            return None
        word = self.words[self.i]
        self.i += 1
        return word

    def address(self, what: str) -> IPAddress | None:
        word = self.next(what)
        if word is None:
            return None
        if word in ("inet", "inet6"):  # "via inet6 ADDR" (an IPv6 gateway for IPv4)
            word = self.next(what)
            if word is None:
                return None
        return convert.address(word, self.diag, what)

    def parse(self) -> Route | None:
        ok = True
        while ok and self.i < len(self.words):
            word = self.words[self.i]
            self.i += 1
            ok = self.option(word)
        if not ok:
            return None
        return self.finish()

    def option(self, word: Word) -> bool:
        values = self.values
        if word in _ROUTE_TYPES and "destination" not in values:
            values["type"] = RouteType(str(word))
        elif word in ("inet", "inet6"):
            if not _family_word_last(word, self.i, self.words, self.diag):
                return False
            if word == "inet6":
                self.inet6 = word
        elif word == "src":
            source = self.address("a source address")
            if source is None:
                return False
            values["source"] = source
        elif word == "to":
            target = self.next("a destination")
            return target is not None and self.destination(target)
        elif word in ("via", "gw"):
            if word == "gw":
                self.diag.warning(word.origin, "'gw' for routes is deprecated; use 'via'")
            via = self.address("a gateway address")
            if via is None:
                return False
            values["via"] = via
        elif word == "or":
            self.diag.warning(word.origin, "'or' for routes is deprecated; use 'nexthop'")
            alternative = self.address("a gateway address")
            if alternative is None:
                return False
            if not self.nexthops and "via" in values:
                self.nexthops.append(NextHop(via=values.pop("via"), origin=word.origin))
            self.nexthops.append(NextHop(via=alternative, origin=word.origin))
        elif word in ("dev", "oif"):
            name = self.next("an interface")
            if name is None or (dev := _interface_name(name, self.diag)) is None:
                return False
            values["dev"] = dev
        elif word == "scope":
            name = self.next("a scope")
            if name is None or (scope := _scope(name, self.diag)) is None:
                return False
            values["scope"] = scope
        elif word == "table":
            name = self.next("a table")
            if name is None or (table := _table(name, self.diag)) is None:
                return False
            values["table"] = table
        elif word in ("metric", "priority", "preference"):
            return self.integer("metric", 0, UINT32_MAX)
        elif word in ("protocol", "proto"):
            name = self.next("a protocol")
            if name is None:
                return False
            values["protocol"] = str(name)
        elif word in ("tos", "dsfield"):
            return self.integer("tos", 0, 255)
        elif word == "realms":
            name = self.next("realms")
            if name is None or not _realms(name, self.diag):
                return False
            values["realms"] = str(name)
        elif word == "onlink":
            values["onlink"] = True
        elif word == "nexthop":
            return self.nexthop(word)
        elif word in _ROUTE_METRICS:
            return self.metric(word)
        elif word == "encap":
            start = self.i
            while self.i < len(self.words) and self.words[self.i] not in _ROUTE_WORDS:
                self.i += 1
            if self.i == start:
                self.diag.error(word.origin, "'encap' needs a type and its options")
                return False
            values["encap"] = tuple(str(w) for w in self.words[start:self.i])
        elif word == "vrf":
            name = self.next("a VRF")
            if name is None:
                return False
            values["vrf"] = str(name)
        elif word in ("append", "no_track"):
            values[str(word)] = True
        elif word == "track_group" and self.static:
            name = self.next("a track group")
            if name is None:
                return False
            values["track_group"] = str(name)
        elif "destination" not in values and word not in _ROUTE_WORDS:
            return self.destination(word)
        else:
            close = difflib.get_close_matches(str(word), sorted(_ROUTE_WORDS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            self.diag.error(word.origin, f"unknown route option '{word}'{hint}")
            return False
        return True

    def destination(self, word: Word) -> bool:
        if "destination" in self.values:
            self.diag.error(word.origin, f"the route already has destination "
                                         f"{self.values['destination']}")
            return False
        if word == "default":
            self.values["destination"] = None  # its family is known at the end
            self.default = word
            return True
        network = _network(word, self.diag, "route destination")
        if network is None:
            return False
        self.values["destination"] = network
        return True

    def integer(self, name: str, low: int, high: int) -> bool:
        word = self.next("a number")
        if word is None:
            return False
        value = convert.integer(word, self.diag, low, high, name)
        if value is None:
            return False
        self.values[name] = value
        return True

    def metric(self, name: Word) -> bool:
        lock = False
        word = self.next("a value")
        if word is None:
            return False
        if word == "lock" and _ROUTE_METRICS[name]:
            lock = True
            word = self.next("a value")
            if word is None:
                return False
        if name in _NUMERIC_METRICS:
            if convert.integer(word, self.diag, 0, UINT32_MAX, str(name)) is None:
                return False
        elif name in _METRIC_CHOICES and convert.choice(
                word, _METRIC_CHOICES[name], self.diag, str(name), case_sensitive=True) is None:
            return False
        self.metrics.append(RouteMetric(name=str(name), value=str(word), lock=lock))
        return True

    def nexthop(self, start: Word) -> bool:
        hop: dict[str, Any] = {}
        while self.i < len(self.words):
            word = self.words[self.i]
            if word == "via":
                self.i += 1
                via = self.address("a gateway address")
                if via is None:
                    return False
                hop["via"] = via
            elif word == "dev":
                self.i += 1
                name = self.next("an interface")
                if name is None or (dev := _interface_name(name, self.diag)) is None:
                    return False
                hop["dev"] = dev
            elif word == "weight":
                self.i += 1
                number = self.next("a weight")
                if number is None:
                    return False
                weight = convert.integer(number, self.diag, 1, 256, "nexthop weight")
                if weight is None:
                    return False
                hop["weight"] = weight
            elif word == "onlink":
                self.i += 1
                hop["onlink"] = True
            else:
                break
        if "via" not in hop and "dev" not in hop:
            self.diag.error(start.origin, "'nexthop' needs 'via' or 'dev'")
            return False
        self.nexthops.append(NextHop(**hop, origin=start.origin))
        return True

    def finish(self) -> Route | None:
        values = self.values
        origin = self.node.origin
        if "destination" not in values:
            self.diag.error(origin, "the route has no destination")
            return None
        if self.default is not None:
            families = {a.version for a in [values.get("source"), values.get("via")]
                        + [h.via for h in self.nexthops] if a is not None}
            six = self.inet6 is not None or families == {6}
            values["destination"] = ipaddress.ip_network("::/0" if six else "0.0.0.0/0")
        destination = values["destination"]
        if self.inet6 is not None and destination.version != 6:
            self.diag.error(self.inet6.origin, f"'inet6' with the IPv4 destination "
                                               f"{destination}")
            return None
        source = values.get("source")
        if source is not None and source.version != destination.version:
            self.diag.error(origin, "cannot mix IPv4 and IPv6 addresses in a route")
            return None
        gateways = [values.get("via")] + [h.via for h in self.nexthops]
        for gateway in gateways:
            if gateway is not None and gateway.version != destination.version:
                self.diag.error(origin, f"cannot mix IPv4 and IPv6 addresses in a route "
                                        f"(gateway {gateway}, destination {destination})")
                return None
        if self.nexthops and "via" in values:
            self.nexthops.insert(0, NextHop(via=values.pop("via"), origin=origin))
        return Route(**values, nexthops=tuple(self.nexthops), metrics=tuple(self.metrics),
                     origin=origin)


def _family_word_last(word: Word, after: int, words: list[Word], diag: Diagnostics) -> bool:
    """keepalived 2.2.7 takes the word after ``inet6`` of a route or rule as its value
    and loses it: only a last ``inet6`` does what it says."""
    if after < len(words):
        diag.error(word.origin, f"'{word}' must end the line (keepalived takes the word "
                                f"after it, '{words[after]}', as its value)")
        return False
    return True


def _routes(node: Node, diag: Diagnostics, static: bool) -> tuple[Route, ...]:
    entries = _list_block(node, diag)
    built = (_RouteParser(e, diag, static).parse() for e in entries or ())
    return tuple(r for r in built if r is not None)


def build_static_routes(node: Node, diag: Diagnostics) -> tuple[Route, ...]:
    """``static_routes { }``."""
    return _routes(node, diag, static=True)


# ======================================================================= rules


_RULE_ACTIONS = {"blackhole": RuleAction.BLACKHOLE, "unreachable": RuleAction.UNREACHABLE,
                 "prohibit": RuleAction.PROHIBIT, "nop": RuleAction.NOP}
_RULE_WORDS = ("from", "to", "not", "table", "lookup", "preference", "priority", "iif",
               "dev", "oif", "tos", "dsfield", "fwmark", "realms", "goto",
               "suppress_prefixlength", "suppress_ifgroup", "uidrange", "l3mdev",
               "protocol", "ipproto", "sport", "dport", "type", "no_track",
               "track_group", "inet6", *_RULE_ACTIONS)


def _range(word: Word, diag: Diagnostics, what: str, high: int) -> tuple[int, ...] | None:
    """``FIRST-LAST`` (keepalived 2.2.7 takes no single value)."""
    head, _, tail = str(word).partition("-")
    if not tail:
        diag.error(word.origin, f"{what} needs a range FIRST-LAST, not '{word}'")
        return None
    first = convert.integer(Word(head, word.origin), diag, 0, high, what)
    if first is None:
        return None
    last = convert.integer(Word(tail, word.origin), diag, 0, high, what)
    if last is None:
        return None
    if last < first:
        diag.error(word.origin, f"{what} {word}: the range ends before it starts")
        return None
    return first, last


def _rule_entry(node: Node, diag: Diagnostics, static: bool) -> Rule | None:
    words = [node.keyword, *node.args]
    values: dict[str, Any] = {}
    inet6: Word | None = None
    protocol_word: Word | None = None
    i = 0

    def take(what: str) -> Word | None:
        nonlocal i
        if i >= len(words):
            diag.error(words[-1].origin, f"'{words[-1]}' needs {what}")
            return None
        i += 1
        return words[i - 1]

    while i < len(words):
        word = words[i]
        i += 1
        if word in ("from", "to"):
            value = take("an address")
            if value is None:
                return None
            key = "source" if word == "from" else "destination"
            if value == "all":
                values.pop(key, None)
                continue
            network = _network(value, diag, f"rule '{word}' address")
            if network is None:
                return None
            values[key] = network
        elif word == "not":
            values["invert"] = True
        elif word in ("table", "lookup"):
            value = take("a table")
            if value is None or (table := _table(value, diag)) is None:
                return None
            values["table"] = table
        elif word in ("preference", "priority", "goto", "suppress_prefixlength", "tos",
                      "dsfield"):
            value = take("a number")
            name = {"priority": "preference", "dsfield": "tos"}.get(str(word), str(word))
            high = 255 if name == "tos" else UINT32_MAX
            number = None if value is None else convert.integer(value, diag, 0, high, name)
            if number is None:
                return None
            values[name] = number
            if name == "goto":
                values["action"] = RuleAction.GOTO
        elif word in ("iif", "dev", "oif"):
            value = take("an interface")
            if value is None or (name := _interface_name(value, diag)) is None:
                return None
            values["oif" if word == "oif" else "iif"] = name
        elif word == "fwmark":
            value = take("a mark")
            if value is None:
                return None
            mark, _, mask = str(value).partition("/")
            number = convert.integer(Word(mark, value.origin), diag, 0, UINT32_MAX, "fwmark")
            if number is None:
                return None
            values["fwmark"] = number
            if mask:
                bits = convert.integer(Word(mask, value.origin), diag, 0, UINT32_MAX,
                                       "fwmark mask")
                if bits is None:
                    return None
                values["fwmask"] = bits
        elif word == "protocol":
            value = take("a protocol number")
            number = None if value is None else convert.integer(value, diag, 0, 255,
                                                                "rule protocol")
            if number is None:
                return None
            values["protocol"] = str(number)
            protocol_word = word
        elif word in ("realms", "suppress_ifgroup", "ipproto", "track_group"):
            if word == "track_group" and not static:
                diag.error(word.origin, "track_group applies to static rules only")
                return None
            value = take("a value")
            if value is None or (word == "realms" and not _realms(value, diag)):
                return None
            values["ip_proto" if word == "ipproto" else str(word)] = str(value)
        elif word == "ip_proto":
            diag.error(word.origin, "unknown rule option 'ip_proto' (keepalived 2.2.7 "
                                    "spells it 'ipproto')")
            return None
        elif word in ("uidrange", "sport", "dport"):
            value = take("a range")
            high = UINT32_MAX if word == "uidrange" else 65535
            span = None if value is None else _range(value, diag, str(word), high)
            if span is None:
                return None
            values[str(word)] = span
        elif word == "type":
            value = take("an action")
            if value is None:
                return None
            action = convert.choice(value, list(_RULE_ACTIONS), diag, "rule action",
                                    case_sensitive=True)
            if action is None:
                return None
            values["action"] = _RULE_ACTIONS[action]
        elif word in _RULE_ACTIONS:
            values["action"] = _RULE_ACTIONS[str(word)]
        elif word in ("l3mdev", "no_track"):
            values[str(word)] = True
        elif word == "inet6":
            if not _family_word_last(word, i, words, diag):
                return None
            inet6 = word
        else:
            close = difflib.get_close_matches(str(word), list(_RULE_WORDS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            diag.error(word.origin, f"unknown rule option '{word}'{hint}")
            return None
    families = {n.version for n in (values.get("source"), values.get("destination")) if n}
    if len(families) > 1:
        diag.error(node.origin, "cannot mix IPv4 and IPv6 addresses in a rule")
        return None
    if inet6 is not None and 4 in families:
        diag.error(inet6.origin, "'inet6' with IPv4 addresses")
        return None
    family = AddressFamily.INET6 if 6 in families or inet6 is not None else AddressFamily.INET
    has_action = any(k in values for k in ("table", "goto", "action"))
    if values.get("l3mdev") and has_action:
        diag.error(node.origin, "l3mdev is the rule's action: it takes no other")
        return None
    if not has_action and not values.get("l3mdev"):
        diag.error(node.origin, "the rule has no action: give a table, goto or type")
        return None
    if protocol_word is not None and values["protocol"] != "18" and not values.get("no_track"):
        diag.warning(protocol_word.origin, "a tracked rule must have protocol 18 "
                                           "(keepalived); protocol ignored (or add no_track)")
        del values["protocol"]
    if "preference" not in values:
        diag.warning(node.origin, "the rule has no preference; keepalived then picks one, "
                                  "probably not what you want")
    return Rule(family=family, **values, origin=node.origin)


def _rules(node: Node, diag: Diagnostics, static: bool) -> tuple[Rule, ...]:
    entries = _list_block(node, diag)
    built = (_rule_entry(e, diag, static) for e in entries or ())
    return tuple(r for r in built if r is not None)


def build_static_rules(node: Node, diag: Diagnostics) -> tuple[Rule, ...]:
    """``static_rules { }``."""
    return _rules(node, diag, static=True)


# ======================================================================= vrrp_instance


def _state(node: Node, diag: Diagnostics, values: _Values) -> None:
    _no_block(node, diag)
    word = convert.first(node, diag)
    if word is None:
        return
    state = convert.choice(word, ("MASTER", "BACKUP"), diag, "state", case_sensitive=True)
    if state is None:
        return
    if state == "BACKUP" and values.get("state") is InstanceState.MASTER:
        diag.warning(word.origin, "state already set to MASTER; BACKUP ignored")
        return
    values.set("state", InstanceState(state), word.origin)


def _interface(node: Node, diag: Diagnostics, values: _Values) -> None:
    _no_block(node, diag)
    word = convert.first(node, diag)
    if word is None:
        return
    name = _interface_name(word, diag)
    if name is None:
        return
    if name == "lo":
        diag.error(word.origin, "a loopback interface cannot be used for VRRP")
        return
    values.set("interface", name, word.origin)


def _use_vmac(node: Node, diag: Diagnostics, values: _Values) -> None:
    """``use_vmac [NAME] [MAC]`` (the MAC may have 5 octets: the VRID is the 6th)."""
    _no_block(node, diag)
    values.set("use_vmac", True, node.origin)
    words = list(node.args)
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if ":" in word:
            if "vmac_address" in values:
                diag.error(word.origin, "the VMAC address is already given")
                continue
            mac = _mac(word, diag)
            if mac is not None:
                values.set("vmac_address", mac, word.origin)
            continue
        if word == "name" and i < len(words):
            word = words[i]
            i += 1
        if "vmac_interface" in values:
            diag.error(word.origin, "the VMAC interface name is already given")
            continue
        name = _interface_name(word, diag, "VMAC interface")
        if name is not None:
            values.set("vmac_interface", name, word.origin)


def _mac(word: Word, diag: Diagnostics) -> str | None:
    octets = str(word).rstrip(":").split(":")
    if len(octets) not in (5, 6) or not all(
            1 <= len(o) <= 2 and all(c in "0123456789abcdefABCDEF" for c in o)
            for o in octets):
        diag.error(word.origin, f"'{word}' is not a valid MAC address (5 or 6 octets)")
        return None
    value = [int(o, 16) for o in octets]
    if value[0] & 1:
        diag.error(word.origin, f"VMAC address {word} is a multicast address")
        return None
    if value[:4] == [0, 0, 0x5E, 0] and value[4] in (1, 2):
        diag.error(word.origin, f"VMAC address {word} is an RFC 5798 address")
        return None
    return ":".join(f"{o:02x}" for o in value)


def _use_ipvlan(node: Node, diag: Diagnostics, values: _Values) -> None:
    """``use_ipvlan [NAME] [ADDRESS[/PREFIX]] [bridge|private|vepa]``."""
    _no_block(node, diag)
    if "use_ipvlan" in values:
        diag.error(node.origin, "use_ipvlan is already given")
        return
    values.set("use_ipvlan", True, node.origin)
    for word in node.args:
        if word in ("bridge", "private", "vepa"):
            if "ipvlan_mode" in values:
                diag.error(word.origin, "the ipvlan mode is already given")
            else:
                values.set("ipvlan_mode", IpvlanMode(str(word)), word.origin)
            continue
        try:
            address = ipaddress.ip_interface(str(word))
        except ValueError:
            address = None
        if address is not None:
            if "ipvlan_address" in values:
                diag.error(word.origin, "the ipvlan address is already given")
            else:
                values.set("ipvlan_address", address, word.origin)
            continue
        if "ipvlan_interface" in values:
            diag.error(word.origin, "the ipvlan interface name is already given")
            continue
        name = _interface_name(word, diag, "ipvlan interface")
        if name is not None:
            values.set("ipvlan_interface", name, word.origin)


def _unicast_peers(node: Node, diag: Diagnostics, values: _Values) -> None:
    entries = _list_block(node, diag)
    if entries is None:
        return
    values.set("unicast_keyword", True, node.origin)
    peers = list(values.get("unicast_peers", ()))
    for entry in entries:
        address = convert.address(entry.keyword, diag, "unicast peer address")
        if address is None:
            continue
        ttls: dict[str, int] = {}
        words = entry.args
        ok = True
        for at in range(0, len(words), 2):
            option = words[at]
            if option not in ("min_ttl", "max_ttl"):
                diag.error(option.origin, f"unknown unicast_peer option '{option}' "
                                          "(expected min_ttl or max_ttl)")
                ok = False
                break
            if at + 1 >= len(words):
                diag.error(option.origin, f"'{option}' needs a value")
                ok = False
                break
            ttl = convert.integer(words[at + 1], diag, 0, 255, str(option))
            if ttl is None:
                ok = False
                break
            ttls[str(option)] = ttl
        if not ok:
            continue
        peer = UnicastPeer(address=address, origin=entry.origin, **ttls)
        if peer.min_ttl > peer.max_ttl:
            diag.warning(entry.origin, f"unicast peer {address}: min_ttl {peer.min_ttl} > "
                                       f"max_ttl {peer.max_ttl}: every advert is dropped")
        if ttls:
            values.set("check_unicast_src", True, entry.origin)
        peers.append(peer)
    values.set("unicast_peers", tuple(peers), node.origin)


def _old_unicast_checksum(node: Node, diag: Diagnostics, values: _Values) -> None:
    _no_block(node, diag)
    if not convert.args(node, diag, 0, 1):
        return
    values.set("unicast_keyword", True, node.origin)
    mode = OldUnicastChecksum.ALWAYS
    if node.args:
        if node.args[0] != "never":
            diag.error(node.args[0].origin, f"unknown old_unicast_checksum mode "
                                            f"'{node.args[0]}' (expected never)")
            return
        mode = OldUnicastChecksum.NEVER
    values.set("old_unicast_checksum", mode, _value_origin(node))


def _unicast_flag(name: str) -> _Handler:
    """A keyword that also makes the instance meant for unicast."""
    def handler(node: Node, diag: Diagnostics, values: _Values) -> None:
        _no_block(node, diag)
        if convert.args(node, diag, 0, 0):
            values.set(name, True, node.origin)
            values.set("unicast_keyword", True, node.origin)
    return handler


def _source_ip(deprecated: bool) -> _Handler:
    def handler(node: Node, diag: Diagnostics, values: _Values) -> None:
        _no_block(node, diag)
        word = convert.first(node, diag)
        if word is None:
            return
        address = convert.address(word, diag, "source address")
        if address is None:
            return
        if not deprecated:
            values.set("unicast_keyword", True, node.origin)
        values.set("unicast_src_ip", address, word.origin)
    return handler


def _advert_int(node: Node, diag: Diagnostics, values: _Values) -> None:
    _no_block(node, diag)
    word = convert.first(node, diag)
    if word is None:
        return
    value = convert.number(word, diag, 0.01, ADVERT_INT_V2_MAX, "advert_int")
    if value is not None:
        values.set("advert_int", value, word.origin)


def _preempt_delay(node: Node, diag: Diagnostics, values: _Values) -> None:
    _no_block(node, diag)
    word = convert.first(node, diag)
    if word is None:
        return
    value = convert.number(word, diag, 0, TIMER_MAX_SEC, "preempt_delay")
    if value is not None:
        values.set("preempt_delay", value, word.origin)


def _authentication(node: Node, diag: Diagnostics, values: _Values) -> None:
    if node.children is None:
        diag.error(node.origin, "'authentication' needs a { } block")
        return
    auth = _Values()
    for child in node.children:
        _no_block(child, diag)
        if child.keyword == "auth_type":
            word = convert.first(child, diag)
            if word is None:
                continue
            kind = convert.choice(word, ("PASS", "AH"), diag, "auth_type", case_sensitive=True)
            if kind is not None:
                auth.set("auth_type", AuthType(kind), word.origin)
        elif child.keyword == "auth_pass":
            if not convert.args(child, diag, 1):
                continue
            password = " ".join(child.args)  # a password may hold spaces
            if len(password) > AUTH_PASS_MAX:
                diag.warning(child.args[0].origin, f"auth_pass is cut to its first "
                                                   f"{AUTH_PASS_MAX} characters")
                password = password[:AUTH_PASS_MAX]
            auth.set("auth_pass", password, child.args[0].origin)
        else:
            _unknown_keyword(child, diag, "authentication", ("auth_type", "auth_pass"))
    if "auth_type" not in auth:
        diag.warning(node.origin, "authentication without auth_type; ignored")
        return
    values.set("authentication", Authentication(**auth.values, origin=node.origin),
               node.origin)


def _address_list(name: str) -> _Handler:
    def handler(node: Node, diag: Diagnostics, values: _Values) -> None:
        values.set(name, values.get(name, ()) + _addresses(node, diag, static=False),
                   node.origin)
    return handler


def _route_list(node: Node, diag: Diagnostics, values: _Values) -> None:
    values.set("virtual_routes", values.get("virtual_routes", ())
               + _routes(node, diag, static=False), node.origin)


def _rule_list(node: Node, diag: Diagnostics, values: _Values) -> None:
    values.set("virtual_rules", values.get("virtual_rules", ())
               + _rules(node, diag, static=False), node.origin)


def _notify_deleted(node: Node, diag: Diagnostics, values: _Values) -> None:
    if "notify_deleted" in values:
        diag.error(node.origin, f"'notify_deleted' already set at "
                                f"{values.origin('notify_deleted')}; this one is ignored")
        return
    if node.args:
        script = _notify_script(node, diag)
        if script is None:
            return
        values.set("notify_deleted_script", script, _value_origin(node))
    else:
        _no_block(node, diag)
    values.set("notify_deleted", True, node.origin)


def _kernel_rx_buf_size(node: Node, diag: Diagnostics, values: _Values) -> None:
    _no_block(node, diag)
    word = convert.first(node, diag)
    if word is not None:
        size = convert.integer(word, diag, 0, UINT32_MAX, "kernel_rx_buf_size")
        if size is not None:
            values.set("kernel_rx_buf_size", size, word.origin)


def _deprecated_flag(keyword: str, message: str) -> _Handler:
    def handler(node: Node, diag: Diagnostics, values: _Values) -> None:
        diag.warning(node.origin, message)
        values.set(keyword, True, node.origin)
    return handler


def _lvs_sync_daemon_interface(node: Node, diag: Diagnostics, values: _Values) -> None:
    diag.warning(node.origin, "'lvs_sync_daemon_interface' in a vrrp_instance is "
                              "deprecated; use global_defs lvs_sync_daemon")
    _no_block(node, diag)
    word = convert.first(node, diag)
    if word is not None:
        name = _interface_name(word, diag)
        if name is not None:
            values.set("lvs_sync_daemon_interface", name, word.origin)


_INSTANCE_HANDLERS: dict[str, _Handler] = {
    "state": _state,
    "interface": _interface,
    "vrf": _interface_field("vrf"),
    "use_vmac": _use_vmac,
    "use_vmac_addr": _set_value("use_vmac_addr", True),
    "vmac_xmit_base": _set_value("vmac_xmit_base", True),
    "use_ipvlan": _use_ipvlan,
    "native_ipv6": _deprecated("native_ipv6", _set_value("native_ipv6", True),
                               "IPv6 virtual addresses (they set the family)"),
    "dont_track_primary": _set_value("dont_track_primary", True),
    **{keyword: _track_handler(keyword) for keyword in _TRACK_READERS},
    "mcast_src_ip": _source_ip(deprecated=True),
    "unicast_src_ip": _source_ip(deprecated=False),
    "mcast_dst_ip": _address_of("mcast_dst_ip"),
    "track_src_ip": _set_value("track_src_ip", True),
    "unicast_peer": _unicast_peers,
    "unicast_fault_no_peer": _unicast_flag("unicast_fault_no_peer"),
    "unicast_ttl": _integer("unicast_ttl", 0, 255),
    "check_unicast_src": _unicast_flag("check_unicast_src"),
    "old_unicast_checksum": _old_unicast_checksum,
    "virtual_router_id": _integer("virtual_router_id", 1, 255),
    "version": _integer("version", 2, 3),
    "priority": _integer("priority", 1, PRIORITY_OWNER),
    "advert_int": _advert_int,
    "authentication": _authentication,
    "virtual_ipaddress": _address_list("virtual_ipaddresses"),
    "virtual_ipaddress_excluded": _address_list("virtual_ipaddresses_excluded"),
    "promote_secondaries": _set_value("promote_secondaries", True),
    "virtual_routes": _route_list,
    "virtual_rules": _rule_list,
    "accept": _set_value("accept", True),
    "no_accept": _set_value("accept", False),
    "nopreempt": _set_value("nopreempt", True),
    "preempt": _set_value("nopreempt", False),  # for backward compatibility
    "preempt_delay": _preempt_delay,
    "skip_check_adv_addr": _flag("skip_check_adv_addr"),
    "strict_mode": _flag("strict_mode"),
    "debug": _integer("debug", 0, 4),
    "notify_master": _once("notify_master", _notify_script),
    "notify_backup": _once("notify_backup", _notify_script),
    "notify_fault": _once("notify_fault", _notify_script),
    "notify_stop": _once("notify_stop", _notify_script),
    "notify_deleted": _notify_deleted,
    "notify": _once("notify", _notify_script),
    "notify_master_rx_lower_pri": _once("notify_master_rx_lower_pri", _notify_script),
    "notify_priority_changes": _flag("notify_priority_changes"),
    "smtp_alert": _flag("smtp_alert"),
    "garp_master_delay": _duration("garp_master_delay", 0, UINT32_MAX // 1_000_000,
                                   whole=True),
    "garp_master_repeat": _at_least_one("garp_master_repeat"),
    "garp_master_refresh": _duration("garp_master_refresh", 0, UINT32_MAX, whole=True),
    "garp_master_refresh_repeat": _at_least_one("garp_master_refresh_repeat"),
    "garp_lower_prio_delay": _duration("garp_lower_prio_delay", 0, UINT32_MAX // 1_000_000,
                                       whole=True),
    "garp_lower_prio_repeat": _integer("garp_lower_prio_repeat", 0, INT32_MAX),
    "garp_extra_if": _garp_extra_if("garp_extra_if", 0),
    "down_timer_adverts": _integer("down_timer_adverts", 1, 100),
    "lower_prio_no_advert": _flag("lower_prio_no_advert"),
    "higher_prio_send_advert": _flag("higher_prio_send_advert"),
    "kernel_rx_buf_size": _kernel_rx_buf_size,
    "linkbeat_use_polling": _deprecated_flag("linkbeat_use_polling", "'linkbeat_use_polling' in a "
                                     "vrrp_instance is deprecated; use linkbeat_interfaces"),
    "lvs_sync_daemon_interface": _lvs_sync_daemon_interface,
}
_INSTANCE_HANDLERS["vmac_garp_intvl"] = _deprecated(  # renamed after v2.2.2
    "vmac_garp_intvl", _INSTANCE_HANDLERS["garp_extra_if"], "garp_extra_if")

# What an instance inherits from the globals when it does not set it.
_INHERITED = {
    "garp_master_delay": "vrrp_garp_master_delay",
    "garp_master_repeat": "vrrp_garp_master_repeat",
    "garp_master_refresh": "vrrp_garp_master_refresh",
    "garp_master_refresh_repeat": "vrrp_garp_master_refresh_repeat",
    "garp_extra_if": "vrrp_garp_extra_if",
    "garp_extra_if_all": "vrrp_garp_extra_if_all",
    "down_timer_adverts": "vrrp_down_timer_adverts",
    "skip_check_adv_addr": "vrrp_skip_check_adv_addr",
    "strict_mode": "vrrp_strict",
    "notify_priority_changes": "vrrp_notify_priority_changes",
}


class _Instance:
    """Resolves one instance's values as keepalived completes a vrrp_instance."""

    def __init__(self, name: str, node: Node, values: _Values, diag: Diagnostics,
                 globals: VrrpGlobals):
        self.name = name
        self.node = node
        self.values = values
        self.v = values.values
        self.diag = diag
        self.globals = globals

    def at(self, *names: str) -> str:
        for name in names:
            if name in self.values.origins:
                return self.values.origins[name]
        return self.node.origin

    def warn(self, message: str, *names: str) -> None:
        self.diag.warning(self.at(*names), f"({self.name}) {message}")

    def error(self, message: str, *names: str) -> None:
        self.diag.error(self.at(*names), f"({self.name}) {message}")

    def resolve(self) -> VrrpInstance | None:
        v = self.v
        for name, global_name in _INHERITED.items():
            v.setdefault(name, getattr(self.globals, global_name))
        family = self.family()
        if family is None:
            return None
        v["family"] = family
        self.version(family)
        if not self.addresses_ok(family):
            return None
        self.priority_and_state()
        self.authentication()
        self.unicast()
        self.preemption()
        self.protocol_flags()
        self.advert_int()
        self.interfaces()
        if not self.required():
            return None
        v.pop("unicast_keyword", None)
        return VrrpInstance(name=self.name, **v, field_origins=self.values.field_origins(),
                            origin=self.node.origin)

    def family(self) -> AddressFamily | None:
        """The family: the first VIP's, else the source or peer addresses', else IPv6
        with native_ipv6, else IPv4; what disagrees with it is an error."""
        v = self.v
        vips = v.get("virtual_ipaddresses", ())
        sources: list[tuple[Any, str]] = [(a.address, a.origin) for a in vips]
        if "unicast_src_ip" in v:
            sources.append((v["unicast_src_ip"], self.at("unicast_src_ip")))
        sources += [(p.address, p.origin) for p in v.get("unicast_peers", ())]
        if "mcast_dst_ip" in v:
            sources.append((v["mcast_dst_ip"], self.at("mcast_dst_ip")))
        if "ipvlan_address" in v:
            sources.append((v["ipvlan_address"], self.at("ipvlan_address")))
        if v.get("native_ipv6"):
            family = AddressFamily.INET6
        elif sources:
            family = family_of(sources[0][0])
            sources = sources[1:]
        else:
            family = AddressFamily.INET
        ok = True
        for address, origin in sources:
            if family_of(address) is not family:
                self.diag.error(origin, f"({self.name}) {address} is not of the instance's "
                                        f"family ({family}): every VIP, peer and source "
                                        "address must be")
                ok = False
        return family if ok else None

    def version(self, family: AddressFamily) -> None:
        v = self.v
        if v.get("native_ipv6"):
            v.setdefault("version", 3)
        strict = v["strict_mode"]
        if family is AddressFamily.INET6:
            if v.get("version") == 2 and strict:
                self.warn("IPv6 cannot use VRRP version 2 in strict mode; using version 3",
                          "version")
                v["version"] = 3
            v.setdefault("version", 3)
        v.setdefault("version", self.globals.vrrp_version)
        v["mcast_dst_ip"] = v.get("mcast_dst_ip") or self.globals.mcast_group(family)

    def addresses_ok(self, family: AddressFamily) -> bool:
        v = self.v
        if v.get("virtual_ipaddresses"):
            return True
        if v["version"] == 3 or family is AddressFamily.INET6 or v["strict_mode"]:
            self.error("no virtual_ipaddress: at least one is required (VRRPv3, IPv6 or "
                       "strict mode)")
            return False
        self.warn("no virtual_ipaddress: at least one is sensible")
        return True

    def priority_and_state(self) -> None:
        v = self.v
        if "priority" not in v:
            master = v.get("state") is InstanceState.MASTER
            v["priority"] = PRIORITY_OWNER if master else PRIORITY_DEFAULT
        owner = v["priority"] == PRIORITY_OWNER
        if "state" not in v:
            v["state"] = InstanceState.MASTER if owner else InstanceState.BACKUP
        elif v["strict_mode"] and (v["state"] is InstanceState.MASTER) != owner:
            self.warn("strict mode: state MASTER must match being the address owner "
                      "(priority 255); state set accordingly", "state")
            v["state"] = InstanceState.MASTER if owner else InstanceState.BACKUP

    def authentication(self) -> None:
        v = self.v
        auth: Authentication | None = v.get("authentication")
        if auth is None:
            return
        reason = None
        if v["strict_mode"]:
            reason = "strict mode does not support authentication"
        elif v["version"] == 3:
            reason = "VRRP version 3 does not support authentication"
        elif not auth.auth_pass:
            reason = "authentication without auth_pass"
        elif v["family"] is AddressFamily.INET6 and auth.auth_type is AuthType.AH:
            reason = "AH authentication cannot be used with IPv6"
        if reason is not None:
            self.warn(f"{reason}; authentication ignored", "authentication")
            v["authentication"] = None
        elif (auth.auth_type is AuthType.AH and v["state"] is InstanceState.MASTER
              and v["priority"] != PRIORITY_OWNER):
            self.warn("initial state MASTER does not work with AH authentication; using "
                      "BACKUP", "state")
            v["state"] = InstanceState.BACKUP

    def unicast(self) -> None:
        v = self.v
        peers = v.get("unicast_peers", ())
        if not peers and v.get("unicast_keyword") and not v.get("unicast_fault_no_peer"):
            self.warn("a unicast keyword is given without unicast peers: multicast is "
                      "used (deprecated usage)")
        if "unicast_ttl" in v and not peers:
            self.warn("unicast_ttl without unicast peers; ignored", "unicast_ttl")
            del v["unicast_ttl"]
        if v.get("use_vmac") and (peers or v.get("unicast_keyword")):
            if "interface" not in v:
                self.warn("a VMAC cannot be used with unicast and no interface; use_vmac "
                          "cleared", "use_vmac")
                v["use_vmac"] = False
            elif not v.get("vmac_xmit_base"):
                self.warn("unicast with use_vmac needs vmac_xmit_base; set", "use_vmac")
                v["vmac_xmit_base"] = True
        v["check_unicast_src"] = bool(v.get("check_unicast_src")) or \
            self.globals.vrrp_check_unicast_src
        if v.get("track_src_ip") and "unicast_src_ip" not in v:
            v["track_src_ip"] = False

    def preemption(self) -> None:
        v = self.v
        if v.get("nopreempt") and v["priority"] == PRIORITY_OWNER:
            self.warn("nopreempt does not apply to priority 255; cleared", "nopreempt")
            v["nopreempt"] = False
        if v["state"] is InstanceState.MASTER:
            if v.get("nopreempt"):
                self.warn("nopreempt does not work with initial state MASTER; cleared",
                          "nopreempt")
                v["nopreempt"] = False
            if v.get("preempt_delay"):
                self.warn("preempt_delay does not work with initial state MASTER; cleared",
                          "preempt_delay")
                v["preempt_delay"] = 0.0
        if v.get("preempt_delay"):
            if v["strict_mode"]:
                self.warn("preempt_delay is not allowed in strict mode; cleared",
                          "preempt_delay")
                v["preempt_delay"] = 0.0
            elif v.get("nopreempt"):
                self.warn("preempt_delay does not apply with nopreempt; cleared",
                          "preempt_delay")
                v["preempt_delay"] = 0.0

    def protocol_flags(self) -> None:
        v = self.v
        g = self.globals
        strict = v["strict_mode"]
        owner = v["priority"] == PRIORITY_OWNER
        if "accept" not in v:
            v["accept"] = not strict
        elif v["accept"] and not owner and strict and v["version"] == 2:
            self.warn("accept mode with VRRP version 2 does not comply with RFC 3768; "
                      "cleared", "accept")
            v["accept"] = False
        for name, strict_value, global_value in (
                ("garp_lower_prio_repeat", 0, g.vrrp_garp_lower_prio_repeat),
                ("garp_lower_prio_delay", 0.0, g.vrrp_garp_lower_prio_delay),
                ("lower_prio_no_advert", True, g.vrrp_lower_prio_no_advert),
                ("higher_prio_send_advert", False, g.vrrp_higher_prio_send_advert)):
            if name not in v:
                v[name] = strict_value if strict else global_value
            elif strict and v[name] != strict_value:
                self.warn(f"strict mode requires {name} {strict_value}; set", name)
                v[name] = strict_value
        v.setdefault("smtp_alert", g.effective_smtp_alert)
        if v.get("vmac_xmit_base"):
            if not v.get("use_vmac"):
                self.warn("vmac_xmit_base applies only with use_vmac; cleared",
                          "vmac_xmit_base")
                v["vmac_xmit_base"] = False
            elif strict:
                self.warn("vmac_xmit_base is not allowed in strict mode; cleared",
                          "vmac_xmit_base")
                v["vmac_xmit_base"] = False
        if v.get("promote_secondaries") and (v.get("use_vmac") or v.get("use_ipvlan")):
            self.warn("promote_secondaries is set automatically on a VMAC/ipvlan; ignored",
                      "promote_secondaries")
            v["promote_secondaries"] = False

    def advert_int(self) -> None:
        v = self.v
        value = v.get("advert_int", 1.0)
        if v["version"] == 2:
            if value != int(value):
                rounded = max(1.0, float(int(value + 0.5)))
                self.warn(f"a VRRPv2 advert_int must be whole seconds; {value} rounded "
                          f"to {rounded:g}", "advert_int")
                value = rounded
        else:
            if value > ADVERT_INT_V3_MAX:
                self.warn(f"a VRRPv3 advert_int must be below 40.96s; {value:g} set to "
                          f"{ADVERT_INT_V3_MAX}", "advert_int")
                value = ADVERT_INT_V3_MAX
            centis = value * 100
            if abs(centis - round(centis)) > 1e-6:
                rounded = max(0.01, int(centis + 0.5) / 100)
                self.warn(f"a VRRPv3 advert_int must be in units of 10ms; {value} rounded "
                          f"to {rounded:g}", "advert_int")
                value = rounded
        v["advert_int"] = value

    def interfaces(self) -> None:
        v = self.v
        own = v.get("interface")
        tracked = v.get("track_interfaces", ())
        if own is not None and any(t.name == own for t in tracked):
            self.warn(f"track_interface {own} is the instance's own interface; ignored",
                      "track_interfaces")
            v["track_interfaces"] = tuple(t for t in tracked if t.name != own)

    def required(self) -> bool:
        v = self.v
        ok = True
        if "virtual_router_id" not in v:
            if not any(c.keyword == "virtual_router_id" for c in self.node.children or ()):
                self.error("virtual_router_id is not set")  # else its bad value was reported
            ok = False
        if "interface" not in v and not v.get("unicast_peers"):
            self.error("no interface: an instance needs one unless it has unicast peers")
            ok = False
        return ok


def build_instance(node: Node, diag: Diagnostics, globals: VrrpGlobals) -> VrrpInstance | None:
    """``vrrp_instance NAME { }`` with its effective values (see the module docstring)."""
    name = _named_block(node, diag, "vrrp_instance")
    if name is None:
        return None
    values = _read_block(node.children or (), diag, _INSTANCE_HANDLERS,
                         f"vrrp_instance {name}")
    return _Instance(name, node, values, diag, globals).resolve()


def resolve_instance(name: str, settings: Mapping[str, Any], diag: Diagnostics,
                     globals: VrrpGlobals, *, origin: str = "",
                     origins: Mapping[str, str] | None = None) -> VrrpInstance | None:
    """A `VrrpInstance` from the settings an instance gives (field name -> value, as in
    `VrrpInstance`; what is absent is inherited or defaulted as for keepalived.conf),
    with the same adjustments and reports as `build_instance`. For other front ends
    (YAML) that know which settings were written; ``origins``: where each was."""
    values = _Values()
    for key, value in settings.items():
        values.set(key, value, (origins or {}).get(key, origin))
    values.values.pop("name", None)
    values.origins.pop("name", None)
    node = Node(Word(name, origin))
    return _Instance(name, node, values, diag, globals).resolve()


def build_virtual_addresses(node: Node, diag: Diagnostics) -> tuple[VirtualAddress, ...]:
    """The entries of a ``virtual_ipaddress`` (or ``_excluded``) block."""
    return _addresses(node, diag, static=False)


def build_virtual_routes(node: Node, diag: Diagnostics) -> tuple[Route, ...]:
    return _routes(node, diag, static=False)


def build_virtual_rules(node: Node, diag: Diagnostics) -> tuple[Rule, ...]:
    return _rules(node, diag, static=False)


# ======================================================================= the whole


# keyword -> builder of the top-level VRRP statements (build_instance and
# build_sync_group also take the VrrpGlobals: see build_vrrp_config).
TOP_LEVEL_VRRP_KEYWORDS: dict[str, Callable[..., Any]] = {
    "vrrp_script": build_vrrp_script,
    "track_file": build_track_file,
    "vrrp_track_file": build_track_file,
    "vrrp_track_process": build_track_process,
    "vrrp_sync_group": build_sync_group,
    "vrrp_instance": build_instance,
    "static_ipaddress": build_static_addresses,
    "static_routes": build_static_routes,
    "static_rules": build_static_rules,
    "track_group": build_track_group,
    "garp_group": build_garp_group,
}

_COLLECTIONS = {
    "vrrp_script": "scripts", "track_file": "track_files", "vrrp_track_file": "track_files",
    "vrrp_track_process": "track_processes", "vrrp_sync_group": "sync_groups",
    "vrrp_instance": "instances", "static_ipaddress": "static_addresses",
    "static_routes": "static_routes", "static_rules": "static_rules",
    "track_group": "track_groups", "garp_group": "garp_groups",
}


def build_vrrp_config(nodes: Iterable[Node], diag: Diagnostics,
                      globals: VrrpGlobals | None = None) -> VrrpConfig:
    """`VrrpConfig` from the top-level VRRP statements (in file order) and the globals
    built from global_defs. Statements of other keywords are ignored."""
    globals = globals or VrrpGlobals()
    found: dict[str, list[Any]] = {name: [] for name in set(_COLLECTIONS.values())}
    for node in nodes:
        keyword = str(node.keyword)
        builder = TOP_LEVEL_VRRP_KEYWORDS.get(keyword)
        if builder is None:
            continue
        if builder in (build_instance, build_sync_group):
            built = builder(node, diag, globals)
        else:
            built = builder(node, diag)
        target = found[_COLLECTIONS[keyword]]
        if isinstance(built, tuple):
            target.extend(built)
        elif built is not None:
            target.append(built)
    return VrrpConfig(globals=globals, **{k: tuple(v) for k, v in found.items()})

