"""`lvsadm` without a kernel: option rules and exit statuses, service addresses, the
namespace-aware /proc reader, --health from status.json, JSON. (The kernel tier compares
every listing with ipvsadm.)"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import time

import pytest

from director.cli import lvsadm
from director.cli.lvsadm import (
    EXIT_BAD_OPTION,
    EXIT_FAILED,
    EXIT_USAGE,
    main,
    read_proc_net,
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
from director.state_files import write_status

SVC = ServiceKey(family=socket.AF_INET, protocol=Protocol.TCP,
                 address=ipaddress.ip_address("192.0.2.10"), port=80)


def rs(address: str, port: int = 80) -> DestinationKey:
    return DestinationKey(address=ipaddress.ip_address(address), port=port)


TABLE = {SVC: Service(settings=ServiceSettings(scheduler="rr"), destinations={
    rs("198.51.100.1"): DestinationSettings(forwarding=Forwarding.NAT),
    rs("198.51.100.2"): DestinationSettings(forwarding=Forwarding.NAT, weight=0),
    rs("198.51.100.3", 8080): DestinationSettings(forwarding=Forwarding.DR),
    rs("198.51.100.4"): DestinationSettings(forwarding=Forwarding.NAT),
})}


class FakeBackend:
    """What lvsadm reads from NetlinkBackend, from memory."""

    def __init__(self, netns=None):
        self.netns = netns

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def dump(self):
        return TABLE

    def stats(self):
        return {}

    def sync_daemons(self):
        return [SyncDaemon(SyncState.BACKUP, "eth1", sync_id=2, maxlen=1472, port=8848,
                           ttl=1, group=ipaddress.ip_address("224.0.0.81"))]

    def timeouts(self):
        return Timeouts(tcp=900, tcp_fin=120, udp=300)


@pytest.fixture
def kernel(monkeypatch):
    monkeypatch.setattr(lvsadm, "NetlinkBackend", FakeBackend)
    monkeypatch.setattr(lvsadm, "connection_counts", lambda backend: {})
    monkeypatch.setattr(lvsadm, "_kernel_info", lambda: ("1.2.1", 4096))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# ---------------------------------------------------------------- option rules

@pytest.mark.parametrize(("argv", "status", "words"), [
    (["-Lnc", "--stats"], EXIT_USAGE, "--stats cannot be combined with -c/--connection"),
    (["-Lc", "--thresholds"], EXIT_USAGE, "--thresholds"),
    (["-L", "--timeout", "--persistent-conn"], EXIT_USAGE, "--persistent-conn"),
    (["-Lc", "-t", "192.0.2.1:80"], EXIT_USAGE, "a service (-t/-u/--sctp-service/-f) cannot"),
    (["-L", "--daemon", "--timeout"], EXIT_USAGE, "--daemon cannot be combined with --timeout"),
    (["-L", "-n", "-n"], EXIT_USAGE, "-n/--numeric given more than once"),
    (["-L", "-t", "192.0.2.1:80", "-u", "192.0.2.1:53"], EXIT_USAGE, "more than one service"),
    (["-Ln", "-6"], EXIT_USAGE, "-6/--ipv6"),
    (["-Ln", "-f", "0"], EXIT_USAGE, "invalid fwmark value `0'"),
    (["-Ln", "-f", "x"], EXIT_USAGE, "invalid fwmark"),
    (["-Ln", "-t", "[zz]:80"], EXIT_USAGE, "illegal service address '[zz]:80'"),
    (["-Ln", "-t", "192.0.2.1:no-such-service-name"], EXIT_USAGE, "illegal service address"),
    (["-Ln", "-t", "192.0.2.1:70000"], EXIT_USAGE, "illegal service address"),
    (["-L", "extra"], EXIT_USAGE, "unexpected argument extra"),
    (["-Ln", "--bogus"], EXIT_BAD_OPTION, "unknown option --bogus"),
    (["-L", "-t"], EXIT_BAD_OPTION, "expected one argument"),
    (["-Lc", "--health"], EXIT_USAGE, "--health goes with the table listing"),
    (["-L", "--stats", "--health"], EXIT_USAGE, "not to --stats"),
])
def test_refusals_are_one_line_with_ipvsadms_status(capsys, argv, status, words):
    got, out, err = run(capsys, *argv)
    assert (got, out) == (status, "")
    assert err.startswith("lvsadm: ") and err.count("\n") == 1 and words in err, err


def test_help_exits_0(capsys):
    status, out, _ = run(capsys, "-h")
    assert status == 0
    assert "lvsadm -L -c [-n]" in out and "Exit status" in out


def test_service_addresses_take_names_like_ipvsadm():
    def key(*argv):
        return lvsadm._service_key(lvsadm._parse(list(argv)))

    assert key("-t", "localhost:http") == ServiceKey(
        socket.AF_INET, Protocol.TCP, ipaddress.ip_address("127.0.0.1"), 80)
    assert key("-u", "192.0.2.1:domain").port == 53
    assert key("-t", "[2001:db8::1]:https") == ServiceKey(
        socket.AF_INET6, Protocol.TCP, ipaddress.ip_address("2001:db8::1"), 443)
    assert key("-t", "192.0.2.1").port == 0
    assert key("--sctp-service", "192.0.2.1:3868").protocol is Protocol.SCTP
    assert key("-f", "7", "-6") == ServiceKey(socket.AF_INET6, fwmark=7)
    assert key("-Ln") is None


# ---------------------------------------------------------------- other namespaces

def test_read_proc_net_in_a_namespace_by_path():
    """A thread joins the namespace (here: this process's own, by path) and reads its
    /proc/net file; the process's own namespace is untouched."""
    before = os.readlink("/proc/thread-self/ns/net")
    text = read_proc_net("dev", "/proc/self/ns/net")
    assert text.splitlines()[0] == read_proc_net("dev").splitlines()[0]
    assert os.readlink("/proc/thread-self/ns/net") == before


def test_missing_namespace_is_named(capsys):
    status, _, err = run(capsys, "-Lnc", "--netns", "lvs-no-such-netns")
    assert status == EXIT_FAILED
    assert err == ("lvsadm: no network namespace 'lvs-no-such-netns' "
                   "(/var/run/netns/lvs-no-such-netns)\n")


def test_connections_from_the_proc_file(capsys, monkeypatch):
    text = ("Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
            "TCP C0000201 85A0 C000020A 0050 C6336401 1F90 ESTABLISHED     898\n")
    monkeypatch.setattr(lvsadm, "read_proc_net", lambda name, netns=None: text)
    status, out, _ = run(capsys, "-Lnc")
    assert status == 0
    assert out.splitlines()[2] == (
        "TCP 14:58  ESTABLISHED 192.0.2.1:34208    192.0.2.10:80      198.51.100.1:8080")
    status, out, _ = run(capsys, "-Lc", "--json")
    (row,) = json.loads(out)["connections"]
    assert row == {"protocol": "TCP", "client": "192.0.2.1", "client_port": 34208,
                   "virtual": "192.0.2.10", "virtual_port": 80,
                   "destination": "198.51.100.1", "destination_port": 8080,
                   "state": "ESTABLISHED", "expires": 898, "pe_name": None,
                   "pe_data": None, "expire_text": "14:58"}
    monkeypatch.setattr(lvsadm, "read_proc_net", lambda name, netns=None: "junk\n")
    status, _, err = run(capsys, "-Lnc")
    assert status == EXIT_FAILED and err.count("\n") == 1


def test_daemons_and_timeouts(capsys, kernel):
    assert run(capsys, "-L", "--daemon") == (0, (
        "backup sync daemon (mcast=eth1, syncid=2, maxlen=1472, group=224.0.0.81, "
        "port=8848, ttl=1)\n"), "")
    assert run(capsys, "-L", "--timeout") == (0, "Timeout (tcp tcpfin udp): 900 120 300\n", "")
    status, out, _ = run(capsys, "-L", "--timeout", "--json")
    assert status == 0
    assert json.loads(out) == {"timeouts": {"tcp": 900, "tcp_fin": 120, "udp": 300}}


def test_no_such_service(capsys, kernel):
    assert run(capsys, "-Ln", "-t", "192.0.2.99:80") == (
        EXIT_FAILED, "", "lvsadm: no such service: TCP 192.0.2.99:80\n")


# ---------------------------------------------------------------- --health

def status_document(**overrides):
    def server(address, port, up, drained=False, reason=""):
        return {"address": address, "port": port, "up": up, "drained": drained,
                "weight": 1, "configured_weight": 1, "reason": reason,
                "last_check": time.time(), "latency": 0.003, "since": None}

    return {"pid": 4242, "config": "/etc/keepalived/keepalived.conf", "virtual_servers": [{
        "id": "192.0.2.10:80", "services": ["TCP 192.0.2.10:80"], "quorum_up": True,
        "sorry_active": False, "real_servers": [
            server("198.51.100.1", 80, True, reason="HTTP 200 in 3 ms"),
            server("198.51.100.2", 80, True, drained=True, reason="HTTP 200 in 2 ms"),
            # a DR real server: the kernel holds the service's port, the config another
            server("198.51.100.3", 80, False, reason="connect: Connection refused"),
        ]}], **overrides}


def test_health_columns_from_status_json(capsys, kernel, tmp_path):
    write_status(str(tmp_path), status_document())
    status, out, err = run(capsys, "-Ln", "--health", "--state-dir", str(tmp_path))
    assert (status, err) == (0, "")
    assert out.splitlines()[2:] == [
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn Health Reason",
        "TCP  192.0.2.10:80 rr",
        "  -> 198.51.100.1:80              Masq    1      0          0          UP     "
        "HTTP 200 in 3 ms",
        "  -> 198.51.100.2:80              Masq    0      0          0          DRAIN  "
        "HTTP 200 in 2 ms",
        "  -> 198.51.100.3:8080            Route   1      0          0          DOWN   "
        "connect: Connection refused",
        "  -> 198.51.100.4:80              Masq    1      0          0          ?",
    ]


@pytest.mark.parametrize("case", ["missing", "stale", "other-version"])
def test_health_without_a_usable_status_says_why_in_one_line(capsys, kernel, tmp_path, case):
    if case == "stale":
        write_status(str(tmp_path), status_document(written_at=time.time() - 125))
    elif case == "other-version":
        write_status(str(tmp_path), status_document(version=9))
    status, out, err = run(capsys, "-Ln", "--health", "--state-dir", str(tmp_path))
    assert status == 0
    assert err.count("\n") == 1 and str(tmp_path / "status.json") in err
    if case == "stale":
        assert "written 125 s ago" in err
    assert all(line.endswith(" ?") for line in out.splitlines()[4:])


def test_json_carries_health_when_the_status_is_there(capsys, kernel, tmp_path):
    write_status(str(tmp_path), status_document())
    status, out, _ = run(capsys, "-Ln", "--json", "--state-dir", str(tmp_path))
    assert status == 0
    document = json.loads(out)
    assert document["director_status"]["available"] is True
    assert document["director_status"]["pid"] == 4242
    rows = {d["address"]: d for d in document["services"][0]["destinations"]}
    assert rows["198.51.100.2"]["health"]["state"] == "DRAIN"
    assert rows["198.51.100.1"]["health"]["latency"] == 0.003
    assert rows["198.51.100.4"]["health"] is None
    status, out, _ = run(capsys, "-Ln", "--json", "--state-dir", str(tmp_path / "none"))
    assert status == 0
    document = json.loads(out)
    assert document["director_status"]["available"] is False
    assert "no status file" in document["director_status"]["problem"]
