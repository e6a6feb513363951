"""The keepalived peer fixture: start, stop by signal, restart after SIGKILL, teardown."""

from __future__ import annotations

import signal

from tests.netns.keepalived_peer import GLOBAL_DEFS, KeepalivedFactory
from tests.netns.lab import Lab, pids_in_namespace, wait_until

OWNER = GLOBAL_DEFS + """
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 7
    priority 255
    version 3
    advert_int 0.1
    virtual_ipaddress {
        192.0.2.77/24
    }
}
"""


def test_a_killed_peer_is_cleaned_up_and_can_start_again(lab: Lab,
                                                         keepalived: KeepalivedFactory):
    node = lab.add_node("director")
    peer = keepalived(node, OWNER)
    peer.wait_master("VI_1", 10)
    assert node.has_address("192.0.2.77")
    child = wait_until(peer.vrrp_pid, 5)
    assert child in pids_in_namespace(node.ns)

    assert peer.stop(signal.SIGKILL) == -signal.SIGKILL
    wait_until(lambda: not pids_in_namespace(node.ns), 5,
               message="keepalived's VRRP child is gone too")

    peer.start()  # its stale pid files must not stop it
    peer.wait_master("VI_1", 10)
    assert peer.vrrp_pid() != child
    assert peer.stop(signal.SIGTERM) == 0
    assert not pids_in_namespace(node.ns)
    assert not node.has_address("192.0.2.77")
    assert "Stopped Keepalived" in peer.output()
