"""Pipe meshes, vectorised over all pipes of a tile at once (numpy, no per-pipe loops).

Every builder returns a :class:`tiling.gltf.FeatureMesh` in the tileset's local
east-north-up frame (metres, z up):

- :func:`tubes`: circular pipes, ``sides`` facets, smooth normals, open ends (joints
  or wells cover them); optionally each end cut on a mitre plane;
- :func:`boxes`: rectangular sections (B wide, H high; B stays horizontal);
- :func:`spheres`: joints at points (balls hide the ends of the pipes meeting there);
- :func:`cylinders`: wells and manholes, vertical, closed, from their bottom to the
  ground.

Triangles are counter-clockwise seen from outside.
"""

from __future__ import annotations

import functools

import numpy as np

from tiling.gltf import FeatureMesh

_UP = np.array([0.0, 0.0, 1.0])


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 0, n, 1.0)


def pipe_frames(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right-handed (u, v, d) per pipe: d along the axis, u horizontal, v = d × u.

    A vertical pipe takes east as u.
    """
    d = _unit(b - a)
    # d × up = (dy, -dx, 0), and d × u written out: np.cross costs more than the maths
    u = np.column_stack([d[:, 1], -d[:, 0], np.zeros(len(d))])
    flat = np.hypot(u[:, 0], u[:, 1]) < 1e-6
    u[flat] = [1.0, 0.0, 0.0]
    u = _unit(u)
    v = np.column_stack(
        [
            d[:, 1] * u[:, 2] - d[:, 2] * u[:, 1],
            d[:, 2] * u[:, 0] - d[:, 0] * u[:, 2],
            d[:, 0] * u[:, 1] - d[:, 1] * u[:, 0],
        ]
    )
    return u, v, d


def _merge(parts: list[FeatureMesh]) -> FeatureMesh:
    parts = [p for p in parts if len(p.positions)]
    if not parts:
        z3 = np.zeros((0, 3))
        return FeatureMesh(
            z3,
            z3.astype(np.float32),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros((0, 4), np.uint8),
        )
    offsets = np.cumsum([0] + [len(p.positions) for p in parts[:-1]])
    return FeatureMesh(
        positions=np.concatenate([p.positions for p in parts]),
        normals=np.concatenate([p.normals for p in parts]).astype(np.float32),
        feature_ids=np.concatenate([p.feature_ids for p in parts]),
        indices=np.concatenate([p.indices + o for p, o in zip(parts, offsets, strict=True)]),
        colors=np.concatenate([p.colors for p in parts]),  # type: ignore[misc]
    )


def merge(parts: list[FeatureMesh]) -> FeatureMesh:
    """One mesh from several (indices shifted)."""
    return _merge(parts)


def _quad_strip(n_items: int, ring: int, closed: bool = True) -> np.ndarray:
    """Triangles joining ring 0 and ring 1 (``ring`` vertices each) of every item."""
    k = np.arange(ring if closed else ring - 1)
    k1 = (k + 1) % ring
    tri = np.stack([k, k1, ring + k1, k, ring + k1, ring + k], axis=1).ravel()
    base = np.arange(n_items)[:, None] * (2 * ring)
    return (base + tri[None, :]).ravel()


def _mitre_shift(
    ends: np.ndarray, offsets: np.ndarray, d: np.ndarray, planes: np.ndarray | None
) -> np.ndarray:
    """Move ring vertices along the axis onto their end's mitre plane (normal, NaN: none)."""
    if planes is None:
        return np.zeros(offsets.shape[:2])
    n = planes[:, None, :]
    nd = np.einsum("ij,ij->i", planes, d)[:, None]
    ok = np.isfinite(nd) & (np.abs(nd) > 0.2)  # sharper than ~78°: keep the plain end
    t = -np.einsum("ijk,ijk->ij", np.nan_to_num(n), offsets) / np.where(ok, nd, 1.0)
    return np.where(ok, t, 0.0)


def tubes(
    a: np.ndarray,
    b: np.ndarray,
    radius: np.ndarray,
    fids: np.ndarray,
    colors: np.ndarray,
    sides: int = 12,
    mitre_a: np.ndarray | None = None,
    mitre_b: np.ndarray | None = None,
) -> FeatureMesh:
    """Circular pipes from axis ends ``a`` to ``b``.

    Parameters
    ----------
    a, b : (n, 3) float
        Axis ends (pipe centre line), frame metres.
    radius : (n,) float
        Outer radius, metres.
    fids : (n,) int
        Feature id of each pipe.
    colors : (n, 4) uint8
    sides : int
    mitre_a, mitre_b : (n, 3) float, optional
        Normal of the mitre plane through each end (NaN rows: a plain end).
    """
    n = len(a)
    u, v, d = pipe_frames(a, b)
    theta = 2.0 * np.pi * np.arange(sides) / sides
    ring = (
        np.cos(theta)[None, :, None] * u[:, None, :] + np.sin(theta)[None, :, None] * v[:, None, :]
    )
    off = ring * radius[:, None, None]
    ta = _mitre_shift(a, off, d, mitre_a)
    tb = _mitre_shift(b, off, d, mitre_b)
    pa = a[:, None, :] + off + ta[:, :, None] * d[:, None, :]
    pb = b[:, None, :] + off + tb[:, :, None] * d[:, None, :]
    positions = np.concatenate([pa, pb], axis=1).reshape(-1, 3)
    normals = np.concatenate([ring, ring], axis=1).reshape(-1, 3)
    return FeatureMesh(
        positions=positions,
        normals=normals.astype(np.float32),
        feature_ids=np.repeat(fids, 2 * sides),
        indices=_quad_strip(n, sides),
        colors=np.repeat(colors, 2 * sides, axis=0),
    )


def boxes(
    a: np.ndarray,
    b: np.ndarray,
    width: np.ndarray,
    height: np.ndarray,
    fids: np.ndarray,
    colors: np.ndarray,
) -> FeatureMesh:
    """Rectangular sections (box culverts, cable ducts): flat faces, B horizontal."""
    n = len(a)
    u, v, _ = pipe_frames(a, b)
    hw, hh = (width / 2.0)[:, None], (height / 2.0)[:, None]
    # four faces: +u, +v, -u, -v; each a quad of 2 vertices at a and 2 at b
    corners = [(1, -1), (1, 1), (-1, 1), (-1, -1)]  # (su, sv) around the section
    c = np.stack([su * hw * u + sv * hh * v for su, sv in corners], axis=1)  # (n, 4, 3)
    face_corner = np.array([[0, 1], [1, 2], [2, 3], [3, 0]])
    face_normal = np.stack([u, v, -u, -v], axis=1)  # (n, 4, 3)
    quad_a = c[:, face_corner, :] + a[:, None, None, :]  # (n, face, 2, 3)
    quad_b = c[:, face_corner, :] + b[:, None, None, :]
    verts = np.concatenate([quad_a, quad_b], axis=2)  # (n, face, 4, 3): a0 a1 b0 b1
    normals = np.repeat(face_normal[:, :, None, :], 4, axis=2)
    tri = np.array([0, 1, 3, 0, 3, 2])
    base = (np.arange(n * 4) * 4)[:, None]
    # (u, v, d) is right-handed, so a0 a1 b1 winds outward on every face: no check needed
    return FeatureMesh(
        positions=verts.reshape(-1, 3),
        normals=normals.reshape(-1, 3).astype(np.float32),
        feature_ids=np.repeat(fids, 16),
        indices=(base + tri[None, :]).ravel(),
        colors=np.repeat(colors, 16, axis=0),
    )


def _outward(mesh: FeatureMesh) -> FeatureMesh:
    """Flip triangles whose winding disagrees with their vertices' normals."""
    tri = mesh.indices.reshape(-1, 3)
    p = mesh.positions[tri]
    face = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    flip = np.einsum("ij,ij->i", face, mesh.normals[tri[:, 0]]) < 0
    tri = tri.copy()
    tri[flip] = tri[flip][:, [0, 2, 1]]
    mesh.indices = tri.ravel()
    return mesh


@functools.lru_cache(maxsize=8)
def _sphere_template(sides: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit UV sphere: vertices (with the poles) and triangles (cached: read-only)."""
    stacks = max(3, sides // 2)
    phi = np.pi * np.arange(1, stacks) / stacks  # rings between the poles
    theta = 2.0 * np.pi * np.arange(sides) / sides
    ring = np.stack(
        [
            np.outer(np.sin(phi), np.cos(theta)),
            np.outer(np.sin(phi), np.sin(theta)),
            np.repeat(np.cos(phi)[:, None], sides, axis=1),
        ],
        axis=2,
    ).reshape(-1, 3)
    verts = np.concatenate([[[0.0, 0.0, 1.0]], ring, [[0.0, 0.0, -1.0]]])
    tris = []
    k = np.arange(sides)
    k1 = (k + 1) % sides
    tris.append(np.stack([np.zeros(sides, int), 1 + k1, 1 + k], axis=1))  # top cap
    for s in range(stacks - 2):
        r0, r1 = 1 + s * sides, 1 + (s + 1) * sides
        tris.append(np.stack([r0 + k, r0 + k1, r1 + k1], axis=1))
        tris.append(np.stack([r0 + k, r1 + k1, r1 + k], axis=1))
    bottom = len(verts) - 1
    last = 1 + (stacks - 2) * sides
    tris.append(np.stack([np.full(sides, bottom), last + k, last + k1], axis=1))
    tri = np.concatenate(tris)
    # wind every triangle outward once, on the template
    p = verts[tri]
    face = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    flip = np.einsum("ij,ij->i", face, p.mean(axis=1)) < 0
    tri[flip] = tri[flip][:, [0, 2, 1]]
    tri = tri.ravel()
    verts.flags.writeable = tri.flags.writeable = False
    return verts, tri


def spheres(
    centres: np.ndarray, radius: np.ndarray, fids: np.ndarray, colors: np.ndarray, sides: int = 10
) -> FeatureMesh:
    """Balls at joints."""
    verts, tri = _sphere_template(sides)
    n, m = len(centres), len(verts)
    positions = centres[:, None, :] + radius[:, None, None] * verts[None, :, :]
    return FeatureMesh(
        positions=positions.reshape(-1, 3),
        normals=np.broadcast_to(verts, (n, m, 3)).reshape(-1, 3).astype(np.float32),
        feature_ids=np.repeat(fids, m),
        indices=((np.arange(n) * m)[:, None] + tri[None, :]).ravel(),
        colors=np.repeat(colors, m, axis=0),
    )


def cylinders(
    bottom: np.ndarray,
    top: np.ndarray,
    radius: np.ndarray,
    fids: np.ndarray,
    colors: np.ndarray,
    sides: int = 16,
) -> FeatureMesh:
    """Closed vertical cylinders (wells, manholes) from ``bottom`` up to ``top`` (z)."""
    n = len(bottom)
    theta = 2.0 * np.pi * np.arange(sides) / sides
    circle = np.column_stack([np.cos(theta), np.sin(theta), np.zeros(sides)])
    off = radius[:, None, None] * circle[None]
    lo = bottom[:, None, :] + off
    hi = lo.copy()
    hi[:, :, 2] = top[:, None]
    wall = np.concatenate([lo, hi], axis=1)
    wall_n = np.broadcast_to(np.concatenate([circle, circle]), (n, 2 * sides, 3))
    # caps: their own vertices (flat normals), a fan around vertex 0
    caps = np.concatenate([lo, hi], axis=1)
    cap_n = np.concatenate(
        [np.broadcast_to(-_UP, (n, sides, 3)), np.broadcast_to(_UP, (n, sides, 3))], axis=1
    )
    per = 4 * sides
    base = (np.arange(n) * per)[:, None]
    tri = _cylinder_triangles(sides)
    return FeatureMesh(
        positions=np.concatenate([wall, caps], axis=1).reshape(-1, 3),
        normals=np.concatenate([wall_n, cap_n], axis=1).reshape(-1, 3).astype(np.float32),
        feature_ids=np.repeat(fids, per),
        indices=(base + tri[None, :]).ravel(),
        colors=np.repeat(colors, per, axis=0),
    )


@functools.lru_cache(maxsize=8)
def _cylinder_triangles(sides: int) -> np.ndarray:
    """Wall and cap triangles of a unit cylinder, wound outward (cached: read-only)."""
    k = np.arange(1, sides - 1)
    fan_lo = np.stack([np.zeros_like(k), k + 1, k], axis=1).ravel()
    fan_hi = np.stack([np.zeros_like(k), k, k + 1], axis=1).ravel() + sides
    tri = _cylinder_winding(
        sides, np.concatenate([_quad_strip(1, sides), 2 * sides + fan_lo, 2 * sides + fan_hi])
    )
    tri.flags.writeable = False
    return tri


def _cylinder_winding(sides: int, tri: np.ndarray) -> np.ndarray:
    """The triangles of a unit cylinder wound outward (every well is a scaled copy)."""
    theta = 2.0 * np.pi * np.arange(sides) / sides
    circle = np.column_stack([np.cos(theta), np.sin(theta), np.zeros(sides)])
    top = circle + _UP
    pos = np.concatenate([circle, top, circle, top])
    normals = np.concatenate([circle, circle, np.tile(-_UP, (sides, 1)), np.tile(_UP, (sides, 1))])
    mesh = FeatureMesh(pos, normals, np.zeros(len(pos), np.int64), tri.copy())
    return _outward(mesh).indices
