"""The live store in PostgreSQL + PostGIS (``[live] store = "postgresql://..."``).

Uses psycopg 3, one connection per thread. Geometries are kept as GeoJSON text (what
the API returns) and in a PostGIS ``geometry(Geometry, 4326)`` column with a GiST
index (what ``geo.*`` filters use). Observation batches go in with one ``COPY`` into
the table; a batch holding a reading stored before (a redelivery) fails that as a
whole and goes in with ``COPY`` into a temporary table and one
``INSERT … ON CONFLICT DO NOTHING``. Commits are synchronous
(PostgreSQL's default ``synchronous_commit = on``): acknowledged means on disk.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from cim.errors import DatasetIOError
from layers.store.base import ConnectionPool, Store, Tx
from layers.store.batch import ObservationBatch

logger = logging.getLogger(__name__)

_PASSWORD = re.compile(r"(://[^:/@]+:)[^@]*@")


def _adapt(sql: str) -> str:
    """``?`` placeholders → psycopg's ``%s`` (the SQL carries no other ``?`` or ``%``)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresTx(Tx):
    """A transaction on one psycopg connection."""

    def __init__(self, store: PostgresStore, conn: Any) -> None:
        self.store = store
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        cur = self.conn.execute(_adapt(sql), list(params) or None, prepare=False)
        return cur.fetchall() if cur.description else []

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(_adapt(sql), rows)

    def execute_prepared(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """:meth:`execute` as a server-side prepared statement, kept by the connection:
        for a hot statement of a few fixed texts (the server then skips its parsing
        and planning). Not for ad hoc SQL, which would fill psycopg's cache."""
        cur = self.conn.execute(_adapt(sql), list(params) or None, prepare=True)
        return cur.fetchall() if cur.description else []


class PostgresStore(Store):
    """The live store in a PostgreSQL database with the PostGIS extension.

    Parameters
    ----------
    url : str
        ``postgresql://user:password@host:port/dbname``.
    """

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        super().__init__()
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:  # pragma: no cover - a dependency
            raise DatasetIOError("psycopg is not installed (pip install psycopg[binary])") from exc
        self.url = url
        self._pool = ConnectionPool(self._connect, lambda conn: conn.close())

    def describe(self) -> str:
        return _PASSWORD.sub(r"\1***@", self.url)

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=False)
        except psycopg.Error as exc:
            raise DatasetIOError(f"cannot open the live store {self.describe()} ({exc})") from exc

    @contextmanager
    def transaction(self, write: bool = False) -> Iterator[PostgresTx]:
        conn = self._pool.current()
        if conn is not None:  # nested: a savepoint inside the open transaction
            with conn.transaction():
                yield PostgresTx(self, conn)
            return
        conn = self._pool.acquire()
        try:
            with conn.transaction():
                yield PostgresTx(self, conn)
        except BaseException:
            self._pool.release(conn, broken=conn.closed or conn.broken)
            raise
        self._pool.release(conn)

    @contextmanager
    def autocommit(self) -> Iterator[PostgresTx]:
        """Statements that each commit on their own: no BEGIN and COMMIT round trips,
        for reads and for a write that is one statement (a statement is atomic, and
        returns once committed). Inside this thread's open transaction: that one."""
        conn = self._pool.current()
        if conn is not None:
            yield PostgresTx(self, conn)
            return
        conn = self._pool.acquire()
        try:
            conn.autocommit = True
            yield PostgresTx(self, conn)
        finally:
            self._release_autocommit(conn)

    def _release_autocommit(self, conn: Any) -> None:
        """Back to the pool as a transactional connection, or closed when it cannot
        be (broken, or interrupted mid-statement)."""
        import psycopg

        try:
            conn.autocommit = False
        except psycopg.Error:  # broken, or a statement still running on it
            self._pool.release(conn, broken=True)
            return
        self._pool.release(conn, broken=conn.closed or conn.broken)

    def close(self) -> None:
        self._pool.close_all()

    def _lock_schema(self, tx: Tx) -> None:
        tx.execute("SELECT pg_advisory_xact_lock(4242001)")

    def _reserve_ids(self, tx: Tx, table: str, n: int) -> list[int]:
        rows = tx.execute(
            f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, ?)",
            [n],
        )
        return [int(r[0]) for r in rows]

    def _lock_parents(self, tx: Tx, batch: ObservationBatch) -> None:
        # what the dropped foreign keys did per row (schema version 2), once per batch:
        # a KEY SHARE lock keeps each parent from being deleted until the commit
        parents = [("datastreams", set(batch.datastream_id))]
        if batch.foi_id is not None:
            parents.append(("features_of_interest", set(batch.foi_id) - {None}))
        for table, wanted in parents:
            if not wanted:
                continue
            rows = tx.execute(
                f"SELECT id FROM {table} WHERE id = ANY(?) ORDER BY id FOR KEY SHARE",
                [sorted(wanted)],
            )
            gone = wanted - {int(r[0]) for r in rows}
            if gone:
                raise DatasetIOError(
                    f"{table} {sorted(gone)[:5]} were deleted while their readings were "
                    "being stored; nothing of this batch was stored (send it again)"
                )

    def _has_table(self, tx: Tx, name: str) -> bool:
        return bool(tx.scalar("SELECT to_regclass(?) IS NOT NULL", [name]))

    def _bulk_insert_observations(self, tx: Tx, columns: list[str], rows: list[tuple]) -> int:
        conn = tx.conn  # type: ignore[attr-defined]
        cols = ", ".join(columns)
        # most batches hold no reading stored before: COPY straight into the table
        # (PostgreSQL's multi-row insert path, the cheapest there is); a duplicate
        # fails it as a whole, and the batch goes the careful way instead
        try:
            with conn.transaction(), conn.cursor() as cur:  # a savepoint
                with cur.copy(f"COPY observations ({cols}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                return len(rows)
        except psycopg_errors().UniqueViolation:
            pass
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS obs_in "
            "(LIKE observations INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with conn.cursor() as cur:
            with cur.copy(f"COPY obs_in ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(
                f"INSERT INTO observations ({cols}) OVERRIDING SYSTEM VALUE "
                f"SELECT {cols} FROM obs_in ON CONFLICT DO NOTHING"
            )
            return cur.rowcount

    def _present_ids(self, tx: Tx, ids: list[int]) -> set[int]:
        rows = tx.execute("SELECT id FROM observations WHERE id = ANY(?)", [ids])
        return {int(r[0]) for r in rows}

    def geometry_assignment(self, geojson_text: str | None) -> tuple[str, Any] | None:
        # 2D in the index; heights stay in the GeoJSON
        return "ST_Force2D(ST_SetSRID(ST_GeomFromGeoJSON(?), 4326))", _geometry_json(geojson_text)

    def sql_geo(self, fn: str, table_alias: str, column: str) -> str:
        col = f"{table_alias}.{column}_geom"
        other = "ST_GeomFromText(?, 4326)"
        if fn == "distance":
            return f"ST_Distance({col}, {other})"
        if fn == "length":
            return f"ST_Length({col})"
        name = {
            "intersects": "ST_Intersects",
            "within": "ST_Within",
            "disjoint": "ST_Disjoint",
            "contains": "ST_Contains",
            "crosses": "ST_Crosses",
            "touches": "ST_Touches",
            "overlaps": "ST_Overlaps",
            "equals": "ST_Equals",
        }[fn]
        return f"{name}({col}, {other})"

    def sql_json(self, column: str) -> str:
        return f"(CAST({column} AS jsonb) #>> CAST(? AS text[]))"

    def sql_json_number(self, expr: str) -> str:
        # expr carries a placeholder: name it once (no '?' in the pattern either)
        # (the first group is what substring returns: it spans the whole number)
        pattern = "^(-{0,1}[0-9]+([.][0-9]+){0,1}([eE][-+]{0,1}[0-9]+){0,1})$"
        return f"CAST(substring({expr} from '{pattern}') AS DOUBLE PRECISION)"

    def json_path_param(self, keys: list[str]) -> object:
        return keys

    def sql_datepart(self, part: str, expr: str) -> str:
        ts = f"to_timestamp(({expr}) / 1000000.0) AT TIME ZONE 'UTC'"
        if part == "date":
            return f"to_char({ts}, 'YYYY-MM-DD')"
        if part == "second":
            return f"CAST(floor(EXTRACT(SECOND FROM {ts})) AS INTEGER)"
        return f"CAST(EXTRACT({part.upper()} FROM {ts}) AS INTEGER)"

    def sql_func(self, name: str, args: list[str]) -> str:
        a = args
        if name == "instr":
            return f"strpos({a[0]}, {a[1]})"
        if name == "ceiling":
            return f"ceiling({a[0]})"
        if name == "floor":
            return f"floor({a[0]})"
        if name == "mod":
            return f"mod(CAST({a[0]} AS NUMERIC), CAST({a[1]} AS NUMERIC))"
        raise KeyError(name)


def psycopg_errors() -> Any:
    """``psycopg.errors`` (imported where PostgreSQL is used, not at module import)."""
    import psycopg.errors

    return psycopg.errors


def _geometry_json(text: str | None) -> str | None:
    """The geometry part of stored GeoJSON (a Feature's geometry), for PostGIS."""
    if not text:
        return None
    data = json.loads(text)
    if data.get("type") == "Feature":
        data = data.get("geometry")
    return json.dumps(data) if data else None
