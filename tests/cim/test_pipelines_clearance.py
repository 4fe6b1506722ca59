"""Clearance (净距) minimums by class: water by diameter, gas by pressure, cables by laying."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely

from cim.crs import get_transformer
from cim.errors import InputDataError
from cim.pipelines import (
    NETWORK_FILE,
    PipeNetwork,
    clearance_tables,
    diameter_class,
    gas_pressure_class,
    laying_class,
    pipe_class,
    required_clearance,
)

DEFAULTS = clearance_tables()


@pytest.mark.parametrize(
    ("text", "cls"),
    [
        ("低压", "low"),
        ("中压B", "medium-b"),
        ("中压 A", "medium-a"),
        ("中压", "medium-a"),  # no letter: the stricter class
        ("中压0.2MPa", "medium-b"),  # the surveyed pressure decides
        ("0.3MPa", "medium-a"),
        ("0.005MPa", "low"),
        ("2kPa", "low"),
        ("400kPa", "medium-a"),
        ("0.6 MPa", "sub-high-b"),
        ("次高压A", "sub-high-a"),
        ("次高压B级", "sub-high-b"),
        ("次高压", "sub-high-a"),
        ("1.6MPa", "sub-high-a"),
        ("2.5MPa", "high"),
        ("高压", "high"),
        ("0.4", None),  # a bare number: which unit?
        ("", None),
        (None, None),
    ],
)
def test_gas_pressure_class(text: str | None, cls: str | None) -> None:
    assert gas_pressure_class(text) == cls


def test_laying_and_diameter_classes() -> None:
    assert [laying_class(t) for t in ("直埋", "PVC排管", "电缆沟", "保护管", "架空", "")] == [
        "direct",
        "conduit",
        "trench",
        "conduit",
        None,
        None,
    ]
    assert [diameter_class(v) for v in (150, 200, 200.5, "d>200", "≤200", 0, "x")] == [
        "d<=200",
        "d<=200",
        "d>200",
        "d>200",
        "d<=200",
        None,
        None,
    ]
    assert pipe_class("water", diameter_mm=300) == "d>200"
    assert pipe_class("gas", pressure="次高压A", laying="直埋") == "sub-high-a"
    assert pipe_class("power", laying="排管") == "conduit"
    assert pipe_class("heat", laying="排管") == ""  # the heat rows know direct and trench only
    assert pipe_class("drainage", diameter_mm=300, laying="直埋") == ""


def _h(a: str, ca: str, b: str, cb: str, tables: dict = DEFAULTS) -> float:
    return required_clearance(tables, "horizontal", a, ca, b, cb)


def test_gas_to_buildings_by_pressure() -> None:
    """GB 50028-2006 table 6.3.3-1: 0.7, 1.0, 1.5 (foundation), 5.0, 13.5 (outer wall)."""
    got = [_h("building", "", "gas", c) for c in ("low", "medium-b", "medium-a")]
    assert got == [0.7, 1.0, 1.5]
    assert _h("gas", "sub-high-b", "building", "") == 5.0
    assert _h("building", "", "gas", "sub-high-a") == 13.5
    assert _h("building", "", "gas", "high") == 13.5  # beyond the table: its last class
    assert _h("building", "", "gas", "") == 1.5  # unknown pressure: the pair default


def test_gas_to_other_pipes_by_pressure_and_laying() -> None:
    assert _h("gas", "low", "drainage", "") == 1.0
    assert _h("drainage", "", "gas", "sub-high-a") == 2.0
    assert _h("gas", "medium-b", "power", "direct") == 0.5
    assert _h("power", "conduit", "gas", "medium-b") == 1.0
    assert _h("gas", "sub-high-b", "power", "") == 1.0  # laying unknown: the stricter
    assert _h("gas", "", "telecom", "direct") == 0.5  # pressure unknown: medium A
    assert _h("gas", "sub-high-a", "heat", "trench") == 4.0
    assert _h("gas", "", "water", "") == 0.5
    assert _h("gas", "sub-high-a", "water", "d<=200") == 1.5


def test_water_by_diameter() -> None:
    """GB 50289-2016 table 4.1.9: to buildings 1.0 / 3.0 m, to drainage 1.0 / 1.5 m."""
    assert _h("building", "", "water", "d<=200") == 1.0
    assert _h("water", "d>200", "building", "") == 3.0
    assert _h("water", "", "building", "") == 3.0  # unknown diameter: the stricter
    assert _h("drainage", "", "water", "d<=200") == 1.0
    assert _h("water", "d>200", "drainage", "") == 1.5
    assert _h("water", "d<=200", "power", "direct") == 0.5  # not split: the pair's


def test_vertical_minimums_stay_per_pair() -> None:
    assert required_clearance(DEFAULTS, "vertical", "power", "conduit", "water", "d<=200") == 0.5
    assert required_clearance(DEFAULTS, "vertical", "drainage", "", "water", "d>200") == 0.4
    assert np.isnan(required_clearance(DEFAULTS, "vertical", "building", "", "water", ""))


def test_overrides_win_most_specific_first() -> None:
    tables = clearance_tables(
        {"building/gas": 2.0, "燃气:次高压A/建筑": 9.0, "water-gas": 0.7, "power:排管/gas": 1.2},
        {"power:直埋/water": 0.6},
    )
    assert _h("building", "", "gas", "sub-high-b", tables) == 2.0  # the project's, not 5.0
    assert _h("building", "", "gas", "sub-high-a", tables) == 9.0
    assert _h("building", "", "gas", "high", tables) == 9.0
    assert _h("gas", "low", "water", "", tables) == 0.7
    assert _h("gas", "low", "power", "conduit", tables) == 1.2
    assert required_clearance(tables, "vertical", "water", "", "power", "direct") == 0.6
    assert required_clearance(tables, "vertical", "water", "", "power", "conduit") == 0.5
    assert tables["overrides"]["horizontal"]["building/gas:sub-high-a"] == 9.0
    assert tables["horizontal"]["building/gas:sub-high-a"] == 9.0  # shown in force
    for bad in ("gas:很大/water", "gas/water/power", "gas:low", "water:d>300/gas"):
        with pytest.raises(InputDataError):
            clearance_tables({bad: 1.0})


# --- on a built network ---------------------------------------------------------------

ORIGIN = (440300.0, 4439750.0)
# id, x0, y0, x1, y1, 管径, 压力, 埋设方式, 管线类型: pipes running east along y, a building
# north of them from y = 10
PIPES = [
    ("G1", 0, 2, 60, 2, "DN200", "次高压A 1.2MPa", "直埋", "燃气"),  # 8 m: < 13.5
    ("G2", 0, -6, 60, -6, "DN100", "低压", "直埋", "燃气"),  # 16 m: fine
    ("W1", 0, 8, 60, 8, "DN150", "", "直埋", "给水"),  # 2 m: ≥ 1.0 (d ≤ 200)
    ("W2", 0, 7.5, 60, 7.5, "DN300", "", "直埋", "给水"),  # 2.5 m: < 3.0
    ("E1", 0, -3, 60, -3, "DN150", "", "排管", "电力"),  # 3 m from G1: ≥ 1.5
]


def _write(root: Path) -> Path:
    data = root / "data"
    data.mkdir(parents=True)
    pts = ["点号,x,y,地面高程,埋深,管线类型"]
    segs = ["管线编号,起点点号,终点点号,起点埋深,终点埋深,管径,压力,埋设方式,管线类型"]
    for sid, x0, y0, x1, y1, size, pressure, laying, kind in PIPES:
        for end, (x, y) in (("a", (x0, y0)), ("b", (x1, y1))):
            pts.append(f"{sid}{end},{x + ORIGIN[0]},{y + ORIGIN[1]},1000.0,1.2,{kind}")
        segs.append(f"{sid},{sid}a,{sid}b,1.2,1.2,{size},{pressure},{laying},{kind}")
    (data / "p.csv").write_bytes(("\n".join(pts) + "\n").encode("gbk"))
    (data / "s.csv").write_bytes(("\n".join(segs) + "\n").encode("gbk"))
    toml = root / "city.toml"
    toml.write_text(
        '[city]\nname = "t"\ncrs = "EPSG:4547"\n'
        '[pipelines]\npoints = "data/p.csv"\nsegments = "data/s.csv"\nwells = false\n',
        encoding="utf-8",
    )
    return toml


def test_classes_decide_on_a_built_network(tmp_path: Path) -> None:
    from cim.build import build_project

    out = build_project(_write(tmp_path), progress=False).output
    net = PipeNetwork(out / NETWORK_FILE)
    try:
        assert dict(zip(net.segments.ids, net.segments.cls, strict=True)) == {
            "G1": "sub-high-a",
            "G2": "low",
            "W1": "d<=200",
            "W2": "d>200",
            "E1": "conduit",
        }
        tf = get_transformer("EPSG:4547")
        corners = [(x + ORIGIN[0], y + ORIGIN[1]) for x, y in ((10, 10), (50, 10), (50, 30))]
        corners += [(10 + ORIGIN[0], 30 + ORIGIN[1])]
        lon, lat = tf.transform(*np.array(corners).T)
        footprint = shapely.Polygon(net.to_frame(lon, lat))
        rows = np.arange(len(net.segments.ids))
        got = net.clearances(rows, footprints=np.array([footprint]), footprint_ids=np.array(["B"]))
        to_building = {v["a"]: v for v in got["violations"] if v["kind"] == "building"}
        assert set(to_building) == {"G1", "W2"}
        assert to_building["G1"]["required"] == 13.5
        assert to_building["G1"]["classes"] == ["sub-high-a", ""]
        assert to_building["W2"]["required"] == 3.0
        between = {(v["a"], v["b"]) for v in got["violations"] if v["kind"] != "building"}
        assert not {p for p in between if "E1" in p and "G1" in p}  # 3 m ≥ 1.5 m
    finally:
        net.close()
