"""Large layers in tiles: a quadtree the viewer loads as the camera moves.

The tiling scheme is CesiumJS's ``GeographicTilingScheme`` (level ``z`` has
``2^(z+1) × 2^z`` tiles of ``180 / 2^z`` degrees, ``x`` from 180° W, ``y`` from 90° N),
so the viewer computes which tiles it sees with CesiumJS's own classes.

A tile holds every feature whose bounding box meets its cell, lines and polygons
simplified to a fraction of the cell (about a pixel of a 512-pixel tile), as a GeoJSON
FeatureCollection with ``complete: true``. When more than :data:`TILE_BUDGET` features
meet the cell, the tile is thinned and says ``complete: false`` (the viewer then loads
the next level where it looks): points keep one per cell of a √budget × √budget grid
(64 × 64), lines and polygons the largest ones. Tiles carry the feature id and only the
attributes the style reads; the whole feature is ``GET /api/layers/<id>/features/<fid>``
(a pick).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from cim.errors import NotFoundError
from layers.deptlayers.store import FeatureRows

#: features per tile; the viewer draws this many per tile as one primitive batch
TILE_BUDGET = 4096
#: deepest level (cells of ~76 m): geometry is not simplified there
MAX_ZOOM = 18
#: simplification tolerance: the cell's width over this
TILE_PIXELS = 512
#: layers up to this many features go to the viewer as one GeoJSON
GEOJSON_MAX_FEATURES = 5000


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) of tile z/x/y in the geographic scheme.

    Raises
    ------
    NotFoundError
        A tile outside the scheme.
    """
    if not (0 <= z <= MAX_ZOOM and 0 <= x < 2 ** (z + 1) and 0 <= y < 2**z):
        raise NotFoundError(f"no tile {z}/{x}/{y} (levels 0..{MAX_ZOOM})")
    size = 180.0 / 2**z
    west = -180.0 + x * size
    north = 90.0 - y * size
    return west, north - size, west + size, north


@dataclass
class TileIndex:
    """One layer version's features, held in memory for tiling."""

    rows: FeatureRows
    is_point: np.ndarray
    size: np.ndarray  # bbox diagonal, degrees

    @classmethod
    def build(cls, rows: FeatureRows) -> TileIndex:
        """Index features read by :meth:`layers.deptlayers.store.DeptLayers.features`."""
        b = rows.bbox
        is_point = shapely.get_dimensions(rows.geometry) == 0 if len(rows) else np.zeros(0, bool)
        size = np.hypot(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) if len(rows) else np.zeros(0)
        return cls(rows, is_point, size)

    def tile(
        self, z: int, x: int, y: int, attributes: list[str], extra: dict[str, Any] | None = None
    ) -> str:
        """The GeoJSON text of tile z/x/y carrying ``attributes`` (see the module doc).

        ``extra`` members are added to the collection (layer id, version).
        """
        w, s, e, n = tile_bounds(z, x, y)
        b = self.rows.bbox
        idx = np.flatnonzero((b[:, 2] >= w) & (b[:, 0] <= e) & (b[:, 3] >= s) & (b[:, 1] <= n))
        total = len(idx)
        tol = 0.0 if z >= MAX_ZOOM else (e - w) / TILE_PIXELS
        if total > TILE_BUDGET:
            idx = self._thin(idx, (w, s, e, n), tol)
        geoms = self.rows.geometry[idx]
        lines = ~self.is_point[idx]
        if tol > 0 and lines.any():
            geoms = geoms.copy()
            geoms[lines] = shapely.simplify(geoms[lines], tol, preserve_topology=True)
        # ~1 cm: enough for a map, and a third fewer bytes than full doubles
        geoms = shapely.set_precision(geoms, 1e-7, mode="pointwise") if len(geoms) else geoms
        text = shapely.to_geojson(geoms) if len(geoms) else []
        features = []
        for k, i in enumerate(idx):
            props = json.loads(self.rows.properties[i]) if attributes else {}
            picked = json.dumps({a: props.get(a) for a in attributes}, ensure_ascii=False)
            # geometry text from GEOS as it is: no parse and dump per feature
            features.append(
                f'{{"type":"Feature","id":{int(self.rows.fid[i])},"geometry":{text[k]},'
                f'"properties":{picked}}}'
            )
        head = json.dumps(
            {
                "type": "FeatureCollection",
                "tile": [z, x, y],
                "bbox": [w, s, e, n],
                "count": total,
                "complete": total <= TILE_BUDGET,
                **(extra or {}),
            }
        )
        return head[:-1] + ',"features":[' + ",".join(features) + "]}"

    def _thin(
        self, idx: np.ndarray, cell: tuple[float, float, float, float], tol: float
    ) -> np.ndarray:
        w, s, e, n = cell
        pts = idx[self.is_point[idx]]
        other = idx[~self.is_point[idx]]
        keep_pts = np.zeros(0, dtype=np.int64)
        if len(pts):
            grid = max(int(np.sqrt(TILE_BUDGET)), 1)
            b = self.rows.bbox[pts]
            gx = np.clip(((b[:, 0] - w) / (e - w) * grid).astype(np.int64), 0, grid - 1)
            gy = np.clip(((b[:, 1] - s) / (n - s) * grid).astype(np.int64), 0, grid - 1)
            _, first = np.unique(gy * grid + gx, return_index=True)
            keep_pts = pts[np.sort(first)]
        room = max(TILE_BUDGET - len(keep_pts), TILE_BUDGET // 2)
        if len(other) > room:
            other = other[self.size[other] > 2 * tol]  # sub-pixel features vanish first
            order = np.argsort(-self.size[other], kind="stable")[:room]
            other = np.sort(other[order])
        return np.concatenate([keep_pts, other])[:TILE_BUDGET]


class TileCache:
    """Tile indexes of the most recently tiled layer versions (thread-safe LRU)."""

    def __init__(self, keep: int = 8) -> None:
        self._keep = keep
        self._items: OrderedDict[tuple, TileIndex] = OrderedDict()
        self._lock = threading.Lock()
        # one lock per key being built: simultaneous first tiles of a layer wait for the
        # one build instead of each building the index again
        self._building: dict[tuple, threading.Lock] = {}

    def _held(self, key: tuple) -> TileIndex | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def get(self, key: tuple, build: Any) -> TileIndex:
        """The index for ``key``, built by ``build()`` (once, however many ask at once)
        when it is not held."""
        hit = self._held(key)
        if hit is not None:
            return hit
        with self._lock:
            key_lock = self._building.setdefault(key, threading.Lock())
        with key_lock:
            hit = self._held(key)  # built by another request while this one waited
            if hit is not None:
                return hit
            try:
                index = build()
                with self._lock:
                    self._items[key] = index
                    while len(self._items) > self._keep:
                        self._items.popitem(last=False)
            finally:
                with self._lock:
                    self._building.pop(key, None)
        return index
