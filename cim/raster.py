"""Reading elevation rasters (DEMs) in any CRS, as one seamless mosaic.

:class:`DemMosaic` opens one or several DEM GeoTIFFs (int16 or float32, with or
without nodata, any CRS pyproj knows) and answers two questions, both vectorised:

- :meth:`DemMosaic.sample`: the (orthometric) height at given lon/lat points,
  bilinear, NaN outside the DEM or at nodata;
- :meth:`DemMosaic.read_lonlat_grid`: a regular lon/lat grid of heights, which is
  what terrain tiles are cut from.

Later files fill the holes (nodata or no coverage) of earlier ones. Heights are
returned as stored in the files; :mod:`cim.datum` turns them into WGS84 ellipsoidal
heights.

Pixel convention: a pixel's value belongs to its centre (GDAL "area" pixels with the
value at the centre, which is how DEM posts are usually delivered). Between the
outermost pixel centres and the raster edge the value is held constant.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import rasterio
from pyproj import CRS
from rasterio.errors import RasterioIOError
from rasterio.fill import fillnodata
from rasterio.windows import Window

from cim.crs import ResolvedCRS, crs_label, get_transformer, parse_crs, resolve_crs, safe_to_lonlat
from cim.errors import CRSError, DatasetIOError, InputDataError

log = logging.getLogger(__name__)

#: Files up to this many pixels are read whole into memory on first use.
WHOLE_READ_PIXELS = 80_000_000
#: Search distance (pixels) when filling nodata voids.
FILL_DISTANCE = 256

_WGS84 = CRS.from_epsg(4326)
#: Points per side of the outline that a raster's extent is converted with.
OUTLINE_POINTS = 21


def raster_outline(
    transform: rasterio.Affine, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """A densified outline of a raster's extent in its own coordinates (x, y)."""
    t = np.linspace(0.0, 1.0, OUTLINE_POINTS)
    n = OUTLINE_POINTS
    cols = np.concatenate([t * width, np.full(n, width), t[::-1] * width, np.zeros(n)])
    rows = np.concatenate([np.zeros(n), t * height, np.full(n, height), t[::-1] * height])
    return transform.c + cols * transform.a, transform.f + rows * transform.e


def resolve_raster_crs(
    ds: rasterio.DatasetReader,
    path: Path,
    declared: str | None,
    default: str | None,
    *,
    what: str,
    kind: str,
) -> tuple[ResolvedCRS, tuple[float, float, float, float]]:
    """The CRS of one raster file under :func:`cim.crs.resolve_crs`, and its lon/lat bounds.

    Parameters
    ----------
    ds : rasterio dataset
    path : Path
    declared : str or None
        The section's ``crs`` (``[terrain]``, ``[imagery]``).
    default : str or None
        ``[city] crs``.
    what : str
        The section name, for messages.
    kind : str
        ``"DEM"``, ``"orthophoto"``: for messages.

    Raises
    ------
    InputDataError
        The raster has no georeferencing (pixel coordinates only).
    CRSError
        As :func:`cim.crs.resolve_crs`; also when part of the extent is off the
        Earth in the chosen CRS.
    """
    if ds.transform.is_identity and not ds.gcps[0]:
        raise InputDataError(f"the {kind} has no georeferencing (no geotransform)", path=path)
    xs, ys = raster_outline(ds.transform, ds.width, ds.height)
    file_crs = ds.crs.to_wkt() if ds.crs is not None else None
    resolved = resolve_crs(
        file_crs,
        declared,
        xs,
        ys,
        what=what,
        path=path,
        default=default,
        items=f"points of the {kind} outline",
    )
    if resolved.note:
        log.warning("%s: %s", path, resolved.note)
    lon, lat = safe_to_lonlat(xs, ys, resolved.crs)
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise CRSError(
            f"the {kind} extent ({xs.min():.10g}, {ys.min():.10g}, {xs.max():.10g}, "
            f"{ys.max():.10g}) is partly off the Earth in {crs_label(resolved.crs)}: "
            f"its CRS is wrong (set [{what}] crs)",
            path=path,
        )
    if not resolved.fits.all():
        log.warning(
            "%s: part of the %s extent is outside the area of use of %s",
            path,
            kind,
            crs_label(resolved.crs),
        )
    return resolved, (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))


def check_overlap(
    bounds: tuple[float, float, float, float],
    extent: tuple[float, float, float, float] | list[float] | None,
    *,
    kind: str,
    what: str,
    path: Path | str,
    crs: str,
) -> None:
    """Refuse a raster whose lon/lat ``bounds`` do not touch the buildings' ``extent``.

    A DEM or orthophoto in the wrong CRS still converts to somewhere on the Earth,
    but not to where the buildings are: that is the evidence.

    Raises
    ------
    CRSError
        One line naming the file, both extents and the CRS used.
    """
    if extent is None:
        return
    w, s, e, n = bounds
    bw, bs, be, bn = extent
    margin = 0.01  # ~1 km: rasters cut exactly at the city's edge still touch it
    if w <= be + margin and e >= bw - margin and s <= bn + margin and n >= bs - margin:
        return
    raise CRSError(
        f"the {kind} covers lon {w:.4f}–{e:.4f}, lat {s:.4f}–{n:.4f} in {crs_label(crs)} but the "
        f"buildings lie at lon {bw:.4f}–{be:.4f}, lat {bs:.4f}–{bn:.4f}: no overlap, so its "
        f"CRS is wrong (set [{what}] crs) or it is another area",
        path=path,
    )


def check_rasters_overlap(
    paths: list[Path],
    crs: str | None,
    default_crs: str | None,
    extent: tuple[float, float, float, float] | list[float] | None,
    *,
    what: str,
    kind: str,
) -> list[str]:
    """Check that a set of rasters lands where the buildings are.

    Files away from the buildings are normal in a mosaic (the hills around a city),
    so only a set where *no* file touches the buildings' extent is refused.

    Parameters
    ----------
    paths : list of Path
    crs, default_crs : str or None
        The section's ``crs`` and ``[city] crs``.
    extent : (west, south, east, north) or None
        The buildings' lon/lat extent (None: nothing to check against).
    what, kind : str
        Section name and raster kind for messages.

    Returns
    -------
    list of str
        Warnings for the files that do not touch the buildings.

    Raises
    ------
    CRSError
        When no file overlaps (see :func:`check_overlap`); CRS errors of the files.
    """
    if extent is None:
        return []
    found: list[tuple[Path, str, tuple[float, float, float, float]]] = []
    for path in paths:
        path = Path(path)
        try:
            with rasterio.open(path) as ds:
                resolved, bounds = resolve_raster_crs(
                    ds, path, crs, default_crs, what=what, kind=kind
                )
        except RasterioIOError as exc:
            raise DatasetIOError(f"cannot open {kind} ({exc})", path=path) from exc
        found.append((path, resolved.crs, bounds))
    return check_files_overlap(found, extent, what=what, kind=kind)


def check_files_overlap(
    files: list[tuple[Path, str, tuple[float, float, float, float]]],
    extent: tuple[float, float, float, float] | list[float] | None,
    *,
    what: str,
    kind: str,
) -> list[str]:
    """:func:`check_rasters_overlap` for files whose CRS and lon/lat bounds are known.

    ``files`` holds per raster file its path, the CRS it was read in and its lon/lat
    bounds (west, south, east, north); the rest is as for :func:`check_rasters_overlap`.
    """
    if extent is None:
        return []
    errors: list[CRSError] = []
    for path, rcrs, bounds in files:
        try:
            check_overlap(bounds, extent, kind=kind, what=what, path=path, crs=rcrs)
        except CRSError as exc:
            errors.append(exc)
    if files and len(errors) == len(files):
        raise errors[0]
    return [str(e) for e in errors]


def bilinear(
    data: np.ndarray, valid: np.ndarray | None, col: np.ndarray, row: np.ndarray
) -> np.ndarray:
    """Bilinear interpolation at fractional pixel-centre coordinates.

    Parameters
    ----------
    data : ndarray (rows, cols)
        Values.
    valid : ndarray of bool or None
        Mask of usable values (None: all usable).
    col, row : ndarray
        Fractional coordinates where ``(0, 0)`` is the centre of the first pixel.
        They must lie inside ``[-0.5, cols - 0.5] × [-0.5, rows - 0.5]``; values in
        the outer half pixel are clamped to the edge pixels.

    Returns
    -------
    ndarray of float64
        NaN where the nearest pixel is not valid; elsewhere the bilinear value over
        the valid neighbours (weights renormalised).
    """
    rows, cols = data.shape
    c = np.clip(np.asarray(col, dtype=np.float64), 0.0, cols - 1.0)
    r = np.clip(np.asarray(row, dtype=np.float64), 0.0, rows - 1.0)
    c0 = np.minimum(np.floor(c).astype(np.intp), max(cols - 2, 0))
    r0 = np.minimum(np.floor(r).astype(np.intp), max(rows - 2, 0))
    c1 = np.minimum(c0 + 1, cols - 1)
    r1 = np.minimum(r0 + 1, rows - 1)
    fc = c - c0
    fr = r - r0
    v00 = data[r0, c0].astype(np.float64)
    v01 = data[r0, c1].astype(np.float64)
    v10 = data[r1, c0].astype(np.float64)
    v11 = data[r1, c1].astype(np.float64)
    w00 = (1 - fc) * (1 - fr)
    w01 = fc * (1 - fr)
    w10 = (1 - fc) * fr
    w11 = fc * fr
    if valid is None:
        return v00 * w00 + v01 * w01 + v10 * w10 + v11 * w11
    m00 = valid[r0, c0]
    m01 = valid[r0, c1]
    m10 = valid[r1, c0]
    m11 = valid[r1, c1]
    wsum = w00 * m00 + w01 * m01 + w10 * m10 + w11 * m11
    vsum = (
        np.where(m00, v00 * w00, 0.0)
        + np.where(m01, v01 * w01, 0.0)
        + np.where(m10, v10 * w10, 0.0)
        + np.where(m11, v11 * w11, 0.0)
    )
    rn = np.rint(r).astype(np.intp)
    cn = np.rint(c).astype(np.intp)
    nearest_ok = valid[rn, cn]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = vsum / wsum
    out[~nearest_ok | (wsum <= 0)] = np.nan
    return out


@dataclass
class _DemFile:
    path: Path
    crs: str
    transform: rasterio.Affine
    width: int
    height: int
    nodata: float | None
    is_geographic: bool
    bounds_lonlat: tuple[float, float, float, float]
    res_m: float


class DemMosaic:
    """One or several DEM GeoTIFFs seen as a single height field.

    Parameters
    ----------
    paths : list of Path
        DEM files (band 1 is read). Later files fill the holes of earlier ones.
    crs : str, optional
        The declared CRS of the files (``[terrain] crs``): used for files that carry
        none, and must agree with the CRS a file carries (see
        :func:`cim.crs.resolve_crs`).
    default_crs : str, optional
        CRS for files that carry none (the project's ``[city] crs``); does not
        override a CRS a file carries.
    what : str
        The city.toml section, for messages.
    fill_nodata : bool
        Fill nodata pixels from the surrounding data (GDAL FillNodata, inverse
        distance, up to :data:`FILL_DISTANCE` pixels) before sampling, so that voids
        do not become pits. Off by default: :meth:`sample` then returns NaN at
        nodata. Applies to files read whole (up to :data:`WHOLE_READ_PIXELS`).

    Raises
    ------
    DatasetIOError
        A file cannot be opened.
    CRSError
        A file has no CRS and none is given, or the CRS is unknown.
    InputDataError
        No file is given.

    Notes
    -----
    The object can be pickled (to worker processes): open datasets and cached arrays
    are dropped and re-read on first use.
    """

    def __init__(
        self,
        paths: list[Path] | list[str],
        crs: str | None = None,
        *,
        default_crs: str | None = None,
        fill_nodata: bool = False,
        what: str = "terrain",
    ) -> None:
        if not paths:
            raise InputDataError("no DEM file given")
        self.paths = [Path(p) for p in paths]
        self.crs_override = crs
        self.fill_nodata = fill_nodata
        self.files: list[_DemFile] = [self._describe(p, crs, default_crs, what) for p in self.paths]
        self._cache: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}

    # -- setup ------------------------------------------------------------------
    @staticmethod
    def _describe(path: Path, crs: str | None, default_crs: str | None, what: str) -> _DemFile:
        if path.is_file() and path.stat().st_size == 0:
            raise InputDataError("empty file (0 bytes)", path=path)
        try:
            with rasterio.open(path) as ds:
                resolved, bounds = resolve_raster_crs(
                    ds, path, crs, default_crs, what=what, kind="DEM"
                )
                crs_str = resolved.crs
                transform = ds.transform
                if transform.b != 0 or transform.d != 0:
                    raise InputDataError("rotated DEM rasters are not supported", path=path)
                width, height, nodata = ds.width, ds.height, ds.nodata
        except RasterioIOError as exc:
            raise DatasetIOError(f"cannot open DEM ({exc})", path=path) from exc
        pcrs = parse_crs(crs_str)
        geographic = bool(pcrs.is_geographic)
        if geographic:
            lat_c = math.radians((bounds[1] + bounds[3]) / 2)
            res_m = min(abs(transform.a) * math.cos(lat_c), abs(transform.e)) * 111_320.0
        else:
            res_m = min(abs(transform.a), abs(transform.e)) * float(
                pcrs.axis_info[0].unit_conversion_factor if pcrs.axis_info else 1.0
            )
        return _DemFile(path, crs_str, transform, width, height, nodata, geographic, bounds, res_m)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state

    # -- metadata -----------------------------------------------------------------
    def bounds_lonlat(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees covering all files."""
        b = np.array([f.bounds_lonlat for f in self.files])
        return (
            float(b[:, 0].min()),
            float(b[:, 1].min()),
            float(b[:, 2].max()),
            float(b[:, 3].max()),
        )

    def file_bounds_lonlat(self) -> list[tuple[float, float, float, float]]:
        """(west, south, east, north) of each file, in degrees."""
        return [f.bounds_lonlat for f in self.files]

    def resolution_m(self) -> float:
        """Finest ground resolution of the files, in metres (approximate)."""
        return min(f.res_m for f in self.files)

    # -- reading ------------------------------------------------------------------
    def _array(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        if i not in self._cache:
            f = self.files[i]
            try:
                with rasterio.open(f.path) as ds:
                    arr = ds.read(1, masked=False)
                    mask = None
                    if f.nodata is not None:
                        mask = arr != f.nodata
                        if np.issubdtype(arr.dtype, np.floating):
                            mask &= np.isfinite(arr)
                    elif np.issubdtype(arr.dtype, np.floating):
                        fin = np.isfinite(arr)
                        mask = None if fin.all() else fin
            except RasterioIOError as exc:
                raise DatasetIOError(f"cannot read DEM ({exc})", path=f.path) from exc
            if self.fill_nodata and mask is not None and not mask.all() and mask.any():
                filled = fillnodata(
                    np.where(mask, arr, 0).astype(np.float32),
                    mask=mask.astype(np.uint8),
                    max_search_distance=FILL_DISTANCE,
                    smoothing_iterations=0,
                )
                # pixels FillNodata could not reach keep the 0 we gave them: masked
                reach = fillnodata(
                    mask.astype(np.float32),
                    mask=mask.astype(np.uint8),
                    max_search_distance=FILL_DISTANCE,
                    smoothing_iterations=0,
                )
                before = int((~mask).sum())
                mask = reach > 0
                log.debug(
                    "%s: filled %d of %d nodata pixels", f.path, before - int((~mask).sum()), before
                )
                if mask.all():
                    mask = None
                arr = filled
            self._cache[i] = (arr, mask)
        return self._cache[i]

    def _window(
        self, i: int, col: np.ndarray, row: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None, int, int]:
        """Pixel data around the given fractional coordinates: (data, valid, c_off, r_off)."""
        f = self.files[i]
        if f.width * f.height <= WHOLE_READ_PIXELS:
            arr, mask = self._array(i)
            return arr, mask, 0, 0
        c0 = max(int(np.floor(col.min())) - 1, 0)
        r0 = max(int(np.floor(row.min())) - 1, 0)
        c1 = min(int(np.ceil(col.max())) + 2, f.width)
        r1 = min(int(np.ceil(row.max())) + 2, f.height)
        try:
            with rasterio.open(f.path) as ds:
                arr = ds.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))
        except RasterioIOError as exc:
            raise DatasetIOError(f"cannot read DEM ({exc})", path=f.path) from exc
        mask = None
        if f.nodata is not None:
            mask = arr != f.nodata
        if np.issubdtype(arr.dtype, np.floating):
            fin = np.isfinite(arr)
            mask = fin if mask is None else mask & fin
        return arr, mask, c0, r0

    def _sample_file(self, i: int, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        f = self.files[i]
        out = np.full(lon.shape, np.nan)
        w, s, e, n = f.bounds_lonlat
        pre = (lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)
        if not pre.any():
            return out
        x, y = _from_lonlat(lon[pre], lat[pre], f.crs)
        t = f.transform
        col = (x - t.c) / t.a - 0.5
        row = (y - t.f) / t.e - 0.5
        inside = (
            np.isfinite(col)
            & np.isfinite(row)
            & (col >= -0.5)
            & (col <= f.width - 0.5)
            & (row >= -0.5)
            & (row <= f.height - 0.5)
        )
        if not inside.any():
            return out
        ci, ri = col[inside], row[inside]
        data, valid, c_off, r_off = self._window(i, ci, ri)
        vals = bilinear(data, valid, ci - c_off, ri - r_off)
        idx = np.flatnonzero(pre)[inside]
        out[idx] = vals
        return out

    def sample(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Heights (as stored, usually orthometric) at lon/lat points.

        Parameters
        ----------
        lon, lat : array_like
            WGS84 degrees, any (equal) shape.

        Returns
        -------
        ndarray of float64
            Same shape as ``lon``; NaN outside every file or at nodata.
        """
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        shape = np.broadcast_shapes(lon.shape, lat.shape)
        lon = np.broadcast_to(lon, shape).ravel()
        lat = np.broadcast_to(lat, shape).ravel()
        out = np.full(lon.shape, np.nan)
        for i in range(len(self.files)):
            todo = np.isnan(out)
            if not todo.any():
                break
            vals = self._sample_file(i, lon[todo], lat[todo])
            out[todo] = vals
        return out.reshape(shape)

    def read_lonlat_grid(
        self, west: float, south: float, east: float, north: float, width: int, height: int
    ) -> np.ndarray:
        """Heights on a regular lon/lat grid of sample points, corners included.

        Parameters
        ----------
        west, south, east, north : float
            Grid extent in degrees. The first sample is at (west, north), the last at
            (east, south): point spacing is ``(east - west) / (width - 1)``.
        width, height : int
            Number of samples along lon and lat (≥ 2).

        Returns
        -------
        ndarray of float32, shape (height, width)
            Row 0 is the north edge; NaN outside the DEM or at nodata.
        """
        lons = np.linspace(west, east, width)
        lats = np.linspace(north, south, height)
        lon, lat = np.meshgrid(lons, lats)
        return self.sample(lon, lat).astype(np.float32)


@lru_cache(maxsize=64)
def _is_lonlat(crs: str) -> bool:
    """Whether ``crs`` is WGS84 or CGCS2000 geographic (treated as identical)."""
    c = parse_crs(crs)
    return bool(c.equals(_WGS84) or c.equals(CRS.from_epsg(4490)))


def _from_lonlat(lon: np.ndarray, lat: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    if _is_lonlat(crs):
        return lon, lat
    x, y = get_transformer("EPSG:4326", crs).transform(lon, lat)
    return np.asarray(x), np.asarray(y)
