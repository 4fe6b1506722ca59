"""The vectorised whole-city checks of the footprint reader give what the per-row code gave:
the same rows, ids and report entries in the same order."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import shapely

from cim.readers import _arrow_columns, _through_distinct, to_text
from cim.report import StageReport
from tiling.buildings.prepare import (
    _dedupe_ids,
    _drop_duplicate_footprints,
    _height_problem,
    _repeated,
    _report_heights,
    _same_footprint,
    _text_hashes,
)


def _reference_hash(strings: list[str]) -> np.ndarray:
    """:func:`_text_hashes` one string at a time, in Python integers."""
    prime, mod = 0x100000001B3, 2**64
    out = []
    for s in strings:
        data = s.encode()
        h = sum(b * pow(prime, j + 1, mod) for j, b in enumerate(data)) % mod
        out.append(h ^ (len(data) * 0x9E3779B97F4A7C15 % mod))
    return np.array(out, dtype=np.uint64)


def test_text_hashes_follow_the_bytes_of_each_string() -> None:
    rng = np.random.default_rng(3)
    pool = ["", "a", "ab", "测试", "~2", "x" * 40, "B0000001", " pad "]
    for _ in range(50):
        strings = [
            str(rng.choice(pool)) + str(rng.choice(pool)) for _ in range(rng.integers(0, 30))
        ]
        text = pa.array(strings, type=pa.string())
        block = int(rng.integers(1, 9))  # several blocks, each uniform or not
        assert (_text_hashes(text, block) == _reference_hash(strings)).all()
        assert (_text_hashes(text.slice(3, 9), block) == _reference_hash(strings[3:12])).all()
    fixed = [f"B{i:07d}" for i in range(500)]  # one width: the path without a gather
    assert (_text_hashes(pa.array(fixed), 64) == _reference_hash(fixed)).all()
    assert (
        _text_hashes(pa.array(["", "", "a", ""]), 2) == _reference_hash(["", "", "a", ""])
    ).all()


def test_repeated_marks_every_key_seen_twice() -> None:
    rng = np.random.default_rng(4)
    for n in (0, 1, 7, 1000):
        keys = rng.integers(0, max(n // 2, 1), n).astype(np.uint64)
        values, counts = np.unique(keys, return_counts=True)
        assert (_repeated(keys) == np.isin(keys, values[counts > 1])).all()
    assert not _repeated(np.arange(10, dtype=np.uint64)).any()


def _reference_dedupe(ids, geoms, keep, report):
    """The per-id loop of :func:`_dedupe_ids` before it was vectorised."""
    ids = ids.copy()
    kept = np.flatnonzero(keep)
    counted = pc.value_counts(pa.array(ids[kept], type=pa.string()))
    repeated = counted.field("values").filter(pc.greater(counted.field("counts"), 1))
    taken = set(ids[kept].tolist())
    for value in repeated.to_pylist():
        rows = kept[ids[kept] == value]
        survivors = [rows[0]]
        suffix = 1
        for i in rows[1:]:
            twin = next(
                (j for j in survivors if shapely.equals_exact(geoms[i], geoms[j], 1e-9)), None
            )
            if twin is not None:
                report.skip(value, "duplicate-feature", f"same id and geometry as row {twin}")
                keep[i] = False
                continue
            survivors.append(i)
            suffix += 1
            while f"{value}~{suffix}" in taken:
                suffix += 1
            new = f"{value}~{suffix}"
            taken.add(new)
            report.repair(value, "duplicate-id", f"renamed to {new}")
            ids[i] = new
    return ids, keep


def _boxes(rng: np.random.Generator, n: int, kinds: int) -> np.ndarray:
    """``n`` squares drawn from ``kinds`` places: many exact repeats."""
    at = rng.integers(0, kinds, n).astype(float)
    return shapely.box(at, at, at + 1, at + 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_duplicate_ids_are_renamed_and_skipped_as_before(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    pool = ["a", "b", "a~2", "a~3", "b~2", "测", "c~2~2", "c~2", "c", "", "d"]
    ids = np.array(
        [str(rng.choice(pool)) if rng.random() < 0.5 else f"u{i}" for i in range(n)], dtype=object
    )
    geoms = _boxes(rng, n, 6)
    keep = rng.random(n) < 0.9
    expected_report, report = StageReport("b"), StageReport("b")
    expected_ids, expected_keep = _reference_dedupe(ids, geoms, keep.copy(), expected_report)
    got_ids, _, got_keep = _dedupe_ids(ids, geoms, keep.copy(), report)
    assert got_ids.tolist() == expected_ids.tolist()
    assert (got_keep == expected_keep).all()
    assert report.repaired == expected_report.repaired
    assert report.skipped == expected_report.skipped
    assert any(r["reason"] == "duplicate-id" for r in report.repaired)
    assert any(r["reason"] == "duplicate-feature" for r in report.skipped)


def test_unique_ids_are_left_alone() -> None:
    ids = np.array([f"id{i}" for i in range(1000)], dtype=object)
    geoms = _boxes(np.random.default_rng(5), 1000, 3)
    report = StageReport("b")
    got, _, keep = _dedupe_ids(ids, geoms, np.ones(1000, dtype=bool), report)
    assert got.tolist() == ids.tolist() and keep.all()
    assert report.repaired == report.skipped == []


def _reference_footprints(ids, geoms, keep, report):
    """The per-group loop of :func:`_drop_duplicate_footprints` before it was vectorised."""
    kept = np.flatnonzero(keep)
    bits = np.ascontiguousarray(np.round(shapely.bounds(geoms[kept]), 9)).view(np.uint64)
    key = np.full(len(kept), 0x9E3779B97F4A7C15, dtype=np.uint64)
    for k in range(bits.shape[1]):
        key = (key ^ bits[:, k]) * np.uint64(0x100000001B3)
    order = np.argsort(key, kind="stable")
    same = np.flatnonzero(key[order][1:] == key[order][:-1])
    for group in np.unique(key[order][same]):
        rows = kept[np.flatnonzero(key == group)]
        for k, i in enumerate(rows[1:], start=1):
            twin = next(
                (j for j in rows[:k] if keep[j] and _same_footprint(geoms[i], geoms[j])), None
            )
            if twin is not None:
                report.skip(ids[i], "duplicate-footprint", f"same footprint as {ids[twin]}")
                keep[i] = False
    return keep


@pytest.mark.parametrize("seed", [0, 1])
def test_duplicate_footprints_are_skipped_as_before(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 600
    geoms = _boxes(rng, n, 40)
    # the same square from another start vertex: equal, not identical
    turned = rng.random(n) < 0.3
    geoms[turned] = shapely.polygons(
        np.roll(shapely.get_coordinates(geoms[turned]).reshape(-1, 5, 2)[:, :4], 1, axis=1)
    )
    # a square whose bounds repeat another's but whose shape does not
    geoms[:5] = shapely.Polygon([(0, 0), (1, 1), (0, 1)])
    ids = np.array([f"f{i}" for i in range(n)], dtype=object)
    keep = rng.random(n) < 0.95
    expected_report, report = StageReport("b"), StageReport("b")
    expected = _reference_footprints(ids, geoms, keep.copy(), expected_report)
    got = _drop_duplicate_footprints(ids, geoms, keep.copy(), report)
    assert (got == expected).all()
    assert report.skipped == expected_report.skipped
    assert len(report.skipped) > 100  # many groups, in the same order
    # with the bounds the repair computed: the same
    given = StageReport("b")
    bounds = shapely.bounds(geoms)
    assert (_drop_duplicate_footprints(ids, geoms, keep.copy(), given, bounds) == expected).all()
    assert given.skipped == expected_report.skipped


def test_height_repairs_keep_zero_and_minus_zero_apart_from_missing() -> None:
    ids = np.array([f"h{i}" for i in range(8)], dtype=object)
    height = np.array([0.0, -0.0, np.nan, np.inf, -2.0, 900.0, -0.0, np.nan])
    floors = np.array([3.0, 2.5, 2.5, np.nan, 3.0, 120.0, np.nan, np.nan])
    from_floors = np.isfinite(floors) & (np.arange(8) != 4)
    fallback = ~from_floors
    report = StageReport("b")
    _report_heights(report, ids, height, floors, from_floors, fallback, 500.0)
    expected = StageReport("b")
    for i in range(8):
        why = _height_problem(height[i], 500.0)
        if from_floors[i]:
            expected.repair(ids[i], "height-from-floors", f"{why}; {floors[i]:g} floors")
        else:
            expected.repair(ids[i], "default-height", f"{why}; no usable floors")
    assert report.repaired == expected.repaired
    assert report.repaired[1]["detail"] == "height 0; 2.5 floors"


def _reference_text(values: np.ndarray) -> list[str]:
    arr = pc.utf8_trim_whitespace(pc.fill_null(pa.array(values, type=pa.string()), ""))
    return arr.to_numpy(zero_copy_only=False).tolist()


def test_text_through_distinct_values_equals_row_by_row() -> None:
    rng = np.random.default_rng(6)
    pool = np.array([" 住宅", "办公 ", None, "", "\tshop\n", "公共"], dtype=object)
    few = pool[rng.integers(0, len(pool), 20_000)]
    assert _through_distinct(pa.array(few, type=pa.string()), lambda d: d, "") is not None
    many = np.array([f" id{i} " if i % 7 else None for i in range(20_000)], dtype=object)
    assert _through_distinct(pa.array(many, type=pa.string()), lambda d: d, "") is None
    for values in (few, many, few[:0], few[:1]):
        got = to_text(values, len(values))
        assert got.dtype == object and got.tolist() == _reference_text(values)
        assert all(type(v) is str for v in got.tolist())


def test_arrow_text_columns_convert_the_same_either_way(tmp_path) -> None:
    few = pa.chunked_array([["住宅", None, "办公"] * 3000, ["住宅", "x"] * 10])
    many = pa.chunked_array([[f"n{i}" for i in range(9018)], ["m", None]])
    table = pa.table({"few": few, "many": many, "n": pa.array(np.arange(9020))})
    columns = _arrow_columns(table, set(), encoding=None, path=tmp_path / "t.parquet")
    for name, col in (("few", few), ("many", many)):
        assert columns[name].dtype == object
        assert columns[name].tolist() == col.to_pylist()
