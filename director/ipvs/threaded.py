"""A backend whose every call runs in one thread of its own, for asyncio code.

pyroute2's synchronous sockets drive an asyncio loop of their own and take the
thread's running loop when there is one: inside an asyncio program every request
fails ("This event loop is already running"). Wrapping the netlink backend here makes
it, and keeps it, in one dedicated thread; `call` awaits a call without holding the
loop up (reading or writing a big table takes a while).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from director.ipvs.backend import Backend, IpvsError
from director.ipvs.table import Operation, SyncDaemon, SyncState, Table, Timeouts


class ThreadedBackend:
    """`factory()`'s backend, made and used in one thread of its own. Its methods
    wait for the call (fine for one netlink request); `call` awaits it."""

    def __init__(self, factory: Callable[[], Backend]) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ipvs")
        self._backend: Backend = self._executor.submit(factory).result()

    def _call(self, name: str, *args: Any) -> Any:
        return self._executor.submit(getattr(self._backend, name), *args).result()

    async def call(self, name: str, *args: Any) -> Any:
        """The same call, awaited: the loop goes on meanwhile."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, getattr(self._backend, name), *args)

    def dump(self) -> Table:
        return self._call("dump")

    def apply(self, op: Operation) -> None:
        self._call("apply", op)

    def apply_all(self, ops: Iterable[Operation]) -> list[IpvsError]:
        return self._call("apply_all", list(ops))

    def sync_daemons(self) -> list[SyncDaemon]:
        return self._call("sync_daemons")

    def start_sync_daemon(self, daemon: SyncDaemon) -> None:
        self._call("start_sync_daemon", daemon)

    def stop_sync_daemon(self, state: SyncState) -> None:
        self._call("stop_sync_daemon", state)

    def timeouts(self) -> Timeouts:
        return self._call("timeouts")

    def set_timeouts(self, timeouts: Timeouts) -> None:
        self._call("set_timeouts", timeouts)

    def close(self) -> None:
        close = getattr(self._backend, "close", None)
        if close is not None:
            self._executor.submit(close).result()
        self._executor.shutdown(wait=True)
