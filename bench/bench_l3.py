"""Benchmark: N textured L3 buildings with mixed roof forms → L3 tiles and the stream.

Synthetic old-town footprints (rectangles, L shapes, courtyards with holes, octagonal
pavilions) with Chinese and western roof forms, materials and podiums, over a
synthetic orthophoto (half of the roofs are cut from it). Prints the L3 time (wall, and
CPU seconds of the whole process tree: this process, the fork server and the pool's
workers), bytes per building on disk, tiles, the largest tile, and checks the tileset
rules. On a shared machine compare the CPU seconds; the wall time depends on the load.

    .venv/bin/python bench/bench_l3.py 20000 [--jobs 2] [--format webp]

Targets (issue 13): 20,000 buildings ≤ 60 s; ≤ 20 KB per building; no tile over 2 MB.
The machine's load makes the figures lower bounds of what a quiet machine does.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import rasterio
import shapely
from rasterio.transform import from_origin

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from cim.crs import enu_to_ecef_matrix, get_transformer  # noqa: E402
from cim.model import Buildings  # noqa: E402
from cim.report import StageReport  # noqa: E402
from tiling.buildings.l2 import L2Options, write_l2  # noqa: E402
from tiling.l3.stage import L3Config, write_l3  # noqa: E402
from tiling.l3.tiles import Ortho  # noqa: E402
from tiling.pool import run_tasks  # noqa: E402
from tiling.validate import check_tileset  # noqa: E402

CRS = "EPSG:4547"
X0, Y0 = 380_000.0, 4_440_000.0
FORMS = [
    "硬山",
    "硬山",
    "硬山",
    "悬山",
    "歇山",
    "庑殿",
    "重檐歇山",
    "四角攒尖",
    "八角攒尖",
    "gabled",
    "hipped",
    "half-hipped",
    "mansard",
    "flat",
    "pyramidal",
    "卷棚",
]
MATERIALS = ["tile", "tile", "glazed_tile", "", ""]
COLOURS = ["灰", "灰", "黄", "绿", ""]


def synthetic(n: int, seed: int = 13) -> tuple[Buildings, float]:
    """``n`` buildings on a grid of 26 m plots (local metres → lon/lat); returns the side."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    k = np.arange(n)
    x, y = (k % side) * 26.0, (k // side) * 26.0
    w, h = rng.uniform(10, 22, n), rng.uniform(8, 20, n)
    kind = k % 8
    geoms = shapely.box(x, y, x + w, y + h)
    ell = kind == 1
    geoms[ell] = shapely.difference(
        geoms[ell],
        shapely.box(x[ell] + w[ell] / 2, y[ell] + h[ell] / 2, x[ell] + w[ell], y[ell] + h[ell]),
    )
    court = kind == 2
    geoms[court] = shapely.difference(
        geoms[court],
        shapely.box(x[court] + 5, y[court] + 5, x[court] + w[court] - 5, y[court] + h[court] - 5),
    )
    octagon = kind == 3
    geoms[octagon] = shapely.buffer(shapely.points(x[octagon] + 7, y[octagon] + 7), 6, quad_segs=2)
    forms = np.array(FORMS, dtype=object)[k % len(FORMS)]
    forms[octagon] = "八角攒尖"
    lon_lat = get_transformer(CRS, "EPSG:4326")
    geoms = shapely.transform(
        geoms, lambda c: np.column_stack(lon_lat.transform(c[:, 0] + X0, c[:, 1] + Y0))
    )
    height = rng.uniform(4.5, 14.0, n).round(1)
    uses = np.array(["住宅", "商业", "寺庙", "公共"], dtype=object)[rng.integers(0, 4, n)]
    b = Buildings(
        ids=np.array([f"B{i:06d}" for i in k], dtype=object),
        footprints=geoms,
        height=height,
        floors=np.maximum(np.round(height / 3.2), 1),
        base=np.full(n, 1050.0),
        name=np.array([f"楼{i}" for i in k], dtype=object),
        use=uses,
        roof_type=forms,
        l3={
            "roof_material": np.array(MATERIALS, dtype=object)[k % len(MATERIALS)],
            "roof_colour": np.array(COLOURS, dtype=object)[k % len(COLOURS)],
            "podium_height": np.where(uses == "寺庙", 1.2, np.nan),
        },
    )
    return b, side * 26.0


def write_ortho(path: Path, size_m: float) -> None:
    """A noisy 1 m orthophoto over the synthetic town."""
    px = int(size_m) + 80
    rng = np.random.default_rng(1)
    img = rng.integers(40, 220, size=(3, px, px), dtype=np.uint8)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=px,
        height=px,
        count=3,
        dtype="uint8",
        crs=CRS,
        transform=from_origin(X0 - 40, Y0 + size_m + 40, 1.0, 1.0),
        tiled=True,
        compress="deflate",
    ) as ds:
        ds.write(img)


class TreeCPU:
    """CPU seconds (user + sys) of this process and all its descendants (the pool's
    workers sit under the fork server, so ``RUSAGE_CHILDREN`` would miss them): a
    thread samples the tree every ``interval`` s and keeps each process's last figure.
    Listing the tree reads all of /proc (a few ms on a busy machine), so the sampling
    thread's own CPU time is measured and left out of the figures."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.seen: dict[int, float] = {}
        self.overhead = 0.0  # CPU seconds of the sampling thread
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process(os.getpid())
        for proc in [me, *me.children(recursive=True)]:
            try:
                t = proc.cpu_times()
            except psutil.Error:  # ended between the listing and the read
                continue
            self.seen[proc.pid] = t.user + t.system

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            t = time.thread_time()
            self._sample()
            self.overhead += time.thread_time() - t

    def __enter__(self) -> TreeCPU:
        self._sample()
        self.start = sum(self.seen.values())
        self.start_main = self.seen[os.getpid()]
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.seconds = sum(self.seen.values()) - self.start - self.overhead
        self.main = self.seen[os.getpid()] - self.start_main - self.overhead


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("n", type=int, nargs="*", default=[20_000])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--format", default="webp", choices=["webp", "jpeg", "png"])
    args = ap.parse_args()
    for n in args.n:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            b, side = synthetic(n)
            write_ortho(out / "ortho.tif", side)
            t0 = time.perf_counter()
            figs = write_l2(
                b, out / "l2", L2Options(), jobs=args.jobs, separate=np.ones(n, dtype=bool)
            )
            (out / "l3" / "content").mkdir(parents=True)
            report = StageReport("l3")
            t1 = time.perf_counter()
            with TreeCPU() as cpu:
                l3 = write_l3(
                    b,
                    np.ones(n, dtype=bool),
                    out / "l2",
                    out / "l3",
                    L3Config(district=out, texture_format=args.format),
                    frame=enu_to_ecef_matrix(*figs["centre"]),
                    skirt=0.0,
                    ortho=Ortho((str(out / "ortho.tif"),), CRS),
                    report=report,
                    run=lambda fn, tasks: run_tasks(fn, tasks, jobs=args.jobs),
                )
            t2 = time.perf_counter()
            problems = check_tileset(
                out / "l3" / "city.json", max_contents=20, max_content_bytes=2_000_000
            )
            print(
                f"{n:,} buildings, {args.jobs} jobs, {args.format} textures: "
                f"L2 {t1 - t0:.1f} s, L3 {t2 - t1:.1f} s wall, {cpu.seconds:.1f} s CPU "
                f"(user+sys of the process tree, {cpu.main:.1f} s of it in this process; "
                f"{l3['buildings'] / (t2 - t1):.0f} "
                f"buildings/s wall, {l3['buildings'] / cpu.seconds:.0f} per CPU-second); "
                f"{l3['bytes_per_building']:,.0f} bytes/building, {l3['tiles']} tiles, "
                f"largest {l3['max_tile_bytes']:,} bytes; fallbacks {l3['fallbacks']}; "
                f"forms {l3['roof_forms']}; tileset problems: {problems or 'none'}"
            )


if __name__ == "__main__":
    main()
