"""The live store: one interface, two implementations (SQLite, PostgreSQL + PostGIS).

Everything above the store (the SensorThings API, ingest, departments) talks to a
:class:`Store` and writes SQL with ``?`` placeholders; each implementation adapts the
placeholders and supplies the few dialect-specific pieces (geometry predicates, date
parts, bulk insert). Times are stored as integer microseconds since the Unix epoch (UTC)
in both stores, so comparisons, ordering and duplicate detection are exact and
identical on both.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cim.errors import DatasetIOError
from layers.store.batch import ObservationBatch, insert_columns, latest_per_stream
from layers.store.schema import CORE, VERSIONS_TABLE, Component
from layers.store.schema import component as registered
from layers.thresholds import Thresholds, classify

logger = logging.getLogger(__name__)

#: readings per lookup query (two bound parameters each stay under SQLite's 32,766)
_CHUNK = 10_000

#: geometry columns: table → GeoJSON text column (PostgreSQL adds ``<column>_geom``)
GEO_COLUMNS: dict[str, str] = {"locations": "location", "features_of_interest": "feature"}


class Tx(ABC):
    """One open transaction (or read snapshot) on a store connection."""

    store: Store

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run one statement; the rows it returns (empty for statements without rows)."""

    @abstractmethod
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for many parameter rows."""

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        """The first row, or None."""
        rows = self.execute(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row, or None."""
        row = self.one(sql, params)
        return row[0] if row else None

    def insert(self, table: str, values: dict[str, Any]) -> int:
        """Insert one row and return its id."""
        cols, marks, params = self._assignments(table, values)
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(marks)}) RETURNING id"
        return int(self.execute(sql, params)[0][0])

    def update(self, table: str, row_id: int, values: dict[str, Any]) -> None:
        """Update columns of one row by id."""
        if not values:
            return
        cols, marks, params = self._assignments(table, values)
        sets = ", ".join(f"{c} = {m}" for c, m in zip(cols, marks, strict=True))
        self.execute(f"UPDATE {table} SET {sets} WHERE id = ?", [*params, row_id])

    def _assignments(
        self, table: str, values: dict[str, Any]
    ) -> tuple[list[str], list[str], list[Any]]:
        cols = list(values)
        marks = ["?"] * len(cols)
        params = list(values.values())
        geo = GEO_COLUMNS.get(table)
        if geo in values:
            extra = self.store.geometry_assignment(values[geo])
            if extra is not None:
                cols.append(f"{geo}_geom")
                marks.append(extra[0])
                params.append(extra[1])
        return cols, marks, params


@dataclass(frozen=True)
class Department:
    """A department (or the admin) that may write its own things and datastreams."""

    id: str
    name: str
    role: str = "department"
    revoked: bool = False

    @property
    def is_admin(self) -> bool:
        """Whether this principal may write everything."""
        return self.role == "admin"


@dataclass
class ObservationRow:
    """One validated observation ready for the store (times in µs since the epoch)."""

    datastream_id: int
    phenomenon_time: int
    result: Any
    phenomenon_time_end: int | None = None
    result_time: int | None = None
    result_quality: Any = None
    valid_time_start: int | None = None
    valid_time_end: int | None = None
    parameters: dict[str, Any] | None = None
    foi_id: int | None = None
    key: str | None = None


@dataclass
class InsertResult:
    """What the store did with one observation: its id and whether it already existed."""

    id: int
    duplicate: bool = False


@dataclass
class IngestStats:
    """Counters kept by a store process (accepted, duplicates, rejected by reason)."""

    accepted: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reject(self, reason: str, n: int = 1) -> None:
        """Count ``n`` readings rejected for ``reason``."""
        with self.lock:
            self.rejected[reason] = self.rejected.get(reason, 0) + n


def result_columns(result: Any) -> tuple[str, float | None, str | None]:
    """The stored forms of a result: JSON text, its number (or None), its string (or None)."""
    kind = type(result)
    if kind is float and math.isfinite(result):
        return repr(result), result, None  # repr of a finite float is valid JSON
    if kind is int:
        return str(result), float(result), None
    if kind is bool:
        return ("true", 1.0, None) if result else ("false", 0.0, None)
    text = json.dumps(result, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text, None, result if kind is str else None


class ConnectionPool:
    """Idle connections kept for reuse, plus the one a thread holds in a transaction.

    Threads come and go (a threaded WSGI server may start one per request), so
    connections are not tied to threads: a transaction takes one from the pool and
    gives it back when it ends; a nested transaction in the same thread joins it.
    """

    def __init__(self, connect: Any, close: Any, keep: int = 32) -> None:
        self._connect = connect
        self._close = close
        self._keep = keep
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._local = threading.local()

    def current(self) -> Any | None:
        """The connection this thread's open transaction uses, or None."""
        return getattr(self._local, "conn", None)

    def acquire(self) -> Any:
        """A connection for a new outer transaction in this thread."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        self._local.conn = conn
        return conn

    def release(self, conn: Any, broken: bool = False) -> None:
        """Give back a connection at the end of its outer transaction."""
        self._local.conn = None
        with self._lock:
            if not broken and len(self._idle) < self._keep:
                self._idle.append(conn)
                return
        self._close(conn)

    def close_all(self) -> None:
        """Close the idle connections (those in use close when released)."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._keep = 0
        for conn in idle:
            self._close(conn)


class Store(ABC):
    """The live store interface.

    Use :func:`layers.store.open_store` to get one. Methods are thread-safe: each
    thread uses its own connection.
    """

    #: "sqlite" or "postgresql"
    dialect: str = ""

    def __init__(self) -> None:
        self.stats = IngestStats()
        #: called after each committed batch with (rows, results): the live bus hooks
        #: in here, so nothing is published that was not stored
        self.on_commit: list[Callable[[list[ObservationRow], list[InsertResult]], None]] = []

    # --- connections and transactions (implementations) -----------------------------

    @abstractmethod
    def transaction(self, write: bool = False) -> Any:
        """A context manager yielding a :class:`Tx`; commits on success.

        ``write=True`` takes the write lock up front (SQLite ``BEGIN IMMEDIATE``) so a
        read-then-write transaction never fails half-way on a lock upgrade.
        """

    @abstractmethod
    def close(self) -> None:
        """Close every connection this store opened."""

    @abstractmethod
    def _bulk_insert_observations(self, tx: Tx, columns: list[str], rows: list[tuple]) -> int:
        """Insert rows of ``columns`` (ids assigned), skipping duplicates; how many went in."""

    @abstractmethod
    def _reserve_ids(self, tx: Tx, table: str, n: int) -> list[int]:
        """``n`` fresh ids for ``table`` inside a write transaction."""

    # --- dialect pieces --------------------------------------------------------------

    @abstractmethod
    def geometry_assignment(self, geojson_text: str | None) -> tuple[str, Any] | None:
        """SQL expression and parameter filling the ``*_geom`` column, or None (no column)."""

    @abstractmethod
    def sql_geo(self, fn: str, table_alias: str, column: str) -> str:
        """SQL for ``fn`` (``intersects``/``distance``/``within``…) of a column and a WKT ``?``."""

    @abstractmethod
    def sql_json(self, column: str) -> str:
        """SQL extracting a value (one ``?``: :meth:`json_path_param`) from JSON text."""

    @abstractmethod
    def sql_json_number(self, expr: str) -> str:
        """``expr`` (from :meth:`sql_json`) as a number where it is one, else NULL."""

    @abstractmethod
    def json_path_param(self, keys: list[str]) -> object:
        """The bound parameter naming the path ``keys`` for :meth:`sql_json`."""

    @abstractmethod
    def sql_datepart(self, part: str, expr: str) -> str:
        """SQL for a date part (year, month, day, hour, minute, second) of µs ``expr``."""

    @abstractmethod
    def sql_func(self, name: str, args: list[str]) -> str:
        """SQL for a string or math function whose spelling differs between dialects."""

    # --- schema ------------------------------------------------------------------------

    def migrate(self, component: str | Component = CORE) -> int:
        """Bring a component's tables to its newest version; returns the version in place.

        Migrations are numbered and applied in order, each in its own transaction, so a
        crash leaves the store at the last complete version; re-running is harmless, and
        concurrent processes are serialised (SQLite's write lock, a PostgreSQL advisory
        lock). Versions are kept per component in ``schema_migrations``.

        Parameters
        ----------
        component : str or Component
            A component registered with
            :func:`layers.store.schema.register_migrations`; default the store's own
            tables (:data:`~layers.store.schema.CORE`).

        Raises
        ------
        DatasetIOError
            When the store was written by a newer version of the toolkit.
        """
        comp = component if isinstance(component, Component) else registered(component)
        with self.transaction(write=True) as tx:
            self._lock_schema(tx)
            current = self._component_version(tx, comp, adopt=True)
        if current > comp.version:
            what = "schema" if comp is CORE else f"{comp.name} schema"
            raise DatasetIOError(
                f"the live store has {what} version {current}, newer than this toolkit's "
                f"{comp.version}: upgrade the toolkit",
                path=self.describe(),
            )
        for version, statements in comp.migrations:
            if version <= current:
                continue
            with self.transaction(write=True) as tx:
                self._lock_schema(tx)
                if self._component_version(tx, comp) >= version:
                    continue  # another process applied it meanwhile
                for stmt in statements(self.dialect):
                    tx.execute(stmt)
                tx.execute(
                    f"INSERT INTO {VERSIONS_TABLE} (component, version, applied) VALUES (?, ?, ?)",
                    [comp.name, version, now_us()],
                )
            logger.info("live store: %s migrated to version %d", comp.name, version)
            current = version
        return current

    def _component_version(self, tx: Tx, comp: Component, adopt: bool = False) -> int:
        """A component's version in the store; ``adopt`` takes over a legacy version table."""
        tx.execute(
            f"CREATE TABLE IF NOT EXISTS {VERSIONS_TABLE} (component TEXT NOT NULL, "
            "version INTEGER NOT NULL, applied BIGINT NOT NULL, PRIMARY KEY (component, version))"
        )
        sql = f"SELECT max(version) FROM {VERSIONS_TABLE} WHERE component = ?"
        current = tx.scalar(sql, [comp.name])
        if (
            current is None
            and adopt
            and comp.legacy_table
            and self._has_table(tx, comp.legacy_table)
        ):
            legacy = tx.scalar(f"SELECT max(version) FROM {comp.legacy_table}")
            if legacy:
                tx.execute(
                    f"INSERT INTO {VERSIONS_TABLE} (component, version, applied) VALUES (?, ?, ?)",
                    [comp.name, int(legacy), now_us()],
                )
                logger.info(
                    "live store: %s adopted at version %d from %s",
                    comp.name,
                    legacy,
                    comp.legacy_table,
                )
                current = legacy
        return int(current or 0)

    def schema_version(self, component: str | Component = CORE) -> int:
        """A component's schema version in the store (0 where it has none yet)."""
        comp = component if isinstance(component, Component) else registered(component)
        with self.transaction() as tx:
            if not self._has_table(tx, VERSIONS_TABLE):
                return 0
            sql = f"SELECT max(version) FROM {VERSIONS_TABLE} WHERE component = ?"
            return int(tx.scalar(sql, [comp.name]) or 0)

    @abstractmethod
    def _has_table(self, tx: Tx, name: str) -> bool:
        """Whether the store has a table ``name``."""

    def _lock_schema(self, tx: Tx) -> None:
        """Serialise migrations between processes (SQLite: the write lock is enough)."""
        return None

    def describe(self) -> str:
        """Where the store is, for messages (no password)."""
        return self.dialect

    # --- departments -------------------------------------------------------------------

    def add_department(self, dept_id: str, name: str, role: str, token_hash: str) -> None:
        """Store a department with its hashed token (see :mod:`layers.departments`)."""
        with self.transaction(write=True) as tx:
            tx.execute(
                "INSERT INTO departments (id, name, role, token_hash, created, revoked) "
                "VALUES (?, ?, ?, ?, ?, 0)",
                [dept_id, name, role, token_hash, now_us()],
            )

    def department_row(self, dept_id: str) -> tuple[Department, str] | None:
        """A department and its stored token hash, or None."""
        with self.transaction() as tx:
            row = tx.one(
                "SELECT id, name, role, revoked, token_hash FROM departments WHERE id = ?",
                [dept_id],
            )
        if row is None:
            return None
        return Department(row[0], row[1], row[2], bool(row[3])), row[4]

    def list_departments(self) -> list[Department]:
        """All departments, revoked ones included, by id."""
        with self.transaction() as tx:
            rows = tx.execute("SELECT id, name, role, revoked FROM departments ORDER BY id")
        return [Department(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def set_department_token(self, dept_id: str, token_hash: str, revoked: bool) -> bool:
        """Replace a department's token hash / revoked flag; False when it does not exist."""
        with self.transaction(write=True) as tx:
            rows = tx.execute(
                "UPDATE departments SET token_hash = ?, revoked = ? WHERE id = ? RETURNING id",
                [token_hash, 1 if revoked else 0, dept_id],
            )
        return bool(rows)

    # --- observations ------------------------------------------------------------------

    def insert_observations(self, rows: list[ObservationRow]) -> list[InsertResult]:
        """Store validated observations in one transaction; duplicates are recognised.

        A duplicate is a reading with the same datastream, phenomenon time and result
        (or the same client key) as a stored one: it is not stored again, and its
        existing id is returned with ``duplicate=True``. The datastreams' latest value,
        time and state are updated in the same transaction. Returns after the commit.

        Parameters
        ----------
        rows : list of ObservationRow
            Already checked (datastream exists, result fits, times sane, permission).

        Returns
        -------
        list of InsertResult
            One per row, in order.
        """
        if not rows:
            return []
        batch = ObservationBatch.from_rows(rows)
        ids, dup = self.insert_batch(batch)
        if batch.foi_id is not None:  # the defaults given to readings without one
            for r, foi in zip(rows, batch.foi_id, strict=True):
                r.foi_id = foi
        return [InsertResult(i, d) for i, d in zip(ids, dup, strict=True)]

    def insert_batch(self, batch: ObservationBatch) -> tuple[list[int], list[bool]]:
        """Store a batch of checked observations (columns) in one transaction.

        What :meth:`insert_observations` does, for columns: one bulk insert, duplicates
        found with one query per batch (only when the insert skipped some), the latest
        value cache updated once per datastream. Returns after the commit.

        Parameters
        ----------
        batch : ObservationBatch

        Returns
        -------
        ids : list of int
            The observation id of each reading (the stored one's for a duplicate).
        duplicate : list of bool
            Whether each reading was already stored.
        """
        n = len(batch)
        if not n:
            return [], []
        dup = [False] * n
        with self.transaction(write=True) as tx:
            self._fill_default_fois(tx, batch)
            self._lock_parents(tx, batch)
            ids = self._reserve_ids(tx, "observations", n)
            names, cols = insert_columns(ids, batch)
            inserted = self._bulk_insert_observations(tx, names, list(zip(*cols, strict=True)))
            fresh = None
            if inserted != n:  # some were stored before (or twice in this batch)
                present = self._present_ids(tx, ids)
                missing = [i for i, oid in enumerate(ids) if oid not in present]
                ids = list(ids)
                text = cols[names.index("result")]
                for i, oid in zip(
                    missing, self._existing_ids(tx, batch, text, missing), strict=True
                ):
                    ids[i] = oid
                    dup[i] = True
                fresh = ~np.asarray(dup, dtype=bool)
            self._update_latest(tx, batch, fresh)
        n_dup = n - inserted
        with self.stats.lock:
            self.stats.accepted += inserted
            self.stats.duplicates += n_dup
        if self.on_commit:
            rows = batch.rows()
            results = [InsertResult(i, d) for i, d in zip(ids, dup, strict=True)]
            for listener in self.on_commit:
                try:
                    listener(rows, results)
                except Exception:  # a listener's bug must not fail an acknowledged write
                    logger.exception("live store on_commit listener failed")
        return ids, dup

    def _lock_parents(self, tx: Tx, batch: ObservationBatch) -> None:
        """Make sure the batch's datastreams and FeaturesOfInterest exist until the commit
        (where foreign keys do not already do it per row)."""
        return None

    def _present_ids(self, tx: Tx, ids: list[int]) -> set[int]:
        """Which of ``ids`` (just reserved) the insert stored."""
        found: set[int] = set()
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                r[0]
                for r in tx.execute(f"SELECT id FROM observations WHERE id IN ({marks})", chunk)
            )
        return found

    def _existing_ids(
        self, tx: Tx, batch: ObservationBatch, text: list[str], missing: list[int]
    ) -> list[int]:
        """The stored observations that the readings at ``missing`` duplicate.

        By client key first (where a reading has one), else by datastream, phenomenon
        time and result; one query per chunk of readings, never one per reading.
        """
        ds, times = batch.datastream_id, batch.phenomenon_time
        found: dict[int, int] = {}
        if batch.key is not None:
            keyed = [i for i in missing if batch.key[i] is not None]
            pairs = {(ds[i], batch.key[i]) for i in keyed}
            by_key = self._lookup(tx, "client_key", pairs)
            for i in keyed:
                hit = by_key.get((ds[i], batch.key[i]))
                if hit is not None:
                    found[i] = hit[0][0]
        rest = [i for i in missing if i not in found]
        if rest:
            candidates = self._lookup(tx, "phenomenon_time", {(ds[i], times[i]) for i in rest})
            for i in rest:
                for oid, result in candidates.get((ds[i], times[i]), ()):  # few per pair
                    if result == text[i]:
                        found[i] = oid
                        break
        lost = [i for i in missing if i not in found]
        if lost:  # pragma: no cover - the unique indexes make this impossible
            raise DatasetIOError(f"{len(lost)} observations were neither stored nor found")
        return [found[i] for i in missing]

    def _lookup(
        self, tx: Tx, column: str, pairs: set[tuple[int, Any]]
    ) -> dict[tuple[int, Any], list[tuple[int, str]]]:
        """Stored ``(id, result)`` by ``(datastream_id, column)`` for many pairs at once."""
        out: dict[tuple[int, Any], list[tuple[int, str]]] = {}
        ordered = sorted(pairs, key=repr)
        for i in range(0, len(ordered), _CHUNK // 2):
            chunk = ordered[i : i + _CHUNK // 2]
            values = ",".join(["(?, ?)"] * len(chunk))
            rows = tx.execute(
                f"SELECT id, datastream_id, {column}, result FROM observations "
                f"WHERE (datastream_id, {column}) IN (VALUES {values})",
                [v for pair in chunk for v in pair],
            )
            for oid, d, c, result in rows:
                out.setdefault((int(d), c), []).append((int(oid), result))
        return out

    def _fill_default_fois(self, tx: Tx, batch: ObservationBatch) -> None:
        """Give readings without a FeatureOfInterest their Thing's location (the standard).

        Two queries per batch, whatever its size: the datastreams' FeaturesOfInterest,
        then the Thing locations of those that have none yet (a new one is made once).
        """
        foi = batch.foi_id
        ds = batch.datastream_id
        missing = set(ds) if foi is None else {d for d, f in zip(ds, foi, strict=True) if f is None}
        if not missing:
            return
        marks = ",".join("?" * len(missing))
        found = dict(
            tx.execute(f"SELECT id, foi_id FROM datastreams WHERE id IN ({marks})", sorted(missing))
        )
        bare = sorted(d for d in missing if found.get(d) is None)
        if bare:
            marks = ",".join("?" * len(bare))
            located = tx.execute(
                "SELECT d.id, l.name, l.description, l.encoding_type, l.location, d.department "
                "FROM datastreams d "
                "JOIN thing_locations tl ON tl.thing_id = d.thing_id "
                f"JOIN locations l ON l.id = tl.location_id WHERE d.id IN ({marks}) "
                "ORDER BY d.id, l.id",
                bare,
            )
            first: dict[int, tuple] = {}
            for row in located:
                first.setdefault(int(row[0]), row[1:])
            for ds_id, loc in first.items():
                found[ds_id] = self._default_foi(tx, ds_id, loc)
        if all(v is None for v in found.values()):
            return
        defaults = list(map(found.get, ds))
        batch.foi_id = (
            defaults
            if foi is None
            else [f if f is not None else g for f, g in zip(foi, defaults, strict=True)]
        )

    def _default_foi(self, tx: Tx, ds_id: int, loc: tuple) -> int:
        """A FeatureOfInterest made from a Thing's location, now the datastream's default."""
        foi = tx.insert(
            "features_of_interest",
            {
                "name": loc[0],
                "description": loc[1] or "",
                "encoding_type": loc[2] or "application/geo+json",
                "feature": loc[3],
                "department": loc[4],
            },
        )
        tx.execute("UPDATE datastreams SET foi_id = ? WHERE id = ?", [foi, ds_id])
        return foi

    def _update_latest(self, tx: Tx, batch: ObservationBatch, fresh: np.ndarray | None) -> None:
        """Cache each datastream's newest reading (value, time, state) for snapshots.

        ``fresh`` marks the readings stored now (None: all of them).
        """
        per = latest_per_stream(batch, fresh)
        if not per.datastream_id:
            return
        # the Datastream's phenomenonTime spans its Observations' (the standard)
        tx.executemany(
            "UPDATE datastreams SET "
            "phenomenon_time_start = CASE WHEN phenomenon_time_start IS NULL "
            "OR phenomenon_time_start > ? THEN ? ELSE phenomenon_time_start END, "
            "phenomenon_time_end = CASE WHEN phenomenon_time_end IS NULL "
            "OR phenomenon_time_end < ? THEN ? ELSE phenomenon_time_end END WHERE id = ?",
            [
                (a, a, b, b, ds)
                for ds, a, b in zip(per.datastream_id, per.span_start, per.span_end, strict=True)
            ],
        )
        marks = ",".join("?" * len(per.datastream_id))
        meta = {
            row[0]: row[1:]
            for row in tx.execute(
                "SELECT id, warn_low, warn_high, alarm_low, alarm_high FROM datastreams "
                f"WHERE id IN ({marks})",
                per.datastream_id,
            )
        }
        updates = []
        for ds_id, i in zip(per.datastream_id, per.newest, strict=True):
            value, when = batch.result[i], batch.phenomenon_time[i]
            state = classify(value, Thresholds(*meta.get(ds_id, (None,) * 4)))
            updates.append((result_columns(value)[0], when, state, ds_id, when))
        tx.executemany(
            "UPDATE datastreams SET last_value = ?, last_time = ?, last_state = ? "
            "WHERE id = ? AND (last_time IS NULL OR last_time <= ?)",
            updates,
        )

    def count_rejections(self, reasons: dict[str, int]) -> None:
        """Add rejected readings to the persistent per-reason counters."""
        if not reasons:
            return
        for reason, n in reasons.items():
            self.stats.reject(reason, n)
        with self.transaction(write=True) as tx:
            tx.executemany(
                "INSERT INTO ingest_rejections (reason, n) VALUES (?, ?) "
                "ON CONFLICT (reason) DO UPDATE SET n = ingest_rejections.n + excluded.n",
                sorted(reasons.items()),
            )

    def rejection_counts(self) -> dict[str, int]:
        """Persistent counts of rejected readings by reason."""
        with self.transaction() as tx:
            return dict(tx.execute("SELECT reason, n FROM ingest_rejections ORDER BY reason"))

    def latest(self) -> list[tuple]:
        """``(datastream id, last value JSON, last time µs, state)`` of every datastream."""
        with self.transaction() as tx:
            return tx.execute(
                "SELECT id, last_value, last_time, last_state FROM datastreams ORDER BY id"
            )


#: every column of the observations table (those of a batch are a subset)
OBSERVATION_COLUMNS = (
    "id",
    "datastream_id",
    "phenomenon_time",
    "phenomenon_time_end",
    "result",
    "result_num",
    "result_str",
    "result_time",
    "result_quality",
    "valid_time_start",
    "valid_time_end",
    "parameters",
    "foi_id",
    "client_key",
)


def now_us() -> int:
    """Now, in µs since the epoch."""
    return time.time_ns() // 1000
