"""Debian's keepalived (2.2.7) run as a reference peer inside a lab namespace.

VRRP only, in the foreground, logging to the console (captured to a file), with pid
files of its own so it never meets a system keepalived. Its pid files are deleted
before each start: after a SIGKILL keepalived refuses to start while the pid in them
still names a process.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from pathlib import Path

from tests.netns.lab import (
    Lab,
    LabError,
    Process,
    pids_in_namespace,
    run,
    terminate_pid,
    wait_until,
)

KEEPALIVED = Path("/usr/sbin/keepalived")
MISSING_REASON = (
    f"{KEEPALIVED} missing: `make test-netns` installs Debian's keepalived "
    "(with nginx, ipvsadm, iproute2)"
)

# Quiets keepalived's script-security warnings in configs the tests write.
GLOBAL_DEFS = "global_defs {\n    script_user root\n    enable_script_security\n}\n"


class KeepalivedPeer:
    """One keepalived daemon in namespace `ns`, started and stopped by the test."""

    def __init__(self, lab: Lab, ns: str, conf: Path, *, config_id: str | None = None,
                 name: str = "keepalived"):
        self.lab = lab
        self.ns = ns
        self.conf = Path(conf)
        self.config_id = config_id
        base = lab.workdir / f"{name}-{ns}"
        self.pidfiles = {role: base.with_name(f"{base.name}.{role}.pid")
                         for role in ("parent", "vrrp", "checkers", "bfd")}
        self.log = base.with_name(f"{base.name}.log")
        self.process: Process | None = None
        self.runs = 0

    def argv(self) -> list[str]:
        p = self.pidfiles
        argv = [str(KEEPALIVED), "-P", "-n", "-l", "-D", "-G", "-f", str(self.conf),
                "-p", str(p["parent"]), "-r", str(p["vrrp"]),
                "-c", str(p["checkers"]), "-b", str(p["bfd"])]
        if self.config_id is not None:
            argv += ["-i", self.config_id]
        return argv

    def start(self) -> KeepalivedPeer:
        if self.process is not None and self.process.alive():
            raise LabError(f"keepalived in {self.ns} is already running")
        for path in self.pidfiles.values():
            path.unlink(missing_ok=True)
        self.runs += 1
        log = self.log if self.runs == 1 else self.log.with_suffix(f".{self.runs}.log")
        self.process = self.lab.spawn(self.ns, *self.argv(), log=log)
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def vrrp_pid(self) -> int | None:
        """The VRRP child's pid, from its pid file (None before it is written)."""
        try:
            return int(self.pidfiles["vrrp"].read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def send_signal(self, sig: int) -> None:
        if self.process is not None:
            self.process.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int | None:
        """Stop the parent (and so its VRRP child); returns the parent's exit code.

        After a SIGKILL of the parent its VRRP child may live on: it is ended too,
        by the pid keepalived wrote, once that pid is confirmed inside our namespace.
        """
        if self.process is None:
            return None
        child = self.vrrp_pid()
        rc = self.process.stop(sig, timeout)
        if child is not None and child in pids_in_namespace(self.ns):
            if sig == signal.SIGKILL:
                terminate_pid(child)
            else:
                try:
                    wait_until(lambda: child not in pids_in_namespace(self.ns), timeout)
                except TimeoutError:
                    terminate_pid(child)
        return rc

    def output(self) -> str:
        return self.process.output() if self.process else ""

    def wait_for_log(self, pattern: str, timeout: float) -> re.Match[str]:
        """Wait until the current run's log matches `pattern` (a regex)."""
        regex = re.compile(pattern)

        def seen() -> re.Match[str] | None:
            if self.process is not None and not self.process.alive():
                raise LabError(f"keepalived exited ({self.process.returncode}) before "
                               f"logging {pattern!r}:\n{self.output()}")
            return regex.search(self.output())

        try:
            return wait_until(seen, timeout, message=f"keepalived log matches {pattern!r}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n--- keepalived log ---\n{self.output()}") from None

    def wait_master(self, instance: str, timeout: float) -> None:
        self.wait_for_log(rf"\({re.escape(instance)}\) Entering MASTER STATE", timeout)


def config_test(ns: str, conf: Path, *, config_id: str | None = None,
                extra: tuple[str, ...] = (), timeout: float = 20.0) -> tuple[int, str]:
    """Run `keepalived -t -f CONF` inside `ns`: (exit code, its messages)."""
    argv = [str(KEEPALIVED), "-t", "-f", str(conf), *extra]
    if config_id is not None:
        argv += ["-i", config_id]
    done = run(ns, *argv, check=False, timeout=timeout)
    return done.returncode, done.stdout + done.stderr


# The `keepalived` fixture: start(node, conf_text_or_path, *, config_id=None, name=...)
KeepalivedFactory = Callable[..., KeepalivedPeer]
