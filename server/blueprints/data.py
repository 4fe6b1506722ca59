"""``/data/<path>``: the build output folder (tiles, terrain, imagery, manifest)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from cim.errors import NotFoundError
from server.files import resolve_under, send_path

bp = Blueprint("data", __name__, url_prefix="/data")


@bp.get("/<path:subpath>")
def data_file(subpath: str) -> Response:
    """Serve one file of the output folder (GET and HEAD)."""
    root = current_app.config.get("OUTPUT_DIR")
    if root is None or not root.is_dir():
        raise NotFoundError("no build output is configured or it does not exist yet")
    try:
        path = resolve_under(root, subpath)
    except NotFoundError:
        # imagery in "jpeg" mode: tiles with transparent pixels are stored as PNG
        # under the same name, while the tile template names .jpg
        if not subpath.startswith("imagery/") or not subpath.endswith(".jpg"):
            raise
        path = resolve_under(root, subpath[: -len(".jpg")] + ".png")
    return send_path(path, max_age=int(current_app.config["CACHE_MAX_AGE"]))
