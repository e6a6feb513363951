"""Load and validate a 2,000 virtual x 20 real server config; print time and peak memory.

Each measurement runs in a fresh interpreter so that peak RSS belongs to that load alone.
Goal (issue 3): under 2 s on this machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.bench.config_gen import generate

MEASURE = r"""
import json, resource, sys, time
from director.config.load import load_config
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
wall, cpu = time.perf_counter(), time.process_time()
config, problems = load_config(sys.argv[1])
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
real = sum(len(vs.real_servers) for vs in config.virtual_servers)
print(json.dumps({"wall": wall, "cpu": cpu, "rss_base_kb": base, "rss_peak_kb": peak,
                  "virtual": len(config.virtual_servers), "real": real,
                  "problems": len(problems)}))
"""

ROOT = Path(__file__).resolve().parents[2]


def measure(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path)], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=300).stdout
    return json.loads(out)


def test_load_2000x20(tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(generate(2000, 20))
    yaml_path = tmp_path / "director.yaml"
    yaml_path.write_text(subprocess.run(
        [sys.executable, "-m", "director.cli.main", "convert", "-f", str(conf)], cwd=ROOT,
        check=True, capture_output=True, text=True, timeout=300).stdout)

    lines = conf.read_text().count("\n")
    print(f"\nconfig: 2,000 virtual x 20 real servers, 40,000 checkers, {lines:,} lines")
    for label, path in (("keepalived.conf", conf), ("YAML", yaml_path)):
        runs = [measure(path) for _ in range(3)]
        best = min(runs, key=lambda r: r["wall"])
        assert best["virtual"] == 2000 and best["real"] == 40_000
        print(f"{label:>16}: load+validate wall {best['wall']:.2f} s (runs: "
              + ", ".join(f"{r['wall']:.2f}" for r in runs)
              + f"), cpu {best['cpu']:.2f} s, peak RSS {best['rss_peak_kb'] / 1024:.0f} MB "
              f"(+{(best['rss_peak_kb'] - best['rss_base_kb']) / 1024:.0f} MB over imports); "
              f"goal < 2 s")
