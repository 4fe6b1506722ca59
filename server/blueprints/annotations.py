"""``/api/annotations``: shared annotations (批注) in the live store (:mod:`layers.annotations`).

- ``GET /api/annotations``: every annotation, newest first (a token is needed only
  when the live store's read policy is ``token``);
- ``POST /api/annotations`` with a department token (``Authorization: Bearer TOKEN``,
  or HTTP Basic with the department id and the token): ``{"text", "position": {lon,
  lat, height}, "camera"?}`` → 201 and the annotation; the author is the token's
  department;
- ``DELETE /api/annotations/<id>``: the department's own (the admin: any); 403 for
  another's, 404 when there is none.
"""

from __future__ import annotations

import threading

from flask import Blueprint, Flask, Response, current_app, request

from layers.annotations import AnnotationPermissionError, Annotations
from layers.departments import UnauthorizedError, principal_from_header
from layers.store import Department
from server.blueprints.search import no_cache_json
from server.errors import BadRequestError, error_response

bp = Blueprint("annotations", __name__, url_prefix="/api")

_LOCK = threading.Lock()
_EXTENSION = "cim.annotations"


@bp.errorhandler(UnauthorizedError)
def _unauthorized(exc: UnauthorizedError) -> Response:
    resp = error_response(401, "Unauthorized", exc.message)
    resp.headers["WWW-Authenticate"] = 'Bearer realm="cim annotations"'
    return resp


@bp.errorhandler(AnnotationPermissionError)
def _forbidden(exc: AnnotationPermissionError) -> Response:
    return error_response(403, "Forbidden", str(exc))


def _state(app: Flask | None = None) -> tuple[Annotations, str]:
    """The app's annotations (table migrated on first use) and the read policy."""
    from server.blueprints.sta import live_state

    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    found = app.extensions.get(_EXTENSION)
    if found is None:
        with _LOCK:
            found = app.extensions.get(_EXTENSION)
            if found is None:
                live = live_state(app)
                found = (Annotations(live.store), live.read)
                app.extensions[_EXTENSION] = found
    return found


def _principal(notes: Annotations, required: bool, needed_for: str) -> Department | None:
    return principal_from_header(
        notes.store, request.headers.get("Authorization"), required=required, needed_for=needed_for
    )


@bp.get("/annotations")
def list_annotations() -> Response:
    """Every annotation, newest first; ``mine`` marks the caller's own (deletable)."""
    notes, read = _state()
    dept = _principal(notes, required=read == "token", needed_for="reading annotations")
    items = []
    for a in notes.list():
        item = a.to_json()
        item["mine"] = bool(dept and (dept.id == a.department or dept.is_admin))
        items.append(item)
    return no_cache_json({"annotations": items})


@bp.post("/annotations")
def create_annotation() -> Response:
    """Add an annotation (department token required) → 201."""
    notes, _ = _state()
    dept = _principal(notes, required=True, needed_for="writing annotations")
    assert dept is not None
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequestError('send a JSON object: {"text", "position": {lon, lat, height}}')
    pos = body.get("position")
    if not isinstance(pos, dict):
        raise BadRequestError("position must be {lon, lat, height}")
    note = notes.create(
        dept,
        body.get("text"),
        pos.get("lon"),
        pos.get("lat"),
        pos.get("height", 0.0),
        body.get("camera"),
    )
    item = note.to_json()
    item["mine"] = True
    resp = no_cache_json({"annotation": item})
    resp.status_code = 201
    resp.headers["Location"] = f"/api/annotations/{note.id}"
    return resp


@bp.delete("/annotations/<int:annotation_id>")
def delete_annotation(annotation_id: int) -> Response:
    """Delete an annotation of the caller's department → 204."""
    notes, _ = _state()
    dept = _principal(notes, required=True, needed_for="deleting annotations")
    assert dept is not None
    notes.delete(dept, annotation_id)
    return Response(status=204)
