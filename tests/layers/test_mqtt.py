"""MQTT ingest against a real mosquitto: stored before acknowledged, redelivered after a
crash, never stored twice, bad readings counted, and on the live stream."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from mqtt_fixtures import SseClient, make_streams

from layers.mqtt_ingest import MqttIngest, parse_message, parse_messages
from layers.store import open_store

ROOT = Path(__file__).resolve().parents[2]


def publisher(url: str):
    import paho.mqtt.client as mqtt

    from layers.bus import mqtt_client

    client, host, port = mqtt_client(url, f"pub-{uuid.uuid4().hex[:8]}")
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(1000)
    client.connect(host, port)
    client.loop_start()
    assert isinstance(client, mqtt.Client)
    return client


def send(client, ds: int, payload, qos: int = 1):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.publish(f"v1.1/Datastreams({ds})/Observations", body, qos=qos)


def stamp(i: int) -> str:
    return f"2024-05-01T08:{i // 3600 % 60:02d}:{i // 60 % 60:02d}.{i % 60:02d}Z"


def count(store, sql: str = "SELECT count(*) FROM observations") -> int:
    with store.transaction() as tx:
        return int(tx.scalar(sql))


def wait_count(store, n: int, timeout: float = 30.0) -> int:
    end = time.monotonic() + timeout
    c = count(store)
    while c < n and time.monotonic() < end:
        time.sleep(0.05)
        c = count(store)
    return c


@pytest.fixture
def sqlite_store(tmp_path):
    store = open_store(tmp_path / "live.sqlite")
    yield store
    store.close()


def test_parse_message():
    cols, why = parse_message("v1.1/Datastreams(12)/Observations", b'{"result": 3}', 5_000_000)
    assert why is None and len(cols) == 1
    assert (cols.datastream_id, cols.result, cols.phenomenon_time) == (
        [12],
        [3],
        ["1970-01-01T00:00:05Z"],  # no phenomenonTime: the time it arrived
    )
    assert cols.result_time is None and cols.foi_id is None  # absent members: no column
    body = b'[{"result": 1, "phenomenonTime": "2024-01-01T00:00:00Z"}, {"x": 1}, 7]'
    cols, why = parse_message("v1.0/Datastreams(3)/Observations", body, 0)
    assert why is None and cols.result == [1, None, None]  # the bad ones rejected later
    assert cols.datastream_id == [3, 3, 3]
    assert cols.phenomenon_time[0] == "2024-01-01T00:00:00Z"
    assert parse_message("v1.1/Things(3)/Observations", b"{}", 0)[1].startswith("not a Sensor")
    assert parse_message("v1.1/Datastreams(3)/Observations", b"{oops", 0)[1].startswith("malformed")
    foi = (
        b'[{"result": 1, "FeatureOfInterest": {"@iot.id": 9}, "resultTime": "2024"}, {"result": 2}]'
    )
    cols = parse_message("v1.1/Datastreams(3)/Observations", foi, 0)[0]
    assert cols.foi_id == [9, None] and cols.result_time == ["2024", None]
    # orjson refuses the NaN token some devices send: the standard parser reads it, so
    # that reading alone is rejected by the checks
    nan = b'[{"result": NaN}, {"result": 2.5}]'
    assert parse_message("v1.1/Datastreams(3)/Observations", nan, 0)[0].result[1] == 2.5


def test_parse_messages_keeps_columns_aligned_across_messages():
    t = "v1.1/Datastreams({})/Observations"
    cols, why = parse_messages(
        [
            (t.format(1), b'{"result": 1, "phenomenonTime": "2024-01-01T00:00:00Z"}', 0),
            ("v1.1/Things(2)/Observations", b'{"result": 2}', 0),
            (t.format(3), b"{oops", 0),
            (t.format(4), b'[{"result": 4, "resultTime": "2024"}, {"result": 5}]', 7_000_000),
            (t.format(1), b'{"result": 6, "FeatureOfInterest": {"@iot.id": 8}}', 0),
        ]
    )
    assert [w if w is None else w.split(":")[0] for w in why] == [
        None,
        "not a SensorThings Observations topic",
        "malformed",
        None,
        None,
    ]
    assert cols.datastream_id == [1, 4, 4, 1] and cols.result == [1, 4, 5, 6]
    assert cols.phenomenon_time[1:3] == ["1970-01-01T00:00:07Z"] * 2
    assert cols.result_time == [None, "2024", None, None]
    assert cols.foi_id == [None, None, None, 8]
    assert cols.parameters is None  # no reading carries it: no column


def test_readings_are_stored_and_acknowledged(mosquitto, sqlite_store):
    ds = make_streams(sqlite_store, 2)
    announced = []
    ingest = MqttIngest(
        sqlite_store,
        mosquitto.url,
        client_id=f"t-{uuid.uuid4().hex[:8]}",
        on_commit=lambda rows, res: announced.extend(rows),
    ).start()
    pub = publisher(mosquitto.url)
    try:
        assert ingest.wait_subscribed()
        infos = [send(pub, ds[i % 2], {"result": i * 0.5, "phenomenonTime": stamp(i)})
                 for i in range(200)]  # fmt: skip
        send(pub, ds[0], [{"result": 1000.0, "phenomenonTime": stamp(500)},
                          {"result": 1001.0, "phenomenonTime": stamp(501)}])  # fmt: skip
        for info in infos:
            info.wait_for_publish(10)
        assert wait_count(sqlite_store, 202) == 202
        end = time.monotonic() + 5
        while ingest.counters.acked < 201 and time.monotonic() < end:
            time.sleep(0.02)
        c = ingest.counters
        assert (c.messages, c.stored, c.duplicates, c.rejected, c.acked) == (201, 202, 0, 0, 201)
        assert sorted(r.result for r in announced)[-2:] == [1000.0, 1001.0]
        with sqlite_store.transaction() as tx:
            last = tx.one("SELECT last_value, last_state FROM datastreams WHERE id = ?", [ds[0]])
        assert json.loads(last[0]) == 1001.0 and last[1] == "normal"
    finally:
        pub.loop_stop()
        pub.disconnect()
        ingest.stop()


def test_bad_readings_are_rejected_counted_and_never_sink_the_batch(mosquitto, sqlite_store):
    (ds,) = make_streams(sqlite_store, 1)
    ingest = MqttIngest(sqlite_store, mosquitto.url, client_id=f"t-{uuid.uuid4().hex[:8]}")
    ingest.start()
    pub = publisher(mosquitto.url)
    try:
        assert ingest.wait_subscribed()
        bad = [
            (ds, b"{not json"),
            (ds, {"result": "high"}),  # a number stream
            (ds, b'{"result": NaN}'),
            (ds, {"result": 1, "phenomenonTime": "2999-01-01T00:00:00Z"}),
            (ds + 999, {"result": 1}),  # unknown datastream
            (ds, {"value": 1}),  # no result
        ]
        for target, payload in bad:
            send(pub, target, payload)
        pub.publish("v1.1/Things(1)/Observations", b'{"result": 1}', qos=1)
        send(pub, ds, {"result": 2.5, "phenomenonTime": stamp(1)}).wait_for_publish(5)
        assert wait_count(sqlite_store, 1) == 1
        end = time.monotonic() + 5
        while ingest.counters.acked < 8 and time.monotonic() < end:
            time.sleep(0.02)
        c = ingest.counters
        assert (c.messages, c.stored, c.rejected, c.acked) == (8, 1, 7, 8)
        reasons = sqlite_store.rejection_counts()
        assert sum(reasons.values()) == 7
        for key in (
            "unknown datastream",
            "wrong result type",
            "not finite",
            "far future",
            "result is missing",
            "malformed",
            "not a SensorThings Observations topic",
        ):
            assert reasons.get(key) == 1, reasons
        with sqlite_store.transaction() as tx:
            assert math.isclose(json.loads(tx.scalar("SELECT result FROM observations")), 2.5)
    finally:
        pub.loop_stop()
        pub.disconnect()
        ingest.stop()


def test_duplicates_are_recognised(mosquitto, sqlite_store):
    (ds,) = make_streams(sqlite_store, 1)
    ingest = MqttIngest(sqlite_store, mosquitto.url, client_id=f"t-{uuid.uuid4().hex[:8]}")
    ingest.start()
    pub = publisher(mosquitto.url)
    try:
        assert ingest.wait_subscribed()
        for _ in range(3):
            send(pub, ds, {"result": 7.0, "phenomenonTime": stamp(3)}).wait_for_publish(5)
        end = time.monotonic() + 10
        while ingest.counters.acked < 3 and time.monotonic() < end:
            time.sleep(0.02)
        assert count(sqlite_store) == 1
        assert (ingest.counters.stored, ingest.counters.duplicates) == (1, 2)
    finally:
        pub.loop_stop()
        pub.disconnect()
        ingest.stop()


def test_persistent_session_keeps_readings_sent_while_the_server_is_down(mosquitto, sqlite_store):
    (ds,) = make_streams(sqlite_store, 1)
    cid = f"t-{uuid.uuid4().hex[:8]}"
    first = MqttIngest(sqlite_store, mosquitto.url, client_id=cid).start()
    assert first.wait_subscribed()
    first.stop()
    pub = publisher(mosquitto.url)
    try:
        for i in range(50):
            send(pub, ds, {"result": float(i), "phenomenonTime": stamp(i)}).wait_for_publish(5)
        assert count(sqlite_store) == 0
        second = MqttIngest(sqlite_store, mosquitto.url, client_id=cid).start()
        try:
            assert wait_count(sqlite_store, 50) == 50
        finally:
            second.stop()
    finally:
        pub.loop_stop()
        pub.disconnect()


# --- crashes: a subscriber process killed with SIGKILL ---------------------------------

WORKER = """
import os, signal, sys, time
from layers.store import open_store
from layers.mqtt_ingest import MqttIngest
store_url, broker, cid, kill_after = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
store = open_store(store_url)
commits = 0
def on_commit(rows, results):
    # after the commit, before the acknowledgements: the window that must not lose or
    # double anything
    global commits
    commits += 1
    if kill_after and commits >= kill_after:
        os.kill(os.getpid(), signal.SIGKILL)
ingest = MqttIngest(store, broker, client_id=cid, on_commit=on_commit,
                    batch_max=50, batch_wait=0.002).start()
print("ready" if ingest.wait_subscribed(20) else "not subscribed", flush=True)
while True:
    time.sleep(1)
"""


def start_worker(store_url: str, broker: str, cid: str, kill_after: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, store_url, broker, cid, str(kill_after)],
        stdout=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def assert_exactly_once(store_url: str, n: int) -> None:
    store = open_store(store_url)
    try:
        assert wait_count(store, n) == n
        time.sleep(0.5)  # nothing more trickles in
        assert count(store) == n, "a reading was stored twice"
        distinct = (
            "SELECT count(*) FROM (SELECT DISTINCT datastream_id, phenomenon_time, result "
            "FROM observations) d"
        )
        assert count(store, distinct) == n
    finally:
        store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def crash_store(request, tmp_path):
    if request.param == "sqlite":
        url = str(tmp_path / "live.sqlite")
    else:
        url = request.getfixturevalue("pg_server").fresh_database()
    store = open_store(url)
    ds = make_streams(store, 3)
    store.close()
    return url, ds


def test_killed_after_commit_before_ack_loses_nothing_and_stores_nothing_twice(
    mosquitto, crash_store
):
    url, ds = crash_store
    cid = f"crash-{uuid.uuid4().hex[:8]}"
    n = 600
    worker = start_worker(url, mosquitto.url, cid, kill_after=3)
    pub = publisher(mosquitto.url)
    try:
        infos = [send(pub, ds[i % 3], {"result": float(i), "phenomenonTime": stamp(i)})
                 for i in range(n)]  # fmt: skip
        for info in infos:
            info.wait_for_publish(20)  # acknowledged by the broker: must all end up stored
        assert worker.wait(30) == -signal.SIGKILL
        store = open_store(url)
        stored = count(store)
        store.close()
        assert 0 < stored < n  # killed mid-stream, with committed but unacknowledged ones
        worker = start_worker(url, mosquitto.url, cid, kill_after=0)
        assert_exactly_once(url, n)
    finally:
        stop(worker)
        pub.loop_stop()
        pub.disconnect()


def test_killed_at_any_moment_while_readings_flow(mosquitto, crash_store):
    url, ds = crash_store
    cid = f"crash-{uuid.uuid4().hex[:8]}"
    n = 1500
    worker = start_worker(url, mosquitto.url, cid, kill_after=0)
    pub = publisher(mosquitto.url)
    store = open_store(url)
    try:
        infos = []
        for i in range(n):
            infos.append(send(pub, ds[i % 3], {"result": float(i), "phenomenonTime": stamp(i)}))
            if i == n // 3:
                wait_count(store, 1, timeout=10)
            if i == n // 2:
                os.kill(worker.pid, signal.SIGKILL)  # wherever it is
                worker.wait(10)
        for info in infos:
            info.wait_for_publish(20)
        assert count(store) < n
        worker = start_worker(url, mosquitto.url, cid, kill_after=0)
        assert_exactly_once(url, n)
    finally:
        store.close()
        stop(worker)
        pub.loop_stop()
        pub.disconnect()


# --- end to end: MQTT in, SSE out --------------------------------------------------------


def test_mqtt_readings_reach_the_live_stream(mosquitto, sqlite_store):
    import threading

    from server import create_app
    from server.blueprints.live import live_runtime, stop_live
    from server.wsgi import create_server

    ds = make_streams(sqlite_store, 2, properties={"thresholds": {"alarm_high": 8}})
    app = create_app(
        {
            "LIVE_STORE": str(sqlite_store.path),
            "LIVE_MQTT": mosquitto.url,
            "LIVE_MQTT_CLIENT_ID": f"srv-{uuid.uuid4().hex[:8]}",
            "TESTING": True,
        }
    )
    rt = live_runtime(app)
    assert rt.ingest is not None  # started with the app, before any screen connects
    srv = create_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    pub = publisher(mosquitto.url)
    try:
        assert rt.ingest.wait_subscribed()
        client = SseClient(srv.effective_port)
        assert client.next().event == "snapshot"
        send(pub, ds[1], {"result": 9.0, "phenomenonTime": stamp(1)})
        got = client.deltas(2)
        obs = next(d for d in got if d["kind"] == "observation")
        assert (obs["ds"], obs["value"], obs["state"]) == (ds[1], 9.0, "alarm")
        assert count(sqlite_store) == 1  # committed before it was streamed
        client.close()
    finally:
        pub.loop_stop()
        pub.disconnect()
        stop_live(app)
        srv.close()
        thread.join(5)
        app.extensions["cim.live"].store.close()
