"""Readers for vector inputs: GeoJSON, Shapefile, GeoPackage, FlatGeobuf, GeoParquet, CSV.

All readers return a :class:`FeatureTable`: a shapely geometry array in the file's
CRS, the attribute columns as numpy arrays, and the CRS the file declares (or None).
GDAL formats go through pyogrio's Arrow interface; GeoParquet and CSV through pyarrow.

Shapefiles honour their ``.cpg``; without one, and for CSV without a declared
``encoding``, the text encoding (UTF-8, GBK/GB18030, Latin-1/CP1252) is detected by
one rule (:mod:`cim.encoding`); any text column that still comes back as bytes is
decoded.

One per-feature error policy: a geometry that GEOS cannot parse (an unclosed ring, a
two-point ring) is repaired when it can be and dropped otherwise, and the reader lists
it in :attr:`FeatureTable.issues` with its row and reason; it never costs the file.
:func:`apply_per_feature` runs a vectorised shapely/PROJ call and, when it raises,
repeats only the failing chunk feature by feature.
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pyogrio
import shapely
from pyproj.exceptions import ProjError

from cim.encoding import (
    check_codec,
    check_text_encoding,
    detect_shapefile_encoding,
    detect_text_encoding,
)
from cim.errors import DatasetIOError, InputDataError
from cim.model import WkbColumn

log = logging.getLogger(__name__)

GDAL_SUFFIXES = {".geojson", ".json", ".shp", ".gpkg", ".fgb", ".geojsonl", ".geojsons"}
PARQUET_SUFFIXES = {".parquet", ".geoparquet"}
CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
WKT_NAMES = ("wkt", "geometry", "geom", "the_geom", "shape")
XY_NAMES = (("lon", "lat"), ("longitude", "latitude"), ("lng", "lat"), ("x", "y"))
#: GeoJSON flavours: RFC 7946 says WGS84 lon/lat when the file names no ``crs``.
GEOJSON_SUFFIXES = {".geojson", ".json", ".geojsonl", ".geojsons"}
_GEOJSON_CRS = re.compile(rb'"crs"\s*:\s*\{')
#: Features per chunk for :func:`apply_per_feature` (a failing chunk is looped).
CHUNK = 65_536
#: What GEOS, PROJ and numpy raise for one bad feature inside a vectorised call.
FEATURE_ERRORS = (shapely.errors.GEOSException, ProjError, ValueError, TypeError)


@dataclass(frozen=True)
class FeatureIssue:
    """A feature the reader had to repair or could not read.

    Attributes
    ----------
    row : int
        Row in the file (0-based).
    reason : str
        Reason code for the build report (``invalid-geometry``, ``bad-coordinates``).
    detail : str
        What GEOS / the decoder said.
    repaired : bool
        True: the feature was kept (repaired); False: its geometry is None.
    """

    row: int
    reason: str
    detail: str
    repaired: bool


@dataclass(frozen=True)
class BadRow:
    """A CSV row the parser could not split into the header's columns (skipped).

    Attributes
    ----------
    line : int or None
        Line in the file (1-based, the header is line 1).
    cells : dict of str to str
        The row's cells under the header's names, as far as they go (for its id).
    detail : str
        Why it was skipped, e.g. ``5 cells, the header has 3``.
    """

    line: int | None
    cells: dict[str, str]
    detail: str


@dataclass
class FeatureTable:
    """Features read from one file.

    Attributes
    ----------
    path : Path
    geometry : ndarray of shapely geometries (None for missing ones), file CRS
    columns : mapping of str to ndarray
        Attribute columns (object arrays for text, numeric arrays otherwise); an
        :class:`AttributeColumns` when read through Arrow.
    crs : str or None
        The CRS the file itself carries, as WKT/PROJJSON/authority string, or None.
        A GeoJSON without a ``crs`` member carries none (GDAL would say EPSG:4326).
    encoding : str or None
        The text encoding used to read it, when one was chosen.
    implied_crs : str or None
        The format's default when the file carries no CRS (RFC 7946 WGS84 for
        GeoJSON, OGC:CRS84 for GeoParquet): used only when city.toml declares none.
    issues : list of FeatureIssue
        Features repaired or dropped while reading.
    bad_rows : list of BadRow
        CSV rows that are not in the table at all (wrong number of cells).
    source_wkb : ndarray of bytes, WkbColumn or None
        The geometry column as stored, when the source stores WKB (GeoParquet, GDAL
        formats, PostGIS): what a row's fingerprint is taken of (a consumer may
        release it, setting None, once it has what it needs). GeoParquet's and the GDAL
        formats' stays Arrow binary (a :class:`~cim.model.WkbColumn`: no Python
        ``bytes`` per row; PostGIS's is an object array); ``np.asarray`` gives the
        values of either.
    parsed : bool
        False when read with ``parse_geometry=False``: ``geometry`` holds None until
        :meth:`parse` reads the rows a consumer needs from ``source_wkb`` (a read-only
        view of Nones until then, :func:`unparsed`).
    """

    path: Path
    geometry: np.ndarray
    columns: Mapping[str, np.ndarray]
    crs: str | None
    encoding: str | None = None
    implied_crs: str | None = None
    issues: list[FeatureIssue] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)
    source_wkb: np.ndarray | WkbColumn | None = None
    parsed: bool = True

    def __len__(self) -> int:
        return len(self.geometry)

    def arrow_text(self, name: str | None) -> pa.ChunkedArray | None:
        """Column ``name`` (found as :meth:`column` finds it) as Arrow text when the
        reader read it as such, else None."""
        if name is None or not isinstance(self.columns, AttributeColumns):
            return None
        if name not in self.columns:
            name = {k.lower(): k for k in self.columns}.get(name.lower())
        return self.columns.arrow_text(name) if name else None

    def trimmed_text(self, name: str | None) -> pa.Array | None:
        """Column ``name`` as :func:`trimmed_text` gives it, when the reader read it as
        Arrow text (:meth:`arrow_text`), else None.

        The table keeps the trimmed column in place of the one read: both read the
        same through :meth:`column` (trimmed, "" where null), and a caller holding the
        trimmed one does not keep a second copy of the column alive beside the
        table's (the footprints' id, name, use and roof type: 0.3 GB at ten million).
        """
        arrow = self.arrow_text(name)
        if arrow is None:
            return None
        trimmed = trimmed_text(arrow)
        assert isinstance(self.columns, AttributeColumns)  # arrow_text found it there
        self.columns.replace_text(arrow, trimmed)
        return trimmed

    def parse(self, rows: np.ndarray) -> None:
        """Read the geometries of ``rows`` (sorted) from ``source_wkb``, as the reader
        does (:func:`geometry_from_wkb`); their issues join :attr:`issues`."""
        if self.source_wkb is None:
            raise ValueError("no stored WKB to parse")
        if not self.geometry.flags.writeable:  # rows not parsed yet (:func:`unparsed`)
            self.geometry = np.full(len(self.geometry), None, dtype=object)
        # only these rows become Python bytes (the column may be Arrow: WkbColumn)
        geoms, issues = geometry_from_wkb(np.asarray(self.stored_rows(rows)))
        self.geometry[rows] = geoms
        self.issues.extend(
            FeatureIssue(int(rows[i.row]), i.reason, i.detail, i.repaired) for i in issues
        )
        self.issues.sort(key=lambda i: i.row)  # row order, as one parse gives them

    def stored_rows(self, rows: np.ndarray) -> np.ndarray | WkbColumn:
        """``source_wkb`` of ``rows`` (sorted, distinct): the column itself when they are
        all of its rows (an Arrow column is not gathered again)."""
        if self.source_wkb is None:
            raise ValueError("no stored WKB")
        return self.source_wkb if len(rows) == len(self.source_wkb) else self.source_wkb[rows]

    def column(self, name: str | None) -> np.ndarray | None:
        """Column ``name`` (case-insensitive fallback), None when absent or not asked."""
        key = self._key(name)
        return self.columns[key] if key else None

    def release(self, *names: str | None) -> None:
        """Let go of columns ``names`` (found as :meth:`column` finds them), for a
        consumer that has read all it needs of them: their memory goes with the last
        other reference, and :meth:`column` finds them no more."""
        for name in names:
            key = self._key(name)
            if key is None:
                continue
            if isinstance(self.columns, AttributeColumns):
                self.columns.release(key)
            elif isinstance(self.columns, dict):
                del self.columns[key]

    def _key(self, name: str | None) -> str | None:
        """The name of column ``name`` in :attr:`columns` (case-insensitive fallback)."""
        if name is None:
            return None
        if name in self.columns:
            return name
        return {k.lower(): k for k in self.columns}.get(name.lower())


def read_features(
    path: str | Path | DatabaseSource,
    *,
    layer: str | None = None,
    encoding: str | None = None,
    wkt: str | None = None,
    x: str | None = None,
    y: str | None = None,
    parse_geometry: bool = True,
) -> FeatureTable:
    """Read a vector file into a :class:`FeatureTable`.

    Parameters
    ----------
    path : str or Path
        The file. Format from the suffix.
    layer : str, optional
        Layer name for multi-layer formats (GeoPackage).
    encoding : str, optional
        Text encoding; for shapefiles it overrides the ``.cpg`` and detection.
    wkt, x, y : str, optional
        CSV geometry columns (a WKT column, or x/y point columns). Detected from
        common names when not given.
    parse_geometry : bool
        False: a source that stores WKB is not parsed; the caller parses the rows it
        needs (:meth:`FeatureTable.parse`). Other sources are parsed anyway.

    Raises
    ------
    DatasetIOError
        Missing or unreadable file, unknown format.
    InputDataError
        The file is empty (0 bytes, a header only, no features).
    """
    if isinstance(path, DatabaseSource):
        return read_postgis(path, parse_geometry=parse_geometry)
    path = Path(path)
    if not path.exists():
        raise DatasetIOError("file not found", path=path)
    if path.is_file() and path.stat().st_size == 0:
        raise InputDataError("empty file (0 bytes)", path=path)
    if path.is_file() and _blank(path):
        raise InputDataError("empty file (only blanks and line breaks)", path=path)
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        table = _read_geoparquet(path, parse_geometry)
    elif suffix in CSV_SUFFIXES:
        table = _read_csv(path, encoding=encoding, wkt=wkt, x=x, y=y)
    elif suffix in GDAL_SUFFIXES or path.is_dir():
        table = _read_gdal(path, layer=layer, encoding=encoding, parse_geometry=parse_geometry)
    else:
        raise DatasetIOError(
            f"unknown vector format {suffix!r} (use GeoJSON, Shapefile, GeoPackage, "
            "FlatGeobuf, GeoParquet or CSV)",
            path=path,
        )
    if len(table) == 0:
        raise InputDataError("empty file: no features", path=path)
    log.info("read %d features from %s", len(table), path)
    return table


def _read_gdal(
    path: Path, *, layer: str | None, encoding: str | None, parse_geometry: bool = True
) -> FeatureTable:
    if encoding is None and path.suffix.lower() == ".shp":
        encoding = detect_shapefile_encoding(path)
    if encoding is not None:
        check_codec(encoding, path)
    try:
        with warnings.catch_warnings():
            # GDAL warns once per unclosed ring; the rings are reported per feature
            warnings.simplefilter("ignore", RuntimeWarning)
            meta, table = pyogrio.read_arrow(path, layer=layer, encoding=encoding)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise DatasetIOError(f"cannot read ({_one_line(exc)})", path=path) from exc
    except UnicodeDecodeError as exc:
        raise DatasetIOError(
            f"text is not in encoding {encoding or 'UTF-8'} ({exc.reason} at byte "
            f"{exc.start}); set 'encoding' in city.toml",
            path=path,
        ) from exc
    if table.num_rows == 0:
        raise InputDataError("empty file: no features", path=path)
    geom_name = meta.get("geometry_name") or "wkb_geometry"
    if geom_name not in table.column_names:
        raise InputDataError("the layer has no geometry column", path=path)
    wkb = _arrow_wkb(table.column(geom_name))  # no Python bytes per row
    geometry, issues = _stored_geometry(wkb, parse_geometry)
    columns = _arrow_columns(table, exclude={geom_name}, encoding=encoding, path=path)
    crs, implied = meta.get("crs"), None
    if path.suffix.lower() in GEOJSON_SUFFIXES and not _geojson_has_crs(path):
        # GDAL reports EPSG:4326 for every GeoJSON: only a crs member is the file's own
        crs, implied = None, "EPSG:4326"
    return FeatureTable(
        path, geometry, columns, crs, encoding, implied, issues, [], wkb, parse_geometry
    )


def _blank(path: Path, block: int = 1 << 16) -> bool:
    """Whether a file holds nothing but whitespace (a UTF-8 BOM aside)."""
    with open(path, "rb") as fh:
        chunk = fh.read(block).removeprefix(codecs.BOM_UTF8)
        while chunk:
            if not chunk.isspace():
                return False
            chunk = fh.read(block)
    return True


def _geojson_has_crs(path: Path, head: int = 1 << 20) -> bool:
    """Whether a GeoJSON file has a (pre-RFC 7946) ``crs`` member.

    Writers put it before ``features``; the first MiB and the last 64 KiB are read.
    """
    with open(path, "rb") as fh:
        start = fh.read(head)
        if _GEOJSON_CRS.search(start):
            return True
        size = path.stat().st_size
        if size <= head:
            return False
        fh.seek(max(size - 65_536, head))
        return bool(_GEOJSON_CRS.search(fh.read()))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def geometry_from_wkb(values: np.ndarray) -> tuple[np.ndarray, list[FeatureIssue]]:
    """Shapely geometries from WKB, one bad feature never failing the array.

    Geometries GEOS refuses (an unclosed ring, a ring of fewer than 4 points) are
    repaired with shapely's ``on_invalid="fix"`` when that gives a geometry, and are
    None otherwise; both are listed as issues (reason ``invalid-geometry``).
    """
    return _parse_geometry(values, shapely.from_wkb)


def _stored_geometry(
    wkb: np.ndarray | WkbColumn, parse: bool
) -> tuple[np.ndarray, list[FeatureIssue]]:
    """:func:`geometry_from_wkb`, or Nones for a caller that parses later (an Arrow
    column then makes no Python ``bytes`` at all)."""
    if parse:
        return geometry_from_wkb(np.asarray(wkb))  # the bytes are released once parsed
    return unparsed(len(wkb)), []


def unparsed(n: int) -> np.ndarray:
    """``n`` rows without a geometry yet: None each, as a read-only view that holds no
    memory per row (ten million rows: 80 MB as an array of their own).

    A consumer writing to it makes an array of its own first
    (:meth:`FeatureTable.parse`); a selection of it is another such view
    (:func:`take_rows`).
    """
    return np.broadcast_to(np.array(None, dtype=object), (n,))


def take_rows(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``values[rows]``; of an :func:`unparsed` view (one value in every row: a
    stride of 0), another such view, not an array of ``len(rows)`` Nones."""
    if values.ndim == 1 and values.strides == (0,) and len(values):
        return np.broadcast_to(values[:1], (len(rows),))
    return values[rows]


def _arrow_wkb(column: pa.ChunkedArray) -> np.ndarray | WkbColumn:
    """A WKB geometry column as read: kept Arrow binary (:class:`~cim.model.WkbColumn`)
    instead of a Python ``bytes`` object per row (ten million of them cost gigabytes
    beside the column itself). Large binary becomes binary (a row group's values fit
    32-bit offsets); another type, or one that does not fit, as an object array."""
    if isinstance(column.type, pa.ExtensionType):  # e.g. geoarrow.wkb: its storage
        column = pa.chunked_array([c.storage for c in column.chunks], column.type.storage_type)
    if pa.types.is_large_binary(column.type):
        try:
            column = column.cast(pa.binary())
        except (pa.ArrowInvalid, pa.ArrowCapacityError):  # a chunk of 2 GiB or more
            return column.to_numpy(zero_copy_only=False)
    if not pa.types.is_binary(column.type):
        return column.to_numpy(zero_copy_only=False)
    return WkbColumn(column)


def geometry_from_wkt(values: np.ndarray) -> tuple[np.ndarray, list[FeatureIssue]]:
    """Shapely geometries from WKT text, like :func:`geometry_from_wkb`."""
    text = np.array([v if isinstance(v, str) and v.strip() else None for v in values], dtype=object)
    return _parse_geometry(text, shapely.from_wkt)


def _parse_geometry(
    values: np.ndarray, parse: Callable[..., Any]
) -> tuple[np.ndarray, list[FeatureIssue]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        geoms = np.asarray(parse(values, on_invalid="ignore"), dtype=object)
    given = np.array([v is not None for v in values], dtype=bool)
    issues: list[FeatureIssue] = []
    for i in np.flatnonzero(given & shapely.is_missing(geoms)):
        try:
            parse(values[i], on_invalid="raise")
            detail = "unreadable geometry"
        except (shapely.errors.GEOSException, ValueError, TypeError) as exc:
            detail = _one_line(exc).removeprefix("IllegalArgumentException: ")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                fixed = parse(values[i], on_invalid="fix")
            except (shapely.errors.GEOSException, ValueError, TypeError):
                fixed = None
        if fixed is not None and not fixed.is_empty:
            geoms[i] = fixed
            issues.append(FeatureIssue(int(i), "invalid-geometry", detail, True))
        else:
            issues.append(FeatureIssue(int(i), "invalid-geometry", detail, False))
    return geoms, issues


def apply_per_feature(
    fn: Callable[..., np.ndarray], geoms: np.ndarray, *args: Any, fill: Any = None, **kwargs: Any
) -> tuple[np.ndarray, dict[int, str]]:
    """Run a vectorised shapely call so that one bad feature costs only itself.

    Each chunk of :data:`CHUNK` features is done in one call; a chunk that raises is
    redone feature by feature.

    Parameters
    ----------
    fn : callable
        A shapely (or PROJ) function taking a geometry array first.
    geoms : ndarray of geometries
    *args, **kwargs
        Passed to ``fn``.
    fill : object
        Result for a feature whose call raised.

    Returns
    -------
    result : ndarray
        ``fn``'s result per feature (``fill`` where it raised).
    errors : dict of int to str
        Index → one-line error message of the features that raised.
    """
    parts: list[np.ndarray] = []
    errors: dict[int, str] = {}
    for start in range(0, len(geoms), CHUNK):
        chunk = geoms[start : start + CHUNK]
        try:
            parts.append(np.asarray(fn(chunk, *args, **kwargs)))
            continue
        except FEATURE_ERRORS:
            pass
        out = []
        for k, g in enumerate(chunk):
            try:
                out.append(fn(g, *args, **kwargs))
            except FEATURE_ERRORS as exc:
                errors[start + k] = _one_line(exc)
                out.append(fill)
        parts.append(np.asarray(out, dtype=object if fill is None else None))
    if not parts:
        return np.asarray(fn(geoms, *args, **kwargs)), errors
    result = np.concatenate(parts) if len(parts) > 1 else parts[0]
    return result, errors


def _read_geoparquet(path: Path, parse_geometry: bool = True) -> FeatureTable:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DatasetIOError(f"cannot read GeoParquet ({exc})", path=path) from exc
    geo = json.loads((table.schema.metadata or {}).get(b"geo", b"{}") or b"{}")
    geom_name = geo.get("primary_column", "geometry")
    if geom_name not in table.column_names:
        raise InputDataError(f"no geometry column {geom_name!r}", path=path)
    col_meta = geo.get("columns", {}).get(geom_name, {})
    if col_meta.get("encoding", "WKB").upper() != "WKB":
        raise InputDataError(
            f"GeoParquet geometry encoding {col_meta.get('encoding')!r} is not supported "
            "(write WKB)",
            path=path,
        )
    if table.num_rows == 0:
        raise InputDataError("empty file: no features", path=path)
    # GeoParquet: no "crs" key means OGC:CRS84 (the format's default), null unknown
    crs = col_meta.get("crs")
    implied = "OGC:CRS84" if geo and "crs" not in col_meta else None
    if isinstance(crs, dict):
        crs = json.dumps(crs)
    wkb = _arrow_wkb(table.column(geom_name))
    geometry, issues = _stored_geometry(wkb, parse_geometry)
    columns = _arrow_columns(table, exclude={geom_name}, encoding=None, path=path)
    return FeatureTable(
        path, geometry, columns, crs, None, implied, issues, [], wkb, parse_geometry
    )


def _read_csv(
    path: Path, *, encoding: str | None, wkt: str | None, x: str | None, y: str | None
) -> FeatureTable:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    encoding = check_text_encoding(path, encoding) if encoding else detect_text_encoding(path)
    table, invalid = _parse_csv(path, encoding, delimiter)
    bad_rows = [_bad_row(r, table.column_names, delimiter) for r in invalid]
    if table.num_rows == 0 and bad_rows:
        raise InputDataError(
            f"no usable row: all {len(bad_rows)} rows have another number of cells than "
            f"the header (line {bad_rows[0].line}: {bad_rows[0].detail})",
            path=path,
        )
    if table.num_rows == 0:
        raise InputDataError("empty file: a header and no rows", path=path)
    for row in bad_rows:
        log.warning("%s: line %s skipped: %s", path, row.line, row.detail)
    names = {n.lower(): n for n in table.column_names}
    if wkt is None and x is None:
        wkt = next((names[n] for n in WKT_NAMES if n in names), None)
        if wkt is None:
            pair = next((p for p in XY_NAMES if p[0] in names and p[1] in names), None)
            if pair is None:
                raise InputDataError(
                    "CSV has no geometry: name a WKT column (wkt = ...) or x/y columns",
                    path=path,
                )
            x, y = names[pair[0]], names[pair[1]]
    issues: list[FeatureIssue] = []
    if wkt is not None:
        if wkt not in table.column_names:
            raise InputDataError(f"CSV has no column {wkt!r}", path=path)
        text = _decode_column(table.column(wkt), encoding)
        geometry, issues = geometry_from_wkt(text)
        exclude = {wkt}
    else:
        assert x is not None and y is not None
        for col in (x, y):
            if col not in table.column_names:
                raise InputDataError(f"CSV has no column {col!r}", path=path)
        xs = _to_float(table.column(x).to_numpy(zero_copy_only=False))
        ys = _to_float(table.column(y).to_numpy(zero_copy_only=False))
        geometry = shapely.points(xs, ys)
        geometry[~(np.isfinite(xs) & np.isfinite(ys))] = None
        exclude = {x, y}
    columns = _arrow_columns(table, exclude=exclude, encoding=encoding, path=path)
    return FeatureTable(path, geometry, columns, None, encoding, None, issues, bad_rows)


def _parse_csv(path: Path, encoding: str, delimiter: str) -> tuple[pa.Table, list[Any]]:
    """The CSV table and the rows skipped for a wrong number of cells.

    Arrow numbers skipped rows only when it parses on one thread: a file with such
    rows is parsed again that way, so each is reported with its line.
    """
    for threads in (True, False):
        invalid: list[Any] = []

        def skip(row: Any, invalid: list[Any] = invalid) -> str:
            invalid.append(row)
            return "skip"

        try:
            table = pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(
                    encoding=_arrow_codec(encoding), use_threads=threads
                ),
                parse_options=pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=skip),
            )
        except (pa.ArrowInvalid, OSError) as exc:
            if "Empty CSV" in str(exc):
                raise InputDataError("empty file: no header and no rows", path=path) from exc
            raise DatasetIOError(f"cannot read CSV ({_one_line(exc)})", path=path) from exc
        if all(r.number is not None for r in invalid):
            break
    return table, invalid


def _bad_row(row: Any, header: list[str], delimiter: str) -> BadRow:
    """A skipped Arrow ``InvalidRow`` as a :class:`BadRow` (cells named by the header)."""
    try:
        cells = next(csv.reader([row.text], delimiter=delimiter), [])
    except csv.Error:
        cells = []
    detail = f"{row.actual_columns} cells, the header has {row.expected_columns}"
    return BadRow(row.number, dict(zip(header, cells, strict=False)), detail)


def _arrow_codec(encoding: str) -> str:
    # Arrow reads UTF-8 natively (and skips a BOM); other codecs go through Python
    return "utf8" if encoding.lower().replace("-", "") in ("utf8", "utf8sig") else encoding


def _decode_column(col: pa.ChunkedArray, encoding: str | None) -> np.ndarray:
    """Object array of str from a text or binary Arrow column (None stays None)."""
    values = col.to_numpy(zero_copy_only=False)
    if not (pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type)):
        return values.astype(object)
    return np.array([_decode_bytes(v, encoding) for v in values], dtype=object)


def _decode_bytes(value: bytes | None, encoding: str | None) -> str | None:
    if value is None:
        return None
    for enc in (encoding, "utf-8", "gb18030"):
        if enc is None:
            continue
        try:
            return value.decode(enc)
        except (UnicodeDecodeError, LookupError):
            continue
    return value.decode("utf-8", errors="replace")


class AttributeColumns(Mapping[str, np.ndarray]):
    """A file's attribute columns by name; text read through Arrow becomes Python
    ``str`` objects only when the column is first looked up.

    A build maps a few of a file's columns, and of those it may need only the Arrow
    text (:meth:`arrow_text`: the footprints' use, name and roof type go from the file
    to the partitions and tiles in Arrow): a million Python strings per column cost
    about a quarter of a second to make, and as much to turn back into Arrow.
    """

    def __init__(
        self,
        ready: dict[str, np.ndarray],
        text: dict[str, pa.ChunkedArray],
        names: list[str] | None = None,
    ) -> None:
        self._ready = ready
        self._text = text
        #: the columns in the file's order
        self._names = names if names is not None else [*ready, *text]

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._ready:
            if name not in self._text:
                raise KeyError(name)
            self._ready[name] = _text_objects(self._text[name])
        return self._ready[name]

    def __contains__(self, name: object) -> bool:
        # Mapping's own would look the column up, turning its text into objects
        return name in self._ready or name in self._text

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def arrow_text(self, name: str) -> pa.ChunkedArray | None:
        """Column ``name`` as read (Arrow string, nulls kept, unless
        :meth:`replace_text` replaced it) when it is text the reader had in Arrow;
        else None (ask ``self[name]``)."""
        return self._text.get(name)

    def release(self, name: str) -> None:
        """Drop column ``name`` (:meth:`FeatureTable.release`)."""
        self._ready.pop(name, None)
        self._text.pop(name, None)
        self._names = [k for k in self._names if k != name]

    def replace_text(self, column: pa.ChunkedArray, trimmed: pa.Array) -> None:
        """Hold ``trimmed`` (:func:`trimmed_text` of ``column``, which reads the same
        through ``self[name]``) in place of the Arrow text ``column``."""
        for name, held in self._text.items():
            if held is column:
                self._text[name] = pa.chunked_array([trimmed])


def _arrow_columns(
    table: pa.Table, exclude: set[str], *, encoding: str | None, path: Path
) -> AttributeColumns:
    """Attribute columns: float64, int64 (integers without nulls) or object (text,
    converted when first looked up: :class:`AttributeColumns`)."""
    out: dict[str, np.ndarray] = {}
    text: dict[str, pa.ChunkedArray] = {}
    for name in table.column_names:
        if name in exclude:
            continue
        col = table.column(name)
        if pa.types.is_integer(col.type) and col.null_count == 0:
            out[name] = col.to_numpy(zero_copy_only=False).astype(np.int64)
        elif pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            out[name] = col.to_numpy(zero_copy_only=False).astype(np.float64)
        elif pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
            # text the reader could not decode: never store b'\xc6...' byte strings
            log.info("%s: column %s is bytes; decoding it as text", path, name)
            out[name] = _decode_column(col, encoding)
        elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            text[name] = col
        else:
            out[name] = col.to_numpy(zero_copy_only=False).astype(object)
    names = [name for name in table.column_names if name not in exclude]
    return AttributeColumns(out, text, names)


#: Rows of a text column looked at to guess whether it repeats its values
_SAMPLE = 4096


def _text_objects(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Object array of str (None where null) from an Arrow text column."""
    out = _through_distinct(col, lambda d: d.to_numpy(zero_copy_only=False), None)
    return col.to_numpy(zero_copy_only=False).astype(object, copy=False) if out is None else out


def _through_distinct(
    values: pa.Array | pa.ChunkedArray,
    convert: Callable[[pa.Array], np.ndarray],
    null: Any,
) -> np.ndarray | None:
    """Object array of ``convert`` applied to each distinct value of ``values`` once
    (``null`` where null), or None when a sample of the rows is mostly distinct.

    A city's use, roof type or name column holds a handful of values over a million
    rows: making one Python object per distinct value, not per row, is several times
    cheaper (the rows share them). The sample only picks the faster way; both give
    equal arrays.
    """
    sample = values.slice(0, _SAMPLE)
    if pc.count_distinct(sample, mode="all").as_py() * 2 > len(sample):
        return None
    out = np.empty(len(values), dtype=object)
    at = 0
    # chunk by chunk: one chunk's dictionary is all its indices refer to
    for chunk in values.chunks if isinstance(values, pa.ChunkedArray) else [values]:
        encoded = pc.dictionary_encode(chunk)  # nulls stay null in the indices
        distinct = np.empty(len(encoded.dictionary) + 1, dtype=object)
        distinct[:-1] = convert(encoded.dictionary)
        distinct[-1] = null
        out[at : at + len(chunk)] = distinct[
            encoded.indices.fill_null(len(encoded.dictionary)).to_numpy()
        ]
        at += len(chunk)
    return out


def _to_float(values: np.ndarray) -> np.ndarray:
    """Numbers from a column that may hold text ('12', '12.5m', '', None)."""
    if values.dtype.kind in "fiu":
        return values.astype(np.float64)
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        if v is None:
            continue
        try:
            out[i] = float(str(v).strip().rstrip("mM米").strip())
        except ValueError:
            continue
    return out


def to_float(values: np.ndarray | None, n: int) -> np.ndarray:
    """Numeric view of an attribute column; NaN where missing or not a number."""
    if values is None:
        return np.full(n, np.nan)
    return _to_float(values)


def to_text(values: np.ndarray | pa.Array | pa.ChunkedArray | None, n: int) -> np.ndarray:
    """Text view of an attribute column; '' where missing.

    ``values``: an object or numeric array, or Arrow text (:meth:`FeatureTable.arrow_text`),
    which is read without a detour through Python objects.
    """
    out = np.empty(n, dtype=object)
    if values is None:
        out[:] = ""
        return out
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return _arrow_text_objects(values)
    if values.dtype.kind in "iub":
        out[:] = values.astype(np.int64).astype(str).astype(object)
        return out
    if values.dtype.kind == "f":
        finite = np.isfinite(values)
        as_int = finite & (values == np.round(values))
        out[:] = ""
        out[as_int] = [str(int(v)) for v in values[as_int]]
        rest = finite & ~as_int
        out[rest] = [repr(float(v)) for v in values[rest]]
        return out
    try:  # fast path: text columns go through Arrow's C kernels
        arr = pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        out[:] = ["" if v is None else str(v).strip() for v in values]
        return out
    return _arrow_text_objects(arr)


def trimmed_text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Arrow text as :func:`to_text` reads it (whitespace trimmed, "" where null), in
    one chunk: the Arrow twin of its result."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return pc.utf8_trim_whitespace(pc.fill_null(values, ""))


def _arrow_text_objects(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Object array of the trimmed values of Arrow text, "" where null."""
    trimmed = _through_distinct(
        arr, lambda d: pc.utf8_trim_whitespace(d).to_numpy(zero_copy_only=False), ""
    )
    if trimmed is not None:
        return trimmed
    arr = pc.utf8_trim_whitespace(pc.fill_null(arr, ""))
    return arr.to_numpy(zero_copy_only=False).astype(object, copy=False)


# --- PostGIS ----------------------------------------------------------------------------

#: Rows fetched per round trip from a server-side cursor.
DB_FETCH = 20_000
_DB_SCHEMES = ("postgresql://", "postgres://")


def is_database_url(value: object) -> bool:
    """Whether a configured path is a PostgreSQL URL (``postgresql://...``)."""
    return isinstance(value, str | DatabaseSource) and str(value).startswith(_DB_SCHEMES)


@dataclass(frozen=True)
class DatabaseSource:
    """A PostGIS table or query given as ``[buildings] path``.

    ``postgresql://user@host:port/db?table=schema.table`` (or ``?query=SELECT ...``,
    URL-encoded; an optional ``geometry=column`` picks the geometry column). Stands in
    for a file path: ``name``/``stem`` name the table in messages and generated ids.
    """

    url: str
    table: str | None = None
    query: str | None = None
    geometry: str | None = None
    suffix: str = ""

    @classmethod
    def parse(cls, value: str, *, query: str | None = None) -> DatabaseSource:
        """Split the URL into the libpq part and the table/query/geometry options."""
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        parts = urlsplit(value)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        table = params.pop("table", None)
        query = params.pop("query", None) or query
        geometry = params.pop("geometry", None)
        url = urlunsplit(parts._replace(query=urlencode(params)))
        return cls(url, table, query, geometry)

    def problem(self) -> str | None:
        """What is wrong with the source's description, or None."""
        if bool(self.table) == bool(self.query):
            return (
                "a PostgreSQL path names one table (?table=schema.table) or one query "
                "(?query=... or [buildings] query)"
            )
        if self.table and not re.fullmatch(r"[A-Za-z_][\w$]*(\.[A-Za-z_][\w$]*)?", self.table):
            return f"table name {self.table!r} is not [schema.]table"
        return None

    @property
    def name(self) -> str:
        """The table (or ``query``) for messages."""
        return self.table or "query"

    @property
    def stem(self) -> str:
        """Prefix of generated ids."""
        return (self.table or "query").rsplit(".", 1)[-1]

    def exists(self) -> bool:
        """A database is not checked before it is read."""
        return True

    def is_file(self) -> bool:
        """Never a file."""
        return False

    def is_dir(self) -> bool:
        """Never a folder."""
        return False

    def __str__(self) -> str:
        return f"{_masked(self.url)} ({self.name})"

    def source_sql(self) -> str:
        """The FROM item: the table, or the query as a subquery."""
        if self.table:
            return ".".join(f'"{p}"' for p in self.table.split("."))
        return f"({self.query}) AS cim_source"

    def checksum(self) -> str:
        """A digest of every row (order-free), for the build's fingerprint."""
        import psycopg

        sql = (
            "SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h), '')) FROM "
            f"(SELECT md5(s::text) AS h FROM (SELECT * FROM {self.source_sql()}) s) d"
        )
        try:
            with psycopg.connect(self.url) as conn:
                n, digest = conn.execute(sql).fetchone()
        except psycopg.Error as exc:
            raise DatasetIOError(
                f"cannot read {self.name}: {_one_line(exc)}", path=str(self)
            ) from exc
        return f"{n}:{digest}"


def _masked(url: str) -> str:
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def read_postgis(
    source: DatabaseSource, *, partitions: int = 16, parse_geometry: bool = True
) -> FeatureTable:
    """Read a PostGIS table or query into a :class:`FeatureTable`.

    The source's extent is cut into a grid of about ``partitions`` cells; each cell is
    read with its own server-side cursor (``&&`` uses the spatial index; a feature
    belongs to the cell holding its bounding box's lower-left corner, so none is read
    twice), in batches of :data:`DB_FETCH` rows. Features without geometry come last,
    for the caller to report. The CRS is the column's SRID (0: none), resolved by the
    one CRS policy like a file's own CRS.

    Raises
    ------
    DatasetIOError
        The database, table or query cannot be read.
    InputDataError
        No geometry column, or no rows.
    """
    import psycopg

    where = str(source)
    try:
        with psycopg.connect(source.url) as conn:
            geom, names = _db_columns(conn, source)
            srid, extent = _db_srid_extent(conn, source, geom)
            crs = _db_crs(conn, srid)
            chunks = [
                _db_read(conn, source, geom, names, cell)
                for cell in [*_cells(extent, partitions), None]
            ]
    except psycopg.Error as exc:
        raise DatasetIOError(f"cannot read {source.name}: {_one_line(exc)}", path=where) from exc
    wkb = [w for c in chunks for w in c[0]]
    if not wkb:
        raise InputDataError("empty table: no features", path=where)
    values = np.empty(len(wkb), dtype=object)
    values[:] = wkb
    geometry, issues = _stored_geometry(values, parse_geometry)
    columns = {
        name: _db_column([v for c in chunks for v in c[1][k]]) for k, name in enumerate(names)
    }
    log.info("read %d features from %s (%d cells)", len(wkb), source, len(chunks))
    # the table stands in for the file path (name, stem) in messages and generated ids
    return FeatureTable(  # type: ignore[arg-type]
        source, geometry, columns, crs, None, None, issues, [], values, parse_geometry
    )


def _db_columns(conn: Any, source: DatabaseSource) -> tuple[str, list[str]]:
    cur = conn.execute(f"SELECT * FROM {source.source_sql()} LIMIT 0")
    oids = {d.name: d.type_code for d in cur.description}
    types = dict(
        conn.execute("SELECT oid, typname FROM pg_type WHERE oid = ANY(%s)", [list(oids.values())])
    )
    geoms = [n for n, o in oids.items() if types.get(o) == "geometry"]
    geom = source.geometry or (geoms[0] if geoms else None)
    if geom is None or geom not in oids:
        raise InputDataError(f"{source.name} has no geometry column", path=str(source))
    return geom, [n for n in oids if n not in geoms and n != geom]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _db_srid_extent(
    conn: Any, source: DatabaseSource, geom: str
) -> tuple[int, tuple[float, float, float, float] | None]:
    g = _q(geom)
    srid, xmin, ymin, xmax, ymax = conn.execute(
        f"SELECT max(ST_SRID({g})), min(ST_XMin({g})), min(ST_YMin({g})), "
        f"max(ST_XMax({g})), max(ST_YMax({g})) FROM {source.source_sql()} "
        f"WHERE {g} IS NOT NULL AND NOT ST_IsEmpty({g})"
    ).fetchone()
    extent = None if xmin is None else (xmin, ymin, xmax, ymax)
    return int(srid or 0), extent


def _db_crs(conn: Any, srid: int) -> str | None:
    if srid <= 0:
        return None
    row = conn.execute(
        "SELECT auth_name, auth_srid, srtext FROM spatial_ref_sys WHERE srid = %s", [srid]
    ).fetchone()
    if row is None:
        return f"EPSG:{srid}"
    auth, code, wkt = row
    return f"{auth}:{code}" if auth and code else wkt


def _cells(
    extent: tuple[float, float, float, float] | None, partitions: int
) -> list[tuple[float, float, float, float, bool, bool]]:
    """Grid cells (x0, y0, x1, y1, last column, last row) over the extent."""
    if extent is None:
        return []
    k = max(1, int(np.sqrt(partitions)))
    xs = np.linspace(extent[0], extent[2], k + 1)
    ys = np.linspace(extent[1], extent[3], k + 1)
    return [
        (float(xs[i]), float(ys[j]), float(xs[i + 1]), float(ys[j + 1]), i == k - 1, j == k - 1)
        for j in range(k)
        for i in range(k)
    ]


def _db_read(
    conn: Any,
    source: DatabaseSource,
    geom: str,
    names: list[str],
    cell: tuple[float, float, float, float, bool, bool] | None,
) -> tuple[list[bytes | None], list[list[Any]]]:
    g = _q(geom)
    cols = ", ".join(_q(n) for n in names)
    select = f"SELECT ST_AsBinary({g}){', ' + cols if cols else ''} FROM {source.source_sql()} "
    if cell is None:  # what no cell holds: no geometry, or an empty one
        sql, params = select + f"WHERE {g} IS NULL OR ST_IsEmpty({g})", []
    else:
        x0, y0, x1, y1, last_x, last_y = cell
        # the lower-left corner picks the cell (the last column/row keeps its far edge)
        xop, yop = ("<=" if last_x else "<"), ("<=" if last_y else "<")
        sql = select + (
            f"WHERE {g} && ST_MakeEnvelope(%s, %s, %s, %s, ST_SRID({g})) "
            f"AND ST_XMin({g}) >= %s AND ST_XMin({g}) {xop} %s "
            f"AND ST_YMin({g}) >= %s AND ST_YMin({g}) {yop} %s"
        )
        params = [x0, y0, x1, y1, x0, x1, y0, y1]
    wkb: list[bytes | None] = []
    out: list[list[Any]] = [[] for _ in names]
    with conn.cursor(name="cim_read") as cur:  # server-side: rows come in batches
        cur.itersize = DB_FETCH
        cur.execute(sql, params)
        while rows := cur.fetchmany(DB_FETCH):
            for row in rows:
                wkb.append(None if row[0] is None else bytes(row[0]))
                for k in range(len(names)):
                    out[k].append(row[k + 1])
    conn.commit()  # a named cursor lives in a transaction: end it per cell
    return wkb, out


def _db_column(values: list[Any]) -> np.ndarray:
    """float64 / int64 for numbers (int64 only without nulls), object text otherwise."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        if len(present) == len(values):
            return np.array(values, dtype=np.int64)
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    if present and all(
        isinstance(v, int | float) or type(v).__name__ == "Decimal" for v in present
    ):
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    out = np.empty(len(values), dtype=object)
    out[:] = [None if v is None else str(v) for v in values]
    return out
