"""Observations as columns: how a batch of checked readings travels into the store.

Ingest handles tens of thousands of readings per second, so a batch is a set of
columns (one list per field) rather than one object per reading: the columns are
turned into the store's rows with C-level ``map``/``zip``, grouped per datastream with
numpy, and a column that is empty for the whole batch is left out of the ``INSERT``
(binding NULLs costs as much as binding values).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from operator import itemgetter
from typing import Any

import numpy as np

#: the optional columns of a batch (None: empty for the whole batch)
OPTIONAL = (
    "phenomenon_time_end",
    "result_time",
    "result_quality",
    "valid_time_start",
    "valid_time_end",
    "parameters",
    "foi_id",
    "key",
)


def take(values: Sequence[Any], index: Sequence[int]) -> list[Any]:
    """``values`` at positions ``index`` (C-level; an empty or single index works too)."""
    if len(index) == 0:
        return []
    if len(index) == 1:
        return [values[index[0]]]
    return list(itemgetter(*index)(values))


def empty(column: Sequence[Any] | None) -> bool:
    """Whether a column is absent or None throughout."""
    if column is None:
        return True
    values = column if isinstance(column, list) else list(column)
    return values.count(None) == len(values)


@dataclass
class ObservationBatch:
    """Checked observations as columns of equal length (times in µs since the epoch).

    A column left as None is empty (NULL) for every reading of the batch.
    """

    datastream_id: list[int]
    phenomenon_time: list[int]
    result: list[Any]
    phenomenon_time_end: list[int | None] | None = None
    result_time: list[int | None] | None = None
    result_quality: list[Any] | None = None
    valid_time_start: list[int | None] | None = None
    valid_time_end: list[int | None] | None = None
    parameters: list[dict[str, Any] | None] | None = None
    foi_id: list[int | None] | None = None
    key: list[str | None] | None = None

    def __post_init__(self) -> None:
        for name in OPTIONAL:  # all-None columns stay out of the INSERT
            if empty(getattr(self, name)):
                setattr(self, name, None)

    def __len__(self) -> int:
        return len(self.datastream_id)

    @classmethod
    def from_rows(cls, rows: Sequence[Any]) -> ObservationBatch:
        """A batch from :class:`~layers.store.base.ObservationRow` objects."""
        return cls(**{f.name: [getattr(r, f.name) for r in rows] for f in fields(cls)})

    def rows(self) -> list[Any]:
        """One :class:`~layers.store.base.ObservationRow` per reading (for listeners)."""
        from layers.store.base import ObservationRow

        n = len(self)
        cols = [getattr(self, f.name) or [None] * n for f in fields(self)]
        names = [f.name for f in fields(self)]
        return [
            ObservationRow(**dict(zip(names, vals, strict=True)))
            for vals in zip(*cols, strict=True)
        ]

    def column(self, name: str) -> list[Any]:
        """A column, with None throughout where the batch leaves it empty."""
        col = getattr(self, name)
        return [None] * len(self) if col is None else col


def result_columns_bulk(results: list[Any]) -> tuple[list[str], list[Any], list[Any] | None]:
    """The stored forms of many results: JSON texts, numbers, strings (None: all NULL).

    Like :func:`layers.store.base.result_columns` one by one; batches of plain numbers
    (the common case) take C-level paths.
    """
    types = set(map(type, results))
    if types <= {float, int} and results:
        floats = results if types == {float} else list(map(float, results))
        if float not in types or bool(np.isfinite(np.asarray(floats, dtype=np.float64)).all()):
            # repr of an int or a finite float is its JSON text
            return list(map(repr, results)), floats, None
    from layers.store.base import result_columns

    text, num, string = (list(c) for c in zip(*map(result_columns, results), strict=True))
    return text, num, None if string.count(None) == len(string) else string


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def _params_json(value: Any) -> str | None:
    return None if not value else json.dumps(value, ensure_ascii=False)


def insert_columns(ids: list[int], batch: ObservationBatch) -> tuple[list[str], list[list[Any]]]:
    """The ``observations`` columns to insert and their values, empty columns left out."""
    text, num, string = result_columns_bulk(batch.result)
    names = ["id", "datastream_id", "phenomenon_time", "result", "result_num"]
    cols: list[list[Any]] = [ids, batch.datastream_id, batch.phenomenon_time, text, num]
    if string is not None:
        names.append("result_str")
        cols.append(string)
    plain = {
        "phenomenon_time_end": "phenomenon_time_end",
        "result_time": "result_time",
        "valid_time_start": "valid_time_start",
        "valid_time_end": "valid_time_end",
        "foi_id": "foi_id",
        "key": "client_key",
    }
    for attr, column in plain.items():
        values = getattr(batch, attr)
        if values is not None:
            names.append(column)
            cols.append(values)
    if batch.result_quality is not None:
        names.append("result_quality")
        cols.append(list(map(_json_or_none, batch.result_quality)))
    if batch.parameters is not None:
        names.append("parameters")
        cols.append(list(map(_params_json, batch.parameters)))
    return names, cols


@dataclass
class Latest:
    """Per datastream of a batch: the span of its readings and its newest reading."""

    datastream_id: list[int]
    span_start: list[int]
    span_end: list[int]
    newest: list[int]  # position in the batch


def latest_per_stream(batch: ObservationBatch, fresh: np.ndarray | None) -> Latest:
    """Group the fresh readings by datastream (numpy sort, no per-row Python).

    The newest reading of a datastream is the one with the latest phenomenon time; on
    a tie the later one in the batch wins.
    """
    ds = np.asarray(batch.datastream_id, dtype=np.int64)
    start = np.asarray(batch.phenomenon_time, dtype=np.int64)
    if batch.phenomenon_time_end is None:
        end = start
    else:
        end = np.array(
            [
                e if e is not None else s
                for e, s in zip(batch.phenomenon_time_end, start.tolist(), strict=True)
            ],
            dtype=np.int64,
        )
    pos = np.arange(len(ds))
    if fresh is not None:
        ds, start, end, pos = ds[fresh], start[fresh], end[fresh], pos[fresh]
    if len(ds) == 0:
        return Latest([], [], [], [])
    order = np.lexsort((pos, start, ds))  # by datastream, then time, then position
    ds_sorted = ds[order]
    first = np.flatnonzero(np.r_[True, ds_sorted[1:] != ds_sorted[:-1]])
    last = np.r_[first[1:] - 1, len(order) - 1]
    return Latest(
        datastream_id=ds_sorted[first].tolist(),
        span_start=start[order][first].tolist(),
        span_end=np.maximum.reduceat(end[order], first).tolist(),
        newest=pos[order][last].tolist(),
    )
