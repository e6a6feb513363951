"""A YAML configuration inherits what it leaves out as a keepalived.conf does: the same
services written both ways load to the same model, written values win, and dumps read
back as what was dumped."""

from __future__ import annotations

import dataclasses
import ipaddress
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_codec import strategy_for

from checkers.spec import CheckerSpec, DnsCheck, MiscCheck, SmtpHost, TcpCheck
from director.config.errors import Diagnostics
from director.config.keepalived import build_config
from director.config.model import (
    Config,
    Forwarding,
    GlobalDefs,
    LvsMethod,
    RealServer,
    VirtualServer,
)
from director.config.reader import read_file, read_text
from director.config.resolve import (
    CheckerContext,
    checker_inherited,
    config_data,
    instance_inherited,
    resolve_config,
)
from director.config.yaml_config import (
    dump_json,
    dump_yaml,
    load_yaml,
    parse_json,
    parse_yaml,
)
from vrrp.spec import VrrpConfig, VrrpGlobals, VrrpInstance

SAMPLES = sorted(Path("/usr/share/doc/keepalived/samples").glob("keepalived.conf.*"))


def from_conf(text: str) -> Config:
    diag = Diagnostics()
    config = build_config(read_text(textwrap.dedent(text), "t.conf", diag), diag)
    assert diag.errors == []
    return config


def from_yaml(tmp_path: Path, text: str, name: str = "t.yaml") -> Config:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    diag = Diagnostics()
    config = load_yaml(str(path), diag)
    assert diag.errors == [], diag.problems
    return config


# (keepalived.conf, the same written as YAML by hand)
SAME = {
    "http_get_with_only_a_url": ("""
        virtual_server 192.0.2.1 80 {
            protocol TCP
            delay_loop 5
            connect_timeout 2
            lvs_method DR
            real_server 192.0.2.10 80 {
                HTTP_GET {
                    url {
                        path /health
                    }
                }
            }
        }
        """, """
        virtual_servers:
          - address: 192.0.2.1
            port: 80
            protocol: TCP
            delay_loop: 5
            connect_timeout: 2
            lvs_method: {forwarding: DR}
            real_servers:
              - address: 192.0.2.10
                checkers:
                  - kind: HTTP_GET
                    urls: [{path: /health}]
        """),
    "tcp_check_and_real_server_overrides": ("""
        virtual_server 192.0.2.1 443 {
            protocol TCP
            delay_loop 10
            retry 4
            inhibit_on_failure
            weight 3
            real_server 192.0.2.10 443 {
                delay_loop 20
                delay_before_retry 7
                TCP_CHECK {
                    connect_timeout 1
                }
            }
            real_server 192.0.2.11 443 {
                weight 5
                TCP_CHECK {
                    retry 1
                    connect_port 8443
                }
            }
        }
        """, """
        virtual_servers:
          - address: 192.0.2.1
            port: 443
            protocol: TCP
            delay_loop: 10
            retry: 4
            inhibit_on_failure: true
            weight: 3
            real_servers:
              - address: 192.0.2.10
                delay_loop: 20
                delay_before_retry: 7
                checkers: [{kind: TCP_CHECK, connect_timeout: 1}]
              - address: 192.0.2.11
                weight: 5
                checkers: [{kind: TCP_CHECK, retry: 1, connect_port: 8443}]
        """),
    "misc_check_retries_0_by_default": ("""
        virtual_server 192.0.2.1 80 {
            protocol TCP
            delay_loop 7
            real_server 192.0.2.10 80 {
                MISC_CHECK {
                    misc_path "/usr/local/bin/check 192.0.2.10"
                }
            }
            real_server 192.0.2.11 80 {
                TCP_CHECK {
                }
            }
        }
        """, """
        virtual_servers:
          - address: 192.0.2.1
            port: 80
            protocol: TCP
            delay_loop: 7
            real_servers:
              - address: 192.0.2.10
                checkers:
                  - kind: MISC_CHECK
                    misc_path: [/usr/local/bin/check, 192.0.2.10]
              - address: 192.0.2.11
                checkers: [{kind: TCP_CHECK}]
        """),
    "dns_check_retries_3_after_its_delay_loop": ("""
        virtual_server 192.0.2.1 53 {
            protocol UDP
            delay_loop 10
            real_server 192.0.2.10 53 {
                DNS_CHECK {
                    name example.org
                }
            }
        }
        """, """
        virtual_servers:
          - address: 192.0.2.1
            port: 53
            protocol: UDP
            delay_loop: 10
            real_servers:
              - address: 192.0.2.10
                checkers: [{kind: DNS_CHECK, name: example.org}]
        """),
    "fwmark_service_with_real_server_ports": ("""
        virtual_server fwmark 7 {
            lvs_method DR
            delay_loop 3
            real_server 192.0.2.10 443 {
                weight 2
                TCP_CHECK {
                }
            }
            real_server 192.0.2.11 {
                TCP_CHECK {
                    connect_port 8443
                }
            }
        }
        """, """
        virtual_servers:
          - fwmark: 7
            lvs_method: {forwarding: DR}
            delay_loop: 3
            real_servers:
              - address: 192.0.2.10
                port: 443
                weight: 2
                checkers: [{kind: TCP_CHECK}]
              - address: 192.0.2.11
                checkers: [{kind: TCP_CHECK, connect_port: 8443}]
        """),
    "virtualhost_warmup_and_alpha": ("""
        virtual_server 192.0.2.1 80 {
            protocol TCP
            virtualhost www.example.org
            warmup 0
            real_server 192.0.2.10 80 {
                HTTP_GET {
                    url {
                        path /
                    }
                }
                SSL_GET {
                    connect_port 443
                    url {
                        path /s
                    }
                }
            }
            real_server 192.0.2.11 80 {
                warmup 12
                alpha
                virtualhost other.example.org
                HTTP_GET {
                    url {
                        path /
                    }
                }
            }
        }
        """, """
        virtual_servers:
          - address: 192.0.2.1
            port: 80
            protocol: TCP
            virtualhost: www.example.org
            warmup: 0
            real_servers:
              - address: 192.0.2.10
                checkers:
                  - {kind: HTTP_GET, urls: [{path: /}]}
                  - {kind: SSL_GET, connect_port: 443, urls: [{path: /s}]}
              - address: 192.0.2.11
                warmup: 12
                alpha: true
                virtualhost: other.example.org
                checkers: [{kind: HTTP_GET, urls: [{path: /}]}]
        """),
    "smtp_check_hosts_inherit_the_checker": ("""
        virtual_server 192.0.2.1 25 {
            protocol TCP
            connect_timeout 4
            real_server 192.0.2.10 25 {
                SMTP_CHECK {
                    helo_name lb.example.org
                }
            }
            real_server 192.0.2.11 25 {
                SMTP_CHECK {
                    connect_timeout 9
                    host {
                        connect_ip 192.0.2.12
                    }
                    host {
                        connect_port 2525
                    }
                }
            }
        }
        """, """
        virtual_servers:
          - address: 192.0.2.1
            port: 25
            protocol: TCP
            connect_timeout: 4
            real_servers:
              - address: 192.0.2.10
                checkers: [{kind: SMTP_CHECK, helo_name: lb.example.org}]
              - address: 192.0.2.11
                checkers:
                  - kind: SMTP_CHECK
                    connect_timeout: 9
                    hosts: [{connect_ip: 192.0.2.12}, {connect_port: 2525}]
        """),
    "sorry_server_and_persistence": ("""
        virtual_server 192.0.2.1 80 {
            protocol TCP
            lvs_method DR
            persistence_granularity 255.255.255.0
            sorry_server 192.0.2.99
            real_server 192.0.2.10 80 {
            }
        }
        """, """
        virtual_servers:
          - address: 192.0.2.1
            port: 80
            protocol: TCP
            lvs_method: {forwarding: DR}
            persistence_granularity: 24
            sorry_server: {address: 192.0.2.99}
            real_servers: [{address: 192.0.2.10}]
        """),
    "global_settings_shared_with_vrrp_and_servers": ("""
        global_defs {
            smtp_alert
            script_user nobody nogroup
            vrrp_priority -5
            default_interface eth1
        }
        virtual_server 192.0.2.1 80 {
            protocol TCP
            real_server 192.0.2.10 80 {
            }
        }
        vrrp_instance VI_1 {
            interface eth0
            virtual_router_id 51
            virtual_ipaddress {
                192.0.2.100/24
            }
        }
        """, """
        global_defs:
          smtp_alert: true
          script_user: nobody
          script_group: nogroup
          vrrp_process: {priority: -5}
          default_interface: eth1
        virtual_servers:
          - address: 192.0.2.1
            port: 80
            protocol: TCP
            real_servers: [{address: 192.0.2.10}]
        vrrp:
          instances:
            - name: VI_1
              interface: eth0
              virtual_router_id: 51
              virtual_ipaddresses: [{address: 192.0.2.100/24}]
        """),
    "vrrp_instance_inherits_version_garp_and_group": ("""
        global_defs {
            vrrp_version 3
            vrrp_garp_master_delay 2
            vrrp_garp_master_repeat 3
            vrrp_garp_master_refresh 60
            vrrp_mcast_group4 224.0.0.19
            vrrp_notify_priority_changes
        }
        vrrp_instance VI_1 {
            interface eth0
            virtual_router_id 51
            priority 150
            virtual_ipaddress {
                192.0.2.100/24
            }
        }
        vrrp_instance VI_2 {
            interface eth0
            virtual_router_id 52
            priority 255
            version 2
            garp_master_repeat 1
            virtual_ipaddress {
                192.0.2.101/24
            }
        }
        vrrp_instance UNI {
            virtual_router_id 62
            unicast_src_ip 192.0.2.2
            unicast_peer {
                192.0.2.3 min_ttl 250
            }
            virtual_ipaddress {
                192.0.2.102/24
            }
        }
        """, """
        vrrp:
          globals:
            vrrp_version: 3
            vrrp_garp_master_delay: 2
            vrrp_garp_master_repeat: 3
            vrrp_garp_master_refresh: 60
            vrrp_mcast_group4: 224.0.0.19
            vrrp_notify_priority_changes: true
          instances:
            - name: VI_1
              interface: eth0
              virtual_router_id: 51
              priority: 150
              virtual_ipaddresses: [{address: 192.0.2.100/24}]
            - name: VI_2
              interface: eth0
              virtual_router_id: 52
              priority: 255
              version: 2
              garp_master_repeat: 1
              virtual_ipaddresses: [{address: 192.0.2.101/24}]
            - name: UNI
              virtual_router_id: 62
              unicast_src_ip: 192.0.2.2
              unicast_peers: [{address: 192.0.2.3, min_ttl: 250}]
              virtual_ipaddresses: [{address: 192.0.2.102/24}]
        """),
    "vrrp_strict_ipv6_min_garp_scripts_and_groups": ("""
        global_defs {
            vrrp_strict
            vrrp_min_garp
            vrrp_mcast_group6 ff02::1:2
            smtp_alert_vrrp
        }
        vrrp_script check_web {
            script "/usr/local/bin/check_web"
            interval 5
        }
        vrrp_instance V6 {
            interface eth0
            virtual_router_id 61
            virtual_ipaddress {
                2001:db8::100/64
            }
            track_script {
                check_web
            }
        }
        vrrp_sync_group G {
            group {
                V6
            }
        }
        """, """
        global_defs: {smtp_alert_vrrp: true}
        vrrp:
          globals:
            vrrp_strict: true
            vrrp_min_garp: true
            vrrp_mcast_group6: ff02::1:2
          scripts:
            - name: check_web
              script: [/usr/local/bin/check_web]
              interval: 5
          instances:
            - name: V6
              interface: eth0
              virtual_router_id: 61
              virtual_ipaddresses: [{address: 2001:db8::100/64}]
              track_scripts: [{name: check_web}]
          sync_groups:
            - name: G
              group: [V6]
        """),
}


@pytest.mark.parametrize(("conf", "written"), SAME.values(), ids=SAME.keys())
def test_yaml_written_by_hand_loads_as_the_same_keepalived_conf(conf, written, tmp_path):
    expected = from_conf(conf)
    loaded = from_yaml(tmp_path, written)
    assert loaded == expected
    # And the same from JSON, which keeps no positions.
    path = tmp_path / "t.json"
    path.write_text(dump_json(expected, concise=True))
    diag = Diagnostics()
    assert load_yaml(str(path), diag) == expected
    assert diag.errors == []


@pytest.mark.parametrize(("conf", "written"), SAME.values(), ids=SAME.keys())
def test_dumps_of_both_kinds_read_back_as_the_config(conf, written, tmp_path):
    config = from_conf(conf)
    for concise in (False, True):
        path = tmp_path / f"dump-{concise}.yaml"
        path.write_text(dump_yaml(config, concise=concise))
        diag = Diagnostics()
        assert load_yaml(str(path), diag) == config
        assert diag.errors == []


def test_the_cases_do_inherit_what_they_say():
    # The equalities above are worth something only if inheritance shows in the model.
    def reals(name: str) -> tuple[RealServer, ...]:
        return from_conf(SAME[name][0]).virtual_servers[0].real_servers

    http = reals("http_get_with_only_a_url")[0]
    checker = http.checkers[0]
    assert (http.delay_loop, http.lvs_method.forwarding) == (5.0, Forwarding.DR)
    assert (checker.delay_loop, checker.connect_timeout, checker.retry,
            checker.delay_before_retry, checker.warmup) == (5.0, 2.0, 1, 3.0, 5.0)
    assert (checker.connect_ip, checker.connect_port) == (http.address, 80)
    misc, tcp = reals("misc_check_retries_0_by_default")
    assert (misc.checkers[0].retry, misc.checkers[0].misc_timeout) == (0, 7.0)
    assert tcp.checkers[0].retry == 1
    dns = reals("dns_check_retries_3_after_its_delay_loop")[0].checkers[0]
    assert (dns.retry, dns.delay_before_retry) == (3, 10.0)
    first, second = reals("fwmark_service_with_real_server_ports")
    assert (first.checkers[0].connect_port, second.checkers[0].connect_port) == (443, 8443)
    one, two = reals("virtualhost_warmup_and_alpha")
    assert [(c.virtualhost, c.warmup) for c in one.checkers] == [("www.example.org", 0.0)] * 2
    assert (two.checkers[0].virtualhost, two.checkers[0].warmup,
            two.checkers[0].alpha) == ("other.example.org", 12.0, True)
    smtp = reals("smtp_check_hosts_inherit_the_checker")
    assert smtp[0].checkers[0].hosts == (SmtpHost(
        connect_ip=smtp[0].address, connect_port=25, connect_timeout=4.0),)
    assert [(str(h.connect_ip), h.connect_port, h.connect_timeout)
            for h in smtp[1].checkers[0].hosts] == [("192.0.2.12", 25, 9.0),
                                                     ("192.0.2.11", 2525, 9.0)]
    vrrp = from_conf(SAME["vrrp_instance_inherits_version_garp_and_group"][0]).vrrp
    one, two, uni = vrrp.instances
    assert uni.check_unicast_src
    assert (one.version, str(one.mcast_dst_ip), one.garp_master_delay, one.garp_master_repeat,
            one.garp_lower_prio_repeat, one.notify_priority_changes) == (
        3, "224.0.0.19", 2.0, 3, 3, True)
    assert (two.version, two.garp_master_repeat, two.state.value) == (2, 1, "MASTER")
    vrrp = from_conf(SAME["vrrp_strict_ipv6_min_garp_scripts_and_groups"][0]).vrrp
    (v6,) = vrrp.instances
    assert (v6.version, str(v6.mcast_dst_ip), v6.strict_mode, v6.accept,
            v6.garp_master_repeat, v6.smtp_alert) == (3, "ff02::1:2", True, False, 1, True)
    assert vrrp.scripts[0].timeout == 5.0
    assert vrrp.sync_groups[0].smtp_alert


def test_written_values_win_over_inherited_ones(tmp_path):
    config = from_yaml(tmp_path, """
        virtual_servers:
          - address: 192.0.2.1
            port: 80
            protocol: TCP
            delay_loop: 5
            lvs_method: {forwarding: DR}
            real_servers:
              - address: 192.0.2.10
                delay_loop: 60
                lvs_method: {}
                checkers:
                  - {kind: TCP_CHECK, connect_port: 8080, retry: 1, delay_loop: 2}
        vrrp:
          globals: {vrrp_version: 3}
          instances:
            - name: VI_1
              interface: eth0
              virtual_router_id: 51
              version: 2
              virtual_ipaddresses: [{address: 192.0.2.100/24}]
        """)
    real = config.virtual_servers[0].real_servers[0]
    assert (real.delay_loop, real.lvs_method) == (60.0, LvsMethod())
    assert real.checkers == (TcpCheck(connect_ip=real.address, connect_port=8080, retry=1,
                                      delay_loop=2.0, warmup=2.0),)
    assert config.vrrp.instances[0].version == 2


def test_only_a_whole_configuration_inherits():
    diag = Diagnostics()
    server = parse_yaml("address: 192.0.2.10\nport: 80\ncheckers: [{kind: TCP_CHECK}]\n",
                        "x.yaml", RealServer, diag)
    assert server.checkers == (TcpCheck(),)
    assert diag.problems == []


def test_a_dump_writes_what_inheritance_would_not_give_back():
    # Hand-made: the real server keeps the default delay_loop under a service of 5 s and
    # its checker connects nowhere in particular: both must be written to survive.
    address = ipaddress.ip_address("192.0.2.10")
    config = Config(virtual_servers=(VirtualServer(
        address=ipaddress.ip_address("192.0.2.1"), port=80, delay_loop=5.0,
        real_servers=(RealServer(address=address, port=80, checkers=(TcpCheck(),)),)),))
    real = config_data(config)["virtual_servers"][0]["real_servers"][0]
    assert real["delay_loop"] == 60.0
    assert (real["checkers"][0]["connect_ip"], real["checkers"][0]["connect_port"]) == (
        None, 0)
    assert resolve_config(config, config_data(config, concise=True)) == config


def test_a_concise_dump_leaves_out_what_is_inherited():
    config = from_conf(SAME["http_get_with_only_a_url"][0])
    data = config_data(config, concise=True)
    real = data["virtual_servers"][0]["real_servers"][0]
    assert real == {"address": "192.0.2.10",
                    "checkers": [{"kind": "HTTP_GET", "urls": [{"path": "/health"}]}]}
    effective = config_data(config)["virtual_servers"][0]["real_servers"][0]
    assert effective["checkers"][0]["connect_ip"] == "192.0.2.10"


def test_checker_timing_defaults_are_per_kind():
    server = RealServer(address=ipaddress.ip_address("192.0.2.10"), port=53, delay_loop=4.0)
    context = CheckerContext(server)
    assert checker_inherited(MiscCheck(), (), context) == {
        "delay_loop": 4.0, "warmup": 4.0, "misc_timeout": 4.0}
    dns = checker_inherited(DnsCheck(delay_loop=9.0), {"delay_loop"}, context)  # its own
    assert dns == {"delay_before_retry": 9.0, "warmup": 9.0, "connect_ip": server.address,
                   "connect_port": 53}
    assert checker_inherited(TcpCheck(), {"connect_ip", "connect_port", "warmup"},
                             context) == {"delay_loop": 4.0}


def test_an_instance_inherits_even_without_what_it_must_have():
    # No VIP (VRRPv3 needs one) and no VRID: validation reports those, but the instance
    # still shows the version and group it would run.
    globals_ = VrrpGlobals(vrrp_version=3)
    inherited = instance_inherited(VrrpInstance(name="X", interface="eth0"),
                                   {"name", "interface"}, globals_)
    assert inherited["version"] == 3
    assert "virtual_router_id" not in inherited and "virtual_ipaddresses" not in inherited
    six = VrrpInstance(name="Y", unicast_src_ip=ipaddress.ip_address("2001:db8::2"))
    inherited = instance_inherited(six, {"name", "unicast_src_ip"}, VrrpGlobals())
    assert (inherited["family"].value, inherited["version"]) == ("inet6", 3)
    assert inherited["mcast_dst_ip"] == ipaddress.ip_address("ff02::12")


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_concise_dumps_of_keepalived_samples_read_back(sample: Path):
    diag = Diagnostics()
    config = build_config(read_file(str(sample), diag), diag)
    for text in (dump_yaml(config, concise=True), dump_yaml(config)):
        diag = Diagnostics()
        assert parse_yaml(text, "s.yaml", Config, diag) == config
        assert diag.problems == []
    assert len(dump_yaml(config, concise=True)) <= len(dump_yaml(config))


def test_resolving_changes_nothing_in_a_resolved_config():
    config = from_conf(SAME["smtp_check_hosts_inherit_the_checker"][0])
    data = config_data(config)
    resolved = resolve_config(config, data)
    assert resolved == config
    assert all(new is old for new, old in zip(resolved.virtual_servers,
                                              config.virtual_servers, strict=True))


def _servers() -> st.SearchStrategy:
    """Random virtual servers that do hold real servers with checkers (random whole
    configs are too shallow to reach them)."""
    reals = st.builds(lambda rs, checkers: dataclasses.replace(rs, checkers=tuple(checkers)),
                      strategy_for(RealServer), st.lists(strategy_for(CheckerSpec), max_size=3))
    return st.builds(lambda vs, rss: dataclasses.replace(vs, real_servers=tuple(rss)),
                     strategy_for(VirtualServer), st.lists(reals, max_size=3))


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.builds(lambda g, vrrp, servers: Config(global_defs=g, vrrp=vrrp,
                                                  virtual_servers=tuple(servers)),
                 strategy_for(GlobalDefs), strategy_for(VrrpConfig),
                 st.lists(_servers(), max_size=2)))
def test_random_configs_read_back_from_both_kinds_of_dump(config):
    for concise in (False, True):
        text = dump_yaml(config, concise=concise)
        diag = Diagnostics()
        assert parse_yaml(text, "r.yaml", Config, diag) == config, text
        assert diag.problems == []
    diag = Diagnostics()
    assert parse_json(dump_json(config, concise=True), "r.json", Config, diag) == config
