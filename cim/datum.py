"""Height datums: orthometric input heights → WGS84 ellipsoidal heights.

Tiles (terrain, buildings) carry WGS84 ellipsoidal heights ``h``. Input heights are
usually orthometric ``H`` (above the geoid: the 1985 national height datum, EGM96,
a local levelling datum). The two differ by the geoid undulation ``N``::

    h = H + N

The city project's ``[datum]`` section (:class:`cim.config.DatumConfig`) says which
kind of heights the inputs carry and where ``N`` comes from: a constant
``geoid_offset`` (metres) or a ``geoid_grid`` raster of N in any CRS (e.g. an EGM96
or CQG2000 extract as GeoTIFF), sampled bilinearly.

Example
-------
>>> datum = Datum.from_config(project.datum)           # doctest: +SKIP
>>> h = datum.to_ellipsoidal(dem_heights, lon, lat)     # doctest: +SKIP
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError

from cim.config import DatumConfig
from cim.errors import DatasetIOError, InputDataError
from cim.raster import _from_lonlat, bilinear, resolve_raster_crs

log = logging.getLogger(__name__)


@dataclass
class _Grid:
    path: Path
    crs: str
    transform: rasterio.Affine
    data: np.ndarray
    valid: np.ndarray | None


@dataclass
class Datum:
    """Conversion of input heights to WGS84 ellipsoidal heights.

    Attributes
    ----------
    heights : str
        ``"orthometric"`` or ``"ellipsoidal"`` (inputs already ellipsoidal: no change).
    geoid_offset : float
        Constant N in metres, used when there is no grid.
    geoid_grid : Path or None
        Raster of N in metres (band 1), any CRS.
    crs : str or None
        The grid's CRS when the file carries none (``[datum] crs``).
    """

    heights: str = "orthometric"
    geoid_offset: float = 0.0
    geoid_grid: Path | None = None
    crs: str | None = None
    _grid: _Grid | None = field(default=None, repr=False, compare=False)
    _warned_outside: bool = field(default=False, repr=False, compare=False)

    @classmethod
    def from_config(cls, config: DatumConfig | None) -> Datum:
        """Build from a project's ``[datum]`` section (None: orthometric, N = 0).

        Raises
        ------
        DatasetIOError
            The geoid grid cannot be read.
        CRSError
            The geoid grid's CRS, by :func:`cim.crs.resolve_crs` (the file's own, else
            ``[datum] crs``), is missing, contradicted or does not fit its extent.
        InputDataError
            The geoid grid holds no valid value.
        """
        config = config or DatumConfig()
        datum = cls(config.heights, config.geoid_offset, config.geoid_grid, config.crs)
        if datum.geoid_grid is not None:
            datum._load_grid()
        return datum

    def _load_grid(self) -> _Grid:
        if self._grid is None:
            path = Path(self.geoid_grid)  # type: ignore[arg-type]
            try:
                with rasterio.open(path) as ds:
                    resolved, _ = resolve_raster_crs(
                        ds, path, self.crs, None, what="datum", kind="geoid grid"
                    )
                    data = ds.read(1).astype(np.float64)
                    valid = np.isfinite(data)
                    if ds.nodata is not None:
                        valid &= data != ds.nodata
                    if ds.transform.b != 0 or ds.transform.d != 0:
                        raise InputDataError("rotated geoid grids are not supported", path=path)
                    self._grid = _Grid(
                        path, resolved.crs, ds.transform, data, None if valid.all() else valid
                    )
            except RasterioIOError as exc:
                raise DatasetIOError(f"cannot read geoid grid ({exc})", path=path) from exc
            if self._grid.valid is not None and not self._grid.valid.any():
                raise InputDataError("geoid grid has no valid value", path=path)
        return self._grid

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_grid"] = None
        return state

    def undulation(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Geoid undulation N (metres) at lon/lat points (WGS84 degrees).

        Points outside the geoid grid take the value of its nearest edge pixel (a
        warning is logged once); points at nodata inside the grid take the grid's
        valid neighbours or, failing that, ``geoid_offset``.
        """
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        shape = np.broadcast_shapes(lon.shape, lat.shape)
        if self.geoid_grid is None:
            return np.full(shape, self.geoid_offset, dtype=np.float64)
        g = self._load_grid()
        lon = np.broadcast_to(lon, shape).ravel()
        lat = np.broadcast_to(lat, shape).ravel()
        x, y = _from_lonlat(lon, lat, g.crs)
        t = g.transform
        col = (np.asarray(x) - t.c) / t.a - 0.5
        row = (np.asarray(y) - t.f) / t.e - 0.5
        rows, cols = g.data.shape
        outside = (col < -0.5) | (col > cols - 0.5) | (row < -0.5) | (row > rows - 0.5)
        if outside.any() and not self._warned_outside:
            log.warning(
                "%d point(s) outside the geoid grid %s: nearest edge value used",
                int(outside.sum()),
                g.path,
            )
            self._warned_outside = True
        col = np.nan_to_num(col, nan=0.0)
        row = np.nan_to_num(row, nan=0.0)
        n = bilinear(g.data, g.valid, col, row)
        n[np.isnan(n)] = self.geoid_offset
        return n.reshape(shape)

    def to_ellipsoidal(self, h: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """WGS84 ellipsoidal heights from input heights (h = H + N when orthometric).

        Parameters
        ----------
        h : array_like
            Input heights (metres); NaN stays NaN.
        lon, lat : array_like
            WGS84 degrees, broadcastable to ``h``.

        Returns
        -------
        ndarray of float64
        """
        h = np.asarray(h, dtype=np.float64)
        if self.heights == "ellipsoidal":
            return h.copy()
        if self.geoid_grid is None:
            return h + self.geoid_offset
        return h + self.undulation(lon, lat)
