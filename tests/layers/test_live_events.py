"""Case (``event``) deltas on the live stream: the hub numbers, filters and resumes them
like readings, and a case created or moved over ``/api/events`` reaches an open
``/api/live/stream`` connection (and a resumed one) over real HTTP."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mqtt_fixtures import SseClient, SseEvent, make_streams

from layers.bus import InProcessBus
from layers.live import LiveHub, StreamFilter
from layers.store import open_store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))


def _event(eid: int, dept: str | None, lon: float, lat: float, **kw: Any) -> dict[str, Any]:
    return {"kind": "event", "id": eid, "action": "report", "state": "reported",
            "department": dept, "lon": lon, "lat": lat, "version": 1, **kw}  # fmt: skip


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[LiveHub]:
    store = open_store(tmp_path / "live.sqlite")
    make_streams(store, 2, "water", "water level")  # near (116, 39)
    h = LiveHub(store, InProcessBus(), ring_size=64, notify_interval=0.0)
    try:
        yield h
    finally:
        h.close()
        store.close()


def _events(hub: LiveHub, filt: StreamFilter, cursor: int = 0) -> list[dict[str, Any]]:
    import json

    got = hub.read(hub.epoch, cursor, filt)
    assert got is not None
    return [d for d in map(json.loads, got[0]) if d["kind"] == "event"]


def test_event_deltas_are_numbered_and_filtered_like_readings(hub: LiveHub) -> None:
    hub.apply(
        [
            _event(1, "water", 116.005, 39.005),
            _event(2, "police", 116.005, 39.005),
            _event(3, "water", 120.0, 30.0),
            _event(4, None, 116.005, 39.005),  # reported, not yet dispatched
        ]
    )
    every = _events(hub, StreamFilter())
    assert [d["id"] for d in every] == [1, 2, 3, 4]
    seqs = [d["seq"] for d in every]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4 and seqs[-1] == hub.head
    near = StreamFilter.parse({"bbox": "115.9,38.9,116.1,39.1"})
    assert [d["id"] for d in _events(hub, near)] == [1, 2, 4]
    water = StreamFilter.parse({"department": "water"})
    assert [d["id"] for d in _events(hub, water)] == [1, 3]
    both = StreamFilter.parse({"department": "water", "bbox": "115.9,38.9,116.1,39.1"})
    assert [d["id"] for d in _events(hub, both)] == [1]
    # an observed-property filter is about sensors: cases pass it
    prop = StreamFilter.parse({"property": "water level"})
    assert [d["id"] for d in _events(hub, prop)] == [1, 2, 3, 4]
    # resuming after the first case gives the rest only
    assert [d["id"] for d in _events(hub, StreamFilter(), seqs[0])] == [2, 3, 4]


def test_an_event_delta_that_is_not_json_is_dropped_not_fatal(hub: LiveHub) -> None:
    head = hub.head
    hub.apply([_event(1, "water", 116.0, 39.0, bad=float("nan")), _event(2, "water", 116, 39)])
    assert [d["id"] for d in _events(hub, StreamFilter(), head)] == [2]


# --- over HTTP: /api/events → the bus → /api/live/stream -------------------------------------


@contextlib.contextmanager
def _serve(app: Any) -> Iterator[int]:
    from werkzeug.serving import make_server

    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv.server_port
    finally:
        srv.shutdown()
        thread.join(10)


def _next_event(client: SseClient, eid: int, limit: int = 50) -> tuple[SseEvent, dict[str, Any]]:
    """The first delta event carrying case ``eid``'s delta, and that delta."""
    for _ in range(limit):
        ev = client.next()
        if ev.event != "delta":
            continue
        for d in ev.data:
            if d.get("kind") == "event" and d.get("id") == eid:
                return ev, d
    raise AssertionError(f"no delta of case {eid}")


@pytest.fixture(scope="module")
def fixture_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fixture_city import write_fixture_output

    return write_fixture_output(tmp_path_factory.mktemp("fixture-city") / "output")


@pytest.fixture
def events_app(tmp_path: Path, fixture_output: Path) -> Iterator[Any]:
    from test_events_api import _close, make_events_app

    ea = make_events_app(str(tmp_path / "live.sqlite"), fixture_output, tmp_path)
    try:
        yield ea
    finally:
        _close(ea.app)


def test_created_and_moved_cases_reach_open_and_resumed_streams(events_app: Any) -> None:
    from fixture_city import CENTRE

    api = events_app
    lon, lat = CENTRE[0], CENTRE[1]
    with _serve(api.app) as port:
        every = SseClient(port)
        first = every.next()
        assert first.event == "snapshot"
        # a bbox around the case, and one far away: only the first gets it
        box = f"?bbox={lon - 0.01},{lat - 0.01},{lon + 0.01},{lat + 0.01}"
        inside = SseClient(port, box)
        assert inside.next().event == "snapshot"
        ev = api.create(location=[lon, lat], description="路口暴露垃圾")
        eid = ev["id"]
        _, delta = _next_event(every, eid)
        assert delta["action"] == "report" and delta["state"] == "reported"
        assert delta["subcategory"] == "SJ0102" and delta["version"] == 1
        assert delta["lon"] == pytest.approx(lon) and delta["lat"] == pytest.approx(lat)
        assert delta["seq"] > first.data["seq"]
        _next_event(inside, eid)
        # a transition: the new state and version, filtered by the new department
        water = SseClient(port, "?department=water")
        assert water.next().event == "snapshot"
        r = api.act(eid, "center", "file")
        assert r.status_code == 200
        r = api.act(eid, "center", "dispatch", department="water")
        assert r.status_code == 200
        _, moved = _next_event(water, eid)
        assert moved["action"] == "dispatch" and moved["department"] == "water"
        assert moved["state"] == "dispatched" and moved["version"] == 3
        # a screen that was away resumes after its Last-Event-ID: every step, in order
        back = SseClient(port, headers={"Last-Event-ID": first.id or ""})
        seen = []
        while len(seen) < 3:
            e = back.next()
            assert e.event == "delta"  # resumed in the ring: no snapshot
            seen += [d["action"] for d in e.data if d.get("kind") == "event"]
        assert seen == ["report", "file", "dispatch"]
        for c in (every, inside, water, back):
            c.conn.close()


def test_a_sensor_alarm_opens_a_case_that_reaches_the_stream(events_app: Any) -> None:
    from fixture_city import CENTRE

    from server.blueprints.sta import live_state

    api = events_app
    store = live_state(api.app).store
    props = {"thresholds": {"warn_high": 5, "alarm_high": 8}}
    (ds,) = make_streams(store, 1, "water", "water level", CENTRE[0], CENTRE[1], properties=props)
    with _serve(api.app) as port:
        sse = SseClient(port)
        assert sse.next().event == "snapshot"

        def reading(value: float, t: str) -> None:
            body = {"result": value, "phenomenonTime": t}
            url = f"/api/sta/v1.1/Datastreams({ds})/Observations"
            r = api.client.post(url, json=body, headers=api.auth("water"))
            assert r.status_code == 201, r.get_json()

        reading(9.5, "2026-05-01T08:00:00Z")  # alarm: a case is opened
        opened = None
        for _ in range(50):
            ev = sse.next()
            cases = [d for d in ev.data if d.get("kind") == "event"] if ev.event == "delta" else []
            if cases:
                opened = cases[0]
                break
        assert opened is not None and opened["action"] == "report"
        assert opened["subcategory"] == "SJ0405" and opened["state"] == "reported"
        detail = api.client.get(f"/api/events/{opened['id']}").get_json()
        assert detail["source"] == "sensor" and detail["datastream_id"] == ds
        reading(9.9, "2026-05-01T08:01:00Z")  # still alarm: no state change, no new case
        reading(2.0, "2026-05-01T08:02:00Z")  # back to normal: a note on the same case
        _, noted = _next_event(sse, opened["id"])
        assert noted["action"] == "note"
        listed = api.client.get("/api/events?source=sensor").get_json()
        assert listed["total"] == 1
        sse.conn.close()
