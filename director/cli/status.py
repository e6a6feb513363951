"""`director status` (a readable table from the running director's status API) and
`director dump` (make the running director write a keepalived-like dump, and print it).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import sys
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

from director.dumps import KINDS, SIGNAL_OF_KIND, dump_path
from director.state_files import DEFAULT_STATE_DIR, running_pid

DEFAULT_TIMEOUT = 5.0


class StatusError(Exception):
    """The status cannot be had; the message says why and what to do."""


# ---------------------------------------------------------------- fetching


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def fetch_status(url: str | None, socket_path: str | None, token: str | None,
                 timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """GET /status from the API at `url` (http://HOST:PORT) or on the unix socket."""
    where: str
    if socket_path is not None:
        connection: http.client.HTTPConnection = _UnixConnection(socket_path, timeout)
        where, prefix = f"unix socket {socket_path}", ""
    else:
        assert url is not None
        parsed = urllib.parse.urlsplit(url if "//" in url else f"http://{url}")
        if parsed.scheme != "http" or not parsed.hostname:
            raise StatusError(f"--url {url}: expected http://HOST:PORT")
        try:
            port = parsed.port or 80
        except ValueError:
            raise StatusError(f"--url {url}: the port is not a number (1-65535)") from None
        connection = http.client.HTTPConnection(parsed.hostname, port, timeout=timeout)
        where, prefix = url, parsed.path.rstrip("/")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        connection.request("GET", f"{prefix}/status", headers=headers)
        answer = connection.getresponse()
        body = answer.read()
    except (OSError, http.client.HTTPException) as error:
        detail = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise StatusError(f"cannot reach the director's API at {where}: {detail} (is it "
                          f"running with --api-listen / --api-socket?)") from None
    finally:
        connection.close()
    if answer.status == 401:
        raise StatusError(f"{where}: the API needs a bearer token"
                          + (" and refused this one" if token else ": give --token-file"))
    if answer.status != 200:
        raise StatusError(f"{where}: HTTP {answer.status} {answer.reason}: "
                          f"{body[:200].decode('utf-8', 'replace').strip()}")
    try:
        view = json.loads(body)
    except ValueError:
        raise StatusError(f"{where}: the answer is not JSON") from None
    if not isinstance(view, dict):
        raise StatusError(f"{where}: the answer is not a status object")
    return view


# ---------------------------------------------------------------- the table


def _table(headers: Sequence[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = [indent + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))
              for r in rows]
    return [line.rstrip() for line in lines]


def _ms(seconds: Any) -> str:
    if isinstance(seconds, int | float) and not isinstance(seconds, bool):
        return f"{seconds * 1000:.1f} ms"
    return "-"


def _age(now: float, epoch: Any) -> str:
    if isinstance(epoch, int | float) and not isinstance(epoch, bool):
        return f"{max(0.0, now - epoch):.0f} s ago"
    return "-"


def _sum(stats: list[dict[str, Any]], field: str) -> str:
    return str(sum(int(s.get(field) or 0) for s in stats))


def status_text(view: dict[str, Any]) -> str:
    """The view as an operator reads it: the daemon, VRRP instances, virtual servers."""
    now = view.get("generated_at") or time.time()
    lines: list[str] = []
    daemon = view.get("daemon")
    if daemon:
        children = ", ".join(
            f"{c.get('role')} " + (f"pid {c.get('pid')}" if c.get("running") else
                                   f"NOT RUNNING ({c.get('last_exit') or 'starting'})")
            + (f", {c.get('restarts')} restart(s)" if c.get("restarts") else "")
            for c in daemon.get("children") or ())
        reload = daemon.get("reload") or {}
        lines.append(f"director pid {daemon.get('pid')}, config {daemon.get('config')}"
                     f"{' (dry run)' if daemon.get('dry_run') else ''}, up "
                     f"{_age(now, daemon.get('started_at')).replace(' ago', '')}")
        lines.append(f"  children: {children}")
        if reload.get("count"):
            outcome = "ok" if reload.get("ok") else "REFUSED"
            lines.append(f"  reloads: {reload.get('count')}, last {outcome} "
                         f"{_age(now, reload.get('at'))}")
    for role, source in sorted((view.get("files") or {}).items()):
        if source.get("stale"):
            lines.append(f"  WARNING: {role} status is stale: {source.get('stale_reason')}")
    ipvs = view.get("ipvs") or {}
    counted = bool(ipvs.get("available"))
    if not counted:
        lines.append(f"  IPVS counters: {ipvs.get('problem')}")

    instances = (view.get("vrrp") or {}).get("instances") or []
    lines.append("")
    lines.append(f"VRRP instances ({len(instances)})")
    if instances:
        lines += _table(
            ["INSTANCE", "STATE", "PRIO", "MASTER", "VRID", "INTERFACE", "VIPS"],
            [[str(i.get("name")), str(i.get("state")), str(i.get("priority")),
              str(i.get("master") or "-"), str(i.get("vrid")), str(i.get("interface")),
              ",".join(i.get("virtual_addresses") or []) or "-"] for i in instances])
    for group in (view.get("vrrp") or {}).get("sync_groups") or []:
        lines.append(f"  sync group {group.get('name')}: {group.get('state')}")

    servers = view.get("virtual_servers") or []
    lines.append("")
    lines.append(f"Virtual servers ({len(servers)})")
    for vs in servers:
        notes = []
        if vs.get("quorum_up") is False:
            notes.append("QUORUM DOWN")
        if vs.get("sorry_active"):
            notes.append("sorry server in use")
        lines.append(f"  {vs.get('id')}  {', '.join(vs.get('services') or [])}"
                     + (f"  [{'; '.join(notes)}]" if notes else ""))
        rows = []
        for rs in vs.get("real_servers") or []:
            health = "DRAINED" if rs.get("drained") else ("UP" if rs.get("up") else "DOWN")
            stats = rs.get("ipvs") or []
            rows.append([str(rs.get("name")), health, str(rs.get("weight")),
                         _sum(stats, "active_connections") if counted else "-",
                         _sum(stats, "inactive_connections") if counted else "-",
                         _ms(rs.get("latency")), _age(now, rs.get("last_check")),
                         str(rs.get("reason") or "")])
        if rows:
            lines += _table(["REAL SERVER", "HEALTH", "WEIGHT", "ACTIVE", "INACTIVE",
                             "LATENCY", "CHECKED", "REASON"], rows, indent="    ")
        else:
            lines.append("    (no real server)")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- dump


def request_dump(kind: str, state_dir: str, timeout: float = DEFAULT_TIMEOUT) -> str:
    """Signal the running director to write its `kind` dump; wait for the file to be
    rewritten; return its text."""
    pid = running_pid(state_dir)
    if pid is None:
        raise StatusError(f"no director is running with state directory {state_dir} "
                          f"(give --state-dir?)")
    path = dump_path(state_dir, kind)

    def identity() -> tuple[int, int] | None:
        try:
            found = os.stat(path)
        except FileNotFoundError:
            return None
        return found.st_ino, found.st_mtime_ns

    before = identity()
    try:
        os.kill(pid, SIGNAL_OF_KIND[kind])
    except ProcessLookupError:
        raise StatusError(f"the director (pid {pid}) is gone") from None
    except PermissionError:
        raise StatusError(f"not allowed to signal the director (pid {pid}): run as its "
                          f"user or root") from None
    deadline = time.monotonic() + timeout
    while identity() in (before, None):
        if time.monotonic() >= deadline:
            raise StatusError(f"the director (pid {pid}) did not write {path} within "
                              f"{timeout:g} s (see its log)")
        time.sleep(0.05)
    try:
        with open(path, encoding="utf-8") as stream:
            return stream.read()
    except OSError as error:
        raise StatusError(f"{path}: cannot read: {error.strerror or error}") from None


# ---------------------------------------------------------------- commands


def _token(path: str | None) -> str | None:
    if path is None:
        return None
    from director.api import read_token

    try:
        return read_token(path).strip()
    except ValueError as error:
        raise StatusError(str(error).replace("--api-token-file", "--token-file")) from None


def run_status(options: argparse.Namespace) -> int:
    try:
        if options.url is None and options.socket is None:
            raise StatusError("give --url http://HOST:PORT or --socket PATH (the "
                              "director's --api-listen or --api-socket)")
        view = fetch_status(options.url, options.socket, _token(options.token_file),
                            options.timeout)
    except StatusError as error:
        print(f"director status: {error}", file=sys.stderr)
        return 1
    if options.json:
        print(json.dumps(view, indent=2))
    else:
        sys.stdout.write(status_text(view))
    return 0


def run_dump(options: argparse.Namespace) -> int:
    try:
        text = request_dump(options.kind, options.state_dir, options.timeout)
    except StatusError as error:
        print(f"director dump: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


def add_parsers(commands: Any) -> None:
    """Add `status` and `dump` to a `director` command parser (each sets ``handler``)."""
    what = "show the running director's status (from its status API)"
    status = commands.add_parser("status", help=what, description=what)
    where = status.add_mutually_exclusive_group()
    where.add_argument("--url", metavar="URL",
                       help="the API's address, as given to --api-listen: "
                            "http://127.0.0.1:PORT")
    where.add_argument("--socket", metavar="PATH",
                       help="the API's unix socket (--api-socket)")
    status.add_argument("--token-file", metavar="FILE",
                        help="file holding the API's bearer token")
    status.add_argument("--json", action="store_true", help="the status as JSON")
    status.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                        help=f"seconds to wait for the answer (default {DEFAULT_TIMEOUT:g})")
    status.set_defaults(handler=run_status)

    what = "make the running director write a dump (like keepalived's SIGUSR1, " \
           "SIGUSR2 and JSON signal) and print it"
    dump = commands.add_parser("dump", help=what, description=what)
    dump.add_argument("--kind", choices=KINDS, default="data",
                      help="data (configuration and state), stats (counters) or json "
                           "(default: data)")
    dump.add_argument("--state-dir", default=DEFAULT_STATE_DIR, metavar="DIR",
                      help=f"the running director's state directory "
                           f"(default: {DEFAULT_STATE_DIR})")
    dump.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                      help=f"seconds to wait for the file (default {DEFAULT_TIMEOUT:g})")
    dump.set_defaults(handler=run_dump)


def main(argv: Sequence[str] | None = None) -> int:
    """The two commands alone (``python -m director.cli.status``, and tests)."""
    parser = argparse.ArgumentParser(prog="director")
    add_parsers(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    options = parser.parse_args(argv)
    return options.handler(options)


if __name__ == "__main__":
    sys.exit(main())
