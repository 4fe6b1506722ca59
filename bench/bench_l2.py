"""Benchmark: N synthetic footprints → validated L2 tileset.

Prints buildings/s, bytes per building on disk, tiles, largest tile and peak memory
(of the build process and its workers) for each N, and checks the tileset rules.

    .venv/bin/python bench/bench_l2.py 10000 100000 1000000 [--jobs 2]

Inputs are written once to bench/out/ as GeoParquet in EPSG:4547 (Gauss-Krüger);
the timed part is the whole ``cim build`` (read, repair, ground, tile, encode, write),
run in a fresh process so peak memory is that of the build alone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.synthetic import write_geoparquet  # noqa: E402

CHILD = """
import json, resource, sys, time
from cim.build import build_project
t = time.perf_counter()
r = build_project(sys.argv[1], jobs=int(sys.argv[2]), progress=False, force=True)
wall = time.perf_counter() - t
peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"wall": wall, "l2": r.manifest["layers"]["l2"],
                  "stages": {k: v["seconds"] for k, v in r.manifest["stages"].items()},
                  "peak_mb": peak_self, "peak_worker_mb": peak_children}))
"""


def run(n: int, jobs: int) -> dict:
    work = HERE / "out" / f"l2_{n}"
    work.mkdir(parents=True, exist_ok=True)
    data = work / "buildings.parquet"
    if not data.exists():
        write_geoparquet(data, n)
    toml = work / "city.toml"
    toml.write_text(
        '[city]\nname = "bench"\n[buildings]\npath = "buildings.parquet"\nid = "id"\n',
        encoding="utf-8",
    )
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(toml), str(jobs)],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    from tiling.validate import check_tileset

    t = time.perf_counter()
    problems = check_tileset(work / "output" / "tiles" / "l2" / "tileset.json", max_contents=50)
    figures["check_s"] = time.perf_counter() - t
    figures["problems"] = problems
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    print(
        f"{'N':>9} {'wall s':>7} {'bldg/s':>8} {'B/bldg':>7} {'tiles':>6} {'max tile':>9} "
        f"{'peak MB':>8} {'worker MB':>9}  stages (s)  rules"
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
            f"{n:>9,} {f['wall']:>7.1f} {n / f['wall']:>8,.0f} {l2['bytes'] / n:>7.0f} "
            f"{l2['tiles']:>6} {max_tile / 1e3:>7.0f}kB {f['peak_mb']:>8.0f} "
            f"{f['peak_worker_mb']:>9.0f}  {stages}  {rules}"
        )


if __name__ == "__main__":
    main()
