"""Placement of anything live on the built city: the one rule sensors, events and
department layers share, so that no marker floats above or hides under the model.

A *location* is one of

- longitude/latitude[/height]: ``[lon, lat]``, ``[lon, lat, h]``, a GeoJSON Point
  (optionally inside a Feature) or ``{"lon": .., "lat": .., "h": ..}``;
- coordinates in any CRS the core knows, with a ``crs``: ``{"coordinates": [x, y],
  "crs": "EPSG:4547"}``, ``{"x": .., "y": .., "crs": "GCJ-02"}``, a GeoJSON Point with a
  ``crs`` member (``"EPSG:4547"`` or ``{"type": "name", "properties": {"name": ..}}``);
- an address string (or ``{"address": ...}``), found through the address index;
- a building id: ``{"building": "PC000048"}``, optionally with ``"floor": 3``.

Any dict may add ``"on"`` (``"roof"``, ``"facade"``, ``"floor"``, ``"ground"``) and
``"clamp": true``. The rules (:func:`place`):

==========================================  ==========================================
location                                    height ``h`` and ``how``
==========================================  ==========================================
point with a height, no ``clamp``           kept as given: ``"given"``
point inside a building footprint           the building's roof (base + height): ``"roof"``
point elsewhere, or ``on = "ground"``       the built terrain: ``"terrain"``
building (or address) without a floor       its roof: ``"roof"`` (``on`` may ask otherwise)
building and ``floor`` N                    the middle of floor N: ``"floor N"``
``on = "facade"``                           on the footprint's outline nearest the point,
                                            at mid-height (or floor N's middle): ``"facade"``
==========================================  ==========================================

Floors count from 1 (the ground floor); basements are -1, -2, ... The floor height of
a building is ``height / floors`` (fractional floor counts allowed; without a floor
count, :data:`DEFAULT_FLOOR_HEIGHT`), so **floor N's middle is at base + (N - 0.5) x
floor height** (basement -N: base - (N - 0.5) x floor height). A floor above
``ceil(floors)`` does not exist.

Heights are WGS84 ellipsoidal metres, as in the tiles and the terrain; a height given
with the coordinates is taken to be one too. Terrain heights come from
:meth:`cim.outputs.BuildOutputs.ground_heights`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from cim.crs import coordinates_fit, crs_hint, crs_label, parse_crs, safe_to_lonlat
from cim.crs import is_special as _is_special
from cim.errors import CRSError, InputDataError, NotFoundError
from cim.outputs import Building, BuildOutputs

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_FLOOR_HEIGHT",
    "MIN_ADDRESS_SCORE",
    "ON_VALUES",
    "Placement",
    "Placements",
    "floor_height",
    "place",
    "place_many",
]

#: metres per floor of a building that has no floor count
DEFAULT_FLOOR_HEIGHT = 3.0
#: an address query matches when its best candidate scores at least this (0-100)
MIN_ADDRESS_SCORE = 80.0
#: what ``on`` may ask for
ON_VALUES = ("roof", "facade", "floor", "ground")
#: deepest basement accepted (floor -10)
MAX_BASEMENT = 10
_KEYS = {
    "type",
    "coordinates",
    "geometry",
    "properties",
    "crs",
    "lon",
    "lat",
    "h",
    "x",
    "y",
    "z",
    "address",
    "building",
    "floor",
    "on",
    "clamp",
}
_WGS84 = ("EPSG:4326", "CRS84", "OGC:CRS84", "URN:OGC:DEF:CRS:OGC:1.3:CRS84", "WGS84")


@dataclass(frozen=True)
class Placement:
    """Where a location stands on the model.

    Attributes
    ----------
    lon, lat : float
        WGS84 degrees.
    h : float
        WGS84 ellipsoidal height, metres (as the tiles).
    how : str
        ``"terrain"``, ``"roof"``, ``"floor N"``, ``"facade"`` or ``"given"``.
    building_id : str or None
        The building it is on or in.
    address : str or None
        The address it was found by, or the building's address.
    floor : int or None
        The floor asked for.
    """

    lon: float
    lat: float
    h: float
    how: str
    building_id: str | None = None
    address: str | None = None
    floor: int | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "lon": self.lon,
            "lat": self.lat,
            "h": self.h,
            "how": self.how,
            "building_id": self.building_id,
            "address": self.address,
            "floor": self.floor,
        }

    def to_geojson(self) -> dict[str, Any]:
        """A GeoJSON Point ``[lon, lat, h]``."""
        return {"type": "Point", "coordinates": [self.lon, self.lat, self.h]}


@dataclass(frozen=True)
class Placements:
    """Many placed points (:func:`place_many`), as parallel arrays.

    Attributes
    ----------
    lon, lat, h : ndarray of float64
        WGS84 degrees and ellipsoidal metres.
    how : ndarray of str
        ``"roof"``, ``"terrain"`` or ``"given"`` per point.
    building_id : ndarray of object
        The building under each point, or None.
    """

    lon: np.ndarray
    lat: np.ndarray
    h: np.ndarray
    how: np.ndarray
    building_id: np.ndarray

    def __len__(self) -> int:
        return len(self.lon)

    def __getitem__(self, i: int) -> Placement:
        bid = self.building_id[i]
        return Placement(
            float(self.lon[i]),
            float(self.lat[i]),
            float(self.h[i]),
            str(self.how[i]),
            None if bid is None else str(bid),
        )


# --- public ---------------------------------------------------------------------------------


def floor_height(building: Building) -> float:
    """Metres per floor of a building: ``height / floors``, else :data:`DEFAULT_FLOOR_HEIGHT`."""
    if building.floors and building.floors > 0 and building.height > 0:
        return building.height / building.floors
    return DEFAULT_FLOOR_HEIGHT


def place(
    location: Any,
    outputs: BuildOutputs,
    *,
    default_crs: str | None = None,
    clamp: bool = False,
) -> Placement:
    """Place one location on the built city (rules in the module docstring).

    Parameters
    ----------
    location : list, tuple, str or dict
        Coordinates, a GeoJSON Point or Feature, an address string, or a dict with
        ``building``/``address``/``coordinates`` and optional ``floor``, ``on``,
        ``crs``, ``clamp``.
    outputs : BuildOutputs
        The build whose terrain, buildings and addresses are used.
    default_crs : str, optional
        CRS of coordinates that name none (default WGS84 lon/lat).
    clamp : bool
        Ignore a given height and put the point on the surface (roof or terrain).

    Returns
    -------
    Placement

    Raises
    ------
    CRSError
        Unknown CRS, or coordinates that do not fit it (off the Earth).
    NotFoundError
        Unknown building id, or ``on = "roof"``/``"facade"`` where there is no building.
    InputDataError
        A malformed location, an address that matches nothing well enough, a floor the
        building does not have.
    """
    spec = _spec(location)
    clamp = clamp or bool(spec.get("clamp"))
    on = _on(spec.get("on"))
    floor = _floor(spec.get("floor"))
    if floor is not None and on in ("roof", "ground"):
        raise InputDataError(f"on = {on!r} contradicts floor {floor}: give one of them")
    if on == "floor" and floor is None:
        raise InputDataError("on = 'floor' needs a floor number, e.g. \"floor\": 3")
    address: str | None = None
    building: Building | None = None
    point: tuple[float, float, float | None] | None = None
    if "building" in spec:
        building = outputs.building(str(spec["building"]))
    if "address" in spec:
        address, lon, lat, bid = _address(spec["address"], outputs)
        point = (lon, lat, None)
        if building is None and bid is not None:
            building = outputs.building(bid)
    if _has_coordinates(spec):
        point = _coordinates(spec, default_crs)
    if point is None and building is None:
        raise InputDataError(
            "a location needs coordinates, an address or a building id (got keys "
            + ", ".join(sorted(map(str, spec)))
            + ")"
        )
    # an explicit on/floor asks for the surface, as clamp does
    clamp = clamp or on is not None or floor is not None
    if building is None and point is not None and (on != "ground" or floor is not None):
        building = _building_at(outputs, point[0], point[1], required=on in ("roof", "facade"))
    return _resolve(outputs, point, building, on, floor, clamp, address)


def place_many(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    outputs: BuildOutputs,
    *,
    z: Sequence[float] | np.ndarray | None = None,
    crs: str | None = None,
    on: str = "auto",
    clamp: bool = False,
) -> Placements:
    """Place many points at once (vectorised; thousands of sensors).

    Parameters
    ----------
    x, y : array-like
        Coordinates in ``crs`` (default WGS84 lon/lat).
    outputs : BuildOutputs
    z : array-like, optional
        Given heights (WGS84 ellipsoidal); NaN entries are placed like missing ones.
    crs : str, optional
        Any CRS the core knows, GCJ-02 and BD-09 included.
    on : str
        ``"auto"``: a roof inside a footprint, else the terrain; ``"ground"``: the
        terrain everywhere.
    clamp : bool
        Ignore given heights.

    Returns
    -------
    Placements

    Raises
    ------
    CRSError
        Unknown CRS, or a point that does not fit it (the message names the first).
    """
    if on not in ("auto", "ground"):
        raise InputDataError(f"place_many: on must be 'auto' or 'ground', not {on!r}")
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    y = np.atleast_1d(np.asarray(y, dtype=np.float64))
    if x.shape != y.shape:
        raise InputDataError(f"place_many: {len(x)} x values but {len(y)} y values")
    lon, lat = _to_lonlat(x, y, crs)
    given = np.full(x.shape, np.nan) if z is None else np.asarray(z, dtype=np.float64)
    if given.shape != x.shape:
        raise InputDataError(f"place_many: {len(x)} points but {len(given)} heights")
    keep = np.isfinite(given) & (not clamp)
    h = np.where(keep, given, outputs.ground_heights(lon, lat))
    how = np.where(keep, "given", "terrain").astype(object)
    ids = np.full(x.shape, None, dtype=object)
    if outputs.has_buildings():
        table = outputs.buildings()
        rows = table.rows_at(lon, lat)
        hit = np.flatnonzero(rows >= 0)
        if hit.size:
            uniq, inv = np.unique(rows[hit], return_inverse=True)
            # one Building per distinct row, not per point
            found = [table.get(int(r)) for r in uniq]
            ids[hit] = np.array([b.id for b in found], dtype=object)[inv]
            if on == "auto":
                tops = np.array([b.top for b in found])[inv]
                roof = hit[~keep[hit]]
                h[roof] = tops[~keep[hit]]
                how[roof] = "roof"
    return Placements(lon, lat, h, how, ids)


# --- parsing ----------------------------------------------------------------------------------


def _spec(location: Any) -> dict[str, Any]:
    """The location as a dict of the keys in :data:`_KEYS`."""
    if isinstance(location, str):
        return {"address": location}
    if isinstance(location, list | tuple | np.ndarray):
        return {"coordinates": list(location)}
    if not isinstance(location, dict):
        raise InputDataError(
            f"a location must be coordinates, an address or a dict, not {type(location).__name__}"
        )
    spec = dict(location)
    if spec.get("type") == "Feature":
        geom = spec.get("geometry")
        props = spec.get("properties") or {}
        if not isinstance(props, dict):
            raise InputDataError("a Feature's properties must be a JSON object")
        spec = {
            **{k: v for k, v in props.items() if k in _KEYS},
            **(geom if isinstance(geom, dict) else {}),
            **({"crs": spec["crs"]} if "crs" in spec else {}),
        }
    if "type" in spec and spec["type"] != "Point":
        raise InputDataError(f"a location must be a GeoJSON Point, not a {spec['type']}")
    unknown = set(spec) - _KEYS
    if unknown:
        raise InputDataError(
            f"a location has no key {sorted(map(str, unknown))[0]!r} (known: "
            "coordinates, lon/lat/h, x/y/z, crs, address, building, floor, on, clamp)"
        )
    return spec


def _on(value: Any) -> str | None:
    if value is None:
        return None
    if value not in ON_VALUES:
        raise InputDataError(f"on must be one of {', '.join(ON_VALUES)}, not {value!r}")
    return str(value)


def _floor(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().upper()
        # 'B1' is how basements are written on Chinese floor plans
        value = -int(text[1:]) if text[:1] == "B" and text[1:].isdigit() else value
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise InputDataError(f"floor must be a whole number, not {value!r}") from None
    if isinstance(value, float) and value != n:
        raise InputDataError(f"floor must be a whole number, not {value!r}")
    if n == 0 or n < -MAX_BASEMENT:
        raise InputDataError(
            f"floor {n} does not exist: floors count from 1 (the ground floor), "
            f"basements from -1 down to -{MAX_BASEMENT}"
        )
    return n


def _has_coordinates(spec: dict[str, Any]) -> bool:
    return any(k in spec for k in ("coordinates", "lon", "lat", "x", "y"))


def _coordinates(
    spec: dict[str, Any], default_crs: str | None
) -> tuple[float, float, float | None]:
    """(lon, lat, h or None) of the spec's coordinates."""
    if "coordinates" in spec:
        c = spec["coordinates"]
        if not isinstance(c, list | tuple | np.ndarray) or len(c) not in (2, 3):
            raise InputDataError(f"coordinates must be [x, y] or [x, y, z], not {c!r}"[:200])
        vals = list(c)
    elif "lon" in spec or "lat" in spec:
        vals = [spec.get("lon"), spec.get("lat")] + ([spec["h"]] if "h" in spec else [])
    else:
        vals = [spec.get("x"), spec.get("y")] + ([spec["z"]] if "z" in spec else [])
    try:
        nums = [float(v) for v in vals]
    except (TypeError, ValueError):
        raise InputDataError(f"coordinates must be numbers, not {vals!r}"[:200]) from None
    crs = _crs_name(spec.get("crs")) if "crs" in spec else default_crs
    if "lon" in spec and "crs" not in spec:
        crs = None  # lon/lat are degrees by their name
    lon, lat = _to_lonlat(np.array(nums[:1]), np.array(nums[1:2]), crs)
    h = nums[2] if len(nums) == 3 else None
    if h is not None and not math.isfinite(h):
        raise InputDataError(f"the height must be a finite number, not {h!r}")
    return float(lon[0]), float(lat[0]), h


def _crs_name(value: Any) -> str | None:
    if isinstance(value, dict):  # GeoJSON 2008 named CRS
        value = (value.get("properties") or {}).get("name")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise CRSError(f"a CRS must be a name such as 'EPSG:4547' or 'GCJ-02', not {value!r}")
    return value.strip()


def _to_lonlat(x: np.ndarray, y: np.ndarray, crs: str | None) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 lon/lat, refusing unknown CRSs and points that do not fit theirs."""
    if crs is not None and crs.upper() in _WGS84:
        crs = None
    name = crs or "EPSG:4326"
    if not _is_special(name):
        parse_crs(name)  # CRSError for an unknown definition
    fits = coordinates_fit(x, y, name)
    lon, lat = safe_to_lonlat(x, y, name) if fits.all() else (x, y)
    bad = np.flatnonzero(~fits | ~np.isfinite(lon) | ~np.isfinite(lat))
    if bad.size:
        i = int(bad[0])
        hint = crs_hint(x[bad], y[bad])
        raise CRSError(
            f"coordinates ({x[i]:.10g}, {y[i]:.10g}) do not fit {crs_label(name)}"
            + (f" ({bad.size} of {x.size} points)" if x.size > 1 else "")
            + (f"; {hint}" if hint else "; give the location's crs")
        )
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def _address(query: Any, outputs: BuildOutputs) -> tuple[str, float, float, str | None]:
    """(address, lon, lat, building id) of the best match of an address query."""
    if not isinstance(query, str) or not query.strip():
        raise InputDataError(f"an address must be a non-empty string, not {query!r}")
    try:
        found = outputs.addresses().search(query, limit=1)
    except NotFoundError as exc:
        raise NotFoundError(f"cannot place address {query[:100]!r}: {exc.message}") from exc
    if not found or found[0].score < MIN_ADDRESS_SCORE:
        best = f" (best: {found[0].address!r}, score {found[0].score:.0f})" if found else ""
        raise InputDataError(
            f"no address matches {query[:100]!r} well enough{best}; "
            "give coordinates or a building id"
        )
    c = found[0]
    return c.address, float(c.lon), float(c.lat), c.building_id


def _building_at(outputs: BuildOutputs, lon: float, lat: float, required: bool) -> Building | None:
    building = outputs.building_at(lon, lat) if outputs.has_buildings() else None
    if building is None and required:
        raise NotFoundError(f"no building at ({lon:.7f}, {lat:.7f})")
    return building


# --- resolving -----------------------------------------------------------------------------------


def _resolve(
    outputs: BuildOutputs,
    point: tuple[float, float, float | None] | None,
    building: Building | None,
    on: str | None,
    floor: int | None,
    clamp: bool,
    address: str | None,
) -> Placement:
    if point is not None and point[2] is not None and not clamp:
        lon, lat, h = point
        bid = building.id if building else None
        return Placement(lon, lat, float(h), "given", bid, address, floor)
    if building is None:
        assert point is not None
        lon, lat = point[0], point[1]
        return Placement(lon, lat, outputs.ground_height(lon, lat), "terrain", None, address)
    lon, lat = _point_in(building, point)
    if address is None:
        address = _address_of(outputs, building, lon, lat)
    if on == "ground":
        h = outputs.ground_height(lon, lat)
        return Placement(lon, lat, h, "terrain", building.id, address)
    if on == "facade":
        lon, lat = _on_outline(building, lon, lat)
        h = (
            _floor_middle(building, floor)
            if floor is not None
            else building.base + building.height / 2
        )
        return Placement(lon, lat, h, "facade", building.id, address, floor)
    if floor is not None:
        h = _floor_middle(building, floor)
        return Placement(lon, lat, h, f"floor {floor}", building.id, address, floor)
    return Placement(lon, lat, building.top, "roof", building.id, address)


def _floor_middle(building: Building, floor: int) -> float:
    """Height of the middle of ``floor`` (see the module docstring)."""
    fh = floor_height(building)
    floors = building.floors if building.floors and building.floors > 0 else building.height / fh
    top = max(1, math.ceil(floors - 1e-9))
    if floor > top:
        raise InputDataError(f"building {building.id} has {floors:g} floors: no floor {floor}")
    mid = (floor - 0.5) if floor > 0 else (floor + 0.5)
    # the top floor of a fractional count is partial: keep its middle under the roof
    return building.base + min(mid * fh, building.height)


def _point_in(
    building: Building, point: tuple[float, float, float | None] | None
) -> tuple[float, float]:
    """The point if it lies on the building, else a point surely inside its footprint."""
    if point is not None and shapely.intersects_xy(building.footprint, point[0], point[1]):
        return point[0], point[1]
    # point_on_surface: inside even for courtyard houses whose centroid is the courtyard
    p = shapely.point_on_surface(building.footprint)
    return float(shapely.get_x(p)), float(shapely.get_y(p))


def _on_outline(building: Building, lon: float, lat: float) -> tuple[float, float]:
    """The point of the footprint's outline nearest (lon, lat)."""
    line = shapely.shortest_line(shapely.boundary(building.footprint), shapely.Point(lon, lat))
    c = shapely.get_coordinates(line)[0]
    return float(c[0]), float(c[1])


def _address_of(outputs: BuildOutputs, building: Building, lon: float, lat: float) -> str | None:
    """The building's address from the index (None without one or without an index)."""
    try:
        index = outputs.addresses()
    except NotFoundError:
        return None
    for cand in index.reverse(lon, lat, limit=1, max_distance=50.0):
        if cand.building_id == building.id:
            return cand.address
    return None
