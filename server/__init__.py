"""The CIM server: a Flask app factory serving the viewer, the build output and APIs.

Use :func:`create_app` (tests, WSGI servers) or :func:`server.cli.serve` (``cim serve``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, request

from server.config import resolve
from server.errors import register_error_handlers

logger = logging.getLogger(__name__)

__all__ = ["create_app"]

#: keeps the viewer on this server: no script, tile or XHR from any other host
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        # CesiumJS's widgets use knockout bindings, which compile with new Function
        "script-src 'self' blob: 'unsafe-eval' 'wasm-unsafe-eval'",
        "worker-src 'self' blob:",
        "img-src 'self' data: blob:",
        "style-src 'self' 'unsafe-inline'",
        "connect-src 'self' data: blob:",
        "font-src 'self' data:",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'self'",
    ]
)

_CORS_EXPOSE = "ETag, Content-Length, Content-Range, Content-Encoding, Accept-Ranges"


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask app.

    Configuration comes from :data:`server.config.DEFAULTS`, then ``CIM_*`` environment
    variables, then ``config``.

    Parameters
    ----------
    config : mapping, optional
        Overrides, e.g. ``{"OUTPUT_DIR": path, "TESTING": True}``.

    Returns
    -------
    Flask
    """
    app = Flask(__name__, static_folder=None)
    app.config.update(resolve(config))
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]

    from server.blueprints import api, data, search, viewer

    app.register_blueprint(viewer.bp)
    app.register_blueprint(data.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(search.bp)
    register_error_handlers(app)
    app.after_request(_common_headers)

    out = app.config.get("OUTPUT_DIR")
    if out is None:
        logger.warning("no OUTPUT_DIR configured: only the viewer and /api/health work")
    elif not out.is_dir():
        logger.warning("output folder %s does not exist yet", out)
    if not (app.config["CESIUM_DIR"] / "Cesium.js").is_file():
        logger.warning(
            "CesiumJS not found in %s: run `npm ci --prefix viewer`", app.config["CESIUM_DIR"]
        )
    return app


def _common_headers(resp: Response) -> Response:
    from flask import current_app

    cfg = current_app.config
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    if cfg.get("CSP") and resp.mimetype == "text/html":
        resp.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        resp.headers.setdefault("Referrer-Policy", "same-origin")
    origins: list[str] = cfg.get("CORS") or []
    origin = request.headers.get("Origin")
    if origins and origin:
        if "*" in origins:
            resp.headers["Access-Control-Allow-Origin"] = "*"
        elif origin in origins:
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.vary.add("Origin")
        else:
            return resp
        resp.headers["Access-Control-Expose-Headers"] = _CORS_EXPOSE
        if request.method == "OPTIONS":
            resp.headers["Access-Control-Allow-Methods"] = "GET, HEAD, OPTIONS"
            resp.headers["Access-Control-Allow-Headers"] = (
                "Range, If-None-Match, If-Modified-Since, Content-Type"
            )
            resp.headers["Access-Control-Max-Age"] = "86400"
    return resp
