"""The embedded live store: one SQLite file in WAL mode.

Durability: ``journal_mode=WAL`` with ``synchronous=FULL``. In WAL mode ``NORMAL``
survives a crash of the process but may lose the last commits on power loss, and an
acknowledged reading must never be lost, so every commit syncs the WAL (``FULL``). The
cost is one fsync per transaction, which batches amortise.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from cim.errors import DatasetIOError
from layers.store.base import ConnectionPool, Store, Tx

logger = logging.getLogger(__name__)

# how long a writer waits for another (SQLite's busy timeout and our own write gate)
_WRITE_WAIT_S = 30.0

#: the ``->>`` JSON operator (SQLite 3.38): batches inserted from one JSON array
_JSON_ARROW = sqlite3.sqlite_version_info >= (3, 38, 0)


def _json_rows(rows: list[tuple]) -> str | None:
    """The rows as one JSON array of arrays, or None when a value has no exact JSON
    form (a float that is not finite, an integer beyond 64 bits, bytes): those batches
    take ``executemany``."""
    try:
        text = orjson.dumps(rows)
    except TypeError:
        return None
    if b"null" in text:  # orjson writes NaN and infinities as null: check they are not
        for row in rows:
            for v in row:
                if type(v) is float and not math.isfinite(v):
                    return None
    return text.decode()


class SqliteTx(Tx):
    """A transaction on one SQLite connection."""

    def __init__(self, store: SqliteStore, conn: sqlite3.Connection) -> None:
        self.store = store
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.conn.execute(sql, params).fetchall()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)


class SqliteStore(Store):
    """The live store in a SQLite file (created when missing).

    Parameters
    ----------
    path : Path
        The database file. Its folder must exist.
    """

    dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise DatasetIOError("the live store's folder does not exist", path=self.path.parent)
        self._pool = ConnectionPool(self._connect, _close_quietly)
        self._write_gate = threading.Lock()

    @contextmanager
    def _gate_for_write(self) -> Iterator[None]:
        """Hold this process's write gate, waiting as long as SQLite's busy timeout."""
        if not self._write_gate.acquire(timeout=_WRITE_WAIT_S):
            raise DatasetIOError(
                f"the live store stayed busy for {_WRITE_WAIT_S:.0f} s", path=self.path
            )
        try:
            yield
        finally:
            self._write_gate.release()

    def describe(self) -> str:
        return str(self.path)

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=_WRITE_WAIT_S
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={int(_WRITE_WAIT_S * 1000)}")
        except sqlite3.Error as exc:
            raise DatasetIOError(f"cannot open the live store ({exc})", path=self.path) from exc
        conn.create_function("cim_geo", 3, _geo_function, deterministic=True)
        return conn

    @contextmanager
    def transaction(self, write: bool = False) -> Iterator[SqliteTx]:
        conn = self._pool.current()
        if conn is not None:  # nested use in one thread joins the open transaction
            yield SqliteTx(self, conn)
            return
        conn = self._pool.acquire()
        # this process's writers queue here, not in SQLite's busy handler: that one
        # retries by sleeping (1, 2, 5 … 100 ms), so a commit that met another writer
        # (an alarm opening a case) slept long after the write lock was free
        gate = self._gate_for_write() if write else contextlib.nullcontext()
        try:
            with gate:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield SqliteTx(self, conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        except BaseException:
            self._pool.release(conn, broken=conn.in_transaction)
            raise
        self._pool.release(conn)

    def close(self) -> None:
        self._pool.close_all()

    def _reserve_ids(self, tx: Tx, table: str, n: int) -> list[int]:
        # the write lock is held (BEGIN IMMEDIATE): nobody else can take these ids
        start = int(tx.scalar(f"SELECT coalesce(max(id), 0) FROM {table}")) + 1
        return list(range(start, start + n))

    def _has_table(self, tx: Tx, name: str) -> bool:
        sql = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
        return bool(tx.scalar(sql, [name]))

    def _bulk_insert_observations(self, tx: Tx, columns: list[str], rows: list[tuple]) -> int:
        conn = tx.conn  # type: ignore[attr-defined]
        before = conn.total_changes
        names = ", ".join(columns)
        packed = _json_rows(rows) if _JSON_ARROW else None
        if packed is not None:
            # one statement for the batch: SQLite walks the JSON array itself. With
            # executemany, Python's sqlite3 releases and retakes the GIL around every
            # row, and under load each retake may wait a whole switch interval for
            # another busy thread (the MQTT network loop, the other requests): a batch
            # of 5,000 rows took 100+ ms of wall time for 30 ms of CPU
            values = ", ".join(f"value ->> {i}" for i in range(len(columns)))
            conn.execute(
                f"INSERT INTO observations ({names}) SELECT {values} FROM json_each(?) "
                "WHERE true ON CONFLICT DO NOTHING",  # WHERE: an upsert after a SELECT
                [packed],
            )
        else:
            marks = ", ".join("?" * len(columns))
            conn.executemany(
                f"INSERT INTO observations ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING",
                rows,
            )
        return conn.total_changes - before  # the skipped duplicates change nothing

    def _present_ids(self, tx: Tx, ids: list[int]) -> set[int]:
        # reserved under the write lock: one contiguous range
        rows = tx.execute("SELECT id FROM observations WHERE id BETWEEN ? AND ?", [ids[0], ids[-1]])
        return {r[0] for r in rows}

    def geometry_assignment(self, geojson_text: str | None) -> tuple[str, Any] | None:
        return None  # SQLite keeps only the GeoJSON text; predicates run in shapely

    def sql_geo(self, fn: str, table_alias: str, column: str) -> str:
        call = f"cim_geo('{fn}', {table_alias}.{column}, ?)"
        return call if fn in ("distance", "length") else f"({call} = 1)"

    def sql_json(self, column: str) -> str:
        return f"json_extract({column}, ?)"

    def sql_json_number(self, expr: str) -> str:
        return expr  # json_extract already returns numbers as numbers

    def json_path_param(self, keys: list[str]) -> object:
        # Keys as they are (ensure_ascii=False): SQLite compares a path label with the
        # stored key's text, which the store writes as UTF-8, and reads no \uXXXX there
        return "$" + "".join("." + json.dumps(k, ensure_ascii=False) for k in keys)

    def sql_datepart(self, part: str, expr: str) -> str:
        fmt = {"year": "%Y", "month": "%m", "day": "%d", "hour": "%H", "minute": "%M"}
        if part == "second":
            return f"(CAST(strftime('%S', ({expr}) / 1000000, 'unixepoch') AS INTEGER))"
        if part == "date":
            return f"date(({expr}) / 1000000, 'unixepoch')"
        return f"CAST(strftime('{fmt[part]}', ({expr}) / 1000000, 'unixepoch') AS INTEGER)"

    def sql_func(self, name: str, args: list[str]) -> str:
        a = args
        if name == "instr":
            return f"instr({a[0]}, {a[1]})"
        if name == "ceiling":
            return f"(CAST({a[0]} AS INTEGER) + ({a[0]} > CAST({a[0]} AS INTEGER)))"
        if name == "floor":
            return f"(CAST({a[0]} AS INTEGER) - ({a[0]} < CAST({a[0]} AS INTEGER)))"
        if name == "mod":
            return f"({a[0]} % {a[1]})"
        raise KeyError(name)


def _close_quietly(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.close()


@lru_cache(maxsize=256)
def _wkt_geometry(wkt: str) -> Any:
    import shapely

    geom = shapely.from_wkt(wkt)
    shapely.prepare(geom)
    return geom


@lru_cache(maxsize=4096)
def _json_geometry(text: str) -> Any:
    import shapely

    data = json.loads(text)
    if data.get("type") == "Feature":
        data = data.get("geometry")
    return shapely.from_geojson(json.dumps(data))


def _geo_function(fn: str, geojson: str | None, wkt: str) -> Any:
    """``geo.*`` of the SensorThings filter on SQLite, in shapely (lon/lat degrees)."""
    if geojson is None or wkt is None:
        return None
    from shapely.errors import ShapelyError

    try:
        a = _json_geometry(geojson)
        b = _wkt_geometry(wkt)
    except (ValueError, TypeError, AttributeError, ShapelyError):
        # a stored location that is not a geometry matches no geo.* filter (NULL);
        # anything else is a bug and surfaces
        return None
    if fn == "distance":
        return float(a.distance(b))
    if fn == "length":
        return float(a.length)
    return int(bool(getattr(a, fn)(b)))
