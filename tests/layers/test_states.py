"""States of datastreams: thresholds, staleness, transitions (layers.states)."""

from __future__ import annotations

import math

import pytest

from layers.states import (
    ALARM,
    NORMAL,
    STALE,
    WARNING,
    Thresholds,
    classify,
    stale_deadline,
    state_at,
    transition,
)

LEVEL = Thresholds(warn_low=1.0, warn_high=5.0, alarm_low=0.5, alarm_high=8.0)
S = 1_000_000


@pytest.mark.parametrize(
    ("value", "state"),
    [
        (3.0, NORMAL),
        (5.0, WARNING),  # on the limit counts as crossed
        (7.9, WARNING),
        (8.0, ALARM),
        (100, ALARM),
        (1.0, WARNING),
        (0.7, WARNING),
        (0.5, ALARM),
        (-3, ALARM),
        ("high", NORMAL),  # not a number: no threshold applies
        (True, NORMAL),
        (None, NORMAL),
        (math.nan, NORMAL),
    ],
)
def test_classify(value, state):
    assert classify(value, LEVEL) == state


def test_classify_one_sided_and_no_limits():
    assert classify(1e9, Thresholds()) == NORMAL
    assert classify(-1e9, Thresholds(warn_high=5)) == NORMAL
    assert classify(6, Thresholds(warn_high=5)) == WARNING
    assert classify(6, Thresholds(alarm_high=5)) == ALARM


def test_stale_deadline():
    assert stale_deadline(None, 60) is None
    assert stale_deadline(10 * S, None) is None
    assert stale_deadline(10 * S, 0) is None
    assert stale_deadline(10 * S, 60) == 70 * S
    assert stale_deadline(10 * S, 0.5) == 10 * S + S // 2


def test_state_at_goes_stale_after_the_limit():
    t = 100 * S
    assert state_at(9.0, t, LEVEL, 60, t + 60 * S) == ALARM  # exactly at the limit: not yet
    assert state_at(9.0, t, LEVEL, 60, t + 60 * S + 1) == STALE
    assert state_at(3.0, t, LEVEL, None, t + 10**6 * S) == NORMAL  # no limit: never stale
    assert state_at(3.0, None, LEVEL, 60, t) is None  # no reading yet


def test_transition():
    assert transition(1, NORMAL, NORMAL, 3, 0) is None
    assert transition(1, NORMAL, None, 3, 0) is None
    change = transition(7, WARNING, ALARM, 9.5, 42)
    assert change is not None
    assert (change.datastream_id, change.old, change.new, change.value, change.time_us) == (
        7,
        WARNING,
        ALARM,
        9.5,
        42,
    )
    first = transition(7, None, NORMAL, 1, 0)
    assert first is not None and first.old is None
