"""City events in headless chromium: the command center (a department holding the
受理员/值班长/派遣员/核查员 roles) enters its token in the viewer, reports an event by
clicking the map (the form names the building the server finds there), files and
dispatches it to the water department; the water department's token accepts it and
reports it done; the command center checks and closes it (结案). The marker changes
colour with the state, the timeline lists every step, the list and its counts follow,
and the statistics view counts the closed case.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from viewer_helpers import PERFORMANCE_MODE_JS, PageLog

pytestmark = pytest.mark.browser

#: layers/events.js STATE_COLORS
COLORS = {"reported": "#5dade2", "dispatched": "#f5b041", "closed": "#2ecc71"}


class World:
    def __init__(self, url: str, tokens: dict[str, str]) -> None:
        self.url = url
        self.tokens = tokens

    def event(self, eid: int) -> dict[str, Any]:
        r = requests.get(f"{self.url}api/events/{eid}", timeout=30)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="module")
def world(viewer_city: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from viewer_helpers import LiveServer

    from layers.departments import add_department
    from layers.events.config import events_config
    from layers.events.roles import set_roles
    from layers.events.store import EventStore
    from layers.store import open_store
    from server import create_app

    folder = tmp_path_factory.mktemp("events")
    store_path = str(folder / "live.sqlite")
    st = open_store(store_path)
    EventStore(st, events_config())
    tokens = {
        "center": add_department(st, "center", "指挥中心"),
        "water": add_department(st, "water", "水务局"),
    }
    set_roles(st, "center", ["operator", "supervisor", "dispatcher", "inspector"])
    st.close()
    app = create_app(
        {
            "OUTPUT_DIR": viewer_city.output,
            "ADDRESS_INDEX_FACTORY": viewer_city.index_factory,
            "LIVE_STORE": store_path,
            "ATTACHMENTS_DIR": folder / "attachments",
            # the cases of alarms are filed from the viewer's alarm list here
            "EVENTS_FROM_ALARMS": False,
        }
    )
    with LiveServer(app) as srv:
        yield World(srv.url, tokens)
        from server.blueprints.live import stop_live

        stop_live(app)


@pytest.fixture(scope="module")
def opened(browser: Any, world: World) -> Iterator[tuple[Any, PageLog]]:
    context = browser.new_context(viewport={"width": 1200, "height": 760}, locale="zh-CN")
    context.add_init_script(PERFORMANCE_MODE_JS)
    page = context.new_page()
    log = PageLog(world.url)
    log.attach(page)
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.missing = missing  # type: ignore[attr-defined]
    page.goto(world.url, wait_until="domcontentloaded", timeout=120_000)  # a loaded CI machine
    page.wait_for_function(
        "() => window.cim && window.cim.ready && window.cim.events", timeout=120_000
    )
    yield page, log
    context.close()


def _use_token(page: Any, token: str, expect: str) -> None:
    page.fill("#evToken", token)
    page.click("#evTokenSave")
    page.wait_for_function(
        "(w) => document.getElementById('evWho').textContent.includes(w)", arg=expect
    )


def _act(page: Any, action: str, state: str) -> None:
    button = page.locator(f'#evActionButtons button[data-action="{action}"]')
    button.wait_for(timeout=15_000)
    button.click()
    page.wait_for_function(
        "(s) => document.getElementById('evPanel').dataset.state === s", arg=state, timeout=15_000
    )


def _canvas_centre(page: Any) -> tuple[float, float]:
    box = page.locator("#cesiumContainer canvas").first.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_report_by_click_dispatch_handle_close(opened: tuple[Any, PageLog], world: World) -> None:
    page, log = opened
    # without a token: read only
    assert "只读" in page.locator("#evWho").inner_text()
    _use_token(page, world.tokens["center"], "值班长")

    # report by clicking the map
    page.click("#evCreateBtn")
    form = page.locator("#evCreatePanel")
    form.wait_for(state="visible")
    x, y = _canvas_centre(page)
    page.mouse.click(x, y)
    page.wait_for_function(
        "() => { const d = document.getElementById('evCreatePanel').dataset;"
        " return d.lon && d.building !== undefined; }",
        timeout=15_000,
    )
    assert page.locator("#infoPanel").is_hidden(), "the click went to the event form only"
    clicked = form.evaluate("(el) => ({...el.dataset})")
    assert "建筑" in page.locator("#evCreateWhere").inner_text()
    page.fill("#evCreateDesc", "<b>路边</b>暴露垃圾")
    page.click("#evCreateSubmit")
    panel = page.locator("#evPanel")
    panel.wait_for(state="visible", timeout=15_000)
    page.wait_for_function("() => document.getElementById('evPanel').dataset.state === 'reported'")
    eid = int(panel.get_attribute("data-event"))
    ev = world.event(eid)
    assert abs(ev["location"]["lon"] - float(clicked["lon"])) < 1e-6
    assert abs(ev["location"]["lat"] - float(clicked["lat"])) < 1e-6
    if clicked["building"]:  # the form's building is the one the server placed it on
        assert str(ev["location"]["building"]) == clicked["building"]
    assert ev["description"] == "<b>路边</b>暴露垃圾"
    assert page.locator('#evTable td[data-key="description"]').inner_text() == ev["description"]
    assert page.locator("#evPanel b").count() == 0
    page.wait_for_function("(id) => window.cim.events.markerColor(id) !== null", arg=eid)
    assert page.evaluate("(id) => window.cim.events.markerColor(id)", eid) == COLORS["reported"]

    # the command center files and dispatches it to the water department
    _act(page, "file", "filed")
    page.fill("#evDepartment", "water")
    _act(page, "dispatch", "dispatched")
    assert world.event(eid)["department"] == "water"
    page.wait_for_function(
        "([id, c]) => window.cim.events.markerColor(id) === c", arg=[eid, COLORS["dispatched"]]
    )
    # the command center may not accept (签收) a case of the water department
    assert page.locator('#evActionButtons button[data-action="accept"]').count() == 0

    # the water department handles it
    _use_token(page, world.tokens["water"], "水务局")
    _act(page, "accept", "handling")
    page.fill("#evNote", "已清运")
    _act(page, "report_done", "handled")

    # the command center checks and closes it
    _use_token(page, world.tokens["center"], "核查员")
    _act(page, "check", "checked")
    _act(page, "close", "closed")
    assert world.event(eid)["state"] == "closed"

    steps = page.locator("#evTimeline li").evaluate_all(
        "(lis) => lis.map((li) => li.dataset.action)"
    )
    for action in ("file", "dispatch", "accept", "report_done", "check", "close"):
        assert action in steps, steps
    timeline = page.locator("#evTimeline").inner_text()
    for word in ("立案", "派遣", "签收", "处理反馈", "核查通过", "结案", "已清运", "water"):
        assert word in timeline, (word, timeline)
    assert page.locator('#evTable td[data-key="state"]').inner_text() == "结案"

    # the list: a closed case leaves the open cases; "all" lists it with the counts
    page.select_option("#evFilterState", "all")
    page.wait_for_selector(f'#evList button[data-event="{eid}"]', timeout=15_000)
    assert page.locator('#evCounts li[data-state="closed"]').inner_text().endswith("1")
    page.wait_for_function(
        "([id, c]) => window.cim.events.markerColor(id) === c", arg=[eid, COLORS["closed"]]
    )
    # the search box: the list and the map hold the cases whose texts match
    page.fill("#evFilterText", "无此事件")
    page.wait_for_function(
        "(id) => !document.querySelector(`#evList button[data-event=\"${id}\"]`)"
        " && window.cim.events.markerColor(id) === null",
        arg=eid, timeout=15_000,
    )  # fmt: skip
    assert page.locator("#evTotal").inner_text().startswith("共 0")
    page.fill("#evFilterText", "路边")
    page.wait_for_selector(f'#evList button[data-event="{eid}"]', timeout=15_000)
    page.wait_for_function("(id) => window.cim.events.markerColor(id) !== null", arg=eid)
    page.fill("#evFilterText", "")
    page.wait_for_function("() => !window.cim.events.filter.text")

    # the statistics view
    page.click("#evStatsBtn")
    page.wait_for_function(
        "() => { const p = document.getElementById('evStatsPanel');"
        " return p && !p.hidden && p.dataset.closed === '1'; }",
        timeout=20_000,
    )
    assert "100" in page.locator("#evStatsSummary").inner_text()  # on time: 100 %
    page.wait_for_function(
        "() => document.getElementById('evStatsPanel').dataset.charts === '3'", timeout=20_000
    )
    # /api/buildings/at answers 404 where the click is on no building (chromium logs it)
    assert all("/api/buildings/at?" in u for u in page.missing), page.missing
    errors = [e for e in log.errors if "status of 404" not in e]
    assert not errors, errors
    assert not log.foreign_requests()


def test_language_switch_names_states(opened: tuple[Any, PageLog]) -> None:
    page, _ = opened
    page.click("#langBtn")
    try:
        page.wait_for_function(
            "() => document.getElementById('evSection').textContent.includes('City events')"
        )
        legend = page.locator('#legend section[data-source="events"]').inner_text()
        assert "Dispatched" in legend and "Overdue" in legend
    finally:
        page.click("#langBtn")


def test_deltas_from_the_stream_move_markers(opened: tuple[Any, PageLog], world: World) -> None:
    """A case reported by another client appears without a reload (the live stream)."""
    page, _ = opened
    page.select_option("#evFilterState", "")
    manifest_centre = page.evaluate("() => window.cim.manifest.centre")
    r = requests.post(
        f"{world.url}api/events",
        json={"subcategory": "SJ0102", "location": manifest_centre[:2], "source": "hotline"},
        headers={"Authorization": f"Bearer {world.tokens['center']}"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    eid = r.json()["id"]
    page.wait_for_function(
        "(id) => window.cim.events.markerColor(id) !== null", arg=eid, timeout=20_000
    )
    assert json.loads(json.dumps(page.evaluate("() => window.cim.events.received"))) != {
        "deltas": 0
    }


def _sensor(world: World, lon: float, lat: float, h: float) -> int:
    """A 水位 sensor of the command center at (lon, lat, h), alarming above 8 m."""
    auth = ("center", world.tokens["center"])
    body = {
        "name": "1号积水点",
        "description": "",
        "Locations": [{"name": "积水点", "description": "", "encodingType": "application/geo+json",
                       "location": {"type": "Point", "coordinates": [lon, lat, h]}}],
        "Datastreams": [{
            "name": "1号积水点", "description": "",
            "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
            "unitOfMeasurement": {"name": "metre", "symbol": "m", "definition": "ucum:m"},
            "properties": {"thresholds": {"warn_high": 5, "alarm_high": 8}},
            "Sensor": {"name": "gauge", "description": "", "encodingType": "text/html",
                       "metadata": "none"},
            "ObservedProperty": {"name": "道路水位", "definition": "urn:water", "description": ""},
        }],
    }  # fmt: skip
    sta = f"{world.url}api/sta/v1.1"
    r = requests.post(f"{sta}/Things", json=body, auth=auth, timeout=30)
    assert r.status_code == 201, r.text
    thing = r.json()["@iot.id"]
    ds = int(
        requests.get(f"{sta}/Things({thing})/Datastreams", timeout=30).json()["value"][0]["@iot.id"]
    )
    for value in (3.0, 9.0):  # normal, then alarm
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        r = requests.post(f"{sta}/Datastreams({ds})/Observations", auth=auth, timeout=30,
                          json={"result": value, "phenomenonTime": when})  # fmt: skip
        assert r.status_code == 201, r.text
        time.sleep(1.1)  # the next reading is newer
    return ds


def test_case_from_a_sensor_alarm(opened: tuple[Any, PageLog], world: World) -> None:
    """An alarm of the sensors' alarm list files a case prefilled with the sensor's
    place, category and reading (the operator's token); a second one opens that case."""
    page, _ = opened
    lon, lat, h = [*page.evaluate("() => window.cim.manifest.centre"), 0.0][:3]
    ds = _sensor(world, lon + 0.0002, lat + 0.0001, h + 3)
    if page.locator("#evStatsPanel").is_visible():  # an earlier test's; it covers the form
        page.click("#evStatsClose")
    _use_token(page, world.tokens["center"], "受理员")
    link = page.locator(f'#sensorAlarmList a[data-alarm-ds="{ds}"]')
    link.wait_for(timeout=30_000)
    assert link.inner_text() == "立案"
    link.click()
    form = page.locator("#evCreatePanel")
    form.wait_for(state="visible")
    page.wait_for_function(
        "(ds) => { const d = document.getElementById('evCreatePanel').dataset;"
        " return d.datastream === String(ds) && d.lon && d.building !== undefined; }",
        arg=ds,
        timeout=15_000,
    )
    assert page.locator("#evCreateSub").input_value() == "SJ0405"  # 道路积水: keyword 水位
    assert page.locator("#evCreateSource").input_value() == "sensor"
    assert page.locator("#evCreatePriority").input_value() == "high"
    description = page.locator("#evCreateDesc").input_value()
    assert description.startswith("1号积水点: 道路水位 = 9 m (告警"), description
    page.click("#evCreateSubmit")
    panel = page.locator("#evPanel")
    page.wait_for_function(
        "() => { const p = document.getElementById('evPanel');"
        " return !p.hidden && p.dataset.state === 'reported' && p.dataset.event; }",
        timeout=15_000,
    )
    eid = int(panel.get_attribute("data-event"))
    ev = world.event(eid)
    assert (ev["source"], ev["subcategory"], ev["datastream_id"]) == ("sensor", "SJ0405", ds)
    assert ev["priority"] == "high"
    assert abs(ev["location"]["lon"] - (lon + 0.0002)) < 1e-6
    assert abs(ev["location"]["lat"] - (lat + 0.0001)) < 1e-6
    assert ev["description"] == description

    # the datastream now has its open case: the button opens that one, files no other
    page.evaluate("() => { delete document.getElementById('evPanel').dataset.event; }")
    page.locator(f'#sensorAlarmList a[data-alarm-ds="{ds}"]').click()
    page.wait_for_function(
        "(ds) => document.getElementById('evCreatePanel').dataset.datastream === String(ds)",
        arg=ds,
    )
    page.click("#evCreateSubmit")
    page.wait_for_function(
        "(id) => document.getElementById('evPanel').dataset.event === String(id)",
        arg=eid,
        timeout=15_000,
    )
    assert page.locator("#evMessage").inner_text() == "该传感器已有未结案件"
    listed = requests.get(f"{world.url}api/events?datastream={ds}", timeout=30).json()
    assert [i["id"] for i in listed["items"]] == [eid]
