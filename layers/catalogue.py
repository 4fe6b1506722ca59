"""The simulator's sensor catalogue: plausible sensors of a city, placed on its model.

:func:`catalogue` lists the sensors (deterministic for a seed) and :func:`place_sensors`
puts them on the build with :mod:`cim.placement`. On the sample city 平城 the sensors
follow its plan (:mod:`cim.sample`): water-level gauges in the river 御河, strain gauges
on the bridges that cross it, traffic counters at the main crossroads, manhole-cover
sensors along the streets, methane detectors in the utility tunnels under 府前路 and
平城大道, air-quality stations on a 1 km grid (on a roof where the grid point falls on
a building), energy meters on the roofs and floors of the CBD towers, and tilt sensors
on the old town's drum tower, gates and temple halls. Any other city gets air-quality
stations, energy meters on its tallest buildings and manhole-cover sensors.

Each :class:`Kind` carries what the SensorThings Datastream needs (unit, observed
property, thresholds, ``stale_after``) and the shape of its readings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely

from cim.errors import NotFoundError
from cim.outputs import BuildOutputs
from cim.placement import Placement, place, place_many

log = logging.getLogger(__name__)

__all__ = [
    "DEPARTMENTS",
    "KINDS",
    "Kind",
    "PlacedSensor",
    "SensorSpec",
    "catalogue",
    "is_sample_city",
    "place_sensors",
]

#: The sample city's departments, id -> display name: the one list. Its ids are those the
#: default events table (layers/events/categories.toml) dispatches cases to, and each
#: sensor kind belongs to the department its alarms' cases go to, so the simulator
#: registers the department a sensor alarm is dispatched to (tests/layers/test_simulate.py
#: checks both).
DEPARTMENTS: dict[str, str] = {
    "cityadmin": "城管局",
    "construction": "住建局建筑市场处",
    "emergency": "应急管理局",
    "environment": "生态环境局",
    "fire": "消防救援支队",
    "gardens": "园林绿化局",
    "gas": "燃气公司",
    "housing": "住建局",
    "police": "公安交警支队",
    "power": "供电公司",
    "roads": "市政路桥管理处",
    "sanitation": "环卫处",
    "telecom": "通信管线办",
    "transport": "交通运输局",
    "utilities": "市政公用事业局",
    "water": "水务局",
}

_QUDT = "http://qudt.org/vocab/unit/"


@dataclass(frozen=True)
class Kind:
    """One kind of sensor: its SensorThings metadata and the shape of its readings.

    Values are ``scale * (base + amplitude * shape(hour))`` plus AR(1) noise of
    standard deviation ``scale * noise``, kept within ``[minimum, warn_high)`` outside
    excursions; thresholds are multiplied by the sensor's ``scale`` too.
    """

    key: str
    department: str
    prefix: str
    thing: str
    property_name: str
    property_definition: str
    property_description: str
    unit: dict[str, str]
    sensor: str
    base: float
    amplitude: float
    noise: float
    warn_high: float
    alarm_high: float
    stale_after: float
    shape: str = "flat"
    minimum: float = 0.0
    decimals: int = 1

    def thresholds(self, scale: float = 1.0) -> dict[str, float]:
        """The Datastream's ``properties.thresholds`` for a sensor of ``scale``."""
        return {
            "warn_high": round(self.warn_high * scale, 3),
            "alarm_high": round(self.alarm_high * scale, 3),
        }


KINDS: dict[str, Kind] = {
    k.key: k
    for k in [
        Kind("water_level", "water", "WL", "御河水位站", "水位 water level",
             "urn:cim:property:water_level", "River water level above the gauge datum",
             {"name": "metre", "symbol": "m", "definition": _QUDT + "M"},
             "雷达水位计 radar level gauge", base=2.2, amplitude=0.15, noise=0.04,
             warn_high=3.5, alarm_high=4.2, stale_after=300.0, shape="day", decimals=2),
        Kind("manhole", "water", "MH", "井盖监测", "井盖倾角 manhole cover tilt",
             "urn:cim:property:manhole_tilt", "Tilt of a manhole cover (open or displaced)",
             {"name": "degree", "symbol": "°", "definition": _QUDT + "DEG"},
             "井盖倾角传感器 manhole cover tilt sensor", base=0.6, amplitude=0.0, noise=0.2,
             warn_high=5.0, alarm_high=15.0, stale_after=600.0),
        Kind("traffic_flow", "police", "TF", "交通流量检测", "车流量 traffic flow",
             "urn:cim:property:traffic_flow", "Vehicles passing per hour, both directions",
             {"name": "vehicles per hour", "symbol": "veh/h",
              "definition": "urn:cim:unit:vehicles_per_hour"},
             "地磁车辆检测器 magnetic vehicle detector", base=700.0, amplitude=650.0,
             noise=60.0, warn_high=1800.0, alarm_high=2300.0, stale_after=300.0,
             shape="traffic", decimals=0),
        Kind("bridge_strain", "roads", "BS", "桥梁健康监测", "桥梁应变 bridge strain",
             "urn:cim:property:strain", "Strain of the main girder",
             {"name": "microstrain", "symbol": "µε", "definition": _QUDT + "MicroSTRAIN"},
             "振弦式应变计 vibrating-wire strain gauge", base=120.0, amplitude=45.0,
             noise=8.0, warn_high=300.0, alarm_high=400.0, stale_after=300.0, shape="traffic"),
        Kind("tunnel_gas", "utilities", "TG", "综合管廊气体监测", "管廊甲烷 utility tunnel methane",
             "urn:cim:property:methane_lel", "Methane in the utility tunnel, % of the lower "
             "explosive limit", {"name": "percent LEL", "symbol": "%LEL",
                                 "definition": "urn:cim:unit:percent_lel"},
             "催化燃烧式甲烷探测器 catalytic methane detector", base=1.2, amplitude=0.4,
             noise=0.4, warn_high=10.0, alarm_high=25.0, stale_after=300.0, shape="day"),
        Kind("air_quality", "environment", "AQ", "空气质量监测站", "PM2.5 air quality",
             "urn:cim:property:pm2_5", "Fine particulate matter PM2.5 (GB 3095-2012)",
             {"name": "microgram per cubic metre", "symbol": "µg/m³",
              "definition": _QUDT + "MicroGM-PER-M3"},
             "β射线颗粒物监测仪 beta-attenuation PM monitor", base=38.0, amplitude=16.0,
             noise=4.0, warn_high=75.0, alarm_high=115.0, stale_after=600.0, shape="air"),
        Kind("building_energy", "housing", "BE", "建筑能耗监测", "建筑能耗 building energy",
             "urn:cim:property:electric_power", "Electric power drawn by the building (or floor)",
             {"name": "kilowatt", "symbol": "kW", "definition": _QUDT + "KiloW"},
             "智能电表 smart electricity meter", base=120.0, amplitude=80.0, noise=8.0,
             warn_high=300.0, alarm_high=380.0, stale_after=600.0, shape="office"),
        Kind("heritage_tilt", "housing", "HT", "古建筑结构监测", "古建筑倾斜 structural tilt",
             "urn:cim:property:structural_tilt", "Tilt of a historic timber structure",
             {"name": "per mille", "symbol": "‰", "definition": _QUDT + "PERMILLE"},
             "双轴倾角仪 biaxial inclinometer", base=0.8, amplitude=0.05, noise=0.05,
             warn_high=2.0, alarm_high=3.0, stale_after=900.0, shape="day", decimals=2),
    ]
}  # fmt: skip


@dataclass(frozen=True)
class SensorSpec:
    """One sensor of the catalogue, before placement.

    ``location`` is a :func:`cim.placement.place` location; ``point`` instead gives
    (x, y) in :attr:`crs` placed in bulk with ``on`` (``"ground"`` or ``"auto"``).
    """

    key: str
    kind: str
    name: str
    where: str
    location: dict[str, Any] | None = None
    point: tuple[float, float] | None = None
    crs: str | None = None
    on: str = "ground"
    scale: float = 1.0


@dataclass(frozen=True)
class PlacedSensor:
    """A catalogue sensor with its placement."""

    spec: SensorSpec
    placement: Placement
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> Kind:
        """Its :class:`Kind`."""
        return KINDS[self.spec.kind]


def is_sample_city(outputs: BuildOutputs) -> bool:
    """Whether the build is the sample city 平城 (its fixed building is where it belongs)."""
    from cim.sample import _layout as lay

    try:
        return outputs.building(f"PC{1:06d}").name == lay.NOTABLE_OLD[0][0]
    except NotFoundError:
        return False


def catalogue(outputs: BuildOutputs, seed: int = 2026) -> list[SensorSpec]:
    """The sensors of a city, deterministic for a seed.

    Parameters
    ----------
    outputs : BuildOutputs
        The built city (its buildings choose the energy meters).
    seed : int
        Seed of the choices (manhole positions, towers).

    Returns
    -------
    list of SensorSpec
        Sorted by key; keys are unique.
    """
    rng = np.random.default_rng([seed, 7])
    specs = _sample(outputs, rng) if is_sample_city(outputs) else _generic(outputs, rng)
    specs.sort(key=lambda s: s.key)
    return specs


def place_sensors(specs: list[SensorSpec], outputs: BuildOutputs) -> list[PlacedSensor]:
    """Place every sensor on the build (points in bulk, buildings one by one)."""
    out: dict[str, PlacedSensor] = {}
    bulk: dict[tuple[str | None, str], list[SensorSpec]] = {}
    for s in specs:
        if s.point is not None:
            bulk.setdefault((s.crs, s.on), []).append(s)
        else:
            out[s.key] = PlacedSensor(s, place(s.location, outputs))
    for (crs, on), group in bulk.items():
        xy = np.array([s.point for s in group], dtype=np.float64)
        placed = place_many(xy[:, 0], xy[:, 1], outputs, crs=crs, on=on)
        for i, s in enumerate(group):
            out[s.key] = PlacedSensor(s, placed[i])
    return [out[s.key] for s in specs]


# --- the sample city --------------------------------------------------------------------------


def _notable(outputs: BuildOutputs, index: int) -> str | None:
    """Id of the sample's notable building number ``index`` (0-based), if it was built."""
    bid = f"PC{index + 1:06d}"
    try:
        outputs.building(bid)
    except NotFoundError:
        return None
    return bid


def _sample(outputs: BuildOutputs, rng: np.random.Generator) -> list[SensorSpec]:
    from cim.sample import CRS, ORIGIN
    from cim.sample import _layout as lay

    ox, oy = ORIGIN
    specs: list[SensorSpec] = []

    def pt(
        kind: str,
        n: int,
        name: str,
        where: str,
        x: float,
        y: float,
        on: str = "ground",
        scale: float = 1.0,
    ) -> None:
        key = f"{KINDS[kind].prefix}-{n:03d}"
        specs.append(
            SensorSpec(
                key,
                kind,
                name,
                where,
                point=(float(x + ox), float(y + oy)),
                crs=CRS,
                on=on,
                scale=scale,
            )
        )

    # river gauges, off the bridges by 60 m
    for n, y in enumerate(range(-2000, 2001, 500), 1):
        pt("water_level", n, f"御河水位站{n:02d}", "御河", lay.river_x(y + 60.0), y + 60.0)
    # bridges: every east-west road crossing the river, a gauge each side of mid-span
    roads = {y: name for y, (name, _) in lay._EW_MAIN.items()} | {0.0: "东关大街"}
    n = 0
    for y in sorted(roads):
        for side, dx in (("西", -15.0), ("东", 15.0)):
            n += 1
            pt(
                "bridge_strain",
                n,
                f"{roads[y]}御河桥应变{side}",
                f"{roads[y]}御河桥",
                lay.river_x(y) + dx,
                y,
            )
    # traffic counters: main crossroads of the modern grid, 20 m before the junction
    main_x = [x for x in lay._NS_MAIN if abs(x) < lay.CITY_HALF]
    main_y = [y for y in lay._EW_MAIN if abs(y) < lay.CITY_HALF]
    n = 0
    for ix, x in enumerate(main_x):
        for iy, y in enumerate(main_y):
            if (ix + iy) % 2:  # every other crossroads, a chequerboard over the grid
                continue
            n += 1
            pt(
                "traffic_flow",
                n,
                f"{lay._NS_MAIN[x][0]}×{lay._EW_MAIN[y][0]}路口",
                "路口",
                x,
                y + 20.0 + lay._EW_MAIN[y][1] / 2,
            )
    for name, (x, y) in {
        "鼓楼东街": (300.0, 0.0),
        "鼓楼西街": (-300.0, 0.0),
        "北大街": (0.0, 300.0),
        "南大街": (0.0, -300.0),
    }.items():
        n += 1
        pt("traffic_flow", n, f"{name}车流", name, x, y)
    # manhole covers: random points on the streets, 3 m off the centre line
    streets = lay.make_streets()
    lines = streets.lines
    kinds = np.asarray(streets.kinds)
    pick = np.flatnonzero(np.isin(kinds, ["road", "minor", "old_main", "old_street"]))
    chosen = np.sort(rng.choice(pick, size=min(60, pick.size), replace=True))
    frac = rng.uniform(0.05, 0.95, chosen.size)
    for n, (i, f) in enumerate(zip(chosen, frac, strict=True), 1):
        p = shapely.line_interpolate_point(lines[i], f, normalized=True)
        c = shapely.get_coordinates(shapely.offset_curve(lines[i], 3.0))
        # the offset line runs alongside; take its point nearest the chosen one
        d = np.hypot(c[:, 0] - shapely.get_x(p), c[:, 1] - shapely.get_y(p))
        x, y = c[int(np.argmin(d))] if len(c) else shapely.get_coordinates(p)[0]
        pt("manhole", n, f"{streets.names[i]}井盖{n:02d}", streets.names[i], x, y)
    # utility tunnels under 府前路 (y = 1200) and 平城大道 (y = -1200)
    n = 0
    for y, road in ((1200.0, "府前路"), (-1200.0, "平城大道")):
        for x in range(-2000, 2001, 250):
            n += 1
            pt("tunnel_gas", n, f"{road}管廊舱{n:02d}", f"{road}综合管廊", float(x), y + 5.0)
    # air quality: a 1 km grid; on a roof where the grid point is a building
    n = 0
    for y in range(-2000, 2001, 1000):
        for x in range(-2000, 2001, 1000):
            n += 1
            pt("air_quality", n, f"空气质量站{n:02d}", "网格", x + 35.0, y + 35.0, on="auto")
    specs += _energy_sample(outputs, rng)
    specs += _heritage_sample(outputs)
    return specs


def _energy_sample(outputs: BuildOutputs, rng: np.random.Generator) -> list[SensorSpec]:
    from cim.sample import _layout as lay

    specs: list[SensorSpec] = []
    n_old = len(lay.NOTABLE_OLD)
    n = 0
    for i, row in enumerate(lay.NOTABLE_NEW):
        bid = _notable(outputs, n_old + i)
        if bid is None:
            continue
        b = outputs.building(bid)
        scale = _energy_scale(b.height, shapely.area(b.footprint) * 111_195.0**2 * 0.77)
        n += 1
        specs.append(
            SensorSpec(
                f"BE-{n:03d}",
                "building_energy",
                f"{row[0]}总表",
                row[0],
                location={"building": bid, "on": "roof"},
                scale=scale,
            )
        )
        floors = int(b.floors or 0)
        for f in sorted({1, floors // 2, floors - 1} if floors >= 8 else set()):
            n += 1
            specs.append(
                SensorSpec(
                    f"BE-{n:03d}",
                    "building_energy",
                    f"{row[0]}{f}层分表",
                    row[0],
                    location={"building": bid, "floor": f},
                    scale=round(scale / 4, 3),
                )
            )
    # towers of the residential blocks: roof meters on a seeded choice
    table = outputs.buildings()
    tall = [table.get(i) for i in range(len(table))]
    towers = sorted((b for b in tall if b.height >= 50.0 and not b.name), key=lambda b: b.id)
    if towers:
        for k in np.sort(rng.choice(len(towers), size=min(20, len(towers)), replace=False)):
            b = towers[int(k)]
            n += 1
            specs.append(
                SensorSpec(
                    f"BE-{n:03d}",
                    "building_energy",
                    f"住宅楼{b.id}总表",
                    b.id,
                    location={"building": b.id},
                    scale=_energy_scale(b.height, 600.0),
                )
            )
    return specs


def _energy_scale(height: float, area_m2: float) -> float:
    """Meter scale: roughly the building's floor area in units of 10,000 m²."""
    floors = max(1.0, height / 3.5)
    return round(float(np.clip(floors * area_m2 / 10_000.0, 0.2, 40.0)), 3)


def _heritage_sample(outputs: BuildOutputs) -> list[SensorSpec]:
    from cim.sample import _layout as lay

    specs = []
    for i, row in enumerate(lay.NOTABLE_OLD):
        if row[1] not in ("tower_old", "gate") and "殿" not in row[0]:
            continue
        bid = _notable(outputs, i)
        if bid is not None:
            specs.append(
                SensorSpec(
                    f"HT-{len(specs) + 1:03d}",
                    "heritage_tilt",
                    f"{row[0]}倾斜监测",
                    row[0],
                    location={"building": bid},
                )
            )
    return specs


# --- any other city ---------------------------------------------------------------------------


def _generic(outputs: BuildOutputs, rng: np.random.Generator) -> list[SensorSpec]:
    """Air quality on a grid, energy on the tallest buildings, manholes between them."""
    table = outputs.buildings()
    if not len(table):
        return []
    west, south, east, north = shapely.total_bounds(table.footprints)
    specs: list[SensorSpec] = []
    gx = np.linspace(west, east, 6)[1:-1]
    gy = np.linspace(south, north, 6)[1:-1]
    for n, (x, y) in enumerate(((x, y) for y in gy for x in gx), 1):
        specs.append(
            SensorSpec(
                f"AQ-{n:03d}",
                "air_quality",
                f"空气质量站{n:02d}",
                "网格",
                point=(float(x), float(y)),
                on="auto",
            )
        )
    heights = np.array([table.get(i).height for i in range(len(table))])
    for n, i in enumerate(np.argsort(-heights, kind="stable")[:30], 1):
        b = table.get(int(i))
        specs.append(
            SensorSpec(
                f"BE-{n:03d}",
                "building_energy",
                f"{b.name or b.id}总表",
                b.id,
                location={"building": b.id},
                scale=_energy_scale(b.height, 800.0),
            )
        )
    x = rng.uniform(west, east, 40)
    y = rng.uniform(south, north, 40)
    for n in range(40):
        specs.append(
            SensorSpec(
                f"MH-{n + 1:03d}",
                "manhole",
                f"井盖{n + 1:02d}",
                "",
                point=(float(x[n]), float(y[n])),
            )
        )
    return specs
