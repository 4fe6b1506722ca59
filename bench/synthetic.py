"""Synthetic city footprints for benchmarks (deterministic, vectorised).

A grid of blocks in CGCS2000 / 3-degree Gauss-Krüger CM 114E (EPSG:4547) with a
realistic mix of shapes: rotated rectangles (70 %), L-shapes (15 %), courtyard
buildings with a hole (10 %) and 8-sided towers (5 %); heights log-normal, some
given only as floors, some missing entirely.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from pyproj import CRS

CRS_CODE = "EPSG:4547"
ORIGIN = (500_000.0, 4_440_000.0)  # about 114.0°E, 40.1°N


def footprints(n: int, seed: int = 1) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``n`` footprints and their attribute columns."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    cell = 40.0  # one building per 40 m × 40 m plot
    i = np.arange(n)
    cx = ORIGIN[0] + (i % side) * cell + rng.uniform(-3, 3, n)
    cy = ORIGIN[1] + (i // side) * cell + rng.uniform(-3, 3, n)
    w = rng.uniform(8, 30, n)
    d = rng.uniform(8, 25, n)
    angle = rng.uniform(0, np.pi / 2, n)
    kind = rng.choice(4, size=n, p=[0.70, 0.15, 0.10, 0.05])
    geoms = np.empty(n, dtype=object)
    unit = {
        0: np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]], float) / 2,
        1: np.array([[-1, -1], [1, -1], [1, 0], [0, 0], [0, 1], [-1, 1], [-1, -1]], float) / 2,
        3: np.column_stack([np.cos(t := np.linspace(0, 2 * np.pi, 9)), np.sin(t)]) / 2,
    }
    for k, shape in unit.items():
        sel = np.flatnonzero(kind == k)
        geoms[sel] = shapely.polygons(_place(shape, cx[sel], cy[sel], w[sel], d[sel], angle[sel]))
    sel = np.flatnonzero(kind == 2)
    shells = _place(unit[0], cx[sel], cy[sel], w[sel] + 10, d[sel] + 10, angle[sel])
    holes = _place(unit[0][::-1], cx[sel], cy[sel], w[sel] * 0.5, d[sel] * 0.5, angle[sel])
    geoms[sel] = [shapely.Polygon(s, [h]) for s, h in zip(shells, holes, strict=True)]
    height = np.round(rng.lognormal(2.6, 0.6, n), 1)
    floors = np.maximum(1, np.round(height / 3.0))
    missing = rng.random(n)
    height[missing < 0.3] = np.nan  # 30 % only floors
    floors[(missing >= 0.3) & (missing < 0.6)] = np.nan  # 30 % only height
    both_missing = missing > 0.98
    height[both_missing] = np.nan
    floors[both_missing] = np.nan
    uses = np.array(["住宅", "商业", "办公", "工业", "公共"], dtype=object)
    cols = {
        "id": np.array([f"B{k:07d}" for k in range(n)], dtype=object),
        "height": height,
        "floors": floors,
        "use": uses[rng.integers(0, len(uses), n)],
        "name": np.where(rng.random(n) < 0.02, "大厦", "").astype(object),
        "roof_type": np.where(kind == 1, "gabled", "flat").astype(object),
    }
    return geoms, cols


def _place(
    shape: np.ndarray, cx: np.ndarray, cy: np.ndarray, w: np.ndarray, d: np.ndarray, a: np.ndarray
) -> np.ndarray:
    x = shape[None, :, 0] * w[:, None]
    y = shape[None, :, 1] * d[:, None]
    c, s = np.cos(a)[:, None], np.sin(a)[:, None]
    return np.stack([cx[:, None] + x * c - y * s, cy[:, None] + x * s + y * c], axis=2)


def write_geoparquet(path: Path, n: int, seed: int = 1) -> Path:
    """Write ``n`` synthetic footprints as GeoParquet (WKB, EPSG:4547)."""
    geoms, cols = footprints(n, seed)
    table = pa.table({**cols, "geometry": shapely.to_wkb(geoms)})
    geo = {
        "version": "1.0.0",
        "primary_column": "geometry",
        "columns": {
            "geometry": {
                "encoding": "WKB",
                "geometry_types": ["Polygon"],
                "crs": CRS(CRS_CODE).to_json_dict(),
            }
        },
    }
    import json

    table = table.replace_schema_metadata({b"geo": json.dumps(geo).encode()})
    pq.write_table(table, path)
    return path


def l2_city(n: int) -> Path:
    """The project file of the synthetic city of ``n`` footprints under ``bench/out/l2_N``
    (the footprints written once), which ``bench_l2`` and ``bench_l2_encode`` build."""
    work = Path(__file__).resolve().parent / "out" / f"l2_{n}"
    work.mkdir(parents=True, exist_ok=True)
    data = work / "buildings.parquet"
    if not data.exists():
        write_geoparquet(data, n)
    toml = work / "city.toml"
    toml.write_text(
        '[city]\nname = "bench"\n[buildings]\npath = "buildings.parquet"\nid = "id"\n',
        encoding="utf-8",
    )
    return toml
