"""Read built terrain: decode quantized-mesh-1.0 tiles and sample heights on them.

The read side of the terrain stage's output (``terrain/layer.json`` and
``terrain/{z}/{x}/{y}.terrain``, geographic tiling scheme, TMS rows counted from the
south, tiles gzip-compressed on disk). Heights are interpolated linearly on the mesh
triangles, so they are the heights CesiumJS renders at the finest level, not the DEM
samples the mesh was simplified from.

Usage::

    from cim.qmesh import TerrainReader
    terrain = TerrainReader("output/terrain")
    terrain.height(113.30, 40.09)            # WGS84 ellipsoidal metres, or None
    terrain.heights(lon_array, lat_array)     # NaN where no tile covers a point

Format: https://github.com/CesiumGS/quantized-mesh. The one decoder of the toolkit
(:func:`decode_tile`); the encoder is the terrain stage's (``tiling.terrain.qmesh``).
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import struct
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cim.errors import DatasetIOError

log = logging.getLogger(__name__)

__all__ = [
    "MAX_Q",
    "QuantizedMesh",
    "TerrainReader",
    "decode_tile",
    "hwm_decode",
    "tile_bounds",
    "tile_index",
    "zigzag_delta_decode",
]

MAX_Q = 32767
HEADER = struct.Struct("<3d2f4d3d")
EXT_OCT_NORMALS = 1
EXT_WATER_MASK = 2
EXT_METADATA = 4
_GZIP_MAGIC = b"\x1f\x8b"
#: barycentric slack for points on a shared triangle edge (quantised units are exact;
#: this only absorbs float rounding of the point's own position)
_EDGE_EPS = 1e-9
#: points × triangles per vectorised point-in-triangle step
_CHUNK = 2_000_000


@dataclass
class QuantizedMesh:
    """A decoded (or to-be-encoded) quantized-mesh tile.

    Attributes
    ----------
    u, v, h : ndarray of uint16
        Quantised positions, 0..32767 across the tile (u east, v north, h from
        ``min_height`` to ``max_height``).
    triangles : ndarray (m, 3) of uint32
        Counter-clockwise (seen from above) vertex indices.
    min_height, max_height : float
        Height range (WGS84 ellipsoidal metres) stored as float32.
    west, south, east, north : ndarray
        Edge vertex indices (south→north, east→west, north→south, west→east as
        CesiumJS names them).
    normals : ndarray (n, 2) of uint8 or None
        Oct-encoded unit normals (ECEF).
    metadata : dict or None
        Metadata extension JSON.
    header : dict
        Header fields (centre, bounding sphere, horizon occlusion point).
    extension_ids : list of int
        Extension ids in file order.
    """

    u: np.ndarray
    v: np.ndarray
    h: np.ndarray
    triangles: np.ndarray
    min_height: float
    max_height: float
    west: np.ndarray
    south: np.ndarray
    east: np.ndarray
    north: np.ndarray
    normals: np.ndarray | None = None
    metadata: dict[str, Any] | None = None
    header: dict[str, Any] = field(default_factory=dict)
    extension_ids: list[int] = field(default_factory=list)

    def heights(self) -> np.ndarray:
        """Decoded heights in metres, as CesiumJS computes them."""
        lo, hi = float(np.float32(self.min_height)), float(np.float32(self.max_height))
        return lo + self.h.astype(np.float64) / MAX_Q * (hi - lo)

    def lonlat(self, bounds: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
        """Vertex longitude/latitude for the tile rectangle ``bounds`` (w, s, e, n)."""
        w, s, e, n = bounds
        return (
            w + self.u.astype(np.float64) / MAX_Q * (e - w),
            s + self.v.astype(np.float64) / MAX_Q * (n - s),
        )

    def sample(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Heights at quantised positions ``u``, ``v`` (NaN outside every triangle).

        Linear interpolation on the triangle holding the point, in the tile's (u, v)
        space where the mesh is defined: the height CesiumJS renders there.

        Parameters
        ----------
        u, v : ndarray of float
            Positions in tile units (0..32767).

        Returns
        -------
        ndarray of float64
        """
        u = np.atleast_1d(np.asarray(u, dtype=np.float64))
        v = np.atleast_1d(np.asarray(v, dtype=np.float64))
        out = np.full(u.shape, np.nan)
        t = self.triangles.astype(np.int64)
        if not len(t) or not u.size:
            return out
        qu, qv, h = self.u.astype(np.float64), self.v.astype(np.float64), self.heights()
        ax, ay = qu[t[:, 0]], qv[t[:, 0]]
        bx, by = qu[t[:, 1]], qv[t[:, 1]]
        cx, cy = qu[t[:, 2]], qv[t[:, 2]]
        det = (by - cy) * (ax - cx) + (cx - bx) * (ay - cy)
        ok = det != 0
        det = np.where(ok, det, 1.0)
        # every point against every triangle, in chunks to bound memory
        step = max(1, _CHUNK // len(t))
        for start in range(0, u.size, step):
            pu = u[start : start + step, None]
            pv = v[start : start + step, None]
            l1 = ((by - cy) * (pu - cx) + (cx - bx) * (pv - cy)) / det
            l2 = ((cy - ay) * (pu - cx) + (ax - cx) * (pv - cy)) / det
            l3 = 1.0 - l1 - l2
            inside = ok & (l1 >= -_EDGE_EPS) & (l2 >= -_EDGE_EPS) & (l3 >= -_EDGE_EPS)
            rows = np.flatnonzero(inside.any(axis=1))
            kk = inside.argmax(axis=1)[rows]
            ti = t[kk]
            out[start + rows] = (
                l1[rows, kk] * h[ti[:, 0]] + l2[rows, kk] * h[ti[:, 1]] + l3[rows, kk] * h[ti[:, 2]]
            )
        return out


def zigzag_delta_decode(encoded: np.ndarray) -> np.ndarray:
    """Zig-zag then delta decode a uint16 sequence (spec: vertex data)."""
    e = encoded.astype(np.int32)
    d = (e >> 1) ^ -(e & 1)
    return (np.cumsum(d) & 0xFFFF).astype(np.uint16)


def hwm_decode(codes: np.ndarray) -> np.ndarray:
    """High-water-mark index decoding, vectorised.

    The spec's loop sets ``index = highest - code`` and bumps ``highest`` after each
    zero code, so ``highest`` before element i is the count of zero codes before it.
    """
    c = codes.astype(np.int64).ravel()
    zero = c == 0
    return np.cumsum(zero) - zero - c


def decode_tile(data: bytes) -> QuantizedMesh:
    """Decode one quantized-mesh-1.0 tile (gzip-compressed or not), checking it.

    The one decoder of the toolkit: the terrain stage's tests and checks and the read
    side (:class:`TerrainReader`) use it.

    Parameters
    ----------
    data : bytes

    Returns
    -------
    QuantizedMesh

    Raises
    ------
    DatasetIOError
        Truncated or inconsistent data.
    """
    try:
        if data[:2] == _GZIP_MAGIC:
            data = gzip.decompress(data)
        return _decode(data)
    except (OSError, EOFError, zlib.error, struct.error, ValueError) as exc:
        raise DatasetIOError(f"not a quantized-mesh tile ({exc})") from exc


def _decode(data: bytes) -> QuantizedMesh:
    fields = HEADER.unpack_from(data, 0)
    header = {
        "center": fields[0:3],
        "min_height": fields[3],
        "max_height": fields[4],
        "bounding_sphere_center": fields[5:8],
        "bounding_sphere_radius": fields[8],
        "horizon_occlusion_point": fields[9:12],
    }
    pos = HEADER.size
    (n,) = struct.unpack_from("<I", data, pos)
    pos += 4
    arr = np.frombuffer(data, dtype="<u2", count=3 * n, offset=pos)
    pos += 6 * n
    isize = 4 if n > 65536 else 2
    itype = "<u4" if isize == 4 else "<u2"
    pos += (-pos) % isize
    (m,) = struct.unpack_from("<I", data, pos)
    pos += 4
    codes = np.frombuffer(data, dtype=itype, count=3 * m, offset=pos)
    pos += 3 * m * isize
    tri = hwm_decode(codes).reshape(-1, 3)
    if tri.size and (tri.min() < 0 or tri.max() >= n):
        raise ValueError("triangle index out of range")
    edges = []
    for _ in range(4):
        (k,) = struct.unpack_from("<I", data, pos)
        pos += 4
        edges.append(np.frombuffer(data, dtype=itype, count=k, offset=pos))
        pos += k * isize
    normals, metadata, ext_ids = None, None, []
    while pos < len(data):
        ext_id, length = struct.unpack_from("<BI", data, pos)
        pos += 5
        payload = data[pos : pos + length]
        if len(payload) != length:
            raise ValueError("truncated extension")
        pos += length
        ext_ids.append(ext_id)
        if ext_id == EXT_OCT_NORMALS:
            normals = np.frombuffer(payload, dtype=np.uint8).reshape(-1, 2)
        elif ext_id == EXT_METADATA:
            (jl,) = struct.unpack_from("<I", payload, 0)
            metadata = json.loads(payload[4 : 4 + jl])
    return QuantizedMesh(
        zigzag_delta_decode(arr[:n]),
        zigzag_delta_decode(arr[n : 2 * n]),
        zigzag_delta_decode(arr[2 * n :]),
        tri.astype(np.uint32),
        header["min_height"],
        header["max_height"],
        *edges,
        normals=normals,
        metadata=metadata,
        header=header,
        extension_ids=ext_ids,
    )


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) in degrees of tile ``z/x/y`` (geographic scheme)."""
    size = 180.0 / (1 << z)
    west = -180.0 + x * size
    south = -90.0 + y * size
    return west, south, west + size, south + size


def tile_index(z: int, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column and TMS row (from the south) of the level-``z`` tiles holding points."""
    size = 180.0 / (1 << z)
    x = np.clip(np.floor((np.asarray(lon) + 180.0) / size), 0, (2 << z) - 1).astype(np.int64)
    y = np.clip(np.floor((np.asarray(lat) + 90.0) / size), 0, (1 << z) - 1).astype(np.int64)
    return x, y


class TerrainReader:
    """Heights on a built quantized-mesh terrain folder (``layer.json`` + tiles).

    Each point is sampled in the finest available tile that holds it. Thread-safe;
    decoded tiles are kept in a small LRU cache.

    Parameters
    ----------
    root : str or Path
        The ``terrain`` folder of a build output.
    cache_tiles : int
        Decoded tiles kept in memory.

    Raises
    ------
    DatasetIOError
        When ``layer.json`` is missing or unreadable.
    """

    def __init__(self, root: str | Path, cache_tiles: int = 256) -> None:
        self.root = Path(root)
        try:
            layer = json.loads((self.root / "layer.json").read_text(encoding="utf-8"))
            self.maxzoom = int(layer["maxzoom"])
            self._available: list[list[tuple[int, int, int, int]]] = [
                [(r["startX"], r["startY"], r["endX"], r["endY"]) for r in level]
                for level in layer.get("available", [])
            ]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DatasetIOError(f"terrain/layer.json cannot be read ({exc})") from exc
        self._cache: OrderedDict[tuple[int, int, int], QuantizedMesh | None] = OrderedDict()
        self._limit = cache_tiles
        self._lock = threading.Lock()

    def _is_available(self, z: int, x: int, y: int) -> bool:
        if z >= len(self._available):
            return False
        return any(sx <= x <= ex and sy <= y <= ey for sx, sy, ex, ey in self._available[z])

    def tile(self, z: int, x: int, y: int) -> QuantizedMesh | None:
        """The decoded tile, or None when it is not available on disk."""
        key = (z, x, y)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        mesh = None
        if self._is_available(z, x, y):
            path = self.root / str(z) / str(x) / f"{y}.terrain"
            try:
                mesh = decode_tile(path.read_bytes())
            except FileNotFoundError:
                mesh = None
            except DatasetIOError as exc:
                raise DatasetIOError(f"terrain tile {z}/{x}/{y}: {exc.message}") from exc
        with self._lock:
            self._cache[key] = mesh
            while len(self._cache) > self._limit:
                self._cache.popitem(last=False)
        return mesh

    def heights(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Terrain heights (WGS84 ellipsoidal metres) at points; NaN where no tile is.

        Parameters
        ----------
        lon, lat : array-like of float
            WGS84 degrees.

        Returns
        -------
        ndarray of float64
        """
        shape = np.atleast_1d(np.asarray(lon)).shape
        return self.heights_and_levels(lon, lat)[0].reshape(shape)

    def heights_and_levels(
        self, lon: np.ndarray, lat: np.ndarray, max_level: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Terrain heights at points and the level of the tile each comes from.

        Each point is sampled in the finest available tile holding it (where a tile
        is missing, CesiumJS draws its ancestor).

        Parameters
        ----------
        lon, lat : array-like of float
            WGS84 degrees.
        max_level : int, optional
            Finest level to use (default: ``maxzoom``).

        Returns
        -------
        heights : ndarray of float64
            WGS84 ellipsoidal metres (NaN where no tile covers the point).
        levels : ndarray of int64
            Level of the tile each height comes from (-1: none).
        """
        lon = np.atleast_1d(np.asarray(lon, dtype=np.float64)).ravel()
        lat = np.atleast_1d(np.asarray(lat, dtype=np.float64)).ravel()
        out = np.full(lon.shape, np.nan)
        levels = np.full(lon.shape, -1, dtype=np.int64)
        todo = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
        top = min(self.maxzoom if max_level is None else max_level, len(self._available) - 1)
        for z in range(top, -1, -1):
            idx = np.flatnonzero(todo)
            if not idx.size:
                break
            xs, ys = tile_index(z, lon[idx], lat[idx])
            keys = xs * (1 << 31) + ys
            for key in np.unique(keys):
                sel = idx[keys == key]
                x, y = int(key >> 31), int(key & ((1 << 31) - 1))
                mesh = self.tile(z, x, y)
                if mesh is None:
                    continue
                w, s, e, n = tile_bounds(z, x, y)
                got = mesh.sample(
                    (lon[sel] - w) / (e - w) * MAX_Q, (lat[sel] - s) / (n - s) * MAX_Q
                )
                good = np.isfinite(got)
                out[sel[good]] = got[good]
                levels[sel[good]] = z
                todo[sel[good]] = False
        return out, levels

    def height(self, lon: float, lat: float) -> float | None:
        """The terrain height at one point, or None where no tile covers it."""
        h = float(self.heights(np.array([lon]), np.array([lat]))[0])
        return None if math.isnan(h) else h
