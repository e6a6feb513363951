"""One keepalived.conf for two directors (``@id`` lines, ``$NAME`` definitions): what our
parser reads for each config id is what two real keepalived daemons do with the file.

Both daemons run on one bridge with ``-i dir1`` and ``-i dir2``; an observer node
captures the adverts. The director our parser gives the higher priority must end up
holding the VIP while the other does not, and the adverts each one sends as master
must carry the VRID, priority, interval and addresses our parser read for it.
"""

from __future__ import annotations

import signal
from pathlib import Path

from director.config.keepalived import load_keepalived
from tests.netns.keepalived_peer import KeepalivedFactory
from tests.netns.lab import Lab, Node, wait_until
from tests.netns.vrrp_model import instance_named, vip_addresses
from tests.netns.vrrp_wire import Advert, adverts

# dir1 says MASTER but has the lower priority: priority, not state, must decide.
# `@^dir2` lines are for every director but dir2.
CONF = """\
$VRID=42
$INTERVAL=0.25
@dir2 $PRIO=190
@^dir2 $PRIO=110
@dir1 $STATE=MASTER
@dir2 $STATE=BACKUP

global_defs {
    script_user root
    enable_script_security
@dir1    router_id director-one
@dir2    router_id director-two
}

vrrp_instance VI_1 {
    state $STATE
    interface eth0
    virtual_router_id $VRID
    priority $PRIO
    version 3
    advert_int $INTERVAL
    virtual_ipaddress {
        192.0.2.200/24
        192.0.2.201/24
    }
}
"""
INSTANCE = "VI_1"


def parsed(conf: Path, config_id: str):
    config, _warnings = load_keepalived(str(conf), config_id=config_id)
    return instance_named(config, INSTANCE)


def adverts_from(node: Node, seen: list[Advert]) -> list[Advert]:
    assert node.ipv4 is not None
    return [a for a in seen if a.src == node.ipv4.ip]


def holds_all(node: Node, addresses: list[str]) -> bool:
    return all(node.has_address(a) for a in addresses)


def holds_none(node: Node, addresses: list[str]) -> bool:
    return not any(node.has_address(a) for a in addresses)


def assert_advert_matches(advert: Advert, instance, who: str) -> None:
    assert advert.version == 3, who
    assert advert.vrid == instance.virtual_router_id, who
    assert advert.priority == instance.priority, who
    assert advert.advert_int == instance.advert_int, who
    assert {str(a) for a in advert.addresses} == set(vip_addresses(instance)), who


def test_the_director_we_rank_higher_holds_the_vip(lab: Lab, keepalived: KeepalivedFactory):
    conf = lab.workdir / "pair.conf"
    conf.write_text(CONF)
    one, two = parsed(conf, "dir1"), parsed(conf, "dir2")
    # What the file means, as our parser reads it (and what the daemons must then show).
    assert one.virtual_router_id == two.virtual_router_id
    assert one.advert_int == two.advert_int
    assert one.priority != two.priority
    vips = vip_addresses(one)
    assert vips == vip_addresses(two) and vips

    dir1, dir2 = lab.add_node("dir1"), lab.add_node("dir2")
    observer = lab.add_node("observer")
    nodes = {"dir1": (dir1, one), "dir2": (dir2, two)}
    winner_id = "dir1" if one.priority > two.priority else "dir2"
    loser_id = "dir2" if winner_id == "dir1" else "dir1"
    winner, winner_spec = nodes[winner_id]
    loser, loser_spec = nodes[loser_id]
    interval = one.advert_int

    with lab.capture(observer.ns, "eth0") as cap:
        # The loser starts first: the winner must win on priority, not by arriving first.
        peers = {loser_id: keepalived(loser, conf, config_id=loser_id, name=loser_id)}
        peers[winner_id] = keepalived(winner, conf, config_id=winner_id, name=winner_id)

        wait_until(lambda: holds_all(winner, vips) and holds_none(loser, vips), 15,
                   message=f"{winner_id} (priority {winner_spec.priority}) holds {vips}, "
                           f"{loser_id} (priority {loser_spec.priority}) none")
        # Stable: after several more adverts nothing has moved.
        mark = len(adverts_from(winner, adverts(cap)))
        wait_until(lambda: len(adverts_from(winner, adverts(cap))) >= mark + 4,
                   10 * interval + 5)
        assert holds_all(winner, vips) and holds_none(loser, vips)
        sent = adverts_from(winner, adverts(cap))
        for advert in sent[-4:]:
            assert_advert_matches(advert, winner_spec, winner_id)
        gaps = [b.time - a.time for a, b in zip(sent[-5:-1], sent[-4:], strict=True)]
        assert all(0.5 * interval < gap < 2 * interval for gap in gaps), gaps

        # The winner leaves: the other director takes over and advertises its own
        # priority (as our parser read it for its config id).
        before = len(adverts_from(loser, adverts(cap)))
        peers[winner_id].stop(signal.SIGTERM)
        wait_until(lambda: holds_all(loser, vips) and holds_none(winner, vips), 10,
                   message=f"{loser_id} takes the VIP over")
        wait_until(lambda: len(adverts_from(loser, adverts(cap))) >= before + 3,
                   10 * interval + 5)
        for advert in adverts_from(loser, adverts(cap))[-3:]:
            assert_advert_matches(advert, loser_spec, loser_id)
