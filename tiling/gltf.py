"""A small glTF 2.0 binary (glb) writer for feature meshes.

Writes one triangle mesh per file with:

- quantized attributes (``KHR_mesh_quantization``): positions as uint16 with the
  dequantization in the node's translation/uniform scale, normals as int8;
- a per-vertex feature id (``EXT_mesh_features``) pointing at a property table
  (``EXT_structural_metadata``), one row per feature;
- optionally ``EXT_meshopt_compression`` of the vertex and index streams
  (meshoptimizer's codec, decoded by CesiumJS natively).

Positions are given in a local east-north-up frame (z up) and stored in glTF's
y-up convention; 3D Tiles rotates y-up to z-up when it loads the content.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import meshoptimizer
import numpy as np
from anyascii import anyascii

GLB_MAGIC = 0x46546C67
CHUNK_JSON = 0x4E4F534A
CHUNK_BIN = 0x004E4942
UNSIGNED_BYTE, BYTE, UNSIGNED_SHORT, SHORT, UNSIGNED_INT, FLOAT = 5121, 5120, 5123, 5122, 5125, 5126
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963

meshoptimizer.encode_vertex_version(0)  # EXT_meshopt_compression reads codec version 0
meshoptimizer.encode_index_version(1)

# metadata component types → numpy dtypes
COMPONENT_DTYPES: dict[str, np.dtype] = {
    "INT8": np.dtype("<i1"),
    "UINT8": np.dtype("<u1"),
    "INT16": np.dtype("<i2"),
    "UINT16": np.dtype("<u2"),
    "INT32": np.dtype("<i4"),
    "UINT32": np.dtype("<u4"),
    "INT64": np.dtype("<i8"),
    "UINT64": np.dtype("<u8"),
    "FLOAT32": np.dtype("<f4"),
    "FLOAT64": np.dtype("<f8"),
}

#: The id pattern of 3D Tiles / EXT_structural_metadata schemas, classes and properties.
ID_PATTERN = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_NOT_ID = re.compile(r"[^a-zA-Z0-9_]+")
MAX_ID_LENGTH = 64


def is_valid_id(text: str) -> bool:
    """Whether ``text`` matches ``^[a-zA-Z_][a-zA-Z0-9_]*$`` (schema, class, property ids)."""
    return isinstance(text, str) and ID_PATTERN.fullmatch(text) is not None


def metadata_ids(
    names: Iterable[str], reserved: Iterable[str] = (), fallback: str = "extra"
) -> list[str]:
    """Valid, unique metadata ids for display ``names`` (e.g. attribute names).

    A name that is already a valid id is kept; otherwise it is transliterated to ASCII
    (``建成年代`` → ``JianChengNianDai``, ``Année`` → ``Annee``), other characters become
    ``_`` and a leading digit gets a ``_`` prefix; when nothing is left the id is
    ``{fallback}_{k}`` (k counts the names from 1). Ids in ``reserved`` or already given
    get a ``_2``, ``_3``... suffix.

    Parameters
    ----------
    names : iterable of str
    reserved : iterable of str
        Ids already used (the built-in properties).
    fallback : str
        Prefix of ids for names with nothing transliterable.

    Returns
    -------
    list of str
        One id per name, in order.
    """
    taken = set(reserved)
    out = []
    for k, name in enumerate(names, 1):
        base = _ascii_id(str(name)) or f"{fallback}_{k}"
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}_{n}", n + 1
        taken.add(candidate)
        out.append(candidate)
    return out


def _ascii_id(name: str) -> str:
    if is_valid_id(name) and len(name) <= MAX_ID_LENGTH:
        return name
    text = _NOT_ID.sub("_", anyascii(name)).strip("_")[:MAX_ID_LENGTH]
    if text and text[0].isdigit():
        text = "_" + text
    return text


@dataclass(frozen=True)
class PropertySpec:
    """One property of the metadata class (EXT_structural_metadata).

    ``id`` is the property id (``^[a-zA-Z_][a-zA-Z0-9_]*$``, the key in the class and
    the table); ``name`` is the display name written to the schema when it differs
    (e.g. the source attribute ``建成年代`` of the id ``JianChengNianDai``).
    """

    id: str
    type: str  # "STRING" or "SCALAR"
    component_type: str | None = None
    no_data: float | int | None = None
    description: str = ""
    name: str = ""

    def schema(self) -> dict[str, Any]:
        """The class property definition."""
        out: dict[str, Any] = {"type": self.type}
        if self.name:
            out["name"] = self.name
        if self.description:
            out["description"] = self.description
        if self.component_type:
            out["componentType"] = self.component_type
        if self.no_data is not None:
            out["noData"] = self.no_data
        return out


#: noData of numeric columns whose source has missing values (NaN, None, "").
INT32_NO_DATA = -(2**31)
FLOAT64_NO_DATA = float(np.finfo(np.float64).min)
_EXACT_INT = 2**53  # integers beyond this are not exact in FLOAT64 (nor in JavaScript)


def typed_column(
    prop_id: str, values: np.ndarray, *, name: str = "", description: str = ""
) -> tuple[PropertySpec, np.ndarray]:
    """The metadata type of an attribute column and the column to write.

    Numbers stay numbers: integers (int arrays, or object arrays of ints) become INT32
    when they fit, floats and larger integers (exact up to 2**53) FLOAT64; missing values
    (NaN, None, ``""``) are written as the property's ``noData`` (``INT32_NO_DATA``,
    ``FLOAT64_NO_DATA``), which CesiumJS reads as "no value". Everything else (text,
    booleans, mixed columns, integers beyond 2**53) is a STRING column, ``""`` for
    missing values. INT64 is avoided on purpose: CesiumJS reads it as BigInt, which
    style expressions and number formatting do not take.

    Parameters
    ----------
    prop_id : str
        A valid property id (see :func:`metadata_ids`).
    values : ndarray
        The column, one value per feature.
    name, description : str
        Display name and description for the schema.

    Returns
    -------
    (PropertySpec, ndarray)
        The property and the column converted to its type (object array of str for
        STRING, the component dtype for SCALAR).
    """
    arr = np.asarray(values)
    numbers, missing = _as_numbers(arr)
    spec = dict(name=name, description=description)
    if numbers is None:
        return PropertySpec(prop_id, "STRING", **spec), _as_text(arr)
    present = numbers[~missing]
    integral = numbers.dtype.kind in "iu"
    if integral and (not len(present) or (present.min() > INT32_NO_DATA and present.max() < 2**31)):
        column = np.where(missing, INT32_NO_DATA, numbers).astype("<i4")
        return PropertySpec(prop_id, "SCALAR", "INT32", INT32_NO_DATA, **spec), column
    if integral and len(present) and np.abs(present).max() > _EXACT_INT:
        return PropertySpec(prop_id, "STRING", **spec), _as_text(arr)
    column = np.where(missing, FLOAT64_NO_DATA, numbers.astype(np.float64))
    return PropertySpec(prop_id, "SCALAR", "FLOAT64", FLOAT64_NO_DATA, **spec), column


def _as_numbers(arr: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """(numbers, missing mask), or (None, _) when ``arr`` is not a numeric column."""
    none = np.zeros(len(arr), dtype=bool)
    if arr.dtype.kind in "iu":
        return arr, none
    if arr.dtype.kind == "f":
        return arr, ~np.isfinite(arr)
    if arr.dtype.kind != "O":
        return None, none  # text, bytes, booleans, dates
    items = arr.tolist()
    kinds = set(map(type, items))
    if any(issubclass(k, np.generic) for k in kinds):  # numpy scalars in an object array
        items = [v.item() if isinstance(v, np.generic) else v for v in items]
        kinds = set(map(type, items))
    if not kinds <= {int, float, str, type(None)} or not kinds & {int, float}:
        return None, none  # booleans, mixed objects, or no number at all
    if str in kinds and any(type(v) is str and v.strip() != "" for v in items):
        return None, none
    missing = np.fromiter(
        (v is None or type(v) is str or (type(v) is float and v != v) for v in items),
        dtype=bool,
        count=len(items),
    )
    filled = [0 if m else v for v, m in zip(items, missing.tolist(), strict=True)]
    if float not in kinds:
        if any(abs(v) >= 2**63 for v in filled):
            return None, none
        return np.array(filled, dtype=np.int64), missing
    numbers = np.array(filled, dtype=np.float64)
    return numbers, missing | ~np.isfinite(numbers)


def _as_text(arr: np.ndarray) -> np.ndarray:
    """An object array of str, ``""`` for None and NaN."""
    items = arr.tolist()
    if all(type(v) is str for v in items):
        return np.array(items, dtype=object) if arr.dtype.kind != "O" else arr
    out = np.empty(len(items), dtype=object)
    out[:] = ["" if v is None or (isinstance(v, float) and v != v) else str(v) for v in items]
    return out


@dataclass(frozen=True)
class EncodedText:
    """A STRING column already laid out as a property table stores it.

    ``data`` holds the UTF-8 bytes of all values, ``offsets`` their (n + 1) byte
    offsets from 0 (what :func:`encode_strings` makes of an object array; an Arrow
    string array's buffers are this layout). No value may contain a NUL character
    (:func:`encode_strings` drops those).
    """

    data: bytes
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1


@dataclass
class FeatureMesh:
    """Triangles of a set of features in local ENU metres (z up).

    Attributes
    ----------
    positions : (n, 3) float64
    normals : (n, 3) float32, unit length
    feature_ids : (n,) integer, index into the property table
    indices : (m,) integer, triangles, counter-clockwise seen from outside
    colors : (n, 4) uint8 or None
        Per-vertex RGBA (``COLOR_0``; the material is then white), e.g. pipes coloured
        by utility.
    position_index, normal_index : (n,) integer or None
        When given, vertex i's position is ``positions[position_index[i]]`` (its normal
        ``normals[normal_index[i]]``): vertices that share a row (the corners of
        extruded walls) are quantized and encoded once per row (the extent is that
        of the rows used). :meth:`expanded` gives the one-row-per-vertex mesh.
    """

    positions: np.ndarray
    normals: np.ndarray
    feature_ids: np.ndarray
    indices: np.ndarray
    colors: np.ndarray | None = None
    position_index: np.ndarray | None = None
    normal_index: np.ndarray | None = None

    def expanded(self) -> FeatureMesh:
        """The mesh with one position and one normal row per vertex (indexes applied)."""
        if self.position_index is None and self.normal_index is None:
            return self
        pos, nrm = self.position_index, self.normal_index
        return FeatureMesh(
            self.positions if pos is None else np.take(self.positions, pos, axis=0),
            self.normals if nrm is None else np.take(self.normals, nrm, axis=0),
            self.feature_ids,
            self.indices,
            self.colors,
        )


@dataclass
class _Writer:
    """Accumulates buffer views and accessors for one glb."""

    compress: bool
    gltf: dict[str, Any] = field(default_factory=dict)
    binary: bytearray = field(default_factory=bytearray)
    fallback_length: int = 0

    def __post_init__(self) -> None:
        self.gltf.setdefault("bufferViews", [])
        self.gltf.setdefault("accessors", [])

    def _append(self, data: bytes) -> int:
        while len(self.binary) % 8:
            self.binary.append(0)
        offset = len(self.binary)
        self.binary.extend(data)
        return offset

    def raw_view(self, data: bytes) -> int:
        """A buffer view over ``data`` stored as is (metadata)."""
        offset = self._append(data)
        self.gltf["bufferViews"].append(
            {"buffer": 0, "byteOffset": offset, "byteLength": len(data)}
        )
        return len(self.gltf["bufferViews"]) - 1

    def vertex_view(
        self,
        array: np.ndarray,
        target: int,
        mode: str,
        vertex_count: int | None = None,
        dtype: np.dtype | type | None = None,
    ) -> int:
        """A buffer view of vertex/index data, meshopt-compressed when enabled.

        ``vertex_count`` (indices only) bounds the indices when the caller knows it: it
        sizes the encoder's buffer, and saves a pass over the indices. ``dtype`` is the
        view's component type when ``array`` holds the values in another (indices:
        meshoptimizer's codec reads them as uint32 whatever the width they are stored
        in, so compressed indices are not converted).
        """
        dtype = np.dtype(array.dtype if dtype is None else dtype)
        compressed_indices = self.compress and mode == "TRIANGLES"
        array = np.ascontiguousarray(array, dtype=np.uint32 if compressed_indices else dtype)
        stride = dtype.itemsize * (array.shape[1] if array.ndim == 2 else 1)
        count = array.shape[0]
        nbytes = count * stride
        view: dict[str, Any] = {"byteLength": nbytes, "target": target}
        if target == ARRAY_BUFFER:
            view["byteStride"] = stride
        if not self.compress:
            view["buffer"] = 0
            view["byteOffset"] = self._append(array.tobytes())
        else:
            if mode == "TRIANGLES":
                if vertex_count is None:
                    vertex_count = int(array.max()) + 1 if count else 0
                encoded = meshoptimizer.encode_index_buffer(
                    array.ravel(), len(array.ravel()), vertex_count
                )
            else:
                encoded = meshoptimizer.encode_vertex_buffer(array, count, stride)
            while self.fallback_length % 8:
                self.fallback_length += 1
            view["buffer"] = 1
            view["byteOffset"] = self.fallback_length
            self.fallback_length += nbytes
            view["extensions"] = {
                "EXT_meshopt_compression": {
                    "buffer": 0,
                    "byteOffset": self._append(encoded),
                    "byteLength": len(encoded),
                    "byteStride": stride,
                    "count": count if mode != "TRIANGLES" else array.size,
                    "mode": mode,
                }
            }
        self.gltf["bufferViews"].append(view)
        return len(self.gltf["bufferViews"]) - 1

    def accessor(self, view: int, component: int, kind: str, count: int, **extra: Any) -> int:
        acc = {"bufferView": view, "componentType": component, "type": kind, "count": count}
        acc.update(extra)
        self.gltf["accessors"].append(acc)
        return len(self.gltf["accessors"]) - 1


def quantize_positions(positions_enu: np.ndarray) -> tuple[np.ndarray, list[float], float]:
    """ENU float positions → (uint16 glTF y-up positions padded to 4, translation, scale)."""
    lo, _, scale = _quantization(positions_enu)
    return _quantized(positions_enu, lo, scale), [float(v) for v in lo], scale


def _quantization(
    positions_enu: np.ndarray, enu_bounds: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """The glTF y-up minimum (the translation) and maximum corners, and the uniform
    scale of ``positions_enu`` (whose per-column ENU minima and maxima are
    ``enu_bounds`` when given: :func:`enu_bounds_of`)."""
    # glTF columns (x, z, -y); the arithmetic stays in the positions' own precision
    if len(positions_enu):
        low, high = enu_bounds or enu_bounds_of(positions_enu)
        lo = np.array([low[0], low[2], -high[1]])
        hi = np.array([high[0], high[2], -low[1]])
        extent = float(max(hi[k] - lo[k] for k in range(3)))
    else:
        lo, extent = np.zeros(3, dtype=positions_enu.dtype), 0.0
        hi = lo
    return lo, hi, extent / 65535.0 if extent > 0 else 1.0


def enu_bounds_of(positions_enu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column (x, y, z) minima and maxima of (n, 3) positions, n > 0."""
    # per column: numpy reduces a strided axis 0 several times slower
    cols = [positions_enu[:, k] for k in range(3)]
    return np.array([c.min() for c in cols]), np.array([c.max() for c in cols])


def _quantized_bounds(
    lo: np.ndarray, hi: np.ndarray, scale: float, dtype: np.dtype
) -> tuple[list[int], list[int]]:
    """Per-column min and max of the quantized positions whose corners are ``lo``, ``hi``.

    Quantization is monotonic in each glTF column, so the extremes are those of the
    corners, quantized by the same arithmetic (no reduction over the vertices).
    """
    corners = np.empty((2, 3), dtype=dtype)  # back to ENU (x, y, z) = (x, -z, y) of glTF
    corners[:, 0], corners[:, 1], corners[:, 2] = (lo[0], hi[0]), (-lo[2], -hi[2]), (lo[1], hi[1])
    q = _quantized(corners, lo, scale)[:, :3].tolist()
    return q[0], q[1]


def _quantized(positions_enu: np.ndarray, lo: np.ndarray, scale: float) -> np.ndarray:
    """uint16 glTF y-up positions padded to 4, in the frame of :func:`_quantization`."""
    cols = [positions_enu[:, 0], positions_enu[:, 2], positions_enu[:, 1]]
    q = np.zeros((len(positions_enu), 4), dtype=np.uint16)
    work = np.empty(len(positions_enu), dtype=np.result_type(lo.dtype, np.float16))
    for k, col in enumerate(cols):
        if k == 2:
            np.negative(col, out=work)
            np.subtract(work, lo[k], out=work)
        else:
            np.subtract(col, lo[k], out=work)
        np.divide(work, scale, out=work)
        np.rint(work, out=work)
        np.clip(work, 0, 65535, out=work)
        q[:, k] = work
    return q


def encode_normals(normals_enu: np.ndarray) -> np.ndarray:
    """Unit ENU normals → int8 glTF y-up normals padded to 4 bytes."""
    out = np.zeros((len(normals_enu), 4), dtype=np.int8)
    # in the normals' own precision, as the (n, 3) arithmetic was (rounding ties)
    work = np.empty(len(normals_enu), dtype=np.result_type(normals_enu.dtype, np.float16))
    # glTF y-up: (x, z, -y), one column at a time (no (n, 3) float64 temporaries)
    for k, (col, sign) in enumerate(((0, 1.0), (2, 1.0), (1, -1.0))):
        np.multiply(normals_enu[:, col], sign * 127.0, out=work)
        np.rint(work, out=work)
        np.clip(work, -127, 127, out=work)
        out[:, k] = work
    return out


def optimise_mesh(mesh: FeatureMesh) -> FeatureMesh:
    """Reorder triangles for the vertex cache and vertices for fetch (better compression)."""
    mesh = mesh.expanded()
    if len(mesh.positions) == 0:
        return mesh
    order, indices = _optimised_order(mesh.indices, len(mesh.positions))
    return _reordered(mesh, order, indices)


def _optimised_order(indices: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """meshoptimizer's vertex-cache and vertex-fetch order: (new → old vertex, indices)."""
    idx = np.ascontiguousarray(indices, dtype=np.uint32)
    cache = np.empty_like(idx)
    meshoptimizer.optimize_vertex_cache(cache, idx, len(idx), n)
    remap = np.empty(n, dtype=np.uint32)
    unique = meshoptimizer.optimize_vertex_fetch_remap(remap, cache, len(cache), n)
    order = np.empty(unique, dtype=np.int64)
    if unique == n:  # every vertex referenced: remap is a permutation
        order[remap] = np.arange(n)
    else:
        used = remap < unique  # unreferenced vertices get ~0 and are dropped
        order[remap[used]] = np.flatnonzero(used)
    # np.take: a gather in a tight loop, about twice as fast as fancy indexing
    return order, np.take(remap, cache)


def _rows(a: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``a[order]`` of a C-contiguous (n, k) array of 4- or 8-byte rows, gathered as words."""
    word = np.uint64 if a.strides[0] == 8 else np.uint32
    return np.take(a.view(word).ravel(), order).view(a.dtype).reshape(len(order), a.shape[1])


def _reordered(mesh: FeatureMesh, order: np.ndarray, indices: np.ndarray) -> FeatureMesh:
    return FeatureMesh(
        positions=mesh.positions[order],
        normals=mesh.normals[order],
        feature_ids=mesh.feature_ids[order],
        indices=indices,
        colors=mesh.colors[order] if mesh.colors is not None else None,
    )


def _encoded_attributes(
    mesh: FeatureMesh, enu_bounds: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[
    FeatureMesh, np.ndarray, list[float], float, np.ndarray, tuple[list[int], list[int]] | None
]:
    """The optimised mesh with its quantized positions (and their per-column min and
    max, ``None`` when there are none) and encoded normals.

    The float rows are encoded in place (every row once, however many vertices share
    it) and only the compact encodings are gathered into the optimised vertex order:
    the bytes of reorder-then-encode, a fraction of the memory traffic. The extent is
    that of the rows of referenced vertices, as after the reorder. ``positions`` and
    ``normals`` of the returned mesh are the input's rows and must not be used.
    ``enu_bounds`` are those of ``mesh.positions`` when at hand (:func:`enu_bounds_of`).
    """
    pos_index, nrm_index = mesh.position_index, mesh.normal_index
    n = len(mesh.positions) if pos_index is None else len(pos_index)
    if not n:
        qpos, translation, scale = quantize_positions(mesh.positions[:0])
        normals = encode_normals(mesh.normals[:0])
        return mesh.expanded(), qpos, translation, scale, normals, None
    order, indices = _optimised_order(mesh.indices, n)
    pos_rows = order if pos_index is None else np.take(pos_index, order)
    nrm_rows = order if nrm_index is None else np.take(nrm_index, order)
    written = mesh.positions
    if pos_index is not None or len(order) < n:  # quantize to the rows written only
        used = np.zeros(len(written), dtype=bool)
        used[pos_rows] = True
        if not used.all():
            written = written[used]
    lo, hi, scale = _quantization(written, enu_bounds if written is mesh.positions else None)
    qpos = _rows(_quantized(mesh.positions, lo, scale), pos_rows)
    normals = _rows(encode_normals(mesh.normals), nrm_rows)
    colors = mesh.colors[order] if mesh.colors is not None else None
    fids = np.take(mesh.feature_ids, order)
    out = FeatureMesh(mesh.positions, mesh.normals, fids, indices, colors)
    bounds = _quantized_bounds(lo, hi, scale, written.dtype) if len(written) else None
    return out, qpos, [float(v) for v in lo], scale, normals, bounds


def write_glb(
    mesh: FeatureMesh,
    properties: list[PropertySpec],
    table: dict[str, np.ndarray | EncodedText],
    *,
    class_name: str = "building",
    compression: str = "meshopt",
    schema_id: str = "cim",
    batch_ids: bool = False,
    enu_bounds: tuple[np.ndarray, np.ndarray] | None = None,
) -> bytes:
    """Encode ``mesh`` and its features' ``table`` as a glb.

    Parameters
    ----------
    mesh : FeatureMesh
    properties : list of PropertySpec
        The metadata class's properties, in order.
    table : dict
        Column per property name, one row per feature (``featureCount`` rows); a
        STRING column may come as :class:`EncodedText`.
    compression : {"meshopt", "none"}
    schema_id : str
        ``EXT_structural_metadata`` schema id.
    batch_ids : bool
        3D Tiles 1.0 style: a ``_BATCHID`` attribute and no metadata extensions (the
        properties then go into the b3dm batch table, see :mod:`tiling.b3dm`).
    enu_bounds : (ndarray, ndarray), optional
        ``enu_bounds_of(mesh.positions)`` when the caller has them (saves that pass).

    Returns
    -------
    bytes
        The glb file.
    """
    if compression not in ("meshopt", "none"):
        raise ValueError(f"unknown compression {compression!r}")
    bad = [i for i in (schema_id, class_name, *(p.id for p in properties)) if not is_valid_id(i)]
    if bad:  # a caller's bug: ids are made valid by metadata_ids()
        raise ValueError(f"metadata ids must match {ID_PATTERN.pattern}: {bad}")
    mesh, qpos, translation, scale, normals, bounds = _encoded_attributes(mesh, enu_bounds)
    if bounds is None:  # no vertex: numpy says so, as it always did
        bounds = (
            [int(qpos[:, k].min()) for k in range(3)],
            [int(qpos[:, k].max()) for k in range(3)],
        )
    n_features = len(next(iter(table.values()))) if table else 0
    w = _Writer(compress=compression == "meshopt")
    used = ["KHR_mesh_quantization"]
    if not batch_ids:
        used += ["EXT_mesh_features", "EXT_structural_metadata"]
    if w.compress:
        used.append("EXT_meshopt_compression")
    fid_dtype = np.uint8 if n_features <= 256 else np.uint16 if n_features <= 65536 else np.uint32
    fids = np.zeros((len(qpos), 4 // np.dtype(fid_dtype).itemsize), dtype=fid_dtype)
    fids[:, 0] = mesh.feature_ids
    index_dtype = np.uint16 if len(qpos) <= 65535 else np.uint32
    indices = mesh.indices  # the view's dtype is index_dtype
    pos_view = w.vertex_view(qpos, ARRAY_BUFFER, "ATTRIBUTES")
    nrm_view = w.vertex_view(normals, ARRAY_BUFFER, "ATTRIBUTES")
    fid_view = w.vertex_view(fids, ARRAY_BUFFER, "ATTRIBUTES")
    idx_view = w.vertex_view(indices, ELEMENT_ARRAY_BUFFER, "TRIANGLES", len(qpos), index_dtype)
    pos_acc = w.accessor(
        pos_view,
        UNSIGNED_SHORT,
        "VEC3",
        len(qpos),
        min=bounds[0],
        max=bounds[1],
    )
    nrm_acc = w.accessor(nrm_view, BYTE, "VEC3", len(qpos), normalized=True)
    fid_component = {np.uint8: UNSIGNED_BYTE, np.uint16: UNSIGNED_SHORT, np.uint32: UNSIGNED_INT}
    fid_acc = w.accessor(fid_view, fid_component[fid_dtype], "SCALAR", len(qpos))
    idx_acc = w.accessor(
        idx_view,
        UNSIGNED_SHORT if index_dtype == np.uint16 else UNSIGNED_INT,
        "SCALAR",
        len(indices),
    )
    primitive: dict[str, Any] = {
        "attributes": {"POSITION": pos_acc, "NORMAL": nrm_acc, "_FEATURE_ID_0": fid_acc},
        "indices": idx_acc,
        "material": 0,
        "mode": 4,
    }
    base_colour = [0.92, 0.9, 0.86, 1.0]
    if mesh.colors is not None:  # per-vertex colours (pipes by utility): white material
        rgba = np.ascontiguousarray(mesh.colors, dtype=np.uint8).reshape(len(qpos), 4)
        col_view = w.vertex_view(rgba, ARRAY_BUFFER, "ATTRIBUTES")
        primitive["attributes"]["COLOR_0"] = w.accessor(
            col_view, UNSIGNED_BYTE, "VEC4", len(qpos), normalized=True
        )
        base_colour = [1.0, 1.0, 1.0, 1.0]
    gltf = w.gltf
    if batch_ids:
        primitive["attributes"]["_BATCHID"] = primitive["attributes"].pop("_FEATURE_ID_0")
    else:
        primitive["extensions"] = {
            "EXT_mesh_features": {
                "featureIds": [{"featureCount": n_features, "attribute": 0, "propertyTable": 0}]
            }
        }
        gltf["extensions"] = {
            "EXT_structural_metadata": _property_table(
                w, properties, table, class_name, schema_id, n_features
            )
        }
    gltf.update(
        {
            "asset": {"version": "2.0", "generator": "cim-toolkit"},
            "extensionsUsed": used,
            "extensionsRequired": [
                e for e in used if e in ("KHR_mesh_quantization", "EXT_meshopt_compression")
            ],
            "scene": 0,
            "scenes": [{"nodes": [0]}],
            "nodes": [{"mesh": 0, "translation": translation, "scale": [scale, scale, scale]}],
            "materials": [
                {
                    "pbrMetallicRoughness": {
                        "baseColorFactor": base_colour,
                        "metallicFactor": 0.0,
                        "roughnessFactor": 0.9,
                    },
                }
            ],
            "meshes": [{"primitives": [primitive]}],
        }
    )
    buffers: list[dict[str, Any]] = [{"byteLength": 0}]
    if w.compress:
        buffers.append(
            {
                "byteLength": w.fallback_length,
                "extensions": {"EXT_meshopt_compression": {"fallback": True}},
            }
        )
    gltf["buffers"] = buffers
    return _pack_glb(gltf, w.binary)


def _property_table(
    w: _Writer,
    properties: list[PropertySpec],
    table: dict[str, np.ndarray | EncodedText],
    class_name: str,
    schema_id: str,
    count: int,
) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    for spec in properties:
        values = table[spec.id]
        if spec.type == "STRING":
            if isinstance(values, EncodedText):
                data, offsets = values.data, values.offsets
            else:
                data, offsets = encode_strings(values)
            if len(data) == 0:
                continue  # all empty: leave the optional property out of this table
            offset_type = "UINT16" if offsets[-1] <= 0xFFFF else "UINT32"
            offs = offsets.astype(COMPONENT_DTYPES[offset_type])
            columns[spec.id] = {
                "values": w.raw_view(data),
                "stringOffsets": w.raw_view(offs.tobytes()),
                "stringOffsetType": offset_type,
            }
        else:
            assert spec.component_type is not None
            arr = np.asarray(values).astype(COMPONENT_DTYPES[spec.component_type])
            columns[spec.id] = {"values": w.raw_view(arr.tobytes())}
    return {
        "schema": {
            "id": schema_id,
            "classes": {class_name: {"properties": {p.id: p.schema() for p in properties}}},
        },
        "propertyTables": [{"class": class_name, "count": count, "properties": columns}],
    }


def encode_strings(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """UTF-8 bytes of all strings and their (n + 1) byte offsets, without a Python loop
    over bytes: the strings are joined with NUL separators, encoded once, and the
    separators located with numpy. A lone surrogate (text UTF-8 cannot hold: a JSON
    ``"\\ud800"`` escape) becomes U+FFFD."""
    n = len(values)
    items = values.tolist()
    try:
        joined = _utf8("\0".join(items))
    except TypeError:  # not all text: numbers, None
        items = [str(v) for v in items]
        joined = _utf8("\0".join(items))
    if joined.count(0) != max(n - 1, 0):  # a NUL inside a value: drop it
        joined = _utf8("\0".join(v.replace("\0", "") for v in items))
    seps = np.flatnonzero(np.frombuffer(joined, dtype=np.uint8) == 0)
    offsets = np.zeros(n + 1, dtype=np.int64)
    if n:  # the end of string i, without the separators before it
        np.subtract(seps, np.arange(n - 1), out=offsets[1:n])
        offsets[n] = len(joined) - (n - 1)
    return joined.replace(b"\0", b"") if len(seps) else joined, offsets


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: each one U+FFFD
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")


def _pack_glb(gltf: dict[str, Any], binary: bytearray) -> bytes:
    while len(binary) % 4:
        binary.append(0)
    gltf["buffers"][0]["byteLength"] = len(binary)
    text = json.dumps(gltf, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return b"".join(
        [
            struct.pack("<III", GLB_MAGIC, 2, total),
            struct.pack("<II", len(text), CHUNK_JSON),
            text,
            struct.pack("<II", len(binary), CHUNK_BIN),
            binary,
        ]
    )


def read_glb(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Split a glb into its JSON and binary chunk (for tests and ``cim info``)."""
    magic, version, length = struct.unpack_from("<III", data, 0)
    if magic != GLB_MAGIC or version != 2:
        raise ValueError("not a glTF 2.0 binary")
    json_len, _ = struct.unpack_from("<II", data, 12)
    gltf = json.loads(data[20 : 20 + json_len].decode("utf-8"))
    binary = b""
    offset = 20 + json_len
    if offset < length:
        bin_len, _ = struct.unpack_from("<II", data, offset)
        binary = data[offset + 8 : offset + 8 + bin_len]
    return gltf, binary


# --- reading back (checks, tests, ``cim info``) ---------------------------------------

_NUMPY_COMPONENT = {
    UNSIGNED_BYTE: np.uint8,
    BYTE: np.int8,
    UNSIGNED_SHORT: np.uint16,
    SHORT: np.int16,
    UNSIGNED_INT: np.uint32,
    FLOAT: np.float32,
}
_TYPE_SIZE = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}


def buffer_view_bytes(gltf: dict[str, Any], binary: bytes, view_index: int) -> bytes:
    """The (decompressed) bytes of a buffer view of a glb written by this module."""
    view = gltf["bufferViews"][view_index]
    ext = view.get("extensions", {}).get("EXT_meshopt_compression")
    if ext is None:
        start = view.get("byteOffset", 0)
        return binary[start : start + view["byteLength"]]
    data = binary[ext["byteOffset"] : ext["byteOffset"] + ext["byteLength"]]
    if ext["mode"] == "TRIANGLES":
        out = meshoptimizer.decode_index_buffer(ext["count"], ext["byteStride"], data)
        # the wrapper returns a uint32 array holding the raw index bytes
        return np.asarray(out).tobytes()[: ext["count"] * ext["byteStride"]]
    # decode as float32 rows (the wrapper sizes its output from the dtype), keep the bytes
    out = meshoptimizer.decode_vertex_buffer(ext["count"], ext["byteStride"], data)
    return np.asarray(out).tobytes()


def read_accessor(gltf: dict[str, Any], binary: bytes, index: int) -> np.ndarray:
    """An accessor's values as an (count, components) array (raw, not normalised)."""
    acc = gltf["accessors"][index]
    data = buffer_view_bytes(gltf, binary, acc["bufferView"])
    view = gltf["bufferViews"][acc["bufferView"]]
    dtype = np.dtype(_NUMPY_COMPONENT[acc["componentType"]])
    comps = _TYPE_SIZE[acc["type"]]
    stride = view.get("byteStride") or dtype.itemsize * comps
    raw = np.frombuffer(data, dtype=np.uint8)
    start = acc.get("byteOffset", 0)
    rows = np.lib.stride_tricks.as_strided(
        raw[start:], shape=(acc["count"], dtype.itemsize * comps), strides=(stride, 1)
    )
    return np.ascontiguousarray(rows).view(dtype).reshape(acc["count"], comps)


def read_positions_enu(gltf: dict[str, Any], binary: bytes) -> np.ndarray:
    """Dequantized positions of the first mesh, in the tile's ENU frame (z up)."""
    prim = gltf["meshes"][0]["primitives"][0]
    q = read_accessor(gltf, binary, prim["attributes"]["POSITION"]).astype(np.float64)
    node = gltf["nodes"][0]
    gl = q * np.asarray(node.get("scale", [1, 1, 1])) + np.asarray(
        node.get("translation", [0, 0, 0])
    )
    return np.column_stack([gl[:, 0], -gl[:, 2], gl[:, 1]])


def read_property_table(gltf: dict[str, Any], binary: bytes) -> dict[str, list[Any]]:
    """The first EXT_structural_metadata property table as columns of Python values."""
    meta = gltf["extensions"]["EXT_structural_metadata"]
    table = meta["propertyTables"][0]
    cls = meta["schema"]["classes"][table["class"]]["properties"]
    out: dict[str, list[Any]] = {}
    for name, prop in table["properties"].items():
        spec = cls[name]
        values = buffer_view_bytes(gltf, binary, prop["values"])
        if spec["type"] == "STRING":
            offsets = np.frombuffer(
                buffer_view_bytes(gltf, binary, prop["stringOffsets"]),
                dtype=COMPONENT_DTYPES[prop.get("stringOffsetType", "UINT32")],
            )
            out[name] = [
                values[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(table["count"])
            ]
        else:
            arr = np.frombuffer(values, dtype=COMPONENT_DTYPES[spec["componentType"]])
            out[name] = arr[: table["count"]].tolist()
    return out
