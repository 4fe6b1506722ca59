"""The L2 city model: every building as a block, as a 3D Tiles 1.1 tileset.

Pipeline (vectorised over the whole city, then one pure function per tile):

1. choose the tileset frame: an east-north-up frame at the city centre; its matrix
   is the root ``transform`` (ECEF), so tile geometry stays local and float32-safe;
2. convert every footprint vertex to that frame at base and roof height (numpy);
3. rank buildings by size and build the quadtree (:mod:`.hierarchy`);
4. sort buildings so each tile's buildings are contiguous, then extrude and encode
   each tile (:mod:`.extrude`, :mod:`tiling.gltf`) in a process pool;
5. write ``tileset.json`` with boxes that enclose each tile's content and children.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from cim.crs import enu_to_ecef_matrix, lonlat_to_enu, up_vectors
from cim.model import Buildings
from tiling.b3dm import write_b3dm
from tiling.buildings.extrude import extrude
from tiling.buildings.hierarchy import Node, build_hierarchy
from tiling.gltf import PropertySpec, write_glb
from tiling.tileset import Box, Tile, Tileset

log = logging.getLogger(__name__)

Tracker = Callable[..., Iterator[Any]]

BUILDING_PROPERTIES = [
    PropertySpec("id", "STRING", description="building id"),
    PropertySpec("name", "STRING"),
    PropertySpec("height", "SCALAR", "FLOAT32", description="height above base, m"),
    PropertySpec("floors", "SCALAR", "UINT16", no_data=0, description="floor count"),
    PropertySpec("use", "STRING"),
    PropertySpec("roof_type", "STRING"),
    PropertySpec(
        "base", "SCALAR", "FLOAT32", description="WGS84 ellipsoidal height of the base, m"
    ),
    PropertySpec("address", "STRING", description="addresses, '; '-separated"),
]


@dataclass(frozen=True)
class L2Options:
    """Knobs of the L2 writer (``[l2]`` in city.toml)."""

    max_features_per_tile: int = 2000
    max_vertices_per_tile: int = 60000
    compression: str = "meshopt"
    format: str = "3dtiles-1.1"  # or "b3dm" (3D Tiles 1.0 for older clients)

    @property
    def suffix(self) -> str:
        """Content file suffix."""
        return ".b3dm" if self.format == "b3dm" else ".glb"


@dataclass
class _TileJob:
    key: str
    start: int
    stop: int


# Arrays shared with worker processes (fork start method: inherited, not pickled).
_SHARED: dict[str, Any] = {}


def write_l2(
    buildings: Buildings,
    out_dir: Path,
    options: L2Options,
    *,
    jobs: int = 1,
    track: Tracker | None = None,
) -> dict[str, Any]:
    """Write the L2 tileset of ``buildings`` into ``out_dir``.

    Parameters
    ----------
    buildings : Buildings
        With ``base`` already set (ellipsoidal).
    out_dir : Path
        ``<output>/tiles/l2``; created.
    options : L2Options
    jobs : int
        Worker processes for tile encoding.
    track : callable, optional
        Progress wrapper ``track(iterable, total=, desc=, unit=)``.

    Returns
    -------
    dict
        Figures for the manifest/report: tiles, bytes, max tile bytes, depth.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "content").mkdir(exist_ok=True)
    clock = _Clock()
    frame, centre = _frame(buildings)
    centre_xy, size, vertices = _ranking(buildings, frame)
    nodes = build_hierarchy(
        centre_xy,
        size,
        vertices,
        max_features=options.max_features_per_tile,
        max_vertices=options.max_vertices_per_tile,
    )
    order = np.concatenate([n.members for n in nodes])
    counts = np.array([len(n.members) for n in nodes])
    starts = np.concatenate([[0], np.cumsum(counts)])
    clock.lap("hierarchy")
    buildings = buildings.take(order)  # tile order: each tile's buildings are contiguous
    clock.lap("order")
    jobs_list = [_TileJob(n.key, int(starts[i]), int(starts[i + 1])) for i, n in enumerate(nodes)]
    _SHARED.clear()
    _SHARED.update(frame=frame, buildings=buildings, out_dir=out_dir, options=options)
    results = dict(_run_jobs(jobs_list, jobs, track))
    _SHARED.clear()
    clock.lap("encode")
    tileset = _tileset(options, nodes, results, frame, buildings)
    tileset.write(out_dir / "tileset.json")
    clock.lap("tileset")
    sizes = [r["bytes"] for r in results.values()]
    return {
        "buildings": len(buildings),
        "tiles": len(nodes),
        "depth": max(n.level for n in nodes),
        "bytes": int(sum(sizes)),
        "max_tile_bytes": int(max(sizes)),
        "bytes_per_building": round(sum(sizes) / max(len(buildings), 1), 1),
        "triangles": int(sum(r["triangles"] for r in results.values())),
        "centre": centre,
    }


class _Clock:
    """Debug-level timing of the writer's phases."""

    def __init__(self) -> None:
        self.t = time.perf_counter()

    def lap(self, what: str) -> None:
        now = time.perf_counter()
        log.debug("l2: %s %.2f s", what, now - self.t)
        self.t = now


def _frame(buildings: Buildings) -> tuple[np.ndarray, list[float]]:
    west, south, east, north = buildings.bounds()
    lon0, lat0 = (west + east) / 2.0, (south + north) / 2.0
    h0 = float(np.median(buildings.base)) if len(buildings) else 0.0
    return enu_to_ecef_matrix(lon0, lat0, h0), [lon0, lat0, h0]


def _geometry(buildings: Buildings, frame: np.ndarray) -> dict[str, np.ndarray]:
    """Ragged footprint arrays of ``buildings`` in the local frame, base and roof."""
    if np.all(shapely.get_type_id(buildings.footprints) == int(shapely.GeometryType.POLYGON)):
        parts, part_building = buildings.footprints, np.arange(len(buildings))
    else:
        parts, part_building = shapely.get_parts(buildings.footprints, return_index=True)
    _, coords, (ring_offsets, part_ring_offsets) = shapely.to_ragged_array(parts)
    ring_part = np.repeat(np.arange(len(parts)), np.diff(part_ring_offsets))
    coord_ring = np.repeat(np.arange(len(ring_offsets) - 1), np.diff(ring_offsets))
    coord_building = part_building[ring_part[coord_ring]]
    base = lonlat_to_enu(coords[:, 0], coords[:, 1], buildings.base[coord_building], frame)
    # the roof is straight up along the ellipsoid normal: exact, and one conversion saved
    up = up_vectors(coords[:, 0], coords[:, 1], frame)
    top = base + up * buildings.height[coord_building][:, None]
    return {
        "base": base,
        "top": top,
        "ring_offsets": ring_offsets,
        "part_ring_offsets": part_ring_offsets,
        "part_building": part_building,
    }


def _ranking(buildings: Buildings, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per building: centre in the frame (m), size (m) and mesh vertex estimate."""
    centres = shapely.get_coordinates(shapely.centroid(buildings.footprints))
    centre_xy = lonlat_to_enu(centres[:, 0], centres[:, 1], buildings.base, frame)[:, :2]
    area = shapely.area(buildings.footprints) * (111_320.0**2) * np.cos(np.radians(centres[:, 1]))
    size = np.maximum(buildings.height, np.sqrt(np.maximum(area, 0.0)))
    # walls: 4 vertices per edge; roof: one per ring vertex (closing vertices overcount a bit)
    vertices = 5 * shapely.get_num_coordinates(buildings.footprints).astype(np.int64)
    return centre_xy, size, vertices


def _run_jobs(
    jobs_list: list[_TileJob], jobs: int, track: Tracker | None
) -> Iterable[tuple[str, dict[str, Any]]]:
    wrap = track or (lambda it, **_: it)
    if jobs <= 1 or len(jobs_list) < 4:
        yield from wrap(
            map(_encode_tile, jobs_list), total=len(jobs_list), desc="L2 tiles", unit="tile"
        )
        return
    ctx = multiprocessing.get_context("fork")
    # Objects the parent made will never be freed by the children: keep the collector
    # from walking (and so copying, page by page) the parent's heap in every worker.
    gc.freeze()
    # big tiles first so the pool does not end on a straggler
    jobs_list = sorted(jobs_list, key=lambda j: j.start - j.stop)
    try:
        with ctx.Pool(processes=min(jobs, os.cpu_count() or 1)) as pool:
            yield from wrap(
                pool.imap_unordered(_encode_tile, jobs_list, chunksize=4),
                total=len(jobs_list),
                desc="L2 tiles",
                unit="tile",
            )
    finally:
        gc.unfreeze()


def _encode_tile(job: _TileJob) -> tuple[str, dict[str, Any]]:
    """Extrude, encode and write one tile; return its size and content box."""
    buildings: Buildings = _SHARED["buildings"]
    options: L2Options = _SHARED["options"]
    sl = slice(job.start, job.stop)
    tile = buildings.take(sl)
    geo = _geometry(tile, _SHARED["frame"])
    mesh = extrude(
        geo["base"], geo["top"], geo["ring_offsets"], geo["part_ring_offsets"], geo["part_building"]
    )
    floors = buildings.floors[sl]
    table = {
        "id": buildings.ids[sl],
        "name": buildings.name[sl],
        "height": buildings.height[sl],
        "floors": np.where(np.isfinite(floors), floors, 0),
        "use": buildings.use[sl],
        "roof_type": buildings.roof_type[sl],
        "base": buildings.base[sl],
        "address": np.array(["; ".join(a) for a in buildings.addresses[sl]], dtype=object),
    }
    props = list(BUILDING_PROPERTIES)
    for name, column in buildings.extra.items():
        props.append(PropertySpec(name, "STRING"))
        table[name] = column[sl]
    if options.format == "b3dm":
        glb = write_glb(mesh, props, table, compression=options.compression, batch_ids=True)
        data = write_b3dm(glb, table)
    else:
        data = write_glb(mesh, props, table, compression=options.compression)
    path = _SHARED["out_dir"] / "content" / f"{_content_name(job.key)}{options.suffix}"
    path.write_bytes(data)
    pos = mesh.positions
    lo = np.array([pos[:, k].min() for k in range(3)])  # per column: faster than axis=0
    hi = np.array([pos[:, k].max() for k in range(3)])
    # content is quantized to 1/65535 of its extent: widen the box by one step
    pad = float((hi - lo).max()) / 65535.0 + 0.01
    return job.key, {
        "bytes": len(data),
        "triangles": len(mesh.indices) // 3,
        "lo": lo - pad,
        "hi": hi + pad,
    }


def _content_name(key: str) -> str:
    return key.replace("/", "_")


def _tileset(
    options: L2Options,
    nodes: list[Node],
    results: dict[str, dict[str, Any]],
    frame: np.ndarray,
    buildings: Buildings,
) -> Tileset:
    boxes: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for i in range(len(nodes) - 1, -1, -1):  # children come after parents
        lo, hi = results[nodes[i].key]["lo"], results[nodes[i].key]["hi"]
        for c in nodes[i].children:
            lo, hi = np.minimum(lo, boxes[c][0]), np.maximum(hi, boxes[c][1])
        boxes[i] = (lo, hi)

    def make(i: int) -> Tile:
        node = nodes[i]
        lo, hi = boxes[i]
        return Tile(
            bounding_volume=Box.from_min_max(tuple(lo), tuple(hi)),
            geometric_error=node.geometric_error,
            content_uri=f"content/{_content_name(node.key)}{options.suffix}",
            children=[make(c) for c in node.children],
        )

    root = make(0)
    root.refine = "ADD"
    root.transform = [float(v) for v in frame.T.ravel()]
    lo, hi = boxes[0]
    span = float(np.linalg.norm(hi[:2] - lo[:2]))
    return Tileset(
        version="1.0" if options.format == "b3dm" else "1.1",
        root=root,
        geometric_error=max(span, root.geometric_error),
        properties={
            "height": {
                "minimum": float(buildings.height.min()),
                "maximum": float(buildings.height.max()),
            },
        },
    )
