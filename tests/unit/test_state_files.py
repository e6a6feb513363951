"""The running director's state files: atomic JSON writes, status.json with its age,
drains.json, owned.json (ServiceKeys round-trip exactly) and the pid file that keeps two
directors off one state directory."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from ipaddress import ip_address
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from director import state_files
from director.ipvs.table import Protocol, ServiceKey
from director.pool import RealServerId
from director.state_files import (
    StateFileError,
    is_director,
    read_drains,
    read_owned,
    read_pid,
    read_status,
    remove_pid,
    running_pid,
    write_drains,
    write_json_atomic,
    write_owned,
    write_pid,
    write_status,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------- atomic writes


def test_write_json_atomic_creates_the_directory_and_leaves_no_temporary(tmp_path) -> None:
    old = os.umask(0o077)
    try:
        state = tmp_path / "run" / "lvs-director"
        write_json_atomic(str(state / "x.json"), {"a": [1, 2]})
    finally:
        os.umask(old)
    assert json.loads((state / "x.json").read_text()) == {"a": [1, 2]}
    assert mode(state) == 0o755 and mode(state / "x.json") == 0o644
    assert os.listdir(state) == ["x.json"]


def test_a_rewrite_replaces_the_file_whole(tmp_path) -> None:
    path = tmp_path / "x.json"
    write_json_atomic(str(path), {"n": 1})
    inode = path.stat().st_ino
    write_json_atomic(str(path), {"n": 2})
    assert json.loads(path.read_text()) == {"n": 2}
    assert path.stat().st_ino != inode  # renamed over, never written in place
    assert sorted(os.listdir(tmp_path)) == ["x.json"]


def test_a_failed_write_names_the_file_and_leaves_nothing(tmp_path) -> None:
    path = tmp_path / "x.json"
    with pytest.raises(StateFileError, match=r"x\.json: cannot write"):
        write_json_atomic(str(path), {"bad": {1, 2}})  # a set is not JSON
    assert os.listdir(tmp_path) == []


def test_a_state_directory_that_cannot_be_made_is_an_error(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateFileError, match="cannot create the state directory"):
        write_status(str(blocker / "state"), {})


# ---------------------------------------------------------------- status.json


def test_status_round_trips_with_version_and_time(tmp_path) -> None:
    before = time.time()
    write_status(str(tmp_path), {"pid": 42, "config": "/etc/k.conf", "virtual_servers": []})
    status = read_status(str(tmp_path), max_age=60)
    assert status["version"] == 1 and status["pid"] == 42
    assert before <= status["written_at"] <= time.time()


def test_a_stale_status_is_an_error(tmp_path) -> None:
    write_status(str(tmp_path), {"written_at": time.time() - 100})
    assert read_status(str(tmp_path))["version"] == 1  # no max_age: any age
    with pytest.raises(StateFileError, match=r"status\.json: written 100 s ago \(more than "
                                             r"30 s\): the director is not running"):
        read_status(str(tmp_path), max_age=30)


@pytest.mark.parametrize(("text", "problem"), [
    (None, "no status file"),
    ("{", "not valid JSON (line 1, column 2"),
    ("[]", "expected a JSON object"),
    ('{"version": 2, "written_at": 1}', "unsupported version 2"),
    ('{"written_at": 1}', "unsupported version None"),
    ('{"version": 1}', "'written_at' is missing or not a number"),
    ('{"version": 1, "written_at": "now"}', "'written_at' is missing or not a number"),
])
def test_bad_status_files_are_errors_naming_the_file(tmp_path, text, problem) -> None:
    if text is not None:
        (tmp_path / "status.json").write_text(text)
    with pytest.raises(StateFileError) as error:
        read_status(str(tmp_path))
    assert str(error.value).startswith(f"{tmp_path}/status.json: ")
    assert problem in str(error.value)


def test_an_unreadable_status_file_is_an_error(tmp_path) -> None:
    (tmp_path / "status.json").mkdir()
    with pytest.raises(StateFileError, match="cannot read: Is a directory"):
        read_status(str(tmp_path))


# ---------------------------------------------------------------- drains.json


DRAINS = frozenset({RealServerId("[192.0.2.1]:TCP:80", "192.0.2.11", 80),
                    RealServerId("FWM 7", "192.0.2.12", 0),
                    RealServerId("[2001:db8::1]:TCP:443", "2001:db8::11", 443)})


def test_drains_round_trip_in_the_shared_schema(tmp_path) -> None:
    assert read_drains(str(tmp_path)) == frozenset()  # no file: no drains
    write_drains(str(tmp_path), DRAINS)
    assert read_drains(str(tmp_path)) == DRAINS
    data = json.loads((tmp_path / "drains.json").read_text())
    assert data["version"] == 1
    assert {"virtual_server": "FWM 7", "address": "192.0.2.12", "port": 0} in data["drains"]


def test_addresses_in_drains_are_read_in_their_canonical_form(tmp_path) -> None:
    (tmp_path / "drains.json").write_text(json.dumps({"version": 1, "drains": [
        {"virtual_server": "[2001:db8::1]:TCP:80", "address": "2001:DB8:0::11", "port": 80}]}))
    assert read_drains(str(tmp_path)) == {
        RealServerId("[2001:db8::1]:TCP:80", "2001:db8::11", 80)}


@pytest.mark.parametrize(("drains", "problem"), [
    ("nope", "'drains' is missing or not a list"),
    (["x"], "drains[0]: expected an object, got str"),
    ([{"address": "192.0.2.1"}], "drains[0]: 'virtual_server' is missing"),
    ([{"virtual_server": "v", "address": 7}], "drains[0]: 'address' is missing"),
    ([{"virtual_server": "v", "address": "192.0.2.300"}], "'192.0.2.300' is not an IP"),
    ([{"virtual_server": "v", "address": "192.0.2.1", "port": 70000}],
     "port 70000 is not a port number"),
    ([{"virtual_server": "v", "address": "192.0.2.1", "port": True}],
     "port True is not a port number"),
])
def test_bad_drains_files_are_errors_at_the_entry(tmp_path, drains, problem) -> None:
    (tmp_path / "drains.json").write_text(json.dumps({"version": 1, "drains": drains}))
    with pytest.raises(StateFileError) as error:
        read_drains(str(tmp_path))
    assert str(error.value).startswith(f"{tmp_path}/drains.json: ")
    assert problem in str(error.value)


# ---------------------------------------------------------------- owned.json


KEYS = {
    ServiceKey(socket.AF_INET, Protocol.TCP, ip_address("192.0.2.1"), 80),
    ServiceKey(socket.AF_INET, Protocol.UDP, ip_address("192.0.2.1"), 53),
    ServiceKey(socket.AF_INET6, Protocol.SCTP, ip_address("2001:db8::1"), 0),
    ServiceKey(socket.AF_INET, fwmark=7),
    ServiceKey(socket.AF_INET6, fwmark=7),
}


def test_owned_services_round_trip_exactly(tmp_path) -> None:
    assert read_owned(str(tmp_path)) == set()
    write_owned(str(tmp_path), KEYS)
    assert read_owned(str(tmp_path)) == KEYS
    data = json.loads((tmp_path / "owned.json").read_text())
    assert {"family": "inet6", "protocol": None, "address": None, "port": 0,
            "fwmark": 7} in data["services"]


service_keys = st.one_of(
    st.builds(lambda a, p, port: ServiceKey(socket.AF_INET, p, a, port),
              st.ip_addresses(v=4), st.sampled_from(Protocol), st.integers(0, 65535)),
    st.builds(lambda a, p, port: ServiceKey(socket.AF_INET6, p, a, port),
              st.ip_addresses(v=6), st.sampled_from(Protocol), st.integers(0, 65535)),
    st.builds(ServiceKey, st.sampled_from([socket.AF_INET, socket.AF_INET6]),
              fwmark=st.integers(1, 2**32 - 1)),
)


@given(st.sets(service_keys, max_size=8))
def test_any_service_keys_round_trip(keys) -> None:
    for key in keys:
        assert state_files.service_key_of(state_files.service_key_data(key)) == key


@pytest.mark.parametrize(("entry", "problem"), [
    ({"family": "ipx"}, "family 'ipx' is not inet or inet6"),
    ({"family": ["inet"]}, "family ['inet'] is not inet or inet6"),
    ({"family": "inet", "protocol": "ICMP"}, "unknown protocol 'ICMP'"),
    ({"family": "inet", "address": "2001:db8::1"}, "2001:db8::1 is not of family inet"),
    ({"family": "inet", "address": "x"}, "'x' is not an IP address"),
    ({"family": "inet", "fwmark": -1}, "fwmark -1 is out of range"),
])
def test_bad_owned_entries_are_errors(tmp_path, entry, problem) -> None:
    (tmp_path / "owned.json").write_text(json.dumps({"version": 1, "services": [entry]}))
    with pytest.raises(StateFileError) as error:
        read_owned(str(tmp_path))
    assert str(error.value).startswith(f"{tmp_path}/owned.json: services[0]: ")
    assert problem in str(error.value)


# ---------------------------------------------------------------- director.pid


def test_is_director_knows_how_directors_are_started() -> None:
    assert is_director(["/usr/bin/python3", "/usr/local/bin/director", "run", "-f", "x"])
    assert is_director(["director", "run"])
    assert is_director(["/venv/bin/python", "-m", "director.cli.main", "run"])
    assert is_director(["/venv/bin/python3", "-X", "dev", "-m", "director", "run"])
    assert is_director(["/venv/bin/python3", "/venv/bin/director", "run"])
    assert not is_director(["/venv/bin/python3", "/venv/bin/lvsadm", "director"])
    assert not is_director(["/venv/bin/python3", "-m", "directory"])
    assert not is_director(["/usr/bin/python3", "-m", "pytest"])
    assert not is_director(["/usr/sbin/keepalived", "-f", "/etc/director"])
    assert not is_director(["sleep", "30"])


def test_the_pid_file_holds_this_process(tmp_path) -> None:
    assert read_pid(str(tmp_path)) is None
    write_pid(str(tmp_path))
    assert read_pid(str(tmp_path)) == os.getpid()
    assert mode(tmp_path / "director.pid") == 0o644
    write_pid(str(tmp_path))  # again (after a reload): fine
    assert remove_pid(str(tmp_path))
    assert not (tmp_path / "director.pid").exists()
    assert not remove_pid(str(tmp_path))


def test_a_stale_pid_file_is_replaced(tmp_path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    (tmp_path / "director.pid").write_text(f"{gone.pid}\n")
    assert running_pid(str(tmp_path)) is None
    write_pid(str(tmp_path))
    assert read_pid(str(tmp_path)) == os.getpid()


def test_a_pid_reused_by_another_program_is_not_a_director(tmp_path) -> None:
    other = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / "director.pid").write_text(f"{other.pid}\n")
        assert running_pid(str(tmp_path)) is None
        write_pid(str(tmp_path))
        assert read_pid(str(tmp_path)) == os.getpid()
    finally:
        other.kill()
        other.wait()


def test_a_second_director_is_refused(tmp_path) -> None:
    program = tmp_path / "bin" / "director"  # a live process started as `director`
    program.parent.mkdir()
    program.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(30)\n")
    program.chmod(0o755)
    stand_in = subprocess.Popen([str(program)])
    deadline = time.monotonic() + 5
    while "director" not in " ".join(state_files.process_argv(stand_in.pid) or []):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        assert is_director(state_files.process_argv(stand_in.pid) or [])
        (tmp_path / "director.pid").write_text(f"{stand_in.pid}\n")
        assert running_pid(str(tmp_path)) == stand_in.pid
        with pytest.raises(StateFileError, match=(
                rf"director\.pid: another director \(pid {stand_in.pid}\) is running with "
                rf"state directory {tmp_path}; stop it or use another --state-dir")):
            write_pid(str(tmp_path))
        assert read_pid(str(tmp_path)) == stand_in.pid
        assert not remove_pid(str(tmp_path))  # not ours: left alone
        assert read_pid(str(tmp_path)) == stand_in.pid
    finally:
        stand_in.kill()
        stand_in.wait()
    assert running_pid(str(tmp_path)) is None


def test_a_garbled_pid_file_reads_as_none(tmp_path) -> None:
    (tmp_path / "director.pid").write_text("not a pid\n")
    assert read_pid(str(tmp_path)) is None
    write_pid(str(tmp_path))
    assert read_pid(str(tmp_path)) == os.getpid()
