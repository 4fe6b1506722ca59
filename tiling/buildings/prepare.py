"""Footprints → a clean :class:`cim.model.Buildings` table.

Reads the ``[buildings]`` input, resolves its CRS, converts to WGS84 lon/lat, repairs
what can be repaired (invalid rings, duplicate vertices, Z, duplicate ids, missing or
absurd heights) and skips only what cannot be a building (no geometry, not a polygon,
slivers, coordinates off the Earth). Every repair and skip lands in the stage report
with the feature id and a reason code.

Reason codes (``build-report.json``):

=====================  ==========================================================
``no-geometry``        skipped: the feature has no geometry
``not-a-polygon``      skipped: point/line geometry
``bad-coordinates``    skipped: coordinates are not finite or not on the Earth
``sliver``             skipped: area below ``min_area`` or thinner than 0.5 m
``duplicate-feature``  skipped: same id and same geometry as an earlier feature
``invalid-geometry``   repaired with GEOS make_valid (structure method)
``duplicate-vertices`` repaired: repeated consecutive vertices removed
``multipolygon``       kept as one building (one feature id) with several parts
``z-dropped``          repaired: Z coordinates dropped (heights come from attributes)
``duplicate-id``       repaired: id made unique with a ``~n`` suffix
``missing-id``         repaired: id generated from the row number
``height-from-floors`` repaired: height missing/absurd, floors × floor_height used
``default-height``     repaired: neither height nor floors usable, default used
=====================  ==========================================================
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from cim.config import BuildingsConfig, CityProject
from cim.crs import parse_crs, to_lonlat
from cim.errors import CRSError, InputDataError
from cim.model import Buildings
from cim.readers import FeatureTable, read_features, to_float, to_text
from cim.report import StageReport

log = logging.getLogger(__name__)

POLYGONAL = (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON)
COLLECTION = shapely.GeometryType.GEOMETRYCOLLECTION
METRES_PER_DEGREE = 111_320.0
MAX_FLOORS = 200


def read_buildings(project: CityProject, report: StageReport) -> Buildings:
    """Read, repair and normalise the project's footprints.

    Parameters
    ----------
    project : CityProject
    report : StageReport
        Receives read count, repairs and skips.

    Returns
    -------
    Buildings
        Footprints in lon/lat with heights; ``base`` is left at 0 for the ground
        stage (:mod:`tiling.buildings.ground`) to fill.

    Raises
    ------
    CRSError, InputDataError, DatasetIOError
    """
    cfg = project.buildings
    assert cfg is not None
    table = read_features(
        cfg.path, layer=cfg.layer, encoding=cfg.encoding, wkt=cfg.wkt, x=cfg.x, y=cfg.y
    )
    report.read = len(table)
    crs = resolve_crs(table, cfg, project)
    ids = _ids(table, cfg, report)
    geoms, keep = _clean_geometry(table, ids, crs, report, cfg.min_area)
    ids, geoms, keep = _dedupe_ids(ids, geoms, keep, report)
    keep = _drop_duplicate_footprints(ids, geoms, keep, report)
    idx = np.flatnonzero(keep)
    if len(idx) == 0:
        raise InputDataError("no usable building footprint (see build-report.json)", path=cfg.path)
    n = len(table)
    height, floors = _heights(table, cfg, ids, keep, report)
    extra = {name: to_text(table.column(name), n)[idx] for name in cfg.extra}
    missing_extra = [name for name in cfg.extra if table.column(name) is None]
    if missing_extra:
        report.warn(f"{cfg.path.name}: extra column(s) {missing_extra} not found")
    buildings = Buildings(
        ids=ids[idx],
        footprints=geoms[idx],
        height=height[idx],
        floors=floors[idx],
        base=np.zeros(len(idx)),
        name=to_text(table.column(cfg.name), n)[idx],
        use=to_text(table.column(cfg.use), n)[idx],
        roof_type=to_text(table.column(cfg.roof_type), n)[idx],
        extra=extra,
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
    return buildings


def resolve_crs(table: FeatureTable, cfg: BuildingsConfig, project: CityProject) -> str:
    """The CRS to read ``table`` in: the file's, else city.toml's; checked against data.

    GCJ-02 / BD-09 can only be declared in city.toml (files never carry them).
    """
    declared = cfg.crs or project.crs
    crs = table.crs
    if declared and (crs is None or _is_special(declared)):
        crs = declared
    elif declared and crs and not parse_crs(declared).equals(parse_crs(crs)):
        log.warning(
            "%s declares its own CRS; [buildings] crs = %r is ignored", table.path.name, declared
        )
    if crs is None:
        raise CRSError(
            "the file carries no CRS; set [buildings] crs (or [city] crs) in city.toml, "
            f'e.g. "EPSG:4547"{_crs_hint(table)}',
            path=table.path,
        )
    _check_extent(table, crs)
    return crs


def _is_special(name: str) -> bool:
    from cim.crs import is_bd09, is_gcj02

    return is_gcj02(name) or is_bd09(name)


def _crs_hint(table: FeatureTable) -> str:
    b = shapely.total_bounds(table.geometry)
    if np.all(np.isfinite(b)) and b[0] >= -180 and b[2] <= 180 and b[1] >= -90 and b[3] <= 90:
        return " (the coordinates look like longitude/latitude: EPSG:4326 or EPSG:4490)"
    if np.all(np.isfinite(b)) and 1e7 < b[0] < 1e8:
        zone = int(b[0] // 1e6)
        return f" (x ≈ {b[0]:.0f} carries a zone prefix {zone}: a Gauss-Krüger zone CRS)"
    return ""


def _check_extent(table: FeatureTable, crs: str) -> None:
    """Refuse a CRS the coordinates clearly do not belong to."""
    b = shapely.total_bounds(table.geometry)
    if not np.all(np.isfinite(b)):
        return
    if _is_special(crs) or parse_crs(crs).is_geographic:
        if b[0] < -180.5 or b[2] > 180.5 or b[1] < -90.5 or b[3] > 90.5:
            raise CRSError(
                f"coordinates ({b[0]:.0f}, {b[1]:.0f}) are not degrees but the CRS {crs!r} "
                f"is geographic; the file's CRS is wrong or missing{_crs_hint(table)}",
                path=table.path,
            )
        return
    lon, lat = to_lonlat(np.array([b[0], b[2]]), np.array([b[1], b[3]]), crs)
    bad = ~np.isfinite(lon) | ~np.isfinite(lat) | (np.abs(lat) > 90) | (np.abs(lon) > 180)
    if np.any(bad):
        raise CRSError(
            f"coordinates ({b[0]:.0f}, {b[1]:.0f}) do not fit CRS {crs!r}{_crs_hint(table)}",
            path=table.path,
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
    table: FeatureTable, ids: np.ndarray, crs: str, report: StageReport, min_area: float
) -> tuple[np.ndarray, np.ndarray]:
    """Valid 2D lon/lat polygons, and the mask of features kept."""
    geoms = table.geometry.copy()
    keep = np.ones(len(geoms), dtype=bool)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    for i in np.flatnonzero(missing):
        report.skip(ids[i], "no-geometry")
    keep &= ~missing
    types = shapely.get_type_id(geoms)
    wrong = keep & ~np.isin(types, [int(t) for t in (*POLYGONAL, COLLECTION)])
    for i in np.flatnonzero(wrong):
        report.skip(ids[i], "not-a-polygon", shapely.get_type_id(geoms[i]).__str__())
    keep &= ~wrong
    has_z = keep & shapely.has_z(geoms)
    for i in np.flatnonzero(has_z):
        report.repair(ids[i], "z-dropped")
    geoms[has_z] = shapely.force_2d(geoms[has_z])
    kept = np.flatnonzero(keep)
    coords, owner = shapely.get_coordinates(geoms[kept], return_index=True)
    lon, lat = to_lonlat(coords[:, 0], coords[:, 1], crs)
    lonlat = np.column_stack([lon, lat])
    simple = (types[kept] == int(POLYGONAL[0])) & (shapely.get_num_interior_rings(geoms[kept]) == 0)
    # one pass sets the lon/lat coordinates and turns clockwise simple rings around;
    # polygons with holes and multipolygons are oriented by GEOS later
    lonlat = lonlat[_ccw_order(lonlat, owner, simple)]
    geoms[kept] = shapely.set_coordinates(geoms[kept].copy(), lonlat)
    off_earth = ~np.isfinite(lonlat).all(axis=1) | (np.abs(lat) > 90.0)
    bad = np.zeros(len(geoms), dtype=bool)
    bad[kept[np.unique(owner[off_earth])]] = True
    for i in np.flatnonzero(bad):
        report.skip(ids[i], "bad-coordinates", "coordinates are not on the Earth in WGS84")
    keep &= ~bad
    repeated = _has_repeated_points(lonlat, owner)
    complex_ = np.zeros(len(geoms), dtype=bool)
    complex_[kept[~simple]] = True
    geoms, keep = _repair_validity(geoms, keep, kept[repeated], complex_, ids, report)
    mean_lat = np.bincount(owner, weights=np.nan_to_num(lat), minlength=len(kept)) / np.maximum(
        np.bincount(owner, minlength=len(kept)), 1
    )
    lat_of = np.zeros(len(geoms))
    lat_of[kept] = mean_lat
    return geoms, _drop_slivers(geoms, keep, ids, report, min_area, lat_of)


def _ccw_order(lonlat: np.ndarray, owner: np.ndarray, simple: np.ndarray) -> np.ndarray:
    """Coordinate order that makes every simple ring counter-clockwise.

    ``owner`` maps coordinates to geometries (contiguous runs); ``simple`` marks the
    single-ring polygons, whose whole run is one closed ring that may be reversed.
    """
    n = len(simple)
    if len(owner) == 0:
        return np.arange(0)
    x, y = np.nan_to_num(lonlat[:, 0]), np.nan_to_num(lonlat[:, 1])
    same = owner[1:] == owner[:-1]
    x0, y0 = x - x[0], y - y[0]  # shift for precision of the cross products
    cross = x0[:-1] * y0[1:] - x0[1:] * y0[:-1]
    area2 = np.bincount(owner[:-1][same], weights=cross[same], minlength=n)
    flip = simple & (area2 < 0)
    order = np.arange(len(owner))
    if not flip.any():
        return order
    start = np.searchsorted(owner, np.arange(n))
    end = np.searchsorted(owner, np.arange(n), side="right")
    rev = flip[owner]
    order[rev] = (start + end - 1)[owner[rev]] - order[rev]
    return order


def _has_repeated_points(lonlat: np.ndarray, owner: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """Per geometry (in ``owner`` order): whether two consecutive vertices coincide.

    ``tol`` is ~1 mm in degrees: closer vertices are the same surveyed point.
    """
    n = int(owner.max()) + 1 if len(owner) else 0
    same = np.all(np.abs(np.diff(lonlat, axis=0)) <= tol, axis=1) & (owner[1:] == owner[:-1])
    out = np.zeros(n, dtype=bool)
    out[owner[1:][same]] = True
    return np.flatnonzero(out)


def _repair_validity(
    geoms: np.ndarray,
    keep: np.ndarray,
    repeated: np.ndarray,
    complex_: np.ndarray,
    ids: np.ndarray,
    report: StageReport,
) -> tuple[np.ndarray, np.ndarray]:
    """Remove repeated vertices, make invalid polygons valid, orient what needs it.

    ``complex_`` marks polygons with holes and multipolygons (not yet oriented).
    """
    orient = complex_.copy()
    repeated = repeated[keep[repeated]]
    geoms[repeated] = shapely.remove_repeated_points(geoms[repeated], tolerance=1e-8)
    for i in repeated:
        report.repair(ids[i], "duplicate-vertices")
    idx = np.flatnonzero(keep)
    invalid = idx[~shapely.is_valid(geoms[idx])]
    for i in invalid:
        reason = shapely.is_valid_reason(geoms[i])
        fixed = _polygonal_part(
            shapely.make_valid(geoms[i], method="structure", keep_collapsed=False)
        )
        if fixed is None:
            report.skip(ids[i], "invalid-geometry", f"{reason}; nothing polygonal left")
            keep[i] = False
        else:
            geoms[i] = fixed
            orient[i] = True
            report.repair(ids[i], "invalid-geometry", reason)
    # collections that were valid but mixed (polygon + line) keep their polygons
    coll = np.flatnonzero(keep & (shapely.get_type_id(geoms) == int(COLLECTION)))
    for i in coll:
        fixed = _polygonal_part(geoms[i])
        if fixed is None:
            report.skip(ids[i], "not-a-polygon", "collection without polygons")
            keep[i] = False
        else:
            geoms[i] = fixed
            orient[i] = True
    orient &= keep
    geoms[orient] = shapely.orient_polygons(geoms[orient], exterior_cw=False)
    return geoms, keep


def _polygonal_part(geom: shapely.Geometry) -> shapely.Geometry | None:
    parts = shapely.get_parts(geom)
    polys = [p for p in parts if shapely.get_type_id(p) in (3, 6) and not p.is_empty]
    flat = [q for p in polys for q in shapely.get_parts(p)]
    if not flat:
        return None
    return flat[0] if len(flat) == 1 else shapely.MultiPolygon(flat)


def _drop_slivers(
    geoms: np.ndarray,
    keep: np.ndarray,
    ids: np.ndarray,
    report: StageReport,
    min_area: float,
    lat: np.ndarray,
) -> np.ndarray:
    idx = np.flatnonzero(keep)
    cos_lat = np.cos(np.radians(lat[idx]))
    area = shapely.area(geoms[idx]) * METRES_PER_DEGREE * METRES_PER_DEGREE * cos_lat
    perimeter = shapely.length(geoms[idx]) * METRES_PER_DEGREE * np.sqrt(cos_lat)
    width = np.where(perimeter > 0, 2.0 * area / np.maximum(perimeter, 1e-9), 0.0)
    sliver = (area < min_area) | (width < 0.5)
    for j in np.flatnonzero(sliver):
        report.skip(ids[idx[j]], "sliver", f"area {area[j]:.2f} m², mean width {width[j]:.2f} m")
    keep[idx[sliver]] = False
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
                (j for j in rows[:k] if keep[j] and shapely.equals(geoms[i], geoms[j])), None
            )
            if twin is not None:
                report.skip(ids[i], "duplicate-footprint", f"same footprint as {ids[twin]}")
                keep[i] = False
    return keep


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
    floors = np.where(floors_ok, np.round(floors), np.nan)
    height_ok = np.isfinite(height) & (height > 0) & (height <= cfg.max_height)
    from_floors = keep & ~height_ok & floors_ok
    fallback = keep & ~height_ok & ~floors_ok
    for i in np.flatnonzero(from_floors | fallback):
        why = _height_problem(height[i], cfg.max_height)
        if from_floors[i]:
            report.repair(ids[i], "height-from-floors", f"{why}; {int(floors[i])} floors")
        else:
            report.repair(ids[i], "default-height", f"{why}; no usable floors")
    height = np.where(
        height_ok, height, np.where(floors_ok, floors * cfg.floor_height, cfg.default_height)
    )
    return height, floors


def _height_problem(value: float, max_height: float) -> str:
    if not np.isfinite(value):
        return "height missing"
    if value == 0:
        return "height 0"
    if value < 0:
        return f"height {value:g} m negative"
    return f"height {value:g} m above max_height {max_height:g}"
