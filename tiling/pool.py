"""Run a stage's independent tasks through an executor (:mod:`cim.executor`).

Stages split their work into pure tasks (tiles, chunks, batches) and pass the build
context's executor (``ctx.executor``): in-process, a local process pool or a Dask
cluster. Per-worker setup (``initializer(*initargs)``) travels as a
:class:`cim.executor.Setup`, installed once per worker, never inherited through fork.

Workers die with their parent: a build killed with ``kill -9`` leaves no worker behind
(:func:`die_with_parent`, used by the local pool).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from cim.executor import Executor, Setup, die_with_parent, make_executor

__all__ = ["die_with_parent", "run_tasks"]

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)


def run_tasks(
    fn: Callable[[T], R],
    tasks: Iterable[T],
    *,
    jobs: int = 1,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
    track: Callable[..., Iterable[Any]] | None = None,
    desc: str = "",
    unit: str = "task",
    executor: Executor | None = None,
) -> Iterator[R]:
    """Results of ``fn`` over ``tasks``, in completion order.

    Parameters
    ----------
    fn : callable
        A picklable, module-level function of one task.
    tasks : iterable
    jobs : int
        Worker processes when no ``executor`` is given (≤ 1 runs in this process).
    initializer, initargs
        Per-worker setup (called once in this process for the in-process path).
    track : callable, optional
        Progress wrapper ``track(iterable, total=, desc=, unit=)``.
    executor : Executor, optional
        The build's executor; without one, a local one for ``jobs`` is started and
        stopped around this call.
    """
    setup = Setup(initializer, initargs) if initializer is not None else None
    if executor is not None:
        yield from executor.map(fn, tasks, setup=setup, track=track, desc=desc, unit=unit)
        return
    with make_executor(jobs=jobs) as own:
        yield from own.map(fn, tasks, setup=setup, track=track, desc=desc, unit=unit)
