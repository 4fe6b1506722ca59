"""Browser test fixtures: a served city (the built sample city, or a generated fixture
on request) and a headless chromium page driven by Playwright.

The tests skip, saying why, when chromium, Playwright or the ``cesium`` npm package is
missing, except under CI (``CI`` set), where that is a failure: the README's test
command installs all three. Environment:

- ``CIM_CHROMIUM``: chromium executable (default: ``chromium`` on PATH or /usr/bin/chromium)
- ``CIM_VIEWER_CITY``: ``fixture`` to force the generated fixture, or a built project's
  ``city.toml`` (or output folder) to use instead of the session's sample build
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from viewer_helpers import LiveServer

sys.path.insert(0, str(Path(__file__).resolve().parent))


ROOT = Path(__file__).resolve().parents[2]
CESIUM_JS = ROOT / "viewer" / "node_modules" / "cesium" / "Build" / "Cesium" / "Cesium.js"
ARTIFACTS = ROOT / "test-artifacts"

#: chromium flags: no sandbox (containers), WebGL2 in software (SwiftShader), no
#: background traffic of chromium's own
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
]


def chromium_path() -> str | None:
    """The chromium executable, or None."""
    env = os.environ.get("CIM_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def browser_skip_reason() -> str | None:
    """Why browser tests cannot run here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install playwright; never `playwright install`)"
    if chromium_path() is None:
        return "chromium is not installed (apt-get install -y chromium)"
    if not CESIUM_JS.is_file():
        return "the cesium npm package is missing (npm ci --prefix viewer)"
    return None


def _require_browser() -> None:
    """Skip the test when the browser tests cannot run here; under CI, fail it."""
    reason = browser_skip_reason()
    if reason:
        if os.environ.get("CI"):  # the README's test command installs all of it
            pytest.fail(f"browser tests cannot run under CI: {reason}")
        pytest.skip(reason)


def load_fixture_city() -> Any:
    """tests/server/fixture_city.py as a module."""
    name = "cim_viewer_fixture_city"
    if name in sys.modules:
        return sys.modules[name]
    path = ROOT / "tests" / "server" / "fixture_city.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@dataclass
class City:
    """A built output folder and how to test it."""

    kind: str  # "sample" or "fixture"
    output: Path
    index_factory: Any = None  # ADDRESS_INDEX_FACTORY for the app (None: the real one)
    known: dict[str, Any] = field(default_factory=dict)  # building id, lon, lat, address


def _sample_known(output: Path) -> dict[str, Any]:
    """A building with an address in the sample build: the nearest to the centre."""
    import json

    manifest = json.loads((output / "manifest.json").read_text(encoding="utf-8"))
    if not (output / "addresses.sqlite").is_file():
        return {}
    from viewer_helpers import candidate_text

    from tiling.addresses import AddressIndex

    lon, lat = manifest["centre"][:2]
    index = AddressIndex(output / "addresses.sqlite")
    for cand in index.reverse(lon, lat, 20):
        c = cand.to_json()
        text = candidate_text(c)
        if c.get("building_id") and text:
            return {
                "id": str(c["building_id"]),
                "lon": c["lon"],
                "lat": c["lat"],
                "address": text,
            }
    return {}


def _sample_output(request: pytest.FixtureRequest) -> Path | None:
    """The built sample city (shared session build), or the city named by
    ``CIM_VIEWER_CITY`` (a built output folder or city.toml); None for ``fixture``."""
    choice = os.environ.get("CIM_VIEWER_CITY", "")
    if choice == "fixture":
        return None
    if choice:
        from cim.config import load_project

        path = Path(choice)
        return path if path.is_dir() else load_project(path).output
    return Path(request.getfixturevalue("sample_output"))


@pytest.fixture(scope="session")
def viewer_city(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> City:
    """The city the browser tests run against (sample build, else generated fixture)."""
    _require_browser()
    output = _sample_output(request)
    if output is not None:
        return City("sample", output, None, _sample_known(output))
    fx = load_fixture_city()
    out = fx.write_fixture_output(tmp_path_factory.mktemp("viewer-city") / "output")
    b = fx.BUILDINGS[3]
    lon, lat = fx.building_lonlat(b)
    known = {"id": b[0], "lon": lon, "lat": lat, "address": b[10]}
    return City("fixture", out, fx.FakeAddressIndex, known)


@pytest.fixture(scope="session")
def live_server(viewer_city: City) -> Iterator[LiveServer]:
    from server import create_app

    app = create_app(
        {"OUTPUT_DIR": viewer_city.output, "ADDRESS_INDEX_FACTORY": viewer_city.index_factory}
    )
    with LiveServer(app) as srv:
        yield srv


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """The session's one headless chromium (Playwright's sync API runs once per
    process: a module starting its own beside this one fails)."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def browser(viewer_city: City, chromium: Any) -> Any:
    """The session's chromium, once the city the browser tests run against is ready."""
    return chromium


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
