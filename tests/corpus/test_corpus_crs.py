"""Corpus: CRS policy (exit 3 naming the file and the evidence; never a silent choice)."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from corpus_kit import (
    GK,
    GK_ZONE,
    LAT0,
    LON0,
    Project,
    centre,
    expect_built,
    expect_error,
    feature,
    good_features,
    polygon,
    square,
    transform,
    wkt_polygon,
)

from cim.crs import gcj02_to_bd09, wgs84_to_gcj02

N = 8
IDS = [f"b{k}" for k in range(N)]
LONLAT = 'crs = "EPSG:4326"\n'  # the buildings' own CRS, declared (GeoJSON is lon/lat)


def true_extent(n: int = N) -> np.ndarray:
    rings = np.array([square(k) for k in range(n)])
    return np.array(
        [rings[..., 0].min(), rings[..., 1].min(), rings[..., 0].max(), rings[..., 1].max()]
    )


def assert_extent(project: Project, tol_m: float = 2.0) -> None:
    """The built extent is where the buildings really are (GCJ-02 is ~500 m off)."""
    got = np.array(project.manifest()["extent"])
    tol = tol_m / 111_000.0
    assert np.all(np.abs(got - true_extent()) < tol), (got, true_extent())


def gk_csv(project: Project, crs: str = GK, n: int = N, extra_rows=(), rel="data/b.csv"):
    rows = [(f"b{k}", wkt_polygon(transform(square(k), crs)), 10 + k) for k in range(n)]
    return project.csv(rel, ["id", "wkt", "height"], [*rows, *extra_rows])


def toml(project: Project, path: str, more: str = "", city: str = "") -> None:
    project.toml(f'[city]\nname = "t"\n{city}[buildings]\npath = "{path}"\nid = "id"\n{more}')


def test_missing_crs(project: Project) -> None:
    gk_csv(project)
    toml(project, "data/b.csv")
    expect_error(project.build(), 3, r"b\.csv.*no CRS.*crs")


@pytest.mark.parametrize("crs", ["EPSG:999999", "not a crs"], ids=["unknown-epsg", "garbage"])
def test_unknown_crs(project: Project, crs: str) -> None:
    gk_csv(project)
    toml(project, "data/b.csv", f'crs = "{crs}"\n')
    expect_error(project.build(), 3, re_escape(crs))


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_lonlat_file_declared_gauss_krueger(project: Project) -> None:
    rows = [(f"b{k}", wkt_polygon(square(k)), 10) for k in range(N)]
    project.csv("data/b.csv", ["id", "wkt", "height"], rows)
    toml(project, "data/b.csv", f'crs = "{GK}"\n')
    expect_error(project.build(), 3, r"b\.csv.*(longitude|lon/lat|degrees)")


def test_one_lonlat_feature_in_a_gauss_krueger_file(project: Project) -> None:
    gk_csv(project, extra_rows=[("lonlat", wkt_polygon(square(9)), 10)])
    toml(project, "data/b.csv", f'crs = "{GK}"\n')
    expect_built(project, project.build(), IDS, skipped=["lonlat"])
    assert_extent(project)


def test_one_feature_at_1e12_among_good_ones(project: Project) -> None:
    far = [[1e12, 3.4e6], [1e12 + 10, 3.4e6], [1e12 + 10, 3.4e6 + 10], [1e12, 3.4e6]]
    gk_csv(project, extra_rows=[("far", wkt_polygon(far), 10)])
    toml(project, "data/b.csv", f'crs = "{GK}"\n')
    expect_built(project, project.build(), IDS, skipped=["far"])
    assert_extent(project)


def test_one_feature_at_1e12_in_a_lonlat_geojson(project: Project) -> None:
    far = [[1e12, 30.0], [1e12 + 1, 30.0], [1e12 + 1, 30.1], [1e12, 30.0]]
    project.geojson("data/b.geojson", [*good_features(), feature("far", polygon(far))])
    toml(project, "data/b.geojson", LONLAT)
    expect_built(project, project.build(), IDS, skipped=["far"])


def test_gauss_krueger_with_zone_prefix_declared_without(project: Project) -> None:
    gk_csv(project, crs=GK_ZONE)  # x ≈ 38 500 000
    toml(project, "data/b.csv", f'crs = "{GK}"\n')
    expect_error(project.build(), 3, r"b\.csv.*zone")


def test_gauss_krueger_with_zone_prefix_declared_right(project: Project) -> None:
    gk_csv(project, crs=GK_ZONE)
    toml(project, "data/b.csv", f'crs = "{GK_ZONE}"\n')
    expect_built(project, project.build(), IDS)
    assert_extent(project)


def _gcj_ring(k: int, bd09: bool = False) -> list[list[float]]:
    ring = np.array(square(k))
    lon, lat = wgs84_to_gcj02(ring[:, 0], ring[:, 1])
    if bd09:
        lon, lat = gcj02_to_bd09(lon, lat)
    return np.column_stack([lon, lat]).tolist()


def test_gcj02_geojson_buildings_land_where_expected(project: Project) -> None:
    feats = [feature(f"b{k}", polygon(_gcj_ring(k)), height=12.0) for k in range(N)]
    project.geojson("data/b.geojson", feats)
    toml(project, "data/b.geojson", 'crs = "GCJ-02"\n')
    expect_built(project, project.build(), IDS)
    assert_extent(project)


def test_bd09_csv_buildings_land_where_expected(project: Project) -> None:
    rows = [(f"b{k}", wkt_polygon(_gcj_ring(k, bd09=True)), 12) for k in range(N)]
    project.csv("data/b.csv", ["id", "wkt", "height"], rows)
    toml(project, "data/b.csv", 'crs = "BD-09"\n')
    expect_built(project, project.build(), IDS)
    assert_extent(project)


def test_gcj02_geojson_addresses_land_where_expected(project: Project) -> None:
    project.geojson("data/b.geojson", good_features())
    points = []
    for k in range(N):
        lon, lat = wgs84_to_gcj02(*map(np.array, centre(k)))
        geom = {"type": "Point", "coordinates": [float(lon), float(lat)]}
        points.append(feature(f"a{k}", geom, address=f"武汉市江岸区中山大道{k + 1}号"))
    project.geojson("data/a.geojson", points)
    toml(
        project,
        "data/b.geojson",
        LONLAT
        + '[addresses]\npath = "data/a.geojson"\ncrs = "GCJ-02"\nid = "id"\nfull = "address"\n',
    )
    expect_built(project, project.build(), IDS)
    with sqlite3.connect(project.output / "addresses.sqlite") as con:
        rows = con.execute("SELECT source_id, lon, lat, building_id FROM addresses").fetchall()
    assert len(rows) == N
    for source_id, lon, lat, building_id in rows:
        k = int(source_id[1:])
        true_lon, true_lat = centre(k)
        assert abs(lon - true_lon) * 96_000 < 2.0 and abs(lat - true_lat) * 111_000 < 2.0
        assert building_id == f"b{k}"


def test_geojson_without_crs_member_honours_buildings_crs(project: Project) -> None:
    feats = [feature(f"b{k}", polygon(transform(square(k), GK)), height=9.0) for k in range(N)]
    project.geojson("data/b.geojson", feats)
    toml(project, "data/b.geojson", f'crs = "{GK}"\n')
    expect_built(project, project.build(), IDS)
    assert_extent(project)


def test_geojson_in_metres_without_any_crs(project: Project) -> None:
    feats = [feature(f"b{k}", polygon(transform(square(k), GK)), height=9.0) for k in range(N)]
    project.geojson("data/b.geojson", feats)
    toml(project, "data/b.geojson")
    expect_error(project.build(), 3, r"b\.geojson")


def _gk_shapefile(project: Project) -> None:
    feats = [feature(f"b{k}", polygon(transform(square(k), GK)), height=9.0) for k in range(N)]
    project.shapefile("data/b.shp", feats, crs=GK)


def test_declared_crs_contradicting_the_prj(project: Project) -> None:
    _gk_shapefile(project)
    toml(project, "data/b.shp", 'crs = "EPSG:4326"\n')
    expect_error(project.build(), 3, r"b\.(shp|prj).*(4326|4547|Gauss|prj)")


def test_declared_crs_agreeing_with_the_prj(project: Project) -> None:
    _gk_shapefile(project)
    toml(project, "data/b.shp", f'crs = "{GK}"\n')
    expect_built(project, project.build(), IDS)
    assert_extent(project)


# --- DEM --------------------------------------------------------------------------


def _dem_project(project: Project, dem_crs: str | None, terrain: str, city: str = "") -> None:
    project.geojson("data/b.geojson", good_features())
    project.dem("data/dem.tif", crs=dem_crs)
    toml(project, "data/b.geojson", f'{LONLAT}[terrain]\npaths = ["data/dem.tif"]\n{terrain}', city)


def test_dem_declared_in_a_crs_contradicting_its_own(project: Project) -> None:
    _dem_project(project, GK, 'crs = "EPSG:4326"\n')
    expect_error(project.build(), 3, r"dem\.tif")


def test_dem_without_crs_declared_in_the_wrong_one(project: Project) -> None:
    """A lon/lat DEM declared as Gauss-Krüger metres covers none of the buildings."""
    _dem_project(project, None, f'crs = "{GK}"\n')
    expect_error(project.build(), 3, r"dem\.tif")


def test_dem_without_any_crs(project: Project) -> None:
    _dem_project(project, None, "")
    expect_error(project.build(), 3, r"dem\.tif.*CRS")


def test_dem_without_crs_uses_city_crs(project: Project) -> None:
    _dem_project(project, None, "", city='crs = "EPSG:4326"\n')
    features = expect_built(project, project.build(), IDS)
    assert project.report()["buildings"]["counts"].get("outside_dem", 0) == 0
    assert all(f["base"] > 40 for f in features.values())


def test_address_csv_in_metres_without_any_crs(project: Project) -> None:
    project.geojson("data/b.geojson", good_features())
    rows = []
    for k in range(N):
        x, y = transform([centre(k)], GK)[0]
        rows.append((f"a{k}", x, y, f"中山大道{k + 1}号"))
    project.csv("data/a.csv", ["id", "x", "y", "address"], rows)
    toml(
        project,
        "data/b.geojson",
        LONLAT + '[addresses]\npath = "data/a.csv"\nx = "x"\ny = "y"\nfull = "address"\n',
    )
    expect_error(project.build(), 3, r"a\.csv")


def test_lonlat_near_origin_is_not_mistaken(project: Project) -> None:
    """Control: a plain lon/lat GeoJSON in China builds where it is."""
    project.geojson("data/b.geojson", good_features())
    toml(project, "data/b.geojson")
    expect_built(project, project.build(), IDS)
    assert_extent(project)
    assert abs(project.manifest()["extent"][0] - LON0) < 1e-3
    assert abs(project.manifest()["extent"][1] - LAT0) < 1e-3
