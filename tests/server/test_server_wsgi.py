"""The real waitress server (server.wsgi): many keep-alive clients, headers on its own errors."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from server import CONTENT_SECURITY_POLICY
from server.config import resolve
from server.wsgi import adjustments, create_server

SECURITY = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "SAMEORIGIN",
    "content-security-policy": CONTENT_SECURITY_POLICY,
}


class Running:
    """A waitress server on a free port, in a thread."""

    def __init__(self, app: Any, **overrides: Any) -> None:
        self.server = create_server(app, "127.0.0.1", 0, **overrides)
        self.port = self.server.effective_port
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.close()
        self.thread.join(timeout=5)


@pytest.fixture
def running(app: Flask) -> Iterator[Running]:
    srv = Running(app)
    yield srv
    srv.close()


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (Content-Length framed or bodiless) from a socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed after {buf[:200]!r}")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", 0))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body[:length]


def _raw(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        return _read_response(sock)


def _get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode()


def test_config_sizes_waitress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIM_CONNECTION_LIMIT", "600")
    monkeypatch.setenv("CIM_THREADS", "8")
    kw = adjustments(resolve())
    assert kw["connection_limit"] == 600 and kw["threads"] == 8
    assert kw["backlog"] >= 1024
    assert resolve()["CONNECTION_LIMIT"] == 600
    # the default holds 500 screens with room to spare (waitress's own is 100)
    monkeypatch.delenv("CIM_CONNECTION_LIMIT")
    assert adjustments(resolve())["connection_limit"] >= 500


def test_live_config_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from cim.errors import ConfigError
    from server.config import live_max_streams

    cfg = resolve()
    assert live_max_streams(cfg) >= 100  # out of the box: 100 screens, requests kept apart
    assert live_max_streams(cfg) <= int(cfg["THREADS"]) - 16
    assert live_max_streams({"THREADS": 16}) == 12  # small servers keep 4 for requests
    assert live_max_streams({"THREADS": 520}) == 504
    monkeypatch.setenv("CIM_LIVE_MQTT", "mqtt://broker:1883")
    monkeypatch.setenv("CIM_LIVE_MQTT_SHARE", "cim")
    monkeypatch.setenv("CIM_LIVE_NOTIFY_INTERVAL", "0.05")
    monkeypatch.setenv("CIM_LIVE_MAX_STREAMS", "300")
    cfg = resolve()
    assert cfg["LIVE_MQTT"] == "mqtt://broker:1883" and cfg["LIVE_MQTT_SHARE"] == "cim"
    assert cfg["LIVE_NOTIFY_INTERVAL"] == 0.05 and live_max_streams(cfg) == 300
    monkeypatch.setenv("CIM_LIVE_HEARTBEAT", "soon")
    with pytest.raises(ConfigError, match="CIM_LIVE_HEARTBEAT must be a number"):
        resolve()


@pytest.mark.parametrize("key", ["CONNECTION_LIMIT", "THREADS", "BACKLOG", "CHANNEL_TIMEOUT"])
def test_config_refuses_zero(key: str) -> None:
    from cim.errors import ConfigError

    with pytest.raises(ConfigError, match=key):
        resolve({key: 0})


def _hold_and_ask(port: int, n: int, path: str) -> list[int]:
    """Open ``n`` connections at once, then ask on each twice (keep-alive)."""
    socks = []
    try:
        for _ in range(n):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=20))

        def ask(sock: socket.socket) -> int:
            codes = []
            for _ in range(2):
                sock.sendall(_get(path))
                codes.append(_read_response(sock)[0])
            return max(codes) if len(set(codes)) == 1 else -1

        with ThreadPoolExecutor(max_workers=32) as pool:
            return list(pool.map(ask, socks))
    finally:
        for s in socks:
            s.close()


def test_500_concurrent_keepalive_connections_all_answered(running: Running) -> None:
    t = time.perf_counter()
    codes = _hold_and_ask(running.port, 500, "/data/tiles/l2/tileset.json")
    assert codes == [200] * 500
    assert time.perf_counter() - t < 15


def test_waitress_limit_is_what_held_clients_back(app: Flask) -> None:
    """Control: with waitress's own default (100), the 101st client gets no answer."""
    srv = Running(app, connection_limit=100)
    try:
        held = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(100)]
        time.sleep(0.3)
        late = socket.create_connection(("127.0.0.1", srv.port), timeout=1.5)
        late.sendall(_get("/api/health"))
        with pytest.raises(TimeoutError):
            late.recv(100)
        late.close()
        for s in held:
            s.close()
    finally:
        srv.close()


def test_security_headers_on_app_responses(running: Running) -> None:
    for path in ("/api/health", "/data/tiles/l2/tileset.json", "/data/nope.json", "/"):
        _status, headers, _ = _raw(running.port, _get(path, "Connection: close\r\n"))
        for name, value in SECURITY.items():
            assert headers.get(name) == value, (path, name)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),  # malformed request line
        (b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n", 400),  # header without colon
        (b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"POST /api/health HTTP/1.1\r\nHost: t\r\nContent-Length: 99999\r\n\r\n", 413),
    ],
)
def test_security_headers_on_waitress_own_errors(
    app: Flask, request_bytes: bytes, status: int
) -> None:
    srv = Running(app, max_request_header_size=4096, max_request_body_size=1000)
    try:
        got, headers, body = _raw(srv.port, request_bytes)
    finally:
        srv.close()
    assert got == status
    assert headers.get("server") == "cim"  # waitress answered, not the app
    assert body.endswith(b"(generated by cim)")
    for name, value in SECURITY.items():
        assert headers.get(name) == value, name


def test_security_headers_on_waitress_500(tmp_path: Path) -> None:
    """An app failing before it answers: waitress writes the 500 itself."""

    class Failing:
        config = resolve({"OUTPUT_DIR": tmp_path})

        def __call__(self, environ: dict, start_response: Any) -> list[bytes]:
            raise RuntimeError("boom /root/secret/path")

    srv = Running(Failing())
    try:
        status, headers, body = _raw(srv.port, _get("/", "Connection: close\r\n"))
    finally:
        srv.close()
    assert status == 500
    assert b"/root/secret" not in body
    for name, value in SECURITY.items():
        assert headers.get(name) == value, name


def test_csp_can_be_turned_off_everywhere(app: Flask) -> None:
    app.config["CSP"] = False
    srv = Running(app)
    try:
        _, ok_headers, _ = _raw(srv.port, _get("/api/health", "Connection: close\r\n"))
        _, err_headers, _ = _raw(srv.port, b"GARBAGE\r\n\r\n")
    finally:
        srv.close()
    for headers in (ok_headers, err_headers):
        assert "content-security-policy" not in headers
        assert headers["x-content-type-options"] == "nosniff"


def test_304_keeps_the_connection_open(running: Running) -> None:
    path = "/data/tiles/l2/0.glb"
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        sock.sendall(_get(path))
        status, headers, _ = _read_response(sock)
        assert status == 200
        etag = headers["etag"]
        for _ in range(3):
            sock.sendall(_get(path, f"If-None-Match: {etag}\r\n"))
            status, headers, body = _read_response(sock)
            assert status == 304 and body == b""
            assert headers.get("connection", "").lower() != "close"
        sock.sendall(_get("/api/health"))  # the same socket still serves
        assert _read_response(sock)[0] == 200
