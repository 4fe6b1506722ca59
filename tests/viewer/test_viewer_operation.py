"""The operation view's structure and fixes, in headless chromium: the layer tree
(toggles, opacity, groups), the panel manager (stacking, Esc), pinyin input, the
buildings following the terrain down, Chinese names of coded values, full resolution
by default with a performance mode, and the connection banner.

One page for the module (software WebGL is slow to start); the connection test, which
makes requests fail on purpose, runs last.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from viewer_helpers import PERFORMANCE_MODE_JS, PageLog, wait_loaded

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def opened(browser: Any, live_server: Any) -> Iterator[tuple[Any, PageLog]]:
    context = browser.new_context(viewport={"width": 1024, "height": 700}, locale="zh-CN")
    context.add_init_script(PERFORMANCE_MODE_JS)
    page = context.new_page()
    log = PageLog(live_server.url)
    log.attach(page)
    page.goto(live_server.url, wait_until="domcontentloaded")
    wait_loaded(page, timeout_s=120)
    yield page, log
    context.close()


#: JS: the data-KEY attribute of every element
_DATA_JS = "els => els.map(e => e.dataset.KEY)"


def _render(page: Any) -> None:
    page.evaluate("() => window.cim.viewer.scene.requestRender()")


def _slide(page: Any, selector: str, value: int) -> None:
    """Move a range input the way a drag does (value, then an input event)."""
    page.eval_on_selector(
        selector,
        "(el, v) => { el.value = String(v);"
        " el.dispatchEvent(new Event('input', {bubbles: true})); }",
        value,
    )


def test_full_resolution_by_default(browser: Any, live_server: Any) -> None:
    context = browser.new_context(viewport={"width": 480, "height": 320}, device_scale_factor=2)
    page = context.new_page()
    try:
        page.goto(live_server.url, wait_until="domcontentloaded")
        page.wait_for_function("() => window.cim && window.cim.ready", timeout=90000)
        page.wait_for_timeout(200)  # one resize of the drawing buffer
        state = page.evaluate(
            """() => { const v = window.cim.viewer, s = v.scene;
                 return {scale: v.resolutionScale, browser: v.useBrowserRecommendedResolution,
                         width: s.drawingBufferWidth, css: s.canvas.clientWidth,
                         perf: document.getElementById('perfMode').checked}; }"""
        )
        assert state["scale"] == 1
        assert state["browser"] is False
        assert state["perf"] is False
        assert state["width"] == state["css"] * 2, "every device pixel is drawn"
        page.check("#perfMode")
        page.wait_for_function("() => window.cim.viewer.resolutionScale === 0.5")
        assert page.evaluate("localStorage.getItem('cim.performance')") == "on"
        page.uncheck("#perfMode")
        assert page.evaluate("window.cim.viewer.resolutionScale") == 1
    finally:
        context.close()


def test_layer_tree_groups_and_building_opacity(opened: tuple[Any, PageLog]) -> None:
    page, log = opened
    groups = page.eval_on_selector_all("#layerList li.group", _DATA_JS.replace("KEY", "group"))
    layers = page.eval_on_selector_all(
        "#layerList li[data-layer]", _DATA_JS.replace("KEY", "layer")
    )
    assert "buildings" in groups
    assert page.text_content('#layerList li[data-group="buildings"]') == "建筑"
    if "imagery" in layers:  # base map first, in load order
        assert groups[:2] == ["base", "buildings"]
        assert page.text_content('#layerList li[data-group="base"]') == "底图"
        assert layers.index("imagery") < layers.index("l2")
    if "terrain" in layers:
        assert layers.index("terrain") < layers.index("l2")
        assert page.locator("#opacity-terrain").count() == 0  # terrain has no opacity

    _slide(page, "#opacity-l2", 50)
    _render(page)
    page.wait_for_function(
        """() => { const b = window.cim.buildings;
             for (const id of b.byId.keys())
               return Math.abs(b.feature(id).color.alpha - 0.5) < 0.01;  // a byte per channel
             return false; }""",
        timeout=10000,
    )
    assert "建筑" in page.get_attribute("#opacity-l2", "aria-label")
    _slide(page, "#opacity-l2", 100)
    _render(page)
    page.wait_for_function(
        "() => { const b = window.cim.buildings, id = b.byId.keys().next().value;"
        " return b.feature(id).color.alpha === 1; }",
        timeout=10000,
    )
    assert log.errors == []


def test_layer_tree_imagery_toggle_and_opacity(opened: tuple[Any, PageLog]) -> None:
    page, log = opened
    if not page.evaluate("!!window.cim.tree.get('imagery')"):
        pytest.skip("the build has no imagery")
    _slide(page, "#opacity-imagery", 40)
    assert page.evaluate("window.cim.tree.get('imagery').object.alpha") == pytest.approx(0.4)
    page.uncheck("#layer-imagery")
    assert page.evaluate("window.cim.tree.get('imagery').object.show") is False
    assert "off=imagery" in page.evaluate("window.location.hash")
    # the API and the panel stay in step
    page.evaluate("() => window.cim.tree.setShow('imagery', true)")
    assert page.is_checked("#layer-imagery")
    assert "off=imagery" not in page.evaluate("window.location.hash")
    page.evaluate("() => window.cim.tree.setOpacity('imagery', 1)")
    assert page.input_value("#opacity-imagery") == "100"
    assert log.errors == []


def test_panel_manager_stacks_and_esc(opened: tuple[Any, PageLog]) -> None:
    page, log = opened
    some_id = page.evaluate("() => window.cim.buildings.byId.keys().next().value")
    page.evaluate("(id) => window.cim.buildings.select(id)", some_id)
    assert page.evaluate("window.cim.panels.isVisible('info')") is True
    # a second panel in the same slot covers the info panel; closing it shows it again
    page.evaluate(
        """() => { const el = document.createElement('aside'); el.id = 'testPanel';
             el.textContent = 'test'; document.body.append(el);
             window.cim.panels.register('test', {slot: 'right', element: el});
             window.cim.panels.open('test'); }"""
    )
    assert page.is_hidden("#infoPanel")
    assert page.is_visible("#testPanel")
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.keyboard.press("Escape")
    assert page.is_hidden("#testPanel")
    assert page.is_visible("#infoPanel")
    assert page.evaluate("document.documentElement.dataset.selected") == some_id
    page.keyboard.press("Escape")
    assert page.is_hidden("#infoPanel")
    assert page.evaluate("document.documentElement.dataset.selected") == ""
    assert log.errors == []


def test_pinyin_composition_does_not_search(opened: tuple[Any, PageLog], viewer_city: Any) -> None:
    page, log = opened
    known = viewer_city.known
    if not known:
        pytest.skip("the build has no address index")
    searches: list[str] = []
    page.on("request", lambda req: searches.append(req.url) if "/api/search" in req.url else None)
    page.focus("#searchInput")
    page.evaluate(
        """() => { const input = document.getElementById('searchInput');
             input.dispatchEvent(new CompositionEvent('compositionstart', {data: ''}));
             for (const typed of ['h', 'hu', 'hua', 'huay', 'huaya']) {
               input.value = typed;
               input.dispatchEvent(new CompositionEvent('compositionupdate', {data: typed}));
               input.dispatchEvent(new InputEvent('input', {data: typed, isComposing: true,
                                                            inputType: 'insertCompositionText'}));
             } }"""
    )
    page.wait_for_timeout(600)  # well past the search debounce
    assert searches == []
    assert page.is_hidden("#suggestions")
    assert "未找到地址" not in (page.text_content("#suggestions") or "")
    # committing the composed characters searches once
    page.evaluate(
        """(text) => { const input = document.getElementById('searchInput');
             input.value = text;
             input.dispatchEvent(new InputEvent('input', {data: text, isComposing: true,
                                                          inputType: 'insertCompositionText'}));
             input.dispatchEvent(new CompositionEvent('compositionend', {data: text})); }""",
        known["address"],
    )
    page.wait_for_selector("#suggestions li[data-building]", timeout=10000)
    assert len(searches) == 1
    page.fill("#searchInput", "")
    assert log.errors == []


def test_coded_values_shown_by_name(opened: tuple[Any, PageLog]) -> None:
    page, log = opened
    names = {"flat": ("平顶", "Flat"), "gabled": ("双坡顶（人字顶）", "Gabled")}
    found = page.evaluate(
        """(codes) => { const b = window.cim.buildings;
             for (const [id, set] of b.byId) {
               const f = set.values().next().value;
               const code = f.getProperty('roof_type');
               if (codes.includes(code)) return [id, code];
             }
             return null; }""",
        list(names),
    )
    if not found:
        pytest.skip("no loaded building with a known roof type")
    building, code = found
    page.evaluate("(id) => window.cim.buildings.select(id)", building)
    cell = '#infoTable td[data-key="roof_type"]'
    assert page.text_content(cell) == names[code][0]
    page.click("#langBtn")
    assert page.text_content(cell) == names[code][1]
    assert page.text_content('#infoTable tr:has(td[data-key="roof_type"]) th') == "Roof type"
    page.click("#langBtn")
    assert page.text_content(cell) == names[code][0]
    page.evaluate("() => window.cim.buildings.select(null)")
    assert log.errors == []


def test_data_is_shown_as_text(opened: tuple[Any, PageLog]) -> None:
    page, log = opened
    markup = '<img id="pwn" src="x" onerror="window.pwned = 1">&amp;'
    page.evaluate("(text) => window.cim.info.showPlace(113.3, 40.1, text)", markup)
    assert page.text_content("#infoTable tr:last-child td") == markup
    assert page.locator("#pwn").count() == 0
    assert page.evaluate("window.pwned") is None
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.keyboard.press("Escape")
    assert page.is_hidden("#infoPanel")
    assert log.errors == []


_HEIGHT_JS = """() => { const ts = window.cim.tilesets.l2;
    return Cesium.Cartographic.fromCartesian(ts.boundingSphere.center).height; }"""


def test_terrain_off_puts_buildings_on_the_imagery(opened: tuple[Any, PageLog]) -> None:
    page, log = opened
    ground = page.evaluate("window.cim.manifest.centre[2]")
    if not page.evaluate("!!window.cim.tree.get('terrain')"):
        pytest.skip("the build has no terrain")
    on_terrain = page.evaluate(_HEIGHT_JS)
    page.uncheck("#layer-terrain")
    _render(page)
    page.wait_for_function(f"() => Math.abs(({_HEIGHT_JS})() - {on_terrain}) > 1", timeout=10000)
    off_terrain = page.evaluate(_HEIGHT_JS)
    assert off_terrain == pytest.approx(on_terrain - ground, abs=0.5)
    # the city's bounding sphere centre is about half the buildings' height above the
    # ellipsoid (where the imagery now lies), not a kilometre up
    assert -50 < off_terrain < 250
    shift = page.evaluate(
        """() => { const m = window.cim.tilesets.l2.modelMatrix;
             return Cesium.Cartesian3.magnitude(
               Cesium.Matrix4.getTranslation(m, new Cesium.Cartesian3())); }"""
    )
    assert shift == pytest.approx(ground, abs=0.5)
    assert "off=terrain" in page.evaluate("window.location.hash")
    page.check("#layer-terrain")
    _render(page)
    page.wait_for_function(f"() => Math.abs(({_HEIGHT_JS})() - {on_terrain}) < 0.5", timeout=10000)
    assert log.errors == []


def test_connection_banner(opened: tuple[Any, PageLog]) -> None:
    """Last: makes requests fail on purpose."""
    page, _ = opened
    assert page.is_hidden("#connBanner")
    page.route("**/api/health", lambda route: route.abort())
    try:
        page.evaluate("() => window.cim.connection.check()")
        page.wait_for_selector("#connBanner:not([hidden])", timeout=10000)
        assert "已断开" in page.text_content("#connBanner")
        assert page.evaluate("document.documentElement.dataset.connection") == "offline"
        page.click("#langBtn")
        assert "lost" in page.text_content("#connBanner")
        page.click("#langBtn")
    finally:
        page.unroute("**/api/health")
    # back: the next check (the faster retry, or one now) hides it
    page.evaluate("() => window.cim.connection.check()")
    page.wait_for_selector("#connBanner", state="hidden", timeout=10000)
    assert page.evaluate("document.documentElement.dataset.connection") == "online"
