"""The IPVS table as data: what the kernel holds, or what the director wants it to hold.

Backends (`director.ipvs.backend`) read a `Table` from the kernel (or memory) and apply
`Operation`s; `reconcile(desired, actual)` computes the operations. Keys and settings
are immutable and hashable; a table is a plain dict of them, so tables compare and diff
cheaply.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Protocol(StrEnum):
    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


class Forwarding(StrEnum):
    NAT = "NAT"  # ipvsadm: Masq
    DR = "DR"    # ipvsadm: Route (the kernel's "direct routing")
    TUN = "TUN"  # ipvsadm: Tunnel
    # ipvsadm: Local (IP_VS_CONN_F_LOCALNODE). The kernel reports it only when a netlink
    # client set it explicitly; the config never asks for it, but a table read back may
    # hold it.
    LOCAL = "LOCAL"


class TunnelType(StrEnum):
    IPIP = "ipip"
    GUE = "gue"
    GRE = "gre"


@dataclass(frozen=True, slots=True, order=True)
class ServiceKey:
    """How the kernel names a virtual service: protocol + address + port, or a fwmark
    (with its address family)."""

    family: int  # socket.AF_INET or AF_INET6
    protocol: Protocol | None = None  # None for fwmark services
    address: IPAddress | None = None
    port: int = 0
    fwmark: int = 0

    def __str__(self) -> str:
        if self.fwmark:
            return f"FWM {self.fwmark}" + (" IPv6" if self.family == 10 else "")
        host = f"[{self.address}]" if self.family == 10 else str(self.address)
        return f"{self.protocol} {host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    scheduler: str = "wlc"
    # sh-fallback, sh-port, mh-fallback, mh-port, flag-1, flag-2, flag-3
    sched_flags: frozenset[str] = frozenset()
    persistence_timeout: int | None = None  # seconds; None: not persistent
    persistence_netmask: int | None = None  # prefix length; None: the kernel's (/32, /128)
    one_packet: bool = False  # ops (UDP)
    persistence_engine: str | None = None


@dataclass(frozen=True, slots=True, order=True)
class DestinationKey:
    address: IPAddress
    port: int = 0


@dataclass(frozen=True, slots=True)
class DestinationSettings:
    forwarding: Forwarding = Forwarding.DR
    weight: int = 1
    upper_threshold: int = 0  # 0: none
    lower_threshold: int = 0
    tunnel_type: TunnelType = TunnelType.IPIP
    tunnel_port: int = 0
    tunnel_checksum: str = "nocsum"  # nocsum | csum | remcsum


@dataclass(frozen=True, slots=True)
class Service:
    settings: ServiceSettings = ServiceSettings()
    destinations: dict[DestinationKey, DestinationSettings] = field(default_factory=dict)


# A whole table: every service the kernel (or memory) holds, with its destinations.
Table = dict[ServiceKey, Service]


class OperationKind(StrEnum):
    ADD_SERVICE = "add-service"
    EDIT_SERVICE = "edit-service"
    DELETE_SERVICE = "delete-service"
    ADD_DESTINATION = "add-destination"
    EDIT_DESTINATION = "edit-destination"
    DELETE_DESTINATION = "delete-destination"


@dataclass(frozen=True, slots=True)
class Operation:
    """One kernel mutation. Service operations carry `service` settings; destination
    operations carry `destination` and its `settings` (for add/edit)."""

    kind: OperationKind
    service: ServiceKey
    service_settings: ServiceSettings | None = None
    destination: DestinationKey | None = None
    destination_settings: DestinationSettings | None = None


@dataclass(frozen=True, slots=True)
class ConnectionCounts:
    """A real server's current connections (IPVS_DEST_ATTR_*_CONNS)."""

    active: int = 0
    inactive: int = 0
    persistent: int = 0


@dataclass(frozen=True, slots=True)
class Counters:
    """IPVS statistics of a service or real server (IPVS_STATS_ATTR_*, 64-bit), as
    the kernel keeps them and ipvsadm shows them."""

    connections: int = 0
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    connections_per_second: int = 0
    packets_in_per_second: int = 0
    packets_out_per_second: int = 0
    bytes_in_per_second: int = 0
    bytes_out_per_second: int = 0


class SyncState(StrEnum):
    """Which way a connection-synchronisation daemon works (IP_VS_STATE_*)."""

    MASTER = "master"  # sends the director's connections to the backups
    BACKUP = "backup"  # takes them in


@dataclass(frozen=True, slots=True, order=True)
class SyncDaemon:
    """A kernel IPVS sync daemon (`ipvsadm --start-daemon`, keepalived's
    lvs_sync_daemon). Zero or None fields are the kernel's defaults, and a backend
    reports them as the kernel does."""

    state: SyncState
    interface: str
    sync_id: int = 0  # syncid: only messages with the same id are taken in
    maxlen: int = 0  # 0: from the interface's MTU
    port: int = 0  # 0: 8848
    ttl: int = 0  # 0: 1
    group: IPAddress | None = None  # None: 224.0.0.81 (or ff02::8000:81 for IPv6)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """IPVS connection timeouts in seconds (`ipvsadm --set`); 0 in a change leaves
    that one as it is."""

    tcp: int = 0
    tcp_fin: int = 0
    udp: int = 0
