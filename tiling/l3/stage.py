"""The ``l3`` build stage: detailed, textured models of the ``[l3] district``.

Runs after ``l2`` (whose district tiles it replaces): reads the district's buildings
from the ``buildings`` stage, their roof specs and looks from the attribute mapping
(:mod:`tiling.l3.attributes`), builds, dresses and writes one task per L2 district
tile through the build's executor (:mod:`tiling.l3.tiles`), and writes
``tiles/l3/tileset.json`` (the district alone) and ``tiles/l3/city.json`` (one
stream with L2, :mod:`tiling.l3.stream`). Every fallback of the roof engine, every
attribute that could not be used and every building left without a model is in the
report.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import shapely

from cim.config import CityProject, ImageryConfig
from cim.crs import enu_to_ecef_matrix
from cim.errors import ConfigError
from cim.model import Buildings
from cim.report import StageReport
from cim.stages import BuildContext
from tiling.gltf import PropertySpec
from tiling.l3.district import district_mask, district_path
from tiling.l3.models import ModelConfig
from tiling.l3.stream import district_tiles, l3_tileset, stream_tileset
from tiling.pool import run_tasks

if TYPE_CHECKING:
    from tiling.l3.tiles import GroupTask, Ortho

log = logging.getLogger(__name__)

L3_PROPERTIES = [
    PropertySpec("roof_form", "STRING", description="roof form of the L3 model"),
    PropertySpec("eave_height", "SCALAR", "FLOAT32", description="eave above the base, m"),
    PropertySpec("ridge_height", "SCALAR", "FLOAT32", description="ridge above the base, m"),
]
TEXTURE_FORMATS = ("webp", "jpeg", "png")
#: Buildings per task: an L2 tile's buildings are shared among several workers. Large
#: enough that the batched roofs (:mod:`tiling.l3.roofs.batch`) meet many buildings of
#: each form at once; small enough that 2 workers share a district of a few thousand.
TASK_BUILDINGS = 800


@dataclass(frozen=True)
class L3Config:
    """The ``[l3]`` section (docs/l3.md)."""

    district: Path
    texture_format: str = "webp"
    quality: int = 80
    roof_texture: str = "auto"
    max_tile_bytes: int = 2_000_000
    min_error: float = 2.0
    compression: str = "meshopt"
    floor_height: float = 3.0
    models: list[ModelConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.texture_format not in TEXTURE_FORMATS:
            raise ConfigError(f"[l3] texture_format must be one of {list(TEXTURE_FORMATS)}")
        if self.roof_texture not in ("auto", "ortho", "material"):
            raise ConfigError("[l3] roof_texture must be 'auto', 'ortho' or 'material'")
        if self.compression not in ("meshopt", "none"):
            raise ConfigError("[l3] compression must be 'meshopt' or 'none'")
        if not 1 <= self.quality <= 100:
            raise ConfigError("[l3] quality must be 1–100")
        if not 100_000 <= self.max_tile_bytes <= 20_000_000:
            raise ConfigError("[l3] max_tile_bytes must be 100,000–20,000,000")
        if not 0.0 < self.min_error <= 100.0:
            raise ConfigError("[l3] min_error must be in (0, 100] m")


class L3Stage:
    """The district's detailed models: ``tiles/l3/tileset.json`` and ``city.json``."""

    name: ClassVar[str] = "l3"
    order: ClassVar[int] = 60
    needs: ClassVar[tuple[str, ...]] = ("buildings", "addresses", "l2")

    def enabled(self, project: CityProject) -> bool:
        """When the project has buildings and an ``[l3] district``."""
        return project.has_section("buildings") and district_path(project) is not None

    def inputs(self, project: CityProject) -> list[Path]:
        """The district, the orthophoto (roof textures) and the imported models."""
        path = district_path(project)
        imagery = project.section("imagery", ImageryConfig)
        cfg = project.section("l3", L3Config)
        models = [m.path for m in cfg.models] if cfg else []
        paths = [p for p in (path,) if p is not None] + (list(imagery.paths) if imagery else [])
        return paths + models

    def sections(self) -> tuple[str, ...]:
        """Config that decides the result."""
        return ("l3", "imagery", "buildings")

    def outputs(self) -> list[str]:
        """The tileset folder."""
        return ["tiles/l3"]

    def run(self, ctx: BuildContext) -> None:
        """Build the district's models and both tilesets."""
        cfg = ctx.project.section("l3", L3Config)
        assert cfg is not None
        report = ctx.stage_report(self.name)
        buildings: Buildings = ctx.artifacts["buildings"]
        mask = district_mask(ctx.project, buildings)
        assert mask is not None
        report.read = int(mask.sum())
        out_dir = ctx.workdir / "tiles" / "l3"
        (out_dir / "content").mkdir(parents=True, exist_ok=True)
        if not mask.any():
            report.warn("no building lies inside the [l3] district: no L3 tiles")
            return
        figures = write_l3(
            buildings,
            mask,
            ctx.workdir / "tiles" / "l2",
            out_dir,
            cfg,
            frame=enu_to_ecef_matrix(*ctx.manifest["centre"]),
            skirt=ctx.artifacts.get("wall_skirt", 0.0),
            ortho=_ortho(ctx.project),
            report=report,
            default_crs=ctx.project.crs,
            run=lambda fn, tasks: run_tasks(
                fn, tasks, executor=ctx.executor, track=ctx.track, desc="L3 tiles", unit="group"
            ),
        )
        report.written = figures["buildings"]
        report.counts.update(figures)
        ctx.add_layer(
            "l3",
            {
                "url": "tiles/l3/tileset.json",
                "stream": "tiles/l3/city.json",
                "buildings": figures["buildings"],
                "tiles": figures["tiles"],
                "bytes": figures["bytes"],
                "properties": figures["properties"],
                "roof_forms": figures["roof_forms"],
                "texture_format": cfg.texture_format,
            },
        )


def _ortho(project: CityProject) -> Ortho | None:
    from tiling.l3.tiles import Ortho

    imagery = project.section("imagery", ImageryConfig)
    if imagery is None or not imagery.paths:
        return None
    crs = imagery.crs or project.crs or "EPSG:4326"
    return Ortho(tuple(str(p) for p in imagery.paths), crs)


def write_l3(
    buildings: Buildings,
    mask: np.ndarray,
    l2_dir: Path,
    out_dir: Path,
    cfg: L3Config,
    *,
    frame: np.ndarray,
    skirt: float,
    ortho: Ortho | None,
    report: StageReport,
    run: Any = None,
    default_crs: str | None = None,
) -> dict[str, Any]:
    """Write the L3 tiles of the district buildings (``mask``) and both tilesets.

    Parameters
    ----------
    buildings : Buildings
        The whole city (metadata columns are typed over it, as L2 types them).
    mask : ndarray of bool
        The district's buildings.
    l2_dir, out_dir : Path
        ``tiles/l2`` (written by the l2 stage with the district apart) and ``tiles/l3``.
    cfg : L3Config
    frame : (4, 4) ndarray
        The L2 tileset's frame (ENU at its centre → ECEF).
    skirt : float
        Walls reach this far below the base (the terrain's error).
    ortho : Ortho or None
        The orthophoto to cut roofs from.
    report : StageReport
    run : callable, optional
        ``run(fn, tasks)`` → results (the build's executor); default in-process.
    default_crs : str, optional
        CRS of imported models and anchors that name none (``[city] crs``).

    Returns
    -------
    dict
        Figures: buildings, tiles, bytes, max_tile_bytes, bytes_per_building,
        roof_forms (count per form), fallbacks, properties.
    """
    # the roof engine loads with the stage's work, not with every `cim` command
    from tiling.buildings.l2 import _property_columns  # the L2 metadata, same types
    from tiling.l3.attributes import dress
    from tiling.l3.tiles import GroupTask, L3Options

    props, columns, _ = _property_columns(buildings, StageReport("l3-metadata"))
    index = np.flatnonzero(mask)
    district = buildings.take(index)
    dressing = dress(
        district,
        report,
        floor_height=cfg.floor_height,
        ortho=ortho is not None,
        roof_texture=cfg.roof_texture,
    )
    imported = _imported_models(cfg, district, frame, report, default_crs)
    for row, model in imported.items():
        dressing.forms[row] = f"imported:{model[3]}"
    row_of = {str(v): k for k, v in enumerate(district.ids.tolist())}
    groups_ids = district_tiles(l2_dir, set(row_of))
    props = props + L3_PROPERTIES
    options = L3Options(cfg.texture_format, cfg.quality, cfg.compression, cfg.max_tile_bytes, skirt)
    wkb = shapely.to_wkb(district.footprints)
    tasks = []
    owners = []  # the L2 tile of each task
    for uri, ids in groups_ids.items():
        rows_all = np.array([row_of[i] for i in ids], dtype=np.int64)
        for k, rows in enumerate(_task_rows(rows_all, district.footprints)):
            table = {p.id: columns[p.id][index[rows]] for p in props if p.id in columns}
            table["roof_form"] = dressing.forms[rows]
            owners.append(uri)
            tasks.append(
                GroupTask(
                    name=f"{Path(uri).stem}-{k}",
                    frame=frame,
                    ids=district.ids[rows],
                    footprints=wkb[rows],
                    base=district.base[rows],
                    specs=[dressing.specs[r] for r in rows],
                    looks=[dressing.looks[r] for r in rows],
                    properties=props,
                    table=table,
                    options=options,
                    out_dir=str(out_dir),
                    ortho=ortho,
                    models={
                        j: imported[int(r)][:3]
                        for j, r in enumerate(rows.tolist())
                        if r in imported
                    },
                )
            )
    run = run or (lambda fn, ts: map(fn, ts))
    results = dict(run(_named, tasks))  # executors return in completion order
    groups = _groups(owners, tasks, results, cfg, report)
    _write(out_dir / "tileset.json", l3_tileset(groups, frame))
    _write(out_dir / "city.json", stream_tileset(l2_dir, groups))
    return _figures(groups, results, dressing.forms, props)


def _imported_models(
    cfg: L3Config,
    district: Buildings,
    frame: np.ndarray,
    report: StageReport,
    default_crs: str | None,
) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, str]]:
    """``[[l3.models]]`` placed on their buildings: row → (frame positions, triangles,
    surfaces, name); models on no district building are warned about."""
    from cim.crs import lonlat_to_enu
    from tiling.l3.models import assign, load_models

    models = [m for entry in cfg.models for m in load_models(entry, default_crs)]
    if not models:
        return {}
    placed, left = assign(models, district.ids, district.footprints)
    for name, why in left:
        report.warn(f"imported model {name}: {why}")
    out = {}
    for row, m in placed.items():
        enu = lonlat_to_enu(m.lon, m.lat, district.base[row] + m.z, frame)
        out[row] = (enu, m.triangles, m.surface, m.name)
        report.repair(district.ids[row], "imported-model", f"replaced by {m.name}")
    report.counts["imported_models"] = len(out)
    return out


def _named(task: GroupTask) -> tuple[str, dict[str, Any]]:
    from tiling.l3.tiles import run_group

    return task.name, run_group(task)


def _task_rows(rows: np.ndarray, footprints: np.ndarray) -> list[np.ndarray]:
    """An L2 tile's buildings in tasks of at most ``TASK_BUILDINGS``, near ones together
    (Morton order of their centres), so the executor's workers share a large tile."""
    if len(rows) <= TASK_BUILDINGS:
        return [rows]
    from tiling.l3.tiles import _morton

    c = shapely.get_coordinates(shapely.centroid(footprints[rows]))
    ordered = rows[np.argsort(_morton(c), kind="stable")]
    n = -(-len(rows) // TASK_BUILDINGS)
    return [part for part in np.array_split(ordered, n) if len(part)]


def _groups(
    owners: list[str],
    tasks: list[GroupTask],
    results: dict[str, dict[str, Any]],
    cfg: L3Config,
    report: StageReport,
) -> dict[str, dict[str, Any]]:
    """Per L2 district tile: its L3 tiles and its swap error (report filled)."""
    groups: dict[str, dict[str, Any]] = {}
    for uri, task in zip(owners, tasks, strict=True):
        res = results[task.name]
        for bid, detail in res["fallbacks"]:
            report.repair(bid, "roof-fallback", detail)
        for bid, detail in res["skipped"]:
            report.skip(bid, "no-model", detail)
        dev = res["deviation"]
        error = float(np.nanmax(dev)) if np.isfinite(dev).any() else 0.0
        group = groups.setdefault(uri, {"tiles": [], "error": cfg.min_error})
        group["tiles"] += res["tiles"]
        group["error"] = max(group["error"], error)
    return groups


def _figures(
    groups: dict[str, dict[str, Any]],
    results: dict[str, dict[str, Any]],
    forms: np.ndarray,
    props: list[PropertySpec],
) -> dict[str, Any]:
    tiles = [t for g in groups.values() for t in g["tiles"]]
    sizes = [t["bytes"] for t in tiles]
    modelled = sum(len(t["rows"]) for t in tiles)
    return {
        "buildings": modelled,
        "tiles": len(tiles),
        "bytes": int(sum(sizes)),
        "max_tile_bytes": int(max(sizes, default=0)),
        "bytes_per_building": round(sum(sizes) / max(modelled, 1), 1),
        "roof_forms": dict(sorted(Counter(forms.tolist()).items())),
        "fallbacks": sum(len(r["fallbacks"]) for r in results.values()),
        "properties": [p.id for p in props],
    }


def _write(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, separators=(",", ":"), ensure_ascii=False), encoding="utf-8")
