"""The old town at street level: L3 models replace the L2 blocks in the viewer.

Against the session's sample build (its ``[l3] district`` is the old town): the
viewer loads the one L2+L3 stream, the camera goes down to street level by the drum
tower and a temple, the L3 tiles load, a picked building carries the L3 properties
(roof form, eave and ridge) with the same id as its L2 block, and the theme applies.
Screenshots and the load time are saved in test-artifacts/.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from viewer_helpers import FIND_ANY_BUILDING_JS, PERFORMANCE_MODE_JS, PageLog, wait_loaded

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: street-level views: (name, local metres from the drum tower, camera height, heading)
VIEWS = [("drum-tower", (0.0, -70.0), 14.0, 0.0), ("huayan-temple", (-555.0, 195.0), 18.0, 0.0)]


@pytest.fixture(scope="module")
def opened(browser: Any, live_server: Any, viewer_city: Any) -> Iterator[tuple[Any, PageLog]]:
    manifest = json.loads((viewer_city.output / "manifest.json").read_text(encoding="utf-8"))
    if "l3" not in manifest.get("layers", {}):
        pytest.skip(f"the {viewer_city.kind} city has no L3 district")
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    context.add_init_script(PERFORMANCE_MODE_JS)
    page = context.new_page()
    log = PageLog(live_server.url)
    log.attach(page)
    page.goto(live_server.url, wait_until="domcontentloaded", timeout=180_000)
    wait_loaded(page, timeout_s=180)
    yield page, log
    context.close()


#: JS: the first canvas pixel from the centre showing an L3 model (a feature with a
#: roof form), as {x, y, id}, or null
FIND_L3_JS = FIND_ANY_BUILDING_JS.replace(
    "if (id) return {x, y, id};",
    "const f = scene.pick(new C.Cartesian2(x, y));"
    " if (id && f && f.getProperty && f.getProperty('roof_form')) return {x, y, id};",
)


def _go(page: Any, local: tuple[float, float], height: float, heading: float) -> None:
    """Put the camera at ``local`` metres from the drum tower, ``height`` above ground."""
    from cim.crs import get_transformer
    from cim.sample import CRS, ORIGIN

    lon, lat = get_transformer(CRS, "EPSG:4326").transform(
        ORIGIN[0] + local[0], ORIGIN[1] + local[1]
    )
    page.evaluate(
        """([lon, lat, height, heading]) => {
            const C = Cesium, v = window.cim.viewer;
            const ground = window.cim.manifest.centre[2];
            v.camera.setView({
              destination: C.Cartesian3.fromDegrees(lon, lat, ground + height),
              orientation: {heading: C.Math.toRadians(heading),
                            pitch: C.Math.toRadians(-8), roll: 0},
            });
            v.scene.requestRender();
        }""",
        [float(lon), float(lat), height, heading],
    )


#: JS: L3 tiles whose content is loaded (the stream is the "l2" layer's tileset)
L3_READY_JS = """() => {
  const ts = window.cim.tilesets.l2;
  if (!ts || !ts.root) return 0;
  let n = 0;
  const stack = [ts.root];
  while (stack.length) {
    const t = stack.pop();
    const url = t.contentReady && t.content ? String(t.content.url || '') : '';
    if (url.includes('/l3/content/')) n++;
    stack.push(...t.children);
  }
  return n;
}"""


def _settle(page: Any, timeout_s: float = 300.0) -> dict[str, float | None]:
    """Wait until L3 tiles are loaded at this view, then (within the time left) until
    the whole view is; returns the seconds to the first L3 tile and to loaded."""
    from viewer_helpers import LOADED_JS

    t0 = time.perf_counter()
    first = loaded = None
    while time.perf_counter() - t0 < timeout_s:
        page.wait_for_timeout(500)
        if first is None and page.evaluate(L3_READY_JS) > 0:
            first = time.perf_counter() - t0
        if first is not None and page.evaluate(LOADED_JS) is True:
            loaded = time.perf_counter() - t0
            break
        if first is not None and time.perf_counter() - t0 > first + 60:
            break  # L3 is in; a slow machine may take long for the rest
    return {"first_l3_s": first, "loaded_s": loaded}


def test_street_level_loads_l3_models(opened: tuple[Any, PageLog], artifacts: Path) -> None:
    page, log = opened
    timings = {}
    for name, local, height, heading in VIEWS:
        _go(page, local, height, heading)
        timings[name] = _settle(page)
        page.screenshot(path=str(artifacts / f"viewer-l3-{name}.png"))
        assert timings[name]["first_l3_s"] is not None, f"{name}: no L3 tile loaded"
    (artifacts / "viewer-l3-timings.json").write_text(json.dumps(timings, indent=1))
    print(f"street-level load times: {timings}")
    assert any("/tiles/l3/content/" in u for u in log.requests)
    assert any("/tiles/l3/city.json" in u for u in log.requests)
    assert not any(u.endswith("/tiles/l3/tileset.json") for u in log.requests)
    assert log.errors == []


def test_picked_model_has_l3_properties(opened: tuple[Any, PageLog]) -> None:
    page, _ = opened
    _go(page, *VIEWS[0][1:])
    _settle(page, timeout_s=120)
    hit = None
    for _ in range(60):  # the models may still be coming in on a slow machine
        hit = page.evaluate(FIND_L3_JS)
        if hit:
            break
        page.wait_for_timeout(2000)
    assert hit, "no L3 model found at street level"
    props = page.evaluate(
        """([x, y]) => {
            const f = window.cim.viewer.scene.pick(new Cesium.Cartesian2(x, y));
            return {id: f.getProperty('id'), form: f.getProperty('roof_form'),
                    ridge: f.getProperty('ridge_height'), eave: f.getProperty('eave_height')};
        }""",
        [hit["x"], hit["y"]],
    )
    assert props["id"] == hit["id"]
    assert props["form"], "the picked feature is an L2 block, not an L3 model"
    assert props["ridge"] >= props["eave"] - 0.01
    page.mouse.click(hit["x"], hit["y"])
    page.wait_for_selector("#infoPanel:not([hidden])", timeout=10000)
    assert page.text_content('#infoTable td[data-key="id"]') == hit["id"]
