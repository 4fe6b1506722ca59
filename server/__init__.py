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
from server.security import CONTENT_SECURITY_POLICY, security_headers

logger = logging.getLogger(__name__)

__all__ = ["CONTENT_SECURITY_POLICY", "create_app"]

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

    from server.blueprints import api, buildings, data, search, viewer

    app.register_blueprint(viewer.bp)
    app.register_blueprint(data.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(search.bp)
    app.register_blueprint(buildings.bp)
    from server.blueprints import sta

    app.register_blueprint(sta.bp)  # SensorThings API over the live store (layers/)
    from server.blueprints import live

    app.register_blueprint(live.bp)  # the live stream (SSE) and MQTT ingest (layers/)
    from server.blueprints import history

    app.register_blueprint(history.bp)  # history for charts and the retention job
    from server.blueprints import events, open311

    app.register_blueprint(events.bp)  # city events (cases) over the live store
    app.register_blueprint(open311.bp)  # Open311 GeoReport v2 over the same cases
    from server.blueprints import layers as dept_layers

    app.register_blueprint(dept_layers.bp)  # department layers (layers/deptlayers)
    from server.blueprints import annotations

    app.register_blueprint(annotations.bp)  # shared annotations (layers/annotations)
    from server.blueprints import compare

    app.register_blueprint(compare.bp)  # a second build, read-only, for swipe compare
    from server.blueprints import pipelines

    app.register_blueprint(pipelines.bp)  # the underground pipe network (cim.pipelines)
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
    # every response, not only pages: a JSON or tile URL opened directly is a document
    # too, and CesiumJS's workers take their policy from their own script's response
    for name, value in security_headers(bool(cfg.get("CSP"))):
        resp.headers.setdefault(name, value)
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
