"""The VRRP state machine of one instance (RFC 5798, RFC 3768 for VRRPv2), sans-IO.

No clock, no sockets, no processes: `Machine.handle(event, now)` takes one event and
the time, and returns the actions to take, in order. ``now`` is monotonic seconds
(float); priorities are ints 0-255; intervals and durations are seconds (float).

Timers: the machine keeps its own deadlines and exposes `Machine.next_deadline` (None:
no timer running). The adapter sleeps until then (or until a packet or tracker event
arrives) and calls ``handle(Timeout(), now)``. Every call first fires the timers due at
``now``, in deadline order, then processes its event: calling late or early is safe,
and the outcome depends only on the events and their times. (There are no SetTimer
actions: the deadline is the one source of truth, read after each call.) The running
timers are `Machine.timers`: ``advert`` (MASTER), ``master_down`` and ``preempt``
(BACKUP), ``handover`` (MASTER handing over).

Public API::

    machine = Machine(instance: vrrp.spec.VrrpInstance, address: IPAddress, *,
                      synced: bool = False)
        address: our primary address, the one adverts are sent from (unicast_src_ip, or
        the interface's first address of the family); it breaks priority ties.
        synced: a vrrp_sync_group member (never takes over on its own: WantMaster).
    machine.handle(event, now: float) -> list[Action]
    machine.next_deadline -> float | None
    machine.state -> State; .handing_over -> bool; .holds_addresses -> bool
    machine.synced -> bool; .wants_master -> bool (a synced BACKUP that asked)
    machine.instance, .priority (effective), .base_priority, .fault, .address
    machine.master_address, .master_priority (the current master as last heard; ours
        in MASTER; None when unknown), .master_adver_interval, .master_down_interval,
        .skew_time, .timers, .counters (MachineCounters)
    skew_time(version, priority, master_adver_int) -> float
    master_down_interval(version, priority, master_adver_int, down_timer_adverts=3)
    TRANSITIONS (the table below as data), render_table() -> str

Events: `Start()`; `AdvertReceived(source, priority, interval, addresses_match=True)`;
`Timeout()`; `PriorityChanged(priority)` (the effective priority from tracking; clamped
to 1-254, ignored for an address owner as keepalived ignores its weights);
`FaultOn(reason="")` / `FaultOff(reason="")` (a level: the caller aggregates its
trackers); `Shutdown(graceful=False)`; `Force(state, reason="")` (a sync group moves
this member to `State.MASTER` or `State.BACKUP`; any other state: ValueError);
`Reconfigure(instance, priority, synced=False)` (a reload changed the instance's
settings in place: same VRID, version and address-owner status, else ValueError;
``priority`` the new effective one; the addresses' diff is the adapter's).

Actions: `SendAdvert(priority)`; `AddAddresses()`; `RemoveAddresses()` (VIPs, excluded
VIPs, virtual routes and rules: the adapter's business); `SendGratuitous(kind)` (one
burst now; the adapter repeats it per garp_master_delay/repeat/refresh for
`GarpKind.MASTER`, per garp_lower_prio_delay/repeat for `GarpKind.LOWER_PRIORITY`);
`StateChanged(old, new, reason)` (notify scripts, FIFO, log); `AdvertDiscarded(source,
priority, reason)` (count, log); `LowerPriorityReceived(source, priority)`
(notify_master_rx_lower_pri); `WantMaster(reason)` (a sync group member would take
over on its own: it stays BACKUP, the glue asks `vrrp.track.sync_transition` and sends
Force(MASTER) to the members when the whole group may go). Becoming master is always
SendAdvert, AddAddresses, SendGratuitous, StateChanged: the advert first, so an old
master lets go of the addresses before our gratuitous ARPs (keepalived's order).

Counters: the machine counts only what it alone knows (`MachineCounters`:
became_master, released_master, priority_zero_sent, priority_zero_received); adverts
sent and received, bad checksum/TTL/auth, wrong VRID, wrong address list (also seen
here as `AdvertDiscarded`) are the adapter's.

Not the machine's job: the unicast peer set, TTL, checksums and authentication (the
transport drops and counts; the machine sees accepted adverts only); accept/no_accept
(the adapter installs or removes its firewall rules with the addresses); gratuitous
ARP repetition and refresh; the sync group rule itself (the glue feeds FaultOn/FaultOff
to every member when one faults, asks `sync_transition` on WantMaster and on a member
leaving MASTER, and sends Force).

Rules (keepalived 2.2.7's behaviour unless marked "beyond keepalived"):

- Master_Down_Interval = down_timer_adverts (3) x Master_Adver_Interval + Skew_Time;
  VRRPv2 skew (256 - priority)/256 s, VRRPv3 skew (256 - priority) x
  Master_Adver_Interval/256; a VRRPv3 backup learns Master_Adver_Interval from the
  adverts it accepts, and goes back to its own advert_int on leaving FAULT.
- VRRPv2 adverts whose interval differs from ours are discarded (RFC 3768 sec. 7.1);
  so are adverts whose address list differs (keepalived does so even from an address
  owner), adverts from our own address and, in INIT and FAULT, all adverts. A
  discarded advert never resets a timer.
- Equal priorities: the higher primary address wins, compared as numbers (IPv4 and
  IPv6 alike), and only a MASTER compares: a BACKUP accepts an equal priority.
- A MASTER hearing a higher priority steps down without sending priority 0; with
  higher_prio_send_advert it first sends one advert. Hearing a lower priority it
  answers with an advert at once unless lower_prio_no_advert, and sends a
  LOWER_PRIORITY gratuitous burst when garp_lower_prio_repeat > 0. Hearing priority
  0 it advertises at once. Two address owners: ours drops to 254, as keepalived does.
- FAULT from MASTER sends priority 0 and removes the addresses; FAULT is silent;
  leaving it goes to BACKUP with a full master-down timer (an address owner: MASTER).
- Shutdown (not graceful) in MASTER sends priority 0 and removes the addresses at once.
- preempt_delay: counted from the first lower-priority advert heard (as keepalived
  does; ours also from our priority rising above the master's); a higher or equal
  advert, or our priority falling to the master's, stops it.

Beyond keepalived:

- `state MASTER` below priority 255 (without nopreempt) listens for one advert
  interval + skew before taking over, not keepalived's full master-down interval: a
  live master advertises within that time. With nopreempt the full interval applies
  (keepalived ignores nopreempt with state MASTER; we honour it).
- A MASTER advertises a priority change at once, then every advert_int again.
- A preempting BACKUP takes over at once when it hears a lower priority than its own,
  or when its own priority rises above what the master last advertised; with
  preempt_delay, when the delay is over (keepalived: delay + master-down interval).
  Several backups doing so at once are briefly all MASTER: their adverts settle it
  within one network round trip.
- Graceful handover: Shutdown(graceful=True) in MASTER sends priority 0, keeps the
  addresses and repeats priority 0 every advert_int, until an advert of priority > 0
  from another address (the new master) or the longest master-down interval any
  backup can have (N x advert_int + skew at priority 1) passes; then RemoveAddresses
  and STOP. A second Shutdown (or a fault) ends it at once. HANDOVER below is the
  MASTER state with `Machine.handing_over` True (notify scripts still see MASTER).

Transition table (N = down_timer_adverts; BECOME MASTER = SendAdvert, AddAddresses,
SendGratuitous, StateChanged; [Action]: only when its option asks for it). Tests run
every row; `render_table()` prints it::

  init-start-owner             INIT + Start
      if priority 255 (address owner), no fault
      -> SendAdvert, AddAddresses, SendGratuitous, StateChanged => MASTER
  init-start-fault             INIT + Start
      if a fault is set
      -> StateChanged => FAULT
  init-start-master            INIT + Start
      if state MASTER, priority < 255, preempt: master-down timer 1 x advert_int + skew
         (keepalived waits 3 x)
      -> StateChanged => BACKUP
  init-start-backup            INIT + Start
      if otherwise: master-down timer N x advert_int + skew
      -> StateChanged => BACKUP
  init-advert                  INIT + AdvertReceived
      -> AdvertDiscarded => INIT
  init-priority                INIT + PriorityChanged
      if always: the value is kept
      -> nothing => INIT
  init-fault                   INIT + FaultOn/FaultOff
      if always: the value is kept
      -> nothing => INIT
  init-shutdown                INIT + Shutdown
      -> StateChanged => STOP
  backup-advert-bad            BACKUP + AdvertReceived
      if address list differs, v2 interval differs, v3 interval 0, own address, priority >
         255: timers unchanged
      -> AdvertDiscarded => BACKUP
  backup-advert-zero           BACKUP + AdvertReceived
      if priority 0: master-down timer = skew
      -> nothing => BACKUP
  backup-advert-accept         BACKUP + AdvertReceived
      if priority >= ours, or nopreempt: reset master-down timer (v3: learn the master's
         interval), stop any preempt delay
      -> nothing => BACKUP
  backup-advert-lower-delay    BACKUP + AdvertReceived
      if lower priority, preempt_delay: reset master-down timer, start the preempt delay if
         not running
      -> nothing => BACKUP
  backup-advert-lower          BACKUP + AdvertReceived
      if lower priority, preempt, no preempt_delay: take over at once (keepalived waits for
         master-down)
      -> SendAdvert, AddAddresses, SendGratuitous, StateChanged => MASTER
  backup-timeout-down          BACKUP + Timeout
      if master-down timer
      -> SendAdvert, AddAddresses, SendGratuitous, StateChanged => MASTER
  backup-timeout-preempt       BACKUP + Timeout
      if preempt delay over, the master still lower: take over (keepalived adds master-down)
      -> SendAdvert, AddAddresses, SendGratuitous, StateChanged => MASTER
  backup-priority-takeover     BACKUP + PriorityChanged
      if preempt, no preempt_delay, now above the master's last advert
      -> SendAdvert, AddAddresses, SendGratuitous, StateChanged => MASTER
  backup-priority-delay        BACKUP + PriorityChanged
      if preempt_delay, now above the master's last advert: start the delay
      -> nothing => BACKUP
  backup-priority              BACKUP + PriorityChanged
      if otherwise (not above the master any more: stop the delay)
      -> nothing => BACKUP
  backup-fault                 BACKUP + FaultOn
      -> StateChanged => FAULT
  backup-shutdown              BACKUP + Shutdown
      -> StateChanged => STOP
  master-advert-bad            MASTER + AdvertReceived
      if as backup-advert-bad
      -> AdvertDiscarded => MASTER
  master-advert-zero           MASTER + AdvertReceived
      if priority 0: advertise now, restart the advert timer
      -> SendAdvert => MASTER
  master-advert-higher         MASTER + AdvertReceived
      if priority > ours, or equal and the sender's address is higher: no priority 0 (v3:
         learn the interval)
      -> [SendAdvert], RemoveAddresses, StateChanged => BACKUP
  master-advert-owner-conflict MASTER + AdvertReceived
      if both priority 255: ours becomes 254 (keepalived), then as higher
      -> RemoveAddresses, StateChanged => BACKUP
  master-advert-lower          MASTER + AdvertReceived
      if priority < ours, or equal and the sender's address is lower
      -> [SendAdvert], [SendGratuitous], LowerPriorityReceived => MASTER
  master-timeout-advert        MASTER + Timeout
      if advert timer
      -> SendAdvert => MASTER
  master-priority              MASTER + PriorityChanged
      if a new value (owner: ignored): advertise now, restart the advert timer (keepalived
         waits for the timer)
      -> SendAdvert => MASTER
  master-fault                 MASTER + FaultOn
      -> SendAdvert(0), RemoveAddresses, StateChanged => FAULT
  master-shutdown              MASTER + Shutdown
      if not graceful
      -> SendAdvert(0), RemoveAddresses, StateChanged => STOP
  master-shutdown-graceful     MASTER + Shutdown
      if graceful: keep the addresses, hand over
      -> SendAdvert(0) => HANDOVER
  handover-advert-new-master   HANDOVER + AdvertReceived
      if priority > 0 from another address
      -> RemoveAddresses, StateChanged => STOP
  handover-advert-zero         HANDOVER + AdvertReceived
      if priority 0
      -> nothing => HANDOVER
  handover-timeout-advert      HANDOVER + Timeout
      if advert timer: repeat priority 0
      -> SendAdvert(0) => HANDOVER
  handover-timeout-end         HANDOVER + Timeout
      if no new master within the longest master-down interval (N x advert_int + skew at
         priority 1)
      -> RemoveAddresses, StateChanged => STOP
  handover-shutdown            HANDOVER + Shutdown
      if a second one: at once
      -> RemoveAddresses, StateChanged => STOP
  handover-fault               HANDOVER + FaultOn
      -> RemoveAddresses, StateChanged => STOP
  handover-priority            HANDOVER + PriorityChanged
      if always: the value is kept
      -> nothing => HANDOVER
  fault-fault-off-owner        FAULT + FaultOff
      if address owner
      -> SendAdvert, AddAddresses, SendGratuitous, StateChanged => MASTER
  fault-fault-off              FAULT + FaultOff
      if master-down timer N x advert_int + skew
      -> StateChanged => BACKUP
  fault-advert                 FAULT + AdvertReceived
      -> AdvertDiscarded => FAULT
  fault-priority               FAULT + PriorityChanged
      if always: the value is kept
      -> nothing => FAULT
  fault-shutdown               FAULT + Shutdown
      -> StateChanged => STOP
  sync-init-start-owner        INIT + Start
      if in a sync group, address owner, no fault: the group decides
      -> StateChanged, WantMaster => BACKUP
  sync-backup-take-over        BACKUP + Timeout/AdvertReceived/PriorityChanged
      if in a sync group, where backup-timeout-down, backup-timeout-preempt, backup-advert-
         lower or backup-priority-takeover would take over: stay BACKUP, want MASTER,
         restart the master-down timer (keepalived's vrrp_sync_can_goto_master); an advert
         >= ours clears the wish
      -> WantMaster => BACKUP
  sync-fault-off-owner         FAULT + FaultOff
      if in a sync group, address owner: the group decides
      -> StateChanged, WantMaster => BACKUP
  force-backup-master          BACKUP + Force(MASTER)
      if the sync group goes MASTER
      -> SendAdvert, AddAddresses, SendGratuitous, StateChanged => MASTER
  force-master-backup          MASTER + Force(BACKUP)
      if the sync group goes BACKUP: no priority 0 (keepalived's vrrp_sync_backup), master-
         down timer N x advert_int + skew
      -> RemoveAddresses, StateChanged => BACKUP
  force-ignored                INIT/BACKUP/MASTER/FAULT + Force
      if already in that state, or INIT, FAULT (a fault is a level: FaultOn/FaultOff), a
         handover
      -> nothing => unchanged
  master-reconfigure           MASTER + Reconfigure
      if a reload changed what the adverts carry or where they go (priority, advert_int,
         VIPs, authentication, unicast peers): advertise now, restart the advert timer (no
         election, the addresses stay)
      -> SendAdvert => MASTER
  backup-reconfigure-takeover  BACKUP + Reconfigure
      if the new priority is above the master's last advert, preempt, no preempt_delay (as
         backup-priority-takeover)
      -> SendAdvert, AddAddresses, SendGratuitous, StateChanged => MASTER
  reconfigure-quiet            INIT/BACKUP/MASTER/FAULT + Reconfigure
      if otherwise (and during a handover): the settings are taken; v2, or not MASTER:
         Master_Adver_Interval = the new advert_int unless learned from a v3 master;
         nopreempt stops a preempt delay, a new preempt_delay restarts it
      -> nothing => unchanged
  stop-any                     STOP + any
      if ignored
      -> nothing => STOP
  any-start                    BACKUP/MASTER/FAULT + Start
      if ignored
      -> nothing => unchanged
  any-fault-repeat             BACKUP/MASTER + FaultOff
      if FaultOff outside FAULT (and FaultOn in FAULT): ignored
      -> nothing => unchanged
"""

from __future__ import annotations

import ipaddress
import textwrap
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeAlias

from vrrp.spec import PRIORITY_OWNER, InstanceState, VrrpInstance

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

PRIORITY_STOP = 0  # "this master is leaving"
PRIORITY_MAX_TRACKED = PRIORITY_OWNER - 1  # tracking never makes a non-owner the owner
_INTERVAL_TOLERANCE = 0.005  # VRRPv2 intervals are whole seconds on the wire
_MAX_TIMER_ROUNDS = 64  # timers fired in one call: a bound, never reached in practice


class State(StrEnum):
    """An instance's state; the names are keepalived's (notify scripts, FIFO lines)."""

    INIT = "INIT"
    BACKUP = "BACKUP"
    MASTER = "MASTER"
    FAULT = "FAULT"
    STOP = "STOP"


class GarpKind(StrEnum):
    """Which gratuitous ARP / unsolicited NA burst, so the adapter picks its settings."""

    MASTER = "master"  # garp_master_repeat now, again after garp_master_delay, refresh...
    LOWER_PRIORITY = "lower_priority"  # garp_lower_prio_repeat now, again after its delay


class DiscardReason(StrEnum):
    """Why an advert changed nothing (the adapter counts and logs)."""

    ADDRESS_LIST = "address list does not match ours"
    INTERVAL = "advert interval mismatch"
    OWN_ADDRESS = "sent from our own address"
    INVALID = "priority out of range"
    NOT_LISTENING = "not listening in this state"


# ----------------------------------------------------------------- events (inputs)


@dataclass(frozen=True, slots=True)
class Start:
    """Leave INIT: the initial state comes from the config (see the table)."""


@dataclass(frozen=True, slots=True)
class AdvertReceived:
    """An advert for our VRID that the transport accepted (checksum, TTL, auth, unicast
    peer set already checked and counted by the caller).

    ``interval`` is the advert's interval in seconds (VRRPv2: whole seconds);
    ``addresses_match``: its address list is ours (the adapter decides, and may pass
    True for skip_check_adv_addr when ``source`` is `Machine.master_address`).
    """

    source: IPAddress
    priority: int
    interval: float
    addresses_match: bool = True


@dataclass(frozen=True, slots=True)
class Timeout:
    """Time passed: fire every timer due at ``now`` (call at `Machine.next_deadline`)."""


@dataclass(frozen=True, slots=True)
class PriorityChanged:
    """The effective priority from tracking (base priority plus weights)."""

    priority: int


@dataclass(frozen=True, slots=True)
class FaultOn:
    """A tracked interface is down or a tracker reports a fault (a level, not a count:
    the caller aggregates its trackers)."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class FaultOff:
    """No fault any more."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class Shutdown:
    """Stop the instance; ``graceful`` in MASTER hands over first (see the table)."""

    graceful: bool = False


@dataclass(frozen=True, slots=True)
class Force:
    """A sync group moves this member: ``state`` is `State.MASTER` or `State.BACKUP`
    (FAULT comes from FaultOn/FaultOff, a level). See the force-* rows."""

    state: State
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Reconfigure:
    """A reload changed this instance's settings in place: ``instance`` has the same
    VRID, version and address-owner status (anything else is a restart, the caller's
    business); ``priority`` is the new effective priority (base plus tracking weights).
    See the *-reconfigure rows."""

    instance: VrrpInstance
    priority: int
    synced: bool = False


Event: TypeAlias = (Start | AdvertReceived | Timeout | PriorityChanged | FaultOn | FaultOff
                    | Shutdown | Force | Reconfigure)


# ----------------------------------------------------------------- actions (outputs)


@dataclass(frozen=True, slots=True)
class SendAdvert:
    """Send one advert now with this priority (0: we are leaving)."""

    priority: int


@dataclass(frozen=True, slots=True)
class AddAddresses:
    """Add the virtual addresses (and excluded ones, routes, rules) now."""


@dataclass(frozen=True, slots=True)
class RemoveAddresses:
    """Remove what AddAddresses added, now."""


@dataclass(frozen=True, slots=True)
class SendGratuitous:
    """Send a burst of gratuitous ARPs / unsolicited NAs now; the adapter repeats it."""

    kind: GarpKind = GarpKind.MASTER


@dataclass(frozen=True, slots=True)
class StateChanged:
    """For notify scripts, the notify FIFO and the log."""

    old: State
    new: State
    reason: str


@dataclass(frozen=True, slots=True)
class AdvertDiscarded:
    """An advert that changed nothing, and why."""

    source: IPAddress
    priority: int
    reason: DiscardReason


@dataclass(frozen=True, slots=True)
class LowerPriorityReceived:
    """A MASTER heard a lower-priority advert (notify_master_rx_lower_pri)."""

    source: IPAddress
    priority: int


@dataclass(frozen=True, slots=True)
class WantMaster:
    """A sync group member would become MASTER on its own (master-down timer, a
    lower-priority master it preempts, address owner): it stays BACKUP and the group
    decides (`vrrp.track.sync_transition`), then sends Force(MASTER) to every member."""

    reason: str


Action: TypeAlias = (SendAdvert | AddAddresses | RemoveAddresses | SendGratuitous
                     | StateChanged | AdvertDiscarded | LowerPriorityReceived | WantMaster)


@dataclass(slots=True)
class MachineCounters:
    """What only the machine knows; packet counters belong to the adapter."""

    became_master: int = 0
    released_master: int = 0
    priority_zero_sent: int = 0
    priority_zero_received: int = 0


# ----------------------------------------------------------------- timer arithmetic


def skew_time(version: int, priority: int, master_adver_int: float) -> float:
    """Skew_Time in seconds: VRRPv2 (256 - priority) / 256; VRRPv3
    (256 - priority) x Master_Adver_Interval / 256."""
    if version == 2:
        return (256 - priority) / 256
    return (256 - priority) * master_adver_int / 256


def master_down_interval(version: int, priority: int, master_adver_int: float,
                         down_timer_adverts: int = 3) -> float:
    """Master_Down_Interval in seconds: down_timer_adverts (3) x Master_Adver_Interval
    + Skew_Time."""
    return down_timer_adverts * master_adver_int + skew_time(version, priority,
                                                             master_adver_int)


# ----------------------------------------------------------------- the transition table


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of the table. ``actions`` name action types in the order emitted
    ("SendAdvert(0)": priority 0; a bracketed name: only when its option says so)."""

    name: str
    state: str
    event: str
    guard: str
    actions: tuple[str, ...]
    next: str


BECOME_MASTER = ("SendAdvert", "AddAddresses", "SendGratuitous", "StateChanged")

TRANSITIONS: tuple[Transition, ...] = (
    Transition("init-start-owner", "INIT", "Start",
               "priority 255 (address owner), no fault", BECOME_MASTER, "MASTER"),
    Transition("init-start-fault", "INIT", "Start", "a fault is set",
               ("StateChanged",), "FAULT"),
    Transition("init-start-master", "INIT", "Start",
               "state MASTER, priority < 255, preempt: master-down timer "
               "1 x advert_int + skew (keepalived waits 3 x)",
               ("StateChanged",), "BACKUP"),
    Transition("init-start-backup", "INIT", "Start",
               "otherwise: master-down timer N x advert_int + skew",
               ("StateChanged",), "BACKUP"),
    Transition("init-advert", "INIT", "AdvertReceived", "",
               ("AdvertDiscarded",), "INIT"),
    Transition("init-priority", "INIT", "PriorityChanged", "always: the value is kept", (), "INIT"),
    Transition("init-fault", "INIT", "FaultOn/FaultOff", "always: the value is kept", (), "INIT"),
    Transition("init-shutdown", "INIT", "Shutdown", "", ("StateChanged",), "STOP"),

    Transition("backup-advert-bad", "BACKUP", "AdvertReceived",
               "address list differs, v2 interval differs, v3 interval 0, own address, "
               "priority > 255: timers unchanged", ("AdvertDiscarded",), "BACKUP"),
    Transition("backup-advert-zero", "BACKUP", "AdvertReceived",
               "priority 0: master-down timer = skew", (), "BACKUP"),
    Transition("backup-advert-accept", "BACKUP", "AdvertReceived",
               "priority >= ours, or nopreempt: reset master-down timer (v3: learn "
               "the master's interval), stop any preempt delay", (), "BACKUP"),
    Transition("backup-advert-lower-delay", "BACKUP", "AdvertReceived",
               "lower priority, preempt_delay: reset master-down timer, start the "
               "preempt delay if not running", (), "BACKUP"),
    Transition("backup-advert-lower", "BACKUP", "AdvertReceived",
               "lower priority, preempt, no preempt_delay: take over at once "
               "(keepalived waits for master-down)", BECOME_MASTER, "MASTER"),
    Transition("backup-timeout-down", "BACKUP", "Timeout", "master-down timer",
               BECOME_MASTER, "MASTER"),
    Transition("backup-timeout-preempt", "BACKUP", "Timeout",
               "preempt delay over, the master still lower: take over "
               "(keepalived adds master-down)", BECOME_MASTER, "MASTER"),
    Transition("backup-priority-takeover", "BACKUP", "PriorityChanged",
               "preempt, no preempt_delay, now above the master's last advert",
               BECOME_MASTER, "MASTER"),
    Transition("backup-priority-delay", "BACKUP", "PriorityChanged",
               "preempt_delay, now above the master's last advert: start the delay",
               (), "BACKUP"),
    Transition("backup-priority", "BACKUP", "PriorityChanged",
               "otherwise (not above the master any more: stop the delay)", (), "BACKUP"),
    Transition("backup-fault", "BACKUP", "FaultOn", "", ("StateChanged",), "FAULT"),
    Transition("backup-shutdown", "BACKUP", "Shutdown", "", ("StateChanged",), "STOP"),

    Transition("master-advert-bad", "MASTER", "AdvertReceived", "as backup-advert-bad",
               ("AdvertDiscarded",), "MASTER"),
    Transition("master-advert-zero", "MASTER", "AdvertReceived",
               "priority 0: advertise now, restart the advert timer",
               ("SendAdvert",), "MASTER"),
    Transition("master-advert-higher", "MASTER", "AdvertReceived",
               "priority > ours, or equal and the sender's address is higher: no "
               "priority 0 (v3: learn the interval)",
               ("[SendAdvert]", "RemoveAddresses", "StateChanged"), "BACKUP"),
    Transition("master-advert-owner-conflict", "MASTER", "AdvertReceived",
               "both priority 255: ours becomes 254 (keepalived), then as higher",
               ("RemoveAddresses", "StateChanged"), "BACKUP"),
    Transition("master-advert-lower", "MASTER", "AdvertReceived",
               "priority < ours, or equal and the sender's address is lower",
               ("[SendAdvert]", "[SendGratuitous]", "LowerPriorityReceived"), "MASTER"),
    Transition("master-timeout-advert", "MASTER", "Timeout", "advert timer",
               ("SendAdvert",), "MASTER"),
    Transition("master-priority", "MASTER", "PriorityChanged",
               "a new value (owner: ignored): advertise now, restart the advert timer "
               "(keepalived waits for the timer)", ("SendAdvert",), "MASTER"),
    Transition("master-fault", "MASTER", "FaultOn", "",
               ("SendAdvert(0)", "RemoveAddresses", "StateChanged"), "FAULT"),
    Transition("master-shutdown", "MASTER", "Shutdown", "not graceful",
               ("SendAdvert(0)", "RemoveAddresses", "StateChanged"), "STOP"),
    Transition("master-shutdown-graceful", "MASTER", "Shutdown",
               "graceful: keep the addresses, hand over", ("SendAdvert(0)",), "HANDOVER"),

    Transition("handover-advert-new-master", "HANDOVER", "AdvertReceived",
               "priority > 0 from another address", ("RemoveAddresses", "StateChanged"),
               "STOP"),
    Transition("handover-advert-zero", "HANDOVER", "AdvertReceived", "priority 0", (),
               "HANDOVER"),
    Transition("handover-timeout-advert", "HANDOVER", "Timeout",
               "advert timer: repeat priority 0", ("SendAdvert(0)",), "HANDOVER"),
    Transition("handover-timeout-end", "HANDOVER", "Timeout",
               "no new master within the longest master-down interval "
               "(N x advert_int + skew at priority 1)",
               ("RemoveAddresses", "StateChanged"), "STOP"),
    Transition("handover-shutdown", "HANDOVER", "Shutdown", "a second one: at once",
               ("RemoveAddresses", "StateChanged"), "STOP"),
    Transition("handover-fault", "HANDOVER", "FaultOn", "",
               ("RemoveAddresses", "StateChanged"), "STOP"),
    Transition("handover-priority", "HANDOVER", "PriorityChanged", "always: the value is kept", (),
               "HANDOVER"),

    Transition("fault-fault-off-owner", "FAULT", "FaultOff", "address owner",
               BECOME_MASTER, "MASTER"),
    Transition("fault-fault-off", "FAULT", "FaultOff",
               "master-down timer N x advert_int + skew", ("StateChanged",), "BACKUP"),
    Transition("fault-advert", "FAULT", "AdvertReceived", "", ("AdvertDiscarded",),
               "FAULT"),
    Transition("fault-priority", "FAULT", "PriorityChanged", "always: the value is kept", (),
               "FAULT"),
    Transition("fault-shutdown", "FAULT", "Shutdown", "", ("StateChanged",), "STOP"),

    Transition("sync-init-start-owner", "INIT", "Start",
               "in a sync group, address owner, no fault: the group decides",
               ("StateChanged", "WantMaster"), "BACKUP"),
    Transition("sync-backup-take-over", "BACKUP", "Timeout/AdvertReceived/PriorityChanged",
               "in a sync group, where backup-timeout-down, backup-timeout-preempt, "
               "backup-advert-lower or backup-priority-takeover would take over: stay "
               "BACKUP, want MASTER, restart the master-down timer (keepalived's "
               "vrrp_sync_can_goto_master); an advert >= ours clears the wish",
               ("WantMaster",), "BACKUP"),
    Transition("sync-fault-off-owner", "FAULT", "FaultOff",
               "in a sync group, address owner: the group decides",
               ("StateChanged", "WantMaster"), "BACKUP"),
    Transition("force-backup-master", "BACKUP", "Force(MASTER)",
               "the sync group goes MASTER", BECOME_MASTER, "MASTER"),
    Transition("force-master-backup", "MASTER", "Force(BACKUP)",
               "the sync group goes BACKUP: no priority 0 (keepalived's vrrp_sync_backup), "
               "master-down timer N x advert_int + skew",
               ("RemoveAddresses", "StateChanged"), "BACKUP"),
    Transition("force-ignored", "INIT/BACKUP/MASTER/FAULT", "Force",
               "already in that state, or INIT, FAULT (a fault is a level: FaultOn/FaultOff), "
               "a handover", (), "unchanged"),

    Transition("master-reconfigure", "MASTER", "Reconfigure",
               "a reload changed what the adverts carry or where they go (priority, "
               "advert_int, VIPs, authentication, unicast peers): advertise now, restart "
               "the advert timer "
               "(no election, the addresses stay)", ("SendAdvert",), "MASTER"),
    Transition("backup-reconfigure-takeover", "BACKUP", "Reconfigure",
               "the new priority is above the master's last advert, preempt, no "
               "preempt_delay (as backup-priority-takeover)", BECOME_MASTER, "MASTER"),
    Transition("reconfigure-quiet", "INIT/BACKUP/MASTER/FAULT", "Reconfigure",
               "otherwise (and during a handover): the settings are taken; v2, or not "
               "MASTER: Master_Adver_Interval = the new advert_int unless learned from a "
               "v3 master; nopreempt stops a preempt delay, a new preempt_delay restarts "
               "it", (), "unchanged"),

    Transition("stop-any", "STOP", "any", "ignored", (), "STOP"),
    Transition("any-start", "BACKUP/MASTER/FAULT", "Start", "ignored", (), "unchanged"),
    Transition("any-fault-repeat", "BACKUP/MASTER", "FaultOff",
               "FaultOff outside FAULT (and FaultOn in FAULT): ignored", (), "unchanged"),
)


def render_table() -> str:
    """The table as the module docstring shows it."""
    lines = []
    for row in TRANSITIONS:
        lines.append(f"  {row.name:<28} {row.state} + {row.event}")
        if row.guard:
            lines += textwrap.wrap(f"if {row.guard}", 92, initial_indent="      ",
                                   subsequent_indent="         ")
        lines.append(f"      -> {', '.join(row.actions) or 'nothing'} => {row.next}")
    return "\n".join(lines)


# ----------------------------------------------------------------- the machine


@dataclass(slots=True)
class _Timers:
    advert: float | None = None
    master_down: float | None = None
    preempt: float | None = None
    handover: float | None = None

    def clear(self) -> None:
        self.advert = self.master_down = self.preempt = self.handover = None

    def earliest(self) -> tuple[str, float] | None:
        due = [(when, name) for name, when in (("master_down", self.master_down),
                                               ("preempt", self.preempt),
                                               ("handover", self.handover),
                                               ("advert", self.advert)) if when is not None]
        if not due:
            return None
        when, name = min(due)
        return name, when


class Machine:
    """One VRRP instance's state machine. See the module docstring."""

    def __init__(self, instance: VrrpInstance, address: IPAddress, *,
                 synced: bool = False) -> None:
        self._instance = instance
        self._synced = synced
        self._wants_master = False
        self._address = address
        self._version = instance.version
        self._advert_int = instance.advert_int
        self._base_priority = instance.priority
        self._priority = instance.priority
        self._state = State.INIT
        self._fault = False
        self._fault_reason = ""
        self._handing_over = False
        self._master_adver_int = instance.advert_int
        self._master_address: IPAddress | None = None
        self._master_priority: int | None = None
        self._zero_from: IPAddress | None = None  # the master that sent priority 0
        self._timers = _Timers()
        self._now = float("-inf")
        self.counters = MachineCounters()

    # ------------------------------------------------------------- read-only view

    @property
    def instance(self) -> VrrpInstance:
        return self._instance

    @property
    def state(self) -> State:
        return self._state

    @property
    def synced(self) -> bool:
        """A sync group member: it never takes over on its own (WantMaster)."""
        return self._synced

    @property
    def wants_master(self) -> bool:
        """A sync group member in BACKUP that would be MASTER on its own."""
        return self._wants_master

    @property
    def handing_over(self) -> bool:
        """MASTER after a graceful Shutdown, still holding the addresses."""
        return self._handing_over

    @property
    def holds_addresses(self) -> bool:
        return self._state is State.MASTER

    @property
    def priority(self) -> int:
        """The effective priority we advertise (1-255)."""
        return self._priority

    @property
    def base_priority(self) -> int:
        return self._base_priority

    @property
    def fault(self) -> bool:
        return self._fault

    @property
    def address(self) -> IPAddress:
        return self._address

    @property
    def master_address(self) -> IPAddress | None:
        """The current master's address as far as we know (ours in MASTER)."""
        return self._master_address

    @property
    def master_priority(self) -> int | None:
        """The priority the current master last advertised (None: no master known)."""
        return self._master_priority

    @property
    def master_adver_interval(self) -> float:
        """Master_Adver_Interval: VRRPv3 backups learn it from adverts."""
        return self._master_adver_int

    @property
    def master_down_interval(self) -> float:
        return master_down_interval(self._version, self._priority, self._master_adver_int,
                                    self._instance.down_timer_adverts)

    @property
    def skew_time(self) -> float:
        return skew_time(self._version, self._priority, self._master_adver_int)

    @property
    def next_deadline(self) -> float | None:
        """When to call ``handle(Timeout(), now)`` next (None: no timer running)."""
        earliest = self._timers.earliest()
        return None if earliest is None else earliest[1]

    @property
    def timers(self) -> dict[str, float]:
        """The running timers by name (advert, master_down, preempt, handover)."""
        return {name: getattr(self._timers, name) for name in _Timers.__slots__
                if getattr(self._timers, name) is not None}

    # ------------------------------------------------------------- input

    def handle(self, event: Event, now: float) -> list[Action]:
        """Fire the timers due at ``now``, then process ``event``; the actions to take,
        in order. ``now`` is monotonic seconds; an earlier ``now`` than the last one
        counts as the last one."""
        now = max(now, self._now)
        self._now = now
        out: list[Action] = []
        self._fire_timers(now, out)
        if self._state is State.STOP:
            return out
        match event:
            case Timeout():
                pass
            case Start():
                self._on_start(now, out)
            case AdvertReceived():
                self._on_advert(event, now, out)
            case PriorityChanged():
                self._on_priority(event.priority, now, out)
            case FaultOn():
                self._on_fault_on(event.reason, now, out)
            case FaultOff():
                self._on_fault_off(event.reason, now, out)
            case Shutdown():
                self._on_shutdown(event.graceful, now, out)
            case Force():
                self._on_force(event.state, event.reason, now, out)
            case Reconfigure():
                self._on_reconfigure(event, now, out)
            case _:
                raise TypeError(f"not a VRRP machine event: {event!r}")
        return out

    # ------------------------------------------------------------- timers

    def _fire_timers(self, now: float, out: list[Action]) -> None:
        for _ in range(_MAX_TIMER_ROUNDS):
            earliest = self._timers.earliest()
            if earliest is None or earliest[1] > now:
                return
            name, when = earliest
            setattr(self._timers, name, None)
            if name == "master_down":
                self._take_over(now, f"master {self._zero_from} sent priority 0"
                                if self._zero_from is not None
                                else "no advert within the master-down interval", out)
            elif name == "preempt":
                if (self._master_priority is not None
                        and self._priority > self._master_priority):
                    self._take_over(
                        now, f"preempt delay over, master {self._master_address} has "
                        f"priority {self._master_priority} < {self._priority}", out)
            elif name == "handover":
                self._stop_master(now, "handover: no new master within the master-down "
                                  "interval", out)
            elif name == "advert":
                next_at = when + self._advert_int
                self._timers.advert = next_at if next_at > now else now + self._advert_int
                self._send(0 if self._handing_over else self._priority, out)

    def _down_interval(self, adverts: int | None = None) -> float:
        if adverts is None:
            adverts = self._instance.down_timer_adverts
        return master_down_interval(self._version, self._priority, self._master_adver_int,
                                    adverts)

    def _handover_bound(self) -> float:
        return master_down_interval(self._version, 1, self._advert_int,
                                    self._instance.down_timer_adverts)

    # ------------------------------------------------------------- transitions

    def _send(self, priority: int, out: list[Action]) -> None:
        if priority == PRIORITY_STOP:
            self.counters.priority_zero_sent += 1
        out.append(SendAdvert(priority))

    def _change(self, new: State, reason: str, out: list[Action]) -> None:
        self._wants_master = False
        self._zero_from = None
        old = self._state
        self._state = new
        out.append(StateChanged(old, new, reason))

    def _take_over(self, now: float, reason: str, out: list[Action]) -> None:
        """BACKUP would become MASTER on its own: at once, or in a sync group ask."""
        if not self._synced:
            self._become_master(now, reason, out)
            return
        self._wants_master = True
        self._timers.preempt = None
        self._timers.master_down = now + self._down_interval()
        out.append(WantMaster(reason))

    def _become_master(self, now: float, reason: str, out: list[Action]) -> None:
        self._wants_master = False
        self._timers.clear()
        self._send(self._priority, out)
        out.append(AddAddresses())
        out.append(SendGratuitous(GarpKind.MASTER))
        self._change(State.MASTER, reason, out)
        self._timers.advert = now + self._advert_int
        self._master_adver_int = self._advert_int
        self._master_address = self._address
        self._master_priority = self._priority
        self.counters.became_master += 1

    def _enter_backup(self, now: float, down: float, reason: str, out: list[Action]) -> None:
        self._wants_master = False
        self._timers.clear()
        self._change(State.BACKUP, reason, out)
        self._timers.master_down = now + down

    def _leave_master(self, out: list[Action]) -> None:
        out.append(RemoveAddresses())
        self._handing_over = False
        self.counters.released_master += 1

    def _stop_master(self, now: float, reason: str, out: list[Action]) -> None:
        self._timers.clear()
        self._leave_master(out)
        self._change(State.STOP, reason, out)

    def _on_start(self, now: float, out: list[Action]) -> None:
        if self._state is not State.INIT:
            return
        if self._fault:
            self._timers.clear()
            self._change(State.FAULT, f"fault at start: {self._fault_reason}".rstrip(": "),
                         out)
        elif self._base_priority == PRIORITY_OWNER:
            if self._synced:
                self._enter_backup(now, self._down_interval(), "start (sync group)", out)
                self._take_over(now, "address owner (priority 255)", out)
            else:
                self._become_master(now, "address owner (priority 255)", out)
        elif self._instance.state is InstanceState.MASTER and not self._instance.nopreempt:
            self._enter_backup(now, self._down_interval(1),
                               "start (state MASTER: listening one advert interval)", out)
        else:
            self._enter_backup(now, self._down_interval(), "start", out)

    def _discard(self, advert: AdvertReceived) -> DiscardReason | None:
        if not 0 <= advert.priority <= PRIORITY_OWNER:
            return DiscardReason.INVALID
        if _address_key(advert.source) == _address_key(self._address):
            return DiscardReason.OWN_ADDRESS
        if not advert.addresses_match:
            return DiscardReason.ADDRESS_LIST
        if self._version == 2:
            if abs(advert.interval - self._advert_int) > _INTERVAL_TOLERANCE:
                return DiscardReason.INTERVAL
        elif not advert.interval > 0:
            return DiscardReason.INTERVAL
        return None

    def _on_advert(self, advert: AdvertReceived, now: float, out: list[Action]) -> None:
        if self._state in (State.INIT, State.FAULT):
            out.append(AdvertDiscarded(advert.source, advert.priority,
                                       DiscardReason.NOT_LISTENING))
            return
        reason = self._discard(advert)
        if reason is not None:
            out.append(AdvertDiscarded(advert.source, advert.priority, reason))
            return
        if advert.priority == PRIORITY_STOP:
            self.counters.priority_zero_received += 1
        if self._state is State.BACKUP:
            self._backup_advert(advert, now, out)
        elif self._handing_over:
            if advert.priority != PRIORITY_STOP:
                self._stop_master(now, f"handed over to {advert.source} "
                                  f"(priority {advert.priority})", out)
        else:
            self._master_advert(advert, now, out)

    def _learn_master(self, advert: AdvertReceived) -> None:
        self._zero_from = None
        if self._version == 3:
            self._master_adver_int = advert.interval
        self._master_address = advert.source
        self._master_priority = advert.priority

    def _backup_advert(self, advert: AdvertReceived, now: float, out: list[Action]) -> None:
        if advert.priority == PRIORITY_STOP:
            self._master_priority = None
            self._zero_from = advert.source
            self._timers.preempt = None
            self._timers.master_down = now + self.skew_time
            return
        instance = self._instance
        if instance.nopreempt or advert.priority >= self._priority:
            self._learn_master(advert)
            self._wants_master = False
            self._timers.preempt = None
            self._timers.master_down = now + self._down_interval()
            return
        # a lower-priority master, and we preempt
        if instance.preempt_delay > 0:
            self._learn_master(advert)
            self._timers.master_down = now + self._down_interval()
            if self._timers.preempt is None:
                self._timers.preempt = now + instance.preempt_delay
            return
        self._learn_master(advert)
        self._take_over(now, f"preempting {advert.source}: its priority "
                        f"{advert.priority} < {self._priority}", out)

    def _master_advert(self, advert: AdvertReceived, now: float, out: list[Action]) -> None:
        instance = self._instance
        if advert.priority == PRIORITY_STOP:
            self._send(self._priority, out)
            self._timers.advert = now + self._advert_int
            return
        reason_extra = ""
        if advert.priority == self._priority == PRIORITY_OWNER:
            self._priority = self._base_priority = PRIORITY_OWNER - 1
            reason_extra = " (both address owner: ours is now 254)"
        higher = _address_key(advert.source) > _address_key(self._address)
        if advert.priority > self._priority or (advert.priority == self._priority and higher):
            if instance.higher_prio_send_advert and not reason_extra:
                self._send(self._priority, out)
            self._leave_master(out)
            self._learn_master(advert)
            self._enter_backup(now, self._down_interval(),
                               f"{advert.source} has priority {advert.priority}"
                               + (" and a higher address" if advert.priority == self._priority
                                  else "") + reason_extra, out)
            return
        if not instance.lower_prio_no_advert:
            self._send(self._priority, out)
        if instance.garp_lower_prio_repeat > 0:
            out.append(SendGratuitous(GarpKind.LOWER_PRIORITY))
        out.append(LowerPriorityReceived(advert.source, advert.priority))

    def _on_priority(self, priority: int, now: float, out: list[Action]) -> None:
        if self._base_priority == PRIORITY_OWNER:
            return  # keepalived ignores tracking weights of an address owner
        priority = max(1, min(PRIORITY_MAX_TRACKED, priority))
        if priority == self._priority:
            return
        self._priority = priority
        if self._state is State.MASTER and not self._handing_over:
            self._master_priority = priority
            self._send(priority, out)
            self._timers.advert = now + self._advert_int
        elif self._state is State.BACKUP:
            above = self._master_priority is not None and priority > self._master_priority
            if not above or self._instance.nopreempt:
                self._timers.preempt = None
                if self._master_priority is not None:
                    self._wants_master = False
            elif self._instance.preempt_delay > 0:
                if self._timers.preempt is None:
                    self._timers.preempt = now + self._instance.preempt_delay
            else:
                self._take_over(now, f"priority {priority} above master "
                                f"{self._master_address}'s {self._master_priority}", out)

    def _on_fault_on(self, reason: str, now: float, out: list[Action]) -> None:
        already = self._fault
        self._fault = True
        self._fault_reason = reason
        if already or self._state is State.INIT:
            return
        text = f"fault: {reason}" if reason else "fault"
        if self._state is State.MASTER:
            if self._handing_over:
                self._stop_master(now, f"{text} during handover", out)
                return
            self._send(PRIORITY_STOP, out)
            self._leave_master(out)
        self._timers.clear()
        self._change(State.FAULT, text, out)

    def _on_fault_off(self, reason: str, now: float, out: list[Action]) -> None:
        was = self._fault
        self._fault = False
        self._fault_reason = ""
        if not was or self._state is not State.FAULT:
            return
        text = f"fault cleared: {reason}" if reason else "fault cleared"
        self._master_adver_int = self._advert_int
        self._master_address = self._master_priority = None
        if self._base_priority == PRIORITY_OWNER and self._synced:
            self._enter_backup(now, self._down_interval(), f"{text} (sync group)", out)
            self._take_over(now, f"{text}, address owner", out)
        elif self._base_priority == PRIORITY_OWNER:
            self._become_master(now, f"{text}, address owner", out)
        else:
            self._enter_backup(now, self._down_interval(), text, out)

    def _on_shutdown(self, graceful: bool, now: float, out: list[Action]) -> None:
        if self._state is State.MASTER:
            if self._handing_over:
                self._stop_master(now, "shutdown during handover", out)
            elif graceful:
                self._timers.clear()
                self._handing_over = True
                self._send(PRIORITY_STOP, out)
                self._timers.advert = now + self._advert_int
                self._timers.handover = now + self._handover_bound()
            else:
                self._timers.clear()
                self._send(PRIORITY_STOP, out)
                self._stop_master(now, "shutdown", out)
            return
        self._timers.clear()
        self._change(State.STOP, "shutdown", out)


    def _on_reconfigure(self, event: Reconfigure, now: float, out: list[Action]) -> None:
        old, new = self._instance, event.instance
        if new.version != old.version or new.address_owner != old.address_owner \
                or new.virtual_router_id != old.virtual_router_id:
            raise ValueError(f"({old.name}) a new VRID, version or address-owner status "
                             "needs a new machine")
        self._instance = new
        self._synced = event.synced
        if not event.synced:
            self._wants_master = False
        interval_changed = new.advert_int != self._advert_int
        self._advert_int = new.advert_int
        learned = self._version == 3 and self._state is State.BACKUP \
            and self._master_address is not None
        if self._state is not State.MASTER and not learned:
            self._master_adver_int = new.advert_int
        self._base_priority = new.priority
        if new.nopreempt:
            self._timers.preempt = None
        elif self._timers.preempt is not None and new.preempt_delay != old.preempt_delay:
            self._timers.preempt = now + new.preempt_delay if new.preempt_delay > 0 else now
        priority = (PRIORITY_OWNER if new.address_owner
                    else max(1, min(PRIORITY_MAX_TRACKED, event.priority)))
        if self._state is State.MASTER and not self._handing_over:
            self._master_adver_int = new.advert_int
            advertised = (interval_changed or priority != self._priority
                          or new.virtual_ipaddresses != old.virtual_ipaddresses
                          or new.authentication != old.authentication
                          or new.unicast_peers != old.unicast_peers)
            self._priority = self._master_priority = priority
            if advertised:
                self._send(priority, out)
                self._timers.advert = now + self._advert_int
            return
        if priority != self._priority:
            self._on_priority(priority, now, out)

    def _on_force(self, state: State, reason: str, now: float, out: list[Action]) -> None:
        text = f"sync group: {reason}" if reason else "sync group"
        if state is State.MASTER and self._state is State.BACKUP:
            self._become_master(now, text, out)
        elif state is State.BACKUP and self._state is State.MASTER and not self._handing_over:
            self._leave_master(out)
            self._master_adver_int = self._advert_int
            self._master_address = self._master_priority = None
            self._enter_backup(now, self._down_interval(), text, out)
        elif state not in (State.MASTER, State.BACKUP):
            raise ValueError(f"Force takes MASTER or BACKUP, not {state}")


def _address_key(address: IPAddress) -> int:
    return int(address)
