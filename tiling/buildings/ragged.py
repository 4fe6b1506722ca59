"""2D WKB footprints → ragged coordinate arrays, parsed with numpy.

The L2 tile tasks carry their footprints as WKB. Turning them into shapely
geometries and back into ragged arrays (``shapely.from_wkb`` then
``shapely.to_ragged_array``, which builds one Python object per ring) cost about a
sixth of a tile's encoding; the WKB headers say all that is needed. Polygons and
multipolygons in little-endian 2D WKB (what the buildings stage writes) are read
here in a few vectorised passes (one per ring or part index, not per building);
anything else (big-endian, Z/M, other types) returns ``None`` and the caller takes
the shapely route. The result is exactly the one of ``to_ragged_array`` over the
footprints' polygon parts, in the same order.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from cim.model import WkbColumn

_POLYGON, _MULTIPOLYGON = 3, 6
_PADDING = bytes(16)
#: the offsets' dtype of each Arrow binary type read from its buffers
_BINARY_OFFSETS = {pa.binary(): np.int32, pa.large_binary(): np.int64}


def wkb_to_ragged(
    wkb: np.ndarray | WkbColumn,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Coordinates and offsets of 2D WKB polygons/multipolygons, or ``None``.

    Parameters
    ----------
    wkb : (n,) object array of bytes, or a :class:`cim.model.WkbColumn`
        Little-endian 2D WKB Polygons or MultiPolygons.

    Returns
    -------
    (coords, ring_offsets, part_ring_offsets, part_building) or None
        ``coords`` (m, 2) float64; ``ring_offsets`` (r + 1,) start of each ring in
        ``coords``; ``part_ring_offsets`` (p + 1,) start of each polygon's rings;
        ``part_building`` (p,) the footprint of each polygon. ``None`` when a
        footprint is not of that kind (or the bytes do not add up).
    """
    joined = _joined(wkb)
    if joined is None:
        return None
    raw, lengths = joined
    n = len(lengths)
    if lengths.min() < 9:
        return None
    words = _every_byte(raw, "<u4")
    start = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1], out=start[1:])
    kind = _u32(words, start + 1)
    if np.any(raw[start] != 1) or not np.all((kind == _POLYGON) | (kind == _MULTIPOLYGON)):
        return None
    multi = kind == _MULTIPOLYGON
    any_multi = bool(multi.any())
    n_parts = np.where(multi, _u32(words, start + 5), 1)
    if np.any(n_parts * 9 > lengths):  # each part takes 9 bytes or more: not WKB we wrote
        return None
    # polygon headers: a polygon's own, or a multipolygon's parts one after another
    cursor = np.where(multi, start + 9, start)
    end = start + lengths
    parts_geom, rings = [], []
    geoms = np.arange(n)
    for p in range(int(n_parts.max())):
        active = np.flatnonzero(n_parts > p)
        at = cursor[active]
        if np.any(at + 9 > end[active]):
            return None
        # a polygon's own header was read above; a multipolygon's parts' are read here
        if any_multi and np.any((raw[at] != 1) | (_u32(words, at + 1) != _POLYGON)):
            return None
        parts_geom.append(geoms[active])
        stop, ring_list = _rings(words, at, end[active])
        if stop is None:
            return None
        rings.append(ring_list)
        cursor[active] = stop
    if np.any(cursor != end):
        return None
    return _assemble(raw, n_parts, parts_geom, rings)


def _joined(wkb: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """All values' bytes one after another, then :data:`_PADDING` (every 4- or 16-byte
    read stays inside the buffer), and each value's length; None when there is no
    value or one is missing (None). An Arrow-backed column (:class:`cim.model.WkbColumn`,
    as the L2 tile tasks carry it) is read from its buffers: no ``bytes`` per value."""
    arrow = getattr(wkb, "arrow", None)
    if arrow is not None:
        return _arrow_joined(arrow)
    items = wkb.tolist()
    if not items:
        return None
    try:
        lengths = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
    except TypeError:  # a missing footprint (None), or not bytes
        return None
    items.append(_PADDING)
    return np.frombuffer(b"".join(items), dtype=np.uint8), lengths


def _arrow_joined(arrow: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`_joined` of an Arrow binary array."""
    if isinstance(arrow, pa.ChunkedArray):
        arrow = arrow.combine_chunks()
    if not len(arrow) or arrow.null_count or arrow.type not in _BINARY_OFFSETS:
        return None
    _, offsets_buffer, data = arrow.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=_BINARY_OFFSETS[arrow.type])
    offsets = offsets[arrow.offset : arrow.offset + len(arrow) + 1].astype(np.int64)
    if data is None:  # every value empty
        return None
    values = np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]]
    raw = np.concatenate([values, np.frombuffer(_PADDING, dtype=np.uint8)])
    return raw, np.diff(offsets)


def _every_byte(raw: np.ndarray, dtype: str) -> np.ndarray:
    """A read-only view of ``raw`` whose element i is the ``dtype`` value at byte i.

    WKB values sit at any byte offset: a one-byte stride reads each in one gather
    (numpy handles the unaligned elements), without copying the buffer.
    """
    size = np.dtype(dtype).itemsize
    view = np.ndarray((len(raw) - size + 1,), dtype=dtype, buffer=raw, strides=(1,))
    view.flags.writeable = False
    return view


def _u32(words: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Little-endian uint32 at each byte offset ``at`` (``words``: :func:`_every_byte`)."""
    return words[at].astype(np.int64)


def _rings(
    words: np.ndarray, at: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray | None, list[tuple[np.ndarray, int, np.ndarray, np.ndarray]]]:
    """Rings of the polygons whose headers are at ``at``: one pass per ring index.

    Returns where each polygon ends and, per ring index k, (polygons having it,
    k, first coordinate byte, coordinate count).
    """
    n_rings = _u32(words, at + 5)
    # empty polygons are left to shapely; each ring takes 4 bytes or more
    if not n_rings.min() > 0 or np.any(n_rings * 4 > end - at - 9):
        return None, []
    cursor = at + 9
    out = []
    for k in range(int(n_rings.max()) if len(n_rings) else 0):
        has = np.flatnonzero(n_rings > k)
        c = cursor[has]
        if np.any(c + 4 > end[has]):
            return None, out
        count = _u32(words, c)
        if not count.min() > 0:
            return None, out
        out.append((has, k, c + 4, count))
        cursor[has] = c + 4 + 16 * count
    if np.any(cursor > end):
        return None, out
    return cursor, out


def _assemble(
    raw: np.ndarray,
    n_parts: np.ndarray,
    parts_geom: list[np.ndarray],
    rings: list[list[tuple[np.ndarray, int, np.ndarray, np.ndarray]]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Place parts by (footprint, part) and rings by (part, ring); gather coordinates."""
    part_first = np.zeros(len(n_parts) + 1, dtype=np.int64)
    np.cumsum(n_parts, out=part_first[1:])
    n_total = int(part_first[-1])
    # where each level's polygons go: after their footprint's earlier parts
    slots = [part_first[:-1][geom] + p for p, geom in enumerate(parts_geom)]
    rings_per_part = np.zeros(n_total, dtype=np.int64)
    for slot, ring_list in zip(slots, rings, strict=True):
        for has, _, _, _ in ring_list:
            rings_per_part[slot[has]] += 1
    part_ring_offsets = np.zeros(n_total + 1, dtype=np.int64)
    np.cumsum(rings_per_part, out=part_ring_offsets[1:])
    n_rings = int(part_ring_offsets[-1])
    byte = np.empty(n_rings, dtype=np.int64)
    count = np.empty(n_rings, dtype=np.int64)
    for slot, ring_list in zip(slots, rings, strict=True):
        for has, k, first_byte, ring_count in ring_list:
            at = part_ring_offsets[:-1][slot[has]] + k
            byte[at], count[at] = first_byte, ring_count
    ring_offsets = np.zeros(n_rings + 1, dtype=np.int64)
    np.cumsum(count, out=ring_offsets[1:])
    part_building = np.repeat(np.arange(len(n_parts)), n_parts)
    return (
        _coordinates(raw, byte, count, ring_offsets),
        ring_offsets,
        part_ring_offsets,
        part_building,
    )


def _coordinates(
    raw: np.ndarray, byte: np.ndarray, count: np.ndarray, ring_offsets: np.ndarray
) -> np.ndarray:
    """(m, 2) float64 of rings whose coordinates start at ``byte``.

    Each coordinate is 16 bytes at some byte offset: read as one 16-byte element of
    the one-byte-stride view (:func:`_every_byte`), all in one gather.
    """
    m = int(ring_offsets[-1])
    at = np.repeat(byte - 16 * ring_offsets[:-1], count) + 16 * np.arange(m)
    return _every_byte(raw, "V16")[at].view("<f8").reshape(m, 2)


@dataclass(frozen=True)
class PolygonScan:
    """What the build process checks of footprints, read from their WKB (:func:`scan_polygons`).

    Attributes
    ----------
    bounds : (n, 4) float64
        xmin, ymin, xmax, ymax of each footprint (NaN-tainted where ``finite`` is False).
    finite : (n,) bool
        Every coordinate of the footprint is finite.
    """

    bounds: np.ndarray
    finite: np.ndarray


#: rows below which a scan is not split between threads
SCAN_SPLIT_ROWS = 100_000
#: rows scanned at once at most (the bytes and coordinates of a range are copied: about
#: 400 MB a million footprints)
SCAN_PART_ROWS = 1_000_000


def scan_polygons(wkb: np.ndarray | WkbColumn, threads: int = 1) -> PolygonScan | None:
    """Bounds of WKB footprints that GEOS would read exactly as stored, else ``None``.

    The build process's checks need of the footprints only their bounds and whether a
    coordinate is NaN or infinite, when each is a little-endian 2D Polygon or
    MultiPolygon (:func:`wkb_to_ragged`) that is not empty and whose rings are closed
    and of 4 points or more: GEOS reads those as they are (it refuses or repairs
    anything else: the caller then parses with shapely). Without a GEOS object per
    footprint this takes less than half the time of parsing and checking them.

    Parameters
    ----------
    wkb : (n,) object array of bytes, or a :class:`cim.model.WkbColumn`
    threads : int
        Row ranges scanned at once (numpy's gathers and reductions run without the
        GIL): the build process scans while the workers wait for their first tasks.

    Returns
    -------
    PolygonScan or None
    """
    threads = max(1, min(threads, len(wkb) // SCAN_SPLIT_ROWS))
    parts = max(threads, -(-len(wkb) // SCAN_PART_ROWS))
    if parts > 1:
        cuts = np.linspace(0, len(wkb), parts + 1).astype(int)
        with ThreadPoolExecutor(threads) as pool:
            found = list(pool.map(_scan, [wkb[a:b] for a, b in itertools.pairwise(cuts)]))
        if any(f is None for f in found):
            return None
        return PolygonScan(
            np.concatenate([f.bounds for f in found if f is not None]),
            np.concatenate([f.finite for f in found if f is not None]),
        )
    return _scan(wkb)


def _scan(wkb: np.ndarray | WkbColumn) -> PolygonScan | None:
    """:func:`scan_polygons` in this thread."""
    ragged = wkb_to_ragged(wkb)
    if ragged is None:
        return None
    coords, ring_offsets, part_ring_offsets, part_building = ragged
    n_parts = np.bincount(part_building, minlength=len(wkb))
    if not n_parts.min() > 0 or not np.diff(ring_offsets).min() >= 4:
        return None  # an empty MultiPolygon, a ring GEOS refuses (fewer than 4 points)
    # a ring not closed (NaN never equals itself: such rows take the shapely route too)
    if not np.array_equal(coords[ring_offsets[:-1]], coords[ring_offsets[1:] - 1]):
        return None
    first_part = np.zeros(len(wkb), dtype=np.int64)
    np.cumsum(n_parts[:-1], out=first_part[1:])
    first = ring_offsets[part_ring_offsets[first_part]]  # each footprint's first coordinate
    x, y = np.ascontiguousarray(coords.T)  # reduceat runs faster over contiguous data
    bounds = np.column_stack(
        [
            np.minimum.reduceat(x, first),
            np.minimum.reduceat(y, first),
            np.maximum.reduceat(x, first),
            np.maximum.reduceat(y, first),
        ]
    )
    # minimum and maximum carry a NaN through, and an infinity to one of them
    finite = np.isfinite(bounds).all(axis=1)
    return PolygonScan(bounds, finite)
