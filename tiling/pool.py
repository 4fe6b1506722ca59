"""Run a stage's independent tasks in-process or on a local process pool.

Stages split their work into pure tasks (tiles, chunks, batches); this runs them in
the current process when one job is asked for (or there is one task), otherwise on a
``ProcessPoolExecutor`` whose workers are set up once by ``initializer``. Results come
back as they finish, through the stage's progress wrapper.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def run_tasks(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    *,
    jobs: int,
    initializer: Callable[..., None],
    initargs: tuple[Any, ...],
    track: Callable[..., Iterable[Any]] | None = None,
    desc: str = "",
    unit: str = "task",
) -> Iterator[R]:
    """Results of ``fn`` over ``tasks``, in completion order.

    Parameters
    ----------
    fn : callable
        A picklable, module-level function of one task.
    tasks : sequence
    jobs : int
        Worker processes; ≤ 1 runs in this process.
    initializer, initargs
        Per-worker setup (also called once in this process for the serial path).
    track : callable, optional
        Progress wrapper ``track(iterable, total=, desc=, unit=)``.
    """
    wrap = track or (lambda it, **_: iter(it))
    if jobs <= 1 or len(tasks) <= 1:
        initializer(*initargs)
        yield from wrap((fn(t) for t in tasks), total=len(tasks), desc=desc, unit=unit)
        return
    with ProcessPoolExecutor(max_workers=jobs, initializer=initializer, initargs=initargs) as pool:
        futures = [pool.submit(fn, t) for t in tasks]
        for fut in wrap(as_completed(futures), total=len(futures), desc=desc, unit=unit):
            yield fut.result()
