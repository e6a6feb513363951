"""The generic codec on a small model of its own: plain data out, typed data in, every
problem reported where it stands."""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import types
import typing
from dataclasses import dataclass, field
from enum import StrEnum

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from director.config.codec import data_fields, describe, from_data, to_data, type_hints
from director.config.errors import Diagnostics
from director.config.yaml_config import dump_json, dump_yaml, parse_json, parse_yaml

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


class Scheduler(StrEnum):
    RR = "rr"
    WRR = "wrr"
    SH = "sh"


@dataclass(frozen=True, slots=True, kw_only=True)
class TcpProbe:
    """A TCP connect."""

    kind: str = "TCP"
    connect_timeout: float = 5.0
    origin: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpProbe:
    """An HTTP GET."""

    kind: str = "HTTP"
    path: str = "/"
    status_codes: tuple[int, ...] = (200,)
    origin: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Where:
    name: str = ""
    origin: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Backend:
    address: IPAddress | None = None
    port: int = 0
    weight: int = 1
    probe: TcpProbe | HttpProbe | None = None
    field_origins: tuple[Where, ...] = field(default=(), compare=False, repr=False)
    origin: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError("weight must not be negative")


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    name: str = ""
    vip: IPInterface | None = None
    network: ipaddress.IPv4Network | None = None
    scheduler: Scheduler = Scheduler.WRR
    quorum: int | None = None
    alpha: bool = False
    delay: float = 60.0
    backends: tuple[Backend, ...] = ()
    pair: tuple[str, int] = ("", 0)
    origin: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Root:
    router_id: str = ""
    services: tuple[Service, ...] = ()
    probes: tuple[TcpProbe | HttpProbe, ...] = ()


EXAMPLE = Root(
    router_id="lb1",
    services=(
        Service(name="web", vip=ipaddress.ip_interface("192.0.2.1/24"),
                scheduler=Scheduler.RR, quorum=2,
                backends=(Backend(address=ipaddress.ip_address("192.0.2.10"), port=80,
                                  probe=HttpProbe(path="/health", status_codes=(200, 204))),
                          Backend(address=ipaddress.ip_address("2001:db8::10"), port=80,
                                  weight=3, probe=TcpProbe()))),
        Service(network=ipaddress.ip_network("198.51.100.0/24"), delay=2.5,
                pair=("x", 3)),
    ),
)


def decode(text: str, cls=Root) -> tuple[object, list[str]]:
    diag = Diagnostics()
    value = parse_yaml(text, "t.yaml", cls, diag)
    return value, [str(p) for p in diag.problems]


def test_to_data_writes_only_what_differs_from_the_defaults():
    assert to_data(EXAMPLE) == {
        "router_id": "lb1",
        "services": [
            {"name": "web", "vip": "192.0.2.1/24", "scheduler": "rr", "quorum": 2,
             "backends": [
                 {"address": "192.0.2.10", "port": 80,
                  "probe": {"kind": "HTTP", "path": "/health", "status_codes": [200, 204]}},
                 {"address": "2001:db8::10", "port": 80, "weight": 3,
                  "probe": {"kind": "TCP"}},
             ]},
            {"network": "198.51.100.0/24", "delay": 2.5, "pair": ["x", 3]},
        ],
    }
    assert to_data(Root()) == {}


def test_from_data_rebuilds_what_to_data_wrote():
    diag = Diagnostics()
    assert from_data(Root, to_data(EXAMPLE), diag) == EXAMPLE
    assert diag.problems == []


def test_yaml_and_json_dumps_round_trip():
    text = dump_yaml(EXAMPLE)
    assert "origin" not in text
    assert decode(text) == (EXAMPLE, [])
    diag = Diagnostics()
    assert parse_json(dump_json(EXAMPLE), "t.json", Root, diag) == EXAMPLE
    assert diag.problems == []


def test_origins_are_the_positions_of_the_mappings():
    text = ("services:\n"
            "  - name: web\n"
            "    backends:\n"
            "      - address: 192.0.2.10\n"
            "        probe: {kind: TCP}\n")
    root, problems = decode(text)
    assert problems == []
    service = root.services[0]
    assert service.origin == "t.yaml:2:5"
    assert service.backends[0].origin == "t.yaml:4:9"
    assert service.backends[0].probe.origin == "t.yaml:5:16"


def test_the_place_of_each_key_is_kept_where_the_model_asks_for_it():
    root, problems = decode("services:\n  - backends:\n      - port: 80\n        weight: 2\n")
    assert problems == []
    assert root.services[0].backends[0].field_origins == (
        Where(name="port", origin="t.yaml:3:15"), Where(name="weight", origin="t.yaml:4:17"))
    assert "field_origins" not in dump_yaml(root)
    _, problems = decode("services:\n  - backends:\n      - field_origins: []\n")
    assert problems == ["t.yaml:3:9: services[0].backends[0]: unknown key 'field_origins'"]


def test_a_bad_value_is_reported_at_its_place_with_its_path():
    text = ("services:\n"
            "  - name: web\n"
            "  - name: db\n"
            "    backends:\n"
            "      - address: 192.0.2.10\n"
            "        weight: x\n")
    root, problems = decode(text)
    assert root is None
    assert problems == [
        "t.yaml:6:17: services[1].backends[0].weight: expected an integer, got 'x'"]


@pytest.mark.parametrize(("line", "message"), [
    ("quorum: true", "services[0].quorum: expected an integer or null, got true"),
    ("delay: fast", "services[0].delay: expected a number, got 'fast'"),
    ("delay: .nan", "services[0].delay: expected a number, got .nan (not a finite number)"),
    ("alpha: 1", "services[0].alpha: expected true or false, got 1"),
    ("scheduler: lc", "services[0].scheduler: expected one of: rr, wrr, sh, got 'lc'"),
    ("vip: 192.0.2.300", "services[0].vip: expected an IP address with optional /prefix or "
                         "null, "
                         "got '192.0.2.300'"),
    ("network: 198.51.100.1/24", "services[0].network: expected an IPv4 network or null, "
                                 "got '198.51.100.1/24' (host bits set)"),
    ("backends: {}", "services[0].backends: expected a list, got a mapping"),
    ("pair: [a]", "services[0].pair: expected a list of 2 items, got 1"),
    ("name: [a]", "services[0].name: expected a string, got a list"),
    ("name: null", "services[0].name: expected a string, got null"),
])
def test_type_errors_name_the_expected_type(line: str, message: str):
    root, problems = decode(f"services:\n  - {line}\n")
    assert root is None
    assert problems == [f"t.yaml:2:{5 + line.index(':') + 2}: {message}"]


def test_every_problem_is_reported_not_only_the_first():
    text = ("services:\n"
            "  - quorum: x\n"
            "    backends:\n"
            "      - port: y\n"
            "  - delay: z\n")
    _, problems = decode(text)
    assert problems == [
        "t.yaml:2:13: services[0].quorum: expected an integer or null, got 'x'",
        "t.yaml:4:15: services[0].backends[0].port: expected an integer, got 'y'",
        "t.yaml:5:12: services[1].delay: expected a number, got 'z'",
    ]


def test_unknown_keys_are_errors_at_the_key_with_a_suggestion():
    root, problems = decode("services:\n  - name: a\n    sheduler: rr\n    origin: x\n")
    assert root is None
    assert problems == [
        "t.yaml:3:5: services[0]: unknown key 'sheduler' (did you mean 'scheduler'?)",
        "t.yaml:4:5: services[0]: unknown key 'origin'",
    ]


def test_union_members_are_chosen_by_kind():
    root, problems = decode("probes:\n  - kind: HTTP\n    path: /x\n  - {kind: TCP}\n")
    assert problems == []
    assert root.probes == (HttpProbe(path="/x"), TcpProbe())
    _, problems = decode("probes:\n  - path: /x\n  - kind: UDP\n")
    assert problems == [
        "t.yaml:2:5: probes[0]: needs a 'kind' (one of: TCP, HTTP)",
        "t.yaml:3:11: probes[1].kind: unknown kind 'UDP' (expected one of: TCP, HTTP)",
    ]


def test_a_kind_that_contradicts_the_field_type_is_an_error():
    _, problems = decode("services:\n  - backends:\n      - probe: {kind: TCP, path: /}\n")
    assert problems == [
        "t.yaml:3:28: services[0].backends[0].probe: unknown key 'path'"]


def test_the_models_own_checks_are_reported_at_the_object():
    _, problems = decode("services:\n  - backends:\n      - weight: -1\n")
    assert problems == ["t.yaml:3:9: services[0].backends[0]: weight must not be negative"]


def test_plain_scalars_meant_as_strings_are_kept_as_written():
    root, problems = decode("router_id: 0123\nservices:\n  - name: 1.10\n  - name: yes\n")
    assert problems == []
    assert root.router_id == "0123"
    assert [s.name for s in root.services] == ["1.10", "yes"]


def test_windows_line_ends_change_nothing():
    root, problems = decode("router_id: 0123\r\nservices:\r\n  - name: 1.10\r\n"
                            "    quorum: x\r\n")
    assert root is None
    assert problems == ["t.yaml:4:13: services[0].quorum: expected an integer or null, got 'x'"]
    root, problems = decode("router_id: 0123\r\nservices:\r\n  - name: 1.10\r\n")
    assert (root.router_id, root.services[0].name, problems) == ("0123", "1.10", [])


def test_missing_keys_take_their_defaults():
    root, problems = decode("services:\n  - {}\n")
    assert problems == []
    assert root == Root(services=(Service(),))


def test_an_empty_document_is_every_default():
    assert decode("") == (Root(), [])
    assert decode("# nothing\n") == (Root(), [])


def test_the_root_must_be_a_mapping():
    assert decode("- a\n") == (None, ["t.yaml:1:1: expected a mapping, got a list"])


def test_yaml_syntax_errors_are_reported_at_their_mark():
    root, problems = decode("services:\n  - name: [a\n")
    assert root is None
    assert len(problems) == 1
    assert problems[0].startswith("t.yaml:3:1: YAML syntax error: ")
    _, problems = decode("a: 1\n\tb: 2\n")
    assert problems[0].startswith("t.yaml:2:1: YAML syntax error: ")
    _, problems = decode("router_id: a\x01b\n")
    assert problems == ["t.yaml:1:13: YAML syntax error: control characters are not allowed "
                        "(character 1)"]
    _, problems = decode("a: 1\n---\nb: 2\n")
    assert problems == ["t.yaml:2:1: a configuration is a single YAML document, "
                        "and another one starts here"]


def test_only_safe_tags_are_accepted():
    text = "router_id: !!python/object/apply:os.system [echo unsafe]\n"
    root, problems = decode(text)
    assert root is None
    assert problems == [
        "t.yaml:1:12: unsupported YAML tag 'tag:yaml.org,2002:python/object/apply:os.system'"]
    _, problems = decode("router_id: !custom x\n")
    assert problems == ["t.yaml:1:12: unsupported YAML tag '!custom'"]


def test_duplicate_keys_are_errors():
    _, problems = decode("router_id: a\nrouter_id: b\n")
    assert problems == ["t.yaml:2:1: duplicate key 'router_id' (first at t.yaml:1:1)"]


def test_anchors_aliases_and_merge_keys():
    text = ("services:\n"
            "  - &base\n"
            "    scheduler: rr\n"
            "    delay: 3\n"
            "  - <<: *base\n"
            "    delay: 4\n"
            "  - *base\n")
    root, problems = decode(text)
    assert problems == []
    assert root.services == (Service(scheduler=Scheduler.RR, delay=3.0),
                             Service(scheduler=Scheduler.RR, delay=4.0),
                             Service(scheduler=Scheduler.RR, delay=3.0))


def test_recursive_aliases_and_alias_bombs_are_refused():
    _, problems = decode("services: &a\n  - backends: *a\n")
    assert problems == ["t.yaml:2:15: a YAML alias refers to a value that contains it"]
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [*{previous}, *{previous}, *{previous}, *{previous}, " \
                f"*{previous}, *{previous}, *{previous}, *{previous}, *{previous}, " \
                f"*{previous}]\n"
    _, problems = decode(bomb)
    assert problems == ["t.yaml:7:20: the document's aliases expand to too many values"]


def test_deep_nesting_is_refused():
    _, problems = decode("router_id: " + "[" * 200 + "]" * 200 + "\n")
    assert problems == ["t.yaml:1:75: the document is nested too deeply"]


def test_descriptions():
    assert describe(IPAddress | None) == "an IP address or null"
    assert describe(tuple[Backend, ...]) == "a list"
    assert describe(int | str) == "an integer or a string"


# ---------------------------------------------------------------------------------------
# Random instances of any model class, with strategies derived from its fields.


def strategy_for(tp, depth: int = 0) -> st.SearchStrategy:
    """Values of type ``tp`` as the model may hold them (finite numbers only)."""
    if tp is str:
        return st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
    if tp is int:
        return st.integers(min_value=-(2**63), max_value=2**64)
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if tp is bool:
        return st.booleans()
    if tp is type(None):
        return st.none()
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    if tp in IP_STRATEGIES:
        return IP_STRATEGIES[tp]
    if dataclasses.is_dataclass(tp):
        return _instances(tp, depth)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([strategy_for(arg, depth) for arg in args])
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        size = 3 if depth < 3 else 0
        return st.lists(strategy_for(args[0], depth + 1), max_size=size).map(tuple)
    if origin is tuple:
        return st.tuples(*(strategy_for(arg, depth + 1) for arg in args))
    raise TypeError(f"no strategy for {tp!r}")


def _instances(cls, depth: int) -> st.SearchStrategy:
    if depth > 6:
        return st.just(cls())
    hints = type_hints(cls)
    fields = {f.name: st.deferred(lambda tp=hints[f.name]: strategy_for(tp, depth + 1))
              for f in data_fields(cls) if f.name != "kind"}

    @st.composite
    def build(draw):
        chosen = draw(st.sets(st.sampled_from(sorted(fields)))) if fields else set()
        kwargs = {name: draw(fields[name]) for name in sorted(chosen)}
        try:
            return cls(**kwargs)
        except Exception:  # the model's own checks refused the combination
            reject()
    return build()


def _interfaces(version: int, bits: int) -> st.SearchStrategy:
    return st.tuples(st.ip_addresses(v=version), st.integers(0, bits)).map(
        lambda pair: ipaddress.ip_interface((pair[0], pair[1])))


IP_STRATEGIES = {
    ipaddress.IPv4Address: st.ip_addresses(v=4),
    ipaddress.IPv6Address: st.ip_addresses(v=6),
    ipaddress.IPv4Interface: _interfaces(4, 32),
    ipaddress.IPv6Interface: _interfaces(6, 128),
    ipaddress.IPv4Network: _interfaces(4, 32).map(lambda i: i.network),
    ipaddress.IPv6Network: _interfaces(6, 128).map(lambda i: i.network),
}


def assert_round_trips(value, cls) -> None:
    text = dump_yaml(value)
    diag = Diagnostics()
    assert parse_yaml(text, "h.yaml", cls, diag) == value, text
    assert diag.problems == []
    diag = Diagnostics()
    assert parse_json(dump_json(value), "h.json", cls, diag) == value
    assert diag.problems == []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategy_for(Root))
def test_random_instances_round_trip_through_yaml_and_json(root):
    assert_round_trips(root, Root)
