"""/metrics as Prometheus reads it: the text parsed back with prometheus_client's own
parser, each family with the labels and values of the status view."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from director import status_view
from director.metrics import metrics_text
from tests.unit.test_api import (
    RS1,
    RS2,
    SERVICE,
    VS_ID,
    FakeReader,
    daemon_info,
    dead_pid,
    snapshot,
    write_state,
)


def samples(view: dict) -> dict[tuple[str, frozenset], float]:
    text = metrics_text(view).decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def test_vrrp_daemon_and_real_server_metrics(tmp_path: Path):
    write_state(tmp_path)
    found = samples(status_view.collect(str(tmp_path), daemon_info(), ipvs=False))
    assert value(found, "lvs_director_vrrp_state", instance="VI_1", state="MASTER") == 1
    for state in ("INIT", "BACKUP", "FAULT", "STOP"):
        assert value(found, "lvs_director_vrrp_state", instance="VI_1", state=state) == 0
    assert value(found, "lvs_director_vrrp_priority", instance="VI_1") == 150
    assert value(found, "lvs_director_vrrp_adverts_sent_total", instance="VI_1") == 42
    assert value(found, "lvs_director_vrrp_adverts_received_total", instance="VI_1") == 7
    assert value(found, "lvs_director_vrrp_errors_total", instance="VI_1", kind="bad_ttl") == 3
    assert value(found, "lvs_director_vrrp_sync_group_state", group="G1",
                 state="MASTER") == 1
    rs1, rs2 = dict(virtual_server=VS_ID, real_server=f"{RS1}:80"), \
        dict(virtual_server=VS_ID, real_server=f"{RS2}:80")
    assert value(found, "lvs_director_real_server_up", **rs1) == 1
    assert value(found, "lvs_director_real_server_up", **rs2) == 0
    assert value(found, "lvs_director_real_server_weight", **rs1) == 3
    assert value(found, "lvs_director_real_server_weight", **rs2) == 0
    assert value(found, "lvs_director_real_server_configured_weight", **rs2) == 2
    assert value(found, "lvs_director_check_latency_seconds", **rs1) == 0.0025
    assert value(found, "lvs_director_virtual_server_quorum_up", virtual_server=VS_ID) == 1
    assert value(found, "lvs_director_child_restarts_total", role="checkers") == 2
    assert value(found, "lvs_director_child_up", role="vrrp") == 1
    assert value(found, "lvs_director_reloads_total", result="ok") == 2
    assert value(found, "lvs_director_reloads_total", result="refused") == 1
    assert value(found, "lvs_director_last_reload_success") == 1
    assert value(found, "lvs_director_child_reloads_total", role="vrrp") == 2
    assert value(found, "lvs_director_status_file_stale", role="checkers") == 0
    assert value(found, "lvs_director_ipvs_stats_available") == 0


def test_ipvs_counters(tmp_path: Path):
    write_state(tmp_path)
    view = status_view.collect(str(tmp_path), None, ipvs=True,
                               reader=FakeReader(snapshot()))  # type: ignore[arg-type]
    found = samples(view)
    rs1 = dict(service=SERVICE, real_server=f"{RS1}:80")
    assert value(found, "lvs_director_ipvs_stats_available") == 1
    assert value(found, "lvs_director_ipvs_service_connections_total", service=SERVICE) == 120
    assert value(found, "lvs_director_ipvs_service_bytes_total", service=SERVICE,
                 direction="in") == 65000
    assert value(found, "lvs_director_ipvs_connections_total", **rs1) == 120
    assert value(found, "lvs_director_ipvs_active_connections", **rs1) == 5
    assert value(found, "lvs_director_ipvs_inactive_connections", **rs1) == 9
    assert value(found, "lvs_director_ipvs_packets_total", direction="in", **rs1) == 900
    assert value(found, "lvs_director_ipvs_bytes_total", direction="out", **rs1) == 0
    # a real server not in the kernel's table has no counters (not made-up zeros)
    assert not any(name == "lvs_director_ipvs_connections_total"
                   and dict(labels).get("real_server") == f"{RS2}:80"
                   for name, labels in found)


def test_stale_file_and_old_daemon_reload_counts(tmp_path: Path):
    write_state(tmp_path, vrrp_pid=dead_pid())
    daemon = daemon_info()
    daemon["reload"] = {"count": 4, "at": None, "ok": None, "problems": []}
    found = samples(status_view.collect(str(tmp_path), daemon, ipvs=False))
    assert value(found, "lvs_director_status_file_stale", role="vrrp") == 1
    assert value(found, "lvs_director_status_file_stale", role="checkers") == 0
    assert value(found, "lvs_director_reloads_total", result="handled") == 4
    assert not any(name == "lvs_director_last_reload_success" for name, _ in found)


def test_labels_with_quotes_and_backslashes_survive(tmp_path: Path):
    write_state(tmp_path)
    view = status_view.collect(str(tmp_path), None, ipvs=False)
    view["vrrp"]["instances"][0]["name"] = 'odd "name" \\ here'
    found = samples(view)
    assert value(found, "lvs_director_vrrp_priority", instance='odd "name" \\ here') == 150
