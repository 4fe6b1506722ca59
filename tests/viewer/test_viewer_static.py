"""The viewer's static files, without a browser: offline-only, no HTML from data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

VIEWER = Path(__file__).resolve().parents[2] / "viewer"
SOURCES = sorted((VIEWER / "src").glob("*.js"))


def test_cesium_is_pinned_and_locked() -> None:
    package = json.loads((VIEWER / "package.json").read_text(encoding="utf-8"))
    version = package["dependencies"]["cesium"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), "pin an exact cesium version"
    lock = json.loads((VIEWER / "package-lock.json").read_text(encoding="utf-8"))
    assert lock["packages"]["node_modules/cesium"]["version"] == version


def test_index_loads_only_local_relative_urls() -> None:
    html = (VIEWER / "index.html").read_text(encoding="utf-8")
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls
    for url in urls:
        assert not re.match(r"^(?:[a-z]+:)?//", url), url
        assert not url.startswith("/"), f"{url}: keep URLs relative (reverse proxies)"
    # CSP: no inline script bodies, no inline event handlers
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"\son[a-z]+=", html)
    assert 'lang="zh-CN"' in html


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_sources_stay_offline_and_text_only(path: Path) -> None:
    js = path.read_text(encoding="utf-8")
    for banned in (
        "createWorldTerrain",
        "createWorldImagery",
        "IonImageryProvider",
        "IonResource",
        "BingMaps",
        "ion.cesium.com",
        "http://",
        "https://",
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ):
        assert banned not in js, f"{path.name} uses {banned}"


def test_ion_token_cleared_and_no_base_layer() -> None:
    main = (VIEWER / "src" / "main.js").read_text(encoding="utf-8")
    assert "Cesium.Ion.defaultAccessToken = ''" in main
    assert "baseLayer: false" in main
    boot = (VIEWER / "src" / "boot.js").read_text(encoding="utf-8")
    assert "CESIUM_BASE_URL" in boot
