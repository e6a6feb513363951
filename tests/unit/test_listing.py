"""`director.ipvs.listing`: ipvsadm's text from a table (the kernel tier compares with
ipvsadm itself; these pin the format without a kernel)."""

from __future__ import annotations

import ipaddress
import socket

from director.cli.lvsadm import main
from director.ipvs.listing import ConnectionCounts, Counters, Format, largenum, listing
from director.ipvs.table import (
    DestinationKey,
    DestinationSettings,
    Forwarding,
    Protocol,
    Service,
    ServiceKey,
    ServiceSettings,
)

AF4, AF6 = socket.AF_INET, socket.AF_INET6


def key(address: str, port: int, protocol: Protocol = Protocol.TCP) -> ServiceKey:
    ip = ipaddress.ip_address(address)
    return ServiceKey(family=AF6 if ip.version == 6 else AF4, protocol=protocol,
                      address=ip, port=port)


def dest(address: str, port: int) -> DestinationKey:
    return DestinationKey(address=ipaddress.ip_address(address), port=port)


HEAD = ("IP Virtual Server version 1.2.1 (size=4096)\n"
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")


def test_plain_listing_sorted_with_counts():
    svc = key("192.0.2.10", 80)
    table = {
        ServiceKey(family=AF4, fwmark=7): Service(settings=ServiceSettings(scheduler="rr")),
        svc: Service(
            settings=ServiceSettings(scheduler="sh", sched_flags=frozenset({"sh-port"}),
                                     persistence_timeout=300, persistence_netmask=24),
            destinations={
                dest("198.51.100.2", 80): DestinationSettings(forwarding=Forwarding.DR),
                dest("198.51.100.1", 8080): DestinationSettings(
                    forwarding=Forwarding.NAT, weight=3),
            }),
    }
    counts = {svc: {dest("198.51.100.1", 8080): ConnectionCounts(active=5, inactive=2)}}
    assert listing(table, version="1.2.1", size=4096, connections=counts) == HEAD + (
        "TCP  192.0.2.10:80 sh (sh-port) persistent 300 mask 255.255.255.0\n"
        "  -> 198.51.100.1:8080            Masq    3      5          2         \n"
        "  -> 198.51.100.2:80              Route   1      0          0         \n"
        "FWM  7 rr\n")


def test_ipv6_sctp_and_ops():
    table = {
        key("2001:db8::1", 443): Service(settings=ServiceSettings(
            scheduler="rr", persistence_timeout=60, persistence_netmask=64)),
        key("192.0.2.1", 3868, Protocol.SCTP): Service(settings=ServiceSettings(
            scheduler="lc", one_packet=True)),
    }
    assert listing(table, version="1.2.1", size=4096) == HEAD + (
        "SCTP 192.0.2.1:3868 lc ops\n"
        "TCP  [2001:db8::1]:443 rr persistent 60 mask 64\n")


def test_one_service_has_no_version_line():
    svc = key("192.0.2.10", 80)
    table = {svc: Service(), key("192.0.2.11", 80): Service()}
    assert listing(table, version="1.2.1", size=4096, only=svc) == (
        HEAD.split("\n", 1)[1] + "TCP  192.0.2.10:80 wlc\n")


def test_stats_columns_and_large_numbers():
    svc = key("192.0.2.10", 80)
    table = {svc: Service(destinations={dest("198.51.100.1", 80): DestinationSettings()})}
    counters = {svc: (Counters(connections=123_456_789, bytes_in=5),
                      {dest("198.51.100.1", 80): Counters(packets_out=7)})}
    text = listing(table, version="1.2.1", size=4096, fmt=Format.STATS, counters=counters)
    assert text.splitlines()[1:] == [
        "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
        "  -> RemoteAddress:Port",
        "TCP  192.0.2.10:80                 123456K        0        0        5        0",
        "  -> 198.51.100.1:80                     0        0        7        0        0",
    ]


def test_largenum_scales_unless_exact():
    assert largenum(99_999_999, exact=False) == " 99999999"
    assert largenum(100_000_000, exact=False) == "  100000K"
    assert largenum(5_000_000_000, exact=False) == "    5000M"
    assert largenum(5_000_000_000, exact=True) == " 5000000000"
    assert largenum(7, exact=True) == "        7"


def test_lvsadm_refuses_a_bad_service_address(capsys):
    assert main(["-Ln", "-t", "not-an-address:80"]) == 2
    assert "illegal service address" in capsys.readouterr().err
