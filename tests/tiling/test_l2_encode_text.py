"""Arrow text goes into the glb's property table as it is, with the same bytes.

A tile task carries its text columns as Arrow string arrays; the encoder takes their
UTF-8 buffer and offsets (:func:`tiling.buildings.l2._as_text`) instead of making a
Python string per value and encoding it again (:func:`tiling.gltf.encode_strings`).
The glb must be byte for byte what the object-array route writes. Compressed index
buffers are encoded from the uint32 indices whatever the view's width: the same bytes.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pytest

from tiling.buildings.extrude import extrude
from tiling.buildings.l2 import _as_numpy, _as_text
from tiling.gltf import (
    EncodedText,
    FeatureMesh,
    PropertySpec,
    encode_strings,
    read_glb,
    read_property_table,
    write_glb,
)

_VALUES = ["b1", "", "陆家嘴 1号", "Straße 5; Weg 2", "", "🏠"]


@pytest.mark.parametrize(
    "column",
    [
        pa.array(_VALUES),
        pa.array(["x", *_VALUES, "y"]).slice(1, len(_VALUES)),  # offsets not from 0
        pa.array(_VALUES, pa.large_string()),
        pa.array(_VALUES).take(pa.array([5, 0, 2, 2, 1, 3])),
        pa.array(["", "", ""]),
        pa.array([], pa.string()),
    ],
)
def test_arrow_text_is_the_property_table_layout(column: pa.Array) -> None:
    text = _as_text(column)
    assert isinstance(text, EncodedText)
    data, offsets = encode_strings(_as_numpy(column))
    assert text.data == data
    assert text.offsets.tolist() == offsets.tolist()
    assert len(text) == len(column)


@pytest.mark.parametrize(
    "column",
    [
        pa.array(["a\0b", "c"]),  # encode_strings drops NUL characters
        pa.array(["a", None]),
        pa.array([1, 2]),
        np.array(["a", "b"], dtype=object),
    ],
)
def test_other_columns_take_the_object_route(column) -> None:
    out = _as_text(column)
    assert isinstance(out, np.ndarray)
    assert out.tolist() == _as_numpy(column).tolist()


def _mesh(n: int) -> FeatureMesh:
    """``n`` unit boxes in a row (the rows shared, as the L2 encoder gets them)."""
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]], dtype=float)
    xy = np.concatenate([square + np.array([2.0 * i, 0.0]) for i in range(n)])
    base = np.column_stack([xy, np.zeros(len(xy))])
    top = base + np.array([0.0, 0.0, 10.0])
    rings = np.arange(0, 5 * n + 1, 5)
    return extrude(base, top, rings, np.arange(n + 1), np.arange(n), shared_rows=True)


@pytest.mark.parametrize("compression", ["meshopt", "none"])
@pytest.mark.parametrize("n", [3, 700])  # 700 boxes: 16 800 vertices, uint16 indices still
def test_glb_from_arrow_text_equals_the_object_route(compression: str, n: int) -> None:
    rng = np.random.default_rng(n)
    words = np.array(["", "a", "Straße", "陆家嘴", "x" * 40], dtype=object)
    names = pa.array(words[rng.integers(0, len(words), n)].tolist())
    props = [
        PropertySpec("id", "STRING"),
        PropertySpec("name", "STRING"),
        PropertySpec("empty", "STRING"),
        PropertySpec("height", "SCALAR", "FLOAT32"),
    ]
    arrow = {
        "id": pa.array([f"b{i}" for i in range(n)]),
        "name": names,
        "empty": pa.array([""] * n),
        "height": np.full(n, 10.0),
    }
    objects = {k: _as_numpy(v) for k, v in arrow.items()}
    text = {k: _as_text(v) if isinstance(v, pa.Array) else v for k, v in arrow.items()}
    assert isinstance(text["name"], EncodedText)
    want = write_glb(_mesh(n), props, objects, compression=compression)
    got = write_glb(_mesh(n), props, text, compression=compression)
    assert got == want
    table = read_property_table(*read_glb(got))
    assert table["name"] == names.to_pylist()
    assert "empty" not in table  # all empty: left out, as before


@pytest.mark.parametrize("compression", ["meshopt", "none"])
def test_index_width_is_the_views_whatever_the_mesh_holds(compression: str) -> None:
    mesh = _mesh(5)
    props = [PropertySpec("id", "STRING")]
    table = {"id": np.array([f"b{i}" for i in range(5)], dtype=object)}
    wide = dataclasses.replace(mesh, indices=mesh.indices.astype(np.int64))
    narrow = dataclasses.replace(mesh, indices=mesh.indices.astype(np.uint16))
    data = write_glb(wide, props, table, compression=compression)
    assert data == write_glb(narrow, props, table, compression=compression)
    gltf, _ = read_glb(data)
    prim = gltf["meshes"][0]["primitives"][0]
    acc = gltf["accessors"][prim["indices"]]
    view = gltf["bufferViews"][acc["bufferView"]]
    assert acc["componentType"] == 5123  # UNSIGNED_SHORT
    assert view["byteLength"] == 2 * acc["count"]
