"""Ours and a real keepalived 2.2.7 in the same VRID, on one bridge: whoever has the
higher priority is master, the other backup, and each takes over when the other is
killed. VRRPv2 with auth_type PASS (advert_int 1: v2 intervals are whole seconds),
VRRPv2 with auth_type AH (IP protocol 51, multicast and unicast),
VRRPv3 over IPv4 (advert_int 0.2), VRRPv3 in unicast mode (unicast_src_ip and
unicast_peer on both sides) and VRRPv3 over IPv6 (ff02::12, link-local sources)."""

from __future__ import annotations

import signal

import pytest

from tests.netns.conftest import KeepalivedFactory
from tests.netns.keepalived_peer import GLOBAL_DEFS
from tests.netns.lab import Lab
from tests.netns.test_vrrp_run import (
    VIP,
    VIP6,
    Ours,
    config,
    holds,
    unicast_lines,
    wait_holds,
    wait_released,
)

V2_PASS = "authentication {\n        auth_type PASS\n        auth_pass s3cret\n    }"
V2_AH = "authentication {\n        auth_type AH\n        auth_pass k3yp4ss\n    }"


def keepalived_config(priority: int, version: int, advert: float, auth: str,
                      extra: str = "", vip: str = f"{VIP}/24") -> str:
    return GLOBAL_DEFS + f"""
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {priority}
    version {version}
    advert_int {advert}
    {auth}
    {extra}
    virtual_ipaddress {{
        {vip}
    }}
}}
"""


CASES = [pytest.param(2, 1.0, V2_PASS, "multicast", id="v2-pass"),
         pytest.param(2, 1.0, V2_AH, "multicast", id="v2-ah"),
         pytest.param(2, 1.0, V2_AH, "unicast", id="v2-ah-unicast"),
         pytest.param(3, 0.2, "", "multicast", id="v3-ipv4"),
         pytest.param(3, 0.2, "", "unicast", id="v3-unicast"),
         pytest.param(3, 0.2, "", "ipv6", id="v3-ipv6")]


@pytest.mark.parametrize(("version", "advert", "auth", "mode"), CASES)
@pytest.mark.parametrize("ours_master", [True, False], ids=["ours-master", "keepalived-master"])
def test_interop(lab: Lab, keepalived: KeepalivedFactory, version: int, advert: float,
                 auth: str, mode: str, ours_master: bool):
    a, b = lab.add_node("ours"), lab.add_node("keepalived")
    high, low = 150, 100
    ours_extra = unicast_lines(a, b) if mode == "unicast" else ""
    peer_extra = unicast_lines(b, a) if mode == "unicast" else ""
    vip = VIP6 if mode == "ipv6" else VIP
    text = config(high if ours_master else low, version=version, advert=advert, auth=auth,
                  instance_extra=ours_extra)
    if mode == "ipv6":
        text = text.replace(f"{VIP}/24", f"{VIP6}/64")
    ours = Ours(lab, a, text).start()
    peer = keepalived(b, keepalived_config(low if ours_master else high, version, advert,
                                           auth, peer_extra,
                                           f"{VIP6}/64" if mode == "ipv6" else f"{VIP}/24"))
    master_down = 3 * advert + advert  # 3 x advert_int + skew (< advert_int... or 1 s)
    settle = 2 * master_down + 2.0
    if ours_master:
        ours.wait_log("(VI_1) Entering MASTER STATE", settle)
        wait_holds(a, settle, vip)
        peer.wait_for_log(r"\(VI_1\) Entering BACKUP STATE", settle)
    else:
        peer.wait_master("VI_1", settle)
        wait_holds(b, settle, vip)
        ours.wait_log("(VI_1) Entering BACKUP STATE", settle)
    # settled: only the master holds the VIP, the backup stays backup
    import time

    time.sleep(3 * advert)
    master, backup = (a, b) if ours_master else (b, a)
    assert holds(master, vip) and not holds(backup, vip)
    if not ours_master:
        assert "(VI_1) Entering MASTER STATE" not in ours.output()
        assert "wrong_address_list" not in ours.output()

    # the master is killed: the backup takes over within the master-down interval
    if ours_master:
        assert ours.process is not None
        ours.process.stop(signal.SIGKILL)
    else:
        peer.stop(signal.SIGKILL)
    took = wait_holds(backup, master_down + 2.0, vip)
    assert took < master_down + 1.0, f"takeover took {took:.3f} s"

    # the master comes back: it preempts the backup again
    if ours_master:
        ours.start()
        ours.wait_log("(VI_1) Entering MASTER STATE", settle)
        wait_holds(a, settle, vip)
        wait_released(b, settle, vip)
    else:
        peer.start()
        peer.wait_master("VI_1", settle)
        wait_holds(b, settle, vip)
        wait_released(a, settle, vip)
        ours.wait_log("(VI_1) Entering BACKUP STATE (", settle)
