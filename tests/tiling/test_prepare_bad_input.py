"""Bad input costs only the bad feature: degenerate geometry, wrong coordinates, encodings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cim.config import load_project
from cim.errors import CRSError, InputDataError
from cim.report import StageReport
from tiling.buildings.prepare import read_buildings

LON, LAT = 114.05, 22.55  # inside EPSG:4547 (CGCS2000 GK CM 114E)
D = 0.0002


def ring(x: float, y: float, size: float = D, closed: bool = True) -> list:
    pts = [[x, y], [x + size, y], [x + size, y + size], [x, y + size]]
    return [*pts, pts[0]] if closed else pts


def feature(fid: str, geometry: dict | None, **props) -> dict:
    return {"type": "Feature", "properties": {"id": fid, **props}, "geometry": geometry}


def poly(*rings: list) -> dict:
    return {"type": "Polygon", "coordinates": list(rings)}


def write(tmp_path: Path, features: list[dict], toml: str = "", name: str = "b.geojson") -> Path:
    fc = {"type": "FeatureCollection", "features": features}
    (tmp_path / name).write_text(json.dumps(fc), encoding="utf-8")
    (tmp_path / "city.toml").write_text(
        f'[buildings]\npath = "{name}"\nid = "id"\n{toml}', encoding="utf-8"
    )
    return tmp_path / "city.toml"


def read(path: Path):
    report = StageReport("buildings")
    return read_buildings(load_project(path), report), report


def skipped(report: StageReport) -> dict[str, str]:
    return {r["id"]: r["reason"] for r in report.skipped}


def repaired(report: StageReport) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in report.repaired:
        out.setdefault(r["id"], []).append(r["reason"])
    return out


def test_degenerate_features_cost_only_themselves(tmp_path: Path) -> None:
    tiny = D / 100_000  # half a millimetre across: collapses to a point
    features = [
        feature("ok", poly(ring(LON, LAT)), height=10),
        feature("unclosed", poly(ring(LON + 0.001, LAT, closed=False)), height=10),
        feature("two-point", poly([[LON, LAT], [LON + D, LAT]]), height=10),
        feature("tiny", poly([[LON, LAT], [LON + tiny, LAT], [LON, LAT + tiny], [LON, LAT]])),
        feature("empty", {"type": "Polygon", "coordinates": []}),
        feature(
            "collection",
            {
                "type": "GeometryCollection",
                "geometries": [
                    poly(ring(LON + 0.002, LAT)),
                    {"type": "Point", "coordinates": [1, 1]},
                ],
            },
            height=12,
        ),
        feature(
            "one-part-multi",
            {"type": "MultiPolygon", "coordinates": [[ring(LON + 0.003, LAT)]]},
            height=10,
        ),
    ]
    b, report = read(write(tmp_path, features))
    assert sorted(b.ids) == ["collection", "ok", "one-part-multi", "unclosed"]
    assert skipped(report) == {
        "two-point": "invalid-geometry",
        "tiny": "sliver",
        "empty": "no-geometry",
    }
    fixes = repaired(report)
    assert fixes["unclosed"] == ["invalid-geometry"]
    assert "two-point" not in fixes  # skipped, so not also counted as repaired
    assert "one-part-multi" not in fixes  # a one-part MultiPolygon is just a polygon
    assert report.read == len(b) + len(report.skipped)
    assert all(g.geom_type == "Polygon" for g in b.footprints)


def test_nan_and_far_away_coordinates_are_skipped_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text(
        "id,wkt\n"
        'ok,"POLYGON((500000 2500000,500020 2500000,500020 2500020,500000 2500000))"\n'
        'far,"POLYGON((1e12 2500000,1e12 2500020,1.00000000002e12 2500020,1e12 2500000))"\n'
        'nan,"POLYGON((500000 2500000,500020 2500000,500020 nan,500000 2500000))"\n'
        'lonlat,"POLYGON((114.05 22.55,114.06 22.55,114.06 22.56,114.05 22.55))"\n',
        encoding="utf-8",
    )
    (tmp_path / "city.toml").write_text(
        '[buildings]\npath = "b.csv"\nid = "id"\ncrs = "EPSG:4547"\n', encoding="utf-8"
    )
    b, report = read(tmp_path / "city.toml")
    assert list(b.ids) == ["ok"]
    assert skipped(report) == {
        "far": "bad-coordinates",
        "nan": "bad-coordinates",
        "lonlat": "bad-coordinates",
    }
    detail = {r["id"]: r["detail"] for r in report.skipped}
    assert "look like lon/lat" in detail["lonlat"]


def test_all_lonlat_in_a_metre_crs_is_one_line_error(tmp_path: Path) -> None:
    features = [feature(f"b{i}", poly(ring(LON + i * 0.001, LAT))) for i in range(120)]
    path = write(tmp_path, features, 'crs = "EPSG:4547"\n')
    with pytest.raises(CRSError) as exc:
        read(path)
    msg = str(exc.value)
    assert "\n" not in msg and "b.geojson" in msg
    assert "all 120 features look like lon/lat degrees but EPSG:4547" in msg
    assert 'crs = "EPSG:4490"' in msg


def test_geojson_without_crs_member_takes_the_declared_crs(tmp_path: Path) -> None:
    # GDAL says EPSG:4326 for every GeoJSON; without a crs member the file carries none
    x, y = 500000.0, 2500000.0
    features = [feature("a", poly([[x, y], [x + 20, y], [x + 20, y + 20], [x, y + 20], [x, y]]))]
    b, _ = read(write(tmp_path, features, 'crs = "EPSG:4547"\n'))
    lon, lat = b.footprints[0].exterior.coords[0]
    assert abs(lon - 114.0) < 0.01 and 22 < lat < 23


def test_geojson_crs_member_contradicting_declared_crs(tmp_path: Path) -> None:
    x, y = 500000.0, 2500000.0
    fc = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4547"}},
        "features": [
            feature("a", poly([[x, y], [x + 20, y], [x + 20, y + 20], [x, y + 20], [x, y]]))
        ],
    }
    (tmp_path / "b.geojson").write_text(json.dumps(fc), encoding="utf-8")
    (tmp_path / "city.toml").write_text(
        '[buildings]\npath = "b.geojson"\ncrs = "EPSG:32650"\n', encoding="utf-8"
    )
    with pytest.raises(CRSError, match="EPSG:32650 contradicts the file's own CRS EPSG:4547"):
        read(tmp_path / "city.toml")


def test_gcj02_declared_on_a_geojson_is_applied(tmp_path: Path) -> None:
    features = [feature("a", poly(ring(LON, LAT)))]
    b, _ = read(write(tmp_path, features, 'crs = "GCJ-02"\n'))
    lon, lat = b.footprints[0].exterior.coords[0]
    # GCJ-02 → WGS84 moves points in Shenzhen by several hundred metres
    assert abs(lon - LON) > 0.002 or abs(lat - LAT) > 0.002


def test_gbk_csv_is_decoded_and_numbers_keep_their_type(tmp_path: Path) -> None:
    text = (
        "id,name,floors,year,wkt\n"
        'a,中山大厦,2.5,1998,"POLYGON((114.05 22.55,114.0502 22.55,114.0502 22.5502,'
        '114.05 22.55))"\n'
    )
    (tmp_path / "b.csv").write_bytes(text.encode("gbk"))
    (tmp_path / "city.toml").write_text(
        '[buildings]\npath = "b.csv"\nid = "id"\nheight = "h"\ncrs = "EPSG:4490"\n'
        'extra = ["year", "name"]\n',
        encoding="utf-8",
    )
    b, _ = read(tmp_path / "city.toml")
    assert b.name[0] == "中山大厦"
    assert b.floors.dtype == np.float64 and b.floors[0] == 2.5
    assert b.height[0] == pytest.approx(7.5)  # 2.5 floors × 3 m
    assert b.extra["year"].dtype == np.int64 and b.extra["year"][0] == 1998
    assert b.extra["name"][0] == "中山大厦"


def test_empty_file_is_input_data_error(tmp_path: Path) -> None:
    (tmp_path / "b.geojson").write_bytes(b"")
    (tmp_path / "city.toml").write_text('[buildings]\npath = "b.geojson"\n', encoding="utf-8")
    with pytest.raises(InputDataError, match="empty file"):
        read(tmp_path / "city.toml")
