"""keepalived.conf -> Config: top-level routing, loading, the Debian samples, the model's
conventions and the time a large config takes."""

from __future__ import annotations

import dataclasses
import textwrap
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from director.config import codec, model
from director.config.errors import ConfigError, Diagnostics, Severity
from director.config.keepalived import build_config, load_keepalived, validate_config
from director.config.model import (
    Config,
    InterfaceDelays,
    LinkbeatInterface,
    RawStatement,
    RealServer,
    SslSettings,
    VirtualServer,
)
from director.config.reader import read_text

FILE = "k.conf"
SAMPLES = Path("/usr/share/doc/keepalived/samples")
SAMPLE_FILES = sorted(SAMPLES.glob("keepalived.conf.*"))


def load(text: str) -> tuple[Config, Diagnostics]:
    diag = Diagnostics()
    nodes = read_text(textwrap.dedent(text).strip("\n") + "\n", FILE, diag)
    return build_config(nodes, diag), diag


def problems(diag: Diagnostics) -> list[tuple[str, str, Severity]]:
    return [(p.origin, p.message, p.severity) for p in diag.problems]


# ------------------------------------------------------------------ the Debian samples

# Lines of the samples where `keepalived -t -f SAMPLE` (keepalived 2.2.7) itself reports
# something: the only places where a problem of ours is accepted. Every one is in a VRRP
# block (none in global_defs or the LVS part) and repeats what keepalived says there.
KEEPALIVED_COMPLAINS_AT = {
    # "(VI_1) Initial state master is incompatible with AH authentication - clearing"
    "keepalived.conf.SSL_GET": {14},
    # "No script set for vrrp_script check_VI_0" unless run with -i high / -i low
    "keepalived.conf.conditional_conf": {13, 25},
    # "Unknown keyword 'VI_2'/'VI_3'" (instance names outside a group { } block), hence an
    # empty sync group; "lvs_sync_daemon_interface against a vrrp is deprecated"
    "keepalived.conf.vrrp.lvs_syncd": {3, 4, 5, 11},
    # '"or" for routes is deprecated', '"gw" for routes is deprecated', untracked routes
    "keepalived.conf.vrrp.routes": {29, 30, 31, 32},
    "keepalived.conf.vrrp.static_ipaddress": {25},
    "keepalived.conf.track_interface": {31},
    # "Rule has no preference specified", "Invalid rule to address 192.168.100./24"
    "keepalived.conf.vrrp.rules": {10, 11, 25, 26},
}
# The samples that keepalived itself cannot fully load: their errors, by line.
SAMPLE_ERRORS = {"keepalived.conf.vrrp.rules": {11, 26}}


def _line(origin: str) -> int:
    return int(origin.rsplit(":", 2)[1])


@pytest.mark.skipif(not SAMPLE_FILES, reason="keepalived's samples are not installed")
@pytest.mark.parametrize("sample", SAMPLE_FILES, ids=[p.name for p in SAMPLE_FILES])
def test_every_debian_sample_loads(sample: Path) -> None:
    config_id = "high" if "conditional" in sample.name else None
    expected_errors = SAMPLE_ERRORS.get(sample.name, set())
    try:
        config, found = load_keepalived(str(sample), config_id=config_id)
    except ConfigError as error:
        found = error.problems
        errors = {_line(p.origin) for p in found if p.severity is Severity.ERROR}
        assert errors == expected_errors, [str(p) for p in found]
    else:
        assert not expected_errors
        assert isinstance(config, Config)
    allowed = KEEPALIVED_COMPLAINS_AT.get(sample.name, set())
    for problem in found:
        assert problem.origin.startswith(f"{sample}:")
        assert _line(problem.origin) in allowed, str(problem)


@pytest.mark.skipif(not SAMPLE_FILES, reason="keepalived's samples are not installed")
def test_samples_build_what_they_say() -> None:
    config, _ = load_keepalived(str(SAMPLES / "keepalived.conf.sample"))
    (vs,) = config.virtual_servers
    assert vs.describe() == "[10.10.10.2]:TCP:1358"
    assert (vs.lvs_sched, vs.lvs_method.forwarding.value, vs.delay_loop) == ("rr", "NAT", 6.0)
    assert vs.sorry_server is not None and vs.sorry_server.address == IPv4Address(
        "192.168.200.200")
    assert config.global_defs.router_id == "LVS_DEVEL"
    assert config.global_defs.notification_email == ("acassen",)
    assert [i.name for i in config.vrrp.instances] == ["VI_1"]
    config, _ = load_keepalived(str(SAMPLES / "keepalived.conf.virtual_server_group"))
    (group,) = config.virtual_server_groups
    assert (len(group.address_ranges), len(group.fwmarks)) == (4, 2)
    assert config.virtual_servers[0].group == "VSG_1"
    config, _ = load_keepalived(str(SAMPLES / "keepalived.conf.quorum"))
    vs = config.virtual_servers[0]
    assert (vs.quorum, vs.hysteresis, vs.alpha, vs.omega) == (7, 2, True, True)
    assert vs.quorum_up is not None and vs.quorum_up.command == "/usr/local/sbin/quorum-up.sh"
    assert len(vs.real_servers) == 10


@pytest.mark.skipif(not SAMPLE_FILES, reason="keepalived's samples are not installed")
@pytest.mark.parametrize("config_id", ["high", "low"])
def test_conditional_sample_follows_the_config_id(config_id: str) -> None:
    config, _ = load_keepalived(str(SAMPLES / "keepalived.conf.conditional_conf"),
                                config_id=config_id)
    assert config.global_defs.net_namespace == config_id
    assert config.vrrp.scripts[0].script[0].endswith(f"check_{config_id}_VI_0.sh")


@pytest.mark.skipif(not SAMPLE_FILES, reason="keepalived's samples are not installed")
@pytest.mark.parametrize("sample", SAMPLE_FILES, ids=[p.name for p in SAMPLE_FILES])
def test_samples_survive_the_data_codec(sample: Path) -> None:
    """The model keeps to the shared conventions: plain data and back gives the same."""
    diag = Diagnostics()
    config = build_config(read_text(sample.read_text(), str(sample), diag, "high"), diag)
    data = codec.to_data(config)
    again = codec.from_data(Config, data, Diagnostics())
    assert again == config


# ------------------------------------------------------------------ top-level routing


def test_other_top_level_statements() -> None:
    config, diag = load("""
        SSL {
            password secret
            ca /etc/ssl/ca.pem
            certificate /etc/ssl/c.pem
            key /etc/ssl/k.pem
        }
        linkbeat_interfaces {
            eth2
            enp2s0 ETHTOOL
        }
        interface_up_down_delays {
            eth0 0.5
            eth1 1 2
        }
    """)
    assert not diag.problems, [str(p) for p in diag.problems]
    assert config.ssl == SslSettings(password="secret", ca="/etc/ssl/ca.pem",
                                     certificate="/etc/ssl/c.pem", key="/etc/ssl/k.pem")
    assert config.linkbeat_interfaces == (LinkbeatInterface(name="eth2"),
                                          LinkbeatInterface(name="enp2s0", polling="ETHTOOL"))
    assert config.interface_up_down_delays == (
        InterfaceDelays(interface="eth0", down_delay=0.5, up_delay=0.5),
        InterfaceDelays(interface="eth1", down_delay=1.0, up_delay=2.0))


def test_unsupported_and_unknown_top_level_statements_are_warnings() -> None:
    config, diag = load("""
        bfd_instance BFD1 {
            neighbor_ip 192.0.2.9
        }
        virtual_servre 192.0.2.1 80 {
        }
    """)
    assert problems(diag) == [
        (f"{FILE}:1:1", "'bfd_instance' is not supported yet; ignored", Severity.WARNING),
        (f"{FILE}:4:1", "unknown keyword 'virtual_servre' in the top level (did you mean "
                        "'virtual_server'?); ignored", Severity.WARNING),
    ]
    assert config.unsupported == (RawStatement(
        keyword="bfd_instance", args=("BFD1",),
        children=(RawStatement(keyword="neighbor_ip", args=("192.0.2.9",)),)),)


def test_blocks_are_required_where_keepalived_needs_them() -> None:
    _, diag = load("""
        global_defs
        virtual_server 192.0.2.1 80
        virtual_server_group G
    """)
    assert problems(diag) == [
        (f"{FILE}:1:1", "'global_defs' needs a { } block", Severity.ERROR),
        (f"{FILE}:3:1", "virtual_server_group needs a { } block of entries", Severity.ERROR),
        (f"{FILE}:2:1", "virtual_server needs a { } block", Severity.ERROR),
    ]


def test_order_in_the_file_does_not_matter() -> None:
    config, diag = load("""
        virtual_server group G {
            protocol TCP
            real_server 192.0.2.11 80 {
            }
        }
        virtual_server_group G {
            192.0.2.1 80
        }
        global_defs {
            smtp_alert_checker off
        }
    """)
    assert not diag.problems, [str(p) for p in diag.problems]
    assert config.virtual_servers[0].real_servers[0].smtp_alert is False


# ------------------------------------------------------------------ loading


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "keepalived.conf"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_load_returns_the_warnings(tmp_path: Path) -> None:
    path = write(tmp_path, """
        virtual_server 192.0.2.1 80 {
            protocol TCP
            bogus 1
            real_server 192.0.2.11 80
        }
    """)
    config, warnings = load_keepalived(path)
    assert len(config.virtual_servers) == 1
    assert [(p.origin, p.severity) for p in warnings] == [(f"{path}:4:5", Severity.WARNING)]
    with pytest.raises(ConfigError) as caught:
        load_keepalived(path, strict=True)
    assert [p.origin for p in caught.value.problems] == [f"{path}:4:5"]


def test_load_raises_with_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path, """
        virtual_server 192.0.2.1 80 {
            protocol TCP
            delay_loop soon
            bogus 1
            real_server 192.0.2.11 80
        }
        virtual_server 192.0.2.1 80 {
            protocol TCP
            real_server 192.0.2.11 80
        }
    """)
    with pytest.raises(ConfigError) as caught:
        load_keepalived(path)
    assert [(p.origin, p.severity) for p in caught.value.problems] == [
        (f"{path}:4:16", Severity.ERROR),
        (f"{path}:5:5", Severity.WARNING),
        (f"{path}:8:1", Severity.ERROR),
    ]


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_keepalived(str(tmp_path / "nope.conf"))
    assert caught.value.problems and "nope.conf" in str(caught.value)


def test_load_leaves_the_garbage_collector_as_it_was(tmp_path: Path) -> None:
    import gc

    path = write(tmp_path, "global_defs {\n}\n")
    assert gc.isenabled()
    load_keepalived(path)
    assert gc.isenabled()
    gc.disable()
    try:
        load_keepalived(path)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_validate_config_checks_a_config_from_elsewhere() -> None:
    good = Config(virtual_servers=(VirtualServer(
        address=IPv4Address("192.0.2.1"), port=80, protocol=model.Protocol.TCP,
        real_servers=(RealServer(address=IPv4Address("192.0.2.11"), port=80),)),))
    assert validate_config(good, Diagnostics()) is good
    bad = dataclasses.replace(good, virtual_servers=good.virtual_servers * 2)
    diag = Diagnostics()
    assert validate_config(bad, diag) is None and diag.failed


# ------------------------------------------------------------------ model conventions


MODEL_CLASSES = [cls for cls in vars(model).values()
                 if isinstance(cls, type) and dataclasses.is_dataclass(cls)
                 and cls.__module__ == model.__name__]


@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=[c.__name__ for c in MODEL_CLASSES])
def test_model_classes_follow_the_conventions(cls: type) -> None:
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    assert params.frozen and hasattr(cls, "__slots__")
    instance = cls()  # every field has a default
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(instance, dataclasses.fields(cls)[0].name, 0)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if "origin" in fields and cls is not model.FieldOrigin:  # a record of where, not data
        assert not fields["origin"].compare and not fields["origin"].repr
    assert all(f.kw_only for f in fields.values())


# ------------------------------------------------------------------ size


def big_config(services: int = 2000, servers: int = 20) -> str:
    lines = ["global_defs {", "    router_id big", "}"]
    for v in range(services):
        lines += [f"virtual_server 10.{v // 250}.{v % 250}.1 80 {{", "    delay_loop 6",
                  "    lb_algo wrr", "    lb_kind DR", "    protocol TCP",
                  "    persistence_timeout 50"]
        for r in range(servers):
            lines += [f"    real_server 192.168.{v % 250}.{r + 1} 80 {{", "        weight 1",
                      "        TCP_CHECK {", "            connect_timeout 3", "        }",
                      "    }"]
        lines.append("}")
    return "\n".join(lines) + "\n"


def test_a_large_generated_config_loads_every_server(tmp_path: Path) -> None:
    # Load time is measured in tests/bench (make bench), not asserted here.
    path = tmp_path / "large.conf"
    path.write_text(big_config(200))
    config, warnings = load_keepalived(str(path))
    assert not warnings
    assert len(config.virtual_servers) == 200
    assert sum(len(vs.real_servers) for vs in config.virtual_servers) == 4_000
    assert all(rs.checkers for vs in config.virtual_servers for rs in vs.real_servers)


def test_an_instance_sync_daemon_interface_becomes_the_global_sync_daemon() -> None:
    config, diag = load("""
        vrrp_instance VI_1 {
            interface eth0
            virtual_router_id 5
            lvs_sync_daemon_interface eth1
            virtual_ipaddress {
                192.0.2.5
            }
        }
        """)
    daemon = config.global_defs.lvs_sync_daemon
    assert (daemon.interface, daemon.vrrp_instance) == ("eth1", "VI_1")
    assert any("deprecated" in p.message for p in diag.warnings)


def test_a_global_sync_daemon_wins_over_the_deprecated_instance_keyword() -> None:
    config, _ = load("""
        global_defs {
            lvs_sync_daemon eth2 VI_1
        }
        vrrp_instance VI_1 {
            interface eth0
            virtual_router_id 5
            lvs_sync_daemon_interface eth1
            virtual_ipaddress {
                192.0.2.5
            }
        }
        """)
    assert config.global_defs.lvs_sync_daemon.interface == "eth2"
