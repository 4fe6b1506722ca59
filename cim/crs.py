"""One way into coordinate reference systems.

- :func:`get_transformer` is a cached pyproj transformer factory with
  ``always_xy=True``: x/lon first everywhere.
- GCJ-02 ("火星坐标", used by Chinese web maps) and BD-09 (Baidu) are not known to
  PROJ; :func:`to_lonlat` converts them to WGS84 itself (see :func:`gcj02_to_wgs84`).
- :func:`lonlat_to_enu` and :func:`enu_to_ecef_matrix` place geometry in a local
  east-north-up frame so float32 keeps centimetres inside 3D tiles.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError as ProjCRSError
from pyproj.exceptions import ProjError

from cim.errors import CRSError

#: Names accepted for the two Chinese obfuscated systems (case-insensitive).
GCJ02_NAMES = frozenset({"gcj-02", "gcj02", "gcj", "mars"})
BD09_NAMES = frozenset({"bd-09", "bd09", "baidu"})

# WGS84 ellipsoid
WGS84_A = 6378137.0
WGS84_F = 1.0 / 298.257223563
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)


def is_gcj02(name: str | None) -> bool:
    """Whether ``name`` designates GCJ-02."""
    return name is not None and name.strip().lower() in GCJ02_NAMES


def is_bd09(name: str | None) -> bool:
    """Whether ``name`` designates BD-09."""
    return name is not None and name.strip().lower() in BD09_NAMES


@lru_cache(maxsize=128)
def parse_crs(value: str) -> CRS:
    """A pyproj CRS from any definition pyproj knows (EPSG code, WKT, PROJ string).

    Raises
    ------
    CRSError
        When pyproj does not know ``value``.
    """
    try:
        return CRS.from_user_input(value)
    except ProjCRSError as exc:
        raise CRSError(f"unknown CRS {value!r} ({exc})") from exc


@lru_cache(maxsize=128)
def get_transformer(src: str, dst: str = "EPSG:4326") -> Transformer:
    """Cached transformer from ``src`` to ``dst`` with x/lon first.

    Parameters
    ----------
    src, dst : str
        CRS definitions pyproj knows.
    """
    return Transformer.from_crs(parse_crs(src), parse_crs(dst), always_xy=True)


def to_lonlat(x: np.ndarray, y: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """Convert coordinates in ``crs`` to WGS84 longitude/latitude (degrees).

    ``crs`` may be any definition pyproj knows, or ``"GCJ-02"`` / ``"BD-09"``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if is_gcj02(crs):
        return gcj02_to_wgs84(x, y)
    if is_bd09(crs):
        return gcj02_to_wgs84(*bd09_to_gcj02(x, y))
    if parse_crs(crs).equals(CRS.from_epsg(4326)) or parse_crs(crs).equals(CRS.from_epsg(4490)):
        # CGCS2000 and WGS84 agree to a few centimetres: no transformation applies.
        return x.copy(), y.copy()
    lon, lat = get_transformer(crs).transform(x, y)
    return np.asarray(lon), np.asarray(lat)


# --- GCJ-02 / BD-09 ----------------------------------------------------------------
# The GCJ-02 forward formula below is the widely published reimplementation of the
# official obfuscation (Krasovsky ellipsoid constants). Inverse conversions are done
# by fixed-point iteration on the forward formula and agree with it to < 1e-9 degree
# (0.1 mm); the forward formula itself matches official GCJ-02 to about 1 m.
_GCJ_A = 6378245.0
_GCJ_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0


def in_china(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Rough mainland-China box where GCJ-02 offsets apply (outside: none)."""
    return (lon > 72.004) & (lon < 137.8347) & (lat > 0.8293) & (lat < 55.8271)


def _gcj_delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = lon - 105.0
    y = lat - 35.0
    sx = np.sqrt(np.abs(x))
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sx
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sx
    common = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlat += common
    dlon += common
    dlat += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    dlon += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    radlat = lat / 180.0 * np.pi
    magic = 1.0 - _GCJ_EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_GCJ_A * (1.0 - _GCJ_EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_GCJ_A / sqrtmagic * np.cos(radlat) * np.pi)
    inside = in_china(lon, lat)
    return np.where(inside, dlon, 0.0), np.where(inside, dlat, 0.0)


def wgs84_to_gcj02(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 → GCJ-02 (degrees); identity outside China."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    dlon, dlat = _gcj_delta(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 → WGS84 (degrees) by fixed-point iteration of the forward formula.

    Converges to < 1e-9 degree of the exact inverse in 3–6 iterations (the offset
    field changes slowly: its derivative is ~1e-5). Each point iterates until its own
    step is below 1e-10 degree, so its result does not depend on the other points
    converted with it (the repair converts a footprint in one chunk or another).
    """
    glon = np.asarray(lon, dtype=np.float64)
    glat = np.asarray(lat, dtype=np.float64)
    wlon, wlat = glon.copy(), glat.copy()
    active = np.arange(glon.size)
    flat_lon, flat_lat = wlon.reshape(-1), wlat.reshape(-1)
    given_lon, given_lat = glon.reshape(-1), glat.reshape(-1)
    for _ in range(10):
        flon, flat = wgs84_to_gcj02(flat_lon[active], flat_lat[active])
        elon, elat = flon - given_lon[active], flat - given_lat[active]
        flat_lon[active] -= elon
        flat_lat[active] -= elat
        active = active[~((np.abs(elon) < 1e-10) & (np.abs(elat) < 1e-10))]
        if not len(active):
            break
    return wlon, wlat


def gcj02_to_bd09(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 → BD-09 (degrees), Baidu's published forward formula."""
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def bd09_to_gcj02(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BD-09 → GCJ-02 (degrees), exact inverse of :func:`gcj02_to_bd09` by iteration."""
    blon = np.asarray(lon, dtype=np.float64)
    blat = np.asarray(lat, dtype=np.float64)
    glon, glat = blon - 0.0065, blat - 0.006
    for _ in range(10):
        flon, flat = gcj02_to_bd09(glon, glat)
        elon, elat = flon - blon, flat - blat
        glon, glat = glon - elon, glat - elat
        if np.all(np.abs(elon) < 1e-11) and np.all(np.abs(elat) < 1e-11):
            break
    return glon, glat


# --- ECEF and local east-north-up frames --------------------------------------------


def geodetic_to_ecef(
    lon: np.ndarray, lat: np.ndarray, h: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WGS84 geodetic (degrees, metres) → ECEF (EPSG:4978) metres, vectorised."""
    return _ecef(_trig(lon, lat), h)


def _trig(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, ...]:
    """(cos λ, sin λ, cos φ, sin φ) of lon/lat degrees: computed once, shared by the ECEF
    position and the ellipsoid normal of the same points."""
    lam, phi = np.radians(lon), np.radians(lat)
    return np.cos(lam), np.sin(lam), np.cos(phi), np.sin(phi)


def _ecef(trig: tuple[np.ndarray, ...], h: np.ndarray) -> tuple[np.ndarray, ...]:
    cos_lam, sin_lam, cos_phi, sin_phi = trig
    n = WGS84_A / np.sqrt(1.0 - WGS84_E2 * sin_phi * sin_phi)
    x = (n + h) * cos_phi * cos_lam
    y = (n + h) * cos_phi * sin_lam
    z = (n * (1.0 - WGS84_E2) + h) * sin_phi
    return x, y, z


def enu_to_ecef_matrix(lon0: float, lat0: float, h0: float) -> np.ndarray:
    """4×4 column-major-ready matrix taking local ENU metres at (lon0, lat0, h0) to ECEF.

    Returns a row-major numpy matrix ``M`` with ``ecef = M @ [e, n, u, 1]``; use
    ``M.T.ravel()`` for glTF / 3D Tiles column-major arrays.
    """
    lam, phi = math.radians(lon0), math.radians(lat0)
    east = np.array([-math.sin(lam), math.cos(lam), 0.0])
    north = np.array(
        [-math.sin(phi) * math.cos(lam), -math.sin(phi) * math.sin(lam), math.cos(phi)]
    )
    up = np.array([math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi)])
    ox, oy, oz = geodetic_to_ecef(np.array(lon0), np.array(lat0), np.array(h0))
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2] = east, north, up
    m[:3, 3] = [float(ox), float(oy), float(oz)]
    return m


def lonlat_to_enu(lon: np.ndarray, lat: np.ndarray, h: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """WGS84 geodetic → local ENU metres in ``frame`` (from :func:`enu_to_ecef_matrix`).

    The conversion is exact (ECEF then a rigid rotation), so Earth curvature across
    a city is kept: far from the centre, "up" bends away from the local vertical.

    Returns
    -------
    ndarray of shape (n, 3), float64
    """
    return _enu(_ecef(_trig(lon, lat), h), frame)


def up_vectors(lon: np.ndarray, lat: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Ellipsoid normals ("up") at lon/lat, expressed in the ENU ``frame``; (n, 3)."""
    return _up(_trig(lon, lat), frame)


def lonlat_to_enu_up(
    lon: np.ndarray, lat: np.ndarray, h: np.ndarray, frame: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`lonlat_to_enu` and :func:`up_vectors` of the same points, in one pass.

    The sines and cosines of lon/lat are computed once for both; the results are
    exactly those of the two functions.

    Returns
    -------
    (ndarray, ndarray)
        ENU positions and unit up vectors, both (n, 3) float64.
    """
    trig = _trig(lon, lat)
    return _enu(_ecef(trig, h), frame), _up(trig, frame)


def _enu(ecef: tuple[np.ndarray, ...], frame: np.ndarray) -> np.ndarray:
    x, y, z = ecef
    d = np.stack([x - frame[0, 3], y - frame[1, 3], z - frame[2, 3]], axis=1)
    return d @ frame[:3, :3]


def _up(trig: tuple[np.ndarray, ...], frame: np.ndarray) -> np.ndarray:
    cos_lam, sin_lam, cos_phi, sin_phi = trig
    normal = np.stack([cos_phi * cos_lam, cos_phi * sin_lam, sin_phi], axis=1)
    return normal @ frame[:3, :3]


# --- one CRS policy for every reader --------------------------------------------------
#: Projected coordinates may lie this far (metres) outside the CRS's area of use: cities
#: at a zone edge spill over, but lon/lat degrees or a dropped zone prefix do not fit.
AREA_MARGIN_M = 100_000.0
#: Two CRS definitions are the same for the toolkit when they place the data's points
#: within this distance (metres) of each other (WGS84 vs CGCS2000, ESRI vs EPSG WKT).
SAME_CRS_M = 1.0


@dataclass(frozen=True)
class ResolvedCRS:
    """The CRS chosen for one input, and how well the coordinates fit it.

    Attributes
    ----------
    crs : str
        Definition to read the coordinates in (pyproj input, or ``"GCJ-02"``/``"BD-09"``).
    source : str
        ``"file"`` (the file's own), ``"declared"`` (the section's ``crs``), ``"city"``
        (``[city] crs``) or ``"format"`` (the format's default, e.g. RFC 7946 WGS84).
    fits : ndarray of bool
        Per sample point: whether it can belong to ``crs`` (finite, on the Earth, within
        the CRS's area of use plus :data:`AREA_MARGIN_M`).
    note : str or None
        Something the user should see in the report (never a silent choice).
    """

    crs: str
    source: str
    fits: np.ndarray
    note: str | None = None

    def to_lonlat(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates in :attr:`crs` → WGS84 lon/lat (NaN where PROJ cannot convert)."""
        return safe_to_lonlat(x, y, self.crs)


def is_special(name: str | None) -> bool:
    """Whether ``name`` is GCJ-02 or BD-09 (systems PROJ does not know)."""
    return is_gcj02(name) or is_bd09(name)


def safe_to_lonlat(x: np.ndarray, y: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`to_lonlat` that never raises for bad points: they come back as NaN.

    PROJ returns ``inf`` (or raises for a whole array) for points it cannot project;
    a point at x = 1e12 must cost that point, not the file.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(all="ignore"):
        try:
            lon, lat = to_lonlat(x, y, crs)
        except ProjError:
            lon, lat = np.full(x.shape, np.nan), np.full(x.shape, np.nan)
            for i in range(len(x)):  # only when the vectorised call failed
                try:
                    one = to_lonlat(x[i : i + 1], y[i : i + 1], crs)
                    lon[i], lat[i] = float(one[0][0]), float(one[1][0])
                except ProjError:
                    continue
    lon, lat = np.array(lon, dtype=np.float64), np.array(lat, dtype=np.float64)
    bad = ~(np.isfinite(lon) & np.isfinite(lat)) | (np.abs(lon) > 180.0) | (np.abs(lat) > 90.0)
    lon[bad] = np.nan
    lat[bad] = np.nan
    return lon, lat


@lru_cache(maxsize=128)
def _projected_area(crs: str) -> tuple[float, float, float, float] | None:
    """The CRS's area of use in its own coordinates, widened by :data:`AREA_MARGIN_M`."""
    pcrs = parse_crs(crs)
    if pcrs.is_geographic or pcrs.area_of_use is None:
        return None
    unit = pcrs.axis_info[0].unit_conversion_factor if pcrs.axis_info else 1.0
    try:
        b = get_transformer("EPSG:4326", crs).transform_bounds(
            *pcrs.area_of_use.bounds, densify_pts=21
        )
    except ProjError:
        return None
    if not np.all(np.isfinite(b)):
        return None
    m = AREA_MARGIN_M / (unit or 1.0)
    return (b[0] - m, b[1] - m, b[2] + m, b[3] + m)


def is_geographic(crs: str) -> bool:
    """Whether coordinates in ``crs`` are degrees (GCJ-02 and BD-09 are)."""
    return is_special(crs) or bool(parse_crs(crs).is_geographic)


def coordinates_fit(x: np.ndarray, y: np.ndarray, crs: str) -> np.ndarray:
    """Per point: whether (x, y) can be a coordinate in ``crs``.

    Degrees must lie in [-180, 180] × [-90, 90]; projected coordinates must convert
    to the Earth and lie within the CRS's area of use widened by
    :data:`AREA_MARGIN_M` (when the CRS has one: local grids have none).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    finite = np.isfinite(x) & np.isfinite(y)
    if is_geographic(crs):
        return finite & (np.abs(x) <= 180.0) & (np.abs(y) <= 90.0)
    area = _projected_area(crs)
    if area is not None:
        # inside the (widened) area of use a projection converts: no PROJ call needed,
        # which keeps this cheap for a million features
        return finite & (x >= area[0]) & (x <= area[2]) & (y >= area[1]) & (y <= area[3])
    lon, _ = safe_to_lonlat(np.where(finite, x, 0.0), np.where(finite, y, 0.0), crs)
    return finite & np.isfinite(lon)


def looks_like_lonlat(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per point: whether (x, y) is within the range of longitude/latitude degrees."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return np.isfinite(x) & np.isfinite(y) & (np.abs(x) <= 180.0) & (np.abs(y) <= 90.0)


def crs_hint(x: np.ndarray, y: np.ndarray) -> str:
    """What the coordinates look like, as a hint for an error message ('' if nothing)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return ""
    x, y = x[ok], y[ok]
    if looks_like_lonlat(x, y).all():
        return "the coordinates look like longitude/latitude: EPSG:4326 or EPSG:4490"
    zone = np.floor(x / 1e6)
    if np.all((x > 1e7) & (x < 1e8)) and np.all(zone == zone[0]):
        z = int(zone[0])
        if 13 <= z <= 23:
            return (
                f"x ≈ {x[0]:.0f} carries Gauss-Krüger zone prefix {z}: "
                f"EPSG:{4491 + z - 13} (CGCS2000 6-degree zone {z})"
            )
        if 25 <= z <= 45:
            return (
                f"x ≈ {x[0]:.0f} carries Gauss-Krüger zone prefix {z}: "
                f"EPSG:{4513 + z - 25} (CGCS2000 3-degree zone {z})"
            )
        return f"x ≈ {x[0]:.0f} carries a zone prefix {z}: a Gauss-Krüger zone CRS"
    return ""


def crs_label(crs: str) -> str:
    """Short name of a CRS for messages ('EPSG:4547' rather than a page of WKT).

    Parameters
    ----------
    crs : str
        Any definition pyproj knows, or GCJ-02 / BD-09.
    """
    if is_special(crs):
        return crs
    pcrs = parse_crs(crs)
    code = pcrs.to_epsg(min_confidence=70)
    if code:
        return f"EPSG:{code}"
    return crs if len(crs) < 60 else pcrs.name


def _unit(crs: str) -> str:
    return "degrees" if is_geographic(crs) else "metres"


def same_crs(a: str, b: str, x: np.ndarray, y: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` place the points (x, y) within :data:`SAME_CRS_M`.

    Numeric, not by name: an ESRI WKT and its EPSG code, or WGS84 and CGCS2000
    degrees, are the same for the toolkit; GCJ-02 and WGS84 are not.
    """
    if is_special(a) or is_special(b):
        return (is_gcj02(a) and is_gcj02(b)) or (is_bd09(a) and is_bd09(b))
    if parse_crs(a) == parse_crs(b):
        return True
    ok = coordinates_fit(x, y, a) & coordinates_fit(x, y, b)
    if not ok.any():
        return False
    la, pa_ = safe_to_lonlat(np.asarray(x)[ok][:256], np.asarray(y)[ok][:256], a)
    lb, pb = safe_to_lonlat(np.asarray(x)[ok][:256], np.asarray(y)[ok][:256], b)
    d = np.hypot((la - lb) * np.cos(np.radians(pa_)), pa_ - pb) * 111_320.0
    return bool(np.all(d < SAME_CRS_M))


def resolve_crs(
    file_crs: str | None,
    declared: str | None,
    sample_x: np.ndarray,
    sample_y: np.ndarray,
    *,
    what: str,
    path: str | Path | None,
    default: str | None = None,
    implied: str | None = None,
    items: str = "coordinates",
) -> ResolvedCRS:
    """Decide the CRS of one input: the single policy every reader follows.

    Rules (the README's "CRS rules" table):

    1. GCJ-02 / BD-09 declared: used when the file carries no CRS or a lon/lat one
       (files never carry these two); a projected file CRS contradicts it.
    2. A file CRS and a section ``crs`` that place the points differently: the
       coordinates decide. They fit only the declared one → declared, with a note
       (the file's CRS is wrong); otherwise → :class:`CRSError` naming both.
    3. A file CRS and nothing declared in the section → the file's (``[city] crs``
       is only the default for files that carry none).
    4. No file CRS → the section's ``crs``, else ``[city] crs``, else the format's
       own default (``implied``: RFC 7946 WGS84 for GeoJSON), else
       :class:`CRSError` with a hint from the coordinates. ``[city] crs`` gives way
       to the format's default when the coordinates fit only the latter (a lon/lat
       GeoJSON in a project whose default is Gauss-Krüger), with a note.
    5. The chosen CRS is checked against the coordinates: when no sample point fits
       it, or every point looks like lon/lat degrees in a projected CRS with an area
       of use → :class:`CRSError` with the evidence. Points that do not fit are
       reported in :attr:`ResolvedCRS.fits` for the caller to skip.

    Parameters
    ----------
    file_crs : str or None
        The CRS the file itself carries (.prj, GeoPackage, GeoTIFF, GeoJSON ``crs``).
    declared : str or None
        The section's ``crs`` key in city.toml.
    sample_x, sample_y : array_like, shape (n,) or (n, k)
        Coordinates of the data in the file's units. Two-dimensional: one row per
        item (e.g. a feature's two bounds corners); an item fits when all its
        points do.
    what : str
        The city.toml section, for messages (``"buildings"``).
    path : str or Path or None
        The file, for messages.
    default : str, optional
        ``[city] crs``.
    implied : str, optional
        The format's default CRS when the file says nothing (GeoJSON, GeoParquet).
    items : str
        What a row of the sample is, for messages (``"features"``).

    Returns
    -------
    ResolvedCRS

    Raises
    ------
    CRSError
        Unknown CRS, no CRS at all, a contradiction, or coordinates that cannot
        belong to the CRS; one line naming the file and the evidence.
    """
    x2 = np.asarray(sample_x, dtype=np.float64)
    y2 = np.asarray(sample_y, dtype=np.float64)
    shape = x2.shape if x2.ndim == 2 else (x2.size, 1)

    @cache
    def flat() -> tuple[np.ndarray, np.ndarray]:
        # every point, made once and only where a rule needs them (a copy of columns of
        # the callers' bounds, 0.3 GB at ten million rows: the common rules do not)
        return x2.ravel(), y2.ravel()

    for value in (file_crs, declared, default, implied):
        if value is not None and not is_special(value):
            parse_crs(value)
    note = None
    if declared and is_special(declared):
        if file_crs and not is_geographic(file_crs):
            raise CRSError(
                f"[{what}] crs = {declared!r} (lon/lat) contradicts the file's own CRS "
                f"{crs_label(file_crs)} ({_unit(file_crs)}); remove [{what}] crs or fix the file",
                path=path,
            )
        crs, source = declared, "declared"
    elif file_crs and declared and not same_crs(file_crs, declared, *flat()):
        crs, source, note = _contradiction(file_crs, declared, *flat(), what, path)
    elif file_crs:
        crs, source = file_crs, "file"
    elif declared:
        crs, source = declared, "declared"
    elif default and implied and not _plausible(*flat(), default) and _plausible(*flat(), implied):
        # [city] crs is a projected default but this GeoJSON holds RFC 7946 lon/lat
        crs, source = implied, "format"
        note = f"coordinates are lon/lat, not [city] crs {crs_label(default)}: read as {implied}"
    elif default:
        crs, source = default, "city"
    elif implied:
        crs, source = implied, "format"
    else:
        hint = crs_hint(*flat())
        raise CRSError(
            f"the file carries no CRS; set [{what}] crs (or [city] crs) in city.toml, "
            f'e.g. "EPSG:4547"' + (f" ({hint})" if hint else ""),
            path=path,
        )
    assert crs is not None
    fits, finite, lonlat = _row_evidence(x2.reshape(shape), y2.reshape(shape), crs)
    _check_evidence(crs, source, fits, finite, lonlat, flat, what, path, items)
    return ResolvedCRS(crs, source, fits, note)


#: Rows of a sample whose evidence :func:`_row_evidence` takes at a time: the
#: temporaries of a block, not of the whole sample (0.5 GB at ten million bounds).
EVIDENCE_ROWS = 1 << 20


def _row_evidence(
    x: np.ndarray, y: np.ndarray, crs: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of the (n, k) samples ``x``, ``y``: whether all its points fit ``crs``
    (:func:`coordinates_fit`), are finite, and look like lon/lat degrees."""
    n = len(x)
    fits, finite, lonlat = (np.empty(n, dtype=bool) for _ in range(3))
    for start in range(0, n, EVIDENCE_ROWS):
        part = slice(start, start + EVIDENCE_ROWS)
        xs, ys = x[part], y[part]
        bx, by = xs.ravel(), ys.ravel()
        fits[part] = coordinates_fit(bx, by, crs).reshape(xs.shape).all(axis=1)
        finite[part] = (np.isfinite(bx) & np.isfinite(by)).reshape(xs.shape).all(axis=1)
        lonlat[part] = looks_like_lonlat(bx, by).reshape(xs.shape).all(axis=1)
    return fits, finite, lonlat


def _plausible(x: np.ndarray, y: np.ndarray, crs: str) -> bool:
    """Whether coordinates could be in ``crs`` (some fit, not all lon/lat in metres)."""
    fits = coordinates_fit(x, y, crs)
    finite = np.isfinite(x) & np.isfinite(y)
    if not fits.any():
        return False
    lonlat = looks_like_lonlat(x, y)
    return not (not is_geographic(crs) and _projected_area(crs) and lonlat[finite].all())


def _contradiction(
    file_crs: str, declared: str, x: np.ndarray, y: np.ndarray, what: str, path: str | Path | None
) -> tuple[str, str, str]:
    fit_file = coordinates_fit(x, y, file_crs).mean() if len(x) else 0.0
    fit_declared = coordinates_fit(x, y, declared).mean() if len(x) else 0.0
    if fit_declared > 0.5 and fit_file == 0.0:
        note = (
            f"the file says {crs_label(file_crs)} but no coordinate fits it; "
            f"[{what}] crs = {crs_label(declared)} fits and is used"
        )
        return declared, "declared", note
    evidence = (
        "the coordinates fit both"
        if fit_file > 0 and fit_declared > 0
        else f"the coordinates fit {crs_label(file_crs)}"
        if fit_file > 0
        else "the coordinates fit neither"
    )
    raise CRSError(
        f"[{what}] crs = {crs_label(declared)} contradicts the file's own CRS "
        f"{crs_label(file_crs)} ({evidence}); remove [{what}] crs or fix the file",
        path=path,
    )


def _check_evidence(
    crs: str,
    source: str,
    fits: np.ndarray,
    finite: np.ndarray,
    lonlat: np.ndarray,
    xy: Callable[[], tuple[np.ndarray, np.ndarray]],
    what: str,
    path: str | Path | None,
    items: str,
) -> None:
    """Refuse a CRS that the coordinates as a whole cannot belong to."""
    if len(fits) == 0:
        return
    where = {
        "file": "the file's own CRS",
        "declared": f"[{what}] crs",
        "city": "[city] crs",
        "format": "the format's default CRS",
    }[source]
    projected_with_area = not is_geographic(crs) and _projected_area(crs) is not None
    if finite.any() and projected_with_area and lonlat[finite].all():
        raise CRSError(
            f"all {int(finite.sum())} {items} look like lon/lat degrees but "
            f'{crs_label(crs)} ({where}) is metres: set [{what}] crs = "EPSG:4490" '
            '(or "EPSG:4326", "GCJ-02")',
            path=path,
        )
    if fits.any():
        return
    x, y = xy()
    hint = crs_hint(x, y)
    if not hint and is_geographic(crs) and not looks_like_lonlat(x, y).any():
        hint = "the coordinates are not degrees (projected metres?)"
    ok = np.isfinite(x) & np.isfinite(y)
    at = f" (e.g. x = {x[ok][0]:.10g}, y = {y[ok][0]:.10g})" if ok.any() else ""
    raise CRSError(
        f"none of the {len(fits)} {items} fits {crs_label(crs)} ({where}, {_unit(crs)}){at}"
        + (f": {hint}" if hint else "; the CRS is wrong or the coordinates are damaged"),
        path=path,
    )
