"""The ``buildings`` and ``l2`` build stages (entry points in setup.cfg)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from cim.config import CityProject, TerrainConfig
from cim.errors import ConfigError
from cim.memory import release_unused
from cim.model import ArrowText, Buildings, EncodedFootprints, WkbColumn
from cim.stages import BuildContext
from tiling.buildings import repair_cache
from tiling.buildings.export import write_buildings_table
from tiling.buildings.footprints import FootprintArrays
from tiling.buildings.ground import set_base_elevation
from tiling.buildings.l2 import L2Options, write_l2
from tiling.buildings.partitions import FOLDER as PARTITIONS
from tiling.buildings.partitions import (
    block_bounds,
    building_addresses,
    hilbert_order,
    partition_index,
    partition_table,
    read_partitions_for_tiles,
    text_columns,
    write_partitions,
)
from tiling.buildings.prepare import Runner, read_footprints
from tiling.buildings.repair_cache import Repairs
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


#: Footprints from which the stage lets the repair cache's writer finish before the
#: buildings' columns are made. Below, the cache's arrays are under 150 MB and the wait
#: (0.4–0.7 s at a million footprints, while the workers are idle) is not worth it.
WAIT_FOR_CACHE_ROWS = 2_000_000


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
        # the L2 tile workers start (and import their modules) while this stage reads
        ctx.executor.warm(("tiling.buildings.l2", "tiling.buildings.repair"))
        report = ctx.stage_report(self.name)
        # the per-row repair runs on the workers, which also encode the WKB and
        # centroids the partitions and the L2 stage need; rows the last build
        # repaired are taken from its repairs
        repairs = Repairs(ctx.previous / PARTITIONS if ctx.previous else None)

        def write_repairs() -> Callable[[], None]:
            """Write this build's repairs now, while the workers are idle; what waits
            for the writer before the buildings' columns are made."""
            assert repairs.made is not None
            rows = len(repairs.made)
            job = ctx.in_background(_write_repairs, ctx.workdir / PARTITIONS, repairs)
            # the writer reads the repaired city's figures and the cache's own arrays
            # (0.6 GB at ten million footprints): in a large city they are let go before
            # the buildings' columns are made and the figures put in another order, so
            # that they are never all whole at once. A smaller city does not wait
            if rows < WAIT_FOR_CACHE_ROWS:
                return lambda: None
            return lambda: _wait_for(job, "the repair cache's writer")

        buildings, figures = read_footprints(
            ctx.project,
            report,
            run=Runner(ctx.executor, ctx.track),
            repairs=repairs,
            write_repairs=write_repairs,
        )
        # the input's Arrow buffers and the checks' scratch are freed: back to the
        # system, so the steps after this one do not add to pools that keep them
        release_unused()
        if repairs.reused:
            report.counts.update(repairs_reused=repairs.reused, repairs_rows=repairs.rows)
        # walls reach below the base by the terrain's error: passed on to the l2 stage
        skirt = ctx.artifacts["wall_skirt"] = set_base_elevation(buildings, ctx.project, report)
        report.written = len(buildings)
        bounds = figures.total_bounds()  # the order's frame and the extent
        order, keys = hilbert_order(buildings, figures.centres, bounds)  # the partitions' too
        # each figure in its old order let go as it is taken (the WKB: below)
        figures = figures.take(order, release=True)
        # footprints still encoded are the figures' WKB: taken once (a million random reads)
        encoded = EncodedFootprints(figures.wkb) if buildings.footprints_wkb is not None else None
        # the table in its old order is emptied column by column as it is taken
        buildings = buildings.take(order, footprints=encoded, release=True)
        if isinstance(figures.wkb, WkbColumn):
            # one gather of the bytes for the repair's pieces, the rows kept and this
            # order (WkbColumn composes them), before two threads read them: the
            # partitions' writer and the L2 plan; the bytes in the workers' order are
            # let go chunk by chunk as they are taken
            figures.wkb.gather(consume=True)
            release_unused()
        # the footprints' own addresses, before the address stage adds its joins (to a
        # copy it puts in their place: this array is never changed)
        own = buildings.addresses
        # the text columns in Arrow, once: the partitions store them, the L2 tiles take them
        text = ctx.artifacts["text"] = text_columns(buildings)
        # the rows' bounds serve the partitions' bounds alone: those are taken now and
        # the rows' let go before the L2 stage (0.3 GB at ten million footprints)
        part_bounds = block_bounds(figures.bounds)
        figures = figures.without_bounds()
        # the files are written while the next stages run (they get the table in memory);
        # the writer gets the footprints' own addresses: nothing changes ``own`` (the
        # address stage and the L2 stage join theirs to copies)
        ctx.in_background(
            _write_tables,
            buildings.replace(addresses=own),
            ctx.workdir,
            skirt,
            keys,
            figures,
            text,
            (bounds, part_bounds),
        )
        ctx.artifacts["own_addresses"] = own
        ctx.artifacts["buildings"] = buildings
        ctx.artifacts["bounds"] = bounds  # the L2 frame's extent: not computed again
        # computed once, by the repair: the L2 stage would otherwise compute them again
        ctx.artifacts["footprints"] = figures
        west, south, east, north = bounds
        ctx.manifest.setdefault("extent", [west, south, east, north])


def _wait_for(job: Future[Any], what: str) -> None:
    """Let a background job finish (its error is raised at the build's end)."""
    start = time.perf_counter()
    wait([job])
    log.debug("buildings: waited %.2f s for %s", time.perf_counter() - start, what)


def _write_tables(
    buildings: Buildings,
    workdir: Path,
    skirt: float,
    keys: np.ndarray,
    figures: FootprintArrays,
    text: dict[str, pa.Array],
    bounds: tuple[tuple[float, float, float, float], np.ndarray],
) -> None:
    """``buildings.parquet`` and the partitions, from one Arrow table; ``bounds``: the
    city's and each partition's (``figures`` has no per-row bounds)."""
    extent, part_bounds = bounds
    # each partition's centres are put in as it is written: no copy of the city's
    table = partition_table(buildings, keys, wkb=figures.wkb, text=text, with_centres=False)
    write_buildings_table(buildings, workdir, columns=table, figures=figures, extent=extent)
    write_partitions(
        buildings,
        workdir,
        wall_skirt=skirt,
        keys=keys,
        table=table,
        figures=figures,
        part_bounds=part_bounds,
    )
    del table
    release_unused()  # the Arrow copy of the city, freed


def _write_repairs(folder: Path, repairs: Repairs) -> None:
    """The footprints' repairs for the next build; then their memory is freed."""
    assert repairs.made is not None
    repair_cache.write(folder, repairs.made, repairs.crs, repairs.min_area, repairs.base)
    repairs.made = None


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
        buildings, footprints, bounds = _buildings(ctx)
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
                skirt=_wall_skirt(ctx),
            ),
            jobs=ctx.jobs,
            track=ctx.track,
            report=report,
            executor=ctx.executor,
            separate=district_mask(ctx.project, buildings),  # L3 replaces those tiles
            previous=ctx.previous / "tiles" / "l2" if ctx.previous else None,
            wkb=footprints.wkb,
            centres=footprints.centres,
            bounds=bounds,
            areas=footprints.areas,
            vertex_counts=footprints.vertices,
            footprint_hashes=footprints.hashes,
            # the buildings stage's, or made from the partitions' twins
            text=ctx.artifacts.get("text") or text_columns(buildings),
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
                "uses": _distinct_uses(buildings),
            },
        )


def _buildings(
    ctx: BuildContext,
) -> tuple[Buildings, FootprintArrays, tuple[float, float, float, float] | None]:
    """The buildings from memory when their stage ran in this build, else its partitions.

    Either way the same rows in the same order with the footprints' own addresses
    (the joined ones come from addresses.sqlite: :func:`building_addresses`), the
    footprints' WKB and figures, and their bounds when known (else None).
    """
    buildings = ctx.artifacts.get("buildings")
    if buildings is None:
        buildings, wkb, centres = read_partitions_for_tiles(ctx.workdir)
        bounds = partition_index(ctx.workdir).get("bounds")  # buildings.bounds(), exact
        figures = FootprintArrays.of(buildings.footprints, wkb=wkb, centres=centres)
        return buildings, figures, tuple(bounds) if bounds else None
    own = ctx.artifacts["own_addresses"]
    if (ctx.workdir / "addresses.sqlite").is_file():
        own = own.copy()  # building_addresses extends it in place: not the artifact
    figures = ctx.artifacts["footprints"]
    return buildings.replace(addresses=own), figures, ctx.artifacts.get("bounds")


def _wall_skirt(ctx: BuildContext) -> float:
    if "wall_skirt" in ctx.artifacts:  # the partitions may still be being written
        return float(ctx.artifacts["wall_skirt"])
    return float(partition_index(ctx.workdir)["wall_skirt"])


def _distinct_uses(buildings: Buildings) -> list[str]:
    """The buildings' uses, each once, sorted ("" left out): in Arrow where the
    column is held as Arrow, else through ``set()`` in C."""
    use = buildings.held("use")
    distinct = use.arrow.unique().to_pylist() if isinstance(use, ArrowText) else set(use.tolist())
    return sorted(u for u in distinct if u)
