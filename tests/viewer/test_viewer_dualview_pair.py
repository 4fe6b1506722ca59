"""The dual view's two scenes during input (viewer/src/interactive.js addView): the right
view's terrain is coarsened with the left one's level, its frame drawn with the left one's
counts in the time the level is chosen from, and a frame it asks for on its own (tiles
loaded) waits while the GPU still has frames to draw, while a frame the page asks for
(the camera followed, a layer switched) is drawn at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from viewer_helpers import performance_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: JS: the right view's resolution scale and terrain error, the left one's terrain error
DUAL_JS = """() => { const d = window.cim.tools.get('dualview').api.second();
  return { scale: d.resolutionScale, globe: d.scene.globe.maximumScreenSpaceError,
           left: window.cim.viewer.scene.globe.maximumScreenSpaceError }; }"""

#: JS: pin the interactive frames at their lowest level, the full frame held back
PIN_JS = """() => { const i = window.cim.interactive, c = i.controller;
  c.choose = () => c.levels.length - 1; c.level = c.choose(); c.idleMs = () => 600000; }"""
UNPIN_JS = """() => { const i = window.cim.interactive, c = i.controller;
  delete c.choose; delete c.idleMs; c.level = c.choose(); i.restore(); }"""

#: JS: the right view's terrain and copied tilesets have loaded
RIGHT_LOADED_JS = """() => { const d = window.cim.tools.get('dualview').api;
  return d.second().scene.globe.tilesLoaded && Object.values(d.copies())
    .every((c) => !(c instanceof window.Cesium.Cesium3DTileset) || c.tilesLoaded); }"""

#: JS: count the right view's frames from now on (window.__rightDrawn)
COUNT_RIGHT_JS = """() => { window.__rightDrawn = 0;
  window.cim.tools.get('dualview').api.second().scene.postRender.addEventListener(
    () => { window.__rightDrawn += 1; }); }"""


@pytest.fixture(scope="module")
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    with performance_page(browser, live_server.url) as pg:
        yield pg


def test_dual_view_pair_during_input(page: Any) -> None:
    page.click("#toolbtn-dualview")
    page.wait_for_function("() => document.getElementById('dual-l2')", timeout=120000)
    page.evaluate("() => window.cim.interactive.restore()")  # opening it was an input
    full = page.evaluate(DUAL_JS)
    page.evaluate(PIN_JS)
    try:
        page.evaluate("() => { window.cim.interactive.frames.length = 0; }")
        page.uncheck("#dual-l2")  # an input on the tool: both views drawn at the lowest level
        level = page.evaluate("() => window.cim.interactive.controller.levels.at(-1)")
        reduced = page.evaluate(DUAL_JS)
        assert reduced["scale"] == pytest.approx(full["scale"] * level["scale"])
        # the right view's terrain is coarsened as the left one's
        assert reduced["globe"] == pytest.approx(full["globe"] * level["globe"])
        assert reduced["left"] == pytest.approx(full["left"] * level["globe"])
        # the frame answering it is timed until the right view's frame drawn with it is
        # done too: the level is chosen for the pair
        page.wait_for_function(
            "() => window.cim.interactive.frames.some((f) => f.views >= 1)", timeout=30000
        )

        # a frame the right view asks for on its own (its tiles loaded) waits while the
        # GPU has frames to draw; one the page asks for is drawn at once (once its tiles
        # have loaded: CesiumJS asks for frames of its own meanwhile)
        page.wait_for_function(RIGHT_LOADED_JS, timeout=120000, polling=200)
        # (a camera that moved is drawn whatever asked for the frame: CesiumJS adjusts it
        # to the terrain as tiles arrive; held still here)
        page.evaluate(
            "() => { const v = window.cim.tools.get('dualview').api.second().scene._view;"
            " v.checkForCameraUpdates = () => false; }"
        )
        page.wait_for_timeout(300)
        page.evaluate(COUNT_RIGHT_JS)
        page.evaluate(
            """() => { const i = window.cim.interactive; i.busy = () => true;
                 window.__waited = i.stats.waited;
                 window.cim.tools.get('dualview').api.second().scene.frameState.afterRender
                   .push(() => true); }"""
        )
        page.wait_for_function(
            "() => window.cim.interactive.stats.waited > window.__waited", timeout=10000
        )
        page.wait_for_timeout(300)  # a couple dozen animation frames
        drawn = page.evaluate("() => window.__rightDrawn")
        assert drawn == 0, f"the right view's frame waits ({drawn} drawn)"
        page.evaluate("() => window.cim.tools.get('dualview').api.second().scene.requestRender()")
        page.wait_for_function("() => window.__rightDrawn === 1", timeout=10000)
        # the GPU done: a frame it asks for is drawn
        page.evaluate(
            """() => { const i = window.cim.interactive; delete i.busy;
                 window.cim.tools.get('dualview').api.second().scene.frameState.afterRender
                   .push(() => true); }"""
        )
        page.wait_for_function("() => window.__rightDrawn >= 2", timeout=10000)
    finally:
        page.evaluate(
            "() => { delete window.cim.interactive.busy; delete window.cim.tools.get('dualview')"
            ".api.second().scene._view.checkForCameraUpdates; }"
        )
        page.evaluate(UNPIN_JS)
    back = page.evaluate(DUAL_JS)
    assert back == full
    page.click("#toolbtn-dualview")
    assert page.evaluate("window.cim.tools.active") is None
