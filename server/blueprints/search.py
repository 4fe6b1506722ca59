"""``/api/search`` (everything), ``/api/reverse`` and ``/api/locate``.

``/api/search`` answers typed results, best first: a ``coordinate`` when the text is
one (WGS84 / CGCS2000 degrees, DMS, Gauss-Krüger metres, ``EPSG:xxxx x y``), then
``address`` and ``poi`` hits of the address index (``addresses.sqlite``) merged by
score with ``building`` hits (names, pinyin ``huayansi`` / ``hys``, ids) from
``buildings.parquet`` (:mod:`cim.query`).

The index comes from the core (:meth:`cim.outputs.BuildOutputs.addresses`, a
:class:`cim.addresses.AddressIndex`, or the ``ADDRESS_INDEX_FACTORY`` config
callable): one index object per app and per file version (the build may replace
the file while the server runs).
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import shapely
from flask import Blueprint, Response, current_app, jsonify, request

from cim import query
from cim.errors import CRSError, NotFoundError
from server.errors import BadRequestError
from server.outputs import build_outputs

log = logging.getLogger(__name__)

bp = Blueprint("search", __name__, url_prefix="/api")


def address_index() -> Any:
    """The address index of the output folder (thread-safe, read-only).

    Raises
    ------
    NotFoundError
        When the build has no ``addresses.sqlite``.
    DatasetIOError
        When the index cannot be opened or is of another schema version.
    """
    return build_outputs().addresses()


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


def coordinate(name: str, low: float, high: float) -> float:
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


def no_cache_json(data: dict[str, Any]) -> Response:
    """A JSON response that browsers must revalidate (answers follow the build)."""
    resp = jsonify(data)
    resp.headers["Cache-Control"] = "no-cache"
    return resp


def _results(candidates: Any) -> list[dict[str, Any]]:
    return [c.to_json() if hasattr(c, "to_json") else dict(c) for c in candidates]


def _typed_addresses(candidates: Any) -> list[dict[str, Any]]:
    out = []
    for c in _results(candidates):
        poi = (c.get("components") or {}).get("poi")
        label = c.get("address") or c.get("label") or (c.get("components") or {}).get("full", "")
        out.append({**c, "type": "poi" if poi else "address", "label": label})
    return out


def _centre_lon() -> float | None:
    """The city's centre longitude (the Gauss-Krüger zone of eastings without a prefix)."""
    try:
        text = (build_outputs().root / "manifest.json").read_text(encoding="utf-8")
        return float(json.loads(text)["centre"][0])
    except (OSError, ValueError, KeyError, TypeError, IndexError, NotFoundError):
        return None


def locate_json(loc: query.Located) -> dict[str, Any]:
    """A located coordinate with the ground height there, as a search result."""
    height = build_outputs().ground_height(loc.lon, loc.lat)
    return {
        "type": "coordinate",
        "label": f"{loc.lon:.6f}, {loc.lat:.6f}",
        "score": 100.0,
        "height": height,
        **loc.to_json(),
    }


def _building_results(q: str, limit: int) -> list[dict[str, Any]]:
    outputs = build_outputs()
    if not outputs.has_buildings():
        return []
    table = outputs.buildings()
    hits = query.search_buildings(table, q, limit)
    if not hits:
        return []
    points = shapely.point_on_surface(table.footprints[[h.row for h in hits]])
    xy = shapely.get_coordinates(points)
    out = []
    for hit, (lon, lat) in zip(hits, xy, strict=True):
        b = table.get(hit.row)
        out.append(
            {
                "type": "building",
                "label": b.name or b.id,
                "score": hit.score,
                "match": hit.match,
                "id": b.id,
                "building_id": b.id,
                "name": b.name,
                "use": b.use,
                "lon": float(lon),
                "lat": float(lat),
                "height": b.top,
            }
        )
    return out


def _address_results(q: str, limit: int) -> list[dict[str, Any]]:
    try:
        return _typed_addresses(address_index().search(q, limit))
    except NotFoundError:
        # a city without an address index still finds its buildings and coordinates
        if not build_outputs().has_buildings():
            raise
        return []


@bp.get("/search")
def search() -> Response:
    """Search everything: ``?q=text&limit=n`` → ``{"query", "limit", "results": [...]}``.

    Each result has ``type`` (``coordinate``, ``address``, ``poi``, ``building``),
    ``label``, ``score`` (0–100), ``lon``, ``lat`` and ``height`` (where to fly:
    roof or ground, WGS84 ellipsoidal); address results keep every field of the
    address index's candidates.
    """
    q = (request.args.get("q") or "").strip()
    if not q:
        raise BadRequestError("missing query parameter 'q' (the address text to search)")
    max_len = int(current_app.config["SEARCH_MAX_QUERY"])
    if len(q) > max_len:
        raise BadRequestError(f"q is longer than {max_len} characters")
    limit = _limit()
    results: list[dict[str, Any]] = []
    try:
        loc = query.parse_coordinates(q, centre_lon=_centre_lon())
    except CRSError as exc:  # looked like a coordinate but is none: search the text
        log.debug("search %r: not a coordinate (%s)", q, exc)
        loc = None
    if loc is not None:
        results.append(locate_json(loc))
    merged = _address_results(q, limit) + _building_results(q, limit)
    # stable: addresses stay ahead of buildings of the same score
    merged.sort(key=lambda r: -float(r.get("score") or 0.0))
    results += merged
    return no_cache_json({"query": q, "limit": limit, "results": results[:limit]})


@bp.get("/locate")
def locate() -> Response:
    """Coordinates to WGS84: ``?x=..&y=..&crs=EPSG:4547`` (``crs`` optional: detected).

    → ``{"type": "coordinate", "lon", "lat", "height", "crs", "x", "y", "how"}``;
    400 when the numbers fit no CRS.
    """
    raw = {k: (request.args.get(k) or "").strip() for k in ("x", "y")}
    for key, text in raw.items():
        if not text:
            raise BadRequestError(f"missing query parameter {key!r}")
        try:
            if not math.isfinite(float(text)):
                raise ValueError(text)
        except ValueError:
            raise BadRequestError(f"{key} must be a number, not {text[:20]!r}") from None
    crs = (request.args.get("crs") or "auto").strip()[:40]
    # a CRSError (unknown CRS, numbers that fit none) answers 400 (server.errors)
    loc = query.parse_coordinates(f"{raw['x']} {raw['y']}", crs, _centre_lon())
    if loc is None:
        raise BadRequestError(f"({raw['x']}, {raw['y']}) is not a coordinate in {crs}")
    return no_cache_json(locate_json(loc))


@bp.get("/reverse")
def reverse() -> Response:
    """Reverse lookup: ``?lon=..&lat=..&limit=n`` → nearest addresses."""
    lon = coordinate("lon", -180.0, 180.0)
    lat = coordinate("lat", -90.0, 90.0)
    limit = _limit()
    results = _results(address_index().reverse(lon, lat, limit))
    return no_cache_json({"lon": lon, "lat": lat, "limit": limit, "results": results})
