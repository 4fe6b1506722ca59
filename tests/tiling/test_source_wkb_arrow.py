"""A GeoParquet source's WKB stays Arrow binary through the buildings stage.

The reader keeps the geometry column as a :class:`~cim.model.WkbColumn` (no Python
``bytes`` per row); the repair cache's fingerprints hash it in Arrow, the scan reads
its buffers and the repair's tasks take their rows from it. The builds must be the
ones the object arrays (``bytes`` per row, what the other readers give) made.
"""

from __future__ import annotations

import json
import struct
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from pyproj import CRS
from scale_helpers import output_files
from test_buildings_repair_chunks import same

import cim.readers as readers
from bench.synthetic import CRS_CODE, ORIGIN, footprints
from cim.build import build_project
from cim.config import load_project
from cim.model import WkbColumn
from cim.report import StageReport
from tiling.buildings import prepare, repair_cache
from tiling.buildings.prepare import Runner, read_footprints
from tiling.buildings.repair_cache import Repairs

N = 240


def _objects(column: pa.ChunkedArray) -> np.ndarray:
    """The reader's old way: one ``bytes`` object per row."""
    return column.to_numpy(zero_copy_only=False)


def _unclosed_ring(x: float, y: float) -> bytes:
    """A little-endian WKB Polygon whose ring is not closed (GEOS refuses it)."""
    points = [(x, y), (x + 12, y), (x + 12, y + 9), (x, y + 9)]
    return struct.pack("<BII I", 1, 3, 1, len(points)) + b"".join(
        struct.pack("<dd", *p) for p in points
    )


def write_parquet(
    path: Path,
    *,
    bad: bool,
    moved: int | None = None,
    height: int | None = None,
    n: int = N,
) -> Path:
    """Synthetic footprints as GeoParquet of many row groups (a chunked column);
    ``bad``: a few rows the build process must parse (Z, unclosed ring, one-part
    MultiPolygon, no geometry, a point); ``moved``/``height``: one row changed."""
    geoms, cols = footprints(n, seed=7)
    wkb = shapely.to_wkb(geoms).astype(object)
    if bad:
        x, y = ORIGIN
        wkb[5] = shapely.to_wkb(shapely.force_3d(geoms[5], 4.0))
        wkb[17] = _unclosed_ring(x + 3, y + 5)
        wkb[30] = shapely.to_wkb(shapely.MultiPolygon([geoms[30]]))
        wkb[41] = None
        wkb[52] = shapely.to_wkb(shapely.Point(x, y))
    if moved is not None:
        wkb[moved] = shapely.to_wkb(shapely.affinity.translate(geoms[moved], 2.0, 1.0))
    if height is not None:
        cols["height"] = cols["height"].copy()
        cols["height"][height] = 77.0
    table = pa.table({**cols, "geometry": pa.array(wkb, pa.binary())})
    crs = CRS(CRS_CODE).to_json_dict()
    geo = {"primary_column": "geometry", "columns": {"geometry": {"encoding": "WKB", "crs": crs}}}
    table = table.replace_schema_metadata({b"geo": json.dumps(geo).encode()})
    pq.write_table(table, path, row_group_size=50)
    return path


def write_city(root: Path, **kwargs: object) -> Path:
    write_parquet(root / "b.parquet", **kwargs)  # type: ignore[arg-type]
    toml = root / "city.toml"
    text = '[buildings]\npath = "b.parquet"\nid = "id"\n[l2]\nmax_features_per_tile = 40\n'
    toml.write_text(text, encoding="utf-8")
    return toml


# --- fingerprints ---------------------------------------------------------------------


def _values(n: int, seed: int = 3) -> list[bytes | None]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 200, n)
    data = rng.integers(0, 256, int(lengths.sum()), dtype=np.uint8).tobytes()
    ends = np.cumsum(lengths).tolist()
    values: list[bytes | None] = [
        data[e - k : e] for e, k in zip(ends, lengths.tolist(), strict=True)
    ]
    values[1] = None
    values[2] = b""
    return values


def test_fingerprints_are_the_same_for_objects_and_arrow() -> None:
    # more rows than one block: the blocks are hashed on threads
    values = _values(140_000)
    objects = np.empty(len(values), dtype=object)
    objects[:] = values
    expected = repair_cache.fingerprints(objects)
    assert expected.shape == (len(values), 2) and expected.dtype == np.uint64
    arrow = pa.array(values, pa.binary())
    chunked = pa.chunked_array([arrow.slice(0, 777), arrow.slice(777, 100_000), arrow[100_777:]])
    assert chunked.num_chunks == 3
    for given in (arrow, chunked, WkbColumn(chunked), pa.array(values, pa.large_binary())):
        np.testing.assert_array_equal(repair_cache.fingerprints(given), expected)
    # a selection (gathered from the chunks) and a slice: the rows' own fingerprints
    rows = np.array([5, 0, 139_999, 777, 776, 1, 2])
    np.testing.assert_array_equal(
        repair_cache.fingerprints(WkbColumn(chunked)[rows]), expected[rows]
    )
    np.testing.assert_array_equal(repair_cache.fingerprints(arrow[10:20]), expected[10:20])
    # no geometry: as empty bytes; the length is the stored length
    assert (expected[1] == expected[2]).all() and expected[1, 1] == 0
    assert expected[:, 1].tolist() == [len(v or b"") for v in values]
    # one hash per distinct value (short values repeat)
    assert len(np.unique(expected[:, 0])) == len({v or b"" for v in values})


def test_a_one_byte_change_changes_the_fingerprint() -> None:
    wkb = shapely.to_wkb(shapely.box(500_000, 4_440_000, 500_012, 4_440_009))
    changed = []
    for at in (0, 1, 8, len(wkb) // 2, len(wkb) - 1):
        b = bytearray(wkb)
        b[at] ^= 1
        changed.append(bytes(b))
    objects = np.array([wkb, *changed], dtype=object)
    for keys in (
        repair_cache.fingerprints(objects),
        repair_cache.fingerprints(WkbColumn(pa.array(objects.tolist(), pa.binary()))),
    ):
        assert len(np.unique(keys[:, 0])) == len(objects)
        assert (keys[:, 1] == len(wkb)).all()


# --- the reader -----------------------------------------------------------------------


def test_a_geoparquet_read_holds_no_python_bytes(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "b.parquet", bad=True)
    table = readers.read_features(path, parse_geometry=False)
    # Arrow binary (the file's row groups as chunks), not an object array of bytes
    assert isinstance(table.source_wkb, WkbColumn)
    stored = table.source_wkb.arrow
    assert isinstance(stored, pa.ChunkedArray) and stored.type == pa.binary()
    assert stored.num_chunks > 1
    assert not table.parsed and all(g is None for g in table.geometry.tolist())
    source = pq.read_table(path).column("geometry")
    assert table.source_wkb.tolist() == source.to_pylist()
    # parsing some rows converts those and gives what parsing all of them gives
    whole = readers.read_features(path)
    assert isinstance(whole.source_wkb, WkbColumn) and whole.parsed
    rows = np.array([3, 5, 17, 41, 200])
    table.parse(rows)
    assert shapely.equals_exact(table.geometry[rows], whole.geometry[rows], 0).tolist() == [
        True,
        True,
        True,
        False,  # no geometry: None on both sides
        True,
    ]
    assert table.geometry[41] is None and whole.geometry[41] is None
    assert [(i.row, i.reason) for i in table.issues] == [(17, "invalid-geometry")]
    assert [(i.row, i.reason) for i in whole.issues] == [(17, "invalid-geometry")]
    assert sum(g is not None for g in table.geometry.tolist()) == len(rows) - 1


def test_a_geoparquet_read_allocates_no_python_objects_per_geometry(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "big.parquet", bad=False, n=20_000)
    wkb_bytes = pq.read_table(path).column("geometry").nbytes
    tracemalloc.start()
    try:
        table = readers.read_features(path, parse_geometry=False)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(table.source_wkb, WkbColumn)
    # Python's allocations (numpy's too) are traced, Arrow's buffers are not: a bytes
    # object per row would hold more than the WKB itself; the table holds a few numeric
    # columns and an array of None per row
    assert held < wkb_bytes / 2


def test_the_stage_makes_no_bytes_per_row_of_a_plain_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain polygons are fingerprinted, scanned and sent to the repair in Arrow: no
    Arrow WKB column of the source is turned into Python ``bytes`` in the build."""
    toml = write_city(tmp_path, bad=False)
    made: list[int] = []
    real = WkbColumn.__array__

    def counted(self: WkbColumn, dtype: object = None, copy: object = None) -> np.ndarray:
        made.append(len(self))
        return real(self, dtype, copy)

    monkeypatch.setattr(WkbColumn, "__array__", counted)
    kinds: list[type] = []
    real_read = prepare.read_features

    def reading(*args: object, **kwargs: object) -> readers.FeatureTable:
        table = real_read(*args, **kwargs)  # type: ignore[arg-type]
        kinds.append(type(table.source_wkb))
        return table

    monkeypatch.setattr(prepare, "read_features", reading)
    report = StageReport("buildings")
    buildings, _ = read_footprints(
        load_project(toml), report, run=Runner(chunk=64), repairs=Repairs(None)
    )
    assert len(buildings) == N
    assert kinds == [WkbColumn]
    # the repaired footprints' WKB (a WkbColumn too) is read for its multipolygons only
    assert sum(made) == 0


# --- builds ---------------------------------------------------------------------------


def _read(toml: Path, previous: Path | None) -> tuple[tuple, dict, Repairs]:
    report = StageReport("buildings")
    repairs = Repairs(previous)
    out = read_footprints(load_project(toml), report, run=Runner(chunk=64), repairs=repairs)
    entries = report.to_json() | {"repaired": report.repaired, "skipped": report.skipped}
    return out, entries, repairs


def test_arrow_and_object_wkb_give_the_same_buildings_and_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = write_city(tmp_path, bad=True)
    arrow, arrow_report, arrow_repairs = _read(toml, None)
    with monkeypatch.context() as m:
        m.setattr(readers, "_arrow_wkb", _objects)
        objects, object_report, object_repairs = _read(toml, None)
    same(arrow, objects)
    assert arrow_report == object_report
    reasons = {e["reason"] for e in arrow_report["repaired"] + arrow_report["skipped"]}
    assert {"invalid-geometry", "z-dropped", "no-geometry", "not-a-polygon"} <= reasons
    # the same fingerprints: a cache made from objects serves an Arrow source
    assert arrow_repairs.made is not None and object_repairs.made is not None
    np.testing.assert_array_equal(arrow_repairs.made.keys, object_repairs.made.keys)
    cache = tmp_path / "objects"
    made = object_repairs.made
    repair_cache.write(cache, made, object_repairs.crs, object_repairs.min_area, None)
    again, again_report, reread = _read(toml, cache)
    assert reread.reused == reread.rows == N - 2  # all but the no-geometry and the point
    same(again, arrow)
    assert again_report == arrow_report


def test_a_parsed_geoparquet_gives_the_object_paths_buildings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a repair cache the reader parses every row (``parse_geometry``): the
    stored WKB that reading left as it was still travels as Arrow."""
    toml = write_city(tmp_path, bad=True)

    def build() -> tuple[tuple, dict]:
        report = StageReport("buildings")
        out = read_footprints(load_project(toml), report, run=Runner(chunk=64))
        return out, report.to_json() | {"repaired": report.repaired, "skipped": report.skipped}

    arrow, arrow_report = build()
    with monkeypatch.context() as m:
        m.setattr(readers, "_arrow_wkb", _objects)
        objects, object_report = build()
    same(arrow, objects)
    assert arrow_report == object_report
    assert len(arrow[0]) == N - 2


def test_stored_rows_that_need_encoding_travel_encoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows whose stored WKB reading changed (Z, one-part, unclosed) are encoded from
    their geometry; the others go to the tasks as the source's bytes."""
    from tiling.buildings import repair

    toml = write_city(tmp_path, bad=True)
    sent: list[bytes] = []
    real = repair.tasks

    def spy(*args: object) -> Iterator[repair.RepairTask]:
        for task in real(*args):  # type: ignore[arg-type]
            assert isinstance(task.wkb, pa.BinaryArray) and not task.wkb.null_count
            sent.extend(task.wkb.to_pylist())
            yield task

    monkeypatch.setattr(repair, "tasks", spy)
    _read(toml, None)
    source = pq.read_table(tmp_path / "b.parquet").column("geometry").to_pylist()
    kept = [i for i in range(N) if i not in (41, 52)]
    assert len(sent) == len(kept)
    as_stored = [i for i, w in zip(kept, sent, strict=True) if w == source[i]]
    assert set(kept) - set(as_stored) == {5, 17, 30}
    z = shapely.from_wkb(sent[kept.index(5)])
    assert not shapely.has_z(z) and shapely.equals(z, shapely.force_2d(shapely.from_wkb(source[5])))


def test_a_geoparquet_rebuild_is_the_object_paths_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whole builds: the Arrow path's outputs are those of the object arrays, and it
    reuses the repairs a build of the object arrays kept."""
    toml = write_city(tmp_path, bad=True)
    with monkeypatch.context() as m:
        m.setattr(readers, "_arrow_wkb", _objects)
        build_project(toml, progress=False, jobs=1)
        write_city(tmp_path, bad=True, moved=60)
        build_project(toml, progress=False, jobs=1)
        by_objects = output_files(tmp_path / "output")
    # a height changed: the stage runs again, every repair comes from the objects' cache
    write_city(tmp_path, bad=True, moved=60, height=9)
    result = build_project(toml, progress=False, jobs=1)
    assert result.partial["buildings"] == f"{N - 2} of {N - 2} footprints unchanged"
    rebuilt = output_files(tmp_path / "output")
    build_project(toml, progress=False, jobs=1, force=True)
    assert output_files(tmp_path / "output") == rebuilt
    with monkeypatch.context() as m:
        m.setattr(readers, "_arrow_wkb", _objects)
        build_project(toml, progress=False, jobs=1, force=True)
        assert output_files(tmp_path / "output") == rebuilt
    # and the outputs before the height changed were the Arrow path's too
    write_city(tmp_path, bad=True, moved=60)
    build_project(toml, progress=False, jobs=1, force=True)
    assert output_files(tmp_path / "output") == by_objects


def test_a_gdal_read_keeps_the_geometry_arrow_and_builds_the_same(tmp_path: Path) -> None:
    """A GeoPackage (read through GDAL's Arrow stream) holds its WKB as Arrow too, and
    its footprints come out as the GeoParquet's do."""
    import pyogrio

    parquet = write_parquet(tmp_path / "b.parquet", bad=False, n=300)
    source = pq.read_table(parquet)
    pyogrio.write_arrow(
        source.replace_schema_metadata(None),
        tmp_path / "b.gpkg",
        driver="GPKG",
        geometry_name="geometry",
        geometry_type="Polygon",
        crs=CRS_CODE,
    )
    table = readers.read_features(tmp_path / "b.gpkg", parse_geometry=False)
    assert isinstance(table.source_wkb, WkbColumn)
    stored = shapely.from_wkb(np.asarray(table.source_wkb))
    assert shapely.equals_exact(
        stored, shapely.from_wkb(_objects(source.column("geometry"))), 0
    ).all()
    out = {}
    for name in ("b.parquet", "b.gpkg"):
        toml = tmp_path / f"{name}.toml"
        toml.write_text(f'[buildings]\npath = "{name}"\nid = "id"\n', encoding="utf-8")
        project = load_project(toml)
        out[name] = read_footprints(
            project, StageReport("buildings"), run=Runner(chunk=64), repairs=Repairs(None)
        )
    same(out["b.gpkg"], out["b.parquet"])
