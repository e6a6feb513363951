"""Check the LVS part of a `Config` as a whole: what no single line can tell.

Severity follows one rule: an *error* when the service cannot work as written (the
kernel or keepalived would refuse it or drop part of it, or it can never come up); a
*warning* when keepalived accepts it but ignores the setting. Every problem is reported
where the offending keyword was written.

Stricter than keepalived, which logs and quietly changes the configuration instead:
a quorum above the real servers' total weight (keepalived lowers the quorum), a
hysteresis not below the quorum (it lowers the hysteresis), a duplicated real server
(it drops the second) and a port-less service that is not persistent (it makes it
persistent) are errors here, since the service would not behave as written.

Work is linear in the number of servers (dicts keyed by what must be unique).
"""

from __future__ import annotations

from collections.abc import Mapping

from director.config.errors import Diagnostics
from director.config.model import (
    Config,
    Forwarding,
    IPFamily,
    Protocol,
    RealServer,
    SchedulerFlag,
    VirtualServer,
    VirtualServerGroup,
    family_of,
    origin_of,
    service_families,
)

SCHEDULERS = frozenset({"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq",
                        "mh", "fo", "ovf", "twos"})
_FLAGS_OF = {SchedulerFlag.SH_PORT: "sh", SchedulerFlag.SH_FALLBACK: "sh",
             SchedulerFlag.MH_PORT: "mh", SchedulerFlag.MH_FALLBACK: "mh"}
_PREFIX_MAX = {IPFamily.INET: 32, IPFamily.INET6: 128}


def validate_lvs(config: Config, diag: Diagnostics) -> None:
    groups = _groups(config.virtual_server_groups, diag)
    seen: dict[tuple, VirtualServer] = {}
    for vs in config.virtual_servers:
        _validate_virtual_server(vs, groups, diag)
        key = _service_key(vs, groups)
        if key is None:
            continue
        first = seen.get(key)
        if first is None:
            seen[key] = vs
        else:
            diag.error(vs.origin, f"virtual server {vs.describe()} is already defined at "
                                  f"{first.origin}")


def _groups(groups: tuple[VirtualServerGroup, ...],
            diag: Diagnostics) -> dict[str, VirtualServerGroup]:
    by_name: dict[str, VirtualServerGroup] = {}
    for group in groups:
        first = by_name.get(group.name)
        if first is None:
            by_name[group.name] = group
        else:
            diag.error(group.origin, f"virtual_server_group {group.name} is already defined "
                                     f"at {first.origin}")
            continue
        if not group.address_ranges and not group.fwmarks:
            diag.warning(group.origin, f"virtual_server_group {group.name} has no entries")
        entries: dict[tuple, str] = {}
        for entry in group.address_ranges:
            key = ("range", entry.first, entry.last, entry.port)
            if key in entries:
                diag.error(entry.origin, f"duplicate entry in virtual_server_group "
                                         f"{group.name} (first at {entries[key]})")
            entries.setdefault(key, entry.origin)
        for mark in group.fwmarks:
            key = ("fwmark", mark.fwmark, mark.ip_family)
            if key in entries:
                diag.error(mark.origin, f"duplicate fwmark {mark.fwmark} in "
                                        f"virtual_server_group {group.name} (first at "
                                        f"{entries[key]})")
            entries.setdefault(key, mark.origin)
    return by_name


def _service_key(vs: VirtualServer, groups: Mapping[str, VirtualServerGroup]) -> tuple | None:
    if vs.group is not None:
        families = service_families(vs, groups)
        return ("group", vs.group, vs.effective_protocol, families)
    if vs.fwmark is not None:
        return ("fwmark", vs.fwmark, service_families(vs, groups))
    if vs.address is not None:
        return ("address", vs.address, vs.port, vs.effective_protocol)
    return None


def _validate_virtual_server(vs: VirtualServer, groups: Mapping[str, VirtualServerGroup],
                             diag: Diagnostics) -> None:
    set_ways = sum(x is not None for x in (vs.address, vs.fwmark, vs.group))
    if set_ways != 1:
        diag.error(vs.origin, "a virtual server needs exactly one of an address, a fwmark or "
                              "a group")
        return
    group = None
    if vs.group is not None:
        group = groups.get(vs.group)
        if group is None:
            diag.error(origin_of(vs, "group"), f"unknown virtual_server_group '{vs.group}'")
            return
    by_address = vs.address is not None or (group is not None and bool(group.address_ranges))

    _check_scheduler(vs, diag)
    _check_protocol(vs, by_address, diag)
    _check_ports(vs, group, diag)
    if vs.ha_suspend and (vs.fwmark is not None or (group is not None and group.fwmarks)):
        diag.warning(origin_of(vs, "ha_suspend"), "ha_suspend does not work with fwmark "
                                                  "services; ignored")
    if (vs.address is not None and vs.ip_family is not None
            and vs.ip_family is not family_of(vs.address)):
        diag.warning(origin_of(vs, "ip_family"), f"ip_family {vs.ip_family.value} does not "
                                                 f"match the service address {vs.address}; "
                                                 "ignored")
    families = service_families(vs, groups)
    _check_granularity(vs, families, diag)
    _check_families(vs, families, diag)
    _check_real_servers(vs, group, diag)


def _check_scheduler(vs: VirtualServer, diag: Diagnostics) -> None:
    if vs.lvs_sched not in SCHEDULERS:
        diag.error(origin_of(vs, "lvs_sched"), f"unknown scheduler '{vs.lvs_sched}' (expected "
                                               f"one of: {', '.join(sorted(SCHEDULERS))})")
        return
    for flag in vs.sched_flags:
        owner = _FLAGS_OF.get(flag)
        if owner is not None and owner != vs.lvs_sched:
            diag.warning(origin_of(vs, flag.value, "sched_flags"),
                         f"{flag.value} only applies to the {owner} scheduler, not "
                         f"{vs.lvs_sched}; ignored")


def _check_protocol(vs: VirtualServer, by_address: bool, diag: Diagnostics) -> None:
    # A protocol on a fwmark service is harmless (IPVS ignores it) and common: not
    # reported. A missing one is reported when a keepalived.conf is read (build_lvs).
    if vs.ops and by_address and vs.effective_protocol is not Protocol.UDP:
        diag.warning(origin_of(vs, "ops"), "one-packet scheduling (ops) needs protocol UDP; "
                                           "ignored")


def _check_ports(vs: VirtualServer, group: VirtualServerGroup | None,
                 diag: Diagnostics) -> None:
    if vs.persistence_timeout is not None:
        return
    if vs.address is not None and vs.port == 0:
        diag.error(vs.origin, f"virtual server {vs.address} has no port: a service on all "
                              "ports must be persistent (set persistence_timeout)")
    if group is not None:
        for entry in group.address_ranges:
            if entry.port == 0:
                diag.error(entry.origin, f"group {group.name} entry has no port, but "
                                         f"virtual server at {vs.origin} is not persistent "
                                         "(set persistence_timeout)")


def _check_granularity(vs: VirtualServer, families: frozenset[IPFamily],
                       diag: Diagnostics) -> None:
    prefix = vs.persistence_granularity
    if prefix is None:
        return
    for family in sorted(families):
        if not 1 <= prefix <= _PREFIX_MAX[family]:
            diag.error(origin_of(vs, "persistence_granularity"),
                       f"persistence_granularity /{prefix} is not valid for an "
                       f"{family.value} service (1-{_PREFIX_MAX[family]})")
            return


def _check_families(vs: VirtualServer, families: frozenset[IPFamily],
                    diag: Diagnostics) -> None:
    """Untunnelled real and sorry servers must be of the service's (single) family."""
    if len(families) != 1:
        wanted = "both IPv4 and IPv6" if families else "no"
        for server in vs.real_servers:
            if server.lvs_method.forwarding is not Forwarding.TUN:
                diag.error(server.origin, f"real server {server.address} must use TUN: the "
                                          f"service has {wanted} addresses")
        return
    (family,) = families
    for server in vs.real_servers:
        if (server.lvs_method.forwarding is not Forwarding.TUN
                and family_of(server.address) is not family):
            diag.error(server.origin, f"real server {server.address} is not {family.value} "
                                      f"like its virtual server; only TUN forwarding can "
                                      f"cross address families "
                                      f"({server.lvs_method.forwarding.value} cannot)")
    sorry = vs.sorry_server
    if (sorry is not None and sorry.lvs_method.forwarding is not Forwarding.TUN
            and family_of(sorry.address) is not family):
        diag.error(sorry.origin, f"sorry server {sorry.address} is not {family.value} like "
                                 "its virtual server; only TUN forwarding can cross address "
                                 "families")


def _check_real_servers(vs: VirtualServer, group: VirtualServerGroup | None,
                        diag: Diagnostics) -> None:
    if not vs.real_servers:
        diag.warning(vs.origin, f"virtual server {vs.describe()} has no real servers "
                                "(keepalived ignores it)")
    seen: dict[tuple, RealServer] = {}
    total_weight = 0
    for rs in vs.real_servers:
        first = seen.get((rs.address, rs.port))
        if first is None:
            seen[(rs.address, rs.port)] = rs
        else:
            diag.error(rs.origin, f"real server {rs.address} port {rs.port} is already in "
                                  f"this virtual server at {first.origin}")
            continue
        total_weight += rs.weight
        _check_real_server_port(vs, group, rs, diag)
        if rs.uthreshold and rs.lthreshold > rs.uthreshold:
            diag.warning(origin_of(rs, "lthreshold"), f"lthreshold {rs.lthreshold} is above "
                                                      f"uthreshold {rs.uthreshold}")
    sorry = vs.sorry_server
    if (sorry is not None and sorry.port and vs.fwmark is not None
            and sorry.lvs_method.forwarding is not Forwarding.NAT):
        diag.warning(sorry.origin, f"a fwmark service's sorry server takes no port with "
                                   f"{sorry.lvs_method.forwarding.value}; port {sorry.port} "
                                   "ignored")
    if vs.real_servers and vs.quorum > total_weight:
        diag.error(origin_of(vs, "quorum"), f"quorum {vs.quorum} can never be reached: the "
                                            f"real servers' weights add up to {total_weight}")
    if vs.hysteresis >= vs.quorum:
        diag.error(origin_of(vs, "hysteresis", "quorum"),
                   f"hysteresis {vs.hysteresis} must be below quorum {vs.quorum}")


def _check_real_server_port(vs: VirtualServer, group: VirtualServerGroup | None,
                            rs: RealServer, diag: Diagnostics) -> None:
    """Without NAT the kernel forwards to the service's own port."""
    forwarding = rs.lvs_method.forwarding
    if forwarding is Forwarding.NAT or not rs.port:
        return
    if vs.fwmark is not None or (group is not None and group.fwmarks):
        diag.warning(origin_of(rs, "port"), f"real server port {rs.port} is ignored for a "
                                            f"fwmark service with {forwarding.value}")
        return
    ports = {vs.port} if group is None else {e.port for e in group.address_ranges if e.port}
    if ports and rs.port not in ports:
        wanted = ", ".join(str(p) for p in sorted(ports))
        diag.warning(origin_of(rs, "port"), port_mismatch(rs.port, wanted, forwarding))


def port_mismatch(port: int, wanted: str, forwarding: Forwarding) -> str:
    return (f"real server port {port} differs from the service's port {wanted}; "
            f"{forwarding.value} forwards to the service's port")
