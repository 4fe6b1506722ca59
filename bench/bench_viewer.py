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

``--bare`` also times a bare CesiumJS page (default Viewer settings, no ion) loading the
same layers from the same server at the same camera: read from a first load of the
viewer, the home camera and the layers it shows there (terrain, orthophoto read with
the viewer's TileJSON rules, and only the building tilesets shown at home, e.g. L2 but
not the L3 models that stream in close up, at the viewer's screen-space error scaled
to full resolution, so both pages ask for the same tiles). The two pages alternate
(which goes first swaps each run), each in a fresh context with the cache disabled,
timed alike (page open → all its tilesets and the globe report their tiles loaded),
with their requests, bytes and failed requests counted alike; it prints both
pages' absolute seconds per run, both medians and their ratio (issue 12's target: the
viewer ≤ 0.5× the bare page, at full resolution: run without ``--performance``).

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


def _watch(context: Any, page: Any, url: str) -> dict[str, Any]:
    """Cache off; count the page's requests, bytes (CDP encodedDataLength), requests
    to other origins and responses with an HTTP error."""
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    net: dict[str, Any] = {"bytes": 0, "requests": 0, "foreign": [], "failed": [], "errors": []}

    def finished(event: dict[str, Any]) -> None:
        net["bytes"] += int(event.get("encodedDataLength", 0))
        net["requests"] += 1

    def sent(event: dict[str, Any]) -> None:
        u = event["request"]["url"]
        if not u.startswith((url, "blob:", "data:")):
            net["foreign"].append(u)

    cdp.on("Network.loadingFinished", finished)
    cdp.on("Network.requestWillBeSent", sent)
    page.on("response", lambda r: net["failed"].append(r.url) if r.status >= 400 else None)
    page.on("pageerror", lambda e: net["errors"].append(str(e)))
    page.on("console", lambda m: net["errors"].append(m.text) if m.type == "error" else None)
    return net


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
    net = _watch(context, page, url)
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
        **net,
        "phases": phases,
        "marks": marks,
        "renderer": page.evaluate("() => window.cim.renderer"),
    }
    context.close()
    return result


#: a bare CesiumJS page: the library's defaults, the same layers from the same server;
#: ?v=lon,lat,height,heading,pitch,roll (degrees) is the camera, &t=key:sse,... the
#: building tilesets (manifest keys) and their screen-space errors, &terrain=0|1 and
#: &imagery=0|1 the base layers. The orthophoto is read with the viewer's TileJSON
#: rules (layers/imagery.js: row order, tiling scheme, zoom range, bounds, tile size).
BARE_HTML = r"""<!doctype html><html><head><meta charset="utf-8"><title>bare CesiumJS</title>
<script>window.CESIUM_BASE_URL = 'vendor/cesium/';</script>
<script src="vendor/cesium/Cesium.js"></script>
<link rel="stylesheet" href="vendor/cesium/Widgets/widgets.css">
<style>html, body, #c { margin: 0; width: 100%; height: 100%; overflow: hidden; }</style>
</head><body><div id="c"></div><script>
(async () => {
  Cesium.Ion.defaultAccessToken = '';
  const q = new URLSearchParams(location.search);
  const m = await (await fetch('api/manifest')).json();
  const data = new URL('data/', location.href).href;
  const terrain = m.layers.terrain && q.get('terrain') !== '0'
    ? await Cesium.CesiumTerrainProvider.fromUrl(new URL(m.layers.terrain.url, data).href
        .replace(/layer\.json$/, ''), { requestVertexNormals: true })
    : new Cesium.EllipsoidTerrainProvider();
  const viewer = new Cesium.Viewer('c', { baseLayer: false, baseLayerPicker: false,
    geocoder: false, terrainProvider: terrain });
  const info = m.layers.imagery;
  if (info && q.get('imagery') !== '0') {
    const tjUrl = new URL(info.url, data).href;
    const tj = await (await fetch(tjUrl)).json();
    const str = (v) => String(v || '');
    const order = [tj.scheme, info.tile_order, info.scheme].map((v) => str(v).toLowerCase());
    const tms = order.find((v) => v === 'xyz' || v === 'tms') === 'tms';
    const geographic = /4326|geographic|wgs84/i.test([tj.tiling_scheme, tj.crs, tj.projection,
      info.tiling_scheme, info.scheme, info.crs].map(str).join(' '));
    const url = new URL(tj.tiles[0], tjUrl).href.replace(/%7B/g, '{').replace(/%7D/g, '}');
    const size = tj.tileSize || tj.tile_size || info.tile_size || 256;
    const bounds = tj.bounds || info.bounds;
    viewer.imageryLayers.addImageryProvider(new Cesium.UrlTemplateImageryProvider({
      url: tms ? url.replace('{y}', '{reverseY}') : url,
      tilingScheme: geographic ? new Cesium.GeographicTilingScheme()
        : new Cesium.WebMercatorTilingScheme(),
      minimumLevel: Number.isInteger(tj.minzoom) ? tj.minzoom : 0,
      maximumLevel: Number.isInteger(tj.maxzoom) ? tj.maxzoom : undefined,
      rectangle: Array.isArray(bounds) ? Cesium.Rectangle.fromDegrees(...bounds) : undefined,
      tileWidth: size, tileHeight: size }));
  }
  const tilesets = [];
  for (const spec of (q.get('t') || '').split(',').filter(Boolean)) {
    const [key, sse] = spec.split(':');
    if (!m.layers[key]) continue;
    const ts = await Cesium.Cesium3DTileset.fromUrl(new URL(m.layers[key].url, data).href,
      { maximumScreenSpaceError: Number(sse) || 16 });
    viewer.scene.primitives.add(ts);
    tilesets.push(ts);
  }
  const v = q.get('v').split(',').map(Number);
  const r = Cesium.Math.toRadians;
  viewer.camera.setView({ destination: Cesium.Cartesian3.fromDegrees(v[0], v[1], v[2]),
    orientation: { heading: r(v[3]), pitch: r(v[4]), roll: r(v[5]) } });
  // loaded: judged on frames drawn at this camera, not on the state before setView
  let frames = 0;
  viewer.scene.postRender.addEventListener(() => { frames += 1; });
  window.bare = { viewer, tilesets, frames: () => frames };
})();
</script></body></html>"""

#: JS: the bare page's layers all loaded (after a frame drawn at its camera)
BARE_LOADED_JS = """() => { const b = window.bare; if (!b || b.frames() < 1) return false;
  return b.tilesets.every((t) => t.tilesLoaded) && b.viewer.scene.globe.tilesLoaded; }"""


def run_bare_once(browser: Any, url: str, query: str, width: int, height: int) -> dict[str, Any]:
    """One cold load of the bare CesiumJS page (camera and layers in the query)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    net = _watch(context, page, url)
    # the bare page is served at the server's origin by the browser itself (no CSP)
    page.route(
        f"{url}bare.html*",
        lambda route: route.fulfill(status=200, content_type="text/html", body=BARE_HTML),
    )
    start = time.perf_counter()
    page.goto(f"{url}bare.html?{query}", wait_until="commit")
    page.wait_for_function(BARE_LOADED_JS, timeout=600000, polling=50)
    seconds = time.perf_counter() - start
    page.wait_for_timeout(200)  # let the last loadingFinished events arrive
    context.close()
    return {"seconds": seconds, **net}


#: JS: the viewer's home camera (lon, lat, height, heading, pitch, roll in degrees) and
#: the layers it shows: building tilesets with their screen-space error at full
#: resolution (divided by the resolution scale), terrain and imagery on or off
HOME_JS = """() => { const c = window.cim, C = window.Cesium, v = c.viewer, cam = v.camera;
  const p = cam.positionCartographic;
  const view = [C.Math.toDegrees(p.longitude), C.Math.toDegrees(p.latitude), p.height,
    C.Math.toDegrees(cam.heading), C.Math.toDegrees(cam.pitch), C.Math.toDegrees(cam.roll)]
    .map((x) => x.toFixed(7)).join(',');
  const scale = v.resolutionScale || 1;
  const tilesets = Object.entries(c.tilesets).filter(([, t]) => t && t.show)
    .map(([k, t]) => `${k}:${+(t.maximumScreenSpaceError / scale).toFixed(3)}`).join(',');
  const terrain = !(v.terrainProvider instanceof C.EllipsoidTerrainProvider);
  const imagery = v.imageryLayers.length > 0 && v.imageryLayers.get(0).show;
  return {view, tilesets, terrain, imagery}; }"""


def _home_query(browser: Any, url: str, helpers: Any, width: int, height: int) -> str:
    """The bare page's query: the viewer's home camera and the layers shown there."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto(url)
    helpers.wait_loaded(page, timeout_s=180)
    home = page.evaluate(HOME_JS)
    context.close()
    print(
        f"home view: camera {home['view']}; building tilesets shown (key:sse) "
        f"{home['tilesets'] or 'none'}; terrain {home['terrain']}; imagery {home['imagery']}"
    )
    return (
        f"v={home['view']}&t={home['tilesets']}"
        f"&terrain={int(home['terrain'])}&imagery={int(home['imagery'])}"
    )


def _net(r: dict[str, Any]) -> str:
    """A run's requests and bytes, served and seen, and what failed."""
    return (
        f"{r['served']['requests']} requests served ({r['served']['bytes'] / 1e6:.2f} MB of "
        f"bodies; browser saw {r['requests']} / {r['bytes'] / 1e6:.2f} MB), "
        f"{len(r['failed'])} HTTP errors, {len(r['foreign'])} foreign requests, "
        f"{len(r['errors'])} console errors"
    )


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
            query = (
                _home_query(browser, srv.url, helpers, args.width, args.height) if args.bare else ""
            )
            results = []
            bare: list[dict[str, Any]] = []

            def viewer_run(i: int) -> None:
                served.update(requests=0, bytes=0)
                r = run_once(
                    browser, srv.url, helpers, args.width, args.height, args.hash, args.performance
                )
                r["served"] = dict(served)
                results.append(r)
                print(f"run {i + 1}: viewer home view loaded in {r['seconds']:.2f} s, {_net(r)}")
                marks = ", ".join(f"{k} {v:.2f}" for k, v in r["marks"].items())
                done = ", ".join(f"{k} {v:.2f}" for k, v in r["phases"].items())
                print(f"    page marks (s): {marks}; loaded (s): {done}")

            def bare_run(i: int) -> None:
                served.update(requests=0, bytes=0)
                r = run_bare_once(browser, srv.url, query, args.width, args.height)
                r["served"] = dict(served)
                bare.append(r)
                print(f"run {i + 1}: bare CesiumJS page loaded in {r['seconds']:.2f} s, {_net(r)}")

            for i in range(args.runs):
                # alternate which page goes first: neither always meets a warmer machine
                order = [bare_run, viewer_run] if i % 2 == 0 else [viewer_run, bare_run]
                for run in order if args.bare else [viewer_run]:
                    run(i)
                    print(f"    load average: {os.getloadavg()[0]:.2f}", flush=True)
            browser.close()
    med = statistics.median(r["seconds"] for r in results)
    print(f"renderer: {results[-1]['renderer']}")
    print(
        f"median: {med:.2f} s (target ≤ 5 s); requests {results[-1]['served']['requests']}; "
        f"bytes {results[-1]['served']['bytes'] / 1e6:.2f} MB"
    )
    if bare:
        bmed = statistics.median(r["seconds"] for r in bare)
        mode = "performance mode" if args.performance else "full resolution"
        print(
            f"bare CesiumJS page median: {bmed:.2f} s (runs "
            + ", ".join(f"{r['seconds']:.2f}" for r in bare)
            + f"); viewer median: {med:.2f} s (runs "
            + ", ".join(f"{r['seconds']:.2f}" for r in results)
            + f"); viewer ({mode}) / bare = {med / bmed:.2f} (target ≤ 0.5)"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
