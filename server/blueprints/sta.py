"""The OGC SensorThings API 1.1 at ``/api/sta/v1.1/``, over the project's live store.

Reads are open by default (``[live] read = "open"``; ``"token"`` asks for a token);
every write needs a department token, as ``Authorization: Bearer TOKEN`` or HTTP
Basic with the department id as user and the token as password. A write answers 2xx
only after its transaction committed. The model, query language and permission rules
live in :mod:`layers.sta`; this module only speaks HTTP.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app, jsonify, request

from cim.errors import InputDataError
from layers.departments import PermissionDeniedError, UnauthorizedError, principal_from_header
from layers.ingest import BatchOutcome, ReadingColumns, ingest_columns
from layers.sta.model import ENTITY_SETS
from layers.sta.query import parse_options
from layers.sta.service import Reader, property_value, resolve_path
from layers.sta.write import Creator, delete, inverse_link, update
from layers.store import Department, Store, open_store
from server.errors import error_response

logger = logging.getLogger(__name__)

PREFIX = "/api/sta/v1.1"
bp = Blueprint("sta", __name__, url_prefix=PREFIX)

_LOCK = threading.Lock()

CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/create-update-delete",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/data-array/data-array",
]


class LiveState:
    """The app's live store and read policy (``app.extensions["cim.live"]``)."""

    def __init__(self, store: Store, read: str) -> None:
        self.store = store
        self.read = read


def live_state(app: Flask | None = None) -> LiveState:
    """The app's live store, opened on first use.

    Config: ``LIVE_STORE`` (a SQLite path or PostgreSQL URL) and ``LIVE_READ``, or
    ``PROJECT_FILE`` (the city.toml, whose ``[live]`` section is used).
    """
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    state = app.extensions.get("cim.live")
    if state is not None:
        return state
    with _LOCK:
        state = app.extensions.get("cim.live")
        if state is None:
            cfg = app.config
            if cfg.get("LIVE_STORE"):
                store, read = cfg["LIVE_STORE"], cfg.get("LIVE_READ") or "open"
            elif cfg.get("PROJECT_FILE"):
                from layers.config import live_config

                live = live_config(cfg["PROJECT_FILE"])
                store, read = live.store, cfg.get("LIVE_READ") or live.read
            else:
                raise InputDataError(
                    "no live store: serve a city project (cim serve CITY.toml) or set LIVE_STORE"
                )
            state = LiveState(open_store(store), read)
            app.extensions["cim.live"] = state
    return state


@bp.errorhandler(PermissionDeniedError)
def _forbidden(exc: PermissionDeniedError) -> Response:
    return error_response(403, "Forbidden", exc.message)


@bp.errorhandler(UnauthorizedError)
def _unauthorized(exc: UnauthorizedError) -> Response:
    resp = error_response(401, "Unauthorized", exc.message)
    resp.headers["WWW-Authenticate"] = 'Basic realm="cim sensors", charset="UTF-8"'
    return resp


def _principal(state: LiveState, required: bool) -> Department | None:
    return principal_from_header(
        state.store, request.headers.get("Authorization"), required=required, needed_for="writing"
    )


def _base() -> str:
    return request.url_root.rstrip("/") + PREFIX


def _json_body() -> Any:
    body = request.get_json(silent=True)
    if body is None:
        raise InputDataError("the request body must be JSON")
    return body


@bp.get("")
@bp.get("/")
def root() -> Response:
    """The service document: entity sets and conformance classes."""
    base = _base()
    return jsonify(
        {
            "value": [{"name": n, "url": f"{base}/{n}"} for n in ENTITY_SETS],
            "serverSettings": {"conformance": CONFORMANCE},
        }
    )


@bp.post("/CreateObservations")
def create_observations() -> Response:
    """The dataArray batch: one result per row, a self link or ``error: reason``."""
    state = live_state()
    principal = _principal(state, required=True)
    assert principal is not None
    body = _fast_json_body()
    if not isinstance(body, list):
        raise InputDataError("CreateObservations takes a JSON array of dataArray documents")
    cols = ReadingColumns.concat([_data_array(doc) for doc in body] or [ReadingColumns([], [])])
    done = ingest_columns(state.store, principal, cols)
    return Response(data_array_answer(done, _base()), status=201, mimetype="application/json")


def data_array_answer(done: BatchOutcome, base: str) -> bytes:
    """The ``CreateObservations`` answer: per reading its self link or ``error: reason``."""
    prefix = f"{base}/Observations("
    if done.errors.count(None) == len(done.errors):
        out = [f"{prefix}{i})" for i in done.ids]
    else:
        out = [
            f"{prefix}{i})" if i is not None else f"error: {e}"
            for i, e in zip(done.ids, done.errors, strict=True)
        ]
    return orjson.dumps(out)


def _fast_json_body() -> Any:
    """The JSON body, parsed by orjson; the standard parser where orjson refuses (NaN
    tokens, huge numbers), so what is accepted is the same as :func:`_json_body`."""
    if not request.is_json:
        raise InputDataError("the request body must be JSON")
    data = request.get_data(cache=False)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            return json.loads(data)
        except ValueError:
            raise InputDataError("the request body must be JSON") from None


_COMPONENTS = {
    "phenomenonTime": "phenomenon_time",
    "resultTime": "result_time",
    "result": "result",
    "resultQuality": "result_quality",
    "validTime": "valid_time",
    "parameters": "parameters",
    "FeatureOfInterest/id": "foi_id",
    "FeatureOfInterest/@iot.id": "foi_id",
}


def _data_array(doc: Any) -> ReadingColumns:
    """One dataArray document's readings as columns (no object per reading)."""
    if not isinstance(doc, dict):
        raise InputDataError("each CreateObservations item must be a JSON object")
    ds = doc.get("Datastream")
    ds_id = ds.get("@iot.id") if isinstance(ds, dict) else None
    comps = doc.get("components")
    rows = doc.get("dataArray")
    if not isinstance(comps, list) or not isinstance(rows, list):
        raise InputDataError("a dataArray document needs 'components' and 'dataArray' arrays")
    fields = []
    for c in comps:
        if c not in _COMPONENTS:
            raise InputDataError(f"unknown dataArray component {c!r}")
        fields.append(_COMPONENTS[c])
    width, n = len(fields), len(rows)
    if n and set(map(type, rows)) == {list} and set(map(len, rows)) == {width}:
        columns = list(zip(*rows, strict=True))  # one C-level pass: the dataArray transposed
        ds_col = [ds_id] * n
    else:  # a malformed row is rejected as a row of an unknown datastream
        ok = [isinstance(r, list) and len(r) == width for r in rows]
        ds_col = [ds_id if good else None for good in ok]
        padded = [r if good else [None] * width for r, good in zip(rows, ok, strict=True)]
        columns = list(zip(*padded, strict=True)) if padded else [() for _ in fields]
    out = ReadingColumns(ds_col, [None] * n)
    for name, values in zip(fields, columns, strict=True):
        setattr(out, name, list(values))
    return out


@bp.route("/<path:path>", methods=["GET", "POST", "PATCH", "PUT", "DELETE"])
def resource(path: str) -> Response:
    """Any entity, collection, navigation or property path."""
    state = live_state()
    method = request.method
    if method == "GET":
        _principal(state, required=state.read == "token")
        return _get(state, path)
    principal = _principal(state, required=True)
    assert principal is not None
    reader = Reader(state.store, _base())
    with state.store.transaction(write=True) as tx:
        target = resolve_path(tx, path)
        if target.prop or target.ref:
            raise InputDataError("write to the entity, not to one of its properties")
        if method == "POST":
            if target.id is not None:
                raise InputDataError("POST creates in a collection, e.g. /Things")
            link = {}
            if target.parent is not None:
                pes, pid, nav = target.parent
                link = inverse_link(pes, nav, pid)
            new_id = Creator(tx, principal).create(target.es, _json_body(), link)
            status, ident = 201, new_id
        else:
            if target.id is None:
                raise InputDataError(f"{method} needs one entity, e.g. /Things(1)")
            ident = target.id
            if method == "DELETE":
                delete(tx, principal, target.es, ident)
                status = 200
            else:
                body = _json_body()
                if isinstance(body, list):  # application/json-patch+json
                    current = reader.entity(tx, target.es, ident, parse_options({}, target.es))
                    body = apply_json_patch(current, body)
                update(tx, principal, target.es, ident, body)
                status = 200
    if method == "DELETE":
        return Response(status=200)
    with state.store.transaction() as tx:
        entity = reader.entity(tx, target.es, ident, parse_options({}, target.es))
    resp = jsonify(entity)
    resp.status_code = status
    if status == 201:
        resp.headers["Location"] = entity["@iot.selfLink"]
    return resp


def _get(state: LiveState, path: str) -> Response:
    reader = Reader(state.store, _base())
    args = {k: v for k, v in request.args.items()}
    with state.store.transaction() as tx:
        target = resolve_path(tx, path)
        opts = parse_options(args, target.es)
        if target.prop:
            value = property_value(tx, target.es, target.id or 0, target.prop)
            if target.value:
                text = value if isinstance(value, str) else current_app.json.dumps(value)
                return Response(text, mimetype="text/plain")
            return jsonify({target.prop: value})
        if target.id is not None:
            if target.ref:
                return jsonify({"@iot.selfLink": reader.self_link(target.es, target.id)})
            return jsonify(reader.entity(tx, target.es, target.id, opts))
        url = request.base_url
        out = reader.collection(tx, target.es, opts, target.parent, url, args)
        if target.ref:
            out["value"] = [{"@iot.selfLink": v["@iot.selfLink"]} for v in out["value"]]
        return jsonify(out)


def apply_json_patch(doc: dict[str, Any], ops: list[Any]) -> dict[str, Any]:
    """Apply RFC 6902 ``add``/``replace``/``remove`` operations; returns the changed
    top-level members (what the update then writes)."""
    changed: dict[str, Any] = {}
    for op in ops:
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove"):
            raise InputDataError("JSON Patch supports add, replace and remove operations")
        path = op.get("path", "")
        if not isinstance(path, str) or not path.startswith("/"):
            raise InputDataError(f"bad JSON Patch path {path!r}")
        keys = [k.replace("~1", "/").replace("~0", "~") for k in path[1:].split("/")]
        top = keys[0]
        node = doc
        for k in keys[:-1]:
            node = node.setdefault(k, {}) if isinstance(node, dict) else node
            if not isinstance(node, dict):
                raise InputDataError(f"JSON Patch path {path!r} does not lead to an object")
        if op["op"] == "remove":
            node.pop(keys[-1], None)
        else:
            node[keys[-1]] = op.get("value")
        changed[top] = doc.get(top)
    return changed
