"""Continue a DEM past its edges, so neither the terrain nor the buildings fall off a cliff.

Outside the DEM (and in voids that FillNodata could not reach) the surface continues
the DEM's edge: the height of the nearest edge sample, smoothed more the farther from
the edge (a Gaussian of σ ≈ half the distance, so the continuation is smooth enough
for the terrain mesher and has no ridges between edge samples), flat out to
:data:`EDGE_FLAT_M` from the edge, then ramping linearly down to sea level
(orthometric 0) over :data:`EDGE_RAMP_M`. Beyond that margin the surface is sea
level, as the coarse globe levels always were.

The continuation is computed once on a lon/lat grid covering the DEM and its margin
(at most :data:`MAX_GRID` samples a side) and sampled bilinearly. The terrain stage
meshes it for every tile within the margin, and the buildings stage grounds buildings
on the very same function, so a building outside the DEM but within the margin
stands on the rendered terrain.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from scipy import ndimage

from cim.raster import DemMosaic
from tiling.terrain.scheme import M_PER_DEG

log = logging.getLogger(__name__)

#: distance from the DEM's edge over which the edge height continues (m)
EDGE_FLAT_M = 500.0
#: distance beyond that over which the surface ramps down to sea level (m)
EDGE_RAMP_M = 500.0
#: samples per side of the grid the continuation is computed on (at most)
MAX_GRID = 512


class EdgeExtendedDem:
    """A :class:`cim.raster.DemMosaic` whose surface continues past its edges.

    Parameters
    ----------
    dem : DemMosaic
        The DEM (usually with ``fill_nodata=True``).
    flat_m, ramp_m : float
        Width of the flat continuation and of the ramp to sea level (metres).
    max_grid : int
        The continuation is computed on a lon/lat grid over the DEM and its margin at
        the DEM's resolution, at most this many samples per side.

    Notes
    -----
    Picklable (sent to the terrain workers): two float32 grids of at most
    ``max_grid``² samples.
    """

    def __init__(
        self,
        dem: DemMosaic,
        flat_m: float = EDGE_FLAT_M,
        ramp_m: float = EDGE_RAMP_M,
        max_grid: int = MAX_GRID,
    ) -> None:
        self.dem = dem
        self.flat_m = float(flat_m)
        self.ramp_m = float(ramp_m)
        w, s, e, n = _widen(dem.bounds_lonlat(), self.margin_m)
        self.grid_bounds = (w, s, e, n)
        self.height, self.distance = _continuation(dem, self.grid_bounds, max_grid, self.margin_m)
        taper = np.clip(1.0 - (self.distance - self.flat_m) / max(self.ramp_m, 1e-6), 0.0, 1.0)
        self.height *= taper.astype(np.float32)

    # -- the DemMosaic interface the terrain planner uses ---------------------------
    def bounds_lonlat(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the DEM itself, degrees."""
        return self.dem.bounds_lonlat()

    def file_bounds_lonlat(self) -> list[tuple[float, float, float, float]]:
        """Bounds of each DEM file, degrees."""
        return self.dem.file_bounds_lonlat()

    def resolution_m(self) -> float:
        """The DEM's finest resolution (metres)."""
        return self.dem.resolution_m()

    @property
    def margin_m(self) -> float:
        """Distance from the DEM's edge beyond which the surface is sea level (m)."""
        return self.flat_m + self.ramp_m

    def margin_bounds(self) -> list[tuple[float, float, float, float]]:
        """Each file's bounds widened by :attr:`margin_m` (degrees)."""
        return [_widen(b, self.margin_m) for b in self.dem.file_bounds_lonlat()]

    # -- sampling -------------------------------------------------------------------
    def sample(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Heights (as the DEM stores them) everywhere: never NaN.

        Parameters
        ----------
        lon, lat : array_like
            WGS84 degrees, equal shapes.

        Returns
        -------
        ndarray of float64
            The DEM where it has data, the continued edge within the margin, 0
            (sea level) beyond.
        """
        return self.sample_detail(lon, lat)[0]

    def sample_detail(
        self, lon: np.ndarray, lat: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Heights, whether the DEM itself had data there, and distance to its edge.

        Returns
        -------
        heights : ndarray of float64
            As :meth:`sample`.
        inside : ndarray of bool
            True where the DEM has data.
        distance : ndarray of float64
            Metres to the nearest DEM edge sample where ``inside`` is False (``inf``
            beyond the margin), 0 inside.
        """
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        h = np.asarray(self.dem.sample(lon, lat), dtype=np.float64)
        inside = np.isfinite(h)
        dist = np.zeros(h.shape)
        out = ~inside
        if out.any():
            hx, dx = self._extend(lon[out], lat[out])
            h[out] = hx
            dist[out] = dx
        return h, inside, dist

    def _extend(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bilinear samples of the continuation grid (0 and ``inf`` off the grid)."""
        w, s, e, n = self.grid_bounds
        rows, cols = self.height.shape
        c = (lon - w) / (e - w) * (cols - 1)
        r = (n - lat) / (n - s) * (rows - 1)
        on = (c >= 0) & (c <= cols - 1) & (r >= 0) & (r <= rows - 1)
        h = np.zeros(lon.shape)
        d = np.full(lon.shape, np.inf)
        c, r = c[on], r[on]
        c0 = np.minimum(np.floor(c).astype(np.int64), cols - 2)
        r0 = np.minimum(np.floor(r).astype(np.int64), rows - 2)
        fc, fr = c - c0, r - r0
        for grid, out in ((self.height, h), (self.distance, d)):
            top = grid[r0, c0] * (1 - fc) + grid[r0, c0 + 1] * fc
            bottom = grid[r0 + 1, c0] * (1 - fc) + grid[r0 + 1, c0 + 1] * fc
            out[on] = top * (1 - fr) + bottom * fr
        d = np.where(d > self.margin_m, np.inf, d)
        return h, d


def _widen(
    bounds: tuple[float, float, float, float], margin_m: float
) -> tuple[float, float, float, float]:
    """A lon/lat box widened by ``margin_m`` metres on every side (clamped to the globe)."""
    w, s, e, n = bounds
    dlat = margin_m / M_PER_DEG
    dlon = dlat / max(math.cos(math.radians(max(abs(s), abs(n)) + dlat)), 0.01)
    return (max(w - dlon, -180.0), max(s - dlat, -90.0), min(e + dlon, 180.0), min(n + dlat, 90.0))


def _continuation(
    dem: DemMosaic, bounds: tuple[float, float, float, float], max_grid: int, margin_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Continued heights and distance to the DEM (m) on a lon/lat grid over ``bounds``.

    Each sample without DEM data takes the nearest DEM sample's height, blurred by a
    Gaussian whose σ grows with the distance (σ ≈ d / 2, blended between octaves), so
    the surface leaves the edge continuously and becomes smoother farther out.
    """
    w, s, e, n = bounds
    coslat = max(math.cos(math.radians((s + n) / 2.0)), 0.01)
    step = dem.resolution_m() / M_PER_DEG
    cols = int(min(max_grid, max(3, math.ceil((e - w) * coslat / step) + 1)))
    rows = int(min(max_grid, max(3, math.ceil((n - s) / step) + 1)))
    grid = dem.read_lonlat_grid(w, s, e, n, cols, rows).astype(np.float64)
    valid = np.isfinite(grid)
    dx = (e - w) / (cols - 1) * M_PER_DEG * coslat
    dy = (n - s) / (rows - 1) * M_PER_DEG
    if not valid.any():
        return np.zeros(grid.shape, np.float32), np.full(grid.shape, np.inf, np.float32)
    distance, (ri, ci) = ndimage.distance_transform_edt(
        ~valid, sampling=(dy, dx), return_indices=True
    )
    nearest = grid[ri, ci]
    cell = max(dx, dy)
    # octave k ≈ blurred by σ = cell · 2^(k-1); σ(d) = d / 2 → k = log2(d / cell)
    n_oct = int(min(12, max(1, math.ceil(math.log2(max(margin_m / cell, 1.0))) + 1)))
    k = np.clip(np.log2(np.maximum(distance, 1e-9) / cell), 0.0, n_oct - 1.0)
    height = np.zeros(grid.shape)
    level = nearest
    for octave in range(n_oct):
        if octave:
            # a pyramid: blur one cell and halve, so each octave costs a quarter
            level = ndimage.gaussian_filter(level, 1.0, mode="nearest")[::2, ::2]
        weight = np.clip(1.0 - np.abs(k - octave), 0.0, 1.0)
        if weight.any():
            height += weight * _upsample(level, 2**octave, grid.shape)
    height = np.where(valid, grid, height)
    return height.astype(np.float32), distance.astype(np.float32)


def _upsample(small: np.ndarray, factor: int, shape: tuple[int, ...]) -> np.ndarray:
    """Bilinear upsampling of a pyramid level (sample i of level ``factor`` sits at
    full-resolution index ``i · factor``)."""
    if factor == 1:
        return small
    r = np.arange(shape[0]) / factor
    c = np.arange(shape[1]) / factor
    rr, cc = np.meshgrid(r, c, indexing="ij")
    return ndimage.map_coordinates(small, [rr, cc], order=1, mode="nearest")
