"""The YAML configuration schema as Markdown, generated from the model by introspection.

``python -m director.config.schema_doc > conf/yaml-schema.md``

Each model class reachable from `Config` gets a section with its docstring and a table
of its keys: type, default and description. Descriptions come from the field's metadata
(``doc``, ``keyword``: the keepalived keyword it maps to) or else from the comments
written beside the field in the source; comment lines above a field are shown as notes.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import inspect
import io
import ipaddress
import json
import re
import sys
import textwrap
import tokenize
import types
import typing
from collections.abc import Iterator
from typing import Any

from director.config import codec

TITLE = "YAML configuration schema"

INTRODUCTION = """\
The native configuration of the director is a YAML (or JSON) document whose shape is
the configuration model itself: every mapping below is one model class, its keys are
the class's fields. This file is generated from the model
(`python -m director.config.schema_doc > conf/yaml-schema.md`); do not edit it by hand.

- A key left out takes its default (an empty file is a valid configuration), or,
  where keepalived.conf would inherit it, what it inherits. As in keepalived the
  precedence is: checker, real server, virtual server, global settings, the kind's
  default; a key that is written always wins, even when it equals a default.
  - A real server takes from its virtual server `delay_loop`, `connect_timeout`,
    `retry`, `delay_before_retry`, `warmup`, `inhibit_on_failure`, `alpha`,
    `virtualhost`, `weight` and `lvs_method`, and the service's `port` (IP services);
    its `smtp_alert` is global_defs' `smtp_alert_checker`, else `smtp_alert`, else on
    (a virtual server's: the same, else off). A sorry server takes the service's
    `port` and `lvs_method`. `persistence_granularity` alone makes a service
    persistent for 360 s.
  - A checker takes its timing from its real server, else its kind's default (`retry`
    1, MISC_CHECK 0, DNS_CHECK 3; `delay_before_retry` 1 s, HTTP_GET/SSL_GET 3 s,
    DNS_CHECK its `delay_loop`; `warmup` the real server's, else its `delay_loop`);
    MISC_CHECK's `misc_timeout` is its `delay_loop`. A checker connects to its real
    server's address and port (`connect_ip`, `connect_port`); HTTP_GET and SSL_GET send
    the real server's `virtualhost`. An SMTP_CHECK without `hosts` probes its own
    connection; each of its `hosts` takes what it leaves out from the checker, and the
    checker what it leaves out from its first host.
  - `vrrp.globals` takes the settings it shares with `global_defs` (`smtp_alert`,
    `smtp_alert_vrrp`, `script_user`, `script_group`, `enable_script_security`,
    `dynamic_interfaces`, `dynamic_interfaces_allow_if_changes`, `default_interface`,
    `notify_fifo`, `nftables_counters`, `process_monitor_rcv_bufs[_force]`, and
    `vrrp_priority`, `vrrp_no_swap`, `vrrp_rt_priority`, `vrrp_cpu_affinity`,
    `vrrp_rlimit_rttime` from `vrrp_process`); `vrrp_min_garp` sets the GARP settings
    left out, and the lower-priority GARP delay and repeat are the master ones.
  - A VRRP instance takes what keepalived takes from the globals (`version`, the
    multicast group of its family, `strict_mode`, the GARP settings,
    `down_timer_adverts`, `smtp_alert`, ...) and what keepalived derives (`family` from
    its addresses; `state` MASTER for priority 255, priority 255 for state MASTER;
    `accept` unless strict; `check_unicast_src` for peers with a TTL range). A sync
    group takes `smtp_alert` and `notify_priority_changes` from the globals; a
    vrrp_script's `timeout` is its `interval`.
- `director` writes such files (`dump_yaml`): with every effective value, or with
  `concise`, only what is not a default and not inherited; both read back as the
  same configuration.
- Unknown keys are errors, reported with `FILE:LINE:COL` and the path of the key
  (`virtual_servers[3].real_servers[0].weight: expected an integer, got 'x'`).
- Durations are in seconds and may have fractions. Addresses are strings
  (`192.0.2.1`, `2001:db8::1`); an address with a prefix is `192.0.2.1/24`.
- Where a value may be one of several kinds of mapping (health checkers), its `kind`
  key says which, and must be given.
- A plain scalar where a string is expected is taken as written (`auth_pass: 0123`
  is the string `0123`).
- Anchors, aliases and merge keys (`<<: *defaults`) may be used; tags other than
  YAML's own scalar types are refused.
- The loaded configuration is checked by the same validation as a keepalived.conf.
"""

_SCALAR_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean",
                 type(None): "null"}
_IP_NAMES = {
    ipaddress.IPv4Address: "IPv4 address",
    ipaddress.IPv6Address: "IPv6 address",
    ipaddress.IPv4Interface: "IPv4 address[/prefix]",
    ipaddress.IPv6Interface: "IPv6 address[/prefix]",
    ipaddress.IPv4Network: "IPv4 network",
    ipaddress.IPv6Network: "IPv6 network",
}
_IP_PAIRS = {
    frozenset({ipaddress.IPv4Address, ipaddress.IPv6Address}): "IP address",
    frozenset({ipaddress.IPv4Interface, ipaddress.IPv6Interface}): "IP address[/prefix]",
    frozenset({ipaddress.IPv4Network, ipaddress.IPv6Network}): "IP network",
}


def generate(root: type | None = None) -> str:
    """The Markdown text documenting ``root`` (default: `Config`) and all it holds."""
    if root is None:
        from director.config.model import Config

        root = Config
    classes, enums = reachable(root)
    names = _display_names(classes + enums)
    out = [f"# {TITLE}", "", INTRODUCTION]
    out.append("Sections: " + ", ".join(_link(c, names) for c in classes) + ".")
    out.append("")
    for cls in classes:
        out.extend(_class_section(cls, names))
    if enums:
        out.append("## Enumerations")
        out.append("")
        for cls in enums:
            out.extend(_enum_section(cls, names))
    return "\n".join(out).rstrip("\n") + "\n"


def reachable(root: type) -> tuple[list[type], list[type]]:
    """Every model class and enumeration under ``root``, depth first in field order."""
    classes: list[type] = []
    enums: list[type] = []

    def visit(cls: type) -> None:
        classes.append(cls)
        hints = codec.type_hints(cls)
        for f in codec.data_fields(cls):
            for leaf in _leaves(hints[f.name]):
                if dataclasses.is_dataclass(leaf):
                    if leaf not in classes:
                        visit(leaf)
                elif (isinstance(leaf, type) and issubclass(leaf, enum.Enum)
                      and leaf not in enums):
                    enums.append(leaf)

    visit(root)
    return classes, enums


def _leaves(tp: Any) -> Iterator[Any]:
    args = typing.get_args(tp)
    if typing.get_origin(tp) is typing.Literal or not args:
        yield tp
        return
    for arg in args:
        if arg is not Ellipsis:
            yield from _leaves(arg)


def _display_names(types_: list[type]) -> dict[type, str]:
    count: dict[str, int] = {}
    for tp in types_:
        count[tp.__name__] = count.get(tp.__name__, 0) + 1
    return {tp: tp.__name__ if count[tp.__name__] == 1 else f"{tp.__module__}.{tp.__name__}"
            for tp in types_}


def _anchor(name: str) -> str:
    return re.sub(r"[^a-z0-9_-]", "", name.lower())


def _link(tp: type, names: dict[type, str]) -> str:
    name = names[tp]
    return f"[{name}](#{_anchor(name)})"


def _docstring(cls: type) -> str:
    doc = cls.__doc__ or ""
    # dataclass makes up a docstring (its signature) for classes that have none.
    if doc.startswith(f"{cls.__name__}("):
        return ""
    return _in_yaml_words(inspect.cleandoc(doc))


_PYTHON_WORDS = {"None": "null", "True": "true", "False": "false"}


def _in_yaml_words(text: str) -> str:
    """The model's comments speak Python; the reader of this document writes YAML."""
    return re.sub(r"\b(None|True|False)\b", lambda m: _PYTHON_WORDS[m.group(1)], text)


def _class_section(cls: type, names: dict[type, str]) -> list[str]:
    name = names[cls]
    out = [f"## {name}", ""]
    doc = _docstring(cls)
    if doc:
        out.extend([doc, ""])
    kind = codec.kind_of(cls)
    if kind is not None:
        out.extend([f"Chosen by `kind: {kind}`.", ""])
    fields = codec.data_fields(cls)
    if not fields:
        out.extend(["No keys.", ""])
        return out
    comments = _field_comments(cls)
    hints = codec.type_hints(cls)
    with_keyword = any(_keyword(f) for f in fields)
    header = ["key", "type", "default"] + (["keepalived"] if with_keyword else [])
    header.append("description")
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "---|" * len(header))
    for f in fields:
        above, beside = comments.get(f.name, ("", ""))
        if above and not f.metadata.get("doc"):
            note = f"*{_in_yaml_words(above)}*"
            out.append(_row(["", "", ""] + ([""] if with_keyword else []) + [note]))
        cells = [f"`{f.name}`", _type_text(hints[f.name], names), _default_text(f)]
        if with_keyword:
            keyword = _keyword(f)
            cells.append(f"`{keyword}`" if keyword else "")
        cells.append(_in_yaml_words(str(f.metadata.get("doc") or beside)))
        out.append(_row(cells))
    out.append("")
    return out


def _keyword(f: dataclasses.Field) -> str:
    return str(f.metadata.get("keyword") or f.metadata.get("keepalived") or "")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def _enum_section(cls: type, names: dict[type, str]) -> list[str]:
    out = [f"### {names[cls]}", ""]
    doc = _docstring(cls) if cls.__doc__ != enum.Enum.__doc__ else ""
    if doc and not doc.startswith("An enumeration"):
        out.extend([doc, ""])
    out.append(", ".join(f"`{member.value}`" for member in cls))
    out.append("")
    return out


def _type_text(tp: Any, names: dict[type, str]) -> str:
    if tp in _SCALAR_NAMES:
        return _SCALAR_NAMES[tp]
    if tp in _IP_NAMES:
        return _IP_NAMES[tp]
    if isinstance(tp, type) and (dataclasses.is_dataclass(tp) or issubclass(tp, enum.Enum)):
        return _link(tp, names)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Literal:
        return " or ".join(f"`{json.dumps(a)}`" for a in args)
    if origin in (tuple, list, set, frozenset):
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            return "[" + ", ".join(_type_text(a, names) for a in args) + "]"
        return "list of " + (_type_text(args[0], names) if args else "string")
    if origin is dict:
        return f"mapping of {_type_text(args[0], names)} to {_type_text(args[1], names)}"
    if origin in (typing.Union, types.UnionType):
        members = list(args)
        ips = frozenset(m for m in members if m in _IP_NAMES)
        texts = []
        if ips in _IP_PAIRS:
            texts.append(_IP_PAIRS[ips])
            members = [m for m in members if m not in ips]
        texts += [_type_text(m, names) for m in members if m is not type(None)]
        if type(None) in members:
            texts.append("null")
        chosen = " (by `kind`)" if sum(dataclasses.is_dataclass(m) for m in members) > 1 else ""
        return " or ".join(texts) + chosen
    return getattr(tp, "__name__", repr(tp))


def _default_text(f: dataclasses.Field) -> str:
    default = codec.default_of(f)
    if default is dataclasses.MISSING:
        return "required"
    data = codec.to_data(default)
    if dataclasses.is_dataclass(default) and data == {}:
        return "all defaults"
    return f"`{json.dumps(data, ensure_ascii=False)}`"


def _field_comments(cls: type) -> dict[str, tuple[str, str]]:
    """field name -> (comment lines above it, comment beside it), from the source of
    the class that defines the field (and of its bases)."""
    found: dict[str, tuple[str, str]] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        found.update(_comments_of(klass))
    return found


_SOURCE_COMMENTS: dict[type, dict[str, tuple[str, str]]] = {}


def _comments_of(cls: type) -> dict[str, tuple[str, str]]:
    if cls in _SOURCE_COMMENTS:
        return _SOURCE_COMMENTS[cls]
    result: dict[str, tuple[str, str]] = {}
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        _SOURCE_COMMENTS[cls] = result
        return result
    lines = source.splitlines()
    comments: dict[int, str] = {}  # line number -> comment text
    code_lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
        elif token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                                tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.add(token.start[0])
    body = ast.parse(source).body[0]
    for statement in getattr(body, "body", []):
        if not (isinstance(statement, ast.AnnAssign)
                and isinstance(statement.target, ast.Name)):
            continue
        first, last = statement.lineno, statement.end_lineno or statement.lineno
        beside = " ".join(comments[n] for n in range(first, last + 1) if n in comments)
        above: list[str] = []
        number = first - 1
        while number in comments and number not in code_lines and lines[number - 1].strip():
            above.insert(0, comments[number])
            number -= 1
        result[statement.target.id] = (" ".join(above), beside)
    _SOURCE_COMMENTS[cls] = result
    return result


def main() -> int:
    sys.stdout.write(generate())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
