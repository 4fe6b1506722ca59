"""L3 roof and building geometry: every form on every footprint shape, closed and true."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
import trimesh
from shapely.geometry import Polygon, box

from cim.errors import InputDataError
from tiling.l3.roofs import (
    SURFACE_EAVE_UNDERSIDE,
    SURFACE_FASCIA,
    SURFACE_GABLE,
    SURFACE_PODIUM,
    SURFACE_ROOF,
    SURFACE_WALL,
    RoofForm,
    RoofSpec,
    UnknownRoofFormError,
    build_building,
    chinese,
    default_overhang,
    parse_roof_form,
    skeleton,
)

F = RoofForm
FOOTPRINTS = {
    "rectangle": box(0, 0, 20, 10),
    "L": Polygon([(0, 0), (20, 0), (20, 8), (8, 8), (8, 20), (0, 20)]),
    "U": Polygon([(0, 0), (24, 0), (24, 18), (16, 18), (16, 8), (8, 8), (8, 18), (0, 18)]),
    "courtyard": Polygon(
        box(0, 0, 30, 30).exterior.coords, [box(10, 10, 20, 20).exterior.coords[::-1]]
    ),
    "octagon": Polygon(
        [(10 * np.cos(a), 10 * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 9)[:-1] + np.pi / 8]
    ),
}
EAVE = 6.0
ROOF = 4.5


def _spec(form: RoofForm, case: str) -> RoofSpec:
    podium = 1.2 if form.family == "chinese" else 0.0
    if case == "given":  # roof height given, default overhang
        height = ROOF * (1.5 if form.double_eave else 1.0)
        return RoofSpec(form, EAVE, roof_height=height, podium_height=podium)
    return RoofSpec(form, EAVE, roof_height=None, overhang=0.0)  # pitch/举架, no overhang


@pytest.fixture(scope="module")
def built() -> dict:
    """Every form on every footprint, in both cases, built once for the module."""
    return {
        (fp, form, case): build_building(FOOTPRINTS[fp], _spec(form, case))
        for fp in FOOTPRINTS
        for form in F
        for case in ("given", "pitch")
    }


def _overhang(form: RoofForm, case: str) -> float:
    return default_overhang(form.single, EAVE) if case == "given" else 0.0


@pytest.mark.parametrize("case", ["given", "pitch"])
@pytest.mark.parametrize("fp", list(FOOTPRINTS))
def test_every_form_is_closed_true_and_covering(built, fp, case):
    """Watertight, wound outward, eave and ridge within 1 cm, the roof covers the
    footprint (plus the overhang) without gaps, no degenerate triangle, no silent flat."""
    footprint = FOOTPRINTS[fp]
    for form in F:
        m = built[(fp, form, case)]
        what = f"{form.value} on {fp} ({case})"
        tm = trimesh.Trimesh(m.positions, m.triangles, process=False)
        assert tm.is_watertight and tm.is_winding_consistent, what
        assert tm.volume > 0, what  # outward
        assert m.triangles.dtype == np.uint32 and m.surface.dtype == np.uint8
        assert len(m.surface) == len(m.triangles)
        assert tm.area_faces.min() > 1e-6, what
        # eave = wall top
        wall_top = m.positions[m.triangles[m.surface == SURFACE_WALL]][..., 2].max()
        assert abs(wall_top - EAVE) < 0.01 and abs(m.eave_z - EAVE) < 0.01, what
        # ridge
        assert abs(m.ridge_z - m.positions[:, 2].max()) < 1e-9, what
        if case == "given":
            want = EAVE + (0 if form is F.FLAT else ROOF * (1.5 if form.double_eave else 1.0))
            assert abs(m.ridge_z - want) < 0.01, what
        else:
            assert m.ridge_z > EAVE + 0.5 or form is F.FLAT, what
        assert not any("flat" in f for f in m.fallbacks) or form is F.FLAT, (what, m.fallbacks)
        # coverage: the roof's projection covers the footprint and stays within the overhang
        roof = m.triangles[np.isin(m.surface, [SURFACE_ROOF])]
        xy = m.positions[roof][..., :2]
        tris = shapely.polygons(np.concatenate([xy, xy[:, :1]], axis=1))
        tris = tris[shapely.area(tris) > 1e-9]
        cover = shapely.union_all(tris).buffer(1e-4)
        assert footprint.difference(cover).area < 1e-3, what
        ov = _overhang(form, case)
        limit = footprint.buffer(ov + 0.01, join_style="mitre", mitre_limit=5.0)
        assert cover.difference(limit).area < 1e-3, what


def test_rectangle_forms_take_no_fallback(built):
    for form in F:
        if form in (F.SAWTOOTH,):
            continue
        for case in ("given", "pitch"):
            assert built[("rectangle", form, case)].fallbacks == [], (form, case)


def test_approximations_and_fallbacks_are_recorded(built):
    assert any("approximated" in f for f in built[("L", F.XIESHAN, "given")].fallbacks)
    assert any("approximated" in f for f in built[("courtyard", F.SHED, "given")].fallbacks)
    assert built[("L", F.GABLED, "given")].fallbacks == []
    assert built[("courtyard", F.HIPPED, "given")].fallbacks == []
    assert built[("octagon", F.CUANJIAN_8, "given")].fallbacks == []


def test_fallback_chain_ends_in_a_recorded_flat_roof(monkeypatch):
    def broken(*args, **kwargs):
        raise skeleton.SkeletonError("simulated CGAL failure")

    monkeypatch.setattr("tiling.l3.roofs.arbitrary.skeleton_roof", broken)
    m = build_building(FOOTPRINTS["L"], RoofSpec(F.GABLED, EAVE, 3.0))
    assert m.ridge_z == pytest.approx(EAVE)
    assert m.fallbacks[-1] == "built with a flat roof"
    assert any("simulated CGAL failure" in f for f in m.fallbacks)
    assert any("hip roof" in f for f in m.fallbacks)
    # a convex footprint still gets a pitched roof without the skeleton
    m = build_building(FOOTPRINTS["octagon"], RoofSpec(F.GABLED, EAVE, 3.0))
    assert m.fallbacks[-1] == "built as pyramidal roof (convex footprint)"
    assert m.ridge_z == pytest.approx(EAVE + 3.0)
    assert trimesh.Trimesh(m.positions, m.triangles).is_watertight


def _slopes_across(m, x_lo: float, x_hi: float) -> tuple[np.ndarray, np.ndarray]:
    """(distance from the south eave, slope) of the south-facing roof triangles."""
    t = m.triangles[m.surface == SURFACE_ROOF]
    p = m.positions[t]
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    c = p.mean(axis=1)
    sel = (n[:, 1] < -1e-9) & (n[:, 2] > 0) & (c[:, 0] > x_lo) & (c[:, 0] < x_hi)
    order = np.argsort(c[sel, 1])
    slope = np.hypot(n[sel, 0], n[sel, 1]) / n[sel, 2]
    return c[sel, 1][order], slope[order]


def test_jujia_profile_is_concave_five_to_nine():
    x, z = chinese.jujia(5.0, 1.0)
    s = np.diff(z) / np.diff(x)
    assert s[0] == pytest.approx(chinese.JU_OVERHANG)
    assert s[1] == pytest.approx(0.5) and s[-1] == pytest.approx(0.9)
    assert np.all(np.diff(s) > 0)
    m = build_building(box(0, 0, 20, 10), RoofSpec(F.YINGSHAN, EAVE, overhang=0.0))
    _, slope = _slopes_across(m, 4.0, 16.0)
    assert slope[0] == pytest.approx(0.5, abs=0.01) and slope[-1] == pytest.approx(0.9, abs=0.01)
    assert np.all(np.diff(slope) > -1e-6)


def test_jujia_on_a_skeleton_roof_too():
    m = build_building(FOOTPRINTS["L"], RoofSpec(F.WUDIAN, EAVE, overhang=0.0))
    _, slope = _slopes_across(m, 12.0, 18.0)
    assert slope.min() == pytest.approx(0.5, abs=0.02) and slope.max() > 0.85


def _ridge_length(m) -> float:
    top = m.positions[np.abs(m.positions[:, 2] - m.ridge_z) < 1e-6]
    return float(np.ptp(top[:, 0]))


def test_wudian_tuishan_lengthens_the_ridge():
    rect = box(0, 0, 20, 10)
    hip = build_building(rect, RoofSpec(F.HIPPED, EAVE, 4.0, overhang=0.0))
    wudian = build_building(rect, RoofSpec(F.WUDIAN, EAVE, 4.0, overhang=0.0))
    assert _ridge_length(hip) == pytest.approx(10.0, abs=0.01)
    assert _ridge_length(wudian) > 10.5


def test_xieshan_has_gables_set_in_from_the_ends():
    m = build_building(box(0, 0, 20, 10), RoofSpec(F.XIESHAN, EAVE, 4.0))
    gable = m.positions[m.triangles[m.surface == SURFACE_GABLE]].reshape(-1, 3)
    assert len(gable) and gable[:, 2].min() > EAVE + 1.0
    assert gable[:, 0].min() > 1.0 and gable[:, 0].max() < 19.0  # 收山


def test_qiqiao_turns_the_eave_corners_up():
    m = build_building(box(0, 0, 20, 10), RoofSpec(F.WUDIAN, EAVE, 4.0, overhang=1.5))
    fascia = m.positions[m.triangles[m.surface == SURFACE_FASCIA]].reshape(-1, 3)
    corner = fascia[(fascia[:, 0] < -1.4) & (fascia[:, 1] < -1.4)][:, 2].max()
    middle = fascia[np.abs(fascia[:, 0] - 10.0) < 4.0][:, 2].max()
    assert corner > middle + 0.2
    western = build_building(box(0, 0, 20, 10), RoofSpec(F.HIPPED, EAVE, 4.0, overhang=1.5))
    fw = western.positions[western.triangles[western.surface == SURFACE_FASCIA]].reshape(-1, 3)
    assert np.ptp(fw[:, 2]) < 0.2  # straight western eaves


def test_xuanshan_overhangs_its_gables_yingshan_does_not():
    rect = box(0, 0, 20, 10)
    xuan = build_building(rect, RoofSpec(F.XUANSHAN, EAVE, 4.0, overhang=1.0))
    ying = build_building(rect, RoofSpec(F.YINGSHAN, EAVE, 4.0, overhang=1.0))
    assert xuan.positions[:, 0].min() == pytest.approx(-1.0)
    assert ying.positions[:, 0].min() > -0.1
    assert ying.positions[:, 1].min() == pytest.approx(-1.0)


def test_juanpeng_has_a_rounded_ridge():
    rect = box(0, 0, 20, 10)
    for form, top_slope in ((F.JUANPENG, 0.35), (F.YINGSHAN, 0.85)):
        m = build_building(rect, RoofSpec(form, EAVE, 4.0, overhang=0.0))
        _, slope = _slopes_across(m, 4.0, 16.0)
        assert (slope[-1] < top_slope) == (form is F.JUANPENG)


def test_double_eave_has_two_eaves_and_an_upper_storey():
    for fp in ("rectangle", "L"):
        m = build_building(FOOTPRINTS[fp], RoofSpec(F.CHONGYAN_XIESHAN, EAVE, 7.0))
        soffit = m.positions[m.triangles[m.surface == SURFACE_EAVE_UNDERSIDE]][..., 2]
        levels = np.unique(np.round(soffit.min(axis=1), 1))
        assert len(levels) >= 2 and levels.min() == pytest.approx(EAVE), fp
        assert (m.surface == SURFACE_GABLE).any(), fp
        assert m.ridge_z == pytest.approx(EAVE + 7.0, abs=0.01)
    flag = build_building(box(0, 0, 20, 10), RoofSpec(F.WUDIAN, EAVE, 7.0, double_eave=True))
    assert (flag.surface == SURFACE_EAVE_UNDERSIDE).sum() > (
        build_building(box(0, 0, 20, 10), RoofSpec(F.WUDIAN, EAVE, 7.0)).surface
        == SURFACE_EAVE_UNDERSIDE
    ).sum()


def test_temple_hall_stands_on_a_podium():
    for fp in ("rectangle", "L"):
        m = build_building(FOOTPRINTS[fp], RoofSpec(F.WUDIAN, EAVE, 4.0, podium_height=1.5))
        pod = m.positions[m.triangles[m.surface == SURFACE_PODIUM]].reshape(-1, 3)
        assert pod[:, 2].max() == pytest.approx(1.5)
        assert pod[:, 0].min() < FOOTPRINTS[fp].bounds[0] - 0.5


def test_cuanjian_meets_in_one_apex():
    octagon = FOOTPRINTS["octagon"]
    m = build_building(octagon, RoofSpec(F.CUANJIAN_8, EAVE, 5.0))
    top = m.positions[np.abs(m.positions[:, 2] - m.ridge_z) < 1e-6]
    assert len(top) == 1
    assert np.allclose(top[0, :2], [octagon.centroid.x, octagon.centroid.y], atol=1e-6)


def test_gabled_l_has_gables_on_both_wing_ends():
    m = build_building(FOOTPRINTS["L"], RoofSpec(F.GABLED, EAVE, 4.0, overhang=0.0))
    gable = m.positions[m.triangles[m.surface == SURFACE_GABLE]].reshape(-1, 3)
    assert np.any(np.abs(gable[:, 0] - 20.0) < 1e-6) and np.any(np.abs(gable[:, 1] - 20.0) < 1e-6)


def test_orientation_turns_the_ridge():
    rect = box(0, 0, 20, 10)
    along = build_building(rect, RoofSpec(F.GABLED, EAVE, 3.0, overhang=0.0))
    across = build_building(rect, RoofSpec(F.GABLED, EAVE, 3.0, overhang=0.0, orientation=0.0))
    for m, axis in ((along, 0), (across, 1)):
        top = m.positions[np.abs(m.positions[:, 2] - m.ridge_z) < 1e-6]
        assert np.ptp(top[:, axis]) == pytest.approx(20.0 if axis == 0 else 10.0)
        assert np.ptp(top[:, 1 - axis]) < 1e-6


def test_bad_inputs_raise_input_data_errors():
    with pytest.raises(InputDataError):
        build_building(shapely.Point(0, 0), RoofSpec(F.GABLED, EAVE))
    with pytest.raises(InputDataError):
        build_building(box(0, 0, 0.5, 0.5), RoofSpec(F.GABLED, EAVE))
    with pytest.raises(InputDataError):
        build_building(box(0, 0, 10, 10), RoofSpec(F.GABLED, 0.0))
    with pytest.raises(InputDataError):
        build_building(box(0, 0, 10, 10), RoofSpec(F.GABLED, EAVE, podium_height=EAVE))
    bowtie = Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])
    m = build_building(bowtie, RoofSpec(F.HIPPED, EAVE, 2.0))
    assert any("make_valid" in f for f in m.fallbacks)
    assert trimesh.Trimesh(m.positions, m.triangles).is_watertight


def test_slice_at_keeps_the_mesh_closed():
    v, tris, _ = skeleton.skeleton_roof(FOOTPRINTS["U"], gables=False)
    v2, t2 = skeleton.slice_at(v, tris, np.array([0.7, 1.9, 3.1]))
    assert len(t2) > len(tris)
    for lev in (0.7, 1.9, 3.1):
        assert np.any(np.abs(v2[:, 2] - lev) < 1e-12)
    edges = np.sort(np.concatenate([t2[:, [0, 1]], t2[:, [1, 2]], t2[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    boundary = counts == 1  # the open bottom of the roof only
    assert set(np.unique(counts)) <= {1, 2}
    assert boundary.sum() == len(FOOTPRINTS["U"].exterior.coords) - 1


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("value", "form"),
    [
        ("gabled", F.GABLED),
        ("Hipped", F.HIPPED),
        ("half-hipped", F.HALF_HIPPED),
        ("half_hipped", F.HALF_HIPPED),
        ("pyramidal", F.PYRAMIDAL),
        ("mansard", F.MANSARD),
        ("dome", F.DOME),
        ("skillion", F.SHED),
        ("shed", F.SHED),
        ("flat", F.FLAT),
        ("round", F.ROUND),
        ("gambrel", F.GAMBREL),
        ("onion", F.DOME),
        ("硬山", F.YINGSHAN),
        ("硬山顶", F.YINGSHAN),
        ("悬山", F.XUANSHAN),
        ("歇山", F.XIESHAN),
        ("庑殿顶", F.WUDIAN),
        ("攒尖", F.CUANJIAN),
        ("四角攒尖", F.CUANJIAN_4),
        ("六角攒尖", F.CUANJIAN_6),
        ("八角攒尖顶", F.CUANJIAN_8),
        ("圆攒尖", F.CUANJIAN_ROUND),
        ("卷棚", F.JUANPENG),
        ("重檐歇山", F.CHONGYAN_XIESHAN),
        ("重檐庑殿顶", F.CHONGYAN_WUDIAN),
        ("xieshan", F.XIESHAN),
        (1000, F.FLAT),
        (1010, F.SHED),
        (1030, F.GABLED),
        ("1040", F.HIPPED),
        (1050, F.HALF_HIPPED),
        (1060, F.MANSARD),
        (1070, F.PYRAMIDAL),
        (1080, F.CONE),
        (1090, F.DOME),
        (1100, F.SAWTOOTH),
        (1110, F.ROUND),
        (1120, F.PYRAMIDAL),
        (1030.0, F.GABLED),
    ],
)
def test_parse_roof_form(value, form):
    assert parse_roof_form(value) is form


def test_parse_roof_form_empty_and_unknown():
    assert parse_roof_form(None) is None
    assert parse_roof_form("  ") is None
    assert parse_roof_form(float("nan")) is None
    for bad in ("banana", 1234, "1999", 12.5):
        with pytest.raises(UnknownRoofFormError) as info:
            parse_roof_form(bad)
        assert isinstance(info.value, InputDataError)
        assert "\n" not in str(info.value) and str(bad) in str(info.value)


def test_form_properties():
    assert F.CHONGYAN_XIESHAN.double_eave and F.CHONGYAN_XIESHAN.single is F.XIESHAN
    assert F.XIESHAN.family == "chinese" and F.GABLED.family == "western"
    assert not F.GABLED.double_eave and F.GABLED.single is F.GABLED


def test_straighten_drops_only_nearly_straight_vertices():
    from tiling.l3.roofs.common import straighten

    # a 1° kink at (10, 0.087) goes, the 90° corners and a 10° kink at (20, 5) stay
    p = Polygon([(0, 0), (10, 0.0873), (20, 0), (20, 5), (21.76, 10), (0, 10)])
    out = straighten(p)
    xy = {tuple(np.round(c, 3)) for c in out.exterior.coords}
    assert (10.0, 0.087) not in xy and (20.0, 5.0) in xy and len(out.exterior.coords) == 6


def test_podium_fills_a_narrow_courtyard():
    narrow = Polygon(box(0, 0, 20, 20).exterior.coords, [box(9.8, 5, 10.2, 15).exterior.coords])
    for form in (F.FLAT, F.HIPPED):
        m = build_building(narrow, RoofSpec(form, EAVE, 2.0, podium_height=1.0))
        assert trimesh.Trimesh(m.positions, m.triangles).is_watertight
        assert (m.surface == SURFACE_PODIUM).any()


def test_components_group_like_scipy():
    """The plain union-find of :func:`skeleton._collapse` gives scipy's grouping."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(3)
    for n in (1, 5, 40):
        pairs = rng.integers(0, n, size=(n // 2 + 1, 2))
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
        want = connected_components(graph, directed=False)[1]
        got = skeleton._components(n, pairs)
        assert got.min() == 0 and got.max() == want.max()  # labels 0..k-1, k components
        # same partition: label pairs map one to one
        assert len(set(zip(got.tolist(), want.tolist(), strict=True))) == want.max() + 1


def test_collapse_keeps_the_lowest_node_of_each_cluster():
    v = np.array([[0, 0, 0.0], [5, 0, 0], [2, 2, 1.0], [2, 2, 1.0005], [2, 2.0004, 0.9998]])
    tris = np.array([[0, 1, 2], [0, 3, 1], [2, 3, 4], [1, 4, 0]])
    _, out = skeleton._collapse(v, tris)
    # 2, 3 and 4 are one node, the lowest (4); the sliver among them is dropped
    assert out.tolist() == [[0, 1, 4], [0, 4, 1], [1, 4, 0]]


def test_cached_profiles_are_read_only_and_stable():
    x, z = chinese.jujia(4.2, 0.9)
    with pytest.raises(ValueError):
        z[0] = 1.0
    x2, z2 = chinese.jujia(4.2, 0.9)
    assert np.array_equal(x, x2) and np.array_equal(z, z2) and z[0] == 0.0
