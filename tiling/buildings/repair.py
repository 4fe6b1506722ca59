"""Geometry repair of the footprints, chunk by chunk, on the build's executor.

The per-row part of :mod:`tiling.buildings.prepare` (to lon/lat, ring orientation,
repeated vertices, validity, slivers, then the centroid and the WKB the partitions
keep) is the bulk of the buildings stage's CPU, and every row's outcome depends on
that row alone. So the build process cuts the rows that survived the whole-city
checks (CRS, ids) into row ranges of :data:`CHUNK` and runs :func:`repair_chunk` on
each through the executor: small picklable :class:`RepairTask` s (the footprints as
WKB), results as WKB and centroids. Within a chunk, plain footprints (one valid ring)
are done with arrays (:mod:`tiling.buildings.plain`), the others with GEOS, with the
same result for a footprint either way.

The report stays the same wherever the chunks ran, and the same as one pass over the
city: each chunk's entries are records of their *phase* (off-Earth coordinates, repeated
vertices, validity, collections, orientation, slivers) and row, merged phase by phase
in row order (:func:`merge_records`), which is the order one pass
writes them in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import shapely

from cim.crs import safe_to_lonlat
from cim.model import ArrowText, WkbColumn, as_wkb_arrow, text_arrow
from cim.readers import FEATURE_ERRORS, apply_per_feature
from cim.report import StageReport, entry
from tiling.buildings.footprints import FootprintArrays
from tiling.buildings.plain import (
    PlainRings,
    ccw_order,
    has_repeated_points,
    measures,
    plain_rings,
    valid,
)
from tiling.buildings.plain import figures as plain_figures

POLYGON = int(shapely.GeometryType.POLYGON)
MULTIPOLYGON = int(shapely.GeometryType.MULTIPOLYGON)
COLLECTION = int(shapely.GeometryType.GEOMETRYCOLLECTION)
METRES_PER_DEGREE = 111_320.0
#: rows per task: big enough that a task's overhead (WKB both ways, a pickle) is
#: small, small enough that two workers get several each at 1,000,000 buildings
CHUNK = 50_000
#: the phases of one pass, in the order their report entries are written
PHASES = ("off-earth", "repeated", "validity", "collections", "orient", "slivers")
SLIVERS = PHASES.index("slivers")


@dataclass(frozen=True)
class RepairTask:
    """One row range of footprints to repair (all of them passed the city-wide checks).

    Attributes
    ----------
    index : int
        The chunk's position (results are put back in this order).
    ids : pyarrow.StringArray
        Feature ids, for the report.
    wkb : pyarrow.BinaryArray
        Footprints in the source CRS (2D) as WKB.
    crs : str
        The resolved source CRS (:attr:`cim.crs.ResolvedCRS.crs`).
    min_area : float
        ``[buildings] min_area`` in m².

    Notes
    -----
    The ids and WKB travel as Arrow: pickled as a few buffers, where an object array
    of 50,000 values pickles value by value (about three times the time, in the build
    process, which sends all of them).
    """

    index: int
    ids: pa.StringArray
    wkb: pa.BinaryArray
    crs: str
    min_area: float


#: One report entry of the repair: (phase, row, "s" skipped or "r" repaired, the entry).
#: Sorted by phase and row, records give one pass's report order.
Record = tuple[int, int, str, dict[str, str]]


class _Phase:
    """Writes one phase's report entries as records of the chunk's rows."""

    def __init__(self, phase: int, ids: np.ndarray, out: list[Record]) -> None:
        self.phase, self.ids, self.out = phase, ids, out

    def skip(self, row: int, reason: str, detail: str = "") -> None:
        self.out.append((self.phase, int(row), "s", entry(self.ids[row], reason, detail)))

    def repair(self, row: int, reason: str, detail: str = "") -> None:
        self.out.append((self.phase, int(row), "r", entry(self.ids[row], reason, detail)))


@dataclass(frozen=True)
class RepairResult:
    """What :func:`repair_chunk` returns for one :class:`RepairTask`.

    Attributes
    ----------
    index : int
    keep : ndarray of bool
        The rows that are still a building.
    footprints : FootprintArrays
        The repaired lon/lat footprints of the kept rows (2D WKB, as the partitions
        store them) and their figures: centroids, bounds, areas, vertex counts.
    records : list of Record
        The report entries, rows counted in the chunk (:func:`city_records`).
    """

    index: int
    keep: np.ndarray
    footprints: FootprintArrays
    records: list[Record]


def tasks(
    ids: np.ndarray | ArrowText,
    geoms: np.ndarray,
    crs: str,
    min_area: float,
    chunk: int = CHUNK,
    stored: np.ndarray | WkbColumn | None = None,
) -> Iterator[RepairTask]:
    """The rows cut into :class:`RepairTask` s, encoded lazily (one window in memory).

    Consumes ``geoms``: each chunk's geometries are released (set to None) once they
    travel as WKB, so the source and the repaired city are not both held whole.
    ``stored`` gives, per row, WKB that parses to exactly that geometry (the source's
    own, when reading changed nothing) or None: such rows are not encoded again. An
    object array of ``bytes`` is consumed too; Arrow binary (a
    :class:`~cim.model.WkbColumn`, null where None) is gathered a chunk at a time and
    goes into the task as it is: no Python ``bytes`` per row; the column is consumed
    (:meth:`~cim.model.WkbColumn.consume`: its chunks freed as the rows pass them).
    """
    # Arrow: the source's chunks are let go as the rows pass them
    pieces = stored.consume(chunk) if isinstance(stored, WkbColumn) else None
    for index, start in enumerate(range(0, len(geoms), chunk)):
        part = slice(start, start + chunk)
        if stored is None:
            wkb = pa.array(shapely.to_wkb(geoms[part]), pa.binary())
        elif pieces is not None:
            wkb = _with_encoded(next(pieces), geoms[part])
        else:
            values = stored[part].copy()
            stored[part] = None
            encode = np.flatnonzero(np.equal(values, None))
            values[encode] = shapely.to_wkb(geoms[part][encode])
            wkb = pa.array(values, pa.binary())
        if geoms.flags.writeable:  # not an unparsed view (:func:`cim.readers.unparsed`)
            geoms[part] = None
        # a copy of the part's ids, not a slice: a pickled Arrow slice carries the
        # whole column's buffers (140 MB of ten million ids in every task)
        yield RepairTask(index, pa.concat_arrays([text_arrow(ids[part])]), wkb, crs, min_area)


def _with_encoded(wkb: pa.Array | pa.ChunkedArray, geoms: np.ndarray) -> pa.BinaryArray:
    """Arrow binary ``wkb`` as one array, its nulls filled with ``geoms``' WKB (the
    rows whose stored WKB could not be sent); the other values are not copied to
    Python."""
    if isinstance(wkb, pa.ChunkedArray):
        wkb = wkb.combine_chunks()
    if not wkb.null_count:
        return wkb
    encode = np.flatnonzero(np.asarray(wkb.is_null()).astype(bool))
    encoded = pa.array(shapely.to_wkb(geoms[encode]), pa.binary())
    # the encoded rows appended, each row taken from where its value is
    order = np.arange(len(wkb), dtype=np.int64)
    order[encode] = len(wkb) + np.arange(len(encode))
    return pa.concat_arrays([wkb, encoded]).take(pa.array(order))


def repair_chunk(task: RepairTask) -> RepairResult:
    """Repair one chunk: lon/lat, orientation, repeated vertices, validity, slivers.

    Plain footprints (one ring that needs no repair, :mod:`tiling.buildings.plain`) are
    done with array operations, the others with GEOS (:func:`repair_geometries`); both
    give a footprint the same result. A pure function of the task (no worker state),
    so the result is the same in the build process, a pool worker or on Dask.
    """
    n = len(task.wkb)
    rings = plain_rings(task.wkb, task.crs)
    if rings is None:  # not all little-endian 2D polygons: GEOS reads them
        keep, figures, found = repair_geometries(
            task.ids.to_numpy(zero_copy_only=False), task.wkb, task.crs, task.min_area
        )
        return RepairResult(task.index, keep, figures, found)
    plain = _repair_plain(task, rings.take(np.flatnonzero(valid(rings))))
    rest = np.setdiff1d(np.arange(n), plain.decided, assume_unique=True)
    other_keep, other, other_found = repair_geometries(
        task.ids.take(pa.array(rest)).to_numpy(zero_copy_only=False),
        task.wkb.take(pa.array(rest)),
        task.crs,
        task.min_area,
    )
    keep = np.zeros(n, dtype=bool)
    keep[plain.kept] = True
    keep[rest[other_keep]] = True
    found = plain.found + [(phase, int(rest[r]), kind, e) for phase, r, kind, e in other_found]
    merged = _merged([(plain.kept, plain.figures), (rest[other_keep], other)])
    return RepairResult(task.index, keep, merged, found)


@dataclass(frozen=True)
class _PlainRepair:
    """The array route's part of a chunk: the rows it decided, those it kept (with
    their figures) and its report records (slivers)."""

    decided: np.ndarray
    kept: np.ndarray
    figures: FootprintArrays
    found: list[Record]


def _repair_plain(task: RepairTask, rings: PlainRings) -> _PlainRepair:
    """Valid plain ``rings`` of ``task``: slivers skipped, the others' figures."""
    measured = measures(rings)
    sliver, details = slivers(measured.area, measured.length, measured.mean_lat, task.min_area)
    found: list[Record] = []
    for j in np.flatnonzero(sliver):
        row = int(rings.rows[j])
        found.append((SLIVERS, row, "s", entry(task.ids[row].as_py(), "sliver", details(j))))
    kept = np.flatnonzero(~sliver)
    good = rings.take(kept)
    return _PlainRepair(rings.rows, good.rows, plain_figures(good, measured.area[kept]), found)


def _merged(parts: list[tuple[np.ndarray, FootprintArrays]]) -> FootprintArrays:
    """The figures of ``parts`` (rows, their figures) in row order, WKB as Arrow."""
    rows = np.concatenate([r for r, _ in parts])
    order = pa.array(np.argsort(rows, kind="stable"))
    wkb = pa.concat_arrays([as_wkb_arrow(f.wkb) for _, f in parts]).take(order)
    order = order.to_numpy()
    fields = {
        name: np.concatenate([getattr(f, name) for _, f in parts])[order]
        for name in ("centres", "bounds", "areas", "vertices", "kinds", "holes", "hashes")
    }
    return FootprintArrays(WkbColumn(wkb), **fields)


def repair_geometries(
    ids: np.ndarray, wkb: pa.Array, crs: str, min_area: float
) -> tuple[np.ndarray, FootprintArrays, list[Record]]:
    """The GEOS route of :func:`repair_chunk`: any footprint, repaired and reported.

    Returns the rows kept, their figures (WKB as Arrow) and the report records.
    """
    found: list[Record] = []
    phases = [_Phase(k, ids, found) for k in range(len(PHASES))]
    geoms = _unwrapped(shapely.from_wkb(wkb.to_numpy(zero_copy_only=False)))
    n = len(geoms)
    keep = np.ones(n, dtype=bool)
    coords, owner = shapely.get_coordinates(geoms, return_index=True)
    lon, lat = safe_to_lonlat(coords[:, 0], coords[:, 1], crs)
    lonlat = np.column_stack([lon, lat])
    simple = (shapely.get_type_id(geoms) == POLYGON) & (shapely.get_num_interior_rings(geoms) == 0)
    # one pass sets the lon/lat coordinates and turns clockwise simple rings around;
    # polygons with holes and multipolygons are oriented by GEOS later
    lonlat = lonlat[ccw_order(lonlat, owner, simple)]
    geoms = shapely.set_coordinates(geoms, lonlat)
    off_earth = ~np.isfinite(lonlat).all(axis=1) | (np.abs(lonlat[:, 1]) > 90.0)
    bad = np.zeros(n, dtype=bool)
    bad[np.unique(owner[off_earth])] = True
    for i in np.flatnonzero(bad):
        phases[0].skip(i, "bad-coordinates", "coordinates are not on the Earth in WGS84")
    keep &= ~bad
    orient = ~simple
    _remove_repeated(geoms, keep, has_repeated_points(lonlat, owner, n), phases[1])
    _make_all_valid(geoms, keep, orient, phases[2])
    _keep_collection_polygons(geoms, keep, orient, phases[3])
    _orient(geoms, keep, orient, phases[4])
    mean_lat = np.bincount(owner, weights=np.nan_to_num(lat), minlength=n) / np.maximum(
        np.bincount(owner, minlength=n), 1
    )
    _drop_slivers(geoms, keep, phases[5], min_area, mean_lat)
    figures = FootprintArrays.of(geoms[keep])
    # the WKB goes back as one Arrow buffer: the build process unpickles it without
    # making a Python object per footprint, and passes it on to the partitions as it is
    figures = dataclasses.replace(figures, wkb=WkbColumn(pa.array(figures.wkb, pa.binary())))
    return keep, figures, found


def _unwrapped(geoms: np.ndarray) -> np.ndarray:
    """One-part MultiPolygons as the Polygon they are, nothing to report (the build
    process unwraps those it parses; WKB it only scanned comes as stored)."""
    types = shapely.get_type_id(geoms)
    single = (types == MULTIPOLYGON) & (shapely.get_num_geometries(geoms) == 1)
    if single.any():
        geoms[single] = shapely.get_geometry(geoms[single], 0)
    return geoms


def city_records(found: list[Record], rows: np.ndarray) -> list[Record]:
    """A chunk's records with its rows mapped to the city's (``rows``)."""
    return [(phase, int(rows[r]), kind, e) for phase, r, kind, e in found]


def merge_records(found: list[Record], report: StageReport) -> None:
    """Add ``found`` to ``report`` in the order one pass writes them: phase by phase,
    rows in order (entries of one row keep their order)."""
    for _, _, kind, item in sorted(found, key=lambda r: (r[0], r[1])):
        (report.skipped if kind == "s" else report.repaired).append(item)


def _remove_repeated(
    geoms: np.ndarray, keep: np.ndarray, repeated: np.ndarray, report: _Phase
) -> None:
    """Remove vertices within 1 mm of the previous one (in place)."""
    repeated = repeated[keep[repeated]]
    fixed, errors = apply_per_feature(shapely.remove_repeated_points, geoms[repeated], 1e-8)
    ok = np.ones(len(repeated), dtype=bool)
    for k, message in errors.items():  # every vertex within 1 mm: nothing of a building left
        report.skip(repeated[k], "sliver", f"collapses when 1 mm duplicates go ({message})")
        keep[repeated[k]] = False
        ok[k] = False
    geoms[repeated[ok]] = fixed[ok]
    for i in repeated[ok]:
        report.repair(i, "duplicate-vertices")


def _make_all_valid(
    geoms: np.ndarray, keep: np.ndarray, orient: np.ndarray, report: _Phase
) -> None:
    """GEOS make_valid for the invalid ones (in place); ``orient`` marks what changed."""
    idx = np.flatnonzero(keep)
    valid, _ = apply_per_feature(shapely.is_valid, geoms[idx], fill=False)
    for i in idx[~valid.astype(bool)]:
        reason = _valid_reason(geoms[i])
        fixed_one = _make_valid(geoms[i])
        if fixed_one is None:
            report.skip(i, "invalid-geometry", f"{reason}; nothing polygonal left")
            keep[i] = False
        else:
            geoms[i] = fixed_one
            orient[i] = True
            report.repair(i, "invalid-geometry", reason)


def _keep_collection_polygons(
    geoms: np.ndarray, keep: np.ndarray, orient: np.ndarray, report: _Phase
) -> None:
    """Collections that were valid but mixed (polygon + line) keep their polygons."""
    coll = np.flatnonzero(keep & (shapely.get_type_id(geoms) == COLLECTION))
    for i in coll:
        part = _polygonal_part(geoms[i])
        if part is None:
            report.skip(i, "not-a-polygon", "collection without polygons")
            keep[i] = False
        else:
            geoms[i] = part
            orient[i] = True
            report.repair(i, "invalid-geometry", "polygons kept from a GeometryCollection")


def _orient(geoms: np.ndarray, keep: np.ndarray, orient: np.ndarray, report: _Phase) -> None:
    """Counter-clockwise shells for what the coordinate pass did not orient."""
    rows = np.flatnonzero(orient & keep)
    oriented, errors = apply_per_feature(shapely.orient_polygons, geoms[rows], exterior_cw=False)
    ok = np.ones(len(rows), dtype=bool)
    for k, message in errors.items():  # only the few GEOS refused: the rest in one go
        report.skip(rows[k], "invalid-geometry", message)
        keep[rows[k]] = False
        ok[k] = False
    geoms[rows[ok]] = oriented[ok]


def _valid_reason(geom: shapely.Geometry) -> str:
    try:
        return str(shapely.is_valid_reason(geom))
    except FEATURE_ERRORS as exc:
        return " ".join(str(exc).split())


def _make_valid(geom: shapely.Geometry) -> shapely.Geometry | None:
    """GEOS make_valid (structure method) reduced to its polygons; None if none."""
    try:
        return _polygonal_part(shapely.make_valid(geom, method="structure", keep_collapsed=False))
    except FEATURE_ERRORS:
        return None


def _polygonal_part(geom: shapely.Geometry) -> shapely.Geometry | None:
    parts = shapely.get_parts(geom)
    polys = [
        p for p in parts if shapely.get_type_id(p) in (POLYGON, MULTIPOLYGON) and not p.is_empty
    ]
    flat = [q for p in polys for q in shapely.get_parts(p)]
    if not flat:
        return None
    return flat[0] if len(flat) == 1 else shapely.MultiPolygon(flat)


def _drop_slivers(
    geoms: np.ndarray,
    keep: np.ndarray,
    report: _Phase,
    min_area: float,
    lat: np.ndarray,
) -> None:
    """Skip what is thinner than 0.5 m or smaller than ``min_area`` (in place)."""
    idx = np.flatnonzero(keep)
    sliver, details = slivers(
        shapely.area(geoms[idx]), shapely.length(geoms[idx]), lat[idx], min_area
    )
    for j in np.flatnonzero(sliver):
        report.skip(idx[j], "sliver", details(j))
    keep[idx[sliver]] = False


def slivers(
    area: np.ndarray, length: np.ndarray, lat: np.ndarray, min_area: float
) -> tuple[np.ndarray, Callable[[int], str]]:
    """Which footprints are thinner than 0.5 m or smaller than ``min_area``.

    Parameters
    ----------
    area, length : ndarray
        Each footprint's area and perimeter in (square) degrees.
    lat : ndarray
        Its mean latitude.
    min_area : float
        In m².

    Returns
    -------
    (mask, detail)
        The slivers, and the report's detail of footprint ``j``.
    """
    cos_lat = np.cos(np.radians(lat))
    area = area * METRES_PER_DEGREE * METRES_PER_DEGREE * cos_lat
    perimeter = length * METRES_PER_DEGREE * np.sqrt(cos_lat)
    width = np.where(perimeter > 0, 2.0 * area / np.maximum(perimeter, 1e-9), 0.0)

    def detail(j: int) -> str:
        return f"area {area[j]:.2f} m², mean width {width[j]:.2f} m"

    return (area < min_area) | (width < 0.5), detail
