"""Buildings on arbitrary footprints (L, U, T, courtyards...) around a straight-skeleton roof.

Walls, ground, eave soffit and fascia are prisms and caps over the footprint and its
mitred eave outline; the roof is the CGAL skeleton of the eave outline, sliced at the
breaks of the form's profile and lifted through it. Vertices are shared exactly (same
rings), so welding closes the solid.
"""

from __future__ import annotations

import numpy as np
import shapely

from . import chinese, western
from .common import (
    GABLE_FAMILY,
    SLAB,
    F,
    RoofGeometryError,
    RoofSpec,
    cap,
    half_width,
    natural_top,
    outline,
    podium_outline,
    prism,
    prism_sides,
)
from .forms import RoofForm
from .mesh import (
    SURFACE_EAVE_UNDERSIDE,
    SURFACE_FASCIA,
    SURFACE_GABLE,
    SURFACE_GROUND,
    SURFACE_PODIUM,
    SURFACE_ROOF,
    SURFACE_WALL,
)
from .skeleton import SkeletonError, skeleton_roof, slice_at


def skeleton_profile(form: RoofForm, run: float, ov: float) -> tuple[np.ndarray, np.ndarray]:
    """(x, z) of the form's profile over a skeleton (x from the wall line), z unscaled."""
    if form.family == "chinese":
        return chinese.jujia(run, ov)
    if form in (F.DOME, F.ROUND):
        return western.western_profiles(F.DOME, run, run, ov, ov, 0.0, 1.0)["side"]
    if form in (F.MANSARD, F.GAMBREL):
        return western.western_profiles(F.MANSARD, run, run, ov, ov, 0.0, 1.0)["side"]
    return np.array([-ov, run]), np.array([0.0, 1.0])


def skeleton_building(
    poly: shapely.Polygon,
    form: RoofForm,
    spec: RoofSpec,
    ov: float,
    e: float,
    z1: float | None,
    base: float = 0.0,
    cap_at: float | None = None,
) -> tuple[list[tuple], float, float]:
    """Walls, ground, soffit and fascia around a straight-skeleton roof.

    Parameters
    ----------
    poly : shapely.Polygon
        CCW footprint, holes allowed.
    form : RoofForm
        Single-eave form; gable-family forms get gables on the ends of wings.
    spec : RoofSpec
        For the podium.
    ov, e : float
        Overhang and eave (wall top) height.
    z1 : float or None
        Ridge height; None: the form's pitch or 举架 over the skeleton's run.
    base : float
        Height of the ground face (an upper storey stands inside the lower one).
    cap_at : float, optional
        Inward distance from the wall line where the roof stops in a flat top (where the
        upper storey of a double eave rises).

    Returns
    -------
    parts, ridge height, run (the skeleton's largest inset from the wall line)
    """
    eave_line = outline(poly, ov)
    try:
        v, tris, _ = skeleton_roof(eave_line, form in GABLE_FAMILY and cap_at is None)
    except SkeletonError as exc:
        raise RoofGeometryError(str(exc)) from exc
    tmax = float(v[:, 2].max())
    if tmax <= ov + 1e-3:
        raise RoofGeometryError("the skeleton has no height")
    if z1 is None:
        z1 = natural_top(form, tmax - ov, ov, e)
    t = min(SLAB[form.family], 0.3 * (z1 - e)) if ov > 0 else 0.0
    z0 = e + t
    if cap_at is not None:
        if cap_at + ov >= tmax - 0.5:
            raise RoofGeometryError("too narrow for a double eave")
        rise = 0.5 * (cap_at + ov)
        x, z = np.array([-ov, cap_at, tmax]), z0 + np.array([0.0, rise, rise])
    else:
        x, z = skeleton_profile(form, tmax - ov, ov)
        z = z0 + (z - z[0]) * ((z1 - z0) / (z[-1] - z[0]))
    breaks = x[1:-1] + ov  # profile breaks as skeleton times
    v, tris = slice_at(v, tris, breaks[(breaks > 1e-3) & (breaks < tmax - 1e-3)])
    roof_pos = np.column_stack([v[:, :2], np.interp(v[:, 2] - ov, x, z)])
    parts = [(roof_pos, tris, SURFACE_ROOF)]
    parts += prism_sides(poly, base, e, SURFACE_WALL if base == 0 else SURFACE_GABLE)
    parts.append(cap(poly, base, down=True, code=SURFACE_GROUND))
    if ov > 0:
        parts.append(cap(eave_line.difference(poly), e, down=True, code=SURFACE_EAVE_UNDERSIDE))
        parts += prism_sides(eave_line, e, z0, SURFACE_FASCIA)
    if spec.podium_height > 0 and base == 0:
        parts += prism(podium_outline(poly, ov), 0.0, spec.podium_height, SURFACE_PODIUM)
    return parts, z1, tmax - ov


def skeleton_double(
    poly: shapely.Polygon, form: RoofForm, spec: RoofSpec, ov: float, z1: float | None
) -> tuple[list[tuple], float]:
    """重檐 on any footprint: a lower eave roof all round, flat where the upper storey
    stands; the upper storey, its own closed solid, rises from inside the lower one."""
    e = spec.eave_height
    d = min(max(0.4 * half_width(poly), 0.8), 3.0)
    upper = outline(poly, -d)
    lower, _, run = skeleton_building(poly, F.HIPPED, spec, ov, e, z1, cap_at=d)
    if z1 is None:
        z1 = natural_top(form, run, ov, e, double=True)
    z_flat = max(float(p[:, 2].max()) for p, _, c in lower if c == SURFACE_ROOF)
    e2 = max(e + 0.45 * (z1 - e), z_flat + 0.8)
    if z1 - e2 < 1.0:
        raise RoofGeometryError("the roof height leaves no room for a second eave")
    top, _, _ = skeleton_building(upper, form, spec, 0.85 * ov, e2, z1, base=e)
    return lower + top, z1
