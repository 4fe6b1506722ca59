"""The sample city's L3 attributes: Chinese roof forms, materials, colours and podiums
in the old town (the ``[l3] district``), western forms among the modern infill."""

from __future__ import annotations

from pathlib import Path

import pyogrio
import pytest

from cim.config import load_project
from tiling.l3.roofs import RoofForm, parse_roof_form


@pytest.fixture(scope="module")
def table(sample_city: Path) -> dict:
    _, t = pyogrio.read_arrow(sample_city.parent / "data" / "buildings.gpkg", layer="buildings")
    return t.to_pydict()


def _row(table: dict, name: str) -> dict:
    k = table["name"].index(name)
    return {key: values[k] for key, values in table.items()}


def test_landmarks_have_their_roof_forms(table: dict) -> None:
    drum = _row(table, "鼓楼")
    assert parse_roof_form(drum["roof_type"]) is RoofForm.CHONGYAN_XIESHAN
    assert drum["podium_height"] >= 5.0  # the tower stands on its base
    hall = _row(table, "大雄宝殿")
    assert parse_roof_form(hall["roof_type"]) is RoofForm.CHONGYAN_WUDIAN  # main hall 重檐
    assert hall["roof_material"] == "glazed_tile" and hall["roof_colour"] == "黄"
    assert hall["podium_height"] > 1.0
    assert parse_roof_form(_row(table, "天王殿")["roof_type"]) is RoofForm.XIESHAN
    assert parse_roof_form(_row(table, "三圣殿")["roof_type"]) is RoofForm.WUDIAN
    assert parse_roof_form(_row(table, "华严寺钟楼")["roof_type"]) is RoofForm.CUANJIAN_4


def test_old_town_houses_and_infill(table: dict) -> None:
    roofs = [r for r in table["roof_type"] if r]
    forms = {parse_roof_form(r) for r in roofs}  # every value parses
    assert RoofForm.YINGSHAN in forms and RoofForm.XUANSHAN in forms
    houses = [k for k, u in enumerate(table["use"]) if u == "住宅"]
    yingshan = sum(table["roof_type"][k] == "硬山" for k in houses)
    assert yingshan > 1000  # the courtyard houses
    tiled = [k for k, r in enumerate(table["roof_type"]) if r == "硬山"]
    assert all(table["roof_material"][k] in ("tile", "glazed_tile") for k in tiled)
    western = {"gabled", "hipped", "half-hipped", "mansard", "shed"}
    assert western <= set(roofs)  # modern infill and the modern city


def test_project_maps_the_l3_attributes(sample_city: Path) -> None:
    b = load_project(sample_city).buildings
    assert b is not None
    fields = set(pyogrio.read_info(b.path, layer=b.layer)["fields"])
    assert {b.roof_type, b.roof_material, b.roof_colour, b.podium_height} <= fields
