"""City events (cases, 案卷) over HTTP at ``/api/events`` (see docs/events.md, "HTTP API").

- ``GET /api/events``: the list (filters, paging, counts by state);
- ``POST /api/events``: report a case (JSON, or multipart with attachments);
- ``GET /api/events/<id>``: one case with its audit timeline, deadline and the actions
  the caller may take now (``ETag`` = its version);
- ``POST /api/events/<id>/transitions``: take an action (``If-Match`` → 409 when the
  case changed; 403 when the caller's roles may not; 409 naming the allowed actions);
- ``POST /api/events/<id>/notes``, ``POST /api/events/<id>/attachments``,
  ``GET /api/events/<id>/attachments/<n>``;
- ``GET /api/events/stats``: the 综合评价 of a time range;
- ``GET /api/events/categories``, ``GET /api/events/me``, ``GET``/``PUT
  /api/events/roles[/<department>]`` (admin).

Writes need a department token (``Authorization: Bearer``, or HTTP Basic with the
department id and the token); reads follow ``[live] read``. Roles: see
:mod:`layers.events.roles`. The lifecycle, its checks and the store live in
:mod:`layers.events`; this module only speaks HTTP. After each committed write an
``event`` delta goes on the live bus (:mod:`layers.bus`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app, jsonify, request, send_file
from werkzeug.exceptions import Forbidden, RequestEntityTooLarge

from cim.errors import ConfigError, InputDataError, NotFoundError
from layers.departments import UnauthorizedError, principal_from_header
from layers.events import attachments as att
from layers.events.categories import STAGES
from layers.events.config import EventsConfig, events_config
from layers.events.lifecycle import (
    EventConflictError,
    IllegalTransitionError,
    State,
)
from layers.events.model import PRIORITIES, SOURCES, Actor, Event
from layers.events.roles import (
    Caller,
    actions_for,
    all_grants,
    caller_for,
    pick_role,
    set_roles,
)
from layers.events.store import MARKER_COLUMNS, EventFilter, EventStore
from server.errors import BadRequestError, error_response, status_for

logger = logging.getLogger(__name__)

bp = Blueprint("events", __name__, url_prefix="/api/events")

_LOCK = threading.Lock()
_EXT = "cim.events"
#: most cases in one page of the list
MAX_LIMIT = 1000
#: most map markers per request (the viewer draws at most this many cases)
MAX_MARKERS = 20_000
#: attachments in one request, and the request's largest body
MAX_FILES = 10
MAX_BODY = MAX_FILES * att.MAX_BYTES + 1024 * 1024
#: media types shown inline by a browser; the others are downloaded
_INLINE = ("image/jpeg", "image/png", "image/webp")
_STATES = [s.value for s in State]


# --- the app's events runtime -------------------------------------------------------------


class EventsRuntime:
    """The app's :class:`EventStore` and where attachments are kept."""

    def __init__(self, events: EventStore, attachments_dir: Path | None, read: str) -> None:
        self.events = events
        self.attachments_dir = attachments_dir
        self.read = read

    @property
    def config(self) -> EventsConfig:
        """Categories, working hours, approaching share."""
        return self.events.config


def events_runtime(app: Flask | None = None) -> EventsRuntime:
    """The app's events runtime, made on first use over the live store.

    Config: ``EVENTS_CONFIG`` (an :class:`EventsConfig`), else the ``[events]`` section
    of ``PROJECT_FILE``, else the defaults; ``ATTACHMENTS_DIR`` (see
    :func:`attachments_folder`).
    """
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    rt = app.extensions.get(_EXT)
    if rt is not None:
        return rt
    from server.blueprints.sta import live_state

    with _LOCK:
        rt = app.extensions.get(_EXT)
        if rt is None:
            state = live_state(app)
            cfg = app.config.get("EVENTS_CONFIG") or events_config(app.config.get("PROJECT_FILE"))
            rt = EventsRuntime(EventStore(state.store, cfg), attachments_folder(app), state.read)
            app.extensions[_EXT] = rt
    return rt


def attachments_folder(app: Flask) -> Path | None:
    """Where case attachments are stored: never inside the build output.

    ``ATTACHMENTS_DIR`` when set; else ``<store>-attachments`` beside a SQLite store
    (``live.sqlite`` → ``live-attachments/``); else ``live-attachments`` beside
    ``PROJECT_FILE`` (a PostgreSQL store); else None (uploads are refused).

    Raises
    ------
    ConfigError
        When the folder is, or is inside, the build output folder (a rebuild replaces it).
    """
    cfg = app.config
    folder: Path | None = None
    if cfg.get("ATTACHMENTS_DIR"):
        folder = Path(cfg["ATTACHMENTS_DIR"])
    else:
        from server.blueprints.sta import live_state

        store = live_state(app).store
        if store.dialect == "sqlite":
            path = Path(store.describe())
            folder = path.with_name(f"{path.stem}-attachments")
        elif cfg.get("PROJECT_FILE"):
            folder = Path(cfg["PROJECT_FILE"]).resolve().parent / "live-attachments"
    if folder is None:
        return None
    folder = folder.expanduser().resolve()
    out = cfg.get("OUTPUT_DIR")
    if out is not None:
        out = Path(out).resolve()
        if folder == out or out in folder.parents:
            raise ConfigError(
                "the attachments folder is inside the build output folder, which a rebuild "
                "replaces: set ATTACHMENTS_DIR elsewhere"
            )
    return folder


# --- who is calling -----------------------------------------------------------------------


@bp.errorhandler(UnauthorizedError)
def _unauthorized(exc: UnauthorizedError) -> Response:
    resp = error_response(401, "Unauthorized", exc.message)
    resp.headers["WWW-Authenticate"] = 'Basic realm="cim events", charset="UTF-8"'
    return resp


@bp.errorhandler(EventConflictError)
def _conflict(exc: EventConflictError) -> Response:
    """403/409 from the one table, with the actions the caller may take now."""
    status = status_for(exc)
    resp = error_response(status, type(exc).__name__, exc.message)
    body = json.loads(resp.get_data())
    allowed = getattr(exc, "allowed_now", None)
    if allowed is None and isinstance(exc, IllegalTransitionError):
        allowed = exc.allowed
    body["error"]["allowed"] = allowed or []
    existing = getattr(exc, "event_id", None)
    if existing is not None:  # the datastream's open case, which the caller may open instead
        body["error"]["event"] = existing
    version = getattr(exc, "version_now", None)
    if version is not None:
        body["error"]["version"] = version
        resp.headers["ETag"] = _etag(version)
    resp.set_data(current_app.json.dumps(body))
    return resp


def _caller(rt: EventsRuntime, required: bool) -> Caller | None:
    store = rt.events.store
    dept = principal_from_header(
        store, request.headers.get("Authorization"), required=required, needed_for="this"
    )
    if dept is None:
        return None
    user = (request.headers.get("X-User") or "").strip()[:64] or None
    return caller_for(store, dept, user)


def _reader(rt: EventsRuntime) -> Caller | None:
    """The caller of a read: a token is required only with ``[live] read = "token"``."""
    return _caller(rt, required=rt.read == "token")


# --- JSON views ---------------------------------------------------------------------------


def _iso(when: dt.datetime | None) -> str | None:
    return None if when is None else when.isoformat(timespec="seconds")


def event_json(event: Event, config: EventsConfig, now: dt.datetime) -> dict[str, Any]:
    """A case as the API shows it (the list's items and the detail's core)."""
    sub = config.table.get(event.subcategory)
    status = event.clock_status(config.schedule, now, config.approaching)
    return {
        "id": event.id,
        "subcategory": event.subcategory,
        "subcategory_name": sub.name,
        "category": event.category,
        "class": event.cls,
        "source": event.source,
        "description": event.description,
        "priority": event.priority,
        "state": event.state.value,
        "state_label": event.state.label,
        "stage": event.stage,
        "stage_label": STAGES.get(event.stage or ""),
        "department": event.department,
        "location": {
            "lon": event.lon,
            "lat": event.lat,
            "h": event.height,
            "address": event.address,
            "building": event.building,
            "floor": event.floor,
        },
        "reporter": event.reporter,
        "reported_at": _iso(event.reported_at),
        "updated_at": _iso(event.updated_at),
        "closed_at": _iso(event.closed_at),
        "deadline": _iso(status.deadline) if status else None,
        "remaining_hours": (round(status.remaining.total_seconds() / 3600, 2) if status else None),
        "paused": bool(status and status.paused),
        "approaching": bool(status and status.approaching),
        "overdue": bool(status and status.overdue),
        "late": event.late,
        "rework_count": event.rework_count,
        "pending_extension": event.pending_extension,
        "datastream_id": event.datastream_id,
        "version": event.version,
        "extra": event.extra,
    }


def _delta(event: Event, action: str, config: EventsConfig, now: dt.datetime) -> dict[str, Any]:
    """The live stream's ``event`` delta: what a marker and the list need."""
    status = event.clock_status(config.schedule, now, config.approaching)
    return {
        "kind": "event",
        "id": event.id,
        "action": action,
        "state": event.state.value,
        "subcategory": event.subcategory,
        "priority": event.priority,
        "department": event.department,
        "lon": event.lon,
        "lat": event.lat,
        "h": event.height,
        "building": event.building,
        "deadline": _iso(status.deadline) if status else None,
        "overdue": bool(status and status.overdue),
        "approaching": bool(status and status.approaching),
        "version": event.version,
        "time": int(now.timestamp() * 1000),
    }


def publish_event(event: Event, action: str, rt: EventsRuntime) -> None:
    """Put an ``event`` delta on the live bus (after the commit; never fails the write)."""
    try:
        from server.blueprints.live import live_runtime

        live_runtime().hub.bus.publish([_delta(event, action, rt.config, _now())])
    except Exception:  # the case is committed: a bus problem must not turn it into a 500
        logger.exception("events: could not publish the delta of case %s", event.id)


def alarm_listener(app: Flask, bus: Any) -> Any:
    """A live hub listener (``LiveHub.on_transition(..., background=True)``): a datastream
    turning to ``alarm`` opens its case, or notes a further alarm on the open one; back
    to ``normal`` notes it (:mod:`layers.events.sensors`); the case's delta goes on
    ``bus``. ``EVENTS_FROM_ALARMS = False`` in the app config turns it off."""
    from layers.events.sensors import on_state_change
    from layers.thresholds import ALARM, NORMAL

    def listen(change: Any) -> None:
        if change.new not in (ALARM, NORMAL) or change.time_us is None:
            return
        if not app.config.get("EVENTS_FROM_ALARMS", True):
            return
        rt = events_runtime(app)
        before = rt.events.open_event_for_datastream(change.datastream_id)
        if change.new == NORMAL and before is None:
            return  # nothing open to note it on
        sc = rt.events.state_change(
            change.datastream_id, change.old, change.new, change.value, change.time_us
        )
        event = on_state_change(rt.events, sc, rt.config.table, rt.config.schedule)
        if event is not None:
            action = "report" if before is None else "note"
            bus.publish([_delta(event, action, rt.config, _now())])

    return listen


def _etag(version: int) -> str:
    return f'"v{version}"'


def _if_match() -> int | None:
    """The version an ``If-Match`` header expects (None when absent or ``*``)."""
    raw = (request.headers.get("If-Match") or "").strip()
    if not raw or raw == "*":
        return None
    tag = raw.split(",")[0].strip().removeprefix("W/").strip('"').removeprefix("v")
    if not tag.isdigit():
        raise BadRequestError(f'If-Match must be an ETag of this API such as "v3", not {raw!r}')
    return int(tag)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _json(body: Any) -> Response:
    """A JSON response written by orjson (UTF-8, no escapes): the list's 100 cases or
    20,000 markers, and every transition's reply, take a tenth of the stdlib's time."""
    return Response(orjson.dumps(body), mimetype="application/json")


# --- request parsing ----------------------------------------------------------------------


def _csv(name: str) -> list[str]:
    return [v.strip() for raw in request.args.getlist(name) for v in raw.split(",") if v.strip()]


def _flag(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    low = raw.strip().lower()
    if low in ("1", "true", "yes"):
        return True
    if low in ("0", "false", "no"):
        return False
    raise BadRequestError(f"{name} must be true or false, not {raw!r}")


def _int(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestError(f"{name} must be an integer, not {raw!r}") from None
    if not low <= value <= high:
        raise BadRequestError(f"{name} must be between {low} and {high}, not {value}")
    return value


def _time(name: str) -> dt.datetime | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        when = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadRequestError(
            f"{name} must be an ISO 8601 date or date-time such as 2026-10-01T08:30+08:00"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))


def _bbox() -> tuple[float, float, float, float] | None:
    raw = request.args.get("bbox")
    if not raw:
        return None
    try:
        w, s, e, n = (float(v) for v in raw.split(","))
    except ValueError:
        raise BadRequestError("bbox must be four numbers: west,south,east,north") from None
    if not (-180 <= w <= e <= 180 and -90 <= s <= n <= 90):
        raise BadRequestError("bbox must be west,south,east,north in degrees, west ≤ east")
    return w, s, e, n


def _filter(max_limit: int = MAX_LIMIT) -> EventFilter:
    states = _csv("state")
    for s in states:
        if s not in _STATES:
            raise BadRequestError(f"unknown state {s!r}; one of {', '.join(_STATES)}")
    # category= takes 大类 and 小类 codes alike
    table = events_runtime().config.table
    codes = _csv("category")
    return EventFilter(
        states=states,
        departments=_csv("department"),
        subcategories=[c for c in codes if c in table] + _csv("subcategory"),
        categories=[c for c in codes if c not in table],
        sources=_csv("source"),
        ids=[int(i) for i in _csv("id") if i.isdigit()],
        datastream_id=_int("datastream", 0, 0, 2**62) or None,
        open=_flag("open"),
        overdue=_flag("overdue"),
        approaching=_flag("approaching"),
        text=(request.args.get("q") or request.args.get("text") or "").strip()[:200] or None,
        bbox=_bbox(),
        reported_after=_time("from"),
        reported_before=_time("to"),
        limit=_int("limit", 100 if max_limit == MAX_LIMIT else max_limit, 0, max_limit),
        offset=_int("offset", 0, 0, 10**9),
        newest_first=(request.args.get("order") or "newest") != "oldest",
    )


def _body() -> tuple[dict[str, Any], list[Any]]:
    """The request's fields and uploaded files: a JSON body, or multipart/form fields
    (a JSON ``event`` field, or plain fields) with files under ``attachment``."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise RequestEntityTooLarge(f"the request is larger than {MAX_BODY // 2**20} MiB")
    if request.mimetype == "application/json":
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise InputDataError("the request body must be a JSON object")
        return body, []
    form = request.form
    fields: dict[str, Any] = {}
    if form.get("event"):
        try:
            fields = json.loads(form["event"])
        except ValueError:
            raise InputDataError("the 'event' field must be a JSON object") from None
        if not isinstance(fields, dict):
            raise InputDataError("the 'event' field must be a JSON object")
    else:
        fields = {k: v for k, v in form.items()}
    files = [f for key in ("attachment", "attachments", "file") for f in request.files.getlist(key)]
    if len(files) > MAX_FILES:
        raise InputDataError(f"at most {MAX_FILES} attachments per request")
    return fields, files


def _text(fields: Mapping[str, Any], key: str, limit: int) -> str:
    value = fields.get(key)
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        raise InputDataError(f"{key} must be text")
    text = str(value).strip()
    if len(text) > limit:
        raise InputDataError(f"{key} is longer than {limit} characters")
    return text


def _location(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Event position fields from a ``location`` through the shared placement."""
    loc = fields.get("location")
    if loc is None and fields.get("lon") not in (None, "") and fields.get("lat") not in (None, ""):
        loc = {"lon": _number(fields["lon"], "lon"), "lat": _number(fields["lat"], "lat")}
        if fields.get("crs"):
            loc = {"x": loc["lon"], "y": loc["lat"], "crs": str(fields["crs"])}
    elif isinstance(loc, str) and loc.strip().startswith(("{", "[")):
        try:
            loc = json.loads(loc)
        except ValueError:
            raise InputDataError("location must be JSON, an address or a building") from None
    if loc is None:
        for key in ("address", "building"):
            if fields.get(key):
                loc = {key: fields[key]}
                if key == "building" and fields.get("floor") not in (None, ""):
                    loc["floor"] = fields["floor"]
                break
    if isinstance(loc, dict) and "floor" not in loc and fields.get("floor") not in (None, ""):
        loc = {**loc, "floor": fields["floor"]}
    if loc is None or loc == "":
        raise InputDataError(
            "a case needs a location: coordinates (with a crs when not lon/lat), an "
            "address, or a building id with an optional floor"
        )
    return placed(loc)


def _number(value: Any, key: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputDataError(f"{key} must be a number, not {value!r}") from None


def placed(location: Any) -> dict[str, Any]:
    """``lon, lat, height, address, building, floor`` of a location on the built city
    (:func:`cim.placement.place`).

    Raises
    ------
    NotFoundError
        No build output is configured, or an unknown building.
    CRSError, InputDataError
        From the placement.
    """
    from cim.placement import place
    from server.outputs import build_outputs

    p = place(location, build_outputs())
    return {
        "lon": p.lon,
        "lat": p.lat,
        "height": p.h,
        "address": p.address,
        "building": p.building_id,
        "floor": p.floor,
    }


# --- routes -------------------------------------------------------------------------------


@bp.get("")
@bp.get("/")
def list_events() -> Response:
    """The cases matching the query, newest first, with counts by state (``capped``: a
    search with more matches than the store counts; ``total`` and ``counts`` are then
    those of its newest ``count_cap`` matches)."""
    rt = events_runtime()
    _reader(rt)
    f = _filter()
    now = _now()
    page = rt.events.list_page(f, now)
    resp = _json(
        {
            "total": page.total,
            "offset": f.offset,
            "limit": f.limit,
            "counts": page.counts,
            "capped": page.capped,
            "items": [event_json(e, rt.config, now) for e in page.items],
        }
    )
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/markers")
def list_markers() -> Response:
    """What the map draws of the cases matching the query (the filters of the list; up
    to :data:`MAX_MARKERS` per request): ``{"total", "counts", "columns", "items"}``,
    each item a row of ``columns`` (id, state, department, subcategory, lon, lat, h,
    version, overdue, approaching)."""
    rt = events_runtime()
    _reader(rt)
    f = _filter(MAX_MARKERS)
    page = rt.events.markers(f, _now())
    resp = _json(
        {
            "total": page.total,
            "offset": f.offset,
            "limit": f.limit,
            "counts": page.counts,
            "capped": page.capped,
            "columns": list(MARKER_COLUMNS),
            "items": [[*r[:8], bool(r[8]), bool(r[9])] for r in page.items],
        }
    )
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("")
@bp.post("/")
def create_event() -> Response:
    """Report a case; 201 with the case and its ``Location``."""
    rt = events_runtime()
    caller = _caller(rt, required=True)
    assert caller is not None
    fields, files = _body()
    checked = [_check_upload(f) for f in files]  # refuse bad files before storing anything
    if checked and rt.attachments_dir is None:
        raise ConfigError("attachments are not accepted: set ATTACHMENTS_DIR")
    source = _text(fields, "source", 20) or "api"
    if source not in SOURCES:
        raise InputDataError(f"unknown source {source!r}; one of {', '.join(SOURCES)}")
    priority = _text(fields, "priority", 20) or "normal"
    if priority not in PRIORITIES:
        raise InputDataError(f"unknown priority {priority!r}; one of {', '.join(PRIORITIES)}")
    code = _text(fields, "subcategory", 20) or _text(fields, "category", 20)
    if not code:
        raise InputDataError("a case needs its subcategory code (小类), e.g. SJ0102")
    if code not in rt.config.table:
        raise InputDataError(f"unknown subcategory {code!r} (see /api/events/categories)")
    where = _location(fields)
    datastream = _datastream(rt, fields)
    try:
        event = rt.events.report(
            subcategory=code,
            source=source,
            description=_text(fields, "description", 4000),
            reporter=caller.actor(caller.reporter_role),
            priority=priority,
            datastream_id=datastream,
            **where,
        )
    except EventConflictError as exc:  # the datastream has an open case: name it
        if datastream is not None:
            other = rt.events.open_event_for_datastream(datastream)
            exc.event_id = None if other is None else other.id  # type: ignore[attr-defined]
        raise
    for data, c in checked:
        _store_upload(rt, event.id or 0, data, c, caller)
    publish_event(event, "report", rt)
    resp = jsonify(_detail(rt, event, caller, _now()))
    resp.status_code = 201
    resp.headers["Location"] = f"/api/events/{event.id}"
    resp.headers["ETag"] = _etag(event.version)
    return resp


def _datastream(rt: EventsRuntime, fields: Mapping[str, Any]) -> int | None:
    """The ``datastream`` a case is filed from (a sensor alarm), or None; like the cases
    alarms open, it may have one open case at a time (409 naming it otherwise)."""
    value = fields.get("datastream")
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not str(value).isdigit():
        raise InputDataError(f"datastream must be a datastream id, not {value!r}")
    ds = int(value)
    if not rt.events.has_datastream(ds):
        raise NotFoundError(f"no datastream {ds}")
    return ds


def _check_upload(file: Any) -> tuple[bytes, att.Checked]:
    data = file.stream.read(att.MAX_BYTES + 1)
    return data, att.check(data, file.filename or "")


def _store_upload(
    rt: EventsRuntime, event_id: int, data: bytes, checked: att.Checked, caller: Caller
) -> int:
    assert rt.attachments_dir is not None
    att.save(rt.attachments_dir, data, checked)  # the bytes first: metadata never dangles
    return rt.events.add_attachment(event_id, checked, caller.name)


def _detail(
    rt: EventsRuntime, event: Event, caller: Caller | None, now: dt.datetime
) -> dict[str, Any]:
    out = event_json(event, rt.config, now)
    trail, files = rt.events.trail(event.id or 0)  # one read for both
    out["timeline"] = [r.as_json() for r in trail]
    out["attachments"] = [
        {
            "id": a["id"],
            "name": a["name"],
            "media_type": a["media_type"],
            "size": a["size"],
            "sha256": a["sha256"],
            "uploaded_by": a["uploaded_by"],
            "url": f"/api/events/{event.id}/attachments/{a['id']}",
        }
        for a in files
    ]
    out["actions"] = actions_for(event, caller) if caller is not None else []
    out["roles"] = [r.value for r in caller.roles] if caller is not None else []
    return out


@bp.get("/<int:event_id>")
def get_event(event_id: int) -> Response:
    """One case: its audit timeline, deadline, attachments and the caller's actions."""
    rt = events_runtime()
    caller = _reader(rt)
    event = rt.events.get(event_id)
    resp = _json(_detail(rt, event, caller, _now()))
    resp.headers["ETag"] = _etag(event.version)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/<int:event_id>/transitions")
def transition(event_id: int) -> Response:
    """Take an action: ``{"action", "note", "department", "extension", "role",
    "version"}``; ``If-Match`` (or ``version``) refuses a case that changed meanwhile."""
    rt = events_runtime()
    caller = _caller(rt, required=True)
    assert caller is not None
    fields, _ = _body()
    action = _text(fields, "action", 40)
    if not action:
        raise InputDataError('a transition needs its action, e.g. {"action": "dispatch"}')
    expected = _if_match()
    if expected is None and fields.get("version") not in (None, ""):
        expected = int(_number(fields["version"], "version"))
    asked = _text(fields, "role", 20) or None

    def actor(event: Event) -> Actor:
        # the role is picked from the case as the transition reads it, under its lock:
        # no read of the case before, and no race between the pick and the write
        return caller.actor(pick_role(event, action, caller, asked))

    try:
        new, _record = rt.events.transition(
            event_id,
            action,
            actor,
            note=_text(fields, "note", 4000),
            department=_text(fields, "department", 64) or None,
            extension=_text(fields, "extension", 20) or None,
            expected_version=expected,
        )
    except EventConflictError as exc:
        # name what the caller may do with the case as it is now (another may have won)
        fresh = rt.events.get(event_id)
        exc.allowed_now = [a["action"] for a in actions_for(fresh, caller)]  # type: ignore[attr-defined]
        exc.version_now = fresh.version  # type: ignore[attr-defined]
        raise
    publish_event(new, action, rt)
    now = _now()
    resp = _json(_detail(rt, new, caller, now))
    resp.headers["ETag"] = _etag(new.version)
    return resp


@bp.post("/<int:event_id>/notes")
def add_note(event_id: int) -> Response:
    """Append a note (``{"note": "..."}``) to a case's timeline; 201."""
    rt = events_runtime()
    caller = _caller(rt, required=True)
    assert caller is not None
    fields, _ = _body()
    event = rt.events.get(event_id)
    role = next((a["role"] for a in actions_for(event, caller)), caller.reporter_role.value)
    rt.events.note(event_id, caller.actor(role), _text(fields, "note", 4000))
    publish_event(event, "note", rt)
    resp = jsonify(_detail(rt, event, caller, _now()))
    resp.status_code = 201
    return resp


@bp.post("/<int:event_id>/attachments")
def add_attachments(event_id: int) -> Response:
    """Upload attachments (multipart, field ``attachment``); 201 with their metadata."""
    rt = events_runtime()
    caller = _caller(rt, required=True)
    assert caller is not None
    _, files = _body()
    if not files:
        raise InputDataError("no file: send multipart/form-data with an 'attachment' field")
    if rt.attachments_dir is None:
        raise ConfigError("attachments are not accepted: set ATTACHMENTS_DIR")
    event = rt.events.get(event_id)
    checked = [_check_upload(f) for f in files]
    ids = [_store_upload(rt, event_id, data, c, caller) for data, c in checked]
    publish_event(event, "attachment", rt)
    items = [a for a in _detail(rt, event, caller, _now())["attachments"] if a["id"] in ids]
    resp = jsonify(items)
    resp.status_code = 201
    return resp


@bp.get("/<int:event_id>/attachments/<int:attachment_id>")
def get_attachment(event_id: int, attachment_id: int) -> Response:
    """An attachment's bytes, with its sniffed type; images inline, others downloaded."""
    rt = events_runtime()
    _reader(rt)
    meta = next((a for a in rt.events.attachments(event_id) if a["id"] == attachment_id), None)
    if meta is None or rt.attachments_dir is None:
        raise NotFoundError(f"case {event_id} has no attachment {attachment_id}")
    path = att.stored_path(rt.attachments_dir, meta["storage_key"])
    if not path.is_file():
        raise NotFoundError(f"the file of attachment {attachment_id} is missing")
    inline = meta["media_type"] in _INLINE  # images show; PDFs and videos download
    resp = send_file(
        path,
        mimetype=meta["media_type"],
        as_attachment=not inline,
        download_name=meta["name"],
        conditional=True,
        etag=meta["sha256"],
        max_age=0,
    )
    resp.headers["X-Content-Type-Options"] = "nosniff"
    # whatever a file holds, it runs nothing in our origin
    resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    resp.headers["Cache-Control"] = "private, max-age=86400, immutable"
    return resp


@bp.get("/stats")
def stats() -> Response:
    """The 综合评价 of cases reported in ``[from, to)`` (default: the last 30 days)."""
    rt = events_runtime()
    _reader(rt)
    end = _time("to") or _now()
    start = _time("from") or end - dt.timedelta(days=30)
    if start >= end:
        raise BadRequestError("from must be before to")
    out = rt.events.statistics(start, end)
    names = {s.code: s.name for c in rt.config.table.categories for s in c.subcategories}
    out["mean_hours_by_subcategory"] = [
        {"subcategory": code, "name": names.get(code, code), "hours": round(h, 2)}
        for code, h in out["mean_hours_by_subcategory"].items()
    ]
    resp = jsonify({"from": _iso(start), "to": _iso(end), **out})
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/categories")
def categories() -> Response:
    """The category table (大类 with their 小类, limits and default departments)."""
    rt = events_runtime()
    out = []
    for cat in rt.config.table.categories:
        out.append(
            {
                "code": cat.code,
                "name": cat.name,
                "class": cat.cls,
                "subcategories": [
                    {
                        "code": s.code,
                        "name": s.name,
                        "department": s.department,
                        "limits": {k: str(v) for k, v in s.limits.items()},
                        # observed-property keywords whose alarms file a case here
                        "sensor": list(s.sensor),
                    }
                    for s in cat.subcategories
                ],
            }
        )
    return jsonify(
        {
            "categories": out,
            "sources": list(SOURCES),
            "priorities": list(PRIORITIES),
            "sensor_default": rt.config.table.sensor_default,
        }
    )


@bp.get("/me")
def me() -> Response:
    """The calling token's department and event roles."""
    rt = events_runtime()
    caller = _caller(rt, required=True)
    assert caller is not None
    return jsonify(
        {
            "department": caller.department.id,
            "name": caller.department.name,
            "admin": caller.department.is_admin,
            "roles": [r.value for r in caller.roles],
        }
    )


def _admin(rt: EventsRuntime) -> Caller:
    caller = _caller(rt, required=True)
    assert caller is not None
    if not caller.department.is_admin:
        raise Forbidden("only an admin token may manage event roles")
    return caller


@bp.get("/roles")
def roles() -> Response:
    """Every department's granted event roles (admin)."""
    rt = events_runtime()
    _admin(rt)
    return jsonify(all_grants(rt.events.store))


@bp.put("/roles/<dept>")
def put_roles(dept: str) -> Response:
    """Replace a department's granted roles: ``{"roles": ["dispatcher", ...]}`` (admin)."""
    rt = events_runtime()
    _admin(rt)
    if rt.events.store.department_row(dept) is None:
        raise NotFoundError(f"no department {dept!r}")
    fields, _ = _body()
    wanted = fields.get("roles")
    if not isinstance(wanted, list):
        raise InputDataError('roles must be a list, e.g. {"roles": ["dispatcher"]}')
    return jsonify({"department": dept, "roles": set_roles(rt.events.store, dept, wanted)})
