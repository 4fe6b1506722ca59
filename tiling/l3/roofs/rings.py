"""Ring-chain solids: a closed mesh swept through a chain of rings with one vertex order.

A building on a rectangle or a convex footprint is a chain of rings, each the footprint
(or its eave outline) inset per edge and lifted: ground, wall top, eave soffit, fascia,
then one ring per break of the roof profile up to a ridge, an apex or a flat top. Rings
keep one vertex count, so consecutive rings are joined by quads; rings that collapse (a
ridge, an apex) leave repeated vertices that :func:`mesh.weld` removes, which keeps the
solid closed. Everything here is whole-array numpy over all rings at once.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .mesh import SURFACE_GROUND, SURFACE_ROOF


@lru_cache(maxsize=64)
def _neighbours(n: int) -> tuple[np.ndarray, np.ndarray]:
    i = np.arange(n)
    return (i - 1) % n, (i + 1) % n


def offset_corners(corners: np.ndarray, inset: np.ndarray) -> np.ndarray:
    """Corners of a convex CCW polygon whose edges are moved inward by ``inset``.

    ``inset`` has one value per edge, shape (n,) or (k, n) for k rings at once (then the
    result is (k, n, 2)). Negative insets move edges outward (a mitred overhang).
    Corner j is the intersection of the moved edges j-1 and j.
    """
    prv, nxt = _neighbours(len(corners))
    d = corners[nxt] - corners
    d /= np.sqrt((d * d).sum(axis=1))[:, None]
    normal_in = np.column_stack([-d[:, 1], d[:, 0]])
    a = corners + inset[..., None] * normal_in  # a point on each moved edge
    pa, da = a[..., prv, :], d[prv]  # edge j-1
    cross = da[:, 0] * d[:, 1] - da[:, 1] * d[:, 0]
    w = a - pa
    t = (w[..., 0] * d[:, 1] - w[..., 1] * d[:, 0]) / cross
    return pa + t[..., None] * da


def subdivide(corners: np.ndarray, m: int) -> np.ndarray:
    """Ring points: each corner followed by ``m`` evenly spaced points on its edge.

    ``corners`` is (..., n, 2); the result is (..., n * (m + 1), 2).
    """
    if m == 0:
        return corners
    n = corners.shape[-2]
    f = np.arange(m + 1) / (m + 1)
    step = corners[..., _neighbours(n)[1], :] - corners
    pts = corners[..., :, None, :] + f[:, None] * step[..., :, None, :]
    return pts.reshape(*corners.shape[:-2], n * (m + 1), 2)


@lru_cache(maxsize=64)
def corner_weight(n: int, m: int) -> np.ndarray:
    """Per ring point: 1 at corners falling linearly to 0 at mid-edge (for 起翘 lifts)."""
    f = np.arange(m + 1) / (m + 1)
    w = np.clip(1.0 - 3.0 * np.minimum(f, 1.0 - f), 0.0, 1.0)
    return np.tile(w, n)


@lru_cache(maxsize=256)
def _bands(k: int, n: int) -> np.ndarray:
    """Two outward triangles per quad between consecutive rings (k rings of n points)."""
    i = np.arange(n)
    j = (i + 1) % n
    a = (np.arange(k - 1) * n)[:, None]
    b = a + n
    t1 = np.stack([a + i, a + j, b + j], axis=-1)
    t2 = np.stack([a + i, b + j, b + i], axis=-1)
    return np.concatenate([t1, t2], axis=1).reshape(-1, 3)


def chain_solid(
    xy: np.ndarray,
    z: np.ndarray,
    band_codes: np.ndarray,
    bottom_code: int = SURFACE_GROUND,
    top_code: int = SURFACE_ROOF,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Build a closed solid from k rings of n points, bottom up.

    Parameters
    ----------
    xy : ndarray (k, n, 2)
        Counter-clockwise rings.
    z : ndarray (k, n)
        Heights of the ring points.
    band_codes : ndarray (k - 1,)
        Surface code of the band between ring r and r + 1.
    bottom_code, top_code : int
        Codes of the bottom cap and of the top cap (the top cap is made only when the
        last ring did not collapse).

    Returns
    -------
    positions, triangles, codes
        Unwelded; pass them through :func:`mesh.assemble`.
    """
    k, n = z.shape
    pos = np.zeros((k * n + 2, 3))
    pos[: k * n, :2] = xy.reshape(-1, 2)
    pos[: k * n, 2] = z.reshape(-1)
    j = _neighbours(n)[1]
    bottom, top_fan = _fans(k, n)
    pos[k * n] = [*xy[0].mean(axis=0), z[0].mean()]
    tris = [_bands(k, n), bottom]
    codes = [np.repeat(np.asarray(band_codes, dtype=np.uint8), 2 * n)]
    codes.append(np.full(n, bottom_code, dtype=np.uint8))
    top = xy[-1]
    area = 0.5 * np.sum(top[:, 0] * top[j, 1] - top[j, 0] * top[:, 1])
    if area > 1e-6:
        pos[k * n + 1] = [*top.mean(axis=0), z[-1].mean()]
        tris.append(top_fan)
        codes.append(np.full(n, top_code, dtype=np.uint8))
    return pos, np.concatenate(tris), np.concatenate(codes)


@lru_cache(maxsize=256)
def _fans(k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The bottom cap (down, to centre k n) and top cap (up, to centre k n + 1) fans."""
    i = np.arange(n)
    j = _neighbours(n)[1]
    last = (k - 1) * n
    bottom = np.column_stack([np.full(n, k * n), j, i])
    top = np.column_stack([np.full(n, k * n + 1), last + i, last + j])
    bottom.flags.writeable = False
    top.flags.writeable = False
    return bottom, top
