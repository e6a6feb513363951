"""Inheritance for configurations read from YAML or JSON: what a file leaves out is
filled in as keepalived fills in what a keepalived.conf leaves out.

A keepalived.conf is built into *effective* values (see `director.config.model`); the
codec gives exactly what a YAML file says. `resolve_config` closes the gap: every key
the file did not write takes the value it inherits, with keepalived's precedence
(checker > real server > virtual server > global settings > the kind's default).
Written values always win, even where keepalived would adjust them: validation then
reports what it reports for any config.

`config_data` is the inverse, for dumps: the plain data of a config in which every
value that inheritance would not give back is written out (``concise``: and only
those), so that reading a dump gives back the very same config.

The rules (``*_inherited``) take an object, the names of its keys that were written
(a file's mapping, or the keys a dump chooses to write) and what it inherits from; they
return, for keys that were not written, the values that differ from the model's
defaults. They read the object only for written keys and keys that are never
inherited, so that one rule serves both reading and writing. The keepalived.conf
builders could call them too (they carry the same rules privately).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Container, Mapping, Sequence
from typing import Any

from checkers.spec import CHECKER_CLASSES, CheckDefaults, SmtpHost, resolved_timing
from director.config import codec
from director.config.build_vrrp import resolve_instance
from director.config.errors import Diagnostics
from director.config.model import (
    PERSISTENCE_TIMEOUT_DEFAULT,
    Config,
    GlobalDefs,
    RealServer,
    SorryServer,
    VirtualServer,
)
from vrrp.spec import (
    NotifyFifo,
    SyncGroup,
    VirtualAddress,
    VrrpConfig,
    VrrpGlobals,
    VrrpInstance,
    VrrpScript,
)

Written = Container[str]
Values = dict[str, Any]
Rule = Callable[[Any, Written, Any], Values]

_EMPTY: Mapping[str, Any] = {}
_UNSET: Any = object()


_DEFAULTS: dict[type, dict[str, Any]] = {}


def defaults_of(cls: type) -> dict[str, Any]:
    """field name -> default of a model class's data fields (cached)."""
    found = _DEFAULTS.get(cls)
    if found is None:
        found = _DEFAULTS[cls] = {f.name: codec.default_of(f) for f in codec.data_fields(cls)}
    return found


def _differs(value: Any, default: Any) -> bool:
    return type(value) is not type(default) or value != default


def _changes(values: Mapping[str, Any], written: Written,
             defaults: Mapping[str, Any]) -> Values:
    """Of ``values``, those of keys not written that differ from the defaults."""
    return {name: value for name, value in values.items()
            if name not in written and _differs(value, defaults[name])}


# ======================================================================= LVS


def service_port(vs: VirtualServer) -> int:
    """The port a virtual server gives its real and sorry servers (0: none)."""
    return vs.port if vs.addressing == "address" else 0


def checker_smtp_alert(global_defs: GlobalDefs) -> bool | None:
    """global_defs' smtp_alert_checker, else smtp_alert; None when neither is set."""
    alert = global_defs.smtp_alert_checker
    return alert if alert is not None else global_defs.smtp_alert


def virtual_server_inherited(vs: VirtualServer, written: Written,
                             global_defs: GlobalDefs) -> Values:
    """smtp_alert from the global settings; persistence_timeout 360 s when only a
    persistence_granularity is set (keepalived's)."""
    values: Values = {"smtp_alert": bool(checker_smtp_alert(global_defs))}
    if vs.persistence_granularity is not None:
        values["persistence_timeout"] = PERSISTENCE_TIMEOUT_DEFAULT
    return _changes(values, written, defaults_of(VirtualServer))


def sorry_server_inherited(sorry: SorryServer, written: Written, vs: VirtualServer) -> Values:
    """A sorry server serves the service's port with the service's forwarding method."""
    return _changes({"port": service_port(vs), "lvs_method": vs.lvs_method}, written,
                    defaults_of(SorryServer))


# What a real server takes from its virtual server when it does not set it.
REAL_SERVER_FROM_VIRTUAL = ("delay_loop", "connect_timeout", "retry", "delay_before_retry",
                            "warmup", "inhibit_on_failure", "alpha", "virtualhost", "weight",
                            "lvs_method")


class RealServerContext:
    """What the real servers of one virtual server inherit, worked out once."""

    __slots__ = ("values",)

    def __init__(self, vs: VirtualServer, global_defs: GlobalDefs):
        values = {name: getattr(vs, name) for name in REAL_SERVER_FROM_VIRTUAL}
        alert = checker_smtp_alert(global_defs)
        values["smtp_alert"] = True if alert is None else alert  # on for real servers
        values["port"] = service_port(vs)
        self.values: Values = _changes(values, (), defaults_of(RealServer))


def real_server_inherited(rs: RealServer, written: Written,
                          context: RealServerContext) -> Values:
    return {name: value for name, value in context.values.items() if name not in written}


def _kinds_with(name: str) -> frozenset[str]:
    return frozenset(kind for kind, cls in CHECKER_CLASSES.items()
                     if name in defaults_of(cls))


_SCHEDULED = _kinds_with("delay_loop")
_CONNECTING = _kinds_with("connect_ip")
_WITH_VIRTUALHOST = _kinds_with("virtualhost")
# A checker's own connection settings (an SMTP_CHECK host's too).
CONNECTION = ("connect_ip", "connect_port", "bindto", "bind_port", "bind_if",
              "connect_timeout", "fwmark")
_TIMING = ("delay_loop", "retry", "delay_before_retry", "warmup", "alpha", "connect_timeout",
           "misc_timeout")


class CheckerContext:
    """What the checkers of one real server inherit. ``timings`` may be shared by the
    contexts of many servers: it caches the timing of each kind per server settings."""

    __slots__ = ("server", "timings")

    def __init__(self, server: RealServer,
                 timings: dict[tuple, dict[tuple, tuple[Values, Values]]] | None = None):
        self.server = server
        key = (server.delay_loop, server.connect_timeout, server.retry,
               server.delay_before_retry, server.warmup, server.alpha)
        self.timings = (timings if timings is not None else {}).setdefault(key, {})

    def timing(self, kind: str, delay_loop: Any = _UNSET) -> tuple[Values, Values]:
        """(every timing value of a checker of ``kind``, those that differ from the
        kind's defaults), for a checker that writes ``delay_loop`` (or not: _UNSET)
        and no other timing setting."""
        key = (kind, delay_loop)
        found = self.timings.get(key)
        if found is None:
            found = self.timings[key] = self._timing(kind, delay_loop)
        return found

    def _timing(self, kind: str, delay_loop: Any) -> tuple[Values, Values]:
        server = self.server
        values: Values
        if kind in _SCHEDULED:
            defaults = CheckDefaults(delay_loop=server.delay_loop,
                                     connect_timeout=server.connect_timeout,
                                     retry=server.retry,
                                     delay_before_retry=server.delay_before_retry,
                                     warmup=server.warmup != 0, alpha=server.alpha)
            values = resolved_timing(kind, defaults,
                                     delay_loop=None if delay_loop is _UNSET else delay_loop)
            if server.warmup:  # CheckDefaults says only on/off
                values["warmup"] = server.warmup
            if kind not in _CONNECTING:
                del values["connect_timeout"]
            if "misc_timeout" in defaults_of(CHECKER_CLASSES[kind]):
                values["misc_timeout"] = values["delay_loop"]
        elif "alpha" in defaults_of(CHECKER_CLASSES[kind]):
            values = {"alpha": server.alpha}
        else:
            values = {}
        return values, _changes(values, (), defaults_of(CHECKER_CLASSES[kind]))


def smtp_endpoint(checker: Any, written: Written, context: CheckerContext) -> Values:
    """The connection of an SMTP_CHECK that its hosts inherit: what the checker writes,
    else the real server's address and port and the checker's timeout."""
    server = context.server
    delay_loop = checker.delay_loop if "delay_loop" in written else _UNSET
    timing = context.timing(checker.kind, delay_loop)[0]
    endpoint: Values = {"connect_ip": server.address, "connect_port": server.port,
                        "bindto": None, "bind_port": None, "bind_if": None,
                        "connect_timeout": timing["connect_timeout"], "fwmark": 0}
    for name in CONNECTION:
        if name in written:
            endpoint[name] = getattr(checker, name)
    return endpoint


def smtp_host_inherited(host: SmtpHost, written: Written, endpoint: Mapping[str, Any]
                        ) -> Values:
    return _changes(endpoint, written, defaults_of(SmtpHost))


def checker_inherited(checker: Any, written: Written, context: CheckerContext) -> Values:
    """Timing from the real server, else the kind's defaults (`resolved_timing`); the
    connection from the real server (connect_ip/connect_port: its address and port);
    an HTTP_GET/SSL_GET's virtualhost from the real server.

    An SMTP_CHECK that writes no hosts probes its own connection (``hosts`` holds that
    one endpoint); one that writes hosts takes its unwritten connection settings from
    the first host (its hosts must have been resolved: `smtp_host_inherited`)."""
    kind = checker.kind
    delay_loop = checker.delay_loop if "delay_loop" in written else _UNSET
    values = context.timing(kind, delay_loop)[1]
    out = {name: value for name, value in values.items() if name not in written}
    if kind in _CONNECTING:
        server = context.server
        if kind == "SMTP_CHECK":
            out.update(_smtp_connection(checker, written, context))
        else:
            if "connect_ip" not in written:
                out["connect_ip"] = server.address
            if "connect_port" not in written and server.port:
                out["connect_port"] = server.port
    if (kind in _WITH_VIRTUALHOST and "virtualhost" not in written
            and context.server.virtualhost is not None):
        out["virtualhost"] = context.server.virtualhost
    return out


def _smtp_connection(checker: Any, written: Written, context: CheckerContext) -> Values:
    endpoint = smtp_endpoint(checker, written, context)
    out: Values = {}
    if "hosts" in written:
        hosts = checker.hosts
    else:
        hosts = (SmtpHost(**endpoint),)
        out["hosts"] = hosts
    first = {name: getattr(hosts[0], name) for name in CONNECTION} if hosts else endpoint
    out.update(_changes(first, written, defaults_of(type(checker))))
    return out


# ======================================================================= VRRP


# VrrpGlobals field -> the global_defs field of the same setting (keepalived reads the
# one global_defs line into both).
VRRP_GLOBALS_FROM_GLOBAL_DEFS = {
    name: name for name in (
        "smtp_alert", "smtp_alert_vrrp", "script_user", "script_group",
        "enable_script_security", "dynamic_interfaces", "dynamic_interfaces_allow_if_changes",
        "default_interface", "nftables_counters", "process_monitor_rcv_bufs",
        "process_monitor_rcv_bufs_force")
}
# VrrpGlobals field -> the field of global_defs' vrrp_process.
VRRP_GLOBALS_FROM_VRRP_PROCESS = {
    "vrrp_priority": "priority", "vrrp_no_swap": "no_swap", "vrrp_rt_priority": "rt_priority",
    "vrrp_cpu_affinity": "cpu_affinity", "vrrp_rlimit_rttime": "rlimit_rttime",
}
# vrrp_min_garp: one burst, no repeat, no refresh.
MIN_GARP = {"vrrp_garp_master_repeat": 1, "vrrp_garp_master_delay": 0.0,
            "vrrp_garp_master_refresh": 0.0, "vrrp_garp_master_refresh_repeat": 0}


def vrrp_globals_inherited(vrrp_globals: VrrpGlobals, written: Written,
                           global_defs: GlobalDefs) -> Values:
    """The settings shared with global_defs; vrrp_min_garp's values; the lower-priority
    GARP delay and repeat from the master ones."""
    values: Values = {name: getattr(global_defs, source)
                      for name, source in VRRP_GLOBALS_FROM_GLOBAL_DEFS.items()}
    fifo = global_defs.notify_fifo
    values["notify_fifo"] = None if fifo is None else NotifyFifo(
        path=fifo.path, user=fifo.user, group=fifo.group, origin=fifo.origin)
    process = global_defs.vrrp_process
    values.update({name: getattr(process, source)
                   for name, source in VRRP_GLOBALS_FROM_VRRP_PROCESS.items()})
    if vrrp_globals.vrrp_min_garp:
        values.update(MIN_GARP)
    defaults = defaults_of(VrrpGlobals)

    def effective(name: str) -> Any:
        if name in written:
            return getattr(vrrp_globals, name)
        return values.get(name, defaults[name])

    values["vrrp_garp_lower_prio_delay"] = effective("vrrp_garp_master_delay")
    values["vrrp_garp_lower_prio_repeat"] = effective("vrrp_garp_master_repeat")
    return _changes(values, written, defaults)


def script_inherited(script: VrrpScript, written: Written, context: object = None) -> Values:
    """A vrrp_script's timeout is its interval unless set."""
    return _changes({"timeout": script.interval}, written, defaults_of(VrrpScript))


def sync_group_inherited(group: SyncGroup, written: Written,
                         vrrp_globals: VrrpGlobals) -> Values:
    return _changes({"smtp_alert": vrrp_globals.effective_smtp_alert,
                     "notify_priority_changes": vrrp_globals.vrrp_notify_priority_changes},
                    written, defaults_of(SyncGroup))


_INSTANCE_FIELDS = tuple(name for name in defaults_of(VrrpInstance) if name != "name")
# Stand-ins for what `resolve_instance` requires but nothing inherits from: they let an
# instance that lacks them still inherit (validation reports what is missing).
_PLACEHOLDERS = ("virtual_router_id", "interface", "virtual_ipaddresses")
_PLACEHOLDER_VIPS = (
    (VirtualAddress(address=ipaddress.IPv4Interface("192.0.2.1/32")),),
    (VirtualAddress(address=ipaddress.IPv6Interface("2001:db8::1/128")),),
)


def instance_inherited(instance: VrrpInstance, written: Written,
                       vrrp_globals: VrrpGlobals) -> Values:
    """What `build_vrrp.resolve_instance` makes of the settings that were written
    (family, version, state/priority, mcast group, strict mode, accept, GARP, ...), for
    those that were not. An instance whose addresses are of mixed families inherits
    nothing (validation reports them)."""
    settings: Values = {name: getattr(instance, name) for name in _INSTANCE_FIELDS
                        if name in written}
    peers = settings.get("unicast_peers", ())
    if "check_unicast_src" not in written and any(
            peer.min_ttl != 0 or peer.max_ttl != 255 for peer in peers):
        settings["check_unicast_src"] = True  # as a peer's min_ttl/max_ttl sets it
    if "virtual_router_id" not in settings:
        settings["virtual_router_id"] = 1
    if "interface" not in settings and not peers:
        settings["interface"] = "lo"
    vip_choices: Sequence[Any] = ((),)
    if not settings.get("virtual_ipaddresses"):
        vip_choices = _PLACEHOLDER_VIPS
    resolved = None
    for vips in vip_choices:
        if vips:
            settings["virtual_ipaddresses"] = vips
        resolved = resolve_instance(instance.name, settings, Diagnostics(), vrrp_globals)
        if resolved is not None:
            break
    if resolved is None:
        return {}
    defaults = defaults_of(VrrpInstance)
    out: Values = {}
    for name in _INSTANCE_FIELDS:
        if name not in written and name not in _PLACEHOLDERS:
            value = getattr(resolved, name)
            if _differs(value, defaults[name]):
                out[name] = value
    return out


# The keys each rule may fill in (a concise dump leaves them out where inheritance
# gives them back).
INHERITED_KEYS: dict[type, frozenset[str]] = {
    VirtualServer: frozenset({"smtp_alert", "persistence_timeout"}),
    SorryServer: frozenset({"port", "lvs_method"}),
    RealServer: frozenset({*REAL_SERVER_FROM_VIRTUAL, "smtp_alert", "port"}),
    SmtpHost: frozenset(CONNECTION),
    VrrpGlobals: frozenset({*VRRP_GLOBALS_FROM_GLOBAL_DEFS, *VRRP_GLOBALS_FROM_VRRP_PROCESS,
                            "notify_fifo", *MIN_GARP, "vrrp_garp_lower_prio_delay",
                            "vrrp_garp_lower_prio_repeat"}),
    VrrpScript: frozenset({"timeout"}),
    SyncGroup: frozenset({"smtp_alert", "notify_priority_changes"}),
    VrrpInstance: frozenset({
        "family", "state", "priority", "version", "accept", "strict_mode", "mcast_dst_ip",
        "check_unicast_src", "skip_check_adv_addr", "down_timer_adverts",
        "lower_prio_no_advert", "higher_prio_send_advert", "notify_priority_changes",
        "smtp_alert", "garp_master_delay", "garp_master_repeat", "garp_master_refresh",
        "garp_master_refresh_repeat", "garp_lower_prio_delay", "garp_lower_prio_repeat",
        "garp_extra_if", "garp_extra_if_all"}),
    **{cls: frozenset({*_TIMING, *CONNECTION, "virtualhost", "hosts"})
           & frozenset(defaults_of(cls)) for cls in CHECKER_CLASSES.values()},
}


# ======================================================================= reading


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if type(value) is dict else _EMPTY


def _mappings(items: Any, count: int) -> Sequence[Mapping[str, Any]]:
    """The mappings that ``count`` decoded objects were read from (a list decoded into
    objects holds a mapping for each)."""
    if type(items) is list and len(items) == count:
        return items
    return [_EMPTY] * count


def resolve_config(config: Config, data: Mapping[str, Any]) -> Config:
    """``config`` as decoded from ``data`` (the plain data of a file), with every key
    that the data did not write filled in with what it inherits."""
    data = _mapping(data)
    global_defs = config.global_defs
    changes: Values = {}
    vrrp = _resolve_vrrp(config.vrrp, _mapping(data.get("vrrp")), global_defs)
    if vrrp is not config.vrrp:
        changes["vrrp"] = vrrp
    servers = config.virtual_servers
    timings: dict[tuple, dict[tuple, tuple[Values, Values]]] = {}
    resolved = [_resolve_virtual_server(vs, vs_data, global_defs, timings)
                for vs, vs_data in zip(servers, _mappings(data.get("virtual_servers"),
                                                          len(servers)), strict=True)]
    if any(new is not old for new, old in zip(resolved, servers, strict=True)):
        changes["virtual_servers"] = tuple(resolved)
    return dataclasses.replace(config, **changes) if changes else config


def _resolve_each(objects: tuple, items: Any, rule: Rule, context: Any) -> tuple:
    out: list | None = None
    items = _mappings(items, len(objects))
    for index, obj in enumerate(objects):
        changes = rule(obj, items[index], context)
        if changes:
            if out is None:
                out = list(objects)
            out[index] = dataclasses.replace(obj, **changes)
    return objects if out is None else tuple(out)


def _resolve_vrrp(vrrp: VrrpConfig, data: Mapping[str, Any],
                  global_defs: GlobalDefs) -> VrrpConfig:
    changes: Values = {}
    vrrp_globals = vrrp.globals
    inherited = vrrp_globals_inherited(vrrp_globals, _mapping(data.get("globals")),
                                       global_defs)
    if inherited:
        vrrp_globals = changes["globals"] = dataclasses.replace(vrrp_globals, **inherited)
    for name, rule, context in (("scripts", script_inherited, None),
                                ("sync_groups", sync_group_inherited, vrrp_globals),
                                ("instances", instance_inherited, vrrp_globals)):
        objects = getattr(vrrp, name)
        resolved = _resolve_each(objects, data.get(name), rule, context)
        if resolved is not objects:
            changes[name] = resolved
    return dataclasses.replace(vrrp, **changes) if changes else vrrp


def _resolve_virtual_server(vs: VirtualServer, data: Mapping[str, Any],
                            global_defs: GlobalDefs, timings: dict) -> VirtualServer:
    changes = virtual_server_inherited(vs, data, global_defs)
    sorry = vs.sorry_server
    if sorry is not None:
        inherited = sorry_server_inherited(sorry, _mapping(data.get("sorry_server")), vs)
        if inherited:
            changes["sorry_server"] = dataclasses.replace(sorry, **inherited)
    reals = vs.real_servers
    if reals:
        resolved = _resolve_real_servers(reals, data.get("real_servers"),
                                         RealServerContext(vs, global_defs), timings)
        if resolved is not reals:
            changes["real_servers"] = resolved
    return dataclasses.replace(vs, **changes) if changes else vs


def _resolve_real_servers(reals: tuple[RealServer, ...], items: Any,
                          context: RealServerContext, timings: dict
                          ) -> tuple[RealServer, ...]:
    # The one loop that runs for every server of a large config: kept plain.
    out: list[RealServer] | None = None
    replace = dataclasses.replace
    items = _mappings(items, len(reals))
    for index, rs in enumerate(reals):
        data = items[index]
        inherited = real_server_inherited(rs, data, context)
        resolved = replace(rs, **inherited) if inherited else rs
        checkers = resolved.checkers
        if checkers:
            checker_context = CheckerContext(resolved, timings)
            checker_items = _mappings(data.get("checkers"), len(checkers))
            new: list | None = None
            for position, checker in enumerate(checkers):
                checker_data = checker_items[position]
                if checker.kind == "SMTP_CHECK":
                    done = _resolve_smtp_check(checker, checker_data, checker_context)
                else:
                    inherited = checker_inherited(checker, checker_data, checker_context)
                    done = replace(checker, **inherited) if inherited else checker
                if done is not checker:
                    if new is None:
                        new = list(checkers)
                    new[position] = done
            if new is not None:
                if resolved is rs:
                    resolved = replace(rs, checkers=tuple(new))
                else:  # made just above and seen by nobody yet: spare a second copy
                    object.__setattr__(resolved, "checkers", tuple(new))
        if resolved is not rs:
            if out is None:
                out = list(reals)
            out[index] = resolved
    return reals if out is None else tuple(out)


def _resolve_smtp_check(checker: Any, data: Mapping[str, Any],
                        context: CheckerContext) -> Any:
    if "hosts" in data and checker.hosts:
        endpoint = smtp_endpoint(checker, data, context)
        hosts = _resolve_each(checker.hosts, data["hosts"], smtp_host_inherited, endpoint)
        if hosts is not checker.hosts:
            checker = dataclasses.replace(checker, hosts=hosts)
    inherited = checker_inherited(checker, data, context)
    return dataclasses.replace(checker, **inherited) if inherited else checker


# ======================================================================= writing


def config_data(config: Config, *, concise: bool = False) -> dict[str, Any]:
    """The plain data of ``config`` for a dump that reads back (`resolve_config`
    included) as the same config: what `codec.to_data` writes (what differs from the
    defaults), plus every value that inheritance would not give back.

    ``concise``: without the values that inheritance gives back either, as a person
    would write the file (a real server that does not repeat its virtual server's
    delay_loop, a checker without the connect_ip of its real server).
    """
    data = codec.to_data(config)
    _Writer(concise).config(config, data)
    return data


class _Writer:
    def __init__(self, concise: bool):
        self.concise = concise
        self.timings: dict[tuple, dict[tuple, tuple[Values, Values]]] = {}

    def settle(self, obj: Any, data: dict[str, Any], rule: Rule, context: Any) -> set[str]:
        """Choose the keys of ``obj``'s data: start from those written (less the
        inherited ones when concise) and add every key whose value inheritance would
        not give back, until none is left; then make ``data`` hold exactly those."""
        cls = type(obj)
        inheritable = INHERITED_KEYS[cls]
        written = set(data)
        if self.concise:
            written -= inheritable
        defaults = defaults_of(cls)
        while True:
            values = rule(obj, written, context)
            wrong = [name for name in inheritable | values.keys() if name not in written
                     and _differs(getattr(obj, name), values.get(name, defaults[name]))]
            if not wrong:
                break
            written.update(wrong)
        if written != data.keys():
            kept = {name: data[name] if name in data else codec.to_data(getattr(obj, name))
                    for name in defaults if name in written}
            data.clear()
            data.update(kept)
        return written

    def config(self, config: Config, data: dict[str, Any]) -> None:
        self.vrrp(config, data)
        items = data.get("virtual_servers", [])
        for vs, vs_data in zip(config.virtual_servers, items, strict=True):
            self.virtual_server(vs, vs_data, config.global_defs)
        if "vrrp" in data:  # (perhaps added: keep the model's order)
            kept = {name: data[name] for name in defaults_of(Config) if name in data}
            data.clear()
            data.update(kept)

    def vrrp(self, config: Config, data: dict[str, Any]) -> None:
        vrrp = config.vrrp
        vrrp_data = data.get("vrrp", {})
        globals_data = vrrp_data.get("globals", {})
        if self.settle(vrrp.globals, globals_data, vrrp_globals_inherited, config.global_defs):
            if "globals" not in vrrp_data:  # the globals are the first key
                items = list(vrrp_data.items())
                vrrp_data.clear()
                vrrp_data.update([("globals", globals_data), *items])
            data["vrrp"] = vrrp_data
        elif "globals" in vrrp_data:  # left empty by a concise dump
            del vrrp_data["globals"]
            if not vrrp_data:
                del data["vrrp"]
        for name, rule, context in (("scripts", script_inherited, None),
                                    ("sync_groups", sync_group_inherited, vrrp.globals),
                                    ("instances", instance_inherited, vrrp.globals)):
            for obj, obj_data in zip(getattr(vrrp, name), vrrp_data.get(name, []),
                                     strict=True):
                self.settle(obj, obj_data, rule, context)

    def virtual_server(self, vs: VirtualServer, data: dict[str, Any],
                       global_defs: GlobalDefs) -> None:
        self.settle(vs, data, virtual_server_inherited, global_defs)
        if vs.sorry_server is not None:
            self.settle(vs.sorry_server, data["sorry_server"], sorry_server_inherited, vs)
        context = RealServerContext(vs, global_defs)
        for rs, rs_data in zip(vs.real_servers, data.get("real_servers", []), strict=True):
            self.settle(rs, rs_data, real_server_inherited, context)
            checker_context = CheckerContext(rs, self.timings)
            for checker, checker_data in zip(rs.checkers, rs_data.get("checkers", []),
                                             strict=True):
                written = self.settle(checker, checker_data, checker_inherited,
                                      checker_context)
                if checker.kind == "SMTP_CHECK" and "hosts" in written:
                    endpoint = smtp_endpoint(checker, written, checker_context)
                    for host, host_data in zip(checker.hosts, checker_data["hosts"],
                                               strict=True):
                        self.settle(host, host_data, smtp_host_inherited, endpoint)
