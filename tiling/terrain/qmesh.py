"""quantized-mesh-1.0 encoder (numpy); the decoder is the core's (:mod:`cim.qmesh`).

Format: https://github.com/CesiumGS/quantized-mesh (spec README). A tile is::

    header (88 bytes)   centre (ECEF, 3 × f64), min/max height (2 × f32),
                        bounding sphere (4 × f64), horizon occlusion point (3 × f64,
                        ellipsoid-scaled ECEF)
    vertex data         uint32 n; u[n], v[n], height[n] as uint16 zig-zag deltas
    (padding)           to 2 or 4 bytes before the index data
    index data          uint32 triangle count; indices (uint16, or uint32 when n > 65536)
                        high-water-mark encoded
    edge indices        west, south, east, north: uint32 count + indices (not encoded)
    extensions          uint8 id, uint32 length, payload (1: oct-encoded vertex normals,
                        4: metadata JSON)

Why not ``quantized-mesh-encoder``: it converts positions to float32 before
quantising (about 1.5 m of longitude error at 139° E), truncates instead of rounding,
and derives edge vertices from its own quantisation, so neighbouring tiles cannot be
made to share their edge vertices exactly. This module quantises in float64 from grid
positions the caller controls and writes edge lists in the order CesiumJS expects.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

from cim.crs import WGS84_A, WGS84_E2, geodetic_to_ecef

# the one decoder lives in the core (the read side); re-exported for the stage's checks
from cim.qmesh import (  # noqa: F401
    EXT_METADATA,
    EXT_OCT_NORMALS,
    EXT_WATER_MASK,
    HEADER,
    MAX_Q,
    QuantizedMesh,
    decode_tile,
    hwm_decode,
    zigzag_delta_decode,
)

WGS84_B = WGS84_A * np.sqrt(1.0 - WGS84_E2)
RADII = np.array([WGS84_A, WGS84_A, WGS84_B])


# --- small codecs ------------------------------------------------------------------


def zigzag_delta_encode(values: np.ndarray) -> np.ndarray:
    """Delta then zig-zag encode a uint16 sequence (spec: vertex data)."""
    v = values.astype(np.int32)
    d = np.diff(v, prepend=0)
    return (((d << 1) ^ (d >> 31)) & 0xFFFF).astype(np.uint16)


def hwm_encode(indices: np.ndarray) -> np.ndarray:
    """High-water-mark encode indices (vertices must be ordered by first use)."""
    idx = indices.astype(np.int64).ravel()
    if idx.size == 0:
        return idx
    hwm = np.concatenate([[0], np.maximum.accumulate(idx)[:-1] + 1])
    code = hwm - idx
    if (code < 0).any():
        raise ValueError("vertices are not ordered by first use")
    return code


def first_use_order(triangles: np.ndarray, n_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """Permutation putting vertices in first-use order.

    Returns
    -------
    order : ndarray
        ``new_vertices = old_vertices[order]``.
    remap : ndarray
        ``new_index = remap[old_index]``.
    """
    flat = triangles.ravel()
    _, first = np.unique(flat, return_index=True)
    used = flat[np.sort(first)]
    order = used
    if used.size != n_vertices:  # unused vertices go last
        unused = np.setdiff1d(np.arange(n_vertices), used)
        order = np.concatenate([used, unused])
    remap = np.empty(n_vertices, dtype=np.int64)
    remap[order] = np.arange(n_vertices)
    return order, remap


def oct_encode(normals: np.ndarray) -> np.ndarray:
    """Oct-encode unit vectors (n, 3) to (n, 2) uint8 (CesiumJS AttributeCompression)."""
    n = np.asarray(normals, dtype=np.float64)
    p = n / np.abs(n).sum(axis=1, keepdims=True)
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    neg = z < 0
    sx = np.where(x >= 0, 1.0, -1.0)
    sy = np.where(y >= 0, 1.0, -1.0)
    ox = np.where(neg, (1.0 - np.abs(y)) * sx, x)
    oy = np.where(neg, (1.0 - np.abs(x)) * sy, y)
    out = np.stack([ox, oy], axis=1)
    return np.rint((np.clip(out, -1, 1) * 0.5 + 0.5) * 255.0).astype(np.uint8)


def oct_decode(encoded: np.ndarray) -> np.ndarray:
    """Inverse of :func:`oct_encode`: (n, 2) uint8 → (n, 3) unit vectors."""
    e = encoded.astype(np.float64) / 255.0 * 2.0 - 1.0
    x, y = e[:, 0], e[:, 1]
    z = 1.0 - (np.abs(x) + np.abs(y))
    neg = z < 0
    ox = np.where(neg, (1.0 - np.abs(y)) * np.where(x >= 0, 1.0, -1.0), x)
    oy = np.where(neg, (1.0 - np.abs(x)) * np.where(y >= 0, 1.0, -1.0), y)
    v = np.stack([ox, oy, z], axis=1)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# --- header geometry -------------------------------------------------------------


def bounding_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Sphere around ECEF points: bounding-box centre, farthest-point radius."""
    centre = (points.min(axis=0) + points.max(axis=0)) / 2.0
    radius = float(np.sqrt(((points - centre) ** 2).sum(axis=1).max()))
    return centre, radius


def horizon_occlusion_point(points: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Horizon occlusion point in ellipsoid-scaled ECEF (CesiumJS EllipsoidalOccluder).

    For tiles too large for the construction (a hemisphere at level 0) a point 100
    Earth radii out along the centre direction is returned: visible from everywhere
    the tile can be, so the tile is never culled wrongly.
    """
    direction = centre / RADII
    norm = np.linalg.norm(direction)
    if norm == 0:
        return np.array([0.0, 0.0, 100.0])
    direction = direction / norm
    scaled = points / RADII
    mag2 = (scaled**2).sum(axis=1)
    mag = np.sqrt(mag2)
    unit = scaled / mag[:, None]
    mag2 = np.maximum(mag2, 1.0)
    mag = np.maximum(mag, 1.0)
    cos_a = unit @ direction
    sin_a = np.linalg.norm(np.cross(unit, direction), axis=1)
    cos_b = 1.0 / mag
    sin_b = np.sqrt(mag2 - 1.0) * cos_b
    denom = cos_a * cos_b - sin_a * sin_b
    if (denom <= 1e-9).any():
        return direction * 100.0
    return direction * float((1.0 / denom).max())


# --- encode ----------------------------------------------------------------


def encode_tile(
    lon: np.ndarray,
    lat: np.ndarray,
    height: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    triangles: np.ndarray,
    *,
    normals: np.ndarray | None = None,
    metadata: dict[str, Any] | None = None,
) -> bytes:
    """Encode one tile.

    Parameters
    ----------
    lon, lat, height : ndarray of float64
        Vertex positions (degrees, WGS84 ellipsoidal metres), used for the header.
    u, v : ndarray of int
        Quantised horizontal positions (0..32767); vertices on the tile's edges must
        have u or v equal to 0 or 32767.
    triangles : ndarray (m, 3)
        Counter-clockwise triangles.
    normals : ndarray (n, 3), optional
        Unit normals in ECEF; written as the ``octvertexnormals`` extension.
    metadata : dict, optional
        Written as the ``metadata`` extension.

    Returns
    -------
    bytes
        The (uncompressed) tile.
    """
    n = int(u.size)
    tri = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
    order, remap = first_use_order(tri, n)
    tri = remap[tri]
    lon, lat, height = lon[order], lat[order], height[order]
    u = np.asarray(u, dtype=np.int64)[order]
    v = np.asarray(v, dtype=np.int64)[order]

    hmin = np.float32(height.min())
    hmax = np.float32(height.max())
    span = float(hmax) - float(hmin)
    if span > 0:
        q = np.rint((height - float(hmin)) / span * MAX_Q).astype(np.int64)
    else:
        q = np.zeros(n, dtype=np.int64)
    q = np.clip(q, 0, MAX_Q)

    x, y, z = geodetic_to_ecef(lon, lat, height)
    pts = np.stack([x, y, z], axis=1)
    centre = (pts.min(axis=0) + pts.max(axis=0)) / 2.0
    bs_centre, radius = bounding_sphere(pts)
    hop = horizon_occlusion_point(pts, bs_centre)

    parts = [
        HEADER.pack(*centre, hmin, hmax, *bs_centre, radius, *hop),
        struct.pack("<I", n),
        zigzag_delta_encode(u).tobytes(),
        zigzag_delta_encode(v).tobytes(),
        zigzag_delta_encode(q).tobytes(),
    ]
    size = HEADER.size + 4 + 6 * n
    wide = n > 65536
    itype = np.uint32 if wide else np.uint16
    if wide and size % 4:
        parts.append(b"\0" * (4 - size % 4))
    parts.append(struct.pack("<I", tri.shape[0]))
    parts.append(hwm_encode(tri).astype(itype).tobytes())

    # edges, in the order CesiumJS names them
    for sel, key in (
        (u == 0, v),  # west, south→north
        (v == 0, -u),  # south, east→west
        (u == MAX_Q, -v),  # east, north→south
        (v == MAX_Q, u),  # north, west→east
    ):
        idx = np.flatnonzero(sel)
        idx = idx[np.argsort(key[idx], kind="stable")]
        parts.append(struct.pack("<I", idx.size))
        parts.append(idx.astype(itype).tobytes())

    if normals is not None:
        oct_ = oct_encode(np.asarray(normals)[order])
        parts.append(struct.pack("<BI", EXT_OCT_NORMALS, oct_.nbytes))
        parts.append(oct_.tobytes())
    if metadata is not None:
        js = json.dumps(metadata, separators=(",", ":")).encode()
        parts.append(struct.pack("<BII", EXT_METADATA, len(js) + 4, len(js)))
        parts.append(js)
    return b"".join(parts)
