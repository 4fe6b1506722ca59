"""The read side of a build's output folder, for the server and the live layers.

:class:`BuildOutputs` answers the questions everything placed on the model asks:

- ``addresses()``: the address index (:class:`cim.addresses.AddressIndex`);
- ``building_at(lon, lat)`` / ``building(id)``: footprints from ``buildings.parquet``
  (written by the buildings stage; GeoParquet, lon/lat WKB) through a shapely STRtree;
- ``ground_height(lon, lat)``: the built terrain (``terrain/``), interpolated on the
  quantized-mesh triangles of the finest tile (:mod:`cim.qmesh`); without terrain,
  the base of the building there or the nearest one within 1 km, else 0.

Every file is opened lazily on first use and reopened when the build replaces it
(a ``cim build`` swaps a new output folder into place while a server runs). Objects
are thread-safe: one per output folder serves every worker thread.

Heights are WGS84 ellipsoidal metres, as in the tiles.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import shapely

from cim.errors import DatasetIOError, NotFoundError

log = logging.getLogger(__name__)

__all__ = [
    "BUILDINGS_FILE",
    "BUILDINGS_TABLE_VERSION",
    "BuildOutputs",
    "Building",
    "BuildingTable",
]

#: the footprint table written by the buildings stage
BUILDINGS_FILE = "buildings.parquet"
#: version of its columns (``cim:buildings`` in the Parquet metadata)
BUILDINGS_TABLE_VERSION = 1
ADDRESSES_FILE = "addresses.sqlite"
TERRAIN_DIR = "terrain"
#: metres within which the nearest building's base stands in for missing terrain
GROUND_FALLBACK_DISTANCE = 1000.0
_M_PER_DEG = 111_195.0

T = TypeVar("T")


@dataclass(frozen=True)
class Building:
    """One building of the model.

    Attributes
    ----------
    id, name, use, roof_type : str
        As in the tiles ("" when unknown).
    base : float
        WGS84 ellipsoidal height of the ground under it, metres.
    height : float
        Height above the base, metres.
    floors : float or None
        Floor count (may be fractional), None when unknown.
    footprint : shapely Polygon or MultiPolygon
        In lon/lat degrees.
    """

    id: str
    name: str
    use: str
    roof_type: str
    base: float
    height: float
    floors: float | None
    footprint: Any

    @property
    def top(self) -> float:
        """Roof height (base + height), WGS84 ellipsoidal metres."""
        return self.base + self.height

    def to_json(self, geometry: bool = True) -> dict[str, Any]:
        """A JSON-ready dict (GeoJSON footprint when ``geometry``)."""
        west, south, east, north = (float(b) for b in shapely.bounds(self.footprint))
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "use": self.use,
            "roof_type": self.roof_type,
            "base": self.base,
            "height": self.height,
            "top": self.top,
            "floors": self.floors,
            "bbox": [west, south, east, north],
        }
        if geometry:
            out["footprint"] = json.loads(shapely.to_geojson(self.footprint))
        return out


def _finite_points(
    lon: np.ndarray, lat: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Points as float arrays, a result of -1 per point, and the finite points' indices."""
    lon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    out = np.full(lon.shape, -1, dtype=np.int64)
    return lon, lat, out, np.flatnonzero(np.isfinite(lon) & np.isfinite(lat))


class BuildingTable:
    """``buildings.parquet`` in memory with an STRtree over the footprints.

    Parameters
    ----------
    path : Path
        The file.

    Raises
    ------
    NotFoundError
        When the file does not exist.
    DatasetIOError
        When it is not a footprint table of :data:`BUILDINGS_TABLE_VERSION`.
    """

    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq

        if not path.is_file():
            raise NotFoundError(
                f"no {BUILDINGS_FILE}: build the city's buildings stage first", path=path.name
            )
        try:
            table = pq.read_table(path)
            meta = table.schema.metadata or {}
            info = json.loads(meta.get(b"cim:buildings", b"{}"))
            cols = {name: table.column(name).to_pylist() for name in table.column_names}
            self.footprints = shapely.from_wkb(cols["geometry"])
        except (OSError, ValueError, KeyError, shapely.errors.GEOSException) as exc:
            raise DatasetIOError(f"{BUILDINGS_FILE} cannot be read ({exc})") from exc
        if info.get("version") != BUILDINGS_TABLE_VERSION:
            raise DatasetIOError(
                f"{BUILDINGS_FILE} of version {info.get('version')} (this toolkit reads"
                f" {BUILDINGS_TABLE_VERSION}): rebuild it with `cim build --force CITY.toml`",
                path=path.name,
            )
        self.ids: list[str] = cols["id"]
        self._cols = cols
        self._row = {bid: i for i, bid in enumerate(self.ids)}
        self.base = np.asarray(cols["base"], dtype=np.float64)
        self.tree = shapely.STRtree(self.footprints)
        self.areas = shapely.area(self.footprints)

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, i: int) -> Building:
        """The building in row ``i``."""
        c = self._cols
        floors = c["floors"][i]
        return Building(
            id=self.ids[i],
            name=c["name"][i] or "",
            use=c["use"][i] or "",
            roof_type=c["roof_type"][i] or "",
            base=float(c["base"][i]),
            height=float(c["height"][i]),
            floors=None if floors is None or math.isnan(floors) else float(floors),
            footprint=self.footprints[i],
        )

    def row_of(self, building_id: str) -> int | None:
        """Row of a building id, or None."""
        return self._row.get(building_id)

    def rows_at(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Per point, the row of the smallest footprint containing it, else -1."""
        lon, lat, out, idx = _finite_points(lon, lat)
        if not idx.size or not len(self):
            return out
        pts = shapely.points(lon[idx], lat[idx])
        pi, bi = self.tree.query(pts, predicate="intersects")
        if not len(pi):
            return out
        # smallest footprint first, so that the first hit per point wins
        order = np.lexsort((self.areas[bi], pi))
        pi, bi = pi[order], bi[order]
        first = np.r_[True, pi[1:] != pi[:-1]]
        out[idx[pi[first]]] = bi[first]
        return out

    def nearest_rows(self, lon: np.ndarray, lat: np.ndarray, max_m: float) -> np.ndarray:
        """Per point, the row of the nearest footprint within ``max_m`` metres, else -1."""
        lon, lat, out, idx = _finite_points(lon, lat)
        if not idx.size or not len(self):
            return out
        # a degree bound that holds at every latitude of the points (longitude shrinks)
        shrink = max(math.cos(math.radians(min(float(np.abs(lat[idx]).max()), 89.0))), 0.01)
        max_deg = max_m / _M_PER_DEG / shrink
        pi, bi = self.tree.query_nearest(
            shapely.points(lon[idx], lat[idx]), max_distance=max_deg, all_matches=False
        )
        if not len(pi):
            return out
        # exact metres in a local equirectangular frame per pair
        ends = shapely.get_coordinates(
            shapely.shortest_line(shapely.points(lon[idx[pi]], lat[idx[pi]]), self.footprints[bi])
        ).reshape(-1, 2, 2)
        dx = (ends[:, 1, 0] - ends[:, 0, 0]) * _M_PER_DEG * np.cos(np.radians(ends[:, 0, 1]))
        dy = (ends[:, 1, 1] - ends[:, 0, 1]) * _M_PER_DEG
        near = np.hypot(dx, dy) <= max_m
        out[idx[pi[near]]] = bi[near]
        return out


class _Reloading:
    """One lazily opened object per file version (mtime, size, inode)."""

    def __init__(self, path: Path, opener: Callable[[Path], T]) -> None:
        self.path = path
        self.opener = opener
        self.version: tuple[int, int, int] | None = None
        self.value: Any = None
        self.lock = threading.Lock()

    def get(self) -> Any:
        try:
            st = self.path.stat()
        except OSError:
            st = None
        version = (st.st_mtime_ns, st.st_size, st.st_ino) if st else None
        with self.lock:
            if self.value is not None and version == self.version:
                return self.value
            old = self.value
            self.value = self.opener(self.path)
            self.version = version
        if old is not None and hasattr(old, "close"):
            try:
                old.close()
            except Exception:  # a stale object must not fail a request
                log.debug("closing a stale %s failed", self.path.name, exc_info=True)
        return self.value


class BuildOutputs:
    """Read access to one build output folder.

    Parameters
    ----------
    output_dir : str or Path
        The output folder of ``cim build`` (``manifest.json``, ``tiles/``, ...).
    address_index : callable, optional
        ``path -> index`` opening ``addresses.sqlite`` (default
        :class:`cim.addresses.AddressIndex`; tests pass another implementation).
    """

    def __init__(
        self, output_dir: str | Path, address_index: Callable[[Path], Any] | None = None
    ) -> None:
        self.root = Path(output_dir)
        self._address_opener = address_index
        self._addresses = _Reloading(self.root / ADDRESSES_FILE, self._open_addresses)
        self._buildings = _Reloading(self.root / BUILDINGS_FILE, BuildingTable)
        self._terrain = _Reloading(self.root / TERRAIN_DIR / "layer.json", self._open_terrain)

    def _open_addresses(self, path: Path) -> Any:
        from cim.addresses import AddressIndex

        if not path.is_file():
            raise NotFoundError(f"this city has no address index ({ADDRESSES_FILE})")
        opener = self._address_opener or AddressIndex
        try:
            return opener(path)
        except (NotFoundError, DatasetIOError):
            raise
        except (OSError, ValueError, sqlite3.Error) as exc:
            raise DatasetIOError(f"address index cannot be opened ({exc})") from exc

    @staticmethod
    def _open_terrain(path: Path) -> Any:
        from cim.qmesh import TerrainReader

        if not path.is_file():
            return _NO_TERRAIN
        return TerrainReader(path.parent)

    # --- addresses ---------------------------------------------------------------------
    def addresses(self) -> Any:
        """The address index (:class:`cim.addresses.AddressIndex`).

        Raises
        ------
        NotFoundError
            When the build has no ``addresses.sqlite``.
        DatasetIOError
            When the index cannot be read or is of another schema version.
        """
        return self._addresses.get()

    # --- buildings ---------------------------------------------------------------------
    def buildings(self) -> BuildingTable:
        """The footprint table (raises NotFoundError when it was not built)."""
        return self._buildings.get()

    def has_buildings(self) -> bool:
        """Whether the build wrote a footprint table."""
        return (self.root / BUILDINGS_FILE).is_file()

    def building_at(self, lon: float, lat: float) -> Building | None:
        """The building whose footprint contains a point (the smallest when several).

        Parameters
        ----------
        lon, lat : float
            WGS84 degrees.

        Returns
        -------
        Building or None
        """
        table = self.buildings()
        row = int(table.rows_at(np.array([lon]), np.array([lat]))[0])
        return None if row < 0 else table.get(row)

    def building(self, building_id: str) -> Building:
        """A building by its id.

        Raises
        ------
        NotFoundError
            When no building has this id.
        """
        table = self.buildings()
        row = table.row_of(str(building_id))
        if row is None:
            raise NotFoundError(f"no building with id {str(building_id)[:100]!r}")
        return table.get(row)

    # --- ground ------------------------------------------------------------------------
    def has_terrain(self) -> bool:
        """Whether the build wrote a terrain."""
        return (self.root / TERRAIN_DIR / "layer.json").is_file()

    def ground_heights(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Ground heights (WGS84 ellipsoidal metres) at points.

        From the terrain mesh where a tile covers the point; otherwise the base of
        the building there, or of the nearest one within
        :data:`GROUND_FALLBACK_DISTANCE` metres; otherwise 0 (the ellipsoid, which is
        where CesiumJS's default globe puts the ground).
        """
        lon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
        lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
        terrain = self._terrain.get()
        out = (
            terrain.heights(lon, lat) if terrain is not _NO_TERRAIN else np.full(lon.shape, np.nan)
        )
        miss = np.flatnonzero(np.isnan(out))
        if miss.size and self.has_buildings():
            table = self.buildings()
            rows = table.rows_at(lon[miss], lat[miss])
            far = rows < 0
            if far.any():
                rows[far] = table.nearest_rows(
                    lon[miss[far]], lat[miss[far]], GROUND_FALLBACK_DISTANCE
                )
            hit = rows >= 0
            out[miss[hit]] = table.base[rows[hit]]
        return np.where(np.isnan(out), 0.0, out)

    def ground_height(self, lon: float, lat: float) -> float:
        """The ground height at one point (see :meth:`ground_heights`)."""
        return float(self.ground_heights(np.array([lon]), np.array([lat]))[0])


class _NoTerrain:
    """Marker: the build has no terrain (reloaded when one appears)."""


_NO_TERRAIN = _NoTerrain()
