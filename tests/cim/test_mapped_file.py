"""Files read through a mapping give their pages back as they are consumed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from cim import model
from cim.memory import drop_mapped, map_file
from cim.model import take_binary_consuming


def _resident_kb(address: int) -> int:
    """The resident kB of the mapping of this process that holds ``address``."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(a, 16) for a in head.split("-"))
            inside = lo <= address < hi
        elif inside and head == "Rss:":
            return int(line.split()[1])
    raise AssertionError("no mapping holds the address")


def _write(path: Path, rows: int = 64, size: int = 64 * 1024) -> list[bytes]:
    values = [os.urandom(size) for _ in range(rows)]
    table = pa.table({"wkb": pa.array(values, pa.binary())})
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
        for start in range(0, rows, 16):  # four record batches: four chunks
            out.write_table(table.slice(start, 16))
    return values


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="Linux /proc")
def test_dropped_pages_leave_the_process_and_read_back_the_same(tmp_path: Path) -> None:
    values = _write(tmp_path / "f.arrow")
    buffer = map_file(tmp_path / "f.arrow")
    column = pa.ipc.open_file(pa.BufferReader(buffer)).read_all().column("wkb")
    assert column.to_pylist() == values  # every page read
    assert _resident_kb(buffer.address) >= 4000
    for chunk in column.chunks:
        drop_mapped(chunk)
    assert _resident_kb(buffer.address) < 200
    assert column.to_pylist() == values  # from the page cache again


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="Linux /proc")
@pytest.mark.parametrize("limit", [1 << 20, 1 << 30])  # chunk by chunk; joined
def test_a_consuming_gather_of_a_mapped_file_gives_its_pages_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    monkeypatch.setattr(model, "BINARY_TAKE_LIMIT", limit)
    values = _write(tmp_path / "f.arrow")
    buffer = map_file(tmp_path / "f.arrow")
    chunks = pa.ipc.open_file(pa.BufferReader(buffer)).read_all().column("wkb").chunks
    for chunk in chunks:
        assert chunk.to_pylist()  # read: resident
    order = np.arange(len(values))[::-1].copy()
    taken = take_binary_consuming(list(chunks), order)
    assert taken.to_pylist() == [values[i] for i in order]
    assert _resident_kb(buffer.address) < 200


def test_an_array_of_no_mapping_is_left_alone() -> None:
    array = pa.array([b"abc", None, b"de"], pa.binary())
    drop_mapped(array)
    assert array.to_pylist() == [b"abc", None, b"de"]


def test_an_empty_or_missing_file_cannot_be_mapped(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ValueError):
        map_file(tmp_path / "empty")
    with pytest.raises(OSError):
        map_file(tmp_path / "missing")
