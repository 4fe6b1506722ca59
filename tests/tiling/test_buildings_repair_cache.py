"""Repairs kept for the next build: rows found in the cache give what a repair gives."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import shapely
from test_buildings_repair_chunks import bad_features, polygon, ring, same

from cim.config import load_project
from cim.model import WkbColumn
from cim.report import StageReport
from tiling.buildings import repair_cache
from tiling.buildings.footprints import FootprintArrays
from tiling.buildings.prepare import Runner, read_footprints
from tiling.buildings.repair_cache import Repairs


def write_city(
    folder: Path,
    features: list[tuple[str, dict | None, dict]],
    min_area: float = 2.0,
    crs: str = "",
) -> Path:
    collection = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"id": fid, **props}, "geometry": geometry}
            for fid, geometry, props in features
        ],
    }
    (folder / "b.geojson").write_text(json.dumps(collection), encoding="utf-8")
    toml = f'[buildings]\npath = "b.geojson"\nid = "id"\nmin_area = {min_area}\n'
    (folder / "city.toml").write_text(toml + (f'crs = "{crs}"\n' if crs else ""), encoding="utf-8")
    return folder / "city.toml"


def features() -> list[tuple[str, dict | None, dict]]:
    """Every kind of bad row, and Z and unclosed rings (reported around the repair)."""
    rows = [(f"{name}-{k}", g, p) for k in range(3) for name, g, p in bad_features(k)]
    z = [[x, y, 5.0] for x, y in ring(114.3, 22.6)]
    rows.append(("z", polygon(z), {"height": 6}))
    rows.append(("unclosed", polygon(ring(114.31, 22.6)[:-1]), {"height": 8}))
    one_part = {"type": "MultiPolygon", "coordinates": [[ring(114.32, 22.6)]]}
    rows.append(("one-part", one_part, {"height": 9}))
    return rows


def read(toml: Path, previous: Path | None, chunk: int = 5) -> tuple[tuple, dict, Repairs]:
    report = StageReport("buildings")
    repairs = Repairs(previous)
    out = read_footprints(load_project(toml), report, run=Runner(chunk=chunk), repairs=repairs)
    entries = report.to_json() | {"repaired": report.repaired, "skipped": report.skipped}
    return out, entries, repairs


def kept_cache(toml: Path, folder: Path) -> Repairs:
    """Read ``toml`` once and write its repairs to ``folder``."""
    _, _, repairs = read(toml, None)
    assert repairs.made is not None and repairs.reused == 0
    repair_cache.write(folder, repairs.made, repairs.crs, repairs.min_area)
    return repairs


def test_every_row_found_gives_the_same_buildings_and_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(repair_cache, "WRITE_ROWS", 7)  # the file written in pieces
    monkeypatch.setattr(repair_cache, "RECORD_ROWS", 2)  # its entries read in blocks
    toml = write_city(tmp_path, features())
    first = kept_cache(toml, tmp_path / "cache")
    fresh, fresh_report, _ = read(toml, None)
    again, report, repairs = read(toml, tmp_path / "cache", chunk=2)
    assert repairs.reused == repairs.rows == first.rows > 0
    # the cache's WKB stays Arrow on its way to the partitions: no object per row
    assert isinstance(again[1].wkb, WkbColumn)
    assert isinstance(again[0].footprints_wkb, WkbColumn)
    same(fresh, again)
    assert report == fresh_report  # skips of dropped rows too, in one pass's order
    reasons = {e["reason"] for e in report["skipped"] + report["repaired"]}
    assert {"sliver", "invalid-geometry", "duplicate-vertices", "z-dropped"} <= reasons
    assert any(e["detail"].endswith("ring closed") for e in report["repaired"])


def test_changed_moved_new_and_renamed_rows_are_repaired_again(tmp_path: Path) -> None:
    kept_cache(write_city(tmp_path, features()), tmp_path / "cache")
    rows = features()
    changed = [
        ("new", polygon(ring(114.2, 22.6)), {"height": 4}),  # first: every row moves by one
        *rows[:3],
        (rows[3][0], polygon(ring(114.21, 22.6, cw=True)), rows[3][2]),  # geometry changed
        ("renamed", rows[4][1], rows[4][2]),  # same geometry, another id
        *rows[6:],  # rows[5] deleted
    ]
    toml = write_city(tmp_path, changed)
    fresh, fresh_report, _ = read(toml, None)
    again, report, repairs = read(toml, tmp_path / "cache")
    assert repairs.rows - repairs.reused == 3  # new, changed, renamed
    same(fresh, again)
    assert report == fresh_report


def test_other_settings_repair_every_row(tmp_path: Path) -> None:
    kept_cache(write_city(tmp_path, features()), tmp_path / "cache")
    toml = write_city(tmp_path, features(), min_area=50.0)  # same rows, another min_area
    fresh, fresh_report, _ = read(toml, None)
    again, report, repairs = read(toml, tmp_path / "cache")
    assert repairs.reused == 0
    same(fresh, again)
    assert report == fresh_report


def test_repairs_of_other_code_or_libraries_are_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = write_city(tmp_path, features())
    kept_cache(toml, tmp_path / "cache")
    assert read(toml, tmp_path / "cache")[2].reused > 0
    monkeypatch.setattr(repair_cache, "code_digest", lambda: "another GEOS")
    assert read(toml, tmp_path / "cache")[2].reused == 0


def test_rows_repaired_in_another_crs_are_read_and_repaired_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kept_cache(write_city(tmp_path, features()), tmp_path / "cache")  # WGS84 (GeoJSON's)
    toml = write_city(tmp_path, features(), crs="EPSG:4490")  # CGCS2000 declared now
    fresh, fresh_report, _ = read(toml, None)
    with caplog.at_level(logging.INFO):
        again, report, repairs = read(toml, tmp_path / "cache")
    assert any("another CRS" in r.getMessage() for r in caplog.records)
    assert repairs.reused == 0 and repairs.crs == fresh[0].source_crs
    same(fresh, again)
    assert report == fresh_report


def test_a_damaged_cache_costs_a_repair_not_the_build(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    toml = write_city(tmp_path, features())
    kept_cache(toml, tmp_path / "cache")
    path = tmp_path / "cache" / repair_cache.FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with caplog.at_level(logging.WARNING):
        _, report, repairs = read(toml, tmp_path / "cache")
    assert repairs.reused == 0 and repairs.made is not None
    assert any(repair_cache.FILE in r.getMessage() for r in caplog.records)
    assert report["skipped_count"] > 0


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("area", lambda n: pa.array(["x"] * n)),
        ("wkb", lambda n: pa.array(range(n))),
        ("kind", None),
    ],
)
def test_a_cache_with_a_wrong_or_missing_column_is_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, column: str, values: object
) -> None:
    """A cache file that reads but does not hold what a cache holds (another program's,
    an edit by hand) costs a repair, with a warning, never the build."""
    toml = write_city(tmp_path, features())
    kept_cache(toml, tmp_path / "cache")
    path = tmp_path / "cache" / repair_cache.FILE
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
    at = table.schema.get_field_index(column)
    table = (
        table.remove_column(at)
        if values is None
        else table.set_column(
            at,
            column,
            values(len(table)),  # type: ignore[operator]
        )
    )
    edited = path.with_name("edited.arrow")  # the mapped file is not written over
    with pa.OSFile(str(edited), "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
        out.write_table(table)
    del table
    edited.replace(path)
    fresh, fresh_report, _ = read(toml, None)
    with caplog.at_level(logging.WARNING):
        again, report, repairs = read(toml, tmp_path / "cache")
    assert repairs.reused == 0 and repairs.made is not None
    assert any(repair_cache.FILE in r.getMessage() for r in caplog.records)
    same(fresh, again)
    assert report == fresh_report


def test_fingerprints_tell_geometries_apart() -> None:
    a = shapely.to_wkb(shapely.box(0, 0, 1, 1))
    b = shapely.to_wkb(shapely.box(0, 0, 1, 1.000000001))
    keys = repair_cache.fingerprints(np.array([a, b, a, None], dtype=object))
    assert keys.shape == (4, 2) and keys.dtype == np.uint64
    assert (keys[0] == keys[2]).all() and not (keys[0] == keys[1]).all()
    assert not (keys[3] == keys[0]).all()
    # a 64-bit hash and the stored length (a row without geometry: empty)
    assert keys[:, 1].tolist() == [len(a), len(b), len(a), 0]


def test_sending_the_sources_own_wkb_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows that reading left as stored travel as the source's WKB, not re-encoded."""
    import tiling.buildings.prepare as prepare
    from tiling.buildings import repair

    given: list[np.ndarray] = []
    real = repair.tasks

    def spy(*args: object) -> object:
        given.append(np.array(args[5], dtype=object))  # before the tasks consume it
        return real(*args)  # type: ignore[arg-type]

    toml = write_city(tmp_path, features())
    with monkeypatch.context() as m:
        m.setattr(repair, "tasks", spy)
        sent, report, _ = read(toml, None)
    # all but the rows reading changed (Z, unclosed, one-part) travel as stored
    assert sum(w is None for w in given[0]) == 3 and len(given[0]) > 20
    monkeypatch.setattr(prepare, "_stored", lambda table, checked, scanned=False: None)
    encoded, encoded_report, _ = read(toml, None)
    same(encoded, sent)
    assert report == encoded_report


def test_the_cache_read_ahead_is_the_cache_and_only_for_its_min_area(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = write_city(tmp_path, features())
    kept_cache(toml, tmp_path / "cache")
    direct = repair_cache.load(tmp_path / "cache", 2.0)
    assert direct is not None
    ahead = Repairs(tmp_path / "cache")
    ahead.prefetch(2.0)
    loaded = ahead.last(2.0)
    assert loaded is not None and loaded[1] == direct[1]
    assert loaded[0].keys.tolist() == direct[0].keys.tolist()
    assert loaded[0].footprints.wkb.tolist() == direct[0].footprints.wkb.tolist()
    # read ahead for another min_area: not used, the cache is read (and refused) again
    calls: list[float] = []
    real = repair_cache.load
    monkeypatch.setattr(repair_cache, "load", lambda f, m: calls.append(m) or real(f, m))
    other = Repairs(tmp_path / "cache")
    other.prefetch(2.0)
    assert other.last(3.0) is None and 3.0 in calls


def test_find_matches_rows_in_place_then_moved_ones_among_the_rest() -> None:
    from tiling.buildings.footprints import FootprintArrays

    n = 6
    keys = np.arange(2 * n, dtype=np.uint64).reshape(n, 2)
    ids = np.array([f"b{i}" for i in range(n)], dtype=object)
    empty = np.full(n, None, dtype=object)
    hashes = repair_cache.id_hashes(ids)
    cache = repair_cache.RepairCache(
        keys, hashes, np.ones(n, bool), FootprintArrays.empty(n), empty, np.zeros((n, 4))
    )
    # rows 1 and 4 swapped, row 2 another id, a new row at the end
    order = [0, 4, 2, 3, 1, 5]
    asked_keys = np.vstack([keys[order], [[99, 99]]])
    asked_ids = np.array([*ids[order], "new"], dtype=object)
    asked_ids[2] = "renamed"
    found = cache.find(asked_keys, repair_cache.id_hashes(asked_ids))
    assert found.tolist() == [0, 4, -1, 3, 1, 5, -1]
    # the ids' Arrow twin hashes as the strings do
    arrow = pa.array(asked_ids.tolist(), pa.string())
    assert (repair_cache.id_hashes(asked_ids, arrow) == repair_cache.id_hashes(asked_ids)).all()


def changed_rows() -> list[tuple[str, dict | None, dict]]:
    """:func:`features` with one footprint moved and one new."""
    rows = features()
    rows[3] = (rows[3][0], polygon(ring(114.21, 22.6, cw=True)), rows[3][2])
    return [*rows, ("new", polygon(ring(114.2, 22.6)), {"height": 4})]


def test_a_rebuild_keeps_the_last_file_and_writes_only_a_delta(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(repair_cache, "MAX_DELTA_SHARE", 0.5)  # a small city
    kept_cache(write_city(tmp_path, features()), tmp_path / "first")
    toml = write_city(tmp_path, changed_rows())
    _, _, repairs = read(toml, tmp_path / "first")
    assert repairs.base is not None and repairs.made is not None
    assert len(repairs.made) == repairs.rows - repairs.reused == 2  # moved, new
    second = tmp_path / "second"
    repair_cache.write(second, repairs.made, repairs.crs, repairs.min_area, repairs.base)
    # the last build's file is linked, not written again
    first_file = (tmp_path / "first" / repair_cache.FILE).stat()
    assert (second / repair_cache.FILE).stat().st_ino == first_file.st_ino
    assert (second / repair_cache.DELTA).is_file()
    # the next build finds every row in the file and its delta: same as a repair
    fresh, fresh_report, _ = read(toml, None)
    again, report, reread = read(toml, second)
    assert reread.reused == reread.rows == repairs.rows
    same(fresh, again)
    assert report == fresh_report


def test_many_changes_write_the_whole_cache_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(repair_cache, "MAX_DELTA_SHARE", 0.0)
    kept_cache(write_city(tmp_path, features()), tmp_path / "first")
    _, _, repairs = read(write_city(tmp_path, changed_rows()), tmp_path / "first")
    assert repairs.base is None and repairs.made is not None
    assert len(repairs.made) == repairs.rows  # every row, found or repaired
    repair_cache.write(tmp_path / "second", repairs.made, repairs.crs, repairs.min_area)
    assert not (tmp_path / "second" / repair_cache.DELTA).exists()


def test_a_delta_made_for_another_file_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(repair_cache, "MAX_DELTA_SHARE", 0.5)
    kept_cache(write_city(tmp_path, features()), tmp_path / "first")
    toml = write_city(tmp_path, changed_rows())
    _, _, repairs = read(toml, tmp_path / "first")
    assert repairs.made is not None and repairs.base is not None
    second = tmp_path / "second"
    repair_cache.write(second, repairs.made, repairs.crs, repairs.min_area, repairs.base)
    # the file replaced by another build's (whole, another token): the delta is orphaned
    (second / repair_cache.FILE).unlink()
    (tmp_path / "other").mkdir()
    kept_cache(write_city(tmp_path / "other", features()[:-1]), second)
    fresh, fresh_report, _ = read(toml, None)
    with caplog.at_level(logging.WARNING):
        again, report, reread = read(toml, second)
    assert any(repair_cache.DELTA in r.getMessage() for r in caplog.records)
    assert 0 < reread.reused < reread.rows  # the delta's rows repaired again
    same(fresh, again)
    assert report == fresh_report


def test_the_rows_made_are_written_slice_by_slice_as_their_copy_would_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build's repairs are rows of its own arrays (no copy of the city): written a
    slice at a time, the file is the one their copy gives, byte for byte."""
    from tiling.buildings.footprints import gather_wkb

    n, rows = 7, np.array([0, 2, 3, 5, 6])
    wkb = np.array([shapely.box(i, 0, i + 1, 1).wkb for i in range(n)], dtype=object)
    parts = [
        (np.array([5, 0, 3]), pa.array(wkb[[5, 0, 3]])),
        (np.array([6, 2]), pa.array(wkb[[6, 2]])),
    ]
    figures = distinct_figures(n)
    figures = dataclasses.replace(figures, wkb=gather_wkb(n, parts))
    keys = np.arange(2 * n, dtype=np.uint64).reshape(n, 2)
    ids = repair_cache.id_hashes(np.array([f"b{i}" for i in range(n)], dtype=object))
    keep, bounds = np.ones(n, bool), np.arange(4 * n, dtype=float).reshape(n, 4)
    entries = np.array([None, '[[0, "r", "x"]]', None, None, None], dtype=object)
    made = repair_cache.Made(keys, ids, keep, figures, bounds, rows, entries)
    monkeypatch.setattr(repair_cache, "WRITE_ROWS", 2)  # three slices
    repair_cache.write(tmp_path / "made", made, "EPSG:4326", 2.0)
    copy = repair_cache.RepairCache(
        keys[rows], ids[rows], keep[rows], figures.take(rows), entries, bounds[rows]
    )
    repair_cache.write(tmp_path / "copy", copy, "EPSG:4326", 2.0)
    written = (tmp_path / "made" / repair_cache.FILE).read_bytes()
    assert written == (tmp_path / "copy" / repair_cache.FILE).read_bytes()
    back = pa.ipc.open_file(pa.py_buffer(written)).read_all()
    assert back.column("wkb").to_pylist() == wkb[rows].tolist()
    assert back.column("entries").to_pylist() == entries.tolist()


def distinct_figures(n: int) -> FootprintArrays:
    """Figures with a distinct value per row in every column."""
    return FootprintArrays(
        np.full(n, None, dtype=object),
        np.arange(2 * n, dtype=float).reshape(n, 2),
        np.arange(4 * n, dtype=float).reshape(n, 4) + 0.5,
        np.arange(n, dtype=float) + 1,
        np.arange(n, dtype=np.int64) + 5,
        np.zeros(n, dtype=np.int8) + 3,
        np.arange(n, dtype=np.int32),
        np.arange(n, dtype=np.uint64) * 7,
    )


def test_every_row_kept_shares_no_wkb_column_with_the_cache_writer(tmp_path: Path) -> None:
    """With no row dropped the figures are not copied, but their WKB column object is
    their own: a gather through the buildings (a DEM's ground) while the repair cache's
    writer reads the same rows on its thread must not change them under it."""
    rows = [(f"b{k}", polygon(ring(114.3 + 0.001 * k, 22.6)), {"height": 9}) for k in range(12)]
    toml = write_city(tmp_path, rows)
    (buildings, figures), _, repairs = read(toml, None)
    assert repairs.made is not None and len(buildings) == len(repairs.made) == 12
    mine, theirs = figures.wkb, repairs.made.footprints.wkb
    assert isinstance(mine, WkbColumn) and isinstance(theirs, WkbColumn)
    assert mine is not theirs
    before = theirs.piece(np.arange(12)).tolist()
    mine.gather()
    assert theirs._rows is not None, "the writer's column is still the lazy selection"
    assert theirs.piece(np.arange(12)).tolist() == before == mine.tolist()


def test_rows_dropped_after_the_repair_are_kept_in_the_cache_as_repaired(
    tmp_path: Path,
) -> None:
    """A repeated id with the same footprint, and another id with the same footprint,
    are dropped after the repair (the duplicate checks): the cache keeps what the repair
    made of them, so a rebuild from it drops and reports them as a fresh build does."""
    rows = [(f"b{k}", polygon(ring(114.3 + 0.001 * k, 22.6)), {"height": 9}) for k in range(6)]
    rows.append(("b2", polygon(ring(114.302, 22.6)), {"height": 9}))  # same id and footprint
    rows.append(("c4", polygon(ring(114.304, 22.6)), {"height": 9}))  # same footprint as b4
    toml = write_city(tmp_path, rows)
    fresh, fresh_report, repairs = read(toml, None)
    assert repairs.made is not None
    reasons = [e["reason"] for e in fresh_report["skipped"]]
    assert reasons.count("duplicate-feature") + reasons.count("duplicate-footprint") == 2
    repair_cache.write(tmp_path / "cache", repairs.made, repairs.crs, repairs.min_area)
    again, again_report, reread = read(toml, tmp_path / "cache")
    assert reread.reused == reread.rows == len(rows)
    same(again, fresh)
    assert again_report == fresh_report


def test_rows_in_place_take_the_caches_own_arrays_and_changed_ones_their_repair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows that kept their place (a rebuild after a few edits): the cache's figure and
    bounds arrays become the build's, no copy beside them, and the rows changed in
    place get their own repair, the rows dropped now no stale figures."""
    from tiling.buildings import prepare

    monkeypatch.setattr(repair_cache, "WRITE_ROWS", 5)  # the cache read in pieces
    rows = [(f"b{k}", polygon(ring(114.3 + 0.001 * k, 22.6)), {"height": 9}) for k in range(12)]
    kept_cache(write_city(tmp_path, rows), tmp_path / "cache")
    tiny = [[114.35, 22.6], [114.35 + 1e-9, 22.6], [114.35, 22.6 + 1e-9], [114.35, 22.6]]
    edited = [
        (rows[0][0], polygon(ring(114.25, 22.6)), rows[0][2]),  # moved: repaired again
        (rows[1][0], polygon(tiny), rows[1][2]),  # now a sliver: dropped
        *rows[2:-1],  # the last row deleted
    ]
    toml = write_city(tmp_path, edited)
    fresh, fresh_report, _ = read(toml, None)
    shared = spy_taken(monkeypatch)
    real_bounds = prepare._bounds_from_cache

    def bounds(reuse: object, n: int) -> np.ndarray | None:
        out = real_bounds(reuse, n)  # type: ignore[arg-type]
        shared.append(out is not None and out.base is reuse.cache.bounds)  # type: ignore[attr-defined]
        return out

    monkeypatch.setattr(prepare, "_bounds_from_cache", bounds)
    again, report, repairs = read(toml, tmp_path / "cache")
    assert shared == [True, True]
    assert repairs.rows - repairs.reused == 2
    same(fresh, again)
    assert report == fresh_report
    assert [e["id"] for e in report["skipped"]] == [rows[1][0]]


def spy_taken(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each :meth:`FootprintArrays.taken_from` took the cache's own arrays (and
    left the cache without them)."""
    shared: list[bool] = []
    real = FootprintArrays.taken_from.__func__  # type: ignore[attr-defined]

    def taken(cls: type, source: FootprintArrays, *args: object) -> FootprintArrays:
        before = source.areas
        out = real(cls, source, *args)
        assert len(source.areas) == 0, "the cache's figures are let go"
        shared.append(out.areas.base is before)
        return out

    monkeypatch.setattr(FootprintArrays, "taken_from", classmethod(taken))
    return shared


def test_rows_that_moved_take_the_caches_figures_a_figure_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows skipped before the repair are not in the cache, so the rows after them are
    not where they were there: the figures are copied, each of the cache's let go once
    taken, and come out as a fresh repair's."""
    toml = write_city(tmp_path, features())
    kept_cache(toml, tmp_path / "cache")
    fresh, fresh_report, _ = read(toml, None)
    shared = spy_taken(monkeypatch)
    again, report, repairs = read(toml, tmp_path / "cache")
    assert shared == [False] and repairs.reused == repairs.rows
    same(fresh, again)
    assert report == fresh_report
