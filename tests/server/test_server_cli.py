"""server.cli: the helpers behind `cim serve`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from cim.errors import ConfigError
from server import cli


def _project(tmp_path: Path, output: Path) -> Path:
    path = tmp_path / "city.toml"
    path.write_text(f'[city]\nname = "测试城"\n[output]\ndir = "{output.as_posix()}"\n', "utf-8")
    return path


def test_viewer_url() -> None:
    assert cli.viewer_url("0.0.0.0", 8000) == "http://localhost:8000/"
    assert cli.viewer_url("127.0.0.1", 80) == "http://127.0.0.1:80/"
    assert cli.viewer_url("::1", 8000) == "http://[::1]:8000/"


def test_make_app_uses_project_output(tmp_path: Path, fixture_output: Path) -> None:
    app = cli.make_app(_project(tmp_path, fixture_output))
    assert app.config["OUTPUT_DIR"] == fixture_output.resolve()
    assert app.config["CITY_NAME"] == "测试城"
    assert app.test_client().get("/api/manifest").status_code == 200


def test_check_install_reports_missing_build(tmp_path: Path) -> None:
    app = cli.make_app(_project(tmp_path, tmp_path / "nothing"), VIEWER_DIR=tmp_path)
    problems = cli.check_install(app)
    assert any("npm ci --prefix viewer" in p for p in problems)
    assert any("cim build" in p for p in problems)


def test_serve_runs_waitress_and_logs_url(
    tmp_path: Path,
    fixture_output: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: dict[str, Any] = {}

    class FakeServer:
        def run(self) -> None:
            calls["ran"] = True

        def close(self) -> None:
            calls["closed"] = True

    def fake_create(app: Any, host: str, port: int) -> FakeServer:
        calls.update(app=app, host=host, port=port)
        return FakeServer()

    from server import wsgi

    monkeypatch.setattr(wsgi, "create_server", fake_create)
    monkeypatch.setenv("CIM_CONNECTION_LIMIT", "777")
    with caplog.at_level(logging.INFO, logger="server.cli"):
        cli.serve(_project(tmp_path, fixture_output), "127.0.0.1", 8123, False)
    assert calls["host"] == "127.0.0.1"
    assert calls["port"] == 8123
    assert calls["ran"] and calls["closed"]
    assert calls["app"].config["CONNECTION_LIMIT"] == 777
    assert "http://127.0.0.1:8123/" in caplog.text
    assert "777 connections" in caplog.text


def test_serve_debug_uses_flask(
    tmp_path: Path, fixture_output: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    from flask import Flask

    monkeypatch.setattr(Flask, "run", lambda self, **kw: seen.update(kw))
    cli.serve(_project(tmp_path, fixture_output), "127.0.0.1", 8124, True)
    assert seen["debug"] is True
    assert seen["port"] == 8124


def test_serve_bad_project(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        cli.serve(tmp_path / "missing.toml", "127.0.0.1", 8000, False)
