"""The L2 city model: every building as a block, as a 3D Tiles 1.1 tileset.

Pipeline (vectorised over the whole city, then one pure function per tile):

1. choose the tileset frame: an east-north-up frame at the city centre; its matrix
   is the root ``transform`` (ECEF), so tile geometry stays local and float32-safe;
2. convert every footprint vertex to that frame at base and roof height (numpy);
3. rank buildings by size and build the quadtree (:mod:`.hierarchy`);
4. sort buildings so each tile's buildings are contiguous, then extrude and encode
   each tile (:mod:`.extrude`, :mod:`tiling.gltf`) through the build's executor
   (:mod:`cim.executor`): a task names its tile's buildings in a rows file written
   for a group of tiles (:mod:`.rowfiles`), which its worker reads;
5. write ``tileset.json`` with boxes that enclose each tile's content and children.

The tile budget (``max_tile_bytes``, 1 MB) holds whatever one feature carries:
footprints with absurd vertex counts are simplified (report ``simplified``), text
values over 4 KB are cut at a UTF-8 character boundary (report ``truncated``), the
hierarchy plans tiles by an estimate of their bytes, and a tile that still comes out
over the budget after encoding is split (half of its buildings go to a new child).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from cim.crs import enu_to_ecef_matrix, lonlat_to_enu, lonlat_to_enu_up
from cim.executor import Executor, make_executor
from cim.model import ArrowText, Buildings, WkbColumn, addressed_rows, text_values
from cim.report import StageReport
from tiling.b3dm import write_b3dm
from tiling.buildings.extrude import extrude
from tiling.buildings.hierarchy import Node, build_hierarchy
from tiling.buildings.ragged import wkb_to_ragged
from tiling.buildings.rowfiles import RowsFiles, RowsRef, groups
from tiling.buildings.rowhash import BytesHashes, hash_rows, xxh3_hashes
from tiling.gltf import EncodedText, PropertySpec, metadata_ids, typed_column, write_glb
from tiling.tileset import Box, Tile, Tileset

log = logging.getLogger(__name__)

Tracker = Callable[..., Iterator[Any]]

BUILDING_PROPERTIES = [
    PropertySpec("id", "STRING", description="building id"),
    PropertySpec("name", "STRING"),
    PropertySpec("height", "SCALAR", "FLOAT32", description="height above base, m"),
    PropertySpec("floors", "SCALAR", "FLOAT32", no_data=0.0, description="floor count"),
    PropertySpec("use", "STRING"),
    PropertySpec("roof_type", "STRING"),
    PropertySpec(
        "base", "SCALAR", "FLOAT32", description="WGS84 ellipsoidal height of the base, m"
    ),
    PropertySpec("address", "STRING", description="addresses, '; '-separated"),
]

#: Footprints with more vertices than this are simplified (OpenStreetMap caps a way at
#: 2,000 nodes: more is a digitising or conversion accident, not a building's outline).
MAX_FOOTPRINT_VERTICES = 2000
#: Simplification tolerances tried in turn (m): the first three keep the outline within
#: a few decimetres; the larger ones only serve absurd inputs that must still fit a tile.
SIMPLIFY_TOLERANCES_M = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0)
#: Longest text value kept in the metadata, UTF-8 bytes.
MAX_TEXT_BYTES = 4096
#: Planning estimate of glb bytes per mesh vertex (indices included): measured 5.5 with
#: meshopt and 19.1 without (bench/bench_compression.py); the encoded size is checked.
BYTES_PER_VERTEX = {"meshopt": 6.0, "none": 20.0}
#: The hierarchy plans tiles to this share of the budget: estimates are estimates.
PLANNING_SHARE = 0.85
#: Rows converted to the tileset's frame at once when the buildings are ranked.
RANKING_BLOCK = 1 << 20
_M_PER_DEGREE = 111_320.0


@dataclass(frozen=True)
class L2Options:
    """Knobs of the L2 writer (``[l2]`` in city.toml)."""

    max_features_per_tile: int = 2000
    max_vertices_per_tile: int = 60000
    compression: str = "meshopt"
    format: str = "3dtiles-1.1"  # or "b3dm" (3D Tiles 1.0 for older clients)
    max_tile_bytes: int = 1_000_000
    skirt: float = 0.0  # walls reach this far below the base (terrain error, m)

    @property
    def suffix(self) -> str:
        """Content file suffix."""
        return ".b3dm" if self.format == "b3dm" else ".glb"


@dataclass
class _TileJob:
    key: str
    start: int
    stop: int


@dataclass(frozen=True)
class _TileFrame:
    """What every tile task shares: small, pickled with each task."""

    frame: np.ndarray
    properties: list[PropertySpec]
    options: L2Options
    out_dir: str


@dataclass(frozen=True)
class _TileTask:
    """One tile, self-contained: its buildings (WKB footprints, heights, metadata)."""

    key: str
    shared: _TileFrame
    footprints: np.ndarray | WkbColumn  # WKB
    base: np.ndarray
    height: np.ndarray
    #: text columns may be Arrow string arrays (:meth:`_Tasks.make`)
    table: dict[str, np.ndarray | pa.Array]
    #: :func:`tile_hash` when the build process has it (from the city's row hashes),
    #: so the worker does not hash the tile again
    digest: str = ""


#: Columns of a rows file (:mod:`.rowfiles`): the footprints' WKB, base and height, then
#: each property's as Arrow text (kept Arrow) or numbers (read back as numpy).
_TEXT, _NUMBERS = "t/", "n/"


@dataclass(frozen=True)
class _TileRef:
    """One tile whose buildings are in a rows file: what its worker is sent."""

    key: str
    shared: _TileFrame
    rows: RowsRef
    #: properties a rows file cannot hold (object columns that are not Arrow text)
    inline: dict[str, np.ndarray]
    digest: str

    def load(self) -> _TileTask:
        """The task with its rows, as :meth:`_Tasks.make` makes it."""
        batch = self.rows.read()
        names = set(batch.schema.names)
        table: dict[str, np.ndarray | pa.Array] = {}
        for p in self.shared.properties:
            if p.id in self.inline:
                table[p.id] = self.inline[p.id]
            elif _TEXT + p.id in names:
                table[p.id] = batch.column(_TEXT + p.id)
            else:
                table[p.id] = _numbers(batch.column(_NUMBERS + p.id))
        return _TileTask(
            key=self.key,
            shared=self.shared,
            footprints=WkbColumn(batch.column("footprints")),
            base=_numbers(batch.column("base")),
            height=_numbers(batch.column("height")),
            table=table,
            digest=self.digest,
        )


def _numbers(values: pa.Array) -> np.ndarray:
    return values.to_numpy(zero_copy_only=False, writable=True)


def write_l2(
    buildings: Buildings,
    out_dir: Path,
    options: L2Options,
    *,
    jobs: int = 1,
    track: Tracker | None = None,
    report: StageReport | None = None,
    executor: Executor | None = None,
    separate: np.ndarray | None = None,
    previous: Path | None = None,
    wkb: np.ndarray | WkbColumn | None = None,
    centres: np.ndarray | None = None,
    bounds: tuple[float, float, float, float] | None = None,
    areas: np.ndarray | None = None,
    vertex_counts: np.ndarray | None = None,
    footprint_hashes: np.ndarray | None = None,
    text: Mapping[str, pa.Array | pa.ChunkedArray] | None = None,
) -> dict[str, Any]:
    """Write the L2 tileset of ``buildings`` into ``out_dir``.

    Parameters
    ----------
    buildings : Buildings
        With ``base`` already set (ellipsoidal). Not modified: simplified footprints
        and truncated text go to the tiles only.
    out_dir : Path
        ``<output>/tiles/l2``; created.
    options : L2Options
    jobs : int
        Worker processes for tile encoding when no ``executor`` is given.
    track : callable, optional
        Progress wrapper ``track(iterable, total=, desc=, unit=)``.
    report : StageReport, optional
        Receives the ``simplified`` and ``truncated`` repairs and budget warnings.
    executor : Executor, optional
        Where tiles are encoded (the build's); default: a local one for ``jobs``.
    separate : (n,) bool, optional
        Buildings (the L3 district) kept in tiles of their own, a subtree under the
        root (:func:`tiling.buildings.hierarchy.build_hierarchy`).
    previous : Path, optional
        The last build's ``tiles/l2`` (read-only): a tile whose content hash (its
        buildings, the frame, the options) is in its ``tiles-index.json`` is
        hard-linked from there instead of encoded again (figure ``tiles_reused``).
    wkb, centres : ndarray, optional
        The footprints' 2D WKB (an object array or :class:`cim.model.WkbColumn`) and
        (n, 2) centroids when the caller has them
        (:func:`tiling.buildings.partitions.footprint_centres`): not computed again.
    bounds : (west, south, east, north), optional
        ``buildings.bounds()`` when the caller has it (used unless a footprint had
        to be simplified).
    areas : (n,) float64, optional
        ``shapely.area`` of each lon/lat footprint (degrees²) when the caller has it
        (computed on the workers): used for the size ranking instead of computing it
        here. The rows of simplified footprints are computed again.
    vertex_counts : (n,) int, optional
        ``shapely.get_num_coordinates`` of each footprint when the caller has it:
        used for the vertex budget and to find footprints to simplify.
    footprint_hashes : (n,) uint64, optional
        Each ``wkb`` value's :func:`tiling.buildings.rowhash.xxh3_hashes` when the
        caller has them (made with the WKB, on the workers): the row hashes take
        them instead of hashing every footprint here. Only with ``wkb``.
    text : mapping of str to Arrow string array, optional
        Text columns the caller holds in Arrow too (the partitions it read), keyed
        by ``id``, ``name``, ``use``, ``roof_type``: the same values as those of
        ``buildings``, not converted again (the row hashes and tile tasks read them).

    Returns
    -------
    dict
        Figures for the manifest/report: tiles, bytes, max tile bytes, depth, and
        ``properties`` (the metadata property ids, extras included).
    """
    report = report or StageReport("l2")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "content").mkdir(exist_ok=True)
    clock = _Clock()
    buildings, fitted, coords = _fit_footprints(buildings, report, vertex_counts)
    if footprint_hashes is not None and wkb is None:
        raise ValueError("footprint_hashes without the wkb they were taken of")
    wkb, centres = _footprint_arrays(buildings, wkb, centres, fitted)
    hashes = _footprint_hashes(footprint_hashes, wkb, fitted)
    props, columns, chars, arrow = _property_table(buildings, report, _given_text(text, buildings))
    clock.lap("budget")
    frame, centre = _frame(buildings, bounds if not len(fitted) else None)
    centre_xy, size, vertices = _ranking(
        buildings, frame, centres, coords, _areas(buildings, areas, fitted)
    )
    row_bytes = _row_bytes(columns, props, chars, vertices, options)
    del chars  # a length per building and text column: 0.4 GB at ten million
    nodes = build_hierarchy(
        centre_xy,
        size,
        vertices,
        max_features=options.max_features_per_tile,
        max_vertices=options.max_vertices_per_tile,
        row_bytes=row_bytes,
        max_bytes=PLANNING_SHARE * options.max_tile_bytes,
        separate=separate,
        consume=True,  # the centres are the plan's alone
    )
    # the plan's alone (the sizes split tiles over budget): not held while tiles encode
    del centre_xy, vertices, row_bytes
    order, ranges = _tile_order(nodes)
    clock.lap("hierarchy")
    jobs_list = [_TileJob(n.key, *ranges[i]) for i, n in enumerate(nodes)]
    shared = _TileFrame(frame, props, options, str(out_dir))
    # each tile's buildings are contiguous in tile order (``order``); tasks are made
    # only for the tiles encoded
    tasks = _Tasks(shared, buildings, columns, order, wkb, arrow, hashes)
    reuse = _Reuse(previous, out_dir, options.suffix) if previous is not None else None
    own = executor is None
    executor = executor or make_executor(jobs=jobs)
    try:
        results = dict(_run_jobs(jobs_list, tasks, executor, track, reuse))
        _split_oversized(nodes, ranges, results, size[order], tasks, executor, report)
    finally:
        if own:
            executor.close()
    clock.lap("encode")
    tileset = _tileset(options, nodes, results, frame, buildings)
    tileset.write(out_dir / "tileset.json")
    _write_index(out_dir, results)
    clock.lap("tileset")
    sizes = [r["bytes"] for r in results.values()]
    return {
        "buildings": len(buildings),
        "tiles": len(nodes),
        "depth": max(n.level for n in nodes),
        "bytes": int(sum(sizes)),
        "max_tile_bytes": int(max(sizes)),
        "bytes_per_building": round(sum(sizes) / max(len(buildings), 1), 1),
        "triangles": int(sum(r["triangles"] for r in results.values())),
        "centre": centre,
        "properties": [p.id for p in props],
        "tiles_reused": reuse.reused if reuse is not None else 0,
    }


def _tile_order(nodes: list[Node]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The buildings in tile order, and each node's range in it."""
    order = np.concatenate([n.members for n in nodes])
    starts = np.zeros(len(nodes) + 1, dtype=np.int64)
    np.cumsum([len(n.members) for n in nodes], out=starts[1:])
    bounds = starts.tolist()
    return order, list(itertools.pairwise(bounds))


# --- the tile budget -----------------------------------------------------------------


def _footprint_hashes(
    given: np.ndarray | None, wkb: np.ndarray | WkbColumn, fitted: np.ndarray
) -> BytesHashes | None:
    """The caller's footprint hashes, those of the simplified rows (new WKB) redone."""
    hashes = _given("footprint_hashes", given, len(wkb), np.uint64)
    if hashes is None:
        return None
    if len(fitted):
        hashes = hashes.copy()
        hashes[fitted] = xxh3_hashes(wkb[fitted])
    return BytesHashes(hashes)


def _given_text(
    text: Mapping[str, pa.Array | pa.ChunkedArray] | None, buildings: Buildings
) -> dict[str, pa.Array]:
    """The caller's Arrow text columns, checked (a mismatch is a bug)."""
    out: dict[str, pa.Array] = {}
    for key, values in (text or {}).items():
        if key not in _TEXT_GIVEN:
            raise ValueError(f"text: {key!r} is not one of {sorted(_TEXT_GIVEN)}")
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            raise ValueError(f"text: {key} is {values.type}, not string")
        if len(values) != len(buildings) or values.null_count:
            raise ValueError(f"text: {key} has {len(values)} values, {values.null_count} missing")
        out[key] = values
    return out


#: The text columns a caller may give in Arrow (the property ids of the fixed ones).
_TEXT_GIVEN = frozenset({"id", "name", "use", "roof_type"})


def _footprint_arrays(
    buildings: Buildings,
    wkb: np.ndarray | WkbColumn | None,
    centres: np.ndarray | None,
    fitted: np.ndarray,
) -> tuple[np.ndarray | WkbColumn, np.ndarray]:
    """The footprints' WKB and centroids: the caller's, with the simplified rows redone."""
    if wkb is None:
        wkb = shapely.to_wkb(buildings.footprints, output_dimension=2)
    elif len(fitted):
        wkb = np.array(wkb, dtype=object)  # a copy (of Arrow WKB too: rare)
        wkb[fitted] = shapely.to_wkb(buildings.footprints[fitted], output_dimension=2)
    if centres is None:
        centres = shapely.get_coordinates(shapely.centroid(buildings.footprints))
    elif len(fitted):
        centres = centres.copy()
        centres[fitted] = shapely.get_coordinates(shapely.centroid(buildings.footprints[fitted]))
    return wkb, centres


def _given(name: str, values: np.ndarray | None, n: int, dtype: Any) -> np.ndarray | None:
    """A caller's per-building array, checked for its length (a mismatch is a bug)."""
    if values is None:
        return None
    values = np.asarray(values, dtype=dtype)
    if values.shape != (n,):
        raise ValueError(f"{name}: {values.shape} values for {n} buildings")
    return values


def _areas(buildings: Buildings, areas: np.ndarray | None, fitted: np.ndarray) -> np.ndarray:
    """Each footprint's lon/lat area: the caller's, with the simplified rows redone."""
    areas = _given("areas", areas, len(buildings), np.float64)
    if areas is None:
        return shapely.area(buildings.footprints)
    if len(fitted):
        areas = areas.copy()
        areas[fitted] = shapely.area(buildings.footprints[fitted])
    return areas


def _fit_footprints(
    buildings: Buildings, report: StageReport, vertex_counts: np.ndarray | None = None
) -> tuple[Buildings, np.ndarray, np.ndarray]:
    """Simplify footprints over ``MAX_FOOTPRINT_VERTICES`` (a copy; reported).

    Returns the table, the rows simplified and every footprint's coordinate count
    (``vertex_counts`` when given: the footprints' ``shapely.get_num_coordinates``).
    """
    counts = _given("vertex_counts", vertex_counts, len(buildings), np.int64)
    if counts is None:
        counts = shapely.get_num_coordinates(buildings.footprints)
    over = np.flatnonzero(counts > MAX_FOOTPRINT_VERTICES)
    if not len(over):
        return buildings, over, counts
    simplified, tolerance = simplify_footprints(buildings.footprints[over])
    before = _vertex_counts(buildings.footprints[over])
    after = _vertex_counts(simplified)
    for i, t, m, n in zip(over.tolist(), tolerance.tolist(), before, after, strict=True):
        how = (
            f"tolerance {t:g} m"
            if np.isfinite(t)
            else "replaced by its oriented bounding rectangle: no simplification up to "
            f"{SIMPLIFY_TOLERANCES_M[-1]:g} m keeps it under {MAX_FOOTPRINT_VERTICES:,}"
        )
        report.repair(buildings.id_of(i), "simplified", f"{m:,} → {n:,} vertices ({how})")
    footprints = buildings.footprints.copy()
    footprints[over] = simplified
    counts = counts.copy()
    counts[over] = shapely.get_num_coordinates(simplified)
    return buildings.replace(footprints=footprints), over, counts


def simplify_footprints(
    footprints: np.ndarray, max_vertices: int = MAX_FOOTPRINT_VERTICES
) -> tuple[np.ndarray, np.ndarray]:
    """Simplify lon/lat footprints to at most ``max_vertices`` coordinates each.

    Each footprint gets the smallest of ``SIMPLIFY_TOLERANCES_M`` (metres, measured in a
    local frame scaled by the cosine of its latitude) whose topology-preserving
    simplification is a valid polygon under the limit; a footprint no tolerance brings
    under it becomes its oriented bounding rectangle (tolerance ``inf``).

    Parameters
    ----------
    footprints : ndarray of Polygon/MultiPolygon
        Valid footprints in EPSG:4326.
    max_vertices : int

    Returns
    -------
    (ndarray, ndarray)
        The simplified footprints (exteriors counter-clockwise) and the tolerance used.
    """
    local = _scaled(footprints, 1.0)
    result = local.copy()
    tolerance = np.full(len(local), np.inf)
    # a topology-preserving simplification keeps every ring (≥ 4 coordinates each)
    todo = np.flatnonzero(4 * _ring_counts(local) <= max_vertices)
    polygonal = [int(shapely.GeometryType.POLYGON), int(shapely.GeometryType.MULTIPOLYGON)]
    for t in SIMPLIFY_TOLERANCES_M:
        candidate = shapely.simplify(local[todo], t, preserve_topology=True)
        ok = (
            (shapely.get_num_coordinates(candidate) <= max_vertices)
            & np.isin(shapely.get_type_id(candidate), polygonal)
            & shapely.is_valid(candidate)
            & (shapely.area(candidate) > 0)
        )
        result[todo[ok]] = candidate[ok]
        tolerance[todo[ok]] = t
        todo = todo[~ok]
        if not len(todo):
            break
    rest = np.flatnonzero(np.isinf(tolerance))
    result[rest] = shapely.oriented_envelope(local[rest])
    result = shapely.orient_polygons(_scaled(result, -1.0, footprints), exterior_cw=False)
    return result, tolerance


def _ring_counts(geoms: np.ndarray) -> np.ndarray:
    """Rings (exteriors and holes) of each polygonal geometry."""
    parts, index = shapely.get_parts(geoms, return_index=True)
    rings = 1 + shapely.get_num_interior_rings(parts)
    return np.bincount(index, weights=rings, minlength=len(geoms)).astype(np.int64)


def _vertex_counts(geoms: np.ndarray) -> list[int]:
    """Distinct vertices of each footprint (ring closures not counted)."""
    return (shapely.get_num_coordinates(geoms) - _ring_counts(geoms)).tolist()


def _scaled(geoms: np.ndarray, direction: float, like: np.ndarray | None = None) -> np.ndarray:
    """lon/lat → local metres (direction 1) or back (-1), per footprint's own latitude."""
    lat = shapely.get_coordinates(shapely.centroid(like if like is not None else geoms))[:, 1]
    k = np.column_stack([_M_PER_DEGREE * np.cos(np.radians(lat)), np.full(len(lat), _M_PER_DEGREE)])
    per_coord = np.repeat(k**direction, shapely.get_num_coordinates(geoms), axis=0)
    return shapely.transform(geoms, lambda xy: xy * per_coord)


def _property_columns(
    buildings: Buildings, report: StageReport
) -> tuple[list[PropertySpec], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The metadata class and its columns for the whole city (text within budget).

    ``extra`` attributes get valid ids (the source name stays the schema ``name``) and
    keep their numeric type (:func:`tiling.gltf.typed_column`). The third item is the
    length in characters of every text value (for the byte estimate).
    """
    props, columns, chars, _ = _property_table(buildings, report)
    return props, {k: text_values(v) for k, v in columns.items()}, chars


def _property_table(
    buildings: Buildings, report: StageReport, text: dict[str, pa.Array] | None = None
) -> tuple[list[PropertySpec], dict[str, np.ndarray], dict[str, np.ndarray], dict[str, pa.Array]]:
    """:func:`_property_columns`, and the text columns Arrow read (for the row hashes
    and the tile tasks); ``text``: those the caller has in Arrow already."""
    floors = np.asarray(buildings.floors, dtype=np.float64)
    address, address_text = _address_column(buildings.addresses)
    # text as held: Arrow-held columns (:class:`cim.model.ArrowText`) stay Arrow
    columns: dict[str, Any] = {
        "id": buildings.held("ids"),
        "name": buildings.held("name"),
        "height": buildings.height,
        "floors": np.where(np.isfinite(floors) & (floors > 0), floors, 0.0),
        "use": buildings.held("use"),
        "roof_type": buildings.held("roof_type"),
        "base": buildings.base,
        "address": address,
    }
    props = list(BUILDING_PROPERTIES)
    names = list(buildings.extra)
    for name, pid in zip(names, metadata_ids(names, [p.id for p in props]), strict=True):
        spec, columns[pid] = typed_column(
            pid,
            buildings.extra[name],
            name=name if name != pid else "",
            description=f"[buildings] extra attribute {name!r}",
        )
        props.append(spec)
    chars: dict[str, np.ndarray] = {}
    arrow: dict[str, pa.Array] = {}
    known = {**(text or {}), "address": address_text}
    for spec in props:
        if spec.type == "STRING":
            columns[spec.id], chars[spec.id], as_arrow = _truncate(
                columns[spec.id], spec, buildings.held("ids"), report, known.get(spec.id)
            )
            if as_arrow is not None:
                arrow[spec.id] = as_arrow
    return props, columns, chars, arrow


def _address_column(addresses: np.ndarray) -> tuple[np.ndarray | ArrowText, pa.Array | None]:
    """Each building's addresses joined by "; ", and the same as an Arrow array.

    Most buildings have none: only the listed ones are joined and converted (the
    Arrow array is assembled from their offsets, not from a million empty strings).
    The column is held as that Arrow array (:class:`~cim.model.ArrowText`, as the
    other text columns): an object array of one "" per building is made only when
    Arrow cannot hold the text (lone surrogates; the Arrow array is None then).
    """
    n = len(addresses)
    listed = addressed_rows(addresses)  # most buildings have none: no join for them
    joined = ["; ".join(a) for a in addresses[listed].tolist()]
    text = _strings_at(n, listed, joined) if n else None
    if text is not None:
        return ArrowText(text), text
    address = np.empty(n, dtype=object)
    address.fill("")
    address[listed] = joined
    return address, None


def _strings_at(n: int, listed: np.ndarray, texts: list[Any]) -> pa.Array | None:
    """An Arrow string array of ``n`` values: ``texts`` at ``listed``, "" elsewhere.

    Only the listed values are converted; the array is assembled from their offsets.
    None unless every one of ``texts`` is a ``str`` UTF-8 can hold (as
    :func:`_arrow_text`).
    """
    values = _arrow_text(texts) if len(texts) else pa.array([], pa.string())
    if values is None:
        return None
    lengths = np.zeros(n, dtype=np.int64)
    lengths[listed] = pc.binary_length(values).to_numpy()
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] >= 2**31:  # beyond a string array's 32-bit offsets
        return None
    data = values.buffers()[2] if len(texts) else None
    offsets_buf = pa.py_buffer(offsets.astype(np.int32))
    return pa.StringArray.from_buffers(n, offsets_buf, data or pa.py_buffer(b""))


def _truncate(
    values: np.ndarray | ArrowText,
    spec: PropertySpec,
    ids: np.ndarray | ArrowText,
    report: StageReport,
    text: pa.Array | None = None,
) -> tuple[np.ndarray | ArrowText, np.ndarray, pa.Array | None]:
    """Cut text values over ``MAX_TEXT_BYTES`` at a character boundary, with a "…".

    ``text``: the column as an Arrow array when the caller has it. Returns the
    column (Arrow-held as given when none is cut), its values' lengths in characters
    and, when every value is text and none was cut, the column as an Arrow array.
    """
    if isinstance(values, ArrowText) and text is None:
        text = values.arrow
    if text is None:
        values = np.asarray(values, dtype=object)
        text = _arrow_text(values)
    if text is not None and int(pc.max(pc.binary_length(text)).as_py()) <= MAX_TEXT_BYTES:
        # all text, none over: the lengths in one pass, no Python call per value
        # int32 as Arrow gives them: five columns' lengths, 0.2 GB less at 10M than int64
        return values, pc.utf8_length(text).to_numpy(), text
    values = np.asarray(text_values(values), dtype=object)
    try:
        chars = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    except TypeError:  # not all text
        text = np.empty(len(values), dtype=object)
        text[:] = [str(v) for v in values.tolist()]
        values = text
        chars = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    # a character is at most 4 UTF-8 bytes: only longer strings can be over
    candidates = np.flatnonzero(chars > MAX_TEXT_BYTES // 4)
    if not len(candidates):
        return values, chars, None
    values, chars = values.copy(), chars.copy()
    keep = MAX_TEXT_BYTES - len("…".encode())
    for i in candidates.tolist():
        raw = str(values[i]).encode("utf-8")
        if len(raw) <= MAX_TEXT_BYTES:
            continue
        values[i] = raw[:keep].decode("utf-8", errors="ignore") + "…"
        chars[i] = len(values[i])
        report.repair(
            ids[i],
            "truncated",
            f"{spec.name or spec.id}: {len(raw):,} → {len(values[i].encode()):,} bytes",
        )
    return values, chars, None


#: Leading values of a text column probed for empty ones (see :func:`_arrow_text`).
_PROBE = 64


def _arrow_text(values: np.ndarray | list[Any]) -> pa.Array | None:
    """The column as an Arrow string array when every value is a ``str``, else None.

    A column that starts mostly empty (names, extra attributes) is checked for empty
    values with one comparison in C and only its other values are converted.
    """
    if not len(values):
        return None
    if isinstance(values, np.ndarray) and 2 * values[:_PROBE].tolist().count("") > min(
        len(values), _PROBE
    ):
        blank = np.empty((), dtype=object)
        blank[()] = ""
        try:
            listed = np.flatnonzero(values != blank)
        except (TypeError, ValueError):  # values that do not compare to text
            listed = None
        if listed is not None and 2 * len(listed) < len(values):
            return _strings_at(len(values), listed, values[listed].tolist())
    try:
        text = pa.array(values, from_pandas=False)
    except (pa.ArrowException, TypeError, ValueError, UnicodeError):
        return None  # not all text, or text UTF-8 cannot hold (lone surrogates)
    string = isinstance(text, pa.Array) and text.type in (pa.string(), pa.large_string())
    return text if string and not text.null_count else None


def _row_bytes(
    columns: dict[str, np.ndarray],
    props: list[PropertySpec],
    chars: dict[str, np.ndarray],
    vertices: np.ndarray,
    options: L2Options,
) -> np.ndarray:
    """Planning estimate of each building's share of its tile's bytes."""
    est = vertices * BYTES_PER_VERTEX[options.compression]
    json_numbers = options.format == "b3dm"  # batch table: numbers as JSON text
    for spec in props:
        col = columns[spec.id]
        if spec.type != "STRING":
            est += 24 if json_numbers else col.dtype.itemsize
            continue
        # ≤ 3 bytes per character for all but rare astral characters; exact when long
        text = chars[spec.id] * 3.0
        long = np.flatnonzero(chars[spec.id] > 64)
        text[long] = [len(v.encode("utf-8")) for v in col[long].tolist()]
        text += 4  # + offset
        est += text
    return est


def _split_oversized(
    nodes: list[Node],
    ranges: list[tuple[int, int]],
    results: dict[str, dict[str, Any]],
    ranked_size: np.ndarray,
    tasks: _Tasks,
    executor: Executor,
    report: StageReport,
) -> None:
    """Split tiles whose encoded content is over the budget until every one fits.

    The larger half of a tile's buildings (they are sorted by size) stays; the rest
    becomes a new child over the same cell that takes the tile's children, and the
    tile's geometric error becomes the size of the largest building moved down.
    """
    budget = tasks.shared.options.max_tile_bytes
    while True:
        over = [i for i, n in enumerate(nodes) if results[n.key]["bytes"] > budget]
        todo = [i for i in over if ranges[i][1] - ranges[i][0] > 1]
        if not todo:
            break
        log.debug("l2: splitting %d tiles over %d bytes", len(todo), budget)
        again = []
        for i in todo:
            node, (start, stop) = nodes[i], ranges[i]
            mid = (start + stop) // 2
            child = Node(
                node.level,
                node.x,
                node.y,
                node.members[mid - start :],
                geometric_error=node.geometric_error,
                children=node.children,
                part=len(nodes),
            )
            node.members = node.members[: mid - start]
            node.children = [len(nodes)]
            node.geometric_error = float(ranked_size[mid])
            nodes.append(child)
            ranges[i] = (start, mid)
            ranges.append((mid, stop))
            again += [_TileJob(node.key, start, mid), _TileJob(child.key, mid, stop)]
        results.update(_run_jobs(again, tasks, executor, None, None))
    for i in over:
        report.warn(
            f"tile {nodes[i].key} holds one building "
            f"({tasks.building_id(ranges[i][0])}) and is {results[nodes[i].key]['bytes']:,}"
            f" bytes, over the {budget:,}-byte budget"
        )


class _Clock:
    """Debug-level timing of the writer's phases."""

    def __init__(self) -> None:
        self.t = time.perf_counter()

    def lap(self, what: str) -> None:
        now = time.perf_counter()
        log.debug("l2: %s %.2f s", what, now - self.t)
        self.t = now


def _frame(
    buildings: Buildings, bounds: tuple[float, float, float, float] | None = None
) -> tuple[np.ndarray, list[float]]:
    west, south, east, north = buildings.bounds() if bounds is None else bounds
    lon0, lat0 = (west + east) / 2.0, (south + north) / 2.0
    h0 = float(np.median(buildings.base)) if len(buildings) else 0.0
    return enu_to_ecef_matrix(lon0, lat0, h0), [lon0, lat0, h0]


def _geometry(
    footprints: np.ndarray, base_h: np.ndarray, height: np.ndarray, frame: np.ndarray
) -> dict[str, np.ndarray]:
    """Ragged footprint arrays of buildings in the local frame, base and roof.

    ``footprints`` are 2D WKB (read with numpy, :mod:`.ragged`) or shapely geometries.
    """
    is_wkb = len(footprints) > 0 and isinstance(footprints[0], bytes)
    ragged = wkb_to_ragged(footprints) if is_wkb else None
    if ragged is None and is_wkb:  # not little-endian 2D polygons: shapely reads it
        footprints = shapely.from_wkb(footprints)
    if ragged is not None:
        coords, ring_offsets, part_ring_offsets, part_building = ragged
    else:
        if np.all(shapely.get_type_id(footprints) == int(shapely.GeometryType.POLYGON)):
            parts, part_building = footprints, np.arange(len(footprints))
        else:
            parts, part_building = shapely.get_parts(footprints, return_index=True)
        _, coords, (ring_offsets, part_ring_offsets) = shapely.to_ragged_array(parts)
    ring_part = np.repeat(np.arange(len(part_building)), np.diff(part_ring_offsets))
    ring_building = part_building[ring_part]
    ring_len = np.diff(ring_offsets)
    # the roof is straight up along the ellipsoid normal: exact, and one conversion saved
    # (the normal shares the position's sines and cosines)
    base, up = lonlat_to_enu_up(
        coords[:, 0], coords[:, 1], np.repeat(base_h[ring_building], ring_len), frame
    )
    top = base + up * np.repeat(height[ring_building], ring_len)[:, None]
    return {
        "base": base,
        "top": top,
        "ring_offsets": ring_offsets,
        "part_ring_offsets": part_ring_offsets,
        "part_building": part_building,
    }


def _ranking(
    buildings: Buildings,
    frame: np.ndarray,
    centres: np.ndarray,
    coords: np.ndarray,
    areas: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per building: centre in the frame (m), size (m) and mesh vertex estimate.

    ``areas``: the footprints' lon/lat areas when known (else computed).
    """
    n = len(centres)
    base = np.asarray(buildings.base, dtype=np.float64)
    # a block of rows at a time: the conversion's temporaries are a dozen arrays of
    # its rows (0.7 GB at ten million), and only the plane coordinates are kept. Blocks
    # of nearly equal size: a block of one row would be rotated by another BLAS
    # routine, whose last bit differs from the whole array's
    centre_xy = np.empty((n, 2))
    blocks = max(1, -(-n // RANKING_BLOCK))
    edges = np.linspace(0, n, blocks + 1).round().astype(np.int64).tolist()
    for start, stop in itertools.pairwise(edges):
        enu = lonlat_to_enu(centres[start:stop, 0], centres[start:stop, 1], base[start:stop], frame)
        centre_xy[start:stop] = enu[:, :2]
    if areas is None:
        areas = shapely.area(buildings.footprints)
    # in place, in the same order of operations (the same values to the last bit)
    size = areas * (111_320.0**2)
    cos = np.radians(centres[:, 1])
    size *= np.cos(cos, out=cos)
    del cos
    np.sqrt(np.maximum(size, 0.0, out=size), out=size)
    np.maximum(buildings.height, size, out=size)
    # walls: 4 vertices per edge; roof: one per ring vertex (closing vertices overcount a bit)
    vertices = 5 * coords.astype(np.int64)  # coords: the footprints' coordinate counts
    return centre_xy, size, vertices


class _Tasks:
    """Makes each tile's self-contained task, and each tile's content hash."""

    def __init__(
        self,
        shared: _TileFrame,
        buildings: Buildings,
        columns: dict[str, np.ndarray],
        order: np.ndarray,
        wkb: np.ndarray | WkbColumn,
        arrow: dict[str, pa.Array] | None = None,
        hashes: BytesHashes | None = None,
    ) -> None:
        self.shared, self.buildings = shared, buildings
        # in input order: a tile takes its rows through ``order`` (tile order)
        self.columns, self.wkb, self.order = columns, wkb, order
        # text columns as Arrow arrays, for the row hashes and the tasks
        self.arrow = arrow or {}
        # the footprints' hashes when the caller had them (else hashed from the WKB)
        self.hashes = hashes

    def make(self, job: _TileJob, digest: str = "") -> _TileTask:
        rows = self.order[job.start : job.stop]
        # text goes as Arrow arrays: taken and pickled as buffers, a quarter of the
        # build process's work for a tile's object arrays (the worker converts back)
        taken = pa.array(rows) if self.arrow else None
        return _TileTask(
            key=job.key,
            shared=self.shared,
            # Arrow buffers when the column is Arrow: no Python bytes per footprint to
            # pickle here and unpickle there (the worker reads the buffers, .ragged)
            footprints=self.wkb[rows]
            if isinstance(self.wkb, WkbColumn)
            else np.asarray(self.wkb[rows]),
            base=self.buildings.base[rows],
            height=self.buildings.height[rows],
            table={
                p.id: self.arrow[p.id].take(taken)
                if p.id in self.arrow
                else self.columns[p.id][rows]
                for p in self.shared.properties
            },
            digest=digest,
        )

    def with_rows(
        self, jobs_list: list[_TileJob], digests: dict[str, str], files: RowsFiles
    ) -> Iterator[_TileRef]:
        """Each job's task, in order: its rows written to ``files`` a group of jobs at
        a time, just before the group's tasks are handed out."""
        sizes = [j.stop - j.start for j in jobs_list]
        for group in groups(sizes):
            jobs = [jobs_list[i] for i in group]
            rows = np.concatenate([self.order[j.start : j.stop] for j in jobs])
            batch, inline = self._rows(rows)
            refs = files.write([j.key for j in jobs], batch, [sizes[i] for i in group])
            for job, ref in zip(jobs, refs, strict=True):
                taken = self.order[job.start : job.stop]
                own = {pid: self.columns[pid][taken] for pid in inline}
                yield _TileRef(job.key, self.shared, ref, own, digests[job.key])

    def _rows(self, rows: np.ndarray) -> tuple[pa.RecordBatch, list[str]]:
        """Rows ``rows`` as a rows file's batch (one gather per column), and the
        properties it cannot hold (object columns that are not Arrow text: each task
        carries its own rows of them)."""
        if isinstance(self.wkb, WkbColumn):
            footprints = self.wkb[rows].arrow
        else:  # bytes (made here from shapely geometries, or with simplified rows)
            footprints = pa.array(self.wkb[rows], pa.binary())
        if isinstance(footprints, pa.ChunkedArray):
            footprints = footprints.combine_chunks()
        columns = {
            "footprints": footprints,
            "base": pa.array(self.buildings.base[rows]),
            "height": pa.array(self.buildings.height[rows]),
        }
        inline: list[str] = []
        taken = pa.array(rows)
        for p in self.shared.properties:
            values = self.columns[p.id]
            if p.id in self.arrow:
                columns[_TEXT + p.id] = self.arrow[p.id].take(taken)
            elif isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
                columns[_NUMBERS + p.id] = pa.array(values[rows])
            else:
                inline.append(p.id)
        return pa.RecordBatch.from_pydict(columns), inline

    def digests(self, jobs_list: list[_TileJob]) -> dict[str, str]:
        """Each job's :func:`tile_hash`, from the whole city's row hashes.

        Rows are hashed once in input order (sequential memory); a tile's digest is
        taken over its slice of them in tile order.
        """
        table = {p.id: self.arrow.get(p.id, self.columns[p.id]) for p in self.shared.properties}
        b = self.buildings
        footprints = np.asarray(self.wkb) if self.hashes is None else self.hashes
        rows = _row_hashes(footprints, b.base, b.height, table, self.shared.properties)
        rows = rows[self.order]
        prefix = _hash_prefix(self.shared)
        return {j.key: _tile_digest(prefix, j.key, rows[j.start : j.stop]) for j in jobs_list}

    def building_id(self, position: int) -> str:
        """The id of the building at ``position`` in tile order."""
        return self.buildings.id_of(int(self.order[position]))


def _run_jobs(
    jobs_list: list[_TileJob],
    tasks: _Tasks,
    executor: Executor,
    track: Tracker | None,
    reuse: _Reuse | None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    # big tiles first so the workers do not end on a straggler
    jobs_list = sorted(jobs_list, key=lambda j: j.start - j.stop)
    # hashed once here from the city's row hashes: cheaper than per tile on the workers
    digests = tasks.digests(jobs_list)
    if reuse is not None and reuse.old:
        todo = []
        for job in jobs_list:
            hit = reuse.take(job.key, digests[job.key])
            if hit is None:
                todo.append(job)
            else:
                yield job.key, hit
        log.info("l2: %d of %d tiles unchanged, reused", reuse.reused, len(jobs_list))
        jobs_list = todo
    if not jobs_list:
        return
    files = RowsFiles(Path(tasks.shared.out_dir))
    try:
        for key, figures in executor.map(
            _encode_tile,
            tasks.with_rows(jobs_list, digests, files),
            total=len(jobs_list),
            track=track,
            desc="L2 tiles",
            unit="tile",
        ):
            files.done(key)
            yield key, figures
    finally:
        files.close()


# --- incremental rebuilds -------------------------------------------------------------

#: Per-tile content hashes and figures of a tileset, for the next build.
INDEX_FILE = "tiles-index.json"


#: What a tile hash covers and how: an index of another format reuses nothing.
HASH_FORMAT = b"l2-rows-2"


def tile_hash(task: _TileTask) -> str:
    """Hash of everything a tile's content depends on (never where it is written).

    The frame, the options, the metadata class, the key and, in order, each of its
    buildings' row hash (:func:`_row_hashes`): the build process hashes the whole
    city's rows once and gets the same digest per tile (:meth:`_Tasks.digests`).
    """
    rows = _row_hashes(task.footprints, task.base, task.height, task.table, task.shared.properties)
    return _tile_digest(_hash_prefix(task.shared), task.key, rows)


def _row_hashes(
    footprints: np.ndarray | pa.Array | BytesHashes,
    base: np.ndarray,
    height: np.ndarray,
    table: dict[str, np.ndarray | pa.Array],
    properties: list[PropertySpec],
) -> np.ndarray:
    """Per building, a 64-bit hash of its footprint WKB, base, height and metadata."""
    return hash_rows([footprints, base, height, *(table[p.id] for p in properties)])


def _hash_prefix(shared: _TileFrame) -> Any:
    """The blake2b state after what all tiles share (copied per tile)."""
    h = hashlib.blake2b(HASH_FORMAT, digest_size=16)
    h.update(np.ascontiguousarray(shared.frame, dtype=np.float64).tobytes())
    h.update(repr((shared.options, shared.properties)).encode())
    return h


def _tile_digest(prefix: Any, key: str, rows: np.ndarray) -> str:
    h = prefix.copy()
    h.update(key.encode() + b"\x1e")
    h.update(np.ascontiguousarray(rows, dtype="<u8").tobytes())
    return h.hexdigest()


class _Reuse:
    """Tiles of the previous build that can be hard-linked instead of encoded."""

    def __init__(self, previous: Path, out_dir: Path, suffix: str) -> None:
        self.previous, self.out_dir, self.suffix = previous, out_dir, suffix
        # strings, not Paths: a thousand tiles' paths are joined per rebuild
        self._from = os.path.join(previous, "content", "")
        self._to = os.path.join(out_dir, "content", "")
        self.reused = 0
        try:
            self.old = json.loads((previous / INDEX_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.old = {}

    def take(self, key: str, digest: str) -> dict[str, Any] | None:
        entry = self.old.get(key)
        if entry is None or entry.get("hash") != digest:
            return None
        name = f"{_content_name(key)}{self.suffix}"
        try:
            os.link(self._from + name, self._to + name)
        except FileExistsError:
            pass
        except OSError:
            return None  # gone, or another file system: encode it again
        self.reused += 1
        return {**entry, "lo": np.array(entry["lo"]), "hi": np.array(entry["hi"])}


def _write_index(out_dir: Path, results: dict[str, dict[str, Any]]) -> None:
    index = {
        key: {
            "hash": r["hash"],
            "bytes": int(r["bytes"]),
            "triangles": int(r["triangles"]),
            "lo": [float(v) for v in r["lo"]],
            "hi": [float(v) for v in r["hi"]],
        }
        for key, r in sorted(results.items())
    }
    (out_dir / INDEX_FILE).write_text(json.dumps(index, separators=(",", ":")), encoding="utf-8")


def _encode_tile(task: _TileTask | _TileRef) -> tuple[str, dict[str, Any]]:
    """Extrude, encode and write one tile; return its size and content box."""
    if isinstance(task, _TileRef):
        task = task.load()
    shared = task.shared
    options = shared.options
    geo = _geometry(task.footprints, task.base, task.height, shared.frame)
    mesh = extrude(
        geo["base"],
        geo["top"],
        geo["ring_offsets"],
        geo["part_ring_offsets"],
        geo["part_building"],
        skirt=options.skirt,
        shared_rows=True,  # walls and roofs share rows: each is encoded once
    )
    props = shared.properties
    # the glb's property table takes Arrow text as it is (b3dm: JSON of the values)
    text = {p.id for p in props if p.type == "STRING"} if options.format != "b3dm" else ()
    table = {k: _as_text(v) if k in text else _as_numpy(v) for k, v in task.table.items()}
    pos = mesh.positions
    lo = np.array([pos[:, k].min() for k in range(3)])  # per column: faster than axis=0
    hi = np.array([pos[:, k].max() for k in range(3)])
    # the encoder quantizes to the same extremes: computed once
    encoding = {"compression": options.compression, "enu_bounds": (lo, hi)}
    if options.format == "b3dm":
        data = write_b3dm(write_glb(mesh, props, table, batch_ids=True, **encoding), table, props)
    else:
        data = write_glb(mesh, props, table, **encoding)
    path = Path(shared.out_dir) / "content" / f"{_content_name(task.key)}{options.suffix}"
    path.write_bytes(data)
    # content is quantized to 1/65535 of its extent: widen the box by one step
    pad = float((hi - lo).max()) / 65535.0 + 0.01
    return task.key, {
        "hash": task.digest or tile_hash(task),
        "bytes": len(data),
        "triangles": len(mesh.indices) // 3,
        "lo": lo - pad,
        "hi": hi + pad,
    }


def _as_numpy(values: np.ndarray | pa.Array) -> np.ndarray:
    """A task's column as the encoders take it (Arrow text: an object array of str)."""
    if isinstance(values, pa.Array):
        return values.to_numpy(zero_copy_only=False)
    return values


def _as_text(values: np.ndarray | pa.Array) -> np.ndarray | EncodedText:
    """A task's text column as the glb's property table takes it.

    An Arrow string array is that table's layout already (UTF-8 values and their
    offsets): its buffers are taken as they are, with no Python string per value. Other
    columns, and Arrow text with nulls or NUL characters (which
    :func:`tiling.gltf.encode_strings` drops), go through :func:`_as_numpy`.
    """
    kind = values.type if isinstance(values, pa.Array) else None
    if kind is None or values.null_count or kind not in (pa.string(), pa.large_string()):
        return _as_numpy(values)
    n = len(values)
    if not n:
        return EncodedText(b"", np.zeros(1, dtype=np.int64))
    _, offsets_buffer, data_buffer = values.buffers()
    width = 8 if kind == pa.large_string() else 4
    offsets = np.frombuffer(
        offsets_buffer, dtype=f"<i{width}", count=n + 1, offset=values.offset * width
    )
    start, stop = int(offsets[0]), int(offsets[-1])
    data = data_buffer[start:stop].to_pybytes() if stop > start else b""
    if b"\0" in data:
        return _as_numpy(values)
    return EncodedText(data, offsets - start if start else offsets)


def _content_name(key: str) -> str:
    return key.replace("/", "_")


def _tileset(
    options: L2Options,
    nodes: list[Node],
    results: dict[str, dict[str, Any]],
    frame: np.ndarray,
    buildings: Buildings,
) -> Tileset:
    boxes: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def box(i: int) -> tuple[np.ndarray, np.ndarray]:
        # children first (a split tile's new child comes after its own children)
        lo, hi = results[nodes[i].key]["lo"], results[nodes[i].key]["hi"]
        for c in nodes[i].children:
            clo, chi = box(c)
            lo, hi = np.minimum(lo, clo), np.maximum(hi, chi)
        boxes[i] = (lo, hi)
        return lo, hi

    box(0)

    def make(i: int) -> Tile:
        node = nodes[i]
        lo, hi = boxes[i]
        return Tile(
            bounding_volume=Box.from_min_max(tuple(lo), tuple(hi)),
            geometric_error=node.geometric_error,
            content_uri=f"content/{_content_name(node.key)}{options.suffix}",
            children=[make(c) for c in node.children],
        )

    root = make(0)
    root.refine = "ADD"
    root.transform = [float(v) for v in frame.T.ravel()]
    lo, hi = boxes[0]
    span = float(np.linalg.norm(hi[:2] - lo[:2]))
    return Tileset(
        version="1.0" if options.format == "b3dm" else "1.1",
        root=root,
        geometric_error=max(span, root.geometric_error),
        properties={
            "height": {
                "minimum": float(buildings.height.min()),
                "maximum": float(buildings.height.max()),
            },
        },
    )
