"""CRS handling: pyproj factory, GCJ-02/BD-09 conversions, local ENU frames."""

from __future__ import annotations

import numpy as np
import pytest

from cim.crs import (
    bd09_to_gcj02,
    enu_to_ecef_matrix,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    geodetic_to_ecef,
    get_transformer,
    lonlat_to_enu,
    to_lonlat,
    wgs84_to_gcj02,
)
from cim.errors import CRSError

R = 6_371_000.0


def metres(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Small-distance approximation, good to 0.1 % for these checks."""
    dx = np.radians(np.asarray(lon2) - lon1) * R * np.cos(np.radians(lat1))
    dy = np.radians(np.asarray(lat2) - lat1) * R
    return np.hypot(dx, dy)


def test_transformer_is_cached_and_xy_ordered() -> None:
    assert get_transformer("EPSG:4547") is get_transformer("EPSG:4547")
    # CGCS2000 3-degree GK CM 114E: false easting 500 km on the central meridian
    lon, lat = to_lonlat(np.array([500_000.0]), np.array([4_440_000.0]), "EPSG:4547")
    assert lon[0] == pytest.approx(114.0, abs=1e-9)
    assert 39.9 < lat[0] < 40.2


def test_gauss_kruger_zone_with_prefix() -> None:
    # EPSG:4526: CGCS2000 3-degree GK zone 38 (x carries the zone number 38)
    lon, _ = to_lonlat(np.array([38_500_000.0]), np.array([4_440_000.0]), "EPSG:4526")
    assert lon[0] == pytest.approx(114.0, abs=1e-9)


def test_unknown_crs_is_a_crs_error() -> None:
    with pytest.raises(CRSError, match="unknown CRS"):
        to_lonlat(np.array([0.0]), np.array([0.0]), "EPSG:999999")


def test_gcj02_offset_in_china_and_none_outside() -> None:
    lon, lat = np.array([116.391350, 121.4997]), np.array([39.907723, 31.2397])
    glon, glat = wgs84_to_gcj02(lon, lat)
    shift = metres(lon, lat, glon, glat)
    assert np.all((shift > 100) & (shift < 700))  # GCJ-02 moves points 100–700 m
    # pinned output of the published formula at Tiananmen (regression guard)
    assert glon[0] == pytest.approx(116.397591, abs=2e-6)
    assert glat[0] == pytest.approx(39.909124, abs=2e-6)
    out_lon, out_lat = wgs84_to_gcj02(np.array([2.35]), np.array([48.85]))  # Paris
    assert out_lon[0] == 2.35 and out_lat[0] == 48.85


def test_gcj02_inverse_accuracy_is_sub_millimetre() -> None:
    rng = np.random.default_rng(0)
    lon = rng.uniform(75, 134, 5000)
    lat = rng.uniform(18, 53, 5000)
    back = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert metres(lon, lat, *back).max() < 1e-3


def test_gcj02_inverse_of_a_point_does_not_depend_on_the_others() -> None:
    """The repair converts a footprint in one chunk or another (and a rebuild takes
    some from the last build's cache): each point's result is its own, to the bit."""
    rng = np.random.default_rng(1)
    lon, lat = rng.uniform(73, 135, 3000), rng.uniform(18, 53, 3000)
    together = gcj02_to_wgs84(lon, lat)
    alone = np.array([gcj02_to_wgs84(lon[i : i + 1], lat[i : i + 1]) for i in range(len(lon))])
    assert np.array_equal(together[0], alone[:, 0, 0])
    assert np.array_equal(together[1], alone[:, 1, 0])


def test_bd09_round_trip_and_offset() -> None:
    lon, lat = np.array([116.404, 114.3]), np.array([39.915, 30.6])
    blon, blat = gcj02_to_bd09(lon, lat)
    assert np.all(metres(lon, lat, blon, blat) > 500)  # BD-09 adds ~600–900 m more
    back = bd09_to_gcj02(blon, blat)
    assert metres(lon, lat, *back).max() < 1e-3


def test_to_lonlat_dispatches_gcj_and_bd() -> None:
    lon, lat = np.array([121.5]), np.array([31.24])
    g = wgs84_to_gcj02(lon, lat)
    b = gcj02_to_bd09(*g)
    for crs, xy in (("GCJ-02", g), ("gcj02", g), ("BD-09", b)):
        back = to_lonlat(xy[0], xy[1], crs)
        assert metres(lon, lat, *back).max() < 1e-3


def test_enu_frame_is_exact() -> None:
    frame = enu_to_ecef_matrix(114.0, 40.0, 1000.0)
    assert np.allclose(np.linalg.det(frame[:3, :3]), 1.0)
    enu = lonlat_to_enu(
        np.array([114.0, 114.0]), np.array([40.0, 40.0]), np.array([1000.0, 1010.0]), frame
    )
    assert np.allclose(enu[0], 0, atol=1e-6)
    assert np.allclose(enu[1], [0, 0, 10], atol=1e-6)
    # 1 km east: ~1 km in x, and the ground falls away by d²/2R ≈ 8 cm
    x = lonlat_to_enu(
        np.array([114.0 + 1000 / (R * np.cos(np.radians(40)) * np.pi / 180)]),
        np.array([40.0]),
        np.array([1000.0]),
        frame,
    )
    assert x[0, 0] == pytest.approx(1000, rel=3e-3)
    assert -0.2 < x[0, 2] < -0.03
    # the matrix takes ENU back to ECEF
    ecef = frame @ np.array([*enu[1], 1.0])
    ref = geodetic_to_ecef(np.array(114.0), np.array(40.0), np.array(1010.0))
    assert np.allclose(ecef[:3], [float(v) for v in ref], atol=1e-6)


def test_up_vectors_match_a_height_change() -> None:
    from cim.crs import up_vectors

    frame = enu_to_ecef_matrix(114.0, 40.0, 0.0)
    lon, lat = np.array([113.9, 114.05]), np.array([40.1, 39.95])
    low = lonlat_to_enu(lon, lat, np.array([10.0, 10.0]), frame)
    high = lonlat_to_enu(lon, lat, np.array([310.0, 310.0]), frame)
    assert np.allclose(low + 300.0 * up_vectors(lon, lat, frame), high, atol=1e-6)
