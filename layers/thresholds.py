"""A datastream's state from its latest value: normal, warning or alarm (stale by age)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

NORMAL, WARNING, ALARM, STALE = "normal", "warning", "alarm", "stale"


class Thresholds(NamedTuple):
    """Warning and alarm limits; None means no limit on that side."""

    warn_low: float | None = None
    warn_high: float | None = None
    alarm_low: float | None = None
    alarm_high: float | None = None


def classify(value: Any, t: Thresholds) -> str:
    """The state of a reading: ``alarm`` beyond an alarm limit, ``warning`` beyond a
    warning limit, else ``normal`` (also for results that are not numbers).

    Parameters
    ----------
    value : Any
        The observation result.
    t : Thresholds
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return NORMAL
    if (t.alarm_low is not None and value <= t.alarm_low) or (
        t.alarm_high is not None and value >= t.alarm_high
    ):
        return ALARM
    if (t.warn_low is not None and value <= t.warn_low) or (
        t.warn_high is not None and value >= t.warn_high
    ):
        return WARNING
    return NORMAL
