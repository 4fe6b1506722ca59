"""L3 roofs on real footprints (OpenStreetMap, Lujiazui): closed, never a silent flat roof."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import pyproj
import pytest
import shapely
import trimesh

from tiling.l3.roofs import RoofForm, RoofSpec, build_building

GPKG = (
    Path(__file__).resolve().parents[2]
    / "sample_data/shanghai/shanghai_lujiazui_buildings_osm.gpkg"
)


@pytest.fixture(scope="module")
def footprints() -> list[shapely.Polygon]:
    """The footprints in local metres (transverse Mercator), each around its centroid."""
    meta, _, wkb, _ = pyogrio.raw.read(GPKG)
    geoms = shapely.from_wkb(wkb)
    lon, lat = shapely.get_coordinates(shapely.centroid(geoms)).mean(axis=0)
    tm = pyproj.Transformer.from_crs(
        meta["crs"], f"+proj=tmerc +lon_0={lon} +lat_0={lat}", always_xy=True
    )
    geoms = shapely.transform(geoms, lambda xy: np.column_stack(tm.transform(xy[:, 0], xy[:, 1])))
    parts = [g for g in shapely.get_parts(geoms) if isinstance(g, shapely.Polygon)]
    centres = shapely.get_coordinates(shapely.centroid(parts))
    return [
        shapely.transform(g, lambda xy, c=c: xy - c) for g, c in zip(parts, centres, strict=True)
    ]


def _check(footprints, forms, n):
    for g in footprints[:n]:
        for form in forms:
            m = build_building(g, RoofSpec(form, 9.0))
            mesh = trimesh.Trimesh(m.positions, m.triangles, process=False)
            assert mesh.is_watertight and mesh.is_winding_consistent, (form, g.wkt)
            assert m.ridge_z > m.eave_z + 0.5, (form, m.fallbacks)
            assert not any("flat" in f for f in m.fallbacks), (form, m.fallbacks)


def test_real_footprints_hipped(footprints):
    assert len(footprints) > 1000
    _check(footprints, [RoofForm.HIPPED], 40)


@pytest.mark.slow
def test_real_footprints_every_family(footprints):
    forms = [RoofForm.HIPPED, RoofForm.GABLED, RoofForm.YINGSHAN, RoofForm.CHONGYAN_XIESHAN]
    _check(footprints, forms, 500)
