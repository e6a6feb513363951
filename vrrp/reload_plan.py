"""What a reload does to each VRRP instance, decided from the old and new configs
alone (no I/O): keep it, change it in place, restart it, stop it, or start it.

Public API::

    plan_reload(old: VrrpConfig, new: VrrpConfig, running: Collection[str])
        -> list[InstancePlan]        # old instances first (config order), then new ones
    restart_reasons(old: VrrpInstance, new: VrrpInstance) -> list[str]
    changed_settings(old: VrrpInstance, new: VrrpInstance) -> list[str]
    InstancePlan(name, action: Action, reasons: tuple[str, ...])
    Action: KEEP, UPDATE, RESTART, STOP, START

Restart (what a running machine and its socket cannot change; keepalived restarts
every instance on reload): the VRID, interface, family, VRRP version, VMAC/ipvlan
settings, VRF, unicast source address, multicast group, unicast TTL, receive buffer,
multicast <-> unicast, AH authentication on or off, and becoming or ceasing to be the
address owner (priority 255). Everything else is UPDATE, applied in place by
`VrrpInstanceRunner.reconfigure`: priority, advert_int, preempt settings, VIPs and
routes (only the difference), tracking, notify scripts, PASS authentication, GARP
settings, unicast peers (the runtime restarts the instance after all when its socket
is shared with another instance), and sync group membership (the machine's
``synced`` flag; no restart).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, fields
from enum import StrEnum

from vrrp.spec import AuthType, VrrpConfig, VrrpInstance

# field -> how the log names it
IDENTITY_FIELDS = {
    "virtual_router_id": "VRID", "interface": "interface", "family": "family",
    "version": "version", "use_vmac": "use_vmac", "vmac_interface": "vmac_interface",
    "vmac_address": "vmac_address", "use_vmac_addr": "use_vmac_addr",
    "vmac_xmit_base": "vmac_xmit_base", "use_ipvlan": "use_ipvlan",
    "ipvlan_interface": "ipvlan_interface", "ipvlan_address": "ipvlan_address",
    "ipvlan_mode": "ipvlan_mode", "vrf": "vrf", "unicast_src_ip": "unicast_src_ip",
    "mcast_dst_ip": "mcast_dst_ip", "unicast_ttl": "unicast_ttl",
    "kernel_rx_buf_size": "kernel_rx_buf_size",
}


class Action(StrEnum):
    KEEP = "keep"
    UPDATE = "update"
    RESTART = "restart"
    STOP = "stop"
    START = "start"


@dataclass(frozen=True, slots=True)
class InstancePlan:
    name: str
    action: Action
    reasons: tuple[str, ...] = ()


def _uses_ah(instance: VrrpInstance) -> bool:
    auth = instance.authentication
    return instance.version == 2 and auth is not None and auth.auth_type is AuthType.AH


def restart_reasons(old: VrrpInstance, new: VrrpInstance) -> list[str]:
    """Why ``old`` cannot become ``new`` in place (empty: it can)."""
    reasons = [f"{label} {getattr(old, name)} -> {getattr(new, name)}"
               for name, label in IDENTITY_FIELDS.items()
               if getattr(old, name) != getattr(new, name)]
    if old.unicast != new.unicast:
        reasons.append("multicast -> unicast" if new.unicast else "unicast -> multicast")
    if _uses_ah(old) != _uses_ah(new):
        reasons.append("auth_type AH " + ("on" if _uses_ah(new) else "off"))
    if old.address_owner != new.address_owner:
        reasons.append(f"priority {old.priority} -> {new.priority} (address owner "
                       f"{'now' if new.address_owner else 'no more'})")
    return reasons


def changed_settings(old: VrrpInstance, new: VrrpInstance) -> list[str]:
    """The names of the settings that differ (compared fields only: not the origins)."""
    return [f.name for f in fields(VrrpInstance)
            if f.compare and getattr(old, f.name) != getattr(new, f.name)]


def plan_reload(old: VrrpConfig, new: VrrpConfig,
                running: Collection[str]) -> list[InstancePlan]:
    """One plan per instance: the old config's running ones, then the new ones."""
    plans: list[InstancePlan] = []
    for instance in old.instances:
        if instance.name not in running:
            continue
        other = new.instance(instance.name)
        if other is None:
            plans.append(InstancePlan(instance.name, Action.STOP, ("removed",)))
            continue
        reasons = restart_reasons(instance, other)
        if reasons:
            plans.append(InstancePlan(instance.name, Action.RESTART, tuple(reasons)))
            continue
        changed = changed_settings(instance, other)
        old_group, new_group = old.sync_group_of(instance.name), new.sync_group_of(instance.name)
        if old_group != new_group:
            if old_group is None or new_group is None or old_group.name != new_group.name:
                changed.append("sync group "
                               + (f"{new_group.name}" if new_group else "none"))
            else:
                changed.append(f"sync group {new_group.name} settings")
        plans.append(InstancePlan(instance.name, Action.UPDATE if changed else Action.KEEP,
                                  tuple(changed)))
    planned = {p.name for p in plans}
    for instance in new.instances:
        if instance.name not in planned:
            plans.append(InstancePlan(instance.name, Action.START))
    return plans
