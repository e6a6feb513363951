"""Start-up adopts what the kernel already holds instead of flushing it.

The kernel's table is made with `ipvsadm` commands, as a previous daemon (or
keepalived) left it, and a client holds an ESTABLISHED connection through it. The
director then starts the way it always does: dump -> reconcile (with nothing owned
yet beyond what the config wants) -> apply. Only what differs changes: the held
connection keeps answering, the kernel keeps its connection entry, and a service
the director does not own is left as it was.
"""

from __future__ import annotations

import textwrap
import time

import pytest
from lvs_lab import VIP, LvsLab, lab_fixture

from director.config.errors import Diagnostics
from director.config.keepalived import build_config
from director.config.model import Config
from director.config.reader import read_text
from director.ipvs.reconcile import reconcile
from director.ipvs.table import Operation, OperationKind
from director.pool import desired_table

RS_PORT = 8080
NAT1, NAT2 = "192.0.2.11", "192.0.2.12"

lab = lab_fixture(nat=2, dr=0, directors=1)


@pytest.fixture(scope="module", autouse=True)
def real_servers(lab: LvsLab) -> None:
    lab.start_servers([("nat1", RS_PORT), ("nat2", RS_PORT)])


@pytest.fixture(autouse=True)
def empty_table(lab: LvsLab) -> None:
    lab.clear_ipvs()


def load(text: str) -> Config:
    diag = Diagnostics()
    nodes = read_text(textwrap.dedent(text).strip("\n") + "\n", "keepalived.conf", diag)
    config = build_config(nodes, diag)
    assert not diag.failed, [str(p) for p in diag.problems]
    return config


def config_for(port: int, scheduler: str, weight1: int, weight2: int) -> Config:
    return load(f"""
        virtual_server {VIP} {port} {{
            lb_algo {scheduler}
            lb_kind NAT
            protocol TCP
            real_server {NAT1} {RS_PORT} {{
                weight {weight1}
            }}
            real_server {NAT2} {RS_PORT} {{
                weight {weight2}
            }}
        }}
    """)


def previous_daemon_made(lab: LvsLab, *commands: str) -> None:
    """The table as a previous daemon left it: plain ipvsadm commands."""
    for command in commands:
        lab.directors[0].netns.ipvsadm(*command.split())


def start_director(lab: LvsLab, config: Config) -> list[Operation]:
    """The director's start: adopt the kernel's table, change only the difference."""
    backend = lab.ipvs("dirA")
    desired = desired_table(config, {}, now=time.time())
    ops = reconcile(desired, backend.dump(), owned=())
    assert backend.apply_all(ops) == []
    return ops


def held_entry(lab: LvsLab, local: str):
    entries = [c for c in lab.connections("dirA") if c.client == local]
    assert len(entries) == 1, lab.connections("dirA")
    return entries[0]


def test_start_adopts_the_table_with_one_weight_edit_and_keeps_the_held_connection(
        lab: LvsLab) -> None:
    previous_daemon_made(
        lab,
        f"-A -t {VIP}:90 -s wrr",
        f"-a -t {VIP}:90 -r {NAT1}:{RS_PORT} -m -w 1",
        f"-a -t {VIP}:90 -r {NAT2}:{RS_PORT} -m -w 1",
        # Someone else's service: not in the config and not the director's.
        f"-A -t {VIP}:91 -s lc -p 120",
        f"-a -t {VIP}:91 -r {NAT1}:{RS_PORT} -m -w 7",
    )
    foreign_before = [r for r in lab.directors[0].netns.rules() if f"{VIP}:91" in r]
    conn = lab.open_connection(90)
    assert conn.ask("before") == f"{conn.server} before"
    before = held_entry(lab, conn.local)
    assert before.state == "ESTABLISHED"

    ops = start_director(lab, config_for(90, "wrr", 1, 2))

    assert [(op.kind, str(op.destination.address), op.destination_settings.weight)
            for op in ops] == [(OperationKind.EDIT_DESTINATION, NAT2, 2)]
    assert conn.ask("after") == f"{conn.server} after"
    after = held_entry(lab, conn.local)
    assert (after.state, after.destination, after.virtual) == (
        "ESTABLISHED", before.destination, f"{VIP}:90")
    listed = lab.directors[0].netns.service(f"TCP {VIP}:90")
    assert {row["address"]: row["Weight"] for row in listed.dests} == {
        f"{NAT1}:{RS_PORT}": 1, f"{NAT2}:{RS_PORT}": 2}
    # The foreign service is exactly as it was.
    assert [r for r in lab.directors[0].netns.rules() if f"{VIP}:91" in r] == foreign_before
    conn.close()


def test_start_with_the_table_already_as_configured_changes_nothing(lab: LvsLab) -> None:
    previous_daemon_made(
        lab,
        f"-A -t {VIP}:92 -s wrr",
        f"-a -t {VIP}:92 -r {NAT1}:{RS_PORT} -m -w 3",
        f"-a -t {VIP}:92 -r {NAT2}:{RS_PORT} -m -w 1",
    )
    rules_before = lab.directors[0].netns.rules()
    with lab.open_connection(92) as conn:
        conn.ask("before")
        assert start_director(lab, config_for(92, "wrr", 3, 1)) == []
        assert conn.ask("after") == f"{conn.server} after"
        assert held_entry(lab, conn.local).state == "ESTABLISHED"
    assert lab.directors[0].netns.rules() == rules_before


def test_a_changed_scheduler_is_edited_in_place_and_the_connection_survives(
        lab: LvsLab) -> None:
    previous_daemon_made(
        lab,
        f"-A -t {VIP}:93 -s rr",
        f"-a -t {VIP}:93 -r {NAT1}:{RS_PORT} -m -w 1",
        f"-a -t {VIP}:93 -r {NAT2}:{RS_PORT} -m -w 1",
    )
    with lab.open_connection(93) as conn:
        conn.ask("before")
        ops = start_director(lab, config_for(93, "wlc", 1, 1))
        assert [op.kind for op in ops] == [OperationKind.EDIT_SERVICE]
        assert lab.directors[0].netns.service(f"TCP {VIP}:93").scheduler == "wlc"
        assert conn.ask("after") == f"{conn.server} after"
        assert held_entry(lab, conn.local).state == "ESTABLISHED"
