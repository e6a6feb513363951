"""lvsadm: the kernel's IPVS state as `ipvsadm -L` (1.31) shows it, or as JSON.

Read-only: it never changes the table (the director, or ipvsadm, does that).
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import os
import re
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

from director.ipvs.backend import IpvsError
from director.ipvs.connections import (
    Connection,
    ConnectionTableError,
    connections_text,
    parse_connections,
)
from director.ipvs.listing import (
    Format,
    Health,
    HealthState,
    listing,
    sync_daemons_text,
    timeouts_text,
)
from director.ipvs.netlink import NetlinkBackend, connection_counts
from director.ipvs.table import DestinationKey, IPAddress, Protocol, ServiceKey, Table
from director.state_files import DEFAULT_STATE_DIR, StateFileError, read_status, status_path

USAGE = """\
lvsadm -L [-n] [--stats|--rate|--thresholds|--persistent-conn] [--exact]
                 [--nosort] [-t|-u|--sctp-service HOST[:PORT] | -f FWMARK [-6]]
                 [--health [--state-dir DIR]] [--json] [--netns NAME]
       lvsadm -L -c [-n] [--persistent-conn] [--json] [--netns NAME]
       lvsadm -L --daemon|--timeout [--json] [--netns NAME]"""

PROC_IP_VS = "/proc/net/ip_vs"
PROC_IP_VS_CONN = "ip_vs_conn"  # under /proc/net of the namespace read
NETNS_RUN_DIR = "/var/run/netns"  # where `ip netns` (and pyroute2) keep named namespaces
CLONE_NEWNET = 0x40000000
# The director rewrites status.json at least every few seconds; older means it is not
# running (or stuck), and its health verdicts are not to be shown as current.
STATUS_MAX_AGE = 30.0

_HEADER = re.compile(r"IP Virtual Server version (\S+) \(size=(\d+)\)")

# ipvsadm's exit statuses
EXIT_OK = 0
EXIT_FAILED = 1  # the kernel could not be read, or no such service
EXIT_USAGE = 2  # options that do not go together, a bad service address
EXIT_BAD_OPTION = 255  # an unknown option, or one missing its argument (popt's)

# ipvsadm's option names (its messages name them so) in its own order: two exclusive
# ones are reported later-first, as ipvsadm does.
_OPTION_ORDER = ("numeric", "connection", "service-address", "timeout", "daemon", "stats",
                 "rate", "thresholds", "persistent-conn", "nosort", "sort", "exact")
_EXCLUSIVE = ("connection", "service-address", "timeout", "daemon")
_FLAGS = {  # dest -> ipvsadm's name
    "numeric": "numeric", "connection": "connection", "timeout": "timeout",
    "daemon": "daemon", "stats": "stats", "rate": "rate", "thresholds": "thresholds",
    "persistent_conn": "persistent-conn", "nosort": "nosort", "sort": "sort",
    "exact": "exact", "list": "list", "ipv6": "ipv6", "json": "json", "health": "health",
}


class UsageError(Exception):
    """Options that cannot be used (together); `status` is ipvsadm's exit status."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- command line

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, ipvsadm's exit status
        raise UsageError(f"{message} (see lvsadm --help)", EXIT_BAD_OPTION)


class _ServiceOption(argparse.Action):
    """-t/-u/--sctp-service/-f all fill one list: ipvsadm takes one service."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        namespace.services = [*namespace.services, (self.const, values)]


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lvsadm", formatter_class=argparse.RawDescriptionHelpFormatter,
        usage=USAGE, description=__doc__,
        epilog=("Output is byte for byte what ipvsadm 1.31 prints for the same options, "
                "except --health and --json (ours).\nExit status: 0 listed; 1 the "
                "kernel's IPVS could not be read, or no such service; 2 options that do "
                "not go together; 255 an unknown option or a missing argument."))
    what = parser.add_argument_group("what to list")
    what.add_argument("-L", "-l", "--list", action="count", default=0,
                      help="list (the default; kept for ipvsadm's command lines)")
    what.add_argument("-c", "--connection", action="count", default=0,
                      help="the connection table (/proc/net/ip_vs_conn)")
    what.add_argument("--timeout", action="count", default=0,
                      help="the TCP, TCP FIN and UDP timeouts")
    what.add_argument("--daemon", action="count", default=0,
                      help="the connection sync daemons")
    svc = parser.add_argument_group("one virtual service only")
    for flags, const in ((("-t", "--tcp-service"), Protocol.TCP),
                         (("-u", "--udp-service"), Protocol.UDP),
                         (("--sctp-service",), Protocol.SCTP)):
        svc.add_argument(*flags, action=_ServiceOption, const=const, dest="services",
                         metavar="HOST[:PORT]", help=f"the {const} service HOST[:PORT] "
                         "(a name, an IPv4 address or [IPv6]; port by number or name)")
    svc.add_argument("-f", "--fwmark-service", action=_ServiceOption, const="fwmark",
                     dest="services", metavar="FWMARK", help="the firewall-mark service")
    svc.add_argument("-6", "--ipv6", action="count", default=0,
                     help="the -f service is IPv6")
    shown = parser.add_argument_group("how")
    shown.add_argument("-n", "--numeric", action="count", default=0,
                       help="numeric addresses and ports (no name look-ups)")
    shown.add_argument("--stats", action="count", default=0, help="statistics counters")
    shown.add_argument("--rate", action="count", default=0, help="rates (per second)")
    shown.add_argument("--thresholds", action="count", default=0,
                       help="upper/lower connection thresholds")
    shown.add_argument("--persistent-conn", action="count", default=0,
                       help="persistent connections (with -c: persistence engine data)")
    shown.add_argument("--exact", action="count", default=0,
                       help="exact numbers (no K/M/G scaling)")
    shown.add_argument("--nosort", action="count", default=0,
                       help="the kernel's order instead of ipvsadm's sorting")
    shown.add_argument("--sort", action="count", default=0,
                       help="sort (the default; does nothing, as in ipvsadm)")
    ours = parser.add_argument_group("lvsadm's own")
    ours.add_argument("--health", action="count", default=0,
                      help="two more columns per real server: the running director's "
                      "verdict (UP, DOWN, DRAIN, ? unknown) and its last check's result")
    ours.add_argument("--state-dir", metavar="DIR", default=DEFAULT_STATE_DIR,
                      help=f"the director's state directory (default {DEFAULT_STATE_DIR})")
    ours.add_argument("--json", action="count", default=0,
                      help="every field, as JSON (addresses always numeric)")
    ours.add_argument("--netns", metavar="NAME",
                      help="read the IPVS state of this network namespace "
                      f"(a name in {NETNS_RUN_DIR}, or a path)")
    parser.set_defaults(services=[])
    return parser


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    for word in rest:
        if word.startswith("-") and word != "-":
            raise UsageError(f"unknown option {word} (see lvsadm --help)", EXIT_BAD_OPTION)
        raise UsageError(f"unexpected argument {word}")
    _check(args)
    return args


_SPELLING = {
    "numeric": "-n/--numeric", "connection": "-c/--connection",
    "service-address": "a service (-t/-u/--sctp-service/-f)", "timeout": "--timeout",
    "daemon": "--daemon", "stats": "--stats", "rate": "--rate", "thresholds": "--thresholds",
    "persistent-conn": "--persistent-conn", "nosort": "--nosort", "sort": "--sort",
    "exact": "--exact", "list": "-L/--list", "ipv6": "-6/--ipv6", "json": "--json",
    "health": "--health",
}


def _check(args: argparse.Namespace) -> None:
    """ipvsadm's rules for the options of its list command, in its order (and with its
    exit statuses), in words that name the options."""
    given = {name for dest, name in _FLAGS.items() if getattr(args, dest)}
    for dest, name in _FLAGS.items():
        if getattr(args, dest) > 1:
            raise UsageError(f"{_SPELLING[name]} given more than once")
    if len(args.services) > 1:
        raise UsageError("more than one service given (-t/-u/--sctp-service/-f)")
    if args.services:
        given.add("service-address")
    exclusive = [name for name in _OPTION_ORDER if name in given and name in _EXCLUSIVE]
    if len(exclusive) > 1:
        raise UsageError(f"{_SPELLING[exclusive[1]]} cannot be combined with "
                         f"{_SPELLING[exclusive[0]]}")
    columns = [name for name in ("stats", "rate", "thresholds") if name in given]
    other = exclusive[0] if exclusive and exclusive[0] != "service-address" else None
    if other and columns:
        raise UsageError(f"{_SPELLING[columns[0]]} cannot be combined with {_SPELLING[other]}")
    if other in ("timeout", "daemon") and "persistent-conn" in given:
        raise UsageError(f"--persistent-conn cannot be combined with {_SPELLING[other]}")
    if args.ipv6 and not any(kind == "fwmark" for kind, _ in args.services):
        raise UsageError("-6/--ipv6 applies to an -f/--fwmark-service only")
    if args.health:
        if other:
            raise UsageError(f"--health goes with the table listing, not with "
                             f"{_SPELLING[other]}")
        shown = [name for name in ("stats", "rate", "thresholds", "persistent-conn")
                 if name in given]
        if shown:
            raise UsageError(f"--health adds its columns to the plain listing only, not "
                             f"to {_SPELLING[shown[0]]}")


def _format(args: argparse.Namespace) -> Format:
    # ipvsadm's precedence when several are given
    for flag, fmt in (("stats", Format.STATS), ("rate", Format.RATE),
                      ("thresholds", Format.THRESHOLDS),
                      ("persistent_conn", Format.PERSISTENT_CONN)):
        if getattr(args, flag):
            return fmt
    return Format.PLAIN


def _service_key(args: argparse.Namespace) -> ServiceKey | None:
    """The one service of -t/-u/--sctp-service/-f, resolved as ipvsadm does (host names
    through the resolver, IPv4 only; port names for the protocol)."""
    if not args.services:
        return None
    kind, text = args.services[0]
    if kind == "fwmark":
        if not text.isdigit() or not 0 < int(text) < 2**32:
            raise UsageError(f"invalid fwmark value `{text}' specified")
        family = socket.AF_INET6 if args.ipv6 else socket.AF_INET
        return ServiceKey(family=family, fwmark=int(text))
    protocol = Protocol(kind)
    match = re.fullmatch(r"\[([^\]]+)\](?::([^:]+))?|([^:\[\]]+)(?::([^:]+))?", text)
    bad = UsageError(f"illegal service address {text!r} (expected HOST[:PORT] or "
                     "[IPv6][:PORT]; HOST a name or an address, PORT a number or a name)")
    if match is None:
        raise bad
    host, port_text = (match.group(1), match.group(2)) if match.group(1) else (
        match.group(3), match.group(4))
    address: IPAddress
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if match.group(1):
            raise bad from None
        try:
            address = ipaddress.IPv4Address(socket.gethostbyname(host))
        except (OSError, UnicodeError):
            raise bad from None
    port = 0
    if port_text is not None:
        if port_text.isdigit():
            port = int(port_text)
        else:
            try:
                port = socket.getservbyname(port_text, protocol.lower())
            except OSError:
                raise bad from None
        if not 0 <= port <= 65535:
            raise bad
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    return ServiceKey(family=family, protocol=protocol, address=address, port=port)


# ---------------------------------------------------------------- reading

class SystemNames:
    """Host and service names through the C library (the resolver and /etc/services
    ipvsadm asks), each looked up once."""

    def __init__(self) -> None:
        self._hosts: dict[IPAddress, str | None] = {}
        self._services: dict[tuple[int, str], str | None] = {}

    def host(self, address: IPAddress) -> str | None:
        if address not in self._hosts:
            try:
                self._hosts[address] = socket.gethostbyaddr(str(address))[0]
            except (OSError, UnicodeError):
                self._hosts[address] = None
        return self._hosts[address]

    def service(self, port: int, protocol: str) -> str | None:
        key = (port, protocol)
        if key not in self._services:
            try:
                self._services[key] = socket.getservbyport(port, protocol)
            except (OSError, OverflowError):
                self._services[key] = None
        return self._services[key]


def _kernel_info() -> tuple[str, int]:
    # The version and connection table size are the module's, the same in every netns.
    with open(PROC_IP_VS, encoding="ascii") as proc:
        match = _HEADER.match(proc.readline())
    if match is None:
        raise IpvsError(f"unexpected first line in {PROC_IP_VS}")
    return match.group(1), int(match.group(2))


def netns_path(netns: str) -> str:
    return netns if "/" in netns else os.path.join(NETNS_RUN_DIR, netns)


def _setns(fd: int) -> None:
    setns: Callable[[int, int], None] | None = getattr(os, "setns", None)  # Python 3.12+
    if setns is not None:
        setns(fd, CLONE_NEWNET)
        return
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def read_proc_net(name: str, netns: str | None = None) -> str:
    """/proc/net/NAME of this process's network namespace, or of `netns`: read by a
    short-lived thread that joins that namespace (setns affects only the calling
    thread, and /proc/thread-self/net is that thread's), so nothing else changes."""
    if netns is None:
        try:
            with open(f"/proc/net/{name}", encoding="ascii") as proc:
                return proc.read()
        except FileNotFoundError:
            raise OSError(2, f"/proc/net/{name}: no such file (is the ip_vs module "
                          "loaded?)") from None
    path = netns_path(netns)
    result: dict[str, Any] = {}

    def read() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            with open(f"/proc/thread-self/net/{name}", encoding="ascii") as proc:
                result["text"] = proc.read()
        except OSError as error:
            result["error"] = error

    thread = threading.Thread(target=read, name=f"lvsadm-netns-{netns}")
    thread.start()
    thread.join()
    if "error" in result:
        error = result["error"]
        if isinstance(error, FileNotFoundError):
            if error.filename == path:
                raise OSError(error.errno, f"no network namespace {netns!r} ({path})")
            raise OSError(error.errno, f"/proc/net/{name} of network namespace {netns!r}: "
                          "no such file (is the ip_vs module loaded?)")
        raise error
    return str(result["text"])


# ---------------------------------------------------------------- health (status.json)

HealthTable = dict[ServiceKey, dict[DestinationKey, Health]]


def _health_of(entry: dict[str, Any]) -> Health:
    if entry.get("up") is not True:
        state = HealthState.DOWN
    elif entry.get("drained") is True:
        state = HealthState.DRAIN
    else:
        state = HealthState.UP
    reason = entry.get("reason")
    return Health(state=state, reason=reason if isinstance(reason, str) else "")


def _status_entries(status: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Real-server entries of status.json per service text (str(ServiceKey))."""
    result: dict[str, list[dict[str, Any]]] = {}
    for vs in status.get("virtual_servers") or []:
        if not isinstance(vs, dict):
            continue
        servers = [rs for rs in vs.get("real_servers") or [] if isinstance(rs, dict)]
        for service in vs.get("services") or []:
            if isinstance(service, str):
                result.setdefault(service, []).extend(servers)
    return result


def _entry_for(dest: DestinationKey, entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    def address(entry: dict[str, Any]) -> IPAddress | None:
        try:
            return ipaddress.ip_address(str(entry.get("address")))
        except ValueError:
            return None

    same = [e for e in entries if address(e) == dest.address]
    exact = [e for e in same if e.get("port") == dest.port]
    if exact:
        return exact[-1]
    # The kernel may hold another port than the configuration's (DR and TUN real
    # servers take the service's): the address alone, when it is unambiguous.
    return same[0] if len(same) == 1 else None


def status_entries_for(table: Table, status: dict[str, Any]
                       ) -> dict[ServiceKey, dict[DestinationKey, dict[str, Any]]]:
    by_service = _status_entries(status)
    result: dict[ServiceKey, dict[DestinationKey, dict[str, Any]]] = {}
    for key, service in table.items():
        entries = by_service.get(str(key), [])
        found = {dest: entry for dest in service.destinations
                 if (entry := _entry_for(dest, entries)) is not None}
        result[key] = found
    return result


def health_table(table: Table, status: dict[str, Any] | None) -> HealthTable:
    if status is None:
        return {key: {} for key in table}
    return {key: {dest: _health_of(entry) for dest, entry in dests.items()}
            for key, dests in status_entries_for(table, status).items()}


def _read_status(state_dir: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return read_status(state_dir, max_age=STATUS_MAX_AGE), None
    except StateFileError as error:
        return None, str(error)


# ---------------------------------------------------------------- JSON

def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, frozenset | set):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


def _json_document(version: str, size: int, table: Any, conns: Any, stats: Any,
                   keys: list[ServiceKey], health: dict[str, Any] | None) -> dict[str, Any]:
    """`health`: {"status": ..., "problem": ..., "entries": per service and real
    server} of the running director's status.json, or None when not asked for."""
    services = []
    entries = health["entries"] if health else {}
    for key in keys:
        service = table[key]
        service_stats = stats.get(key)
        dests = []
        for dest, settings in service.destinations.items():
            row = {
                "address": str(dest.address), "port": dest.port,
                **_jsonable(settings),
                "connections": _jsonable(conns.get(key, {}).get(dest)),
                "stats": _jsonable(service_stats.destinations.get(dest)
                                   if service_stats else None),
            }
            if health is not None:
                entry = entries.get(key, {}).get(dest)
                row["health"] = None if entry is None else {
                    "state": str(_health_of(entry).state), **entry}
            dests.append(row)
        services.append({
            "key": str(key), "family": "inet6" if key.family == socket.AF_INET6 else "inet",
            "protocol": str(key.protocol) if key.protocol else None,
            "address": str(key.address) if key.address is not None else None,
            "port": key.port, "fwmark": key.fwmark,
            **_jsonable(service.settings),
            "stats": _jsonable(service_stats.service if service_stats else None),
            "destinations": dests,
        })
    document: dict[str, Any] = {"version": version, "size": size, "services": services}
    if health is not None:
        document["director_status"] = {k: v for k, v in health.items() if k != "entries"}
    return document


def _connection_json(conn: Connection) -> dict[str, Any]:
    return {**_jsonable(conn), "expire_text": conn.expire_text}


def _print_json(document: Any) -> None:
    print(json.dumps(document, indent=2))


# ---------------------------------------------------------------- the commands

def _list_connections(args: argparse.Namespace) -> int:
    text = read_proc_net(PROC_IP_VS_CONN, args.netns)
    conns = parse_connections(text, f"/proc/net/{PROC_IP_VS_CONN}")
    if args.json:
        _print_json({"connections": [_connection_json(c) for c in conns]})
        return EXIT_OK
    names = None if args.numeric else SystemNames()
    sys.stdout.write(connections_text(conns, persistent_conn=bool(args.persistent_conn),
                                      names=names))
    return EXIT_OK


def _list_daemons(args: argparse.Namespace) -> int:
    with NetlinkBackend(args.netns) as backend:
        daemons = backend.sync_daemons()
    if args.json:
        _print_json({"sync_daemons": _jsonable(daemons)})
    else:
        sys.stdout.write(sync_daemons_text(daemons))
    return EXIT_OK


def _list_timeouts(args: argparse.Namespace) -> int:
    with NetlinkBackend(args.netns) as backend:
        timeouts = backend.timeouts()
    if args.json:
        _print_json({"timeouts": _jsonable(timeouts)})
    else:
        sys.stdout.write(timeouts_text(timeouts))
    return EXIT_OK


def _list_table(args: argparse.Namespace, only: ServiceKey | None) -> int:
    version, size = _kernel_info()
    with NetlinkBackend(args.netns) as backend:
        table = backend.dump()
        conns = connection_counts(backend)
        stats = backend.stats()
    if only is not None and only not in table:
        print(f"lvsadm: no such service: {only}", file=sys.stderr)
        return EXIT_FAILED
    status, problem = (None, None)
    if args.health or args.json:
        status, problem = _read_status(args.state_dir)
    if args.json:
        keys = list(table) if only is None else [only]
        health = {
            "file": status_path(args.state_dir),
            "available": status is not None,
            "problem": problem,
            "written_at": status.get("written_at") if status else None,
            "pid": status.get("pid") if status else None,
            "entries": status_entries_for(table, status) if status else {},
        }
        _print_json(_json_document(version, size, table, conns, stats, keys, health))
        return EXIT_OK
    counters = {key: (value.service, value.destinations) for key, value in stats.items()}
    if args.health and problem is not None:
        print(f"lvsadm: no health shown: {problem}", file=sys.stderr)
    sys.stdout.write(listing(
        table, version=version, size=size, fmt=_format(args), connections=conns,
        counters=counters, exact=bool(args.exact), sort=not args.nosort, only=only,
        names=None if args.numeric else SystemNames(),
        health=health_table(table, status) if args.health else None))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parse(sys.argv[1:] if argv is None else argv)
        only = _service_key(args)
    except UsageError as error:
        print(f"lvsadm: {error}", file=sys.stderr)
        return error.status
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else EXIT_OK
    try:
        if args.connection:
            return _list_connections(args)
        if args.daemon:
            return _list_daemons(args)
        if args.timeout:
            return _list_timeouts(args)
        return _list_table(args, only)
    except (OSError, IpvsError, ConnectionTableError) as error:
        message = error.strerror if isinstance(error, OSError) and error.strerror else error
        where = getattr(error, "filename", None)
        print(f"lvsadm: {where + ': ' if where else ''}{message}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

