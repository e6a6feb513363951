"""no_accept (strict mode): the nftables rules that keep a VRRP master that is not the
address owner from accepting packets addressed to its VIPs. The one place in `vrrp/`
that changes firewall state.

keepalived 2.2.7 (vrrp.c ``vrrp_handle_accept_mode``, vrrp_nftables.c; measured here
with Debian's build, which has NFTABLES and no iptables support):

- only an instance with ``no_accept`` (``vrrp_strict`` / ``strict_mode`` implies it
  unless ``accept``) whose configured priority is not 255 (not the address owner) is
  concerned; an address owner, or an ``accept`` instance, never installs anything;
- the rules are set when the instance becomes MASTER, before its VIPs are added, and
  removed when it leaves MASTER (BACKUP, FAULT, STOP), after the VIPs are removed. A
  BACKUP has no rule (the VIPs are not on it, nothing to drop): with keepalived, the
  table does not exist until an instance first becomes master;
- the addresses are the instance's ``virtual_ipaddress`` AND
  ``virtual_ipaddress_excluded`` entries, both families;
- one table per family, ``ip NAME`` and ``ip6 NAME`` (NAME: global_defs ``nftables
  NAME``, default ``keepalived``), base chains ``in`` (hook input) and ``out`` (hook
  output), type filter, priority ``nftables_priority`` (default -1), policy accept;
  set ``vips``; rules ``ip daddr @vips drop`` in ``in`` and ``ip saddr @vips drop`` in
  ``out`` (the host neither receives nor sends from a VIP: it can only route for it).
  IPv6: a constant set ``neighbor-discovery`` {nd-neighbor-solicit,
  nd-neighbor-advert} accepted first in both chains (ND for the VIPs still works),
  link-local destinations (fe80::/10) go to chains ``in_link_local`` /
  ``out_link_local`` that drop ``ip6 daddr . iif`` / ``ip6 saddr . oif`` in the set
  ``vips_link_local`` (a link-local VIP is only one on its own interface);
- ``nftables_counters``: a ``counter`` in every rule;
- at start it deletes a table of its name left behind; at stop it deletes its tables;
- with no_accept and no firewall configured it logs "no firewall configured - using
  nftables" and uses the default table.

Ours does the same (same table, chains, sets and rules, same states), with these
differences: link-local VIPs are matched by interface NAME (``iifname``/``oifname``,
set type ``ipv6_addr . ifname``; keepalived uses the ifindex unless the instance has
``dont_track_primary``; ``nftables_ifindex`` is ignored) because a name always loads,
while an ifindex rule for an interface that is gone makes the whole ruleset fail; and
when no instance blocks anything any more the tables are deleted (keepalived keeps an
empty one until it stops). IGMP/MLD filtering on VMACs (the ``vmac_map`` part of
vrrp_nftables.c) is not done.

The table is named like keepalived's on purpose: operators' runbooks and ``nft list
table ip keepalived`` keep working after a migration. Two VRRP daemons in one network
namespace must use different names (``nftables NAME``), as keepalived's manual says.

Public API::

    Blocked(address: IPv4Address | IPv6Address, interface: str | None = None)
        interface: only for an IPv6 link-local address (the interface it is on).
    blocked_addresses(instance: VrrpInstance, default_interface: str | None)
        -> tuple[Blocked, ...]   # its VIPs and excluded VIPs, config order, no dups
    blocks(instance: VrrpInstance) -> bool   # no_accept and not the address owner
    ruleset(table: str, blocked: Iterable[Blocked], *, priority: int = -1,
            counters: bool = False) -> str
        The pure part: the text for ``nft -f -`` that makes the tables exactly what
        ``blocked`` needs, whatever they are now (it deletes both tables of the name,
        then defines the families that have addresses; one nft run = one atomic
        transaction). Nothing blocked: the tables are only deleted.
    Firewall(netns: str | None = None, *, table: str = "keepalived",
             priority: int = -1, counters: bool = False, nft: str = "nft")
        .block(instance_name: str, vips: Iterable[Blocked]) -> None
        .unblock(instance_name: str, vips: Iterable[Blocked] | None = None) -> None
            (None: all of the instance's)
        .remove_leftovers() -> list[str]   # the tables deleted ("ip keepalived", ...)
        .close() -> None                   # deletes everything it made; idempotent
        .blocked -> dict[str, frozenset[Blocked]]
        .tables() -> list[str]             # our tables that exist now ("ip NAME")
      Blocking (sync, runs ``nft``: call it from a thread) raises `FirewallError`
      when nft fails or is missing; the state it keeps is then the wanted one, and the
      next successful call applies it all. Thread-safe (one lock).
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from vrrp.spec import VrrpInstance

log = logging.getLogger("vrrp")

DEFAULT_TABLE = "keepalived"
DEFAULT_PRIORITY = -1
LINK_LOCAL = ipaddress.IPv6Network("fe80::/10")
NFT_TIMEOUT = 10.0  # seconds


class FirewallError(Exception):
    """nft failed (or is missing)."""


@dataclass(frozen=True, slots=True)
class Blocked:
    """One address to drop; ``interface`` only for an IPv6 link-local address."""

    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    interface: str | None = None

    @property
    def link_local(self) -> bool:
        return self.address.version == 6 and self.address in LINK_LOCAL


def blocks(instance: VrrpInstance) -> bool:
    """keepalived's rule: no_accept, and the configured priority is not 255."""
    return not instance.accept and not instance.address_owner


def blocked_addresses(instance: VrrpInstance,
                      default_interface: str | None) -> tuple[Blocked, ...]:
    """The VIPs and excluded VIPs of ``instance`` (both families, config order)."""
    out: list[Blocked] = []
    for vip in (*instance.virtual_ipaddresses, *instance.virtual_ipaddresses_excluded):
        address = vip.address.ip
        interface = None
        if address.version == 6 and address in LINK_LOCAL:
            interface = vip.dev or default_interface
        entry = Blocked(address, interface)
        if entry not in out:
            out.append(entry)
    return tuple(out)


def _sort_key(entry: Blocked) -> tuple[int, int, str]:
    return (entry.address.version, int(entry.address), entry.interface or "")


def _check_name(name: str, what: str) -> str:
    if not name or len(name) > 255 or any(c.isspace() or c in '"\\;{}#' for c in name):
        raise ValueError(f"{what} {name!r} cannot be used in an nftables ruleset")
    return name


def _elements(items: list[str], indent: str) -> list[str]:
    if not items:
        return []
    return [f"{indent}elements = {{ {', '.join(items)} }}"]


def ruleset(table: str, blocked: Iterable[Blocked], *, priority: int = DEFAULT_PRIORITY,
            counters: bool = False) -> str:
    """See the module docstring."""
    _check_name(table, "table name")
    entries = sorted(set(blocked), key=_sort_key)
    v4 = [str(b.address) for b in entries if b.address.version == 4]
    v6 = [str(b.address) for b in entries if b.address.version == 6 and not b.link_local]
    ll = []
    for b in entries:
        if b.link_local:
            if b.interface is None:
                raise ValueError(f"link-local {b.address} needs its interface")
            ll.append(f'{b.address} . "{_check_name(b.interface, "interface")}"')
    count = "counter " if counters else ""
    hook = f"priority {priority}; policy accept;"
    lines = []
    for family in ("ip", "ip6"):  # delete whatever is there (add first: never fails)
        lines += [f"add table {family} {table}", f"delete table {family} {table}"]
    if v4:
        lines += [
            f"table ip {table} {{",
            "\tset vips {", "\t\ttype ipv4_addr", *_elements(v4, "\t\t"), "\t}",
            "\tchain out {",
            f"\t\ttype filter hook output {hook}",
            f"\t\tip saddr @vips {count}drop",
            "\t}",
            "\tchain in {",
            f"\t\ttype filter hook input {hook}",
            f"\t\tip daddr @vips {count}drop",
            "\t}",
            "}",
        ]
    if v6 or ll:
        lines += [
            f"table ip6 {table} {{",
            "\tset vips {", "\t\ttype ipv6_addr", *_elements(v6, "\t\t"), "\t}",
            "\tset neighbor-discovery {", "\t\ttype icmpv6_type", "\t\tflags constant",
            "\t\telements = { nd-neighbor-solicit, nd-neighbor-advert }", "\t}",
            "\tset vips_link_local {", "\t\ttype ipv6_addr . ifname",
            *_elements(ll, "\t\t"), "\t}",
            "\tchain out {",
            f"\t\ttype filter hook output {hook}",
            f"\t\ticmpv6 type @neighbor-discovery {count}accept",
            f"\t\tip6 saddr fe80::/10 {count}goto out_link_local",
            f"\t\tip6 saddr @vips {count}drop",
            "\t}",
            "\tchain in {",
            f"\t\ttype filter hook input {hook}",
            f"\t\ticmpv6 type @neighbor-discovery {count}accept",
            f"\t\tip6 daddr fe80::/10 {count}goto in_link_local",
            f"\t\tip6 daddr @vips {count}drop",
            "\t}",
            "\tchain in_link_local {",
            f"\t\tip6 daddr . iifname @vips_link_local {count}drop",
            "\t}",
            "\tchain out_link_local {",
            f"\t\tip6 saddr . oifname @vips_link_local {count}drop",
            "\t}",
            "}",
        ]
    return "\n".join(lines) + "\n"


class Firewall:
    """See the module docstring."""

    def __init__(self, netns: str | None = None, *, table: str = DEFAULT_TABLE,
                 priority: int = DEFAULT_PRIORITY, counters: bool = False,
                 nft: str = "nft") -> None:
        self.netns = netns
        self.table = _check_name(table, "table name")
        self.priority = priority
        self.counters = counters
        self.nft = nft
        self._blocked: dict[str, frozenset[Blocked]] = {}
        self._lock = threading.Lock()
        self._made = False  # we may have tables to delete

    @property
    def blocked(self) -> dict[str, frozenset[Blocked]]:
        with self._lock:
            return dict(self._blocked)

    # ------------------------------------------------------------- I/O

    def _argv(self, *args: str) -> list[str]:
        argv = [self.nft, *args]
        if self.netns is not None:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        return argv

    def _run(self, args: list[str], text: str | None = None) -> str:
        if shutil.which(self.nft) is None:
            raise FirewallError(f"{self.nft} not found (Debian package nftables)")
        try:
            done = subprocess.run(self._argv(*args), input=text, capture_output=True,
                                  text=True, timeout=NFT_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise FirewallError(f"nft {' '.join(args)}: {error}") from None
        if done.returncode != 0:
            raise FirewallError(f"nft {' '.join(args)} exited {done.returncode}: "
                                f"{done.stderr.strip()}")
        return done.stdout

    def _apply(self) -> None:
        """Make the tables what ``_blocked`` needs (lock held)."""
        wanted = [b for entries in self._blocked.values() for b in entries]
        text = ruleset(self.table, wanted, priority=self.priority, counters=self.counters)
        if not wanted and not self._made:
            return
        self._run(["-f", "-"], text)
        self._made = bool(wanted)

    def tables(self) -> list[str]:
        out = self._run(["list", "tables"])
        names = []
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "table" and parts[2] == self.table \
                    and parts[1] in ("ip", "ip6"):
                names.append(f"{parts[1]} {parts[2]}")
        return names

    # ------------------------------------------------------------- API

    def block(self, instance_name: str, vips: Iterable[Blocked]) -> None:
        with self._lock:
            entries = self._blocked.get(instance_name, frozenset()) | frozenset(vips)
            if entries == self._blocked.get(instance_name) and self._made:
                return
            self._blocked[instance_name] = entries
            self._made = True  # even if nft fails half-way, try to delete later
            self._apply()

    def unblock(self, instance_name: str, vips: Iterable[Blocked] | None = None) -> None:
        with self._lock:
            old = self._blocked.get(instance_name)
            if old is None:
                return
            rest = frozenset() if vips is None else old - frozenset(vips)
            if rest:
                self._blocked[instance_name] = rest
            else:
                del self._blocked[instance_name]
            self._apply()

    def remove_leftovers(self) -> list[str]:
        """Delete our tables left behind by a run that could not clean up (a crash)."""
        with self._lock:
            found = self.tables()
            if found:
                self._run(["-f", "-"], ruleset(self.table, ()))
            return found

    def close(self) -> None:
        with self._lock:
            self._blocked.clear()
            if self._made:
                self._run(["-f", "-"], ruleset(self.table, ()))
                self._made = False
