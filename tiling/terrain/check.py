"""Check buildings against the terrain as CesiumJS renders it: the decoded mesh.

:func:`ground_gaps` measures, per building, how far its wall bottom (base minus the
wall skirt) lies above the terrain mesh a build wrote at its footprint's vertices and
centre. The mesh is decoded and sampled by the core's read side
(:class:`cim.qmesh.TerrainReader`: the finest tile that exists at each point), the
same code that answers "ground height at a point" for the server and live layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely

from cim.qmesh import TerrainReader
from tiling.terrain import scheme


@dataclass
class GroundGaps:
    """How buildings sit on the decoded terrain mesh.

    Attributes
    ----------
    gap : ndarray
        Per building, the largest height of the wall bottom above the mesh under its
        footprint's vertices and centre (m; negative: buried everywhere).
    threshold_m : float
        A building floats when its gap exceeds this.
    levels : dict of int to int
        Terrain level used → number of points measured on it.
    """

    gap: np.ndarray
    threshold_m: float
    levels: dict[int, int]

    @property
    def buildings(self) -> int:
        """Buildings checked."""
        return len(self.gap)

    @property
    def max_gap_m(self) -> float:
        """The largest gap (m)."""
        return float(self.gap.max()) if len(self.gap) else 0.0

    @property
    def floating(self) -> int:
        """Buildings whose wall bottom is above the mesh by more than the threshold."""
        return int((self.gap > self.threshold_m).sum())


def ground_gaps(
    terrain_dir: Path,
    footprints: np.ndarray,
    base: np.ndarray,
    skirt: float,
    *,
    threshold_m: float = 0.5,
    level: int | None = None,
) -> GroundGaps:
    """How far each building's wall bottom lies above the decoded terrain mesh.

    Parameters
    ----------
    terrain_dir : Path
        The terrain folder a build wrote.
    footprints : ndarray of shapely geometries
        Footprints in lon/lat.
    base : ndarray
        WGS84 ellipsoidal base heights (``Buildings.base``).
    skirt : float
        How far walls reach below the base (``wall_skirt_m`` in the report).
    threshold_m : float
        Gap above which a building counts as floating.
    level : int, optional
        Finest terrain level to use (default: the terrain's max zoom).

    Returns
    -------
    GroundGaps
    """
    coords, index = shapely.get_coordinates(footprints, return_index=True)
    centres = shapely.get_coordinates(shapely.point_on_surface(footprints))
    lon = np.concatenate([coords[:, 0], centres[:, 0]])
    lat = np.concatenate([coords[:, 1], centres[:, 1]])
    owner = np.concatenate([index, np.arange(len(footprints))])
    mesh, used = TerrainReader(terrain_dir).heights_and_levels(lon, lat, level)
    bottom = np.asarray(base, dtype=np.float64) - skirt
    diff = bottom[owner] - mesh
    gap = np.full(len(footprints), -np.inf)
    # a point no tile covers counts as floating: nothing is under it
    np.fmax.at(gap, owner, np.where(np.isfinite(diff), diff, np.inf))
    levels, counts = np.unique(used, return_counts=True)
    return GroundGaps(
        gap, threshold_m, {int(z): int(c) for z, c in zip(levels, counts, strict=True)}
    )


def probe_footprints(
    bounds: tuple[float, float, float, float], n: int, seed: int = 0
) -> np.ndarray:
    """Square footprints (lon/lat) inside, across the edges of and outside a DEM's box.

    For checking how buildings sit on a DEM's terrain: 60 % inside ``bounds``, 20 %
    centred on its edges (straddling them), 15 % up to 400 m outside, 5 % 600 m to
    3 km outside. Sides 8–40 m, random orientation.

    Parameters
    ----------
    bounds : (west, south, east, north)
        Degrees.
    n : int
        Number of footprints.
    seed : int
        Random seed.

    Returns
    -------
    ndarray of shapely Polygon
    """
    rng = np.random.default_rng(seed)
    w, s, e, nn = bounds
    lat0 = (s + nn) / 2.0
    m_lon = scheme.M_PER_DEG * np.cos(np.radians(lat0))
    m_lat = scheme.M_PER_DEG
    kind = rng.choice(4, size=n, p=[0.6, 0.2, 0.15, 0.05])
    lon = rng.uniform(w, e, n)
    lat = rng.uniform(s, nn, n)
    # outside kinds: push the point off one side by a distance
    side = rng.integers(0, 4, n)
    off = np.select(
        [kind == 1, kind == 2, kind == 3],
        [np.zeros(n), rng.uniform(20.0, 400.0, n), rng.uniform(600.0, 3000.0, n)],
        0.0,
    )
    edge = kind > 0
    lon = np.where(edge & (side == 0), w - off / m_lon, lon)
    lon = np.where(edge & (side == 1), e + off / m_lon, lon)
    lat = np.where(edge & (side == 2), s - off / m_lat, lat)
    lat = np.where(edge & (side == 3), nn + off / m_lat, lat)
    half = rng.uniform(4.0, 20.0, n)
    angle = rng.uniform(0.0, np.pi / 2.0, n)
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]], dtype=np.float64)
    c, si = np.cos(angle)[:, None], np.sin(angle)[:, None]
    dx = (corners[None, :, 0] * c - corners[None, :, 1] * si) * half[:, None]
    dy = (corners[None, :, 0] * si + corners[None, :, 1] * c) * half[:, None]
    ring = np.stack([lon[:, None] + dx / m_lon, lat[:, None] + dy / m_lat], axis=-1)
    return shapely.polygons(ring)
