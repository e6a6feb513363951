"""`VrrpRuntime(dry_run=True)` in a namespace: the machine runs and says what it would
do, and nothing leaves or changes.

- alone on its link it becomes MASTER in its head: the log names the VIP it would add
  and the GARPs it would send, the notify script it would run and the FIFO line it
  would write; yet no VIP appears, no advert and no ARP reach a listener on the link,
  the script does not run and the FIFO is not made;
- beside a live master (one of ours, not dry) of higher priority it hears the adverts
  and stays BACKUP, and the live master notices nothing.
"""

from __future__ import annotations

import asyncio

from tests.netns.lab import Lab
from tests.netns.test_vrrp_reload import (
    VIP,
    Director,
    adverts,
    arp_senders,
    conf_text,
)
from vrrp.machine import State


async def test_dry_run_alone_logs_everything_and_changes_nothing(lab: Lab, caplog):
    caplog.set_level("DEBUG", logger="vrrp")
    a, b = lab.add_node("dir1"), lab.add_node("listener")
    marker = lab.workdir / "notified"
    fifo = lab.workdir / "notify.fifo"
    text = conf_text(vips=(f"{VIP}/24",), extra=f"notify_master \"/usr/bin/touch {marker}\"",
                     global_extra=f"notify_fifo {fifo}")
    ran: list[tuple[str, ...]] = []

    async def run_script(argv, timeout, user, group):
        ran.append(argv)
        return 0

    ours = Director(lab, a, text, dry_run=True, run_script=run_script)
    with lab.capture(b.ns, "eth0") as capture:
        await ours.runtime.start()
        try:
            await ours.wait_state(State.MASTER, 5)
            await asyncio.sleep(1.0)  # a few adverts' worth, and the GARP burst
            assert not a.has_address(VIP)
            assert adverts(capture) == [] and VIP not in arp_senders(capture)
        finally:
            await ours.runtime.stop(graceful=False)
    log = caplog.text
    assert f"dry-run: vrrp: would add {VIP}/24 dev eth0" in log
    assert f"dry-run: vrrp: would send a gratuitous ARP for {VIP} on eth0" in log
    assert "dry-run: vrrp: (VI_1) would send an advert (priority 100)" in log
    assert f"dry-run: vrrp: would run: /usr/bin/touch {marker}" in log
    assert f"dry-run: vrrp: would write to the FIFO {fifo}: INSTANCE \"VI_1\" MASTER" in log
    assert f"dry-run: vrrp: would delete {VIP}/24 dev eth0" in log
    assert ran == [] and not marker.exists() and not fifo.exists()
    assert [t.new for t in ours.transitions] == ["BACKUP", "MASTER", "STOP"]


async def test_dry_run_beside_a_live_master_stays_backup(lab: Lab, caplog):
    caplog.set_level("INFO", logger="vrrp")
    a, b = lab.add_node("dir1"), lab.add_node("dir2")
    live = Director(lab, b, conf_text(priority=150, vips=(f"{VIP}/24",)))
    await live.runtime.start()
    dry = Director(lab, a, conf_text(priority=100, vips=(f"{VIP}/24",)), dry_run=True)
    try:
        await live.wait_state(State.MASTER, 5)
        await dry.runtime.start()
        await dry.wait_state(State.BACKUP, 2)
        await asyncio.sleep(2.0)  # well past the master-down interval (1.5 s + skew)
        runner = dry.runtime.runners["VI_1"]
        assert runner.state is State.BACKUP
        assert runner.status()["master"] == str(b.ipv4.ip)
        assert runner.status()["counters"]["adverts_received"] >= 3
        assert b.has_address(VIP) and not a.has_address(VIP)
        assert live.runtime.runners["VI_1"].status()["counters"]["became_master"] == 1
        assert "would add" not in caplog.text
    finally:
        await dry.runtime.stop(graceful=False)
        await live.runtime.stop(graceful=False)
