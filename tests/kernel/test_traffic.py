"""Real traffic through the kernel's IPVS, from a keepalived.conf as an operator writes it.

The path is the director's own: config text -> `build_config` -> `pool.desired_table`
(with the checkers' verdicts in `health`) -> `reconcile` against the kernel's `dump()`
-> `apply_all` on dirA of the LVS lab (`lvs_lab.py`); then a client in its own
namespace opens real TCP connections to the VIP and counts which real server answered.

Each test uses its own virtual-service port, so the schedulers start fresh and no
connection entry of an earlier test can steer a new connection.
"""

from __future__ import annotations

import textwrap
import time
from collections import Counter

import pytest
from lvs_lab import VIP, LvsLab, lab_fixture

from director.config.errors import Diagnostics
from director.config.keepalived import build_config
from director.config.model import Config
from director.config.reader import read_text
from director.ipvs.backend import kernel_destination_settings, kernel_service_settings
from director.ipvs.reconcile import reconcile
from director.ipvs.table import OperationKind, Service, Table
from director.pool import RealServerId, ServerHealth, desired_table, virtual_server_id

RS_PORT = 8080  # every NAT real server listens here
DR_PORT = 81  # DR cannot change the port: the DR servers listen on the service's

lab = lab_fixture(nat=3, dr=2, directors=2)


@pytest.fixture(scope="module", autouse=True)
def real_servers(lab: LvsLab) -> None:
    lab.start_servers([("nat1", RS_PORT), ("nat2", RS_PORT), ("nat3", RS_PORT),
                       ("dr1", DR_PORT), ("dr2", DR_PORT)])


def load(text: str) -> Config:
    diag = Diagnostics()
    nodes = read_text(textwrap.dedent(text).strip("\n") + "\n", "keepalived.conf", diag)
    config = build_config(nodes, diag)
    assert not diag.failed, [str(p) for p in diag.problems]
    return config


Health = dict[RealServerId, ServerHealth]


def deploy(lab: LvsLab, config: Config, health: Health | None = None,
           director: str = "dirA") -> list:
    """What the director does on start and on every change: desired -> reconcile ->
    apply. Returns the operations it applied (every one must succeed)."""
    backend = lab.ipvs(director)
    desired = desired_table(config, health or {}, now=time.time())
    ops = reconcile(desired, backend.dump())
    assert backend.apply_all(ops) == []
    assert backend.dump() == kernel_view(desired)
    return ops


def kernel_view(table: Table) -> Table:
    """The table as a dump reports it (settings in the kernel's spelling)."""
    return {key: Service(kernel_service_settings(s.settings, key.family),
                         {d: kernel_destination_settings(v) for d, v in s.destinations.items()})
            for key, s in table.items()}


def down(config: Config, port: int, *addresses: str) -> Health:
    """The checkers' verdict: these real servers of the virtual server on `port` failed."""
    vs = next(v for v in config.virtual_servers if v.port == port)
    return {RealServerId(virtual_server_id(vs), address, RS_PORT): ServerHealth(up=False)
            for address in addresses}


def weights(lab: LvsLab, port: int) -> dict[str, int]:
    table = lab.ipvs("dirA").dump()
    key = next(k for k in table if k.port == port)
    return {str(d.address): s.weight for d, s in table[key].destinations.items()}


def nat_service(port: int, body: str, servers: str) -> str:
    return f"""
        virtual_server {VIP} {port} {{
            protocol TCP
            lb_kind NAT
            {body}
            {servers}
        }}
    """


def real(address: str, weight: int = 1, extra: str = "") -> str:
    return f"real_server {address} {RS_PORT} {{\n weight {weight}\n {extra}\n }}\n"


# ------------------------------------------------------------------ scheduling

def test_nat_wrr_splits_fresh_connections_3_to_1_and_keeps_the_client_address(
        lab: LvsLab) -> None:
    config = load(nat_service(80, "lb_algo wrr", real("192.0.2.11", 3) + real("192.0.2.12", 1)))
    ops = deploy(lab, config)
    assert [op.kind for op in ops] == [OperationKind.ADD_SERVICE,
                                       OperationKind.ADD_DESTINATION,
                                       OperationKind.ADD_DESTINATION]

    assert lab.requests(20, 80) == Counter(nat1=15, nat2=5)

    with lab.open_connection(80) as conn:
        answer = conn.ask("?peer")
        # NAT rewrites only the destination: the real server sees the client itself.
        assert answer == f"{conn.server} peer {conn.local}"
        assert conn.local.startswith(f"{lab.client.address}:")


def test_dr_rr_splits_evenly(lab: LvsLab) -> None:
    config = load(f"""
        virtual_server {VIP} {DR_PORT} {{
            protocol TCP
            lb_algo rr
            lb_kind DR
            real_server 198.51.100.21 {DR_PORT} {{ weight 1 }}
            real_server 198.51.100.22 {DR_PORT} {{ weight 1 }}
        }}
    """)
    deploy(lab, config)
    assert lab.requests(10, DR_PORT) == Counter(dr1=5, dr2=5)


def test_a_persistent_service_keeps_one_client_on_one_server(lab: LvsLab) -> None:
    config = load(nat_service(
        85, "lb_algo rr\npersistence_timeout 60", real("192.0.2.11") + real("192.0.2.12")))
    deploy(lab, config)
    listed = lab.directors[0].netns.service(f"TCP {VIP}:85")
    assert listed.persistent == 60
    counts = lab.requests(10, 85)
    assert len(counts) == 1 and sum(counts.values()) == 10, counts


# ------------------------------------------------------------------ health

def test_a_failed_server_leaves_the_table_and_gets_no_new_connections(lab: LvsLab) -> None:
    config = load(nat_service(82, "lb_algo rr", real("192.0.2.11") + real("192.0.2.12")))
    deploy(lab, config)
    assert lab.requests(4, 82) == Counter(nat1=2, nat2=2)

    ops = deploy(lab, config, down(config, 82, "192.0.2.12"))
    assert [(op.kind, str(op.destination.address)) for op in ops] == [
        (OperationKind.DELETE_DESTINATION, "192.0.2.12")]
    assert weights(lab, 82) == {"192.0.2.11": 1}
    assert lab.requests(6, 82) == Counter(nat1=6)

    deploy(lab, config)  # it is back
    assert weights(lab, 82) == {"192.0.2.11": 1, "192.0.2.12": 1}


def test_inhibit_on_failure_keeps_the_server_at_weight_0_and_its_connection_drains(
        lab: LvsLab) -> None:
    config = load(nat_service(
        83, "lb_algo rr",
        real("192.0.2.11", extra="inhibit_on_failure") + real("192.0.2.12",
                                                              extra="inhibit_on_failure")))
    deploy(lab, config)
    held = [lab.open_connection(83) for _ in range(2)]
    for conn in held:
        conn.ask("first")
    on_nat2 = next(conn for conn in held if conn.server == "nat2")

    ops = deploy(lab, config, down(config, 83, "192.0.2.12"))
    assert [(op.kind, op.destination_settings.weight) for op in ops] == [
        (OperationKind.EDIT_DESTINATION, 0)]
    assert weights(lab, 83) == {"192.0.2.11": 1, "192.0.2.12": 0}

    assert lab.requests(6, 83) == Counter(nat1=6)
    # Draining: the established connection still reaches its real server.
    assert on_nat2.ask("still there?") == "nat2 still there?"
    for conn in held:
        conn.close()


def test_the_sorry_server_takes_the_traffic_when_the_quorum_is_lost(lab: LvsLab) -> None:
    config = load(nat_service(
        84, f"lb_algo rr\nquorum 2\nsorry_server 192.0.2.13 {RS_PORT}",
        real("192.0.2.11") + real("192.0.2.12")))
    deploy(lab, config)
    assert weights(lab, 84) == {"192.0.2.11": 1, "192.0.2.12": 1}
    assert lab.requests(4, 84) == Counter(nat1=2, nat2=2)

    # One server down: live weight 1 < quorum 2, the sorry server replaces the pool.
    deploy(lab, config, down(config, 84, "192.0.2.11"))
    assert weights(lab, 84) == {"192.0.2.13": 1}
    assert lab.requests(4, 84) == Counter(nat3=4)

    deploy(lab, config)  # quorum back: the pool returns, the sorry server goes
    assert weights(lab, 84) == {"192.0.2.11": 1, "192.0.2.12": 1}
    assert set(lab.requests(4, 84)) == {"nat1", "nat2"}


def test_a_new_config_replaces_the_services_of_the_old_one(lab: LvsLab) -> None:
    deploy(lab, load(nat_service(86, "lb_algo rr", real("192.0.2.11"))))
    ops = deploy(lab, load(nat_service(87, "lb_algo rr", real("192.0.2.12"))))
    assert [(op.kind, str(op.service)) for op in ops] == [
        (OperationKind.ADD_SERVICE, f"TCP {VIP}:87"),
        (OperationKind.ADD_DESTINATION, f"TCP {VIP}:87"),
        (OperationKind.DELETE_SERVICE, f"TCP {VIP}:86"),
    ]
    assert list(lab.directors[0].netns.listing()) == [f"TCP {VIP}:87"]
    assert lab.requests(2, 87) == Counter(nat2=2)
    with pytest.raises(ConnectionRefusedError):
        lab.request(86)  # the director itself answers: no such service, no listener


def test_traffic_follows_the_vip_to_the_other_director(lab: LvsLab) -> None:
    config = load(nat_service(88, "lb_algo rr", real("192.0.2.11") + real("192.0.2.12")))
    deploy(lab, config, director="dirA")
    deploy(lab, config, director="dirB")
    assert lab.requests(4, 88) == Counter(nat1=2, nat2=2)
    try:
        lab.move_vip("dirB")
        assert lab.active.name == "dirB"
        assert lab.requests(8, 88) == Counter(nat1=4, nat2=4)
        # dirB scheduled them: the connections are in its table.
        assert {c.virtual for c in lab.connections("dirB")} == {f"{VIP}:88"}
    finally:
        lab.move_vip("dirA")
        lab.clear_ipvs("dirB")
    assert lab.request(88) in {"nat1", "nat2"}
