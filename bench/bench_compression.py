"""Benchmark: glTF compression choices for L2 tiles, measured on real tile meshes.

For every tile mesh of a city (the sample city by default) this encodes the same
quantized mesh four ways and prints total bytes and encode time:

- ``none``: KHR_mesh_quantization only (uint16 positions, int8 normals);
- ``meshopt``: the same buffers with EXT_meshopt_compression (what the writer uses);
- ``meshopt+gzip``: what a server sending gzip transfers;
- ``draco``: KHR_draco_mesh_compression via DracoPy (14-bit positions, 8-bit normals),
  geometry only (metadata excluded in every row, for a fair comparison).

    .venv/bin/python bench/bench_compression.py [CITY.toml]
"""

from __future__ import annotations

import gzip
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import DracoPy

    from cim.build import build_project
    from cim.sample import write_sample
    from tiling.gltf import (
        encode_normals,
        optimise_mesh,
        quantize_positions,
        read_accessor,
        read_glb,
        read_positions_enu,
    )

    if len(sys.argv) > 1:
        toml = Path(sys.argv[1])
    else:
        toml = write_sample(Path(tempfile.mkdtemp()) / "city")
    out = build_project(toml, jobs=2, progress=False).output
    meshes = []
    for path in sorted((out / "tiles/l2/content").glob("*.glb")):
        gltf, binary = read_glb(path.read_bytes())
        prim = gltf["meshes"][0]["primitives"][0]
        pos = read_positions_enu(gltf, binary)
        normals = read_accessor(gltf, binary, prim["attributes"]["NORMAL"])[:, :3] / 127.0
        fid = read_accessor(gltf, binary, prim["attributes"]["_FEATURE_ID_0"])[:, 0]
        idx = read_accessor(gltf, binary, prim["indices"])[:, 0]
        meshes.append((pos, normals, fid, idx))
    import meshoptimizer

    from tiling.gltf import FeatureMesh

    sizes = {"none": 0, "meshopt": 0, "meshopt+gzip": 0, "draco": 0}
    seconds = dict.fromkeys(sizes, 0.0)
    vertices = sum(len(m[0]) for m in meshes)
    for pos, normals, fid, idx in meshes:
        mesh = optimise_mesh(FeatureMesh(pos, normals.astype(np.float32), fid, idx))
        q, _, _ = quantize_positions(mesh.positions)
        n = encode_normals(mesh.normals)
        f = np.zeros((len(q), 2), np.uint16)
        f[:, 0] = mesh.feature_ids
        i = mesh.indices.astype(np.uint16 if len(q) < 65536 else np.uint32)
        raw = q.nbytes + n.nbytes + f.nbytes + i.nbytes
        sizes["none"] += raw
        t = time.perf_counter()
        enc = (
            meshoptimizer.encode_vertex_buffer(q, len(q), 8)
            + meshoptimizer.encode_vertex_buffer(n, len(n), 4)
            + meshoptimizer.encode_vertex_buffer(f, len(f), 4)
            + meshoptimizer.encode_index_buffer(i, len(i), len(q))
        )
        seconds["meshopt"] += time.perf_counter() - t
        sizes["meshopt"] += len(enc)
        sizes["meshopt+gzip"] += len(gzip.compress(enc, 6))
        t = time.perf_counter()
        draco = DracoPy.encode(
            mesh.positions,
            i.reshape(-1, 3).astype(np.uint32),
            quantization_bits=14,
            compression_level=7,
            normals=mesh.normals.astype(np.float64),  # DracoPy accepts float64 only
            normal_quantization_bits=8,
            generic_attributes={0: mesh.feature_ids.astype(np.uint16)[:, None]},
        )
        seconds["draco"] += time.perf_counter() - t
        sizes["draco"] += len(draco)
    print(f"{len(meshes)} tiles, {vertices:,} vertices (geometry only, metadata excluded)")
    print(f"{'encoding':<14} {'bytes':>12} {'B/vertex':>9} {'encode s':>9}")
    for k in sizes:
        print(f"{k:<14} {sizes[k]:>12,} {sizes[k] / vertices:>9.2f} {seconds[k]:>9.2f}")


if __name__ == "__main__":
    main()
