"""Benchmark: headless chromium, page open → home view fully loaded.

Serves a built city with waitress on loopback, opens the viewer in a fresh browser
context (cold cache) and times until the page is ready and every tileset and the
globe report all tiles loaded. Prints the seconds, the number of requests and the
bytes transferred (CDP encodedDataLength) for each run, then the median.

    .venv/bin/python bench/bench_viewer.py                     # build the sample city
    .venv/bin/python bench/bench_viewer.py --project demo/city.toml   # already built
    .venv/bin/python bench/bench_viewer.py --fixture           # tiny generated city

Target: ≤ 5 s for the sample city. Chromium renders WebGL2 in software (SwiftShader)
here, so the figure depends heavily on CPU cores and load.

``--bare`` also times a bare CesiumJS page (default Viewer settings, no ion) showing the
same terrain, orthophoto and building tilesets from the same server at the same camera
(the viewer's home view, read from its first run), alternating the two pages; it
prints both medians and their ratio (issue 12's target: the viewer ≤ 0.5× the bare
page, at full resolution: run without ``--performance``).

    .venv/bin/python bench/bench_viewer.py --project demo/city.toml --bare --runs 3
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _module(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _city(args: argparse.Namespace, tmp: Path) -> tuple[Path, Any]:
    """Output folder to serve and the address index factory (None = real)."""
    if args.fixture:
        fx = _module(ROOT / "tests" / "server" / "fixture_city.py", "bench_fixture_city")
        return fx.write_fixture_output(tmp / "output"), fx.FakeAddressIndex
    from cim.build import build_project
    from cim.config import load_project

    if args.project:
        project = Path(args.project)
    else:
        from cim.sample import write_sample

        project = write_sample(tmp / "sample")
        t = time.perf_counter()
        build_project(project, jobs=args.jobs, progress=False)
        print(f"built the sample city in {time.perf_counter() - t:.1f} s")
    return load_project(project).output, None


def _count_responses(app: Any) -> dict[str, int]:
    """Count responses and body bytes (Content-Length) the app sends."""
    counts = {"requests": 0, "bytes": 0}
    inner = app.wsgi_app

    def counting(environ: dict[str, Any], start_response: Any) -> Any:
        def start(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            counts["requests"] += 1
            for name, value in headers:
                if name.lower() == "content-length":
                    counts["bytes"] += int(value)
            return start_response(status, headers, *exc)

        return inner(environ, start)

    app.wsgi_app = counting
    return counts


def run_once(
    browser: Any,
    url: str,
    helpers: Any,
    width: int,
    height: int,
    hash_: str = "",
    performance: bool = False,
) -> dict[str, Any]:
    """One cold page load; seconds, requests and bytes."""
    context = browser.new_context(viewport={"width": width, "height": height})
    if performance:
        context.add_init_script(helpers.PERFORMANCE_MODE_JS)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    transferred = {"bytes": 0, "requests": 0}
    foreign: list[str] = []

    def finished(event: dict[str, Any]) -> None:
        transferred["bytes"] += int(event.get("encodedDataLength", 0))
        transferred["requests"] += 1

    def sent(event: dict[str, Any]) -> None:
        u = event["request"]["url"]
        if not u.startswith((url, "blob:", "data:")):
            foreign.append(u)

    cdp.on("Network.loadingFinished", finished)
    cdp.on("Network.requestWillBeSent", sent)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    start = time.perf_counter()
    page.goto(url + hash_, wait_until="commit")
    phases: dict[str, float] = {}
    probe = """() => { const c = window.cim; if (!c || !c.ready) return {};
      const ts = Object.values(c.tilesets).filter(Boolean);
      return {tiles: ts.every((t) => t.tilesLoaded), globe: c.viewer.scene.globe.tilesLoaded}; }"""
    while time.perf_counter() - start < 180:
        state = page.evaluate(probe)
        now = time.perf_counter() - start
        for key, done in state.items():
            if done and key not in phases:
                phases[key] = now
        if len(phases) == 2:
            break
        page.wait_for_timeout(50)
    helpers.wait_loaded(page, timeout_s=5)
    seconds = time.perf_counter() - start
    marks = page.evaluate(
        """() => Object.fromEntries(performance.getEntriesByType('mark')
             .filter((m) => m.name.startsWith('cim:'))
             .map((m) => [m.name.slice(4), m.startTime / 1000]))"""
    )
    page.wait_for_timeout(200)  # let the last loadingFinished events arrive
    result = {
        "seconds": seconds,
        "requests": transferred["requests"],
        "bytes": transferred["bytes"],
        "foreign": foreign,
        "errors": errors,
        "phases": phases,
        "marks": marks,
        "renderer": page.evaluate("() => window.cim.renderer"),
    }
    context.close()
    return result


#: a bare CesiumJS page: the library's defaults, the same layers from the same server;
#: ?v=lon,lat,height,heading,pitch,roll (degrees) is the camera
BARE_HTML = r"""<!doctype html><html><head><meta charset="utf-8"><title>bare CesiumJS</title>
<script>window.CESIUM_BASE_URL = 'vendor/cesium/';</script>
<script src="vendor/cesium/Cesium.js"></script>
<link rel="stylesheet" href="vendor/cesium/Widgets/widgets.css">
<style>html, body, #c { margin: 0; width: 100%; height: 100%; overflow: hidden; }</style>
</head><body><div id="c"></div><script>
(async () => {
  Cesium.Ion.defaultAccessToken = '';
  const m = await (await fetch('api/manifest')).json();
  const data = new URL('data/', location.href).href;
  const terrain = m.layers.terrain
    ? await Cesium.CesiumTerrainProvider.fromUrl(new URL(m.layers.terrain.url, data).href
        .replace(/layer\.json$/, ''), { requestVertexNormals: true })
    : new Cesium.EllipsoidTerrainProvider();
  const viewer = new Cesium.Viewer('c', { baseLayer: false, baseLayerPicker: false,
    geocoder: false, terrainProvider: terrain });
  if (m.layers.imagery) {
    const tjUrl = new URL(m.layers.imagery.url, data).href;
    const tj = await (await fetch(tjUrl)).json();
    viewer.imageryLayers.addImageryProvider(new Cesium.UrlTemplateImageryProvider({
      url: new URL(tj.tiles[0], tjUrl).href.replace(/%7B/g, '{').replace(/%7D/g, '}'),
      tilingScheme: new Cesium.GeographicTilingScheme(),
      maximumLevel: tj.maxzoom, rectangle: Cesium.Rectangle.fromDegrees(...tj.bounds) }));
  }
  const tilesets = [];
  for (const key of ['l2', 'l3']) {
    if (!m.layers[key]) continue;
    const ts = await Cesium.Cesium3DTileset.fromUrl(new URL(m.layers[key].url, data).href);
    viewer.scene.primitives.add(ts);
    tilesets.push(ts);
  }
  const v = new URLSearchParams(location.search).get('v').split(',').map(Number);
  const r = Cesium.Math.toRadians;
  viewer.camera.setView({ destination: Cesium.Cartesian3.fromDegrees(v[0], v[1], v[2]),
    orientation: { heading: r(v[3]), pitch: r(v[4]), roll: r(v[5]) } });
  window.bare = { viewer, tilesets };
})();
</script></body></html>"""

#: JS: the bare page's layers all loaded
BARE_LOADED_JS = """() => { const b = window.bare; if (!b) return false;
  return b.tilesets.every((t) => t.tilesLoaded) && b.viewer.scene.globe.tilesLoaded; }"""


def run_bare_once(browser: Any, url: str, view: str, width: int, height: int) -> float:
    """One cold load of the bare CesiumJS page at a camera view; seconds."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    # the bare page is served at the server's origin by the browser itself (no CSP)
    page.route(
        f"{url}bare.html*",
        lambda route: route.fulfill(status=200, content_type="text/html", body=BARE_HTML),
    )
    start = time.perf_counter()
    page.goto(f"{url}bare.html?v={view}", wait_until="commit")
    page.wait_for_function(BARE_LOADED_JS, timeout=600000, polling=50)
    seconds = time.perf_counter() - start
    context.close()
    return seconds


def _home_view(browser: Any, url: str, helpers: Any, width: int, height: int) -> str:
    """The viewer's home view as lon,lat,height,heading,pitch,roll (from its camera)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto(url)
    helpers.wait_loaded(page, timeout_s=180)
    view = page.evaluate(
        """() => { const cam = window.cim.viewer.camera, C = window.Cesium;
             const c = cam.positionCartographic;
             return [C.Math.toDegrees(c.longitude), C.Math.toDegrees(c.latitude), c.height,
               C.Math.toDegrees(cam.heading), C.Math.toDegrees(cam.pitch),
               C.Math.toDegrees(cam.roll)].map((x) => x.toFixed(7)).join(','); }"""
    )
    context.close()
    return str(view)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", help="a built city.toml (default: build the sample city)")
    parser.add_argument("--fixture", action="store_true", help="use the tiny generated city")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--hash", default="", help="URL hash, e.g. '#off=imagery'")
    parser.add_argument(
        "--bare", action="store_true", help="also time a bare CesiumJS page on the same layers"
    )
    parser.add_argument(
        "--performance", action="store_true", help="the viewer's performance mode (half resolution)"
    )
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "tests" / "viewer"))  # conftest imports viewer_helpers
    conftest = _module(ROOT / "tests" / "viewer" / "conftest.py", "bench_viewer_conftest")
    helpers = _module(ROOT / "tests" / "viewer" / "viewer_helpers.py", "viewer_helpers")
    reason = conftest.browser_skip_reason()
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    from playwright.sync_api import sync_playwright

    from server import create_app

    with tempfile.TemporaryDirectory() as tmpdir:
        output, factory = _city(args, Path(tmpdir))
        app = create_app({"OUTPUT_DIR": output, "ADDRESS_INDEX_FACTORY": factory})
        served = _count_responses(app)
        with conftest.LiveServer(app) as srv, sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=conftest.chromium_path(), args=conftest.CHROMIUM_ARGS
            )
            print(f"city: {output}  viewport {args.width}x{args.height}  cpus {os.cpu_count()}")
            print(f"chromium {browser.version}")
            print(f"load average before: {os.getloadavg()[0]:.2f}")
            view = (
                _home_view(browser, srv.url, helpers, args.width, args.height) if args.bare else ""
            )
            results = []
            bare: list[float] = []
            for i in range(args.runs):
                if args.bare:
                    bare.append(run_bare_once(browser, srv.url, view, args.width, args.height))
                    print(f"run {i + 1}: bare CesiumJS page loaded in {bare[-1]:.2f} s")
                served.update(requests=0, bytes=0)
                r = run_once(
                    browser, srv.url, helpers, args.width, args.height, args.hash, args.performance
                )
                r["served"] = dict(served)
                results.append(r)
                print(
                    f"run {i + 1}: home view loaded in {r['seconds']:.2f} s, "
                    f"{r['served']['requests']} requests served "
                    f"({r['served']['bytes'] / 1e6:.2f} MB of bodies; browser saw "
                    f"{r['requests']} / {r['bytes'] / 1e6:.2f} MB), "
                    f"{len(r['foreign'])} foreign requests, {len(r['errors'])} console errors"
                )
                marks = ", ".join(f"{k} {v:.2f}" for k, v in r["marks"].items())
                done = ", ".join(f"{k} {v:.2f}" for k, v in r["phases"].items())
                print(f"    page marks (s): {marks}; loaded (s): {done}")
            browser.close()
    med = statistics.median(r["seconds"] for r in results)
    print(f"renderer: {results[-1]['renderer']}")
    print(
        f"median: {med:.2f} s (target ≤ 5 s); requests {results[-1]['served']['requests']}; "
        f"bytes {results[-1]['served']['bytes'] / 1e6:.2f} MB"
    )
    if bare:
        bmed = statistics.median(bare)
        mode = "performance mode" if args.performance else "full resolution"
        print(
            f"bare CesiumJS page median: {bmed:.2f} s; viewer ({mode}) / bare = "
            f"{med / bmed:.2f} (target ≤ 0.5)"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
