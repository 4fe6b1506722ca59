"""Orthophoto GeoTIFF(s) → imagery tile pyramid (geographic scheme) + tilejson.

Scheme
------
Geographic (EPSG:4326), the tiling CesiumJS uses for terrain: level 0 has two
180° × 180° tiles, tiles are ``tile_size`` pixels square, rows counted from the north
(``{z}/{x}/{y}`` as CesiumJS's ``UrlTemplateImageryProvider`` with a
``GeographicTilingScheme`` requests them). Imagery tiles then line up one-to-one
with terrain tiles, so CesiumJS drapes them without reprojecting each tile from Web
Mercator (which costs a GPU pass per tile and blurs), and pixels keep the same
ground size in latitude everywhere.

How
---
- Every source is warped with GDAL (rasterio ``WarpedVRT``, ``add_alpha``: nodata,
  masks and the outside of the footprint become alpha 0) straight onto the pixel grid
  of the finest level, one *chunk* (2^k × 2^k tiles) at a time, in a process pool.
  Later sources are composited over earlier ones where they have data.
- 16-bit sources are stretched to 8 bits between their 0.2 and 99.8 percentiles
  (one stretch for all bands, so colour balance is kept).
- Overviews are built from the level below by a 2 × 2 alpha-weighted average (no dark
  fringes at nodata edges), inside the chunk for the chunk's levels and in the main
  process above them.
- Fully transparent tiles are not written. Encoding with Pillow: WebP (RGB when
  opaque, RGBA otherwise), JPEG with PNG for tiles that have transparent pixels, or
  PNG.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from PIL import Image
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import RasterioIOError
from rasterio.transform import from_origin
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform, transform_bounds

from cim.errors import CRSError, DatasetIOError, InputDataError
from cim.executor import Executor
from cim.raster import resolve_raster_crs
from tiling.pool import run_tasks

log = logging.getLogger(__name__)

EXTENSIONS = {"webp": "webp", "jpeg": "jpg", "png": "png"}


# --- tiling scheme -----------------------------------------------------------------


#: Chunks to aim for: enough to keep 8 workers busy (4 each).
CHUNKS_TO_SHARE = 32


def tile_size_deg(z: int) -> float:
    """Tile width/height in degrees at level ``z``."""
    return 180.0 / (1 << z)


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) of tile (z, x, y), y counted from the north."""
    size = tile_size_deg(z)
    west = -180.0 + x * size
    north = 90.0 - y * size
    return west, north - size, west + size, north


def tile_range(z: int, bounds: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """Inclusive (x0, y0, x1, y1) of the tiles overlapping ``bounds`` at level ``z``."""
    size = tile_size_deg(z)
    w, s, e, n = bounds
    x0 = max(0, math.floor((w + 180.0) / size))
    x1 = min((2 << z) - 1, max(x0, math.ceil((e + 180.0) / size) - 1))
    y0 = max(0, math.floor((90.0 - n) / size))
    y1 = min((1 << z) - 1, max(y0, math.ceil((90.0 - s) / size) - 1))
    return x0, y0, x1, y1


def auto_max_zoom(res_deg: float, tile_size: int = 256) -> int:
    """Level whose pixel size is nearest (log scale) to the source pixel size (degrees)."""
    return max(0, min(24, round(math.log2(180.0 / (tile_size * res_deg)))))


# --- sources ---------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One orthophoto file as the tiler uses it."""

    path: Path
    crs: str
    bounds: tuple[float, float, float, float]
    res_deg: float
    bands: tuple[int, ...]
    alpha: int | None
    nodata: float | None
    stretch: tuple[float, float] | None


def describe_sources(
    paths: list[Path],
    crs: str | None = None,
    default_crs: str | None = None,
    nodata: float | None = None,
) -> list[Source]:
    """Open every file once: CRS, lon/lat bounds, resolution, bands, 16-bit stretch.

    Raises
    ------
    DatasetIOError, CRSError, InputDataError
        Naming the file.
    """
    if not paths:
        raise InputDataError("no orthophoto file given")
    out = []
    for path in paths:
        path = Path(path)
        if path.is_file() and path.stat().st_size == 0:
            raise InputDataError("empty file (0 bytes)", path=path)
        try:
            with rasterio.open(path) as src:
                # the one CRS policy (cim.crs.resolve_crs): declared vs file vs coordinates
                resolved, _ = resolve_raster_crs(
                    src, path, crs, default_crs, what="imagery", kind="orthophoto"
                )
                crs_str = resolved.crs
                if src.dtypes[0] not in ("uint8", "uint16", "int16"):
                    raise InputDataError(
                        f"orthophoto data type {src.dtypes[0]} is not 8- or 16-bit", path=path
                    )
                ci = list(src.colorinterp)
                alpha = ci.index(ColorInterp.alpha) + 1 if ColorInterp.alpha in ci else None
                colour = [i + 1 for i in range(src.count) if i + 1 != alpha]
                if not colour:
                    raise InputDataError("orthophoto has no colour band", path=path)
                bands = tuple(colour[:3]) if len(colour) >= 3 else (colour[0],) * 3
                try:
                    bounds = transform_bounds(crs_str, "EPSG:4326", *src.bounds, densify_pts=21)
                except Exception as exc:  # pyproj/GDAL errors vary
                    raise CRSError(
                        f"extent cannot be converted to lon/lat ({exc})", path=path
                    ) from exc
                dst_t, _, _ = calculate_default_transform(
                    crs_str, "EPSG:4326", src.width, src.height, *src.bounds
                )
                res_deg = abs(dst_t.a)
                stretch = None
                if src.dtypes[0] != "uint8":
                    stretch = _stretch(src, bands, nodata)
                out.append(
                    Source(path, crs_str, tuple(bounds), res_deg, bands, alpha, nodata, stretch)
                )
        except RasterioIOError as exc:
            raise DatasetIOError(f"cannot open orthophoto ({exc})", path=path) from exc
    return out


def _stretch(
    src: rasterio.DatasetReader, bands: tuple[int, ...], nodata: float | None
) -> tuple[float, float]:
    """0.2–99.8 percentile range of a 16-bit image (from a decimated read)."""
    f = max(1, max(src.width, src.height) // 1024)
    shape = (len(bands), max(1, src.height // f), max(1, src.width // f))
    data = src.read(list(bands), out_shape=shape, resampling=Resampling.nearest)
    mask = src.dataset_mask(out_shape=shape[1:], resampling=Resampling.nearest) > 0
    if nodata is not None:
        mask &= ~(data == nodata).all(axis=0)
    vals = data[:, mask].ravel()
    if vals.size == 0:
        return 0.0, 65535.0
    lo, hi = np.percentile(vals, [0.2, 99.8])
    return float(lo), float(max(hi, lo + 1))


# --- pixels ----------------------------------------------------------------------


def downsample(rgba: np.ndarray) -> np.ndarray:
    """2 × 2 alpha-weighted average of a (4, H, W) uint8 image (H, W even).

    Colour is averaged over the opaque part only (no dark fringes at nodata edges);
    alpha is the mean coverage rounded up, so a small image stays visible as a dot
    at every coarser level.
    """
    a = rgba[3]
    out = np.empty((4, rgba.shape[1] // 2, rgba.shape[2] // 2), dtype=np.uint8)
    if a.min() == 255:  # opaque: plain 2 × 2 mean
        for i in range(3):
            v = rgba[i].astype(np.uint16)
            out[i] = (v[0::2, 0::2] + v[1::2, 0::2] + v[0::2, 1::2] + v[1::2, 1::2] + 2) >> 2
        out[3] = 255
        return out
    a32 = a.astype(np.uint32)
    asum = a32[0::2, 0::2] + a32[1::2, 0::2] + a32[0::2, 1::2] + a32[1::2, 1::2]
    safe = np.maximum(asum, 1)
    for i in range(3):
        p = rgba[i].astype(np.uint32) * a32
        s = p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2]
        out[i] = (s + safe // 2) // safe
    out[3] = (asum + 3) // 4  # rounded up: coverage never vanishes at coarse levels
    return out


def encode_tile(rgba: np.ndarray, fmt: str, quality: int) -> tuple[bytes, str]:
    """Encode a (4, H, W) uint8 tile; (bytes, file extension)."""
    opaque = bool(rgba[3].min() == 255)
    hwc = np.ascontiguousarray(np.moveaxis(rgba if not opaque else rgba[:3], 0, -1))
    img = Image.fromarray(hwc, "RGB" if opaque else "RGBA")
    buf = io.BytesIO()
    if fmt == "webp":
        img.save(buf, "WEBP", quality=quality, method=4)
        return buf.getvalue(), "webp"
    if fmt == "jpeg" and opaque:
        img.save(buf, "JPEG", quality=quality, optimize=True)
        return buf.getvalue(), "jpg"
    img.save(buf, "PNG", compress_level=6)
    return buf.getvalue(), "png"


def _to_uint8(data: np.ndarray, stretch: tuple[float, float] | None) -> np.ndarray:
    if stretch is None:
        return data.astype(np.uint8, copy=False)
    lo, hi = stretch
    scaled = (data.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _composite(dst: np.ndarray, rgb: np.ndarray, alpha: np.ndarray) -> None:
    """Paint ``rgb``/``alpha`` over ``dst`` (4, H, W) in place (straight alpha)."""
    if not dst[3].any():
        dst[:3] = rgb
        dst[3] = alpha
        return
    full = alpha == 255
    partial = (alpha > 0) & ~full
    for i in range(3):
        dst[i][full] = rgb[i][full]
    if partial.any():
        a_s = alpha[partial].astype(np.float32) / 255.0
        a_d = dst[3][partial].astype(np.float32) / 255.0
        a_o = a_s + a_d * (1.0 - a_s)
        for i in range(3):
            v = (rgb[i][partial] * a_s + dst[i][partial] * a_d * (1.0 - a_s)) / a_o
            dst[i][partial] = np.clip(np.rint(v), 0, 255).astype(np.uint8)
        dst[3][partial] = np.clip(np.rint(a_o * 255.0), 0, 255).astype(np.uint8)
    dst[3][full] = 255


def render_window(
    sources: list[Source],
    west: float,
    north: float,
    res: float,
    width: int,
    height: int,
    resampling: str = "bilinear",
) -> np.ndarray:
    """Warp and composite the sources onto a lon/lat pixel grid: (4, H, W) uint8 RGBA."""
    out = np.zeros((4, height, width), dtype=np.uint8)
    east, south = west + width * res, north - height * res
    for s in sources:
        w, so, e, n = s.bounds
        if w >= east or e <= west or so >= north or n <= south:
            continue
        # read only the part of the window the source can cover
        c0 = max(0, math.floor((w - west) / res) - 1)
        c1 = min(width, math.ceil((e - west) / res) + 1)
        r0 = max(0, math.floor((north - n) / res) - 1)
        r1 = min(height, math.ceil((north - so) / res) + 1)
        if c1 <= c0 or r1 <= r0:
            continue
        transform = from_origin(west + c0 * res, north - r0 * res, res, res)
        try:
            with rasterio.open(s.path) as src:
                kwargs: dict[str, Any] = {}
                if s.nodata is not None:
                    kwargs["src_nodata"] = s.nodata
                if res / s.res_deg < 1.5:
                    # near 1:1 the scale-aware kernel only costs time (3× here);
                    # coarser levels are made by 2 × 2 averaging, not by GDAL
                    kwargs.update(XSCALE=1, YSCALE=1)
                with WarpedVRT(
                    src,
                    src_crs=s.crs,
                    crs="EPSG:4326",
                    transform=transform,
                    width=c1 - c0,
                    height=r1 - r0,
                    resampling=Resampling[resampling],
                    add_alpha=s.alpha is None,
                    warp_mem_limit=256,
                    **kwargs,
                ) as vrt:
                    alpha_idx = s.alpha if s.alpha is not None else vrt.count
                    data = vrt.read([*s.bands, alpha_idx])
        except RasterioIOError as exc:
            raise DatasetIOError(f"cannot read orthophoto ({exc})", path=s.path) from exc
        rgb = _to_uint8(data[:3], s.stretch)
        alpha = data[3]
        if s.alpha is not None and s.stretch is not None:
            alpha = _to_uint8(alpha, (0.0, 65535.0))
        alpha = alpha.astype(np.uint8)
        if s.nodata is not None:
            alpha = np.where((data[:3] == s.nodata).all(axis=0), 0, alpha).astype(np.uint8)
        _composite(out[:, r0:r1, c0:c1], rgb, alpha)
    return out


# --- chunk workers ---------------------------------------------------------------

_STATE: dict[str, Any] = {}


def _init_worker(
    sources: list[Source], out: str, fmt: str, quality: int, resampling: str, tile_size: int
) -> None:
    _STATE.clear()
    _STATE.update(
        sources=sources,
        out=out,
        fmt=fmt,
        quality=quality,
        resampling=resampling,
        tile_size=tile_size,
        dirs=set(),
    )


def _write(z: int, x: int, y: int, rgba: np.ndarray) -> tuple[int, str] | None:
    if rgba[3].max() == 0:
        return None
    data, ext = encode_tile(rgba, _STATE["fmt"], _STATE["quality"])
    d = f"{_STATE['out']}/{z}/{x}"
    if d not in _STATE["dirs"]:
        os.makedirs(d, exist_ok=True)
        _STATE["dirs"].add(d)
    with open(f"{d}/{y}.{ext}", "wb") as fh:
        fh.write(data)
    return len(data), ext


def _write_level(
    z: int,
    x0: int,
    y0: int,
    img: np.ndarray,
    stats: dict[int, list[int]],
    bounds: tuple[float, float, float, float],
) -> None:
    ts = _STATE["tile_size"]
    ny, nx = img.shape[1] // ts, img.shape[2] // ts
    rx0, ry0, rx1, ry1 = tile_range(z, bounds)
    for j in range(ny):
        for i in range(nx):
            x, y = x0 + i, y0 + j
            if not (rx0 <= x <= rx1 and ry0 <= y <= ry1):
                continue
            res = _write(z, x, y, img[:, j * ts : (j + 1) * ts, i * ts : (i + 1) * ts])
            if res is not None:
                st = stats.setdefault(z, [0, 0])
                st[0] += 1
                st[1] += res[0]


def _run_chunk(
    task: tuple[int, int, int, int, tuple[float, float, float, float]],
) -> tuple[tuple[int, int, int], np.ndarray | None, dict[int, list[int]]]:
    """Render chunk (zc, xc, yc) down to level zmax; write its tiles for zmax..zc."""
    zc, xc, yc, zmax, bounds = task
    ts = _STATE["tile_size"]
    k = zmax - zc
    n = 1 << k
    size = tile_size_deg(zmax)
    res = size / ts
    west, _, _, north = tile_bounds(zc, xc, yc)
    img = render_window(_STATE["sources"], west, north, res, n * ts, n * ts, _STATE["resampling"])
    stats: dict[int, list[int]] = {}
    for level in range(zmax, zc - 1, -1):
        kk = level - zc
        _write_level(level, xc << kk, yc << kk, img, stats, bounds)
        if level > zc:
            img = downsample(img)
    return (zc, xc, yc), (img if img[3].max() > 0 else None), stats


# --- tilejson --------------------------------------------------------------------


@dataclass
class TileJson:
    """Typed content of ``imagery/tilejson.json``."""

    name: str
    bounds: tuple[float, float, float, float]
    minzoom: int
    maxzoom: int
    format: str
    tile_size: int = 256
    attribution: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to ``tilejson.json``."""
        ext = EXTENSIONS[self.format]
        w, s, e, n = (round(v, 9) for v in self.bounds)
        obj = {
            "tilejson": "3.0.0",
            "name": self.name,
            "tiles": [f"{{z}}/{{x}}/{{y}}.{ext}"],
            "scheme": "xyz",
            "tiling_scheme": "geographic",
            "crs": "EPSG:4326",
            "level_zero_tiles": [2, 1],
            "tile_size": self.tile_size,
            "format": self.format,
            "bounds": [round(v, 9) for v in self.bounds],
            "center": [round((w + e) / 2, 9), round((s + n) / 2, 9), self.maxzoom],
            "minzoom": self.minzoom,
            "maxzoom": self.maxzoom,
            "attribution": self.attribution,
        }
        if self.format == "jpeg":
            obj["transparent_tiles"] = "png"
        obj.update(self.extra)
        return obj

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> TileJson:
        """Parse (inverse of :meth:`to_json`)."""
        known = {
            "tilejson",
            "name",
            "tiles",
            "scheme",
            "tiling_scheme",
            "crs",
            "level_zero_tiles",
            "tile_size",
            "format",
            "bounds",
            "center",
            "minzoom",
            "maxzoom",
            "attribution",
            "transparent_tiles",
        }
        return cls(
            name=obj["name"],
            bounds=tuple(obj["bounds"]),  # type: ignore[arg-type]
            minzoom=obj["minzoom"],
            maxzoom=obj["maxzoom"],
            format=obj["format"],
            tile_size=obj.get("tile_size", 256),
            attribution=obj.get("attribution", ""),
            extra={k: v for k, v in obj.items() if k not in known},
        )


# --- the build ---------------------------------------------------------------------


@dataclass
class ImageryResult:
    """What :func:`build_imagery` did."""

    tilejson: TileJson
    levels: dict[int, tuple[int, int]]  # level -> (tiles, bytes)
    tiles: int
    bytes: int
    seconds: float
    auto_max_zoom: int
    sources: list[Source]


def build_imagery(
    paths: list[Path],
    out_dir: Path,
    *,
    crs: str | None = None,
    default_crs: str | None = None,
    nodata: float | None = None,
    min_zoom: int = 0,
    max_zoom: int | None = None,
    format: str = "webp",
    quality: int = 85,
    resampling: str = "bilinear",
    tile_size: int = 256,
    jobs: int = 1,
    name: str = "imagery",
    track: Callable[..., Iterator[Any]] | None = None,
    executor: Executor | None = None,
) -> ImageryResult:
    """Orthophoto(s) → ``out_dir/{z}/{x}/{y}.{ext}`` + ``out_dir/tilejson.json``.

    Parameters mirror :class:`cim.config.ImageryConfig`; chunks run on ``executor``
    (the build's, :mod:`cim.executor`), else on ``jobs`` local processes.
    """
    t0 = time.perf_counter()
    sources = describe_sources(paths, crs, default_crs, nodata)
    b = np.array([s.bounds for s in sources])
    bounds = (
        float(b[:, 0].min()),
        float(b[:, 1].min()),
        float(b[:, 2].max()),
        float(b[:, 3].max()),
    )
    auto = auto_max_zoom(min(s.res_deg for s in sources), tile_size)
    zmax = auto if max_zoom is None else max_zoom
    zmin = min(min_zoom, zmax)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    # chunk level: up to 16 × 16 tiles per chunk, with enough chunks to share out
    def count(z: int) -> int:
        x0, y0, x1, y1 = tile_range(z, bounds)
        return (x1 - x0 + 1) * (y1 - y0 + 1)

    levels_ok = [zmax - k for k in range(5) if zmax - k >= zmin]
    # a fixed share-out, never the worker count: the tiles must not depend on where
    # (and on how many workers) they were made
    busy = [z for z in levels_ok if count(z) >= CHUNKS_TO_SHARE]
    zc = min(busy) if busy else min(levels_ok)
    x0, y0, x1, y1 = tile_range(zc, bounds)
    tasks = [(zc, x, y, zmax, bounds) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]
    log.info(
        "imagery: levels %d–%d (auto %d), %d chunks at level %d", zmin, zmax, auto, len(tasks), zc
    )

    stats: dict[int, list[int]] = {}
    children: dict[tuple[int, int], np.ndarray] = {}
    args = (sources, str(out_dir), format, quality, resampling, tile_size)

    def consume(res: tuple[tuple[int, int, int], np.ndarray | None, dict[int, list[int]]]) -> None:
        (_, xc, yc), img, st = res
        if img is not None:
            children[(xc, yc)] = img
        for z, (count, nbytes) in st.items():
            agg = stats.setdefault(z, [0, 0])
            agg[0] += count
            agg[1] += nbytes

    _init_worker(*args)  # this process also needs the sources for the upper levels
    for res in run_tasks(
        _run_chunk,
        tasks,
        jobs=jobs,
        initializer=_init_worker,
        initargs=args,
        track=track,
        desc="imagery",
        unit="chunk",
        executor=executor,
    ):
        consume(res)

    # levels above the chunks, in this process
    ts = tile_size
    level_imgs = children
    for z in range(zc - 1, zmin - 1, -1):
        parents: dict[tuple[int, int], np.ndarray] = {}
        for cx, cy in {(x // 2, y // 2) for x, y in level_imgs}:
            canvas = np.zeros((4, 2 * ts, 2 * ts), dtype=np.uint8)
            for dx in (0, 1):
                for dy in (0, 1):
                    child = level_imgs.get((2 * cx + dx, 2 * cy + dy))
                    if child is not None:
                        canvas[:, dy * ts : (dy + 1) * ts, dx * ts : (dx + 1) * ts] = child
            img = downsample(canvas)
            parents[(cx, cy)] = img
            res = _write(z, cx, cy, img)
            if res is not None:
                agg = stats.setdefault(z, [0, 0])
                agg[0] += 1
                agg[1] += res[0]
        level_imgs = parents

    tj = TileJson(
        name=name, bounds=bounds, minzoom=zmin, maxzoom=zmax, format=format, tile_size=tile_size
    )
    (out_dir / "tilejson.json").write_text(json.dumps(tj.to_json(), indent=1))
    levels = {z: (v[0], v[1]) for z, v in sorted(stats.items())}
    return ImageryResult(
        tilejson=tj,
        levels=levels,
        tiles=sum(v[0] for v in levels.values()),
        bytes=sum(v[1] for v in levels.values()),
        seconds=time.perf_counter() - t0,
        auto_max_zoom=auto,
        sources=sources,
    )
