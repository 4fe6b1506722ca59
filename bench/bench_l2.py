"""Benchmark: N synthetic footprints → validated L2 tileset.

Prints wall time, CPU seconds (user + system of the build process and all its workers:
the figure to compare on a shared machine), buildings/s, bytes per building on disk,
tiles, largest tile, peak PSS of the process tree and of its largest process, and the
stage times for each N, and checks the tileset rules.

    .venv/bin/python bench/bench_l2.py 10000 100000 1000000 [--jobs 2]

Inputs are written once to bench/out/ as GeoParquet in EPSG:4547 (Gauss-Krüger);
the timed part is the whole ``cim build`` (read, repair, ground, tile, encode, write),
run in a fresh process so peak memory is that of the build alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.proctree import Monitor  # noqa: E402
from bench.synthetic import l2_city  # noqa: E402

CHILD = """
import json, sys, time
t = time.perf_counter()
from cim.build import build_project
r = build_project(sys.argv[1], jobs=int(sys.argv[2]), progress=False, force=True)
wall = time.perf_counter() - t
print(json.dumps({"wall": wall, "l2": r.manifest["layers"]["l2"],
                  "stages": {k: v["seconds"] for k, v in r.manifest["stages"].items()}}))
"""


def run(n: int, jobs: int) -> dict:
    toml = l2_city(n)
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(toml), str(jobs)], stdout=subprocess.PIPE, text=True
    )
    monitor = Monitor(proc.pid)
    out, _ = proc.communicate()
    monitor.join()
    if proc.returncode:
        raise SystemExit(f"build of {n:,} failed ({proc.returncode})")
    figures = json.loads(out.strip().splitlines()[-1])
    figures["cpu_s"] = monitor.cpu_s
    figures["peak_pss_mb"] = monitor.peak_pss_mb
    figures["peak_process_mb"] = monitor.peak_process_mb
    figures["sampler_cpu_s"] = monitor.own_cpu_s
    from tiling.validate import check_tileset

    t = time.perf_counter()
    tileset = toml.parent / "output" / "tiles" / "l2" / "tileset.json"
    problems = check_tileset(tileset, max_contents=50)
    figures["check_s"] = time.perf_counter() - t
    figures["problems"] = problems
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} (cores: {os.cpu_count()})")
    print(
        f"{'N':>9} {'wall s':>7} {'CPU s':>7} {'bldg/s':>8} {'B/bldg':>7} {'tiles':>6} "
        f"{'max tile':>9} {'PSS MB':>7} {'max proc':>8} {'sampler':>7}  stages (s)  rules"
    )
    for n in args.sizes:
        f = run(n, args.jobs)
        l2 = f["l2"]
        stages = " ".join(f"{k}={v:.1f}" for k, v in f["stages"].items())
        rules = "ok" if not f["problems"] else f"{len(f['problems'])} problems: {f['problems'][:3]}"
        max_tile = max(
            p.stat().st_size
            for p in (HERE / "out" / f"l2_{n}" / "output/tiles/l2/content").glob("*.glb")
        )
        print(
            f"{n:>9,} {f['wall']:>7.1f} {f['cpu_s']:>7.1f} {n / f['wall']:>8,.0f} "
            f"{l2['bytes'] / n:>7.0f} {l2['tiles']:>6} {max_tile / 1e3:>7.0f}kB "
            f"{f['peak_pss_mb']:>7.0f} {f['peak_process_mb']:>8.0f} {f['sampler_cpu_s']:>6.1f}s"
            f"  {stages}  {rules}",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
