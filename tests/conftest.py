"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def sample_city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated sample city 平城 (default seed), once per test session.

    Returns the ``city.toml`` path; the data files are under its ``data/`` folder.
    Treat the files as read-only: other tests share them.
    """
    from cim.sample import write_sample

    return write_sample(tmp_path_factory.mktemp("sample_city"))


# --- glTF validation (Khronos gltf-validator from the npm registry) -------------------

REPO = Path(__file__).resolve().parents[1]
VALIDATOR_SCRIPT = REPO / "tests" / "tools" / "validate_gltf.mjs"


def _validator_available() -> bool:
    import shutil

    return shutil.which("node") is not None and (REPO / "node_modules" / "gltf-validator").is_dir()


@pytest.fixture(scope="session")
def gltf_validator():
    """A function validating glb files with the Khronos glTF validator.

    Returns a list of ``{"file", "errors", "warnings", "messages"}``. Skips where the
    validator is not installed, except under CI (``CI`` set), where that is a failure:
    the README's test command installs it.
    """
    import json
    import os
    import subprocess

    if not _validator_available():
        if os.environ.get("CI"):
            pytest.fail("gltf-validator is not installed (npm ci at the repository root)")
        pytest.skip("gltf-validator not installed (npm ci at the repository root)")

    def validate(paths: list[Path]) -> list[dict]:
        out = subprocess.run(
            ["node", str(VALIDATOR_SCRIPT), *map(str, paths)],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        return json.loads(out.stdout)

    return validate


@pytest.fixture(scope="session")
def sample_output(sample_city: Path) -> Path:
    """The sample city built with every stage (``cim build``), once per session.

    Returns the output folder. Read-only for tests.
    """
    from cim.build import build_project

    return build_project(sample_city, jobs=2, progress=False).output
