"""Sensor alarms open one case per datastream; closing needs normal or a note."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from layers.events.categories import load_categories
from layers.events.lifecycle import AuditRecord, EventConflictError, State
from layers.events.model import Event
from layers.events.sensors import SensorCloseError, StateChange, check_close, on_state_change
from layers.events.worktime import CST, WorkSchedule

TABLE = load_categories()
S = WorkSchedule()


class FakeStore:
    """An in-memory SensorEventStore; ``race`` makes the next create lose to another process."""

    def __init__(self) -> None:
        self.events: dict[int, Event] = {}
        self.audit: list[AuditRecord] = []
        self.race = False

    def open_event_for_datastream(self, datastream_id: int) -> Event | None:
        return next((e for e in self.events.values()
                     if e.datastream_id == datastream_id and e.is_open), None)  # fmt: skip

    def create_event(self, event: Event, record: AuditRecord) -> Event:
        if self.race:
            self.race = False
            other = dataclasses.replace(event, id=99, description="other process")
            self.events[99] = other
            raise EventConflictError("datastream already has an open case")
        stored = dataclasses.replace(event, id=len(self.events) + 1)
        self.events[stored.id] = stored
        self.audit.append(dataclasses.replace(record, event_id=stored.id))
        return stored

    def add_note(self, event_id: int, record: AuditRecord) -> None:
        assert record.event_id == event_id
        self.audit.append(record)


def change(state: str, value: float, minute: int, ds: int = 7, prev: str = "normal") -> StateChange:
    at = dt.datetime(2026, 11, 25, 9, minute, tzinfo=CST)
    return StateChange(ds, "平城河水位计", "River water level", state, prev, value, at,
                       "water", 116.4, 39.9, 5.0)  # fmt: skip


def test_one_case_per_alarming_datastream() -> None:
    store = FakeStore()
    assert on_state_change(store, change("warning", 3.1, 0), TABLE, S) is None
    first = on_state_change(store, change("alarm", 3.6, 1, prev="warning"), TABLE, S)
    assert first is not None and first.id == 1 and first.source == "sensor"
    assert (first.subcategory, first.datastream_id, first.lon) == ("SJ0405", 7, 116.4)
    assert "3.6" in first.description and first.state.value == "reported"
    again = on_state_change(store, change("alarm", 3.9, 2, prev="alarm"), TABLE, S)
    assert again.id == 1 and len(store.events) == 1
    assert store.audit[-1].action == "note" and "3.9" in store.audit[-1].note
    other = on_state_change(store, change("alarm", 9.0, 3, ds=8), TABLE, S)
    assert other.id == 2
    back = on_state_change(store, change("normal", 2.0, 4, prev="alarm"), TABLE, S)
    assert back.id == 1 and "恢复正常" in store.audit[-1].note
    # once the case is finished a new alarm opens a new one
    store.events[1] = dataclasses.replace(store.events[1], state=State.CLOSED)
    assert on_state_change(store, change("alarm", 4.0, 5), TABLE, S).id == 3


def test_lost_race_appends_to_the_winner() -> None:
    store = FakeStore()
    store.race = True
    got = on_state_change(store, change("alarm", 3.6, 1), TABLE, S)
    assert got.id == 99 and len(store.events) == 1 and store.audit[-1].action == "note"


def test_close_rule() -> None:
    store = FakeStore()
    event = on_state_change(store, change("alarm", 3.6, 1), TABLE, S)
    with pytest.raises(SensorCloseError, match="not back to normal"):
        check_close(event, "alarm", "")
    check_close(event, "alarm", "水位计故障, 已现场确认")
    check_close(event, "normal", "")
    hotline = dataclasses.replace(event, source="hotline")
    check_close(hotline, "alarm", "")
