"""The sample city's underground networks: under its streets, at depths that agree with
its DEM, readable by the pipelines stage (GBK, Chinese column names)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely

from cim.config import PipelinesConfig, load_project
from cim.crs import get_transformer
from cim.datum import Datum
from cim.sample import ORIGIN
from cim.sample import _layout as lay
from cim.sample._pipelines import BAD_PIPES, BAD_POINT
from cim.sample._rasters import dem_height
from tiling.pipelines.model import build_model
from tiling.pipelines.reader import read_survey


@pytest.fixture(scope="module")
def placed(sample_city: Path):
    project = load_project(sample_city)
    cfg = project.section("pipelines", PipelinesConfig)
    assert cfg is not None
    survey = read_survey(cfg, project.crs, lambda lon, lat: np.full(len(lon), 1042.0))
    model, issues = build_model(survey, cfg, Datum.from_config(project.datum))
    return survey, model, issues


def _local(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    x, y = get_transformer("EPSG:4326", "EPSG:4547").transform(lon, lat)
    return np.column_stack([x, y]) - np.asarray(ORIGIN)


def test_four_utilities_in_both_districts(placed) -> None:
    _, model, _ = placed
    assert {"water", "drainage", "gas", "power"} == set(model.utility)
    xy = _local(model.pt_lon, model.pt_lat)
    inside = (np.abs(xy) < lay.WALL_IN).all(axis=1)
    for u in ("water", "drainage", "gas", "power"):
        pts = np.unique(
            np.concatenate([model.seg_start[model.utility == u], model.seg_end[model.utility == u]])
        )
        assert inside[pts].sum() > 50 and (~inside[pts]).sum() > 500, u
    assert model.pt_valve.sum() > 100 and model.pt_source.sum() == 2


def test_points_lie_under_streets_and_on_the_dem(placed) -> None:
    _, model, _ = placed
    xy = _local(model.pt_lon, model.pt_lat)
    streets = shapely.union_all(lay.make_streets().polygons())
    under = shapely.contains_xy(shapely.buffer(streets, 1.0), xy[:, 0], xy[:, 1])
    assert under.mean() > 0.97  # line ends run a little past a street's end
    known = np.isfinite(model.pt_ground) & (model.pt_ids != BAD_POINT[0])
    dem = dem_height(xy[known, 0], xy[known, 1])
    assert np.abs(model.pt_ground[known] - dem).max() < 0.01


def test_depths_are_plausible_and_drainage_falls(placed) -> None:
    _, model, _ = placed
    ranges = {"water": (1.2, 1.6), "gas": (0.9, 1.2), "power": (0.7, 0.9), "drainage": (1.8, 2.6)}
    for u, (lo, hi) in ranges.items():
        d = np.concatenate(
            [model.start_depth[model.utility == u], model.end_depth[model.utility == u]]
        )
        assert lo - 1e-9 <= d.min() and d.max() <= hi + 1e-9, u
    # every pipe below ground, its top at the surveyed depth
    top = np.minimum(model.start_axis, model.end_axis) + model.height / 2
    ground = np.minimum(model.pt_ground[model.seg_start], model.pt_ground[model.seg_end])
    assert (top < ground).all()


def test_bad_rows_are_reported(placed) -> None:
    survey, model, issues = placed
    found = {(i[0], i[1]) for i in issues}
    assert (BAD_PIPES[0][0], "depth-from-other-end") in found
    assert (BAD_PIPES[1][0], "dangling-point") in found
    assert (BAD_POINT[0], "ground-from-dem") in found
    assert survey.read_segments == len(model.ids) + 1
