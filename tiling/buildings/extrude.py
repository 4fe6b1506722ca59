"""Footprints → prism meshes (LOD1 blocks), vectorised over whole tiles.

Input is a contiguous run of footprint rings whose vertices are already in the
tileset's local east-north-up frame, once at the base and once at the roof height.
Walls are one quad per ring edge (flat normals); roofs are fans for convex rings
without holes, fans from the reflex vertex for rings with exactly one (L-shapes,
notches), and earcut triangulations for everything else (holes stay holes).
Walls may reach below the base by a *skirt*: the terrain mesh is simplified within
a vertical error of the DEM, so a wall bottom exactly at the DEM's ground could show
a gap above a mesh triangle that lies lower; the skirt hides it in the ground.
"""

from __future__ import annotations

from typing import NamedTuple

import mapbox_earcut
import numpy as np

from tiling.gltf import FeatureMesh

#: The two triangles (0, 1, 2) and (0, 2, 3) of a wall quad (base a, base b, top b, top a).
_QUAD_TRIANGLES = np.array([0, 1, 2, 0, 2, 3])
#: The triangle corners of the first k quads and each of their vertices' quad, grown on
#: demand: every tile copies a prefix instead of building them (one tuple: threads
#: always see a matching pair).
_QUADS: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0, np.int64), np.zeros(0, np.int64))]


def extrude(
    base: np.ndarray,
    top: np.ndarray,
    ring_offsets: np.ndarray,
    part_ring_offsets: np.ndarray,
    part_feature: np.ndarray,
    skirt: float = 0.0,
    *,
    shared_rows: bool = False,
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
    shared_rows : bool
        Return the mesh with vertices sharing rows (``position_index``,
        ``normal_index``: the rows of the wall bottoms then of ``top``, one normal per
        wall then the roofs'), which :func:`tiling.gltf.write_glb` encodes without
        expanding: a wall corner is also the next wall's and a roof's.

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
    edges = _edges(base, top, ring_offsets)
    roofs = _roofs(base, top, ring_offsets, part_ring_offsets, part_feature, edges)
    mesh = _walls(bottom, top, ring_offsets, ring_feature, roofs, edges if skirt <= 0 else None)
    # a ring of one coordinate has no wall: its rows would be nobody's
    if shared_rows and (len(ring_offsets) < 2 or np.diff(ring_offsets).min() >= 2):
        return mesh
    return mesh.expanded()


class _Edges(NamedTuple):
    """The rows at each ring edge's first coordinate, shared by walls and roofs."""

    starts: np.ndarray  # (m,) bool: the coordinate starts an edge (it is not a closing one)
    first: np.ndarray  # (e,) its index
    base: np.ndarray  # (e, 3) rows there
    top: np.ndarray
    rise: np.ndarray  # top - base


def _edges(base: np.ndarray, top: np.ndarray, ring_offsets: np.ndarray) -> _Edges:
    starts = np.ones(len(base), dtype=bool)
    starts[ring_offsets[1:] - 1] = False  # the closing vertex starts no edge
    first = np.flatnonzero(starts)
    at_base, at_top = _take(base, first), _take(top, first)
    return _Edges(starts, first, at_base, at_top, at_top - at_base)


def _walls(
    base: np.ndarray,
    top: np.ndarray,
    ring_offsets: np.ndarray,
    ring_feature: np.ndarray,
    roofs: FeatureMesh | None = None,
    edges: _Edges | None = None,
) -> FeatureMesh:
    """Wall quads, followed by ``roofs`` when given, with shared rows.

    ``roofs`` are those of :func:`_roofs`: their vertices are the rows of ``top``
    without each ring's closing coordinate. The mesh's positions are the rows of
    ``base`` then of ``top`` (``position_index``), its normals one per wall then the
    roofs' (``normal_index``): a wall's four corners are not copied, and the encoder
    quantizes each row once (:meth:`FeatureMesh.expanded` gives the copies).
    ``edges`` are those of ``base`` and ``top`` when already at hand.
    """
    m = len(base)
    edges = edges or _edges(base, top, ring_offsets)
    a = edges.first
    b = a + 1
    e = len(a)
    normal = _unit(_cross(_take(base, b) - edges.base, edges.rise))
    quad_feature = np.repeat(ring_feature, np.diff(ring_offsets) - 1)  # one quad per edge
    roofs = roofs or FeatureMesh(
        np.zeros((0, 3)), np.zeros((0, 3), np.float32), quad_feature[:0], np.zeros(0, np.int64)
    )
    r = len(roofs.normals)
    n = 4 * e + r
    position_index = np.empty(n, dtype=np.int64)
    # corners (base a, base b, top b, top a): top rows follow the m base rows
    np.add(a[:, None], [0, 1, m + 1, m], out=position_index[: 4 * e].reshape(e, 4))
    position_index[4 * e :] = a[:r] + m  # roof vertex j is the ring coordinate a[j]
    corners, quad_of = _quads(e)
    normal_index = np.empty(n, dtype=np.int64)
    normal_index[: 4 * e] = quad_of
    normal_index[4 * e :] = np.arange(e, e + r)
    normals = np.concatenate([normal, roofs.normals], dtype=np.float32)
    feature_ids = np.empty(n, dtype=np.result_type(quad_feature, roofs.feature_ids))
    feature_ids[: 4 * e].reshape(e, 4)[:] = quad_feature[:, None]
    feature_ids[4 * e :] = roofs.feature_ids
    indices = np.empty(6 * e + len(roofs.indices), dtype=np.int64)
    indices[: 6 * e] = corners
    np.add(roofs.indices, 4 * e, out=indices[6 * e :])
    positions = np.concatenate([base, top], dtype=np.result_type(base, top, roofs.positions))
    return FeatureMesh(positions, normals, feature_ids, indices, None, position_index, normal_index)


def _quads(e: int) -> tuple[np.ndarray, np.ndarray]:
    """The triangle corners (6 a quad) of ``e`` quads of 4 vertices, and each vertex's quad."""
    corners, quad_of = _QUADS[0]
    if len(quad_of) < 4 * e:
        k = max(e, len(quad_of) // 2, 1024)  # doubles: few rebuilds
        corners = ((4 * np.arange(k))[:, None] + _QUAD_TRIANGLES).reshape(-1)
        quad_of = np.repeat(np.arange(k), 4)
        _QUADS[0] = corners, quad_of
    return corners[: 6 * e], quad_of[: 4 * e]


def _unit(v: np.ndarray) -> np.ndarray:
    """Rows of ``v`` divided by their length (zero rows stay zero)."""
    length = np.sqrt(np.einsum("ij,ij->i", v, v))[:, None]
    if (length > 0).all():
        return v / length
    return np.divide(v, length, out=np.zeros_like(v), where=length > 0)


def _roofs(
    base: np.ndarray,
    top: np.ndarray,
    ring_offsets: np.ndarray,
    part_ring_offsets: np.ndarray,
    part_feature: np.ndarray,
    edges: _Edges | None = None,
) -> FeatureMesh:
    """Roof triangles; the vertices are the rows of ``top`` but the closing ones."""
    ring_len = np.diff(ring_offsets) - 1  # unique vertices per ring
    edges = edges or _edges(base, top, ring_offsets)
    keep = edges.starts
    vert_index = np.cumsum(keep) - 1  # coordinate → roof vertex index
    positions = edges.top
    up = edges.rise
    up = up / np.maximum(np.sqrt(np.einsum("ij,ij->i", up, up)), 1e-12)[:, None]
    normals = up.astype(np.float32)
    ring_part = np.repeat(np.arange(len(part_feature)), np.diff(part_ring_offsets))
    feature_ids = np.repeat(part_feature[ring_part], ring_len)

    rings_per_part = np.diff(part_ring_offsets)
    exterior = part_ring_offsets[:-1]
    left = _left_turns(top, ring_offsets)
    starts = ring_offsets[:-1]
    convex = np.logical_and.reduceat(left, starts) if len(left) else np.zeros(0, dtype=bool)
    single = (rings_per_part == 1) & (ring_len[exterior] >= 3)
    simple = single & convex[exterior]
    fan = _fans(vert_index[ring_offsets[exterior[simple]]], ring_len[exterior[simple]])
    dented, dent_fan = _reflex_fans(positions, left, keep, ring_offsets, ring_len, vert_index)
    by_dent = single & dented[exterior]
    cut = _earcut_parts(positions, ring_len, part_ring_offsets, np.flatnonzero(~simple & ~by_dent))
    tris = np.concatenate([fan, dent_fan, *cut])
    tris = _face_up(positions, tris.reshape(-1, 3), normals)
    return FeatureMesh(positions, normals, feature_ids, tris.reshape(-1))


def _left_turns(xyz: np.ndarray, ring_offsets: np.ndarray) -> np.ndarray:
    """Per coordinate i: True when the ring turns left (or goes straight on) at the next
    vertex, between the edges (i, i + 1) and (i + 1, i + 2)."""
    m = len(xyz)
    nxt = np.arange(1, m + 1)
    last = ring_offsets[1:] - 1
    # the vertex after a ring's closing vertex is the ring's second vertex
    nxt[last] = ring_offsets[:-1] + 1
    x, y = xyz[:, 0], xyz[:, 1]
    # np.take: gathers in a tight loop, about twice as fast as fancy indexing
    dx, dy = np.take(x, nxt) - x, np.take(y, nxt) - y
    # the next edge of a vertex is the edge of its next vertex
    cross = dx * np.take(dy, nxt) - dy * np.take(dx, nxt)
    length = np.sqrt(dx * dx + dy * dy)
    scale = length * np.take(length, nxt)
    return cross >= -1e-9 * np.maximum(scale, 1e-12)


def _reflex_fans(
    positions: np.ndarray,
    left: np.ndarray,
    keep: np.ndarray,
    ring_offsets: np.ndarray,
    ring_len: np.ndarray,
    vert_index: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Fans of rings with exactly one reflex vertex, from that vertex, vectorised.

    Such a ring (an L-shaped block, a notch) is star-shaped from its reflex vertex:
    the lines of its two edges there cut it into convex pieces that both contain the
    vertex, so the fan from it triangulates the ring, as earcut would (with other
    triangles). Each fan is checked anyway: a ring whose fan has a triangle that is
    not strictly counter-clockwise goes to earcut.

    Returns
    -------
    (ndarray of bool, ndarray)
        Per ring: triangulated here; and the triangles (flat roof vertex indices).
    """
    n_rings = len(ring_len)
    dented = np.zeros(n_rings, dtype=bool)
    if not len(left):
        return dented, np.zeros(0, dtype=np.int64)
    starts = ring_offsets[:-1]
    right = ~left & keep  # the closing vertex repeats the first: counted once
    n_right = np.add.reduceat(right.astype(np.int64), starts)
    rings = np.flatnonzero((n_right == 1) & (ring_len >= 4))
    if not len(rings):
        return dented, np.zeros(0, dtype=np.int64)
    where = np.maximum.reduceat(np.where(right, np.arange(len(left)), -1), starts)[rings]
    count = ring_len[rings]
    # the turn found at coordinate i is the one at vertex i + 1
    pivot = (where - starts[rings] + 1) % count
    tris = _fans(vert_index[starts[rings]], count, pivot).reshape(-1, 3)
    a, b, c = (_take(positions, tris[:, k]) for k in range(3))
    ux, uy, vx, vy = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1], c[:, 0] - a[:, 0], c[:, 1] - a[:, 1]
    area = ux * vy - uy * vx
    good = area > 1e-9 * np.sqrt((ux * ux + uy * uy) * (vx * vx + vy * vy))
    tri_start = np.zeros(len(rings), dtype=np.int64)
    np.cumsum(count[:-1] - 2, out=tri_start[1:])
    ok = np.logical_and.reduceat(good, tri_start)
    dented[rings[ok]] = True
    return dented, tris[np.repeat(ok, count - 2)].reshape(-1)


def _fans(first: np.ndarray, count: np.ndarray, pivot: np.ndarray | None = None) -> np.ndarray:
    """Fan triangles (v0, vi, vi+1) of rings, vectorised.

    ``first`` is each ring's first vertex and ``count`` its vertices; the fan starts at
    the ring's vertex ``pivot`` (0 when not given) and goes round the ring.
    """
    n_tris = count - 2
    total = int(n_tris.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ring_of_tri = np.repeat(np.arange(len(first)), n_tris)
    starts = np.cumsum(n_tris) - n_tris
    i = np.arange(total) - np.repeat(starts, n_tris) + 1
    v0 = np.take(first, ring_of_tri)
    if pivot is None:
        return np.stack([v0, v0 + i, v0 + i + 1], axis=1).reshape(-1)
    n, p = np.take(count, ring_of_tri), np.take(pivot, ring_of_tri)
    return np.stack([v0 + p, v0 + (p + i) % n, v0 + (p + i + 1) % n], axis=1).reshape(-1)


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
    a, b, c = (_take(positions, tris[:, k]) for k in range(3))
    facing = np.einsum("ij,ij->i", _cross(b - a, c - a), _take(normals, tris[:, 0]))
    flip = facing < 0
    tris[flip] = tris[flip][:, [0, 2, 1]]
    return tris


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Row-wise cross product of (n, 3) arrays: ``np.cross``'s arithmetic, less overhead."""
    out = np.empty_like(u)
    ux, uy, uz = u[:, 0], u[:, 1], u[:, 2]
    vx, vy, vz = v[:, 0], v[:, 1], v[:, 2]
    out[:, 0] = uy * vz - uz * vy
    out[:, 1] = uz * vx - ux * vz
    out[:, 2] = ux * vy - uy * vx
    return out


def _take(rows: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``rows[index]`` of an (n, k) array: ``np.take`` gathers rows several times faster."""
    return np.take(rows, index, axis=0)
