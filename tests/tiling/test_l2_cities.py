"""L2 on real and sample cities: every feature accounted for, ground, metadata, validator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely

from cim.build import build_project
from cim.crs import to_lonlat
from cim.raster import DemMosaic
from cim.sample import BAD_FEATURES, KNOWN_ADDRESS, KNOWN_BUILDING_ID
from tiling.gltf import read_glb, read_property_table
from tiling.validate import check_tileset

REPO = Path(__file__).resolve().parents[2]


def all_features(output: Path) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for path in (output / "tiles/l2/content").glob("*.glb"):
        table = read_property_table(*read_glb(path.read_bytes()))
        for k, bid in enumerate(table["id"]):
            found[bid] = {name: col[k] for name, col in table.items()}
    return found


@pytest.fixture(scope="module")
def shanghai(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = REPO / "sample_data" / "shanghai"
    dst = tmp_path_factory.mktemp("shanghai")
    for f in src.iterdir():
        shutil.copy(f, dst / f.name)
    return build_project(dst / "city.toml", jobs=2, progress=False).output


def test_shanghai_every_feature_accounted_for(shanghai: Path, gltf_validator) -> None:
    report = json.loads((shanghai / "build-report.json").read_text(encoding="utf-8"))
    st = report["stages"]["buildings"]
    assert st["read"] == 1450
    assert st["written"] + st["skipped_count"] == 1450
    assert all(item["reason"] for item in st["skipped"])
    features = all_features(shanghai)
    assert len(features) == st["written"]
    assert check_tileset(shanghai / "tiles/l2/tileset.json") == []
    results = gltf_validator(sorted((shanghai / "tiles/l2/content").glob("*.glb")))
    assert all(r["errors"] == 0 for r in results), results
    # OSM heights are kept where present; the rest is filled and reported
    _, table = pyogrio.read_arrow(
        REPO / "sample_data/shanghai/shanghai_lujiazui_buildings_osm.gpkg"
    )
    heights = dict(
        zip(
            map(str, table.column("id").to_pylist()),
            table.column("height").to_pylist(),
            strict=True,
        )
    )
    tall = max((h, i) for i, h in heights.items() if h)
    assert features[tall[1]]["height"] == pytest.approx(tall[0])
    filled = {
        r["id"] for r in st["repaired"] if r["reason"] in ("height-from-floors", "default-height")
    }
    assert len(filled) == sum(1 for h in heights.values() if not h or h <= 0)


def test_sample_bad_features_are_reported(sample_output: Path) -> None:
    report = json.loads((sample_output / "build-report.json").read_text(encoding="utf-8"))
    st = report["stages"]["buildings"]
    items = {(r["id"], r["reason"]) for r in st["repaired"] + st["skipped"]}
    ids_with_items = {i for i, _ in items}
    for bad in BAD_FEATURES:
        assert bad.id in ids_with_items, bad
    assert st["read"] == st["written"] + st["skipped_count"]


def test_sample_known_building_metadata(sample_output: Path) -> None:
    features = all_features(sample_output)
    known = features[KNOWN_BUILDING_ID]
    assert known["height"] > 0
    assert KNOWN_ADDRESS in known.get("address", "")


def test_sample_buildings_sit_on_the_ground(sample_city: Path, sample_output: Path) -> None:
    """Base = lowest DEM height under the footprint + geoid offset (−20 m)."""
    features = all_features(sample_output)
    _, table = pyogrio.read_arrow(sample_city.parent / "data/buildings.gpkg")
    ids = table.column("id").to_pylist()
    geoms = shapely.from_wkb(
        table.column("geom" if "geom" in table.column_names else "geometry").to_numpy()
    )
    dem = DemMosaic([sample_city.parent / "data/dem.tif"])
    rng = np.random.default_rng(0)
    checked = 0
    for k in rng.choice(len(ids), 200, replace=False):
        if ids[k] not in features or geoms[k] is None or geoms[k].geom_type != "Polygon":
            continue
        xy = shapely.get_coordinates(geoms[k])
        lon, lat = to_lonlat(xy[:, 0], xy[:, 1], "EPSG:4547")
        ground = np.nanmin(dem.sample(lon, lat))
        assert features[ids[k]]["base"] == pytest.approx(ground - 20.0, abs=0.5)
        checked += 1
    assert checked > 150


def test_sample_tileset_rules_and_validator(sample_output: Path, gltf_validator) -> None:
    tileset = sample_output / "tiles/l2/tileset.json"
    assert check_tileset(tileset) == []
    paths = sorted((sample_output / "tiles/l2/content").glob("*.glb"))
    assert max(p.stat().st_size for p in paths) < 1_000_000
    for result in gltf_validator(paths):
        assert result["errors"] == 0, result["messages"]
