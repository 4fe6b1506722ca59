"""A tiny build output folder for server and viewer tests (generated, never committed).

:func:`write_fixture_output` writes ``manifest.json`` and ``tiles/l2/tileset.json`` with
one glb of a few box buildings carrying EXT_mesh_features + EXT_structural_metadata
(per-building id, name, height, floors, use, roof_type, base, address), a gzip
``.terrain`` file, a PNG tile and the footprint table ``buildings.parquet``, so the
server and the viewer can be exercised before the real sample city build exists.
:class:`FakeAddressIndex` follows the ``cim.addresses.AddressIndex`` contract over the
same buildings.
"""

from __future__ import annotations

import gzip
import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CENTRE = (116.3900, 39.9100, 0.0)  # lon, lat, ellipsoidal height of the ground

#: (id, name, use, roof, floors, height, east, north, width, depth, address)
BUILDINGS: list[tuple[str, str, str, str, int, float, float, float, float, float, str]] = [
    ("B0001", "市民中心", "办公", "flat", 12, 42.0, -60.0, -60.0, 40.0, 30.0, "示例市中山路1号"),
    ("B0002", "中山小学", "学校", "flat", 4, 14.0, 10.0, -60.0, 35.0, 25.0, "示例市中山路3号"),
    ("B0003", "翠湖苑1栋", "住宅", "gable", 18, 56.0, 60.0, -55.0, 20.0, 20.0, "示例市翠湖路8号"),
    ("B0004", "银河大厦", "商业", "flat", 30, 110.0, -55.0, 20.0, 30.0, 30.0, "示例市银河街100号"),
    ("B0005", "翠湖苑2栋", "住宅", "gable", 18, 56.0, 10.0, 20.0, 20.0, 20.0, "示例市翠湖路10号"),
    ("B0006", "人民医院", "医疗", "flat", 8, 30.0, 60.0, 25.0, 35.0, 40.0, "示例市人民路5号"),
]

_A = 6378137.0
_E2 = 6.69437999014e-3


def geodetic_to_ecef(lon: float, lat: float, h: float) -> np.ndarray:
    """WGS84 geodetic (degrees, metres) to ECEF metres."""
    lam, phi = math.radians(lon), math.radians(lat)
    n = _A / math.sqrt(1 - _E2 * math.sin(phi) ** 2)
    return np.array(
        [
            (n + h) * math.cos(phi) * math.cos(lam),
            (n + h) * math.cos(phi) * math.sin(lam),
            (n * (1 - _E2) + h) * math.sin(phi),
        ]
    )


def enu_to_ecef_matrix(lon: float, lat: float, h: float) -> list[float]:
    """Column-major 4x4 east-north-up → ECEF transform (3D Tiles ``transform``)."""
    lam, phi = math.radians(lon), math.radians(lat)
    east = [-math.sin(lam), math.cos(lam), 0.0]
    north = [-math.sin(phi) * math.cos(lam), -math.sin(phi) * math.sin(lam), math.cos(phi)]
    up = [math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi)]
    origin = geodetic_to_ecef(lon, lat, h)
    return [*east, 0.0, *north, 0.0, *up, 0.0, *origin.tolist(), 1.0]


def building_lonlat(b: tuple[Any, ...]) -> tuple[float, float]:
    """Approximate lon/lat of a building's centre."""
    lon0, lat0, _ = CENTRE
    east, north = b[6], b[7]
    dlat = north / 111_320.0
    dlon = east / (111_320.0 * math.cos(math.radians(lat0)))
    return lon0 + dlon, lat0 + dlat


def _box(e: float, n: float, w: float, d: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    """24 vertices (flat normals) of a box, in glTF y-up coords (x=east, y=up, z=-north)."""
    x0, x1 = e - w / 2, e + w / 2
    y0, y1 = n - d / 2, n + d / 2
    c = [
        (x0, y0, 0),
        (x1, y0, 0),
        (x1, y1, 0),
        (x0, y1, 0),
        (x0, y0, h),
        (x1, y0, h),
        (x1, y1, h),
        (x0, y1, h),
    ]
    faces = [  # counter-clockwise seen from outside (ENU z-up)
        ((4, 5, 6, 7), (0, 0, 1)),
        ((3, 2, 1, 0), (0, 0, -1)),
        ((0, 1, 5, 4), (0, -1, 0)),
        ((1, 2, 6, 5), (1, 0, 0)),
        ((2, 3, 7, 6), (0, 1, 0)),
        ((3, 0, 4, 7), (-1, 0, 0)),
    ]
    pos, nor = [], []
    for idx, normal in faces:
        for i in idx:
            pos.append(c[i])
            nor.append(normal)
    enu = np.array(pos, dtype=np.float64)
    nenu = np.array(nor, dtype=np.float64)
    to_gltf = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=np.float64)  # e,n,u -> x,y,z
    return enu @ to_gltf.T, nenu @ to_gltf.T


@dataclass
class _Bin:
    data: bytearray = field(default_factory=bytearray)
    views: list[dict[str, Any]] = field(default_factory=list)

    def add(self, raw: bytes, target: int | None = None) -> int:
        while len(self.data) % 8:
            self.data.append(0)
        view: dict[str, Any] = {"buffer": 0, "byteOffset": len(self.data), "byteLength": len(raw)}
        if target is not None:
            view["target"] = target
        self.views.append(view)
        self.data.extend(raw)
        return len(self.views) - 1


def make_glb(buildings: list[tuple[Any, ...]] = BUILDINGS) -> bytes:
    """One glb with all ``buildings`` as boxes, feature ids and a property table."""
    positions, normals, fids, indices = [], [], [], []
    for i, b in enumerate(buildings):
        p, n = _box(b[6], b[7], b[8], b[9], b[5])
        base = len(positions) * 24
        positions.append(p)
        normals.append(n)
        fids.append(np.full(24, i, dtype=np.float32))
        for f in range(6):
            q = base + 4 * f
            indices.extend([q, q + 1, q + 2, q, q + 2, q + 3])
    pos = np.concatenate(positions).astype(np.float32)
    nor = np.concatenate(normals).astype(np.float32)
    fid = np.concatenate(fids)
    idx = np.array(indices, dtype=np.uint16)
    binbuf = _Bin()
    v_pos = binbuf.add(pos.tobytes(), 34962)
    v_nor = binbuf.add(nor.tobytes(), 34962)
    v_fid = binbuf.add(fid.tobytes(), 34962)
    v_idx = binbuf.add(idx.tobytes(), 34963)
    accessors = [
        {
            "bufferView": v_pos,
            "componentType": 5126,
            "count": len(pos),
            "type": "VEC3",
            "min": pos.min(axis=0).tolist(),
            "max": pos.max(axis=0).tolist(),
        },
        {"bufferView": v_nor, "componentType": 5126, "count": len(nor), "type": "VEC3"},
        {"bufferView": v_fid, "componentType": 5126, "count": len(fid), "type": "SCALAR"},
        {"bufferView": v_idx, "componentType": 5123, "count": len(idx), "type": "SCALAR"},
    ]

    def strings(values: list[str]) -> dict[str, Any]:
        enc = [v.encode("utf-8") for v in values]
        offsets = np.cumsum([0] + [len(e) for e in enc]).astype(np.uint32)
        return {
            "values": binbuf.add(b"".join(enc)),
            "stringOffsets": binbuf.add(offsets.tobytes()),
            "stringOffsetType": "UINT32",
        }

    props = {
        "id": strings([b[0] for b in buildings]),
        "name": strings([b[1] for b in buildings]),
        "use": strings([b[2] for b in buildings]),
        "roof_type": strings([b[3] for b in buildings]),
        "floors": {"values": binbuf.add(np.array([b[4] for b in buildings], np.int16).tobytes())},
        "height": {"values": binbuf.add(np.array([b[5] for b in buildings], np.float32).tobytes())},
        "base": {"values": binbuf.add(np.full(len(buildings), CENTRE[2], np.float32).tobytes())},
        "address": strings([b[10] for b in buildings]),
    }
    schema = {
        "id": "cim",
        "classes": {
            "building": {
                "properties": {
                    "id": {"type": "STRING"},
                    "name": {"type": "STRING"},
                    "use": {"type": "STRING"},
                    "roof_type": {"type": "STRING"},
                    "floors": {"type": "SCALAR", "componentType": "INT16"},
                    "height": {"type": "SCALAR", "componentType": "FLOAT32"},
                    "base": {"type": "SCALAR", "componentType": "FLOAT32"},
                    "address": {"type": "STRING"},
                }
            }
        },
    }
    while len(binbuf.data) % 4:
        binbuf.data.append(0)
    gltf = {
        "asset": {"version": "2.0", "generator": "cim tests fixture"},
        "extensionsUsed": ["EXT_mesh_features", "EXT_structural_metadata"],
        "extensions": {
            "EXT_structural_metadata": {
                "schema": schema,
                "propertyTables": [
                    {"class": "building", "count": len(buildings), "properties": props}
                ],
            }
        },
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [
            {
                "primitives": [
                    {
                        "attributes": {"POSITION": 0, "NORMAL": 1, "_FEATURE_ID_0": 2},
                        "indices": 3,
                        "material": 0,
                        "mode": 4,
                        "extensions": {
                            "EXT_mesh_features": {
                                "featureIds": [
                                    {
                                        "featureCount": len(buildings),
                                        "attribute": 0,
                                        "propertyTable": 0,
                                    }
                                ]
                            }
                        },
                    }
                ]
            }
        ],
        "materials": [
            {
                "pbrMetallicRoughness": {
                    "baseColorFactor": [0.85, 0.85, 0.82, 1.0],
                    "metallicFactor": 0.0,
                    "roughnessFactor": 0.9,
                }
            }
        ],
        "accessors": accessors,
        "bufferViews": binbuf.views,
        "buffers": [{"byteLength": len(binbuf.data)}],
    }
    js = json.dumps(gltf, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    js += b" " * (-len(js) % 4)
    body = bytes(binbuf.data)
    total = 12 + 8 + len(js) + 8 + len(body)
    return (
        struct.pack("<4sII", b"glTF", 2, total)
        + struct.pack("<I4s", len(js), b"JSON")
        + js
        + struct.pack("<I4s", len(body), b"BIN\x00")
        + body
    )


def _extent(pad_m: float = 120.0) -> list[float]:
    lon0, lat0, _ = CENTRE
    dlat = pad_m / 111_320.0
    dlon = pad_m / (111_320.0 * math.cos(math.radians(lat0)))
    return [lon0 - dlon, lat0 - dlat, lon0 + dlon, lat0 + dlat]


def fixture_buildings() -> Any:
    """:data:`BUILDINGS` as a :class:`cim.model.Buildings` table (lon/lat boxes)."""
    import shapely

    from cim.model import Buildings

    lon0, lat0, h0 = CENTRE
    k = 111_320.0 * math.cos(math.radians(lat0))
    boxes = [
        shapely.box(
            lon0 + (b[6] - b[8] / 2) / k,
            lat0 + (b[7] - b[9] / 2) / 111_320.0,
            lon0 + (b[6] + b[8] / 2) / k,
            lat0 + (b[7] + b[9] / 2) / 111_320.0,
        )
        for b in BUILDINGS
    ]

    def col(i: int) -> np.ndarray:
        return np.array([b[i] for b in BUILDINGS], dtype=object)

    return Buildings(
        ids=col(0),
        footprints=np.array(boxes, dtype=object),
        height=np.array([b[5] for b in BUILDINGS], dtype=np.float64),
        floors=np.array([b[4] for b in BUILDINGS], dtype=np.float64),
        base=np.full(len(BUILDINGS), h0),
        name=col(1),
        use=col(2),
        roof_type=col(3),
    )


def write_fixture_output(dest: Path) -> Path:
    """Write the tiny output folder into ``dest`` and return it.

    Contents: ``manifest.json``, ``build-report.json``, ``tiles/l2/tileset.json`` +
    ``tiles/l2/0.glb``, ``terrain/0/0/0.terrain`` (gzip bytes, not a valid mesh: for
    header tests only, not listed in the manifest), ``imagery/0/0/0.png``,
    ``buildings.parquet`` and an (empty) ``addresses.sqlite`` so that the search
    endpoints are enabled.
    """
    dest = Path(dest)
    (dest / "tiles" / "l2").mkdir(parents=True, exist_ok=True)
    glb = make_glb()
    (dest / "tiles" / "l2" / "0.glb").write_bytes(glb)
    west, south, east, north = _extent()
    maxh = max(b[5] for b in BUILDINGS)
    tileset = {
        "asset": {"version": "1.1", "generator": "cim tests fixture"},
        "geometricError": 200.0,
        "root": {
            "transform": enu_to_ecef_matrix(*CENTRE),
            "boundingVolume": {
                "region": [
                    math.radians(west),
                    math.radians(south),
                    math.radians(east),
                    math.radians(north),
                    CENTRE[2] - 1.0,
                    CENTRE[2] + maxh + 1.0,
                ]
            },
            "geometricError": 0.0,
            "refine": "ADD",
            "content": {"uri": "0.glb"},
        },
    }
    (dest / "tiles" / "l2" / "tileset.json").write_text(json.dumps(tileset), encoding="utf-8")
    (dest / "terrain" / "0" / "0").mkdir(parents=True, exist_ok=True)
    (dest / "terrain" / "0" / "0" / "0.terrain").write_bytes(
        gzip.compress(b"quantized-mesh test bytes " * 40, mtime=0)
    )
    (dest / "imagery" / "0" / "0").mkdir(parents=True, exist_ok=True)
    (dest / "imagery" / "0" / "0" / "0.png").write_bytes(_tiny_png())
    (dest / "addresses.sqlite").write_bytes(b"")
    from tiling.buildings.export import write_buildings_table

    write_buildings_table(fixture_buildings(), dest)
    manifest = {
        "name": "测试城",
        "crs": "EPSG:4326",
        "extent": [west, south, east, north],
        "centre": list(CENTRE),
        "layers": {
            "l2": {"url": "tiles/l2/tileset.json", "count": len(BUILDINGS)},
            "addresses": {"url": "addresses.sqlite", "count": len(BUILDINGS)},
        },
        "stages": {"l2": {"count": len(BUILDINGS)}},
        "version": "0.1.0",
        "inputs": {},
    }
    (dest / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    (dest / "build-report.json").write_text('{"stages": {}}', encoding="utf-8")
    return dest


def _tiny_png() -> bytes:
    import zlib

    raw = b"".join(b"\x00" + bytes([40, 80, 120]) * 4 for _ in range(4))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class FakeCandidate:
    """Stand-in for ``tiling.addresses.Candidate``."""

    score: float
    label: str
    lon: float
    lat: float
    height: float
    building_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "label": self.label,
            "components": {"full": self.label},
            "lon": self.lon,
            "lat": self.lat,
            "height": self.height,
            "building_id": self.building_id,
        }


class FakeAddressIndex:
    """Substring search over :data:`BUILDINGS` (the ``AddressIndex`` contract)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.items = []
        for b in BUILDINGS:
            lon, lat = building_lonlat(b)
            self.items.append(FakeCandidate(1.0, b[10], lon, lat, CENTRE[2] + b[5], b[0]))

    def search(self, q: str, limit: int = 10) -> list[FakeCandidate]:
        hits = [c for c in self.items if q in c.label or c.label in q]
        return hits[:limit]

    def reverse(self, lon: float, lat: float, limit: int = 10) -> list[FakeCandidate]:
        return sorted(self.items, key=lambda c: (c.lon - lon) ** 2 + (c.lat - lat) ** 2)[:limit]

    def close(self) -> None:
        pass
