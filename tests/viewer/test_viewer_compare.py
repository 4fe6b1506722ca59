"""Swipe compare between two builds (卷帘比对, `cim serve --compare OTHER`) in headless
chromium: the server serves a second build read-only, the swipe tool shows its
buildings on the left of the splitter and this build's on the right."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from viewer_helpers import PERFORMANCE_MODE_JS, LiveServer, PageLog, wait_loaded

#: a page of its own (a second server): ~20 s on a quiet 2-core machine, minutes under load
pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: JS: the tileset drawn at a pixel: 'this', 'other' or null
TILESET_AT_JS = """([x, y]) => { const c = window.cim, s = c.viewer.scene;
  const p = s.pick(new window.Cesium.Cartesian2(x, y));
  const ts = p && (p.primitive || p.tileset);
  if (!ts) return null;
  if (ts === c.tilesets.l2) return 'this';
  return ts === c.tools.get('swipe').api.other('compare:l2') ? 'other' : null; }"""


@pytest.fixture(scope="module")
def other_build(viewer_city: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another build of the city: its manifest and building tiles, under another name."""
    out = tmp_path_factory.mktemp("other-build") / "output"
    manifest = json.loads((viewer_city.output / "manifest.json").read_text(encoding="utf-8"))
    layers = {k: v for k, v in manifest["layers"].items() if k in ("l2", "l3")}
    for info in layers.values():
        src = (viewer_city.output / info["url"]).parent
        shutil.copytree(src, out / Path(info["url"]).parent)
    manifest.update(name="上月构建", layers=layers)
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), "utf-8")
    return out


@pytest.fixture(scope="module")
def compare_page(browser: Any, viewer_city: Any, other_build: Path) -> Iterator[Any]:
    from server import create_app

    app = create_app(
        {
            "OUTPUT_DIR": viewer_city.output,
            "COMPARE_DIR": other_build,
            "ADDRESS_INDEX_FACTORY": viewer_city.index_factory,
        }
    )
    with LiveServer(app) as srv:
        context = browser.new_context(viewport={"width": 1024, "height": 700}, locale="zh-CN")
        context.add_init_script(PERFORMANCE_MODE_JS)
        page = context.new_page()
        log = PageLog(srv.url)
        log.attach(page)
        page.goto(srv.url, wait_until="domcontentloaded")
        wait_loaded(page, timeout_s=240)
        page.log = log  # type: ignore[attr-defined]
        yield page
        context.close()
        assert log.errors == [], log.errors
        assert log.foreign_requests() == []


def test_swipe_between_two_builds(compare_page: Any) -> None:
    page = compare_page
    page.evaluate(
        """() => { const c = window.cim, C = window.Cesium, [lon, lat, h] = c.manifest.centre;
             c.viewer.camera.lookAt(C.Cartesian3.fromDegrees(lon, lat, h),
               new C.HeadingPitchRange(0, C.Math.toRadians(-45), 700));
             c.viewer.camera.lookAtTransform(C.Matrix4.IDENTITY); }"""
    )
    assert page.evaluate("window.cim.manifest.server.compare") is True
    page.click("#toolbtn-swipe")
    api = "window.cim.tools.get('swipe').api"
    page.wait_for_function(f"() => {api}.state.otherReady", timeout=60000)
    state = page.evaluate(f"{api}.state")
    assert (state["left"], state["right"]) == ("compare:l2", "l2")
    labels = page.eval_on_selector_all("#swipeLeft option", "els => els.map(e => e.textContent)")
    assert any(t.startswith("对比构建 · 建筑") and "上月构建" in t for t in labels), labels
    # the other build's tiles come from /compare/data/, read-only
    assert any("/compare/data/tiles/l2/" in u for u in page.log.requests)
    page.wait_for_function(
        f"""() => {{ const c = window.cim; c.viewer.scene.requestRender();
             return c.tilesets.l2.tilesLoaded && {api}.other('compare:l2').tilesLoaded; }}""",
        timeout=90000,
        polling=500,
    )
    # a pixel showing a building, with the splitter at the far right: the other build
    found = None
    for x, y in [
        (512 + dx, 350 + dy) for dx in range(-200, 201, 25) for dy in range(-120, 121, 30)
    ]:
        page.evaluate(f"{api}.move(1000)")
        page.evaluate("() => window.cim.viewer.scene.render()")
        if page.evaluate(TILESET_AT_JS, [x, y]) == "other":
            found = (x, y)
            break
    assert found, "the other build's buildings are drawn left of the splitter"
    # the splitter at the far left: the same pixel shows this build's buildings
    page.evaluate(f"{api}.move(0)")
    page.evaluate("() => window.cim.viewer.scene.render()")
    assert page.evaluate(TILESET_AT_JS, list(found)) == "this"
    page.evaluate("() => window.cim.tools.deactivate()")
    assert page.evaluate(f"{api}.other('compare:l2').show") is False
    assert page.evaluate("window.cim.tilesets.l2.splitDirection") == 0
