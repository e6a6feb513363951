"""`lvsadm`: the IPVS table as `ipvsadm -L -n` shows it, or as JSON.

    lvsadm -Ln [--stats|--rate|--thresholds|--persistent-conn] [--exact] [--sort]
               [-t|-u|--sctp-service ADDR:PORT | -f FWMARK [-6]] [--json] [--netns NAME]
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import re
import socket
import sys
from typing import Any

from director.ipvs.backend import IpvsError
from director.ipvs.listing import Format, listing
from director.ipvs.netlink import NetlinkBackend, connection_counts
from director.ipvs.table import Protocol, ServiceKey

PROC_IP_VS = "/proc/net/ip_vs"
_HEADER = re.compile(r"IP Virtual Server version (\S+) \(size=(\d+)\)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lvsadm", description=__doc__.split("\n")[0])
    parser.add_argument("-L", "-l", "--list", action="store_true", help="list the table")
    parser.add_argument("-n", "--numeric", action="store_true",
                        help="numeric addresses and ports (always)")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--stats", action="store_const", dest="fmt", const=Format.STATS)
    shown.add_argument("--rate", action="store_const", dest="fmt", const=Format.RATE)
    shown.add_argument("--thresholds", action="store_const", dest="fmt",
                       const=Format.THRESHOLDS)
    shown.add_argument("--persistent-conn", action="store_const", dest="fmt",
                       const=Format.PERSISTENT_CONN)
    parser.add_argument("--exact", action="store_true", help="exact numbers")
    parser.add_argument("--sort", action="store_true",
                        help="sort services and real servers (always done, as ipvsadm does)")
    service = parser.add_mutually_exclusive_group()
    service.add_argument("-t", "--tcp-service", metavar="ADDR:PORT")
    service.add_argument("-u", "--udp-service", metavar="ADDR:PORT")
    service.add_argument("--sctp-service", metavar="ADDR:PORT")
    service.add_argument("-f", "--fwmark-service", metavar="FWMARK", type=int)
    parser.add_argument("-6", "--ipv6", action="store_true", help="the fwmark service is IPv6")
    parser.add_argument("--json", action="store_true", help="every field, as JSON")
    parser.add_argument("--netns", metavar="NAME", help="network namespace to read")
    parser.set_defaults(fmt=Format.PLAIN)
    return parser


def _service_key(args: argparse.Namespace) -> ServiceKey | None:
    if args.fwmark_service is not None:
        family = socket.AF_INET6 if args.ipv6 else socket.AF_INET
        return ServiceKey(family=family, fwmark=args.fwmark_service)
    for protocol, text in ((Protocol.TCP, args.tcp_service), (Protocol.UDP, args.udp_service),
                           (Protocol.SCTP, args.sctp_service)):
        if text is None:
            continue
        match = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:]+)(?::(\d+))?", text)
        if match is None:
            raise ValueError(f"illegal service address {text!r}")
        host = match.group(1) or match.group(3)
        port = int(match.group(2) or match.group(4) or 0)
        try:
            address = ipaddress.ip_address(host)
        except ValueError as error:
            raise ValueError(f"illegal service address {text!r}") from error
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        return ServiceKey(family=family, protocol=protocol, address=address, port=port)
    return None


def _kernel_info() -> tuple[str, int]:
    # The version and connection table size are the module's, the same in every netns.
    with open(PROC_IP_VS, encoding="ascii") as proc:
        match = _HEADER.match(proc.readline())
    if match is None:
        raise IpvsError(f"unexpected first line in {PROC_IP_VS}")
    return match.group(1), int(match.group(2))


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
                   keys: list[ServiceKey]) -> dict[str, Any]:
    services = []
    for key in keys:
        service = table[key]
        service_stats = stats.get(key)
        dests = []
        for dest, settings in service.destinations.items():
            dests.append({
                "address": str(dest.address), "port": dest.port,
                **_jsonable(settings),
                "connections": _jsonable(conns.get(key, {}).get(dest)),
                "stats": _jsonable(service_stats.destinations.get(dest)
                                   if service_stats else None),
            })
        services.append({
            "key": str(key), "family": "inet6" if key.family == socket.AF_INET6 else "inet",
            "protocol": str(key.protocol) if key.protocol else None,
            "address": str(key.address) if key.address is not None else None,
            "port": key.port, "fwmark": key.fwmark,
            **_jsonable(service.settings),
            "stats": _jsonable(service_stats.service if service_stats else None),
            "destinations": dests,
        })
    return {"version": version, "size": size, "services": services}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        only = _service_key(args)
    except ValueError as error:
        print(f"lvsadm: {error}", file=sys.stderr)
        return 2
    try:
        version, size = _kernel_info()
        with NetlinkBackend(args.netns) as backend:
            table = backend.dump()
            conns = connection_counts(backend)
            stats = backend.stats()
    except (OSError, IpvsError) as error:
        print(f"lvsadm: {error}", file=sys.stderr)
        return 1
    if only is not None and only not in table:
        print("No such service", file=sys.stderr)
        return 1
    if args.json:
        keys = list(table) if only is None else [only]
        document = _json_document(version, size, table, conns, stats, keys)
        print(json.dumps(document, indent=2))
        return 0
    counters = {key: (value.service, value.destinations) for key, value in stats.items()}
    sys.stdout.write(listing(table, version=version, size=size, fmt=args.fmt,
                             connections=conns, counters=counters, exact=args.exact,
                             sort=True, only=only))
    return 0


if __name__ == "__main__":
    sys.exit(main())
