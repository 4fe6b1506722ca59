"""3D Tiles 1.0 Batched 3D Model (b3dm) for older clients.

A b3dm is a 28-byte header, a feature table (``BATCH_LENGTH``), a batch table (one
JSON array per property) and the glb, each part padded to 8 bytes. The glb inside
carries a ``_BATCHID`` attribute instead of ``EXT_mesh_features`` (see
:func:`tiling.gltf.write_glb` with ``batch_ids=True``).

The batch table follows the same rules as the 3D Tiles 1.1 metadata: property names
are valid ids (``^[a-zA-Z_][a-zA-Z0-9_]*$``), the source names of renamed properties are
kept in ``extras.names`` (which CesiumJS does not take for a property), numbers stay
JSON numbers and a property's ``noData`` value is written as ``null``.
"""

from __future__ import annotations

import json
import math
import struct
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tiling.gltf import PropertySpec

HEADER = struct.Struct("<4sIIIIII")


def _padded_json(obj: dict[str, Any], align: int = 8, offset: int = 0) -> bytes:
    data = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return data + b" " * (-(offset + len(data)) % align)


def _jsonable(values: np.ndarray, no_data: float | None = None) -> list[Any]:
    out = []
    for v in values.tolist():
        missing = isinstance(v, float) and not math.isfinite(v)
        if missing or (no_data is not None and v == no_data):
            out.append(None)
        else:
            out.append(v)
    return out


def write_b3dm(
    glb: bytes, table: dict[str, np.ndarray], properties: list[PropertySpec] | None = None
) -> bytes:
    """Wrap ``glb`` and its batch ``table`` (one column per property) as a b3dm.

    Parameters
    ----------
    glb : bytes
        The glb with a ``_BATCHID`` attribute.
    table : dict
        Column per property id, one row per feature.
    properties : list of PropertySpec, optional
        The columns' types: ``noData`` values become ``null``, display names go to
        ``extras.names``.
    """
    n = len(next(iter(table.values()))) if table else 0
    specs = {p.id: p for p in properties or []}
    columns: dict[str, Any] = {}
    for k, v in table.items():
        spec = specs.get(k)
        columns[k] = _jsonable(np.asarray(v), spec.no_data if spec else None)
    names = {p.id: p.name for p in specs.values() if p.name}
    if names:
        columns["extras"] = {"names": names}
    feature = _padded_json({"BATCH_LENGTH": n}, offset=HEADER.size)
    batch = _padded_json(columns)
    body = feature + batch + glb + b"\0" * (-len(glb) % 8)
    header = HEADER.pack(b"b3dm", 1, HEADER.size + len(body), len(feature), 0, len(batch), 0)
    return header + body


def read_b3dm(data: bytes) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """Split a b3dm into (feature table JSON, batch table JSON, glb)."""
    magic, version, length, ft_json, ft_bin, bt_json, bt_bin = HEADER.unpack_from(data)
    if magic != b"b3dm" or version != 1:
        raise ValueError("not a b3dm version 1")
    pos = HEADER.size
    feature = json.loads(data[pos : pos + ft_json])
    pos += ft_json + ft_bin
    batch = json.loads(data[pos : pos + bt_json]) if bt_json else {}
    pos += bt_json + bt_bin
    return feature, batch, data[pos:length]
