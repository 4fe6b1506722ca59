"""City events at scale: 1,000,000 cases in the live store (SQLite and PostgreSQL).

Measures, on a store holding ``--rows`` cases spread over a year (each with its
``report`` audit row; older ones closed, the last ten days' open in every state):

- **list/filter**: the list panel's query (one page of 100 + the total + the counts by
  state, as ``GET /api/events`` runs it) for the usual filters; p50/p95 over repeats.
  Target p95 ≤ 50 ms;
- **transitions/s**: ``EventStore.transition`` (re-read, check, update, audit row, one
  transaction each) on fresh cases, from 1 and from 4 threads for ``--seconds`` each.
  Target 200/s sustained;
- **statistics for a month** (the 综合评价: counts by state and department, on-time
  rate, mean handling time per category). Target ≤ 200 ms.

The cases are bulk-loaded (``executemany`` in one transaction), not through the
lifecycle: the point is the queries on a large table.

    .venv/bin/python bench/bench_events.py                      # SQLite, then PostgreSQL
    .venv/bin/python bench/bench_events.py --stores sqlite --rows 200000
    .venv/bin/python bench/bench_events.py --postgres postgresql://u@host/db
    .venv/bin/python bench/bench_events.py --only transitions --rows 50000 --seconds 10

Before the sustained runs it prints, for PostgreSQL, the round trips and WAL fsyncs
per transition (``pg_stat_wal``); the load average is printed at start and end.

Without ``--postgres`` a throw-away PostgreSQL is started from Debian's binaries (as
the tests do). Results go to stdout and, with ``--json``, to a file.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "layers"))

from layers.events.config import events_config  # noqa: E402
from layers.events.model import Actor  # noqa: E402
from layers.events.store import COLUMNS, EventFilter, EventStore  # noqa: E402
from layers.store import open_store  # noqa: E402

DEPARTMENTS = ["sanitation", "water", "police", "greening", "housing", "traffic", "power",
               "environment", "cityadmin", "emergency"]  # fmt: skip
OPEN_STATES = ["reported", "filed", "dispatched", "handling", "extension_requested",
               "deferral_requested", "deferred", "handled", "checked"]  # fmt: skip
#: the city's extent (the sample city 平城 is around here)
WEST, SOUTH, EAST, NORTH = 112.40, 37.75, 112.70, 37.95
HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
CHUNK = 50_000


def _columns() -> list[str]:
    return [*COLUMNS, "deadline", "approach_at", "open_datastream"]


def load(events: EventStore, rows: int, now_us: int, seed: int = 7) -> float:
    """Bulk-load ``rows`` cases and one audit row each; seconds taken."""
    rng = np.random.default_rng(seed)
    codes = [s.code for c in events.config.table.categories for s in c.subcategories]
    cats = {s.code: (c.code, c.cls) for c in events.config.table.categories
            for s in c.subcategories}  # fmt: skip
    cols = _columns()
    marks = ", ".join("?" * len(cols))
    ev_sql = f"INSERT INTO events ({', '.join(cols)}) VALUES ({marks})"
    au_sql = ("INSERT INTO event_audit (id, event_id, at, actor, role, action, from_state, "
              "to_state, note, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")  # fmt: skip
    t0 = time.perf_counter()
    with events.store.transaction(write=True) as tx:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            ev, au = _chunk(rng, start, n, rows, now_us, codes, cats)
            if events.store.dialect == "postgresql":
                _copy(tx, "events", cols, ev)  # COPY: ~10x faster than row inserts
                _copy(tx, "event_audit", AUDIT_COLUMNS, au)
            else:
                tx.executemany(ev_sql, ev)
                tx.executemany(au_sql, au)
        if events.store.dialect == "postgresql":
            for table in ("events", "event_audit"):
                tx.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                           f"(SELECT max(id) FROM {table}))")  # fmt: skip
    events.rebuild_counts()  # the bulk load bypassed the store's counting
    with events.store.transaction(write=True) as tx:
        tx.execute("ANALYZE")
    return time.perf_counter() - t0


AUDIT_COLUMNS = ["id", "event_id", "at", "actor", "role", "action", "from_state", "to_state",
                 "note", "data"]  # fmt: skip


def _copy(tx: Any, table: str, columns: list[str], rows: list[tuple]) -> None:
    """Rows into a PostgreSQL table with one ``COPY``."""
    with tx.conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
        for row in rows:
            cp.write_row(row)


def _chunk(
    rng: np.random.Generator, start: int, n: int, total: int, now_us: int, codes: list[str],
    cats: dict[str, tuple[str, str]],
) -> tuple[list[tuple], list[tuple]]:  # fmt: skip
    """``n`` cases: reported over the last year; older than ten days → finished."""
    ids = np.arange(start + 1, start + n + 1)
    # ids follow the report time, as in a store filled day by day
    span = 365 * DAY_US
    age = (span * (1 - (ids - 1) / total)).astype(np.int64) - rng.integers(0, span // total + 1, n)
    reported = now_us - age
    recent = age < 10 * DAY_US
    final = rng.choice(["closed", "evaluated", "cancelled"], n, p=[0.6, 0.35, 0.05])
    state = np.where(recent, rng.choice(OPEN_STATES, n), final)
    sub = rng.choice(codes, n)
    dept = rng.choice(DEPARTMENTS, n)
    lon = rng.uniform(WEST, EAST, n)
    lat = rng.uniform(SOUTH, NORTH, n)
    handling = rng.integers(HOUR_US, 5 * DAY_US, n)
    late = rng.random(n) < 0.12
    limit = 4 * HOUR_US
    deadline = reported + rng.integers(HOUR_US, 3 * DAY_US, n)
    ev, au = [], []
    for i in range(n):
        s = str(state[i])
        is_open = recent[i]
        paused = s == "deferred"
        code = str(sub[i])
        r = int(reported[i])
        closed = None if is_open else r + int(handling[i])
        dl = int(deadline[i]) if is_open and not paused else None
        ev.append((
            int(ids[i]), code, cats[code][0], cats[code][1], "hotline",
            f"案卷 {ids[i]} {code} 巡查上报", "normal", s, None if not is_open else "handle",
            None if s in ("reported", "filed") else str(dept[i]),
            float(lon[i]), float(lat[i]), 1000.0, None, None, None, "bench",
            r, closed or r, closed if s != "cancelled" else r,
            r if is_open else None, limit if is_open else None, 0,
            r + HOUR_US if paused else None, None, 3, int(late[i]), 0, None, None,
            dl, None if dl is None else dl - HOUR_US, None,
        ))  # fmt: skip
        au.append((int(ids[i]), int(ids[i]), r, "bench", "operator", "report", None,
                   "reported", "", None))  # fmt: skip
    return ev, au


def _timed(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    """Wall time, and this process's CPU time (for SQLite, which runs in-process, the
    query's own cost on a machine shared with other work)."""
    fn()  # warm the caches once
    times, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    times.sort()
    cpu.sort()
    p95 = max(0, int(len(times) * 0.95) - 1)
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[p95], 2),
        "max_ms": round(times[-1], 2),
        "p95_cpu_ms": round(cpu[p95], 2),
    }


def queries(events: EventStore, now: dt.datetime, repeat: int) -> dict[str, dict[str, float]]:
    """The list panel's query (page + total + counts by state) for each filter."""
    lon, lat = (WEST + EAST) / 2, (SOUTH + NORTH) / 2
    week = now - dt.timedelta(days=7)
    filters = {
        "all, newest page": EventFilter(),
        "open": EventFilter(open=True),
        "state=handling": EventFilter(states=["handling"]),
        "department=water, open": EventFilter(departments=["water"], open=True),
        "department=water (all)": EventFilter(departments=["water"]),
        "category SJ01": EventFilter(categories=["SJ01"]),
        "subcategory SJ0102": EventFilter(subcategories=["SJ0102"]),
        "overdue": EventFilter(overdue=True),
        "approaching": EventFilter(approaching=True),
        "bbox 1 km": EventFilter(bbox=(lon - 0.006, lat - 0.0045, lon + 0.006, lat + 0.0045)),
        "last 7 days": EventFilter(reported_after=week),
        "page 50 of open": EventFilter(open=True, offset=5000),
    }
    out = {}
    for name, f in filters.items():

        def run(f: EventFilter = f) -> None:
            events.list_page(f, now)

        out[name] = _timed(run, repeat)
        print(f"  list {name:26s} p50 {out[name]['p50_ms']:8.2f} ms  "
              f"p95 {out[name]['p95_ms']:8.2f} ms  (cpu p95 {out[name]['p95_cpu_ms']:7.2f})",
              flush=True)  # fmt: skip
    text = EventFilter(text="巡查上报 1234")
    out["text search (full scan)"] = _timed(lambda: events.list_events(text, now), 3)
    print(f"  list text search (no index) p95 {out['text search (full scan)']['p95_ms']} ms")
    return out


class RoundTrips:
    """Counts the client's waits on the PostgreSQL server (one per round trip: each
    statement, BEGIN, COMMIT) while active, by wrapping ``psycopg.Connection.wait``."""

    def __init__(self) -> None:
        self.n = 0
        self._lock = threading.Lock()

    def __enter__(self) -> RoundTrips:
        import psycopg

        self._orig = psycopg.Connection.wait
        orig, counter = self._orig, self

        def counted(gen: Any) -> Any:
            # a wait whose generator never yields touched no socket (a setting)
            try:
                ready = next(gen)
            except StopIteration as stop:
                return stop.value
            with counter._lock:
                counter.n += 1
            while True:
                sent = yield ready
                try:
                    ready = gen.send(sent)
                except StopIteration as stop:
                    return stop.value

        def wait(conn: Any, gen: Any, *args: Any, **kw: Any) -> Any:
            return orig(conn, counted(gen), *args, **kw)

        psycopg.Connection.wait = wait  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        import psycopg

        psycopg.Connection.wait = self._orig  # type: ignore[method-assign]


def _wal_syncs(events: EventStore) -> int | None:
    """PostgreSQL's WAL fsyncs so far (``pg_stat_wal``, PostgreSQL 14+), else None."""
    if events.store.dialect != "postgresql":
        return None
    try:
        with events.store.transaction() as tx:
            tx.execute("SELECT pg_stat_clear_snapshot()")
            return int(tx.scalar("SELECT wal_sync FROM pg_stat_wal"))
    except Exception:
        return None


def per_transition(events: EventStore, n: int = 60) -> dict[str, float]:
    """Round trips to PostgreSQL and WAL fsyncs per transition, from ``n`` transitions
    in one thread (SQLite: no round trips; one WAL fsync per commit with FULL)."""
    boss = Actor("bench", "admin")
    ids = [events.report(subcategory="SJ0102", source="api", description="bench",
                         reporter=boss, lon=112.5, lat=37.8).id or 0
           for _ in range(n)]  # fmt: skip
    syncs0 = _wal_syncs(events)
    pg = events.store.dialect == "postgresql"
    with RoundTrips() if pg else contextlib.nullcontext() as rt:
        for event_id in ids:
            events.transition(event_id, "file", boss)
    syncs1 = _wal_syncs(events)
    out: dict[str, float] = {}
    if rt is not None:
        out["round_trips"] = round(rt.n / n, 2)
    if syncs0 is not None and syncs1 is not None:
        # cluster-wide and noisy: the WAL writer syncs too, sometimes for a commit
        out["wal_syncs"] = round((syncs1 - syncs0 - 1) / n, 2)  # less the stats read's
    if out:
        print(f"  per transition: {out}", flush=True)
    return out


def transitions(events: EventStore, seconds: float, threads: int) -> dict[str, float]:
    """Sustained transitions/s on fresh cases (file → dispatch → accept → report_done
    → check → close), each one transaction with its audit row."""
    boss = Actor("bench", "admin")
    plan = [("file", {}), ("dispatch", {"department": "water"}), ("accept", {}),
            ("report_done", {}), ("check", {}), ("close", {})]  # fmt: skip
    count = [0] * threads
    stop = time.perf_counter() + seconds

    def worker(k: int) -> None:
        while time.perf_counter() < stop:
            e = events.report(subcategory="SJ0102", source="api", description="bench",
                              reporter=boss, lon=112.5, lat=37.8)  # fmt: skip
            for action, kw in plan:
                events.transition(e.id or 0, action, boss, **kw)
                count[k] += 1
                if time.perf_counter() >= stop:
                    return

    t0 = time.perf_counter()
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.perf_counter() - t0
    rate = sum(count) / took
    print(f"  transitions, {threads} thread(s): {sum(count)} in {took:.1f} s = {rate:.0f}/s",
          flush=True)  # fmt: skip
    return {"threads": threads, "transitions": sum(count), "seconds": round(took, 2),
            "per_second": round(rate, 1)}  # fmt: skip


def month_stats(events: EventStore, now: dt.datetime, repeat: int) -> dict[str, float]:
    """The 综合评价 of a month (cases reported in it)."""
    start = now - dt.timedelta(days=60)
    out = _timed(lambda: events.statistics(start, start + dt.timedelta(days=30)), repeat)
    print(f"  statistics for a month: p50 {out['p50_ms']} ms  p95 {out['p95_ms']} ms  "
          f"(cpu p95 {out['p95_cpu_ms']})")  # fmt: skip
    return out


def run(
    store_url: str, rows: int, repeat: int, seconds: float, only: str = "all"
) -> dict[str, Any]:
    store = open_store(store_url)
    try:
        events = EventStore(store, events_config())
        now = dt.datetime.now(dt.UTC)
        now_us = int(now.timestamp() * 1e6)
        took = load(events, rows, now_us)
        print(f"  loaded {rows:,} cases + audit rows in {took:.0f} s ({rows / took:,.0f}/s)",
              flush=True)  # fmt: skip
        result: dict[str, Any] = {"rows": rows, "load_seconds": round(took, 1)}
        summary: dict[str, Any] = {}
        if only == "all":
            result["list"] = queries(events, now, repeat)
            result["stats_month"] = month_stats(events, now, max(5, repeat // 5))
            summary["list_p95_worst_ms"] = max(
                v["p95_ms"] for k, v in result["list"].items() if "text" not in k
            )
            summary["stats_month_p95_ms"] = result["stats_month"]["p95_ms"]
        result["per_transition"] = per_transition(events)
        result["transitions"] = [transitions(events, seconds, n) for n in (1, 4)]
        summary.update(result["per_transition"])
        summary["transitions_per_s"] = {
            t["threads"]: t["per_second"] for t in result["transitions"]
        }
        result["summary"] = summary
        return result
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--stores", default="sqlite,postgresql")
    ap.add_argument("--postgres", help="an existing PostgreSQL URL (else a throw-away one)")
    ap.add_argument("--repeat", type=int, default=60, help="runs of each list query")
    ap.add_argument("--seconds", type=float, default=10.0, help="per transitions run")
    ap.add_argument("--dir", type=Path, help="where the SQLite store goes (default: a tmp dir)")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--only", choices=("all", "transitions"), default="all",
                    help="transitions: skip the list and statistics queries")  # fmt: skip
    args = ap.parse_args(argv)
    load1, load5, _ = os.getloadavg()
    print(f"load average {load1:.1f} (1 min), {load5:.1f} (5 min) on {os.cpu_count()} CPUs; "
          "on a busy machine the figures are lower bounds", flush=True)  # fmt: skip
    results: dict[str, Any] = {}
    for kind in args.stores.split(","):
        print(f"{kind}:", flush=True)
        if kind == "sqlite":
            folder = args.dir or Path(tempfile.mkdtemp(prefix="cim-bench-events-"))
            path = folder / "events-bench.sqlite"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)  # our own file from a last run
            results[kind] = run(str(path), args.rows, args.repeat, args.seconds, args.only)
        elif args.postgres:
            results[kind] = run(args.postgres, args.rows, args.repeat, args.seconds, args.only)
        else:
            from pgserver import pg_missing, start_pg, stop_pg

            problem = pg_missing()
            if problem:
                print(f"  skipped: {problem}")
                continue
            server = start_pg()
            try:
                results[kind] = run(server.fresh_database(), args.rows, args.repeat,
                                    args.seconds, args.only)  # fmt: skip
            finally:
                stop_pg(server)
    load1, load5, _ = os.getloadavg()
    print(f"load average at the end {load1:.1f} (1 min), {load5:.1f} (5 min)")
    print(json.dumps({k: v["summary"] for k, v in results.items()}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
