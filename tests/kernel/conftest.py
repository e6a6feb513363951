"""Kernel tier: tests that need the real ip_vs module.

They run inside the User-Mode-Linux guest that `tests/kernel/uml.py` boots
(`make test-kernel`); anywhere else they are skipped. Each test gets its own network
namespace, and with it its own IPVS table.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from pyroute2 import IPVS

HERE = Path(__file__).resolve().parent
SKIP_REASON = "kernel tier: run via `make test-kernel` (boots a User-Mode-Linux guest with ip_vs)"
NETNS_PREFIX = "lvs-kt-"


def in_kernel_guest() -> bool:
    # The env var alone could leak into a host shell; ip_vs alone could be a host
    # that has IPVS but where these tests must not touch anything.
    return os.environ.get("LVS_KERNEL_GUEST") == "1" and os.path.exists("/proc/net/ip_vs")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    inside = in_kernel_guest()
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.kernel)
            if not inside:
                item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


# ---------------------------------------------------------------- ipvsadm -Ln text

@dataclass(frozen=True, slots=True)
class ListedService:
    """One virtual service as `ipvsadm -Ln` prints it."""

    protocol: str  # TCP, UDP, SCTP or FWM
    address: str  # "192.0.2.1:80", "[2001:db8::1]:53" or the fwmark "7"
    scheduler: str
    ipv6_fwmark: bool = False
    sched_flags: tuple[str, ...] = ()
    persistent: int | None = None  # timeout in seconds
    mask: str | None = None  # IPv4 netmask or IPv6 prefix length, as printed
    pe: str | None = None
    one_packet: bool = False
    dests: tuple[dict[str, str | int], ...] = field(default=())


def _service_line(tokens: list[str]) -> ListedService:
    protocol, address, *rest = tokens
    ipv6_fwmark = protocol == "FWM" and rest[:1] == ["IPv6"]
    if ipv6_fwmark:
        rest = rest[1:]
    scheduler, *rest = rest
    values: dict = {}
    words = iter(rest)
    for word in words:
        if word.startswith("(") and word.endswith(")"):
            values["sched_flags"] = tuple(word[1:-1].split(","))
        elif word == "persistent":
            values["persistent"] = int(next(words))
        elif word == "mask":
            values["mask"] = next(words)
        elif word == "pe":
            values["pe"] = next(words)
        elif word == "ops":
            values["one_packet"] = True
        else:
            raise ValueError(f"unexpected word {word!r} in service line {tokens}")
    return ListedService(protocol=protocol, address=address, scheduler=scheduler,
                         ipv6_fwmark=ipv6_fwmark, **values)


def parse_listing(text: str) -> dict[str, ListedService]:
    """Services of `ipvsadm -Ln [--thresholds|--persistent-conn]`, keyed "PROT ADDRESS".

    Real-server rows become dicts: "address" plus one key per column header
    (Forward, Weight, Uthreshold, PersistConn, ...), numbers as int.
    """
    lines = text.splitlines()
    if not lines or not lines[0].startswith("IP Virtual Server version"):
        raise ValueError(f"not an ipvsadm listing:\n{text}")
    service_header, dest_header = lines[1].split(), lines[2].split()
    if service_header[:2] != ["Prot", "LocalAddress:Port"] or dest_header[:2] != [
        "->", "RemoteAddress:Port"
    ]:
        raise ValueError(f"unknown ipvsadm listing header:\n{text}")
    # Plain -Ln puts the real-server columns on the "->" line; --thresholds and
    # --persistent-conn put them on the "Prot" line.
    columns = dest_header[2:] or service_header[2:]
    services: dict[str, ListedService] = {}
    current: tuple[str, ListedService, list] | None = None
    for line in lines[3:]:
        tokens = line.split()
        if not tokens:
            continue
        if tokens[0] == "->":
            if current is None or len(tokens) != 2 + len(columns):
                raise ValueError(f"stray real-server line {line!r}")
            row: dict[str, str | int] = {"address": tokens[1]}
            for name, value in zip(columns, tokens[2:], strict=True):
                row[name] = int(value) if value.isdigit() else value
            current[2].append(row)
            continue
        if current is not None:
            key, service, rows = current
            services[key] = replace(service, dests=tuple(rows))
        service = _service_line(tokens)
        current = (f"{service.protocol} {service.address}", service, [])
    if current is not None:
        key, service, rows = current
        services[key] = replace(service, dests=tuple(rows))
    return services


# ---------------------------------------------------------------- network namespaces

@dataclass
class Netns:
    """A network namespace made for one test, with its own IPVS table."""

    name: str

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *argv],
            capture_output=True, text=True, check=check, timeout=30,
        )

    def ipvsadm(self, *args: str) -> str:
        return self.run("ipvsadm", *args).stdout

    def listing(self, *options: str) -> dict[str, ListedService]:
        """`ipvsadm -Ln OPTIONS` in this namespace, parsed."""
        return parse_listing(self.ipvsadm("-L", "-n", *options))

    def rules(self) -> list[str]:
        """`ipvsadm -Sn` lines: the table as ipvsadm commands."""
        return self.ipvsadm("-S", "-n").splitlines()

    def service(self, key: str) -> ListedService:
        services = self.listing()
        assert key in services, f"{key} not in ipvsadm -Ln: {sorted(services)}"
        return services[key]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@pytest.fixture
def make_netns() -> Iterator[Callable[[], Netns]]:
    """Factory for extra namespaces; all are removed after the test."""
    made: list[Netns] = []

    def make() -> Netns:
        ns = Netns(f"{NETNS_PREFIX}{uuid.uuid4().hex[:8]}")
        _ip("netns", "add", ns.name)
        made.append(ns)
        # IPv4 real servers are refused (EINVAL) in a namespace with no routing
        # tables yet; loopback up creates the local table.
        _ip("-n", ns.name, "link", "set", "lo", "up")
        return ns

    yield make
    for ns in reversed(made):
        subprocess.run(["ip", "netns", "del", ns.name], check=False, timeout=30)


@pytest.fixture
def netns(make_netns: Callable[[], Netns]) -> Netns:
    return make_netns()


@pytest.fixture
def ipvs(netns: Netns) -> Iterator[IPVS]:
    """pyroute2's IPVS generic netlink socket, bound inside the test's namespace."""
    sock = IPVS(netns=netns.name)
    try:
        yield sock
    finally:
        sock.close()

