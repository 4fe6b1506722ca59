"""Corpus: city.toml problems and the output-folder policy (exit 2, nothing touched)."""

from __future__ import annotations

import pytest
from corpus_kit import (
    BUILDINGS_TOML,
    Project,
    buildings_project,
    expect_built,
    expect_error,
    good_features,
)

IDS = [f"b{k}" for k in range(8)]

# (case id, city.toml text, regex the one error line must match)
BAD_TOML = [
    ("section-as-string", 'buildings = "data/b.geojson"\n', r"buildings.*(table|section)"),
    (
        "output-as-string",
        'output = "out"\n' + BUILDINGS_TOML.format(path="data/b.geojson", more=""),
        r"output.*(table|section)",
    ),
    (
        "city-as-string",
        'city = "x"\n[buildings]\npath = "data/b.geojson"\n',
        r"city.*(table|section)",
    ),
    (
        "terrain-as-string",
        'terrain = "dem.tif"\n' + BUILDINGS_TOML.format(path="data/b.geojson", more=""),
        r"terrain.*(table|section)",
    ),
    (
        "floor-height-string",
        BUILDINGS_TOML.format(path="data/b.geojson", more='floor_height = "3"\n'),
        r"floor_height",
    ),
    (
        "l2-budget-string",
        BUILDINGS_TOML.format(path="data/b.geojson", more="")
        + '[l2]\nmax_features_per_tile = "many"\n',
        r"max_features_per_tile",
    ),
    (
        "geoid-offset-string",
        BUILDINGS_TOML.format(path="data/b.geojson", more="") + '[datum]\ngeoid_offset = "x"\n',
        r"geoid_offset",
    ),
    (
        "path-number",
        "[buildings]\npath = 5\n",
        r"path",
    ),
    (
        "city-crs-number",
        '[city]\ncrs = 4547\n[buildings]\npath = "data/b.geojson"\n',
        r"crs",
    ),
    (
        "output-dir-number",
        BUILDINGS_TOML.format(path="data/b.geojson", more="") + "[output]\ndir = 3\n",
        r"dir",
    ),
    (
        "unknown-key",
        BUILDINGS_TOML.format(path="data/b.geojson", more="floor_hieght = 3.0\n"),
        r"floor_hieght.*did you mean 'floor_height'",
    ),
    (
        "unknown-section",
        '[bulidings]\npath = "data/b.geojson"\n',
        r"\[bulidings\].*did you mean \[buildings\]",
    ),
    (
        "unknown-city-key",
        '[city]\nnmae = "x"\n[buildings]\npath = "data/b.geojson"\n',
        r"nmae",
    ),
    (
        "unknown-output-key",
        BUILDINGS_TOML.format(path="data/b.geojson", more="") + '[output]\ndri = "out"\n',
        r"dri",
    ),
    ("toml-syntax", '[buildings\npath = "data/b.geojson"\n', r"city\.toml.*TOML"),
    ("empty-toml", "", r"city\.toml.*nothing to build"),
    (
        "unknown-encoding",
        BUILDINGS_TOML.format(path="data/b.geojson", more='encoding = "klingon"\n'),
        r"klingon",
    ),
    (
        "floor-height-absurd",
        BUILDINGS_TOML.format(path="data/b.geojson", more="floor_height = 50.0\n"),
        r"floor_height",
    ),
]


@pytest.mark.parametrize("text,message", [c[1:] for c in BAD_TOML], ids=[c[0] for c in BAD_TOML])
def test_bad_city_toml(project: Project, text: str, message: str) -> None:
    project.geojson("data/b.geojson", good_features())
    project.toml(text)
    expect_error(project.build(), 2, message)
    assert not project.output.exists()


def test_non_utf8_city_toml(project: Project) -> None:
    project.geojson("data/b.geojson", good_features())
    project.toml(BUILDINGS_TOML.format(path="data/b.geojson", more=""), encoding="gbk")
    expect_error(project.build(), 2, r"city\.toml.*(UTF-8|utf-8)")


def test_missing_city_toml(project: Project) -> None:
    expect_error(project.build(toml=project.root / "nope.toml"), 2, r"nope\.toml")


def test_missing_buildings_file(project: Project) -> None:
    project.toml(BUILDINGS_TOML.format(path="data/missing.geojson", more=""))
    expect_error(project.build(), {2, 5}, r"missing\.geojson.*(not found|No such file)")


def test_missing_dem_file(project: Project) -> None:
    buildings_project(project, good_features(), '[terrain]\npaths = ["data/dem.tif"]\n')
    expect_error(project.build(), {2, 5}, r"dem\.tif.*(not found|No such file)")


# --- the output folder policy: refuse, and never delete what the toolkit did not write


def _output_case(project: Project, dir_: str) -> None:
    buildings_project(project, good_features())
    project.write("notes.txt", "my notes, not the toolkit's\n")
    project.toml(project.toml_path.read_text(encoding="utf-8") + f'[output]\ndir = "{dir_}"\n')


@pytest.mark.parametrize(
    "dir_,message",
    [
        ("data", r"data.*(input|contains)"),
        (".", r"(project|city\.toml|input|contains)"),
        ("notes.txt", r"notes\.txt.*(file|not a folder)"),
        ("data/b.geojson", r"b\.geojson"),
        ("..", r"(project|contains|input)"),
    ],
    ids=["input-folder", "dot", "a-file", "the-input-file", "parent-folder"],
)
def test_output_folder_refused(project: Project, dir_: str, message: str) -> None:
    _output_case(project, dir_)
    expect_error(project.build(), 2, message)
    assert (project.root / "notes.txt").read_text() == "my notes, not the toolkit's\n"
    assert (project.root / "data" / "b.geojson").is_file()


def test_output_folder_holding_another_project(project: Project) -> None:
    _output_case(project, "other")
    project.write("other/city.toml", '[buildings]\npath = "x.geojson"\n')
    expect_error(project.build(), 2, r"other.*city\.toml")
    assert (project.root / "other" / "city.toml").is_file()


def test_output_folder_foreign_and_not_empty(project: Project) -> None:
    _output_case(project, "mine")
    project.write("mine/photo.jpg", b"\xff\xd8\xff\xe0 not the toolkit's")
    expect_error(project.build(), 2, r"mine")
    assert (project.root / "mine" / "photo.jpg").read_bytes().endswith(b"not the toolkit's")


def test_output_folder_of_an_earlier_build_is_reused(project: Project) -> None:
    """The positive control: the toolkit's own output folder is rebuilt in place."""
    _output_case(project, "out")
    project.output_name = "out"
    expect_built(project, project.build(), IDS)
    again = project.build("--force")
    expect_built(project, again, IDS)
    assert (project.root / "notes.txt").is_file()
