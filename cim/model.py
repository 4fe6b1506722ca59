"""The data model shared by the stages.

:class:`Buildings` is a columnar table of building footprints in WGS84 longitude /
latitude with their heights and attributes. Columns are numpy arrays of equal length;
footprints are a shapely 2 geometry array (Polygon or MultiPolygon, holes kept), so
whole-table operations stay vectorised.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely

#: The text columns of :class:`Buildings` that may have an Arrow twin (``arrow_text``)
#: and may be held as :class:`ArrowText` until read.
_TEXT_FIELDS = ("ids", "name", "use", "roof_type")
_TWINNED = frozenset(_TEXT_FIELDS)


def _take_arrow(values: Any, index: np.ndarray) -> Any:
    """``values[index]`` of an Arrow array, for a bool mask or integer indices."""
    import pyarrow as pa  # only when a table has twins: cim.model stays light to import

    if isinstance(index, slice):
        return values[index]
    index = np.asarray(index)
    if index.dtype == bool:
        return values.filter(pa.array(index))
    return values.take(pa.array(index))


class ArrowText:
    """A text column held as Arrow (a string array, "" where a value is missing) until
    it is read as Python strings.

    :class:`Buildings` accepts it for ``ids``, ``name``, ``use`` and ``roof_type``
    (it is then also the column's Arrow twin) and makes the object array the first
    time the attribute is read. A build that only moves the text along (to the
    partitions, the L2 tiles and the row hashes, which take Arrow) never makes a Python
    string per building: ten million ids as ``str`` hold 0.65 GB.

    Indexing reads like the object array's: an integer gives a ``str``; a slice, a
    bool mask or indices give another :class:`ArrowText`.
    """

    __slots__ = ("arrow",)

    def __init__(self, arrow: Any) -> None:
        self.arrow = arrow

    def __len__(self) -> int:
        return len(self.arrow)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, int | np.integer):
            return self.arrow[int(index)].as_py()
        return ArrowText(_take_arrow(self.arrow, index))

    def tolist(self) -> list[str]:
        """The values as a list of ``str``."""
        return self.arrow.to_pylist()

    def to_numpy(self) -> np.ndarray:
        """The values as an object array of ``str``: :func:`cim.readers.to_text`'s, the
        rows sharing one object per distinct value where few are distinct."""
        from cim.readers import to_text  # cim.readers imports this module

        return to_text(self.arrow, len(self.arrow))


def text_values(values: np.ndarray | ArrowText) -> np.ndarray:
    """``values`` as an object array of ``str`` (an :class:`ArrowText` converted)."""
    return values.to_numpy() if isinstance(values, ArrowText) else values


def addressed_rows(addresses: np.ndarray) -> np.ndarray:
    """The rows of a :attr:`Buildings.addresses` column that hold an address (most
    hold none: found by one comparison in C, not a ``len()`` per row)."""
    none = np.empty((), dtype=object)
    none[()] = ()
    return np.flatnonzero(np.asarray(addresses, dtype=object) != none)


def text_arrow(values: np.ndarray | ArrowText) -> Any:
    """``values`` (an object array of ``str`` or :class:`ArrowText`) as an Arrow string
    array: an :class:`ArrowText`'s own, without a Python string per row."""
    import pyarrow as pa

    return values.arrow if isinstance(values, ArrowText) else pa.array(values, pa.string())


class WkbColumn:
    """Footprints' WKB held as Arrow binary (an array or chunked array, null where a
    row has none), as a file or the repair cache stored them.

    Selecting rows stays in Arrow (a gather in C, without the GIL); the values become
    Python ``bytes`` only when read: one row, or the whole column through
    ``np.asarray`` (``__array__``, so shapely's functions take it as they take an
    object array). A build moves a million footprints from the repair's workers (or
    the last build's repairs) to the partitions this way without making a Python
    object for each one.

    A selection is not gathered until its values are read (:attr:`arrow`): it keeps
    the rows it stands for, and a selection of it composes them, so the build's
    successive selections (the repair's pieces put in row order, the rows kept, the
    Hilbert order) cost one gather of the bytes instead of one each. A selection is
    pickled gathered (a task carries its own rows, not the column).
    """

    __slots__ = ("_arrow", "_rows")

    def __init__(self, arrow: Any, rows: np.ndarray | None = None) -> None:
        """``arrow`` itself, or its rows ``rows`` (int64 indices, -1: null) when given."""
        self._arrow = arrow
        self._rows = rows

    @property
    def arrow(self) -> Any:
        """The values as one Arrow binary array or chunked array (gathered once)."""
        if self._rows is not None:
            self._arrow, self._rows = take_binary(self._arrow, self._rows), None
        return self._arrow

    def gather(self, *, consume: bool = False) -> None:
        """Gather the values now (before threads read them, which would each gather).

        ``consume``: the values selected from are let go a chunk at a time as their
        rows are taken (:func:`take_binary_consuming`), so that, where this column is
        their only holder, they are never in memory twice: the buildings stage puts a
        whole city's WKB in another order (1.1 GB at ten million footprints).
        """
        if self._rows is None or not consume:
            _ = self.arrow
            return
        chunks, rows = self._detach()
        self._arrow = take_binary_consuming(chunks, rows)

    def __len__(self) -> int:
        return len(self._arrow) if self._rows is None else len(self._rows)

    def __getitem__(self, index: Any) -> Any:
        """One row's ``bytes`` (None where missing), or the rows selected by ``index``
        (slice, bool mask or indices) as a :class:`WkbColumn` (gathered when read)."""
        if isinstance(index, (int, np.integer)):
            if self._rows is None:
                return self._arrow[int(index)].as_py()
            row = int(self._rows[index])
            return None if row < 0 else self._arrow[row].as_py()
        if isinstance(index, slice):
            if self._rows is None:
                return WkbColumn(self._arrow[index])  # zero-copy
            return self.piece(np.arange(len(self._rows))[index])
        index = np.asarray(index)
        rows = np.flatnonzero(index) if index.dtype == bool else index.astype(np.int64)
        return WkbColumn(self._arrow, rows if self._rows is None else self._rows[rows])

    def copy(self) -> WkbColumn:
        """The same rows as another column object, sharing the values until either is
        gathered: a gather through one (which replaces its own values) never changes
        what another thread reads through the other."""
        return WkbColumn(self._arrow, self._rows)

    def piece(self, index: np.ndarray) -> WkbColumn:
        """Rows ``index`` (indices) gathered now, each of the column's chunks giving its
        own rows: one of many pieces read in turn (the repair cache's writer), which
        never joins the whole column (a copy of it beside the one the build keeps in
        another order)."""
        index = np.asarray(index, dtype=np.int64)
        rows = index if self._rows is None else self._rows[index]
        return WkbColumn(take_binary(self._arrow, rows, join=False))

    def __reduce__(self) -> tuple[Any, tuple[Any]]:
        return WkbColumn, (self.arrow,)

    def selection(self) -> tuple[Any, np.ndarray | None]:
        """The values this column selects from and the rows it selects (int64, -1:
        null; None: all of them, in order), without gathering them."""
        return self._arrow, self._rows

    def consume(self, size: int) -> Iterator[Any]:
        """The values ``size`` rows at a time, as Arrow binary (what ``self[part].arrow``
        gives), letting go of each of the column's Arrow chunks once no later row needs
        it: the column is empty afterwards.

        A selection of a large source read in row order (the repair's tasks made from
        the input's own WKB) so frees the source as it goes instead of at the end:
        held whole until then, it was in memory beside the whole repaired city. The
        pages freed are given back to the system (:func:`cim.memory.release_unused`):
        Arrow's pool would keep them, unused by the results coming back.
        """
        import pyarrow as pa

        from cim.memory import release_unused

        chunks, rows = self._detach()
        if rows is None:  # every value in order: slices, no index of every row
            yield from _consume_in_order(chunks, size)
            return
        starts = np.cumsum([0] + [len(c) for c in chunks])
        chunk_of = np.searchsorted(starts, rows, side="right") - 1
        chunk_of[rows < 0] = -1
        # where each chunk is needed last (-1: never): released once the rows pass it
        last_use = np.full(len(chunks), -1, dtype=np.int64)
        np.maximum.at(last_use, chunk_of[chunk_of >= 0], np.flatnonzero(chunk_of >= 0))
        for start in range(0, len(rows), size):
            part, where = rows[start : start + size], chunk_of[start : start + size]
            used = np.unique(where[where >= 0])
            # the part's chunks alone, its rows renumbered into them
            at = np.zeros(len(chunks), dtype=np.int64)
            at[used] = np.cumsum([0] + [len(chunks[c]) for c in used[:-1]])
            local = np.where(part >= 0, part - starts[np.maximum(where, 0)] + at[where], -1)
            source = [chunks[c] for c in used] or [pa.array([], pa.binary())]
            values = take_binary(pa.chunked_array(source, pa.binary()), local)
            del source
            done = np.flatnonzero((last_use >= 0) & (last_use < start + size)).tolist()
            for c in done:
                chunks[c] = None
                last_use[c] = -1
            if done:  # Arrow's pool keeps freed pages: given back, not held beside the
                release_unused()  # results (the repair's WKB, which come from elsewhere)
            yield values

    def _detach(self) -> tuple[list[Any], np.ndarray | None]:
        """The values' chunks, in a list that alone holds them, and the rows selected;
        this column is left empty (its values let go as the caller drops chunks)."""
        import pyarrow as pa

        values, rows = self._arrow, self._rows
        self._arrow, self._rows = pa.array([], pa.binary()), None
        chunks = list(values.chunks) if isinstance(values, pa.ChunkedArray) else [values]
        return chunks, rows

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        values = self.arrow.to_numpy(zero_copy_only=False)
        return values.astype(object, copy=False) if dtype in (None, object) else values

    def tolist(self) -> list[Any]:
        """The values as ``bytes`` (None where missing)."""
        return np.asarray(self).tolist()


def _consume_in_order(chunks: list[Any], size: int) -> Iterator[Any]:
    """:meth:`WkbColumn.consume` of a column without a selection: each part is copied
    out of the chunks it spans (an array of its own: a slice would carry its chunk's
    whole buffers wherever it is pickled), each chunk let go once the parts have
    passed it. No index of every row is made (two of them: 160 MB at ten million)."""
    import pyarrow as pa

    from cim.memory import release_unused

    ends = np.cumsum([len(c) for c in chunks], dtype=np.int64)
    lows = ends - [len(c) for c in chunks]
    total = int(ends[-1]) if len(ends) else 0
    first = 0  # the first chunk a part may still need
    for start in range(0, total, size):
        stop = min(start + size, total)
        pieces = [
            chunks[c].slice(max(start - lo, 0), min(stop, hi) - max(start, lo))
            for c, (lo, hi) in enumerate(zip(lows.tolist(), ends.tolist(), strict=True))
            if c >= first and lo < stop and hi > start
        ]
        values = pa.concat_arrays(pieces)
        del pieces
        done = first
        while done < len(chunks) and ends[done] <= stop:
            chunks[done] = None
            done += 1
        if done > first:  # Arrow's pool keeps freed pages: given back (see consume)
            first = done
            release_unused()
        yield values


#: Bytes of binary values gathered into one Arrow array at most (its offsets are 32-bit).
BINARY_TAKE_LIMIT = 1 << 30
#: Rows per Arrow chunk of a large gather's result.
BINARY_CHUNK_ROWS = 1 << 20
#: A gather of at least 1 / WHOLE_SHARE of a chunked column's rows joins its chunks.
WHOLE_SHARE = 8
#: Bytes of chunks let go by :func:`take_binary_consuming` between two returns of the
#: freed memory to the system.
RELEASE_BYTES = 256 << 20


def take_binary(values: Any, index: np.ndarray, *, join: bool = True) -> Any:
    """``values.take(index)`` of an Arrow binary array or chunked array, by integer
    indices (-1: null), chunk by chunk.

    Arrow's take of a chunked array first joins its chunks into one array: a copy of
    the whole column for every call (a tile's few hundred rows out of ten million
    footprints' 2.5 GB), whose 32-bit offsets overflow past 2 GiB. That is kept for a
    large share of a column under :data:`BINARY_TAKE_LIMIT`; otherwise each chunk gives
    its own rows, and a result larger than :data:`BINARY_TAKE_LIMIT` comes back as
    chunks of at most that many bytes (or :data:`BINARY_CHUNK_ROWS` rows).
    ``join=False``: never joined (one of many pieces read in turn).
    """
    import pyarrow as pa

    index = np.asarray(index, dtype=np.int64)
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    if len(chunks) == 1:
        return chunks[0].take(pa.array(index, mask=index < 0))
    if not len(index):
        return pa.array([], pa.binary())
    if join and _joined(values, index):
        # most of a column that fits one array: Arrow's own join and take are cheaper
        return values.take(pa.array(index, mask=index < 0))
    rows = _ChunkRows(chunks, index)
    pieces = [rows.gather(start, stop) for start, stop in rows.pieces()]
    return pieces[0] if len(pieces) == 1 else pa.chunked_array(pieces, pa.binary())


def _joined(values: Any, index: np.ndarray) -> bool:
    """Whether a gather of rows ``index`` of the chunked ``values`` joins its chunks:
    most of a column that fits one array."""
    return bool(values.nbytes <= BINARY_TAKE_LIMIT and len(index) * WHOLE_SHARE >= len(values))


def take_binary_consuming(chunks: list[Any], index: np.ndarray) -> Any:
    """:func:`take_binary` of the binary array made of ``chunks``, a list this
    empties: each chunk is let go once its rows are taken, and the memory freed
    given back to the system as it goes (:func:`cim.memory.release_unused`).

    The same values in the same pieces as :func:`take_binary`; the work is the same
    too, in another order: each chunk gives its rows to every piece of the result,
    then each piece is put in order. Held at most: the result, one chunk and two
    copies of one piece, where :func:`take_binary` holds the whole source beside the
    result.
    """
    import pyarrow as pa

    from cim.memory import drop_mapped, release_unused

    index = np.asarray(index, dtype=np.int64)
    whole = pa.chunked_array(chunks, pa.binary())
    if len(chunks) <= 1 or not len(index) or _joined(whole, index):
        chunks.clear()
        taken = take_binary(whole, index)
        for chunk in whole.chunks:
            drop_mapped(chunk)
        return taken
    del whole
    rows = _ChunkRows(chunks, index)
    spans = rows.pieces()
    cuts = np.array([start for start, _ in spans] + [len(index)], dtype=np.int64)
    # per piece of the result: (its rows, their values) from each chunk
    taken: list[list[tuple[np.ndarray, Any]]] = [[] for _ in spans]
    freed = 0
    for c in range(len(chunks)):
        mine = rows.order[rows.ends[c] : rows.ends[c + 1]]  # ascending: a stable sort
        ends = np.searchsorted(mine, cuts)
        for p in np.flatnonzero(np.diff(ends)).tolist():
            at = mine[ends[p] : ends[p + 1]]
            taken[p].append((at, chunks[c].take(pa.array(rows.local[at]))))
        freed += chunks[c].nbytes
        drop_mapped(chunks[c])  # a mapped file's pages (the last build's repairs) go now
        chunks[c] = None  # rows.chunks is this list
        if freed >= RELEASE_BYTES:
            release_unused()
            freed = 0
    missing = rows.order[: rows.ends[0]]  # rows of no chunk (-1)
    pieces = []
    for p, (start, stop) in enumerate(spans):
        parts, taken[p] = taken[p], []
        lost = missing[(missing >= start) & (missing < stop)]
        at = np.concatenate([lost, *(a for a, _ in parts)]) - start
        values = [pa.nulls(len(lost), pa.binary()), *(v for _, v in parts)]
        del parts
        pieces.append(_placed(values, at))
        del values
        release_unused()  # the piece's parts, freed to Arrow's pool, which keeps them
    chunks.clear()
    return pieces[0] if len(pieces) == 1 else pa.chunked_array(pieces, pa.binary())


class _ChunkRows:
    """Where the rows ``index`` of a chunked binary array are: their chunk, their row
    in it and their size in bytes."""

    def __init__(self, chunks: list[Any], index: np.ndarray) -> None:
        self.chunks, self.index = chunks, index
        self.starts = np.cumsum([0] + [len(c) for c in chunks])
        self.chunk = np.searchsorted(self.starts, index, side="right") - 1
        self.chunk[index < 0] = -1
        self.local = index - self.starts[np.maximum(self.chunk, 0)]
        # the rows grouped by chunk, once (a worker's chunks are many: no pass per chunk)
        self.order, self.ends = self._grouped(self.chunk)
        self.sizes = np.zeros(len(index), dtype=np.int64)
        for c, values in enumerate(chunks):
            mine = self.order[self.ends[c] : self.ends[c + 1]]
            offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)
            at = values.offset + self.local[mine]
            self.sizes[mine] = offsets[at + 1] - offsets[at]

    def _grouped(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows sorted by chunk (the missing ones first), and where each chunk's end."""
        order = np.argsort(chunk, kind="stable")
        ends = np.searchsorted(chunk[order], np.arange(-1, len(self.chunks)), side="right")
        return order, ends

    def pieces(self) -> list[tuple[int, int]]:
        """(start, stop) ranges of the rows: at most :data:`BINARY_CHUNK_ROWS` rows and
        :data:`BINARY_TAKE_LIMIT` bytes, or a single row."""
        n = len(self.index)
        total = np.cumsum(self.sizes)
        top = int(total[-1]) if n else 0
        limits = np.arange(1, top // BINARY_TAKE_LIMIT + 1) * BINARY_TAKE_LIMIT
        # a piece ends before the row that takes it past the next multiple of the limit
        by_bytes = np.searchsorted(total, limits, side="right")
        cuts = np.unique(np.concatenate([[0, n], by_bytes, np.arange(0, n, BINARY_CHUNK_ROWS)]))
        return list(zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True))

    def gather(self, start: int, stop: int) -> Any:
        """Rows ``start:stop`` of the selection as one binary array: each chunk's taken
        by itself, then put in order."""
        import pyarrow as pa

        whole = start == 0 and stop == len(self.index)
        order, ends = (self.order, self.ends) if whole else self._grouped(self.chunk[start:stop])
        parts = [pa.nulls(int(ends[0]), pa.binary())]  # the missing rows (-1) sort first
        for c, values in enumerate(self.chunks):
            mine = order[ends[c] : ends[c + 1]] + start
            if len(mine):
                parts.append(values.take(pa.array(self.local[mine])))
        return _placed(parts, order)


def _placed(parts: list[Any], at: np.ndarray) -> Any:
    """The binary arrays ``parts`` joined, the joined rows put at positions ``at`` (a
    permutation): one join and one take."""
    import pyarrow as pa

    inverse = np.empty(len(at), dtype=np.int64)
    inverse[at] = np.arange(len(at))
    return pa.concat_arrays(parts).take(pa.array(inverse))


def as_wkb_arrow(wkb: Any) -> Any:
    """WKB values (an object array of ``bytes`` or a :class:`WkbColumn`) as Arrow
    binary, without a Python object per row when they are already Arrow."""
    import pyarrow as pa

    if isinstance(wkb, WkbColumn):
        return wkb.arrow
    return pa.array(wkb, pa.binary())


class EncodedFootprints:
    """Footprints held as 2D WKB, turned into shapely geometries on first use.

    A build that only moves footprints along (from the repair, or the last build's
    repairs, to the partitions and the L2 tiles, which take WKB) never needs a GEOS
    object per building: a million of them cost about a second to make and
    350 MB to hold. :class:`Buildings` accepts this in place of its ``footprints``
    array and decodes it the first time ``footprints`` is read.
    """

    __slots__ = ("wkb",)

    def __init__(self, wkb: np.ndarray | WkbColumn) -> None:
        self.wkb = wkb

    def __len__(self) -> int:
        return len(self.wkb)

    def __getitem__(self, index: Any) -> EncodedFootprints:
        """The rows selected by ``index`` (bool mask or indices), still encoded."""
        return EncodedFootprints(self.wkb[index])

    def decode(self) -> np.ndarray:
        """The footprints as a shapely geometry array."""
        return shapely.from_wkb(self.wkb)


class _ConvertedOnRead:
    """A :class:`Buildings` column that may be held in another form (``held``:
    footprints as :class:`EncodedFootprints`, text as :class:`ArrowText`): reading it
    converts it (once, with ``convert``); setting it stores what it is given."""

    def __init__(self, held: type, convert: Callable[[Any], np.ndarray]) -> None:
        self.held, self.convert = held, convert

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, obj: Any, owner: type | None = None) -> np.ndarray:
        if obj is None:  # read on the class: the dataclass field has no default
            raise AttributeError(self.slot)
        value = obj.__dict__[self.slot]
        if isinstance(value, self.held):
            value = obj.__dict__[self.slot] = self.convert(value)
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.slot] = value


@dataclass
class Buildings:
    """Building footprints with heights and attributes, one row per building.

    Attributes
    ----------
    ids : ndarray of str (object)
        Unique building ids (from the mapped id field, repaired when duplicate). This
        and the other text columns may be given as :class:`ArrowText`: the object
        array is made when the attribute is first read (:meth:`take` and
        :meth:`replace` keep them Arrow; :meth:`id_of` reads one id).
    footprints : ndarray of shapely Polygon/MultiPolygon
        Footprints in EPSG:4326 (lon, lat), valid, 2D. May be given as
        :class:`EncodedFootprints`: decoded when first read (:meth:`take` and
        :meth:`replace` keep them encoded).
    height : ndarray of float64
        Height above the base, metres.
    floors : ndarray of float64
        Floor count, NaN when unknown.
    base : ndarray of float64
        WGS84 ellipsoidal height of the base (ground under the footprint), metres.
    name, use, roof_type : ndarray of str (object)
        Mapped attributes, ``""`` when unknown.
    addresses : ndarray of object
        Per building, a tuple of address strings (filled by the address stage).
        Tuples, not lists: a million small lists slow every garbage collection.
    extra : dict of str to ndarray
        Further mapped attributes (``[buildings] extra``), as strings or numbers.
    l3 : dict of str to ndarray
        Attributes only the L3 stage reads (``roof_height``, ``podium_height`` as
        float64 with NaN, ``roof_colour``, ``roof_material`` as text); absent keys
        were not mapped or not in the file.
    source_crs : str
        CRS the footprints were read in (for the report and manifest).
    arrow_text : dict of str to pyarrow string array
        Optional Arrow twins of ``ids``, ``name``, ``use`` and ``roof_type`` (the
        same values, as read): the partitions and L2 tiles take them instead of
        converting a million Python strings back to Arrow. :meth:`take` keeps them in
        step and :meth:`replace` drops the twin of a column it replaces; never assign
        into a column that has one.
    """

    ids: np.ndarray = _ConvertedOnRead(ArrowText, ArrowText.to_numpy)  # type: ignore[assignment]
    footprints: np.ndarray = _ConvertedOnRead(EncodedFootprints, EncodedFootprints.decode)  # type: ignore[assignment]
    height: np.ndarray
    floors: np.ndarray
    base: np.ndarray
    name: np.ndarray = _ConvertedOnRead(ArrowText, ArrowText.to_numpy)  # type: ignore[assignment]
    use: np.ndarray = _ConvertedOnRead(ArrowText, ArrowText.to_numpy)  # type: ignore[assignment]
    roof_type: np.ndarray = _ConvertedOnRead(ArrowText, ArrowText.to_numpy)  # type: ignore[assignment]
    addresses: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    l3: dict[str, np.ndarray] = field(default_factory=dict)
    source_crs: str = "EPSG:4326"
    arrow_text: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self)
        held = {k: v.arrow for k in _TEXT_FIELDS if isinstance(v := self.held(k), ArrowText)}
        if held:  # an Arrow-held column is its own twin
            self.arrow_text = {**self.arrow_text, **held}
        for name, twin in self.arrow_text.items():
            if name not in _TWINNED or len(twin) != n:
                raise ValueError(
                    f"arrow_text {name!r}: {len(twin)} rows of {n}, or not a text column"
                )
        if len(self.addresses) != n:
            self.addresses = np.empty(n, dtype=object)
            self.addresses.fill(())
        for name in ("footprints", "height", "floors", "base", "name", "use", "roof_type"):
            rows = len(self.held(name))  # as stored: not decoded
            if rows != n:
                raise ValueError(f"column {name} has {rows} rows, not {n}")

    def __len__(self) -> int:
        return len(self.held("ids"))

    def held(self, name: str) -> Any:
        """Column ``name`` as held (encoded footprints and Arrow text not converted)."""
        slot = f"_{name}"
        return self.__dict__[slot] if slot in self.__dict__ else getattr(self, name)

    def id_of(self, i: int) -> str:
        """The id of row ``i``, without making the whole column's Python strings."""
        return str(self.held("ids")[i])

    def take(
        self,
        index: np.ndarray,
        *,
        footprints: np.ndarray | EncodedFootprints | None = None,
        release: bool = False,
    ) -> Buildings:
        """A new table with the rows selected by ``index`` (bool mask or indices).

        ``footprints``: the selected rows' footprints when the caller has them
        already (the same values): not taken again. ``release``: this table is emptied
        as its columns are taken, each column let go once its selection is made, so
        the two tables are never both whole (the buildings stage puts a whole city in
        another order: 0.65 GB at ten million footprints).
        """

        # Arrow-held text: taken once, with its twin (below)
        held = {k for k in _TEXT_FIELDS if isinstance(self.held(k), ArrowText)}

        def pick(name: str) -> Any:
            values = self.held(name)
            out = None if name in held else values[index]
            if release:  # an empty array of its own, not a view that keeps the column
                setattr(self, name, np.empty(0, dtype=object if name in held else values.dtype))
            return out

        def pick_all(name: str, take: Any) -> dict[str, Any]:
            # a dict of its own: another table may share this one (``replace``)
            remaining = dict(getattr(self, name))
            if release:
                setattr(self, name, {})
            return {key: take(remaining.pop(key), index) for key in list(remaining)}

        text = {k: pick(k) for k in _TEXT_FIELDS}
        twins = pick_all("arrow_text", _take_arrow)
        text.update({k: ArrowText(twins[k]) for k in held})
        taken = Buildings(
            # encoded ones stay encoded
            footprints=self._footprints[index] if footprints is None else footprints,
            height=pick("height"),
            floors=pick("floors"),
            base=pick("base"),
            addresses=pick("addresses"),
            extra=pick_all("extra", operator.getitem),
            l3=pick_all("l3", operator.getitem),
            source_crs=self.source_crs,
            arrow_text=twins,
            **text,
        )
        if release:
            self._footprints = np.empty(0, dtype=object)
        return taken

    def replace(self, **changes: Any) -> Buildings:
        """A copy with ``changes`` (``dataclasses.replace`` that keeps encoded
        footprints encoded, Arrow-held text Arrow, and the Arrow twins of the text
        columns not replaced)."""
        changes.setdefault(
            "arrow_text", {k: v for k, v in self.arrow_text.items() if k not in changes}
        )
        for name in ("footprints", *_TEXT_FIELDS):
            changes.setdefault(name, self.held(name))
        return dataclasses.replace(self, **changes)

    @property
    def footprints_wkb(self) -> np.ndarray | WkbColumn | None:
        """The footprints' 2D WKB while they are still encoded, else None."""
        stored = self._footprints
        return stored.wkb if isinstance(stored, EncodedFootprints) else None

    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees over all footprints."""
        b = shapely.total_bounds(self.footprints)
        return float(b[0]), float(b[1]), float(b[2]), float(b[3])

    def row(self, i: int) -> dict[str, Any]:
        """One building's attributes as a plain dict (for tests and the report)."""
        out: dict[str, Any] = {
            "id": str(self.ids[i]),
            "name": str(self.name[i]),
            "use": str(self.use[i]),
            "roof_type": str(self.roof_type[i]),
            "height": float(self.height[i]),
            "floors": float(self.floors[i]),
            "base": float(self.base[i]),
            "addresses": list(self.addresses[i]),
        }
        out.update({k: v[i] for k, v in self.extra.items()})
        return out
