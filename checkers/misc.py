"""MISC_CHECK: run a program; its exit status says whether the real server is up.

As keepalived 2.2.7 does:

- The program (``misc_path``, already split into argv) runs in a session and process
  group of its own, as ``user``/``group`` (else global_defs script_user/script_group,
  else the user ``keepalived_script`` when it exists, else the daemon's own user),
  with the user's supplementary groups and stdin from /dev/null.
- At ``misc_timeout`` (None: delay_loop) its whole process group gets SIGTERM; after
  `TERM_GRACE` seconds SIGKILL (also when the leader died of the SIGTERM, so its
  children go too). That is a failure. The probe returns once the group is gone (or
  `KILL_GRACE` after the SIGKILL): a run never takes longer than misc_timeout +
  TERM_GRACE + KILL_GRACE.
- Exit 0 is success. Without ``misc_dynamic`` any other status is a failure. With it,
  1 is a failure and 2-255 is success setting the weight to status - 2 (0-253).
  Death by a signal is a failure.
- With ``enable_script_security`` a program that would run with root privileges (user
  or group root, or a set-uid/set-gid-root file) is refused when any part of its
  resolved path is not owned by root, or is writable by a non-root group or by
  everyone (a directory with the sticky bit, like /tmp, is fine). And when no user is
  configured and ``keepalived_script`` does not exist, scripts are refused rather than
  run as root: set ``script_user root`` to allow that explicitly. What runs is then the
  path checked (symbolic links resolved), so swapping a link afterwards changes nothing.

Beyond keepalived, the output (stdout and stderr) is read rather than thrown away: the
last line goes into a failure's reason. It is read as it comes and discarded past a
small tail (`OUTPUT_TAIL` bytes), so a program printing megabytes costs no memory.
Children a program leaves behind after a normal exit are left alone, as keepalived
does; the pipe they may hold is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from checkers.probe import ProbeContext, ProbeResult
from checkers.spec import MiscCheck

DEFAULT_SCRIPT_USER = "keepalived_script"
TERM_GRACE = 2.0   # seconds between SIGTERM and SIGKILL (keepalived's figure)
KILL_GRACE = 2.0   # seconds to wait for the leader after SIGKILL
OUTPUT_TAIL = 4096  # bytes of output kept for the reason
REASON_OUTPUT = 200  # characters of the last output line shown in a reason
_READ_SIZE = 65536
_READS_PER_WAKEUP = 16  # a flood of output cannot hold the loop for long
_DRAIN_READS = 64       # reads after the exit (children may still hold the pipe)
_POLL_INTERVAL = 0.02   # exit polling when pidfd_open is not available


class ScriptRefused(Exception):
    """The program may not or cannot be run; the message says why."""


# ---------------------------------------------------------------- who runs it


@dataclass(frozen=True, slots=True)
class ScriptIdentity:
    """The user a program runs as (None fields: the daemon's own, unchanged)."""

    user: str | None = None
    uid: int | None = None
    gid: int | None = None
    groups: tuple[int, ...] = ()

    @property
    def effective_uid(self) -> int:
        return os.geteuid() if self.uid is None else self.uid

    @property
    def effective_gid(self) -> int:
        return os.getegid() if self.gid is None else self.gid

    @property
    def switches(self) -> bool:
        return self.uid is not None and (self.uid != os.geteuid() or self.gid != os.getegid())

    def describe(self) -> str:
        return self.user or f"uid {self.effective_uid}"


def _lookup(user: str, group: str | None) -> ScriptIdentity:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ScriptRefused(f"script user '{user}' does not exist") from None
    gid = entry.pw_gid
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ScriptRefused(f"script group '{group}' does not exist") from None
    try:
        groups = tuple(os.getgrouplist(user, gid))
    except OSError:
        groups = (gid,)
    return ScriptIdentity(user=user, uid=entry.pw_uid, gid=gid, groups=groups)


class RunsAs(Protocol):
    """Anything that names who runs a script: a MISC_CHECK, a notify script."""

    @property
    def user(self) -> str | None: ...

    @property
    def group(self) -> str | None: ...


def resolve_identity(spec: RunsAs, context: ProbeContext) -> ScriptIdentity:
    """Who runs a script (keepalived's order: its own user, script_user, then
    keepalived_script); raises ScriptRefused."""
    if spec.user is not None:
        return _lookup(spec.user, spec.group)
    if context.script_user is not None:
        return _lookup(context.script_user, context.script_group)
    try:
        return _lookup(DEFAULT_SCRIPT_USER, None)
    except ScriptRefused:
        if context.enable_script_security:
            raise ScriptRefused(
                f"no script user: neither user nor global script_user is set and "
                f"'{DEFAULT_SCRIPT_USER}' does not exist; enable_script_security does not "
                f"run scripts as root unless script_user root is set") from None
    return ScriptIdentity()


# ---------------------------------------------------------------- script security

Lstat = Callable[[str], os.stat_result]


def unsafe_component(path: str, lstat: Lstat = os.lstat) -> str | None:
    """Why `path` (absolute, symbolic links resolved) is not safe to run as root, or
    None: keepalived's rule for every component, "/" first - owned by root, and not
    writable by a non-root group or by everyone unless it is a directory with the
    sticky bit; the directories must be directories, the last a regular file."""
    parts = [p for p in path.split("/") if p]
    prefixes = ["/"] + ["/" + "/".join(parts[:i + 1]) for i in range(len(parts))]
    for index, component in enumerate(prefixes):
        last = index == len(prefixes) - 1
        try:
            st = lstat(component)
        except OSError as error:
            return f"{component}: {os.strerror(error.errno or 0)}"
        mode = st.st_mode
        if (not last and not stat.S_ISDIR(mode)) or (last and not stat.S_ISREG(mode)):
            return f"{component} is not a {'directory' if not last else 'regular file'}"
        if st.st_uid != 0:
            return f"{component} is owned by uid {st.st_uid}, not root"
        if stat.S_ISDIR(mode) and mode & stat.S_ISVTX:
            continue
        if mode & stat.S_IWOTH:
            return f"{component} is writable by everyone"
        if st.st_gid != 0 and mode & stat.S_IWGRP:
            return f"{component} is writable by group {st.st_gid}"
    return None


def runs_privileged(identity: ScriptIdentity, st: os.stat_result) -> bool:
    """Whether the program would run with root privileges: as user or group root, or
    from a set-uid-root / set-gid-root executable."""
    mode = st.st_mode
    setuid_root = st.st_uid == 0 and bool(mode & stat.S_IXUSR) and bool(mode & stat.S_ISUID)
    setgid_root = st.st_gid == 0 and bool(mode & stat.S_IXGRP) and bool(mode & stat.S_ISGID)
    return (identity.effective_uid == 0 or identity.effective_gid == 0
            or setuid_root or setgid_root)


def secure_executable(program: str, identity: ScriptIdentity) -> str:
    """The real path to execute `program` (argv[0]) with script security on; raises
    ScriptRefused when it must not run. Running the resolved path means a symbolic link
    swapped after the check cannot change what runs."""
    if "/" not in program:
        found = shutil.which(program)
        if found is None:
            raise ScriptRefused(f"cannot run {program}: not found in PATH")
        program = found
    real = os.path.realpath(program)
    try:
        st = os.stat(real)
    except OSError as error:
        raise ScriptRefused(f"cannot run {program}: {os.strerror(error.errno or 0)}") from None
    if runs_privileged(identity, st):
        problem = unsafe_component(real)
        if problem is not None:
            raise ScriptRefused(f"script security: {problem}; refusing to run {program} "
                                f"with root privileges")
    return real


# ---------------------------------------------------------------- running it


@dataclass(frozen=True, slots=True)
class ScriptRun:
    """How a run ended. Exactly one of: `timed_out`, `signal` set, `status` set."""

    status: int | None = None    # exit status when it exited
    signal: int | None = None    # the signal that ended it (not ours)
    timed_out: bool = False
    output_tail: bytes = b""     # the last OUTPUT_TAIL bytes of its output
    output_bytes: int = 0        # all the output it wrote (read and discarded)
    elapsed: float = 0.0


class _Output:
    """Reads a pipe as it fills, keeping only the tail."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int):
        self.loop = loop
        self.fd = fd
        self.tail = bytearray()
        self.total = 0
        self.eof = False
        os.set_blocking(fd, False)
        loop.add_reader(fd, self.read_some)

    def read_some(self, limit: int = _READS_PER_WAKEUP) -> None:
        for _ in range(limit):
            try:
                chunk = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
                self.loop.remove_reader(self.fd)
                return
            self.total += len(chunk)
            self.tail += chunk
            if len(self.tail) > OUTPUT_TAIL:
                del self.tail[:-OUTPUT_TAIL]

    def close(self) -> None:
        """Take what is already in the pipe (bounded), then close it."""
        if not self.eof:
            self.loop.remove_reader(self.fd)
            self.read_some(_DRAIN_READS)
        os.close(self.fd)


class _Exit:
    """Tells when a child has exited (a zombie, not yet reaped: its pid, and so its
    process group id, cannot be reused while we signal the group)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pid: int):
        self.loop = loop
        self.pid = pid
        self.pidfd: int | None = None
        try:
            self.pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.pidfd = None

    def exited(self) -> bool:
        try:
            found = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return found is not None

    async def wait(self, timeout: float) -> bool:
        """Whether the child exits within `timeout` seconds."""
        if self.exited():
            return True
        try:
            async with asyncio.timeout(timeout):
                if self.pidfd is None:
                    while not self.exited():
                        await asyncio.sleep(_POLL_INTERVAL)
                    return True
                ready = self.loop.create_future()
                self.loop.add_reader(self.pidfd,
                                     lambda: ready.done() or ready.set_result(None))
                try:
                    await ready
                finally:
                    self.loop.remove_reader(self.pidfd)
                return True
        except TimeoutError:
            return self.exited()

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    """Whether a process of group `pgid` is still alive (zombies do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as status:
                fields = status.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


async def _wait_group_gone(pgid: int, timeout: float) -> bool:
    """SIGKILL is delivered asynchronously: wait until the group is empty (bounded)."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while group_alive(pgid):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.05)
    return True


# Children killed by a cancelled probe that had not exited yet: reaped when they do.
_orphans: set[subprocess.Popen[bytes]] = set()
_REAP_INTERVAL = 0.5
_REAP_ATTEMPTS = 1200  # then subprocess's own bookkeeping reaps it on a later Popen


def _reap_later(loop: asyncio.AbstractEventLoop, popen: subprocess.Popen[bytes],
                attempts: int = _REAP_ATTEMPTS) -> None:
    _orphans.add(popen)

    def check(left: int) -> None:
        if popen.poll() is None and left > 0:
            loop.call_later(_REAP_INTERVAL, check, left - 1)
        else:
            _orphans.discard(popen)
    loop.call_later(_REAP_INTERVAL, check, attempts)


async def run_script(argv: tuple[str, ...], *, timeout: float,
                     identity: ScriptIdentity = ScriptIdentity(),
                     executable: str | None = None) -> ScriptRun:
    """Run `argv` once as `identity`; it takes at most `timeout` + `TERM_GRACE` +
    `KILL_GRACE` seconds. Raises ScriptRefused when it cannot be started."""
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    switch: dict[str, object] = {}
    if identity.switches:
        switch = {"user": identity.uid, "group": identity.gid,
                  "extra_groups": list(identity.groups or (identity.gid,))}
    try:
        popen = subprocess.Popen(
            list(argv), executable=executable, stdin=subprocess.DEVNULL, stdout=write_end,
            stderr=write_end, close_fds=True, start_new_session=True, **switch)
    except (OSError, subprocess.SubprocessError) as error:
        os.close(read_end)
        what = f" as {identity.describe()}" if switch else ""
        detail = os.strerror(error.errno) if getattr(error, "errno", None) else str(error)
        raise ScriptRefused(f"cannot run {argv[0]}{what}: {detail}") from None
    finally:
        os.close(write_end)
    output = _Output(loop, read_end)
    child = _Exit(loop, popen.pid)
    done = False
    timed_out = False
    killed_at = 0.0
    try:
        if not await child.wait(timeout):
            timed_out = True
            _signal_group(popen.pid, signal.SIGTERM)
            if not await child.wait(TERM_GRACE):
                _signal_group(popen.pid, signal.SIGKILL)
                killed_at = time.monotonic()
                await child.wait(KILL_GRACE)
        if timed_out and child.exited():
            # The leader is a zombie until reaped below: its group id is still ours.
            _signal_group(popen.pid, signal.SIGKILL)
            killed_at = killed_at or time.monotonic()
        done = child.exited()
    finally:
        child.close()
        output.close()
        if done:
            popen.wait()
        else:  # cancelled, or unkillable: never leave it running, never leave a zombie
            _signal_group(popen.pid, signal.SIGKILL)
            if popen.poll() is None:
                _reap_later(loop, popen)
    if killed_at:
        await _wait_group_gone(popen.pid, killed_at + KILL_GRACE - time.monotonic())
    code = popen.returncode
    return ScriptRun(
        status=code if code is not None and code >= 0 and not timed_out else None,
        signal=-code if code is not None and code < 0 and not timed_out else None,
        timed_out=timed_out or code is None, output_tail=bytes(output.tail),
        output_bytes=output.total, elapsed=time.monotonic() - started)


# ---------------------------------------------------------------- the verdict


def last_output_line(tail: bytes) -> str:
    """The last non-blank line of the output, printable, at most REASON_OUTPUT long
    ("[binary output]" when it is mostly not text)."""
    lines = [line for line in tail.splitlines() if line.strip()]
    if not lines:
        return ""
    text = lines[-1].decode("utf-8", "replace").strip()
    unprintable = sum(not c.isprintable() or c == "\ufffd" for c in text)
    if unprintable * 4 > len(text):
        return "[binary output]"
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= REASON_OUTPUT else text[:REASON_OUTPUT - 3] + "..."


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def misc_verdict(run: ScriptRun, *, dynamic: bool, program: str,
                 timeout: float) -> tuple[bool, int | None, str]:
    """(up, weight or None, reason) for a finished run, keepalived's exit status rule."""
    line = last_output_line(run.output_tail)
    said = f': "{line}"' if line else ""
    if run.timed_out:
        return False, None, (f"{program} timed out after {float(timeout)} s "
                             f"(process group killed){said}")
    if run.signal is not None:
        return False, None, (f"{program} killed by signal {run.signal} "
                             f"({_signal_name(run.signal)}){said}")
    status = run.status if run.status is not None else -1
    if status == 0:
        return True, None, f"{program} exited with status 0"
    if dynamic and 2 <= status <= 255:
        weight = status - 2
        return True, weight, f"{program} exited with status {status}: weight {weight}"
    return False, None, f"{program} exited with status {status}{said}"


async def probe_misc(spec: MiscCheck, context: ProbeContext) -> ProbeResult:
    started = time.monotonic()
    if not spec.misc_path:
        return ProbeResult(False, "no misc_path to run", 0.0)
    program = spec.misc_path[0]
    timeout = spec.misc_timeout if spec.misc_timeout is not None else spec.delay_loop
    try:
        identity = resolve_identity(spec, context)
        executable = (secure_executable(program, identity)
                      if context.enable_script_security else None)
        run = await run_script(spec.misc_path, timeout=timeout, identity=identity,
                               executable=executable)
    except ScriptRefused as refused:
        return ProbeResult(False, str(refused), time.monotonic() - started)
    up, weight, reason = misc_verdict(run, dynamic=spec.misc_dynamic, program=program,
                                      timeout=timeout)
    return ProbeResult(up, reason, time.monotonic() - started, weight=weight)
