"""The kernel's IPVS table, 1,000 virtual services x 20 real servers: the director's
netlink backend against `ipvsadm -R` (ipvsadm-restore), in the same guest run.

(a) ours from empty: dump, reconcile, `NetlinkBackend.apply_all` (batched requests);
    also the one-at-a-time pyroute2 path and batches with an acknowledgement for
    every request, for comparison;
(b) `ipvsadm -R` of the same table written as `-A`/`-a` rules;
(c) ours, a 1% change (10 services: one real server removed, one weight changed):
    the dump (reading the kernel table) timed on its own, and also through pyroute2's
    parser (the fallback path; ratio column: codec / pyroute2);
(d) ipvsadm for the same change: the minimal `-d`/`-e` commands through `-R`, and
    `ipvsadm -C` + a full restore.
Every namespace's table must end up equal (`ipvsadm -Sn`, sorted); times are printed,
never asserted. Runs only inside the kernel-tier guest:

    python3 tests/kernel/uml.py tests/bench/test_kernel_bench.py -s -v
"""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from director.ipvs import backend as backend_module
from director.ipvs.netlink import NetlinkBackend, WriteStats, _BatchWriter, _open_genl_socket
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
from tests.kernel.conftest import SKIP_REASON, Netns, in_kernel_guest, make_netns

__all__ = ["make_netns"]  # the fixture, from the kernel tier

pytestmark = pytest.mark.skipif(not in_kernel_guest(), reason=SKIP_REASON)

SERVICES, REAL_SERVERS, CHANGED = 1000, 20, 10


def vip(v: int) -> str:
    # as tests/bench/config_gen.py names them
    return f"198.51.{100 + v // 250 % 100}.{v % 250 + 1}"


def real(r: int) -> str:
    return f"203.0.{113 + r // 250}.{r % 250 + 1}"


def full_table() -> Table:
    return {
        ServiceKey(socket.AF_INET, Protocol.TCP, ipaddress.IPv4Address(vip(v)), 80):
        Service(ServiceSettings(scheduler="wrr"), {
            DestinationKey(ipaddress.IPv4Address(real(r)), 80):
            DestinationSettings(forwarding=Forwarding.DR, weight=1 + r % 5)
            for r in range(REAL_SERVERS)})
        for v in range(SERVICES)
    }


def changed_table(table: Table) -> Table:
    """1% of the services change: each loses its first real server, and its second
    gets a new weight."""
    changed = dict(table)
    for key in list(table)[:: SERVICES // CHANGED]:
        service = table[key]
        reals = dict(service.destinations)
        first, second = list(reals)[:2]
        del reals[first]
        reals[second] = DestinationSettings(forwarding=Forwarding.DR, weight=50)
        changed[key] = Service(service.settings, reals)
    return changed


def restore_rules(table: Table) -> str:
    lines = []
    for key, service in table.items():
        lines.append(f"-A -t {key.address}:{key.port} -s {service.settings.scheduler}")
        for dest, settings in service.destinations.items():
            lines.append(f"-a -t {key.address}:{key.port} -r {dest.address}:{dest.port} "
                         f"-g -w {settings.weight}")
    return "\n".join(lines) + "\n"


def minimal_change_rules(before: Table, after: Table) -> str:
    lines = []
    for key, service in after.items():
        old = before[key].destinations
        for dest, settings in service.destinations.items():
            if old.get(dest) != settings:
                lines.append(f"-e -t {key.address}:{key.port} -r {dest.address}:{dest.port} "
                             f"-g -w {settings.weight}")
        for dest in old.keys() - service.destinations.keys():
            lines.append(f"-d -t {key.address}:{key.port} -r {dest.address}:{dest.port}")
    return "\n".join(lines) + "\n"


def ipvsadm_timed(netns: Netns, *args: str, stdin: str | None = None) -> float:
    with tempfile.TemporaryFile("w+") as source:
        if stdin is not None:
            source.write(stdin)
            source.seek(0)
        started = time.perf_counter()
        subprocess.run(["ip", "netns", "exec", netns.name, "ipvsadm", *args],
                       stdin=source if stdin is not None else subprocess.DEVNULL,
                       check=True, capture_output=True, timeout=600)
        return time.perf_counter() - started


def sorted_rules(netns: Netns) -> list[str]:
    return sorted(netns.ipvsadm("-S", "-n").splitlines())


@dataclass
class Ours:
    ops: int
    dump: float
    reconcile: float
    apply: float
    stats: WriteStats

    @property
    def total(self) -> float:
        return self.dump + self.reconcile + self.apply


def ours(backend: NetlinkBackend, desired: Table,
         apply: Callable[[NetlinkBackend, list], list] | None = None) -> Ours:
    backend.write_stats = WriteStats()
    started = time.perf_counter()
    actual = backend.dump()
    dumped = time.perf_counter()
    ops = reconcile(desired, actual)
    computed = time.perf_counter()
    errors = (apply or NetlinkBackend.apply_all)(backend, ops)
    applied = time.perf_counter()
    assert errors == []
    return Ours(len(ops), dumped - started, computed - dumped, applied - computed,
                backend.write_stats)


def one_at_a_time(backend: NetlinkBackend, ops: list) -> list:
    return backend_module.apply_all(backend, ops)


def test_kernel_table_1000_services_x_20_real_servers(make_netns) -> None:
    table = full_table()
    change = changed_table(table)
    ns_ours, ns_ack_each, ns_pyroute2, ns_ipvsadm, ns_flush = (make_netns() for _ in range(5))
    rows: list[tuple[str, str, float | None, float | None, str]] = []

    def row(label: str, ops: str, seconds: float | None, reference: float | None = None,
            note: str = "") -> None:
        rows.append((label, ops, seconds, reference, note))

    # (b) first: ipvsadm-restore from empty, and what starting ipvsadm costs
    overhead = ipvsadm_timed(ns_ipvsadm, "-R", stdin="")
    restore = ipvsadm_timed(ns_ipvsadm, "-R", stdin=restore_rules(table))
    expected = sorted_rules(ns_ipvsadm)
    assert len(expected) == SERVICES * (1 + REAL_SERVERS)

    # (a) ours from empty
    with NetlinkBackend(ns_ours.name) as backend:
        empty = ours(backend, table)
        assert sorted_rules(ns_ours) == expected
        # (c) the 1% change, and a second look that finds nothing to do
        changed = ours(backend, change)
        unchanged = ours(backend, change)
        assert unchanged.ops == 0
        # the same dump through pyroute2's parser (the fallback path), for comparison
        backend.raw_dump = False
        started = time.perf_counter()
        pyroute2_dumped = backend.dump()
        pyroute2_dump = time.perf_counter() - started
        backend.raw_dump = True
        started = time.perf_counter()
        assert backend.dump() == pyroute2_dumped
        codec_dump = time.perf_counter() - started
    ipvsadm_list = ipvsadm_timed(ns_ours, "-S", "-n")

    with NetlinkBackend(ns_ack_each.name) as backend:
        backend._writer = _BatchWriter(_open_genl_socket(ns_ack_each.name),
                                       backend._ipvs().prid, ack_each=True)
        ack_each = ours(backend, table)
        ack_each_change = ours(backend, change)
        assert sorted_rules(ns_ack_each) == sorted_rules(ns_ours)

    with NetlinkBackend(ns_pyroute2.name) as backend:
        pyroute2_empty = ours(backend, table, one_at_a_time)
        pyroute2_change = ours(backend, change, one_at_a_time)
        assert sorted_rules(ns_pyroute2) == sorted_rules(ns_ours)

    # (d) ipvsadm: the minimal commands, and flush + full restore
    minimal_rules = minimal_change_rules(table, change)
    minimal = ipvsadm_timed(ns_ipvsadm, "-R", stdin=minimal_rules)
    assert sorted_rules(ns_ipvsadm) == sorted_rules(ns_ours)
    ipvsadm_timed(ns_flush, "-R", stdin=restore_rules(table))
    flush = ipvsadm_timed(ns_flush, "-C")
    full_restore = ipvsadm_timed(ns_flush, "-R", stdin=restore_rules(change))
    assert sorted_rules(ns_flush) == sorted_rules(ns_ours)
    minimal_count = len(minimal_rules.splitlines())
    assert changed.ops == minimal_count == 2 * CHANGED

    # ------------------------------------------------------------------ the figures
    def calls(result: Ours) -> str:
        s = result.stats
        return f"{s.requests} requests, {s.sends} send + {s.receives} recv"

    row("(b) ipvsadm -R, from empty", f"{len(expected)} rules", restore,
        note=f"starting ipvsadm alone: {overhead * 1000:.1f} ms")
    row("(a) ours from empty: total", f"{empty.ops} ops", empty.total, restore,
        calls(empty))
    row("    dump (empty; opens pyroute2's socket)", "", empty.dump, None)
    row("    reconcile", "", empty.reconcile, None)
    row("    apply_all (batched)", "", empty.apply, restore)
    row("    apply_all, NLM_F_ACK on each", f"{ack_each.ops} ops", ack_each.apply, restore,
        calls(ack_each))
    row("    one at a time (pyroute2)", f"{pyroute2_empty.ops} ops", pyroute2_empty.apply,
        restore)
    row("(d) ipvsadm -R, minimal -e/-d", f"{minimal_count} rules", minimal,
        note=f"ipvsadm start is {overhead / minimal:.0%} of it")
    row("(d) ipvsadm -C + -R (full)", f"{len(expected) - CHANGED} rules",
        flush + full_restore, note=f"-C {flush * 1000:.1f} ms")
    row("(c) ours 1% change: total", f"{changed.ops} ops", changed.total, minimal,
        f"{changed.ops / empty.ops:.2%} of the from-empty ops; {calls(changed)}")
    row("    dump (21,000 entries)", "", changed.dump, None)
    row("    dump: codec vs pyroute2's parser", f"{len(pyroute2_dumped)} svcs", codec_dump,
        pyroute2_dump, f"pyroute2 {pyroute2_dump:.3f} s; ipvsadm -Sn {ipvsadm_list:.3f} s")
    row("    reconcile", "", changed.reconcile, None)
    row("    apply_all (batched)", "", changed.apply, minimal)
    row("    apply_all, NLM_F_ACK on each", "", ack_each_change.apply, minimal)
    row("    one at a time (pyroute2)", "", pyroute2_change.apply, minimal)
    row("    ours total vs flush + restore", "", changed.total, flush + full_restore)
    row("(c) unchanged: dump + reconcile", f"{unchanged.ops} ops", unchanged.total, None)

    print(f"\nIPVS table {SERVICES} services x {REAL_SERVERS} real servers, "
          f"User-Mode-Linux guest (single CPU)")
    print(f"{'':40}{'ops':>14}{'seconds':>10}{'ours/ipvsadm':>14}  notes")
    for label, ops, seconds, reference, note in rows:
        ratio = f"{seconds / reference:.2f}" if seconds and reference else ""
        shown = f"{seconds:.4f}" if seconds is not None else ""
        print(f"{label:40}{ops:>14}{shown:>10}{ratio:>14}  {note}")
