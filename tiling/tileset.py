"""Typed 3D Tiles 1.1 tileset structures with a JSON round trip.

Only what the toolkit writes is modelled: box bounding volumes, explicit tile trees,
one content per tile, an optional root transform.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Box:
    """An oriented bounding box given as centre and three half-axis vectors."""

    values: tuple[float, ...]

    @classmethod
    def from_min_max(cls, lo: tuple[float, float, float], hi: tuple[float, float, float]) -> Box:
        """Axis-aligned box between corners ``lo`` and ``hi``."""
        c = [(a + b) / 2.0 for a, b in zip(lo, hi, strict=True)]
        h = [max((b - a) / 2.0, 0.01) for a, b in zip(lo, hi, strict=True)]
        return cls((c[0], c[1], c[2], h[0], 0.0, 0.0, 0.0, h[1], 0.0, 0.0, 0.0, h[2]))

    def min_max(self) -> tuple[list[float], list[float]]:
        """Corners of the axis-aligned box enclosing this box."""
        c = self.values[:3]
        axes = [self.values[3:6], self.values[6:9], self.values[9:12]]
        ext = [sum(abs(a[i]) for a in axes) for i in range(3)]
        return [c[i] - ext[i] for i in range(3)], [c[i] + ext[i] for i in range(3)]

    def to_json(self) -> dict[str, Any]:
        """The ``boundingVolume`` object."""
        return {"box": [round(v, 3) for v in self.values]}


@dataclass
class Tile:
    """One tile of an explicit tile tree."""

    bounding_volume: Box
    geometric_error: float
    content_uri: str | None = None
    children: list[Tile] = field(default_factory=list)
    refine: str | None = None
    transform: list[float] | None = None

    def to_json(self) -> dict[str, Any]:
        """The tile object."""
        out: dict[str, Any] = {
            "boundingVolume": self.bounding_volume.to_json(),
            "geometricError": round(self.geometric_error, 3),
        }
        if self.refine:
            out["refine"] = self.refine
        if self.transform is not None:
            out["transform"] = self.transform
        if self.content_uri:
            out["content"] = {"uri": self.content_uri}
        if self.children:
            out["children"] = [c.to_json() for c in self.children]
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Tile:
        """Parse a tile object (box volumes only)."""
        return cls(
            bounding_volume=Box(tuple(obj["boundingVolume"]["box"])),
            geometric_error=float(obj["geometricError"]),
            content_uri=obj.get("content", {}).get("uri"),
            children=[cls.from_json(c) for c in obj.get("children", [])],
            refine=obj.get("refine"),
            transform=obj.get("transform"),
        )

    def walk(self) -> list[Tile]:
        """This tile and all descendants, depth first."""
        out = [self]
        for c in self.children:
            out.extend(c.walk())
        return out


@dataclass
class Tileset:
    """A 3D Tiles 1.1 tileset."""

    root: Tile
    geometric_error: float
    generator: str = "cim-toolkit"
    extensions_used: list[str] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)
    version: str = "1.1"

    def to_json(self) -> dict[str, Any]:
        """The tileset.json object."""
        out: dict[str, Any] = {
            "asset": {"version": self.version, "generator": self.generator},
            "geometricError": round(self.geometric_error, 3),
            "root": self.root.to_json(),
        }
        if self.properties:
            out["properties"] = self.properties
        if self.extensions_used:
            out["extensionsUsed"] = self.extensions_used
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Tileset:
        """Parse a tileset.json object."""
        return cls(
            root=Tile.from_json(obj["root"]),
            geometric_error=float(obj["geometricError"]),
            generator=obj.get("asset", {}).get("generator", ""),
            extensions_used=list(obj.get("extensionsUsed", [])),
            properties=dict(obj.get("properties", {})),
            version=obj["asset"]["version"],
        )

    def write(self, path: Path) -> None:
        """Write as compact JSON."""
        path.write_text(json.dumps(self.to_json(), separators=(",", ":")), encoding="utf-8")
