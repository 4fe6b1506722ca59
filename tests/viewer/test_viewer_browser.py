"""End to end: the operation view in headless chromium against a served city.

One page is opened for the module (software WebGL is slow to start); the tests run in
order on it: home view loaded, click a building, search an address, language, theme,
shareable URL. A screenshot is saved in test-artifacts/.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from viewer_helpers import FIND_ANY_BUILDING_JS, PERFORMANCE_MODE_JS, PageLog, wait_loaded

pytestmark = pytest.mark.browser

logger = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def opened(browser: Any, live_server: Any) -> Iterator[tuple[Any, PageLog]]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    context.add_init_script(PERFORMANCE_MODE_JS)
    page = context.new_page()
    log = PageLog(live_server.url)
    log.attach(page)
    page.goto(live_server.url, wait_until="domcontentloaded")
    yield page, log
    context.close()


def _camera_lonlat(page: Any) -> tuple[float, float]:
    return tuple(
        page.evaluate(
            """() => { const c = window.cim.viewer.camera.positionCartographic;
                 const d = Cesium.Math.toDegrees;
                 return [d(c.longitude), d(c.latitude)]; }"""
        )
    )


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dlat = (a[1] - b[1]) * 111_320.0
    dlon = (a[0] - b[0]) * 111_320.0 * math.cos(math.radians(a[1]))
    return math.hypot(dlat, dlon)


def test_home_view_loads(opened: tuple[Any, PageLog], artifacts: Path, viewer_city: Any) -> None:
    page, log = opened
    seconds = wait_loaded(page, timeout_s=120)
    state = page.evaluate(
        """() => ({
            l2: !!window.cim.tilesets.l2 && window.cim.tilesets.l2.tilesLoaded,
            features: window.cim.buildings.byId.size,
            title: document.title,
            token: Cesium.Ion.defaultAccessToken,
            imageryLayers: window.cim.viewer.imageryLayers.length,
        })"""
    )
    assert state["l2"] is True
    assert state["features"] > 0
    assert state["title"] == "城市运行指挥视图"  # Chinese by default
    assert state["token"] == ""
    page.screenshot(path=str(artifacts / f"viewer-home-{viewer_city.kind}.png"))
    assert log.errors == []
    assert log.foreign_requests() == []
    logger.info("home view loaded %.1f s after DOM ready; %d requests", seconds, len(log.requests))


def test_click_building_shows_id(opened: tuple[Any, PageLog]) -> None:
    page, log = opened
    hit = page.evaluate(FIND_ANY_BUILDING_JS)
    assert hit, "no building found on screen at the home view"
    page.mouse.click(hit["x"], hit["y"])
    page.wait_for_selector("#infoPanel:not([hidden])", timeout=10000)
    assert page.text_content('#infoTable td[data-key="id"]') == hit["id"]
    assert page.evaluate("document.documentElement.dataset.selected") == hit["id"]
    assert page.text_content("#infoTitle")
    # the highlight: the picked feature is drawn in the highlight colour (next frame)
    page.wait_for_function(
        """(id) => { const f = window.cim.buildings.feature(id);
             return !!f && f.color.toCssHexString() === '#ffd400'; }""",
        arg=hit["id"],
        timeout=10000,
    )
    page.click("#infoClose")
    assert page.evaluate("document.documentElement.dataset.selected") == ""
    assert log.errors == []


def test_search_flies_to_address(
    opened: tuple[Any, PageLog], viewer_city: Any, artifacts: Path
) -> None:
    page, log = opened
    known = viewer_city.known
    if not known:
        pytest.skip("the build has no address index")
    page.evaluate("() => window.cim.flyHome(0)")
    page.evaluate("() => window.cim.buildings.select(null)")
    page.fill("#searchInput", known["address"])
    page.wait_for_selector("#suggestions li[data-building]", timeout=10000)
    first = page.get_attribute("#suggestions li[data-building]", "data-building")
    assert first == known["id"]
    page.press("#searchInput", "Enter")
    page.wait_for_function(
        "() => window.cim.lastFlight && window.cim.lastFlight.done", timeout=30000
    )
    assert page.evaluate("document.documentElement.dataset.selected") == known["id"]
    camera = _camera_lonlat(page)
    assert _metres(camera, (known["lon"], known["lat"])) < 1000
    # close to the old town the L3 models replace the blocks: more to load under software GL
    wait_loaded(page, timeout_s=180)
    page.wait_for_selector("#infoPanel:not([hidden])", timeout=10000)
    assert page.text_content('#infoTable td[data-key="id"]') == known["id"]
    page.screenshot(path=str(artifacts / f"viewer-search-{viewer_city.kind}.png"))
    assert "b=" + known["id"] in page.evaluate("window.location.hash")
    assert log.errors == []


def test_language_switch(opened: tuple[Any, PageLog]) -> None:
    page, _ = opened
    page.click("#langBtn")
    assert page.text_content("#topbar h1") == "City Operations View"
    assert page.get_attribute("html", "lang") == "en"
    assert "lang=en" in page.evaluate("window.location.hash")
    page.click("#langBtn")
    assert page.text_content("#topbar h1") == "城市运行指挥视图"


def test_theme_and_legend(opened: tuple[Any, PageLog]) -> None:
    page, log = opened
    page.select_option("#themeSelect", "height")
    assert page.locator("#legend li").count() == 5
    page.select_option("#themeSelect", "use")
    assert page.locator("#legend li").count() >= 1
    assert "theme=use" in page.evaluate("window.location.hash")
    page.select_option("#themeSelect", "none")
    assert page.locator("#legend li").count() == 0
    assert log.errors == []


def test_layer_toggle(opened: tuple[Any, PageLog]) -> None:
    page, _ = opened
    page.uncheck("#layer-l2")
    assert page.evaluate("window.cim.tilesets.l2.show") is False
    assert "off=l2" in page.evaluate("window.location.hash")
    page.check("#layer-l2")
    assert page.evaluate("window.cim.tilesets.l2.show") is True


def test_shared_url_restores_view(
    browser: Any, opened: tuple[Any, PageLog], live_server: Any
) -> None:
    page, _ = opened
    page.evaluate("() => window.cim.flyHome(0)")
    page.evaluate("() => window.cim.writeHash()")
    url = page.url
    assert "#v=" in url
    before = _camera_lonlat(page)
    other = browser.new_page(viewport={"width": 800, "height": 600})
    other.add_init_script(PERFORMANCE_MODE_JS)
    try:
        other.goto(url, wait_until="domcontentloaded")
        other.wait_for_function("() => window.cim && window.cim.ready", timeout=60000)
        after = _camera_lonlat(other)
    finally:
        other.close()
    assert _metres(before, after) < 5.0


def test_no_console_errors_or_foreign_requests(opened: tuple[Any, PageLog]) -> None:
    _, log = opened
    assert log.errors == []
    assert log.foreign_requests() == []
