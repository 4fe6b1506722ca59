"""`cim build` / `cim info` end to end: output contract, atomicity, reuse, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cim.build import build_project
from cim.cli import main
from cim.errors import InputDataError

LON, LAT = 121.50, 31.24


def footprints(n: int = 30, bad: bool = True) -> dict:
    feats = []
    for i in range(n):
        x, y = LON + (i % 6) * 0.0003, LAT + (i // 6) * 0.0003
        ring = [[x, y], [x + 1e-4, y], [x + 1e-4, y + 1e-4], [x, y + 1e-4], [x, y]]
        feats.append(
            {
                "type": "Feature",
                "properties": {"id": f"b{i}", "height": 10 + i, "name": f"楼{i}"},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    if bad:
        feats.append(
            {
                "type": "Feature",
                "properties": {"id": "broken", "height": -1},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [
                            [LON, LAT],
                            [LON + 1e-4, LAT + 1e-4],
                            [LON + 1e-4, LAT],
                            [LON, LAT + 1e-4],
                            [LON, LAT],
                        ]
                    ],
                },
            }
        )
    return {"type": "FeatureCollection", "features": feats}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "b.geojson").write_text(
        json.dumps(footprints(), ensure_ascii=False), encoding="utf-8"
    )
    (tmp_path / "city.toml").write_text(
        '[city]\nname = "测试城"\n[output]\ndir = "out"\n'
        '[buildings]\npath = "b.geojson"\nid = "id"\n',
        encoding="utf-8",
    )
    return tmp_path / "city.toml"


def test_output_contract(project: Path) -> None:
    result = build_project(project, progress=False)
    out = project.parent / "out"
    assert result.ran == ["buildings", "l2"]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    keys = ("schema_version", "name", "crs", "extent", "centre", "layers", "stages", "version")
    for key in (*keys, "inputs", "generator", "built_at"):
        assert key in manifest
    assert manifest["name"] == "测试城"
    assert manifest["layers"]["l2"]["url"] == "tiles/l2/tileset.json"
    assert manifest["layers"]["l2"]["buildings"] == 31
    assert list(manifest["inputs"]) == ["b.geojson"]
    assert (out / "tiles/l2/tileset.json").is_file()
    report = json.loads((out / "build-report.json").read_text(encoding="utf-8"))
    st = report["stages"]["buildings"]
    assert st["read"] == 31 and st["written"] == 31
    assert {(r["id"], r["reason"]) for r in st["repaired"]} >= {
        ("broken", "invalid-geometry"),
        ("broken", "default-height"),
    }
    assert [p.name for p in project.parent.glob(".out.*")] == [".out.lock"]  # no temp folder


def test_rebuild_is_cheap_and_change_rebuilds(project: Path) -> None:
    build_project(project, progress=False)
    again = build_project(project, progress=False)
    assert again.up_to_date and again.ran == []
    (project.parent / "city.toml").write_text(
        project.read_text(encoding="utf-8") + "[l2]\nmax_features_per_tile = 5\n", encoding="utf-8"
    )
    changed = build_project(project, progress=False)
    assert changed.ran == ["l2"]  # l2 reads the buildings' partitions of the last build
    assert changed.manifest["layers"]["l2"]["tiles"] > 1


def test_failed_build_leaves_the_old_output(project: Path) -> None:
    build_project(project, progress=False)
    out = project.parent / "out"
    before = (out / "manifest.json").read_bytes()
    (project.parent / "b.geojson").write_text(
        '{"type":"FeatureCollection","features":[]}', encoding="utf-8"
    )
    with pytest.raises(InputDataError):
        build_project(project, progress=False)
    assert (out / "manifest.json").read_bytes() == before
    assert [p.name for p in project.parent.glob(".out.*")] == [".out.lock"]


def test_cli_exit_codes_and_messages(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["-q", "build", str(project), "-j", "1"]) == 0
    assert main(["info", str(project.parent / "out")]) == 0
    out = capsys.readouterr().out
    assert "测试城" in out and "tiles/l2/tileset.json" in out
    assert main(["build", str(tmp_path / "missing.toml")]) == 2
    (tmp_path / "c.csv").write_text(
        'id,wkt\na,"POLYGON((500000 4440000,500010 4440000,500010 4440010,500000 4440000))"\n'
    )
    (tmp_path / "c.toml").write_text('[buildings]\npath = "c.csv"\n', encoding="utf-8")
    assert main(["build", str(tmp_path / "c.toml")]) == 3
    assert main(["info", str(tmp_path)]) == 6


def test_cli_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "e.geojson").write_text(
        '{"type":"FeatureCollection","features":[]}', encoding="utf-8"
    )
    (tmp_path / "city.toml").write_text('[buildings]\npath = "e.geojson"\n', encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "cim.cli", "build", str(tmp_path / "city.toml")],
        capture_output=True,
        text=True,
    )
    assert run.returncode in (4, 5)
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith("cim:") and "running" not in ln]
    errors = [ln for ln in lines if "e.geojson" in ln]
    assert len(errors) == 1 and "Traceback" not in run.stderr
    verbose = subprocess.run(
        [sys.executable, "-m", "cim.cli", "-v", "build", str(tmp_path / "city.toml")],
        capture_output=True,
        text=True,
    )
    assert "Traceback" in verbose.stderr


def test_unknown_section_is_refused(project: Path) -> None:
    from cim.errors import ConfigError

    text = project.read_text(encoding="utf-8").replace("[buildings]", "[bulidings]")
    project.write_text(text, encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"unknown section \[bulidings\]; did you mean \[buildings\]"
    ):
        build_project(project, progress=False)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cim.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_global_options_work_after_the_command(tmp_path: Path) -> None:
    (tmp_path / "e.geojson").write_text(
        '{"type":"FeatureCollection","features":[]}', encoding="utf-8"
    )
    (tmp_path / "city.toml").write_text('[buildings]\npath = "e.geojson"\n', encoding="utf-8")
    toml = str(tmp_path / "city.toml")
    after = _cli("build", toml, "-v")  # as the error message says: "rerun with -v"
    assert after.returncode in (4, 5) and "Traceback" in after.stderr
    before = _cli("-v", "build", toml)
    assert before.returncode == after.returncode and "Traceback" in before.stderr
    assert "Traceback" not in _cli("build", toml).stderr
    quiet = _cli("build", toml, "--quiet")
    assert quiet.returncode == after.returncode
    assert "running" not in quiet.stderr and len(quiet.stderr.splitlines()) == 1


def test_summary_with_stage_warnings_on_stderr(project: Path) -> None:
    text = project.read_text(encoding="utf-8") + 'extra = ["no_such_column"]\n'
    project.write_text(text, encoding="utf-8")
    run = _cli("build", str(project), "-j", "1")
    assert run.returncode == 0, run.stderr
    assert "built buildings, l2" in run.stdout
    lines = run.stderr.splitlines()
    summary = [ln for ln in lines if ln.startswith("cim: summary: ")]
    assert len(summary) == 1
    assert "buildings 31 read, 31 written" in summary[0] and "l2 " in summary[0]
    warning = [ln for ln in lines if ln.startswith("cim: warning: buildings: ")]
    assert len(warning) == 1 and "no_such_column" in warning[0]
    assert lines.index(summary[0]) < lines.index(warning[0])
    quiet = _cli("build", str(project), "--force", "-q")
    assert quiet.returncode == 0 and quiet.stderr == ""
