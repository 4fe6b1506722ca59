"""History for charts (downsampling) and the retention policy, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cim.errors import ConfigError, InputDataError, NotFoundError
from layers.config import live_config
from layers.history import (
    NICE_STEPS_US,
    RetentionJob,
    bucket_size,
    history,
    prune,
)
from layers.store import ObservationRow

S = 1_000_000  # µs per second
DAY = 86_400 * S
T0 = 1_700_000_000 * S  # a round-ish instant (a multiple of 10 s)


def make_datastream(store, name: str = "level") -> int:
    """A Thing with a Datastream (and its Sensor and ObservedProperty); its id."""
    with store.transaction(write=True) as tx:
        thing = tx.insert("things", {"name": f"{name} thing", "department": "water"})
        sensor = tx.insert("sensors", {"name": "radar", "department": "water"})
        prop = tx.insert("observed_properties", {"name": name, "department": "water"})
        return tx.insert(
            "datastreams",
            {
                "name": name,
                "observation_type": "OM_Measurement",
                "thing_id": thing,
                "sensor_id": sensor,
                "observed_property_id": prop,
                "department": "water",
            },
        )


def put(store, ds: int, readings: list[tuple[int, object]]) -> None:
    store.insert_observations([ObservationRow(ds, t, v) for t, v in readings])


def count(store, ds: int) -> int:
    with store.transaction() as tx:
        return int(tx.scalar("SELECT count(*) FROM observations WHERE datastream_id = ?", [ds]))


# --- bucket sizes ----------------------------------------------------------------------


def test_bucket_size_is_the_smallest_round_step_that_fits():
    assert bucket_size(3600 * S, 200) == 30 * S  # 18 s needed → 30 s
    assert bucket_size(3600 * S, 3600) == S
    assert bucket_size(200 * S, 200) == S
    assert bucket_size(201 * S, 200) == 2 * S
    assert bucket_size(DAY, 24) == 3600 * S
    assert bucket_size(10, 200) == NICE_STEPS_US[0]  # below 1 ms: 1 ms
    year = bucket_size(365 * DAY, 2)  # beyond the table: whole 30-day months
    assert year % (30 * DAY) == 0 and year >= 365 * DAY / 2


# --- history ---------------------------------------------------------------------------


def test_buckets_give_min_max_mean_count(store):
    ds = make_datastream(store)
    # 100 s of readings, one per second: values 0..99
    put(store, ds, [(T0 + i * S, float(i)) for i in range(100)])
    h = history(store, ds, T0, T0 + 100 * S, points=10)
    assert h.step == 10 * S
    assert len(h.buckets) == 10
    first, last = h.buckets[0], h.buckets[-1]
    assert (first.start, first.min, first.max, first.count) == (T0, 0.0, 9.0, 10)
    assert first.mean == pytest.approx(4.5)
    assert (last.start, last.min, last.max, last.mean) == (T0 + 90 * S, 90.0, 99.0, 94.5)
    assert sum(b.count for b in h.buckets) == 100


def test_range_is_half_open_and_other_streams_do_not_leak(store):
    ds, other = make_datastream(store, "a"), make_datastream(store, "b")
    put(store, ds, [(T0 + i * S, i) for i in range(20)])
    put(store, other, [(T0 + i * S, 1000) for i in range(20)])
    h = history(store, ds, T0 + 5 * S, T0 + 10 * S, points=100)
    assert [b.start for b in h.buckets] == [T0 + i * S for i in range(5, 10)]
    assert [b.max for b in h.buckets] == [5.0, 6.0, 7.0, 8.0, 9.0]


def test_never_more_buckets_than_points_and_aligned_to_the_epoch(store):
    ds = make_datastream(store)
    start = T0 + 7 * S  # not on a bucket edge
    put(store, ds, [(start + i * S // 2, i % 7) for i in range(2000)])
    for points in (1, 3, 17, 200):
        h = history(store, ds, start, start + 1000 * S, points=points)
        assert len(h.buckets) <= points
        assert all(b.start % h.step == 0 for b in h.buckets)
        assert sum(b.count for b in h.buckets) == 2000


def test_non_numeric_readings_are_left_out_booleans_count_as_0_1(store):
    ds = make_datastream(store)
    put(store, ds, [(T0, "open"), (T0 + S, True), (T0 + 2 * S, False), (T0 + 3 * S, 4)])
    h = history(store, ds, T0, T0 + 10 * S, points=1)
    assert len(h.buckets) == 1
    b = h.buckets[0]
    assert (b.min, b.max, b.count) == (0.0, 4.0, 3)
    assert b.mean == pytest.approx(5 / 3)


def test_empty_buckets_are_left_out(store):
    ds = make_datastream(store)
    put(store, ds, [(T0, 1.0), (T0 + 50 * S, 2.0)])
    h = history(store, ds, T0, T0 + 60 * S, points=60)
    assert [(b.start, b.mean) for b in h.buckets] == [(T0, 1.0), (T0 + 50 * S, 2.0)]


def test_bad_queries(store):
    ds = make_datastream(store)
    with pytest.raises(NotFoundError):
        history(store, ds + 100, T0, T0 + S)
    with pytest.raises(InputDataError, match="range is empty"):
        history(store, ds, T0, T0)
    with pytest.raises(InputDataError, match="points"):
        history(store, ds, T0, T0 + S, points=0)


def test_as_json_in_milliseconds(store):
    ds = make_datastream(store)
    put(store, ds, [(T0 + 1500, 2.5)])
    data = history(store, ds, T0, T0 + S, points=10).as_json()
    assert data["fields"] == ["time", "min", "max", "mean", "count"]
    assert data["from"] == T0 // 1000 and data["to"] == (T0 + S) // 1000
    assert data["bucket"] == 100  # 1 s / 10 points → 100 ms
    assert data["points"] == [[T0 // 1000, 2.5, 2.5, 2.5, 1]]


# --- retention -------------------------------------------------------------------------


def test_prune_deletes_old_readings_but_never_the_newest(store):
    now = T0 + 100 * DAY
    busy, quiet = make_datastream(store, "busy"), make_datastream(store, "quiet")
    old = [(now - (95 + i) * DAY, float(i)) for i in range(5)]  # 95..99 days old
    recent = [(now - i * DAY, float(i)) for i in range(3)]  # 0..2 days old
    put(store, busy, old + recent)
    put(store, quiet, old)  # went quiet 95 days ago: its newest must stay
    deleted = prune(store, 90, now=now, batch=2)  # batch 2: several transactions
    assert deleted == 5 + 4
    assert count(store, busy) == 3 and count(store, quiet) == 1
    with store.transaction() as tx:
        kept = tx.scalar(
            "SELECT phenomenon_time FROM observations WHERE datastream_id = ?", [quiet]
        )
        start = tx.scalar("SELECT phenomenon_time_start FROM datastreams WHERE id = ?", [busy])
    assert kept == now - 95 * DAY
    assert start == now - 2 * DAY  # the Datastream's phenomenonTime follows what is left
    assert prune(store, 90, now=now) == 0  # idempotent


def test_prune_zero_keeps_everything_and_history_still_answers(store):
    ds = make_datastream(store)
    put(store, ds, [(T0 + i * S, i) for i in range(10)])
    assert prune(store, 0, now=T0 + 1000 * DAY) == 0
    assert count(store, ds) == 10


def test_retention_job_runs_in_the_background(store):
    ds = make_datastream(store)
    now = time.time_ns() // 1000
    put(store, ds, [(now - 10 * DAY, 1.0), (now - 9 * DAY, 2.0), (now, 3.0)])
    job = RetentionJob(lambda: store, 5, interval=0.05, delay=0.01).start()
    try:
        deadline = time.monotonic() + 10
        while job.runs == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        job.stop()
    assert job.runs >= 1 and job.deleted == 2
    assert count(store, ds) == 1


def test_retention_days_in_city_toml(tmp_path: Path):
    path = tmp_path / "city.toml"
    path.write_text('[city]\nname = "t"\n', encoding="utf-8")
    assert live_config(path).retention_days == 90
    path.write_text('[city]\nname = "t"\n[live]\nretention_days = 30\n', encoding="utf-8")
    assert live_config(path).retention_days == 30
    path.write_text('[city]\nname = "t"\n[live]\nretention_days = -1\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="retention_days"):
        live_config(path)


# --- the HTTP endpoint -----------------------------------------------------------------


@pytest.fixture
def client(store_url):
    from server import create_app

    app = create_app({"LIVE_STORE": store_url, "TESTING": True})
    yield app.test_client(), app
    state = app.extensions.get("cim.live")
    if state is not None:
        state.store.close()


def test_endpoint_answers_buckets(client):
    from server.blueprints.sta import live_state

    c, app = client
    store = live_state(app).store
    ds = make_datastream(store)
    put(store, ds, [(T0 + i * S, float(i)) for i in range(60)])
    r = c.get(
        f"/api/live/history?datastream={ds}&from={T0 // 1000}&to={(T0 + 60 * S) // 1000}&points=6"
    )
    assert r.status_code == 200, r.get_json()
    data = r.get_json()
    assert data["bucket"] == 10_000 and len(data["points"]) == 6
    assert data["points"][0] == [T0 // 1000, 0.0, 9.0, 4.5, 10]
    assert r.headers["Cache-Control"] == "no-store"
    # ISO 8601 times; the default range is the 24 hours before `to`
    iso = c.get(f"/api/live/history?datastream={ds}&to=2023-11-14T22:15:00Z&points=6").get_json()
    assert iso["to"] - iso["from"] == 86_400_000
    assert sum(p[4] for p in iso["points"]) == 60


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("", 400, "datastream="),
        ("datastream=x", 400, "integer"),
        ("datastream=1&points=0", 400, "points"),
        ("datastream=1&points=99999", 400, "points"),
        ("datastream=1&from=yesterday", 400, "ISO 8601"),
        ("datastream=1&from=2000&to=1000", 400, "range is empty"),
        ("datastream=999", 404, "no datastream"),
    ],
)
def test_endpoint_bad_queries(client, query, status, message):
    from server.blueprints.sta import live_state

    c, app = client
    make_datastream(live_state(app).store)
    r = c.get(f"/api/live/history?{query}")
    assert r.status_code == status
    assert message in r.get_json()["error"]["message"]


def test_endpoint_needs_a_token_in_token_mode(tmp_path):
    import base64

    from layers.departments import add_department
    from layers.store import open_store
    from server import create_app

    url = str(tmp_path / "live.sqlite")
    st = open_store(url)
    token = add_department(st, "water", "水务局")
    ds = make_datastream(st)
    st.close()
    app = create_app({"LIVE_STORE": url, "LIVE_READ": "token", "TESTING": True})
    c = app.test_client()
    assert c.get(f"/api/live/history?datastream={ds}").status_code == 401
    r = c.get(f"/api/live/history?datastream={ds}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    basic = base64.b64encode(f"water:{token}".encode()).decode()
    r = c.get(f"/api/live/history?datastream={ds}", headers={"Authorization": f"Basic {basic}"})
    assert r.status_code == 200
    # a JSON fetch can send the header: token= is only for the SSE stream
    r = c.get(f"/api/live/history?datastream={ds}&token={token}")
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers
    r = c.get(f"/api/live/history?datastream={ds}", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and "revoked" in r.get_json()["error"]["message"]
    app.extensions["cim.live"].store.close()


def test_app_starts_the_retention_job_when_configured(tmp_path):
    from server import create_app

    app = create_app(
        {
            "LIVE_STORE": str(tmp_path / "live.sqlite"),
            "LIVE_RETENTION_DAYS": 7,
            "LIVE_RETENTION_DELAY": 0.01,
            "LIVE_RETENTION_INTERVAL": 3600,
            "TESTING": True,
        }
    )
    job = app.extensions["cim.live.retention"]
    deadline = time.monotonic() + 10
    while job.runs == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    job.stop()
    assert job.retention_days == 7 and job.runs == 1
    assert create_app({"TESTING": True}).extensions.get("cim.live.retention") is None
    app.extensions["cim.live"].store.close()


def test_info_says_whether_live_data_is_available(tmp_path):
    from server import create_app

    bare = create_app({"TESTING": True}).test_client().get("/api/live/info")
    assert bare.status_code == 200 and bare.get_json()["available"] is False
    app = create_app({"LIVE_STORE": str(tmp_path / "x.sqlite"), "LIVE_RETENTION_DAYS": 0})
    data = app.test_client().get("/api/live/info").get_json()
    assert data["available"] is True and data["retentionDays"] == 0
    assert "cim.live" not in app.extensions  # the store was not opened
