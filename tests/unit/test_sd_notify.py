"""sd_notify over $NOTIFY_SOCKET (a path or an abstract name), and the systemd unit in
conf/: its command lines are ones our parser accepts, and so are the children's."""

from __future__ import annotations

import configparser
import os
import shlex
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from director.cli.main import _parser
from director.sd_notify import Notifier, message, socket_address
from director.supervisor import CHECKERS, VRRP, child_argv

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "conf" / "lvs-director.service"


def fields(datagram: bytes) -> dict[str, str]:
    lines = datagram.decode().splitlines()
    return dict(line.split("=", 1) for line in lines)


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(2)
        yield path, sock


def test_ready_reaches_the_socket(listener):
    path, sock = listener
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready("running: vrrp pid 7")
    assert fields(sock.recv(4096)) == {"READY": "1", "STATUS": "running: vrrp pid 7"}


def test_reloading_carries_the_monotonic_time(listener):
    path, sock = listener
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert Notifier(path).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    got = fields(sock.recv(4096))
    assert got["RELOADING"] == "1"
    assert before <= int(got["MONOTONIC_USEC"]) <= after


def test_stopping_and_status(listener):
    path, sock = listener
    notifier = Notifier(path)
    notifier.stopping()
    notifier.status("two\nlines")
    assert fields(sock.recv(4096)) == {"STOPPING": "1"}
    assert fields(sock.recv(4096)) == {"STATUS": "two lines"}


def test_abstract_socket_names():
    name = f"@lvs-director-test-{uuid.uuid4().hex}"
    assert socket_address(name) == b"\0" + name[1:].encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(socket_address(name))
        sock.settimeout(2)
        assert Notifier(name).ready()
        assert fields(sock.recv(4096)) == {"READY": "1"}


def test_without_notify_socket_nothing_is_sent():
    notifier = Notifier.from_environment({})
    assert not notifier.enabled
    assert notifier.ready() is False


def test_a_dead_socket_is_reported_once_and_never_raised(tmp_path: Path):
    errors: list[str] = []
    notifier = Notifier(str(tmp_path / "gone"), on_error=errors.append)
    assert notifier.ready() is False
    assert notifier.status("x") is False
    assert len(errors) == 1 and str(tmp_path / "gone") in errors[0]


def test_message_format():
    assert message(READY=1, STATUS="a b") == b"READY=1\nSTATUS=a b\n"


# ---------------------------------------------------------------- the unit file


def unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, delimiters=("=",),
                                          comment_prefixes=("#", ";"),
                                          inline_comment_prefixes=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def command(key: str) -> list[str]:
    """The unit's command line as systemd runs it ($DIRECTOR_ARGS expanded)."""
    name, _, value = unit()["Service"]["Environment"].partition("=")
    assert name == "DIRECTOR_ARGS"
    extra = shlex.split(value)
    return [word for arg in shlex.split(unit()["Service"][key])
            for word in (extra if arg == "$DIRECTOR_ARGS" else [arg])]


def test_unit_is_type_notify_and_stops_through_the_parent():
    service = unit()["Service"]
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["KillMode"] == "mixed"
    assert service["RuntimeDirectory"] == "lvs-director"
    caps = service["CapabilityBoundingSet"].split()
    assert "CAP_NET_ADMIN" in caps and "CAP_NET_RAW" in caps
    assert {"AF_NETLINK", "AF_INET", "AF_INET6"} <= set(service["RestrictAddressFamilies"].split())


def test_unit_exec_start_is_a_director_run_our_parser_accepts():
    argv = command("ExecStart")
    assert os.path.basename(argv[0]) == "director"
    options = _parser().parse_args(argv[1:])
    assert options.command == "run"
    assert not (options.vrrp_only or options.checkers_only)  # the supervisor
    assert options.state_dir == "/run/lvs-director"
    assert options.config.startswith("/etc/")


def test_unit_exec_reload_is_director_reload():
    argv = command("ExecReload")
    options = _parser().parse_args(argv[1:])
    assert options.command == "reload"
    assert options.state_dir == "/run/lvs-director"


def test_unit_api_examples_are_flags_run_accepts():
    commented = [line.lstrip("# ").split() for line in UNIT.read_text().splitlines()
                 if line.lstrip("# ").startswith("--api-")]
    assert len(commented) == 3
    base = command("ExecStart")[1:]
    for words in commented:
        options = _parser().parse_args([*base, *words])
        assert getattr(options, words[0][2:].replace("-", "_")) == words[1]


@pytest.mark.parametrize("role", [VRRP, CHECKERS])
def test_children_command_lines_carry_the_parents_options(role: str):
    parent = _parser().parse_args(["run", "-f", "/etc/x.conf", "-i", "dirA", "--strict",
                                   "--dry-run", "--keep-ipvs", "--log-level", "debug",
                                   "--input-format", "keepalived",
                                   "--api-listen", "127.0.0.1:9180"])
    argv = child_argv(role, parent, "/run/lvs-director", python="/usr/bin/python3")
    assert argv[:3] == ["/usr/bin/python3", "-m", "director.cli.main"]
    child = _parser().parse_args(argv[3:])
    assert child.supervised and child.command == "run"
    assert (child.vrrp_only, child.checkers_only) == (role == VRRP, role == CHECKERS)
    assert (child.config, child.config_id, child.strict, child.dry_run) == (
        "/etc/x.conf", "dirA", True, True)
    assert (child.log_level, child.input_format, child.state_dir) == (
        "debug", "keepalived", "/run/lvs-director")
    assert child.keep_ipvs == (role == CHECKERS)
    assert not child.memory_ipvs
    assert child.api_listen is None  # the API is the parent's


@pytest.mark.parametrize("role", [VRRP, CHECKERS])
def test_memory_ipvs_goes_to_the_checkers_child_only_and_is_no_dry_run(role: str):
    parent = _parser().parse_args(["run", "-f", "/etc/x.conf", "--memory-ipvs"])
    child = _parser().parse_args(child_argv(role, parent, "/run/lvs-director")[3:])
    assert child.memory_ipvs == (role == CHECKERS)
    assert not child.dry_run
