"""Cases in the live store, on SQLite and PostgreSQL: one transaction per transition with
its audit row, optimistic concurrency, filters, sensor cases, statistics, kill -9."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from cim.errors import DatasetIOError, NotFoundError
from layers.events.config import events_config
from layers.events.lifecycle import (
    EventConflictError,
    IllegalTransitionError,
    StaleEventError,
    State,
)
from layers.events.model import Actor
from layers.events.schema import EVENTS_SCHEMA_VERSION
from layers.events.sensors import SensorCloseError, on_state_change
from layers.events.store import EventFilter, EventStore, migrate_events
from layers.events.worktime import CST

OP = Actor("li", "operator")
SUP = Actor("wang", "supervisor")
DISP = Actor("zhao", "dispatcher")
SAN = Actor("chen", "handler", "sanitation")
INSP = Actor("sun", "inspector")


def t(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=CST)


@pytest.fixture
def events(store) -> EventStore:
    return EventStore(store, events_config(None))


def new(es: EventStore, at: dt.datetime = t(2026, 11, 25, 9, 0), **kw) -> int:  # noqa: B008
    fields = {"subcategory": "SJ0102", "source": "hotline", "description": "暴露垃圾",
              "lon": 116.4, "lat": 39.9, **kw}  # fmt: skip
    event = es.report(reporter=OP, at=at, **fields)
    assert event.id is not None
    return event.id


def test_migrations_are_idempotent_and_versioned(events: EventStore) -> None:
    assert migrate_events(events.store) == EVENTS_SCHEMA_VERSION
    assert migrate_events(events.store) == EVENTS_SCHEMA_VERSION
    with events.store.transaction(write=True) as tx:
        tx.execute(
            "INSERT INTO schema_migrations (component, version, applied) VALUES ('events', 99, 0)"
        )
    with pytest.raises(DatasetIOError, match="newer than this toolkit"):
        migrate_events(events.store)


def test_lifecycle_round_trip_with_audit(events: EventStore) -> None:
    eid = new(events, address="平城路1号", building="B17", floor=3, extra={"email": "a@b.c"})
    e = events.get(eid)
    assert (e.state, e.address, e.building, e.floor, e.extra) == (
        State.REPORTED, "平城路1号", "B17", 3, {"email": "a@b.c"})  # fmt: skip
    assert e.clock.deadline(events.config.schedule) == t(2026, 11, 25, 10, 0)
    events.transition(eid, "file", SUP, at=t(2026, 11, 25, 9, 10))
    e, _ = events.transition(eid, "dispatch", DISP, at=t(2026, 11, 25, 9, 30))
    assert events.get(eid) == e  # what is stored is what was computed
    events.transition(eid, "accept", SAN, at=t(2026, 11, 25, 9, 40))
    events.transition(eid, "request_deferral", SAN, at=t(2026, 11, 25, 10, 0), note="施工")
    events.transition(eid, "approve_deferral", SUP, at=t(2026, 11, 25, 10, 5))
    paused = events.get(eid)
    assert paused.clock.paused and paused.clock.paused_since == t(2026, 11, 25, 10, 5)
    events.transition(eid, "resume", SUP, at=t(2026, 11, 26, 10, 5))
    assert events.get(eid).clock.paused_work == dt.timedelta(hours=7, minutes=30)
    events.transition(eid, "report_done", SAN, at=t(2026, 11, 26, 11, 0))
    events.transition(eid, "check", INSP, at=t(2026, 11, 26, 11, 30))
    events.note(eid, INSP, "现场已清理", at=t(2026, 11, 26, 11, 31))
    final, _ = events.transition(eid, "close", SUP, at=t(2026, 11, 26, 11, 40))
    assert events.get(eid) == final and final.closed_at == t(2026, 11, 26, 11, 40)
    trail = events.audit(eid)
    assert [r.action for r in trail] == [
        "report", "file", "dispatch", "accept", "request_deferral", "approve_deferral",
        "resume", "report_done", "check", "note", "close"]  # fmt: skip
    assert trail[2].data == {"department": "sanitation"} and trail[4].note == "施工"
    assert trail[1].at == t(2026, 11, 25, 9, 10) and trail[1].role == "supervisor"
    assert final.version == 10  # nine transitions; the note changes no version


def test_refused_transition_changes_nothing(events: EventStore) -> None:
    eid = new(events)
    before = events.get(eid)
    with pytest.raises(IllegalTransitionError, match="allowed for dispatcher"):
        events.transition(eid, "dispatch", DISP)
    assert events.get(eid) == before and len(events.audit(eid)) == 1
    with pytest.raises(NotFoundError):
        events.transition(eid + 1000, "file", SUP)
    events.transition(eid, "file", SUP, expected_version=1)
    with pytest.raises(StaleEventError, match="version 2, not 1"):
        events.transition(eid, "dispatch", DISP, expected_version=1)


@pytest.mark.parametrize("with_version", [True, False])
def test_two_dispatchers_at_once_one_wins(events: EventStore, with_version: bool) -> None:
    eid = new(events)
    events.transition(eid, "file", SUP, at=t(2026, 11, 25, 9, 5))
    version = events.get(eid).version
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def dispatch(dept: str) -> None:
        barrier.wait()
        try:
            events.transition(eid, "dispatch", Actor(dept, "dispatcher"), department=dept,
                              expected_version=version if with_version else None)  # fmt: skip
            outcomes.append(dept)
        except EventConflictError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=dispatch, args=(d,)) for d in ("water", "sanitation")]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    winners = [o for o in outcomes if isinstance(o, str)]
    losers = [o for o in outcomes if isinstance(o, EventConflictError)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    e = events.get(eid)
    assert e.department == winners[0] and e.version == version + 1
    assert [r.action for r in events.audit(eid)] == ["report", "file", "dispatch"]


def test_filters_and_pages(events: EventStore) -> None:
    now = t(2026, 11, 25, 16, 0)
    a = new(events, at=t(2026, 11, 25, 9, 0))  # 立案 limit 1h: overdue at 16:00
    b = new(events, at=t(2026, 11, 25, 15, 50), subcategory="BJ0403", lon=117.0)
    c = new(events, at=t(2026, 11, 25, 15, 55), subcategory="SJ0102", source="patrol")
    events.transition(c, "file", SUP, at=t(2026, 11, 25, 15, 56))
    events.transition(c, "dispatch", DISP, at=t(2026, 11, 25, 15, 57))
    d = new(events, at=t(2026, 11, 25, 15, 58))
    events.transition(d, "cancel", SUP, at=t(2026, 11, 25, 15, 59), note="重复")

    def ids(**kw) -> list[int]:
        return [e.id for e in events.list_events(EventFilter(**kw), now)[0]]

    assert ids() == [d, c, b, a]
    assert ids(newest_first=False, limit=2) == [a, b]
    page, total = events.list_events(EventFilter(limit=1, offset=1), now)
    assert [e.id for e in page] == [c] and total == 4
    assert ids(states=["reported"]) == [b, a]
    assert ids(departments=["sanitation"]) == [c]
    assert ids(subcategories=["BJ0403"]) == [b] and ids(categories=["BJ04"]) == [b]
    assert ids(sources=["patrol"]) == [c]
    assert ids(open=True) == [c, b, a] and ids(open=False) == [d]
    assert ids(overdue=True) == [a] and ids(overdue=False) == [d, c, b]
    assert ids(bbox=(116.0, 39.0, 116.5, 40.0)) == [d, c, a]
    assert ids(reported_after=t(2026, 11, 25, 15, 52), reported_before=t(2026, 11, 25, 15, 58)) == [
        c
    ]
    assert ids(ids=[a, d]) == [d, a]


def _datastream(events: EventStore, state: str) -> int:
    with events.store.transaction(write=True) as tx:
        thing = tx.insert("things", {"name": "水位站", "department": "water"})
        loc = tx.insert("locations", {"name": "站点", "location":
                        '{"type": "Point", "coordinates": [116.41, 39.91, 12.0]}'})  # fmt: skip
        tx.execute(
            "INSERT INTO thing_locations (thing_id, location_id) VALUES (?, ?)", [thing, loc]
        )
        sensor = tx.insert("sensors", {"name": "雷达水位计"})
        prop = tx.insert("observed_properties", {"name": "River water level"})
        return tx.insert("datastreams", {
            "name": "平城河水位", "observation_type": "OM_Measurement", "thing_id": thing,
            "sensor_id": sensor, "observed_property_id": prop, "department": "water",
            "last_state": state})  # fmt: skip


def test_sensor_alarm_opens_one_case_and_close_rule(events: EventStore) -> None:
    ds = _datastream(events, "alarm")
    cfg = events.config
    change = events.state_change(ds, "warning", "alarm", 3.6, 1_795_000_000_000_000)
    assert (change.name, change.observed_property, change.lon, change.height) == (
        "平城河水位", "River water level", 116.41, 12.0)  # fmt: skip
    first = on_state_change(events, change, cfg.table, cfg.schedule)
    again = on_state_change(events, change._replace(value=3.9), cfg.table, cfg.schedule)
    assert first.id == again.id and first.subcategory == "SJ0405"
    assert [r.action for r in events.audit(first.id)] == ["report", "note"]
    with pytest.raises(EventConflictError, match="already has open case"):
        events.create_event(*_sensor_case(events, ds))
    eid = first.id
    water = Actor("l", "handler", "water")
    steps = [("file", SUP), ("dispatch", DISP), ("accept", water), ("report_done", water),
             ("check", INSP)]  # fmt: skip
    for action, actor in steps:
        events.transition(eid, action, actor)
    with pytest.raises(SensorCloseError, match="not back to normal"):
        events.transition(eid, "close", SUP)
    with events.store.transaction(write=True) as tx:
        tx.execute("UPDATE datastreams SET last_state = 'normal' WHERE id = ?", [ds])
    events.transition(eid, "close", SUP)
    # finished: the next alarm opens a new case
    assert on_state_change(events, change, cfg.table, cfg.schedule).id != eid


def _sensor_case(events: EventStore, ds: int) -> tuple:
    from layers.events.model import report

    return report(events.config.table, events.config.schedule, subcategory="SJ0405",
                  source="sensor", description="x", reporter=OP, at=t(2026, 11, 25, 9),
                  datastream_id=ds)  # fmt: skip


def test_statistics(events: EventStore) -> None:
    a = new(events, at=t(2026, 11, 25, 9, 0))
    for action, actor, minute in [("file", SUP, 5), ("dispatch", DISP, 10), ("accept", SAN, 15),
                                  ("report_done", SAN, 30), ("check", INSP, 40),
                                  ("close", SUP, 50)]:  # fmt: skip
        events.transition(a, action, actor, at=t(2026, 11, 25, 10, minute))
    new(events, at=t(2026, 11, 25, 9, 30))
    stats = events.statistics(t(2026, 11, 1), t(2026, 12, 1))
    assert stats["by_state"] == {"closed": 1, "reported": 1}
    assert stats["by_department"] == {"sanitation": {"open": 0, "closed": 1},
                                      "": {"open": 1, "closed": 0}}  # fmt: skip
    # 立案 came 5 min past its 1h limit: closed, but not on time
    assert (stats["closed"], stats["on_time"], stats["on_time_rate"]) == (1, 0, 0.0)
    assert stats["mean_hours_by_subcategory"] == {"SJ0102": pytest.approx(1 + 50 / 60)}
    assert events.statistics(t(2026, 10, 1), t(2026, 11, 1))["on_time_rate"] is None


KILLER = textwrap.dedent(
    """
    import sys
    from layers.events.config import events_config
    from layers.events.model import Actor
    from layers.events.store import EventStore
    from layers.store import open_store

    es = EventStore(open_store(sys.argv[1]), events_config(None))
    sup, disp = Actor("s", "supervisor"), Actor("d", "dispatcher")
    h = Actor("h", "handler", "water")
    steps = [("file", sup, None), ("dispatch", disp, "water"), ("accept", h, None),
             ("report_done", h, None)]
    print("ready", flush=True)
    while True:
        e = es.report(subcategory="SJ0102", source="api", description="x", reporter=sup)
        for action, actor, dept in steps:
            es.transition(e.id, action, actor, department=dept)
    """
)


def test_kill_9_leaves_no_half_transition(
    events: EventStore, store_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    proc = subprocess.Popen([sys.executable, "-c", KILLER, store_url], env=env,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 20
        while events.list_events(EventFilter(limit=1))[1] < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    cases, total = events.list_events(EventFilter(limit=100000))
    assert total >= 20
    for e in cases:
        trail = events.audit(e.id)
        # the row and its trail agree: as many transitions as version steps, same state
        assert len(trail) == e.version and trail[-1].to_state == e.state.value, e.id


def test_attachment_metadata(events: EventStore) -> None:
    from layers.events.attachments import check

    eid = new(events)
    aid = events.add_attachment(eid, check(b"\xff\xd8\xff\xe0" + b"1" * 64, "现场.jpg"), "li")
    (meta,) = events.attachments(eid)
    assert meta["id"] == aid and meta["name"] == "现场.jpg" and meta["media_type"] == "image/jpeg"
    assert meta["size"] == 68 and meta["storage_key"].endswith(".jpg")
    with pytest.raises(NotFoundError):
        events.add_attachment(eid + 99, check(b"%PDF-1.4 x", "a.pdf"), "li")
