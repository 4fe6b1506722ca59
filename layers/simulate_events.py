"""Plausible city cases (案卷) for ``cim simulate``: a command center's working day.

The simulator files cases through the events REST API (``/api/events``), as a hotline
desk, a patrol or a video operator would, and moves them through the lifecycle with
the tokens of the departments that hold each role: the command center (``center``,
granted 受理员/值班长/派遣员/核查员 through ``PUT /api/events/roles/center`` with an
admin token) files, dispatches, checks and closes; the case's department (the
category's default: sanitation for exposed rubbish, water for manhole covers, police
for illegal parking, gardens for parks …) accepts, asks for an extension, reports it
done. Some cases are sent back for rework (返工), some get an extension (延期), some
are cancelled as duplicates (注销), and some are left lying in a department so that they
turn approaching and overdue as working time passes.

:func:`plan_events` is pure and deterministic for a seed (the tests check the plan
without a server); :class:`EventRunner` plays a plan against a server in real time.
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cim.errors import CimError, InputDataError
from layers.events.categories import CategoryTable

log = logging.getLogger(__name__)

#: the department that holds the command roles, and the admin the simulator grants them with
CENTER = "center"
ADMIN = "simadmin"
COMMAND_ROLES = ("operator", "supervisor", "dispatcher", "inspector")
NAMES = {CENTER: "指挥中心", ADMIN: "模拟器管理员"}
#: cases per hour by default: about one a minute, lively for a demo
EVENTS_PER_HOUR = 60.0
#: mean seconds between two steps of a case (handling takes three times as long)
STEP_SECONDS = 45.0
#: cases filed within the first seconds, so that a screen is not empty at the start
BACKLOG = 10


@dataclass(frozen=True)
class Scenario:
    """A kind of case: its 小类, where it happens, how often, who reports it, what is said."""

    code: str
    where: str  # "street" or "park"
    weight: float
    sources: tuple[str, ...]
    texts: tuple[str, ...]


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("SJ0102", "street", 14, ("hotline", "patrol", "video"),
             ("{place}路边垃圾堆放未清运", "{place}垃圾桶满溢，垃圾散落路面")),
    Scenario("SJ0104", "street", 6, ("patrol",), ("{place}路面油污、泥土未清扫",)),
    Scenario("SJ0504", "street", 12, ("video", "patrol", "hotline"),
             ("{place}机动车占用人行道停放", "{place}车辆违停堵塞消防通道")),
    Scenario("SJ0505", "street", 6, ("patrol", "video"), ("{place}共享单车乱停放，占用盲道",)),
    Scenario("BJ0101", "street", 6, ("hotline", "patrol"), ("{place}上水井盖破损，有塌陷风险",)),
    Scenario("BJ0102", "street", 5, ("patrol",), ("{place}污水井盖缺失，已临时围挡",)),
    Scenario("BJ0109", "street", 5, ("hotline", "patrol"), ("{place}路灯不亮",)),
    Scenario("SJ0501", "street", 5, ("video", "patrol"), ("{place}流动摊贩占道经营",)),
    Scenario("SJ0502", "street", 4, ("patrol",), ("{place}商户店外摆放经营",)),
    Scenario("SJ0201", "street", 4, ("patrol",), ("{place}电杆上张贴非法小广告",)),
    Scenario("SJ0404", "street", 3, ("hotline",), ("{place}下水道堵塞，污水外溢",)),
    Scenario("SJ0303", "street", 3, ("patrol", "video"), ("{place}施工围挡占用车道",)),
    Scenario("BJ0403", "park", 6, ("patrol", "hotline"),
             ("{place}绿地草坪缺水枯黄，需要养护", "{place}绿地内杂草丛生")),
    Scenario("BJ0404", "park", 3, ("patrol",), ("{place}花坛花卉枯死，需补植",)),
    Scenario("SJ0106", "park", 4, ("hotline", "patrol"), ("{place}绿地内垃圾散落",)),
    Scenario("BJ0402", "street", 3, ("hotline",), ("{place}行道树枝杈遮挡信号灯",)),
)  # fmt: skip

#: what happens to a case after it is reported, and how often
FATES: tuple[tuple[str, float], ...] = (
    ("closed", 0.55),  # 立案 → 派遣 → 签收 → 处理反馈 → 核查 → 结案
    ("rework", 0.10),  # 核查 finds it not done: 返工, then done again
    ("extension", 0.08),  # 延期申请 → 延期批准
    ("cancelled", 0.07),  # 注销: a duplicate report
    ("overdue", 0.10),  # accepted and left lying: it turns approaching, then overdue
    ("waiting", 0.10),  # dispatched, not yet accepted
)
PRIORITIES: tuple[tuple[str, float], ...] = (
    ("normal", 0.7),
    ("high", 0.15),
    ("low", 0.1),
    ("urgent", 0.05),
)


@dataclass(frozen=True)
class Place:
    """Where cases of one kind happen: ``x, y`` in ``crs`` (None: WGS84 lon/lat)."""

    where: str
    label: str
    x: float
    y: float
    crs: str | None = None
    spread: float = 0.0  # metres of jitter around the point


@dataclass(frozen=True)
class Step:
    """One action: ``after`` seconds after the previous one, by ``actor`` (``"center"`` or
    ``"handler"``), with the request's other fields."""

    after: float
    actor: str
    action: str
    fields: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PlannedCase:
    """A case to report ``at`` seconds after the start, and what happens to it."""

    n: int
    at: float
    subcategory: str
    department: str
    source: str
    priority: str
    description: str
    location: Any  # as /api/events takes it: [lon, lat], or coordinates in a CRS
    fate: str
    steps: tuple[Step, ...]

    def report_body(self) -> dict[str, Any]:
        """The ``POST /api/events`` body."""
        return {
            "subcategory": self.subcategory,
            "source": self.source,
            "priority": self.priority,
            "description": self.description,
            "location": self.location,
        }


# --- places --------------------------------------------------------------------------------


def sample_places() -> list[Place]:
    """Streets and parks of the sample city 平城 (its layout; no build needed)."""
    import shapely

    from cim.sample import CRS, ORIGIN
    from cim.sample import _addresses as addr
    from cim.sample import _layout as lay

    ox, oy = ORIGIN
    streets = lay.make_streets()
    lines = streets.lines
    out = []
    for i, (name, kind) in enumerate(zip(streets.names, streets.kinds, strict=True)):
        if kind not in ("road", "minor", "old_main", "old_street"):
            continue
        # a point every 100 m along the centre line; the plan moves it along and off it
        at = np.arange(25.0, max(shapely.length(lines[i]), 26.0), 100.0)
        xy = shapely.get_coordinates(shapely.line_interpolate_point(lines[i], at))
        out += [Place("street", name, x + ox, y + oy, CRS, spread=8.0) for x, y in xy]
    for poi, x, y in addr._POIS:
        out.append(Place("park", poi, x + ox, y + oy, CRS, spread=60.0))
    return out


def sensor_places(sensors: Iterable[Any]) -> list[Place]:
    """Places of another city: around its placed sensors (``PlacedSensor``), as streets
    and parks both, labelled with where each sensor is."""
    out = []
    for s in sensors:
        p = s.placement
        for where in ("street", "park"):
            out.append(Place(where, s.spec.where or s.spec.name, p.lon, p.lat, None, 30.0))
    return out


def _location(place: Place, rng: np.random.Generator) -> Any:
    dx, dy = rng.uniform(-place.spread, place.spread, 2)
    if place.crs is None:  # lon/lat degrees: metres → degrees
        k = 1.0 / 111_195.0
        lon = place.x + dx * k / max(math.cos(math.radians(place.y)), 0.1)
        return [round(lon, 7), round(place.y + dy * k, 7)]
    return {"coordinates": [round(place.x + dx, 2), round(place.y + dy, 2)], "crs": place.crs}


# --- the plan --------------------------------------------------------------------------------


def _steps(fate: str, department: str, rng: np.random.Generator, step: float) -> list[Step]:
    def gap(factor: float = 1.0) -> float:
        return round(float(step * factor * rng.uniform(0.5, 1.5)), 3)

    head = [
        Step(gap(), "center", "file"),
        Step(gap(), "center", "dispatch", (("department", department),)),
    ]
    if fate == "cancelled":
        return [Step(gap(), "center", "cancel", (("note", "重复上报，已并案处理"),))]
    if fate == "waiting":
        return head
    accept = Step(gap(), "handler", "accept")
    if fate == "overdue":
        return [*head, accept]
    done = Step(gap(3.0), "handler", "report_done", (("note", "已处置完毕，附现场照片"),))
    tail = [Step(gap(), "center", "check"), Step(gap(), "center", "close")]
    middle = [done]
    if fate == "rework":
        middle += [
            Step(gap(), "center", "rework", (("note", "核查发现未处置到位，请返工"),)),
            Step(gap(2.0), "handler", "report_done", (("note", "已返工整改"),)),
        ]
    if fate == "extension":
        ask = (("note", "需协调施工单位，申请延期一个工作日"), ("extension", "1d"))
        middle = [Step(gap(), "handler", "request_extension", ask),
                  Step(gap(), "center", "approve_extension"), done]  # fmt: skip
    return [*head, accept, *middle, *tail]


def plan_events(
    table: CategoryTable,
    places: Sequence[Place],
    seed: int = 2026,
    per_hour: float = EVENTS_PER_HOUR,
    step_seconds: float = STEP_SECONDS,
    backlog: int = BACKLOG,
) -> Iterator[PlannedCase]:
    """The cases of a run, in report order, without end (deterministic for ``seed``).

    Parameters
    ----------
    table : CategoryTable
        The city's categories: scenarios whose 小类 it lacks are left out, and each
        case goes to its 小类's default department.
    places : sequence of Place
        Streets and parks (:func:`sample_places`, :func:`sensor_places`).
    seed : int
    per_hour : float
        Mean cases per hour (a Poisson process).
    step_seconds : float
        Mean seconds between two steps of a case.
    backlog : int
        Cases reported in the first seconds (one every 2 s, or ``step_seconds`` when
        shorter), before the Poisson arrivals.

    Raises
    ------
    InputDataError
        ``per_hour`` not positive, or no scenario fits the table and the places.
    """
    if not per_hour > 0 or not math.isfinite(per_hour):
        raise InputDataError(f"--events-per-hour must be a positive number, not {per_hour}")
    by_kind: dict[str, list[Place]] = {}
    for p in places:
        by_kind.setdefault(p.where, []).append(p)
    usable = [s for s in SCENARIOS if s.code in table and by_kind.get(s.where)]
    if not usable:
        raise InputDataError("no case scenario fits this city's categories and places")
    weights = np.array([s.weight for s in usable], dtype=np.float64)
    weights /= weights.sum()
    fates, fate_p = zip(*FATES, strict=True)
    prios, prio_p = zip(*PRIORITIES, strict=True)
    rng = np.random.default_rng([seed, 23])
    lead = min(2.0, step_seconds)  # seconds between the backlog's reports
    at, n = 0.0, 0
    while True:
        n += 1
        at = lead * (n - 1) if n <= backlog else at + float(rng.exponential(3600.0 / per_hour))
        sc = usable[int(rng.choice(len(usable), p=weights))]
        sub = table.get(sc.code)
        choices = by_kind[sc.where]
        place = choices[int(rng.integers(len(choices)))]
        fate = str(rng.choice(fates, p=fate_p))
        text = sc.texts[int(rng.integers(len(sc.texts)))].format(place=place.label)
        yield PlannedCase(
            n=n,
            at=round(at, 3),
            subcategory=sc.code,
            department=sub.department,
            source=sc.sources[int(rng.integers(len(sc.sources)))],
            priority=str(rng.choice(prios, p=prio_p)),
            description=text,
            location=_location(place, rng),
            fate=fate,
            steps=tuple(_steps(fate, sub.department, rng, step_seconds)),
        )


def plan_departments(table: CategoryTable) -> set[str]:
    """Every department a plan over ``table`` may dispatch to (tokens are needed)."""
    return {table.get(s.code).department for s in SCENARIOS if s.code in table}


# --- playing a plan against the server ---------------------------------------------------------


@dataclass
class EventStats:
    """What the cases of a run did."""

    reported: int = 0
    actions: Counter = field(default_factory=Counter)
    failed: int = 0
    open_ids: list[int] = field(default_factory=list)

    @property
    def closed(self) -> int:
        """Cases brought to 结案."""
        return self.actions["close"]


@dataclass(order=True)
class _Due:
    due: float
    n: int
    case: PlannedCase = field(compare=False)
    index: int = field(compare=False, default=0)
    event_id: int = field(compare=False, default=0)
    version: int = field(compare=False, default=0)


class EventRunner:
    """Plays planned cases against a server: reports them, then takes their steps when due.

    Parameters
    ----------
    client
        A :class:`layers.simulate.StaClient` (its ``request(method, path, body, dept)``)
        holding tokens of ``center`` and of every handling department.
    plan : iterable of PlannedCase
        In report order (:func:`plan_events`).
    now, sleep
        The clock (tests).
    """

    def __init__(
        self,
        client: Any,
        plan: Iterable[PlannedCase],
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.plan = iter(plan)
        self.now = now
        self.sleep = sleep
        self.stats = EventStats()
        self._due: list[_Due] = []
        self._next: PlannedCase | None = next(self.plan, None)

    def run(self, duration: float | None, stop: threading.Event | None = None) -> EventStats:
        """Report and move cases until ``duration`` seconds passed or ``stop`` is set."""
        start = self.now()
        while duration is None or self.now() - start < duration:
            if stop is not None and stop.is_set():
                break
            t = self.now() - start
            self.tick(t)
            wait = min(0.5, self.next_due() - t)
            if wait > 0:
                if stop is not None:
                    stop.wait(wait)
                else:
                    self.sleep(wait)
        return self.stats

    def next_due(self) -> float:
        """Seconds after the start of the next report or step."""
        times = [self._due[0].due] if self._due else []
        if self._next is not None:
            times.append(self._next.at)
        return min(times, default=math.inf)

    def tick(self, t: float) -> None:
        """Do everything due at ``t`` seconds after the start."""
        # due steps before due reports: a slow server delays new cases, never the handling
        # of those already filed (they would all pile up unhandled)
        while self.next_due() <= t:
            if self._due and self._due[0].due <= t:
                self._act(heapq.heappop(self._due), t)
            else:
                case, self._next = self._next, next(self.plan, None)
                assert case is not None
                self._report(case, t)

    def _report(self, case: PlannedCase, t: float) -> None:
        try:
            body = self.client.request("POST", "/api/events", case.report_body(), dept=CENTER)
        except CimError as exc:
            self.stats.failed += 1
            log.warning("case %d (%s) not reported: %s", case.n, case.subcategory, exc)
            return
        self.stats.reported += 1
        self.stats.open_ids.append(int(body["id"]))
        self._schedule(_Due(t, case.n, case, 0, int(body["id"]), int(body["version"])))

    def _schedule(self, item: _Due) -> None:
        if item.index < len(item.case.steps):
            item.due += item.case.steps[item.index].after
            heapq.heappush(self._due, item)

    def _act(self, item: _Due, t: float) -> None:
        step = item.case.steps[item.index]
        who = CENTER if step.actor == "center" else item.case.department
        body = {"action": step.action, "version": item.version, **dict(step.fields)}
        path = f"/api/events/{item.event_id}/transitions"
        try:
            answer = self.client.request("POST", path, body, dept=who)
        except CimError as exc:  # e.g. someone on a screen acted on it first (409)
            self.stats.failed += 1
            log.info("case %d: %s by %s refused: %s", item.event_id, step.action, who, exc)
            return
        self.stats.actions[step.action] += 1
        if answer.get("state") in ("closed", "cancelled"):
            self.stats.open_ids.remove(item.event_id)
        item.version = int(answer["version"])
        item.index += 1
        item.due = t
        self._schedule(item)


def grant_command_roles(client: Any, admin: str = ADMIN, department: str = CENTER) -> None:
    """Grant ``department`` the command roles with ``admin``'s token (idempotent)."""
    body = {"roles": list(COMMAND_ROLES)}
    client.request("PUT", f"/api/events/roles/{department}", body, dept=admin)


def categories_of(project: Any) -> CategoryTable:
    """The city's case categories (``[events] categories``, else the default table)."""
    from layers.events.config import events_config

    return events_config(project).table
