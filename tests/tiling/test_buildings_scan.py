"""Footprints scanned instead of parsed: the same checks, buildings and report."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import shapely
from test_buildings_repair_cache import read, write_city
from test_buildings_repair_chunks import LAT, LON, bad_features, polygon, ring, same

import tiling.buildings.prepare as prepare
from cim.readers import FeatureTable
from tiling.buildings.ragged import scan_polygons

SQUARE = shapely.box(0, 0, 2, 1)
HOLED = shapely.Polygon([(0, 0), (4, 0), (4, 4), (0, 4)], [[(1, 1), (2, 1), (2, 2), (1, 1)]])
MULTI = shapely.MultiPolygon([SQUARE, shapely.box(5, -3, 6, 9)])


def wkb(*geoms: object) -> np.ndarray:
    out = np.empty(len(geoms), dtype=object)
    out[:] = [g if isinstance(g, bytes | None) else shapely.to_wkb(g) for g in geoms]
    return out


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_scan_gives_shapelys_bounds() -> None:
    one_part = shapely.MultiPolygon([HOLED])
    nan = shapely.Polygon([(0, 0), (1, np.nan), (1, 1), (0, 0)])
    inf = shapely.Polygon([(0, 0), (np.inf, 0), (1, 1), (0, 0)])
    geoms = [SQUARE, HOLED, MULTI, one_part, nan, inf]
    scan = scan_polygons(wkb(*geoms))
    assert scan is not None
    np.testing.assert_array_equal(scan.bounds[:4], shapely.bounds(geoms[:4]))
    assert scan.finite.tolist() == [True, True, True, True, False, False]


@pytest.mark.parametrize(
    "odd",
    [
        shapely.Point(1, 2),
        shapely.Polygon(),
        shapely.MultiPolygon(),
        shapely.Polygon([(0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 0, 1)]),  # Z
        shapely.GeometryCollection([SQUARE]),
        None,
        b"\x01\x03",  # cut short
        shapely.to_wkb(SQUARE, byte_order=0),  # big-endian
        shapely.to_wkb(shapely.set_srid(SQUARE, 4326), include_srid=True),  # EWKB, an SRID
        # unclosed, and a ring of 3 points: GEOS refuses both
        struct.pack("<BIII8d", 1, 3, 1, 4, 0, 0, 1, 0, 1, 1, 0, 1),
        struct.pack("<BIII6d", 1, 3, 1, 3, 0, 0, 1, 0, 0, 0),
        # a NaN first point: the ring cannot be known closed
        struct.pack("<BIII8d", 1, 3, 1, 4, np.nan, 0, 1, 0, 1, 1, np.nan, 0),
    ],
)
def test_anything_geos_would_not_read_as_stored_is_left_to_shapely(odd: object) -> None:
    assert scan_polygons(wkb(SQUARE, odd)) is None


def good_features() -> list[tuple[str, dict | None, dict]]:
    """Rows GEOS reads as stored but the repair changes (bowtie, repeated vertex, CW,
    sliver, hole, two parts), and a one-part MultiPolygon: all of them scanned."""
    scannable = ("ok", "cw", "bowtie", "dup", "tiny", "thin", "holed", "multi")
    rows = [(f"{n}-{k}", g, p) for k in range(3) for n, g, p in bad_features(k) if n in scannable]
    one_part = {"type": "MultiPolygon", "coordinates": [[ring(LON + 0.05, LAT)]]}
    rows.append(("one-part", one_part, {"height": 9}))
    far = [[1e12, 0.0], [1e12 + 5, 0.0], [1e12 + 5, 5.0], [1e12, 0.0]]
    rows.append(("far", polygon(far), {"height": 4}))  # does not fit the CRS: skipped
    return rows


def test_scanned_rows_give_what_parsed_rows_give(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = write_city(tmp_path, good_features(), crs="EPSG:4326")
    parsed: list[int] = []
    real_parse = FeatureTable.parse
    monkeypatch.setattr(
        FeatureTable, "parse", lambda self, rows: parsed.append(len(rows)) or real_parse(self, rows)
    )
    scanned, report, _ = read(toml, None)
    assert parsed == []  # nothing parsed in the build process
    reasons = {r["reason"] for r in report["repaired"] + report["skipped"]}
    assert {"invalid-geometry", "duplicate-vertices", "sliver", "bad-coordinates"} <= reasons
    monkeypatch.setattr(prepare, "scan_polygons", lambda wkb, threads=1: None)
    again, parsed_report, _ = read(toml, None)
    assert parsed  # this time parsed
    same(scanned, again)
    assert report == parsed_report
    one_part = list(scanned[0].ids).index("one-part")
    assert scanned[0].footprints[one_part].geom_type == "Polygon"


def test_a_rebuild_in_another_crs_scans_every_row_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last build's repairs made in another CRS are dropped: all rows checked anew."""
    from test_buildings_repair_cache import kept_cache

    kept_cache(write_city(tmp_path, good_features(), crs="EPSG:4326"), tmp_path / "cache")
    toml = write_city(tmp_path, good_features(), crs="OGC:CRS84")
    fresh, fresh_report, _ = read(toml, None)
    calls: list[int] = []
    real = prepare.scan_polygons
    spy = lambda w, threads=1: calls.append(len(w)) or real(w, threads)  # noqa: E731
    monkeypatch.setattr(prepare, "scan_polygons", spy)
    again, report, repairs = read(toml, tmp_path / "cache")
    assert repairs.reused == 0 and calls[-1] == len(good_features())
    same(fresh, again)
    assert report == fresh_report


def test_arrow_wkb_reads_as_the_bytes_do() -> None:
    """The L2 tile tasks carry Arrow WKB: read from its buffers, as the object array is
    (a slice, a gather, chunks); a missing or big-endian value leaves it to shapely."""
    import pyarrow as pa

    from cim.model import WkbColumn
    from tiling.buildings.ragged import wkb_to_ragged

    values = wkb(SQUARE, MULTI, HOLED, SQUARE)
    arrow = pa.array(values, pa.binary())
    expected = wkb_to_ragged(values[1:])
    assert expected is not None
    for column in (
        WkbColumn(arrow[1:]),  # an offset into the buffers
        WkbColumn(arrow)[np.array([1, 2, 3])],
        WkbColumn(pa.chunked_array([arrow[1:2], arrow[2:]])),
        WkbColumn(arrow.cast(pa.large_binary())[1:]),
    ):
        got = wkb_to_ragged(column)
        assert got is not None
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, b)
    assert wkb_to_ragged(WkbColumn(pa.array([values[0], None], pa.binary()))) is None
    big = pa.array([shapely.to_wkb(SQUARE, byte_order=0)], pa.binary())
    assert wkb_to_ragged(WkbColumn(big)) is None
    assert scan_polygons(WkbColumn(arrow)) is not None


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_a_scan_split_between_threads_is_the_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    import tiling.buildings.ragged as ragged

    monkeypatch.setattr(ragged, "SCAN_SPLIT_ROWS", 2)
    nan = shapely.Polygon([(0, 0), (1, np.nan), (1, 1), (0, 0)])
    values = wkb(SQUARE, HOLED, MULTI, nan, shapely.MultiPolygon([SQUARE]), SQUARE, MULTI)
    whole = scan_polygons(values)
    assert whole is not None
    for threads, part_rows in ((2, 1_000_000), (3, 1_000_000), (1, 3), (2, 2)):
        monkeypatch.setattr(ragged, "SCAN_PART_ROWS", part_rows)
        split = scan_polygons(values, threads=threads)
        assert split is not None
        np.testing.assert_array_equal(split.bounds, whole.bounds)
        np.testing.assert_array_equal(split.finite, whole.finite)
    # a part GEOS would not read as stored: the whole scan is left to shapely
    assert scan_polygons(wkb(SQUARE, HOLED, MULTI, SQUARE, shapely.Point(0, 0)), threads=2) is None
