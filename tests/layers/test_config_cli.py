"""The [live] section and the `cim departments` command."""

from __future__ import annotations

from pathlib import Path

import pytest

from cim.cli import main
from cim.errors import ConfigError
from layers.config import live_config


def project(tmp_path: Path, live: str = "") -> Path:
    path = tmp_path / "city.toml"
    path.write_text(f'[city]\nname = "t"\n{live}', encoding="utf-8")
    return path


def test_defaults_next_to_the_project(tmp_path: Path) -> None:
    cfg = live_config(project(tmp_path))
    assert cfg.store == str(tmp_path / "live.sqlite")
    assert cfg.read == "open" and cfg.mqtt is None and not cfg.is_postgres


def test_postgres_url_and_options(tmp_path: Path) -> None:
    text = (
        '[live]\nstore = "postgresql://u@h:5/db"\nread = "token"\nmqtt = "mqtt://127.0.0.1:1883"\n'
    )
    cfg = live_config(project(tmp_path, text))
    assert cfg.is_postgres and cfg.read == "token" and cfg.mqtt == "mqtt://127.0.0.1:1883"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[live]\nstore = "output/live.sqlite"\n', "inside the build output folder"),
        ('[output]\ndir = "out"\n[live]\nstore = "out"\n', "inside the build output folder"),
        ('[live]\nread = "closed"\n', "read must be"),
        ('[live]\nmqtt = "http://x"\n', "mqtt must look like"),
        ('[live]\nstor = "x.sqlite"\n', "did you mean 'store'"),
    ],
)
def test_bad_live_sections(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        live_config(project(tmp_path, text))


def test_inside_output_message_names_both_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        live_config(project(tmp_path, '[live]\nstore = "output/x.sqlite"\n'))
    assert str(tmp_path / "output" / "x.sqlite") in str(err.value)
    assert str(tmp_path / "output") in str(err.value)


def test_build_accepts_the_live_section() -> None:
    from cim.build import CORE_SECTIONS

    assert "live" in CORE_SECTIONS


def test_departments_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    toml = project(tmp_path)
    assert main(["departments", "add", str(toml), "water", "--name", "水务局"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("water.") and len(token) > 40
    assert main(["departments", "add", str(toml), "boss", "--admin"]) == 0
    capsys.readouterr()
    assert main(["departments", "list", str(toml)]) == 0
    listing = capsys.readouterr().out
    assert "water\t水务局\tdepartment\tactive" in listing
    assert "boss\tboss\tadmin\tactive" in listing
    assert token not in listing
    assert (tmp_path / "live.sqlite").read_bytes().find(token.encode()) == -1
    assert main(["departments", "add", str(toml), "water"]) == 2  # exists already
    assert main(["departments", "revoke", str(toml), "water"]) == 0
    capsys.readouterr()
    main(["departments", "list", str(toml)])
    assert "water\t水务局\tdepartment\trevoked" in capsys.readouterr().out
    assert main(["departments", "revoke", str(toml), "nobody"]) == 6
    assert main(["departments", "renew", str(toml), "water"]) == 0
    new = capsys.readouterr().out.strip()
    assert new.startswith("water.") and new != token
