"""The VRRP side of a director at run time: every instance of a `VrrpConfig`, its
sockets, tracking, sync groups, notifications, stop and reload.

Public API::

    runtime = VrrpRuntime(config: VrrpConfig, run_script: vrrp.track.RunScript, *,
                          netns: str | None = None, link_poll: float = 0.2,
                          file_poll: float = 0.5, on_change=None, on_transition=None,
                          dry_run: bool = False)
        on_change(): called (no arguments) after every instance state change, e.g. to
        write the status file at once; an exception it raises is logged.
        on_transition(t: Transition): called once per state change of an instance or a
        sync group, after the notifications were sent; an exception is logged.
        dry_run: see "dry run" below.
    await runtime.start()
    await runtime.reload(new_config: VrrpConfig, run_script: RunScript | None = None)
    await runtime.stop(graceful: bool = True)
    runtime.status() -> dict   # {"instances": {NAME: {state, priority, master,
                               #   synced, wants_master, counters, ...}},
                               #   "sync_groups": {NAME: STATE}, "sockets": [{...,
                               #   "counters": {dropped_not_peer, ...}}]}
    runtime.runners -> dict[str, VrrpInstanceRunner]

    Transition(kind: "instance" | "group", name, old, new, priority: int | None,
               vrid: int | None, interface: str | None, master: str | None, reason)
        states as keepalived names them (INIT, BACKUP, MASTER, FAULT, STOP); for a
        group priority, vrid, interface and master are None. ``reason`` is what the
        machine knows ("no advert within the master-down interval", "192.0.2.2 has
        priority 150", "master 192.0.2.2 sent priority 0", "fault: interface eth0
        down", "preempting 192.0.2.2: ...", "sync group: VI_2 is MASTER"), prefixed
        with "stop: " at stop and "reload: <what changed>: " for an instance a reload
        restarts or removes; a group's reason names the member that moved it last.

What it does:

- start: `AddressManager.remove_leftovers` for every instance (VIPs a crashed run left
  behind), first readings of tracked interfaces and files, then one socket per
  (interface, family, group, unicast peers, source address) shared by the instances
  that have the same, datagrams dispatched by VRID (a VRID nobody serves counts
  ``wrong_vrid`` on the socket's instances), one `VrrpInstanceRunner` each, started;
  the tracked vrrp_scripts run through the injected ``run_script``
  (`vrrp.track.ScriptTracker`); interfaces (up and running) are polled every
  ``link_poll`` s through netlink, track files every ``file_poll`` s.
- tracking -> each runner's `apply` (priority, fault, pending), at once.
- sync groups (keepalived's semantics, `vrrp.track.sync_transition` decides): members
  run `Machine(synced=True)`, so none takes over on its own: a member whose
  master-down timer expires (or that would preempt) stays BACKUP and wants MASTER;
  when every member is MASTER or wants it (and none is faulted or pending), every
  BACKUP member gets Force(MASTER) at once ("VRRP_Group(G) Syncing instances to MASTER
  state"). A member leaving MASTER for BACKUP (a higher priority heard) takes the
  other masters to BACKUP (Force(BACKUP), "Syncing instances to BACKUP state"). A
  member in FAULT (its own tracking) puts every other member in FAULT, and they leave
  it together. Group notifications (TYPE GROUP) and FIFO lines when every member is
  in the same state.
- notifications (`vrrp.notify`): instance_transition on every state change,
  notify_priority_changes FIFO lines, FIFOs of global_defs (notify_fifo,
  vrrp_notify_fifo; created when missing).
- stop(graceful=True): every master hands over (priority 0, keeps its VIPs until the
  new master's advert or the longest master-down interval), then STOP; graceful=False:
  priority 0 and the VIPs removed at once. Then everything recorded as added is
  removed (`AddressManager.stop`), sockets closed, notify_stop scripts waited for (1 s).
- reload(new) (`vrrp.reload_plan` decides): instances whose settings did not change
  keep their runner, state and VIPs (no election). A change that keeps the instance's
  identity is applied in place (`VrrpInstanceRunner.reconfigure`): priority (a MASTER
  advertises it at once), advert_int, preempt settings, VIPs, excluded VIPs and
  virtual routes (a MASTER adds and removes only the difference, GARPs for the new
  VIPs), tracking and weights, notify scripts, PASS authentication, GARP settings,
  unicast peers (in place when the instance has its socket to itself), sync group
  membership (the member's ``synced`` flag: a member defers to its group from then
  on, a former member acts alone; a group whose members all agree takes their
  state). A new VRID, interface, family, version, VMAC/ipvlan setting, source address,
  multicast group, unicast TTL, AH on/off or address-owner status restarts the
  instance (logged "(VI_1) reload: restarting: VRID 51 -> 52"): priority 0, VIPs
  removed, started again. Removed ones stop (FAULT/DELETED notification); new ones
  start. Tracking levels carry over; the script tracker is restarted only when the
  tracked scripts changed; interfaces and track files are read again at once.
- dry run (``dry_run=True``): the machines run as usual and hear adverts (when the
  socket can be opened; else they run deaf, as if alone on the link: logged), but
  nothing leaves and nothing changes: adverts, GARPs/NAs, VIPs, routes, VMACs,
  sysctls and firewall rules are logged as ``dry-run: vrrp: would ...`` by the
  stand-ins of `vrrp.dry_run`; notify scripts and FIFO lines are logged, not run or
  written; leftover VIPs of a previous run are reported, not removed. Tracking
  scripts (vrrp_script) do run: they only look.
- use_vmac (as keepalived 2.2.7 does it, vrrp_vmac.c / vrrp_if_config.c): before the
  instance starts, `AddressManager.add_vmac` makes (or adopts) the private macvlan
  PREFIX.VRID (global vmac_prefix, or the instance's vmac_interface) with the MAC
  00:00:5e:00:01:VRID (or vmac_address), up; on it arp_ignore=1, accept_local=1,
  rp_filter=0, promote_secondaries=1; on its base interface arp_ignore=1 and
  arp_filter=1 (the base must not answer ARP for the VIPs) and, beyond keepalived,
  arp_announce=2 (else the ARP requests the base sends for replies from a VIP carry
  the VIP with the base's MAC and clients' neighbour entries flip to it): the base's
  old values are put back at stop. IPv4 adverts are sent and received on the VMAC
  (source MAC the virtual one; unless vmac_xmit_base: on the base), from the base's
  primary address; the VIPs without ``dev``, their GARPs (sender MAC the virtual one)
  go on the VMAC. IPv6 with use_vmac: VIPs on the VMAC, adverts on the base (its
  link-local; not tested). The VMAC is removed at stop (recorded by the manager), and
  a crashed run's is removed at start.
- VRRPv2 ``auth_type AH``: the instance's socket is an IP_HDRINCL socket of IP
  protocol 51 (channels are keyed by protocol too); received AH datagrams are
  dispatched by the VRID after the AH header; sending: see `vrrp.instance`.
- accept / no_accept (vrrp_strict), as keepalived 2.2.7 with nftables does it
  (`vrrp.firewall`, which runs ``nft -f -``): one `Firewall` (table: global_defs
  ``nftables NAME``, default ``keepalived``; ``nftables_priority``,
  ``nftables_counters``). At start, when ``nft`` is installed, tables of that name a
  crashed run left are deleted (logged as leftovers), whatever the config. A
  no_accept instance whose configured priority is not 255 drops packets to and from
  its VIPs and excluded VIPs while it is MASTER (set before the VIPs are added,
  removed after they are removed: `vrrp.instance`); a BACKUP has no rule (the VIPs
  are not on it), an address owner or an ``accept`` instance never has one. At stop
  the tables are deleted. ``nft`` missing with such an instance: an error at start,
  and the instance runs unfiltered. The table settings are read at start only (a
  reload that changes them logs that a restart is needed). IGMP/MLD filtering on
  VMACs is not done.
- Not supported (logged): track_process and track_bfd entries count as up;
  use_ipvlan.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from vrrp.addresses import AddressError, AddressManager, Vmac
from vrrp.dry_run import (
    PREFIX,
    DeafSocket,
    DryRunAddresses,
    DryRunFifo,
    DryRunFirewall,
    DryRunGarp,
    dry_run_script,
)
from vrrp.firewall import DEFAULT_TABLE, Firewall, FirewallError, blocks
from vrrp.garp import GarpSender
from vrrp.instance import VrrpInstanceRunner, primary_address_of
from vrrp.machine import State, master_down_interval
from vrrp.notify import (
    FifoWriter,
    Notifier,
    group_transition,
    instance_transition,
    priority_change,
    removed,
)
from vrrp.reload_plan import Action, plan_reload
from vrrp.spec import AddressFamily, AuthType, IPAddress, SyncGroup, VrrpConfig, VrrpInstance
from vrrp.track import (
    Effective,
    Kind,
    RunScript,
    ScriptTracker,
    SyncMember,
    Tracking,
    parse_track_file,
    sync_transition,
    tracked_scripts,
)
from vrrp.transport import Datagram, VrrpSocket

log = logging.getLogger("vrrp")

IFF_UP = 0x1
IFF_RUNNING = 0x40
STOP_MARGIN = 1.0  # seconds beyond the longest handover before a forced stop


ChannelKey = tuple[str | None, AddressFamily, IPAddress, tuple[IPAddress, ...], IPAddress,
                   int]

# keepalived's set_interface_parameters (vrrp_if_config.c): on the VMAC, and on its base
# (saved first, put back when the last VMAC on it goes)
VMAC_SYSCTLS = {"arp_ignore": 1, "accept_local": 1, "rp_filter": 0,
                "promote_secondaries": 1}
# Beyond keepalived: arp_announce 2 on the base, else the ARP requests the base sends
# for traffic from a VIP (replies leave by the base's route) carry the VIP with the
# base's MAC and overwrite the clients' neighbour entries for the VIP (measured here).
BASE_SYSCTLS = {"arp_ignore": 1, "arp_filter": 1, "arp_announce": 2}
AH_PROTOCOL = 51
VRRP_PROTOCOL = 112


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change of an instance or a sync group (see the module docstring)."""

    kind: str  # "instance" | "group"
    name: str
    old: str
    new: str
    priority: int | None
    vrid: int | None
    interface: str | None
    master: str | None
    reason: str


@dataclass
class _Channel:
    key: ChannelKey
    socket: VrrpSocket | DeafSocket
    runners: dict[int, VrrpInstanceRunner] = field(default_factory=dict)

    def dispatch(self, datagram: Datagram) -> None:
        payload = datagram.payload
        if datagram.source.version == 4 and len(datagram.data) > 9 and \
                datagram.data[9] == AH_PROTOCOL and len(payload) >= 2:
            payload = payload[(payload[1] + 2) * 4:]  # the VRRP message after AH
        vrid = payload[1] if len(payload) >= 2 else -1
        runner = self.runners.get(vrid)
        if runner is not None:
            runner.receive(datagram)
            return
        for other in self.runners.values():
            other.wrong_vrid()


def uses_ah(instance: VrrpInstance) -> bool:
    """A VRRPv2 instance with ``auth_type AH`` (IP protocol 51, an IP_HDRINCL socket)."""
    auth = instance.authentication
    return instance.version == 2 and auth is not None and auth.auth_type is AuthType.AH


def _channel_key(instance: VrrpInstance, source: IPAddress,
                 interface: str | None) -> ChannelKey:
    return (interface, instance.family, instance.mcast_dst_ip,
            tuple(p.address for p in instance.unicast_peers), source,
            AH_PROTOCOL if uses_ah(instance) else VRRP_PROTOCOL)


def handover_bound(instance: VrrpInstance) -> float:
    """The longest a graceful handover of ``instance`` can last (seconds)."""
    return master_down_interval(instance.version, 1, instance.advert_int,
                                instance.down_timer_adverts)


class VrrpRuntime:
    """See the module docstring."""

    def __init__(self, config: VrrpConfig, run_script: RunScript, *,
                 netns: str | None = None, link_poll: float = 0.2,
                 file_poll: float = 0.5,
                 on_change: Callable[[], None] | None = None,
                 on_transition: Callable[[Transition], None] | None = None,
                 dry_run: bool = False) -> None:
        self.config = config
        self.on_change = on_change
        self.on_transition = on_transition
        self.dry_run = dry_run
        self.netns = netns
        self.link_poll = link_poll
        self.file_poll = file_poll
        self.runners: dict[str, VrrpInstanceRunner] = {}
        self._run_script = run_script
        self._channels: dict[ChannelKey, _Channel] = {}
        self._garp: dict[str, GarpSender | DryRunGarp] = {}
        self._addresses = DryRunAddresses(netns) if dry_run else AddressManager(netns)
        self._links: Any = None  # pyroute2 IPRoute for link polling, in a thread
        self._tracking = Tracking.for_config(config, time.monotonic())
        self._scripts: ScriptTracker | None = None
        self._pollers: list[asyncio.Task[None]] = []
        self._notifier = Notifier(dry_run_script if dry_run else self._run,
                                  self._fifos(config))
        self._stop_reasons: dict[str, str] = {}  # instance -> why the runtime stops it
        self._group_state: dict[str, State] = {}
        self._notified: set[str] = set()
        self._notified_state: dict[str, State] = {}  # what each instance last notified
        self._started = False
        self._stopping = False
        self._vmacs: dict[str, Vmac] = {}  # instance name -> its VMAC
        self._base_sysctls: dict[str, dict[str, int]] = {}  # base -> values to put back
        self._firewall = self._make_firewall(config)

    # ------------------------------------------------------------- start

    async def start(self) -> None:
        config = self.config
        removed = await asyncio.to_thread(
            self._addresses.remove_leftovers, config.instances, config.globals.vmac_prefix)
        for line in removed:
            log.warning("removed a leftover of a previous run: %s", line)
        if self.dry_run:
            log.warning("%snothing is changed or sent: VIPs, routes, adverts, GARPs, "
                        "firewall rules, sysctls and notify scripts are logged", PREFIX)
        await self._start_firewall(config)
        self._unsupported(config)
        await self._poll_links_once()
        self._read_files_once()
        for instance in config.instances:
            await self._start_instance(instance)
        self._start_scripts(config)
        self._pollers = [asyncio.get_running_loop().create_task(self._poll(), name="vrrp poll")]
        self._started = True
        log.info("VRRP running: %d instance(s) on %d socket(s)", len(self.runners),
                 len(self._channels))

    # ------------------------------------------------------------- firewall

    @staticmethod
    def _firewall_settings(config: VrrpConfig) -> tuple[str, int, bool]:
        g = config.globals
        return (g.nftables or DEFAULT_TABLE, g.nftables_priority, g.nftables_counters)

    def _make_firewall(self, config: VrrpConfig) -> Firewall:
        table, priority, counters = self._firewall_settings(config)
        kind = DryRunFirewall if self.dry_run else Firewall
        return kind(self.netns, table=table, priority=priority, counters=counters)

    async def _start_firewall(self, config: VrrpConfig) -> None:
        firewall = self._firewall
        needed = [i.name for i in config.instances if blocks(i)]
        if shutil.which(firewall.nft) is None:
            if needed:
                log.error("no_accept (%s): %s not found (Debian package nftables): "
                          "packets to the VIPs are not dropped", ", ".join(needed),
                          firewall.nft)
            return
        try:
            tables = await asyncio.to_thread(firewall.remove_leftovers)
        except FirewallError as error:
            log.error("cannot remove leftover firewall tables: %s", error)
        else:
            for table in tables:
                log.warning("removed a leftover of a previous run: nftables table %s",
                            table)
        if needed and config.globals.nftables is None:
            log.info("no_accept/strict specified, but no firewall configured - using "
                     "nftables (table %s)", firewall.table)

    def _fifos(self, config: VrrpConfig) -> list[Any]:
        fifos: list[Any] = []
        for fifo in (config.globals.notify_fifo, config.globals.vrrp_notify_fifo):
            if fifo is not None and fifo.path:
                fifos.append(DryRunFifo(fifo.path) if self.dry_run
                             else FifoWriter(fifo.path, create=True))
        return fifos

    def _unsupported(self, config: VrrpConfig) -> None:
        now = time.monotonic()
        for instance in config.instances:
            if instance.use_ipvlan:
                log.warning("(%s) use_ipvlan is not supported yet: the VIPs go on "
                            "%s", instance.name, instance.interface)
        for tracker in self._tracking.trackers.values():
            for entry in tracker.tracked:
                if entry.kind in (Kind.PROCESS, Kind.BFD):
                    log.warning("%s is not supported yet: counted as up", entry.label)
                    self._feed(entry.kind, entry.name, True, now)

    async def _start_instance(self, instance: VrrpInstance) -> VrrpInstanceRunner | None:
        try:
            source = await asyncio.to_thread(primary_address_of, instance, self._addresses)
        except Exception as error:
            log.error("(%s) not started: cannot read the interface's address: %s",
                      instance.name, error)
            return None
        if source is None:
            log.error("(%s) not started: %s has no %s address to send adverts from",
                      instance.name, instance.interface, instance.family)
            return None
        interface = instance.interface
        if instance.use_vmac and instance.interface is not None:
            try:
                vmac = await asyncio.to_thread(self._add_vmac, instance)
            except (AddressError, OSError) as error:
                log.error("(%s) not started: cannot set up its VMAC: %s", instance.name,
                          error)
                return None
            # keepalived sends and receives on the VMAC (source MAC 00:00:5e:00:01:VRID)
            # unless vmac_xmit_base; IPv6 adverts go from the base's link-local address
            if not instance.vmac_xmit_base and instance.family is AddressFamily.INET \
                    and not self.dry_run:  # a dry run makes no VMAC: it listens on the base
                interface = vmac.name
        key = _channel_key(instance, source, interface)
        channel = self._channels.get(key)
        if channel is None:
            box: list[_Channel] = []
            try:
                sock = await VrrpSocket.open(
                    instance.family, interface, group=instance.mcast_dst_ip,
                    unicast_peers=instance.unicast_peers, source=source,
                    unicast_ttl=instance.unicast_ttl, netns=self.netns,
                    protocol=key[5], hdrincl=key[5] == AH_PROTOCOL,
                    on_receive=lambda datagram: box[0].dispatch(datagram) if box else None)
            except (OSError, ValueError) as error:
                if not self.dry_run or isinstance(error, ValueError):
                    log.error("(%s) not started: cannot open its VRRP socket: %s",
                              instance.name, error)
                    return None
                log.warning("%s(%s) cannot open its VRRP socket (%s): running deaf, as "
                            "if alone on the link", PREFIX, instance.name, error)
                sock = DeafSocket(instance.family, interface, tuple(
                    p.address for p in instance.unicast_peers) or (instance.mcast_dst_ip,),
                    hdrincl=key[5] == AH_PROTOCOL)
            channel = _Channel(key, sock)
            box.append(channel)
            self._channels[key] = channel
        vrid = instance.virtual_router_id
        if vrid in channel.runners:
            log.error("(%s) not started: VRID %d is already used by %s on that interface",
                      instance.name, vrid, channel.runners[vrid].name)
            return None
        try:
            runner = VrrpInstanceRunner(
                instance, socket=channel.socket, source=source, addresses=self._addresses,
                garp=self._garp_sender,
                garp_interval=(self.config.globals.vrrp_garp_interval
                               if instance.family is AddressFamily.INET
                               else self.config.globals.vrrp_gna_interval),
                on_state=self._on_state, on_priority=self._on_priority,
                notifier=self._notifier,
                synced=self.config.sync_group_of(instance.name) is not None,
                on_sync=self._on_sync, vmac_prefix=self.config.globals.vmac_prefix,
                firewall=self._firewall, dry_run=self.dry_run)
        except ValueError as error:
            log.error("%s: not started", error)
            return None
        channel.runners[vrid] = runner
        self.runners[instance.name] = runner
        runner.apply(self._effective(instance.name))
        runner.start()
        return runner

    # ------------------------------------------------------------- VMAC

    def _add_vmac(self, instance: VrrpInstance) -> Vmac:
        """The instance's macvlan (thread): made (or adopted), up, keepalived's sysctls
        on it, arp_ignore=1 / arp_filter=1 on its base (so only the VMAC answers ARP
        for the VIPs, with the virtual MAC)."""
        vmac = self._addresses.add_vmac(instance, self.config.globals.vmac_prefix)
        self._vmacs[instance.name] = vmac
        for key, value in VMAC_SYSCTLS.items():
            self._write_sysctl(vmac.name, key, value)
        if vmac.base not in self._base_sysctls:
            saved: dict[str, int] = {}
            for key, value in BASE_SYSCTLS.items():
                old = self._read_sysctl(vmac.base, key)
                if old is not None and old != value:
                    saved[key] = old
                    self._write_sysctl(vmac.base, key, value)
            self._base_sysctls[vmac.base] = saved
        log.info("(%s) VMAC %s (%s) on %s", instance.name, vmac.name, vmac.mac, vmac.base)
        return vmac

    def _restore_base_sysctls(self) -> None:
        for base, saved in self._base_sysctls.items():
            for key, value in saved.items():
                self._write_sysctl(base, key, value)
        self._base_sysctls.clear()

    def _sysctl_path(self, interface: str, key: str) -> str:
        return f"/proc/sys/net/ipv4/conf/{interface}/{key}"

    def _read_sysctl(self, interface: str, key: str) -> int | None:
        try:
            if self.netns is None:
                with open(self._sysctl_path(interface, key)) as handle:
                    return int(handle.read().strip())
            import subprocess

            done = subprocess.run(["ip", "netns", "exec", self.netns, "cat",
                                   self._sysctl_path(interface, key)], capture_output=True,
                                  text=True, timeout=5, check=True)
            return int(done.stdout.strip())
        except Exception as error:
            log.warning("cannot read %s of %s: %s", key, interface, error)
            return None

    def _write_sysctl(self, interface: str, key: str, value: int) -> None:
        if self.dry_run:
            log.info("%swould set net.ipv4.conf.%s.%s = %d", PREFIX, interface, key, value)
            return
        try:
            if self.netns is None:
                with open(self._sysctl_path(interface, key), "w") as handle:
                    handle.write(f"{value}\n")
                return
            import subprocess

            subprocess.run(["ip", "netns", "exec", self.netns, "sh", "-c",
                            f"echo {value} > {self._sysctl_path(interface, key)}"],
                           capture_output=True, timeout=5, check=True)
        except Exception as error:
            log.warning("cannot set %s=%d on %s: %s", key, value, interface, error)

    def _garp_sender(self, device: str) -> GarpSender | DryRunGarp:
        sender = self._garp.get(device)
        if sender is None:
            sender = DryRunGarp(device) if self.dry_run else GarpSender(device,
                                                                        netns=self.netns)
            self._garp[device] = sender
        return sender

    def _start_scripts(self, config: VrrpConfig) -> None:
        scripts = tracked_scripts(config)
        if not scripts:
            self._scripts = None
            return
        self._scripts = ScriptTracker(scripts, self._run, self._script_changed)
        self._scripts.start()

    async def _run(self, argv: tuple[str, ...], timeout: float, user: str | None,
                   group: str | None) -> int | None:
        """The injected runner, looked up at each run (a reload may replace it)."""
        return await self._run_script(argv, timeout, user, group)

    # ------------------------------------------------------------- tracking

    def _script_changed(self, name: str, up: bool) -> None:
        self._feed(Kind.SCRIPT, name, up, time.monotonic())

    def _feed(self, kind: Kind, name: str, level: Any, now: float) -> None:
        changed = self._tracking.update(kind, name, level, now)
        touched: set[str] = set()
        for instance in changed:
            touched.add(instance)
            group = self.config.sync_group_of(instance)
            if group is not None:
                touched.update(group.group)
        for instance in self.config.instances:  # config order
            runner = self.runners.get(instance.name)
            if instance.name in touched and runner is not None:
                runner.apply(self._effective(instance.name))

    def _effective(self, name: str) -> Effective:
        """The instance's own tracking, with the faults of its sync group's members."""
        effective = self._tracking.effective(name)
        group = self.config.sync_group_of(name)
        if group is None:
            return effective
        faults = list(effective.faults)
        for member in group.group:
            if member == name or member not in self._tracking.trackers:
                continue
            other = self._tracking.effective(member)
            if other.fault:
                faults.append(f"sync group {group.name}: {member} is in FAULT")
        return dataclasses.replace(effective, fault=bool(faults), faults=tuple(faults))

    def _link_names(self) -> set[str]:
        return {e.name for t in self._tracking.trackers.values() for e in t.tracked
                if e.kind is Kind.INTERFACE}

    def _read_links(self, names: Iterable[str]) -> dict[str, bool]:
        if self._links is None:
            from pyroute2 import IPRoute

            self._links = IPRoute(netns=self.netns) if self.netns else IPRoute()
        flags: dict[str, int] = {}
        for link in self._links.get_links():
            flags[link.get_attr("IFLA_IFNAME")] = link["flags"]
        return {name: bool(flags.get(name, 0) & IFF_UP and flags.get(name, 0) & IFF_RUNNING)
                for name in names}

    async def _poll_links_once(self) -> None:
        names = self._link_names()
        if not names:
            return
        try:
            states = await asyncio.to_thread(self._read_links, names)
        except Exception as error:
            log.error("cannot read the interfaces' states: %s", error)
            return
        now = time.monotonic()
        for name, up in states.items():
            if self._level(Kind.INTERFACE, name) is not up:
                if self._level(Kind.INTERFACE, name) is not None:
                    log.warning("interface %s is %s", name, "up" if up else "down")
                self._feed(Kind.INTERFACE, name, up, now)

    def _level(self, kind: Kind, name: str) -> Any:
        for tracker in self._tracking.trackers.values():
            if tracker.tracks(kind, name):
                return tracker.level(kind, name)
        return None

    def _read_files_once(self) -> None:
        now = time.monotonic()
        for file in self.config.track_files:
            try:
                with open(file.file, "rb") as handle:
                    data = handle.read(127)
            except OSError:
                data = None
            value = parse_track_file(data)
            if self._level(Kind.FILE, file.name) != value:
                self._feed(Kind.FILE, file.name, value, now)

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        next_files = loop.time()
        while True:
            await self._poll_links_once()
            if loop.time() >= next_files:
                self._read_files_once()
                next_files = loop.time() + self.file_poll
            await asyncio.sleep(self.link_poll)

    # ------------------------------------------------------------- notifications

    def _on_state(self, runner: VrrpInstanceRunner, old: State, new: State,
                  reason: str) -> None:
        instance = runner.instance
        if new is State.INIT:
            return
        if new is State.STOP:
            why = self._stop_reasons.pop(instance.name, "stop" if self._stopping else "")
            reason = f"{why}: {reason}" if why else reason
        group = self.config.sync_group_of(instance.name)
        group_state = self._group_state.get(group.name) if group is not None else None
        first = instance.name not in self._notified
        self._notified.add(instance.name)
        self._notified_state[instance.name] = new
        self._notifier.send(instance_transition(
            instance, new, runner.machine.priority,
            group_state=None if group_state is None else str(group_state), first=first))
        machine = runner.machine
        self._transition(Transition(
            "instance", instance.name, str(old), str(new), machine.priority,
            instance.virtual_router_id, instance.interface,
            None if machine.master_address is None else str(machine.master_address),
            reason))
        if group is not None:
            # from what the members notified: the group line comes after theirs
            states = {self._notified_state.get(m) for m in group.group if m in self.runners}
            if len(states) == 1:
                (state,) = states
                self._set_group_state(group, state, f"{instance.name}: {reason}")

        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:
                log.exception("the status callback failed")

    def _set_group_state(self, group: SyncGroup, state: State, reason: str) -> None:
        previous = self._group_state.get(group.name)
        if previous is state:
            return
        self._group_state[group.name] = state
        log.info("VRRP_Group(%s) %s", group.name, state)
        self._notifier.send(group_transition(group, state))
        self._transition(Transition("group", group.name, str(previous or State.INIT),
                                    str(state), None, None, None, None, reason))

    def _transition(self, transition: Transition) -> None:
        if self.on_transition is None:
            return
        try:
            self.on_transition(transition)
        except Exception:
            log.exception("the transition callback failed")

    # ------------------------------------------------------------- sync groups

    def _sync_members(self, names: Iterable[str]) -> dict[str, SyncMember]:
        members = {}
        for name in names:
            runner = self.runners.get(name)
            if runner is None or runner.state is State.STOP:
                continue  # not started (logged), or stopping in a reload
            members[name] = SyncMember(runner.state, runner.machine.wants_master,
                                       runner.machine.fault or runner.pending)
        return members

    def _on_sync(self, runner: VrrpInstanceRunner, what: str) -> None:
        """A member wants MASTER, or left MASTER for BACKUP: apply the group rule."""
        group = self.config.sync_group_of(runner.name)
        if group is None or self.runners.get(runner.name) is not runner or self._stopping:
            return
        members = self._sync_members(group.group)
        group_state = self._group_state.get(group.name, State.INIT)
        if what == "want_master":
            if runner.state is not State.BACKUP or not runner.machine.wants_master:
                return
            decision = sync_transition(group_state, members, runner.name, State.MASTER)
            if decision.state is not State.MASTER:
                waiting = [n for n, m in members.items() if n != runner.name
                           and m.state is not State.MASTER and not m.wants_master]
                log.debug("VRRP_Group(%s) %s wants MASTER; waiting for %s", group.name,
                          runner.name, ", ".join(waiting) or "the group")
                return
            log.info("VRRP_Group(%s) Syncing instances to MASTER state", group.name)
            for name in members:  # group order
                other = self.runners[name]
                if other.state is State.BACKUP:
                    other.force(State.MASTER, f"{runner.name} and every member want MASTER"
                                if other is runner else f"{runner.name} is MASTER")
        elif what == "left_master":
            if runner.state is not State.BACKUP:
                return
            decision = sync_transition(group_state, members, runner.name, State.BACKUP)
            moves = [name for name, state in decision.others if state is State.BACKUP
                     and self.runners[name].state is State.MASTER]
            if moves:
                log.info("VRRP_Group(%s) Syncing instances to BACKUP state", group.name)
            for name in moves:
                self.runners[name].force(State.BACKUP, f"{runner.name} is BACKUP")

    def _on_priority(self, runner: VrrpInstanceRunner, priority: int) -> None:
        log.info("(%s) effective priority %d", runner.name, priority)
        self._notifier.send(priority_change(
            runner.instance, runner.state, priority,
            enabled=(runner.instance.notify_priority_changes
                     or self.config.globals.vrrp_notify_priority_changes)))

    # ------------------------------------------------------------- stop

    async def _stop_runners(self, runners: list[VrrpInstanceRunner], graceful: bool) -> None:
        for runner in runners:
            runner.shutdown(graceful)
        bounds = [handover_bound(r.instance) + STOP_MARGIN if graceful else STOP_MARGIN
                  for r in runners]
        done = await asyncio.gather(*(r.stopped(b) for r, b in zip(runners, bounds,
                                                                   strict=True)))
        late = [r for r, ok in zip(runners, done, strict=True) if not ok]
        for runner in late:
            log.warning("(%s) did not stop in time: stopping now", runner.name)
            runner.shutdown(False)
        if late:
            await asyncio.gather(*(r.stopped(STOP_MARGIN) for r in late))
        for runner in runners:
            await runner.close()
            self._detach(runner)

    def _detach(self, runner: VrrpInstanceRunner) -> None:
        self.runners.pop(runner.name, None)
        for key, channel in list(self._channels.items()):
            if channel.runners.get(runner.instance.virtual_router_id) is runner:
                del channel.runners[runner.instance.virtual_router_id]
            if not channel.runners:
                channel.socket.close()
                del self._channels[key]

    async def stop(self, graceful: bool = True) -> None:
        if self._stopping:
            return
        self._stopping = True
        for task in self._pollers:
            task.cancel()
        for task in self._pollers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._scripts is not None:
            await self._scripts.stop()
        await self._stop_runners(list(self.runners.values()), graceful)
        failures = await asyncio.to_thread(self._addresses.stop)
        for failure in failures:
            log.error("at stop: %s", failure)
        await asyncio.to_thread(self._restore_base_sysctls)
        try:
            await asyncio.to_thread(self._firewall.close)
        except FirewallError as error:
            log.error("at stop: cannot delete the firewall table: %s", error)
        for channel in self._channels.values():
            channel.socket.close()
        self._channels.clear()
        for sender in self._garp.values():
            sender.close()
        self._garp.clear()
        await self._notifier.close()
        await asyncio.to_thread(self._close_netlink)

    def _close_netlink(self) -> None:
        self._addresses.close()
        if self._links is not None:
            self._links.close()
            self._links = None

    # ------------------------------------------------------------- reload

    async def reload(self, new: VrrpConfig, run_script: RunScript | None = None) -> None:
        """Apply ``new`` (see the module docstring); ``run_script`` replaces the runner
        (its script_user and script security come from the config)."""
        if run_script is not None:
            self._run_script = run_script
        old = self.config
        now = time.monotonic()
        tracking = Tracking.for_config(new, now)
        for tracker in self._tracking.trackers.values():
            for entry in tracker.tracked:
                level = tracker.level(entry.kind, entry.name)
                if level is not None:
                    tracking.update(entry.kind, entry.name, level, now)
        plans = plan_reload(old, new, self.runners)
        stopped: list[tuple[VrrpInstanceRunner, bool]] = []  # (runner, removed)
        updated: list[str] = []
        started: list[VrrpInstance] = []
        for plan in plans:
            if plan.action is Action.UPDATE and not self._peers_in_place(plan.name, new):
                plan = dataclasses.replace(plan, action=Action.RESTART, reasons=(
                    "unicast peers changed on a socket shared with another instance",))
            runner = self.runners.get(plan.name)
            if plan.action is Action.STOP and runner is not None:
                self._stop_reasons[plan.name] = "reload: removed"
                stopped.append((runner, True))
            elif plan.action is Action.RESTART and runner is not None:
                log.warning("(%s) reload: restarting: %s", plan.name, "; ".join(plan.reasons))
                self._stop_reasons[plan.name] = "reload: " + "; ".join(plan.reasons)
                stopped.append((runner, False))
                started.append(new.instance(plan.name))  # type: ignore[arg-type]
            elif plan.action is Action.UPDATE:
                log.info("(%s) reload: changed in place: %s", plan.name,
                         ", ".join(plan.reasons))
                updated.append(plan.name)
            elif plan.action is Action.START:
                started.append(new.instance(plan.name))  # type: ignore[arg-type]
        kept = sum(1 for p in plans if p.action is Action.KEEP)
        log.info("reload: %d instance(s) kept, %d changed in place, %d restarted, "
                 "%d stopped, %d started", kept, len(updated),
                 sum(1 for _, gone in stopped if not gone),
                 sum(1 for _, gone in stopped if gone),
                 len(started) - sum(1 for _, gone in stopped if not gone))
        # removed and restarted instances stop first (their VRIDs may be reused)
        removed_ones = [r for r, gone in stopped if gone]
        for runner in removed_ones:
            self._notifier.send(removed(runner.instance, runner.machine.priority))
        await self._stop_runners([r for r, _ in stopped], graceful=False)
        for runner, gone in stopped:  # a removed or restarted instance's VMAC goes too
            vmac = self._vmacs.pop(runner.name, None)
            if vmac is not None and (gone or vmac.name != self._vmac_name(new, runner.name)):
                try:
                    await asyncio.to_thread(self._addresses.remove_vmac, vmac.name)
                except AddressError as error:
                    log.error("(%s) cannot remove its VMAC %s: %s", runner.name,
                              vmac.name, error)
        if self._firewall_settings(new) != self._firewall_settings(old):
            log.warning("reload: nftables / nftables_priority / nftables_counters "
                        "changed: applied at the next restart")
        if self._fifo_paths(new) != self._fifo_paths(old):
            log.warning("reload: notify_fifo / vrrp_notify_fifo changed: applied at the "
                        "next restart")
        self.config = new
        self._tracking = tracking
        if tracked_scripts(new) != tracked_scripts(old):
            if self._scripts is not None:
                await self._scripts.stop()
            self._start_scripts(new)
        self._unsupported_new(new, started)
        await self._poll_links_once()  # interfaces and files tracked from now on
        self._read_files_once()
        for name in updated:
            try:
                self._update(name, new)
            except Exception:  # a bug must not take the other instances down
                log.exception("(%s) reload: cannot change it in place", name)
        for instance in started:
            await self._start_instance(instance)
        for plan in plans:
            runner = self.runners.get(plan.name)
            if plan.action is Action.KEEP and runner is not None:
                runner.instance = new.instance(plan.name) or runner.instance
                runner.apply(self._effective(plan.name))
        self._settle_groups(old, new)

    @staticmethod
    def _vmac_name(config: VrrpConfig, name: str) -> str | None:
        instance = config.instance(name)
        if instance is None or not instance.use_vmac:
            return None
        from vrrp.addresses import vmac_name

        return vmac_name(instance, config.globals.vmac_prefix)

    @staticmethod
    def _fifo_paths(config: VrrpConfig) -> tuple[str | None, ...]:
        return tuple(None if f is None else f.path for f in (config.globals.notify_fifo,
                                                              config.globals.vrrp_notify_fifo))

    def _peers_in_place(self, name: str, new: VrrpConfig) -> bool:
        """False when the instance's unicast peers changed and its socket is shared."""
        runner = self.runners.get(name)
        instance = new.instance(name)
        if runner is None or instance is None:
            return True
        if tuple(p.address for p in instance.unicast_peers) == \
                tuple(p.address for p in runner.instance.unicast_peers):
            return True
        channel = self._channel_of(runner)
        return channel is not None and len(channel.runners) == 1 \
            and isinstance(channel.socket, VrrpSocket)

    def _channel_of(self, runner: VrrpInstanceRunner) -> _Channel | None:
        return next((c for c in self._channels.values()
                     if c.runners.get(runner.instance.virtual_router_id) is runner), None)

    def _update(self, name: str, new: VrrpConfig) -> None:
        """One instance changed in place (`VrrpInstanceRunner.reconfigure`)."""
        runner = self.runners[name]
        instance = new.instance(name)
        assert instance is not None
        peers = tuple(p.address for p in instance.unicast_peers)
        channel = self._channel_of(runner)
        if channel is not None and peers != tuple(
                p.address for p in runner.instance.unicast_peers):
            assert isinstance(channel.socket, VrrpSocket)
            channel.socket.set_peers(peers)
            del self._channels[channel.key]
            channel.key = _channel_key(instance, runner.source, channel.key[0])
            self._channels[channel.key] = channel
            log.info("(%s) reload: unicast peers now %s", name,
                     ", ".join(map(str, peers)))
        runner.reconfigure(
            instance, self._effective(name), synced=new.sync_group_of(name) is not None,
            garp_interval=(new.globals.vrrp_garp_interval
                           if instance.family is AddressFamily.INET
                           else new.globals.vrrp_gna_interval))

    def _settle_groups(self, old: VrrpConfig, new: VrrpConfig) -> None:
        """Sync groups whose members changed: a group whose members all agree takes
        their state; the others keep theirs until their members' next move."""
        before = {g.name: g.group for g in old.sync_groups}
        for group in new.sync_groups:
            if before.get(group.name) == group.group:
                continue
            states = {self.runners[m].state for m in group.group if m in self.runners}
            log.info("VRRP_Group(%s) reload: members now %s", group.name,
                     ", ".join(group.group))
            if len(states) == 1:
                (state,) = states
                if state is not State.INIT:
                    self._set_group_state(group, state, "reload: members changed")
        names = {g.name for g in new.sync_groups}
        for name in list(self._group_state):
            if name not in names:
                del self._group_state[name]

    def _unsupported_new(self, config: VrrpConfig, started: list[VrrpInstance]) -> None:
        now = time.monotonic()
        for instance in started:
            if instance.use_ipvlan:
                log.warning("(%s) use_ipvlan is not supported yet", instance.name)
            tracker = self._tracking.trackers.get(instance.name)
            for entry in tracker.tracked if tracker is not None else ():
                if entry.kind in (Kind.PROCESS, Kind.BFD):
                    self._feed(entry.kind, entry.name, True, now)

    # ------------------------------------------------------------- status

    def status(self) -> dict[str, Any]:
        return {
            "instances": {name: runner.status() for name, runner in self.runners.items()},
            "sync_groups": {g.name: str(self._group_state.get(g.name, State.INIT))
                            for g in self.config.sync_groups},
            "sockets": [{"interface": ch.socket.interface, "family": str(ch.key[1]),
                         "instances": sorted(r.name for r in ch.runners.values()),
                         "counters": dataclasses.asdict(ch.socket.counters)}
                        for ch in self._channels.values()],
        }
