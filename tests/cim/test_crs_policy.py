"""The one CRS policy (cim.crs.resolve_crs): declared vs file vs what the coordinates say."""

from __future__ import annotations

import numpy as np
import pytest

from cim.crs import (
    coordinates_fit,
    crs_hint,
    resolve_crs,
    safe_to_lonlat,
    same_crs,
    to_lonlat,
)
from cim.errors import CRSError

# Shenzhen in CGCS2000 / 3-degree Gauss-Krüger CM 114E (EPSG:4547) and in lon/lat
GX = np.array([[500100.0, 500200.0], [500300.0, 500400.0]])
GY = np.array([[2500000.0, 2500100.0], [2500200.0, 2500300.0]])
LON = np.full((120, 2), 114.05)
LAT = np.full((120, 2), 22.55)


def resolve(file_crs, declared, x, y, **kw):
    return resolve_crs(file_crs, declared, x, y, what="buildings", path="b.shp", **kw)


def test_file_crs_wins_over_city_default() -> None:
    r = resolve("EPSG:4547", None, GX, GY, default="EPSG:32650")
    assert (r.crs, r.source) == ("EPSG:4547", "file")
    assert r.fits.tolist() == [True, True]


def test_declared_used_when_file_has_none_then_city_then_format() -> None:
    assert resolve(None, "EPSG:4547", GX, GY, default="EPSG:4326").source == "declared"
    assert resolve(None, None, GX, GY, default="EPSG:4547").source == "city"
    r = resolve(None, None, LON, LAT, implied="EPSG:4326")
    assert (r.crs, r.source) == ("EPSG:4326", "format")


def test_city_default_gives_way_to_the_format_default_for_lonlat() -> None:
    r = resolve(None, None, LON, LAT, default="EPSG:4547", implied="EPSG:4326")
    assert r.crs == "EPSG:4326" and r.note and "lon/lat" in r.note
    # metres in a GeoJSON without crs member: the [city] crs fits and is kept
    assert resolve(None, None, GX, GY, default="EPSG:4547", implied="EPSG:4326").source == "city"


def test_no_crs_anywhere_is_an_error_with_a_hint() -> None:
    with pytest.raises(CRSError, match=r"carries no CRS.*longitude/latitude"):
        resolve(None, None, LON, LAT)
    with pytest.raises(CRSError, match="zone prefix 38: EPSG:4526"):
        resolve(None, None, np.array([38500000.0]), np.array([2500000.0]))


def test_contradicting_declared_crs_names_both() -> None:
    with pytest.raises(CRSError) as exc:
        resolve("EPSG:4547", "EPSG:32650", GX, GY)
    msg = str(exc.value)
    assert "b.shp" in msg and "EPSG:32650" in msg and "EPSG:4547" in msg and "fit both" in msg


def test_declared_crs_fitting_where_the_file_crs_cannot_is_used_with_a_note() -> None:
    r = resolve("EPSG:4547", "EPSG:4326", LON, LAT)
    assert r.crs == "EPSG:4326" and "no coordinate fits" in r.note


def test_equivalent_definitions_are_not_a_contradiction() -> None:
    assert resolve("EPSG:4326", "EPSG:4490", LON, LAT).source == "file"
    esri = (
        'PROJCS["CGCS2000_3_Degree_GK_CM_114E",GEOGCS["GCS_China_Geodetic_Coordinate_System_'
        '2000",DATUM["D_China_2000",SPHEROID["CGCS2000",6378137.0,298.257222101]],'
        'PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]],'
        'PROJECTION["Gauss_Kruger"],PARAMETER["False_Easting",500000.0],'
        'PARAMETER["False_Northing",0.0],PARAMETER["Central_Meridian",114.0],'
        'PARAMETER["Scale_Factor",1.0],PARAMETER["Latitude_Of_Origin",0.0],UNIT["Meter",1.0]]'
    )
    assert same_crs(esri, "EPSG:4547", GX.ravel(), GY.ravel())
    assert resolve(esri, "EPSG:4547", GX, GY).source == "file"


def test_gcj02_allowed_on_lonlat_files_only() -> None:
    assert resolve("EPSG:4326", "GCJ-02", LON, LAT).crs == "GCJ-02"
    assert resolve(None, "bd-09", LON, LAT).crs == "bd-09"
    with pytest.raises(CRSError, match="contradicts the file's own CRS EPSG:4547"):
        resolve("EPSG:4547", "GCJ-02", GX, GY)


def test_lonlat_in_a_metre_crs_is_refused_as_a_whole() -> None:
    with pytest.raises(CRSError) as exc:
        resolve(None, "EPSG:4547", LON, LAT, items="features")
    assert "all 120 features look like lon/lat degrees but EPSG:4547" in str(exc.value)
    assert 'crs = "EPSG:4490"' in str(exc.value)


def test_single_bad_features_do_not_refuse_the_file() -> None:
    x = np.vstack([GX, [[1e12, 1e12]], [[114.0, 114.1]], [[np.nan, 500000.0]]])
    y = np.vstack([GY, [[2500000.0, 2500000.0]], [[22.5, 22.6]], [[2500000.0, 2500000.0]]])
    r = resolve(None, "EPSG:4547", x, y)
    assert r.fits.tolist() == [True, True, False, False, False]


def test_nothing_fits_is_an_error_naming_the_evidence() -> None:
    with pytest.raises(CRSError, match="not degrees"):
        resolve(None, "EPSG:4326", GX, GY)
    with pytest.raises(CRSError, match="none of the 1 features fits EPSG:4547"):
        resolve(None, "EPSG:4547", np.array([[1e12]]), np.array([[1e12]]), items="features")


def test_unknown_crs() -> None:
    with pytest.raises(CRSError, match="unknown CRS"):
        resolve(None, "EPSG:999999", GX, GY)


def test_coordinates_fit_and_hint() -> None:
    assert coordinates_fit(
        np.array([500000.0, 114.0]), np.array([2500000.0, 22.5]), "EPSG:4547"
    ).tolist() == [True, False]
    assert coordinates_fit(np.array([181.0, 120.0]), np.array([0.0, 30.0]), "GCJ-02").tolist() == [
        False,
        True,
    ]
    assert crs_hint(np.array([20500000.0]), np.array([3e6])).endswith("6-degree zone 20)")
    assert crs_hint(np.array([5e5]), np.array([3e6])) == ""


def test_safe_to_lonlat_never_raises_and_matches_to_lonlat() -> None:
    x = np.array([500000.0, 1e12, np.nan])
    y = np.array([2500000.0, 1e12, 0.0])
    lon, lat = safe_to_lonlat(x, y, "EPSG:4547")
    exp = to_lonlat(x[:1], y[:1], "EPSG:4547")
    assert lon[0] == pytest.approx(exp[0][0]) and lat[0] == pytest.approx(exp[1][0])
    assert np.isnan(lon[1:]).all() and np.isnan(lat[1:]).all()


def test_resolved_crs_converts_plain_coordinates_for_live_layers() -> None:
    r = resolve(None, "GCJ-02", np.array([114.05]), np.array([22.55]))
    lon, _ = r.to_lonlat(np.array([114.05]), np.array([22.55]))
    assert abs(lon[0] - 114.05) > 1e-3  # GCJ-02 → WGS84 moves points ~500 m in Shenzhen


@pytest.mark.parametrize("crs", ["EPSG:4547", "EPSG:4326"])
def test_row_evidence_taken_a_block_at_a_time_is_the_whole_samples(
    monkeypatch: pytest.MonkeyPatch, crs: str
) -> None:
    """The per-row evidence (fits, finite, lon/lat) is the same whether the sample's
    rows are taken at once or a few at a time."""
    from cim import crs as module

    rng = np.random.default_rng(3)
    x = np.column_stack([rng.uniform(400_000, 600_000, 50), rng.uniform(400_000, 600_000, 50)])
    y = np.column_stack([rng.uniform(3.3e6, 3.5e6, 50), rng.uniform(3.3e6, 3.5e6, 50)])
    x[5:10] = rng.uniform(100, 120, (5, 2))  # lon/lat rows
    y[5:10] = rng.uniform(20, 40, (5, 2))
    x[12, 1], y[20, 0], x[30, 0] = np.nan, np.inf, 1e12
    whole = module.resolve_crs(None, crs, x, y, what="buildings", path=None)
    monkeypatch.setattr(module, "EVIDENCE_ROWS", 3)
    blocks = module.resolve_crs(None, crs, x, y, what="buildings", path=None)
    assert blocks.fits.tolist() == whole.fits.tolist()
    assert 0 < int(whole.fits.sum()) < 50
    assert len(blocks.fits) == 50
