"""Corpus: bad attribute values are repaired per feature; metadata stays valid and typed."""

from __future__ import annotations

import re

import pytest
from corpus_kit import (
    Project,
    buildings_project,
    expect_built,
    feature,
    good_features,
    polygon,
    square,
    wkt_polygon,
)

IDS = [f"b{k}" for k in range(8)]
ID_PATTERN = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")  # 3D Tiles metadata ids


def _with_bad(project: Project, more: str = "", **props) -> dict:
    feats = [*good_features(), feature("bad", polygon(square(20)), **props)]
    buildings_project(project, feats, more)
    return expect_built(project, project.build(), [*IDS, "bad"])


@pytest.mark.parametrize(
    "height,expected",
    [("12m", 12.0), ("12.5 m", 12.5), ("12米", 12.0), (" 7 ", 7.0)],
    ids=["12m", "12.5-space-m", "chinese-unit", "padded"],
)
def test_height_as_text(project: Project, height: str, expected: float) -> None:
    features = _with_bad(project, height=height)
    assert features["bad"]["height"] == pytest.approx(expected)


@pytest.mark.parametrize(
    "height", [-5.0, 1e9, 0.0, "n/a"], ids=["negative", "absurd-1e9", "zero", "text"]
)
def test_unusable_height_falls_back_to_floors(project: Project, height) -> None:
    features = _with_bad(project, height=height, floors=4)
    assert features["bad"]["height"] == pytest.approx(12.0)
    assert "bad" in {r["id"] for r in project.report()["buildings"]["repaired"]}


def test_nan_height_in_csv(project: Project) -> None:
    rows = [(f"b{k}", wkt_polygon(square(k)), 10 + k) for k in range(8)]
    project.csv(
        "data/b.csv", ["id", "wkt", "height"], [*rows, ("bad", wkt_polygon(square(20)), "nan")]
    )
    project.toml('[buildings]\npath = "data/b.csv"\nid = "id"\ncrs = "EPSG:4326"\n')
    features = expect_built(project, project.build(), [*IDS, "bad"], repaired=["bad"])
    assert features["bad"]["height"] == pytest.approx(10.0)  # default_height


def test_fractional_floors_are_kept(project: Project) -> None:
    features = _with_bad(project, floors=2.5)
    assert features["bad"]["floors"] == pytest.approx(2.5)
    assert features["bad"]["height"] == pytest.approx(7.5)


def test_absurd_floors_give_the_default_height(project: Project) -> None:
    features = _with_bad(project, floors=5000)
    assert features["bad"]["height"] == pytest.approx(10.0)


def _schema_properties(project: Project) -> dict[str, dict]:
    props: dict[str, dict] = {}
    for schema in project.glb_schemas():
        for cls in schema["classes"].values():
            props.update(cls["properties"])
    return props


def test_extra_with_a_chinese_name(project: Project) -> None:
    feats = good_features(**{"建成年代": "1998年"})
    buildings_project(project, feats, 'extra = ["建成年代"]\n')
    features = expect_built(project, project.build(), IDS)
    props = _schema_properties(project)
    assert all(ID_PATTERN.match(key) for key in props), sorted(props)
    keys = [k for k, p in props.items() if p.get("name") == "建成年代" or k == "建成年代"]
    assert len(keys) == 1, props
    assert features["b0"][keys[0]] == "1998年"
    from tiling.validate import check_tileset

    assert check_tileset(project.output / "tiles/l2/tileset.json") == []


def test_numeric_extra_keeps_its_type(project: Project) -> None:
    feats = [
        feature(f"b{k}", polygon(square(k)), height=10.0, year=1990 + k, ratio=0.5 + k)
        for k in range(8)
    ]
    buildings_project(project, feats, 'extra = ["year", "ratio"]\n')
    features = expect_built(project, project.build(), IDS)
    props = _schema_properties(project)
    for name in ("year", "ratio"):
        key = next(k for k, p in props.items() if k == name or p.get("name") == name)
        assert props[key]["type"] == "SCALAR", props[key]
    assert features["b3"]["year"] == 1993
    assert features["b3"]["ratio"] == pytest.approx(3.5)


def test_missing_extra_column_is_a_warning(project: Project) -> None:
    buildings_project(project, good_features(), 'extra = ["no_such_column"]\n')
    expect_built(project, project.build(), IDS)
    assert any("no_such_column" in w for w in project.report()["buildings"]["warnings"])


def test_one_megabyte_name(project: Project) -> None:
    features = _with_bad(project, name="名" * 350_000, height=20.0)
    assert features["bad"]["height"] == pytest.approx(20.0)
    sizes = [p.stat().st_size for p in (project.output / "tiles/l2").rglob("*.glb")]
    assert max(sizes) < 1_000_000, sizes
    st = project.report()
    listed = [r for s in st.values() for r in s["repaired"] + s.get("flagged", [])]
    assert any(r["id"] == "bad" for r in listed), "the truncated name is not reported"


def test_missing_height_and_floors_columns(project: Project) -> None:
    feats = [feature(f"b{k}", polygon(square(k)), name=f"楼{k}") for k in range(8)]
    buildings_project(project, feats)
    features = expect_built(project, project.build(), IDS)
    assert all(f["height"] == pytest.approx(10.0) for f in features.values())


def test_configured_columns_that_do_not_exist(project: Project) -> None:
    more = 'height = "HGT"\nfloors = "NUM_FLOORS"\nname = "NAME_CN"\n'
    buildings_project(project, good_features(), more)
    features = expect_built(project, project.build(), IDS)
    assert len(features) == 8


def test_id_column_missing_from_the_file(project: Project) -> None:
    feats = [feature(None, polygon(square(k)), objectid=k, height=10.0) for k in range(8)]
    buildings_project(project, feats)
    features = expect_built(project, project.build(), [])
    assert len(features) == 8


def test_numeric_ids_and_names(project: Project) -> None:
    feats = [feature(1000 + k, polygon(square(k)), height=9.0, name=k) for k in range(8)]  # type: ignore[arg-type]
    buildings_project(project, feats)
    features = expect_built(project, project.build(), [str(1000 + k) for k in range(8)])
    assert features["1003"]["name"] == "3"
