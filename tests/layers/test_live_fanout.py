"""The live stream's fan-out (:mod:`server.sse`): streams handed over by the server are
written by a few threads, not one each; slow clients drop to a resync snapshot."""

from __future__ import annotations

import json
import selectors
import socket
import threading
import time
from typing import Any

import pytest
from mqtt_fixtures import make_streams
from test_live_stream import T0, publish, serving, wait_head

from layers.bus import InProcessBus
from layers.live import LiveHub, StreamFilter
from layers.store import open_store
from server.sse import FanOut, Handoff, response_header


@pytest.fixture
def world(tmp_path):
    """A store with 3 water-level streams."""
    store = open_store(tmp_path / "live.sqlite")
    water = make_streams(store, 3, "water", "water level")
    yield store, water, None
    store.close()


def _events(buf: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event, data) of every complete event in ``buf``."""
    out = []
    for block in buf.split(b"\n\n"):
        lines = block.decode().split("\n")
        ev = next((ln[7:] for ln in lines if ln.startswith("event: ")), None)
        data = next((ln[6:] for ln in lines if ln.startswith("data: ")), None)
        if ev and data:
            out.append((ev, json.loads(data)))
    return out


def _read_until(sock: socket.socket, pred, timeout: float = 10.0) -> bytes:
    sock.settimeout(0.2)
    buf = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end and not pred(buf):
        try:
            chunk = sock.recv(1 << 16)
        except TimeoutError:
            continue
        if not chunk:
            break
        buf += chunk
    return buf


def test_a_slow_client_drops_to_a_resync_snapshot(world):
    store, water, _ = world
    hub = LiveHub(store, InProcessBus(), ring_size=16, notify_interval=0.002).start()
    fan = FanOut(hub, threads=1, heartbeat=60, max_buffer=1)
    released = []
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        chunks, epoch, cursor = hub.open_stream(StreamFilter())
        handoff = Handoff(
            fan, StreamFilter(), epoch, cursor, "".join(chunks).encode(), lambda: released.append(1)
        )
        fan.add(a, b"HTTP/1.1 200 OK\r\n\r\n", handoff)
        first = _read_until(b, lambda buf: b"event: snapshot" in buf and buf.endswith(b"\n\n"))
        assert first.startswith(b"HTTP/1.1 200 OK\r\n\r\nretry: ")
        # fill the socket without reading: the client stops taking deltas
        pad = "x" * 2000
        for i in range(8):
            publish(hub, [(water[0], pad + str(i), T0 + i * 1_000_000)])
            wait_head(hub, i + 1)
            time.sleep(0.02)
        # then overflow the ring while it is stuck
        for i in range(8, 60):
            publish(hub, [(water[0], float(i), T0 + i * 1_000_000)])
        wait_head(hub, 60)
        rest = _read_until(b, lambda buf: b'"resync":true' in buf and buf.endswith(b"]}\n\n"))
        events = _events(rest)
        snaps = [d for e, d in events if e == "snapshot"]
        assert snaps and snaps[-1]["resync"] is True
        latest = {s["ds"]: s for s in snaps[-1]["streams"]}[water[0]]
        assert latest["value"] == 59.0
        b.close()
        end = time.monotonic() + 5
        while not released and time.monotonic() < end:
            time.sleep(0.02)
        assert released == [1] and hub.clients == 0
    finally:
        fan.close()
        hub.close()
        b.close()


def test_response_header_drops_framing_and_closes():
    head = response_header(
        "200 OK",
        [("Content-Type", "text/event-stream"), ("Content-Length", "0"), ("X-A", "1")],
    )
    assert head == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-A: 1\r\nConnection: close\r\n\r\n"
    )


def _open_streams(port: int, n: int) -> list[socket.socket]:
    req = b"GET /api/live/stream HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n"
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(req)
        socks.append(s)
    return socks


def _read_all(socks: list[socket.socket], done, timeout: float) -> dict[int, bytes]:
    """Read every socket in one selector loop until ``done(buf)`` holds for each."""
    sel = selectors.DefaultSelector()
    bufs = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        bufs[s.fileno()] = b""
    waiting = {s.fileno() for s in socks}
    end = time.monotonic() + timeout
    while waiting and time.monotonic() < end:
        for key, _ in sel.select(0.2):
            s = key.fileobj
            try:
                chunk = s.recv(1 << 16)  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            fd = s.fileno()  # type: ignore[union-attr]
            bufs[fd] += chunk
            if not chunk or done(bufs[fd]):
                waiting.discard(fd)
                sel.unregister(s)
    sel.close()
    return bufs


@pytest.mark.parametrize("n", [200])
def test_many_streams_do_not_hold_threads(world, n):
    """200 streams on a server with 8 worker threads: each gets its snapshot and a
    published reading, and plain requests are still answered. With a thread per
    stream, at most a few streams would open and the rest would starve or get 503."""
    import requests

    store, water, _ = world
    with serving(str(store.path), THREADS=8, CONNECTION_LIMIT=n + 100) as (port, rt):
        socks = _open_streams(port, n)
        try:
            snaps = _read_all(socks, lambda b: b"event: snapshot" in b and b.endswith(b"\n\n"), 60)
            assert all(b.startswith(b"HTTP/1.1 200 ") for b in snaps.values()), {
                b[:40] for b in snaps.values()
            }
            assert all(b"event: snapshot" in b for b in snaps.values())
            status = requests.get(f"http://127.0.0.1:{port}/api/live/status", timeout=10).json()
            assert status["streams"] == n
            publish(rt.hub, [(water[1], 4.5, T0)])
            got = _read_all(socks, lambda b: b'"value":4.5' in b, 60)
            assert all(b'"value":4.5' in b for b in got.values())
        finally:
            for s in socks:
                s.close()
        end = time.monotonic() + 10
        while rt.streams and time.monotonic() < end:
            time.sleep(0.05)
        assert rt.streams == 0 and rt.hub.clients == 0


def test_entry_text_is_its_public_json_after_every_change():
    """The snapshot text keeps the metadata serialised once and formats the reading."""
    from layers.live import StreamEntry
    from layers.states import Thresholds

    e = StreamEntry(
        7, "河道水位", "water", 3, "water level", "m", 113.5, 37.8, None,
        Thresholds(None, 5.0, None, 8.0), 600.0,
    )  # fmt: skip
    assert json.loads(e.text()) == e.public()
    changes = [
        (4.25, 1_700_000_000_123_456, "normal"),
        (9, 5, "alarm"),
        ("开", 6, None),
        ({"a": [1, 2]}, None, "stale"),
        (True, 7, "x"),
    ]
    for value, t, state in changes:
        e.value, e.time, e.state, e._text = value, t, state, None
        assert json.loads(e.text()) == e.public()


def test_the_hub_wakes_the_fanout_from_the_thread_that_ringed(world):
    """No notifier hand-off between the ring and the fan-out's writers: the wake-up is
    called by ``apply`` itself (here with no hub thread running at all)."""
    store, water, _ = world
    hub = LiveHub(store, InProcessBus(), notify_interval=5.0)  # not started
    woken: list[str] = []
    hub.add_wakeup(lambda: woken.append(threading.current_thread().name))
    hub.apply([{"kind": "observation", "ds": water[0], "value": 1.0, "time": T0 // 1000}])
    assert hub.head >= 1  # the reading (and the datastream's first "stream" delta)
    assert woken == [threading.current_thread().name]
    hub.remove_wakeup(hub._wakeups[0])
    hub.apply([{"kind": "observation", "ds": water[0], "value": 2.0, "time": T0 // 1000 + 1}])
    assert len(woken) == 1


def test_fanout_passes_are_at_most_one_per_notify_interval(world):
    """The first deltas after a pause go out at once; those close behind wait for the
    next pass, ``notify_interval`` after it, and go together."""
    store, water, _ = world
    hub = LiveHub(store, InProcessBus(), notify_interval=0.5).start()
    fan = FanOut(hub, threads=1, heartbeat=60)
    a, b = socket.socketpair()
    try:
        chunks, epoch, cursor = hub.open_stream(StreamFilter())
        handoff = Handoff(fan, StreamFilter(), epoch, cursor, "".join(chunks).encode(), lambda: 0)
        fan.add(a, b"HTTP/1.1 200 OK\r\n\r\n", handoff)
        _read_until(b, lambda buf: b"event: snapshot" in buf and buf.endswith(b"\n\n"))
        time.sleep(0.6)  # a pause longer than the interval
        passes = fan.stats()["passes"]
        t0 = time.monotonic()
        publish(hub, [(water[0], 1.0, T0)])
        first = _read_until(b, lambda buf: b"event: delta" in buf and buf.endswith(b"\n\n"))
        assert time.monotonic() - t0 < 0.45  # not held for the interval
        for i in range(2, 7):
            publish(hub, [(water[0], float(i), T0 + i * 1_000_000)])
        rest = _read_until(b, lambda buf: b'"value":6.0' in buf and buf.endswith(b"\n\n"))
        deltas = [d for e, data in _events(first + rest) if e == "delta" for d in data]
        values = [d["value"] for d in deltas if d["kind"] == "observation"]
        assert values == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        assert fan.stats()["passes"] - passes == 2
    finally:
        fan.close()
        hub.close()
        b.close()
