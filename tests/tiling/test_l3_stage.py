"""The L3 stage on a small district: tilesets, one REPLACE stream with L2, metadata,
textures, the glTF validator and the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from cim.build import build_project
from cim.manifest import schema
from cim.sample import ORIGIN
from tiling.gltf import read_glb, read_property_table
from tiling.validate import check_tileset

CRS = "EPSG:4547"
X0, Y0 = ORIGIN

#: (id, footprint in local metres, roof_type, use, height, floors, material, colour, podium)
BUILDINGS: list[tuple[Any, ...]] = [
    ("H1", shapely.box(0, 0, 20, 12), "硬山", "住宅", 5.5, 1, "tile", "灰", None),
    (
        "H2",
        shapely.Polygon([(30, 0), (50, 0), (50, 8), (38, 8), (38, 20), (30, 20)]),
        "gabled",
        "住宅",
        6.0,
        2,
        "",
        "",
        None,
    ),
    (
        "H3",
        shapely.box(60, 0, 84, 22).difference(shapely.box(67, 7, 77, 15)),
        "硬山",
        "住宅",
        5.0,
        1,
        "tile",
        "",
        None,
    ),
    (
        "P1",
        shapely.Point(100, 10).buffer(6, quad_segs=2),
        "八角攒尖",
        "公共",
        6.0,
        1,
        "glazed_tile",
        "绿",
        0.8,
    ),
    ("T1", shapely.box(0, 40, 32, 58), "重檐庑殿", "寺庙", 12.0, 1, "glazed_tile", "黄", 1.5),
    ("T2", shapely.box(40, 40, 64, 56), "歇山", "寺庙", 9.0, 1, "glazed_tile", "#3c8c5a", 1.0),
    ("U1", shapely.box(70, 40, 82, 50), "banana", "商业", 4.0, 1, "", "", None),
    ("U2", shapely.box(90, 40, 102, 50), "", "商业", 4.0, 1, "", "", None),
    ("W1", shapely.box(0, 70, 14, 80), "hipped", "办公", 9.0, 3, "", "", None),
    ("W2", shapely.box(20, 70, 34, 80), "mansard", "商业", 7.0, 2, "slate?", "blueish", None),
    # replaced by imported models: a GLB box, a CityJSON LOD2 building
    ("M1", shapely.box(0, 100, 14, 110), "gabled", "公共", 6.0, 2, "", "", None),
    ("M2", shapely.box(38, 104, 49, 116), "hipped", "公共", 9.0, 3, "", "", None),
    # outside the district
    ("O1", shapely.box(200, 0, 215, 15), "flat", "办公", 30.0, 10, "", "", None),
    ("O2", shapely.box(220, 0, 235, 15), "gabled", "住宅", 8.0, 2, "", "", None),
    ("O3", shapely.box(240, 30, 260, 50), "hipped", "住宅", 12.0, 4, "", "", None),
]
DISTRICT = shapely.box(-10, -10, 120, 130)
CITYJSON = Path("/work/shared/realdata/citymodels/DH_01_subs.city.json")
#: the CityJSON's plan centre goes here (local m): its building GUID_DBDABF53... lands on M2
CITYJSON_ANCHOR = (80.0, 90.0)
IN_DISTRICT = {b[0] for b in BUILDINGS if not b[0].startswith("O")}


def _feature(geom: shapely.Geometry, props: dict[str, Any]) -> dict[str, Any]:
    moved = shapely.transform(geom, lambda c: c + np.asarray([X0, Y0]))
    return {"type": "Feature", "properties": props, "geometry": shapely.geometry.mapping(moved)}


def _write_project(root: Path) -> Path:
    data = root / "data"
    data.mkdir(parents=True)
    feats = []
    for bid, geom, roof, use, h, fl, mat, col, podium in BUILDINGS:
        props = {
            "id": bid,
            "roof_type": roof,
            "use": use,
            "height": h,
            "floors": fl,
            "name": f"楼{bid}",
            "roof_material": mat,
            "roof_colour": col,
            "podium_height": podium,
        }
        feats.append(_feature(geom, props))
    (data / "b.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    district = {"type": "FeatureCollection", "features": [_feature(DISTRICT, {"name": "古城"})]}
    (data / "district.geojson").write_text(json.dumps(district))
    # an orthophoto with a recognisable pattern (roofs are cut from it)
    rng = np.random.default_rng(3)
    img = rng.integers(60, 200, size=(3, 220, 600), dtype=np.uint8)
    with rasterio.open(
        data / "ortho.tif",
        "w",
        driver="GTiff",
        width=600,
        height=220,
        count=3,
        dtype="uint8",
        crs=CRS,
        transform=from_origin(X0 - 20, Y0 + 100, 0.5, 0.5),
    ) as ds:
        ds.write(img)
    import trimesh

    trimesh.creation.box(extents=(10.0, 8.0, 6.0)).export(data / "box.glb")
    models = f"""
[[l3.models]]
path = "data/box.glb"
anchor = [{X0 + 7.0}, {Y0 + 105.0}]
crs = "{CRS}"
"""
    if CITYJSON.is_file():
        (data / "dh.city.json").write_bytes(CITYJSON.read_bytes())
        models += f"""
[[l3.models]]
path = "data/dh.city.json"
anchor = [{X0 + CITYJSON_ANCHOR[0]}, {Y0 + CITYJSON_ANCHOR[1]}]
crs = "{CRS}"
"""
    (root / "city.toml").write_text(
        f"""[city]
name = "L3 test"
crs = "{CRS}"
[buildings]
path = "data/b.geojson"
crs = "{CRS}"
id = "id"
[imagery]
paths = ["data/ortho.tif"]
min_zoom = 12
max_zoom = 12
[l3]
district = "data/district.geojson"
"""
        + models,
        encoding="utf-8",
    )
    return root / "city.toml"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    toml = _write_project(tmp_path_factory.mktemp("l3"))
    return build_project(toml, jobs=1, progress=False).output


def _walk(tile: dict[str, Any], depth: int = 0) -> list[tuple[dict[str, Any], int]]:
    out = [(tile, depth)]
    for c in tile.get("children", []):
        out += _walk(c, depth + 1)
    return out


def _ids(path: Path) -> list[str]:
    gltf, binary = read_glb(path.read_bytes())
    return read_property_table(gltf, binary)["id"]


def _table(path: Path) -> dict[str, list[Any]]:
    gltf, binary = read_glb(path.read_bytes())
    return read_property_table(gltf, binary)


def test_tilesets_follow_the_rules(built: Path) -> None:
    l3 = built / "tiles" / "l3"
    assert check_tileset(l3 / "tileset.json", max_content_bytes=2_000_000) == []
    assert check_tileset(l3 / "city.json", max_content_bytes=2_000_000) == []
    assert check_tileset(built / "tiles" / "l2" / "tileset.json") == []
    manifest = json.loads((built / "manifest.json").read_text())
    jsonschema.validate(manifest, schema())
    layer = manifest["layers"]["l3"]
    assert layer["url"] == "tiles/l3/tileset.json" and layer["stream"] == "tiles/l3/city.json"
    assert layer["buildings"] == len(IN_DISTRICT)
    assert {"roof_form", "eave_height", "ridge_height"} <= set(layer["properties"])


def test_l2_keeps_every_building_with_the_district_apart(built: Path) -> None:
    l2 = built / "tiles" / "l2"
    doc = json.loads((l2 / "tileset.json").read_text())
    seen: list[str] = []
    for tile, _ in _walk(doc["root"]):
        uri = tile.get("content", {}).get("uri")
        if uri:
            ids = _ids(l2 / uri)
            inside = {i in IN_DISTRICT for i in ids}
            assert len(inside) == 1, f"{uri} mixes district and other buildings"
            seen += ids
    assert sorted(seen) == sorted(b[0] for b in BUILDINGS)


def _drawn(tileset: Path, refined_depth: int) -> list[str]:
    """Ids drawn when every tile above ``refined_depth`` is refined (children ready)."""
    doc = json.loads(tileset.read_text())
    folder = tileset.parent
    out: list[str] = []

    def visit(tile: dict[str, Any], depth: int, refine: str) -> None:
        refine = tile.get("refine", refine)
        uri = tile.get("content", {}).get("uri")
        refined = depth < refined_depth and tile.get("children")
        if uri and not (refined and refine == "REPLACE"):
            out.extend(_ids(folder / uri))
        if refined:
            for c in tile["children"]:
                visit(c, depth + 1, refine)

    visit(doc["root"], 0, "ADD")
    return out


def test_replace_hierarchy_never_draws_a_building_twice(built: Path) -> None:
    city = built / "tiles" / "l3" / "city.json"
    doc = json.loads(city.read_text())
    depth = max(d for _, d in _walk(doc["root"]))
    everyone = sorted(b[0] for b in BUILDINGS)
    for d in range(depth + 2):
        drawn = _drawn(city, d)
        assert len(drawn) == len(set(drawn)), f"refined to depth {d}: drawn twice"
        assert sorted(drawn) == everyone or d <= depth, d
    # fully refined: the district as L3 models, the rest as L2 blocks
    l3_uris = {t.get("content", {}).get("uri") for t, _ in _walk(doc["root"])}
    l3_ids = [i for u in l3_uris if u and not u.startswith("../") for i in _ids(city.parent / u)]
    assert sorted(l3_ids) == sorted(IN_DISTRICT)
    for tile, _ in _walk(doc["root"]):
        if tile.get("refine") == "REPLACE":
            own = set(_ids(city.parent / tile["content"]["uri"]))
            below = {
                i
                for c in tile["children"]
                if not c["content"]["uri"].startswith("../")
                for i in _ids(city.parent / c["content"]["uri"])
            }
            assert own <= below  # each block's model hangs right under it
            assert tile["geometricError"] >= 2.0


def test_feature_ids_and_metadata_match_l2(built: Path) -> None:
    l2 = {}
    for path in (built / "tiles" / "l2" / "content").glob("*.glb"):
        t = _table(path)
        for k, bid in enumerate(t["id"]):
            l2[bid] = {p: v[k] for p, v in t.items()}
    rows = {}
    for path in (built / "tiles" / "l3" / "content").glob("*.glb"):
        t = _table(path)
        for k, bid in enumerate(t["id"]):
            rows[bid] = {p: v[k] for p, v in t.items()}
    assert set(rows) == IN_DISTRICT
    for bid, row in rows.items():
        for key in ("name", "height", "use", "roof_type", "base"):
            assert row[key] == l2[bid][key], (bid, key)
        if not row["roof_form"].startswith("imported:"):
            assert row["eave_height"] == pytest.approx(row["height"], abs=0.01)
        assert row["ridge_height"] >= row["eave_height"] - 0.01
    assert rows["T1"]["roof_form"] == "重檐庑殿" and rows["H1"]["roof_form"] == "硬山"
    assert rows["U1"]["roof_form"] == "flat" and rows["U2"]["roof_form"] == "flat"
    assert rows["H1"]["ridge_height"] > rows["H1"]["eave_height"] + 1.0


def test_glbs_pass_the_validator_with_textures(built: Path, gltf_validator) -> None:
    paths = sorted((built / "tiles" / "l3" / "content").glob("*.glb"))
    assert paths
    for result in gltf_validator(paths):
        assert result["errors"] == 0, result["messages"]
    gltf, _ = read_glb(paths[0].read_bytes())
    assert gltf["images"] and gltf["textures"]
    assert {i["mimeType"] for i in gltf["images"]} == {"image/webp"}
    assert "EXT_texture_webp" in gltf["extensionsRequired"]
    names = {m["name"] for m in gltf["materials"]}
    assert {"facade:temple", "facade:house", "roof:glazed", "roof:tile", "roof:ortho"} <= names
    assert "facade:stone" in names  # the podiums


def test_report_lists_fallbacks_and_unusable_attributes(built: Path) -> None:
    report = json.loads((built / "build-report.json").read_text())["stages"]["l3"]
    reasons = {(r["id"], r["reason"]) for r in report["repaired"]}
    assert ("U1", "roof-form-unknown") in reasons
    assert ("U2", "roof-form-missing") in reasons
    assert ("W2", "roof-material-unknown") in reasons
    assert ("W2", "roof-colour-unknown") in reasons
    assert report["read"] == len(IN_DISTRICT) and report["written"] == len(IN_DISTRICT)
    assert report["counts"]["roof_forms"]["重檐庑殿"] == 1
    assert report["counts"]["max_tile_bytes"] <= 2_000_000


def test_imported_models_replace_their_blocks(built: Path) -> None:
    rows = {}
    for path in (built / "tiles" / "l3" / "content").glob("*.glb"):
        t = _table(path)
        for k, bid in enumerate(t["id"]):
            rows[bid] = {p: v[k] for p, v in t.items()}
    assert rows["M1"]["roof_form"] == "imported:box"
    assert rows["M1"]["ridge_height"] == pytest.approx(8.0, abs=0.05)  # glTF y-up: 8 m tall
    report = json.loads((built / "build-report.json").read_text())["stages"]["l3"]
    reasons = {(r["id"], r["reason"]) for r in report["repaired"]}
    assert ("M1", "imported-model") in reasons
    if not CITYJSON.is_file():
        pytest.skip(f"{CITYJSON} is not here")
    assert rows["M2"]["roof_form"] == "imported:GUID_DBDABF53-7DD5-4C2F-BE7F-51F29A0CBA16"
    assert 8.0 < rows["M2"]["ridge_height"] < 9.5  # the LOD2 roof, 4.50 → 13.09 m
    assert report["counts"]["imported_models"] == 2
    left = [w for w in report["warnings"] if "stands on no building" in w]
    assert len(left) == 3  # the file's three other buildings
