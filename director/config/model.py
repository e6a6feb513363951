"""The director's configuration: global settings, LVS virtual servers and the VRRP root.

Everything here is frozen data (see the model conventions in ARCHITECTURE.md): both the
keepalived.conf builders and the YAML loader produce a `Config`, and the rest of the
director reads nothing else.

Addressing of a virtual server: exactly one of ``address`` (with ``port``), ``fwmark``
or ``group`` is set, as in ``virtual_server IP PORT``, ``virtual_server fwmark N`` and
``virtual_server group NAME``; `VirtualServer.addressing` names the one in use.

Inheritance is resolved when a config is built: a `RealServer` holds the *effective*
values (its own setting, else its virtual server's, else keepalived's default), and its
checkers were built with those values as their defaults. Only settings that keepalived
resolves later, per checker kind, stay ``None`` (``retry``, ``delay_before_retry``,
``warmup``).

Where a field's value came from is kept in ``field_origins`` (keyword name ->
``FILE:LINE:COL`` of the value), so that validation can point at the very line.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from checkers.spec import CheckerSpec

# What the VRRP model defines serves the whole config (director may import vrrp, not
# the other way): one address-family enum, one record of where a value was written,
# one notify FIFO.
from vrrp.spec import (
    UNSPECIFIED,
    AddressFamily,
    FieldOrigin,
    IPAddress,
    NotifyFifo,
    VrrpConfig,
    family_of,
)
from vrrp.spec import origin_of as origin_of

IPFamily = AddressFamily  # the name the LVS code uses
Fifo = NotifyFifo  # the name global_defs code uses

PERSISTENCE_TIMEOUT_DEFAULT = 360.0  # "persistence_timeout" alone: IPVS's 6 minutes
DEFAULT_SCHEDULER = "wlc"  # keepalived's (and ipvsadm's) default


def _origin() -> str:
    return field(default="", compare=False, repr=False)


class Protocol(StrEnum):
    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


class SchedulerFlag(StrEnum):
    """Scheduler flags (``ipvsadm -b``). sh-/mh- names are the sh and mh schedulers'
    names for flag-1 (fallback) and flag-2 (port)."""

    FLAG_1 = "flag-1"
    FLAG_2 = "flag-2"
    FLAG_3 = "flag-3"
    SH_PORT = "sh-port"
    SH_FALLBACK = "sh-fallback"
    MH_PORT = "mh-port"
    MH_FALLBACK = "mh-fallback"


class Forwarding(StrEnum):
    NAT = "NAT"
    DR = "DR"
    TUN = "TUN"


class TunnelType(StrEnum):
    IPIP = "ipip"
    GUE = "gue"
    GRE = "gre"


class TunnelChecksum(StrEnum):
    NOCSUM = "nocsum"
    CSUM = "csum"
    REMCSUM = "remcsum"


class FlushOnStop(StrEnum):
    OFF = "off"
    ALL = "all"  # lvs_flush_on_stop: flush the whole IPVS table
    VS = "vs"  # lvs_flush_on_stop VS: delete our virtual servers only


@dataclass(frozen=True, slots=True, kw_only=True)
class Script:
    """A command keepalived runs (notify_up, quorum_up, startup_script, ...): the
    command line as written and the optional user and group to run it as.
    (`vrrp.spec.NotifyScript` holds the VRRP side's scripts already split into argv.)"""

    command: str = ""
    user: str | None = None
    group: str | None = None
    origin: str = _origin()


# --- global_defs -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpServer:
    host: str = ""  # an IP address or a domain name
    port: int = 25
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class LvsTimeouts:
    """IPVS connection timeouts; None leaves the kernel's value unchanged."""

    tcp: float | None = None
    tcpfin: float | None = None
    udp: float | None = None
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class LvsSyncDaemon:
    """The IPVS connection-synchronisation daemon (``lvs_sync_daemon``)."""

    interface: str = ""
    vrrp_instance: str | None = None  # None: run master and backup daemons all along
    sync_id: int | None = None  # None: the VRID of vrrp_instance, or 0
    maxlen: int | None = None
    port: int = 8848
    ttl: int | None = None
    group: IPAddress | None = None  # None: the kernel's 224.0.0.81
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessTuning:
    """Scheduling of one child process (vrrp_priority, checker_rt_priority, ...)."""

    priority: int = 0  # nice value, -20..19
    no_swap: bool = False
    rt_priority: int | None = None  # 1..99: SCHED_RR at that priority
    cpu_affinity: tuple[int, ...] = ()
    rlimit_rttime: float = 0.01  # seconds of CPU between blocking calls under SCHED_RR


@dataclass(frozen=True, slots=True, kw_only=True)
class GlobalDefs:
    """``global_defs`` and the top-level daemon statements (net_namespace, instance, ...).

    The VRRP settings of the same block are in ``Config.vrrp.globals`` (`VrrpGlobals`,
    built by the VRRP builder). Settings both sides need (script_user, notify_fifo,
    smtp_alert, vrrp_priority, ...) are in both.
    """

    # identity and mail
    router_id: str | None = None  # None: the local host name
    notification_email: tuple[str, ...] = ()
    notification_email_from: str | None = None  # None: keepalived@<host name>
    smtp_server: SmtpServer | None = None
    smtp_helo_name: str | None = None  # None: the local host name
    smtp_connect_timeout: float = 30.0
    smtp_alert: bool | None = None  # None: not set (each alert keeps its own default)
    smtp_alert_vrrp: bool | None = None
    smtp_alert_checker: bool | None = None
    checker_log_all_failures: bool = False
    no_email_faults: bool = False
    no_checker_emails: bool = False
    rs_init_notifies: bool = False

    # processes
    process_names: bool = False
    process_name: str | None = None
    vrrp_process_name: str | None = None
    checker_process_name: str | None = None
    bfd_process_name: str | None = None
    vrrp_process: ProcessTuning = ProcessTuning()
    checker_process: ProcessTuning = ProcessTuning()
    bfd_process: ProcessTuning = ProcessTuning()
    max_auto_priority: int = 0  # 0: no automatic priority increase; -1: no warning
    min_auto_priority_delay: float = 1.0
    child_wait_time: float = 5.0
    startup_script: Script | None = None
    startup_script_timeout: float = 10.0
    shutdown_script: Script | None = None
    shutdown_script_timeout: float = 10.0
    umask: int | None = None  # None: IWGRP | IWOTH
    random_seed: int | None = None

    # scripts and notification FIFOs
    script_user: str | None = None  # None: keepalived_script if it exists, else root
    script_group: str | None = None
    enable_script_security: bool = False
    notify_fifo: NotifyFifo | None = None
    notify_fifo_script: Script | None = None
    lvs_notify_fifo: NotifyFifo | None = None
    lvs_notify_fifo_script: Script | None = None

    # namespaces, instances, files
    net_namespace: str | None = None
    net_namespace_ipvs: str | None = None  # "": IPVS in the default namespace
    namespace_with_ipsets: bool = False
    instance: str | None = None
    use_pid_dir: bool = False
    linkbeat_use_polling: bool = False
    dynamic_interfaces: bool = False
    dynamic_interfaces_allow_if_changes: bool = False
    default_interface: str = "eth0"
    tmp_config_directory: str | None = None
    config_save_dir: str | None = None
    data_use_instance: bool = False
    reload_check_config: bool = False
    reload_check_config_log: str | None = None
    reload_time_file: str | None = None
    reload_repeat: bool = False
    reload_file: str | None = None  # "keepalived.reload" (in the pid directory) if unnamed
    include_check: tuple[str, ...] = ()  # as written; () means not set

    # IPVS
    lvs_timeouts: LvsTimeouts | None = None
    lvs_flush: bool = False
    lvs_flush_on_stop: FlushOnStop = FlushOnStop.OFF
    lvs_sync_daemon: LvsSyncDaemon | None = None
    lvs_netlink_cmd_rcv_bufs: int | None = None
    lvs_netlink_cmd_rcv_bufs_force: bool = False
    lvs_netlink_monitor_rcv_bufs: int | None = None
    lvs_netlink_monitor_rcv_bufs_force: bool = False
    process_monitor_rcv_bufs: int | None = None
    process_monitor_rcv_bufs_force: bool = False
    nftables_ipvs: str | None = None  # table name; None: nftables not used for IPVS
    nftables_ipvs_priority: int = -1
    nftables_ipvs_start_fwmark: int = 1000
    nftables_counters: bool = False

    # SNMP and D-Bus
    snmp_socket: str | None = None  # None: unix:/var/agentx/master
    enable_traps: bool = False
    enable_snmp_vrrp: bool = False
    enable_snmp_checker: bool = False
    enable_snmp_rfc: bool = False
    enable_snmp_rfcv2: bool = False
    enable_snmp_rfcv3: bool = False
    enable_dbus: bool = False
    dbus_service_name: str | None = None  # None: org.keepalived.Vrrp1

    field_origins: tuple[FieldOrigin, ...] = field(default=(), compare=False, repr=False)
    origin: str = _origin()


# --- LVS ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LvsMethod:
    """A forwarding method (``lvs_method NAT|DR|TUN [type ipip|gue port N|gre]
    [nocsum|csum|remcsum]``)."""

    forwarding: Forwarding = Forwarding.NAT
    tunnel_type: TunnelType = TunnelType.IPIP
    tunnel_port: int = 0  # GUE only
    tunnel_checksum: TunnelChecksum = TunnelChecksum.NOCSUM
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class AddressRange:
    """``IP PORT``, ``IP-LAST PORT``, ``IP-IP PORT`` or ``NET/LEN PORT`` in a group;
    first == last for a single address. Port 0: all ports (persistent services)."""

    first: IPAddress = UNSPECIFIED
    last: IPAddress = UNSPECIFIED
    port: int = 0
    origin: str = _origin()

    @property
    def family(self) -> AddressFamily:
        return family_of(self.first)

    @property
    def size(self) -> int:
        """How many addresses the range holds."""
        return int(self.last) - int(self.first) + 1


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupFwmark:
    """``fwmark N [inet|inet6]`` in a group."""

    fwmark: int = 0
    ip_family: AddressFamily | None = None
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class VirtualServerGroup:
    name: str = ""
    address_ranges: tuple[AddressRange, ...] = ()
    fwmarks: tuple[GroupFwmark, ...] = ()
    origin: str = _origin()

    @property
    def families(self) -> frozenset[AddressFamily]:
        found = {r.family for r in self.address_ranges}
        found.update(f.ip_family for f in self.fwmarks if f.ip_family is not None)
        return frozenset(found)


@dataclass(frozen=True, slots=True, kw_only=True)
class SorryServer:
    """Put in place of the real servers while the quorum is lost."""

    address: IPAddress = UNSPECIFIED
    port: int = 0  # 0: the service's port
    lvs_method: LvsMethod = LvsMethod()  # effective: sorry_server_lvs_method, else the VS's
    inhibit: bool = False  # sorry_server_inhibit
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class RealServer:
    address: IPAddress = UNSPECIFIED
    port: int = 0  # as written, or the service's port for an IP-addressed service; 0: none
    weight: int = 1
    lvs_method: LvsMethod = LvsMethod()  # effective
    notify_up: Script | None = None
    notify_down: Script | None = None
    uthreshold: int = 0  # 0: no upper connection limit
    lthreshold: int = 0
    inhibit_on_failure: bool = False  # effective
    alpha: bool = False  # effective
    smtp_alert: bool = True  # effective (keepalived's default for real servers is on)
    virtualhost: str | None = None  # effective
    snmp_name: str | None = None
    # checker settings, effective (the checkers below were built with them)
    delay_loop: float = 60.0
    connect_timeout: float = 5.0
    retry: int | None = None  # None: the default of each checker kind
    delay_before_retry: float | None = None  # None: the default of each checker kind
    warmup: float | None = None  # None: up to delay_loop
    checkers: tuple[CheckerSpec, ...] = ()
    field_origins: tuple[FieldOrigin, ...] = field(default=(), compare=False, repr=False)
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class VirtualServer:
    # addressing: exactly one of address / fwmark / group
    address: IPAddress | None = None
    port: int = 0  # with address; 0: all ports (persistent services only)
    fwmark: int | None = None
    group: str | None = None

    ip_family: AddressFamily | None = None  # as written (for fwmark and group services)
    protocol: Protocol | None = None  # None: not set (keepalived then uses UDP)
    lvs_sched: str = DEFAULT_SCHEDULER
    sched_flags: tuple[SchedulerFlag, ...] = ()
    ops: bool = False  # one-packet scheduling (UDP)
    hashed: bool = False
    lvs_method: LvsMethod = LvsMethod()
    persistence_engine: str | None = None
    persistence_timeout: float | None = None  # None: not persistent; whole seconds
    persistence_granularity: int | None = None  # netmask as a prefix length
    ha_suspend: bool = False
    virtualhost: str | None = None
    snmp_name: str | None = None
    smtp_alert: bool = False  # effective (global smtp_alert_checker / smtp_alert)
    alpha: bool = False
    omega: bool = False
    quorum: int = 1
    hysteresis: int = 0
    quorum_up: Script | None = None
    quorum_down: Script | None = None
    sorry_server: SorryServer | None = None
    inhibit_on_failure: bool = False
    weight: int = 1  # default weight of its real servers
    # Beyond keepalived (keyword slow_start): a real server that comes up gets
    # weight * elapsed / slow_start (at least 1) until slow_start seconds have passed.
    slow_start: float = 0.0  # seconds over which a returning server's weight ramps; 0: none
    # checker defaults for its real servers
    delay_loop: float = 60.0
    connect_timeout: float = 5.0
    retry: int | None = None
    delay_before_retry: float | None = None
    warmup: float | None = None
    real_servers: tuple[RealServer, ...] = ()
    field_origins: tuple[FieldOrigin, ...] = field(default=(), compare=False, repr=False)
    origin: str = _origin()

    @property
    def addressing(self) -> str:
        """"address", "fwmark" or "group"."""
        if self.group is not None:
            return "group"
        if self.fwmark is not None:
            return "fwmark"
        return "address"

    @property
    def effective_protocol(self) -> Protocol:
        return self.protocol if self.protocol is not None else Protocol.UDP

    def describe(self) -> str:
        """How keepalived and ipvsadm name the service: [IP]:PROTO:PORT, FWM N, [GROUP]."""
        if self.group is not None:
            return f"group {self.group}"
        if self.fwmark is not None:
            return f"FWM {self.fwmark}"
        return f"[{address_text(self.address)}]:{self.effective_protocol.value}:{self.port}"


@functools.lru_cache(maxsize=1 << 16)
def address_text(address: IPAddress | None) -> str:
    """``str(address)``, remembered: tens of thousands of real servers are named on
    every pass over the table, and `ipaddress` formats slowly."""
    return str(address)


def service_families(vs: VirtualServer,
                     groups: Mapping[str, VirtualServerGroup]) -> frozenset[AddressFamily]:
    """The address families of a virtual service, as keepalived settles them.

    An IP service has its address's family. A group has the families of its entries.
    A fwmark service (or a group of family-less fwmarks) takes ``ip_family``, else the
    family of its untunnelled real/sorry servers, else that of all its real/sorry
    servers when they agree, else IPv4. Empty for a group that is not defined.
    """
    if vs.address is not None and vs.group is None and vs.fwmark is None:
        return frozenset((family_of(vs.address),))
    if vs.ip_family is not None:
        return frozenset((vs.ip_family,))
    if vs.group is not None:
        group = groups.get(vs.group)
        if group is None:
            return frozenset()
        if group.families:
            return group.families
    servers: list[RealServer | SorryServer] = list(vs.real_servers)
    if vs.sorry_server is not None:
        servers.append(vs.sorry_server)
    for server in servers:
        if server.lvs_method.forwarding is not Forwarding.TUN:
            return frozenset((family_of(server.address),))
    found = {family_of(s.address) for s in servers}
    if len(found) == 1:
        return frozenset(found)
    return frozenset((AddressFamily.INET,))


# --- other top-level statements -----------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SslSettings:
    """The top-level ``SSL`` block used by SSL_GET checkers (all None: generated)."""

    password: str | None = None
    ca: str | None = None
    certificate: str | None = None
    key: str | None = None
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkbeatInterface:
    """An entry of ``linkbeat_interfaces``: poll this interface's link state."""

    name: str = ""
    polling: str | None = None  # MII, ETHTOOL or IOCTL; None: the best supported
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class InterfaceDelays:
    """An entry of ``interface_up_down_delays``."""

    interface: str = ""
    down_delay: float = 0.0
    up_delay: float = 0.0
    origin: str = _origin()


@dataclass(frozen=True, slots=True, kw_only=True)
class RawStatement:
    """A statement kept as written because the director does not support it yet."""

    keyword: str = ""
    args: tuple[str, ...] = ()
    children: tuple[RawStatement, ...] | None = None
    origin: str = _origin()


_NO_VRRP = VrrpConfig()


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    global_defs: GlobalDefs = GlobalDefs()
    vrrp: VrrpConfig = _NO_VRRP
    ssl: SslSettings | None = None
    virtual_server_groups: tuple[VirtualServerGroup, ...] = ()
    virtual_servers: tuple[VirtualServer, ...] = ()
    linkbeat_interfaces: tuple[LinkbeatInterface, ...] = ()
    interface_up_down_delays: tuple[InterfaceDelays, ...] = ()
    unsupported: tuple[RawStatement, ...] = ()

    def group(self, name: str) -> VirtualServerGroup | None:
        for group in self.virtual_server_groups:
            if group.name == name:
                return group
        return None
