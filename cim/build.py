"""``cim build``: run every stage whose inputs are present, atomically.

The build writes into a temporary sibling of the output folder and swaps it into
place only when every stage succeeded, so a server never sees half a tileset.
Each stage has a fingerprint (tool version, its config sections, checksums of its
input files, the fingerprints of the stages it needs); a stage whose fingerprint is
unchanged since the last build is reused (its files hard-linked from the old output)
instead of re-run, and a build where nothing changed returns at once.

Where the output may be, the lock that keeps two builds of one output apart and the
recovery after a killed build are the output policy of :mod:`cim.output`; the
manifest is built from the typed structures of :mod:`cim.manifest`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
import logging
import multiprocessing.spawn
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Any

import numpy as np
import orjson

from cim import __version__
from cim.config import BuildConfig, CityProject, load_project
from cim.errors import CimError, ConfigError
from cim.executor import Executor, make_executor
from cim.manifest import FILENAME as MANIFEST
from cim.manifest import GENERATOR, Layer, Manifest, StageInfo, input_name, read_manifest
from cim.memory import release_unused
from cim.output import (
    check_output,
    discard,
    output_lock,
    recover,
    remove_in_background,
    swap,
    temp_folder,
)
from cim.report import BuildReport, Entries, json_default
from cim.stages import BuildContext, Stage, discover_stages

log = logging.getLogger(__name__)

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
        The manifest written (or found), as JSON.
    seconds : float
    warnings : dict of str to list of str
        Stage-wide warnings of the stages in this build (reused ones included).
    recovered : list of str
        What was repaired after an earlier, killed build (see :func:`cim.output.recover`).
    partial : dict of str to str
        Stages that ran but reused part of their last output, and what they reused
        (e.g. ``{"l2": "117 of 120 tiles unchanged"}``).
    """

    output: Path
    ran: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    up_to_date: bool = False
    manifest: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    warnings: dict[str, list[str]] = field(default_factory=dict)
    recovered: list[str] = field(default_factory=list)
    partial: dict[str, str] = field(default_factory=dict)


def build_project(
    project_path: str | Path,
    *,
    jobs: int = 1,
    progress: bool = True,
    force: bool = False,
    wait: bool = True,
    scheduler: str | None = None,
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
    wait : bool
        When another build of the same output folder runs, wait for it (True) or
        raise at once (False).
    scheduler : str, optional
        A Dask scheduler (``tcp://host:port``, or ``local:N`` for a local cluster);
        wins over ``[build] scheduler``. Without one, ``jobs`` local processes.

    Returns
    -------
    BuildResult

    Raises
    ------
    ConfigError
        The output folder breaks the output rules (:func:`cim.output.check_output`).
    CimError
        A stage failed; the message names the stage, file, feature and reason; or
        ``wait=False`` and another build holds the lock.
    """
    # the build's worker processes import the main module of the program as they start:
    # a script calling this unguarded would start a build in each of them (Python's
    # own message says what to do: guard it with ``if __name__ == "__main__":``)
    multiprocessing.spawn._check_not_importing_main()
    started = time.perf_counter()
    _content_checksum.cache_clear()  # remembered within one build only
    project = load_project(project_path)
    every_stage = discover_stages()
    _check_sections(project, every_stage)
    stages = [s for s in every_stage if s.enabled(project)]
    if not stages:
        raise ConfigError(
            "nothing to build: name inputs in [buildings], [terrain], [imagery] or [addresses]",
            path=project.path,
        )
    check_output(project.output, project.path, _all_inputs(project, stages))
    with output_lock(project.output, wait=wait):
        recovered = recover(project.output)
        finish: list[Callable[[], None]] = []
        try:
            result = _build_locked(
                project,
                stages,
                force=force,
                jobs=jobs,
                progress=progress,
                scheduler=scheduler,
                finish=finish,
            )
        finally:
            # the previous output is being removed: the lock waits for the removal; then
            # the build's memory is freed on a thread (release_in_background)
            for join in finish:
                join()
    result.recovered = recovered
    result.seconds = time.perf_counter() - started
    if not result.up_to_date:
        log.info("built %s in %.1f s", project.output, result.seconds)
    return result


def _build_locked(
    project: CityProject,
    stages: list[Stage],
    *,
    force: bool,
    jobs: int,
    progress: bool,
    scheduler: str | None = None,
    finish: list[Callable[[], None]] | None = None,
) -> BuildResult:
    """The build proper, run while holding the output folder's lock.

    What must end before the lock is released (removing the previous output, started
    on a thread after the swap), then the start of freeing the build's memory on a
    thread, are appended to ``finish`` for the caller to call; with ``finish=None``
    they run here.
    """
    fingerprints = _fingerprints(project, stages)
    previous = read_manifest(project.output)
    reusable = set() if force else _reusable(stages, fingerprints, previous, project.output)
    to_run = _must_run(stages, reusable)
    result = BuildResult(output=project.output)
    if not to_run and previous is not None:
        log.info("%s is up to date (inputs unchanged)", project.output)
        result.up_to_date = True
        result.reused = [s.name for s in stages]
        result.manifest = previous.to_json()
        return result
    workdir = temp_folder(project.output)
    report = BuildReport()
    ctx = BuildContext(
        project=project,
        workdir=workdir,
        report=report,
        jobs=jobs,
        progress=progress,
        # unchanged parts of a re-run stage (L2 tiles) come from the last good output
        previous=project.output if previous is not None and not force else None,
    )
    try:
        ctx.executor = _executor(project, scheduler, jobs)
        for stage in stages:
            if stage.name in to_run:
                _run_stage(stage, ctx)
                result.ran.append(stage.name)
                partial = _partial(ctx.stage_report(stage.name).counts)
                if partial:
                    result.partial[stage.name] = partial
            else:
                _reuse_stage(stage, ctx, previous, project.output)
                result.reused.append(stage.name)
        ctx.wait_background()  # files a stage writes while the next ones run
        manifest = _manifest(project, ctx, stages, fingerprints, result, previous)
        (workdir / MANIFEST).write_text(manifest.dumps(), encoding="utf-8")
        _write_json(workdir / REPORT, report.to_json(lazy=True))  # entries written in chunks
        previous_output = swap(workdir, project.output, remove=False)
    except BaseException:
        # the last good output stays in place; only this build's folder goes
        ctx.executor.abort()
        ctx.wait_background(raise_errors=False)
        discard(workdir)
        raise
    removing = remove_in_background(previous_output)
    ctx.executor.close()
    result.manifest = manifest.to_json()
    result.warnings = {n: list(r.warnings) for n, r in report.stages.items() if r.warnings}
    # started once the removal is done: both need the GIL in short turns, and the
    # removal (a system call per file, the lock held meanwhile) is the one waited for
    steps = [removing, functools.partial(release_in_background, ctx.artifacts, report.stages)]
    if finish is None:
        for step in steps:
            step()
    else:
        finish.extend(steps)
    return result


def release_in_background(*held: dict[str, Any]) -> threading.Thread:
    """Empty ``held`` (the build's in-memory city and report) on a daemon thread.

    Freeing a million footprints (GEOS objects, strings, report entries) object by
    object takes over a second that the caller need not wait for: the output is in
    place by now. The dicts are emptied here at once (their values move to the
    thread), so nothing still reachable from the build refers to what the thread
    frees; the thread frees them a slice at a time, so the interpreter can hand the
    caller the GIL in between (one deallocation in C would hold it to the end).
    """
    moved = [value for d in held for value in d.values()]
    for d in held:
        d.clear()
    thread = threading.Thread(target=_free, args=(moved,), name="cim-release", daemon=True)
    thread.start()
    return thread


#: Objects freed at a time by :func:`release_in_background` (about 10 ms of work).
_FREE_SLICE = 10_000


def _free(values: list[Any], depth: int = 0) -> None:
    """Drop what ``values`` hold, container by container, a slice at a time."""
    while values:
        value = values.pop()
        if depth > 3:  # deeper structures are small: dropped whole
            continue
        if isinstance(value, np.ndarray) and value.dtype == object:
            for start in range(0, len(value), _FREE_SLICE):
                value[start : start + _FREE_SLICE] = None
        elif isinstance(value, list):  # of small things (report entries): not walked
            while value:
                del value[-_FREE_SLICE:]
        elif isinstance(value, dict):
            _free(list(value.values()), depth + 1)
            value.clear()
        elif isinstance(value, tuple):
            _free(list(value), depth + 1)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            # the stored values: a field that decodes on reading is not decoded to be freed
            _free(list(vars(value).values()), depth + 1)


def _all_inputs(project: CityProject, stages: list[Stage]) -> list[Path]:
    """Every input path of the project: the enabled stages' inputs and the core's."""
    # a database input (cim.readers.DatabaseSource) is nowhere near the output folder
    paths = [p for stage in stages for p in stage.inputs(project) if isinstance(p, Path)]
    if project.datum.geoid_grid is not None:
        paths.append(project.datum.geoid_grid)
    l3 = project.raw.get("l3")
    if isinstance(l3, dict) and isinstance(l3.get("district"), str):
        paths.append((project.root / l3["district"]).resolve())
    return paths


#: sections the core reads, and [l3], which names the L3 district for the L3 stage
#: (a later issue) and is accepted already so project files can carry it
CORE_SECTIONS = frozenset({"city", "output", "datum", "l3", "live", "build"})


def _executor(project: CityProject, scheduler: str | None, jobs: int) -> Executor:
    """The build's executor: ``--scheduler``, else ``[build] scheduler``, else ``jobs``.

    ``[build]`` is in no stage's fingerprint: where a task runs never changes its result.
    """
    cfg = project.section("build", BuildConfig) or BuildConfig()
    executor = make_executor(scheduler or cfg.scheduler, jobs, memory_limit=cfg.memory_limit)
    log.info("tasks run on: %s", executor.describe())
    return executor


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
    release_unused()  # the stage's temporaries: not kept by the allocators for the next
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


def _partial(counts: dict[str, Any]) -> str:
    """What a re-run stage took from the last build (its report's counts), or ''."""
    if counts.get("tiles_reused"):
        return f"{counts['tiles_reused']} of {counts['tiles']} tiles unchanged"
    if counts.get("repairs_reused"):
        return f"{counts['repairs_reused']:,} of {counts['repairs_rows']:,} footprints unchanged"
    return ""


def _reuse_stage(stage: Stage, ctx: BuildContext, previous: Manifest | None, old: Path) -> None:
    assert previous is not None  # a stage is reused only when the previous build had it
    for rel in stage.outputs():
        src, dst = old / rel, ctx.workdir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, copy_function=_link_or_copy)
        else:
            _link_or_copy(src, dst)
    old_stage = previous.stages[stage.name]
    for key, layer in previous.layers.items():
        if key in old_stage.layers:
            ctx.add_layer(key, layer.to_json())
    old_report = _read_json(old / REPORT).get("stages", {}).get(stage.name)
    if old_report:
        rep = ctx.stage_report(stage.name)
        rep.read, rep.written = old_report["read"], old_report["written"]
        rep.repaired, rep.skipped = Entries(old_report["repaired"]), Entries(old_report["skipped"])
        rep.flagged = Entries(old_report.get("flagged", []))
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
    """BLAKE2b checksum of a file's content ("missing" when it does not exist).

    A database input (:class:`cim.readers.DatabaseSource`) gives a digest of its rows.
    """
    checksum = getattr(path, "checksum", None)
    if callable(checksum):
        return str(checksum())
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    if not S_ISREG(stat.st_mode):
        return "missing"
    # a build reads each input's checksum twice (fingerprints, manifest): the second
    # time it is the first one's while the file's size, time and inode are unchanged
    # (remembered for one build: build_project clears it)
    return _content_checksum(str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)


@functools.lru_cache(maxsize=256)
def _content_checksum(path: str, size: int, mtime_ns: int, inode: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


def _reusable(
    stages: list[Stage], fingerprints: dict[str, str], previous: Manifest | None, old: Path
) -> set[str]:
    if previous is None:
        return set()
    return {
        s.name
        for s in stages
        if s.name in previous.stages
        and previous.stages[s.name].fingerprint == fingerprints[s.name]
        and all((old / rel).exists() for rel in s.outputs())
    }


def _must_run(stages: list[Stage], reusable: set[str]) -> set[str]:
    """Stages to run: changed ones, plus in-memory producers a running stage needs.

    A stage's ``in_memory`` (default: its ``needs``) names the producers whose
    in-memory artifacts it uses; a producer it reads from disk (its reused output)
    need not run again.
    """
    run = {s.name for s in stages if s.name not in reusable}
    for stage in reversed(stages):
        if stage.name in run:
            wanted = getattr(stage, "in_memory", stage.needs)
            run.update(n for n in wanted if any(s.name == n for s in stages))
    return run


def _manifest(
    project: CityProject,
    ctx: BuildContext,
    stages: list[Stage],
    fingerprints: dict[str, str],
    result: BuildResult,
    previous: Manifest | None,
) -> Manifest:
    """The typed manifest of this build (unchanged figures carried over from ``previous``)."""
    layers = {k: Layer.from_json(v) for k, v in ctx.manifest.get("layers", {}).items()}
    extent = ctx.manifest.get("extent") or (previous.extent if previous else None)
    centre = ctx.manifest.get("centre") or (previous.centre if previous else None)
    if centre is None and extent:
        centre = ((extent[0] + extent[2]) / 2, (extent[1] + extent[3]) / 2, 0.0)
    buildings = ctx.artifacts.get("buildings")
    crs = getattr(buildings, "source_crs", None) or project.crs
    inputs: dict[str, str] = {}
    seen: set[Path] = set()
    for stage in stages:
        for path in stage.inputs(project):
            if path not in seen:
                seen.add(path)
                # a database input is named by its table, never its server's address
                name = (
                    input_name(path, project.root, inputs)
                    if isinstance(path, Path)
                    else f"postgis/{path.name}"
                )
                inputs[name] = file_checksum(path)
    return Manifest(
        name=project.name,
        crs=crs or (previous.crs if previous else None),
        extent=tuple(float(v) for v in extent) if extent else None,
        centre=tuple(float(v) for v in centre) if centre else None,
        layers=layers,
        stages={s.name: _stage_info(s, ctx, fingerprints, result, layers) for s in stages},
        version=__version__,
        generator=f"{GENERATOR} {__version__}",
        built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        inputs=inputs,
    )


def _stage_info(
    stage: Stage,
    ctx: BuildContext,
    fingerprints: dict[str, str],
    result: BuildResult,
    layers: dict[str, Layer],
) -> StageInfo:
    rep = ctx.report.stages.get(stage.name)
    return StageInfo(
        fingerprint=fingerprints[stage.name],
        reused=stage.name in result.reused,
        seconds=rep.seconds if rep else 0.0,
        read=rep.read if rep else 0,
        written=rep.written if rep else 0,
        repaired=len(rep.repaired) if rep else 0,
        skipped=len(rep.skipped) if rep else 0,
        layers=tuple(k for k, v in layers.items() if stage.name in (k, v.stage)),
        warnings=len(rep.warnings) if rep else 0,
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    # orjson: a city's build report lists every repaired row (300,000 at 1,000,000
    # footprints), which the json module takes half a second to write; the report's
    # entries (:class:`~cim.report.Entries`) are written a chunk at a time
    path.write_bytes(
        orjson.dumps(
            obj,
            default=json_default,
            option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY,
        )
    )
