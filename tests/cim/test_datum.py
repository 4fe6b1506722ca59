"""Tests for cim.datum."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from cim.config import DatumConfig
from cim.datum import Datum
from cim.errors import CRSError, DatasetIOError


def _grid(path: Path, crs: str | None = "EPSG:4326") -> Path:
    # N = 10 + lon - 120 on a 1° grid over 118..123 E, 28..33 N (pixel centres)
    lon = 118.5 + np.arange(5)
    data = np.tile(10 + lon - 120, (5, 1)).astype(np.float32)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=5,
        height=5,
        count=1,
        dtype="float32",
        crs=crs,
        transform=from_origin(118, 33, 1, 1),
    ) as ds:
        ds.write(data, 1)
    return path


def test_constant_offset() -> None:
    d = Datum.from_config(DatumConfig(geoid_offset=-3.5))
    got = d.to_ellipsoidal(np.array([10.0, np.nan]), np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    assert got[0] == 6.5 and np.isnan(got[1])
    assert d.undulation(np.array([1.0]), np.array([2.0]))[0] == -3.5


def test_ellipsoidal_inputs_unchanged() -> None:
    d = Datum.from_config(DatumConfig(heights="ellipsoidal", geoid_offset=20.0))
    assert d.to_ellipsoidal(np.array([5.0]), np.array([0.0]), np.array([0.0]))[0] == 5.0


def test_default_is_identity() -> None:
    d = Datum.from_config(None)
    assert d.to_ellipsoidal(np.array([5.0]), np.array([0.0]), np.array([0.0]))[0] == 5.0


def test_grid_bilinear(tmp_path: Path) -> None:
    d = Datum.from_config(DatumConfig(geoid_grid=_grid(tmp_path / "n.tif"), geoid_offset=99))
    lon = np.array([120.0, 120.75, 121.2])
    lat = np.array([30.0, 31.1, 29.3])
    np.testing.assert_allclose(d.undulation(lon, lat), 10 + lon - 120, atol=1e-6)
    np.testing.assert_allclose(
        d.to_ellipsoidal(np.array([1.0, 1, 1]), lon, lat), 11 + lon - 120, atol=1e-6
    )
    # outside: nearest edge value
    assert d.undulation(np.array([150.0]), np.array([30.0]))[0] == pytest.approx(12.5)


def test_grid_in_projected_crs(tmp_path: Path) -> None:
    path = tmp_path / "utm.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=4,
        height=4,
        count=1,
        dtype="float32",
        crs="EPSG:32651",
        transform=from_origin(300000, 3400000, 1000, 1000),
    ) as ds:
        ds.write(np.full((4, 4), 7.25, dtype=np.float32), 1)
    d = Datum.from_config(DatumConfig(geoid_grid=path))
    from cim.crs import get_transformer

    lon, lat = get_transformer("EPSG:32651").transform(302000, 3398000)
    assert d.undulation(np.array([lon]), np.array([lat]))[0] == pytest.approx(7.25)


def test_grid_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetIOError):
        Datum.from_config(DatumConfig(geoid_grid=tmp_path / "missing.tif"))
    with pytest.raises(CRSError, match=r"nocrs\.tif.*no CRS.*\[datum\] crs"):
        Datum.from_config(DatumConfig(geoid_grid=_grid(tmp_path / "nocrs.tif", crs=None)))


def test_grid_crs_follows_the_one_policy(tmp_path: Path) -> None:
    """cim.crs.resolve_crs: [datum] crs for a grid without one; contradictions refused."""
    bare = _grid(tmp_path / "bare.tif", crs=None)
    d = Datum.from_config(DatumConfig(geoid_grid=bare, crs="EPSG:4326"))
    assert d.undulation(np.array([120.0]), np.array([30.0]))[0] == pytest.approx(10.0)
    # lon/lat degrees declared as Gauss-Krüger metres: the coordinates say otherwise
    with pytest.raises(CRSError, match=r"bare\.tif"):
        Datum.from_config(DatumConfig(geoid_grid=bare, crs="EPSG:4547"))
