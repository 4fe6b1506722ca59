"""ISO 8601 instants and intervals ↔ integer µs since the epoch (UTC)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np

from cim.errors import InputDataError

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)


def parse_instant(text: str) -> int:
    """An ISO 8601 date-time (offset or ``Z``; none means UTC) as µs since the epoch.

    Raises
    ------
    InputDataError
        When ``text`` is not a date-time.
    """
    try:
        value = dt.datetime.fromisoformat(text)  # 3.11: "Z" and offsets included
    except (TypeError, ValueError):
        raise InputDataError(f"not an ISO 8601 date-time: {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return (value - _EPOCH) // _US


def parse_time(text: str) -> tuple[int, int | None]:
    """An instant or an interval ``start/end`` as (start µs, end µs or None)."""
    if isinstance(text, str) and "/" in text:
        a, b = text.split("/", 1)
        start, end = parse_instant(a), parse_instant(b)
        if end < start:
            raise InputDataError(f"interval ends before it starts: {text!r}")
        return start, end
    return parse_instant(text), None


def format_instant(us: int | None) -> str | None:
    """µs since the epoch as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``."""
    if us is None:
        return None
    value = _EPOCH + dt.timedelta(microseconds=int(us))
    frac = value.microsecond
    base = value.strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        base += f".{frac:06d}".rstrip("0")
    return base + "Z"


def format_time(start: int | None, end: int | None) -> str | None:
    """An instant, or an interval when ``end`` is given."""
    if start is None:
        return None
    if end is None:
        return format_instant(start)
    return f"{format_instant(start)}/{format_instant(end)}"


# --- many at once --------------------------------------------------------------------
# Batches of readings carry their times in a few fixed shapes
# (``2024-05-01T10:00:00Z``, ``…:00.250+08:00``): those are parsed as character
# arrays in numpy; anything else (intervals, other ISO forms, errors) goes through
# :func:`parse_time` one by one, so both paths accept exactly the same texts.

_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])
_SEP_AT = np.array([4, 7, 13, 16])
_SEP_IS = np.array([ord("-"), ord("-"), ord(":"), ord(":")], dtype=np.uint8)
#: digit weights: (first 19 characters) @ _FIELDS → year, month, day, hour, minute, second
_FIELDS = np.zeros((19, 6), dtype=np.int64)
for _col, (_at, _w) in enumerate(((0, 4), (5, 2), (8, 2), (11, 2), (14, 2), (17, 2))):
    _FIELDS[_at : _at + _w, _col] = 10 ** np.arange(_w - 1, -1, -1)
_DAYS_BEFORE_MONTH = np.array([0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334])
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _epoch_days(y: np.ndarray, m: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (valid ones)."""
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    yp = y - 1
    days = yp * 365 + yp // 4 - yp // 100 + yp // 400  # days before 1 Jan of year y
    days = days + _DAYS_BEFORE_MONTH[m] + ((m > 2) & leap) + day - 1
    return days - 719_162  # 0001-01-01 → 1970-01-01


def _tail(b: np.ndarray, d: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Where the date-time body ends, rows whose tail is well-formed, and their offsets (µs).

    The tail is nothing (UTC), ``Z``, or ``+HH:MM``/``-HH:MM``; equal lengths share it.
    """
    n, width = b.shape
    zero = np.zeros(n, dtype=np.int64)
    if width >= 20 and b[0, -1] == ord("Z"):
        return width - 1, b[:, -1] == ord("Z"), zero
    if width >= 25 and b[0, -6] in (ord("+"), ord("-")):
        sign_char = b[:, -6]
        good = ((sign_char == ord("+")) | (sign_char == ord("-"))) & (b[:, -3] == ord(":"))
        tail = d[:, [-5, -4, -2, -1]].astype(np.int64)
        good &= np.all(tail <= 9, axis=1)
        oh, om = tail[:, 0] * 10 + tail[:, 1], tail[:, 2] * 10 + tail[:, 3]
        good &= (oh < 24) & (om < 60)
        sign = np.where(sign_char == ord("-"), -1, 1)
        return width - 6, good, sign * (oh * 3600 + om * 60) * 1_000_000
    return width, np.ones(n, dtype=bool), zero


def _fixed_shape(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parse equal-length texts (a code-point matrix); (ok mask, µs since the epoch)."""
    n, width = codes.shape
    fail = np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64)
    if width < 19 or codes.max() >= 128:  # non-ASCII: the careful path
        return fail
    b = codes.astype(np.uint8)
    d = b - np.uint8(48)  # '0'..'9' → 0..9, anything else wraps above 9
    good = np.all(d[:, _DIGITS] <= 9, axis=1) & np.all(b[:, _SEP_AT] == _SEP_IS, axis=1)
    good &= (b[:, 10] == ord("T")) | (b[:, 10] == ord(" "))
    body, tail_ok, offset = _tail(b, d)
    good &= tail_ok
    frac = 0
    if body != 19:  # a fraction: "." and 1 to 6 digits
        digits = body - 20
        if not 1 <= digits <= 6:
            return fail
        good &= (b[:, 19] == ord(".")) & np.all(d[:, 20:body] <= 9, axis=1)
        weights = 10 ** np.arange(5, 5 - digits, -1, dtype=np.int64)
        frac = np.where(good[:, None], d[:, 20:body], 0).astype(np.int64) @ weights
    fields = np.where(good[:, None], d[:, :19], 0).astype(np.int64) @ _FIELDS
    y, m, day, hh, mm, ss = fields.T
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    month_ok = (m >= 1) & (m <= 12)
    m = np.where(month_ok, m, 1)
    dim = _DAYS_IN_MONTH[m] + ((m == 2) & leap)
    good &= (y >= 1) & month_ok & (day >= 1) & (day <= dim) & (hh < 24) & (mm < 60) & (ss < 60)
    seconds = _epoch_days(y, m, day) * 86_400 + hh * 3600 + mm * 60 + ss
    return good, np.where(good, seconds * 1_000_000 + frac - offset, 0)


def parse_times(
    values: Sequence[Any], default: int
) -> tuple[np.ndarray, list[int | None] | None, dict[int, str]]:
    """Many instants or intervals at once, as :func:`parse_time` would parse each.

    Parameters
    ----------
    values : sequence
        ISO 8601 texts; None stands for ``default``.
    default : int
        µs used where a value is None (e.g. now).

    Returns
    -------
    start : numpy.ndarray of int64
        µs since the epoch (``default`` where the value was None; 0 where it failed).
    end : list or None
        Interval ends (None for instants), or None when no value was an interval.
    errors : dict
        Position → reason, for values that are not date-times.
    """
    n = len(values)
    start = np.full(n, default, dtype=np.int64)
    errors: dict[int, str] = {}
    if n == 0:
        return start, None, errors
    types = set(map(type, values))
    done = np.zeros(n, dtype=bool)
    if types <= {str, type(None)}:
        texts = np.array([v or "" for v in values] if type(None) in types else values, dtype=str)
        done[[i for i, v in enumerate(values) if v is None] if type(None) in types else []] = True
        lengths = np.char.str_len(texts)
        width = texts.dtype.itemsize // 4
        codes = texts.view(np.uint32).reshape(n, width) if width else np.zeros((n, 0), np.uint32)
        for length in np.unique(lengths[~done]):
            rows = np.flatnonzero((lengths == length) & ~done)
            ok, us = _fixed_shape(codes[rows, :length])
            start[rows[ok]] = us[ok]
            done[rows[ok]] = True
    else:
        done[[i for i, v in enumerate(values) if v is None]] = True
    end: list[int | None] | None = None
    for i in np.flatnonzero(~done).tolist():  # the uncommon shapes, one by one
        try:
            s, e = parse_time(values[i])
        except InputDataError as exc:
            errors[i] = exc.message
            start[i] = 0
            continue
        start[i] = s
        if e is not None:
            if end is None:
                end = [None] * n
            end[i] = e
    return start, end, errors
