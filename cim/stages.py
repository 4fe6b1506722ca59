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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from tqdm import tqdm

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

    def stage_report(self, name: str) -> StageReport:
        """Shortcut for ``self.report.stage(name)``."""
        return self.report.stage(name)

    def track(
        self, iterable: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it"
    ) -> Iterator[T]:
        """Wrap a long loop with a progress bar (on stderr, off when not wanted)."""
        return iter(
            tqdm(
                iterable,
                total=total,
                desc=desc,
                unit=unit,
                disable=not self.progress,
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
