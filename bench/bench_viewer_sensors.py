"""Benchmark: the viewer's sensors layer with 10,000 sensors and 1,000 updates/s.

The real path end to end: a live store (SQLite) with N datastreams placed in a grid
around the city centre, a feeder thread storing R readings/s (batches every 100 ms,
values drawn so that states change: some sensors warn, a few alarm and flash), the
server's live hub and SSE stream, and the viewer in headless chromium (software WebGL)
showing the home view. Every second it prints the main thread's busy time (CDP
``Performance.getMetrics`` TaskDuration and ScriptDuration deltas), long tasks (> 50 ms)
and the JS heap; at the end a summary, including the heap's growth after the warm-up.

    .venv/bin/python bench/bench_viewer_sensors.py                    # 2 min, fixture city
    .venv/bin/python bench/bench_viewer_sensors.py --duration 600     # the 10-minute run
    .venv/bin/python bench/bench_viewer_sensors.py --project demo/city.toml --sensors 10000

Targets (the issue): main-thread time per second printed; no memory growth.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "viewer"))

#: long tasks seen by the page, and the first/last moment measured
LONGTASK_JS = """
window.__longtasks = [];
try {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__longtasks.push(e.duration);
  }).observe({type: 'longtask', buffered: true});
} catch (e) {}
"""


def _module(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _city(args: argparse.Namespace, tmp: Path) -> tuple[Path, Any]:
    if args.project:
        from cim.config import load_project

        return load_project(Path(args.project)).output, None
    fx = _module(ROOT / "tests" / "server" / "fixture_city.py", "bench_fixture_city")
    return fx.write_fixture_output(tmp / "output"), fx.FakeAddressIndex


def make_sensors(store: Any, n: int, lon: float, lat: float, h: float) -> list[int]:
    """``n`` datastreams (one Thing, Location, Sensor each; 7 observed properties; 4
    departments) in a square grid about 2 km wide around (lon, lat)."""
    props = ["水位", "空气质量", "车流量", "井盖", "桥梁应变", "管廊燃气", "建筑能耗"]
    depts = ["water", "environment", "traffic", "city"]
    side = max(1, int(n**0.5 + 0.999))
    step = 2000.0 / side / 111_000.0  # degrees, roughly
    ids = []
    with store.transaction(write=True) as tx:
        prop_ids = [tx.insert("observed_properties", {"name": p}) for p in props]
        sensor = tx.insert("sensors", {"name": "bench sensor"})
        for i in range(n):
            x, y = lon + (i % side - side / 2) * step, lat + (i // side - side / 2) * step
            thing = tx.insert("things", {"name": f"传感器 {i}", "department": depts[i % 4]})
            geo = json.dumps({"type": "Point", "coordinates": [x, y, h + 5]})
            loc = tx.insert("locations", {"name": f"位置 {i}", "location": geo})
            tx.execute("INSERT INTO thing_locations VALUES (?, ?)", [thing, loc])
            ids.append(
                tx.insert(
                    "datastreams",
                    {
                        "name": f"传感器 {i}",
                        "observation_type": "OM_Measurement",
                        "unit_of_measurement": json.dumps({"symbol": "m"}),
                        "thing_id": thing,
                        "sensor_id": sensor,
                        "observed_property_id": prop_ids[i % len(props)],
                        "department": depts[i % 4],
                        "warn_high": 80.0,
                        "alarm_high": 95.0,
                    },
                )
            )
    return ids


class Feeder(threading.Thread):
    """Stores ``rate`` readings/s in batches every 100 ms, on random datastreams."""

    def __init__(self, store: Any, ids: list[int], rate: int) -> None:
        super().__init__(daemon=True)
        self.store, self.ids, self.rate = store, ids, rate
        self.stop = threading.Event()
        self.sent = 0

    def run(self) -> None:
        from layers.store import ObservationRow

        rng = random.Random(1)
        per_tick = max(1, self.rate // 10)
        next_t = time.monotonic()
        while not self.stop.is_set():
            now_us = time.time_ns() // 1000
            rows = [
                # mostly normal, ~4 % warning, ~1 % alarm
                ObservationRow(rng.choice(self.ids), now_us + k, rng.betavariate(2, 5) * 110)
                for k in range(per_tick)
            ]
            self.store.insert_observations(rows)
            self.sent += len(rows)
            next_t += 0.1
            self.stop.wait(max(0.0, next_t - time.monotonic()))


def _metrics(cdp: Any) -> dict[str, float]:
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--project", help="a built city.toml (default: the generated fixture)")
    ap.add_argument("--sensors", type=int, default=10_000)
    ap.add_argument("--rate", type=int, default=1000, help="readings per second")
    ap.add_argument("--duration", type=float, default=120.0, help="seconds measured")
    ap.add_argument("--warmup", type=float, default=15.0, help="seconds before measuring")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=800)
    args = ap.parse_args()

    from conftest import CHROMIUM_ARGS, LiveServer, chromium_path
    from playwright.sync_api import sync_playwright
    from viewer_helpers import PERFORMANCE_MODE_JS, wait_loaded

    from layers.store import open_store
    from server import create_app

    with tempfile.TemporaryDirectory(prefix="cim-bench-sensors-") as tmpdir:
        tmp = Path(tmpdir)
        output, index_factory = _city(args, tmp)
        manifest = json.loads((output / "manifest.json").read_text("utf-8"))
        lon, lat, h = [*manifest["centre"], 0.0][:3]
        store_path = str(tmp / "live.sqlite")
        st = open_store(store_path)
        t = time.perf_counter()
        ids = make_sensors(st, args.sensors, lon, lat, h)
        print(f"{len(ids)} datastreams made in {time.perf_counter() - t:.1f} s")
        app = create_app(
            {
                "OUTPUT_DIR": output,
                "ADDRESS_INDEX_FACTORY": index_factory,
                "LIVE_STORE": store_path,
                "LIVE_RETENTION_DAYS": 0,
            }
        )
        from server.blueprints.live import live_runtime
        from server.blueprints.sta import live_state

        with app.app_context():
            store = live_state(app).store
            live_runtime(app)  # the hub, subscribed to the store's commits
        feeder = Feeder(store, ids, args.rate)
        with LiveServer(app) as srv, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": args.width, "height": args.height})
            context.add_init_script(PERFORMANCE_MODE_JS)
            context.add_init_script(LONGTASK_JS)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            cdp = context.new_cdp_session(page)
            cdp.send("Performance.enable")
            page.goto(srv.url, wait_until="domcontentloaded")
            page.wait_for_function("() => window.cim && window.cim.ready", timeout=180_000)
            page.wait_for_function(
                f"() => window.cim.sensors && window.cim.sensors.graphics.size >= {len(ids)}",
                timeout=180_000,
            )
            wait_loaded(page, timeout_s=300)  # tiles loading would count as heap growth
            print(f"snapshot of {len(ids)} sensors drawn; feeding {args.rate} readings/s")
            feeder.start()
            page.wait_for_timeout(args.warmup * 1000)
            cdp.send("HeapProfiler.collectGarbage")
            m0 = _metrics(cdp)
            heap0 = m0["JSHeapUsedSize"]
            i0 = page.evaluate("() => window.cim.sensors.received.items")
            lt0 = page.evaluate("() => window.__longtasks.length")
            sent0 = feeder.sent
            rows = []
            prev, prev_t, prev_items = m0, time.perf_counter(), i0
            t_start = prev_t
            heap_mid = heap0
            print("   t  busy ms/s  cpu ms/s  script ms/s  long tasks  readings/s  heap MB  alarms")
            for sec in range(1, int(args.duration) + 1):
                while time.perf_counter() < t_start + sec:
                    time.sleep(0.05)
                m = _metrics(cdp)
                state = page.evaluate(
                    "() => ({i: window.cim.sensors.received.items,"
                    " lt: window.__longtasks.length, a: window.cim.sensors.store.alarms.size})"
                )
                now = time.perf_counter()
                # the page's own clock: a starved machine stretches the sampling interval
                dt = max(1e-3, m["Timestamp"] - prev["Timestamp"])
                row = {
                    "busy": (m["TaskDuration"] - prev["TaskDuration"]) * 1000 / dt,
                    "cpu": (m.get("ThreadTime", 0) - prev.get("ThreadTime", 0)) * 1000 / dt,
                    "script": (m["ScriptDuration"] - prev["ScriptDuration"]) * 1000 / dt,
                    "readings": (state["i"] - prev_items) / max(1e-3, now - prev_t),
                    "heap": m["JSHeapUsedSize"] / 1e6,
                }
                rows.append(row)
                prev, prev_t, prev_items = m, now, state["i"]
                if sec == int(args.duration) // 2:  # the steady state's heap, after a GC
                    cdp.send("HeapProfiler.collectGarbage")
                    heap_mid = _metrics(cdp)["JSHeapUsedSize"]
                    prev = _metrics(cdp)
                if sec % 10 == 0 or sec <= 3:
                    print(
                        f"{sec:4d}  {row['busy']:9.0f}  {row['cpu']:8.0f}  {row['script']:11.0f}"
                        f"  {state['lt'] - lt0:10d}  {row['readings']:10.0f}"
                        f"  {row['heap']:7.1f}  {state['a']:6d}"
                    )
            applied = page.evaluate("() => window.cim.sensors.received.items") - i0
            readings = feeder.sent - sent0
            feeder.stop.set()
            feeder.join(5)
            cdp.send("HeapProfiler.collectGarbage")
            heap1 = _metrics(cdp)["JSHeapUsedSize"]
            tasks = [r["busy"] for r in rows]
            scripts = [r["script"] for r in rows]
            half = len(rows) // 2
            heaps = [r["heap"] for r in rows]
            slope = _slope(heaps[half:]) * 60
            print(
                f"\n{len(ids)} sensors, {readings / args.duration:.0f} readings/s stored and "
                f"streamed for {args.duration:.0f} s ({len(rows)} samples), "
                f"{args.width}x{args.height} (performance mode), page errors: {len(errors)}"
            )
            elapsed = time.perf_counter() - t_start
            m_end = _metrics(cdp)
            busy_total = (m_end["TaskDuration"] - m0["TaskDuration"]) * 1000
            cpu_total = (m_end.get("ThreadTime", 0) - m0.get("ThreadTime", 0)) * 1000
            print(
                f"readings applied by the page: {applied / elapsed:.0f}/s; main thread busy "
                f"{busy_total / elapsed:.0f} ms per second on average (CPU time "
                f"{cpu_total / elapsed:.0f} ms/s), "
                f"{busy_total / max(1, applied) * 1000:.0f} ms per 1,000 readings"
            )
            print(
                f"main thread busy (TaskDuration): median {statistics.median(tasks):.0f} ms/s, "
                f"p95 {_pct(tasks, 95):.0f} ms/s, max {max(tasks):.0f} ms/s; CPU median "
                f"{statistics.median([r['cpu'] for r in rows]):.0f} ms/s; "
                f"script: median {statistics.median(scripts):.0f} ms/s"
            )
            print(f"long tasks (> 50 ms): {page.evaluate('() => window.__longtasks.length') - lt0}")
            print(
                f"JS heap after GC: {heap0 / 1e6:.1f} MB at start, {heap1 / 1e6:.1f} MB at end "
                f"({(heap1 - heap0) / 1e6:+.1f} MB), {heap_mid / 1e6:.1f} MB at half time "
                f"(half time → end {(heap1 - heap_mid) / 1e6:+.1f} MB); "
                "sampled heap mean first half "
                f"{statistics.mean(heaps[:half] or heaps):.1f} MB, second half "
                f"{statistics.mean(heaps[half:]):.1f} MB, second-half trend {slope:+.2f} MB/min"
            )
            browser.close()
            live_rt = app.extensions.get("cim.live.stream")
            if live_rt is not None:
                live_rt.close()  # the open streams end before the server closes
        store.close()
        st.close()


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q / 100))]


def _slope(ys: list[float]) -> float:
    """Least-squares slope per sample."""
    n = len(ys)
    if n < 2:
        return 0.0
    mx, my = (n - 1) / 2, statistics.mean(ys)
    num = sum((i - mx) * (y - my) for i, y in enumerate(ys))
    den = sum((i - mx) ** 2 for i in range(n))
    return num / den


if __name__ == "__main__":
    main()
