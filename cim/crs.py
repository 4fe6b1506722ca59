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
from functools import lru_cache

import numpy as np
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError as ProjCRSError

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
    field changes slowly: its derivative is ~1e-5).
    """
    glon = np.asarray(lon, dtype=np.float64)
    glat = np.asarray(lat, dtype=np.float64)
    wlon, wlat = glon.copy(), glat.copy()
    for _ in range(10):
        flon, flat = wgs84_to_gcj02(wlon, wlat)
        elon, elat = flon - glon, flat - glat
        wlon = wlon - elon
        wlat = wlat - elat
        if np.all(np.abs(elon) < 1e-10) and np.all(np.abs(elat) < 1e-10):
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
    lam = np.radians(lon)
    phi = np.radians(lat)
    sin_phi = np.sin(phi)
    n = WGS84_A / np.sqrt(1.0 - WGS84_E2 * sin_phi * sin_phi)
    cos_phi = np.cos(phi)
    x = (n + h) * cos_phi * np.cos(lam)
    y = (n + h) * cos_phi * np.sin(lam)
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
    x, y, z = geodetic_to_ecef(lon, lat, h)
    d = np.stack([x - frame[0, 3], y - frame[1, 3], z - frame[2, 3]], axis=1)
    return d @ frame[:3, :3]


def up_vectors(lon: np.ndarray, lat: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Ellipsoid normals ("up") at lon/lat, expressed in the ENU ``frame``; (n, 3)."""
    lam, phi = np.radians(lon), np.radians(lat)
    cos_phi = np.cos(phi)
    normal = np.stack([cos_phi * np.cos(lam), cos_phi * np.sin(lam), np.sin(phi)], axis=1)
    return normal @ frame[:3, :3]
