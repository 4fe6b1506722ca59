"""Group commit: concurrent transitions share one transaction and one durable commit.

Every transition must be on disk before it is acknowledged (SQLite ``synchronous=FULL``,
PostgreSQL's synchronous commit), so a commit costs one fsync of the log, and a store
that commits each transition on its own is bound by the disk: ~1.5–5 ms a sync is
200–600 transitions/s at best, far less on a loaded disk. :class:`GroupCommit` queues
the transitions that arrive while a commit is under way and hands the whole queue to
the next commit: a batch of N transitions costs one transaction and one fsync, each
still checked and applied on its own (one that is refused fails alone), and each
caller returns only once the batch holding its transition has committed.

It is the leader/follower scheme of database group commits (no thread of its own): the
caller that finds no commit running leads, applying the queue as it is; the others
wait on their slot. A leader that finishes hands leadership to the oldest waiting slot,
so no caller serves others for longer than its own batch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: most transitions in one commit (keeps a transaction, its locks and its statements short)
MAX_BATCH = 64


class _Slot(Generic[T]):
    """One caller's request, its outcome and the event it waits on."""

    __slots__ = ("error", "finished", "item", "result", "wake")

    def __init__(self, item: T) -> None:
        self.item = item
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished = False
        self.wake = threading.Event()


class GroupCommit(Generic[T, R]):
    """Apply concurrently submitted items in batches, one commit per batch.

    Parameters
    ----------
    apply : callable
        ``apply(items) -> outcomes``: applies the batch in one transaction and returns,
        once it has committed, one outcome per item in order: a result, or the
        exception instance that item alone failed with. It raises only when nothing of
        the batch was committed; every item of the batch then fails with that error.
    max_batch : int
        Most items in one batch.
    """

    def __init__(self, apply: Callable[[list[T]], Sequence[Any]], max_batch: int = MAX_BATCH):
        self._apply = apply
        self._max = max(1, max_batch)
        self._lock = threading.Lock()
        self._pending: list[_Slot[T]] = []
        self._busy = False
        #: batches applied and items in them (for the bench and the tests)
        self.batches = 0
        self.items = 0

    def submit(self, item: T) -> R:
        """Apply ``item`` (in some batch) and return its result once committed.

        Raises
        ------
        Exception
            The error this item failed with, or the batch's when its commit failed.
        """
        slot: _Slot[T] = _Slot(item)
        with self._lock:
            self._pending.append(slot)
            lead = not self._busy
            self._busy = True
        if not lead:
            slot.wake.wait()
        if not slot.finished:  # leading (first, or handed over): our slot is first in line
            self._lead()
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[no-any-return]

    def _lead(self) -> None:
        """Apply the queue's oldest batch; then hand over to the next waiting slot."""
        with self._lock:
            batch = self._pending[: self._max]
            del self._pending[: self._max]
        try:
            self._run(batch)
        finally:
            with self._lock:
                nxt = self._pending[0] if self._pending else None
                self._busy = nxt is not None  # still busy: nxt leads next
            for s in batch:
                s.finished = True
                s.wake.set()
            if nxt is not None:
                nxt.wake.set()

    def _run(self, batch: list[_Slot[T]]) -> None:
        try:
            outcomes = self._apply([s.item for s in batch])
            if len(outcomes) != len(batch):  # pragma: no cover - a bug in apply
                raise RuntimeError(f"{len(outcomes)} outcomes for {len(batch)} items")
        except BaseException as exc:  # nothing committed: every caller hears why
            for s in batch:
                s.error = exc
            if not isinstance(exc, Exception):
                raise
            return
        self.batches += 1
        self.items += len(batch)
        for s, out in zip(batch, outcomes, strict=True):
            if isinstance(out, BaseException):
                s.error = out
            else:
                s.result = out
