"""What the VRRP side is configured to do: frozen dataclasses for the VRRP parts of
keepalived.conf(5) (keepalived 2.2.7), with keepalived's defaults.

`VrrpConfig` is the root: the VRRP settings of ``global_defs`` (`VrrpGlobals`), the
``vrrp_script``, ``track_file``, ``vrrp_track_process``, ``vrrp_sync_group`` and
``vrrp_instance`` blocks, the ``static_ipaddress``/``static_routes``/``static_rules``
lists, the ``track_group`` and ``garp_group`` blocks. It is self-contained: the VRRP
process needs nothing else.

Inheritance is resolved when a config is built: a `VrrpInstance` holds *effective*
values (its own setting, else the global one, else keepalived's default), with the
adjustments keepalived makes (strict mode, address owner, VRRPv2 whole-second advert
intervals...). Only what refers to other blocks stays a reference by name: a tracked
script, file or process with ``weight`` None uses the weight of the block it names
(`VrrpConfig.tracked_weight`); and as keepalived does, the tracking weights of members
of a sync group count as 0 unless the group sets ``sync_group_tracking_weight``.

Durations are seconds. ``origin`` is the ``FILE:LINE:COL`` of the statement and
``field_origins`` where each keyword's value was written (both ignored by equality).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface: TypeAlias = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

VRRP_MCAST_GROUP4 = ipaddress.IPv4Address("224.0.0.18")
VRRP_MCAST_GROUP6 = ipaddress.IPv6Address("ff02::12")
UNSPECIFIED = ipaddress.IPv4Address("0.0.0.0")
UNSPECIFIED_HOST = ipaddress.IPv4Interface("0.0.0.0/32")
DEFAULT_ROUTE = ipaddress.IPv4Network("0.0.0.0/0")
PRIORITY_OWNER = 255  # the address owner's priority
PRIORITY_DEFAULT = 100
ADVERT_INT_DEFAULT = 1.0
ADVERT_INT_V3_MAX = 40.95  # 12-bit centiseconds
ADVERT_INT_V2_MAX = 255.0  # 8-bit seconds
AUTH_PASS_MAX = 8  # keepalived keeps the first 8 characters of auth_pass
PREFERRED_LFT_FOREVER = 0xFFFFFFFF  # the kernel's "forever" address lifetime
TRACK_WEIGHT_MAX = 253  # scripts, interfaces, bfd: -253..253
TRACK_FILE_WEIGHT_MAX = 254  # files and processes: -254..254


def _origin():
    return field(default="", compare=False, repr=False)


def _field_origins():
    return field(default=(), compare=False, repr=False)


class AddressFamily(StrEnum):
    INET = "inet"
    INET6 = "inet6"


def family_of(address: IPAddress | IPInterface | IPNetwork) -> AddressFamily:
    return AddressFamily.INET if address.version == 4 else AddressFamily.INET6


class InstanceState(StrEnum):
    """The initial state of an instance (``state``)."""

    MASTER = "MASTER"
    BACKUP = "BACKUP"


class AuthType(StrEnum):
    PASS = "PASS"
    AH = "AH"


class Scope(StrEnum):
    """Address and route scopes that ``ip`` names. A scope is a number 0-255 to the
    kernel: the model holds one of these where the number has a name, else the number
    itself (`scope_of`)."""

    GLOBAL = "global"  # the kernel's "universe"
    SITE = "site"
    LINK = "link"
    HOST = "host"
    NOWHERE = "nowhere"


SCOPE_NUMBERS: dict[Scope, int] = {Scope.GLOBAL: 0, Scope.SITE: 200, Scope.LINK: 253,
                                   Scope.HOST: 254, Scope.NOWHERE: 255}
SCOPE_MAX = 255
_SCOPES_BY_NUMBER = {number: scope for scope, number in SCOPE_NUMBERS.items()}


def scope_of(value: Scope | int) -> Scope | int:
    """The model's one form of a scope: its name when it has one (200 is `Scope.SITE`),
    else its number."""
    if isinstance(value, Scope):
        return value
    return _SCOPES_BY_NUMBER.get(value, value)


def scope_number(value: Scope | int) -> int:
    """The kernel's number for a scope."""
    return SCOPE_NUMBERS[value] if isinstance(value, Scope) else value


class RouteType(StrEnum):
    UNICAST = "unicast"
    LOCAL = "local"
    BROADCAST = "broadcast"
    ANYCAST = "anycast"
    MULTICAST = "multicast"
    BLACKHOLE = "blackhole"
    UNREACHABLE = "unreachable"
    PROHIBIT = "prohibit"
    THROW = "throw"


class RuleAction(StrEnum):
    TABLE = "table"  # look up a routing table (the usual rule)
    GOTO = "goto"
    NOP = "nop"
    BLACKHOLE = "blackhole"
    UNREACHABLE = "unreachable"
    PROHIBIT = "prohibit"


class ParamMatch(StrEnum):
    """How a tracked process's parameters must match (``param_match``)."""

    EXACT = "exact"
    INITIAL = "initial"  # the last parameter may be longer than configured
    PARTIAL = "partial"  # the first n parameters match exactly


class RxBufsPolicy(StrEnum):
    """``vrrp_rx_bufs_policy``: how VRRP sockets' receive buffers are sized."""

    MTU = "MTU"
    ADVERT = "ADVERT"
    SIZE = "SIZE"  # a fixed size: vrrp_rx_bufs_size


class OldUnicastChecksum(StrEnum):
    """``old_unicast_checksum``: the VRRPv3 unicast checksum of keepalived < 1.3.6."""

    AUTO = "auto"  # not set: detect an old-style peer
    ALWAYS = "always"  # set: always use the old checksum
    NEVER = "never"  # never detect nor use it


class IpvlanMode(StrEnum):
    BRIDGE = "bridge"
    PRIVATE = "private"
    VEPA = "vepa"


# ----------------------------------------------------------------- shared pieces


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldOrigin:
    """Where the value of one keyword of a statement was written."""

    name: str = ""
    origin: str = ""


def origin_of(item: object, *names: str) -> str:
    """Where the first of ``names`` that ``item`` records was written, else where the
    item itself was (``item`` is any model object with ``origin``)."""
    for name in names:
        for entry in getattr(item, "field_origins", ()):
            if entry.name == name:
                return entry.origin
    return getattr(item, "origin", "")


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifyScript:
    """A program keepalived runs (notify_master, vrrp_notify_fifo_script...).

    ``command`` is the program and its arguments, split as keepalived splits them;
    user/group None: global_defs script_user (and the user's group).
    """

    command: tuple[str, ...] = ()
    user: str | None = None
    group: str | None = None
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifyFifo:
    """A FIFO that state changes are written to (``notify_fifo``, ``vrrp_notify_fifo``)."""

    path: str = ""
    user: str | None = None
    group: str | None = None
    origin: str = _origin()


# ----------------------------------------------------------------- global_defs


@dataclass(frozen=True, slots=True, kw_only=True)
class VrrpGlobals:
    """The VRRP settings of ``global_defs``.

    Some keywords are shared with the daemon's own global settings (script_user,
    notify_fifo, dynamic_interfaces, default_interface, smtp_alert, vrrp_priority...):
    they are here too because instances and the VRRP process depend on them.
    """

    vrrp_mcast_group4: ipaddress.IPv4Address = VRRP_MCAST_GROUP4
    vrrp_mcast_group6: ipaddress.IPv6Address = VRRP_MCAST_GROUP6
    vrrp_version: int = 2  # IPv6 instances always use 3

    # gratuitous ARP / unsolicited NA (the instances' defaults)
    vrrp_garp_master_delay: float = 5.0  # 0: no second burst after becoming master
    vrrp_garp_master_repeat: int = 5
    vrrp_garp_master_refresh: float = 0.0  # 0: no periodic refresh while master
    vrrp_garp_master_refresh_repeat: int = 1
    vrrp_garp_lower_prio_delay: float = 5.0  # resolved: vrrp_garp_master_delay if unset
    vrrp_garp_lower_prio_repeat: int = 5  # resolved: vrrp_garp_master_repeat if unset
    vrrp_garp_interval: float = 0.0  # between GARPs on one interface
    vrrp_gna_interval: float = 0.0  # between NAs on one interface
    vrrp_min_garp: bool = False  # already applied to the values above
    vrrp_garp_extra_if: float = 0.0  # 0: no periodic GARP on other interfaces
    vrrp_garp_extra_if_all: bool = False  # on every interface, not just VMACs
    vrrp_down_timer_adverts: int = 3
    vrrp_lower_prio_no_advert: bool = False
    vrrp_higher_prio_send_advert: bool = False

    # firewall (no_accept mode, VMAC IGMP/MLD filtering)
    vrrp_iptables_inchain: str | None = None  # None: iptables not configured
    vrrp_iptables_outchain: str | None = None
    vrrp_ipsets: tuple[str, ...] = ()  # address, address6, address_iface6, igmp, mld
    nftables: str | None = None  # table name; None: nftables not configured
    nftables_priority: int = -1
    nftables_counters: bool = False
    nftables_ifindex: bool = False
    disable_local_igmp: bool = False

    # protocol
    vrrp_check_unicast_src: bool = False
    vrrp_skip_check_adv_addr: bool = False
    vrrp_strict: bool = False
    vrrp_startup_delay: float = 0.0
    log_unknown_vrids: bool = False
    vmac_prefix: str = "vrrp"
    vmac_addr_prefix: str | None = None  # None: vmac_prefix

    # the VRRP process
    vrrp_priority: int = 0  # nice value
    vrrp_no_swap: bool = False
    vrrp_rt_priority: int | None = None  # SCHED_RR priority
    vrrp_cpu_affinity: tuple[int, ...] = ()
    vrrp_rlimit_rttime: float = 0.01
    vrrp_netlink_cmd_rcv_bufs: int | None = None
    vrrp_netlink_cmd_rcv_bufs_force: bool = False
    vrrp_netlink_monitor_rcv_bufs: int | None = None
    vrrp_netlink_monitor_rcv_bufs_force: bool = False
    process_monitor_rcv_bufs: int | None = None  # vrrp_track_process's netlink socket
    process_monitor_rcv_bufs_force: bool = False
    vrrp_rx_bufs_policy: RxBufsPolicy | None = None  # None: the system default
    vrrp_rx_bufs_size: int | None = None  # with policy SIZE
    vrrp_rx_bufs_multiplier: int = 3

    # notification
    notify_fifo: NotifyFifo | None = None
    notify_fifo_script: NotifyScript | None = None
    vrrp_notify_fifo: NotifyFifo | None = None
    vrrp_notify_fifo_script: NotifyScript | None = None
    vrrp_notify_priority_changes: bool = False
    fifo_write_vrrp_states_on_reload: bool = False
    smtp_alert: bool | None = None  # None: not set
    smtp_alert_vrrp: bool | None = None

    # scripts and interfaces
    script_user: str | None = None  # None: keepalived_script if it exists, else root
    script_group: str | None = None
    enable_script_security: bool = False
    dynamic_interfaces: bool = False
    dynamic_interfaces_allow_if_changes: bool = False
    default_interface: str = "eth0"  # of static addresses without dev

    field_origins: tuple[FieldOrigin, ...] = _field_origins()
    origin: str = _origin()

    def mcast_group(self, family: AddressFamily) -> IPAddress:
        return self.vrrp_mcast_group4 if family is AddressFamily.INET else self.vrrp_mcast_group6

    @property
    def effective_smtp_alert(self) -> bool:
        """An instance's or sync group's smtp_alert when it sets none."""
        for value in (self.smtp_alert_vrrp, self.smtp_alert):
            if value is not None:
                return value
        return False


# ----------------------------------------------------------------- tracked objects


@dataclass(frozen=True, slots=True, kw_only=True)
class VrrpScript:
    """``vrrp_script NAME``: a program run every ``interval``; its exit status (0: up)
    moves the priority of the instances tracking it by ``weight``, or puts them in
    FAULT (weight 0) after ``fall`` failures until ``rise`` successes."""

    name: str = ""
    script: tuple[str, ...] = ()  # the program and its arguments
    interval: float = 1.0  # whole seconds
    timeout: float = 1.0  # resolved: interval when not set
    weight: int = 0
    weight_reverse: bool = False
    rise: int = 1
    fall: int = 1
    user: str | None = None  # None: global script_user
    group: str | None = None
    init_fail: bool = False  # start as failed
    field_origins: tuple[FieldOrigin, ...] = _field_origins()
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackFile:
    """``track_file NAME`` (``vrrp_track_file``): a file holding a number; weight 0:
    non-zero is a failure; otherwise the number times the weight moves priorities."""

    name: str = ""
    file: str = ""
    weight: int = 1
    weight_reverse: bool = False
    init_file: bool = False  # create the file at startup if it is missing
    init_value: int = 0
    init_overwrite: bool = False  # write init_value even if the file exists
    field_origins: tuple[FieldOrigin, ...] = _field_origins()
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackProcess:
    """``vrrp_track_process NAME``: up while between quorum and quorum_max matching
    processes run."""

    name: str = ""
    process: str = ""  # the command name (or path) to match
    parameters: tuple[str, ...] = ()
    param_match: ParamMatch | None = None  # None: parameters not matched
    full_command: bool = False  # match /proc/PID/cmdline instead of the name
    weight: int = 0  # (keepalived's man page says 1; keepalived itself uses 0)
    weight_reverse: bool = False
    quorum: int = 1
    quorum_max: int | None = None  # None: no maximum
    fork_delay: float = 0.0
    terminate_delay: float = 0.0
    field_origins: tuple[FieldOrigin, ...] = _field_origins()
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackedInterface:
    """An entry of ``track_interface``: weight 0 means FAULT while the link is down."""

    name: str = ""
    weight: int = 0
    reverse: bool = False
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackedScript:
    """An entry of ``track_script``; weight/reverse None: the vrrp_script's."""

    name: str = ""
    weight: int | None = None
    reverse: bool | None = None
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackedFile:
    """An entry of ``track_file`` in an instance or sync group; None: the file's."""

    name: str = ""
    weight: int | None = None
    reverse: bool | None = None
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackedProcess:
    """An entry of ``track_process``; None: the vrrp_track_process's."""

    name: str = ""
    weight: int | None = None
    reverse: bool | None = None
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackedBfd:
    """An entry of ``track_bfd`` (a bfd_instance name); None: the bfd_instance's."""

    name: str = ""
    weight: int | None = None
    reverse: bool | None = None
    origin: str = _origin()


# ----------------------------------------------------------------- addresses, routes, rules


@dataclass(frozen=True, slots=True, kw_only=True)
class VirtualAddress:
    """An entry of ``virtual_ipaddress``, ``virtual_ipaddress_excluded`` or
    ``static_ipaddress`` (``ip address add`` options plus keepalived's own).

    ``dev`` None: the instance's interface (its VMAC with use_vmac), or for a static
    address global_defs default_interface.
    """

    address: IPInterface = UNSPECIFIED_HOST
    broadcast: ipaddress.IPv4Address | None = None  # "brd +"/"brd -" already resolved
    dev: str | None = None
    scope: Scope | int = Scope.GLOBAL  # see scope_of
    label: str | None = None
    peer: IPInterface | None = None
    home: bool = False
    nodad: bool = False  # "-nodad"
    mngtmpaddr: bool = False
    noprefixroute: bool = False
    autojoin: bool = False
    preferred_lft: int | None = None  # None: the kernel's; 0 deprecates; FOREVER
    no_track: bool = False  # do not leave MASTER if the address disappears
    use_vmac: bool = False
    track_group: str | None = None  # static addresses only
    origin: str = _origin()

    def __post_init__(self) -> None:
        object.__setattr__(self, "scope", scope_of(self.scope))

    @property
    def family(self) -> AddressFamily:
        return family_of(self.address)


@dataclass(frozen=True, slots=True, kw_only=True)
class NextHop:
    """A ``nexthop`` of a multipath route (or a deprecated ``or`` gateway)."""

    via: IPAddress | None = None
    dev: str | None = None
    weight: int = 1
    onlink: bool = False
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteMetric:
    """A route attribute kept as written (``mtu 1400``, ``ssthresh lock 107``,
    ``congctl cubic``, ``features ecn``...)."""

    name: str = ""
    value: str = ""
    lock: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """An entry of ``virtual_routes`` or ``static_routes`` (``ip route add`` syntax)."""

    type: RouteType = RouteType.UNICAST
    destination: IPNetwork = DEFAULT_ROUTE
    source: IPAddress | None = None  # "src"
    via: IPAddress | None = None  # "via" (deprecated "gw"); may be IPv6 for IPv4 routes
    dev: str | None = None
    scope: Scope | int | None = None  # see scope_of
    table: int | None = None  # None: main
    metric: int | None = None  # "metric", "priority", "preference"
    protocol: str | None = None
    tos: int | None = None
    realms: str | None = None
    onlink: bool = False
    nexthops: tuple[NextHop, ...] = ()
    metrics: tuple[RouteMetric, ...] = ()
    encap: tuple[str, ...] = ()  # "encap TYPE ..." as written
    vrf: str | None = None
    append: bool = False  # "ip route append" rather than prepend
    no_track: bool = False
    track_group: str | None = None  # static routes only
    origin: str = _origin()

    def __post_init__(self) -> None:
        if self.scope is not None:
            object.__setattr__(self, "scope", scope_of(self.scope))

    @property
    def family(self) -> AddressFamily:
        return family_of(self.destination)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """An entry of ``virtual_rules`` or ``static_rules`` (``ip rule add`` syntax).

    ``family`` is the rule's (from its addresses, else ``inet6``, else IPv4)."""

    family: AddressFamily = AddressFamily.INET
    action: RuleAction = RuleAction.TABLE
    invert: bool = False  # "not"
    source: IPNetwork | None = None  # "from"; None: all
    destination: IPNetwork | None = None  # "to"; None: all
    table: int | None = None  # "table"/"lookup"
    preference: int | None = None  # None: keepalived picks one (and warns)
    iif: str | None = None
    oif: str | None = None
    tos: int | None = None
    fwmark: int | None = None
    fwmask: int | None = None
    realms: str | None = None
    goto: int | None = None
    suppress_prefixlength: int | None = None
    suppress_ifgroup: str | None = None
    uidrange: tuple[int, ...] = ()  # (first, last)
    l3mdev: bool = False
    protocol: str | None = None
    ip_proto: str | None = None
    sport: tuple[int, ...] = ()  # (first, last)
    dport: tuple[int, ...] = ()
    no_track: bool = False
    track_group: str | None = None  # static rules only
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class StaticTrackGroup:
    """``track_group NAME``: the instances that go to FAULT when a static address,
    route or rule naming this group cannot be restored."""

    name: str = ""
    group: tuple[str, ...] = ()  # instance names
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class GarpGroup:
    """``garp_group``: pacing of gratuitous ARPs / NAs on one or several interfaces."""

    garp_interval: float | None = None  # None: global vrrp_garp_interval
    gna_interval: float | None = None  # None: global vrrp_gna_interval
    interface: str | None = None
    interfaces: tuple[str, ...] = ()  # delays aggregated across these
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class UnicastPeer:
    address: IPAddress = UNSPECIFIED
    min_ttl: int = 0
    max_ttl: int = 255
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class Authentication:
    """VRRPv2 authentication (removed from the protocol by RFC 3768)."""

    auth_type: AuthType = AuthType.PASS
    auth_pass: str = ""  # at most 8 characters
    origin: str = _origin()


# ----------------------------------------------------------------- sync groups, instances


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncGroup:
    """``vrrp_sync_group NAME``: instances that change state together."""

    name: str = ""
    group: tuple[str, ...] = ()  # instance names
    track_interfaces: tuple[TrackedInterface, ...] = ()
    track_scripts: tuple[TrackedScript, ...] = ()
    track_files: tuple[TrackedFile, ...] = ()
    track_processes: tuple[TrackedProcess, ...] = ()
    track_bfds: tuple[TrackedBfd, ...] = ()
    notify_master: NotifyScript | None = None
    notify_backup: NotifyScript | None = None
    notify_fault: NotifyScript | None = None
    notify_stop: NotifyScript | None = None
    notify: NotifyScript | None = None  # called with GROUP NAME STATE PRIORITY
    notify_priority_changes: bool = False  # resolved from the global setting
    smtp_alert: bool = False  # resolved from smtp_alert_vrrp / smtp_alert
    sync_group_tracking_weight: bool = False  # (deprecated global_tracking sets it)
    field_origins: tuple[FieldOrigin, ...] = _field_origins()
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class VrrpInstance:
    """``vrrp_instance NAME``: one virtual router, with effective values."""

    name: str = ""
    state: InstanceState = InstanceState.BACKUP  # resolved: MASTER for an address owner
    interface: str | None = None  # None: only with unicast peers
    vrf: str | None = None
    family: AddressFamily = AddressFamily.INET  # from the VIPs, peers or source address
    dont_track_primary: bool = False
    linkbeat_use_polling: bool = False  # deprecated here

    # VMAC / ipvlan
    use_vmac: bool = False
    vmac_interface: str | None = None  # None: chosen at run time (vrrp.VRID)
    vmac_address: str | None = None  # None: the RFC 5798 MAC
    use_vmac_addr: bool = False
    vmac_xmit_base: bool = False
    use_ipvlan: bool = False
    ipvlan_interface: str | None = None
    ipvlan_address: IPInterface | None = None
    ipvlan_mode: IpvlanMode = IpvlanMode.BRIDGE
    native_ipv6: bool = False  # deprecated

    # protocol
    virtual_router_id: int = 0  # 0: not set (required)
    priority: int = PRIORITY_DEFAULT  # resolved: 255 for state MASTER with no priority
    advert_int: float = ADVERT_INT_DEFAULT
    version: int = 2  # resolved: global vrrp_version; 3 for IPv6 unless set
    nopreempt: bool = False
    preempt_delay: float = 0.0
    authentication: Authentication | None = None
    accept: bool = True  # resolved: not strict_mode
    strict_mode: bool = False  # resolved: global vrrp_strict
    skip_check_adv_addr: bool = False
    down_timer_adverts: int = 3
    lower_prio_no_advert: bool = False
    higher_prio_send_advert: bool = False
    old_unicast_checksum: OldUnicastChecksum = OldUnicastChecksum.AUTO
    debug: int = 0
    kernel_rx_buf_size: int | None = None

    # addresses
    unicast_src_ip: IPAddress | None = None  # (mcast_src_ip is the same setting)
    track_src_ip: bool = False
    mcast_dst_ip: IPAddress = VRRP_MCAST_GROUP4  # resolved: the global group of the family
    unicast_peers: tuple[UnicastPeer, ...] = ()
    unicast_ttl: int | None = None
    unicast_fault_no_peer: bool = False
    check_unicast_src: bool = False  # resolved: global, or any peer with min/max_ttl
    virtual_ipaddresses: tuple[VirtualAddress, ...] = ()
    virtual_ipaddresses_excluded: tuple[VirtualAddress, ...] = ()
    promote_secondaries: bool = False
    virtual_routes: tuple[Route, ...] = ()
    virtual_rules: tuple[Rule, ...] = ()

    # tracking
    track_interfaces: tuple[TrackedInterface, ...] = ()
    track_scripts: tuple[TrackedScript, ...] = ()
    track_files: tuple[TrackedFile, ...] = ()
    track_processes: tuple[TrackedProcess, ...] = ()
    track_bfds: tuple[TrackedBfd, ...] = ()

    # gratuitous ARP (resolved from the globals)
    garp_master_delay: float = 5.0
    garp_master_repeat: int = 5
    garp_master_refresh: float = 0.0
    garp_master_refresh_repeat: int = 1
    garp_lower_prio_delay: float = 5.0
    garp_lower_prio_repeat: int = 5
    garp_extra_if: float = 0.0
    garp_extra_if_all: bool = False

    # notification
    notify_master: NotifyScript | None = None
    notify_backup: NotifyScript | None = None
    notify_fault: NotifyScript | None = None
    notify_stop: NotifyScript | None = None
    notify_deleted: bool = False  # send DELETED rather than FAULT when removed on reload
    notify_deleted_script: NotifyScript | None = None
    notify_master_rx_lower_pri: NotifyScript | None = None
    notify: NotifyScript | None = None  # called with INSTANCE NAME STATE PRIORITY
    notify_priority_changes: bool = False
    smtp_alert: bool = False

    lvs_sync_daemon_interface: str | None = None  # deprecated: global lvs_sync_daemon
    field_origins: tuple[FieldOrigin, ...] = _field_origins()
    origin: str = _origin()

    @property
    def address_owner(self) -> bool:
        return self.priority == PRIORITY_OWNER

    @property
    def unicast(self) -> bool:
        return bool(self.unicast_peers)


# ----------------------------------------------------------------- the root


@dataclass(frozen=True, slots=True, kw_only=True)
class VrrpConfig:
    """Everything the VRRP process runs from (see the module docstring)."""

    globals: VrrpGlobals = VrrpGlobals()
    scripts: tuple[VrrpScript, ...] = ()
    track_files: tuple[TrackFile, ...] = ()
    track_processes: tuple[TrackProcess, ...] = ()
    sync_groups: tuple[SyncGroup, ...] = ()
    instances: tuple[VrrpInstance, ...] = ()
    static_addresses: tuple[VirtualAddress, ...] = ()
    static_routes: tuple[Route, ...] = ()
    static_rules: tuple[Rule, ...] = ()
    track_groups: tuple[StaticTrackGroup, ...] = ()
    garp_groups: tuple[GarpGroup, ...] = ()

    def instance(self, name: str) -> VrrpInstance | None:
        return next((i for i in self.instances if i.name == name), None)

    def script(self, name: str) -> VrrpScript | None:
        return next((s for s in self.scripts if s.name == name), None)

    def track_file(self, name: str) -> TrackFile | None:
        return next((f for f in self.track_files if f.name == name), None)

    def track_process(self, name: str) -> TrackProcess | None:
        return next((p for p in self.track_processes if p.name == name), None)

    def sync_group_of(self, instance: str) -> SyncGroup | None:
        """The (first) sync group that lists ``instance``."""
        return next((g for g in self.sync_groups if instance in g.group), None)

    def tracked_weight(self, tracked: TrackedScript | TrackedFile | TrackedProcess,
                       instance: str | None = None) -> tuple[int, bool]:
        """(weight, reverse) of a tracking entry, as keepalived applies it: the entry's
        own, else the tracked block's; 0 for an entry of an instance in a sync group
        without sync_group_tracking_weight. (0, False) when the block is not defined."""
        if instance is not None:
            group = self.sync_group_of(instance)
            if group is not None and not group.sync_group_tracking_weight:
                return 0, False
        block: VrrpScript | TrackFile | TrackProcess | None
        if isinstance(tracked, TrackedScript):
            block = self.script(tracked.name)
        elif isinstance(tracked, TrackedFile):
            block = self.track_file(tracked.name)
        else:
            block = self.track_process(tracked.name)
        base_weight = block.weight if block is not None else 0
        base_reverse = block.weight_reverse if block is not None else False
        weight = tracked.weight if tracked.weight is not None else base_weight
        reverse = tracked.reverse if tracked.reverse is not None else base_reverse
        return weight, reverse
