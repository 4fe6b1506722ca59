"""Tests of the sample city generator (cim.sample)."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from pyproj import Transformer

from cim.config import load_project
from cim.output import build_paths
from cim.sample import BAD_FEATURES, CRS, KNOWN_ADDRESS, KNOWN_BUILDING_ID, ORIGIN, write_sample
from cim.sample._layout import river_x


def _hashes(root: Path) -> dict[str, str]:
    """Checksums of what the generator writes, not of what builds by other tests wrote.

    Builds of the shared sample add their output folder, its lock file and maybe
    leftovers next to it (:func:`cim.output.build_paths`); nothing else may differ.
    """
    built = build_paths(load_project(root / "city.toml").output)
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(p.is_relative_to(b) for b in built)
    }


@pytest.fixture(scope="module")
def buildings(sample_city: Path) -> dict:
    _, table = pyogrio.read_arrow(sample_city.parent / "data" / "buildings.gpkg", layer="buildings")
    d = table.to_pydict()
    d["geom"] = shapely.from_wkb(d["geom"])
    d["height"] = np.array([np.nan if v is None else v for v in d["height"]])
    d["floors"] = np.array([np.nan if v is None else v for v in d["floors"]])
    return d


@pytest.fixture(scope="module")
def addresses(sample_city: Path) -> list[dict]:
    with (sample_city.parent / "data" / "addresses.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_deterministic(sample_city: Path, tmp_path: Path) -> None:
    again = write_sample(tmp_path / "again")
    assert _hashes(again.parent) == _hashes(sample_city.parent)


def test_project_loads(sample_city: Path) -> None:
    project = load_project(sample_city)
    assert project.name == "平城"
    assert project.crs == CRS
    assert -30 < project.datum.geoid_offset < -10
    b = project.buildings
    assert b is not None and b.path.is_file() and b.layer == "buildings"
    assert b.crs == CRS and b.address == "address"
    for key in ("terrain", "imagery", "addresses", "l3"):
        assert project.has_section(key)
    root = sample_city.parent
    assert (root / project.raw["addresses"]["path"]).is_file()
    assert (root / project.raw["l3"]["district"]).is_file()


def test_shanghai_project_loads() -> None:
    toml = Path(__file__).resolve().parents[2] / "sample_data" / "shanghai" / "city.toml"
    project = load_project(toml)
    b = project.buildings
    assert b is not None and b.path.is_file()
    fields = set(pyogrio.read_info(b.path, layer=b.layer)["fields"])
    assert {b.id, b.height, b.name, b.use, b.roof_type, *b.extra} <= fields
    assert (toml.parent / project.raw["addresses"]["path"]).is_file()


def test_counts_and_height_cases(buildings: dict) -> None:
    n = len(buildings["id"])
    assert 10_000 <= n <= 20_000
    h, f = buildings["height"], buildings["floors"]
    both = ~np.isnan(h) & ~np.isnan(f)
    h_only = ~np.isnan(h) & np.isnan(f)
    f_only = np.isnan(h) & ~np.isnan(f)
    neither = np.isnan(h) & np.isnan(f)
    assert both.sum() > 1000 and h_only.sum() > 1000 and f_only.sum() > 1000
    assert 10 < neither.sum() < 0.05 * n
    uses = set(buildings["use"])
    assert {"住宅", "商业", "办公", "寺庙", "公共", "工业"} <= uses
    roofs = set(buildings["roof_type"])
    assert {"flat", "gabled", "hipped", "pyramidal"} <= roofs
    names = set(buildings["name"]) - {None}
    assert {"鼓楼", "大雄宝殿", "平城中心"} <= names


def test_crs_and_location(sample_city: Path, buildings: dict) -> None:
    data = sample_city.parent / "data"
    assert pyogrio.read_info(data / "buildings.gpkg")["crs"] == CRS
    for name in ("dem.tif", "ortho.tif"):
        with rasterio.open(data / name) as ds:
            assert ds.crs.to_epsg() == 4547
    lon, lat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(*ORIGIN)
    assert abs(lon - 113.30) < 0.01 and abs(lat - 40.09) < 0.01
    gj = json.loads((data / "old_town.geojson").read_text(encoding="utf-8"))
    poly = shapely.geometry.shape(gj["features"][0]["geometry"])
    assert poly.contains(shapely.Point(lon, lat))


def test_courtyards_are_holes(buildings: dict) -> None:
    g = buildings["geom"]
    ok = ~shapely.is_missing(g)
    holes = ok.copy()
    holes[ok] = shapely.get_num_interior_rings(g[ok]) > 0
    assert holes.sum() > 1000
    courts = shapely.polygons(shapely.get_interior_ring(g[holes], 0))
    centres = shapely.point_on_surface(courts)
    assert not shapely.contains(g[holes], centres).any()


def test_bad_features(buildings: dict) -> None:
    ids = np.array(buildings["id"])
    g = buildings["geom"]
    assert len(BAD_FEATURES) == 10
    problems = {f.problem: f.id for f in BAD_FEATURES}
    row = {p: np.flatnonzero(ids == i)[-1] for p, i in problems.items()}
    assert (ids == problems["duplicate_id"]).sum() == 2
    assert not shapely.is_valid(g[row["bowtie"]])
    assert shapely.has_z(g[row["z_coordinate"]])
    assert g[row["null_geometry"]] is None
    assert g[row["multipolygon"]].geom_type == "MultiPolygon"
    assert shapely.area(g[row["sliver"]]) < 2.0
    assert buildings["height"][row["negative_height"]] < 0
    assert buildings["height"][row["absurd_height"]] == 9999.0
    assert shapely.equals(g[row["duplicate_geometry"]], g[row["duplicate_geometry"] - 1])
    # everything else is valid and 2D
    bad_rows = set(row.values())
    others = np.array([i for i in range(len(ids)) if i not in bad_rows])
    assert shapely.is_valid(g[others]).all()
    assert not shapely.has_z(g[others]).any()


def _sample(path: Path, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    with rasterio.open(path) as ds:
        return np.array(list(ds.sample(zip(x, y, strict=True)))).astype(float)


def test_ortho_agrees_with_footprints(sample_city: Path, buildings: dict) -> None:
    ortho = sample_city.parent / "data" / "ortho.tif"
    with rasterio.open(ortho) as ds:
        assert ds.count == 3 and ds.dtypes[0] == "uint8"
        assert ds.profile["tiled"]
        assert (ds.dataset_mask() == 0).any()  # nodata strip
    assert ortho.stat().st_size < 15_000_000
    g = buildings["geom"]
    ok = ~shapely.is_missing(g)
    holes = ok.copy()
    holes[ok] = shapely.get_num_interior_rings(g[ok]) > 0
    idx = np.flatnonzero(holes)[:300]
    # roof pixel vs courtyard pixel of the same courtyard house
    roof_pt = shapely.point_on_surface(g[idx])
    court_pt = shapely.point_on_surface(shapely.polygons(shapely.get_interior_ring(g[idx], 0)))
    roof = _sample(ortho, shapely.get_x(roof_pt), shapely.get_y(roof_pt))
    court = _sample(ortho, shapely.get_x(court_pt), shapely.get_y(court_pt))
    assert np.mean(np.abs(roof - court).sum(axis=1) > 50) > 0.9
    # modern roofs vs the road surface
    streets = json.loads((sample_city.parent / "data" / "streets.geojson").read_text("utf-8"))
    tr = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
    pts = [
        tr.transform(*f["geometry"]["coordinates"][0])
        for f in streets["features"]
        if f["properties"]["kind"] == "road"
    ]
    road = _sample(ortho, *np.array(pts).T)
    tall = np.flatnonzero(ok & (np.nan_to_num(buildings["height"]) > 30))[:300]
    tp = shapely.point_on_surface(g[tall])
    towers = _sample(ortho, shapely.get_x(tp), shapely.get_y(tp))
    assert np.abs(towers.mean(axis=0) - road.mean(axis=0)).sum() > 60


def test_dem_valley_and_datum(sample_city: Path) -> None:
    dem = sample_city.parent / "data" / "dem.tif"
    with rasterio.open(dem) as ds:
        assert ds.dtypes[0] == "float32" and ds.nodata is not None
        a = ds.read(1, masked=True)
        assert a.mask.any() and not a.mask.all()
        assert a.min() >= 1000 and a.max() <= 1160
        assert 2.0 <= ds.res[0] <= 5.0
    y = np.linspace(-2000, 2000, 41)
    xr = river_x(y)
    river = _sample(dem, xr + ORIGIN[0], y + ORIGIN[1])[:, 0]
    bank = _sample(dem, xr - 400 + ORIGIN[0], y + ORIGIN[1])[:, 0]
    assert (river < bank - 5).all()


def test_addresses(addresses: list[dict], buildings: dict) -> None:
    assert len(addresses) > 5000
    assert all(
        r["address"] == r["city"] + r["district"] + r["street"] + r["number"] for r in addresses
    )
    assert {r["district"] for r in addresses} == {"古城区", "新城区"}
    streets = {r["street"] for r in addresses}
    assert {"鼓楼东街", "鼓楼西街", "南大街", "北大街", "平城大道", "建设路", "府前路"} <= streets
    by_addr = {a: i for i, a in enumerate(buildings["address"]) if a is not None}
    inside = near = 0
    for r in addresses:
        i = by_addr.get(r["address"])
        if i is None:
            continue
        p = shapely.Point(float(r["x"]), float(r["y"]))
        if buildings["geom"][i].contains(p):
            inside += 1
        else:
            near += 1
            assert buildings["geom"][i].distance(p) < 5.0
    assert inside > 0.99 * (inside + near) and 0 < near < 20
    no_building = [r for r in addresses if r["address"] not in by_addr]
    assert no_building and any(r["poi"] for r in no_building)


def test_every_street_has_an_address(sample_city: Path, addresses: list[dict]) -> None:
    streets = json.loads((sample_city.parent / "data" / "streets.geojson").read_text("utf-8"))
    names = {f["properties"]["name"] for f in streets["features"]}
    assert names <= {r["street"] for r in addresses}


def test_known_address(addresses: list[dict], buildings: dict) -> None:
    rows = [r for r in addresses if r["address"] == KNOWN_ADDRESS]
    assert len(rows) == 1
    i = buildings["id"].index(KNOWN_BUILDING_ID)
    assert buildings["address"][i] == KNOWN_ADDRESS
    p = shapely.Point(float(rows[0]["x"]), float(rows[0]["y"]))
    assert buildings["geom"][i].contains(p)


@pytest.mark.slow
def test_other_seed_keeps_known_ids(tmp_path: Path) -> None:
    toml = write_sample(tmp_path, seed=7)
    _, table = pyogrio.read_arrow(toml.parent / "data" / "buildings.gpkg")
    d = table.to_pydict()
    assert d["address"][d["id"].index(KNOWN_BUILDING_ID)] == KNOWN_ADDRESS
    ids = set(d["id"])
    assert all(f.id in ids for f in BAD_FEATURES)
