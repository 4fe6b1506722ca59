"""Read address points from CSV, GeoJSON, GeoPackage or Shapefile, in any CRS."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import shapely

from cim.crs import resolve_crs
from cim.encoding import choose_encoding, scan_text
from cim.errors import DatasetIOError, InputDataError
from cim.readers import CSV_SUFFIXES, XY_NAMES, read_features, to_text
from tiling.addresses.build import AddressRecords
from tiling.addresses.config import AddressesConfig

log = logging.getLogger(__name__)

_AUTO_FULL = ("address", "full", "addr", "地址", "full_address")


def _csv_header(path: Path, encoding: str | None) -> list[str]:
    """Column names of a CSV file (first line): declared encoding, else detected."""
    try:
        with open(path, "rb") as fh:
            line = fh.readline()
    except OSError as exc:
        raise DatasetIOError(f"cannot read address CSV ({exc})", path=path) from exc
    enc = encoding or choose_encoding(scan_text([line]))
    try:
        text = line.decode(enc or "", errors="strict").removeprefix("\ufeff")
    except (UnicodeDecodeError, LookupError) as exc:
        raise DatasetIOError(
            "cannot decode the address CSV header; set encoding", path=path
        ) from exc
    delim = "\t" if path.suffix.lower() == ".tsv" else ","
    return [h.strip().strip('"') for h in text.rstrip("\r\n").split(delim)]


def read_addresses(cfg: AddressesConfig, project_crs: str | None = None) -> AddressRecords:
    """Read the address file named by ``cfg`` into WGS84 columns.

    Parameters
    ----------
    cfg : AddressesConfig
    project_crs : str, optional
        ``[city] crs``: used when neither the file nor ``cfg.crs`` gives one.

    Returns
    -------
    AddressRecords

    Raises
    ------
    DatasetIOError
        When the file cannot be read.
    InputDataError
        When coordinate or address columns are missing.
    CRSError
        When the CRS is unknown, missing, contradicts the file's own, or no point
        fits it (:func:`cim.crs.resolve_crs`). Single points that do not fit get
        NaN coordinates (skipped by the index as bad coordinates).
    """
    if not cfg.path.exists():
        raise DatasetIOError("address file not found", path=cfg.path)
    is_csv = cfg.path.suffix.lower() in CSV_SUFFIXES
    x = cfg.lon or cfg.x
    y = cfg.lat or cfg.y
    geographic = cfg.lon is not None
    if is_csv and x is None:
        names = {n.lower(): n for n in _csv_header(cfg.path, cfg.encoding)}
        pair = next((p for p in XY_NAMES if p[0] in names and p[1] in names), None)
        if pair is None:
            raise InputDataError(
                "no coordinate columns: set [addresses] x/y or lon/lat", path=cfg.path
            )
        x, y = names[pair[0]], names[pair[1]]
        geographic = pair[0] != "x"
    table = read_features(
        cfg.path,
        layer=cfg.layer,
        encoding=cfg.encoding,
        x=x if is_csv else None,
        y=y if is_csv else None,
    )
    geoms = table.geometry
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    not_point = ~missing & (shapely.get_type_id(geoms) != 0)
    pts = geoms.copy()
    if not_point.any():
        pts[not_point] = shapely.point_on_surface(geoms[not_point])
    xs = np.full(len(geoms), np.nan)
    ys = np.full(len(geoms), np.nan)
    xs[~missing] = shapely.get_x(pts[~missing])
    ys[~missing] = shapely.get_y(pts[~missing])
    # lon/lat column names say "degrees": [city] crs (a projected default) does not apply
    resolved = resolve_crs(
        table.crs,
        cfg.crs,
        xs[~missing],
        ys[~missing],
        what="addresses",
        path=cfg.path,
        default=None if geographic else project_crs,
        implied="EPSG:4326" if geographic else table.implied_crs,
        items="address points",
    )
    if resolved.note:
        log.warning("%s: %s", cfg.path, resolved.note)
    crs = resolved.crs
    cols = table.columns
    for name in [cfg.id, cfg.full, *cfg.parts().values()]:
        if name and table.column(name) is None:
            raise InputDataError(
                f"column {name!r} not found (columns: {sorted(cols)})",
                path=cfg.path,
            )
    n = len(table)
    fits = np.zeros(n, dtype=bool)
    fits[~missing] = resolved.fits
    lon, lat = resolved.to_lonlat(np.where(fits, xs, np.nan), np.where(fits, ys, np.nan))
    ids = (
        to_text(table.column(cfg.id), n)
        if cfg.id
        else np.array([str(i) for i in range(n)], dtype=object)
    )
    lower = {c.lower(): c for c in cols}
    full_col = cfg.full
    if full_col is None and not cfg.parts():
        for cand in _AUTO_FULL:
            if cand in lower:
                full_col = lower[cand]
                break
        if full_col is None:
            raise InputDataError(
                "no address column: set [addresses] full or the part columns", path=cfg.path
            )
    full = to_text(table.column(full_col), n) if full_col else None
    parts = {k: to_text(table.column(v), n) for k, v in cfg.parts().items()}
    log.info("read %d address points from %s (CRS %s)", n, cfg.path, crs)
    skipped = [
        (
            (row.cells.get(cfg.id, "") if cfg.id else "") or f"line{row.line}",
            "malformed-row",
            f"line {row.line}: {row.detail}",
        )
        for row in table.bad_rows
    ]
    return AddressRecords(
        ids=ids, lon=np.asarray(lon), lat=np.asarray(lat), full=full, parts=parts, skipped=skipped
    )
