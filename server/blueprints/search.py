"""``/api/search`` and ``/api/reverse``: the address index (``addresses.sqlite``).

The index comes from :class:`tiling.addresses.AddressIndex` (imported lazily) or from
the ``ADDRESS_INDEX_FACTORY`` config callable. One index object per app and per file
version (the build may replace the file while the server runs).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from cim.errors import DatasetIOError, NotFoundError
from server.errors import BadRequestError

bp = Blueprint("search", __name__, url_prefix="/api")

_lock = threading.Lock()
_cache: dict[tuple[int, str], tuple[tuple[int, int, int], Any]] = {}


def _factory() -> Callable[[Path], Any]:
    factory = current_app.config.get("ADDRESS_INDEX_FACTORY")
    if factory is not None:
        return factory
    try:
        from tiling.addresses import AddressIndex
    except ImportError as exc:
        raise DatasetIOError(f"address search is not available ({exc})") from exc
    return AddressIndex


def address_index() -> Any:
    """The address index of the output folder (one per app and file version).

    ``AddressIndex`` is thread-safe and read-only, so one object serves every worker
    thread; it is reopened when the build replaces ``addresses.sqlite``.

    Raises
    ------
    NotFoundError
        When the build has no ``addresses.sqlite``.
    DatasetIOError
        When the index cannot be opened.
    """
    root = current_app.config.get("OUTPUT_DIR")
    path = Path(root) / "addresses.sqlite" if root else None
    if path is None or not path.is_file():
        raise NotFoundError("this city has no address index (addresses.sqlite)")
    stat = path.stat()
    version = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    key = (id(current_app._get_current_object()), str(path))  # type: ignore[attr-defined]
    with _lock:
        hit = _cache.get(key)
        if hit and hit[0] == version:
            return hit[1]
        try:
            index = _factory()(path)
        except (NotFoundError, DatasetIOError):
            raise
        except (OSError, ValueError) as exc:
            raise DatasetIOError(f"address index cannot be opened ({exc})") from exc
        _cache[key] = (version, index)
    if hit and hasattr(hit[1], "close"):
        with contextlib.suppress(Exception):  # a stale index must not fail a request
            hit[1].close()
    return index


def _limit() -> int:
    cfg = current_app.config
    raw = request.args.get("limit")
    if raw is None or raw == "":
        return int(cfg["SEARCH_DEFAULT_LIMIT"])
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestError(f"limit must be an integer, not {raw[:20]!r}") from None
    if not 1 <= value <= int(cfg["SEARCH_MAX_LIMIT"]):
        raise BadRequestError(f"limit must be between 1 and {cfg['SEARCH_MAX_LIMIT']}")
    return value


def _coordinate(name: str, low: float, high: float) -> float:
    raw = request.args.get(name)
    if raw is None or raw.strip() == "":
        raise BadRequestError(f"missing query parameter {name!r}")
    try:
        value = float(raw)
    except ValueError:
        raise BadRequestError(f"{name} must be a number, not {raw[:20]!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise BadRequestError(f"{name} must be between {low:g} and {high:g}")
    return value


def _results(candidates: Any) -> list[dict[str, Any]]:
    return [c.to_json() if hasattr(c, "to_json") else dict(c) for c in candidates]


@bp.get("/search")
def search() -> Response:
    """Address search: ``?q=text&limit=n`` → ``{"query", "results": [...]}``."""
    q = (request.args.get("q") or "").strip()
    if not q:
        raise BadRequestError("missing query parameter 'q' (the address text to search)")
    max_len = int(current_app.config["SEARCH_MAX_QUERY"])
    if len(q) > max_len:
        raise BadRequestError(f"q is longer than {max_len} characters")
    limit = _limit()
    results = _results(address_index().search(q, limit))
    resp = jsonify({"query": q, "limit": limit, "results": results})
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.get("/reverse")
def reverse() -> Response:
    """Reverse lookup: ``?lon=..&lat=..&limit=n`` → nearest addresses."""
    lon = _coordinate("lon", -180.0, 180.0)
    lat = _coordinate("lat", -90.0, 90.0)
    limit = _limit()
    results = _results(address_index().reverse(lon, lat, limit))
    resp = jsonify({"lon": lon, "lat": lat, "limit": limit, "results": results})
    resp.headers["Cache-Control"] = "no-cache"
    return resp
