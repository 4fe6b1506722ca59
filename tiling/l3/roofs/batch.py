"""The batched path: directional roofs on rectangular footprints, many buildings at once.

Most buildings of a district are rectangles with a directional form (gabled, hipped,
硬山, 歇山, 庑殿, 卷棚, 重檐...). One at a time, such a building costs about a
millisecond of numpy call overhead on arrays of a few dozen points. Here the same ring
chain as :func:`chain.ring_building` is computed for every rectangle of a group
(same form, podium or not, single or double eave, overhang or not, same profile
length) in whole-array operations, welded and checked as :func:`build.build_building`
does, vertex for vertex: the result equals the per-building path's mesh (same vertex
order, triangles and surface codes; positions within float rounding).

A building the batch cannot take as it stands (not a rectangle, a central or flat
form, a double eave too small, a check that fails...) is left out (``None``), and the
caller builds it one by one through the fallback chain, so nothing is decided here
that the per-building path would decide otherwise.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import shapely

from . import chinese, western
from .build import HEIGHT_TOLERANCE, MIN_TRIANGLE_AREA
from .common import CENTRAL, MIN_OVERHANG, SLAB, F, RoofSpec, podium_margin
from .forms import RoofForm
from .mesh import (
    SURFACE_EAVE_UNDERSIDE,
    SURFACE_FASCIA,
    SURFACE_GABLE,
    SURFACE_GROUND,
    SURFACE_PODIUM,
    SURFACE_ROOF,
    SURFACE_WALL,
    WELD_TOLERANCE,
    BuildingMesh,
)
from .rings import _bands, _fans, corner_weight

log = logging.getLogger(__name__)

#: the forms the batch builds (on rectangles): every directional form with a profile
BATCH_FORMS = frozenset(
    {F.GABLED, F.HIPPED, F.HALF_HIPPED, F.MANSARD, F.GAMBREL, F.ROUND, F.SHED, F.SAWTOOTH}
    | {F.YINGSHAN, F.XUANSHAN, F.XIESHAN, F.WUDIAN, F.JUANPENG}
)
#: buildings per batch (bounds the memory of the (n, vertices, 3) arrays)
BATCH = 2048

Profile = tuple[np.ndarray, np.ndarray]  # (x, z), each (n, points)


def build_batch(
    footprints: Sequence[shapely.Geometry], specs: Sequence[RoofSpec]
) -> list[BuildingMesh | None]:
    """Meshes of the buildings the batch takes, built together.

    The batch takes directional forms (:data:`BATCH_FORMS`) on rectangles and central
    forms (pyramid, cone, dome, 攒尖) on convex footprints, where the fallback chain
    would build them as a ring chain at its first attempt.

    Parameters
    ----------
    footprints : sequence of shapely geometries
        Local metres, as :func:`build.build_building` takes them.
    specs : sequence of RoofSpec

    Returns
    -------
    list of BuildingMesh or None
        Per building: its mesh, equal to ``build_building(footprint, spec)`` (same
        vertices in the same order within float rounding, same triangles and surface
        codes); None for a building left to the per-building path.
    """
    geoms = np.empty(len(specs), dtype=object)
    geoms[:] = list(footprints)
    out: list[BuildingMesh | None] = [None] * len(specs)
    rows, corners = _eligible(geoms, specs)
    groups: dict[tuple, list[int]] = defaultdict(list)
    for k, i in enumerate(rows.tolist()):
        s = specs[i]
        groups[(s.form.single, s.podium_height > 0, s.is_double)].append(k)
    for (form, podium, double), ks in groups.items():
        for start in range(0, len(ks), BATCH):
            part = np.array(ks[start : start + BATCH])
            meshes = _build_group(
                form, podium, double, corners[part], [specs[i] for i in rows[part]]
            )
            for i, m in zip(rows[part].tolist(), meshes, strict=True):
                out[i] = m
    rows, polygons, half = _eligible_convex(geoms, specs)
    groups = defaultdict(list)
    for k, i in enumerate(rows.tolist()):
        s = specs[i]
        groups[(s.form.single, s.podium_height > 0, s.is_double, len(polygons[k]))].append(k)
    for (form, podium, double, _), ks in groups.items():
        for start in range(0, len(ks), BATCH):
            part = np.array(ks[start : start + BATCH])
            meshes = _build_central(
                form,
                podium,
                double,
                np.stack([polygons[k] for k in part.tolist()]),
                half[part],
                [specs[i] for i in rows[part]],
            )
            for i, m in zip(rows[part].tolist(), meshes, strict=True):
                out[i] = m
    return out


def _valid(s: RoofSpec) -> bool:
    """Heights ``build_building`` accepts, a roof that is not flat, no NaN overhang."""
    return (
        s.eave_height > 0
        and (s.roof_height is None or s.roof_height > 0)
        and (s.overhang is None or s.overhang == s.overhang)  # NaN: per building
        and 0 <= s.podium_height < s.eave_height
    )


def _polygons(footprints: np.ndarray) -> np.ndarray:
    """Valid, non-empty single polygons (``build._prepare`` changes nothing else)."""
    polygon = np.array([isinstance(g, shapely.Polygon) for g in footprints], dtype=bool)
    return polygon & ~shapely.is_empty(footprints) & shapely.is_valid(footprints)


def _heights(form: RoofForm, specs: list[RoofSpec]) -> tuple[np.ndarray, ...]:
    """Eave, roof height (NaN: none), podium height and overhang per building."""
    e = np.array([s.eave_height for s in specs], dtype=float)
    h = np.array([np.nan if s.roof_height is None else s.roof_height for s in specs])
    ph = np.array([s.podium_height for s in specs], dtype=float)
    given = np.array([np.nan if s.overhang is None else s.overhang for s in specs])
    ov = np.maximum(0.0, np.where(np.isnan(given), _default_overhang(form, e), given))
    return e, h, ph, ov


# --- which buildings ---------------------------------------------------------------------


def _eligible(footprints: np.ndarray, specs: Sequence[RoofSpec]) -> tuple[np.ndarray, np.ndarray]:
    """Rows the batch takes and their rectangles (n, 4, 2), CCW, as ``build._rectangle``."""
    ok = np.array([s.form.single in BATCH_FORMS and _valid(s) for s in specs], dtype=bool)
    if not ok.any():
        return np.zeros(0, dtype=np.int64), np.zeros((0, 4, 2))
    ok &= _polygons(footprints)
    rows = np.flatnonzero(ok)
    # as build._prepare and build._rectangle do, on arrays
    poly = shapely.orient_polygons(shapely.simplify(footprints[rows], 0.005))
    rect = (shapely.area(poly) >= 1.0) & (shapely.get_num_interior_rings(poly) == 0)
    rect &= shapely.get_num_coordinates(poly) == 5
    rows, poly = rows[rect], poly[rect]
    box = shapely.oriented_envelope(poly)
    near = shapely.hausdorff_distance(poly, box) <= 0.05
    rows, box = rows[near], shapely.orient_polygons(box[near])
    rings = shapely.get_coordinates(shapely.get_exterior_ring(box))
    # a degenerate envelope (a line) has fewer than 5 ring points: leave it out
    counts = shapely.get_num_coordinates(box)
    five = counts == 5
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[five]
    corners = rings[starts[:, None] + np.arange(4)]
    return rows[five], corners


# --- one group: the ring chain of ring_building, on arrays --------------------------------


class _Rings:
    """Rings bottom-up as per-edge insets of the rectangle, heights, lifts and codes."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.insets: list[np.ndarray] = []  # (n, 4) or (n, k, 4)
        self.z: list[np.ndarray] = []
        self.lift: list[np.ndarray] = []
        self.codes: list[int] = []

    def add(self, inset, z, code: int = SURFACE_WALL, lift=0.0) -> None:
        if self.z:
            self.codes.append(code)
        self.insets.append(np.broadcast_to(np.asarray(inset, dtype=float), (self.n, 4)))
        self.z.append(np.broadcast_to(np.asarray(z, dtype=float), (self.n,)))
        self.lift.append(np.broadcast_to(np.asarray(lift, dtype=float), (self.n,)))


def _build_group(
    form: RoofForm, podium: bool, double: bool, corners: np.ndarray, specs: list[RoofSpec]
) -> list[BuildingMesh | None]:
    n = len(specs)
    e, h, ph, ov = _heights(form, specs)
    d = corners[:, [1, 2, 3, 0]] - corners
    length = np.sqrt((d * d).sum(axis=2))
    z1 = np.where(
        np.isnan(h), _natural_top(form, 0.5 * length[:, :2].min(axis=1), ov, e, double), e + h
    )
    along = _along(d, length, [s.orientation for s in specs])
    meshes: list[BuildingMesh | None] = [None] * n
    # the chain's structure depends on ov > 0 and on the profile's length: sub-groups
    hw = 0.5 * np.take_along_axis(length, ((along + 1) % 2)[:, None], axis=1)[:, 0]
    hl = 0.5 * np.take_along_axis(length, along[:, None], axis=1)[:, 0]
    keys = (ov > 0)[:, None]  # the 举架 step counts are padded (see _padded_levels)
    valid = _double_fits(form, hw, hl, e, z1, ov) if double else np.ones(n, dtype=bool)
    for key in np.unique(keys[valid], axis=0):
        sel = np.flatnonzero((keys == key).all(axis=1) & valid)
        chain = _chain(
            form,
            podium,
            double,
            corners[sel],
            along[sel],
            hw[sel],
            hl[sel],
            e[sel],
            z1[sel],
            ov[sel],
            ph[sel],
            bool(key[0]),
        )
        if chain is None:
            continue
        xy, z, codes, ok = chain
        good_sel = sel[ok]
        built = _solid_and_check(xy[ok], z[ok], codes, e[good_sel], z1[good_sel])
        for i, m in zip(good_sel.tolist(), built, strict=True):
            meshes[i] = m
    return meshes


def _double_fits(form, hw, hl, e, z1, ov) -> np.ndarray:
    """Where a 重檐 fits (``chain.ring_building`` raises elsewhere): computed before the
    profiles, whose arrays the rows that do not fit would spoil."""
    half = np.minimum(hw, hl)
    dd = np.clip(0.4 * half, 0.8, 3.0)
    t = np.where(ov > 0, np.minimum(SLAB[form.family], 0.3 * (z1 - e)), 0.0)
    e2 = np.maximum(e + t + 0.5 * (dd + ov) + 0.8, e + 0.45 * (z1 - e))
    return (half - dd >= 1.0) & (z1 - e2 >= 1.0)


def _default_overhang(form: RoofForm, e: np.ndarray) -> np.ndarray:
    """:func:`common.default_overhang` on arrays (no flat form reaches the batch)."""
    if form.family == "chinese":
        return np.minimum(np.maximum(0.3 * e, 0.6), 2.0)
    return np.full(len(e), 0.4)


def _jujia_steps(run: np.ndarray) -> np.ndarray:
    # Python's round and numpy's rint both round half to even
    return np.clip(np.rint(run / chinese.STEP), 2, 7).astype(int)


def _natural_top(form: RoofForm, run, ov, e, double: bool) -> np.ndarray:
    """:func:`common.natural_top` on arrays."""
    if form.family == "chinese":
        t = np.where(ov > 0, SLAB["chinese"], 0.0)
        return e + t + _jujia_rise(run, ov) * (1.4 if double else 1.0)
    if form in (F.SHED, F.SAWTOOTH):
        run = 2 * run
    return e + run * np.tan(np.radians(western.PITCH.get(form, 30.0)))


def _jujia_rise(run: np.ndarray, ov: np.ndarray) -> np.ndarray:
    """:func:`chinese.natural_rise` on arrays."""
    out = np.empty(len(run))
    steps, has_ov = _jujia_steps(run), ov > 0
    for n in np.unique(steps).tolist():
        for pos in (True, False):
            m = (steps == n) & (has_ov == pos)
            if m.any():
                out[m] = _jujia(run[m], ov[m], n, pos)[1][:, -1]
    return out


def _along(d: np.ndarray, length: np.ndarray, orientation: list[float | None]) -> np.ndarray:
    """Index (0 or 1) of the first edge along the ridge, as ``chain.edge_classes``."""
    along = np.where(length[:, 0] >= length[:, 1], 0, 1)
    given = np.array([o is not None for o in orientation], dtype=bool)
    if given.any():
        a = np.radians(np.array([o for o in orientation if o is not None], dtype=float))
        axis = np.column_stack([np.sin(a), np.cos(a)])
        dots = np.abs(np.einsum("nkj,nj->nk", d[given, :2], axis)) / length[given, :2]
        along[given] = np.argmax(dots, axis=1)
    return along


def _chain(form, podium, double, corners, along, hw, hl, e, z1, ov, ph, has_ov):
    """The rings of ``chain.ring_building`` for a sub-group: (xy (n, k, p, 2), z (n, k, p),
    band codes, ok) or None when none of them can be built here."""
    n = len(e)
    chinese_form = form.family == "chinese"
    ok = np.ones(n, dtype=bool)
    rings = _Rings(n)
    t = np.minimum(SLAB[form.family], 0.3 * (z1 - e)) if has_ov else np.zeros(n)
    zero = np.zeros((n, 4))
    if podium:
        pod = np.repeat(-podium_margin(ov)[:, None], 4, axis=1)
        rings.add(pod, 0.0)
        rings.add(pod, ph, SURFACE_PODIUM)
        rings.add(zero, ph, SURFACE_PODIUM)
    else:
        rings.add(zero, 0.0)
    base, z_wall, code = zero, e, SURFACE_WALL
    if double:
        half = np.minimum(hw, hl)
        dd = np.clip(0.4 * half, 0.8, 3.0)
        ok &= ~(half - dd < 1.0)
        rings.add(zero, e, SURFACE_WALL)
        drip = np.repeat(-ov[:, None], 4, axis=1)
        if has_ov:
            lift = np.minimum(0.35 * ov, 0.5) if chinese_form else 0.0
            rings.add(drip, e, SURFACE_EAVE_UNDERSIDE, lift)
            rings.add(drip, e + t, SURFACE_FASCIA, lift)
        z_step = e + t + 0.5 * (dd + ov)
        base = np.repeat(dd[:, None], 4, axis=1)
        rings.add(base, z_step, SURFACE_ROOF)
        e2 = np.maximum(z_step + 0.8, e + 0.45 * (z1 - e))
        ok &= ~(z1 - e2 < 1.0)
        z_wall, code = e2, SURFACE_GABLE
        ov, hw, hl = 0.85 * ov, hw - dd, hl - dd
    rings.add(base, z_wall, code)
    z0 = z_wall + t
    ov_s = np.maximum(ov, MIN_OVERHANG) if has_ov else np.zeros(n)
    ov_e = ov_s
    if has_ov and form in (F.YINGSHAN, F.JUANPENG):
        ov_e = np.full(n, MIN_OVERHANG)
    made = _padded_levels(form, hw, hl, ov_s, ov_e, z0, z1, along)
    if made is None:
        return None
    inset, z, fits = made
    ok &= fits
    if has_ov:
        lift = np.minimum(0.35 * ov, 0.8 * (z[:, 1] - z[:, 0])) if chinese_form else 0.0
        rings.add(inset[:, 0], z_wall, SURFACE_EAVE_UNDERSIDE, lift)
        rings.add(inset[:, 0], z[:, 0], SURFACE_FASCIA, lift)
    for k in range(1, z.shape[1]):
        rings.add(inset[:, k], z[:, k], SURFACE_ROOF)
    ins = np.stack(rings.insets, axis=1)  # (n, k, 4)
    ins[:, -(z.shape[1] + (1 if has_ov else -1)) :] += base[:, None, :] if double else 0.0
    xy = _offset(corners, ins)
    ok &= _rings_ok(corners, base, xy[:, -(z.shape[1]) :])
    m = 2 if chinese_form else 0
    w = corner_weight(4, m)
    zz = np.stack(rings.z, axis=1)[:, :, None] + np.stack(rings.lift, axis=1)[:, :, None] * w
    return _subdivide(xy, m), zz, np.array(rings.codes, dtype=np.uint8), ok


def _padded_levels(form, hw, hl, ov_s, ov_e, z0, z1, along):
    """Insets (n, k, 4), heights (n, k) and fit of every row, from rows whose 举架 step
    counts (and so counts of levels) differ: each count apart, then padded to the longest
    by repeating the top ring. A repeated ring welds onto its original and the band
    between them collapses, so the welded mesh is the unpadded one."""
    steps = _jujia_steps(hw) if form.family == "chinese" else np.zeros(len(hw), dtype=int)
    parts = []
    for count in np.unique(steps).tolist():
        sel = np.flatnonzero(steps == count)
        args = (a[sel] for a in (hw, hl, ov_s, ov_e, z0, z1))
        made = _profiles(form, *args)
        if made is None:
            return None
        profiles, fits = made
        inset, z, same = _levels(profiles, along[sel], form)
        parts.append((sel, inset, z, fits & same))
    k = max(z.shape[1] for _, _, z, _ in parts)
    inset = np.empty((len(hw), k, 4))
    z = np.empty((len(hw), k))
    fits = np.empty(len(hw), dtype=bool)
    for sel, i, zz, f in parts:
        inset[sel] = np.concatenate([i, np.repeat(i[:, -1:], k - i.shape[1], axis=1)], axis=1)
        z[sel] = np.concatenate([zz, np.repeat(zz[:, -1:], k - zz.shape[1], axis=1)], axis=1)
        fits[sel] = f
    return inset, z, fits


def _offset(corners: np.ndarray, inset: np.ndarray) -> np.ndarray:
    """``rings.offset_corners`` for b convex polygons of n corners and k rings each:
    corners (b, n, 2), inset (b, k, n) → (b, k, n, 2)."""
    n = corners.shape[1]
    prv, nxt = np.r_[n - 1, 0 : n - 1], np.r_[1:n, 0]
    d = corners[:, nxt] - corners
    d = d / np.sqrt((d * d).sum(axis=2))[:, :, None]
    normal_in = np.stack([-d[..., 1], d[..., 0]], axis=-1)
    a = corners[:, None] + inset[..., None] * normal_in[:, None]
    pa, da = a[:, :, prv], d[:, None, prv]
    cross = da[..., 0] * d[:, None, :, 1] - da[..., 1] * d[:, None, :, 0]
    w = a - pa
    t = (w[..., 0] * d[:, None, :, 1] - w[..., 1] * d[:, None, :, 0]) / cross
    return pa + t[..., None] * da


def _rings_ok(corners: np.ndarray, base_inset: np.ndarray, rings: np.ndarray) -> np.ndarray:
    """``chain._check_rings``: no inset ring turned inside out."""
    base = _offset(corners, base_inset[:, None, :])[:, 0]
    nxt = [1, 2, 3, 0]
    d0 = base[:, nxt] - base
    d = rings[:, :, nxt] - rings
    return ~np.any(np.einsum("nkpj,npj->nkp", d, d0) < -1e-6, axis=(1, 2))


def _subdivide(xy: np.ndarray, m: int) -> np.ndarray:
    """``rings.subdivide`` of (..., n, 2) rings."""
    if m == 0:
        return xy
    n = xy.shape[-2]
    f = np.arange(m + 1) / (m + 1)
    step = xy[..., np.r_[1:n, 0], :] - xy
    pts = xy[..., :, None, :] + f[:, None] * step[..., :, None, :]
    return pts.reshape(*xy.shape[:-2], n * (m + 1), 2)


# --- central forms on convex footprints (ring_building with central=True) ----------------


def _eligible_convex(
    footprints: np.ndarray, specs: Sequence[RoofSpec]
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Rows with a central form on a convex footprint, their corners (CCW, as
    ``build._convex``) and half the short side of their oriented envelope."""
    ok = np.array([s.form.single in CENTRAL and _valid(s) for s in specs], dtype=bool)
    if not ok.any():
        return np.zeros(0, dtype=np.int64), [], np.zeros(0)
    ok &= _polygons(footprints)
    rows = np.flatnonzero(ok)
    poly = shapely.orient_polygons(shapely.simplify(footprints[rows], 0.005))
    area = shapely.area(poly)
    keep = (area >= 1.0) & (shapely.get_num_interior_rings(poly) == 0)
    keep &= area >= 0.999 * shapely.area(shapely.convex_hull(poly))
    box = shapely.oriented_envelope(poly)
    keep &= shapely.get_num_coordinates(box) == 5
    rows, poly, box = rows[keep], poly[keep], box[keep]
    b = shapely.get_coordinates(box).reshape(-1, 5, 2)[:, :3]
    sides = np.sqrt((np.diff(b, axis=1) ** 2).sum(axis=2))
    counts = shapely.get_num_coordinates(poly)
    coords = shapely.get_coordinates(poly)
    ends = np.cumsum(counts)
    corners = [coords[e - c : e - 1] for e, c in zip(ends.tolist(), counts.tolist(), strict=True)]
    return rows, corners, 0.5 * sides.min(axis=1)


def _apothem_centroid(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2 area / perimeter and the area centroid of (b, n, 2) convex polygons."""
    nxt = np.r_[1 : corners.shape[1], 0]
    x, y = corners[..., 0], corners[..., 1]
    xn, yn = x[:, nxt], y[:, nxt]
    cr = x * yn - xn * y
    area = 0.5 * cr.sum(axis=1)
    perimeter = np.sqrt((xn - x) ** 2 + (yn - y) ** 2).sum(axis=1)
    cx = ((x + xn) * cr).sum(axis=1) / (6.0 * area)
    cy = ((y + yn) * cr).sum(axis=1) / (6.0 * area)
    return 2.0 * area / perimeter, np.column_stack([cx, cy])


def _build_central(
    form: RoofForm,
    podium: bool,
    double: bool,
    corners: np.ndarray,
    half: np.ndarray,
    specs: list[RoofSpec],
) -> list[BuildingMesh | None]:
    n = len(specs)
    e, h, ph, ov = _heights(form, specs)
    z1 = np.where(np.isnan(h), _natural_top(form, half, ov, e, double), e + h)
    run, _ = _apothem_centroid(corners)
    t = np.where(ov > 0, np.minimum(SLAB[form.family], 0.3 * (z1 - e)), 0.0)
    valid = np.ones(n, dtype=bool)
    if double:
        dd = np.clip(0.4 * run, 0.8, 3.0)
        e2 = np.maximum(e + t + 0.5 * (dd + ov) + 0.8, e + 0.45 * (z1 - e))
        valid = (run - dd >= 1.0) & (z1 - e2 >= 1.0)
    keys = (ov > 0)[:, None]  # the 举架 step counts are padded (see _padded_levels)
    meshes: list[BuildingMesh | None] = [None] * n
    for key in np.unique(keys[valid], axis=0):
        sel = np.flatnonzero((keys == key).all(axis=1) & valid)
        xy, z, codes = _central_chain(
            form, podium, double, corners[sel], e[sel], z1[sel], ov[sel], t[sel], ph[sel]
        )
        for i, m in zip(sel.tolist(), _solid_and_check(xy, z, codes, e[sel], z1[sel]), strict=True):
            meshes[i] = m
    return meshes


def _central_chain(form, podium, double, corners, e, z1, ov, t, ph):
    """The rings of ``chain.ring_building(..., central=True)``: (xy, z, band codes)."""
    b, n = corners.shape[:2]
    chinese_form = form.family == "chinese"
    has_ov = bool(ov[0] > 0)
    xy: list[np.ndarray] = []
    zs: list[np.ndarray] = []
    lifts: list[np.ndarray] = []
    codes: list[int] = []

    def add(ring, z, code=SURFACE_WALL, lift=0.0):
        if zs:
            codes.append(code)
        xy.append(ring)
        zs.append(np.broadcast_to(np.asarray(z, dtype=float), (b,)))
        lifts.append(np.broadcast_to(np.asarray(lift, dtype=float), (b,)))

    def grown(c, by):
        return _offset(c, np.repeat(np.asarray(by, dtype=float)[:, None, None], n, axis=2))[:, 0]

    if podium:
        pod = grown(corners, -podium_margin(ov))
        add(pod, 0.0)
        add(pod, ph, SURFACE_PODIUM)
        add(corners, ph, SURFACE_PODIUM)
    else:
        add(corners, 0.0)
    base, z_wall, code = corners, e, SURFACE_WALL
    if double:
        run0, _ = _apothem_centroid(corners)
        dd = np.clip(0.4 * run0, 0.8, 3.0)
        add(corners, e, SURFACE_WALL)
        if has_ov:
            drip = grown(corners, -ov)
            lift = np.minimum(0.35 * ov, 0.5) if chinese_form else 0.0
            add(drip, e, SURFACE_EAVE_UNDERSIDE, lift)
            add(drip, e + t, SURFACE_FASCIA, lift)
        z_step = e + t + 0.5 * (dd + ov)
        base = grown(corners, dd)
        add(base, z_step, SURFACE_ROOF)
        z_wall = np.maximum(z_step + 0.8, e + 0.45 * (z1 - e))
        code, ov = SURFACE_GABLE, 0.85 * ov
    add(base, z_wall, code)
    z0 = z_wall + t
    # _central_levels: rings scaled towards the centre from the drip ring
    drip = grown(base, -ov)
    run, c = _apothem_centroid(base)
    if chinese_form:
        x, z = _padded_jujia(run, ov, has_ov)
        z = z0[:, None] + z * ((z1 - z0) / z[:, -1])[:, None]
    elif form is F.DOME:
        th = np.linspace(0.0, np.pi / 2, 7)
        x = -ov[:, None] + (run + ov)[:, None] * (1.0 - np.cos(th))
        z = z0[:, None] + (z1 - z0)[:, None] * np.sin(th)
    else:
        x, z = _cols(-ov, run), _cols(z0, z1)
    sc = 1.0 - (x + ov[:, None]) / (run + ov)[:, None]
    rings = c[:, None, None, :] + sc[:, :, None, None] * (drip - c[:, None, :])[:, None]
    if has_ov:
        lift = np.minimum(0.35 * ov, 0.8 * (z[:, 1] - z[:, 0])) if chinese_form else 0.0
        add(rings[:, 0], z_wall, SURFACE_EAVE_UNDERSIDE, lift)
        add(rings[:, 0], z[:, 0], SURFACE_FASCIA, lift)
    for k in range(1, z.shape[1]):
        add(rings[:, k], z[:, k], SURFACE_ROOF)
    m = 2 if chinese_form else 0
    w = corner_weight(n, m)
    zz = np.stack(zs, axis=1)[:, :, None] + np.stack(lifts, axis=1)[:, :, None] * w
    return _subdivide(np.stack(xy, axis=1), m), zz, np.array(codes, dtype=np.uint8)


# --- profiles (chinese.chinese_profiles and western.western_profiles on arrays) -----------


def _jujia(run: np.ndarray, ov: np.ndarray, n: int, has_ov: bool) -> Profile:
    ju = chinese.JU_EAVE + (chinese.JU_RIDGE - chinese.JU_EAVE) * np.arange(n) / (n - 1)
    step = (run / n)[:, None]
    x = np.concatenate([-ov[:, None], np.zeros((len(run), 1)), step * np.arange(1, n + 1)], axis=1)
    rises = np.concatenate([ov[:, None] * chinese.JU_OVERHANG, step * ju], axis=1)
    z = np.concatenate([np.zeros((len(run), 1)), np.cumsum(rises, axis=1)], axis=1)
    if not has_ov:
        x, z = x[:, 1:], z[:, 1:] - z[:, 1:2]
    return x, z


def _padded_jujia(run: np.ndarray, ov: np.ndarray, has_ov: bool) -> Profile:
    """:func:`_jujia` of rows of any step count, padded by repeating the last point."""
    steps = _jujia_steps(run)
    k = int(steps.max()) + (2 if has_ov else 1)
    x, z = np.empty((len(run), k)), np.empty((len(run), k))
    for count in np.unique(steps).tolist():
        sel = steps == count
        xs, zs = _jujia(run[sel], ov[sel], count, has_ov)
        pad = k - xs.shape[1]
        x[sel] = np.concatenate([xs, np.repeat(xs[:, -1:], pad, axis=1)], axis=1)
        z[sel] = np.concatenate([zs, np.repeat(zs[:, -1:], pad, axis=1)], axis=1)
    return x, z


def _scaled(p: Profile, z0: np.ndarray, z1: np.ndarray) -> Profile:
    x, z = p
    return x, z0[:, None] + z * ((z1 - z0) / z[:, -1])[:, None]


def _cols(*cols) -> np.ndarray:
    return np.column_stack(
        [np.broadcast_to(np.asarray(c, dtype=float), cols[0].shape) for c in cols]
    )


def _profiles(form, hw, hl, ov_s, ov_e, z0, z1) -> tuple[dict[str, Profile], np.ndarray] | None:
    """The class profiles and which rows they fit (None: not a form of the batch)."""
    made = _class_profiles(form, hw, hl, ov_s, ov_e, z0, z1)
    if made is None:
        return None
    if isinstance(made, tuple):
        return made
    return made, np.ones(len(hw), dtype=bool)


def _class_profiles(form, hw, hl, ov_s, ov_e, z0, z1):
    f = RoofForm
    vertical = (_cols(-ov_e, -ov_e), _cols(z0, z1))
    if form.family == "chinese":
        steps = _jujia_steps(hw)
        if (steps != steps[0]).any():
            return None
        side = _scaled(_jujia(hw, ov_s, int(steps[0]), bool((ov_s > 0).all())), z0, z1)
        if form in (f.YINGSHAN, f.XUANSHAN):
            return {"side": side, "end": vertical}
        if form is f.JUANPENG:
            return {"side": _rounded_top(side), "end": vertical}
        if form is f.WUDIAN:
            push = np.minimum(0.12 * hw, 0.9 * (hl - hw) + 0.1 * hw)
            frac = (side[1] - z0[:, None]) / (z1 - z0)[:, None]
            x_end = side[0] - push[:, None] * frac**2
            x_end[:, 0] = -ov_e
            return {"side": side, "end": (np.maximum.accumulate(x_end, axis=1), side[1])}
        if form is f.XIESHAN:
            xs, zs = side
            xg = 0.35 * hw
            zg = _interp(xg[:, None], xs, zs)[:, 0]
            below = zs < (zg - 1e-6)[:, None]
            # the rows share the count of steps below the gables (a prefix); a row that
            # does not is left to the per-building path
            counts = below.sum(axis=1)
            k = int(np.bincount(counts).argmax())
            fits = counts == k
            x_end = np.concatenate([xs[:, :k], _cols(xg, xg)], axis=1)
            z_end = np.concatenate([zs[:, :k], _cols(zg, z1)], axis=1)
            x_end[:, 0] = -ov_e
            return {"side": side, "end": (x_end, z_end)}, fits
        return None
    line = (_cols(-ov_s, hw), _cols(z0, z1))
    if form in (f.SHED, f.SAWTOOTH):
        return {
            "low": (_cols(-ov_s, 2 * hw + ov_s), _cols(z0, z1)),
            "high": (_cols(-ov_s, -ov_s), _cols(z0, z1)),
            "end": vertical,
        }
    if form is f.GABLED:
        return {"side": line, "end": vertical}
    if form is f.HIPPED:
        return {"side": line, "end": (_cols(-ov_e, hw), _cols(z0, z1))}
    if form is f.HALF_HIPPED:
        zh = z0 + 0.65 * (z1 - z0)
        xh = -ov_s + 0.35 * (hw + ov_s)
        return {"side": line, "end": (_cols(-ov_e, -ov_e, -ov_e + xh + ov_s), _cols(z0, zh, z1))}
    if form in (f.MANSARD, f.GAMBREL):
        side = (_cols(-ov_s, -ov_s + 0.25 * (hw + ov_s), hw), _cols(z0, z0 + 0.6 * (z1 - z0), z1))
        if form is f.GAMBREL:
            return {"side": side, "end": vertical}
        end = (_cols(-ov_e, -ov_e + 0.25 * (hw + ov_e), hw), side[1])
        return {"side": side, "end": end}
    if form is f.ROUND:
        th = np.linspace(0.0, np.pi / 2, 7)
        x = -ov_s[:, None] + (hw + ov_s)[:, None] * (1.0 - np.cos(th))
        z = z0[:, None] + (z1 - z0)[:, None] * np.sin(th)
        return {"side": (x, z), "end": vertical}
    return None


def _rounded_top(p: Profile, k: int = 4) -> Profile:
    x, z = p
    xa, za = x[:, -2:-1], z[:, -2:-1]
    th = np.linspace(0.0, np.pi / 2, k + 1)[1:]
    xs = xa + (x[:, -1:] - xa) * np.sin(th)
    zs = za + (z[:, -1:] - za) * (1.0 - (1.0 - np.sin(th)) ** 2) ** 0.5
    zs = np.maximum.accumulate(np.maximum(zs, za + 1e-4 * np.arange(1, k + 1)), axis=1)
    return np.concatenate([x[:, :-1], xs], axis=1), np.concatenate([z[:, :-1], zs], axis=1)


def _interp(q: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """``np.interp`` row by row: q (n, k) in increasing xp (n, m) with values fp (n, m)."""
    j = (xp[:, None, :] <= q[:, :, None]).sum(axis=2) - 1
    j = np.clip(j, 0, xp.shape[1] - 2)
    x0 = np.take_along_axis(xp, j, axis=1)
    x1 = np.take_along_axis(xp, j + 1, axis=1)
    f0 = np.take_along_axis(fp, j, axis=1)
    f1 = np.take_along_axis(fp, j + 1, axis=1)
    span = x1 - x0
    t = np.clip(np.divide(q - x0, span, out=np.zeros_like(q), where=span != 0), 0.0, 1.0)
    return f0 + t * (f1 - f0)


def _levels(profiles: dict[str, Profile], along: np.ndarray, form: RoofForm):
    """``chain._levels``: insets (n, k, 4) and heights (n, k) at every profile break, and
    whether each row has the group's count of breaks (None: the rows disagree)."""
    z = np.sort(np.concatenate([p[1] for p in profiles.values()], axis=1), axis=1)
    keep = np.concatenate([np.ones((len(z), 1), dtype=bool), np.diff(z, axis=1) > 1e-6], axis=1)
    counts = keep.sum(axis=1)
    common = np.bincount(counts).argmax()
    same = counts == common
    pattern = keep[same][0] if same.any() else keep[0]
    same &= (keep == pattern).all(axis=1)
    z = z[:, pattern]
    per_class = {c: _interp(z, p[1], p[0]) for c, p in profiles.items()}
    n = len(along)
    rows = np.arange(n)
    inset = np.empty((n, z.shape[1], 4))
    if form in (F.SHED, F.SAWTOOTH):
        # the first side edge is the low one, its opposite the high one
        side_cls = [("low", along), ("high", along + 2)]
    else:
        side_cls = [("side", along), ("side", along + 2)]
    for cls, edge in [*side_cls, ("end", (along + 1) % 4), ("end", (along + 3) % 4)]:
        inset[rows, :, edge] = per_class[cls]
    return inset, z, same


# --- solid, weld and check (rings.chain_solid, mesh.weld, build._check) -------------------


def _solid_and_check(
    xy: np.ndarray, z: np.ndarray, band_codes: np.ndarray, e: np.ndarray, z1: np.ndarray
) -> list[BuildingMesh | None]:
    n, k, p = z.shape
    if n == 0:
        return []
    nv = k * p + 2
    pos = np.zeros((n, nv, 3))
    pos[:, : k * p, :2] = xy.reshape(n, -1, 2)
    pos[:, : k * p, 2] = z.reshape(n, -1)
    bottom, top_fan = _fans(k, p)
    pos[:, k * p, :2] = xy[:, 0].mean(axis=1)
    pos[:, k * p, 2] = z[:, 0].mean(axis=1)
    top = xy[:, -1]
    nxt = np.r_[1:p, 0]
    area = 0.5 * np.sum(top[..., 0] * top[:, nxt, 1] - top[:, nxt, 0] * top[..., 1], axis=1)
    has_top = area > 1e-6
    pos[has_top, k * p + 1, :2] = top[has_top].mean(axis=1)
    pos[has_top, k * p + 1, 2] = z[has_top, -1].mean(axis=1)
    tris = np.concatenate([_bands(k, p), bottom, top_fan])
    codes = np.concatenate(
        [np.repeat(band_codes, 2 * p), np.full(p, SURFACE_GROUND), np.full(p, SURFACE_ROOF)]
    ).astype(np.uint8)
    in_top = np.zeros(len(tris), dtype=bool)
    in_top[len(tris) - p :] = True
    return _weld_and_check(pos, tris, codes, ~in_top[None, :] | has_top[:, None], e, z1)


def _weld_and_check(
    pos: np.ndarray,
    tris: np.ndarray,
    codes: np.ndarray,
    present: np.ndarray,
    e: np.ndarray,
    z1: np.ndarray,
) -> list[BuildingMesh | None]:
    """Weld every building's vertices (:func:`mesh.weld`, same order), drop collapsed
    triangles, and check each mesh as :func:`build._check` does."""
    n, nv, _ = pos.shape
    nt = len(tris)
    key = np.round(pos / WELD_TOLERANCE).astype(np.int64).reshape(-1, 3)
    owner = np.repeat(np.arange(n), nv)
    order = np.lexsort((key[:, 2], key[:, 1], key[:, 0], owner))
    ks, os_ = key[order], owner[order]
    new = np.empty(len(ks), dtype=bool)
    new[0] = True
    new[1:] = np.any(ks[1:] != ks[:-1], axis=1) | (os_[1:] != os_[:-1])
    group = np.cumsum(new) - 1
    inverse = np.empty(len(key), dtype=np.int64)
    inverse[order] = group
    first = order[new]
    t = inverse[(tris[None, :, :] + (np.arange(n) * nv)[:, None, None]).reshape(-1, 3)]
    keep = (t[:, 0] != t[:, 1]) & (t[:, 1] != t[:, 2]) & (t[:, 0] != t[:, 2])
    keep &= present.reshape(-1)
    tri_owner = np.repeat(np.arange(n), nt)[keep]
    t = t[keep]
    c = np.tile(codes, n)[keep]
    used = np.zeros(len(first), dtype=bool)
    used[t.ravel()] = True
    remap = np.cumsum(used) - 1
    v = pos.reshape(-1, 3)[first[used]]
    v_owner = owner[first[used]]
    t = remap[t]
    # closed and consistently wound: each directed edge once and its reverse once
    a, b = t.ravel(), t[:, [1, 2, 0]].ravel()
    nvtot = len(v)
    fwd = a * nvtot + b
    edge_owner = np.repeat(tri_owner, 3)
    srt = np.sort(fwd)
    dup = np.zeros(len(fwd), dtype=bool)
    dup_keys = srt[1:][srt[1:] == srt[:-1]]
    dup |= np.isin(fwd, dup_keys)
    rev = b * nvtot + a
    j = np.clip(np.searchsorted(srt, rev), 0, len(srt) - 1)
    bad_edge = dup | (srt[j] != rev)
    bad = np.bincount(edge_owner[bad_edge], minlength=n) > 0
    # degenerate triangles, and the ridge where asked
    p0 = v[t[:, 0]]
    nrm = np.cross(v[t[:, 1]] - p0, v[t[:, 2]] - p0)
    twice = np.sqrt((nrm * nrm).sum(axis=1))
    small = np.bincount(tri_owner[twice < 2 * MIN_TRIANGLE_AREA], minlength=n) > 0
    v_start = np.searchsorted(v_owner, np.arange(n + 1))
    t_start = np.searchsorted(tri_owner, np.arange(n + 1))
    top = np.maximum.reduceat(v[:, 2], v_start[:-1]) if len(v) else np.zeros(n)
    fail = bad | small | (np.abs(top - z1) > HEIGHT_TOLERANCE)
    nz = np.divide(nrm[:, 2], twice, out=np.zeros(len(twice)), where=twice > 0)
    c = c.copy()
    c[(c == SURFACE_ROOF) & (np.abs(nz) < 1e-3)] = SURFACE_GABLE
    out: list[BuildingMesh | None] = []
    for i in range(n):
        if fail[i]:
            out.append(None)
            continue
        vs, ts = slice(v_start[i], v_start[i + 1]), slice(t_start[i], t_start[i + 1])
        out.append(
            BuildingMesh(
                v[vs],
                (t[ts] - v_start[i]).astype(np.uint32),
                c[ts],
                float(e[i]),
                float(top[i]),
                [],
            )
        )
    return out
