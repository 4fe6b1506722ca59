"""The ``pipelines`` build stage: pipe surveys → ``tiles/pipelines`` and the network file."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from cim.config import CityProject, PipelinesConfig, TerrainConfig
from cim.stages import BuildContext

# numpy, networkx, rasterio and the pipeline modules are imported in ``run``: every
# build discovers this stage, only projects with ``[pipelines]`` run it

log = logging.getLogger(__name__)

SIDECARS = (".dbf", ".shx", ".prj", ".cpg")
TILESET = "tiles/pipelines/tileset.json"


class PipelinesStage:
    """Underground pipelines in 3D, and their network for queries.

    Enabled by a ``[pipelines]`` section (:class:`cim.config.PipelinesConfig`). Points
    without a ground elevation take the DEM's (``[terrain]``) when there is one.
    """

    name: ClassVar[str] = "pipelines"
    order: ClassVar[int] = 60
    needs: ClassVar[tuple[str, ...]] = ()

    def enabled(self, project: CityProject) -> bool:
        """Whether the project has a ``[pipelines]`` section."""
        return project.has_section("pipelines")

    def _config(self, project: CityProject) -> PipelinesConfig:
        cfg = project.section("pipelines", PipelinesConfig)
        assert cfg is not None  # enabled() checked
        return cfg

    def inputs(self, project: CityProject) -> list[Path]:
        """The survey files (with shapefile sidecars) and the DEM."""
        cfg = self._config(project)
        paths: list[Path] = []
        for path in [*cfg.points, *cfg.segments, *cfg.lines]:
            paths.append(path)
            if path.suffix.lower() == ".shp":
                paths += [p for s in SIDECARS if (p := path.with_suffix(s)).exists()]
        terrain = project.section("terrain", TerrainConfig)
        if terrain:
            paths += terrain.paths
        return paths

    def sections(self) -> tuple[str, ...]:
        """Config that decides the result."""
        return ("pipelines", "city", "datum", "terrain")

    def outputs(self) -> list[str]:
        """The tileset folder and the network file."""
        from cim.pipelines import NETWORK_FILE

        return ["tiles/pipelines", NETWORK_FILE]

    def run(self, ctx: BuildContext) -> None:
        """Read, place, tile and index the survey; report every repair and skip.

        The network file is written on a thread while the tiles are encoded (in the
        workers, or in between on this thread): its SQLite inserts overlap the tiles'
        work instead of following it. ``counts.timings`` holds each step's wall and
        CPU seconds (CPU: this process's; the workers' is not seen here).
        """
        import numpy as np

        from cim.datum import Datum
        from cim.pipelines import NETWORK_FILE, UTILITIES, clearance_tables
        from cim.raster import DemMosaic
        from tiling.pipelines.model import build_model
        from tiling.pipelines.reader import read_survey
        from tiling.pipelines.tiles import write_network, write_tiles

        project = ctx.project
        cfg = self._config(project)
        report = ctx.stage_report(self.name)
        timer = _Timer()
        tables = clearance_tables(cfg.clearance, cfg.vertical_clearance)
        terrain = project.section("terrain", TerrainConfig)
        ground_at = None
        if terrain:
            dem = DemMosaic(terrain.paths, crs=terrain.crs, default_crs=project.crs)
            ground_at = dem.sample
        with timer("read"):
            survey = read_survey(cfg, project.crs, ground_at)
        report.read = survey.read_segments
        datum = Datum.from_config(project.datum)
        with timer("model"):
            model, issues = build_model(survey, cfg, datum)
        for item_id, reason, detail, repaired in issues:
            if reason == "crs-note":
                report.warn(detail)
            elif repaired:
                report.repair(item_id, reason, detail)
            else:
                report.skip(item_id, reason, detail)
        meta = {
            "origin": list(model.origin),
            "frame": [float(v) for v in model.frame.ravel()],
            "crs": survey.crs,
            "depth_reference": cfg.depth_reference,
            "clearance": tables,
            "sources": [str(s) for s in cfg.sources],
        }
        with ThreadPoolExecutor(1, thread_name_prefix="pipe-network") as side:
            network = side.submit(
                timer.wrap("network", write_network), model, ctx.workdir / NETWORK_FILE, meta
            )
            with timer("tiles"):
                figures = write_tiles(
                    model,
                    cfg,
                    ctx.workdir / "tiles" / "pipelines",
                    jobs=ctx.jobs,
                    executor=getattr(ctx, "executor", None),
                    track=ctx.track,
                )
            network.result()
        report.counts["timings"] = timer.figures()
        report.written = len(model.ids)
        utilities = {
            k: int((model.utility == k).sum()) for k in UTILITIES if (model.utility == k).any()
        }
        report.counts.update({**figures, "points": len(model.pt_ids), "utilities": utilities})
        lon, lat = model.pt_lon, model.pt_lat
        ctx.add_layer(
            "pipelines",
            {
                "url": TILESET,
                "network": NETWORK_FILE,
                "segments": len(model.ids),
                "points": len(model.pt_ids),
                "valves": int(model.pt_valve.sum()),
                "wells": figures["wells"],
                "tiles": figures["tiles"],
                "bytes": figures["bytes"],
                "utilities": {
                    k: {"segments": n, "name": UTILITIES[k].name, "colour": UTILITIES[k].colour}
                    for k, n in utilities.items()
                },
                "depth_range": [
                    float(np.nanmin([model.start_depth.min(), model.end_depth.min()])),
                    float(np.nanmax([model.start_depth.max(), model.end_depth.max()])),
                ],
                "extent": [float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())],
            },
        )
        ctx.manifest.setdefault(
            "extent", [float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())]
        )


class _Timer:
    """Wall and CPU seconds of the stage's steps (thread-safe: one step runs aside)."""

    def __init__(self) -> None:
        self._steps: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            figures = {
                "wall": round(time.perf_counter() - wall, 3),
                "cpu": round(time.thread_time() - cpu, 3),
            }
            with self._lock:
                self._steps[step] = figures
            log.debug("pipelines %s: %.2f s wall, %.2f s CPU", step, *figures.values())

    def wrap(self, step: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` timed as ``step`` (for a call on another thread)."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self(step):
                return fn(*args, **kwargs)

        return timed

    def figures(self) -> dict[str, dict[str, float]]:
        """``{step: {"wall": s, "cpu": s}}`` in the order the steps ended."""
        with self._lock:
            return dict(self._steps)
