"""Extrusion geometry and the glb writer: shapes, normals, round trips, Khronos validator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely

from tiling.buildings.extrude import extrude
from tiling.gltf import (
    FeatureMesh,
    PropertySpec,
    read_glb,
    read_positions_enu,
    read_property_table,
    write_glb,
)


def prism(polygons: list[shapely.Polygon], heights: list[float]) -> FeatureMesh:
    polys = shapely.orient_polygons(np.array(polygons, dtype=object), exterior_cw=False)
    _, coords, (rings, parts) = shapely.to_ragged_array(polys)
    ring_part = np.repeat(np.arange(len(polys)), np.diff(parts))
    coord_part = ring_part[np.repeat(np.arange(len(rings) - 1), np.diff(rings))]
    base = np.column_stack([coords, np.zeros(len(coords))])
    top = base.copy()
    top[:, 2] = np.asarray(heights)[coord_part]
    return extrude(base, top, rings, parts, np.arange(len(polys)))


def test_box_has_flat_shaded_walls_and_roof() -> None:
    mesh = prism([shapely.box(0, 0, 10, 5)], [12.0])
    assert len(mesh.positions) == 4 * 4 + 4  # 4 wall quads + roof ring
    assert len(mesh.indices) // 3 == 8 + 2
    tris = mesh.indices.reshape(-1, 3)
    a, b, c = (mesh.positions[tris[:, k]] for k in range(3))
    face = np.cross(b - a, c - a)
    centre = (a + b + c) / 3 - [5, 2.5, 6]
    # every triangle faces outwards (winding agrees with the solid)
    assert np.all(np.einsum("ij,ij->i", face, centre) > 0)
    # vertex normals agree with face normals
    n = mesh.normals[tris[:, 0]]
    assert np.all(np.einsum("ij,ij->i", face, n) > 0)


def test_courtyard_roof_keeps_the_hole_and_area() -> None:
    court = shapely.box(0, 0, 30, 30).difference(shapely.box(10, 10, 20, 20))
    lshape = shapely.Polygon([(0, 0), (20, 0), (20, 10), (10, 10), (10, 20), (0, 20)])
    mesh = prism([court, lshape], [6.0, 9.0])
    tris = mesh.indices.reshape(-1, 3)
    p = mesh.positions
    up = mesh.normals[tris[:, 0], 2] > 0.99
    roof = tris[up]
    area = 0.5 * np.abs(
        np.cross(p[roof[:, 1]] - p[roof[:, 0]], p[roof[:, 2]] - p[roof[:, 0]])[:, 2]
    )
    fid = mesh.feature_ids[roof[:, 0]]
    assert area[fid == 0].sum() == pytest.approx(court.area)
    assert area[fid == 1].sum() == pytest.approx(lshape.area)
    # inner walls of the courtyard face into the courtyard
    walls = tris[np.abs(mesh.normals[tris[:, 0], 2]) < 0.01]
    mid = p[walls].mean(axis=1)
    inner = (fid_w := mesh.feature_ids[walls[:, 0]]) == 0
    inside = inner & (np.abs(mid[:, 0] - 15) < 5.01) & (np.abs(mid[:, 1] - 15) < 5.01)
    normal = mesh.normals[walls[inside, 0]]
    to_centre = np.array([15, 15]) - mid[inside, :2]
    assert inside.sum() == 8 and np.all(np.einsum("ij,ij->i", normal[:, :2], to_centre) > 0)
    assert set(fid_w) == {0, 1}


PROPS = [
    PropertySpec("id", "STRING"),
    PropertySpec("name", "STRING"),
    PropertySpec("height", "SCALAR", "FLOAT32"),
    PropertySpec("floors", "SCALAR", "UINT16", no_data=0),
]


def sample_glb(compression: str) -> tuple[bytes, FeatureMesh]:
    polys = [shapely.box(i * 30, 0, i * 30 + 20, 12) for i in range(40)]
    mesh = prism(polys, [5.0 + i for i in range(40)])
    table = {
        "id": np.array([f"B{i}" for i in range(40)], dtype=object),
        "name": np.array(["鼓楼" if i == 3 else "" for i in range(40)], dtype=object),
        "height": np.array([5.0 + i for i in range(40)]),
        "floors": np.array([i % 5 for i in range(40)]),
    }
    return write_glb(mesh, PROPS, table, compression=compression), mesh


@pytest.mark.parametrize("compression", ["meshopt", "none"])
def test_glb_round_trip(compression: str) -> None:
    data, mesh = sample_glb(compression)
    gltf, binary = read_glb(data)
    assert "KHR_mesh_quantization" in gltf["extensionsRequired"]
    assert ("EXT_meshopt_compression" in gltf["extensionsUsed"]) == (compression == "meshopt")
    pos = read_positions_enu(gltf, binary)
    extent = np.ptp(mesh.positions, axis=0).max()
    # same point set, within the quantization step
    lo, hi = pos.min(axis=0), pos.max(axis=0)
    assert np.allclose(lo, mesh.positions.min(axis=0), atol=extent / 65535)
    assert np.allclose(hi, mesh.positions.max(axis=0), atol=extent / 65535)
    table = read_property_table(gltf, binary)
    assert table["id"][3] == "B3" and table["name"][3] == "鼓楼"
    assert table["height"][39] == pytest.approx(44.0)
    assert table["floors"][:5] == [0, 1, 2, 3, 4]


def test_meshopt_and_plain_decode_to_the_same_mesh() -> None:
    a, _ = sample_glb("meshopt")
    b, _ = sample_glb("none")
    ga, ba = read_glb(a)
    gb, bb = read_glb(b)
    assert np.array_equal(read_positions_enu(ga, ba), read_positions_enu(gb, bb))
    assert len(a) < len(b)


def test_glb_passes_the_khronos_validator(tmp_path: Path, gltf_validator) -> None:
    files = []
    for compression in ("meshopt", "none"):
        data, _ = sample_glb(compression)
        path = tmp_path / f"{compression}.glb"
        path.write_bytes(data)
        files.append(path)
    for result in gltf_validator(files):
        assert result["errors"] == 0, result["messages"]
        assert result["warnings"] == 0, result["messages"]


def test_encode_strings_offsets() -> None:
    from tiling.gltf import encode_strings

    data, offsets = encode_strings(np.array(["ab", "", "陆家嘴", 12, "x\0y"], dtype=object))
    assert data.decode("utf-8") == "ab陆家嘴12xy"
    assert offsets.tolist() == [0, 2, 2, 11, 13, 15]
    data, offsets = encode_strings(np.array(["", ""], dtype=object))
    assert data == b"" and offsets.tolist() == [0, 0, 0]
