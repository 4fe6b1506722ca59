"""Department layers over HTTP (``/api/layers``): upload, list, serve, style, versions.

Reads follow ``[live] read``: ``"open"`` lets the anonymous operation view read every
layer readable by all; ``"token"`` asks for a token. Writes need a department token
(``Authorization: Bearer TOKEN``, or HTTP Basic with the department id and the token).
401: no or a bad token; 404: no such layer, or one the caller may not read (its
existence is not revealed); 403: a layer the caller may read but not write. The rules
live in :mod:`layers.deptlayers.store`; this module only speaks HTTP.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request, send_file

from cim.errors import ConfigError, DatasetIOError, InputDataError, NotFoundError
from layers.departments import UnauthorizedError, principal_from_header
from layers.deptlayers import tiles as tiling
from layers.deptlayers.export import write_gpkg
from layers.deptlayers.ingest import READABLE, ingest_file
from layers.deptlayers.store import (
    DeptLayers,
    FeatureRows,
    LayerInfo,
    LayerPermissionError,
    feature_collection_chunks,
)
from layers.deptlayers.styles import ICONS
from layers.deptlayers.tiles import GEOJSON_MAX_FEATURES, MAX_ZOOM, TileCache, TileIndex
from layers.store import Department
from server.errors import BadRequestError, error_response

logger = logging.getLogger(__name__)

bp = Blueprint("layers", __name__, url_prefix="/api/layers")

#: uploads larger than this are refused (413)
MAX_UPLOAD_BYTES = 1 << 30
#: features per page of /features at most
MAX_PAGE = 100_000
_UPLOAD_SUFFIXES = {*READABLE, ".zip", ".kmz"}
_LOCK = threading.Lock()


class _State:
    def __init__(self, layers: DeptLayers, read: str) -> None:
        self.layers = layers
        self.read = read
        self.tiles = TileCache()


def _state(app: Flask | None = None) -> _State:
    from server.blueprints.sta import live_state

    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    st = app.extensions.get("cim.deptlayers")
    if st is not None:
        return st
    with _LOCK:
        st = app.extensions.get("cim.deptlayers")
        if st is None:
            live = live_state(app)
            st = _State(DeptLayers(live.store), live.read)  # migrates the layer tables
            app.extensions["cim.deptlayers"] = st
    return st


@bp.errorhandler(UnauthorizedError)
def _unauthorized(exc: UnauthorizedError) -> Response:
    resp = error_response(401, "Unauthorized", exc.message)
    resp.headers["WWW-Authenticate"] = 'Bearer realm="cim layers"'
    return resp


@bp.errorhandler(LayerPermissionError)
def _forbidden(exc: LayerPermissionError) -> Response:
    return error_response(403, "Forbidden", exc.message)


def _principal(st: _State, write: bool) -> Department | None:
    """The department of the request's token; None for an anonymous reader."""
    return principal_from_header(
        st.layers.store,
        request.headers.get("Authorization"),
        required=write or st.read == "token",
        needed_for=("writing" if write else "reading") + " layers",
    )


def _links(layer: LayerInfo) -> dict[str, Any]:
    base = f"/api/layers/{layer.id}"
    return {
        "self": base,
        "features": f"{base}/features",
        "tiles": f"{base}/tiles.json",
        "versions": f"{base}/versions",
        "export": {"geojson": f"{base}/export.geojson", "gpkg": f"{base}/export.gpkg"},
    }


def _meta(layer: LayerInfo, principal: Department | None) -> dict[str, Any]:
    from layers.deptlayers.store import may_write

    out = layer.to_json()
    # the viewer loads small layers whole and large ones by tiles
    out["serve"] = "geojson" if layer.feature_count <= GEOJSON_MAX_FEATURES else "tiles"
    out["writable"] = may_write(principal, layer)
    out["links"] = _links(layer)
    return out


def _form_json(name: str) -> Any:
    raw = request.form.get(name)
    if raw is None or raw == "":
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        if name == "readable_by":
            return raw  # "all" or "water,police"
        raise BadRequestError(f"{name} must be JSON") from None


@bp.post("")
def upload() -> Response:
    """Upload a file: a new layer, or a new version (replace/append) of one's own layer."""
    st = _state()
    principal = _principal(st, write=True)
    assert principal is not None
    if (request.content_length or 0) > MAX_UPLOAD_BYTES:
        return error_response(
            413, "RequestEntityTooLarge", f"uploads are limited to {MAX_UPLOAD_BYTES >> 20} MiB"
        )
    file = request.files.get("file")
    if file is None or not file.filename:
        raise BadRequestError("multipart field 'file' is missing")
    filename = Path(file.filename.replace("\\", "/")).name  # never a client's folder
    suffix = Path(filename).suffix.lower()
    if suffix not in _UPLOAD_SUFFIXES:
        raise BadRequestError(
            f"cannot read {suffix or 'files without a suffix'!r}: upload a zipped shapefile "
            "(.zip), .kml, .kmz, .gpkg, .geojson, .fgb, .csv or .parquet"
        )
    mode = request.form.get("mode", "new")
    if mode not in ("new", "replace", "append"):
        raise BadRequestError(f"mode must be 'new', 'replace' or 'append', not {mode!r}")
    name = request.form.get("name") or Path(filename).stem
    target = _target(st, principal, mode, request.form.get("id"), name)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cim-layer-") as tmp:
        path = Path(tmp) / _safe_name(filename, suffix)
        file.save(path)
        work = Path(tmp) / "unpacked"
        work.mkdir()
        try:
            clean = ingest_file(
                path,
                work,
                crs=request.form.get("crs") or None,
                default_crs=_city_crs(),
                encoding=request.form.get("encoding") or None,
                layer=request.form.get("layer") or None,
            )
        except (DatasetIOError, ConfigError) as exc:  # the upload is bad, not the server
            raise InputDataError(exc.message, path=filename) from exc
    source = filename
    if target is None:
        layer = st.layers.create(
            principal,
            clean,
            name=name,
            department=request.form.get("department") or None,
            style=_form_json("style"),
            readable_by=_form_json("readable_by"),
            source=source,
        )
    else:
        layer = st.layers.add_version(principal, target.id, clean, mode=mode, source=source)
    report = st.layers.report(layer)
    logger.info(
        "layer %d v%d: %d features in %.2f s",
        layer.id,
        layer.version,
        layer.feature_count,
        time.perf_counter() - started,
    )
    resp = jsonify({"layer": _meta(layer, principal), "report": report})
    resp.status_code = 201
    resp.headers["Location"] = f"/api/layers/{layer.id}"
    return resp


def _safe_name(filename: str, suffix: str) -> str:
    # the stem names the shapefile's parts in messages; no path of the client's survives
    stem = Path(filename).stem.strip(". ") or "upload"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:100] + suffix


def _target(
    st: _State, principal: Department, mode: str, layer_id: str | None, name: str
) -> LayerInfo | None:
    """The layer a replace/append goes to: by ``id``, else the caller's layer of that name."""
    if mode == "new":
        return None
    if layer_id:
        try:
            return st.layers.writable(principal, int(layer_id))
        except ValueError:
            raise BadRequestError(f"id must be a layer id, not {layer_id!r}") from None
    dept = request.form.get("department") or principal.id
    same = [
        lay
        for lay in st.layers.list(principal, deleted=True)
        if lay.name == name and lay.department == dept
    ]
    if not same:
        raise NotFoundError(f"no layer named {name!r} of department {dept!r} to {mode}")
    return st.layers.writable(principal, same[0].id)


def _city_crs() -> str | None:
    project = current_app.config.get("PROJECT_FILE")
    if not project:
        return None
    from cim.config import load_project

    return load_project(project).crs


@bp.get("")
def list_layers() -> Response:
    """The layers the caller may see (``?deleted=1`` adds its deleted ones)."""
    st = _state()
    principal = _principal(st, write=False)
    deleted = request.args.get("deleted") in ("1", "true")
    layers = st.layers.list(principal, deleted=deleted)
    # the tree groups layers under the department's name (水务局), not its id
    names = {d.id: d.name for d in st.layers.store.list_departments()}
    out = []
    for lay in layers:
        meta = _meta(lay, principal)
        meta["department_name"] = names.get(lay.department) or lay.department
        out.append(meta)
    return _no_store(jsonify({"layers": out}))


@bp.get("/icons")
def icons() -> Response:
    """The built-in point icons a style may name, with their URLs."""
    return jsonify({"icons": {name: f"/viewer/icons/{name}.svg" for name in ICONS}})


def _readable(layer_id: int) -> tuple[_State, Department | None, LayerInfo]:
    st = _state()
    principal = _principal(st, write=False)
    return st, principal, st.layers.get(principal, layer_id)


@bp.get("/<int:layer_id>")
def get_layer(layer_id: int) -> Response:
    """A layer's metadata, links and the report of its current version."""
    st, principal, layer = _readable(layer_id)
    out = _meta(layer, principal)
    out["report"] = st.layers.report(layer)
    return _no_store(jsonify(out))


@bp.patch("/<int:layer_id>")
def patch_layer(layer_id: int) -> Response:
    """Change ``name``, ``style`` or ``readable_by`` (JSON body)."""
    st = _state()
    principal = _principal(st, write=True)
    assert principal is not None
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequestError("PATCH takes a JSON object: name, style, readable_by")
    unknown = sorted(set(body) - {"name", "style", "readable_by"})
    if unknown:
        raise BadRequestError(f"cannot change {unknown}: only name, style, readable_by")
    layer = st.layers.update(
        principal,
        layer_id,
        name=body.get("name"),
        style=body.get("style"),
        readable_by=body.get("readable_by", ...),
    )
    return _no_store(jsonify(_meta(layer, principal)))


@bp.delete("/<int:layer_id>")
def delete_layer(layer_id: int) -> Response:
    """Delete a layer (softly: ``POST .../versions/<v>/restore`` brings it back)."""
    st = _state()
    principal = _principal(st, write=True)
    assert principal is not None
    layer = st.layers.delete(principal, layer_id)
    return _no_store(jsonify(_meta(layer, principal)))


@bp.get("/<int:layer_id>/versions")
def versions(layer_id: int) -> Response:
    """Every version with its mode, author, source, counts and report."""
    st, principal, layer = _readable(layer_id)
    return _no_store(
        jsonify({"layer": layer.id, "versions": st.layers.versions(principal, layer.id)})
    )


@bp.post("/<int:layer_id>/versions/<int:version>/restore")
def restore(layer_id: int, version: int) -> Response:
    """Make version ``version`` current again (as a new version); undeletes the layer."""
    st = _state()
    principal = _principal(st, write=True)
    assert principal is not None
    layer = st.layers.restore(principal, layer_id, version)
    return _no_store(jsonify(_meta(layer, principal)))


def _version_arg(layer: LayerInfo) -> int | None:
    v = request.args.get("version")
    if v is None:
        return None
    try:
        return int(v)
    except ValueError:
        raise BadRequestError(f"version must be an integer, not {v!r}") from None


def _bbox_arg() -> tuple[float, float, float, float] | None:
    raw = request.args.get("bbox")
    if not raw:
        return None
    try:
        w, s, e, n = (float(v) for v in raw.split(","))
    except ValueError:
        raise BadRequestError("bbox must be west,south,east,north in degrees") from None
    if not (w <= e and s <= n):
        raise BadRequestError("bbox must be west,south,east,north with west <= east")
    return w, s, e, n


def _int_arg(name: str, default: int | None, hi: int) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestError(f"{name} must be an integer") from None
    if not 0 <= value <= hi:
        raise BadRequestError(f"{name} must be between 0 and {hi}")
    return value


@bp.get("/<int:layer_id>/features")
def features(layer_id: int) -> Response:
    """GeoJSON of the layer: ``bbox``, ``q`` (text), ``where``, ``version``, paging."""
    st, _, layer = _readable(layer_id)
    limit = _int_arg("limit", MAX_PAGE, MAX_PAGE)
    offset = _int_arg("offset", 0, 1 << 40) or 0
    rows, matched = st.layers.features(
        layer,
        version=_version_arg(layer),
        bbox=_bbox_arg(),
        q=request.args.get("q") or None,
        where=request.args.get("where") or None,
        limit=limit,
        offset=offset,
    )
    extra: dict[str, Any] = {
        "layer": layer.id,
        "version": _version_arg(layer) or layer.version,
        "numberMatched": matched,
        "numberReturned": len(rows),
    }
    if offset + len(rows) < matched:
        args = request.args.to_dict()
        args["offset"] = str(offset + len(rows))
        from urllib.parse import urlencode

        extra["next"] = f"/api/layers/{layer.id}/features?{urlencode(args)}"
    return _geojson_response(rows, extra)


def _geojson_response(
    rows: FeatureRows, extra: dict[str, Any], filename: str | None = None
) -> Response:
    resp = Response(
        _encode(feature_collection_chunks(rows, extra)), mimetype="application/geo+json"
    )
    if filename:
        resp.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{_quote(filename)}"
    return _no_store(resp)


def _encode(chunks: Iterator[str]) -> Iterator[bytes]:
    for chunk in chunks:
        yield chunk.encode("utf-8")


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


@bp.get("/<int:layer_id>/features/<int:fid>")
def feature(layer_id: int, fid: int) -> Response:
    """One feature with all its attributes (what a pick shows)."""
    st, _, layer = _readable(layer_id)
    rows, _ = st.layers.features(layer, version=_version_arg(layer), fid=fid)
    if len(rows) == 0:
        raise NotFoundError(f"layer {layer.id} has no feature {fid}")
    import shapely

    return _no_store(
        jsonify(
            {
                "type": "Feature",
                "id": int(rows.fid[0]),
                "geometry": json.loads(shapely.to_geojson(rows.geometry[0])),
                "properties": json.loads(rows.properties[0]),
            }
        )
    )


def _etag(layer: LayerInfo) -> str:
    style = hashlib.sha256(json.dumps(layer.style, sort_keys=True).encode()).hexdigest()[:12]
    return f'"{layer.id}-{layer.version}-{style}"'


@bp.get("/<int:layer_id>/tiles.json")
def tiles_json(layer_id: int) -> Response:
    """How to load the layer by tiles (CesiumJS GeographicTilingScheme)."""
    _, _, layer = _readable(layer_id)
    return _no_store(
        jsonify(
            {
                "scheme": "geographic",
                "min_zoom": 0,
                "max_zoom": MAX_ZOOM,
                "budget": tiling.TILE_BUDGET,
                "tiles": f"/api/layers/{layer.id}/tiles/{{z}}/{{x}}/{{y}}.json?v={layer.version}",
                "feature": f"/api/layers/{layer.id}/features/{{id}}",
                "bounds": layer.bbox,
                "feature_count": layer.feature_count,
                "version": layer.version,
                "style": layer.style,
                "attributes": _style_attributes(layer),
            }
        )
    )


def _style_attributes(layer: LayerInfo) -> list[str]:
    s = layer.style
    names = [
        (s.get("by") or {}).get("attribute"),
        (s.get("label") or {}).get("attribute"),
        ((s.get("polygon") or {}).get("extrude") or {}).get("attribute"),
    ]
    return list(dict.fromkeys(n for n in names if n))


@bp.get("/<int:layer_id>/tiles/<int:z>/<int:x>/<int:y>.json")
def tile(layer_id: int, z: int, x: int, y: int) -> Response:
    """One tile of the layer's current version (see :mod:`layers.deptlayers.tiles`)."""
    st, _, layer = _readable(layer_id)
    etag = _etag(layer)
    if request.headers.get("If-None-Match") == etag:
        return Response(status=304, headers={"ETag": etag, "Cache-Control": "no-cache"})
    key = (id(st.layers.store), layer.id, layer.version)
    index = st.tiles.get(key, lambda: TileIndex.build(st.layers.features(layer)[0]))
    body = index.tile(
        z, x, y, _style_attributes(layer), {"layer": layer.id, "version": layer.version}
    )
    resp = Response(body, mimetype="application/geo+json")
    resp.headers["ETag"] = etag
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.get("/<int:layer_id>/export.geojson")
def export_geojson(layer_id: int) -> Response:
    """The whole layer (``?version=``) as a GeoJSON file."""
    st, _, layer = _readable(layer_id)
    version = _version_arg(layer)
    rows, _ = st.layers.features(layer, version=version)
    extra = {"name": layer.name, "layer": layer.id, "version": version or layer.version}
    return _geojson_response(rows, extra, f"{layer.name}.geojson")


@bp.get("/<int:layer_id>/export.gpkg")
def export_gpkg(layer_id: int) -> Response:
    """The whole layer (``?version=``) as a GeoPackage file."""
    st, _, layer = _readable(layer_id)
    version = _version_arg(layer)
    rows, _ = st.layers.features(layer, version=version)
    fields = st.layers.version_fields(layer, version)
    with tempfile.TemporaryDirectory(prefix="cim-export-") as tmp:
        path = write_gpkg(rows, fields, Path(tmp) / "export.gpkg", layer.name)
        data = path.read_bytes()
    resp = send_file(
        io.BytesIO(data),
        mimetype="application/geopackage+sqlite3",
        as_attachment=True,
        download_name=f"{layer.name}.gpkg",
    )
    return _no_store(resp)


def _no_store(resp: Response) -> Response:
    resp.headers["Cache-Control"] = "no-store"
    return resp
