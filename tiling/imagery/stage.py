"""The ``imagery`` build stage: orthophoto GeoTIFF(s) → ``imagery/`` tile pyramid."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import ClassVar

from cim.config import CityProject, ImageryConfig
from cim.stages import BuildContext

log = logging.getLogger(__name__)


class ImageryStage:
    """Build ``imagery/tilejson.json`` and ``imagery/{z}/{x}/{y}.{webp|jpg|png}``.

    Reads ``[imagery]`` (:class:`cim.config.ImageryConfig`).
    """

    name: ClassVar[str] = "imagery"
    order: ClassVar[int] = 30
    needs: ClassVar[tuple[str, ...]] = ()

    def enabled(self, project: CityProject) -> bool:
        """Whether the project has an ``[imagery]`` section."""
        return project.has_section("imagery")

    def inputs(self, project: CityProject) -> list[Path]:
        """The orthophoto files."""
        cfg = project.section("imagery", ImageryConfig)
        return list(cfg.paths) if cfg else []

    def sections(self) -> tuple[str, ...]:
        """Sections whose values decide the output."""
        return ("imagery",)

    def outputs(self) -> list[str]:
        """What the stage writes under the output folder."""
        return ["imagery"]

    def run(self, ctx: BuildContext) -> None:
        """Build the imagery pyramid into ``ctx.workdir / "imagery"``."""
        # imported here, not at discovery: a build imports only the stages it runs
        from cim.raster import check_rasters_overlap
        from tiling.imagery.build import EXTENSIONS, build_imagery

        cfg = ctx.project.section("imagery", ImageryConfig)
        if cfg is None:
            return
        report = ctx.stage_report(self.name)
        t0 = time.perf_counter()
        # an orthophoto in the wrong CRS still lands on the Earth, but not on the city
        for warning in check_rasters_overlap(
            cfg.paths,
            cfg.crs,
            ctx.project.crs,
            ctx.manifest.get("extent"),
            what="imagery",
            kind="orthophoto",
        ):
            report.warn(warning)
        result = build_imagery(
            cfg.paths,
            ctx.workdir / "imagery",
            crs=cfg.crs,
            default_crs=ctx.project.crs,
            nodata=cfg.nodata,
            min_zoom=cfg.min_zoom,
            max_zoom=cfg.max_zoom,
            format=cfg.format,
            quality=cfg.quality,
            resampling=cfg.resampling,
            tile_size=cfg.tile_size,
            jobs=max(1, ctx.jobs),
            name=f"{ctx.project.name} orthophoto",
            track=ctx.track,
            executor=ctx.executor,
        )
        report.read += len(cfg.paths)
        report.written += result.tiles
        if cfg.max_zoom is not None and cfg.max_zoom > result.auto_max_zoom + 2:
            report.warn(
                f"max_zoom {cfg.max_zoom} is {cfg.max_zoom - result.auto_max_zoom} levels "
                f"finer than the imagery resolution (level {result.auto_max_zoom})"
            )
        for s in result.sources:
            if s.stretch is not None:
                report.repair(
                    s.path.name,
                    "16-bit-stretched",
                    f"16-bit values {s.stretch[0]:g}–{s.stretch[1]:g} mapped to 0–255",
                )
        if result.tiles == 0:
            report.warn("no imagery tile written: the orthophoto(s) hold no valid pixel")
        report.counts.update(
            {
                "tiles": result.tiles,
                "bytes": result.bytes,
                "max_zoom": result.tilejson.maxzoom,
                "auto_max_zoom": result.auto_max_zoom,
                "levels": {str(z): {"tiles": t, "bytes": b} for z, (t, b) in result.levels.items()},
            }
        )
        report.seconds += time.perf_counter() - t0
        tj = result.tilejson
        ctx.add_layer(
            "imagery",
            {
                "url": "imagery/tilejson.json",
                "tiles": f"imagery/{{z}}/{{x}}/{{y}}.{EXTENSIONS[tj.format]}",
                "bounds": [round(b, 9) for b in tj.bounds],
                "scheme": "geographic",
                "tile_order": "xyz",
                "format": tj.format,
                "minzoom": tj.minzoom,
                "maxzoom": tj.maxzoom,
                "tile_size": tj.tile_size,
            },
        )
        log.info(
            "imagery: %d tiles, %.1f MB in %.1f s",
            result.tiles,
            result.bytes / 1e6,
            result.seconds,
        )
