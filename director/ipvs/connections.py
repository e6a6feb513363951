"""The kernel's IPVS connection table (`/proc/net/ip_vs_conn`) as data, and as
`ipvsadm -L -c [-n] [--persistent-conn]` (ipvsadm 1.31) prints it, byte for byte.

Sans-IO: `parse_connections(text)` takes the file's text, `connections_text(...)`
returns ipvsadm's text; `director.cli.lvsadm` reads the file (in the right network
namespace) and does the name look-ups.

The kernel writes one line per connection (net/netfilter/ipvs/ip_vs_conn.c):

    Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
    TCP C0000201 C6D0 C000020A 0050 C000020A 1F90 ESTABLISHED     898
    TCP 2001:0db8:0000:...:0001 9824 2001:0db8:...:0010 0050 2001:0db8:...:0010 1F90 CLOSE 8

IPv4 addresses and every port in hexadecimal, IPv6 addresses written out in full; the
destination has its own family (an IPv6 service may forward to an IPv4 tunnel real
server); the persistence engine's name and data follow only when the connection has
them (`--pe sip`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from director.ipvs.listing import Names, address_port
from director.ipvs.table import IPAddress

HEADER_PREFIX = "Pro FromIP"


class ConnectionTableError(ValueError):
    """A line of the connection table that is not in the kernel's format."""


@dataclass(frozen=True, slots=True)
class Connection:
    """One IPVS connection (or persistence template) as the kernel lists it."""

    protocol: str  # TCP, UDP, SCTP; IP (or another name) for fwmark templates
    client: IPAddress
    client_port: int
    virtual: IPAddress
    virtual_port: int
    destination: IPAddress
    destination_port: int
    state: str  # the kernel's name: ESTABLISHED, TIME_WAIT, ..., NONE
    expires: int  # seconds until the entry expires
    pe_name: str | None = None  # persistence engine (e.g. "sip") when the entry has data
    pe_data: str | None = None

    @property
    def expire_text(self) -> str:
        """ipvsadm's MM:SS (minutes are not capped at 99)."""
        minutes, seconds = divmod(self.expires, 60)
        return f"{minutes:02d}:{seconds:02d}"


def _address(text: str, where: str) -> IPAddress:
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            raise ConnectionTableError(f"{where}: {text!r} is not an IPv6 address") from None
    try:
        value = int(text, 16)
    except ValueError:
        raise ConnectionTableError(f"{where}: {text!r} is not a hexadecimal IPv4 "
                                   "address") from None
    if len(text) != 8:
        raise ConnectionTableError(f"{where}: {text!r} is not 8 hexadecimal digits")
    return ipaddress.IPv4Address(value)


def _port(text: str, where: str) -> int:
    try:
        value = int(text, 16)
    except ValueError:
        raise ConnectionTableError(f"{where}: port {text!r} is not hexadecimal") from None
    if not 0 <= value <= 0xFFFF:
        raise ConnectionTableError(f"{where}: port {text!r} is out of range")
    return value


def parse_line(line: str, where: str = "line") -> Connection:
    fields = line.split()
    if len(fields) not in (9, 11):
        raise ConnectionTableError(
            f"{where}: expected 9 or 11 fields, got {len(fields)}: {line.strip()!r}")
    protocol, client, cport, virtual, vport, dest, dport, state, expires = fields[:9]
    if not expires.isdigit():
        raise ConnectionTableError(f"{where}: expiry {expires!r} is not a number")
    return Connection(
        protocol=protocol,
        client=_address(client, where), client_port=_port(cport, where),
        virtual=_address(virtual, where), virtual_port=_port(vport, where),
        destination=_address(dest, where), destination_port=_port(dport, where),
        state=state, expires=int(expires),
        pe_name=fields[9] if len(fields) == 11 else None,
        pe_data=fields[10] if len(fields) == 11 else None,
    )


def parse_connections(text: str, source: str = "/proc/net/ip_vs_conn") -> list[Connection]:
    """Every entry of the kernel's connection table text (its header line first)."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith(HEADER_PREFIX):
        first = lines[0] if lines else ""
        raise ConnectionTableError(f"{source}: unexpected first line {first!r}")
    return [parse_line(line, f"{source} line {number}")
            for number, line in enumerate(lines[1:], start=2) if line.strip()]


def title(persistent_conn: bool = False) -> str:
    if persistent_conn:
        return ("IPVS connection entries\n"
                f"pro expire {'state':<11} {'source':<18} {'virtual':<18} "
                f"{'destination':<18} {'pe name':<16} pe_data\n")
    return ("IPVS connection entries\n"
            f"pro expire {'state':<11} {'source':<18} {'virtual':<18} destination\n")


def connection_line(conn: Connection, *, persistent_conn: bool = False,
                    names: Names | None = None) -> str:
    source = address_port(conn.client, conn.client_port, conn.protocol, names)
    virtual = address_port(conn.virtual, conn.virtual_port, conn.protocol, names)
    dest = address_port(conn.destination, conn.destination_port, conn.protocol, names)
    line = f"{conn.protocol:<3} {conn.expire_text:<6} {conn.state:<11} {source:<18} {virtual:<18}"
    # ipvsadm adds the engine's columns only to entries that have them.
    if persistent_conn and conn.pe_name is not None:
        return f"{line} {dest:<16} {conn.pe_name:<18} {conn.pe_data}\n"
    return f"{line} {dest}\n"


def connections_text(connections: list[Connection], *, persistent_conn: bool = False,
                     names: Names | None = None) -> str:
    """`ipvsadm -L -c`: the entries in the kernel's order. `names`: host and service
    names as without -n; `persistent_conn`: the persistence engine columns."""
    return title(persistent_conn) + "".join(
        connection_line(c, persistent_conn=persistent_conn, names=names)
        for c in connections)
