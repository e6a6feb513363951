"""`director.ipvs.listing`: ipvsadm's text from a table (the kernel tier compares with
ipvsadm itself; these pin the format without a kernel)."""

from __future__ import annotations

import ipaddress
import socket

from director.cli.lvsadm import main
from director.ipvs.listing import (
    ConnectionCounts,
    Counters,
    Format,
    Health,
    HealthState,
    largenum,
    listing,
    short_reason,
    sync_daemons_text,
    timeouts_text,
)
from director.ipvs.table import (
    DestinationKey,
    DestinationSettings,
    Forwarding,
    Protocol,
    Service,
    ServiceKey,
    ServiceSettings,
    SyncDaemon,
    SyncState,
    Timeouts,
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
    assert main(["-Ln", "-t", "[not-an-address]:80"]) == 2
    assert "illegal service address" in capsys.readouterr().err


# ------------------------------------------------------------------ names (no -n)

class FakeNames:
    HOSTS = {"192.0.2.10": "director.example", "2001:db8::10": "v6dir.example",
             "198.51.100.1": "a-very-long-host-name-for-testing.example.org"}
    SERVICES = {(80, "tcp"): "http", (8080, "tcp"): "http-alt", (22, "tcp"): "ssh",
                (53, "udp"): "domain", (1, "tcp"): "tcpmux"}

    def host(self, address):
        return self.HOSTS.get(str(address))

    def service(self, port, protocol):
        return self.SERVICES.get((port, protocol))


def test_names_as_ipvsadm_shows_them_without_n():
    """Captured from ipvsadm 1.31 -L (UML guest, those names in /etc/hosts), with a
    LOCALNODE real server set through netlink."""
    nat = DestinationSettings(forwarding=Forwarding.NAT)
    table = {
        key("192.0.2.10", 22): Service(
            settings=ServiceSettings(scheduler="rr", persistence_timeout=60,
                                     persistence_netmask=32),
            destinations={dest("198.51.100.1", 8080): nat}),
        key("192.0.2.10", 80): Service(settings=ServiceSettings(scheduler="rr"), destinations={
            dest("192.0.2.10", 8080): nat, dest("198.51.100.1", 8080): nat}),
        key("192.0.2.10", 81): Service(settings=ServiceSettings(scheduler="rr"), destinations={
            dest("198.51.100.7", 1): DestinationSettings(forwarding="LOCAL")}),  # type: ignore[arg-type]
        key("192.0.2.10", 53, Protocol.UDP): Service(
            settings=ServiceSettings(scheduler="rr"),
            destinations={dest("198.51.100.1", 53): nat}),
        key("2001:db8::10", 80): Service(settings=ServiceSettings(scheduler="rr"), destinations={
            dest("2001:db8::10", 8080): nat}),
    }
    assert listing(table, version="1.2.1", size=4096, names=FakeNames()) == HEAD + (
        "TCP  director.example:ssh rr persistent 60\n"
        "  -> a-very-long-host-name-for-te Masq    1      0          0         \n"
        "TCP  director.example:http rr\n"
        "  -> director.example:http-alt    Masq    1      0          0         \n"
        "  -> a-very-long-host-name-for-te Masq    1      0          0         \n"
        "TCP  director.example:81 rr\n"
        "  -> 198.51.100.7:tcpmux          Local   1      0          0         \n"
        "UDP  director.example:domain rr\n"
        "  -> a-very-long-host-name-for-te Masq    1      0          0         \n"
        "TCP  [v6dir.example]:http rr\n"
        "  -> [v6dir.example]:http-alt     Masq    1      0          0         \n")


def test_fwmark_real_servers_keep_port_numbers_and_long_names_are_cut():
    table = {
        ServiceKey(family=AF4, fwmark=5): Service(
            settings=ServiceSettings(scheduler="rr"),
            destinations={dest("192.0.2.10", 80): DestinationSettings()}),
        key("198.51.100.1", 8080): Service(settings=ServiceSettings(scheduler="rr")),
    }
    lines = listing(table, version="1.2.1", size=4096, names=FakeNames()).splitlines()
    assert lines[3] == "TCP  a-very-long-host-name-for-te rr"  # cut at 33 characters
    assert lines[5].startswith("  -> director.example:80 ")


# ------------------------------------------------------------------ --daemon, --timeout

def test_sync_daemons_master_first_with_the_kernels_fields():
    """Captured from ipvsadm 1.31 -L --daemon."""
    daemons = [
        SyncDaemon(SyncState.BACKUP, "d1", sync_id=7, maxlen=1024, port=9000, ttl=3,
                   group=ipaddress.ip_address("239.1.2.3")),
        SyncDaemon(SyncState.MASTER, "d0", sync_id=0, maxlen=1452, port=8848, ttl=1,
                   group=ipaddress.ip_address("ff02::1234")),
    ]
    assert sync_daemons_text(daemons) == (
        "master sync daemon (mcast=d0, syncid=0, maxlen=1452, group=ff02::1234, port=8848, "
        "ttl=1)\n"
        "backup sync daemon (mcast=d1, syncid=7, maxlen=1024, group=239.1.2.3, port=9000, "
        "ttl=3)\n")
    assert sync_daemons_text([]) == ""
    # fields an older kernel does not report are left out, as ipvsadm does
    assert sync_daemons_text([SyncDaemon(SyncState.MASTER, "eth0", sync_id=3)]) == (
        "master sync daemon (mcast=eth0, syncid=3)\n")


def test_timeouts():
    assert timeouts_text(Timeouts(tcp=900, tcp_fin=120, udp=300)) == (
        "Timeout (tcp tcpfin udp): 900 120 300\n")


# ------------------------------------------------------------------ --health

def test_health_columns():
    svc = key("192.0.2.10", 80)
    table = {svc: Service(settings=ServiceSettings(scheduler="rr"), destinations={
        dest("198.51.100.1", 80): DestinationSettings(),
        dest("198.51.100.2", 80): DestinationSettings(weight=0),
        dest("198.51.100.3", 80): DestinationSettings(),
        dest("198.51.100.4", 80): DestinationSettings(),
    })}
    health = {svc: {
        dest("198.51.100.1", 80): Health(HealthState.UP, "HTTP 200 in 3 ms"),
        dest("198.51.100.2", 80): Health(HealthState.DRAIN, "HTTP 200 in 2 ms"),
        dest("198.51.100.3", 80): Health(HealthState.DOWN, "connect: Connection refused\n"
                                         + "x" * 100),
    }}
    assert listing(table, version="1.2.1", size=4096, health=health).splitlines()[2:] == [
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn Health Reason",
        "TCP  192.0.2.10:80 rr",
        "  -> 198.51.100.1:80              Route   1      0          0          UP     "
        "HTTP 200 in 3 ms",
        "  -> 198.51.100.2:80              Route   0      0          0          DRAIN  "
        "HTTP 200 in 2 ms",
        "  -> 198.51.100.3:80              Route   1      0          0          DOWN   "
        "connect: Connection refused xxxxxxxxxxxxxxxxx...",
        "  -> 198.51.100.4:80              Route   1      0          0          ?",
    ]


def test_short_reason():
    assert short_reason("  two\nlines  ") == "two lines"
    assert short_reason("a" * 48) == "a" * 48
    assert short_reason("a" * 49) == "a" * 45 + "..."
