"""Terrain benchmark: a 4,096 × 4,096 float32 DEM → full quantized-mesh pyramid.

Prints tiles/s, bytes/tile and, per level, the measured max vertical error against the
DEM next to the geometric error CesiumJS assumes for that level.

Run::

    .venv/bin/python bench/bench_terrain.py [--size 4096] [--jobs 2] [--keep DIR]

The DEM is synthetic (fractal relief, 0–1,500 m, with a nodata lake) on a 0.5° square
in EPSG:4326 near Hakone; its resolution (≈ 11 m) decides the max zoom.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cim.config import DatumConfig
from cim.datum import Datum
from cim.raster import DemMosaic
from tiling.terrain import qmesh, scheme
from tiling.terrain.build import build_terrain, read_tile
from tiling.terrain.mesh import mesh_on_lattice


def fractal_dem(size: int, seed: int = 7) -> np.ndarray:
    """Spectral-synthesis relief (power-law spectrum), scaled to 0–1,500 m."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    spec = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f**2.0
    spec[0, 0] = 0
    z = np.fft.irfft2(spec, s=(size, size))
    z = (z - z.min()) / (z.max() - z.min()) * 1500.0
    return z.astype(np.float32)


def write_dem(path: Path, size: int) -> Path:
    """Write the synthetic DEM (0.5° square at 139°E 35°N, nodata lake)."""
    z = fractal_dem(size)
    yy, xx = np.mgrid[0:size, 0:size]
    lake = (xx - size * 0.7) ** 2 + (yy - size * 0.3) ** 2 < (size * 0.05) ** 2
    z[lake] = -9999.0
    res = 0.5 / size
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        nodata=-9999.0,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
        transform=from_origin(139.0, 35.5, res, res),
    ) as ds:
        ds.write(z, 1)
    return path


def dense_error(
    out: Path, dem: DemMosaic, datum: Datum, z: int, x: int, y: int, m: int, grid: int
) -> float:
    """Max |mesh − DEM| of a decoded tile on an (m+1)² lattice inside the DEM.

    ``dem`` is read without void filling: voids (NaN) are left out of the comparison.
    """
    q = qmesh.decode_tile(read_tile(out, z, x, y))
    w, s, e, n = scheme.tile_bounds(z, x, y)
    approx = mesh_on_lattice(
        q.u.astype(np.int64),
        (32767 - q.v).astype(np.int64),
        q.heights(),
        q.triangles.astype(np.int64),
        32767,
        m,
    )
    lon, lat = np.meshgrid(np.linspace(w, e, m + 1), np.linspace(n, s, m + 1))
    truth = datum.to_ellipsoidal(dem.sample(lon, lat), lon, lat)
    # leave out the band of one mesh grid cell along the DEM's outer edge, where the
    # surface must step down to the sea-level fill outside the DEM
    band = 1.5 * scheme.tile_size_deg(z) / grid
    dw, ds, de, dn = dem.bounds_lonlat()
    inside = (lon > dw + band) & (lon < de - band) & (lat > ds + band) & (lat < dn - band)
    ok = np.isfinite(truth) & inside
    return float(np.abs(approx[ok] - truth[ok]).max()) if ok.any() else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="keep the output here")
    ap.add_argument("--sample", type=int, default=6, help="tiles per level re-checked densely")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="bench_terrain_"))
    try:
        dem_path = write_dem(tmp / "dem.tif", args.size)
        out = args.keep or tmp / "terrain"
        datum_cfg = DatumConfig(geoid_offset=36.5)
        load = os.getloadavg()[0]
        c0 = os.times()
        t0 = time.perf_counter()
        res = build_terrain([dem_path], out, datum=datum_cfg, jobs=args.jobs, measure=True)
        wall = time.perf_counter() - t0
        c1 = os.times()
        cpu = (c1.user + c1.system + c1.children_user + c1.children_system) - (
            c0.user + c0.system + c0.children_user + c0.children_system
        )
        print(
            f"DEM {args.size}×{args.size} float32, {DemMosaic([dem_path]).resolution_m():.1f} m"
            f" → levels 0–{res.layer.maxzoom}, jobs={args.jobs}"
        )
        print(
            f"tiles: {res.tiles}   wall: {wall:.1f} s   tiles/s: {res.tiles / wall:.0f}   "
            f"bytes/tile (gzip): {res.bytes / res.tiles:.0f}   total: {res.bytes / 1e6:.1f} MB"
        )
        print(
            f"CPU: {cpu:.1f} s = {1000 * cpu / res.tiles:.2f} ms/tile → "
            f"{args.jobs * res.tiles / cpu:.0f} tiles/s on {args.jobs} free cores "
            f"(load average before the run: {load:.1f} on {os.cpu_count()} cores)"
        )
        dem = DemMosaic([dem_path])
        datum = Datum.from_config(datum_cfg)
        print(
            f"{'level':>5} {'tiles':>6} {'bytes/tile':>10} {'tri/tile':>8} "
            f"{'grid err m':>10} {'dense err m':>11} {'Cesium m':>9}  ok"
        )
        all_ok = True
        for z, lv in sorted(res.levels.items()):
            tiles = sorted((x, y) for zz, x, y in res.layer.tiles() if zz == z)
            step = max(1, len(tiles) // args.sample)
            errs = (
                [dense_error(out, dem, datum, z, x, y, 256, lv.grid) for x, y in tiles[::step]]
                if z > 2
                else []
            )  # 0–2: mostly sea-level fill
            errs = [e for e in errs if e == e]  # NaN: no lattice point inside the DEM
            dense = max(errs) if errs else float("nan")
            ok = lv.max_error <= lv.geometric_error and not (dense > lv.geometric_error)
            all_ok &= ok
            dense_s = "—" if dense != dense else f"{dense:.2f}"
            print(
                f"{z:>5} {lv.tiles:>6} {lv.bytes / max(lv.tiles, 1):>10.0f} "
                f"{lv.triangles / max(lv.tiles, 1):>8.0f} {lv.max_error:>10.2f} "
                f"{dense_s:>11} {lv.geometric_error:>9.2f}  {'yes' if ok else 'NO'}"
            )
        print("every level within CesiumJS's geometric error:", "yes" if all_ok else "NO")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
