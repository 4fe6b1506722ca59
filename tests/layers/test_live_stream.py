"""The live stream: the hub (snapshot, deltas, resume, filters, states) and the
Server-Sent Events endpoint over a real HTTP server (waitress, as ``cim serve``)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from mqtt_fixtures import SseClient, make_streams

from layers.bus import InProcessBus
from layers.live import LiveHub, StreamFilter, place_of
from layers.states import ALARM, NORMAL, STALE, WARNING
from layers.store import open_store

S = 1_000_000
T0 = 1_700_000_000 * S  # a fixed reading time (µs)


@dataclass
class Row:
    datastream_id: int
    phenomenon_time: int
    result: Any


@dataclass
class Res:
    id: int
    duplicate: bool = False


def publish(hub: LiveHub, readings: list[tuple[int, Any, int]]) -> None:
    """Announce (datastream, value, time µs) readings as committed."""
    rows = [Row(ds, t, v) for ds, v, t in readings]
    hub.publish_committed(rows, [Res(i + 1) for i in range(len(rows))])


def wait_head(hub: LiveHub, seq: int, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while hub.head < seq and time.monotonic() < end:
        time.sleep(0.01)
    assert hub.head >= seq


@pytest.fixture
def world(tmp_path):
    """A store with 3 water-level streams (thresholds, stale after 60 s) along a line
    from (116, 39) and 2 police traffic streams from (120, 30)."""
    store = open_store(tmp_path / "live.sqlite")
    props = {"thresholds": {"warn_high": 5, "alarm_high": 8}, "stale_after": 60}
    water = make_streams(store, 3, "water", "water level", properties=props)
    police = make_streams(store, 2, "police", "traffic flow", lon0=120.0, lat0=30.0)
    yield store, water, police
    store.close()


@pytest.fixture
def hub(world) -> Iterator[LiveHub]:
    store = world[0]
    h = LiveHub(store, InProcessBus(), ring_size=64, notify_interval=0.005).start()
    yield h
    h.close()


def read_all(stream: Iterator[str], n: int) -> list[str]:
    return [next(stream) for _ in range(n)]


def parse(chunk: str) -> dict[str, Any]:
    import json

    out: dict[str, Any] = {}
    for line in chunk.strip("\n").split("\n"):
        name, _, value = line.partition(": ")
        out[name] = json.loads(value) if name == "data" else value
    return out


# --- the hub -------------------------------------------------------------------------


def test_place_of():
    assert place_of('{"type":"Point","coordinates":[116.4,39.9]}') == (116.4, 39.9, None)
    assert place_of('{"type":"Point","coordinates":[116.4,39.9,12.5]}') == (116.4, 39.9, 12.5)
    feature = '{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]}}'
    assert place_of(feature) == (1.0, 2.0, None)
    square = '{"type":"Polygon","coordinates":[[[0,0],[2,0],[2,2],[0,2],[0,0]]]}'
    assert place_of(square) == (1.0, 1.0, None)
    assert place_of(None) == (None, None, None)
    assert place_of("not json") == (None, None, None)


def test_snapshot_then_deltas(hub, world):
    _, water, police = world
    stream = hub.stream()
    assert next(stream).startswith("retry: ")
    snap = parse(next(stream))
    assert snap["event"] == "snapshot"
    assert snap["data"]["resync"] is False
    streams = {s["ds"]: s for s in snap["data"]["streams"]}
    assert set(streams) == set(water + police)
    first = streams[water[0]]
    assert (first["dept"], first["prop"], first["unit"]) == ("water", "water level", "m")
    assert (first["lon"], first["lat"], first["h"]) == (116.0, 39.0, 50.0)
    assert first["value"] is None and first["state"] is None
    assert first["thresholds"] == {"warn_high": 5.0, "alarm_high": 8.0}
    publish(hub, [(water[0], 3.0, T0), (police[1], 42, T0)])
    ev = parse(next(stream))
    assert ev["event"] == "delta"
    deltas = ev["data"]
    assert [(d["kind"], d["ds"], d["value"]) for d in deltas[:1]] == [
        ("observation", water[0], 3.0)
    ]
    obs = [d for d in deltas if d["kind"] == "observation"]
    assert [d["ds"] for d in obs] == [water[0], police[1]]
    d0 = obs[0]
    # compact: the place and the property came with the snapshot
    assert set(d0) == {"seq", "kind", "ds", "value", "time", "state", "ack"}
    assert d0["time"] == T0 // 1000 and d0["state"] == NORMAL and d0["ack"] > 0
    seqs = [d["seq"] for d in deltas]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert ev["id"] == f"{hub.epoch}:{seqs[-1]}"
    # the snapshot now carries the latest value
    again = hub.stream()
    next(again)
    snap2 = {s["ds"]: s for s in parse(next(again))["data"]["streams"]}
    assert snap2[water[0]]["value"] == 3.0 and snap2[water[0]]["state"] == NORMAL
    stream.close()
    again.close()


def test_state_changes_are_deltas(hub, world):
    _, water, _ = world
    changes = []
    hub.on_transition(changes.append)
    publish(hub, [(water[0], 3.0, T0)])
    publish(hub, [(water[0], 6.0, T0 + S)])
    publish(hub, [(water[0], 9.0, T0 + 2 * S)])
    publish(hub, [(water[0], 9.5, T0 + 3 * S)])  # still alarm: no state delta
    publish(hub, [(water[0], 2.0, T0 + 4 * S)])
    wait_head(hub, 9)
    texts, _ = hub.read(hub.epoch, 0, StreamFilter())
    import json

    deltas = [json.loads(t) for t in texts]
    states = [(d["from"], d["state"]) for d in deltas if d["kind"] == "state"]
    assert states == [(None, NORMAL), (NORMAL, WARNING), (WARNING, ALARM), (ALARM, NORMAL)]
    assert [(c.old, c.new) for c in changes] == states
    # an older reading arriving late is streamed but does not change the state
    publish(hub, [(water[0], 100.0, T0)])
    wait_head(hub, 10)
    texts, _ = hub.read(hub.epoch, 9, StreamFilter())
    late = json.loads(texts[0])
    assert late.get("late") is True and hub.entries[water[0]].state == NORMAL


def test_stale_detection(hub, world):
    _, water, police = world
    publish(hub, [(water[0], 3.0, T0), (police[0], 1, T0)])
    wait_head(hub, 3)
    assert hub.sweep_stale(now=T0 + 59 * S) == []
    changes = hub.sweep_stale(now=T0 + 61 * S)
    # police streams have no stale_after: never stale
    assert [(c.datastream_id, c.old, c.new) for c in changes] == [(water[0], NORMAL, STALE)]
    assert hub.entries[water[0]].state == STALE
    assert hub.sweep_stale(now=T0 + 120 * S) == []  # reported once
    before = hub.head
    publish(hub, [(water[0], 3.0, T0 + 62 * S)])  # a reading brings it back
    wait_head(hub, before + 2)  # the reading and its state
    assert hub.entries[water[0]].state == NORMAL


def test_stale_timer_runs_on_its_own(world):
    store, water, _ = world
    h = LiveHub(store, InProcessBus(), stale_interval=0.05).start()
    try:
        old = time.time_ns() // 1000 - 120 * S  # two minutes ago: stale after 60 s
        publish(h, [(water[1], 1.0, old)])
        end = time.monotonic() + 5
        while h.entries[water[1]].state != STALE and time.monotonic() < end:
            time.sleep(0.02)
        assert h.entries[water[1]].state == STALE
    finally:
        h.close()


def test_resume_with_last_event_id_has_no_gaps(hub, world):
    _, water, _ = world
    stream = hub.stream()
    read_all(stream, 2)
    publish(hub, [(water[0], 1.0, T0)])
    first = parse(next(stream))
    stream.close()
    publish(hub, [(water[1], 2.0, T0), (water[2], 3.0, T0)])
    publish(hub, [(water[0], 4.0, T0 + S)])
    wait_head(hub, 7)  # 2 readings with their first state, then one more reading
    resumed = hub.stream(last_event_id=first["id"])
    assert next(resumed).startswith("retry")
    ev = parse(next(resumed))
    assert ev["event"] == "delta"  # no snapshot: it resumes
    values = [d["value"] for d in ev["data"] if d["kind"] == "observation"]
    assert values == [2.0, 3.0, 4.0]
    assert ev["data"][0]["seq"] == int(first["id"].split(":")[1]) + 1
    resumed.close()


def test_resume_too_old_or_from_another_epoch_gets_a_resync_snapshot(hub, world):
    _, water, _ = world
    for kind in ("other", "old"):
        if kind == "other":
            last = "deadbeef:1"
        else:
            start = hub.head
            last = f"{hub.epoch}:{start}"
            for i in range(100):  # the ring holds 64
                publish(hub, [(water[0], float(i), T0 + i * S)])
            wait_head(hub, start + 100)
        stream = hub.stream(last_event_id=last)
        next(stream)
        snap = parse(next(stream))
        assert snap["event"] == "snapshot" and snap["data"]["resync"] is True
        stream.close()


def test_a_client_that_falls_out_of_the_ring_gets_a_fresh_snapshot(hub, world):
    _, water, _ = world
    stream = hub.stream()
    read_all(stream, 2)
    for i in range(100):
        publish(hub, [(water[0], float(i), T0 + i * S)])
    wait_head(hub, 100)
    ev = parse(next(stream))
    assert ev["event"] == "snapshot" and ev["data"]["resync"] is True
    latest = {s["ds"]: s for s in ev["data"]["streams"]}[water[0]]
    assert latest["value"] == 99.0
    stream.close()


def test_filters(hub, world):
    _, water, police = world
    cases = {
        "bbox=115.99,38.99,116.015,39.015": set(water[:2]),
        "department=police": set(police),
        "department=police,water": set(water + police),
        "property=water%20level": set(water),
        "bbox=100,20,130,50&department=water&property=traffic%20flow": set(),
    }
    from urllib.parse import parse_qsl

    for query, expect in cases.items():
        filt = StreamFilter.parse(dict(parse_qsl(query)))
        stream = hub.stream(filt)
        next(stream)
        snap = parse(next(stream))
        assert {s["ds"] for s in snap["data"]["streams"]} == expect, query
        stream.close()
    filt = StreamFilter.parse({"property": "traffic flow"})
    stream = hub.stream(filt, heartbeat=0.2)
    read_all(stream, 2)
    publish(hub, [(water[0], 1.0, T0), (police[0], 5, T0), (water[1], 2.0, T0)])
    ev = parse(next(stream))
    assert {d["ds"] for d in ev["data"]} == {police[0]}  # its reading and first state
    stream.close()


def test_filter_by_property_id_and_antimeridian_box():
    key = (179.5, 10.0, "water", 7, "level")
    assert StreamFilter.parse({"property": "7"}).matches(key)
    assert StreamFilter.parse({"bbox": "179,0,-179,20"}).matches(key)
    assert not StreamFilter.parse({"bbox": "170,0,179,20"}).matches(key)
    assert not StreamFilter.parse({"bbox": "0,0,1,1"}).matches((None, None, "w", 1, "x"))
    from cim.errors import InputDataError

    for bad in ("1,2,3", "a,b,c,d", "0,10,1,5", "0,nan,1,1"):
        with pytest.raises(InputDataError):
            StreamFilter.parse({"bbox": bad})


def test_heartbeat_carries_the_id(hub, world):
    _, water, _ = world
    stream = hub.stream(StreamFilter.parse({"department": "police"}), heartbeat=0.1)
    read_all(stream, 2)
    publish(hub, [(water[0], 1.0, T0)])  # filtered out
    wait_head(hub, 2)
    beat = next(stream)
    assert beat.startswith(": keepalive") and f"id: {hub.epoch}:{hub.head}" in beat
    stream.close()


def test_datastreams_created_after_start_appear(hub, world):
    import json

    store, _, _ = world
    (new,) = make_streams(store, 1, "water", "rain", lon0=117.0)
    publish(hub, [(new, 12.0, T0)])
    wait_head(hub, 3)
    entry = hub.entries[new]
    assert (entry.prop, entry.lon, entry.value) == ("rain", 117.0, 12.0)
    texts, _ = hub.read(hub.epoch, 0, StreamFilter())
    kinds = [(d["kind"], d["ds"]) for d in map(json.loads, texts)]
    assert kinds == [("stream", new), ("observation", new), ("state", new)]
    announced = json.loads(texts[0])
    assert (announced["prop"], announced["dept"], announced["lon"]) == ("rain", "water", 117.0)


def test_refresh_announces_changed_and_removed_datastreams(hub, world):
    import json

    store, water, police = world
    publish(hub, [(water[0], 6.0, T0)])
    wait_head(hub, 2)
    head = hub.head
    with store.transaction(write=True) as tx:
        tx.execute("UPDATE datastreams SET warn_high = 7 WHERE id = ?", [water[0]])
        tx.execute("DELETE FROM datastreams WHERE id = ?", [police[1]])
    hub.refresh()
    texts, _ = hub.read(hub.epoch, head, StreamFilter())
    got = {(d["kind"], d["ds"]): d for d in map(json.loads, texts)}
    assert set(got) == {("removed", police[1]), ("stream", water[0])}
    assert got[("stream", water[0])]["thresholds"]["warn_high"] == 7.0
    assert got[("stream", water[0])]["value"] == 6.0  # the latest reading is kept
    assert police[1] not in hub.entries
    hub.refresh()  # nothing changed since: nothing announced
    assert hub.read(hub.epoch, hub.head, StreamFilter()) == ([], hub.head)


def test_duplicates_are_not_announced(hub, world):
    _, water, _ = world
    rows = [Row(water[0], T0, 1.0), Row(water[1], T0, 2.0)]
    hub.publish_committed(rows, [Res(1, duplicate=True), Res(2)])
    wait_head(hub, 1)
    time.sleep(0.05)
    texts, _ = hub.read(hub.epoch, 0, StreamFilter())
    assert [t for t in texts if '"kind":"observation"' in t] == [
        t for t in texts if f'"ds":{water[1]}' in t and '"kind":"observation"' in t
    ]


# --- over HTTP -----------------------------------------------------------------------


@contextlib.contextmanager
def serving(store_path: str, **config: Any) -> Iterator[tuple[int, Any]]:
    """The app under waitress (as ``cim serve`` runs it) on a free port."""
    from server import create_app
    from server.blueprints.live import live_runtime, stop_live
    from server.wsgi import create_server

    app = create_app({"LIVE_STORE": store_path, "TESTING": True, **config})
    srv = create_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        yield srv.effective_port, live_runtime(app)
    finally:
        stop_live(app)
        srv.close()
        thread.join(5)
        state = app.extensions.get("cim.live")
        if state is not None:
            state.store.close()


def test_sse_endpoint_snapshot_deltas_resume(world):
    store, water, police = world
    with serving(str(store.path)) as (port, rt):
        client = SseClient(port)
        assert client.status == 200
        assert client.resp.getheader("Content-Type").startswith("text/event-stream")
        assert client.resp.getheader("Cache-Control") == "no-cache"
        snap = client.next()
        assert snap.event == "snapshot" and len(snap.data["streams"]) == 5
        publish(rt.hub, [(water[0], 6.0, T0)])
        deltas = client.deltas(2)
        assert [(d["kind"], d["state"]) for d in deltas] == [
            ("observation", WARNING),
            ("state", WARNING),
        ]
        last = client.last_id
        client.close()
        publish(rt.hub, [(police[0], 10, T0), (police[1], 11, T0)])
        resumed = SseClient(port, headers={"Last-Event-ID": last})
        got = resumed.deltas(4)
        assert [d["value"] for d in got if d["kind"] == "observation"] == [10, 11]
        resumed.close()
        filtered = SseClient(port, "?department=police&bbox=119,29,121,31")
        assert {s["ds"] for s in filtered.next().data["streams"]} == set(police)
        filtered.close()
        bad = SseClient(port, "?bbox=1,2")
        assert bad.status == 400
        bad.close()


def test_many_concurrent_clients(world):
    store, water, _ = world
    n = 60
    with serving(str(store.path), THREADS=n + 16) as (port, rt):  # 16 kept for requests
        clients = [SseClient(port) for _ in range(n)]
        for c in clients:
            assert c.next().event == "snapshot"
        end = time.monotonic() + 5
        while rt.hub.clients < n and time.monotonic() < end:
            time.sleep(0.01)
        assert rt.streams == n
        publish(rt.hub, [(water[2], 1.5, T0)])
        for c in clients:
            (d, _) = c.deltas(2)
            assert (d["ds"], d["value"]) == (water[2], 1.5)
        for c in clients:
            c.close()
        end = time.monotonic() + 10
        while rt.streams and time.monotonic() < end:
            publish(rt.hub, [(water[2], 1.5, T0)])  # a write notices the closed socket
            time.sleep(0.1)
        assert rt.streams == 0


def test_stream_limit_answers_503(world):
    store, _, _ = world
    with serving(str(store.path), THREADS=6, LIVE_MAX_STREAMS=2) as (port, _):
        a, b = SseClient(port), SseClient(port)
        a.next(), b.next()
        c = SseClient(port)
        assert c.status == 503 and c.resp.getheader("Retry-After")
        c.close()
        import requests

        status = requests.get(f"http://127.0.0.1:{port}/api/live/status", timeout=5).json()
        assert status["streams"] == 2 and status["refused"] == 1 and status["datastreams"] == 5
        a.close()
        b.close()


def test_token_read_mode_needs_a_token(world):
    from layers.departments import add_department

    store, _, _ = world
    token = add_department(store, "water", "水务局")
    with serving(str(store.path), LIVE_READ="token") as (port, _):
        refused = SseClient(port)
        assert refused.status == 401
        refused.close()
        wrong = SseClient(port, headers={"Authorization": "Bearer water.nope"})
        assert wrong.status == 401
        wrong.close()
        ok = SseClient(port, headers={"Authorization": f"Bearer {token}"})
        assert ok.status == 200 and ok.next().event == "snapshot"
        ok.close()
        ok2 = SseClient(port, f"?token={token}")
        assert ok2.status == 200
        ok2.close()
        import base64

        basic = base64.b64encode(f"water:{token}".encode()).decode()
        ok3 = SseClient(port, headers={"Authorization": f"Basic {basic}"})  # as for writes
        assert ok3.status == 200
        ok3.close()


def test_readings_posted_over_sensorthings_reach_the_stream(world):
    import requests

    from layers.departments import add_department

    store, water, _ = world
    token = add_department(store, "water", "水务局")
    # readings only: the case an alarm opens is tested in test_live_events.py
    with serving(str(store.path), EVENTS_FROM_ALARMS=False) as (port, _):
        client = SseClient(port, "?department=water")
        assert client.next().event == "snapshot"
        url = f"http://127.0.0.1:{port}/api/sta/v1.1/Datastreams({water[1]})/Observations"
        r = requests.post(
            url,
            json={"result": 8.5, "phenomenonTime": "2024-05-01T08:00:00Z"},
            auth=("water", token),
            timeout=10,
        )
        assert r.status_code == 201, r.text
        obs, state = client.deltas(2)
        assert (obs["kind"], obs["ds"], obs["value"], obs["state"]) == (
            "observation",
            water[1],
            8.5,
            ALARM,
        )
        assert obs["time"] == 1714550400000
        assert (state["kind"], state["state"], state["from"]) == ("state", ALARM, None)
        # a duplicate is acknowledged but not streamed again
        again = requests.post(
            url,
            json={"result": 8.5, "phenomenonTime": "2024-05-01T08:00:00Z"},
            auth=("water", token),
            timeout=10,
        )
        assert again.status_code == 201
        requests.post(
            url,
            json={"result": 1.0, "phenomenonTime": "2024-05-01T08:01:00Z"},
            auth=("water", token),
            timeout=10,
        )
        nxt = client.deltas(1)[0]
        assert (nxt["kind"], nxt["value"]) == ("observation", 1.0)
        client.close()


def test_other_kinds_of_delta_pass_through_with_their_place(hub, world):
    import json

    hub.bus.publish(
        [
            {"kind": "event", "id": 7, "department": "police", "lon": 120.0, "lat": 30.0},
            {"kind": "event", "id": 8, "department": "water", "lon": 0.0, "lat": 0.0},
        ]
    )
    wait_head(hub, 2)
    for query, expect in {
        "": [7, 8],
        "department=police": [7],
        "bbox=119,29,121,31": [7],
        "property=water%20level": [7, 8],  # a property filter concerns sensors only
    }.items():
        from urllib.parse import parse_qsl

        filt = StreamFilter.parse(dict(parse_qsl(query)))
        texts, _ = hub.read(hub.epoch, 0, filt)
        got = [json.loads(t) for t in texts]
        assert [d["id"] for d in got] == expect, query
        assert all(d["kind"] == "event" and d["seq"] for d in got)


def test_delta_json_is_compact_utf8_and_strict_where_orjson_is_not():
    import math

    from layers.live import _delta_json, _dumps

    obs = {"seq": 1, "kind": "observation", "ds": 1, "value": 2.5, "name": "水位", "x": None}
    assert (
        _delta_json(obs)
        == '{"seq":1,"kind":"observation","ds":1,"value":2.5,"name":"水位","x":null}'
    )
    assert _delta_json(obs) == _dumps(obs)
    # orjson refuses integers beyond 64 bits and keys that are not strings
    assert (
        _delta_json({"kind": "state", "value": 2**70})
        == '{"kind":"state","value":1180591620717411303424}'
    )
    assert _delta_json({"kind": "state", 1: "a"}) == '{"kind":"state","1":"a"}'
    # a non-finite value is refused, as by the standard encoder, not written as null
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError):
            _delta_json({"kind": "observation", "value": bad})


def test_an_in_process_hub_rings_committed_readings_in_the_committing_thread(hub, world):
    """One server process: no hop through the bus's dispatcher between the commit and
    the ring (the reading is ringed before ``publish_committed`` returns)."""
    water = world[1]
    head = hub.head
    publish(hub, [(water[0], 1.5, T0 + 7 * S)])
    assert hub.head > head
    assert hub.stats()["batches"] >= 1
