"""Text read through Arrow stays Arrow: the reader converts a text column to Python
strings only when it is looked up, and the buildings' id, name, use and roof type
carry Arrow twins that follow every selection and are dropped when the column is
replaced or its values were changed (renamed duplicate ids)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

import cim.readers as readers
from cim.build import build_project
from cim.model import Buildings, EncodedFootprints
from cim.readers import AttributeColumns, read_features, to_text, trimmed_text


def _columns() -> AttributeColumns:
    table = pa.table(
        {
            "n": pa.array([1, 2, 3]),
            "use": pa.array([" 住宅", None, "办公 "]),
            "h": pa.array([1.5, None, 3.0]),
        }
    )
    return readers._arrow_columns(table, set(), encoding=None, path=Path("t.parquet"))


def test_text_columns_are_converted_when_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    converted: list[int] = []
    real = readers._text_objects
    monkeypatch.setattr(readers, "_text_objects", lambda c: converted.append(len(c)) or real(c))
    cols = _columns()
    assert list(cols) == ["n", "use", "h"] and len(cols) == 3  # the file's order
    assert "use" in cols and "USE" not in cols and converted == []
    assert cols.arrow_text("use").to_pylist() == [" 住宅", None, "办公 "]
    assert cols.arrow_text("n") is None and converted == []
    assert cols["use"].tolist() == [" 住宅", None, "办公 "] and converted == [3]
    assert cols["use"] is cols["use"] and converted == [3]  # once
    assert dict(cols)["n"].tolist() == [1, 2, 3]
    with pytest.raises(KeyError):
        cols["missing"]


def test_to_text_reads_arrow_as_it_reads_objects() -> None:
    many = [f" id{i} " if i % 5 else None for i in range(9000)]
    for values in (["a ", None, " b"] * 3000, many, [], ["x"]):
        arrow = pa.array(values, pa.string())
        objects = to_text(np.array(values, dtype=object), len(values))
        assert to_text(arrow, len(values)).tolist() == objects.tolist()
        assert to_text(pa.chunked_array([arrow]), len(values)).tolist() == objects.tolist()
        assert trimmed_text(arrow).to_pylist() == objects.tolist()


def test_feature_table_finds_arrow_text_as_it_finds_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    geo = {"version": "1.0.0", "primary_column": "geometry", "columns": {"geometry": {}}}
    table = pa.table(
        {"Use": ["a", "b"], "geometry": shapely.to_wkb(shapely.points([0, 1], [0, 1]))}
    ).replace_schema_metadata({b"geo": json.dumps(geo).encode()})
    pq.write_table(table, path)
    features = read_features(path)
    assert features.arrow_text("use").to_pylist() == ["a", "b"]  # case-insensitive
    assert features.arrow_text("missing") is None and features.arrow_text(None) is None


def _buildings(n: int = 5) -> Buildings:
    squares = shapely.box(np.arange(n), 0, np.arange(n) + 0.5, 0.5)
    text = np.array([f"u{i}" for i in range(n)], dtype=object)
    return Buildings(
        ids=np.array([f"b{i}" for i in range(n)], dtype=object),
        footprints=EncodedFootprints(shapely.to_wkb(squares)),
        height=np.full(n, 10.0),
        floors=np.full(n, np.nan),
        base=np.zeros(n),
        name=np.full(n, "", dtype=object),
        use=text,
        roof_type=np.full(n, "flat", dtype=object),
        arrow_text={"use": pa.array(text.tolist()), "ids": pa.array([f"b{i}" for i in range(n)])},
    )


def test_twins_follow_selections_and_are_dropped_when_replaced() -> None:
    b = _buildings()
    for index in (np.array([4, 0, 2]), np.array([True, False, True, False, True]), slice(1, 3)):
        taken = b.take(index)
        for column in ("use", "ids"):
            assert taken.arrow_text[column].to_pylist() == getattr(taken, column).tolist()
    replaced = b.replace(use=np.array(["x"] * 5, dtype=object))
    assert set(replaced.arrow_text) == {"ids"}
    assert set(b.replace(height=np.ones(5)).arrow_text) == {"use", "ids"}
    with pytest.raises(ValueError, match="arrow_text 'use'"):
        b.replace(arrow_text={"use": pa.array(["x"])})
    with pytest.raises(ValueError, match="arrow_text 'height'"):
        b.replace(arrow_text={"height": pa.array(["x"] * 5)})


def test_a_build_stores_the_ids_it_renamed_and_the_trimmed_text(tmp_path: Path) -> None:
    """Duplicate ids renamed, a missing id made, padded text trimmed: the partitions
    and buildings.parquet (which take the Arrow twins) hold what the build decided."""
    (tmp_path / "data").mkdir()
    n = 6
    squares = shapely.box(
        np.arange(n) * 0.001 + 116.0, 39.9, np.arange(n) * 0.001 + 116.0004, 39.9004
    )
    geo = {"version": "1.0.0", "primary_column": "geometry", "columns": {"geometry": {}}}
    table = pa.table(
        {
            "id": ["a", "a", " b ", None, "c", "d"],
            "use": [" 住宅 ", "办公", None, "商业", "住宅", "住宅"],
            "height": [10.0] * n,
            "geometry": shapely.to_wkb(squares),
        }
    ).replace_schema_metadata({b"geo": json.dumps(geo).encode()})
    pq.write_table(table, tmp_path / "data" / "b.parquet")
    toml = tmp_path / "city.toml"
    toml.write_text(
        '[city]\nname = "t"\n[buildings]\npath = "data/b.parquet"\nid = "id"\n', encoding="utf-8"
    )
    build_project(toml, jobs=1, progress=False)
    out = pq.read_table(tmp_path / "output" / "buildings.parquet").to_pylist()
    got = sorted((r["id"], r["use"]) for r in out)
    assert got == sorted(
        [("a", "住宅"), ("a~2", "办公"), ("b", ""), ("b-3", "商业"), ("c", "住宅"), ("d", "住宅")]
    )
    parts = tmp_path / "output" / "work" / "buildings"
    stored = pa.concat_tables([pq.read_table(p) for p in sorted(parts.glob("part-*.parquet"))])
    assert sorted(stored.column("id").to_pylist()) == [g[0] for g in got]
