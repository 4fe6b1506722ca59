"""Static serving: content types, gzip terrain, ETag/304, cache, range, traversal."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from server import create_app


def test_tileset_json(client: FlaskClient) -> None:
    resp = client.get("/data/tiles/l2/tileset.json")
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    assert resp.json["asset"]["version"] == "1.1"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["ETag"]


def test_glb_content_type(client: FlaskClient) -> None:
    resp = client.get("/data/tiles/l2/0.glb")
    assert resp.status_code == 200
    assert resp.mimetype == "model/gltf-binary"
    assert resp.data[:4] == b"glTF"
    assert resp.headers["Cache-Control"].startswith("public, max-age=")
    assert resp.headers["Accept-Ranges"] == "bytes"


def test_terrain_gzip_bytes_as_stored(client: FlaskClient, fixture_output: Path) -> None:
    resp = client.get("/data/terrain/0/0/0.terrain")
    assert resp.status_code == 200
    assert resp.mimetype == "application/vnd.quantized-mesh"
    assert resp.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in resp.headers["Vary"]
    stored = (fixture_output / "terrain/0/0/0.terrain").read_bytes()
    assert resp.data == stored  # not re-compressed, not decompressed
    assert gzip.decompress(resp.data).startswith(b"quantized-mesh")


def test_terrain_not_gzipped_on_disk_has_no_encoding(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "1.terrain").write_bytes(b"plain")
    app = create_app({"TESTING": True, "OUTPUT_DIR": tmp_path})
    resp = app.test_client().get("/data/t/1.terrain")
    assert resp.status_code == 200
    assert "Content-Encoding" not in resp.headers


def test_image_content_type(client: FlaskClient) -> None:
    resp = client.get("/data/imagery/0/0/0.png")
    assert resp.status_code == 200
    assert resp.mimetype == "image/png"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_etag_304(client: FlaskClient) -> None:
    first = client.get("/data/tiles/l2/0.glb")
    etag = first.headers["ETag"]
    again = client.get("/data/tiles/l2/0.glb", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    other = client.get("/data/tiles/l2/0.glb", headers={"If-None-Match": '"nope"'})
    assert other.status_code == 200


def test_head(client: FlaskClient) -> None:
    resp = client.head("/data/tiles/l2/0.glb")
    assert resp.status_code == 200
    assert int(resp.headers["Content-Length"]) > 100
    assert resp.data == b""


def test_range(client: FlaskClient, fixture_output: Path) -> None:
    whole = (fixture_output / "tiles/l2/0.glb").read_bytes()
    resp = client.get("/data/tiles/l2/0.glb", headers={"Range": "bytes=0-11"})
    assert resp.status_code == 206
    assert resp.data == whole[:12]
    assert resp.headers["Content-Range"] == f"bytes 0-11/{len(whole)}"
    tail = client.get("/data/tiles/l2/0.glb", headers={"Range": "bytes=-4"})
    assert tail.status_code == 206
    assert tail.data == whole[-4:]
    bad = client.get("/data/tiles/l2/0.glb", headers={"Range": f"bytes={len(whole) + 10}-"})
    assert bad.status_code == 416


@pytest.mark.parametrize(
    "url",
    [
        "/data/../manifest.json",
        "/data/tiles/../../secret.txt",
        "/data/%2e%2e/secret.txt",
        "/data/tiles/%2e%2e/%2e%2e/secret.txt",
        "/data/tiles/%2E%2E%2F%2E%2E%2Fsecret.txt",
        "/data//etc/passwd",
        "/data/%2Fetc%2Fpasswd",
        "/data/tiles\\..\\..\\secret.txt",
        "/data/tiles/%5c..%5c..%5csecret.txt",
        "/data/C:/Windows/win.ini",
        "/data/.hidden",
        "/data/tiles/l2/0.glb%00.json",
        "/viewer/../server/__init__.py",
        "/viewer/%2e%2e/%2e%2e/setup.cfg",
        "/viewer/node_modules/cesium/Build/Cesium/Cesium.js",
        "/viewer/package.json",
        "/cesium/../../../package.json",
        "/cesium/%2e%2e/%2e%2e/%2e%2e/%2e%2e/package.json",
    ],
)
def test_traversal_rejected(client: FlaskClient, url: str) -> None:
    # werkzeug may redirect //x to /x (still inside the mount): follow, then judge
    resp = client.get(url, follow_redirects=True)
    assert resp.status_code in (400, 404), url
    assert b"TOP-SECRET" not in resp.data
    assert b"root:" not in resp.data


def test_symlink_out_rejected(tmp_path: Path) -> None:
    out = tmp_path / "output"
    out.mkdir()
    (tmp_path / "secret.txt").write_text("TOP-SECRET", encoding="utf-8")
    (out / "inside.txt").write_text("ok", encoding="utf-8")
    try:
        os.symlink(tmp_path / "secret.txt", out / "link.txt")
        os.symlink(tmp_path, out / "dirlink")
        os.symlink(out / "inside.txt", out / "ok-link.txt")
    except OSError:
        pytest.skip("symlinks not supported here")
    client = create_app({"TESTING": True, "OUTPUT_DIR": out}).test_client()
    for url in ("/data/link.txt", "/data/dirlink/secret.txt"):
        resp = client.get(url)
        assert resp.status_code == 404, url
        assert b"TOP-SECRET" not in resp.data
    assert client.get("/data/ok-link.txt").data == b"ok"


def test_missing_file_is_json_404(client: FlaskClient) -> None:
    resp = client.get("/data/tiles/l2/nope.glb")
    assert resp.status_code == 404
    assert resp.json["error"]["type"] == "NotFoundError"
    assert resp.json["error"]["status"] == 404


def test_folder_is_not_listed(client: FlaskClient) -> None:
    assert client.get("/data/tiles/").status_code == 404
    assert client.get("/data/tiles").status_code == 404


def test_no_output_configured() -> None:
    client = create_app({"TESTING": True, "OUTPUT_DIR": None}).test_client()
    resp = client.get("/data/manifest.json")
    assert resp.status_code == 404
    assert "not" in resp.json["error"]["message"]


def test_post_not_allowed(client: FlaskClient) -> None:
    resp = client.post("/data/manifest.json")
    assert resp.status_code == 405
    assert resp.json["error"]["status"] == 405


def test_viewer_index_and_files(client: FlaskClient) -> None:
    resp = client.get("/")
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "connect-src 'self'" in csp
    js = client.get("/viewer/src/main.js")
    assert js.status_code == 200
    assert js.mimetype == "text/javascript"
    cesium = client.get("/cesium/Cesium.js")
    assert cesium.status_code == 200
    assert cesium.headers["Cache-Control"] == "public, max-age=86400"


def test_cesium_missing_message(tmp_path: Path) -> None:
    client = create_app({"TESTING": True, "VIEWER_DIR": tmp_path}).test_client()
    resp = client.get("/cesium/Cesium.js")
    assert resp.status_code == 404
    assert "npm ci --prefix viewer" in resp.json["error"]["message"]


def test_cors_off_by_default(client: FlaskClient) -> None:
    resp = client.get("/data/manifest.json", headers={"Origin": "http://other.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_cors_star(fixture_output: Path) -> None:
    client = create_app({"TESTING": True, "OUTPUT_DIR": fixture_output, "CORS": "*"}).test_client()
    resp = client.get("/data/tiles/l2/0.glb", headers={"Origin": "http://a.example"})
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "Content-Range" in resp.headers["Access-Control-Expose-Headers"]
    pre = client.options(
        "/data/tiles/l2/0.glb",
        headers={"Origin": "http://a.example", "Access-Control-Request-Method": "GET"},
    )
    assert pre.status_code == 200
    assert "GET" in pre.headers["Access-Control-Allow-Methods"]
    assert "Range" in pre.headers["Access-Control-Allow-Headers"]


def test_cors_list(fixture_output: Path) -> None:
    app = create_app(
        {"TESTING": True, "OUTPUT_DIR": fixture_output, "CORS": "http://a.example, http://b"}
    )
    client = app.test_client()
    ok = client.get("/data/manifest.json", headers={"Origin": "http://b"})
    assert ok.headers["Access-Control-Allow-Origin"] == "http://b"
    assert "Origin" in ok.headers["Vary"]
    no = client.get("/data/manifest.json", headers={"Origin": "http://c"})
    assert "Access-Control-Allow-Origin" not in no.headers


def _big_json_app(tmp_path: Path) -> FlaskClient:
    (tmp_path / "big.json").write_text('{"a": "' + "x" * 5000 + '"}', encoding="utf-8")
    (tmp_path / "tile.glb").write_bytes(b"glTF" + b"\0" * 5000)
    return create_app({"TESTING": True, "OUTPUT_DIR": tmp_path}).test_client()


def test_text_gzip_when_accepted(tmp_path: Path) -> None:
    client = _big_json_app(tmp_path)
    raw = (tmp_path / "big.json").read_bytes()
    plain = client.get("/data/big.json")
    assert "Content-Encoding" not in plain.headers
    assert plain.data == raw
    assert "Accept-Encoding" in plain.headers["Vary"]
    gz = client.get("/data/big.json", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert gz.headers["Content-Encoding"] == "gzip"
    assert gz.mimetype == "application/json"
    assert gzip.decompress(gz.data) == raw
    assert len(gz.data) < len(raw) / 10
    assert gz.headers["ETag"] != plain.headers["ETag"]
    again = client.get(
        "/data/big.json",
        headers={"Accept-Encoding": "gzip", "If-None-Match": gz.headers["ETag"]},
    )
    assert again.status_code == 304
    refused = client.get("/data/big.json", headers={"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in refused.headers


def test_range_is_never_compressed(tmp_path: Path) -> None:
    client = _big_json_app(tmp_path)
    resp = client.get("/data/big.json", headers={"Accept-Encoding": "gzip", "Range": "bytes=0-4"})
    assert resp.status_code == 206
    assert resp.data == b'{"a":'
    assert "Content-Encoding" not in resp.headers


def test_tiles_are_not_recompressed(tmp_path: Path) -> None:
    client = _big_json_app(tmp_path)
    resp = client.get("/data/tile.glb", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in resp.headers
    assert resp.data[:4] == b"glTF"


def test_jpeg_imagery_falls_back_to_png(client: FlaskClient) -> None:
    """In "jpeg" mode, tiles with transparency are PNG files under the .jpg template."""
    resp = client.get("/data/imagery/0/0/0.jpg")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "image/png"
    assert client.get("/data/imagery/0/0/9.jpg").status_code == 404
    assert client.get("/data/tiles/0/0/0.jpg").status_code == 404  # only imagery falls back
