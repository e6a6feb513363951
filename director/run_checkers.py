"""`director run --checkers-only`: the checker/IPVS half of the director as one process
(the health checks and the kernel's IPVS table; no VRRP)."""

from __future__ import annotations

import argparse
import os
import sys

from director.config.errors import ConfigError
from director.config.load import load_config


def run_checkers(options: argparse.Namespace, config) -> int:
    """The balancer in the foreground until SIGTERM; returns the exit status."""
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


async def reloaded_config(options: argparse.Namespace, log):
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
            new = await reloaded_config(options, log)
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
