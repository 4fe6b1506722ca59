"""Benchmark: the viewer's events layer with 10,000 open cases (the issue's target).

The real path end to end: a live store (SQLite) holding N open cases placed in a grid
about 2 km wide around the city centre (every open state; a share reported days ago,
so overdue and flashing), the server's events API and live stream, and the viewer in
headless chromium (software WebGL) showing the home view. A feeder takes ``--rate``
transitions per second through the HTTP API with a department token (each one an
``event`` delta on the stream that moves a marker).

Printed: how long until every case is drawn (the layer reads them in pages of 1,000),
then every second the main thread's busy time (CDP ``Performance.getMetrics``
TaskDuration and ScriptDuration deltas), long tasks (> 50 ms) and the JS heap; the
time of the layer's full re-read (what it does every minute: overdue comes with time
alone) and how long a click on a marker takes to open its detail. At the end a summary.

    .venv/bin/python bench/bench_viewer_events.py                  # 10,000 cases, 60 s
    .venv/bin/python bench/bench_viewer_events.py --events 20000 --duration 120
    .venv/bin/python bench/bench_viewer_events.py --project demo/city.toml

Target (the issue): the viewer shows 10,000 open events and stays interactive.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "viewer"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_viewer_sensors import LONGTASK_JS, _city, _metrics, _pct  # noqa: E402

#: the open states a case is moved to when made, with the actions that get it there
PATHS = [
    [],
    ["file"],
    ["file", "dispatch"],
    ["file", "dispatch", "accept"],
    ["file", "dispatch", "accept", "report_done"],
]
#: what the feeder does next on a case in each state
NEXT = {"reported": "file", "filed": "dispatch", "dispatched": "accept",
        "handling": "report_done", "handled": "check"}  # fmt: skip


def make_events(store: Any, n: int, lon: float, lat: float, h: float) -> list[int]:
    """``n`` open cases in a square grid about 2 km wide around (lon, lat), in one
    write transaction; one in eight reported three days ago (overdue)."""
    from layers.events.config import events_config
    from layers.events.model import Actor
    from layers.events.store import EventStore

    events = EventStore(store, events_config())
    boss = Actor("bench", "admin")
    subs = [s.code for c in events.config.table.categories for s in c.subcategories][:40]
    side = max(1, int(n**0.5 + 0.999))
    step = 2000.0 / side / 111_000.0
    rng = random.Random(3)
    now = dt.datetime.now(dt.UTC)
    ids = []
    with store.transaction(write=True):  # the cases' own transactions join this one
        for i in range(n):
            x, y = lon + (i % side - side / 2) * step, lat + (i // side - side / 2) * step
            at = now - dt.timedelta(days=3) if i % 8 == 0 else now - dt.timedelta(minutes=5)
            e = events.report(subcategory=subs[i % len(subs)], source="patrol",
                              description=f"巡查上报 {i}", reporter=boss, at=at,
                              lon=x, lat=y, height=h + 2)  # fmt: skip
            for k, action in enumerate(rng.choice(PATHS)):
                kw = {"department": "water"} if action == "dispatch" else {}
                events.transition(
                    e.id or 0, action, boss, at=at + dt.timedelta(seconds=k + 1), **kw
                )
            ids.append(e.id or 0)
    return ids


class Feeder(threading.Thread):
    """Takes ``rate`` transitions/s on random cases through the HTTP API."""

    def __init__(self, url: str, token: str, ids: list[int], rate: float) -> None:
        super().__init__(daemon=True)
        self.url, self.ids, self.rate = url, ids, rate
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.stop = threading.Event()
        self.done = 0
        self.failed = 0

    def run(self) -> None:
        rng = random.Random(5)
        next_t = time.monotonic()
        while not self.stop.is_set() and self.rate > 0:
            eid = rng.choice(self.ids)
            try:
                case = self.http.get(f"{self.url}api/events/{eid}", timeout=30).json()
                action = NEXT.get(case.get("state"))
                if action:
                    body = {"action": action}
                    if action == "dispatch":
                        body["department"] = "water"
                    tag = {"If-Match": f'"v{case["version"]}"'}
                    url = f"{self.url}api/events/{eid}/transitions"
                    r = self.http.post(url, json=body, headers=tag, timeout=30)
                    self.done += r.status_code == 200
                    self.failed += r.status_code != 200
            except requests.RequestException:
                self.failed += 1
            next_t += 1 / self.rate
            self.stop.wait(max(0.0, next_t - time.monotonic()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--project", help="a built city.toml (default: the generated fixture)")
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=5.0, help="transitions per second")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds measured")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=800)
    args = ap.parse_args()

    from conftest import CHROMIUM_ARGS, LiveServer, chromium_path
    from playwright.sync_api import sync_playwright
    from viewer_helpers import PERFORMANCE_MODE_JS, wait_loaded

    from layers.departments import add_department
    from layers.events.roles import set_roles
    from layers.store import open_store
    from server import create_app

    with tempfile.TemporaryDirectory(prefix="cim-bench-events-") as tmpdir:
        tmp = Path(tmpdir)
        output, index_factory = _city(args, tmp)
        manifest = json.loads((output / "manifest.json").read_text("utf-8"))
        lon, lat, h = [*manifest["centre"], 0.0][:3]
        store_path = str(tmp / "live.sqlite")
        st = open_store(store_path)
        t = time.perf_counter()
        ids = make_events(st, args.events, lon, lat, h)
        token = add_department(st, "center", "指挥中心", admin=True)
        set_roles(st, "center", ["operator", "supervisor", "dispatcher", "inspector"])
        st.close()
        print(f"{len(ids)} open cases made in {time.perf_counter() - t:.1f} s")
        app = create_app(
            {"OUTPUT_DIR": output, "ADDRESS_INDEX_FACTORY": index_factory,
             "LIVE_STORE": store_path, "LIVE_RETENTION_DAYS": 0}
        )  # fmt: skip
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
            t0 = time.perf_counter()
            page.goto(srv.url, wait_until="domcontentloaded")
            page.wait_for_function("() => window.cim && window.cim.events", timeout=180_000)
            page.wait_for_function(
                f"() => window.cim.events.markers.size >= {len(ids)}", timeout=300_000
            )
            drawn_s = time.perf_counter() - t0
            print(f"all {len(ids)} cases drawn {drawn_s:.1f} s after the page was opened")
            wait_loaded(page, timeout_s=300)
            reload_ms = _reload(page, len(ids))
            click_ms = _click(page)
            print(
                f"full re-read of the cases: {reload_ms:.0f} ms; click → detail: {click_ms:.0f} ms"
            )
            feeder = Feeder(srv.url, token, ids, args.rate)
            feeder.start()
            page.wait_for_timeout(args.warmup * 1000)
            cdp.send("HeapProfiler.collectGarbage")
            m0 = _metrics(cdp)
            lt0 = page.evaluate("() => window.__longtasks.length")
            d0 = page.evaluate("() => window.cim.events.received.deltas")
            rows: list[dict[str, float]] = []
            prev, t_start = m0, time.perf_counter()
            print("   t  busy ms/s  cpu ms/s  script ms/s  long tasks  deltas  heap MB")
            for sec in range(1, int(args.duration) + 1):
                while time.perf_counter() < t_start + sec:
                    time.sleep(0.05)
                m = _metrics(cdp)
                state = page.evaluate(
                    "() => ({lt: window.__longtasks.length, d: window.cim.events.received.deltas})"
                )
                span = max(1e-3, m["Timestamp"] - prev["Timestamp"])
                row = {
                    "busy": (m["TaskDuration"] - prev["TaskDuration"]) * 1000 / span,
                    "cpu": (m.get("ThreadTime", 0) - prev.get("ThreadTime", 0)) * 1000 / span,
                    "script": (m["ScriptDuration"] - prev["ScriptDuration"]) * 1000 / span,
                    "heap": m["JSHeapUsedSize"] / 1e6,
                }
                rows.append(row)
                prev = m
                if sec % 10 == 0 or sec <= 3:
                    print(f"{sec:4d}  {row['busy']:9.0f}  {row['cpu']:8.0f}  "
                          f"{row['script']:11.0f}  {state['lt'] - lt0:10d}  "
                          f"{state['d'] - d0:6d}  {row['heap']:7.1f}")  # fmt: skip
            feeder.stop.set()
            feeder.join(10)
            deltas = page.evaluate("() => window.cim.events.received.deltas") - d0
            long_tasks = page.evaluate("() => window.__longtasks.slice()")[lt0:]
            click_after = _click(page)
            busy = [r["busy"] for r in rows]
            print(
                f"\n{len(ids)} open cases, {feeder.done} transitions through the API "
                f"({feeder.failed} refused), {deltas} deltas applied, {args.duration:.0f} s, "
                f"{args.width}x{args.height} (performance mode), page errors: {len(errors)}"
            )
            print(f"drawn after {drawn_s:.1f} s; full re-read {reload_ms:.0f} ms; click → detail "
                  f"{click_ms:.0f} ms before and {click_after:.0f} ms after the run")  # fmt: skip
            print(f"main thread busy: median {statistics.median(busy):.0f} ms/s, p95 "
                  f"{_pct(busy, 95):.0f} ms/s, max {max(busy):.0f} ms/s; CPU median "
                  f"{statistics.median([r['cpu'] for r in rows]):.0f} ms/s; script median "
                  f"{statistics.median([r['script'] for r in rows]):.0f} ms/s")  # fmt: skip
            print(f"long tasks (> 50 ms): {len(long_tasks)}"
                  + (f", longest {max(long_tasks):.0f} ms" if long_tasks else ""))  # fmt: skip
            print(f"JS heap: {rows[0]['heap']:.1f} MB at start, {rows[-1]['heap']:.1f} MB at end")
            for e in errors[:5]:
                print("page error:", e)
            browser.close()
            live_rt = app.extensions.get("cim.live.stream")
            if live_rt is not None:
                live_rt.close()


def _reload(page: Any, n: int) -> float:
    """Milliseconds of the layer's full re-read (pages of 1,000, every marker drawn)."""
    return page.evaluate(
        """async (n) => {
            const layer = window.cim.events;
            const t0 = performance.now();
            await layer.reload();
            if (layer.markers.size < n) throw new Error('cases lost on re-read');
            return performance.now() - t0;
        }""",
        n,
    )


def _click(page: Any) -> float:
    """Milliseconds from a click on a marker to its detail panel showing that case."""
    spot = page.evaluate(
        """() => {
            const layer = window.cim.events;
            const w = innerWidth, h = innerHeight;
            for (const id of layer.markers.keys()) {
                const s = layer.screenPosition(id);
                if (s && s.x > w * 0.3 && s.x < w * 0.7 && s.y > h * 0.2 && s.y < h * 0.8)
                    return {id, ...s};
            }
            return null;
        }"""
    )
    if spot is None:
        return float("nan")
    box = page.locator("#cesiumContainer canvas").first.bounding_box()
    page.evaluate(
        "() => { const p = document.getElementById('evPanel'); if (p) delete p.dataset.event; }"
    )
    t0 = time.perf_counter()
    page.mouse.click(box["x"] + spot["x"], box["y"] + spot["y"])
    page.wait_for_function(
        "() => { const p = document.getElementById('evPanel');"
        " return p && !p.hidden && p.dataset.event; }",
        timeout=30_000,
    )
    return (time.perf_counter() - t0) * 1000


if __name__ == "__main__":
    main()
