"""``/api/buildings/...`` and ``/api/ground``: the core's read side of the build.

- ``/api/buildings/at?lon=..&lat=..``: the building whose footprint holds the point;
- ``/api/buildings/<id>``: one building (attributes and GeoJSON footprint);
- ``/api/ground?lon=..&lat=..``: the ground height (WGS84 ellipsoidal metres) on the
  built terrain mesh, as the viewer renders it;
- ``POST /api/buildings/query``: the buildings in a polygon and/or meeting attribute
  conditions, with their statistics (:mod:`cim.query`);
- ``/api/buildings/stats``: statistics over the whole city (not only what is loaded).

All of it comes from :class:`cim.outputs.BuildOutputs` (:func:`server.outputs.build_outputs`).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from cim import query
from cim.errors import InputDataError, NotFoundError
from server.blueprints.search import coordinate, no_cache_json
from server.errors import BadRequestError
from server.outputs import build_outputs

bp = Blueprint("buildings", __name__, url_prefix="/api")

_MAX_ID = 200
#: ids answered per page of a query (the viewer highlights them all)
QUERY_DEFAULT_LIMIT = 20_000
QUERY_MAX_LIMIT = 200_000
_MAX_POLYGON_POINTS = 10_000


def _geometry() -> bool:
    raw = (request.args.get("geometry") or "1").strip().lower()
    if raw not in ("0", "1", "true", "false"):
        raise BadRequestError("geometry must be 0 or 1")
    return raw in ("1", "true")


@bp.get("/buildings/at")
def building_at() -> Response:
    """The building at ``?lon=..&lat=..`` (404 when the point is in none)."""
    lon = coordinate("lon", -180.0, 180.0)
    lat = coordinate("lat", -90.0, 90.0)
    building = build_outputs().building_at(lon, lat)
    if building is None:
        raise NotFoundError("no building at this point")
    return no_cache_json({"lon": lon, "lat": lat, "building": building.to_json(_geometry())})


def _int(body: dict[str, Any], key: str, default: int, high: int) -> int:
    raw = body.get(key, default)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= high:
        raise BadRequestError(f"{key} must be an integer between 0 and {high}")
    return raw


@bp.post("/buildings/query")
def buildings_query() -> Response:
    """Buildings in a polygon and/or meeting conditions, with statistics.

    JSON body: ``polygon`` (GeoJSON Polygon/MultiPolygon/Feature or a ring of
    ``[lon, lat]``), ``conditions`` (a list of ``{field, op, value}`` or a text such as
    ``use = 住宅 AND height > 30``), ``predicate`` (``intersects`` default, ``within``,
    ``centroid``), ``offset`` and ``limit`` (page of ids). → ``{"count", "offset",
    "limit", "ids", "conditions", "stats"}``: ``count`` and ``stats`` cover every hit,
    ``ids`` the page.
    """
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequestError("send a JSON object: {polygon?, conditions?, offset?, limit?}")
    polygon = None
    if body.get("polygon") is not None:
        if len(str(body["polygon"])) > _MAX_POLYGON_POINTS * 60:
            raise BadRequestError(f"polygon has more than {_MAX_POLYGON_POINTS} points")
        polygon = query.parse_polygon(body["polygon"])
    conditions = query.parse_conditions(body.get("conditions"))
    if polygon is None and not conditions:
        raise InputDataError("give a polygon, conditions or both")
    offset = _int(body, "offset", 0, 10**9)
    limit = _int(body, "limit", QUERY_DEFAULT_LIMIT, QUERY_MAX_LIMIT)
    table = build_outputs().buildings()
    rows = query.select(table, polygon, conditions, str(body.get("predicate") or "intersects"))
    return no_cache_json(
        {
            "count": int(rows.size),
            "offset": offset,
            "limit": limit,
            "ids": [table.ids[i] for i in rows[offset : offset + limit]],
            "conditions": [c.to_json() for c in conditions],
            "stats": query.statistics(table, rows),
        }
    )


@bp.get("/buildings/stats")
def buildings_stats() -> Response:
    """Statistics over every building of the city (:func:`cim.query.statistics`)."""
    return no_cache_json({"stats": query.statistics(build_outputs().buildings())})


@bp.get("/buildings/<path:building_id>")
def building(building_id: str) -> Response:
    """One building by id."""
    if len(building_id) > _MAX_ID:
        raise BadRequestError(f"a building id is at most {_MAX_ID} characters")
    return no_cache_json({"building": build_outputs().building(building_id).to_json(_geometry())})


@bp.get("/ground")
def ground() -> Response:
    """Ground height at ``?lon=..&lat=..`` (terrain mesh, else building base, else 0)."""
    lon = coordinate("lon", -180.0, 180.0)
    lat = coordinate("lat", -90.0, 90.0)
    return no_cache_json(
        {"lon": lon, "lat": lat, "height": build_outputs().ground_height(lon, lat)}
    )
