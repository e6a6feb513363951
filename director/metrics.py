"""Prometheus metrics (text exposition format, through prometheus_client) built from
the merged status view (`director.status_view.collect`) at each scrape.

Metrics (every name starts with ``lvs_director_``):

director and its children
  ``start_time_seconds``                      gauge: when the supervisor started (epoch)
  ``child_up{role}``                          gauge 1/0: the vrrp / checkers child runs
  ``child_restarts_total{role}``              counter: restarts of that child
  ``reloads_total{result}``                   counter: SIGHUP reloads handled by the
                                              supervisor, result "ok" / "refused" (when the
                                              supervisor counts them apart), else "handled"
  ``last_reload_success``                     gauge 1/0: the last reload was applied
  ``child_reloads_total{role}``               counter: reloads the child applied
  ``child_last_reload_seconds{role}``         gauge: SIGHUP -> diff applied, last reload
  ``status_file_age_seconds{role}``           gauge: age of the child's status file
  ``status_file_stale{role}``                 gauge 1/0: the file is not to be trusted

VRRP (from vrrp-status.json)
  ``vrrp_state{instance,state}``              gauge 1 for the instance's current state,
                                              0 for the other states (INIT, BACKUP,
                                              MASTER, FAULT, STOP)
  ``vrrp_priority{instance}``                 gauge: effective priority
  ``vrrp_adverts_sent_total{instance}``       counter
  ``vrrp_adverts_received_total{instance}``   counter
  ``vrrp_became_master_total{instance}``      counter
  ``vrrp_released_master_total{instance}``    counter
  ``vrrp_errors_total{instance,kind}``        counter: bad_checksum, bad_ttl,
                                              auth_failure, ... (the instance's counters)
  ``vrrp_sync_group_state{group,state}``      gauge, like vrrp_state

virtual and real servers (from status.json)
  ``virtual_server_quorum_up{virtual_server}``      gauge 1/0
  ``virtual_server_sorry_active{virtual_server}``   gauge 1/0
  ``real_server_up{virtual_server,real_server}``    gauge 1/0: the checks' verdict
  ``real_server_drained{virtual_server,real_server}`` gauge 1/0
  ``real_server_weight{virtual_server,real_server}`` gauge: weight in the IPVS table
  ``real_server_configured_weight{...}``            gauge: weight in the configuration
  ``check_latency_seconds{virtual_server,real_server}`` gauge: the last check's latency
  ``last_check_timestamp_seconds{virtual_server,real_server}`` gauge (epoch)

kernel IPVS counters (not in a dry run; rates are left to PromQL's rate())
  ``ipvs_stats_available``                            gauge 1/0
  ``ipvs_service_connections_total{service}``         counter
  ``ipvs_service_packets_total{service,direction}``   counter, direction "in" / "out"
  ``ipvs_service_bytes_total{service,direction}``     counter
  ``ipvs_connections_total{service,real_server}``     counter: per real server
  ``ipvs_packets_total{service,real_server,direction}`` counter
  ``ipvs_bytes_total{service,real_server,direction}``   counter
  ``ipvs_active_connections{service,real_server}``    gauge
  ``ipvs_inactive_connections{service,real_server}``  gauge
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX = "lvs_director_"
VRRP_STATES = ("INIT", "BACKUP", "MASTER", "FAULT", "STOP")
_VRRP_COUNTED = {"adverts_sent", "adverts_received", "became_master", "released_master",
                 "priority_zero_sent", "priority_zero_received"}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, labels=labels)


def _counter(name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, doc, labels=labels)


class ViewCollector(Collector):
    """A collector over one status view (one scrape)."""

    def __init__(self, view: dict[str, Any]):
        self.view = view

    def collect(self) -> Iterator[Metric]:
        yield from self._daemon()
        yield from self._files()
        yield from self._vrrp()
        yield from self._servers()
        yield from self._ipvs()

    # ------------------------------------------------------------ director

    def _daemon(self) -> Iterator[Metric]:
        daemon = self.view.get("daemon")
        if not daemon:
            return
        started = _gauge("start_time_seconds", "When the director started (epoch s).", [])
        if _number(daemon.get("started_at")) is not None:
            started.add_metric([], float(daemon["started_at"]))
        yield started
        up = _gauge("child_up", "Whether the child process runs.", ["role"])
        restarts = _counter("child_restarts", "Restarts of the child process.", ["role"])
        for child in daemon.get("children") or ():
            role = str(child.get("role"))
            up.add_metric([role], 1.0 if child.get("running") else 0.0)
            restarts.add_metric([role], _number(child.get("restarts")) or 0.0)
        yield up
        yield restarts
        reload = daemon.get("reload") or {}
        reloads = _counter("reloads", "Reloads (SIGHUP) handled by the director.",
                           ["result"])
        if "ok_total" in reload or "refused_total" in reload:
            reloads.add_metric(["ok"], _number(reload.get("ok_total")) or 0.0)
            reloads.add_metric(["refused"], _number(reload.get("refused_total")) or 0.0)
        else:
            reloads.add_metric(["handled"], _number(reload.get("count")) or 0.0)
        yield reloads
        last = _gauge("last_reload_success", "Whether the last reload was applied "
                      "(absent before the first reload).", [])
        if reload.get("ok") is not None:
            last.add_metric([], 1.0 if reload.get("ok") else 0.0)
        yield last

    def _files(self) -> Iterator[Metric]:
        age = _gauge("status_file_age_seconds", "Age of the child's status file.", ["role"])
        stale = _gauge("status_file_stale", "Whether the child's status file is stale "
                       "(writer gone, stopped or stuck).", ["role"])
        reloads = _counter("child_reloads", "Reloads the child handled.", ["role"])
        seconds = _gauge("child_last_reload_seconds", "The child's last reload: SIGHUP "
                         "received -> difference applied.", ["role"])
        for role, source in sorted(self.view.get("files", {}).items()):
            if _number(source.get("age")) is not None:
                age.add_metric([role], float(source["age"]))
            stale.add_metric([role], 1.0 if source.get("stale") else 0.0)
            reload = source.get("reload") or {}
            if _number(reload.get("count")) is not None:
                reloads.add_metric([role], float(reload["count"]))
            if _number(reload.get("seconds")) is not None:
                seconds.add_metric([role], float(reload["seconds"]))
        yield from (age, stale, reloads, seconds)

    # ------------------------------------------------------------ VRRP

    def _vrrp(self) -> Iterator[Metric]:
        vrrp = self.view.get("vrrp", {})
        state = _gauge("vrrp_state", "VRRP instance state (1: the current one).",
                       ["instance", "state"])
        priority = _gauge("vrrp_priority", "VRRP instance effective priority.",
                          ["instance"])
        counted = {name: _counter(f"vrrp_{name}", f"VRRP {name.replace('_', ' ')}.",
                                  ["instance"]) for name in sorted(_VRRP_COUNTED)}
        errors = _counter("vrrp_errors", "VRRP adverts refused or failed, by kind.",
                          ["instance", "kind"])
        for instance in vrrp.get("instances", ()):
            name = str(instance.get("name"))
            for value in _states(instance.get("state")):
                state.add_metric([name, value], 1.0 if value == instance.get("state")
                                 else 0.0)
            if _number(instance.get("priority")) is not None:
                priority.add_metric([name], float(instance["priority"]))
            for counter, value in sorted((instance.get("counters") or {}).items()):
                if _number(value) is None:
                    continue
                if counter in counted:
                    counted[counter].add_metric([name], float(value))
                else:
                    errors.add_metric([name, counter], float(value))
        groups = _gauge("vrrp_sync_group_state", "VRRP sync group state (1: the current one).",
                        ["group", "state"])
        for group in vrrp.get("sync_groups", ()):
            for value in _states(group.get("state")):
                groups.add_metric([str(group.get("name")), value],
                                  1.0 if value == group.get("state") else 0.0)
        yield from (state, priority, *counted.values(), errors, groups)

    # ------------------------------------------------------------ servers

    def _servers(self) -> Iterator[Metric]:
        labels = ["virtual_server", "real_server"]
        quorum = _gauge("virtual_server_quorum_up", "Whether the virtual server has its "
                        "quorum.", ["virtual_server"])
        sorry = _gauge("virtual_server_sorry_active", "Whether the sorry server is in use.",
                       ["virtual_server"])
        up = _gauge("real_server_up", "Whether the real server passes its checks.", labels)
        drained = _gauge("real_server_drained", "Whether the real server is drained "
                         "(director drain).", labels)
        weight = _gauge("real_server_weight", "The real server's weight in the IPVS table.",
                        labels)
        configured = _gauge("real_server_configured_weight", "The real server's weight in "
                            "the configuration.", labels)
        latency = _gauge("check_latency_seconds", "Latency of the real server's last check.",
                         labels)
        checked = _gauge("last_check_timestamp_seconds", "When the real server was last "
                         "checked (epoch s).", labels)
        for vs in self.view.get("virtual_servers", ()):
            vs_id = str(vs.get("id"))
            quorum.add_metric([vs_id], 1.0 if vs.get("quorum_up") else 0.0)
            sorry.add_metric([vs_id], 1.0 if vs.get("sorry_active") else 0.0)
            for rs in vs.get("real_servers", ()):
                key = [vs_id, str(rs.get("name"))]
                up.add_metric(key, 1.0 if rs.get("up") else 0.0)
                drained.add_metric(key, 1.0 if rs.get("drained") else 0.0)
                for family, field in ((weight, "weight"), (configured, "configured_weight"),
                                      (latency, "latency"), (checked, "last_check")):
                    value = _number(rs.get(field))
                    if value is not None:
                        family.add_metric(key, value)
        yield from (quorum, sorry, up, drained, weight, configured, latency, checked)

    # ------------------------------------------------------------ IPVS

    def _ipvs(self) -> Iterator[Metric]:
        available = _gauge("ipvs_stats_available", "Whether the kernel's IPVS counters "
                           "were read (0 in a dry run or without ip_vs).", [])
        available.add_metric([], 1.0 if self.view.get("ipvs", {}).get("available") else 0.0)
        yield available
        s_conns = _counter("ipvs_service_connections", "Connections to the virtual "
                           "service (kernel counter).", ["service"])
        s_packets = _counter("ipvs_service_packets", "Packets of the virtual service.",
                             ["service", "direction"])
        s_bytes = _counter("ipvs_service_bytes", "Bytes of the virtual service.",
                           ["service", "direction"])
        labels = ["service", "real_server"]
        conns = _counter("ipvs_connections", "Connections scheduled to the real server.",
                         labels)
        packets = _counter("ipvs_packets", "Packets of the real server.",
                           [*labels, "direction"])
        octets = _counter("ipvs_bytes", "Bytes of the real server.", [*labels, "direction"])
        active = _gauge("ipvs_active_connections", "The real server's active connections.",
                        labels)
        inactive = _gauge("ipvs_inactive_connections", "The real server's inactive "
                          "connections.", labels)
        seen_services: set[str] = set()
        for vs in self.view.get("virtual_servers", ()):
            for stats in vs.get("ipvs", ()):
                service = str(stats.get("service"))
                if service in seen_services:
                    continue
                seen_services.add(service)
                s_conns.add_metric([service], _number(stats.get("connections")) or 0.0)
                for direction in ("in", "out"):
                    s_packets.add_metric([service, direction],
                                         _number(stats.get(f"packets_{direction}")) or 0.0)
                    s_bytes.add_metric([service, direction],
                                       _number(stats.get(f"bytes_{direction}")) or 0.0)
            for rs in vs.get("real_servers", ()):
                for stats in rs.get("ipvs", ()):
                    key = [str(stats.get("service")), str(rs.get("name"))]
                    conns.add_metric(key, _number(stats.get("connections")) or 0.0)
                    active.add_metric(key, _number(stats.get("active_connections")) or 0.0)
                    inactive.add_metric(key,
                                        _number(stats.get("inactive_connections")) or 0.0)
                    for direction in ("in", "out"):
                        packets.add_metric([*key, direction],
                                           _number(stats.get(f"packets_{direction}")) or 0.0)
                        octets.add_metric([*key, direction],
                                          _number(stats.get(f"bytes_{direction}")) or 0.0)
        yield from (s_conns, s_packets, s_bytes, conns, packets, octets, active, inactive)


def _states(current: Any) -> tuple[str, ...]:
    """keepalived's states, plus the current one if it is another."""
    if isinstance(current, str) and current not in VRRP_STATES:
        return (*VRRP_STATES, current)
    return VRRP_STATES


def metrics_text(view: dict[str, Any]) -> bytes:
    """The Prometheus text exposition of `view`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ViewCollector(view))
    return generate_latest(registry)
