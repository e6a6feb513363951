"""`lvsadm -L -n` prints exactly what `ipvsadm -L -n` prints for the same kernel table.

Each table is built with ipvsadm itself in the test's own network namespace.
"""

from __future__ import annotations

import json
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
    assert (status, captured.out, captured.err) == (
        theirs.returncode, theirs.stdout, theirs.stderr)


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
