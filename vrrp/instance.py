"""One VRRP instance at run time: the asyncio adapter around `vrrp.machine.Machine`.

The machine decides; this adapter feeds it and carries out what it returns:

- received datagrams (handed over by `vrrp.runtime`, which owns the sockets and
  dispatches by VRID): TTL 255 for multicast, `vrrp.packet.decode_ipv4` / `decode`
  (checksum, lengths), the VRID, the version, `verify_auth` (v2 PASS/AH), the address
  list; every drop bumps a counter, only accepted adverts reach the machine;
- timers: one ``loop.call_at`` handle on `Machine.next_deadline` (the loop's clock is
  the machine's ``now``), re-armed after every event: no polling, no busy loop;
- actions: SendAdvert -> `vrrp.packet.encode` + `VrrpSocket.send` once per destination
  (the v3 checksum covers it); Add/RemoveAddresses -> `AddressManager` in a thread
  (VIPs, excluded VIPs, virtual routes); SendGratuitous -> `GarpSender` on the burst
  schedule of `vrrp.garp` (cancelled when we stop being master); no_accept: the
  firewall's drop rules for the VIPs (`vrrp.firewall`) are set before the addresses
  are added and removed after they are removed, as keepalived does; StateChanged -> one
  log line and the ``on_state`` callback (the runtime sends notifications, it knows
  sync groups); LowerPriorityReceived -> notify_master_rx_lower_pri.
- tracking: `apply(effective)` turns a `vrrp.track.Effective` into PriorityChanged /
  FaultOn / FaultOff. While tracking is pending (a weight-0 entry has no verdict yet)
  the machine stays in INIT, as keepalived does; `start()` is then deferred until it
  is not.

Actions are carried out in order by one worker task per instance, so an address
removal can never overtake the addition before it; sending (adverts, GARPs) never
blocks the loop.

Public API::

    runner = VrrpInstanceRunner(instance: VrrpInstance, *, socket: VrrpSocket,
        source: IPAddress, addresses: AddressManager, garp: Callable[[str], GarpSender]
        | None = None, garp_interval: float = 0.0, on_state=None, on_priority=None,
        notifier: Notifier | None = None, loop=None, synced: bool = False,
        on_sync=None, vmac_prefix: str = "vrrp", firewall: Firewall | None = None,
        dry_run: bool = False)
        source: our primary address (unicast_src_ip, or the interface's), in adverts'
        checksums and elections. garp(device) gives the sender for a device.
        on_state(runner, old: State, new: State, reason: str); on_priority(runner,
        priority: int). synced: a vrrp_sync_group member (`Machine(synced=True)`);
        on_sync(runner, what: str) is called soon (loop.call_soon, never nested in an
        event) with "want_master" (the machine's WantMaster: it stays BACKUP until the
        group sends force(MASTER)) or "left_master" (MASTER -> BACKUP).
        vmac_prefix: global_defs vmac_prefix; with use_vmac the VIPs without ``dev``
        (and their GARPs, sent from the virtual MAC) go on the VMAC, PREFIX.VRID or
        the instance's vmac_interface (the runtime makes it: `AddressManager.add_vmac`).
        firewall: a `vrrp.firewall.Firewall`; used only when `vrrp.firewall.blocks`
        (no_accept and configured priority not 255): while the instance holds its
        addresses (MASTER, and a graceful handover) every VIP and excluded VIP is
        blocked (keepalived: "setting firewall drop rule" on becoming MASTER, before
        the VIPs; "removing" after they are removed on leaving it). None with such an
        instance: nothing is filtered (logged once).
        VRRPv2 ``auth_type AH``: ``socket`` must be an IP_HDRINCL socket of protocol 51
        (`VrrpSocket.open(..., protocol=51, hdrincl=True)`); adverts are whole
        datagrams from `vrrp.packet.encode_ipv4` (IP id counting up from 1, skipping
        0; AH sequence numbers: the larger of the last one + 1 and the wall clock in
        seconds, so that a restarted director's are still above what a peer saw from
        its previous run - keepalived drops an AH advert whose sequence number went
        backwards; at v2's advert_int >= 1 s the count rarely runs ahead of the clock).
    runner.start()                    # Start now (or once tracking is not pending)
    runner.receive(datagram: Datagram)   # a datagram for this instance's socket
    runner.wrong_vrid()               # a datagram for a VRID nobody here serves
    runner.apply(effective: Effective)
    runner.shutdown(graceful: bool)   # Shutdown event
    runner.force(state: State, reason="")  # Force event (sync groups: MASTER/BACKUP)
    runner.reconfigure(instance, effective, *, synced=False, garp_interval=None)
        # a reload changed the instance in place (same VRID, family, version, address
        # owner or not: else ValueError): `Machine` gets Reconfigure (a MASTER
        # advertises the new priority/interval/VIPs at once, no election); while it
        # holds its addresses only the difference is applied (VIPs, excluded VIPs,
        # virtual routes, firewall drop rules), GARPs for the new VIPs only
    await runner.stopped(timeout)     # until STOP (or timeout); True if stopped
    await runner.close()              # cancel timers and the worker (no I/O)
    runner.state, runner.machine, runner.pending, runner.counters (dict[str, int]),
    runner.status()

Counters (ints): adverts_sent, adverts_received, send_errors, bad_checksum, bad_ttl,
auth_failure, bad_version, bad_type, bad_length, wrong_vrid, wrong_address_list,
interval_mismatch, discarded, priority_zero_sent, priority_zero_received,
became_master, released_master, address_errors, firewall_errors.

Not done here: virtual_rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from vrrp import garp as garp_mod
from vrrp.addresses import AddressError, AddressManager, instance_interface
from vrrp.firewall import Firewall, FirewallError, blocked_addresses, blocks
from vrrp.machine import (
    AddAddresses,
    AdvertDiscarded,
    AdvertReceived,
    DiscardReason,
    Event,
    FaultOff,
    FaultOn,
    Force,
    GarpKind,
    LowerPriorityReceived,
    Machine,
    PriorityChanged,
    Reconfigure,
    RemoveAddresses,
    SendAdvert,
    SendGratuitous,
    Shutdown,
    Start,
    State,
    StateChanged,
    Timeout,
    WantMaster,
)
from vrrp.notify import Notifier, rx_lower_priority
from vrrp.packet import (
    Advert,
    PacketError,
    decode,
    decode_ipv4,
    encode,
    encode_ipv4,
    verify_auth,
)
from vrrp.spec import AddressFamily, AuthType, IPAddress, Route, VirtualAddress, VrrpInstance
from vrrp.track import Effective
from vrrp.transport import Datagram, VrrpSocket

log = logging.getLogger("vrrp")

COUNTERS = ("adverts_sent", "adverts_received", "send_errors", "bad_checksum", "bad_ttl",
            "auth_failure", "bad_version", "bad_type", "bad_length", "wrong_vrid",
            "wrong_address_list", "interval_mismatch", "discarded", "priority_zero_sent",
            "priority_zero_received", "became_master", "released_master",
            "address_errors", "firewall_errors")


def advert_addresses(instance: VrrpInstance) -> tuple[IPAddress, ...]:
    """The addresses an advert of ``instance`` carries: its VIPs of its family, in
    config order, at most 255 (keepalived leaves the excluded ones out)."""
    version = 4 if instance.family is AddressFamily.INET else 6
    return tuple(v.address.ip for v in instance.virtual_ipaddresses
                 if v.address.version == version)[:255]


def make_advert(instance: VrrpInstance, priority: int) -> Advert:
    auth = instance.authentication if instance.version == 2 else None
    return Advert(version=instance.version, vrid=instance.virtual_router_id,
                  priority=priority, interval=instance.advert_int,
                  addresses=advert_addresses(instance),
                  auth_type=auth.auth_type if auth is not None else None,
                  password=(auth.auth_pass.encode()[:8] if auth is not None
                            and auth.auth_type is AuthType.PASS else b""))


_FAULT_WORDS = {"interface": "interface {} down", "script": "tracking script {} failed",
                "file": "track file {} reports a fault", "process": "track process {} down",
                "bfd": "bfd {} down"}


def fault_text(label: str) -> str:
    """A tracking entry's label ("script chk_x") as a fault reason ("tracking script
    chk_x failed"); other labels (a sync group member's fault) as they are."""
    kind, _, name = label.partition(" ")
    form = _FAULT_WORDS.get(kind)
    return form.format(name) if form is not None and name else label


def same_identity(old: VrrpInstance, new: VrrpInstance) -> bool:
    """What a running machine and its socket cannot change in place."""
    return (old.virtual_router_id == new.virtual_router_id and old.version == new.version
            and old.family == new.family and old.address_owner == new.address_owner)


@dataclass(frozen=True, slots=True)
class _AddressDiff:
    """A reload changed the addresses of an instance that holds them."""

    old: VrrpInstance
    new: VrrpInstance


def _only_in(first: tuple, second: tuple) -> list:
    return [item for item in first if item not in second]


class Dropped(Exception):
    """A datagram an instance drops: ``counter`` names the counter to bump."""

    def __init__(self, counter: str, reason: str) -> None:
        super().__init__(f"{counter}: {reason}")
        self.counter = counter
        self.reason = reason


def check_datagram(instance: VrrpInstance, datagram: Datagram) -> Advert:
    """Decode and check one datagram for ``instance``; raises `Dropped` (bad_checksum,
    bad_ttl, bad_length, bad_type, bad_version, auth_failure, wrong_vrid)."""
    multicast = datagram.destination.is_multicast
    try:
        if datagram.source.version == 4:
            received = decode_ipv4(datagram.data, expected_ttl=255 if multicast else None)
            packet: Any = received
            advert = received.advert
        else:
            if multicast and datagram.ttl not in (255, -1):
                raise Dropped("bad_ttl", f"hop limit {datagram.ttl}, not 255")
            advert = decode(datagram.payload, datagram.source, datagram.destination)
            packet = advert
        if advert.vrid != instance.virtual_router_id:
            raise Dropped("wrong_vrid", f"VRID {advert.vrid}")
        if advert.version != instance.version:
            raise Dropped("bad_version", f"VRRPv{advert.version}, configured "
                                         f"v{instance.version}")
        verify_auth(packet, instance.authentication if instance.version == 2 else None)
    except PacketError as error:
        raise Dropped(str(error.counter), error.reason) from None
    return advert


class VrrpInstanceRunner:
    """See the module docstring."""

    def __init__(self, instance: VrrpInstance, *, socket: VrrpSocket, source: IPAddress,
                 addresses: AddressManager,
                 garp: Callable[[str], garp_mod.GarpSender] | None = None,
                 garp_interval: float = 0.0,
                 on_state: Callable[[VrrpInstanceRunner, State, State, str], None] | None = None,
                 on_priority: Callable[[VrrpInstanceRunner, int], None] | None = None,
                 notifier: Notifier | None = None,
                 loop: asyncio.AbstractEventLoop | None = None,
                 synced: bool = False,
                 on_sync: Callable[[VrrpInstanceRunner, str], None] | None = None,
                 vmac_prefix: str = "vrrp", firewall: Firewall | None = None,
                 dry_run: bool = False) -> None:
        self._ah = (instance.version == 2 and instance.authentication is not None
                    and instance.authentication.auth_type is AuthType.AH)
        if self._ah and (instance.family is not AddressFamily.INET
                         or not getattr(socket, "hdrincl", False)):
            raise ValueError(f"({instance.name}) auth_type AH needs an IPv4 IP_HDRINCL "
                             "socket of protocol 51")
        self._ident = 0
        self._ah_sequence = int(time.time()) & 0xFFFFFFFF
        self.instance = instance
        self.name = instance.name
        self.socket = socket
        self.source = source
        self.addresses = addresses
        self.machine = Machine(instance, source, synced=synced)
        self._on_sync = on_sync
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._garp = garp
        self._garp_interval = garp_interval
        self._garp_policy = garp_mod.GarpPolicy.from_instance(instance, garp_interval)
        self._dry_run = dry_run
        self._garp_handles: list[asyncio.TimerHandle] = []
        self._on_state = on_state
        self._on_priority = on_priority
        self._notifier = notifier
        self._loop = loop or asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._queue: asyncio.Queue[list[Any]] = asyncio.Queue()
        self._worker = self._loop.create_task(self._work(), name=f"vrrp {self.name}")
        self._effective: Effective | None = None
        self._start_wanted = False
        self._started = False
        self._state_event = asyncio.Event()
        self._vips = advert_addresses(instance)
        self._vip_set = frozenset(self._vips)
        self._interface = instance_interface(instance, vmac_prefix)
        self._firewall_given = firewall
        self.firewall = firewall if blocks(instance) else None
        self._blocked = (blocked_addresses(instance, self._interface)
                         if self.firewall is not None else ())
        if blocks(instance) and firewall is None:
            log.warning("(%s) no_accept: no firewall given, packets to the VIPs are not "
                        "dropped", self.name)

    # ------------------------------------------------------------- view

    @property
    def state(self) -> State:
        return self.machine.state

    @property
    def started(self) -> bool:
        return self._started

    @property
    def pending(self) -> bool:
        """Tracking has no verdict yet for a weight-0 entry (the machine waits in INIT)."""
        return self._effective is not None and self._effective.pending

    def status(self) -> dict[str, Any]:
        m = self.machine
        counters = dict(self.counters)
        counters.update(priority_zero_sent=m.counters.priority_zero_sent,
                        priority_zero_received=m.counters.priority_zero_received,
                        became_master=m.counters.became_master,
                        released_master=m.counters.released_master)
        return {"name": self.name, "vrid": self.instance.virtual_router_id,
                "interface": self.instance.interface, "family": str(self.instance.family),
                "version": self.instance.version, "state": str(m.state),
                "handing_over": m.handing_over, "priority": m.priority,
                "synced": m.synced, "wants_master": m.wants_master,
                "base_priority": m.base_priority, "fault": m.fault,
                "address": str(m.address),
                "master": None if m.master_address is None else str(m.master_address),
                "master_priority": m.master_priority,
                "holds_addresses": m.holds_addresses,
                "virtual_addresses": [str(a) for a in self._vips],
                "counters": counters}

    # ------------------------------------------------------------- inputs

    def start(self) -> None:
        """Start the machine now, or as soon as tracking is no longer pending."""
        self._start_wanted = True
        if self._effective is not None and self._effective.pending:
            log.info("(%s) waiting for tracking: %s", self.name,
                     ", ".join(self._effective.waiting))
            return
        self._start()

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        self._handle(Start())

    def apply(self, effective: Effective) -> None:
        """Tracking changed: priority, fault, pending."""
        old = self._effective
        self._effective = effective
        if effective.priority != self.machine.priority:
            self._handle(PriorityChanged(effective.priority))
        if old is not None and old.priority != effective.priority \
                and self._on_priority is not None:
            self._on_priority(self, effective.priority)
        fault = effective.fault
        if fault and not self.machine.fault:
            self._handle(FaultOn(", ".join(map(fault_text, effective.faults))))
        elif not fault and self.machine.fault:
            self._handle(FaultOff("tracking recovered"))
        if self._start_wanted and not self._started and not effective.pending:
            self._start()

    def fault_on(self, reason: str) -> None:
        self._handle(FaultOn(reason))

    def fault_off(self, reason: str) -> None:
        self._handle(FaultOff(reason))

    def shutdown(self, graceful: bool = False) -> None:
        if not self._started and self.machine.state is State.INIT:
            self._started = True
        self._handle(Shutdown(graceful=graceful))

    def force(self, state: State, reason: str = "") -> None:
        """A sync group moves this instance (MASTER or BACKUP; ignored in INIT, FAULT,
        STOP and during a handover)."""
        self._handle(Force(state, reason))

    def reconfigure(self, instance: VrrpInstance, effective: Effective, *,
                    synced: bool = False, garp_interval: float | None = None) -> None:
        """A reload changed this instance's settings: applied in place (see the module
        docstring); ValueError when its identity changed (the caller restarts it)."""
        old = self.instance
        if not same_identity(old, instance):
            raise ValueError(f"({self.name}) VRID, version, family or address owner "
                             "changed: needs a restart")
        if garp_interval is not None:
            self._garp_interval = garp_interval
        if self.machine.holds_addresses and self._addresses_differ(old, instance):
            self._queue.put_nowait([_AddressDiff(old, instance)])
        self.instance = instance
        self._vips = advert_addresses(instance)
        self._vip_set = frozenset(self._vips)
        self._garp_policy = garp_mod.GarpPolicy.from_instance(instance, self._garp_interval)
        self.firewall = self._firewall_given if blocks(instance) else None
        self._blocked = (blocked_addresses(instance, self._interface)
                         if self.firewall is not None else ())
        self._handle(Reconfigure(instance, effective.priority, synced))
        self.apply(effective)

    @staticmethod
    def _addresses_differ(old: VrrpInstance, new: VrrpInstance) -> bool:
        return (old.virtual_ipaddresses != new.virtual_ipaddresses
                or old.virtual_ipaddresses_excluded != new.virtual_ipaddresses_excluded
                or old.virtual_routes != new.virtual_routes
                or blocks(old) != blocks(new))

    def wrong_vrid(self) -> None:
        self.counters["wrong_vrid"] += 1

    def receive(self, datagram: Datagram) -> None:
        """One datagram from this instance's socket (any VRID)."""
        try:
            advert = check_datagram(self.instance, datagram)
        except Dropped as error:
            name = error.counter
            self.counters[name] = self.counters.get(name, 0) + 1
            if name != "wrong_vrid":
                log.debug("(%s) dropped an advert from %s: %s", self.name, datagram.source,
                          error)
            return
        self.counters["adverts_received"] += 1
        matches = frozenset(advert.addresses) == self._vip_set
        if not matches:
            skip = (self.instance.skip_check_adv_addr
                    and datagram.source == self.machine.master_address)
            if not skip:
                self.counters["wrong_address_list"] += 1
            matches = skip
        self._handle(AdvertReceived(datagram.source, advert.priority, advert.interval,
                                    addresses_match=matches))

    # ------------------------------------------------------------- machine plumbing

    def _handle(self, event: Event, now: float | None = None) -> None:
        if now is None:
            now = self._loop.time()
        actions = self.machine.handle(event, now)
        if actions:
            self._run_now(actions, now)
        self._arm()

    def _arm(self) -> None:
        deadline = self.machine.next_deadline
        if deadline == self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._fire, deadline)

    def _fire(self, deadline: float) -> None:
        self._timer = None
        self._timer_at = None
        # call_at may run a little early (clock resolution): never before the deadline
        self._handle(Timeout(), max(self._loop.time(), deadline))

    def _run_now(self, actions: list[Any], now: float) -> None:
        """Sends at once what needs no thread; the rest goes to the worker, in order."""
        batch: list[Any] = []
        for action in actions:
            if isinstance(action, SendAdvert) and not batch:
                self._send_advert(action.priority)
            elif isinstance(action, StateChanged):
                if action.old is State.MASTER:
                    self._cancel_garp()
                    if action.new is State.BACKUP:
                        self._sync_soon("left_master")
                batch.append(action)
            elif isinstance(action, AdvertDiscarded):
                self._discarded(action)
            elif isinstance(action, WantMaster):
                log.info("(%s) wants MASTER (%s): the sync group decides", self.name,
                         action.reason)
                self._sync_soon("want_master")
            elif isinstance(action, LowerPriorityReceived):
                if self._notifier is not None and self.instance.notify_master_rx_lower_pri:
                    self._notifier.send(rx_lower_priority(self.instance, action.priority))
            else:
                if isinstance(action, RemoveAddresses):
                    self._cancel_garp()
                batch.append(action)
        if batch:
            self._queue.put_nowait(batch)

    def _sync_soon(self, what: str) -> None:
        """Tell the sync group (after this event's actions are queued, never nested)."""
        if self._on_sync is not None:
            self._loop.call_soon(self._sync_callback, what)

    def _sync_callback(self, what: str) -> None:
        if self._on_sync is None or self.machine.state is State.STOP:
            return
        try:
            self._on_sync(self, what)
        except Exception:
            log.exception("(%s) sync group callback failed", self.name)

    async def _work(self) -> None:
        while True:
            batch = await self._queue.get()
            try:
                for action in batch:
                    try:
                        await self._carry_out(action)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("(%s) %s failed", self.name, type(action).__name__)
            finally:
                self._queue.task_done()

    async def _carry_out(self, action: Any) -> None:
        if isinstance(action, SendAdvert):
            self._send_advert(action.priority)
        elif isinstance(action, AddAddresses):
            await self._firewall(block=True)
            await self._addresses(add=True)
        elif isinstance(action, RemoveAddresses):
            await self._addresses(add=False)
            await self._firewall(block=False)
        elif isinstance(action, SendGratuitous):
            self._gratuitous(action.kind)
        elif isinstance(action, _AddressDiff):
            await self._apply_diff(action.old, action.new)
        elif isinstance(action, StateChanged):
            self._state_changed(action)
            self._state_event.set()

    # ------------------------------------------------------------- actions

    def _next_ident(self) -> int:
        self._ident = self._ident % 0xFFFF + 1  # 1..65535: 0 lets the kernel choose
        return self._ident

    def _next_sequence(self) -> int:
        self._ah_sequence = max(self._ah_sequence + 1,
                                int(time.time()) & 0xFFFFFFFF) & 0xFFFFFFFF
        return self._ah_sequence

    def _encode(self, advert: Advert, destination: IPAddress) -> bytes:
        if not self._ah:
            return encode(advert, self.source, destination)
        assert isinstance(self.source, IPv4Address) and isinstance(destination, IPv4Address)
        ttl = 255 if destination.is_multicast else (self.instance.unicast_ttl or 255)
        return encode_ipv4(advert, self.source, destination, self._next_ident(), ttl=ttl,
                           auth=self.instance.authentication,
                           ah_sequence=self._next_sequence())

    def _send_advert(self, priority: int) -> None:
        advert = make_advert(self.instance, priority)
        if self._dry_run:
            level = logging.INFO if priority == 0 else logging.DEBUG
            log.log(level, "dry-run: vrrp: (%s) would send an advert (priority %d) to %s",
                    self.name, priority, ", ".join(map(str, self.socket.destinations)))
            return
        for destination in self.socket.destinations:
            try:
                payload = self._encode(advert, destination)
            except ValueError as error:
                log.error("(%s) cannot encode an advert: %s", self.name, error)
                return
            if self.socket.send(payload, destination):
                self.counters["adverts_sent"] += 1
            else:
                self.counters["send_errors"] += 1
        if priority == 0:
            log.info("(%s) sent priority 0", self.name)

    async def _addresses(self, add: bool) -> None:
        instance = self.instance
        default = self._interface

        def work() -> list[str]:
            problems: list[str] = []
            vips = (*instance.virtual_ipaddresses, *instance.virtual_ipaddresses_excluded)
            if add:
                for vip in vips:
                    try:
                        self.addresses.add(vip, default)
                    except AddressError as error:
                        problems.append(f"address {vip.address}: {error}")
                for route in instance.virtual_routes:
                    try:
                        self.addresses.add_route(route, default)
                    except AddressError as error:
                        problems.append(f"route {route.destination}: {error}")
            else:
                for route in instance.virtual_routes:
                    try:
                        self.addresses.remove_route(route, default)
                    except AddressError as error:
                        problems.append(f"route {route.destination}: {error}")
                for vip in vips:
                    try:
                        self.addresses.remove(vip, default)
                    except AddressError as error:
                        problems.append(f"address {vip.address}: {error}")
            return problems

        problems = await asyncio.to_thread(work)
        for problem in problems:
            self.counters["address_errors"] += 1
            log.error("(%s) %s %s", self.name, "adding" if add else "removing", problem)
        if problems:
            return
        log.info("(%s) %s %d virtual address(es)", self.name, "added" if add else "removed",
                 len(instance.virtual_ipaddresses) + len(instance.virtual_ipaddresses_excluded))

    async def _apply_diff(self, old: VrrpInstance, new: VrrpInstance) -> None:
        """Reload: only what changed; GARPs for the new VIPs (MASTER)."""
        default = self._interface
        old_vips = (*old.virtual_ipaddresses, *old.virtual_ipaddresses_excluded)
        new_vips = (*new.virtual_ipaddresses, *new.virtual_ipaddresses_excluded)
        vips_gone, vips_new = _only_in(old_vips, new_vips), _only_in(new_vips, old_vips)
        routes_gone = _only_in(old.virtual_routes, new.virtual_routes)
        routes_new = _only_in(new.virtual_routes, old.virtual_routes)
        firewall = self._firewall_given
        old_blocked = set(blocked_addresses(old, default)) if blocks(old) else set()
        new_blocked = set(blocked_addresses(new, default)) if blocks(new) else set()
        if firewall is not None and new_blocked - old_blocked:
            await self._firewall_call(firewall.block, self.name, new_blocked - old_blocked)

        def work() -> list[str]:
            problems: list[str] = []
            steps: list[tuple[str, Callable[[Any, str | None], bool], Any]] = [
                *(("removing route", self.addresses.remove_route, r) for r in routes_gone),
                *(("removing address", self.addresses.remove, v) for v in vips_gone),
                *(("adding address", self.addresses.add, v) for v in vips_new),
                *(("adding route", self.addresses.add_route, r) for r in routes_new)]
            for what, call, item in steps:
                try:
                    call(item, default)
                except AddressError as error:
                    problems.append(f"{what} {_label(item)}: {error}")
            return problems

        problems = await asyncio.to_thread(work)
        for problem in problems:
            self.counters["address_errors"] += 1
            log.error("(%s) reload: %s", self.name, problem)
        if firewall is not None and old_blocked - new_blocked:
            await self._firewall_call(firewall.unblock, self.name, old_blocked - new_blocked)
        log.info("(%s) reload: %d virtual address(es) added, %d removed; %d route(s) "
                 "added, %d removed", self.name, len(vips_new), len(vips_gone),
                 len(routes_new), len(routes_gone))
        fresh = {v.address.ip for v in vips_new if v in new.virtual_ipaddresses}
        if fresh and self.machine.state is State.MASTER and not self.machine.handing_over:
            self._gratuitous(GarpKind.MASTER, only=fresh)

    async def _firewall_call(self, call: Callable[..., None], *args: Any) -> None:
        try:
            await asyncio.to_thread(call, *args)
        except (FirewallError, ValueError) as error:
            self.counters["firewall_errors"] += 1
            log.error("(%s) reload: firewall drop rule: %s", self.name, error)

    async def _firewall(self, block: bool) -> None:
        """no_accept: drop packets to (and from) the VIPs while we hold them."""
        firewall = self.firewall
        if firewall is None or not self._blocked:
            return
        try:
            if block:
                await asyncio.to_thread(firewall.block, self.name, self._blocked)
            else:
                await asyncio.to_thread(firewall.unblock, self.name)
        except (FirewallError, ValueError) as error:
            self.counters["firewall_errors"] += 1
            log.error("(%s) cannot %s the firewall drop rule: %s", self.name,
                      "set" if block else "remove", error)
            return
        log.info("(%s) %s firewall drop rule (no_accept)", self.name,
                 "set" if block else "removed")

    def _gratuitous(self, kind: GarpKind, only: set[IPAddress] | None = None) -> None:
        if self._garp is None:
            return
        now = self._loop.time()
        policy = self._garp_policy
        if kind is GarpKind.MASTER:
            horizon = now + max(policy.master_delay, 0.0) + 3600.0 * 24
            rounds = garp_mod.master_rounds(policy, now, horizon if policy.master_refresh
                                            else now + max(policy.master_delay, 0.0))
        else:
            rounds = garp_mod.lower_priority_rounds(policy, now)
        targets: list[tuple[str, IPAddress]] = []
        for vip in (*self.instance.virtual_ipaddresses,):
            device = vip.dev or self._interface
            if device is not None and (only is None or vip.address.ip in only):
                targets.append((device, vip.address.ip))
        if not targets:
            return
        times = garp_mod.pace(rounds[:2000], len(targets), policy.interval)
        for index, at in enumerate(times):
            device, address = targets[index % len(targets)]
            if at <= now:
                self._garp_one(device, address)
            else:
                self._garp_handles.append(
                    self._loop.call_at(at, self._garp_one, device, address))

    def _garp_one(self, device: str, address: IPAddress) -> None:
        if self._garp is None:
            return
        try:
            self._garp(device).send(address)
        except Exception:  # a sender never raises; an odd device name might
            log.exception("(%s) gratuitous ARP/NA on %s failed", self.name, device)

    def _cancel_garp(self) -> None:
        for handle in self._garp_handles:
            handle.cancel()
        self._garp_handles.clear()

    def _state_changed(self, change: StateChanged) -> None:
        log.info("(%s) Entering %s STATE (%s)", self.name, change.new, change.reason)
        if self._on_state is not None:
            try:
                self._on_state(self, change.old, change.new, change.reason)
            except Exception:
                log.exception("(%s) state change callback failed", self.name)

    def _discarded(self, action: AdvertDiscarded) -> None:
        if action.reason is DiscardReason.INTERVAL:
            self.counters["interval_mismatch"] += 1
        elif action.reason is not DiscardReason.ADDRESS_LIST:
            self.counters["discarded"] += 1
        log.debug("(%s) advert from %s (priority %d) discarded: %s", self.name,
                  action.source, action.priority, action.reason)

    # ------------------------------------------------------------- stopping

    async def stopped(self, timeout: float) -> bool:
        """Wait until the machine is in STOP and its actions are done."""
        loop = self._loop
        end = loop.time() + timeout
        while self.machine.state is not State.STOP:
            remaining = end - loop.time()
            if remaining <= 0:
                return False
            self._state_event.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.05)):
                    await self._state_event.wait()
        await self.drain(max(0.0, end - loop.time()))
        return True

    async def drain(self, timeout: float = 5.0) -> bool:
        """Wait until the queued actions are carried out; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._queue.join()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Cancel the timers, GARPs and the worker; does no I/O."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._cancel_garp()
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker


def _label(item: VirtualAddress | Route) -> str:
    return str(item.address) if isinstance(item, VirtualAddress) else str(item.destination)


def primary_address_of(instance: VrrpInstance, manager: AddressManager) -> IPAddress | None:
    """The address adverts go from: unicast_src_ip, else the interface's (sync)."""
    if instance.unicast_src_ip is not None:
        return instance.unicast_src_ip
    if instance.interface is None:
        return None
    return manager.primary_address(instance.interface, instance.family)

