"""A second build served read-only for the viewer's swipe compare (``cim serve --compare``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixture_city import write_fixture_output
from flask import Flask

from cim.errors import NotFoundError
from server import cli, create_app


@pytest.fixture(scope="module")
def other_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another build: the fixture city under another name."""
    out = write_fixture_output(tmp_path_factory.mktemp("other") / "output")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    manifest["name"] = "上月构建"
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), "utf-8")
    return out


def _app(fixture_output: Path, other: Path | None) -> Flask:
    return create_app({"TESTING": True, "OUTPUT_DIR": fixture_output, "COMPARE_DIR": other})


def test_compare_build_is_served(fixture_output: Path, other_output: Path) -> None:
    client = _app(fixture_output, other_output).test_client()
    assert client.get("/api/manifest").get_json()["server"]["compare"] is True
    other = client.get("/api/compare").get_json()
    assert other["name"] == "上月构建"
    assert other["server"]["data_url"] == "compare/data/"
    assert str(other_output) not in json.dumps(other, ensure_ascii=False), "paths are cut"
    url = other["layers"]["l2"]["url"]
    resp = client.get(f"/compare/data/{url}")
    assert resp.status_code == 200
    assert resp.get_data() == (other_output / url).read_bytes()
    # this build's own data is unchanged
    assert client.get("/api/manifest").get_json()["name"] != "上月构建"


def test_compare_build_is_read_only(fixture_output: Path, other_output: Path) -> None:
    client = _app(fixture_output, other_output).test_client()
    before = sorted(p.name for p in other_output.rglob("*"))
    for method in ("put", "post", "delete", "patch"):
        resp = getattr(client, method)("/compare/data/manifest.json", data=b"x")
        assert resp.status_code == 405, method
    assert client.get("/compare/data/../secret.txt").status_code == 404
    assert client.get("/compare/data/%2e%2e/secret.txt").status_code == 404
    assert sorted(p.name for p in other_output.rglob("*")) == before


def test_no_compare_build(fixture_output: Path, tmp_path: Path) -> None:
    client = _app(fixture_output, None).test_client()
    assert client.get("/api/manifest").get_json()["server"]["compare"] is False
    assert client.get("/api/compare").status_code == 404
    assert client.get("/compare/data/manifest.json").status_code == 404
    # a folder without a build counts as none
    client = _app(fixture_output, tmp_path).test_client()
    assert client.get("/api/manifest").get_json()["server"]["compare"] is False


def test_cli_compare_output(tmp_path: Path, other_output: Path) -> None:
    assert cli.compare_output(other_output) == other_output.resolve()
    project = tmp_path / "other.toml"
    project.write_text(
        f'[city]\nname = "x"\n[output]\ndir = "{other_output.as_posix()}"\n', "utf-8"
    )
    assert cli.compare_output(project) == other_output.resolve()
    with pytest.raises(NotFoundError, match="no build output to compare with"):
        cli.compare_output(tmp_path)


def test_cim_serve_has_compare_option() -> None:
    from cim.cli import _parser

    args = _parser().parse_args(["serve", "city.toml", "--compare", "old/output"])
    assert args.compare == Path("old/output")
