"""The sensors layer in headless chromium: the server serves the city with a live store
holding a few sensors, made through the SensorThings API with department tokens. Points
appear coloured by state, a new reading changes a colour within a second, a click opens
the panel with a chart, filters hide and show, the legend names the states, and
switching the layer off closes the stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from viewer_helpers import PERFORMANCE_MODE_JS, PageLog

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"

#: the colours of sensors.js (STATE_COLORS) and the flash phase of an alarm
COLORS = {"normal": "#2ecc71", "warning": "#f5b041", "alarm": "#e74c3c", "stale": "#8c96a0"}
FLASH = "#ffffff"


def _thing(name: str, prop: str, lon: float, lat: float, h: float) -> dict[str, Any]:
    return {
        "name": name,
        "description": "test sensor",
        "Locations": [
            {
                "name": f"{name} place",
                "description": "",
                "encodingType": "application/geo+json",
                "location": {"type": "Point", "coordinates": [lon, lat, h]},
            }
        ],
        "Datastreams": [
            {
                "name": name,
                "description": "",
                "observationType": MEASUREMENT,
                "unitOfMeasurement": {"name": "metre", "symbol": "m", "definition": "ucum:m"},
                "properties": {"thresholds": {"warn_high": 5, "alarm_high": 8}},
                "Sensor": {"name": f"{name} sensor", "description": "", "encodingType": "text/html",
                           "metadata": "none"},
                "ObservedProperty": {"name": prop, "definition": f"urn:{prop}", "description": ""},
            }
        ],
    }  # fmt: skip


class World:
    """The served city with a live store, its sensors (datastream ids) and tokens."""

    def __init__(self, url: str, tokens: dict[str, str]) -> None:
        self.url = url
        self.sta = url + "api/sta/v1.1"
        self.tokens = tokens
        self.ds: dict[str, int] = {}

    def add(self, key: str, dept: str, prop: str, lon: float, lat: float, h: float) -> int:
        body = _thing(key, prop, lon, lat, h)
        r = requests.post(f"{self.sta}/Things", json=body, auth=(dept, self.tokens[dept]))
        assert r.status_code == 201, r.text
        thing = r.json()["@iot.id"]
        ds = requests.get(f"{self.sta}/Things({thing})/Datastreams").json()["value"][0]
        self.ds[key] = int(ds["@iot.id"])
        return self.ds[key]

    def read(self, key: str, dept: str, value: float, t: float | None = None) -> None:
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t or time.time()))
        frac = f"{(t or time.time()) % 1:.3f}"[1:]
        r = requests.post(
            f"{self.sta}/Datastreams({self.ds[key]})/Observations",
            json={"result": value, "phenomenonTime": f"{when}{frac}Z"},
            auth=(dept, self.tokens[dept]),
        )
        assert r.status_code == 201, r.text


def test_echarts_is_vendored_and_served() -> None:
    """ECharts is pinned in package.json, listed in vendor.json and served from /vendor/."""
    from server import create_app

    root = Path(__file__).resolve().parents[2] / "viewer"
    package = json.loads((root / "package.json").read_text("utf-8"))
    assert package["dependencies"]["echarts"][0].isdigit()  # an exact version
    assert json.loads((root / "vendor.json").read_text("utf-8"))["libraries"]["echarts"]
    if not (root / "node_modules" / "echarts" / "dist").is_dir():
        pytest.skip("the echarts npm package is missing (npm ci --prefix viewer)")
    client = create_app({"TESTING": True}).test_client()
    r = client.get("/vendor/echarts/echarts.simple.min.js")
    assert r.status_code == 200 and "javascript" in r.content_type
    assert client.get("/vendor/echarts/../package.json").status_code == 404
    assert client.get("/vendor/echarts/%2e%2e/%2e%2e/package.json").status_code == 404


@pytest.fixture(scope="module")
def world(viewer_city: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from viewer_helpers import LiveServer

    from layers.departments import add_department
    from layers.store import open_store
    from server import create_app

    store_path = str(tmp_path_factory.mktemp("live") / "live.sqlite")
    st = open_store(store_path)
    tokens = {
        "water": add_department(st, "water", "水务局"),
        "police": add_department(st, "police", "公安局"),
    }
    st.close()
    app = create_app(
        {
            "OUTPUT_DIR": viewer_city.output,
            "ADDRESS_INDEX_FACTORY": viewer_city.index_factory,
            "LIVE_STORE": store_path,
            "LIVE_HEARTBEAT": 2,
        }
    )
    manifest = json.loads((Path(viewer_city.output) / "manifest.json").read_text("utf-8"))
    lon, lat, h = [*manifest["centre"], 0.0][:3]
    with LiveServer(app) as srv:
        w = World(srv.url, tokens)
        w.add("河道水位", "water", "water level", lon, lat, h + 20)
        w.add("<b>桥</b>", "water", "water level", lon + 0.0006, lat, h + 20)
        w.add("噪声", "police", "noise", lon - 0.0006, lat, h + 20)
        w.read("河道水位", "water", 1.0)
        w.read("<b>桥</b>", "water", 6.0)
        w.read("噪声", "police", 9.0)
        yield w
        live = app.extensions.get("cim.live.stream")
        if live is not None:
            live.close()


@pytest.fixture(scope="module")
def opened(browser: Any, world: World) -> Iterator[tuple[Any, PageLog]]:
    context = browser.new_context(viewport={"width": 1024, "height": 700}, locale="zh-CN")
    context.add_init_script(PERFORMANCE_MODE_JS)
    page = context.new_page()
    log = PageLog(world.url)
    log.attach(page)
    page.goto(world.url, wait_until="domcontentloaded")
    page.wait_for_function("() => window.cim && window.cim.ready", timeout=120_000)
    page.wait_for_function(
        "() => window.cim.sensors && window.cim.sensors.graphics.size === 3", timeout=30_000
    )
    yield page, log
    context.close()


def _color(page: Any, ds: int) -> str | None:
    return page.evaluate("ds => window.cim.sensors.pointColor(ds)", ds)


@pytest.mark.browser
def test_points_coloured_by_state(opened: tuple[Any, PageLog], world: World) -> None:
    page, log = opened
    assert _color(page, world.ds["河道水位"]) == COLORS["normal"]
    assert _color(page, world.ds["<b>桥</b>"]) == COLORS["warning"]
    assert _color(page, world.ds["噪声"]) in (COLORS["alarm"], FLASH)  # it flashes
    # one collection of points, not entities
    kinds = page.evaluate(
        """() => { const s = window.cim.sensors;
        return {points: s.points.length, entities: window.cim.viewer.entities.values.length,
                alarms: [...s.store.alarms]}; }"""
    )
    assert kinds["points"] == 3 and kinds["entities"] == 0
    assert kinds["alarms"] == [world.ds["噪声"]]
    # the alarm flashes: both phases are seen
    seen = set()
    for _ in range(12):
        seen.add(_color(page, world.ds["噪声"]))
        page.wait_for_timeout(150)
    assert seen == {COLORS["alarm"], FLASH}
    # the alarm list names it; the legend names the states
    assert page.locator("#sensorAlarmList button").all_inner_texts() == ["噪声 · 9 m"]
    legend = page.locator("#legend").inner_text()
    for word in ("正常", "预警", "报警", "离线"):
        assert word in legend
    assert not log.errors, log.errors
    assert not log.foreign_requests()


@pytest.mark.browser
def test_a_new_reading_changes_the_colour_within_a_second(
    opened: tuple[Any, PageLog], world: World
) -> None:
    page, _ = opened
    ds = world.ds["河道水位"]
    assert _color(page, ds) == COLORS["normal"]
    world.read("河道水位", "water", 6.5)  # acknowledged (committed) when this returns
    start = time.perf_counter()
    page.wait_for_function(
        f"() => window.cim.sensors.pointColor({ds}) === '{COLORS['warning']}'", timeout=1000
    )
    assert time.perf_counter() - start < 1.0
    world.read("河道水位", "water", 2.0)
    page.wait_for_function(
        f"() => window.cim.sensors.pointColor({ds}) === '{COLORS['normal']}'", timeout=1000
    )


def _look_at(page: Any, ds: int) -> dict[str, float]:
    """Look at a sensor's point from above; its position on the screen."""
    page.evaluate(
        """(ds) => { const s = window.cim.sensors, C = window.Cesium;
        const c = C.Cartographic.fromCartesian(s.graphics.get(ds).pos);
        window.cim.viewer.camera.setView({destination: C.Cartesian3.fromRadians(
            c.longitude, c.latitude - 0.000012, c.height + 300),
            orientation: {heading: 0, pitch: C.Math.toRadians(-75), roll: 0}});
        window.cim.viewer.scene.requestRender(); }""",
        ds,
    )
    page.wait_for_timeout(500)
    pos = page.evaluate("ds => window.cim.sensors.screenPosition(ds)", ds)
    assert pos is not None
    return pos


@pytest.mark.browser
def test_click_opens_the_panel_with_a_chart(opened: tuple[Any, PageLog], world: World) -> None:
    page, log = opened
    ds = world.ds["<b>桥</b>"]
    for v in (5.5, 6.0, 7.0):
        world.read("<b>桥</b>", "water", v)
        time.sleep(0.01)
    # look at the sensor from above, then click its point with the mouse
    pos = _look_at(page, ds)
    page.mouse.click(pos["x"], pos["y"])
    panel = page.locator("#sensorPanel")
    panel.wait_for(state="visible", timeout=5000)
    assert page.evaluate("() => window.cim.panels.isVisible('sensor')")
    # metadata as text: the name's markup is shown, not interpreted
    assert page.locator("#sensorTitle").inner_text() == "<b>桥</b>"
    assert page.locator("#sensorTitle b").count() == 0
    assert page.locator('#sensorTable td[data-key="state"]').inner_text() == "预警"
    assert page.locator('#sensorTable td[data-key="value"]').inner_text() == "7 m"
    # the chart: ECharts from /vendor/, drawn from the history, extended live
    page.wait_for_function(
        "() => Number(document.getElementById('sensorPanel').dataset.points) >= 1",
        timeout=15_000,
    )
    assert page.locator("#sensorChart canvas").count() >= 1
    assert any("/vendor/echarts/" in u for u in log.requests)
    assert any("/api/live/history?datastream=" in u for u in log.requests)
    world.read("<b>桥</b>", "water", 9.5)
    page.wait_for_function(
        "() => document.querySelector('#sensorTable td[data-key=\"value\"]').textContent"
        " === '9.5 m'",
        timeout=2000,
    )
    assert page.locator('#sensorTable td[data-key="state"]').inner_text() == "报警"
    page.keyboard.press("Escape")

    panel.wait_for(state="hidden", timeout=2000)
    assert not log.errors, log.errors


@pytest.mark.browser
def test_a_map_tool_click_is_not_picked_by_the_layers(
    opened: tuple[Any, PageLog], world: World
) -> None:
    """While a map tool (measure) takes the clicks, a click on a sensor's point is the
    tool's: no layer's click handler calls scene.pick (which, after a reduced frame,
    draws a full-quality frame first: ~1 s under software WebGL) or opens its panel."""
    page, _ = opened
    ds = world.ds["<b>桥</b>"]
    pos = _look_at(page, ds)
    page.evaluate(
        """() => { const c = window.cim, s = c.viewer.scene;
        c.tools.activate('measure');
        window.__layerPicks = [];
        window.__realPick = s.pick;
        s.pick = function (...args) {
          const from = /layers\\/(\\w+)\\.js/.exec(new Error().stack);
          if (from) window.__layerPicks.push(from[1]);
          return window.__realPick.apply(this, args); }; }"""
    )
    page.mouse.click(pos["x"], pos["y"])
    page.wait_for_function(
        "() => window.cim.tools.get('measure').api.points().length === 1", timeout=30_000
    )
    picks = page.evaluate(
        """() => { const c = window.cim; c.tools.deactivate();
        c.viewer.scene.pick = window.__realPick; return window.__layerPicks; }"""
    )
    assert picks == []
    assert not page.evaluate("() => window.cim.panels.isVisible('sensor')")


@pytest.mark.browser
def test_filters_by_department_and_property(opened: tuple[Any, PageLog], world: World) -> None:
    page, _ = opened
    everyone = sorted(world.ds.values())
    visible = "() => window.cim.sensors.visibleIds().sort((a, b) => a - b)"
    assert page.evaluate(visible) == everyone
    police = page.locator('#sensorDeptList input[data-value="police"]')
    police.uncheck()
    assert page.evaluate(visible) == sorted([world.ds["河道水位"], world.ds["<b>桥</b>"]])
    police.check()
    level = page.locator('#sensorPropList input[data-value="water level"]')
    level.uncheck()
    assert page.evaluate(visible) == [world.ds["噪声"]]
    level.check()
    assert page.evaluate(visible) == everyone


@pytest.mark.browser
def test_alarm_list_flies_to_the_sensor(opened: tuple[Any, PageLog], world: World) -> None:
    page, _ = opened
    ds = world.ds["噪声"]
    page.locator(f'#sensorAlarmList button[data-ds="{ds}"]').click()
    page.locator("#sensorPanel").wait_for(state="visible", timeout=3000)
    assert page.locator("#sensorTitle").inner_text() == "噪声"
    page.keyboard.press("Escape")


@pytest.mark.browser
def test_switching_the_layer_off_closes_the_stream(
    opened: tuple[Any, PageLog], world: World
) -> None:
    page, _ = opened
    page.locator("#layer-sensors").uncheck()
    state = page.evaluate(
        "() => ({source: window.cim.sensors.source, points: window.cim.sensors.points.length,"
        " legend: window.cim.legend.entries.has('sensors')})"
    )
    assert state == {"source": None, "points": 0, "legend": False}
    page.locator("#layer-sensors").check()
    page.wait_for_function("() => window.cim.sensors.graphics.size === 3", timeout=10_000)
    # English labels after a language switch
    page.locator("#langBtn").click()
    assert "Alarm" in page.locator("#legend").inner_text()
    assert page.locator("#sensorFilters h2").inner_text() == "Sensors"
    page.locator("#langBtn").click()
