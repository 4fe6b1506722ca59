"""History for charts (``/api/live/history``) and the retention job of the live store.

``GET /api/live/info`` says whether this server has a live store (``{"available":
bool, "retentionDays", "maxPoints"}``, always 200, the store is not opened): the
viewer's sensors layer asks it before it opens the stream.

``GET /api/live/history?datastream=ID&from=&to=&points=200`` answers a datastream's
numeric readings between ``from`` and ``to`` (ISO 8601 date-times, or ms since the
epoch; default: the last 24 hours up to now) in at most ``points`` buckets (min, max,
mean, count each; see :mod:`layers.history`). With ``[live] read = "token"`` it needs a
token (``Authorization: Bearer``, or HTTP Basic with the department id and the token).

The retention job (:class:`layers.history.RetentionJob`) starts with the app when a
live store is configured: ``LIVE_RETENTION_DAYS`` (app config), else ``[live]
retention_days`` of ``PROJECT_FILE``, else 90 days; ``LIVE_RETENTION_INTERVAL``
(seconds between passes, default 3600) and ``LIVE_RETENTION_DELAY`` (before the first,
default 60). It does not run under ``TESTING`` unless ``LIVE_RETENTION_DAYS`` is set.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from cim.errors import InputDataError
from layers.history import DEFAULT_RETENTION_DAYS, MAX_POINTS, RetentionJob, history
from server.errors import error_response

logger = logging.getLogger(__name__)

bp = Blueprint("history", __name__, url_prefix="/api/live")

_EXT = "cim.live.retention"
_DAY_MS = 86_400_000


@bp.record_once
def _on_register(state: Any) -> None:
    start_retention(state.app)


def retention_days(app: Flask) -> float | None:
    """The configured retention in days, or None when no live store is configured."""
    cfg = app.config
    if cfg.get("LIVE_RETENTION_DAYS") is not None:
        return float(cfg["LIVE_RETENTION_DAYS"])
    if cfg.get("TESTING"):
        return None
    if cfg.get("PROJECT_FILE") and not cfg.get("LIVE_STORE"):
        from layers.config import live_config

        return live_config(cfg["PROJECT_FILE"]).retention_days
    return DEFAULT_RETENTION_DAYS if cfg.get("LIVE_STORE") else None


def start_retention(app: Flask) -> RetentionJob | None:
    """Start the app's retention job (``app.extensions["cim.live.retention"]``), when a
    live store is configured and the retention is not 0."""
    try:
        days = retention_days(app)
    except Exception:  # a bad city.toml is reported by the APIs that need it
        logger.exception("retention: cannot read the live configuration")
        return None
    if not days:
        return None

    def store() -> Any:
        from server.blueprints.sta import live_state

        return live_state(app).store

    job = RetentionJob(
        store,
        days,
        interval=float(app.config.get("LIVE_RETENTION_INTERVAL") or 3600.0),
        delay=float(app.config.get("LIVE_RETENTION_DELAY") or 60.0),
    ).start()
    app.extensions[_EXT] = job
    logger.info("live store retention: %g days", days)
    return job


def _time_ms(raw: str | None, name: str, default: int) -> int:
    """A query time: ms since the epoch, or an ISO 8601 date-time; in µs."""
    if raw is None or raw == "":
        return default * 1000
    text = raw.strip()
    if text.lstrip("-").isdigit():
        return int(text) * 1000
    from layers.sta.times import parse_instant

    try:
        return parse_instant(text)
    except InputDataError:
        raise InputDataError(
            f"{name} must be an ISO 8601 date-time or ms since the epoch, not {raw!r}"
        ) from None


def _int_arg(name: str, default: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        if default is None:
            raise InputDataError(f"the query needs {name}=")
        return default
    try:
        return int(raw)
    except ValueError:
        raise InputDataError(f"{name} must be an integer, not {raw!r}") from None


def _refused_read(app: Flask) -> Response | None:
    """A 401 when reads need a token and the request has no valid one."""
    from server.blueprints.sta import live_state

    state = live_state(app)
    if state.read != "token":
        return None
    from layers.departments import UnauthorizedError, principal_from_header

    # fetched with fetch(), which can send the header: no token= here (only the SSE
    # stream, whose EventSource cannot, takes one)
    try:
        principal_from_header(
            state.store,
            request.headers.get("Authorization"),
            required=True,
            needed_for="reading the history",
        )
    except UnauthorizedError as exc:
        resp = error_response(401, "Unauthorized", exc.message)
        resp.headers["WWW-Authenticate"] = 'Bearer realm="cim live"'
        return resp
    return None


def live_configured(app: Flask) -> bool:
    """Whether the app names a live store (``LIVE_STORE`` or a ``PROJECT_FILE``)."""
    return bool(app.config.get("LIVE_STORE") or app.config.get("PROJECT_FILE"))


@bp.get("/info")
def info() -> Response:
    """Whether live data is available here, and the history's limits."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    available = live_configured(app)
    days = None
    if available:
        try:
            days = retention_days(app)
        except Exception:  # a broken [live] section: the stream reports it
            days = None
    resp = jsonify({"available": available, "retentionDays": days, "maxPoints": MAX_POINTS})
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/history")
def get_history() -> Response:
    """A datastream's readings, downsampled (see the module doc)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    refused = _refused_read(app)
    if refused is not None:
        return refused
    from server.blueprints.sta import live_state

    ds = _int_arg("datastream")
    points = _int_arg("points", 200)
    if not 1 <= points <= MAX_POINTS:
        raise InputDataError(f"points must be between 1 and {MAX_POINTS}, not {points}")
    now_ms = time.time_ns() // 1_000_000
    end = _time_ms(request.args.get("to"), "to", now_ms)
    start = _time_ms(request.args.get("from"), "from", end // 1000 - _DAY_MS)
    result = history(live_state(app).store, ds, start, end, points)
    resp = jsonify(result.as_json())
    resp.headers["Cache-Control"] = "no-store"
    return resp
