"""The keepalived.conf reader: tree shape, exact origins, includes, conditionals,
definitions, sequences, and bad input reported rather than raised."""

from __future__ import annotations

import gc
import glob
import os
import time
from pathlib import Path

import pytest
from config_helpers import problems as messages
from hypothesis import given, settings
from hypothesis import strategies as st

from director.config import reader
from director.config.errors import Diagnostics, Severity
from director.config.reader import default_config_id, read_file, read_text
from director.config.tree import Node

SAMPLES = "/usr/share/doc/keepalived/samples"


def read(text: str, config_id: str | None = "main", filename: str = "k.conf"
         ) -> tuple[list[Node], Diagnostics]:
    diag = Diagnostics()
    return read_text(text, filename, diag, config_id), diag


def shape(nodes: list[Node]) -> list:
    """Statements as 'keyword arg...' strings; a block follows as a nested list."""
    out: list = []
    for node in nodes:
        out.append(" ".join([node.keyword, *node.args]))
        if node.children is not None:
            out.append(shape(node.children))
    return out


def places(nodes: list[Node]) -> list[tuple[str, str]]:
    """Every word with its origin, depth first."""
    out: list[tuple[str, str]] = []
    for node in nodes:
        out.extend((str(w), w.origin) for w in (node.keyword, *node.args))
        out.extend(places(node.children or []))
    return out


# ----- words, comments, blocks ---------------------------------------------------------

def test_words_comments_blank_lines_and_tabs_with_exact_origins() -> None:
    nodes, diag = read(
        "! Configuration File\n"
        "\n"
        "global_defs {\t# comment\n"
        "\trouter_id\tLVS_1   ! trailing\n"
        '   notification_email_from "a b@example.com"\n'
        "}\n")
    assert not diag.problems
    assert shape(nodes) == ["global_defs", ["router_id LVS_1",
                                            "notification_email_from a b@example.com"]]
    assert places(nodes) == [
        ("global_defs", "k.conf:3:1"),
        ("router_id", "k.conf:4:2"), ("LVS_1", "k.conf:4:12"),
        ("notification_email_from", "k.conf:5:4"), ("a b@example.com", "k.conf:5:28")]
    assert nodes[0].origin == "k.conf:3:1"


def test_quoted_command_is_one_word() -> None:
    nodes, _ = read('vrrp_script chk {\n  script "/usr/bin/check --x 1"\n}\n')
    script = nodes[0].children[0]
    assert script.args == ["/usr/bin/check --x 1"]
    assert script.args[0].origin == "k.conf:2:10"


def test_brace_on_the_next_line() -> None:
    nodes, diag = read("virtual_server 192.0.2.1 80\n# note\n\n{\n  delay_loop 6\n}\n")
    assert not diag.problems
    assert shape(nodes) == ["virtual_server 192.0.2.1 80", ["delay_loop 6"]]


def test_one_line_blocks_and_closing_braces_anywhere() -> None:
    nodes, diag = read(
        "virtual_server 192.0.2.10 80 {\n"
        "  real_server 192.0.2.1 80 { weight 1 } real_server 192.0.2.2 80 {\n"
        "    TCP_CHECK { connect_timeout 3 } }\n"
        "  real_server 192.0.2.3 80 { TCP_CHECK { connect_timeout 4 } } }\n")
    assert not diag.problems
    assert shape(nodes) == ["virtual_server 192.0.2.10 80", [
        "real_server 192.0.2.1 80", ["weight 1"],
        "real_server 192.0.2.2 80", ["TCP_CHECK", ["connect_timeout 3"]],
        "real_server 192.0.2.3 80", ["TCP_CHECK", ["connect_timeout 4"]]]]
    second = nodes[0].children[1]
    assert second.origin == "k.conf:2:41"
    assert second.children[0].children[0].args[0].origin == "k.conf:3:33"


def test_statements_split_only_at_braces_as_in_keepalived() -> None:
    # keepalived 2.2.7 reads "weight 1 TCP_CHECK" as one statement (its handler then
    # ignores the extra word, and the block is misread); the tree shows that faithfully
    # so the builder can report 'TCP_CHECK' at its own place.
    nodes, diag = read("real_server 192.0.2.1 80 { weight 1 TCP_CHECK { connect_timeout 3 } }\n")
    assert not diag.problems
    assert shape(nodes) == ["real_server 192.0.2.1 80",
                            ["weight 1 TCP_CHECK", ["connect_timeout 3"]]]
    assert nodes[0].children[0].args[1].origin == "k.conf:1:37"


def test_list_blocks_give_one_node_per_line() -> None:
    nodes, _ = read("virtual_ipaddress {\n  192.0.2.10/24 dev eth0\n  192.0.2.11\n}\n"
                    "notification_email { a@example.com b@example.com }\n")
    assert shape(nodes) == ["virtual_ipaddress", ["192.0.2.10/24 dev eth0", "192.0.2.11"],
                            "notification_email", ["a@example.com b@example.com"]]
    assert nodes[0].children[1].keyword.origin == "k.conf:3:3"


def test_empty_block_and_block_less_statement_differ() -> None:
    nodes, _ = read("static_ipaddress {\n}\nuse_vmac\n")
    assert nodes[0].children == [] and nodes[0].has_block
    assert nodes[1].children is None and not nodes[1].has_block


def test_crlf_line_ends() -> None:
    nodes, diag = read("global_defs {\r\n  router_id r1\r\n}\r\n")
    assert not diag.problems
    assert places(nodes)[1:] == [("router_id", "k.conf:2:3"), ("r1", "k.conf:2:13")]


def test_escaped_comment_characters() -> None:
    nodes, _ = read("router_id w\\#x\n")
    assert nodes[0].args == ["w#x"]


# ----- unbalanced braces and quotes -------------------------------------------------------

def test_extra_closing_brace_is_an_error_at_its_place() -> None:
    nodes, diag = read("global_defs {\n  router_id r\n}\n  }\nvrrp_script s {\n}\n")
    assert messages(diag) == [("k.conf:4:3", "'}' with no block to close")]
    assert shape(nodes) == ["global_defs", ["router_id r"], "vrrp_script s", []]


def test_missing_closing_brace_is_an_error_at_the_opening_statement() -> None:
    nodes, diag = read("global_defs {\n  router_id r\nvrrp_instance V {\n  state MASTER\n")
    assert messages(diag) == [
        ("k.conf:3:1", "block 'vrrp_instance' is never closed: missing '}'"),
        ("k.conf:1:1", "block 'global_defs' is never closed: missing '}'")]
    assert shape(nodes) == ["global_defs", ["router_id r", "vrrp_instance V", ["state MASTER"]]]


def test_opening_brace_without_statement() -> None:
    nodes, diag = read("{\n  a 1\n}\nb 2 { } {\n}\n")
    assert messages(diag) == [("k.conf:1:1", "'{' with no statement before it"),
                              ("k.conf:4:9", "'{' with no statement before it")]
    assert shape(nodes) == ["b 2", []]


def test_unterminated_quote_is_an_error_and_the_rest_of_the_line_is_dropped() -> None:
    nodes, diag = read('notify_master "/bin/x arg\nrouter_id r\n')
    assert messages(diag) == [
        ("k.conf:1:15", "quoted string not terminated: the rest of the line is ignored")]
    assert shape(nodes) == ["notify_master", "router_id r"]


# ----- include ------------------------------------------------------------------------------

def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_include_splices_sorted_matches_in_place_inside_a_block(tmp_path: Path) -> None:
    write(tmp_path / "conf.d" / "b.conf", "real_server 192.0.2.2 80 {\n  weight 2\n}\n")
    write(tmp_path / "conf.d" / "a.conf", "\n  real_server 192.0.2.1 80 { weight 1 }\n")
    write(tmp_path / "conf.d" / "skip.txt", "ignored 1\n")
    main = write(tmp_path / "keepalived.conf",
                 "virtual_server 192.0.2.10 80 {\n  delay_loop 6\n"
                 "  include conf.d/*.conf\n  lb_algo rr\n}\n")
    diag = Diagnostics()
    nodes = read_file(str(main), diag, "main")
    assert not diag.problems
    assert shape(nodes) == ["virtual_server 192.0.2.10 80", [
        "delay_loop 6", "real_server 192.0.2.1 80", ["weight 1"],
        "real_server 192.0.2.2 80", ["weight 2"], "lb_algo rr"]]
    servers = nodes[0].children
    assert servers[1].origin == f"{tmp_path}/conf.d/a.conf:2:3"
    assert servers[2].children[0].args[0].origin == f"{tmp_path}/conf.d/b.conf:2:10"
    assert servers[3].origin == f"{main}:4:3"


def test_include_relative_to_the_including_file_and_absolute(tmp_path: Path) -> None:
    write(tmp_path / "sub" / "inner.conf", "inner 1\n")
    write(tmp_path / "sub" / "mid.conf", "include inner.conf\nmid 1\n")
    write(tmp_path / "abs.conf", "absolute 1\n")
    main = write(tmp_path / "main.conf", f"include sub/mid.conf\ninclude {tmp_path}/abs.conf\n")
    diag = Diagnostics()
    nodes = read_file(str(main), diag)
    assert not diag.problems
    assert shape(nodes) == ["inner 1", "mid 1", "absolute 1"]
    assert nodes[0].origin == f"{tmp_path}/sub/inner.conf:1:1"


def test_include_brace_alternatives_keep_their_order(tmp_path: Path) -> None:
    write(tmp_path / "z.conf", "z 1\n")
    write(tmp_path / "a.conf", "a 1\n")
    main = write(tmp_path / "main.conf", "include {z,a}.conf\n")
    diag = Diagnostics()
    assert shape(read_file(str(main), diag)) == ["z 1", "a 1"]


def test_include_matching_nothing_is_a_warning(tmp_path: Path) -> None:
    main = write(tmp_path / "main.conf", "a 1\ninclude /nonexistent/*.conf\nb 2\n")
    diag = Diagnostics()
    nodes = read_file(str(main), diag)
    assert shape(nodes) == ["a 1", "b 2"]
    assert messages(diag, Severity.WARNING) == [
        (f"{main}:2:1", "include: no file matches /nonexistent/*.conf")]
    assert not diag.failed


def test_checked_include_variants_make_it_an_error(tmp_path: Path) -> None:
    main = write(tmp_path / "main.conf", "includea missing.conf\n")
    diag = Diagnostics()
    read_file(str(main), diag)
    assert messages(diag) == [(f"{main}:1:1", "include: no file matches missing.conf")]
    assert diag.failed


def test_include_cycle_is_an_error_naming_the_chain(tmp_path: Path) -> None:
    write(tmp_path / "b.conf", "b 1\ninclude main.conf\n")
    main = write(tmp_path / "main.conf", "a 1\ninclude b.conf\nc 1\n")
    diag = Diagnostics()
    nodes = read_file(str(main), diag)
    assert shape(nodes) == ["a 1", "b 1", "c 1"]
    assert messages(diag) == [(f"{tmp_path}/b.conf:2:1",
                               f"include cycle: {main} -> {tmp_path}/b.conf -> {main}")]


def test_include_depth_is_limited(tmp_path: Path) -> None:
    depth = reader.MAX_INCLUDE_DEPTH + 3
    for level in range(depth):
        write(tmp_path / f"f{level}.conf", f"level {level}\ninclude f{level + 1}.conf\n")
    write(tmp_path / f"f{depth}.conf", "bottom 1\n")
    diag = Diagnostics()
    nodes = read_file(str(tmp_path / "f0.conf"), diag)
    assert len(nodes) == reader.MAX_INCLUDE_DEPTH + 1
    assert len(diag.errors) == 1
    assert "includes nested more than" in diag.errors[0].message


def test_included_directory_and_executable_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub.conf").mkdir(parents=True)
    script = write(tmp_path / "d" / "x.conf", "x 1\n")
    script.chmod(0o755)
    write(tmp_path / "d" / "y.conf", "y 1\n")
    main = write(tmp_path / "main.conf", "include d/*.conf\n")
    diag = Diagnostics()
    assert shape(read_file(str(main), diag)) == ["y 1"]
    assert [m for _, m in messages(diag, Severity.WARNING)] == [
        f"{tmp_path}/d/sub.conf is a directory, not a configuration file",
        f"{tmp_path}/d/x.conf is not a regular non-executable file; keepalived skips it"]


def test_missing_main_file_is_an_error_with_the_path(tmp_path: Path) -> None:
    diag = Diagnostics()
    assert read_file(str(tmp_path / "none.conf"), diag) == []
    assert diag.failed
    assert str(tmp_path / "none.conf") in diag.errors[0].message


# ----- conditional lines -------------------------------------------------------------------

CONDITIONAL = (
    "global_defs {\n"
    "  @main   router_id main_router\n"
    "  @backup router_id backup_router\n"
    "}\n"
    "unicast_peer {\n"
    "  @^main    192.0.2.4\n"
    "  @^backup  192.0.2.5\n"
    "  @main\n"
    "}\n")


def test_conditional_lines_follow_the_config_id() -> None:
    nodes, diag = read(CONDITIONAL, "main")
    assert not diag.problems
    assert shape(nodes) == ["global_defs", ["router_id main_router"],
                            "unicast_peer", ["192.0.2.5"]]
    assert places(nodes)[1] == ("router_id", "k.conf:2:11")
    nodes, _ = read(CONDITIONAL, "other")
    assert shape(nodes) == ["global_defs", [], "unicast_peer", ["192.0.2.4", "192.0.2.5"]]


def test_default_config_id_is_the_short_host_name() -> None:
    host = default_config_id()
    assert host == os.uname().nodename.split(".")[0]
    nodes, _ = read(f"@{host} mine 1\n@^{host} other 1\n", None)
    assert shape(nodes) == ["mine 1"]


def test_conditional_block_start_kept_when_it_matches() -> None:
    nodes, diag = read("@main vrrp_instance V {\n  state MASTER\n}\nafter 1\n", "main")
    assert not diag.problems
    assert shape(nodes) == ["vrrp_instance V", ["state MASTER"], "after 1"]


@pytest.mark.parametrize("text", [
    "@main vrrp_instance V {\n  state MASTER\n  track { a }\n}\nafter 1\n",
    "@main vrrp_instance V\n{\n  state MASTER\n  track { a }\n}\nafter 1\n",
])
def test_conditional_block_start_dropped_skips_the_block_with_a_warning(text: str) -> None:
    nodes, diag = read(text, "backup")
    assert shape(nodes) == ["after 1"]
    assert [p.severity for p in diag.problems] == [Severity.WARNING]
    origin, message = messages(diag)[0]
    assert origin == "k.conf:1:1"
    assert "put '@main' on each line of the block" in message


# ----- definitions ---------------------------------------------------------------------------

def test_definitions_are_substituted_and_split_into_words() -> None:
    nodes, diag = read("$ADDR=192.0.2.1 80\nreal_server $ADDR {\n  weight ${W}\n}\n"
                       "$W=3\nw ${W}x $W,y $W.z\n")
    assert shape(nodes) == ["real_server 192.0.2.1 80", ["weight $W"], "w 3x 3,y $W.z"]
    # Words made by substitution carry the place of the '$'.
    assert places(nodes)[:3] == [("real_server", "k.conf:2:1"), ("192.0.2.1", "k.conf:2:13"),
                                 ("80", "k.conf:2:13")]
    assert places(nodes)[-3:] == [("3x", "k.conf:6:3"), ("3,y", "k.conf:6:9"),
                                  ("$W.z", "k.conf:6:14")]
    # ${W} was used before it was defined.
    assert messages(diag) == [("k.conf:3:10", "${W} is not defined")]


def test_substitution_happens_inside_quotes() -> None:
    nodes, _ = read('$A=one two\nnotify "/bin/x $A y"\n')
    assert nodes[0].args == ["/bin/x one two y"]


def test_substitution_is_done_when_used_not_when_defined() -> None:
    nodes, diag = read("$ADDRESS_BASE=10.2.${ADDRESS_BASE_SUB}\n$ADDRESS_BASE_SUB=0\n"
                       "${ADDRESS_BASE}.100/32\n$ADDRESS_BASE_SUB=10\n${ADDRESS_BASE}.100/32\n")
    assert not diag.problems
    assert shape(nodes) == ["10.2.0.100/32", "10.2.10.100/32"]


def test_definition_can_make_a_conditional_line() -> None:
    text = "$IF_MAIN=@main\n$IF_MAIN priority 240\n@main $P=1\n@^main $P=2\np $P\n"
    assert shape(read(text, "main")[0]) == ["priority 240", "p 1"]
    assert shape(read(text, "backup")[0]) == ["p 2"]


def test_undefined_plain_parameter_is_kept_with_a_warning() -> None:
    nodes, diag = read("notify_master /bin/x $STATE\nscript \"test -f $FILE\"\n")
    assert shape(nodes) == ["notify_master /bin/x $STATE", "script test -f $FILE"]
    # "$FILE" followed by a quote is not a parameter reference for keepalived.
    assert messages(diag) == [("k.conf:1:22", "$STATE is not defined; kept as it is")]
    assert not diag.failed


def test_not_a_definition_when_spaced() -> None:
    nodes, _ = read("$A = one\n")
    assert shape(nodes) == ["$A = one"]


def test_standard_definitions() -> None:
    nodes, diag = read("a ${_INSTANCE} ${_PWD} ${_RANDOM 7 7} x${_HASH}y${_BANG}\n",
                       "node1", filename="/etc/keepalived/k.conf")
    assert not diag.problems
    assert nodes[0].args == ["node1", "/etc/keepalived", "7", "x#y!"]


MULTILINE = (
    "$INSTANCE= \\\n"
    "vrrp_instance VI_${NUM} { \\\n"
    "    interface eth0.${NUM} \\\n"
    "    @high priority 130 \\\n"
    "    @low priority 120 \\\n"
    "    virtual_ipaddress { \\\n"
    "        10.0.${NUM}.254/24 \\\n"
    "    } \\\n"
    "}\n"
    "\n"
    "$NUM=0\n"
    "$INSTANCE\n"
    "$NUM=1\n"
    "$INSTANCE\n")


def test_multiline_definition() -> None:
    nodes, diag = read(MULTILINE, "high")
    assert not diag.problems
    assert shape(nodes) == [
        "vrrp_instance VI_0", ["interface eth0.0", "priority 130",
                               "virtual_ipaddress", ["10.0.0.254/24"]],
        "vrrp_instance VI_1", ["interface eth0.1", "priority 130",
                               "virtual_ipaddress", ["10.0.1.254/24"]]]
    # Lines of a multi-line definition carry their own places in the definition.
    first = nodes[0]
    assert first.origin == "k.conf:2:1"
    assert first.children[1].origin == "k.conf:4:11"
    assert first.children[2].children[0].keyword.origin == "k.conf:7:9"


def test_nested_multiline_definitions() -> None:
    text = ("$RS= \\\n"
            "real_server 192.0.2.${RS_NUM} 80 { \\\n"
            "    weight ${RS_NUM} \\\n"
            "}\n"
            "$VS= \\\n"
            "virtual_server 10.0.${VS_NUM}.4 80 { \\\n"
            "    $RS_NUM=1 \\\n"
            "    $RS \\\n"
            "    $RS_NUM=2 \\\n"
            "    $RS \\\n"
            "}\n"
            "$VS_NUM=7\n"
            "$VS\n")
    nodes, diag = read(text)
    assert not diag.problems
    assert shape(nodes) == ["virtual_server 10.0.7.4 80", [
        "real_server 192.0.2.1 80", ["weight 1"], "real_server 192.0.2.2 80", ["weight 2"]]]


def test_empty_line_ends_a_multiline_definition_as_in_keepalived() -> None:
    nodes, _ = read("$RS= \\\n  kw_a 1 \\\n\n  kw_b 2 \\\n  kw_c 3\nblock {\n  $RS\n}\n")
    assert shape(nodes) == ["kw_b 2", "kw_c 3", "block", ["kw_a 1"]]


def test_multiline_definition_must_end_the_line() -> None:
    nodes, diag = read("$M= \\\n a 1 \\\n b 2\nx $M y\n")
    assert shape(nodes) == ["x $M y"]
    assert messages(diag) == [
        ("k.conf:4:3", "$M is a multi-line definition: it must end the line")]


# ----- ~SEQ and ~LST ---------------------------------------------------------------------------

def test_seq_decimal_and_hex() -> None:
    nodes, diag = read("~SEQ(SUBNET, 0, 3) ip_address 10.0.${SUBNET}.1\n"
                       "~SEQx(S, 0x90, 0x10, 0xc0) ip fe80::20:${S}:1\n"
                       "~SEQ(N, 3) n $N\n"
                       "~SEQ(D, 2, 0) d $D\n")
    assert not diag.problems
    assert shape(nodes) == [
        "ip_address 10.0.0.1", "ip_address 10.0.1.1", "ip_address 10.0.2.1",
        "ip_address 10.0.3.1",
        "ip fe80::20:90:1", "ip fe80::20:a0:1", "ip fe80::20:b0:1", "ip fe80::20:c0:1",
        "n 1", "n 2", "n 3", "d 2", "d 1", "d 0"]
    assert nodes[0].origin == "k.conf:1:20"
    assert nodes[1].args[0].origin == "k.conf:1:31"


def test_nested_seq_and_lst() -> None:
    nodes, diag = read(
        "virtual_ipaddress {\n"
        "  ~SEQx(AD2, 0x90, 0x10, 0xa0) ~SEQx(AD1, 0x12, -1, 0x11) fe81::10:${AD2}:${AD1}\n"
        "}\n"
        "~LST({IP, IP1}, {10,1},{20,4}) ~SEQ(IP2,168,2,170) 192.${IP2}.${IP}.${IP1}\n"
        "~LST(V, a, b) v $V\n")
    assert not diag.problems
    assert shape(nodes) == [
        "virtual_ipaddress", ["fe81::10:90:12", "fe81::10:90:11",
                              "fe81::10:a0:12", "fe81::10:a0:11"],
        "192.168.10.1", "192.170.10.1", "192.168.20.4", "192.170.20.4", "v a", "v b"]


@pytest.mark.parametrize("line", ["~SEQ(X, 1, 0, 5) a", "~SEQ(X) a", "~SEQ X, 1) a",
                                  "~SEQ(X, 1, q) a", "~SEQx(X, -1, 3) a", "~LST(V) a",
                                  "~LST({A}, {1, 2}) a"])
def test_invalid_sequences_are_errors(line: str) -> None:
    nodes, diag = read(line + "\n")
    assert nodes == []
    assert len(diag.errors) == 1
    assert diag.errors[0].origin == "k.conf:1:1"
    assert diag.errors[0].message.startswith(f"invalid {line[:4]} specification")


# ----- pathological input ---------------------------------------------------------------------

def test_growing_definition_is_capped() -> None:
    nodes, diag = read("$A=$A$A\nrouter_id $A\n")
    assert len(diag.errors) == 1
    assert diag.errors[0].origin == "k.conf:2:11"
    assert "longer than 1023" in diag.errors[0].message
    assert len(nodes) == 1


def test_definition_cycle_is_capped() -> None:
    nodes, diag = read("$A=$B\n$B=$A\nrouter_id $A\n")
    assert len(diag.errors) == 1
    assert "keep expanding" in diag.errors[0].message
    assert nodes[0].keyword == "router_id"


def test_exponential_multiline_expansion_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "MAX_EXPANDED_LINES", 5000)
    lines = ["$L0=leaf 1"]
    for level in range(1, 25):
        lines += [f"$L{level}= \\", f"  $L{level - 1} \\", f"  $L{level - 1}"]
    lines.append("$L24")
    started = time.monotonic()
    nodes, diag = read("\n".join(lines) + "\n")
    assert time.monotonic() - started < 10
    assert [p.message for p in diag.errors] == [
        "definitions and ~SEQ/~LST expand to more than 5000 lines; expansion stopped"]
    assert 0 < len(nodes) <= 5001


def test_deep_nesting_is_reported_not_raised() -> None:
    depth = 5000
    nodes, diag = read("a {\n" * depth + "}\n" * depth)
    assert [p.message for p in diag.errors] == [
        f"blocks nested more than {reader.MAX_BLOCK_DEPTH} deep; "
        "the contents of this one are ignored"]
    assert diag.errors[0].origin == f"k.conf:{reader.MAX_BLOCK_DEPTH + 1}:3"
    level, count = nodes, 0
    while level:
        count += 1
        level = level[0].children
    assert count == reader.MAX_BLOCK_DEPTH + 1


def test_nul_and_control_characters_are_errors_with_their_place() -> None:
    nodes, diag = read("router_id a\x00b c\nweight\x01 1\n")
    assert messages(diag) == [
        ("k.conf:1:12", "NUL byte: the rest of the line is ignored"),
        ("k.conf:2:7", "control character U+0001 in the configuration")]
    assert shape(nodes) == ["router_id a", "weight\x01 1"]


def test_huge_line_is_an_error_but_read() -> None:
    nodes, diag = read("router_id " + "a" * 5000 + " b\n")
    assert messages(diag) == [("k.conf:1:1024", "line longer than 1023 bytes; keepalived "
                                                "2.2.7 would cut it into several lines")]
    assert nodes[0].args[1] == "b"


def test_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "k.conf"
    path.write_bytes(b"global_defs {\n  router_id caf\xe9 x\n}\n")
    diag = Diagnostics()
    nodes = read_file(str(path), diag)
    assert messages(diag) == [(f"{path}:2:16", "bytes that are not UTF-8 (0xe9); read as U+FFFD")]
    assert shape(nodes) == ["global_defs", ["router_id caf\ufffd x"]]


def test_garbage_stops_reporting_after_a_limit() -> None:
    _, diag = read("\x01\n" * 1000)
    assert len(diag.errors) == reader.MAX_LEXICAL_PROBLEMS + 1


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('ab $@{}"#!\\~=()^,\n\t\x00_1')), max_size=120))
def test_any_text_is_read_without_raising(text: str) -> None:
    diag = Diagnostics()
    nodes = read_text(text, "fuzz.conf", diag, "a")
    for word, origin in places(nodes):
        assert origin.startswith("fuzz.conf:")
        assert isinstance(word, str)


# ----- real configurations ----------------------------------------------------------------------

SAMPLE_FILES = sorted(glob.glob(f"{SAMPLES}/keepalived.conf.*"))


@pytest.mark.skipif(not SAMPLE_FILES, reason=f"keepalived samples not installed in {SAMPLES}")
@pytest.mark.parametrize("path", SAMPLE_FILES, ids=os.path.basename)
def test_debian_samples_read_without_problems(path: str) -> None:
    diag = Diagnostics()
    nodes = read_file(path, diag, "high")
    assert diag.problems == []
    assert nodes


@pytest.mark.skipif(not os.path.exists(f"{SAMPLES}/keepalived.conf.conditional_conf"),
                    reason="keepalived's conditional_conf sample is not installed")
@pytest.mark.parametrize(("config_id", "namespace", "script", "priority"), [
    ("high", "high", "/etc/keepalived/scripts/check_high_VI_0.sh", "170"),
    ("low", "low", "/etc/keepalived/scripts/check_low_VI_0.sh", "85"),
])
def test_conditional_sample_keeps_what_keepalived_keeps(
        config_id: str, namespace: str, script: str, priority: str) -> None:
    path = f"{SAMPLES}/keepalived.conf.conditional_conf"
    diag = Diagnostics()
    nodes = read_file(path, diag, config_id)
    assert diag.problems == []
    assert shape(nodes) == [
        f"net_namespace {namespace}",
        "vrrp_script check_VI_0", [f"script {script}", "interval 1", "timeout 10",
                                   "rise 3", "fall 3"],
        "vrrp_instance VI_0", ["state BACKUP", "interface eth0", "virtual_router_id 1",
                               f"priority {priority}", "advert_int 12", "version 3",
                               "use_vmac", "track_script", ["check_VI_0"],
                               "track_interface", ["eth3", "eth2 weight 20"],
                               "virtual_ipaddress", ["10.1.0.254/32"]]]
    line = 19 if config_id == "high" else 20
    assert nodes[2].children[3].origin == f"{path}:{line}:{len(config_id) + 3}"
    other = read_file(path, Diagnostics(), "neither")
    assert shape(other)[0] == "vrrp_script check_VI_0"


def big_config(virtual_servers: int, real_servers: int) -> str:
    lines = ["global_defs {", "   router_id LVS_BIG", "}"]
    for v in range(virtual_servers):
        lines += [f"virtual_server 10.{v // 250}.{v % 250}.1 80 {{", "    delay_loop 6",
                  "    lb_algo wrr", "    lb_kind DR", "    protocol TCP"]
        for r in range(real_servers):
            lines += [f"    real_server 192.0.{r}.{v % 250} 80 {{", "        weight 1",
                      "        TCP_CHECK {", "            connect_timeout 3", "        }",
                      "    }"]
        lines.append("}")
    return "\n".join(lines) + "\n"


def test_a_large_config_reads_every_statement() -> None:
    # Reading speed is measured in tests/bench (make bench), not asserted here.
    text = big_config(200, 20)
    nodes, diag = read(text)
    assert not diag.problems
    assert len(nodes) == 201 and len(nodes[-1].children) == 24


def test_plain_lines_and_lines_needing_care_read_alike() -> None:
    # Lines with a comment go through the full preprocessing; plain lines take a
    # shortcut. Both must give the same words at the same places.
    text = big_config(3, 3) + "a{b}c {\n\td  e }\n"
    commented = "".join(line + "  # note\n" for line in text.splitlines())
    plain_nodes, plain_diag = read(text)
    careful_nodes, careful_diag = read(commented)
    assert not plain_diag.problems and not careful_diag.problems
    assert shape(plain_nodes) == shape(careful_nodes)
    assert places(plain_nodes) == places(careful_nodes)


def test_self_referencing_multiline_definition_is_stopped() -> None:
    nodes, diag = read("$A= \\\n  x 1 \\\n  $A\n$A\n")
    assert [p.message for p in diag.errors] == [
        f"definitions nested more than {reader.MAX_EXPANSION_DEPTH} deep (does one use "
        "itself?); expansion stopped"]
    assert diag.errors[0].origin == "k.conf:3:3"
    assert shape(nodes) == ["x 1"] * (reader.MAX_EXPANSION_DEPTH + 1)


PIECES = ["$a=", "$b=", "$a", "${a}", "${b}", "${_RANDOM 1 2}", "~SEQ(a,1,3)", "~SEQx(b,3)",
          "~LST({a,b},{1,2},{3})", "@a", "@^a", "@b", "include", "includea", "/nonexistent",
          "{", "}", '"', "x", "y z", " ", "\t", "\\", "\n", "#", "!", "\x00", "é", "$", "=",
          "(", ")", ","]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=60))
def test_any_arrangement_of_keepalived_syntax_is_read_without_raising(pieces: list[str]) -> None:
    diag = Diagnostics()
    nodes = read_text("".join(pieces), "fuzz.conf", diag, "a")
    for _word, origin in places(nodes):
        file, line, col = origin.rsplit(":", 2)
        assert file == "fuzz.conf" and int(line) >= 1 and int(col) >= 1


def test_reading_leaves_no_reference_cycles(tmp_path: Path) -> None:
    # Cycles would keep a dropped tree alive until a full garbage collection, which
    # for a large configuration costs as much as reading it.
    write(tmp_path / "inc.conf", "$B=2\nb $B ${_PWD}\n")
    main = write(tmp_path / "main.conf", MULTILINE + "include inc.conf\n~SEQ(S, 2) s $S\n"
                 "x ${_RANDOM} ${_INSTANCE} ${UNDEFINED} {\n")
    gc.collect()
    gc.disable()
    try:
        diag = Diagnostics()
        nodes = read_file(str(main), diag, "high")
        assert len(nodes) > 4 and diag.errors
        del nodes, diag
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_include_check_makes_include_problems_errors_until_the_file_ends(
        tmp_path: Path) -> None:
    write(tmp_path / "inc.conf", "global_defs {\n  include_check\n}\ninclude none1.conf\n")
    main = write(tmp_path / "main.conf", "include inc.conf\ninclude none2.conf\n")
    diag = Diagnostics()
    nodes = read_file(str(main), diag)
    assert shape(nodes) == ["global_defs", ["include_check"]]
    assert messages(diag, Severity.ERROR) == [
        (f"{tmp_path}/inc.conf:4:1", "include: no file matches none1.conf")]
    assert messages(diag, Severity.WARNING) == [
        (f"{main}:2:1", "include: no file matches none2.conf")]
