"""Helpers shared by the browser tests and bench/bench_viewer.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

#: JS: true once the page is ready and every tileset and the globe report loaded
LOADED_JS = """() => {
  const c = window.cim;
  if (!c) return false;
  if (c.error) return 'error: ' + c.error;
  if (!c.ready) return false;
  const ts = Object.values(c.tilesets || {}).filter(Boolean);
  return ts.every((t) => t.tilesLoaded) && c.viewer.scene.globe.tilesLoaded;
}"""

#: JS: the first canvas pixel (CSS px) spiralling out from the centre that shows an L2
#: building, as {x, y, id}, or null
FIND_ANY_BUILDING_JS = """() => {
  const c = window.cim, C = window.Cesium, scene = c.viewer.scene, canvas = scene.canvas;
  const cx = canvas.clientWidth / 2, cy = canvas.clientHeight / 2;
  for (let r = 0; r <= 300; r += 15) {
    const steps = r === 0 ? 1 : Math.max(8, Math.round(r / 10));
    for (let k = 0; k < steps; k++) {
      const a = (2 * Math.PI * k) / steps;
      const x = cx + r * Math.cos(a), y = cy + r * Math.sin(a);
      if (document.elementFromPoint(x, y) !== canvas) continue;
      const id = c.buildings.idOf(scene.pick(new C.Cartesian2(x, y)));
      if (id) return {x, y, id};
    }
  }
  return null;
}"""


#: init script: the viewer's performance mode (half resolution), as the browser tests
#: run under software WebGL; the default (full resolution) has its own test
PERFORMANCE_MODE_JS = "try { localStorage.setItem('cim.performance', 'on'); } catch (e) {}"


def candidate_text(c: dict[str, Any]) -> str:
    """The text the viewer shows for an address candidate (mirrors search.js)."""
    for key in ("label", "address"):
        if c.get(key):
            return str(c[key])
    comp = c.get("components")
    if isinstance(comp, dict):
        if comp.get("full"):
            return str(comp["full"])
        parts = [str(v) for v in comp.values() if isinstance(v, str | int | float)]
        if parts:
            return "".join(parts)
    return ""


@dataclass
class PageLog:
    """Console errors, page errors and requests of one page."""

    base_url: str
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    #: requests the page itself cancelled: CesiumJS aborts a tile request whose tile
    #: left the view before it arrived (net::ERR_ABORTED); not a failure of the server
    cancelled: list[str] = field(default_factory=list)
    bytes: int = 0
    responses: int = 0

    def attach(self, page: Any) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("request", lambda req: self.requests.append(req.url))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def _console(self, msg: Any) -> None:
        if msg.type == "error":
            self.errors.append(f"console: {msg.text}")

    def _failed(self, req: Any) -> None:
        reason = req.failure or ""
        if "ERR_ABORTED" in reason:
            self.cancelled.append(req.url)
        else:
            self.errors.append(f"failed: {req.url} ({reason})")

    def _response(self, resp: Any) -> None:
        self.responses += 1
        try:
            length = resp.headers.get("content-length")
            self.bytes += int(length) if length else 0
        except (ValueError, TypeError):
            pass

    def foreign_requests(self) -> list[str]:
        """Requests to anything but the server (blob: and data: URLs are local)."""
        return [
            u
            for u in self.requests
            if not u.startswith(self.base_url) and not u.startswith(("blob:", "data:"))
        ]


@contextmanager
def performance_page(browser: Any, url: str) -> Iterator[Any]:
    """A page of the viewer at ``url`` in performance mode (1024 × 700, zh-CN), its
    home view loaded; its browser context closed afterwards."""
    context = browser.new_context(viewport={"width": 1024, "height": 700}, locale="zh-CN")
    context.add_init_script(PERFORMANCE_MODE_JS)
    try:
        page = context.new_page()
        page.goto(url, wait_until="domcontentloaded")
        wait_loaded(page, timeout_s=120)
        yield page
    finally:
        context.close()


def wait_loaded(page: Any, timeout_s: float = 90.0) -> float:
    """Wait until LOADED_JS is true; seconds waited. Raises on a viewer error."""
    start = time.perf_counter()
    deadline = start + timeout_s
    while time.perf_counter() < deadline:
        state = page.evaluate(LOADED_JS)
        if isinstance(state, str):
            raise AssertionError(f"viewer reported {state}")
        if state:
            return time.perf_counter() - start
        page.wait_for_timeout(50)
    raise AssertionError(f"home view not loaded within {timeout_s} s")


class LiveServer:
    """The app served by waitress on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        from waitress import create_server

        self.server = create_server(app, host="127.0.0.1", port=0, threads=16, ident="cim")
        self.url = f"http://127.0.0.1:{self.server.effective_port}/"
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.close()
