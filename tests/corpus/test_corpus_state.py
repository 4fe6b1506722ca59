"""Corpus: build state (killed builds, cut swaps), the manifest, the CLI, the ground."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from corpus_kit import (
    BUILDINGS_TOML,
    LAT0,
    LON0,
    M_LAT,
    Project,
    buildings_project,
    centre,
    expect_built,
    expect_error,
    good_features,
)

from cim.cli import main

IDS = [f"b{k}" for k in range(8)]


def leftovers(project: Project) -> list[Path]:
    """Temporary and swapped-out folders of builds (a lock file may stay)."""
    return [*project.root.glob(".output.tmp-*"), *project.root.glob(".output.old-*")]


KILLER = """
import os, sys
toml, mode = sys.argv[1], sys.argv[2]
if mode in ("during", "slow"):
    import tiling.buildings.stage as stage
    write_l2 = stage.write_l2
    def killed(*args, **kwargs):
        figures = write_l2(*args, **kwargs)
        if mode == "slow":  # hold the build open: a second build meets this one
            open(toml + ".holding", "w").close()
            import time
            time.sleep(4)
            return figures
        os._exit(137)  # kill -9 once the tiles are written, before the swap
    stage.write_l2 = killed
else:
    try:  # the two-rename swap of systems without an atomic exchange (renameat2)
        import cim.output
        cim.output._renameat2 = lambda: None
    except (ImportError, AttributeError):
        pass
    out = os.path.join(os.path.dirname(toml), "output")
    for name in ("rename", "replace"):
        real = getattr(os, name)
        def cut(src, dst, *a, _real=real, **k):
            if os.path.abspath(dst) == out and not os.path.exists(out):
                os._exit(137)  # kill -9 between the two renames of the swap
            return _real(src, dst, *a, **k)
        setattr(os, name, cut)
from cim.cli import main
sys.exit(main(["-q", "build", toml, "-j", "1", "--force"]))
"""


def killed_build(project: Project, mode: str) -> None:
    """Run a build in a subprocess that dies like ``kill -9`` at ``mode``."""
    run = subprocess.run(
        [sys.executable, "-c", KILLER, str(project.toml_path), mode],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 137, run.stderr
    project.toolkit_paths.update(project.root.glob(".output*"))


def test_leftovers_of_a_killed_build_are_removed(project: Project) -> None:
    buildings_project(project, good_features())
    killed_build(project, "during")
    assert leftovers(project), "the simulated kill left nothing behind"
    expect_built(project, project.build(), IDS)
    assert not leftovers(project)


def test_two_builds_of_one_project_at_once(project: Project) -> None:
    """The second waits for the first, or says in one line who holds the project."""
    import time

    buildings_project(project, good_features())
    holding = Path(str(project.toml_path) + ".holding")
    first = subprocess.Popen(
        [sys.executable, "-c", KILLER, str(project.toml_path), "slow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not holding.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert holding.exists(), "the first build never reached its tiles"
        project.toolkit_paths.update(project.root.glob(".output*"))
        project.toolkit_paths.add(holding)
        second = project.build()
    finally:
        _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    if second.code != 0:
        expect_error(second, {1, 2, 5}, r"(another build|lock|held|pid|running)")
    assert len(project.tile_features()) == 8
    assert not leftovers(project)


def test_a_cut_swap_is_recovered(project: Project) -> None:
    """Killed between the two renames: no output/, the old one aside."""
    buildings_project(project, good_features())
    expect_built(project, project.build(), IDS)
    built_at = project.manifest()["built_at"]
    killed_build(project, "swap")
    assert not project.output.exists(), "the simulated kill did not cut the swap"
    outcome = project.build()
    expect_built(project, outcome, IDS)
    assert not leftovers(project)
    assert "up to date" in outcome.stdout, outcome.stdout  # recovered, not rebuilt
    assert project.manifest()["built_at"] >= built_at


def test_a_failed_build_keeps_the_previous_output(project: Project) -> None:
    buildings_project(project, good_features())
    expect_built(project, project.build(), IDS)
    before = (project.output / "manifest.json").read_bytes()
    project.write("data/b.geojson", "")
    expect_error(project.build(), 4, r"b\.geojson.*empty")
    assert (project.output / "manifest.json").read_bytes() == before
    assert len(project.tile_features()) == 8
    assert not leftovers(project)


def _strings(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return []


def test_manifest_holds_no_absolute_paths(project: Project) -> None:
    project.geojson("data/b.geojson", good_features())
    project.dem("data/dem.tif")
    rows = [(f"a{k}", *centre(k), f"中山大道{k + 1}号") for k in range(8)]
    project.csv("data/a.csv", ["id", "lon", "lat", "address"], rows)
    project.toml(
        BUILDINGS_TOML.format(path="data/b.geojson", more="")
        + '[terrain]\npaths = ["data/dem.tif"]\nmax_zoom = 12\n'
        + '[addresses]\npath = "data/a.csv"\nid = "id"\nlon = "lon"\nlat = "lat"\n'
        + 'full = "address"\n'
    )
    expect_built(project, project.build(), IDS)
    text = (project.output / "manifest.json").read_text(encoding="utf-8")
    assert str(project.root.parent) not in text
    absolute = [
        s for s in _strings(json.loads(text)) if os.path.isabs(s) or re.match(r"^[A-Z]:\\", s)
    ]
    assert not absolute, absolute


def test_global_options_after_the_command(project: Project) -> None:
    buildings_project(project, good_features())
    for extra in (["-q"], ["-v"], ["--quiet"]):
        code = main(["build", str(project.toml_path), "-j", "1", *extra])
        assert code == 0, extra
    project.capsys.readouterr()


def test_error_from_a_real_process_is_one_line(project: Project) -> None:
    """The same contract outside pytest's capture: a subprocess, stderr one line."""
    buildings_project(project, good_features())
    project.write("data/b.geojson", "")
    run = subprocess.run(
        [sys.executable, "-m", "cim.cli", "-q", "build", str(project.toml_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert run.returncode == 4, run.stderr
    assert len(lines) == 1 and "b.geojson" in lines[0] and "Traceback" not in run.stderr


def test_buildings_outside_the_dem_stand_on_its_edge(project: Project) -> None:
    """Row 0 is on the DEM, row 1 (30 m north) is not: it gets the edge height, a warning."""
    project.geojson("data/b.geojson", good_features())
    project.dem(
        "data/dem.tif",
        value=200.0,
        bounds=(LON0 - 0.001, LAT0 - 0.001, LON0 + 0.003, LAT0 + 20 / M_LAT),
    )
    project.toml(
        BUILDINGS_TOML.format(path="data/b.geojson", more="")
        + '[terrain]\npaths = ["data/dem.tif"]\nmax_zoom = 12\n'
    )
    before = project.checksums()
    project.capsys.readouterr()
    code = main(["build", str(project.toml_path), "-j", "1"])
    err = project.capsys.readouterr().err
    assert code == 0, err
    after = project.checksums()
    assert all(after.get(p) == h for p, h in before.items())
    assert re.search(r"outside (the )?DEM", err, re.I), err
    features = project.tile_features()
    assert set(features) == set(IDS)
    assert all(f["base"] > 190 for f in features.values()), {
        k: f["base"] for k, f in features.items()
    }


def test_sample_like_layout_in_a_subfolder(tmp_path: Path, capsys) -> None:
    """Relative paths from a city.toml in a nested folder, run from elsewhere."""
    root = tmp_path / "城市 项目" / "v1"
    root.mkdir(parents=True)
    project = Project(root, capsys)
    buildings_project(project, good_features(), path="数据/建筑.geojson")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        expect_built(project, project.build(), IDS)
    finally:
        os.chdir(cwd)
