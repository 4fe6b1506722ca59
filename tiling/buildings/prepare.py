"""Footprints → a clean :class:`cim.model.Buildings` table.

Reads the ``[buildings]`` input, resolves its CRS, converts to WGS84 lon/lat, repairs
what can be repaired (invalid rings, duplicate vertices, Z, duplicate ids, missing or
absurd heights) and skips only what cannot be a building (no geometry, not a polygon,
slivers, coordinates off the Earth). Every repair and skip lands in the stage report
with the feature id and a reason code.

Reason codes (``build-report.json``):

=====================  ==========================================================
``no-geometry``        skipped: the feature has no geometry (null or empty)
``not-a-polygon``      skipped: point/line geometry
``bad-coordinates``    skipped: coordinates not finite, or cannot belong to the CRS
``sliver``             skipped: area below ``min_area``, thinner than 0.5 m, or
                       collapsing to nothing (a triangle under 1 mm across)
``duplicate-feature``  skipped: same id and same geometry as an earlier feature
``invalid-geometry``   repaired with GEOS make_valid (structure method) or, for a
                       ring GEOS cannot even read (unclosed, < 4 points), closed
                       while reading; skipped when nothing polygonal remains
``duplicate-vertices`` repaired: repeated consecutive vertices removed
``multipolygon``       kept as one building (one feature id) with several parts
                       (a one-part MultiPolygon is a Polygon, silently)
``z-dropped``          repaired: Z coordinates dropped (heights come from attributes)
``duplicate-id``       repaired: id made unique with a ``~n`` suffix
``missing-id``         repaired: id generated from the row number
``height-from-floors`` repaired: height missing/absurd, floors × floor_height used
``default-height``     repaired: neither height nor floors usable, default used
=====================  ==========================================================
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from cim.config import BuildingsConfig, CityProject
from cim.crs import ResolvedCRS, crs_label, looks_like_lonlat, resolve_crs
from cim.errors import InputDataError
from cim.executor import Executor, InProcessExecutor, Tracker
from cim.memory import release_unused
from cim.model import ArrowText, Buildings, EncodedFootprints, WkbColumn, text_values
from cim.readers import (
    FEATURE_ERRORS,
    FeatureTable,
    read_features,
    take_rows,
    to_float,
    to_text,
    unparsed,
)
from cim.report import StageReport, entry
from tiling.buildings import repair, repair_cache
from tiling.buildings.footprints import FootprintArrays, gather_wkb
from tiling.buildings.ragged import PolygonScan, scan_polygons
from tiling.buildings.repair_cache import Repairs

log = logging.getLogger(__name__)

POLYGONAL = (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON)
COLLECTION = shapely.GeometryType.GEOMETRYCOLLECTION
MAX_FLOORS = 200


@dataclass(frozen=True)
class Runner:
    """Where the per-row repair runs: the build's executor, in chunks of ``chunk`` rows.

    The chunking, not the executor, decides the chunks, so the result is the same
    wherever they ran.
    """

    executor: Executor | None = None
    track: Tracker | None = None
    chunk: int = repair.CHUNK

    def __call__(self, tasks: Iterable[repair.RepairTask], total: int) -> Iterable[Any]:
        """:func:`tiling.buildings.repair.repair_chunk` of every task."""
        executor = self.executor or InProcessExecutor()
        return executor.map(
            repair.repair_chunk,
            tasks,
            track=self.track,
            desc="repairing footprints",
            unit="chunk",
            total=total,
        )


def read_buildings(
    project: CityProject, report: StageReport, *, run: Runner | None = None
) -> Buildings:
    """Read, repair and normalise the project's footprints.

    Parameters
    ----------
    project : CityProject
    report : StageReport
        Receives read count, repairs and skips.
    run : Runner, optional
        Where the per-row repair runs (default: in this process).

    Returns
    -------
    Buildings
        Footprints in lon/lat with heights; ``base`` holds the ``[buildings] base``
        column (orthometric, NaN where missing) or 0, for the ground stage
        (:mod:`tiling.buildings.ground`) to fill.

    Raises
    ------
    CRSError, InputDataError, DatasetIOError
    """
    return read_footprints(project, report, run=run)[0]


def read_footprints(
    project: CityProject,
    report: StageReport,
    *,
    run: Runner | None = None,
    repairs: Repairs | None = None,
    write_repairs: Callable[[], Callable[[], None]] | None = None,
) -> tuple[Buildings, FootprintArrays]:
    """:func:`read_buildings`, with the footprints' 2D WKB and figures (centroids,
    bounds, areas, vertex counts: :class:`FootprintArrays`).

    The repair computes them on the workers; the partitions and the L2 stage use them,
    so the build process computes none of them again, and the footprints stay WKB
    (:class:`~cim.model.EncodedFootprints`) until a later step reads them. With
    ``repairs``, rows the last build repaired (same id and stored geometry, same
    settings) are taken from its cache instead of repaired again, and this build's
    repairs are left in ``repairs.made`` (:mod:`tiling.buildings.repair_cache`).
    ``write_repairs`` is called once they are there (it starts their writer, which may
    go on meanwhile: nothing here changes them); what it returns is called before the
    buildings' columns are made (it may wait for the writer).
    """
    cfg = project.buildings
    assert cfg is not None
    table = read_features(
        cfg.path,
        layer=cfg.layer,
        encoding=cfg.encoding,
        wkt=cfg.wkt,
        x=cfg.x,
        y=cfg.y,
        parse_geometry=repairs is None,  # rows found in the last build's repairs: never
    )
    # the decoder's scratch (0.6 GB of ten million footprints' Parquet) is kept by
    # Arrow's pool, where the checks' numpy arrays cannot reuse it: given back
    release_unused()
    if repairs is not None:
        # read while the rows' fingerprints are made: not beside the input's decoding,
        # whose scratch with the cache's arrays was the rebuild's peak (4.3 GB at 10M)
        repairs.prefetch(cfg.min_area)
    report.read = len(table) + len(table.bad_rows)
    _skip_bad_rows(table, cfg, report)
    ids = _ids(table, cfg, report)
    keep, resolved, figures = _clean_geometry(
        table, ids, cfg, project, report, run or Runner(), repairs
    )
    crs = resolved.crs
    written = None
    if write_repairs is not None and repairs is not None and repairs.made is not None:
        written = write_repairs()  # while the duplicate checks run
    # the footprints stay WKB: the duplicate checks decode only their candidates
    geoms = _RowDecoder(figures.wkb)
    ids, _, keep = _dedupe_ids(ids, geoms, keep, report)  # a copy when some are renamed
    keep = _drop_duplicate_footprints(ids, geoms, keep, report, figures.bounds)
    if written is not None:
        written()
    if not keep.any():
        raise InputDataError("no usable building footprint (see build-report.json)", path=cfg.path)
    n = len(table)
    kept = _Kept(keep)
    height, floors = _heights(table, cfg, ids, keep, report)
    _release_read(table, cfg, (cfg.height, cfg.floors))
    extra = {name: kept(_extra_column(table.column(name), n)) for name in cfg.extra}
    missing_extra = [name for name in cfg.extra if table.column(name) is None]
    if missing_extra:
        report.warn(f"{cfg.path.name}: extra column(s) {missing_extra} not found")
    if kept.every:  # the figures as they are, with a WKB column object of their own:
        # the repair cache's writer reads these rows on its thread (repairs.made), and a
        # gather through the buildings (a DEM's ground) must not change them under it
        figures = dataclasses.replace(figures, wkb=_own(figures.wkb))
    else:
        figures = figures.take(kept.rows)
    # each text column taken for the rows kept as it is made: its full version goes at
    # once; Arrow-held text stays Arrow (and is its own twin) until a step reads it
    text = {key: kept(_text_column(table, getattr(cfg, key), n)) for key in _TEXT_KEYS}
    buildings = Buildings(
        ids=kept(ids),
        footprints=EncodedFootprints(figures.wkb),  # decoded when a later step needs them
        height=kept(height),
        floors=kept(floors),
        base=kept(_base_attribute(table, cfg, report)),
        name=text["name"],
        use=text["use"],
        roof_type=text["roof_type"],
        extra=extra,
        l3=_l3_columns(table, cfg, kept),
        source_crs=crs,
    )
    if cfg.address:
        addr = kept(to_text(table.column(cfg.address), n))
        buildings.addresses[:] = [(a,) if a else () for a in addr]
    multi = np.flatnonzero(figures.kinds == int(POLYGONAL[1]))
    parts = shapely.get_num_geometries(shapely.from_wkb(figures.wkb[multi])).tolist()
    for i, count in zip(multi.tolist(), parts, strict=True):
        report.repair(buildings.id_of(i), "multipolygon", f"kept as one building of {count} parts")
    report.counts.update(
        {
            "buildings": len(buildings),
            "multipolygons": len(multi),
            # polygons only: a MultiPolygon has no interior rings of its own (0)
            "with_holes": int(np.count_nonzero(figures.holes)),
        }
    )
    return buildings, figures


#: The mapped text columns besides the id (:class:`Buildings` attributes and
#: ``[buildings]`` settings alike).
_TEXT_KEYS = ("name", "use", "roof_type")


def _text_column(table: FeatureTable, name: str | None, n: int) -> np.ndarray | ArrowText:
    """A mapped text column (:func:`to_text`); held as Arrow (:class:`ArrowText`, the
    same values) when the reader had the column as Arrow text."""
    arrow = table.trimmed_text(name)
    if arrow is None:
        return to_text(table.column(name), n)
    return ArrowText(arrow)


#: The mapped L3 roof attributes (:attr:`Buildings.l3` keys and ``[buildings]`` settings).
_L3_KEYS = ("roof_height", "roof_colour", "roof_material", "podium_height")


def _release_read(table: FeatureTable, cfg: BuildingsConfig, names: Iterable[str | None]) -> None:
    """Let the table go of the columns ``names`` once they are read, unless a mapping
    read later (base, address, text, L3, extra) names them too: the heights and floors
    read are 0.15 GB at ten million footprints, beside the buildings' own."""
    mapped = [getattr(cfg, key) for key in (*_TEXT_KEYS, *_L3_KEYS)]
    read_later = {name.lower() for name in (cfg.base, cfg.address, *cfg.extra, *mapped) if name}
    table.release(*(name for name in names if name and name.lower() not in read_later))


def _l3_columns(table: FeatureTable, cfg: BuildingsConfig, kept: _Kept) -> dict[str, np.ndarray]:
    """The mapped L3 roof attributes that the file has (see :attr:`Buildings.l3`), for
    the rows ``kept``."""
    out = {}
    for key in _L3_KEYS:
        values = table.column(getattr(cfg, key))
        if values is not None:
            convert = to_text if key in ("roof_colour", "roof_material") else to_float
            out[key] = kept(convert(values, kept.n))
    return out


def _own(wkb: np.ndarray | WkbColumn) -> np.ndarray | WkbColumn:
    """``wkb`` as a column object of its own (:meth:`WkbColumn.copy`); an object array
    is never changed in place: itself."""
    return wkb.copy() if isinstance(wkb, WkbColumn) else wkb


@dataclass(frozen=True)
class _Kept:
    """The rows kept of the input's (a mask): a column's values for them, the column
    itself when every row was kept (a copy of every column beside its full version made
    the build process's peak at ten million footprints). The rows' indices are made
    only when some row was dropped (ten million of them: 80 MB)."""

    keep: np.ndarray

    @property
    def n(self) -> int:
        return len(self.keep)

    @cached_property
    def every(self) -> bool:
        return bool(self.keep.all())

    @cached_property
    def rows(self) -> np.ndarray:
        return np.flatnonzero(self.keep)

    def __call__(self, values: Any) -> Any:
        """``values`` (an array or an Arrow array) for the rows kept."""
        if self.every:
            return values
        if isinstance(values, pa.Array | pa.ChunkedArray):
            return values.take(pa.array(self.rows))
        return values[self.rows]


def _extra_column(values: np.ndarray | None, n: int) -> np.ndarray:
    """An ``extra`` attribute keeping its type: int64 / float64 numbers, else text."""
    if values is not None and values.dtype.kind in "iu":
        return values.astype(np.int64)
    if values is not None and values.dtype.kind == "f":
        return values.astype(np.float64)
    return to_text(values, n)


def _resolve(
    table: FeatureTable, cfg: BuildingsConfig, project: CityProject, b: np.ndarray
) -> ResolvedCRS:
    """The CRS policy of :func:`cim.crs.resolve_crs` over the rows' (k, 4) bounds."""
    return resolve_crs(
        table.crs,
        cfg.crs,
        b[:, 0::2],  # views: the rules that need every point copy them (resolve_crs)
        b[:, 1::2],
        what="buildings",
        path=table.path,
        default=project.crs,
        implied=table.implied_crs,
        items="features",
    )


def _skip_bad_rows(table: FeatureTable, cfg: BuildingsConfig, report: StageReport) -> None:
    """List the CSV rows the reader could not split into columns, by id and line."""
    for row in table.bad_rows:
        rid = row.cells.get(cfg.id, "") if cfg.id else ""
        report.skip(
            rid or f"{table.path.stem}-line{row.line}",
            "malformed-row",
            f"line {row.line}: {row.detail}",
        )


def _ids(table: FeatureTable, cfg: BuildingsConfig, report: StageReport) -> np.ndarray | ArrowText:
    """The rows' ids (missing ones made from the row number): held as Arrow
    (:class:`ArrowText`) when the reader had the column as Arrow text and none was
    missing, so no Python string per row unless a step reads them (ten million ids as
    ``str``: 0.65 GB)."""
    n = len(table)
    stem = table.path.stem
    if not cfg.id:
        return np.array([f"{stem}-{i}" for i in range(n)], dtype=object)
    # as Arrow text when the reader has it (no detour through Python objects)
    arrow = table.trimmed_text(cfg.id)
    if arrow is not None and not pc.any(pc.equal(arrow, "")).as_py():  # none missing
        return ArrowText(arrow)
    raw = to_text(arrow if arrow is not None else table.column(cfg.id), n)
    missing = np.flatnonzero(raw == "")
    for i in missing:
        raw[i] = f"{stem}-{i}"
        report.repair(raw[i], "missing-id", f"row {i} has no {cfg.id}")
    return raw


def _clean_geometry(
    table: FeatureTable,
    ids: np.ndarray | ArrowText,
    cfg: BuildingsConfig,
    project: CityProject,
    report: StageReport,
    run: Runner,
    repairs: Repairs | None = None,
) -> tuple[np.ndarray, ResolvedCRS, FootprintArrays]:
    """The mask of features kept, the CRS used, and the kept rows' valid 2D lon/lat
    footprints as WKB with their figures (:func:`_repair_rows`).

    Rows found in the last build's repairs (``repairs.previous``) are neither parsed,
    checked nor repaired: they passed the same checks then and come out the same.
    ``ids``: :func:`_ids`.
    """
    keys = hashed = None
    if repairs is not None and table.source_wkb is not None:
        keys = repair_cache.fingerprints(table.source_wkb)
        hashed = repair_cache.id_hashes(ids, _arrow_of(ids))
    reuse = _Reuse.start(keys, hashed, cfg, repairs)
    rows = np.flatnonzero(~reuse.hit) if reuse else np.arange(len(table))
    scan = _read_rows(table, rows)
    scratch = StageReport(report.name)  # discarded if the cache turns out unusable
    checked = _check(table, ids, cfg, project, scratch, reuse, scan)
    if reuse is not None and checked.resolved.crs != reuse.crs:
        log.info("the last build's repairs were made in another CRS: every row is repaired")
        if scan is None:  # the other rows were parsed (or the table was)
            if not table.parsed:
                table.parse(np.flatnonzero(reuse.hit))
        else:  # scanned: all of them again (none was parsed)
            scan = _read_rows(table, np.arange(len(table)))
        reuse, scratch = None, StageReport(report.name)
        checked = _check(table, ids, cfg, project, scratch, None, scan)
    # handed over in a list the repair empties: the tasks alone hold the stored WKB
    # (an Arrow source is freed once the last task is made, not when this returns)
    stored = [_stored(table, checked, scan is not None)]
    del scan  # its bounds and rows (0.4 GB at ten million) are not held through the repair
    table.source_wkb = None
    if table.geometry.flags.writeable:  # ``checked.geoms`` holds them; the repair frees them
        table.geometry[:] = None
    sent = np.flatnonzero(checked.keep)  # the rows the repair gets (keep changes in place)
    keep, figures, records, reused = _repair_rows(
        checked, ids, checked.resolved.crs, cfg.min_area, run, reuse, stored
    )
    # a ring closed while reading is a repair only if the feature survived the rest
    closed = [i for i in table.issues if i.repaired and keep[i.row]]
    records += [
        (LAST, i.row, "r", entry(ids[i.row], i.reason, f"{i.detail}; ring closed")) for i in closed
    ]
    records += checked.records
    report.skipped.extend(scratch.skipped)
    report.warnings.extend(scratch.warnings)
    repair.merge_records(records, report)
    if repairs is not None and keys is not None and hashed is not None:
        _keep_repairs(repairs, sent, keys, hashed, keep, figures, records, checked, reuse)
        repairs.crs, repairs.min_area = checked.resolved.crs, float(cfg.min_area)
        repairs.reused, repairs.rows = reused, len(sent)
    return keep, checked.resolved, figures


def _keep_repairs(
    repairs: Repairs,
    sent: np.ndarray,
    keys: np.ndarray,
    hashed_ids: np.ndarray,
    keep: np.ndarray,
    figures: FootprintArrays,
    records: list[repair.Record],
    checked: _Checked,
    reuse: _Reuse | None,
) -> None:
    """This build's repairs of rows ``sent`` for the next build (``repairs.made``):
    only those the last build's cache file does not hold when most rows were found
    there (a delta to it: :func:`repair_cache.delta_rows`), else all of them."""
    delta = repair_cache.delta_rows(reuse.cache, reuse.found[sent]) if reuse else None
    if delta is not None:
        sent = sent[delta]
        repairs.base = reuse.cache.base if reuse else None
    # the build's own arrays and the rows to write: the writer takes them a slice at
    # a time, no copy of the repaired city is made beside them. ``keep`` is copied: the
    # duplicate checks after the repair drop rows in place, and the cache keeps what the
    # repair made of them (a rebuild drops and reports them again)
    entries = repair_cache.entries_json(records, sent)
    kept = keep.copy()
    rows = None if len(sent) == len(keep) else sent  # None: every row (no index kept)
    repairs.made = repair_cache.Made(keys, hashed_ids, kept, figures, checked.bounds, rows, entries)


#: Record phases of the checks around the repair's own (:data:`repair.PHASES`): Z
#: dropped before it, rings closed while reading reported after it
FIRST, LAST = -1, len(repair.PHASES)


def _stored(
    table: FeatureTable, checked: _Checked, scanned: bool = False
) -> np.ndarray | WkbColumn | None:
    """Per row, the source's WKB where it parses to the geometry the repair gets (no
    Z or M dropped, no one-part collection unwrapped, no ring closed), else None: the
    repair's tasks send it as it is instead of encoding the geometry again.

    ``scanned``: the rows checked were scanned, not parsed (:func:`_read_rows`): they
    all travel as stored (a one-part MultiPolygon is unwrapped by the repair itself).

    An Arrow source (:class:`~cim.model.WkbColumn`) gives a selection of its rows
    (null where the geometry must be encoded), gathered only chunk by chunk as the
    tasks are made: no Python ``bytes`` per row. An object array gives one of ``bytes``.
    """
    source = table.source_wkb
    if source is None or len(source) != len(checked.geoms):
        return None
    rows = np.flatnonzero(checked.keep)
    if not scanned:
        read = table.geometry[rows]
        same = (
            ~shapely.has_z(read)
            & ~shapely.has_m(read)
            & (shapely.get_type_id(read) == shapely.get_type_id(checked.geoms[rows]))
        )
        same[np.isin(rows, [i.row for i in table.issues])] = False
        rows = rows[same]
    if isinstance(source, WkbColumn):
        if len(rows) == len(source):  # every row as stored: no selection (80 MB at 10M)
            return source.copy()
        index = np.full(len(source), -1, dtype=np.int64)  # -1: null, encoded by the tasks
        index[rows] = rows
        return WkbColumn(source.arrow, index)
    stored = np.full(len(checked.geoms), None, dtype=object)
    stored[rows] = source[rows]
    return stored


@dataclass(frozen=True)
class _Reuse:
    """The last build's repairs, and where each row of the table is in them."""

    cache: repair_cache.RepairCache
    crs: str  # the CRS they were repaired in
    found: np.ndarray  # per row: its index in ``cache``, -1 when not there

    @property
    def hit(self) -> np.ndarray:
        return self.found >= 0

    @classmethod
    def start(
        cls,
        keys: np.ndarray | None,
        ids: np.ndarray | None,
        cfg: BuildingsConfig,
        repairs: Repairs | None,
    ) -> _Reuse | None:
        """The cache's rows for ``keys`` (fingerprints) and ``ids`` (id hashes)."""
        if keys is None or ids is None or repairs is None:
            return None
        loaded = repairs.last(cfg.min_area)
        if loaded is None:
            return None
        cache, crs = loaded
        return cls(cache, crs, cache.find(keys, ids))


@dataclass(frozen=True)
class _Checked:
    """What the whole-city checks before the repair leave."""

    geoms: np.ndarray  # in the source CRS, 2D; None where not parsed (found rows)
    keep: np.ndarray  # rows for the repair
    resolved: ResolvedCRS
    bounds: np.ndarray  # (n, 4) source-CRS bounds of the rows kept
    records: list[repair.Record]  # Z dropped


#: the detail of a footprint skipped for a NaN or infinite coordinate
NONFINITE = "a coordinate is NaN or infinite"


@dataclass(frozen=True)
class _Scan:
    """Rows scanned instead of parsed (:func:`_read_rows`), and what the scan found."""

    rows: np.ndarray
    found: PolygonScan


def _read_rows(table: FeatureTable, rows: np.ndarray) -> _Scan | None:
    """Make ``rows`` ready for :func:`_check`: scanned from their WKB when every one is
    a plain 2D polygon GEOS reads as stored (:func:`~tiling.buildings.ragged.scan_polygons`:
    the bounds are all the checks need then), else parsed into ``table.geometry``.
    None when parsed (or the reader parsed the table)."""
    if table.parsed:
        return None
    if table.source_wkb is not None and len(rows):
        # the workers have no task yet: the build process's scan takes every core
        scan = scan_polygons(table.stored_rows(rows), threads=os.cpu_count() or 1)
        if scan is not None:
            return _Scan(rows, scan)
    table.parse(rows)
    return None


def _check(
    table: FeatureTable,
    ids: np.ndarray | ArrowText,
    cfg: BuildingsConfig,
    project: CityProject,
    report: StageReport,
    reuse: _Reuse | None,
    scan: _Scan | None = None,
) -> _Checked:
    """Readability, emptiness, type, Z, coordinates and the CRS of every row that is
    not in ``reuse`` (those passed the same checks in the last build); ``scan``: those
    rows were scanned (:func:`_read_rows`), only their coordinates are left to check."""
    n = len(table)
    hit = reuse.hit if reuse is not None else np.zeros(n, dtype=bool)
    cached = _bounds_from_cache(reuse, n)
    if scan is not None:
        geoms, keep, bounds, records = _scanned(scan, n, ids, report, cached)
    else:
        geoms, keep, bounds, records = _parsed(table, ids, ~hit, report, cached)
    if reuse is not None and cached is None:
        rows, found = np.flatnonzero(hit), reuse.found[hit]
        for k in range(bounds.shape[1]):  # a column at a time: no (n, 4) copy beside both
            bounds[rows, k] = reuse.cache.bounds[found, k]
    keep |= hit
    if not keep.any():
        raise InputDataError(
            "no usable building footprint (see build-report.json)", path=table.path
        )
    resolved = _resolve(table, cfg, project, bounds if keep.all() else bounds[keep])
    if resolved.note:
        report.warn(f"{table.path.name}: {resolved.note}")
    keep = _drop_unfitting(bounds, keep, ids, resolved, report)
    return _Checked(geoms, keep, resolved, bounds, records)


def _bounds_from_cache(reuse: _Reuse | None, n: int) -> np.ndarray | None:
    """The (n, 4) bounds of the rows found in the last build's repairs (NaN for the
    others), as the cache's own array, when every row found is where it was (a rebuild
    of a city whose rows kept their order); else None.

    The checks put the other rows' bounds in it: the cache does not read it again,
    and a city's bounds beside it were 0.6 GB at ten million rows.
    """
    if reuse is None:
        return None
    hit, cached = reuse.hit, reuse.cache.bounds
    if len(cached) < n or not cached.flags.owndata:
        return None
    if not np.array_equal(np.flatnonzero(hit), reuse.found[hit]):
        return None
    own = cached[:n]
    own[~hit] = np.nan
    return own


def _scanned(
    scan: _Scan,
    n: int,
    ids: np.ndarray | ArrowText,
    report: StageReport,
    into: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[repair.Record]]:
    """:func:`_parsed` for scanned rows: readable 2D polygons, only NaN or infinite
    coordinates to skip; no geometry (the repair parses the stored WKB)."""
    rows, finite = scan.rows, scan.found.finite
    keep = np.zeros(n, dtype=bool)
    keep[rows] = finite
    for i in rows[~finite]:
        report.skip(ids[i], "bad-coordinates", NONFINITE)
    if into is None and len(rows) == n and finite.all():  # every row, in order
        bounds = scan.found.bounds  # as they are: no copy of the city's (0.3 GB at 10M)
    else:
        bounds = np.full((n, 4), np.nan) if into is None else into
        bounds[rows[finite]] = scan.found.bounds[finite]
    return unparsed(n), keep, bounds, []


def _parsed(
    table: FeatureTable,
    ids: np.ndarray | ArrowText,
    keep: np.ndarray,
    report: StageReport,
    into: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[repair.Record]]:
    """The parsed rows ``keep`` checked: the geometries the repair gets, the rows
    kept, their bounds (in ``into`` when given: NaN on those rows) and the Z-dropped
    records."""
    n = len(table)
    geoms = table.geometry.copy()
    for issue in table.issues:  # what GEOS could not even read
        if not issue.repaired:
            report.skip(ids[issue.row], issue.reason, issue.detail)
            keep[issue.row] = False
    # only these rows are checked (in a rebuild, the few not in the last build's repairs)
    rows = np.flatnonzero(keep)
    sub = geoms[rows]
    ok = ~(shapely.is_missing(sub) | shapely.is_empty(sub))
    for i in rows[~ok]:
        report.skip(ids[i], "no-geometry")
    types = shapely.get_type_id(sub)
    wrong = ok & ~np.isin(types, [int(t) for t in (*POLYGONAL, COLLECTION)])
    for k in np.flatnonzero(wrong):
        report.skip(ids[rows[k]], "not-a-polygon", shapely.get_type_id(sub[k]).__str__())
    ok &= ~wrong
    has_z = ok & shapely.has_z(sub)
    records = [(FIRST, int(i), "r", entry(ids[i], "z-dropped")) for i in rows[has_z]]
    sub[has_z] = shapely.force_2d(sub[has_z])
    # a one-part MultiPolygon is a plain Polygon: nothing to report
    single = ok & (types == int(POLYGONAL[1])) & (shapely.get_num_geometries(sub) == 1)
    sub[single] = shapely.get_geometry(sub[single], 0)
    geoms[rows], keep[rows] = sub, ok
    keep = _drop_bad_coordinates(geoms, keep, ids, report)
    bounds = np.full((n, 4), np.nan) if into is None else into
    bounds[keep] = shapely.bounds(geoms[keep])
    return geoms, keep, bounds, records


class _RowDecoder:
    """Footprints as WKB, decoded a row (or a selection) at a time when read: what
    the duplicate checks need of them (their few candidates)."""

    def __init__(self, wkb: np.ndarray) -> None:
        self.wkb = wkb

    def __getitem__(self, index: Any) -> Any:
        return shapely.from_wkb(self.wkb[index])


def _repair_rows(
    checked: _Checked,
    ids: np.ndarray | ArrowText,
    crs: str,
    min_area: float,
    run: Runner,
    reuse: _Reuse | None = None,
    handed: list[np.ndarray | WkbColumn | None] | None = None,
) -> tuple[np.ndarray, FootprintArrays, list[repair.Record], int]:
    """The per-row repair (:mod:`tiling.buildings.repair`), chunk by chunk through ``run``.

    Rows found in the last build's repairs (``reuse``) are taken from there; rows with
    stored WKB (:func:`_stored`, handed over in ``handed``, which this empties) travel
    as that.

    Returns the mask of rows kept, the kept rows' repaired WKB and figures (over all
    rows; None/NaN where dropped), the report records and how many rows were reused.
    The repaired footprints are never decoded here: most builds need only their WKB.
    """
    geoms, keep = checked.geoms, checked.keep
    n = len(geoms)
    todo = np.flatnonzero(keep)
    out = _Repaired(keep)
    records: list[repair.Record] = []
    reused = 0
    cached = None
    if reuse is not None:
        found = reuse.found[todo]
        hit = found >= 0
        cached = found[hit], todo[hit]
        todo, reused = todo[~hit], int(hit.sum())
    # every row, in order (a full build of a clean city): the columns go to the tasks
    # as they are, not a selection of each (ten million rows: 0.4 GB of copies)
    every = len(todo) == n
    source = geoms if every else take_rows(geoms, todo)  # scanned rows: no array of Nones
    if not every and geoms.flags.writeable:
        geoms[todo] = None  # ``repair.tasks`` releases ``source`` chunk by chunk
    stored = handed.pop() if handed else None
    sent = stored if every else None if stored is None else _selected(stored, todo, n)
    if not every and isinstance(stored, np.ndarray):  # the tasks release ``sent``: no other
        stored[:] = None
    # the tasks alone hold the stored WKB: an Arrow column goes with the last of them
    del stored
    if reuse is not None and cached is not None:
        records = out.take_cached(reuse.cache, *cached)
    tasks = repair.tasks(ids if every else ids[todo], source, crs, min_area, run.chunk, sent)
    del sent, source
    records += out.take_repaired(run(tasks, -(-len(todo) // run.chunk)), todo, run.chunk)
    return keep, out.result(), records, reused


def _selected(stored: np.ndarray | WkbColumn, todo: np.ndarray, n: int) -> Any:
    """Rows ``todo`` of the stored WKB (:func:`_stored`) for the repair's tasks.

    Of an Arrow column, a selection; gathered now when it is at most half of the
    ``n`` rows (a rebuild's new and changed ones), so that the source's whole column
    is let go before the last build's repairs of the other rows are taken (held
    through that, it was 1 GB beside them at ten million footprints).
    """
    sent = stored[todo]
    if isinstance(sent, WkbColumn) and 2 * len(todo) <= n:
        return sent.piece(np.arange(len(todo)))
    return sent


@dataclass
class _Repaired:
    """The repair's results over all rows (filled in place; :meth:`result`)."""

    keep: np.ndarray
    #: all but the WKB, made by the first rows taken (:meth:`_figures`)
    figures: FootprintArrays | None = None
    #: (rows, their WKB) from the cache and the repair: put together in :meth:`result`
    parts: list[tuple[np.ndarray, Any]] = field(default_factory=list)

    def _figures(self) -> FootprintArrays:
        if self.figures is None:
            self.figures = FootprintArrays.empty(len(self.keep))
        return self.figures

    def take_cached(
        self, cache: repair_cache.RepairCache, found: np.ndarray, rows: np.ndarray
    ) -> list[repair.Record]:
        """Rows ``rows`` as the cache's rows ``found`` left them; their report records.

        Taken first, the cache's figures are consumed (:meth:`FootprintArrays.taken_from`:
        taken as they are when every row found is where it was, a figure at a time
        otherwise): the cache is not read again after this."""
        records = cache.records(found, rows)  # dropped rows' included
        ok = cache.keep[found]
        self.keep[rows] = ok
        rows, found = rows[ok], found[ok]
        if self.figures is None:
            self.figures = FootprintArrays.taken_from(cache.footprints, rows, found, len(self.keep))
        else:
            self.figures.put_from(rows, cache.footprints, found)
        self.parts.append((rows, cache.footprints.wkb[found]))  # a selection: not gathered
        return records

    def take_repaired(
        self, results: Iterable[repair.RepairResult], todo: np.ndarray, chunk: int
    ) -> list[repair.Record]:
        """The repaired chunks of rows ``todo``; their report records."""
        records: list[repair.Record] = []
        # each chunk is taken as it comes back, while the workers repair the next ones
        for result in results:
            rows = todo[result.index * chunk : (result.index + 1) * chunk]
            records += repair.city_records(result.records, rows)
            self.keep[rows] = result.keep
            rows = rows[result.keep]
            self._figures().put(rows, result.footprints)
            self.parts.append((rows, result.footprints.wkb))
        return records

    def result(self) -> FootprintArrays:
        """The figures of all rows, the WKB as one Arrow column
        (:class:`~cim.model.WkbColumn`): the cache's and the workers' values are not
        made into a million Python objects on the way to the partitions."""
        wkb = gather_wkb(len(self.keep), self.parts)
        return dataclasses.replace(self._figures(), wkb=wkb)


def _drop_bad_coordinates(
    geoms: np.ndarray, keep: np.ndarray, ids: np.ndarray | ArrowText, report: StageReport
) -> np.ndarray:
    """Skip features with a NaN or infinite coordinate (GEOS cannot repair them)."""
    kept = np.flatnonzero(keep)
    coords, owner = shapely.get_coordinates(geoms[kept], return_index=True)
    nonfinite = np.zeros(len(kept), dtype=bool)
    nonfinite[owner[~np.isfinite(coords).all(axis=1)]] = True
    for i in kept[nonfinite]:
        report.skip(ids[i], "bad-coordinates", NONFINITE)
    keep[kept[nonfinite]] = False
    return keep


def _drop_unfitting(
    bounds: np.ndarray,
    keep: np.ndarray,
    ids: np.ndarray | ArrowText,
    resolved: ResolvedCRS,
    report: StageReport,
) -> np.ndarray:
    """Skip features whose coordinates cannot belong to the CRS (e.g. x = 1e12)."""
    kept = np.flatnonzero(keep)
    bad = kept[~resolved.fits]
    if len(bad) == 0:
        return keep
    b = bounds[bad]
    label = crs_label(resolved.crs)
    lonlat = looks_like_lonlat(b[:, 0], b[:, 1]) & looks_like_lonlat(b[:, 2], b[:, 3])
    for k, i in enumerate(bad):
        what = "look like lon/lat degrees" if lonlat[k] else "do not fit"
        report.skip(
            ids[i],
            "bad-coordinates",
            f"coordinates (x = {b[k, 0]:.10g}, y = {b[k, 1]:.10g}) {what} {label}",
        )
    keep[bad] = False
    if len(bad) > len(kept) // 2:
        report.warn(f"{len(bad)} of {len(kept)} features do not fit the CRS {label}")
    return keep


def _arrow_of(values: np.ndarray | ArrowText) -> pa.Array | None:
    """The Arrow array of text held as Arrow, else None."""
    return values.arrow if isinstance(values, ArrowText) else None


def _dedupe_ids(
    ids: np.ndarray | ArrowText,
    geoms: np.ndarray | _RowDecoder,
    keep: np.ndarray,
    report: StageReport,
) -> tuple[np.ndarray | ArrowText, np.ndarray | _RowDecoder, np.ndarray]:
    """Repeated ids: a row with the same geometry as an earlier one of its id is
    skipped (``keep``, in place), another is renamed ``id~2``, ``id~3``... Returns
    ``ids`` itself when no id repeats, else a copy with the renames (callers tell the
    two apart by identity)."""
    kept = np.flatnonzero(keep)
    arrow = _arrow_of(ids)
    if arrow is not None:  # every row kept (the usual case): the column as it is
        text = arrow if len(kept) == len(arrow) else arrow.take(pa.array(kept))
    else:
        text = pa.array(ids[kept], type=pa.string())
    # rows whose id hash repeats, grouped by id: the ids repeated, in first-row order
    groups: dict[str, list[int]] = {}
    for i in kept[_repeated(_text_hashes(text))].tolist():
        groups.setdefault(ids[i], []).append(i)
    repeated = {value: rows for value, rows in groups.items() if len(rows) > 1}
    if not repeated:
        return ids, geoms, keep
    ids = text_values(ids).copy()
    # a new id has a "~": only the ids with one can be taken already
    taken = set(ids[kept][pc.match_substring(text, "~").to_numpy(zero_copy_only=False)])
    for value, rows in repeated.items():
        survivors = [rows[0]]
        suffix = 1
        for i in rows[1:]:
            twin = next(
                (j for j in survivors if shapely.equals_exact(geoms[i], geoms[j], 1e-9)), None
            )
            if twin is not None:
                report.skip(value, "duplicate-feature", f"same id and geometry as row {twin}")
                keep[i] = False
                continue
            survivors.append(i)
            suffix += 1
            while f"{value}~{suffix}" in taken:
                suffix += 1
            new = f"{value}~{suffix}"
            taken.add(new)
            report.repair(value, "duplicate-id", f"renamed to {new}")
            ids[i] = new
    return ids, geoms, keep


def _drop_duplicate_footprints(
    ids: np.ndarray | ArrowText,
    geoms: np.ndarray | _RowDecoder,
    keep: np.ndarray,
    report: StageReport,
    bounds: np.ndarray | None = None,
) -> np.ndarray:
    """Skip footprints identical to an earlier one (the same building digitised twice).

    Candidates are found by equal bounding boxes, then confirmed with an exact
    geometric comparison (vertex order and start do not matter). ``bounds``: the
    (n, 4) bounds of ``geoms`` where the caller has them (the repair's figures), so
    they are not computed again.
    """
    kept = np.flatnonzero(keep)
    if bounds is None:
        box = shapely.bounds(geoms[kept])
    else:  # every row kept (the usual case): the bounds as they are, not a copy
        box = bounds if len(kept) == len(bounds) else bounds[kept]
    key = _box_keys(box)
    repeated = _repeated(key)
    key, candidates = key[repeated], kept[repeated]
    # groups of equal keys in key order, each in row order
    order = np.argsort(key, kind="stable")
    starts = np.flatnonzero(np.diff(key[order], prepend=~key[order[:1]]))
    for group in np.split(candidates[order], starts[1:]):
        rows = group.tolist()
        for k, i in enumerate(rows[1:], start=1):
            twin = next(
                (j for j in rows[:k] if keep[j] and _same_footprint(geoms[i], geoms[j])), None
            )
            if twin is not None:
                report.skip(ids[i], "duplicate-footprint", f"same footprint as {ids[twin]}")
                keep[i] = False
    return keep


def _same_footprint(a: shapely.Geometry, b: shapely.Geometry) -> bool:
    """Topological equality; a GEOS failure on the pair means "not proven equal"."""
    try:
        return bool(shapely.equals(a, b))
    except FEATURE_ERRORS:
        return False


def _box_keys(box: np.ndarray, block: int = 1 << 20) -> np.ndarray:
    """:func:`_row_hash` of ``box`` (n, 4) rounded to 1e-9 degrees, ``block`` rows at a
    time: the rounded copy of ten million boxes alone was 320 MB."""
    keys = np.empty(len(box), dtype=np.uint64)
    for start in range(0, len(box), block):
        keys[start : start + block] = _row_hash(np.round(box[start : start + block], 9))
    return keys


def _row_hash(values: np.ndarray) -> np.ndarray:
    """A 64-bit hash per row of a float array (equal rows, equal hashes)."""
    bits = np.ascontiguousarray(values).view(np.uint64)
    h = np.full(len(values), 0x9E3779B97F4A7C15, dtype=np.uint64)
    for k in range(bits.shape[1]):
        h = (h ^ bits[:, k]) * np.uint64(0x100000001B3)
    return h


def _repeated(keys: np.ndarray) -> np.ndarray:
    """Mask of the values of ``keys`` (uint64) that occur more than once.

    A sort of the keys alone (no argsort) answers "none" for a whole city at once.
    """
    ordered = np.sort(keys)
    twice = ordered[1:][ordered[1:] == ordered[:-1]]
    if not len(twice):
        return np.zeros(len(keys), dtype=bool)
    twice = np.unique(twice)
    at = np.searchsorted(twice, keys).clip(max=len(twice) - 1)
    return twice[at] == keys


#: Odd multiplier of :func:`_text_hashes` (FNV-1a's 64-bit prime)
_TEXT_PRIME = np.uint64(0x100000001B3)


def _text_hashes(text: pa.Array, block: int = 1 << 16) -> np.ndarray:
    """A 64-bit polynomial hash per string of ``text`` (equal strings, equal hashes),
    over its UTF-8 bytes in Arrow's buffers: no Python object per row. Blocks of
    ``block`` rows keep every temporary small (the whole column's offsets, lengths and
    products were 0.3 GB at ten million ids, beside the repair cache's writer)."""
    if not pa.types.is_string(text.type):
        raise TypeError(f"_text_hashes: string array expected, not {text.type}")
    if len(text) == 0:
        return np.zeros(0, dtype=np.uint64)
    # the offsets as Arrow holds them (int32): a view, widened a block at a time
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)
    offsets = offsets[text.offset : text.offset + len(text) + 1]
    data = np.frombuffer(text.buffers()[2] or b"", dtype=np.uint8)
    longest = max(
        int(np.diff(offsets[lo : lo + block + 1]).max()) for lo in range(0, len(text), block)
    )
    powers = np.cumprod(np.full(max(longest, 1), _TEXT_PRIME))
    sums = np.empty(len(text), dtype=np.uint64)
    for lo in range(0, len(text), block):
        span = offsets[lo : lo + block + 1].astype(np.int64)
        lengths = np.diff(span).astype(np.uint64)
        hashed = _polynomial(data[span[0] : span[-1]], span - span[0], powers)
        sums[lo : lo + block] = hashed ^ (lengths * np.uint64(0x9E3779B97F4A7C15))
    return sums


def _polynomial(data: np.ndarray, offsets: np.ndarray, powers: np.ndarray) -> np.ndarray:
    """Sum of byte × prime^(position + 1) per string (``offsets`` from 0), mod 2^64."""
    lengths = np.diff(offsets)
    width = int(lengths[0])
    if (lengths == width).all():  # e.g. fixed-width ids: no gather, no reduceat
        return (data.reshape(len(lengths), width) * powers[:width]).sum(axis=1, dtype=np.uint64)
    at = np.arange(len(data)) - np.repeat(offsets[:-1], lengths)
    # a 0 at the end: reduceat needs an index inside ``terms`` for trailing empty strings
    terms = np.append(data * powers[at], np.uint64(0))
    sums = np.add.reduceat(terms, offsets[:-1])
    sums[lengths == 0] = 0  # reduceat gives an empty string its next string's first term
    return sums


def _heights(
    table: FeatureTable,
    cfg: BuildingsConfig,
    ids: np.ndarray | ArrowText,
    keep: np.ndarray,
    report: StageReport,
) -> tuple[np.ndarray, np.ndarray]:
    n = len(table)
    height = to_float(table.column(cfg.height), n)
    floors = to_float(table.column(cfg.floors), n)
    floors_ok = np.isfinite(floors) & (floors >= 1) & (floors <= MAX_FLOORS)
    # 2.5 floors stay 2.5 (a half storey under the roof is common)
    floors = np.where(floors_ok, floors, np.nan)
    height_ok = np.isfinite(height) & (height > 0) & (height <= cfg.max_height)
    from_floors = keep & ~height_ok & floors_ok
    fallback = keep & ~height_ok & ~floors_ok
    _report_heights(report, ids, height, floors, from_floors, fallback, cfg.max_height)
    height = np.where(
        height_ok, height, np.where(floors_ok, floors * cfg.floor_height, cfg.default_height)
    )
    return height, floors


def _report_heights(
    report: StageReport,
    ids: np.ndarray | ArrowText,
    height: np.ndarray,
    floors: np.ndarray,
    from_floors: np.ndarray,
    fallback: np.ndarray,
    max_height: float,
) -> None:
    """One repair per building whose height came from its floors or the default.

    A third of a city may have floors only: each distinct detail text is formatted
    once (a city has a few hundred), the rows pick theirs by index, and the entries
    are added in row order as columns (:meth:`cim.report.Entries.extend_columns`).
    """
    rows = np.flatnonzero(from_floors | fallback)
    if not len(rows):
        return
    by_floors = from_floors[rows]
    # NaN (height missing, NaN or infinite; floors not used) is one distinct value
    values = height[rows]
    why, why_of = np.unique(np.where(np.isfinite(values), values, np.nan), return_inverse=True)
    storeys, storeys_of = np.unique(np.where(by_floors, floors[rows], np.nan), return_inverse=True)
    pairs, pair_of = np.unique(why_of * len(storeys) + storeys_of, return_inverse=True)
    texts = np.array(
        [
            _height_detail(
                float(why[p // len(storeys)]), float(storeys[p % len(storeys)]), max_height
            )
            for p in pairs.tolist()
        ]
        + ["default-height", "height-from-floors"],
        dtype=object,
    )
    # kept as columns (references to these few texts and to the ids, which are str
    # already: :func:`_ids`), not a dict per building
    report.repaired.extend_columns(
        ids[rows], texts[len(pairs) + by_floors.astype(np.intp)], texts[pair_of]
    )


def _height_detail(height: float, floors: float, max_height: float) -> str:
    """The detail of a height repair: what was wrong with ``height``, and the floors
    used (NaN: none usable, the default height was used)."""
    why = _height_problem(height, max_height)
    return f"{why}; {floors:g} floors" if np.isfinite(floors) else f"{why}; no usable floors"


def _height_problem(value: float, max_height: float) -> str:
    if not np.isfinite(value):
        return "height missing"
    if value == 0:
        return "height 0"
    if value < 0:
        return f"height {value:g} m negative"
    return f"height {value:g} m above max_height {max_height:g}"


def _base_attribute(table: FeatureTable, cfg: BuildingsConfig, report: StageReport) -> np.ndarray:
    """The ``[buildings] base`` column as numbers (NaN where missing), else zeros."""
    n = len(table)
    if not cfg.base:
        return np.zeros(n)
    column = table.column(cfg.base)
    if column is None:
        report.warn(f"{cfg.path.name}: base column {cfg.base!r} not found; base from the DEM")
    return to_float(column, n)
