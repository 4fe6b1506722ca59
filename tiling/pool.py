"""Run a stage's independent tasks in-process or on a local process pool.

Stages split their work into pure tasks (tiles, chunks, batches); this runs them in
the current process when one job is asked for (or there is one task), otherwise on a
``ProcessPoolExecutor`` whose workers are set up once by ``initializer``. Results come
back as they finish, through the stage's progress wrapper.

Workers die with their parent: a build killed with ``kill -9`` leaves no worker behind
(:func:`die_with_parent`, which every pool of the stages uses as or in its initializer).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Make this (worker) process end when ``parent_pid``, its parent, ends.

    On Linux the kernel sends SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``);
    elsewhere a daemon thread checks the parent every second. Either way, a parent that
    died before this call ends the worker at once.

    Parameters
    ----------
    parent_pid : int
        The pid of the process that started the pool (``os.getpid()`` there).
    """
    if not (sys.platform.startswith("linux") and _pdeathsig()):
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    if not _parent_alive(parent_pid):
        os._exit(1)


def _pdeathsig() -> bool:
    name = ctypes.util.find_library("c")
    if not name:
        return False
    libc = ctypes.CDLL(name, use_errno=True)
    return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0


def _parent_alive(parent_pid: int) -> bool:
    # the parent pid changes when the parent dies (the orphan is re-parented); with a
    # fork server in between, the parent is the server: ask the kernel about the pid
    if os.getppid() == parent_pid:
        return True
    try:
        os.kill(parent_pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch_parent(parent_pid: int) -> None:
    while _parent_alive(parent_pid):
        time.sleep(1.0)
    os._exit(1)


def _init_worker(parent_pid: int, initializer: Callable[..., None], initargs: tuple) -> None:
    die_with_parent(parent_pid)
    initializer(*initargs)


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
    with ProcessPoolExecutor(
        max_workers=jobs,
        initializer=_init_worker,
        initargs=(os.getpid(), initializer, initargs),
    ) as pool:
        futures = [pool.submit(fn, t) for t in tasks]
        for fut in wrap(as_completed(futures), total=len(futures), desc=desc, unit=unit):
            yield fut.result()
