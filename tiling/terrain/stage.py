"""The ``terrain`` build stage: DEM GeoTIFF(s) → ``terrain/`` quantized-mesh tiles."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import ClassVar

from cim.config import CityProject, TerrainConfig
from cim.stages import BuildContext

log = logging.getLogger(__name__)


class TerrainStage:
    """Build ``terrain/layer.json`` and ``terrain/{z}/{x}/{y}.terrain`` (gzip).

    Reads ``[terrain]`` (:class:`cim.config.TerrainConfig`) and ``[datum]``.
    """

    name: ClassVar[str] = "terrain"
    order: ClassVar[int] = 20
    needs: ClassVar[tuple[str, ...]] = ()

    def enabled(self, project: CityProject) -> bool:
        """Whether the project has a ``[terrain]`` section."""
        return project.has_section("terrain")

    def inputs(self, project: CityProject) -> list[Path]:
        """The DEM files and the geoid grid, if any."""
        cfg = project.section("terrain", TerrainConfig)
        paths = list(cfg.paths) if cfg else []
        if project.datum.geoid_grid is not None:
            paths.append(project.datum.geoid_grid)
        return paths

    def sections(self) -> tuple[str, ...]:
        """Sections whose values decide the output."""
        return ("terrain", "datum")

    def outputs(self) -> list[str]:
        """What the stage writes under the output folder."""
        return ["terrain"]

    def run(self, ctx: BuildContext) -> None:
        """Build the terrain pyramid into ``ctx.workdir / "terrain"``."""
        # imported here, not at discovery: a build imports only the stages it runs
        from cim.raster import check_rasters_overlap
        from tiling.terrain.build import build_terrain

        cfg = ctx.project.section("terrain", TerrainConfig)
        if cfg is None:
            return
        report = ctx.stage_report(self.name)
        t0 = time.perf_counter()
        # a DEM in the wrong CRS still lands on the Earth, but not under the buildings
        for warning in check_rasters_overlap(
            cfg.paths,
            cfg.crs,
            ctx.project.crs,
            ctx.manifest.get("extent"),
            what="terrain",
            kind="DEM",
        ):
            report.warn(warning)
        result = build_terrain(
            cfg.paths,
            ctx.workdir / "terrain",
            crs=cfg.crs,
            default_crs=ctx.project.crs,
            datum=ctx.project.datum,
            min_zoom=cfg.min_zoom,
            max_zoom=cfg.max_zoom,
            error_factor=cfg.error_factor,
            coarse_fill_zoom=cfg.coarse_fill_zoom,
            normals=cfg.normals,
            compression_level=cfg.compression_level,
            jobs=max(1, ctx.jobs),
            measure=True,
            name=f"{ctx.project.name} terrain",
            track=ctx.track,
            executor=ctx.executor,
        )
        report.read += len(cfg.paths)
        report.written += result.tiles
        if cfg.max_zoom is not None and cfg.max_zoom > result.auto_max_zoom + 2:
            report.warn(
                f"max_zoom {cfg.max_zoom} is {cfg.max_zoom - result.auto_max_zoom} levels "
                f"finer than the DEM resolution supports (level {result.auto_max_zoom})"
            )
        over = [z for z, lv in result.levels.items() if lv.max_error > lv.geometric_error]
        if over:
            report.warn(f"vertical error above CesiumJS's assumption at levels {over}")
        report.counts.update(
            {
                "tiles": result.tiles,
                "bytes": result.bytes,
                "max_zoom": result.layer.maxzoom,
                "auto_max_zoom": result.auto_max_zoom,
                "levels": {
                    str(z): {
                        "tiles": lv.tiles,
                        "bytes": lv.bytes,
                        "triangles": lv.triangles,
                        "max_error_m": round(lv.max_error, 3),
                        "geometric_error_m": round(lv.geometric_error, 3),
                    }
                    for z, lv in result.levels.items()
                },
            }
        )
        report.seconds += time.perf_counter() - t0
        ctx.add_layer(
            "terrain",
            {
                "url": "terrain/layer.json",
                "format": "quantized-mesh-1.0",
                "scheme": "geographic",
                "bounds": [round(b, 9) for b in result.dem_bounds],
                "minzoom": 0,
                "maxzoom": result.layer.maxzoom,
                "extensions": result.layer.extensions,
                "content_encoding": "gzip",
                "tiles": result.tiles,
            },
        )
        log.info(
            "terrain: %d tiles, %.1f MB in %.1f s",
            result.tiles,
            result.bytes / 1e6,
            result.seconds,
        )
