"""The block-reading helpers every keepalived.conf builder shares
(`director.config.blocks`), on lines as the reader makes them."""

from __future__ import annotations

import pytest

from director.config.blocks import (
    Fields,
    deprecated,
    int_field,
    list_block,
    named_block,
    once_field,
    read_block,
    read_fifo,
    read_script,
    timer_field,
    word_field,
)
from director.config.errors import Diagnostics
from director.config.model import Script
from director.config.reader import read_text
from vrrp.spec import FieldOrigin, NotifyFifo

FILE = "b.conf"


def block(lines: str):
    """The lines of ``demo { LINES }``."""
    diag = Diagnostics()
    (node,) = read_text(f"demo {{\n{lines}\n}}\n", FILE, diag)
    assert not diag.problems
    return node.children, diag


def problems(diag: Diagnostics) -> list[tuple[str, str, str]]:
    return [(p.origin, p.severity.value, p.message) for p in diag.problems]


TABLE = {"name": word_field("name"), "count": int_field("count", 1, 9),
         "delay": timer_field("delay", positive=True),
         "usecs": timer_field("usecs", 1, 10_000_000, whole=True, large=1_000_000,
                              scale=1e-6),
         "notify": once_field("notify", read_script),
         "old_name": deprecated("old_name", word_field("name"), "name")}


def test_each_line_goes_to_its_handler_with_where_its_value_was() -> None:
    lines, diag = block("name lb1\ncount 3\ndelay 1.5\nusecs 250000\nnotify /bin/up root")
    fields = read_block(lines, diag, TABLE, "demo")
    assert not diag.problems
    assert fields.values == {"name": "lb1", "count": 3, "delay": 1.5, "usecs": 0.25,
                             "notify": Script(command="/bin/up", user="root")}
    assert fields.field_origins()[:2] == (FieldOrigin(name="name", origin=f"{FILE}:2:6"),
                                          FieldOrigin(name="count", origin=f"{FILE}:3:7"))
    assert "count" in fields and fields.get("nothing", 7) == 7
    assert fields.origin("delay") == f"{FILE}:4:7"


def test_unknown_keywords_are_warnings_unless_another_builder_reads_them() -> None:
    lines, diag = block("nmae lb1\nvrrp_version 3\nfrobnicate")
    read_block(lines, diag, TABLE, "demo", skip={"vrrp_version"})
    assert problems(diag) == [
        (f"{FILE}:2:1", "warning", "unknown keyword 'nmae' in demo (did you mean 'name'?); "
                                   "ignored"),
        (f"{FILE}:4:1", "warning", "unknown keyword 'frobnicate' in demo; ignored")]


@pytest.mark.parametrize(("line", "severity", "message"), [
    ("delay 0", "error", "delay must be greater than 0"),
    ("usecs 0.5", "error", "usecs '0.5' is not a whole number"),
    ("usecs 2000000", "warning", "usecs 2000000 seconds is very large"),
    ("count 10", "error", "count 10 is out of range (1-9)"),
    ("old_name lb1", "warning", "'old_name' is deprecated; use 'name'"),
])
def test_line_shapes_report_at_the_line(line: str, severity: str, message: str) -> None:
    lines, diag = block(line)
    read_block(lines, diag, TABLE, "demo")
    (problem,) = problems(diag)
    assert problem[1:] == (severity, message)


def test_a_setting_taken_once_refuses_a_repeat() -> None:
    lines, diag = block("notify /bin/a\nnotify /bin/b")
    fields = read_block(lines, diag, TABLE, "demo")
    assert fields.values["notify"] == Script(command="/bin/a")
    assert problems(diag) == [(f"{FILE}:3:1", "error", f"'notify' already set at {FILE}:2:8; "
                                                       "this one is ignored")]


def test_owned_things_read_their_user_and_group() -> None:
    lines, diag = block('fifo /run/a.fifo ka kagroup\nscript " "\nfifo')
    assert read_fifo(lines[0], diag) == NotifyFifo(path="/run/a.fifo", user="ka",
                                                   group="kagroup")
    assert read_script(lines[1], diag) is None
    assert read_fifo(lines[2], diag) is None
    assert [m for _, _, m in problems(diag)] == ["'script' needs a command",
                                                  "'fifo' needs an argument"]


def test_named_and_list_blocks() -> None:
    diag = Diagnostics()
    nodes = read_text("group a b { x }\nlist extra { a\n b { } }\nlist\n", FILE, diag)
    assert named_block(nodes[0], diag, "group") is None
    assert [str(n.keyword) for n in list_block(nodes[1], diag) or ()] == ["a", "b"]
    assert list_block(nodes[2], diag) is None
    assert problems(diag) == [
        (f"{FILE}:1:9", "error", "group must have exactly one name"),
        (f"{FILE}:2:6", "warning", "'list' takes no arguments; 'extra' ignored"),
        (f"{FILE}:3:2", "warning", "unexpected block after 'b' in 'list'; ignored"),
        (f"{FILE}:4:1", "error", "'list' needs a { } block")]


def test_fields_start_empty() -> None:
    fields = Fields()
    assert fields.values == {} and fields.field_origins() == ()
