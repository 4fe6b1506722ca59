"""How a transition writes, on SQLite and PostgreSQL: PostgreSQL in two round trips (the
read, one statement for the row, its audit row and the counts), nothing written when
the case changed between them, and the counts exact under concurrent transitions."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import layers.events.store as events_store
from layers.events.config import events_config
from layers.events.lifecycle import StaleEventError
from layers.events.model import Actor
from layers.events.store import EventStore
from layers.events.worktime import CST

OP = Actor("li", "operator")
SUP = Actor("wang", "supervisor")
BOSS = Actor("admin", "admin")
PLAN = [("file", {}), ("dispatch", {"department": "water"}), ("accept", {}),
        ("report_done", {}), ("check", {}), ("close", {})]  # fmt: skip


@pytest.fixture
def events(store) -> EventStore:
    return EventStore(store, events_config(None))


def _new(es: EventStore, at: dt.datetime | None = None) -> int:
    event = es.report(subcategory="SJ0102", source="hotline", description="暴露垃圾",
                      reporter=OP, at=at or dt.datetime(2026, 11, 25, 9, tzinfo=CST),
                      lon=116.4, lat=39.9)  # fmt: skip
    assert event.id is not None
    return event.id


def _tables(es: EventStore) -> tuple[list[tuple], list[tuple]]:
    with es.store.transaction() as tx:
        counts = tx.execute(
            "SELECT department, category, subcategory, state, n FROM event_counts "
            "WHERE n <> 0 ORDER BY 1, 2, 3, 4"
        )
        daily = tx.execute(
            "SELECT day, kind, a, b, n, spent FROM event_daily "
            "WHERE n <> 0 OR spent <> 0 ORDER BY 1, 2, 3, 4"
        )
    return [tuple(r) for r in counts], [tuple(r) for r in daily]


@contextmanager
def _round_trips() -> Iterator[list[int]]:
    """Counts this process's waits on a PostgreSQL socket (one per round trip)."""
    import psycopg

    orig = psycopg.Connection.wait
    seen = [0]

    def counted(gen: Any) -> Any:
        try:
            ready = next(gen)
        except StopIteration as stop:  # touched no socket (a setting)
            return stop.value
        seen[0] += 1
        while True:
            sent = yield ready
            try:
                ready = gen.send(sent)
            except StopIteration as stop:
                return stop.value

    psycopg.Connection.wait = lambda conn, gen, *a, **kw: orig(conn, counted(gen), *a, **kw)
    try:
        yield seen
    finally:
        psycopg.Connection.wait = orig


def test_postgresql_transition_is_two_round_trips(events: EventStore) -> None:
    if events.store.dialect != "postgresql":
        pytest.skip("round trips are PostgreSQL's")
    eid = _new(events)
    with _round_trips() as seen:
        events.transition(eid, "file", SUP)
    assert seen[0] == 2
    assert [r.action for r in events.audit(eid)] == ["report", "file"]
    counts, daily = _tables(events)
    events.rebuild_counts()
    assert _tables(events) == (counts, daily)
    assert [c[3] for c in counts] == ["filed"]


def test_write_after_a_concurrent_change_writes_nothing(
    events: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another transition lands between this one's read and its write: on PostgreSQL
    the write finds another version and changes nothing (409); on SQLite the other one
    waits for the write lock, then is refused by the lifecycle, as the case moved on.
    The other comes from another server process (its own EventStore: in one, it would
    queue behind this one's group commit)."""
    eid = _new(events)
    rival = EventStore(events.store, events.config, migrate=False)
    real = events_store.apply_action
    errors: list[Exception] = []

    def racing(*args: Any, **kw: Any) -> Any:
        monkeypatch.setattr(events_store, "apply_action", real)  # once
        other = threading.Thread(target=lambda: _try(rival, eid, errors))
        other.start()
        other.join(1.0 if events.store.dialect == "sqlite" else 30)
        racing.other = other  # type: ignore[attr-defined]
        return real(*args, **kw)

    monkeypatch.setattr(events_store, "apply_action", racing)
    if events.store.dialect == "postgresql":
        with pytest.raises(StaleEventError, match="changed meanwhile"):
            events.transition(eid, "file", SUP)
        assert not errors
    else:
        events.transition(eid, "file", SUP)
        racing.other.join(30)  # type: ignore[attr-defined]
        assert len(errors) == 1  # it ran after this commit: the case was filed already
    assert [r.action for r in events.audit(eid)] == ["report", "file"]
    assert events.get(eid).version == 2
    counts, daily = _tables(events)
    events.rebuild_counts()
    assert _tables(events) == (counts, daily)


def _try(es: EventStore, eid: int, errors: list[Exception]) -> None:
    try:
        es.transition(eid, "file", SUP)
    except Exception as exc:
        errors.append(exc)


def test_counts_exact_under_concurrent_transitions(events: EventStore) -> None:
    """Four threads take cases through to 结案 while others are reported: the kept
    counts equal a recount (no lost delta, no deadlock between the count upserts)."""
    failures: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(4):
                eid = _new(events, dt.datetime(2026, 11, 20 + i, 9, k, tzinfo=CST))
                for action, kw in PLAN:
                    events.transition(eid, action, BOSS, **kw)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not failures, failures
    counts, daily = _tables(events)
    assert sum(c[4] for c in counts) == 16 and {c[3] for c in counts} == {"closed"}
    events.rebuild_counts()
    assert _tables(events) == (counts, daily)


def test_connection_goes_back_transactional(events: EventStore) -> None:
    """After a transition (autocommit on PostgreSQL) the pooled connection's next
    transaction still rolls back as a whole."""
    eid = _new(events)
    events.transition(eid, "file", SUP)
    with pytest.raises(RuntimeError), events.store.transaction(write=True) as tx:
        tx.execute("UPDATE events SET description = ? WHERE id = ?", ["改", eid])
        raise RuntimeError("roll back")
    assert events.get(eid).description == "暴露垃圾"
    with pytest.raises(StaleEventError):
        events.transition(eid, "dispatch", BOSS, department="water", expected_version=1)
    assert events.get(eid).description == "暴露垃圾" and events.get(eid).version == 2
