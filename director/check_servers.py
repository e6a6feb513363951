"""Run every configured health check once, now: what `director check-servers` shows
before an operator starts or reloads the daemon."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from checkers.probe import ProbeContext, ProbeResult, TrackedFile, run_probe
from checkers.spec import CheckerSpec
from director.config.model import Config, RealServer, VirtualServer

MAX_CONCURRENT_PROBES = 256


@dataclass(frozen=True, slots=True)
class CheckedServer:
    real_server: RealServer
    results: tuple[tuple[CheckerSpec, ProbeResult], ...]

    @property
    def up(self) -> bool:
        return all(result.ok for _, result in self.results)

    @property
    def weight(self) -> int:
        dynamic = [r.weight for _, r in self.results if r.weight is not None]
        weight = dynamic[-1] if dynamic else self.real_server.weight
        return weight + sum(r.weight_delta or 0 for _, r in self.results)

    @property
    def latency(self) -> float:
        return max((r.latency for _, r in self.results), default=0.0)

    @property
    def reason(self) -> str:
        failed = [(c, r) for c, r in self.results if not r.ok]
        shown = failed or list(self.results)
        if not shown:
            return "no checker: always up"
        return "; ".join(f"{c.kind}: {r.reason}" for c, r in shown)


def probe_context(config: Config) -> ProbeContext:
    defs = config.global_defs
    files = {t.name: TrackedFile(path=t.file, weight=t.weight, reverse=t.weight_reverse)
             for t in config.vrrp.track_files}
    return ProbeContext(script_user=defs.script_user, script_group=defs.script_group,
                        enable_script_security=defs.enable_script_security,
                        track_files=files)


async def check_all(config: Config) -> list[tuple[VirtualServer, list[CheckedServer]]]:
    context = probe_context(config)
    limit = asyncio.Semaphore(MAX_CONCURRENT_PROBES)

    async def one(checker: CheckerSpec) -> ProbeResult:
        async with limit:
            return await run_probe(checker, context)

    async def server(rs: RealServer) -> CheckedServer:
        results = await asyncio.gather(*(one(c) for c in rs.checkers))
        return CheckedServer(rs, tuple(zip(rs.checkers, results, strict=True)))

    services = await asyncio.gather(*(
        asyncio.gather(*(server(rs) for rs in vs.real_servers))
        for vs in config.virtual_servers))
    return [(vs, list(checked)) for vs, checked in
            zip(config.virtual_servers, services, strict=True)]


def as_text(report: list[tuple[VirtualServer, list[CheckedServer]]]) -> str:
    lines = []
    for vs, servers in report:
        up = sum(s.up for s in servers)
        lines.append(f"{vs.describe()} {vs.lvs_sched}: {up}/{len(servers)} real servers up")
        for s in servers:
            rs = s.real_server
            where = f"[{rs.address}]:{rs.port}" if rs.address.version == 6 else \
                f"{rs.address}:{rs.port}"
            lines.append(f"  {where:<24} {'UP' if s.up else 'DOWN':<5} weight {s.weight:<4} "
                         f"{s.latency * 1000:8.1f} ms  {s.reason}")
    return "\n".join(lines) + "\n"


def as_data(report: list[tuple[VirtualServer, list[CheckedServer]]]) -> list[dict]:
    return [{
        "virtual_server": vs.describe(),
        "scheduler": vs.lvs_sched,
        "real_servers": [{
            "address": str(s.real_server.address),
            "port": s.real_server.port,
            "up": s.up,
            "weight": s.weight,
            "latency_ms": round(s.latency * 1000, 3),
            "reason": s.reason,
            "checks": [{"kind": c.kind, "ok": r.ok, "reason": r.reason,
                        "latency_ms": round(r.latency * 1000, 3), "weight": r.weight}
                       for c, r in s.results],
        } for s in servers],
    } for vs, servers in report]
