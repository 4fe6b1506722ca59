"""Pipelines in headless chromium on the session's sample city, in one page load: the
underground mode turns the globe translucent, a click on a water main under a street
opens its attributes, and its burst analysis (爆管分析) highlights the burst pipe and the
valves to close in the tiles, as the API answers.

The cheap companion of test_viewer_pipelines.py (slow: its own build, markup in the
attributes, the cut-off pipes): no build of its own, one page that opens right above the
pipe (the URL hash's camera) with the buildings switched off (``off=l2,l3``), no wait for
the home view, and a handful of picks where the pipe is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import requests
from viewer_helpers import PERFORMANCE_MODE_JS, PageLog

pytestmark = pytest.mark.browser

#: layers/pipelines.js ROLE_COLOURS
BURST, VALVE = "#ff1744", "#00e5ff"

#: JS: a canvas pixel showing the pipe ``id`` of the pipelines tileset, at the centre (the
#: camera looks straight down at it) or on two small rings, as {x, y}, or null. Every
#: pick renders: under software WebGL a wide search costs minutes.
FIND_PIPE_JS = """(id) => {
  const c = window.cim, C = window.Cesium, scene = c.viewer.scene, canvas = scene.canvas;
  const cx = canvas.clientWidth / 2, cy = canvas.clientHeight / 2;
  for (const r of [0, 6, 14]) {
    const steps = r === 0 ? 1 : 8;
    for (let k = 0; k < steps; k++) {
      const a = (2 * Math.PI * k) / steps, x = cx + r * Math.cos(a), y = cy + r * Math.sin(a);
      if (document.elementFromPoint(x, y) !== canvas) continue;
      const p = scene.pick(new C.Cartesian2(x, y));
      if (p instanceof C.Cesium3DTileFeature && p.tileset === c.pipelines.tileset
          && String(p.getProperty('id')) === id) return {x, y};
    }
  }
  return null;
}"""


@pytest.fixture(scope="module")
def target(viewer_city: Any) -> dict[str, Any]:
    """A water main of the sample city whose burst is closed by valves: id, camera spot."""
    from cim.errors import NotFoundError
    from cim.pipelines import network_of

    try:
        net = network_of(viewer_city.output)
    except NotFoundError:
        pytest.skip("the city under test has no pipelines")
    seg = net.segments
    length = np.linalg.norm(seg.b[:, :2] - seg.a[:, :2], axis=1)
    for r in np.flatnonzero((seg.utility == "water") & (length > 20.0)):
        burst = net.burst(str(seg.ids[r]))
        if burst["closable"] and burst["valves"]:
            ((lon, lat),) = net.to_lonlat((seg.a[r, :2] + seg.b[r, :2]) / 2.0)
            ground = net.point(str(seg.start[r]))["ground_h"]
            return {"id": str(seg.ids[r]), "view": [lon, lat, ground + 25.0, 0.0, -90.0, 0.0]}
    pytest.skip("no water main with closing valves in the city under test")


@pytest.fixture(scope="module")
def page(browser: Any, live_server: Any, target: dict[str, Any]) -> Iterator[tuple[Any, PageLog]]:
    context = browser.new_context(viewport={"width": 800, "height": 600}, locale="zh-CN")
    context.add_init_script(PERFORMANCE_MODE_JS)
    pg = context.new_page()
    log = PageLog(live_server.url)
    log.attach(pg)
    view = ",".join(f"{v:.7f}" for v in target["view"])
    pg.goto(f"{live_server.url}#v={view}&off=l2,l3", wait_until="domcontentloaded")
    # the pipelines layer is enough: the view need not finish loading
    pg.wait_for_function("() => window.cim && window.cim.ready && window.cim.pipelines",
                         timeout=120_000)  # fmt: skip
    yield pg, log
    context.close()


#: JS: draw a full-quality frame now and wait for it; how many draw commands the pipelines
#: tileset gave that frame (its render pass: counted around its update), whether it is
#: shown and why, and the layer tree's checkbox
DRAWN_JS = """() => new Promise((done) => {
  const c = window.cim, s = c.viewer.scene, p = c.pipelines.tileset;
  // the compute commands of the environment maps (one queue for every tileset) draw no pipe
  const draws = (cmd) => cmd instanceof window.Cesium.DrawCommand;
  if (!p.cimCount) {
    const update = p.update.bind(p);
    p.cimCount = { last: 0 };
    p.update = (fs) => { const n = fs.commandList.length; update(fs);
                         p.cimCount.last = fs.commandList.slice(n).filter(draws).length; };
  }
  c.interactive.restore();
  p.cimCount.last = 0;
  const off = s.postRender.addEventListener(() => { off();
    done({ commands: p.cimCount.last, show: p.show, why: c.pipelines.seen,
           checkbox: c.tree.get('pipelines').getShow() }); });
  s.requestRender(); })"""

#: JS: dig a pit with the clip tool: a square of half side ``half`` m around lon, lat
DIG_JS = """([lon, lat, ground, half]) => { const c = window.cim;
  const dLat = half / 111320, dLon = dLat / Math.cos((lat * Math.PI) / 180);
  c.tools.activate('clip');
  const api = c.tools.get('clip').api;
  api.state.mode = 'excavate';
  api.state.ring = [[-1, -1], [1, -1], [1, 1], [-1, 1]].map(([x, y]) =>
    [lon + x * dLon, lat + y * dLat, ground]);
  return api.dig(); }"""


def test_pipes_drawn_only_where_they_can_be_seen(
    page: tuple[Any, PageLog], target: dict[str, Any]
) -> None:
    """Under the opaque terrain the pipes cost frames for nothing: they are left out, and
    drawn in an excavation and in the underground mode; the checkbox keeps the user's choice."""
    pg, _ = page
    # the pipe's tile loads while the tileset is hidden (drawn at once when revealed)
    pg.wait_for_function(
        "(id) => window.cim.pipelines.colourOf(id) !== null", arg=target["id"], timeout=60_000
    )
    hidden = {"commands": 0, "show": False, "why": None, "checkbox": True}
    assert pg.evaluate(DRAWN_JS) == hidden
    # 开挖: an excavation cuts the terrain above the pipe
    lon, lat, above = target["view"][:3]
    assert pg.evaluate(DIG_JS, [lon, lat, above - 25.0, 15.0]) is True
    pg.wait_for_function(
        """() => { const s = window.cim.viewer.scene; s.requestRender();
             return !!s.globe.clippingPolygons.clippingTexture; }""",
        timeout=30_000,
    )
    dug = pg.evaluate(DRAWN_JS)
    assert dug["show"] and dug["why"] == "globe cut" and dug["commands"] > 0, dug
    pg.evaluate("() => window.cim.tools.deactivate()")  # the pit is filled again
    assert pg.evaluate(DRAWN_JS) == hidden
    # the underground mode (the panel's checkbox)
    pg.locator("#pipelines-underground").evaluate("(box) => box.click()")
    under = pg.evaluate(DRAWN_JS)
    assert under["show"] and under["why"] == "underground" and under["commands"] > 0, under
    # the layer tree's checkbox: the user's choice, apart from what hides the pipes
    pg.evaluate("() => window.cim.tree.setShow('pipelines', false)")
    assert pg.evaluate(DRAWN_JS) == {**hidden, "why": "underground", "checkbox": False}
    pg.evaluate("() => window.cim.tree.setShow('pipelines', true)")
    assert pg.evaluate(DRAWN_JS)["commands"] > 0
    pg.locator("#pipelines-underground").evaluate("(box) => box.click()")  # off again
    assert pg.evaluate(DRAWN_JS) == hidden


def test_underground_pick_and_burst(
    page: tuple[Any, PageLog], target: dict[str, Any], live_server: Any
) -> None:
    pg, log = page
    # the checkbox's own click (Playwright's click first waits for steady animation
    # frames, which software WebGL delivers slowly while the ground streams in)
    pg.locator("#pipelines-underground").evaluate("(box) => box.click()")
    mode = pg.evaluate(
        """() => { const s = window.cim.viewer.scene, t = s.globe.translucency;
        return [t.enabled, Boolean(t.frontFaceAlphaByDistance),
                s.screenSpaceCameraController.enableCollisionDetection]; }"""
    )
    assert mode == [True, True, False]  # see-through ground, the camera may go below it
    # the pipe's tile is in (no render needed to know), then a frame drawn with it
    pg.wait_for_function(
        "(id) => window.cim.pipelines.colourOf(id) !== null", arg=target["id"], timeout=60_000
    )
    hit = None
    for _ in range(5):  # rendering catches up with the camera
        hit = pg.evaluate(FIND_PIPE_JS, target["id"])
        if hit:
            break
        pg.wait_for_timeout(300)
    assert hit, f"pipe {target['id']} not on screen above it"
    pg.mouse.click(hit["x"], hit["y"])
    panel = pg.locator("#pipelines-panel")
    panel.get_by_text(target["id"], exact=True).wait_for(timeout=15_000)
    pg.click('#pipelines-panel button[data-query="burst"]')
    pg.wait_for_function("() => window.cim.pipelines.lastResult", timeout=15_000)
    shown = pg.evaluate("() => window.cim.pipelines.lastResult")
    api = requests.get(
        f"{live_server.url}api/pipelines/segments/{target['id']}/burst", timeout=30
    ).json()
    assert shown == api and api["valves"]
    assert pg.evaluate("(id) => window.cim.pipelines.colourOf(id)", target["id"]) == BURST
    # valves in tiles not loaded around the camera have no colour to check (None)
    valves = [pg.evaluate("(id) => window.cim.pipelines.colourOf(id)", v) for v in api["valves"]]
    assert VALVE in valves and set(valves) <= {VALVE, None}, valves
    # requests Cesium cancels as the camera moves are not errors here (test_viewer_browser
    # checks the requests)
    errors = [
        e for e in log.errors if "Failed to load resource" not in e and not e.startswith("failed:")
    ]
    assert not errors, json.dumps(errors, ensure_ascii=False)[:2000]


def test_map_tool_click_is_not_picked_by_the_pipelines(page: tuple[Any, PageLog]) -> None:
    """While a map tool takes the clicks, the pipelines' click handler makes no scene.pick
    ahead of the tool's (while a reduced frame is shown a pick draws the full frame first,
    ~1 s under software WebGL), even in the underground mode."""
    pg, _ = page
    if not pg.evaluate("() => window.cim.pipelines.underground"):
        pg.locator("#pipelines-underground").evaluate("(box) => box.click()")
    pg.evaluate(
        """() => { const c = window.cim, s = c.viewer.scene;
        c.tools.activate('measure');
        window.__pipePicks = 0;
        const pick = s.pick;
        s.pick = function (...args) {
          if (/layers\\/pipelines\\.js/.test(new Error().stack)) window.__pipePicks += 1;
          return pick.apply(this, args); };
        c.interactive.apply(c.interactive.controller.levels.length - 1); }"""
    )
    # a point of the map clear of the panels (the pipelines' one covers the centre)
    spot = pg.evaluate(
        """() => { const canvas = window.cim.viewer.scene.canvas;
        for (const [fx, fy] of [[0.85, 0.8], [0.15, 0.85], [0.85, 0.2], [0.5, 0.9]]) {
          const x = canvas.clientWidth * fx, y = canvas.clientHeight * fy;
          if (document.elementFromPoint(x, y) === canvas) return [x, y];
        }
        return null; }"""
    )
    assert spot, "no map pixel clear of the panels"
    pg.mouse.click(*spot)
    pg.wait_for_function(
        "() => window.cim.tools.get('measure').api.points().length === 1", timeout=30_000
    )
    picks = pg.evaluate(
        """() => { const c = window.cim; c.tools.deactivate(); c.interactive.restore();
        return window.__pipePicks; }"""
    )
    assert picks == 0
