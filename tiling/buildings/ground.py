"""Put buildings on the ground: base elevation from the DEM, in WGS84 ellipsoidal.

The base of a block is the lowest DEM height under its footprint's vertices and
centre, so on a slope the block reaches the ground everywhere (its uphill side is
buried in the terrain) instead of floating over the valley side.
"""

from __future__ import annotations

import logging

import numpy as np
import shapely

from cim.config import CityProject, TerrainConfig
from cim.datum import Datum
from cim.model import Buildings
from cim.raster import DemMosaic
from cim.report import StageReport

log = logging.getLogger(__name__)


def set_base_elevation(buildings: Buildings, project: CityProject, report: StageReport) -> None:
    """Fill ``buildings.base`` (ellipsoidal metres) in place.

    Without a DEM (no ``[terrain]`` section) the base is the ellipsoid (0 m), which
    is where CesiumJS's default globe surface lies. With a DEM, buildings entirely
    outside it get ``[buildings] outside_dem_base`` (orthometric) and are listed in
    the report as ``outside-dem``.
    """
    terrain = project.section("terrain", TerrainConfig)
    if terrain is None or not terrain.paths:
        buildings.base[:] = 0.0
        report.counts["base_source"] = "ellipsoid (no DEM)"
        return
    cfg = project.buildings
    assert cfg is not None
    # same DEM view as the terrain stage (voids filled), so blocks sit on the mesh
    dem = DemMosaic(terrain.paths, crs=terrain.crs, default_crs=project.crs, fill_nodata=True)
    coords, index = shapely.get_coordinates(buildings.footprints, return_index=True)
    centres = shapely.get_coordinates(shapely.point_on_surface(buildings.footprints))
    lon = np.concatenate([coords[:, 0], centres[:, 0]])
    lat = np.concatenate([coords[:, 1], centres[:, 1]])
    owner = np.concatenate([index, np.arange(len(buildings))])
    heights = dem.sample(lon, lat)
    base = np.full(len(buildings), np.inf)
    np.fmin.at(base, owner, np.where(np.isnan(heights), np.inf, heights))
    outside = ~np.isfinite(base)
    for i in np.flatnonzero(outside):
        report.repair(
            buildings.ids[i],
            "outside-dem",
            f"no DEM height; base set to {cfg.outside_dem_base:g} m",
        )
    base[outside] = cfg.outside_dem_base
    datum = Datum.from_config(project.datum)
    buildings.base[:] = datum.to_ellipsoidal(base, centres[:, 0], centres[:, 1])
    report.counts["base_source"] = "DEM"
    report.counts["outside_dem"] = int(outside.sum())
