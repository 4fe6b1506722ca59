"""``/api/pipelines/...``: queries on the underground pipe network (:mod:`cim.pipelines`).

- ``/api/pipelines``: counts per utility, sources, the clearance tables in force;
- ``/api/pipelines/segments/<id>`` and ``/api/pipelines/points/<id>``: attributes;
- ``/api/pipelines/segments/<id>/connected?direction=downstream|upstream|both``: the
  pipes connected along the flow (drainage by slope, pressure networks from their
  sources), against it, or every way;
- ``/api/pipelines/segments/<id>/burst``: burst analysis (爆管分析): the valves to close,
  the pipes isolated and the pipes cut off from supply;
- ``/api/pipelines/clearance?segment=<id>`` or ``?bbox=w,s,e,n``: clearance (净距)
  violations between pipes and to building foundations (``buildings=0`` skips those).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flask import Blueprint, Response, current_app, request

from cim.errors import NotFoundError
from cim.pipelines import PipeNetwork, network_of
from server.blueprints.search import no_cache_json
from server.errors import BadRequestError
from server.outputs import build_outputs

bp = Blueprint("pipelines", __name__, url_prefix="/api/pipelines")

_MAX_ID = 200
_MAX_BBOX_DEG = 0.2  # about 20 km: a clearance check is for a street or a district


def _network() -> PipeNetwork:
    root = current_app.config.get("OUTPUT_DIR")
    if not root:
        raise NotFoundError("no build output is configured")
    return network_of(root)


def _id(value: str) -> str:
    if len(value) > _MAX_ID:
        raise BadRequestError(f"an id is at most {_MAX_ID} characters")
    return value


@bp.get("")
def summary() -> Response:
    """What the network holds."""
    return no_cache_json(_network().summary())


@bp.get("/segments/<path:segment_id>/connected")
def connected(segment_id: str) -> Response:
    """Pipes connected upstream, downstream or both ways of a segment."""
    direction = (request.args.get("direction") or "downstream").strip().lower()
    return no_cache_json(_network().connected(_id(segment_id), direction))


@bp.get("/segments/<path:segment_id>/burst")
def burst(segment_id: str) -> Response:
    """Valves isolating a burst segment and the pipes cut off."""
    return no_cache_json(_network().burst(_id(segment_id)))


@bp.get("/segments/<path:segment_id>")
def segment(segment_id: str) -> Response:
    """One segment's attributes."""
    return no_cache_json({"segment": _network().segment(_id(segment_id))})


@bp.get("/points/<path:point_id>")
def point(point_id: str) -> Response:
    """One point's attributes."""
    return no_cache_json({"point": _network().point(_id(point_id))})


def _bbox(text: str) -> tuple[float, float, float, float]:
    try:
        w, s, e, n = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise BadRequestError("bbox is west,south,east,north in degrees") from exc
    if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
        raise BadRequestError("bbox is west,south,east,north with west < east, south < north")
    if e - w > _MAX_BBOX_DEG or n - s > _MAX_BBOX_DEG:
        raise BadRequestError(f"bbox is larger than {_MAX_BBOX_DEG}° a side: check a smaller area")
    return w, s, e, n


@bp.get("/clearance")
def clearance() -> Response:
    """Clearance violations of one segment (``segment=``) or of an area (``bbox=``)."""
    net = _network()
    seg, box = request.args.get("segment"), request.args.get("bbox")
    if bool(seg) == bool(box):
        raise BadRequestError("give segment=<id> or bbox=west,south,east,north")
    rows = np.array([net.row(_id(seg))]) if seg else net.rows_in(*_bbox(box or ""))
    buildings: Any = None
    if (request.args.get("buildings") or "1") not in ("0", "false"):
        outputs = build_outputs()
        buildings = outputs.buildings() if outputs.has_buildings() else None
    result = net.check(rows, buildings=buildings)
    result["clearance"] = net.meta.get("clearance", {})
    return no_cache_json(result)
