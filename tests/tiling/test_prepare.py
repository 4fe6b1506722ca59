"""Footprint repair: nothing valid is ever lost, every repair and skip is reported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely

from cim.config import load_project
from cim.crs import wgs84_to_gcj02
from cim.errors import CRSError, InputDataError
from cim.report import StageReport
from tiling.buildings.prepare import read_buildings

LON, LAT = 121.50, 31.24
D = 0.0001  # ~10 m


def square(x: float, y: float, size: float = D) -> list:
    return [
        [LON + x, LAT + y],
        [LON + x + size, LAT + y],
        [LON + x + size, LAT + y + size],
        [LON + x, LAT + y + size],
        [LON + x, LAT + y],
    ]


def feature(fid, coords, gtype="Polygon", **props) -> dict:
    geometry = None if coords is None else {"type": gtype, "coordinates": coords}
    return {"type": "Feature", "properties": {"id": fid, **props}, "geometry": geometry}


def project(tmp_path: Path, features: list[dict], extra: str = "") -> Path:
    fc = {"type": "FeatureCollection", "features": features}
    (tmp_path / "b.geojson").write_text(json.dumps(fc, ensure_ascii=False), encoding="utf-8")
    toml = (
        '[buildings]\npath = "b.geojson"\nid = "id"\nfloor_height = 3.0\n'
        f"default_height = 9.0\n{extra}"
    )
    (tmp_path / "city.toml").write_text(toml, encoding="utf-8")
    return tmp_path / "city.toml"


def read(path: Path):
    report = StageReport("buildings")
    return read_buildings(load_project(path), report), report


def reasons(items: list[dict]) -> dict[str, str]:
    return {r["id"]: r["reason"] for r in items}


BAD = [
    feature("ok", [square(0, 0)], height=20),
    feature(
        "bowtie",
        [
            [
                [LON, LAT + 0.001],
                [LON + D, LAT + 0.001 + D],
                [LON + D, LAT + 0.001],
                [LON, LAT + 0.001 + D],
                [LON, LAT + 0.001],
            ]
        ],
        height=10,
    ),
    feature("dupvert", [[square(0.002, 0)[0], *square(0.002, 0)]], height=10),
    feature("withz", [[[*c, 5.0] for c in square(0.003, 0)]], height=10),
    feature("courtyard", [square(0.004, 0, 3 * D), square(0.004 + D, D, D)[::-1]], height=6),
    feature("multi", [[square(0.006, 0)], [square(0.006, 0.0003)]], "MultiPolygon", height=8),
    feature(
        "sliver",
        [[[LON + 0.008, LAT], [LON + 0.0081, LAT], [LON + 0.0081, LAT + 1e-7], [LON + 0.008, LAT]]],
        height=10,
    ),
    feature("nogeom", None, height=10),
    feature("point", [LON, LAT], "Point", height=10),
    feature("floors-only", [square(0.010, 0)], floors=4),
    feature("negative", [square(0.011, 0)], height=-3),
    feature("absurd", [square(0.012, 0)], height=9999, floors=30),
    feature("zero", [square(0.013, 0)], height=0),
    feature("dup", [square(0.014, 0)], height=10),
    feature("dup", [square(0.015, 0)], height=11),
    feature("ok", [square(0, 0)], height=20),  # exact duplicate of the first feature
    feature(None, [square(0.016, 0)], height=12),
    feature("text-height", [square(0.017, 0)], height="15m"),
    feature("twin", [square(0.017, 0)[::-1]], height=30),  # same footprint, other id
]


def test_every_feature_is_accounted_for(tmp_path: Path) -> None:
    b, report = read(project(tmp_path, BAD))
    assert report.read == len(BAD)
    assert len(b) + len(report.skipped) == len(BAD)
    skipped = reasons(report.skipped)
    assert skipped == {
        "sliver": "sliver",
        "nogeom": "no-geometry",
        "point": "not-a-polygon",
        "ok": "duplicate-feature",
        "twin": "duplicate-footprint",
    }
    repaired = {(r["id"], r["reason"]) for r in report.repaired}
    assert ("bowtie", "invalid-geometry") in repaired
    assert ("dupvert", "duplicate-vertices") in repaired
    assert ("withz", "z-dropped") in repaired
    assert ("dup", "duplicate-id") in repaired
    assert ("floors-only", "height-from-floors") in repaired
    assert ("negative", "default-height") in repaired
    assert ("absurd", "height-from-floors") in repaired
    assert ("zero", "default-height") in repaired
    assert any(r == "missing-id" for _, r in repaired)


def test_repaired_values(tmp_path: Path) -> None:
    b, _ = read(project(tmp_path, BAD))
    row = {i: k for k, i in enumerate(b.ids)}
    assert b.height[row["floors-only"]] == 12.0
    assert b.height[row["negative"]] == 9.0
    assert b.height[row["absurd"]] == 90.0
    assert b.height[row["text-height"]] == 15.0
    assert b.height[row["ok"]] == 20.0
    assert "dup~2" in row
    assert all(shapely.is_valid(b.footprints))
    assert not shapely.has_z(b.footprints).any()
    court = b.footprints[row["courtyard"]]
    assert shapely.get_num_interior_rings(court) == 1  # courtyards stay holes
    multi = b.footprints[row["multi"]]
    assert shapely.get_num_geometries(multi) == 2  # one building, two parts
    bow = b.footprints[row["bowtie"]]
    assert shapely.area(bow) > 0


def test_exterior_rings_are_counter_clockwise(tmp_path: Path) -> None:
    cw = [square(0, 0)[::-1]]  # clockwise exterior
    b, _ = read(project(tmp_path, [feature("cw", cw, height=5)]))
    assert shapely.is_ccw(b.footprints[0].exterior)


def test_missing_crs_is_a_clear_error(tmp_path: Path) -> None:
    path = project(tmp_path, [feature("a", [square(0, 0)], height=5)])
    csv = tmp_path / "b.csv"
    csv.write_text(f'id,wkt\na,"{shapely.Polygon(square(0, 0)).wkt}"\n', encoding="utf-8")
    path.write_text('[buildings]\npath = "b.csv"\n', encoding="utf-8")
    with pytest.raises(CRSError, match=r"carries no CRS.*look like longitude/latitude"):
        read(path)


def test_projected_coordinates_declared_as_degrees(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text(
        'id,wkt\na,"POLYGON((500000 4440000,500020 4440000,500020 4440020,500000 4440000))"\n',
        encoding="utf-8",
    )
    (tmp_path / "city.toml").write_text(
        '[buildings]\npath = "b.csv"\ncrs = "EPSG:4326"\n', encoding="utf-8"
    )
    with pytest.raises(CRSError, match="not degrees"):
        read(tmp_path / "city.toml")


def test_gcj02_input_is_converted(tmp_path: Path) -> None:
    ring = np.array(square(0, 0))
    g = np.column_stack(wgs84_to_gcj02(ring[:, 0], ring[:, 1]))
    (tmp_path / "b.csv").write_text(f'id,wkt\na,"{shapely.Polygon(g).wkt}"\n', encoding="utf-8")
    (tmp_path / "city.toml").write_text(
        '[buildings]\npath = "b.csv"\ncrs = "GCJ-02"\n', encoding="utf-8"
    )
    b, _ = read(tmp_path / "city.toml")
    assert np.allclose(
        shapely.get_coordinates(b.footprints[0]).min(axis=0), ring.min(axis=0), atol=1e-8
    )


def test_nothing_usable_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="no usable building"):
        read(project(tmp_path, [feature("p", [LON, LAT], "Point")]))


def test_ground_from_dem_and_outside_dem(tmp_path: Path) -> None:
    """Base = lowest DEM height under the footprint + geoid offset; outside → reported."""
    import rasterio
    from rasterio.transform import from_origin

    from tiling.buildings.ground import set_base_elevation

    # a 100 m × 100 m DEM in EPSG:4547 rising 1 m per metre eastwards (2 m pixels)
    x0, y0 = 440_000.0, 4_440_000.0
    cols = np.arange(50) * 2.0 + 1.0
    dem = np.tile(1000.0 + cols, (50, 1)).astype("float32")
    with rasterio.open(
        tmp_path / "dem.tif",
        "w",
        driver="GTiff",
        width=50,
        height=50,
        count=1,
        dtype="float32",
        crs="EPSG:4547",
        transform=from_origin(x0, y0 + 100, 2.0, 2.0),
    ) as ds:
        ds.write(dem, 1)
    a, b_ = x0 + 20, y0 + 20
    wkt_in = f"POLYGON(({a} {b_},{a + 20} {b_},{a + 20} {b_ + 20},{a} {b_}))"
    # 5 km away: beyond the margin where the DEM's edge is continued → outside_dem_base
    wkt_out = f"POLYGON(({x0 + 5e3} {y0},{x0 + 5020} {y0},{x0 + 5020} {y0 + 20},{x0 + 5e3} {y0}))"
    (tmp_path / "b.csv").write_text(f'id,wkt\nin,"{wkt_in}"\nout,"{wkt_out}"\n', encoding="utf-8")
    (tmp_path / "city.toml").write_text(
        '[city]\ncrs = "EPSG:4547"\n[datum]\ngeoid_offset = -20.0\n'
        '[buildings]\npath = "b.csv"\nid = "id"\noutside_dem_base = 5.0\n'
        '[terrain]\npaths = ["dem.tif"]\n',
        encoding="utf-8",
    )
    project = load_project(tmp_path / "city.toml")
    report = StageReport("buildings")
    b = read_buildings(project, report)
    set_base_elevation(b, project, report)
    row = {i: k for k, i in enumerate(b.ids)}
    # lowest corner of "in" is its west edge at x0 + 20 → DEM 1020 m (bilinear) − 20 m
    assert b.base[row["in"]] == pytest.approx(1000.0, abs=0.6)
    assert b.base[row["out"]] == pytest.approx(5.0 - 20.0)
    outside = [r["id"] for r in report.repaired if r["reason"] == "outside-dem"]
    assert outside == ["out"]
