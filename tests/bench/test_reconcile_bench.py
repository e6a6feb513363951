"""Reconcile 1,000 virtual services x 20 real servers on the memory backend: from an
empty table, then a 1% change (200 weights) against the full one. Prints the operation
counts and the time to compute and to apply them. The kernel figures (the netlink
backend against ipvsadm-restore) are in tests/bench/test_kernel_bench.py, which runs in
the kernel tier's guest.

Run: .venv/bin/python -m pytest tests/bench/test_reconcile_bench.py -s
"""

from __future__ import annotations

import ipaddress
import socket
import time

from director.ipvs.memory import MemoryBackend
from director.ipvs.reconcile import reconcile
from director.ipvs.table import (
    DestinationKey,
    DestinationSettings,
    Forwarding,
    Protocol,
    Service,
    ServiceKey,
    ServiceSettings,
    Table,
)

SERVICES, REAL_SERVERS = 1000, 20


def full_table() -> Table:
    base = int(ipaddress.IPv4Address("10.0.0.0"))
    return {
        ServiceKey(socket.AF_INET, Protocol.TCP, ipaddress.IPv4Address(base + i), 80):
        Service(ServiceSettings(scheduler="wrr", persistence_timeout=300), {
            DestinationKey(ipaddress.IPv4Address(base + 65536 + i * REAL_SERVERS + j), 80):
            DestinationSettings(forwarding=Forwarding.DR, weight=1 + j % 5)
            for j in range(REAL_SERVERS)})
        for i in range(SERVICES)
    }


def one_percent_changed(table: Table) -> Table:
    """200 of the 20,000 real servers get a new weight, spread over 100 services."""
    changed = dict(table)
    for key in list(table)[::10]:
        entry = table[key]
        destinations = dict(entry.destinations)
        for destination in list(destinations)[:2]:
            destinations[destination] = DestinationSettings(weight=100)
        changed[key] = Service(entry.settings, destinations)
    return changed


def timed(label: str, desired: Table, backend: MemoryBackend) -> int:
    started = time.perf_counter()
    actual = backend.dump()
    dumped = time.perf_counter()
    ops = reconcile(desired, actual)
    computed = time.perf_counter()
    errors = backend.apply_all(ops)
    applied = time.perf_counter()
    assert errors == []
    print(f"\n{label}: {len(ops)} operations; dump {dumped - started:.3f} s, "
          f"reconcile {computed - dumped:.3f} s, apply (memory) {applied - computed:.3f} s")
    return len(ops)


def test_reconcile_1000_services_x_20_real_servers() -> None:
    table = full_table()
    backend = MemoryBackend()
    full = timed(f"from empty, {SERVICES} x {REAL_SERVERS}", table, backend)
    assert full == SERVICES * (1 + REAL_SERVERS)

    change = timed("1% change (200 weights)", one_percent_changed(table), backend)
    print(f"1% change costs {change / full:.2%} of the from-empty operations")
    assert change == SERVICES * REAL_SERVERS // 100

    assert timed("unchanged", one_percent_changed(table), backend) == 0
