"""MISC_CHECK running real programs as root and as `nobody`: exit statuses,
misc_dynamic weights, scripts that hang (with children, or ignoring SIGTERM), print
megabytes or die of a signal, and script security. Every probe is checked for leaked
file descriptors, and no process of a killed script's group may survive."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from checkers.misc import (
    DEFAULT_SCRIPT_USER,
    KILL_GRACE,
    OUTPUT_TAIL,
    TERM_GRACE,
    ScriptIdentity,
    resolve_identity,
    run_script,
)
from checkers.probe import ProbeContext, ProbeResult, run_probe
from checkers.spec import MiscCheck

ROOT = ProbeContext()
SECURE_ROOT = ProbeContext(enable_script_security=True, script_user="root")
NOBODY = pwd.getpwnam("nobody")


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def stat_fields(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, pgrp, ...),
    None when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def processes() -> Iterator[tuple[int, list[str]]]:
    """(pid, `stat_fields`) of every process now in /proc."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := stat_fields(entry.name)) is not None:
            yield int(entry.name), fields


def zombie_children() -> list[int]:
    return [pid for pid, fields in processes()
            if fields[0] == "Z" and int(fields[1]) == os.getpid()]


def alive(pid: int) -> bool:
    fields = stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def group_members(pgid: int) -> list[int]:
    """Live processes (not zombies) in process group `pgid`."""
    return [pid for pid, fields in processes()
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X")]


async def probe(spec: MiscCheck, context: ProbeContext = ROOT) -> ProbeResult:
    """Run the probe; no file descriptor and no zombie may be left behind."""
    before = fds()
    result = await run_probe(spec, context)
    assert fds() == before, "the probe leaked a file descriptor"
    assert zombie_children() == []
    return result


@pytest.fixture
def scripts() -> Iterator[Path]:
    """A directory only root can change, that `nobody` can read (not under pytest's
    tmp dir, which is root's alone)."""
    where = Path(tempfile.mkdtemp(prefix="lvsd-misc-", dir="/tmp"))
    where.chmod(0o755)
    try:
        yield where
    finally:
        shutil.rmtree(where)


def script(where: Path, name: str, body: str, mode: int = 0o755) -> str:
    path = where / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(mode)
    return str(path)


def misc(*argv: str, **options) -> MiscCheck:
    return MiscCheck(misc_path=argv, misc_timeout=options.pop("misc_timeout", 10.0),
                     **options)


# ---------------------------------------------------------------- exit statuses


async def test_exit_statuses(scripts: Path) -> None:
    check = script(scripts, "check", 'echo "checked $1"; exit "$1"')
    up = await probe(misc(check, "0"))
    assert (up.ok, up.weight, up.reason) == (True, None, f"{check} exited with status 0")
    for status in ("1", "2", "255"):
        down = await probe(misc(check, status))
        assert (down.ok, down.weight, down.reason) == (
            False, None, f'{check} exited with status {status}: "checked {status}"')


async def test_misc_dynamic_weights(scripts: Path) -> None:
    check = script(scripts, "check", 'exit "$1"')
    expected = {"0": (True, None), "1": (False, None), "2": (True, 0), "12": (True, 10),
                "255": (True, 253)}
    for status, (ok, weight) in expected.items():
        result = await probe(misc(check, status, misc_dynamic=True))
        assert (result.ok, result.weight) == (ok, weight), status
        tail = f": weight {weight}" if weight is not None else ""
        assert result.reason == f"{check} exited with status {status}{tail}"


async def test_arguments_reach_the_program_unsplit(scripts: Path) -> None:
    check = script(scripts, "check", '[ "$#" = 2 ] && [ "$1" = "two words" ] || exit 1')
    assert (await probe(misc(check, "two words", "x"))).ok
    assert not (await probe(misc(check, "two", "words", "x"))).ok


async def test_death_by_a_signal(scripts: Path) -> None:
    check = script(scripts, "check", "echo dying; kill -KILL $$")
    result = await probe(misc(check))
    assert (result.ok, result.reason) == (
        False, f'{check} killed by signal 9 (SIGKILL): "dying"')


async def test_programs_that_cannot_run(scripts: Path) -> None:
    assert (await probe(misc("/nonexistent/check"))).reason == (
        "cannot run /nonexistent/check: No such file or directory")
    plain = script(scripts, "plain", "exit 0", mode=0o644)
    assert (await probe(misc(plain, user="nobody"))).reason == (
        f"cannot run {plain} as nobody: Permission denied")
    assert (await probe(misc(plain, user="no-such-user"))).reason == (
        "script user 'no-such-user' does not exist")
    assert (await probe(MiscCheck())).reason == "no misc_path to run"


async def test_a_program_found_in_path() -> None:
    result = await probe(misc("true"))
    assert (result.ok, result.reason) == (True, "true exited with status 0")
    result = await probe(misc("sh", "-c", "exit 3"), SECURE_ROOT)
    assert (result.ok, result.reason) == (False, "sh exited with status 3")


# ---------------------------------------------------------------- timeouts


async def test_a_hanging_script_and_its_children_are_killed(scripts: Path) -> None:
    check = script(scripts, "check", f'sleep 300 & echo $! > {scripts}/child\n'
                                     f'echo $$ > {scripts}/leader\necho waiting\nwait')
    started = time.monotonic()
    result = await probe(misc(check, misc_timeout=0.5))
    elapsed = time.monotonic() - started
    assert (result.ok, result.reason) == (
        False, f'{check} timed out after 0.5 s (process group killed): "waiting"')
    assert 0.5 <= elapsed < 0.5 + TERM_GRACE
    leader = int((scripts / "leader").read_text())
    child = int((scripts / "child").read_text())
    assert group_members(leader) == []
    assert not alive(child)


async def test_a_script_ignoring_sigterm_gets_sigkill(scripts: Path) -> None:
    check = script(scripts, "check", f"trap '' TERM\necho $$ > {scripts}/leader\n"
                                     f"sleep 300 &\nsleep 300")
    started = time.monotonic()
    result = await probe(misc(check, misc_timeout=0.5))
    elapsed = time.monotonic() - started
    assert result.reason == f"{check} timed out after 0.5 s (process group killed)"
    assert 0.5 + TERM_GRACE <= elapsed < 0.5 + TERM_GRACE + KILL_GRACE
    assert group_members(int((scripts / "leader").read_text())) == []


async def test_misc_timeout_defaults_to_delay_loop(scripts: Path) -> None:
    check = script(scripts, "check", "sleep 300")
    result = await probe(MiscCheck(misc_path=(check,), delay_loop=0.4))
    assert result.reason == f"{check} timed out after 0.4 s (process group killed)"


async def test_children_left_after_a_normal_exit_do_not_hold_the_probe(scripts: Path) -> None:
    check = script(scripts, "check", f"sleep 300 &\necho $! > {scripts}/child\nexit 0")
    started = time.monotonic()
    result = await probe(misc(check))
    assert result.ok and time.monotonic() - started < 1.0
    os.kill(int((scripts / "child").read_text()), signal.SIGKILL)  # ours to clean up


# ---------------------------------------------------------------- output


async def test_megabytes_of_output_cost_no_memory(scripts: Path) -> None:
    size = 50_000_000
    check = script(scripts, "check",
                   f"head -c {size} /dev/zero | tr '\\0' x\necho\necho 'last words'\nexit 1")
    tracemalloc.start()
    try:
        run = await run_script((check,), timeout=30.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (run.status, run.output_bytes) == (1, size + len("\nlast words\n"))
    assert len(run.output_tail) == OUTPUT_TAIL
    assert run.output_tail.endswith(b"x\nlast words\n")
    assert peak < 2 * 1024 * 1024, f"peak Python memory {peak} bytes"
    result = await probe(misc(check))
    assert result.reason == f'{check} exited with status 1: "last words"'


# ---------------------------------------------------------------- users


async def test_running_as_nobody(scripts: Path) -> None:
    ids = script(scripts, "ids", 'echo "$(id -u) $(id -g) $(id -G)"')
    identity = resolve_identity(MiscCheck(user="nobody"), ROOT)
    run = await run_script((ids,), timeout=10.0, identity=identity)
    groups = " ".join(str(g) for g in os.getgrouplist("nobody", NOBODY.pw_gid))
    assert run.output_tail == f"{NOBODY.pw_uid} {NOBODY.pw_gid} {groups}\n".encode()
    as_root = await run_script((ids,), timeout=10.0, identity=ScriptIdentity())
    assert as_root.output_tail.startswith(b"0 0")
    check = script(scripts, "check", f'[ "$(id -u)" = {NOBODY.pw_uid} ]')
    assert (await probe(misc(check, user="nobody"))).ok
    assert (await probe(misc(check), ProbeContext(script_user="nobody"))).ok
    assert not (await probe(misc(check))).ok  # as root


async def test_a_group_of_its_own(scripts: Path) -> None:
    ids = script(scripts, "ids", 'echo "$(id -u) $(id -g)"')
    identity = resolve_identity(MiscCheck(user="nobody", group="daemon"), ROOT)
    run = await run_script((ids,), timeout=10.0, identity=identity)
    assert run.output_tail == f"{NOBODY.pw_uid} {identity.gid}\n".encode()
    assert identity.gid != NOBODY.pw_gid


# ---------------------------------------------------------------- script security


async def test_script_security_refuses_what_others_can_change(scripts: Path) -> None:
    open_to_all = script(scripts, "open", "exit 0", mode=0o757)
    assert (await probe(misc(open_to_all), SECURE_ROOT)).reason == (
        f"script security: {open_to_all} is writable by everyone; refusing to run "
        f"{open_to_all} with root privileges")
    # keepalived only warns without enable_script_security.
    assert (await probe(misc(open_to_all), ROOT)).ok
    # ... and does not check scripts run by an unprivileged user.
    assert (await probe(misc(open_to_all, user="nobody"), SECURE_ROOT)).ok

    owned = script(scripts, "owned", "exit 0")
    os.chown(owned, NOBODY.pw_uid, NOBODY.pw_gid)
    assert (await probe(misc(owned), SECURE_ROOT)).reason == (
        f"script security: {owned} is owned by uid {NOBODY.pw_uid}, not root; refusing to "
        f"run {owned} with root privileges")

    shared = scripts / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    inside = script(shared, "check", "exit 0")
    assert (await probe(misc(inside), SECURE_ROOT)).reason == (
        f"script security: {shared} is writable by everyone; refusing to run {inside} "
        f"with root privileges")
    shared.chmod(0o1777)  # sticky, like /tmp: allowed
    assert (await probe(misc(inside), SECURE_ROOT)).ok

    safe = script(scripts, "safe", "exit 0")
    assert (await probe(misc(safe), SECURE_ROOT)).ok


async def test_script_security_follows_symbolic_links(scripts: Path) -> None:
    shared = scripts / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    target = script(shared, "real", "exit 0")
    link = scripts / "link"
    link.symlink_to(target)
    assert (await probe(misc(str(link)), SECURE_ROOT)).reason == (
        f"script security: {shared} is writable by everyone; refusing to run {link} with "
        f"root privileges")


async def test_script_security_needs_an_explicit_root(scripts: Path) -> None:
    try:
        pwd.getpwnam(DEFAULT_SCRIPT_USER)
        pytest.skip(f"{DEFAULT_SCRIPT_USER} exists here")
    except KeyError:
        pass
    safe = script(scripts, "safe", "exit 0")
    result = await probe(misc(safe), ProbeContext(enable_script_security=True))
    assert (result.ok, result.reason) == (False, (
        "no script user: neither user nor global script_user is set and 'keepalived_script' "
        "does not exist; enable_script_security does not run scripts as root unless "
        "script_user root is set"))
    assert (await probe(misc(safe, user="root"),
                        ProbeContext(enable_script_security=True))).ok


async def test_a_set_uid_root_script_is_checked_even_for_nobody(scripts: Path) -> None:
    shared = scripts / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    setuid = script(shared, "setuid", "exit 0", mode=0o755)
    os.chmod(setuid, 0o755 | stat.S_ISUID)
    assert (await probe(misc(setuid, user="nobody"), SECURE_ROOT)).reason == (
        f"script security: {shared} is writable by everyone; refusing to run {setuid} "
        f"with root privileges")
