"""Group commit of transitions, on SQLite and PostgreSQL: a batch is one transaction
whose transitions are each checked on their own (one refused fails alone), a caller
returns only once its transition is committed, and two dispatchers still give exactly
one winner."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest

from cim.errors import NotFoundError
from layers.events.commit import GroupCommit
from layers.events.config import events_config
from layers.events.lifecycle import EventConflictError, IllegalTransitionError, StaleEventError
from layers.events.model import Actor
from layers.events.store import EventStore, TransitionRequest
from layers.events.worktime import CST
from layers.store import open_store

OP = Actor("li", "operator")
SUP = Actor("wang", "supervisor")
AT = dt.datetime(2026, 11, 25, 9, 30, tzinfo=CST)


@pytest.fixture
def events(store) -> EventStore:
    return EventStore(store, events_config(None))


def _new(es: EventStore) -> int:
    e = es.report(subcategory="SJ0102", source="hotline", description="暴露垃圾", reporter=OP,
                  at=dt.datetime(2026, 11, 25, 9, tzinfo=CST), lon=116.4, lat=39.9)  # fmt: skip
    assert e.id is not None
    return e.id


def _req(eid: int, action: str, actor: Actor = SUP, **kw: Any) -> TransitionRequest:
    return TransitionRequest(eid, action, actor, AT, **kw)


def _tables(es: EventStore) -> list[list[tuple]]:
    with es.store.transaction() as tx:
        return [
            [tuple(r) for r in tx.execute(sql)]
            for sql in (
                "SELECT department, category, subcategory, state, n FROM event_counts "
                "WHERE n <> 0 ORDER BY 1, 2, 3, 4",
                "SELECT day, kind, a, b, n, spent FROM event_daily "
                "WHERE n <> 0 OR spent <> 0 ORDER BY 1, 2, 3, 4",
            )
        ]


def _counts_exact(es: EventStore) -> None:
    kept = _tables(es)
    es.rebuild_counts()
    assert _tables(es) == kept


def test_a_refused_transition_fails_alone(events: EventStore) -> None:
    a, b, c, d = (_new(events) for _ in range(4))
    out = events.transition_many([
        _req(a, "file"),
        _req(b, "dispatch", department="water"),  # illegal: not filed yet
        _req(c, "file"),
        _req(d, "file", expected_version=7),  # stale
        _req(10_000, "file"),  # no such case
    ])  # fmt: skip
    assert isinstance(out[1], IllegalTransitionError) and "allowed" in str(out[1])
    assert isinstance(out[3], StaleEventError) and isinstance(out[4], NotFoundError)
    for eid, got in ((a, out[0]), (c, out[2])):
        new, record = got
        assert new.state.value == "filed" and record.action == "file"
        assert events.get(eid).version == 2
        assert [r.action for r in events.audit(eid)] == ["report", "file"]
    for eid in (b, d):
        assert events.get(eid).version == 1 and len(events.audit(eid)) == 1
    _counts_exact(events)


@pytest.mark.parametrize("with_version", [True, False])
def test_two_dispatchers_in_one_batch_one_wins(events: EventStore, with_version: bool) -> None:
    eid = _new(events)
    v = 2 if with_version else None
    out = events.transition_many([
        _req(eid, "file"),
        _req(eid, "dispatch", Actor("zhao", "dispatcher"), department="water", expected_version=v),
        _req(eid, "dispatch", Actor("qian", "dispatcher"), department="police", expected_version=v),
    ])  # fmt: skip
    assert not isinstance(out[1], Exception) and out[1][0].department == "water"
    assert isinstance(out[2], StaleEventError if with_version else IllegalTransitionError)
    e = events.get(eid)
    assert (e.state.value, e.department, e.version) == ("dispatched", "water", 3)
    assert [r.action for r in events.audit(eid)] == ["report", "file", "dispatch"]
    _counts_exact(events)


def _queue_behind_a_slow_leader(events: EventStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first batch waits 1 s before applying, so the callers arriving meanwhile
    queue and go together in the next batch."""
    real = events._commit_batch
    first = threading.Event()

    def slow(reqs: list[TransitionRequest]) -> list[Any]:
        if not first.is_set():
            first.set()
            time.sleep(1.0)
        return real(reqs)

    monkeypatch.setattr(events, "_commits", GroupCommit(slow))


def test_callers_return_after_their_batch_committed(
    events: EventStore, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [_new(events) for _ in range(8)]
    _queue_behind_a_slow_leader(events, monkeypatch)
    other = open_store(store_url)  # another connection: sees committed rows only
    seen: dict[int, tuple[int, int]] = {}
    failures: list[BaseException] = []

    def act(eid: int, delay: float) -> None:
        time.sleep(delay)
        try:
            events.transition(eid, "file", SUP)
            with other.transaction() as tx:  # the moment the call returned
                seen[eid] = (
                    tx.scalar("SELECT version FROM events WHERE id = ?", [eid]),
                    tx.scalar("SELECT count(*) FROM event_audit WHERE event_id = ?", [eid]),
                )
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=act, args=(eid, 0 if k == 0 else 0.15))
               for k, eid in enumerate(ids)]  # fmt: skip
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
    finally:
        other.close()
    assert not failures, failures
    assert seen == {eid: (2, 2) for eid in ids}
    commits = events._commits
    assert commits is not None and commits.items == 8
    assert commits.batches < 8  # some went together (1 + 7 unless the machine stalls)
    _counts_exact(events)


def test_concurrent_dispatchers_through_the_group_commit(
    events: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    target, filler = _new(events), _new(events)
    events.transition(target, "file", SUP)
    _queue_behind_a_slow_leader(events, monkeypatch)
    outcomes: list[object] = []

    def act(eid: int, action: str, actor: Actor, delay: float, **kw: Any) -> None:
        time.sleep(delay)
        try:
            events.transition(eid, action, actor, expected_version=2 if kw else None, **kw)
            outcomes.append(kw.get("department", "filler"))
        except EventConflictError as exc:
            outcomes.append(exc)

    threads = [
        threading.Thread(target=act, args=(filler, "file", SUP, 0)),  # the slow leader
        *(threading.Thread(target=act, args=(target, "dispatch", Actor(d, "dispatcher"), 0.15),
                           kwargs={"department": d}) for d in ("water", "police")),
    ]  # fmt: skip
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    winners = [o for o in outcomes if o in ("water", "police")]
    losers = [o for o in outcomes if isinstance(o, StaleEventError)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert events.get(target).department == winners[0]
    assert [r.action for r in events.audit(target)] == ["report", "file", "dispatch"]
    _counts_exact(events)


def test_a_batch_that_fails_to_commit_leaves_nothing_and_is_retried_alone(
    events: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between a batch's writes and its commit: nothing of it is kept (the
    retries one by one then apply each exactly once)."""
    ids = [_new(events) for _ in range(3)]
    real = EventStore._write_batch

    def crash(self: EventStore, tx: Any, *args: Any) -> None:
        real(self, tx, *args)  # every row written, then the commit never happens
        raise OSError("disk gone")

    monkeypatch.setattr(EventStore, "_write_batch", crash)
    with pytest.raises(OSError, match="disk gone"):
        events.transition_many([_req(eid, "file") for eid in ids])
    assert all(events.get(eid).version == 1 and len(events.audit(eid)) == 1 for eid in ids)
    out = events._commit_batch([_req(eid, "file") for eid in ids])
    assert [new.state.value for new, _ in out] == ["filed"] * 3
    assert all([r.action for r in events.audit(eid)] == ["report", "file"] for eid in ids)
    _counts_exact(events)


def test_group_commit_outcomes_per_caller() -> None:
    """Each caller gets its own result or error; a failed apply fails its batch's
    callers, and the next batch runs."""
    calls: list[list[int]] = []

    def apply(items: list[int]) -> list[Any]:
        calls.append(items)
        if 13 in items:
            raise OSError("no commit")
        return [ValueError(i) if i % 2 else i * 10 for i in items]

    gc: GroupCommit[int, int] = GroupCommit(apply, max_batch=3)
    assert gc.submit(4) == 40
    with pytest.raises(ValueError):
        gc.submit(3)
    with pytest.raises(OSError):
        gc.submit(13)
    results: dict[int, object] = {}

    def run(i: int) -> None:
        try:
            results[i] = gc.submit(i)
        except Exception as exc:
            results[i] = type(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(20, 30)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert results == {i: ValueError if i % 2 else i * 10 for i in range(20, 30)}
    assert all(len(c) <= 3 for c in calls) and sorted(x for c in calls[3:] for x in c) == list(
        range(20, 30)
    )


def test_postgresql_batch_is_one_transaction(events: EventStore) -> None:
    """Every row a batch writes on PostgreSQL carries the same ``xmin``: one
    transaction, one commit (one WAL flush)."""
    if events.store.dialect != "postgresql":
        pytest.skip("xmin is PostgreSQL's")
    ids = [_new(events) for _ in range(9)]
    out = events.transition_many([_req(eid, "file") for eid in ids])
    assert all(not isinstance(o, Exception) for o in out)
    with events.store.transaction() as tx:
        xids = {
            r[0]
            for sql in (
                "SELECT CAST(xmin AS TEXT) FROM events WHERE id = ANY(?)",
                "SELECT CAST(xmin AS TEXT) FROM event_audit WHERE event_id = ANY(?) "
                "AND action = 'file'",
            )
            for r in tx.execute(sql, [ids])
        }
    assert len(xids) == 1
