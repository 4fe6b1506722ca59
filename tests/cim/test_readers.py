"""Vector readers: every supported format, encodings, CRS, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pyogrio
import pytest
import shapely
from pyproj import CRS

from cim.errors import DatasetIOError, InputDataError
from cim.readers import detect_shapefile_encoding, read_features

SQUARE = shapely.box(500_000, 4_440_000, 500_020, 4_440_015)
NAMES = np.array(["鼓楼", "大雄宝殿", "平城中心"], dtype=object)


def write_ogr(
    path: Path, driver: str, *, encoding: str | None = None, crs: str | None = "EPSG:4547"
) -> Path:
    geoms = [shapely.affinity.translate(SQUARE, 50 * i) for i in range(3)]
    pyogrio.write_arrow(
        pa.table(
            {
                "name": pa.array(list(NAMES)),
                "height": pa.array([12.0, 30.5, 88.0]),
                "geometry": pa.array(shapely.to_wkb(geoms)),
            }
        ),
        path,
        driver=driver,
        geometry_name="geometry",
        geometry_type="Polygon",
        crs=crs,
        encoding=encoding,
    ) if encoding is None else pyogrio.raw.write(
        path,
        np.array(shapely.to_wkb(geoms), dtype=object),
        [NAMES, np.array([12.0, 30.5, 88.0])],
        ["name", "height"],
        driver=driver,
        geometry_type="Polygon",
        crs=crs,
        encoding=encoding,
    )
    return path


@pytest.mark.parametrize(
    ("suffix", "driver"),
    [
        (".gpkg", "GPKG"),
        (".geojson", "GeoJSON"),
        (".fgb", "FlatGeobuf"),
        (".shp", "ESRI Shapefile"),
    ],
)
def test_gdal_formats(tmp_path: Path, suffix: str, driver: str) -> None:
    crs = "EPSG:4326" if driver == "GeoJSON" else "EPSG:4547"
    table = read_features(write_ogr(tmp_path / f"b{suffix}", driver, crs=crs))
    assert len(table) == 3
    # FlatGeobuf's spatial index may reorder features: compare as a mapping
    got = dict(zip(table.column("name"), table.column("height"), strict=True))
    assert got == {"鼓楼": 12.0, "大雄宝殿": 30.5, "平城中心": 88.0}
    assert CRS.from_user_input(table.crs).to_epsg() == int(crs.split(":")[1])


def test_gbk_shapefile_without_cpg_is_detected(tmp_path: Path) -> None:
    shp = write_ogr(tmp_path / "gbk.shp", "ESRI Shapefile", encoding="GBK")
    shp.with_suffix(".cpg").unlink(missing_ok=True)
    raw = shp.with_suffix(".dbf").read_bytes()
    assert "鼓楼".encode("gbk") in raw  # really GBK on disk
    assert detect_shapefile_encoding(shp) == "GB18030"
    assert list(read_features(shp).column("name")) == list(NAMES)


def test_gbk_shapefile_with_cpg(tmp_path: Path) -> None:
    shp = write_ogr(tmp_path / "cpg.shp", "ESRI Shapefile", encoding="GBK")
    shp.with_suffix(".cpg").write_text("GBK", encoding="ascii")
    assert list(read_features(shp).column("name")) == list(NAMES)


def test_geoparquet(tmp_path: Path) -> None:
    geo = {
        "version": "1.0.0",
        "primary_column": "geometry",
        "columns": {
            "geometry": {
                "encoding": "WKB",
                "geometry_types": ["Polygon"],
                "crs": CRS("EPSG:4547").to_json_dict(),
            }
        },
    }
    table = pa.table({"id": ["a", "b"], "geometry": shapely.to_wkb([SQUARE, SQUARE])})
    pq.write_table(
        table.replace_schema_metadata({b"geo": json.dumps(geo).encode()}), tmp_path / "b.parquet"
    )
    out = read_features(tmp_path / "b.parquet")
    assert len(out) == 2 and CRS.from_user_input(out.crs).to_epsg() == 4547


def test_csv_wkt_and_lonlat(tmp_path: Path) -> None:
    (tmp_path / "w.csv").write_text(f'id,wkt\n1,"{SQUARE.wkt}"\n2,not wkt\n', encoding="utf-8")
    out = read_features(tmp_path / "w.csv")
    assert out.geometry[0].equals(SQUARE) and out.geometry[1] is None and out.crs is None
    (tmp_path / "p.csv").write_text("name,lon,lat\n陆家嘴,121.5,31.24\nbad,,\n", encoding="utf-8")
    pts = read_features(tmp_path / "p.csv")
    assert pts.geometry[0].x == 121.5 and pts.geometry[1] is None


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetIOError, match="not found"):
        read_features(tmp_path / "missing.gpkg")
    (tmp_path / "x.dwg").write_bytes(b"AC1027")
    with pytest.raises(DatasetIOError, match="unknown vector format"):
        read_features(tmp_path / "x.dwg")
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    with pytest.raises(InputDataError, match="empty"):
        read_features(tmp_path / "empty.csv")
    (tmp_path / "empty.geojson").write_text(
        '{"type":"FeatureCollection","features":[]}', encoding="utf-8"
    )
    with pytest.raises((InputDataError, DatasetIOError)):
        read_features(tmp_path / "empty.geojson")
    (tmp_path / "broken.geojson").write_text("{not json", encoding="utf-8")
    with pytest.raises(DatasetIOError):
        read_features(tmp_path / "broken.geojson")
