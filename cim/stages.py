"""Build stages and the context they share.

A stage is a small class registered under the ``cim.stages`` entry point group (see
``setup.cfg``); the core discovers stages there and never imports ``tiling``. Stages
run in ascending ``order``. Each one:

- says whether its inputs are present in the project (``enabled``);
- names the input files and config sections whose change forces a re-run
  (``inputs`` / ``sections``), so unchanged stages are reused from the last build;
- names what it writes under the output folder (``outputs``), relative paths;
- does its work in ``run``, writing into ``ctx.workdir`` (the temporary output folder)
  and recording every read/repair/skip in ``ctx.report.stage(self.name)``.

Stages pass in-memory results to later stages through ``ctx.artifacts`` (for
example the ``buildings`` stage leaves a :class:`cim.model.Buildings` table under
``"buildings"`` that the address and L2 stages use).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from cim.config import CityProject
from cim.executor import Executor, InProcessExecutor
from cim.manifest import Layer
from cim.report import BuildReport, StageReport

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class BuildContext:
    """What a stage gets: the project, where to write, the report, shared results.

    Attributes
    ----------
    project : CityProject
    workdir : Path
        The temporary output folder; moved into place when every stage succeeded.
    report : BuildReport
    jobs : int
        Worker processes a stage may use.
    executor : Executor
        Where the stage's partitions run (:mod:`cim.executor`): every stage submits
        its tasks here.
    previous : Path or None
        The last good output folder (read-only; None with ``--force`` or on a first
        build): a stage that re-runs may hard-link what did not change from there.
    progress : bool
        Whether to show progress bars.
    artifacts : dict
        In-memory results passed from stage to stage.
    manifest : dict
        Stage contributions to ``manifest.json`` (``layers``, ``extent``...).
    """

    project: CityProject
    workdir: Path
    report: BuildReport
    jobs: int = 1
    progress: bool = True
    executor: Executor = field(default_factory=InProcessExecutor)
    previous: Path | None = None
    artifacts: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    _background: list[Future[Any]] = field(default_factory=list, repr=False)
    _writer: ThreadPoolExecutor | None = field(default=None, repr=False)

    def in_background(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` in a thread of the build process, one at a time.

        For writing files that no later stage of this build reads (it keeps the
        data in memory) while the next stages work: Parquet encoding and compression
        release the GIL, so the write takes a core the build would leave idle. The
        build waits for every background job before it writes the manifest and
        swaps the output into place (:meth:`wait_background`), and fails with the
        job's error. ``fn`` must not share mutable data with later stages.

        Returns the job, for a stage that must let it finish before it changes or
        lets go of what the job reads (:func:`concurrent.futures.wait`; its error
        is still raised by :meth:`wait_background`).
        """
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cim-write")
        job = self._writer.submit(fn, *args, **kwargs)
        self._background.append(job)
        return job

    def wait_background(self, *, raise_errors: bool = True) -> None:
        """Wait for every :meth:`in_background` job; raise the first one's error."""
        jobs, self._background = self._background, []
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        if raise_errors:
            for job in jobs:
                job.result()

    def stage_report(self, name: str) -> StageReport:
        """Shortcut for ``self.report.stage(name)``."""
        return self.report.stage(name)

    def track(
        self, iterable: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it"
    ) -> Iterator[T]:
        """Wrap a long loop with a progress bar (on stderr, off when not wanted)."""
        if not self.progress:
            return iter(iterable)  # no bar: tqdm is not even imported
        from tqdm import tqdm

        return iter(
            tqdm(
                iterable,
                total=total,
                desc=desc,
                unit=unit,
                leave=False,
                dynamic_ncols=True,
            )
        )

    def add_layer(self, key: str, info: dict[str, Any]) -> None:
        """Announce an output layer (``tiles/l2/tileset.json``...) in the manifest.

        ``info["url"]`` is the layer's entry file relative to the output folder; the
        other keys are the stage's figures (see :class:`cim.manifest.Layer`).

        Raises
        ------
        ValueError
            When the url is not a relative path (the manifest is served to browsers and
            must not reveal server paths).
        """
        Layer.from_json(info)  # fail in the stage that breaks the contract, not later
        self.manifest.setdefault("layers", {})[key] = info


@runtime_checkable
class Stage(Protocol):
    """What every build stage provides."""

    name: ClassVar[str]
    order: ClassVar[int]
    #: names of stages whose results this one needs (their fingerprints feed its own);
    #: a stage may also set ``in_memory``, the subset whose in-memory artifacts it
    #: uses (default: all of ``needs``): only those must run again with it
    needs: ClassVar[tuple[str, ...]]

    def enabled(self, project: CityProject) -> bool:
        """Whether this stage's inputs are present in the project."""

    def inputs(self, project: CityProject) -> list[Path]:
        """Input files whose content decides this stage's output."""

    def sections(self) -> tuple[str, ...]:
        """city.toml sections whose values decide this stage's output."""

    def outputs(self) -> list[str]:
        """Paths (relative to the output folder) this stage writes."""

    def run(self, ctx: BuildContext) -> None:
        """Do the work; write into ``ctx.workdir``; fill the stage report."""


def discover_stages() -> list[Stage]:
    """All stages registered under the ``cim.stages`` entry point group, in order."""
    stages: list[Stage] = []
    for ep in entry_points(group="cim.stages"):
        cls = ep.load()
        stages.append(cls())
    stages.sort(key=lambda s: (s.order, s.name))
    return stages
