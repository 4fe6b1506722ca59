"""The building mesh type, surface codes, and the welding/cleanup every engine shares."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: surface codes of :attr:`BuildingMesh.surface` (one per triangle)
SURFACE_WALL = 1
SURFACE_ROOF = 2
SURFACE_EAVE_UNDERSIDE = 3
SURFACE_PODIUM = 4
SURFACE_GROUND = 5
SURFACE_GABLE = 6  # wall above the eave line: gables, 山花, upper-storey walls of 重檐
SURFACE_FASCIA = 7  # the vertical edge of the roof slab at the eaves

#: positions closer than this (metres) are one vertex
WELD_TOLERANCE = 1e-6


@dataclass
class BuildingMesh:
    """A closed, consistently oriented triangle mesh of one building.

    Attributes
    ----------
    positions : ndarray (n, 3) float64
        Local metres: x east, y north, z up from the ground (0).
    triangles : ndarray (m, 3) uint32
        Vertex indices, counter-clockwise seen from outside.
    surface : ndarray (m,) uint8
        One of the ``SURFACE_*`` codes per triangle.
    eave_z, ridge_z : float
        Achieved eave (wall top) and ridge (highest roof point) heights.
    fallbacks : list of str
        Every fallback step taken, for the build report (empty when none).
    """

    positions: np.ndarray
    triangles: np.ndarray
    surface: np.ndarray
    eave_z: float
    ridge_z: float
    fallbacks: list[str] = field(default_factory=list)


def weld(pos: np.ndarray, tris: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, ...]:
    """Merge coincident vertices and drop the triangles that collapse.

    Collapsing rings (a ridge, an apex) leave triangles with a repeated vertex; dropping
    exactly those keeps a closed mesh closed.
    """
    key = np.round(pos / WELD_TOLERANCE).astype(np.int64)
    order = np.lexsort(key.T[::-1])
    k = key[order]
    new = np.empty(len(k), dtype=bool)
    new[0] = True
    new[1:] = np.any(k[1:] != k[:-1], axis=1)
    group = np.cumsum(new) - 1
    inverse = np.empty(len(pos), dtype=np.int64)
    inverse[order] = group
    first = order[new]
    t = inverse[tris]
    keep = (t[:, 0] != t[:, 1]) & (t[:, 1] != t[:, 2]) & (t[:, 0] != t[:, 2])
    t, codes = t[keep], codes[keep]
    used = np.zeros(len(first), dtype=bool)
    used[t.ravel()] = True
    remap = np.cumsum(used) - 1
    return pos[first[used]], remap[t].astype(np.uint32), codes.astype(np.uint8)


def cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Row-wise cross products of (m, 3) arrays (np.cross is slow on small arrays)."""
    out = np.empty_like(u)
    out[:, 0] = u[:, 1] * v[:, 2] - u[:, 2] * v[:, 1]
    out[:, 1] = u[:, 2] * v[:, 0] - u[:, 0] * v[:, 2]
    out[:, 2] = u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]
    return out


def triangle_normals(pos: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Unnormalised normals (twice the area) of the triangles."""
    a = pos[tris[:, 0]]
    return cross(pos[tris[:, 1]] - a, pos[tris[:, 2]] - a)


def triangle_areas(pos: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Areas of the triangles (m²)."""
    n = triangle_normals(pos, tris)
    return 0.5 * np.sqrt((n * n).sum(axis=1))


def assemble(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """Concatenate (positions, triangles, codes) parts and weld them into one mesh."""
    if len(parts) == 1:  # a ring-chain solid: nothing to concatenate
        p, t, c = parts[0]
        c = np.full(len(t), c, dtype=np.uint8) if np.ndim(c) == 0 else np.asarray(c, np.uint8)
        return weld(p, np.asarray(t, dtype=np.int64), c)
    offset = 0
    pos, tris, codes = [], [], []
    for p, t, c in parts:
        pos.append(p)
        tris.append(np.asarray(t, dtype=np.int64) + offset)
        if np.ndim(c) == 0:  # one code for the part (np.full is cheaper than broadcast_to)
            codes.append(np.full(len(t), c, dtype=np.uint8))
        else:
            codes.append(np.asarray(c, dtype=np.uint8))
        offset += len(p)
    return weld(np.concatenate(pos), np.concatenate(tris), np.concatenate(codes))
