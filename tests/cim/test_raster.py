"""Tests for cim.raster.DemMosaic."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import CRS
from rasterio.transform import from_origin

from cim.errors import CRSError, DatasetIOError, InputDataError
from cim.raster import DemMosaic, bilinear

REALDATA = [
    Path(__file__).resolve().parents[2] / "sample_data" / "realdata",
    Path("/work/shared/realdata"),
]


def _write(path: Path, data: np.ndarray, transform, crs: str | None, nodata=None) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=data.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as ds:
        ds.write(data, 1)
    return path


@pytest.fixture
def plane_4326(tmp_path: Path) -> Path:
    # h = 100 + 1000*(lon - 120) + 500*(lat - 30), pixel centres
    res = 0.001
    cols, rows = 200, 100
    lon = 120.0 + (np.arange(cols) + 0.5) * res
    lat = 30.1 - (np.arange(rows) + 0.5) * res
    h = 100 + 1000 * (lon[None, :] - 120) + 500 * (lat[:, None] - 30)
    return _write(
        tmp_path / "plane.tif", h.astype(np.float32), from_origin(120, 30.1, res, res), "EPSG:4326"
    )


def test_sample_plane_is_exact_inside(plane_4326: Path) -> None:
    dem = DemMosaic([plane_4326])
    lon = np.array([120.05, 120.1234, 120.19])
    lat = np.array([30.05, 30.0321, 30.09])
    got = dem.sample(lon, lat)
    np.testing.assert_allclose(got, 100 + 1000 * (lon - 120) + 500 * (lat - 30), atol=1e-3)
    assert (
        dem.sample(np.array([119.9]), np.array([30.05]))[0]
        != dem.sample(np.array([119.9]), np.array([30.05]))[0]
    )  # NaN outside
    w, s, e, n = dem.bounds_lonlat()
    assert (w, s, e, n) == pytest.approx((120.0, 30.0, 120.2, 30.1))


def test_sample_shapes_and_grid(plane_4326: Path) -> None:
    dem = DemMosaic([plane_4326])
    grid = dem.read_lonlat_grid(120.01, 30.01, 120.02, 30.02, 5, 3)
    assert grid.shape == (3, 5) and grid.dtype == np.float32
    assert grid[0, 0] == pytest.approx(100 + 1000 * 0.01 + 500 * 0.02, abs=1e-3)
    assert grid[-1, -1] == pytest.approx(100 + 1000 * 0.02 + 500 * 0.01, abs=1e-3)
    assert dem.sample(np.zeros((2, 3)) + 120.05, np.zeros((2, 3)) + 30.05).shape == (2, 3)


def test_projected_dem_and_crs_override(tmp_path: Path) -> None:
    # constant 42 m DEM in UTM 50N, no CRS in the file
    data = np.full((50, 50), 42, dtype=np.int16)
    p = _write(tmp_path / "nocrs.tif", data, from_origin(500000, 3500000, 10, 10), None)
    with pytest.raises(CRSError) as exc:
        DemMosaic([p])
    assert "nocrs.tif" in str(exc.value)
    dem = DemMosaic([p], crs="EPSG:32650")
    w, s, e, n = dem.bounds_lonlat()
    assert 116.9 < w < e < 117.1
    got = dem.sample(np.array([(w + e) / 2]), np.array([(s + n) / 2]))
    assert got[0] == pytest.approx(42.0)
    assert dem.resolution_m() == pytest.approx(10.0)


def test_nodata_and_mosaic_fill(tmp_path: Path) -> None:
    a = np.full((10, 10), 5, dtype=np.int16)
    a[:, 5:] = -9999
    b = np.full((10, 10), 7, dtype=np.int16)
    pa = _write(tmp_path / "a.tif", a, from_origin(10, 1, 0.1, 0.1), "EPSG:4326", nodata=-9999)
    pb = _write(tmp_path / "b.tif", b, from_origin(10, 1, 0.1, 0.1), "EPSG:4326", nodata=-9999)
    assert np.isnan(DemMosaic([pa]).sample(np.array([10.85]), np.array([0.5]))[0])
    both = DemMosaic([pa, pb])
    got = both.sample(np.array([10.15, 10.85, 12.0]), np.array([0.5, 0.5, 0.5]))
    assert got[0] == 5 and got[1] == 7 and np.isnan(got[2])
    # pickles without open handles and still works
    again = pickle.loads(pickle.dumps(both))
    assert again.sample(np.array([10.85]), np.array([0.5]))[0] == 7


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(InputDataError):
        DemMosaic([])
    with pytest.raises(DatasetIOError):
        DemMosaic([tmp_path / "missing.tif"])


def test_bilinear_renormalises_next_to_nodata() -> None:
    data = np.array([[1.0, 3.0], [1.0, 3.0]])
    valid = np.array([[True, False], [True, True]])
    got = bilinear(data, valid, np.array([0.25, 0.9]), np.array([0.5, 0.0]))
    assert np.isfinite(got[0]) and np.isnan(got[1])


def test_real_hakone_dem() -> None:
    path = next(
        (
            d / "dem" / "hakone_aster_gdem_1arcsec_4326.tif"
            for d in REALDATA
            if (d / "dem" / "hakone_aster_gdem_1arcsec_4326.tif").exists()
        ),
        None,
    )
    if path is None:
        pytest.skip("real data not available")
    dem = DemMosaic([path])
    with rasterio.open(path) as ds:
        arr = ds.read(1)
        rows = np.array([10, 400, 800])
        cols = np.array([20, 300, 870])
        xs, ys = rasterio.transform.xy(ds.transform, rows, cols)
    np.testing.assert_allclose(dem.sample(np.array(xs), np.array(ys)), arr[rows, cols], atol=1e-6)
    assert 20 < dem.resolution_m() < 35


def test_fill_nodata_fills_voids_only_on_request(tmp_path: Path) -> None:
    a = np.full((40, 40), 50, dtype=np.int16)
    a[15:25, 15:25] = -9999
    p = _write(
        tmp_path / "void.tif", a, from_origin(10, 1, 0.025, 0.025), "EPSG:4326", nodata=-9999
    )
    lon, lat = np.array([10.5]), np.array([0.5])
    assert np.isnan(DemMosaic([p]).sample(lon, lat)[0])
    assert DemMosaic([p], fill_nodata=True).sample(lon, lat)[0] == pytest.approx(50.0)
    # still NaN outside the file
    assert np.isnan(DemMosaic([p], fill_nodata=True).sample(np.array([12.0]), lat)[0])


# --- the CRS policy applied to DEMs (cim.crs.resolve_crs) ----------------------------


def test_dem_declared_in_the_wrong_crs_is_one_line_error(tmp_path: Path) -> None:
    data = np.full((20, 20), 10, dtype=np.int16)
    lonlat = _write(tmp_path / "ll.tif", data, from_origin(114.0, 22.6, 0.001, 0.001), None)
    with pytest.raises(CRSError) as exc:
        DemMosaic([lonlat], crs="EPSG:4547")
    msg = str(exc.value)
    assert "ll.tif" in msg and "look like lon/lat degrees but EPSG:4547" in msg
    assert "\n" not in msg
    metres = _write(tmp_path / "m.tif", data, from_origin(500000, 2500000, 10, 10), "EPSG:4547")
    with pytest.raises(CRSError, match="EPSG:32650 contradicts the file's own CRS EPSG:4547"):
        DemMosaic([metres], crs="EPSG:32650")
    with pytest.raises(CRSError, match="not degrees"):
        DemMosaic(
            [_write(tmp_path / "n.tif", data, from_origin(500000, 2500000, 10, 10), None)],
            crs="EPSG:4326",
        )
    # [city] crs is only a default: the file's own CRS wins without a word
    own = DemMosaic([metres], default_crs="EPSG:4326").files[0].crs
    assert CRS.from_user_input(own).to_epsg() == 4547


def test_dem_without_georeferencing_or_empty(tmp_path: Path) -> None:
    data = np.full((20, 20), 10, dtype=np.int16)
    with rasterio.open(
        tmp_path / "plain.tif", "w", driver="GTiff", width=20, height=20, count=1, dtype="int16"
    ) as ds:
        ds.write(data, 1)
    with pytest.raises(InputDataError, match="no georeferencing"):
        DemMosaic([tmp_path / "plain.tif"], crs="EPSG:4326")
    (tmp_path / "empty.tif").write_bytes(b"")
    with pytest.raises(InputDataError, match="empty file"):
        DemMosaic([tmp_path / "empty.tif"])


def test_rasters_must_overlap_the_buildings(tmp_path: Path) -> None:
    from cim.raster import check_rasters_overlap

    data = np.full((20, 20), 10, dtype=np.int16)
    here = _write(tmp_path / "here.tif", data, from_origin(500000, 2500200, 10, 10), "EPSG:4547")
    far = _write(tmp_path / "far.tif", data, from_origin(400000, 3500200, 10, 10), "EPSG:4547")
    lon, lat = 114.0, 22.6  # EPSG:4547 (500000, 2500000) is about here
    extent = [lon - 0.01, lat - 0.01, lon + 0.01, lat + 0.01]
    ok = check_rasters_overlap([here], None, None, extent, what="terrain", kind="DEM")
    assert ok == []
    assert check_rasters_overlap([far], None, None, None, what="terrain", kind="DEM") == []
    warnings = check_rasters_overlap([here, far], None, None, extent, what="terrain", kind="DEM")
    assert len(warnings) == 1 and "far.tif" in warnings[0]
    with pytest.raises(CRSError) as exc:
        check_rasters_overlap([far], None, None, extent, what="terrain", kind="DEM")
    msg = str(exc.value)
    assert "far.tif" in msg and "no overlap" in msg and "[terrain] crs" in msg
