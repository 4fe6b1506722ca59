"""Text columns held as Arrow (:class:`cim.model.ArrowText`): a build of a GeoParquet
city never makes a Python string per building for its ids, names, uses or roof types
unless a step reads them, and reading them gives what the object arrays held before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import shapely

from cim.model import ArrowText, Buildings, EncodedFootprints
from cim.readers import to_text

IDS = pa.array(["b0", "b1", "b2", "b3"])
USE = pa.array(["住宅", "", "商业", "住宅"])


def _buildings() -> Buildings:
    n = len(IDS)
    return Buildings(
        ids=ArrowText(IDS),  # type: ignore[arg-type]
        footprints=EncodedFootprints(
            shapely.to_wkb(shapely.box(np.arange(n), 0, np.arange(n) + 1, 1))
        ),  # type: ignore[arg-type]
        height=np.arange(n, dtype=float),
        floors=np.ones(n),
        base=np.zeros(n),
        name=np.full(n, "", dtype=object),
        use=ArrowText(USE),  # type: ignore[arg-type]
        roof_type=np.full(n, "", dtype=object),
    )


def test_held_as_arrow_through_take_and_replace_until_read() -> None:
    b = _buildings()
    assert len(b) == 4 and b.arrow_text["ids"] is IDS  # an Arrow-held column is its own twin
    picked = b.take(np.array([3, 1])).replace(height=np.array([5.0, 6.0]))
    masked = b.take(np.array([True, False, True, False]))
    for t in (picked, masked):
        assert isinstance(t.held("ids"), ArrowText) and isinstance(t.held("use"), ArrowText)
        assert t.held("ids").arrow is t.arrow_text["ids"]  # taken once, with its twin
    assert picked.id_of(0) == "b3" and isinstance(picked.held("ids"), ArrowText)
    assert masked.held("use").tolist() == ["住宅", "商业"]
    ids = picked.ids  # reading makes the object array, once
    assert ids.dtype == object and ids.tolist() == ["b3", "b1"]
    assert picked.ids is ids and picked.arrow_text["ids"].to_pylist() == ["b3", "b1"]
    assert isinstance(b.held("ids"), ArrowText)  # the original untouched


def test_reading_gives_what_to_text_gives() -> None:
    b = _buildings()
    expected = to_text(USE, 4)
    assert b.use.tolist() == expected.tolist() and b.use.dtype == object
    assert b.row(2)["use"] == "商业" and b.row(2)["id"] == "b2"


def test_take_with_release_empties_arrow_held_columns() -> None:
    b = _buildings()
    taken = b.take(np.array([2, 0, 1, 3]), release=True)
    assert taken.held("ids").tolist() == ["b2", "b0", "b1", "b3"]
    assert len(b.held("ids")) == 0 and b.arrow_text == {}


def test_replacing_an_arrow_held_column_drops_its_twin() -> None:
    b = _buildings()
    renamed = b.replace(ids=np.array(["x0", "x1", "x2", "x3"], dtype=object))
    assert "ids" not in renamed.arrow_text and "use" in renamed.arrow_text
    assert renamed.ids.tolist() == ["x0", "x1", "x2", "x3"]


def test_indexing_reads_like_the_object_array() -> None:
    text = ArrowText(IDS)
    assert text[np.int64(1)] == "b1" and text[-1] == "b3"
    assert text[1:3].tolist() == ["b1", "b2"]
    assert text[np.array([True, False, False, True])].tolist() == ["b0", "b3"]
    assert text[np.array([2, 2])].tolist() == ["b2", "b2"]


def test_a_geoparquet_city_builds_without_python_text_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The buildings and L2 stages of a GeoParquet city with ids, names, uses, roof
    types and a report entry for many buildings (heights from floors): every text
    column reaches the L2 tiles as Arrow, and none is read as Python strings."""
    import tiling.buildings.stage as stage
    from bench.synthetic import write_geoparquet
    from cim.build import build_project

    data = tmp_path / "data"
    data.mkdir()
    write_geoparquet(data / "buildings.parquet", 300, seed=5)
    (tmp_path / "city.toml").write_text(
        '[city]\nname = "小城"\ncrs = "EPSG:4547"\n\n[buildings]\npath = "data/buildings.parquet"\n'
        'id = "id"\nname = "name"\nuse = "use"\nroof_type = "roof_type"\n',
        encoding="utf-8",
    )
    made: list[int] = []
    real = ArrowText.to_numpy

    def counted(self: ArrowText) -> Any:
        made.append(len(self))
        return real(self)

    monkeypatch.setattr(ArrowText, "to_numpy", counted)
    held: list[Any] = []
    real_l2 = stage.write_l2

    def l2(buildings: Buildings, *args: Any, **kwargs: Any) -> Any:
        held.extend(buildings.held(k) for k in ("ids", "name", "use", "roof_type"))
        return real_l2(buildings, *args, **kwargs)

    monkeypatch.setattr(stage, "write_l2", l2)
    result = build_project(tmp_path / "city.toml", jobs=1, progress=False)
    assert len(held) == 4 and all(isinstance(c, ArrowText) for c in held)
    assert made == []  # and no step read a whole column as Python strings
    report = json.loads((result.output / "build-report.json").read_text(encoding="utf-8"))
    stage = report["stages"]["buildings"]
    heights = [e for e in stage["repaired"] if e["reason"] == "height-from-floors"]
    assert heights and all(e["id"].startswith("B") and len(e["id"]) == 8 for e in heights)
    assert result.manifest["layers"]["l2"]["uses"] == sorted(
        ["住宅", "商业", "办公", "工业", "公共"]
    )


def test_repair_tasks_carry_their_own_ids_not_the_columns() -> None:
    """A task's ids pickle to the size of its rows: a pickled Arrow slice carries the
    whole column's buffers, which made every task of a big city carry all its ids."""
    import pickle

    from tiling.buildings import repair

    n, chunk = 20_000, 100
    ids = ArrowText(pa.array([f"B{i:07d}" for i in range(n)]))
    geoms = shapely.box(np.arange(n), 0, np.arange(n) + 1, 1)
    task = next(iter(repair.tasks(ids, geoms, "EPSG:4326", 0.0, chunk)))
    assert task.ids.to_pylist() == [f"B{i:07d}" for i in range(chunk)]
    assert len(pickle.dumps(task.ids, protocol=5)) < 20 * chunk  # 8 bytes and an offset a row
