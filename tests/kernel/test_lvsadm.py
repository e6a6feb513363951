"""`lvsadm -L` prints exactly what `ipvsadm -L` (1.31) prints for the same kernel state:
the table with and without -n, the connection table (-c), sync daemons and timeouts.

Each table is built with ipvsadm itself in the test's own network namespace; the
connection tests build a client, a director and a real server namespace joined by veth
pairs and open real TCP connections through the director.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from director.cli.lvsadm import main

TABLES: dict[str, list[str]] = {
    "empty": [],
    "tcp-every-forwarding": [
        "-A -t 192.0.2.10:80 -s rr",
        "-a -t 192.0.2.10:80 -r 198.51.100.1:8080 -m -w 3",
        "-a -t 192.0.2.10:80 -r 198.51.100.2:80 -g -w 0",
        "-a -t 192.0.2.10:80 -r 198.51.100.3:80 -i -w 65535",
    ],
    "udp-sctp-ops": [
        "-A -u 192.0.2.10:53 -s wrr -o",
        "-a -u 192.0.2.10:53 -r 198.51.100.1:53 -m",
        "-A --sctp-service 192.0.2.11:3868 -s lc",
        "-a --sctp-service 192.0.2.11:3868 -r 198.51.100.5:3868 -m -w 2",
    ],
    "persistence-masks": [
        "-A -t 192.0.2.20:443 -s wlc -p 300",
        "-A -t 192.0.2.21:443 -s wlc -p 60 -M 255.255.255.0",
        "-A -u 192.0.2.22:500 -s sh -p 3600 -M 255.255.0.0",
        "-A -t [2001:db8::20]:443 -s rr -p 120 -M 64",
        "-A -t [2001:db8::21]:443 -s rr -p 120",
        "-A -u 192.0.2.23:5060 -s rr -p 30 --pe sip -o",
    ],
    "scheduler-flags": [
        "-A -t 192.0.2.30:80 -s sh -b sh-fallback,sh-port",
        "-A -t 192.0.2.31:80 -s sh -b sh-port",
        "-A -t 192.0.2.32:80 -s mh -b mh-fallback",
        "-A -t 192.0.2.33:80 -s mh -b mh-fallback,mh-port -p 10",
        "-A -t 192.0.2.34:80 -s rr -b flag-1,flag-3",
        "-a -t 192.0.2.30:80 -r 198.51.100.9:80 -g",
    ],
    "ipv6": [
        "-A -t [2001:db8::1]:80 -s rr",
        "-a -t [2001:db8::1]:80 -r [2001:db8:1::10]:8080 -m -w 5",
        "-a -t [2001:db8::1]:80 -r [2001:db8:1:2:3:4:5:6]:80 -g",
        "-A -u [2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535 -s wlc",
        "-a -u [2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535 "
        "-r [2001:db8:ffff:ffff:ffff:ffff:ffff:fffe]:65535 -m",
    ],
    "fwmark": [
        "-A -f 7 -s rr",
        "-a -f 7 -r 198.51.100.1:0 -g",
        "-a -f 7 -r 198.51.100.2:0 -g -w 4",
        "-A -f 1 -s wlc -p 600",
        "-A -f 9 -6 -s rr",
        "-a -f 9 -6 -r [2001:db8::9]:0 -g",
        "-A -f 4294967295 -s lc",
    ],
    "thresholds": [
        "-A -t 192.0.2.40:80 -s wlc",
        "-a -t 192.0.2.40:80 -r 198.51.100.1:80 -m -x 100 -y 10",
        "-a -t 192.0.2.40:80 -r 198.51.100.2:80 -m -x 5",
    ],
    "many-services-ordering": [
        "-A -u 203.0.113.200:53 -s rr",
        "-A -t 203.0.113.1:80 -s rr",
        "-A -f 3 -s rr",
        "-A -t [2001:db8::2]:80 -s rr",
        "-A -t 192.0.2.255:65535 -s rr",
        "-A -t 192.0.2.1:1 -s rr",
        "-A -u 192.0.2.1:1 -s rr",
        "-A --sctp-service 192.0.2.1:1 -s rr",
        "-A -t 198.51.100.255:80 -s rr",
        "-A -f 2 -6 -s rr",
        "-a -t 192.0.2.1:1 -r 203.0.113.9:80 -m",
        "-a -t 192.0.2.1:1 -r 198.51.100.9:80 -m",
        "-a -t 192.0.2.1:1 -r 198.51.100.9:79 -m",
        "-a -t 192.0.2.1:1 -r 203.0.113.255:65535 -m",
        "-a -t 192.0.2.1:1 -r 192.0.2.200:1 -m",
    ],
    "long-addresses": [
        "-A -t 203.0.113.255:65535 -s wlc -p 86400 -M 255.255.255.254",
        "-a -t 203.0.113.255:65535 -r 198.51.100.255:65535 -m -w 65535",
    ],
}

OPTIONS = {
    "plain": [],
    "sort": ["--sort"],
    "stats": ["--stats"],
    "rate": ["--rate"],
    "stats-exact": ["--stats", "--exact"],
    "rate-exact": ["--rate", "--exact"],
    "thresholds": ["--thresholds"],
    "persistent-conn": ["--persistent-conn"],
    "exact": ["--exact"],
}


def build(netns, commands: list[str]) -> None:
    for command in commands:
        netns.ipvsadm(*command.split())


def lvsadm(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    status = main(list(argv))
    return status, capsys.readouterr().out


@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
@pytest.mark.parametrize("commands", TABLES.values(), ids=TABLES.keys())
def test_listing_is_ipvsadms(netns, capsys, commands, options):
    build(netns, commands)
    status, out = lvsadm(capsys, "-Ln", "--netns", netns.name, *options)
    assert status == 0
    expected = netns.ipvsadm("-Ln", *options)
    assert out == expected


FILTERS = {
    "tcp": ["-t", "192.0.2.1:1"],
    "udp": ["-u", "192.0.2.1:1"],
    "sctp": ["--sctp-service", "192.0.2.1:1"],
    "tcp6": ["-t", "[2001:db8::2]:80"],
    "fwmark": ["-f", "3"],
    "fwmark6": ["-f", "2", "-6"],
}


@pytest.mark.parametrize("options", [[], ["--stats"], ["--rate"], ["--sort"]],
                         ids=["plain", "stats", "rate", "sort"])
@pytest.mark.parametrize("service", FILTERS.values(), ids=FILTERS.keys())
def test_one_service_is_ipvsadms(netns, capsys, service, options):
    build(netns, TABLES["many-services-ordering"])
    status, out = lvsadm(capsys, "-L", "-n", "--netns", netns.name, *service, *options)
    assert status == 0
    assert out == netns.ipvsadm("-L", "-n", *service, *options)


def test_unknown_service_fails_like_ipvsadm(netns, capsys):
    build(netns, TABLES["fwmark"])
    capsys.readouterr()
    status = main(["-Ln", "--netns", netns.name, "-t", "192.0.2.99:80"])
    captured = capsys.readouterr()
    theirs = netns.run("ipvsadm", "-Ln", "-t", "192.0.2.99:80", check=False)
    assert (status, captured.out) == (theirs.returncode, theirs.stdout)
    assert captured.err == "lvsadm: no such service: TCP 192.0.2.99:80\n"


def test_json_has_every_field(netns, capsys):
    build(netns, TABLES["persistence-masks"] + TABLES["tcp-every-forwarding"])
    status, out = lvsadm(capsys, "-Ln", "--json", "--netns", netns.name)
    assert status == 0
    document = json.loads(out)
    assert document["version"] and document["size"] > 0
    services = {s["key"]: s for s in document["services"]}
    assert services["TCP 192.0.2.21:443"]["persistence_netmask"] == 24
    assert services["TCP 192.0.2.21:443"]["persistence_timeout"] == 60
    assert services["UDP 192.0.2.23:5060"]["persistence_engine"] == "sip"
    assert services["UDP 192.0.2.23:5060"]["one_packet"] is True
    rows = {d["address"]: d for d in services["TCP 192.0.2.10:80"]["destinations"]}
    assert rows["198.51.100.1"]["forwarding"] == "NAT"
    assert rows["198.51.100.1"]["weight"] == 3
    assert rows["198.51.100.1"]["port"] == 8080
    assert rows["198.51.100.3"]["forwarding"] == "TUN"
    assert rows["198.51.100.1"]["connections"] == {"active": 0, "inactive": 0, "persistent": 0}
    assert rows["198.51.100.1"]["stats"]["connections"] == 0


def test_counters_after_traffic_are_ipvsadms(netns, capsys):
    """Non-zero ActiveConn/InActConn and statistics: connection attempts from inside the
    namespace to a NAT service whose real server never answers."""
    netns.run("ip", "link", "add", "lv0", "type", "veth", "peer", "name", "lv1")
    netns.run("ip", "addr", "add", "198.51.100.254/24", "dev", "lv0")
    netns.run("ip", "link", "set", "lv0", "up")
    netns.run("ip", "link", "set", "lv1", "up")
    netns.run("ip", "addr", "add", "192.0.2.1/32", "dev", "lo")
    build(netns, [
        "-A -t 192.0.2.1:80 -s rr",
        "-a -t 192.0.2.1:80 -r 198.51.100.1:80 -m",
        "-a -t 192.0.2.1:80 -r 198.51.100.2:80 -m -w 2",
    ])
    for _ in range(3):
        netns.run("timeout", "0.5", "bash", "-c", "echo > /dev/tcp/192.0.2.1/80", check=False)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the kernel folds counters every 2 s
        if int(netns.ipvsadm("-Ln", "--stats").splitlines()[3].split()[2]) > 0:
            break
        time.sleep(0.5)
    conns = netns.ipvsadm("-Ln")
    assert any(int(line.split()[-2]) > 0 for line in conns.splitlines()[4:]), conns
    for options in ([], ["--stats"], ["--stats", "--exact"], ["--thresholds"],
                    ["--persistent-conn"]):
        # Counters may move between two reads: compare only when ipvsadm's reads just
        # before and just after ours agree.
        for _ in range(10):
            before = netns.ipvsadm("-Ln", *options)
            status, out = lvsadm(capsys, "-Ln", "--netns", netns.name, *options)
            if before == netns.ipvsadm("-Ln", *options):
                break
            time.sleep(0.7)
        assert status == 0
        assert out == before, options


def test_console_script_is_ipvsadms(netns):
    build(netns, TABLES["tcp-every-forwarding"] + TABLES["ipv6"])
    script = Path(sys.executable).with_name("lvsadm")
    ours = subprocess.run([str(script), "-Ln", "--netns", netns.name], capture_output=True,
                          text=True, timeout=60, check=False)
    assert (ours.returncode, ours.stderr) == (0, "")
    assert ours.stdout == netns.ipvsadm("-Ln")


# ---------------------------------------------------------------- names (no -n)

NAMED_TABLE = [
    "-A -t 127.0.0.1:80 -s rr",
    "-a -t 127.0.0.1:80 -r 127.0.0.1:443 -m -w 2",
    "-a -t 127.0.0.1:80 -r 192.0.2.7:8080 -m",
    "-A -t 127.0.0.1:443 -s wlc -p 300",
    "-a -t 127.0.0.1:443 -r 127.0.0.1:443 -g",
    "-A -u 127.0.0.1:53 -s rr",
    "-a -u 127.0.0.1:53 -r 127.0.0.1:53 -m",
    "-A --sctp-service 127.0.0.1:80 -s rr",
    "-A -t 192.0.2.1:53 -s rr",
    "-A -t [::1]:443 -s rr",
    "-a -t [::1]:443 -r [::1]:80 -m",
    "-A -f 5 -s rr",
    "-a -f 5 -r 127.0.0.1:0 -g",
]


@pytest.mark.parametrize("options", [[], ["--stats"], ["--rate"], ["--thresholds"],
                                     ["--persistent-conn"], ["--nosort"]],
                         ids=["plain", "stats", "rate", "thresholds", "persistent-conn",
                              "nosort"])
def test_names_are_ipvsadms(netns, capsys, options):
    """Without -n: host names (127.0.0.1 is localhost in /etc/hosts) and service names
    for the protocol (80 http, 443 https, 53 domain; fwmark real servers keep the port
    number)."""
    build(netns, NAMED_TABLE)
    status, out = lvsadm(capsys, "-L", "--netns", netns.name, *options)
    assert status == 0
    expected = netns.ipvsadm("-L", *options)
    assert "localhost:http" in expected or options == ["--nosort"]
    assert out == expected


def test_one_named_service_is_ipvsadms(netns, capsys):
    build(netns, NAMED_TABLE)
    for service in (["-t", "localhost:http"], ["-u", "127.0.0.1:domain"], ["-f", "5"]):
        status, out = lvsadm(capsys, "-L", "--netns", netns.name, *service)
        assert status == 0
        assert out == netns.ipvsadm("-L", *service), service


# ---------------------------------------------------------------- "Local" forwarding

def test_local_real_server_is_ipvsadms(netns, capsys):
    """A real server on one of the director's own addresses: the kernel keeps (and
    reports) the method it was given, so ipvsadm shows Masq/Route, not Local."""
    netns.run("ip", "addr", "add", "192.0.2.10/32", "dev", "lo")
    build(netns, [
        "-A -t 192.0.2.10:80 -s rr",
        "-a -t 192.0.2.10:80 -r 192.0.2.10:8080 -m",
        "-a -t 192.0.2.10:80 -r 127.0.0.1:80 -g",
    ])
    status, out = lvsadm(capsys, "-Ln", "--netns", netns.name)
    assert status == 0
    expected = netns.ipvsadm("-Ln")
    assert " Local " not in expected
    assert out == expected


def test_localnode_method_is_ipvsadms(netns, ipvs, capsys):
    """IP_VS_CONN_F_LOCALNODE (1), which only a netlink client can set: ipvsadm says
    Local."""
    from pyroute2 import IPVSDest, IPVSService

    build(netns, ["-A -t 192.0.2.10:81 -s rr"])
    ipvs.dest("add", service=IPVSService(af=2, protocol=6, addr="192.0.2.10", port=81),
              dest=IPVSDest(addr="198.51.100.7", port=1, fwd_method=1))
    status, out = lvsadm(capsys, "-Ln", "--netns", netns.name)
    expected = netns.ipvsadm("-Ln")
    assert " Local " in expected
    assert (status, out) == (0, expected)


# ---------------------------------------------------------------- connections (-c)

SERVER = r"""
import socket, sys, threading
sock = socket.socket(socket.AF_INET6)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
sock.bind(("::", int(sys.argv[1])))
sock.listen(64)
print("listening", flush=True)

def serve(conn):
    conn.sendall(b"hi\n")
    while conn.recv(100):
        pass
    conn.close()  # the client closed first: it ends in TIME_WAIT

while True:
    threading.Thread(target=serve, args=(sock.accept()[0],), daemon=True).start()
"""

CLIENT = r"""
import socket, sys, time
kept = []
for address, port, keep in ((a, int(p), k == "keep") for a, p, k in
                            (arg.split(",") for arg in sys.argv[1:])):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    conn = socket.create_connection((address, port), timeout=10)
    assert conn.recv(3) == b"hi\n"
    if keep:
        kept.append(conn)
    else:
        conn.close()
print("ready", flush=True)
time.sleep(120)
"""


def _start(netns, code: str, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(["ip", "netns", "exec", netns.name, sys.executable, "-c", code,
                             *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        raise AssertionError(f"{code.splitlines()[1]}... in {netns.name} ended: "
                             f"{proc.returncode}")
    return proc


@pytest.fixture
def lvs_lab(make_netns):
    """client (192.0.2.1, 2001:db8::1) -- director (192.0.2.10, 2001:db8::10;
    198.51.100.254) -- real server (198.51.100.1): TCP 192.0.2.10:80 to a real server
    on the director's own address (8080) and to the real server (NAT), TCP
    [2001:db8::10]:80 to the director's own address, a persistent TCP :22 service and
    a UDP :53 one. A server on port 8080 runs in the director and in the real server."""
    client, director, real = make_netns(), make_netns(), make_netns()
    suffix = director.name[-6:]
    c0, d0, d1, r0 = (f"{name}{suffix}" for name in ("c", "d", "e", "r"))
    subprocess.run(["ip", "link", "add", c0, "netns", client.name, "type", "veth",
                    "peer", "name", d0, "netns", director.name], check=True)
    subprocess.run(["ip", "link", "add", d1, "netns", director.name, "type", "veth",
                    "peer", "name", r0, "netns", real.name], check=True)
    for ns, commands in (
        (client, [f"addr add 192.0.2.1/24 dev {c0}", f"addr add 2001:db8::1/64 dev {c0} nodad",
                  f"link set {c0} up"]),
        (director, [f"addr add 192.0.2.10/24 dev {d0}",
                    f"addr add 2001:db8::10/64 dev {d0} nodad", f"link set {d0} up",
                    f"addr add 198.51.100.254/24 dev {d1}", f"link set {d1} up"]),
        (real, [f"addr add 198.51.100.1/24 dev {r0}", f"link set {r0} up",
                "route add default via 198.51.100.254"]),
    ):
        for command in commands:
            ns.run("ip", *command.split())
    director.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    build(director, [
        "-A -t 192.0.2.10:80 -s rr",
        "-a -t 192.0.2.10:80 -r 192.0.2.10:8080 -m",
        "-a -t 192.0.2.10:80 -r 198.51.100.1:8080 -m",
        "-A -t [2001:db8::10]:80 -s rr",
        "-a -t [2001:db8::10]:80 -r [2001:db8::10]:8080 -m",
        "-A -t 192.0.2.10:22 -s rr -p 60",
        "-a -t 192.0.2.10:22 -r 198.51.100.1:8080 -m",
        "-A -u 192.0.2.10:53 -s rr",
        "-a -u 192.0.2.10:53 -r 198.51.100.1:53 -m",
    ])
    procs = [_start(director, SERVER, "8080"), _start(real, SERVER, "8080")]
    try:
        yield client, director
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)


def _same_second(capsys, netns, argv: list[str]) -> tuple[str, str]:
    """lvsadm's and ipvsadm's output for one command, taken one right after the other.
    The expire column counts down from each connection's own timer, not from the wall
    clock, so a countdown may tick between the two reads whenever they are taken:
    ipvsadm's text is returned with such a tick (ours one second less, nothing else
    different) taken back, and the other columns still have to match exactly."""
    theirs = netns.ipvsadm(*argv)
    status, ours = lvsadm(capsys, *argv, "--netns", netns.name)
    assert status == 0
    return ours, _with_ticks_of(ours, theirs)


_EXPIRE = re.compile(r"^(\S+ +)(\d\d):(\d\d)( .*)$")


def _with_ticks_of(ours: str, theirs: str) -> str:
    """`theirs` with each expire field replaced by ours where ours is exactly one second
    less (read a moment later) and the rest of the line is the same."""
    ours_lines, their_lines = ours.splitlines(keepends=True), theirs.splitlines(keepends=True)
    if len(ours_lines) != len(their_lines):
        return theirs
    fixed = []
    for mine, their in zip(ours_lines, their_lines, strict=True):
        a, b = _EXPIRE.match(mine), _EXPIRE.match(their)
        if a and b and (a.group(1), a.group(4)) == (b.group(1), b.group(4)) \
                and _seconds(b) - _seconds(a) == 1:
            their = mine
        fixed.append(their)
    return "".join(fixed)


def _seconds(expire: re.Match[str]) -> int:
    return int(expire.group(2)) * 60 + int(expire.group(3))


def test_connections_are_ipvsadms(lvs_lab, capsys):
    client, director = lvs_lab
    # Two kept open (ESTABLISHED), three closed by the client (TIME_WAIT / FIN_WAIT),
    # over IPv4 and IPv6, one through the persistent service (a template entry).
    opener = _start(client, CLIENT, "192.0.2.10,80,keep", "192.0.2.10,80,keep",
                    "192.0.2.10,80,close", "192.0.2.10,80,close",
                    "2001:db8::10,80,close", "192.0.2.10,22,keep")
    try:
        client.run("bash", "-c", "echo x > /dev/udp/192.0.2.10/53")
        time.sleep(0.5)
        table = director.run("cat", "/proc/net/ip_vs_conn").stdout
        states = {line.split()[7] for line in table.splitlines()[1:]}
        assert "ESTABLISHED" in states and states & {"TIME_WAIT", "FIN_WAIT", "CLOSE"}, table
        assert "2001:0db8:" in table, table
        for argv in (["-Lnc"], ["-Lc"], ["-L", "-n", "-c", "--persistent-conn"],
                     ["-Lc", "--persistent-conn"], ["-Lnc", "--exact"]):
            ours, theirs = _same_second(capsys, director, argv)
            assert ours == theirs, argv
        status, out = lvsadm(capsys, "-Lnc", "--json", "--netns", director.name)
        assert status == 0
        rows = json.loads(out)["connections"]
        assert len(rows) == len(table.splitlines()) - 1
        assert {"protocol", "client", "client_port", "virtual", "virtual_port",
                "destination", "destination_port", "state", "expires", "pe_name",
                "pe_data", "expire_text"} <= set(rows[0])
        # The table's counts agree too (a local real server is shown as Masq).
        ours, theirs = _same_second(capsys, director, ["-Ln"])
        assert ours == theirs
    finally:
        opener.kill()
        opener.wait(timeout=10)


def test_empty_connection_table_is_ipvsadms(netns, capsys):
    status, out = lvsadm(capsys, "-Lnc", "--netns", netns.name)
    assert (status, out) == (0, netns.ipvsadm("-Lnc"))


def test_connections_of_a_missing_namespace_fail_in_one_line(capsys):
    capsys.readouterr()
    assert main(["-Lnc", "--netns", "lvs-kt-no-such-netns"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lvs-kt-no-such-netns" in err


# ---------------------------------------------------------------- --daemon, --timeout

def test_daemons_and_timeouts_are_ipvsadms(netns, capsys):
    for argv in (["-L", "--daemon"], ["-L", "--timeout"], ["-Ln", "--daemon"]):
        status, out = lvsadm(capsys, *argv, "--netns", netns.name)
        assert (status, out) == (0, netns.ipvsadm(*argv)), argv
    netns.run("ip", "link", "add", "sy0", "type", "veth", "peer", "name", "sy1")
    netns.run("ip", "link", "set", "sy0", "up")
    netns.run("ip", "link", "set", "sy1", "up")
    netns.ipvsadm("--start-daemon", "master", "--mcast-interface", "sy0", "--syncid", "3")
    status, out = lvsadm(capsys, "-L", "--daemon", "--netns", netns.name)
    assert (status, out) == (0, netns.ipvsadm("-L", "--daemon"))
    netns.ipvsadm("--start-daemon", "backup", "--mcast-interface", "sy1", "--syncid", "7",
                  "--sync-maxlen", "1000", "--mcast-group", "239.1.2.3", "--mcast-port",
                  "9000", "--mcast-ttl", "3")
    netns.ipvsadm("--set", "100", "20", "30")
    for argv in (["-L", "--daemon"], ["-L", "--timeout"], ["-Ln", "--daemon", "--exact"]):
        status, out = lvsadm(capsys, *argv, "--netns", netns.name)
        assert (status, out) == (0, netns.ipvsadm(*argv)), argv
    assert "backup sync daemon (mcast=sy1, syncid=7" in out
    status, out = lvsadm(capsys, "-L", "--daemon", "--json", "--netns", netns.name)
    daemons = json.loads(out)["sync_daemons"]
    assert [d["state"] for d in daemons] == ["master", "backup"]
    assert daemons[1]["group"] == "239.1.2.3" and daemons[1]["port"] == 9000
    netns.ipvsadm("--stop-daemon", "master")
    netns.ipvsadm("--start-daemon", "master", "--mcast-interface", "sy0",
                  "--mcast-group", "ff02::1234")
    status, out = lvsadm(capsys, "-L", "--daemon", "--netns", netns.name)
    assert (status, out) == (0, netns.ipvsadm("-L", "--daemon"))
    with contextlib.suppress(subprocess.CalledProcessError):
        netns.ipvsadm("--stop-daemon", "master")
        netns.ipvsadm("--stop-daemon", "backup")


# ---------------------------------------------------------------- option rules

EXIT_CASES = [
    ["-Lnc", "--stats"], ["-Lc", "--rate"], ["-Lc", "--thresholds"],
    ["-Lnc", "-t", "192.0.2.10:80"], ["-Lnc", "--daemon"], ["-L", "--daemon", "--timeout"],
    ["-L", "--timeout", "--persistent-conn"], ["-L", "--timeout", "-t", "192.0.2.10:80"],
    ["-L", "-n", "-n"], ["-Lc", "-c"], ["-Ln", "-t", "192.0.2.10:80", "-u", "192.0.2.10:53"],
    ["-Ln", "-6"], ["-Ln", "-f", "bogus"], ["-Ln", "-f", "7"], ["-Ln", "-t", ":80"],
    ["-L", "extra"], ["-Ln", "--bogus"], ["-L", "--tcp-service"], ["-Ln", "-t", "192.0.2.99"],
    ["-Lc", "--persistent-conn", "--exact", "--sort"], ["-L", "--daemon", "--exact"],
    ["-Ln", "--stats", "--rate"], ["-Ln", "--thresholds", "--persistent-conn"],
    ["--list", "--numeric", "--connection"], ["-h"],
]


@pytest.mark.parametrize("argv", EXIT_CASES, ids=[" ".join(a) for a in EXIT_CASES])
def test_exit_status_is_ipvsadms(netns, capsys, argv):
    theirs = netns.run("ipvsadm", *argv, check=False)
    capsys.readouterr()
    ours = main([*argv, "--netns", netns.name])
    captured = capsys.readouterr()
    assert ours == theirs.returncode
    if ours:
        assert captured.err.count("\n") == 1 and captured.err.startswith("lvsadm: ")
    elif argv != ["-h"]:
        assert captured.out == theirs.stdout
