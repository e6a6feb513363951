"""What the kernel refuses, and that one refusal never costs the rest of the table.

Each test hands `apply_all` one desired table in which some entries the kernel will
refuse sit between good ones. The refusals come back as errors whose messages name
the service (and real server) and say why in words; every other service of the same
table is in the kernel and carries real traffic through the lab's director.
"""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from lvs_lab import VIP, LvsLab, lab_fixture

from director.config.errors import Diagnostics
from director.config.keepalived import build_config
from director.config.reader import read_text
from director.ipvs.backend import IpvsError
from director.ipvs.reconcile import reconcile
from director.ipvs.table import (
    DestinationKey,
    DestinationSettings,
    Forwarding,
    Protocol,
    Service,
    ServiceKey,
    ServiceSettings,
    Table,
)
from director.pool import desired_table

RS_PORT = 8080
NAT1, NAT2 = "192.0.2.11", "192.0.2.12"
MODPROBE = Path("/proc/sys/kernel/modprobe")

lab = lab_fixture(nat=2, dr=0, directors=1)


@pytest.fixture(scope="module", autouse=True)
def real_servers(lab: LvsLab) -> None:
    lab.start_servers([("nat1", RS_PORT), ("nat2", RS_PORT)])


@pytest.fixture(autouse=True)
def empty_table(lab: LvsLab) -> None:
    lab.clear_ipvs()


def key(port: int) -> ServiceKey:
    return ServiceKey(socket.AF_INET, Protocol.TCP, ipaddress.ip_address(VIP), port)


def nat(weight: int = 1, lower: int = 0, upper: int = 0) -> DestinationSettings:
    return DestinationSettings(forwarding=Forwarding.NAT, weight=weight,
                               lower_threshold=lower, upper_threshold=upper)


def dest(address: str) -> DestinationKey:
    return DestinationKey(ipaddress.ip_address(address), RS_PORT)


def good(port: int) -> tuple[ServiceKey, Service]:
    return key(port), Service(ServiceSettings(scheduler="rr"),
                              {dest(NAT1): nat(), dest(NAT2): nat()})


def apply(lab: LvsLab, desired: Table) -> list[IpvsError]:
    backend = lab.ipvs("dirA")
    return backend.apply_all(reconcile(desired, backend.dump()))


def messages(errors: list[IpvsError]) -> list[str]:
    return [error.message for error in errors]


def carries_traffic(lab: LvsLab, *ports: int) -> None:
    for port in ports:
        assert lab.requests(4, port) == Counter(nat1=2, nat2=2), port


def test_an_unknown_scheduler_fails_its_service_only(lab: LvsLab) -> None:
    desired = dict([good(80),
                    (key(81), Service(ServiceSettings(scheduler="nosuch"),
                                      {dest(NAT1): nat(), dest(NAT2): nat()})),
                    good(82)])
    errors = apply(lab, desired)
    assert messages(errors) == [
        f"cannot add virtual service TCP {VIP}:81: unknown scheduler 'nosuch' (no "
        "ip_vs_nosuch kernel module); 2 further operations on it not attempted"]
    assert sorted(lab.directors[0].netns.listing()) == [f"TCP {VIP}:80", f"TCP {VIP}:82"]
    carries_traffic(lab, 80, 82)


def test_a_valid_scheduler_whose_module_the_kernel_lacks(lab: LvsLab) -> None:
    """`twos` is a scheduler keepalived.conf may name (Linux 6.2+), but this 6.1
    kernel has no ip_vs_twos: the config is valid, the kernel refuses."""
    # The guest's module loader (the wrapper the kernel itself calls), dry run.
    loader = MODPROBE.read_text().strip()
    if subprocess.run([loader, "-n", "-q", "ip_vs_twos"], timeout=30).returncode == 0:
        pytest.skip("this kernel has ip_vs_twos")
    diag = Diagnostics()
    text = "".join(textwrap.dedent(f"""
        virtual_server {VIP} {port} {{
            lb_algo {scheduler}
            lb_kind NAT
            protocol TCP
            real_server {NAT1} {RS_PORT} {{
                weight 1
            }}
            real_server {NAT2} {RS_PORT} {{
                weight 1
            }}
        }}
    """) for port, scheduler in ((83, "rr"), (84, "twos"), (85, "rr")))
    config = build_config(read_text(text, "keepalived.conf", diag), diag)
    assert not diag.failed, [str(p) for p in diag.problems]

    errors = apply(lab, desired_table(config, {}, now=time.time()))
    assert messages(errors) == [
        f"cannot add virtual service TCP {VIP}:84: unknown scheduler 'twos' (no "
        "ip_vs_twos kernel module); 2 further operations on it not attempted"]
    carries_traffic(lab, 83, 85)


@pytest.fixture
def failing_module_loads() -> Iterator[None]:
    """The kernel's on-demand module loads fail (its modprobe helper exits 1), as on a
    host where the scheduler's module is not installed."""
    previous = MODPROBE.read_text().strip()
    with tempfile.TemporaryDirectory(prefix="no-modprobe-") as work:
        helper = Path(work) / "modprobe"
        helper.write_text("#!/bin/sh\nexit 1\n")
        helper.chmod(0o755)
        MODPROBE.write_text(str(helper))
        try:
            yield
        finally:
            MODPROBE.write_text(previous)


def loaded(module: str) -> bool:
    return any(line.split()[0] == module
               for line in Path("/proc/modules").read_text().splitlines())


def test_a_scheduler_module_that_cannot_be_loaded(lab: LvsLab, failing_module_loads) -> None:
    unloaded = [s for s in ("ovf", "fo", "nq", "sed", "dh", "lblcr", "lblc", "mh")
                if not loaded(f"ip_vs_{s}")]
    if not unloaded:
        pytest.skip("every candidate scheduler module is loaded already")
    scheduler = unloaded[0]
    desired = dict([good(86),
                    (key(87), Service(ServiceSettings(scheduler=scheduler),
                                      {dest(NAT1): nat()}))])
    errors = apply(lab, desired)
    assert messages(errors) == [
        f"cannot add virtual service TCP {VIP}:87: unknown scheduler '{scheduler}' (no "
        f"ip_vs_{scheduler} kernel module); 1 further operation on it not attempted"]
    assert [e.code for e in errors] == [2]  # ENOENT
    carries_traffic(lab, 86)


def test_entries_that_exist_already_are_reported_and_the_rest_still_applies(
        lab: LvsLab) -> None:
    # The director's view of the kernel is stale: between its dump and its changes
    # someone else added the service on port 88 and one real server of port 89.
    backend = lab.ipvs("dirA")
    stale = backend.dump()
    netns = lab.directors[0].netns
    netns.ipvsadm("-A", "-t", f"{VIP}:88", "-s", "rr")
    netns.ipvsadm("-A", "-t", f"{VIP}:89", "-s", "rr")
    netns.ipvsadm("-a", "-t", f"{VIP}:89", "-r", f"{NAT1}:{RS_PORT}", "-m")
    desired = dict([good(88), good(89), good(90)])
    errors = backend.apply_all(reconcile(desired, stale))
    assert messages(errors) == [
        f"cannot add virtual service TCP {VIP}:88: it already exists",
        f"cannot add virtual service TCP {VIP}:89: it already exists",
        f"cannot add real server {NAT1}:{RS_PORT} of virtual service TCP {VIP}:89: "
        "it is already in this service",
    ]
    assert [e.code for e in errors] == [17, 17, 17]  # EEXIST
    # A service that existed already still took its real servers.
    carries_traffic(lab, 88, 89, 90)
    # And the next reconcile, against the real table, has nothing left to do.
    assert reconcile(desired, backend.dump()) == []


def out_of_range_table(bad: DestinationSettings) -> Table:
    return {
        key(91): Service(ServiceSettings(scheduler="rr"), {dest(NAT1): bad, dest(NAT2): nat()}),
        **dict([good(94)]),
    }


def fails_only_its_real_server(lab: LvsLab, bad: DestinationSettings) -> str:
    """Apply a table whose one real server is out of range; return the one error."""
    errors = apply(lab, out_of_range_table(bad))
    assert len(errors) == 1, messages(errors)
    (error,) = errors
    assert error.message.startswith(
        f"cannot add real server {NAT1}:{RS_PORT} of virtual service TCP {VIP}:91: "
    ), error.message
    assert error.code == 34  # ERANGE
    # The service is there with its good real server, which carries the traffic.
    listed = lab.directors[0].netns.service(f"TCP {VIP}:91")
    assert [row["address"] for row in listed.dests] == [f"{NAT2}:{RS_PORT}"]
    assert lab.requests(3, 91) == Counter(nat2=3)
    carries_traffic(lab, 94)
    return error.message


def test_a_weight_beyond_the_kernels_range_fails_its_real_server_only(lab: LvsLab) -> None:
    # The kernel reads the weight as a signed 32-bit number: 2**31 is negative to it.
    message = fails_only_its_real_server(lab, nat(weight=2**31))
    assert "weight" in message and str(2**31) in message, message


def test_a_lower_threshold_above_the_upper_one_fails_its_real_server_only(
        lab: LvsLab) -> None:
    message = fails_only_its_real_server(lab, nat(lower=10, upper=5))
    assert "threshold" in message and "10/5" in message, message


def test_a_negative_weight_fails_its_real_server_only_and_says_so(lab: LvsLab) -> None:
    message = fails_only_its_real_server(lab, nat(weight=-1))
    assert "weight" in message and "-1" in message, message
