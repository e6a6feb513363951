"""Checks of a `VrrpConfig` that need more than one statement, or that a config built
from YAML (which has not been through the keepalived.conf builder) must pass too.

Each problem is reported at the origin of the value at fault. Severities follow
keepalived 2.2.7: what it refuses (a VRID out of range, two instances that would share
a socket and a VRID...) is an error; what it ignores with a message (a track_script
naming no vrrp_script, a sync group member that is not an instance...) is a warning.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from director.config.errors import Diagnostics
from vrrp.spec import (
    ADVERT_INT_V2_MAX,
    ADVERT_INT_V3_MAX,
    PRIORITY_OWNER,
    SCOPE_MAX,
    AddressFamily,
    InstanceState,
    Route,
    TrackedFile,
    TrackedProcess,
    TrackedScript,
    VirtualAddress,
    VrrpConfig,
    VrrpInstance,
    family_of,
    origin_of,
)


def validate_vrrp(config: Any, diag: Diagnostics) -> None:
    """Validate the VRRP part of ``config``: a `VrrpConfig`, or the director's `Config`
    (whose ``vrrp`` it checks, with the global settings that refer to instances)."""
    vrrp: VrrpConfig = config if isinstance(config, VrrpConfig) else config.vrrp
    _unique_names(vrrp, diag)
    for instance in vrrp.instances:
        _instance(instance, diag)
        _tracking(vrrp, instance.name, instance, diag)
    _shared_vrids(vrrp.instances, diag)
    _vmac_names(vrrp.instances, diag)
    _sync_groups(vrrp, diag)
    _track_groups(vrrp, diag)
    _scopes(vrrp.static_addresses, "static_ipaddress", diag)
    _scopes(vrrp.static_routes, "static_routes", diag)
    if not isinstance(config, VrrpConfig):
        _global_references(config, vrrp, diag)


# ----------------------------------------------------------------- names


def _unique_names(vrrp: VrrpConfig, diag: Diagnostics) -> None:
    for what, items in (("vrrp_instance", vrrp.instances), ("vrrp_script", vrrp.scripts),
                        ("track_file", vrrp.track_files),
                        ("vrrp_track_process", vrrp.track_processes),
                        ("vrrp_sync_group", vrrp.sync_groups),
                        ("track_group", vrrp.track_groups)):
        seen: dict[str, str] = {}
        for item in items:
            if item.name in seen:
                diag.error(item.origin, f"{what} {item.name} is already defined at "
                                        f"{seen[item.name]}")
            else:
                seen[item.name] = item.origin


# ----------------------------------------------------------------- one instance


def _instance(instance: VrrpInstance, diag: Diagnostics) -> None:
    name = instance.name
    at = instance.origin

    def where(*fields: str) -> str:
        return origin_of(instance, *fields)

    if not 1 <= instance.virtual_router_id <= 255:
        what = ("is not set" if instance.virtual_router_id == 0
                else f"{instance.virtual_router_id} is out of range (1-255)")
        diag.error(where("virtual_router_id"), f"({name}) virtual_router_id {what}")
    if not 1 <= instance.priority <= PRIORITY_OWNER:
        diag.error(where("priority"), f"({name}) priority {instance.priority} is out of "
                                      "range (1-255)")
    elif instance.priority == PRIORITY_OWNER:
        implicit = "" if any(f.name == "priority" for f in instance.field_origins) else \
            " (keepalived's default for state MASTER without a priority)"
        diag.warning(where("priority", "state"),
                     f"({name}) priority 255{implicit} makes this instance the address "
                     "owner: it takes over at once, and tracking never changes its priority")
    if instance.version not in (2, 3):
        diag.error(where("version"), f"({name}) version {instance.version} is not 2 or 3")
    else:
        _advert_int(instance, diag)
    if instance.interface is None and not instance.unicast_peers:
        diag.error(at, f"({name}) no interface: an instance needs one unless it has "
                       "unicast peers")
    if instance.family is AddressFamily.INET6 and instance.version == 2:
        diag.warning(where("version"), f"({name}) VRRP version 2 with IPv6 does not comply "
                                       "with the RFCs (version 3 is meant for IPv6)")
    if instance.authentication is not None:
        if instance.version == 3:
            diag.warning(instance.authentication.origin,
                         f"({name}) VRRP version 3 has no authentication; ignored")
        elif instance.strict_mode:
            diag.warning(instance.authentication.origin,
                         f"({name}) strict mode does not support authentication; ignored")
    if instance.nopreempt:
        if instance.state is InstanceState.MASTER:
            diag.warning(where("nopreempt"), f"({name}) nopreempt does not work with "
                                             "initial state MASTER")
        if instance.priority == PRIORITY_OWNER:
            diag.warning(where("nopreempt"), f"({name}) nopreempt does not apply to the "
                                             "address owner (priority 255)")
    if instance.use_vmac and instance.use_ipvlan:
        diag.error(_later(where("use_vmac"), where("use_ipvlan")),
                   f"({name}) use_vmac and use_ipvlan exclude each other")
    if instance.use_ipvlan and instance.family is AddressFamily.INET and \
            instance.ipvlan_address is None:
        diag.error(where("use_ipvlan"), f"({name}) an IPv4 ipvlan needs an address "
                                        "(use_ipvlan NAME ADDRESS)")
    if instance.track_src_ip and instance.unicast_src_ip is None:
        diag.warning(where("track_src_ip"), f"({name}) track_src_ip without "
                                            "unicast_src_ip has no effect")
    _families(instance, diag)
    for what, items in (("virtual_ipaddress", instance.virtual_ipaddresses),
                        ("virtual_ipaddress_excluded", instance.virtual_ipaddresses_excluded),
                        ("virtual_routes", instance.virtual_routes)):
        _scopes(items, f"({name}) {what}", diag)


def _later(a: str, b: str) -> str:
    """The origin that comes later in its file (for the second of two settings)."""
    def key(origin: str) -> tuple[int, int]:
        parts = origin.rsplit(":", 2)
        try:
            return int(parts[1]), int(parts[2])
        except (IndexError, ValueError):
            return 0, 0
    return b if key(b) > key(a) else a


def _advert_int(instance: VrrpInstance, diag: Diagnostics) -> None:
    value = instance.advert_int
    at = origin_of(instance, "advert_int")
    if instance.version == 2:
        if not 1 <= value <= ADVERT_INT_V2_MAX or value != int(value):
            diag.error(at, f"({instance.name}) a VRRPv2 advert_int is whole seconds from 1 "
                           f"to 255, not {value:g}")
    elif not 0.01 <= value <= ADVERT_INT_V3_MAX or \
            abs(value * 100 - round(value * 100)) > 1e-6:
        diag.error(at, f"({instance.name}) a VRRPv3 advert_int is from 0.01 to 40.95 "
                       f"seconds in steps of 0.01, not {value:g}")


def _families(instance: VrrpInstance, diag: Diagnostics) -> None:
    """Every VIP, peer and source address is of the instance's family."""
    name = instance.name
    family = instance.family
    for vip in instance.virtual_ipaddresses:
        if vip.family is not family:
            diag.error(vip.origin, f"({name}) virtual_ipaddress {vip.address} is not "
                                   f"{family} like the instance (an address of the other "
                                   "family goes in virtual_ipaddress_excluded)")
    for peer in instance.unicast_peers:
        if family_of(peer.address) is not family:
            diag.error(peer.origin, f"({name}) unicast peer {peer.address} is not {family} "
                                    "like the instance")
    if instance.unicast_src_ip is not None and \
            family_of(instance.unicast_src_ip) is not family:
        diag.error(origin_of(instance, "unicast_src_ip"),
                   f"({name}) unicast_src_ip {instance.unicast_src_ip} is not {family} like "
                   "the instance")
    group = instance.mcast_dst_ip
    if family_of(group) is not family:
        diag.error(origin_of(instance, "mcast_dst_ip"),
                   f"({name}) mcast_dst_ip {group} is not {family} like the instance")
    elif not group.is_multicast or (group.version == 6 and (int(group) >> 112) & 0xF != 2):
        kind = "a link-local multicast" if group.version == 6 else "a multicast"
        diag.error(origin_of(instance, "mcast_dst_ip"),
                   f"({name}) mcast_dst_ip {group} is not {kind} address")
    vips = instance.virtual_ipaddresses
    if family is AddressFamily.INET6 and not instance.unicast_peers and vips and \
            vips[0].family is AddressFamily.INET6 and not vips[0].address.is_link_local:
        diag.warning(vips[0].origin, f"({name}) the first IPv6 virtual_ipaddress should be "
                                     "link local (RFC 5798)")


def _scopes(items: Iterable[VirtualAddress | Route], what: str, diag: Diagnostics) -> None:
    """A numeric scope is 0-255, as the keepalived.conf builder reads it."""
    for item in items:
        scope = item.scope
        if isinstance(scope, int) and not 0 <= scope <= SCOPE_MAX:
            subject = item.address if isinstance(item, VirtualAddress) else item.destination
            diag.error(item.origin, f"{what} {subject}: scope {scope} is out of range "
                                    f"(0-{SCOPE_MAX})")


# ----------------------------------------------------------------- tracking


def _tracking(vrrp: VrrpConfig, owner: str, item: Any, diag: Diagnostics,
              instance: bool = True) -> None:
    """Tracked scripts, files and processes exist; weights keepalived will ignore."""
    group = vrrp.sync_group_of(owner) if instance else None
    zeroed = group is not None and not group.sync_group_tracking_weight
    owner_priority = item.priority == PRIORITY_OWNER if instance else False
    entries: list[tuple[str, TrackedScript | TrackedFile | TrackedProcess, object]] = []
    entries += [("track_script", t, vrrp.script(t.name)) for t in item.track_scripts]
    entries += [("track_file", t, vrrp.track_file(t.name)) for t in item.track_files]
    entries += [("track_process", t, vrrp.track_process(t.name))
                for t in item.track_processes]
    for keyword, tracked, block in entries:
        if block is None:
            diag.warning(tracked.origin, f"({owner}) {keyword} {tracked.name} is not "
                                         "defined; ignored")
            continue
        weight, _ = vrrp.tracked_weight(tracked)
        if not weight:
            continue
        if zeroed and group is not None:
            diag.warning(tracked.origin, f"({owner}) the weight of {keyword} {tracked.name} "
                                         f"is ignored: the instance is in sync group "
                                         f"{group.name} (see sync_group_tracking_weight)")
        elif owner_priority:
            diag.warning(tracked.origin, f"({owner}) the weight of {keyword} {tracked.name} "
                                         "has no effect on the address owner (priority "
                                         "255)")


# ----------------------------------------------------------------- between instances


def _shared_vrids(instances: Iterable[VrrpInstance], diag: Diagnostics) -> None:
    """Two instances on one interface and family with one VRID must not share a socket:
    both multicast to one group, or both unicast to a common peer."""
    seen: dict[tuple[str | None, AddressFamily, int], list[VrrpInstance]] = {}
    for instance in instances:
        key = (instance.interface, instance.family, instance.virtual_router_id)
        for other in seen.get(key, ()):
            if _share_socket(instance, other):
                on = f"interface {instance.interface}" if instance.interface else \
                    "no interface"
                diag.error(origin_of(instance, "virtual_router_id"),
                           f"({instance.name}) VRID {instance.virtual_router_id} is already "
                           f"used by {other.name} ({other.origin}) with {instance.family} "
                           f"on {on}")
                break
        seen.setdefault(key, []).append(instance)


def _share_socket(a: VrrpInstance, b: VrrpInstance) -> bool:
    if bool(a.unicast_peers) != bool(b.unicast_peers):
        return False
    if not a.unicast_peers:
        return a.mcast_dst_ip == b.mcast_dst_ip
    return bool({p.address for p in a.unicast_peers} & {p.address for p in b.unicast_peers})


def _vmac_names(instances: Iterable[VrrpInstance], diag: Diagnostics) -> None:
    seen: dict[str, str] = {}
    for instance in instances:
        name = instance.vmac_interface if instance.use_vmac else (
            instance.ipvlan_interface if instance.use_ipvlan else None)
        if name is None:
            continue
        if name in seen:
            diag.error(origin_of(instance, "vmac_interface", "ipvlan_interface"),
                       f"({instance.name}) interface {name} is already the VMAC/ipvlan of "
                       f"{seen[name]}")
        else:
            seen[name] = instance.name


# ----------------------------------------------------------------- groups


def _sync_groups(vrrp: VrrpConfig, diag: Diagnostics) -> None:
    member_of: dict[str, str] = {}
    for group in vrrp.sync_groups:
        at = origin_of(group, "group")
        known = 0
        for member in group.group:
            if vrrp.instance(member) is None:
                diag.warning(at, f"sync group {group.name}: vrrp_instance {member} does not "
                                 "exist; ignored")
                continue
            known += 1
            if member in member_of and member_of[member] != group.name:
                diag.error(at, f"sync group {group.name}: vrrp_instance {member} is already "
                               f"in sync group {member_of[member]}; an instance can be in "
                               "only one")
            else:
                member_of[member] = group.name
        if not known:
            diag.warning(group.origin, f"sync group {group.name} has no existing instance; "
                                       "ignored")
        elif known == 1:
            diag.warning(group.origin, f"sync group {group.name} has only one instance: it "
                                       "synchronises nothing")
        _tracking(vrrp, group.name, group, diag, instance=False)


def _track_groups(vrrp: VrrpConfig, diag: Diagnostics) -> None:
    names = {g.name for g in vrrp.track_groups}
    for group in vrrp.track_groups:
        for member in group.group:
            if vrrp.instance(member) is None:
                diag.warning(group.origin, f"track_group {group.name}: vrrp_instance "
                                           f"{member} does not exist; ignored")
    for item in _statics(vrrp):
        if item.track_group is not None and item.track_group not in names:
            diag.warning(item.origin, f"track_group {item.track_group} is not defined; "
                                      "not tracked")


def _statics(vrrp: VrrpConfig) -> Iterator[Any]:
    yield from vrrp.static_addresses
    yield from vrrp.static_routes
    yield from vrrp.static_rules


def _global_references(config: Any, vrrp: VrrpConfig, diag: Diagnostics) -> None:
    """Global settings that name an instance (lvs_sync_daemon's ``inst``)."""
    global_defs = getattr(config, "global_defs", None)
    syncd = getattr(global_defs, "lvs_sync_daemon", None)
    name = getattr(syncd, "vrrp_instance", None)
    if name is not None and vrrp.instance(name) is None:
        diag.error(syncd.origin, f"lvs_sync_daemon: no valid vrrp_instance {name}")
