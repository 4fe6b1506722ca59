"""An uploaded file → clean WGS84 features and a report, ready for the store.

1. :func:`unpack` opens what was uploaded: a zipped shapefile (``.shp`` + ``.dbf`` +
   ``.prj`` + ``.cpg``), a KMZ, or a zip holding one GeoPackage / GeoJSON / CSV...,
   extracted safely (no absolute paths, no ``..``, no links, bounded sizes).
2. :func:`read_upload` reads it with :func:`cim.readers.read_features` (KML with
   :mod:`layers.deptlayers.kml`).
3. :func:`clean_features` applies the CRS policy (:func:`cim.crs.resolve_crs`: the
   upload's ``crs`` plays the part of a section's ``crs``, GCJ-02/BD-09 included) and
   the repair rules of the buildings, for every geometry type:

=====================  ==========================================================
``no-geometry``        skipped: null or empty geometry
``bad-coordinates``    skipped: a coordinate NaN/infinite or not fitting the CRS
``invalid-geometry``   repaired with GEOS make_valid (structure method), keeping the
                       parts of the feature's own dimension; skipped when none is
                       left; a ring GEOS cannot read is closed while reading
``duplicate-vertices`` repaired: consecutive vertices closer than ~1 mm removed
``z-dropped``          repaired: non-zero Z dropped (layers lie on the terrain)
``degenerate``         skipped: a line whose vertices all coincide (< 1 mm), a
                       polygon of (almost) no area (< 0.01 m²)
=====================  ==========================================================
"""

from __future__ import annotations

import logging
import shutil
import stat
import zipfile
from dataclasses import dataclass
from json.encoder import encode_basestring as _encode
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import shapely

from cim.crs import crs_label, resolve_crs
from cim.encoding import check_shapefile_encoding
from cim.errors import CimError, CRSError, InputDataError
from cim.readers import FeatureTable, apply_per_feature, read_features
from cim.report import StageReport
from layers.deptlayers.kml import read_kml

log = logging.getLogger(__name__)

#: an uploaded archive may hold at most this much once extracted, and this many members
MAX_UNZIPPED_BYTES = 2 << 30
MAX_MEMBERS = 1000
#: the formats an upload may be (inside a zip too)
READABLE = (
    ".shp",
    ".gpkg",
    ".geojson",
    ".json",
    ".fgb",
    ".csv",
    ".tsv",
    ".kml",
    ".parquet",
    ".geoparquet",
    ".geojsonl",
    ".geojsons",
    ".txt",
)
METRES_PER_DEGREE = 111_320.0
#: polygons under this area (m²) are degenerate
MIN_POLYGON_AREA = 0.01
#: items listed per reason in a report (the counts are always complete)
REPORT_LIST_LIMIT = 1000


@dataclass
class CleanFeatures:
    """Features ready for the store.

    Attributes
    ----------
    geometry : ndarray of shapely geometries, WGS84 lon/lat, 2D, valid
    columns : dict of str to list
        Attribute → its JSON-ready values, one per feature.
    fields : dict of str to str
        Attribute name → ``"integer"``, ``"number"``, ``"text"`` or ``"boolean"``.
    crs : str
        The CRS the coordinates were read in (its label).
    report : StageReport
    """

    geometry: np.ndarray
    columns: dict[str, list[Any]]
    fields: dict[str, str]
    crs: str
    report: StageReport

    @property
    def properties(self) -> list[dict[str, Any]]:
        """One attribute dict per feature."""
        names = list(self.columns)
        if not names:
            return [{} for _ in range(len(self.geometry))]
        return [
            dict(zip(names, row, strict=True)) for row in zip(*self.columns.values(), strict=True)
        ]

    def properties_json(self) -> list[str]:
        """Each feature's attributes as a JSON object (the stored form).

        Built column by column with the C string encoder: ``json.dumps`` per feature
        costs seconds for 100,000 features.
        """
        n = len(self.geometry)
        if not self.columns:
            return ["{}"] * n
        parts = [
            [f"{_encode(name)}:{v}" for v in _json_texts(values)]
            for name, values in self.columns.items()
        ]
        return ["{" + ",".join(row) + "}" for row in zip(*parts, strict=True)]


def unpack(upload: Path, workdir: Path) -> Path:
    """The readable file inside an upload (the upload itself when it is not an archive).

    Parameters
    ----------
    upload : Path
        The uploaded file, with its original suffix.
    workdir : Path
        An empty folder to extract into.

    Raises
    ------
    InputDataError
        An unsafe, oversized or corrupt archive, or one holding no (or several) layers.
    """
    suffix = upload.suffix.lower()
    if suffix not in (".zip", ".kmz"):
        return upload
    try:
        with zipfile.ZipFile(upload) as zf:
            members = _safe_members(zf, upload)
            for info in members:
                target = workdir.joinpath(*PurePosixPath(info.filename).parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except zipfile.BadZipFile as exc:
        raise InputDataError(f"not a readable zip archive ({exc})", path=upload.name) from exc
    found = sorted(
        p
        for p in workdir.rglob("*")
        if p.is_file()
        and p.suffix.lower() in READABLE
        and not p.name.startswith(".")
        and "__MACOSX" not in p.parts
    )
    if suffix == ".kmz":
        found = [p for p in found if p.suffix.lower() == ".kml"][:1]  # doc.kml comes first
    shp = [p for p in found if p.suffix.lower() == ".shp"]
    found = shp or found
    if not found:
        raise InputDataError(
            "the archive holds no readable layer (.shp with .dbf/.prj, .gpkg, .geojson, "
            ".kml, .fgb, .csv)",
            path=upload.name,
        )
    if len(found) > 1:
        names = ", ".join(p.name for p in found[:5])
        raise InputDataError(
            f"the archive holds {len(found)} layers ({names}); upload one at a time",
            path=upload.name,
        )
    return found[0]


def _safe_members(zf: zipfile.ZipFile, upload: Path) -> list[zipfile.ZipInfo]:
    """The archive's files, refusing path traversal, links and zip bombs."""
    infos = [i for i in zf.infolist() if not i.is_dir()]
    if len(infos) > MAX_MEMBERS:
        raise InputDataError(
            f"the archive holds {len(infos)} files (at most {MAX_MEMBERS})", path=upload.name
        )
    total = 0
    for info in infos:
        name = info.filename.replace("\\", "/")
        parts = PurePosixPath(name).parts
        if not parts or name.startswith("/") or ":" in parts[0] or ".." in parts:
            raise InputDataError(f"unsafe path in the archive: {info.filename!r}", path=upload.name)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise InputDataError(f"link in the archive: {info.filename!r}", path=upload.name)
        total += info.file_size
        if total > MAX_UNZIPPED_BYTES:
            raise InputDataError(
                f"the archive unpacks to more than {MAX_UNZIPPED_BYTES >> 20} MiB",
                path=upload.name,
            )
        info.filename = name
    return infos


def read_upload(
    path: Path, *, encoding: str | None = None, layer: str | None = None
) -> FeatureTable:
    """Read an unpacked upload (see :func:`unpack`) into a feature table.

    Raises
    ------
    DatasetIOError, InputDataError, ConfigError
        As :func:`cim.readers.read_features`.
    """
    if path.suffix.lower() == ".kml":
        return read_kml(path)
    if encoding is not None and path.suffix.lower() == ".shp":
        # a declared encoding is verified on every record: GDAL would pass bytes it
        # cannot decode on as they are
        check_shapefile_encoding(path, encoding)
    try:
        return read_features(path, layer=layer, encoding=encoding)
    except pa.ArrowException as exc:
        # text GDAL handed over undecoded (a last guard: the checks above refuse it first)
        raise InputDataError(
            f"text that does not decode as {encoding or 'the detected encoding'}; "
            "give the upload's encoding",
            path=path,
        ) from exc


def clean_features(
    table: FeatureTable,
    *,
    crs: str | None = None,
    default_crs: str | None = None,
    name: str = "layer",
) -> CleanFeatures:
    """Resolve the CRS, convert to WGS84 lon/lat and repair (see the module table).

    Parameters
    ----------
    table : FeatureTable
    crs : str, optional
        The CRS given with the upload (wins over ``default_crs``; must agree with a
        CRS the file carries, by the core's policy).
    default_crs : str, optional
        The project's ``[city] crs``, for files that carry none.
    name : str
        The upload's file name, for messages.

    Raises
    ------
    CRSError
        No CRS, a contradiction, or coordinates that cannot belong to it.
    InputDataError
        No usable feature.
    """
    report = StageReport("layer")
    report.read = n = len(table)
    geoms = table.geometry.copy()
    keep = np.ones(n, dtype=bool)
    for issue in table.issues:
        if not issue.repaired:
            report.skip(issue.row, issue.reason, issue.detail)
            keep[issue.row] = False
    missing = keep & (shapely.is_missing(geoms) | shapely.is_empty(geoms))
    for i in np.flatnonzero(missing):
        report.skip(i, "no-geometry")
    keep &= ~missing
    geoms, keep = _drop_z(geoms, keep, report)
    keep = _drop_nonfinite(geoms, keep, report)
    if not keep.any():
        raise InputDataError("no usable feature (see the report)", path=name)
    resolved = _resolve(table, geoms, keep, crs, default_crs, name)
    if resolved.note:
        report.warn(resolved.note)
    idx = np.flatnonzero(keep)
    for i in idx[~resolved.fits]:
        report.skip(i, "bad-coordinates", f"does not fit {crs_label(resolved.crs)}")
    keep[idx[~resolved.fits]] = False
    kept = np.flatnonzero(keep)
    coords, owner = shapely.get_coordinates(geoms[kept], return_index=True)
    lon, lat = resolved.to_lonlat(coords[:, 0], coords[:, 1])
    geoms[kept] = shapely.set_coordinates(geoms[kept].copy(), np.column_stack([lon, lat]))
    bad = np.zeros(len(kept), dtype=bool)
    bad[owner[~(np.isfinite(lon) & np.isfinite(lat))]] = True
    for i in kept[bad]:
        report.skip(i, "bad-coordinates", "not on the Earth in WGS84")
    keep[kept[bad]] = False
    geoms, keep = _repair(geoms, keep, report)
    for issue in table.issues:
        if issue.repaired and keep[issue.row]:
            report.repair(issue.row, issue.reason, f"{issue.detail}; ring closed")
    idx = np.flatnonzero(keep)
    if len(idx) == 0:
        raise InputDataError("no usable feature (see the report)", path=name)
    report.written = len(idx)
    properties, fields = _properties(table, idx)
    return CleanFeatures(geoms[idx], properties, fields, crs_label(resolved.crs), report)


def _resolve(
    table: FeatureTable,
    geoms: np.ndarray,
    keep: np.ndarray,
    crs: str | None,
    default_crs: str | None,
    name: str,
) -> Any:
    b = shapely.bounds(geoms[keep])
    try:
        return resolve_crs(
            table.crs,
            crs,
            b[:, [0, 2]],
            b[:, [1, 3]],
            what="upload",
            path=name,
            default=default_crs,
            implied=table.implied_crs,
            items="features",
        )
    except CRSError as exc:
        # the policy speaks of city.toml sections; an upload names its crs itself
        message = exc.message.replace(" (or [city] crs) in city.toml", "").replace(
            "[upload] crs", "the upload's crs"
        )
        raise CRSError(message, path=name) from exc


def _drop_z(
    geoms: np.ndarray, keep: np.ndarray, report: StageReport
) -> tuple[np.ndarray, np.ndarray]:
    has_z = np.flatnonzero(keep & shapely.has_z(geoms))
    if len(has_z) == 0:
        return geoms, keep
    coords, owner = shapely.get_coordinates(geoms[has_z], include_z=True, return_index=True)
    nonzero = np.zeros(len(has_z), dtype=bool)
    nonzero[owner[np.nan_to_num(coords[:, 2]) != 0.0]] = True
    for i in has_z[nonzero]:
        report.repair(i, "z-dropped")
    geoms[has_z] = shapely.force_2d(geoms[has_z])
    return geoms, keep


def _drop_nonfinite(geoms: np.ndarray, keep: np.ndarray, report: StageReport) -> np.ndarray:
    kept = np.flatnonzero(keep)
    coords, owner = shapely.get_coordinates(geoms[kept], return_index=True)
    bad = np.zeros(len(kept), dtype=bool)
    bad[owner[~np.isfinite(coords).all(axis=1)]] = True
    for i in kept[bad]:
        report.skip(i, "bad-coordinates", "a coordinate is NaN or infinite")
    keep[kept[bad]] = False
    return keep


def _repair(
    geoms: np.ndarray, keep: np.ndarray, report: StageReport
) -> tuple[np.ndarray, np.ndarray]:
    """Duplicate vertices, invalid polygons and degenerate lines/polygons."""
    dim = shapely.get_dimensions(geoms)
    lines_polys = np.flatnonzero(keep & (dim >= 1))
    if len(lines_polys):
        n_before = shapely.get_num_coordinates(geoms[lines_polys])
        fixed, errors = apply_per_feature(shapely.remove_repeated_points, geoms[lines_polys], 1e-8)
        n_after = np.array([shapely.get_num_coordinates(g) if g is not None else 0 for g in fixed])
        for k, i in enumerate(lines_polys):
            if k in errors or fixed[k] is None or shapely.is_empty(fixed[k]):
                report.skip(i, "degenerate", "every vertex within 1 mm")
                keep[i] = False
            elif n_after[k] < n_before[k]:
                geoms[i] = fixed[k]
                report.repair(i, "duplicate-vertices", f"{n_before[k] - n_after[k]} removed")
    polys = np.flatnonzero(keep & (dim == 2))
    valid, _ = apply_per_feature(shapely.is_valid, geoms[polys], fill=False)
    for i in polys[~valid.astype(bool)]:
        reason = str(shapely.is_valid_reason(geoms[i]))
        fixed_one = _make_valid(geoms[i], 2)
        if fixed_one is None:
            report.skip(i, "invalid-geometry", f"{reason}; nothing polygonal left")
            keep[i] = False
        else:
            geoms[i] = fixed_one
            report.repair(i, "invalid-geometry", reason)
    _drop_degenerate(geoms, keep, dim, report)
    return geoms, keep


def _make_valid(geom: shapely.Geometry, dim: int) -> shapely.Geometry | None:
    try:
        made = shapely.make_valid(geom, method="structure", keep_collapsed=False)
    except (shapely.errors.GEOSException, ValueError):
        return None
    parts = [p for p in shapely.get_parts(made) if shapely.get_dimensions(p) == dim]
    flat = [q for p in parts for q in shapely.get_parts(p) if not q.is_empty]
    if not flat:
        return None
    return flat[0] if len(flat) == 1 else shapely.MultiPolygon(flat)


def _drop_degenerate(
    geoms: np.ndarray, keep: np.ndarray, dim: np.ndarray, report: StageReport
) -> None:
    lines = np.flatnonzero(keep & (dim == 1))
    zero = shapely.length(geoms[lines]) * METRES_PER_DEGREE < 1e-3
    for i in lines[zero]:
        report.skip(i, "degenerate", "a line of zero length")
    keep[lines[zero]] = False
    polys = np.flatnonzero(keep & (dim == 2))
    lat = shapely.bounds(geoms[polys])[:, 1]
    area = shapely.area(geoms[polys]) * METRES_PER_DEGREE**2 * np.cos(np.radians(lat))
    for k in np.flatnonzero(area < MIN_POLYGON_AREA):
        report.skip(polys[k], "degenerate", f"polygon area {area[k]:.4f} m²")
    keep[polys[area < MIN_POLYGON_AREA]] = False


def _properties(
    table: FeatureTable, idx: np.ndarray
) -> tuple[dict[str, list[Any]], dict[str, str]]:
    """JSON-ready attribute columns of the kept rows, and each attribute's type."""
    columns: dict[str, list[Any]] = {}
    fields: dict[str, str] = {}
    for col_name, col in table.columns.items():
        kind, vals = _json_column(col[idx])
        columns[col_name] = vals
        fields[col_name] = kind
    return columns, fields


def _json_texts(values: list[Any]) -> list[str]:
    """JSON text of each value (None, bool, int, finite float, str)."""
    out = []
    for v in values:
        if v is None:
            out.append("null")
        elif v is True:
            out.append("true")
        elif v is False:
            out.append("false")
        elif isinstance(v, str):
            out.append(_encode(v))
        else:
            out.append(repr(v))  # int, or a finite float: repr is valid JSON
    return out


def _json_column(col: np.ndarray) -> tuple[str, list[Any]]:
    kind = col.dtype.kind
    if kind == "b":
        return "boolean", col.tolist()
    if kind in "iu":
        return "integer", col.astype(np.int64).tolist()
    if kind == "f":
        out = col.astype(np.float64)
        return "number", np.where(np.isfinite(out), out, None).tolist()
    if kind == "M":
        return "text", [None if np.isnat(v) else str(v) for v in col]
    vals = col.tolist()
    kinds = set(map(type, vals))
    if kinds <= {str, type(None)}:  # the common text column: nothing to convert
        return "text", vals
    vals = [_json_value(v) for v in vals]
    given = [v for v in vals if v is not None]
    if given and all(isinstance(v, bool) for v in given):
        return "boolean", vals
    if given and all(isinstance(v, int) and not isinstance(v, bool) for v in given):
        return "integer", vals
    if given and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in given):
        return "number", vals
    return "text", vals


def _json_value(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if np.isfinite(v) else None
    if isinstance(v, bytes):
        return None  # binary blobs are not attributes a map can show
    return str(v)  # dates, decimals


def ingest_file(
    upload: Path,
    workdir: Path,
    *,
    crs: str | None = None,
    default_crs: str | None = None,
    encoding: str | None = None,
    layer: str | None = None,
) -> CleanFeatures:
    """Unpack, read and clean an uploaded file (the three steps of this module).

    Parameters
    ----------
    upload : Path
        The uploaded file under its original name (suffix decides the format).
    workdir : Path
        An empty scratch folder (the caller removes it).
    crs, default_crs, encoding, layer
        See :func:`clean_features` and :func:`cim.readers.read_features`.

    Raises
    ------
    InputDataError, CRSError, DatasetIOError, ConfigError
    """
    try:
        path = unpack(upload, workdir)
        table = read_upload(path, encoding=encoding, layer=layer)
        return clean_features(table, crs=crs, default_crs=default_crs, name=upload.name)
    except CimError as exc:
        exc.path = upload.name  # the upload's own name, never a scratch path
        # the core speaks of city.toml; an upload gives its encoding as a form field
        exc.message = exc.message.replace(
            "set 'encoding' in city.toml", "give the upload's encoding"
        )
        exc.args = (exc.message,)
        raise


def report_json(report: StageReport) -> dict[str, Any]:
    """The report returned to the uploader (item lists capped, counts complete)."""
    out = report.to_json()
    for key in ("repaired", "skipped", "flagged"):
        items = out[key]
        if len(items) > REPORT_LIST_LIMIT:
            out[key] = items[:REPORT_LIST_LIMIT]
            out[f"{key}_truncated"] = True
    out.pop("seconds", None)
    return out
