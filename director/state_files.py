"""The running director's files in its state directory (default /run/lvs-director).

- ``status.json``: what the director is doing now (written by it, read by the CLIs);
- ``drains.json``: the real servers an operator drained (written by ``director drain``,
  polled by the running director, so drains outlive reloads and restarts);
- ``owned.json``: the kernel services this director created, so that it deletes only
  those (and not what someone else put in the IPVS table);
- ``director.pid``: the running director's pid (SIGHUP: reload).

Every JSON file is written atomically (a temporary file in the same directory, fsync,
rename), so a reader sees the old file or the new one, never half of one. Every
problem is a `StateFileError` whose message names the file and what is wrong.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from typing import Any

from director.ipvs.table import Protocol, ServiceKey
from director.pool import RealServerId

DEFAULT_STATE_DIR = "/run/lvs-director"
STATUS_FILE = "status.json"
DRAINS_FILE = "drains.json"
OWNED_FILE = "owned.json"
PID_FILE = "director.pid"
VERSION = 1
FILE_MODE = 0o644
DIR_MODE = 0o755

_FAMILIES = {socket.AF_INET: "inet", socket.AF_INET6: "inet6"}
_FAMILY_NUMBERS = {name: number for number, name in _FAMILIES.items()}


class StateFileError(Exception):
    """A state file is missing, unreadable, malformed or stale; the message says which
    file and what is wrong."""


# ---------------------------------------------------------------- reading and writing


def _ensure_dir(directory: str) -> None:
    if os.path.isdir(directory):
        return
    try:
        os.makedirs(directory, exist_ok=True)
        os.chmod(directory, DIR_MODE)  # makedirs' mode is masked by the umask
    except OSError as error:
        raise StateFileError(f"{directory}: cannot create the state directory: "
                             f"{error.strerror or error}") from None


def write_json_atomic(path: str, data: Any) -> None:
    """Write `data` as JSON to `path` atomically (mode 0644; the directory is created
    0755 when missing)."""
    try:
        text = json.dumps(data, indent=2) + "\n"
    except (TypeError, ValueError) as error:
        raise StateFileError(f"{path}: cannot write: not JSON data ({error})") from None
    write_text_atomic(path, text)


def write_text_atomic(path: str, text: str) -> None:
    """Write `text` to `path` atomically: readers see the old file or the whole new one
    (mode 0644; the directory is created 0755 when missing)."""
    directory = os.path.dirname(os.path.abspath(path))
    _ensure_dir(directory)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                                   dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            os.fchmod(stream.fileno(), FILE_MODE)
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(directory)
    except OSError as error:
        raise StateFileError(f"{path}: cannot write: {error.strerror or error}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _fsync_dir(directory: str) -> None:
    """Make the rename itself durable (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_json(path: str) -> Any:
    """The decoded JSON of `path`; FileNotFoundError when it does not exist."""
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as error:
        detail = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise StateFileError(f"{path}: cannot read: {detail}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise StateFileError(f"{path}: not valid JSON (line {error.lineno}, column "
                             f"{error.colno}: {error.msg})") from None


def _versioned(path: str, data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise StateFileError(f"{path}: expected a JSON object ({what}), got "
                             f"{type(data).__name__}")
    version = data.get("version")
    if version != VERSION:
        raise StateFileError(f"{path}: unsupported version {version!r} (this director "
                             f"reads version {VERSION})")
    return data


@contextlib.contextmanager
def locked(state_dir: str, name: str = "drains") -> Iterator[None]:
    """Hold an exclusive lock (``.NAME.lock`` in the state directory) for a
    read-modify-write, so that two operators changing drains at once lose nothing."""
    _ensure_dir(state_dir)
    path = os.path.join(state_dir, f".{name}.lock")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    except OSError as error:
        raise StateFileError(f"{path}: cannot open the lock: "
                             f"{error.strerror or error}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# ---------------------------------------------------------------- status.json


def status_path(state_dir: str) -> str:
    return os.path.join(state_dir, STATUS_FILE)


def write_status(state_dir: str, data: dict[str, Any]) -> None:
    """Write status.json; ``version`` and ``written_at`` (now) are filled in when
    `data` does not give them."""
    write_json_atomic(status_path(state_dir),
                      {"version": VERSION, "written_at": time.time(), **data})


def read_status(state_dir: str, max_age: float | None = None) -> dict[str, Any]:
    """The running director's status; StateFileError when the file is missing,
    unreadable, of another version, or (with `max_age`) written more than `max_age`
    seconds ago."""
    path = status_path(state_dir)
    try:
        data = _read_json(path)
    except FileNotFoundError:
        raise StateFileError(f"{path}: no status file (is the director running, with "
                             f"this state directory?)") from None
    status = _versioned(path, data, "the director's status")
    written_at = status.get("written_at")
    if isinstance(written_at, bool) or not isinstance(written_at, int | float):
        raise StateFileError(f"{path}: 'written_at' is missing or not a number")
    if max_age is not None:
        age = time.time() - written_at
        if age > max_age:
            raise StateFileError(f"{path}: written {age:.0f} s ago (more than {max_age:g} "
                                 f"s): the director is not running or is stuck")
    return status


# ---------------------------------------------------------------- drains.json


def drains_path(state_dir: str) -> str:
    return os.path.join(state_dir, DRAINS_FILE)


def _drain_of(path: str, index: int, entry: Any) -> RealServerId:
    where = f"{path}: drains[{index}]"
    if not isinstance(entry, dict):
        raise StateFileError(f"{where}: expected an object, got {type(entry).__name__}")
    vs, address, port = entry.get("virtual_server"), entry.get("address"), entry.get("port", 0)
    if not isinstance(vs, str) or not vs:
        raise StateFileError(f"{where}: 'virtual_server' is missing or not a string")
    if not isinstance(address, str):
        raise StateFileError(f"{where}: 'address' is missing or not a string")
    try:
        address = str(ipaddress.ip_address(address))
    except ValueError:
        raise StateFileError(f"{where}: '{address}' is not an IP address") from None
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise StateFileError(f"{where}: port {port!r} is not a port number (0-65535)")
    return RealServerId(vs, address, port)


def _read_list(path: str, key: str, what: str) -> list[Any]:
    """The list under `key` of a versioned state file; empty when the file does not
    exist."""
    try:
        data = _read_json(path)
    except FileNotFoundError:
        return []
    entries = _versioned(path, data, what).get(key)
    if not isinstance(entries, list):
        raise StateFileError(f"{path}: '{key}' is missing or not a list")
    return entries


def read_drains(state_dir: str) -> frozenset[RealServerId]:
    """The drained real servers (none when the file does not exist)."""
    path = drains_path(state_dir)
    drains = _read_list(path, "drains", "the drained real servers")
    return frozenset(_drain_of(path, i, entry) for i, entry in enumerate(drains))


def write_drains(state_dir: str, drains: Iterable[RealServerId]) -> None:
    entries = [{"virtual_server": d.virtual_server, "address": d.address, "port": d.port}
               for d in sorted(set(drains))]
    write_json_atomic(drains_path(state_dir), {"version": VERSION, "drains": entries})


# ---------------------------------------------------------------- owned.json


def owned_path(state_dir: str) -> str:
    return os.path.join(state_dir, OWNED_FILE)


def service_key_data(key: ServiceKey) -> dict[str, Any]:
    """A ServiceKey as a JSON object that `service_key_of` reads back exactly."""
    family = _FAMILIES.get(key.family)
    if family is None:
        raise StateFileError(f"service {key}: address family {key.family} is neither "
                             f"inet nor inet6")
    return {"family": family,
            "protocol": None if key.protocol is None else key.protocol.value,
            "address": None if key.address is None else str(key.address),
            "port": key.port, "fwmark": key.fwmark}


def service_key_of(data: Any, where: str = "service") -> ServiceKey:
    if not isinstance(data, dict):
        raise StateFileError(f"{where}: expected an object, got {type(data).__name__}")
    written = data.get("family")
    family = _FAMILY_NUMBERS.get(written) if isinstance(written, str) else None
    if family is None:
        raise StateFileError(f"{where}: family {written!r} is not inet or inet6")
    protocol = data.get("protocol")
    try:
        proto = None if protocol is None else Protocol(protocol)
    except ValueError:
        raise StateFileError(f"{where}: unknown protocol {protocol!r}") from None
    address = data.get("address")
    try:
        ip = None if address is None else ipaddress.ip_address(address)
    except ValueError:
        raise StateFileError(f"{where}: {address!r} is not an IP address") from None
    if ip is not None and _FAMILIES[family] != ("inet" if ip.version == 4 else "inet6"):
        raise StateFileError(f"{where}: address {ip} is not of family {_FAMILIES[family]}")
    port, fwmark = data.get("port", 0), data.get("fwmark", 0)
    for name, value, high in (("port", port, 65535), ("fwmark", fwmark, 2**32 - 1)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
            raise StateFileError(f"{where}: {name} {value!r} is out of range (0-{high})")
    return ServiceKey(family, proto, ip, port, fwmark)


def read_owned(state_dir: str) -> set[ServiceKey]:
    """The services this director created (none when the file does not exist)."""
    path = owned_path(state_dir)
    services = _read_list(path, "services", "the services this director created")
    return {service_key_of(entry, f"{path}: services[{i}]")
            for i, entry in enumerate(services)}


def write_owned(state_dir: str, keys: Iterable[ServiceKey]) -> None:
    services = sorted((service_key_data(k) for k in set(keys)),
                      key=lambda d: json.dumps(d, sort_keys=True))
    write_json_atomic(owned_path(state_dir), {"version": VERSION, "services": services})


# ---------------------------------------------------------------- director.pid


def pid_path(state_dir: str) -> str:
    return os.path.join(state_dir, PID_FILE)


def read_pid(state_dir: str) -> int | None:
    """The pid in the pid file; None when there is none (or it holds no pid)."""
    try:
        with open(pid_path(state_dir), encoding="ascii") as stream:
            text = stream.read(64).strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def process_argv(pid: int) -> list[str] | None:
    """The command line of a live process (None: gone, a zombie, or not readable)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as stream:
            raw = stream.read()
    except OSError:
        return None
    if not raw:  # zombies and kernel threads have none
        return None
    return [arg.decode("utf-8", "replace") for arg in raw.rstrip(b"\0").split(b"\0")]


def is_director(argv: list[str]) -> bool:
    """Whether a command line is a director's: the ``director`` program (any path, or
    run by Python), or Python running ``-m director...``."""
    if not argv:
        return False
    if os.path.basename(argv[0]) == "director":
        return True
    if not os.path.basename(argv[0]).startswith("python"):
        return False
    words = iter(argv[1:])
    for arg in words:
        if arg == "-m":
            module = next(words, "")
            return module == "director" or module.startswith("director.")
        if arg in ("-X", "-W"):  # options with a value
            next(words, None)
        elif arg == "-c" or not arg.startswith("-"):  # code, or the script Python runs
            return os.path.basename(arg) == "director"
    return False


def running_pid(state_dir: str) -> int | None:
    """The pid of the director running with this state directory, or None when the pid
    file is missing or names a process that is gone or is not a director."""
    pid = read_pid(state_dir)
    if pid is None:
        return None
    argv = process_argv(pid)
    return pid if argv is not None and is_director(argv) else None


def write_pid(state_dir: str) -> None:
    """Write this process's pid to director.pid. Refuses (StateFileError) when the file
    names another live director: two directors must not share a state directory. A
    stale file (the process is gone, or the pid now belongs to something else) is
    replaced."""
    _ensure_dir(state_dir)
    path = pid_path(state_dir)
    mine = os.getpid()
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{PID_FILE}.", suffix=".tmp", dir=state_dir)
        with os.fdopen(fd, "w", encoding="ascii") as stream:
            os.fchmod(stream.fileno(), FILE_MODE)
            stream.write(f"{mine}\n")
            stream.flush()
            os.fsync(stream.fileno())
        try:
            os.link(tmp, path)  # exclusive: fails when a pid file exists
        except FileExistsError:
            other = running_pid(state_dir)
            if other is not None and other != mine:
                raise StateFileError(
                    f"{path}: another director (pid {other}) is running with state "
                    f"directory {state_dir}; stop it or use another --state-dir") from None
            os.replace(tmp, path)
            tmp = None
    except OSError as error:
        raise StateFileError(f"{path}: cannot write: {error.strerror or error}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def remove_pid(state_dir: str, pid: int | None = None) -> bool:
    """Remove director.pid if it names `pid` (default: this process) or no pid at all;
    a file another director wrote is left alone. Whether it was removed."""
    pid = os.getpid() if pid is None else pid
    path = pid_path(state_dir)
    if not os.path.exists(path):
        return False
    found = read_pid(state_dir)
    if found is not None and found != pid:
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as error:
        raise StateFileError(f"{path}: cannot remove: {error.strerror or error}") from None
    return True
