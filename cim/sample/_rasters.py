"""DEM and orthophoto of the sample city (GeoTIFFs in the Gauss-Krüger CRS).

Both are computed on whole numpy grids; the orthophoto paints ground classes, tree
crowns, shadows and roofs with :func:`rasterio.features.rasterize` (one call per
layer, never a loop over features or pixels).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.features import rasterize

from cim.sample import _layout as lay
from cim.sample._buildings import BuildingTable

log = logging.getLogger(__name__)

#: DEM: half side (local metres), pixel size, nodata value, rows of the nodata strip.
DEM_HALF, DEM_RES, DEM_NODATA, DEM_NODATA_ROWS = 2600.0, 4.0, -9999.0, 30
#: Orthophoto: half side, pixel size, columns of the masked (nodata) strip on the west.
ORTHO_HALF, ORTHO_RES, ORTHO_MASK_COLS = 2300.0, 1.0, 60
G_TREE = 20

_PALETTE = np.zeros((32, 3), dtype=np.int16)
_PALETTE[:] = (150, 140, 115)
for _cls, _rgb in {
    lay.G_SOIL: (158, 146, 112),
    lay.G_GRASS: (96, 132, 70),
    lay.G_ROAD: (72, 72, 76),
    lay.G_LANE: (168, 158, 138),
    lay.G_OLDSTREET: (150, 146, 138),
    lay.G_WALL: (120, 105, 88),
    lay.G_MOAT: (52, 78, 70),
    lay.G_RIVER: (58, 84, 98),
    lay.G_PAVING: (196, 186, 164),
    lay.G_OLDGROUND: (178, 166, 142),
    lay.G_RESIDENTIAL: (118, 140, 92),
    lay.G_INDUSTRIAL: (150, 148, 140),
    lay.G_VILLAGE: (152, 134, 108),
    lay.G_PLAZA: (190, 188, 180),
    G_TREE: (38, 92, 30),
    G_TREE + 1: (58, 114, 40),
}.items():
    _PALETTE[_cls] = _rgb


def from_origin(west: float, north: float, xres: float, yres: float) -> Affine:
    """North-up affine transform (rasterio's helper without its deprecation warning)."""
    return Affine(xres, 0.0, west, 0.0, -yres, north)


def dem_height(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Orthometric ground height (m) at local coordinates: valley, western hills."""
    d = np.abs(x - lay.river_x(y))
    t = np.clip((-x - 1500.0) / 1000.0, 0.0, 1.0)
    hills = t * t * (3 - 2 * t)
    z = (
        1042.0
        + 0.0025 * y
        + 88.0 * hills
        + 12.0 * hills * np.sin(y / 170.0) * np.cos(x / 210.0)
        + 1.2 * np.sin(x / 330.0) * np.cos(y / 410.0)
        + 0.5 * np.sin((x + y) / 150.0)
        - 16.0 * np.exp(-((d / 260.0) ** 2))
        - 3.0 * (d < lay.RIVER_WIDTH / 2)
    )
    return z


def write_dem(path: Path, origin: tuple[float, float], crs: str) -> None:
    """Write the float32 DEM with a nodata strip along the north edge."""
    n = int(2 * DEM_HALF / DEM_RES)
    c = -DEM_HALF + DEM_RES * (np.arange(n) + 0.5)
    x, y = np.meshgrid(c, c[::-1])
    z = dem_height(x, y).astype(np.float32)
    z[:DEM_NODATA_ROWS] = DEM_NODATA
    transform = from_origin(origin[0] - DEM_HALF, origin[1] + DEM_HALF, DEM_RES, DEM_RES)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=n,
        height=n,
        count=1,
        dtype="float32",
        crs=crs,
        transform=transform,
        nodata=DEM_NODATA,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
        predictor=3,
    ) as dst:
        dst.write(z, 1)
        dst.update_tags(AREA_OR_POINT="Area", VERTICAL_DATUM="orthometric (EGM96-like)")


def _burn(
    geoms: np.ndarray,
    values: np.ndarray,
    shape: tuple[int, int],
    transform: object,
    fill: int,
    dtype: str,
) -> np.ndarray:
    """Rasterize shapely geometries fast (GeoJSON dicts built in C by shapely)."""
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    dicts = [json.loads(t) for t in shapely.to_geojson(geoms[keep])]
    vals = np.asarray(values)[keep].tolist()
    return rasterize(
        zip(dicts, vals, strict=True), out_shape=shape, transform=transform, fill=fill, dtype=dtype
    )


def _roof_colours(b: BuildingTable, rng: np.random.Generator) -> np.ndarray:
    n = len(b)
    col = np.empty((n, 3), dtype=np.int16)
    grey = rng.integers(84, 108, n)
    col[:] = np.column_stack([grey, grey + 2, grey + 6])
    modern = np.array(
        [
            (205, 205, 200),
            (178, 176, 170),
            (150, 160, 172),
            (196, 184, 160),
            (120, 140, 160),
            (168, 96, 80),
            (100, 128, 110),
            (220, 218, 210),
            (140, 140, 145),
            (186, 150, 120),
        ],
        dtype=np.int16,
    )
    k = np.isin(
        b.kind,
        ("slab", "tower", "office", "podium", "shop", "garage", "public", "village", "shed", "bad"),
    )
    col[k] = modern[rng.integers(0, len(modern), k.sum())]
    shed = b.kind == "shed"
    col[shed] = np.array([(70, 104, 150), (205, 205, 205), (150, 150, 150)], dtype=np.int16)[
        rng.integers(0, 3, shed.sum())
    ]
    gl = np.isin(b.kind, ("temple", "gate", "tower_old")) | (b.kind == "pavilion")
    col[gl] = np.array([(176, 138, 58), (72, 100, 84), (92, 92, 98)], dtype=np.int16)[
        rng.integers(0, 3, gl.sum())
    ]
    col += rng.integers(-6, 7, (n, 3)).astype(np.int16)
    return col


def write_ortho(
    path: Path,
    origin: tuple[float, float],
    crs: str,
    b: BuildingTable,
    streets: lay.Streets,
    grounds: list[tuple[shapely.Geometry, int]],
    trees: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Paint and write the RGB orthophoto (JPEG, tiled, internal nodata mask)."""
    n = int(2 * ORTHO_HALF / ORTHO_RES)
    # rasterize in local metres: north-up, top-left at (-H, +H)
    tf = from_origin(-ORTHO_HALF, ORTHO_HALF, ORTHO_RES, ORTHO_RES)
    shape = (n, n)
    river = lay.river_line()
    wall_ring = shapely.difference(lay.square(lay.WALL_OUT), lay.square(lay.WALL_IN))
    moat = shapely.difference(lay.square(lay.MOAT_OUT), lay.square(lay.MOAT_IN))
    green_ring = shapely.difference(lay.square(885.0), lay.square(lay.WALL_OUT))
    spoly = streets.polygons()
    kinds = np.array(streets.kinds)
    later = [(g, c) for g, c in grounds if c == lay.G_PAVING]
    shapes: list[tuple[shapely.Geometry, int]] = [
        (lay.square(lay.WALL_IN), lay.G_OLDGROUND),
        *[(g, c) for g, c in grounds if c != lay.G_PAVING],
        (shapely.buffer(river, lay.RIVER_WIDTH / 2 + 45.0), lay.G_GRASS),
        (green_ring, lay.G_GRASS),
        (moat, lay.G_MOAT),
        (shapely.buffer(river, lay.RIVER_WIDTH / 2), lay.G_RIVER),
        (wall_ring, lay.G_WALL),
        *[(g, lay.G_ROAD) for g in spoly[np.isin(kinds, ("road", "minor", "gate"))]],
        *[(g, lay.G_OLDSTREET) for g in spoly[np.isin(kinds, ("old_main", "old_street"))]],
        *[(g, lay.G_LANE) for g in spoly[kinds == "lane"]],
        *later,
    ]
    trees = trees[trees[:, 2] >= 1.0]
    if len(trees):
        crowns = shapely.buffer(shapely.points(trees[:, 0], trees[:, 1]), trees[:, 2], quad_segs=4)
        kind = np.where(rng.uniform(size=len(trees)) < 0.5, G_TREE, G_TREE + 1)
        shapes += list(zip(crowns, kind.tolist(), strict=True))
    geoms_s, values = zip(*shapes, strict=True)
    cls = _burn(
        np.asarray(geoms_s, dtype=object), np.asarray(values), shape, tf, lay.G_SOIL, "uint8"
    )
    ok = ~shapely.is_missing(b.geoms)
    rows = np.flatnonzero(ok)
    geoms2d = shapely.force_2d(b.geoms[rows])
    bid = _burn(geoms2d, rows + 1, shape, tf, 0, "int32")
    # shade: 1 = cast shadow (north-west of buildings above 8 m), 2 = dark roof half
    tall = rows[b.true_height[rows] > 8.0]
    g = shapely.force_2d(b.geoms[tall])
    coords, idx = shapely.get_coordinates(g, return_index=True)
    h = b.true_height[tall][idx]
    moved = shapely.set_coordinates(g.copy(), coords + np.column_stack([-0.25 * h, 0.45 * h]))
    shadow_polys = shapely.convex_hull(shapely.union(shapely.convex_hull(g), moved))
    pitched = rows[b.roof[rows] != "flat"]  # western and Chinese forms alike
    gp = shapely.force_2d(b.geoms[pitched])
    bx = shapely.bounds(gp)
    cx, cy = (bx[:, 0] + bx[:, 2]) / 2, (bx[:, 1] + bx[:, 3]) / 2
    wide = (bx[:, 2] - bx[:, 0]) >= (bx[:, 3] - bx[:, 1])
    half = shapely.box(
        np.where(wide, bx[:, 0], bx[:, 0]),
        np.where(wide, cy, bx[:, 1]),
        np.where(wide, bx[:, 2], cx),
        bx[:, 3],
    )
    dark_half = shapely.intersection(gp, half)
    dark_half = dark_half[~shapely.is_empty(dark_half)]
    shade = _burn(
        np.concatenate([shadow_polys, dark_half]),
        np.r_[np.ones(len(shadow_polys)), np.full(len(dark_half), 2)],
        shape,
        tf,
        0,
        "uint8",
    )
    on_roof = bid > 0
    factor = np.where(on_roof, np.where(shade == 2, 16, 20), np.where(shade == 1, 11, 20)).astype(
        np.int16
    )
    colours = np.zeros((len(b) + 1, 3), dtype=np.int16)
    colours[1:] = _roof_colours(b, rng)
    noise = rng.integers(-7, 8, size=shape, dtype=np.int16)
    out = np.empty((3, n, n), dtype=np.uint8)
    for band in range(3):
        pal = _PALETTE[:, band]
        v = np.where(on_roof, colours[:, band][bid], pal[cls])
        v += noise
        v *= factor
        v //= 20
        np.clip(v, 1, 255, out=v)
        out[band] = v
    mask = np.full(shape, 255, dtype=np.uint8)
    mask[:, :ORTHO_MASK_COLS] = 0
    out[:, :, :ORTHO_MASK_COLS] = 0
    transform = from_origin(origin[0] - ORTHO_HALF, origin[1] + ORTHO_HALF, ORTHO_RES, ORTHO_RES)
    with (
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
        rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=n,
            height=n,
            count=3,
            dtype="uint8",
            crs=crs,
            transform=transform,
            tiled=True,
            blockxsize=512,
            blockysize=512,
            compress="jpeg",
            photometric="ycbcr",
            jpeg_quality=85,
            interleave="pixel",
        ) as dst,
    ):
        dst.write(out)
        dst.write_mask(mask)
