"""Open311 GeoReport v2 at ``/api/open311/v2/``, over the same cases as ``/api/events``.

- ``GET services.json`` (``.xml``): one service per subcategory (小类);
- ``GET services/<code>.json``: its definition (no extra attributes);
- ``GET requests.json``: ``service_request_id`` (comma list; overrides the rest),
  ``service_code``, ``start_date``, ``end_date`` (90 days by default), ``status``
  (``open``/``closed``);
- ``POST requests.json``: ``api_key`` (a department token), ``service_code``, a place
  (``lat`` + ``long``, ``address_string`` or ``address_id`` = a building id),
  ``description``, ``media_url``, contact fields and ``attribute[...]``;
- ``GET requests/<id>.json``.

Every state but 注销/结案/综合评价 is ``open`` (:mod:`layers.events.open311`, where the
mapping and the validation live). Errors are the specification's array
``[{"code": 400, "description": "..."}]`` (XML: ``<errors><error>``), with the same HTTP
status; ``jurisdiction_id`` is accepted and ignored (one city per server).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace
from typing import Any
from xml.etree import ElementTree as ET

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from cim.errors import CimError, InputDataError, NotFoundError
from layers.departments import authenticate
from layers.events import open311 as o311
from layers.events.roles import caller_for
from layers.events.store import EventFilter
from server.blueprints.events import events_runtime, placed, publish_event
from server.errors import status_for

logger = logging.getLogger(__name__)

PREFIX = "/api/open311/v2"
bp = Blueprint("open311", __name__, url_prefix=PREFIX)

_FORMATS = "any(json, xml)"
_ROOTS = {
    "services": ("services", "service"),
    "requests": ("service_requests", "request"),
    "errors": ("errors", "error"),
}


# --- output -------------------------------------------------------------------------------


def _xml_value(parent: ET.Element, key: str, value: Any) -> None:
    el = ET.SubElement(parent, key)
    if value is None:
        return
    if isinstance(value, bool):
        el.text = "true" if value else "false"
    elif isinstance(value, dict):
        for k, v in value.items():
            _xml_value(el, k, v)
    elif isinstance(value, list):
        for v in value:
            _xml_value(el, key.rstrip("s") or "item", v)
    else:
        el.text = str(value)


def _reply(kind: str, data: Any, fmt: str, status: int = 200) -> Response:
    """``data`` as JSON, or as the specification's XML (``kind`` names the root)."""
    if fmt == "json":
        resp = jsonify(data)
    else:
        if kind == "service_definition":
            root = ET.Element("service_definition")
            for k, v in data.items():
                _xml_value(root, k, v)
        else:
            outer, inner = _ROOTS[kind]
            root = ET.Element(outer)
            for item in data:
                _xml_value(root, inner, item)
        body = ET.tostring(root, encoding="unicode", xml_declaration=False)
        resp = Response('<?xml version="1.0" encoding="utf-8"?>\n' + body, mimetype="text/xml")
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _fmt() -> str:
    return "xml" if request.path.endswith(".xml") else "json"


def _errors(status: int, descriptions: list[str]) -> Response:
    return _reply("errors", [{"code": status, "description": d} for d in descriptions], _fmt(),
                  status)  # fmt: skip


@bp.errorhandler(o311.Open311Error)
def _open311_error(exc: o311.Open311Error) -> Response:
    return _reply("errors", exc.errors, _fmt(), exc.status)


@bp.errorhandler(CimError)
def _cim_error(exc: CimError) -> Response:
    status = status_for(exc)
    if status >= 500:
        logger.error("open311: %s: %s", type(exc).__name__, exc)
    return _errors(status, [exc.message])


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return _errors(exc.code or 500, [exc.description or exc.name])


# --- services -----------------------------------------------------------------------------


@bp.get(f"/services.<{_FORMATS}:fmt>")
def services(fmt: str) -> Response:
    """The service list: one service per subcategory."""
    return _reply("services", o311.services(events_runtime().config.table), fmt)


@bp.get(f"/services/<code>.<{_FORMATS}:fmt>")
def service_definition(code: str, fmt: str) -> Response:
    """A service's definition: no service asks for extra attributes."""
    table = events_runtime().config.table
    if code not in table:
        raise o311.Open311Error([f"no service {code!r} (see services.{fmt})"], status=404)
    return _reply("service_definition", {"service_code": code, "attributes": []}, fmt)


# --- requests -----------------------------------------------------------------------------


def _agencies() -> dict[str, str]:
    return {d.id: d.name for d in events_runtime().events.store.list_departments()}


@bp.get(f"/requests.<{_FORMATS}:fmt>")
def list_requests(fmt: str) -> Response:
    """Service requests matching the query, newest first (at most 1000)."""
    rt = events_runtime()
    q = o311.parse_query(request.args, dt.datetime.now(dt.UTC))
    statuses = set(q.statuses)
    open_flag = None if len(statuses) != 1 else statuses == {"open"}
    f = EventFilter(
        ids=list(q.ids),
        subcategories=list(q.service_codes),
        open=open_flag,
        reported_after=q.start,
        reported_before=q.end,
        limit=q.limit,
    )
    if q.end is not None and not q.ids:
        # end_date is inclusive in GeoReport; the store's upper bound is exclusive
        f = replace(f, reported_before=q.end + dt.timedelta(microseconds=1))
    events, _ = rt.events.list_events(f)
    agencies = _agencies()
    out = [o311.to_request(e, rt.config.table, rt.config.schedule, agency_names=agencies)
           for e in events]  # fmt: skip
    return _reply("requests", out, fmt)


@bp.get(f"/requests/<int:request_id>.<{_FORMATS}:fmt>")
def get_request(request_id: int, fmt: str) -> Response:
    """One service request (an array of one, as the specification has it)."""
    rt = events_runtime()
    try:
        event = rt.events.get(request_id)
    except NotFoundError:
        raise o311.Open311Error([f"no service request {request_id}"], status=404) from None
    notes = [r.note for r in rt.events.audit(request_id) if r.note and r.action != "report"]
    media = next(
        (
            f"{request.url_root.rstrip('/')}/api/events/{request_id}/attachments/{a['id']}"
            for a in rt.events.attachments(request_id)
            if a["media_type"].startswith("image/")
        ),
        None,
    )
    item = o311.to_request(
        event,
        rt.config.table,
        rt.config.schedule,
        status_notes=notes[-1] if notes else None,
        agency_names=_agencies(),
        media_url=media,
    )
    return _reply("requests", [item], fmt)


@bp.post(f"/requests.<{_FORMATS}:fmt>")
def create_request(fmt: str) -> Response:
    """File a service request as a case (source ``open311``); 201 with its id."""
    rt = events_runtime()
    params = {**request.args.to_dict(), **request.form.to_dict()}
    key = str(params.get("api_key") or "").strip()
    if not key:
        raise o311.Open311Error(["api_key is required to post a service request"], status=403)
    dept = authenticate(rt.events.store, key)
    if dept is None:
        raise o311.Open311Error(["api_key is not valid"], status=403)
    new = o311.parse_post(params, rt.config.table)
    try:
        where = placed(_location(new))
    except (InputDataError, NotFoundError) as exc:  # CRSError is an InputDataError
        raise o311.Open311Error([f"location: {exc.message}"]) from None
    extra: dict[str, Any] = {}
    attributes = {
        k[10:-1]: v for k, v in params.items() if k.startswith("attribute[") and k[-1:] == "]"
    }
    if attributes:
        extra["attributes"] = attributes
    if new.contact:
        extra["contact"] = new.contact
    if new.media_url:
        extra["media_url"] = new.media_url
    caller = caller_for(rt.events.store, dept)
    event = rt.events.report(
        subcategory=new.service_code,
        source="open311",
        description=new.description,
        reporter=caller.actor(caller.reporter_role),
        extra=extra,
        **where,
    )
    publish_event(event, "report", rt)
    return _reply("requests", o311.created_response(event.id or 0), fmt, 201)


def _location(new: o311.NewRequest) -> Any:
    """The placement location of a GeoReport POST: coordinates win, then the building
    (``address_id``), then the address."""
    if new.lat is not None and new.lon is not None:
        return {"lon": new.lon, "lat": new.lat}
    if new.address_id:
        return {"building": new.address_id}
    return {"address": new.address_string}
