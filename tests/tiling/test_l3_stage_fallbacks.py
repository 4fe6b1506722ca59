"""A building the roof engine refuses falls back to a flat roof, reported; a building
that cannot be built even so has no model, reported as skipped."""

from __future__ import annotations

import numpy as np
import shapely

from tiling.l3.roofs import RoofForm, RoofSpec
from tiling.l3.tiles import Built, _build


def _built() -> Built:
    return Built([None], np.empty(1, object), np.zeros((1, 3)), *(np.full(1, np.nan),) * 3)


def test_engine_failure_falls_back_to_flat_and_is_reported() -> None:
    out = _built()
    spec = RoofSpec(RoofForm.GABLED, 5.0, roof_height=-1.0)  # refused by the engine
    parts = _build("X", shapely.box(0, 0, 10, 8), spec, out)
    assert parts is not None and len(parts) == 1
    assert parts[0].ridge_z == parts[0].eave_z == 5.0
    assert out.fallbacks and out.fallbacks[0][0] == "X" and "flat roof" in out.fallbacks[0][1]
    assert out.skipped == []


def test_unbuildable_building_is_skipped_with_the_reason() -> None:
    out = _built()
    assert _build("Y", shapely.box(0, 0, 10, 8), RoofSpec(RoofForm.GABLED, -5.0), out) is None
    assert out.skipped[0][0] == "Y" and "eave height" in out.skipped[0][1]
