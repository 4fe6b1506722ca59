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
