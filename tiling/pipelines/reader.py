"""Read pipe surveys: point and segment tables, or lines with Z.

Surveys after CJJ 61 / CJJ/T 269 come as a point table (管点: 点号, coordinates, 地面高程,
埋深, 特征/附属物 such as 阀门 or 检查井) and a segment table (管线段: 起点点号, 终点点号,
起点埋深, 终点埋深, 管径 or 断面 B×H, 材质, 埋设方式, 电压/压力, 孔数...), often one pair of
files per utility (``JS_POINT.shp``, ``JS_LINE.shp``). Columns are found by the codes
and names of :data:`FIELD_CANDIDATES` (case-insensitive), unless ``[pipelines.fields]``
names them. Text follows the toolkit's encoding policy (:mod:`cim.encoding`: ``.cpg``,
else UTF-8/GBK detection, or ``encoding``), coordinates its CRS policy
(:func:`cim.crs.resolve_crs`).

Everything is read into a :class:`Survey` of numpy columns; per-feature problems are
collected as ``(id, reason, detail, repaired)`` items for the build report.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyogrio
import shapely

from cim.config import PipelinesConfig
from cim.crs import resolve_crs
from cim.encoding import (
    check_text_encoding,
    choose_encoding,
    detect_shapefile_encoding,
    detect_text_encoding,
    scan_text,
)
from cim.errors import DatasetIOError, InputDataError
from cim.pipelines import utilities_of, utility_of

# the core's CSV parser and column conversion, for tables without geometry
from cim.readers import (
    CSV_SUFFIXES,
    WKT_NAMES,
    XY_NAMES,
    FeatureTable,
    _arrow_columns,
    _parse_csv,
    read_features,
    to_float,
    to_text,
)

log = logging.getLogger(__name__)

#: Canonical field → column names recognised without configuration (compared
#: case-insensitively): English names, the common pinyin-initial codes of survey
#: software and the Chinese names of CJJ 61 / CJJ/T 269 tables.
FIELD_CANDIDATES: dict[str, tuple[str, ...]] = {
    "point_id": (
        "point_id",
        "ptid",
        "exp_no",
        "expno",
        "点号",
        "物探点号",
        "管点编号",
        "管点号",
        "WTDH",
        "DH",
    ),
    "ground": ("ground", "ground_elev", "surf_h", "地面高程", "地面高", "地面标高", "DMGC"),
    "depth": ("depth", "埋深", "管点埋深", "MS"),
    "well_depth": ("well_depth", "井深", "JS_DEPTH"),
    "well_size": ("well_size", "井径", "井盖尺寸", "JJ"),
    "feature": ("feature", "特征", "特征点", "附属物", "附属物名称", "TZD", "FSW", "TZ"),
    "segment_id": (
        "segment_id",
        "line_id",
        "管线编号",
        "管段编号",
        "管线段编号",
        "GXBH",
        "id",
        "编号",
    ),
    "start": ("start", "start_id", "s_point", "from", "起点点号", "起点", "起始点号", "QDDH"),
    "end": ("end", "end_id", "e_point", "to", "终点点号", "终点", "连接点号", "ZDDH"),
    "start_depth": ("start_depth", "s_depth", "起点埋深", "QDMS"),
    "end_depth": ("end_depth", "e_depth", "终点埋深", "ZDMS"),
    "start_elev": ("start_elev", "起点高程", "起点管顶高程", "起点管底高程", "QDGC"),
    "end_elev": ("end_elev", "终点高程", "终点管顶高程", "终点管底高程", "ZDGC"),
    "diameter": ("diameter", "dn", "pipe_size", "管径", "管径mm", "GJ"),
    "section": ("section", "断面", "断面尺寸", "规格", "DMCC"),
    "material": ("material", "材质", "管材", "CZ"),
    "laying": ("laying", "埋设方式", "敷设方式", "MSFS"),
    "pressure": ("pressure", "压力", "YL"),
    "voltage": ("voltage", "电压", "DY"),
    "holes": ("holes", "孔数", "总孔数", "KS"),
    "cables": ("cables", "电缆条数", "条数", "DLTS"),
    "flow": ("flow", "流向", "LX"),
    "owner": ("owner", "权属单位", "QSDW"),
    "road": ("road", "所在道路", "道路名称", "SZDL"),
    "utility": (
        "utility",
        "管线类型",
        "管线类别",
        "管类",
        "管线种类",
        "类别",
        "GXLB",
        "GXLX",
        "type",
    ),
}
#: Text attributes carried into the tiles and the network file as they are.
TEXT_FIELDS = ("material", "laying", "pressure", "voltage", "holes", "cables", "owner", "road")
_X_NAMES = ("x", "east", "easting", "东坐标", "横坐标")
_Y_NAMES = ("y", "north", "northing", "北坐标", "纵坐标")
_SECTION = re.compile(r"(\d+(?:\.\d+)?)\s*[×xX*＊]\s*(\d+(?:\.\d+)?)")
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)")

Issue = tuple[str, str, str, bool]  # id, reason, detail, repaired (else skipped)


@dataclass
class Points:
    """Pipe points (管点) in WGS84 lon/lat with orthometric ground elevations."""

    ids: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    ground: np.ndarray  # NaN where unknown
    depth: np.ndarray  # NaN where unknown
    well_depth: np.ndarray
    well_size: np.ndarray  # metres, NaN: default
    feature: np.ndarray  # text
    utility: np.ndarray  # key or None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Segments:
    """Pipe segments (管线段) between point ids; sizes in millimetres."""

    ids: np.ndarray
    start: np.ndarray
    end: np.ndarray
    start_depth: np.ndarray
    end_depth: np.ndarray
    start_elev: np.ndarray  # elevation at the depth reference, when surveyed so
    end_elev: np.ndarray
    width: np.ndarray  # mm: diameter, or B of a B×H section
    height: np.ndarray  # mm: diameter, or H
    rectangular: np.ndarray  # bool
    section: np.ndarray  # text as written ("DN300", "800×600")
    utility: np.ndarray  # key
    text: dict[str, np.ndarray]
    flow: np.ndarray  # text

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Survey:
    """A whole survey: points, segments and what reading them repaired or skipped."""

    points: Points
    segments: Segments
    crs: str
    issues: list[Issue] = field(default_factory=list)
    read_points: int = 0
    read_segments: int = 0


def _column(table: FeatureTable, name: str, cfg: PipelinesConfig) -> np.ndarray | None:
    """The column for canonical field ``name``: mapped in city.toml, else detected."""
    if name in cfg.fields:
        col = table.column(cfg.fields[name])
        if col is None:
            raise InputDataError(
                f"[pipelines.fields] {name} = {cfg.fields[name]!r}: no such column "
                f"(columns: {sorted(table.columns)})",
                path=table.path,
            )
        return col
    for cand in FIELD_CANDIDATES[name]:
        col = table.column(cand)
        if col is not None:
            return col
    return None


def _attributes_only(path: Path, layer: str | None, encoding: str | None) -> FeatureTable:
    """A table without geometry (segment tables linked by point ids)."""
    if path.suffix.lower() in CSV_SUFFIXES:
        enc = check_text_encoding(path, encoding) if encoding else detect_text_encoding(path)
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        table, bad = _parse_csv(path, enc, delimiter)
        for row in bad:
            log.warning(
                "%s: line %s skipped: %s cells, the header has %s",
                path,
                row.number,
                row.actual_columns,
                row.expected_columns,
            )
    else:
        enc = encoding or (
            detect_shapefile_encoding(path) if path.suffix.lower() == ".shp" else None
        )
        try:
            _meta, table = pyogrio.read_arrow(path, layer=layer, encoding=enc, read_geometry=False)
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
            raise DatasetIOError(f"cannot read ({exc})", path=path) from exc
    if table.num_rows == 0:
        raise InputDataError("empty file: no rows", path=path)
    columns = _arrow_columns(table, exclude=set(), encoding=enc, path=path)
    empty = np.full(table.num_rows, None, dtype=object)
    return FeatureTable(path, empty, columns, None, enc)


def _csv_header(path: Path, encoding: str | None) -> list[str]:
    """Column names of a CSV file (its first line), in its declared or detected encoding."""
    try:
        with open(path, "rb") as fh:
            line = fh.readline()
    except OSError as exc:
        raise DatasetIOError(f"cannot read ({exc})", path=path) from exc
    enc = encoding or choose_encoding(scan_text([line])) or "utf-8"
    text = line.decode(enc, errors="replace").removeprefix("\ufeff")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    return [h.strip().strip('"') for h in text.rstrip("\r\n").split(delimiter)]


def _csv_geometry(path: Path, encoding: str | None) -> bool:
    """Whether a CSV file has a WKT column or a coordinate pair the core reader finds."""
    names = {h.lower() for h in _csv_header(path, encoding)}
    return any(n in names for n in WKT_NAMES) or any(x in names and y in names for x, y in XY_NAMES)


def _read(path: Path, layer: str | None, cfg: PipelinesConfig, *, points: bool) -> FeatureTable:
    """A point or segment table; segment tables may have no geometry at all."""
    x = y = None
    if points and path.suffix.lower() in CSV_SUFFIXES:
        x, y = cfg.x, cfg.y
        if x is None:
            lower = {k.lower(): k for k in _csv_header(path, cfg.encoding)}
            x = next((lower[n] for n in _X_NAMES if n in lower), None)
            y = next((lower[n] for n in _Y_NAMES if n in lower), None)
            if x is None or y is None:
                x = y = None  # lon/lat or WKT columns: the core reader finds them
    elif path.suffix.lower() in CSV_SUFFIXES and not _csv_geometry(path, cfg.encoding):
        # a segment table linked by point ids: parse it once, not once to fail first
        return _attributes_only(path, layer, cfg.encoding)
    try:
        return read_features(path, layer=layer, encoding=cfg.encoding, x=x, y=y)
    except InputDataError as exc:
        if points or "geometry" not in exc.message:
            raise
    return _attributes_only(path, layer, cfg.encoding)


def read_survey(cfg: PipelinesConfig, project_crs: str | None, ground_at: Any = None) -> Survey:
    """Read every table named in ``[pipelines]`` into one :class:`Survey`.

    Parameters
    ----------
    cfg : PipelinesConfig
    project_crs : str or None
        ``[city] crs``.
    ground_at : callable, optional
        ``(lon, lat) -> orthometric ground heights`` (the DEM) for points without a
        ground elevation; NaN where it has none.

    Raises
    ------
    CRSError, InputDataError, DatasetIOError
        As the core readers and :func:`cim.crs.resolve_crs` do.
    """
    issues: list[Issue] = []
    if cfg.lines:
        survey = _read_lines(cfg, project_crs, issues)
    else:
        pts = [
            _points(_read(p, cfg.points_layer, cfg, points=True), cfg, project_crs, issues)
            for p in cfg.points
        ]
        segs = [
            _segments(_read(p, cfg.segments_layer, cfg, points=False), cfg, issues)
            for p in cfg.segments
        ]
        points = _concat(Points, [p for p, _ in pts])
        segments = _concat(Segments, segs)
        crs = pts[0][1]
        survey = Survey(points, segments, crs, issues, len(points), len(segments))
    _fill_ground(survey, ground_at)
    return survey


def _concat(cls: type, parts: list[Any]) -> Any:
    out = {}
    for name in cls.__dataclass_fields__:
        values = [getattr(p, name) for p in parts]
        if isinstance(values[0], dict):
            out[name] = {k: np.concatenate([v[k] for v in values]) for k in values[0]}
        else:
            out[name] = np.concatenate(values)
    return cls(**out)


def _ids(values: np.ndarray | None, n: int, path: Path, issues: list[Issue]) -> np.ndarray:
    """Ids as text; generated (``file:row``) where missing."""
    ids = to_text(values, n)
    missing = np.flatnonzero(ids == "")
    if len(missing):
        ids[missing] = [f"{path.stem}:{i + 1}" for i in missing.tolist()]
        issues += [
            (ids[i], "missing-id", f"row {i + 1}: id generated", True) for i in missing.tolist()
        ]
    return ids


def _file_utility(path: Path, cfg: PipelinesConfig) -> str | None:
    """The utility a file's name or the configuration gives its rows (``JS_POINT.shp``)."""
    return utility_of(path.stem) or (utility_of(cfg.utility) if cfg.utility else None)


def _utilities(table: FeatureTable, cfg: PipelinesConfig, n: int) -> np.ndarray:
    col = _column(table, "utility", cfg)
    keys = utilities_of(col) if col is not None else np.full(n, None, dtype=object)
    fallback = _file_utility(table.path, cfg)
    if fallback is not None:
        keys[keys == None] = fallback  # noqa: E711 (object array)
    return keys


def _points(
    table: FeatureTable, cfg: PipelinesConfig, project_crs: str | None, issues: list[Issue]
) -> tuple[Points, str]:
    n = len(table)
    ids = _ids(_column(table, "point_id", cfg), n, table.path, issues)
    geoms = table.geometry
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    pts = geoms.copy()
    # points are their own centroids; other shapes (a well drawn as a polygon) are not
    shaped = ~missing & (shapely.get_type_id(geoms) != 0)
    pts[shaped] = shapely.centroid(geoms[shaped])
    xs = np.full(n, np.nan)
    ys = np.full(n, np.nan)
    xs[~missing] = shapely.get_x(pts[~missing])
    ys[~missing] = shapely.get_y(pts[~missing])
    resolved = resolve_crs(
        table.crs,
        cfg.crs,
        xs[~missing],
        ys[~missing],
        what="pipelines",
        path=table.path,
        default=project_crs,
        implied=table.implied_crs,
        items="pipe points",
    )
    if resolved.note:
        issues.append(("", "crs-note", f"{table.path.name}: {resolved.note}", True))
    fits = np.zeros(n, dtype=bool)
    fits[~missing] = resolved.fits
    lon, lat = resolved.to_lonlat(np.where(fits, xs, np.nan), np.where(fits, ys, np.nan))
    bad = ~np.isfinite(lon)
    for i in np.flatnonzero(bad).tolist():
        issues.append(
            (ids[i], "bad-coordinates", f"({xs[i]}, {ys[i]}) does not fit {resolved.crs}", False)
        )
    size = to_float(_column(table, "well_size", cfg), n)
    size = np.where(size > 20, size / 1000.0, size)  # given in millimetres
    return (
        Points(
            ids=ids,
            lon=np.asarray(lon, dtype=np.float64),
            lat=np.asarray(lat, dtype=np.float64),
            ground=to_float(_column(table, "ground", cfg), n),
            depth=to_float(_column(table, "depth", cfg), n),
            well_depth=to_float(_column(table, "well_depth", cfg), n),
            well_size=size,
            feature=to_text(_column(table, "feature", cfg), n),
            utility=_utilities(table, cfg, n),
        ),
        resolved.crs,
    )


def parse_sizes(
    diameter: np.ndarray, section: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pipe sizes (mm) from 管径 and 断面 text: ``DN300``, ``Φ300``, ``300mm``, ``800×600``.

    A ``B×H`` value (in either column; ``x``, ``X``, ``*`` also separate) is a
    rectangular section B wide and H high; a single number is a diameter. Each distinct
    text is parsed once.

    Returns
    -------
    width, height : ndarray of float (NaN where nothing was readable)
    rectangular : ndarray of bool
    text : ndarray of str
        The size as written (the section when given, else the diameter).
    """
    text = np.where(section != "", section, diameter).astype(object)
    uniq, inverse = np.unique(text.astype(str), return_inverse=True)
    parsed = np.array([_parse_size(u) for u in uniq], dtype=np.float64).reshape(-1, 3)
    w, h, rect = parsed[inverse, 0], parsed[inverse, 1], parsed[inverse, 2] > 0
    return w, h, rect, text


def _parse_size(text: str) -> tuple[float, float, float]:
    m = _SECTION.search(text)
    if m:
        return float(m.group(1)), float(m.group(2)), 1.0
    m = _NUMBER.search(text)
    if m:
        value = float(m.group(1))
        value = (
            value * 1000.0
            if value < 5.0 and "m" in text.lower() and "mm" not in text.lower()
            else value
        )
        return value, value, 0.0
    return np.nan, np.nan, 0.0


def _segments(table: FeatureTable, cfg: PipelinesConfig, issues: list[Issue]) -> Segments:
    n = len(table)
    ids = _ids(_column(table, "segment_id", cfg), n, table.path, issues)
    start_col, end_col = _column(table, "start", cfg), _column(table, "end", cfg)
    if start_col is None or end_col is None:
        raise InputDataError(
            "no start/end point id columns (起点点号/终点点号): set [pipelines.fields] start "
            f"and end (columns: {sorted(table.columns)})",
            path=table.path,
        )
    diameter = to_text(_column(table, "diameter", cfg), n)
    section = to_text(_column(table, "section", cfg), n)
    width, height, rect, size_text = parse_sizes(diameter, section)
    utility = _utilities(table, cfg, n)
    return Segments(
        ids=ids,
        start=to_text(start_col, n),
        end=to_text(end_col, n),
        start_depth=to_float(_column(table, "start_depth", cfg), n),
        end_depth=to_float(_column(table, "end_depth", cfg), n),
        start_elev=to_float(_column(table, "start_elev", cfg), n),
        end_elev=to_float(_column(table, "end_elev", cfg), n),
        width=width,
        height=height,
        rectangular=rect,
        section=size_text,
        utility=utility,
        text={k: to_text(_column(table, k, cfg), n) for k in TEXT_FIELDS},
        flow=to_text(_column(table, "flow", cfg), n),
    )


def _read_lines(cfg: PipelinesConfig, project_crs: str | None, issues: list[Issue]) -> Survey:
    """Lines with Z: one segment per pair of vertices, points where vertices meet."""
    coords_all, owner_all, segs = [], [], []
    crs = project_crs or ""
    for path in cfg.lines:
        table = read_features(path, layer=cfg.lines_layer, encoding=cfg.encoding)
        n = len(table)
        geoms = table.geometry
        ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
        kinds = np.zeros(n, dtype=np.int64)
        kinds[ok] = shapely.get_type_id(geoms[ok])
        parts, owner = shapely.get_parts(geoms[ok & np.isin(kinds, (1, 5))], return_index=True)
        owner = np.flatnonzero(ok & np.isin(kinds, (1, 5)))[owner]
        lines_ids = _ids(_column(table, "segment_id", cfg), n, table.path, issues)
        for i in np.flatnonzero(~ok | ~np.isin(kinds, (1, 5))).tolist():
            issues.append((lines_ids[i], "not-a-line", "no line geometry", False))
        no_z = ~shapely.has_z(parts)
        for i in np.unique(owner[no_z]).tolist():
            issues.append(
                (lines_ids[i], "missing-depth", "line without Z: no pipe elevation", False)
            )
        parts, owner = parts[~no_z], owner[~no_z]
        xyz, index = shapely.get_coordinates(parts, include_z=True, return_index=True)
        resolved = resolve_crs(
            table.crs,
            cfg.crs,
            xyz[:, 0],
            xyz[:, 1],
            what="pipelines",
            path=path,
            default=project_crs,
            implied=table.implied_crs,
            items="line vertices",
        )
        crs = resolved.crs
        lon, lat = resolved.to_lonlat(xyz[:, 0], xyz[:, 1])
        coords_all.append(np.column_stack([lon, lat, xyz[:, 2]]))
        base = sum(len(c) for c in coords_all[:-1])
        first = np.r_[True, index[1:] != index[:-1]]
        k = np.flatnonzero(~first)  # each vertex after the first ends a segment
        part_of = owner[index[k]]
        n_seg = len(k)
        diameter = to_text(_column(table, "diameter", cfg), n)[part_of]
        section = to_text(_column(table, "section", cfg), n)[part_of]
        width, height, rect, size_text = parse_sizes(diameter, section)
        seq = k - np.searchsorted(index, index[k])  # vertex number within its part
        segs.append(
            Segments(
                ids=np.array(
                    [
                        f"{lines_ids[o]}#{s}"
                        for o, s in zip(part_of.tolist(), seq.tolist(), strict=True)
                    ],
                    dtype=object,
                ),
                start=(base + k - 1).astype(object),
                end=(base + k).astype(object),
                start_depth=np.full(n_seg, np.nan),
                end_depth=np.full(n_seg, np.nan),
                start_elev=xyz[k - 1, 2],
                end_elev=xyz[k, 2],
                width=width,
                height=height,
                rectangular=rect,
                section=size_text,
                utility=_utilities(table, cfg, n)[part_of],
                text={f: to_text(_column(table, f, cfg), n)[part_of] for f in TEXT_FIELDS},
                flow=to_text(_column(table, "flow", cfg), n)[part_of],
            )
        )
        owner_all.append(_utilities(table, cfg, n)[owner[index]])
    coords = np.concatenate(coords_all)
    segments = _concat(Segments, segs)
    # vertices within 1 cm are one point: lines meeting there are connected
    key = np.round(coords[:, :2] * np.array([1e7, 1e7])).astype(np.int64)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    point_ids = np.array([f"P{i + 1}" for i in range(len(first))], dtype=object)
    segments.start = point_ids[inverse[segments.start.astype(np.int64)]]
    segments.end = point_ids[inverse[segments.end.astype(np.int64)]]
    nan = np.full(len(first), np.nan)
    points = Points(
        ids=point_ids,
        lon=coords[first, 0],
        lat=coords[first, 1],
        ground=nan.copy(),
        depth=nan.copy(),
        well_depth=nan.copy(),
        well_size=nan.copy(),
        feature=np.full(len(first), "", dtype=object),
        utility=np.concatenate(owner_all)[first],
    )
    return Survey(points, segments, crs, issues, 0, len(segments))


def _fill_ground(survey: Survey, ground_at: Any) -> None:
    """Ground elevations from the DEM where the survey has none (reported)."""
    pts = survey.points
    missing = np.flatnonzero(~np.isfinite(pts.ground) & np.isfinite(pts.lon))
    if not len(missing) or ground_at is None:
        return
    values = np.asarray(ground_at(pts.lon[missing], pts.lat[missing]), dtype=np.float64)
    got = np.isfinite(values)
    pts.ground[missing[got]] = values[got]
    if not cfg_lines(survey):
        survey.issues += [
            (pts.ids[i], "ground-from-dem", f"no ground elevation: {v:.2f} m from the DEM", True)
            for i, v in zip(missing[got].tolist(), values[got].tolist(), strict=True)
        ]


def cfg_lines(survey: Survey) -> bool:
    """Whether the survey came from lines (points made from vertices, no ground given)."""
    return survey.read_points == 0


def as_arrow_text(values: np.ndarray) -> pa.Array:
    """A text column for Arrow/SQLite writers."""
    return pa.array(["" if v is None else str(v) for v in values.tolist()], pa.string())
