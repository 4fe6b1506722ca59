"""Tile tasks' rows written once to Arrow IPC files that the workers read.

A task that carries its rows is pickled by the build process and sent through the
pool's pipes or Dask's comms, then unpickled by the worker: about 200 bytes a
building, a tenth of the build process's time while the tiles encode. Instead, the
rows of a group of tasks are taken at once (one gather per column, not one per tile)
and written to one file, a record batch per task; a task names its file and batch
(:class:`RowsRef`) and its worker reads that batch. The workers already share the
output folder (they write the tiles), so they share these files too.

A group's file is written just before its tasks are handed out, while the workers
encode the groups before it, and removed once its tasks are done: the files never
hold more than the groups in flight.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

log = logging.getLogger(__name__)

#: Rows a file holds before it is closed (its group ends at the task that reaches
#: them): about 16 MB of buildings, a few dozen tiles.
ROWS_PER_FILE = 1 << 16


@dataclass(frozen=True)
class RowsRef:
    """Where a task's rows are: record batch ``batch`` of the IPC file ``path``."""

    path: str
    batch: int

    def read(self) -> pa.RecordBatch:
        """The task's rows (read into memory: the file may go once the task is done)."""
        with pa.OSFile(self.path) as source:
            return pa.ipc.open_file(source).get_batch(self.batch)


def groups(sizes: Iterable[int], rows_per_file: int | None = None) -> Iterator[list[int]]:
    """Consecutive task positions, grouped so that each group holds at least
    ``rows_per_file`` rows (default :data:`ROWS_PER_FILE`; the last group: what is
    left)."""
    rows_per_file = ROWS_PER_FILE if rows_per_file is None else rows_per_file
    group: list[int] = []
    rows = 0
    for position, size in enumerate(sizes):
        group.append(position)
        rows += size
        if rows >= rows_per_file:
            yield group
            group, rows = [], 0
    if group:
        yield group


class RowsFiles:
    """The files of one run of tasks, in a folder of their own made in ``parent``.

    :meth:`write` writes a group's rows and gives each task its :class:`RowsRef`;
    :meth:`done` counts a task finished and removes its file after the group's last;
    :meth:`close` removes whatever is left, and the folder.
    """

    def __init__(self, parent: Path) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix=".tile-rows-", dir=parent))
        self._left: dict[str, int] = {}  # file → tasks not done yet
        self._file_of: dict[str, str] = {}  # task key → file
        self._count = itertools.count()

    def write(self, keys: list[str], batch: pa.RecordBatch, sizes: list[int]) -> list[RowsRef]:
        """Write ``batch`` (the tasks' rows, one after another, ``sizes`` rows each) as
        one record batch per task; the tasks' references, in order."""
        path = self.folder / f"rows-{next(self._count):05d}.arrow"
        with pa.ipc.new_file(str(path), batch.schema) as writer:
            start = 0
            for size in sizes:
                writer.write_batch(batch.slice(start, size))
                start += size
        self._left[str(path)] = len(keys)
        self._file_of.update(dict.fromkeys(keys, str(path)))
        return [RowsRef(str(path), i) for i in range(len(keys))]

    def done(self, key: str) -> None:
        """Task ``key`` is finished: its file goes once every task reading it is."""
        path = self._file_of.pop(key, None)
        if path is None:
            return
        self._left[path] -= 1
        if not self._left[path]:
            del self._left[path]
            Path(path).unlink(missing_ok=True)

    def close(self) -> None:
        """Remove the files still there and the folder (a failed or stopped run)."""
        for path in self._left:
            Path(path).unlink(missing_ok=True)
        self._left.clear()
        self._file_of.clear()
        try:
            self.folder.rmdir()
        except OSError as exc:  # not empty: something else wrote there; leave it
            log.warning("could not remove %s: %s", self.folder.name, exc)
