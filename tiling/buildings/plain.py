"""The repair of plain footprints with numpy: one ring, nothing to repair.

Most footprints of a city are one ring of a few vertices that needs nothing but the
move to lon/lat and maybe the other orientation. For those the repair's GEOS route
(parse, transform, ``is_valid``, centroid, area, WKB; :func:`tiling.buildings.repair.
repair_chunk`) is mostly the cost of a GEOS object per footprint. Here the same
results are computed from the WKB's bytes with array operations
(:func:`tiling.buildings.ragged.wkb_to_ragged`): the figures follow GEOS's own
formulas in its order of operations (centroid, area, length), so a footprint gets the
same bytes and numbers whichever route it took, and the WKB is written as GEOS writes it.

A footprint takes this route only when the result is certain without GEOS: a Polygon
without holes whose ring is closed, of 4 points or more, on the Earth, without
repeated vertices, and valid, which is proved here for strictly convex rings (every
turn the same way and one turn around in all) and asked of GEOS (``is_valid`` alone)
for the others. Anything else (holes, multipolygons, collections, invalid or
degenerate rings) goes the GEOS route, which reports what it repairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import shapely

from cim.crs import safe_to_lonlat
from cim.model import WkbColumn
from tiling.buildings.footprints import FootprintArrays
from tiling.buildings.ragged import wkb_to_ragged
from tiling.buildings.rowhash import xxh3_hashes

#: the sine of the smallest turn at a vertex a ring proved convex here may make: a
#: nearly straight or nearly reversed vertex is left to GEOS's exact predicates
MIN_TURN_SINE = 1e-9
#: WKB of a Polygon (little-endian, one ring): byte order, type 3, one ring; then the
#: point count and the points
_HEADER = np.frombuffer(b"\x01\x03\x00\x00\x00\x01\x00\x00\x00", dtype=np.uint8)
_HEADER_BYTES = len(_HEADER) + 4


@dataclass(frozen=True)
class PlainRings:
    """The plain footprints of a chunk, in lon/lat and counter-clockwise.

    Attributes
    ----------
    rows : (k,) int64
        The chunk's rows that took this route, ascending.
    lonlat : (m, 2) float64
        Their rings' points one after another (each ring closed).
    starts : (k + 1,) int64
        Where each row's ring starts in ``lonlat`` (and where the last one ends).
    """

    rows: np.ndarray
    lonlat: np.ndarray
    starts: np.ndarray

    @property
    def owner(self) -> np.ndarray:
        """Per point, the position of its row in :attr:`rows`."""
        return np.repeat(np.arange(len(self.rows)), np.diff(self.starts))

    def take(self, index: np.ndarray) -> PlainRings:
        """The rows at positions ``index`` (ascending)."""
        counts = np.diff(self.starts)[index]
        starts = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        points = np.repeat(self.starts[:-1][index] - starts[:-1], counts) + np.arange(starts[-1])
        return PlainRings(self.rows[index], self.lonlat[points], starts)


def plain_rings(wkb: pa.Array, crs: str) -> PlainRings | None:
    """The array route's candidates among ``wkb`` (source CRS), in lon/lat.

    The one-ring polygons, closed, of 4 points or more, on the Earth and without
    repeated vertices, turned counter-clockwise; :func:`valid` tells which of them
    need no repair at all.

    Parameters
    ----------
    wkb : pyarrow.BinaryArray
        A repair task's footprints.
    crs : str
        Their CRS.

    Returns
    -------
    PlainRings or None
        None when the WKB is not all little-endian 2D polygons (the GEOS route takes
        the whole chunk then).
    """
    ragged = wkb_to_ragged(WkbColumn(wkb))
    if ragged is None:
        return None
    coords, ring_offsets, part_ring_offsets, part_building = ragged
    n = len(wkb)
    n_parts = np.bincount(part_building, minlength=n)
    first_part = np.zeros(n, dtype=np.int64)
    np.cumsum(n_parts[:-1], out=first_part[1:])
    part = np.minimum(first_part, len(part_ring_offsets) - 2)
    one_ring = (n_parts == 1) & (np.diff(part_ring_offsets)[part] == 1)
    ring = part_ring_offsets[part]
    start, end = ring_offsets[ring], ring_offsets[np.minimum(ring + 1, len(ring_offsets) - 1)]
    one_ring &= end - start >= 4
    rows = np.flatnonzero(one_ring)
    start, end = start[rows], end[rows]
    closed = np.all(coords[start] == coords[end - 1], axis=1)
    rows, start, end = rows[closed], start[closed], end[closed]
    counts = end - start
    starts = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    points = np.repeat(start - starts[:-1], counts) + np.arange(starts[-1])
    lon, lat = safe_to_lonlat(coords[points, 0], coords[points, 1], crs)
    rings = PlainRings(rows, np.column_stack([lon, lat]), starts)
    return _without_repairs(rings)


def _without_repairs(rings: PlainRings) -> PlainRings:
    """The rings on the Earth without repeated vertices, counter-clockwise."""
    owner = rings.owner
    k = len(rings.rows)
    lonlat = rings.lonlat
    bad = np.zeros(k, dtype=bool)
    bad[owner[~np.isfinite(lonlat).all(axis=1)]] = True
    bad[has_repeated_points(lonlat, owner, k)] = True
    order = ccw_order(lonlat, owner, np.ones(k, dtype=bool))
    rings = PlainRings(rings.rows, lonlat[order], rings.starts)
    return rings.take(np.flatnonzero(~bad))


def ccw_order(lonlat: np.ndarray, owner: np.ndarray, simple: np.ndarray) -> np.ndarray:
    """Coordinate order that makes every simple ring counter-clockwise.

    ``owner`` maps coordinates to geometries (contiguous runs); ``simple`` marks the
    single-ring polygons, whose whole run is one closed ring that may be reversed.
    """
    n = len(simple)
    if len(owner) == 0:
        return np.arange(0)
    start = np.searchsorted(owner, np.arange(n))
    end = np.searchsorted(owner, np.arange(n), side="right")
    x, y = np.nan_to_num(lonlat[:, 0]), np.nan_to_num(lonlat[:, 1])
    first = start[owner]
    # shifted to each ring's first vertex for precision of the cross products (and
    # so a ring's orientation does not depend on which rows share its chunk)
    x0, y0 = x - x[first], y - y[first]
    same = owner[1:] == owner[:-1]
    cross = x0[:-1] * y0[1:] - x0[1:] * y0[:-1]
    area2 = np.bincount(owner[:-1][same], weights=cross[same], minlength=n)
    flip = simple & (area2 < 0)
    order = np.arange(len(owner))
    if not flip.any():
        return order
    rev = flip[owner]
    order[rev] = (start + end - 1)[owner[rev]] - order[rev]
    return order


def has_repeated_points(
    lonlat: np.ndarray, owner: np.ndarray, n: int, tol: float = 1e-8
) -> np.ndarray:
    """Indices of the ``n`` geometries (``owner`` order) with two coinciding vertices.

    ``tol`` is ~1 mm in degrees: closer vertices are the same surveyed point.
    """
    same = np.all(np.abs(np.diff(lonlat, axis=0)) <= tol, axis=1) & (owner[1:] == owner[:-1])
    out = np.zeros(n, dtype=bool)
    out[owner[1:][same]] = True
    return np.flatnonzero(out)


def convex(rings: PlainRings) -> np.ndarray:
    """Per row, whether its (counter-clockwise) ring is strictly convex, which makes it
    a valid polygon: every vertex turns left by more than :data:`MIN_TURN_SINE` and the
    turns add up to one turn around (a star polygon turns left everywhere too, twice
    around)."""
    k = len(rings.rows)
    if k == 0:
        return np.zeros(0, dtype=bool)
    lonlat, starts = rings.lonlat, rings.starts
    # edges of each ring (its last point closes it); edge i + 1 follows edge i, the
    # ring's first edge follows its last
    edge = np.diff(lonlat, axis=0)
    last = starts[1:] - 1
    is_edge = np.ones(len(edge), dtype=bool)
    is_edge[last[:-1]] = False  # the step from a ring's last point to the next ring's first
    index = np.flatnonzero(is_edge)
    ring_of = np.repeat(np.arange(k), np.diff(starts) - 1)
    nxt = index + 1
    wrap = nxt == last[ring_of]
    nxt[wrap] = starts[:-1][ring_of[wrap]]
    a, b = edge[index], edge[nxt]
    cross = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    dot = a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1]
    norms = np.hypot(a[:, 0], a[:, 1]) * np.hypot(b[:, 0], b[:, 1])
    with np.errstate(invalid="ignore"):
        left = cross > MIN_TURN_SINE * norms
    turning = np.bincount(ring_of, weights=np.arctan2(cross, dot), minlength=k)
    all_left = np.bincount(ring_of, weights=(~left).astype(np.float64), minlength=k) == 0
    return all_left & (np.abs(turning - 2 * np.pi) < 1e-6)


def valid(rings: PlainRings) -> np.ndarray:
    """Per row, whether its ring is a valid polygon: :func:`convex`, else GEOS's
    ``is_valid`` of the polygon built from the ring."""
    ok = convex(rings)
    other = np.flatnonzero(~ok)
    if len(other):
        sub = rings.take(other)
        polygons = shapely.polygons(shapely.linearrings(sub.lonlat, indices=sub.owner))
        ok[other] = shapely.is_valid(polygons)
    return ok


@dataclass(frozen=True)
class RingMeasures:
    """GEOS's area and length (degrees) and mean latitude of each ring."""

    area: np.ndarray
    length: np.ndarray
    mean_lat: np.ndarray


def measures(rings: PlainRings) -> RingMeasures:
    """Area (GEOS ``Area::ofRing``: the shoelace from the first point), length (GEOS
    ``Length::ofLine``) and the mean latitude of the points, per row, summed in
    GEOS's order."""
    k = len(rings.rows)
    lonlat, starts = rings.lonlat, rings.starts
    owner = rings.owner
    x, y = lonlat[:, 0], lonlat[:, 1]
    first = starts[:-1][owner]
    pos = np.arange(len(owner))
    # the inner points of each ring: sum += (x[i] - x0) * (y[i - 1] - y[i + 1])
    inner = (pos > first) & (pos < starts[1:][owner] - 1)
    i = pos[inner]
    term = (x[i] - x[first[inner]]) * (y[i - 1] - y[i + 1])
    area = np.abs(np.bincount(owner[inner], weights=term, minlength=k) / 2.0)
    step = np.flatnonzero(pos > first)
    dx, dy = x[step] - x[step - 1], y[step] - y[step - 1]
    length = np.bincount(owner[step], weights=np.sqrt(dx * dx + dy * dy), minlength=k)
    mean_lat = np.bincount(owner, weights=y, minlength=k) / np.diff(starts)
    return RingMeasures(area, length, mean_lat)


def figures(rings: PlainRings, area: np.ndarray) -> FootprintArrays:
    """The figures of the rows' polygons (``area``: :func:`measures`), WKB as Arrow."""
    wkb = polygon_wkb(rings)
    vertices = np.diff(rings.starts)
    lonlat = rings.lonlat
    first = rings.starts[:-1]
    bounds = (
        np.column_stack(
            [
                np.minimum.reduceat(lonlat[:, 0], first),
                np.minimum.reduceat(lonlat[:, 1], first),
                np.maximum.reduceat(lonlat[:, 0], first),
                np.maximum.reduceat(lonlat[:, 1], first),
            ]
        )
        if len(first)
        else np.zeros((0, 4))
    )
    return FootprintArrays(
        WkbColumn(wkb),
        centroids(rings),
        bounds,
        area,
        vertices.astype(np.int64),
        np.full(len(vertices), 3, dtype=np.int8),
        np.zeros(len(vertices), dtype=np.int32),
        xxh3_hashes(wkb.to_numpy(zero_copy_only=False)),
    )


def centroids(rings: PlainRings) -> np.ndarray:
    """GEOS's centroid of each (counter-clockwise, non-degenerate) polygon: triangles
    from the ring's first point, their area-weighted centres summed in ring order."""
    k = len(rings.rows)
    lonlat, starts = rings.lonlat, rings.starts
    owner = rings.owner
    pos = np.arange(len(owner))
    # triangle (base, p[i], p[i + 1]) for each point i but the ring's last
    tri = np.flatnonzero(pos < starts[1:][owner] - 1)
    base = lonlat[starts[:-1][owner[tri]]]
    p1, p2 = lonlat[tri], lonlat[tri + 1]
    area2 = (p1[:, 0] - base[:, 0]) * (p2[:, 1] - base[:, 1]) - (p2[:, 0] - base[:, 0]) * (
        p1[:, 1] - base[:, 1]
    )
    # GEOS weighs a counter-clockwise shell's triangles by -area2 (isPositiveArea false)
    weight = -area2
    who = owner[tri]
    cx = np.bincount(who, weights=weight * (base[:, 0] + p1[:, 0] + p2[:, 0]), minlength=k)
    cy = np.bincount(who, weights=weight * (base[:, 1] + p1[:, 1] + p2[:, 1]), minlength=k)
    total = np.bincount(who, weights=weight, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.column_stack([cx / 3 / total, cy / 3 / total])


def polygon_wkb(rings: PlainRings) -> pa.BinaryArray:
    """Little-endian 2D WKB of each row's one-ring polygon, as GEOS writes it."""
    counts = np.diff(rings.starts)
    sizes = _HEADER_BYTES + 16 * counts
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    raw = np.empty(int(offsets[-1]) + 16, dtype=np.uint8)  # + 16: every view fits
    header = np.empty((len(counts), _HEADER_BYTES), dtype=np.uint8)
    header[:, : len(_HEADER)] = _HEADER
    header[:, len(_HEADER) :] = counts.astype("<u4").view(np.uint8).reshape(-1, 4)
    _at_every_byte(raw, f"V{_HEADER_BYTES}")[offsets[:-1]] = header.view(f"V{_HEADER_BYTES}")[:, 0]
    points = np.ascontiguousarray(rings.lonlat, dtype="<f8").view("V16")[:, 0]
    at = np.repeat(offsets[:-1] + _HEADER_BYTES - 16 * rings.starts[:-1], counts)
    at += 16 * np.arange(len(points))
    _at_every_byte(raw, "V16")[at] = points
    raw = raw[: offsets[-1]]
    kind = pa.large_binary() if offsets[-1] >= 2**31 else pa.binary()
    width = np.int64 if kind == pa.large_binary() else np.int32
    return pa.Array.from_buffers(
        kind, len(counts), [None, pa.py_buffer(offsets.astype(width)), pa.py_buffer(raw)]
    )


def _at_every_byte(raw: np.ndarray, dtype: str) -> np.ndarray:
    """A view of ``raw`` whose element i is the ``dtype`` value at byte i: values are
    written at any byte offset in one scatter (numpy handles unaligned elements)."""
    size = np.dtype(dtype).itemsize
    return np.ndarray((len(raw) - size + 1,), dtype=dtype, buffer=raw, strides=(1,))
