"""The netlink backend against the real ip_vs module.

Each test applies operations through `NetlinkBackend`, reads the table back with
`dump()` and checks what `ipvsadm` shows for the same kernel table (the test's own
network namespace).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from director.ipvs.backend import IpvsError
from director.ipvs.netlink import Counters, NetlinkBackend
from director.ipvs.table import (
    DestinationKey,
    DestinationSettings,
    Forwarding,
    Operation,
    OperationKind,
    Protocol,
    Service,
    ServiceKey,
    ServiceSettings,
    Table,
    TunnelType,
)

AF4, AF6 = socket.AF_INET, socket.AF_INET6
NAT, DR, TUN = Forwarding.NAT, Forwarding.DR, Forwarding.TUN


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def tcp(address: str = "192.0.2.10", port: int = 80, protocol: Protocol = Protocol.TCP
        ) -> ServiceKey:
    family = AF6 if ":" in address else AF4
    return ServiceKey(family=family, protocol=protocol, address=ip(address), port=port)


def udp(address: str = "192.0.2.10", port: int = 53) -> ServiceKey:
    return tcp(address, port, Protocol.UDP)


def dest(address: str, port: int = 80) -> DestinationKey:
    return DestinationKey(address=ip(address), port=port)


def add_ops(table: Table) -> list[Operation]:
    ops = []
    for key, service in table.items():
        ops.append(Operation(OperationKind.ADD_SERVICE, key, service.settings))
        ops.extend(
            Operation(OperationKind.ADD_DESTINATION, key, destination=d, destination_settings=s)
            for d, s in service.destinations.items())
    return ops


def install(backend: NetlinkBackend, table: Table) -> None:
    assert backend.apply_all(add_ops(table)) == []


def real_servers(listed) -> dict[str, tuple]:
    return {row["address"]: (row["Forward"], row["Weight"]) for row in listed.dests}


@pytest.fixture
def backend(netns) -> Iterator[NetlinkBackend]:
    with NetlinkBackend(netns.name) as backend:
        yield backend


# ------------------------------------------------------------------ round trips

@pytest.mark.parametrize(
    ("key", "listed_key", "real", "listed_real"),
    [
        (tcp(), "TCP 192.0.2.10:80", "198.51.100.1", "198.51.100.1:8080"),
        (udp(port=80), "UDP 192.0.2.10:80", "198.51.100.1", "198.51.100.1:8080"),
        (tcp("2001:db8::10"), "TCP [2001:db8::10]:80", "2001:db8:1::1",
         "[2001:db8:1::1]:8080"),
        (udp("2001:db8::10", 80), "UDP [2001:db8::10]:80", "2001:db8:1::1",
         "[2001:db8:1::1]:8080"),
        (tcp(protocol=Protocol.SCTP), "SCTP 192.0.2.10:80", "198.51.100.1",
         "198.51.100.1:8080"),
    ],
    ids=["tcp4", "udp4", "tcp6", "udp6", "sctp4"],
)
def test_round_trip_each_protocol_and_family(
    netns, backend: NetlinkBackend, key: ServiceKey, listed_key: str, real: str,
    listed_real: str,
) -> None:
    table = {key: Service(ServiceSettings(scheduler="wrr"), {
        dest(real, 8080): DestinationSettings(forwarding=NAT, weight=3)})}
    install(backend, table)
    assert backend.dump() == table
    listed = netns.service(listed_key)
    assert listed.scheduler == "wrr"
    assert real_servers(listed) == {listed_real: ("Masq", 3)}


def test_round_trip_fwmark_services_ipv4_and_ipv6(netns, backend: NetlinkBackend) -> None:
    table = {
        ServiceKey(family=AF4, fwmark=7): Service(ServiceSettings(scheduler="wrr"), {
            dest("198.51.100.9", 0): DestinationSettings(weight=2)}),
        ServiceKey(family=AF6, fwmark=8): Service(ServiceSettings(scheduler="rr"), {
            dest("2001:db8:1::9", 0): DestinationSettings(weight=3)}),
    }
    install(backend, table)
    assert backend.dump() == table
    services = netns.listing()
    assert sorted(services) == ["FWM 7", "FWM 8"]
    assert (services["FWM 7"].scheduler, services["FWM 7"].ipv6_fwmark) == ("wrr", False)
    assert (services["FWM 8"].scheduler, services["FWM 8"].ipv6_fwmark) == ("rr", True)
    assert real_servers(services["FWM 8"]) == {"[2001:db8:1::9]:0": ("Route", 3)}


@pytest.mark.parametrize(
    ("scheduler", "flags", "shown"),
    [
        ("rr", frozenset(), ()),
        ("wrr", frozenset(), ()),
        ("sh", frozenset({"sh-fallback", "sh-port"}), ("sh-fallback", "sh-port")),
        ("sh", frozenset({"sh-port"}), ("sh-port",)),
        ("mh", frozenset({"mh-port"}), ("mh-port",)),
    ],
    ids=["rr", "wrr", "sh-fallback-port", "sh-port", "mh-port"],
)
def test_round_trip_schedulers_and_flags(
    netns, backend: NetlinkBackend, scheduler: str, flags: frozenset[str], shown: tuple
) -> None:
    table = {tcp(): Service(ServiceSettings(scheduler=scheduler, sched_flags=flags))}
    install(backend, table)
    assert backend.dump() == table
    listed = netns.service("TCP 192.0.2.10:80")
    assert (listed.scheduler, tuple(sorted(listed.sched_flags))) == (scheduler, shown)


def test_generic_flag_names_read_back_as_the_scheduler_names_them(
    netns, backend: NetlinkBackend
) -> None:
    install(backend, {tcp(): Service(ServiceSettings(
        scheduler="sh", sched_flags=frozenset({"flag-1", "flag-2"})))})
    assert backend.dump()[tcp()].settings.sched_flags == {"sh-fallback", "sh-port"}
    assert netns.service("TCP 192.0.2.10:80").sched_flags == ("sh-fallback", "sh-port")


def test_round_trip_forwarding_methods_and_tunnels(netns, backend: NetlinkBackend) -> None:
    table = {tcp(): Service(ServiceSettings(scheduler="wrr"), {
        dest("198.51.100.1", 8080): DestinationSettings(forwarding=NAT, weight=3),
        dest("198.51.100.2"): DestinationSettings(forwarding=DR, weight=1),
        dest("198.51.100.3"): DestinationSettings(forwarding=TUN, weight=0),
        dest("198.51.100.4"): DestinationSettings(
            forwarding=TUN, tunnel_type=TunnelType.GUE, tunnel_port=6080,
            tunnel_checksum="csum"),
        dest("198.51.100.5"): DestinationSettings(
            forwarding=TUN, tunnel_type=TunnelType.GRE, tunnel_checksum="remcsum"),
    })}
    install(backend, table)
    assert backend.dump() == table
    assert real_servers(netns.service("TCP 192.0.2.10:80")) == {
        "198.51.100.1:8080": ("Masq", 3),
        "198.51.100.2:80": ("Route", 1),
        "198.51.100.3:80": ("Tunnel", 0),
        "198.51.100.4:80": ("Tunnel", 1),
        "198.51.100.5:80": ("Tunnel", 1),
    }
    rules = netns.rules()
    gue = next(r for r in rules if "198.51.100.4:80" in r)
    assert "--tun-type gue" in gue and "--tun-port 6080" in gue and "--tun-csum" in gue
    gre = next(r for r in rules if "198.51.100.5:80" in r)
    assert "--tun-type gre" in gre and "--tun-remcsum" in gre


@pytest.mark.parametrize(
    ("key", "settings", "listed_key", "persistent", "mask"),
    [
        (tcp(), ServiceSettings(scheduler="rr", persistence_timeout=300,
                                persistence_netmask=32),
         "TCP 192.0.2.10:80", 300, None),
        (tcp(), ServiceSettings(scheduler="rr", persistence_timeout=3600,
                                persistence_netmask=24),
         "TCP 192.0.2.10:80", 3600, "255.255.255.0"),
        (udp("2001:db8::1"), ServiceSettings(scheduler="sh", persistence_timeout=60,
                                             persistence_netmask=64,
                                             sched_flags=frozenset({"sh-port"})),
         "UDP [2001:db8::1]:53", 60, "64"),
        (ServiceKey(family=AF4, fwmark=9),
         ServiceSettings(scheduler="wlc", persistence_timeout=900, persistence_netmask=16),
         "FWM 9", 900, "255.255.0.0"),
    ],
    ids=["per-client", "per-/24", "ipv6-per-/64", "fwmark-per-/16"],
)
def test_round_trip_persistence_with_netmask(
    netns, backend: NetlinkBackend, key: ServiceKey, settings: ServiceSettings,
    listed_key: str, persistent: int, mask: str | None,
) -> None:
    table = {key: Service(settings)}
    install(backend, table)
    assert backend.dump() == table
    listed = netns.service(listed_key)
    assert (listed.persistent, listed.mask) == (persistent, mask)


def test_persistence_without_netmask_reads_back_as_the_full_length(
    backend: NetlinkBackend
) -> None:
    install(backend, {
        tcp(): Service(ServiceSettings(persistence_timeout=120)),
        tcp("2001:db8::10"): Service(ServiceSettings(persistence_timeout=120)),
    })
    table = backend.dump()
    assert table[tcp()].settings.persistence_netmask == 32
    assert table[tcp("2001:db8::10")].settings.persistence_netmask == 128


def test_round_trip_one_packet_scheduling(netns, backend: NetlinkBackend) -> None:
    table = {udp(): Service(ServiceSettings(scheduler="rr", one_packet=True))}
    install(backend, table)
    assert backend.dump() == table
    assert netns.service("UDP 192.0.2.10:53").one_packet


def test_round_trip_persistence_engine(netns, backend: NetlinkBackend) -> None:
    table = {udp(port=5060): Service(ServiceSettings(
        scheduler="rr", persistence_timeout=30, persistence_netmask=32,
        persistence_engine="sip"))}
    install(backend, table)
    assert backend.dump() == table
    listed = netns.service("UDP 192.0.2.10:5060")
    assert (listed.persistent, listed.pe) == (30, "sip")

    # An edit that leaves the engine out removes it.
    plain = ServiceSettings(scheduler="rr", persistence_timeout=30, persistence_netmask=32)
    backend.apply(Operation(OperationKind.EDIT_SERVICE, udp(port=5060), plain))
    assert backend.dump() == {udp(port=5060): Service(plain)}
    assert netns.service("UDP 192.0.2.10:5060").pe is None


def test_round_trip_thresholds(netns, backend: NetlinkBackend) -> None:
    table = {tcp(): Service(ServiceSettings(), {
        dest("198.51.100.1"): DestinationSettings(upper_threshold=100, lower_threshold=50),
        dest("198.51.100.2"): DestinationSettings(upper_threshold=10),
    })}
    install(backend, table)
    assert backend.dump() == table
    rows = netns.listing("--thresholds")["TCP 192.0.2.10:80"].dests
    assert {r["address"]: (r["Uthreshold"], r["Lthreshold"]) for r in rows} == {
        "198.51.100.1:80": (100, 50), "198.51.100.2:80": (10, 0)}


# ------------------------------------------------------------------ edits and deletes

def test_editing_a_weight_leaves_everything_else_as_it_was(
    netns, backend: NetlinkBackend
) -> None:
    settings = DestinationSettings(forwarding=NAT, weight=3, upper_threshold=100,
                                   lower_threshold=50)
    table = {tcp(): Service(
        ServiceSettings(scheduler="wrr", persistence_timeout=600, persistence_netmask=24), {
            dest("198.51.100.1", 8080): settings,
            dest("198.51.100.2", 8080): DestinationSettings(forwarding=NAT, weight=1),
        })}
    install(backend, table)
    before_rules = netns.rules()

    edited = DestinationSettings(forwarding=NAT, weight=9, upper_threshold=100,
                                 lower_threshold=50)
    backend.apply(Operation(OperationKind.EDIT_DESTINATION, tcp(),
                            destination=dest("198.51.100.1", 8080),
                            destination_settings=edited))
    expected = {tcp(): Service(table[tcp()].settings, {
        **table[tcp()].destinations, dest("198.51.100.1", 8080): edited})}
    assert backend.dump() == expected
    after_rules = netns.rules()
    # (ipvsadm -S leaves thresholds out; --thresholds below shows them.)
    assert [r for r in after_rules if r not in before_rules] == [
        "-a -t 192.0.2.10:80 -r 198.51.100.1:8080 -m -w 9"]
    rows = netns.listing("--thresholds")["TCP 192.0.2.10:80"].dests
    assert {r["address"]: (r["Uthreshold"], r["Lthreshold"]) for r in rows} == {
        "198.51.100.1:8080": (100, 50), "198.51.100.2:8080": (0, 0)}


def test_editing_a_service_keeps_its_real_servers(netns, backend: NetlinkBackend) -> None:
    real = {dest("198.51.100.1"): DestinationSettings(weight=4)}
    install(backend, {tcp(): Service(
        ServiceSettings(scheduler="rr", persistence_timeout=300, persistence_netmask=32), real)})

    new = ServiceSettings(scheduler="sh", sched_flags=frozenset({"sh-port"}))
    backend.apply(Operation(OperationKind.EDIT_SERVICE, tcp(), new))
    assert backend.dump() == {tcp(): Service(new, real)}
    listed = netns.service("TCP 192.0.2.10:80")
    assert (listed.scheduler, listed.sched_flags, listed.persistent) == (
        "sh", ("sh-port",), None)
    assert real_servers(listed) == {"198.51.100.1:80": ("Route", 4)}


def test_deletes(netns, backend: NetlinkBackend) -> None:
    install(backend, {
        tcp(): Service(ServiceSettings(), {
            dest("198.51.100.1"): DestinationSettings(),
            dest("198.51.100.2"): DestinationSettings(),
        }),
        ServiceKey(family=AF6, fwmark=3): Service(ServiceSettings()),
    })
    assert backend.apply_all([
        Operation(OperationKind.DELETE_DESTINATION, tcp(), destination=dest("198.51.100.1")),
        Operation(OperationKind.DELETE_SERVICE, ServiceKey(family=AF6, fwmark=3)),
    ]) == []
    assert backend.dump() == {tcp(): Service(ServiceSettings(), {
        dest("198.51.100.2"): DestinationSettings()})}
    assert list(netns.listing()) == ["TCP 192.0.2.10:80"]
    backend.apply(Operation(OperationKind.DELETE_SERVICE, tcp()))
    assert backend.dump() == {}
    assert netns.listing() == {}


# ------------------------------------------------------------------ adopting a table

def test_dump_adopts_a_table_made_by_ipvsadm(netns, backend: NetlinkBackend) -> None:
    netns.ipvsadm("-A", "-t", "192.0.2.20:443", "-s", "wrr", "-p", "120", "-M", "255.255.255.0")
    netns.ipvsadm("-a", "-t", "192.0.2.20:443", "-r", "198.51.100.5:443", "-m",
                  "-w", "4", "-x", "10", "-y", "5")
    netns.ipvsadm("-a", "-t", "192.0.2.20:443", "-r", "198.51.100.6:443", "-g", "-w", "2")
    netns.ipvsadm("-A", "-u", "[2001:db8::53]:53", "-s", "sh", "-b", "sh-fallback", "-o")
    netns.ipvsadm("-a", "-u", "[2001:db8::53]:53", "-r", "[2001:db8:1::7]:53", "-i",
                  "--tun-type", "gue", "--tun-port", "5555")
    netns.ipvsadm("-A", "-f", "42", "-s", "rr")
    netns.ipvsadm("-a", "-f", "42", "-r", "198.51.100.8:0", "-g")

    assert backend.dump() == {
        tcp("192.0.2.20", 443): Service(
            ServiceSettings(scheduler="wrr", persistence_timeout=120, persistence_netmask=24), {
                dest("198.51.100.5", 443): DestinationSettings(
                    forwarding=NAT, weight=4, upper_threshold=10, lower_threshold=5),
                dest("198.51.100.6", 443): DestinationSettings(forwarding=DR, weight=2),
            }),
        udp("2001:db8::53"): Service(
            ServiceSettings(scheduler="sh", sched_flags=frozenset({"sh-fallback"}),
                            one_packet=True), {
                dest("2001:db8:1::7", 53): DestinationSettings(
                    forwarding=TUN, tunnel_type=TunnelType.GUE, tunnel_port=5555),
            }),
        ServiceKey(family=AF4, fwmark=42): Service(ServiceSettings(scheduler="rr"), {
            dest("198.51.100.8", 0): DestinationSettings(forwarding=DR)}),
    }


def test_reapplying_a_dumped_table_reproduces_it(make_netns) -> None:
    source, copy = make_netns(), make_netns()
    source.ipvsadm("-A", "-t", "192.0.2.30:80", "-s", "wlc", "-p", "60")
    source.ipvsadm("-a", "-t", "192.0.2.30:80", "-r", "198.51.100.30:80", "-m", "-w", "7")
    source.ipvsadm("-A", "-f", "5", "-6", "-s", "mh", "-b", "mh-port")
    with NetlinkBackend(source.name) as reader, NetlinkBackend(copy.name) as writer:
        install(writer, reader.dump())
        assert writer.dump() == reader.dump()
    assert sorted(copy.rules()) == sorted(source.rules())


# ------------------------------------------------------------------ refusals

def refusal(backend: NetlinkBackend, op: Operation) -> IpvsError:
    with pytest.raises(IpvsError) as caught:
        backend.apply(op)
    assert caught.value.op == op
    return caught.value


def test_unknown_scheduler_is_an_error_naming_the_module(netns, backend: NetlinkBackend) -> None:
    error = refusal(backend, Operation(
        OperationKind.ADD_SERVICE, tcp(), ServiceSettings(scheduler="nosuch")))
    assert error.code == errno.ENOENT
    assert "virtual service TCP 192.0.2.10:80" in error.message
    assert "unknown scheduler 'nosuch'" in error.message
    assert "ip_vs_nosuch" in error.message
    assert netns.listing() == {}


def test_unknown_persistence_engine_is_an_error(netns, backend: NetlinkBackend) -> None:
    error = refusal(backend, Operation(OperationKind.ADD_SERVICE, udp(), ServiceSettings(
        persistence_timeout=30, persistence_engine="nosuch")))
    assert error.code == errno.ENOENT
    assert "persistence engine 'nosuch'" in error.message
    assert netns.listing() == {}


@pytest.mark.parametrize(
    ("settings", "code"),
    [
        (DestinationSettings(weight=-1), errno.ERANGE),  # no room for it in the u32 field
        (DestinationSettings(weight=2**31), errno.ERANGE),  # the kernel's int goes negative
        (DestinationSettings(upper_threshold=3, lower_threshold=4), errno.ERANGE),
    ],
    ids=["negative-weight", "weight-2**31", "lower-above-upper"],
)
def test_real_server_values_out_of_range_are_errors(
    netns, backend: NetlinkBackend, settings: DestinationSettings, code: int
) -> None:
    install(backend, {tcp(): Service(ServiceSettings())})
    error = refusal(backend, Operation(OperationKind.ADD_DESTINATION, tcp(),
                                       destination=dest("198.51.100.1"),
                                       destination_settings=settings))
    assert error.code == code
    assert "real server 198.51.100.1:80" in error.message
    assert netns.service("TCP 192.0.2.10:80").dests == ()


def test_ipv6_netmask_beyond_128_is_an_error(netns, backend: NetlinkBackend) -> None:
    error = refusal(backend, Operation(OperationKind.ADD_SERVICE, tcp("2001:db8::10"),
                                       ServiceSettings(persistence_timeout=10,
                                                       persistence_netmask=129)))
    assert error.code == errno.EINVAL
    assert netns.listing() == {}


def test_duplicate_service_is_an_error(netns, backend: NetlinkBackend) -> None:
    install(backend, {tcp(): Service(ServiceSettings(scheduler="rr"))})
    error = refusal(backend, Operation(
        OperationKind.ADD_SERVICE, tcp(), ServiceSettings(scheduler="wrr")))
    assert error.code == errno.EEXIST
    assert "virtual service TCP 192.0.2.10:80" in error.message
    assert "already exists" in error.message
    assert netns.service("TCP 192.0.2.10:80").scheduler == "rr"


def test_deleting_a_missing_real_server_is_an_error(netns, backend: NetlinkBackend) -> None:
    install(backend, {tcp(): Service(ServiceSettings(), {
        dest("198.51.100.2"): DestinationSettings()})})
    error = refusal(backend, Operation(
        OperationKind.DELETE_DESTINATION, tcp(), destination=dest("198.51.100.1")))
    assert error.code == errno.ENOENT
    assert "real server 198.51.100.1:80" in error.message
    assert "no such real server" in error.message
    assert list(real_servers(netns.service("TCP 192.0.2.10:80"))) == ["198.51.100.2:80"]


def test_operations_on_a_missing_service_are_errors(backend: NetlinkBackend) -> None:
    missing = tcp("192.0.2.99")
    for op in [
        Operation(OperationKind.EDIT_SERVICE, missing, ServiceSettings()),
        Operation(OperationKind.DELETE_SERVICE, missing),
        Operation(OperationKind.ADD_DESTINATION, missing, destination=dest("198.51.100.1"),
                  destination_settings=DestinationSettings()),
    ]:
        error = refusal(backend, op)
        assert error.code == errno.ESRCH
        assert "no such virtual service" in error.message


def test_apply_all_goes_on_after_a_refusal(netns, backend: NetlinkBackend) -> None:
    errors = backend.apply_all([
        Operation(OperationKind.ADD_SERVICE, tcp(), ServiceSettings(scheduler="nosuch")),
        Operation(OperationKind.ADD_DESTINATION, tcp(), destination=dest("198.51.100.1"),
                  destination_settings=DestinationSettings()),
        Operation(OperationKind.ADD_SERVICE, udp(), ServiceSettings(scheduler="rr")),
        Operation(OperationKind.ADD_DESTINATION, udp(), destination=dest("198.51.100.1", 53),
                  destination_settings=DestinationSettings(upper_threshold=5, lower_threshold=9)),
    ])
    assert [(e.op.kind, e.code) for e in errors] == [
        (OperationKind.ADD_SERVICE, errno.ENOENT),
        (OperationKind.ADD_DESTINATION, errno.ERANGE),
    ]
    assert backend.dump() == {udp(): Service(ServiceSettings(scheduler="rr"))}
    assert list(netns.listing()) == ["UDP 192.0.2.10:53"]


# ------------------------------------------------------------------ statistics

SERVE_AND_CONNECT = textwrap.dedent("""
    import socket, sys
    server = socket.create_server(("198.51.100.1", 8080))
    for _ in range(int(sys.argv[1])):
        client = socket.create_connection(("192.0.2.10", 80), timeout=5)
        conn, _ = server.accept()
        conn.sendall(b"hello")
        assert client.recv(5) == b"hello"
        client.close()
        conn.close()
""")


def test_stats_count_connections(netns, backend: NetlinkBackend) -> None:
    for address in ("192.0.2.10/32", "198.51.100.1/32"):
        netns.run("ip", "addr", "add", address, "dev", "lo")
    real = dest("198.51.100.1", 8080)
    install(backend, {tcp(): Service(ServiceSettings(scheduler="rr"), {
        real: DestinationSettings(forwarding=NAT)})})
    assert backend.stats()[tcp()].service == Counters()

    netns.run(sys.executable, "-c", SERVE_AND_CONNECT, "3")
    deadline = time.monotonic() + 5  # the kernel folds its per-CPU counters every 2 s
    while True:
        stats = backend.stats()[tcp()]
        if stats.service.connections >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert stats.service.connections == 3
    assert stats.destinations[real].connections == 3
    assert stats.service.packets_in > 0 and stats.service.bytes_in > 0


# ------------------------------------------------------------------ the memory backend agrees

def outcome(backend, op: Operation) -> int:
    """0 when applied, else the errno of the refusal."""
    try:
        backend.apply(op)
    except IpvsError as error:
        return error.code
    return 0


V6_SERVICE = tcp("2001:db8::10")
AGREEMENT_STEPS = [
    Operation(OperationKind.ADD_SERVICE, tcp(), ServiceSettings(scheduler="rr")),
    Operation(OperationKind.ADD_SERVICE, tcp(), ServiceSettings(scheduler="wrr")),
    Operation(OperationKind.ADD_SERVICE, udp(), ServiceSettings(scheduler="nosuch")),
    Operation(OperationKind.ADD_SERVICE, udp(), ServiceSettings(
        scheduler="sh", sched_flags=frozenset({"flag-1"}), persistence_timeout=30,
        one_packet=True)),
    Operation(OperationKind.ADD_SERVICE, V6_SERVICE, ServiceSettings(
        persistence_timeout=60, persistence_netmask=48)),
    Operation(OperationKind.ADD_SERVICE, ServiceKey(family=AF6, fwmark=4),
              ServiceSettings(scheduler="mh", sched_flags=frozenset({"flag-2"}))),
    Operation(OperationKind.ADD_DESTINATION, tcp(), destination=dest("198.51.100.1"),
              destination_settings=DestinationSettings(forwarding=NAT, weight=2)),
    Operation(OperationKind.ADD_DESTINATION, tcp(), destination=dest("198.51.100.1"),
              destination_settings=DestinationSettings()),
    Operation(OperationKind.ADD_DESTINATION, tcp(), destination=dest("198.51.100.2"),
              destination_settings=DestinationSettings(upper_threshold=3, lower_threshold=4)),
    Operation(OperationKind.ADD_DESTINATION, tcp(), destination=dest("198.51.100.3"),
              destination_settings=DestinationSettings(
                  forwarding=DR, tunnel_type=TunnelType.GUE, tunnel_port=99)),
    Operation(OperationKind.ADD_DESTINATION, tcp(), destination=dest("2001:db8:1::1"),
              destination_settings=DestinationSettings(forwarding=NAT)),
    Operation(OperationKind.ADD_DESTINATION, tcp(), destination=dest("2001:db8:1::2"),
              destination_settings=DestinationSettings(forwarding=TUN)),
    Operation(OperationKind.ADD_DESTINATION, tcp("192.0.2.99"), destination=dest("198.51.100.1"),
              destination_settings=DestinationSettings()),
    Operation(OperationKind.EDIT_DESTINATION, tcp(), destination=dest("198.51.100.9"),
              destination_settings=DestinationSettings()),
    Operation(OperationKind.EDIT_DESTINATION, tcp(), destination=dest("198.51.100.1"),
              destination_settings=DestinationSettings(forwarding=TUN, weight=5)),
    Operation(OperationKind.EDIT_SERVICE, V6_SERVICE, ServiceSettings(scheduler="wrr")),
    Operation(OperationKind.EDIT_SERVICE, tcp("192.0.2.99"), ServiceSettings()),
    Operation(OperationKind.DELETE_DESTINATION, tcp(), destination=dest("198.51.100.9")),
    Operation(OperationKind.DELETE_DESTINATION, tcp(), destination=dest("198.51.100.3")),
    Operation(OperationKind.DELETE_SERVICE, tcp("192.0.2.99")),
    Operation(OperationKind.DELETE_SERVICE, udp()),
]


def test_memory_backend_agrees_with_the_kernel(backend: NetlinkBackend) -> None:
    from director.ipvs.memory import MemoryBackend

    memory = MemoryBackend()
    for step, op in enumerate(AGREEMENT_STEPS):
        assert (step, outcome(backend, op)) == (step, outcome(memory, op)), op
        assert backend.dump() == memory.dump(), op


# ------------------------------------------------------------------ batched apply_all
# `apply_all` sends many requests per system call (its own codec, its own socket);
# `backend.apply_all(backend, ops)` is the one-at-a-time pyroute2 path. Both must leave
# the same table and report the same errors.

def one_at_a_time(netns_name: str, ops: list[Operation]) -> list[IpvsError]:
    from director.ipvs import backend as backend_module

    with NetlinkBackend(netns_name) as reference:
        return backend_module.apply_all(reference, ops)


def big_table(services: int, reals: int) -> Table:
    table: Table = {}
    for i in range(services):
        if i % 10 == 9:
            key = ServiceKey(family=AF6 if i % 20 == 19 else AF4, fwmark=1000 + i)
        elif i % 5 == 4:
            key = tcp(f"2001:db8::{i:x}", 443)
        else:
            key = tcp(f"192.0.2.{i % 250 + 1}", 80 + i // 250,
                      Protocol.UDP if i % 3 == 0 else Protocol.TCP)
        persistent = i % 4 == 0
        settings = ServiceSettings(scheduler=("wrr", "rr", "sh", "wlc")[i % 4],
                                   persistence_timeout=300 if persistent else None,
                                   persistence_netmask=(24 if key.family == AF4 else 64)
                                   if persistent else None)
        family6 = key.family == AF6
        table[key] = Service(settings, {
            dest(f"2001:db8:1::{i:x}:{j:x}" if family6 else f"198.51.{100 + j}.{i % 250 + 1}",
                 0 if key.fwmark else 8080): DestinationSettings(
                forwarding=(DR, NAT, TUN)[j % 3], weight=1 + j % 7,
                upper_threshold=j % 2 * 50, lower_threshold=j % 2 * 5)
            for j in range(reals)})
    return table


def sorted_rules(netns) -> list[str]:
    return sorted(netns.rules())


def test_apply_all_batches_a_big_table_exactly(make_netns) -> None:
    batched_ns, reference_ns = make_netns(), make_netns()
    table = big_table(120, 20)
    ops = add_ops(table)
    with NetlinkBackend(batched_ns.name) as backend:
        assert backend.apply_all(ops) == []
        stats = backend.write_stats
        assert backend.dump() == table
    assert stats.operations == stats.requests == len(ops) == 120 * 21
    assert stats.sends <= len(ops) // 512 + 2  # hundreds of requests per system call
    assert stats.receives == stats.sends  # no error answers: one acknowledgement each
    assert one_at_a_time(reference_ns.name, ops) == []
    rules = sorted_rules(batched_ns)
    assert len(rules) == len(ops)
    assert rules == sorted_rules(reference_ns)


def test_apply_all_changes_a_big_table_like_the_one_at_a_time_path(make_netns) -> None:
    from director.ipvs.reconcile import reconcile

    batched_ns, reference_ns = make_netns(), make_netns()
    before = big_table(60, 10)
    after = dict(big_table(70, 10))
    for key in list(after)[::7]:  # new weights, one real server fewer
        service = after[key]
        reals = dict(list(service.destinations.items())[1:])
        reals = {d: DestinationSettings(s.forwarding, weight=s.weight + 10) for d, s in
                 reals.items()}
        after[key] = Service(ServiceSettings(scheduler="lc"), reals)
    for key in list(after)[3::11]:
        del after[key]
    with NetlinkBackend(batched_ns.name) as backend:
        assert backend.apply_all(add_ops(before)) == []
        ops = reconcile(after, backend.dump())
        assert backend.apply_all(ops) == []
        assert backend.dump() == after
    assert one_at_a_time(reference_ns.name, add_ops(before)) == []
    assert one_at_a_time(reference_ns.name, ops) == []
    assert sorted_rules(batched_ns) == sorted_rules(reference_ns)


LONG_SCHEDULER = "a-scheduler-name-too-long"


def troubled_ops() -> list[Operation]:
    """Refusals of every kind in the middle of a run of good operations."""
    existing, missing, doomed = tcp("192.0.2.1"), tcp("192.0.2.99"), udp("192.0.2.2")
    twice = tcp("192.0.2.3")
    a, b, c = dest("198.51.100.1"), dest("198.51.100.2"), dest("198.51.100.3")

    def add_dest(key, real, **kw):
        return Operation(OperationKind.ADD_DESTINATION, key, destination=real,
                         destination_settings=DestinationSettings(**kw))

    return [
        Operation(OperationKind.ADD_SERVICE, existing, ServiceSettings(scheduler="rr")),
        add_dest(existing, a),
        # exists: its real servers still go in
        Operation(OperationKind.ADD_SERVICE, existing, ServiceSettings(scheduler="wrr")),
        add_dest(existing, b, weight=3),
        add_dest(existing, b),  # EEXIST
        add_dest(existing, c, upper_threshold=1, lower_threshold=2),  # ERANGE
        # unknown scheduler: the three after it are not attempted
        Operation(OperationKind.ADD_SERVICE, doomed, ServiceSettings(scheduler="nosuch")),
        add_dest(doomed, a),
        Operation(OperationKind.EDIT_SERVICE, doomed, ServiceSettings()),
        Operation(OperationKind.ADD_SERVICE, doomed, ServiceSettings(scheduler="rr")),
        Operation(OperationKind.DELETE_DESTINATION, existing, destination=c),  # ENOENT
        Operation(OperationKind.EDIT_SERVICE, missing, ServiceSettings()),  # ESRCH
        add_dest(missing, a),  # ESRCH
        # refused before the kernel: unknown flag (an add: the next is not attempted),
        # a port that does not fit
        Operation(OperationKind.ADD_SERVICE, tcp("192.0.2.4"),
                  ServiceSettings(sched_flags=frozenset({"odd"}))),
        add_dest(tcp("192.0.2.4"), a),
        add_dest(existing, dest("198.51.100.9", 70000)),
        # a name the kernel's policy refuses, on a service that exists: the request is
        # malformed (EINVAL, not "exists"), so the three operations on the service
        # after it are not attempted
        Operation(OperationKind.ADD_SERVICE, existing, ServiceSettings(
            scheduler=LONG_SCHEDULER)),
        add_dest(existing, dest("198.51.100.7")),
        # the same service added twice in a row, then used
        Operation(OperationKind.ADD_SERVICE, twice, ServiceSettings(scheduler="rr")),
        Operation(OperationKind.ADD_SERVICE, twice, ServiceSettings(scheduler="wrr")),
        add_dest(twice, a, weight=5),
        Operation(OperationKind.EDIT_DESTINATION, twice, destination=a,
                  destination_settings=DestinationSettings(weight=6)),
        Operation(OperationKind.EDIT_DESTINATION, twice, destination=b,
                  destination_settings=DestinationSettings()),  # ENOENT
        Operation(OperationKind.DELETE_SERVICE, missing),  # ESRCH
        add_dest(existing, dest("198.51.100.8"), weight=-1),  # ERANGE
        Operation(OperationKind.DELETE_DESTINATION, existing, destination=a),
    ]


def error_report(errors: list[IpvsError]) -> list[tuple]:
    return [(e.op, e.code, e.message) for e in errors]


@pytest.mark.parametrize(("max_requests", "ack_each"),
                         [(1024, False), (3, False), (1, False), (5, True)],
                         ids=["one-buffer", "three-per-send", "one-per-send", "ack-each"])
def test_apply_all_refusals_match_the_one_at_a_time_path(
    make_netns, max_requests: int, ack_each: bool
) -> None:
    from director.ipvs.netlink import _BatchWriter, _open_genl_socket

    batched_ns, reference_ns = make_netns(), make_netns()
    ops = troubled_ops()
    expected = one_at_a_time(reference_ns.name, ops)
    with NetlinkBackend(batched_ns.name) as backend:
        backend._writer = _BatchWriter(_open_genl_socket(batched_ns.name), backend._ipvs().prid,
                                       ack_each=ack_each, max_requests=max_requests)
        errors = backend.apply_all(ops)
        stats = backend.write_stats
    assert error_report(errors) == error_report(expected)
    assert sorted_rules(batched_ns) == sorted_rules(reference_ns)
    # the operations skipped after a failed add are not sent at all
    assert stats.requests < len(ops)
    codes = [(e.op.kind, e.code) for e in errors]
    assert (OperationKind.ADD_SERVICE, errno.ENOENT) in codes
    assert any("3 further operations on it not attempted" in e.message for e in errors)
    assert any(e.op.service_settings and e.op.service_settings.scheduler == LONG_SCHEDULER
               and "3 further operations on it not attempted" in e.message for e in errors)
    assert "198.51.100.7:80" not in "\n".join(batched_ns.rules())


def test_a_buffer_of_refusals_loses_no_answer(netns, backend: NetlinkBackend) -> None:
    install(backend, {tcp(): Service(ServiceSettings(scheduler="rr"))})
    missing = [Operation(OperationKind.DELETE_DESTINATION, tcp(),
                         destination=dest(f"198.51.{100 + i // 250}.{i % 250 + 1}"))
               for i in range(3000)]
    before = backend.write_stats.sends
    errors = backend.apply_all(missing)
    assert [e.op for e in errors] == missing
    assert {e.code for e in errors} == {errno.ENOENT}
    # every refusal is one answer: the buffers were no bigger than the socket holds
    writer = backend._writer
    assert writer is not None and writer.max_requests >= 64
    assert backend.write_stats.sends - before == -(-3000 // writer.max_requests)


def test_apply_all_in_two_backends_of_one_namespace(netns) -> None:
    """Each backend has its own socket and sequence numbers."""
    with NetlinkBackend(netns.name) as first, NetlinkBackend(netns.name) as second:
        assert first.apply_all(add_ops({tcp(): Service(ServiceSettings())})) == []
        errors = second.apply_all(add_ops({tcp(): Service(ServiceSettings())}))
        assert [e.code for e in errors] == [errno.EEXIST]
        assert second.apply_all(add_ops({udp(): Service(ServiceSettings())})) == []
    assert sorted(netns.listing()) == ["TCP 192.0.2.10:80", "UDP 192.0.2.10:53"]


# ------------------------------------------------------------------ the codec's dump vs pyroute2's

def varied_table() -> Table:
    """Every kind of field a dump decodes."""
    tun = DestinationSettings(forwarding=TUN)
    return {
        tcp(): Service(ServiceSettings(scheduler="wrr"), {
            dest("198.51.100.1", 8080): DestinationSettings(forwarding=NAT, weight=3),
            dest("198.51.100.2"): DestinationSettings(forwarding=DR, weight=0),
            dest("198.51.100.3"): tun,
            dest("198.51.100.4"): DestinationSettings(
                forwarding=TUN, tunnel_type=TunnelType.GUE, tunnel_port=6080,
                tunnel_checksum="csum"),
            dest("198.51.100.5"): DestinationSettings(
                forwarding=TUN, tunnel_type=TunnelType.GRE, tunnel_checksum="remcsum"),
            dest("198.51.100.6"): DestinationSettings(
                forwarding=TUN, tunnel_type=TunnelType.GUE, tunnel_port=65535,
                tunnel_checksum="remcsum", upper_threshold=100, lower_threshold=50),
            dest("198.51.100.7"): DestinationSettings(
                weight=65535, upper_threshold=4294967295, lower_threshold=1),
        }),
        udp(): Service(ServiceSettings(scheduler="rr", one_packet=True), {
            dest("198.51.100.1", 53): DestinationSettings(forwarding=NAT)}),
        tcp(protocol=Protocol.SCTP): Service(ServiceSettings(scheduler="wlc")),
        tcp("192.0.2.11", 443): Service(ServiceSettings(
            scheduler="sh", sched_flags=frozenset({"sh-fallback", "sh-port"}),
            persistence_timeout=3600, persistence_netmask=24), {
            dest("198.51.100.8", 443): DestinationSettings(upper_threshold=7)}),
        tcp("192.0.2.12", 0): Service(ServiceSettings(
            scheduler="rr", sched_flags=frozenset({"flag-1", "flag-3"}),
            persistence_timeout=1, persistence_netmask=32)),
        udp("192.0.2.13", 5060): Service(ServiceSettings(
            scheduler="rr", persistence_timeout=30, persistence_netmask=32,
            persistence_engine="sip")),
        tcp("2001:db8::10"): Service(ServiceSettings(
            scheduler="mh", sched_flags=frozenset({"mh-port"}),
            persistence_timeout=60, persistence_netmask=64), {
            dest("2001:db8:1::1", 8080): DestinationSettings(forwarding=NAT, weight=5),
            dest("2001:db8:1::2"): DestinationSettings(
                forwarding=TUN, tunnel_type=TunnelType.GUE, tunnel_port=5555)}),
        udp("2001:db8::11", 53): Service(ServiceSettings(
            scheduler="wlc", persistence_timeout=120, persistence_netmask=128), {
            dest("2001:db8:1::3", 53): DestinationSettings(forwarding=DR)}),
        ServiceKey(family=AF4, fwmark=7): Service(ServiceSettings(
            scheduler="wrr", persistence_timeout=900, persistence_netmask=16), {
            dest("198.51.100.9", 0): DestinationSettings(weight=2),
            dest("198.51.100.10", 0): tun}),
        ServiceKey(family=AF6, fwmark=0xFFFFFFFF): Service(ServiceSettings(
            scheduler="sh", sched_flags=frozenset({"sh-port"}), persistence_timeout=5,
            persistence_netmask=1), {
            dest("2001:db8:1::9", 0): DestinationSettings(weight=3)}),
    }


def both_paths(backend: NetlinkBackend) -> tuple[tuple, tuple]:
    from director.ipvs.netlink import connection_counts

    def read() -> tuple:
        return backend.dump(), backend.stats(), connection_counts(backend)

    backend.raw_dump = True
    raw = read()
    assert backend._reader is not None  # the codec's path was taken
    backend.raw_dump = False
    try:
        pyroute2 = read()
    finally:
        backend.raw_dump = True
    return raw, pyroute2


def test_codec_dump_equals_pyroute2_dump_for_a_varied_table(backend: NetlinkBackend) -> None:
    table = varied_table()
    install(backend, table)
    # A real server of the other family (a tunnel), where the kernel allows it.
    mixed = Operation(OperationKind.ADD_DESTINATION, tcp("2001:db8::10"),
                      destination=dest("198.51.100.20"),
                      destination_settings=DestinationSettings(forwarding=TUN))
    if not backend.apply_all([mixed]):
        table[tcp("2001:db8::10")].destinations[mixed.destination] = (
            mixed.destination_settings)
    raw, pyroute2 = both_paths(backend)
    assert raw[0] == table
    assert raw == pyroute2
    assert list(raw[0]) == list(pyroute2[0])  # in the kernel's order, too
    counts = raw[2]
    assert set(counts) == set(table)
    assert all(c.active == c.inactive == c.persistent == 0
               for dests in counts.values() for c in dests.values())


def test_codec_dump_equals_pyroute2_dump_with_traffic(netns, backend: NetlinkBackend) -> None:
    for address in ("192.0.2.10/32", "198.51.100.1/32"):
        netns.run("ip", "addr", "add", address, "dev", "lo")
    real = dest("198.51.100.1", 8080)
    install(backend, {tcp(): Service(ServiceSettings(scheduler="rr"), {
        real: DestinationSettings(forwarding=NAT)})})
    netns.run(sys.executable, "-c", SERVE_AND_CONNECT, "3")
    deadline = time.monotonic() + 5  # the kernel folds its per-CPU counters every 2 s
    while backend.stats()[tcp()].service.connections < 3 and time.monotonic() < deadline:
        time.sleep(0.25)
    time.sleep(0.1)
    raw, pyroute2 = both_paths(backend)
    # The rates may move between the two reads; the totals do not.
    assert raw[0] == pyroute2[0] and raw[2] == pyroute2[2]
    assert raw[1][tcp()].service.connections == pyroute2[1][tcp()].service.connections == 3
    assert raw[1][tcp()].service.packets_in == pyroute2[1][tcp()].service.packets_in > 0
    assert raw[1][tcp()].service.bytes_in == pyroute2[1][tcp()].service.bytes_in > 0
    assert raw[1][tcp()].destinations[real].connections == 3
    assert sum(c.inactive + c.active for c in raw[2][tcp()].values()) == 3


def test_codec_dump_of_multi_part_answers(make_netns) -> None:
    """Several hundred services (a service dump of many datagrams) and a service with
    hundreds of real servers (a real-server dump of many datagrams)."""
    netns = make_netns()
    table = big_table(400, 3)
    table[tcp("192.0.2.254", 8000)] = Service(ServiceSettings(scheduler="wrr"), {
        dest(f"203.0.113.{i % 250 + 1}", 1000 + i): DestinationSettings(weight=i % 9)
        for i in range(600)})
    with NetlinkBackend(netns.name) as backend:
        install(backend, table)
        raw, pyroute2 = both_paths(backend)
    assert raw[0] == table
    assert raw == pyroute2


def test_codec_dump_skips_a_service_deleted_during_the_read(
    netns, backend: NetlinkBackend, monkeypatch
) -> None:
    from director.ipvs import netlink

    table = {tcp(): Service(ServiceSettings(), {dest("198.51.100.1"): DestinationSettings()}),
             udp(): Service(ServiceSettings(), {dest("198.51.100.2", 53): DestinationSettings()})}
    install(backend, table)
    original = netlink._DumpReader.dump
    calls = []

    def dump_then_delete(self, request):
        answer = original(self, request)
        calls.append(len(answer))
        if len(calls) == 1:  # the service dump: one service goes before its real servers
            netns.ipvsadm("-D", "-u", "192.0.2.10:53")
        return answer

    monkeypatch.setattr(netlink._DumpReader, "dump", dump_then_delete)
    dumped = backend.dump()
    assert dumped[tcp()] == table[tcp()]
    # The kernel answers a real-server dump of a missing service with nothing (older
    # ones with ESRCH: skipped).
    assert udp() not in dumped or dumped[udp()].destinations == {}
    monkeypatch.undo()
    assert backend.dump() == {tcp(): table[tcp()]}  # the socket is fine afterwards


def test_dump_falls_back_to_pyroute2_without_a_raw_socket(
    backend: NetlinkBackend, monkeypatch
) -> None:
    from director.ipvs import netlink

    table = varied_table()
    install(backend, table)

    def refuse(netns):
        raise IpvsError("no socket", None, errno.EMFILE)

    monkeypatch.setattr(netlink, "_open_genl_socket", refuse)
    with NetlinkBackend(backend.netns) as fallback:
        assert fallback.dump() == table
        assert fallback._reader is None
