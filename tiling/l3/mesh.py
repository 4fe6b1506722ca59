"""Building meshes → textured primitives of one tile.

Every triangle of a :class:`tiling.l3.roofs.BuildingMesh` gets its material from its
surface (wall, roof, eave underside, podium) and the building's look
(:class:`Look`); texture coordinates are planar per triangle: along the face's
horizontal direction (``u``) and up the face (``v``, from the ground for walls so the
storeys line up), in metres divided by the texture's repeat. Roofs cut from the
orthophoto map their plan position into their atlas piece instead.

Corners with every attribute equal are welded (:func:`tiling.l3.glb.weld`), so flat
faces share vertices and the tile stays small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tiling.l3.glb import Material, Primitive, weld
from tiling.l3.roofs.mesh import (
    SURFACE_EAVE_UNDERSIDE,
    SURFACE_FASCIA,
    SURFACE_GABLE,
    SURFACE_GROUND,
    SURFACE_PODIUM,
    SURFACE_WALL,
)
from tiling.l3.textures import BAY_M, FACADES, ROOF_MATERIALS, ROOF_REPEAT_M

#: surfaces dressed as facades, as eaves; ground faces are never seen and are dropped
FACADE_SURFACES = (SURFACE_WALL, SURFACE_GABLE)
EAVE_SURFACES = (SURFACE_EAVE_UNDERSIDE, SURFACE_FASCIA)


def surface_mask(*codes: int) -> np.ndarray:
    """A lookup table: ``surface_mask(a, b)[surface]`` is True for codes a and b."""
    lut = np.zeros(256, dtype=bool)
    lut[list(codes)] = True
    return lut


FACADE = surface_mask(*FACADE_SURFACES)
EAVE = surface_mask(*EAVE_SURFACES)
EAVE_COLOUR = (0.42, 0.24, 0.18, 1.0)  # timber under the eaves (椽, painted)


@dataclass(frozen=True)
class Look:
    """How one building is dressed.

    Attributes
    ----------
    facade : str
        One of :data:`tiling.l3.textures.FACADES`.
    storey : float
        Metres one facade repeat covers vertically (a storey; the eave for temples).
    roof : str
        ``tile``, ``glazed``, ``concrete`` or ``ortho`` (cut from the orthophoto).
    tint : tuple of int
        sRGB roof colour multiplied into the roof material (white: none).
    """

    facade: str
    storey: float
    roof: str
    tint: tuple[int, int, int] = (255, 255, 255)


@dataclass
class Corners:
    """Per-corner arrays of one building (three corners per triangle)."""

    local: np.ndarray  # (k, 3) building-local metres (for texture coordinates)
    normal: np.ndarray  # (k, 3)
    surface: np.ndarray  # (k,) uint8


def corners(
    positions: np.ndarray, triangles: np.ndarray, surface: np.ndarray, skirt: float
) -> Corners:
    """Unweld a building mesh: three corners per triangle with the face normal.

    Vertices on the ground (z ≤ 1 mm) are lowered by ``skirt`` (the terrain's error,
    as the L2 walls are), so no wall floats above the simplified terrain; ground faces
    (never seen) are dropped.
    """
    seen = surface != SURFACE_GROUND
    triangles, surface = triangles[seen], surface[seen]
    p = positions[triangles.reshape(-1)].astype(np.float64)
    if skirt > 0:
        p[p[:, 2] <= 1e-3, 2] -= skirt
    tri = p.reshape(-1, 3, 3)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(n, axis=1, keepdims=True)
    n = np.divide(n, length, out=np.zeros_like(n), where=length > 0)
    return Corners(p, np.repeat(n, 3, axis=0), np.repeat(surface.astype(np.uint8), 3))


def corners_many(
    meshes: list[tuple[np.ndarray, np.ndarray, np.ndarray]], owner: np.ndarray, n: int, skirt: float
) -> list[Corners | None]:
    """:func:`corners` of many meshes at once, joined per building.

    Parameters
    ----------
    meshes : list of (positions, triangles, surface)
        Building meshes (a building of several footprint parts has several).
    owner : ndarray of int
        The building of each mesh (non-decreasing).
    n : int
        Number of buildings; one without a mesh gets None.
    skirt : float
        As in :func:`corners`.

    Returns
    -------
    list of Corners or None
        Per building, the corners of its meshes in their order (views of shared arrays).
    """
    out: list[Corners | None] = [None] * n
    if not meshes:
        return out
    sizes = np.array([len(m[0]) for m in meshes])
    base = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pos = np.concatenate([m[0] for m in meshes]).astype(np.float64)
    tri = np.concatenate([m[1].astype(np.int64) + b for m, b in zip(meshes, base, strict=True)])
    surface = np.concatenate([m[2] for m in meshes]).astype(np.uint8)
    tri_owner = np.repeat(owner, [len(m[1]) for m in meshes])
    seen = surface != SURFACE_GROUND
    tri, surface, tri_owner = tri[seen], surface[seen], tri_owner[seen]
    p = pos[tri.reshape(-1)]
    if skirt > 0:
        p[p[:, 2] <= 1e-3, 2] -= skirt
    t = p.reshape(-1, 3, 3)
    e1, e2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    nrm = np.column_stack(
        [
            e1[:, 1] * e2[:, 2] - e1[:, 2] * e2[:, 1],
            e1[:, 2] * e2[:, 0] - e1[:, 0] * e2[:, 2],
            e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0],
        ]
    )
    length = np.sqrt((nrm * nrm).sum(axis=1))[:, None]
    nrm = np.divide(nrm, length, out=np.zeros_like(nrm), where=length > 0)
    normal = np.repeat(nrm, 3, axis=0)
    surf = np.repeat(surface, 3)
    counts = np.bincount(tri_owner, minlength=n) * 3
    ends = np.cumsum(counts)
    for i in np.unique(owner).tolist():
        a, b = ends[i] - counts[i], ends[i]
        out[i] = Corners(p[a:b], normal[a:b], surf[a:b])
    return out


def planar_uv(p: np.ndarray, n: np.ndarray, su: np.ndarray, sv: np.ndarray) -> np.ndarray:
    """Texture coordinates along the face (u: horizontal, v: up the face from z = 0).

    ``su`` and ``sv`` (scalars or per corner) are the metres one repeat covers.
    """
    tx, ty = -n[:, 1], n[:, 0]
    tl = np.hypot(tx, ty)
    flat = tl < 1e-6
    tx = np.where(flat, 1.0, tx / np.where(flat, 1.0, tl))
    ty = np.where(flat, 0.0, ty / np.where(flat, 1.0, tl))
    # b = n × t (t has no z): up the face
    bx, by, bz = -n[:, 2] * ty, n[:, 2] * tx, n[:, 0] * ty - n[:, 1] * tx
    u = (p[:, 0] * tx + p[:, 1] * ty) / su
    v = 1.0 - (p[:, 0] * bx + p[:, 1] * by + p[:, 2] * bz) / sv
    return np.column_stack([u, v]).astype(np.float32)


_FACADE_CODE = {f: k for k, f in enumerate(FACADES)}
_ROOF_CODE = {r: k for k, r in enumerate(ROOF_MATERIALS)}
_ORTHO = len(ROOF_MATERIALS)


class TileMesher:
    """Collects the corners of a tile's buildings and emits one primitive per material.

    Buildings are only stacked by :meth:`add`; texture coordinates, colours and the
    split by material are computed for the whole tile at once in :meth:`primitives`.
    """

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []
        self.looks: list[tuple[int, float, int, tuple[int, int, int]]] = []
        self.ortho_uv: list[np.ndarray] = []

    def add(
        self,
        c: Corners,
        offset: np.ndarray,
        feature: int,
        look: Look,
        ortho_uv: np.ndarray | None = None,
    ) -> None:
        """Add one building (``offset``: its local origin in the tile frame).

        ``ortho_uv`` holds the atlas texture coordinates of its roof corners (in the
        order of the roof corners) when ``look.roof == "ortho"``.
        """
        roof = look.roof if look.roof in _ROOF_CODE else "tile"
        code = _ORTHO if ortho_uv is not None else _ROOF_CODE[roof]
        if ortho_uv is not None:
            self.ortho_uv.append(ortho_uv)
        self.parts.append((c.local, c.normal, c.surface, offset, feature))
        self.looks.append((_FACADE_CODE[look.facade], look.storey, code, look.tint))

    def primitives(self, materials: dict[str, Material]) -> tuple[list[Primitive], list[Material]]:
        """One welded primitive per material used, and the materials in their order."""
        counts = np.array([len(p[0]) for p in self.parts])
        local = np.concatenate([p[0] for p in self.parts])
        normal = np.concatenate([p[1] for p in self.parts])
        surface = np.concatenate([p[2] for p in self.parts])
        pos = local + np.repeat(np.array([p[3] for p in self.parts]), counts, axis=0)
        fid = np.repeat(np.array([p[4] for p in self.parts], dtype=np.uint32), counts)
        facade = np.repeat(np.array([lk[0] for lk in self.looks]), counts)
        storey = np.repeat(np.array([lk[1] for lk in self.looks]), counts)
        roof_code = np.repeat(np.array([lk[2] for lk in self.looks]), counts)
        tint = np.repeat(np.array([[*lk[3], 255] for lk in self.looks], dtype=np.uint8), counts, 0)
        wall, eave = FACADE[surface], EAVE[surface]
        podium = surface == SURFACE_PODIUM
        roof = ~(wall | podium | eave)  # roofs, and any surface code added later
        groups: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = {}
        for name, k in _FACADE_CODE.items():
            m = wall & (facade == k)
            bay = BAY_M[name]
            groups[f"facade:{name}"] = (m, planar_uv(local[m], normal[m], bay, storey[m]), None)
        m = podium
        stone = BAY_M["stone"]
        groups["facade:stone"] = (m, planar_uv(local[m], normal[m], stone, stone), None)
        groups["eave"] = (eave, None, None)
        for name, k in _ROOF_CODE.items():
            m = roof & (roof_code == k)
            rep = ROOF_REPEAT_M[name]
            groups[f"roof:{name}"] = (m, planar_uv(local[m], normal[m], rep, rep), tint[m])
        m = roof & (roof_code == _ORTHO)
        if m.any():
            groups["roof:ortho"] = (m, np.concatenate(self.ortho_uv), None)
        prims, used = [], []
        for key in sorted(groups):
            m, uv, rgba = groups[key]
            if not m.any():
                continue
            p, n, f, uv, rgba, idx = weld(pos[m], normal[m], fid[m], uv, rgba)
            used.append(materials[key])
            prims.append(Primitive(p, n.astype(np.float32), f, idx, len(used) - 1, uv, rgba))
        return prims, used


def eave_material() -> Material:
    """The untextured material of eave undersides."""
    return Material("eave", EAVE_COLOUR, None, roughness=0.95)
