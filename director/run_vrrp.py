"""`director run --vrrp-only`: the VRRP half of the director as one process (the
instances, their VIPs, tracking, and the kernel's connection-sync daemons).

Every instance and sync-group transition is an event line (`director.events`) and,
where smtp_alert asks for it, a mail. Under the supervisor (`--supervised`) the status
file ``vrrp-status.json`` is always written (in --state-dir, default /run/lvs-director);
alone, only when --state-dir is given. Log lines carry the role (``[vrrp]``)."""

from __future__ import annotations

import argparse
import os
import time

from director.child_reload import ReloadRecord
from director.run_checkers import mail_delivery, setup_logging


def run_vrrp(options: argparse.Namespace, config) -> int:
    """The VRRP instances in the foreground until a signal; returns the exit status."""
    import asyncio
    import logging

    setup_logging(options, "vrrp")
    log = logging.getLogger("director")
    try:
        return asyncio.run(_serve_vrrp(options, config, log))
    except KeyboardInterrupt:  # a second SIGINT while stopping
        return 130


def smtp_alert_of(config, kind: str, name: str) -> bool:
    """Whether an instance's or sync group's transitions are mailed (its smtp_alert)."""
    if kind == "group":
        return any(g.name == name and g.smtp_alert for g in config.vrrp.sync_groups)
    instance = config.vrrp.instance(name)
    return instance is not None and instance.smtp_alert


def transition_handler(current: list, alerts):
    """on_transition for VrrpRuntime: the event line and the mail of each transition
    (`current[0]`: the configuration running now)."""
    from director import events

    def on_transition(t) -> None:
        events.emit("vrrp_transition", kind=t.kind, name=t.name, old=t.old, new=t.new,
                    priority=t.priority, vrid=t.vrid, interface=t.interface,
                    master=t.master, reason=t.reason or None)
        alerts.vrrp(t.kind, t.name, t.new, smtp_alert_of(current[0], t.kind, t.name))

    return on_transition


async def _serve_vrrp(options: argparse.Namespace, config, log) -> int:
    import asyncio
    import logging
    import signal

    from director import heap, state_files
    from director.child_reload import Reloader
    from director.smtp_alert import SmtpAlerts
    from director.sync_daemons import follow_vrrp
    from director.vrrp_scripts import make_run_script
    from vrrp.runtime import VrrpRuntime

    # pyroute2 resets its logger's level when imported; its debug lines drown ours
    logging.getLogger("pyroute2").setLevel(max(logging.INFO, logging.getLogger().level))

    if options.dry_run:
        from director.ipvs.memory import MemoryBackend

        def sync_backend():
            return MemoryBackend()
    else:
        from director.ipvs.netlink import NetlinkBackend
        from director.ipvs.threaded import ThreadedBackend

        def sync_backend():
            return ThreadedBackend(NetlinkBackend)

    if not config.vrrp.instances:
        log.warning("no vrrp_instance in %s: nothing to do until a reload adds some",
                    options.config)
    status_wanted = asyncio.Event()
    sync_wanted = asyncio.Event()
    state_dir = options.state_dir
    if state_dir is None and getattr(options, "supervised", False):
        state_dir = state_files.DEFAULT_STATE_DIR

    def changed() -> None:
        status_wanted.set()
        sync_wanted.set()

    current = [config]
    alerts = SmtpAlerts(config.global_defs, **mail_delivery(options))
    runtime = VrrpRuntime(config.vrrp, make_run_script(config.vrrp.globals),
                          on_change=changed,
                          on_transition=transition_handler(current, alerts),
                          dry_run=options.dry_run)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    status_task: asyncio.Task[None] | None = None
    sync_task: asyncio.Task[None] | None = None
    graceful = [True]

    async def apply(new) -> None:
        current[0] = new
        alerts.reconfigure(new.global_defs)
        await runtime.reload(new.vrrp, make_run_script(new.vrrp.globals))

    async def recorded() -> None:
        status_wanted.set()

    reloader = Reloader(options, log, "vrrp", apply, recorded, stopping,
                        state_dir=state_dir)
    record = reloader.record

    def on_stop(name: str, hand_over: bool) -> None:
        if not stopping.is_set():
            log.info("%s: stopping%s", name, " (graceful handover)" if hand_over else "")
            graceful[0] = hand_over
        elif not hand_over:
            graceful[0] = False
        stopping.set()

    loop.add_signal_handler(signal.SIGHUP, reloader.on_hup)
    loop.add_signal_handler(signal.SIGTERM, on_stop, "SIGTERM", True)
    loop.add_signal_handler(signal.SIGINT, on_stop, "SIGINT", False)
    try:
        await runtime.start()
        heap.settle(full=True)
        await reloader.started()
        log.info("running VRRP: %d instance(s); pid %d", len(runtime.runners), os.getpid())
        if state_dir:
            status_task = loop.create_task(
                _write_vrrp_status(options, runtime, state_dir, status_wanted, log, record),
                name="vrrp status")
        sync_task = loop.create_task(follow_vrrp(
            config.global_defs.lvs_sync_daemon, runtime, sync_wanted, sync_backend),
            name="lvs sync daemons")
        await stopping.wait()
    finally:
        await reloader.cancel()
        await runtime.stop(graceful=graceful[0])
        if sync_task is not None:
            sync_task.cancel()
            await asyncio.gather(sync_task, return_exceptions=True)
        if status_task is not None:
            status_task.cancel()
            await asyncio.gather(status_task, return_exceptions=True)
            await _write_vrrp_status_once(options, runtime, state_dir, log, record,
                                          running=False)
        await asyncio.to_thread(alerts.close)
        for number in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(number)
    log.info("stopped")
    return 0


VRRP_STATUS_FILE = "vrrp-status.json"


async def _write_vrrp_status_once(options: argparse.Namespace, runtime, state_dir: str, log,
                                  record: ReloadRecord, running: bool = True) -> bool:
    """`<state-dir>/vrrp-status.json`: the runtime's status(), written atomically in a
    thread (an fsync never stalls the adverts)."""
    import asyncio

    from director import state_files

    data = {"version": 1, "written_at": time.time(), "pid": os.getpid(),
            "config": os.path.abspath(options.config), "running": running,
            "dry_run": bool(options.dry_run), "reload": record.as_data(),
            **runtime.status()}
    try:
        await asyncio.to_thread(state_files.write_json_atomic,
                                os.path.join(state_dir, VRRP_STATUS_FILE), data)
    except state_files.StateFileError as error:
        log.error("%s", error)
        return False
    return True


async def _write_vrrp_status(options: argparse.Namespace, runtime, state_dir: str,
                             wanted, log, record: ReloadRecord) -> None:
    """Every second, and at once after a state change."""
    import asyncio
    import contextlib

    failing = False
    while True:
        wanted.clear()
        ok = await _write_vrrp_status_once(options, runtime, state_dir,
                                           log if not failing else _Quiet(), record)
        failing = not ok
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await wanted.wait()


class _Quiet:
    """A logger that says nothing (a failing status file is logged once)."""

    def error(self, *args) -> None:
        pass
