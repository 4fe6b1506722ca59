"""Working time: deadlines in working hours and working days, Chinese holidays included.

Case time limits (处理时限) are counted in working time: only the configured working
hours (by default 08:30-12:00 and 13:30-17:30) of working days count. A working day is
a weekday that is no public holiday, or a weekend day the State Council made a working
day (调休 make-up day); both come from the ``chinese-calendar`` package, which knows
the years the State Council has announced. For years beyond its table the calendar
falls back to "Monday to Friday" and logs a warning once per year (update the package
when the next year's holidays are announced).

All datetimes handed in must be timezone-aware (naive ones are taken as in the
schedule's time zone, China Standard Time by default); results are in that zone.

A stage's clock (:class:`StageClock`) is paused while a case is deferred (挂账) and
lengthened by approved extensions (延期): the standard does not count that time against
the department. A pause shifts the deadline by the working time it covered.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import NamedTuple

from cim.errors import ConfigError

logger = logging.getLogger(__name__)

#: China Standard Time (no daylight saving since 1991)
CST = dt.timezone(dt.timedelta(hours=8), "CST")

#: the share of a stage's time left under which a case is "approaching" its deadline
APPROACHING = 0.2

_ZERO = dt.timedelta(0)
# a case limit is days, not years: walking further than this means a bad schedule
_MAX_DAYS = 3660


class WorkLimit(NamedTuple):
    """A time limit as written: ``value`` working minutes, hours or days."""

    value: float
    unit: str  # "min", "h" or "d"

    def __str__(self) -> str:
        return f"{self.value:g}{self.unit}"


_LIMIT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(min|m|h|d)\s*$", re.IGNORECASE)


def parse_limit(text: str | WorkLimit) -> WorkLimit:
    """Parse a time limit such as ``"30min"``, ``"4h"`` or ``"5d"`` (working time).

    Raises
    ------
    ConfigError
        When the text is not a positive number followed by min, h or d.
    """
    if isinstance(text, WorkLimit):
        return text
    m = _LIMIT_RE.match(str(text))
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(
            f"time limit {text!r} must be a positive number of working minutes, hours or "
            'days, e.g. "30min", "4h", "5d"'
        )
    unit = m.group(2).lower()
    return WorkLimit(float(m.group(1)), "min" if unit in ("m", "min") else unit)


@lru_cache(maxsize=1)
def calendar_coverage() -> tuple[int, int]:
    """The first and last year whose holidays ``chinese-calendar`` knows."""
    from chinese_calendar.constants import holidays, workdays

    years = {d.year for d in holidays} | {d.year for d in workdays}
    return min(years), max(years)


_warned_years: set[int] = set()


@lru_cache(maxsize=8192)
def is_workday(day: dt.date) -> bool:
    """Whether ``day`` is a working day in mainland China (holidays and 调休 included).

    Beyond the years ``chinese-calendar`` knows, Monday to Friday are working days and a
    warning is logged once per year.
    """
    first, last = calendar_coverage()
    if first <= day.year <= last:
        import chinese_calendar

        return bool(chinese_calendar.is_workday(day))
    if day.year not in _warned_years:
        _warned_years.add(day.year)
        logger.warning(
            "chinese-calendar knows the public holidays of %d-%d only; %d counts Monday to "
            "Friday as working days (update the chinese-calendar package)",
            first,
            last,
            day.year,
        )
    return day.weekday() < 5


def _parse_hhmm(text: str) -> dt.time:
    try:
        hh, mm = text.strip().split(":")
        return dt.time(int(hh), int(mm))
    except ValueError as exc:
        raise ConfigError(f"working hours: {text!r} is not a time like 08:30") from exc


@dataclass(frozen=True)
class WorkSchedule:
    """Working hours of a working day, and the time zone they are in.

    Parameters
    ----------
    periods : tuple of (time, time)
        Working periods of a day, in order and not overlapping.
    tz : tzinfo
        The zone the hours are in (China Standard Time by default).
    """

    periods: tuple[tuple[dt.time, dt.time], ...] = (
        (dt.time(8, 30), dt.time(12, 0)),
        (dt.time(13, 30), dt.time(17, 30)),
    )
    tz: dt.tzinfo = CST
    _day: dt.timedelta = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.periods:
            raise ConfigError("working hours: at least one period is needed")
        prev = dt.time(0)
        for start, end in self.periods:
            if not prev <= start < end:
                raise ConfigError(
                    f"working hours: {start:%H:%M}-{end:%H:%M} must end after it starts and "
                    "come after the previous period"
                )
            prev = end
        day = sum((_span(s, e) for s, e in self.periods), _ZERO)
        object.__setattr__(self, "_day", day)

    @classmethod
    def from_strings(cls, periods: list[str], tz: dt.tzinfo = CST) -> WorkSchedule:
        """A schedule from ``["08:30-12:00", "13:30-17:30"]``."""
        parsed = []
        for text in periods:
            if "-" not in text:
                raise ConfigError(f"working hours: {text!r} must look like 08:30-12:00")
            a, b = text.split("-", 1)
            parsed.append((_parse_hhmm(a), _parse_hhmm(b)))
        return cls(tuple(parsed), tz)

    @property
    def day_length(self) -> dt.timedelta:
        """The working time of one working day."""
        return self._day

    def duration(self, limit: str | WorkLimit) -> dt.timedelta:
        """A time limit as working time (a working day is :attr:`day_length`)."""
        limit = parse_limit(limit)
        if limit.unit == "d":
            return self._day * limit.value
        minutes = limit.value * (60 if limit.unit == "h" else 1)
        return dt.timedelta(minutes=minutes)

    def local(self, when: dt.datetime) -> dt.datetime:
        """``when`` in the schedule's zone (naive datetimes are taken as in it)."""
        if when.tzinfo is None:
            return when.replace(tzinfo=self.tz)
        return when.astimezone(self.tz)

    def segments(self, start: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        """Working intervals from ``start`` on, in order (the first may be cut by start)."""
        start = self.local(start)
        day = start.date()
        for _ in range(_MAX_DAYS):
            for seg_a, seg_b in _day_segments(day, self.periods, self.tz):
                if seg_b > start:
                    yield (seg_a if seg_a > start else start), seg_b
            day += _ONE_DAY
        raise ConfigError(f"no working time within {_MAX_DAYS} days of {start:%Y-%m-%d}")

    def add(self, start: dt.datetime, work: dt.timedelta) -> dt.datetime:
        """The moment ``work`` of working time after ``start``.

        Parameters
        ----------
        start : datetime
            Where the clock starts (outside working hours it waits for the next period).
        work : timedelta
            Working time to add (zero or more).

        Returns
        -------
        datetime
            In the schedule's zone; a deadline falling on the end of a period is that end.
        """
        if work < _ZERO:
            raise ValueError("working time to add must not be negative")
        left = work
        for a, b in self.segments(start):
            if left <= b - a:
                return a + left
            left -= b - a
        raise AssertionError("unreachable: segments() ends by raising")

    def elapsed(self, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        """Working time between two moments (negative when ``end`` is before ``start``).

        Whole days come from counts of working days per year (made once per year),
        so a case open for weeks costs no more than one open for an hour: the list
        computes this for each of its cases.
        """
        start, end = self.local(start), self.local(end)
        if end < start:
            return -self.elapsed(end, start)
        days = _workdays_between(start.date(), end.date())
        return self._day * days + self._done_by(end) - self._done_by(start)

    def _done_by(self, when: dt.datetime) -> dt.timedelta:
        """Working time of ``when``'s day (local) before ``when``."""
        total = _ZERO
        for a, b in _day_segments(when.date(), self.periods, self.tz):
            if when <= a:
                break
            total += (b if when > b else when) - a
        return total


_ONE_DAY = dt.timedelta(days=1)


@lru_cache(maxsize=16384)
def _day_segments(
    day: dt.date, periods: tuple[tuple[dt.time, dt.time], ...], tz: dt.tzinfo
) -> tuple[tuple[dt.datetime, dt.datetime], ...]:
    """A day's working intervals (none on a day off): every list item's and every
    transition's clock walks the same few days, so they are made once."""
    if not is_workday(day):
        return ()
    return tuple(
        (dt.datetime.combine(day, a, tz), dt.datetime.combine(day, b, tz)) for a, b in periods
    )


@lru_cache(maxsize=256)
def _year_prefix(year: int) -> tuple[int, ...]:
    """``p[i]``: working days of ``year`` before its day ``i`` (0 = 1 January)."""
    first = dt.date(year, 1, 1)
    n = (dt.date(year + 1, 1, 1) - first).days
    out = [0]
    for i in range(n):
        out.append(out[-1] + is_workday(first + dt.timedelta(days=i)))
    return tuple(out)


def _workdays_between(a: dt.date, b: dt.date) -> int:
    """Working days in ``[a, b)`` (``a <= b``)."""
    ia = a.toordinal() - dt.date(a.year, 1, 1).toordinal()
    ib = b.toordinal() - dt.date(b.year, 1, 1).toordinal()
    if a.year == b.year:
        return _year_prefix(a.year)[ib] - _year_prefix(a.year)[ia]
    total = _year_prefix(a.year)[-1] - _year_prefix(a.year)[ia]
    for year in range(a.year + 1, b.year):
        total += _year_prefix(year)[-1]
    return total + _year_prefix(b.year)[ib]


@lru_cache(maxsize=65536)
def _deadline(schedule: WorkSchedule, started: dt.datetime, work: dt.timedelta) -> dt.datetime:
    """``schedule.add(started, work)``, kept: the list panel asks the same open cases'
    deadlines again at every refresh, and each walks the working periods."""
    return schedule.add(started, work)


def _span(a: dt.time, b: dt.time) -> dt.timedelta:
    return dt.datetime.combine(dt.date.min, b) - dt.datetime.combine(dt.date.min, a)


class ClockStatus(NamedTuple):
    """Where a stage's clock stands at one moment."""

    deadline: dt.datetime | None  # None while paused
    allowed: dt.timedelta  # the limit plus approved extensions
    used: dt.timedelta  # working time counted so far (pauses excluded)
    remaining: dt.timedelta  # negative once overdue
    paused: bool
    approaching: bool  # less than the approaching share left, not yet overdue
    overdue: bool


@dataclass(frozen=True)
class StageClock:
    """The time limit of the stage a case is in (立案, 派遣, 处理, 核查, 结案).

    Attributes
    ----------
    started : datetime
        When the stage began.
    limit : timedelta
        Working time allowed, approved extensions included.
    paused_work : timedelta
        Working time covered by finished pauses (挂账): not counted, shifts the deadline.
    paused_since : datetime or None
        Start of the pause in progress.
    """

    started: dt.datetime
    limit: dt.timedelta
    paused_work: dt.timedelta = _ZERO
    paused_since: dt.datetime | None = None

    @property
    def paused(self) -> bool:
        """Whether the clock is stopped now."""
        return self.paused_since is not None

    def pause(self, at: dt.datetime) -> StageClock:
        """The clock stopped at ``at`` (no-op when already paused)."""
        return self if self.paused else replace(self, paused_since=at)

    def resume(self, at: dt.datetime, schedule: WorkSchedule) -> StageClock:
        """The clock running again from ``at``; the pause's working time is set aside."""
        if self.paused_since is None:
            return self
        covered = max(schedule.elapsed(self.paused_since, at), _ZERO)
        return replace(self, paused_work=self.paused_work + covered, paused_since=None)

    def extend(self, work: dt.timedelta) -> StageClock:
        """The clock with ``work`` more working time allowed (an approved 延期)."""
        if work <= _ZERO:
            raise ValueError("an extension must be positive")
        return replace(self, limit=self.limit + work)

    def deadline(self, schedule: WorkSchedule) -> dt.datetime | None:
        """When the allowed time runs out; None while paused."""
        if self.paused:
            return None
        return _deadline(schedule, self.started, self.limit + self.paused_work)

    def status(
        self, schedule: WorkSchedule, now: dt.datetime, approaching: float = APPROACHING
    ) -> ClockStatus:
        """Used and remaining working time at ``now``, with the approaching/overdue flags.

        Parameters
        ----------
        schedule : WorkSchedule
        now : datetime
        approaching : float
            Share of the allowed time left under which the case is flagged (0.2 = 20 %).
        """
        end = self.paused_since if self.paused_since is not None else now
        used = max(schedule.elapsed(self.started, end) - self.paused_work, _ZERO)
        remaining = self.limit - used
        # the deadline as it stood when the clock last ran: past it at ``end`` = overdue,
        # even out of hours where no working time is used
        due = _deadline(schedule, self.started, self.limit + self.paused_work)
        overdue = schedule.local(end) > due
        near = not overdue and remaining < self.limit * approaching
        deadline = None if self.paused else due
        return ClockStatus(deadline, self.limit, used, remaining, self.paused, near, overdue)
