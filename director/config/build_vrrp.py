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
  keyword of each to its builder, and `build_vrrp_config` builds them all. (The
  address, route and rule lists are read by `director.config.build_vrrp_ip`.)
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

import ipaddress
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from director.config import convert
from director.config.blocks import (
    INT32_MAX,
    UINT32_MAX,
    Fields,
    Handler,
    Reader,
    deprecated,
    dynamic_interfaces,
    flag_field,
    int_field,
    interface_field,
    list_block,
    named_block,
    no_block,
    once_field,
    read_block,
    read_cpus,
    read_fifo,
    read_interface_name,
    read_owned,
    read_rlimit_rttime,
    reader_field,
    script_user,
    set_value,
    timer_field,
    unknown_keyword,
    value_origin,
    word_field,
)
from director.config.build_vrrp_ip import (
    build_static_addresses,
    build_static_routes,
    build_static_rules,
    build_virtual_addresses,
    build_virtual_routes,
    build_virtual_rules,
)
from director.config.errors import Diagnostics
from director.config.lexer import CommandSyntaxError, split_command
from director.config.tree import Node, Word
from vrrp.spec import (
    ADVERT_INT_V2_MAX,
    ADVERT_INT_V3_MAX,
    AUTH_PASS_MAX,
    PRIORITY_DEFAULT,
    PRIORITY_OWNER,
    TRACK_FILE_WEIGHT_MAX,
    TRACK_WEIGHT_MAX,
    AddressFamily,
    Authentication,
    AuthType,
    GarpGroup,
    InstanceState,
    IpvlanMode,
    NotifyScript,
    OldUnicastChecksum,
    ParamMatch,
    RxBufsPolicy,
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
    VrrpConfig,
    VrrpGlobals,
    VrrpInstance,
    VrrpScript,
    family_of,
)

SCRIPT_SECONDS_MAX = UINT32_MAX // 1_000_000  # keepalived keeps timers in usecs
TIMER_MAX_SEC = 1000  # preempt_delay's maximum


# ======================================================================= shared readers


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
    owned = read_owned(node, diag)
    if owned is None:
        return None
    word, user, group = owned
    command = _command(word, diag, str(node.keyword))
    if command is None:
        return None
    return NotifyScript(command=command, user=user, group=group, origin=node.origin)


def _at_least_one(name: str, high: int = UINT32_MAX, what: str | None = None,
                  seconds: bool = False) -> Handler:
    """A repeat count (or whole ``seconds``): 0 is read as 1 with a warning (as keepalived
    does); problems name the keyword, or ``what``."""
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
        word = convert.first(node, diag)
        if word is None:
            return
        named = what or str(node.keyword)
        value = convert.integer(word, diag, 0, high, named)
        if value == 0:
            diag.warning(word.origin, f"{named} must be greater than 0; using 1")
            value = 1
        if value is not None:
            fields.set(name, float(value) if seconds else value, word.origin)
    return handler


def _address_of(name: str, family: int | None = None, multicast: bool = False) -> Handler:
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
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
        fields.set(name, value, word.origin)
    return handler


def _tracked_block(node: Node, diag: Diagnostics, label: str, table: Mapping[str, Handler],
                   required: str, what: str | None = None) -> tuple[str, Fields] | None:
    """The name and lines of a block that instances track (``vrrp_script NAME { }``,
    ``track_file NAME { }``...); None (reported) when it has no name, or lacks its
    ``required`` keyword (keepalived drops such a block and carries on)."""
    name = named_block(node, diag, what or label)
    if name is None:
        return None
    fields = read_block(node.children or (), diag, table, f"{label} {name}")
    if required not in fields:
        diag.warning(node.origin, f"{label} {name} has no '{required}'; ignored")
        return None
    return name, fields


# ======================================================================= global_defs


def _garp_extra_if(name: str, low: int) -> Handler:
    """``[vrrp_]garp_extra_if [all] SECONDS`` (and its old name ``vmac_garp_intvl``)."""
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
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
        fields.set(name, float(seconds), value_origin(node))
        fields.set(name + "_all", every, value_origin(node))
    return handler


def _iptables(node: Node, diag: Diagnostics, fields: Fields) -> None:
    no_block(node, diag)
    if not convert.args(node, diag, 0, 2):
        return
    chains = [str(w) for w in node.args] or ["INPUT", "OUTPUT"]
    for word in node.args:
        if len(word) >= 29:  # XT_EXTENSION_MAXNAMELEN - 1
            diag.error(word.origin, f"iptables chain name '{word}' is too long")
            return
    fields.set("vrrp_iptables_inchain", chains[0], value_origin(node))
    fields.set("vrrp_iptables_outchain", chains[1] if len(chains) > 1 else None,
               value_origin(node))


def _ipsets(node: Node, diag: Diagnostics, fields: Fields) -> None:
    """``vrrp_ipsets [ADDR [ADDR6 [ADDR_IF6 [IGMP [MLD]]]]]``: unnamed sets are derived
    from the names before them, as keepalived does; no names: ipsets not used."""
    no_block(node, diag)
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
    fields.set("vrrp_ipsets", tuple(names), value_origin(node))


def _nftables(node: Node, diag: Diagnostics, fields: Fields) -> None:
    no_block(node, diag)
    if not convert.args(node, diag, 0, 1):
        return
    name = str(node.args[0]) if node.args else "keepalived"
    if len(name) >= 256:  # NFT_TABLE_MAXNAMELEN
        diag.error(node.args[0].origin, "nftables table name is too long")
        return
    fields.set("nftables", name, value_origin(node))


def _rx_bufs_policy(node: Node, diag: Diagnostics, fields: Fields) -> None:
    no_block(node, diag)
    word = convert.first(node, diag)
    if word is None:
        return
    if word.upper() in ("MTU", "ADVERT"):
        fields.set("vrrp_rx_bufs_policy", RxBufsPolicy(word.upper()), word.origin)
        return
    size = convert.integer(word, diag, 0, UINT32_MAX, "vrrp_rx_bufs_policy")
    if size is not None:
        fields.set("vrrp_rx_bufs_policy", RxBufsPolicy.SIZE, word.origin)
        fields.set("vrrp_rx_bufs_size", size, word.origin)


# Keywords of global_defs that only the VRRP side reads.
_GLOBAL_HANDLERS: dict[str, Handler] = {
    "vrrp_mcast_group4": _address_of("vrrp_mcast_group4", 4, multicast=True),
    "vrrp_mcast_group6": _address_of("vrrp_mcast_group6", 6, multicast=True),
    "vrrp_version": int_field("vrrp_version", 2, 3),
    "vrrp_garp_master_delay": timer_field("vrrp_garp_master_delay", 0,
                                          UINT32_MAX // 1_000_000, whole=True),
    "vrrp_garp_master_repeat": _at_least_one("vrrp_garp_master_repeat"),
    "vrrp_garp_master_refresh": timer_field("vrrp_garp_master_refresh", 0, UINT32_MAX,
                                            whole=True),
    "vrrp_garp_master_refresh_repeat": _at_least_one("vrrp_garp_master_refresh_repeat"),
    "vrrp_garp_lower_prio_delay": timer_field("vrrp_garp_lower_prio_delay", 0,
                                              UINT32_MAX // 1_000_000, whole=True),
    "vrrp_garp_lower_prio_repeat": int_field("vrrp_garp_lower_prio_repeat", 0, INT32_MAX),
    "vrrp_garp_interval": timer_field("vrrp_garp_interval", 1e-6, SCRIPT_SECONDS_MAX, large=1),
    "vrrp_gna_interval": timer_field("vrrp_gna_interval", 1e-6, SCRIPT_SECONDS_MAX, large=1),
    "vrrp_min_garp": flag_field("vrrp_min_garp"),
    "vrrp_garp_extra_if": _garp_extra_if("vrrp_garp_extra_if", 1),
    "vrrp_down_timer_adverts": int_field("vrrp_down_timer_adverts", 1, 100),
    "vrrp_lower_prio_no_advert": flag_field("vrrp_lower_prio_no_advert"),
    "vrrp_higher_prio_send_advert": flag_field("vrrp_higher_prio_send_advert"),
    "vrrp_iptables": _iptables,
    "vrrp_ipsets": _ipsets,
    "nftables": _nftables,
    "nftables_priority": int_field("nftables_priority", -INT32_MAX - 1, INT32_MAX),
    "nftables_ifindex": flag_field("nftables_ifindex"),
    "disable_local_igmp": flag_field("disable_local_igmp"),
    "vrrp_check_unicast_src": flag_field("vrrp_check_unicast_src"),
    "vrrp_skip_check_adv_addr": flag_field("vrrp_skip_check_adv_addr"),
    "vrrp_strict": flag_field("vrrp_strict"),
    "vrrp_startup_delay": timer_field("vrrp_startup_delay", 1e-9, SCRIPT_SECONDS_MAX, large=60),
    "log_unknown_vrids": flag_field("log_unknown_vrids"),
    "vmac_prefix": word_field("vmac_prefix"),
    "vmac_addr_prefix": word_field("vmac_addr_prefix"),
    "vrrp_netlink_cmd_rcv_bufs": int_field("vrrp_netlink_cmd_rcv_bufs", 1, UINT32_MAX),
    "vrrp_netlink_cmd_rcv_bufs_force": flag_field("vrrp_netlink_cmd_rcv_bufs_force"),
    "vrrp_netlink_monitor_rcv_bufs": int_field("vrrp_netlink_monitor_rcv_bufs", 1, UINT32_MAX),
    "vrrp_netlink_monitor_rcv_bufs_force": flag_field("vrrp_netlink_monitor_rcv_bufs_force"),
    "vrrp_rx_bufs_policy": _rx_bufs_policy,
    "vrrp_rx_bufs_multiplier": int_field("vrrp_rx_bufs_multiplier", 1, UINT32_MAX),
    "vrrp_notify_fifo": reader_field("vrrp_notify_fifo", read_fifo),
    "vrrp_notify_fifo_script": reader_field("vrrp_notify_fifo_script", _notify_script),
    "vrrp_notify_priority_changes": flag_field("vrrp_notify_priority_changes"),
    "fifo_write_vrrp_states_on_reload": flag_field("fifo_write_vrrp_states_on_reload"),
}
_GLOBAL_HANDLERS["vrrp_vmac_garp_intvl"] = deprecated(  # renamed after v2.2.2
    "vrrp_vmac_garp_intvl", _GLOBAL_HANDLERS["vrrp_garp_extra_if"], "vrrp_garp_extra_if")

# Keywords of global_defs that the daemon's global settings read too (and report on:
# see build_vrrp_globals).
_SHARED_HANDLERS: dict[str, Handler] = {
    "vrrp_priority": int_field("vrrp_priority", -20, 19),
    "vrrp_no_swap": flag_field("vrrp_no_swap"),
    "vrrp_rt_priority": int_field("vrrp_rt_priority", 1, 99),
    "vrrp_cpu_affinity": reader_field("vrrp_cpu_affinity", read_cpus),
    "vrrp_rlimit_rttime": reader_field("vrrp_rlimit_rttime", read_rlimit_rttime),
    "vrrp_rlimit_rtime": reader_field("vrrp_rlimit_rttime", read_rlimit_rttime),
    "process_monitor_rcv_bufs": int_field("process_monitor_rcv_bufs", 1, UINT32_MAX),
    "process_monitor_rcv_bufs_force": flag_field("process_monitor_rcv_bufs_force"),
    "nftables_counters": flag_field("nftables_counters"),
    "notify_fifo": reader_field("notify_fifo", read_fifo),
    "notify_fifo_script": reader_field("notify_fifo_script", _notify_script),
    "smtp_alert": flag_field("smtp_alert"),
    "smtp_alert_vrrp": flag_field("smtp_alert_vrrp"),
    "script_user": script_user,
    "enable_script_security": flag_field("enable_script_security"),
    "dynamic_interfaces": dynamic_interfaces,
    "default_interface": word_field("default_interface"),
}

VRRP_GLOBAL_KEYWORDS: frozenset[str] = frozenset(_GLOBAL_HANDLERS)
VRRP_SHARED_GLOBAL_KEYWORDS: frozenset[str] = frozenset(_SHARED_HANDLERS)


def build_vrrp_globals(nodes: Iterable[Node], diag: Diagnostics) -> VrrpGlobals:
    """`VrrpGlobals` from global_defs lines (any of them: others are skipped)."""
    fields = Fields()
    quiet = Diagnostics()  # the global_defs builder reports on the shared keywords
    for node in nodes:
        handler = _GLOBAL_HANDLERS.get(node.keyword)
        if handler is not None:
            handler(node, diag, fields)
            continue
        handler = _SHARED_HANDLERS.get(node.keyword)
        if handler is not None:
            handler(node, quiet, fields)
    found = fields.values
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
    return VrrpGlobals(**found, field_origins=fields.field_origins())


# ======================================================================= vrrp_script


def _script_command(node: Node, diag: Diagnostics, fields: Fields) -> None:
    """``script COMMAND...``: every word of the line is part of the command line."""
    no_block(node, diag)
    if not convert.args(node, diag, 1):
        return
    command = _command(Word(" ".join(node.args), node.args[0].origin), diag, "script")
    if command is not None:
        fields.set("script", command, node.args[0].origin)


def _block_weight(limit: int) -> Handler:
    """``weight W [reverse]`` in a vrrp_script / track_file / vrrp_track_process."""
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
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
        fields.set("weight", weight, node.args[0].origin)
        fields.set("weight_reverse", reverse, node.args[0].origin)
    return handler


def _script_user_group(node: Node, diag: Diagnostics, fields: Fields) -> None:
    no_block(node, diag)
    if not convert.args(node, diag, 1, 2):
        return
    fields.set("user", str(node.args[0]), node.args[0].origin)
    fields.set("group", str(node.args[1]) if len(node.args) == 2 else None,
               node.args[-1].origin)


_SCRIPT_HANDLERS: dict[str, Handler] = {
    "script": _script_command,
    # interval/timeout: whole seconds; 0 is read as 1 with a warning (keepalived)
    "interval": _at_least_one("interval", SCRIPT_SECONDS_MAX, "vrrp_script interval",
                              seconds=True),
    "timeout": _at_least_one("timeout", SCRIPT_SECONDS_MAX, "vrrp_script timeout",
                             seconds=True),
    "weight": _block_weight(TRACK_WEIGHT_MAX),
    "rise": int_field("rise", 1, INT32_MAX),
    "fall": int_field("fall", 1, INT32_MAX),
    "user": _script_user_group,
    "init_fail": set_value("init_fail", True),
}


def build_vrrp_script(node: Node, diag: Diagnostics) -> VrrpScript | None:
    read = _tracked_block(node, diag, "vrrp_script", _SCRIPT_HANDLERS, "script")
    if read is None:
        return None
    name, fields = read
    found = fields.values
    found.setdefault("timeout", found.get("interval", VrrpScript().interval))
    return VrrpScript(name=name, **found, field_origins=fields.field_origins(),
                      origin=node.origin)


# ======================================================================= track_file


def _track_file_path(node: Node, diag: Diagnostics, fields: Fields) -> None:
    no_block(node, diag)
    word = convert.first(node, diag)
    if word is not None:
        if not word:
            diag.error(word.origin, "file: empty path")
            return
        fields.set("file", str(word), word.origin)


def _init_file(node: Node, diag: Diagnostics, fields: Fields) -> None:
    """``init_file [VALUE] [overwrite]``."""
    no_block(node, diag)
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
    fields.set("init_file", True, node.origin)
    fields.set("init_value", init_value, value_origin(node))
    fields.set("init_overwrite", overwrite, value_origin(node))


_TRACK_FILE_HANDLERS: dict[str, Handler] = {
    "file": _track_file_path,
    "weight": _block_weight(TRACK_FILE_WEIGHT_MAX),
    "init_file": _init_file,
}


def build_track_file(node: Node, diag: Diagnostics) -> TrackFile | None:
    """``track_file NAME { }`` (or the deprecated ``vrrp_track_file``)."""
    if node.keyword == "vrrp_track_file":
        diag.warning(node.origin, "'vrrp_track_file' is deprecated; use 'track_file'")
    read = _tracked_block(node, diag, "track_file", _TRACK_FILE_HANDLERS, "file",
                          what=str(node.keyword))
    if read is None:
        return None
    name, fields = read
    return TrackFile(name=name, **fields.values, field_origins=fields.field_origins(),
                     origin=node.origin)


# ======================================================================= vrrp_track_process


def _process(node: Node, diag: Diagnostics, fields: Fields) -> None:
    no_block(node, diag)
    if not convert.args(node, diag, 1):
        return
    if "process" in fields:
        diag.error(node.origin, f"'process' already set at {fields.origin('process')}; "
                                "this one is ignored")
        return
    fields.set("process", str(node.args[0]), node.args[0].origin)
    if len(node.args) > 1:
        fields.set("parameters", tuple(str(w) for w in node.args[1:]), node.args[1].origin)
        fields.set("full_command", True, node.args[1].origin)


def _param_match(node: Node, diag: Diagnostics, fields: Fields) -> None:
    no_block(node, diag)
    if not convert.args(node, diag, 0, 1):
        return
    match = ParamMatch.EXACT
    if node.args:
        word = convert.choice(node.args[0], ("initial", "partial"), diag, "param_match",
                              case_sensitive=True)
        if word is None:
            return
        match = ParamMatch(word)
    fields.set("param_match", match, value_origin(node))
    fields.set("full_command", True, value_origin(node))


def _process_delay(*names: str) -> Handler:
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
        word = convert.first(node, diag)
        if word is None:
            return
        seconds = convert.number(word, diag, 1e-6, 3600, str(node.keyword))
        if seconds is not None:
            for name in names:
                fields.set(name, seconds, word.origin)
    return handler


_TRACK_PROCESS_HANDLERS: dict[str, Handler] = {
    "process": _process,
    "param_match": _param_match,
    "weight": _block_weight(TRACK_FILE_WEIGHT_MAX),
    "quorum": int_field("quorum", 1, 65535),
    "quorum_max": int_field("quorum_max", 0, 65535),
    "delay": _process_delay("fork_delay", "terminate_delay"),
    "fork_delay": _process_delay("fork_delay"),
    "terminate_delay": _process_delay("terminate_delay"),
    "full_command": set_value("full_command", True),
}


def build_track_process(node: Node, diag: Diagnostics) -> TrackProcess | None:
    read = _tracked_block(node, diag, "vrrp_track_process", _TRACK_PROCESS_HANDLERS,
                          "process")
    if read is None:
        return None
    name, fields = read
    found = fields.values
    if "parameters" in found:
        found.setdefault("param_match", ParamMatch.EXACT)
    quorum, quorum_max = found.get("quorum", 1), found.get("quorum_max")
    if quorum_max is not None:
        if quorum_max == 0 and "quorum" not in found:
            found["quorum"] = 0  # "quorum_max 0": up only while no such process runs
        elif quorum_max < quorum:
            diag.error(fields.origin("quorum_max"),
                       f"quorum_max {quorum_max} is less than quorum {quorum}")
            return None
    return TrackProcess(name=name, **found, field_origins=fields.field_origins(),
                        origin=node.origin)


# ======================================================================= tracking lists


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


def _tracked_interfaces(node: Node, diag: Diagnostics) -> tuple[TrackedInterface, ...] | None:
    entries = list_block(node, diag)
    if entries is None:
        return None
    found: dict[str, TrackedInterface] = {}
    for entry in entries:
        name = read_interface_name(entry.keyword, diag)
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
        entries = list_block(node, diag)
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


def _appended(name: str, read: Reader) -> Handler:
    """A list block whose entries add to those of the same keyword's earlier blocks."""
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        entries = read(node, diag)
        if entries is not None:
            fields.set(name, fields.get(name, ()) + entries, node.origin)
    return handler


def _track_handler(keyword: str) -> Handler:
    return _appended(*_TRACK_READERS[keyword])


# ======================================================================= vrrp_sync_group


def _member_list(name: str) -> Handler:
    """``group { NAME... }``: keepalived takes one such block."""
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        if name in fields:
            diag.error(node.origin, f"the group list is already given at "
                                    f"{fields.origin(name)}; this one is ignored")
            return
        entries = list_block(node, diag)
        if entries is None:
            return
        members: list[str] = []
        for entry in entries:
            for word in (entry.keyword, *entry.args):
                if word in members:
                    diag.warning(word.origin, f"'{word}' is listed twice; ignored")
                else:
                    members.append(str(word))
        fields.set(name, tuple(members), node.origin)
    return handler


_SYNC_GROUP_HANDLERS: dict[str, Handler] = {
    "group": _member_list("group"),
    **{keyword: _track_handler(keyword) for keyword in _TRACK_READERS},
    "notify_master": once_field("notify_master", _notify_script),
    "notify_backup": once_field("notify_backup", _notify_script),
    "notify_fault": once_field("notify_fault", _notify_script),
    "notify_stop": once_field("notify_stop", _notify_script),
    "notify": once_field("notify", _notify_script),
    "smtp_alert": flag_field("smtp_alert"),
    "global_tracking": deprecated("global_tracking",
                                  set_value("sync_group_tracking_weight", True),
                                  "track_interface/track_script/track_file on the sync "
                                  "group"),
    "sync_group_tracking_weight": set_value("sync_group_tracking_weight", True),
    "notify_priority_changes": flag_field("notify_priority_changes"),
}


def build_sync_group(node: Node, diag: Diagnostics,
                     globals: VrrpGlobals | None = None) -> SyncGroup | None:
    """``vrrp_sync_group NAME { }``; smtp_alert and notify_priority_changes inherit
    from ``globals`` (keepalived's defaults without)."""
    name = named_block(node, diag, "vrrp_sync_group")
    if name is None:
        return None
    globals = globals or VrrpGlobals()
    fields = Fields()
    where = f"vrrp_sync_group {name}"
    for child in node.children or ():
        handler = _SYNC_GROUP_HANDLERS.get(child.keyword)
        if handler is not None:
            handler(child, diag, fields)
        elif not child.args and child.children is None:
            unknown_keyword(child, diag, where, _SYNC_GROUP_HANDLERS,
                            hint=" (instance names go in a 'group { }' block)")
        else:
            unknown_keyword(child, diag, where, _SYNC_GROUP_HANDLERS)
    if not fields.get("group"):
        diag.warning(node.origin, f"sync group {name} has no members; ignored")
        return None
    found = fields.values
    found.setdefault("smtp_alert", globals.effective_smtp_alert)
    found.setdefault("notify_priority_changes", globals.vrrp_notify_priority_changes)
    return SyncGroup(name=name, **found, field_origins=fields.field_origins(),
                     origin=node.origin)


# ======================================================================= track_group, garp_group


def build_track_group(node: Node, diag: Diagnostics) -> StaticTrackGroup | None:
    """``track_group NAME { group { INSTANCE... } }``."""
    name = named_block(node, diag, "track_group")
    if name is None:
        return None
    fields = read_block(node.children or (), diag, {"group": _member_list("group")},
                        f"track_group {name}")
    if not fields.get("group"):
        diag.warning(node.origin, f"track_group {name} has no members; ignored")
        return None
    return StaticTrackGroup(name=name, group=fields.get("group"), origin=node.origin)


def _interfaces(node: Node, diag: Diagnostics, fields: Fields) -> None:
    entries = list_block(node, diag)
    if entries is None:
        return
    names = [read_interface_name(w, diag) for e in entries for w in (e.keyword, *e.args)]
    if not names:
        diag.warning(node.origin, "empty 'interfaces' block")
        return
    fields.set("interfaces", tuple(n for n in names if n is not None), node.origin)


_GARP_GROUP_HANDLERS: dict[str, Handler] = {
    "garp_interval": timer_field("garp_interval", 0, INT32_MAX / 1e6, large=1),
    "gna_interval": timer_field("gna_interval", 0, INT32_MAX / 1e6, large=1),
    "interface": interface_field("interface"),
    "interfaces": _interfaces,
}


def build_garp_group(node: Node, diag: Diagnostics) -> GarpGroup | None:
    if node.children is None:
        diag.error(node.origin, "'garp_group' needs a { } block")
        return None
    fields = read_block(node.children, diag, _GARP_GROUP_HANDLERS, "garp_group")
    if "garp_interval" not in fields and "gna_interval" not in fields:
        diag.warning(node.origin, "garp_group sets no delay; ignored")
        return None
    if "interface" in fields and "interfaces" in fields:
        diag.warning(node.origin, "garp_group: use only one of 'interface' and "
                                  "'interfaces'")
    return GarpGroup(**fields.values, origin=node.origin)


# ======================================================================= vrrp_instance


def _state(node: Node, diag: Diagnostics, fields: Fields) -> None:
    no_block(node, diag)
    word = convert.first(node, diag)
    if word is None:
        return
    state = convert.choice(word, ("MASTER", "BACKUP"), diag, "state", case_sensitive=True)
    if state is None:
        return
    if state == "BACKUP" and fields.get("state") is InstanceState.MASTER:
        diag.warning(word.origin, "state already set to MASTER; BACKUP ignored")
        return
    fields.set("state", InstanceState(state), word.origin)


def _interface(node: Node, diag: Diagnostics, fields: Fields) -> None:
    no_block(node, diag)
    word = convert.first(node, diag)
    if word is None:
        return
    name = read_interface_name(word, diag)
    if name is None:
        return
    if name == "lo":
        diag.error(word.origin, "a loopback interface cannot be used for VRRP")
        return
    fields.set("interface", name, word.origin)


def _use_vmac(node: Node, diag: Diagnostics, fields: Fields) -> None:
    """``use_vmac [NAME] [MAC]`` (the MAC may have 5 octets: the VRID is the 6th)."""
    no_block(node, diag)
    fields.set("use_vmac", True, node.origin)
    words = list(node.args)
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if ":" in word:
            if "vmac_address" in fields:
                diag.error(word.origin, "the VMAC address is already given")
                continue
            mac = _mac(word, diag)
            if mac is not None:
                fields.set("vmac_address", mac, word.origin)
            continue
        if word == "name" and i < len(words):
            word = words[i]
            i += 1
        if "vmac_interface" in fields:
            diag.error(word.origin, "the VMAC interface name is already given")
            continue
        name = read_interface_name(word, diag, "VMAC interface")
        if name is not None:
            fields.set("vmac_interface", name, word.origin)


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


def _use_ipvlan(node: Node, diag: Diagnostics, fields: Fields) -> None:
    """``use_ipvlan [NAME] [ADDRESS[/PREFIX]] [bridge|private|vepa]``."""
    no_block(node, diag)
    if "use_ipvlan" in fields:
        diag.error(node.origin, "use_ipvlan is already given")
        return
    fields.set("use_ipvlan", True, node.origin)
    for word in node.args:
        if word in ("bridge", "private", "vepa"):
            if "ipvlan_mode" in fields:
                diag.error(word.origin, "the ipvlan mode is already given")
            else:
                fields.set("ipvlan_mode", IpvlanMode(str(word)), word.origin)
            continue
        try:
            address = ipaddress.ip_interface(str(word))
        except ValueError:
            address = None
        if address is not None:
            if "ipvlan_address" in fields:
                diag.error(word.origin, "the ipvlan address is already given")
            else:
                fields.set("ipvlan_address", address, word.origin)
            continue
        if "ipvlan_interface" in fields:
            diag.error(word.origin, "the ipvlan interface name is already given")
            continue
        name = read_interface_name(word, diag, "ipvlan interface")
        if name is not None:
            fields.set("ipvlan_interface", name, word.origin)


def _unicast_peers(node: Node, diag: Diagnostics, fields: Fields) -> None:
    entries = list_block(node, diag)
    if entries is None:
        return
    fields.set("unicast_keyword", True, node.origin)
    peers = list(fields.get("unicast_peers", ()))
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
            fields.set("check_unicast_src", True, entry.origin)
        peers.append(peer)
    fields.set("unicast_peers", tuple(peers), node.origin)


def _old_unicast_checksum(node: Node, diag: Diagnostics, fields: Fields) -> None:
    no_block(node, diag)
    if not convert.args(node, diag, 0, 1):
        return
    fields.set("unicast_keyword", True, node.origin)
    mode = OldUnicastChecksum.ALWAYS
    if node.args:
        if node.args[0] != "never":
            diag.error(node.args[0].origin, f"unknown old_unicast_checksum mode "
                                            f"'{node.args[0]}' (expected never)")
            return
        mode = OldUnicastChecksum.NEVER
    fields.set("old_unicast_checksum", mode, value_origin(node))


def _unicast_flag(name: str) -> Handler:
    """A keyword that also makes the instance meant for unicast."""
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
        if convert.args(node, diag, 0, 0):
            fields.set(name, True, node.origin)
            fields.set("unicast_keyword", True, node.origin)
    return handler


def _source_ip(unicast: bool) -> Handler:
    """``unicast_src_ip`` (which also makes the instance meant for unicast) or its old
    name ``mcast_src_ip``."""
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
        word = convert.first(node, diag)
        if word is None:
            return
        address = convert.address(word, diag, "source address")
        if address is None:
            return
        if unicast:
            fields.set("unicast_keyword", True, node.origin)
        fields.set("unicast_src_ip", address, word.origin)
    return handler


def _authentication(node: Node, diag: Diagnostics, fields: Fields) -> None:
    if node.children is None:
        diag.error(node.origin, "'authentication' needs a { } block")
        return
    auth = Fields()
    for child in node.children:
        no_block(child, diag)
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
            unknown_keyword(child, diag, "authentication", ("auth_type", "auth_pass"))
    if "auth_type" not in auth:
        diag.warning(node.origin, "authentication without auth_type; ignored")
        return
    fields.set("authentication", Authentication(**auth.values, origin=node.origin),
               node.origin)


def _notify_deleted(node: Node, diag: Diagnostics, fields: Fields) -> None:
    if "notify_deleted" in fields:
        diag.error(node.origin, f"'notify_deleted' already set at "
                                f"{fields.origin('notify_deleted')}; this one is ignored")
        return
    if node.args:
        script = _notify_script(node, diag)
        if script is None:
            return
        fields.set("notify_deleted_script", script, value_origin(node))
    else:
        no_block(node, diag)
    fields.set("notify_deleted", True, node.origin)


def _deprecated_flag(keyword: str, message: str) -> Handler:
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        diag.warning(node.origin, message)
        fields.set(keyword, True, node.origin)
    return handler


_sync_daemon_interface = interface_field("lvs_sync_daemon_interface")


def _lvs_sync_daemon_interface(node: Node, diag: Diagnostics, fields: Fields) -> None:
    diag.warning(node.origin, "'lvs_sync_daemon_interface' in a vrrp_instance is "
                              "deprecated; use global_defs lvs_sync_daemon")
    _sync_daemon_interface(node, diag, fields)


_INSTANCE_HANDLERS: dict[str, Handler] = {
    "state": _state,
    "interface": _interface,
    "vrf": interface_field("vrf"),
    "use_vmac": _use_vmac,
    "use_vmac_addr": set_value("use_vmac_addr", True),
    "vmac_xmit_base": set_value("vmac_xmit_base", True),
    "use_ipvlan": _use_ipvlan,
    "native_ipv6": deprecated("native_ipv6", set_value("native_ipv6", True),
                              "IPv6 virtual addresses (they set the family)"),
    "dont_track_primary": set_value("dont_track_primary", True),
    **{keyword: _track_handler(keyword) for keyword in _TRACK_READERS},
    "mcast_src_ip": _source_ip(unicast=False),
    "unicast_src_ip": _source_ip(unicast=True),
    "mcast_dst_ip": _address_of("mcast_dst_ip"),
    "track_src_ip": set_value("track_src_ip", True),
    "unicast_peer": _unicast_peers,
    "unicast_fault_no_peer": _unicast_flag("unicast_fault_no_peer"),
    "unicast_ttl": int_field("unicast_ttl", 0, 255),
    "check_unicast_src": _unicast_flag("check_unicast_src"),
    "old_unicast_checksum": _old_unicast_checksum,
    "virtual_router_id": int_field("virtual_router_id", 1, 255),
    "version": int_field("version", 2, 3),
    "priority": int_field("priority", 1, PRIORITY_OWNER),
    "advert_int": timer_field("advert_int", 0.01, ADVERT_INT_V2_MAX),
    "authentication": _authentication,
    "virtual_ipaddress": _appended("virtual_ipaddresses", build_virtual_addresses),
    "virtual_ipaddress_excluded": _appended("virtual_ipaddresses_excluded",
                                            build_virtual_addresses),
    "promote_secondaries": set_value("promote_secondaries", True),
    "virtual_routes": _appended("virtual_routes", build_virtual_routes),
    "virtual_rules": _appended("virtual_rules", build_virtual_rules),
    "accept": set_value("accept", True),
    "no_accept": set_value("accept", False),
    "nopreempt": set_value("nopreempt", True),
    "preempt": set_value("nopreempt", False),  # for backward compatibility
    "preempt_delay": timer_field("preempt_delay", 0, TIMER_MAX_SEC),
    "skip_check_adv_addr": flag_field("skip_check_adv_addr"),
    "strict_mode": flag_field("strict_mode"),
    "debug": int_field("debug", 0, 4),
    "notify_master": once_field("notify_master", _notify_script),
    "notify_backup": once_field("notify_backup", _notify_script),
    "notify_fault": once_field("notify_fault", _notify_script),
    "notify_stop": once_field("notify_stop", _notify_script),
    "notify_deleted": _notify_deleted,
    "notify": once_field("notify", _notify_script),
    "notify_master_rx_lower_pri": once_field("notify_master_rx_lower_pri", _notify_script),
    "notify_priority_changes": flag_field("notify_priority_changes"),
    "smtp_alert": flag_field("smtp_alert"),
    "garp_master_delay": timer_field("garp_master_delay", 0, UINT32_MAX // 1_000_000,
                                     whole=True),
    "garp_master_repeat": _at_least_one("garp_master_repeat"),
    "garp_master_refresh": timer_field("garp_master_refresh", 0, UINT32_MAX, whole=True),
    "garp_master_refresh_repeat": _at_least_one("garp_master_refresh_repeat"),
    "garp_lower_prio_delay": timer_field("garp_lower_prio_delay", 0,
                                         UINT32_MAX // 1_000_000, whole=True),
    "garp_lower_prio_repeat": int_field("garp_lower_prio_repeat", 0, INT32_MAX),
    "garp_extra_if": _garp_extra_if("garp_extra_if", 0),
    "down_timer_adverts": int_field("down_timer_adverts", 1, 100),
    "lower_prio_no_advert": flag_field("lower_prio_no_advert"),
    "higher_prio_send_advert": flag_field("higher_prio_send_advert"),
    "kernel_rx_buf_size": int_field("kernel_rx_buf_size", 0, UINT32_MAX),
    "linkbeat_use_polling": _deprecated_flag(
        "linkbeat_use_polling", "'linkbeat_use_polling' in a vrrp_instance is deprecated; "
                                "use linkbeat_interfaces"),
    "lvs_sync_daemon_interface": _lvs_sync_daemon_interface,
}
_INSTANCE_HANDLERS["vmac_garp_intvl"] = deprecated(  # renamed after v2.2.2
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

    def __init__(self, name: str, node: Node, fields: Fields, diag: Diagnostics,
                 globals: VrrpGlobals):
        self.name = name
        self.node = node
        self.fields = fields
        self.v = fields.values
        self.diag = diag
        self.globals = globals

    def at(self, *names: str) -> str:
        for name in names:
            if name in self.fields.origins:
                return self.fields.origins[name]
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
        return VrrpInstance(name=self.name, **v, field_origins=self.fields.field_origins(),
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
        if not math.isfinite(value) or value <= 0:
            return  # left for the validator to report
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
    name = named_block(node, diag, "vrrp_instance")
    if name is None:
        return None
    fields = read_block(node.children or (), diag, _INSTANCE_HANDLERS,
                        f"vrrp_instance {name}")
    return _Instance(name, node, fields, diag, globals).resolve()


def resolve_instance(name: str, settings: Mapping[str, Any], diag: Diagnostics,
                     globals: VrrpGlobals, *, origin: str = "",
                     origins: Mapping[str, str] | None = None) -> VrrpInstance | None:
    """A `VrrpInstance` from the settings an instance gives (field name -> value, as in
    `VrrpInstance`; what is absent is inherited or defaulted as for keepalived.conf),
    with the same adjustments and reports as `build_instance`. For other front ends
    (YAML) that know which settings were written; ``origins``: where each was."""
    fields = Fields()
    for key, value in settings.items():
        fields.set(key, value, (origins or {}).get(key, origin))
    fields.values.pop("name", None)
    fields.origins.pop("name", None)
    node = Node(Word(name, origin))
    return _Instance(name, node, fields, diag, globals).resolve()


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

