"""Address points follow the one CRS policy (cim.crs.resolve_crs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cim.crs import gcj02_to_wgs84
from cim.errors import CRSError
from tiling.addresses.config import AddressesConfig
from tiling.addresses.reader import read_addresses


def _geojson(path: Path, points: list[tuple[float, float]]) -> Path:
    features = [
        {
            "type": "Feature",
            "properties": {"address": f"中山路{i + 1}号"},
            "geometry": {"type": "Point", "coordinates": list(p)},
        }
        for i, p in enumerate(points)
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def test_gcj02_declared_on_a_geojson_is_applied(tmp_path: Path) -> None:
    path = _geojson(tmp_path / "a.geojson", [(114.05, 22.55)])
    rec = read_addresses(AddressesConfig(path=path, crs="GCJ-02"), "EPSG:4547")
    lon, lat = gcj02_to_wgs84(np.array([114.05]), np.array([22.55]))
    assert rec.lon[0] == pytest.approx(lon[0], abs=1e-9)
    assert rec.lat[0] == pytest.approx(lat[0], abs=1e-9)
    # ~500 m from where GDAL's "EPSG:4326" would have put it
    assert abs(rec.lon[0] - 114.05) > 0.003


def test_one_bad_point_is_dropped_not_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("x,y,address\n500000,2500000,中山路1号\n1e12,2500000,中山路2号\n")
    rec = read_addresses(AddressesConfig(path=path, crs="EPSG:4547"))
    assert np.isfinite(rec.lon[0]) and np.isnan(rec.lon[1])


def test_lonlat_points_in_a_metre_crs_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("x,y,address\n114.05,22.55,中山路1号\n114.06,22.56,中山路2号\n")
    with pytest.raises(CRSError, match="all 2 address points look like lon/lat degrees"):
        read_addresses(AddressesConfig(path=path, crs="EPSG:4547"))


def test_gbk_address_csv_without_encoding(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes("lon,lat,地址\n114.05,22.55,中山路1号\n".encode("gbk"))
    rec = read_addresses(AddressesConfig(path=path, full="地址"))
    assert rec.full is not None and rec.full[0] == "中山路1号"
    assert rec.lon[0] == pytest.approx(114.05)


def test_a_ragged_address_row_is_skipped_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(
        "id,lon,lat,address\np1,114.05,22.55,中山路1号\np2,114.06,22.56,中山路,2号\n"
        "p3,114.07,22.57,中山路3号\n"
    )
    rec = read_addresses(AddressesConfig(path=path, id="id"))
    assert list(rec.ids) == ["p1", "p3"]
    assert rec.skipped == [("p2", "malformed-row", "line 3: 5 cells, the header has 4")]
