"""The list on SQLite and PostgreSQL: the bounding-box filter, read through the
longitude bands of ``events_cell``, returns exactly the cases inside the box (on band
edges and west of Greenwich too, where SQLite's CAST truncates and PostgreSQL's floor
rounds down), and the filters as the API sends them read the kept counts."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from layers.events.config import events_config
from layers.events.model import Actor
from layers.events.store import EventFilter, EventStore, _cells
from layers.events.worktime import CST

OP = Actor("li", "operator")
LONS = [-0.0401, -0.04, -0.0201, -0.02, -0.0199, -0.0001, 0.0, 0.0001, 0.0199, 0.02, 0.0201,
        112.48, 112.5, 112.52]  # fmt: skip
LATS = [-0.01, 0.0, 37.8, 37.81]


@pytest.fixture
def events(store) -> EventStore:
    es = EventStore(store, events_config(None))
    at = dt.datetime(2026, 11, 25, 9, tzinfo=CST)
    with store.transaction(write=True):  # the reports join it: one commit
        for lon, lat in itertools.product(LONS, LATS):
            es.report(subcategory="SJ0102", source="hotline", description="暴露垃圾",
                      reporter=OP, at=at, lon=lon, lat=lat)  # fmt: skip
    return es


BOXES = [
    (-0.02, -1, 0.02, 1),
    (-0.0201, -1, -0.0001, 1),
    (-0.04, -0.01, -0.04, 0.0),
    (0.0, 0.0, 0.0, 0.0),
    (0.0001, -1, 0.0199, 1),
    (0.0199, -1, 0.0201, 0.0),
    (112.49, 37.0, 112.52, 38.0),
    (-10.0, -1, 120.0, 40.0),  # wider than the bands read: the plain condition
    (1.0, 0, 2.0, 1),  # nothing inside
]


def test_bbox_returns_exactly_the_cases_inside(events: EventStore) -> None:
    for box in BOXES:
        west, south, east, north = box
        expected = {
            (lon, lat)
            for lon, lat in itertools.product(LONS, LATS)
            if west <= lon <= east and south <= lat <= north
        }
        page = events.list_page(EventFilter(bbox=box, limit=1000))
        assert {(e.lon, e.lat) for e in page.items} == expected, box
        assert page.total == len(expected)
        assert events.markers(EventFilter(bbox=box, limit=1000)).total == len(expected)
    _plan_reads_the_cell_index(events)


def _plan_reads_the_cell_index(events: EventStore) -> None:
    assert _cells(-0.0201, 0.0201, "sqlite") == [-1, 0, 1]  # truncation: 0 twice as wide
    assert _cells(-0.0201, 0.0201, "postgresql") == [-2, -1, 0, 1]
    assert _cells(-10, 120, "sqlite") == []
    if events.store.dialect != "sqlite":
        return  # PostgreSQL's planner picks by its statistics; the result is what counts
    where, params = events._where(EventFilter(bbox=(112.49, 37.0, 112.52, 38.0)), None)  # type: ignore[arg-type]
    with events.store.transaction() as tx:
        plan = tx.execute(f"EXPLAIN QUERY PLAN SELECT id FROM events{where}", params)
    assert "events_cell" in " ".join(str(r) for r in plan)


def test_list_filters_as_the_api_sends_them_read_the_kept_counts(
    events: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Empty lists (what ``GET /api/events`` passes for absent filters) are no
    condition: the counts come from ``event_counts``, not from counting the rows."""
    seen: list[EventFilter] = []
    real = EventStore._counts

    def counts(tx, f, keep_states):  # type: ignore[no-untyped-def]
        seen.append(f)
        return real(tx, f, keep_states)

    monkeypatch.setattr(EventStore, "_counts", staticmethod(counts))
    api = EventFilter(states=[], departments=[], subcategories=[], categories=[],
                      sources=[], ids=[], open=True)  # fmt: skip
    page = events.list_page(api)
    assert len(seen) == 1 and page.total == len(LONS) * len(LATS)
    assert page.counts == {"reported": len(LONS) * len(LATS)}
    events.list_page(EventFilter(sources=["patrol"]))
    assert len(seen) == 1  # a real condition on a column event_counts lacks: counted
