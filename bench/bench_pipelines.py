"""Benchmark of the pipelines stage: a surveyed network of ~100,000 segments → 3D Tiles.

Usage::

    .venv/bin/python bench/bench_pipelines.py                  # ~100,000 segments, -j 2
    .venv/bin/python bench/bench_pipelines.py --lines 30 --jobs 1

The survey is synthetic: four utilities (water, drainage, gas, power) under a square grid
of streets 150 m apart, surveyed every 50 m (GBK CSV point and segment tables with
Chinese column names, as the sample city's), a gently sloping ground. The whole
``cim build`` is timed (reading, placing, tiling, the network file); the pipelines
stage's own time comes from the manifest. Target: 100,000 segments ≤ 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ORIGIN = (440300.0, 4439750.0)
UTILITIES = (
    ("JS", "给水", 2.5, "DN300", 1.4),
    ("PS", "排水", 0.0, "DN600", 2.2),
    ("RQ", "燃气", -2.5, "DN200", 1.1),
    ("DL", "电力", 4.0, "600×400", 0.8),
)


def write_survey(folder: Path, lines: int, spacing: float = 150.0, step: float = 50.0) -> int:
    """Point and segment tables of the grid network; returns the segment count."""
    rng = np.random.default_rng(7)
    per = round(spacing / step)
    n = (lines - 1) * per  # steps along each street
    pts_rows, seg_rows = [], []
    for code, name, off, size, depth in UTILITIES:
        k = np.arange(n + 1)
        along = k * step + off
        across = np.arange(lines) * spacing + off
        # horizontal streets (points (along, across)), then vertical ones (across, along)
        hx, hy = np.meshgrid(along, across)
        vx, vy = np.meshgrid(across, along)
        xy = np.concatenate(
            [np.column_stack([hx.ravel(), hy.ravel()]), np.column_stack([vx.ravel(), vy.ravel()])]
        )
        key = np.round(xy * 100).astype(np.int64)
        _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.ravel()
        grid = inverse.reshape(2, lines, n + 1)
        starts = np.concatenate([grid[0, :, :-1].ravel(), grid[1, :, :-1].ravel()])
        ends = np.concatenate([grid[0, :, 1:].ravel(), grid[1, :, 1:].ravel()])
        p = xy[first]
        ground = 1040.0 + 0.002 * p[:, 1] + 0.5 * np.sin(p[:, 0] / 300.0)
        d = depth + rng.uniform(-0.2, 0.2, len(p))
        ids = np.char.add(code, np.arange(len(p)).astype(str))
        feature = np.where(rng.uniform(size=len(p)) < 0.2, "阀门", "").astype(object)
        if code == "PS":
            feature[:] = "检查井"
        for i in range(len(p)):
            pts_rows.append(
                f"{ids[i]},{p[i, 0] + ORIGIN[0]:.3f},{p[i, 1] + ORIGIN[1]:.3f},"
                f"{ground[i]:.2f},{d[i]:.2f},{feature[i]},{name}"
            )
        for j, (s, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            seg_rows.append(f"{code}L{j},{ids[s]},{ids[e]},{d[s]:.2f},{d[e]:.2f},{size},{name}")
    (folder / "管点.csv").write_bytes(
        ("点号,x,y,地面高程,埋深,附属物,管线类型\n" + "\n".join(pts_rows) + "\n").encode("gbk")
    )
    (folder / "管线.csv").write_bytes(
        (
            "管线编号,起点点号,终点点号,起点埋深,终点埋深,管径,管线类型\n"
            + "\n".join(seg_rows)
            + "\n"
        ).encode("gbk")
    )
    return len(seg_rows)


def main() -> None:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--lines", type=int, default=67, help="streets per direction (67: ~100k segments)"
    )
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the output folder")
    args = ap.parse_args()

    from cim.build import build_project
    from tiling.validate import check_tileset

    tmp = Path(tempfile.mkdtemp(prefix="bench_pipelines_"))
    (tmp / "data").mkdir()
    t0 = time.perf_counter()
    segments = write_survey(tmp / "data", args.lines)
    print(f"survey: {segments:,} segments written in {time.perf_counter() - t0:.1f} s")
    (tmp / "city.toml").write_text(
        '[city]\nname = "bench"\ncrs = "EPSG:4547"\n[datum]\ngeoid_offset = -20.0\n'
        '[pipelines]\npoints = "data/管点.csv"\nsegments = "data/管线.csv"\n',
        encoding="utf-8",
    )
    load = os.getloadavg()
    t0 = time.perf_counter()
    result = build_project(tmp / "city.toml", jobs=args.jobs, progress=False, force=True)
    wall = time.perf_counter() - t0
    stage = result.manifest["stages"]["pipelines"]
    layer = result.manifest["layers"]["pipelines"]
    report = json.loads((result.output / "build-report.json").read_text())["stages"]["pipelines"]
    problems = check_tileset(result.output / "tiles/pipelines/tileset.json", max_contents=20)
    print(
        f"pipelines stage: {stage['written']:,} of {stage['read']:,} segments in "
        f"{stage['seconds']:.1f} s (whole build {wall:.1f} s wall, "
        f"-j {args.jobs}); target ≤ 30 s: {'met' if stage['seconds'] <= 30 else 'NOT met'}"
    )
    print(
        f"tiles: {layer['tiles']:,}, {layer['bytes'] / 1e6:.1f} MB, max tile "
        f"{report['counts']['max_tile_bytes'] / 1e3:.0f} kB, {report['counts']['triangles']:,} "
        f"triangles, {layer['points']:,} points, {layer['wells']:,} wells, "
        f"{layer['valves']:,} valves"
    )
    print(f"tileset check: {'ok' if not problems else problems[:3]}")
    print(
        f"load average before the build: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
        f"({os.cpu_count()} CPUs): on a shared machine these figures are lower bounds"
    )
    if args.keep:
        print(f"output kept in {result.output}")
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
