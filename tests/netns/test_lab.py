"""The lab itself: isolation from the host, connectivity, sysctls, processes, teardown."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.netns.lab import (
    NETNS_DIR,
    Lab,
    LabError,
    pids_in_namespace,
    run,
    wait_until,
)


def host_links() -> set[str]:
    return {link["ifname"] for link in json.loads(run(None, "ip", "-j", "link").stdout)}


def test_nodes_on_a_segment_talk_over_ipv4_and_ipv6_and_the_host_is_untouched(lab: Lab):
    before = host_links()
    a = lab.add_node("a")
    b = lab.add_node("b")
    assert host_links() == before, "the lab must not add links to the host's namespace"
    assert a.ipv4 is not None and b.ipv4 is not None and a.ipv6 and b.ipv6
    assert str(a.ipv4) == "192.0.2.1/24" and str(b.ipv4) == "192.0.2.2/24"
    assert str(b.ipv6) == "2001:db8::2/64"
    for family, src, dst in ((socket.AF_INET, a.ipv4.ip, b.ipv4.ip),
                             (socket.AF_INET6, a.ipv6.ip, b.ipv6.ip)):
        with b.socket(family, socket.SOCK_DGRAM) as rx, a.socket(family, socket.SOCK_DGRAM) as tx:
            rx.bind((str(dst), 9999))
            rx.settimeout(5)
            tx.bind((str(src), 0))
            tx.sendto(b"hello", (str(dst), 9999))
            data, peer = rx.recvfrom(100)
            assert data == b"hello" and peer[0] == str(src)


def test_capture_sees_packets_from_a_peer(lab: Lab):
    a, b = lab.add_node("a"), lab.add_node("b")
    assert a.ipv4 and b.ipv4
    with lab.capture(b.ns, "eth0") as cap, a.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.sendto(b"x" * 10, (str(b.ipv4.ip), 7))
        udp = wait_until(lambda: [p for p in cap.ipv4(proto=17) if p.src == a.ipv4.ip], 5)
    assert udp[0].dst == b.ipv4.ip and udp[0].payload[8:] == b"x" * 10


def test_segments_are_separate_and_nodes_can_sit_on_several(lab: Lab):
    a = lab.add_node("a", ["lan", "dmz"])
    b = lab.add_node("b", "dmz")
    assert set(a.links) == {"eth0", "eth1"}
    assert str(a.links["eth1"].ipv4) == "198.51.100.1/24"
    assert str(b.ipv4) == "198.51.100.2/24"
    assert {x["ifname"] for x in a.addresses()} == {"lo", "eth0", "eth1"}


def test_sysctls_are_per_namespace(lab: Lab):
    key = "net.ipv4.conf.all.arp_accept"
    host = run(None, "sysctl", "-n", key).stdout.strip()
    a = lab.add_node("a", sysctls={key: 1, "net.ipv4.conf.eth0.arp_ignore": 1})
    b = lab.add_node("b")
    assert lab.read_sysctl(a.ns, key) == "1"
    assert lab.read_sysctl(a.ns, "net.ipv4.conf.eth0.arp_ignore") == "1"
    assert lab.read_sysctl(b.ns, key) == "0"
    b.sysctl({"net.ipv4.conf.eth0.arp_announce": 2})
    assert lab.read_sysctl(b.ns, "net.ipv4.conf.eth0.arp_announce") == "2"
    assert run(None, "sysctl", "-n", key).stdout.strip() == host


def test_names_are_unique_per_lab(tmp_path: Path):
    with Lab(tmp_path / "1") as one, Lab(tmp_path / "2") as two:
        assert one.name != two.name
        assert one.add_namespace("x") != two.add_namespace("x")


def test_close_stops_processes_even_stubborn_ones_and_deletes_namespaces(tmp_path: Path):
    lab = Lab(tmp_path, stop_timeout=0.5)
    node = lab.add_node("a")
    polite = node.spawn("sleep", "60")
    # Ignores SIGTERM, and so does the child it forks (which keeps the namespace busy).
    stubborn = node.spawn("sh", "-c", "trap '' TERM; sleep 60 & wait")
    wait_until(lambda: len(pids_in_namespace(node.ns)) >= 3, 5)
    namespaces = list(lab.namespaces)
    started = time.monotonic()
    lab.close()
    assert time.monotonic() - started < 5
    assert polite.returncode == -signal.SIGTERM
    assert stubborn.returncode == -signal.SIGKILL
    for ns in namespaces:
        assert not (NETNS_DIR / ns).exists()


def test_a_failing_test_still_cleans_up(tmp_path: Path):
    with pytest.raises(ZeroDivisionError), Lab(tmp_path) as lab:
        node = lab.add_node("a")
        proc = node.spawn("sleep", "60")
        namespaces = list(lab.namespaces)
        _ = 1 / 0
    assert not proc.alive()
    assert all(not (NETNS_DIR / ns).exists() for ns in namespaces)


def test_close_leaves_other_namespaces_alone(tmp_path: Path):
    with Lab(tmp_path / "other") as other:
        keep = other.add_namespace("keep")
        with Lab(tmp_path / "mine") as mine:
            mine.add_node("a")
        assert (NETNS_DIR / keep).exists()


def test_wait_until_returns_the_value_or_times_out_in_time():
    calls = iter(range(100))
    assert wait_until(lambda: next(calls) >= 3 and "done", 5, interval=0.001) == "done"
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="never"):
        wait_until(lambda: False, 0.2, message="never")
    assert 0.2 <= time.monotonic() - started < 1.0


def test_failed_commands_say_what_failed(lab: Lab):
    ns = lab.add_namespace("a")
    with pytest.raises(LabError, match="nosuchdev"):
        run(ns, "ip", "link", "set", "nosuchdev", "up")
