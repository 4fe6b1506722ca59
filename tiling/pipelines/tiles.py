"""Write the placed pipes as a 3D Tiles 1.1 tileset and the network as SQLite.

Tiles: a quadtree over the plan; a leaf holds at most ``max_features_per_tile`` features
and spans at most ``max_tile_size`` metres (so the 16-bit quantized positions stay
within 8 mm at the default 1 km); inner tiles have no content and a geometric error that
lets CesiumJS load the pipes within about 1.5 km of the camera. One glb per leaf, one
feature per pipe, joint or well: per-vertex ``_FEATURE_ID_0`` into an
``EXT_structural_metadata`` property table (class ``pipe``), per-vertex colours by
utility (``COLOR_0``).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cim.config import PipelinesConfig
from cim.errors import DatasetIOError
from cim.pipelines import NETWORK_VERSION, UTILITIES
from tiling.pipelines.encode import NO_DATA, encode_tile
from tiling.pipelines.model import PipeModel
from tiling.pool import run_tasks
from tiling.tileset import Box, Tile, Tileset

log = logging.getLogger(__name__)

#: inner tiles load within about this distance of the camera (CesiumJS, SSE 16)
LOAD_DISTANCE_M = 1500.0
_SSE_FACTOR = 43.0  # distance / geometric error at which CesiumJS refines (SSE 16, 60°, 800 px)


def _rgba(hex_colour: str) -> np.ndarray:
    h = hex_colour.lstrip("#")
    return np.array([int(h[i : i + 2], 16) for i in (0, 2, 4)] + [255], dtype=np.uint8)


_COLOURS = {k: _rgba(u.colour) for k, u in UTILITIES.items()}


_KEYS = list(_COLOURS)
_TABLE = np.array([_COLOURS[k] for k in _KEYS], dtype=np.uint8)


def colours(utility: np.ndarray) -> np.ndarray:
    """RGBA per feature from its utility (national colour convention; unknown: other)."""
    uniq, inverse = np.unique(np.asarray(utility).astype(str), return_inverse=True)
    other = _KEYS.index("other")
    rows = np.array([_KEYS.index(u) if u in _COLOURS else other for u in uniq], dtype=np.int64)
    out = _TABLE[rows[inverse.ravel()]] if len(utility) else np.zeros((0, 4), np.uint8)
    return out


@dataclass
class Features:
    """Every feature of the tileset: segments first, then points with geometry."""

    x: np.ndarray  # plan position (frame metres) deciding the tile
    y: np.ndarray
    segment: np.ndarray  # segment row or -1
    point: np.ndarray  # point row or -1


def joints(model: PipeModel, cfg: PipelinesConfig) -> dict[str, np.ndarray]:
    """Per point: centre, radius (balls), mitre planes of pipe ends, well bottoms.

    A ball sits at every point with pipes that is not a well and not mitred; its
    centre is halfway between the highest and lowest axis end there (a change of depth
    at a point, 变深, stays closed) and its radius the largest pipe's plus half that
    spread. In ``mitre`` mode, two circular pipes of one utility and similar size
    meeting at a point are both cut on the plane bisecting their directions.
    """
    n = len(model.pt_ids)
    ends = np.concatenate([model.seg_start, model.seg_end])
    z = np.concatenate([model.a[:, 2], model.b[:, 2]])
    r = np.concatenate([np.maximum(model.width, model.height)] * 2) / 2.0
    zmax = np.full(n, -np.inf)
    zmin = np.full(n, np.inf)
    rmax = np.zeros(n)
    np.maximum.at(zmax, ends, z)
    np.minimum.at(zmin, ends, z)
    np.maximum.at(rmax, ends, r)
    degree = np.bincount(ends, minlength=n)
    xy = np.zeros((n, 2))
    xy[model.seg_start] = model.a[:, :2]
    xy[model.seg_end] = model.b[:, :2]
    centre = np.column_stack([xy, (zmax + zmin) / 2.0])
    radius = rmax * 1.05 + (zmax - zmin) / 2.0
    radius[model.pt_valve] *= 1.35  # valves stand out
    mitre_a = np.full((len(model.ids), 3), np.nan)
    mitre_b = np.full((len(model.ids), 3), np.nan)
    mitred = np.zeros(n, dtype=bool)
    if cfg.joints == "mitre":
        mitred = _mitre(model, degree, mitre_a, mitre_b)
    ball = (degree > 0) & ~model.pt_well & (~mitred | model.pt_valve)
    # wells reach from below the lowest pipe (or their surveyed depth) to the ground
    depth_bottom = model.pt_ground_h - model.pt_well_depth - model.origin[2]
    bottom = np.where(
        np.isfinite(model.pt_well_depth), np.fmin(zmin - rmax, depth_bottom), zmin - rmax
    )
    top = model.pt_ground_h - model.origin[2] + _curvature(xy)
    well = model.pt_well & np.isfinite(top) & (top > bottom + 0.05)
    size = np.where(np.isfinite(model.pt_well_size), model.pt_well_size, cfg.well_diameter)
    return {
        "centre": centre,
        "radius": radius,
        "ball": ball,
        "well": well,
        "well_bottom": bottom,
        "well_top": top,
        "well_radius": np.maximum(size / 2.0, rmax * 1.1),
        "mitre_a": mitre_a,
        "mitre_b": mitre_b,
    }


def _curvature(xy: np.ndarray) -> np.ndarray:
    """Drop of the ellipsoid below the frame's tangent plane (m) at plan positions."""
    return -(xy[:, 0] ** 2 + xy[:, 1] ** 2) / (2.0 * 6_371_000.0)


def _mitre(
    model: PipeModel, degree: np.ndarray, mitre_a: np.ndarray, mitre_b: np.ndarray
) -> np.ndarray:
    """Fill the mitre planes of ends at points where exactly two similar pipes meet."""
    n_seg = len(model.ids)
    ends = np.concatenate([model.seg_start, model.seg_end])
    seg_of = np.concatenate([np.arange(n_seg), np.arange(n_seg)])
    at_start = np.concatenate([np.ones(n_seg, bool), np.zeros(n_seg, bool)])
    d = model.b - model.a
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    # direction of travel *into* the point along each end's pipe
    into = np.where(at_start[:, None], -d[seg_of], d[seg_of])
    pair = np.flatnonzero(degree[ends] == 2)
    order = pair[np.argsort(ends[pair], kind="stable")]
    first, second = order[0::2], order[1::2]
    s1, s2 = seg_of[first], seg_of[second]
    similar = (
        ~model.rectangular[s1]
        & ~model.rectangular[s2]
        & (model.utility[s1] == model.utility[s2])
        & (
            np.abs(model.width[s1] - model.width[s2])
            <= 0.1 * np.maximum(model.width[s1], model.width[s2])
        )
    )
    normal = into[first] - into[second]  # into along one, out along the other
    norm = np.linalg.norm(normal, axis=1)
    turn_ok = np.einsum("ij,ij->i", into[first], -into[second]) > -0.2  # turns up to ~100°
    good = similar & (norm > 1e-6) & turn_ok
    normal = normal / np.where(norm > 0, norm, 1.0)[:, None]
    for ends_idx in (first[good], second[good]):
        seg = seg_of[ends_idx]
        target = np.where(at_start[ends_idx][:, None], 0, 1)
        plane = normal[good]
        mitre_a[seg[target[:, 0] == 0]] = plane[target[:, 0] == 0]
        mitre_b[seg[target[:, 0] == 1]] = plane[target[:, 0] == 1]
    mitred = np.zeros(len(degree), dtype=bool)
    mitred[ends[first[good]]] = True
    return mitred


def features(model: PipeModel, j: dict[str, np.ndarray]) -> Features:
    """The features (segments, then balls and wells) with their plan positions."""
    mid = (model.a + model.b) / 2.0
    pts = np.flatnonzero(j["ball"] | j["well"])
    n_seg = len(model.ids)
    return Features(
        x=np.concatenate([mid[:, 0], j["centre"][pts, 0]]),
        y=np.concatenate([mid[:, 1], j["centre"][pts, 1]]),
        segment=np.concatenate([np.arange(n_seg), np.full(len(pts), -1)]),
        point=np.concatenate([np.full(n_seg, -1), pts]),
    )


@dataclass
class _Node:
    key: str
    members: np.ndarray | None  # feature rows (leaves)
    children: list[_Node]
    size: float


def plan(feats: Features, max_features: int, max_size: float) -> _Node:
    """Quadtree over the features' plan positions (leaves hold the features)."""
    x0, x1 = float(feats.x.min()), float(feats.x.max())
    y0, y1 = float(feats.y.min()), float(feats.y.max())
    size = max(x1 - x0, y1 - y0, 1.0) * 1.0001
    return _split(feats, np.arange(len(feats.x)), x0, y0, size, "0", max_features, max_size, 0)


def _split(
    feats: Features,
    rows: np.ndarray,
    x0: float,
    y0: float,
    size: float,
    key: str,
    max_features: int,
    max_size: float,
    depth: int,
) -> _Node:
    if (len(rows) <= max_features and size <= max_size) or depth >= 20:
        return _Node(key, rows, [], size)
    half = size / 2.0
    east = feats.x[rows] >= x0 + half
    north = feats.y[rows] >= y0 + half
    children = []
    for q, (e, n) in enumerate(((False, False), (True, False), (False, True), (True, True))):
        sub = rows[(east == e) & (north == n)]
        if len(sub):
            children.append(
                _split(
                    feats,
                    sub,
                    x0 + half * e,
                    y0 + half * n,
                    half,
                    f"{key}{q}",
                    max_features,
                    max_size,
                    depth + 1,
                )
            )
    return _Node(key, None, children, size)


def _leaves(node: _Node) -> Iterator[_Node]:
    if node.members is not None:
        yield node
    for c in node.children:
        yield from _leaves(c)


def tile_task(
    model: PipeModel,
    feats: Features,
    j: dict[str, np.ndarray],
    rows: np.ndarray,
    key: str,
    out: Path,
    cfg: PipelinesConfig,
) -> dict[str, Any]:
    """The picklable description of one tile: its features' geometry and attributes."""
    seg = feats.segment[rows]
    seg = seg[seg >= 0]
    pt = feats.point[rows]
    pt = pt[pt >= 0]
    return {
        "key": key,
        "path": str(out / "content" / f"{key}.glb"),
        "compression": cfg.compression,
        "sides": cfg.sides,
        "a": model.a[seg],
        "b": model.b[seg],
        "width": model.width[seg],
        "height": model.height[seg],
        "rect": model.rectangular[seg],
        "mitre_a": j["mitre_a"][seg],
        "mitre_b": j["mitre_b"][seg],
        "seg_colour": j["seg_colour"][seg],
        "ball": j["ball"][pt],
        "well": j["well"][pt],
        "centre": j["centre"][pt],
        "radius": j["radius"][pt],
        "well_bottom": j["well_bottom"][pt],
        "well_top": j["well_top"][pt],
        "well_radius": j["well_radius"][pt],
        "pt_colour": j["pt_colour"][pt],
        "valve": model.pt_valve[pt],
        "table": _table(model, seg, pt),
    }


def _table(model: PipeModel, seg: np.ndarray, pt: np.ndarray) -> dict[str, np.ndarray]:
    """Property table columns: the tile's segments, then its points."""
    ns, npt = len(seg), len(pt)

    def both(seg_values: Any, pt_values: Any, dtype: Any = object) -> np.ndarray:
        return np.concatenate(
            [np.asarray(seg_values, dtype=dtype), np.asarray(pt_values, dtype=dtype)]
        )

    nodata = np.full(npt, NO_DATA)
    empty = np.full(npt, "", dtype=object)
    seg_nd = np.full(ns, NO_DATA)
    kind = np.where(model.pt_well[pt], "well", np.where(model.pt_valve[pt], "valve", "joint"))
    names = {k: u.name for k, u in UTILITIES.items()}
    pt_util = np.where(model.pt_utility[pt] == "", "other", model.pt_utility[pt])
    return {
        "id": both(model.ids[seg], model.pt_ids[pt]),
        "kind": both(np.full(ns, "pipe"), kind),
        "utility": both(model.utility[seg], pt_util),
        "utility_name": both(
            [names.get(u, u) for u in model.utility[seg]], [names.get(u, u) for u in pt_util]
        ),
        "start": both(model.pt_ids[model.seg_start[seg]], empty),
        "end": both(model.pt_ids[model.seg_end[seg]], empty),
        "size": both(model.section[seg], empty),
        "width": both(model.width[seg] * 1000.0, nodata, np.float64),
        "height": both(model.height[seg] * 1000.0, nodata, np.float64),
        "start_depth": both(model.start_depth[seg], nodata, np.float64),
        "end_depth": both(model.end_depth[seg], nodata, np.float64),
        "start_axis": both(model.start_axis[seg], nodata, np.float64),
        "end_axis": both(model.end_axis[seg], nodata, np.float64),
        "length": both(np.linalg.norm(model.b[seg] - model.a[seg], axis=1), nodata, np.float64),
        "ground": both(seg_nd, np.nan_to_num(model.pt_ground[pt], nan=NO_DATA), np.float64),
        "depth": both(seg_nd, np.nan_to_num(model.pt_depth[pt], nan=NO_DATA), np.float64),
        "feature": both(np.full(ns, "", dtype=object), model.pt_feature[pt]),
        **{k: both(model.text[k][seg], empty) for k in model.text},
    }


def write_tiles(
    model: PipeModel,
    cfg: PipelinesConfig,
    out: Path,
    *,
    jobs: int = 1,
    executor: Any = None,
    track: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """Write ``tileset.json`` and ``content/*.glb`` into ``out``; return the figures."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "content").mkdir(exist_ok=True)
    j = joints(model, cfg)
    # colours once for the whole network: tasks carry RGBA, not utility names
    j["seg_colour"] = colours(model.utility)
    j["pt_colour"] = colours(model.pt_utility)  # "" (no utility): other
    feats = features(model, j)
    root = plan(feats, cfg.max_features_per_tile, cfg.max_tile_size)
    leaves = list(_leaves(root))
    tasks = (tile_task(model, feats, j, leaf.members, leaf.key, out, cfg) for leaf in leaves)  # type: ignore[arg-type]
    results = {
        r["key"]: r
        for r in run_tasks(
            encode_tile,
            list(tasks),
            jobs=jobs,
            executor=executor,
            track=track,
            desc="pipeline tiles",
            unit="tile",
        )
    }
    tileset = _tileset(root, results, model)
    tileset.write(out / "tileset.json")
    sizes = [r["bytes"] for r in results.values()]
    return {
        "tiles": len(leaves),
        "bytes": int(sum(sizes)),
        "max_tile_bytes": int(max(sizes)),
        "triangles": int(sum(r["triangles"] for r in results.values())),
        "features": int(sum(r["features"] for r in results.values())),
        "joints": int(j["ball"].sum()),
        "wells": int(j["well"].sum()),
    }


def _tileset(root: _Node, results: dict[str, dict[str, Any]], model: PipeModel) -> Tileset:
    error = LOAD_DISTANCE_M / _SSE_FACTOR

    def make(node: _Node) -> tuple[Tile, np.ndarray, np.ndarray]:
        if node.members is not None:
            r = results[node.key]
            tile = Tile(
                Box.from_min_max(tuple(r["lo"]), tuple(r["hi"])), 0.0, f"content/{node.key}.glb"
            )
            return tile, r["lo"], r["hi"]
        kids = [make(c) for c in node.children]
        lo = np.min([k[1] for k in kids], axis=0)
        hi = np.max([k[2] for k in kids], axis=0)
        tile = Tile(Box.from_min_max(tuple(lo), tuple(hi)), error, None, [k[0] for k in kids])
        return tile, lo, hi

    tile, _, _ = make(root)
    if root.members is not None:  # a single leaf: still loaded by distance
        tile = Tile(tile.bounding_volume, error, None, [tile])
    tile.refine = "ADD"
    tile.transform = [float(v) for v in model.frame.T.ravel()]
    return Tileset(root=tile, geometric_error=error * 2)


# --- the network file ---------------------------------------------------------------

_POINT_COLUMNS = (
    "id TEXT PRIMARY KEY, utility TEXT, lon REAL, lat REAL, ground REAL, ground_h REAL, "
    "depth REAL, feature TEXT, valve INTEGER, well INTEGER, source INTEGER, x REAL, y REAL"
)
_SEGMENT_COLUMNS = (
    "id TEXT PRIMARY KEY, utility TEXT, start TEXT, end_ TEXT, start_depth REAL, "
    "end_depth REAL, start_axis REAL, end_axis REAL, ax REAL, ay REAL, az REAL, bx REAL, "
    "by REAL, bz REAL, width REAL, height REAL, rectangular INTEGER, size TEXT, length REAL, "
    "flow TEXT, material TEXT, laying TEXT, pressure TEXT, voltage TEXT, holes TEXT, "
    "cables TEXT, owner TEXT, road TEXT"
)


def write_network(model: PipeModel, path: Path, meta: dict[str, Any]) -> None:
    """Write ``network.sqlite``: points, segments (frame metres, depths, sizes) and meta.

    Raises
    ------
    DatasetIOError
        When the file cannot be written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    xy = np.zeros((len(model.pt_ids), 2))
    xy[model.seg_start] = model.a[:, :2]
    xy[model.seg_end] = model.b[:, :2]

    def num(v: np.ndarray) -> list[float]:
        # SQLite stores NaN as NULL: missing depths and elevations read back as None
        return np.asarray(v, dtype=np.float64).tolist()

    points = zip(
        model.pt_ids.tolist(),
        model.pt_utility.tolist(),
        model.pt_lon.tolist(),
        model.pt_lat.tolist(),
        num(model.pt_ground),
        num(model.pt_ground_h),
        num(model.pt_depth),
        model.pt_feature.tolist(),
        model.pt_valve.astype(int).tolist(),
        model.pt_well.astype(int).tolist(),
        model.pt_source.astype(int).tolist(),
        xy[:, 0].tolist(),
        xy[:, 1].tolist(),
        strict=True,
    )
    t = model.text
    segments = zip(
        model.ids.tolist(),
        model.utility.tolist(),
        model.pt_ids[model.seg_start].tolist(),
        model.pt_ids[model.seg_end].tolist(),
        num(model.start_depth),
        num(model.end_depth),
        num(model.start_axis),
        num(model.end_axis),
        *(model.a.T.tolist()),
        *(model.b.T.tolist()),
        model.width.tolist(),
        model.height.tolist(),
        model.rectangular.astype(int).tolist(),
        model.section.tolist(),
        model.length.tolist(),
        model.flow.tolist(),
        *(
            t[k].tolist()
            for k in (
                "material",
                "laying",
                "pressure",
                "voltage",
                "holes",
                "cables",
                "owner",
                "road",
            )
        ),
        strict=True,
    )
    try:
        db = sqlite3.connect(tmp)
        # a new file renamed into place when complete: no journal needed
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        with db:
            db.execute(f"CREATE TABLE points ({_POINT_COLUMNS})")
            db.execute(f"CREATE TABLE segments ({_SEGMENT_COLUMNS})")
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
            db.executemany(f"INSERT INTO points VALUES ({','.join('?' * 13)})", points)
            db.executemany(f"INSERT INTO segments VALUES ({','.join('?' * 28)})", segments)
            db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [(k, json.dumps(v, ensure_ascii=False)) for k, v in meta.items()],
            )
            db.execute("CREATE INDEX segments_start ON segments(start)")
            db.execute("CREATE INDEX segments_end ON segments(end_)")
            db.execute(f"PRAGMA user_version = {NETWORK_VERSION}")
        db.close()
        os.replace(tmp, path)
    except (OSError, sqlite3.Error) as exc:
        tmp.unlink(missing_ok=True)
        raise DatasetIOError(f"cannot write the pipe network ({exc})", path=path) from exc
