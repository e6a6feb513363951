"""From the table the kernel has to the table the director wants, in the fewest changes.

The rules, each for a reason a user would notice:
- a changed service is one EDIT_SERVICE, a changed real server one EDIT_DESTINATION
  (forwarding method included: the kernel edits it in place): never delete + add, which
  would drop the connections the entry carries;
- a service in `actual` that is neither desired nor `owned` was made by someone else
  and is left alone; a desired service that already exists is adopted as it stands;
- a deleted service is one DELETE_SERVICE: the kernel removes its real servers with it;
- within a service, real servers are added and edited before the departing ones are
  removed, so a service whose whole pool is replaced never has an empty pool; services
  that go away are deleted last.
Settings are compared as the kernel keeps them (`kernel_*_settings`), so two spellings
of the same state cause no change.
"""

from __future__ import annotations

from collections.abc import Iterable

from director.ipvs.backend import kernel_destination_settings, kernel_service_settings
from director.ipvs.table import (
    DestinationKey,
    DestinationSettings,
    Operation,
    OperationKind,
    Service,
    ServiceKey,
    Table,
)


def reconcile(
    desired: Table, actual: Table, owned: Iterable[ServiceKey] | None = None
) -> list[Operation]:
    """The operations that turn `actual` into `desired`, in an order the kernel accepts.

    `owned`: the services the director is responsible for beyond those it desires (the
    ones it created earlier); services in `actual` outside both are not touched. None
    means every service in `actual` is the director's: the result is exactly `desired`."""
    removable = set(actual) if owned is None else set(owned)
    ops: list[Operation] = []
    for key in sorted(desired, key=_order):
        want = desired[key]
        have = actual.get(key)
        if have is None:
            ops.append(Operation(OperationKind.ADD_SERVICE, key, want.settings))
            ops.extend(_destination_ops(key, want.destinations, {}))
            continue
        if want is have:
            continue
        if _service_settings_differ(key, want, have):
            ops.append(Operation(OperationKind.EDIT_SERVICE, key, want.settings))
        if want.destinations != have.destinations:  # most services of a reload are equal
            ops.extend(_destination_ops(key, want.destinations, have.destinations))
    for key in sorted(actual, key=_order):
        if key not in desired and key in removable:
            ops.append(Operation(OperationKind.DELETE_SERVICE, key))
    return ops


def _destination_ops(
    service: ServiceKey,
    want: dict[DestinationKey, DestinationSettings],
    have: dict[DestinationKey, DestinationSettings],
) -> list[Operation]:
    adds: list[Operation] = []
    edits: list[Operation] = []
    for key in sorted(want, key=_destination_order):
        settings = want[key]
        current = have.get(key)
        if current is None:
            adds.append(Operation(OperationKind.ADD_DESTINATION, service,
                                  destination=key, destination_settings=settings))
        elif settings != current and (
                kernel_destination_settings(settings) != kernel_destination_settings(current)):
            edits.append(Operation(OperationKind.EDIT_DESTINATION, service,
                                   destination=key, destination_settings=settings))
    deletes = [Operation(OperationKind.DELETE_DESTINATION, service, destination=key)
               for key in sorted(have, key=_destination_order) if key not in want]
    return adds + edits + deletes


def _service_settings_differ(key: ServiceKey, want: Service, have: Service) -> bool:
    return want.settings != have.settings and (
        kernel_service_settings(want.settings, key.family)
        != kernel_service_settings(have.settings, key.family))


def _order(key: ServiceKey) -> tuple:
    # Mixed families and fwmark services do not compare as dataclasses; this does.
    return (key.family, key.fwmark, str(key.protocol or ""),
            key.address.packed if key.address is not None else b"", key.port)


def _destination_order(key: DestinationKey) -> tuple:
    return (key.address.version, key.address.packed, key.port)
