"""One L3 task: the detailed models of one L2 district tile's buildings → L3 tiles.

A task is self-contained and picklable (footprints as WKB, the roof specs, the
looks, the metadata rows), so it runs in any executor. It

1. puts each footprint in building-local metres (east-north-up of the tileset frame,
   origin at the footprint's bounding-box centre) and builds its mesh through
   :func:`tiling.l3.roofs.build_building`;
2. orders the buildings along a Morton curve and cuts them into tiles under the byte
   budget (an estimate first; a tile still over the budget once encoded is halved);
3. dresses each tile (:mod:`tiling.l3.mesh`): facade and roof material textures,
   roofs cut from the orthophoto into an atlas (:class:`tiling.l3.textures.Atlas`),
   and writes its glb (:mod:`tiling.l3.glb`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from cim.crs import get_transformer, lonlat_to_enu
from tiling.gltf import PropertySpec
from tiling.l3.glb import Material, write_textured_glb
from tiling.l3.mesh import (
    EAVE_SURFACES,
    FACADE_SURFACES,
    Corners,
    Look,
    TileMesher,
    corners,
    corners_many,
    eave_material,
    surface_mask,
)
from tiling.l3.roofs import SURFACE_PODIUM, RoofForm, RoofSpec, build_building
from tiling.l3.roofs.batch import build_batch
from tiling.l3.textures import (
    FACADES,
    MAX_ATLAS_PX,
    MAX_ROOF_PX,
    MIME,
    ROOF_MATERIALS,
    Atlas,
    encode_image,
    facade_image,
    piece_size,
    roof_image,
)

log = logging.getLogger(__name__)

#: Planning estimate of glb bytes per mesh corner (welded and meshopt-compressed:
#: measured 3.1–4.4 on the sample city, bench/bench_l3.py) and per atlas pixel.
BYTES_PER_CORNER = 5.0
BYTES_PER_ATLAS_PX = 0.35
BYTES_PER_ROW = 300.0
#: Tiles are planned to this share of the budget, and hold at most this many buildings.
PLANNING_SHARE = 0.6
MAX_BUILDINGS_PER_TILE = 400
NOT_ROOF = surface_mask(*FACADE_SURFACES, *EAVE_SURFACES, SURFACE_PODIUM)


@dataclass(frozen=True)
class L3Options:
    """Knobs of the L3 writer (``[l3]`` in city.toml)."""

    texture_format: str = "webp"
    quality: int = 80
    compression: str = "meshopt"
    max_tile_bytes: int = 2_000_000
    skirt: float = 0.0


@dataclass(frozen=True)
class Ortho:
    """The orthophoto the roofs are cut from: its files and their CRS."""

    paths: tuple[str, ...]
    crs: str


@dataclass(frozen=True)
class GroupTask:
    """The buildings of one L2 district tile (rows in the L2 tile's order)."""

    name: str
    frame: np.ndarray
    ids: np.ndarray
    footprints: np.ndarray  # WKB, lon/lat
    base: np.ndarray  # ellipsoidal, m
    specs: list[RoofSpec]
    looks: list[Look]
    properties: list[PropertySpec]
    table: dict[str, np.ndarray]
    options: L3Options
    out_dir: str
    ortho: Ortho | None = None
    #: imported models by row: (positions in the tileset frame, triangles, surfaces)
    models: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)


@dataclass
class Built:
    """Meshes of a group: per building its corners (None: no model), offset, heights."""

    corners: list[Corners | None]
    local: np.ndarray  # footprints in building-local metres
    offset: np.ndarray
    eave: np.ndarray
    ridge: np.ndarray
    deviation: np.ndarray
    fallbacks: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def run_group(task: GroupTask) -> dict[str, Any]:
    """Build, cut, dress and write the L3 tiles of one group.

    Returns
    -------
    dict
        ``tiles``: per L3 tile its content ``uri`` (relative to the tileset folder),
        ``bytes``, content box ``lo``/``hi`` and ``rows`` (indices into the group);
        ``eave``, ``ridge``, ``deviation`` per building (NaN: no model);
        ``fallbacks`` and ``skipped``: (id, detail) pairs for the report.
    """
    built = build_meshes(task)
    rows = np.array([i for i, c in enumerate(built.corners) if c is not None], dtype=np.int64)
    atlas_px = _atlas_pixels(task, built)
    estimate = np.array(
        [
            (len(c.local) * BYTES_PER_CORNER if c is not None else 0.0)
            + atlas_px[i] * BYTES_PER_ATLAS_PX
            + BYTES_PER_ROW
            for i, c in enumerate(built.corners)
        ]
    )
    rows = rows[np.argsort(_morton(built.offset[rows, :2]), kind="stable")]
    tiles: list[dict[str, Any]] = []
    ortho = _OrthoWindow.open(task, built.local) if task.ortho is not None else None
    for chunk in _chunks(rows, estimate, task.options):
        _encode(task, built, chunk, ortho, tiles)
    return {
        "tiles": tiles,
        "eave": built.eave,
        "ridge": built.ridge,
        "deviation": built.deviation,
        "fallbacks": built.fallbacks,
        "skipped": built.skipped,
    }


# --- meshes ------------------------------------------------------------------------------


def build_meshes(task: GroupTask) -> Built:
    """Every building's mesh, in building-local metres, unwelded for dressing.

    Directional roofs on rectangles and central ones on convex footprints are built
    together (:func:`tiling.l3.roofs.batch.build_batch`, the same meshes); the others one
    by one through the fallback chain. Corners and deviations are computed for all at once.
    """
    footprints = shapely.from_wkb(task.footprints)
    local, offset = local_footprints(footprints, task.base, task.frame)
    n = len(footprints)
    out = Built([None] * n, local, offset, *(np.full(n, np.nan) for _ in range(3)))
    generated = np.array([i not in task.models for i in range(n)], dtype=bool)
    batched = [None] * n
    rows = np.flatnonzero(generated)
    made = build_batch(local[rows], [task.specs[i] for i in rows.tolist()])
    for i, m in zip(rows.tolist(), made, strict=True):
        batched[i] = m
    meshes, owner = [], []
    for i in range(n):
        if not generated[i]:
            continue
        bid = str(task.ids[i])
        parts = (
            [batched[i]] if batched[i] is not None else _build(bid, local[i], task.specs[i], out)
        )
        if parts is None:
            continue
        for m in parts:
            out.fallbacks += [(bid, f) for f in m.fallbacks]
            meshes.append((m.positions, m.triangles, m.surface))
            owner.append(i)
        out.eave[i] = max(m.eave_z for m in parts)
        out.ridge[i] = max(m.ridge_z for m in parts)
    dressed = corners_many(meshes, np.array(owner, dtype=np.int64), n, task.options.skirt)
    for i in sorted(set(owner)):
        out.corners[i] = dressed[i]
    done = np.array(sorted(set(owner)), dtype=np.int64)
    out.deviation[done] = _deviations(local[done], [out.corners[i] for i in done], task, done)
    for i, model in task.models.items():
        _imported(out, i, model, task.options.skirt, task.specs[i].eave_height)
    return out


def _deviations(
    footprints: np.ndarray, cs: list[Corners], task: GroupTask, rows: np.ndarray
) -> np.ndarray:
    """:func:`_deviation` of many buildings at once."""
    if not len(cs):
        return np.zeros(0)
    bounds = shapely.bounds(footprints)
    starts = np.concatenate([[0], np.cumsum([len(c.local) for c in cs])[:-1]])
    allp = np.concatenate([c.local for c in cs])
    lo, hi = np.minimum.reduceat(allp, starts), np.maximum.reduceat(allp, starts)
    eave = np.array([task.specs[i].eave_height for i in rows.tolist()])
    margins = np.column_stack([bounds[:, :2] - lo[:, :2], hi[:, :2] - bounds[:, 2:]])
    overhang = np.maximum(margins.max(axis=1), 0.0)
    return np.maximum.reduce([hi[:, 2] - eave, overhang, np.abs(hi[:, 2] - eave)])


def _build(bid: str, footprint: shapely.Geometry, spec: RoofSpec, out: Built) -> list | None:
    """The building's meshes (one per footprint part); a failure of the roof engine
    falls back to a flat roof (reported), and a second one leaves it without a model."""
    polygons = shapely.get_parts(footprint)
    try:
        return [build_building(p, spec) for p in polygons]
    except Exception as exc:  # one building's failure costs that building only
        first = f"{type(exc).__name__}: {exc}"
    flat = replace(spec, form=RoofForm.FLAT, roof_height=None, double_eave=False)
    try:
        parts = [build_building(p, flat) for p in polygons]
    except Exception as exc:
        out.skipped.append((bid, f"no model ({first}; as a flat roof: {exc})"))
        return None
    out.fallbacks.append((bid, f"roof engine failed ({first}): flat roof"))
    return parts


def _imported(
    out: Built,
    i: int,
    model: tuple[np.ndarray, np.ndarray, np.ndarray],
    skirt: float,
    eave: float,
) -> None:
    """An imported model in place of the generated one (see :mod:`tiling.l3.models`)."""
    positions, triangles, surface = model
    local = positions - out.offset[i]
    out.corners[i] = corners(local, triangles, surface, skirt)
    top = float(local[:, 2].max())
    out.eave[i], out.ridge[i] = min(eave, top), top
    out.deviation[i] = _deviation(out.local[i], out.corners[i], eave)


def local_footprints(
    footprints: np.ndarray, base: np.ndarray, frame: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Footprints in building-local metres and each building's origin in the frame.

    The origin is the centre of the footprint's bounding box in the tileset frame, at
    its base (z: the frame's height of the base there).
    """
    coords = shapely.get_coordinates(footprints)
    counts = shapely.get_num_coordinates(footprints)
    owner = np.repeat(np.arange(len(footprints)), counts)
    enu = lonlat_to_enu(coords[:, 0], coords[:, 1], base[owner], frame)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    lo = np.minimum.reduceat(enu, starts, axis=0)
    hi = np.maximum.reduceat(enu, starts, axis=0)
    origin = (lo + hi) / 2.0
    origin[:, 2] = np.add.reduceat(enu[:, 2], starts) / counts
    local = shapely.set_coordinates(footprints.copy(), enu[:, :2] - origin[owner, :2])
    return local, origin


def _deviation(footprint: shapely.Geometry, c: Corners, eave: float) -> float:
    """How far the model departs from the L2 block (m): roof rise, overhang, podium."""
    x0, y0, x1, y1 = shapely.bounds(footprint)
    lo, hi = c.local.min(axis=0), c.local.max(axis=0)
    overhang = max(x0 - lo[0], y0 - lo[1], hi[0] - x1, hi[1] - y1, 0.0)
    return float(max(hi[2] - eave, overhang, abs(hi[2] - eave)))


def _morton(xy: np.ndarray) -> np.ndarray:
    """Morton (Z-order) codes of points: buildings near in space stay near in order."""
    if not len(xy):
        return np.zeros(0, dtype=np.uint64)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    q = ((xy - lo) / np.maximum(hi - lo, 1e-9) * 65535).astype(np.uint64)
    code = np.zeros(len(xy), dtype=np.uint64)
    for bit in range(16):
        for axis in range(2):
            code |= ((q[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(2 * bit + axis)
    return code


def _chunks(rows: np.ndarray, estimate: np.ndarray, options: L3Options) -> list[np.ndarray]:
    """Consecutive runs of ``rows`` under the planning share of the budget."""
    budget = PLANNING_SHARE * options.max_tile_bytes
    out, start, total = [], 0, 0.0
    for k, r in enumerate(rows.tolist()):
        if k > start and (total + estimate[r] > budget or k - start >= MAX_BUILDINGS_PER_TILE):
            out.append(rows[start:k])
            start, total = k, 0.0
        total += estimate[r]
    if start < len(rows):
        out.append(rows[start:])
    return out


# --- orthophoto --------------------------------------------------------------------------


def _uses_ortho(task: GroupTask, i: int) -> bool:
    return task.ortho is not None and task.looks[i].roof == "ortho"


def _roof_bounds(c: Corners) -> tuple[float, float, float, float]:
    roof = _roof_mask(c)
    xy = c.local[roof, :2] if roof.any() else c.local[:, :2]
    return (
        float(xy[:, 0].min()),
        float(xy[:, 1].min()),
        float(xy[:, 0].max()),
        float(xy[:, 1].max()),
    )


def _roof_mask(c: Corners) -> np.ndarray:
    return ~NOT_ROOF[c.surface]


def _atlas_pixels(task: GroupTask, built: Built, native: float = 0.25) -> np.ndarray:
    px = np.zeros(len(built.corners))
    for i, c in enumerate(built.corners):
        if c is not None and _uses_ortho(task, i):
            x0, y0, x1, y1 = _roof_bounds(c)
            w, h = piece_size(x1 - x0, y1 - y0, native)
            px[i] = w * h
    return px


@dataclass
class _OrthoWindow:
    """The orthophoto under a group's buildings, read once, and how to sample it.

    ``fits[i]`` maps building ``i``'s local metres to window pixels: an affine map
    fitted (least squares) on its own footprint vertices, whose positions are known
    in both frames; at the scale of a building the map is affine to well under a
    millimetre, and no ECEF round trip is needed.
    """

    rgb: np.ndarray  # (3, rows, cols) uint8
    fits: list[np.ndarray | None]  # per building (3, 2): [x, y, 1] @ fit = [col, row]
    resolution: float

    @classmethod
    def open(cls, task: GroupTask, local: np.ndarray) -> _OrthoWindow | None:
        import rasterio
        from rasterio.windows import from_bounds

        assert task.ortho is not None
        footprints = shapely.from_wkb(task.footprints)
        lon_lat = shapely.get_coordinates(footprints)
        for path in task.ortho.paths:
            with rasterio.open(path) as ds:
                crs = ds.crs.to_string() if ds.crs else task.ortho.crs
                x, y = get_transformer("EPSG:4326", crs).transform(lon_lat[:, 0], lon_lat[:, 1])
                pad = 20.0 * abs(ds.transform.a) + 5.0
                b = (x.min() - pad, y.min() - pad, x.max() + pad, y.max() + pad)
                left, bottom, right, top = ds.bounds
                if b[0] > right or b[2] < left or b[1] > top or b[3] < bottom:
                    continue
                win = from_bounds(*b, transform=ds.transform).round_offsets().round_lengths()
                bands = [1, 2, 3] if ds.count >= 3 else [1, 1, 1]
                rgb = ds.read(bands, window=win, boundless=True, fill_value=0)
                if rgb.dtype != np.uint8:  # 16-bit orthophotos: scale to 8 bits
                    top_value = max(float(np.percentile(rgb, 99.5)), 1.0)
                    rgb = np.clip(rgb / top_value * 255.0, 0, 255).astype(np.uint8)
                inv = ~ds.window_transform(win)
                pixels = np.column_stack(
                    [inv.a * x + inv.b * y + inv.c, inv.d * x + inv.e * y + inv.f]
                )
                return cls(rgb, _fits(local, pixels), abs(ds.transform.a))
        return None

    def cut(self, i: int, bounds: tuple, size: tuple[int, int]) -> np.ndarray:
        """The (h, w, 3) image of building ``i``'s plan rectangle ``bounds`` (local m)."""
        x0, y0, x1, y1 = bounds
        w, h = size
        gx = x0 + (np.arange(w) + 0.5) / w * (x1 - x0)
        gy = y1 - (np.arange(h) + 0.5) / h * (y1 - y0)
        fit = self.fits[i]
        assert fit is not None
        cc = gx[None, :] * fit[0, 0] + gy[:, None] * fit[1, 0] + fit[2, 0]
        rr = gx[None, :] * fit[0, 1] + gy[:, None] * fit[1, 1] + fit[2, 1]
        ci = np.clip(cc.astype(np.int64), 0, self.rgb.shape[2] - 1)
        ri = np.clip(rr.astype(np.int64), 0, self.rgb.shape[1] - 1)
        return np.ascontiguousarray(np.moveaxis(self.rgb[:, ri, ci], 0, -1))


def _fits(local: np.ndarray, pixels: np.ndarray) -> list[np.ndarray | None]:
    """Per footprint, the affine map local metres → pixels (None: degenerate).

    Least squares for all footprints at once: each footprint's normal equations
    (3 × 3) are summed over its vertices and solved in one batched call.
    """
    counts = shapely.get_num_coordinates(local)
    xy = shapely.get_coordinates(local)
    a = np.column_stack([xy, np.ones(len(xy))])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ata = np.add.reduceat(a[:, :, None] * a[:, None, :], starts, axis=0)
    atb = np.add.reduceat(a[:, :, None] * pixels[:, None, :], starts, axis=0)
    # scale-free test of degeneracy (collinear vertices): the determinant vs its size
    det = np.linalg.det(ata)
    ok = np.abs(det) > 1e-9 * np.maximum(np.abs(ata).max(axis=(1, 2)), 1.0) ** 3
    fits = np.zeros((len(counts), 3, 2))
    if ok.any():
        fits[ok] = np.linalg.solve(ata[ok], atb[ok])
    return [fits[i] if ok[i] else None for i in range(len(counts))]


# --- encoding ----------------------------------------------------------------------------


@cache
def _image_bytes(kind: str, fmt: str, quality: int) -> bytes:
    img = roof_image(kind.split(":")[1]) if kind.startswith("roof:") else facade_image(kind[7:])
    return encode_image(img, fmt, quality)


def _encode(
    task: GroupTask,
    built: Built,
    rows: np.ndarray,
    ortho: _OrthoWindow | None,
    tiles: list[dict[str, Any]],
) -> None:
    """Dress and write the tile of ``rows``; halve it while it is over the budget."""
    opts = task.options
    native = ortho.resolution if ortho is not None else 0.25
    # shelves about as wide as the pieces' total area is tall: a squarish atlas
    area = float(_atlas_pixels(task, built, native)[rows].sum())
    width = int(min(MAX_ATLAS_PX, max(MAX_ROOF_PX + 4, 1.15 * np.sqrt(area))))
    mesher, atlas = TileMesher(), Atlas(max_width=width)
    for k, i in enumerate(rows.tolist()):
        c = built.corners[i]
        assert c is not None
        look, uv = task.looks[i], None
        if _uses_ortho(task, i) and ortho is not None and ortho.fits[i] is not None:
            bounds = _roof_bounds(c)
            size = piece_size(bounds[2] - bounds[0], bounds[3] - bounds[1], native)
            piece = atlas.add(ortho.cut(i, bounds, size))
            roof = _roof_mask(c)
            px = (c.local[roof, 0] - bounds[0]) / (bounds[2] - bounds[0] or 1.0) * size[0]
            py = (bounds[3] - c.local[roof, 1]) / (bounds[3] - bounds[1] or 1.0) * size[1]
            uv = atlas.uv(piece, px, py)
        elif look.roof == "ortho":
            look = Look(look.facade, look.storey, "tile", look.tint)
        mesher.add(c, built.offset[i], k, look, uv)
    images, materials = _materials(atlas, opts)
    prims, used = mesher.primitives(materials)
    table = {p.id: _column(task, p.id, built, rows) for p in task.properties}
    data = write_textured_glb(
        prims, used, images, task.properties, table, compression=opts.compression
    )
    if len(data) > opts.max_tile_bytes and len(rows) > 1:
        half = len(rows) // 2
        _encode(task, built, rows[:half], ortho, tiles)
        _encode(task, built, rows[half:], ortho, tiles)
        return
    uri = f"content/{task.name}_{len(tiles)}.glb"
    (Path(task.out_dir) / uri).write_bytes(data)
    pos = np.concatenate([p.positions for p in prims])
    lo, hi = pos.min(axis=0), pos.max(axis=0)
    pad = float((hi - lo).max()) / 65535.0 + 0.01  # quantization step
    tiles.append({"uri": uri, "bytes": len(data), "lo": lo - pad, "hi": hi + pad, "rows": rows})


def _materials(
    atlas: Atlas, opts: L3Options
) -> tuple[list[tuple[bytes, str]], dict[str, Material]]:
    fmt, mime = opts.texture_format, MIME[opts.texture_format]
    images: list[tuple[bytes, str]] = []
    materials: dict[str, Material] = {"eave": eave_material()}
    for kind in [
        *(f"facade:{f}" for f in (*FACADES, "stone")),
        *(f"roof:{m}" for m in ROOF_MATERIALS),
    ]:
        images.append((_image_bytes(kind, fmt, opts.quality), mime))
        materials[kind] = Material(kind, image=len(images) - 1)
    if atlas.pieces:
        images.append((encode_image(atlas.image(), fmt, opts.quality), mime))
        materials["roof:ortho"] = Material("roof:ortho", image=len(images) - 1, repeat=False)
    return images, materials


def _column(task: GroupTask, pid: str, built: Built, rows: np.ndarray) -> np.ndarray:
    if pid == "eave_height":
        return built.eave[rows].astype(np.float32)
    if pid == "ridge_height":
        return built.ridge[rows].astype(np.float32)
    return task.table[pid][rows]
