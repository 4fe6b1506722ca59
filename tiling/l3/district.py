"""The L3 district (``[l3] district``): which buildings get detailed models.

The district is a polygon file in any format and CRS the readers take (the CRS
policy of :func:`cim.crs.resolve_crs`). A building belongs to it when a point on its
footprint (``shapely.point_on_surface``) lies inside: a building on the district's
edge goes wholly to one side, never to both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import shapely

from cim.config import CityProject
from cim.crs import resolve_crs
from cim.errors import ConfigError, InputDataError
from cim.model import Buildings
from cim.readers import read_features


def district_path(project: CityProject) -> Path | None:
    """The ``[l3] district`` file (absolute), or None when the project has none."""
    l3 = project.raw.get("l3")
    if not isinstance(l3, dict) or "district" not in l3:
        return None
    value = l3["district"]
    if not isinstance(value, str) or not value:
        raise ConfigError("[l3] district must be a file name", path=project.path)
    return (project.root / value).resolve()


def read_district(path: Path, project: CityProject) -> shapely.Geometry:
    """The district's polygons (lon/lat, one geometry) from ``path``.

    Raises
    ------
    DatasetIOError
        The file is missing or unreadable.
    InputDataError
        No polygon in the file.
    CRSError
        The coordinates do not fit the file's CRS.
    """
    table = read_features(path)
    geoms = table.geometry[~shapely.is_missing(table.geometry)]
    kinds = shapely.get_type_id(geoms)
    polys = geoms[np.isin(kinds, [3, 6])]  # Polygon, MultiPolygon
    if not len(polys):
        raise InputDataError("the L3 district file holds no polygon", path=path)
    xy = shapely.get_coordinates(polys)
    resolved = resolve_crs(
        table.crs,
        None,
        xy[:, 0],
        xy[:, 1],
        what="[l3] district",
        path=path,
        default=project.crs,
        implied=table.implied_crs,
    )
    lon, lat = resolved.to_lonlat(xy[:, 0], xy[:, 1])
    lonlat = np.column_stack([lon, lat])
    if not np.isfinite(lonlat).all():
        raise InputDataError("the L3 district has coordinates outside its CRS", path=path)
    polys = shapely.set_coordinates(polys.copy(), lonlat)  # same order as get_coordinates
    return shapely.make_valid(shapely.union_all(polys))


def district_mask(project: CityProject, buildings: Buildings) -> np.ndarray | None:
    """Per building: inside the project's L3 district (None without ``[l3] district``)."""
    path = district_path(project)
    if path is None:
        return None
    district = read_district(path, project)
    points = shapely.point_on_surface(buildings.footprints)
    shapely.prepare(district)
    return shapely.contains_xy(district, shapely.get_x(points), shapely.get_y(points))
