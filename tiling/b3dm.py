"""3D Tiles 1.0 Batched 3D Model (b3dm) for older clients.

A b3dm is a 28-byte header, a feature table (``BATCH_LENGTH``), a batch table (one
JSON array per property) and the glb, each part padded to 8 bytes. The glb inside
carries a ``_BATCHID`` attribute instead of ``EXT_mesh_features`` (see
:func:`tiling.gltf.write_glb` with ``batch_ids=True``).
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np

HEADER = struct.Struct("<4sIIIIII")


def _padded_json(obj: dict[str, Any], align: int = 8, offset: int = 0) -> bytes:
    data = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return data + b" " * (-(offset + len(data)) % align)


def _jsonable(values: np.ndarray) -> list[Any]:
    out = []
    for v in values.tolist():
        if isinstance(v, float) and not math.isfinite(v):
            out.append(None)
        else:
            out.append(v)
    return out


def write_b3dm(glb: bytes, table: dict[str, np.ndarray]) -> bytes:
    """Wrap ``glb`` and its batch ``table`` (one column per property) as a b3dm."""
    n = len(next(iter(table.values()))) if table else 0
    feature = _padded_json({"BATCH_LENGTH": n}, offset=HEADER.size)
    batch = _padded_json({k: _jsonable(np.asarray(v)) for k, v in table.items()})
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
