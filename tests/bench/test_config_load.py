"""Load and validate a 2,000 virtual x 20 real server config; print time and peak memory,
beside keepalived 2.2.7's own config test (`keepalived -t`) on the same file.

Each measurement runs in a fresh process so that peak RSS belongs to that load alone.
Goal (issue 3): under 2 s on this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
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
RUNS = 3


def measure(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path)], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=300).stdout
    return json.loads(out)


def measure_keepalived(keepalived: str, path: Path) -> dict:
    """Whole-process wall time and peak RSS of `keepalived -t` (it parses and checks the
    config, then exits)."""
    started = time.perf_counter()
    process = subprocess.Popen([keepalived, "-t", "-f", str(path), "-n", "-l", "-D"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _, _, usage = os.wait4(process.pid, 0)
    finally:
        process.returncode = 0  # reaped by wait4
    return {"wall": time.perf_counter() - started, "cpu": usage.ru_utime + usage.ru_stime,
            "rss_peak_kb": usage.ru_maxrss}


def test_load_2000x20(tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(generate(2000, 20))
    yaml_path = tmp_path / "director.yaml"
    yaml_path.write_text(subprocess.run(
        [sys.executable, "-m", "director.cli.main", "convert", "-f", str(conf)], cwd=ROOT,
        check=True, capture_output=True, text=True, timeout=300).stdout)

    lines = conf.read_text().count("\n")
    print(f"\nconfig: 2,000 virtual x 20 real servers, 40,000 checkers, {lines:,} lines; "
          f"best of {RUNS} fresh processes")
    results = {}
    for label, path in (("keepalived.conf", conf), ("YAML", yaml_path)):
        runs = [measure(path) for _ in range(RUNS)]
        best = results[label] = min(runs, key=lambda r: r["wall"])
        assert (best["virtual"], best["real"], best["problems"]) == (2000, 40_000, 0)
        print(f"  ours, {label:>15}: load+validate {best['wall']:.2f} s wall (runs: "
              + ", ".join(f"{r['wall']:.2f}" for r in runs)
              + f"), {best['cpu']:.2f} s CPU, peak RSS {best['rss_peak_kb'] / 1024:.0f} MB "
              f"(+{(best['rss_peak_kb'] - best['rss_base_kb']) / 1024:.0f} MB over imports); "
              f"goal < 2 s")

    keepalived = shutil.which("keepalived") or "/usr/sbin/keepalived"
    if not os.access(keepalived, os.X_OK):
        print("  keepalived -t: not installed (make deps installs it); no reference figure")
        return
    ref = min((measure_keepalived(keepalived, conf) for _ in range(RUNS)),
              key=lambda r: r["wall"])
    ours = results["keepalived.conf"]
    print(f"  keepalived 2.2.7 -t (C), same file: {ref['wall']:.2f} s wall, {ref['cpu']:.2f} s "
          f"CPU, peak RSS {ref['rss_peak_kb'] / 1024:.0f} MB (whole process)")
    print(f"  ratio ours/keepalived: {ours['wall'] / ref['wall']:.1f}x time, "
          f"{ours['rss_peak_kb'] / ref['rss_peak_kb']:.1f}x peak RSS (ours includes the "
          "Python interpreter and imports)")
