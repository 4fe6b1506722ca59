"""Encoding extruded tiles from shared rows gives the bytes of the expanded meshes.

The L2 encoder extrudes with ``shared_rows=True`` (wall corners and roof vertices are
rows of base/top, quantized once) and hands the tile's ENU bounds to the glb writer;
the ENU conversion shares its sines and cosines with the up vectors; the WKB reader
reads unaligned values through one-byte-stride views. Each must give exactly what the
plain route gives.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from cim.crs import enu_to_ecef_matrix, lonlat_to_enu, lonlat_to_enu_up, up_vectors
from tiling.buildings.extrude import _quads, extrude
from tiling.buildings.l2 import _geometry
from tiling.buildings.ragged import wkb_to_ragged
from tiling.gltf import (
    FeatureMesh,
    PropertySpec,
    _encoded_attributes,
    _Writer,
    enu_bounds_of,
    optimise_mesh,
    read_accessor,
    read_glb,
    write_glb,
)


def _city(n: int, seed: int = 5) -> np.ndarray:
    """Boxes, rotated L-shapes, courtyards, round towers and multipolygons (lon/lat)."""
    rng = np.random.default_rng(seed)
    out = np.empty(n, dtype=object)
    for i in range(n):
        x, y = 114.0 + rng.uniform(0, 0.02), 40.0 + rng.uniform(0, 0.02)
        s = rng.uniform(5e-5, 2e-4)
        box = shapely.box(x, y, x + s, y + s)
        kind = i % 5
        if kind == 1:
            shape = box.difference(shapely.box(x + s / 2, y + s / 2, x + s, y + s))
            out[i] = shapely.affinity.rotate(shape, rng.uniform(0, 90))
        elif kind == 2:
            out[i] = box.difference(shapely.box(x + s / 4, y + s / 4, x + s / 2, y + s / 2))
        elif kind == 3:
            out[i] = shapely.MultiPolygon([box, shapely.box(x + 2 * s, y, x + 3 * s, y + s)])
        elif kind == 4:
            out[i] = shapely.Point(x, y).buffer(s / 2, quad_segs=int(rng.integers(1, 12)))
        else:
            out[i] = box
    return shapely.orient_polygons(out, exterior_cw=False)


@pytest.fixture(scope="module")
def tile() -> dict[str, np.ndarray]:
    city = _city(400)
    frame = enu_to_ecef_matrix(114.01, 40.01, 50.0)
    base = np.linspace(40.0, 60.0, len(city))
    height = np.linspace(3.0, 90.0, len(city))
    return _geometry(shapely.to_wkb(city, output_dimension=2), base, height, frame)


def _extrude(geo: dict[str, np.ndarray], **kw) -> FeatureMesh:
    keys = ("base", "top", "ring_offsets", "part_ring_offsets", "part_building")
    return extrude(*(geo[k] for k in keys), **kw)


_PROPS = [PropertySpec("id", "STRING"), PropertySpec("h", "SCALAR", "FLOAT32")]


def _table(n: int) -> dict[str, np.ndarray]:
    ids = np.array([f"b{i}" for i in range(n)], dtype=object)
    return {"id": ids, "h": np.arange(n, dtype=np.float32)}


def test_enu_and_up_in_one_pass_equal_the_two_functions() -> None:
    rng = np.random.default_rng(1)
    lon, lat = 114.0 + rng.uniform(0, 0.5, 5000), 40.0 + rng.uniform(0, 0.5, 5000)
    h = rng.uniform(-10, 300, 5000)
    frame = enu_to_ecef_matrix(114.2, 40.2, 20.0)
    enu, up = lonlat_to_enu_up(lon, lat, h, frame)
    np.testing.assert_array_equal(enu, lonlat_to_enu(lon, lat, h, frame))
    np.testing.assert_array_equal(up, up_vectors(lon, lat, frame))
    np.testing.assert_allclose(np.linalg.norm(up, axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("skirt", [0.0, 2.5])
def test_shared_rows_expand_to_the_plain_mesh(tile, skirt: float) -> None:
    plain = _extrude(tile, skirt=skirt)
    shared = _extrude(tile, skirt=skirt, shared_rows=True)
    assert shared.position_index is not None and shared.normal_index is not None
    m = len(tile["base"])
    assert len(shared.positions) == 2 * m < len(plain.positions)
    # every row is some vertex's: the tile's bounds are those of the expanded mesh
    assert np.all(np.bincount(shared.position_index, minlength=2 * m) > 0)
    expanded = shared.expanded()
    for field in ("positions", "normals", "feature_ids", "indices"):
        np.testing.assert_array_equal(getattr(expanded, field), getattr(plain, field))
        assert getattr(expanded, field).dtype == getattr(plain, field).dtype
    assert plain.expanded() is plain


@pytest.mark.parametrize("batch_ids", [False, True])
@pytest.mark.parametrize("compression", ["meshopt", "none"])
def test_shared_rows_and_given_bounds_write_the_same_glb(tile, batch_ids, compression) -> None:
    plain = _extrude(tile)
    shared = _extrude(tile, shared_rows=True)
    table = _table(int(tile["part_building"].max()) + 1)
    kw = {"compression": compression, "batch_ids": batch_ids}
    want = write_glb(plain, _PROPS, table, **kw)
    assert write_glb(shared, _PROPS, table, **kw) == want
    bounds = enu_bounds_of(shared.positions)
    assert write_glb(shared, _PROPS, table, enu_bounds=bounds, **kw) == want
    # the accessor's min/max (from the corners) are those of the quantized positions
    gltf, binary = read_glb(want)
    acc = gltf["meshes"][0]["primitives"][0]["attributes"]["POSITION"]
    q = read_accessor(gltf, binary, acc)
    assert gltf["accessors"][acc]["min"] == q.min(axis=0).tolist()
    assert gltf["accessors"][acc]["max"] == q.max(axis=0).tolist()


def test_rows_of_vertices_in_no_triangle_do_not_stretch_the_extent() -> None:
    rng = np.random.default_rng(2)
    rows = rng.uniform(-50, 50, (200, 3))
    rows[-1] = [1e4, -1e4, 1e4]  # only vertex 399 uses it, and no triangle does
    index = np.concatenate([np.arange(199), np.arange(199), rng.integers(0, 199, 1), [199]])
    normals = rng.normal(size=(400, 3)).astype(np.float32)
    tris = rng.integers(0, 399, 900)
    tris[:399] = np.arange(399)
    shared = FeatureMesh(rows, normals, rng.integers(0, 9, 400), tris, None, index, None)
    got = _encoded_attributes(shared)
    want = _encoded_attributes(shared.expanded())
    for a, b in zip(got[1:], want[1:], strict=True):
        np.testing.assert_array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object))
    ref = optimise_mesh(shared)
    assert got[3] == float(np.ptp(ref.positions, axis=0).max()) / 65535.0


def test_known_vertex_count_encodes_the_same_indices() -> None:
    indices = np.random.default_rng(3).integers(0, 5000, 30000).astype(np.uint16)
    a, b = _Writer(compress=True), _Writer(compress=True)
    a.vertex_view(indices, 34963, "TRIANGLES")
    b.vertex_view(indices, 34963, "TRIANGLES", vertex_count=5000)
    assert a.binary == b.binary


def test_quad_templates_grow_and_stay_correct() -> None:
    for e in (3, 5000, 10, 70000, 0):
        corners, quad_of = _quads(e)
        want = (4 * np.arange(e)[:, None] + [0, 1, 2, 0, 2, 3]).reshape(-1)
        np.testing.assert_array_equal(corners, want)
        np.testing.assert_array_equal(quad_of, np.repeat(np.arange(e), 4))


def test_wkb_at_every_alignment_reads_exactly() -> None:
    # footprints of 1..9 rings and parts shift each value across all byte alignments
    rng = np.random.default_rng(4)
    shapes = []
    for k in range(40):
        x, y = rng.uniform(0, 100, 2)
        holes = [
            shapely.box(x + 1 + 2 * j, y + 1, x + 2 + 2 * j, y + 2).exterior for j in range(k % 4)
        ]
        poly = shapely.Polygon(shapely.box(x, y, x + 9, y + 3).exterior, holes)
        shapes.append(shapely.MultiPolygon([poly] * (1 + k % 3)) if k % 2 else poly)
    wkb = shapely.to_wkb(np.array(shapes, dtype=object), output_dimension=2)
    coords, ring_offsets, part_ring_offsets, part_building = wkb_to_ragged(wkb)
    parts, owner = shapely.get_parts(shapely.from_wkb(wkb), return_index=True)
    _, want, (want_rings, want_parts) = shapely.to_ragged_array(parts)
    np.testing.assert_array_equal(coords, want)
    np.testing.assert_array_equal(ring_offsets, want_rings)
    np.testing.assert_array_equal(part_ring_offsets, want_parts)
    np.testing.assert_array_equal(part_building, owner)
