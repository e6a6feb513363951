"""The kernel's rules for IPVS sync daemons and connection timeouts, as data and pure
functions: what it refuses, in which words, and what it reports for the defaults.
Shared by the netlink backend (`netlink_sync`) and the memory backend, so both refuse
the same things with the same messages; measured in tests/kernel/test_sync_daemon.py.
"""

from __future__ import annotations

import errno
import ipaddress
import os

from director.ipvs.backend import IpvsError
from director.ipvs.table import SyncDaemon, SyncState, Timeouts

# The kernel's defaults (ip_vs_sync.c: IP_VS_SYNC_GROUP, IP_VS_SYNC_PORT).
DEFAULT_GROUP = ipaddress.IPv4Address("224.0.0.81")
DEFAULT_PORT = 8848
DEFAULT_TTL = 1
IFNAME_MAX = 15  # IP_VS_IFNAME_MAXLEN - 1
MASTER_MTU = 1500  # a master sizes its messages for 1500 bytes whatever the MTU
IPV4_UDP_HEADERS = 20 + 8
IPV6_UDP_HEADERS = 40 + 8
DEFAULT_TIMEOUTS = Timeouts(tcp=900, tcp_fin=120, udp=300)
INT_MAX = 2**31 - 1

# ------------------------------------------------------------------ the kernel's rules
# Pure: shared with the memory backend, so both refuse the same things in the same words.

def state_text(state: SyncState) -> str:
    return f"{state.value} sync daemon"


def describe_start_failure(daemon: SyncDaemon, code: int, detail: str | None = None) -> str:
    """'cannot start the master sync daemon on eth9: no such interface'."""
    if detail is None:
        detail = {
            errno.ENODEV: "no such interface",
            errno.EEXIST: f"a {state_text(daemon.state)} already runs",
            errno.EINVAL: "the kernel refused the settings as invalid",
            errno.EAFNOSUPPORT: "this kernel's IPVS has no IPv6 support (IPv6 group)",
            errno.ENETUNREACH: "the interface is down or has no route to the group",
            errno.EADDRNOTAVAIL: "the interface has no usable address",
        }.get(code) or generic_reason(code)
    return f"cannot start the {state_text(daemon.state)} on {daemon.interface}: {detail}"


def describe_stop_failure(state: SyncState, code: int) -> str:
    """'cannot stop the backup sync daemon: none runs'."""
    detail = "none runs" if code == errno.ESRCH else generic_reason(code)
    if not code:
        detail = "the kernel did not stop it"
    return f"cannot stop the {state_text(state)}: {detail}"


def describe_timeouts_failure(timeouts: Timeouts, code: int, detail: str | None = None) -> str:
    what = ", ".join(f"{name} {value}" for name, value in _timeout_fields(timeouts) if value)
    if detail is None:
        detail = ("a timeout is negative or too large for the kernel" if code == errno.EINVAL
                  else generic_reason(code))
    return f"cannot set the connection timeouts ({what or 'none given'}): {detail}"


def generic_reason(code: int) -> str:
    if code in (errno.EPERM, errno.EACCES):
        return "permission denied (needs CAP_NET_ADMIN)"
    return f"{os.strerror(code)} (errno {code})" if code else "refused"


def _timeout_fields(timeouts: Timeouts) -> tuple[tuple[str, int], ...]:
    return (("tcp", timeouts.tcp), ("tcpfin", timeouts.tcp_fin), ("udp", timeouts.udp))


def check_sync_daemon(daemon: SyncDaemon) -> None:
    """Refuse, before asking the kernel, what its attribute policy and
    ip_vs_genl_new_daemon refuse with EINVAL (or what cannot be encoded), with a
    message that says which field is wrong."""
    def refuse(detail: str, code: int = errno.EINVAL) -> None:
        raise IpvsError(describe_start_failure(daemon, code, detail), None, code)

    if len(daemon.interface.encode()) > IFNAME_MAX:
        refuse(f"interface name longer than {IFNAME_MAX} characters")
    if "\0" in daemon.interface:
        refuse("interface name contains a NUL character")
    if not 0 <= daemon.sync_id <= 0xFFFFFFFF:
        refuse(f"sync id {daemon.sync_id} out of range")
    if not 0 <= daemon.maxlen <= 0xFFFF:
        refuse(f"maxlen {daemon.maxlen} out of range 0..65535")
    if not 0 <= daemon.port <= 0xFFFF:
        refuse(f"port {daemon.port} out of range 0..65535")
    if not 0 <= daemon.ttl <= 0xFF:
        refuse(f"ttl {daemon.ttl} out of range 0..255")
    if daemon.group is not None and not daemon.group.is_multicast:
        refuse(f"group {daemon.group} is not a multicast address")


def kernel_sync_daemon(daemon: SyncDaemon, mtu: int | None) -> SyncDaemon:
    """`daemon` as the kernel reports it once started on an interface of that MTU
    (start_sync_thread's defaults and clamping). With `mtu` None the default maxlen
    of a backup stays 0 (unknown)."""
    group = daemon.group if daemon.group is not None else DEFAULT_GROUP
    headers = IPV6_UDP_HEADERS if group.version == 6 else IPV4_UDP_HEADERS
    backup = daemon.state is SyncState.BACKUP
    if daemon.maxlen:
        maxlen = min(max(daemon.maxlen, 1024 if backup else 1), 65535 - headers)
    elif not backup:
        maxlen = MASTER_MTU - headers
    elif mtu is not None:
        maxlen = min(max(mtu, 1500), 65535) - headers
    else:
        maxlen = 0
    return SyncDaemon(
        state=daemon.state, interface=daemon.interface, sync_id=daemon.sync_id,
        maxlen=maxlen, port=daemon.port or DEFAULT_PORT, ttl=daemon.ttl or DEFAULT_TTL,
        group=group)


def max_timeout(hz: int) -> int:
    """The largest timeout in seconds a kernel with that HZ accepts (INT_MAX / HZ)."""
    return INT_MAX // hz


# ------------------------------------------------------------------ requests

