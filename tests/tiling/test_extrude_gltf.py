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
    # text UTF-8 cannot hold (a JSON "\\ud800" escape): U+FFFD, the others as they are
    data, offsets = encode_strings(np.array(["a\ud800b", "陆", "x\0\udfff"], dtype=object))
    assert data.decode("utf-8") == "a\ufffdb陆x\ufffd"
    assert offsets.tolist() == [0, 5, 8, 12]


def test_metadata_ids_are_valid_unique_and_transliterated() -> None:
    from tiling.gltf import is_valid_id, metadata_ids

    names = ["建成年代", "Année", "year_built", "2nd floor", "★", "建成年代", "id", "x" * 100]
    ids = metadata_ids(names, reserved=["id", "name"])
    assert ids[:7] == [
        "JianChengNianDai",
        "Annee",
        "year_built",
        "_2nd_floor",
        "extra_5",
        "JianChengNianDai_2",
        "id_2",
    ]
    assert len(ids[7]) == 64 and len(set(ids)) == len(ids) and all(map(is_valid_id, ids))


@pytest.mark.parametrize(
    ("values", "kind", "component", "expected"),
    [
        (np.array([1, 2, 3]), "SCALAR", "INT32", [1, 2, 3]),
        (np.array([1.5, np.nan]), "SCALAR", "FLOAT64", [1.5, "nodata"]),
        (np.array([7, None, "", 9], dtype=object), "SCALAR", "INT32", [7, "nodata", "nodata", 9]),
        (np.array([np.float64(2.5), None], dtype=object), "SCALAR", "FLOAT64", [2.5, "nodata"]),
        (np.array([3_000_000_000, 1]), "SCALAR", "FLOAT64", [3e9, 1.0]),
        (np.array([2**60, 1]), "STRING", None, [str(2**60), "1"]),
        (np.array(["a", 1, None], dtype=object), "STRING", None, ["a", "1", ""]),
        (np.array([True, False]), "STRING", None, ["True", "False"]),
        (np.array(["1950", "1960"], dtype=object), "STRING", None, ["1950", "1960"]),
    ],
)
def test_typed_column_keeps_numbers_numeric(values, kind, component, expected) -> None:
    from tiling.gltf import typed_column

    spec, column = typed_column("p", values, name="属性")
    assert (spec.type, spec.component_type) == (kind, component)
    assert spec.schema()["name"] == "属性"
    got = ["nodata" if spec.no_data is not None and v == spec.no_data else v for v in column]
    assert got == expected


def test_display_names_and_numeric_types_round_trip(tmp_path: Path, gltf_validator) -> None:
    from tiling.gltf import typed_column

    polys = [shapely.box(i * 30, 0, i * 30 + 20, 12) for i in range(3)]
    mesh = prism(polys, [5.0, 6.0, 7.0])
    year, years = typed_column("JianChengNianDai", np.array([1950, 1987, 2001]), name="建成年代")
    area, areas = typed_column("area", np.array([1.25, np.nan, 3.0]))
    props = [
        PropertySpec("id", "STRING"),
        PropertySpec("floors", "SCALAR", "FLOAT32", no_data=0.0),
        year,
        area,
    ]
    table = {
        "id": np.array(["a", "b", "c"], dtype=object),
        "floors": np.array([2.5, 0.0, 3.0]),
        "JianChengNianDai": years,
        "area": areas,
    }
    data = write_glb(mesh, props, table)
    gltf, binary = read_glb(data)
    schema = gltf["extensions"]["EXT_structural_metadata"]["schema"]["classes"]["building"]
    assert schema["properties"]["JianChengNianDai"]["name"] == "建成年代"
    assert schema["properties"]["JianChengNianDai"]["componentType"] == "INT32"
    out = read_property_table(gltf, binary)
    assert out["floors"] == [2.5, 0.0, 3.0]
    assert out["JianChengNianDai"] == [1950, 1987, 2001]
    assert out["area"][0] == 1.25 and out["area"][1] == area.no_data
    (tmp_path / "typed.glb").write_bytes(data)
    (result,) = gltf_validator([tmp_path / "typed.glb"])
    assert result["errors"] == 0, result["messages"]


def test_write_glb_refuses_invalid_metadata_ids() -> None:
    mesh = prism([shapely.box(0, 0, 10, 10)], [5.0])
    table = {"建成年代": np.array(["1950"], dtype=object)}
    with pytest.raises(ValueError, match="建成年代"):
        write_glb(mesh, [PropertySpec("建成年代", "STRING")], table)
    with pytest.raises(ValueError, match="my class"):
        write_glb(mesh, [], {}, class_name="my class")
