"""Placement of live things on the sample build (cim.placement)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import shapely

from cim.crs import gcj02_to_bd09, to_lonlat, wgs84_to_gcj02
from cim.errors import CimError, CRSError, InputDataError, NotFoundError
from cim.outputs import BuildOutputs
from cim.placement import (
    DEFAULT_FLOOR_HEIGHT,
    Placement,
    floor_height,
    place,
    place_many,
)
from cim.sample import CRS, KNOWN_ADDRESS, KNOWN_BUILDING_ID, ORIGIN
from cim.sample import _layout as lay

M_PER_DEG = 111_195.0


@pytest.fixture(scope="module")
def outputs(sample_output: Path) -> BuildOutputs:
    return BuildOutputs(sample_output)


def _inside(building) -> tuple[float, float]:
    p = shapely.point_on_surface(building.footprint)
    return float(shapely.get_x(p)), float(shapely.get_y(p))


def _metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    return math.hypot((lon1 - lon2) * math.cos(math.radians(lat1)), lat1 - lat2) * M_PER_DEG


def _river_point() -> tuple[float, float]:
    """A WGS84 point in the middle of the river (no building, on the terrain)."""
    y = 300.0
    lon, lat = to_lonlat(np.array([lay.river_x(y) + ORIGIN[0]]), np.array([y + ORIGIN[1]]), CRS)
    return float(lon[0]), float(lat[0])


def _building_with_floors(outputs: BuildOutputs, floors: float):
    table = outputs.buildings()
    for i in range(len(table)):
        b = table.get(i)
        if b.floors == floors and b.height > 0:
            return b
    raise AssertionError(f"the sample has no building of {floors} floors")


def test_point_in_a_footprint_is_on_its_roof(outputs: BuildOutputs) -> None:
    b = outputs.building(KNOWN_BUILDING_ID)
    lon, lat = _inside(b)
    p = place([lon, lat], outputs)
    assert p.how == "roof" and p.building_id == KNOWN_BUILDING_ID
    assert p.h == pytest.approx(b.base + b.height, abs=1e-6)
    assert (p.lon, p.lat) == (lon, lat)
    assert p.address == KNOWN_ADDRESS  # the building's address comes along


def test_terrain_point_is_at_ground_height(outputs: BuildOutputs) -> None:
    lon, lat = _river_point()
    p = place({"type": "Point", "coordinates": [lon, lat]}, outputs)
    assert p.how == "terrain" and p.building_id is None
    assert p.h == outputs.ground_height(lon, lat)
    # the river lies in a valley: the terrain there is well below the old town's ground
    assert p.h < outputs.building(KNOWN_BUILDING_ID).base - 5.0


@pytest.mark.parametrize("system", ["GCJ-02", "BD-09"])
def test_obfuscated_coordinates_land_on_their_wgs84_truth(
    outputs: BuildOutputs, system: str
) -> None:
    lon, lat = _river_point()
    gx, gy = wgs84_to_gcj02(np.array([lon]), np.array([lat]))
    if system == "BD-09":
        gx, gy = gcj02_to_bd09(gx, gy)
    # the offset is hundreds of metres: placing without the CRS would be far off
    assert _metres(float(gx[0]), float(gy[0]), lon, lat) > 100.0
    p = place({"coordinates": [float(gx[0]), float(gy[0])], "crs": system}, outputs)
    assert _metres(p.lon, p.lat, lon, lat) < 1.0
    assert p.how == "terrain"
    assert p.h == pytest.approx(outputs.ground_height(lon, lat), abs=0.05)


def test_gauss_kruger_point_with_its_crs(outputs: BuildOutputs) -> None:
    x, y = ORIGIN[0] + lay.river_x(300.0), ORIGIN[1] + 300.0
    named = place({"type": "Point", "coordinates": [x, y], "crs": {"type": "name",
                   "properties": {"name": CRS}}}, outputs)  # fmt: skip
    plain = place({"x": x, "y": y, "crs": CRS}, outputs)
    default = place([x, y], outputs, default_crs=CRS)
    lon, lat = _river_point()
    for p in (named, plain, default):
        assert _metres(p.lon, p.lat, lon, lat) < 0.01 and p.how == "terrain"


def test_address_resolves_to_its_building(outputs: BuildOutputs) -> None:
    b = outputs.building(KNOWN_BUILDING_ID)
    for loc in (KNOWN_ADDRESS, {"address": KNOWN_ADDRESS}):
        p = place(loc, outputs)
        assert p.building_id == KNOWN_BUILDING_ID and p.address == KNOWN_ADDRESS
        assert p.how == "roof" and p.h == pytest.approx(b.top)
        assert shapely.intersects_xy(b.footprint, p.lon, p.lat)
    typo = place("平城市古城区鼓楼东街１２号", outputs)  # full-width digits
    assert typo.building_id == KNOWN_BUILDING_ID


def test_floor_three_of_six_is_at_base_plus_two_and_a_half_floors(outputs: BuildOutputs) -> None:
    b = _building_with_floors(outputs, 6.0)
    fh = b.height / 6.0
    p = place({"building": b.id, "floor": 3}, outputs)
    assert p.how == "floor 3" and p.floor == 3 and p.building_id == b.id
    assert p.h == pytest.approx(b.base + 2.5 * fh, abs=1e-9)
    assert shapely.intersects_xy(b.footprint, p.lon, p.lat)
    assert place({"building": b.id, "floor": 1}, outputs).h == pytest.approx(b.base + 0.5 * fh)
    assert place({"building": b.id, "floor": 6}, outputs).h == pytest.approx(b.base + 5.5 * fh)
    basement = place({"building": b.id, "floor": "B1"}, outputs)
    assert basement.h == pytest.approx(b.base - 0.5 * fh) and basement.how == "floor -1"
    with pytest.raises(InputDataError, match="no floor 7"):
        place({"building": b.id, "floor": 7}, outputs)


def test_floor_height_without_floor_count() -> None:
    from cim.outputs import Building

    poly = shapely.box(0, 0, 1e-4, 1e-4)
    b = Building("x", "", "", "", 1000.0, 12.0, None, poly)
    assert floor_height(b) == DEFAULT_FLOOR_HEIGHT
    frac = Building("y", "", "", "", 1000.0, 10.0, 2.5, poly)
    assert floor_height(frac) == 4.0


def test_building_roof_facade_and_ground(outputs: BuildOutputs) -> None:
    b = _building_with_floors(outputs, 6.0)
    roof = place({"building": b.id}, outputs)
    assert roof.how == "roof" and roof.h == pytest.approx(b.top)
    facade = place({"building": b.id, "on": "facade"}, outputs)
    assert facade.how == "facade" and facade.h == pytest.approx(b.base + b.height / 2)
    # on the outline itself (within a millimetre)
    dist = shapely.distance(shapely.boundary(b.footprint), shapely.Point(facade.lon, facade.lat))
    assert dist * M_PER_DEG < 1e-3
    f2 = place({"building": b.id, "on": "facade", "floor": 2}, outputs)
    assert f2.h == pytest.approx(b.base + 1.5 * b.height / 6)
    ground = place({"building": b.id, "on": "ground"}, outputs)
    assert ground.how == "terrain" and ground.building_id == b.id
    assert ground.h == pytest.approx(outputs.ground_height(ground.lon, ground.lat))
    lon, lat = _inside(b)
    assert place({"lon": lon, "lat": lat, "on": "ground"}, outputs).how == "terrain"


def test_given_height_is_kept_unless_clamped(outputs: BuildOutputs) -> None:
    lon, lat = _river_point()
    given = place([lon, lat, 1234.5], outputs)
    assert given.how == "given" and given.h == 1234.5
    clamped = place([lon, lat, 1234.5], outputs, clamp=True)
    assert clamped.how == "terrain" and clamped.h == outputs.ground_height(lon, lat)
    assert place({"coordinates": [lon, lat, 1234.5], "clamp": True}, outputs) == clamped
    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat, 9.0]},
               "properties": {"clamp": True}}  # fmt: skip
    assert place(feature, outputs).how == "terrain"


@pytest.mark.parametrize(
    ("location", "error", "text"),
    [
        ({"building": "NO-SUCH-ID"}, NotFoundError, "NO-SUCH-ID"),
        ([500.0, 40.0], CRSError, "do not fit"),
        ([113.3, 95.0], CRSError, "do not fit"),
        ([ORIGIN[0], ORIGIN[1]], CRSError, "do not fit EPSG:4326"),
        ({"coordinates": [1.0, 2.0], "crs": "EPSG:999999"}, CRSError, "unknown CRS"),
        ({"coordinates": [1e9, 1e9], "crs": CRS}, CRSError, "do not fit EPSG:4547"),
        ("火星市不存在区无名路999号", InputDataError, "火星市不存在区无名路999号"),
        ({"building": KNOWN_BUILDING_ID, "floor": 0}, InputDataError, "floor 0"),
        ({"building": KNOWN_BUILDING_ID, "floor": 2.5}, InputDataError, "whole number"),
        ({"building": KNOWN_BUILDING_ID, "on": "attic"}, InputDataError, "on must be"),
        ({"building": KNOWN_BUILDING_ID, "on": "floor"}, InputDataError, "needs a floor"),
        ({"floor": 2}, InputDataError, "needs coordinates"),
        ({"colour": "red"}, InputDataError, "colour"),
        ({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, InputDataError, "Point"),
        (["a", "b"], InputDataError, "numbers"),
        (42, InputDataError, "int"),
    ],
)
def test_bad_locations_are_one_line_errors(
    outputs: BuildOutputs, location: object, error: type, text: str
) -> None:
    with pytest.raises(error) as info:
        place(location, outputs)
    assert isinstance(info.value, CimError)
    assert text in str(info.value) and "\n" not in str(info.value)


def test_roof_asked_where_there_is_no_building(outputs: BuildOutputs) -> None:
    lon, lat = _river_point()
    with pytest.raises(NotFoundError, match="no building at"):
        place({"lon": lon, "lat": lat, "on": "roof"}, outputs)


def test_place_many_matches_place(outputs: BuildOutputs) -> None:
    table = outputs.buildings()
    rng = np.random.default_rng(5)
    rows = rng.choice(len(table), 40, replace=False)
    pts = [_inside(table.get(int(r))) for r in rows]
    west, south, east, north = shapely.total_bounds(table.footprints)
    pts += list(zip(rng.uniform(west, east, 40), rng.uniform(south, north, 40), strict=True))
    xy = np.array(pts)
    many = place_many(xy[:, 0], xy[:, 1], outputs)
    assert len(many) == 80 and set(many.how) <= {"roof", "terrain"}
    assert (many.how[:40] == "roof").all()
    for i in range(80):
        one = place([float(xy[i, 0]), float(xy[i, 1])], outputs)
        got = many[i]
        assert isinstance(got, Placement)
        assert (got.how, got.building_id) == (one.how, one.building_id)
        assert got.h == pytest.approx(one.h, abs=1e-9)
    ground = place_many(xy[:, 0], xy[:, 1], outputs, on="ground")
    assert (ground.how == "terrain").all()
    assert np.allclose(ground.h, outputs.ground_heights(xy[:, 0], xy[:, 1]))
    assert list(ground.building_id[:40]) == list(many.building_id[:40])


def test_place_many_crs_heights_and_errors(outputs: BuildOutputs) -> None:
    x = ORIGIN[0] + lay.river_x(np.array([0.0, 300.0])) + np.array([0.0, 0.0])
    y = ORIGIN[1] + np.array([0.0, 300.0])
    many = place_many(x, y, outputs, crs=CRS, z=[np.nan, 1500.0])
    assert list(many.how) == ["terrain", "given"] and many.h[1] == 1500.0
    clamped = place_many(x, y, outputs, crs=CRS, z=[np.nan, 1500.0], clamp=True)
    assert list(clamped.how) == ["terrain", "terrain"]
    with pytest.raises(CRSError, match="1 of 2 points"):
        place_many([113.3, 999.0], [40.0, 40.0], outputs)
    with pytest.raises(InputDataError):
        place_many([113.3], [40.0, 40.1], outputs)
