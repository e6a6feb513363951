"""YAML configurations of the real model: files load and validate, keepalived's sample
configurations survive YAML and JSON unchanged, random configurations too, and the
committed schema document is the one the model generates."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from test_codec import assert_round_trips, strategy_for

from checkers.spec import HttpGetCheck, HttpProtocol, TcpCheck, Url
from director.config import schema_doc
from director.config.errors import Diagnostics
from director.config.keepalived import build_config
from director.config.model import (
    Config,
    Forwarding,
    LvsMethod,
    Protocol,
    RealServer,
    VirtualServer,
)
from director.config.reader import read_file
from director.config.yaml_config import dump_json, dump_yaml, load_yaml, parse_yaml

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted(Path("/usr/share/doc/keepalived/samples").glob("keepalived.conf.*"))


def load_text(tmp_path: Path, text: str, name: str = "director.yaml"):
    path = tmp_path / name
    path.write_text(text)
    diag = Diagnostics()
    return load_yaml(str(path), diag), [str(p) for p in diag.problems], str(path)


def test_a_yaml_file_loads_with_the_place_of_every_object(tmp_path):
    config, problems, path = load_text(tmp_path, """\
global_defs:
  router_id: lb1
virtual_servers:
  - address: 192.0.2.1
    port: 80
    protocol: TCP
    lvs_sched: rr
    lvs_method: {forwarding: DR}
    real_servers:
      - address: 192.0.2.10
        port: 80
        checkers:
          - kind: TCP_CHECK
            connect_timeout: 3
""")
    assert problems == []
    assert config.global_defs.router_id == "lb1"
    vs = config.virtual_servers[0]
    assert vs.address == ipaddress.ip_address("192.0.2.1")
    assert vs.lvs_method == LvsMethod(forwarding=Forwarding.DR)
    assert vs.origin == f"{path}:4:5"
    real = vs.real_servers[0]
    assert real.origin == f"{path}:10:9"
    # What the checker does not write, it inherits from its real server.
    assert real.checkers == (TcpCheck(connect_timeout=3.0, connect_ip=real.address,
                                      connect_port=80),)
    assert real.checkers[0].origin == f"{path}:13:13"


def test_the_loaded_config_is_validated_like_a_keepalived_conf(tmp_path):
    config, problems, path = load_text(tmp_path, """\
virtual_servers:
  - address: 192.0.2.1
    port: 80
    protocol: TCP
  - address: 192.0.2.1
    lvs_sched: nosuch
    port: 80
    protocol: TCP
""")
    assert config is None
    assert f"{path}:6:16: unknown scheduler 'nosuch'" in " ".join(problems)
    assert any(p.startswith(f"{path}:5:5: virtual server [192.0.2.1]:TCP:80 is already "
                            f"defined at {path}:2:5") for p in problems)


def test_type_errors_in_a_file_name_the_place_and_the_path(tmp_path):
    config, problems, path = load_text(tmp_path, """\
virtual_servers:
  - address: 192.0.2.1
    real_servers:
      - address: 192.0.2.10
      - address: 192.0.2.11
        weight: heavy
""")
    assert config is None
    assert problems == [f"{path}:6:17: virtual_servers[0].real_servers[1].weight: "
                        f"expected an integer, got 'heavy'"]


def test_enumerations_written_as_numbers_are_read_as_written(tmp_path):
    config, problems, _ = load_text(tmp_path, """\
virtual_servers:
  - address: 192.0.2.1
    port: 80
    protocol: TCP
    real_servers:
      - address: 192.0.2.10
        port: 80
        checkers: [{kind: HTTP_GET, http_protocol: 1.1, urls: [{path: /}]}]
""")
    assert problems == []
    checker = config.virtual_servers[0].real_servers[0].checkers[0]
    assert checker.http_protocol is HttpProtocol.HTTP_1_1


def test_a_json_file_loads_too(tmp_path):
    config = big_config(2, 2)
    path = tmp_path / "director.json"
    path.write_text(dump_json(config))
    diag = Diagnostics()
    assert load_yaml(str(path), diag) == config
    assert diag.problems == []


def test_a_missing_file_is_a_reported_problem(tmp_path):
    diag = Diagnostics()
    assert load_yaml(str(tmp_path / "nothing.yaml"), diag) is None
    assert len(diag.errors) == 1
    assert "nothing.yaml" in diag.errors[0].message


def keepalived_config(path: Path) -> tuple[Config, Diagnostics]:
    diag = Diagnostics()
    return build_config(read_file(str(path), diag), diag), diag


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_keepalived_samples_survive_yaml_and_json(sample: Path, tmp_path: Path):
    config, kept_diag = keepalived_config(sample)
    assert_round_trips(config, Config)
    # Through a file, validation included: no error that keepalived.conf did not have.
    path = tmp_path / "sample.yaml"
    path.write_text(dump_yaml(config))
    diag = Diagnostics()
    loaded = load_yaml(str(path), diag)
    if not kept_diag.errors:
        assert diag.errors == []
        assert loaded == config


def test_the_samples_do_hold_servers_and_checkers():
    # The round trips above are worth something only if the samples are not empty.
    configs = [keepalived_config(sample)[0] for sample in SAMPLES]
    assert sum(len(c.virtual_servers) for c in configs) >= 15
    assert sum(len(c.vrrp.instances) for c in configs) >= 30
    kinds = {type(checker).__name__ for c in configs for vs in c.virtual_servers
             for rs in vs.real_servers for checker in rs.checkers}
    assert {"TcpCheck", "HttpGetCheck", "SslGetCheck", "MiscCheck", "SmtpCheck", "UdpCheck",
            "PingCheck"} <= kinds


def test_a_written_config_is_short():
    # Concise: neither the defaults nor what the servers inherit (the real server's port,
    # the checker's connect_ip and connect_port) are written.
    real = ipaddress.ip_address("192.0.2.10")
    config = Config(virtual_servers=(VirtualServer(
        address=ipaddress.ip_address("192.0.2.1"), port=443,
        real_servers=(RealServer(address=real, port=443, checkers=(HttpGetCheck(
            connect_ip=real, connect_port=443, urls=(Url(path="/health"),)),)),)),))
    assert dump_yaml(config, concise=True) == """\
virtual_servers:
- address: 192.0.2.1
  port: 443
  real_servers:
  - address: 192.0.2.10
    checkers:
    - kind: HTTP_GET
      urls:
      - path: /health
"""
    assert '"kind": "HTTP_GET"' in dump_json(config, concise=True)
    assert "connect_ip: 192.0.2.10" in dump_yaml(config)  # by default, effective values


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(strategy_for(Config))
def test_random_configs_round_trip(config):
    assert_round_trips(config, Config)


@pytest.mark.parametrize("cls", schema_doc.reachable(Config)[0], ids=lambda c: c.__name__)
def test_random_instances_of_every_model_class_round_trip(cls):
    # Random whole configs rarely reach deep classes (checkers' urls, VRRP tracking);
    # each class as the root of its own document does.
    @settings(max_examples=25, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(strategy_for(cls))
    def round_trip(value):
        assert_round_trips(value, cls)

    round_trip()


def big_config(services: int, reals: int) -> Config:
    """A config as a person writes it: what the servers inherit is not repeated."""
    def address(i: int, j: int) -> ipaddress.IPv4Address:
        return ipaddress.IPv4Address(int(ipaddress.IPv4Address("198.51.100.0")) + i * 64 + j)

    return Config(virtual_servers=tuple(
        VirtualServer(
            address=address(i, 1), port=80, protocol=Protocol.TCP, lvs_sched="wrr",
            lvs_method=LvsMethod(forwarding=Forwarding.DR), delay_loop=5.0,
            real_servers=tuple(
                RealServer(address=address(i, 10 + j), port=80, weight=1 + j % 3,
                           checkers=(HttpGetCheck(urls=(Url(path="/health"),)),))
                for j in range(reals)))
        for i in range(services)))


def test_the_committed_schema_document_is_up_to_date():
    committed = (REPO / "conf" / "yaml-schema.md").read_text()
    assert committed == schema_doc.generate(), (
        "conf/yaml-schema.md is stale: python -m director.config.schema_doc "
        "> conf/yaml-schema.md")


def test_the_schema_document_covers_every_key_and_kind():
    text = schema_doc.generate()
    for name in ("virtual_servers", "real_servers", "checkers", "connect_timeout",
                 "virtual_router_id", "urls", "digest"):
        assert f"| `{name}` |" in text
    assert "Chosen by `kind: HTTP_GET`." in text
    assert "## VirtualServer" in text


def test_the_schema_document_is_written_by_the_module():
    result = subprocess.run([sys.executable, "-m", "director.config.schema_doc"], cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout == schema_doc.generate()


def test_parse_yaml_reads_a_config_without_validating_it():
    diag = Diagnostics()
    config = parse_yaml("virtual_servers: [{lvs_sched: nosuch}]\n", "x.yaml", Config, diag)
    assert diag.problems == []
    assert config.virtual_servers[0].lvs_sched == "nosuch"


def test_slow_start_loads_from_yaml_and_survives_a_dump(tmp_path):
    config, problems, _ = load_text(tmp_path, """\
virtual_servers:
  - address: 192.0.2.1
    port: 80
    protocol: TCP
    slow_start: 45
    real_servers:
      - address: 192.0.2.10
""")
    assert problems == []
    assert config.virtual_servers[0].slow_start == 45.0
    assert "slow_start: 45" in dump_yaml(config, concise=True)
    again, problems, _ = load_text(tmp_path, dump_yaml(config), "again.yaml")
    assert problems == [] and again == config
