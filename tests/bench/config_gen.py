"""Generate large keepalived.conf files for benchmarks."""

from __future__ import annotations

CHECKS = (
    "        TCP_CHECK {{\n            connect_timeout 3\n        }}\n",
    "        HTTP_GET {{\n            url {{\n                path /health\n"
    "                status_code 200\n            }}\n            connect_timeout 3\n"
    "            retry 2\n        }}\n",
)


def vip(v: int) -> str:
    return f"198.51.{100 + v // 250 % 100}.{v % 250 + 1}"


def rip(r: int) -> str:
    return f"203.0.{113 + r // 250}.{r % 250 + 1}"


def generate(virtual_servers: int, real_servers: int, changed: int = 0,
             delay_loop: int = 10) -> str:
    """`virtual_servers` services on 198.51.100.x/203.0.113.x, each with `real_servers`
    real servers; every real server has one checker (TCP_CHECK or HTTP_GET, alternating).

    `changed` virtual servers, spread evenly over the file, differ from the plain
    config: each loses its first real server, its second gets weight 100 and it gains
    a real server at the next address, with the other kind of checker, so that the
    lines after it move (3 IPVS operations each)."""
    step = virtual_servers // changed if changed else 0
    lines = ["global_defs {\n    router_id bench\n}\n"]
    for v in range(virtual_servers):
        port = 80 + v // 25_000
        lines.append(f"virtual_server {vip(v)} {port} {{\n    delay_loop {delay_loop}\n"
                     f"    lvs_sched wrr\n    lvs_method DR\n    protocol TCP\n")
        change = bool(step) and v % step == step // 2 and v // step < changed
        for r in range(1 if change else 0, real_servers + (1 if change else 0)):
            weight = 100 if change and r == 1 else 1 + r % 5
            lines.append(f"    real_server {rip(r)} {port} {{\n        weight {weight}\n")
            added = change and r == real_servers  # another checker: later lines move
            lines.append(CHECKS[(v + r + added) % 2].format())
            lines.append("    }\n")
        lines.append("}\n")
    return "".join(lines)


def changed_virtual_servers(virtual_servers: int, changed: int) -> list[str]:
    """The addresses of the virtual servers `generate(..., changed)` changes."""
    step = virtual_servers // changed
    return [vip(v) for v in range(virtual_servers)
            if v % step == step // 2 and v // step < changed]
