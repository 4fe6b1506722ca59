"""A second build output, served read-only for the viewer's swipe compare (卷帘比对).

``cim serve city.toml --compare OTHER`` (or ``COMPARE_DIR`` / ``CIM_COMPARE_DIR``)
names another output folder, e.g. last month's build kept aside. ``/api/compare`` is
its manifest (with a ``server.data_url`` of ``compare/data/``) and
``/compare/data/<path>`` its files: GET and HEAD only, nothing in it is ever written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from cim.errors import DatasetIOError, NotFoundError
from server.errors import served_roots
from server.files import resolve_under, send_path
from server.security import redact_json

bp = Blueprint("compare", __name__)

_cache: dict[Path, tuple[int, dict[str, Any]]] = {}


def compare_dir() -> Path | None:
    """The configured build to compare with, when it holds a manifest; else None."""
    root = current_app.config.get("COMPARE_DIR")
    if not root:
        return None
    root = Path(root)
    return root if (root / "manifest.json").is_file() else None


def _manifest(root: Path) -> dict[str, Any]:
    """The compare build's manifest, paths redacted (cached by mtime)."""
    path = root / "manifest.json"
    mtime = path.stat().st_mtime_ns
    cached = _cache.get(path)
    if cached and cached[0] == mtime:
        return cached[1]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetIOError(f"the compare build's manifest.json cannot be read ({exc})") from exc
    if not isinstance(data, dict):
        raise DatasetIOError("the compare build's manifest.json is not a JSON object")
    data = redact_json(data, served_roots())
    _cache[path] = (mtime, data)
    return data


@bp.get("/api/compare")
def compare_manifest() -> Response:
    """The manifest of the build to compare with (404 when none is configured)."""
    root = compare_dir()
    if root is None:
        raise NotFoundError("no build to compare with is configured (cim serve --compare)")
    data = dict(_manifest(root))
    data["server"] = {"data_url": "compare/data/", "folder": root.name}
    resp = jsonify(data)
    resp.headers["Cache-Control"] = "no-cache"
    resp.add_etag()
    return resp.make_conditional(request)


@bp.get("/compare/data/<path:subpath>")
def compare_file(subpath: str) -> Response:
    """One file of the compare build (GET and HEAD)."""
    root = compare_dir()
    if root is None:
        raise NotFoundError("no build to compare with is configured (cim serve --compare)")
    return send_path(resolve_under(root, subpath), max_age=int(current_app.config["CACHE_MAX_AGE"]))
