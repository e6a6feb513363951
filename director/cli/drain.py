"""`director drain`, `director undrain` and `director drains`: an operator takes a real
server out of rotation (weight 0: its connections finish, no new ones come) and puts it
back.

Drains live in the state directory's drains.json, which the running director polls:
they apply within its poll interval, survive reloads and restarts, and a drain made
while no director runs applies when one starts. A real server is named as
``ADDRESS[:PORT]`` (``[2001:db8::1]:80`` for IPv6); without ``--virtual-server`` it
means that server in every virtual server of the configuration that has it.
"""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from director.config.errors import ConfigError
from director.config.load import FORMATS, load_config
from director.config.model import Config, VirtualServer
from director.pool import RealServerId, virtual_server_id
from director.state_files import (
    DEFAULT_STATE_DIR,
    VERSION,
    StateFileError,
    drains_path,
    locked,
    read_drains,
    running_pid,
    write_drains,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
VsMatcher = Callable[[VirtualServer], bool]

VS_FORMS = ("192.0.2.1:80, tcp:192.0.2.1:80, [2001:db8::1]:80, fwmark:7, group:NAME, or a "
            "name `director drains` shows ([192.0.2.1]:TCP:80, FWM 7, group NAME TCP)")


class UsageError(Exception):
    """What the operator typed does not name anything; the message says why."""


# ---------------------------------------------------------------- naming things


def parse_endpoint(text: str) -> tuple[IPAddress, int | None]:
    """``ADDRESS[:PORT]`` / ``[IPv6]:PORT`` -> (address, port or None)."""
    text = text.strip()
    host, port_text = text, None
    bracketed = re.fullmatch(r"\[([^\]]+)\](?::(\d*))?", text)
    if bracketed:
        host, port_text = bracketed.group(1), bracketed.group(2)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"'{text}' is not ADDRESS[:PORT] (an IP address, e.g. 192.0.2.11:80 "
                         f"or [2001:db8::11]:80)") from None
    if port_text is None:
        return address, None
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UsageError(f"'{port_text}' in '{text}' is not a port (0-65535)")
    return address, int(port_text)


def endpoint_text(address: str | IPAddress, port: int | None) -> str:
    host = str(address)
    if ":" in host:
        host = f"[{host}]"
    return host if not port else f"{host}:{port}"


def vs_matcher(text: str) -> VsMatcher:
    """Which virtual servers an operator means by `text` (see VS_FORMS)."""
    spec = " ".join(text.split())
    lowered = spec.lower()

    def exact(vs: VirtualServer) -> bool:
        return virtual_server_id(vs).lower() == lowered

    named = re.fullmatch(r"(fwmark|fwm)[: ](\d+)", lowered)
    if named:
        mark = int(named.group(2))
        return lambda vs: exact(vs) or (vs.group is None and vs.fwmark == mark)
    named = re.fullmatch(r"group[: ](\S+)", spec, flags=re.IGNORECASE)
    if named:
        group = named.group(1)
        return lambda vs: exact(vs) or vs.group == group
    keepalived = re.fullmatch(r"\[([^\]]+)\]:(tcp|udp|sctp):(\d+)", lowered)
    if keepalived:
        protocol, rest = keepalived.group(2), f"[{keepalived.group(1)}]:{keepalived.group(3)}"
    else:
        protocol, rest = None, spec
        prefixed = re.fullmatch(r"(tcp|udp|sctp)[: ](.+)", spec, flags=re.IGNORECASE)
        if prefixed:
            protocol, rest = prefixed.group(1).lower(), prefixed.group(2)
    try:
        address, port = parse_endpoint(rest)
    except UsageError:
        return exact  # perhaps a name of another form; no match reports the choices

    def by_address(vs: VirtualServer) -> bool:
        if exact(vs):
            return True
        if vs.group is not None or vs.fwmark is not None or vs.address != address:
            return False
        if port is not None and vs.port != port:
            return False
        return protocol is None or vs.effective_protocol.value.lower() == protocol
    return by_address


def _suggest(query: str, choices: Iterable[str], what: str, limit: int = 5) -> str:
    """"did you mean: A, B" (the near matches), else the first few choices."""
    choices = sorted(set(choices))
    if not choices:
        return f"it has no {what}"
    found = difflib.get_close_matches(query, choices, n=limit, cutoff=0.5)
    if found:
        return "did you mean: " + ", ".join(found)
    more = f" (and {len(choices) - limit} more)" if len(choices) > limit else ""
    return f"{what}: " + ", ".join(choices[:limit]) + more


# ---------------------------------------------------------------- the commands


def _load(options: argparse.Namespace) -> Config:
    try:
        config, _warnings = load_config(options.config, config_id=options.config_id,
                                        input_format=options.input_format)
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        raise UsageError(f"{options.config}: configuration is NOT valid") from None
    except OSError as error:
        raise UsageError(f"{options.config}: {error.strerror or error}") from None
    return config


def _selected_virtual_servers(config: Config, options: argparse.Namespace,
                              drained: Iterable[RealServerId] = ()
                              ) -> tuple[list[VirtualServer], VsMatcher | None]:
    if options.virtual_server is None:
        return list(config.virtual_servers), None
    matcher = vs_matcher(options.virtual_server)
    chosen = [vs for vs in config.virtual_servers if matcher(vs)]
    typed = " ".join(options.virtual_server.split()).lower()
    if not chosen and not any(d.virtual_server.lower() == typed for d in drained):
        names = [virtual_server_id(vs) for vs in config.virtual_servers]
        hint = _suggest(options.virtual_server, names, "virtual servers")
        raise UsageError(f"no virtual server '{options.virtual_server}' in {options.config}; "
                         f"{hint} (forms: {VS_FORMS})")
    return chosen, matcher


def _targets(config: Config, options: argparse.Namespace,
             current: frozenset[RealServerId], undrain: bool) -> list[RealServerId]:
    address, port = parse_endpoint(options.server)
    chosen, matcher = _selected_virtual_servers(config, options, current if undrain else ())
    found = [RealServerId.of(vs, rs) for vs in chosen for rs in vs.real_servers
             if rs.address == address and (port is None or rs.port == port)]
    if undrain:
        # Drains of servers the configuration no longer has can still be lifted: any
        # virtual server, or one named by its id.
        typed = " ".join((options.virtual_server or "").split()).lower()
        found += [d for d in current
                  if d.address == str(address) and (port is None or d.port == port)
                  and (matcher is None or d.virtual_server.lower() == typed)]
    if found:
        return list(dict.fromkeys(found))  # in the configuration's order
    where = f"virtual server(s) {', '.join(virtual_server_id(v) for v in chosen)}" \
        if matcher is not None else options.config
    servers = {endpoint_text(rs.address, rs.port) for vs in chosen for rs in vs.real_servers}
    hint = _suggest(endpoint_text(address, port), servers, "real servers")
    raise UsageError(f"no real server {endpoint_text(address, port)} in {where}; {hint}")


def _describe(drain: RealServerId) -> str:
    return f"{endpoint_text(drain.address, drain.port)} in {drain.virtual_server}"


def _director_note(state_dir: str, changed: bool) -> str:
    pid = running_pid(state_dir)
    if pid is not None:
        return (f"director running (pid {pid}): it applies the change at its next reading "
                f"of {drains_path(state_dir)}" if changed else f"director running (pid {pid})")
    return (f"no director is running with state directory {state_dir}: the change applies "
            f"when it starts" if changed else
            f"no director is running with state directory {state_dir}")


def _change(options: argparse.Namespace, drain: bool) -> int:
    config = _load(options)
    state_dir = options.state_dir
    with locked(state_dir):
        current = read_drains(state_dir)
        targets = _targets(config, options, current, undrain=not drain)
        new = current | set(targets) if drain else current - set(targets)
        if new != current:
            write_drains(state_dir, new)
    verb = "drained" if drain else "undrained"
    for target in targets:
        if (target in current) == drain:
            print(f"{_describe(target)}: already {verb if drain else 'not drained'}")
        else:
            print(f"{verb} {_describe(target)}")
    print(_director_note(state_dir, new != current))
    return 0


def _list(options: argparse.Namespace) -> int:
    drains = sorted(read_drains(options.state_dir))
    pid = running_pid(options.state_dir)
    if options.json:
        data: dict[str, Any] = {
            "version": VERSION, "director_pid": pid,
            "drains": [{"virtual_server": d.virtual_server, "address": d.address,
                        "port": d.port} for d in drains]}
        print(json.dumps(data, indent=2))
        return 0
    if not drains:
        print("no drained real servers")
    else:
        print(f"{len(drains)} drained real server(s):")
        for drain in drains:
            print(f"  {_describe(drain)}")
    print(_director_note(options.state_dir, False))
    return 0


def _guarded(command: Callable[[argparse.Namespace], int]
             ) -> Callable[[argparse.Namespace], int]:
    def run(options: argparse.Namespace) -> int:
        try:
            return command(options)
        except (UsageError, StateFileError) as error:
            print(f"director {getattr(options, 'command', None) or 'drain'}: {error}",
                  file=sys.stderr)
            return 1
    return run


def run_drain(options: argparse.Namespace) -> int:
    return _guarded(lambda o: _change(o, drain=True))(options)


def run_undrain(options: argparse.Namespace) -> int:
    return _guarded(lambda o: _change(o, drain=False))(options)


def run_drains(options: argparse.Namespace) -> int:
    return _guarded(_list)(options)


# ---------------------------------------------------------------- argument parsing


def _state_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", default=DEFAULT_STATE_DIR, metavar="DIR",
                        help=f"the running director's state directory "
                             f"(default: {DEFAULT_STATE_DIR})")


def add_parsers(subparsers: Any) -> None:
    """Add drain, undrain and drains to a `director` command parser. Each sets
    ``handler`` (options -> exit status); they load the configuration themselves."""
    for name, handler, what in (("drain", run_drain, "take a real server out of rotation "
                                 "(weight 0; its connections finish)"),
                                ("undrain", run_undrain, "put a drained real server back")):
        parser = subparsers.add_parser(name, help=what, description=what)
        parser.add_argument("-f", "--config", "--use-file", dest="config", required=True,
                            metavar="FILE", help="keepalived.conf or YAML configuration")
        parser.add_argument("--input-format", choices=FORMATS, default="auto",
                            help="configuration format (default: from the file name)")
        parser.add_argument("-i", "--config-id", metavar="ID",
                            help="keep '@ID' lines (keepalived's -i)")
        _state_dir_argument(parser)
        parser.add_argument("--virtual-server", metavar="VS",
                            help=f"only in this virtual server ({VS_FORMS}); default: every "
                                 f"virtual server that has the real server")
        parser.add_argument("server", metavar="ADDRESS[:PORT]",
                            help="the real server (IPv6: [ADDRESS]:PORT); without a port, "
                                 "every port of that address")
        parser.set_defaults(handler=handler)
    drains = subparsers.add_parser("drains", help="list the drained real servers",
                                   description="list the drained real servers")
    _state_dir_argument(drains)
    drains.add_argument("--json", action="store_true", help="JSON output")
    drains.set_defaults(handler=run_drains)


def main(argv: Sequence[str] | None = None) -> int:
    """The three commands alone (``python -m director.cli.drain``, and tests)."""
    parser = argparse.ArgumentParser(prog="director")
    add_parsers(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    options = parser.parse_args(argv)
    return options.handler(options)


if __name__ == "__main__":
    sys.exit(main())
