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

import numpy as np

_POLYGON, _MULTIPOLYGON = 3, 6
_PADDING = bytes(16)


def wkb_to_ragged(
    wkb: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Coordinates and offsets of 2D WKB polygons/multipolygons, or ``None``.

    Parameters
    ----------
    wkb : (n,) object array of bytes
        Little-endian 2D WKB Polygons or MultiPolygons.

    Returns
    -------
    (coords, ring_offsets, part_ring_offsets, part_building) or None
        ``coords`` (m, 2) float64; ``ring_offsets`` (r + 1,) start of each ring in
        ``coords``; ``part_ring_offsets`` (p + 1,) start of each polygon's rings;
        ``part_building`` (p,) the footprint of each polygon. ``None`` when a
        footprint is not of that kind (or the bytes do not add up).
    """
    items = wkb.tolist()
    n = len(items)
    if n == 0:
        return None
    lengths = np.fromiter(map(len, items), dtype=np.int64, count=n)
    if lengths.min() < 9:
        return None
    items.append(_PADDING)  # every 4- or 16-byte read below stays inside the buffer
    raw = np.frombuffer(b"".join(items), dtype=np.uint8)
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
