"""Readings in: check each one, store the good ones in one transaction, count the bad.

Shared by every way readings arrive (SensorThings HTTP, ``CreateObservations``
batches, and MQTT). A bad reading is rejected with a reason and counted; it never takes
the batch's valid readings down. Callers acknowledge only after :func:`ingest` returns,
which is after the commit.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields
from itertools import chain, repeat
from operator import attrgetter
from typing import Any, NamedTuple

import numpy as np

from layers.sta.model import OBSERVATION_TYPES
from layers.sta.times import parse_times
from layers.store.base import Department, ObservationRow, Store, now_us
from layers.store.batch import ObservationBatch, empty, take

#: readings further than this ahead of the server clock are refused (µs)
MAX_FUTURE_US = 86_400 * 1_000_000


@dataclass
class Reading:
    """One reading as received, before any check.

    ``phenomenon_time`` and friends are ISO 8601 strings (or None: now).
    """

    datastream_id: Any
    result: Any
    phenomenon_time: Any = None
    result_time: Any = None
    result_quality: Any = None
    valid_time: Any = None
    parameters: Any = None
    foi_id: Any = None
    key: str | None = None


class Outcome(NamedTuple):
    """What happened to one reading: stored (``id``, maybe ``duplicate``) or ``error``.

    A named tuple: a batch makes one per reading, and tuples are cheap to make.
    """

    id: int | None = None
    duplicate: bool = False
    error: str | None = None


@dataclass(frozen=True)
class StreamInfo:
    """What the checks need to know about a datastream."""

    id: int
    department: str | None
    result_kind: str  # number integer boolean string any


def stream_info(store: Store, ids: set[int]) -> dict[int, StreamInfo]:
    """Datastream facts for the ids that exist."""
    if not ids:
        return {}
    out: dict[int, StreamInfo] = {}
    ordered = sorted(ids)
    for i in range(0, len(ordered), 500):  # bounded IN lists
        chunk = ordered[i : i + 500]
        marks = ",".join("?" * len(chunk))
        with store.transaction() as tx:
            rows = tx.execute(
                f"SELECT id, department, observation_type FROM datastreams WHERE id IN ({marks})",
                chunk,
            )
        for ds_id, dept, otype in rows:
            out[int(ds_id)] = StreamInfo(int(ds_id), dept, OBSERVATION_TYPES.get(otype, "any"))
    return out


def may_write(principal: Department, owner: str | None) -> bool:
    """Whether ``principal`` may write data owned by department ``owner``."""
    return principal.is_admin or (owner is not None and owner == principal.id)


def check_result(kind: str, result: Any) -> str | None:
    """Why ``result`` does not fit the datastream's observation type, or None."""
    if isinstance(result, float) and not math.isfinite(result):
        return "result is NaN or infinite"
    if result is None:
        return "result is missing"
    if kind == "number":
        if isinstance(result, bool) or not isinstance(result, int | float):
            return f"wrong result type: expected a number, got {type(result).__name__}"
    elif kind == "integer":
        if isinstance(result, bool) or not isinstance(result, int):
            return f"wrong result type: expected an integer, got {type(result).__name__}"
    elif kind == "boolean":
        if not isinstance(result, bool):
            return f"wrong result type: expected true/false, got {type(result).__name__}"
    elif kind == "string" and not isinstance(result, str):
        return f"wrong result type: expected a string, got {type(result).__name__}"
    return None


@dataclass
class ReadingColumns:
    """Readings as received, as columns of equal length (a batch of :class:`Reading`).

    An optional column left as None is absent for every reading of the batch. Times
    are ISO 8601 texts (None: now). Parsers of batch formats (``CreateObservations``'
    dataArray) fill these directly, without one object per reading.
    """

    datastream_id: list[Any]
    result: list[Any]
    phenomenon_time: list[Any] | None = None
    result_time: list[Any] | None = None
    result_quality: list[Any] | None = None
    valid_time: list[Any] | None = None
    parameters: list[Any] | None = None
    foi_id: list[Any] | None = None
    key: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.datastream_id)

    @classmethod
    def from_readings(cls, readings: list[Reading]) -> ReadingColumns:
        """Columns of :class:`Reading` objects."""
        names = [f.name for f in fields(Reading)]
        if not readings:
            return cls([], [])
        # one C-level pass: the readings' attributes, transposed into columns
        columns = zip(*map(attrgetter(*names), readings), strict=True)
        cols = dict(zip(names, map(list, columns), strict=True))
        return cls(**{k: v if k in _REQUIRED or not empty(v) else None for k, v in cols.items()})

    @classmethod
    def concat(cls, parts: list[ReadingColumns]) -> ReadingColumns:
        """One batch of several (one pass per column: cheaper than extending in turn)."""
        if len(parts) == 1:
            return parts[0]
        out = cls([], [])
        for name in _FIELDS:
            columns = [getattr(p, name) for p in parts]
            if all(c is None for c in columns):
                continue
            setattr(
                out,
                name,
                list(chain.from_iterable(c if c is not None else repeat(None, len(p))
                                         for c, p in zip(columns, parts, strict=True))),
            )  # fmt: skip
        return out


_REQUIRED = ("datastream_id", "result")
_FIELDS = tuple(f.name for f in fields(ReadingColumns))


@dataclass
class Checked:
    """The outcome of checking a batch: the good readings, ready for the store, and why
    the others were rejected."""

    batch: ObservationBatch
    good: list[int]  # positions of the batch's readings in the input
    reasons: list[str | None]  # per input reading: None, or why it was rejected


@dataclass
class BatchOutcome:
    """What happened to each reading of a batch, as columns (see :class:`Outcome`)."""

    ids: list[int | None]
    duplicate: list[bool]
    errors: list[str | None]
    #: each reading's phenomenon time (µs) as stored, None where rejected (announcing
    #: the readings then needs no second parse)
    times: list[int | None] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def outcomes(self) -> list[Outcome]:
        """One :class:`Outcome` per reading."""
        return list(map(Outcome._make, zip(self.ids, self.duplicate, self.errors, strict=True)))


#: result type codes, and which the observation types accept
_TYPE_CODE = {float: 0, int: 1, bool: 2, str: 3, type(None): 4}
_OTHER_TYPE = 5
_KINDS = ("number", "integer", "boolean", "string", "any")
_ACCEPTS = np.array(
    [  # float  int    bool   str    None   other
        [True, True, False, False, False, False],  # number
        [False, True, False, False, False, False],  # integer
        [False, False, True, False, False, False],  # boolean
        [False, False, False, True, False, False],  # string
        [True, True, True, True, False, True],  # any
    ]
)


class _Rejections:
    """Reasons per reading; the first failed check names the reason."""

    def __init__(self, n: int) -> None:
        self.reasons: list[str | None] = [None] * n
        self.bad = np.zeros(n, dtype=bool)

    def add(self, mask: np.ndarray, why: Callable[[int], str]) -> None:
        """Reject the readings in ``mask`` not rejected yet; ``why(i)`` says why."""
        new = mask & ~self.bad
        for i in np.flatnonzero(new).tolist():  # only the bad ones: few
            self.reasons[i] = why(i)
        self.bad |= mask

    def add_errors(self, errors: dict[int, str], n: int) -> None:
        """Reject the readings of a position → reason mapping."""
        if errors:
            mask = np.zeros(n, dtype=bool)
            mask[list(errors)] = True
            self.add(mask, errors.__getitem__)


def check(store: Store, principal: Department, cols: ReadingColumns) -> Checked:
    """Check a batch of readings at once; the good ones become an observation batch.

    The checks, in order (the first failing one names the reason): the datastream
    exists and ``principal`` may write it; the result fits the datastream's
    ``observationType`` and is finite; the times parse and the phenomenon time is at
    most :data:`MAX_FUTURE_US` ahead; ``parameters`` is an object; the
    FeatureOfInterest exists. They run per column with numpy; only rejected readings
    cost Python work of their own.

    Parameters
    ----------
    store : Store
    principal : Department
    cols : ReadingColumns

    Returns
    -------
    Checked
    """
    n = len(cols)
    now = now_us()
    rej = _Rejections(n)
    ds_col, results = cols.datastream_id, cols.result
    kind = _check_streams(store, principal, ds_col, rej)
    _check_results(kind, results, rej)
    start, end, errors = parse_times(cols.phenomenon_time or [None] * n, now)
    rej.add_errors(errors, n)
    rej.add(
        start > now + MAX_FUTURE_US, lambda i: "phenomenonTime is more than 1 day in the future"
    )
    result_time = valid_start = valid_end = None
    if cols.result_time is not None:
        rt, _, errors = parse_times(cols.result_time, 0)
        rej.add_errors(errors, n)
        result_time = _with_none(rt, cols.result_time)
    if cols.valid_time is not None:
        vt, vt_end, errors = parse_times(cols.valid_time, 0)
        rej.add_errors(errors, n)
        valid_start, valid_end = _with_none(vt, cols.valid_time), vt_end
    if cols.parameters is not None:
        params = cols.parameters
        rej.add(
            _types_outside(params, {dict, type(None)}),
            lambda i: "parameters must be a JSON object",
        )
    foi = cols.foi_id
    if foi is not None:
        rej.add(
            _types_outside(foi, {int, type(None)}), lambda i: f"bad FeatureOfInterest id {foi[i]!r}"
        )
        _check_features(store, foi, rej)
    good = np.flatnonzero(~rej.bad).tolist()
    everything = len(good) == n

    def pick(values: list[Any] | None) -> list[Any] | None:
        if values is None:
            return None
        return values if everything else take(values, good)

    starts = start.tolist()
    batch = ObservationBatch(
        datastream_id=pick(ds_col) or [],
        phenomenon_time=pick(starts) or [],
        result=pick(results) or [],
        phenomenon_time_end=pick(end),
        result_time=pick(result_time),
        result_quality=pick(cols.result_quality),
        valid_time_start=pick(valid_start),
        valid_time_end=pick(valid_end),
        parameters=pick(cols.parameters),
        foi_id=pick(foi),
        key=pick(cols.key),
    )
    return Checked(batch, good, rej.reasons)


def _with_none(values: np.ndarray, raw: list[Any]) -> list[int | None]:
    """Parsed times as a list, None where the raw value was None."""
    out: list[int | None] = values.tolist()
    if raw.count(None):
        for i, v in enumerate(raw):
            if v is None:
                out[i] = None
    return out


def _types_outside(values: list[Any], allowed: set[type]) -> np.ndarray:
    """Mask of the values whose type is not in ``allowed``."""
    types = set(map(type, values))
    if types <= allowed:
        return np.zeros(len(values), dtype=bool)
    return np.fromiter((type(v) not in allowed for v in values), dtype=bool, count=len(values))


def _check_streams(
    store: Store, principal: Department, ds_col: list[Any], rej: _Rejections
) -> np.ndarray:
    """Reject unknown and other departments' datastreams; each reading's kind code."""
    n = len(ds_col)
    if set(map(type, ds_col)) == {int}:
        keys = ds_col
    else:  # bools, None, text or lists: never a datastream (and True must not be 1)
        keys = [d if type(d) is int else ("not an id", i) for i, d in enumerate(ds_col)]
    distinct = list(dict.fromkeys(keys))
    streams = stream_info(store, {d for d in distinct if type(d) is int})
    group = {d: g for g, d in enumerate(distinct)}
    inv = np.fromiter(map(group.__getitem__, keys), dtype=np.intp, count=n)
    infos = [streams.get(d) if type(d) is int else None for d in distinct]
    unknown = np.array([info is None for info in infos])[inv]
    rej.add(unknown, lambda i: f"unknown datastream {ds_col[i]!r}")
    denied = np.array([i is not None and not may_write(principal, i.department) for i in infos])
    if denied.any():

        def why(i: int) -> str:
            info = streams[ds_col[i]]
            owner = info.department
            return f"datastream {info.id} belongs to department {owner!r}, not {principal.id!r}"

        rej.add(denied[inv], why)
    codes = np.array([_KINDS.index(i.result_kind) if i else 4 for i in infos], dtype=np.intp)
    return codes[inv]


def _check_results(kind: np.ndarray, results: list[Any], rej: _Rejections) -> None:
    """Reject results that are missing, NaN or infinite, or of the wrong type."""
    n = len(results)
    types = np.fromiter(
        map(_TYPE_CODE.get, map(type, results), repeat(_OTHER_TYPE)), dtype=np.intp, count=n
    )
    bad = ~_ACCEPTS[kind, types]
    floats = np.flatnonzero(types == 0)
    if len(floats):
        values = np.asarray(results if len(floats) == n else take(results, floats), np.float64)
        bad[floats[~np.isfinite(values)]] = True
    if bad.any():
        rej.add(bad, lambda i: check_result(_KINDS[kind[i]], results[i]) or "malformed")


def prepare(
    store: Store, principal: Department, readings: list[Reading]
) -> tuple[list[ObservationRow | None], list[str | None]]:
    """Check readings; returns rows (None where rejected) and reasons (None where fine)."""
    checked = check(store, principal, ReadingColumns.from_readings(readings))
    rows: list[ObservationRow | None] = [None] * len(readings)
    for i, row in zip(checked.good, checked.batch.rows(), strict=True):
        rows[i] = row
    return rows, checked.reasons


def _check_features(store: Store, foi: list[Any], rej: _Rejections) -> None:
    """Reject readings naming a FeatureOfInterest that does not exist (before the insert,
    so one bad id cannot fail the batch's transaction)."""
    wanted = sorted(
        {f for f, bad in zip(foi, rej.bad.tolist(), strict=True) if f is not None and not bad}
    )
    if not wanted:
        return
    found: set[int] = set()
    for i in range(0, len(wanted), 500):
        chunk = wanted[i : i + 500]
        marks = ",".join("?" * len(chunk))
        with store.transaction() as tx:
            sql = f"SELECT id FROM features_of_interest WHERE id IN ({marks})"
            found.update(int(r[0]) for r in tx.execute(sql, chunk))
    missing = np.fromiter(
        (type(f) is int and f not in found for f in foi), dtype=bool, count=len(foi)
    )
    rej.add(missing, lambda i: f"unknown FeatureOfInterest {foi[i]}")


def ingest(store: Store, principal: Department, readings: list[Reading]) -> list[Outcome]:
    """Check and store readings; one outcome per reading, in order, after the commit.

    Parameters
    ----------
    store : Store
    principal : Department
        Who sends them (permissions are checked per reading).
    readings : list of Reading

    Returns
    -------
    list of Outcome
    """
    return ingest_columns(store, principal, ReadingColumns.from_readings(readings)).outcomes()


def ingest_columns(store: Store, principal: Department, cols: ReadingColumns) -> BatchOutcome:
    """Check and store a batch of readings given as columns; returns after the commit.

    The fast path of :func:`ingest` (same checks, same outcomes): one check of the
    whole batch, one bulk insert, one rejection count.

    Parameters
    ----------
    store : Store
    principal : Department
    cols : ReadingColumns

    Returns
    -------
    BatchOutcome
    """
    n = len(cols)
    checked = check(store, principal, cols)
    ids: list[int | None]
    dup: list[bool]
    times: list[int | None]
    if len(checked.good) == n:
        ids, dup = store.insert_batch(checked.batch)  # type: ignore[assignment]
        times = checked.batch.phenomenon_time  # type: ignore[assignment]
    else:
        stored_ids, stored_dup = store.insert_batch(checked.batch)
        ids, dup, times = [None] * n, [False] * n, [None] * n
        for i, oid, d, t in zip(
            checked.good, stored_ids, stored_dup, checked.batch.phenomenon_time, strict=True
        ):
            ids[i] = oid
            dup[i] = d
            times[i] = t
        rejected = Counter(_reason_class(r) for r in checked.reasons if r is not None)
        store.count_rejections(dict(rejected))
    return BatchOutcome(ids, dup, checked.reasons, times)


def _reason_class(reason: str) -> str:
    """A short counter key for a rejection reason (without ids and values)."""
    for key in (
        "unknown datastream",
        "belongs to department",
        "wrong result type",
        "NaN",
        "future",
        "result is missing",
        "unknown FeatureOfInterest",
    ):
        if key in reason:
            return {
                "belongs to department": "other department",
                "NaN": "not finite",
                "future": "far future",
            }.get(key, key)
    return "malformed"
