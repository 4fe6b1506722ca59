"""Put buildings on the ground: base elevation in WGS84 ellipsoidal metres.

Where the base comes from, in order:

1. the ``[buildings] base`` attribute (orthometric ground heights, e.g. BD TOPO's
   ``Z_MIN_SOL``) where it holds a plausible number;
2. the DEM: the lowest height under the footprint's vertices and centre, so on a
   slope the block reaches the ground everywhere (its uphill side is buried in the
   terrain) instead of floating over the valley side;
3. outside the DEM, the DEM continued past its edge exactly as the terrain stage
   meshes it (:class:`tiling.terrain.extend.EdgeExtendedDem`: the nearest edge
   height, ramping to sea level beyond :data:`~tiling.terrain.extend.EDGE_FLAT_M`);
4. beyond that margin, ``[buildings] outside_dem_base``.

Walls are extended below the base by the terrain's own error at its finest level
(:func:`wall_skirt`), so that no building floats above the simplified terrain mesh;
the ``base`` attribute stays the true ground.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import shapely

from cim.config import BuildingsConfig, CityProject, TerrainConfig
from cim.model import Buildings
from cim.report import StageReport
from tiling.buildings.prepare import read_buildings

if TYPE_CHECKING:  # the terrain modules (rasterio, scipy) load only with a DEM
    from cim.raster import DemMosaic
    from tiling.terrain.check import GroundGaps
    from tiling.terrain.extend import EdgeExtendedDem

log = logging.getLogger(__name__)

#: plausible orthometric ground heights (m): other values of the base attribute are
#: "unknown" codes (BD TOPO writes -1000) and fall back to the DEM
BASE_RANGE = (-500.0, 9000.0)
#: an attribute base this far above the DEM under the footprint is flagged (m)
ATTRIBUTE_ABOVE_DEM_FLAG = 2.0


def set_base_elevation(buildings: Buildings, project: CityProject, report: StageReport) -> float:
    """Fill ``buildings.base`` (ellipsoidal metres) in place; return the wall skirt.

    Without a DEM (no ``[terrain]`` section) the base is the ellipsoid (0 m), which
    is where CesiumJS's default globe surface lies, and the base attribute is not
    used. With a DEM see the module docstring; buildings whose base does not come
    from the DEM under them are listed in the report as ``outside-dem`` and counted
    in a warning.

    Returns
    -------
    float
        Depth (m) by which walls reach below the base: the terrain's allowed
        vertical error at its finest level (0 without a DEM).
    """
    cfg = project.buildings
    assert cfg is not None
    terrain = project.section("terrain", TerrainConfig)
    if terrain is None or not terrain.paths:
        buildings.base[:] = 0.0
        report.counts["base_source"] = {"ellipsoid (no DEM)": len(buildings)}
        report.counts["wall_skirt_m"] = 0.0
        if cfg.base:
            report.warn(
                f"[buildings] base {cfg.base!r} not used: without [terrain] buildings "
                "stand on the ellipsoid, as CesiumJS's globe does"
            )
        return 0.0
    from cim.datum import Datum
    from cim.raster import DemMosaic, check_files_overlap
    from tiling.terrain.extend import EdgeExtendedDem

    # same surface as the terrain stage (voids filled, edges continued)
    mosaic = DemMosaic(terrain.paths, crs=terrain.crs, default_crs=project.crs, fill_nodata=True)
    # a DEM in the wrong CRS lands away from the buildings: fail now, not after L2
    # (files away from them are normal in a mosaic; the terrain stage warns of those)
    files = [(f.path, f.crs, f.bounds_lonlat) for f in mosaic.files]
    extent = [float(v) for v in shapely.total_bounds(buildings.footprints)]
    check_files_overlap(files, extent, what="terrain", kind="DEM")
    dem = EdgeExtendedDem(mosaic)
    centres = shapely.get_coordinates(shapely.point_on_surface(buildings.footprints))
    ground, inside, distance = _ground_under(buildings, centres, dem)
    attribute = _attribute(buildings, cfg)
    use_attr = np.isfinite(attribute)
    near = np.isfinite(distance)  # outside the DEM but within the continued margin
    from_edge = ~inside & near & ~use_attr
    fallback = ~inside & ~near & ~use_attr
    base = np.where(use_attr, attribute, np.where(fallback, cfg.outside_dem_base, ground))
    _report_outside(buildings, report, cfg, base, distance, from_edge, fallback, dem.margin_m)
    _check_attribute(buildings, report, cfg, attribute, ground, use_attr & inside)
    datum = Datum.from_config(project.datum)
    buildings.base[:] = datum.to_ellipsoidal(base, centres[:, 0], centres[:, 1])
    skirt = wall_skirt(dem, terrain)
    report.counts["base_source"] = {
        "attribute": int(use_attr.sum()),
        "DEM": int((inside & ~use_attr).sum()),
        "DEM edge": int(from_edge.sum()),
        "outside_dem_base": int(fallback.sum()),
    }
    report.counts["outside_dem"] = int((~inside).sum())
    report.counts["wall_skirt_m"] = round(skirt, 3)
    return skirt


def check_ground(
    project: CityProject, terrain_dir: Path | None = None, threshold_m: float = 0.5
) -> tuple[GroundGaps, StageReport]:
    """Measure a built project's buildings against the terrain mesh it wrote.

    The buildings are read and grounded again (as the buildings stage does), then
    :func:`tiling.terrain.check.ground_gaps` compares each wall bottom (base minus
    the wall skirt) with the decoded ``terrain/`` tiles under the footprint.

    Parameters
    ----------
    project : CityProject
        A project with ``[buildings]`` and ``[terrain]``, already built.
    terrain_dir : Path, optional
        Default: the project's ``output/terrain``.
    threshold_m : float
        Gap above which a building counts as floating.

    Returns
    -------
    (GroundGaps, StageReport)
        The gaps, and the report of grounding them (sources, outside-dem repairs).
    """
    from tiling.terrain.check import ground_gaps

    report = StageReport("buildings")
    buildings = read_buildings(project, report)
    skirt = set_base_elevation(buildings, project, report)
    folder = terrain_dir if terrain_dir is not None else project.output / "terrain"
    gaps = ground_gaps(folder, buildings.footprints, buildings.base, skirt, threshold_m=threshold_m)
    return gaps, report


def wall_skirt(dem: DemMosaic | EdgeExtendedDem, terrain: TerrainConfig) -> float:
    """How far walls reach below the base: CesiumJS's error at the finest terrain level.

    The terrain stage meshes each tile within ``error_factor`` × that error of the DEM
    samples and warns when a level exceeds the full error; the rest of the budget
    covers the DEM between its samples. A wall bottom this far below the lowest
    ground under the footprint is therefore under the rendered mesh.
    """
    from tiling.terrain import scheme
    from tiling.terrain.build import finest_level

    return scheme.geometric_error(finest_level(dem, terrain.max_zoom))


def _ground_under(
    buildings: Buildings, centres: np.ndarray, dem: EdgeExtendedDem
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per building: lowest surface height under it (orthometric), whether any of its
    samples has DEM data, and the smallest distance of its samples to the DEM's edge
    (0 inside, ``inf`` beyond the margin)."""
    n = len(buildings)
    coords, index = shapely.get_coordinates(buildings.footprints, return_index=True)
    lon = np.concatenate([coords[:, 0], centres[:, 0]])
    lat = np.concatenate([coords[:, 1], centres[:, 1]])
    owner = np.concatenate([index, np.arange(n)])
    heights, inside_pt, dist_pt = dem.sample_detail(lon, lat)
    ground = np.full(n, np.inf)
    np.fmin.at(ground, owner, heights)
    inside = np.zeros(n, dtype=bool)
    np.logical_or.at(inside, owner, inside_pt)
    distance = np.full(n, np.inf)
    np.fmin.at(distance, owner, dist_pt)
    return ground, inside, distance


def _attribute(buildings: Buildings, cfg: BuildingsConfig) -> np.ndarray:
    """The base attribute where it is usable, NaN elsewhere (and without one)."""
    if not cfg.base:
        return np.full(len(buildings), np.nan)
    value = np.asarray(buildings.base, dtype=np.float64)
    ok = np.isfinite(value) & (value >= BASE_RANGE[0]) & (value <= BASE_RANGE[1])
    return np.where(ok, value, np.nan)


def _report_outside(
    buildings: Buildings,
    report: StageReport,
    cfg: BuildingsConfig,
    base: np.ndarray,
    distance: np.ndarray,
    from_edge: np.ndarray,
    fallback: np.ndarray,
    margin_m: float,
) -> None:
    for i in np.flatnonzero(from_edge):
        report.repair(
            buildings.ids[i],
            "outside-dem",
            f"no DEM height under the footprint; base {base[i]:.1f} m from the DEM edge "
            f"{distance[i]:.0f} m away",
        )
    for i in np.flatnonzero(fallback):
        report.repair(
            buildings.ids[i],
            "outside-dem",
            f"more than {margin_m:g} m outside the DEM; base outside_dem_base "
            f"{cfg.outside_dem_base:g} m",
        )
    if from_edge.any():
        count = int(from_edge.sum())
        report.warn(f"{count} buildings outside the DEM: base from the nearest DEM edge")
    if fallback.any():
        report.warn(
            f"{int(fallback.sum())} buildings more than {margin_m:g} m outside the DEM: "
            f"base outside_dem_base ({cfg.outside_dem_base:g} m); give a DEM that covers them"
        )


def _check_attribute(
    buildings: Buildings,
    report: StageReport,
    cfg: BuildingsConfig,
    attribute: np.ndarray,
    ground: np.ndarray,
    both: np.ndarray,
) -> None:
    """Figures (and flags) comparing the base attribute with the DEM under it."""
    if not cfg.base:
        return
    diff = attribute - ground
    if both.any():
        report.counts["base_attribute_minus_dem_m"] = {
            "median": round(float(np.median(diff[both])), 2),
            "max": round(float(np.max(diff[both])), 2),
        }
    above = both & (diff > ATTRIBUTE_ABOVE_DEM_FLAG)
    for i in np.flatnonzero(above):
        report.flag(
            buildings.ids[i],
            "base-above-dem",
            f"{cfg.base} {attribute[i]:.1f} m is {diff[i]:.1f} m above the DEM under the "
            "footprint: the block may float over the terrain",
        )
    unusable = int((~np.isfinite(attribute)).sum())
    if unusable:
        report.counts["base_attribute_missing"] = unusable
