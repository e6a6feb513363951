"""Build `GlobalDefs` from the ``global_defs`` block(s) of a keepalived.conf and the
top-level daemon statements (net_namespace, instance, use_pid_dir, ...).

The VRRP builder reads the same lines into the `VrrpGlobals` that the VRRP root
carries: its own keywords (`VRRP_GLOBAL_KEYWORDS`) are skipped here; the shared ones
(`VRRP_SHARED_GLOBAL_KEYWORDS`) are read and reported on here. A table maps each
keyword to a handler that reads its line (see `director.config.blocks`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from director.config import convert
from director.config.blocks import (
    INT32_MAX,
    UINT32_MAX,
    Fields,
    Handler,
    Reader,
    dynamic_interfaces,
    flag_field,
    int_field,
    no_block,
    read_block,
    read_cpus,
    read_fifo,
    read_rlimit_rttime,
    reader_field,
    script_field,
    script_user,
    timer_field,
    value_origin,
    word_field,
)

# Once defined here; still imported from here by the keepalived.conf front end.
from director.config.blocks import read_timer as read_timer
from director.config.blocks import unknown_keyword as unknown_keyword
from director.config.build_vrrp import VRRP_GLOBAL_KEYWORDS, build_vrrp_globals
from director.config.errors import Diagnostics
from director.config.model import (
    FlushOnStop,
    GlobalDefs,
    LvsSyncDaemon,
    LvsTimeouts,
    ProcessTuning,
    SmtpServer,
)
from director.config.tree import Node, Word
from vrrp.spec import VrrpGlobals

# ----------------------------------------------------------------- global_defs keywords


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


_max_auto_priority_value = int_field("max_auto_priority", -1, 99)


def _max_auto_priority(node: Node, diag: Diagnostics, fields: Fields) -> None:
    """``max_auto_priority [PRIORITY]``: "Omitting the priority sets the maximum value"."""
    if node.args:
        _max_auto_priority_value(node, diag, fields)
        return
    no_block(node, diag)
    fields.set("max_auto_priority", 99, node.origin)


def _tuning(process: str, key: str, read: Reader) -> Handler:
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


def _whole(low: int, high: int) -> Reader:
    def read(node: Node, diag: Diagnostics) -> int | None:
        word = convert.first(node, diag)
        return None if word is None else convert.integer(word, diag, low, high,
                                                         str(node.keyword))
    return read


def _tuning_handlers() -> dict[str, Handler]:
    table: dict[str, Handler] = {}
    for process in ("vrrp", "checker", "bfd"):
        target = f"{process}_process"
        table[f"{process}_priority"] = _tuning(target, "priority", _whole(-20, 19))
        table[f"{process}_no_swap"] = _tuning(target, "no_swap", convert.flag)
        table[f"{process}_rt_priority"] = _tuning(target, "rt_priority", _whole(1, 99))
        table[f"{process}_cpu_affinity"] = _tuning(target, "cpu_affinity", read_cpus)
        table[f"{process}_rlimit_rttime"] = _tuning(target, "rlimit_rttime",
                                                    read_rlimit_rttime)
        table[f"{process}_rlimit_rtime"] = table[f"{process}_rlimit_rttime"]  # deprecated
    return table


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
    "script_user": script_user,
    "enable_script_security": flag_field("enable_script_security"),
    "notify_fifo": reader_field("notify_fifo", read_fifo),
    "notify_fifo_script": script_field("notify_fifo_script"),
    "lvs_notify_fifo": reader_field("lvs_notify_fifo", read_fifo),
    "lvs_notify_fifo_script": script_field("lvs_notify_fifo_script"),
    "dynamic_interfaces": dynamic_interfaces,
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
