"""An IPVS table held in process memory, refusing what the kernel refuses with the
kernel's errno (as measured in tests/kernel/test_ipvs_pyroute2.py): for `--dry-run`,
and for unit tests of everything above the backend.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from director.ipvs.backend import (
    SCHEDULER_FLAGS,
    Backend,
    IpvsError,
    kernel_destination_settings,
    kernel_service_settings,
)
from director.ipvs.sync_rules import (
    DEFAULT_TIMEOUTS,
    check_sync_daemon,
    describe_start_failure,
    describe_stop_failure,
    describe_timeouts_failure,
    kernel_sync_daemon,
    max_timeout,
)
from director.ipvs.table import (
    DestinationKey,
    DestinationSettings,
    Forwarding,
    Operation,
    OperationKind,
    Service,
    ServiceKey,
    ServiceSettings,
    SyncDaemon,
    SyncState,
    Table,
    Timeouts,
)

# The scheduler modules Debian's kernels ship ("none" needs no module).
KERNEL_SCHEDULERS = frozenset(
    {"none", "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo",
     "ovf", "mh", "twos"})
KERNEL_PERSISTENCE_ENGINES = frozenset({"sip"})
# Debian's amd64 kernels; the largest timeout the kernel takes is INT_MAX / HZ seconds.
KERNEL_HZ = 250
LOG_LIMIT = 10_000  # operations kept in MemoryBackend.log


@dataclass(frozen=True, slots=True)
class Interface:
    """What the kernel looks at when a sync daemon starts on an interface."""

    mtu: int = 1500
    up: bool = True


class MemoryBackend(Backend):
    def __init__(
        self,
        table: Table | None = None,
        *,
        schedulers: Iterable[str] = KERNEL_SCHEDULERS,
        persistence_engines: Iterable[str] = KERNEL_PERSISTENCE_ENGINES,
        interfaces: Mapping[str, Interface] | None = None,
        hz: int = KERNEL_HZ,
    ) -> None:
        """`interfaces`: the network interfaces a sync daemon may start on (None: any
        name, each up with an MTU of 1500); `hz`: the kernel's HZ, which bounds the
        timeouts."""
        self.schedulers = frozenset(schedulers)
        self.persistence_engines = frozenset(persistence_engines)
        self.interfaces = dict(interfaces) if interfaces is not None else None
        self.hz = hz
        self._daemons: dict[SyncState, SyncDaemon] = {}
        self._timeouts = DEFAULT_TIMEOUTS
        self._services: dict[ServiceKey, ServiceSettings] = {}
        self._destinations: dict[ServiceKey, dict[DestinationKey, DestinationSettings]] = {}
        # The operations applied successfully, in order (refused ones are not logged):
        # the last LOG_LIMIT or more (a dry-run daemon runs for months).
        self.log: list[Operation] = []
        for key, service in (table or {}).items():
            self.apply(Operation(OperationKind.ADD_SERVICE, key, service.settings))
            for destination, settings in service.destinations.items():
                self.apply(Operation(OperationKind.ADD_DESTINATION, key,
                                     destination=destination, destination_settings=settings))
        self.log.clear()

    def dump(self) -> Table:
        return {key: Service(settings, dict(self._destinations[key]))
                for key, settings in self._services.items()}

    def apply(self, op: Operation) -> None:
        handler = {
            OperationKind.ADD_SERVICE: self._add_service,
            OperationKind.EDIT_SERVICE: self._edit_service,
            OperationKind.DELETE_SERVICE: self._delete_service,
            OperationKind.ADD_DESTINATION: self._add_destination,
            OperationKind.EDIT_DESTINATION: self._edit_destination,
            OperationKind.DELETE_DESTINATION: self._delete_destination,
        }[op.kind]
        handler(op)
        self.log.append(op)
        if len(self.log) > 2 * LOG_LIMIT:
            del self.log[:-LOG_LIMIT]

    # ------------------------------------------------------------------ sync daemons

    def sync_daemons(self) -> list[SyncDaemon]:
        return [self._daemons[state] for state in (SyncState.MASTER, SyncState.BACKUP)
                if state in self._daemons]

    def start_sync_daemon(self, daemon: SyncDaemon) -> None:
        # In the kernel's order: the request's own fields, the table, the interface,
        # then whether one already runs.
        check_sync_daemon(daemon)

        def refuse(code: int, detail: str | None = None) -> None:
            raise IpvsError(describe_start_failure(daemon, code, detail), None, code)

        if self._mixed_families():
            refuse(errno.EINVAL, "the table has a real server of the other address "
                                 "family than its virtual service (the kernel cannot "
                                 "sync such connections)")
        interface = self._interface(daemon.interface)
        if interface is None:
            refuse(errno.ENODEV)
            return
        if daemon.state in self._daemons:
            refuse(errno.EEXIST)
        if daemon.state is SyncState.MASTER and not interface.up:
            refuse(errno.ENETUNREACH)
        self._daemons[daemon.state] = kernel_sync_daemon(daemon, interface.mtu)

    def stop_sync_daemon(self, state: SyncState) -> None:
        if state not in self._daemons:
            raise IpvsError(describe_stop_failure(state, errno.ESRCH), None, errno.ESRCH)
        del self._daemons[state]

    def _interface(self, name: str) -> Interface | None:
        if self.interfaces is None:
            return Interface() if name else None
        return self.interfaces.get(name)

    def _mixed_families(self) -> bool:
        for key, destinations in self._destinations.items():
            for destination in destinations:
                family = socket.AF_INET6 if destination.address.version == 6 else socket.AF_INET
                if family != key.family:
                    return True
        return False

    # ------------------------------------------------------------------ timeouts

    def timeouts(self) -> Timeouts:
        return self._timeouts

    def set_timeouts(self, timeouts: Timeouts) -> None:
        limit = max_timeout(self.hz)
        values = (timeouts.tcp, timeouts.tcp_fin, timeouts.udp)
        if any(not 0 <= value <= limit for value in values):
            raise IpvsError(describe_timeouts_failure(timeouts, errno.EINVAL), None,
                            errno.EINVAL)
        current = self._timeouts
        self._timeouts = Timeouts(tcp=timeouts.tcp or current.tcp,
                                  tcp_fin=timeouts.tcp_fin or current.tcp_fin,
                                  udp=timeouts.udp or current.udp)

    # ------------------------------------------------------------------ services

    def _add_service(self, op: Operation) -> None:
        settings = self._checked_service(op)
        if op.service in self._services:
            raise IpvsError.refused(op, errno.EEXIST)
        self._services[op.service] = settings
        self._destinations[op.service] = {}

    def _edit_service(self, op: Operation) -> None:
        settings = self._checked_service(op)
        if op.service not in self._services:
            raise IpvsError.refused(op, errno.ESRCH)
        self._services[op.service] = settings

    def _delete_service(self, op: Operation) -> None:
        if op.service not in self._services:
            raise IpvsError.refused(op, errno.ESRCH)
        # The kernel takes the service's real servers with it.
        del self._services[op.service]
        del self._destinations[op.service]

    def _checked_service(self, op: Operation) -> ServiceSettings:
        key, settings = op.service, op.service_settings
        if settings is None:
            raise IpvsError.refused(op, errno.EINVAL, "no service settings given")
        if not _well_formed(key):
            raise IpvsError.refused(op, errno.EINVAL, "malformed service address")
        if settings.scheduler not in self.schedulers:
            name = settings.scheduler
            raise IpvsError.refused(
                op, errno.ENOENT, f"unknown scheduler {name!r} (no ip_vs_{name} kernel module)")
        engine = settings.persistence_engine
        if engine and engine not in self.persistence_engines:
            raise IpvsError.refused(
                op, errno.ENOENT,
                f"unknown persistence engine {engine!r} (no ip_vs_pe_{engine} kernel module)")
        unknown = sorted(settings.sched_flags - SCHEDULER_FLAGS)
        if unknown:
            raise IpvsError.refused(op, errno.EINVAL,
                                    f"unknown scheduler flags {', '.join(unknown)}")
        if settings.persistence_timeout is not None and settings.persistence_timeout < 0:
            raise IpvsError.refused(op, errno.EINVAL, "persistence timeout is negative")
        # The kernel takes an IPv4 mask of /0 but refuses an IPv6 prefix of 0.
        low, high = (1, 128) if key.family == socket.AF_INET6 else (0, 32)
        netmask = settings.persistence_netmask
        if netmask is not None and not low <= netmask <= high:
            raise IpvsError.refused(op, errno.EINVAL, f"persistence netmask /{netmask}")
        return kernel_service_settings(settings, key.family)

    # ------------------------------------------------------------------ real servers

    def _add_destination(self, op: Operation) -> None:
        destinations, settings = self._checked_destination(op)
        assert op.destination is not None
        if op.destination in destinations:
            raise IpvsError.refused(op, errno.EEXIST)
        destinations[op.destination] = settings

    def _edit_destination(self, op: Operation) -> None:
        destinations, settings = self._checked_destination(op)
        assert op.destination is not None
        if op.destination not in destinations:
            raise IpvsError.refused(op, errno.ENOENT)
        destinations[op.destination] = settings

    def _delete_destination(self, op: Operation) -> None:
        destinations = self._service_destinations(op)
        if op.destination not in destinations:
            raise IpvsError.refused(op, errno.ENOENT)
        del destinations[op.destination]

    def _service_destinations(self, op: Operation) -> dict[DestinationKey, DestinationSettings]:
        if op.destination is None:
            raise IpvsError.refused(op, errno.EINVAL, "no real server given")
        destinations = self._destinations.get(op.service)
        if destinations is None:
            raise IpvsError.refused(op, errno.ESRCH)
        return destinations

    def _checked_destination(
        self, op: Operation
    ) -> tuple[dict[DestinationKey, DestinationSettings], DestinationSettings]:
        destinations = self._service_destinations(op)
        settings = op.destination_settings
        if settings is None:
            raise IpvsError.refused(op, errno.EINVAL, "no real server settings given")
        # The kernel's weight is a signed 32-bit int: 2**31 and above read as negative.
        if (not 0 <= settings.weight < 2**31
                or settings.lower_threshold > settings.upper_threshold):
            raise IpvsError.refused(op, errno.ERANGE)
        assert op.destination is not None
        family = socket.AF_INET6 if op.destination.address.version == 6 else socket.AF_INET
        # Only tunnelling can carry packets to a real server of the other family.
        if family != op.service.family and settings.forwarding is not Forwarding.TUN:
            raise IpvsError.refused(
                op, errno.EINVAL,
                "a real server of the other address family needs tunnel forwarding")
        return destinations, kernel_destination_settings(settings)


def _well_formed(key: ServiceKey) -> bool:
    if key.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    if key.fwmark:
        return key.protocol is None and key.address is None and key.port == 0
    if key.protocol is None or key.address is None:
        return False
    family = socket.AF_INET6 if key.address.version == 6 else socket.AF_INET
    return family == key.family and 0 <= key.port <= 65535
