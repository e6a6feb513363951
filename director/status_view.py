"""One merged view of a running director, for the status API, the metrics, the dumps
and `director status`.

It merges what the supervisor knows (`daemon`: its pid, its children, reloads), the two
children's status files in the state directory (`vrrp-status.json`: VRRP instances;
`status.json`: virtual servers, real servers and their health) and, when asked for, the
kernel's IPVS counters, read read-only through netlink.

A status file is trusted only while its writer lives and writes: one whose pid is gone,
that is older than `STALE_AFTER` seconds, that says `"running": false`, or whose pid is
not the child the supervisor runs, is marked ``"stale": true`` with the reason; its
content is still shown (an operator wants the last known state), never silently.

View schema (version 1)::

    {"version": 1, "generated_at": float, "state_dir": str,
     "daemon": {...} | None,                       # the supervisor's daemon_info()
     "files": {"vrrp": SOURCE, "checkers": SOURCE},
     "vrrp": {"instances": [INSTANCE], "sync_groups": [{"name", "state"}]},
     "virtual_servers": [{"id", "services", "quorum_up", "sorry_active",
                          "ipvs": [SERVICE_STATS], "real_servers": [REAL_SERVER]}],
     "ipvs": {"available": bool, "problem": str | None, "read_at": float | None}}

    SOURCE = {"path", "present", "pid", "written_at", "age", "running", "stale",
              "stale_reason", "problem", "reload"}
    REAL_SERVER = {"address", "port", "name", "up", "drained", "weight",
                   "configured_weight", "reason", "last_check", "latency", "since",
                   "ipvs": [DEST_STATS]}
    SERVICE_STATS = {"service", COUNTERS...}
    DEST_STATS = {"service", "active_connections", "inactive_connections",
                  "persistent_connections", COUNTERS...}

COUNTERS are the kernel's: connections, packets_in, packets_out, bytes_in, bytes_out,
connections_per_second, packets_in_per_second, packets_out_per_second,
bytes_in_per_second, bytes_out_per_second.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from typing import Any

from director import state_files

VIEW_VERSION = 1
STALE_AFTER = 5.0  # seconds; the children write their file every second
IPVS_CACHE_SECONDS = 1.0
VRRP_STATUS_FILE = "vrrp-status.json"  # written by director/run_vrrp.py
CHECKERS_ROLE, VRRP_ROLE = "checkers", "vrrp"
DRY_RUN_PROBLEM = ("dry run: the IPVS table is kept in memory by the checkers process; "
                   "the kernel's counters are not read")


# ---------------------------------------------------------------- status files


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _daemon_child_pid(daemon: dict[str, Any] | None, role: str) -> int | None:
    if not daemon:
        return None
    for child in daemon.get("children") or ():
        if isinstance(child, dict) and child.get("role") == role:
            pid = child.get("pid")
            return pid if isinstance(pid, int) and child.get("running", True) else None
    return None


def read_source(path: str, now: float, expected_pid: int | None = None
                ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(SOURCE, the file's data or None) for one child's status file."""
    source: dict[str, Any] = {
        "path": path, "present": False, "pid": None, "written_at": None, "age": None,
        "running": None, "stale": True, "stale_reason": None, "problem": None,
        "reload": None}
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except FileNotFoundError:
        source["stale_reason"] = source["problem"] = "no status file yet"
        return source, None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        source["present"] = True
        source["stale_reason"] = source["problem"] = f"{path}: unreadable: {error}"
        return source, None
    source["present"] = True
    if not isinstance(data, dict):
        source["stale_reason"] = source["problem"] = f"{path}: not a JSON object"
        return source, None
    pid, written_at = data.get("pid"), data.get("written_at")
    source["pid"] = pid if isinstance(pid, int) and not isinstance(pid, bool) else None
    if isinstance(written_at, int | float) and not isinstance(written_at, bool):
        source["written_at"] = float(written_at)
        source["age"] = round(now - written_at, 3)
    source["running"] = data.get("running")
    if isinstance(data.get("reload"), dict):
        source["reload"] = data["reload"]
    source["stale_reason"] = _stale_reason(source, expected_pid)
    source["stale"] = source["stale_reason"] is not None
    return source, data


def _stale_reason(source: dict[str, Any], expected_pid: int | None) -> str | None:
    pid, age = source["pid"], source["age"]
    if pid is None:
        return "the file names no writer pid"
    if not _pid_alive(pid):
        return f"its writer (pid {pid}) is gone"
    if expected_pid is not None and pid != expected_pid:
        return f"written by pid {pid}, but the running child is pid {expected_pid}"
    if source["running"] is False:
        return f"its writer (pid {pid}) has stopped"
    if age is None:
        return "the file has no 'written_at' time"
    if age > STALE_AFTER:
        return f"written {age:.1f} s ago (more than {STALE_AFTER:g} s): the writer is stuck"
    return None


# ---------------------------------------------------------------- IPVS counters


@dataclasses.dataclass(frozen=True)
class IpvsSnapshot:
    """Kernel counters keyed by the service's text (as in status.json's "services") and
    the real server's (address, port)."""

    services: dict[str, dict[str, Any]]
    destinations: dict[str, dict[tuple[str, int], dict[str, Any]]]
    read_at: float


class IpvsStatsReader:
    """Reads the kernel's IPVS counters read-only, at most once per `max_age` seconds
    (concurrent callers share one read). Thread-safe: callers run it in a thread."""

    def __init__(self, max_age: float = IPVS_CACHE_SECONDS, netns: str | None = None):
        self.max_age = max_age
        self.netns = netns
        self._lock = threading.Lock()
        self._backend: Any = None
        self._cached: tuple[float, IpvsSnapshot | None, str | None] | None = None

    def read(self) -> tuple[IpvsSnapshot | None, str | None]:
        """(snapshot, None) or (None, why the kernel's counters cannot be read)."""
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self.max_age:
                return self._cached[1], self._cached[2]
            snapshot, problem = self._read_now()
            self._cached = (time.monotonic(), snapshot, problem)
            return snapshot, problem

    def _read_now(self) -> tuple[IpvsSnapshot | None, str | None]:
        from director.ipvs.backend import IpvsError
        from director.ipvs.netlink import NetlinkBackend, connection_counts

        try:
            if self._backend is None:
                self._backend = NetlinkBackend(self.netns)
            stats = self._backend.stats()
            conns = connection_counts(self._backend)
        except IpvsError as error:
            self.close()
            return None, error.message
        except OSError as error:
            self.close()
            return None, f"reading the IPVS table failed: {error}"
        services: dict[str, dict[str, Any]] = {}
        destinations: dict[str, dict[tuple[str, int], dict[str, Any]]] = {}
        for key, stat in stats.items():
            name = str(key)
            services[name] = dataclasses.asdict(stat.service)
            per_dest = conns.get(key, {})
            destinations[name] = {
                (str(dest.address), dest.port): {
                    **_connections(per_dest.get(dest)), **dataclasses.asdict(counters)}
                for dest, counters in stat.destinations.items()}
        return IpvsSnapshot(services, destinations, time.time()), None

    def close(self) -> None:
        if self._backend is not None:
            backend, self._backend = self._backend, None
            backend.close()


def _connections(counts: Any) -> dict[str, int]:
    if counts is None:
        return {"active_connections": 0, "inactive_connections": 0,
                "persistent_connections": 0}
    return {"active_connections": counts.active, "inactive_connections": counts.inactive,
            "persistent_connections": counts.persistent}


_default_reader: IpvsStatsReader | None = None
_default_reader_lock = threading.Lock()


def default_reader() -> IpvsStatsReader:
    global _default_reader
    with _default_reader_lock:
        if _default_reader is None:
            _default_reader = IpvsStatsReader()
        return _default_reader


# ---------------------------------------------------------------- merging


def endpoint_name(address: str, port: int | None) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{host}:{port}" if port else host


def _instances(data: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not data or not isinstance(data.get("instances"), dict):
        return []
    keep = ("name", "vrid", "interface", "family", "version", "state", "priority",
            "base_priority", "master", "master_priority", "address", "fault",
            "handing_over", "holds_addresses", "virtual_addresses", "counters")
    instances = []
    for name, entry in sorted(data["instances"].items()):
        if isinstance(entry, dict):
            instances.append({"name": name, **{k: entry.get(k) for k in keep if k != "name"}})
    return instances


def _sync_groups(data: dict[str, Any] | None) -> list[dict[str, Any]]:
    groups = (data or {}).get("sync_groups")
    if not isinstance(groups, dict):
        return []
    return [{"name": name, "state": state} for name, state in sorted(groups.items())]


def _virtual_servers(data: dict[str, Any] | None,
                     snapshot: IpvsSnapshot | None) -> list[dict[str, Any]]:
    entries = (data or {}).get("virtual_servers")
    if not isinstance(entries, list):
        return []
    result = []
    for vs in entries:
        if not isinstance(vs, dict):
            continue
        services = [s for s in vs.get("services") or () if isinstance(s, str)]
        real_servers = []
        for rs in vs.get("real_servers") or ():
            if not isinstance(rs, dict):
                continue
            address, port = str(rs.get("address")), rs.get("port") or 0
            real_servers.append({
                **rs, "name": endpoint_name(address, port),
                "ipvs": _destination_stats(snapshot, services, address, port)})
        result.append({
            "id": vs.get("id"), "services": services,
            "quorum_up": vs.get("quorum_up"), "sorry_active": vs.get("sorry_active"),
            "ipvs": [{"service": s, **snapshot.services[s]} for s in services
                     if snapshot is not None and s in snapshot.services],
            "real_servers": real_servers})
    return result


def _destination_stats(snapshot: IpvsSnapshot | None, services: list[str], address: str,
                       port: int) -> list[dict[str, Any]]:
    if snapshot is None:
        return []
    found = []
    for service in services:
        dests = snapshot.destinations.get(service, {})
        # a fwmark service's real server without a port has port 0 in the kernel too
        entry = dests.get((address, port))
        if entry is not None:
            found.append({"service": service, **entry})
    return found


def collect(state_dir: str, daemon: dict[str, Any] | None, ipvs: bool,
            reader: IpvsStatsReader | None = None) -> dict[str, Any]:
    """The merged view (see the module docstring). Blocking (files, netlink): call it in
    a thread from an event loop. `ipvs=False` (dry run) leaves the kernel alone."""
    now = time.time()
    vrrp_source, vrrp_data = read_source(
        os.path.join(state_dir, VRRP_STATUS_FILE), now, _daemon_child_pid(daemon, VRRP_ROLE))
    checkers_source, checkers_data = read_source(
        state_files.status_path(state_dir), now, _daemon_child_pid(daemon, CHECKERS_ROLE))
    snapshot: IpvsSnapshot | None = None
    if ipvs:
        snapshot, problem = (reader or default_reader()).read()
    else:
        problem = DRY_RUN_PROBLEM
    return {
        "version": VIEW_VERSION,
        "generated_at": now,
        "state_dir": state_dir,
        "daemon": daemon,
        "files": {VRRP_ROLE: vrrp_source, CHECKERS_ROLE: checkers_source},
        "vrrp": {"instances": _instances(vrrp_data), "sync_groups": _sync_groups(vrrp_data)},
        "virtual_servers": _virtual_servers(checkers_data, snapshot),
        "ipvs": {"available": snapshot is not None, "problem": problem,
                 "read_at": snapshot.read_at if snapshot is not None else None},
    }


# ---------------------------------------------------------------- health


def health_problems(view: dict[str, Any]) -> list[str]:
    """Why the director is not healthy (empty: healthy): a child not running, or its
    status file missing or stale."""
    problems = []
    daemon = view.get("daemon")
    if daemon is not None:
        children = {c.get("role"): c for c in daemon.get("children") or ()
                    if isinstance(c, dict)}
        for role in (VRRP_ROLE, CHECKERS_ROLE):
            child = children.get(role)
            if child is None:
                problems.append(f"{role} child: not started")
            elif not child.get("running"):
                last = child.get("last_exit")
                problems.append(f"{role} child: not running" + (f" ({last})" if last else ""))
    for role, source in view.get("files", {}).items():
        if source.get("stale"):
            problems.append(f"{role} status file {source.get('path')}: "
                            f"{source.get('stale_reason')}")
    return problems
