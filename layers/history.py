"""History for charts: downsampled time series of a datastream, and the retention policy.

:func:`history` answers "the readings of datastream D between two times, in at most N
points": the range is cut into buckets of a round size (1 s, 2 s, 5 s, … 1 min, … 1 h,
… 1 day, …) chosen so that no more than N buckets cover it, and each bucket gives the
min, max, mean and count of its numeric readings. Buckets are aligned to the epoch, so
the same reading always falls in the same bucket and a chart can extend the last bucket
with live readings. The aggregation runs in the store (one indexed ``GROUP BY``, the
same SQL on SQLite and PostgreSQL).

:func:`prune` applies the retention policy (``[live] retention_days``): observations
older than the cut-off are deleted in small batches (so ingest is never held up for
long), except each datastream's newest observation, whatever its age: the latest value
of a sensor that went quiet stays visible. :class:`RetentionJob` runs it periodically.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cim.errors import InputDataError, NotFoundError
from layers.store.base import Store

logger = logging.getLogger(__name__)

_MS = 1000  # µs per ms
_S = 1000 * _MS
_MIN = 60 * _S
_H = 60 * _MIN
_D = 24 * _H

#: bucket sizes in µs, smallest first; beyond the last, multiples of 30 days
NICE_STEPS_US: tuple[int, ...] = (
    *(m * _MS for m in (1, 2, 5, 10, 20, 50, 100, 200, 500)),
    *(s * _S for s in (1, 2, 5, 10, 15, 30)),
    *(m * _MIN for m in (1, 2, 5, 10, 15, 30)),
    *(h * _H for h in (1, 2, 3, 6, 12)),
    *(d * _D for d in (1, 2, 7, 14, 30)),
)

#: the most buckets one query may ask for
MAX_POINTS = 5000

#: the default retention, in days
DEFAULT_RETENTION_DAYS = 90.0


@dataclass(frozen=True)
class Bucket:
    """The numeric readings of one time bucket (``start`` in µs since the epoch)."""

    start: int
    min: float
    max: float
    mean: float
    count: int


@dataclass(frozen=True)
class History:
    """A downsampled series: the range asked for, the bucket size, the buckets that hold
    readings (empty buckets are left out), oldest first."""

    datastream: int
    start: int
    end: int
    step: int
    buckets: list[Bucket]

    def as_json(self) -> dict:
        """The API's JSON: times in ms since the epoch, points as arrays."""
        return {
            "datastream": self.datastream,
            "from": self.start // _MS,
            "to": self.end // _MS,
            "bucket": self.step // _MS,
            "fields": ["time", "min", "max", "mean", "count"],
            "points": [[b.start // _MS, b.min, b.max, b.mean, b.count] for b in self.buckets],
        }


def bucket_size(span_us: int, points: int) -> int:
    """The smallest round bucket size (µs) that covers ``span_us`` in ``points`` buckets.

    Parameters
    ----------
    span_us : int
        Length of the range in µs (> 0).
    points : int
        The most buckets wanted (> 0).

    Returns
    -------
    int
        One of :data:`NICE_STEPS_US`, or a multiple of 30 days for very long ranges.
    """
    need = math.ceil(span_us / max(1, points))
    for step in NICE_STEPS_US:
        if step >= need:
            return step
    month = 30 * _D
    return math.ceil(need / month) * month


_HISTORY_SQL = """
SELECT phenomenon_time / CAST(? AS BIGINT) AS b,
       min(result_num), max(result_num), avg(result_num), count(*)
FROM observations
WHERE datastream_id = ? AND phenomenon_time >= ? AND phenomenon_time < ?
  AND result_num IS NOT NULL
GROUP BY b ORDER BY b
"""


def history(store: Store, datastream: int, start: int, end: int, points: int = 200) -> History:
    """A datastream's numeric readings in ``[start, end)``, downsampled to ``points``.

    Parameters
    ----------
    store : Store
    datastream : int
        The datastream's id.
    start, end : int
        The range, µs since the epoch (``start < end``).
    points : int
        The most buckets (1 … :data:`MAX_POINTS`).

    Returns
    -------
    History

    Raises
    ------
    InputDataError
        On an empty range or a bad point count.
    NotFoundError
        When there is no such datastream.
    """
    if not 1 <= points <= MAX_POINTS:
        raise InputDataError(f"points must be between 1 and {MAX_POINTS}, not {points}")
    if start >= end:
        raise InputDataError("the range is empty: 'from' must be before 'to'")
    step = bucket_size(end - start, points)
    # aligned to the epoch: the first bucket may start before `start`, which would add
    # one bucket; widen the step once if that overflows the budget
    if (end - 1) // step - start // step + 1 > points:
        step = bucket_size(end - start + step, points)
    with store.transaction() as tx:
        if tx.scalar("SELECT id FROM datastreams WHERE id = ?", [datastream]) is None:
            raise NotFoundError(f"no datastream {datastream}")
        rows = tx.execute(_HISTORY_SQL, [step, datastream, start, end])
    buckets = [
        Bucket(int(b) * step, float(lo), float(hi), float(mean), int(n))
        for b, lo, hi, mean, n in rows
    ]
    return History(datastream, start, end, step, buckets)


# --- retention -------------------------------------------------------------------------


def prune(store: Store, retention_days: float, now: int | None = None, batch: int = 5000) -> int:
    """Delete observations older than ``retention_days``, keeping each datastream's
    newest observation whatever its age.

    Works datastream by datastream, ``batch`` rows per transaction, so a writer never
    waits long for the store. A datastream's ``phenomenonTime`` start follows what is
    left.

    Parameters
    ----------
    store : Store
    retention_days : float
        Observations whose phenomenon time is older than this are deleted; 0 keeps all.
    now : int, optional
        The present, µs since the epoch (default: now).
    batch : int
        Rows deleted per transaction.

    Returns
    -------
    int
        The number of observations deleted.
    """
    if retention_days <= 0:
        return 0
    now = time.time_ns() // 1000 if now is None else now
    cutoff = now - int(retention_days * _D)
    with store.transaction() as tx:
        streams = [int(r[0]) for r in tx.execute("SELECT id FROM datastreams ORDER BY id")]
    deleted = 0
    for ds in streams:
        deleted += _prune_datastream(store, ds, cutoff, batch)
    if deleted:
        logger.info(
            "retention: deleted %d observations older than %g days", deleted, retention_days
        )
    return deleted


def _prune_datastream(store: Store, ds: int, cutoff: int, batch: int) -> int:
    with store.transaction() as tx:
        newest = tx.scalar(
            "SELECT max(phenomenon_time) FROM observations WHERE datastream_id = ?", [ds]
        )
    if newest is None:
        return 0
    # strictly older than the newest reading: the newest one is never deleted
    limit = min(cutoff, int(newest))
    deleted = 0
    while True:
        with store.transaction(write=True) as tx:
            gone = tx.execute(
                "DELETE FROM observations WHERE id IN (SELECT id FROM observations "
                "WHERE datastream_id = ? AND phenomenon_time < ? "
                "ORDER BY phenomenon_time LIMIT ?) RETURNING id",
                [ds, limit, batch],
            )
            if gone:
                tx.execute(
                    "UPDATE datastreams SET phenomenon_time_start = (SELECT min(phenomenon_time) "
                    "FROM observations WHERE datastream_id = ?) WHERE id = ?",
                    [ds, ds],
                )
        deleted += len(gone)
        if len(gone) < batch:
            return deleted


class RetentionJob:
    """Run :func:`prune` in a daemon thread: first after ``delay`` seconds, then every
    ``interval`` seconds, until :meth:`stop`.

    Parameters
    ----------
    get_store : callable
        Returns the store (called at each run, so a lazily opened store is fine).
    retention_days : float
    interval, delay : float
        Seconds.
    """

    def __init__(
        self,
        get_store: Callable[[], Store],
        retention_days: float,
        interval: float = 3600.0,
        delay: float = 60.0,
    ) -> None:
        self.get_store = get_store
        self.retention_days = retention_days
        self.interval = interval
        self.delay = delay
        self.runs = 0
        self.deleted = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> RetentionJob:
        """Start the thread (no-op when the retention keeps everything)."""
        if self.retention_days > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="live-retention", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread (waits for a run in progress)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def run_once(self) -> int:
        """One pass now; returns the observations deleted."""
        n = prune(self.get_store(), self.retention_days)
        self.runs += 1
        self.deleted += n
        return n

    def _loop(self) -> None:
        wait = self.delay
        while not self._stop.wait(wait):
            wait = self.interval
            try:
                self.run_once()
            except Exception:  # a failed pass is retried at the next interval
                logger.exception("retention: pruning the live store failed")
