"""The repaired, grounded buildings as spatial GeoParquet partitions.

The buildings stage writes ``work/buildings/part-NNNNN.parquet`` in the output folder:
buildings sorted along a Hilbert curve over the city's extent (by footprint centroid)
and cut into partitions of about :data:`ROWS_PER_PARTITION` rows, so each partition is
a compact patch of the city. ``work/buildings/partitions.json`` lists the partitions
with their bounds and Hilbert key ranges, and carries the table-wide values (source
CRS, wall skirt, the names of the extra and L3 attributes).

Later stages (L2, L3, addresses) read these partitions with :func:`read_partitions`
instead of needing the buildings stage in memory: a change to ``[l2]`` re-runs only
the L2 stage, which reads the partitions the last build left (the footprints are not
read again). A worker can read one partition, or the partitions that meet a bounding
box, on its own.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely

from cim.errors import DatasetIOError, NotFoundError
from cim.model import Buildings, WkbColumn, addressed_rows, as_wkb_arrow
from tiling.buildings.footprints import FootprintArrays, total_bounds

log = logging.getLogger(__name__)

#: Where the partitions live, relative to the output folder.
FOLDER = "work/buildings"
INDEX = "partitions.json"
ROWS_PER_PARTITION = 250_000
#: Hilbert curve order: a 65,536 × 65,536 grid over the city's extent.
HILBERT_ORDER = 16
_EXTRA, _L3 = "extra:", "l3:"
#: Parquet codec of the partitions: an intermediate read back by the next stages, where
#: writing fast matters more than size (zstd costs twice the CPU for 1.4× smaller files)
COMPRESSION = "snappy"


@dataclass(frozen=True)
class Partition:
    """One partition file: its rows, bounds (lon/lat) and Hilbert key range."""

    file: str
    rows: int
    bounds: tuple[float, float, float, float]
    keys: tuple[int, int]


def hilbert_keys(
    x: np.ndarray, y: np.ndarray, bounds: tuple[float, float, float, float], order: int = 16
) -> np.ndarray:
    """Distance along a Hilbert curve of each point (vectorised over the points).

    Parameters
    ----------
    x, y : ndarray
        Coordinates.
    bounds : (xmin, ymin, xmax, ymax)
        The square grid's extent (points outside are clamped).
    order : int
        The grid is ``2**order`` cells a side (at most 31).

    Returns
    -------
    ndarray of uint64
    """
    x, y = np.asarray(x), np.asarray(y)
    keys = np.empty(len(x), dtype=np.uint64)
    # a block of points at a time: the dozen temporaries of the whole city's (0.6 GB at
    # ten million) were the buildings stage's peak beside the repair cache's writer
    for start in range(0, len(x), HILBERT_BLOCK):
        part = slice(start, start + HILBERT_BLOCK)
        keys[part] = _hilbert_block(x[part], y[part], bounds, order)
    return keys


#: Points whose Hilbert keys are computed at a time (:func:`hilbert_keys`).
HILBERT_BLOCK = 1 << 20


def _hilbert_block(
    x: np.ndarray, y: np.ndarray, bounds: tuple[float, float, float, float], order: int
) -> np.ndarray:
    """:func:`hilbert_keys` of one block of points."""
    n = 1 << order
    x0, y0, x1, y1 = bounds
    span = max(x1 - x0, y1 - y0, 1e-12)
    xi = np.clip(((np.asarray(x) - x0) / span * (n - 1)).astype(np.int64), 0, n - 1)
    yi = np.clip(((np.asarray(y) - y0) / span * (n - 1)).astype(np.int64), 0, n - 1)
    digits, states = _hilbert_tables()
    top = -(-order // _STEP) * _STEP  # the bits read: ``order`` and zeros above them
    d = np.zeros(len(xi), dtype=np.uint64)
    # each zero level above the grid swaps x and y (its digit is 0): started swapped
    # when there is an odd number of them, the grid's top level reads them unswapped
    state = np.full(len(xi), ((top - order) % 2) << 1, dtype=np.intp)
    # four levels of the curve per table lookup, from the top bits down
    for shift in range(top - _STEP, -1, -_STEP):
        at = (state << 2 * _STEP) | ((xi >> shift) & _MASK) << _STEP | ((yi >> shift) & _MASK)
        d = (d << np.uint64(2 * _STEP)) | digits[at]
        state = states[at]
    return d


#: Levels of the Hilbert curve resolved per table lookup, and their bit mask.
_STEP, _MASK = 4, 15


@functools.cache
def _hilbert_tables() -> tuple[np.ndarray, np.ndarray]:
    """Per (state, x bits, y bits) of :data:`_STEP` levels: the curve's digits and the
    next state.

    The curve's orientation in a cell is one of four states: x and y swapped or not,
    both complemented or not. One level reads the bits (x, y) in the current state,
    gives the digit ``3x ^ y``, complements both when ``x and not y`` and swaps them
    when ``not y`` (the classic rotation that keeps the curve continuous).
    """
    size = 1 << _STEP
    digits = np.zeros(4 << 2 * _STEP, dtype=np.uint64)
    states = np.zeros(4 << 2 * _STEP, dtype=np.intp)
    for start, xs, ys in itertools.product(range(4), range(size), range(size)):
        swapped, flipped = start >> 1, start & 1
        digit = 0
        for level in range(_STEP - 1, -1, -1):
            bx, by = (xs >> level) & 1, (ys >> level) & 1
            if swapped:
                bx, by = by, bx
            bx, by = bx ^ flipped, by ^ flipped
            digit = digit << 2 | (3 * bx) ^ by
            flipped ^= bx & (1 - by)
            swapped ^= 1 - by
        at = (start << 2 * _STEP) | xs << _STEP | ys
        digits[at], states[at] = digit, swapped << 1 | flipped
    return digits, states


def footprint_centres(footprints: np.ndarray) -> np.ndarray:
    """(n, 2) lon/lat centroids: the Hilbert key's point, and the L2 tile placement's.

    Computed once per build (a GEOS call per footprint) and handed on with the table.
    """
    return shapely.get_coordinates(shapely.centroid(footprints))


def hilbert_order(
    buildings: Buildings,
    centres: np.ndarray | None = None,
    bounds: tuple[float, float, float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Partition order of ``buildings`` (along the Hilbert curve, ties in input order).

    The buildings stage keeps this order in memory too, so a later stage sees the same
    rows in the same order whether it got them in memory or from the partitions.

    Parameters
    ----------
    buildings : Buildings
    centres : (n, 2) ndarray, optional
        :func:`footprint_centres` of ``buildings`` (computed when not given).
    bounds : (west, south, east, north), optional
        ``buildings.bounds()`` when the caller has it (computed when not given).

    Returns
    -------
    (ndarray, ndarray)
        The row order and the Hilbert keys in that order (for :func:`write_partitions`).
    """
    if centres is None:
        centres = footprint_centres(buildings.footprints)
    bounds = tuple(float(v) for v in (buildings.bounds() if bounds is None else bounds))
    keys = hilbert_keys(centres[:, 0], centres[:, 1], bounds, HILBERT_ORDER)
    order = np.argsort(keys, kind="stable")
    return order, keys[order]


def hilbert_sorted(buildings: Buildings) -> tuple[Buildings, np.ndarray]:
    """``buildings`` in partition order and its Hilbert keys (see :func:`hilbert_order`)."""
    order, keys = hilbert_order(buildings)
    return buildings.take(order), keys


def write_partitions(
    buildings: Buildings,
    output: Path,
    *,
    wall_skirt: float = 0.0,
    rows_per_partition: int = ROWS_PER_PARTITION,
    keys: np.ndarray | None = None,
    figures: FootprintArrays | None = None,
    table: pa.Table | None = None,
    part_bounds: np.ndarray | None = None,
) -> list[Partition]:
    """Write ``buildings`` as Hilbert-ordered GeoParquet partitions under ``output``.

    Parameters
    ----------
    buildings : Buildings
        Repaired and grounded (lon/lat footprints, ellipsoidal base).
    output : Path
        The build's output (work) folder; files go to ``output/work/buildings``.
    wall_skirt : float
        How far walls reach below the base (m), for the L2 stage.
    rows_per_partition : int
    keys : ndarray, optional
        The Hilbert keys of ``buildings`` when it is already in partition order
        (:func:`hilbert_order`).
    figures : FootprintArrays, optional
        The footprints' WKB, centres, bounds and types (row for row with
        ``buildings``), when the caller has them: nothing is computed again.
    table : pyarrow.Table, optional
        :func:`partition_table` of ``buildings`` (with ``keys``), when the caller made it.
    part_bounds : (k, 4) ndarray, optional
        Each partition's bounds (:func:`block_bounds` of the rows', a block of
        ``rows_per_partition`` rows each), when the caller took them: ``figures.bounds``
        is not read then (the caller may have let it go: :meth:`FootprintArrays.without_bounds`).

    Returns
    -------
    list of Partition

    Raises
    ------
    DatasetIOError
        A partition cannot be written.
    """
    folder = Path(output) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    if figures is None:
        figures = FootprintArrays.of(buildings.footprints)
    if keys is None:
        order, keys = hilbert_order(buildings, figures.centres, figures.total_bounds())
        buildings, figures = buildings.take(order), figures.take(order)
    if table is None:
        table = partition_table(buildings, keys, wkb=figures.wkb, centres=figures.centres)
    extent = figures.total_bounds() if part_bounds is None else total_bounds(part_bounds)
    table = table.replace_schema_metadata({b"geo": _geo_metadata(figures.kinds, extent)})
    parts: list[Partition] = []
    for k, start in enumerate(range(0, max(len(buildings), 1), rows_per_partition)):
        stop = min(start + rows_per_partition, len(buildings))
        name = f"part-{k:05d}.parquet"
        part = table.slice(start, stop - start)
        if "cx" not in table.column_names:  # made without them: this partition's now
            part = _with_centres(part, figures.centres[start:stop])
        try:
            pq.write_table(
                part,
                folder / name,
                compression=COMPRESSION,
                row_group_size=50_000,
                use_dictionary=dictionary_columns(table),
            )
        except OSError as exc:
            raise DatasetIOError(f"cannot write a building partition ({exc})", path=folder) from exc
        if stop == start:
            b = extent
        elif part_bounds is not None:
            b = tuple(part_bounds[k])
        else:
            b = total_bounds(figures.bounds[start:stop])
        lo, hi = (int(keys[start]), int(keys[stop - 1])) if stop > start else (0, 0)
        parts.append(Partition(name, stop - start, tuple(float(v) for v in b), (lo, hi)))
    index = {
        "version": 1,
        "rows": len(buildings),
        "bounds": list(extent),
        "source_crs": buildings.source_crs,
        "wall_skirt": float(wall_skirt),
        "extra": list(buildings.extra),
        "l3": list(buildings.l3),
        "hilbert_order": HILBERT_ORDER,
        "partitions": [p.__dict__ for p in parts],
    }
    tmp = folder / f".{INDEX}.tmp-{os.getpid()}-{threading.get_ident()}"
    tmp.write_text(json.dumps(index, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, folder / INDEX)
    log.debug("%s: %d buildings in %d partitions", folder, len(buildings), len(parts))
    return parts


def partition_index(output: Path) -> dict[str, Any]:
    """The ``partitions.json`` of an output (or work) folder.

    Raises
    ------
    NotFoundError
        No partitions were written there.
    """
    path = Path(output) / FOLDER / INDEX
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise NotFoundError(
            "no building partitions (the buildings stage did not run)", path=path
        ) from exc


def read_partitions(
    output: Path,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    files: list[str] | None = None,
) -> Buildings:
    """The buildings of the partitions under ``output`` (all, or those meeting ``bbox``).

    This is how a stage reads the buildings without the buildings stage in memory:
    ``read_partitions(ctx.workdir)`` gives the whole city in Hilbert order;
    ``bbox`` (lon/lat) keeps the buildings whose footprint's bounds meet it, reading
    only the partitions that can hold them; ``files`` reads named partitions (a worker's
    own share).

    Parameters
    ----------
    output : Path
        The output folder (or the build's work folder).
    bbox : (west, south, east, north), optional
    files : list of str, optional
        Partition file names from :func:`partition_index`.

    Returns
    -------
    Buildings
        With ``source_crs``; the wall skirt is in :func:`partition_index`.
    """
    index = partition_index(output)
    folder = Path(output) / FOLDER
    chosen = [
        p
        for p in index["partitions"]
        if (files is None or p["file"] in files) and (bbox is None or _meets(p["bounds"], bbox))
    ]
    tables = [pq.read_table(folder / p["file"]) for p in chosen]
    buildings = _buildings(_concat(tables), index)
    if bbox is not None and len(buildings):
        b = shapely.bounds(buildings.footprints)
        inside = (
            (b[:, 0] <= bbox[2])
            & (b[:, 2] >= bbox[0])
            & (b[:, 1] <= bbox[3])
            & (b[:, 3] >= bbox[1])
        )
        buildings = buildings.take(np.flatnonzero(inside))
    return buildings


def read_partitions_for_tiles(output: Path) -> tuple[Buildings, np.ndarray, np.ndarray]:
    """The whole city from its partitions, with its footprints' WKB and centres.

    What the L2 stage needs besides :func:`read_partitions`: the footprints' 2D WKB as
    stored (no second encoding) and their :func:`footprint_centres`.

    Returns
    -------
    (Buildings, ndarray, ndarray)
        The buildings (Hilbert order), their WKB (object array of bytes) and their
        centres ((n, 2) lon/lat).
    """
    index = partition_index(output)
    folder = Path(output) / FOLDER
    table = _concat([pq.read_table(folder / p["file"]) for p in index["partitions"]])
    buildings = _buildings(table, index)
    wkb = table.column("geometry").to_numpy(zero_copy_only=False)
    if "cx" in table.column_names:
        centres = np.column_stack([_numpy(table.column("cx")), _numpy(table.column("cy"))])
    else:  # partitions of an older build
        centres = footprint_centres(buildings.footprints)
    return buildings, wkb, centres


def _concat(tables: list[pa.Table]) -> pa.Table:
    if tables:
        return pa.concat_tables(tables)
    # an empty selection: the schema of an empty table
    return pa.table({"id": pa.array([], pa.string()), "geometry": pa.array([], pa.binary())})


def _meets(a: list[float], b: tuple[float, float, float, float]) -> bool:
    return a[0] <= b[2] and a[2] >= b[0] and a[1] <= b[3] and a[3] >= b[1]


def _geo_metadata(kinds: np.ndarray, bounds: tuple[float, ...]) -> bytes:
    """The GeoParquet 1.1 ``geo`` metadata of a WKB footprint column.

    Parameters
    ----------
    kinds : ndarray of int
        Each footprint's ``shapely.get_type_id``.
    bounds : (west, south, east, north)
        Their extent.
    """
    found = np.unique(kinds).tolist()
    names = {3: "Polygon", 6: "MultiPolygon"}
    return json.dumps(
        {
            "version": "1.1.0",
            "primary_column": "geometry",
            "columns": {
                "geometry": {
                    "encoding": "WKB",
                    "geometry_types": [names.get(k, "Unknown") for k in found],
                    "bbox": list(bounds),
                    "covering": {},
                }
            },
        }
    ).encode()


#: The fixed text columns: (partition column and L2 property id, Buildings attribute).
_TEXT_COLUMNS = (("id", "ids"), ("name", "name"), ("use", "use"), ("roof_type", "roof_type"))


def text_columns(b: Buildings) -> dict[str, pa.Array]:
    """The fixed text columns of ``b`` as Arrow string arrays (missing values ""),
    keyed by their L2 property ids: ``id``, ``name``, ``use``, ``roof_type``.

    Made once per build: the partitions store them and the L2 tiles take them
    (:func:`tiling.buildings.l2.write_l2`'s ``text``); converting a million Python
    strings costs about a quarter of a second per column, so the Arrow twins the
    reader left (``b.arrow_text``) are taken as they are.
    """
    out = {}
    for key, column in _TEXT_COLUMNS:
        # the reader's Arrow twin (as read, trimmed) when the table still has it
        twin = b.arrow_text.get(column)
        out[key] = twin if twin is not None else _text(getattr(b, column))
    return out


def _text(values: np.ndarray) -> pa.Array:
    try:  # the usual case: every value is already a str
        return pc.fill_null(pa.array(values, pa.string(), from_pandas=True), "")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array(["" if v is None else str(v) for v in values.tolist()], pa.string())


def _column(values: np.ndarray) -> pa.Array:
    values = np.asarray(values)
    if values.dtype.kind in "iuf":
        return pa.array(values)
    return _text(values)


def _addresses(addresses: np.ndarray) -> pa.Array:
    """A list<string> column: a building's own addresses, null for most (none)."""
    listed = addressed_rows(addresses)
    rows = addresses[listed].tolist()
    counts = np.zeros(len(addresses), dtype=np.int32)
    counts[listed] = np.fromiter(map(len, rows), np.int32, len(rows))
    values = [a for row in rows for a in row]
    offsets = np.zeros(len(addresses) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(
        pa.array(offsets),
        pa.array(values, pa.string()),
        mask=pa.array(counts == 0),
    )


def partition_table(
    b: Buildings,
    keys: np.ndarray,
    *,
    wkb: np.ndarray | WkbColumn | None = None,
    centres: np.ndarray | None = None,
    text: Mapping[str, pa.Array] | None = None,
    with_centres: bool = True,
) -> pa.Table:
    """The Arrow table of ``b`` as the partitions store it (one row per building).

    Parameters
    ----------
    b : Buildings
    keys : ndarray
        Hilbert keys.
    wkb : ndarray or WkbColumn, optional
        The footprints' 2D WKB (encoded here when not given).
    centres : (n, 2) ndarray, optional
        Footprint centres, stored as ``cx``/``cy`` (computed when not given).
    text : mapping, optional
        :func:`text_columns` of ``b`` when the caller made them (the L2 stage takes
        the same arrays): not converted again.
    with_centres : bool
        False: no ``cx``/``cy`` columns; :func:`write_partitions` puts each
        partition's in place as it writes it (the whole city's, copied out of the
        (n, 2) centres, were 0.15 GB at ten million beside the L2 stage).
    """
    text = text if text is not None else text_columns(b)
    if wkb is None:
        wkb = shapely.to_wkb(b.footprints, output_dimension=2)
    if centres is None and with_centres:
        centres = footprint_centres(b.footprints)
    cols: dict[str, pa.Array] = {
        "id": text["id"],
        "geometry": as_wkb_arrow(wkb),
        "height": pa.array(np.asarray(b.height, dtype=np.float64)),
        "floors": pa.array(np.asarray(b.floors, dtype=np.float64)),
        "base": pa.array(np.asarray(b.base, dtype=np.float64)),
        "name": text["name"],
        "use": text["use"],
        "roof_type": text["roof_type"],
        "addresses": _addresses(b.addresses),
        "hilbert": pa.array(keys, pa.uint64()),
    }
    if centres is not None and with_centres:
        cols.update(_centre_columns(centres))
    cols.update({_EXTRA + k: _column(v) for k, v in b.extra.items()})
    cols.update({_L3 + k: _column(v) for k, v in b.l3.items()})
    return pa.table(cols)


def block_bounds(bounds: np.ndarray, rows: int = ROWS_PER_PARTITION) -> np.ndarray:
    """The (west, south, east, north) of each block of ``rows`` rows of per-row
    ``bounds`` ((n, 4), NaN rows: none), as :func:`total_bounds` gives them: (k, 4),
    the partitions' bounds of :func:`write_partitions` (``part_bounds``)."""
    blocks = [total_bounds(bounds[s : s + rows]) for s in range(0, len(bounds), rows)]
    return np.array(blocks, dtype=np.float64).reshape(-1, 4)


def _centre_columns(centres: np.ndarray) -> dict[str, pa.Array]:
    """The ``cx`` and ``cy`` columns of (n, 2) ``centres``."""
    return {
        "cx": pa.array(np.ascontiguousarray(centres[:, 0], dtype=np.float64)),
        "cy": pa.array(np.ascontiguousarray(centres[:, 1], dtype=np.float64)),
    }


def _with_centres(part: pa.Table, centres: np.ndarray) -> pa.Table:
    """``part`` (a slice of a :func:`partition_table` made ``with_centres=False``) with
    its ``cx`` and ``cy`` columns where that table would have them (after ``hilbert``)."""
    at = part.schema.get_field_index("hilbert") + 1
    for k, (name, values) in enumerate(_centre_columns(centres).items()):
        part = part.add_column(at + k, name, values)
    return part


def dictionary_columns(table: pa.Table) -> list[str]:
    """The columns worth Parquet's dictionary encoding: text that repeats (use, roof
    type, names), not ids, footprints or measures, which are nearly all distinct and
    would cost a failed dictionary attempt each (half the write time)."""
    return [
        f.name
        for f in table.schema
        if f.name != "id" and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
    ]


def _numpy(col: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return col.to_numpy(zero_copy_only=False).astype(object)
    return col.to_numpy()


def _buildings(t: pa.Table, index: dict[str, Any]) -> Buildings:
    n = t.num_rows

    def get(name: str, kind: str = "f") -> np.ndarray:
        if name in t.column_names:
            return _numpy(t.column(name))
        return np.zeros(n) if kind == "f" else np.full(n, "", dtype=object)

    addresses = np.empty(n, dtype=object)
    addresses.fill(())
    if "addresses" in t.column_names:
        col = t.column("addresses").combine_chunks()
        listed = np.flatnonzero(pc.list_value_length(col).to_numpy(zero_copy_only=False) > 0)
        if len(listed):  # most buildings have no address of their own
            addresses[listed] = [tuple(a) for a in col.take(pa.array(listed)).to_pylist()]
    return Buildings(
        ids=get("id", "s"),
        footprints=shapely.from_wkb(t.column("geometry").to_numpy(zero_copy_only=False)),
        height=get("height"),
        floors=get("floors"),
        base=get("base"),
        name=get("name", "s"),
        use=get("use", "s"),
        roof_type=get("roof_type", "s"),
        addresses=addresses,
        extra={k: get(_EXTRA + k, "s") for k in index.get("extra", [])},
        l3={k: get(_L3 + k, "s") for k in index.get("l3", [])},
        source_crs=index.get("source_crs", "EPSG:4326"),
        arrow_text=_twins(t),
    )


def _twins(t: pa.Table) -> dict[str, pa.Array]:
    """The partitions' text columns as stored (no nulls): the Arrow twins of
    :attr:`Buildings.name` and the others (:func:`text_columns` takes them)."""
    out = {}
    for key, column in _TEXT_COLUMNS:
        if key in t.column_names and t.column(key).null_count == 0:
            col = t.column(key).combine_chunks()
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                out[column] = col
    return out


def building_addresses(buildings: Buildings, index: Path) -> int:
    """Add the addresses the address stage joined to ``buildings`` (in place).

    The join is read back from ``addresses.sqlite`` (``addresses.building_id``), so a
    stage that reads the partitions needs no address stage in memory. Addresses are
    appended in the index's row order after a footprint's own address attribute,
    each once.

    Parameters
    ----------
    buildings : Buildings
    index : Path
        ``addresses.sqlite``; nothing happens when it does not exist.

    Returns
    -------
    int
        Addresses attached.
    """
    import sqlite3

    if not Path(index).is_file() or not len(buildings):
        return 0
    with sqlite3.connect(f"file:{index}?mode=ro", uri=True) as con:
        rows = con.execute(
            "SELECT building_id, address FROM addresses WHERE building_id IS NOT NULL ORDER BY id"
        ).fetchall()
    if not rows:
        return 0
    row_of = {str(b): i for i, b in enumerate(buildings.ids.tolist())}
    col = buildings.addresses
    attached = 0
    for bid, address in rows:
        i = row_of.get(bid)
        if i is None or not address:
            continue
        existing = () if col[i] is None else tuple(col[i])
        if address not in existing:
            col[i] = (*existing, address)
            attached += 1
    return attached
