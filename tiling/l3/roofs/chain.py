"""Buildings on a rectangle or a convex footprint as one ring-chain solid (see :mod:`rings`).

Directional forms (gabled, hipped, 硬山, 歇山, 庑殿...) inset each rectangle edge by its
class profile (side/end); central forms (pyramid, dome, cone, 攒尖) scale the eave ring
towards the centre. The chain: [podium,] ground, wall top, [lower eave of a 重檐 and the
upper storey,] eave soffit, fascia, one ring per break of the roof profile.
"""

from __future__ import annotations

import math

import numpy as np
import shapely

from . import chinese, western
from .common import (
    MIN_OVERHANG,
    SLAB,
    F,
    RoofGeometryError,
    RoofSpec,
    podium_margin,
)
from .forms import RoofForm
from .mesh import (
    SURFACE_EAVE_UNDERSIDE,
    SURFACE_FASCIA,
    SURFACE_GABLE,
    SURFACE_PODIUM,
    SURFACE_ROOF,
    SURFACE_WALL,
)
from .rings import _neighbours, chain_solid, corner_weight, offset_corners, subdivide


class _Chain:
    """Rings bottom-up (corners, z, corner lift) and the codes of the bands between."""

    def __init__(self, subdiv: int) -> None:
        self.m = subdiv
        self.rings: list[tuple[np.ndarray, float, float]] = []
        self.codes: list[int] = []

    def add(self, corners: np.ndarray, z: float, code: int = SURFACE_WALL, lift: float = 0.0):
        if self.rings:
            self.codes.append(code)
        self.rings.append((corners, z, lift))

    def solid(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        corners = np.stack([c for c, _, _ in self.rings])
        z = np.array([z for _, z, _ in self.rings])
        lift = np.array([lift for _, _, lift in self.rings])
        w = corner_weight(corners.shape[1], self.m)
        return chain_solid(subdivide(corners, self.m), z[:, None] + lift[:, None] * w, self.codes)


def edge_classes(corners: np.ndarray, orientation: float | None) -> tuple[np.ndarray, float, float]:
    """'side'/'end' per rectangle edge (sides run along the ridge), half width, half length."""
    d = corners[[1, 2, 3, 0]] - corners
    length = np.sqrt((d * d).sum(axis=1))
    if orientation is None:
        along = 0 if length[0] >= length[1] else 1
    else:
        a = math.radians(orientation)
        axis = np.array([math.sin(a), math.cos(a)])
        along = int(np.argmax(np.abs(d[:2] @ axis) / length[:2]))
    cls = np.array(["end"] * 4, dtype=object)
    cls[[along, along + 2]] = "side"
    return cls, 0.5 * float(length[(along + 1) % 2]), 0.5 * float(length[along])


def _levels(corners: np.ndarray, cls: np.ndarray, profiles: dict) -> tuple[np.ndarray, np.ndarray]:
    """Rings (k, n, 2) and heights (k,) at every break of the class profiles."""
    z = np.unique(np.concatenate([p[1] for p in profiles.values()]))
    z = z[np.concatenate([[True], np.diff(z) > 1e-6])]
    # one interpolation per class, not per edge
    per_class = {c: np.interp(z, profiles[c][1], profiles[c][0]) for c in set(cls.tolist())}
    inset = np.stack([per_class[c] for c in cls.tolist()], axis=1)
    rings = offset_corners(corners, inset)
    _check_rings(corners, rings)
    return rings, z


def _check_rings(corners: np.ndarray, rings: np.ndarray) -> None:
    """Inset rings must not turn inside out (a reversed edge means a skipped event)."""
    nxt = _neighbours(len(corners))[1]
    d0 = corners[nxt] - corners
    d = rings[:, nxt] - rings
    if np.any(np.einsum("knj,nj->kn", d, d0) < -1e-6):
        raise RoofGeometryError("an inset ring turned inside out")


def _apothem(corners: np.ndarray) -> float:
    poly = shapely.Polygon(corners)
    return 2.0 * poly.area / poly.length


def _central_levels(corners, form, ov, z0, z1) -> tuple[np.ndarray, np.ndarray]:
    """Rings scaled towards the centre (pyramid, cone, dome, 攒尖) from the drip ring."""
    drip = offset_corners(corners, np.full(len(corners), -ov))
    poly = shapely.Polygon(corners)  # one polygon for the centre and the apothem
    c = np.asarray(poly.centroid.coords)[0]
    run = 2.0 * poly.area / poly.length  # _apothem
    if form.family == "chinese":
        x, z = chinese.jujia(run, ov)
        z = z0 + z * ((z1 - z0) / z[-1])
    elif form is F.DOME:
        x, z = western.western_profiles(F.DOME, run, run, ov, ov, z0, z1)["side"]
    else:
        x, z = np.array([-ov, run]), np.array([z0, z1])
    s = 1.0 - (x + ov) / (run + ov)
    return c + s[:, None, None] * (drip - c), z


def ring_building(
    corners: np.ndarray, form: RoofForm, spec: RoofSpec, ov: float, z1: float, central: bool
) -> list[tuple]:
    """The whole building as one ring-chain solid.

    Parameters
    ----------
    corners : ndarray (n, 2)
        CCW footprint corners: a rectangle, or any convex polygon when ``central``.
    form : RoofForm
        Single-eave form (``spec`` says whether the eave is double).
    spec : RoofSpec
    ov : float
        Overhang, m.
    z1 : float
        Ridge height.
    """
    chinese_form = form.family == "chinese"
    e = spec.eave_height
    n = len(corners)
    chain = _Chain(2 if chinese_form else 0)
    t = min(SLAB[form.family], 0.3 * (z1 - e)) if ov > 0 else 0.0
    if spec.podium_height > 0:
        pod = offset_corners(corners, np.full(n, -podium_margin(ov)))
        chain.add(pod, 0.0)
        chain.add(pod, spec.podium_height, SURFACE_PODIUM)
        chain.add(corners, spec.podium_height, SURFACE_PODIUM)
    else:
        chain.add(corners, 0.0)
    if central:
        cls, hw, hl = np.array(["side"] * n, dtype=object), 0.0, 0.0
    else:
        cls, hw, hl = edge_classes(corners, spec.orientation)
    base, z_wall, code = corners, e, SURFACE_WALL
    if spec.is_double:
        half = _apothem(corners) if central else min(hw, hl)
        d = min(max(0.4 * half, 0.8), 3.0)
        if half - d < 1.0:
            raise RoofGeometryError("too small for a double eave")
        base, z_wall = _lower_eave(chain, corners, d, ov, e, z1, t, chinese_form)
        code, ov, hw, hl = SURFACE_GABLE, 0.85 * ov, hw - d, hl - d
    chain.add(base, z_wall, code)
    z0 = z_wall + t
    if central:
        rings, z = _central_levels(base, form, ov, z0, z1)
    else:
        ov_edge = _edge_overhang(form, cls, ov)
        ov_s, ov_e = float(ov_edge[cls == "side"][0]), float(ov_edge[cls == "end"][0])
        maker = chinese.chinese_profiles if chinese_form else western.western_profiles
        profiles = maker(form, hw, hl, ov_s, ov_e, z0, z1)
        if form in (F.SHED, F.SAWTOOTH):
            cls = cls.copy()
            first = int(np.flatnonzero(cls == "side")[0])
            cls[first], cls[(first + 2) % 4] = "low", "high"
        rings, z = _levels(base, cls, profiles)
    if ov > 0:
        # 起翘: the corners of Chinese eaves turn up
        lift = min(0.35 * ov, 0.8 * (z[1] - z[0])) if chinese_form else 0.0
        chain.add(rings[0], z_wall, SURFACE_EAVE_UNDERSIDE, lift)
        chain.add(rings[0], z[0], SURFACE_FASCIA, lift)
    for k in range(1, len(z)):
        chain.add(rings[k], float(z[k]), SURFACE_ROOF)
    return [chain.solid()]


def _lower_eave(chain, corners, d, ov, e, z1, t, chinese_form) -> tuple[np.ndarray, float]:
    """重檐: the lower eave roof all round, up to the walls of the upper storey (inset d)."""
    n = len(corners)
    chain.add(corners, e, SURFACE_WALL)
    drip = offset_corners(corners, np.full(n, -ov))
    if ov > 0:
        lift = min(0.35 * ov, 0.5) if chinese_form else 0.0
        chain.add(drip, e, SURFACE_EAVE_UNDERSIDE, lift)
        chain.add(drip, e + t, SURFACE_FASCIA, lift)
    z_step = e + t + 0.5 * (d + ov)
    upper = offset_corners(corners, np.full(n, d))
    chain.add(upper, z_step, SURFACE_ROOF)
    e2 = max(z_step + 0.8, e + 0.45 * (z1 - e))
    if z1 - e2 < 1.0:
        raise RoofGeometryError("the roof height leaves no room for a second eave")
    return upper, e2


def _edge_overhang(form: RoofForm, cls: np.ndarray, ov: float) -> np.ndarray:
    if ov <= 0:
        return np.zeros(len(cls))
    out = np.full(len(cls), ov)
    if form in (F.YINGSHAN, F.JUANPENG):
        out[cls == "end"] = MIN_OVERHANG  # 硬山: the gable walls rise flush (博缝 only)
    return np.maximum(out, MIN_OVERHANG)
