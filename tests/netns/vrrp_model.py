"""What our VRRP model (`vrrp.spec`) says should be on the interfaces, in the same form
as what `ip -j addr` shows, so that the two can be compared field for field."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from director.config.model import Config
from tests.netns.lab import Node
from vrrp.spec import VirtualAddress, VrrpInstance

# rt_scopes numbers `ip -j` prints for scopes it has no name for.
SCOPE_NAMES = {"0": "global", "200": "site", "253": "link", "254": "host", "255": "nowhere"}


@dataclass(frozen=True, order=True)
class KernelAddress:
    """One address on an interface, as the kernel reports it."""

    device: str
    address: str  # address/prefix
    label: str | None  # IPv4 only
    scope: str
    broadcast: str | None


def instance_named(config: Config, name: str) -> VrrpInstance:
    instance = config.vrrp.instance(name)
    assert instance is not None, f"our model has no vrrp_instance {name}"
    return instance


def vip_addresses(instance: VrrpInstance) -> list[str]:
    """The instance's VIPs (not the excluded ones), without prefix, in order."""
    return [str(vip.address.ip) for vip in instance.virtual_ipaddresses]


def kernel_form(vip: VirtualAddress, instance: VrrpInstance) -> KernelAddress:
    """What `ip -j addr` should show for one of the instance's addresses."""
    device = vip.dev or instance.interface
    assert device is not None, f"{vip.address}: no device in our model"
    ipv4 = vip.address.version == 4
    return KernelAddress(
        device=device,
        address=vip.address.with_prefixlen,
        label=(vip.label or device) if ipv4 else None,
        scope=str(vip.scope),
        broadcast=str(vip.broadcast) if vip.broadcast is not None else None,
    )


def expected_addresses(instance: VrrpInstance) -> set[KernelAddress]:
    vips = instance.virtual_ipaddresses + instance.virtual_ipaddresses_excluded
    return {kernel_form(vip, instance) for vip in vips}


def kernel_addresses(node: Node) -> set[KernelAddress]:
    """Every address in the node's namespace, as `ip -j addr` reports it."""
    found = set()
    for iface in node.addresses():
        for info in iface.get("addr_info", ()):
            ipv4 = info.get("family") == "inet"
            address = ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}")
            scope = str(info.get("scope", "global"))
            found.add(KernelAddress(
                device=iface["ifname"],
                address=address.with_prefixlen,
                label=info.get("label", iface["ifname"]) if ipv4 else None,
                scope=SCOPE_NAMES.get(scope, scope),
                broadcast=info.get("broadcast"),
            ))
    return found
