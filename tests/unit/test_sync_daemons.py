"""SyncDaemonFollower on the memory backend: the sync daemons follow the VRRP state,
and a refusal is logged once without stopping anything."""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace

from director import sync_daemons
from director.config.model import LvsSyncDaemon
from director.ipvs.memory import Interface, MemoryBackend
from director.ipvs.table import SyncState
from director.sync_daemons import SyncDaemonFollower

SETTING = LvsSyncDaemon(interface="eth1", vrrp_instance="VI_1")


def states(backend: MemoryBackend) -> list[tuple[SyncState, int]]:
    return [(d.state, d.sync_id) for d in backend.sync_daemons()]


def test_the_daemons_follow_the_vrrp_state(caplog) -> None:
    caplog.set_level(logging.INFO, "director.sync_daemons")
    backend = MemoryBackend(interfaces={"eth1": Interface(mtu=1500, up=True)})
    follower = SyncDaemonFollower(SETTING, backend)
    follower.follow(None, vrid=51)
    assert states(backend) == [(SyncState.BACKUP, 51)]
    follower.follow("MASTER", vrid=51)
    assert states(backend) == [(SyncState.MASTER, 51), (SyncState.BACKUP, 51)]
    assert follower.stops_master("FAULT", vrid=51)
    assert not follower.stops_master("MASTER", vrid=51)
    follower.follow("MASTER", vrid=51)  # nothing to do
    follower.follow("FAULT", vrid=51)
    assert states(backend) == [(SyncState.BACKUP, 51)]
    assert not follower.stops_master("STOP", vrid=51)
    follower.follow("STOP", vrid=51)
    assert states(backend) == []
    logged = [r.getMessage() for r in caplog.records]
    assert logged == [
        "ipvs: start the backup sync daemon on eth1 (VRRP starting)",
        "ipvs: start the master sync daemon on eth1 (VRRP MASTER)",
        "ipvs: stop the master sync daemon (VRRP FAULT)",
        "ipvs: stop the backup sync daemon (VRRP STOP)",
    ]


def test_a_refusal_is_logged_once_and_changes_nothing_else(caplog) -> None:
    backend = MemoryBackend(interfaces={"eth0": Interface(mtu=1500, up=True)})
    follower = SyncDaemonFollower(SETTING, backend)  # eth1 does not exist here
    for state in ("BACKUP", "BACKUP", "FAULT"):
        follower.follow(state, vrid=51)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "eth1" in errors[0] and "no such interface" in errors[0]
    assert backend.sync_daemons() == []


class _Runner:
    def __init__(self, state: str) -> None:
        self.started = True
        self.state = SimpleNamespace(value=state)
        self.instance = SimpleNamespace(virtual_router_id=51)


async def test_a_leaving_master_keeps_its_daemon_until_the_queue_is_flushed(
        monkeypatch) -> None:
    monkeypatch.setattr(sync_daemons, "SYNC_FLUSH_WAIT", 0.3)
    backend = MemoryBackend(interfaces={"eth1": Interface(mtu=1500, up=True)})
    runner = _Runner("MASTER")
    runtime = SimpleNamespace(runners={"VI_1": runner})
    changed = asyncio.Event()
    task = asyncio.create_task(sync_daemons.follow_vrrp(SETTING, runtime, changed,
                                                        lambda: backend))
    await asyncio.sleep(0.05)
    assert states(backend) == [(SyncState.MASTER, 51), (SyncState.BACKUP, 51)]

    runner.state.value = "BACKUP"  # preempted: the master daemon sends its queue first
    changed.set()
    await asyncio.sleep(0.1)
    assert (SyncState.MASTER, 51) in states(backend)
    await asyncio.sleep(0.35)
    assert states(backend) == [(SyncState.BACKUP, 51)]

    runner.state.value = "MASTER"
    changed.set()
    await asyncio.sleep(0.05)
    runner.state.value = "STOP"  # a stop: the same wait, then nothing runs
    changed.set()
    await asyncio.sleep(0.05)
    task.cancel()
    started = time.monotonic()
    await asyncio.gather(task, return_exceptions=True)
    assert 0.15 < time.monotonic() - started < 0.3 + 0.2
    assert states(backend) == []
