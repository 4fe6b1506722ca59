"""L2 tile tasks name their rows in a file written for a group of tiles.

What a worker reads is what a task carrying its rows held, column for column and type
for type; the tileset is the same byte for byte; the files go as their tiles are
encoded, and when a run fails; and what is sent to a worker no longer grows with its
tile's buildings.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from test_l2 import city

from cim.model import Buildings
from tiling.buildings import l2, rowfiles
from tiling.buildings.l2 import L2Options, write_l2
from tiling.buildings.rowfiles import RowsFiles, groups

OPTIONS = L2Options(max_features_per_tile=40)


def _city() -> Buildings:
    """Extra columns of every kind a rows file holds, and one it cannot (text Arrow
    cannot hold: a lone surrogate), which the tasks carry."""
    b = city(300, seed=11)
    n = len(b)
    i = np.arange(n)
    return replace(
        b,
        extra={
            "ratio": np.where(i % 7 == 0, np.nan, i / 3.0),
            "storeys": (i % 9).astype(np.int64),
            "listed": i % 4 == 0,
            "zone": np.array([f"区{k % 5}" for k in range(n)], dtype=object),
            "odd": np.array(["\ud800" if k == 17 else f"o{k}" for k in range(n)], dtype=object),
        },
    )


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _same_task(got: l2._TileTask, want: l2._TileTask) -> None:
    assert (got.key, got.digest, got.shared) == (want.key, want.digest, want.shared)
    assert np.asarray(got.footprints).tolist() == np.asarray(want.footprints).tolist()
    for got_values, want_values in ((got.base, want.base), (got.height, want.height)):
        assert got_values.dtype == want_values.dtype
        assert np.array_equal(got_values, want_values)
    assert got.table.keys() == want.table.keys()
    for key, want_values in want.table.items():
        got_values = got.table[key]
        assert type(got_values) is type(want_values), key
        if isinstance(want_values, pa.Array):
            assert got_values.equals(want_values), key
        elif want_values.dtype.kind == "f":
            assert got_values.dtype == want_values.dtype, key
            assert np.array_equal(got_values, want_values, equal_nan=True), key
        else:
            assert got_values.dtype == want_values.dtype, key
            assert got_values.tolist() == want_values.tolist(), key


@pytest.fixture
def small_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files of about a hundred rows: a small city makes several."""
    monkeypatch.setattr(rowfiles, "ROWS_PER_FILE", 100)


def test_a_task_read_from_its_rows_file_holds_what_a_task_with_its_rows_held(
    small_files: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    compared: list[str] = []
    real = l2._Tasks.with_rows

    def check(self, jobs_list, digests, files) -> Iterator:
        by_key = {j.key: j for j in jobs_list}
        for task in real(self, jobs_list, digests, files):
            assert isinstance(task, l2._TileRef)
            _same_task(task.load(), self.make(by_key[task.key], digests[task.key]))
            compared.append(task.key)
            yield task

    monkeypatch.setattr(l2._Tasks, "with_rows", check)
    figures = write_l2(_city(), tmp_path / "files", OPTIONS)
    assert len(compared) == figures["tiles"] > 5
    monkeypatch.undo()
    # the same tileset when every task carries its rows

    def carried(self, jobs_list, digests, files) -> Iterator:
        return (self.make(j, digests[j.key]) for j in jobs_list)

    monkeypatch.setattr(l2._Tasks, "with_rows", carried)
    assert write_l2(_city(), tmp_path / "carried", OPTIONS) == figures
    assert _files(tmp_path / "files") == _files(tmp_path / "carried")


def test_a_task_sent_to_a_worker_does_not_carry_its_rows(
    small_files: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sizes: list[tuple[int, int]] = []
    real = l2._Tasks.with_rows

    def measure(self, jobs_list, digests, files) -> Iterator:
        by_key = {j.key: j for j in jobs_list}
        for task in real(self, jobs_list, digests, files):
            carried = self.make(by_key[task.key], digests[task.key])
            frame = len(pickle.dumps(task.shared))
            sizes.append((len(pickle.dumps(task)) - frame, len(pickle.dumps(carried)) - frame))
            yield task

    monkeypatch.setattr(l2._Tasks, "with_rows", measure)
    b = city(300, seed=11)
    write_l2(b, tmp_path, OPTIONS)
    assert len(sizes) > 5
    # beside the frame every task shares: the key, the file and the batch, however
    # many buildings the tile holds (up to 40, 2 kB and more of rows)
    assert max(sent for sent, _ in sizes) < 400
    assert max(carried for _, carried in sizes) > 2000


def test_the_rows_files_go_as_their_tiles_are_encoded(
    small_files: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[int] = []
    encode = l2._encode_tile

    def count(task):
        seen.append(len(list(tmp_path.glob(".tile-rows-*/*.arrow"))))
        return encode(task)

    monkeypatch.setattr(l2, "_encode_tile", count)
    write_l2(_city(), tmp_path, OPTIONS)
    # in this process tiles are encoded one after another: a group's file is gone
    # before the next is written
    assert len(seen) > 5 and set(seen) == {1}
    assert not list(tmp_path.glob(".tile-rows-*"))


def test_a_failed_run_leaves_no_rows_file(
    small_files: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = []
    encode = l2._encode_tile

    def fail_at_the_fourth(task):
        calls.append(task)
        if len(calls) == 4:
            raise RuntimeError("encoder failed")
        return encode(task)

    monkeypatch.setattr(l2, "_encode_tile", fail_at_the_fourth)
    with pytest.raises(RuntimeError, match="encoder failed"):
        write_l2(_city(), tmp_path, OPTIONS)
    assert not list(tmp_path.glob(".tile-rows-*"))


def test_tasks_are_grouped_until_a_group_has_its_rows() -> None:
    assert list(groups([3, 3, 3, 10, 1], 5)) == [[0, 1], [2, 3], [4]]
    assert list(groups([7, 0, 2], 5)) == [[0], [1, 2]]
    assert list(groups([], 5)) == []


def test_a_rows_file_goes_after_its_last_task_and_a_folder_is_its_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    batch = pa.RecordBatch.from_pydict({"v": pa.array(range(6))})
    files, other = RowsFiles(tmp_path), RowsFiles(tmp_path)
    assert files.folder != other.folder and files.folder.parent == tmp_path
    refs = files.write(["a", "b", "c"], batch, [1, 0, 5])
    assert [r.read()["v"].to_pylist() for r in refs] == [[0], [], [1, 2, 3, 4, 5]]
    path = Path(refs[0].path)
    files.done("a")
    files.done("c")
    assert path.exists()
    files.done("b")
    assert not path.exists()
    left = files.write(["d"], batch, [6])
    files.close()
    assert not Path(left[0].path).exists() and not files.folder.exists()
    # a file it did not write stays, and so does its folder
    other.write(["e"], batch, [6])
    (other.folder / "notes.txt").write_text("not ours")
    with caplog.at_level(logging.WARNING):
        other.close()
    assert (other.folder / "notes.txt").read_text() == "not ours"
    assert list(other.folder.iterdir()) == [other.folder / "notes.txt"]
    assert "could not remove" in caplog.text
