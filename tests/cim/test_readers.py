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


# --- per-feature errors, encodings, empty files, CRS of GeoJSON ----------------------


def test_geojson_crs_member_decides_whether_the_file_carries_a_crs(tmp_path: Path) -> None:
    # GDAL reports EPSG:4326 for any GeoJSON; without a crs member that is RFC 7946's
    # default, not something the file says
    plain = tmp_path / "plain.geojson"
    feature = {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(SQUARE)}
    plain.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    t = read_features(plain)
    assert t.crs is None and t.implied_crs == "EPSG:4326"
    named = write_ogr(tmp_path / "named.geojson", "GeoJSON", crs="EPSG:4547")
    t = read_features(named)
    assert t.crs is not None and CRS.from_user_input(t.crs).to_epsg() == 4547


def test_unreadable_rings_are_repaired_or_dropped_per_feature(tmp_path: Path) -> None:
    ring = [[0, 0], [20, 0], [20, 20], [0, 20]]
    fc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"id": i}, "geometry": g}
            for i, g in enumerate(
                [
                    {"type": "Polygon", "coordinates": [ring]},  # unclosed
                    {"type": "Polygon", "coordinates": [ring[:2]]},  # two points
                    {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
                ]
            )
        ],
    }
    path = tmp_path / "d.geojson"
    path.write_text(json.dumps(fc), encoding="utf-8")
    t = read_features(path)
    assert len(t) == 3 and t.geometry[2].is_valid
    assert t.geometry[0].exterior.is_closed and t.geometry[0].area == 400
    assert [(i.row, i.reason, i.repaired) for i in t.issues] == [
        (0, "invalid-geometry", True),
        (1, "invalid-geometry", True),
    ]
    assert "closed" in t.issues[0].detail


def test_csv_encodings_are_detected(tmp_path: Path) -> None:
    text = 'id,name,wkt\n1,鼓楼大街,"POINT (1 2)"\n'
    for enc, raw, expected in [
        ("gbk", text.encode("gbk"), "GB18030"),
        ("gb18030", text.encode("gb18030"), "GB18030"),
        ("utf-8", text.encode("utf-8"), "UTF-8"),
        ("bom", b"\xef\xbb\xbf" + text.encode("utf-8"), "UTF-8-SIG"),
    ]:
        path = tmp_path / f"{enc}.csv"
        path.write_bytes(raw)
        t = read_features(path)
        assert t.encoding == expected
        assert t.columns["name"][0] == "鼓楼大街" and "id" in t.columns


def test_declared_encoding_that_cannot_decode_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes('id,name,wkt\n1,鼓楼,"POINT (1 2)"\n'.encode("gbk"))
    with pytest.raises(InputDataError) as exc:
        read_features(path, encoding="utf-8")
    msg = str(exc.value)
    assert "\n" not in msg and "a.csv" in msg and "GB18030" in msg
    from cim.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown text encoding"):
        read_features(path, encoding="no-such-codec")


def test_numeric_columns_keep_their_type(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(
        'id,year,ratio,gap,wkt\n1,1998,0.5,,"POINT (1 2)"\n2,2001,1.5,3,"POINT (1 2)"\n',
        encoding="utf-8",
    )
    t = read_features(path)
    assert t.columns["year"].dtype == np.int64
    assert t.columns["ratio"].dtype == np.float64
    assert t.columns["gap"].dtype == np.float64 and np.isnan(t.columns["gap"][0])


def test_empty_files_are_input_data_errors(tmp_path: Path) -> None:
    cases = {
        "zero.geojson": "",
        "zero.csv": "",
        "header.csv": "id,wkt\n",
        "nofeatures.geojson": '{"type": "FeatureCollection", "features": []}',
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        with pytest.raises(InputDataError, match="empty file"):
            read_features(tmp_path / name)


def test_apply_per_feature_isolates_the_failing_feature() -> None:
    from cim.readers import apply_per_feature

    tiny = shapely.Polygon([(0, 0), (1e-9, 0), (0, 1e-9)])
    geoms = np.array([shapely.box(0, 0, 1, 1), tiny, shapely.box(2, 2, 3, 3)], dtype=object)
    out, errors = apply_per_feature(shapely.remove_repeated_points, geoms, 1e-8)
    assert list(errors) == [1] and "LinearRing" in errors[1]
    assert out[0].equals(geoms[0]) and out[2].equals(geoms[2]) and out[1] is None


def test_csv_rows_with_another_number_of_cells_are_listed_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    rows = [f'{k},"POINT ({k} 0)"' for k in range(4)]
    rows.insert(2, 'bad,"POINT (9 9)",extra')
    rows.append("short")
    path.write_text("id,wkt\n" + "\n".join(rows) + "\n", encoding="utf-8")
    t = read_features(path)
    assert list(t.column("id")) == [0, 1, 2, 3]
    assert [(r.line, r.cells.get("id"), r.detail) for r in t.bad_rows] == [
        (4, "bad", "3 cells, the header has 2"),
        (7, "short", "1 cells, the header has 2"),
    ]


def test_csv_whose_every_row_is_ragged_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text('id,wkt\n1,"POINT (0 0)",x\n2,"POINT (1 0)",y\n', encoding="utf-8")
    with pytest.raises(InputDataError, match=r"no usable row: all 2 rows .*line 2: 3 cells"):
        read_features(path)


@pytest.mark.parametrize("name", ["b.geojson", "b.csv", "b.gpkg"])
def test_blank_file_is_empty_not_a_format_error(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"\xef\xbb\xbf  \r\n\t\n ")
    with pytest.raises(InputDataError, match="empty file"):
        read_features(tmp_path / name)
