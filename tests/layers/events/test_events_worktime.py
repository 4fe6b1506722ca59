"""Working time: lunch breaks, weekends, Chinese holidays and make-up days, stage clocks."""

from __future__ import annotations

import datetime as dt
import logging
import random

import pytest

from cim.errors import ConfigError
from layers.events import worktime
from layers.events.worktime import CST, StageClock, WorkSchedule, is_workday, parse_limit

S = WorkSchedule()


def t(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=CST)


def test_calendar_covers_2026_national_day_and_spring_festival() -> None:
    first, last = worktime.calendar_coverage()
    assert first <= 2026 <= last
    # 国庆 2026: 10-01..07 off; Sunday 09-20 and Saturday 10-10 are make-up working days
    assert not any(is_workday(dt.date(2026, 10, d)) for d in range(1, 8))
    assert is_workday(dt.date(2026, 9, 20)) and is_workday(dt.date(2026, 10, 10))
    assert not is_workday(dt.date(2026, 10, 11))  # an ordinary Sunday
    # 春节 2026: 02-15..23 off; Saturdays 02-14 and 02-28 worked
    assert not any(is_workday(dt.date(2026, 2, d)) for d in range(15, 24))
    assert is_workday(dt.date(2026, 2, 14)) and is_workday(dt.date(2026, 2, 28))


def test_beyond_the_calendar_weekends_only_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    year = worktime.calendar_coverage()[1] + 3
    monday = dt.date(year, 1, 1) + dt.timedelta(days=(7 - dt.date(year, 1, 1).weekday()) % 7)
    with caplog.at_level(logging.WARNING, logger="layers.events.worktime"):
        assert is_workday(monday)
        assert not is_workday(monday + dt.timedelta(days=5))  # Saturday
    assert f"{year} counts Monday to Friday" in caplog.text


def test_day_length_and_limits() -> None:
    assert S.day_length == dt.timedelta(hours=7, minutes=30)
    assert S.duration("4h") == dt.timedelta(hours=4)
    assert S.duration("30min") == dt.timedelta(minutes=30)
    assert S.duration("5d") == dt.timedelta(hours=37, minutes=30)
    assert str(parse_limit("1.5h")) == "1.5h"
    for bad in ("", "4", "-1h", "0h", "4 weeks"):
        with pytest.raises(ConfigError, match="working minutes, hours or days"):
            parse_limit(bad)


def test_add_across_the_lunch_break() -> None:
    assert S.add(t(2026, 11, 25, 11, 0), dt.timedelta(hours=2)) == t(2026, 11, 25, 14, 30)
    # starting in the lunch break waits for 13:30
    assert S.add(t(2026, 11, 25, 12, 15), dt.timedelta(minutes=30)) == t(2026, 11, 25, 14, 0)
    # a deadline on the end of a period is that end, not the next start
    assert S.add(t(2026, 11, 25, 8, 30), dt.timedelta(hours=3, minutes=30)) == t(2026, 11, 25, 12)


def test_add_across_a_weekend_and_at_night() -> None:
    # Friday 2026-11-27 16:30 + 4h: 1h on Friday, Monday 08:30 + 3h
    assert S.add(t(2026, 11, 27, 16, 30), dt.timedelta(hours=4)) == t(2026, 11, 30, 11, 30)
    # reported on Saturday night: the clock starts on Monday morning
    assert S.add(t(2026, 11, 28, 22, 0), dt.timedelta(hours=1)) == t(2026, 11, 30, 9, 30)


def test_add_across_national_day_with_make_up_days() -> None:
    start = t(2026, 9, 30, 16, 0)
    # 1.5h on 09-30, then 10-01..07 off: resumes 10-08
    assert S.add(start, S.duration("4h")) == t(2026, 10, 8, 11, 0)
    # 5 working days: 09-30 (1.5h), 10-08, 10-09, Saturday 10-10 (make-up), not Sunday
    # 10-11, Monday 10-12, then 6h on Tuesday 10-13
    assert S.add(start, S.duration("5d")) == t(2026, 10, 13, 16, 0)
    # Friday 09-18 17:00 + 1h: Sunday 09-20 is a make-up working day
    assert S.add(t(2026, 9, 18, 17, 0), dt.timedelta(hours=1)) == t(2026, 9, 20, 9, 0)


def test_add_across_spring_festival() -> None:
    # Friday 2026-02-13 17:00 + 2h: Saturday 02-14 is worked, then 02-15..23 off
    assert S.add(t(2026, 2, 13, 17, 0), dt.timedelta(hours=2)) == t(2026, 2, 14, 10, 0)
    assert S.add(t(2026, 2, 14, 17, 0), dt.timedelta(hours=1)) == t(2026, 2, 24, 9, 0)


def test_elapsed_is_the_inverse_of_add() -> None:
    start = t(2026, 9, 29, 10, 17)
    for hours in (0.25, 3, 7.5, 12, 40, 80):
        work = dt.timedelta(hours=hours)
        assert S.elapsed(start, S.add(start, work)) == work
    assert S.elapsed(t(2026, 10, 1, 9), t(2026, 10, 7, 17)) == dt.timedelta(0)
    assert S.elapsed(t(2026, 11, 25, 12), t(2026, 11, 25, 13)) == dt.timedelta(0)
    assert S.elapsed(t(2026, 11, 25, 12), t(2026, 11, 25, 8)) == -dt.timedelta(hours=3, minutes=30)


def test_other_time_zones_and_naive_times() -> None:
    utc = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC)  # 11:00 in Beijing
    assert S.add(utc, dt.timedelta(hours=2)) == t(2026, 11, 25, 14, 30)
    assert S.add(dt.datetime(2026, 11, 25, 11), dt.timedelta(hours=2)) == t(2026, 11, 25, 14, 30)


def test_configured_working_hours() -> None:
    s = WorkSchedule.from_strings(["09:00-12:00", "14:00-18:00"])
    assert s.day_length == dt.timedelta(hours=7)
    assert s.add(t(2026, 11, 25, 11), dt.timedelta(hours=2)) == t(2026, 11, 25, 15)
    for bad in (["09:00"], ["12:00-09:00"], ["09:00-12:00", "11:00-13:00"], ["9h-12h"], []):
        with pytest.raises(ConfigError, match="working hours"):
            WorkSchedule.from_strings(bad)


def test_clock_flags_approaching_and_overdue() -> None:
    clock = StageClock(t(2026, 11, 25, 8, 30), dt.timedelta(hours=4))
    assert clock.deadline(S) == t(2026, 11, 25, 14, 0)
    early = clock.status(S, t(2026, 11, 25, 10, 0))
    assert early.used == dt.timedelta(hours=1, minutes=30) and not early.approaching
    assert not early.overdue
    near = clock.status(S, t(2026, 11, 25, 13, 50))  # 10 min of 4h left (< 20 %)
    assert near.approaching and not near.overdue
    assert clock.status(S, t(2026, 11, 25, 14, 0)).overdue is False  # on the deadline
    late = clock.status(S, t(2026, 11, 25, 14, 1))
    assert late.overdue and not late.approaching and late.remaining < dt.timedelta(0)
    # overdue also out of hours, where no working time is used
    assert clock.status(S, t(2026, 11, 25, 20, 0)).overdue


def test_clock_paused_while_deferred_shifts_the_deadline() -> None:
    clock = StageClock(t(2026, 11, 25, 8, 30), dt.timedelta(hours=4))
    paused = clock.pause(t(2026, 11, 25, 10, 30))  # 2h used
    assert paused.deadline(S) is None
    st = paused.status(S, t(2026, 11, 27, 17, 0))  # days later, still paused: not overdue
    assert st.paused and not st.overdue and st.used == dt.timedelta(hours=2)
    resumed = paused.resume(t(2026, 11, 26, 10, 30), S)  # paused 7.5h of working time
    assert resumed.paused_work == dt.timedelta(hours=7, minutes=30)
    assert resumed.deadline(S) == t(2026, 11, 26, 14, 0)
    assert resumed.status(S, t(2026, 11, 26, 13, 30)).remaining == dt.timedelta(minutes=30)
    assert resumed.pause(t(2026, 11, 26, 11)).pause(t(2026, 11, 26, 12)).paused_since == t(
        2026, 11, 26, 11
    )


def test_clock_extension() -> None:
    clock = StageClock(t(2026, 11, 25, 8, 30), dt.timedelta(hours=4)).extend(S.duration("1d"))
    assert clock.limit == dt.timedelta(hours=11, minutes=30)
    assert clock.deadline(S) == t(2026, 11, 26, 14, 0)
    with pytest.raises(ValueError, match="positive"):
        clock.extend(dt.timedelta(0))


def test_elapsed_equals_the_walk_over_working_periods() -> None:
    """``elapsed`` (working days counted per year) equals summing the working periods
    one by one, across National Day, Spring Festival, a new year and make-up days."""
    rng = random.Random(11)
    base = dt.datetime(2025, 12, 1, tzinfo=CST)
    for _ in range(300):
        a = base + dt.timedelta(minutes=rng.randrange(0, 400 * 24 * 60))
        b = a + dt.timedelta(minutes=rng.randrange(0, 40 * 24 * 60))
        walked = dt.timedelta(0)
        for x, y in S.segments(a):
            if x >= b:
                break
            walked += min(y, b) - x
        assert S.elapsed(a, b) == walked and S.elapsed(b, a) == -walked, (a, b)
