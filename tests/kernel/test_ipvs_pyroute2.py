"""IPVS through pyroute2 0.9.7's generic netlink API against the real ip_vs module.

Every change made with pyroute2 is checked in what `ipvsadm` reads back from the
same kernel table (the test's own network namespace). These pin down the kernel and
pyroute2 behaviour the project's netlink backend builds on.
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest
from pyroute2 import IPVS, IPVSDest, IPVSService
from pyroute2.netlink.exceptions import NetlinkError

TCP, UDP = socket.IPPROTO_TCP, socket.IPPROTO_UDP
# IP_VS_CONN_F_* forwarding methods
NAT, TUNNEL, DR = 0, 2, 3
# IP_VS_SVC_F_* service flags
PERSISTENT, HASHED, SH_FALLBACK, SH_PORT = 0x1, 0x2, 0x8, 0x10


def flags(value: int) -> dict[str, int]:
    # The mask covers every flag, so a "set" also clears what it leaves out.
    return {"flags": value, "mask": 0xFFFF}


def ipv6_granularity(prefix: int) -> str:
    """An IPv6 service's netmask: the kernel reads a prefix length (host-order u32)
    where pyroute2 expects an IPv4 address."""
    return socket.inet_ntoa(struct.pack("=I", prefix))


def service4(addr: str = "192.0.2.10", port: int = 80, protocol: int = TCP,
             **kw: object) -> IPVSService:
    return IPVSService(addr=addr, port=port, protocol=protocol, **kw)


def service6(addr: str = "2001:db8::10", port: int = 80, protocol: int = TCP,
             prefix: int = 128, **kw: object) -> IPVSService:
    return IPVSService(addr=addr, port=port, protocol=protocol,
                       netmask=ipv6_granularity(prefix), **kw)


def real_servers(listed) -> dict[str, dict]:
    return {row["address"]: row for row in listed.dests}


def loaded_modules() -> set[str]:
    return {line.split()[0] for line in Path("/proc/modules").read_text().splitlines()}


# ------------------------------------------------------------------ services

def test_tcp_service_add_edit_delete(netns, ipvs: IPVS) -> None:
    ipvs.service("add", service=service4(sched_name="rr"))
    listed = netns.service("TCP 192.0.2.10:80")
    assert (listed.scheduler, listed.persistent, listed.mask, listed.dests) == (
        "rr", None, None, ())

    ipvs.service("set", service=service4(
        sched_name="wrr", flags=flags(PERSISTENT), timeout=300, netmask="255.255.255.0"))
    listed = netns.service("TCP 192.0.2.10:80")
    assert (listed.scheduler, listed.persistent, listed.mask) == ("wrr", 300, "255.255.255.0")

    # A "set" without the persistent flag turns persistence off again.
    ipvs.service("set", service=service4(sched_name="rr"))
    listed = netns.service("TCP 192.0.2.10:80")
    assert (listed.scheduler, listed.persistent, listed.mask) == ("rr", None, None)

    ipvs.service("del", service=service4())
    assert netns.listing() == {}


@pytest.mark.parametrize(
    ("service", "key", "dest"),
    [
        (service4(protocol=TCP), "TCP 192.0.2.10:80", "198.51.100.1"),
        (service4(protocol=UDP), "UDP 192.0.2.10:80", "198.51.100.1"),
        (service6(protocol=TCP), "TCP [2001:db8::10]:80", "2001:db8:1::1"),
        (service6(protocol=UDP), "UDP [2001:db8::10]:80", "2001:db8:1::1"),
    ],
    ids=["tcp4", "udp4", "tcp6", "udp6"],
)
def test_each_protocol_and_family(netns, ipvs: IPVS, service, key: str, dest: str) -> None:
    ipvs.service("add", service=service)
    ipvs.dest("add", service=service, dest=IPVSDest(addr=dest, port=80, fwd_method=DR))
    listed = netns.service(key)
    assert listed.scheduler == "wlc"  # pyroute2's default, also ipvsadm's
    shown = dest if ":" not in dest else f"[{dest}]"
    assert listed.dests == ({
        "address": f"{shown}:80", "Forward": "Route", "Weight": 1,
        "ActiveConn": 0, "InActConn": 0,
    },)

    ipvs.dest("del", service=service, dest=IPVSDest(addr=dest, port=80))
    assert netns.service(key).dests == ()
    ipvs.service("del", service=service)
    assert netns.listing() == {}


@pytest.mark.parametrize(
    ("timeout", "netmask", "shown_mask", "rule"),
    [
        (300, "255.255.255.255", None, "-A -t 192.0.2.10:80 -s rr -p 300"),
        (3600, "255.255.0.0", "255.255.0.0", "-A -t 192.0.2.10:80 -s rr -p 3600 -M 255.255.0.0"),
    ],
    ids=["per-client", "per-/16"],
)
def test_persistence_timeout_and_granularity(
    netns, ipvs: IPVS, timeout: int, netmask: str, shown_mask: str | None, rule: str
) -> None:
    ipvs.service("add", service=service4(
        sched_name="rr", flags=flags(PERSISTENT), timeout=timeout, netmask=netmask))
    listed = netns.service("TCP 192.0.2.10:80")
    assert (listed.persistent, listed.mask) == (timeout, shown_mask)
    assert netns.rules() == [rule]


def test_ipv6_udp_service_with_sh_flags_and_persistence(netns, ipvs: IPVS) -> None:
    service = service6(
        addr="2001:db8::1", port=53, protocol=UDP, prefix=64, sched_name="sh",
        flags=flags(PERSISTENT | SH_FALLBACK | SH_PORT), timeout=60)
    ipvs.service("add", service=service)
    ipvs.dest("add", service=service,
              dest=IPVSDest(addr="2001:db8:1::5", port=53, fwd_method=NAT, weight=2))
    ipvs.dest("add", service=service,
              dest=IPVSDest(addr="2001:db8:1::6", port=53, fwd_method=DR, weight=1))

    listed = netns.service("UDP [2001:db8::1]:53")
    assert (listed.scheduler, listed.sched_flags, listed.persistent, listed.mask) == (
        "sh", ("sh-fallback", "sh-port"), 60, "64")
    servers = real_servers(listed)
    assert {a: (r["Forward"], r["Weight"]) for a, r in servers.items()} == {
        "[2001:db8:1::5]:53": ("Masq", 2),
        "[2001:db8:1::6]:53": ("Route", 1),
    }
    assert netns.rules()[0] == "-A -u [2001:db8::1]:53 -s sh -p 60 -M 64 -b sh-fallback,sh-port"

    # Dropping one scheduler flag keeps the rest of the service as it was set.
    ipvs.service("set", service=service6(
        addr="2001:db8::1", port=53, protocol=UDP, prefix=64, sched_name="sh",
        flags=flags(PERSISTENT | SH_PORT), timeout=60))
    listed = netns.service("UDP [2001:db8::1]:53")
    assert (listed.sched_flags, listed.persistent, listed.mask) == (("sh-port",), 60, "64")
    assert len(listed.dests) == 2


def test_fwmark_services_ipv4_and_ipv6(netns, ipvs: IPVS) -> None:
    mark4 = IPVSService(fwmark=7, af=socket.AF_INET, netmask="255.255.255.255",
                        sched_name="wrr")
    mark6 = IPVSService(fwmark=8, af=socket.AF_INET6, netmask=ipv6_granularity(128),
                        sched_name="rr")
    ipvs.service("add", service=mark4)
    ipvs.service("add", service=mark6)
    ipvs.dest("add", service=mark4, dest=IPVSDest(addr="198.51.100.9", port=0, weight=2))
    ipvs.dest("add", service=mark6, dest=IPVSDest(addr="2001:db8:1::9", port=0, weight=3))

    services = netns.listing()
    assert sorted(services) == ["FWM 7", "FWM 8"]
    assert (services["FWM 7"].scheduler, services["FWM 7"].ipv6_fwmark) == ("wrr", False)
    assert (services["FWM 8"].scheduler, services["FWM 8"].ipv6_fwmark) == ("rr", True)
    assert [(r["address"], r["Forward"], r["Weight"]) for r in services["FWM 7"].dests] == [
        ("198.51.100.9:0", "Route", 2)]
    assert [(r["address"], r["Forward"], r["Weight"]) for r in services["FWM 8"].dests] == [
        ("[2001:db8:1::9]:0", "Route", 3)]
    assert "-A -f 8 -6 -s rr" in netns.rules()

    ipvs.service("set", service=IPVSService(
        fwmark=7, af=socket.AF_INET, netmask="255.255.255.255", sched_name="sh"))
    assert netns.service("FWM 7").scheduler == "sh"
    ipvs.service("del", service=mark4)
    ipvs.service("del", service=mark6)
    assert netns.listing() == {}


@pytest.mark.parametrize("scheduler", ["rr", "wrr", "sh", "lc", "wlc", "mh"])
def test_scheduler_module_loads_on_demand(netns, ipvs: IPVS, scheduler: str) -> None:
    ipvs.service("add", service=service4(sched_name=scheduler))
    assert netns.service("TCP 192.0.2.10:80").scheduler == scheduler
    # The kernel asked the guest's modprobe wrapper for it.
    assert f"ip_vs_{scheduler}" in loaded_modules()


# ------------------------------------------------------------------ real servers

def test_forwarding_methods_and_weights(netns, ipvs: IPVS) -> None:
    service = service4(sched_name="wrr")
    ipvs.service("add", service=service)
    ipvs.dest("add", service=service,
              dest=IPVSDest(addr="198.51.100.1", port=8080, fwd_method=NAT, weight=3))
    ipvs.dest("add", service=service,
              dest=IPVSDest(addr="198.51.100.2", port=80, fwd_method=DR, weight=1))
    ipvs.dest("add", service=service,
              dest=IPVSDest(addr="198.51.100.3", port=80, fwd_method=TUNNEL, weight=0))
    ipvs.dest("add", service=service, dest=IPVSDest(addr="198.51.100.4", port=80,
                                                    weight=65535))  # pyroute2 default: DR

    servers = real_servers(netns.service("TCP 192.0.2.10:80"))
    assert {a: (r["Forward"], r["Weight"]) for a, r in servers.items()} == {
        "198.51.100.1:8080": ("Masq", 3),
        "198.51.100.2:80": ("Route", 1),
        "198.51.100.3:80": ("Tunnel", 0),
        "198.51.100.4:80": ("Route", 65535),
    }
    weights = {r["address"]: r["Weight"] for r in
               netns.listing("--persistent-conn")["TCP 192.0.2.10:80"].dests}
    assert weights == {a: r["Weight"] for a, r in servers.items()}
    assert "-a -t 192.0.2.10:80 -r 198.51.100.3:80 -i -w 0 --tun-type ipip" in netns.rules()


def test_edit_real_server_weight_and_thresholds(netns, ipvs: IPVS) -> None:
    service = service4(sched_name="wrr")
    ipvs.service("add", service=service)
    ipvs.dest("add", service=service,
              dest=IPVSDest(addr="198.51.100.1", port=8080, fwd_method=NAT))

    ipvs.dest("set", service=service, dest=IPVSDest(
        addr="198.51.100.1", port=8080, fwd_method=NAT, weight=7, u_thresh=100, l_thresh=50))
    [row] = netns.service("TCP 192.0.2.10:80").dests
    assert (row["Forward"], row["Weight"]) == ("Masq", 7)
    [row] = netns.listing("--thresholds")["TCP 192.0.2.10:80"].dests
    assert (row["address"], row["Uthreshold"], row["Lthreshold"]) == (
        "198.51.100.1:8080", 100, 50)

    # "set" writes every field: what the request leaves out takes pyroute2's
    # defaults (DR, no thresholds), it does not keep the kernel's values.
    ipvs.dest("set", service=service,
              dest=IPVSDest(addr="198.51.100.1", port=8080, weight=2))
    [row] = netns.service("TCP 192.0.2.10:80").dests
    assert (row["Forward"], row["Weight"]) == ("Route", 2)
    [row] = netns.listing("--thresholds")["TCP 192.0.2.10:80"].dests
    assert (row["Uthreshold"], row["Lthreshold"]) == (0, 0)

    ipvs.dest("del", service=service, dest=IPVSDest(addr="198.51.100.1", port=8080))
    listed = netns.service("TCP 192.0.2.10:80")
    assert listed.dests == () and listed.scheduler == "wrr"


def test_dump_reads_back_what_ipvsadm_wrote(netns, ipvs: IPVS) -> None:
    netns.ipvsadm("-A", "-t", "192.0.2.20:443", "-s", "wrr", "-p", "120",
                  "-M", "255.255.255.0")
    netns.ipvsadm("-a", "-t", "192.0.2.20:443", "-r", "198.51.100.5:443", "-m",
                  "-w", "4", "-x", "10", "-y", "5")

    [message] = ipvs.service("dump")
    attrs = message.get("IPVS_CMD_ATTR_SERVICE")
    assert attrs.get("IPVS_SVC_ATTR_ADDR") == "192.0.2.20"
    assert attrs.get("IPVS_SVC_ATTR_PORT") == 443
    assert attrs.get("IPVS_SVC_ATTR_PROTOCOL") == TCP
    assert attrs.get("IPVS_SVC_ATTR_SCHED_NAME") == "wrr"
    # The kernel reports persistent services as persistent + hashed.
    assert attrs.get("IPVS_SVC_ATTR_FLAGS")["flags"] == PERSISTENT | HASHED
    assert attrs.get("IPVS_SVC_ATTR_TIMEOUT") == 120
    assert attrs.get("IPVS_SVC_ATTR_NETMASK") == "255.255.255.0"

    [message] = ipvs.dest("dump", service=service4("192.0.2.20", 443))
    attrs = message.get("IPVS_CMD_ATTR_DEST")
    assert (attrs.get("IPVS_DEST_ATTR_ADDR"), attrs.get("IPVS_DEST_ATTR_PORT")) == (
        "198.51.100.5", 443)
    assert attrs.get("IPVS_DEST_ATTR_FWD_METHOD") == NAT
    assert attrs.get("IPVS_DEST_ATTR_WEIGHT") == 4
    assert (attrs.get("IPVS_DEST_ATTR_U_THRESH"), attrs.get("IPVS_DEST_ATTR_L_THRESH")) == (
        10, 5)


def test_namespaces_have_separate_tables(make_netns) -> None:
    first, second = make_netns(), make_netns()
    with IPVS(netns=first.name) as ipvs:
        ipvs.service("add", service=service4(sched_name="rr"))
    assert list(first.listing()) == ["TCP 192.0.2.10:80"]
    assert second.listing() == {}


# ------------------------------------------------------------------ errors

def refused(call) -> int:
    with pytest.raises(NetlinkError) as caught:
        call()
    return caught.value.code


def test_unknown_scheduler_is_refused(netns, ipvs: IPVS) -> None:
    code = refused(lambda: ipvs.service("add", service=service4(sched_name="nosuch")))
    assert code == 2  # ENOENT: no ip_vs_nosuch module
    assert netns.listing() == {}


def test_duplicate_service_is_refused(netns, ipvs: IPVS) -> None:
    ipvs.service("add", service=service4(sched_name="rr"))
    code = refused(lambda: ipvs.service("add", service=service4(sched_name="wrr")))
    assert code == 17  # EEXIST
    assert netns.service("TCP 192.0.2.10:80").scheduler == "rr"


def test_duplicate_real_server_is_refused(netns, ipvs: IPVS) -> None:
    service = service4()
    ipvs.service("add", service=service)
    ipvs.dest("add", service=service, dest=IPVSDest(addr="198.51.100.1", port=80, weight=5))
    code = refused(lambda: ipvs.dest(
        "add", service=service, dest=IPVSDest(addr="198.51.100.1", port=80, weight=9)))
    assert code == 17  # EEXIST
    [row] = netns.service("TCP 192.0.2.10:80").dests
    assert row["Weight"] == 5


def test_missing_service_and_real_server(netns, ipvs: IPVS) -> None:
    absent = service4("192.0.2.99")
    assert refused(lambda: ipvs.service("del", service=absent)) == 3  # ESRCH
    assert refused(lambda: ipvs.service("set", service=absent)) == 3
    assert refused(lambda: ipvs.dest(
        "add", service=absent, dest=IPVSDest(addr="198.51.100.1", port=80))) == 3
    present = service4()
    ipvs.service("add", service=present)
    assert refused(lambda: ipvs.dest(
        "del", service=present, dest=IPVSDest(addr="198.51.100.1", port=80))) == 2  # ENOENT
    assert list(netns.listing()) == ["TCP 192.0.2.10:80"]


def test_lower_threshold_above_upper_is_refused(netns, ipvs: IPVS) -> None:
    service = service4()
    ipvs.service("add", service=service)
    code = refused(lambda: ipvs.dest("add", service=service, dest=IPVSDest(
        addr="198.51.100.1", port=80, u_thresh=5, l_thresh=10)))
    assert code == 34  # ERANGE
    assert netns.service("TCP 192.0.2.10:80").dests == ()


@pytest.mark.parametrize(
    "service",
    [
        IPVSService(fwmark=5, sched_name="rr"),
        IPVSService(addr="2001:db8::5", port=80, protocol=TCP),
    ],
    ids=["fwmark-without-af-netmask", "ipv6-without-netmask"],
)
def test_service_without_family_netmask_is_refused(netns, ipvs: IPVS, service) -> None:
    assert refused(lambda: ipvs.service("add", service=service)) == 22  # EINVAL
    assert netns.listing() == {}
