"""ScriptRunner: LVS notify/quorum scripts run in the background as keepalived runs them
(the command line split as written, no arguments added), bounded by a timeout, each
problem logged with the script's place in the configuration, never raised.
(Running as another user: tests/netns/test_notify.py.)"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import time
from pathlib import Path

import pytest

from director.config.model import GlobalDefs, Script
from director.notify import ScriptRunner

ME = pwd.getpwuid(os.geteuid()).pw_name
AS_ME = GlobalDefs(script_user=ME)  # no user switch, whoever runs the tests


def recorder(tmp_path: Path) -> tuple[Path, Path]:
    """A script that writes each of its arguments on a line of `out`."""
    out = tmp_path / "args"
    script = tmp_path / "record.sh"
    script.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > {out}\n')
    script.chmod(0o755)
    return script, out


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "director.notify"]


def gone(pid: int, within: float = 3.0) -> bool:
    """Whether process `pid` is gone (or a zombie) within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


async def test_the_command_line_is_split_as_written_and_nothing_is_added(tmp_path) -> None:
    script, out = recorder(tmp_path)
    runner = ScriptRunner(AS_ME)
    runner.launch(Script(command=f"{script} 'two words' \"192.0.2.11\" 80"))
    await runner.close(timeout=10)
    assert out.read_text().splitlines() == ["two words", "192.0.2.11", "80"]


async def test_extra_arguments_follow_the_command_line(tmp_path) -> None:
    script, out = recorder(tmp_path)
    runner = ScriptRunner(AS_ME)
    runner.launch(Script(command=f"{script} first"), "UP", "x y")
    await runner.close(timeout=10)
    assert out.read_text().splitlines() == ["first", "UP", "x y"]


async def test_launch_does_not_wait_for_the_script(tmp_path) -> None:
    runner = ScriptRunner(AS_ME)
    started = time.monotonic()
    runner.launch(Script(command="/bin/sleep 0.5"))
    assert time.monotonic() - started < 0.3
    assert runner.running == 1
    await runner.close(timeout=10)
    assert runner.running == 0


async def test_a_failing_script_is_logged_with_its_place_and_output(caplog) -> None:
    caplog.set_level(logging.INFO, logger="director.notify")
    runner = ScriptRunner(AS_ME)
    runner.launch(Script(command="/bin/sh -c 'echo first; echo oops >&2; exit 3'",
                         origin="t.conf:7:9"))
    await runner.close(timeout=10)
    assert messages(caplog)[-1] == ("notify script '/bin/sh -c 'echo first; echo oops >&2; "
                                    "exit 3'' (t.conf:7:9) exited with status 3: \"oops\"")


async def test_a_script_that_overruns_is_killed_with_its_group(tmp_path, caplog) -> None:
    pidfile = tmp_path / "child"
    runner = ScriptRunner(AS_ME, timeout=0.3)
    started = time.monotonic()
    runner.launch(Script(command=f"/bin/sh -c 'sleep 30 & echo $! > {pidfile}; wait'",
                         origin="t.conf:3:5"))
    await runner.close(timeout=10)
    assert time.monotonic() - started < 5
    assert gone(int(pidfile.read_text()))
    assert messages(caplog)[-1].endswith(
        "(t.conf:3:5) timed out after 0.3 s (process group killed)")


async def test_close_kills_what_is_still_running(tmp_path, caplog) -> None:
    pidfile = tmp_path / "pid"
    runner = ScriptRunner(AS_ME)
    runner.launch(Script(command=f"/bin/sh -c 'echo $$ > {pidfile}; exec sleep 30'"))
    deadline = time.monotonic() + 5
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    started = time.monotonic()
    await runner.close(timeout=0.2)
    assert time.monotonic() - started < 2
    assert gone(int(pidfile.read_text()))
    assert runner.running == 0
    assert "killed 1 notify script(s) still running at shutdown" in messages(caplog)


async def test_close_waits_for_scripts_that_finish_in_time(tmp_path) -> None:
    done = tmp_path / "done"
    runner = ScriptRunner(AS_ME)
    runner.launch(Script(command=f"/bin/sh -c 'sleep 0.2; touch {done}'"))
    await runner.close()  # CLOSE_TIMEOUT: 1 s
    assert done.exists()


async def test_refusals_are_logged_not_raised(tmp_path, caplog) -> None:
    runner = ScriptRunner(AS_ME)
    runner.launch(Script(command="/bin/true", user="no-such-user-h6", origin="t.conf:1:1"))
    runner.launch(Script(command='/bin/echo "unterminated', origin="t.conf:2:1"))
    runner.launch(Script(command=str(tmp_path / "missing"), origin="t.conf:3:1"))
    await runner.close(timeout=10)
    assert sorted(messages(caplog)) == sorted([
        "notify script '/bin/true' (t.conf:1:1) not run: script user 'no-such-user-h6' "
        "does not exist",
        "notify script '/bin/echo \"unterminated' (t.conf:2:1) not run: bad command line: "
        "missing closing \"",
        f"notify script '{tmp_path}/missing' (t.conf:3:1) not run: cannot run "
        f"{tmp_path}/missing: No such file or directory",
    ])


@pytest.mark.skipif(os.geteuid() != 0, reason="script security applies to root")
async def test_script_security_refuses_a_world_writable_script_for_root(tmp_path,
                                                                       caplog) -> None:
    script, out = recorder(tmp_path)
    script.chmod(0o757)
    runner = ScriptRunner(GlobalDefs(script_user="root", enable_script_security=True))
    runner.launch(Script(command=str(script), origin="t.conf:4:1"))
    await runner.close(timeout=10)
    assert not out.exists()
    assert messages(caplog) == [
        f"notify script '{script}' (t.conf:4:1) not run: script security: {script} is "
        f"writable by everyone; refusing to run {script} with root privileges"]
    script.chmod(0o755)
    runner = ScriptRunner(GlobalDefs(script_user="root", enable_script_security=True))
    runner.launch(Script(command=f"{script} ok"))
    await runner.close(timeout=10)
    assert out.read_text() == "ok\n"


def test_launch_without_an_event_loop_logs_and_returns(caplog) -> None:
    ScriptRunner(AS_ME).launch(Script(command="/bin/true", origin="t.conf:5:1"))
    assert messages(caplog) == ["notify script '/bin/true' (t.conf:5:1) not run"]


async def test_nothing_runs_once_closing(caplog) -> None:
    runner = ScriptRunner(AS_ME)
    await runner.close()
    runner.launch(Script(command="/bin/true"))
    assert runner.running == 0
    assert messages(caplog) == ["notify script '/bin/true' not run: the director is stopping"]


async def test_the_number_of_running_scripts_is_bounded(caplog) -> None:
    runner = ScriptRunner(AS_ME, max_running=2)
    for _ in range(3):
        runner.launch(Script(command="/bin/sleep 5"))
    assert runner.running == 2
    assert messages(caplog) == [
        "notify script '/bin/sleep 5' not run: 2 scripts are already running"]
    await runner.close(timeout=0)
    assert runner.running == 0
