"""One pipeline tile → glb, in a worker process.

This module is what a worker imports to encode a tile, so it stays light: numpy, the
glTF writer and the mesh builders only. A process-pool worker starts from a clean
interpreter (``forkserver``); importing the reader, the model or the network queries
(pyproj, rasterio, networkx) there would cost each worker about a second of CPU for
nothing. Everything a tile needs (axes, sizes, colours, the property table) travels in
its task, built by :func:`tiling.pipelines.tiles.tile_task`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tiling.gltf import PropertySpec, write_glb
from tiling.pipelines import geometry as geo

NO_DATA = -9999.0
#: the class of every pipe, joint and well feature
PIPE_PROPERTIES = [
    PropertySpec("id", "STRING", description="segment or point id"),
    PropertySpec("kind", "STRING", description="pipe, joint, valve or well"),
    PropertySpec("utility", "STRING", description="water, drainage, gas, heat, power, telecom..."),
    PropertySpec("utility_name", "STRING", description="给水, 排水, 燃气..."),
    PropertySpec("start", "STRING", description="start point id"),
    PropertySpec("end", "STRING", description="end point id"),
    PropertySpec("size", "STRING", description="diameter or B×H section as surveyed"),
    PropertySpec("width", "SCALAR", "FLOAT32", NO_DATA, "outer width (diameter), mm"),
    PropertySpec("height", "SCALAR", "FLOAT32", NO_DATA, "outer height (diameter), mm"),
    PropertySpec("start_depth", "SCALAR", "FLOAT32", NO_DATA, "burial depth at the start, m"),
    PropertySpec("end_depth", "SCALAR", "FLOAT32", NO_DATA, "burial depth at the end, m"),
    PropertySpec(
        "start_axis",
        "SCALAR",
        "FLOAT32",
        NO_DATA,
        "axis elevation at the start (surveyed datum), m",
    ),
    PropertySpec(
        "end_axis", "SCALAR", "FLOAT32", NO_DATA, "axis elevation at the end (surveyed datum), m"
    ),
    PropertySpec("length", "SCALAR", "FLOAT32", NO_DATA, "3D length, m"),
    PropertySpec(
        "ground", "SCALAR", "FLOAT32", NO_DATA, "ground elevation at a point (surveyed datum), m"
    ),
    PropertySpec("depth", "SCALAR", "FLOAT32", NO_DATA, "depth at a point, m"),
    PropertySpec("feature", "STRING", description="point feature (阀门, 检查井...)"),
    PropertySpec("material", "STRING"),
    PropertySpec("laying", "STRING"),
    PropertySpec("pressure", "STRING"),
    PropertySpec("voltage", "STRING"),
    PropertySpec("holes", "STRING"),
    PropertySpec("cables", "STRING"),
    PropertySpec("owner", "STRING"),
    PropertySpec("road", "STRING"),
]
#: colour factors: valves darker than their pipes' balls, wells a little darker
VALVE_SHADE = 0.55
WELL_SHADE = 0.7


def shade(rgba: np.ndarray, factor: float) -> np.ndarray:
    """RGBA colours darkened by ``factor`` (alpha kept)."""
    out = rgba.copy()
    out[:, :3] = np.clip(out[:, :3].astype(np.float64) * factor, 0, 255).astype(np.uint8)
    return out


def encode_tile(task: dict[str, Any]) -> dict[str, Any]:
    """Build, encode and write one tile's glb; return its size and content box."""
    ns = len(task["a"])
    fid_seg = np.arange(ns)
    fid_pt = ns + np.arange(len(task["ball"]))
    round_ = ~task["rect"]
    seg_colour = task["seg_colour"]
    parts = [
        geo.tubes(
            task["a"][round_],
            task["b"][round_],
            task["width"][round_] / 2.0,
            fid_seg[round_],
            seg_colour[round_],
            task["sides"],
            task["mitre_a"][round_],
            task["mitre_b"][round_],
        ),
        geo.boxes(
            task["a"][~round_],
            task["b"][~round_],
            task["width"][~round_],
            task["height"][~round_],
            fid_seg[~round_],
            seg_colour[~round_],
        ),
    ]
    ball = task["ball"]
    if ball.any():
        col = task["pt_colour"][ball]
        valve = task["valve"][ball]
        col[valve] = shade(col[valve], VALVE_SHADE)
        parts.append(geo.spheres(task["centre"][ball], task["radius"][ball], fid_pt[ball], col, 8))
    well = task["well"]
    if well.any():
        bottom = task["centre"][well].copy()
        bottom[:, 2] = task["well_bottom"][well]
        parts.append(
            geo.cylinders(
                bottom,
                task["well_top"][well],
                task["well_radius"][well],
                fid_pt[well],
                shade(task["pt_colour"][well], WELL_SHADE),
                12,
            )
        )
    mesh = geo.merge(parts)
    data = write_glb(
        mesh, PIPE_PROPERTIES, task["table"], class_name="pipe", compression=task["compression"]
    )
    Path(task["path"]).write_bytes(data)
    pos = mesh.positions
    lo = np.array([pos[:, k].min() for k in range(3)])
    hi = np.array([pos[:, k].max() for k in range(3)])
    pad = float((hi - lo).max()) / 65535.0 + 0.01
    return {
        "key": task["key"],
        "bytes": len(data),
        "triangles": len(mesh.indices) // 3,
        "lo": lo - pad,
        "hi": hi + pad,
        "features": len(next(iter(task["table"].values()))),
    }
