"""``/api/health`` and ``/api/manifest``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

import cim
from cim.errors import DatasetIOError, NotFoundError
from server.blueprints.compare import compare_dir
from server.errors import served_roots
from server.security import redact_json

logger = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api")

_manifest_cache: dict[Path, tuple[int, dict[str, Any]]] = {}


def output_dir() -> Path | None:
    """The configured output folder, or None."""
    root = current_app.config.get("OUTPUT_DIR")
    return Path(root) if root else None


def load_manifest() -> dict[str, Any]:
    """Read ``manifest.json`` of the output folder (cached by mtime).

    Absolute server paths are cut from it (:func:`server.security.redact_json`): the
    manifest is served to browsers.

    Raises
    ------
    NotFoundError
        When there is no output folder or no manifest.
    DatasetIOError
        When the manifest is not valid JSON.
    """
    root = output_dir()
    path = root / "manifest.json" if root else None
    if path is None or not path.is_file():
        raise NotFoundError("no manifest.json: the city has not been built yet")
    mtime = path.stat().st_mtime_ns
    cached = _manifest_cache.get(path)
    if cached and cached[0] == mtime:
        return cached[1]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetIOError(f"manifest.json cannot be read ({exc})") from exc
    if not isinstance(data, dict):
        raise DatasetIOError("manifest.json is not a JSON object")
    data = redact_json(data, served_roots())
    _manifest_cache[path] = (mtime, data)
    return data


@bp.get("/health")
def health() -> Response:
    """Liveness and what is available: always 200 while the process serves."""
    root = output_dir()
    cesium = Path(current_app.config["CESIUM_DIR"])
    checks = {
        "output": bool(root and root.is_dir()),
        "manifest": bool(root and (root / "manifest.json").is_file()),
        "addresses": bool(root and (root / "addresses.sqlite").is_file()),
        "buildings": bool(root and (root / "buildings.parquet").is_file()),
        "terrain": bool(root and (root / "terrain" / "layer.json").is_file()),
        "viewer": (Path(current_app.config["VIEWER_DIR"]) / "index.html").is_file(),
        "cesium": (cesium / "Cesium.js").is_file(),
    }
    status = "ok" if checks["manifest"] and checks["cesium"] else "degraded"
    resp = jsonify({"status": status, "version": cim.__version__, "checks": checks})
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/manifest")
def manifest() -> Response:
    """The city manifest, plus a ``server`` block telling the viewer where data lives."""
    data = dict(load_manifest())
    if not data.get("name") and current_app.config.get("CITY_NAME"):
        data["name"] = current_app.config["CITY_NAME"]
    root = output_dir()
    data["server"] = {
        "data_url": "data/",
        "search": bool(root and (root / "addresses.sqlite").is_file()),
        "buildings": bool(root and (root / "buildings.parquet").is_file()),
        # a second build to compare with (server/blueprints/compare.py)
        "compare": bool(compare_dir()),
    }
    resp = jsonify(data)
    resp.headers["Cache-Control"] = "no-cache"
    resp.add_etag()
    return resp.make_conditional(request)
