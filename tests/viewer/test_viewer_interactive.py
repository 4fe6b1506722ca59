"""Interactive frames (viewer/src/interactive.js) in headless chromium on the sample city:
the frame answering a tool's input is drawn at a reduced level (fewer building tiles, a
lower resolution), picks made while it is on the screen still see every building, and
the full-quality frame follows once the inputs stop.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from viewer_helpers import FIND_ANY_BUILDING_JS, PERFORMANCE_MODE_JS, wait_loaded

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: JS: the state of the interactive frames and of the first building tileset
STATE_JS = """() => {
  const i = window.cim.interactive, v = window.cim.viewer, t = window.cim.tilesets.l2;
  return { level: i.level, onScreen: i.onScreen, saved: Boolean(i.saved), scale: v.resolutionScale,
           sse: t.maximumScreenSpaceError, stats: { ...i.stats }, frames: i.frames.slice() }; }"""

#: JS: the height of pickPosition at a window position (null: nothing there)
HEIGHT_JS = """([x, y]) => { const C = window.Cesium, s = window.cim.viewer.scene;
  const p = s.pickPosition(new C.Cartesian2(x, y));
  return p ? C.Cartographic.fromCartesian(p).height : null; }"""

#: JS: draw a frame now and wait for it
RENDER_JS = """() => new Promise((done) => { const s = window.cim.viewer.scene;
  const off = s.postRender.addEventListener(() => { off(); done(); }); s.requestRender(); })"""


@pytest.fixture(scope="module")
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1024, "height": 700}, locale="zh-CN")
    context.add_init_script(PERFORMANCE_MODE_JS)
    pg = context.new_page()
    pg.goto(live_server.url, wait_until="domcontentloaded")
    wait_loaded(pg, timeout_s=120)
    pg.evaluate(
        """() => { const c = window.cim, C = window.Cesium, [lon, lat, h] = c.manifest.centre;
             c.viewer.camera.lookAt(C.Cartesian3.fromDegrees(lon, lat, h),
               new C.HeadingPitchRange(0, C.Math.toRadians(-45), 700));
             c.viewer.camera.lookAtTransform(C.Matrix4.IDENTITY);
             c.viewer.scene.requestRender(); }"""
    )
    pg.wait_for_timeout(100)
    wait_loaded(pg, timeout_s=120)
    yield pg
    context.close()


def test_reduced_frame_then_full_quality(page: Any) -> None:
    full = page.evaluate(STATE_JS)
    assert full["saved"] is False and full["level"] == 0
    # frames are timed to the GPU having drawn them (WebGL2 fences)
    page.evaluate(RENDER_JS)
    page.wait_for_function("() => window.cim.interactive.frames.length > 0", timeout=60000)
    # a tool's input, with the controller pinned at its lowest level (as on a slow
    # machine) and the full frame held back until the checks are done
    page.evaluate(
        """() => { const i = window.cim.interactive, c = i.controller;
             c.choose = () => c.levels.length - 1; c.level = c.choose();
             c.idleMs = () => 600000; }"""
    )
    bld = page.wait_for_function(
        f"() => {{ window.cim.viewer.scene.requestRender(); return ({FIND_ANY_BUILDING_JS})(); }}",
        timeout=90000,
        polling=500,
    ).json_value()
    roof_full = page.evaluate(HEIGHT_JS, [bld["x"], bld["y"]])
    assert roof_full is not None
    page.click("#toolbtn-swipe")
    page.evaluate("() => window.cim.tools.get('swipe').api.move(0.4 * window.innerWidth)")
    page.wait_for_function("() => window.cim.interactive.onScreen > 0", timeout=60000)
    reduced = page.evaluate(STATE_JS)
    level = page.evaluate("() => window.cim.interactive.controller.levels.at(-1)")
    assert reduced["saved"] is True and reduced["level"] == reduced["onScreen"] > 0
    assert reduced["scale"] == pytest.approx(full["scale"] * level["scale"])
    assert reduced["sse"] == pytest.approx(full["sse"] * level["sse"])
    # a pick on the reduced frame still finds the building's roof (the full detail)
    roof = page.evaluate(HEIGHT_JS, [bld["x"], bld["y"]])
    assert roof == pytest.approx(roof_full, abs=1.0)
    assert page.evaluate("window.cim.interactive.stats.exactPicks") >= 1
    # the full quality comes back once the inputs stop
    page.evaluate(
        "() => { const i = window.cim.interactive; i.controller.idleMs = () => 300; i.schedule(); }"
    )
    page.wait_for_function(
        "() => !window.cim.interactive.saved && window.cim.interactive.onScreen === 0",
        timeout=60000,
    )
    after = page.evaluate(STATE_JS)
    assert after["scale"] == full["scale"] and after["sse"] == full["sse"]
    assert after["stats"]["restored"] >= 1
    page.click("#toolbtn-swipe")
