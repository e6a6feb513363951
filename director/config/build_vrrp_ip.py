"""Build the address, route and rule lists of the VRRP side from keepalived.conf:
``virtual_ipaddress``/``virtual_ipaddress_excluded``, ``virtual_routes`` and
``virtual_rules`` in an instance, ``static_ipaddress``, ``static_routes`` and
``static_rules`` at the top level (``ip address``/``ip route``/``ip rule`` syntax, as
keepalived 2.2.7 reads it).

Each list reads entry by entry: a bad entry is reported and left out, the rest loads.
Static entries may also name a ``track_group``.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
from typing import Any

from director.config import convert
from director.config.blocks import IFNAMSIZ, UINT32_MAX, list_block, read_interface_name
from director.config.errors import Diagnostics
from director.config.tree import Node, Word
from vrrp.spec import (
    PREFERRED_LFT_FOREVER,
    SCOPE_MAX,
    AddressFamily,
    IPAddress,
    NextHop,
    Route,
    RouteMetric,
    RouteType,
    Rule,
    RuleAction,
    Scope,
    VirtualAddress,
    scope_of,
)

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
            name = read_interface_name(value, diag)
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
    entries = list_block(node, diag)
    built = (_address_entry(e, diag, static) for e in entries or ())
    return tuple(a for a in built if a is not None)


def build_static_addresses(node: Node, diag: Diagnostics) -> tuple[VirtualAddress, ...]:
    """``static_ipaddress { }``."""
    return _addresses(node, diag, static=True)


def build_virtual_addresses(node: Node, diag: Diagnostics) -> tuple[VirtualAddress, ...]:
    """The entries of a ``virtual_ipaddress`` (or ``_excluded``) block."""
    return _addresses(node, diag, static=False)


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

# What keepalived 2.2.7 drops when it follows 'inet6' (see inet6_drops_keyword).
_DROPPED_AFTER_INET6 = frozenset({"via", "gw", "src"})


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
        elif word == "inet6" and self.i < len(self.words) and \
                self.words[self.i] in _DROPPED_AFTER_INET6:
            return self.inet6_drops_keyword(word)
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
            if name is None or (dev := read_interface_name(name, self.diag)) is None:
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

    def inet6_drops_keyword(self, inet6: Word) -> bool:
        """``inet6 via|gw|src ADDR`` before the end of the line: keepalived 2.2.7 takes the
        keyword as the value of ``inet6`` and drops it, then reads ADDR as the route's
        destination (in place of any before it). Accepted as keepalived loads it."""
        dropped = self.words[self.i]
        self.i += 1
        before = self.values.get("destination")
        if before is not None and before.version != 6:
            self.diag.error(inet6.origin, f"'inet6' with the IPv4 destination {before}")
            return False
        lost = "gateway" if dropped in ("via", "gw") else "source address"
        if self.i == len(self.words):
            self.diag.warning(inet6.origin, f"keepalived 2.2.7 takes '{dropped}' as the value "
                                            f"of 'inet6' and drops it: the route has no {lost}")
            self.inet6 = inet6
            return True
        target = self.words[self.i]
        self.i += 1
        network = _network(target, self.diag, "route destination")
        if network is None:
            return False
        if network.version != 6:
            self.diag.error(inet6.origin, f"'inet6' with the IPv4 destination {network}")
            return False
        instead = "" if "destination" not in self.values else (
            " (instead of a default route)" if before is None else
            f" (instead of a route to {before})")
        self.diag.warning(inet6.origin, f"keepalived 2.2.7 takes '{dropped}' as the value of "
                                        f"'inet6' and drops it: it loads a route to "
                                        f"{network} with no {lost}{instead}; put 'inet6' at "
                                        f"the end of the line for a route {dropped} {target}")
        self.values["destination"] = network
        self.default = None
        self.inet6 = inet6
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
                if name is None or (dev := read_interface_name(name, self.diag)) is None:
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
    entries = list_block(node, diag)
    built = (_RouteParser(e, diag, static).parse() for e in entries or ())
    return tuple(r for r in built if r is not None)


def build_static_routes(node: Node, diag: Diagnostics) -> tuple[Route, ...]:
    """``static_routes { }``."""
    return _routes(node, diag, static=True)


def build_virtual_routes(node: Node, diag: Diagnostics) -> tuple[Route, ...]:
    """``virtual_routes { }`` of an instance."""
    return _routes(node, diag, static=False)


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
            if value is None or (name := read_interface_name(value, diag)) is None:
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
    entries = list_block(node, diag)
    built = (_rule_entry(e, diag, static) for e in entries or ())
    return tuple(r for r in built if r is not None)


def build_static_rules(node: Node, diag: Diagnostics) -> tuple[Rule, ...]:
    """``static_rules { }``."""
    return _rules(node, diag, static=True)


def build_virtual_rules(node: Node, diag: Diagnostics) -> tuple[Rule, ...]:
    """``virtual_rules { }`` of an instance."""
    return _rules(node, diag, static=False)

