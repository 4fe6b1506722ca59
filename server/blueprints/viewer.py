"""The viewer page (``/``), its own files (``/viewer/``) and the npm libraries it uses
(``/vendor/<name>/``, named in ``viewer/vendor.json``; ``/cesium/`` is CesiumJS's alias)."""

from __future__ import annotations

import json
from functools import lru_cache
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


@lru_cache(maxsize=8)
def _vendor_map(path: Path, mtime_ns: int) -> dict[str, str]:
    """``viewer/vendor.json``: library name → folder under ``node_modules`` (cached by mtime)."""
    libraries = json.loads(path.read_text(encoding="utf-8")).get("libraries", {})
    return {str(k): str(v) for k, v in libraries.items()}


def _vendor_root(name: str) -> Path:
    """The served folder of a vendored library; CesiumJS's is CESIUM_DIR (by default the
    folder vendor.json names, ``node_modules/cesium/Build/Cesium``)."""
    if name == "cesium":
        root = Path(current_app.config["CESIUM_DIR"])
    else:
        listing = _viewer_dir() / "vendor.json"
        mtime = listing.stat().st_mtime_ns if listing.is_file() else 0
        folder = _vendor_map(listing, mtime).get(name) if mtime else None
        if folder is None:
            raise NotFoundError("no such file")
        # a folder (resolve_under finds files only); vendor.json is the repository's own
        modules = (_viewer_dir() / "node_modules").resolve()
        root = (modules / folder).resolve()
        if modules not in root.parents:
            raise NotFoundError("no such file")
    if not root.is_dir():
        raise NotFoundError(
            f"{name} is not installed: run `npm ci --prefix viewer` in the repository"
        )
    return root


@bp.get("/vendor/<name>/<path:subpath>")
def vendor_file(name: str, subpath: str) -> Response:
    """A vendored npm library (a pinned version: cached for CESIUM_MAX_AGE)."""
    path = resolve_under(_vendor_root(name), subpath)
    age = int(current_app.config["CESIUM_MAX_AGE"])
    return send_path(path, max_age=age, cache_control=f"public, max-age={age}")


@bp.get("/cesium/<path:subpath>")
def cesium_file(subpath: str) -> Response:
    """CesiumJS (Build/Cesium of the npm package): the alias of ``/vendor/cesium/``."""
    return vendor_file("cesium", subpath)
