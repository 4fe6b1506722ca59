"""The L2 tileset: 3D Tiles 1.1 rules, hierarchy, metadata round trip, validator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from cim.model import Buildings
from tiling.buildings.l2 import L2Options, write_l2
from tiling.gltf import read_glb, read_property_table
from tiling.validate import check_tileset


def city(n: int = 1200, seed: int = 3) -> Buildings:
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    i = np.arange(n)
    lon = 114.0 + (i % side) * 0.0004
    lat = 40.0 + (i // side) * 0.0003
    size = rng.uniform(0.00005, 0.00015, n)
    boxes = shapely.box(lon, lat, lon + size, lat + size * 0.8)
    boxes[5] = shapely.box(lon[5], lat[5], lon[5] + 0.0002, lat[5] + 0.0002).difference(
        shapely.box(lon[5] + 0.00005, lat[5] + 0.00005, lon[5] + 0.00015, lat[5] + 0.00015)
    )
    boxes = shapely.orient_polygons(boxes, exterior_cw=False)
    height = rng.lognormal(2.5, 0.7, n)
    height[7] = 320.0  # the skyline tower
    return Buildings(
        ids=np.array([f"B{k}" for k in range(n)], dtype=object),
        footprints=boxes,
        height=height,
        floors=np.where(i % 3 == 0, np.nan, np.round(height / 3)),
        base=1000.0 + 0.01 * i,
        name=np.array(["平城中心" if k == 7 else "" for k in range(n)], dtype=object),
        use=np.array(["住宅", "办公"], dtype=object)[i % 2],
        roof_type=np.full(n, "flat", dtype=object),
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Buildings, dict]:
    out = tmp_path_factory.mktemp("l2")
    b = city()
    b.addresses[7] = ("平城市新城区平城大道1号",)
    figures = write_l2(b, out, L2Options(max_features_per_tile=100), jobs=2)
    return out, b, figures


def tiles(out: Path) -> list[Path]:
    return sorted((out / "content").glob("*.glb"))


def test_tileset_obeys_the_rules(built) -> None:
    out, _, figures = built
    assert check_tileset(out / "tileset.json") == []
    doc = json.loads((out / "tileset.json").read_text())
    assert doc["asset"]["version"] == "1.1"
    assert doc["root"]["refine"] == "ADD"
    assert figures["tiles"] == len(tiles(out)) > 10
    assert figures["depth"] >= 2


def test_every_building_once_and_metadata_round_trips(built) -> None:
    out, b, _ = built
    seen: dict[str, dict] = {}
    for path in tiles(out):
        table = read_property_table(*read_glb(path.read_bytes()))
        for k, bid in enumerate(table["id"]):
            assert bid not in seen
            seen[bid] = {name: col[k] for name, col in table.items()}
    assert set(seen) == set(b.ids)
    tower = seen["B7"]
    assert tower["name"] == "平城中心"
    assert tower["height"] == pytest.approx(320.0)
    assert tower["base"] == pytest.approx(1000.07, abs=1e-3)
    assert tower["address"] == "平城市新城区平城大道1号"
    assert seen["B0"]["floors"] == 0  # unknown → noData
    assert seen["B1"]["floors"] == pytest.approx(np.round(b.height[1] / 3))
    assert seen["B1"]["use"] == "办公"


def test_skyline_first(built) -> None:
    out, _, _ = built
    doc = json.loads((out / "tileset.json").read_text())
    root_ids = read_property_table(*read_glb((out / doc["root"]["content"]["uri"]).read_bytes()))[
        "id"
    ]
    assert "B7" in root_ids  # the tallest building is in the root tile
    errors = [doc["root"]["geometricError"]]
    stack = list(doc["root"].get("children", []))
    leaves = 0
    while stack:
        t = stack.pop()
        errors.append(t["geometricError"])
        leaves += not t.get("children")
        assert not t.get("children") or t["geometricError"] > 0
        stack.extend(t.get("children", []))
    assert leaves > 0 and min(errors) == 0


def test_root_transform_places_the_city(built) -> None:
    out, b, _ = built
    doc = json.loads((out / "tileset.json").read_text())
    m = np.array(doc["root"]["transform"]).reshape(4, 4).T
    lon, lat, h = Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True).transform(
        *m[:3, 3]
    )
    west, south, east, north = b.bounds()
    assert lon == pytest.approx((west + east) / 2, abs=1e-9)
    assert lat == pytest.approx((south + north) / 2, abs=1e-9)
    assert h == pytest.approx(np.median(b.base), abs=1e-3)


def test_tiles_are_small_and_valid(built, gltf_validator) -> None:
    out, _, _ = built
    paths = tiles(out)
    assert max(p.stat().st_size for p in paths) < 1_000_000
    for result in gltf_validator(paths):
        assert result["errors"] == 0, result["messages"]


def test_b3dm_option_for_older_clients(tmp_path: Path, gltf_validator) -> None:
    from tiling.b3dm import read_b3dm

    b = city(300)
    write_l2(b, tmp_path, L2Options(max_features_per_tile=100, format="b3dm"))
    doc = json.loads((tmp_path / "tileset.json").read_text())
    assert doc["asset"]["version"] == "1.0"
    assert check_tileset(tmp_path / "tileset.json") == []
    paths = sorted((tmp_path / "content").glob("*.b3dm"))
    assert paths and not list((tmp_path / "content").glob("*.glb"))
    ids = []
    inner = []
    for k, path in enumerate(paths):
        feature, batch, glb = read_b3dm(path.read_bytes())
        assert feature["BATCH_LENGTH"] == len(batch["id"])
        ids += batch["id"]
        gltf, _ = read_glb(glb)
        assert "_BATCHID" in gltf["meshes"][0]["primitives"][0]["attributes"]
        assert "EXT_mesh_features" not in gltf.get("extensionsUsed", [])
        (tmp_path / f"inner{k}.glb").write_bytes(glb)
        inner.append(tmp_path / f"inner{k}.glb")
    assert sorted(ids) == sorted(b.ids)
    for result in gltf_validator(inner):
        assert result["errors"] == 0, result["messages"]


def test_metadata_schema_of_the_built_in_properties(built) -> None:
    out, _, figures = built
    ids = ["id", "name", "height", "floors", "use", "roof_type", "base", "address"]
    assert figures["properties"] == ids
    gltf, _ = read_glb(tiles(out)[0].read_bytes())
    meta = gltf["extensions"]["EXT_structural_metadata"]
    assert meta["schema"]["id"] == "cim"
    props = meta["schema"]["classes"]["building"]["properties"]
    assert list(props) == ids
    assert props["floors"]["componentType"] == "FLOAT32" and props["floors"]["noData"] == 0.0
