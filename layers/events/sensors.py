"""Sensor alarms open cases: one open case per alarming datastream.

When a datastream's state turns to ``alarm`` (:mod:`layers.thresholds`), a case is
reported (source ``sensor``) in the subcategory whose ``sensor`` keywords match the
observed property (else the table's ``[sensor] default``). Further alarms while that
case is open append a note to it instead of opening another; a reading back to
``normal`` appends a note too. Closing (结案) a sensor case needs the reading back to
normal, or a note saying why it may be closed anyway (:func:`check_close`).

The functions talk to a small :class:`SensorEventStore` protocol so that any store
(the SQL one in :mod:`layers.events.store`, a fake in the tests) can back them.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, NamedTuple, Protocol

from layers.events.categories import CategoryTable
from layers.events.lifecycle import AuditRecord, EventConflictError, Role
from layers.events.model import Actor, Event, report
from layers.events.worktime import WorkSchedule
from layers.thresholds import ALARM, NORMAL

logger = logging.getLogger(__name__)

#: the reporter of automatically opened cases
SENSOR_ACTOR = Actor("sensor", Role.OPERATOR)
#: audit action of a note appended without a state change
NOTE_ACTION = "note"


class StateChange(NamedTuple):
    """A datastream's state change, as the states module publishes it."""

    datastream_id: int
    name: str
    observed_property: str
    state: str
    previous: str | None
    value: Any
    time: dt.datetime
    department: str | None = None
    lon: float | None = None
    lat: float | None = None
    height: float | None = None


class SensorEventStore(Protocol):
    """What the alarm logic needs from a store."""

    def open_event_for_datastream(self, datastream_id: int) -> Event | None:
        """The open case of a datastream, or None."""

    def create_event(self, event: Event, record: AuditRecord) -> Event:
        """Store a new case and its audit record; the case with its id.

        Raises :class:`~layers.events.lifecycle.EventConflictError` when the datastream
        already has an open case (another process opened it first).
        """

    def add_note(self, event_id: int, record: AuditRecord) -> None:
        """Append an audit record that changes nothing but the trail."""


class SensorCloseError(EventConflictError):
    """A sensor case may not be closed yet: the reading is not back to normal."""


def _note(event: Event, change: StateChange, text: str) -> AuditRecord:
    return AuditRecord(event.id, SENSOR_ACTOR.name, SENSOR_ACTOR.role.value, change.time,
                       NOTE_ACTION, event.state.value, event.state.value, text,
                       {"datastream_id": change.datastream_id, "value": change.value,
                        "state": change.state})  # fmt: skip


def on_state_change(
    store: SensorEventStore,
    change: StateChange,
    table: CategoryTable,
    schedule: WorkSchedule,
) -> Event | None:
    """Open or update the case of a datastream whose state changed.

    Parameters
    ----------
    store : SensorEventStore
    change : StateChange
    table, schedule
        The city's categories and working hours.

    Returns
    -------
    Event or None
        The case opened or noted; None when nothing was done (no alarm and no open case,
        or no subcategory for sensor alarms in the table).
    """
    existing = store.open_event_for_datastream(change.datastream_id)
    if change.state != ALARM:
        if existing is not None and change.state == NORMAL and change.previous != NORMAL:
            store.add_note(
                existing.id or 0, _note(existing, change, f"读数恢复正常: {change.value}")
            )
            return existing
        return None
    if existing is not None:
        store.add_note(existing.id or 0, _note(existing, change, f"再次告警: {change.value}"))
        return existing
    sub = table.for_sensor(change.observed_property)
    if sub is None:
        logger.warning(
            "no event category for alarms of %r: no case opened", change.observed_property
        )
        return None
    event, record = report(
        table,
        schedule,
        subcategory=sub.code,
        source="sensor",
        description=f"{change.name}: {change.observed_property} = {change.value} (告警)",
        reporter=SENSOR_ACTOR,
        at=change.time,
        lon=change.lon,
        lat=change.lat,
        height=change.height,
        datastream_id=change.datastream_id,
        extra={"sensor_department": change.department} if change.department else {},
    )
    try:
        return store.create_event(event, record)
    except EventConflictError:
        # another process opened it between our look-up and insert: note it there
        existing = store.open_event_for_datastream(change.datastream_id)
        if existing is None:
            raise
        store.add_note(existing.id or 0, _note(existing, change, f"再次告警: {change.value}"))
        return existing


def check_close(event: Event, datastream_state: str | None, note: str) -> None:
    """Refuse to close a sensor case whose reading is not back to normal, unless noted.

    Raises
    ------
    SensorCloseError
        ``event`` came from a sensor, its datastream is not ``normal`` and ``note`` is
        empty.
    """
    if event.source != "sensor" or datastream_state == NORMAL or note.strip():
        return
    raise SensorCloseError(
        f"the sensor reading of case {event.id} is {datastream_state or 'unknown'}, not back "
        "to normal: closing it needs a note giving the reason"
    )
