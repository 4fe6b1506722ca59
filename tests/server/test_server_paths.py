"""No absolute server path in anything served; the building and ground endpoints."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixture_city import BUILDINGS, CENTRE, building_lonlat
from flask import Flask
from flask.testing import FlaskClient

from server import create_app
from server.security import redact_json, redact_paths

#: prefixes no served string may start with (nor contain after a space or quote)
FORBIDDEN = ("/root", "/tmp", "/home", "/srv", "/work", "/var", "/Users", "C:\\")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _assert_no_paths(value: Any, roots: list[Path]) -> None:
    for s in _strings(value):
        for root in roots:
            assert str(root) not in s, s
        for bad in FORBIDDEN:
            assert not s.startswith(bad), s
            assert f" {bad}" not in s and f"'{bad}" not in s and f'"{bad}' not in s, s


@pytest.fixture
def leaky(fixture_output: Path, tmp_path: Path) -> tuple[Flask, Path]:
    """A copy of the fixture output whose manifest holds absolute paths."""
    out = tmp_path / "srv" / "city" / "output"
    shutil.copytree(fixture_output, out)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    manifest["project"] = str(tmp_path / "srv" / "city" / "city.toml")
    manifest["inputs"] = {
        "/root/city/data/buildings.gpkg": "abc",
        str(out.parent / "data" / "dem.tif"): "def",
    }
    manifest["layers"]["l2"]["source"] = "/home/gis/平城/buildings.shp"
    manifest["notes"] = [f"built into {out}", "C:\\Users\\gis\\city\\out"]
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), "utf-8")

    def failing_index(path: Path) -> None:
        raise OSError(2, "No such file or directory", str(path))

    app = create_app({"TESTING": True, "OUTPUT_DIR": out, "ADDRESS_INDEX_FACTORY": failing_index})
    return app, out


def test_no_absolute_path_in_any_api_response(leaky: tuple[Flask, Path]) -> None:
    app, out = leaky
    client = app.test_client()
    lon, lat = building_lonlat(BUILDINGS[0])
    urls = [
        "/api/health",
        "/api/manifest",
        "/api/search?q=中山路",
        f"/api/reverse?lon={lon}&lat={lat}",
        f"/api/buildings/at?lon={lon}&lat={lat}",
        "/api/buildings/B0001",
        "/api/buildings/nope",
        f"/api/ground?lon={lon}&lat={lat}",
        "/api/ground?lon=x",
        "/data/missing.json",
        "/data/../secret.txt",
        "/api/nope",
    ]
    seen = 0
    for url in urls:
        resp = client.get(url)
        assert resp.is_json, url
        _assert_no_paths(resp.json, [out, out.parent])
        seen += 1
    assert seen == len(urls)
    # the manifest keeps its content, relative
    body = client.get("/api/manifest").json
    assert body["project"] == "city.toml"
    assert "data/dem.tif" in body["inputs"]
    assert body["layers"]["l2"]["source"] == "buildings.shp"
    # the failing index's message kept its reason, not its path
    msg = client.get("/api/search?q=x").json["error"]["message"]
    assert "No such file or directory" in msg and "addresses.sqlite" in msg


def test_manifest_read_error_names_no_path(
    leaky: tuple[Flask, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, out = leaky

    def denied(self: Path, *args: Any, **kwargs: Any) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", denied)
    resp = app.test_client().get("/api/manifest")
    assert resp.status_code == 503
    assert "Permission denied" in resp.json["error"]["message"]
    _assert_no_paths(resp.json, [out])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cannot read '/srv/city/output/a/b.json'", "cannot read 'a/b.json'"),
        ("/root/x/y.tif: bad", "y.tif: bad"),
        ("C:\\Users\\gis\\out.json missing", "out.json missing"),
        ("see /api/search?q=1", "see /api/search?q=1"),
        ("tiles/l2/tileset.json", "tiles/l2/tileset.json"),
        ("http://host/a/b/c", "http://host/a/b/c"),
        ("2026/11/28", "2026/11/28"),
    ],
)
def test_redact_paths(text: str, expected: str) -> None:
    assert redact_paths(text, ["/srv/city/output"]) == expected


def test_redact_json_keys_and_values() -> None:
    got = redact_json({"/tmp/a/b.tif": ["/tmp/a/c.tif", 1, None]}, [])
    assert got == {"b.tif": ["c.tif", 1, None]}


# --- buildings and ground (cim.outputs through the server) ---------------------------


def test_building_at_and_by_id(client: FlaskClient) -> None:
    b = BUILDINGS[3]
    lon, lat = building_lonlat(b)
    resp = client.get("/api/buildings/at", query_string={"lon": lon, "lat": lat})
    assert resp.status_code == 200
    got = resp.json["building"]
    assert got["id"] == b[0] and got["name"] == b[1] and got["height"] == b[5]
    assert got["top"] == pytest.approx(CENTRE[2] + b[5])
    assert got["footprint"]["type"] == "Polygon"
    one = client.get(f"/api/buildings/{b[0]}", query_string={"geometry": 0}).json["building"]
    assert one["floors"] == b[4] and "footprint" not in one


def test_building_errors(client: FlaskClient) -> None:
    far = client.get("/api/buildings/at", query_string={"lon": 0, "lat": 0})
    assert far.status_code == 404
    assert client.get("/api/buildings/NOPE").status_code == 404
    assert client.get("/api/buildings/at", query_string={"lon": 500, "lat": 0}).status_code == 400
    assert client.get("/api/buildings/" + "x" * 300).status_code == 400


def test_ground_without_terrain_uses_building_base(fixture_output: Path, tmp_path: Path) -> None:
    from fixture_city import fixture_buildings

    from tiling.buildings.export import write_buildings_table

    out = tmp_path / "output"
    shutil.copytree(fixture_output, out)
    b = fixture_buildings()
    b.base[:] = 37.5
    write_buildings_table(b, out)
    client = create_app({"TESTING": True, "OUTPUT_DIR": out}).test_client()
    lon, lat = building_lonlat(BUILDINGS[0])
    resp = client.get("/api/ground", query_string={"lon": lon, "lat": lat})
    assert resp.status_code == 200
    assert resp.json["height"] == 37.5
    # beside the buildings: the nearest one's base; far from all: the ellipsoid
    near = client.get("/api/ground", query_string={"lon": lon, "lat": lat + 0.002})
    assert near.json["height"] == 37.5
    assert client.get("/api/ground", query_string={"lon": 10, "lat": 10}).json["height"] == 0.0
