"""Imported models (``[[l3.models]]``): glTF/GLB, OBJ and CityJSON LOD2 buildings that
replace the generated model of the building they stand on.

Placement:

- **CityJSON** carries its georeference (``metadata.referenceSystem``, else the
  entry's ``crs``; vertices through ``transform``): each ``Building`` (with its
  ``BuildingPart``\\ s) lands where its coordinates say; with an ``anchor`` the whole
  file is moved so its plan centre is there.
- **glTF/GLB and OBJ** (through trimesh) carry none: the model's origin goes to
  ``anchor`` (x, y in ``crs``), turned by ``rotation`` (degrees clockwise) and
  scaled by ``scale``; glTF is y-up, OBJ is taken as y-up unless ``up = "z"``.

Heights: a model stands on the ground like every L3 model: its lowest point is put on
the base of the building it replaces (the DEM under the footprint), its own height
differences kept. It replaces the district building whose footprint contains its plan
centre (or the building named by ``building``); a model on no district building is
reported and left out. Surfaces are classified for the textures: CityJSON semantics
(RoofSurface, WallSurface, GroundSurface...), else by the face normal (up-facing:
roof, down-facing: ground, the rest walls).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import mapbox_earcut
import numpy as np
import shapely

from cim.crs import get_transformer
from cim.errors import ConfigError, InputDataError
from tiling.l3.roofs.mesh import SURFACE_GROUND, SURFACE_ROOF, SURFACE_WALL

log = logging.getLogger(__name__)

SEMANTIC_SURFACES = {
    "RoofSurface": SURFACE_ROOF,
    "WallSurface": SURFACE_WALL,
    "GroundSurface": SURFACE_GROUND,
    "ClosureSurface": SURFACE_WALL,
    "OuterCeilingSurface": SURFACE_WALL,
    "OuterFloorSurface": SURFACE_ROOF,
}


@dataclass(frozen=True)
class ModelConfig:
    """One ``[[l3.models]]`` entry (docs/l3.md)."""

    path: Path
    crs: str | None = None
    anchor: list[float] | None = None
    rotation: float = 0.0
    scale: float = 1.0
    up: str = "auto"
    building: str | None = None

    def __post_init__(self) -> None:
        if self.anchor is not None and len(self.anchor) != 2:
            raise ConfigError("[[l3.models]] anchor must be [x, y]")
        if self.up not in ("auto", "y", "z"):
            raise ConfigError("[[l3.models]] up must be 'auto', 'y' or 'z'")
        if not 0.0 < self.scale <= 1000.0:
            raise ConfigError("[[l3.models]] scale must be in (0, 1000]")


@dataclass
class PlacedModel:
    """A model in lon/lat with heights above its lowest point, ready to replace a block.

    ``lon``, ``lat``, ``z`` per vertex; ``triangles`` (m, 3); ``surface`` per triangle.
    """

    name: str
    lon: np.ndarray
    lat: np.ndarray
    z: np.ndarray
    triangles: np.ndarray
    surface: np.ndarray
    building: str | None = None

    @property
    def centre(self) -> tuple[float, float]:
        """Plan centre (lon, lat) of the model's bounding box."""
        return (
            float(self.lon.min() + self.lon.max()) / 2.0,
            float(self.lat.min() + self.lat.max()) / 2.0,
        )


def load_models(entry: ModelConfig, default_crs: str | None) -> list[PlacedModel]:
    """The placed models of one entry (one per CityJSON building, else one).

    Raises
    ------
    DatasetIOError, InputDataError, ConfigError
    """
    path = entry.path
    if not path.is_file():
        raise ConfigError(f"[[l3.models]] {path.name}: file not found", path=path)
    if path.suffix.lower() == ".json":
        parts = _cityjson(path, entry)
        crs = parts[0] if parts else None
        meshes = parts[1] if parts else []
    else:
        crs, meshes = None, [_trimesh(path, entry)]
    crs = crs or entry.crs or default_crs
    if crs is None:
        raise ConfigError(f"[[l3.models]] {path.name}: give crs (the anchor's CRS)", path=path)
    if entry.anchor is not None:
        meshes = _anchor(meshes, entry, cityjson=path.suffix.lower() == ".json")
    out = []
    tr = get_transformer(crs, "EPSG:4326")
    for name, xyz, tris, surface in meshes:
        lon, lat = tr.transform(xyz[:, 0], xyz[:, 1])
        out.append(
            PlacedModel(
                name,
                np.asarray(lon),
                np.asarray(lat),
                xyz[:, 2] - xyz[:, 2].min(),
                tris,
                surface,
                entry.building,
            )
        )
    return out


Mesh = tuple[str, np.ndarray, np.ndarray, np.ndarray]


def _anchor(meshes: list[Mesh], entry: ModelConfig, *, cityjson: bool) -> list[Mesh]:
    """Scale, turn and move the meshes so their origin (CityJSON: plan centre) is the anchor."""
    assert entry.anchor is not None
    if cityjson:
        allxy = np.concatenate([m[1][:, :2] for m in meshes])
        origin = (allxy.min(axis=0) + allxy.max(axis=0)) / 2.0
    else:
        origin = np.zeros(2)
    a = math.radians(entry.rotation)
    rot = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])  # clockwise
    out = []
    for name, xyz, tris, surface in meshes:
        p = xyz.copy()
        p[:, :2] = ((p[:, :2] - origin) * entry.scale) @ rot.T + np.asarray(entry.anchor)
        p[:, 2] *= entry.scale
        out.append((name, p, tris, surface))
    return out


def _trimesh(path: Path, entry: ModelConfig) -> Mesh:
    import trimesh

    try:
        mesh = trimesh.load(str(path), force="mesh")  # the scene's meshes, concatenated
    except Exception as exc:  # trimesh raises many kinds on bad files
        raise InputDataError(f"cannot read the model ({exc})", path=path) from exc
    v = np.asarray(mesh.vertices, dtype=np.float64)
    f = np.asarray(mesh.faces, dtype=np.int64)
    if not len(f):
        raise InputDataError("the model has no triangles", path=path)
    up = entry.up if entry.up != "auto" else "y"  # glTF is y-up; OBJ exports mostly too
    if up == "y":
        v = np.column_stack([v[:, 0], -v[:, 2], v[:, 1]])
    if entry.anchor is None:
        raise ConfigError(
            f"[[l3.models]] {path.name}: a glTF/OBJ model has no georeference; give anchor"
            " = [x, y] and crs",
            path=path,
        )
    return path.stem, v, f, _by_normal(v, f)


def _by_normal(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    nz = n[:, 2] / np.maximum(np.linalg.norm(n, axis=1), 1e-12)
    return np.where(
        nz > 0.3, SURFACE_ROOF, np.where(nz < -0.7, SURFACE_GROUND, SURFACE_WALL)
    ).astype(np.uint8)


def _cityjson(path: Path, entry: ModelConfig) -> tuple[str | None, list[Mesh]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputDataError(f"not a CityJSON file ({exc})", path=path) from exc
    if doc.get("type") != "CityJSON":
        raise InputDataError('not a CityJSON file (no "type": "CityJSON")', path=path)
    t = doc.get("transform", {"scale": [1, 1, 1], "translate": [0, 0, 0]})
    verts = np.asarray(doc["vertices"], dtype=np.float64) * t["scale"] + t["translate"]
    ref = str(doc.get("metadata", {}).get("referenceSystem") or "")
    crs = f"EPSG:{ref.rstrip('/').split('/')[-1]}" if "EPSG" in ref.upper() else None
    objects = doc["CityObjects"]
    meshes: list[Mesh] = []
    for oid, obj in objects.items():
        if obj.get("type") != "Building":
            continue
        members = [oid, *obj.get("children", [])]
        tris, codes = [], []
        for m in members:
            geom = _best_geometry(objects.get(m, {}))
            if geom is not None:
                _triangulate(geom, verts, tris, codes)
        if tris:
            idx = np.concatenate(tris)
            used, inverse = np.unique(idx, return_inverse=True)
            meshes.append(
                (oid, verts[used], inverse.reshape(-1, 3), np.concatenate(codes).astype(np.uint8))
            )
    if not meshes:
        raise InputDataError("no Building with a surface geometry", path=path)
    return crs, meshes


def _best_geometry(obj: dict) -> dict | None:
    """The object's geometry of the highest LoD (LoD2 preferred over LoD1)."""
    geoms = [
        g
        for g in obj.get("geometry", [])
        if g.get("type") in ("Solid", "MultiSurface", "CompositeSurface")
    ]
    return max(geoms, key=lambda g: float(g.get("lod", 0)), default=None)


def _triangulate(geom: dict, verts: np.ndarray, tris: list, codes: list) -> None:
    shells = geom["boundaries"] if geom["type"] == "Solid" else [geom["boundaries"]]
    values = (geom.get("semantics") or {}).get("values")
    kinds = [s.get("type") for s in (geom.get("semantics") or {}).get("surfaces", [])]
    for s, shell in enumerate(shells):
        for k, polygon in enumerate(shell):
            sem = None
            if values is not None:
                v = values[s] if geom["type"] == "Solid" else values
                sem = v[k] if v is not None and k < len(v) else None
            t = _polygon_triangles(polygon, verts)
            if not len(t):
                continue
            code = SEMANTIC_SURFACES.get(kinds[sem]) if sem is not None else None
            if code is None:
                code = _by_normal(verts, t)
            tris.append(t)
            codes.append(np.broadcast_to(np.asarray(code, dtype=np.uint8), (len(t),)))


def _polygon_triangles(rings: list[list[int]], verts: np.ndarray) -> np.ndarray:
    """Triangles (vertex indices) of a planar polygon with holes, wound like its outer
    ring (Newell normal), by earcut in the polygon's dominant plane."""
    outer = np.asarray(rings[0])
    p = verts[outer]
    n = np.zeros(3)
    for i in range(len(p)):  # Newell's method: robust for any planar polygon
        a, b = p[i], p[(i + 1) % len(p)]
        n += [
            (a[1] - b[1]) * (a[2] + b[2]),
            (a[2] - b[2]) * (a[0] + b[0]),
            (a[0] - b[0]) * (a[1] + b[1]),
        ]
    if not np.linalg.norm(n) > 1e-12:
        return np.zeros((0, 3), dtype=np.int64)
    drop = int(np.argmax(np.abs(n)))
    axes = [k for k in range(3) if k != drop]
    idx = np.concatenate([np.asarray(r) for r in rings])
    ends = np.cumsum([len(r) for r in rings]).astype(np.uint32)
    xy = verts[idx][:, axes]
    t = mapbox_earcut.triangulate_float64(np.ascontiguousarray(xy), ends).reshape(-1, 3)
    tri = idx[t]
    # earcut winds in the projected plane: match the ring's own orientation
    a, b, c = verts[tri[:, 0]], verts[tri[:, 1]], verts[tri[:, 2]]
    flip = np.einsum("ij,j->i", np.cross(b - a, c - a), n) < 0
    tri[flip] = tri[flip][:, [0, 2, 1]]
    return tri


def assign(
    models: list[PlacedModel], ids: np.ndarray, footprints: np.ndarray
) -> tuple[dict[int, PlacedModel], list[tuple[str, str]]]:
    """Which district building each model replaces (row → model), and the left-outs.

    Parameters
    ----------
    ids, footprints : ndarray
        The district's building ids and lon/lat footprints.
    """
    row_of = {str(v): k for k, v in enumerate(ids.tolist())}
    tree = shapely.STRtree(footprints)
    out: dict[int, PlacedModel] = {}
    left: list[tuple[str, str]] = []
    for m in models:
        if m.building is not None:
            row = row_of.get(m.building)
        else:
            hit = tree.query(shapely.Point(*m.centre), predicate="within")
            row = int(hit[0]) if len(hit) else None
        if row is None:
            left.append((m.name, "stands on no building of the [l3] district: left out"))
            continue
        if row in out:
            left.append((m.name, f"building {ids[row]} already has model {out[row].name}"))
            continue
        out[row] = m
    return out, left
