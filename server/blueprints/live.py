"""The live stream (``/api/live/stream``, Server-Sent Events) and MQTT ingest wiring.

``GET /api/live/stream`` sends a snapshot of the latest value and state of every
datastream the client may see, then the deltas (see :mod:`layers.live`). Query
arguments: ``bbox=W,S,E,N``, ``department=a,b``, ``property=name-or-id,...``; with
``[live] read = "token"`` a token (``Authorization: Bearer``, or ``token=`` since
``EventSource`` cannot send headers). ``GET /api/live/status`` gives counters.

Under ``cim serve`` (waitress, :mod:`server.wsgi`) a stream holds a worker thread only
while its snapshot is built: the connection is then handed over to the fan-out
(:mod:`server.sse`), a few threads (``LIVE_STREAM_THREADS``, default 2) that write
every stream through a selector. Streams are then capped by ``LIVE_MAX_STREAMS`` or,
by default, ``CONNECTION_LIMIT`` less 10 % kept for tiles and API requests. Under
another WSGI server each stream holds a request thread while it is open, capped by
``LIVE_MAX_STREAMS`` or ``THREADS`` minus 4 to 16, so that plain requests always find
a thread. One stream more gets 503 with ``Retry-After``.

Config (app config, or the ``[live]`` section of ``PROJECT_FILE``): ``LIVE_MQTT`` (the
broker: MQTT ingest and the bus between processes), ``LIVE_MQTT_CLIENT_ID``,
``LIVE_MQTT_SHARE``, ``LIVE_HEARTBEAT`` (seconds), ``LIVE_MAX_STREAMS``,
``LIVE_NOTIFY_INTERVAL`` (seconds between a stream's writes at most; default 0.02).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Iterator, Mapping
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from cim.errors import CimError
from layers.bus import open_bus
from layers.live import LiveHub, StreamFilter
from server.config import live_max_streams
from server.errors import error_response
from server.sse import DETACH_KEY

logger = logging.getLogger(__name__)

bp = Blueprint("live", __name__, url_prefix="/api/live")


@bp.record_once
def _on_register(state: Any) -> None:
    # with a broker, ingest runs from the start, not from the first screen's connection
    start_live(state.app)


_LOCK = threading.Lock()
_EXT = "cim.live.stream"


class LiveRuntime:
    """The app's live hub, its bus, its MQTT ingest (when a broker is configured) and
    the open-stream count (``app.extensions["cim.live.stream"]``)."""

    def __init__(
        self, hub: LiveHub, ingest: Any, max_streams: int, config: Mapping[str, Any] | None = None
    ) -> None:
        self.hub = hub
        self.ingest = ingest
        self.max_streams = max_streams
        self.max_fanout_streams = _max_fanout_streams(config or {})
        self.streams = 0
        self.refused = 0
        self.lock = threading.Lock()
        self._config = dict(config or {})
        self._fanout: Any = None

    def fanout(self) -> Any:
        """The fan-out that writes handed-over streams (:mod:`server.sse`), started on
        first use."""
        with self.lock:
            if self._fanout is None:
                from server.sse import FanOut

                self._fanout = FanOut(
                    self.hub,
                    threads=int(self._config.get("LIVE_STREAM_THREADS") or 2),
                    heartbeat=float(self._config.get("LIVE_HEARTBEAT") or 15.0),
                    max_buffer=int(self._config.get("LIVE_STREAM_BUFFER") or (1 << 20)),
                )
            return self._fanout

    def release(self) -> None:
        """A stream ended: free its slot."""
        with self.lock:
            self.streams -= 1

    def close(self) -> None:
        """Stop the ingest, the fan-out, the hub and the bus."""
        if self.ingest is not None:
            self.ingest.stop()
        if self._fanout is not None:
            self._fanout.close()
        listeners = getattr(self.hub.store, "on_commit", [])
        if self.hub.publish_committed in listeners:
            listeners.remove(self.hub.publish_committed)
        self.hub.close()
        self.hub.bus.close()


def _max_fanout_streams(config: Mapping[str, Any]) -> int:
    """Streams the fan-out holds at most: ``LIVE_MAX_STREAMS``, else
    ``CONNECTION_LIMIT`` less a tenth (at least 16) for tiles and API requests."""
    if int(config.get("LIVE_MAX_STREAMS") or 0) > 0:
        return int(config["LIVE_MAX_STREAMS"])
    connections = int(config.get("CONNECTION_LIMIT") or 1000)
    return max(1, connections - max(16, connections // 10))


def _mqtt_url(app: Flask) -> str | None:
    if app.config.get("LIVE_MQTT"):
        return str(app.config["LIVE_MQTT"])
    if app.config.get("PROJECT_FILE") and not app.config.get("LIVE_STORE"):
        from layers.config import live_config

        return live_config(app.config["PROJECT_FILE"]).mqtt
    return None


def live_runtime(app: Flask | None = None) -> LiveRuntime:
    """The app's live runtime, started on first use."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    rt = app.extensions.get(_EXT)
    if rt is not None:
        return rt
    with _LOCK:
        rt = app.extensions.get(_EXT)
        if rt is None:
            rt = _start(app)
            app.extensions[_EXT] = rt
    return rt


def _start(app: Flask) -> LiveRuntime:
    from server.blueprints.sta import live_state

    store = live_state(app).store
    mqtt = _mqtt_url(app)
    interval = app.config.get("LIVE_NOTIFY_INTERVAL")
    hub = LiveHub(store, open_bus(mqtt), notify_interval=0.02 if interval is None else interval)
    hub.start()
    # a sensor alarm opens a case (layers.events.sensors), off the hub's dispatcher thread
    from server.blueprints.events import alarm_listener

    hub.on_transition(alarm_listener(app, hub.bus), background=True)
    # readings committed by any path (SensorThings HTTP, CreateObservations, MQTT)
    # reach the hub after their commit
    store.on_commit.append(hub.publish_committed)
    ingest = None
    if mqtt:
        from layers.mqtt_ingest import MqttIngest

        ingest = MqttIngest(
            store,
            mqtt,
            client_id=str(app.config.get("LIVE_MQTT_CLIENT_ID") or "cim-ingest"),
            share=app.config.get("LIVE_MQTT_SHARE") or None,
        ).start()
    max_streams = live_max_streams(app.config)
    logger.info(
        "live stream: up to %d streams handed over to the fan-out under waitress "
        "(%d when each holds a thread)",
        _max_fanout_streams(app.config),
        max_streams,
    )
    return LiveRuntime(hub, ingest, max_streams, app.config)


def start_live(app: Flask) -> LiveRuntime | None:
    """Start MQTT ingest and the hub now when a broker is configured (``cim serve``):
    readings must be stored even before a screen connects. None otherwise."""
    try:
        if _mqtt_url(app) is None:
            return None
    except CimError as exc:  # the live API reports it when used; the rest still serves
        logger.warning("live: not started: %s", exc)
        return None
    return live_runtime(app)


def stop_live(app: Flask) -> None:
    """Stop the app's live runtime, if it was started."""
    rt = app.extensions.pop(_EXT, None)
    if rt is not None:
        rt.close()


def _refused_read(app: Flask) -> Response | None:
    """A 401 when reads need a token and the request has no valid one."""
    from server.blueprints.sta import live_state

    state = live_state(app)
    if state.read != "token":
        return None
    from layers.departments import UnauthorizedError, authenticate, principal_from_header

    header = request.headers.get("Authorization")
    try:
        if header and principal_from_header(state.store, header) is not None:
            return None
    except UnauthorizedError:
        pass
    token = request.args.get("token")  # EventSource cannot send headers
    if not header and token and authenticate(state.store, token) is not None:
        return None
    resp = error_response(
        401, "Unauthorized", "the live stream needs a valid token (Bearer or token=)"
    )
    resp.headers["WWW-Authenticate"] = 'Bearer realm="cim live"'
    return resp


@bp.get("/stream")
def stream() -> Response:
    """The Server-Sent Events stream: a snapshot, then deltas (see the module doc)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    refused = _refused_read(app)
    if refused is not None:
        return refused
    filt = StreamFilter.parse(request.args)
    rt = live_runtime(app)
    detach = request.environ.get(DETACH_KEY) if app.config.get("LIVE_STREAM_FANOUT", True) else None
    limit = rt.max_fanout_streams if detach is not None else rt.max_streams
    with rt.lock:
        if rt.streams >= limit:
            rt.refused += 1
            hint = (
                "LIVE_MAX_STREAMS, CONNECTION_LIMIT" if detach else "THREADS and LIVE_MAX_STREAMS"
            )
            resp = error_response(
                503,
                "Service Unavailable",
                f"this server holds {limit} live streams already (raise {hint})",
            )
            resp.headers["Retry-After"] = "10"
            return resp
        rt.streams += 1
    last_id = request.headers.get("Last-Event-ID") or request.args.get("lastEventId")
    if detach is not None:
        return _hand_over(rt, detach, filt, last_id)
    heartbeat = float(app.config.get("LIVE_HEARTBEAT") or 15.0)
    body = _StreamBody(rt, rt.hub.stream(filt, last_id, heartbeat=heartbeat))
    return _stream_response(body)


def _stream_response(body: Any) -> Response:
    resp = Response(body, mimetype="text/event-stream")
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["X-Accel-Buffering"] = "no"  # a reverse proxy must not buffer it
    return resp


def _hand_over(rt: LiveRuntime, detach: Any, filt: StreamFilter, last_id: str | None) -> Response:
    """Build the first chunks here, then give the connection to the fan-out: the
    server writes this response's head and everything after (:mod:`server.sse`)."""
    from server.sse import Handoff

    try:
        chunks, epoch, cursor = rt.hub.open_stream(filt, last_id)
        handoff = Handoff(rt.fanout(), filt, epoch, cursor, "".join(chunks).encode(), rt.release)
    except BaseException:
        rt.release()
        raise
    detach(handoff)
    return _stream_response(b"")


class _StreamBody:
    """The response body: the events as bytes; frees the stream slot on close (which
    the WSGI server calls even when the body was never iterated).

    Each stream is written by its own request thread, which sleeps between deliveries.
    (A single writer thread serving every stream through waitress's connections was
    measured slower: the system calls of the per-stream threads run in parallel.)
    """

    def __init__(self, rt: LiveRuntime, events: Generator[str, None, None]) -> None:
        self._rt = rt
        self._events = events
        self._open = True

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._events:
            yield chunk.encode()

    def close(self) -> None:
        self._events.close()
        with self._rt.lock:
            if self._open:
                self._open = False
                self._rt.streams -= 1


@bp.get("/status")
def status() -> Response:
    """Counters: open streams, datastreams, the newest seq, MQTT ingest."""
    rt = live_runtime()
    return jsonify(
        {
            "streams": rt.streams,
            "maxStreams": rt.max_streams,
            "maxHandedOverStreams": rt.max_fanout_streams,
            "refused": rt.refused,
            "datastreams": len(rt.hub.entries),
            "seq": rt.hub.head,
            "epoch": rt.hub.epoch,
            "mqtt": None if rt.ingest is None else rt.ingest.counters.as_dict(),
            "fanout": None if rt._fanout is None else rt._fanout.stats(),
        }
    )
