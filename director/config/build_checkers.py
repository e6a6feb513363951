"""Build one health checker (`checkers.spec`) from its keepalived.conf block.

The virtual_server/real_server builder calls `build_checker` for each child of a
real_server whose keyword is in `CHECKER_KEYWORDS`, with the settings inherited from
the virtual and real server (`CheckDefaults`) and the real server's address and port.
The checker comes back with every inherited value resolved (see
`checkers.spec.resolved_timing`).

As keepalived does, an unknown keyword is a warning and is skipped; a bad value is an
error at the value's location and the option keeps its default. A checker that cannot
work at all (HTTP_GET without a url, MISC_CHECK without misc_path, ...) is reported
and left out (None).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from checkers.spec import (
    CHECKER_CLASSES,
    REGEX_FLAGS,
    REGEX_OPTIONS_WITHOUT_EFFECT,
    CheckDefaults,
    CheckerSpec,
    DnsType,
    HttpProtocol,
    IPAddress,
    RegexOption,
    SmtpHost,
    StatusRange,
    Url,
    regex_flags,
    resolved_timing,
)
from director.config import convert
from director.config.blocks import read_interface_name
from director.config.errors import Diagnostics
from director.config.lexer import CommandSyntaxError, split_command, unescape
from director.config.tree import Node, Word

CHECKER_KEYWORDS: frozenset[str] = frozenset(CHECKER_CLASSES)

# Kinds that cannot work without a port to talk to.
_NEEDS_PORT = frozenset({"TCP_CHECK", "HTTP_GET", "SSL_GET", "SMTP_CHECK", "DNS_CHECK",
                         "UDP_CHECK"})
_CONNECTING = _NEEDS_PORT | {"PING_CHECK"}
_SCHEDULED = _CONNECTING | {"MISC_CHECK"}

_DEPRECATED = {"nb_get_retry": "retry"}

_STATUS_MIN, _STATUS_MAX = 100, 599

Values = dict[str, Any]
Reader = Callable[[Node, Diagnostics], Values | None]


# ------------------------------------------------------------------ value readers

def _timer(word: Word, diag: Diagnostics, what: str, positive: bool) -> float | None:
    value = convert.number(word, diag, low=0, what=what)
    if value is not None and positive and value == 0:
        diag.error(word.origin, f"{what} must be greater than 0")
        return None
    return value


def _one(name: str, read: Callable[[Word, Diagnostics], Any]) -> Reader:
    """A reader for ``keyword VALUE`` that sets the field ``name``."""
    def reader(node: Node, diag: Diagnostics) -> Values | None:
        word = convert.first(node, diag)
        if word is None:
            return None
        value = read(word, diag)
        return None if value is None else {name: value}
    return reader


def _flag(name: str) -> Reader:
    def reader(node: Node, diag: Diagnostics) -> Values | None:
        value = convert.flag(node, diag)
        return None if value is None else {name: value}
    return reader


def _text(name: str) -> Reader:
    """Free text: the words of the line joined by a space (keepalived's set_value)."""
    def reader(node: Node, diag: Diagnostics) -> Values | None:
        if not convert.args(node, diag, 1):
            return None
        return {name: " ".join(node.args)}
    return reader


def _port(word: Word, diag: Diagnostics) -> int | None:
    return convert.integer(word, diag, 1, 65535, "port")


def _address(word: Word, diag: Diagnostics) -> IPAddress | None:
    return convert.address(word, diag)


def _misc_path(node: Node, diag: Diagnostics) -> Values | None:
    if not convert.args(node, diag, 1):
        return None
    # The reader has already taken the quotes off a "quoted command line"; keepalived
    # takes the first (quote-aware) word of the line as the command line and splits it.
    try:
        if len(node.args) == 1:
            line = str(node.args[0])
        else:
            words = split_command(" ".join(node.args))
            line = words[0] if words else ""
            if len(words) > 1:
                diag.warning(node.args[1].origin,
                             "misc_path: keepalived runs only the first word; quote the whole "
                             f"command line to pass arguments (ignoring '{' '.join(words[1:])}')")
        argv = split_command(line)
    except CommandSyntaxError as error:
        diag.error(node.args[0].origin, f"misc_path: {error}")
        return None
    if not argv or not argv[0]:
        diag.error(node.args[0].origin, "misc_path is empty")
        return None
    return {"misc_path": tuple(argv)}


def _misc_timeout(node: Node, diag: Diagnostics) -> Values | None:
    word = convert.first(node, diag)
    if word is None:
        return None
    value = _timer(word, diag, "misc_timeout", positive=False)
    if value is None:
        return None
    return {"misc_timeout": value or None}  # keepalived: 0 means the delay_loop


def _user(node: Node, diag: Diagnostics) -> Values | None:
    if not convert.args(node, diag, 1, 2):
        return None
    return {"user": str(node.args[0]),
            "group": str(node.args[1]) if len(node.args) > 1 else None}


def _http_protocol(word: Word, diag: Diagnostics) -> HttpProtocol | None:
    value = convert.choice(word, [p.value for p in HttpProtocol], diag, "http_protocol")
    return None if value is None else HttpProtocol(value)


def _dns_type(word: Word, diag: Diagnostics) -> DnsType | None:
    value = convert.choice(word, [t.value for t in DnsType], diag, "DNS query type")
    return None if value is None else DnsType(value)


def _dns_name(word: Word, diag: Diagnostics) -> str | None:
    name = str(word)
    if name == ".":
        return name
    labels = name[:-1].split(".") if name.endswith(".") else name.split(".")
    if len(name.rstrip(".")) > 253 or any(not 0 < len(label) <= 63 for label in labels):
        diag.error(word.origin, f"'{word}' is not a valid DNS name")
        return None
    return name


def _name(word: Word, diag: Diagnostics) -> str | None:
    return str(word)


def _hex_data(words: Iterable[Word], diag: Diagnostics, what: str,
              wildcard: bool) -> str | None:
    """keepalived's free-format hex: each word gives bytes two digits at a time, a
    last odd digit being a byte of its own ("Ab12f 3" -> ab 12 0f 03)."""
    digits = "0123456789abcdef" + ("x" if wildcard else "")
    out: list[str] = []
    for word in words:
        text = word.lower()
        bad = next((c for c in text if c not in digits), None)
        if bad is not None:
            diag.error(word.origin, f"{what}: '{word}' is not hex data")
            return None
        pairs = [text[i:i + 2] for i in range(0, len(text), 2)]
        out.extend(p if len(p) == 2 else "0" + p for p in pairs)
    return "".join(out)


def _payload(node: Node, diag: Diagnostics) -> Values | None:
    if not convert.args(node, diag, 1):
        return None
    data = _hex_data(node.args, diag, "payload", wildcard=False)
    return None if data is None else {"payload": data}


def _require_reply(node: Node, diag: Diagnostics) -> Values | None:
    if not node.args:
        return {"require_reply": True}
    data = _hex_data(node.args, diag, "require_reply", wildcard=True)
    return None if data is None else {"require_reply": True, "require_reply_data": data}


def _file_weight(node: Node, diag: Diagnostics) -> Values | None:
    if not convert.args(node, diag, 1, 2):
        return None
    weight = convert.integer(node.args[0], diag, -2147483647, 2147483647, "weight")
    reverse = False
    if len(node.args) > 1:
        option = convert.choice(node.args[1], ["reverse", "noreverse"], diag,
                                "weight option", case_sensitive=True)
        if option is None:
            return None
        reverse = option == "reverse"
    return None if weight is None else {"weight": weight, "reverse": reverse}


def _count(what: str) -> Callable[[Word, Diagnostics], int | None]:
    def read(word: Word, diag: Diagnostics) -> int | None:
        return convert.integer(word, diag, 0, 2**32 - 1, what)
    return read


def _seconds(what: str, positive: bool) -> Callable[[Word, Diagnostics], float | None]:
    def read(word: Word, diag: Diagnostics) -> float | None:
        return _timer(word, diag, what, positive)
    return read


def _int_range(what: str, low: int, high: int) -> Callable[[Word, Diagnostics], int | None]:
    def read(word: Word, diag: Diagnostics) -> int | None:
        return convert.integer(word, diag, low, high, what)
    return read


# ------------------------------------------------------------------ keyword tables

_CONNECTION: dict[str, Reader] = {
    "connect_ip": _one("connect_ip", _address),
    "connect_port": _one("connect_port", _port),
    "bindto": _one("bindto", _address),
    "bind_port": _one("bind_port", _port),
    "bind_if": _one("bind_if", read_interface_name),
    "connect_timeout": _one("connect_timeout", _seconds("connect_timeout", True)),
    "fwmark": _one("fwmark", _count("fwmark")),
}
_TIMING: dict[str, Reader] = {
    "retry": _one("retry", _count("retry")),
    "delay_before_retry": _one("delay_before_retry", _seconds("delay_before_retry", False)),
    "warmup": _one("warmup", _seconds("warmup", False)),
    "delay_loop": _one("delay_loop", _seconds("delay_loop", True)),
    "alpha": _flag("alpha"),
    "log_all_failures": _flag("log_all_failures"),
    # Beyond keepalived: thresholds of the checker's up/down verdict.
    "rise": _one("rise", _int_range("rise", 1, 2**31 - 1)),
    "fall": _one("fall", _int_range("fall", 1, 2**31 - 1)),
}
_HTTP: dict[str, Reader] = {
    "virtualhost": _text("virtualhost"),
    "http_protocol": _one("http_protocol", _http_protocol),
    "fast_recovery": _flag("fast_recovery"),
    "max_body_size": _one("max_body_size", _int_range("max_body_size", 1, 2**62)),
}
_SSL: dict[str, Reader] = {
    "enable_sni": _flag("enable_sni"),
    "sni_name": _text("sni_name"),
    "verify_cert": _flag("verify_cert"),
    "ca_file": _text("ca_file"),
}
_NETWORK = {**_CONNECTION, **_TIMING}

_KEYWORDS: dict[str, dict[str, Reader]] = {
    "TCP_CHECK": _NETWORK,
    "PING_CHECK": _NETWORK,
    "HTTP_GET": {**_NETWORK, **_HTTP},
    "SSL_GET": {**_NETWORK, **_HTTP, **_SSL},
    "SMTP_CHECK": {**_NETWORK, "helo_name": _text("helo_name")},
    "DNS_CHECK": {**_NETWORK, "type": _one("type", _dns_type),
                  "name": _one("name", _dns_name)},
    "UDP_CHECK": {**_NETWORK, "payload": _payload, "require_reply": _require_reply,
                  "min_reply_length": _one("min_reply_length",
                                           _int_range("min_reply_length", 0, 65535)),
                  "max_reply_length": _one("max_reply_length",
                                           _int_range("max_reply_length", 0, 65535))},
    "MISC_CHECK": {**_TIMING, "misc_path": _misc_path, "misc_timeout": _misc_timeout,
                   "misc_dynamic": _flag("misc_dynamic"), "user": _user},
    "FILE_CHECK": {"track_file": _one("track_file", _name),
                   "weight": _file_weight, "dynamic": _flag("dynamic")},
    "BFD_CHECK": {"name": _one("name", _name), "alpha": _flag("alpha")},
}
_BLOCKS = {"HTTP_GET": {"url"}, "SSL_GET": {"url"}, "SMTP_CHECK": {"host"}}

_ALL_KEYWORDS = frozenset(k for table in _KEYWORDS.values() for k in table) | {
    "url", "host", *_DEPRECATED}

_URL_KEYWORDS = ("path", "digest", "status_code", "virtualhost", "regex", "regex_no_match",
                 "regex_options", "regex_stack", "regex_min_offset", "regex_max_offset")
_REGEX_EXTRAS = ("regex_no_match", "regex_options", "regex_stack_start",
                 "regex_min_offset", "regex_max_offset")


def _unknown(diag: Diagnostics, keyword: Word, where: str, valid: Iterable[str],
             elsewhere: bool) -> None:
    if elsewhere:
        diag.warning(keyword.origin, f"'{keyword}' is not an option of {where}; ignored")
        return
    close = difflib.get_close_matches(str(keyword), list(valid), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    diag.warning(keyword.origin, f"unknown keyword '{keyword}' in {where}{hint}; ignored")


def _no_block(diag: Diagnostics, node: Node) -> None:
    if node.has_block:
        diag.warning(node.origin, f"'{node.keyword}' takes no block; the block is ignored")


# ------------------------------------------------------------------ url { }

def _build_url(node: Node, diag: Diagnostics) -> Url | None:
    values: Values = {}
    origins: dict[str, str] = {}
    status: list[StatusRange] = []
    for child in node.children or ():
        key = str(child.keyword)
        if key not in _URL_KEYWORDS:
            _unknown(diag, child.keyword, "url", _URL_KEYWORDS, key in _ALL_KEYWORDS)
            continue
        _no_block(diag, child)
        origins[key] = child.args[0].origin if child.args else child.origin
        if key == "path":
            if convert.args(child, diag, 1):
                values["path"] = " ".join(child.args)
        elif key == "virtualhost":
            if convert.args(child, diag, 1):
                values["virtualhost"] = " ".join(child.args)
        elif key == "digest":
            word = convert.first(child, diag)
            if word is None:
                continue
            if "digest" in values:
                diag.error(word.origin, f"a second digest '{word}' for this url; the first "
                                        "one is kept")
            elif not re.fullmatch(r"[0-9a-fA-F]{32}", word):
                diag.error(word.origin, f"digest '{word}' is not an MD5 digest (32 hex digits)")
            else:
                values["digest"] = word.lower()
        elif key == "status_code":
            if convert.args(child, diag, 1):
                status.extend(r for w in child.args if (r := _status_range(w, diag)))
        elif key == "regex":
            pattern = _regex_pattern(child, diag)
            if pattern is not None:
                values["regex"] = pattern
        elif key == "regex_no_match":
            flag = convert.flag(child, diag)
            if flag is not None:
                values["regex_no_match"] = flag
        elif key == "regex_options":
            if convert.args(child, diag, 1):
                values["regex_options"] = _regex_options(child, diag)
        elif key == "regex_stack":
            if convert.args(child, diag, 2, 2):
                start = convert.integer(child.args[0], diag, 0, 2**62, "regex_stack start")
                most = convert.integer(child.args[1], diag, 0, 2**62, "regex_stack max")
                if start is not None and most is not None:
                    if start > most:
                        diag.error(child.args[0].origin,
                                   f"regex_stack start {start} exceeds its max {most}")
                    else:
                        values["regex_stack_start"] = start
                        values["regex_stack_max"] = most
        else:  # regex_min_offset / regex_max_offset
            word = convert.first(child, diag)
            if word is not None:
                offset = convert.integer(word, diag, 0, 2**62, key)
                if offset is not None:
                    values[key] = offset

    if "path" not in values:
        diag.error(node.origin, "url has no path; this url is ignored")
        return None
    if status:
        values["status_code"] = tuple(status)
    if "regex" in values:
        _check_regex(values, origins, diag)
    else:
        extras = [k for k in _REGEX_EXTRAS if k in values]
        if extras:
            first = extras[0].replace("_start", "")
            diag.warning(origins.get(first, node.origin),
                         f"{first} without a regex in this url; ignored")
            for k in (*_REGEX_EXTRAS, "regex_stack_max"):
                values.pop(k, None)
    return Url(origin=node.origin, **values)


def _status_range(word: Word, diag: Diagnostics) -> StatusRange | None:
    match = re.fullmatch(r"(\d+)(?:-(\d+))?", word)
    if match:
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) else low
        if _STATUS_MIN <= low <= high <= _STATUS_MAX:
            return StatusRange(low=low, high=high)
        if low > high and high >= _STATUS_MIN:
            diag.error(word.origin, f"status code range '{word}' is reversed")
            return None
    diag.error(word.origin, f"'{word}' is not an HTTP status code or range "
                            f"({_STATUS_MIN}-{_STATUS_MAX}, e.g. 200 or 200-299)")
    return None


def _regex_pattern(node: Node, diag: Diagnostics) -> str | None:
    if not convert.args(node, diag, 1):
        return None
    try:
        if len(node.args) == 1:
            words = [unescape(node.args[0])]
        else:
            words = split_command(" ".join(node.args))
    except CommandSyntaxError as error:
        diag.error(node.args[0].origin, f"regex: {error}")
        return None
    if len(words) != 1:
        diag.error(node.args[0].origin, "regex takes one pattern: quote it if it has spaces")
        return None
    return words[0]


def _regex_options(node: Node, diag: Diagnostics) -> tuple[RegexOption, ...]:
    options: list[RegexOption] = []
    names = [o.value for o in RegexOption]
    for word in node.args:
        if word not in names:
            close = difflib.get_close_matches(str(word), names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            diag.warning(word.origin, f"unknown regex option '{word}'{hint}; ignored")
            continue
        option = RegexOption(str(word))
        if option not in REGEX_FLAGS and option not in REGEX_OPTIONS_WITHOUT_EFFECT:
            diag.warning(word.origin, f"regex option '{word}' has no equivalent in Python's "
                                      "re and is ignored")
        options.append(option)
    return tuple(dict.fromkeys(options))


def _check_regex(values: Values, origins: dict[str, str], diag: Diagnostics) -> None:
    pattern = values["regex"]
    try:
        re.compile(pattern.encode("utf-8", "surrogateescape"),
                   regex_flags(values.get("regex_options", ())))
    except re.error as e:
        diag.error(origins["regex"],
                   f"regex '{pattern}' does not compile: {e.msg} at position {e.pos} "
                   "(patterns are Python re syntax: PCRE2-only forms such as (?<name>...), "
                   "\\K, (?R) recursion or \\Q...\\E are not supported)")
        for k in ("regex", *_REGEX_EXTRAS, "regex_stack_max"):
            values.pop(k, None)
        return
    low, high = values.get("regex_min_offset", 0), values.get("regex_max_offset")
    if high is not None and low > high:
        diag.error(origins["regex_min_offset"],
                   f"regex_min_offset {low} is beyond regex_max_offset {high}")
        values.pop("regex_min_offset")


# ------------------------------------------------------------------ checker blocks

@dataclass
class _Endpoint:
    """Connection options as written in the checker (or one of its host blocks)."""

    values: Values = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    origin: str = ""


class _CheckerBlock:
    def __init__(self, node: Node, diag: Diagnostics):
        self.kind = str(node.keyword)
        self.node = node
        self.diag = diag
        self.table = _KEYWORDS[self.kind]
        self.values: Values = {}
        self.own = _Endpoint(origin=node.origin)
        self.hosts: list[_Endpoint] = []
        self.urls: list[Url] = []

    def read(self) -> None:
        for child in self.node.children or ():
            self._statement(child, self.own)

    def _statement(self, child: Node, endpoint: _Endpoint) -> None:
        key = str(child.keyword)
        if key in _DEPRECATED and _DEPRECATED[key] in self.table:
            self.diag.warning(child.origin, f"'{key}' is deprecated; use "
                                            f"'{_DEPRECATED[key]}'")
            key = _DEPRECATED[key]
        if key in _BLOCKS.get(self.kind, ()) and endpoint is self.own:
            self._block(key, child)
            return
        reader = self.table.get(key)
        if reader is None:
            where = self.kind if endpoint is self.own else f"{self.kind} host"
            _unknown(self.diag, child.keyword, where, self.table, key in _ALL_KEYWORDS)
            return
        _no_block(self.diag, child)
        value = reader(child, self.diag)
        if value is None:
            return
        if key in _CONNECTION:
            endpoint.values.update(value)
            endpoint.origins[key] = child.args[0].origin if child.args else child.origin
        else:
            if endpoint is not self.own:
                self.diag.warning(child.origin, f"'{key}' applies to the whole SMTP_CHECK, "
                                                "not to this host")
            self.values.update(value)

    def _block(self, key: str, child: Node) -> None:
        if not child.has_block:
            self.diag.error(child.origin, f"'{key}' needs a block: {key} {{ ... }}")
            return
        if child.args:
            self.diag.warning(child.args[0].origin,
                              f"'{key}' takes no arguments; '{child.args[0]}' ignored")
        if key == "url":
            url = _build_url(child, self.diag)
            if url is not None:
                self.urls.append(url)
            return
        host = _Endpoint(origin=child.origin)
        for statement in child.children or ():
            self._statement(statement, host)
        self.hosts.append(host)

    # -------------------------------------------------------------- resolution

    def build(self, defaults: CheckDefaults, address: IPAddress | None,
              port: int) -> CheckerSpec | None:
        cls = CHECKER_CLASSES[self.kind]
        values = dict(self.values)
        if not self._complete(values):
            return None
        if self.kind in _SCHEDULED:
            explicit = {k: values.pop(k) for k in ("delay_loop", "retry",
                                                   "delay_before_retry", "warmup", "alpha")
                        if k in values}
            timing = resolved_timing(self.kind, defaults,
                                     connect_timeout=self.own.values.get("connect_timeout"),
                                     **explicit)
            if self.kind == "MISC_CHECK":
                del timing["connect_timeout"]
                if values.get("misc_timeout") is None:
                    values["misc_timeout"] = timing["delay_loop"]
            values.update(timing)
        elif self.kind == "BFD_CHECK":
            values.setdefault("alpha", defaults.alpha)
        if self.kind in _CONNECTING:
            endpoints = self._endpoints(values["connect_timeout"], address, port)
            if endpoints is None:
                return None
            first = endpoints[0]
            values.update({name: getattr(first, name) for name in _CONNECTION})
            if self.kind == "SMTP_CHECK":
                values["hosts"] = tuple(endpoints)
        if self.kind in ("HTTP_GET", "SSL_GET"):
            values["urls"] = tuple(self.urls)
        return cls(origin=self.node.origin, **values)

    def _complete(self, values: Values) -> bool:
        """Report what the kind cannot do without; False when the checker is unusable."""
        kind, origin = self.kind, self.node.origin
        if kind in ("HTTP_GET", "SSL_GET") and not self.urls:
            self.diag.error(origin, f"{kind} has no url; this checker is ignored")
            return False
        if kind == "MISC_CHECK" and "misc_path" not in values:
            self.diag.error(origin, "MISC_CHECK has no misc_path; this checker is ignored")
            return False
        if kind == "FILE_CHECK" and "track_file" not in values:
            self.diag.error(origin, "FILE_CHECK has no track_file; this checker is ignored")
            return False
        if kind == "BFD_CHECK" and "name" not in values:
            self.diag.error(origin, "BFD_CHECK has no name; this checker is ignored")
            return False
        if kind == "SSL_GET":
            if values.get("sni_name"):
                values["enable_sni"] = True
            if "ca_file" in values and not values.get("verify_cert"):
                self.diag.warning(self.node.origin, "SSL_GET: ca_file has no effect without "
                                                    "verify_cert")
        if kind == "UDP_CHECK":
            low = values.get("min_reply_length", 0)
            high = values.get("max_reply_length", 255)
            if low > high:
                self.diag.warning(origin, f"UDP_CHECK: min_reply_length {low} > "
                                          f"max_reply_length {high}: the check always fails")
        return True

    def _endpoints(self, timeout: float, address: IPAddress | None,
                   port: int) -> list[SmtpHost] | None:
        """The resolved endpoints: the checker's own, and (SMTP) one per host block.

        Host blocks inherit the checker's connection options. With host blocks, the
        checker's own endpoint is probed too only when it names a connect_ip (keepalived's
        sample: "the main ip of the real server ... must explicitly be checked by a host
        directive").
        """
        own = self.own
        blocks = [own] if not self.hosts or "connect_ip" in own.values else []
        for host in self.hosts:
            merged = _Endpoint({**own.values, **host.values}, {**own.origins, **host.origins},
                               host.origin)
            blocks.append(merged)
        resolved = []
        ok = True
        for block in blocks:
            endpoint = self._resolve(block, timeout, address, port)
            ok = ok and endpoint is not None
            if endpoint is not None:
                resolved.append(endpoint)
        return resolved if ok and resolved else None

    def _resolve(self, block: _Endpoint, timeout: float, address: IPAddress | None,
                 port: int) -> SmtpHost | None:
        v, origins = block.values, block.origins
        ip = v.get("connect_ip", address)
        dest_port = v.get("connect_port", port)
        bindto = v.get("bindto")
        ok = True
        if bindto is not None and ip is not None and bindto.version != ip.version:
            self.diag.error(origins["bindto"], f"bindto {bindto} is not of the address family "
                                               f"of {ip}")
            ok = False
        if ip is not None and ip.version == 6 and ip.is_link_local and "bind_if" not in v:
            self.diag.error(origins.get("connect_ip", block.origin),
                            f"{self.kind}: link-local address {ip} needs a bind_if")
            ok = False
        if self.kind in _NEEDS_PORT and not dest_port:
            self.diag.error(block.origin, f"{self.kind} has no port to connect to: the real "
                                          "server has none, give connect_port")
            ok = False
        if not ok:
            return None
        return SmtpHost(connect_ip=ip, connect_port=dest_port, bindto=bindto,
                        bind_port=v.get("bind_port"), bind_if=v.get("bind_if"),
                        connect_timeout=v.get("connect_timeout", timeout),
                        fwmark=v.get("fwmark", 0), origin=block.origin)


def build_checker(node: Node, diag: Diagnostics, defaults: CheckDefaults,
                  address: IPAddress | None, port: int) -> CheckerSpec | None:
    """The checker described by ``node`` (a child of real_server whose keyword is in
    CHECKER_KEYWORDS) for the real server at ``address``:``port`` (port 0: none)."""
    kind = str(node.keyword)
    if kind not in CHECKER_KEYWORDS:
        diag.error(node.origin, f"'{kind}' is not a health checker (expected one of: "
                                f"{', '.join(sorted(CHECKER_KEYWORDS))})")
        return None
    if node.args:
        diag.warning(node.args[0].origin, f"{kind} takes no arguments; '{node.args[0]}' "
                                          "ignored")
    block = _CheckerBlock(node, diag)
    block.read()
    return block.build(defaults, address, port)
