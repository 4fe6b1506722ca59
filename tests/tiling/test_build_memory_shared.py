"""The build process holds each whole-city column once: what a step takes as it is
(text trimmed once and shared with the reader's table, rows not parsed, every row
kept, the centres the quadtree reorders, the rows' bounds once the partitions' are
taken) is not copied beside the original, and the result is the same."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

from cim.model import Buildings
from cim.readers import (
    AttributeColumns,
    FeatureTable,
    read_features,
    take_rows,
    to_text,
    unparsed,
)
from tiling.buildings import prepare
from tiling.buildings.footprints import FootprintArrays, total_bounds
from tiling.buildings.hierarchy import build_hierarchy
from tiling.buildings.partitions import FOLDER as PARTITIONS
from tiling.buildings.partitions import (
    block_bounds,
    hilbert_order,
    partition_table,
    write_partitions,
)


def _text_table(path: Path) -> Path:
    uses = pa.array([" 住宅 ", None, "办公", "", "商业\t"] * 4, pa.string())
    wkb = [b"\x01\x03\x00\x00\x00\x00\x00\x00\x00"] * len(uses)  # empty polygons
    table = pa.table({"id": [f"b{i}" for i in range(len(uses))], "use": uses, "geometry": wkb})
    geo = json.dumps(
        {
            "version": "1.0.0",
            "primary_column": "geometry",
            "columns": {"geometry": {"encoding": "WKB"}},
        }
    )
    pq.write_table(table.replace_schema_metadata({"geo": geo}), path, row_group_size=7)
    return path


def test_a_trimmed_text_column_takes_the_place_of_the_one_read(tmp_path: Path) -> None:
    path = _text_table(tmp_path / "b.parquet")
    expected = to_text(read_features(path, parse_geometry=False).column("use"), 20)
    table = read_features(path, parse_geometry=False)
    trimmed = table.trimmed_text("use")
    assert trimmed is not None and trimmed.to_pylist() == expected.tolist()
    # the table holds the trimmed array itself (no second copy of the column) ...
    held = table.arrow_text("use")
    assert held is not None and held.num_chunks == 1
    assert held.chunk(0).buffers()[2].address == trimmed.buffers()[2].address
    # ... and reads the same through column() as before
    assert table.column("use").tolist() == expected.tolist()
    assert read_features(path, parse_geometry=False).trimmed_text("nothing") is None


def test_the_buildings_text_is_the_tables_own(tmp_path: Path) -> None:
    table = read_features(_text_table(tmp_path / "b.parquet"), parse_geometry=False)
    column = prepare._text_column(table, "use", len(table))
    held = table.arrow_text("use")
    assert held is not None
    assert column.arrow.buffers()[2].address == held.chunk(0).buffers()[2].address


def test_rows_not_parsed_hold_no_memory_per_row() -> None:
    rows = unparsed(10_000_000)
    assert rows.strides == (0,) and not rows.flags.writeable and rows[123] is None
    some = take_rows(rows, np.array([5, 7, 9]))
    assert some.strides == (0,) and some.tolist() == [None] * 3
    values = np.array(["a", "b", "c"], dtype=object)
    assert take_rows(values, np.array([2, 0])).tolist() == ["c", "a"]
    assert FootprintArrays.empty(4).wkb.strides == (0,)


def test_the_rows_kept_are_listed_only_when_some_were_dropped() -> None:
    every = prepare._Kept(np.ones(5, dtype=bool))
    column = np.arange(5.0)
    assert every(column) is column and every.every
    assert "rows" not in every.__dict__  # never made: 80 MB at ten million
    some = prepare._Kept(np.array([True, False, True, True, False]))
    assert some(column).tolist() == [0.0, 2.0, 3.0] and not some.every
    assert some(pa.array(["a", "b", "c", "d", "e"])).to_pylist() == ["a", "c", "d"]


def test_the_partitions_bounds_are_each_blocks_total_bounds() -> None:
    rng = np.random.default_rng(4)
    lo = rng.uniform(100, 110, (23, 2))
    bounds = np.hstack([lo, lo + rng.uniform(0, 1, (23, 2))])
    bounds[[2, 11]] = np.nan  # rows without a footprint
    bounds[15:20] = np.nan  # a block without one
    blocks = block_bounds(bounds, 5)
    assert blocks.shape == (5, 4)
    for k in range(5):
        expected = total_bounds(bounds[5 * k : 5 * k + 5])
        assert np.array_equal(blocks[k], np.array(expected), equal_nan=True)
    assert total_bounds(blocks) == total_bounds(bounds)
    assert block_bounds(np.empty((0, 4))).shape == (0, 4)


def test_figures_without_bounds_say_so() -> None:
    figures = FootprintArrays.empty(3).without_bounds()
    assert figures.bounds is None and len(figures.centres) == 3
    with pytest.raises(ValueError, match="let go"):
        figures.total_bounds()


@pytest.mark.parametrize("separate", [False, True])
def test_a_quadtree_that_consumes_its_centres_is_the_same(separate: bool) -> None:
    rng = np.random.default_rng(9)
    n = 5_000
    centres = rng.uniform(0, 3_000, (n, 2))
    size = rng.uniform(3, 60, n)
    vertices = rng.integers(8, 40, n)
    mask = rng.random(n) < 0.2 if separate else None
    kw = dict(max_features=200, max_vertices=4_000, separate=mask)
    plain = build_hierarchy(centres, size, vertices, **kw)
    given = centres.copy()
    consumed = build_hierarchy(given, size, vertices, consume=True, **kw)
    assert [n.key for n in consumed] == [n.key for n in plain]
    assert [n.geometric_error for n in consumed] == [n.geometric_error for n in plain]
    assert all(np.array_equal(a.members, b.members) for a, b in zip(consumed, plain, strict=True))
    assert [n.children for n in consumed] == [n.children for n in plain]
    if not separate:  # reordered in place (its memory was the quadtree's)
        assert not np.array_equal(given, centres)
        assert np.array_equal(np.sort(given[:, 0]), np.sort(centres[:, 0]))


def _mapping(**given: object) -> SimpleNamespace:
    keys = ("base", "address", "name", "use", "roof_type", *prepare._L3_KEYS)
    return SimpleNamespace(**{**{key: None for key in keys}, "extra": [], **given})


def test_the_heights_read_are_let_go_unless_mapped_again(tmp_path: Path) -> None:
    path = tmp_path / "b.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "Height": [3.0, 4.0], "floors": [1.0, 2.0]}), path)

    def read() -> FeatureTable:  # as a GeoParquet read gives them
        t = pq.read_table(path)
        ready = {k: t.column(k).to_numpy() for k in ("Height", "floors")}
        return FeatureTable(
            path, unparsed(2), AttributeColumns(ready, {"id": t.column("id")}), None
        )

    plain = read()
    prepare._release_read(plain, _mapping(), ("height", "floors"))  # case-insensitive
    assert plain.column("Height") is None and plain.column("floors") is None
    assert list(plain.columns) == ["id"] and plain.column("id") is not None
    again = read()
    prepare._release_read(again, _mapping(extra=["HEIGHT"], base="floors"), ("height", "floors"))
    assert again.column("Height").tolist() == [3.0, 4.0]  # the extra attribute reads it
    assert again.column("floors").tolist() == [1.0, 2.0]  # the base reads it


def test_partitions_written_with_their_centres_put_in_are_the_same(tmp_path: Path) -> None:
    """The stage's way (no per-row bounds, each partition's centres put in as it is
    written, the footprints' own addresses shared) writes the files of the plain way."""
    rng = np.random.default_rng(3)
    n = 620
    lon, lat = 113.3 + rng.uniform(0, 0.05, n), 40.09 + rng.uniform(0, 0.05, n)
    footprints = shapely.box(lon, lat, lon + 1e-4, lat + 1e-4)
    addresses = np.empty(n, dtype=object)
    addresses.fill(())
    addresses[[3, 400]] = [("平城大道1号",), ("长安路2号", "附1")]
    buildings = Buildings(
        ids=np.array([f"B{i}" for i in range(n)], dtype=object),
        footprints=footprints,
        height=rng.uniform(3, 90, n),
        floors=np.full(n, np.nan),
        base=np.zeros(n),
        name=np.full(n, "", dtype=object),
        use=np.full(n, "住宅", dtype=object),
        roof_type=np.full(n, "flat", dtype=object),
        addresses=addresses,
        extra={"zone": np.array([f"z{i % 7}" for i in range(n)], dtype=object)},
    )
    figures = FootprintArrays.of(footprints)
    order, keys = hilbert_order(buildings, figures.centres, figures.total_bounds())
    buildings, figures = buildings.take(order), figures.take(order)
    plain, staged = tmp_path / "plain", tmp_path / "staged"
    write_partitions(buildings, plain, keys=keys, figures=figures, rows_per_partition=250)
    table = partition_table(buildings, keys, wkb=figures.wkb, with_centres=False)
    assert "cx" not in table.column_names
    write_partitions(
        buildings,
        staged,
        keys=keys,
        figures=figures.without_bounds(),
        table=table,
        rows_per_partition=250,
        part_bounds=block_bounds(figures.bounds, 250),
    )
    names = sorted(p.name for p in (plain / PARTITIONS).iterdir())
    assert len([m for m in names if m.endswith(".parquet")]) == 3
    for name in names:
        assert (staged / PARTITIONS / name).read_bytes() == (plain / PARTITIONS / name).read_bytes()
