"""The incremental load (`director.config.incremental.LoadCache`): whatever the edits,
loading a file again through the cache gives exactly what a fresh load gives: the same
configuration, every origin (FILE:LINE:COL) included, and the same problems at the same
places; and unchanged blocks are really reused."""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from director.config.errors import ConfigError
from director.config.incremental import LoadCache, split_pieces
from director.config.keepalived import load_keepalived
from director.config.relocate import Unrelocatable, shift_lines
from director.config.tree import Word

SAMPLES = Path("/usr/share/doc/keepalived/samples")

GLOBAL = ("global_defs {\n    router_id test\n    smtp_alert_checker\n"
          "    notification_email {\n        ops@example.org\n    }\n}\n")
GROUP = "virtual_server_group web {\n    192.0.2.100 80\n    192.0.2.101-103 80\n}\n"
VRRP = ("vrrp_instance VI_1 {\n    state BACKUP\n    interface eth0\n"
        "    virtual_router_id 51\n    priority 100\n    virtual_ipaddress {\n"
        "        192.0.2.10/24\n    }\n}\n")


def real_server(r: int, weight: int, kind: int) -> str:
    checks = (
        "        TCP_CHECK {\n            connect_timeout 3\n        }\n",
        "        HTTP_GET {\n            url {\n                path /~lb/health\n"
        "                status_code 200\n            }\n            connect_timeout 3\n"
        "        }\n",
        "        MISC_CHECK {\n            misc_path /bin/true\n        }\n",
    )
    notify = '        notify_up "/bin/echo up { # ! }"\n' if kind % 2 else ""
    return (f"    real_server 198.51.100.{r} 80 {{\n        weight {weight}\n"
            f"        inhibit_on_failure\n{notify}{checks[kind % 3]}    }}\n")


def virtual_server(v: int, reals: int = 3) -> str:
    head = (f"virtual_server 203.0.113.{v} 80 {{  # service {v}\n    delay_loop 5\n"
            "    lb_algo wrr\n    lb_kind DR\n    protocol TCP\n")
    if v % 4 == 1:
        head += "    sorry_server 192.0.2.200 80\n    persistence_timeout 60\n"
    return head + "".join(real_server(r + 1, 1 + r % 3, v + r) for r in range(reals)) + "}\n"


def base_blocks() -> list[str]:
    return [GLOBAL, "! a comment { with a brace\n", GROUP, VRRP,
            *(virtual_server(v) for v in range(1, 9)),
            "virtual_server group web {\n    protocol TCP\n"
            + real_server(20, 1, 0) + "}\n"]


# --------------------------------------------------------------------- comparison


def deep(value: Any) -> Any:
    """Everything a value holds, the fields that do not compare included (origins)."""
    if isinstance(value, Word):
        return ("Word", str(value), value.origin)
    if isinstance(value, (str, int, float, bool, bytes, enum.Enum)) or value is None:
        return value
    if isinstance(value, (tuple, list)):
        return tuple(deep(v) for v in value)
    if isinstance(value, frozenset):
        return frozenset(deep(v) for v in value)
    if isinstance(value, dict):
        return tuple((deep(k), deep(v)) for k, v in value.items())
    if dataclasses.is_dataclass(value):
        return (type(value).__name__,
                tuple((f.name, deep(getattr(value, f.name))) for f in dataclasses.fields(value)))
    return repr(value)


def outcome(load: Any, path: Path) -> tuple[str, Any, list[str]]:
    try:
        config, problems = load(str(path))
    except ConfigError as error:
        return "error", None, [str(p) for p in error.problems]
    return "ok", deep(config), [str(p) for p in problems]


def check_same(cache: LoadCache, path: Path, mode: str = "moves") -> None:
    """mode "moves": moved blocks moved at once; "deferred": moved by `settle` after
    the load; "unsettled": never moved (the VRRP child's use: it keeps no virtual
    server): the configuration compares equal and the problems are the same, but
    origins of moved blocks may name their earlier lines."""

    def load(name: str) -> tuple[Any, list[Any]]:
        config, problems = cache.load(name, defer_moves=mode != "moves")
        if mode == "deferred":
            settled = cache.settle(config)
            assert cache.settle(settled) is settled  # once
            config = settled
        elif mode == "unsettled":
            assert config == load_keepalived(name)[0]
        return config, problems

    incremental = outcome(load, path)
    fresh = outcome(load_keepalived, path)
    assert incremental[0] == fresh[0]
    assert incremental[2] == fresh[2]
    if mode != "unsettled":
        assert incremental[1] == fresh[1]


# --------------------------------------------------------------------- edits

EDITS = ("weight", "drop_line", "blank_lines", "comment", "drop_block", "copy_block",
         "swap_blocks", "global", "error", "extra_brace", "unclosed", "macro", "no_protocol",
         "unknown_keyword", "indent", "conditional", "open_quote")
MODES = ("moves", "deferred", "unsettled")


def apply_edit(blocks: list[str], edit: str, i: int, n: int) -> list[str]:
    blocks = list(blocks)
    k = i % len(blocks)
    lines = blocks[k].split("\n")
    j = n % max(1, len(lines) - 1)
    if edit == "weight":
        blocks[k] = blocks[k].replace(f"weight {1 + n % 3}", f"weight {10 + n}", 1)
    elif edit == "drop_line":
        del lines[j]
        blocks[k] = "\n".join(lines)
    elif edit == "blank_lines":
        lines[j:j] = [""] * (1 + n % 3)
        blocks[k] = "\n".join(lines)
    elif edit == "comment":
        lines.insert(j, "# } a comment {" if n % 2 else "    ! note")
        blocks[k] = "\n".join(lines)
    elif edit == "drop_block" and len(blocks) > 1:
        del blocks[k]
    elif edit == "copy_block":
        blocks.insert(n % (len(blocks) + 1), blocks[k])
    elif edit == "swap_blocks":
        m = n % len(blocks)
        blocks[k], blocks[m] = blocks[m], blocks[k]
    elif edit == "global":
        blocks.insert(0, "global_defs {\n    smtp_alert\n}\n" if n % 2 else
                      "global_defs {\n    no_checker_emails\n}\n")
    elif edit == "error":
        lines.insert(j, "    delay_loop -5")
        blocks[k] = "\n".join(lines)
    elif edit == "extra_brace":
        blocks.insert(k, "}\n")
    elif edit == "unclosed":
        blocks[k] = blocks[k].rstrip("}\n") + "\n"
    elif edit == "macro":
        blocks.insert(0, "$W=7\n")
        blocks[k] = blocks[k].replace("weight 1", "weight $W", 1)
    elif edit == "no_protocol":
        blocks[k] = blocks[k].replace("    protocol TCP\n", "", 1)
    elif edit == "unknown_keyword":
        lines.insert(j, "    frobnicate 3")
        blocks[k] = "\n".join(lines)
    elif edit == "indent":
        blocks[k] = "  " + blocks[k].replace("\n", "\n  ")
    elif edit == "conditional":
        lines.insert(j, "    @lb1 weight 4" if n % 2 else "} @^lb1 weight 4")
        blocks[k] = "\n".join(lines)
    elif edit == "open_quote":
        lines.insert(j, '    notify_down "/bin/echo { }' if n % 2 else '    weight "{ 2 }"')
        blocks[k] = "\n".join(lines)
    return blocks


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(EDITS), st.integers(0, 50), st.integers(0, 50),
                          st.sampled_from(MODES)),
                min_size=1, max_size=5))
def test_incremental_load_equals_fresh_load(tmp_path: Path, edits) -> None:
    path = tmp_path / "keepalived.conf"
    cache = LoadCache()
    blocks = base_blocks()
    path.write_text("".join(blocks))
    check_same(cache, path)
    for edit, i, n, mode in edits:
        blocks = apply_edit(blocks, edit, i, n)
        path.write_text("".join(blocks))
        check_same(cache, path, mode)


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="keepalived's sample configs not installed")
def test_samples_load_the_same_twice_and_moved(tmp_path: Path) -> None:
    cache = LoadCache()
    path = tmp_path / "keepalived.conf"
    for sample in sorted(SAMPLES.glob("keepalived.conf.*")):
        text = sample.read_text(errors="replace")
        for variant in (text, "\n\n# moved\n" + text, text):
            path.write_text(variant)
            check_same(cache, path)


# --------------------------------------------------------------------- reuse, and moves


def base_loaded(tmp_path: Path) -> tuple[Path, LoadCache, list[str], Any]:
    """The base blocks written and loaded once through a new cache."""
    path = tmp_path / "keepalived.conf"
    cache = LoadCache()
    blocks = base_blocks()
    path.write_text("".join(blocks))
    first, _ = cache.load(str(path))
    assert cache.reused == 0
    return path, cache, blocks, first


def test_unchanged_blocks_are_reused_and_moved_ones_get_their_new_lines(tmp_path: Path) -> None:
    path, cache, blocks, first = base_loaded(tmp_path)

    cache.load(str(path))
    assert (cache.reused, cache.moved) == (9, 0)

    blocks[4] = blocks[4].replace("weight 1", "weight 9", 1)  # the first virtual server
    blocks.insert(2, "# three\n# more\n# lines\n")
    path.write_text("".join(blocks))
    again, _ = cache.load(str(path))
    assert (cache.reused, cache.moved) == (8, 8)
    before = first.virtual_servers[3].real_servers[1].checkers[0].origin
    after = again.virtual_servers[3].real_servers[1].checkers[0].origin
    file, line, col = before.rsplit(":", 2)
    assert after == f"{file}:{int(line) + 3}:{col}"
    check_same(cache, path)


def test_changed_global_settings_rebuild_every_virtual_server(tmp_path: Path) -> None:
    path = tmp_path / "keepalived.conf"
    cache = LoadCache()
    blocks = base_blocks()
    path.write_text("".join(blocks))
    cache.load(str(path))
    blocks[0] = blocks[0].replace("    smtp_alert_checker\n", "")
    path.write_text("".join(blocks))
    config, _ = cache.load(str(path))
    assert cache.reused == 0
    assert not any(vs.smtp_alert for vs in config.virtual_servers)
    check_same(cache, path)


@pytest.mark.parametrize("extra", [
    "$X=1\n", "@other global_defs {\n}\n", 'include "x.conf"\n',
    "~SEQ(i, 1, 2) notification_email_from a$i@example.com\n",
    "global_defs {\n  @^lb1 router_id x\n}\n", "global_defs { @lb1 router_id x }\n",
    "global_defs {\n\t~LST(i, a) router_id x\n}\n", "global_defs {\n  router_id a\\b\n}\n"])
def test_files_with_preprocessing_are_loaded_from_scratch(tmp_path: Path, extra: str) -> None:
    path = tmp_path / "keepalived.conf"
    cache = LoadCache()
    path.write_text("".join(base_blocks()))
    cache.load(str(path))
    path.write_text(extra + "".join(base_blocks()))
    check_same(cache, path)
    assert cache.reused == 0


def test_a_file_that_changes_back_and_forth_is_never_served_stale(tmp_path: Path) -> None:
    path = tmp_path / "keepalived.conf"
    cache = LoadCache()
    one = "".join(base_blocks())
    two = one.replace("weight 2", "weight 42")
    for text in (one, two, one, two):
        path.write_text(text)
        config, _ = cache.load(str(path))
        weights = {rs.weight for vs in config.virtual_servers for rs in vs.real_servers}
        assert (42 in weights) == (text is two)
        check_same(cache, path)


def test_deferred_moves_copy_nothing_until_settled(tmp_path: Path) -> None:
    path, cache, blocks, first = base_loaded(tmp_path)
    blocks.insert(2, "# two\n# lines\n")
    path.write_text("".join(blocks))
    config, _ = cache.load(str(path), defer_moves=True)
    assert (cache.reused, cache.moved, cache.deferred) == (9, 9, 9)
    assert all(a is b for a, b in zip(config.virtual_servers, first.virtual_servers,
                                      strict=True))
    settled = cache.settle(config)
    fresh, _ = load_keepalived(str(path))
    assert deep(settled) == deep(fresh) and deep(config) != deep(fresh)
    file, line, col = first.virtual_servers[0].origin.rsplit(":", 2)
    assert settled.virtual_servers[0].origin == f"{file}:{int(line) + 2}:{col}"
    assert cache.settle(first) is first  # not the last load's: nothing to do
    cache.load(str(path))  # the settled blocks are where they are now
    assert (cache.reused, cache.moved) == (9, 0)


def test_a_load_with_problems_does_not_defer_moves(tmp_path: Path) -> None:
    path, cache, blocks, _ = base_loaded(tmp_path)
    blocks.insert(2, "# two\n# lines\n")
    blocks.append("virtual_server 203.0.113.1 80 {\n    protocol TCP\n}\n")  # a duplicate
    path.write_text("".join(blocks))
    with pytest.raises(ConfigError) as raised:
        cache.load(str(path), defer_moves=True)
    assert cache.deferred == 0 and cache.moved == 9
    fresh = outcome(load_keepalived, path)
    assert [str(p) for p in raised.value.problems] == fresh[2]


# --------------------------------------------------------------------- the pieces


def test_pieces_are_whole_top_level_statements() -> None:
    text = ("global_defs {\n  router_id a\n}\n# c { \nvirtual_server 192.0.2.1 80\n{\n"
            "real_server 192.0.2.2 80 {\n}\n}\n  indented_top 1\nlast\n")
    pieces = split_pieces(text)
    assert pieces is not None
    assert "".join(p for _, p in pieces) == text
    assert [line for line, _ in pieces] == [1, 5, 11]
    assert pieces[1][1].startswith("virtual_server") and pieces[1][1].endswith("indented_top 1\n")


def test_a_brace_closing_nothing_leaves_the_split_to_a_fresh_load() -> None:
    assert split_pieces("a {\n}\n}\nb {\n}\n") is None


def test_relocation_refuses_what_it_does_not_know() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Unknown:
        origin: object

    with pytest.raises(Unrelocatable):
        shift_lines((Unknown(origin=object()),), "f", 1)
