"""Pipelines in headless chromium: the operator switches to the underground view, clicks
a pipe (its attributes are shown as text, even markup), runs a burst query and sees
the burst pipe, the valves to close and the pipes cut off highlighted in the tiles.

Runs against its own small build (a water main with valves, a drainage line), so it
does not need the sample city. Slow: a CesiumJS page under software WebGL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from viewer_helpers import PERFORMANCE_MODE_JS, LiveServer, PageLog

from cim.crs import get_transformer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ORIGIN = (440300.0, 4439750.0)
EVIL = "<img src=x onerror=window.__pwned=1>"
POINTS = [
    ("S", 0, "水厂"),
    ("V1", 30, "阀门"),
    ("N1", 60, ""),
    ("N2", 90, ""),
    ("V2", 120, "阀门"),
    ("N3", 150, ""),
]
SEGMENTS = [("W1", "S", "V1"), ("W2", "V1", "N1"), ("W3", "N1", "N2"), ("W4", "N2", "V2"),
            ("W5", "V2", "N3")]  # fmt: skip

#: layers/pipelines.js ROLE_COLOURS
BURST, VALVE, CUT = "#ff1744", "#00e5ff", "#9e9e9e"


def _build(root: Path) -> Path:
    from cim.build import build_project

    data = root / "data"
    data.mkdir()
    rows = ["点号,x,y,地面高程,埋深,附属物,管线类型"]
    rows += [f"{p},{x + ORIGIN[0]},{ORIGIN[1]},1000.00,1.5,{f},给水" for p, x, f in POINTS]
    (data / "points.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    rows = ["管线编号,起点点号,终点点号,起点埋深,终点埋深,管径,材质,管线类型"]
    rows += [f"{i},{a},{b},1.5,1.5,DN600,{EVIL},给水" for i, a, b in SEGMENTS]
    (data / "segments.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (root / "city.toml").write_text(
        '[city]\nname = "t"\n[pipelines]\npoints = "data/points.csv"\n'
        'segments = "data/segments.csv"\ncrs = "EPSG:4547"\n',
        encoding="utf-8",
    )
    return build_project(root / "city.toml", progress=False).output


@pytest.fixture(scope="module")
def page(
    tmp_path_factory: pytest.TempPathFactory, chromium: Any
) -> Iterator[tuple[Any, PageLog, str]]:
    from server import create_app

    output = _build(tmp_path_factory.mktemp("pipes_viewer"))
    with LiveServer(create_app({"OUTPUT_DIR": output})) as srv:
        context = chromium.new_context(viewport={"width": 1000, "height": 700}, locale="zh-CN")
        try:  # the session's chromium outlives this module: its context is closed
            context.add_init_script(PERFORMANCE_MODE_JS)
            pg = context.new_page()
            log = PageLog(srv.url)
            log.attach(pg)
            pg.goto(srv.url, wait_until="domcontentloaded")
            pg.wait_for_function("() => window.cim && window.cim.ready && window.cim.pipelines",
                                 timeout=180_000)  # fmt: skip
            yield pg, log, srv.url
        finally:
            context.close()


def _lonlat(x: float) -> list[float]:
    lon, lat = get_transformer("EPSG:4547").transform(x + ORIGIN[0], ORIGIN[1])
    return [float(lon), float(lat)]


#: JS: a canvas pixel showing a pipe of the pipelines tileset, as {x, y, id}, or null
FIND_PIPE_JS = """() => {
  const c = window.cim, C = window.Cesium, scene = c.viewer.scene, canvas = scene.canvas;
  const cx = canvas.clientWidth / 2, cy = canvas.clientHeight / 2;
  for (let r = 0; r <= 240; r += 6) {
    const steps = r === 0 ? 1 : Math.max(8, Math.round(r / 6));
    for (let k = 0; k < steps; k++) {
      const a = (2 * Math.PI * k) / steps, x = cx + r * Math.cos(a), y = cy + r * Math.sin(a);
      if (document.elementFromPoint(x, y) !== canvas) continue;
      const p = scene.pick(new C.Cartesian2(x, y));
      if (p instanceof C.Cesium3DTileFeature && p.tileset === c.pipelines.tileset
          && p.getProperty('kind') === 'pipe') return {x, y, id: p.getProperty('id')};
    }
  }
  return null;
}"""


def test_underground_click_and_burst(page: tuple[Any, PageLog, str]) -> None:
    pg, log, url = page
    pg.click("#pipelines-underground")
    assert pg.evaluate("() => window.cim.viewer.scene.globe.translucency.enabled") is True
    lon, lat = _lonlat(75)
    pg.evaluate(
        """([lon, lat]) => { const C = window.Cesium, v = window.cim.viewer;
        v.camera.setView({destination: C.Cartesian3.fromDegrees(lon, lat, 1020),
          orientation: {heading: 0, pitch: C.Math.toRadians(-90), roll: 0}});
        v.scene.requestRender(); }""",
        [lon, lat],
    )
    pg.wait_for_function("() => window.cim.pipelines.tileset.tilesLoaded", timeout=120_000)
    hit = None
    for _ in range(20):  # rendering catches up with the camera
        hit = pg.evaluate(FIND_PIPE_JS)
        if hit:
            break
        pg.wait_for_timeout(500)
    assert hit, "no pipe on screen above the water main"
    pg.mouse.click(hit["x"], hit["y"])
    panel = pg.locator("#pipelines-panel")
    panel.get_by_text(hit["id"], exact=True).wait_for(timeout=15_000)
    # markup in an attribute is shown as text and never runs
    assert EVIL in panel.inner_text()
    assert "<img" not in panel.inner_html()
    assert pg.evaluate("() => window.__pwned") is None
    # burst analysis of the clicked pipe: the same answer as the API, highlighted
    pg.click('#pipelines-panel button[data-query="burst"]')
    pg.wait_for_function("() => window.cim.pipelines.lastResult", timeout=15_000)
    shown = pg.evaluate("() => window.cim.pipelines.lastResult")
    api = requests.get(f"{url}api/pipelines/segments/{hit['id']}/burst", timeout=30).json()
    assert shown == api and api["valves"]
    assert pg.evaluate("(id) => window.cim.pipelines.colourOf(id)", hit["id"]) == BURST
    for valve in api["valves"]:
        assert pg.evaluate("(id) => window.cim.pipelines.colourOf(id)", valve) == VALVE
    for cut in api["cut_off"]:
        assert pg.evaluate("(id) => window.cim.pipelines.colourOf(id)", cut) == CUT
    assert not log.errors, json.dumps(log.errors, ensure_ascii=False)[:2000]
