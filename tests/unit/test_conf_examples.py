"""The example configurations in conf/: an LVS-DR director pair (A and B) in
keepalived.conf and YAML form. Each loads without a warning, each YAML file is the
same configuration as its keepalived.conf, and A and B form a pair: one VRRP router
(same VRID and VIPs) with A preferred, and the same IPVS table on both."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from director.config.load import load_config
from director.config.model import Config

CONF = Path(__file__).resolve().parents[2] / "conf"
EXAMPLES = ["director-a.conf", "director-b.conf", "director-a.yaml", "director-b.yaml"]


def load(name: str, config_id: str | None = None) -> Config:
    config, warnings = load_config(str(CONF / name), strict=True, config_id=config_id)
    assert warnings == []
    return config


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_example_loads_without_a_warning(name: str) -> None:
    config, warnings = load_config(str(CONF / name))
    assert [str(w) for w in warnings] == []
    assert config.vrrp.instances and config.virtual_servers


@pytest.mark.parametrize("director", ["a", "b"])
def test_the_yaml_file_is_the_same_configuration_as_the_keepalived_conf(director: str):
    assert load(f"director-{director}.yaml") == load(f"director-{director}.conf")


def assert_a_pair(a: Config, b: Config) -> None:
    (va,), (vb,) = a.vrrp.instances, b.vrrp.instances
    assert va.virtual_router_id == vb.virtual_router_id
    assert (va.interface, va.version, va.advert_int) == (vb.interface, vb.version, vb.advert_int)
    assert va.virtual_ipaddresses == vb.virtual_ipaddresses != ()
    assert (va.state, vb.state) == ("MASTER", "BACKUP")
    assert va.priority > vb.priority
    assert a.global_defs.router_id != b.global_defs.router_id
    # Connection sync follows the shared instance on both sides.
    assert a.global_defs.lvs_sync_daemon == b.global_defs.lvs_sync_daemon
    assert a.global_defs.lvs_sync_daemon is not None
    assert a.global_defs.lvs_sync_daemon.vrrp_instance == va.name
    # Whichever director is master serves the same table.
    assert a.virtual_servers == b.virtual_servers
    # The VIPs are the addresses the virtual servers listen on.
    vips = {str(v.address).split("/")[0] for v in va.virtual_ipaddresses}
    assert {str(vs.address) for vs in a.virtual_servers} <= vips


@pytest.mark.parametrize("form", ["conf", "yaml"])
def test_a_and_b_form_a_pair(form: str) -> None:
    assert_a_pair(load(f"director-a.{form}"), load(f"director-b.{form}"))


def test_the_one_file_pair_config_forms_a_pair_with_config_ids() -> None:
    assert_a_pair(load("lvs-dr-pair.conf", "dirA"), load("lvs-dr-pair.conf", "dirB"))


def test_the_pair_is_an_lvs_dr_web_service_with_health_checks_and_a_fallback() -> None:
    (vs,) = load("director-a.conf").virtual_servers
    assert vs.lvs_method.forwarding.value == "DR"
    assert len(vs.real_servers) >= 2
    for rs in vs.real_servers:
        assert rs.lvs_method.forwarding.value == "DR"
        (check,) = rs.checkers
        assert check.kind == "HTTP_GET"
        assert [(u.path, [(s.low, s.high) for s in u.status_code]) for u in check.urls] == \
            [("/healthz", [(200, 200)])]
    assert vs.sorry_server is not None and vs.quorum >= 1
    assert not vs.persistence_timeout  # one client in the demo sees the balancing


def test_a_and_b_differ_only_in_what_the_comments_say_differs() -> None:
    a, b = load("director-a.conf"), load("director-b.conf")
    (va,), (vb,) = a.vrrp.instances, b.vrrp.instances
    assert dataclasses.replace(vb, state=va.state, priority=va.priority) == va
    assert dataclasses.replace(b.global_defs, router_id=a.global_defs.router_id) == \
        a.global_defs
