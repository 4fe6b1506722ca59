"""Moving a case through its lifecycle: clocks, deadlines, audit records, branches."""

from __future__ import annotations

import datetime as dt

import pytest

from cim.errors import NotFoundError
from layers.events.categories import load_categories
from layers.events.lifecycle import RoleNotAllowedError, State, TransitionInputError
from layers.events.model import Actor, Event, apply_action, report
from layers.events.worktime import CST, WorkSchedule

TABLE = load_categories()
S = WorkSchedule()
OP = Actor("li", "operator")
SUP = Actor("wang", "supervisor")
DISP = Actor("zhao", "dispatcher")
SAN = Actor("chen", "handler", "sanitation")
INSP = Actor("sun", "inspector")


def t(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=CST)


MORNING = dt.datetime(2026, 11, 25, 9, 0, tzinfo=CST)


def new(at: dt.datetime = MORNING, code: str = "SJ0102") -> Event:
    event, record = report(
        TABLE, S, subcategory=code, source="hotline", description="路边暴露垃圾",
        reporter=OP, at=at, lon=116.4, lat=39.9,
    )  # fmt: skip
    assert record.action == "report" and record.to_state == "reported"
    return event


def step(event: Event, action: str, actor: Actor, at: dt.datetime, **kw: str) -> Event:
    new_event, record = apply_action(event, action, actor, at, TABLE, S, **kw)
    assert (record.from_state, record.to_state) == (event.state.value, new_event.state.value)
    assert (record.actor, record.role, record.at, record.action) == (
        actor.name, actor.role, at, action
    )  # fmt: skip
    assert new_event.version == event.version + 1
    return new_event


def test_report_starts_the_filing_clock() -> None:
    e = new()
    assert (e.state, e.category, e.cls, e.stage) == (State.REPORTED, "SJ01", "事件", "file")
    assert e.clock is not None and e.clock.deadline(S) == t(2026, 11, 25, 10, 0)
    with pytest.raises(NotFoundError):
        new(code="XX99")
    with pytest.raises(TransitionInputError, match="unknown source"):
        report(TABLE, S, subcategory="SJ0102", source="pigeon", description="", reporter=OP,
               at=t(2026, 11, 25))  # fmt: skip


def test_main_line_to_evaluation_with_stage_deadlines() -> None:
    e = new()
    e = step(e, "file", SUP, t(2026, 11, 25, 9, 20))
    assert e.stage == "dispatch" and e.clock.deadline(S) == t(2026, 11, 25, 10, 20)
    e = step(e, "dispatch", DISP, t(2026, 11, 25, 9, 30))
    assert e.department == "sanitation"  # the category's default
    # exposed rubbish: 4 working hours across the lunch break
    assert e.stage == "handle" and e.clock.deadline(S) == t(2026, 11, 25, 15, 0)
    e = step(e, "accept", SAN, t(2026, 11, 25, 9, 40))
    assert e.clock.deadline(S) == t(2026, 11, 25, 15, 0)  # accepting keeps the clock
    e = step(e, "report_done", SAN, t(2026, 11, 25, 14, 0))
    assert e.stage == "check" and not e.late
    e = step(e, "check", INSP, t(2026, 11, 25, 15, 0))
    e = step(e, "close", SUP, t(2026, 11, 25, 15, 10))
    assert e.state is State.CLOSED and e.clock is None and e.closed_at == t(2026, 11, 25, 15, 10)
    assert not e.is_open
    e = step(e, "evaluate", SUP, t(2026, 11, 26, 9, 0))
    assert e.state is State.EVALUATED and e.closed_at == t(2026, 11, 25, 15, 10)


def test_late_stage_is_remembered_and_audited() -> None:
    e = step(new(), "file", SUP, t(2026, 11, 25, 9, 10))
    e = step(e, "dispatch", DISP, t(2026, 11, 25, 9, 20))
    e = step(e, "accept", SAN, t(2026, 11, 25, 9, 30))
    done, record = apply_action(e, "report_done", SAN, t(2026, 11, 26, 9, 0), TABLE, S)
    assert done.late and record.data == {"overdue": True}


def test_extension_branch() -> None:
    e = step(new(), "file", SUP, t(2026, 11, 25, 9, 10))
    e = step(e, "dispatch", DISP, t(2026, 11, 25, 9, 30))
    e = step(e, "accept", SAN, t(2026, 11, 25, 9, 40))
    with pytest.raises(TransitionInputError, match="needs a note"):
        apply_action(e, "request_extension", SAN, t(2026, 11, 25, 10), TABLE, S, extension="1d")
    with pytest.raises(TransitionInputError, match="needs the extension"):
        apply_action(e, "request_extension", SAN, t(2026, 11, 25, 10), TABLE, S, note="雨天")
    asked = step(e, "request_extension", SAN, t(2026, 11, 25, 10), note="雨天", extension="1d")
    assert asked.state is State.EXTENSION_REQUESTED and asked.pending_extension == "1d"
    with pytest.raises(RoleNotAllowedError):
        apply_action(asked, "approve_extension", SAN, t(2026, 11, 25, 10, 5), TABLE, S)
    refused = step(asked, "refuse_extension", SUP, t(2026, 11, 25, 10, 10), note="可当天完成")
    assert refused.clock.deadline(S) == t(2026, 11, 25, 15, 0)
    assert refused.pending_extension is None
    ok, record = apply_action(asked, "approve_extension", SUP, t(2026, 11, 25, 10, 10), TABLE, S)
    assert ok.state is State.HANDLING and record.data == {"extension": "1d"}
    assert ok.clock.deadline(S) == t(2026, 11, 26, 15, 0)  # one working day more
    # the supervisor may grant a different amount
    half, _ = apply_action(asked, "approve_extension", SUP, t(2026, 11, 25, 10, 10), TABLE, S,
                           extension="2h")  # fmt: skip
    assert half.clock.deadline(S) == t(2026, 11, 25, 17, 0)


def test_deferral_pauses_the_clock_until_resumed() -> None:
    e = step(new(), "file", SUP, t(2026, 11, 25, 9, 10))
    e = step(e, "dispatch", DISP, t(2026, 11, 25, 9, 30))
    e = step(e, "accept", SAN, t(2026, 11, 25, 9, 40))
    e = step(e, "request_deferral", SAN, t(2026, 11, 25, 10, 30), note="需配合道路施工")
    e = step(e, "approve_deferral", SUP, t(2026, 11, 25, 10, 30))
    assert e.state is State.DEFERRED and e.clock.paused and e.clock.deadline(S) is None
    st = e.clock_status(S, t(2026, 12, 7, 9, 0))
    assert st is not None and not st.overdue and st.paused
    e = step(e, "resume", SAN, t(2026, 11, 30, 10, 30))  # Wed 10:30 → Mon 10:30
    # 1h used before the pause; 3h left from Monday 10:30, across lunch
    assert e.clock.deadline(S) == t(2026, 11, 30, 15, 0)


def test_return_and_redispatch() -> None:
    e = step(new(), "file", SUP, t(2026, 11, 25, 9, 10))
    e = step(e, "dispatch", DISP, t(2026, 11, 25, 9, 30), department="water")
    water = Actor("liu", "handler", "water")
    with pytest.raises(RoleNotAllowedError, match="assigned to department 'water'"):
        apply_action(e, "accept", SAN, t(2026, 11, 25, 9, 40), TABLE, S)
    back, record = apply_action(e, "return", water, t(2026, 11, 25, 9, 45), TABLE, S,
                                note="不属本单位职责")  # fmt: skip
    assert back.state is State.FILED and back.department is None
    assert record.data == {"from_department": "water"} and record.note == "不属本单位职责"
    again = step(back, "dispatch", DISP, t(2026, 11, 25, 9, 50), department="sanitation")
    assert again.clock.started == t(2026, 11, 25, 9, 50)  # a new handling clock
    with pytest.raises(TransitionInputError, match="another department"):
        apply_action(again, "redispatch", DISP, t(2026, 11, 25, 9, 55), TABLE, S,
                     note="x", department="sanitation")  # fmt: skip
    moved = step(again, "redispatch", DISP, t(2026, 11, 25, 9, 55), note="改派", department="water")
    assert moved.department == "water" and moved.state is State.DISPATCHED


def test_rework_goes_back_to_handling_and_counts() -> None:
    e = step(new(), "file", SUP, t(2026, 11, 25, 9, 10))
    e = step(e, "dispatch", DISP, t(2026, 11, 25, 9, 30))
    e = step(e, "accept", SAN, t(2026, 11, 25, 9, 40))
    e = step(e, "report_done", SAN, t(2026, 11, 25, 11, 0))
    e = step(e, "rework", INSP, t(2026, 11, 25, 14, 0), note="现场仍有垃圾")
    assert e.state is State.HANDLING and e.rework_count == 1 and e.stage == "handle"
    # a new 4h handling clock: 3.5h today, 30 min tomorrow
    assert e.clock.deadline(S) == t(2026, 11, 26, 9, 0)


def test_cancel_needs_a_note_and_finishes() -> None:
    with pytest.raises(TransitionInputError, match="needs a note"):
        apply_action(new(), "cancel", SUP, t(2026, 11, 25, 9, 5), TABLE, S, note="  ")
    e = step(new(), "cancel", SUP, t(2026, 11, 25, 9, 5), note="重复上报")
    assert e.state is State.CANCELLED and e.clock is None and not e.is_open
