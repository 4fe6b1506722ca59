"""Results do not depend on where the tasks ran: in-process, local pool, Dask.

One tiny city (footprints, DEM, orthophoto, addresses) is built three times: with one
job (every task in this process), with a local pool of 2 processes, and on a Dask
``LocalCluster`` of 2 worker processes. Every output file must be the same, byte for
byte (the manifest and the build report carry timings and are compared without them).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from scale_helpers import output_files, write_city

from cim.build import build_project

pytest.importorskip("distributed")

RUNS = {"in-process": (1, None), "pool": (2, None), "dask": (1, "local:2")}


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The city built once per executor; the output folders kept apart."""
    root = tmp_path_factory.mktemp("scale_city")
    toml = write_city(root)
    kept: dict[str, Path] = {}
    for name, (jobs, scheduler) in RUNS.items():
        build_project(toml, jobs=jobs, scheduler=scheduler, progress=False, force=True)
        kept[name] = root / f"out-{name}"
        shutil.copytree(root / "output", kept[name])
    return kept


@pytest.mark.parametrize("where", ["pool", "dask"])
def test_every_file_is_the_same_wherever_tasks_ran(builds: dict[str, Path], where: str) -> None:
    reference = output_files(builds["in-process"])
    other = output_files(builds[where])
    assert sorted(other) == sorted(reference)
    assert len([k for k in reference if k.startswith("tiles/l2/content/")]) > 4
    assert any(k.startswith("terrain/") and k.endswith(".terrain") for k in reference)
    assert any(k.startswith("imagery/") and k.endswith(".png") for k in reference)
    differ = [k for k in reference if other[k] != reference[k]]
    assert not differ


def _stable(manifest: dict) -> dict:
    manifest = dict(manifest)
    manifest.pop("built_at", None)
    manifest["stages"] = {
        k: {f: v for f, v in s.items() if f != "seconds"} for k, s in manifest["stages"].items()
    }
    return manifest


@pytest.mark.parametrize("where", ["pool", "dask"])
def test_manifest_and_report_are_the_same(builds: dict[str, Path], where: str) -> None:
    ref = json.loads((builds["in-process"] / "manifest.json").read_text(encoding="utf-8"))
    got = json.loads((builds[where] / "manifest.json").read_text(encoding="utf-8"))
    assert _stable(got) == _stable(ref)
    ref_rep = json.loads((builds["in-process"] / "build-report.json").read_text(encoding="utf-8"))
    got_rep = json.loads((builds[where] / "build-report.json").read_text(encoding="utf-8"))
    for name, stage in ref_rep["stages"].items():
        for key in ("read", "written", "repaired", "skipped", "counts"):
            assert got_rep["stages"][name][key] == stage[key], (name, key)
