"""`director status` against a live status API (TCP and unix socket, with a token) and
`director dump` against a process answering the dump signals with the real dump
writer."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from director.api import ApiSettings, start_api
from director.cli import status as status_cli
from director.cli.main import main as director_main
from tests.unit.test_api import RS1, RS2, VS_ID, daemon_info, short_dir, write_state

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def serving(settings: ApiSettings, state_dir: Path) -> Iterator[str]:
    """The API in a thread of its own; yields its first URL."""
    loop = asyncio.new_event_loop()
    started: dict = {}
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            started["api"] = await start_api(settings, str(state_dir), daemon_info)
            ready.set()

        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(5), "the API did not start"
    try:
        yield started["api"].urls[0]
    finally:
        asyncio.run_coroutine_threadsafe(started["api"].close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_status_table_over_tcp_with_a_token(tmp_path: Path, capsys):
    write_state(tmp_path)
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    with serving(ApiSettings(listen=("127.0.0.1", 0), token="t0ken"), tmp_path) as url:
        assert director_main(["status", "--url", url, "--token-file", str(token)]) == 0
        out = capsys.readouterr().out
        assert director_main(["status", "--url", url]) == 1
        err = capsys.readouterr().err
        token.write_text("other\n")
        assert director_main(["status", "--url", url, "--token-file", str(token)]) == 1
        refused = capsys.readouterr().err
    lines = out.splitlines()
    assert "VRRP instances (1)" in lines
    header = lines.index("VRRP instances (1)") + 1
    assert lines[header].split() == ["INSTANCE", "STATE", "PRIO", "MASTER", "VRID",
                                     "INTERFACE", "VIPS"]
    assert lines[header + 1].split() == ["VI_1", "MASTER", "150", "192.0.2.1", "51", "eth0",
                                         "192.0.2.10"]
    assert any(line.strip().startswith(VS_ID) for line in lines)
    rs1 = next(line.split() for line in lines if line.strip().startswith(f"{RS1}:80"))
    rs2 = next(line.split() for line in lines if line.strip().startswith(f"{RS2}:80"))
    assert rs1[1:3] == ["UP", "3"] and rs2[1:3] == ["DOWN", "0"]
    assert rs2[-2:] == ["connection", "refused"]
    assert "children: vrrp pid" in out and "2 restart(s)" in out
    assert "the API needs a bearer token: give --token-file" in err
    assert "refused this one" in refused


def test_status_json_over_a_unix_socket(tmp_path: Path, capsys):
    import json

    write_state(tmp_path)
    with short_dir() as directory:
        path = directory / "api.sock"
        with serving(ApiSettings(socket_path=str(path)), tmp_path):
            assert director_main(["status", "--socket", str(path), "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["virtual_servers"][0]["id"] == VS_ID


def test_status_errors_are_clear(tmp_path: Path, capsys):
    assert director_main(["status"]) == 1
    assert "give --url http://HOST:PORT or --socket PATH" in capsys.readouterr().err
    assert director_main(["status", "--socket", str(tmp_path / "none.sock")]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the director's API at unix socket" in err
    assert "No such file or directory" in err
    assert director_main(["status", "--url", "ftp://x"]) == 1
    assert "expected http://HOST:PORT" in capsys.readouterr().err
    assert director_main(["status", "--url", "http://127.0.0.1:1",
                          "--token-file", str(tmp_path / "nope")]) == 1
    assert "--token-file" in capsys.readouterr().err


FAKE_DAEMON = textwrap.dedent("""
    import signal, sys, time
    from director import dumps
    from tests.unit.test_api import daemon_info
    state_dir = sys.argv[1]
    def answer(number, frame):
        dumps.write_dump(dumps.DUMP_SIGNALS[number], state_dir, daemon_info())
    for number in dumps.DUMP_SIGNALS:
        signal.signal(number, answer)
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.1)
""")


@pytest.fixture
def fake_daemon(tmp_path: Path, monkeypatch) -> Iterator[subprocess.Popen]:
    """A process answering the dump signals with the real writer; `director dump`
    finds it as the running director of tmp_path."""
    write_state(tmp_path)
    process = subprocess.Popen([sys.executable, "-c", FAKE_DAEMON, str(tmp_path)],
                               stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        monkeypatch.setattr(status_cli, "running_pid",
                            lambda state_dir: process.pid if state_dir == str(tmp_path)
                            else None)
        yield process
    finally:
        process.kill()
        process.wait(5)


@pytest.mark.parametrize(("kind", "expected"), [
    ("data", "------< VRRP Topology >------"),
    ("stats", "VRRP Instance: VI_1\n  Advertisements:"),
    ("json", '"virtual_servers": ['),
])
def test_dump_signals_the_director_and_prints_the_new_file(
        tmp_path: Path, capsys, fake_daemon, kind: str, expected: str):
    old = tmp_path / f"director.{kind}"
    old.write_text("an old dump\n")
    started = time.monotonic()
    assert director_main(["dump", "--kind", kind, "--state-dir", str(tmp_path)]) == 0
    assert time.monotonic() - started < 3
    out = capsys.readouterr().out
    assert expected in out and "an old dump" not in out
    assert old.read_text() == out


def test_dump_without_a_director(tmp_path: Path, capsys):
    assert director_main(["dump", "--state-dir", str(tmp_path)]) == 1
    assert f"no director is running with state directory {tmp_path}" \
        in capsys.readouterr().err


def test_dump_that_is_never_written(tmp_path: Path, capsys, monkeypatch):
    sleeper = subprocess.Popen([sys.executable, "-c",
                                "import signal, time\n"
                                "signal.signal(signal.SIGUSR2, signal.SIG_IGN)\n"
                                "print('ready', flush=True)\ntime.sleep(30)"],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert sleeper.stdout is not None and sleeper.stdout.readline() == "ready\n"
        monkeypatch.setattr(status_cli, "running_pid", lambda state_dir: sleeper.pid)
        assert director_main(["dump", "--kind", "stats", "--state-dir", str(tmp_path),
                              "--timeout", "0.5"]) == 1
        assert "did not write" in capsys.readouterr().err
    finally:
        sleeper.kill()
        sleeper.wait(5)
