"""The L3 tilesets: the district alone, and one stream with L2.

``tiles/l3/tileset.json`` holds the district's detailed models alone (the DESIGN
output contract): a root without content over the L3 tiles, in the L2 frame.

``tiles/l3/city.json`` is the one hierarchy the viewer loads: the L2 tileset's tree
(content URIs pointing into ``../l2/``) in which every L2 tile of district buildings
(they are in tiles of their own, :func:`tiling.buildings.hierarchy.build_hierarchy`)
gets ``refine: "REPLACE"`` and the L3 tiles of its own buildings as extra children.
CesiumJS draws a REPLACE tile's content until all its children are ready and never
together with them, so a building is drawn once: as its block from afar, as its
model up close. The tile's geometric error becomes at least the largest departure
of its models from their blocks (roof rise, overhang; at least ``min_error``), so
the swap happens where the difference would show. Boxes and errors of the
ancestors grow to enclose the new children (3D Tiles rules: a child's volume inside
its parent's, errors never larger below).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tiling.gltf import read_glb, read_property_table
from tiling.tileset import Box


def district_tiles(l2_dir: Path, district_ids: set[str]) -> dict[str, list[str]]:
    """L2 content URIs holding district buildings → their building ids (tile order).

    The district's tiles form the root's last subtree (or the whole tree); only
    that subtree's contents are opened.
    """
    doc = json.loads((l2_dir / "tileset.json").read_text(encoding="utf-8"))
    root = doc["root"]
    candidates = [root]
    if _first_id(l2_dir, root) not in district_ids and root.get("children"):
        candidates = [root["children"][-1]]
    out: dict[str, list[str]] = {}
    for tile in candidates:
        for t in _walk(tile):
            uri = t.get("content", {}).get("uri")
            if not uri:
                continue
            ids = _ids(l2_dir / uri)
            if ids and ids[0] in district_ids:
                out[uri] = ids
    return out


def _first_id(folder: Path, tile: dict[str, Any]) -> str | None:
    uri = tile.get("content", {}).get("uri")
    ids = _ids(folder / uri) if uri else []
    return ids[0] if ids else None


def _ids(path: Path) -> list[str]:
    gltf, binary = read_glb(path.read_bytes())
    return [str(v) for v in read_property_table(gltf, binary).get("id", [])]


def _walk(tile: dict[str, Any]) -> list[dict[str, Any]]:
    out = [tile]
    for c in tile.get("children", []):
        out.extend(_walk(c))
    return out


def _tile_json(t: dict[str, Any]) -> dict[str, Any]:
    lo, hi = t["lo"], t["hi"]
    return {
        "boundingVolume": Box.from_min_max(tuple(lo), tuple(hi)).to_json(),
        "geometricError": 0.0,
        "content": {"uri": t["uri"]},
    }


def l3_tileset(groups: dict[str, dict[str, Any]], frame: np.ndarray) -> dict[str, Any]:
    """The district alone: a root over every L3 tile (``tiles/l3/tileset.json``)."""
    tiles = [t for g in groups.values() for t in g["tiles"]]
    lo = np.min([t["lo"] for t in tiles], axis=0)
    hi = np.max([t["hi"] for t in tiles], axis=0)
    error = max(g["error"] for g in groups.values())
    root = {
        "boundingVolume": Box.from_min_max(tuple(lo), tuple(hi)).to_json(),
        "geometricError": round(error, 3),
        "refine": "ADD",
        "transform": [float(v) for v in frame.T.ravel()],
        "children": [_tile_json(t) for t in tiles],
    }
    span = float(np.linalg.norm(hi[:2] - lo[:2]))
    return {
        "asset": {"version": "1.1", "generator": "cim-toolkit"},
        "geometricError": round(max(span, error), 3),
        "root": root,
    }


def stream_tileset(l2_dir: Path, groups: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The L2 tree with the L3 tiles under the district tiles (``tiles/l3/city.json``).

    Parameters
    ----------
    l2_dir : Path
        ``tiles/l2`` (its ``tileset.json`` is read, not changed).
    groups : dict
        Per L2 content URI of a district tile: ``tiles`` (the L3 tiles of its
        buildings, with ``uri``, ``lo``, ``hi``) and ``error`` (the swap error).
    """
    doc = json.loads((l2_dir / "tileset.json").read_text(encoding="utf-8"))
    prefix = f"../{l2_dir.name}/"

    def visit(tile: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, float]:
        lo, hi = _box(tile)
        uri = tile.get("content", {}).get("uri")
        error = float(tile["geometricError"])
        if uri:
            tile["content"]["uri"] = prefix + uri
        children = tile.get("children", [])
        for child in children:
            clo, chi, cerr = visit(child)
            lo, hi, error = np.minimum(lo, clo), np.maximum(hi, chi), max(error, cerr)
        group = groups.get(uri or "")
        if group is not None and group["tiles"]:
            tile["refine"] = "REPLACE"
            error = max(error, group["error"])
            for t in group["tiles"]:
                tile.setdefault("children", []).append(_tile_json(t))
                lo, hi = np.minimum(lo, t["lo"]), np.maximum(hi, t["hi"])
        tile["geometricError"] = round(error, 3)
        tile["boundingVolume"] = Box.from_min_max(tuple(lo), tuple(hi)).to_json()
        return lo, hi, error

    _, _, error = visit(doc["root"])
    doc["geometricError"] = round(max(float(doc["geometricError"]), error), 3)
    return doc


def _box(tile: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = Box(tuple(tile["boundingVolume"]["box"])).min_max()
    return np.asarray(lo), np.asarray(hi)
