"""The one interface every IPVS table mutation goes through.

Two implementations: `director.ipvs.netlink` (the kernel, through pyroute2) and
`director.ipvs.memory` (the same semantics in-process, for `--dry-run` and unit tests).
Both report a refused operation as `IpvsError` carrying the kernel's errno, and turn
that errno into a message a user can act on with `describe_failure`.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterable
from dataclasses import replace
from typing import Protocol

from director.ipvs.table import (
    DestinationKey,
    DestinationSettings,
    Forwarding,
    Operation,
    OperationKind,
    ServiceSettings,
    SyncDaemon,
    SyncState,
    Table,
    Timeouts,
    TunnelType,
)

SERVICE_KINDS = frozenset(
    {OperationKind.ADD_SERVICE, OperationKind.EDIT_SERVICE, OperationKind.DELETE_SERVICE})

_VERBS = {
    OperationKind.ADD_SERVICE: "add",
    OperationKind.EDIT_SERVICE: "change",
    OperationKind.DELETE_SERVICE: "delete",
    OperationKind.ADD_DESTINATION: "add",
    OperationKind.EDIT_DESTINATION: "change",
    OperationKind.DELETE_DESTINATION: "delete",
}


class IpvsError(Exception):
    """The kernel (or the memory backend standing in for it) refused `op`.

    `code` is the errno the kernel answered with (0 when there was none); `op` is None
    when the backend as a whole is unusable (no ip_vs module, no permission)."""

    def __init__(self, message: str, op: Operation | None = None, code: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.op = op
        self.code = code

    @classmethod
    def refused(cls, op: Operation, code: int, detail: str | None = None) -> IpvsError:
        return cls(describe_failure(op, code, detail), op, code)


class Backend(Protocol):
    """An IPVS table that can be read whole and changed one operation at a time.

    Implementations that subclass this Protocol explicitly inherit `apply_all`."""

    def dump(self) -> Table:
        """Every virtual service with its real servers, as the table holds them now."""
        ...

    def apply(self, op: Operation) -> None:
        """Make one change; raise `IpvsError` (and change nothing) if it is refused."""
        ...

    def apply_all(self, ops: Iterable[Operation]) -> list[IpvsError]:
        """Apply each operation in order; see `apply_all` below."""
        return apply_all(self, ops)

    def sync_daemons(self) -> list[SyncDaemon]:
        """The connection-synchronisation daemons running now (at most one per state)."""
        ...

    def start_sync_daemon(self, daemon: SyncDaemon) -> None:
        """Start a sync daemon; `IpvsError` if one of that state already runs."""
        ...

    def stop_sync_daemon(self, state: SyncState) -> None:
        """Stop the sync daemon of that state; `IpvsError` if none runs."""
        ...

    def timeouts(self) -> Timeouts:
        """The connection timeouts in force."""
        ...

    def set_timeouts(self, timeouts: Timeouts) -> None:
        """Change the timeouts that are not 0 in `timeouts`."""
        ...


def apply_all(backend: Backend, ops: Iterable[Operation]) -> list[IpvsError]:
    """Apply every operation, collecting refusals instead of stopping at the first: one
    bad entry must not keep the rest of the table from being set up.

    When adding a virtual service fails (other than by its already existing), the later
    operations on that same service are not attempted (they could only fail with "no
    such virtual service"); the one error returned for the service says how many were
    skipped."""
    failures: list[IpvsError] = []
    failed_adds: dict[object, int] = {}  # service key -> index in failures
    skipped: dict[object, int] = {}
    for op in ops:
        if op.service in failed_adds:
            skipped[op.service] = skipped.get(op.service, 0) + 1
            continue
        try:
            backend.apply(op)
        except IpvsError as failure:
            # A service that already exists can still take its real servers.
            if op.kind is OperationKind.ADD_SERVICE and failure.code != errno.EEXIST:
                failed_adds[op.service] = len(failures)
            failures.append(failure)
    for service, count in skipped.items():
        index = failed_adds[service]
        root = failures[index]
        noun = "operation" if count == 1 else "operations"
        failures[index] = IpvsError(
            f"{root.message}; {count} further {noun} on it not attempted", root.op, root.code)
    return failures


def destination_text(key: DestinationKey) -> str:
    host = f"[{key.address}]" if key.address.version == 6 else str(key.address)
    return f"{host}:{key.port}"


def operation_target(op: Operation) -> str:
    if op.kind in SERVICE_KINDS or op.destination is None:
        return f"virtual service {op.service}"
    return f"real server {destination_text(op.destination)} of virtual service {op.service}"


def describe_failure(op: Operation, code: int, detail: str | None = None) -> str:
    """'cannot add virtual service TCP 192.0.2.10:80: ...' with the kernel's errno read
    in the context of the operation (the kernel reuses ENOENT for several things)."""
    reason = detail or _reason(op, code)
    return f"cannot {_VERBS[op.kind]} {operation_target(op)}: {reason}"


def _reason(op: Operation, code: int) -> str:
    is_service_op = op.kind in SERVICE_KINDS
    if code == errno.EEXIST:
        return "it already exists" if is_service_op else "it is already in this service"
    if code == errno.ESRCH:
        return "no such virtual service"
    if code == errno.ENOENT:
        settings = op.service_settings
        if is_service_op and settings is not None:
            scheduler = settings.scheduler
            what = f"unknown scheduler {scheduler!r} (no ip_vs_{scheduler} kernel module)"
            if settings.persistence_engine:
                engine = settings.persistence_engine
                what += f" or unknown persistence engine {engine!r}"
            return what
        return "no such real server in this service"
    if code == errno.ERANGE:
        settings = op.destination_settings
        if settings is not None:
            return ("the weight must be 0 to 2147483647 and the lower threshold not above "
                    f"the upper one (weight {settings.weight}, thresholds "
                    f"{settings.lower_threshold}/{settings.upper_threshold})")
        return "value out of range"
    if code == errno.EINVAL:
        return "the kernel refused the request as invalid"
    if code == errno.EAFNOSUPPORT:
        return "address family not supported by this kernel's IPVS"
    if code in (errno.EPERM, errno.EACCES):
        return "permission denied (needs CAP_NET_ADMIN)"
    return f"{os.strerror(code)} (errno {code})" if code else "refused"


# ------------------------------------------------------------------ what the kernel keeps
# Several spellings of the model mean the same kernel state (the kernel stores flag bits
# and a concrete netmask). Backends report, and reconcile compares, this one spelling.

_FLAG_BITS = {"flag-1": 1, "sh-fallback": 1, "mh-fallback": 1,
              "flag-2": 2, "sh-port": 2, "mh-port": 2, "flag-3": 3}
_FLAG_NAMES = {
    "sh": {1: "sh-fallback", 2: "sh-port", 3: "flag-3"},
    "mh": {1: "mh-fallback", 2: "mh-port", 3: "flag-3"},
}
_GENERIC_FLAG_NAMES = {1: "flag-1", 2: "flag-2", 3: "flag-3"}
SCHEDULER_FLAGS = frozenset(_FLAG_BITS)


def kernel_service_settings(settings: ServiceSettings, family: int) -> ServiceSettings:
    """`settings` as the kernel holds them: scheduler flags named as ipvsadm shows them
    for the scheduler, the persistence netmask made explicit (and dropped when the
    service is not persistent, where it has no effect), no empty engine name."""
    names = _FLAG_NAMES.get(settings.scheduler, _GENERIC_FLAG_NAMES)
    flags = frozenset(
        names[_FLAG_BITS[flag]] if flag in _FLAG_BITS else flag for flag in settings.sched_flags)
    netmask = None
    if settings.persistence_timeout is not None:
        netmask = settings.persistence_netmask
        if netmask is None:
            netmask = 128 if family == socket.AF_INET6 else 32
    return replace(settings, sched_flags=flags, persistence_netmask=netmask,
                   persistence_engine=settings.persistence_engine or None)


def kernel_destination_settings(settings: DestinationSettings) -> DestinationSettings:
    """`settings` without the tunnel fields that do not apply to its forwarding method."""
    if settings.forwarding is not Forwarding.TUN:
        return replace(settings, tunnel_type=TunnelType.IPIP, tunnel_port=0,
                       tunnel_checksum="nocsum")
    if settings.tunnel_type is TunnelType.IPIP:
        return replace(settings, tunnel_port=0, tunnel_checksum="nocsum")
    if settings.tunnel_type is TunnelType.GRE:
        return replace(settings, tunnel_port=0)
    return settings
