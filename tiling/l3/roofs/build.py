"""Build one building: the fallback chain, the validity check, the public entry point.

Engines, in the order tried (the **fallback chain**; every step after the first, and
every approximation, is recorded in :attr:`BuildingMesh.fallbacks`):

1. the form itself: a **ring chain** (:mod:`chain`) on a rectangle (directional forms)
   or a convex footprint (central forms); on any other footprint the **straight
   skeleton** (:mod:`arbitrary`) with the form's profile and gables (for 重檐: the
   double eave on the skeleton first, then the single eave);
2. the same on the footprint **straightened** (vertices turning by under 2° dropped:
   CGAL loses skeleton faces at nearly straight vertices);
3. the straight-skeleton **hip roof** with the overhang;
4. the straight-skeleton hip roof **without overhang**;
5. on a convex footprint, a **pyramidal roof** (ring chain, no skeleton);
6. a **flat roof** (a prism).

Each result is checked (closed, consistently wound, no degenerate triangle, the ridge
where asked) before it is accepted.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import numpy as np
import shapely

from cim.errors import InputDataError

from .arbitrary import skeleton_building, skeleton_double
from .chain import ring_building
from .common import (
    CENTRAL,
    GRID,
    STRAIGHTEN_DEGREES,
    F,
    RoofGeometryError,
    RoofSpec,
    cap,
    default_overhang,
    half_width,
    natural_top,
    podium_outline,
    prism,
    prism_sides,
    straighten,
)
from .forms import RoofForm
from .mesh import (
    SURFACE_GABLE,
    SURFACE_GROUND,
    SURFACE_PODIUM,
    SURFACE_ROOF,
    SURFACE_WALL,
    BuildingMesh,
    assemble,
    triangle_normals,
)

log = logging.getLogger(__name__)

#: largest ridge error accepted by the validity check, m
HEIGHT_TOLERANCE = 0.005
#: smallest triangle accepted by the validity check, m²
MIN_TRIANGLE_AREA = 1e-6

#: forms the straight skeleton only approximates (recorded as a fallback)
APPROXIMATED = {
    F.SHED: "a gabled roof",
    F.SAWTOOTH: "a gabled roof",
    F.HALF_HIPPED: "a gabled roof",
    F.XIESHAN: "a hip roof with the 举架 profile",
    F.PYRAMIDAL: "a hip roof",
    F.CONE: "a hip roof",
    F.DOME: "a rounded hip roof",
    F.CUANJIAN: "a hip roof with the 举架 profile",
    F.CUANJIAN_4: "a hip roof with the 举架 profile",
    F.CUANJIAN_6: "a hip roof with the 举架 profile",
    F.CUANJIAN_8: "a hip roof with the 举架 profile",
    F.CUANJIAN_ROUND: "a hip roof with the 举架 profile",
}


def _prepare(footprint: shapely.Polygon, fallbacks: list[str]) -> shapely.Polygon:
    if not isinstance(footprint, shapely.Polygon | shapely.MultiPolygon) or footprint.is_empty:
        kind = getattr(footprint, "geom_type", type(footprint).__name__)
        raise InputDataError(f"a building footprint must be a polygon, not {kind}")
    poly = footprint
    if not poly.is_valid:
        poly = shapely.make_valid(poly)
        fallbacks.append("invalid footprint repaired (make_valid)")
    if not isinstance(poly, shapely.Polygon):
        parts = [g for g in shapely.get_parts(poly) if isinstance(g, shapely.Polygon)]
        if not parts:
            raise InputDataError("the footprint has no area")
        poly = max(parts, key=lambda g: g.area)
        fallbacks.append("multi-part footprint: the largest part kept")
    poly = shapely.orient_polygons(shapely.simplify(poly, 0.005))
    if poly.area < 1.0:
        raise InputDataError(f"the footprint is too small for a building ({poly.area:.2f} m²)")
    return poly


def _rectangle(poly: shapely.Polygon) -> np.ndarray | None:
    """The footprint's rectangle (4 CCW corners) when it is one within 5 cm, else None."""
    if poly.interiors or len(poly.exterior.coords) != 5:
        return None
    box = shapely.oriented_envelope(poly)
    if poly.hausdorff_distance(box) > 0.05:
        return None
    return np.asarray(shapely.orient_polygons(box).exterior.coords)[:-1]


def _half_side(rect: np.ndarray) -> float:
    # plain floats: numpy's per-call overhead dominates on two 2-vectors
    (x0, y0), (x1, y1), (x2, y2) = rect[:3].tolist()
    a = math.sqrt((x1 - x0) * (x1 - x0) + (y1 - y0) * (y1 - y0))
    b = math.sqrt((x2 - x1) * (x2 - x1) + (y2 - y1) * (y2 - y1))
    return 0.5 * min(a, b)


def _convex(poly: shapely.Polygon) -> np.ndarray | None:
    if poly.interiors or poly.area < 0.999 * poly.convex_hull.area:
        return None
    return np.asarray(poly.exterior.coords)[:-1]


def _attempts(poly: shapely.Polygon, form: RoofForm, spec: RoofSpec, ov: float):
    """(description, builder) in fallback-chain order; the first is the form itself.

    A builder returns (parts, ridge height it aimed at).
    """
    e, h = spec.eave_height, spec.roof_height
    label = f"{'重檐' if spec.is_double else ''}{form.value}"
    convex = _convex(poly) if form in CENTRAL else None
    rect = _rectangle(poly) if form not in CENTRAL else None
    if convex is not None or rect is not None:
        corners = convex if convex is not None else rect
        if h is not None:
            z1 = e + h
        else:
            half = _half_side(rect) if rect is not None else half_width(poly)
            z1 = natural_top(form, half, ov, e, spec.is_double)
        yield label, lambda: (ring_building(corners, form, spec, ov, z1, convex is not None), z1)
    z1 = None if h is None else e + h
    # a 0.1 mm grid: CGAL's skeleton fails on some float-noisy (e.g. rotated) outlines
    snapped = shapely.set_precision(poly, GRID)
    if isinstance(snapped, shapely.Polygon) and snapped.area > 0.99 * poly.area:
        poly = shapely.orient_polygons(snapped)
    on_skel = f"{label} on a straight skeleton"
    if form in APPROXIMATED:
        on_skel += f" (approximated by {APPROXIMATED[form]})"
    yield from _form_steps(poly, form, spec, ov, z1, on_skel)
    straight = straighten(poly)
    if not straight.equals(poly):
        poly = straight
        note = f" on the footprint straightened (turns under {STRAIGHTEN_DEGREES:g}° dropped)"
        on_skel += note
        yield from _form_steps(poly, form, spec, ov, z1, on_skel)
    else:
        note = ""
    if form is not F.HIPPED:
        yield (
            "straight-skeleton hip roof" + note,
            lambda: skeleton_building(poly, F.HIPPED, spec, ov, e, z1)[:2],
        )
    if ov > 0:
        yield (
            "straight-skeleton hip roof without overhang" + note,
            lambda: skeleton_building(poly, F.HIPPED, spec, 0.0, e, z1)[:2],
        )
    hull = _convex(poly)
    if hull is not None and form not in CENTRAL:
        top = e + h if h is not None else natural_top(F.PYRAMIDAL, half_width(poly), ov, e)
        single = replace(spec, form=F.PYRAMIDAL, double_eave=False)
        yield (
            "pyramidal roof (convex footprint)",
            lambda: (ring_building(hull, F.PYRAMIDAL, single, ov, top, True), top),
        )


def _form_steps(poly, form, spec, ov, z1, on_skel: str):
    """The form on a straight skeleton: a 重檐 first with both eaves, then with one."""
    if spec.is_double:
        yield on_skel, lambda: skeleton_double(poly, form, spec, ov, z1)
        on_skel = on_skel.replace(f"重檐{form.value}", f"single-eave {form.value}")
    yield on_skel, lambda: skeleton_building(poly, form, spec, ov, spec.eave_height, z1)[:2]


def _check(pos: np.ndarray, tris: np.ndarray, z1: float) -> np.ndarray:
    """Closed and consistently wound (each directed edge once, and its reverse once), no
    degenerate triangle, the ridge where asked. Returns the triangles' normals."""
    t = tris.astype(np.int64)
    a, b = t.ravel(), t[:, [1, 2, 0]].ravel()
    n = len(pos)
    fwd = np.sort(a * n + b)
    if np.any(fwd[1:] == fwd[:-1]) or not np.array_equal(fwd, np.sort(b * n + a)):
        raise RoofGeometryError("the mesh is not closed and consistently wound")
    normals = triangle_normals(pos, tris)
    twice_area = np.sqrt((normals * normals).sum(axis=1))
    if twice_area.min() < 2 * MIN_TRIANGLE_AREA:
        raise RoofGeometryError("degenerate triangles")
    top = float(pos[:, 2].max())
    if abs(top - z1) > HEIGHT_TOLERANCE:
        raise RoofGeometryError(f"ridge at {top:.3f} m instead of {z1:.3f} m")
    return normals[:, 2] / twice_area


def _mesh(parts: list[tuple], e: float, z1: float, fallbacks: list[str]) -> BuildingMesh:
    pos, tris, codes = assemble(parts)
    nz = _check(pos, tris, z1)
    codes[(codes == SURFACE_ROOF) & (np.abs(nz) < 1e-3)] = SURFACE_GABLE  # gables above eaves
    return BuildingMesh(pos, tris, codes, float(e), float(pos[:, 2].max()), fallbacks)


def _flat(poly: shapely.Polygon, spec: RoofSpec, fallbacks: list[str]) -> BuildingMesh:
    e = spec.eave_height
    parts = [*prism_sides(poly, 0.0, e, SURFACE_WALL)]
    parts.append(cap(poly, 0.0, down=True, code=SURFACE_GROUND))
    parts.append(cap(poly, e, down=False, code=SURFACE_ROOF))
    if spec.podium_height > 0:
        parts += prism(podium_outline(poly, 0.0), 0.0, spec.podium_height, SURFACE_PODIUM)
    pos, tris, codes = assemble(parts)
    return BuildingMesh(pos, tris, codes, float(e), float(e), fallbacks)


def build_building(footprint: shapely.Polygon, spec: RoofSpec) -> BuildingMesh:
    """Walls, roof (and podium) of one building as a closed triangle mesh.

    Parameters
    ----------
    footprint : shapely.Polygon
        Local metres (x east, y north), may have holes (courtyards).
    spec : RoofSpec
        Form and heights.

    Returns
    -------
    BuildingMesh
        Closed and consistently wound; ``fallbacks`` lists every fallback taken.

    Raises
    ------
    InputDataError
        When the footprint is unusable (empty, not a polygon, under 1 m²) or a height
        is out of range.
    """
    fallbacks: list[str] = []
    if not spec.eave_height > 0:
        raise InputDataError(f"eave height must be positive, got {spec.eave_height}")
    if spec.roof_height is not None and not spec.roof_height >= 0:
        raise InputDataError(f"roof height must not be negative, got {spec.roof_height}")
    if not 0 <= spec.podium_height < spec.eave_height:
        raise InputDataError(
            f"podium height must be at least 0 and under the eave height, got "
            f"{spec.podium_height} (eave {spec.eave_height})"
        )
    poly = _prepare(footprint, fallbacks)
    form = spec.form.single
    if form is F.FLAT or spec.roof_height == 0:
        return _flat(poly, spec, fallbacks)
    ov = default_overhang(form, spec.eave_height) if spec.overhang is None else spec.overhang
    ov = max(0.0, float(ov))
    for k, (attempt, make) in enumerate(_attempts(poly, form, spec, ov)):
        try:
            parts, z1 = make()
            mesh = _mesh(parts, spec.eave_height, z1, fallbacks)
        except RoofGeometryError as exc:
            fallbacks.append(f"{attempt} failed: {exc}")
            log.debug("%s: %s", attempt, exc)
            continue
        if k > 0 or "approximated" in attempt:
            fallbacks.append(f"built as {attempt}")
        return mesh
    fallbacks.append("built with a flat roof")
    return _flat(poly, spec, fallbacks)
