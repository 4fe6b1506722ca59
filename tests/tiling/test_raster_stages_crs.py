"""DEM and orthophoto stages refuse rasters that land away from the buildings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from cim.config import load_project
from cim.errors import CRSError
from cim.report import BuildReport
from cim.stages import BuildContext
from tiling.imagery.stage import ImageryStage
from tiling.terrain.stage import TerrainStage

# the buildings of this project lie around lon 114.0, lat 22.6
EXTENT = [113.99, 22.59, 114.01, 22.61]


def _tif(path: Path, count: int, dtype: str) -> Path:
    # metres, no CRS in the file: [section] crs decides; x/y put it near lat 31.6
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=32,
        height=32,
        count=count,
        dtype=dtype,
        transform=from_origin(500000, 3500000, 10, 10),
    ) as ds:
        ds.write(np.full((count, 32, 32), 50, dtype=dtype))
    return path


@pytest.mark.parametrize(
    ("stage", "section", "count", "dtype"),
    [(TerrainStage(), "terrain", 1, "int16"), (ImageryStage(), "imagery", 3, "uint8")],
)
def test_raster_away_from_the_buildings_is_refused(
    tmp_path: Path, stage, section: str, count: int, dtype: str
) -> None:
    _tif(tmp_path / "r.tif", count, dtype)
    (tmp_path / "city.toml").write_text(
        f'[{section}]\npaths = ["r.tif"]\ncrs = "EPSG:4547"\n', encoding="utf-8"
    )
    ctx = BuildContext(
        project=load_project(tmp_path / "city.toml"),
        workdir=tmp_path / "out",
        report=BuildReport(),
        progress=False,
        manifest={"extent": EXTENT},
    )
    with pytest.raises(CRSError) as exc:
        stage.run(ctx)
    msg = str(exc.value)
    assert "r.tif" in msg and "no overlap" in msg and f"[{section}] crs" in msg
    assert not (tmp_path / "out").exists()
