"""Benchmark: a whole city's footprints through ``cim build``, then a few changed.

Prints, for N synthetic footprints (bench/synthetic.py, GeoParquet in EPSG:4547):

- the full build (``--force``): wall time and peak memory (PSS of the build process and
  all its workers, from /proc whenever their RSS grew: ``bench/proctree.py``; the
  sampler's own CPU seconds are printed too) and CPU seconds (user + system of
  that tree: the figure to compare on a shared machine) on a local pool of ``--jobs``
  processes or on a Dask cluster (``--scheduler local:2`` or ``tcp://...``);
- the rebuild after ``--changed`` footprints changed (half of them another height, half
  moved by half a metre): wall, peak PSS, and how many L2 tiles were reused (only the
  touched ones are encoded again) and footprints' repairs (only the moved ones are
  repaired again).

    .venv/bin/python bench/bench_scale.py                       # 1,000,000, 2 workers
    .venv/bin/python bench/bench_scale.py --n 10000000 --scheduler local:2 --memory 4GiB

Targets (issue 14): 1 M in ≤ 15 s with peak PSS ≤ 2 GB; 100 changed in ≤ 10 s;
10 M on a local Dask cluster of 2 workers: wall printed (goal ≤ 5 min), ≤ 4 GB per
worker and in the client. The machine's load average is printed with the figures:
on a shared machine they are lower bounds of what a quiet one does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.proctree import Monitor  # noqa: E402
from bench.synthetic import write_geoparquet  # noqa: E402

CHILD = """
import json, sys, time
t = time.perf_counter()
from cim.build import build_project
r = build_project(sys.argv[1], jobs=int(sys.argv[2]), scheduler=sys.argv[3] or None,
                  progress=False, force=sys.argv[4] == "force")
print(json.dumps({"wall": time.perf_counter() - t, "ran": r.ran, "partial": r.partial,
                  "stages": {k: v["seconds"] for k, v in r.manifest["stages"].items()},
                  "l2": {k: r.manifest["layers"]["l2"][k] for k in ("buildings", "tiles")}}))
"""


def build(toml: Path, jobs: int, scheduler: str, force: bool) -> dict:
    """Run one build in a fresh process; its figures plus peak PSS and CPU seconds."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(toml), str(jobs), scheduler, "force" if force else ""],
        stdout=subprocess.PIPE,
        text=True,
    )
    monitor = Monitor(proc.pid, interval=0.2)
    out, _ = proc.communicate()
    monitor.join()
    if proc.returncode:
        raise SystemExit(f"build failed ({proc.returncode})")
    figures = json.loads(out.strip().splitlines()[-1])
    figures["peak_pss_mb"], figures["peak_process_mb"] = (
        monitor.peak_pss_mb,
        monitor.peak_process_mb,
    )
    figures["cpu_s"] = monitor.cpu_s
    figures["sampler_cpu_s"] = monitor.own_cpu_s
    return figures


def change_footprints(path: Path, count: int, seed: int = 7) -> None:
    """Change ``count`` footprints (in place): half get another height, the other half
    a footprint moved by half a metre (those are repaired again; the rest is reused)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely

    table = pq.read_table(path)
    rows = np.random.default_rng(seed).choice(len(table), count, replace=False)
    moved, raised = rows[: count // 2], rows[count // 2 :]
    height = table.column("height").to_numpy(zero_copy_only=False).copy()
    height[raised] = np.nan_to_num(height[raised], nan=9.0) + 1.5
    table = table.set_column(table.schema.get_field_index("height"), "height", pa.array(height))
    wkb = table.column("geometry").to_numpy(zero_copy_only=False).copy()
    wkb[moved] = shapely.to_wkb(shapely.transform(shapely.from_wkb(wkb[moved]), lambda c: c + 0.5))
    i = table.schema.get_field_index("geometry")
    table = table.set_column(i, table.schema.field(i), pa.array(wkb, pa.binary()))
    pq.write_table(table, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--scheduler", default="", help="local:N or tcp://host:port (Dask)")
    parser.add_argument("--memory", default="4GiB", help="per-worker limit of local:N")
    parser.add_argument("--changed", type=int, default=100)
    args = parser.parse_args()
    work = HERE / "out" / f"scale_{args.n}"
    work.mkdir(parents=True, exist_ok=True)
    data = work / "buildings.parquet"
    if not data.exists():
        print(f"writing {args.n:,} synthetic footprints to {data} ...", flush=True)
        write_geoparquet(data, args.n)
    toml = work / "city.toml"
    toml.write_text(
        '[city]\nname = "bench"\n[buildings]\npath = "buildings.parquet"\nid = "id"\n'
        f'[build]\nmemory_limit = "{args.memory}"\n',
        encoding="utf-8",
    )
    where = args.scheduler or f"local pool of {args.jobs}"
    print(f"load average before: {os.getloadavg()[0]:.1f} (cores: {os.cpu_count()})")
    full = build(toml, args.jobs, args.scheduler, force=True)
    _print(f"full build of {args.n:,} on {where}", full)
    if args.changed:
        change_footprints(data, args.changed)
        again = build(toml, args.jobs, args.scheduler, force=False)
        _print(f"rebuild after {args.changed} changed footprints", again)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def _print(what: str, f: dict) -> None:
    stages = " ".join(f"{k}={v:.1f}" for k, v in f["stages"].items())
    print(
        f"{what}: wall {f['wall']:.1f} s, CPU {f['cpu_s']:.1f} s "
        f"(sampler {f['sampler_cpu_s']:.1f} s), "
        f"peak PSS {f['peak_pss_mb']:,.0f} MB "
        f"(largest process {f['peak_process_mb']:,.0f} MB); ran {', '.join(f['ran'])}; "
        f"stages (s) {stages}; {f['l2']['tiles']} tiles"
        + "".join(f"; {k}: {v}" for k, v in f["partial"].items()),
        flush=True,
    )


if __name__ == "__main__":
    main()
