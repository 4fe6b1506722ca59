"""Benchmark: the build process's whole-city work of reading and checking footprints.

Prints the CPU seconds (best of ``--repeat``, this process only) of each function of
``tiling.buildings.prepare`` and ``cim.readers`` that runs over every footprint in the
build process, on the synthetic city of ``bench_scale.py`` (1,000,000 GeoParquet
footprints by default, written when missing), as a rebuild runs them: every row but
``--changed`` found in the last build's repairs.

    .venv/bin/python bench/bench_prepare_checks.py
    PYTHONPATH=/some/other/checkout .venv/bin/python bench/bench_prepare_checks.py

CPU seconds, not walls: on a shared machine they are what to compare (run the two
versions one after the other); they are still lower bounds of a quiet machine's speed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
if not os.environ.get("PYTHONPATH"):  # another checkout on PYTHONPATH is measured as it is
    sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
import shapely  # noqa: E402

from cim import readers  # noqa: E402
from cim.config import load_project  # noqa: E402
from cim.report import StageReport  # noqa: E402
from tiling.buildings import prepare  # noqa: E402


def _cpu(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--changed", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = HERE / "out" / f"scale_{args.n}"
    data = work / "buildings.parquet"
    if not data.exists():
        from bench.synthetic import write_geoparquet

        work.mkdir(parents=True, exist_ok=True)
        print(f"writing {args.n:,} synthetic footprints to {data} ...", flush=True)
        write_geoparquet(data, args.n)
    toml = work / "bench_prepare_checks.toml"
    toml.write_text('[city]\nname = "bench"\n[buildings]\npath = "buildings.parquet"\nid = "id"\n')
    project = load_project(toml)
    cfg = project.buildings
    print(f"{prepare.__file__}\n{args.n:,} footprints, {args.changed} changed", flush=True)

    def read() -> Any:
        return readers.read_features(data, parse_geometry=False)

    table = read()
    n = len(table)
    geoms = shapely.from_wkb(table.source_wkb)
    changed = np.sort(np.random.default_rng(1).choice(n, args.changed, replace=False))
    hit = np.ones(n, dtype=bool)
    hit[changed] = False
    table.parse(changed)
    reuse = SimpleNamespace(  # what _check reads of the last build's repairs
        hit=hit,
        found=np.where(hit, np.arange(n), -1),
        cache=SimpleNamespace(bounds=shapely.bounds(geoms)),
    )
    ids = prepare._ids(table, cfg, StageReport("b"))
    keep = np.ones(n, dtype=bool)
    figures = {
        "read_features": lambda: read(),
        **{
            f"to_text({name})": lambda name=name: readers.to_text(table.column(name), n)
            for name in ("id", "use", "name", "roof_type")
        },
        "_check": lambda: prepare._check(table, ids, cfg, project, StageReport("b"), reuse),
        "_dedupe_ids": lambda: prepare._dedupe_ids(ids, geoms, keep.copy(), StageReport("b")),
        "_drop_duplicate_footprints": lambda: prepare._drop_duplicate_footprints(
            ids, geoms, keep.copy(), StageReport("b")
        ),
        "_heights": lambda: prepare._heights(table, cfg, ids, keep, StageReport("b")),
    }
    total = 0.0
    for label, fn in figures.items():
        seconds = _cpu(fn, args.repeat)
        total += seconds
        print(f"{label:28s} {seconds:7.3f} s CPU", flush=True)
    print(f"{'total':28s} {total:7.3f} s CPU (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
