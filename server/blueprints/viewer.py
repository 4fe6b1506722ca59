"""The viewer page (``/``), its own files (``/viewer/``) and CesiumJS (``/cesium/``)."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app

from cim.errors import NotFoundError
from server.files import resolve_under, send_path

bp = Blueprint("viewer", __name__)

#: what of viewer/ may be served (never node_modules, package files or tests)
_VIEWER_SUFFIXES = frozenset({".js", ".mjs", ".css", ".html", ".svg", ".png", ".ico"})


def _viewer_dir() -> Path:
    return Path(current_app.config["VIEWER_DIR"])


@bp.get("/")
def index() -> Response:
    """The operation view."""
    path = _viewer_dir() / "index.html"
    if not path.is_file():
        raise NotFoundError("the viewer is not installed (viewer/index.html missing)")
    return send_path(path, max_age=0)


@bp.get("/viewer/<path:subpath>")
def viewer_file(subpath: str) -> Response:
    """The viewer's own static files."""
    first = subpath.split("/", 1)[0]
    if first == "node_modules":
        raise NotFoundError("no such file")
    path = resolve_under(_viewer_dir(), subpath)
    if path.suffix.lower() not in _VIEWER_SUFFIXES:
        raise NotFoundError("no such file")
    return send_path(path, max_age=0)


@bp.get("/cesium/<path:subpath>")
def cesium_file(subpath: str) -> Response:
    """CesiumJS (Build/Cesium of the npm package), served locally."""
    root = Path(current_app.config["CESIUM_DIR"])
    if not root.is_dir():
        raise NotFoundError(
            "CesiumJS is not installed: run `npm ci --prefix viewer` in the repository"
        )
    path = resolve_under(root, subpath)
    age = int(current_app.config["CESIUM_MAX_AGE"])
    return send_path(path, max_age=age, cache_control=f"public, max-age={age}")
