"""keepalived-like dumps: the files' content from the merged view, written atomically,
and the signals that ask for them (keepalived's SIGUSR1, SIGUSR2 and JSON signal)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from director import dumps
from director.state_files import StateFileError
from tests.unit.test_api import (
    RS1,
    RS2,
    SERVICE,
    VS_ID,
    FakeReader,
    daemon_info,
    snapshot,
    write_state,
)


def test_signals_are_keepalived_s():
    assert dumps.DUMP_SIGNALS[signal.SIGUSR1] == "data"
    assert dumps.DUMP_SIGNALS[signal.SIGUSR2] == "stats"
    keepalived = shutil.which("keepalived") or "/usr/sbin/keepalived"
    if not os.path.exists(keepalived):
        pytest.skip("keepalived is not installed (`make deps` installs it)")
    json_signal = int(subprocess.run([keepalived, "--signum=JSON"], capture_output=True,
                                     text=True, check=True).stdout.strip())
    assert dumps.DUMP_SIGNALS[json_signal] == "json"


def test_data_dump(tmp_path: Path):
    write_state(tmp_path)
    path = dumps.write_dump("data", str(tmp_path), daemon_info())
    assert path == str(tmp_path / "director.data")
    text = Path(path).read_text()
    assert "------< VRRP Topology >------\n VRRP Instance = VI_1\n" in text
    assert "   State = MASTER\n" in text
    assert "   Effective priority = 150\n" in text
    assert f"     {'192.0.2.10'}\n" in text
    assert " VRRP Sync Group = G1, MASTER\n" in text
    assert f" Virtual server = {VS_ID}\n" in text
    assert f"   Real server = {RS2}:80\n     Health = DOWN\n" in text
    assert "     Reason = connection refused\n" in text
    assert " Child = checkers\n" in text and "   Restarts = 2\n" in text
    assert "dry run" in text  # no kernel counters, and why
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"


def test_stats_dump_with_kernel_counters(tmp_path: Path):
    write_state(tmp_path)
    daemon = daemon_info(dry_run=False)
    path = dumps.write_dump("stats", str(tmp_path), daemon,
                            reader=FakeReader(snapshot()))  # type: ignore[arg-type]
    text = Path(path).read_text()
    assert text.startswith("VRRP Instance: VI_1\n  Advertisements:\n    Received: 7\n"
                           "    Sent: 42\n")
    assert "    TTL: 3\n" in text
    assert f"  Service: {SERVICE}\n    Connections: 120\n" in text
    assert f"  Real Server: {RS1}:80\n" in text
    assert "      Active connections: 5\n" in text


def test_json_dump_is_the_view(tmp_path: Path):
    write_state(tmp_path)
    path = dumps.write_dump("json", str(tmp_path), daemon_info())
    view = json.loads(Path(path).read_text())
    assert view["vrrp"]["instances"][0]["state"] == "MASTER"
    assert view["virtual_servers"][0]["real_servers"][1]["up"] is False


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path: Path):
    write_state(tmp_path)
    target = tmp_path / "director.data"
    target.write_text("old dump\n")
    before = os.stat(target).st_ino
    dumps.write_dump("data", str(tmp_path), daemon_info())
    assert os.stat(target).st_ino != before  # replaced by rename, never rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "director.data", "status.json", "vrrp-status.json"]


def test_unknown_kind_and_unwritable_directory(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown dump kind 'xml'"):
        dumps.write_dump("xml", str(tmp_path), daemon_info())
    (tmp_path / "a-file").write_text("")
    with pytest.raises(StateFileError, match="a-file"):
        dumps.write_dump("data", str(tmp_path / "a-file" / "state"), daemon_info())
