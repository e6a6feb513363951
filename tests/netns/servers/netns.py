"""Run a coroutine on an event loop of its own in a thread that lives in a network
namespace: the probe under test makes its sockets there, while the test process (its
file descriptor table included) stays the one the test inspects."""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tests.netns.lab import CLONE_NEWNET, IP, NETNS_DIR, Lab, run

T = TypeVar("T")

BLACKHOLE = "192.0.2.2"       # a neighbour that never answers: SYNs go unanswered
BLACKHOLE6 = "2001:db8::2"
UNREACHABLE = "203.0.113.1"   # behind an `unreachable` route
NO_ROUTE = "198.51.100.1"     # no route at all
MARK = 7                      # packets with this firewall mark find BLACKHOLE unreachable
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def run_in_namespace(ns: str, make: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    """`asyncio.run(make())` in a thread switched into namespace `ns`; its result."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(NETNS_DIR / ns, os.O_RDONLY)
            try:
                _setns(target)
            finally:
                os.close(target)
            try:
                outcome.append(asyncio.run(make()))
            except BaseException as error:  # handed to the test's thread
                failure.append(error)
            finally:
                try:
                    _setns(own)
                except OSError:
                    os.abort()  # a thread in the wrong namespace: nothing can be trusted
        finally:
            os.close(own)

    thread = threading.Thread(target=body, name=f"in-{ns}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"coroutine in namespace {ns} still running after {timeout} s")
    if failure:
        raise failure[0]
    return outcome[0]


def unreachable_namespace(lab: Lab, role: str = "probe") -> str:
    """A namespace of `lab` where BLACKHOLE(6) sit on a veth with fixed neighbour
    entries and nobody behind them, UNREACHABLE has an `unreachable` route, NO_ROUTE
    has none, and packets marked MARK are routed to an `unreachable` BLACKHOLE."""
    ns = lab.add_namespace(role)
    lab.add_veth(ns, "pr0", "pr1")
    run(ns, IP, "link", "set", "pr1", "up")
    run(ns, IP, "addr", "add", "192.0.2.1/24", "dev", "pr0")
    run(ns, IP, "-6", "addr", "add", "2001:db8::1/64", "dev", "pr0", "nodad")
    for address in (BLACKHOLE, BLACKHOLE6):
        run(ns, IP, "neigh", "replace", address, "lladdr", "02:00:00:00:00:02",
            "dev", "pr0", "nud", "permanent")
    run(ns, IP, "route", "add", "unreachable", "203.0.113.0/24")
    run(ns, IP, "rule", "add", "fwmark", str(MARK), "table", "100", "priority", "100")
    run(ns, IP, "route", "add", "unreachable", BLACKHOLE, "table", "100")
    return ns
