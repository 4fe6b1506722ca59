"""JSON APIs: health, manifest, address search and reverse lookup, errors, config."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from cim.errors import (
    CimError,
    ConfigError,
    CRSError,
    DatasetIOError,
    InputDataError,
    NotFoundError,
)
from server import create_app
from server.config import from_env, resolve
from server.errors import BadRequestError, status_for


def test_health(client: FlaskClient) -> None:
    resp = client.get("/api/health")
    assert resp.status_code == 200
    body = resp.json
    assert body["status"] == "ok"
    assert body["checks"] == {
        "output": True,
        "manifest": True,
        "addresses": True,
        "buildings": True,
        "terrain": False,
        "viewer": True,
        "cesium": True,
    }
    assert resp.headers["Cache-Control"] == "no-store"


def test_health_degraded_without_build(tmp_path: Path) -> None:
    client = create_app({"TESTING": True, "OUTPUT_DIR": tmp_path / "nope"}).test_client()
    resp = client.get("/api/health")
    assert resp.status_code == 200
    assert resp.json["status"] == "degraded"
    assert resp.json["checks"]["manifest"] is False


def test_manifest(client: FlaskClient) -> None:
    resp = client.get("/api/manifest")
    assert resp.status_code == 200
    body = resp.json
    assert body["name"] == "测试城"
    assert body["layers"]["l2"]["url"] == "tiles/l2/tileset.json"
    assert body["server"] == {
        "data_url": "data/",
        "search": True,
        "buildings": True,
        "compare": False,
    }
    assert "测试城".encode() in resp.data  # UTF-8, not \\u escapes
    again = client.get("/api/manifest", headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status_code == 304


def test_manifest_missing(tmp_path: Path) -> None:
    client = create_app({"TESTING": True, "OUTPUT_DIR": tmp_path}).test_client()
    resp = client.get("/api/manifest")
    assert resp.status_code == 404
    assert "not been built" in resp.json["error"]["message"]


def test_manifest_broken(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{nope", encoding="utf-8")
    client = create_app({"TESTING": True, "OUTPUT_DIR": tmp_path}).test_client()
    resp = client.get("/api/manifest")
    assert resp.status_code == 503
    assert resp.json["error"]["type"] == "DatasetIOError"
    assert str(tmp_path) not in resp.get_data(as_text=True)


def test_search(client: FlaskClient) -> None:
    resp = client.get("/api/search", query_string={"q": "银河街", "limit": 5})
    assert resp.status_code == 200
    body = resp.json
    assert body["query"] == "银河街"
    assert body["results"][0]["building_id"] == "B0004"
    assert {"score", "components", "lon", "lat", "height", "building_id"} <= set(body["results"][0])


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ({}, "missing query parameter 'q'"),
        ({"q": "   "}, "missing query parameter 'q'"),
        ({"q": "x" * 500}, "longer than"),
        ({"q": "a", "limit": "ten"}, "limit must be an integer"),
        ({"q": "a", "limit": "0"}, "between 1 and"),
        ({"q": "a", "limit": "1000"}, "between 1 and"),
    ],
)
def test_search_bad_query(client: FlaskClient, query: dict, needle: str) -> None:
    resp = client.get("/api/search", query_string=query)
    assert resp.status_code == 400
    assert resp.json["error"]["type"] == "BadRequestError"
    assert needle in resp.json["error"]["message"]


def test_reverse(client: FlaskClient) -> None:
    resp = client.get("/api/reverse", query_string={"lon": 116.39, "lat": 39.91, "limit": 2})
    assert resp.status_code == 200
    assert len(resp.json["results"]) == 2


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ({"lat": "39"}, "missing query parameter 'lon'"),
        ({"lon": "116"}, "missing query parameter 'lat'"),
        ({"lon": "east", "lat": "39"}, "lon must be a number"),
        ({"lon": "200", "lat": "39"}, "lon must be between"),
        ({"lon": "116", "lat": "-91"}, "lat must be between"),
        ({"lon": "nan", "lat": "39"}, "lon must be between"),
        ({"lon": "inf", "lat": "39"}, "lon must be between"),
    ],
)
def test_reverse_bad_query(client: FlaskClient, query: dict, needle: str) -> None:
    resp = client.get("/api/reverse", query_string=query)
    assert resp.status_code == 400
    assert needle in resp.json["error"]["message"]


def test_search_without_index(tmp_path: Path) -> None:
    client = create_app({"TESTING": True, "OUTPUT_DIR": tmp_path}).test_client()
    resp = client.get("/api/search", query_string={"q": "路"})
    assert resp.status_code == 404
    assert "no address index" in resp.json["error"]["message"]


def test_search_index_failure_is_503(fixture_output: Path) -> None:
    def broken(path: Path) -> None:
        raise OSError("disk gone")

    client = create_app(
        {"TESTING": True, "OUTPUT_DIR": fixture_output, "ADDRESS_INDEX_FACTORY": broken}
    ).test_client()
    resp = client.get("/api/search", query_string={"q": "路"})
    assert resp.status_code == 503
    assert "cannot be opened" in resp.json["error"]["message"]


def test_unknown_api_route(client: FlaskClient) -> None:
    resp = client.get("/api/nope")
    assert resp.status_code == 404
    assert resp.json["error"]["type"] == "NotFound"


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (BadRequestError("x"), 400),
        (InputDataError("x"), 400),
        (CRSError("x"), 400),
        (NotFoundError("x"), 404),
        (DatasetIOError("x"), 503),
        (ConfigError("x"), 500),
        (CimError("x"), 500),
        (RuntimeError("x"), 500),
    ],
)
def test_error_table(exc: BaseException, status: int) -> None:
    assert status_for(exc) == status


def test_unexpected_error_is_json_500(fixture_output: Path) -> None:
    app = create_app({"TESTING": False, "OUTPUT_DIR": fixture_output})

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret detail")

    resp = app.test_client().get("/boom")
    assert resp.status_code == 500
    assert resp.json["error"]["message"] == "internal server error"
    assert b"secret detail" not in resp.data


def test_config_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CIM_OUTPUT_DIR", str(tmp_path))
    monkeypatch.setenv("CIM_CORS", "*")
    monkeypatch.setenv("CIM_CACHE_MAX_AGE", "60")
    monkeypatch.setenv("CIM_CSP", "off")
    cfg = resolve()
    assert cfg["OUTPUT_DIR"] == tmp_path.resolve()
    assert cfg["CORS"] == ["*"]
    assert cfg["CACHE_MAX_AGE"] == 60
    assert cfg["CSP"] is False
    # the passed config wins over the environment
    assert resolve({"CACHE_MAX_AGE": 5})["CACHE_MAX_AGE"] == 5


@pytest.mark.parametrize(("key", "value"), [("CIM_CACHE_MAX_AGE", "soon"), ("CIM_CSP", "maybe")])
def test_config_env_errors(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        from_env({key: value})
