"""Errors → HTTP status codes, in one table, and the JSON error body.

The server raises :mod:`cim.errors` classes (plus :class:`BadRequestError` for bad
query parameters); :func:`register_error_handlers` turns any of them, and any werkzeug
HTTP exception, into ``{"error": {"status", "type", "message"}}``.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, has_app_context, jsonify
from werkzeug.exceptions import HTTPException

from cim.errors import (
    CimError,
    ConfigError,
    CRSError,
    DatasetIOError,
    InputDataError,
    NotFoundError,
)
from layers.events.lifecycle import EventConflictError, RoleNotAllowedError, TransitionInputError
from layers.events.open311 import Open311Error
from server.security import redact_paths

logger = logging.getLogger(__name__)


class BadRequestError(CimError, ValueError):
    """A request parameter is missing or invalid (HTTP 400)."""


#: the one table: error class → HTTP status (looked up along the class's MRO)
STATUS_BY_ERROR: dict[type[BaseException], int] = {
    BadRequestError: 400,
    InputDataError: 400,
    CRSError: 400,
    NotFoundError: 404,
    RoleNotAllowedError: 403,  # the caller's role may not (an EventConflictError too)
    EventConflictError: 409,  # the case's state or version does not allow it now
    TransitionInputError: 400,
    Open311Error: 400,  # the open311 blueprint answers with the error's own status
    DatasetIOError: 503,
    ConfigError: 500,
    CimError: 500,
}


def status_for(exc: BaseException) -> int:
    """HTTP status for an exception: the first class of its MRO found in the table.

    Parameters
    ----------
    exc : BaseException

    Returns
    -------
    int
        The status; 500 for anything not in :data:`STATUS_BY_ERROR`.
    """
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def served_roots() -> list[Any]:
    """The folders the app serves (their absolute paths are never shown to clients)."""
    if not has_app_context():
        return []
    cfg = current_app.config
    out = cfg.get("OUTPUT_DIR")
    other = cfg.get("COMPARE_DIR")
    return [
        out,
        out.parent if out else None,
        other,
        other.parent if other else None,
        cfg.get("VIEWER_DIR"),
        cfg.get("CESIUM_DIR"),
    ]


def error_response(status: int, kind: str, message: str) -> Response:
    """A JSON error response; absolute server paths in ``message`` are cut away."""
    message = redact_paths(str(message), served_roots())
    resp = jsonify({"error": {"status": status, "type": kind, "message": message}})
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


def register_error_handlers(app: Flask) -> None:
    """Install the JSON error handlers on ``app``."""

    @app.errorhandler(CimError)
    def _cim_error(exc: CimError) -> Response:
        status = status_for(exc)
        if status >= 500:
            logger.error("%s: %s", type(exc).__name__, exc)
        # never leak absolute server paths to clients
        return error_response(status, type(exc).__name__, exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        resp = error_response(status, type(exc).__name__, exc.description or exc.name)
        if status == 405 and exc.get_response().headers.get("Allow"):
            resp.headers["Allow"] = exc.get_response().headers["Allow"]
        return resp

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        if isinstance(exc, HTTPException):  # pragma: no cover - handled above
            return _http_error(exc)
        logger.exception("unhandled error")
        return error_response(500, "InternalServerError", "internal server error")
