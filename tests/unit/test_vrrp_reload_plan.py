"""`vrrp.reload_plan`: which instances a reload keeps, changes in place, restarts,
stops and starts, and why."""

from __future__ import annotations

import ipaddress

import pytest

from vrrp.reload_plan import Action, InstancePlan, plan_reload, restart_reasons
from vrrp.spec import (
    Authentication,
    AuthType,
    SyncGroup,
    UnicastPeer,
    VirtualAddress,
    VrrpConfig,
    VrrpInstance,
)

VIP = VirtualAddress(address=ipaddress.IPv4Interface("192.0.2.100/24"))
VIP2 = VirtualAddress(address=ipaddress.IPv4Interface("192.0.2.101/24"))


def inst(name: str = "VI_1", **kw) -> VrrpInstance:
    values = dict(name=name, interface="eth0", virtual_router_id=51, priority=100,
                  virtual_ipaddresses=(VIP,))
    values.update(kw)
    return VrrpInstance(**values)


def config(*instances: VrrpInstance, groups: tuple[SyncGroup, ...] = ()) -> VrrpConfig:
    return VrrpConfig(instances=instances, sync_groups=groups)


def plan_of(old: VrrpInstance, new: VrrpInstance) -> InstancePlan:
    (plan,) = plan_reload(config(old), config(new), {old.name})
    return plan


def test_unchanged_is_kept_even_when_its_lines_moved():
    moved = inst(origin="t.conf:40:1")
    assert plan_of(inst(origin="t.conf:1:1"), moved) == InstancePlan("VI_1", Action.KEEP)


@pytest.mark.parametrize(("change", "field"), [
    (dict(priority=110), "priority"),
    (dict(advert_int=2.0), "advert_int"),
    (dict(nopreempt=True), "nopreempt"),
    (dict(preempt_delay=10.0), "preempt_delay"),
    (dict(virtual_ipaddresses=(VIP, VIP2)), "virtual_ipaddresses"),
    (dict(garp_master_repeat=2), "garp_master_repeat"),
    (dict(authentication=Authentication(auth_type=AuthType.PASS, auth_pass="x")),
     "authentication"),
])
def test_changes_that_keep_the_identity_apply_in_place(change, field):
    plan = plan_of(inst(), inst(**change))
    assert plan.action is Action.UPDATE and plan.reasons == (field,)


def test_unicast_peers_change_in_place_but_multicast_to_unicast_restarts():
    one = (UnicastPeer(address=ipaddress.IPv4Address("192.0.2.2")),)
    two = (*one, UnicastPeer(address=ipaddress.IPv4Address("192.0.2.3")))
    assert plan_of(inst(unicast_peers=one), inst(unicast_peers=two)).action is Action.UPDATE
    plan = plan_of(inst(), inst(unicast_peers=one))
    assert plan.action is Action.RESTART and plan.reasons == ("multicast -> unicast",)


@pytest.mark.parametrize(("change", "reason"), [
    (dict(virtual_router_id=52), "VRID 51 -> 52"),
    (dict(interface="eth1"), "interface eth0 -> eth1"),
    (dict(version=3), "version 2 -> 3"),
    (dict(use_vmac=True), "use_vmac False -> True"),
    (dict(priority=255), "priority 100 -> 255 (address owner now)"),
    (dict(authentication=Authentication(auth_type=AuthType.AH, auth_pass="x")),
     "auth_type AH on"),
])
def test_identity_changes_restart(change, reason):
    plan = plan_of(inst(), inst(**change))
    assert plan.action is Action.RESTART and reason in plan.reasons
    assert restart_reasons(inst(), inst(**change)) == list(plan.reasons)


def test_removed_started_and_not_running():
    old = config(inst("VI_1"), inst("VI_2", virtual_router_id=52))
    new = config(inst("VI_2", virtual_router_id=52), inst("VI_3", virtual_router_id=53))
    plans = plan_reload(old, new, {"VI_1"})  # VI_2 failed to start: tried again
    assert plans == [InstancePlan("VI_1", Action.STOP, ("removed",)),
                     InstancePlan("VI_2", Action.START), InstancePlan("VI_3", Action.START)]


def test_sync_group_membership_is_an_update():
    a, b = inst("VI_1"), inst("VI_2", virtual_router_id=52)
    old = config(a, b)
    new = config(a, b, groups=(SyncGroup(name="G", group=("VI_1", "VI_2")),))
    plans = plan_reload(old, new, {"VI_1", "VI_2"})
    assert [(p.action, p.reasons) for p in plans] == [
        (Action.UPDATE, ("sync group G",)), (Action.UPDATE, ("sync group G",))]
    back = plan_reload(new, old, {"VI_1", "VI_2"})
    assert [p.reasons for p in back] == [("sync group none",), ("sync group none",)]
