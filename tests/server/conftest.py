"""Fixtures for the server tests: a tiny generated output folder and a test client."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixture_city import FakeAddressIndex, write_fixture_output
from flask import Flask
from flask.testing import FlaskClient

from server import create_app


@pytest.fixture(scope="session")
def fixture_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated output folder (manifest, one-glb tileset, terrain, imagery)."""
    root = tmp_path_factory.mktemp("city")
    (root / "secret.txt").write_text("TOP-SECRET", encoding="utf-8")
    return write_fixture_output(root / "output")


@pytest.fixture
def app(fixture_output: Path, tmp_path: Path) -> Iterator[Flask]:
    viewer = tmp_path / "viewer"
    (viewer / "src").mkdir(parents=True)
    (viewer / "index.html").write_text("<!doctype html><title>t</title>", encoding="utf-8")
    (viewer / "src" / "main.js").write_text("export {};", encoding="utf-8")
    (viewer / "package.json").write_text("{}", encoding="utf-8")
    cesium = viewer / "node_modules" / "cesium" / "Build" / "Cesium"
    cesium.mkdir(parents=True)
    (cesium / "Cesium.js").write_text("var Cesium={};", encoding="utf-8")
    yield create_app(
        {
            "TESTING": True,
            "OUTPUT_DIR": fixture_output,
            "VIEWER_DIR": viewer,
            "ADDRESS_INDEX_FACTORY": FakeAddressIndex,
        }
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
