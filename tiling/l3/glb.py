"""glb content of an L3 tile: textured primitives sharing one feature table.

The same conventions as the L2 writer (:mod:`tiling.gltf`): positions quantized to
uint16 (``KHR_mesh_quantization``, one dequantization for the whole tile in the
node), normals int8, ``_FEATURE_ID_0`` (``EXT_mesh_features``) into one
``EXT_structural_metadata`` property table, ``EXT_meshopt_compression`` of the vertex
and index streams. On top: one primitive per material, texture coordinates
(float32: facade and roof textures repeat), vertex colours (uint8, the roof tint)
and embedded images (WebP through ``EXT_texture_webp``, JPEG or PNG).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import meshoptimizer
import numpy as np

from tiling.gltf import (
    ARRAY_BUFFER,
    BYTE,
    ELEMENT_ARRAY_BUFFER,
    FLOAT,
    UNSIGNED_BYTE,
    UNSIGNED_INT,
    UNSIGNED_SHORT,
    PropertySpec,
    _pack_glb,
    _property_table,
    _Writer,
    encode_normals,
    quantize_positions,
)

REPEAT, CLAMP = 10497, 33071
LINEAR, LINEAR_MIPMAP_LINEAR = 9729, 9987


@dataclass
class Primitive:
    """Triangles of one material, local ENU metres (z up).

    ``uvs`` is None for untextured materials; ``colors`` (uint8 RGBA) may be None.
    """

    positions: np.ndarray
    normals: np.ndarray
    feature_ids: np.ndarray
    indices: np.ndarray
    material: int
    uvs: np.ndarray | None = None
    colors: np.ndarray | None = None


@dataclass(frozen=True)
class Material:
    """A glTF material: a colour factor, optionally an image (index) and its wrap."""

    name: str
    color: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    image: int | None = None
    repeat: bool = True
    roughness: float = 0.9


def weld(
    positions: np.ndarray,
    normals: np.ndarray,
    feature_ids: np.ndarray,
    uvs: np.ndarray | None,
    colors: np.ndarray | None,
) -> tuple[np.ndarray, ...]:
    """Merge identical corners (every attribute equal); returns the unique rows' arrays
    (same order of arguments) and the triangle indices."""
    parts = [
        np.ascontiguousarray(positions, dtype=np.float64)
        .view(np.uint8)
        .reshape(len(positions), 24),
        np.ascontiguousarray(np.rint(normals * 127).astype(np.int8)).view(np.uint8),
        np.ascontiguousarray(feature_ids.astype(np.uint32)[:, None]).view(np.uint8),
    ]
    if uvs is not None:
        parts.append(np.ascontiguousarray(uvs, dtype=np.float32).view(np.uint8))
    if colors is not None:
        parts.append(np.ascontiguousarray(colors, dtype=np.uint8))
    key = np.ascontiguousarray(np.concatenate(parts, axis=1))
    void = key.view(np.dtype((np.void, key.shape[1]))).ravel()
    _, first, inverse = np.unique(void, return_index=True, return_inverse=True)
    pick = lambda a: None if a is None else a[first]  # noqa: E731
    return (
        positions[first],
        normals[first],
        feature_ids[first],
        pick(uvs),
        pick(colors),
        inverse.astype(np.uint32).ravel(),
    )


def _optimise(prim: Primitive) -> Primitive:
    """Vertex cache and fetch order (meshoptimizer), as the L2 writer does."""
    n = len(prim.positions)
    idx = np.ascontiguousarray(prim.indices, dtype=np.uint32)
    cache = np.empty_like(idx)
    meshoptimizer.optimize_vertex_cache(cache, idx, len(idx), n)
    remap = np.empty(n, dtype=np.uint32)
    unique = meshoptimizer.optimize_vertex_fetch_remap(remap, cache, len(cache), n)
    order = np.empty(unique, dtype=np.int64)
    used = remap < unique
    order[remap[used]] = np.flatnonzero(used)
    take = lambda a: None if a is None else a[order]  # noqa: E731
    return Primitive(
        positions=prim.positions[order],
        normals=prim.normals[order],
        feature_ids=prim.feature_ids[order],
        indices=remap[cache],
        material=prim.material,
        uvs=take(prim.uvs),
        colors=take(prim.colors),
    )


def write_textured_glb(
    primitives: list[Primitive],
    materials: list[Material],
    images: list[tuple[bytes, str]],
    properties: list[PropertySpec],
    table: dict[str, np.ndarray],
    *,
    compression: str = "meshopt",
    class_name: str = "building",
    schema_id: str = "cim",
) -> bytes:
    """Encode textured primitives and their features' table as a glb.

    Parameters
    ----------
    primitives : list of Primitive
        Non-empty; feature ids index ``table`` rows.
    materials : list of Material
    images : list of (bytes, mime type)
        ``image/webp`` images are referenced through ``EXT_texture_webp``.
    properties, table
        The metadata class and its columns (as :func:`tiling.gltf.write_glb`).
    compression : {"meshopt", "none"}

    Returns
    -------
    bytes
    """
    prims = [_optimise(p) for p in primitives if len(p.indices)]
    n_features = len(next(iter(table.values()))) if table else 0
    w = _Writer(compress=compression == "meshopt")
    q, translation, scale = quantize_positions(np.concatenate([p.positions for p in prims]))
    starts = np.cumsum([0] + [len(p.positions) for p in prims])
    fid_dtype = np.uint8 if n_features <= 256 else np.uint16
    gl_prims = []
    for k, p in enumerate(prims):
        qpos = q[starts[k] : starts[k + 1]]
        gl_prims.append(_primitive(w, p, qpos, fid_dtype, n_features))
    webp = any(mime == "image/webp" for _, mime in images)
    used = ["KHR_mesh_quantization", "EXT_mesh_features", "EXT_structural_metadata"]
    required = ["KHR_mesh_quantization"]
    if webp:
        used.append("EXT_texture_webp")
        required.append("EXT_texture_webp")  # no fallback image: keeps tiles small
    if w.compress:
        used.append("EXT_meshopt_compression")
        required.append("EXT_meshopt_compression")
    gltf = w.gltf
    gltf["extensions"] = {
        "EXT_structural_metadata": _property_table(
            w, properties, table, class_name, schema_id, n_features
        )
    }
    _textures(w, materials, images)
    gltf.update(
        {
            "asset": {"version": "2.0", "generator": "cim-toolkit"},
            "extensionsUsed": used,
            "extensionsRequired": required,
            "scene": 0,
            "scenes": [{"nodes": [0]}],
            "nodes": [{"mesh": 0, "translation": translation, "scale": [scale, scale, scale]}],
            "meshes": [{"primitives": gl_prims}],
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


def _primitive(
    w: _Writer, p: Primitive, qpos: np.ndarray, fid_dtype: type, n_features: int
) -> dict[str, Any]:
    fids = np.zeros((len(qpos), 4 // np.dtype(fid_dtype).itemsize), dtype=fid_dtype)
    fids[:, 0] = p.feature_ids
    index_dtype = np.uint16 if len(qpos) <= 65535 else np.uint32
    attrs = {
        "POSITION": w.accessor(
            w.vertex_view(qpos, ARRAY_BUFFER, "ATTRIBUTES"),
            UNSIGNED_SHORT,
            "VEC3",
            len(qpos),
            min=[int(v) for v in qpos[:, :3].min(axis=0)],
            max=[int(v) for v in qpos[:, :3].max(axis=0)],
        ),
        "NORMAL": w.accessor(
            w.vertex_view(encode_normals(p.normals), ARRAY_BUFFER, "ATTRIBUTES"),
            BYTE,
            "VEC3",
            len(qpos),
            normalized=True,
        ),
    }
    if p.uvs is not None:
        uv = np.ascontiguousarray(p.uvs, dtype=np.float32)
        attrs["TEXCOORD_0"] = w.accessor(
            w.vertex_view(uv, ARRAY_BUFFER, "ATTRIBUTES"), FLOAT, "VEC2", len(uv)
        )
    if p.colors is not None:
        col = np.ascontiguousarray(p.colors, dtype=np.uint8)
        attrs["COLOR_0"] = w.accessor(
            w.vertex_view(col, ARRAY_BUFFER, "ATTRIBUTES"),
            UNSIGNED_BYTE,
            "VEC4",
            len(col),
            normalized=True,
        )
    fid_component = UNSIGNED_BYTE if fid_dtype == np.uint8 else UNSIGNED_SHORT
    attrs["_FEATURE_ID_0"] = w.accessor(
        w.vertex_view(fids, ARRAY_BUFFER, "ATTRIBUTES"), fid_component, "SCALAR", len(qpos)
    )
    indices = p.indices.astype(index_dtype)
    idx = w.accessor(
        w.vertex_view(indices, ELEMENT_ARRAY_BUFFER, "TRIANGLES"),
        UNSIGNED_SHORT if index_dtype == np.uint16 else UNSIGNED_INT,
        "SCALAR",
        len(indices),
    )
    return {
        "attributes": attrs,
        "indices": idx,
        "material": p.material,
        "mode": 4,
        "extensions": {
            "EXT_mesh_features": {
                "featureIds": [{"featureCount": n_features, "attribute": 0, "propertyTable": 0}]
            }
        },
    }


def _textures(w: _Writer, materials: list[Material], images: list[tuple[bytes, str]]) -> None:
    gltf = w.gltf
    used_images = sorted({m.image for m in materials if m.image is not None})
    image_index = {i: k for k, i in enumerate(used_images)}
    if used_images:
        gltf["images"] = [
            {"bufferView": w.raw_view(images[i][0]), "mimeType": images[i][1]} for i in used_images
        ]
        gltf["samplers"] = [
            {"magFilter": LINEAR, "minFilter": LINEAR_MIPMAP_LINEAR, "wrapS": s, "wrapT": s}
            for s in (REPEAT, CLAMP)
        ]
    textures: list[dict[str, Any]] = []
    out = []
    for m in materials:
        pbr: dict[str, Any] = {
            "baseColorFactor": list(m.color),
            "metallicFactor": 0.0,
            "roughnessFactor": m.roughness,
        }
        if m.image is not None:
            source = image_index[m.image]
            tex: dict[str, Any] = {"sampler": 0 if m.repeat else 1}
            if images[m.image][1] == "image/webp":
                tex["extensions"] = {"EXT_texture_webp": {"source": source}}
            else:
                tex["source"] = source
            textures.append(tex)
            pbr["baseColorTexture"] = {"index": len(textures) - 1}
        out.append({"name": m.name, "pbrMetallicRoughness": pbr})
    if textures:
        gltf["textures"] = textures
    gltf["materials"] = out
