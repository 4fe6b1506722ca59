"""Datastream states for the live view: normal, warning, alarm (from thresholds) and
stale (no reading for longer than the datastream's ``stale_after``).

The threshold rule itself, :func:`classify`, lives in :mod:`layers.thresholds` (the
store uses it to cache each datastream's state at commit); this module adds what the
live stream needs on top: the state at a given moment (staleness included), the
transitions between states, and when a datastream will go stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from layers.thresholds import ALARM, NORMAL, STALE, WARNING, Thresholds, classify

__all__ = [
    "ALARM",
    "NORMAL",
    "STALE",
    "STATES",
    "WARNING",
    "Thresholds",
    "Transition",
    "classify",
    "stale_deadline",
    "state_at",
    "transition",
]

#: every state, in increasing order of attention
STATES = (NORMAL, WARNING, ALARM, STALE)


@dataclass(frozen=True)
class Transition:
    """A datastream's state changed (``old`` is None before its first reading)."""

    datastream_id: int
    old: str | None
    new: str
    value: Any
    time_us: int | None


def stale_deadline(last_time_us: int | None, stale_after_s: float | None) -> int | None:
    """When (µs since the epoch) a datastream whose newest reading is at ``last_time_us``
    goes stale; None when it never does (no limit, or no reading yet)."""
    if last_time_us is None or stale_after_s is None or stale_after_s <= 0:
        return None
    return last_time_us + int(stale_after_s * 1_000_000)


def state_at(
    value: Any,
    time_us: int | None,
    thresholds: Thresholds,
    stale_after_s: float | None,
    now_us: int,
) -> str | None:
    """The state of a datastream at ``now_us``.

    Parameters
    ----------
    value : Any
        Its newest reading's result.
    time_us : int or None
        That reading's phenomenon time (µs); None when it has no reading yet.
    thresholds : Thresholds
        Its warning and alarm limits.
    stale_after_s : float or None
        Seconds without a reading after which it is stale.
    now_us : int
        The moment (µs since the epoch).

    Returns
    -------
    str or None
        ``normal``, ``warning``, ``alarm`` or ``stale``; None without any reading.
    """
    if time_us is None:
        return None
    deadline = stale_deadline(time_us, stale_after_s)
    if deadline is not None and now_us > deadline:
        return STALE
    return classify(value, thresholds)


def transition(
    datastream_id: int, old: str | None, new: str | None, value: Any, time_us: int | None
) -> Transition | None:
    """The transition from ``old`` to ``new``, or None when the state did not change."""
    if new is None or new == old:
        return None
    return Transition(datastream_id, old, new, value, time_us)
