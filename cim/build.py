"""``cim build``: run every stage whose inputs are present, atomically.

The build writes into a temporary sibling of the output folder and swaps it into
place only when every stage succeeded, so a server never sees half a tileset.
Each stage has a fingerprint (tool version, its config sections, checksums of its
input files, the fingerprints of the stages it needs); a stage whose fingerprint is
unchanged since the last build is reused (its files hard-linked from the old output)
instead of re-run, and a build where nothing changed returns at once.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cim import __version__
from cim.config import CityProject, load_project
from cim.errors import CimError, ConfigError
from cim.report import BuildReport
from cim.stages import BuildContext, Stage, discover_stages

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
REPORT = "build-report.json"


@dataclass
class BuildResult:
    """What a build did.

    Attributes
    ----------
    output : Path
        The output folder.
    ran, reused : list of str
        Stages run now, and stages reused from the previous build.
    up_to_date : bool
        True when nothing had changed and nothing was written.
    manifest : dict
        The manifest written (or found).
    seconds : float
    """

    output: Path
    ran: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    up_to_date: bool = False
    manifest: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def build_project(
    project_path: str | Path,
    *,
    jobs: int = 1,
    progress: bool = True,
    force: bool = False,
) -> BuildResult:
    """Build a city project's output folder.

    Parameters
    ----------
    project_path : str or Path
        The ``city.toml``.
    jobs : int
        Worker processes stages may use.
    progress : bool
        Show progress bars.
    force : bool
        Re-run every stage even when its inputs are unchanged.

    Returns
    -------
    BuildResult

    Raises
    ------
    CimError
        A stage failed; the message names the stage, file, feature and reason.
    """
    started = time.perf_counter()
    project = load_project(project_path)
    every_stage = discover_stages()
    _check_sections(project, every_stage)
    stages = [s for s in every_stage if s.enabled(project)]
    if not stages:
        raise ConfigError(
            "nothing to build: name inputs in [buildings], [terrain], [imagery] or [addresses]",
            path=project.path,
        )
    fingerprints = _fingerprints(project, stages)
    previous = _read_json(project.output / MANIFEST)
    reusable = set() if force else _reusable(stages, fingerprints, previous, project.output)
    to_run = _must_run(stages, reusable)
    result = BuildResult(output=project.output)
    if not to_run:
        log.info("%s is up to date (inputs unchanged)", project.output)
        result.up_to_date = True
        result.reused = [s.name for s in stages]
        result.manifest = previous
        result.seconds = time.perf_counter() - started
        return result
    workdir = project.output.parent / f".{project.output.name}.tmp-{os.getpid()}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    report = BuildReport()
    ctx = BuildContext(
        project=project, workdir=workdir, report=report, jobs=jobs, progress=progress
    )
    try:
        for stage in stages:
            if stage.name in to_run:
                _run_stage(stage, ctx)
                result.ran.append(stage.name)
            else:
                _reuse_stage(stage, ctx, previous, project.output)
                result.reused.append(stage.name)
        manifest = _manifest(project, ctx, stages, fingerprints, result, previous)
        _write_json(workdir / MANIFEST, manifest)
        _write_json(workdir / REPORT, report.to_json())
        _swap(workdir, project.output)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    result.manifest = manifest
    result.seconds = time.perf_counter() - started
    log.info("built %s in %.1f s", project.output, result.seconds)
    return result


#: sections the core reads, and [l3], which names the L3 district for the L3 stage
#: (a later issue) and is accepted already so project files can carry it
CORE_SECTIONS = frozenset({"city", "output", "datum", "l3"})


def _check_sections(project: CityProject, stages: list[Stage]) -> None:
    """Refuse a city.toml section no stage reads (a typo would silently skip a stage)."""
    known = set(CORE_SECTIONS).union(*(s.sections() for s in stages))
    for name in project.raw:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean [{close[0]}]?" if close else ""
            raise ConfigError(f"unknown section [{name}]{hint}", path=project.path)


def _run_stage(stage: Stage, ctx: BuildContext) -> None:
    log.info("%s: running", stage.name)
    t0 = time.perf_counter()
    try:
        stage.run(ctx)
    except CimError as exc:
        exc.message = f"{stage.name} stage: {exc.message}"
        raise
    rep = ctx.stage_report(stage.name)
    rep.seconds = time.perf_counter() - t0
    log.info(
        "%s: %d read, %d written, %d repaired, %d skipped (%.1f s)",
        stage.name,
        rep.read,
        rep.written,
        len(rep.repaired),
        len(rep.skipped),
        rep.seconds,
    )


def _reuse_stage(stage: Stage, ctx: BuildContext, previous: dict[str, Any], old: Path) -> None:
    for rel in stage.outputs():
        src, dst = old / rel, ctx.workdir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, copy_function=_link_or_copy)
        else:
            _link_or_copy(src, dst)
    old_stage = previous.get("stages", {}).get(stage.name, {})
    for key, info in previous.get("layers", {}).items():
        if key in old_stage.get("layers", []):
            ctx.add_layer(key, info)
    old_report = _read_json(old / REPORT).get("stages", {}).get(stage.name)
    if old_report:
        rep = ctx.stage_report(stage.name)
        rep.read, rep.written = old_report["read"], old_report["written"]
        rep.repaired, rep.skipped = old_report["repaired"], old_report["skipped"]
        rep.flagged = old_report.get("flagged", [])
        rep.warnings, rep.counts = old_report["warnings"], old_report["counts"]
    log.info("%s: unchanged, reused", stage.name)


def _link_or_copy(src: str | Path, dst: str | Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _fingerprints(project: CityProject, stages: list[Stage]) -> dict[str, str]:
    out: dict[str, str] = {}
    names = {s.name for s in stages}
    for stage in stages:
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{stage.name}\0{__version__}\0".encode())
        config = {sec: project.raw.get(sec) for sec in stage.sections()}
        h.update(json.dumps(config, sort_keys=True, default=str).encode())
        for path in stage.inputs(project):
            h.update(str(path).encode())
            h.update(file_checksum(path).encode())
        for need in stage.needs:
            if need in names:
                h.update(out[need].encode())
        out[stage.name] = h.hexdigest()
    return out


def file_checksum(path: Path) -> str:
    """BLAKE2b checksum of a file's content ("missing" when it does not exist)."""
    if not path.is_file():
        return "missing"
    with path.open("rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


def _reusable(
    stages: list[Stage], fingerprints: dict[str, str], previous: dict[str, Any], old: Path
) -> set[str]:
    done = previous.get("stages", {})
    return {
        s.name
        for s in stages
        if done.get(s.name, {}).get("fingerprint") == fingerprints[s.name]
        and all((old / rel).exists() for rel in s.outputs())
    }


def _must_run(stages: list[Stage], reusable: set[str]) -> set[str]:
    """Stages to run: changed ones, plus in-memory producers a running stage needs."""
    run = {s.name for s in stages if s.name not in reusable}
    for stage in reversed(stages):
        if stage.name in run:
            run.update(n for n in stage.needs if any(s.name == n for s in stages))
    return run


def _manifest(
    project: CityProject,
    ctx: BuildContext,
    stages: list[Stage],
    fingerprints: dict[str, str],
    result: BuildResult,
    previous: dict[str, Any],
) -> dict[str, Any]:
    layers = ctx.manifest.get("layers", {})
    extent = ctx.manifest.get("extent") or previous.get("extent")
    centre = ctx.manifest.get("centre") or previous.get("centre")
    if centre is None and extent:
        centre = [(extent[0] + extent[2]) / 2, (extent[1] + extent[3]) / 2, 0.0]
    buildings = ctx.artifacts.get("buildings")
    inputs = {}
    for stage in stages:
        for path in stage.inputs(project):
            inputs[_relative(path, project.root)] = file_checksum(path)
    stage_info = {}
    for stage in stages:
        rep = ctx.report.stages.get(stage.name)
        stage_info[stage.name] = {
            "fingerprint": fingerprints[stage.name],
            "reused": stage.name in result.reused,
            "seconds": round(rep.seconds, 3) if rep else 0.0,
            "read": rep.read if rep else 0,
            "written": rep.written if rep else 0,
            "repaired": len(rep.repaired) if rep else 0,
            "skipped": len(rep.skipped) if rep else 0,
            "layers": [
                k for k in layers if k == stage.name or layers[k].get("stage") == stage.name
            ],
        }
    return {
        "name": project.name,
        "crs": getattr(buildings, "source_crs", None) or project.crs or previous.get("crs"),
        "extent": extent,
        "centre": centre,
        "layers": layers,
        "stages": stage_info,
        "version": __version__,
        "generator": f"cim-toolkit {__version__}",
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "inputs": inputs,
    }


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _swap(workdir: Path, output: Path) -> None:
    """Move the finished build into place; the old output disappears last."""
    old = output.parent / f".{output.name}.old-{os.getpid()}"
    if output.exists():
        output.rename(old)
    workdir.rename(output)
    shutil.rmtree(old, ignore_errors=True)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
