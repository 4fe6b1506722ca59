"""Ingest throughput of the SensorThings API: readings/s in HTTP ``CreateObservations``
batches, acknowledged only after the commit, into SQLite and into PostgreSQL.

The server runs in its own process (waitress, as ``cim serve`` runs it); the client
sends batches over keep-alive connections from a few threads and counts readings
acknowledged with a self link. At the end the store is counted: every acknowledged
reading must be there, exactly once.

    .venv/bin/python bench/bench_live_ingest.py                  # both stores
    .venv/bin/python bench/bench_live_ingest.py --stores sqlite --readings 200000
    .venv/bin/python bench/bench_live_ingest.py --postgres postgresql://u@host/db

    .venv/bin/python bench/bench_live_ingest.py --in-process      # no HTTP: the ingest path

Without ``--postgres`` a throw-away PostgreSQL is started from Debian's binaries
(as the tests do). Target (issue "Live sensors"): ≥ 50,000 readings/s into each store.

Besides the wall-clock rate, each line gives the server process's CPU time per reading
(``/proc``; PostgreSQL's own processes not included) and the rate that makes per
CPU-second: on a machine shared with other work the wall-clock rate says more about
the neighbours than about the code. ``--in-process`` runs what one
``CreateObservations`` request runs (parse the body, check, store, commit, build the
answer) in this process, without HTTP.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "layers"))

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(store: str, port: int, threads: int) -> None:
    """Run the app with waitress on ``port`` (the server process)."""
    import logging

    from waitress import serve as waitress_serve

    from server import create_app

    logging.basicConfig(level=logging.WARNING)
    app = create_app({"LIVE_STORE": store})
    waitress_serve(app, host="127.0.0.1", port=port, threads=threads, _quiet=True)


def prepare(store_url: str, streams: int) -> tuple[str, list[int]]:
    """A department token and ``streams`` datastreams in a fresh store."""
    from layers.departments import add_department
    from layers.store import open_store

    st = open_store(store_url)
    token = add_department(st, "bench", "bench")
    ids = []
    with st.transaction(write=True) as tx:
        sensor = tx.insert("sensors", {"name": "s", "department": "bench"})
        prop = tx.insert("observed_properties", {"name": "p", "department": "bench"})
        for i in range(streams):
            thing = tx.insert("things", {"name": f"t{i}", "department": "bench"})
            ids.append(
                tx.insert(
                    "datastreams",
                    {
                        "name": f"d{i}",
                        "observation_type": MEASUREMENT,
                        "unit_of_measurement": "{}",
                        "thing_id": thing,
                        "sensor_id": sensor,
                        "observed_property_id": prop,
                        "department": "bench",
                    },
                )
            )
    st.close()
    return token, ids


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of a process and its children, living and reaped (PostgreSQL: the
    postmaster and its backends)."""
    total = cpu_seconds(root)
    try:
        fields = Path(f"/proc/{root}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")  # reaped
    except OSError:
        return 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == root:
                total += cpu_seconds(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return total


def request_bodies(ids: list[int], readings: int, batch: int, t0: int) -> list[bytes]:
    """``CreateObservations`` bodies: ``batch`` readings each over the datastreams ``ids``."""
    per_stream = batch // len(ids) or 1
    bodies = []
    for b in range(readings // batch):
        docs = []
        for ds in ids:
            base = t0 + b * per_stream  # times unique within each stream
            rows = [
                [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + j)), float(j % 97)]
                for j in range(per_stream)
            ]
            docs.append(
                {
                    "Datastream": {"@iot.id": ds},
                    "components": ["phenomenonTime", "result"],
                    "dataArray": rows,
                }
            )
        bodies.append(json.dumps(docs).encode())
    return bodies


def run_client(
    url: str,
    token: str,
    ids: list[int],
    readings: int,
    batch: int,
    clients: int,
    t0: int = 1_700_000_000,
) -> tuple[int, float, list[float]]:
    """Send ``readings`` in batches from ``clients`` threads; acknowledged count, seconds,
    per-batch latencies."""
    import requests

    bodies = request_bodies(ids, readings, batch, t0)
    acked = 0
    lat: list[float] = []
    lock = threading.Lock()
    todo = iter(bodies)

    def worker() -> None:
        nonlocal acked
        session = requests.Session()
        session.headers.update(
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        )
        while True:
            with lock:
                body = next(todo, None)
            if body is None:
                return
            t = time.perf_counter()
            r = session.post(f"{url}/CreateObservations", data=body)
            dt = time.perf_counter() - t
            r.raise_for_status()
            ok = sum(1 for x in r.json() if x.startswith("http"))
            with lock:
                acked += ok
                lat.append(dt)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return acked, time.perf_counter() - start, lat


def bench_store(
    name: str, store_url: str, args: argparse.Namespace, db_pid: int | None = None
) -> dict:
    token, ids = prepare(store_url, args.streams)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", store_url, "--port", str(port),
         "--threads", str(args.server_threads)],
        cwd=REPO,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api/sta/v1.1"
    try:
        import requests

        for _ in range(200):
            try:
                requests.get(url, timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        # warm-up: imports, first connections, token check cache
        run_client(url, token, ids, args.batch, args.batch, 1, t0=1_600_000_000)
        cpu0 = cpu_seconds(proc.pid)
        db0 = tree_cpu_seconds(db_pid) if db_pid else 0.0
        acked, seconds, lat = run_client(url, token, ids, args.readings, args.batch, args.clients)
        server_cpu = cpu_seconds(proc.pid) - cpu0
        db_cpu = tree_cpu_seconds(db_pid) - db0 if db_pid else None
    finally:
        proc.terminate()
        proc.wait(10)
    from layers.store import open_store

    st = open_store(store_url)
    with st.transaction() as tx:
        stored = int(tx.scalar("SELECT count(*) FROM observations"))
    st.close()
    lat.sort()
    return {
        "store": name,
        "readings_acknowledged": acked,
        "stored": stored - args.batch,  # less the warm-up batch
        "seconds": round(seconds, 2),
        "readings_per_s": round(acked / seconds),
        "batch": args.batch,
        "clients": args.clients,
        "batch_latency_p50_ms": round(lat[len(lat) // 2] * 1000, 1),
        "batch_latency_p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 1),
        "server_cpu_us_per_reading": round(server_cpu / max(acked, 1) * 1e6, 1),
        "readings_per_server_cpu_s": round(acked / server_cpu) if server_cpu else None,
        "database_cpu_us_per_reading": (
            round(db_cpu / max(acked, 1) * 1e6, 1) if db_cpu is not None else None
        ),
    }


def bench_in_process(
    name: str, store_url: str, args: argparse.Namespace, db_pid: int | None = None
) -> dict:
    """What the ``CreateObservations`` handler does, without HTTP: body → answer."""
    import orjson

    from layers.departments import authenticate
    from layers.ingest import ingest_columns
    from layers.store import open_store
    from server.blueprints.sta import ReadingColumns, _data_array, data_array_answer

    token, ids = prepare(store_url, args.streams)
    st = open_store(store_url)
    dept = authenticate(st, token)
    assert dept is not None

    # CPU seconds per stage: parse (JSON → columns), check (ingest_columns less the
    # store), store (insert, latest values, commit), answer (the self links)
    stages = dict.fromkeys(("parse", "check", "store", "answer"), 0.0)
    insert_batch = st.insert_batch

    def timed_insert(batch: object) -> object:
        c = time.thread_time()
        try:
            return insert_batch(batch)  # type: ignore[arg-type]
        finally:
            stages["store"] += time.thread_time() - c

    st.insert_batch = timed_insert  # type: ignore[method-assign]

    def handle(body: bytes) -> int:
        c0 = time.thread_time()
        docs = orjson.loads(body)
        cols = ReadingColumns.concat([_data_array(doc) for doc in docs])
        c1 = time.thread_time()
        stored0 = stages["store"]
        done = ingest_columns(st, dept, cols)
        c2 = time.thread_time()
        data_array_answer(done, "http://127.0.0.1/api/sta/v1.1")
        c3 = time.thread_time()
        stages["parse"] += c1 - c0
        stages["check"] += (c2 - c1) - (stages["store"] - stored0)
        stages["answer"] += c3 - c2
        return len(done.ids) - done.ids.count(None)

    handle(request_bodies(ids, args.batch, args.batch, 1_600_000_000)[0])  # warm-up
    bodies = request_bodies(ids, args.readings, args.batch, 1_700_000_000)
    wall, cpu = time.perf_counter(), time.process_time()
    db_cpu = tree_cpu_seconds(db_pid) if db_pid else 0.0
    stages.update(dict.fromkeys(stages, 0.0))
    acked = sum(handle(b) for b in bodies)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    db_cpu = tree_cpu_seconds(db_pid) - db_cpu if db_pid else None
    with st.transaction() as tx:
        stored = int(tx.scalar("SELECT count(*) FROM observations")) - args.batch
    st.close()
    return {
        "store": name,
        "mode": "in-process",
        "readings_acknowledged": acked,
        "stored": stored,
        "seconds": round(wall, 2),
        "readings_per_s": round(acked / wall),
        "batch": args.batch,
        "clients": 1,
        "server_cpu_us_per_reading": round(cpu / acked * 1e6, 1),
        "readings_per_server_cpu_s": round(acked / cpu),
        "database_cpu_us_per_reading": (
            round(db_cpu / max(acked, 1) * 1e6, 1) if db_cpu is not None else None
        ),
        "stage_cpu_us_per_reading": {
            k: round(v / max(acked, 1) * 1e6, 2) for k, v in stages.items()
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=4, help=argparse.SUPPRESS)
    p.add_argument("--stores", default="sqlite,postgresql")
    p.add_argument("--postgres", help="an existing empty PostgreSQL+PostGIS database URL")
    p.add_argument("--readings", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=5_000, help="readings per request")
    p.add_argument("--streams", type=int, default=50, help="datastreams per request")
    p.add_argument("--clients", type=int, default=2, help="concurrent client connections")
    p.add_argument("--server-threads", type=int, default=4)
    p.add_argument("--in-process", action="store_true", help="no HTTP: the ingest path only")
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.threads)
        return
    results = []
    stores = args.stores.split(",")
    bench = bench_in_process if args.in_process else bench_store
    if "sqlite" in stores:
        with tempfile.TemporaryDirectory() as d:
            results.append(bench("sqlite", str(Path(d) / "live.sqlite"), args))
    if "postgresql" in stores:
        if args.postgres:
            results.append(bench("postgresql", args.postgres, args))
        else:
            from pgserver import pg_missing, start_pg, stop_pg

            why = pg_missing()
            if why:
                print(f"postgresql: skipped ({why})", file=sys.stderr)
            else:
                server = start_pg()
                try:
                    pid_file = server.folder / "data" / "postmaster.pid"
                    db_pid = int(pid_file.read_text().split()[0])
                    results.append(bench("postgresql", server.fresh_database(), args, db_pid))
                finally:
                    stop_pg(server)
    cpu = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    for r in results:
        lost = r["readings_acknowledged"] - r["stored"]
        latency = (
            f"batch p50 {r['batch_latency_p50_ms']} ms, p99 {r['batch_latency_p99_ms']} ms; "
            if "batch_latency_p50_ms" in r
            else "in-process; "
        )
        if "stage_cpu_us_per_reading" in r:
            latency += (
                "CPU µs/reading by stage: "
                + ", ".join(f"{k} {v}" for k, v in r["stage_cpu_us_per_reading"].items())
                + "; "
            )
        db = r.get("database_cpu_us_per_reading")
        db_text = f"PostgreSQL CPU {db} µs/reading; " if db is not None else ""
        print(
            f"{r['store']:<10} {r['readings_per_s']:>8,} readings/s  "
            f"({r['readings_acknowledged']:,} acknowledged in {r['seconds']} s, "
            f"batch {r['batch']:,}, {r['clients']} clients, {cpu} CPUs, load {load:.1f}; "
            f"{latency}server CPU {r['server_cpu_us_per_reading']} µs/reading = "
            f"{r['readings_per_server_cpu_s'] or 0:,} readings per CPU-second; {db_text}"
            f"acknowledged but not stored: {lost})"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
