"""Signal-triggered dumps, like keepalived's.

keepalived writes ``/tmp/keepalived.data`` on SIGUSR1 (its configuration and state,
section by section), ``/tmp/keepalived.stats`` on SIGUSR2 (each VRRP instance's
counters) and ``/tmp/keepalived.json`` on its JSON signal (SIGRTMIN+2, 36 on Linux;
``keepalived --signum=JSON``). The director answers the same signals (its supervisor
installs `DUMP_SIGNALS`) with ``<state_dir>/director.data``, ``director.stats`` and
``director.json``, written atomically from the merged status view: the same kind of
information, with the checkers' side (virtual and real servers, health, IPVS counters)
that keepalived keeps in another process. ``director dump`` sends the signal and prints
the file.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

from director import state_files, status_view

KINDS = ("data", "stats", "json")
JSON_SIGNAL = signal.SIGRTMIN + 2  # keepalived's SIGJSON
DUMP_SIGNALS: dict[int, str] = {
    signal.SIGUSR1: "data", signal.SIGUSR2: "stats", JSON_SIGNAL: "json"}
SIGNAL_OF_KIND = {kind: number for number, kind in DUMP_SIGNALS.items()}


def dump_path(state_dir: str, kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown dump kind {kind!r} (one of: {', '.join(KINDS)})")
    return os.path.join(state_dir, f"director.{kind}")


def _stamp(epoch: Any) -> str:
    if not isinstance(epoch, int | float) or isinstance(epoch, bool):
        return "-"
    local = time.localtime(epoch)
    seconds = time.strftime("%a %b %d %H:%M:%S", local)
    text = f"{epoch:.6f}"
    return f"{text} ({seconds}.{text.rpartition('.')[2]} {local.tm_year})"


def _yes(value: Any) -> str:
    return "-" if value is None else ("yes" if value else "no")


# ---------------------------------------------------------------- director.data


def _daemon_section(view: dict[str, Any]) -> list[str]:
    lines = ["------< Director >------"]
    daemon = view.get("daemon")
    if not daemon:
        lines.append(" No supervisor information (the children run on their own)")
    else:
        lines += [f" Pid = {daemon.get('pid')}",
                  f" Started = {_stamp(daemon.get('started_at'))}",
                  f" Configuration file = {daemon.get('config')}",
                  f" Dry run = {_yes(daemon.get('dry_run'))}"]
        reload = daemon.get("reload") or {}
        lines.append(f" Reloads = {reload.get('count', 0)}, last = "
                     f"{_stamp(reload.get('at'))}, ok = {_yes(reload.get('ok'))}")
        for problem in reload.get("problems") or ():
            lines.append(f"   problem: {problem}")
        for child in daemon.get("children") or ():
            lines += [f" Child = {child.get('role')}",
                      f"   Pid = {child.get('pid')}",
                      f"   Running = {_yes(child.get('running'))}",
                      f"   Started = {_stamp(child.get('started_at'))}",
                      f"   Restarts = {child.get('restarts', 0)}",
                      f"   Last exit = {child.get('last_exit') or '-'}"]
    lines.append(f" State directory = {view.get('state_dir')}")
    for role, source in sorted((view.get("files") or {}).items()):
        stale = f"yes: {source.get('stale_reason')}" if source.get("stale") else "no"
        lines += [f" Status file = {source.get('path')} ({role})",
                  f"   Writer pid = {source.get('pid')}",
                  f"   Written = {_stamp(source.get('written_at'))}",
                  f"   Stale = {stale}"]
        reload = source.get("reload") or {}
        if reload:
            lines.append(f"   Reloads = {reload.get('count', 0)}, last ok = "
                         f"{_yes(reload.get('ok'))}, took {reload.get('seconds')} s")
    return lines


def _vrrp_section(view: dict[str, Any]) -> list[str]:
    vrrp = view.get("vrrp") or {}
    instances = vrrp.get("instances") or []
    lines = ["------< VRRP Topology >------"]
    if not instances:
        lines.append(" No VRRP instance")
    for i in instances:
        addresses = i.get("virtual_addresses") or []
        lines += [f" VRRP Instance = {i.get('name')}",
                  f"   VRRP Version = {i.get('version')}",
                  f"   State = {i.get('state')}",
                  f"   Interface = {i.get('interface')}",
                  f"   Using src_ip = {i.get('address')}",
                  f"   Virtual Router ID = {i.get('vrid')}",
                  f"   Priority = {i.get('base_priority')}",
                  f"   Effective priority = {i.get('priority')}",
                  f"   Master = {i.get('master') or '-'} (priority "
                  f"{i.get('master_priority')})",
                  f"   Fault = {_yes(i.get('fault'))}",
                  f"   Holds the virtual addresses = {_yes(i.get('holds_addresses'))}",
                  f"   Virtual IP ({len(addresses)}):"]
        lines += [f"     {address}" for address in addresses]
    groups = vrrp.get("sync_groups") or []
    if groups:
        lines.append("------< VRRP Sync groups >------")
        lines += [f" VRRP Sync Group = {g.get('name')}, {g.get('state')}" for g in groups]
    return lines


def _lvs_section(view: dict[str, Any]) -> list[str]:
    servers = view.get("virtual_servers") or []
    lines = ["------< LVS Topology >------"]
    ipvs = view.get("ipvs") or {}
    lines.append(" IPVS counters = " + ("read from the kernel" if ipvs.get("available")
                                         else f"unavailable: {ipvs.get('problem')}"))
    if not servers:
        lines.append(" No virtual server")
    for vs in servers:
        lines += [f" Virtual server = {vs.get('id')}",
                  f"   Services = {', '.join(vs.get('services') or [])}",
                  f"   Quorum = {'up' if vs.get('quorum_up') else 'DOWN'}",
                  f"   Sorry server active = {_yes(vs.get('sorry_active'))}"]
        for rs in vs.get("real_servers") or []:
            health = "DRAINED" if rs.get("drained") else ("UP" if rs.get("up") else "DOWN")
            lines += [f"   Real server = {rs.get('name')}",
                      f"     Health = {health}",
                      f"     Weight = {rs.get('weight')} (configured "
                      f"{rs.get('configured_weight')})",
                      f"     Last check = {_stamp(rs.get('last_check'))}",
                      f"     Latency = {_latency(rs.get('latency'))}",
                      f"     Reason = {rs.get('reason') or '-'}",
                      f"     In this state since = {_stamp(rs.get('since'))}"]
    return lines


def _latency(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "-"
    return f"{seconds * 1000:.3f} ms"


def data_text(view: dict[str, Any]) -> str:
    return "\n".join([*_daemon_section(view), *_vrrp_section(view),
                      *_lvs_section(view)]) + "\n"


# ---------------------------------------------------------------- director.stats

_VRRP_STATS = (
    ("Advertisements:", (("Received", "adverts_received"), ("Sent", "adverts_sent"))),
    ("", (("Became master", "became_master"), ("Released master", "released_master"))),
    ("Packet Errors:", (("Length", "bad_length"), ("TTL", "bad_ttl"),
                        ("Invalid Type", "bad_type"), ("Version", "bad_version"),
                        ("Checksum", "bad_checksum"), ("Wrong VRID", "wrong_vrid"),
                        ("Advertisement Interval", "interval_mismatch"),
                        ("Address List", "wrong_address_list"),
                        ("Discarded", "discarded"))),
    ("Authentication Errors:", (("Failure", "auth_failure"),)),
    ("Priority Zero:", (("Received", "priority_zero_received"),
                        ("Sent", "priority_zero_sent"))),
    ("Local Errors:", (("Send", "send_errors"), ("Address changes", "address_errors"),
                       ("Firewall changes", "firewall_errors"))),
)

_COUNTER_LINES = (("Connections", "connections"), ("Packets in", "packets_in"),
                  ("Packets out", "packets_out"), ("Bytes in", "bytes_in"),
                  ("Bytes out", "bytes_out"), ("Connections/s", "connections_per_second"),
                  ("Packets in/s", "packets_in_per_second"),
                  ("Packets out/s", "packets_out_per_second"),
                  ("Bytes in/s", "bytes_in_per_second"),
                  ("Bytes out/s", "bytes_out_per_second"))


def stats_text(view: dict[str, Any]) -> str:
    lines: list[str] = []
    for i in (view.get("vrrp") or {}).get("instances") or []:
        counters = i.get("counters") or {}
        lines.append(f"VRRP Instance: {i.get('name')}")
        for title, entries in _VRRP_STATS:
            indent = "  "
            if title:
                lines.append(f"  {title}")
                indent = "    "
            lines += [f"{indent}{label}: {counters.get(key, 0)}" for label, key in entries]
    ipvs = view.get("ipvs") or {}
    if not ipvs.get("available"):
        lines.append(f"IPVS: no counters: {ipvs.get('problem')}")
    for vs in view.get("virtual_servers") or []:
        lines.append(f"Virtual Server: {vs.get('id')}")
        for stats in vs.get("ipvs") or []:
            lines.append(f"  Service: {stats.get('service')}")
            lines += [f"    {label}: {stats.get(key, 0)}" for label, key in _COUNTER_LINES]
        for rs in vs.get("real_servers") or []:
            lines.append(f"  Real Server: {rs.get('name')}")
            lines.append(f"    Up: {_yes(rs.get('up'))}")
            lines.append(f"    Check latency: {_latency(rs.get('latency'))}")
            for stats in rs.get("ipvs") or []:
                lines.append(f"    Service: {stats.get('service')}")
                lines += [f"      Active connections: {stats.get('active_connections', 0)}",
                          f"      Inactive connections: "
                          f"{stats.get('inactive_connections', 0)}"]
                lines += [f"      {label}: {stats.get(key, 0)}"
                          for label, key in _COUNTER_LINES]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- writing


def render(kind: str, view: dict[str, Any]) -> str:
    if kind == "data":
        return data_text(view)
    if kind == "stats":
        return stats_text(view)
    if kind == "json":
        return json.dumps(view, indent=2) + "\n"
    raise ValueError(f"unknown dump kind {kind!r} (one of: {', '.join(KINDS)})")


def write_dump(kind: str, state_dir: str, daemon: dict[str, Any],
               reader: status_view.IpvsStatsReader | None = None) -> str:
    """Write the `kind` dump ("data", "stats" or "json") of the director whose state
    directory is `state_dir`; returns its path. Blocking: run it in a thread. OSError
    `state_files.StateFileError` when the file cannot be written."""
    path = dump_path(state_dir, kind)
    view = status_view.collect(state_dir, daemon, ipvs=not daemon.get("dry_run", False),
                               reader=reader)
    state_files.write_text_atomic(path, render(kind, view))
    return path
