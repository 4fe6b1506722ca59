"""Straight-skeleton roofs on arbitrary footprints (L, U, T, courtyards, any polygon).

The skeleton comes from CGAL (``compas_cgal``'s binding of ``extrude_skeleton``, exact
predicates): every footprint edge sweeps inward at its own angle; 45° everywhere gives a
hip roof whose heights are the skeleton times (distances), 90° on an edge makes it a
gable. Heights are then mapped through the form's profile (pitch, 举架, mansard...).
"""

from __future__ import annotations

import itertools
import logging
from functools import lru_cache

import mapbox_earcut as earcut
import numpy as np
import shapely

from .mesh import cross

log = logging.getLogger(__name__)


#: faces of up to this many corners are tried as fans (larger ones go to earcut)
FAN_MAX = 12


class SkeletonError(RuntimeError):
    """CGAL could not build the skeleton, or its result failed the validity check."""


def _rings(poly: shapely.Polygon) -> tuple[np.ndarray, list[np.ndarray]]:
    poly = shapely.orient_polygons(poly)  # exterior CCW, holes CW, as CGAL wants
    outer = np.asarray(poly.exterior.coords)[:-1, :2]
    holes = [np.asarray(r.coords)[:-1, :2] for r in poly.interiors]
    return outer, holes


@lru_cache(maxsize=1)
def _binding():
    """compas_cgal's C++ binding, imported once (an import statement per call costs)."""
    try:
        from compas_cgal import _straight_skeleton_2 as cgal  # the C++ binding only
    except ImportError as exc:  # pragma: no cover - compas_cgal is a dependency
        raise SkeletonError(f"compas_cgal is not installed: {exc}") from exc
    return cgal


def _cgal(outer: np.ndarray, holes: list[np.ndarray], angles: list[np.ndarray], top: float):
    cgal = _binding()

    def xyz(r: np.ndarray) -> np.ndarray:
        out = np.zeros((len(r), 3))
        out[:, :2] = r
        return out

    # CGAL reads speed i as the speed of the edge that ends at vertex i
    speeds = []
    for a in angles:
        lst = a.tolist()
        speeds.append(lst[-1:] + lst[:-1])
    try:
        v, faces = cgal.extrude_straight_skeleton(
            xyz(outer), [xyz(h) for h in holes], speeds, True, float(top)
        )
    except Exception as exc:  # CGAL throws plain RuntimeErrors on degenerate input
        raise SkeletonError(f"CGAL straight skeleton failed: {exc}") from exc
    return np.asarray(v, dtype=np.float64), faces


def _triangulate_faces(v: np.ndarray, faces: list[list[int]]) -> np.ndarray:
    """Triangles of CGAL's planar polygon faces, bottom faces (all z = 0) left out.

    Triangles, and faces a fan from their first corner splits (most faces), are done
    for all faces of a size at once; the other faces go through earcut one by one.
    """
    if not faces:
        return np.zeros((0, 3), dtype=np.int64)
    sizes = np.fromiter(map(len, faces), dtype=np.int64, count=len(faces))
    flat = np.fromiter(itertools.chain.from_iterable(faces), dtype=np.int64, count=sizes.sum())
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    up = np.maximum.reduceat(np.abs(v[flat, 2]), starts) >= 1e-9
    out = [flat[starts[up & (sizes == 3), None] + np.arange(3)]]
    rest = up & (sizes > 3)
    for k in np.unique(sizes[rest]).tolist():
        if k > FAN_MAX:
            break
        rows = np.flatnonzero(rest & (sizes == k))
        f = flat[starts[rows, None] + np.arange(k)]  # (faces, k)
        e = v[f[:, 1:]] - v[f[:, :1]]
        a, b = e[:, :-1], e[:, 1:]
        # a fan from the first corner: valid when every fan triangle turns the face's way
        # (the face is star-shaped from that corner), so no triangle is a sliver either
        fan = np.stack(
            [
                a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
                a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
                a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0],
            ],
            axis=-1,
        )  # (faces, k - 2, 3)
        newell = fan.sum(axis=1)
        ok = ((fan * newell[:, None, :]).sum(axis=2) > 1e-12).all(axis=1)
        out.append(f[ok][:, _fan(k)].reshape(-1, 3))
        rest[rows[ok]] = False
    for k in np.flatnonzero(rest).tolist():
        out.append(_earcut_face(v, np.asarray(faces[k])))
    return np.concatenate(out)


def _earcut_face(v: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """One planar face through earcut, turned to the face's (Newell) normal."""
    p = v[idx]
    nrm = cross(p, p[_next(len(p))]).sum(axis=0)  # Newell normal
    keep = [a for a in range(3) if a != int(np.argmax(np.abs(nrm)))]
    tri = earcut.triangulate_float64(p[:, keep], np.array([len(p)], dtype=np.uint32))
    t = idx[np.asarray(tri).reshape(-1, 3)]
    # earcut does not keep the winding: turn every triangle to the face's normal
    a, b, c = v[t[:, 0]], v[t[:, 1]], v[t[:, 2]]
    flip = cross(b - a, c - a) @ nrm < 0
    t[flip] = t[flip][:, ::-1]
    return t


@lru_cache(maxsize=64)
def _fan(k: int) -> np.ndarray:
    """The fan of a face of k corners from its first: (k - 2, 3) corner numbers."""
    j = np.arange(1, k - 1)
    return np.stack([np.zeros_like(j), j, j + 1], axis=1)


@lru_cache(maxsize=64)
def _next(n: int) -> np.ndarray:
    """Index of the next vertex around a ring of n (np.r_ costs more than the face)."""
    out = np.r_[1:n, 0]
    out.flags.writeable = False
    return out


def skeleton_roof(poly: shapely.Polygon, gables: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A hip (or gabled) roof over ``poly`` as (vertices, triangles, gable mask).

    Vertices' z are skeleton times (m of inward distance); the bottom face is left out,
    so the open boundary is exactly the polygon's rings at z = 0.

    Parameters
    ----------
    poly : shapely.Polygon
        Footprint (or eave outline), may have holes.
    gables : bool
        Make a gable of every edge whose hip face is a triangle (the ends of a wing).

    Returns
    -------
    vertices (k, 3), triangles (m, 3), gable_edges (number of polygon edges,) bool
    """
    outer, holes = _rings(poly)
    sizes = [len(outer)] + [len(h) for h in holes]
    angles = [np.full(n, 45.0) for n in sizes]
    span = float(np.sqrt(poly.area)) + poly.length
    v, faces = _cgal(outer, holes, angles, span)
    gable = np.zeros(sum(sizes), dtype=bool)
    if gables:
        gable = _triangular_hips(v, faces, np.concatenate([outer, *holes]), sizes)
        if gable.any():
            split = np.cumsum(sizes)[:-1]
            angles = [np.where(g, 90.0, 45.0) for g in np.split(gable, split)]
            v, faces = _cgal(outer, holes, angles, float(v[:, 2].max()) + 1e-3)
    v, tris = _collapse(v, _triangulate_faces(v, faces))
    if len(tris) == 0:
        raise SkeletonError("the straight skeleton has no roof faces")
    return v, tris, gable


def _collapse(v: np.ndarray, tris: np.ndarray, tol: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Merge skeleton nodes closer than ``tol`` and drop the slivers that collapse.

    Nearly simultaneous events (the junction of a T, a cross) leave nodes a fraction of
    a millimetre apart and needle triangles between them.
    """
    pairs = close_pairs(v, tol)
    if len(pairs) == 0:
        return v, tris
    label = _components(len(v), pairs)
    # each cluster keeps its lowest vertex, so footprint corners (z = 0) never move
    order = np.lexsort((v[:, 2], label))
    _, at = np.unique(label[order], return_index=True)
    t = order[at][label][tris]
    keep = (t[:, 0] != t[:, 1]) & (t[:, 1] != t[:, 2]) & (t[:, 0] != t[:, 2])
    return v, t[keep]


def close_pairs(v: np.ndarray, tol: float) -> np.ndarray:
    """(k, 2) index pairs i < j of points at most ``tol`` apart (``cKDTree.query_pairs``).

    A sweep along x: each point is compared with the next ones within ``tol`` in x only.
    A skeleton has a few hundred nodes, where building a k-d tree (and importing scipy
    in every worker) costs more than the search.
    """
    order = np.argsort(v[:, 0], kind="stable")
    xs = v[order, 0]
    hi = np.searchsorted(xs, xs + tol, side="right")
    span = hi - np.arange(len(v)) - 1
    if span.sum() > 5_000_000:  # a pathological column of nodes: let a k-d tree do it
        from scipy.spatial import cKDTree

        return cKDTree(v).query_pairs(tol, output_type="ndarray")
    a = np.repeat(np.arange(len(v)), span)
    b = a + 1 + (np.arange(len(a)) - np.repeat(np.cumsum(span) - span, span))
    d = v[order[a]] - v[order[b]]
    near = (d * d).sum(axis=1) <= tol * tol
    i, j = order[a[near]], order[b[near]]
    return np.column_stack([np.minimum(i, j), np.maximum(i, j)]).astype(np.int64)


def _components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected-component label per node of a graph given as (k, 2) pairs.

    Union-find in plain Python: the pairs are a few near-coincident skeleton nodes,
    where scipy's sparse graph setup costs far more than the work.
    """
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs.tolist():
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.unique([root(i) for i in range(n)], return_inverse=True)[1].reshape(-1)


def _triangular_hips(
    v: np.ndarray, faces: list[list[int]], ring_pts: np.ndarray, sizes: list[int]
) -> np.ndarray:
    """Edges whose hip face is a triangle: those become gables."""
    key = {tuple(np.round(p, 6)): i for i, p in enumerate(ring_pts)}
    starts = np.cumsum([0, *sizes[:-1]])
    nxt = np.concatenate(
        [np.roll(np.arange(s, s + n), -1) for s, n in zip(starts, sizes, strict=True)]
    )
    gable = np.zeros(len(ring_pts), dtype=bool)
    for f in faces:
        if len(f) != 3:
            continue
        p = v[np.asarray(f)]
        base = [key.get(tuple(np.round(q[:2], 6))) for q in p if abs(q[2]) < 1e-9]
        if len(base) != 2 or None in base:
            continue
        a, b = base
        if nxt[a] == b:
            gable[a] = True
        elif nxt[b] == a:
            gable[b] = True
    # two gables meeting at a corner would leave a vertical corner: keep neither
    prv = np.empty_like(nxt)
    prv[nxt] = np.arange(len(nxt))
    return gable & ~gable[nxt] & ~gable[prv]


def slice_at(v: np.ndarray, tris: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split triangles along the horizontal planes z = level (keeping the mesh conforming).

    The skeleton's planar faces run from the eaves to the ridge in one piece; a profile
    with breaks (举架 steps, a mansard's knee) needs vertices on the break lines, which
    are exactly these level lines (z is the inward distance).
    """
    v = v.copy()
    for lev in levels:
        near = np.abs(v[:, 2] - lev) < 1e-4  # onto the plane: no sliver beside a vertex
        v[near, 2] = lev
        z = v[:, 2] - lev
        s = np.where(near, 0, np.sign(z)).astype(np.int8)
        st = s[tris]
        cut = (st.min(axis=1) < 0) & (st.max(axis=1) > 0)
        if not cut.any():
            continue
        t, sc = tris[cut], st[cut]
        # roll so that vertex 0 is the lonely one: alone on its side, or on the plane
        maj = np.sign(sc.sum(axis=1))  # the side two of the three vertices share
        lonely = np.where(
            (sc == 0).any(axis=1), np.argmax(sc == 0, axis=1), np.argmax(sc != maj[:, None], axis=1)
        )
        r = (lonely[:, None] + np.arange(3)) % 3
        t = np.take_along_axis(t, r, axis=1)
        sc = np.take_along_axis(sc, r, axis=1)
        on_plane = sc[:, 0] == 0
        # the crossing points, one per undirected edge so neighbours share them
        e_ab, e_ac, e_bc = t[:, [0, 1]], t[:, [0, 2]], t[:, [1, 2]]
        edges = np.concatenate([e_ab[~on_plane], e_ac[~on_plane], e_bc[on_plane]])
        key = np.sort(edges, axis=1).astype(np.int64)
        # one integer per edge: same order as the rows' lexicographic order, far cheaper
        # than np.unique(axis=0)
        nv = len(v)
        code, inv = np.unique(key[:, 0] * nv + key[:, 1], return_inverse=True)
        uniq = np.column_stack([code // nv, code % nv])
        inv = inv.reshape(-1)
        za, zb = z[uniq[:, 0]], z[uniq[:, 1]]
        w = (za / (za - zb))[:, None]
        new = v[uniq[:, 0]] + w * (v[uniq[:, 1]] - v[uniq[:, 0]])
        base = len(v)
        v = np.concatenate([v, new])
        v[base:, 2] = lev
        k = int((~on_plane).sum())
        p_ab, p_ac = base + inv[:k], base + inv[k : 2 * k]
        p_bc = base + inv[2 * k :]
        a, b, c = t[~on_plane, 0], t[~on_plane, 1], t[~on_plane, 2]
        three = np.concatenate(
            [
                np.column_stack([a, p_ab, p_ac]),
                np.column_stack([p_ab, b, c]),
                np.column_stack([p_ab, c, p_ac]),
            ]
        )
        a, b, c = t[on_plane, 0], t[on_plane, 1], t[on_plane, 2]
        two = np.concatenate([np.column_stack([a, b, p_bc]), np.column_stack([a, p_bc, c])])
        tris = np.concatenate([tris[~cut], three, two])
    return v, tris
