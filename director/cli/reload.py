"""`director reload`: reload the running director, and say what it did.

1. SIGHUP to the director named by ``director.pid`` in the state directory. Its
   children load and validate their file (the one it was started with, read from its
   command line) before they change anything, and refuse it with errors.
2. Wait until each child of the running director (VRRP and checkers) has written a new
   reload record; print what each did and how long it took, and every problem they
   found, with its location.

A file the director does not read (-f naming another), or any file while no director
runs, is only validated here, with the director's options (-i, --input-format,
--strict): every problem is printed, and the director is not signalled.

Exit status: 0 applied; 1 refused (invalid configuration, or a child could not apply
it); 4 signalled but no reload seen within --timeout; 7 no director running.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

from director import state_files
from director.child_reload import RECORD_FILES, newer_records, read_record
from director.config.errors import ConfigError
from director.config.load import FORMATS, load_config

REFUSED = 1
TIMED_OUT = 4
NOT_RUNNING = 7
POLL_INTERVAL = 0.05


def add_parser(subparsers: Any) -> None:
    what = "reload the running director (it validates its file first)"
    parser = subparsers.add_parser(
        "reload", help=what, description=what,
        epilog="exit status: 0 applied, 1 refused (problems printed), 4 no reload seen "
               "within --timeout, 7 no director running")
    parser.add_argument("-f", "--config", "--use-file", dest="config", metavar="FILE",
                        help="the running director's configuration (default); "
                             "another file is only validated")
    parser.add_argument("--input-format", choices=FORMATS, default=None,
                        help="configuration format (default: the running director's)")
    parser.add_argument("-i", "--config-id", metavar="ID",
                        help="keep '@ID' lines (default: the running director's)")
    parser.add_argument("--state-dir", default=None, metavar="DIR",
                        help=f"the director's state directory (default: "
                             f"{state_files.DEFAULT_STATE_DIR})")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S",
                        help="seconds to wait for the reload to be applied (default: 30)")
    parser.set_defaults(handler=run_reload)


# ---------------------------------------------------------------- the running director


def daemon_options(pid: int) -> argparse.Namespace | None:
    """The options of `director run` as the process `pid` was started (its config
    path made absolute from its working directory), or None when they cannot be read."""
    argv = state_files.process_argv(pid)
    if argv is None or "run" not in argv[1:]:
        return None
    from director.cli.main import _parser

    words = argv[argv.index("run", 1):]
    try:
        options, _ = _parser().parse_known_args(words)
    except SystemExit:
        return None
    if not os.path.isabs(options.config):
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            return None
        options.config = os.path.join(cwd, options.config)
    return options


def reload_counts(state_dir: str) -> dict[str, int]:
    """The reload count of every running child that has a reload record."""
    counts = {}
    for role in RECORD_FILES:
        record = read_record(state_dir, role)
        if record is not None:
            counts[role] = record["count"]
    return counts


def wait_for_records(state_dir: str, before: dict[str, int],
                     timeout: float) -> dict[str, dict[str, Any]]:
    """The new reload record of each role in `before`, as far as they came in time."""
    deadline = time.monotonic() + timeout
    done: dict[str, dict[str, Any]] = {}
    while True:
        done |= newer_records(state_dir, {r: c for r, c in before.items() if r not in done})
        if len(done) == len(before) or time.monotonic() >= deadline:
            return done
        time.sleep(POLL_INTERVAL)


def describe(role: str, record: dict[str, Any]) -> str:
    seconds = record.get("seconds")
    text = f"{role}: {'applied' if record.get('ok') is not False else 'FAILED'}"
    if isinstance(seconds, int | float):
        text += f" in {seconds:.3f} s"
    operations = record.get("operations")
    if isinstance(operations, int):
        text += f" ({operations} IPVS operation{'s' if operations != 1 else ''})"
    return text


# ---------------------------------------------------------------- the command


def validate(config: str, strict: bool, config_id: str | None, input_format: str) -> bool:
    """Load ``config`` here; print its problems. False when it has errors."""
    try:
        _, warnings = load_config(config, strict=strict, config_id=config_id,
                                  input_format=input_format, cache=None)
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        failed = sum(1 for p in error.problems if p.severity == "error")
        print(f"{config}: configuration is NOT valid ({failed} error(s), "
              f"{len(error.problems) - failed} warning(s)); the director was not "
              f"reloaded", file=sys.stderr)
        return False
    except OSError as error:
        print(f"{config}: cannot read: {error.strerror or error}; the director was not "
              f"reloaded", file=sys.stderr)
        return False
    for warning in warnings:
        print(warning, file=sys.stderr)
    return True


def run_reload(options: argparse.Namespace) -> int:
    state_dir = options.state_dir or state_files.DEFAULT_STATE_DIR
    pid = state_files.running_pid(state_dir)
    running = daemon_options(pid) if pid is not None else None
    config = options.config or (running.config if running is not None else None)
    if config is None:
        print(f"director reload: no director running with state directory {state_dir} "
              f"(and no -f to validate)", file=sys.stderr)
        return NOT_RUNNING
    config_id = options.config_id or (running.config_id if running is not None else None)
    input_format = options.input_format or (running.input_format if running else "auto")
    strict = bool(running.strict) if running is not None else False
    # The running director validates its own file on SIGHUP (both children, before
    # they change anything) and its records carry every problem: loading a large
    # file here too would double the reload's time.
    its_own = running is not None and os.path.realpath(config) == os.path.realpath(
        running.config)
    if not its_own and not validate(config, strict, config_id, input_format):
        return REFUSED
    if pid is None:
        print(f"director reload: {config} is valid, but no director is running with "
              f"state directory {state_dir}", file=sys.stderr)
        return NOT_RUNNING
    if running is not None and not its_own:
        print(f"director reload: {config} is valid, but the running director (pid {pid}) "
              f"reads {running.config}: it was not reloaded", file=sys.stderr)
        return REFUSED

    start = time.monotonic()
    before = reload_counts(state_dir)
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        print(f"director reload: the director (pid {pid}) is gone", file=sys.stderr)
        return NOT_RUNNING
    if not before:
        print(f"director reload: SIGHUP sent to pid {pid}; its status files report no "
              f"reloads, so the outcome is in its log")
        return 0
    records = wait_for_records(state_dir, before, options.timeout)
    took = time.monotonic() - start
    failed = False
    printed: set[str] = set()  # both children report the same problems
    for role in before:
        record = records.get(role)
        if record is None:
            print(f"{role}: no reload seen within {options.timeout:g} s", file=sys.stderr)
            continue
        print(describe(role, record))
        if record.get("ok") is False:
            failed = True
        for problem in record.get("problems") or []:
            if problem not in printed:
                printed.add(problem)
                print(f"  {problem}", file=sys.stderr)
    if failed:
        print(f"director reload: {config} was NOT applied (see above); the director "
              f"keeps running its previous configuration", file=sys.stderr)
        return REFUSED
    if len(records) < len(before):
        return TIMED_OUT
    print(f"director reload: {config} applied (pid {pid}) in {took:.3f} s")
    return 0
