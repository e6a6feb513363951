"""Generate large keepalived.conf files for benchmarks."""

from __future__ import annotations

CHECKS = (
    "        TCP_CHECK {{\n            connect_timeout 3\n        }}\n",
    "        HTTP_GET {{\n            url {{\n                path /health\n"
    "                status_code 200\n            }}\n            connect_timeout 3\n"
    "            retry 2\n        }}\n",
)


def generate(virtual_servers: int, real_servers: int) -> str:
    """`virtual_servers` services on 198.51.100.x/203.0.113.x, each with `real_servers`
    real servers; every real server has one checker (TCP_CHECK or HTTP_GET, alternating)."""
    lines = ["global_defs {\n    router_id bench\n}\n"]
    for v in range(virtual_servers):
        vip = f"198.51.{100 + v // 250 % 100}.{v % 250 + 1}"
        port = 80 + v // 25_000
        lines.append(f"virtual_server {vip} {port} {{\n    delay_loop 10\n"
                     f"    lvs_sched wrr\n    lvs_method DR\n    protocol TCP\n")
        for r in range(real_servers):
            rip = f"203.0.{113 + r // 250}.{r % 250 + 1}"
            lines.append(f"    real_server {rip} {port} {{\n        weight {1 + r % 5}\n")
            lines.append(CHECKS[(v + r) % 2].format())
            lines.append("    }\n")
        lines.append("}\n")
    return "".join(lines)
