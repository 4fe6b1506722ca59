"""Queries in headless chromium: search over everything (a building/POI name, a pinyin
query, typed coordinates → the camera flies there), locate by Gauss-Krüger coordinates,
a polygon query whose highlighted ids are the server's, city statistics, and an
annotation saved by one page that a second page shows after loading.

The app serves the viewer's city with a live store (annotations need one).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from viewer_helpers import PERFORMANCE_MODE_JS, PageLog

pytestmark = pytest.mark.browser


class Served:
    def __init__(
        self, url: str, token: str, manifest: dict[str, Any], names: list[str], count: int
    ) -> None:
        self.url = url
        self.token = token
        self.manifest = manifest
        self.names = names
        self.count = count  # buildings in the city


@pytest.fixture(scope="module")
def served(viewer_city: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    import pyarrow.parquet as pq
    from viewer_helpers import LiveServer

    from layers.departments import add_department
    from layers.store import open_store
    from server import create_app

    store_path = str(tmp_path_factory.mktemp("live") / "live.sqlite")
    st = open_store(store_path)
    token = add_department(st, "planning", "规划局")
    st.close()
    app = create_app(
        {
            "OUTPUT_DIR": viewer_city.output,
            "ADDRESS_INDEX_FACTORY": viewer_city.index_factory,
            "LIVE_STORE": store_path,
        }
    )
    out = Path(viewer_city.output)
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    column = pq.read_table(out / "buildings.parquet").column("name").to_pylist()
    names = sorted({n for n in column if n})
    with LiveServer(app) as srv:
        yield Served(srv.url, token, manifest, names, len(column))


def _open(browser: Any, url: str) -> tuple[Any, Any, PageLog]:
    context = browser.new_context(viewport={"width": 1024, "height": 700}, locale="zh-CN")
    context.add_init_script(PERFORMANCE_MODE_JS)
    page = context.new_page()
    log = PageLog(url)
    log.attach(page)
    page.goto(url, wait_until="domcontentloaded", timeout=120_000)
    page.wait_for_function("() => window.cim && window.cim.ready", timeout=120_000)
    return context, page, log


@pytest.fixture(scope="module")
def opened(browser: Any, served: Served) -> Iterator[tuple[Any, PageLog]]:
    context, page, log = _open(browser, served.url)
    yield page, log
    context.close()


def _camera(page: Any) -> list[float]:
    return page.evaluate(
        """() => { const c = window.cim.viewer.camera.positionCartographic;
             return [c.longitude * 180 / Math.PI, c.latitude * 180 / Math.PI, c.height]; }"""
    )


def _search_and_choose(page: Any, text: str, kind: str) -> dict[str, Any]:
    """Type into the search box, choose the first result of a type, wait for the flight."""
    page.fill("#searchInput", "")
    page.focus("#searchInput")
    page.fill("#searchInput", text)
    selector = f'#suggestions li[data-type="{kind}"]'
    page.wait_for_selector(selector, timeout=15_000)
    label = page.text_content(f"{selector} .slabel")
    assert page.text_content(f"{selector} .stype")  # the type is shown
    page.click(selector)
    page.wait_for_function(
        "() => window.cim.lastFlight && window.cim.lastFlight.done", timeout=15_000
    )
    flight = page.evaluate("() => window.cim.lastFlight")
    flight["shown"] = label
    return flight


def test_search_a_name_pinyin_and_coordinates(opened: tuple[Any, PageLog], served: Served) -> None:
    page, log = opened
    from pypinyin import lazy_pinyin

    name = "大成殿" if "大成殿" in served.names else served.names[0]
    before = _camera(page)
    flight = _search_and_choose(page, name, "building")
    assert flight["shown"] == name and flight["building"]
    after = _camera(page)
    assert math.dist(before[:2], after[:2]) > 1e-5 or abs(before[2] - after[2]) > 1
    # the camera looks at the building: within a kilometre of it
    assert abs(after[0] - flight["lon"]) < 0.01 and abs(after[1] - flight["lat"]) < 0.01
    assert page.evaluate("() => document.documentElement.dataset.selected") == flight["building"]

    # pinyin: the syllables of the name find it
    key = "".join(lazy_pinyin(name))
    page.fill("#searchInput", key)
    page.wait_for_selector('#suggestions li[data-type="building"]', timeout=15_000)
    labels = page.eval_on_selector_all(
        '#suggestions li[data-type="building"] .slabel', "els => els.map(e => e.textContent)"
    )
    assert name in labels, (key, labels)

    # coordinates: "lon, lat" a few hundred metres from the centre
    lon, lat = served.manifest["centre"][:2]
    target = (round(lon + 0.003, 6), round(lat - 0.002, 6))
    flight = _search_and_choose(page, f"{target[0]}, {target[1]}", "coordinate")
    assert flight["lon"] == pytest.approx(target[0], abs=1e-9)
    assert flight["lat"] == pytest.approx(target[1], abs=1e-9)
    cam = _camera(page)
    assert abs(cam[0] - target[0]) < 0.01 and abs(cam[1] - target[1]) < 0.01
    assert not log.errors, log.errors


def test_locate_gauss_kruger(opened: tuple[Any, PageLog], served: Served) -> None:
    from pyproj import Transformer

    page, _ = opened
    lon, lat = served.manifest["centre"][:2]
    lon, lat = lon - 0.002, lat + 0.001
    zone_cm = round(lon / 3) * 3
    code = 4534 + (zone_cm - 75) // 3  # the city's 3° zone, no prefix
    x, y = Transformer.from_crs(4326, code, always_xy=True).transform(lon, lat)
    page.evaluate("() => window.cim.tools.activate('locate')")
    r = page.evaluate(
        "([x, y]) => window.cim.tools.get('locate').api.locate(x.toFixed(3), y.toFixed(3), 'gk')",
        [x, y],
    )
    assert r["crs"] == f"EPSG:{code}"
    assert r["lon"] == pytest.approx(lon, abs=1e-6) and r["lat"] == pytest.approx(lat, abs=1e-6)
    assert f"EPSG:{code}" in page.text_content("#locateResult")
    page.wait_for_function("() => window.cim.lastFlight.done", timeout=15_000)
    cam = _camera(page)
    assert abs(cam[0] - lon) < 0.01 and abs(cam[1] - lat) < 0.01
    page.evaluate("() => window.cim.tools.deactivate()")


def test_polygon_query_highlights_the_servers_ids(
    opened: tuple[Any, PageLog], served: Served
) -> None:
    page, log = opened
    lon, lat = served.manifest["centre"][:2]
    d = 0.004
    ring = [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d]]
    server = requests.post(
        served.url + "api/buildings/query", json={"polygon": [*ring, ring[0]]}, timeout=30
    ).json()
    assert server["count"] > 0
    page.evaluate("() => window.cim.tools.activate('query')")
    body = page.evaluate(
        """async (ring) => { const api = window.cim.tools.get('query').api;
             api.setPolygon(ring); return api.run(); }""",
        ring,
    )
    assert body["count"] == server["count"]
    assert page.evaluate("() => window.cim.buildings.highlightIds.size") == server["count"]
    assert page.get_attribute("#queryResult", "data-count") == str(server["count"])
    assert page.text_content("#queryResult").count("平方米") >= 2
    # loaded buildings of the result are drawn in the query colour, others are not
    colours = page.evaluate(
        """() => { const b = window.cim.buildings; const style = b.tileset.style;
             const out = {inside: null, outside: null};
             for (const [id, set] of b.byId) {
               const f = set.values().next().value;
               const key = b.highlightIds.has(id) ? 'inside' : 'outside';
               if (out[key] === null && id !== b.selectedId) {
                 const c = style.color.evaluateColor(f, new Cesium.Color());
                 out[key] = [c.red, c.green, c.blue].map((v) => Math.round(v * 255));
               }
             }
             return out; }"""
    )
    assert colours["inside"] == [0, 229, 255]
    assert colours["outside"] is None or colours["outside"] != [0, 229, 255]
    # conditions narrow the same polygon
    narrowed = page.evaluate(
        """async () => { const api = window.cim.tools.get('query').api;
             api.setConditions('高度 > 20'); return api.run(); }"""
    )
    expect = requests.post(
        served.url + "api/buildings/query",
        json={"polygon": [*ring, ring[0]], "conditions": "height > 20"},
        timeout=30,
    ).json()
    assert narrowed["count"] == expect["count"] <= server["count"]
    # the whole city, not only what is loaded
    stats = page.evaluate("() => window.cim.tools.get('query').api.showCity()")
    assert stats["count"] == served.count
    page.evaluate("() => window.cim.tools.deactivate()")
    assert page.evaluate("() => window.cim.buildings.highlightIds") is None
    assert not log.errors, log.errors


def test_annotation_is_shared_after_reload(
    browser: Any, opened: tuple[Any, PageLog], served: Served
) -> None:
    page, _ = opened
    lon, lat, h = [*served.manifest["centre"], 0.0][:3]
    text = '<img src=x onerror="window.pwned=1">巡查点'
    page.evaluate("() => window.cim.tools.activate('annotate')")
    note = page.evaluate(
        """([token, text, pos]) => { const api = window.cim.tools.get('annotate').api;
             api.setToken(token); return api.add(text, pos); }""",
        [served.token, text, {"lon": lon, "lat": lat, "height": h + 30}],
    )
    assert note and note["author"] == "规划局"
    page.wait_for_selector("#annoList li[data-id] button[data-action='delete']", timeout=10_000)

    context, second, log2 = _open(browser, served.url)
    try:
        second.wait_for_function(
            "t => window.cim.tools.get('annotate').api.items().some(a => a.text === t)",
            arg=text,
            timeout=60_000,  # two software-WebGL pages share the CPU
        )
        assert text in second.evaluate("() => window.cim.tools.get('annotate').api.labelTexts()")
        second.evaluate("() => window.cim.tools.activate('annotate')")
        second.wait_for_selector("#annoList li[data-id]", timeout=10_000)
        assert second.text_content("#annoList li[data-id] .annoTextShown") == text
        assert second.query_selector("#annoList img") is None  # text, never HTML
        # not this page's department: no delete button
        assert second.query_selector("#annoList button[data-action='delete']") is None
        second.evaluate("id => window.cim.tools.get('annotate').api.flyTo(id)", note["id"])
        assert second.evaluate("() => window.pwned") is None
        assert not log2.errors, log2.errors
    finally:
        context.close()
    # the author deletes it
    page.click("#annoList li[data-id] button[data-action='delete']")
    page.wait_for_function(
        "() => window.cim.tools.get('annotate').api.items().length === 0", timeout=10_000
    )
    page.evaluate("() => window.cim.tools.deactivate()")
