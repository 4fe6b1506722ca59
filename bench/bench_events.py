"""City events at scale: 1,000,000 cases in the live store (SQLite and PostgreSQL).

Measures, on a store holding ``--rows`` cases spread over a year (each with its
``report`` audit row; older ones closed, the last ten days' open in every state):

- **list/filter**: the list panel's query (one page of 100 + the total + the counts by
  state, as ``GET /api/events`` runs it) for the usual filters and free-text searches
  (``q=``: an address, a case number, a building, a two-character street, common words
  and single characters, whose total and counts stop at 1,000 matches: "1,000+";
  what those counts cost is printed apart); p50/p95 over repeats and the
  process's CPU. Target p95 ≤ 50 ms. Then ``GET /api/events`` itself on a real
  waitress server (a child process): wall p50/p95 and the server's CPU per request,
  i.e. the query plus what the request costs besides (the cases' JSON, Flask);
- **transitions/s**: ``EventStore.transition`` (read, check, update, audit row,
  counts; concurrent calls share one transaction and one log sync, the group commit)
  on fresh cases in-process from 1, 4 and 16 threads, then ``POST
  /api/events/<id>/transitions`` on the real server from 1 and 16 concurrent
  keep-alive clients, for ``--seconds`` each: the rate, latency p50/p95, CPU per
  transition (the bench's own in-process, the server's over HTTP) and the mean
  batch. Target 200/s sustained. ``--no-group-commit`` commits each transition on its
  own (the A/B);
- **statistics for a month** (the 综合评价: counts by state and department, on-time
  rate, mean handling time per category). Target ≤ 200 ms.

The cases are bulk-loaded (``executemany`` in one transaction), not through the
lifecycle: the point is the queries on a large table.

    .venv/bin/python bench/bench_events.py                      # SQLite, then PostgreSQL
    .venv/bin/python bench/bench_events.py --stores sqlite --rows 200000
    .venv/bin/python bench/bench_events.py --postgres postgresql://u@host/db
    .venv/bin/python bench/bench_events.py --only transitions --rows 100000 --seconds 10
    .venv/bin/python bench/bench_events.py --only transitions --rows 100000 --no-group-commit

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
from collections.abc import Callable, Iterator
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
#: the streets of the cases' places and addresses (each 1/40 of the cases)
STREETS = [
    "中山路", "解放路", "人民路", "建设路", "和平街", "胜利街", "迎泽大街", "府东街",
    "朝阳路", "文化路", "新华街", "长风街", "体育路", "并州路", "五一路", "柳巷",
    "桥东街", "府西街", "南华门", "双塔寺街", "滨河东路", "滨河西路", "千峰路", "漪汾街",
    "晋祠路", "长治路", "平阳路", "学府街", "亲贤街", "坞城路", "许坦东街", "小店街",
    "北大街", "敦化坊", "东岗路", "后小河", "杏花岭", "三墙路", "上马街", "新建路",
]  # fmt: skip
#: the free-text searches timed (``q=``): name → text. Selective ones (an address, a
#: case number, a building) and common words (the simulator's texts: 井盖 is in 12 %)
TEXT_SEARCHES = {
    "text 3+ chars: address": "中山路12号",
    "text 3+ chars: case number": "案卷 123457",
    "text 3+ chars: building": "B0012345",
    "text 2 chars Chinese: street": "柳巷",
    "text 3+ chars: common (6 %)": "井盖破损",
    "text 2 chars Chinese: common (12 %)": "井盖",
    "text 1 char: common (62 %)": "路",
    "text 1 char: rarer (2.5 %)": "柳",
    "text 1 char: in no case": "龘",
}
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
    from layers.simulate_events import SCENARIOS

    texts = [(t, sc.weight / len(sc.texts)) for sc in SCENARIOS for t in sc.texts]
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
            ev, au = _chunk(rng, start, n, rows, now_us, codes, cats, texts)
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
    if events.store.dialect == "postgresql":
        # what autovacuum does within a minute of a bulk load (seen 23 s after it): the
        # visibility map, without which the overdue filter's counts fetch each of its
        # ~20,000 matches from the heap (index-only scans need it); VACUUM cannot run in
        # a transaction
        with events.store.autocommit() as tx:  # type: ignore[attr-defined]
            for table in ("events", "event_audit", "events_text"):  # events_text: q=
                tx.execute(f"VACUUM ANALYZE {table}")
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
    cats: dict[str, tuple[str, str]], texts: list[tuple[str, float]],
) -> tuple[list[tuple], list[tuple]]:  # fmt: skip
    """``n`` cases: reported over the last year; older than ten days → finished. Their
    descriptions are the simulator's texts at a street address, with the case number;
    six in ten name a building."""
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
    weights = np.array([w for _, w in texts])
    text = rng.choice(len(texts), n, p=weights / weights.sum())
    street = rng.integers(0, len(STREETS), n)
    number = rng.integers(1, 300, n)
    building = np.where(rng.random(n) < 0.6, rng.integers(1, 10**7, n), 0)
    ev, au = [], []
    for i in range(n):
        s = str(state[i])
        is_open = recent[i]
        paused = s == "deferred"
        code = str(sub[i])
        r = int(reported[i])
        closed = None if is_open else r + int(handling[i])
        dl = int(deadline[i]) if is_open and not paused else None
        place = f"{STREETS[street[i]]}{number[i]}号"
        desc = texts[text[i]][0].format(place=place) + f"（案卷 {ids[i]}）"
        ev.append((
            int(ids[i]), code, cats[code][0], cats[code][1], "hotline",
            desc, "normal", s, None if not is_open else "handle",
            None if s in ("reported", "filed") else str(dept[i]),
            float(lon[i]), float(lat[i]), 1000.0, f"平城市{place}",
            f"B{building[i]:07d}" if building[i] else None, None, "bench",
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
        _print_list(name, out[name])
    for name, text in TEXT_SEARCHES.items():  # the index's (SQLite: FTS5, PostgreSQL: pg_trgm)
        f = EventFilter(text=text)
        common = "common" in name
        out[name] = _timed(
            lambda f=f: events.list_page(f, now), max(5, repeat // 4) if common else repeat
        )
        page = events.list_page(f, now)
        out[name]["total"], out[name]["capped"] = page.total, page.capped
        if common:  # what costs: the page, or the total and the counts by state (capped)
            t0 = time.perf_counter()
            with events.store.transaction() as tx:
                events._serial_search(tx, f)
                events._page_counts(tx, f, now)
            out[name]["counts_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        _print_list(name, out[name])
    return out


def _print_list(name: str, r: dict[str, float]) -> None:
    extra = f"  {r['total']:,}{'+' if r.get('capped') else ''} found" if "total" in r else ""
    extra += f", of which counts by state {r['counts_ms']} ms" if "counts_ms" in r else ""
    print(f"  list {name:26s} p50 {r['p50_ms']:8.2f} ms  p95 {r['p95_ms']:8.2f} ms  "
          f"(cpu p95 {r['p95_cpu_ms']:7.2f}){extra}", flush=True)  # fmt: skip


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


PLAN = [("file", {}), ("dispatch", {"department": "water"}), ("accept", {}),
        ("report_done", {}), ("check", {}), ("close", {})]  # fmt: skip


def _fresh_cases(events: EventStore, n: int) -> list[int]:
    """``n`` new cases in 信息采集, reported in one transaction (the transition runs
    then time transitions only, not reports)."""
    boss = Actor("bench", "admin")
    with events.store.transaction(write=True):  # the reports' transactions join it
        return [events.report(subcategory="SJ0102", source="api", description="bench",
                              reporter=boss, lon=112.5, lat=37.8).id or 0
                for _ in range(n)]  # fmt: skip


def _latency(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    if not ms:
        return {"p50_ms": 0.0, "p95_ms": 0.0}
    return {"p50_ms": round(ms[len(ms) // 2], 2),
            "p95_ms": round(ms[max(0, int(len(ms) * 0.95) - 1)], 2)}  # fmt: skip


def transitions(events: EventStore, seconds: float, threads: int) -> dict[str, float]:
    """Sustained transitions/s on fresh cases (file → dispatch → accept → report_done
    → check → close), each committed with its audit row, called in-process from
    ``threads`` threads (concurrent calls share a group commit)."""
    boss = Actor("bench", "admin")
    per = max(4, int(seconds * 600 / threads / len(PLAN)) + 2)  # cases enough for 600/s
    cases = _fresh_cases(events, per * threads)
    count = [0] * threads
    lat: list[list[float]] = [[] for _ in range(threads)]
    commits = events._commits
    b0 = (commits.batches, commits.items) if commits is not None else (0, 0)
    stop = time.perf_counter() + seconds

    def worker(k: int) -> None:
        for eid in cases[k * per : (k + 1) * per]:
            for action, kw in PLAN:
                t0 = time.perf_counter()
                events.transition(eid, action, boss, **kw)
                lat[k].append((time.perf_counter() - t0) * 1000)
                count[k] += 1
                if time.perf_counter() >= stop:
                    return

    c0, t0 = time.process_time(), time.perf_counter()
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = sum(count)
    out: dict[str, Any] = {"threads": threads, "transitions": n, "seconds": round(took, 2),
                           "per_second": round(n / took, 1),
                           "cpu_ms_per_transition": round(cpu * 1000 / max(n, 1), 2),
                           **_latency([x for xs in lat for x in xs])}  # fmt: skip
    if commits is not None and commits.batches > b0[0]:
        out["mean_batch"] = round((commits.items - b0[1]) / (commits.batches - b0[0]), 1)
    print(f"  transitions in-process, {threads:2d} thread(s): {n} in {took:.1f} s = "
          f"{n / took:.0f}/s  p50 {out['p50_ms']} ms  p95 {out['p95_ms']} ms  "
          f"cpu {out['cpu_ms_per_transition']} ms each  batch {out.get('mean_batch', 1)}",
          flush=True)  # fmt: skip
    return out


def _serve(store_url: str, group_commit: bool) -> None:
    """The events API on a real waitress server (a child process of the bench): prints
    its port, then serves until killed."""
    import tempfile as tf

    from layers.events import store as events_store
    from server import create_app
    from server.wsgi import create_server

    if not group_commit:  # the app makes its own EventStore: without the group commit
        real = events_store.EventStore.__init__

        def init(self: Any, *args: Any, **kw: Any) -> None:
            real(self, *args, **{**kw, "group_commit": False})

        events_store.EventStore.__init__ = init  # type: ignore[method-assign]
    out = Path(tf.gettempdir()) / "cim-bench-events-no-output"  # never made: no tiles
    app = create_app({"LIVE_STORE": store_url, "OUTPUT_DIR": out, "EVENTS_FROM_ALARMS": False})
    srv = create_server(app, host="127.0.0.1", port=0, threads=32)
    print(srv.effective_port, flush=True)
    srv.run()


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _server(store_url: str, group_commit: bool = True) -> Iterator[tuple[Any, int]]:
    """The events API served by a child process (:func:`_serve`): (process, port)."""
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", store_url,
         *([] if group_commit else ["--no-group-commit"])],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        yield proc, int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait(10)


def http_list(store_url: str, repeat: int) -> dict[str, dict[str, float]]:
    """``GET /api/events`` as the list panel sends it, over a real server (one client):
    wall p50/p95 and the server's CPU per request: the query plus what it does besides
    (the cases' JSON with their clocks, Flask, waitress)."""
    import http.client

    week = (dt.datetime.now(dt.UTC) - dt.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    queries = {"all, newest page": "", "open": "open=true", "state=handling": "state=handling",
               "department=water, open": "department=water&open=true",
               "overdue": "overdue=true", "last 7 days": f"from={week}"}  # fmt: skip
    out = {}
    with _server(store_url) as (proc, port):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for name, q in queries.items():
            ms = []
            c0 = _proc_cpu(proc.pid)
            for i in range(repeat + 1):
                t0 = time.perf_counter()
                c.request("GET", f"/api/events?{q}")
                r = c.getresponse()
                body = r.read()
                assert r.status == 200, body[:200]
                if i:  # the first warms the caches
                    ms.append((time.perf_counter() - t0) * 1000)
            cpu = (_proc_cpu(proc.pid) - c0) * 1000 / (repeat + 1)
            out[name] = {**_latency(ms), "server_cpu_ms": round(cpu, 2), "bytes": len(body)}
            print(f"  GET /api/events {name:26s} p50 {out[name]['p50_ms']:8.2f} ms  "
                  f"p95 {out[name]['p95_ms']:8.2f} ms  (server cpu {cpu:5.2f} ms per request)",
                  flush=True)  # fmt: skip
        c.close()
    return out


def http_transitions(
    events: EventStore, store_url: str, seconds: float, clients: int, group_commit: bool
) -> dict[str, Any]:
    """Sustained transitions/s through ``POST /api/events/<id>/transitions`` on a real
    waitress server (a child process) from ``clients`` concurrent keep-alive clients,
    each taking its own fresh cases through to 结案 with ``If-Match``. Prints the rate,
    the latency p50/p95 and the server's CPU per transition."""
    import http.client

    from layers.departments import add_department

    token = add_department(events.store, f"bench{time.monotonic_ns()}", "bench", admin=True)
    per = max(4, int(seconds * 600 / clients / len(PLAN)) + 2)
    cases = _fresh_cases(events, per * clients)
    with _server(store_url, group_commit) as (proc, port):
        count = [0] * clients
        errors = [0] * clients
        lat: list[list[float]] = [[] for _ in range(clients)]
        head = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/api/events/me", headers=head)  # warm: the runtime, the store
        conn.getresponse().read()
        conn.close()
        start = threading.Barrier(clients + 1)
        stop = [0.0]

        def client(k: int) -> None:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            start.wait()
            for eid in cases[k * per : (k + 1) * per]:
                version = 1
                for action, kw in PLAN:
                    body = json.dumps({"action": action, **kw})
                    t0 = time.perf_counter()
                    c.request("POST", f"/api/events/{eid}/transitions", body=body,
                              headers={**head, "If-Match": f'"v{version}"'})  # fmt: skip
                    r = c.getresponse()
                    r.read()
                    lat[k].append((time.perf_counter() - t0) * 1000)
                    if r.status != 200:
                        errors[k] += 1
                        break
                    version += 1
                    count[k] += 1
                    if time.perf_counter() >= stop[0]:
                        c.close()
                        return
            c.close()

        ts = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in ts:
            t.start()
        s0, t0 = _proc_cpu(proc.pid), time.perf_counter()
        stop[0] = t0 + seconds
        start.wait()
        for t in ts:
            t.join()
        took, server_cpu = time.perf_counter() - t0, _proc_cpu(proc.pid) - s0
    n = sum(count)
    out: dict[str, Any] = {"clients": clients, "transitions": n, "errors": sum(errors),
                           "seconds": round(took, 2), "per_second": round(n / took, 1),
                           "server_cpu_ms_per_transition": round(server_cpu * 1000 / max(n, 1), 2),
                           **_latency([x for xs in lat for x in xs])}  # fmt: skip
    print(f"  transitions over HTTP, {clients:2d} client(s): {n} in {took:.1f} s = "
          f"{n / took:.0f}/s  p50 {out['p50_ms']} ms  p95 {out['p95_ms']} ms  server cpu "
          f"{out['server_cpu_ms_per_transition']} ms each  errors {out['errors']}",
          flush=True)  # fmt: skip
    return out


def month_stats(events: EventStore, now: dt.datetime, repeat: int) -> dict[str, float]:
    """The 综合评价 of a month (cases reported in it)."""
    start = now - dt.timedelta(days=60)
    out = _timed(lambda: events.statistics(start, start + dt.timedelta(days=30)), repeat)
    print(f"  statistics for a month: p50 {out['p50_ms']} ms  p95 {out['p95_ms']} ms  "
          f"(cpu p95 {out['p95_cpu_ms']})")  # fmt: skip
    return out


def run(
    store_url: str, rows: int, repeat: int, seconds: float, only: str = "all",
    group_commit: bool = True, reuse: bool = False,
) -> dict[str, Any]:  # fmt: skip
    store = open_store(store_url)
    try:
        events = EventStore(store, events_config(), group_commit=group_commit)
        now = dt.datetime.now(dt.UTC)
        now_us = int(now.timestamp() * 1e6)
        with events.store.transaction() as tx:
            held = int(tx.scalar("SELECT count(*) FROM events"))
        if held and held != rows:
            raise SystemExit(f"the store holds {held:,} cases, not {rows:,}: run without --reuse")
        if reuse and held == rows:  # a store this bench filled (new indexes migrated now)
            with events.store.transaction(write=True) as tx:
                tx.execute("ANALYZE")
            took = 0.0
            print(f"  reusing the {rows:,} cases already in the store", flush=True)
        else:
            took = load(events, rows, now_us)
            print(f"  loaded {rows:,} cases + audit rows in {took:.0f} s "
                  f"({rows / took:,.0f}/s)", flush=True)  # fmt: skip
        result: dict[str, Any] = {"rows": rows, "load_seconds": round(took, 1)}
        summary: dict[str, Any] = {}
        if only in ("all", "list"):
            result["list"] = queries(events, now, repeat)
            result["http_list"] = http_list(store_url, repeat)
            result["stats_month"] = month_stats(events, now, max(5, repeat // 5))
            # a search's total and counts stop at EventStore.count_cap matches ("1,000+")
            summary["list_p95_worst_ms"] = max(v["p95_ms"] for v in result["list"].values())
            summary["text_common_p95_ms"] = {
                k: v["p95_ms"] for k, v in result["list"].items() if "common" in k
            }
            summary["stats_month_p95_ms"] = result["stats_month"]["p95_ms"]
        if only == "list":
            result["summary"] = summary
            return result
        result["per_transition"] = per_transition(events)
        result["transitions"] = [transitions(events, seconds, n) for n in (1, 4, 16)]
        result["http_transitions"] = [
            http_transitions(events, store_url, seconds, n, group_commit) for n in (1, 16)
        ]
        summary.update(result["per_transition"])
        summary["transitions_per_s"] = {
            t["threads"]: t["per_second"] for t in result["transitions"]
        }
        summary["http_transitions_per_s"] = {
            t["clients"]: t["per_second"] for t in result["http_transitions"]
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
    ap.add_argument("--only", choices=("all", "transitions", "list"), default="all",
                    help="transitions: skip the list and statistics queries; list: skip "
                    "the transitions")  # fmt: skip
    ap.add_argument("--no-group-commit", action="store_true",
                    help="commit each transition on its own (to compare)")  # fmt: skip
    ap.add_argument("--reuse", action="store_true",
                    help="keep the store (SQLite: in --dir; or --postgres) when it holds "
                    "--rows cases (after transitions it holds more: load anew)")  # fmt: skip
    ap.add_argument("--serve", metavar="STORE", help=argparse.SUPPRESS)  # the HTTP child
    args = ap.parse_args(argv)
    if args.serve:
        _serve(args.serve, not args.no_group_commit)
        return 0
    gc = not args.no_group_commit
    load1, load5, _ = os.getloadavg()
    print(f"load average {load1:.1f} (1 min), {load5:.1f} (5 min) on {os.cpu_count()} CPUs; "
          "on a busy machine the figures are lower bounds", flush=True)  # fmt: skip
    results: dict[str, Any] = {}
    for kind in args.stores.split(","):
        print(f"{kind}:", flush=True)
        if kind == "sqlite":
            folder = args.dir or Path(tempfile.mkdtemp(prefix="cim-bench-events-"))
            path = folder / "events-bench.sqlite"
            if not args.reuse:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)  # our own from a last run
            results[kind] = run(str(path), args.rows, args.repeat, args.seconds, args.only, gc,
                                args.reuse)  # fmt: skip
        elif args.postgres:
            results[kind] = run(args.postgres, args.rows, args.repeat, args.seconds, args.only, gc,
                                args.reuse)  # fmt: skip
        else:
            from pgserver import pg_missing, start_pg, stop_pg

            problem = pg_missing()
            if problem:
                print(f"  skipped: {problem}")
                continue
            server = start_pg()
            try:
                results[kind] = run(server.fresh_database(), args.rows, args.repeat,
                                    args.seconds, args.only, gc)  # fmt: skip
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
