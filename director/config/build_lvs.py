"""Build `VirtualServerGroup` and `VirtualServer` (with its real servers and their
checkers) from keepalived.conf statements.

Settings are inherited as keepalived does: virtual server -> real server -> checker;
the real servers come out with effective values and their checkers are built (by
`build_checkers.build_checker`) with the resolved `CheckDefaults`. Deprecated spellings
(lb_algo, lb_kind, nb_get_retry, ...) are read as their current names. Unknown keywords
are warnings; bad values are errors at the value, and the rest still loads.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from typing import Any

from checkers.spec import CheckDefaults, CheckerSpec
from director.config import convert
from director.config.blocks import (
    UINT32_MAX,
    Fields,
    Handler,
    enum_field,
    flag_field,
    int_field,
    no_block,
    reader_field,
    script_field,
    text_field,
    timer_field,
    unknown_keyword,
    word_field,
)
from director.config.build_checkers import CHECKER_KEYWORDS, build_checker
from director.config.errors import Diagnostics
from director.config.model import (
    PERSISTENCE_TIMEOUT_DEFAULT,
    AddressFamily,
    AddressRange,
    Forwarding,
    GlobalDefs,
    GroupFwmark,
    IPAddress,
    LvsMethod,
    Protocol,
    RealServer,
    SchedulerFlag,
    SorryServer,
    TunnelChecksum,
    TunnelType,
    VirtualServer,
    VirtualServerGroup,
    family_of,
)
from director.config.tree import Node, Word
from director.config.validate_lvs import port_mismatch

FWMARK_MAX = UINT32_MAX
WEIGHT_MAX = 65535


def _port(word: Word, diag: Diagnostics) -> int | None:
    return convert.port(word, diag)


def _address(word: Word, diag: Diagnostics, what: str) -> IPAddress | None:
    # Tens of thousands of real servers: the C parser takes dotted quads at a quarter of
    # ipaddress's cost (and rejects what it rejects); anything else goes the usual way.
    try:
        return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, word))
    except (OSError, ValueError):
        return convert.address(word, diag, what)


# ----------------------------------------------------------------- virtual_server_group


def _range_end(start: IPAddress, text: str, word: Word, diag: Diagnostics) -> IPAddress | None:
    """The end of ``START-END``: a whole address, or the last byte (IPv4, decimal) or
    the last 16-bit group (IPv6, hex) of the start address."""
    if "." in text or ":" in text:
        end = convert.address(Word(text, word.origin), diag, "range end")
        if end is None:
            return None
        if end.version != start.version:
            diag.error(word.origin, f"the ends of range '{word}' are of different families")
            return None
        return end
    bits, base = (8, 10) if start.version == 4 else (16, 16)
    try:
        last = int(text, base)
    except ValueError:
        diag.error(word.origin, f"range end '{text}' in '{word}' is not a number")
        return None
    if not 0 <= last < 2**bits:
        diag.error(word.origin, f"range end '{text}' in '{word}' is out of range")
        return None
    mask = 2**bits - 1
    return ipaddress.ip_address((int(start) & ~mask) | last)


def _address_range(word: Word, diag: Diagnostics) -> tuple[IPAddress, IPAddress] | None:
    text = str(word)
    if "/" in text:
        try:
            net = ipaddress.ip_network(text, strict=True)
        except ValueError as error:
            diag.error(word.origin, f"'{word}' is not a valid network ({error})")
            return None
        if net.prefixlen == 0:
            diag.error(word.origin, f"'{word}': a /0 range is not allowed")
            return None
        return net.network_address, net.broadcast_address
    if "-" in text:
        head, tail = text.split("-", 1)
        first = convert.address(Word(head, word.origin), diag, "range start")
        if first is None:
            return None
        last = _range_end(first, tail, word, diag)
        if last is None:
            return None
        if int(last) <= int(first):
            diag.error(word.origin, f"range '{word}' does not end after its start")
            return None
        return first, last
    address = convert.address(word, diag, "virtual address")
    return None if address is None else (address, address)


def _group_entry(node: Node, diag: Diagnostics) -> AddressRange | GroupFwmark | None:
    no_block(node, diag)
    if node.keyword == "fwmark":
        if not convert.args(node, diag, 1, 2):
            return None
        mark = convert.integer(node.args[0], diag, 1, FWMARK_MAX, "fwmark")
        family = None
        if len(node.args) == 2:
            chosen = convert.choice(node.args[1], [f.value for f in AddressFamily], diag,
                                    "address family", case_sensitive=True)
            if chosen is None:
                return None
            family = AddressFamily(chosen)
        if mark is None:
            return None
        return GroupFwmark(fwmark=mark, ip_family=family, origin=node.origin)
    if len(node.args) > 1:
        diag.error(node.args[1].origin, f"unexpected '{node.args[1]}' after the port of a "
                                        "virtual_server_group entry")
        return None
    ends = _address_range(node.keyword, diag)
    port = _port(node.args[0], diag) if node.args else 0
    if ends is None or port is None:
        return None
    return AddressRange(first=ends[0], last=ends[1], port=port, origin=node.origin)


def build_virtual_server_group(node: Node, diag: Diagnostics) -> VirtualServerGroup | None:
    """``virtual_server_group NAME { IP[-END|/LEN] [PORT] ... fwmark N [inet|inet6] }``."""
    if not convert.args(node, diag, 1, 1):
        return None
    if node.children is None:
        diag.error(node.origin, "virtual_server_group needs a { } block of entries")
        return None
    ranges: list[AddressRange] = []
    fwmarks: list[GroupFwmark] = []
    for child in node.children:
        entry = _group_entry(child, diag)
        if isinstance(entry, AddressRange):
            ranges.append(entry)
        elif entry is not None:
            fwmarks.append(entry)
    return VirtualServerGroup(name=str(node.args[0]), address_ranges=tuple(ranges),
                              fwmarks=tuple(fwmarks), origin=node.origin)


# ----------------------------------------------------------------- shared readers


def read_lvs_method(node: Node, diag: Diagnostics) -> LvsMethod | None:
    """``NAT|DR|TUN [type ipip|gue port N|gre] [nocsum|csum|remcsum]``."""
    no_block(node, diag)
    if not convert.args(node, diag, 1):
        return None
    words = node.args
    name = convert.choice(words[0], [f.value for f in Forwarding], diag, "forwarding method",
                          case_sensitive=True)
    if name is None:
        return None
    forwarding = Forwarding(name)
    if forwarding is not Forwarding.TUN:
        if len(words) > 1:
            diag.error(words[1].origin, f"unexpected '{words[1]}': only TUN takes options")
            return None
        return LvsMethod(forwarding=forwarding, origin=node.origin)
    values: dict[str, Any] = {}
    i = 1
    while i < len(words):
        word = words[i]
        if word == "type":
            if i + 1 >= len(words):
                diag.error(word.origin, "'type' needs ipip, gue or gre")
                return None
            kind = convert.choice(words[i + 1], [t.value for t in TunnelType], diag,
                                  "tunnel type", case_sensitive=True)
            if kind is None:
                return None
            values["tunnel_type"] = TunnelType(kind)
            i += 2
            if kind == TunnelType.GUE:
                if i + 1 >= len(words) or words[i] != "port":
                    diag.error(words[i - 1].origin, "tunnel type gue needs 'port N'")
                    return None
                port = convert.integer(words[i + 1], diag, 1, 65535, "port")
                if port is None:
                    return None
                values["tunnel_port"] = port
                i += 2
        elif word in TunnelChecksum.__members__.values():
            values["tunnel_checksum"] = TunnelChecksum(str(word))
            i += 1
        else:
            diag.error(word.origin, f"unknown TUN option '{word}' (expected type ipip, type "
                                    "gue port N, type gre, nocsum, csum or remcsum)")
            return None
    kind = values.get("tunnel_type", TunnelType.IPIP)
    checksum = values.get("tunnel_checksum", TunnelChecksum.NOCSUM)
    if checksum is not TunnelChecksum.NOCSUM and kind is TunnelType.IPIP:
        diag.error(node.origin, f"checksum option '{checksum}' needs tunnel type gue or gre")
        return None
    if checksum is TunnelChecksum.REMCSUM and kind is TunnelType.GRE:
        diag.error(node.origin, "tunnel type gre does not support remcsum")
        return None
    return LvsMethod(forwarding=forwarding, origin=node.origin, **values)


def _lvs_method(name: str) -> Handler:
    return reader_field(name, read_lvs_method)


def _server_address(node: Node, diag: Diagnostics,
                    what: str) -> tuple[IPAddress, int, str] | None:
    """``keyword IP [PORT]``: the address, the port (0 when not given) and where the
    port was written."""
    if not convert.args(node, diag, 1, 2):
        return None
    address = _address(node.args[0], diag, what)
    port, port_origin = 0, node.args[0].origin
    if len(node.args) == 2:
        port_origin = node.args[1].origin
        read = _port(node.args[1], diag)
        if read is None:
            return None
        port = read
    return None if address is None else (address, port, port_origin)


# Settings a virtual server passes down to its real servers (and they to checkers).
_CHECK_SETTINGS: dict[str, Handler] = {
    "delay_loop": timer_field("delay_loop", positive=True),
    "connect_timeout": timer_field("connect_timeout", positive=True),
    "retry": int_field("retry", 0, UINT32_MAX),
    "nb_get_retry": int_field("retry", 0, UINT32_MAX, what="retry"),  # deprecated
    "delay_before_retry": timer_field("delay_before_retry"),
    "warmup": timer_field("warmup"),
    "inhibit_on_failure": flag_field("inhibit_on_failure"),
    "alpha": flag_field("alpha"),
    "smtp_alert": flag_field("smtp_alert"),
    "virtualhost": text_field("virtualhost"),
    "snmp_name": text_field("snmp_name"),
    "weight": int_field("weight", 0, WEIGHT_MAX),
}


# ----------------------------------------------------------------- real_server


def _virtual_server_only(node: Node, diag: Diagnostics, fields: Fields) -> None:
    diag.warning(node.origin, f"{node.keyword} is a virtual_server setting (it applies to "
                              "all its real servers); ignored in a real_server")


_RS_HANDLERS: dict[str, Handler] = {
    **_CHECK_SETTINGS,
    "slow_start": _virtual_server_only,
    "lvs_method": _lvs_method("lvs_method"),
    "lb_kind": _lvs_method("lvs_method"),  # lenient: keepalived only has it on services
    "notify_up": script_field("notify_up"),
    "notify_down": script_field("notify_down"),
    "uthreshold": int_field("uthreshold", 0, UINT32_MAX),
    "lthreshold": int_field("lthreshold", 0, UINT32_MAX),
}

_INHERITED = ("delay_loop", "connect_timeout", "retry", "delay_before_retry", "warmup",
              "inhibit_on_failure", "alpha", "virtualhost", "weight", "lvs_method")


def _forwarding(values: dict[str, Any]) -> Forwarding:
    method = values.get("lvs_method")
    return method.forwarding if method is not None else LvsMethod().forwarding


class _RealServerBuilder:
    """Builds the real servers of one virtual server (its settings resolved once)."""

    def __init__(self, vs: dict[str, Any], global_defs: GlobalDefs, vs_port: int):
        self.vs = vs
        self.vs_port = vs_port
        smtp = global_defs.smtp_alert_checker
        self.smtp_alert = smtp if smtp is not None else global_defs.smtp_alert
        self.defaults_cache: dict[tuple, CheckDefaults] = {}

    def build(self, node: Node, diag: Diagnostics) -> RealServer | None:
        where = _server_address(node, diag, "real server address")
        if where is None:
            return None
        address, port, port_origin = where
        checker_nodes: list[Node] = []
        fields = Fields()
        if port:
            fields.origins["port"] = port_origin
        for child in node.children or ():
            handler = _RS_HANDLERS.get(child.keyword)
            if handler is not None:
                handler(child, diag, fields)
            elif child.keyword in CHECKER_KEYWORDS:
                checker_nodes.append(child)  # built once every setting is known
            else:
                unknown_keyword(child, diag, "real_server", REAL_SERVER_KEYWORDS)
        values = fields.values
        for name in _INHERITED:
            if name not in values and name in self.vs:
                values[name] = self.vs[name]
        if "smtp_alert" not in values:
            values["smtp_alert"] = True if self.smtp_alert is None else self.smtp_alert
        if not port:
            port = self.vs_port
        elif self.vs_port and port != self.vs_port and _forwarding(values) is not Forwarding.NAT:
            # Only NAT rewrites the destination port: like keepalived, check and serve the
            # port the traffic really goes to.
            diag.warning(port_origin, port_mismatch(port, str(self.vs_port), _forwarding(values)))
            port = self.vs_port
        defaults = self._defaults(values)
        checkers = []
        for child in checker_nodes:
            checker = build_checker(child, diag, defaults, address, port)
            if checker is not None:
                checkers.append(_with_server_settings(checker, child, values))
        return RealServer(address=address, port=port, checkers=tuple(checkers),
                          field_origins=fields.field_origins(), origin=node.origin, **values)

    def _defaults(self, values: dict[str, Any]) -> CheckDefaults:
        key = (values.get("delay_loop"), values.get("connect_timeout"), values.get("retry"),
               values.get("delay_before_retry"), values.get("warmup"), values.get("alpha"))
        defaults = self.defaults_cache.get(key)
        if defaults is None:
            delay_loop, connect_timeout, retry, delay_before_retry, warmup, alpha = key
            settings: dict[str, Any] = {"retry": retry,
                                        "delay_before_retry": delay_before_retry}
            if delay_loop is not None:
                settings["delay_loop"] = delay_loop
            if connect_timeout is not None:
                settings["connect_timeout"] = connect_timeout
            if warmup is not None:
                # CheckDefaults says on/off only: a value other than 0 is set on the
                # checkers afterwards (_with_server_settings).
                settings["warmup"] = warmup != 0
            if alpha is not None:
                settings["alpha"] = alpha
            defaults = self.defaults_cache[key] = CheckDefaults(**settings)
        return defaults


def _with_server_settings(checker: CheckerSpec, node: Node,
                          values: dict[str, Any]) -> CheckerSpec:
    """Fill in what `CheckDefaults` cannot carry: the server's virtualhost (HTTP_GET,
    SSL_GET) and a warmup other than 0 or the checker's delay_loop."""
    changes: dict[str, Any] = {}
    virtualhost = values.get("virtualhost")
    if virtualhost is not None and getattr(checker, "virtualhost", "") is None:
        changes["virtualhost"] = virtualhost
    warmup = values.get("warmup")
    if (warmup and hasattr(checker, "warmup")
            and not any(c.keyword == "warmup" for c in node.children or ())):
        changes["warmup"] = warmup
    return dataclasses.replace(checker, **changes) if changes else checker


# ----------------------------------------------------------------- virtual_server


def _sched_flag(flag: SchedulerFlag) -> Handler:
    def handler(node: Node, diag: Diagnostics, fields: Fields) -> None:
        no_block(node, diag)
        on = convert.flag(node, diag)
        if on is None:
            return
        flags = [f for f in fields.values.get("sched_flags", ()) if f is not flag]
        if on:
            flags.append(flag)
        fields.values["sched_flags"] = tuple(flags)
        fields.origins[flag.value] = node.origin
    return handler


def _persistence_timeout(node: Node, diag: Diagnostics, fields: Fields) -> None:
    no_block(node, diag)
    if not convert.args(node, diag, 0, 1):
        return
    if not node.args:
        fields.set("persistence_timeout", PERSISTENCE_TIMEOUT_DEFAULT, node.origin)
        return
    value = convert.integer(node.args[0], diag, 1, UINT32_MAX, "persistence_timeout")
    if value is not None:
        fields.set("persistence_timeout", float(value), node.args[0].origin)


def _persistence_granularity(node: Node, diag: Diagnostics, fields: Fields) -> None:
    """An IPv4 netmask (255.255.255.0) or an IPv6 prefix length, kept as a prefix
    length; the form also tells the family (checked when the block ends)."""
    no_block(node, diag)
    word = convert.first(node, diag)
    if word is None:
        return
    if "." in word:
        try:
            net = ipaddress.IPv4Network(f"0.0.0.0/{word}")
            if str(net.netmask) != str(ipaddress.IPv4Address(str(word))):
                raise ValueError("a host mask")  # ipaddress also takes 0.0.0.255
            prefix = net.prefixlen
        except ValueError:
            diag.error(word.origin, f"persistence_granularity '{word}' is not a netmask with "
                                    "contiguous bits (e.g. 255.255.255.0)")
            return
        fields.values["granularity_family"] = AddressFamily.INET
    else:
        read = convert.integer(word, diag, 1, 128, "persistence_granularity")
        if read is None:
            return
        prefix = read
        fields.values["granularity_family"] = AddressFamily.INET6
    fields.set("persistence_granularity", prefix, word.origin)


def _sorry_server(node: Node, diag: Diagnostics, fields: Fields) -> None:
    no_block(node, diag)
    where = _server_address(node, diag, "sorry server address")
    if where is not None:
        fields.set("sorry_server", where[:2], node.args[0].origin)
        fields.values["sorry_server_node"] = node


_VS_HANDLERS: dict[str, Handler] = {
    **_CHECK_SETTINGS,
    "ip_family": enum_field("ip_family", AddressFamily, "address family",
                            case_sensitive=True),
    "lvs_sched": word_field("lvs_sched"),
    "lb_algo": word_field("lvs_sched"),  # deprecated
    **{flag.value: _sched_flag(flag) for flag in SchedulerFlag},
    "ops": flag_field("ops"),
    "hashed": flag_field("hashed"),
    "lvs_method": _lvs_method("lvs_method"),
    "lb_kind": _lvs_method("lvs_method"),  # deprecated
    "persistence_engine": word_field("persistence_engine"),
    "persistence_timeout": _persistence_timeout,
    "persistence_granularity": _persistence_granularity,
    "protocol": enum_field("protocol", Protocol, "protocol"),
    "ha_suspend": flag_field("ha_suspend"),
    "omega": flag_field("omega"),
    "quorum": int_field("quorum", 1, UINT32_MAX),
    "hysteresis": int_field("hysteresis", 0, UINT32_MAX),
    "quorum_up": script_field("quorum_up"),
    "quorum_down": script_field("quorum_down"),
    "sorry_server": _sorry_server,
    "sorry_server_inhibit": flag_field("sorry_server_inhibit"),
    "sorry_server_lvs_method": _lvs_method("sorry_server_lvs_method"),
    # Ours, not keepalived's (keepalived -t warns about it): see VirtualServer.slow_start.
    "slow_start": timer_field("slow_start"),
}
VIRTUAL_SERVER_KEYWORDS: frozenset[str] = frozenset(_VS_HANDLERS) | {"real_server"}
REAL_SERVER_KEYWORDS: frozenset[str] = frozenset(_RS_HANDLERS) | CHECKER_KEYWORDS


def _addressing(node: Node, diag: Diagnostics) -> dict[str, Any] | None:
    """The service a ``virtual_server`` line names: IP [PORT], fwmark N or group NAME."""
    if not convert.args(node, diag, 1, 2):
        return None
    head = node.args[0]
    if head in ("fwmark", "group"):
        if len(node.args) != 2:
            diag.error(head.origin, f"'virtual_server {head}' needs a "
                                    f"{'number' if head == 'fwmark' else 'group name'}")
            return None
        if head == "group":
            return {"group": str(node.args[1])}
        mark = convert.integer(node.args[1], diag, 1, FWMARK_MAX, "fwmark")
        return None if mark is None else {"fwmark": mark}
    where = _server_address(node, diag, "virtual server address")
    return None if where is None else {"address": where[0], "port": where[1]}


_BUILD_ONLY = ("sorry_server_node", "granularity_family", "sorry_server_inhibit",
               "sorry_server_lvs_method")


_DEFAULT_GLOBALS = GlobalDefs()


def build_virtual_server(node: Node, diag: Diagnostics,
                         global_defs: GlobalDefs = _DEFAULT_GLOBALS) -> VirtualServer | None:
    """A ``virtual_server`` block, its real servers and their checkers.

    None, after reporting, when its header is unusable (keepalived skips such a block).
    """
    addressing = _addressing(node, diag)
    if addressing is None:
        return None
    if node.children is None:
        diag.error(node.origin, "virtual_server needs a { } block")
        return None
    fields = Fields()
    if "group" in addressing:
        fields.origins["group"] = node.args[1].origin
    real_server_nodes: list[Node] = []
    for child in node.children:
        handler = _VS_HANDLERS.get(child.keyword)
        if handler is not None:
            handler(child, diag, fields)
        elif child.keyword == "real_server":
            real_server_nodes.append(child)
        else:
            unknown_keyword(child, diag, "virtual_server", VIRTUAL_SERVER_KEYWORDS)
    values = fields.values
    values.update(addressing)
    if "address" in addressing and "protocol" not in values:
        diag.warning(node.origin, f"virtual server {node.args[0]} {addressing['port']} has no "
                                  "protocol; keepalived defaults to UDP (set 'protocol TCP' "
                                  "if meant)")
    _check_granularity_form(values, fields, diag)
    if "persistence_granularity" in values and "persistence_timeout" not in values:
        values["persistence_timeout"] = PERSISTENCE_TIMEOUT_DEFAULT
    if "smtp_alert" not in values:
        smtp = global_defs.smtp_alert_checker
        smtp = smtp if smtp is not None else global_defs.smtp_alert
        values["smtp_alert"] = bool(smtp)
    vs_method = values.get("lvs_method", LvsMethod())
    sorry = _build_sorry_server(values, fields, diag, vs_method, addressing.get("port", 0))
    builder = _RealServerBuilder(values, global_defs, addressing.get("port", 0))
    real_servers = []
    for rs_node in real_server_nodes:
        rs = builder.build(rs_node, diag)
        if rs is not None:
            real_servers.append(rs)
    for name in _BUILD_ONLY:
        values.pop(name, None)
    return VirtualServer(sorry_server=sorry, real_servers=tuple(real_servers),
                         field_origins=fields.field_origins(), origin=node.origin, **values)


def _check_granularity_form(values: dict[str, Any], fields: Fields,
                            diag: Diagnostics) -> None:
    """A netmask on an IPv6 service or a prefix length on an IPv4 one is an error."""
    form = values.get("granularity_family")
    if form is None:
        return
    family = values.get("ip_family")
    if "address" in values:
        family = family_of(values["address"])
    if family is None or family is form:
        return
    origin = fields.origins["persistence_granularity"]
    wanted = "a netmask such as 255.255.255.0" if family is AddressFamily.INET else (
        "a prefix length (1-128)")
    diag.error(origin, f"persistence_granularity of an {family.value} service must be "
                       f"{wanted}")
    del values["persistence_granularity"]


def _build_sorry_server(values: dict[str, Any], fields: Fields, diag: Diagnostics,
                        vs_method: LvsMethod, vs_port: int) -> SorryServer | None:
    where = values.pop("sorry_server", None)
    if where is None:
        for name in ("sorry_server_inhibit", "sorry_server_lvs_method"):
            if name in values:
                diag.warning(fields.origins[name], f"{name} without a sorry_server; ignored")
        return None
    node: Node = values["sorry_server_node"]
    address, port = where
    return SorryServer(address=address, port=port or vs_port,
                       lvs_method=values.get("sorry_server_lvs_method", vs_method),
                       inhibit=values.get("sorry_server_inhibit", False), origin=node.origin)


def build_virtual_servers(nodes: list[Node], diag: Diagnostics,
                          global_defs: GlobalDefs) -> list[VirtualServer]:
    built = (build_virtual_server(node, diag, global_defs) for node in nodes)
    return [vs for vs in built if vs is not None]

