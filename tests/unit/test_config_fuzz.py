"""Mutated configs either load or fail with located ConfigErrors: never another exception."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from director.config.errors import ConfigError, Severity
from director.config.load import load_config

SAMPLES = Path("/usr/share/doc/keepalived/samples")
OWN = Path(__file__).resolve().parents[2] / "conf" / "lvs-dr-pair.conf"
LOCATED = re.compile(r"^.+:\d+:\d+$")

TOKENS = [
    "{", "}", "}}", "{{", '"', "!", "#", "@", "@^x", "$", "$UNDEFINED", "${X", "include",
    "include *", "virtual_server", "real_server", "vrrp_instance", "TCP_CHECK", "HTTP_GET",
    "url", "priority", "virtual_router_id", "0", "-1", "256", "99999999999999999999999",
    "1e308", "nan", "0x", "192.0.2.1", "2001:db8::1/129", "999.1.1.1", "65536", "fwmark",
    "group", "lb_algo", "quorum", "\x00", "\x07", "\t", "\u00e9", "\ufeff", "\n",
]


def _base_texts() -> list[bytes]:
    texts = [OWN.read_bytes()]
    if SAMPLES.is_dir():
        texts += [p.read_bytes() for p in sorted(SAMPLES.glob("keepalived.conf.*"))]
    return texts


BASES = _base_texts()


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["truncate", "delete", "insert", "bytes", "brace"]))
        at = draw(st.integers(0, len(data)))
        if action == "truncate":
            del data[at:]
        elif action == "delete":
            del data[at:at + draw(st.integers(1, 40))]
        elif action == "insert":
            token = draw(st.sampled_from(TOKENS))
            data[at:at] = f" {token} ".encode()
        elif action == "bytes":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            data[at:at] = draw(st.sampled_from([b"{", b"}", b"\n}\n", b"{\n"]))
    return bytes(data)


def _load_ok_or_located(path: Path) -> None:
    try:
        load_config(str(path))
    except ConfigError as error:
        errors = [p for p in error.problems if p.severity is Severity.ERROR]
        assert errors, "a ConfigError must carry at least one error"
        for problem in error.problems:
            assert LOCATED.match(problem.origin), f"no location: {problem}"
            assert problem.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_config_loads_or_fails_with_locations(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "keepalived.conf"
    path.write_bytes(data)
    _load_ok_or_located(path)


@pytest.mark.parametrize("huge", ["9" * 5000, "1" * 100_000])
def test_huge_numbers_are_errors_with_location(tmp_path: Path, huge: str) -> None:
    path = tmp_path / "keepalived.conf"
    path.write_text(f"vrrp_instance VI {{\n  interface eth0\n  virtual_router_id {huge}\n}}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert any(p.origin == f"{path}:3:21" for p in caught.value.problems)


def test_include_loop_is_an_error_at_the_include(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text("include b.conf\n")
    (tmp_path / "b.conf").write_text("global_defs {\n}\ninclude a.conf\n")
    with pytest.raises(ConfigError) as caught:
        load_config(str(tmp_path / "a.conf"))
    origins = [p.origin for p in caught.value.problems]
    assert any(o.startswith(str(tmp_path / "b.conf") + ":3:") for o in origins), origins


def test_non_utf8_bytes_are_reported_at_their_line(tmp_path: Path) -> None:
    path = tmp_path / "keepalived.conf"
    path.write_bytes(b"global_defs {\n  router_id r\xff\xfe1\n}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert any(p.origin.startswith(f"{path}:2:") for p in caught.value.problems)
