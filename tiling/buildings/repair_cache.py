"""Per-row footprint repairs kept for the next build (incremental rebuilds).

The repair of a footprint (:mod:`.repair`) depends on that row alone (its id and its
geometry), on the CRS and on ``[buildings] min_area``. So the buildings stage keeps
every repaired row's result — kept or not, the repaired footprint as WKB with its
figures (:class:`~tiling.buildings.footprints.FootprintArrays`: centroid, lon/lat
bounds, area, vertex count, type, holes, WKB hash), its report entries, its bounds in
the source CRS — in ``work/buildings/repairs.arrow``, keyed by the row's
*fingerprint*: the 64-bit xxh3 hash and the length of its geometry as stored in the
source (WKB), checked together with a hash of its id. The next build of the city looks every row
up there and sends only the rows it does not find (new or changed ones) to the workers; all of
them when the CRS or ``min_area`` changed, or the code that checks and repairs rows,
or the GEOS or PROJ it runs on (:func:`settings`). A row found is taken as it was, so
the build report is the same as after a full repair.

A rebuild that finds most rows there does not write the whole cache again: the last
build's file is hard-linked as it is (its rows not found any more stay, unused) and
only the rows it does not hold go to ``work/buildings/repairs-delta.arrow``, tied to
that file by a token. The next build reads both. When the rows outside the linked file
(new, changed, gone) reach :data:`MAX_DELTA_SHARE` of it, the whole cache is written
again, without the rows no longer used.

A source that does not store WKB (CSV with WKT or x/y columns) has no fingerprints:
all its rows are repaired, every build.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import xxhash

from cim.errors import DatasetIOError
from cim.memory import map_file, release_unused
from cim.model import ArrowText, WkbColumn, as_wkb_arrow, take_binary
from tiling.buildings.footprints import FootprintArrays
from tiling.buildings.repair import Record
from tiling.buildings.rowhash import column_values

log = logging.getLogger(__name__)

#: The cache's layout (4: a file and a delta; fingerprints are a 64-bit hash and the
#: length since 3).
VERSION = 4
#: Arrow IPC files, uncompressed: the next build maps them and takes its columns as
#: they are (a Parquet file of the same rows took 1-2 s to decode at a million rows).
FILE = "repairs.arrow"
#: The rows a rebuild added to the (hard-linked) :data:`FILE`.
DELTA = "repairs-delta.arrow"
#: Rows whose report entries :meth:`RepairCache.records` decodes at a time.
RECORD_ROWS = 1 << 18
_META = b"cim:repairs"
#: Which file: ``{"token": ...}`` for :data:`FILE`, ``{"delta_of": token}`` for :data:`DELTA`.
_PART = b"cim:repairs-part"
#: A rebuild writes the whole cache again once the rows outside the last build's
#: :data:`FILE` (new, changed or no longer used) reach this share of it.
MAX_DELTA_SHARE = 0.1
BOUNDS = ("xmin", "ymin", "xmax", "ymax")
#: the repaired footprint's lon/lat bounds
LONLAT_BOUNDS = ("west", "south", "east", "north")


def fingerprints(wkb: np.ndarray | WkbColumn | pa.Array | pa.ChunkedArray) -> np.ndarray:
    """(n, 2) uint64: each row's stored geometry as a 64-bit hash of its bytes and its
    length.

    ``wkb`` holds bytes: an object array (None for a row without geometry) or Arrow
    binary (a :class:`~cim.model.WkbColumn`, null for none); a row without geometry
    is taken as empty. The hash is :func:`~tiling.buildings.rowhash.column_values`'
    of Arrow binary, vectorised over the values' buffers (an object array is put in
    Arrow a block at a time), so the same bytes give the same fingerprint either way
    and an Arrow column is hashed without a Python object per row. A changed geometry
    keeps its fingerprint with probability about 2**-64 (the tiles' content hashes are
    64 bits too).
    """
    block = 1 << 17  # rows hashed at once: the hash's temporaries stay small
    if isinstance(wkb, WkbColumn):
        wkb = wkb.arrow
    if isinstance(wkb, pa.Array | pa.ChunkedArray):
        chunks = wkb.chunks if isinstance(wkb, pa.ChunkedArray) else [wkb]
        pieces = [c.slice(a, block) for c in chunks for a in range(0, len(c), block)]
    else:  # bytes objects: into Arrow a block at a time (no copy of all of them at once)
        values = np.asarray(wkb, dtype=object)
        pieces = [values[a : a + block] for a in range(0, len(values), block)]
    empty = column_values(pa.array([b""], pa.binary()))[0]

    def one(piece: pa.Array | np.ndarray) -> np.ndarray:
        arrow = piece if isinstance(piece, pa.Array) else pa.array(piece, pa.binary())
        if pa.types.is_large_binary(arrow.type):
            arrow = arrow.cast(pa.binary())
        out = np.empty((len(arrow), 2), dtype=np.uint64)
        out[:, 0] = column_values(arrow)
        offsets = np.frombuffer(arrow.buffers()[1], dtype=np.int32)
        out[:, 1] = np.diff(offsets[arrow.offset : arrow.offset + len(arrow) + 1])
        if arrow.null_count:  # no geometry: as empty bytes
            out[np.asarray(arrow.is_null()).astype(bool)] = (empty, 0)
        return out

    if len(pieces) <= 1:
        return one(pieces[0]) if pieces else np.empty((0, 2), dtype=np.uint64)
    # numpy's gathers and sums run without the GIL: the blocks hash side by side
    with ThreadPoolExecutor(min(len(pieces), os.cpu_count() or 1)) as pool:
        return np.concatenate(list(pool.map(one, pieces)))


def id_hashes(
    ids: np.ndarray | ArrowText, arrow: pa.Array | pa.ChunkedArray | None = None
) -> np.ndarray:
    """(n,) uint64: each row's id as a 64-bit hash of its text, from its Arrow twin
    when there is one (vectorised, without a Python string per row). A row found in
    the cache must have the same fingerprint and the same id hash: a renamed row is
    repaired again, so its report entries name it as it is called now."""
    if isinstance(arrow, pa.ChunkedArray):
        arrow = arrow.combine_chunks()
    return column_values(arrow if arrow is not None else ids)


@dataclass(frozen=True)
class RepairCache:
    """The last build's repair results, in that build's row order.

    Attributes
    ----------
    keys : (n, 2) ndarray of uint64
        Fingerprints (:func:`fingerprints`).
    id_hashes : (n,) ndarray of uint64
        The rows' ids as :func:`id_hashes` (compared in place of the text).
    keep : ndarray of bool
        Whether the row was still a building after the repair.
    footprints : FootprintArrays
        The repaired lon/lat footprint (2D WKB) and its figures (None / NaN where
        not kept).
    entries : ndarray of str, or Arrow string
        The row's report entries as JSON ``[[phase, "s"|"r", entry], ...]``, or None
        (null). Read from a file, the file's own column: decoded only for the rows
        asked that have some (:meth:`records`).
    bounds : (n, 4) ndarray
        The row's bounds in the source CRS, for the CRS checks of the next build
        (which does not read the geometries it finds here).
    base : Base or None
        When read from a folder: its :data:`FILE`, whose rows come first (a delta's
        follow).
    """

    keys: np.ndarray
    id_hashes: np.ndarray
    keep: np.ndarray
    footprints: FootprintArrays
    entries: np.ndarray | pa.Array | pa.ChunkedArray
    bounds: np.ndarray
    base: Base | None = None

    def find(self, keys: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Index of each row (fingerprint and :func:`id_hashes`) in the cache, -1 when
        absent."""
        n = min(len(keys), len(self.keys))
        found = np.full(len(keys), -1, dtype=np.int64)
        # most rows are where they were: compared in place, in one sequential pass
        same = (keys[:n, 0] == self.keys[:n, 0]) & (keys[:n, 1] == self.keys[:n, 1])
        same[same] = self.id_hashes[:n][same] == ids[:n][same]
        found[:n][same] = np.flatnonzero(same)
        rest = np.flatnonzero(found < 0)
        if len(rest) and len(self.keys):  # moved, new or changed rows: a sorted join
            # with the cache rows not matched in place (few when few rows changed)
            free = np.ones(len(self.keys), dtype=bool)
            free[:n] = ~same
            found[rest] = self._search(keys[rest], ids[rest], np.flatnonzero(free))
        return found

    def _search(self, keys: np.ndarray, ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Each key's (and id's) index among the cache's ``rows``, -1 when absent."""
        # both sides sorted: the search walks memory in order (identical geometries
        # under other ids may miss: those rows are repaired again, which is only slower)
        if not len(rows):
            return np.full(len(keys), -1, dtype=np.int64)
        mine = rows[np.argsort(self.keys[rows, 0], kind="stable")]
        theirs = np.argsort(keys[:, 0], kind="stable")
        at = np.searchsorted(self.keys[mine, 0], keys[theirs, 0])
        idx = np.empty(len(keys), dtype=np.int64)
        idx[theirs] = mine[np.minimum(at, len(mine) - 1)]
        hit = (self.keys[idx, 0] == keys[:, 0]) & (self.keys[idx, 1] == keys[:, 1])
        hit[hit] = self.id_hashes[idx[hit]] == ids[hit]
        return np.where(hit, idx, -1)

    def records(self, found: np.ndarray, rows: np.ndarray) -> list[Record]:
        """The report records of cached rows ``found`` (indices), ``rows`` in the city."""
        # Arrow (the JSON's bytes): the rows without entries (most) never become objects
        entries = _strings(self.entries).cast(pa.binary())
        present = np.asarray(entries.is_valid().to_numpy(zero_copy_only=False))
        some = np.flatnonzero(present[found])
        out: list[Record] = []
        # a block of texts at a time: only the records stay (3.2 million at 10M rows)
        for start in range(0, len(some), RECORD_ROWS):
            block = some[start : start + RECORD_ROWS]
            texts = take_binary(entries, found[block], join=False).to_pylist()
            for row, text in zip(rows[block].tolist(), texts, strict=True):
                out.extend((phase, row, kind, entry) for phase, kind, entry in json.loads(text))
        return out


@dataclass(frozen=True)
class Made:
    """This build's repairs, for the next build: rows ``rows`` of the build's own
    arrays over every input row (not copies, so nothing may change them until written;
    fields as :class:`RepairCache`'s), and the report ``entries`` of those rows alone.

    :func:`write` takes them a slice at a time (:meth:`piece`): a copy of the
    repaired city made up front would stay beside the build's own while the stage
    goes on (over a gigabyte at ten million footprints).
    """

    keys: np.ndarray
    id_hashes: np.ndarray
    keep: np.ndarray
    footprints: FootprintArrays
    bounds: np.ndarray
    rows: np.ndarray | None  # None: every row, in order (no index of the whole city)
    entries: np.ndarray

    @classmethod
    def of(cls, cache: RepairCache) -> Made:
        """All the rows of ``cache``."""
        return cls(
            cache.keys,
            cache.id_hashes,
            cache.keep,
            cache.footprints,
            cache.bounds,
            None,
            cache.entries,
        )

    def __len__(self) -> int:
        return len(self.keys) if self.rows is None else len(self.rows)

    def piece(self, part: slice) -> RepairCache:
        """Rows ``part`` (of :attr:`rows`) as a cache of their own."""
        every = self.rows is None  # every row, in order
        rows = np.arange(*part.indices(len(self.keys))) if every else self.rows[part]
        fp = self.footprints
        # the WKB gathered for these rows only (never the whole column joined)
        wkb = fp.wkb.piece(rows) if isinstance(fp.wkb, WkbColumn) else fp.wkb[rows]
        return RepairCache(
            self.keys[rows],
            self.id_hashes[rows],
            self.keep[rows],
            replace(fp.take(rows), wkb=wkb),
            self.entries[part],
            self.bounds[rows],
        )


@dataclass(frozen=True)
class Base:
    """A cache's :data:`FILE` as read: where it is, its token and its row count."""

    path: Path
    token: str
    rows: int


def delta_rows(cache: RepairCache, found: np.ndarray) -> np.ndarray | None:
    """Which of a build's rows (``found``: each one's index in ``cache``, -1 when
    repaired now) a delta to ``cache.base`` must hold, or None when the whole cache
    is better written again (no base, or too many rows outside it).
    """
    base = cache.base
    if base is None or not base.rows:
        return None
    in_base = (found >= 0) & (found < base.rows)
    used = np.zeros(base.rows, dtype=bool)
    used[found[in_base]] = True
    outside = len(found) - int(np.count_nonzero(in_base))  # new rows, the delta's
    unused = base.rows - int(np.count_nonzero(used))  # changed or gone since
    if outside + unused > MAX_DELTA_SHARE * base.rows:
        return None
    return ~in_base


@dataclass
class Repairs:
    """The repairs of one build: the last build's to reuse, this build's to keep.

    Attributes
    ----------
    previous : Path or None
        The last build's ``work/buildings`` folder (None: repair every row).
    made : Made or None
        This build's rows (set by the repair when the source has fingerprints); with
        ``base``, only those the base does not hold.
    base : Base or None
        The last build's :data:`FILE` that ``made`` is a delta to (linked, not written).
    crs, min_area
        The settings ``made`` was repaired with.
    reused, rows : int
        Rows taken from ``previous``, of ``rows`` that needed a repair.
    """

    previous: Path | None = None
    made: Made | None = None
    base: Base | None = None
    crs: str = ""
    min_area: float = 0.0
    reused: int = 0
    rows: int = 0
    _loading: tuple[float, Future[tuple[RepairCache, str] | None]] | None = None

    def prefetch(self, min_area: float) -> None:
        """Start reading the last build's cache (:func:`load`) on a thread, so that it
        overlaps the work before it is needed (the rows' fingerprints; the reading is
        mostly Arrow's own, without the GIL)."""
        if self.previous is None or self._loading is not None:
            return
        reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cim-repairs")
        self._loading = (min_area, reader.submit(load, self.previous, min_area))
        reader.shutdown(wait=False)  # the thread ends with its one task

    def last(self, min_area: float) -> tuple[RepairCache, str] | None:
        """The last build's cache and its CRS (:func:`load`), from :meth:`prefetch`
        when it was started for this ``min_area``."""
        loading, self._loading = self._loading, None
        if loading is not None and loading[0] == min_area:
            return loading[1].result()
        return load(self.previous, min_area)


def settings(crs: str, min_area: float) -> dict[str, object]:
    """What besides a row decides its repair (a cache made with others is not used)."""
    return {"version": VERSION, "code": code_digest(), "crs": crs, "min_area": float(min_area)}


@functools.cache
def code_digest() -> str:
    """A digest of the code that reads, checks and repairs a row, and of the GEOS and
    PROJ it runs on: a change to any of them (a GEOS upgrade may repair a bowtie
    otherwise) makes every row be repaired again, never mixed with older results."""
    import pyproj
    import shapely

    import cim.crs
    import cim.readers
    from tiling.buildings import footprints, plain, prepare, ragged, repair, repair_cache, rowhash

    h = hashlib.blake2b(digest_size=12)
    # ragged: the scan that stands for the parse in the checks (prepare._read_rows)
    # repair_cache: its fingerprints are the rows' keys; plain: the repair's array route
    modules = (repair, plain, prepare, repair_cache, footprints, rowhash, ragged)
    for module in (*modules, cim.crs, cim.readers):
        h.update(Path(module.__file__ or "").read_bytes())
    libraries = (shapely.__version__, shapely.geos_version_string)
    h.update(repr((*libraries, pyproj.__version__, pyproj.proj_version_str)).encode())
    return h.hexdigest()


def load(folder: Path | None, min_area: float) -> tuple[RepairCache, str] | None:
    """The cache in ``folder`` (the last build's ``work/buildings``: its :data:`FILE`
    and the :data:`DELTA` made for that file) and the CRS its rows were repaired in
    (the caller checks it once it has resolved its own).

    None when there is none, it was made with another version or ``min_area``, or it
    cannot be read (a damaged cache costs a full repair, never the build). A delta
    that cannot be read or was made for another file is left out: its rows are
    repaired again.
    """
    if folder is None or not (folder / FILE).is_file():
        return None
    try:
        table, meta, part = _read(folder / FILE)
    except (OSError, ValueError, pa.ArrowException) as exc:
        log.warning("%s: not used, the footprints are repaired again (%s)", FILE, exc)
        return None
    if not isinstance(meta, dict) or meta != settings(str(meta.get("crs")), min_area):
        log.info("%s: made with other settings, the footprints are repaired again", FILE)
        return None
    token = part.get("token") if isinstance(part, dict) else None
    base = Base(folder / FILE, str(token), len(table)) if token else None
    files = [(folder / FILE, table)]
    if base is not None and (folder / DELTA).is_file():
        files += _delta(folder / DELTA, meta, base.token)
    try:
        return _from_files(files, base), str(meta["crs"])
    except (KeyError, ValueError, TypeError, OSError, pa.ArrowException) as exc:
        log.warning("%s: not used, the footprints are repaired again (%s)", FILE, exc)
        return None
    finally:
        del table, files  # converted: the buffers go back to the system, not Arrow's pool
        release_unused()


def _read(path: Path) -> tuple[pa.Table, object, object]:
    """A cache file (mapped, not copied) without its metadata, its settings and which
    part it is."""
    # mapped by the core: a rebuild's gather of the WKB hands the pages back as it goes
    table = pa.ipc.open_file(pa.BufferReader(map_file(path))).read_all()
    metadata = table.schema.metadata or {}
    meta = json.loads(metadata.get(_META, b"null"))
    part = json.loads(metadata.get(_PART, b"null"))
    return table.replace_schema_metadata(None), meta, part


def _delta(path: Path, meta: object, token: str) -> list[tuple[Path, pa.Table]]:
    """The delta at ``path`` when it was made for the file ``token`` with the same
    settings ``meta`` (else nothing: its rows are repaired again)."""
    try:
        table, delta_meta, part = _read(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        log.warning("%s: not used, its footprints are repaired again (%s)", DELTA, exc)
        return []
    if delta_meta != meta or not isinstance(part, dict) or part.get("delta_of") != token:
        log.warning("%s: made for another %s, its footprints are repaired again", DELTA, FILE)
        return []
    return [(path, table)]


#: The cache's numeric columns, read into arrays of the build's own: array name ->
#: (dtype, its columns in the file; two or more make an (n, k) array).
_ARRAYS: dict[str, tuple[type, tuple[str, ...]]] = {
    "keys": (np.uint64, ("k0", "k1")),
    "id_hash": (np.uint64, ("id_hash",)),
    "keep": (np.bool_, ("keep",)),
    "centres": (np.float64, ("cx", "cy")),
    "lonlat": (np.float64, LONLAT_BOUNDS),
    "area": (np.float64, ("area",)),
    "vertices": (np.int64, ("vertices",)),
    "kind": (np.int8, ("kind",)),
    "holes": (np.int32, ("holes",)),
    "wkb_xxh3": (np.uint64, ("wkb_xxh3",)),
    "bounds": (np.float64, BOUNDS),
}


def _from_files(files: list[tuple[Path, pa.Table]], base: Base | None = None) -> RepairCache:
    """The cache of ``files`` (each path with its mapped table: :func:`_read`), rows
    in that order.

    The WKB and the report entries stay the mapped files' Arrow columns (read when
    used); the numeric columns are read into arrays of their own (:func:`_numeric`).
    """
    n = sum(len(table) for _, table in files)
    arrays = _numeric(files, n)
    wkb = pa.chunked_array(
        [c for _, table in files for c in table.column("wkb").chunks], pa.binary()
    )
    entries = pa.chunked_array(
        [c for _, table in files for c in table.column("entries").chunks], pa.string()
    )
    footprints = FootprintArrays(
        WkbColumn(wkb),  # stays Arrow: a rebuild moves it on as it is
        arrays["centres"],
        arrays["lonlat"],
        arrays["area"],
        arrays["vertices"],
        arrays["kind"],
        arrays["holes"],
        arrays["wkb_xxh3"],
    )
    return RepairCache(
        arrays["keys"],
        arrays["id_hash"],
        arrays["keep"],
        footprints,
        entries,
        arrays["bounds"],
        base,
    )


def _numeric(files: list[tuple[Path, pa.Table]], n: int) -> dict[str, np.ndarray]:
    """The numeric columns of ``files`` (:data:`_ARRAYS`) as arrays of ``n`` rows,
    filled a record batch at a time by plain reads of those columns alone.

    Not through the mapping: each page read there stays in the build process's
    memory as long as the file is mapped (the WKB keeps it so), beside the arrays
    made of it (1.3 GB twice at ten million footprints); nor as whole columns, which
    were converted beside their arrays.
    """
    out = {
        name: np.empty((n, len(cols)) if len(cols) > 1 else n, dtype)
        for name, (dtype, cols) in _ARRAYS.items()
    }
    names = [c for _, cols in _ARRAYS.values() for c in cols]
    start = 0
    for path, table in files:
        fields = [table.schema.get_field_index(c) for c in names]
        if min(fields) < 0:
            raise ValueError(f"{path.name} lacks a column")
        options = pa.ipc.IpcReadOptions(included_fields=fields)
        with pa.OSFile(str(path)) as source:
            reader = pa.ipc.open_file(source, options=options)
            for i in range(reader.num_record_batches):
                start = _put_batch(out, reader.get_batch(i), start)
    if start != n:
        raise ValueError(f"{n} rows mapped, {start} read")
    return out


def _put_batch(out: dict[str, np.ndarray], batch: pa.RecordBatch, start: int) -> int:
    """Rows of ``batch`` into ``out`` from row ``start``; where the next batch starts."""
    end = start + batch.num_rows
    if end > len(out["keys"]):
        raise ValueError("more rows read than mapped")
    for name, (_, cols) in _ARRAYS.items():
        target = out[name]
        for k, col in enumerate(cols):
            values = batch.column(col).to_numpy(zero_copy_only=False)
            if target.ndim == 2:
                target[start:end, k] = values
            else:
                target[start:end] = values
    return end


def entries_json(found: list[Record], rows: np.ndarray) -> np.ndarray:
    """Per row of ``rows`` (sorted city rows), its records in ``found`` as JSON, or None."""
    per_row: dict[int, list[list[object]]] = {}
    for phase, row, kind, entry in sorted(found, key=lambda r: (r[0], r[1])):
        per_row.setdefault(row, []).append([phase, kind, entry])
    out = np.full(len(rows), None, dtype=object)
    if per_row and len(rows):
        asked = np.fromiter(per_row, dtype=np.int64, count=len(per_row))
        where = np.minimum(np.searchsorted(rows, asked), len(rows) - 1)
        ours = rows[where] == asked  # records of rows dropped before the repair: not kept
        for k, items, mine in zip(where.tolist(), per_row.values(), ours.tolist(), strict=True):
            if mine:
                out[k] = json.dumps(items, ensure_ascii=False)
    return out


#: Rows converted to Arrow and written at a time: the build is still running, and the
#: whole city at once would be another copy of every footprint in its memory.
WRITE_ROWS = 200_000


def write(
    folder: Path,
    cache: RepairCache | Made,
    crs: str,
    min_area: float,
    base: Base | None = None,
) -> None:
    """Write ``cache`` to ``folder`` for the next build (in its row order: the next
    build's rows are mostly where they were).

    With ``base`` (the last build's :data:`FILE`, which ``cache`` is a delta to:
    :func:`delta_rows`), that file is hard-linked (copied across file systems) and
    ``cache`` becomes its :data:`DELTA`.

    Raises
    ------
    DatasetIOError
        The files cannot be written.
    """
    made = Made.of(cache) if isinstance(cache, RepairCache) else cache
    folder.mkdir(parents=True, exist_ok=True)
    if base is None:
        keys = made.keys if made.rows is None else made.keys[made.rows]
        _write(folder / FILE, made, crs, min_area, {"token": _token(keys)})
    else:
        _link(base.path, folder / FILE)
        _write(folder / DELTA, made, crs, min_area, {"delta_of": base.token})
    log.debug("%s: %d rows%s", folder / FILE, len(made), " (a delta)" if base else "")


def _token(keys: np.ndarray) -> str:
    """What ties a delta to its file: a digest of the file's fingerprints (the same
    rows give the same file, byte for byte, however the build ran)."""
    return xxhash.xxh3_128_hexdigest(np.ascontiguousarray(keys, dtype="<u8").tobytes())


def _link(source: Path, target: Path) -> None:
    """``source`` at ``target`` (a new folder's): a hard link, else a copy."""
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        try:
            os.link(source, tmp)
        except OSError:  # another file system, or links not supported
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DatasetIOError(f"cannot keep the repair cache ({exc})", path=target) from exc


def _write(path: Path, made: Made, crs: str, min_area: float, part: dict[str, str]) -> None:
    """One cache file (:data:`FILE` or :data:`DELTA`, as ``part`` says), atomically."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        first = _arrow(made.piece(slice(0, WRITE_ROWS)))
        schema = first.schema.with_metadata(
            {_META: json.dumps(settings(crs, min_area)), _PART: json.dumps(part)}
        )
        # an intermediate: Arrow's own layout, uncompressed, is written as it is in
        # memory and read back without decoding (WKB hardly compresses)
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as out:
            out.write_table(first.cast(schema))
            for start in range(WRITE_ROWS, len(made), WRITE_ROWS):
                piece = made.piece(slice(start, start + WRITE_ROWS))
                out.write_table(_arrow(piece).cast(schema))
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DatasetIOError(f"cannot write the repair cache ({exc})", path=path) from exc


def _arrow(cache: RepairCache) -> pa.Table:
    """``cache`` as one Arrow table of the file's columns."""
    fp = cache.footprints
    return pa.table(
        {
            "k0": pa.array(cache.keys[:, 0], pa.uint64()),
            "k1": pa.array(cache.keys[:, 1], pa.uint64()),
            "id_hash": pa.array(cache.id_hashes, pa.uint64()),
            "keep": pa.array(cache.keep, pa.bool_()),
            "wkb": as_wkb_arrow(fp.wkb),
            "cx": pa.array(fp.centres[:, 0], pa.float64()),
            "cy": pa.array(fp.centres[:, 1], pa.float64()),
            **{c: pa.array(fp.bounds[:, k], pa.float64()) for k, c in enumerate(LONLAT_BOUNDS)},
            "area": pa.array(fp.areas, pa.float64()),
            "vertices": pa.array(fp.vertices, pa.int64()),
            "kind": pa.array(fp.kinds, pa.int8()),
            "holes": pa.array(fp.holes, pa.int32()),
            "wkb_xxh3": pa.array(fp.hashes, pa.uint64()),
            "entries": _strings(cache.entries),
            **{c: pa.array(cache.bounds[:, k], pa.float64()) for k, c in enumerate(BOUNDS)},
        }
    )


def _strings(values: np.ndarray | pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Report entries (None or JSON text per row) as Arrow strings: Arrow as it is."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values.cast(pa.string())
    return pa.array(values, pa.string())
