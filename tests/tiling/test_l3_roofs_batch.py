"""The batched path of L3 roofs gives the per-building path's meshes (tiling.l3.roofs.batch)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import shapely
from shapely import affinity
from shapely.geometry import Polygon, box

from tiling.l3.mesh import corners, corners_many
from tiling.l3.roofs import RoofForm, RoofSpec, build_building
from tiling.l3.roofs.batch import BATCH_FORMS, build_batch
from tiling.l3.roofs.common import CENTRAL

F = RoofForm
DIRECTIONAL = sorted(BATCH_FORMS, key=lambda f: f.value)
FORMS = DIRECTIONAL + sorted(CENTRAL, key=lambda f: f.value)


def _cases(form: RoofForm, double: bool, rng: np.random.Generator, k: int = 12):
    """Rotated, shifted rectangles: heights given and natural, podiums, orientations,
    overhangs given (0 too), narrow and square ones (so some double eaves do not fit)."""
    out = []
    for j in range(k):
        w, d = rng.uniform(6, 28), rng.uniform(4, 16)
        if j == 0:
            d = w  # a square: hips meet in one apex
        g = box(0, 0, w, d)
        if form in CENTRAL and j % 3:  # central forms also on hexagons and 24-gons
            a = np.arange([6, 24][j % 2]) * 2 * np.pi / [6, 24][j % 2]
            g = Polygon(np.column_stack([d * np.cos(a), d * np.sin(a)]))
        g = affinity.rotate(g, rng.uniform(0, 360), origin=(0, 0))
        g = affinity.translate(g, rng.uniform(-6, 6), rng.uniform(-6, 6))
        spec = RoofSpec(
            form,
            eave_height=float(rng.uniform(3, 12)),
            roof_height=None if j % 2 else float(rng.uniform(1.5, 7)),
            overhang=None if j % 4 else float(rng.choice([0.0, 0.3, 1.2])),
            double_eave=double,
            podium_height=float(rng.uniform(0.3, 1.5)) if j % 3 == 0 else 0.0,
            orientation=None if j % 5 else float(rng.uniform(0, 360)),
        )
        out.append((g, spec))
    return out


@pytest.fixture(scope="module")
def pairs():
    """(footprint, spec, batched mesh or None, per-building mesh) for every batch form,
    single and double eave, built in one batch."""
    rng = np.random.default_rng(13)
    cases = [c for f, dbl in itertools.product(FORMS, (False, True)) for c in _cases(f, dbl, rng)]
    fps, specs = zip(*cases, strict=True)
    batched = build_batch(list(fps), list(specs))
    return [(g, s, b, build_building(g, s)) for g, s, b in zip(fps, specs, batched, strict=True)]


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.value)
def test_batched_mesh_equals_the_per_building_mesh(pairs, form):
    checked = 0
    for _, spec, got, ref in pairs:
        if spec.form is not form or got is None:
            continue
        assert not ref.fallbacks
        assert np.array_equal(got.triangles, ref.triangles)
        assert np.array_equal(got.surface, ref.surface)
        assert got.positions.shape == ref.positions.shape
        assert np.abs(got.positions - ref.positions).max() < 1e-3  # within 1 mm
        assert got.eave_z == ref.eave_z
        assert abs(got.ridge_z - ref.ridge_z) < 1e-3
        assert got.triangles.dtype == ref.triangles.dtype == np.uint32
        assert got.surface.dtype == ref.surface.dtype == np.uint8
        checked += 1
    assert checked >= 15  # single and double eaves of the form were compared


def test_batch_takes_every_rectangle_the_chain_builds_first_time(pairs):
    """A building left out is one the per-building path builds by a fallback."""
    for _, spec, got, ref in pairs:
        if got is None:
            assert ref.fallbacks, spec
    left = sum(got is None for _, _, got, _ in pairs)
    assert 0 < left < len(pairs) // 4  # some 重檐 do not fit; most do


def test_batched_meshes_are_closed_and_reach_their_heights(pairs):
    for _, spec, got, _ in pairs:
        if got is None:
            continue
        t = got.triangles.astype(np.int64)
        n = len(got.positions)
        fwd = np.sort(t.ravel() * n + t[:, [1, 2, 0]].ravel())
        rev = np.sort(t[:, [1, 2, 0]].ravel() * n + t.ravel())
        assert np.array_equal(fwd, rev) and np.all(np.diff(fwd) > 0)
        assert abs(got.positions[:, 2].max() - got.ridge_z) < 1e-9
        if spec.roof_height is not None:
            assert abs(got.ridge_z - spec.eave_height - spec.roof_height) < 0.01


def test_batch_leaves_other_buildings_to_the_chain():
    square = box(0, 0, 10, 10)
    ell = Polygon([(0, 0), (12, 0), (12, 5), (5, 5), (5, 12), (0, 12)])
    court = Polygon(box(0, 0, 20, 20).exterior.coords, [box(6, 6, 14, 14).exterior.coords])
    cases = [
        (ell, RoofSpec(F.GABLED, 6.0)),  # not a rectangle
        (court, RoofSpec(F.YINGSHAN, 6.0)),  # a hole
        (ell, RoofSpec(F.PYRAMIDAL, 6.0)),  # a central form, not on a convex footprint
        (court, RoofSpec(F.CUANJIAN_4, 6.0)),
        (square, RoofSpec(F.FLAT, 6.0)),
        (square, RoofSpec(F.GABLED, 6.0, roof_height=0.0)),  # flat by height
        (square, RoofSpec(F.GABLED, -1.0)),  # raises in build_building
        (square, RoofSpec(F.GABLED, 6.0, overhang=float("nan"))),
        (shapely.MultiPolygon([square, box(20, 0, 30, 10)]), RoofSpec(F.GABLED, 6.0)),
        (box(0, 0, 0.5, 0.5), RoofSpec(F.GABLED, 6.0)),  # under 1 m²
        (square, RoofSpec(F.GABLED, 6.0)),  # the ones the batch takes
        (square, RoofSpec(F.CUANJIAN_4, 6.0)),
    ]
    out = build_batch([g for g, _ in cases], [s for _, s in cases])
    assert [m is None for m in out] == [True] * 10 + [False] * 2
    assert build_batch([], []) == []


def test_corners_many_equals_corners_per_building(pairs):
    meshes = [ref for _, _, _, ref in pairs[:40]]
    owner = np.repeat(np.arange(20), 2)  # two parts per building
    got = corners_many(
        [(m.positions, m.triangles, m.surface) for m in meshes], owner, 21, skirt=0.3
    )
    assert got[20] is None
    for i in range(20):
        parts = [
            corners(m.positions, m.triangles, m.surface, 0.3) for m in meshes[2 * i : 2 * i + 2]
        ]
        c = got[i]
        assert c is not None
        assert np.allclose(c.local, np.concatenate([p.local for p in parts]))
        assert np.allclose(c.normal, np.concatenate([p.normal for p in parts]))
        assert np.array_equal(c.surface, np.concatenate([p.surface for p in parts]))


def test_close_pairs_finds_what_a_kd_tree_finds():
    from scipy.spatial import cKDTree

    from tiling.l3.roofs.skeleton import close_pairs

    rng = np.random.default_rng(2)
    for n in (0, 1, 7, 400):
        v = rng.uniform(0, 0.05, (n, 3))
        v[::3, 0] = 0.01  # a column of nodes at one x
        for tol in (1e-3, 6e-3):
            got = {tuple(p) for p in close_pairs(v, tol).tolist()}
            want = {tuple(p) for p in cKDTree(v).query_pairs(tol, output_type="ndarray").tolist()}
            assert got == want
