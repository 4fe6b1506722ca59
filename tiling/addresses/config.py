"""The ``[addresses]`` section of ``city.toml``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cim.errors import ConfigError

#: component columns that may be mapped, in hierarchy order (GB/T 23705)
PART_FIELDS: tuple[str, ...] = (
    "province",
    "city",
    "district",
    "street",
    "number",
    "building",
    "unit",
    "room",
    "poi",
)


@dataclass(frozen=True)
class AddressesConfig:
    """Address points and how their fields map to address components.

    Attributes
    ----------
    path : Path
        CSV, GeoJSON, GeoPackage or Shapefile of address points.
    crs : str or None
        CRS of the coordinates when the file carries none (default: ``[city] crs``,
        then EPSG:4326). A CRS stored in the file wins.
    layer : str or None
        Layer name (GeoPackage).
    encoding : str or None
        Text encoding (e.g. ``"gbk"`` for shapefiles and CSVs from Chinese GIS).
    x, y : str or None
        Coordinate columns of a CSV (projected or geographic).
    lon, lat : str or None
        Longitude/latitude columns of a CSV (alternative to ``x``/``y``).
    id : str or None
        Column with the address point's id (default: row number).
    full : str or None
        Column with the full address string.
    province, city, district, street, number, building, unit, room, poi : str or None
        Columns with structured address parts (used with or instead of ``full``;
        a part column overrides what was parsed from ``full``).
    match_distance : float
        Metres within which an address point outside every footprint joins the
        nearest building (default 30).
    default_city, default_district : str or None
        Implied administrative levels for points that lack them.
    """

    path: Path
    crs: str | None = None
    layer: str | None = None
    encoding: str | None = None
    x: str | None = None
    y: str | None = None
    lon: str | None = None
    lat: str | None = None
    id: str | None = None
    full: str | None = None
    province: str | None = None
    city: str | None = None
    district: str | None = None
    street: str | None = None
    number: str | None = None
    building: str | None = None
    unit: str | None = None
    room: str | None = None
    poi: str | None = None
    match_distance: float = 30.0
    default_city: str | None = None
    default_district: str | None = None

    def __post_init__(self) -> None:
        if (self.x is None) != (self.y is None):
            raise ConfigError("[addresses] x and y columns must be given together")
        if (self.lon is None) != (self.lat is None):
            raise ConfigError("[addresses] lon and lat columns must be given together")
        if self.x is not None and self.lon is not None:
            raise ConfigError("[addresses] give either x/y or lon/lat columns, not both")
        if not 0.0 <= self.match_distance <= 1000.0:
            raise ConfigError(f"[addresses] match_distance {self.match_distance} m is not 0–1000 m")

    def parts(self) -> dict[str, str]:
        """Mapped part columns: component name → column name."""
        return {f: getattr(self, f) for f in PART_FIELDS if getattr(self, f)}
