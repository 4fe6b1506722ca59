"""The viewer's static files, without a browser: offline-only, no HTML from data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

VIEWER = Path(__file__).resolve().parents[2] / "viewer"
SOURCES = sorted((VIEWER / "src").rglob("*.js"))


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


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(VIEWER).as_posix())
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


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(VIEWER).as_posix())
def test_every_module_is_type_checked(path: Path) -> None:
    assert path.read_text(encoding="utf-8").startswith("// @ts-check\n")


def test_npm_checks_are_wired() -> None:
    package = json.loads((VIEWER / "package.json").read_text(encoding="utf-8"))
    assert package["type"] == "module"
    assert {"lint", "typecheck", "test"} <= set(package["scripts"])
    lock = json.loads((VIEWER / "package-lock.json").read_text(encoding="utf-8"))
    for dev in ("eslint", "typescript", "@eslint/js"):
        assert dev in package["devDependencies"]
        assert lock["packages"][f"node_modules/{dev}"]["version"] == package["devDependencies"][dev]
    test_sh = (VIEWER.parent / "scripts" / "test.sh").read_text(encoding="utf-8")
    for script in ("lint", "typecheck", "test"):
        assert f"npm --prefix viewer {'' if script == 'test' else 'run '}{script}" in test_sh


def test_vendored_libraries_served_from_one_route(tmp_path: Path) -> None:
    """vendor.json names each library; the page loads CesiumJS through /vendor/."""
    from server import create_app

    listing = json.loads((VIEWER / "vendor.json").read_text(encoding="utf-8"))["libraries"]
    assert listing["cesium"] == "cesium/Build/Cesium"
    html = (VIEWER / "index.html").read_text(encoding="utf-8")
    assert 'src="vendor/cesium/Cesium.js"' in html
    if not (VIEWER / "node_modules" / listing["cesium"] / "Cesium.js").is_file():
        pytest.skip("the cesium npm package is missing (npm ci --prefix viewer)")
    client = create_app({"OUTPUT_DIR": tmp_path}).test_client()
    resp = client.get("/vendor/cesium/Cesium.js")
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"].startswith("public, max-age=")
    assert client.get("/cesium/Cesium.js").data == resp.data  # the old URL still works
    for bad in (
        "/vendor/nope/x.js",  # not listed
        "/vendor/cesium/../../package.json",
        "/vendor/cesium/%2e%2e/%2e%2e/%2e%2e/package.json",
        "/vendor/eslint/package.json",  # installed but not listed
    ):
        assert client.get(bad).status_code == 404, bad
