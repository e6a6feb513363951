"""`make demo`: the configuration pipeline on the embedded LVS-DR pair config.

Loads conf/lvs-dr-pair.conf as each director of the pair sees it (keepalived's
``-i`` config id), shows what each will run, converts it to YAML and back, and shows
how a broken file is reported. The daemon, checkers, IPVS and VRRP parts join this
demo as they are built.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from director.config.errors import ConfigError
from director.config.load import load_config
from director.config.model import Config
from director.config.yaml_config import dump_yaml

DEFAULT = Path(__file__).resolve().parents[1] / "conf" / "lvs-dr-pair.conf"


def say(text: str = "") -> None:
    print(text, flush=True)


def describe_director(config: Config) -> None:
    for instance in config.vrrp.instances:
        vips = ", ".join(f"{v.address} dev {v.dev or instance.interface}"
                         + (f" label {v.label}" if v.label else "")
                         for v in instance.virtual_ipaddresses)
        say(f"  VRRP {instance.name}: VRID {instance.virtual_router_id} on "
            f"{instance.interface}, v{instance.version}, state {instance.state}, "
            f"priority {instance.priority}, advert every {instance.advert_int:g} s")
        say(f"    VIPs: {vips}")
    say("  IPVS table it will maintain (ipvsadm -Ln style):")
    say("    Prot LocalAddress:Port Scheduler Flags")
    say("      -> RemoteAddress:Port           Forward Weight  Health check")
    for vs in config.virtual_servers:
        persist = f" persistent {vs.persistence_timeout:g}" if vs.persistence_timeout else ""
        say(f"    {vs.effective_protocol.value}  {vs.address}:{vs.port} {vs.lvs_sched}{persist}")
        for rs in vs.real_servers:
            checks = "; ".join(_checker(c) for c in rs.checkers) or "none"
            method = {"NAT": "Masq", "DR": "Route", "TUN": "Tunnel"}[rs.lvs_method.forwarding]
            say(f"      -> {rs.address}:{rs.port:<5}  {method:<8}{rs.weight:<7} {checks}")
        if vs.sorry_server:
            say(f"      (sorry server {vs.sorry_server.address}:{vs.sorry_server.port} "
                f"when fewer than quorum {vs.quorum} weight is up)")


def _checker(checker) -> str:
    urls = getattr(checker, "urls", ())
    what = f" {','.join(u.path for u in urls)}" if urls else ""
    return (f"{checker.kind}{what} every {checker.delay_loop:g} s, "
            f"timeout {checker.connect_timeout:g} s, retry {checker.retry}"
            f"x{checker.delay_before_retry:g} s")


def main(argv: list[str] | None = None) -> int:
    path = Path(argv[0]) if argv else DEFAULT
    say(f"lvs-director demo: {path.name}, one keepalived.conf for both directors\n")
    for director in ("dirA", "dirB"):
        started = time.perf_counter()
        config, warnings = load_config(str(path), config_id=director)
        took = (time.perf_counter() - started) * 1000
        say(f"== director {director} (director check-config -f {path.name} -i {director}): "
            f"valid, {len(warnings)} warning(s), loaded in {took:.0f} ms")
        describe_director(config)
        say()

    config, _ = load_config(str(path), config_id="dirA")
    with tempfile.TemporaryDirectory() as tmp:
        yaml_path = Path(tmp) / "dirA.yaml"
        yaml_path.write_text(dump_yaml(config, concise=True))
        again, _ = load_config(str(yaml_path))
        say(f"== director convert -f {path.name} -i dirA > dirA.yaml "
            f"({len(yaml_path.read_text().splitlines())} lines of YAML)")
        say(f"  loading dirA.yaml gives the same model: {again == config}\n")

        broken = Path(tmp) / "broken.conf"
        broken.write_text(path.read_text()
                          .replace("virtual_router_id 51", "virtual_router_id 300")
                          .replace("lvs_sched wrr", "lvs_sched fastest", 1))
        say("== a broken copy (VRID 300, scheduler 'fastest'): director check-config says")
        try:
            load_config(str(broken), config_id="dirA")
            say("  (unexpectedly valid)")
            return 1
        except ConfigError as error:
            for problem in error.problems:
                say(f"  {str(problem).replace(tmp + '/', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
