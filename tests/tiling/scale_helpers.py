"""A tiny synthetic city for the scaling tests (footprints, DEM, orthophoto, addresses)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.synthetic import ORIGIN, write_geoparquet  # noqa: E402
from tiling.buildings import repair_cache  # noqa: E402


def write_city(root: Path, n: int = 200, *, per_tile: int = 30, seed: int = 3) -> Path:
    """Write a small city project under ``root``; return its ``city.toml``."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    write_geoparquet(data / "buildings.parquet", n, seed=seed)
    side = int(np.ceil(np.sqrt(n))) * 40.0 + 200.0
    x0, y1 = ORIGIN[0] - 100.0, ORIGIN[1] + side - 100.0
    _raster(data / "dem.tif", x0, y1, 10.0, side, bands=1, seed=seed)
    _raster(data / "ortho.tif", x0, y1, 8.0, side, bands=3, seed=seed)
    rng = np.random.default_rng(seed)
    lines = ["x,y,address"]
    for k in range(60):
        x = ORIGIN[0] + rng.uniform(0, side - 250)
        y = ORIGIN[1] + rng.uniform(0, side - 250)
        lines.append(f"{x:.2f},{y:.2f},平城市中区长安路{k + 1}号")
    (data / "addresses.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    toml = root / "city.toml"
    toml.write_text(
        f"""[city]
name = "小城"
crs = "EPSG:4547"

[buildings]
path = "data/buildings.parquet"
id = "id"

[l2]
max_features_per_tile = {per_tile}

[terrain]
paths = ["data/dem.tif"]
max_zoom = 12

[imagery]
paths = ["data/ortho.tif"]
max_zoom = 12
format = "png"

[addresses]
path = "data/addresses.csv"
x = "x"
y = "y"
full = "address"
""",
        encoding="utf-8",
    )
    return toml


def _raster(
    path: Path, x0: float, y1: float, res: float, side: float, *, bands: int, seed: int
) -> None:
    size = int(side / res)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = 50.0 + 0.05 * xx + 0.03 * yy + rng.normal(0, 0.5, (size, size))
    if bands == 1:
        arr = base[None].astype("float32")
        dtype = "float32"
    else:
        arr = np.stack([(base * k) % 255 for k in (1, 2, 3)]).astype("uint8")
        dtype = "uint8"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=bands,
        dtype=dtype,
        crs="EPSG:4547",
        transform=from_origin(x0, y1, res, res),
    ) as dst:
        dst.write(arr)


def output_files(out: Path) -> dict[str, bytes]:
    """Every file of a built output folder by relative path (the build's own notes out,
    and the repair cache: a rebuild keeps the last one's file and adds a delta to it,
    which holds the same repairs; tests/tiling/test_buildings_repair_cache.py)."""
    skip = {"manifest.json", "build-report.json", repair_cache.FILE, repair_cache.DELTA}
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in skip
    }
