"""Build a quantized-mesh terrain pyramid from DEM GeoTIFF(s).

:func:`build_terrain` plans the tiles (the whole globe at levels
0..``coarse_fill_zoom``, the DEM's footprint above), builds them in a process pool
(:mod:`tiling.terrain.mesh`), writes ``{z}/{x}/{y}.terrain`` gzip-compressed and a
``layer.json`` whose ``available`` ranges list exactly the files written.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cim.config import DatumConfig
from cim.datum import Datum
from cim.executor import Executor
from cim.raster import DemMosaic
from tiling.pool import run_tasks
from tiling.terrain import scheme
from tiling.terrain.extend import EdgeExtendedDem
from tiling.terrain.mesh import TileParams, build_mesh, encode_mesh, mesh_error

log = logging.getLogger(__name__)

Tile = tuple[int, int, int]


# --- layer.json ----------------------------------------------------------------------


@dataclass
class LayerJson:
    """Typed content of ``layer.json`` (CesiumJS CesiumTerrainProvider)."""

    name: str
    bounds: tuple[float, float, float, float]
    minzoom: int
    maxzoom: int
    available: list[list[scheme.TileRange]]
    extensions: list[str] = field(default_factory=list)
    version: str = "1.0.0"
    attribution: str = ""
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to ``layer.json``."""
        return {
            "tilejson": "2.1.0",
            "name": self.name,
            "description": self.description,
            "version": self.version,
            "format": "quantized-mesh-1.0",
            "attribution": self.attribution,
            "scheme": "tms",
            "tiles": ["{z}/{x}/{y}.terrain?v={version}"],
            "projection": "EPSG:4326",
            "bounds": [round(b, 9) for b in self.bounds],
            "minzoom": self.minzoom,
            "maxzoom": self.maxzoom,
            "available": [[r.to_json() for r in level] for level in self.available],
            "extensions": list(self.extensions),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> LayerJson:
        """Parse a ``layer.json`` object (inverse of :meth:`to_json`)."""
        return cls(
            name=obj.get("name", ""),
            bounds=tuple(obj["bounds"]),  # type: ignore[arg-type]
            minzoom=int(obj["minzoom"]),
            maxzoom=int(obj["maxzoom"]),
            available=[
                [scheme.TileRange(r["startX"], r["startY"], r["endX"], r["endY"]) for r in lv]
                for lv in obj["available"]
            ],
            extensions=list(obj.get("extensions", [])),
            version=obj.get("version", "1.0.0"),
            attribution=obj.get("attribution", ""),
            description=obj.get("description", ""),
        )

    def tiles(self) -> set[Tile]:
        """Every (z, x, y) the availability lists."""
        out: set[Tile] = set()
        for z, level in enumerate(self.available):
            for r in level:
                for x in range(r.start_x, r.end_x + 1):
                    for y in range(r.start_y, r.end_y + 1):
                        out.add((z, x, y))
        return out


def ranges_from_tiles(xy: Iterable[tuple[int, int]]) -> list[scheme.TileRange]:
    """Cover a set of (x, y) tiles exactly with rectangles (runs merged across rows)."""
    by_row: dict[int, list[int]] = {}
    for x, y in xy:
        by_row.setdefault(y, []).append(x)
    open_: dict[tuple[int, int], list[int]] = {}  # (x0, x1) -> [y0, y_last]
    done: list[scheme.TileRange] = []
    for y in sorted(by_row):
        xs = np.unique(np.array(by_row[y]))
        breaks = np.flatnonzero(np.diff(xs) != 1)
        starts = np.concatenate([[0], breaks + 1])
        ends = np.concatenate([breaks, [xs.size - 1]])
        runs = {(int(xs[a]), int(xs[b])) for a, b in zip(starts, ends, strict=True)}
        for key in list(open_):
            y0, last = open_[key]
            if key in runs and last == y - 1:
                open_[key][1] = y
                runs.discard(key)
            else:
                done.append(scheme.TileRange(key[0], y0, key[1], last))
                del open_[key]
        for key in runs:
            open_[key] = [y, y]
    done.extend(scheme.TileRange(k[0], v[0], k[1], v[1]) for k, v in open_.items())
    return sorted(done, key=lambda r: (r.start_y, r.start_x))


# --- planning ---------------------------------------------------------------------


@dataclass(frozen=True)
class TerrainPlan:
    """What will be built: per-level parameters and tiles."""

    params: dict[int, TileParams]
    tiles: dict[int, list[tuple[int, int]]]
    max_zoom: int
    auto_max_zoom: int
    dem_bounds: tuple[float, float, float, float]
    #: where tiles carry the DEM (each file's bounds, widened by the edge margin)
    file_bounds: list[tuple[float, float, float, float]]

    @property
    def tile_count(self) -> int:
        """Number of tiles planned."""
        return sum(len(t) for t in self.tiles.values())


def finest_level(dem: DemMosaic | EdgeExtendedDem, max_zoom: int | None = None) -> int:
    """The terrain's max zoom: ``max_zoom`` if given, else from the DEM's resolution."""
    if max_zoom is not None:
        return max_zoom
    bounds = dem.bounds_lonlat()
    return scheme.auto_max_zoom(dem.resolution_m(), (bounds[1] + bounds[3]) / 2.0)


def plan_terrain(
    dem: DemMosaic | EdgeExtendedDem,
    *,
    min_zoom: int = 0,
    max_zoom: int | None = None,
    error_factor: float = 0.5,
    coarse_fill_zoom: int = 2,
    normals: bool = True,
) -> TerrainPlan:
    """Choose levels, grid sizes, error budgets and tiles for a DEM.

    With an :class:`EdgeExtendedDem`, the levels above ``coarse_fill_zoom`` also
    cover the margin around the DEM where its edge is continued, so the surface
    there is meshed at every level (no step down to sea level at the DEM's edge).
    """
    bounds = dem.bounds_lonlat()
    lat_c = (bounds[1] + bounds[3]) / 2.0
    res = dem.resolution_m()
    auto = finest_level(dem)
    mz = finest_level(dem, max_zoom)
    params: dict[int, TileParams] = {}
    tiles: dict[int, list[tuple[int, int]]] = {}
    if isinstance(dem, EdgeExtendedDem):
        file_bounds = dem.margin_bounds()
    else:
        file_bounds = dem.file_bounds_lonlat()
    for z in range(mz + 1):
        params[z] = TileParams(
            level=z,
            intervals=scheme.grid_intervals(z, res, lat_c),
            blocks=scheme.curvature_blocks(z),
            max_error=scheme.geometric_error(z) * error_factor,
            use_dem=z >= min_zoom,
            normals=normals,
        )
        if z <= coarse_fill_zoom:
            r = scheme.level_range(z)
            xy = {
                (x, y) for x in range(r.start_x, r.end_x + 1) for y in range(r.start_y, r.end_y + 1)
            }
        else:
            xy = set()
            for fb in file_bounds:
                r = scheme.tiles_for_bounds(z, fb)
                xs = np.arange(r.start_x, r.end_x + 1)
                ys = np.arange(r.start_y, r.end_y + 1)
                gx, gy = np.meshgrid(xs, ys)
                xy.update(zip(gx.ravel().tolist(), gy.ravel().tolist(), strict=True))
        tiles[z] = sorted(xy)
    return TerrainPlan(params, tiles, mz, auto, bounds, file_bounds)


# --- workers ----------------------------------------------------------------------

_STATE: dict[str, Any] = {}


def _init_worker(
    dem: DemMosaic, datum: Datum, plan: TerrainPlan, out_dir: str, level: int, measure: bool
) -> None:
    _STATE.clear()
    _STATE.update(
        dem=dem, datum=datum, plan=plan, out=out_dir, level=level, measure=measure, dirs=set()
    )


def _overlaps(tb: tuple[float, float, float, float], fb: tuple[float, float, float, float]) -> bool:
    return tb[0] < fb[2] and tb[2] > fb[0] and tb[1] < fb[3] and tb[3] > fb[1]


def build_tile_bytes(
    z: int,
    x: int,
    y: int,
    dem: DemMosaic,
    datum: Datum,
    plan: TerrainPlan,
    measure: bool = False,
) -> tuple[bytes, dict[str, Any]]:
    """Build one tile; (uncompressed quantized-mesh bytes, stats)."""
    p = plan.params[z]
    tb = scheme.tile_bounds(z, x, y)
    covered = p.use_dem and any(_overlaps(tb, fb) for fb in plan.file_bounds)
    mesh = build_mesh(x, y, p, dem if covered else None, datum)
    data = encode_mesh(mesh, p.intervals)
    stats: dict[str, Any] = {
        "vertices": int(mesh.col.size),
        "triangles": len(mesh.triangles),
        "dem": covered,
    }
    if measure and covered:
        stats["error"] = mesh_error(mesh, p.intervals)
    return data, stats


def _run_batch(batch: list[Tile]) -> list[tuple[Tile, int, dict[str, Any]]]:
    dem, datum, plan = _STATE["dem"], _STATE["datum"], _STATE["plan"]
    out, level, dirs = _STATE["out"], _STATE["level"], _STATE["dirs"]
    results = []
    for z, x, y in batch:
        data, stats = build_tile_bytes(z, x, y, dem, datum, plan, _STATE["measure"])
        gz = gzip.compress(data, compresslevel=level, mtime=0)
        d = f"{out}/{z}/{x}"
        if d not in dirs:
            os.makedirs(d, exist_ok=True)
            dirs.add(d)
        with open(f"{d}/{y}.terrain", "wb") as fh:
            fh.write(gz)
        results.append(((z, x, y), len(gz), stats))
    return results


def _batches(plan: TerrainPlan, size: int) -> list[list[Tile]]:
    tiles = [(z, x, y) for z in sorted(plan.tiles) for x, y in plan.tiles[z]]
    return [tiles[i : i + size] for i in range(0, len(tiles), size)]


# --- the build ---------------------------------------------------------------------


@dataclass
class LevelStats:
    """Per-level figures of a terrain build."""

    tiles: int = 0
    bytes: int = 0
    triangles: int = 0
    max_error: float = 0.0
    geometric_error: float = 0.0
    grid: int = 0


@dataclass
class TerrainResult:
    """What :func:`build_terrain` did."""

    layer: LayerJson
    levels: dict[int, LevelStats]
    tiles: int
    bytes: int
    seconds: float
    auto_max_zoom: int
    dem_bounds: tuple[float, float, float, float]


def build_terrain(
    paths: list[Path],
    out_dir: Path,
    *,
    crs: str | None = None,
    default_crs: str | None = None,
    datum: DatumConfig | Datum | None = None,
    min_zoom: int = 0,
    max_zoom: int | None = None,
    error_factor: float = 0.5,
    coarse_fill_zoom: int = 2,
    normals: bool = True,
    compression_level: int = 6,
    jobs: int = 1,
    measure: bool = True,
    name: str = "terrain",
    track: Callable[..., Iterator[Any]] | None = None,
    executor: Executor | None = None,
) -> TerrainResult:
    """DEM GeoTIFF(s) → ``out_dir/layer.json`` + ``out_dir/{z}/{x}/{y}.terrain``.

    Parameters
    ----------
    paths : list of Path
        DEM files (see :class:`cim.raster.DemMosaic`).
    out_dir : Path
        Folder to write (created).
    crs, default_crs : str, optional
        CRS override / CRS for files that carry none.
    datum : DatumConfig or Datum, optional
        Height datum (default: heights are used as they are).
    min_zoom, max_zoom, error_factor, coarse_fill_zoom, normals, compression_level
        See :class:`cim.config.TerrainConfig`.
    jobs : int
        Worker processes.
    measure : bool
        Measure each tile's max vertical error against the DEM samples.
    name : str
        ``name`` in layer.json.
    track : callable, optional
        Progress wrapper ``track(iterable, total=, desc=, unit=)``.
    executor : Executor, optional
        The build's executor (:mod:`cim.executor`); default: local, ``jobs`` processes.

    Returns
    -------
    TerrainResult
    """
    t0 = time.perf_counter()
    # the DEM continued past its edges (and over unfilled voids): no cliff to sea level
    dem = EdgeExtendedDem(DemMosaic(paths, crs, default_crs=default_crs, fill_nodata=True))
    dat = datum if isinstance(datum, Datum) else Datum.from_config(datum)
    plan = plan_terrain(
        dem,
        min_zoom=min_zoom,
        max_zoom=max_zoom,
        error_factor=error_factor,
        coarse_fill_zoom=coarse_fill_zoom,
        normals=normals,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info(
        "terrain: %d tiles, levels 0–%d (auto %d), DEM %.1f m",
        plan.tile_count,
        plan.max_zoom,
        plan.auto_max_zoom,
        dem.resolution_m(),
    )
    batch_size = max(8, min(64, plan.tile_count // max(1, 8 * jobs)))
    batches = _batches(plan, batch_size)
    levels = {
        z: LevelStats(geometric_error=scheme.geometric_error(z), grid=plan.params[z].intervals)
        for z in plan.tiles
    }
    written: dict[int, set[tuple[int, int]]] = {z: set() for z in plan.tiles}
    args = (dem, dat, plan, str(out_dir), compression_level, measure)

    def consume(results: list[tuple[Tile, int, dict[str, Any]]]) -> None:
        for (z, x, y), nbytes, stats in results:
            lv = levels[z]
            lv.tiles += 1
            lv.bytes += nbytes
            lv.triangles += stats["triangles"]
            lv.max_error = max(lv.max_error, stats.get("error", 0.0))
            written[z].add((x, y))

    for res in run_tasks(
        _run_batch,
        batches,
        jobs=jobs,
        initializer=_init_worker,
        initargs=args,
        track=track,
        desc="terrain",
        unit="batch",
        executor=executor,
    ):
        consume(res)

    available = [ranges_from_tiles(written[z]) for z in sorted(written)]
    layer = LayerJson(
        name=name,
        bounds=dem.bounds_lonlat(),
        minzoom=0,
        maxzoom=plan.max_zoom,
        available=available,
        extensions=["octvertexnormals"] if normals else [],
        description=(
            "quantized-mesh-1.0, WGS84 ellipsoidal heights; geometric error per level "
            f"≤ {error_factor:g} × CesiumJS heightmap error"
        ),
    )
    (out_dir / "layer.json").write_text(json.dumps(layer.to_json(), indent=1))
    total_bytes = sum(lv.bytes for lv in levels.values())
    return TerrainResult(
        layer=layer,
        levels=levels,
        tiles=sum(lv.tiles for lv in levels.values()),
        bytes=total_bytes,
        seconds=time.perf_counter() - t0,
        auto_max_zoom=plan.auto_max_zoom,
        dem_bounds=dem.bounds_lonlat(),
    )


def tile_path(root: Path, z: int, x: int, y: int) -> Path:
    """Where tile (z, x, y) lives under a terrain folder."""
    return Path(root) / str(z) / str(x) / f"{y}.terrain"


def read_tile(root: Path, z: int, x: int, y: int) -> bytes:
    """Read and gunzip one tile file."""
    return gzip.decompress(tile_path(root, z, x, y).read_bytes())
