"""The tile budget (1 MB) holds whatever one feature carries, and metadata stays valid.

Adversarial inputs: a 100k-vertex footprint, a multipolygon of thousands of parts, a
1 MB name, 2,000 buildings with 10 KB addresses, attribute names that are not ids,
numeric and fractional attributes; in both 3D Tiles 1.1 (glb) and 1.0 (b3dm).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import shapely

from cim.model import Buildings
from cim.report import StageReport
from tiling.b3dm import read_b3dm
from tiling.buildings import l2
from tiling.buildings.l2 import (
    MAX_FOOTPRINT_VERTICES,
    MAX_TEXT_BYTES,
    L2Options,
    simplify_footprints,
    write_l2,
)
from tiling.gltf import (
    FLOAT64_NO_DATA,
    INT32_NO_DATA,
    _pack_glb,
    is_valid_id,
    read_glb,
    read_property_table,
)
from tiling.validate import check_tileset

BUDGET = 1_000_000
M = 1 / 111_320.0  # a metre in degrees of latitude


def blocks(n: int, seed: int = 1) -> Buildings:
    """``n`` ordinary 10 × 8 m buildings on a grid near 116.4° E, 39.9° N."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    i = np.arange(n)
    lon = 116.4 + (i % side) * 30 * M / np.cos(np.radians(39.9))
    lat = 39.9 + (i // side) * 30 * M
    boxes = shapely.box(lon, lat, lon + 10 * M / np.cos(np.radians(39.9)), lat + 8 * M)
    return Buildings(
        ids=np.array([f"B{k}" for k in range(n)], dtype=object),
        footprints=shapely.orient_polygons(boxes, exterior_cw=False),
        height=rng.uniform(5, 60, n),
        floors=np.full(n, np.nan),
        base=np.full(n, 50.0),
        name=np.full(n, "", dtype=object),
        use=np.full(n, "住宅", dtype=object),
        roof_type=np.full(n, "flat", dtype=object),
    )


def with_footprint(b: Buildings, i: int, footprint: shapely.Geometry) -> Buildings:
    footprints = b.footprints.copy()
    footprints[i] = shapely.orient_polygons(footprint, exterior_cw=False)
    return dataclasses.replace(b, footprints=footprints)


def noisy_circle(
    lon: float, lat: float, radius_m: float, n: int, noise_m: float
) -> shapely.Polygon:
    rng = np.random.default_rng(7)
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = radius_m + rng.uniform(-noise_m, noise_m, n)
    k = np.cos(np.radians(lat))
    return shapely.Polygon(np.column_stack([lon + r * np.cos(a) * M / k, lat + r * np.sin(a) * M]))


def contents(out: Path) -> list[Path]:
    return sorted(p for p in (out / "content").iterdir() if p.suffix in (".glb", ".b3dm"))


def all_rows(out: Path) -> dict[str, dict]:
    """Every building's metadata row, asserting each building is in exactly one tile."""
    rows: dict[str, dict] = {}
    for path in contents(out):
        if path.suffix == ".b3dm":
            _, batch, _ = read_b3dm(path.read_bytes())
            table = {k: v for k, v in batch.items() if k != "extras"}
        else:
            table = read_property_table(*read_glb(path.read_bytes()))
        for k, bid in enumerate(table["id"]):
            assert bid not in rows, f"{bid} in two tiles"
            rows[bid] = {name: col[k] for name, col in table.items()}
    return rows


def assert_within_budget(out: Path, budget: int = BUDGET) -> None:
    sizes = {p.name: p.stat().st_size for p in contents(out)}
    assert max(sizes.values()) <= budget, sizes
    assert check_tileset(out / "tileset.json", max_content_bytes=budget) == []


def local_hausdorff_m(a: shapely.Geometry, b: shapely.Geometry) -> float:
    lat = shapely.centroid(a).y
    k = np.cos(np.radians(lat)) / M

    def scale(xy: np.ndarray) -> np.ndarray:
        return xy * [k, 1 / M]

    return shapely.hausdorff_distance(shapely.transform(a, scale), shapely.transform(b, scale))


# --- geometry: absurd vertex counts ---------------------------------------------------


def assert_valid_gltf(out: Path, gltf_validator) -> None:
    results = gltf_validator([p for p in contents(out) if p.suffix == ".glb"])
    assert results and all(r["errors"] == 0 for r in results), results


def test_100k_vertex_footprint_is_simplified_within_decimetres(
    tmp_path: Path, gltf_validator
) -> None:
    b = blocks(50)
    circle = noisy_circle(116.401, 39.901, 80.0, 100_000, 0.03)
    b = with_footprint(b, 3, circle)
    report = StageReport("l2")
    write_l2(b, tmp_path, L2Options(), report=report)
    assert_within_budget(tmp_path)
    assert_valid_gltf(tmp_path, gltf_validator)
    assert set(all_rows(tmp_path)) == set(b.ids)
    (entry,) = [r for r in report.repaired if r["reason"] == "simplified"]
    assert entry["id"] == "B3"
    assert entry["detail"].startswith("100,000 → ") and "tolerance 0.1 m" in entry["detail"]
    simplified, tolerance = simplify_footprints(np.array([circle]))
    assert tolerance[0] == 0.1
    assert shapely.get_num_coordinates(simplified[0]) <= MAX_FOOTPRINT_VERTICES
    assert shapely.is_valid(simplified[0]) and shapely.is_ccw(simplified[0].exterior)
    assert local_hausdorff_m(circle, simplified[0]) <= 0.1 + 1e-6
    assert b.footprints[3] is circle or shapely.equals(b.footprints[3], circle)  # input kept


def test_ordinary_footprints_are_not_touched(tmp_path: Path) -> None:
    b = blocks(20)
    b = with_footprint(b, 0, noisy_circle(116.401, 39.901, 30.0, MAX_FOOTPRINT_VERTICES - 1, 0.5))
    report = StageReport("l2")
    write_l2(b, tmp_path, L2Options(), report=report)
    assert report.repaired == []


def test_footprints_no_tolerance_can_simplify_become_their_rectangle(tmp_path: Path) -> None:
    b = blocks(30)
    # 1,000 separate 1 m squares: a topology-preserving simplification keeps every one
    i = np.arange(1000)
    k = np.cos(np.radians(39.9))
    x = 116.402 + (i % 80) * 2 * M / k
    y = 39.902 + (i // 80) * 2 * M
    parts = shapely.box(x, y, x + M / k, y + M)
    b = with_footprint(b, 5, shapely.MultiPolygon(list(parts)))
    report = StageReport("l2")
    write_l2(b, tmp_path, L2Options(compression="none"), report=report)
    assert_within_budget(tmp_path)
    (entry,) = [r for r in report.repaired if r["reason"] == "simplified"]
    assert entry["id"] == "B5" and "oriented bounding rectangle" in entry["detail"]
    assert "4,000 → 4 vertices" in entry["detail"]
    assert set(all_rows(tmp_path)) == set(b.ids)


# --- text: over-long values -----------------------------------------------------------


def test_a_1mb_name_is_truncated_at_a_character_boundary(tmp_path: Path, gltf_validator) -> None:
    b = blocks(40)
    b.name[2] = "城" * 350_000  # 1.05 MB of 3-byte characters
    b.name[3] = "a" * (MAX_TEXT_BYTES - 1) + "é"  # 4,097 bytes: just over
    b.name[4] = "b" * MAX_TEXT_BYTES  # exactly the limit: kept
    report = StageReport("l2")
    write_l2(b, tmp_path, L2Options(), report=report)
    assert_within_budget(tmp_path)
    assert_valid_gltf(tmp_path, gltf_validator)
    rows = all_rows(tmp_path)
    for bid in ("B2", "B3"):
        name = rows[bid]["name"]
        assert len(name.encode("utf-8")) <= MAX_TEXT_BYTES and name.endswith("…")
    assert set(rows["B2"]["name"][:-1]) == {"城"}
    assert rows["B4"]["name"] == "b" * MAX_TEXT_BYTES
    truncated = {r["id"]: r["detail"] for r in report.repaired if r["reason"] == "truncated"}
    assert set(truncated) == {"B2", "B3"}
    assert truncated["B2"] == "name: 1,050,000 → 4,095 bytes"  # 1,364 characters and "…"
    assert b.name[2] == "城" * 350_000  # the input table is not modified


@pytest.mark.parametrize("fmt", ["3dtiles-1.1", "b3dm"])
def test_2000_buildings_with_10kb_addresses_fit(tmp_path: Path, fmt: str) -> None:
    b = blocks(2000)
    for k in range(2000):
        b.addresses[k] = (f"平城市新城区长街{k}号" + "甲" * 3400,)  # ~10 KB each
    report = StageReport("l2")
    figures = write_l2(b, tmp_path, L2Options(format=fmt), report=report, jobs=2)
    assert_within_budget(tmp_path)
    rows = all_rows(tmp_path)
    assert set(rows) == set(b.ids)
    assert rows["B17"]["address"].startswith("平城市新城区长街17号甲")
    assert len([r for r in report.repaired if r["reason"] == "truncated"]) == 2000
    assert figures["tiles"] > 1 and figures["max_tile_bytes"] <= BUDGET


def test_a_tile_over_budget_after_encoding_is_split(
    tmp_path: Path, monkeypatch, gltf_validator
) -> None:
    """When the planning estimate is wrong, the encoded tile is split until it fits."""
    monkeypatch.setattr(l2, "_row_bytes", lambda columns, *_: np.zeros(len(columns["id"])))
    b = blocks(1500)
    for k in range(1500):
        b.addresses[k] = (f"长街{k}号" + "乙" * 300,)  # ~1 KB each: 1.5 MB in one tile
    budget = 200_000
    report = StageReport("l2")
    figures = write_l2(b, tmp_path, L2Options(max_tile_bytes=budget), report=report, jobs=2)
    assert figures["tiles"] >= 8  # planned as one tile of 1,500 buildings
    assert_within_budget(tmp_path, budget)
    assert_valid_gltf(tmp_path, gltf_validator)
    assert set(all_rows(tmp_path)) == set(b.ids)
    doc = json.loads((tmp_path / "tileset.json").read_text())
    # split parts hang below the tile they came from, the largest buildings stay on top
    assert doc["root"]["geometricError"] > 0 and len(doc["root"]["children"]) == 1
    assert report.warnings == []


def test_uncompressed_tiles_keep_the_budget(tmp_path: Path) -> None:
    b = blocks(400)
    for k in range(0, 400, 7):  # big detailed outlines, 1,500 vertices each
        lon, lat = shapely.centroid(b.footprints[k]).coords[0]
        b = with_footprint(b, k, noisy_circle(lon, lat, 12.0, 1500, 2.0))
    figures = write_l2(
        b, tmp_path, L2Options(compression="none", max_vertices_per_tile=400_000), jobs=2
    )
    assert figures["max_tile_bytes"] <= BUDGET
    assert_within_budget(tmp_path)


# --- metadata ids and types -----------------------------------------------------------


def extras_city(n: int = 300) -> Buildings:
    b = blocks(n)
    i = np.arange(n)
    b.floors[:] = np.where(i % 4 == 0, np.nan, 2.5 + i % 3)
    b.extra = {
        "建成年代": np.where(i % 5 == 0, -1, 1950 + i % 70).astype(np.int64),
        "Année de construction": np.where(i % 6 == 0, np.nan, 1900.5 + i),
        "height": np.array([f"h{k}" for k in i], dtype=object),  # clashes with a built-in
        "面积(m²)": np.array([None if k % 7 == 0 else k * 1.25 for k in i], dtype=object),
        "osm_id": np.array([None if k % 9 == 0 else 10_000_000_000 + k for k in i], dtype=object),
        "★": np.array(["" if k % 2 else "是" for k in i], dtype=object),
    }
    b.extra["建成年代"][3] = 1987
    return b


EXPECTED_IDS = {
    "建成年代": "JianChengNianDai",
    "Année de construction": "Annee_de_construction",
    "height": "height_2",
    "面积(m²)": "MianJi_m2",
    "osm_id": "osm_id",
    "★": "extra_6",
}


def test_extra_property_ids_are_valid_and_keep_their_names(tmp_path: Path, gltf_validator) -> None:
    b = extras_city()
    figures = write_l2(b, tmp_path, L2Options(max_features_per_tile=100), jobs=2)
    assert check_tileset(tmp_path / "tileset.json") == []
    assert figures["properties"][8:] == list(EXPECTED_IDS.values())
    gltf, _ = read_glb(contents(tmp_path)[0].read_bytes())
    meta = gltf["extensions"]["EXT_structural_metadata"]
    assert is_valid_id(meta["schema"]["id"])
    (class_id,) = meta["schema"]["classes"]
    assert is_valid_id(class_id)
    props = meta["schema"]["classes"][class_id]["properties"]
    assert all(is_valid_id(p) for p in props)
    for name, pid in EXPECTED_IDS.items():
        if name != pid:
            assert props[pid]["name"] == name
        assert name in props[pid]["description"]
    assert "name" not in props["osm_id"] and "name" not in props["height"]
    assert props["JianChengNianDai"]["componentType"] == "INT32"
    assert props["JianChengNianDai"]["noData"] == INT32_NO_DATA
    assert props["Annee_de_construction"]["componentType"] == "FLOAT64"
    assert props["MianJi_m2"]["componentType"] == "FLOAT64"
    assert props["osm_id"]["componentType"] == "FLOAT64"  # beyond INT32, exact in FLOAT64
    assert props["height_2"]["type"] == props["extra_6"]["type"] == "STRING"
    assert props["floors"] == {
        "type": "SCALAR",
        "description": "floor count",
        "componentType": "FLOAT32",
        "noData": 0.0,
    }
    results = gltf_validator(contents(tmp_path)[:4])
    assert all(r["errors"] == 0 for r in results), results


def test_numeric_extras_and_fractional_floors_read_back_as_numbers(tmp_path: Path) -> None:
    b = extras_city()
    write_l2(b, tmp_path, L2Options(max_features_per_tile=100), jobs=2)
    rows = all_rows(tmp_path)
    assert rows["B3"]["JianChengNianDai"] == 1987
    assert rows["B1"]["JianChengNianDai"] == 1951
    assert rows["B0"]["JianChengNianDai"] == -1  # a real value, not missing
    assert rows["B1"]["Annee_de_construction"] == 1901.5
    assert rows["B6"]["Annee_de_construction"] == FLOAT64_NO_DATA  # NaN → noData
    assert rows["B2"]["MianJi_m2"] == 2.5 and rows["B7"]["MianJi_m2"] == FLOAT64_NO_DATA
    assert rows["B1"]["osm_id"] == 10_000_000_001 and rows["B9"]["osm_id"] == FLOAT64_NO_DATA
    assert rows["B1"]["height_2"] == "h1" and rows["B1"]["height"] == pytest.approx(b.height[1])
    assert rows["B2"]["extra_6"] == "是"
    assert rows["B1"]["floors"] == 3.5 and rows["B2"]["floors"] == 4.5
    assert rows["B3"]["floors"] == 2.5
    assert rows["B4"]["floors"] == 0.0  # unknown → noData


def test_b3dm_batch_table_follows_the_same_rules(tmp_path: Path) -> None:
    b = extras_city()
    write_l2(b, tmp_path, L2Options(max_features_per_tile=100, format="b3dm"))
    assert check_tileset(tmp_path / "tileset.json") == []
    _, batch, _ = read_b3dm(contents(tmp_path)[0].read_bytes())
    assert all(is_valid_id(k) for k in batch if k != "extras")
    assert batch["extras"]["names"]["JianChengNianDai"] == "建成年代"
    rows = all_rows(tmp_path)
    assert rows["B3"]["floors"] == 2.5 and rows["B4"]["floors"] is None
    assert rows["B3"]["JianChengNianDai"] == 1987
    assert rows["B6"]["Annee_de_construction"] is None
    assert rows["B1"]["osm_id"] == 10_000_000_001 and rows["B9"]["osm_id"] is None


# --- the rule checker -----------------------------------------------------------------


def test_checker_reports_invalid_ids_and_tiles_over_budget(tmp_path: Path) -> None:
    b = extras_city(50)
    write_l2(b, tmp_path, L2Options())
    tileset = tmp_path / "tileset.json"
    assert check_tileset(tileset) == []
    (path,) = contents(tmp_path)
    gltf, binary = read_glb(path.read_bytes())
    meta = gltf["extensions"]["EXT_structural_metadata"]
    props = meta["schema"]["classes"]["building"]["properties"]
    props["建成年代"] = props.pop("JianChengNianDai")
    meta["propertyTables"][0]["properties"]["建成年代"] = meta["propertyTables"][0][
        "properties"
    ].pop("JianChengNianDai")
    meta["schema"]["id"] = "cim toolkit"
    path.write_bytes(_pack_glb(gltf, bytearray(binary)))
    problems = check_tileset(tileset)
    assert len(problems) == 1 and "['cim toolkit', '建成年代']" in problems[0]
    over = check_tileset(tileset, check_content=False, max_content_bytes=1000)
    assert len(over) == 1 and "over 1,000" in over[0]


# --- through the build: the l2 stage's report and manifest ----------------------------


def test_the_l2_stage_reports_repairs_and_lists_property_ids(tmp_path: Path) -> None:
    from cim.build import build_project

    k = np.cos(np.radians(39.9))
    features = []
    for j in range(30):
        x, y = 116.4 + j * 30 * M / k, 39.9
        ring = shapely.box(x, y, x + 10 * M / k, y + 8 * M)
        props = {"id": f"F{j}", "height": 12.5, "floors": 2.5, "name": "", "建成年代": 1950 + j}
        features.append((ring, props))
    features[4] = (noisy_circle(116.41, 39.901, 60.0, 20_000, 0.02), features[4][1])
    features[7][1]["name"] = "楼" * 400_000
    doc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": p, "geometry": shapely.geometry.mapping(g)}
            for g, p in features
        ],
    }
    (tmp_path / "b.geojson").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "city.toml").write_text(
        '[city]\nname = "t"\n[buildings]\npath = "b.geojson"\ncrs = "EPSG:4326"\n'
        'id = "id"\nextra = ["建成年代"]\n',
        encoding="utf-8",
    )
    out = build_project(tmp_path / "city.toml", jobs=1, progress=False).output
    report = json.loads((out / "build-report.json").read_text(encoding="utf-8"))
    stage = report["stages"]["l2"] if "stages" in report else report["l2"]
    assert stage["repair_reasons"] == {"simplified": 1, "truncated": 1}
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["layers"]["l2"]["properties"][-1] == "JianChengNianDai"
    tiles = out / "tiles" / "l2"
    assert_within_budget(tiles)
    rows = all_rows(tiles)
    assert rows["F3"]["JianChengNianDai"] == 1953 and rows["F3"]["floors"] == 2.5
    assert len(rows["F7"]["name"].encode()) <= MAX_TEXT_BYTES
