"""Per-footprint figures, computed once where the footprint is repaired.

The repair (:mod:`.repair`) has every repaired footprint in hand as a GEOS geometry on
a worker; there it also takes the figures later steps need of each one — its 2D WKB
(what the partitions store and the L2 tiles receive), centroid (the Hilbert key's
point and the L2 tile placement's), lon/lat bounds (the city's extent, the partitions'
bounds, the duplicate check), area and vertex count (the L2 tile budget), geometry type
and holes (the report's counts, the GeoParquet metadata), and a 64-bit hash of the WKB
(the L2 tiles' content hashes, :mod:`.rowhash`). The repair
cache (:mod:`.repair_cache`) keeps them, so a rebuild reuses them like the footprints
themselves, and the build process computes none of them for the whole city.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import shapely

from cim.model import WkbColumn, as_wkb_arrow
from cim.readers import unparsed
from tiling.buildings.rowhash import xxh3_hashes

#: the figures of :class:`FootprintArrays` (every field but the WKB)
_FIGURES = ("centres", "bounds", "areas", "vertices", "kinds", "holes", "hashes")
#: each figure of a row without a footprint (:meth:`FootprintArrays.empty`): its value,
#: dtype and width (0: one value per row)
_NONE: dict[str, tuple[float, type, int]] = {
    "centres": (np.nan, np.float64, 2),
    "bounds": (np.nan, np.float64, 4),
    "areas": (np.nan, np.float64, 0),
    "vertices": (0, np.int64, 0),
    "kinds": (-1, np.int8, 0),
    "holes": (0, np.int32, 0),
    "hashes": (0, np.uint64, 0),
}


@dataclass
class FootprintArrays:
    """Row-aligned figures of footprints (lon/lat, valid, 2D).

    Attributes
    ----------
    wkb : (n,) ndarray of bytes, or WkbColumn
        2D WKB (None where a row has no footprint); as the repair's workers send it
        and the repair cache keeps it, Arrow (:class:`cim.model.WkbColumn`) until a
        row is read.
    centres : (n, 2) ndarray of float64
        Centroids (NaN where none).
    bounds : (n, 4) ndarray of float64, or None
        (west, south, east, north) per footprint (NaN where none); None once let go
        (:meth:`without_bounds`).
    areas : (n,) ndarray of float64
        ``shapely.area`` in square degrees.
    vertices : (n,) ndarray of int64
        ``shapely.get_num_coordinates``.
    kinds : (n,) ndarray of int8
        ``shapely.get_type_id`` (3 Polygon, 6 MultiPolygon; -1 where none).
    holes : (n,) ndarray of int32
        ``shapely.get_num_interior_rings`` (0 for a MultiPolygon, as GEOS counts).
    hashes : (n,) ndarray of uint64
        :func:`tiling.buildings.rowhash.xxh3_hashes` of ``wkb`` (0 where none).
    """

    wkb: np.ndarray | WkbColumn
    centres: np.ndarray
    bounds: np.ndarray | None
    areas: np.ndarray
    vertices: np.ndarray
    kinds: np.ndarray
    holes: np.ndarray
    hashes: np.ndarray

    @classmethod
    def of(
        cls,
        footprints: np.ndarray,
        *,
        wkb: np.ndarray | None = None,
        centres: np.ndarray | None = None,
    ) -> FootprintArrays:
        """The figures of ``footprints`` (non-empty geometries); ``wkb`` and
        ``centres`` are taken as given when the caller has them."""
        if wkb is None:
            wkb = shapely.to_wkb(footprints, output_dimension=2)
        return cls(
            wkb,
            shapely.get_coordinates(shapely.centroid(footprints)) if centres is None else centres,
            shapely.bounds(footprints),
            shapely.area(footprints),
            shapely.get_num_coordinates(footprints).astype(np.int64),
            shapely.get_type_id(footprints).astype(np.int8),
            shapely.get_num_interior_rings(footprints).astype(np.int32),
            xxh3_hashes(wkb),
        )

    @classmethod
    def empty(cls, n: int) -> FootprintArrays:
        """``n`` rows without footprints, to be filled with :meth:`put` (all but the
        WKB: a read-only view of Nones, :func:`cim.readers.unparsed`)."""
        figures = {
            name: np.full((n, width) if width else n, value, dtype=dtype)
            for name, (value, dtype, width) in _NONE.items()
        }
        return cls(unparsed(n), **figures)

    def __len__(self) -> int:
        return len(self.wkb)

    @classmethod
    def taken_from(
        cls, source: FootprintArrays, rows: np.ndarray, index: np.ndarray, n: int
    ) -> FootprintArrays:
        """``n`` rows without footprints but rows ``rows`` (indices), set to
        ``source``'s rows ``index``; all but the WKB (None: :func:`cim.readers.unparsed`).

        ``source`` is consumed: each of its figures is let go once taken (the last
        build's repairs, read for this: a whole city's figures are never in memory
        twice). Where ``rows`` are ``source``'s same rows and its arrays are its own,
        they are taken as they are, without a copy, and the other rows cleared.
        """
        in_place = len(source) >= n and np.array_equal(rows, index)
        others = None
        figures = {}
        for name, (value, dtype, width) in _NONE.items():
            values = getattr(source, name)
            if in_place and values.flags.owndata and values.flags.writeable:
                if others is None:
                    others = np.ones(n, dtype=bool)
                    others[rows] = False
                figures[name] = values[:n]
                figures[name][others] = value
            else:
                figures[name] = np.full((n, width) if width else n, value, dtype=dtype)
                figures[name][rows] = values[index]
            setattr(source, name, _none_like(values))
            del values
        return cls(unparsed(n), **figures)

    def clear(self, rows: np.ndarray) -> None:
        """Rows ``rows`` (bool mask or indices) set to no footprint, as :meth:`empty`
        makes them (in place; all but the WKB)."""
        for name, (value, _, _) in _NONE.items():
            getattr(self, name)[rows] = value

    def take(self, index: np.ndarray, *, release: bool = False) -> FootprintArrays:
        """The rows selected by ``index`` (bool mask or indices).

        ``release``: these arrays are emptied as they are taken, each figure let go
        once its selection is made, so the two sets are never both whole where
        nothing else holds them (a city put in another order: 0.8 GB of figures at
        ten million footprints).
        """
        taken = {}
        for name in ("wkb", *_FIGURES):
            values = getattr(self, name)
            taken[name] = values[index]
            if release:
                setattr(self, name, _none_like(values))
            del values
        return FootprintArrays(**taken)

    def put_from(
        self, rows: np.ndarray, source: FootprintArrays, index: np.ndarray | None = None
    ) -> None:
        """Set rows ``rows`` (indices) to ``source``'s rows ``index`` (all of them when
        None), in place, all but the WKB: the caller puts the WKB of its parts together
        in one gather (:func:`gather_wkb`). A figure at a time: the last build's repairs
        give a whole city's, never copied all at once."""
        for name in _FIGURES:
            values = getattr(source, name)
            getattr(self, name)[rows] = values if index is None else values[index]

    def put(self, rows: np.ndarray, values: FootprintArrays) -> None:
        """Set rows ``rows`` (indices) to ``values`` (in place), all but the WKB."""
        self.put_from(rows, values)

    def without_bounds(self) -> FootprintArrays:
        """These figures but the per-row bounds (None): the steps after the buildings
        stage need only the partitions' (:func:`tiling.buildings.partitions.block_bounds`)
        and the city's (0.3 GB fewer held through the L2 stage at ten million)."""
        return dataclasses.replace(self, bounds=None)

    def total_bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) over every footprint: ``shapely.total_bounds``."""
        if self.bounds is None:
            raise ValueError("the per-row bounds were let go (without_bounds)")
        return total_bounds(self.bounds)


def _none_like(values: np.ndarray | WkbColumn) -> np.ndarray | WkbColumn:
    """No rows, of the kind of ``values``: an array of its own, not a view that keeps
    ``values`` alive."""
    if isinstance(values, WkbColumn):
        return WkbColumn(pa.array([], pa.binary()))
    return np.empty((0, *values.shape[1:]), dtype=values.dtype)


def gather_wkb(n: int, parts: list[tuple[np.ndarray, np.ndarray | WkbColumn]]) -> WkbColumn:
    """``n`` rows' WKB from ``parts`` of (rows, their WKB), None where no part has a
    row: one Arrow gather (when read, :class:`~cim.model.WkbColumn`), so the parts held
    as Arrow never become Python objects.

    A part that is a selection not gathered yet (the last build's repairs taken for
    the rows found there) is composed into the result's selection, not gathered on
    its own: that was a copy of the city's footprints beside the cache's own.
    """
    chunks: list[pa.Array] = []
    picks: list[np.ndarray] = []
    base = 0  # where the part's values start among ``chunks``
    for rows, wkb in parts:
        arrow, picked = wkb.selection() if isinstance(wkb, WkbColumn) else (as_wkb_arrow(wkb), None)
        own = arrow.chunks if isinstance(arrow, pa.ChunkedArray) else [arrow]
        chunks += own
        if picked is None:
            picks.append(base + np.arange(len(rows), dtype=np.int64))
        else:
            picks.append(np.where(picked >= 0, picked + base, -1))
        base += sum(len(c) for c in own)
    values = pa.chunked_array(chunks, pa.binary())
    where = np.full(n, -1, dtype=np.int64)
    if parts:
        where[np.concatenate([r for r, _ in parts])] = np.concatenate(picks)
    return WkbColumn(values, where)  # gathered when read, with the selections after


def total_bounds(bounds: np.ndarray) -> tuple[float, float, float, float]:
    """``shapely.total_bounds`` from per-footprint bounds ((n, 4); NaN rows: none)."""
    if not len(bounds) or np.isnan(bounds[:, 0]).all():
        return (np.nan, np.nan, np.nan, np.nan)
    west, south = np.nanmin(bounds[:, :2], axis=0)
    east, north = np.nanmax(bounds[:, 2:], axis=0)
    return float(west), float(south), float(east), float(north)
