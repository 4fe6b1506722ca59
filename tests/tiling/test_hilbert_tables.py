"""The table-driven Hilbert keys are those of the curve's one-level-at-a-time loop."""

from __future__ import annotations

import numpy as np
import pytest

from tiling.buildings import partitions
from tiling.buildings.footprints import FootprintArrays, total_bounds
from tiling.buildings.partitions import hilbert_keys


def _one_level_at_a_time(x: np.ndarray, y: np.ndarray, order: int) -> np.ndarray:
    """The textbook loop (rotate the quadrant at every level), on the unit square."""
    n = 1 << order
    xi = np.clip((x * (n - 1)).astype(np.int64), 0, n - 1)
    yi = np.clip((y * (n - 1)).astype(np.int64), 0, n - 1)
    d = np.zeros(len(xi), dtype=np.uint64)
    s = n >> 1
    while s > 0:
        rx, ry = (xi & s) > 0, (yi & s) > 0
        d += np.uint64(s * s) * ((3 * rx.astype(np.uint64)) ^ ry.astype(np.uint64))
        flip = ~ry & rx
        xi, yi = np.where(flip, n - 1 - xi, xi), np.where(flip, n - 1 - yi, yi)
        xi, yi = np.where(~ry, yi, xi), np.where(~ry, xi, yi)
        s >>= 1
    return d


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5, 7, 16, 23, 31])
def test_keys_match_the_loop_at_every_order(order: int) -> None:
    rng = np.random.default_rng(order)
    x, y = rng.uniform(-0.1, 1.1, 5000), rng.uniform(-0.1, 1.1, 5000)  # some clamped
    expected = _one_level_at_a_time(x, y, order)
    assert np.array_equal(hilbert_keys(x, y, (0.0, 0.0, 1.0, 1.0), order), expected)


def test_keys_made_a_block_at_a_time_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    centres = rng.uniform(-0.1, 1.1, (5000, 2))  # strided columns, as the stage gives them
    x, y = centres[:, 0], centres[:, 1]
    expected = _one_level_at_a_time(x, y, 16)
    monkeypatch.setattr(partitions, "HILBERT_BLOCK", 777)  # blocks and a short last one
    assert np.array_equal(hilbert_keys(x, y, (0.0, 0.0, 1.0, 1.0), 16), expected)
    assert hilbert_keys(x[:0], y[:0], (0.0, 0.0, 1.0, 1.0), 16).dtype == np.uint64


def test_a_two_by_two_grid_is_walked_in_hilbert_order() -> None:
    # (0,0) -> (0,1) -> (1,1) -> (1,0)
    keys = hilbert_keys(
        np.array([0.0, 0.0, 1.0, 1.0]), np.array([0.0, 1.0, 1.0, 0.0]), (0, 0, 1, 1), 1
    )
    assert keys.tolist() == [0, 1, 2, 3]


def test_total_bounds_of_figures_skip_rows_without_a_footprint() -> None:
    figures = FootprintArrays.empty(3)
    figures.bounds[0] = (1.0, 2.0, 3.0, 4.0)
    figures.bounds[2] = (0.5, 2.5, 2.0, 5.0)
    assert figures.total_bounds() == (0.5, 2.0, 3.0, 5.0)
    assert np.isnan(total_bounds(np.full((2, 4), np.nan))).all()
