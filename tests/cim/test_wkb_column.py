"""Footprints' WKB held as Arrow (cim.model.WkbColumn): selections stay Arrow, values
become bytes only when read, and gathers past Arrow's 32-bit offsets keep working."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest
import shapely

import cim.model as model
from cim.model import EncodedFootprints, WkbColumn, as_wkb_arrow, take_binary
from tiling.buildings.footprints import gather_wkb


def _wkb(n: int) -> np.ndarray:
    boxes = shapely.box(np.arange(n), 0, np.arange(n) + 0.5, 1)
    return shapely.to_wkb(boxes)


def test_selections_stay_arrow_and_read_as_bytes() -> None:
    wkb = _wkb(6)
    column = WkbColumn(pa.chunked_array([pa.array(wkb[:4]), pa.array(wkb[4:])]))
    assert len(column) == 6 and column[5] == wkb[5]
    for index in (np.array([5, 0, 3]), np.array([True, False] * 3), slice(1, 4)):
        picked = column[index]
        assert isinstance(picked, WkbColumn)
        assert picked.tolist() == wkb[index].tolist()
    # shapely reads it as it reads an object array
    decoded = EncodedFootprints(column).decode()
    assert shapely.equals(decoded, shapely.from_wkb(wkb)).all()
    assert as_wkb_arrow(column) is column.arrow
    assert as_wkb_arrow(wkb).to_pylist() == wkb.tolist()


def test_gather_puts_parts_together_with_nulls_where_none() -> None:
    wkb = _wkb(5)
    parts = [
        (np.array([4, 0]), WkbColumn(pa.array([wkb[4], wkb[0]], pa.binary()))),
        (np.array([2]), wkb[[2]]),  # an object array part, as the cache's tests make
    ]
    gathered = gather_wkb(5, parts)
    assert gathered.tolist() == [wkb[0], None, wkb[2], None, wkb[4]]


def test_gather_composes_a_part_selected_and_not_gathered_yet() -> None:
    wkb = _wkb(9)
    cache = WkbColumn(pa.chunked_array([pa.array(wkb[:4]), pa.array(wkb[4:])]))
    # the last build's repairs, rows 7, 1, none and 5 of them, for city rows 0, 2, 3, 6
    selected = cache[np.array([7, 1, 5])]
    selected = WkbColumn(*selected.selection()[:1], np.array([7, 1, -1, 5]))
    parts = [
        (np.array([0, 2, 3, 6]), selected),
        (np.array([5]), WkbColumn(pa.array([wkb[8]], pa.binary()))),
        (np.array([1]), wkb[[0]]),
    ]
    gathered = gather_wkb(7, parts)
    arrow, rows = gathered.selection()
    assert rows is not None  # not gathered yet: the selection composed
    assert sum(len(c) for c in arrow.chunks) == 11  # the cache's values, not a copy
    assert gathered.tolist() == [wkb[7], wkb[0], wkb[1], None, None, wkb[8], wkb[5]]


def test_a_gather_past_the_offset_limit_keeps_binary_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wkb = _wkb(7)
    values = pa.chunked_array([pa.array(wkb[:3]), pa.array(wkb[3:])])
    index = np.array([6, -1, 0, 3, 3, 1])
    small = take_binary(values, index)
    # as if the values held more than the limit: gathered as large_binary, cut again
    monkeypatch.setattr(model, "BINARY_TAKE_LIMIT", 5 * len(wkb[0]))
    monkeypatch.setattr(model, "BINARY_CHUNK_ROWS", 4)
    large = take_binary(values, index)
    assert large.type == pa.binary() and [len(c) for c in large.chunks] == [4, 2]
    assert large.to_pylist() == small.to_pylist()
    assert large.to_pylist() == [wkb[6], None, wkb[0], wkb[3], wkb[3], wkb[1]]


def test_a_large_gather_cuts_its_chunks_by_bytes_too(monkeypatch: pytest.MonkeyPatch) -> None:
    wkb = _wkb(9)
    values = pa.chunked_array([pa.array(wkb[:2]), pa.array(wkb[2:5]), pa.array(wkb[5:])])
    monkeypatch.setattr(model, "BINARY_TAKE_LIMIT", 2 * len(wkb[0]))  # two footprints
    large = take_binary(values, np.arange(9)[::-1])
    assert [len(c) for c in large.chunks] == [2, 2, 2, 2, 1]
    assert large.to_pylist() == wkb[::-1].tolist()


def test_a_gather_takes_each_chunk_by_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """Arrow's take of a chunked array joins every chunk first (the whole column copied
    for a tile's few rows): each chunk gives its own rows instead."""
    wkb = _wkb(40)
    values = pa.chunked_array([pa.array(wkb[a : a + 10]) for a in range(0, 40, 10)])
    joined: list[int] = []
    real = pa.concat_arrays

    def concat(arrays: list[pa.Array]) -> pa.Array:
        joined.append(len(arrays))
        return real(arrays)

    monkeypatch.setattr(pa, "concat_arrays", concat)
    index = np.array([39, 1, -1, 14])  # a tile's few rows of a long column
    assert take_binary(values, index).to_pylist() == [wkb[39], wkb[1], None, wkb[14]]
    assert joined == [4]  # the nulls and three chunks' own rows, not the column
    assert take_binary(values, np.zeros(0, np.int64)).to_pylist() == []


def test_selections_compose_and_gather_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The build's selections (pieces in row order, rows kept, Hilbert order) cost one
    gather of the bytes; a selection pickles as its own values, not the column's."""
    import pickle

    wkb = _wkb(8)
    parts = [(np.array([6, 1, 3]), wkb[[6, 1, 3]]), (np.array([0, 7, 5]), wkb[[0, 7, 5]])]
    gathers: list[int] = []
    real = model.take_binary
    monkeypatch.setattr(
        model, "take_binary", lambda v, i, **kw: gathers.append(len(i)) or real(v, i, **kw)
    )
    column = gather_wkb(8, parts)  # rows 2 and 4: none
    kept = column[np.array([True, True, False, True, False, True, True, True])]
    ordered = kept[np.array([5, 0, 2, 4, 1, 3])]
    assert gathers == []  # nothing gathered yet
    assert ordered[1] == wkb[0] and column[2] is None  # one row read without a gather
    expected = [wkb[i] for i in (7, 0, 3, 6, 1, 5)]
    assert ordered.tolist() == expected and gathers == [6]
    ordered.gather()  # gathered: not again
    assert np.asarray(ordered).tolist() == expected and gathers == [6]
    copy = pickle.loads(pickle.dumps(kept[np.array([0])]))
    assert len(pickle.dumps(kept[np.array([0])])) < len(pickle.dumps(column.arrow))
    assert copy.tolist() == [wkb[0]] and column[4] is None and len(column) == 8
    # read slice by slice (the repair cache's writer): each slice gathers its own rows
    # from the parts (never the whole column beside the copy the build keeps)
    gathers.clear()
    pieces = gather_wkb(8, parts)
    by_chunk: list[int] = []

    class Rows(model._ChunkRows):  # each chunk's own rows taken (Arrow's take joins)
        def __init__(self, chunks: list[pa.Array], index: np.ndarray) -> None:
            by_chunk.append(len(index))
            super().__init__(chunks, index)

    monkeypatch.setattr(model, "_ChunkRows", Rows)
    assert pieces[0:4].tolist() + pieces[4:8].tolist() == column.tolist()
    assert gathers == [4, 4] and by_chunk == [4, 4] and pieces[2:2].tolist() == []


def _chunked(sizes: list[int], width: int = 0) -> tuple[WkbColumn, list[bytes]]:
    """A column of chunks of ``sizes`` rows (each value padded to ``width`` bytes), held
    by the column alone, and its values."""
    values = [bytes([i % 251]) * max(width, 1) + str(i).encode() for i in range(sum(sizes))]
    ends = np.cumsum([0, *sizes])
    chunks = [pa.array(values[a:b], pa.binary()) for a, b in itertools.pairwise(ends)]
    return WkbColumn(pa.chunked_array(chunks, pa.binary())), values


@pytest.mark.parametrize("order", ["ascending", "shuffled"])
def test_consume_gives_each_part_as_a_selection_would(order: str) -> None:
    column, values = _chunked([7, 1, 12, 5])
    rows = np.arange(25, dtype=np.int64)
    if order == "shuffled":
        rows = np.random.default_rng(3).permutation(rows)
    rows[[2, 9]] = -1  # rows with no value: null
    selection = WkbColumn(column.arrow, rows)
    expected = [None if r < 0 else values[r] for r in rows.tolist()]
    parts = [part.to_pylist() for part in selection.consume(4)]
    assert [len(p) for p in parts] == [4] * 6 + [1]
    assert [v for p in parts for v in p] == expected
    assert len(selection) == 0  # consumed


@pytest.mark.parametrize("size", [1, 3, 4, 8, 25, 40])
def test_consume_without_a_selection_gives_compact_parts_in_order(size: int) -> None:
    """Every value in order (a full build's stored WKB): parts copied out of the chunks
    they span, no index of the rows made; a part is an array of its own (a slice would
    be pickled with its whole chunk into the repair's task)."""
    column, values = _chunked([7, 0, 1, 12, 5], width=3)
    parts = list(column.consume(size))
    assert [v for p in parts for v in p.to_pylist()] == values
    assert [len(p) for p in parts[:-1]] == [size] * (len(parts) - 1)
    for part in parts:
        assert isinstance(part, pa.BinaryArray) and part.offset == 0
        assert part.buffers()[2].size == sum(len(v) for v in part.to_pylist())
    assert len(column) == 0  # consumed


def test_consume_lets_go_of_the_chunks_the_rows_have_passed() -> None:
    before = pa.total_allocated_bytes()
    column, _ = _chunked([1000] * 4, width=1000)  # about 1 MB a chunk
    held = pa.total_allocated_bytes() - before
    assert held > 4_000_000
    parts = column.consume(500)
    left = []
    for _ in range(4):  # the rows of the first two chunks
        next(parts)
        left.append(pa.total_allocated_bytes() - before)
    # the first chunk (1 MB) went after the second part, the second after the fourth
    # (the generator holds the last part it gave, 0.5 MB)
    assert left[1] < held - 400_000 and left[3] < held - 1_400_000
    assert sum(1 for _ in parts) == 4


def test_consume_gives_the_freed_pages_back_once_per_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Arrow's pool keeps what it freed: each chunk let go is handed back to the system
    (the repair's results, allocated elsewhere, cannot reuse those pages)."""
    import cim.memory

    calls: list[int] = []
    monkeypatch.setattr(cim.memory, "release_unused", lambda: calls.append(1))
    column, _ = _chunked([10, 10, 10])
    parts = column.consume(5)
    given = []
    for _ in parts:
        given.append(len(calls))
    assert given == [0, 1, 1, 2, 2, 3]  # after the parts that pass chunks 1, 2 and 3


@pytest.mark.parametrize("limit_rows", [None, 6])
def test_a_consuming_gather_gives_what_a_gather_gives(
    monkeypatch: pytest.MonkeyPatch, limit_rows: int | None
) -> None:
    column, values = _chunked([7, 1, 12, 5, 9])
    monkeypatch.setattr(model, "WHOLE_SHARE", 0)  # never joined by Arrow
    if limit_rows:  # a result of several pieces
        monkeypatch.setattr(model, "BINARY_CHUNK_ROWS", limit_rows)
    rows = np.random.default_rng(5).permutation(34).astype(np.int64)
    rows[[0, 11, 20]] = -1
    expected = take_binary(column.arrow, rows)
    selection = WkbColumn(column.arrow, rows)
    del column
    selection.gather(consume=True)
    arrow, left = selection.selection()
    assert left is None and arrow.to_pylist() == expected.to_pylist()
    assert arrow.to_pylist() == [None if r < 0 else values[r] for r in rows.tolist()]
    pieces = arrow.chunks if isinstance(arrow, pa.ChunkedArray) else [arrow]
    assert [len(p) for p in pieces] == ([6] * 5 + [4] if limit_rows else [34])


def test_a_consuming_gather_lets_go_of_each_chunk_as_it_goes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cim.memory

    monkeypatch.setattr(model, "WHOLE_SHARE", 0)
    monkeypatch.setattr(model, "RELEASE_BYTES", 1)  # given back after every chunk
    before = pa.total_allocated_bytes()
    column, _ = _chunked([1000] * 4, width=1000)  # about 1 MB a chunk
    held = pa.total_allocated_bytes() - before
    seen: list[int] = []  # what the pool held as each chunk was let go
    monkeypatch.setattr(
        cim.memory, "release_unused", lambda: seen.append(pa.total_allocated_bytes() - before)
    )
    selection = column[np.arange(4000)[::-1]]
    del column
    selection.gather(consume=True)
    assert len(seen) == 5  # after each chunk, and after the one piece of the result
    # never the source and the result both whole: at most one chunk (1 MB) over the city
    assert max(seen) < held + 1_100_000
    assert pa.total_allocated_bytes() - before < held + 100_000  # the result alone


def test_a_gather_not_consuming_leaves_the_source_to_its_other_holders() -> None:
    column, values = _chunked([3, 4])
    selection = column[np.array([6, 0, 3])]
    selection.gather()
    assert selection.tolist() == [values[6], values[0], values[3]]
    assert column.tolist() == values  # the source is untouched
