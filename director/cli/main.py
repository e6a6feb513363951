"""`director`: the daemon (`run`) and its configuration and operator commands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from director.config.errors import ConfigError, Problem
from director.config.load import FORMATS, load_config

SOME_SERVERS_DOWN = 3


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--config", "--use-file", dest="config", required=True,
                        metavar="FILE", help="keepalived.conf or YAML configuration")
    parser.add_argument("--input-format", choices=FORMATS, default="auto",
                        help="configuration format (default: from the file name)")
    parser.add_argument("-i", "--config-id", metavar="ID",
                        help="keep '@ID' lines (keepalived's -i); default: the short host name")
    parser.add_argument("--strict", action="store_true", help="treat warnings as errors")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="director", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check-config", help="validate a configuration (keepalived -t)")
    _add_config_arguments(check)

    dump = commands.add_parser("dump-config", help="print the resolved configuration model")
    _add_config_arguments(dump)
    dump.add_argument("--format", choices=("json", "yaml"), default="json")

    convert = commands.add_parser("convert", help="print a configuration as YAML")
    _add_config_arguments(convert)

    servers = commands.add_parser(
        "check-servers", help="run every health check once, now, and show the verdicts "
                              "(exit 0: all real servers up, 3: some down)")
    _add_config_arguments(servers)
    servers.add_argument("--json", action="store_true", help="JSON output")

    run = commands.add_parser(
        "run", help="run the director in the foreground (SIGHUP: reload, SIGTERM: stop)")
    _add_config_arguments(run)
    halves = run.add_mutually_exclusive_group()
    halves.add_argument("--checkers-only", action="store_true",
                        help="run the health checks and the IPVS table only (no VRRP)")
    halves.add_argument("--vrrp-only", action="store_true",
                        help="run VRRP only: the instances, their VIPs and tracking "
                             "(SIGTERM: graceful handover, SIGINT: stop at once)")
    run.add_argument("--dry-run", action="store_true",
                     help="keep the IPVS table in memory (starting empty) and log every "
                          "change that would be made to the kernel's")
    run.add_argument("--keep-ipvs", action="store_true",
                     help="on stop, leave the IPVS table as it is (for a hitless restart)")
    run.add_argument("--state-dir", default=None, metavar="DIR",
                     help="status, drains and owned-services files (default: "
                          "/run/lvs-director)")
    run.add_argument("--log-level", default="info",
                     choices=("debug", "info", "warning", "error"),
                     help="least severe messages logged (default: info)")

    from director.cli.drain import add_parsers

    add_parsers(commands)
    return parser


def _report(problems: Sequence[Problem]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    handler = getattr(options, "handler", None)
    if handler is not None:  # drain, undrain, drains
        return handler(options)
    if options.command == "run" and not (options.checkers_only or options.vrrp_only):
        print("director run: one process for both halves is not built yet; run them as "
              "two processes: `director run --vrrp-only -f CONF` and `director run "
              "--checkers-only -f CONF`",
              file=sys.stderr)
        return 2
    try:
        config, problems = load_config(options.config, strict=options.strict,
                                       config_id=options.config_id,
                                       input_format=options.input_format)
    except ConfigError as error:
        _report(error.problems)
        failed = sum(1 for p in error.problems if p.severity == "error")
        print(f"{options.config}: configuration is NOT valid "
              f"({failed} error(s), {len(error.problems) - failed} warning(s))", file=sys.stderr)
        return 1
    _report(problems)

    if options.command == "check-servers":
        return _check_servers(config, options.json)
    if options.command == "run" and options.vrrp_only:
        return _run_vrrp(options, config)
    if options.command == "run":
        return _run(options, config)

    from director.config.yaml_config import dump_json, dump_yaml

    if options.command == "check-config":
        print(f"{options.config}: configuration is valid ({_summary(config)})")
    elif options.command == "dump-config" and options.format == "json":
        sys.stdout.write(dump_json(config))
    elif options.command == "dump-config":
        sys.stdout.write(dump_yaml(config))
    else:  # convert: what a person would write; what is inherited is left out
        sys.stdout.write(dump_yaml(config, concise=True))
    return 0


def _check_servers(config, as_json: bool) -> int:
    import asyncio
    import json

    from director.check_servers import as_data, as_text, check_all

    report = asyncio.run(check_all(config))
    if as_json:
        print(json.dumps(as_data(report), indent=2))
    else:
        sys.stdout.write(as_text(report))
    all_up = all(s.up for _, servers in report for s in servers)
    return 0 if all_up else SOME_SERVERS_DOWN


def _run(options: argparse.Namespace, config) -> int:
    """`director run --checkers-only`: the balancer in the foreground until SIGTERM."""
    import asyncio
    import logging

    from director import state_files
    from director.ipvs.backend import IpvsError

    logging.basicConfig(level=options.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    log = logging.getLogger("director")
    state_dir = options.state_dir or state_files.DEFAULT_STATE_DIR
    try:
        state_files.write_pid(state_dir)
    except state_files.StateFileError as error:
        print(f"director run: {error}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(_serve(options, config, state_dir, log))
    except IpvsError as error:
        log.error("cannot start: %s", error.message)
        return 1
    finally:
        state_files.remove_pid(state_dir)


async def _reloaded_config(options: argparse.Namespace, log):
    """SIGHUP: the file loaded again, or None (every problem logged with its location)
    when it has errors: the caller keeps running the previous configuration."""
    import asyncio

    log.info("SIGHUP: reloading %s", options.config)
    try:
        new, problems = await asyncio.to_thread(
            load_config, options.config, strict=options.strict,
            config_id=options.config_id, input_format=options.input_format)
    except ConfigError as error:
        for problem in error.problems:
            log.error("reload: %s", problem)
        log.error("reload: %s has errors; still running the previous configuration",
                  options.config)
        return None
    except Exception as error:  # unreadable file and the like
        log.error("reload: cannot load %s: %s; still running the previous "
                  "configuration", options.config, error)
        return None
    for problem in problems:
        log.warning("reload: %s", problem)
    return new


async def _serve(options: argparse.Namespace, config, state_dir: str, log) -> int:
    import asyncio
    import signal

    from director.balancer import Balancer

    if options.dry_run:
        from director.ipvs.memory import MemoryBackend

        backend = MemoryBackend()
        log.info("dry run: the IPVS table is kept in memory; the kernel's is not touched")
    else:
        from director.ipvs.netlink import NetlinkBackend
        from director.ipvs.threaded import ThreadedBackend

        backend = ThreadedBackend(NetlinkBackend)
    balancer = Balancer(config, backend, state_dir, config_path=os.path.abspath(options.config),
                        dry_run=options.dry_run)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    reloads: list[asyncio.Task[None]] = []
    lock = asyncio.Lock()

    async def reload() -> None:
        async with lock:
            new = await _reloaded_config(options, log)
            if new is not None and not stopping.is_set():
                await balancer.reload(new)

    def on_hup() -> None:
        task = loop.create_task(reload())
        reloads.append(task)
        task.add_done_callback(reloads.remove)

    def on_stop(name: str) -> None:
        if not stopping.is_set():
            log.info("%s: stopping", name)
        stopping.set()

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    loop.add_signal_handler(signal.SIGTERM, on_stop, "SIGTERM")
    loop.add_signal_handler(signal.SIGINT, on_stop, "SIGINT")
    try:
        await balancer.start()
        log.info("running: %d virtual server(s); pid %d", len(config.virtual_servers),
                 os.getpid())
        await stopping.wait()
    finally:
        for task in list(reloads):
            task.cancel()
        if reloads:
            await asyncio.gather(*reloads, return_exceptions=True)
        await balancer.stop(keep_table=options.keep_ipvs)
        close = getattr(backend, "close", None)
        if close is not None:
            close()
        for number in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(number)
    log.info("stopped")
    return 0


def _run_vrrp(options: argparse.Namespace, config) -> int:
    """`director run --vrrp-only`: the VRRP instances in the foreground until a signal."""
    import asyncio
    import logging

    logging.basicConfig(level=options.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    log = logging.getLogger("director")
    try:
        return asyncio.run(_serve_vrrp(options, config, log))
    except KeyboardInterrupt:  # a second SIGINT while stopping
        return 130


async def _serve_vrrp(options: argparse.Namespace, config, log) -> int:
    import asyncio
    import logging
    import signal

    from director.ipvs.netlink import NetlinkBackend
    from director.ipvs.threaded import ThreadedBackend
    from director.sync_daemons import follow_vrrp
    from director.vrrp_scripts import make_run_script
    from vrrp.runtime import VrrpRuntime

    # pyroute2 resets its logger's level when imported; its debug lines drown ours
    logging.getLogger("pyroute2").setLevel(max(logging.INFO, logging.getLogger().level))

    if not config.vrrp.instances:
        log.warning("no vrrp_instance in %s: nothing to do until a reload adds some",
                    options.config)
    status_wanted = asyncio.Event()
    sync_wanted = asyncio.Event()
    state_dir = options.state_dir  # vrrp-only: the status file only when asked for

    def changed() -> None:
        status_wanted.set()
        sync_wanted.set()

    runtime = VrrpRuntime(config.vrrp, make_run_script(config.vrrp.globals),
                          on_change=changed)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    status_task: asyncio.Task[None] | None = None
    sync_task: asyncio.Task[None] | None = None
    graceful = [True]
    reloads: list[asyncio.Task[None]] = []
    lock = asyncio.Lock()

    async def reload() -> None:
        async with lock:
            new = await _reloaded_config(options, log)
            if new is not None and not stopping.is_set():
                await runtime.reload(new.vrrp, make_run_script(new.vrrp.globals))

    def on_hup() -> None:
        task = loop.create_task(reload())
        reloads.append(task)
        task.add_done_callback(reloads.remove)

    def on_stop(name: str, hand_over: bool) -> None:
        if not stopping.is_set():
            log.info("%s: stopping%s", name, " (graceful handover)" if hand_over else "")
            graceful[0] = hand_over
        elif not hand_over:
            graceful[0] = False
        stopping.set()

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    loop.add_signal_handler(signal.SIGTERM, on_stop, "SIGTERM", True)
    loop.add_signal_handler(signal.SIGINT, on_stop, "SIGINT", False)
    try:
        await runtime.start()
        log.info("running VRRP: %d instance(s); pid %d", len(runtime.runners), os.getpid())
        if state_dir:
            status_task = loop.create_task(
                _write_vrrp_status(options, runtime, state_dir, status_wanted, log),
                name="vrrp status")
        sync_task = loop.create_task(follow_vrrp(
            config.global_defs.lvs_sync_daemon, runtime, sync_wanted,
            lambda: ThreadedBackend(NetlinkBackend)), name="lvs sync daemons")
        await stopping.wait()
    finally:
        for task in list(reloads):
            task.cancel()
        if reloads:
            await asyncio.gather(*reloads, return_exceptions=True)
        await runtime.stop(graceful=graceful[0])
        if sync_task is not None:
            sync_task.cancel()
            await asyncio.gather(sync_task, return_exceptions=True)
        if status_task is not None:
            status_task.cancel()
            await asyncio.gather(status_task, return_exceptions=True)
            await _write_vrrp_status_once(options, runtime, state_dir, log, running=False)
        for number in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(number)
    log.info("stopped")
    return 0


VRRP_STATUS_FILE = "vrrp-status.json"


async def _write_vrrp_status_once(options: argparse.Namespace, runtime, state_dir: str, log,
                                  running: bool = True) -> bool:
    """`<state-dir>/vrrp-status.json`: the runtime's status(), written atomically in a
    thread (an fsync never stalls the adverts)."""
    import asyncio
    import time

    from director import state_files

    data = {"version": 1, "written_at": time.time(), "pid": os.getpid(),
            "config": os.path.abspath(options.config), "running": running,
            **runtime.status()}
    try:
        await asyncio.to_thread(state_files.write_json_atomic,
                                os.path.join(state_dir, VRRP_STATUS_FILE), data)
    except state_files.StateFileError as error:
        log.error("%s", error)
        return False
    return True


async def _write_vrrp_status(options: argparse.Namespace, runtime, state_dir: str,
                             wanted, log) -> None:
    """Every second, and at once after a state change."""
    import asyncio
    import contextlib

    failing = False
    while True:
        wanted.clear()
        ok = await _write_vrrp_status_once(options, runtime, state_dir,
                                           log if not failing else _Quiet())
        failing = not ok
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await wanted.wait()


class _Quiet:
    """A logger that says nothing (a failing status file is logged once)."""

    def error(self, *args) -> None:
        pass


def _summary(config) -> str:
    real = sum(len(vs.real_servers) for vs in config.virtual_servers)
    return (f"{len(config.vrrp.instances)} VRRP instance(s), "
            f"{len(config.virtual_servers)} virtual server(s), {real} real server(s)")


if __name__ == "__main__":
    sys.exit(main())
