"""The ``addresses`` build stage: address points → ``addresses.sqlite``."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import ClassVar

from cim.config import CityProject
from cim.stages import BuildContext
from tiling.addresses.config import AddressesConfig

log = logging.getLogger(__name__)


class AddressStage:
    """Normalise, index and join address points to buildings.

    Enabled when the project has an ``[addresses]`` section. Uses the ``buildings``
    artifact when present (fills its ``addresses`` column); without it the index is
    still written, with no building ids.
    """

    name: ClassVar[str] = "addresses"
    order: ClassVar[int] = 40
    needs: ClassVar[tuple[str, ...]] = ("buildings",)
    #: the buildings come from their partitions when the buildings stage was reused
    in_memory: ClassVar[tuple[str, ...]] = ()

    def enabled(self, project: CityProject) -> bool:
        """Whether the project has an ``[addresses]`` section."""
        return project.has_section("addresses")

    def _config(self, project: CityProject) -> AddressesConfig:
        cfg = project.section("addresses", AddressesConfig)
        assert cfg is not None  # enabled() checked
        return cfg

    def inputs(self, project: CityProject) -> list[Path]:
        """The address file (plus a shapefile's sidecars)."""
        cfg = self._config(project)
        out = [cfg.path]
        if cfg.path.suffix.lower() == ".shp":
            for ext in (".dbf", ".shx", ".prj", ".cpg"):
                side = cfg.path.with_suffix(ext)
                if side.exists():
                    out.append(side)
        return out

    def sections(self) -> tuple[str, ...]:
        """Sections deciding the output (buildings: the join)."""
        return ("addresses", "buildings", "city")

    def outputs(self) -> list[str]:
        """``addresses.sqlite``."""
        return ["addresses.sqlite"]

    def run(self, ctx: BuildContext) -> None:
        """Read, normalise, join, index; report what was skipped or unmatched."""
        # imported here, not at discovery: a build imports only the stages it runs
        from tiling.addresses.build import build_index
        from tiling.addresses.reader import read_addresses
        from tiling.buildings.partitions import FOLDER as PARTITIONS
        from tiling.buildings.partitions import read_partitions

        t0 = time.perf_counter()
        cfg = self._config(ctx.project)
        rep = ctx.stage_report(self.name)
        records = read_addresses(cfg, ctx.project.crs)
        rep.read = len(records) + len(records.skipped)
        for item_id, reason, detail in records.skipped:
            rep.skip(item_id, reason, detail)
        buildings = ctx.artifacts.get("buildings")
        if buildings is None and (ctx.workdir / PARTITIONS).is_dir():
            buildings = read_partitions(ctx.workdir)
        if buildings is None:
            rep.warn("no buildings: addresses are indexed without building ids")
        res = build_index(
            records,
            ctx.workdir / "addresses.sqlite",
            buildings=buildings,
            match_distance=cfg.match_distance,
            default_city=cfg.default_city,
            default_district=cfg.default_district,
            jobs=ctx.jobs,
            progress=ctx.progress,
            executor=ctx.executor,
        )
        for item_id, reason, detail in res.skipped:
            rep.skip(item_id, reason, detail)
        rep.written = res.count
        rep.counts.update(
            {
                "addresses": res.count,
                "attached": res.attached,
                "inside": res.inside,
                "nearest": res.nearest,
                "unmatched": len(res.unmatched),
                "ambiguous": len(res.ambiguous),
            }
        )
        if buildings is not None:
            for i, a in res.unmatched:
                rep.flag(i, "no-building", f"{a}: no building within {cfg.match_distance:g} m")
            for i, a, b in res.ambiguous:
                rep.flag(i, "ambiguous-building", f"{a}: joined to {b}, another is as close")
            if res.unmatched:
                rep.warn(
                    f"{len(res.unmatched)} address points have no building within "
                    f"{cfg.match_distance:g} m"
                )
        if res.count == 0:
            rep.warn(f"{cfg.path.name}: no usable address point (see the skipped items)")
        ctx.artifacts["addresses"] = ctx.workdir / "addresses.sqlite"
        ctx.add_layer("addresses", {"url": "addresses.sqlite", "count": res.count})
        rep.seconds = time.perf_counter() - t0
