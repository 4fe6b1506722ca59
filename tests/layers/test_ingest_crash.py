"""``kill -9`` of the server while readings arrive over HTTP (``CreateObservations``),
on SQLite and PostgreSQL: every acknowledged reading is in the store, and a client
that sends again what was not acknowledged gets every reading stored exactly once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from mqtt_fixtures import free_port

from layers.departments import add_department
from layers.store import open_store

ROOT = Path(__file__).resolve().parents[2]
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
STREAMS = 10
PER_STREAM = 20  # readings per datastream per batch: 200 per request
BATCHES = 60
T0 = 1_700_000_000

SERVER = """
import sys
from waitress import serve
from server import create_app
serve(create_app({"LIVE_STORE": sys.argv[1]}), host="127.0.0.1", port=int(sys.argv[2]),
      threads=4, _quiet=True)
"""


def start_server(store_url: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, store_url, str(port)],
        env=env,
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            assert proc.poll() is None, "the server did not start"
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("the server did not listen")


def prepare(store_url: str) -> tuple[str, list[int]]:
    st = open_store(store_url)
    token = add_department(st, "water", "water")
    ids = []
    with st.transaction(write=True) as tx:
        sensor = tx.insert("sensors", {"name": "s", "department": "water"})
        prop = tx.insert("observed_properties", {"name": "p", "department": "water"})
        for i in range(STREAMS):
            thing = tx.insert("things", {"name": f"t{i}", "department": "water"})
            row = {
                "name": f"d{i}",
                "observation_type": MEASUREMENT,
                "unit_of_measurement": "{}",
                "thing_id": thing,
                "sensor_id": sensor,
                "observed_property_id": prop,
                "department": "water",
            }
            ids.append(tx.insert("datastreams", row))
    st.close()
    return token, ids


def body(ids: list[int], b: int) -> bytes:
    """Batch ``b``: PER_STREAM readings per datastream at times of its own."""
    docs = []
    for ds in ids:
        rows = [
            [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0 + b * PER_STREAM + j)), b + j]
            for j in range(PER_STREAM)
        ]
        docs.append(
            {
                "Datastream": {"@iot.id": ds},
                "components": ["phenomenonTime", "result"],
                "dataArray": rows,
            }
        )
    return json.dumps(docs).encode()


def send(url: str, token: str, ids: list[int], todo: list[int], acked: set[int]) -> None:
    """Post the batches ``todo`` from 3 keep-alive clients; note those acknowledged."""
    lock = threading.Lock()
    queue = list(todo)

    def worker() -> None:
        s = requests.Session()
        s.headers.update({"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        while True:
            with lock:
                if not queue:
                    return
                b = queue.pop(0)
            try:
                r = s.post(f"{url}/CreateObservations", data=body(ids, b), timeout=30)
            except requests.RequestException:
                continue  # the server died: not acknowledged
            if r.status_code == 201 and all(x.startswith("http") for x in r.json()):
                with lock:
                    acked.add(b)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def stored_per_batch(store_url: str) -> dict[int, int]:
    st = open_store(store_url)
    try:
        with st.transaction() as tx:
            times = [r[0] for r in tx.execute("SELECT phenomenon_time FROM observations")]
        out: dict[int, int] = {}
        for t in times:
            b = (t // 1_000_000 - T0) // PER_STREAM
            out[b] = out.get(b, 0) + 1
        return out
    finally:
        st.close()


@pytest.mark.slow
def test_server_killed_during_http_ingest_loses_nothing_acknowledged(store_url):
    token, ids = prepare(store_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/sta/v1.1"
    server = start_server(store_url, port)
    acked: set[int] = set()
    try:
        sender = threading.Thread(target=send, args=(url, token, ids, list(range(BATCHES)), acked))
        sender.start()
        deadline = time.monotonic() + 60
        while len(acked) < BATCHES // 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        server.send_signal(signal.SIGKILL)  # wherever it is: mid-request, mid-commit
        server.wait(10)
        sender.join(60)
        assert BATCHES // 3 <= len(acked) < BATCHES
        per_batch = stored_per_batch(store_url)
        lost = [b for b in acked if per_batch.get(b, 0) != STREAMS * PER_STREAM]
        assert lost == [], f"acknowledged batches not (wholly) stored: {lost}"
        # the client sends again what it did not hear back about; some of it may have
        # been committed just before the kill: recognised, not stored twice
        server = start_server(store_url, port)
        retry = [b for b in range(BATCHES) if b not in acked]
        send(url, token, ids, retry, acked)
        assert acked == set(range(BATCHES))
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(10)
    per_batch = stored_per_batch(store_url)
    assert per_batch == {b: STREAMS * PER_STREAM for b in range(BATCHES)}
    st = open_store(store_url)
    try:
        with st.transaction() as tx:
            distinct = tx.scalar(
                "SELECT count(*) FROM (SELECT DISTINCT datastream_id, phenomenon_time "
                "FROM observations) d"
            )
        assert int(distinct) == BATCHES * STREAMS * PER_STREAM
    finally:
        st.close()
