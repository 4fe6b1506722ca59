"""Imagery stage: georeferencing, transparency, overviews, mosaics, tilejson."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin

from cim.config import load_project
from cim.crs import to_lonlat
from cim.report import BuildReport
from cim.stages import BuildContext
from tiling.imagery.build import (
    TileJson,
    auto_max_zoom,
    build_imagery,
    downsample,
    tile_bounds,
    tile_range,
)
from tiling.imagery.stage import ImageryStage

REPO = Path(__file__).resolve().parents[2]

# 8 × 6 blocks of 25 px, each its own colour; 1 m pixels in UTM 50N
BLOCK = 25
ORIGIN = (500000.0, 3400000.0)


def realdata(rel: str) -> Path:
    """A real-data file, preferring the repository copy under sample_data/realdata."""
    for root in (REPO / "sample_data" / "realdata", Path("/work/shared/realdata")):
        if (root / rel).exists():
            return root / rel
    pytest.skip(f"real data {rel} not available")


def block_colour(i: int, j: int) -> tuple[int, int, int]:
    """Colour of block (column i, row j): distinct, never (0, 0, 0)."""
    return (30 + 25 * i, 40 + 30 * j, 200 - 20 * ((i + j) % 8))


def write_blocks(
    path: Path,
    *,
    nodata_cols: int = 0,
    dtype: str = "uint8",
    alpha: bool = False,
    crs: str | None = "EPSG:32650",
    origin: tuple[float, float] = ORIGIN,
    shift: tuple[int, int] = (0, 0),
) -> Path:
    """Block-coloured orthophoto; the first ``nodata_cols`` columns are nodata (0)."""
    h, w = 6 * BLOCK, 8 * BLOCK
    img = np.zeros((3, h, w), dtype=np.float64)
    for j in range(6):
        for i in range(8):
            img[:, j * BLOCK : (j + 1) * BLOCK, i * BLOCK : (i + 1) * BLOCK] = np.array(
                block_colour(i + shift[0], j + shift[1])
            )[:, None, None]
    count = 4 if alpha else 3
    data = np.zeros((count, h, w), dtype=dtype)
    scale = 256 if dtype == "uint16" else 1
    data[:3] = (img * scale).astype(dtype)
    if alpha:
        data[3] = 65535 if dtype == "uint16" else 255
        data[3, :, :nodata_cols] = 0
    else:
        data[:, :, :nodata_cols] = 0
    profile = dict(
        driver="GTiff",
        width=w,
        height=h,
        count=count,
        dtype=dtype,
        crs=crs,
        transform=from_origin(origin[0], origin[1], 1.0, 1.0),
    )
    if not alpha:
        profile["nodata"] = 0
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
        if alpha:
            ds.colorinterp = [
                rasterio.enums.ColorInterp.red,
                rasterio.enums.ColorInterp.green,
                rasterio.enums.ColorInterp.blue,
                rasterio.enums.ColorInterp.alpha,
            ]
    return path


def read_tile(root: Path, z: int, x: int, y: int, ext: str) -> np.ndarray | None:
    """A tile as (H, W, 4) uint8, or None when it was not written."""
    p = root / str(z) / str(x) / f"{y}.{ext}"
    if not p.exists():
        return None
    return np.asarray(Image.open(io.BytesIO(p.read_bytes())).convert("RGBA"))


def pixel_at(
    root: Path, z: int, lon: float, lat: float, ext: str, ts: int = 256
) -> np.ndarray | None:
    """RGBA of the level-z pixel containing (lon, lat)."""
    size = 180.0 / (1 << z)
    fx = (lon + 180.0) / size
    fy = (90.0 - lat) / size
    x, y = int(fx), int(fy)
    tile = read_tile(root, z, x, y, ext)
    if tile is None:
        return None
    return tile[int((fy - y) * ts), int((fx - x) * ts)]


def block_centre_lonlat(i: int, j: int) -> tuple[float, float]:
    x = ORIGIN[0] + (i + 0.5) * BLOCK
    y = ORIGIN[1] - (j + 0.5) * BLOCK
    lon, lat = to_lonlat(np.array([x]), np.array([y]), "EPSG:32650")
    return float(lon[0]), float(lat[0])


@pytest.fixture(scope="module")
def blocks(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("blocks")
    src = write_blocks(d / "blocks.tif", nodata_cols=2 * BLOCK)
    res = build_imagery([src], d / "png", format="png", jobs=1)
    return d / "png", res


def test_known_pixels_land_at_known_lonlat(blocks) -> None:
    out, res = blocks
    z = res.tilejson.maxzoom
    for i, j in ((3, 1), (7, 5), (4, 3), (2, 0)):
        lon, lat = block_centre_lonlat(i, j)
        px = pixel_at(out, z, lon, lat, "png")
        assert px is not None
        assert px[3] == 255
        assert np.abs(px[:3].astype(int) - block_colour(i, j)).max() <= 1, (i, j, px)


def test_nodata_is_transparent(blocks) -> None:
    out, res = blocks
    z = res.tilejson.maxzoom
    lon, lat = block_centre_lonlat(0, 2)  # inside the nodata columns
    px = pixel_at(out, z, lon, lat, "png")
    assert px is None or px[3] == 0
    # outside the image footprint is transparent too
    w, s, e, n = res.tilejson.bounds
    px = pixel_at(out, z, e + (e - w) * 0.02, (s + n) / 2, "png")
    assert px is None or px[3] == 0


def test_max_zoom_from_resolution_and_tilejson(blocks) -> None:
    out, res = blocks
    # 1 m pixels: the level whose pixel is nearest 1 m
    res_deg = res.sources[0].res_deg
    assert res.tilejson.maxzoom == round(math.log2(180 / (256 * res_deg)))
    assert res.tilejson.maxzoom == auto_max_zoom(res_deg)
    assert 16 <= res.tilejson.maxzoom <= 17
    obj = json.loads((out / "tilejson.json").read_text())
    assert obj["tiles"] == ["{z}/{x}/{y}.png"]
    assert obj["scheme"] == "xyz" and obj["tiling_scheme"] == "geographic"
    assert obj["format"] == "png" and obj["minzoom"] == 0
    assert TileJson.from_json(obj).to_json() == obj
    w, s, e, n = obj["bounds"]
    assert 116.99 < w < e < 117.01 and 30.7 < s < n < 30.74


def test_every_level_written_and_overviews_from_level_below(blocks) -> None:
    out, res = blocks
    zmax = res.tilejson.maxzoom
    assert sorted(res.levels) == list(range(0, zmax + 1))
    z = zmax - 1
    x0, y0, x1, y1 = tile_range(z, res.tilejson.bounds)
    for x in range(x0, x1 + 1):
        for y in range(y0, y1 + 1):
            parent = read_tile(out, z, x, y, "png")
            canvas = np.zeros((4, 512, 512), dtype=np.uint8)
            for dx in (0, 1):
                for dy in (0, 1):
                    child = read_tile(out, z + 1, 2 * x + dx, 2 * y + dy, "png")
                    if child is not None:
                        canvas[:, dy * 256 : (dy + 1) * 256, dx * 256 : (dx + 1) * 256] = (
                            np.moveaxis(child, -1, 0)
                        )
            expect = downsample(canvas)
            if parent is None:
                assert expect[3].max() == 0
                continue
            got = np.moveaxis(parent, -1, 0)
            # fully transparent pixels carry no colour
            vis = expect[3] > 0
            assert np.array_equal(got[3], expect[3])
            assert np.array_equal(got[:3][:, vis], expect[:3][:, vis])


def test_downsample_ignores_transparent_colour() -> None:
    img = np.zeros((4, 2, 2), dtype=np.uint8)
    img[:3, 0, 0] = 200
    img[3, 0, 0] = 255  # one opaque pixel, three transparent black ones
    out = downsample(img)
    assert out[:3, 0, 0].tolist() == [200, 200, 200]
    assert out[3, 0, 0] == 64  # 255 / 4 rounded up


def test_mosaic_later_file_wins_and_fills(tmp_path: Path) -> None:
    a = write_blocks(tmp_path / "a.tif", nodata_cols=3 * BLOCK)
    # b: same place, shifted colours, covers a's nodata columns
    b = write_blocks(tmp_path / "b.tif", shift=(1, 0), origin=(ORIGIN[0], ORIGIN[1]))
    res = build_imagery([a, b], tmp_path / "out", format="png", jobs=1)
    z = res.tilejson.maxzoom
    lon, lat = block_centre_lonlat(5, 2)
    px = pixel_at(tmp_path / "out", z, lon, lat, "png")
    assert np.abs(px[:3].astype(int) - block_colour(6, 2)).max() <= 1  # b on top
    lon, lat = block_centre_lonlat(0, 1)  # nodata in a, data in b
    px = pixel_at(tmp_path / "out", z, lon, lat, "png")
    assert px[3] == 255
    assert np.abs(px[:3].astype(int) - block_colour(1, 1)).max() <= 1


def test_rgba_16bit_and_missing_crs(tmp_path: Path) -> None:
    src = write_blocks(
        tmp_path / "rgba16.tif", nodata_cols=BLOCK, dtype="uint16", alpha=True, crs=None
    )
    from cim.errors import CRSError

    with pytest.raises(CRSError) as exc:
        build_imagery([src], tmp_path / "x")
    assert "rgba16.tif" in str(exc.value)
    res = build_imagery(
        [src], tmp_path / "out", default_crs="EPSG:32650", format="webp", quality=90, jobs=1
    )
    assert res.sources[0].stretch is not None
    z = res.tilejson.maxzoom
    lon, lat = block_centre_lonlat(0, 3)  # alpha 0 column block
    px = pixel_at(tmp_path / "out", z, lon, lat, "webp")
    assert px is None or px[3] == 0
    lon, lat = block_centre_lonlat(4, 3)
    px = pixel_at(tmp_path / "out", z, lon, lat, "webp")
    assert px[3] == 255


def test_jpeg_mode_uses_png_only_where_transparent(tmp_path: Path) -> None:
    src = write_blocks(tmp_path / "b.tif", nodata_cols=BLOCK)
    res = build_imagery([src], tmp_path / "out", format="jpeg", quality=80, jobs=1)
    z = res.tilejson.maxzoom
    jpgs = list((tmp_path / "out" / str(z)).rglob("*.jpg"))
    pngs = list((tmp_path / "out" / str(z)).rglob("*.png"))
    assert pngs  # edge tiles with transparency
    for p in pngs:
        assert np.asarray(Image.open(p).convert("RGBA"))[..., 3].min() < 255
    for p in jpgs:
        assert p.read_bytes()[:2] == b"\xff\xd8"
    obj = json.loads((tmp_path / "out" / "tilejson.json").read_text())
    assert obj["tiles"] == ["{z}/{x}/{y}.jpg"] and obj["transparent_tiles"] == "png"


def test_real_landsat_with_nodata_borders(tmp_path: Path) -> None:
    src = realdata("imagery/rasterio_RGB.byte.tif")
    res = build_imagery([src], tmp_path / "out", format="webp", quality=85, jobs=2)
    z = res.tilejson.maxzoom
    assert z == 8
    with rasterio.open(src) as ds:
        data = ds.read()
        # a valid pixel in the middle of the scene, and a nodata corner
        row, col = 359, 395
        assert data[:, row, col].any()
        x, y = ds.xy(row, col)
        lon, lat = to_lonlat(np.array([x]), np.array([y]), "EPSG:32618")
        px = pixel_at(tmp_path / "out", z, float(lon[0]), float(lat[0]), "webp")
        assert px[3] == 255
        # 300 m pixels resampled to ≈ 0.0027°: compare with the 3×3 neighbourhood range
        win = data[:, row - 2 : row + 3, col - 2 : col + 3].reshape(3, -1).astype(int)
        assert np.all(px[:3] >= win.min(axis=1) - 12) and np.all(px[:3] <= win.max(axis=1) + 12)
        x, y = ds.xy(5, 5)  # top-left corner: nodata
        assert not data[:, 5, 5].any()
        lon, lat = to_lonlat(np.array([x]), np.array([y]), "EPSG:32618")
        px = pixel_at(tmp_path / "out", z, float(lon[0]), float(lat[0]), "webp")
        assert px is None or px[3] == 0


def test_stage_with_build_context(tmp_path: Path) -> None:
    src = write_blocks(tmp_path / "ortho.tif", nodata_cols=BLOCK)
    toml = tmp_path / "city.toml"
    toml.write_text(
        '[city]\nname = "Blocks"\ncrs = "EPSG:32650"\n'
        '[imagery]\npaths = ["ortho.tif"]\nformat = "webp"\nquality = 80\n',
        encoding="utf-8",
    )
    project = load_project(toml)
    ctx = BuildContext(
        project=project, workdir=tmp_path / "work", report=BuildReport(), jobs=2, progress=False
    )
    stage = ImageryStage()
    assert stage.enabled(project) and stage.inputs(project) == [src]
    assert stage.name == "imagery" and stage.order == 30
    stage.run(ctx)
    rep = ctx.report.stage("imagery")
    assert rep.written == rep.counts["tiles"] > 0
    layer = ctx.manifest["layers"]["imagery"]
    assert layer["url"] == "imagery/tilejson.json" and layer["scheme"] == "geographic"
    assert (tmp_path / "work" / "imagery" / "tilejson.json").is_file()


def test_tile_bounds_and_range_consistent() -> None:
    w, s, e, n = tile_bounds(3, 10, 2)
    assert (e - w) == pytest.approx(22.5) and n == pytest.approx(90 - 2 * 22.5)
    assert tile_range(3, (w + 1, s + 1, e - 1, n - 1)) == (10, 2, 10, 2)


def test_sample_city_imagery_capped(sample_city: Path, tmp_path: Path) -> None:
    """The sample orthophoto (Gauss-Krüger, masked strip) up to level 14."""
    project = load_project(sample_city)
    cfg = project.raw["imagery"]
    paths = ", ".join(f'"{project.root / p}"' for p in cfg["paths"])
    toml = tmp_path / "city.toml"
    toml.write_text(
        f'[city]\nname = "sample"\ncrs = "{project.crs}"\n'
        f"[imagery]\npaths = [{paths}]\nmax_zoom = 14\n",
        encoding="utf-8",
    )
    ctx = BuildContext(
        project=load_project(toml),
        workdir=tmp_path / "work",
        report=BuildReport(),
        jobs=2,
        progress=False,
    )
    ImageryStage().run(ctx)
    rep = ctx.report.stage("imagery")
    assert rep.written > 0 and rep.counts["auto_max_zoom"] >= 15
    tj = json.loads((tmp_path / "work" / "imagery" / "tilejson.json").read_text())
    assert tj["maxzoom"] == 14 and tj["format"] == "webp"


@pytest.mark.slow
def test_sample_city_imagery_full(sample_city: Path, tmp_path: Path) -> None:
    """The sample city exactly as configured (auto max zoom)."""
    project = load_project(sample_city)
    ctx = BuildContext(
        project=project, workdir=tmp_path / "work", report=BuildReport(), jobs=2, progress=False
    )
    ImageryStage().run(ctx)
    rep = ctx.report.stage("imagery")
    assert rep.written > 0
    tj = json.loads((tmp_path / "work" / "imagery" / "tilejson.json").read_text())
    assert tj["maxzoom"] >= 16
