"""Footprints → prism meshes (LOD1 blocks), vectorised over whole tiles.

Input is a contiguous run of footprint rings whose vertices are already in the
tileset's local east-north-up frame, once at the base and once at the roof height.
Walls are one quad per ring edge (flat normals); roofs are fans for convex rings
without holes and earcut triangulations for everything else (holes stay holes).
Walls may reach below the base by a *skirt*: the terrain mesh is simplified within
a vertical error of the DEM, so a wall bottom exactly at the DEM's ground could show
a gap above a mesh triangle that lies lower; the skirt hides it in the ground.
"""

from __future__ import annotations

import mapbox_earcut
import numpy as np

from tiling.gltf import FeatureMesh


def extrude(
    base: np.ndarray,
    top: np.ndarray,
    ring_offsets: np.ndarray,
    part_ring_offsets: np.ndarray,
    part_feature: np.ndarray,
    skirt: float = 0.0,
) -> FeatureMesh:
    """Build wall and roof triangles for a set of polygons.

    Parameters
    ----------
    base, top : (m, 3) float64
        Ring vertices at the base and at the roof, local ENU metres; each ring is
        closed (last vertex repeats the first); exteriors counter-clockwise, holes
        clockwise (seen from above).
    ring_offsets : (r + 1,) int
        Start of each ring in ``base``/``top``.
    part_ring_offsets : (p + 1,) int
        Start of each polygon's rings in ``ring_offsets`` (first ring = exterior).
    part_feature : (p,) int
        Feature index of each polygon.
    skirt : float
        Metres by which walls reach below ``base`` (along the up direction of each
        vertex, ``top - base``); the roof stays at ``top``.

    Returns
    -------
    FeatureMesh
    """
    ring_part = np.repeat(np.arange(len(part_feature)), np.diff(part_ring_offsets))
    ring_feature = part_feature[ring_part]
    bottom = base
    if skirt > 0:
        up = top - base
        length = np.sqrt(np.einsum("ij,ij->i", up, up))[:, None]
        bottom = base - np.divide(up, length, out=np.zeros_like(up), where=length > 0) * skirt
    walls = _walls(bottom, top, ring_offsets, ring_feature)
    roofs = _roofs(base, top, ring_offsets, part_ring_offsets, part_feature)
    offset = len(walls.positions)
    return FeatureMesh(
        positions=np.concatenate([walls.positions, roofs.positions]),
        normals=np.concatenate([walls.normals, roofs.normals]),
        feature_ids=np.concatenate([walls.feature_ids, roofs.feature_ids]),
        indices=np.concatenate([walls.indices, roofs.indices + offset]),
    )


def _walls(
    base: np.ndarray, top: np.ndarray, ring_offsets: np.ndarray, ring_feature: np.ndarray
) -> FeatureMesh:
    m = len(base)
    is_start = np.ones(m, dtype=bool)
    is_start[ring_offsets[1:] - 1] = False  # the closing vertex starts no edge
    a = np.flatnonzero(is_start)
    b = a + 1
    e = len(a)
    quad = np.empty((e, 4, 3))
    quad[:, 0], quad[:, 1], quad[:, 2], quad[:, 3] = base[a], base[b], top[b], top[a]
    direction = base[b] - base[a]
    up = top[a] - base[a]
    normal = np.cross(direction, up)
    length = np.sqrt(np.einsum("ij,ij->i", normal, normal))[:, None]
    normal = np.divide(normal, length, out=np.zeros_like(normal), where=length > 0)
    coord_ring = np.repeat(np.arange(len(ring_offsets) - 1), np.diff(ring_offsets))
    quad_feature = ring_feature[coord_ring[a]]
    corners = np.arange(e)[:, None] * 4
    first, second = np.array([0, 1, 2]), np.array([0, 2, 3])
    tris = np.concatenate([corners + first, corners + second], axis=1).reshape(-1)
    return FeatureMesh(
        positions=quad.reshape(-1, 3),
        normals=np.repeat(normal, 4, axis=0).astype(np.float32),
        feature_ids=np.repeat(quad_feature, 4),
        indices=tris,
    )


def _roofs(
    base: np.ndarray,
    top: np.ndarray,
    ring_offsets: np.ndarray,
    part_ring_offsets: np.ndarray,
    part_feature: np.ndarray,
) -> FeatureMesh:
    n_rings = len(ring_offsets) - 1
    ring_len = np.diff(ring_offsets) - 1  # unique vertices per ring
    keep = np.ones(len(base), dtype=bool)
    keep[ring_offsets[1:] - 1] = False
    vert_index = np.cumsum(keep) - 1  # coordinate → roof vertex index
    positions = top[keep]
    up = top - base
    up /= np.maximum(np.sqrt(np.einsum("ij,ij->i", up, up)), 1e-12)[:, None]
    normals = up[keep].astype(np.float32)
    coord_ring = np.repeat(np.arange(n_rings), np.diff(ring_offsets))
    ring_part = np.repeat(np.arange(len(part_feature)), np.diff(part_ring_offsets))
    feature_ids = part_feature[ring_part[coord_ring[keep]]]

    rings_per_part = np.diff(part_ring_offsets)
    exterior = part_ring_offsets[:-1]
    convex = _convex_rings(top, ring_offsets)
    simple = (rings_per_part == 1) & convex[exterior] & (ring_len[exterior] >= 3)
    fan = _fans(vert_index[ring_offsets[exterior[simple]]], ring_len[exterior[simple]])
    cut = _earcut_parts(positions, ring_len, part_ring_offsets, np.flatnonzero(~simple))
    tris = np.concatenate([fan, *cut]) if cut else fan
    tris = _face_up(positions, tris.reshape(-1, 3), normals)
    return FeatureMesh(positions, normals, feature_ids, tris.reshape(-1))


def _convex_rings(xyz: np.ndarray, ring_offsets: np.ndarray) -> np.ndarray:
    """Per ring: True when every turn is to the left (convex, counter-clockwise)."""
    m = len(xyz)
    nxt = np.arange(1, m + 1)
    last = ring_offsets[1:] - 1
    # the vertex after a ring's closing vertex is the ring's second vertex
    nxt[last] = ring_offsets[:-1] + 1
    d1 = xyz[nxt, :2] - xyz[:, :2]
    nxt2 = nxt[nxt]
    d2 = xyz[nxt2, :2] - xyz[nxt, :2]
    cross = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
    scale = np.linalg.norm(d1, axis=1) * np.linalg.norm(d2, axis=1)
    left = cross >= -1e-9 * np.maximum(scale, 1e-12)
    starts = ring_offsets[:-1]
    ok = np.logical_and.reduceat(left, starts) if m else np.zeros(0, dtype=bool)
    return ok


def _fans(first: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Fan triangles (v0, vi, vi+1) of convex rings, vectorised."""
    n_tris = count - 2
    total = int(n_tris.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ring_of_tri = np.repeat(np.arange(len(first)), n_tris)
    starts = np.cumsum(n_tris) - n_tris
    i = np.arange(total) - np.repeat(starts, n_tris) + 1
    v0 = first[ring_of_tri]
    return np.stack([v0, v0 + i, v0 + i + 1], axis=1).reshape(-1)


def _earcut_parts(
    positions: np.ndarray, ring_len: np.ndarray, part_ring_offsets: np.ndarray, parts: np.ndarray
) -> list[np.ndarray]:
    """Earcut triangulation of concave polygons and polygons with holes (one call each)."""
    if len(parts) == 0:
        return []
    xy = np.ascontiguousarray(positions[:, :2])
    ring_end = np.cumsum(ring_len)  # roof vertex index where each ring ends
    ring_start = ring_end - ring_len
    r0, r1 = part_ring_offsets[parts], part_ring_offsets[parts + 1]
    first, last = ring_start[r0], ring_end[r1 - 1]
    # every part's ring ends relative to its first vertex, in one go: the loop only
    # slices and calls earcut (one polygon a call)
    rings = r1 - r0
    cut = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum(rings, out=cut[1:])
    ring = np.arange(cut[-1]) + np.repeat(r0 - cut[:-1], rings)
    ends = (ring_end[ring] - np.repeat(first, rings)).astype(np.uint32)
    triangulate = mapbox_earcut.triangulate_float64
    spans = (first.tolist(), last.tolist(), cut[:-1].tolist(), cut[1:].tolist())
    out = [triangulate(xy[a:b], ends[c:d]) for a, b, c, d in zip(*spans, strict=True)]
    counts = np.fromiter(map(len, out), dtype=np.int64, count=len(out))
    return [np.concatenate(out).astype(np.int64) + np.repeat(first, counts)]


def _face_up(positions: np.ndarray, tris: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Flip roof triangles whose winding faces down."""
    if len(tris) == 0:
        return tris
    a, b, c = positions[tris[:, 0]], positions[tris[:, 1]], positions[tris[:, 2]]
    facing = np.einsum("ij,ij->i", np.cross(b - a, c - a), normals[tris[:, 0]])
    flip = facing < 0
    tris[flip] = tris[flip][:, [0, 2, 1]]
    return tris
