"""Corpus: empty, truncated, misnamed and broken files: one line naming the file."""

from __future__ import annotations

import json

import pytest
from corpus_kit import (
    BUILDINGS_TOML,
    Project,
    buildings_project,
    expect_built,
    expect_error,
    feature,
    good_features,
    polygon,
    square,
    wkt_polygon,
)

IDS = [f"b{k}" for k in range(8)]


def _toml(project: Project, path: str, more: str = "") -> None:
    project.toml(BUILDINGS_TOML.format(path=path, more=more))


@pytest.mark.parametrize(
    "name,data,code,message",
    [
        ("b.geojson", b"", 4, r"b\.geojson.*empty"),
        ("b.csv", b"", 4, r"b\.csv.*empty"),
        ("b.gpkg", b"", 4, r"b\.gpkg.*empty"),
        ("b.geojson", b"  \n\n ", 4, r"b\.geojson.*empty"),
        ("b.csv", b"id,wkt,height\n", 4, r"b\.csv.*(no feature|empty|no row)"),
        (
            "b.geojson",
            b'{"type":"FeatureCollection","features":[]}',
            4,
            r"b\.geojson.*no feature",
        ),
        ("b.csv", b"id,height\nb0,12\n", 4, r"b\.csv.*geometry"),
        ("b.geojson", bytes(range(256)) * 8, 5, r"b\.geojson"),
        ("b.xlsx", b"PK\x03\x04 not really", {2, 5}, r"b\.xlsx"),
    ],
    ids=[
        "empty-geojson",
        "empty-csv",
        "empty-gpkg",
        "blank-geojson",
        "header-only-csv",
        "no-features-geojson",
        "csv-without-geometry",
        "binary-garbage-geojson",
        "unknown-format",
    ],
)
def test_unusable_buildings_file(project: Project, name, data, code, message) -> None:
    project.write(f"data/{name}", data)
    _toml(project, f"data/{name}")
    expect_error(project.build(), code, message)


def test_truncated_geojson(project: Project) -> None:
    text = json.dumps({"type": "FeatureCollection", "features": good_features()})
    project.write("data/b.geojson", text[: len(text) // 2])
    _toml(project, "data/b.geojson")
    expect_error(project.build(), {4, 5}, r"b\.geojson")


def test_truncated_geopackage(project: Project) -> None:
    gpkg = project.geopackage("data/b.gpkg", good_features())
    gpkg.write_bytes(gpkg.read_bytes()[:4096])
    _toml(project, "data/b.gpkg")
    expect_error(project.build(), 5, r"b\.gpkg")


def test_geopackage_wrong_layer(project: Project) -> None:
    project.geopackage("data/b.gpkg", good_features())
    _toml(project, "data/b.gpkg", 'layer = "nope"\n')
    expect_error(project.build(), {2, 5}, r"nope")


@pytest.mark.parametrize("sidecar", [".shx", ".dbf"], ids=["missing-shx", "missing-dbf"])
def test_shapefile_missing_sidecar(project: Project, sidecar: str) -> None:
    """Either rebuilt/read without it (every feature kept) or one line naming it."""
    shp = project.shapefile("data/b.shp", good_features())
    shp.with_suffix(sidecar).unlink()
    _toml(project, "data/b.shp")
    outcome = project.build()
    if outcome.code == 0:
        features = expect_built(project, outcome, [] if sidecar == ".dbf" else IDS)
        assert len(features) == 8
    else:
        expect_error(outcome, 5, rf"b\.(shp|{sidecar[1:]})")


def test_truncated_shapefile(project: Project) -> None:
    shp = project.shapefile("data/b.shp", good_features())
    raw = shp.read_bytes()
    shp.write_bytes(raw[: len(raw) * 2 // 3])
    _toml(project, "data/b.shp")
    outcome = project.build()
    if outcome.code == 0:  # the complete records kept, the cut ones skipped
        st = project.report()["buildings"]
        assert st["read"] == st["written"] + st["skipped_count"]
        assert len(project.tile_features()) >= 4
    else:
        expect_error(outcome, {4, 5}, r"b\.shp")


def test_folder_where_a_file_is_expected(project: Project) -> None:
    (project.root / "data" / "b.geojson").mkdir(parents=True)
    _toml(project, "data/b.geojson")
    expect_error(project.build(), 5, r"b\.geojson.*(folder|directory)")


def test_csv_with_a_ragged_row(project: Project) -> None:
    rows = [f'b{k},"{wkt_polygon(square(k))}",{10 + k}' for k in range(8)]
    rows.insert(4, 'bad,"POLYGON((0 0,1 0,1 1,0 0))",12,extra,cells')
    project.write("data/b.csv", "id,wkt,height\n" + "\n".join(rows) + "\n")
    _toml(project, "data/b.csv")
    expect_built(project, project.build(), IDS, skipped=["bad"])
    (row,) = [r for r in project.report()["buildings"]["skipped"] if r["id"] == "bad"]
    assert row["reason"] == "malformed-row" and "line 6" in row["detail"], row


def test_geojson_feature_without_geometry_member(project: Project) -> None:
    feats = good_features()
    feats.append({"type": "Feature", "properties": {"id": "nogeom", "height": 3}})
    buildings_project(project, feats)
    expect_built(project, project.build(), IDS, skipped=["nogeom"])


# --- DEM files -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage,code",
    [
        ("text", 5),
        ("truncated", 5),
        ("empty", {4, 5}),
        ("folder", 5),
        ("png", 5),
    ],
    ids=["not-a-geotiff", "truncated-tiff", "zero-bytes", "a-folder", "png-named-tif"],
)
def test_broken_dem(project: Project, damage: str, code) -> None:
    project.geojson("data/b.geojson", good_features())
    dem = project.root / "data" / "dem.tif"
    if damage == "text":
        dem.write_text("ncols 10\nnrows 10\n this is an ASCII grid, not a GeoTIFF\n")
    elif damage == "truncated":
        project.dem("data/dem.tif")
        dem.write_bytes(dem.read_bytes()[:600])
    elif damage == "empty":
        dem.write_bytes(b"")
    elif damage == "folder":
        dem.mkdir()
    else:
        dem.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    _toml(project, "data/b.geojson", '[terrain]\npaths = ["data/dem.tif"]\n')
    expect_error(project.build(), code, r"dem\.tif")


# --- one undecodable feature in each reader: a skip, not the file -------------------


def test_geoparquet_with_one_corrupt_wkb(project: Project) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely.geometry

    feats = good_features()
    wkb = [shapely.geometry.shape(f["geometry"]).wkb for f in feats] + [b"\x01\x03\x00garbage"]
    geo = {
        "version": "1.0.0",
        "primary_column": "geometry",
        "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Polygon"]}},
    }
    table = pa.table(
        {"id": [*IDS, "corrupt"], "height": [10.0] * 9, "geometry": pa.array(wkb, pa.binary())}
    ).replace_schema_metadata({"geo": json.dumps(geo)})
    (project.root / "data").mkdir()
    pq.write_table(table, project.root / "data" / "b.parquet")
    _toml(project, "data/b.parquet")
    expect_built(project, project.build(), IDS, skipped=["corrupt"])


@pytest.mark.parametrize("fmt", ["gpkg", "fgb", "shp"])
def test_bow_tie_in_each_gdal_format(project: Project, fmt: str) -> None:
    r = square(20)
    bow = feature("bow", polygon([r[0], r[2], r[1], r[3], r[0]]), height=12.0, name="x")
    feats = [*good_features(), bow]
    if fmt == "gpkg":
        project.geopackage("data/b.gpkg", feats)
    elif fmt == "shp":
        project.shapefile("data/b.shp", feats)
    else:
        project._ogr("data/b.fgb", feats, "EPSG:4326", "FlatGeobuf")
    _toml(project, f"data/b.{fmt}")
    expect_built(project, project.build(), [*IDS, "bow"], repaired=["bow"])
