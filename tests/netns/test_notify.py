"""ScriptRunner running notify scripts as other users (needs root): the script's own
user and group, else global_defs script_user/script_group; enable_script_security
refusing to run as root without a script user."""

from __future__ import annotations

import grp
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from director.config.model import GlobalDefs, Script
from director.notify import ScriptRunner

NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory `nobody` can write to (pytest's tmp dir is root's alone): sticky and
    open to all, like /tmp."""
    where = Path(tempfile.mkdtemp(prefix="lvsd-notify-", dir="/tmp"))
    where.chmod(0o1777)
    try:
        yield where
    finally:
        shutil.rmtree(where)


def identity_script(where: Path) -> str:
    """A command that writes `uid gid` of whoever runs it to where/NAME (its argument)."""
    script = where / "whoami.sh"
    script.write_text('#!/bin/sh\necho "$(id -u) $(id -g)" > "$(dirname "$0")/$1"\n')
    script.chmod(0o755)
    return str(script)


async def test_the_scripts_own_user_and_group(shared: Path) -> None:
    command = identity_script(shared)
    daemon = grp.getgrnam("daemon").gr_gid
    runner = ScriptRunner(GlobalDefs(script_user="root"))
    runner.launch(Script(command=f"{command} own", user="nobody"))
    runner.launch(Script(command=f"{command} grouped", user="nobody", group="daemon"))
    runner.launch(Script(command=f"{command} global"))
    await runner.close(timeout=10)
    assert (shared / "own").read_text() == f"{NOBODY.pw_uid} {NOBODY.pw_gid}\n"
    assert (shared / "grouped").read_text() == f"{NOBODY.pw_uid} {daemon}\n"
    assert (shared / "global").read_text() == "0 0\n"


async def test_global_script_user(shared: Path) -> None:
    command = identity_script(shared)
    runner = ScriptRunner(GlobalDefs(script_user="nobody", script_group="daemon"))
    runner.launch(Script(command=f"{command} out"))
    await runner.close(timeout=10)
    daemon = grp.getgrnam("daemon").gr_gid
    assert (shared / "out").read_text() == f"{NOBODY.pw_uid} {daemon}\n"


async def test_script_security_without_a_script_user_runs_nothing_as_root(
        shared: Path, caplog) -> None:
    try:
        pwd.getpwnam("keepalived_script")
        pytest.skip("the keepalived_script user exists here: scripts would run as it")
    except KeyError:
        pass
    command = identity_script(shared)
    runner = ScriptRunner(GlobalDefs(enable_script_security=True))
    runner.launch(Script(command=f"{command} out", origin="t.conf:9:5"))
    await runner.close(timeout=10)
    assert not (shared / "out").exists()
    assert [r.getMessage() for r in caplog.records if r.name == "director.notify"] == [
        f"notify script '{command} out' (t.conf:9:5) not run: no script user: neither user "
        "nor global script_user is set and 'keepalived_script' does not exist; "
        "enable_script_security does not run scripts as root unless script_user root is set"]
