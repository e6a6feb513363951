"""no_accept / vrrp_strict with nftables, two of ours (`director run --vrrp-only`) and a
client on one bridge, VRRPv3 at advert_int 0.2 s.

keepalived 2.2.7's rule (vrrp.c, vrrp_nftables.c; measured): a no_accept instance that
is not the address owner drops packets to its VIPs while it is MASTER (table ``ip
keepalived``); a BACKUP has no table; the owner (priority 255) and an ``accept``
instance install nothing. A TCP listener on 0.0.0.0 in each director stands for a
service: the client connects to the VIP.
"""

from __future__ import annotations

import signal
import socket
import time

from tests.netns.lab import Lab, Node, wait_until
from tests.netns.test_vrrp_run import VIP, Ours, config, pair, wait_holds

PORT = 8080
STRICT = "global_defs {\n    vrrp_strict\n    nftables_counters\n}\n"


def listen(node: Node) -> socket.socket:
    sock = node.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", PORT))
    sock.listen(16)
    return sock


def reaches(client: Node, address: str = VIP, timeout: float = 0.7) -> bool:
    sock = client.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        return sock.connect_ex((address, PORT)) == 0
    except OSError:
        return False
    finally:
        sock.close()


def table(node: Node) -> str | None:
    done = node.run("nft", "list", "table", "ip", "keepalived", check=False)
    return done.stdout if done.returncode == 0 else None


def wait_table(node: Node, present: bool, timeout: float = 3.0) -> None:
    wait_until(lambda: (table(node) is not None) is present, timeout, interval=0.02,
               message=f"table ip keepalived {'on' if present else 'gone from'} "
                       f"{node.role}")


def test_strict_non_owner_master_drops_vip_traffic_and_failover(lab: Lab):
    a, b = pair(lab)
    client = lab.add_node("client")
    listeners = [listen(a), listen(b)]
    try:
        ours_a = Ours(lab, a, config(150, extra=STRICT)).start()
        ours_b = Ours(lab, b, config(100, extra=STRICT)).start()
        ours_a.wait_log("(VI_1) Entering MASTER STATE")
        ours_b.wait_log("(VI_1) Entering BACKUP STATE")
        wait_holds(a, 5)
        wait_table(a, True)
        rules = table(a) or ""
        assert VIP in rules and "ip daddr @vips counter" in rules
        assert "ip saddr @vips counter" in rules
        assert table(b) is None, "a backup has no table (keepalived)"
        assert reaches(client, str(a.ipv4.ip)), "the master's own address is reachable"
        assert not reaches(client), "the non-owner master accepted a packet to its VIP"
        ours_a.wait_log("(VI_1) set firewall drop rule (no_accept)")
        assert "no firewall configured - using nftables" in ours_a.output()
        assert "not supported" not in ours_a.output()

        # graceful stop: b takes over, same rule there; a's table is gone
        assert ours_a.process is not None
        ours_a.process.send_signal(signal.SIGTERM)
        wait_holds(b, 5)
        assert ours_a.process.wait(5) == 0
        assert table(a) is None, "the table survived a stop"
        ours_b.wait_log("(VI_1) Entering MASTER STATE")
        wait_table(b, True)
        assert not reaches(client)

        # a crash leaves the table; the next start removes it first
        assert ours_b.process is not None
        ours_b.process.stop(signal.SIGKILL)
        assert table(b) is not None
        ours_a.start()  # a becomes master again (b is down)
        ours_a.wait_log("(VI_1) Entering MASTER STATE")
        wait_holds(a, 5)
        ours_b.start()
        ours_b.wait_log("removed a leftover of a previous run: nftables table ip "
                        "keepalived")
        ours_b.wait_log("(VI_1) Entering BACKUP STATE")
        wait_table(b, False)
        wait_table(a, True)
        assert not reaches(client)
    finally:
        for sock in listeners:
            sock.close()


def test_owner_and_accept_install_nothing(lab: Lab):
    a, b = pair(lab)
    client = lab.add_node("client")
    listeners = [listen(a), listen(b)]
    try:
        # the address owner accepts even in strict mode (keepalived: no table)
        owner = Ours(lab, a, config(255, extra=STRICT), name="owner").start()
        backup = Ours(lab, b, config(100, extra=STRICT), name="backup").start()
        owner.wait_log("(VI_1) Entering MASTER STATE")
        backup.wait_log("(VI_1) Entering BACKUP STATE")
        wait_holds(a, 5)
        time.sleep(0.3)
        assert table(a) is None and table(b) is None
        assert reaches(client)
        assert owner.process is not None and backup.process is not None
        owner.process.stop(signal.SIGTERM)
        backup.process.stop(signal.SIGTERM)

        # accept (the default): nothing installed, the VIP answers on the new master
        plain = Ours(lab, b, config(100), name="plain").start()
        plain.wait_log("(VI_1) Entering MASTER STATE")
        wait_holds(b, 5)
        time.sleep(0.3)
        assert table(b) is None
        assert b.run("nft", "list", "ruleset").stdout.strip() == ""
        assert reaches(client)
    finally:
        for sock in listeners:
            sock.close()
