"""`director`: the daemon (`run`) and its configuration and operator commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from director.config.errors import ConfigError, Problem
from director.config.load import FORMATS, load_config

SOME_SERVERS_DOWN = 3


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--config", "--use-file", dest="config", required=True,
                        metavar="FILE", help="keepalived.conf or YAML configuration")
    parser.add_argument("--input-format", choices=FORMATS, default="auto",
                        help="configuration format (default: from the file name)")
    parser.add_argument("-i", "--config-id", metavar="ID",
                        help="keep '@ID' lines (keepalived's -i); default: the short host name")
    parser.add_argument("--strict", action="store_true", help="treat warnings as errors")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="director", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check-config", help="validate a configuration (keepalived -t)")
    _add_config_arguments(check)

    dump = commands.add_parser("dump-config", help="print the resolved configuration model")
    _add_config_arguments(dump)
    dump.add_argument("--format", choices=("json", "yaml"), default="json")

    convert = commands.add_parser("convert", help="print a configuration as YAML")
    _add_config_arguments(convert)

    servers = commands.add_parser(
        "check-servers", help="run every health check once, now, and show the verdicts "
                              "(exit 0: all real servers up, 3: some down)")
    _add_config_arguments(servers)
    servers.add_argument("--json", action="store_true", help="JSON output")

    run = commands.add_parser(
        "run", help="run the director in the foreground (SIGHUP: reload, SIGTERM: stop)")
    _add_config_arguments(run)
    halves = run.add_mutually_exclusive_group()
    halves.add_argument("--checkers-only", action="store_true",
                        help="run the health checks and the IPVS table only (no VRRP)")
    halves.add_argument("--vrrp-only", action="store_true",
                        help="run VRRP only: the instances, their VIPs and tracking "
                             "(SIGTERM: graceful handover, SIGINT: stop at once)")
    run.add_argument("--dry-run", action="store_true",
                     help="change nothing: the IPVS table is kept in memory (starting empty), "
                          "VRRP sends no advert and adds no VIP; every change it would "
                          "make is logged")
    run.add_argument("--memory-ipvs", action="store_true",
                     help="keep the IPVS table in memory and log its changes, but do "
                          "everything else for real: VRRP, scripts, mail (hosts without "
                          "ip_vs, tests)")
    run.add_argument("--keep-ipvs", action="store_true",
                     help="on stop, leave the IPVS table as it is (for a hitless restart)")
    run.add_argument("--state-dir", default=None, metavar="DIR",
                     help="status, drains and owned-services files (default: "
                          "/run/lvs-director)")
    run.add_argument("--log-level", default="info",
                     choices=("debug", "info", "warning", "error"),
                     help="least severe messages logged (default: info)")
    run.add_argument("--api-listen", metavar="[HOST:]PORT",
                     help="serve the status API over TCP (default host 127.0.0.1)")
    run.add_argument("--api-socket", metavar="PATH",
                     help="serve the status API on a unix socket")
    run.add_argument("--api-token-file", metavar="FILE",
                     help="require the bearer token in this file (one word) on the API")
    run.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)

    from director.cli import drain, reload

    drain.add_parsers(commands)
    reload.add_parser(commands)
    from director.cli import status

    status.add_parsers(commands)
    return parser


def _report(problems: Sequence[Problem]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    handler = getattr(options, "handler", None)
    if handler is not None:  # drain, undrain, drains, reload, status, dump
        return handler(options)
    if options.command == "run" and (options.checkers_only or options.vrrp_only) and (
            options.api_listen or options.api_socket or options.api_token_file):
        print("director run: the status API is served by the supervisor (director run "
              "without --vrrp-only/--checkers-only)", file=sys.stderr)
        return 2
    try:
        config, problems = load_config(options.config, strict=options.strict,
                                       config_id=options.config_id,
                                       input_format=options.input_format)
    except ConfigError as error:
        _report(error.problems)
        failed = sum(1 for p in error.problems if p.severity == "error")
        print(f"{options.config}: configuration is NOT valid "
              f"({failed} error(s), {len(error.problems) - failed} warning(s))", file=sys.stderr)
        return 1
    if not (options.command == "run" and options.supervised):  # the parent said it
        _report(problems)

    if options.command == "check-servers":
        return _check_servers(config, options.json)
    if options.command == "run" and not (options.checkers_only or options.vrrp_only):
        from director.supervisor import run_supervisor

        return run_supervisor(options)  # the configuration was valid
    if options.command == "run" and options.vrrp_only:
        from director.run_vrrp import run_vrrp

        return run_vrrp(options, config)
    if options.command == "run":
        from director.run_checkers import run_checkers

        return run_checkers(options, config)

    from director.config.yaml_config import dump_json, dump_yaml

    if options.command == "check-config":
        print(f"{options.config}: configuration is valid ({_summary(config)})")
    elif options.command == "dump-config" and options.format == "json":
        sys.stdout.write(dump_json(config))
    elif options.command == "dump-config":
        sys.stdout.write(dump_yaml(config))
    else:  # convert: what a person would write; what is inherited is left out
        sys.stdout.write(dump_yaml(config, concise=True))
    return 0


def _check_servers(config, as_json: bool) -> int:
    import asyncio
    import json

    from director.check_servers import as_data, as_text, check_all

    report = asyncio.run(check_all(config))
    if as_json:
        print(json.dumps(as_data(report), indent=2))
    else:
        sys.stdout.write(as_text(report))
    all_up = all(s.up for _, servers in report for s in servers)
    return 0 if all_up else SOME_SERVERS_DOWN


def _summary(config) -> str:
    real = sum(len(vs.real_servers) for vs in config.virtual_servers)
    return (f"{len(config.vrrp.instances)} VRRP instance(s), "
            f"{len(config.virtual_servers)} virtual server(s), {real} real server(s)")


if __name__ == "__main__":
    sys.exit(main())
