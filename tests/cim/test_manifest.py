"""The typed manifest: round trip, JSON Schema, no absolute paths."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from cim.build import build_project
from cim.manifest import (
    GENERATOR,
    SCHEMA_VERSION,
    Layer,
    Manifest,
    StageInfo,
    input_name,
    is_relative_reference,
    read_manifest,
    schema,
)

VALIDATOR = jsonschema.Draft202012Validator


def example() -> Manifest:
    return Manifest(
        name="平城",
        crs="EPSG:4547",
        extent=(121.5, 31.2, 121.6, 31.3),
        centre=(121.55, 31.25, 4.5),
        layers={
            "l2": Layer(
                "tiles/l2/tileset.json", {"buildings": 3, "tiles": 1, "properties": ["id"]}
            ),
            "terrain": Layer("terrain/layer.json", {"maxzoom": 14, "bounds": [1, 2, 3, 4]}),
            "extra": Layer("extra/index.json", {"stage": "l2"}),
        },
        stages={
            "buildings": StageInfo("ab12", seconds=1.23456, read=4, written=3, skipped=1),
            "l2": StageInfo("cd34", reused=True, written=3, layers=("l2", "extra"), warnings=2),
        },
        version="0.1.0",
        generator=f"{GENERATOR} 0.1.0",
        built_at="2026-11-28T12:00:00Z",
        inputs={"data/b.geojson": "0" * 32, "dem.tif": "missing"},
    )


def test_round_trip_through_json_text() -> None:
    m = example()
    back = Manifest.from_json(json.loads(m.dumps()))
    assert back == replace(
        m, stages={**m.stages, "buildings": replace(m.stages["buildings"], seconds=1.235)}
    )
    assert back.to_json() == json.loads(m.dumps())
    assert back.schema_version == SCHEMA_VERSION and back.layers["extra"].stage == "l2"
    assert next(iter(m.to_json()["layers"]["l2"])) == "url"


def test_example_validates_and_schema_catches_drift() -> None:
    validator = VALIDATOR(schema())
    VALIDATOR.check_schema(schema())
    data = example().to_json()
    validator.validate(data)
    for broken in (
        {**data, "schema_version": 2},
        {k: v for k, v in data.items() if k != "centre"},
        {**data, "inputs": {"/srv/gis/b.geojson": "0" * 32}},
        {**data, "inputs": {"../../srv/b.geojson": "0" * 32}},
        {**data, "layers": {"l2": {"url": "file:///srv/out/tiles/l2/tileset.json"}}},
        {**data, "layers": {"l2": {"url": "tiles/l2/tileset.json"}}},  # counts missing
        {**data, "extent": [200, 0, 1, 1]},
        {**data, "stages": {"l2": {**data["stages"]["l2"], "surprise": 1}}},
    ):
        assert not validator.is_valid(broken), broken


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("tiles/l2/tileset.json", True),
        ("data/b.geojson~2", True),
        ("/srv/out/manifest.json", False),
        ("C:\\data\\b.shp", False),
        ("C:/data/b.shp", False),
        ("../b.shp", False),
        ("a/../../b.shp", False),
        ("https://example.com/x.json", False),
        ("", False),
    ],
)
def test_relative_references(text: str, ok: bool) -> None:
    assert is_relative_reference(text) is ok
    assert VALIDATOR({"$ref": "#/$defs/relative", "$defs": schema()["$defs"]}).is_valid(text) is ok


def test_absolute_paths_are_refused_by_the_types() -> None:
    with pytest.raises(ValueError, match="relative"):
        Layer("/srv/out/tiles/l2/tileset.json")
    with pytest.raises(ValueError, match="relative"):
        replace(example(), inputs={"/srv/gis/b.geojson": "0" * 32})


def test_stages_cannot_announce_absolute_layer_urls(tmp_path: Path) -> None:
    from cim.report import BuildReport
    from cim.stages import BuildContext

    ctx = BuildContext(project=None, workdir=tmp_path, report=BuildReport())  # type: ignore[arg-type]
    ctx.add_layer("l2", {"url": "tiles/l2/tileset.json", "tiles": 1})
    with pytest.raises(ValueError, match="relative"):
        ctx.add_layer("x", {"url": str(tmp_path / "x" / "tileset.json")})
    assert list(ctx.manifest["layers"]) == ["l2"]


def test_input_names(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    assert input_name(root / "data" / "b.shp", root) == "data/b.shp"
    assert input_name(tmp_path / "elsewhere" / "b.shp", root) == "b.shp"
    assert input_name(tmp_path / "x" / "b.shp", root, {"b.shp": "", "b.shp~2": ""}) == "b.shp~3"


def test_built_manifest_has_no_server_paths(tmp_path: Path) -> None:
    """An input outside the project folder is named by its file name only."""
    shared = tmp_path / "shared" / "gis"
    shared.mkdir(parents=True)
    ring = [[121.5, 31.24], [121.5001, 31.24], [121.5001, 31.2401], [121.5, 31.24]]
    (shared / "b.geojson").write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"height": 12},
                        "geometry": {"type": "Polygon", "coordinates": [ring]},
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "city.toml").write_text(
        '[buildings]\npath = "../shared/gis/b.geojson"\n', encoding="utf-8"
    )
    out = build_project(proj / "city.toml", progress=False).output
    text = (out / "manifest.json").read_text(encoding="utf-8")
    assert str(tmp_path) not in text and "shared" not in text
    data = json.loads(text)
    assert list(data["inputs"]) == ["b.geojson"]
    VALIDATOR(schema()).validate(data)
    assert read_manifest(out) == Manifest.from_json(data)


def test_sample_build_manifest_validates(sample_output: Path) -> None:
    data = json.loads((sample_output / "manifest.json").read_text(encoding="utf-8"))
    VALIDATOR(schema()).validate(data)
    assert set(data["layers"]) >= {"l2", "terrain", "imagery", "addresses"}
    assert Manifest.from_json(data).to_json() == data
    strings: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, str):
            strings.append(value)
        elif isinstance(value, dict):
            strings.extend(value)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(data)
    assert not [s for s in strings if s.startswith("/") or str(sample_output.parent) in s]
