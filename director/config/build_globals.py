"""Build `GlobalDefs` from the ``global_defs`` block(s) of a keepalived.conf and the
top-level daemon statements (net_namespace, instance, use_pid_dir, ...).

The VRRP builder reads the same lines into the `VrrpGlobals` that the VRRP root
carries: its own keywords (`VRRP_GLOBAL_KEYWORDS`) are skipped here; the shared ones
(`VRRP_SHARED_GLOBAL_KEYWORDS`) are read and reported on here.

Also home of the small block-reading helpers that the LVS builder shares: a table maps
each keyword to a handler that reads its line into `Fields`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from director.config import convert
from director.config.build_vrrp import VRRP_GLOBAL_KEYWORDS, build_vrrp_globals
from director.config.errors import Diagnostics
from director.config.model import (
    FieldOrigin,
    Fifo,
    FlushOnStop,
    GlobalDefs,
    LvsSyncDaemon,
    LvsTimeouts,
    ProcessTuning,
    Script,
    SmtpServer,
)
from director.config.tree import Node, Word
from vrrp.spec import VrrpGlobals

MAX_SECONDS = 1e9  # ~31 years: beyond any sensible timer, and safe for timer arithmetic
UINT32_MAX = 2**32 - 1
INT32_MAX = 2**31 - 1


# ----------------------------------------------------------------- block reading helpers


class Fields:
    """What one block set: field values and where each was written."""

    __slots__ = ("origins", "values")

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.origins: dict[str, str] = {}

    def set(self, name: str, value: Any, origin: str) -> None:
        self.values[name] = value
        self.origins[name] = origin

    def field_origins(self) -> tuple[FieldOrigin, ...]:
        return tuple(FieldOrigin(name=n, origin=o) for n, o in self.origins.items())


Handler = Callable[[Node, Diagnostics, Fields], None]


def value_origin(node: Node) -> str:
    """Where a keyword's value is (its first argument), else where the keyword is."""
    return node.args[0].origin if node.args else node.origin


def read_block(children: Iterable[Node], diag: Diagnostics, table: Mapping[str, Handler],
               where: str, fields: Fields | None = None,
               skip: Iterable[str] = ()) -> Fields:
    """Run each line of a block through its handler; unknown keywords are warnings."""
    fields = Fields() if fields is None else fields
    skipped = frozenset(skip)
    for node in children:
        handler = table.get(node.keyword)
        if handler is not None:
            handler(node, diag, fields)
        elif node.keyword not in skipped:
            unknown_keyword(node, diag, where, table)
    return fields


def unknown_keyword(node: Node, diag: Diagnostics, where: str, known: Iterable[str]) -> None:
    close = difflib.get_close_matches(str(node.keyword), list(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    diag.warning(node.origin, f"unknown keyword '{node.keyword}' in {where}{hint}; ignored")


def no_block(node: Node, diag: Diagnostics) -> None:
    if node.children is not None:
        diag.warning(node.origin, f"'{node.keyword}' takes no block; the block is ignored")


def read_timer(word: Word, diag: Diagnostics, what: str, positive: bool = False,
               high: float = MAX_SECONDS) -> float | None:
    value = convert.number(word, diag, 0, high, what)
    if value is not None and positive and value == 0:
        diag.error(word.origin, f"{what} must be greater than 0")
        return None
    return value


def read_script(node: Node, diag: Diagnostics) -> Script | None:
    """``keyword COMMAND [USER [GROUP]]`` (a command with arguments is quoted)."""
    no_block(node, diag)
    if not convert.args(node, diag, 1, 3):
        return None
    if not node.args[0].strip():
        diag.error(node.args[0].origin, f"'{node.keyword}' needs a command")
        return None
    words = [str(w) for w in node.args]
    return Script(command=words[0], user=words[1] if len(words) > 1 else None,
                  group=words[2] if len(words) > 2 else None, origin=node.origin)


def flag_field(name: str) -> Handler:
    """A keyword that is on when present (``keyword [on|off|yes|no|true|false]``)."""
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
        value = convert.flag(node, diag)
        if value is not None:
            fields.set(name, value, value_origin(node))
    return handler


def word_field(name: str) -> Handler:
    """``keyword WORD``: a name, a path."""
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
        word = convert.first(node, diag)
        if word is not None:
            fields.set(name, str(word), word.origin)
    return handler


def text_field(name: str) -> Handler:
    """``keyword TEXT...``: free text, its words joined by a space (as keepalived)."""
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
        if convert.args(node, diag, 1):
            fields.set(name, " ".join(node.args), node.args[0].origin)
    return handler


def timer_field(name: str, positive: bool = False, high: float = MAX_SECONDS,
                scale: float = 1.0) -> Handler:
    """``keyword SECONDS`` (``scale`` converts other units, e.g. 1e-6 for usecs)."""
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
        word = convert.first(node, diag)
        if word is None:
            return
        value = read_timer(word, diag, str(node.keyword), positive, high)
        if value is not None:
            fields.set(name, value * scale, word.origin)
    return handler


def int_field(name: str, low: int, high: int) -> Handler:
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
        word = convert.first(node, diag)
        if word is None:
            return
        value = convert.integer(word, diag, low, high, str(node.keyword))
        if value is not None:
            fields.set(name, value, word.origin)
    return handler


def script_field(name: str) -> Handler:
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        script = read_script(node, diag)
        if script is not None:
            fields.set(name, script, value_origin(node))
    return handler


# ----------------------------------------------------------------- global_defs keywords


def _fifo(name: str) -> Handler:
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
        if not convert.args(node, diag, 1, 3):
            return
        words = [str(w) for w in node.args]
        fields.set(name, Fifo(path=words[0], user=words[1] if len(words) > 1 else None,
                              group=words[2] if len(words) > 2 else None, origin=node.origin),
                   node.args[0].origin)
    return handler


def _notification_email(node: Node, diag: Diagnostics, fields: Fields) -> None:
    emails = list(fields.values.get("notification_email", ()))
    emails.extend(str(w) for w in node.args)  # lenient: addresses on the keyword's line
    for child in node.children or ():
        emails.append(str(child.keyword))
        emails.extend(str(w) for w in child.args)
    if node.children is None and not node.args:
        diag.error(node.origin, "'notification_email' needs a { } block of addresses")
        return
    fields.set("notification_email", tuple(emails), node.origin)


def _smtp_server(node: Node, diag: Diagnostics, fields: Fields) -> None:
    no_block(node, diag)
    if not convert.args(node, diag, 1, 2):
        return
    port = 25
    if len(node.args) == 2:
        read = convert.integer(node.args[1], diag, 1, 65535, "port")
        if read is None:
            return
        port = read
    fields.set("smtp_server", SmtpServer(host=str(node.args[0]), port=port, origin=node.origin),
               node.args[0].origin)


def _script_user(node: Node, diag: Diagnostics, fields: Fields) -> None:
    no_block(node, diag)
    if not convert.args(node, diag, 1, 2):
        return
    fields.set("script_user", str(node.args[0]), node.args[0].origin)
    if len(node.args) == 2:
        fields.set("script_group", str(node.args[1]), node.args[1].origin)


def _max_auto_priority(node: Node, diag: Diagnostics, fields: Fields) -> None:
    no_block(node, diag)
    if not node.args:  # "Omitting the priority sets the maximum value"
        fields.set("max_auto_priority", 99, node.origin)
        return
    word = convert.first(node, diag)
    if word is None:
        return
    value = convert.integer(word, diag, -1, 99, "max_auto_priority")
    if value is not None:
        fields.set("max_auto_priority", value, word.origin)


def _tuning(process: str, key: str, read: Callable[[Node, Diagnostics], Any]) -> Handler:
    """A setting of one child process (vrrp_priority -> vrrp_process.priority)."""
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
        value = read(node, diag)
        if value is None:
            return
        settings = dict(fields.values.get(process, {}))
        settings[key] = value
        fields.set(process, settings, value_origin(node))
    return handler


def _nice(node: Node, diag: Diagnostics) -> int | None:
    word = convert.first(node, diag)
    return None if word is None else convert.integer(word, diag, -20, 19, str(node.keyword))


def _rt_priority(node: Node, diag: Diagnostics) -> int | None:
    word = convert.first(node, diag)
    return None if word is None else convert.integer(word, diag, 1, 99, str(node.keyword))


def _on(node: Node, diag: Diagnostics) -> bool | None:
    return convert.flag(node, diag)


def _cpus(node: Node, diag: Diagnostics) -> tuple[int, ...] | None:
    if not convert.args(node, diag, 1):
        return None
    cpus = [convert.integer(w, diag, 0, 4095, "cpu") for w in node.args]
    return None if None in cpus else tuple(c for c in cpus if c is not None)


def _rlimit(node: Node, diag: Diagnostics) -> float | None:
    word = convert.first(node, diag)
    if word is None:
        return None
    usecs = convert.integer(word, diag, 2, UINT32_MAX, str(node.keyword))
    return None if usecs is None else usecs / 1e6


def _tuning_handlers() -> dict[str, Handler]:
    table: dict[str, Handler] = {}
    for process in ("vrrp", "checker", "bfd"):
        target = f"{process}_process"
        table[f"{process}_priority"] = _tuning(target, "priority", _nice)
        table[f"{process}_no_swap"] = _tuning(target, "no_swap", _on)
        table[f"{process}_rt_priority"] = _tuning(target, "rt_priority", _rt_priority)
        table[f"{process}_cpu_affinity"] = _tuning(target, "cpu_affinity", _cpus)
        table[f"{process}_rlimit_rttime"] = _tuning(target, "rlimit_rttime", _rlimit)
        table[f"{process}_rlimit_rtime"] = table[f"{process}_rlimit_rttime"]  # deprecated
    return table


def _dynamic_interfaces(node: Node, diag: Diagnostics, fields: Fields) -> None:
    no_block(node, diag)
    if not convert.args(node, diag, 0, 1):
        return
    if node.args:
        if node.args[0] != "allow_if_changes":
            diag.error(node.args[0].origin, f"unknown option '{node.args[0]}' of "
                                            "dynamic_interfaces (expected allow_if_changes)")
            return
        fields.set("dynamic_interfaces_allow_if_changes", True, node.args[0].origin)
    fields.set("dynamic_interfaces", True, node.origin)


def _lvs_timeouts(node: Node, diag: Diagnostics, fields: Fields) -> None:
    no_block(node, diag)
    if not convert.args(node, diag, 2):
        return
    values: dict[str, float] = {}
    words = node.args
    i = 0
    while i < len(words):
        name = convert.choice(words[i], ("tcp", "tcpfin", "udp"), diag, "lvs_timeouts option")
        if name is None:
            return
        if i + 1 >= len(words):
            diag.error(words[i].origin, f"lvs_timeouts '{words[i]}' needs a number of seconds")
            return
        seconds = convert.integer(words[i + 1], diag, 1, 86400 * 365, f"{name} timeout")
        if seconds is None:
            return
        values[name] = float(seconds)
        i += 2
    fields.set("lvs_timeouts", LvsTimeouts(origin=node.origin, **values), node.args[0].origin)


def _lvs_flush_on_stop(node: Node, diag: Diagnostics, fields: Fields) -> None:
    no_block(node, diag)
    if not convert.args(node, diag, 0, 1):
        return
    value = FlushOnStop.ALL
    if node.args:
        word = node.args[0]
        if word.upper() == "VS":
            value = FlushOnStop.VS
        else:
            flag = convert.flag(node, diag)
            if flag is None:
                return
            value = FlushOnStop.ALL if flag else FlushOnStop.OFF
    fields.set("lvs_flush_on_stop", value, value_origin(node))


_SYNC_OPTIONS = ("inst", "id", "maxlen", "port", "ttl", "group")


def _lvs_sync_daemon(node: Node, diag: Diagnostics, fields: Fields) -> None:
    no_block(node, diag)
    if not convert.args(node, diag, 1):
        return
    words = node.args
    values: dict[str, Any] = {"interface": str(words[0])}
    i = 1
    if i < len(words) and words[i] not in _SYNC_OPTIONS:
        values["vrrp_instance"] = str(words[i])  # "inst" may be omitted
        i += 1
    readers: dict[str, tuple[str, Callable[[Word], Any]]] = {
        "inst": ("vrrp_instance", str),
        "id": ("sync_id", lambda w: convert.integer(w, diag, 0, 255, "sync id")),
        "maxlen": ("maxlen", lambda w: convert.integer(w, diag, 1, 65507, "maxlen")),
        "port": ("port", lambda w: convert.integer(w, diag, 1, 65535, "port")),
        "ttl": ("ttl", lambda w: convert.integer(w, diag, 1, 255, "ttl")),
        "group": ("group", lambda w: convert.address(w, diag, "multicast group")),
    }
    ok = True
    while i < len(words):
        option = words[i]
        if option not in readers:
            diag.error(option.origin, f"unknown lvs_sync_daemon option '{option}' (expected "
                                      f"one of: {', '.join(_SYNC_OPTIONS)})")
            return
        if i + 1 >= len(words):
            diag.error(option.origin, f"lvs_sync_daemon '{option}' needs a value")
            return
        name, read = readers[option]
        value = read(words[i + 1])
        if value is None:
            ok = False
        else:
            values[name] = value
        i += 2
    group = values.get("group")
    if group is not None and not group.is_multicast:
        diag.error(words[words.index("group") + 1].origin,
                   f"lvs_sync_daemon group {group} is not a multicast address")
        ok = False
    if ok:
        fields.set("lvs_sync_daemon", LvsSyncDaemon(origin=node.origin, **values),
                   words[0].origin)


_UMASK_BITS = {"IRUSR": 0o400, "IWUSR": 0o200, "IXUSR": 0o100, "IRGRP": 0o040,
               "IWGRP": 0o020, "IXGRP": 0o010, "IROTH": 0o004, "IWOTH": 0o002,
               "IXOTH": 0o001}


def _umask(node: Node, diag: Diagnostics, fields: Fields) -> None:
    no_block(node, diag)
    if not convert.args(node, diag, 1):
        return
    text = "".join(node.args)
    where = node.args[0].origin
    if text[:1].isdigit():
        base = 16 if text.lower().startswith("0x") else 8 if text.startswith("0") else 10
        try:
            value = int(text, base)
        except ValueError:
            diag.error(where, f"umask '{text}' is not a number")
            return
    else:
        value = 0
        for name in text.split("|"):
            bit = _UMASK_BITS.get(name.upper())
            if bit is None:
                diag.error(where, f"unknown umask bit '{name}' (expected numbers or "
                                  f"{'|'.join(_UMASK_BITS)})")
                return
            value |= bit
    if not 0 <= value <= 0o777:
        diag.error(where, f"umask {text} is out of range (0-0777)")
        return
    fields.set("umask", value, where)


def _optional_path(name: str, default: str | None = None, flag: str | None = None) -> Handler:
    """``keyword [PATH]``: sets ``flag`` (when given) and the path (or ``default``)."""
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
        if not convert.args(node, diag, 0, 1):
            return
        if flag is not None:
            fields.set(flag, True, node.origin)
        path = str(node.args[0]) if node.args else default
        if path is not None:
            fields.set(name, path, value_origin(node))
    return handler


def _include_check(node: Node, diag: Diagnostics, fields: Fields) -> None:
    no_block(node, diag)
    fields.set("include_check", tuple(str(w) for w in node.args) or ("all",), node.origin)


def _namespace_ipvs(node: Node, diag: Diagnostics, fields: Fields) -> None:
    no_block(node, diag)
    if convert.args(node, diag, 0, 1):
        # No name: the default namespace, written as "" to tell it from "not set".
        fields.set("net_namespace_ipvs", str(node.args[0]) if node.args else "",
                   value_origin(node))


# The top-level statements that are global settings (keepalived's root keywords).
TOP_LEVEL_HANDLERS: dict[str, Handler] = {
    "net_namespace": word_field("net_namespace"),
    "net_namespace_ipvs": _namespace_ipvs,
    "namespace_with_ipsets": flag_field("namespace_with_ipsets"),
    "instance": word_field("instance"),
    "use_pid_dir": flag_field("use_pid_dir"),
    "linkbeat_use_polling": flag_field("linkbeat_use_polling"),
    "child_wait_time": timer_field("child_wait_time", positive=True),
}
TOP_LEVEL_GLOBAL_KEYWORDS: frozenset[str] = frozenset(TOP_LEVEL_HANDLERS)

GLOBAL_HANDLERS: dict[str, Handler] = {
    "router_id": word_field("router_id"),
    "notification_email": _notification_email,
    "notification_email_from": word_field("notification_email_from"),
    "smtp_server": _smtp_server,
    "smtp_helo_name": word_field("smtp_helo_name"),
    "smtp_connect_timeout": timer_field("smtp_connect_timeout", positive=True),
    "smtp_alert": flag_field("smtp_alert"),
    "smtp_alert_vrrp": flag_field("smtp_alert_vrrp"),
    "smtp_alert_checker": flag_field("smtp_alert_checker"),
    "checker_log_all_failures": flag_field("checker_log_all_failures"),
    "no_email_faults": flag_field("no_email_faults"),
    "no_checker_emails": flag_field("no_checker_emails"),
    "rs_init_notifies": flag_field("rs_init_notifies"),
    "process_names": flag_field("process_names"),
    "process_name": word_field("process_name"),
    "vrrp_process_name": word_field("vrrp_process_name"),
    "checker_process_name": word_field("checker_process_name"),
    "lvs_process_name": word_field("checker_process_name"),  # deprecated
    "bfd_process_name": word_field("bfd_process_name"),
    **_tuning_handlers(),
    "max_auto_priority": _max_auto_priority,
    "min_auto_priority_delay": timer_field("min_auto_priority_delay", positive=True,
                                           high=10_000_000, scale=1e-6),
    "startup_script": script_field("startup_script"),
    "startup_script_timeout": timer_field("startup_script_timeout", positive=True,
                                          high=1000),
    "shutdown_script": script_field("shutdown_script"),
    "shutdown_script_timeout": timer_field("shutdown_script_timeout", positive=True,
                                           high=1000),
    "umask": _umask,
    "random_seed": int_field("random_seed", 0, UINT32_MAX),
    "script_user": _script_user,
    "enable_script_security": flag_field("enable_script_security"),
    "notify_fifo": _fifo("notify_fifo"),
    "notify_fifo_script": script_field("notify_fifo_script"),
    "lvs_notify_fifo": _fifo("lvs_notify_fifo"),
    "lvs_notify_fifo_script": script_field("lvs_notify_fifo_script"),
    "dynamic_interfaces": _dynamic_interfaces,
    "default_interface": word_field("default_interface"),
    "tmp_config_directory": word_field("tmp_config_directory"),
    "config_save_dir": word_field("config_save_dir"),
    "data_use_instance": flag_field("data_use_instance"),
    "reload_check_config": _optional_path("reload_check_config_log",
                                          flag="reload_check_config"),
    "reload_time_file": word_field("reload_time_file"),
    "reload_repeat": flag_field("reload_repeat"),
    "reload_file": _optional_path("reload_file", default="keepalived.reload"),
    "include_check": _include_check,
    "lvs_timeouts": _lvs_timeouts,
    "lvs_flush": flag_field("lvs_flush"),
    "lvs_flush_on_stop": _lvs_flush_on_stop,
    "lvs_flush_onstop": _lvs_flush_on_stop,  # deprecated
    "lvs_sync_daemon": _lvs_sync_daemon,
    "lvs_netlink_cmd_rcv_bufs": int_field("lvs_netlink_cmd_rcv_bufs", 1, INT32_MAX),
    "lvs_netlink_cmd_rcv_bufs_force": flag_field("lvs_netlink_cmd_rcv_bufs_force"),
    "lvs_netlink_monitor_rcv_bufs": int_field("lvs_netlink_monitor_rcv_bufs", 1, INT32_MAX),
    "lvs_netlink_monitor_rcv_bufs_force": flag_field("lvs_netlink_monitor_rcv_bufs_force"),
    "process_monitor_rcv_bufs": int_field("process_monitor_rcv_bufs", 1, UINT32_MAX),
    "process_monitor_rcv_bufs_force": flag_field("process_monitor_rcv_bufs_force"),
    "nftables_ipvs": _optional_path("nftables_ipvs", default="keepalived"),
    "nftables_ipvs_priority": int_field("nftables_ipvs_priority", -INT32_MAX - 1, INT32_MAX),
    "nftables_ipvs_start_fwmark": int_field("nftables_ipvs_start_fwmark", 1, UINT32_MAX),
    "nftables_counters": flag_field("nftables_counters"),
    "snmp_socket": word_field("snmp_socket"),
    "enable_traps": flag_field("enable_traps"),
    "enable_snmp_vrrp": flag_field("enable_snmp_vrrp"),
    "enable_snmp_keepalived": flag_field("enable_snmp_vrrp"),  # deprecated
    "enable_snmp_checker": flag_field("enable_snmp_checker"),
    "enable_snmp_rfc": flag_field("enable_snmp_rfc"),
    "enable_snmp_rfcv2": flag_field("enable_snmp_rfcv2"),
    "enable_snmp_rfcv3": flag_field("enable_snmp_rfcv3"),
    "enable_dbus": flag_field("enable_dbus"),
    "dbus_service_name": word_field("dbus_service_name"),
    **TOP_LEVEL_HANDLERS,  # lenient: keepalived only knows these outside global_defs
}
# The VRRP builder owns its keywords; the shared ones (script_user, ...) are read here too.
for _keyword in VRRP_GLOBAL_KEYWORDS:
    GLOBAL_HANDLERS.pop(_keyword, None)
GLOBAL_KEYWORDS: frozenset[str] = frozenset(GLOBAL_HANDLERS) | VRRP_GLOBAL_KEYWORDS

_NESTED = {"vrrp_process": ProcessTuning, "checker_process": ProcessTuning,
           "bfd_process": ProcessTuning}


def build_global_defs(children: Sequence[Node], diag: Diagnostics, *,
                      top_level: Sequence[Node] = (),
                      origin: str = "") -> tuple[GlobalDefs, VrrpGlobals]:
    """GlobalDefs and VrrpGlobals from the lines of the global_defs block(s)
    (``children``: several blocks' lines, concatenated) and the top-level global
    statements (``top_level``).

    Keywords both sides use (`VRRP_SHARED_GLOBAL_KEYWORDS`: script_user, notify_fifo,
    vrrp_priority...) are read by both builders and reported on here only.
    """
    fields = read_block(top_level, diag, TOP_LEVEL_HANDLERS, "the top level")
    read_block(children, diag, GLOBAL_HANDLERS, "global_defs", fields,
               skip=VRRP_GLOBAL_KEYWORDS)
    values = fields.values
    for name, cls in _NESTED.items():
        if name in values:
            values[name] = cls(**values[name])
    global_defs = GlobalDefs(**values, field_origins=fields.field_origins(), origin=origin)
    return global_defs, build_vrrp_globals(children, diag)
