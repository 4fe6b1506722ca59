"""The ``buildings`` and ``l2`` build stages (entry points in setup.cfg)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from cim.config import CityProject, TerrainConfig
from cim.errors import ConfigError
from cim.model import Buildings
from cim.stages import BuildContext
from tiling.buildings.export import write_buildings_table
from tiling.buildings.ground import set_base_elevation
from tiling.buildings.l2 import L2Options, write_l2
from tiling.buildings.partitions import FOLDER as PARTITIONS
from tiling.buildings.partitions import (
    building_addresses,
    hilbert_sorted,
    partition_index,
    read_partitions,
    write_partitions,
)
from tiling.buildings.prepare import read_buildings
from tiling.l3.district import district_mask, district_path

log = logging.getLogger(__name__)

SHAPEFILE_SIDECARS = (".dbf", ".shx", ".prj", ".cpg")


@dataclass(frozen=True)
class L2Config:
    """The ``[l2]`` section."""

    max_features_per_tile: int = 2000
    max_vertices_per_tile: int = 60000
    compression: str = "meshopt"
    format: str = "3dtiles-1.1"

    def __post_init__(self) -> None:
        if self.compression not in ("meshopt", "none"):
            raise ConfigError("[l2] compression must be 'meshopt' or 'none'")
        if self.format not in ("3dtiles-1.1", "b3dm"):
            raise ConfigError("[l2] format must be '3dtiles-1.1' or 'b3dm' (3D Tiles 1.0)")
        if not 1 <= self.max_features_per_tile <= 65536:
            raise ConfigError("[l2] max_features_per_tile must be 1–65536")
        if self.max_vertices_per_tile < 1000:
            raise ConfigError("[l2] max_vertices_per_tile must be at least 1000")


class BuildingsStage:
    """Read, repair and ground the footprints (in memory, for addresses and L2)."""

    name: ClassVar[str] = "buildings"
    order: ClassVar[int] = 10
    needs: ClassVar[tuple[str, ...]] = ()

    def enabled(self, project: CityProject) -> bool:
        """When the project has a ``[buildings]`` section."""
        return project.has_section("buildings")

    def inputs(self, project: CityProject) -> list[Path]:
        """The footprint file (with shapefile sidecars) and the DEM."""
        cfg = project.buildings
        assert cfg is not None
        paths = [cfg.path]
        if cfg.path.suffix.lower() == ".shp":
            paths += [p for s in SHAPEFILE_SIDECARS if (p := cfg.path.with_suffix(s)).exists()]
        terrain = project.section("terrain", TerrainConfig)
        if terrain:
            paths += terrain.paths
        return paths

    def sections(self) -> tuple[str, ...]:
        """Config that decides the result."""
        return ("city", "buildings", "datum", "terrain")

    def outputs(self) -> list[str]:
        """The footprint table for the read side, and the partitions later stages read."""
        return ["buildings.parquet", PARTITIONS]

    def run(self, ctx: BuildContext) -> None:
        """Read and repair footprints, set base elevations."""
        report = ctx.stage_report(self.name)
        buildings = read_buildings(ctx.project, report)
        # walls reach below the base by the terrain's error: passed on to the l2 stage
        ctx.artifacts["wall_skirt"] = set_base_elevation(buildings, ctx.project, report)
        report.written = len(buildings)
        buildings, keys = hilbert_sorted(buildings)  # the partitions' order, here too
        write_buildings_table(buildings, ctx.workdir)
        skirt = ctx.artifacts["wall_skirt"]
        write_partitions(buildings, ctx.workdir, wall_skirt=skirt, keys=keys)
        # the footprints' own addresses, before the address stage adds its joins
        ctx.artifacts["own_addresses"] = buildings.addresses.copy()
        ctx.artifacts["buildings"] = buildings
        west, south, east, north = buildings.bounds()
        ctx.manifest.setdefault("extent", [west, south, east, north])


class L2Stage:
    """Every building as a block: ``tiles/l2/tileset.json``."""

    name: ClassVar[str] = "l2"
    order: ClassVar[int] = 50
    needs: ClassVar[tuple[str, ...]] = ("buildings", "addresses")
    #: nothing in memory: the buildings come from their partitions, the addresses
    #: from addresses.sqlite, so an [l2] change re-runs this stage alone
    in_memory: ClassVar[tuple[str, ...]] = ()

    def enabled(self, project: CityProject) -> bool:
        """When the project has buildings."""
        return project.has_section("buildings")

    def inputs(self, project: CityProject) -> list[Path]:
        """The L3 district (its buildings get tiles of their own); the rest come
        through the buildings (and addresses) stages."""
        path = district_path(project)
        return [path] if path is not None else []

    def sections(self) -> tuple[str, ...]:
        """Config that decides the result."""
        return ("l2", "l3")

    def outputs(self) -> list[str]:
        """The tileset folder."""
        return ["tiles/l2"]

    def run(self, ctx: BuildContext) -> None:
        """Write the L2 tileset."""
        cfg = ctx.project.section("l2", L2Config) or L2Config()
        buildings = _buildings(ctx)
        building_addresses(buildings, ctx.workdir / "addresses.sqlite")
        report = ctx.stage_report(self.name)
        report.read = len(buildings)
        figures = write_l2(
            buildings,
            ctx.workdir / "tiles" / "l2",
            L2Options(
                cfg.max_features_per_tile,
                cfg.max_vertices_per_tile,
                cfg.compression,
                cfg.format,
                skirt=partition_index(ctx.workdir)["wall_skirt"],
            ),
            jobs=ctx.jobs,
            track=ctx.track,
            report=report,
            executor=ctx.executor,
            separate=district_mask(ctx.project, buildings),  # L3 replaces those tiles
            previous=ctx.previous / "tiles" / "l2" if ctx.previous else None,
        )
        properties = figures.pop("properties")
        report.written = figures["buildings"]
        report.counts.update(figures)
        ctx.manifest["centre"] = figures["centre"]
        ctx.add_layer(
            "l2",
            {
                "url": "tiles/l2/tileset.json",
                "buildings": figures["buildings"],
                "tiles": figures["tiles"],
                "bytes": figures["bytes"],
                "properties": properties,  # metadata property ids, extras included
                "height_range": [float(buildings.height.min()), float(buildings.height.max())],
                "uses": sorted({u for u in buildings.use if u}),
            },
        )


def _buildings(ctx: BuildContext) -> Buildings:
    """The buildings from memory when their stage ran in this build, else its partitions.

    Either way the same rows in the same order with the footprints' own addresses:
    the joined ones come from addresses.sqlite (:func:`building_addresses`).
    """
    buildings = ctx.artifacts.get("buildings")
    if buildings is None:
        return read_partitions(ctx.workdir)
    return replace(buildings, addresses=ctx.artifacts["own_addresses"].copy())
