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

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from cim.config import BuildingsConfig, CityProject
from cim.crs import ResolvedCRS, crs_label, looks_like_lonlat, resolve_crs
from cim.errors import InputDataError
from cim.executor import Executor, InProcessExecutor, Tracker
from cim.model import Buildings
from cim.readers import (
    FEATURE_ERRORS,
    FeatureTable,
    read_features,
    to_float,
    to_text,
)
from cim.report import StageReport, entry
from tiling.buildings import repair, repair_cache
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
) -> tuple[Buildings, np.ndarray, np.ndarray]:
    """:func:`read_buildings`, with the footprints' 2D WKB and (n, 2) lon/lat centroids.

    The repair computes both on the workers; the partitions store them, so the build
    process does not encode them again. With ``repairs``, rows the last build repaired
    (same id and stored geometry, same settings) are taken from its cache instead of
    repaired again, and this build's repairs are left in ``repairs.made``
    (:mod:`tiling.buildings.repair_cache`).
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
    report.read = len(table) + len(table.bad_rows)
    _skip_bad_rows(table, cfg, report)
    ids = _ids(table, cfg, report)
    geoms, keep, resolved, (wkb, centres) = _clean_geometry(
        table, ids, cfg, project, report, run or Runner(), repairs
    )
    crs = resolved.crs
    ids, geoms, keep = _dedupe_ids(ids, geoms, keep, report)
    keep = _drop_duplicate_footprints(ids, geoms, keep, report)
    idx = np.flatnonzero(keep)
    if len(idx) == 0:
        raise InputDataError("no usable building footprint (see build-report.json)", path=cfg.path)
    n = len(table)
    height, floors = _heights(table, cfg, ids, keep, report)
    extra = {name: _extra_column(table.column(name), n)[idx] for name in cfg.extra}
    missing_extra = [name for name in cfg.extra if table.column(name) is None]
    if missing_extra:
        report.warn(f"{cfg.path.name}: extra column(s) {missing_extra} not found")
    buildings = Buildings(
        ids=ids[idx],
        footprints=geoms[idx],
        height=height[idx],
        floors=floors[idx],
        base=_base_attribute(table, cfg, report)[idx],
        name=to_text(table.column(cfg.name), n)[idx],
        use=to_text(table.column(cfg.use), n)[idx],
        roof_type=to_text(table.column(cfg.roof_type), n)[idx],
        extra=extra,
        l3=_l3_columns(table, cfg, n, idx),
        source_crs=crs,
    )
    if cfg.address:
        addr = to_text(table.column(cfg.address), n)[idx]
        buildings.addresses[:] = [(a,) if a else () for a in addr]
    multi = np.flatnonzero(shapely.get_type_id(buildings.footprints) == int(POLYGONAL[1]))
    for i in multi:
        parts = shapely.get_num_geometries(buildings.footprints[i])
        report.repair(buildings.ids[i], "multipolygon", f"kept as one building of {parts} parts")
    report.counts.update(
        {
            "buildings": len(buildings),
            "multipolygons": len(multi),
            # polygons only: a MultiPolygon has no interior rings of its own (0)
            "with_holes": int(
                np.count_nonzero(shapely.get_num_interior_rings(buildings.footprints))
            ),
        }
    )
    return buildings, wkb[idx], centres[idx]


def _l3_columns(
    table: FeatureTable, cfg: BuildingsConfig, n: int, idx: np.ndarray
) -> dict[str, np.ndarray]:
    """The mapped L3 roof attributes that the file has (see :attr:`Buildings.l3`)."""
    out = {}
    for key in ("roof_height", "roof_colour", "roof_material", "podium_height"):
        values = table.column(getattr(cfg, key))
        if values is not None:
            convert = to_text if key in ("roof_colour", "roof_material") else to_float
            out[key] = convert(values, n)[idx]
    return out


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
        b[:, [0, 2]],
        b[:, [1, 3]],
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


def _ids(table: FeatureTable, cfg: BuildingsConfig, report: StageReport) -> np.ndarray:
    n = len(table)
    stem = table.path.stem
    raw = to_text(table.column(cfg.id), n) if cfg.id else None
    if raw is None:
        if cfg.id:
            report.warn(f"id column {cfg.id!r} not found; ids generated from row numbers")
        return np.array([f"{stem}-{i}" for i in range(n)], dtype=object)
    for i in np.flatnonzero(raw == ""):
        raw[i] = f"{stem}-{i}"
        report.repair(raw[i], "missing-id", f"row {i} has no {cfg.id}")
    return raw


def _clean_geometry(
    table: FeatureTable,
    ids: np.ndarray,
    cfg: BuildingsConfig,
    project: CityProject,
    report: StageReport,
    run: Runner,
    repairs: Repairs | None = None,
) -> tuple[np.ndarray, np.ndarray, ResolvedCRS, tuple[np.ndarray, np.ndarray]]:
    """Valid 2D lon/lat polygons, the mask of features kept, the CRS used, and the
    kept rows' WKB and centroids (:func:`_repair_rows`).

    Rows found in the last build's repairs (``repairs.previous``) are neither parsed,
    checked nor repaired: they passed the same checks then and come out the same.
    """
    keys = None
    if repairs is not None and table.source_wkb is not None:
        keys = repair_cache.fingerprints(table.source_wkb)
    reuse = _Reuse.start(keys, ids, cfg, repairs)
    if not table.parsed:
        table.parse(np.flatnonzero(~reuse.hit) if reuse else np.arange(len(table)))
    scratch = StageReport(report.name)  # discarded if the cache turns out unusable
    checked = _check(table, ids, cfg, project, scratch, reuse)
    if reuse is not None and checked.resolved.crs != reuse.crs:
        log.info("the last build's repairs were made in another CRS: every row is repaired")
        if not table.parsed:
            table.parse(np.flatnonzero(reuse.hit))
        reuse, scratch = None, StageReport(report.name)
        checked = _check(table, ids, cfg, project, scratch, None)
    stored = _stored(table, checked)
    table.source_wkb = None
    if table.geometry.flags.writeable:  # ``checked.geoms`` holds them; the repair frees them
        table.geometry[:] = None
    sent = np.flatnonzero(checked.keep)  # the rows the repair gets (keep changes in place)
    geoms, keep, (wkb, centres), records, reused = _repair_rows(
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
    if repairs is not None and keys is not None:
        repairs.made = repair_cache.RepairCache(
            keys[sent],
            ids[sent],
            keep[sent],
            wkb[sent],
            centres[sent],
            repair_cache.entries_json(records, sent),
            checked.bounds[sent],
        )
        repairs.crs, repairs.min_area = checked.resolved.crs, float(cfg.min_area)
        repairs.reused, repairs.rows = reused, len(sent)
    return geoms, keep, checked.resolved, (wkb, centres)


#: Record phases of the checks around the repair's own (:data:`repair.PHASES`): Z
#: dropped before it, rings closed while reading reported after it
FIRST, LAST = -1, len(repair.PHASES)


def _stored(table: FeatureTable, checked: _Checked) -> np.ndarray | None:
    """Per row, the source's WKB where it parses to the geometry the repair gets (no
    Z or M dropped, no one-part collection unwrapped, no ring closed), else None: the
    repair's tasks send it as it is instead of encoding the geometry again."""
    if table.source_wkb is None or len(table.source_wkb) != len(checked.geoms):
        return None
    rows = np.flatnonzero(checked.keep)
    read = table.geometry[rows]
    same = (
        ~shapely.has_z(read)
        & ~shapely.has_m(read)
        & (shapely.get_type_id(read) == shapely.get_type_id(checked.geoms[rows]))
    )
    same[np.isin(rows, [i.row for i in table.issues])] = False
    stored = np.full(len(checked.geoms), None, dtype=object)
    stored[rows[same]] = table.source_wkb[rows[same]]
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
        cls, keys: np.ndarray | None, ids: np.ndarray, cfg: BuildingsConfig, repairs: Repairs | None
    ) -> _Reuse | None:
        if keys is None or repairs is None:
            return None
        loaded = repair_cache.load(repairs.previous, cfg.min_area)
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


def _check(
    table: FeatureTable,
    ids: np.ndarray,
    cfg: BuildingsConfig,
    project: CityProject,
    report: StageReport,
    reuse: _Reuse | None,
) -> _Checked:
    """Readability, emptiness, type, Z, coordinates and the CRS of every row that is
    not in ``reuse`` (those passed the same checks in the last build)."""
    n = len(table)
    hit = reuse.hit if reuse is not None else np.zeros(n, dtype=bool)
    geoms = table.geometry.copy()
    keep = ~hit
    for issue in table.issues:  # what GEOS could not even read
        if not issue.repaired:
            report.skip(ids[issue.row], issue.reason, issue.detail)
            keep[issue.row] = False
    missing = keep & (shapely.is_missing(geoms) | shapely.is_empty(geoms))
    for i in np.flatnonzero(missing):
        report.skip(ids[i], "no-geometry")
    keep &= ~missing
    types = shapely.get_type_id(geoms)
    wrong = keep & ~np.isin(types, [int(t) for t in (*POLYGONAL, COLLECTION)])
    for i in np.flatnonzero(wrong):
        report.skip(ids[i], "not-a-polygon", shapely.get_type_id(geoms[i]).__str__())
    keep &= ~wrong
    has_z = keep & shapely.has_z(geoms)
    records = [(FIRST, int(i), "r", entry(ids[i], "z-dropped")) for i in np.flatnonzero(has_z)]
    geoms[has_z] = shapely.force_2d(geoms[has_z])
    # a one-part MultiPolygon is a plain Polygon: nothing to report
    single = keep & (types == int(POLYGONAL[1])) & (shapely.get_num_geometries(geoms) == 1)
    geoms[single] = shapely.get_geometry(geoms[single], 0)
    keep = _drop_bad_coordinates(geoms, keep, ids, report)
    bounds = np.full((n, 4), np.nan)
    bounds[keep] = shapely.bounds(geoms[keep])
    if reuse is not None:
        bounds[hit] = reuse.cache.bounds[reuse.found[hit]]
    keep |= hit
    if not keep.any():
        raise InputDataError(
            "no usable building footprint (see build-report.json)", path=table.path
        )
    resolved = _resolve(table, cfg, project, bounds[keep])
    if resolved.note:
        report.warn(f"{table.path.name}: {resolved.note}")
    keep = _drop_unfitting(bounds, keep, ids, resolved, report)
    return _Checked(geoms, keep, resolved, bounds, records)


def _repair_rows(
    checked: _Checked,
    ids: np.ndarray,
    crs: str,
    min_area: float,
    run: Runner,
    reuse: _Reuse | None = None,
    stored: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray], list[repair.Record], int]:
    """The per-row repair (:mod:`tiling.buildings.repair`), chunk by chunk through ``run``.

    Rows found in the last build's repairs (``reuse``) are taken from there; rows with
    ``stored`` WKB (:func:`_stored`) travel as that.

    Returns the repaired geometries, the mask of rows kept, the kept rows' WKB and
    centroids (object array and (n, 2) array over all rows; None/NaN where dropped),
    the report records and how many rows were reused.
    """
    geoms, keep = checked.geoms, checked.keep
    n = len(geoms)
    kept = np.flatnonzero(keep)
    out = _Repaired(geoms, keep, np.full(n, None, dtype=object), np.full((n, 2), np.nan))
    found = reuse.found[kept] if reuse is not None else np.full(len(kept), -1)
    hit = found >= 0
    todo = kept[~hit]
    source = geoms[todo]
    geoms[kept] = None  # ``repair.tasks`` releases ``source`` chunk by chunk
    records = out.take_cached(reuse.cache, found[hit], kept[hit]) if reuse is not None else []
    sent = None
    if stored is not None:  # the tasks release it chunk by chunk: no other reference
        sent = stored[todo]
        stored[:] = None
    tasks = repair.tasks(ids[todo], source, crs, min_area, run.chunk, sent)
    records += out.take_repaired(run(tasks, -(-len(todo) // run.chunk)), todo, run.chunk)
    return geoms, keep, (out.wkb, out.centres), records, int(hit.sum())


@dataclass(frozen=True)
class _Repaired:
    """The repair's results over all rows (filled in place)."""

    geoms: np.ndarray
    keep: np.ndarray
    wkb: np.ndarray
    centres: np.ndarray

    def take_cached(
        self, cache: repair_cache.RepairCache, found: np.ndarray, rows: np.ndarray
    ) -> list[repair.Record]:
        """Rows ``rows`` as the cache's rows ``found`` left them; their report records."""
        records = cache.records(found, rows)  # dropped rows' included
        ok = cache.keep[found]
        self.keep[rows] = ok
        rows, found = rows[ok], found[ok]
        self.wkb[rows] = cache.wkb[found]
        self.centres[rows] = cache.centres[found]
        self.geoms[rows] = shapely.from_wkb(cache.wkb[found])
        return records

    def take_repaired(
        self, results: Iterable[repair.RepairResult], todo: np.ndarray, chunk: int
    ) -> list[repair.Record]:
        """The repaired chunks of rows ``todo``; their report records."""
        records: list[repair.Record] = []
        # each chunk is decoded as it comes back, while the workers repair the next ones
        for result in results:
            rows = todo[result.index * chunk : (result.index + 1) * chunk]
            records += repair.city_records(result.records, rows)
            self.keep[rows] = result.keep
            rows = rows[result.keep]
            self.wkb[rows] = result.wkb
            self.centres[rows] = result.centres
            self.geoms[rows] = shapely.from_wkb(result.wkb)
        return records


def _drop_bad_coordinates(
    geoms: np.ndarray, keep: np.ndarray, ids: np.ndarray, report: StageReport
) -> np.ndarray:
    """Skip features with a NaN or infinite coordinate (GEOS cannot repair them)."""
    kept = np.flatnonzero(keep)
    coords, owner = shapely.get_coordinates(geoms[kept], return_index=True)
    nonfinite = np.zeros(len(kept), dtype=bool)
    nonfinite[owner[~np.isfinite(coords).all(axis=1)]] = True
    for i in kept[nonfinite]:
        report.skip(ids[i], "bad-coordinates", "a coordinate is NaN or infinite")
    keep[kept[nonfinite]] = False
    return keep


def _drop_unfitting(
    bounds: np.ndarray,
    keep: np.ndarray,
    ids: np.ndarray,
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


def _dedupe_ids(
    ids: np.ndarray, geoms: np.ndarray, keep: np.ndarray, report: StageReport
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = ids.copy()
    kept = np.flatnonzero(keep)
    counted = pc.value_counts(pa.array(ids[kept], type=pa.string()))
    repeated = counted.field("values").filter(pc.greater(counted.field("counts"), 1))
    if len(repeated) == 0:
        return ids, geoms, keep
    taken = set(ids[kept].tolist())
    for value in repeated.to_pylist():
        rows = kept[ids[kept] == value]
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
    ids: np.ndarray, geoms: np.ndarray, keep: np.ndarray, report: StageReport
) -> np.ndarray:
    """Skip footprints identical to an earlier one (the same building digitised twice).

    Candidates are found by equal bounding boxes, then confirmed with an exact
    geometric comparison (vertex order and start do not matter).
    """
    kept = np.flatnonzero(keep)
    key = _row_hash(np.round(shapely.bounds(geoms[kept]), 9))
    order = np.argsort(key, kind="stable")
    same = np.flatnonzero(key[order][1:] == key[order][:-1])
    for group in np.unique(key[order][same]):
        rows = kept[np.flatnonzero(key == group)]
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


def _row_hash(values: np.ndarray) -> np.ndarray:
    """A 64-bit hash per row of a float array (equal rows, equal hashes)."""
    bits = np.ascontiguousarray(values).view(np.uint64)
    h = np.full(len(values), 0x9E3779B97F4A7C15, dtype=np.uint64)
    for k in range(bits.shape[1]):
        h = (h ^ bits[:, k]) * np.uint64(0x100000001B3)
    return h


def _heights(
    table: FeatureTable,
    cfg: BuildingsConfig,
    ids: np.ndarray,
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
    ids: np.ndarray,
    height: np.ndarray,
    floors: np.ndarray,
    from_floors: np.ndarray,
    fallback: np.ndarray,
    max_height: float,
) -> None:
    """One repair per building whose height came from its floors or the default.

    A third of a city may have floors only: one loop appends the entries (no
    ``report.repair`` call per building), in row order, and each distinct detail text
    is formatted once.
    """
    rows = np.flatnonzero(from_floors | fallback)
    if not len(rows):
        return
    values = height[rows]
    # NaN is never equal to itself, so never a dict key twice: "missing" keys them all
    missing = (~np.isfinite(values)).tolist()
    texts: dict[tuple[bool, float, float, bool], str] = {}
    entries = []
    for i, h, m, f, r in zip(
        ids[rows].tolist(),
        values.tolist(),
        missing,
        floors[rows].tolist(),
        from_floors[rows].tolist(),
        strict=True,
    ):
        key = (m, 0.0 if m else h, f if r else 0.0, r)
        detail = texts.get(key)
        if detail is None:
            why = "height missing" if m else _height_problem(h, max_height)
            detail = texts[key] = f"{why}; {f:g} floors" if r else f"{why}; no usable floors"
        reason = "height-from-floors" if r else "default-height"
        entries.append({"id": str(i), "reason": reason, "detail": detail})
    report.repaired.extend(entries)


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
