"""Incremental rebuilds: partitions, per-tile content hashes, only touched tiles rewritten.

A small city of synthetic footprints is built; then (1) an ``[l2]``-only change re-runs
the L2 stage alone, from the building partitions of the last build, and (2) one
changed footprint rewrites only the tile that holds it: every other tile is a hard
link of the last build's file, and the result equals a full (``--force``) build.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from scale_helpers import output_files

from bench.synthetic import write_geoparquet
from cim.build import build_project
from cim.errors import DatasetIOError
from tiling.buildings.export import COLUMNS
from tiling.buildings.partitions import (
    partition_index,
    read_partitions,
    read_partitions_for_tiles,
)

N = 300


def _write_toml(root: Path, per_tile: int) -> Path:
    toml = root / "city.toml"
    toml.write_text(
        f'[buildings]\npath = "b.parquet"\nid = "id"\n[l2]\nmax_features_per_tile = {per_tile}\n',
        encoding="utf-8",
    )
    return toml


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("incremental")
    write_geoparquet(root / "b.parquet", N, seed=11)
    build_project(_write_toml(root, 30), progress=False)
    return root


def _fresh(root: Path) -> Path:
    """A city built once (fingerprints hold absolute paths: no copying a built city)."""
    write_geoparquet(root / "b.parquet", N, seed=11)
    build_project(_write_toml(root, 30), progress=False)
    return root


def _inodes(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_ino for p in (out / "tiles/l2/content").iterdir()}


def test_partitions_hold_every_building_in_hilbert_order(city: Path) -> None:
    out = city / "output"
    index = partition_index(out)
    assert index["rows"] == N and index["source_crs"]
    buildings = read_partitions(out)
    assert len(buildings) == N
    table = pq.read_table(out / "work/buildings" / index["partitions"][0]["file"])
    keys = table.column("hilbert").to_numpy()
    assert np.all(np.diff(keys.astype(np.int64)) >= 0)
    west, south, east, north = buildings.bounds()
    half = read_partitions(out, bbox=(west, south, (west + east) / 2, north))
    assert 0 < len(half) < N


def test_an_l2_change_reruns_l2_alone_from_the_partitions(tmp_path: Path) -> None:
    root = _fresh(tmp_path)
    toml = _write_toml(root, 20)
    result = build_project(toml, progress=False)
    assert result.ran == ["l2"] and "buildings" in result.reused
    incremental = output_files(root / "output")
    build_project(toml, progress=False, force=True)
    assert output_files(root / "output") == incremental


def test_one_changed_footprint_rewrites_only_its_tile(tmp_path: Path) -> None:
    root = _fresh(tmp_path)
    before = _inodes(root / "output")
    repairs = root / "output/work/buildings/repairs.arrow"
    repairs_before = repairs.stat().st_ino
    table = pq.read_table(root / "b.parquet")
    geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    height = table.column("height").to_numpy(zero_copy_only=False).copy()
    # a building whose size rank comes from its area: a height change keeps its tile
    candidates = np.flatnonzero(np.sqrt(shapely.area(geoms)) > height + 3)
    k = int(candidates[len(candidates) // 2])
    height[k] += 1.0
    changed_id = table.column("id")[k].as_py()
    table = table.set_column(table.schema.get_field_index("height"), "height", pa.array(height))
    pq.write_table(table, root / "b.parquet")

    result = build_project(_write_toml(root, 30), progress=False)
    assert "l2" in result.ran and "tiles unchanged" in result.partial["l2"]
    # a height is no part of a footprint's repair: every repair is reused
    assert result.partial["buildings"] == f"{N} of {N} footprints unchanged"
    after = _inodes(root / "output")
    assert sorted(after) == sorted(before)
    rewritten = [k for k in after if after[k] != before[k]]
    assert len(rewritten) == 1
    content = (root / "output" / rewritten[0]).read_bytes()
    assert changed_id.encode() in content
    # the repair cache is kept as it was (linked), with an empty delta beside it
    assert repairs.stat().st_ino == repairs_before
    assert repairs.with_name("repairs-delta.arrow").is_file()
    incremental = output_files(root / "output")
    build_project(_write_toml(root, 30), progress=False, force=True)
    assert output_files(root / "output") == incremental


def test_partitions_carry_the_wkb_and_centres_the_l2_stage_reuses(city: Path) -> None:
    out = city / "output"
    buildings, wkb, centres = read_partitions_for_tiles(out)
    assert len(buildings) == len(wkb) == len(centres) == N
    assert list(wkb) == list(shapely.to_wkb(buildings.footprints, output_dimension=2))
    expected = shapely.get_coordinates(shapely.centroid(buildings.footprints))
    assert np.array_equal(centres, expected)
    # buildings.parquet is written from the same Arrow table: same rows, same order
    table = pq.read_table(out / "buildings.parquet")
    assert table.column_names == list(COLUMNS)
    assert table.column("id").to_pylist() == buildings.ids.tolist()
    assert table.column("geometry").to_pylist() == list(wkb)
    assert b"geo" in table.schema.metadata


@pytest.mark.parametrize("writer", ["_write_tables", "_write_repairs"])
def test_a_failed_background_write_fails_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str
) -> None:
    """The partitions' writer, and the repair cache's, which the stage waits for
    before it puts the figures in order: either one's error fails the build."""
    import tiling.buildings.stage as stage

    write_geoparquet(tmp_path / "b.parquet", 50, seed=5)

    def broken(*args: object) -> None:
        raise DatasetIOError("disk full")

    monkeypatch.setattr(stage, writer, broken)
    with pytest.raises(DatasetIOError, match="disk full"):
        build_project(_write_toml(tmp_path, 30), progress=False)
    assert not (tmp_path / "output").exists()  # nothing swapped into place


@pytest.mark.parametrize(
    ("wait_from", "events_seen"),
    [
        (0, ["cache written", "columns made", "figures taken"]),
        (None, ["columns made", "figures taken", "cache written"]),
    ],
    ids=["large city: waits", "small city: goes on"],
)
def test_the_figures_are_put_in_order_once_the_repair_cache_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wait_from: int | None, events_seen: list
) -> None:
    """The repair cache's writer reads the figures in the input's order on its thread,
    started as soon as the repair is done: in a large city the stage lets it finish
    before the buildings' columns are made and the figures taken in its own order,
    letting the old order go as it goes (never both whole in memory, nor beside the
    cache's own arrays); a small one goes on meanwhile. Either way the cache is the
    same."""
    import time

    import tiling.buildings.stage as stage
    from tiling.buildings import prepare, repair_cache
    from tiling.buildings.footprints import FootprintArrays

    events: list[str] = []
    write, take = stage._write_repairs, FootprintArrays.take

    def slow_write(folder: Path, repairs: object) -> None:
        time.sleep(0.5)  # still writing when the order is made
        write(folder, repairs)
        events.append("cache written")

    def spied_take(self: FootprintArrays, index: np.ndarray, *, release: bool = False) -> object:
        if release:
            events.append("figures taken")
        taken = take(self, index, release=release)
        assert not release or len(self.centres) == len(self.wkb) == 0  # the old order let go
        return taken

    heights = prepare._heights

    def spied_heights(*args: object) -> object:
        events.append("columns made")  # the first of the buildings' columns
        return heights(*args)

    monkeypatch.setattr(stage, "_write_repairs", slow_write)
    monkeypatch.setattr(FootprintArrays, "take", spied_take)
    monkeypatch.setattr(prepare, "_heights", spied_heights)
    if wait_from is not None:
        monkeypatch.setattr(stage, "WAIT_FOR_CACHE_ROWS", wait_from)
    assert stage.WAIT_FOR_CACHE_ROWS > 60 or wait_from is not None
    write_geoparquet(tmp_path / "b.parquet", 60, seed=7)
    out = build_project(_write_toml(tmp_path, 30), progress=False).output
    assert events == events_seen
    monkeypatch.setattr(stage, "_write_repairs", write)
    again = tmp_path / "again"
    again.mkdir()
    write_geoparquet(again / "b.parquet", 60, seed=7)
    other = build_project(_write_toml(again, 30), progress=False).output
    cache = Path("work/buildings") / repair_cache.FILE
    assert (out / cache).read_bytes() == (other / cache).read_bytes()


def test_a_moved_footprint_is_repaired_again_and_the_result_is_a_full_builds(
    tmp_path: Path,
) -> None:
    root = _fresh(tmp_path)
    table = pq.read_table(root / "b.parquet")
    wkb = table.column("geometry").to_numpy(zero_copy_only=False).copy()
    wkb[7] = shapely.to_wkb(shapely.affinity.translate(shapely.from_wkb(wkb[7]), 3.0, 2.0))
    i = table.schema.get_field_index("geometry")
    table = table.set_column(i, table.schema.field(i), pa.array(wkb, pa.binary()))
    pq.write_table(table, root / "b.parquet")

    result = build_project(_write_toml(root, 30), progress=False)
    assert result.partial["buildings"] == f"{N - 1} of {N} footprints unchanged"
    assert (root / "output/work/buildings/repairs.arrow").is_file()
    incremental = output_files(root / "output")
    build_project(_write_toml(root, 30), progress=False, force=True)
    assert output_files(root / "output") == incremental
