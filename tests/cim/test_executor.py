"""The executor seam (cim/executor.py): same results in-process, in a pool, on Dask."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cim.errors import CimError, ConfigError
from cim.executor import (
    DaskExecutor,
    InProcessExecutor,
    PoolExecutor,
    Setup,
    make_executor,
)

# worker-side state, installed by a Setup (never inherited: the pool uses forkserver)
_STATE: dict[str, object] = {}


def _install(factor: int, marker: str) -> None:
    _STATE["factor"] = factor
    Path(marker, str(os.getpid())).touch()


def _scaled(task: int) -> tuple[int, int]:
    return task, task * int(_STATE["factor"])  # type: ignore[call-overload]


def _square(task: int) -> int:
    return task * task


def _pid(_: int) -> int:
    return os.getpid()


def _fail(task: int) -> int:
    if task == 3:
        raise ValueError("task 3 is bad")
    return task


def test_make_executor_picks_by_scheduler_and_jobs() -> None:
    assert isinstance(make_executor(None, 1), InProcessExecutor)
    pool = make_executor(None, 2)
    assert isinstance(pool, PoolExecutor) and pool.workers == 2
    pool.close()
    for bad in ("localhost", "local:0", "local:x"):
        with pytest.raises(ConfigError):
            make_executor(bad, 1)


@pytest.mark.parametrize("kind", ["in-process", "pool"])
def test_setup_reaches_every_worker_once_and_results_match(kind: str, tmp_path: Path) -> None:
    executor = InProcessExecutor() if kind == "in-process" else PoolExecutor(2)
    with executor:
        setup = Setup(_install, (3, str(tmp_path)))
        got = dict(executor.map(_scaled, range(40), setup=setup))
        again = dict(executor.map(_scaled, (i for i in range(40)), setup=setup, total=40))
    assert got == again == {i: 3 * i for i in range(40)}
    installed = [int(p.name) for p in tmp_path.iterdir()]
    # once per process that ran tasks (the setup's key is remembered there)
    assert len(installed) == len(set(installed)) <= max(executor.workers, 1)
    if kind == "in-process":
        assert installed == [os.getpid()]
    else:
        assert os.getpid() not in installed


def test_pool_runs_elsewhere_and_is_reused_across_maps() -> None:
    with PoolExecutor(2) as pool:
        first = set(pool.map(_pid, range(16)))
        second = set(pool.map(_pid, range(16)))
    assert os.getpid() not in first
    assert first & second  # the same worker processes served both maps


def _imported(name: str) -> bool:
    return name in sys.modules


def test_warm_starts_the_workers_ahead_with_their_modules() -> None:
    with PoolExecutor(2) as pool:
        pool.warm(("colorsys",))  # a module nothing else here imports
        pool._settled()  # the warm-up thread is done: both workers run, before any map
        assert len(pool._pool._processes) == 2  # type: ignore[union-attr]
        assert all(pool.map(_imported, ["colorsys"] * 8))
        pool.warm(("colorsys",))  # again: nothing to do
        assert pool._warming is None
    InProcessExecutor().warm(("colorsys",))  # a no-op in-process


def test_a_failing_task_raises_in_the_caller() -> None:
    with PoolExecutor(2) as pool, pytest.raises(ValueError, match="task 3"):
        list(pool.map(_fail, range(8)))


def _die(task: int) -> int:
    os._exit(3)  # as the kernel's OOM killer would leave it


def test_a_dead_worker_is_a_one_line_error_not_a_hang() -> None:
    with PoolExecutor(2) as pool, pytest.raises(CimError, match="worker process died"):
        list(pool.map(_die, range(4)))


def test_an_unguarded_script_fails_at_once_with_pythons_advice(tmp_path: Path) -> None:
    """Workers import the script that started the build: unguarded, each would start a
    build of its own, and wait for the build lock the first one holds, for ever."""
    from bench.synthetic import write_geoparquet

    write_geoparquet(tmp_path / "b.parquet", 200)
    (tmp_path / "city.toml").write_text(
        '[buildings]\npath = "b.parquet"\nid = "id"\n[l2]\nmax_features_per_tile = 20\n',
        encoding="utf-8",
    )
    script = tmp_path / "build.py"
    script.write_text(
        f"from cim.build import build_project\nbuild_project({str(tmp_path / 'city.toml')!r}, "
        "jobs=2, progress=False)\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode != 0
    assert "if __name__ == '__main__':" in done.stderr
    assert "worker process died" in done.stderr


def test_lazy_tasks_are_consumed_a_window_at_a_time() -> None:
    pulled: list[int] = []

    def tasks():
        for i in range(200):
            pulled.append(i)
            yield i

    with PoolExecutor(2) as pool:
        results = pool.map(_square, tasks(), total=200)
        first = next(results)
        # the window (4 per worker) and its refill after the first wait, not all 200
        assert len(pulled) <= 2 * 4 * 2
        rest = list(results)
    assert sorted([first, *rest]) == [i * i for i in range(200)]


@pytest.mark.slow  # a cluster start; tests/tiling/test_scale_executors.py runs Dask unmarked
def test_dask_local_cluster_gives_the_same_results(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    with DaskExecutor("local:2", memory_limit="1GiB") as dask:
        assert dask.workers == 2
        got = dict(dask.map(_scaled, range(30), setup=Setup(_install, (5, str(tmp_path)))))
        squares = sorted(dask.map(_square, np.arange(10).tolist()))
    assert got == {i: 5 * i for i in range(30)}
    assert squares == [i * i for i in range(10)]
    assert 1 <= len(list(tmp_path.iterdir())) <= 2  # one install per worker process


def test_cli_refuses_a_malformed_scheduler(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from cim.cli import main

    (tmp_path / "b.csv").write_text("wkt,height\n", encoding="utf-8")
    toml = tmp_path / "city.toml"
    toml.write_text('[buildings]\npath = "b.csv"\n[build]\nscheduler = "nowhere"\n', "utf-8")
    assert main(["build", str(toml)]) == 2
    assert "tcp://host:port or local:N" in capsys.readouterr().err
    assert main(["build", str(toml), "--scheduler", "local:0"]) == 2
    assert not (tmp_path / "output").exists()
