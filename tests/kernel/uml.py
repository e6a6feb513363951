"""Run the kernel test tier inside a User-Mode-Linux guest that has the real ip_vs.

The host kernel has no IPVS, so this boots Debian's user-mode-linux kernel (an
ordinary process) with the host's / as its read-only root, loads ip_vs from the
UML modules, runs pytest in there and passes its exit status back.

    .venv/bin/python tests/kernel/uml.py [--uml-timeout SECONDS] [--uml-mem SIZE]
                                          [--uml-max-map-count N] [--uml-help] [pytest args...]
    .venv/bin/python tests/kernel/uml.py [--uml-...] --run PROGRAM [program args...]

Without pytest args it runs `tests/kernel -v`. With `--run`, the guest runs the Python
program PROGRAM (with the venv's Python, LVS_KERNEL_GUEST=1 and tests/kernel on
sys.path) instead of pytest; every word after PROGRAM is its argument.
Paths are relative to the repo root.
UML maps each guest page it hands a guest process into that process's host twin, so a
guest process of more than ~250 MB can exceed the host's vm.max_map_count (65,530 by
default; the guest log says "UML ran out of memory on the host side") and is killed:
``--uml-max-map-count N`` raises the host's limit to N for the run (restored after).
The kernel package is fetched once into the git-ignored `.cache/uml/`; missing host
tools (kmod's modprobe, ipvsadm, iproute2's ip) are installed with apt-get.

Exit status: pytest's (or the --run program's) own; 123 the host could not be
prepared; 124 the guest timed out; 125 the guest could not be set up; 126 the guest
stopped without a status.
Host side: standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "uml"
KERNEL_ROOT = CACHE / "root"
GUEST_INIT = Path(__file__).resolve().with_name("guest-init.sh")
PACKAGE = "user-mode-linux"
DEFAULT_PYTEST_ARGS = ("tests/kernel", "-v")
DEFAULT_TIMEOUT = 20 * 60.0
DEFAULT_MEM = "1G"
# Inside the guest: the repo is read-only, so pytest writes only below /tmp (RAM).
GUEST_BASETEMP = "/tmp/lvs-kernel-pytest"

EXIT_HOST_FAILED = 123
EXIT_TIMEOUT = 124
EXIT_SETUP_FAILED = 125  # written by guest-init.sh
EXIT_NO_STATUS = 126

# Host environment variables the guest's command sees too.
PASSED_ENV = ("PYTEST_ADDOPTS", "LVS_PAIR_SPLIT")  # LVS_PAIR_SPLIT: see pair_lab.py

# command -> Debian package that provides it
HOST_TOOLS = {"modprobe": "kmod", "ipvsadm": "ipvsadm", "ip": "iproute2"}
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Paths reach the guest on the kernel command line and in hostfs mount options,
# where blanks and commas would split them.
PLAIN_PATH = re.compile(r"[A-Za-z0-9_./+@:-]+")


class HostError(Exception):
    """The host could not be prepared to boot the guest."""


@dataclass(frozen=True, slots=True)
class Kernel:
    binary: Path
    modules: Path  # .../modules/<version>
    fetch_seconds: float | None  # None: reused from the cache

    @property
    def version(self) -> str:
        return self.modules.name


@dataclass(frozen=True, slots=True)
class GuestRun:
    status: int
    boot_seconds: float | None  # host clock, until the guest had ip_vs loaded
    guest_uptime_at_ready: float | None
    test_seconds: float | None


def log(message: str) -> None:
    print(f"uml: {message}", flush=True)


def apt_get(args: list[str], cwd: Path | None = None) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run(["apt-get", *args], cwd=cwd, env=env).returncode == 0
    except FileNotFoundError as exc:
        raise HostError("apt-get not found: install the packages by hand") from exc


def apt_get_refreshing(args: list[str], cwd: Path | None = None) -> None:
    """apt-get ARGS; on failure refresh the package lists once and try again."""
    if apt_get(args, cwd):
        return
    log("apt-get update (package lists missing or stale)")
    if not apt_get(["-q", "update"]):
        raise HostError("apt-get update failed")
    if not apt_get(args, cwd):
        raise HostError(f"apt-get {' '.join(args)} failed")


def ensure_host_tools() -> None:
    missing = sorted({
        package for command, package in HOST_TOOLS.items()
        if shutil.which(command, path=SBIN_PATH) is None
    })
    if not missing:
        return
    log(f"installing missing host packages: {' '.join(missing)}")
    apt_get_refreshing(["-q", "-y", "install", *missing])
    still = [c for c in HOST_TOOLS if shutil.which(c, path=SBIN_PATH) is None]
    if still:
        raise HostError(f"still missing after install: {' '.join(still)}")


def cached_kernel(root: Path) -> tuple[Path, Path] | None:
    binary = root / "usr" / "bin" / "linux.uml"
    versions = sorted((root / "usr" / "lib" / "uml" / "modules").glob("*/modules.dep"))
    if not (binary.is_file() and os.access(binary, os.X_OK)) or len(versions) != 1:
        return None
    return binary, versions[0].parent


def ensure_kernel() -> Kernel:
    if found := cached_kernel(KERNEL_ROOT):
        return Kernel(*found, fetch_seconds=None)
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a parallel run may be fetching it right now
        if found := cached_kernel(KERNEL_ROOT):
            return Kernel(*found, fetch_seconds=None)
        started = time.monotonic()
        fetch_kernel()
    found = cached_kernel(KERNEL_ROOT)
    if found is None:
        raise HostError(f"no kernel in {KERNEL_ROOT} after unpacking")
    return Kernel(*found, fetch_seconds=time.monotonic() - started)


def fetch_kernel() -> None:
    log(f"fetching Debian's {PACKAGE} package into {CACHE.relative_to(REPO)}/ (once)")
    with tempfile.TemporaryDirectory(prefix="fetch-", dir=CACHE) as work_name:
        work = Path(work_name)
        # Root downloads into a folder _apt cannot write; skip apt's sandbox warning.
        apt_get_refreshing(
            ["-q", "-o", "APT::Sandbox::User=root", "download", PACKAGE], cwd=work
        )
        debs = sorted(work.glob(f"{PACKAGE}_*.deb"))
        if len(debs) != 1:
            raise HostError(f"apt-get download left {len(debs)} {PACKAGE} .deb files")
        unpacked = work / "root"
        if subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)]).returncode:
            raise HostError(f"dpkg-deb -x {debs[0].name} failed")
        if cached_kernel(unpacked) is None:
            raise HostError(f"{debs[0].name} has no usr/bin/linux.uml or no modules")
        # Only a complete tree ever takes the cache's name.
        shutil.rmtree(KERNEL_ROOT, ignore_errors=True)
        unpacked.rename(KERNEL_ROOT)
        log(f"unpacked {debs[0].name}")


def guest_python() -> Path:
    venv = REPO / ".venv" / "bin" / "python"
    return venv if venv.exists() else Path(sys.executable)


def command_script(pytest_args: list[str], program: list[str] | None = None) -> str:
    """The guest's sh script: pytest with PYTEST_ARGS, or the Python PROGRAM (argv)."""
    args = ["-p", "no:cacheprovider", f"--basetemp={GUEST_BASETEMP}"]
    if sys.stdout.isatty() and not any(a.startswith("--color") for a in pytest_args):
        args.append("--color=yes")
    env = {
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "HYPOTHESIS_STORAGE_DIRECTORY": "/tmp/lvs-kernel-hypothesis",
        "COLUMNS": str(shutil.get_terminal_size().columns),
    }
    for name in PASSED_ENV:
        if name in os.environ:
            env[name] = os.environ[name]
    if program is not None:
        env["PYTHONPATH"] = f"{REPO}:{Path(__file__).resolve().parent}"
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    if program is not None:
        argv = [str(guest_python()), *program]
    else:
        argv = [str(guest_python()), "-m", "pytest", *args, *pytest_args]
    return (
        f"cd {shlex.quote(str(REPO))} || exit {EXIT_SETUP_FAILED}\n"
        f"{exports}exec {shlex.join(argv)}\n"
    )


def session_members(session: int) -> list[int]:
    """Pids of the processes still in the session the guest was started in."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state ppid pgrp session ...
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 3 and int(fields[3]) == session:
            members.append(int(entry.name))
    return members


def stop_guest(proc: subprocess.Popen[bytes]) -> None:
    """Kill the UML processes this script started: its own session, by pid."""
    if proc.poll() is None:
        # Not reaped yet, so the process group id is still ours.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 5
    while (left := session_members(proc.pid)) and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    if left:
        log(f"warning: UML processes still alive: {left}")


class Streamer:
    """Copies what the guest appends to its output file to our stdout."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def pump(self) -> None:
        with self.path.open("rb") as output:
            output.seek(self.offset)
            while chunk := output.read(65536):
                sys.stdout.buffer.write(chunk)
                self.offset += len(chunk)
        sys.stdout.buffer.flush()


def read_word(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_bytes().decode(errors="replace")
    except FileNotFoundError:
        return "(none)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def boot_guest(kernel: Kernel, pytest_args: list[str], timeout: float, mem: str,
               program: list[str] | None = None) -> GuestRun:
    work = Path(tempfile.mkdtemp(prefix="lvs-uml-"))
    try:
        result = work / "result"
        uml_dir = work / "uml"
        result.mkdir()
        uml_dir.mkdir()
        for path in (REPO, work, kernel.modules, GUEST_INIT):
            if not PLAIN_PATH.fullmatch(str(path)):
                raise HostError(f"path with blanks or commas cannot reach the guest: {path}")
        (result / "command").write_text(command_script(pytest_args, program))
        (result / "output").touch()
        console = work / "console.log"
        argv = [
            str(kernel.binary), f"mem={mem}", f"uml_dir={uml_dir}",
            "root=/dev/root", "rootfstype=hostfs", "rootflags=/", "ro", "quiet",
            "con=null", "con0=null,fd:2", f"init={GUEST_INIT}",
            f"LVS_UML_RESULT={result}", f"LVS_UML_MODULES={kernel.modules}",
        ]
        return watch_guest(argv, work, result, console, timeout)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def watch_guest(
    argv: list[str], work: Path, result: Path, console: Path, timeout: float
) -> GuestRun:
    streamer = Streamer(result / "output")
    started = time.monotonic()
    ready_at: float | None = None
    timed_out = False
    with console.open("wb") as console_out:
        proc = subprocess.Popen(
            argv, cwd=work, stdin=subprocess.DEVNULL, stdout=console_out,
            stderr=console_out, start_new_session=True,
        )
    try:
        while proc.poll() is None:
            streamer.pump()
            if ready_at is None and (result / "ready").exists():
                ready_at = time.monotonic()
            if time.monotonic() - started > timeout:
                timed_out = True
                break
            time.sleep(0.1)
    finally:
        stop_guest(proc)
    ended = time.monotonic()
    streamer.pump()
    uptime = read_word(result / "ready")
    if ready_at is None and uptime is not None:
        ready_at = ended  # got ready and finished between two polls
    status = read_word(result / "status")
    if timed_out:
        code = EXIT_TIMEOUT
        log(f"guest TIMED OUT after {timeout:.0f} s (--uml-timeout); console:\n{tail(console)}")
    elif status is None or not status.isdigit():
        code = EXIT_NO_STATUS
        log(f"guest STOPPED WITHOUT A STATUS (crash?): linux.uml exit code "
            f"{proc.returncode}; console:\n{tail(console)}")
    else:
        code = int(status)
        if code == EXIT_SETUP_FAILED:
            log(f"guest SET-UP FAILED (see guest-init output above); console:\n{tail(console)}")
    return GuestRun(
        status=code,
        boot_seconds=None if ready_at is None else ready_at - started,
        guest_uptime_at_ready=None if uptime is None else float(uptime),
        test_seconds=None if ready_at is None else ended - ready_at,
    )


MAX_MAP_COUNT = Path("/proc/sys/vm/max_map_count")


@contextlib.contextmanager
def host_max_map_count(wanted: int | None):
    """The host's vm.max_map_count at least ``wanted`` while the guest runs."""
    before = int(MAX_MAP_COUNT.read_text()) if wanted else 0
    if not wanted or before >= wanted:
        yield
        return
    try:
        MAX_MAP_COUNT.write_text(f"{wanted}\n")
    except OSError as exc:
        raise HostError(f"cannot raise vm.max_map_count to {wanted}: {exc}") from None
    log(f"host vm.max_map_count {before} -> {wanted} for this run")
    try:
        yield
    finally:
        MAX_MAP_COUNT.write_text(f"{before}\n")


def parse_args(argv: list[str]) -> tuple[float, str, list[str], list[str] | None, int | None]:
    """(timeout, mem, pytest args, program argv or None, host vm.max_map_count)."""
    timeout, mem, rest = DEFAULT_TIMEOUT, DEFAULT_MEM, []
    max_map_count: int | None = None
    program: list[str] | None = None
    items = iter(argv)
    for arg in items:
        if arg == "--run":
            program = list(items)
            if not program:
                sys.exit("uml: --run needs a program (a path relative to the repo root)")
            break
        name, eq, value = arg.partition("=")
        if name in ("--uml-timeout", "--uml-mem", "--uml-max-map-count"):
            if not eq:
                value = next(items, "")
            if name == "--uml-timeout":
                try:
                    timeout = float(value)
                except ValueError:
                    sys.exit(f"uml: --uml-timeout needs seconds, got {value!r}")
            elif name == "--uml-max-map-count":
                if not value.isdigit():
                    sys.exit(f"uml: --uml-max-map-count needs a number, got {value!r}")
                max_map_count = int(value)
            else:
                mem = value
        elif arg == "--uml-help":
            print(__doc__)
            sys.exit(0)
        else:
            rest.append(arg)
    if program is not None and rest:
        sys.exit(f"uml: pytest arguments and --run do not mix: {shlex.join(rest)}")
    return timeout, mem, rest or list(DEFAULT_PYTEST_ARGS), program, max_map_count


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def main(argv: list[str]) -> int:
    started = time.monotonic()
    timeout, mem, pytest_args, program, max_map_count = parse_args(argv)
    # A plain kill of this script should still take the guest down with it.
    signal.signal(signal.SIGTERM, interrupt)
    try:
        ensure_host_tools()
        kernel = ensure_kernel()
        fetched = ("reused cache" if kernel.fetch_seconds is None
                   else f"fetched in {kernel.fetch_seconds:.1f} s")
        what = (f"python {shlex.join(program)}" if program is not None
                else f"pytest {shlex.join(pytest_args)}")
        log(f"booting UML {kernel.version} ({fetched}), mem={mem}, timeout {timeout:.0f} s: "
            f"{what}")
        with host_max_map_count(max_map_count):
            run = boot_guest(kernel, pytest_args, timeout, mem, program)
    except HostError as exc:
        log(f"cannot prepare the host: {exc}")
        return EXIT_HOST_FAILED
    except KeyboardInterrupt:
        log("interrupted; guest stopped")
        return 130
    uptime = ("" if run.guest_uptime_at_ready is None
              else f" (guest uptime {run.guest_uptime_at_ready:.1f} s)")
    log(f"boot {seconds(run.boot_seconds)}{uptime}, "
        f"{'program' if program is not None else 'tests'} {seconds(run.test_seconds)}, "
        f"total {seconds(time.monotonic() - started)}; exit status {run.status}")
    return run.status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
