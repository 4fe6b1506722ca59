"""What the engines share: the spec, per-form defaults, prisms and mitred outlines."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely

from . import chinese, western
from .forms import RoofForm

F = RoofForm
#: forms built around a centre (an apex) rather than along a ridge
CENTRAL = frozenset(
    {F.PYRAMIDAL, F.CONE, F.DOME, F.CUANJIAN, F.CUANJIAN_4, F.CUANJIAN_6, F.CUANJIAN_8}
    | {F.CUANJIAN_ROUND}
)
#: forms with gables: on a skeleton, the ends of wings become gables
GABLE_FAMILY = frozenset(
    {F.GABLED, F.HALF_HIPPED, F.GAMBREL, F.ROUND, F.SHED, F.SAWTOOTH}
    | {F.YINGSHAN, F.XUANSHAN, F.JUANPENG}
)
#: thickness of the roof slab at the eaves (the fascia), m
SLAB = {"western": 0.15, "chinese": 0.25}
#: coordinate grid of footprints and outlines, m
GRID = 1e-4
#: vertices turning by less than this (degrees) are dropped when the skeleton fails
STRAIGHTEN_DEGREES = 2.0
#: smallest overhang on an edge of a roof that overhangs (a 硬山 gable's 博缝), m
MIN_OVERHANG = 0.05


class RoofGeometryError(RuntimeError):
    """An engine could not build this form on this footprint (the fallback chain goes on)."""


@dataclass(frozen=True)
class RoofSpec:
    """What to build on a footprint.

    Attributes
    ----------
    form : RoofForm
    eave_height : float
        Wall top above the ground (m); with a podium still measured from the ground.
    roof_height : float or None
        Ridge (highest point) above the eave; None takes the form's pitch or 举架.
    overhang : float or None
        Eave overhang (出檐), m; None takes the form's default (:func:`default_overhang`).
    double_eave : bool
        重檐 (also implied by the 重檐 forms).
    podium_height : float
        台基 height, m (0: none).
    orientation : float or None
        Ridge azimuth in degrees clockwise from north; None: along the longer side.
    """

    form: RoofForm
    eave_height: float
    roof_height: float | None = None
    overhang: float | None = None
    double_eave: bool = False
    podium_height: float = 0.0
    orientation: float | None = None

    @property
    def is_double(self) -> bool:
        """Whether the roof has two eaves."""
        return self.double_eave or self.form.double_eave


def default_overhang(form: RoofForm, eave_height: float) -> float:
    """出檐 by form: 3/10 of the column height for Chinese forms (清式), else 0.4 m.

    Parameters
    ----------
    form : RoofForm
    eave_height : float
        Wall (column) height, m.

    Returns
    -------
    float
        Metres; 0 for flat roofs.
    """
    if form is F.FLAT:
        return 0.0
    if form.family == "chinese":
        return min(max(0.3 * eave_height, 0.6), 2.0)
    return 0.4


def natural_top(form: RoofForm, run: float, ov: float, e: float, double: bool = False) -> float:
    """Ridge height when none is given: the form's pitch, or the natural 举架 rise.

    Parameters
    ----------
    form : RoofForm
    run : float
        Horizontal distance from the wall line to the ridge, m.
    ov : float
        Overhang, m.
    e : float
        Eave height.
    double : bool
        A 重檐 roof rises 1.4 times as high (two tiers).
    """
    if form.family == "chinese":
        t = SLAB["chinese"] if ov > 0 else 0.0
        return e + t + chinese.natural_rise(run, ov) * (1.4 if double else 1.0)
    if form in (F.SHED, F.SAWTOOTH):
        run *= 2
    return e + run * math.tan(math.radians(western.PITCH.get(form, 30.0)))


def podium_margin(ov: float) -> float:
    """How far the 台基 reaches beyond the walls: 3/4 of the overhang plus 0.4 m."""
    return 0.75 * ov + 0.4


def podium_outline(poly: shapely.Polygon, ov: float) -> shapely.Polygon:
    """The 台基's outline: the footprint grown by :func:`podium_margin` (courtyards
    narrower than twice the margin fill up; a prism does not mind)."""
    out = poly.buffer(podium_margin(ov), join_style="mitre", mitre_limit=5.0)
    return shapely.orient_polygons(shapely.set_precision(out, GRID))


def half_width(poly: shapely.Polygon) -> float:
    """Half the short side of the footprint's oriented bounding box."""
    box = np.asarray(shapely.oriented_envelope(poly).exterior.coords)
    sides = np.linalg.norm(np.diff(box[:3], axis=0), axis=1)
    return 0.5 * float(sides.min())


def outline(poly: shapely.Polygon, offset: float) -> shapely.Polygon:
    """The footprint moved outward (inward when negative) by a mitred offset, same shape."""
    if offset == 0:
        return poly
    out = shapely.set_precision(poly.buffer(offset, join_style="mitre", mitre_limit=5.0), GRID)
    if (
        not isinstance(out, shapely.Polygon)
        or len(out.interiors) != len(poly.interiors)
        or len(out.exterior.coords) != len(poly.exterior.coords)
    ):
        raise RoofGeometryError("the offset outline changes the footprint's shape")
    return shapely.orient_polygons(out)


def straighten(poly: shapely.Polygon, degrees: float = STRAIGHTEN_DEGREES) -> shapely.Polygon:
    """The footprint without the vertices where it turns by less than ``degrees``.

    Nearly straight vertices (common in surveyed and OSM outlines) make CGAL drop
    skeleton faces; removing them moves the walls by a few centimetres at most for
    short edges.
    """

    def ring(coords: np.ndarray) -> np.ndarray:
        xy = coords[:-1]
        while len(xy) > 3:
            a = xy - xy[np.r_[-1, 0 : len(xy) - 1]]
            b = xy[np.r_[1 : len(xy), 0]] - xy
            turn = np.degrees(
                np.abs(np.arctan2(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0], (a * b).sum(axis=1)))
            )
            i = int(np.argmin(turn))
            if turn[i] >= degrees:
                break
            xy = np.delete(xy, i, axis=0)
        return xy

    out = shapely.Polygon(
        ring(np.asarray(poly.exterior.coords)), [ring(np.asarray(r.coords)) for r in poly.interiors]
    )
    return shapely.orient_polygons(out) if out.is_valid else poly


def prism_sides(poly: shapely.Polygon, z0: float, z1: float, code: int) -> list[tuple]:
    """Vertical walls of every ring of ``poly`` from z0 to z1, facing outward."""
    parts = []
    for k, ring in enumerate([poly.exterior, *poly.interiors]):
        xy = np.asarray(ring.coords)[:-1]
        if (k == 0) != ring.is_ccw:  # walls face out of the exterior and into courtyards
            xy = xy[::-1]
        n = len(xy)
        pos = np.empty((2 * n, 3))
        pos[:n, :2] = xy
        pos[n:, :2] = xy
        pos[:n, 2] = z0
        pos[n:, 2] = z1
        parts.append((pos, _wall_triangles(n), code))
    return parts


@lru_cache(maxsize=256)
def _wall_triangles(n: int) -> np.ndarray:
    """Two outward triangles per edge between a ring of n points and its copy above."""
    i = np.arange(n)
    j = (i + 1) % n
    tris = np.concatenate([np.column_stack([i, j, n + j]), np.column_stack([i, n + j, n + i])])
    tris.flags.writeable = False
    return tris


def cap(poly: shapely.Polygon, z: float, down: bool, code: int) -> tuple:
    """A horizontal face over ``poly`` (holes kept) at height z, facing down or up."""
    tri = shapely.constrained_delaunay_triangles(poly)
    coords = shapely.get_coordinates(shapely.get_exterior_ring(shapely.get_parts(tri)))
    coords = coords.reshape(-1, 4, 2)[:, :3]
    a, b, c = coords[:, 0], coords[:, 1], coords[:, 2]
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    flip = (cross > 0) == down
    coords[flip] = coords[flip][:, ::-1]
    pos = np.column_stack([coords.reshape(-1, 2), np.full(len(coords) * 3, z)])
    return pos, np.arange(len(pos)).reshape(-1, 3), code


def prism(poly: shapely.Polygon, z0: float, z1: float, code: int) -> list[tuple]:
    """A closed prism over ``poly`` from z0 to z1."""
    return [
        *prism_sides(poly, z0, z1, code),
        cap(poly, z0, down=True, code=code),
        cap(poly, z1, down=False, code=code),
    ]
