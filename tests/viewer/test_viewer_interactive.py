"""Interactive frames (viewer/src/interactive.js) in headless chromium on the sample city:
the frame answering a tool's input is drawn at a reduced level (fewer building tiles, a
lower resolution), picks made while it is on the screen still see every building, the
full-quality frame follows once the inputs stop, and the dual view's right side follows
the level. The shader warm-up after load (viewer/src/warm.js) compiles what the tools
switch on, offscreen.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from viewer_helpers import FIND_ANY_BUILDING_JS, PERFORMANCE_MODE_JS, wait_loaded

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: JS: the state of the interactive frames and of the first building tileset
STATE_JS = """() => {
  const i = window.cim.interactive, v = window.cim.viewer, t = window.cim.tilesets.l2;
  const pipes = window.cim.tree.get('pipelines')?.object;
  return { level: i.level, onScreen: i.onScreen, saved: Boolean(i.saved), scale: v.resolutionScale,
           sse: t.maximumScreenSpaceError, pipesSse: pipes ? pipes.maximumScreenSpaceError : null,
           stats: { ...i.stats }, frames: i.frames.slice() }; }"""

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


#: JS: the view drawn and what the last frame selected (the L2 tiles, the terrain tiles)
SELECTION_JS = """() => { const s = window.cim.viewer.scene, t = window.cim.tilesets.l2;
  return { view: s._defaultView === s._view && (!window.__view || s._defaultView === window.__view),
           tiles: t._selectedTiles.map((x) => x._header?.content?.uri ?? ''),
           terrain: s.globe._surface._tilesRenderedThisFrame.size }; }"""

#: JS: the dual view's right side: its resolution scale and its L2 copy's error
DUAL_JS = """() => { const d = window.cim.tools.get('dualview').api;
  return { scale: d.second().resolutionScale, sse: d.copies().l2.maximumScreenSpaceError }; }"""

#: JS: the shader cache's keys (each names a program's defines and sources)
SHADER_KEYS_JS = "() => Object.keys(window.cim.viewer.scene.context.shaderCache._shaders)"


def test_warm_up_compiles_the_tools_shaders_offscreen(page: Any) -> None:
    page.wait_for_function(
        "() => window.cim.warmer.queue.length === 0 && window.cim.warmer.done.length > 0",
        timeout=240000,
        polling=500,
    )
    done = {d["name"]: d for d in page.evaluate("window.cim.warmer.done")}
    expected = {"sketch", "clip plane", "clip box kept", "clip box cut out", "massing"}
    assert expected | {"shadows", "viewshed", "excavation"} <= set(done), done
    for name in expected:
        assert done[name]["programs"] > 0, done  # each compiled programs of its own
    # a warm-up frame leaves the view, the tiles selected (what CPU picks test) and the
    # picture's framebuffer as they were
    before = page.evaluate(SELECTION_JS)
    page.evaluate(
        "() => { window.__view = window.cim.viewer.scene._defaultView;"
        " window.cim.warmer.render(); }"
    )
    after = page.evaluate(SELECTION_JS)
    assert after == before and after["view"] is True
    # what it compiled stays in the shader cache after frames drawn without it (the
    # clipping box's programs, of the coarse tiles it drew: tiles of other materials, and
    # the old town's L3 models, compile theirs at the first use)
    for _ in range(2):
        page.evaluate(RENDER_JS)
    assert page.evaluate("window.cim.tilesets.l2.clippingPlanes.enabled") is False
    keys = page.evaluate(SHADER_KEYS_JS)
    box = [k for k in keys if "CLIPPING_PLANES_LENGTH 6," in k]
    union = re.compile(r"[,:]UNION_CLIPPING_REGIONS[,:]")  # the define, not the source's #ifdef
    assert [k for k in box if union.search(k)]  # the box kept: outside any plane is cut
    assert [k for k in box if not union.search(k)]  # the box cut out
    assert [k for k in keys if "CLIPPING_PLANES_LENGTH 1," in k]  # the plane
    # the sun shadows' programs of terrain tiles in fog (a view's far tiles) too: the
    # warm-up's coarse tiles are near the camera, out of the fog, unless drawn fogged
    fog = re.compile(r"(?<![A-Z_])FOG[,:]")
    for kind in ("castShadow", "receiveShadow"):
        assert [k for k in keys if k.startswith(kind) and fog.search(k)], kind


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
    # the other tilesets too: the pipelines under the ground (most of a lowest-level frame)
    assert full["pipesSse"] is not None, "the sample city's pipelines"
    assert reduced["pipesSse"] == pytest.approx(full["pipesSse"] * level["sse"])
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
    assert after["pipesSse"] == full["pipesSse"]
    assert after["stats"]["restored"] >= 1
    page.click("#toolbtn-swipe")


def test_dual_view_follows_the_level(page: Any) -> None:
    page.click("#toolbtn-dualview")
    page.wait_for_function("() => document.getElementById('dual-l2')", timeout=120000)
    page.evaluate("() => window.cim.interactive.restore()")  # opening it was an input
    full = page.evaluate(DUAL_JS)
    # an input on the tool (a layer of the right view switched off) with the controller
    # at its lowest level: the right view is drawn at that level too
    page.evaluate(
        """() => { const i = window.cim.interactive, c = i.controller;
             c.choose = () => c.levels.length - 1; c.level = c.choose();
             c.idleMs = () => 600000; }"""
    )
    page.uncheck("#dual-l2")
    level = page.evaluate("() => window.cim.interactive.controller.levels.at(-1)")
    reduced = page.evaluate(DUAL_JS)
    assert reduced["scale"] == pytest.approx(full["scale"] * level["scale"])
    assert reduced["sse"] == pytest.approx(full["sse"] * level["sse"])
    page.evaluate("() => window.cim.interactive.restore()")
    back = page.evaluate(DUAL_JS)
    assert back == full
    # just after an input, with a full frame too slow for it (software WebGL): the
    # frames of tiles loading are not put off while the right view is open (its camera
    # follows this scene's frames: both would wait), they are once it is closed
    page.evaluate(
        """() => { const i = window.cim.interactive, c = i.controller;
             c.estimate = () => 3000; i.noteInput(); }"""
    )
    try:
        assert page.evaluate("() => window.cim.interactive.deferNow()") is False
        page.click("#toolbtn-dualview")
        assert page.evaluate("window.cim.tools.active") is None
        page.evaluate(
            "() => { window.cim.interactive.restore(); window.cim.interactive.noteInput(); }"
        )
        assert page.evaluate("() => window.cim.interactive.deferNow()") is True
    finally:
        page.evaluate(
            "() => { const c = window.cim.interactive.controller; delete c.estimate;"
            " delete c.idleMs; delete c.choose; }"
        )


#: JS: whether the full quality is held back (reduced settings kept) and the holds counted
HELD_JS = """() => { const i = window.cim.interactive;
  return { saved: Boolean(i.saved), held: i.stats.held }; }"""


def test_full_frame_held_while_another_input_is_likely(page: Any) -> None:
    """The pointer resting on a compass button just clicked (the next click is likely):
    the full-quality frame waits, so that click is not queued behind it; it comes once
    the pointer leaves the controls."""
    page.evaluate("() => window.cim.interactive.restore()")
    # the lowest level, a full frame that does not fit (as on software WebGL), a short pause
    page.evaluate(
        """() => { const i = window.cim.interactive, c = i.controller;
             c.choose = () => c.levels.length - 1; c.level = c.choose();
             c.estimate = () => 3000; c.idleMs = () => 300; }"""
    )
    held = page.evaluate(HELD_JS)["held"]
    page.click("#rotateRight")
    # the pause is over (once the rotation's camera move has ended) and the frame held
    page.wait_for_function(
        "(n) => window.cim.interactive.stats.held > n", arg=held, timeout=30000, polling=100
    )
    assert page.evaluate(HELD_JS)["saved"] is True
    # the pointer on the map: no input expected, the full quality comes back
    page.mouse.move(512, 400)
    page.wait_for_function("() => !window.cim.interactive.saved", timeout=30000)
    page.click("#rotateLeft")
    page.mouse.move(512, 400)
    page.wait_for_function("() => !window.cim.interactive.saved", timeout=30000)
