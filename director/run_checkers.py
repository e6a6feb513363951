"""`director run --checkers-only`: the checker/IPVS half of the director as one process
(the health checks and the kernel's IPVS table; no VRRP).

Under the supervisor (`--supervised`) it leaves director.pid to the parent and always
writes its status file; either way its log lines carry the role (``[checkers]``) so the
parent's combined output stays readable, and status.json holds ``running`` and the last
reload's record (`ReloadRecord`)."""

from __future__ import annotations

import argparse
import os
import sys


def setup_logging(options: argparse.Namespace, role: str) -> None:
    import logging

    logging.basicConfig(level=options.log_level.upper(), stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s [{role}] %(message)s")


def run_checkers(options: argparse.Namespace, config) -> int:
    """The balancer in the foreground until SIGTERM; returns the exit status."""
    import asyncio
    import logging

    from director import state_files
    from director.ipvs.backend import IpvsError

    setup_logging(options, "checkers")
    log = logging.getLogger("director")
    state_dir = options.state_dir or state_files.DEFAULT_STATE_DIR
    supervised = getattr(options, "supervised", False)
    if not supervised:
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
        if not supervised:
            state_files.remove_pid(state_dir)


def mail_delivery(options: argparse.Namespace) -> dict:
    """SmtpAlerts' keyword for how mail leaves: in a dry run, into the log."""
    from director.smtp_alert import log_instead_of_sending

    return {"deliver": log_instead_of_sending} if options.dry_run else {}


async def _serve(options: argparse.Namespace, config, state_dir: str, log) -> int:
    import asyncio
    import signal

    from director import heap
    from director.balancer import Balancer
    from director.child_reload import Reloader
    from director.notify import LvsFifos, Notifications
    from director.smtp_alert import SmtpAlerts

    in_memory = options.dry_run or options.memory_ipvs
    if in_memory:
        from director.ipvs.memory import MemoryBackend

        backend = MemoryBackend()
        log.info("dry run: the IPVS table is kept in memory; the kernel's is not touched")
    else:
        from director.ipvs.netlink import NetlinkBackend
        from director.ipvs.threaded import ThreadedBackend

        backend = ThreadedBackend(NetlinkBackend)
    alerts = SmtpAlerts(config.global_defs, **mail_delivery(options))
    fifos = [LvsFifos(config.global_defs, dry_run=options.dry_run)]
    notifications = Notifications(alerts, fifos[0])
    balancer = Balancer(config, backend, state_dir, config_path=os.path.abspath(options.config),
                        dry_run=in_memory, scripts_logged=options.dry_run,
                        alerts=notifications)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    async def apply(new) -> int:
        alerts.reconfigure(new.global_defs)
        if LvsFifos.paths_of(new.global_defs) != fifos[0].paths:
            fifos[0].close()
            fifos[0] = notifications.listeners[1] = LvsFifos(new.global_defs,
                                                             dry_run=options.dry_run)
        return await balancer.reload(new)

    def status_extra(running: bool) -> dict:  # the process's own part of status.json
        return {"running": running, "reload": reloader.record.as_data()}

    async def recorded() -> None:
        balancer.status_extra = status_extra(True)
        await balancer.flush_status()

    def loading(now: bool) -> None:  # the load needs the GIL: no status.json meanwhile
        balancer.status_paused = now

    async def adopt_origins(settled) -> None:
        await balancer.reload(settled, announce=False)

    reloader = Reloader(options, log, "checkers", apply, recorded, stopping, loading,
                        adopt_origins, state_dir)
    balancer.status_extra = status_extra(True)

    def on_stop(name: str) -> None:
        if not stopping.is_set():
            log.info("%s: stopping", name)
        stopping.set()

    loop.add_signal_handler(signal.SIGHUP, reloader.on_hup)
    loop.add_signal_handler(signal.SIGTERM, on_stop, "SIGTERM")
    loop.add_signal_handler(signal.SIGINT, on_stop, "SIGINT")
    try:
        await balancer.start()
        heap.settle(full=True)
        await reloader.started()
        log.info("running: %d virtual server(s); pid %d", len(config.virtual_servers),
                 os.getpid())
        await stopping.wait()
    finally:
        await reloader.cancel()
        await balancer.stop(keep_table=options.keep_ipvs)
        balancer.status_extra = status_extra(False)
        balancer.write_status()
        await asyncio.to_thread(alerts.close)
        fifos[0].close()
        close = getattr(backend, "close", None)
        if close is not None:
            close()
        for number in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(number)
    log.info("stopped")
    return 0
