"""One check of one real server: the contract between check kinds and the engine.

Each check kind has a module with one coroutine, ``async def probe_xxx(spec, context)``,
that runs the check once, within the spec's own time limits (connect_timeout,
misc_timeout, ...), and returns a `ProbeResult`. A probe never raises for anything
the network, a server or a script does: that is a failed result with a reason a
person can act on. `run_probe` dispatches by kind and turns an escaped exception
into a failed result, so one bad check can never stall or crash the engine.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from checkers.spec import CheckerSpec


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    # What happened, for a person: "HTTP status 503 on /health", "connect timeout after
    # 5.0 s", "digest mismatch on /index.html"; on success a short description.
    reason: str
    latency: float  # seconds the probe took
    weight: int | None = None  # a weight the check sets (MISC_CHECK misc_dynamic)
    # An amount the check adds to the configured weight (FILE_CHECK: value x weight).
    weight_delta: int | None = None


@dataclass(frozen=True, slots=True)
class TrackedFile:
    """A global ``track_file`` a FILE_CHECK follows."""

    path: str
    weight: int = 1
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class ProbeContext:
    """What a probe needs beyond its spec, from the global configuration."""

    script_user: str | None = None  # global_defs script_user (MISC_CHECK default user)
    script_group: str | None = None
    enable_script_security: bool = False
    track_files: Mapping[str, TrackedFile] = field(default_factory=dict)


Probe = Callable[[CheckerSpec, ProbeContext], Awaitable[ProbeResult]]

# kind -> (module, coroutine name); imported on first use.
_PROBES: dict[str, tuple[str, str]] = {
    "TCP_CHECK": ("checkers.tcp", "probe_tcp"),
    "HTTP_GET": ("checkers.http", "probe_http"),
    "SSL_GET": ("checkers.http", "probe_http"),
    "MISC_CHECK": ("checkers.misc", "probe_misc"),
    "SMTP_CHECK": ("checkers.smtp", "probe_smtp"),
    "DNS_CHECK": ("checkers.dns", "probe_dns"),
    "UDP_CHECK": ("checkers.udp", "probe_udp"),
    "PING_CHECK": ("checkers.ping", "probe_ping"),
    "FILE_CHECK": ("checkers.file", "probe_file"),
    "BFD_CHECK": ("checkers.bfd", "probe_bfd"),
}
_loaded: dict[str, Probe] = {}


def probe_for(kind: str) -> Probe:
    probe = _loaded.get(kind)
    if probe is None:
        module, name = _PROBES[kind]
        probe = _loaded[kind] = getattr(importlib.import_module(module), name)
    return probe


async def run_probe(spec: CheckerSpec, context: ProbeContext) -> ProbeResult:
    started = time.monotonic()
    try:
        return await probe_for(spec.kind)(spec, context)
    except Exception as error:  # a bug in a probe must not take the engine down
        return ProbeResult(False, f"{spec.kind} failed internally: {error!r}",
                           time.monotonic() - started)
