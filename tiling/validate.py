"""Checks of the 3D Tiles 1.1 rules the toolkit's tilesets must obey.

The official 3D Tiles validator is not available as a registry package here, so the
rules the writers rely on are checked by this module (used by the tests and the
benchmarks):

- ``asset.version`` is "1.0" or "1.1"; ``geometricError`` is present and ≥ 0 on the
  tileset and every tile, and never larger on a child than on its parent;
- the root has ``refine``; ``refine`` values are "ADD" or "REPLACE";
- transforms are 16 finite numbers; box volumes are 12 finite numbers;
- every content file exists, and its geometry lies inside the tile's bounding volume
  (and every child's volume inside its parent's);
- every extension used (tileset and glb) is listed in ``extensionsUsed``;
  ``extensionsRequired`` is a subset of ``extensionsUsed``;
- metadata ids (schema, class and property ids of ``EXT_structural_metadata`` and of
  a tileset ``schema``, b3dm batch table property names) match
  ``^[a-zA-Z_][a-zA-Z0-9_]*$``, and every property table names a class of the schema
  and only properties of that class;
- no content file is over the tile budget (1 MB by default).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from tiling.b3dm import read_b3dm
from tiling.gltf import is_valid_id, read_glb, read_positions_enu

TOLERANCE_M = 0.05
MAX_CONTENT_BYTES = 1_000_000


def check_tileset(
    path: Path,
    *,
    check_content: bool = True,
    max_contents: int | None = None,
    max_content_bytes: int = MAX_CONTENT_BYTES,
) -> list[str]:
    """Problems found in the tileset at ``path`` (an empty list when it is valid).

    Parameters
    ----------
    path : Path
        ``tileset.json``.
    check_content : bool
        Also open glb contents (extensions, geometry inside bounding volumes).
    max_contents : int, optional
        Open at most this many contents (the largest tiles first are not chosen:
        tiles are taken in tree order). File sizes are checked for all.
    max_content_bytes : int
        The tile budget: every content file must be at most this large.
    """
    problems: list[str] = []
    doc = json.loads(path.read_text(encoding="utf-8"))
    version = doc.get("asset", {}).get("version")
    if version not in ("1.0", "1.1"):
        problems.append(f"asset.version is {version!r}, not '1.0' or '1.1'")
    _check_error(doc.get("geometricError"), "tileset", problems)
    root = doc.get("root")
    if not isinstance(root, dict):
        return [*problems, "no root tile"]
    if root.get("refine") not in ("ADD", "REPLACE"):
        problems.append("root tile has no refine ('ADD' or 'REPLACE')")
    used = set(doc.get("extensionsUsed", []))
    missing = _extensions_in(doc) - used
    if missing:
        problems.append(f"tileset uses extensions not in extensionsUsed: {sorted(missing)}")
    if not set(doc.get("extensionsRequired", [])) <= used:
        problems.append("tileset extensionsRequired is not a subset of extensionsUsed")
    if isinstance(doc.get("schema"), dict):
        _check_schema_ids(doc["schema"], "tileset schema", problems)
    budget = [max_contents if max_contents is not None else math.inf, max_content_bytes]
    _check_tile(root, "root", None, None, path.parent, check_content, budget, problems)
    return problems


def _check_error(value: Any, where: str, problems: list[str]) -> float:
    if not isinstance(value, int | float) or value < 0 or not math.isfinite(value):
        problems.append(f"{where}: geometricError {value!r} is not a number ≥ 0")
        return math.inf
    return float(value)


def _check_tile(
    tile: dict[str, Any],
    where: str,
    parent_error: float | None,
    parent_box: tuple[np.ndarray, np.ndarray] | None,
    folder: Path,
    check_content: bool,
    budget: list[float],
    problems: list[str],
) -> None:
    error = _check_error(tile.get("geometricError"), where, problems)
    if parent_error is not None and error > parent_error + 1e-9:
        problems.append(f"{where}: geometricError {error} exceeds its parent's {parent_error}")
    if "refine" in tile and tile["refine"] not in ("ADD", "REPLACE"):
        problems.append(f"{where}: refine {tile['refine']!r}")
    if "transform" in tile:
        t = tile["transform"]
        if len(t) != 16 or not all(math.isfinite(v) for v in t):
            problems.append(f"{where}: transform is not 16 finite numbers")
    box = _box(tile.get("boundingVolume", {}), where, problems)
    if box is not None and parent_box is not None and not _inside(box, parent_box):
        problems.append(f"{where}: bounding volume is not inside its parent's")
    uri = tile.get("content", {}).get("uri")
    if uri:
        content = folder / uri
        size = content.stat().st_size if content.is_file() else -1
        if size < 0:
            problems.append(f"{where}: content {uri} does not exist")
        elif size > budget[1]:
            problems.append(f"{where}: content {uri} is {size:,} bytes, over {budget[1]:,}")
        if size >= 0 and check_content and budget[0] > 0:
            budget[0] -= 1
            _check_content(content, where, box, problems)
    for i, child in enumerate(tile.get("children", [])):
        _check_tile(child, f"{where}/{i}", error, box, folder, check_content, budget, problems)


def _box(
    volume: dict[str, Any], where: str, problems: list[str]
) -> tuple[np.ndarray, np.ndarray] | None:
    values = volume.get("box")
    if values is None:
        if not volume:
            problems.append(f"{where}: no boundingVolume")
        return None
    if len(values) != 12 or not all(math.isfinite(v) for v in values):
        problems.append(f"{where}: box is not 12 finite numbers")
        return None
    centre = np.asarray(values[:3])
    ext = np.abs(np.asarray(values[3:]).reshape(3, 3)).sum(axis=0)
    return centre - ext, centre + ext


def _inside(inner: tuple[np.ndarray, np.ndarray], outer: tuple[np.ndarray, np.ndarray]) -> bool:
    return bool(
        np.all(inner[0] >= outer[0] - TOLERANCE_M) and np.all(inner[1] <= outer[1] + TOLERANCE_M)
    )


def _check_content(
    path: Path, where: str, box: tuple[np.ndarray, np.ndarray] | None, problems: list[str]
) -> None:
    try:
        data = path.read_bytes()
        if path.suffix == ".b3dm":
            _, batch, data = read_b3dm(data)
            bad = [k for k in batch if k not in ("extensions", "extras") and not is_valid_id(k)]
            if bad:
                problems.append(f"{where}: {path.name} batch table property names {bad} {_ID}")
        gltf, binary = read_glb(data)
    except ValueError as exc:
        problems.append(f"{where}: {path.name} is not a glb ({exc})")
        return
    meta = gltf.get("extensions", {}).get("EXT_structural_metadata")
    if isinstance(meta, dict):
        _check_metadata(meta, f"{where}: {path.name}", problems)
    used = set(gltf.get("extensionsUsed", []))
    missing = _extensions_in(gltf) - used
    if missing:
        problems.append(
            f"{where}: {path.name} uses extensions not in extensionsUsed: {sorted(missing)}"
        )
    if not set(gltf.get("extensionsRequired", [])) <= used:
        problems.append(f"{where}: {path.name} extensionsRequired not a subset of extensionsUsed")
    if box is None:
        return
    pos = read_positions_enu(gltf, binary)
    if len(pos) and not _inside((pos.min(axis=0), pos.max(axis=0)), box):
        problems.append(f"{where}: content of {path.name} is not inside the tile's bounding volume")


_ID = "do not match ^[a-zA-Z_][a-zA-Z0-9_]*$"


def _check_schema_ids(schema: dict[str, Any], where: str, problems: list[str]) -> None:
    bad = [] if is_valid_id(schema.get("id", "")) else [schema.get("id")]
    for class_id, cls in schema.get("classes", {}).items():
        bad += [] if is_valid_id(class_id) else [class_id]
        bad += [p for p in cls.get("properties", {}) if not is_valid_id(p)]
    for enum_id in schema.get("enums", {}):
        bad += [] if is_valid_id(enum_id) else [enum_id]
    if bad:
        problems.append(f"{where}: metadata ids {bad} {_ID}")


def _check_metadata(meta: dict[str, Any], where: str, problems: list[str]) -> None:
    schema = meta.get("schema")
    if not isinstance(schema, dict):
        return  # an external schemaUri: not written by the toolkit
    _check_schema_ids(schema, f"{where} schema", problems)
    classes = schema.get("classes", {})
    for k, table in enumerate(meta.get("propertyTables", [])):
        cls = classes.get(table.get("class"))
        if cls is None:
            problems.append(f"{where}: property table {k} names no class of the schema")
            continue
        unknown = set(table.get("properties", {})) - set(cls.get("properties", {}))
        if unknown:
            problems.append(
                f"{where}: property table {k} has properties {sorted(unknown)} "
                "that its class does not define"
            )


def _extensions_in(obj: Any) -> set[str]:
    """Names of all extensions used anywhere in a JSON document."""
    found: set[str] = set()
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "extensions" and isinstance(value, dict):
                found.update(value)
            found |= _extensions_in(value)
    elif isinstance(obj, list):
        for value in obj:
            found |= _extensions_in(value)
    return found
