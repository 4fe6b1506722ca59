"""Cases in the live store: create, read, list and filter, transition, notes, statistics.

Works on any :class:`layers.store.Store` (SQLite or PostgreSQL) through its
transactions and ``?`` SQL. Every transition is one write transaction that re-reads
the case, applies :func:`layers.events.model.apply_action`, updates the row only if its
``version`` is still the one read (optimistic concurrency), and inserts the audit row:
two dispatchers acting at once → one wins, the other gets
:class:`~layers.events.lifecycle.StaleEventError` (409); a crash leaves the case either
fully before or fully after the transition. On SQLite that is one ``BEGIN IMMEDIATE``
transaction; on PostgreSQL two round trips: the read, then one statement (update if
the version holds, audit row, counts) that commits on its own. Transitions that arrive
together share one transaction and one log sync (the group commit,
:meth:`EventStore.transition_many`), each still checked alone, each caller answered
only after that commit.

The events tables have their own numbered migrations (:mod:`layers.events.schema`), a
component of the store's schema applied by :func:`migrate_events`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from cim.errors import InputDataError, NotFoundError
from layers.events.attachments import Checked
from layers.events.commit import GroupCommit
from layers.events.config import EventsConfig
from layers.events.lifecycle import (
    FINAL_STATES,
    AuditRecord,
    EventConflictError,
    StaleEventError,
    State,
)
from layers.events.model import Actor, Event, apply_action, report
from layers.events.schema import (
    BIGRAMS,
    CELLS_PER_DEGREE,
    CHARS,
    DAILY_FILL,
    DAY_US,
    EVENTS,
    TEXT_COLUMNS,
    cell_sql,
)
from layers.events.sensors import NOTE_ACTION, StateChange, check_close
from layers.events.worktime import StageClock
from layers.store.base import Store, Tx

logger = logging.getLogger(__name__)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)

COLUMNS = (
    "id", "subcategory", "category", "cls", "source", "description", "priority", "state",
    "stage", "department", "lon", "lat", "height", "address", "building", "floor",
    "reporter", "reported_at", "updated_at", "closed_at", "clock_started", "clock_limit",
    "clock_paused_work", "clock_paused_since", "pending_extension", "version", "late",
    "rework_count", "datastream_id", "extra",
)  # fmt: skip
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM events"
#: a search's total and counts by state stop after its newest this many matches: past
#: that the list says "1,000+" (an exact count of a common word reads every match, 0.1–1
#: s on a million cases, for a figure nobody pages through)
SEARCH_COUNT_CAP = 1_000
#: PostgreSQL: the newest ids a search's capped count reads first
PG_FIRST_WINDOW = 50_000
#: the newest cases a one-character search is tried on to choose the table or the index
DENSE_PROBE = 2_000
#: the row of a case's map marker (:meth:`EventStore.markers`)
MARKER_COLUMNS = ("id", "state", "department", "subcategory", "lon", "lat", "h", "version",
                  "overdue", "approaching")  # fmt: skip


def migrate_events(store: Store) -> int:
    """Create or update the events tables in ``store``; the events schema version now.

    The events component's migrations (:data:`layers.events.schema.EVENTS`) applied by
    :meth:`layers.store.Store.migrate`: each in its own transaction, concurrent callers
    serialised, so it is safe to call at every start-up.

    Raises
    ------
    cim.errors.DatasetIOError
        When the store's events schema is newer than this toolkit's.
    """
    return store.migrate(EVENTS)


def to_us(when: dt.datetime) -> int:
    """An aware datetime as µs since the epoch."""
    return (when - _EPOCH) // _US


@dataclass(frozen=True)
class EventFilter:
    """What :meth:`EventStore.list` returns: every given condition must hold."""

    states: Sequence[str] = ()
    departments: Sequence[str] = ()
    subcategories: Sequence[str] = ()
    categories: Sequence[str] = ()
    sources: Sequence[str] = ()
    ids: Sequence[int] = ()
    open: bool | None = None
    overdue: bool | None = None
    #: the current stage is in its last ``approaching`` share, not yet overdue
    approaching: bool | None = None
    #: a substring of the description, the address or the building id
    text: str | None = None
    datastream_id: int | None = None
    bbox: tuple[float, float, float, float] | None = None  # west, south, east, north
    reported_after: dt.datetime | None = None
    reported_before: dt.datetime | None = None
    limit: int = 100
    offset: int = 0
    newest_first: bool = True


class EventPage(NamedTuple):
    """A page of the list (:meth:`EventStore.list_page`)."""

    items: list[Event]
    #: how many cases match the filter in all
    total: int
    #: how many match in each state, ignoring the filter's states
    counts: dict[str, int]
    #: a search (``q=``) with more matches than :attr:`EventStore.count_cap`: ``total``
    #: and ``counts`` are those of its newest ``count_cap`` matches (lower bounds)
    capped: bool = False


_SELECT_AUDIT = (
    "SELECT event_id, actor, role, at, action, from_state, to_state, note, data FROM event_audit"
)
_ATTACHMENT_KEYS = ("id", "name", "media_type", "size", "sha256", "storage_key", "created",
                    "uploaded_by")  # fmt: skip
_SELECT_ATTACHMENTS = f"SELECT {', '.join(_ATTACHMENT_KEYS)} FROM event_attachments"


def _attachment(row: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(_ATTACHMENT_KEYS, row, strict=True))


class TransitionRequest(NamedTuple):
    """One transition asked of :meth:`EventStore.transition` (its arguments)."""

    event_id: int
    action: str
    #: who acts; or a function of the case as read (under the write lock) giving who
    #: acts (the HTTP API picks the caller's role from the case's state this way, with
    #: no read of its own before the transition)
    actor: Actor | Callable[[Event], Actor]
    at: dt.datetime
    note: str = ""
    department: str | None = None
    extension: str | None = None
    expected_version: int | None = None


class EventStore:
    """Cases in a live store, with the city's categories and working hours.

    Parameters
    ----------
    store : Store
        An open live store (:func:`layers.store.open_store`).
    config : EventsConfig
        Categories, working hours, approaching share (:func:`layers.events.config.events_config`).
    migrate : bool
        Create or update the events tables now.
    group_commit : bool
        Commit transitions that arrive together in one transaction and one log sync
        (:mod:`layers.events.commit`); False: each in its own (for comparisons).
    """

    def __init__(
        self, store: Store, config: EventsConfig, migrate: bool = True, group_commit: bool = True
    ) -> None:
        self.store = store
        self.config = config
        #: concurrent transitions committed together (None: each in its own transaction)
        self._commits: GroupCommit[TransitionRequest, tuple[Event, AuditRecord]] | None = (
            GroupCommit(self._commit_batch) if group_commit else None
        )
        if migrate:
            migrate_events(store)
        #: whether the store has the search index (None: not looked yet)
        self._fts: bool | None = None
        #: most matches a search's total and counts read (:attr:`EventPage.capped`)
        self.count_cap = SEARCH_COUNT_CAP
        #: one-character searches: whether each is dense, and when that was looked up
        self._density: dict[str, tuple[bool, float]] = {}

    # --- conversions -------------------------------------------------------------------

    def _dt(self, us: int | None) -> dt.datetime | None:
        if us is None:
            return None
        return self.config.schedule.local(_EPOCH + us * _US)

    def _event(self, row: Sequence[Any]) -> Event:
        r = dict(zip(COLUMNS, row, strict=True))
        clock = None
        if r["clock_started"] is not None:
            clock = StageClock(
                self._dt(r["clock_started"]),  # type: ignore[arg-type]
                int(r["clock_limit"]) * _US,
                int(r["clock_paused_work"]) * _US,
                self._dt(r["clock_paused_since"]),
            )
        return Event(
            id=int(r["id"]),
            subcategory=r["subcategory"],
            category=r["category"],
            cls=r["cls"],
            source=r["source"],
            description=r["description"],
            priority=r["priority"],
            state=State(r["state"]),
            stage=r["stage"],
            department=r["department"],
            lon=r["lon"],
            lat=r["lat"],
            height=r["height"],
            address=r["address"],
            building=r["building"],
            floor=r["floor"],
            reporter=r["reporter"],
            reported_at=self._dt(r["reported_at"]),  # type: ignore[arg-type]
            updated_at=self._dt(r["updated_at"]),
            closed_at=self._dt(r["closed_at"]),
            clock=clock,
            pending_extension=r["pending_extension"],
            version=int(r["version"]),
            late=bool(r["late"]),
            rework_count=int(r["rework_count"]),
            datastream_id=r["datastream_id"],
            extra=json.loads(r["extra"]) if r["extra"] else {},
        )

    def _row(self, e: Event) -> dict[str, Any]:
        clock = e.clock
        deadline = clock.deadline(self.config.schedule) if clock is not None else None
        approach_at = None
        if deadline is not None and clock is not None:
            # the deadline of the stage's first (1 - approaching) share of working time
            early = replace(clock, limit=clock.limit * (1 - self.config.approaching))
            approach_at = early.deadline(self.config.schedule)
        return {
            "subcategory": e.subcategory,
            "category": e.category,
            "cls": e.cls,
            "source": e.source,
            "description": e.description,
            "priority": e.priority,
            "state": e.state.value,
            "stage": e.stage,
            "department": e.department,
            "lon": e.lon,
            "lat": e.lat,
            "height": e.height,
            "address": e.address,
            "building": e.building,
            "floor": e.floor,
            "reporter": e.reporter,
            "reported_at": to_us(e.reported_at),
            "updated_at": to_us(e.updated_at or e.reported_at),
            "closed_at": None if e.closed_at is None else to_us(e.closed_at),
            "clock_started": None if clock is None else to_us(clock.started),
            "clock_limit": None if clock is None else clock.limit // _US,
            "clock_paused_work": 0 if clock is None else clock.paused_work // _US,
            "clock_paused_since": (
                None if clock is None or clock.paused_since is None else to_us(clock.paused_since)
            ),
            "deadline": None if deadline is None else to_us(deadline),
            "approach_at": None if approach_at is None else to_us(approach_at),
            "pending_extension": e.pending_extension,
            "version": e.version,
            "late": 1 if e.late else 0,
            "rework_count": e.rework_count,
            "datastream_id": e.datastream_id,
            "open_datastream": e.datastream_id if e.state not in FINAL_STATES else None,
            "extra": json.dumps(e.extra, ensure_ascii=False) if e.extra else None,
        }

    @staticmethod
    def _insert_audit(tx: Tx, event_id: int, record: AuditRecord) -> None:
        tx.insert("event_audit", {"event_id": event_id, **_audit_values(record)})

    # --- writing -----------------------------------------------------------------------

    def create_event(self, event: Event, record: AuditRecord) -> Event:
        """Store a new case with its first audit record, in one transaction.

        Raises
        ------
        EventConflictError
            When the case comes from a datastream that already has an open case.
        """
        row = self._row(event)
        try:
            with self.store.transaction(write=True) as tx:
                if event.datastream_id is not None and event.is_open:
                    other = tx.scalar(
                        "SELECT id FROM events WHERE open_datastream = ?", [event.datastream_id]
                    )
                    if other is not None:
                        raise EventConflictError(
                            f"datastream {event.datastream_id} already has open case {other}"
                        )
                event_id = tx.insert("events", row)
                self._insert_audit(tx, event_id, record)
                _tally(tx, None, replace(event, id=event_id))
        except Exception as exc:
            if _unique_violation(exc):
                raise EventConflictError(
                    f"datastream {event.datastream_id} already has an open case"
                ) from exc
            raise
        return replace(event, id=event_id)

    def report(
        self, *, subcategory: str, source: str, description: str, reporter: Actor,
        at: dt.datetime | None = None, **fields: Any,
    ) -> Event:  # fmt: skip
        """Make and store a new case in 信息采集 (see :func:`layers.events.model.report`)."""
        event, record = report(
            self.config.table, self.config.schedule, subcategory=subcategory, source=source,
            description=description, reporter=reporter, at=at or _now(), **fields,
        )  # fmt: skip
        return self.create_event(event, record)

    def transition(
        self,
        event_id: int,
        action: str,
        actor: Actor | Callable[[Event], Actor],
        *,
        at: dt.datetime | None = None,
        note: str = "",
        department: str | None = None,
        extension: str | None = None,
        expected_version: int | None = None,
    ) -> tuple[Event, AuditRecord]:
        """Take ``action`` on a stored case: the row and its audit record in one transaction.

        Returns once the transition is committed (durable). Transitions that arrive
        while another commit is under way are committed together, in one transaction
        and one log sync (:mod:`layers.events.commit`), each checked on its own; inside
        a transaction this thread already holds, the transition joins that one.

        Parameters
        ----------
        event_id : int
        action : str
        actor : Actor or callable
            Who acts, or ``actor(case)`` giving who acts from the case as read inside
            the transition (it may raise the lifecycle errors below to refuse it).
        at : datetime, optional
            Default now.
        note, department, extension
            See :func:`layers.events.model.apply_action`.
        expected_version : int, optional
            The version the caller saw (an ``If-Match``): refused when the case has
            changed since.

        Raises
        ------
        NotFoundError
            No such case.
        StaleEventError
            The case changed since ``expected_version``, or another transaction changed
            it while this one ran.
        IllegalTransitionError, RoleNotAllowedError, TransitionInputError, SensorCloseError
            From the lifecycle rules.
        """
        req = TransitionRequest(
            event_id, action, actor, at or _now(), note, department, extension,
            expected_version,
        )  # fmt: skip
        if self._commits is None or self._in_transaction():
            return self._transition_one(req)
        return self._commits.submit(req)

    def _in_transaction(self) -> bool:
        """Whether this thread holds an open transaction of the store (which a
        transition then joins: the group's leader runs on another connection)."""
        pool = getattr(self.store, "_pool", None)
        return pool is not None and pool.current() is not None

    def _commit_batch(self, reqs: list[TransitionRequest]) -> list[Any]:
        """A group's transitions committed: one outcome per request (see
        :class:`layers.events.commit.GroupCommit`)."""
        if len(reqs) > 1:
            try:
                return self.transition_many(reqs)
            except Exception:
                # nothing of the batch was committed (a store error, not a refusal:
                # refusals fail alone inside it): each on its own, so one cannot sink
                # the others
                logger.warning("events: a batch of %d transitions failed as a whole; "
                               "retrying them one by one", len(reqs), exc_info=True)  # fmt: skip
        return [_attempt(self._transition_one, r) for r in reqs]

    def _transition_one(self, req: TransitionRequest) -> tuple[Event, AuditRecord]:
        """One transition in its own transaction (or the thread's open one)."""
        event_id = req.event_id
        if self.store.dialect == "postgresql":
            # two round trips, no BEGIN/COMMIT: the read, then one statement that
            # updates (if the version is still the one read), adds the audit row and
            # moves the counts; a single statement is its own transaction, so the case
            # and its trail commit together or not at all
            with self.store.autocommit() as tx:  # type: ignore[attr-defined]
                event, new, record = self._step(tx, req)
                # prepared: the statement's few texts are parsed and planned once
                done = tx.execute_prepared(*_pg_transition(self._row(new), event, record, new))
        else:
            # one short IMMEDIATE transaction: the write lock first, so the read is the
            # state the update applies to; one WAL sync at its commit
            with self.store.transaction(write=True) as tx:
                event, new, record = self._step(tx, req)
                row = self._row(new)
                done = tx.execute(
                    f"UPDATE events SET {_SETS} WHERE id = ? AND version = ? RETURNING id",
                    [*(row[c] for c in _UPDATED), event_id, event.version],
                )
                if done:
                    self._insert_audit(tx, event_id, record)
                    _tally(tx, event, new)
        if not done:
            raise StaleEventError(f"case {event_id} changed meanwhile; reload it")
        return new, record

    def transition_many(self, reqs: Sequence[TransitionRequest]) -> list[Any]:
        """Apply transitions in order in ONE transaction (one log sync at its commit).

        Each is checked against the case as the transitions before it in ``reqs`` left
        it (two on one case: the second sees the first's result, as if they ran one
        after the other), and one that is refused fails alone. The cases are read once
        and locked (SQLite: the write lock; PostgreSQL: ``FOR UPDATE`` in id order), so
        nothing changes them between the read and the write; the rows, the audit rows
        and the counts' deltas (summed over the batch) are then written together.

        Returns
        -------
        list
            Per request in order: ``(event, audit record)`` when it was committed, or the
            exception it alone was refused with (:meth:`transition`'s errors).

        Raises
        ------
        Exception
            A store error: then nothing of the batch was committed.
        """
        ids = sorted({r.event_id for r in reqs})
        pg = self.store.dialect == "postgresql"
        marks = ", ".join("?" * len(ids))
        lock = " ORDER BY id FOR UPDATE OF events" if pg else ""
        out: list[Any] = []
        with self.store.transaction(write=True) as tx:
            rows = tx.execute(f"{_SELECT_STEP_COLUMNS} WHERE id IN ({marks}){lock}", ids)
            read = {int(r[0]): (self._event(r[:-1]), r[-1]) for r in rows}
            now = dict(read)  # each case as the batch has left it so far
            steps: list[tuple[Event, Event, AuditRecord]] = []
            for req in reqs:
                try:
                    if req.event_id not in now:
                        raise NotFoundError(f"no event {req.event_id}")
                    event, ds_state = now[req.event_id]
                    new, record = self._apply(event, ds_state, req)
                except Exception as exc:  # refused: this one alone
                    out.append(exc)
                    continue
                now[req.event_id] = (new, ds_state)
                steps.append((event, new, record))
                out.append((new, record))
            if steps:
                self._write_batch(tx, read, now, steps)
        return out

    def _write_batch(
        self, tx: Tx, read: dict[int, tuple[Event, Any]], now: dict[int, tuple[Event, Any]],
        steps: list[tuple[Event, Event, AuditRecord]],
    ) -> None:  # fmt: skip
        """A batch's writes: each changed case's last row (if still at the version
        read), every audit row in order, the counts' summed deltas."""
        changed = sorted({new.id or 0 for _, new, _ in steps})
        update = f"UPDATE events SET {_SETS} WHERE id = ? AND version = ? RETURNING id"
        params = []
        for event_id in changed:
            row = self._row(now[event_id][0])
            params.append([*(row[c] for c in _UPDATED), event_id, read[event_id][0].version])
        audit = [(new.id, *(_audit_values(rec)[c] for c in _AUDIT_COLUMNS))
                 for _, new, rec in steps]  # fmt: skip
        audit_sql = _upsert(
            f"INSERT INTO event_audit (event_id, {', '.join(_AUDIT_COLUMNS)}) "
            f"VALUES ({', '.join('?' * (1 + len(_AUDIT_COLUMNS)))})",
            1 + len(_AUDIT_COLUMNS), len(audit),
        )  # fmt: skip
        rows, drows = _tally_rows_many([(old, new) for old, new, _ in steps])
        if self.store.dialect == "postgresql":
            done = _pg_pipelined(tx, update, params, audit_sql, audit, rows, drows)
        else:
            done = sum(len(tx.execute(update, p)) for p in params)
            tx.execute(audit_sql, [x for a in audit for x in a])
            _upsert_tally(tx, rows, drows)
        if done != len(changed):  # the rows are locked: a bug or a foreign writer
            raise StaleEventError(f"{len(changed) - done} of the batch's cases changed meanwhile")

    def _step(self, tx: Tx, req: TransitionRequest) -> tuple[Event, Event, AuditRecord]:
        """Read a case (with its datastream's state, in the same statement) and apply
        the request: (the case read, the case after, the audit record)."""
        read = getattr(tx, "execute_prepared", tx.execute)  # PostgreSQL: prepared
        rows = read(_SELECT_FOR_STEP, [req.event_id])
        row = rows[0] if rows else None
        if row is None:
            raise NotFoundError(f"no event {req.event_id}")
        event = self._event(row[:-1])
        new, record = self._apply(event, row[-1], req)
        return event, new, record

    def _apply(
        self, event: Event, datastream_state: Any, req: TransitionRequest
    ) -> tuple[Event, AuditRecord]:
        """Check and apply a request to a case as read: (the case after, the record)."""
        if req.expected_version is not None and event.version != req.expected_version:
            raise StaleEventError(
                f"case {event.id} is at version {event.version}, not {req.expected_version}: "
                f"it changed meanwhile (now {event.state.value}); reload it"
            )
        actor = req.actor if isinstance(req.actor, Actor) else req.actor(event)
        new, record = apply_action(
            event, req.action, actor, req.at, self.config.table, self.config.schedule,
            note=req.note, department=req.department, extension=req.extension,
        )  # fmt: skip
        if req.action == "close" and event.source == "sensor" and event.datastream_id:
            check_close(event, datastream_state, req.note)
        return new, record

    def add_note(self, event_id: int, record: AuditRecord) -> None:
        """Append a note to a case's trail (no state change, no version change)."""
        with self.store.transaction(write=True) as tx:
            if tx.scalar("SELECT id FROM events WHERE id = ?", [event_id]) is None:
                raise NotFoundError(f"no event {event_id}")
            tx.execute(
                "UPDATE events SET updated_at = ? WHERE id = ? AND updated_at < ?",
                [to_us(record.at), event_id, to_us(record.at)],
            )
            self._insert_audit(tx, event_id, record)

    def note(self, event_id: int, actor: Actor, text: str, at: dt.datetime | None = None) -> None:
        """Append a person's note to a case."""
        if not text.strip():
            raise InputDataError("a note needs some text")
        event = self.get(event_id)
        at = self.config.schedule.local(at or _now())
        self.add_note(
            event_id,
            AuditRecord(event_id, actor.name, actor.role.value, at, NOTE_ACTION,
                        event.state.value, event.state.value, text.strip()),
        )  # fmt: skip

    def add_attachment(self, event_id: int, checked: Checked, by: str) -> int:
        """Record an accepted attachment (:func:`layers.events.attachments.check`) of a case.

        The caller writes the bytes under ``checked.storage_key`` first; this stores the
        metadata. Returns the attachment id.
        """
        with self.store.transaction(write=True) as tx:
            if tx.scalar("SELECT id FROM events WHERE id = ?", [event_id]) is None:
                raise NotFoundError(f"no event {event_id}")
            return tx.insert(
                "event_attachments",
                {
                    "event_id": event_id,
                    "name": checked.name,
                    "media_type": checked.media_type,
                    "size": checked.size,
                    "sha256": checked.sha256,
                    "storage_key": checked.storage_key,
                    "created": to_us(_now()),
                    "uploaded_by": by,
                },
            )

    def attachments(self, event_id: int) -> list[dict[str, Any]]:
        """A case's attachments' metadata, oldest first."""
        with self._reading() as tx:
            rows = tx.execute(f"{_SELECT_ATTACHMENTS} WHERE event_id = ? ORDER BY id", [event_id])
        return [_attachment(r) for r in rows]

    # --- reading -----------------------------------------------------------------------

    def _reading(self) -> AbstractContextManager[Tx]:
        """Where a read of one statement runs: on PostgreSQL in autocommit (one round
        trip instead of three: no BEGIN, no COMMIT; an HTTP transition reads the case,
        its trail and its attachments), on SQLite in a read transaction."""
        auto = getattr(self.store, "autocommit", None)
        return auto() if auto is not None else self.store.transaction()

    def _load(self, tx: Tx, event_id: int) -> Event:
        row = tx.one(f"{_SELECT} WHERE id = ?", [event_id])
        if row is None:
            raise NotFoundError(f"no event {event_id}")
        return self._event(row)

    def get(self, event_id: int) -> Event:
        """One case (NotFoundError when there is none)."""
        with self._reading() as tx:
            return self._load(tx, event_id)

    def has_datastream(self, datastream_id: int) -> bool:
        """Whether the store holds this SensorThings datastream."""
        with self.store.transaction() as tx:
            return tx.scalar("SELECT id FROM datastreams WHERE id = ?", [datastream_id]) is not None

    def open_event_for_datastream(self, datastream_id: int) -> Event | None:
        """The open case a datastream's alarm opened, or None."""
        with self._reading() as tx:
            row = tx.one(f"{_SELECT} WHERE open_datastream = ?", [datastream_id])
        return None if row is None else self._event(row)

    def audit(self, event_id: int) -> list[AuditRecord]:
        """A case's audit trail, oldest first."""
        with self._reading() as tx:
            rows = tx.execute(f"{_SELECT_AUDIT} WHERE event_id = ? ORDER BY id", [event_id])
        return [self._audit_record(r) for r in rows]

    def _audit_record(self, r: Sequence[Any]) -> AuditRecord:
        return AuditRecord(int(r[0]), r[1], r[2], self._dt(r[3]), r[4], r[5], r[6], r[7],  # type: ignore[arg-type]
                           json.loads(r[8]) if r[8] else None)  # fmt: skip

    def trail(self, event_id: int) -> tuple[list[AuditRecord], list[dict[str, Any]]]:
        """A case's audit trail and its attachments' metadata (:meth:`audit`,
        :meth:`attachments`) in one read transaction on SQLite (two autocommitted
        statements on PostgreSQL): what a detail view shows besides the case."""
        with self._reading() as tx:
            audit = tx.execute(f"{_SELECT_AUDIT} WHERE event_id = ? ORDER BY id", [event_id])
            files = tx.execute(f"{_SELECT_ATTACHMENTS} WHERE event_id = ? ORDER BY id", [event_id])
        return [self._audit_record(r) for r in audit], [_attachment(r) for r in files]

    def list_page(self, f: EventFilter, now: dt.datetime | None = None) -> EventPage:
        """One page of the cases matching ``f``, how many match in all, and the counts
        by state ignoring ``f.states`` (the list panel's query), in one read transaction.
        A search's total and counts are those of its newest :attr:`count_cap` matches
        when it has more (:attr:`EventPage.capped`).

        ``overdue`` compares the stored deadline of the current stage with ``now``
        (paused and finished cases are never overdue). The counts are read once: the
        total is their sum over ``f.states`` (all of them without a state filter).
        """
        now = now or _now()
        source, params, key = self._source(f, now)
        order = "DESC" if f.newest_first else "ASC"
        with self.store.transaction() as tx:
            self._serial_search(tx, f)
            # the page's ids first (an index often holds them), then only its rows
            rows = tx.execute(
                f"{_SELECT} WHERE id IN (SELECT id FROM {source} ORDER BY {key} {order} "
                f"LIMIT ? OFFSET ?) ORDER BY id {order}",
                [*params, max(0, f.limit), max(0, f.offset)],
            )
            counts, capped = self._page_counts(tx, f, now)
        wanted = set(f.states)
        total = sum(n for s, n in counts.items() if not wanted or s in wanted)
        return EventPage([self._event(r) for r in rows], total, counts, capped)

    def markers(self, f: EventFilter, now: dt.datetime | None = None) -> EventPage:
        """What the map draws of the cases matching ``f``: rows of :data:`MARKER_COLUMNS`
        straight from the table (overdue and approaching from the stored deadlines, as
        the ``overdue`` filter reads them), with the total and counts of
        :meth:`list_page`. Thousands of cases in one read, no case built."""
        now = now or _now()
        source, params, key = self._source(f, now)
        order = "DESC" if f.newest_first else "ASC"
        n = to_us(now)
        with self.store.transaction() as tx:
            self._serial_search(tx, f)
            rows = tx.execute(
                "SELECT id, state, department, subcategory, lon, lat, height, version, "
                "CASE WHEN deadline < ? THEN 1 ELSE 0 END, "
                "CASE WHEN approach_at <= ? AND deadline >= ? THEN 1 ELSE 0 END "
                f"FROM {source} ORDER BY {key} {order} LIMIT ? OFFSET ?",
                [n, n, n, *params, max(0, f.limit), max(0, f.offset)],
            )
            counts, capped = self._page_counts(tx, f, now)
        wanted = set(f.states)
        total = sum(c for s, c in counts.items() if not wanted or s in wanted)
        return EventPage([tuple(r) for r in rows], total, counts, capped)  # type: ignore[misc]

    def list_events(
        self, f: EventFilter, now: dt.datetime | None = None
    ) -> tuple[list[Event], int]:
        """Cases matching ``f`` (one page) and how many match in all (see :meth:`list_page`)."""
        page = self.list_page(f, now)
        return page.items, page.total

    def count_by_state(self, f: EventFilter, now: dt.datetime | None = None) -> dict[str, int]:
        """How many cases match ``f`` in each state, ignoring ``f.states`` (the list
        panel's counts: what each state filter would give); exact, a search's too."""
        with self.store.transaction() as tx:
            self._serial_search(tx, f)
            return self._state_counts(tx, f, now or _now())

    def _page_counts(self, tx: Tx, f: EventFilter, now: dt.datetime) -> tuple[dict[str, int], bool]:
        """The counts by state of a page (ignoring ``f.states``) and whether they are a
        search's capped ones: the states of its newest ``count_cap`` matches, read in
        id order from the index (or the table) that stops there."""
        if not f.text:
            return self._state_counts(tx, f, now), False
        if self.store.dialect == "postgresql" and self._has_index():
            return self._pg_page_counts(tx, replace(f, states=()), now)
        source, params, key = self._source(replace(f, states=()), now)
        rows = tx.execute(
            f"SELECT state FROM {source} ORDER BY {key} DESC LIMIT ?", [*params, self.count_cap + 1]
        )
        states = [str(r[0]) for r in rows]
        capped = len(states) > self.count_cap
        return dict(Counter(states[: self.count_cap])), capped

    def _pg_page_counts(
        self, tx: Tx, f: EventFilter, now: dt.datetime
    ) -> tuple[dict[str, int], bool]:
        """PostgreSQL: a search's capped counts, its matches read newest first in id
        windows: the newest :data:`PG_FIRST_WINDOW` ids, then as many as the matches
        found so far say the cap needs (at most the rest of the ids).

        The text indexes give the matches in no order: asked for the newest 1,000 of a
        word in a quarter of a million cases, PostgreSQL reads every match's row (0.2–0.5
        s). Within a window of ids the index's matches are few, so a common word fills
        the cap from the first window or two, and a rare one costs a few index scans."""
        states: list[str] = []
        top = hi = int(tx.scalar("SELECT coalesce(max(id), 0) FROM events"))
        width = PG_FIRST_WINDOW
        while hi > 0 and len(states) <= self.count_cap:
            lo = max(0, hi - width)
            where, params = self._where(f, now, ids=(lo, hi))
            rows = tx.execute(
                f"SELECT state FROM events{where} ORDER BY id DESC LIMIT ?",
                [*params, self.count_cap + 1 - len(states)],
            )
            states.extend(str(r[0]) for r in rows)
            # the next window: half as wide again as the matches so far say the rest of
            # the cap needs (all the rest when they say it is past the oldest id)
            missing = self.count_cap + 1 - len(states)
            hi, width = lo, int(1.5 * missing * (top - lo) / max(1, len(states)))
        capped = len(states) > self.count_cap
        return dict(Counter(states[: self.count_cap])), capped

    def _state_counts(self, tx: Tx, f: EventFilter, now: dt.datetime) -> dict[str, int]:
        if _counted(f):
            return self._counts(tx, f, keep_states=False)
        g = replace(f, states=())
        if self.store.dialect == "sqlite" and _ranged(g):
            where, params = self._where(g, now)
            # one index range count per state (events_state_*): SQLite has no hash
            # aggregate, and grouping ~20,000 matches by state sorts them all
            states = [s.value for s in State if f.open is None or (s not in FINAL_STATES) == f.open]
            union = " UNION ALL ".join(
                f"SELECT ?, count(*) FROM events{where} AND state = ?" for _ in states
            )
            rows = tx.execute(union, [x for s in states for x in (s, *params, s)])
        elif self.store.dialect == "sqlite":
            # grouping by an expression keeps SQLite on the filter's index (grouping by
            # the column would walk the state index over every case)
            if self._searched_only(g):
                # each match's state from events_id_state, the match ids in order
                where, params = self._where(g, now)
                rows = tx.execute(
                    f"SELECT state, count(*) FROM events INDEXED BY events_id_state{where} "
                    "GROUP BY state",
                    params,
                )
            else:
                source, params, _ = self._source(g, now)
                rows = tx.execute(
                    f"SELECT state || '', count(*) FROM {source} GROUP BY state || ''", params
                )
        else:
            where, params = self._where(g, now)
            rows = tx.execute(f"SELECT state, count(*) FROM events{where} GROUP BY state", params)
        return {str(k): int(v) for k, v in rows if v}

    @staticmethod
    def _counts(tx: Tx, f: EventFilter, keep_states: bool) -> dict[str, int]:
        """Counts by state from ``event_counts`` (filters on its columns only)."""
        conds, params = [], []
        g = replace(f, states=f.states if keep_states else ())
        for column, values in (("department", g.departments), ("category", g.categories),
                               ("subcategory", g.subcategories), ("state", g.states)):  # fmt: skip
            if values:
                conds.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        where = " WHERE " + " AND ".join(conds) if conds else ""
        rows = tx.execute(f"SELECT state, sum(n) FROM event_counts{where} GROUP BY state", params)
        out = {str(k): int(v) for k, v in rows if v}
        if f.open is not None:
            out = {k: v for k, v in out.items() if (State(k) not in FINAL_STATES) == f.open}
        return out

    def rebuild_counts(self) -> None:
        """Recount ``event_counts`` and ``event_daily`` from the cases (after a bulk
        load that bypassed the store, or to repair them)."""
        with self.store.transaction(write=True) as tx:
            tx.execute("DELETE FROM event_daily")
            for stmt in DAILY_FILL:
                tx.execute(stmt)
            tx.execute("DELETE FROM event_counts")
            tx.execute(
                "INSERT INTO event_counts (department, category, subcategory, state, n) "
                "SELECT coalesce(department, ''), category, subcategory, state, count(*) "
                "FROM events GROUP BY 1, 2, 3, 4"
            )

    def _source(self, f: EventFilter, now: dt.datetime) -> tuple[str, list[Any], str]:
        """What a page or a count reads: ``FROM`` and ``WHERE`` (without the words), their
        parameters, and the column giving the cases' id order.

        A search the SQLite index answers reads the index's matches joined to the
        cases, newest first, straight from the index: a page of a common word stops
        after its rows instead of collecting every match first."""
        match = self._match(f.text) if f.text else None
        if match is None:
            where, params = self._where(f, now)
            return f"events{where}", params, "id"
        sql, args, recheck = match
        where, params = self._where(replace(f, text=None), now)
        conds = [where[len(" WHERE ") :]] if where else []
        conds.append(f"events_fts MATCH {sql}")
        params = [*params, *args]
        if recheck:
            like, like_args = _like(f.text)  # type: ignore[arg-type]
            conds.append(like)
            params.extend(like_args)
        join = "events_fts JOIN events ON events.id = events_fts.rowid"
        return f"{join} WHERE {' AND '.join(conds)}", params, "events_fts.rowid"

    def _searched_only(self, f: EventFilter) -> bool:
        """Whether ``f`` is a search the SQLite index answers exactly and, besides, at
        most states: its matches' states are all its counts need."""
        if not f.text:
            return False
        match = self._match(f.text)
        rest = replace(f, text=None, states=(), open=None)
        return (
            match is not None
            and not match[2]
            and _counted(rest)
            and not (rest.departments or rest.categories or rest.subcategories)
        )

    def _serial_search(self, tx: Tx, f: EventFilter) -> None:
        """PostgreSQL: no parallel workers for a search's page and counts in ``tx``.

        A search's matches (a few thousand to a hundred thousand) are read in tens of
        ms; starting two workers took 200–500 ms on a busy machine (``EXPLAIN
        ANALYZE``: the workers' own part 14 ms of a 235 ms count), and the planner
        picks them for the bitmap scans of the text indexes."""
        if f.text and self.store.dialect == "postgresql":
            tx.execute("SET LOCAL max_parallel_workers_per_gather = 0")

    def _has_index(self) -> bool:
        """Whether the store has migration 5's search index (SQLite: unless its library
        lacks the trigram tokenizer), looked up once."""
        if self._fts is None:
            sql = (
                "SELECT count(*) FROM sqlite_master WHERE name = 'events_fts'"
                if self.store.dialect == "sqlite"
                else "SELECT to_regclass('events_text') IS NOT NULL"
            )
            with self.store.transaction() as tx:
                self._fts = bool(tx.scalar(sql))
        return self._fts

    def _match(self, text: str) -> tuple[str, list[Any], bool] | None:
        """The SQLite search index's ``MATCH`` operand for a substring search, its
        parameters, and whether the cases must be rechecked with ``LIKE``; None where
        the index cannot answer (no index, one character, control characters).

        The index folds case as Unicode does; ``LIKE`` folds ASCII only. A search of
        characters without case (Chinese, digits, punctuation) matches exactly what
        ``LIKE`` matches; one with letters is rechecked (the index's matches are a
        superset: ``k`` finds the Kelvin sign too). Three characters or more are one
        FTS5 phrase (the text quoted, so any text is safe); one or two are every indexed
        trigram starting with them (``events_fts_terms``, whose terms are folded), unless
        one character is in so many cases that reading them newest first is quicker."""
        if self.store.dialect != "sqlite" or not text or any(ord(c) < 32 for c in text):
            return None
        if not self._has_index() or (len(text) == 1 and self._dense(text)):
            return None
        exact = all(_caseless(c) for c in text)
        if len(text) >= 3:
            return "?", ['"' + text.replace('"', '""') + '"'], not exact
        if not all(c.isascii() or _caseless(c) for c in text):
            return None  # how the index folds that letter is its business
        low = text.lower()  # the index's fold, for ASCII letters
        upper = _successor(low)
        if upper is None:
            return None
        terms = (
            "(SELECT coalesce(group_concat('\"' || replace(term, '\"', '\"\"') || '\"', ' OR '), "
            "'\"\"') FROM events_fts_terms WHERE term >= ? AND term < ?)"
        )  # no term: the empty phrase, which matches nothing
        return terms, [low, upper], not exact

    def _dense(self, text: str) -> bool:
        """Whether a short search matches so many cases (a tenth of the newest
        :data:`DENSE_PROBE`) that the table read newest first finds a page and
        :attr:`count_cap` matches sooner than the index does: on SQLite, 路 in 62 % of a
        million cases has 103 indexed trigrams to walk (40 ms), a digit 148 (110 ms),
        where the table gives 1,000 matches in 1,600 rows; on PostgreSQL, the character
        sets' test on each row read doubles a read newest first. Looked up once a
        minute."""
        seen = self._density.get(text)
        if seen is not None and time.monotonic() - seen[1] < 60:
            return seen[0]
        like, args = _like(text, "e")
        with self.store.transaction() as tx:
            rows = tx.execute(
                f"SELECT count(*), coalesce(sum(CASE WHEN {like} THEN 1 ELSE 0 END), 0) FROM "
                "(SELECT description, address, "
                "building FROM events ORDER BY id DESC LIMIT ?) AS e",
                [*args, DENSE_PROBE],
            )
        tried, found = rows[0]
        dense = int(found) * 10 >= max(1, int(tried))
        if len(self._density) > 1024:
            self._density.clear()
        self._density[text] = (dense, time.monotonic())
        return dense

    def _where(
        self, f: EventFilter, now: dt.datetime, ids: tuple[int, int] | None = None
    ) -> tuple[str, list[Any]]:
        """``WHERE`` and its parameters for ``f`` (``ids``: only ``lo < id <= hi``, on
        PostgreSQL inside the text search's subquery too, where its index reads them)."""
        conds: list[str] = []
        params: list[Any] = []
        window = " AND id > ? AND id <= ?" if ids else ""
        if ids:
            conds.append("id > ? AND id <= ?")
            params.extend(ids)

        def any_of(column: str, values: Sequence[Any]) -> None:
            if values:
                conds.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)

        any_of("state", list(f.states))
        any_of("department", list(f.departments))
        any_of("subcategory", list(f.subcategories))
        any_of("category", list(f.categories))
        any_of("source", list(f.sources))
        any_of("id", list(f.ids))
        if f.open is not None:
            # a list of states, not NOT IN: the state index then reads only those
            wanted = [s.value for s in State if (s not in FINAL_STATES) == f.open]
            conds.append(f"state IN ({', '.join('?' * len(wanted))})")
            params.extend(wanted)
        if f.overdue is not None:
            conds.append("deadline < ?" if f.overdue else "(deadline IS NULL OR deadline >= ?)")
            params.append(to_us(now))
        if f.approaching is not None:
            near = "approach_at <= ? AND deadline >= ?"
            conds.append(near if f.approaching else f"NOT coalesce({near}, FALSE)")
            params.extend([to_us(now), to_us(now)])
        if f.text:
            match, recheck = self._match(f.text), True
            if match is not None:  # the search index's rowids (rechecked where it folds more)
                sql, args, recheck = match
                conds.append(f"id IN (SELECT rowid FROM events_fts WHERE events_fts MATCH {sql})")
                params.extend(args)
            elif self.store.dialect == "postgresql" and self._has_index():
                # a semi-join: the planner probes a few matches by key or hashes many
                # (an array of every match, tried, was 2–4× slower for common words)
                # a character or two in a tenth of the cases: the LIKE alone, which a
                # read newest first tries on a few rows (each row's sets cost ~20 µs)
                sets = len(f.text) > 2 or not self._dense(f.text)
                text = _pg_text(f.text, sets)
                conds.append(f"id IN (SELECT id FROM events_text WHERE {text}{window})")
                params.extend([*_pg_text_args(f.text, sets), *(ids or ())])
                recheck = False
            if recheck:
                like, like_args = _like(f.text)
                conds.append(like)
                params.extend(like_args)
        if f.datastream_id is not None:
            conds.append("datastream_id = ?")
            params.append(f.datastream_id)
        if f.bbox is not None:
            west, south, east, north = f.bbox
            cells = _cells(west, east, self.store.dialect)
            if cells:  # the longitude bands the box touches: events_cell reads only them
                conds.append(f"{cell_sql(self.store.dialect)} IN ({', '.join('?' * len(cells))})")
                params.extend(cells)
            conds.append("lon >= ? AND lon <= ? AND lat >= ? AND lat <= ?")
            params.extend([west, east, south, north])
        if f.reported_after is not None:
            conds.append("reported_at >= ?")
            params.append(to_us(f.reported_after))
        if f.reported_before is not None:
            conds.append("reported_at < ?")
            params.append(to_us(f.reported_before))
        return (" WHERE " + " AND ".join(conds) if conds else ""), params

    def statistics(self, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
        """The 综合评价 of cases reported in ``[start, end)``.

        Returns
        -------
        dict
            ``by_state`` {state: n}, ``by_department`` {dept: {"open", "closed"}},
            ``closed``, ``on_time`` (closed without a late stage), ``on_time_rate``
            (None without closed cases), ``mean_hours_by_subcategory`` {code: hours
            from report to 结案, wall time}.
        """
        lo, hi = to_us(start), to_us(end)
        first, last = -(-lo // DAY_US), hi // DAY_US  # the whole days inside the range
        edges = [(lo, hi)] if first >= last else [(lo, first * DAY_US), (last * DAY_US, hi)]
        marg: dict[str, dict[tuple[str, str], list[float]]] = {"s": {}, "d": {}, "c": {}}

        def add(kind: str, a: str, b: str, n: int, spent: float) -> None:
            acc = marg[kind].setdefault((a, b), [0, 0.0])
            acc[0] += int(n)
            acc[1] += float(spent or 0)

        with self.store.transaction() as tx:
            if first < last:  # whole days from the kept daily breakdowns
                for kind, a, b, n, spent in tx.execute(
                    "SELECT kind, a, b, sum(n), sum(spent) FROM event_daily "
                    "WHERE day >= ? AND day < ? GROUP BY kind, a, b",
                    [first, last],
                ):
                    add(kind, a, b, n, spent)
            for a_us, b_us in edges:  # partial days from the cases themselves
                if a_us >= b_us:
                    continue
                for dept, sub, state, late, n, spent in tx.execute(
                    "SELECT coalesce(department, ''), subcategory, state, late, count(*), "
                    "coalesce(sum(closed_at - reported_at), 0) FROM events "
                    "WHERE reported_at >= ? AND reported_at < ? GROUP BY 1, 2, 3, 4",
                    [a_us, b_us],
                ):
                    add("s", state, "0" if not late else "1", n, spent)
                    add("d", dept, state, n, spent)
                    add("c", sub, state, n, spent)
        return _fold(marg)

    # --- sensors ---------------------------------------------------------------------------

    def state_change(
        self, datastream_id: int, old: str | None, new: str, value: Any, time_us: int
    ) -> StateChange:
        """A datastream's state change with what a case needs (name, property, place).

        Fits :class:`layers.states.Transition` (``datastream_id, old, new, value,
        time_us``); the name, observed property, department and position are read from
        the SensorThings tables.
        """
        with self.store.transaction() as tx:
            row = tx.one(
                "SELECT d.name, o.name, d.department, l.location FROM datastreams d "
                "JOIN observed_properties o ON o.id = d.observed_property_id "
                "LEFT JOIN thing_locations tl ON tl.thing_id = d.thing_id "
                "LEFT JOIN locations l ON l.id = tl.location_id WHERE d.id = ? "
                "ORDER BY l.id LIMIT 1",
                [datastream_id],
            )
        if row is None:
            raise NotFoundError(f"no datastream {datastream_id}")
        lon, lat, height = _point(row[3])
        return StateChange(datastream_id, row[0], row[1], new, old, value,
                           self._dt(time_us), row[2], lon, lat, height)  # type: ignore[arg-type]  # fmt: skip


def _point(geojson_text: str | None) -> tuple[float | None, float | None, float | None]:
    """The first position of a stored GeoJSON location (a Point, usually)."""
    if not geojson_text:
        return None, None, None
    geom = json.loads(geojson_text)
    if geom.get("type") == "Feature":
        geom = geom.get("geometry") or {}
    coords = geom.get("coordinates")
    while isinstance(coords, list) and coords and isinstance(coords[0], list):
        coords = coords[0]
    if not coords or len(coords) < 2:
        return None, None, None
    return float(coords[0]), float(coords[1]), float(coords[2]) if len(coords) > 2 else None


#: most longitude bands a box is read by (4°): a wider box holds most cases anyway
_MAX_CELLS = 200


def _cells(west: float, east: float, dialect: str) -> list[int]:
    """The ``events_cell`` bands of longitudes in ``[west, east]`` (as the index's
    expression computes them), or none when the box is too wide or not finite."""
    if not (math.isfinite(west) and math.isfinite(east)) or east < west:
        return []
    band = math.floor if dialect == "postgresql" else int  # SQLite's CAST truncates
    lo, hi = band(west * CELLS_PER_DEGREE), band(east * CELLS_PER_DEGREE)
    return list(range(lo, hi + 1)) if hi - lo < _MAX_CELLS else []


#: Unicode categories of characters without case (Chinese, digits, punctuation, symbols)
_CASELESS = frozenset({"Lo", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm",
                       "Sc", "Sk", "So", "Zs"})  # fmt: skip


def _caseless(c: str) -> bool:
    """Whether the search index and ``LIKE`` agree on ``c``: ASCII other than letters,
    or a character of a category without case."""
    if c.isascii():
        return not c.isalpha()
    # the category alone is not enough: Ⅰ (Nl) and Ⓐ (So) have a lower case
    return unicodedata.category(c) in _CASELESS and c.lower() == c == c.upper()


def _successor(text: str) -> str | None:
    """The least string greater than every string starting with ``text`` (UTF-8 order
    is code point order), or None past the last code point."""
    code = ord(text[-1]) + 1
    if 0xD800 <= code <= 0xDFFF:  # surrogates are no text
        code = 0xE000
    return None if code > 0x10FFFF else text[:-1] + chr(code)


def _like(text: str, table: str = "events") -> tuple[str, list[Any]]:
    """The plain substring condition (the search's meaning): ``LIKE`` on each column."""
    like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    cond = " OR ".join(f"{table}.{c} LIKE ? ESCAPE '\\'" for c in TEXT_COLUMNS)
    return f"({cond})", [like] * len(TEXT_COLUMNS)


def _pg_text(text: str, sets: bool = True) -> str:
    """PostgreSQL: the search's condition on ``events_text`` (migrations 5 and 6).

    pg_trgm's indexes serve the ``LIKE`` from 3 characters on. One or two characters:
    the GIN indexes of each text's characters or two-character substrings (the set
    holds q exactly when q is a substring); the ``LIKE`` stays, so a plan that filters
    rows tries it first and computes the sets (a SQL function, ~20 µs) only for its
    matches; ``sets=False`` leaves them out (the ``LIKE`` alone)."""
    like, _ = _like(text, "events_text")
    if len(text) > 2 or not sets:
        return like
    grams = BIGRAMS if len(text) == 2 else CHARS
    held = " OR ".join(f"{grams}(events_text.{c}) @> ARRAY[?]" for c in TEXT_COLUMNS)
    return f"({held}) AND {like}"


def _pg_text_args(text: str, sets: bool = True) -> list[Any]:
    """The parameters of :func:`_pg_text`'s condition."""
    _, args = _like(text, "events_text")
    return ([text] * len(TEXT_COLUMNS) if len(text) <= 2 and sets else []) + args


def _unique_violation(exc: BaseException) -> bool:
    import sqlite3

    if isinstance(exc, sqlite3.IntegrityError):
        return "open_datastream" in str(exc)
    try:
        import psycopg
    except ImportError:  # pragma: no cover - a dependency
        return False
    return isinstance(exc, psycopg.errors.UniqueViolation) and "open_datastream" in str(exc)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


#: the columns of ``event_counts`` a filter may use (see :meth:`EventStore.count_by_state`)
_COUNTED = {"states", "departments", "categories", "subcategories", "open", "limit", "offset",
            "newest_first"}  # fmt: skip
_DEFAULT_FILTER = EventFilter()


def _counted(f: EventFilter) -> bool:
    """Whether ``f`` filters only on what ``event_counts`` holds.

    An empty list is no condition, as the default empty tuple is (the HTTP API's
    filters come as lists: ``sources=[]`` must not send the counts to a count of every
    matching row, 0.7 s of CPU on a million cases)."""
    for name in EventFilter.__dataclass_fields__:
        if name in _COUNTED:
            continue
        value, default = getattr(f, name), getattr(_DEFAULT_FILTER, name)
        if isinstance(default, tuple) and isinstance(value, (list, tuple)):
            value = tuple(value)
        if value != default:
            return False
    return True


def _ranged(f: EventFilter) -> bool:
    """Whether ``f`` (without states) holds a range that an ``events_state_*`` index
    reads after the state: overdue, approaching or a report time, and nothing unindexed
    (text, bounding box)."""
    ranged = f.overdue is True or f.approaching is True
    ranged = ranged or f.reported_after is not None or f.reported_before is not None
    return ranged and f.text is None and f.bbox is None


def _count_key(e: Event) -> tuple[str, str, str, str]:
    return (e.department or "", e.category, e.subcategory, e.state.value)


def _fold(marg: dict[str, dict[tuple[str, str], list[float]]]) -> dict[str, Any]:
    """The statistics from the three breakdowns (see :meth:`EventStore.statistics`)."""
    done = (State.CLOSED.value, State.EVALUATED.value)
    by_state: dict[str, int] = {}
    closed = on_time = 0
    for (state, late), (n, _) in marg["s"].items():
        if n:
            by_state[state] = by_state.get(state, 0) + int(n)
        if state in done:
            closed += int(n)
            on_time += int(n) if late == "0" else 0
    by_department: dict[str, dict[str, int]] = {}
    for (dept, state), (n, _) in sorted(marg["d"].items()):
        if n:
            slot = by_department.setdefault(dept, {"open": 0, "closed": 0})
            slot["open" if State(state) not in FINAL_STATES else "closed"] += int(n)
    spent: dict[str, list[float]] = {}
    for (sub, state), (n, total) in marg["c"].items():
        if state in done and n:
            acc = spent.setdefault(sub, [0.0, 0])
            acc[0] += total
            acc[1] += n
    return {
        "by_state": by_state,
        "by_department": by_department,
        "closed": closed,
        "on_time": on_time,
        "on_time_rate": (on_time / closed) if closed else None,
        "mean_hours_by_subcategory": {
            c: total / n / 3.6e9 for c, (total, n) in sorted(spent.items())
        },
    }


_UPSERT_COUNTS = (
    "INSERT INTO event_counts (department, category, subcategory, state, n) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (department, category, subcategory, state) "
    "DO UPDATE SET n = event_counts.n + excluded.n"
)
_UPSERT_DAILY = (
    "INSERT INTO event_daily (day, kind, a, b, n, spent) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (day, kind, a, b) DO UPDATE SET n = event_daily.n + excluded.n, "
    "spent = event_daily.spent + excluded.spent"
)


def _daily_keys(e: Event) -> list[tuple[tuple[int, str, str, str], int]]:
    reported = to_us(e.reported_at)
    spent = 0 if e.closed_at is None else to_us(e.closed_at) - reported
    day, state = reported // DAY_US, e.state.value
    return [
        ((day, "s", state, "1" if e.late else "0"), spent),
        ((day, "d", e.department or "", state), spent),
        ((day, "c", e.subcategory, state), spent),
    ]


def _tally(tx: Tx, old: Event | None, new: Event) -> None:
    """Move a case's weight in ``event_counts`` and ``event_daily`` from ``old`` to
    ``new``, in key order: two transactions touching the same rows lock them in the same
    order, so PostgreSQL never deadlocks on them."""
    _upsert_tally(tx, *_tally_rows(old, new))


def _upsert_tally(tx: Tx, rows: list[tuple], drows: list[tuple]) -> None:
    """``event_counts`` and ``event_daily`` deltas (:func:`_tally_rows_many`) written."""
    # one multi-row upsert per table (the keys are distinct): a round trip each
    if rows:
        tx.execute(_upsert(_UPSERT_COUNTS, 5, len(rows)), [x for r in rows for x in r])
    if drows:
        tx.execute(_upsert(_UPSERT_DAILY, 6, len(drows)), [x for r in drows for x in r])


def _tally_rows(old: Event | None, new: Event) -> tuple[list[tuple], list[tuple]]:
    """The ``event_counts`` and ``event_daily`` deltas of a case going from ``old`` to
    ``new``, each list in key order, zero deltas left out."""
    return _tally_rows_many([(old, new)])


def _tally_rows_many(
    changes: Sequence[tuple[Event | None, Event]],
) -> tuple[list[tuple], list[tuple]]:
    """The summed ``event_counts`` and ``event_daily`` deltas of cases going from
    ``old`` to ``new`` (:func:`_tally_rows`), each list in key order."""
    counts: dict[tuple[str, str, str, str], int] = {}
    daily: dict[tuple[int, str, str, str], list[int]] = {}
    for e, sign in ((e, sign) for old, new in changes for e, sign in ((old, -1), (new, 1))):
        if e is None:
            continue
        key = _count_key(e)
        counts[key] = counts.get(key, 0) + sign
        for dkey, spent in _daily_keys(e):
            acc = daily.setdefault(dkey, [0, 0])
            acc[0] += sign
            acc[1] += sign * spent
    rows = [(*key, delta) for key, delta in sorted(counts.items()) if delta]
    drows = [(*dkey, n, spent) for dkey, (n, spent) in sorted(daily.items()) if n or spent]
    return rows, drows


def _upsert(sql: str, width: int, n: int) -> str:
    """``sql`` (one ``VALUES (?, ...)`` row of ``width``) with ``n`` rows."""
    one = "(" + ", ".join("?" * width) + ")"
    return sql.replace(one, ", ".join([one] * n), 1)


def _audit_values(record: AuditRecord) -> dict[str, Any]:
    """An audit record's ``event_audit`` columns (but ``event_id``)."""
    return {
        "at": to_us(record.at),
        "actor": record.actor,
        "role": record.role,
        "action": record.action,
        "from_state": record.from_state,
        "to_state": record.to_state,
        "note": record.note,
        "data": json.dumps(record.data, ensure_ascii=False) if record.data else None,
    }


#: the columns a transition writes (not the report's own: time, reporter, source)
_UPDATED = [c for c in (*COLUMNS[1:], "deadline", "approach_at", "open_datastream")
            if c not in ("reported_at", "reporter", "source")]  # fmt: skip
_SETS = ", ".join(f"{c} = ?" for c in _UPDATED)
#: a case and its datastream's state (what closing a sensor's case checks): one read
_SELECT_STEP_COLUMNS = (
    f"SELECT {', '.join(COLUMNS)}, (SELECT d.last_state FROM datastreams d "
    "WHERE d.id = events.datastream_id) FROM events"
)
_SELECT_FOR_STEP = f"{_SELECT_STEP_COLUMNS} WHERE id = ?"
_AUDIT_COLUMNS = ("at", "actor", "role", "action", "from_state", "to_state", "note", "data")


def _pg_transition(
    row: dict[str, Any], old: Event, record: AuditRecord, new: Event
) -> tuple[str, list[Any]]:
    """A transition's write on PostgreSQL as one statement: the update if the case is
    still at the version read, and only then its audit row and the counts' deltas (in
    key order, as :func:`_tally`). Returns the id of the audit row, or no row when the
    case changed meanwhile (then nothing was written)."""
    params: list[Any] = [*(row[c] for c in _UPDATED), old.id, old.version]
    audit = _audit_values(record)
    params += [audit[c] for c in _AUDIT_COLUMNS]
    parts = [
        f"WITH upd AS (UPDATE events SET {_SETS} WHERE id = ? AND version = ? RETURNING id)",
        # CAST: a NULL parameter in a SELECT list would otherwise be taken for text
        f", aud AS (INSERT INTO event_audit (event_id, {', '.join(_AUDIT_COLUMNS)}) "
        "SELECT upd.id, CAST(? AS BIGINT), ?, ?, ?, CAST(? AS TEXT), ?, ?, CAST(? AS TEXT) "
        "FROM upd RETURNING id)",
    ]
    rows, drows = _tally_rows(old, new)
    # the same lock order as :func:`_tally` (a create takes it): event_counts before
    # event_daily, each in the deltas' order. WITH's sub-statements run in no set
    # order, so the daily upsert waits for the whole count upsert (its count(*))
    after = "EXISTS (SELECT 1 FROM upd)"
    for name, upsert, width, deltas in (("cnt", _UPSERT_COUNTS, 5, rows),
                                        ("day", _UPSERT_DAILY, 6, drows)):  # fmt: skip
        if not deltas:
            continue
        # VALUES (...) → SELECT … FROM (VALUES …) WHERE the update happened
        head, tail = _upsert(upsert, width, len(deltas)).split(" VALUES ", 1)
        values, conflict = tail.split(" ON CONFLICT ", 1)
        cols = head[head.index("(") + 1 : head.index(")")]
        parts.append(
            f", {name} AS ({head} SELECT * FROM (VALUES {values}) AS v ({cols}) "
            f"WHERE {after} ON CONFLICT {conflict} RETURNING 1)"
        )
        params += [x for r in deltas for x in r]
        after = f"(SELECT count(*) FROM {name}) = {len(deltas)}"
    parts.append(" SELECT id FROM aud")
    return "".join(parts), params


def _attempt(fn: Any, req: TransitionRequest) -> Any:
    """``fn(req)``, or the exception it raised (a group commit's outcome)."""
    try:
        return fn(req)
    except Exception as exc:
        return exc


def _pg_pipelined(
    tx: Tx, update: str, params: list[list[Any]], audit_sql: str, audit: list[tuple],
    rows: list[tuple], drows: list[tuple],
) -> int:  # fmt: skip
    """A batch's writes on PostgreSQL in one pipeline (one round trip): the updates,
    the audit rows, then the counts (the lock order of :func:`_tally`). The number of
    cases updated."""
    conn = tx.conn  # type: ignore[attr-defined]

    def pg(sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    with conn.pipeline():
        # prepared: one fixed text, parsed and planned once per connection
        curs = [conn.execute(pg(update), p, prepare=True) for p in params]
        conn.execute(pg(audit_sql), [x for a in audit for x in a])
        if rows:
            conn.execute(pg(_upsert(_UPSERT_COUNTS, 5, len(rows))), [x for r in rows for x in r])
        if drows:
            conn.execute(pg(_upsert(_UPSERT_DAILY, 6, len(drows))), [x for r in drows for x in r])
    return sum(len(c.fetchall()) for c in curs)
