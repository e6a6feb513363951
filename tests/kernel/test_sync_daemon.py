"""IPVS connection-sync daemons and connection timeouts against the real ip_vs.

1. Sync daemons started and stopped through `NetlinkBackend` read back as `ipvsadm -L
   --daemon` prints them, refusals carry clear messages, and `MemoryBackend` (given the
   namespace's interfaces) answers the same scenario with the same results.
2. Timeouts set through `NetlinkBackend` read back as `ipvsadm -L --timeout` prints
   them; a partial change keeps the others; the memory backend agrees.
3. What an operator wants sync for, in the LVS lab (`lvs_lab.py`): a client's TCP
   connection through dirA appears in dirB's connection table through the sync
   daemons, and keeps working when the VIP moves to dirB; without a backup daemon on
   dirB the same takeover breaks it.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import re
import socket
import time
from collections.abc import Callable, Iterator

import pytest
from conftest import Netns
from lvs_lab import VIP, IpvsConnection, LabError, LvsLab, lab_fixture

from director.ipvs.backend import Backend, IpvsError
from director.ipvs.memory import Interface, MemoryBackend
from director.ipvs.netlink import NetlinkBackend
from director.ipvs.table import (
    DestinationKey,
    DestinationSettings,
    Forwarding,
    Operation,
    OperationKind,
    Protocol,
    ServiceKey,
    ServiceSettings,
    SyncDaemon,
    SyncState,
    Timeouts,
)
from director.sync_policy import apply_sync_changes, sync_daemon_changes

MASTER, BACKUP = SyncState.MASTER, SyncState.BACKUP
ip = ipaddress.ip_address
UML_HZ = 100  # the user-mode-linux kernel's CONFIG_HZ: timeouts up to INT_MAX / 100


# ------------------------------------------------------------------ ipvsadm's text

_DAEMON_LINE = re.compile(
    r"^(master|backup) sync daemon \(mcast=(\S*), syncid=(\d+), maxlen=(\d+), "
    r"group=([^,]+), port=(\d+), ttl=(\d+)\)$")


def ipvsadm_daemons(netns: Netns) -> list[SyncDaemon]:
    """`ipvsadm -L --daemon`, parsed."""
    daemons = []
    for line in netns.ipvsadm("-L", "--daemon").splitlines():
        if not line.strip():
            continue
        match = _DAEMON_LINE.match(line)
        assert match, f"unexpected ipvsadm --daemon line {line!r}"
        state, interface, sync_id, maxlen, group, port, ttl = match.groups()
        daemons.append(SyncDaemon(SyncState(state), interface, int(sync_id), int(maxlen),
                                  int(port), int(ttl), ip(group)))
    return daemons


def ipvsadm_timeouts(netns: Netns) -> Timeouts:
    text = netns.ipvsadm("-L", "--timeout").strip()
    match = re.fullmatch(r"Timeout \(tcp tcpfin udp\): (\d+) (\d+) (\d+)", text)
    assert match, text
    return Timeouts(*(int(value) for value in match.groups()))


def interfaces(netns: Netns) -> dict[str, Interface]:
    """The namespace's interfaces as the memory backend models them."""
    links = json.loads(netns.run("ip", "-j", "link", "show").stdout)
    return {link["ifname"]: Interface(mtu=link["mtu"], up="UP" in link["flags"])
            for link in links}


@pytest.fixture
def links(netns: Netns) -> Netns:
    """sync0/sync1: a veth pair, up, sync1 with a jumbo MTU; down0: a dummy left down."""
    for command in ("link add sync0 type veth peer name sync1", "link set sync1 mtu 9000",
                    "link set sync0 up", "link set sync1 up", "link add down0 type dummy"):
        netns.run("ip", *command.split())
    return netns


@pytest.fixture
def backend(netns: Netns) -> Iterator[NetlinkBackend]:
    with NetlinkBackend(netns.name) as backend:
        yield backend


# ------------------------------------------------------------------ 1. sync daemons

FULL_MASTER = SyncDaemon(MASTER, "sync0", sync_id=7, maxlen=1400, port=9000, ttl=3,
                         group=ip("239.1.2.3"))
FULL_BACKUP = SyncDaemon(BACKUP, "sync1", sync_id=7, maxlen=100, port=9000, ttl=3,
                         group=ip("239.1.2.3"))


def scenario(backend: Backend) -> list[object]:
    """Start and stop daemons in every way that matters; what each step answered."""
    seen: list[object] = []

    def step(call: Callable[..., None], *args: object) -> None:
        try:
            call(*args)
            seen.append("ok")
        except IpvsError as error:
            assert error.op is None
            seen.append((error.code, error.message))
        seen.append(backend.sync_daemons())

    step(backend.start_sync_daemon, SyncDaemon(MASTER, "sync0"))
    step(backend.start_sync_daemon, SyncDaemon(BACKUP, "sync1", sync_id=5))
    step(backend.start_sync_daemon, SyncDaemon(MASTER, "sync1"))  # one master only
    step(backend.start_sync_daemon, SyncDaemon(MASTER, "eth9"))  # no such interface
    step(backend.stop_sync_daemon, MASTER)
    step(backend.stop_sync_daemon, MASTER)  # none runs
    step(backend.start_sync_daemon, SyncDaemon(MASTER, "down0"))  # a master needs a route
    step(backend.stop_sync_daemon, BACKUP)
    step(backend.start_sync_daemon, FULL_MASTER)
    step(backend.start_sync_daemon, FULL_BACKUP)  # maxlen 100 -> a backup's minimum 1024
    step(backend.stop_sync_daemon, MASTER)
    step(backend.stop_sync_daemon, BACKUP)
    step(backend.start_sync_daemon, SyncDaemon(BACKUP, "lo", maxlen=0,
                                               group=ip("ff02::8000:81")))
    step(backend.start_sync_daemon, SyncDaemon(MASTER, "sync0", group=ip("192.0.2.1")))
    step(backend.start_sync_daemon, SyncDaemon(MASTER, "a-long-name-0123"))
    step(backend.stop_sync_daemon, BACKUP)
    return seen


def test_daemons_started_with_defaults_read_back_as_ipvsadm_shows_them(
        links: Netns, backend: NetlinkBackend) -> None:
    backend.start_sync_daemon(SyncDaemon(MASTER, "sync0"))
    backend.start_sync_daemon(SyncDaemon(BACKUP, "sync1", sync_id=5))
    group = ip("224.0.0.81")
    expected = [SyncDaemon(MASTER, "sync0", 0, maxlen=1472, port=8848, ttl=1, group=group),
                SyncDaemon(BACKUP, "sync1", 5, maxlen=8972, port=8848, ttl=1, group=group)]
    assert backend.sync_daemons() == expected
    assert ipvsadm_daemons(links) == expected
    backend.stop_sync_daemon(MASTER)
    backend.stop_sync_daemon(BACKUP)
    assert backend.sync_daemons() == [] == ipvsadm_daemons(links)


def test_every_option_reaches_the_kernel(links: Netns, backend: NetlinkBackend) -> None:
    backend.start_sync_daemon(FULL_MASTER)
    backend.start_sync_daemon(FULL_BACKUP)
    clamped_backup = SyncDaemon(BACKUP, "sync1", 7, 1024, 9000, 3, ip("239.1.2.3"))
    assert backend.sync_daemons() == [FULL_MASTER, clamped_backup]
    assert ipvsadm_daemons(links) == [FULL_MASTER, clamped_backup]
    backend.stop_sync_daemon(MASTER)
    backend.stop_sync_daemon(BACKUP)
    group6 = ip("ff02::8000:81")
    backend.start_sync_daemon(SyncDaemon(BACKUP, "lo", sync_id=255, maxlen=65535, group=group6))
    expected = [SyncDaemon(BACKUP, "lo", 255, 65487, 8848, 1, group6)]
    assert backend.sync_daemons() == expected == ipvsadm_daemons(links)


def test_refusals_say_what_is_wrong(links: Netns, backend: NetlinkBackend) -> None:
    def refused(call: Callable[..., None], *args: object) -> tuple[int, str]:
        with pytest.raises(IpvsError) as caught:
            call(*args)
        return caught.value.code, caught.value.message

    assert refused(backend.start_sync_daemon, SyncDaemon(MASTER, "eth9")) == (
        errno.ENODEV, "cannot start the master sync daemon on eth9: no such interface")
    backend.start_sync_daemon(SyncDaemon(BACKUP, "sync1"))
    assert refused(backend.start_sync_daemon, SyncDaemon(BACKUP, "sync0")) == (
        errno.EEXIST,
        "cannot start the backup sync daemon on sync0: a backup sync daemon already runs")
    assert refused(backend.stop_sync_daemon, MASTER) == (
        errno.ESRCH, "cannot stop the master sync daemon: none runs")
    code, message = refused(backend.start_sync_daemon, SyncDaemon(MASTER, "down0"))
    assert code == errno.ENETUNREACH
    assert message.startswith("cannot start the master sync daemon on down0: the interface "
                              "is down")


def test_a_stop_right_after_a_start_returns(links: Netns, backend: NetlinkBackend) -> None:
    # The kernel sends no netlink answer when it stops a daemon whose thread has not run
    # yet (kthread_stop -> -EINTR); the backend must not wait for one.
    for _ in range(5):
        backend.start_sync_daemon(SyncDaemon(MASTER, "sync0"))
        backend.stop_sync_daemon(MASTER)
        backend.start_sync_daemon(SyncDaemon(BACKUP, "down0"))
        backend.stop_sync_daemon(BACKUP)
    assert backend.sync_daemons() == []


def test_no_daemon_while_the_table_mixes_address_families(
        links: Netns, backend: NetlinkBackend) -> None:
    service = ServiceKey(socket.AF_INET, Protocol.TCP, ip("192.0.2.10"), 80)
    assert backend.apply_all([
        Operation(OperationKind.ADD_SERVICE, service, ServiceSettings()),
        Operation(OperationKind.ADD_DESTINATION, service,
                  destination=DestinationKey(ip("2001:db8::5"), 80),
                  destination_settings=DestinationSettings(Forwarding.TUN)),
    ]) == []
    memory = MemoryBackend(backend.dump(), interfaces=interfaces(links))
    for each in (backend, memory):
        with pytest.raises(IpvsError) as caught:
            each.start_sync_daemon(SyncDaemon(MASTER, "sync0"))
        assert caught.value.code == errno.EINVAL


def test_the_memory_backend_answers_the_same_scenario_as_the_kernel(
        links: Netns, backend: NetlinkBackend) -> None:
    kernel = scenario(backend)
    memory = scenario(MemoryBackend(interfaces=interfaces(links)))
    assert memory == kernel
    assert ("ok" in kernel) and any(isinstance(s, tuple) for s in kernel)


def test_the_policy_converges_on_the_kernel(links: Netns, backend: NetlinkBackend) -> None:
    # What the kernel reports (defaults spelled out) matches what was asked for: a
    # second pass changes nothing.
    wanted = {SyncDaemon(BACKUP, "sync1", sync_id=51)}
    assert apply_sync_changes(backend, sync_daemon_changes(wanted, backend.sync_daemons())) == []
    assert sync_daemon_changes(wanted, backend.sync_daemons()) == []
    wanted = {SyncDaemon(MASTER, "sync0", sync_id=51)}
    changes = sync_daemon_changes(wanted, backend.sync_daemons())
    assert [str(c) for c in changes] == ["stop the backup sync daemon",
                                         "start the master sync daemon on sync0"]
    assert apply_sync_changes(backend, changes) == []
    assert [d.state for d in backend.sync_daemons()] == [MASTER]
    assert sync_daemon_changes(wanted, backend.sync_daemons()) == []


# ------------------------------------------------------------------ 2. timeouts

def test_timeouts_read_back_as_ipvsadm_shows_them(netns: Netns,
                                                  backend: NetlinkBackend) -> None:
    memory = MemoryBackend(hz=UML_HZ)
    assert backend.timeouts() == Timeouts(900, 120, 300) == ipvsadm_timeouts(netns)
    for change in (Timeouts(tcp=7200), Timeouts(udp=60), Timeouts(tcp_fin=30, udp=90),
                   Timeouts()):
        backend.set_timeouts(change)
        memory.set_timeouts(change)
        assert backend.timeouts() == ipvsadm_timeouts(netns) == memory.timeouts()
    assert backend.timeouts() == Timeouts(7200, 30, 90)


def test_a_timeout_too_large_is_refused_whole(netns: Netns, backend: NetlinkBackend) -> None:
    memory = MemoryBackend(hz=UML_HZ)
    largest = 2**31 // UML_HZ  # INT_MAX / HZ, rounded down
    for each in (backend, memory):
        each.set_timeouts(Timeouts(udp=largest))
        with pytest.raises(IpvsError) as caught:
            each.set_timeouts(Timeouts(tcp=5, udp=largest + 1))
        assert caught.value.code == errno.EINVAL
        assert caught.value.message == (
            f"cannot set the connection timeouts (tcp 5, udp {largest + 1}): a timeout is "
            "negative or too large for the kernel")
        assert each.timeouts() == Timeouts(900, 120, largest)


# ------------------------------------------------------------------ 3. sync between directors

lab = lab_fixture(nat=1, dr=0, directors=2)
RS_PORT = 8080
SERVICE = ServiceKey(socket.AF_INET, Protocol.TCP, ip(VIP), 80)
SYNC_WAIT = 5.0


@pytest.fixture
def same_service_on_both_directors(lab: LvsLab) -> Iterator[LvsLab]:
    if not lab.running_servers:
        lab.start_server("nat1", RS_PORT)
    ops = [Operation(OperationKind.ADD_SERVICE, SERVICE, ServiceSettings(scheduler="rr")),
           Operation(OperationKind.ADD_DESTINATION, SERVICE,
                     destination=DestinationKey(ip(lab.nat[0].address), RS_PORT),
                     destination_settings=DestinationSettings(Forwarding.NAT))]
    for director in lab.directors:
        assert lab.ipvs(director).apply_all(ops) == []
    try:
        yield lab
    finally:
        lab.move_vip("dirA")
        for director in lab.directors:
            backend = lab.ipvs(director)
            for daemon in backend.sync_daemons():
                backend.stop_sync_daemon(daemon.state)
        lab.clear_ipvs()


def synced(lab: LvsLab, local: str) -> IpvsConnection | None:
    """The client connection `local` in dirB's table, once the sync brought it."""
    deadline = time.monotonic() + SYNC_WAIT
    while True:
        for conn in lab.connections("dirB"):
            if conn.client == local and conn.state == "ESTABLISHED":
                return conn
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)


def test_a_synced_connection_survives_the_takeover(same_service_on_both_directors: LvsLab
                                                   ) -> None:
    lab = same_service_on_both_directors
    lab.ipvs("dirA").start_sync_daemon(SyncDaemon(MASTER, "back", sync_id=51))
    lab.ipvs("dirB").start_sync_daemon(SyncDaemon(BACKUP, "back", sync_id=51))
    with lab.open_connection(80) as conn:
        assert conn.ask("before") == "nat1 before"
        entry = synced(lab, conn.local)
        assert entry is not None, (
            f"{conn.local} not in dirB's /proc/net/ip_vs_conn: {lab.connections('dirB')}")
        assert (entry.protocol, entry.virtual, entry.destination) == (
            "TCP", f"{VIP}:80", f"{lab.nat[0].address}:{RS_PORT}")
        lab.move_vip("dirB")
        assert conn.ask("after the takeover") == "nat1 after the takeover"
        assert conn.ask("and again") == "nat1 and again"


def test_without_a_backup_daemon_the_takeover_drops_the_connection(
        same_service_on_both_directors: LvsLab) -> None:
    lab = same_service_on_both_directors
    lab.ipvs("dirA").start_sync_daemon(SyncDaemon(MASTER, "back", sync_id=51))
    with lab.open_connection(80) as conn:
        assert conn.ask("before") == "nat1 before"
        time.sleep(2)  # as long as the sync would have needed
        assert not any(c.client == conn.local for c in lab.connections("dirB"))
        lab.move_vip("dirB")
        with pytest.raises((OSError, LabError)):
            conn.ask("after the takeover", timeout=3)
    # New connections work through dirB: only the old one was lost.
    with contextlib.closing(lab.open_connection(80)) as fresh:
        assert fresh.ask("new") == "nat1 new"
