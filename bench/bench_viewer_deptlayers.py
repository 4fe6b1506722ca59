"""Benchmark: a 100,000-feature department layer in the viewer (headless chromium).

Serves a built city with a live store, uploads a layer of N points spread over the
city (a CSV through ``POST /api/layers``, with a category style and labels), opens the
viewer and measures:

- **cold**: the layer appears in the catalogue after the page is up (the server builds
  its tile index on the first tile): time from the viewer adding it (switched on) to
  every tile it wants drawn and a frame rendered;
- **switch on** (``--runs`` times): the layer switched off, the viewer's tile cache
  emptied, switched on again: the same time (target ≤ 3 s);
- **street level**: the camera jumps to ~500 m over a dense part: time until drawn;
- **interaction**: frame times while panning (the camera moves every frame for 3 s, a
  frame rendered for each) at the city view and at street level, and the time of a
  pick (``scene.pick`` at a drawn point).

    .venv/bin/python bench/bench_viewer_deptlayers.py --output /path/to/built/output
    .venv/bin/python bench/bench_viewer_deptlayers.py --fixture --features 100000

Chromium renders WebGL2 in software (SwiftShader) here: the figures depend on CPU cores
and load.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "viewer"))


def _module(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _city(args: argparse.Namespace, tmp: Path) -> tuple[Path, Any]:
    if args.output:
        return Path(args.output), None
    if args.fixture:
        fx = _module(ROOT / "tests" / "server" / "fixture_city.py", "bench_fixture_city")
        return fx.write_fixture_output(tmp / "output"), fx.FakeAddressIndex
    from cim.build import build_project
    from cim.config import load_project

    if args.project:
        return load_project(Path(args.project)).output, None
    from cim.sample import write_sample

    project = write_sample(tmp / "sample")
    build_project(project, jobs=2, progress=False)
    return load_project(project).output, None


def points_csv(path: Path, extent: list[float], n: int, seed: int = 7) -> Path:
    """n points over the extent (clustered like street furniture), WGS84 lon/lat."""
    import numpy as np

    rng = np.random.default_rng(seed)
    w, s, e, nn = extent
    centres = rng.uniform([w, s], [e, nn], size=(200, 2))
    pick = rng.integers(0, len(centres), n)
    spread = np.array([(e - w) / 30, (nn - s) / 30])
    xy = centres[pick] + rng.normal(0, 1, (n, 2)) * spread
    xy[:, 0] = xy[:, 0].clip(w, e)
    xy[:, 1] = xy[:, 1].clip(s, nn)
    kinds = np.array(["座椅", "垃圾桶", "路灯", "井盖", "指示牌"])[rng.integers(0, 5, n)]
    with path.open("w", encoding="utf-8") as fh:
        fh.write("lon,lat,名称,类型\n")
        for i in range(n):
            fh.write(f"{xy[i, 0]:.7f},{xy[i, 1]:.7f},设施{i},{kinds[i]}\n")
    return path


#: JS: wait until the layer drew what it wants and a frame was rendered; ms since t0
WAIT_DRAWN_JS = """async ([lid, t0]) => {
  const d = window.cim.deptlayers, v = window.cim.viewer;
  const give = performance.now() + 120000;
  for (;;) {
    const l = d && d.get(lid);
    if (l && l.state().loadedMs !== null && l.state().settled) break;
    if (performance.now() > give) {
      throw new Error('not drawn in 120 s: ' + JSON.stringify(l ? l.state() : d && d.catalog()));
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  await new Promise((r) => { const rm = v.scene.postRender.addEventListener(() => { rm(); r(); });
                             v.scene.requestRender(); });
  return performance.now() - t0;
}"""

#: JS: the catalogue is listed again (the new layer is added, switched on); the time
ANNOUNCE_JS = """() => { const t0 = performance.now();
  window.cim.bus.emit('token:change', {}); return t0; }"""

#: JS: switch the layer off, forget its tiles, switch it on; ms until drawn
SWITCH_JS = """async (lid) => {
  const c = window.cim, l = c.deptlayers.get(lid);
  c.setLayer('deptlayer-' + lid, false);
  l.cache.clear(); l.tilesInfo = null;
  await new Promise((r) => setTimeout(r, 200));
  const t0 = performance.now();
  c.setLayer('deptlayer-' + lid, true);
  return t0;
}"""

#: JS: pan for `ms` milliseconds, one camera step and one rendered frame per animation
#: frame; frame times (ms between rendered frames)
PAN_JS = """async ([ms, step]) => {
  const v = window.cim.viewer, times = [];
  let last = performance.now();
  const end = last + ms;
  const rm = v.scene.postRender.addEventListener(() => {
    const now = performance.now(); times.push(now - last); last = now; });
  let k = 0;
  while (performance.now() < end) {
    v.camera.moveRight(step * (k++ % 120 < 60 ? 1 : -1));
    v.scene.requestRender();
    await new Promise((r) => requestAnimationFrame(() => r()));
  }
  rm();
  return times;
}"""

#: JS: time of scene.pick at a drawn point (and whether it hit the layer)
PICK_JS = """(lid) => {
  const C = window.Cesium, v = window.cim.viewer, l = window.cim.deptlayers.get(lid);
  for (const fid of l.pointsById.keys()) {
    const w = l.where(fid);
    if (!w || w.x === null || w.x < 50 || w.y < 50 || w.x > v.canvas.clientWidth - 50
        || w.y > v.canvas.clientHeight - 50) continue;
    const t0 = performance.now();
    const picked = v.scene.pick(new C.Cartesian2(w.x, w.y));
    return {ms: performance.now() - t0, hit: !!(picked && picked.id && picked.id.layerPick)};
  }
  return null;
}"""


def _stats(times: list[float]) -> str:
    if not times:
        return "no frames"
    s = sorted(times)
    p95 = s[min(len(s) - 1, int(0.95 * len(s)))]
    return (
        f"{len(s)} frames, median {statistics.median(s):.0f} ms, p95 {p95:.0f} ms, "
        f"max {s[-1]:.0f} ms ({1000 / statistics.median(s):.1f} fps)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--output", help="a built output folder to serve")
    ap.add_argument("--project", help="a built project's city.toml")
    ap.add_argument("--fixture", action="store_true", help="the tiny generated city")
    ap.add_argument("--features", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=800)
    args = ap.parse_args()

    import requests
    from conftest import CHROMIUM_ARGS, LiveServer, chromium_path
    from playwright.sync_api import sync_playwright
    from viewer_helpers import LOADED_JS, PERFORMANCE_MODE_JS

    from layers.departments import add_department
    from layers.store import open_store
    from server import create_app

    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="cim-bench-dl-") as tmpdir:
        tmp = Path(tmpdir)
        output, index_factory = _city(args, tmp)
        manifest = json.loads((output / "manifest.json").read_text("utf-8"))
        extent = manifest.get("extent") or [*manifest["centre"][:2], *manifest["centre"][:2]]
        store_path = str(tmp / "live.sqlite")
        st = open_store(store_path)
        token = add_department(st, "cityadmin", "城管局")
        st.close()
        app = create_app(
            {"OUTPUT_DIR": output, "ADDRESS_INDEX_FACTORY": index_factory, "LIVE_STORE": store_path}
        )
        csv = points_csv(tmp / "facilities.csv", extent, args.features)
        with LiveServer(app) as srv, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": args.width, "height": args.height})
            context.add_init_script(PERFORMANCE_MODE_JS)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(srv.url, wait_until="domcontentloaded", timeout=180_000)
            page.wait_for_function("() => window.cim && window.cim.ready", timeout=600_000)
            page.wait_for_function(LOADED_JS, timeout=600_000)
            print(
                f"baseline (no department layer), pan: {_stats(page.evaluate(PAN_JS, [3000, 40]))}"
            )
            base_pick = page.evaluate(
                """() => { const C = window.Cesium, v = window.cim.viewer, t0 = performance.now();
                v.scene.pick(new C.Cartesian2(v.canvas.clientWidth / 2, v.canvas.clientHeight / 2));
                return performance.now() - t0; }"""
            )
            print(f"baseline pick at the centre: {base_pick:.1f} ms")

            t = time.perf_counter()
            with csv.open("rb") as fh:
                r = requests.post(
                    srv.url + "api/layers",
                    data={
                        "name": "市政设施",
                        "crs": "EPSG:4326",
                        "style": json.dumps(
                            {
                                "by": {"kind": "category", "attribute": "类型"},
                                "label": {"attribute": "名称", "max_distance": 600},
                                "point": {"size": 8},
                            }
                        ),
                    },
                    files={"file": ("facilities.csv", fh)},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=600,
                )
            assert r.status_code == 201, r.text
            layer = r.json()["layer"]
            lid = layer["id"]
            print(
                f"uploaded {layer['feature_count']} points in {time.perf_counter() - t:.1f} s "
                f"(serve: {layer.get('serve', '?')})"
            )

            t0 = page.evaluate(ANNOUNCE_JS)
            cold = page.evaluate(WAIT_DRAWN_JS, [lid, t0])
            st0 = page.evaluate("(l) => window.cim.deptlayers.get(l).state()", lid)
            print(
                f"cold (server builds its tile index): drawn {cold / 1000:.2f} s after "
                "switched on; "
                f"{st0['features']} features in {len(st0['drawnTiles'])} tiles "
                f"({', '.join(st0['drawnTiles'])}), {st0['requests']} requests; "
                f"main thread: {st0['drawMs']} ms drawing (of which {st0['heightMs']} ms ground "
                "heights)"
            )
            runs = []
            for i in range(args.runs):
                t0 = page.evaluate(SWITCH_JS, lid)
                ms = page.evaluate(WAIT_DRAWN_JS, [lid, t0])
                runs.append(ms)
                s = page.evaluate("(l) => window.cim.deptlayers.get(l).state()", lid)
                print(
                    f"switch on, run {i + 1}: {ms / 1000:.2f} s, {s['features']} features "
                    f"in {len(s['drawnTiles'])} tiles"
                )
            print(f"switch on, median: {statistics.median(runs) / 1000:.2f} s (target <= 3 s)")

            print(f"pan at the city view: {_stats(page.evaluate(PAN_JS, [3000, 40]))}")
            pick = page.evaluate(PICK_JS, lid)
            if pick:
                print(f"pick at a point: {pick['ms']:.1f} ms (hit the layer: {pick['hit']})")

            lon, lat = manifest["centre"][:2]
            t0 = page.evaluate(
                """([lon, lat]) => { const C = window.Cesium, v = window.cim.viewer;
                const h = v.scene.globe.getHeight(C.Cartographic.fromDegrees(lon, lat)) || 0;
                const t0 = performance.now();
                v.camera.setView({destination: C.Cartesian3.fromDegrees(lon, lat - 0.004, h + 500),
                  orientation: {heading: 0, pitch: C.Math.toRadians(-50), roll: 0}});
                return t0; }""",
                [lon, lat],
            )
            page.wait_for_timeout(300)  # the layer updates 60 ms after the camera stops
            # settled: nothing pending, nothing more wanted (the first tiles of a view come
            # in rounds: "no request pending" alone is true between two rounds)
            street = page.evaluate(
                WAIT_DRAWN_JS.replace("l.state().loadedMs !== null && ", ""), [lid, t0]
            )
            s = page.evaluate("(l) => window.cim.deptlayers.get(l).state()", lid)
            print(
                f"street level: drawn {street / 1000:.2f} s after the jump; "
                f"{s['features']} features, "
                f"{s['labels']} labels in {len(s['drawnTiles'])} tiles"
            )
            # the first pan compiles what street level draws first (labels' glyph shaders:
            # seconds each with software WebGL, once per page); then steady panning
            print(f"pan at street level, first 3 s: {_stats(page.evaluate(PAN_JS, [3000, 5]))}")
            page.wait_for_function(
                "(l) => window.cim.deptlayers.get(l).state().settled", arg=lid, timeout=120_000
            )
            street_pan = page.evaluate(PAN_JS, [3000, 5])
            print(f"pan at street level, steady: {_stats(street_pan)}")
            page.evaluate("(l) => window.cim.setLayer('deptlayer-' + l, false)", lid)
            page.wait_for_timeout(500)
            base_street = page.evaluate(PAN_JS, [3000, 5])
            page.evaluate("(l) => window.cim.setLayer('deptlayer-' + l, true)", lid)
            print(f"pan at street level, layer off: {_stats(base_street)}")
            if street_pan and base_street:
                ratio = statistics.median(street_pan) / statistics.median(base_street)
                print(
                    f"street-level frame time with the layer / without: {ratio:.2f} "
                    "(target <= 1.5: the layer keeps the view interactive)"
                )
            page.wait_for_function(
                "(l) => window.cim.deptlayers.get(l).state().settled", arg=lid, timeout=120_000
            )
            pick = page.evaluate(PICK_JS, lid)
            if pick:
                print(f"pick at a point: {pick['ms']:.1f} ms (hit the layer: {pick['hit']})")
            print(f"page errors: {len(errors)}" + (f" ({errors[:3]})" if errors else ""))
            print(f"load average after: {os.getloadavg()[0]:.2f}")
            browser.close()


if __name__ == "__main__":
    main()
