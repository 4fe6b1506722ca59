"""city.toml loading and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from cim.config import BuildingsConfig, load_project
from cim.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "city.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    project = load_project(
        write(
            tmp_path,
            '[city]\nname = "平城"\ncrs = "EPSG:4547"\n[output]\ndir = "out"\n'
            "[datum]\ngeoid_offset = -20.5\n"
            '[buildings]\npath = "data/b.gpkg"\nfloor_height = 3.2\nextra = ["year"]\n',
        )
    )
    assert project.name == "平城"
    assert project.output == (tmp_path / "out").resolve()
    assert project.datum.geoid_offset == -20.5
    b = project.buildings
    assert isinstance(b, BuildingsConfig)
    assert b.path == (tmp_path / "data" / "b.gpkg").resolve()
    assert b.floor_height == 3.2 and b.extra == ["year"]


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    project = load_project(write(tmp_path, '[buildings]\npath = "b.gpkg"\nfloor_heigth = 3\n'))
    with pytest.raises(ConfigError, match="did you mean 'floor_height'"):
        _ = project.buildings


def test_wrong_type_and_missing_key(tmp_path: Path) -> None:
    project = load_project(
        write(tmp_path, '[buildings]\npath = "b.gpkg"\ndefault_height = "ten"\n')
    )
    with pytest.raises(ConfigError, match="must be a number"):
        _ = project.buildings
    project = load_project(write(tmp_path, '[buildings]\nheight = "h"\n'))
    with pytest.raises(ConfigError, match="missing required key"):
        _ = project.buildings


def test_absurd_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="geoid"):
        load_project(write(tmp_path, "[datum]\ngeoid_offset = 900\n"))
    project = load_project(write(tmp_path, '[buildings]\npath = "b"\nfloor_height = 40\n'))
    with pytest.raises(ConfigError, match="floor_height"):
        _ = project.buildings


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_project(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not a valid TOML"):
        load_project(write(tmp_path, "[city\nname=1"))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('buildings = "b.shp"\n', "'buildings' must be a table"),
        ('output = "out"\n', "'output' must be a table"),
        ("terrain = 3\n", "'terrain' must be a table"),
        ("[city]\nname = 12\n", "[city] name must be a string"),
        ("[city]\ncrs = 4547\n", "[city] crs must be a string"),
        ("[output]\ndir = 1\n", "[output] dir must be a string"),
        ('[output]\ndri = "x"\n', "did you mean 'dir'"),
        ('[buildings]\npath = "b.shp"\nmin_area = nan\n', "min_area must be a finite number"),
        ('[buildings]\npath = ""\n', "[buildings] path must be a path string"),
        ('[buildings]\npath = "b.shp"\nextra = [1]\n', "[buildings] extra must be a string"),
    ],
)
def test_every_value_is_type_checked(tmp_path: Path, text: str, key: str) -> None:
    project_path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_project(project_path).buildings  # noqa: B018 - parsing is the test
    msg = str(exc.value)
    assert key in msg and "\n" not in msg and str(project_path) in msg
    assert exc.value.exit_code == 2


def test_output_dir_is_resolved_against_the_file(tmp_path: Path) -> None:
    project = load_project(write(tmp_path, '[output]\ndir = "out/x"\n'))
    assert project.output == (tmp_path / "out" / "x").resolve()
    assert load_project(write(tmp_path, "")).output == (tmp_path / "output").resolve()
