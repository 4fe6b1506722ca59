"""The faster L2 tile encoding gives what the earlier code gave.

References below are the earlier implementations (shapely's ragged arrays, the
(n, 3)-array quantization and normal encoding, ``np.cross``, the wall builder): the
new code must match them value for value. Roofs with one reflex vertex are fanned
from it instead of cut by earcut: other triangles, the same roof (checked below).
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
import shapely.affinity

from cim.crs import enu_to_ecef_matrix
from tiling.buildings.extrude import _cross, _left_turns, _roofs, _walls, extrude
from tiling.buildings.l2 import _geometry
from tiling.buildings.ragged import wkb_to_ragged
from tiling.gltf import (
    FeatureMesh,
    _encoded_attributes,
    encode_normals,
    optimise_mesh,
    quantize_positions,
)


def _city(n: int, seed: int = 3) -> np.ndarray:
    """Lon/lat footprints: boxes, L-shapes, courtyards, multipolygons."""
    rng = np.random.default_rng(seed)
    lon = 114.0 + rng.uniform(0, 0.02, n)
    lat = 40.0 + rng.uniform(0, 0.02, n)
    d = rng.uniform(5e-5, 2e-4, n)
    out = np.empty(n, dtype=object)
    for i in range(n):
        x, y, s = lon[i], lat[i], d[i]
        box = shapely.box(x, y, x + s, y + s)
        kind = i % 5
        if kind == 1:
            out[i] = box.difference(shapely.box(x + s / 2, y + s / 2, x + s, y + s))
        elif kind == 2:
            out[i] = box.difference(shapely.box(x + s / 4, y + s / 4, x + s / 2, y + s / 2))
        elif kind == 3:
            far = shapely.box(x + 2 * s, y, x + 3 * s, y + s)
            out[i] = shapely.MultiPolygon([box, far, shapely.box(x, y + 2 * s, x + s, y + 3 * s)])
        elif kind == 4:
            out[i] = shapely.Point(x, y).buffer(s / 2, quad_segs=int(rng.integers(1, 30)))
        else:
            out[i] = box
    return shapely.orient_polygons(out, exterior_cw=False)


def _shapely_ragged(wkb: np.ndarray) -> tuple[np.ndarray, ...]:
    geoms = shapely.from_wkb(wkb)
    parts, part_building = shapely.get_parts(geoms, return_index=True)
    _, coords, (ring_offsets, part_ring_offsets) = shapely.to_ragged_array(parts)
    return coords, ring_offsets, part_ring_offsets, part_building


@pytest.mark.parametrize("n", [1, 7, 500])
def test_wkb_parse_matches_shapely_ragged_arrays(n: int) -> None:
    wkb = shapely.to_wkb(_city(n), output_dimension=2)
    got = wkb_to_ragged(wkb)
    assert got is not None
    for a, b in zip(got, _shapely_ragged(wkb), strict=True):
        np.testing.assert_array_equal(a, b)


def test_wkb_parse_declines_what_it_does_not_read() -> None:
    city = _city(10)
    big_endian = shapely.to_wkb(city, output_dimension=2, byte_order=0)
    assert wkb_to_ragged(big_endian) is None
    with_z = shapely.to_wkb(shapely.force_3d(city, 5.0), output_dimension=3)
    assert wkb_to_ragged(with_z) is None
    mixed = shapely.to_wkb(np.array([city[0], shapely.Point(1, 2)], dtype=object))
    assert wkb_to_ragged(mixed) is None
    truncated = shapely.to_wkb(city[:2], output_dimension=2)
    truncated[1] = truncated[1][:-8]
    assert wkb_to_ragged(truncated) is None
    assert wkb_to_ragged(np.array([], dtype=object)) is None
    corrupt = shapely.to_wkb(city[:1], output_dimension=2)
    corrupt[0] = corrupt[0][:5] + (2**31).to_bytes(4, "little") + corrupt[0][9:]  # rings
    assert wkb_to_ragged(corrupt) is None
    empty = shapely.to_wkb(np.array([shapely.Polygon()], dtype=object), output_dimension=2)
    assert wkb_to_ragged(empty) is None


def test_geometry_from_wkb_equals_the_shapely_route() -> None:
    city = _city(200)
    wkb = shapely.to_wkb(city, output_dimension=2)
    frame = enu_to_ecef_matrix(114.01, 40.01, 50.0)
    base = np.linspace(40.0, 60.0, len(city))
    height = np.linspace(3.0, 90.0, len(city))
    fast = _geometry(wkb, base, height, frame)
    slow = _geometry(city, base, height, frame)  # geometries: shapely's ragged arrays
    assert fast.keys() == slow.keys()
    for key in fast:
        np.testing.assert_array_equal(fast[key], slow[key])


def _old_quantize(positions: np.ndarray) -> tuple[np.ndarray, list[float], float]:
    gl = np.column_stack([positions[:, 0], positions[:, 2], -positions[:, 1]])
    lo = np.array([gl[:, k].min() for k in range(3)])
    extent = float(max(gl[:, k].max() - lo[k] for k in range(3)))
    scale = extent / 65535.0 if extent > 0 else 1.0
    q = np.zeros((len(gl), 4), dtype=np.uint16)
    q[:, :3] = np.clip(np.rint((gl - lo) / scale), 0, 65535)
    return q, [float(v) for v in lo], scale


def _old_normals(normals: np.ndarray) -> np.ndarray:
    gl = np.column_stack([normals[:, 0], normals[:, 2], -normals[:, 1]])
    out = np.zeros((len(gl), 4), dtype=np.int8)
    out[:, :3] = np.clip(np.rint(gl * 127.0), -127, 127)
    return out


def _mesh(seed: int, unreferenced: bool) -> FeatureMesh:
    rng = np.random.default_rng(seed)
    n = 3000
    positions = rng.uniform(-800, 800, (n, 3)) * [1.0, 1.0, 0.1]
    normals = rng.normal(size=(n, 3))
    normals /= np.linalg.norm(normals, axis=1)[:, None]
    # ties at .5/127 steps: rounding must happen in float32 as before
    normals[:50] = np.array([0.5 / 127, -1.5 / 127, 2.5 / 127])
    used = n - 40 if unreferenced else n
    indices = rng.integers(0, used, 3 * 4000)
    indices[:used] = np.arange(used)  # every vertex below ``used`` is referenced
    return FeatureMesh(positions, normals.astype(np.float32), rng.integers(0, 300, n), indices)


@pytest.mark.parametrize("unreferenced", [False, True])
def test_encoded_attributes_equal_optimise_then_encode(unreferenced: bool) -> None:
    mesh = _mesh(5, unreferenced)
    ref = optimise_mesh(mesh)
    q_ref, t_ref, s_ref = _old_quantize(ref.positions)
    out, q, t, s, nrm, bounds = _encoded_attributes(mesh)
    np.testing.assert_array_equal(q, q_ref)
    assert (t, s) == (t_ref, s_ref)
    assert bounds == (q_ref[:, :3].min(axis=0).tolist(), q_ref[:, :3].max(axis=0).tolist())
    np.testing.assert_array_equal(nrm, _old_normals(ref.normals))
    np.testing.assert_array_equal(out.feature_ids, ref.feature_ids)
    np.testing.assert_array_equal(out.indices, ref.indices)


def test_quantize_and_normals_equal_the_array_versions() -> None:
    mesh = _mesh(9, False)
    for positions in (mesh.positions, mesh.positions.astype(np.float32)):
        q, t, s = quantize_positions(positions)
        q_ref, t_ref, s_ref = _old_quantize(positions)
        np.testing.assert_array_equal(q, q_ref)
        assert (t, s) == (t_ref, s_ref)
    for normals in (mesh.normals, mesh.normals.astype(np.float64)):
        np.testing.assert_array_equal(encode_normals(normals), _old_normals(normals))
    assert quantize_positions(np.zeros((0, 3)))[0].shape == (0, 4)


def _old_walls(base, top, ring_offsets, ring_feature) -> FeatureMesh:
    m = len(base)
    is_start = np.ones(m, dtype=bool)
    is_start[ring_offsets[1:] - 1] = False
    a = np.flatnonzero(is_start)
    b = a + 1
    e = len(a)
    quad = np.empty((e, 4, 3))
    quad[:, 0], quad[:, 1], quad[:, 2], quad[:, 3] = base[a], base[b], top[b], top[a]
    normal = np.cross(base[b] - base[a], top[a] - base[a])
    length = np.sqrt(np.einsum("ij,ij->i", normal, normal))[:, None]
    normal = np.divide(normal, length, out=np.zeros_like(normal), where=length > 0)
    coord_ring = np.repeat(np.arange(len(ring_offsets) - 1), np.diff(ring_offsets))
    corners = np.arange(e)[:, None] * 4
    first, second = np.array([0, 1, 2]), np.array([0, 2, 3])
    tris = np.concatenate([corners + first, corners + second], axis=1).reshape(-1)
    return FeatureMesh(
        quad.reshape(-1, 3),
        np.repeat(normal, 4, axis=0).astype(np.float32),
        np.repeat(ring_feature[coord_ring[a]], 4),
        tris,
    )


def _old_convex(xyz, ring_offsets) -> np.ndarray:
    m = len(xyz)
    nxt = np.arange(1, m + 1)
    nxt[ring_offsets[1:] - 1] = ring_offsets[:-1] + 1
    d1 = xyz[nxt, :2] - xyz[:, :2]
    d2 = xyz[nxt[nxt], :2] - xyz[nxt, :2]
    cross = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
    scale = np.linalg.norm(d1, axis=1) * np.linalg.norm(d2, axis=1)
    left = cross >= -1e-9 * np.maximum(scale, 1e-12)
    return np.logical_and.reduceat(left, ring_offsets[:-1])


def test_walls_convexity_and_cross_equal_the_earlier_code() -> None:
    city = _city(300)
    frame = enu_to_ecef_matrix(114.01, 40.01, 50.0)
    geo = _geometry(city, np.full(len(city), 45.0), np.linspace(3, 60, len(city)), frame)
    rings = geo["ring_offsets"]
    feature = np.arange(len(rings) - 1) % 17
    shared = _walls(geo["base"], geo["top"], rings, feature)
    new, old = shared.expanded(), _old_walls(geo["base"], geo["top"], rings, feature)
    for field in ("positions", "normals", "feature_ids", "indices"):
        np.testing.assert_array_equal(getattr(new, field), getattr(old, field))
    # a wall corner is a row of base or top, never a copy
    assert len(shared.positions) == 2 * len(geo["base"]) < len(old.positions)
    convex = np.logical_and.reduceat(_left_turns(geo["top"], rings), rings[:-1])
    np.testing.assert_array_equal(convex, _old_convex(geo["top"], rings))
    assert not convex.all()  # L-shapes and holes are in there
    u, v = geo["top"][:-1], geo["base"][1:]
    np.testing.assert_array_equal(_cross(u, v), np.cross(u, v))
    mesh = extrude(
        geo["base"], geo["top"], rings, geo["part_ring_offsets"], geo["part_building"], skirt=1.0
    )
    assert mesh.indices.max() < len(mesh.positions) == len(mesh.normals)


def _roof_triangles(polygons: list[shapely.Polygon]) -> tuple[np.ndarray, np.ndarray]:
    """Roof triangles (k, 3, 2) and their polygon, extruded flat (no frame)."""
    polygons = shapely.orient_polygons(np.array(polygons, dtype=object), exterior_cw=False)
    _, coords, (rings, parts) = shapely.to_ragged_array(polygons)
    base = np.column_stack([coords, np.zeros(len(coords))])
    top = base + np.array([0.0, 0.0, 10.0])
    roof = _roofs(base, top, rings, parts, np.arange(len(polygons)))
    tris = roof.indices.reshape(-1, 3)
    return roof.positions[tris][:, :, :2], roof.feature_ids[tris[:, 0]]


def _signed_area(tri: np.ndarray) -> np.ndarray:
    u, v = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    return 0.5 * (u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0])


def test_one_reflex_vertex_rings_are_fanned_from_it_exactly() -> None:
    rng = np.random.default_rng(11)
    polygons = []
    for _ in range(300):  # L-shapes and notched polygons, any rotation and size
        a, b = rng.uniform(0.2, 0.8, 2)
        if rng.random() < 0.5:
            outline = [(0, 0), (1, 0), (1, a), (b, a), (b, 1), (0, 1)]
        else:  # a convex polygon with one vertex pushed in
            t = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(5, 12))))
            outline = np.column_stack([np.cos(t), np.sin(t)])
            outline[0] *= rng.uniform(0.05, 0.5)
        shape = shapely.affinity.rotate(shapely.Polygon(outline), rng.uniform(0, 360))
        polygons.append(shapely.affinity.scale(shape, *rng.uniform(5, 50, 2)))
    dented = [p for p in polygons if p.is_valid and _reflex_count(p) == 1]
    assert len(dented) > 200
    tris, owner = _roof_triangles(dented)
    area = _signed_area(tris)
    assert (area > 0).all()  # counter-clockwise seen from above: no overlaps
    for k, polygon in enumerate(dented):
        mine = tris[owner == k]
        assert len(mine) == len(polygon.exterior.coords) - 3
        np.testing.assert_allclose(area[owner == k].sum(), polygon.area, rtol=1e-9)
        union = shapely.union_all(shapely.polygons(np.concatenate([mine, mine[:, :1]], axis=1)))
        assert union.symmetric_difference(polygon).area < 1e-9 * polygon.area


def _reflex_count(polygon: shapely.Polygon) -> int:
    xy = np.asarray(shapely.orient_polygons(polygon).exterior.coords)[:-1]
    d = np.roll(xy, -1, axis=0) - xy
    cross = d[:, 0] * np.roll(d[:, 1], -1) - d[:, 1] * np.roll(d[:, 0], -1)
    return int((cross < -1e-9).sum())


def test_degenerate_reflex_fans_and_two_dents_go_to_earcut(monkeypatch) -> None:
    import tiling.buildings.extrude as extrude_module

    calls = []
    earcut = extrude_module._earcut_parts
    monkeypatch.setattr(
        extrude_module, "_earcut_parts", lambda *a: calls.append(a[3].tolist()) or earcut(*a)
    )
    # a vertex straight on after the reflex one: the fan's first triangle is flat
    flat = shapely.Polygon([(0, 0), (2, 0), (2, 1), (1, 1), (1, 1.5), (1, 2), (0, 2)])
    two = shapely.Polygon([(0, 0), (3, 0), (3, 1), (2, 1), (2, 2), (1, 2), (1, 1), (0, 1)])
    ell = shapely.Polygon([(0, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2)])
    tris, owner = _roof_triangles([flat, two, ell])
    assert calls == [[0, 1]]  # the L-shape was fanned
    area = _signed_area(tris)
    for k, polygon in enumerate([flat, two, ell]):
        np.testing.assert_allclose(np.abs(area[owner == k]).sum(), polygon.area, rtol=1e-12)
