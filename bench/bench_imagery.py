"""Imagery benchmark: a 10,000 × 10,000 RGB orthophoto → full tile pyramid.

Times this toolkit's imagery builder and ``gdal2tiles.py --processes=2`` side by side
in the same run, on the same file and zoom range, both writing WebP at the same
quality into the same scheme (geographic, two root tiles, XYZ rows), then compares
bytes and quality (PSNR of the finest level against an independent cubic warp of the
source: it measures georeferencing, resampling and compression together), and at
equal fidelity (cim's quality lowered until its PSNR meets gdal2tiles').

Run::

    .venv/bin/python bench/bench_imagery.py [--size 10000] [--jobs 2] [--quality 85]

gdal2tiles comes from the Debian package gdal-bin (``apt-get install -y gdal-bin``);
without it the comparison is skipped with a message. The orthophoto is a real aerial
photo (USGS 15 cm Colorado, public domain, from the real-data folder) mirrored into a
10,000² mosaic at 0.5 m in UTM 50N, with a nodata (0) corner.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.vrt import WarpedVRT

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tiling.imagery.build import build_imagery, tile_bounds, tile_range

REPO = Path(__file__).resolve().parents[1]
PHOTO = "imagery/riotiler_usgs_hro_colorado_15cm.tif"


def find_photo() -> Path:
    """The real aerial photo used as texture."""
    for root in (REPO / "sample_data" / "realdata", Path("/work/shared/realdata")):
        if (root / PHOTO).exists():
            return root / PHOTO
    raise SystemExit(f"{PHOTO} not found")


def write_ortho(path: Path, size: int) -> Path:
    """Mirror-tile the real photo into a size² RGB GeoTIFF (0.5 m, UTM 50N, nodata 0)."""
    with rasterio.open(find_photo()) as src:
        photo = src.read()
    photo = np.maximum(photo, 1)  # keep 0 for nodata
    h, w = photo.shape[1:]
    quad = np.concatenate(
        [
            np.concatenate([photo, photo[:, :, ::-1]], axis=2),
            np.concatenate([photo[:, ::-1], photo[:, ::-1, ::-1]], axis=2),
        ],
        axis=1,
    )
    reps = (1, -(-size // (2 * h)), -(-size // (2 * w)))
    img = np.tile(quad, reps)[:, :size, :size].copy()
    yy, xx = np.ogrid[:size, :size]
    img[:, (xx + yy) < size // 6] = 0  # nodata corner (north-west)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=3,
        dtype="uint8",
        crs="EPSG:32650",
        nodata=0,
        tiled=True,
        blockxsize=512,
        blockysize=512,
        transform=from_origin(500000.0, 3400000.0, 0.5, 0.5),
    ) as ds:
        ds.write(img)
    return path


def cpu_now() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def tree_bytes(root: Path, ext: str) -> tuple[int, int, dict[int, int]]:
    """(tiles, bytes, tiles per level) of the image files under root."""
    n = b = 0
    per: dict[int, int] = {}
    for p in root.rglob(f"*.{ext}"):
        n += 1
        b += p.stat().st_size
        z = int(p.parts[len(root.parts)])
        per[z] = per.get(z, 0) + 1
    return n, b, per


def psnr_level(
    src: Path, root: Path, z: int, bounds, sample: int, seed: int = 3
) -> tuple[float, int]:
    """PSNR (dB) of level-z tiles vs a cubic warp of the source, over opaque pixels."""
    x0, y0, x1, y1 = tile_range(z, bounds)
    rng = np.random.default_rng(seed)
    cand = [
        (x, y)
        for x in range(x0, x1 + 1)
        for y in range(y0, y1 + 1)
        if (root / str(z) / str(x) / f"{y}.webp").exists()
    ]
    picks = [cand[i] for i in rng.choice(len(cand), min(sample, len(cand)), replace=False)]
    se = 0.0
    count = 0
    res = 180.0 / (1 << z) / 256
    with rasterio.open(src) as ds:
        for x, y in picks:
            w, _, _, n = tile_bounds(z, x, y)
            with WarpedVRT(
                ds,
                crs="EPSG:4326",
                transform=from_origin(w, n, res, res),
                width=256,
                height=256,
                resampling=Resampling.cubic,
                add_alpha=True,
            ) as vrt:
                ref = vrt.read()
            got = np.asarray(
                Image.open(io.BytesIO((root / str(z) / str(x) / f"{y}.webp").read_bytes())).convert(
                    "RGBA"
                )
            )
            got = np.moveaxis(got, -1, 0)
            ok = (ref[3] == 255) & (got[3] == 255)
            d = ref[:3, ok].astype(np.float64) - got[:3, ok].astype(np.float64)
            se += float((d * d).sum())
            count += d.size
    mse = se / max(count, 1)
    return (10 * np.log10(255.0**2 / mse) if mse > 0 else float("inf")), len(picks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=10000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--quality", type=int, default=85)
    ap.add_argument("--psnr-tiles", type=int, default=40)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="bench_imagery_"))
    try:
        src = write_ortho(tmp / "ortho.tif", args.size)
        print(
            f"orthophoto {args.size}×{args.size} RGB uint8, 0.5 m, UTM 50N; "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )

        c0, t0 = cpu_now(), time.perf_counter()
        res = build_imagery([src], tmp / "cim", format="webp", quality=args.quality, jobs=args.jobs)
        ours_wall, ours_cpu = time.perf_counter() - t0, cpu_now() - c0
        zmax = res.tilejson.maxzoom
        bounds = res.tilejson.bounds
        n_ours, b_ours, per_ours = tree_bytes(tmp / "cim", "webp")
        ps_ours, k = psnr_level(src, tmp / "cim", zmax, bounds, args.psnr_tiles)
        print(f"levels 0–{zmax}, WebP quality {args.quality}, {args.jobs} processes")
        print(
            f"{'tool':<14} {'wall s':>7} {'CPU s':>7} {'tiles':>6} {'MB':>7} "
            f"{'B/tile':>7} {'PSNR dB (z' + str(zmax) + ')':>15}"
        )
        print(
            f"{'cim imagery':<14} {ours_wall:>7.1f} {ours_cpu:>7.1f} {n_ours:>6} "
            f"{b_ours / 1e6:>7.2f} {b_ours / n_ours:>7.0f} {ps_ours:>15.2f}"
        )

        g2t = shutil.which("gdal2tiles.py") or shutil.which("gdal2tiles")
        if g2t is None:
            print("gdal2tiles not installed (apt-get install -y gdal-bin): comparison skipped")
            return
        cmd = [
            g2t,
            "-p",
            "geodetic",
            "--tmscompatible",
            "--xyz",
            "-r",
            "bilinear",
            f"--processes={args.jobs}",
            "-z",
            f"0-{zmax}",
            "-w",
            "none",
            "--exclude",
            "--tiledriver=WEBP",
            f"--webp-quality={args.quality}",
            "-q",
            str(src),
            str(tmp / "gdal"),
        ]
        c0, t0 = cpu_now(), time.perf_counter()
        run = subprocess.run(cmd, capture_output=True, text=True, check=False)
        g_wall, g_cpu = time.perf_counter() - t0, cpu_now() - c0
        if run.returncode != 0:
            print("gdal2tiles failed:", run.stderr[-2000:])
            return
        n_g, b_g, per_g = tree_bytes(tmp / "gdal", "webp")
        ps_g, _ = psnr_level(src, tmp / "gdal", zmax, bounds, args.psnr_tiles)
        print(
            f"{'gdal2tiles':<14} {g_wall:>7.1f} {g_cpu:>7.1f} {n_g:>6} {b_g / 1e6:>7.2f} "
            f"{b_g / n_g:>7.0f} {ps_g:>15.2f}"
        )
        print(
            f"speed: cim is {g_wall / ours_wall:.2f}× gdal2tiles (wall), "
            f"{g_cpu / ours_cpu:.2f}× (CPU); size: cim/gdal2tiles = {b_ours / b_g:.3f}; "
            f"PSNR difference {ps_ours - ps_g:+.2f} dB over {k} sampled z{zmax} tiles"
        )
        # equal quality: lower cim's WebP quality until its fidelity at the finest level
        # drops to gdal2tiles' and compare that level's bytes
        zb_g = sum(p.stat().st_size for p in (tmp / "gdal" / str(zmax)).rglob("*.webp"))
        print(f"finest level z{zmax}: gdal2tiles {zb_g / 1e6:.2f} MB at {ps_g:.2f} dB; cim:")
        for q in sorted({args.quality, 75, 60, 45, 30}, reverse=True):
            out = tmp / f"cim_q{q}"
            build_imagery([src], out, format="webp", quality=q, jobs=args.jobs, min_zoom=zmax)
            zb = sum(p.stat().st_size for p in (out / str(zmax)).rglob("*.webp"))
            pq, _ = psnr_level(src, out, zmax, bounds, args.psnr_tiles)
            flag = "≥" if pq >= ps_g else "<"
            print(
                f"   quality {q:>3}: {zb / 1e6:.2f} MB ({zb / zb_g:.2f}× gdal2tiles), "
                f"{pq:.2f} dB ({flag} gdal2tiles)"
            )
            shutil.rmtree(out, ignore_errors=True)
        print(
            "tiles per level (cim / gdal2tiles):",
            {z: (per_ours.get(z, 0), per_g.get(z, 0)) for z in sorted(per_ours)},
        )
        print("gdal2tiles command:", " ".join(cmd[:-2]), "SRC DST")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
