"""Where a build's partitions run: in-process, a local process pool, or Dask.

Every stage splits its work into small, picklable task descriptions (a tile, a chunk,
a batch) and runs them through the build context's executor
(:attr:`cim.stages.BuildContext.executor`). Three executors share one interface:

- :class:`InProcessExecutor` — one job, or one task: no process at all;
- :class:`PoolExecutor` — a local process pool (``forkserver``: workers inherit no
  module state of the build process), kept for the whole build; its workers die with
  the build (:func:`die_with_parent`), so ``kill -9`` leaves no worker behind;
- :class:`DaskExecutor` — a Dask ``distributed`` cluster: ``tcp://host:port`` of a
  running scheduler, or ``local:N`` to start a ``LocalCluster`` of N worker processes.
  Workers must see the build's output folder at the same path (a shared file system).

Per-stage state that every task of a stage needs (an open DEM, the tile frame) travels
as a :class:`Setup`: pickled once, sent to each worker once (Dask: scattered), and
installed by its ``initializer`` the first time a worker meets it. Nothing relies on
state inherited through ``fork``; results are the same wherever a task ran.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import ctypes.util
import importlib
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cim.errors import CimError, ConfigError

T = TypeVar("T")
R = TypeVar("R")
#: seconds an aborted pool's thread is waited for (it ends as soon as it sees its
#: workers terminated)
ABORT_JOIN_S = 5.0
log = logging.getLogger(__name__)

Tracker = Callable[..., Iterable[Any]]

_PR_SET_PDEATHSIG = 1


# --- workers die with their parent --------------------------------------------------


def die_with_parent(parent_pid: int) -> None:
    """Make this (worker) process end when ``parent_pid``, its parent, ends.

    On Linux the kernel sends SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``);
    elsewhere, or when ``parent_pid`` is not the direct parent (a fork server started
    the worker), a daemon thread also checks it every second. Either way, a parent that
    died before this call ends the worker at once.

    Parameters
    ----------
    parent_pid : int
        The pid of the process that started the pool (``os.getpid()`` there).
    """
    # the kernel signal follows the direct parent; with a fork server in between (the
    # local pool's start method), the build is a grandparent: watch it too
    direct = os.getppid() == parent_pid
    if not (sys.platform.startswith("linux") and _pdeathsig()) or not direct:
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


# --- per-stage worker state -----------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """State every task of one ``map`` needs, installed once per worker.

    Parameters
    ----------
    initializer : callable
        A module-level function; called with ``*initargs`` in a worker before its first
        task of this setup (and again only for another setup).
    initargs : tuple
        Picklable arguments.
    """

    initializer: Callable[..., None]
    initargs: tuple[Any, ...] = ()
    key: str = field(default_factory=lambda: uuid.uuid4().hex)

    def packed(self) -> _Packed:
        """The setup with its arguments pickled once (cheap to send with every task)."""
        return _Packed(self.key, self.initializer, pickle.dumps(self.initargs, protocol=5))


@dataclass(frozen=True)
class _Packed:
    key: str
    initializer: Callable[..., None]
    payload: bytes


# the setup installed in this (worker) process; a lock because a Dask worker may run
# several threads
_INSTALLED: dict[str, str] = {}
_LOCK = threading.Lock()


def _install(setup: _Packed | None) -> None:
    if setup is None:
        return
    with _LOCK:
        if _INSTALLED.get("key") != setup.key:
            setup.initializer(*pickle.loads(setup.payload))
            _INSTALLED["key"] = setup.key


def _import(modules: tuple[str, ...]) -> None:
    for name in modules:
        importlib.import_module(name)


def _worker_start(parent_pid: int, modules: tuple[str, ...]) -> None:
    """A pool worker's initializer: die with the build, import what its tasks need."""
    die_with_parent(parent_pid)
    _import(modules)  # already there when the fork server preloaded them


def _call(fn: Callable[[T], R], setup: _Packed | None, task: T) -> R:
    _install(setup)
    return fn(task)


# --- executors ----------------------------------------------------------------------


class Executor:
    """Runs a stage's tasks; results come back in completion order.

    Attributes
    ----------
    kind : str
        ``"in-process"``, ``"pool"`` or ``"dask"``.
    workers : int
        How many tasks may run at once.
    """

    kind = "in-process"
    workers = 1

    def map(
        self,
        fn: Callable[[T], R],
        tasks: Iterable[T],
        *,
        setup: Setup | None = None,
        track: Tracker | None = None,
        desc: str = "",
        unit: str = "task",
        total: int | None = None,
    ) -> Iterator[R]:
        """``fn(task)`` for every task, in completion order.

        Parameters
        ----------
        fn : callable
            A picklable module-level function of one task.
        tasks : iterable
            Small picklable task descriptions; each worker reads its own partition. A
            generator is consumed lazily: only a few tasks per worker are in flight, so
            the caller's memory holds a window of tasks, never all of them.
        setup : Setup, optional
            Per-worker state for this map.
        track : callable, optional
            Progress wrapper ``track(iterable, total=, desc=, unit=)``.
        desc, unit : str
            Progress bar labels.
        total : int, optional
            Number of tasks, for the progress bar when ``tasks`` has no length.
        """
        wrap = track or (lambda it, **_: iter(it))
        packed = setup.packed() if setup else None
        yield from wrap(
            (_call(fn, packed, t) for t in tasks), total=_total(tasks, total), desc=desc, unit=unit
        )

    def warm(self, modules: Sequence[str] = ()) -> None:
        """Start the workers now, each importing ``modules``, without waiting for them.

        A stage calls this before serial work of its own (reading the footprints) so
        that the workers' start-up overlaps it and a later :meth:`map` finds them
        ready. Only module names travel: the core imports none of them. A failure
        here is left for the first :meth:`map` to meet.
        """

    def close(self) -> None:
        """Release the workers (idempotent)."""

    def abort(self) -> None:
        """Stop at once after a failure or a signal: running tasks are not waited for."""
        self.close()

    def describe(self) -> str:
        """One line for the log: where the tasks run."""
        return self.kind

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcessExecutor(Executor):
    """Every task in the calling process, one after the other."""


class PoolExecutor(Executor):
    """A local process pool, started at the first map and kept until :meth:`close`.

    Parameters
    ----------
    workers : int
        Worker processes (at least 2; one worker is :class:`InProcessExecutor`).
    """

    kind = "pool"

    def __init__(self, workers: int) -> None:
        self.workers = max(2, int(workers))
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._warming: threading.Thread | None = None

    def _started(self, preload: Sequence[str] = ()) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # forkserver: workers start from a clean interpreter, never a copy of the
                # build's heap, so nothing can lean on inherited module state
                method = (
                    "forkserver"
                    if "forkserver" in multiprocessing.get_all_start_methods()
                    else None
                )
                context = multiprocessing.get_context(method)
                if preload and method == "forkserver":
                    # imported once by the fork server (when it starts now), not per worker
                    context.set_forkserver_preload(list(preload))
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=context,
                    initializer=_worker_start,
                    initargs=(os.getpid(), tuple(preload)),
                )
            return self._pool

    def warm(self, modules: Sequence[str] = ()) -> None:
        """See :meth:`Executor.warm`: a thread starts the pool (the fork server imports
        ``modules`` once) and one start-up task per worker."""
        if self._pool is not None or self._warming is not None:
            return
        self._warming = threading.Thread(
            target=self._warm, args=(tuple(modules),), name="cim-pool-start", daemon=True
        )
        self._warming.start()

    def _warm(self, modules: tuple[str, ...]) -> None:
        try:
            pool = self._started(preload=modules)
            # each submit while no worker is idle starts one more worker
            for future in [pool.submit(_import, ()) for _ in range(self.workers)]:
                future.result()
        except (OSError, ImportError, BrokenProcessPool) as exc:  # the first map meets it
            log.debug("starting the pool ahead failed: %s", exc)

    def _settled(self) -> None:
        if self._warming is not None:
            self._warming.join()
            self._warming = None

    def map(
        self,
        fn: Callable[[T], R],
        tasks: Iterable[T],
        *,
        setup: Setup | None = None,
        track: Tracker | None = None,
        desc: str = "",
        unit: str = "task",
        total: int | None = None,
    ) -> Iterator[R]:
        """See :meth:`Executor.map`; a single task runs in this process."""
        n = _total(tasks, total)
        if n is not None and n <= 1:
            yield from Executor.map(self, fn, tasks, setup=setup, track=track, desc=desc, unit=unit)
            return
        wrap = track or (lambda it, **_: iter(it))
        packed = setup.packed() if setup else None
        self._settled()
        pool = self._started()
        window = _Window(lambda t: pool.submit(_call, fn, packed, t), tasks, 4 * self.workers)
        try:
            yield from wrap(window.results(), total=n, desc=desc, unit=unit)
        except BrokenProcessPool as exc:
            raise CimError(
                "a worker process died: out of memory or killed, or it failed to start "
                "(its own message is above)"
            ) from exc

    def close(self) -> None:
        """Stop the workers."""
        self._settled()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def abort(self) -> None:
        """Kill the workers (a failed or interrupted build waits for no task)."""
        self._settled()
        if self._pool is not None:
            manager = getattr(self._pool, "_executor_manager_thread", None)
            # no public API before Python 3.14's terminate_workers()
            for proc in list(getattr(self._pool, "_processes", {}).values()):
                proc.terminate()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            if manager is not None:
                # the pool's thread ends once it sees its workers gone: waited for, so
                # that the interpreter's exit does not wake it while it closes its pipe
                # (Python 3.11 races there: "Bad file descriptor" and a traceback after
                # the build's own one-line error)
                manager.join(timeout=ABORT_JOIN_S)

    def describe(self) -> str:
        """E.g. ``local pool of 2 processes``."""
        return f"local pool of {self.workers} processes"


class DaskExecutor(Executor):
    """Tasks on a Dask ``distributed`` cluster.

    Parameters
    ----------
    scheduler : str
        ``tcp://host:port`` (any address ``distributed.Client`` takes) or ``local:N``
        to start a ``LocalCluster`` of N single-threaded worker processes.
    memory_limit : str
        Per-worker memory limit of a ``local:N`` cluster (Dask syntax, e.g. ``"2GiB"``).
    """

    kind = "dask"

    def __init__(self, scheduler: str, *, memory_limit: str = "4GiB") -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # the optional extra is not installed
            raise ConfigError(
                "a Dask scheduler needs the 'dask' extra: pip install 'cim-toolkit[dask]'"
            ) from exc
        self.scheduler = scheduler
        self._cluster = None
        if scheduler.startswith("local:"):
            self.workers = _local_workers(scheduler)
            self._cluster = LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                processes=True,
                memory_limit=memory_limit,
                dashboard_address=None,
            )
            self._client = Client(self._cluster)
        else:
            try:
                self._client = Client(scheduler, timeout="20s")
            except OSError as exc:
                raise ConfigError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from exc
            self.workers = max(1, sum(self._client.nthreads().values()))

    def map(
        self,
        fn: Callable[[T], R],
        tasks: Iterable[T],
        *,
        setup: Setup | None = None,
        track: Tracker | None = None,
        desc: str = "",
        unit: str = "task",
        total: int | None = None,
    ) -> Iterator[R]:
        """See :meth:`Executor.map`; the setup is scattered to every worker once."""
        wrap = track or (lambda it, **_: iter(it))
        packed = setup.packed() if setup else None
        shared = self._client.scatter(packed, broadcast=True) if packed else None
        client = self._client

        def submit(task: T) -> Any:
            return client.submit(_call, fn, shared, task, pure=False)

        window = _Window(submit, tasks, 4 * self.workers)
        try:
            yield from wrap(window.results(), total=_total(tasks, total), desc=desc, unit=unit)
        finally:
            if shared is not None:
                client.cancel(shared)

    def close(self) -> None:
        """Disconnect; stop the cluster this executor started."""
        if getattr(self, "_client", None) is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def describe(self) -> str:
        """E.g. ``Dask local:2`` or ``Dask tcp://10.0.0.5:8786 (16 threads)``."""
        return f"Dask {self.scheduler} ({self.workers} workers)"


def _total(tasks: Iterable[Any], total: int | None) -> int | None:
    if total is not None:
        return total
    return len(tasks) if isinstance(tasks, Sized) else None


class _Window:
    """Submit tasks lazily, keeping at most ``size`` in flight; results as they finish.

    Works with concurrent.futures and Dask futures alike (``done()``, ``result()``,
    ``cancel()``).
    """

    def __init__(self, submit: Callable[[Any], Any], tasks: Iterable[Any], size: int) -> None:
        self.submit, self.tasks, self.size = submit, iter(tasks), max(2, size)

    def results(self) -> Iterator[Any]:
        pending: set[Any] = set()
        try:
            self._fill(pending)
            while pending:
                done = _wait_any(pending)
                for fut in done:
                    pending.discard(fut)
                # refill before handing results out: workers stay busy meanwhile
                self._fill(pending)
                for fut in done:
                    yield fut.result()
        finally:
            for fut in pending:
                fut.cancel()

    def _fill(self, pending: set[Any]) -> None:
        while len(pending) < self.size:
            task = next(self.tasks, _END)
            if task is _END:
                return
            pending.add(self.submit(task))


_END = object()


def _wait_any(pending: set[Any]) -> list[Any]:
    """The finished futures among ``pending`` (blocks until at least one)."""
    sample = next(iter(pending))
    if isinstance(sample, concurrent.futures.Future):
        done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
        return list(done)
    from distributed import wait

    done, _ = wait(list(pending), return_when="FIRST_COMPLETED")
    return list(done)


def _local_workers(spec: str) -> int:
    try:
        n = int(spec.split(":", 1)[1])
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"scheduler {spec!r}: write local:N with N ≥ 1 worker processes")
    return n


def make_executor(
    scheduler: str | None = None, jobs: int = 1, *, memory_limit: str = "4GiB"
) -> Executor:
    """The executor for a build.

    Parameters
    ----------
    scheduler : str, optional
        A Dask scheduler address, ``local:N`` for a local Dask cluster, or None.
    jobs : int
        Without a scheduler: worker processes (≤ 1 runs everything in-process).
    memory_limit : str
        Per-worker memory limit of a ``local:N`` Dask cluster.

    Returns
    -------
    Executor

    Raises
    ------
    ConfigError
        A malformed scheduler, an unreachable one, or Dask not installed.
    """
    if scheduler:
        if not (scheduler.startswith("local:") or "://" in scheduler):
            raise ConfigError(f"scheduler {scheduler!r}: expected tcp://host:port or local:N")
        return DaskExecutor(scheduler, memory_limit=memory_limit)
    if jobs <= 1:
        return InProcessExecutor()
    return PoolExecutor(jobs)
