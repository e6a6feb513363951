"""`director reload` against a stand-in director: a process named `director` that
writes the children's two reload record files and counts its SIGHUPs, as the
supervised children do (tests/netns/test_daemon.py runs it against the real daemon)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from director.cli.main import main
from director.cli.reload import NOT_RUNNING, REFUSED, TIMED_OUT, daemon_options

VALID = """
virtual_server 203.0.113.10 80 {
    delay_loop 1
    lb_algo wrr
    lb_kind DR
    protocol TCP
}
"""
BROKEN = VALID.replace("lb_algo wrr", "lb_algo nosuch").replace("delay_loop 1",
                                                                  "delay_loop -1")

# The stand-in: SIGHUP -> reload.count + 1 in both record files (ok unless
# FAKE_REFUSE is set).
FAKE = '''
import json, os, signal, sys, time
state = sys.argv[sys.argv.index("--state-dir") + 1]
os.makedirs(state, exist_ok=True)
with open(os.path.join(state, "director.pid"), "w") as f:
    f.write(f"{os.getpid()}\\n")
refuse = bool(os.environ.get("FAKE_REFUSE"))
hups = [0]
signal.signal(signal.SIGHUP, lambda *_: hups.__setitem__(0, hups[0] + 1))
def write():
    for name, ops in (("checkers-reload.json", 3), ("vrrp-reload.json", None)):
        record = {"count": hups[0], "at": time.time(), "ok": not refuse if hups[0] else None,
                  "seconds": 0.0125, "problems": ["x.conf:1:1: refused"] if refuse else []}
        if ops is not None:
            record["operations"] = ops
        path = os.path.join(state, name)
        with open(path + ".tmp", "w") as f:
            json.dump({"pid": os.getpid(), "reload": record}, f)
        os.replace(path + ".tmp", path)
while True:
    write()
    time.sleep(0.05)
'''


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    path = tmp_path / "keepalived.conf"
    path.write_text(VALID)
    return path


@pytest.fixture
def daemon(tmp_path: Path, conf: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    script = tmp_path / "director"
    script.write_text(FAKE)
    state = tmp_path / "state"

    def start(**env: str) -> subprocess.Popen[bytes]:
        # a relative -f: `director reload` resolves it from the daemon's directory
        proc = subprocess.Popen([sys.executable, str(script), "run", "-f", conf.name,
                                 "--state-dir", str(state)], cwd=tmp_path,
                                env={**os.environ, **env})
        procs.append(proc)
        deadline = time.monotonic() + 10
        while not all((state / name).exists()
                      for name in ("director.pid", "checkers-reload.json", "vrrp-reload.json")):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(5)


def counts(state: Path) -> list[int]:
    return [json.loads((state / name).read_text())["reload"]["count"]
            for name in ("checkers-reload.json", "vrrp-reload.json")]


def test_applied_with_the_daemons_own_config(daemon, tmp_path: Path, conf: Path, capsys):
    proc = daemon()
    assert daemon_options(proc.pid).config == str(conf)
    assert main(["reload", "--state-dir", str(tmp_path / "state")]) == 0
    out = capsys.readouterr().out
    assert "checkers: applied in 0.013 s (3 IPVS operations)" in out
    assert "vrrp: applied in 0.013 s" in out
    assert f"{conf} applied (pid {proc.pid})" in out
    assert counts(tmp_path / "state") == [1, 1]


def test_another_file_is_only_validated(daemon, tmp_path: Path, conf: Path, capsys):
    daemon()
    other = tmp_path / "other.conf"
    other.write_text(BROKEN)
    state = str(tmp_path / "state")
    assert main(["reload", "-f", str(other), "--state-dir", state]) == REFUSED
    err = capsys.readouterr().err
    assert f"{other}:4:13: unknown scheduler 'nosuch'" in err
    assert f"{other}:3:16:" in err  # every problem, each with its place
    assert "NOT valid (2 error(s)" in err
    other.write_text(VALID)
    assert main(["reload", "-f", str(other), "--state-dir", state]) == REFUSED
    assert f"reads {conf}: it was not reloaded" in capsys.readouterr().err
    time.sleep(0.2)
    assert counts(tmp_path / "state") == [0, 0]  # not signalled
    assert main(["reload", "-f", str(conf), "--state-dir", state]) == 0  # its own


def test_no_director_running_validates_only(tmp_path: Path, conf: Path, capsys):
    state = str(tmp_path / "state")
    assert main(["reload", "-f", str(conf), "--state-dir", state]) == NOT_RUNNING
    assert "is valid, but no director is running" in capsys.readouterr().err
    conf.write_text(BROKEN)
    assert main(["reload", "-f", str(conf), "--state-dir", state]) == REFUSED


def test_the_directors_refusal_and_its_problems(daemon, tmp_path: Path, conf: Path,
                                                capsys):
    daemon(FAKE_REFUSE="1")
    conf.write_text(BROKEN)  # the director validates its own file: not loaded here
    assert main(["reload", "--state-dir", str(tmp_path / "state")]) == REFUSED
    captured = capsys.readouterr()
    assert "checkers: FAILED" in captured.out and "vrrp: FAILED" in captured.out
    assert captured.err.count("x.conf:1:1: refused") == 1  # both children's, once
    assert "keeps running its previous configuration" in captured.err
    assert counts(tmp_path / "state") == [1, 1]


def test_no_reload_seen_in_time(daemon, tmp_path: Path, capsys):
    proc = daemon()
    proc.send_signal(signal.SIGSTOP)  # it cannot answer
    try:
        assert main(["reload", "--state-dir", str(tmp_path / "state"),
                     "--timeout", "0.3"]) == TIMED_OUT
    finally:
        proc.send_signal(signal.SIGCONT)
    assert "no reload seen within 0.3 s" in capsys.readouterr().err


def test_no_daemon_running(tmp_path: Path, conf: Path, capsys):
    state = str(tmp_path / "nothing")
    assert main(["reload", "--state-dir", state]) == NOT_RUNNING
    assert "no director running" in capsys.readouterr().err
    assert main(["reload", "--state-dir", state, "-f", str(conf)]) == NOT_RUNNING
    assert "is valid, but no director is running" in capsys.readouterr().err


def test_invalid_config_is_reported_even_without_a_daemon(tmp_path: Path, conf: Path,
                                                          capsys):
    conf.write_text(BROKEN)
    assert main(["reload", "--state-dir", str(tmp_path), "-f", str(conf)]) == REFUSED
    assert "unknown scheduler 'nosuch'" in capsys.readouterr().err


def test_a_stale_pid_file_is_not_a_running_daemon(tmp_path: Path, conf: Path, capsys):
    state = tmp_path / "state"
    state.mkdir()
    (state / "director.pid").write_text(f"{os.getpid()}\n")  # pytest: not a director
    assert main(["reload", "--state-dir", str(state), "-f", str(conf)]) == NOT_RUNNING
