"""Benchmark of the address index: build time and size, query latency, accuracy.

Usage::

    .venv/bin/python bench/bench_addresses.py                 # 1,000,000 addresses
    .venv/bin/python bench/bench_addresses.py --n 100000 --queries 2000

Targets: build of 1,000,000 addresses ≤ 60 s (2 cores); fuzzy query p95 ≤ 10 ms;
accuracy on ≥ 2,000 query variants top-1 ≥ 95 %, top-5 ≥ 99 %.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cim.model import Buildings
from tiling.addresses import AddressIndex, AddressRecords, build_index
from tiling.addresses.synthetic import generate_addresses, make_variants


def _footprints(lon: np.ndarray, lat: np.ndarray, seed: int) -> Buildings:
    """One 20 m square footprint around every other address point (the rest lie
    10–60 m away from one, so some join the nearest building and some stay unmatched)."""
    import shapely

    sel = np.arange(0, len(lon), 2)
    d = 0.0001
    fp = shapely.box(lon[sel] - d, lat[sel] - d, lon[sel] + d, lat[sel] + d)
    n = len(sel)
    print(f"joining to {n:,} generated footprints")
    return Buildings(
        ids=np.array([f"B{i}" for i in range(n)], dtype=object),
        footprints=fp,
        height=np.full(n, 20.0),
        floors=np.full(n, np.nan),
        base=np.full(n, 50.0),
        name=np.full(n, "", dtype=object),
        use=np.full(n, "", dtype=object),
        roof_type=np.full(n, "", dtype=object),
    )


def _children_cpu() -> float:
    """CPU seconds (user + system) used by finished child processes."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="addresses to index")
    ap.add_argument("--queries", type=int, default=3000, help="query variants")
    ap.add_argument("--jobs", type=int, default=2, help="processes for parsing")
    ap.add_argument("--out", type=Path, default=None, help="folder for addresses.sqlite")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="query the index already in --out (same --n and --seed)",
    )
    ap.add_argument(
        "--buildings",
        action="store_true",
        help="also join the points to n/2 generated footprints during the build",
    )
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)

    t = time.perf_counter()
    addrs, lon, lat = generate_addresses(args.n, seed=args.seed)
    full = np.array([a.full() for a in addrs], dtype=object)
    ids = np.array([str(a.index) for a in addrs], dtype=object)
    print(
        f"generated {args.n:,} addresses in {time.perf_counter() - t:.1f} s "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )

    out = args.out or Path(tempfile.mkdtemp(prefix="bench_addresses_"))
    path = out / "addresses.sqlite"
    records = AddressRecords(ids=ids, lon=lon, lat=lat, full=full)
    buildings = _footprints(lon, lat, args.seed) if args.buildings else None
    if not (args.reuse and path.is_file()):
        t = time.perf_counter()
        c0 = time.process_time()
        child0 = _children_cpu()
        res = build_index(records, path, jobs=args.jobs, buildings=buildings)
        build_s = time.perf_counter() - t
        cpu_s = time.process_time() - c0
        child_s = _children_cpu() - child0
        print(
            f"index build: {res.count:,} addresses in {build_s:.1f} s wall "
            f"({res.count / build_s:,.0f}/s, jobs={args.jobs}); CPU: main process "
            f"{cpu_s:.1f} s + parse workers {child_s:.1f} s; target ≤ 60 s for 1,000,000"
        )
        if buildings is not None:
            print(
                f"joined to buildings: {res.attached:,} ({res.inside:,} inside, "
                f"{res.nearest:,} nearest), {len(res.unmatched):,} unmatched, "
                f"{len(res.ambiguous):,} ambiguous"
            )
    size = path.stat().st_size
    print(f"index size: {size / 1e6:.1f} MB ({size / len(addrs):.0f} B/address) at {path}")

    t = time.perf_counter()
    idx = AddressIndex(path)
    print(f"index open: {time.perf_counter() - t:.2f} s")
    variants = make_variants(addrs, args.queries, seed=args.seed + 1)
    # source ids are the synthetic indexes
    lat_ms: list[float] = []
    top1 = top5 = 0
    by_kind: Counter[str] = Counter()
    by_kind_ok: Counter[str] = Counter()
    fails = []
    idx.search(variants[0][0])  # warm up
    for q, truth, kind in variants:
        t = time.perf_counter()
        cands = idx.search(q, limit=5)
        lat_ms.append((time.perf_counter() - t) * 1000.0)
        got = [c.source_id for c in cands]
        by_kind[kind] += 1
        if got and got[0] == str(truth):
            top1 += 1
            by_kind_ok[kind] += 1
        elif len(fails) < 10:
            fails.append((kind, q, addrs[truth].full(), [c.address for c in cands[:2]]))
        if str(truth) in got:
            top5 += 1
    n = len(variants)
    p = np.percentile(lat_ms, [50, 95, 99])
    print(
        f"query latency over {n:,} fuzzy queries: p50 {p[0]:.2f} ms, p95 {p[1]:.2f} ms, "
        f"p99 {p[2]:.2f} ms, mean {statistics.fmean(lat_ms):.2f} ms; target p95 ≤ 10 ms"
    )
    print(
        f"accuracy on {n:,} variants: top-1 {100 * top1 / n:.2f} %, top-5 {100 * top5 / n:.2f} %"
        "; targets 95 % / 99 %"
    )
    for kind in sorted(by_kind):
        print(
            f"  {kind:17s} top-1 {100 * by_kind_ok[kind] / by_kind[kind]:6.2f} % ({by_kind[kind]})"
        )
    for kind, q, truth, got in fails:
        print(f"  miss [{kind}] {q!r} truth {truth!r} got {got}")

    rl = []
    rng = np.random.default_rng(args.seed)
    for i in rng.integers(0, len(addrs), 500):
        t = time.perf_counter()
        idx.reverse(float(lon[i]) + 1e-4, float(lat[i]), limit=5)
        rl.append((time.perf_counter() - t) * 1000.0)
    p = np.percentile(rl, [50, 95])
    print(f"reverse latency over 500 points: p50 {p[0]:.2f} ms, p95 {p[1]:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
