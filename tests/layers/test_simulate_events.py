"""The simulator's cases (layers.simulate_events): a deterministic plan of legal
lifecycles placed on the sample city, played by a runner, and end to end through
``cim simulate`` against the real server's ``/api/events``."""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cim.errors import InputDataError
from layers.events.categories import load_categories
from layers.events.lifecycle import BY_ACTION, Role, State, check_transition
from layers.simulate_events import (
    ADMIN,
    CENTER,
    COMMAND_ROLES,
    EventRunner,
    Place,
    plan_departments,
    plan_events,
    sample_places,
)

TABLE = load_categories()


def _plan(seed: int = 2026, n: int = 400, **kw: Any) -> list:
    return list(itertools.islice(plan_events(TABLE, sample_places(), seed, **kw), n))


def test_the_plan_is_deterministic_for_a_seed() -> None:
    a, b = _plan(7, 200), _plan(7, 200)
    assert a == b
    assert _plan(8, 200) != a


def test_the_plan_is_a_lively_day_of_plausible_cases() -> None:
    plan = _plan(n=1000, per_hour=60.0, backlog=10)
    times = [c.at for c in plan]
    assert times == sorted(times) and times[:10] == [2.0 * i for i in range(10)]
    # a Poisson process of 60 an hour after the backlog: about a minute apart
    mean_gap = (times[-1] - times[10]) / (len(times) - 11)
    assert 50.0 < mean_gap < 70.0
    subs = Counter(c.subcategory for c in plan)
    # rubbish, parking, manhole covers and green-space upkeep are all there
    assert {"SJ0102", "SJ0504", "BJ0101", "BJ0403"} <= set(subs)
    assert subs.most_common(1)[0][0] == "SJ0102"
    assert {c.source for c in plan} == {"hotline", "patrol", "video"}
    fates = Counter(c.fate for c in plan)
    assert set(fates) == {"closed", "rework", "extension", "cancelled", "overdue", "waiting"}
    assert 0.45 < fates["closed"] / len(plan) < 0.65
    for c in plan:  # the category's own department handles it; parks' cases are in parks
        assert c.department == TABLE.get(c.subcategory).department
        assert c.location["crs"] == "EPSG:4547"
        if c.subcategory in ("BJ0403", "BJ0404", "SJ0106"):
            assert "公园" in c.description
    assert {"sanitation", "police", "water", "gardens"} <= plan_departments(TABLE)


def test_every_planned_step_is_legal_for_the_role_that_takes_it() -> None:
    held = {CENTER: [Role(r) for r in COMMAND_ROLES]}
    ends = Counter()
    for case in _plan(n=300):
        state = State.REPORTED
        for step in case.steps:
            roles = held[CENTER] if step.actor == "center" else [Role.HANDLER]
            dept = CENTER if step.actor == "center" else case.department
            ok = [r for r in roles if BY_ACTION[step.action].roles & {r}]
            assert ok, (case.fate, step.action)
            t = check_transition(
                state,
                step.action,
                ok[0],
                acting_department=dept,
                assigned_department=case.department,
            )
            for need in t.needs:
                assert dict(step.fields).get(need), (step.action, need)
            if t.note_required:
                assert dict(step.fields).get("note"), step.action
            state = t.target
            assert step.after >= 0
        ends[(case.fate, state)] += 1
    assert {fate for fate, state in ends if state is State.CLOSED} == {
        "closed",
        "rework",
        "extension",
    }
    assert all(state is State.HANDLING for fate, state in ends if fate == "overdue")
    assert all(state is State.CANCELLED for fate, state in ends if fate == "cancelled")


def test_sample_places_stand_on_the_sample_city() -> None:
    from cim.sample import ORIGIN

    places = sample_places()
    kinds = Counter(p.where for p in places)
    assert kinds["street"] > 300 and kinds["park"] == 4
    for p in places:
        assert abs(p.x - ORIGIN[0]) <= 2300 and abs(p.y - ORIGIN[1]) <= 2300


def test_a_bad_rate_or_no_fitting_scenario_is_refused() -> None:
    with pytest.raises(InputDataError, match="events-per-hour"):
        next(plan_events(TABLE, sample_places(), per_hour=0))
    with pytest.raises(InputDataError, match="no case scenario"):
        next(plan_events(TABLE, [Place("roof", "x", 0.0, 0.0)]))


class FakeApi:
    """/api/events as the runner uses it: ids, versions, states (no lifecycle checks)."""

    def __init__(self, refuse: set[str] = frozenset()) -> None:
        self.cases: dict[int, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, str | None]] = []
        self.refuse = refuse

    def request(self, method: str, path: str, body: Any = None, dept: str | None = None) -> Any:
        from layers.simulate import StaError

        self.calls.append((method, path, dept))
        if path == "/api/events":
            eid = len(self.cases) + 1
            self.cases[eid] = {"id": eid, "version": 1, "state": "reported"}
            return dict(self.cases[eid])
        eid = int(path.split("/")[3])
        case = self.cases[eid]
        assert body["version"] == case["version"]
        if body["action"] in self.refuse:
            raise StaError(f"POST {path}: HTTP 409 conflict")
        case["version"] += 1
        case["state"] = BY_ACTION[body["action"]].target.value
        return dict(case)


def test_the_runner_reports_and_moves_cases_in_time() -> None:
    plan = _plan(n=50, per_hour=3600.0, step_seconds=1.0, backlog=0)
    clock = [0.0]
    api = FakeApi()
    runner = EventRunner(api, plan, now=lambda: clock[0])

    def sleep(s: float) -> None:
        clock[0] += s

    runner.sleep = sleep
    stats = runner.run(60.0)
    assert stats.reported == sum(1 for c in plan if c.at < 60.0)
    assert stats.closed >= 5 and stats.failed == 0
    # the handler's steps go with the case's department's token, the rest with center's
    for _, _, dept in api.calls:
        assert dept == CENTER or dept in plan_departments(TABLE)
    closed = [c for c in api.cases.values() if c["state"] == "closed"]
    assert len(closed) == stats.closed
    assert set(stats.open_ids) == {
        i for i, c in api.cases.items() if c["state"] not in ("closed", "cancelled")
    }


def test_a_refused_step_drops_that_case_only() -> None:
    plan = _plan(n=20, per_hour=3600.0, step_seconds=0.5, backlog=0)
    clock = [0.0]
    api = FakeApi(refuse={"check"})

    def sleep(s: float) -> None:
        clock[0] += s

    runner = EventRunner(api, plan, now=lambda: clock[0], sleep=sleep)
    stats = runner.run(120.0)
    assert stats.closed == 0 and stats.failed > 0
    assert stats.actions["report_done"] > 0  # the others went on


# --- end to end -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_cim_simulate_files_cases_and_closes_some(
    tmp_path: Path, sample_city: Path, sample_output: Path
) -> None:
    from test_simulate import _project, _serve

    from layers.simulate import StaClient, simulate, tokens_file

    project = _project(tmp_path, sample_city, sample_output)
    with _serve(project) as url:
        stats = simulate(
            project, url=url, rate=20.0, duration=15.0, seed=2026, wait=10.0,
            events_per_hour=600.0, event_step=0.1,
        )  # fmt: skip
        ev = stats.events
        assert ev is not None and ev.reported >= 5 and ev.closed >= 1, ev
        api = StaClient(url)
        listed = api.request("GET", "/api/events?limit=1000")
        assert listed["total"] == ev.reported
        assert listed["counts"].get("closed", 0) == ev.closed
        one = next(i for i in listed["items"] if i["state"] == "closed")
        detail = api.request("GET", f"/api/events/{one['id']}")
        steps = [(t["action"], t["role"]) for t in detail["timeline"]]
        assert steps[0][0] == "report" and steps[-1] == ("close", "supervisor")
        assert ("dispatch", "dispatcher") in steps and ("accept", "handler") in steps
        assert detail["source"] in ("hotline", "patrol", "video")
        # placed on the city: a building or the ground, with a height
        assert detail["location"]["h"] is not None
        # the admin granted the command center its roles through the API
        tokens = json.loads(tokens_file(str(tmp_path / "live.sqlite"), project).read_text())
        assert ADMIN in tokens and CENTER in tokens
        me = StaClient(url, tokens).request("GET", "/api/events/me", dept=CENTER)
        assert set(COMMAND_ROLES) <= set(me["roles"])
        t0 = time.monotonic()
        again = simulate(project, url=url, rate=50.0, duration=1.0, seed=2026,
                         events_per_hour=0)  # fmt: skip
        assert again.events is None and time.monotonic() - t0 < 60
