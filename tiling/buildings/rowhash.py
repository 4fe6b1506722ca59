"""Vectorised 64-bit hashes of table rows, for incremental rebuilds.

A tile's content hash must cover every value of every building in it. Hashing each
tile's columns again per tile means gathering a million Python objects into tile
order and joining them; instead every row is hashed once, in the table's own order
(sequential memory), and a tile's hash is taken over its rows' 8-byte hashes.

A row's hash depends on that row's values alone (and on the columns' order), so the
hash of one tile's rows computed on its own equals the slice of the whole table's:
workers and the build process agree. Not cryptographic: it detects changes (a
changed row keeps its hash with probability about 2**-64), it does not resist
forgery, which the build index never had to.

Columns of ``bytes`` (WKB) are hashed with xxh3 per value; text is read through Arrow
as one byte buffer and hashed 8 bytes at a time for many values at once (see
:func:`_bytes_hashes`). A column mixing ``bytes`` with other values is hashed as text,
so its values hash differently in a slice of ``bytes`` only: a tile of it would just
be encoded again on every build.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
from xxhash import xxh3_64_intdigest

_U64 = np.dtype("<u8")
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_FOLD = np.uint64(0x9E3779B97F4A7C15)
#: The value of a missing text value (None).
_NULL = np.uint64(0x5EED_0F_A11_0F_1EAF)


def mix(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (a bijection of uint64), elementwise."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * _M1
        x ^= x >> np.uint64(27)
        x *= _M2
        x ^= x >> np.uint64(31)
    return x


def hash_rows(columns: Sequence[np.ndarray | pa.Array | BytesHashes]) -> np.ndarray:
    """Per row, a 64-bit hash of its values in all ``columns`` (in that order).

    Parameters
    ----------
    columns : sequence of ndarray, Arrow array or BytesHashes
        Equal-length columns: numeric or bool arrays (hashed by their bits and dtype),
        or object arrays of ``bytes`` or ``str`` (UTF-8; other objects by ``str()``,
        ``None`` as missing), Arrow string or binary arrays (as their values'
        object array), :class:`BytesHashes` (as the bytes they were taken of).

    Returns
    -------
    ndarray of uint64
        One hash per row.
    """
    n = len(columns[0]) if len(columns) else 0
    h = np.full(n, _FOLD, dtype=_U64)
    scratch = np.empty(min(n, _CHUNK_ROWS), dtype=_U64)
    for col in columns:
        values, tag = _column_bits(col)
        # a bijection of the state per column: a change in one numeric value always
        # changes the row's hash, one in a text or bytes value but for 2**-64; mixed
        # a cache-sized chunk at a time (the passes stay out of main memory)
        for a in range(0, n, _CHUNK_ROWS):
            part = h[a : a + _CHUNK_ROWS]
            part ^= values[a : a + _CHUNK_ROWS]
            if tag:
                part ^= tag
            _mix_in_place(part, scratch[: len(part)])
    return h


#: Rows mixed per step in :func:`hash_rows`.
_CHUNK_ROWS = 1 << 15


def _column_bits(values: np.ndarray | pa.Array | BytesHashes) -> tuple[np.ndarray, np.uint64]:
    """``column_values(values)`` as an array and a constant to xor with it: 8-byte
    numbers are their own bits (a view, no copy) and their dtype's tag."""
    if not isinstance(values, pa.Array | BytesHashes):
        values = np.asarray(values)
        if values.dtype.kind in "iuf" and values.dtype.itemsize == 8:
            return values.view(_U64), _tag(values.dtype.str)
    return column_values(values), np.uint64(0)


def _mix_in_place(x: np.ndarray, scratch: np.ndarray) -> None:
    """``x[:] = mix(x)`` with one scratch array instead of fresh temporaries."""
    with np.errstate(over="ignore"):
        np.right_shift(x, np.uint64(30), out=scratch)
        x ^= scratch
        x *= _M1
        np.right_shift(x, np.uint64(27), out=scratch)
        x ^= scratch
        x *= _M2
        np.right_shift(x, np.uint64(31), out=scratch)
        x ^= scratch


class BytesHashes:
    """A column of ``bytes`` (WKB) given by each value's :func:`xxh3_hashes`.

    Computed where the bytes are made (the workers), it hashes in :func:`hash_rows`
    exactly as the column of those bytes would, without a call per value here.
    """

    __slots__ = ("xxh3",)

    def __init__(self, xxh3: np.ndarray) -> None:
        self.xxh3 = np.asarray(xxh3, dtype=_U64)

    def __len__(self) -> int:
        return len(self.xxh3)


def xxh3_hashes(values: np.ndarray) -> np.ndarray:
    """Per ``bytes`` value, its 64-bit xxh3 (see :class:`BytesHashes`)."""
    items = np.asarray(values, dtype=object).tolist()
    return np.fromiter(map(xxh3_64_intdigest, items), _U64, len(items))


def column_values(values: np.ndarray | pa.Array | BytesHashes) -> np.ndarray:
    """One uint64 per value of a column: its bits, or a hash of its bytes.

    Numbers and booleans are their bits (injective) xor a constant of their dtype;
    text and bytes values a 64-bit hash of their bytes and length (see
    :func:`hash_rows`). An Arrow string or binary array hashes as the object array
    of its values would, :class:`BytesHashes` as the bytes they were taken of.
    """
    if isinstance(values, BytesHashes):
        return values.xxh3 ^ _BYTES
    if isinstance(values, pa.Array):
        return _bytes_hashes(values) ^ _OBJECT
    values = np.asarray(values)
    tag = _tag(values.dtype.str)
    if values.dtype.kind == "b":
        return values.astype(_U64) ^ tag
    if values.dtype.kind in "iuf" and values.dtype.itemsize <= 8:
        return np.ascontiguousarray(values).view(f"u{values.dtype.itemsize}").astype(_U64) ^ tag
    if values.dtype.kind in "SU":
        values = values.astype(object)
    items = values.tolist()
    if items and isinstance(items[0], bytes):
        try:  # all bytes (WKB): xxh3 per value is three times the speed of the words
            return np.fromiter(map(xxh3_64_intdigest, items), _U64, len(items)) ^ _BYTES
        except TypeError:  # not all bytes: as text
            pass
    return _bytes_hashes(_as_arrow(values)) ^ _OBJECT


def _tag(text: str) -> np.uint64:
    """A constant per dtype: equal bits of different types hash differently."""
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return np.uint64(int.from_bytes(digest, "little"))


def _as_arrow(values: np.ndarray) -> pa.Array:
    """An object column as one Arrow large binary or large string array."""
    first = next((v for v in values[:1].tolist() if v is not None), None)
    kind = pa.large_binary() if isinstance(first, bytes) else pa.large_string()
    try:
        return pa.array(values, type=kind, from_pandas=False)
    except (pa.ArrowException, TypeError, ValueError, UnicodeError):
        # mixed objects, or text Arrow cannot encode (lone surrogates): per value
        items = [
            None
            if v is None
            else v
            if isinstance(v, bytes)
            else str(v).encode("utf-8", "surrogatepass")
            for v in values.tolist()
        ]
        return pa.array(items, type=pa.large_binary())


_OBJECT = _tag("|O")
_BYTES = _tag("xxh3")

#: The low k bytes of a word, k = 0..8.
_TAIL_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=_U64)


#: Words hashed per step: temporaries stay in the cache (and need no fresh pages).
_CHUNK_WORDS = 1 << 17


def _bytes_hashes(arr: pa.Array) -> np.ndarray:
    """Per value of a binary or string Arrow array, a 64-bit hash of its bytes.

    Each 8-byte word of a value (the last one masked to the value's own bytes) is
    mixed with its place in the value; a value's hash is the sum of its words' plus
    its length times a constant. Vectorised over the words of many values at a time.
    """
    n = len(arr)
    _, offsets_buf, data_buf = arr.buffers()
    wide = pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)
    offsets = np.frombuffer(offsets_buf, dtype="<i8" if wide else "<i4")
    offsets = offsets[arr.offset : arr.offset + n + 1].astype(np.int64)
    lengths = np.diff(offsets)
    with np.errstate(over="ignore"):
        h = lengths.view(_U64) * _FOLD  # lengths are not negative: their bits
    longest = int(lengths.max()) if n else 0
    if 0 < longest <= 8:  # ids, codes, short names: one word or none per value
        words, starts = _words(data_buf, int(offsets[-1])), offsets[:-1]
        for a in range(0, n, _CHUNK_WORDS):
            b = a + _CHUNK_WORDS
            h[a:b] += _short_sums(words, starts[a:b], lengths[a:b])
    elif longest:
        nw = (lengths + 7) // 8  # words per value
        words = _words(data_buf, int(offsets[-1]))
        last = np.cumsum(nw)
        bounds = np.searchsorted(last, np.arange(0, int(last[-1]), _CHUNK_WORDS), "right")
        for a, b in zip(bounds.tolist(), [*bounds[1:].tolist(), n], strict=True):
            h[a:b] += _word_sums(words, offsets[a:b], lengths[a:b], nw[a:b])
    if arr.null_count:
        h[np.asarray(arr.is_null())] = _NULL
    return h


def _words(data_buf: pa.Buffer, end: int) -> np.ndarray:
    """The first ``end`` bytes as a uint64 at every byte offset (unaligned), padded."""
    data = np.frombuffer(data_buf, dtype=np.uint8, count=end)
    if end < 64:  # too short to be worth a view: one padded copy
        data = np.concatenate([data, np.zeros(8, np.uint8)])
    else:  # words past the end come from the last one, shifted (see _word_sums)
        end -= 7
    return np.ndarray((end,), dtype=_U64, buffer=data, strides=(1,))


def _word_sums(
    words: np.ndarray, starts: np.ndarray, lengths: np.ndarray, nw: np.ndarray
) -> np.ndarray:
    """Per value, the sum of its mixed words (0 when empty)."""
    sums = np.zeros(len(nw), dtype=_U64)
    one = np.flatnonzero(nw == 1)  # most text: one word, no per-word bookkeeping
    if len(one):
        w = _read(words, starts[one]) & _TAIL_MASKS[lengths[one]]
        sums[one] = _mixed(w, np.zeros(1, dtype=_U64))
    more = np.flatnonzero(nw > 1)
    if len(more):
        nwm = nw[more]
        last = np.cumsum(nwm)
        first = last - nwm
        place = np.arange(int(last[-1]), dtype=np.int64) - np.repeat(first, nwm)
        w = _read(words, np.repeat(starts[more], nwm) + 8 * place)
        w[last - 1] &= _TAIL_MASKS[lengths[more] - 8 * (nwm - 1)]
        sums[more] = np.add.reduceat(_mixed(w, place.view(_U64)), first)
    return sums


def _short_sums(words: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """:func:`_word_sums` of values of at most one word (an empty one's is 0 too)."""
    w = _read(words, starts)
    w &= _TAIL_MASKS[lengths]
    with np.errstate(over="ignore"):  # _mixed at place 0
        w *= _M1
        w ^= w >> np.uint64(29)
    return w


def _read(words: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The words at byte offsets ``at``; those past the view's end are shifted in."""
    end = len(words) - 1
    w = words[np.minimum(at, end)]
    past = np.flatnonzero(at > end)  # only at the very end of the data
    if len(past):
        w[past] >>= (at[past] - end).astype(_U64) * np.uint64(8)
    return w


def _mixed(w: np.ndarray, place: np.ndarray) -> np.ndarray:
    """Each word mixed with its place in its value (in place)."""
    with np.errstate(over="ignore"):
        w ^= place * _M2
        w *= _M1
        w ^= w >> np.uint64(29)
    return w
