"""The geographic tiling scheme CesiumJS uses by default for terrain.

Level 0 has two 180° × 180° tiles (x = 0 west, x = 1 east); each level halves the tile
size; rows are counted from the south (TMS). The geometric error CesiumJS assumes for
a level is the one it uses for heightmap terrain::

    E0 = ellipsoid.maximumRadius * 2π * 0.25 / (65 * 2)   # ≈ 77,067 m
    E(level) = E0 / 2**level
"""

from __future__ import annotations

import math
from typing import NamedTuple

from cim.crs import WGS84_A

#: levelZeroMaximumGeometricError of CesiumJS for the geographic scheme (metres)
LEVEL_ZERO_ERROR = WGS84_A * 2.0 * math.pi * 0.25 / (65 * 2)
#: metres per degree along a meridian/the equator (spherical approximation)
M_PER_DEG = WGS84_A * math.pi / 180.0


class TileRange(NamedTuple):
    """Inclusive rectangle of tiles at one level (layer.json ``available`` entry)."""

    start_x: int
    start_y: int
    end_x: int
    end_y: int

    def to_json(self) -> dict[str, int]:
        """The layer.json form."""
        return {
            "startX": self.start_x,
            "startY": self.start_y,
            "endX": self.end_x,
            "endY": self.end_y,
        }

    def count(self) -> int:
        """Number of tiles in the range."""
        return (self.end_x - self.start_x + 1) * (self.end_y - self.start_y + 1)


def geometric_error(level: int) -> float:
    """CesiumJS's assumed geometric error of terrain at ``level`` (metres)."""
    return LEVEL_ZERO_ERROR / (1 << level)


def tile_size_deg(level: int) -> float:
    """Tile width and height in degrees."""
    return 180.0 / (1 << level)


def tile_bounds(level: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) of a tile in degrees."""
    size = tile_size_deg(level)
    west = -180.0 + x * size
    south = -90.0 + y * size
    return west, south, west + size, south + size


def level_range(level: int) -> TileRange:
    """All tiles of a level."""
    return TileRange(0, 0, (2 << level) - 1, (1 << level) - 1)


def tiles_for_bounds(level: int, bounds: tuple[float, float, float, float]) -> TileRange:
    """Tiles whose area overlaps ``bounds`` (west, south, east, north; degrees)."""
    size = tile_size_deg(level)
    w, s, e, n = bounds
    full = level_range(level)
    x0 = max(0, math.floor((w + 180.0) / size))
    x1 = min(full.end_x, max(x0, math.ceil((e + 180.0) / size) - 1))
    y0 = max(0, math.floor((s + 90.0) / size))
    y1 = min(full.end_y, max(y0, math.ceil((n + 90.0) / size) - 1))
    return TileRange(x0, y0, x1, y1)


def auto_max_zoom(resolution_m: float, lat: float, samples: int = 64) -> int:
    """Lowest level whose 65-sample heightmap spacing reaches the DEM resolution.

    Parameters
    ----------
    resolution_m : float
        Ground size of a DEM pixel (metres).
    lat : float
        Latitude of the DEM's centre (degrees): east-west spacing shrinks with cos(lat).
    samples : int
        Sample intervals per tile CesiumJS assumes (64).
    """
    width0 = 180.0 * M_PER_DEG * max(math.cos(math.radians(lat)), 0.05)
    ratio = width0 / (samples * max(resolution_m, 0.01))
    return max(0, min(22, math.ceil(math.log2(max(ratio, 1.0)))))


def grid_intervals(level: int, resolution_m: float, lat: float) -> int:
    """DEM sample intervals per tile side at ``level`` (a power of two, 32..128).

    The grid is at least as fine as the DEM up to 128 intervals (at the max zoom it
    is at most 64 or 128, i.e. about the DEM's resolution); coarser levels, whose
    error budget doubles per level, sample the DEM more sparsely. A function of the
    level only, so neighbouring tiles sample their shared edge at the same points.
    """
    width = tile_size_deg(level) * M_PER_DEG * max(math.cos(math.radians(lat)), 0.05)
    ratio = width / max(resolution_m, 0.01)
    n = 1 << max(0, math.ceil(math.log2(max(ratio, 1.0))))
    return int(min(128, max(32, n)))


def curvature_blocks(level: int) -> int:
    """Blocks per tile side so that chords sag less than a quarter of the level's error.

    A chord across angle θ on a sphere of radius R sags R θ² / 8; a tile spans π / 2^z.
    """
    need = 2.0 * math.sqrt(102.0 / (1 << level))
    if need <= 1.0:
        return 1
    return int(min(32, 1 << math.ceil(math.log2(need))))
