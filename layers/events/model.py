"""A city event (case, 案卷) and the pure step that moves it through its lifecycle.

:func:`report` makes a new case; :func:`apply_action` checks an action against the
lifecycle (:mod:`layers.events.lifecycle`), moves the stage clock
(:mod:`layers.events.worktime`) with the category's limits
(:mod:`layers.events.categories`) and returns the new case with its audit record.
Nothing here touches a store: the store layer runs this inside its transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any

from layers.events.categories import CategoryTable, Subcategory
from layers.events.lifecycle import (
    FINAL_STATES,
    STAGE_OF_STATE,
    AuditRecord,
    Role,
    State,
    TransitionInputError,
    check_transition,
)
from layers.events.worktime import APPROACHING, ClockStatus, StageClock, WorkSchedule, parse_limit

#: where a case came from
SOURCES = ("hotline", "patrol", "video", "sensor", "api", "open311")
PRIORITIES = ("low", "normal", "high", "urgent")


@dataclass(frozen=True)
class Actor:
    """Who acts: a user name, the role they act in, and their department (handlers)."""

    name: str
    role: Role
    department: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", Role(self.role))  # "handler" → Role.HANDLER, or ValueError


@dataclass(frozen=True)
class Event:
    """One case.

    Attributes
    ----------
    id : int or None
        Store id (None before it is stored).
    subcategory : str
        The 小类 code; :attr:`category` and :attr:`cls` follow from the table.
    source : str
        One of :data:`SOURCES`.
    lon, lat, height : float or None
        WGS84 position (the shared placement's result).
    address, building, floor
        Where, as the reporter or the placement named it.
    department : str or None
        The department the case is assigned to (None until dispatched, or returned).
    clock : StageClock or None
        The time limit of the current stage (None once finished).
    version : int
        Incremented by every transition (optimistic concurrency in the store).
    late : bool
        Some stage ended past its deadline (for the 综合评价 on-time rate).
    """

    subcategory: str
    category: str
    cls: str
    source: str
    description: str
    reported_at: dt.datetime
    reporter: str
    state: State = State.REPORTED
    id: int | None = None
    priority: str = "normal"
    lon: float | None = None
    lat: float | None = None
    height: float | None = None
    address: str | None = None
    building: str | None = None
    floor: int | None = None
    department: str | None = None
    stage: str | None = "file"
    clock: StageClock | None = None
    pending_extension: str | None = None
    updated_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    version: int = 1
    late: bool = False
    rework_count: int = 0
    datastream_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        """Not cancelled, closed or evaluated."""
        return self.state not in FINAL_STATES

    def clock_status(
        self, schedule: WorkSchedule, now: dt.datetime, approaching: float = APPROACHING
    ) -> ClockStatus | None:
        """The current stage's deadline and flags at ``now`` (None once finished)."""
        return None if self.clock is None else self.clock.status(schedule, now, approaching)


def _limit(sub: Subcategory, stage: str | None, schedule: WorkSchedule) -> dt.timedelta:
    assert stage is not None
    return schedule.duration(sub.limits[stage])


def report(
    table: CategoryTable,
    schedule: WorkSchedule,
    *,
    subcategory: str,
    source: str,
    description: str,
    reporter: Actor,
    at: dt.datetime,
    **fields: Any,
) -> tuple[Event, AuditRecord]:
    """A new case in 信息采集 (reported), its 立案 clock started, with its audit record.

    Parameters
    ----------
    table, schedule
        The city's categories and working hours.
    subcategory : str
        The 小类 code (NotFoundError when unknown).
    source : str
        One of :data:`SOURCES`.
    description : str
    reporter : Actor
    at : datetime
        When it was reported.
    **fields
        Other :class:`Event` attributes (lon, lat, address, building, floor, priority,
        datastream_id, extra).

    Raises
    ------
    TransitionInputError
        Unknown source or priority.
    """
    sub = table.get(subcategory)
    if source not in SOURCES:
        raise TransitionInputError(f"unknown source {source!r}; one of {', '.join(SOURCES)}")
    priority = fields.get("priority", "normal")
    if priority not in PRIORITIES:
        raise TransitionInputError(f"unknown priority {priority!r}; one of {', '.join(PRIORITIES)}")
    at = schedule.local(at)
    event = Event(
        subcategory=sub.code,
        category=sub.category,
        cls=sub.cls,
        source=source,
        description=description,
        reported_at=at,
        reporter=reporter.name,
        updated_at=at,
        clock=StageClock(at, _limit(sub, "file", schedule)),
        **fields,
    )
    record = AuditRecord(None, reporter.name, Role(reporter.role).value, at, "report", None,
                         State.REPORTED.value, description[:200])  # fmt: skip
    return event, record


def apply_action(
    event: Event,
    action: str,
    actor: Actor,
    at: dt.datetime,
    table: CategoryTable,
    schedule: WorkSchedule,
    *,
    note: str = "",
    department: str | None = None,
    extension: str | None = None,
) -> tuple[Event, AuditRecord]:
    """Take ``action`` on ``event``: the new case and its audit record.

    Parameters
    ----------
    event : Event
    action : str
        A :data:`layers.events.lifecycle.TRANSITIONS` action.
    actor : Actor
    at : datetime
        When (the stage clocks start and stop here).
    table, schedule
        The city's categories and working hours.
    note : str
        The reason; required for 注销, 回退, 改派, requests, refusals and 返工.
    department : str, optional
        Target of ``dispatch`` (default: the category's department) or ``redispatch``.
    extension : str, optional
        Working time of a 延期: asked by ``request_extension``; ``approve_extension``
        grants it (or a different amount given here).

    Raises
    ------
    IllegalTransitionError, RoleNotAllowedError
        Not possible now, or not for this role (the message names the allowed actions).
    TransitionInputError
        A required note, department or extension is missing or wrong.
    """
    t = check_transition(event.state, action, actor.role, acting_department=actor.department,
                         assigned_department=event.department)  # fmt: skip
    note = note.strip()
    if t.note_required and not note:
        raise TransitionInputError(f"{action} ({t.label}) needs a note giving the reason")
    sub = table.get(event.subcategory)
    at = schedule.local(at)
    changes: dict[str, Any] = {}
    data: dict[str, Any] = {}
    if action in ("dispatch", "redispatch"):
        target = department or (sub.department if action == "dispatch" else None)
        if not target:
            raise TransitionInputError(f"{action} ({t.label}) needs the department to send it to")
        if action == "redispatch" and target == event.department:
            raise TransitionInputError(
                f"redispatch (改派) must name another department than {target!r}"
            )
        changes["department"] = target
        data["department"] = target
    elif action == "return":
        changes["department"] = None
        data["from_department"] = event.department
    elif action == "request_extension":
        if not extension:
            raise TransitionInputError(
                'request_extension (延期申请) needs the extension, e.g. "1d"'
            )
        changes["pending_extension"] = str(parse_limit(extension))
        data["extension"] = changes["pending_extension"]
    elif action in ("approve_extension", "refuse_extension"):
        changes["pending_extension"] = None
    elif action == "rework":
        changes["rework_count"] = event.rework_count + 1
    if action == "approve_extension":
        granted = str(parse_limit(extension or event.pending_extension or ""))
        data["extension"] = granted
    clock, late = _move_clock(event, t.clock, t.target, at, sub, schedule, data)
    if late:
        data["overdue"] = True
    changes.update(
        state=t.target,
        stage=STAGE_OF_STATE[t.target],
        clock=clock,
        updated_at=at,
        version=event.version + 1,
        late=event.late or late,
    )
    if t.target in FINAL_STATES and event.closed_at is None:
        changes["closed_at"] = at
    new = replace(event, **changes)
    record = AuditRecord(event.id, actor.name, Role(actor.role).value, at, action,
                         event.state.value, t.target.value, note, data or None)  # fmt: skip
    return new, record


def _move_clock(
    event: Event,
    effect: str,
    target: State,
    at: dt.datetime,
    sub: Subcategory,
    schedule: WorkSchedule,
    data: dict[str, Any],
) -> tuple[StageClock | None, bool]:
    """The clock after a transition, and whether the stage it ends was overdue."""
    clock = event.clock
    if effect == "keep" or (clock is None and effect in ("pause", "resume", "extend")):
        return clock, False
    if effect == "pause":
        return clock.pause(at), False  # type: ignore[union-attr]
    if effect == "resume":
        return clock.resume(at, schedule), False  # type: ignore[union-attr]
    if effect == "extend":
        return clock.extend(schedule.duration(data["extension"])), False  # type: ignore[union-attr]
    # start or stop: the current stage ends here
    late = clock is not None and clock.status(schedule, at).overdue
    if effect == "stop" or STAGE_OF_STATE[target] is None:
        return None, late
    return StageClock(at, _limit(sub, STAGE_OF_STATE[target], schedule)), late
