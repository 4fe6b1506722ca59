"""Readers for vector inputs: GeoJSON, Shapefile, GeoPackage, FlatGeobuf, GeoParquet, CSV.

All readers return a :class:`FeatureTable`: a shapely geometry array in the file's
CRS, the attribute columns as numpy arrays, and the CRS the file declares (or None).
GDAL formats go through pyogrio's Arrow interface; GeoParquet and CSV through pyarrow.

Shapefiles honour their ``.cpg``; without one, GBK/GB18030 text is detected from the
``.dbf`` language driver byte or by trying to decode it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pyogrio
import shapely

from cim.errors import DatasetIOError, InputDataError

log = logging.getLogger(__name__)

GDAL_SUFFIXES = {".geojson", ".json", ".shp", ".gpkg", ".fgb", ".geojsonl", ".geojsons"}
PARQUET_SUFFIXES = {".parquet", ".geoparquet"}
CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
WKT_NAMES = ("wkt", "geometry", "geom", "the_geom", "shape")
XY_NAMES = (("lon", "lat"), ("longitude", "latitude"), ("lng", "lat"), ("x", "y"))
# dBase language driver ids of Chinese code pages (GBK / CP936 and Big5 / CP950)
_DBF_LDID = {0x4D: "GB18030", 0x7A: "GB18030", 0x78: "CP950", 0x4E: "CP950"}


@dataclass
class FeatureTable:
    """Features read from one file.

    Attributes
    ----------
    path : Path
    geometry : ndarray of shapely geometries (None for missing ones), file CRS
    columns : dict of str to ndarray
        Attribute columns (object arrays for text, numeric arrays otherwise).
    crs : str or None
        The CRS the file declares, as WKT/PROJJSON/authority string, or None.
    encoding : str or None
        The text encoding used to read it, when one was chosen.
    """

    path: Path
    geometry: np.ndarray
    columns: dict[str, np.ndarray]
    crs: str | None
    encoding: str | None = None

    def __len__(self) -> int:
        return len(self.geometry)

    def column(self, name: str | None) -> np.ndarray | None:
        """Column ``name`` (case-insensitive fallback), None when absent or not asked."""
        if name is None:
            return None
        if name in self.columns:
            return self.columns[name]
        lowered = {k.lower(): k for k in self.columns}
        key = lowered.get(name.lower())
        return self.columns[key] if key else None


def read_features(
    path: str | Path,
    *,
    layer: str | None = None,
    encoding: str | None = None,
    wkt: str | None = None,
    x: str | None = None,
    y: str | None = None,
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

    Raises
    ------
    DatasetIOError
        Missing or unreadable file, unknown format.
    InputDataError
        The file has no features.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetIOError("file not found", path=path)
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        table = _read_geoparquet(path)
    elif suffix in CSV_SUFFIXES:
        table = _read_csv(path, encoding=encoding, wkt=wkt, x=x, y=y)
    elif suffix in GDAL_SUFFIXES or path.is_dir():
        table = _read_gdal(path, layer=layer, encoding=encoding)
    else:
        raise DatasetIOError(
            f"unknown vector format {suffix!r} (use GeoJSON, Shapefile, GeoPackage, "
            "FlatGeobuf, GeoParquet or CSV)",
            path=path,
        )
    if len(table) == 0:
        raise InputDataError("the file has no features", path=path)
    log.info("read %d features from %s", len(table), path)
    return table


def detect_shapefile_encoding(shp: Path) -> str | None:
    """Encoding of a shapefile's ``.dbf`` when it has no ``.cpg``.

    Returns None when a ``.cpg`` exists (GDAL honours it) or the text is UTF-8/ASCII.
    """
    if shp.with_suffix(".cpg").exists() or shp.with_suffix(".CPG").exists():
        cpg = _read_cpg(shp)
        return _normalise_codepage(cpg) if cpg else None
    dbf = next((p for p in (shp.with_suffix(".dbf"), shp.with_suffix(".DBF")) if p.exists()), None)
    if dbf is None:
        return None
    raw = dbf.read_bytes()
    if len(raw) < 32:
        return None
    ldid = raw[29]
    if ldid in _DBF_LDID:
        return _DBF_LDID[ldid]
    header_len = int.from_bytes(raw[8:10], "little")
    body = raw[header_len:]
    try:
        body.decode("utf-8")
        return None
    except UnicodeDecodeError:
        pass
    try:
        body.decode("gb18030")
        log.info("%s: no .cpg; text decodes as GB18030 (GBK), reading it so", dbf)
        return "GB18030"
    except UnicodeDecodeError:
        return None


def _read_cpg(shp: Path) -> str | None:
    for cpg in (shp.with_suffix(".cpg"), shp.with_suffix(".CPG")):
        if cpg.exists():
            return cpg.read_text(encoding="ascii", errors="ignore").strip()
    return None


def _normalise_codepage(name: str) -> str | None:
    """Map .cpg spellings GDAL may not know to Python codec names."""
    key = name.strip().upper().replace("-", "").replace("_", "")
    if key in {"GBK", "CP936", "936", "GB2312", "GB18030", "ANSI936"}:
        return "GB18030"
    if key in {"BIG5", "CP950", "950"}:
        return "CP950"
    return None  # UTF-8, 1252 etc.: GDAL understands these itself


def _read_gdal(path: Path, *, layer: str | None, encoding: str | None) -> FeatureTable:
    if encoding is None and path.suffix.lower() == ".shp":
        encoding = detect_shapefile_encoding(path)
    try:
        meta, table = pyogrio.read_arrow(path, layer=layer, encoding=encoding)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise DatasetIOError(f"cannot read ({exc})", path=path) from exc
    except UnicodeDecodeError as exc:
        raise DatasetIOError(
            f"text is not in encoding {encoding or 'UTF-8'} ({exc}); set 'encoding' in city.toml",
            path=path,
        ) from exc
    geom_name = meta.get("geometry_name") or "wkb_geometry"
    if geom_name not in table.column_names:
        raise InputDataError("the layer has no geometry column", path=path)
    geometry = shapely.from_wkb(table.column(geom_name).to_numpy(zero_copy_only=False))
    columns = _arrow_columns(table, exclude={geom_name})
    return FeatureTable(path, geometry, columns, meta.get("crs"), encoding)


def _read_geoparquet(path: Path) -> FeatureTable:
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
    crs = col_meta.get("crs", "OGC:CRS84") if geo else None
    if isinstance(crs, dict):
        crs = json.dumps(crs)
    geometry = shapely.from_wkb(table.column(geom_name).to_numpy(zero_copy_only=False))
    return FeatureTable(path, geometry, _arrow_columns(table, exclude={geom_name}), crs)


def _read_csv(
    path: Path, *, encoding: str | None, wkt: str | None, x: str | None, y: str | None
) -> FeatureTable:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(encoding=encoding or "utf8"),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        if "Empty CSV" in str(exc):
            raise InputDataError("the CSV file is empty", path=path) from exc
        raise DatasetIOError(f"cannot read CSV ({exc})", path=path) from exc
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
    if wkt is not None:
        if wkt not in table.column_names:
            raise InputDataError(f"CSV has no column {wkt!r}", path=path)
        text = table.column(wkt).to_numpy(zero_copy_only=False).astype(object)
        geometry = shapely.from_wkt(text, on_invalid="ignore")
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
    return FeatureTable(path, geometry, _arrow_columns(table, exclude=exclude), None, encoding)


def _arrow_columns(table: pa.Table, exclude: set[str]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in table.column_names:
        if name in exclude:
            continue
        col = table.column(name)
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            out[name] = col.to_numpy(zero_copy_only=False).astype(np.float64)
        else:
            out[name] = col.to_numpy(zero_copy_only=False).astype(object)
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


def to_text(values: np.ndarray | None, n: int) -> np.ndarray:
    """Text view of an attribute column; '' where missing."""
    out = np.empty(n, dtype=object)
    if values is None:
        out[:] = ""
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
        arr = pc.utf8_trim_whitespace(pc.fill_null(pa.array(values, type=pa.string()), ""))
        return arr.to_numpy(zero_copy_only=False).astype(object)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        out[:] = ["" if v is None else str(v).strip() for v in values]
        return out
