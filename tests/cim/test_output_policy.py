"""The output folder policy: refusals, the build lock, crash recovery, workers' death."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from cim.build import build_project
from cim.cli import main
from cim.errors import CimError, ConfigError
from cim.output import (
    MARKER,
    build_paths,
    check_output,
    discard,
    lock_path,
    readable_output,
    recover,
    swap,
    temp_folder,
    written_by_cim,
)

LON, LAT = 121.50, 31.24
REPO = Path(__file__).resolve().parents[2]


def _footprints(n: int = 12) -> str:
    feats = []
    for i in range(n):
        x, y = LON + (i % 4) * 0.0003, LAT + (i // 4) * 0.0003
        ring = [[x, y], [x + 1e-4, y], [x + 1e-4, y + 1e-4], [x, y + 1e-4], [x, y]]
        feats.append(
            {
                "type": "Feature",
                "properties": {"id": f"b{i}", "height": 10 + i},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    return json.dumps({"type": "FeatureCollection", "features": feats})


def make_project(root: Path, out_dir: str = "output") -> Path:
    """city.toml + data/b.geojson under ``root``; returns the city.toml."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "data" / "b.geojson").write_text(_footprints(), encoding="utf-8")
    toml = root / "city.toml"
    toml.write_text(
        f'[city]\nname = "t"\n[output]\ndir = "{out_dir}"\n'
        '[buildings]\npath = "data/b.geojson"\nid = "id"\n',
        encoding="utf-8",
    )
    return toml


def checksums(root: Path) -> dict[str, str]:
    """Every file under ``root`` → its SHA-256 (relative paths)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _error_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.strip()]


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("out_dir", "expect"),
    [
        ("data", "is or contains the input"),
        (".", "is or contains the project folder"),
        ("..", "is or contains the project folder"),
        ("data/b.geojson", "is a file"),
        ("notes.txt", "is a file"),
        ("mine", "was not written by cim"),
        ("other", "holds a city project file (city.toml)"),
    ],
)
def test_unsafe_output_is_refused_and_nothing_is_touched(
    tmp_path: Path, out_dir: str, expect: str, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "proj"
    toml = make_project(root, out_dir)
    (root / "notes.txt").write_text("my notes\n", encoding="utf-8")
    (root / "mine").mkdir()
    (root / "mine" / "work.docx").write_bytes(b"not a build")
    make_project(root / "other")  # another project, with its own data
    before = checksums(tmp_path)
    assert main(["build", str(toml), "-j", "1"]) == 2
    err = capsys.readouterr().err
    lines = _error_lines(err)
    assert len(lines) == 1, err
    assert lines[0].startswith("cim: ") and expect in lines[0] and "city.toml" in lines[0]
    assert checksums(tmp_path) == before  # no file touched, none added (no lock file)
    assert not list(root.glob(".*"))


def test_output_inside_an_input_folder_is_refused(tmp_path: Path) -> None:
    dem_dir = tmp_path / "dem"
    (dem_dir / "tiles").mkdir(parents=True)
    project = tmp_path / "city.toml"
    project.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="lies inside the input folder"):
        check_output(dem_dir / "out", project, [dem_dir])
    # a plain data folder holding input files is not itself an input: output beside them
    # is allowed (it contains none of them)
    (tmp_path / "data").mkdir()
    check_output(tmp_path / "data" / "out", project, [tmp_path / "data" / "b.geojson"])


def test_empty_or_own_output_folder_is_accepted(tmp_path: Path) -> None:
    toml = make_project(tmp_path)
    (tmp_path / "output").mkdir()  # empty: fine
    build_project(toml, progress=False)
    out = tmp_path / "output"
    assert (out / MARKER).is_file() and written_by_cim(out)
    # an output written by an older cim (no marker, but cim's manifest) is cim's too
    (out / MARKER).unlink()
    assert written_by_cim(out)
    build_project(toml, progress=False, force=True)


def test_user_file_dropped_into_the_output_is_not_lost(tmp_path: Path) -> None:
    """The swap replaces the output, but the previous one goes only if cim wrote it."""
    toml = make_project(tmp_path)
    build_project(toml, progress=False)
    out = tmp_path / "output"
    (out / "manifest.json").write_text('{"generator": "someone else"}', encoding="utf-8")
    (out / MARKER).unlink()
    (out / "precious.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(ConfigError, match="not written by cim"):
        build_project(toml, progress=False)
    assert (out / "precious.txt").read_text(encoding="utf-8") == "keep me"


# --- the lock ---------------------------------------------------------------------------


def _hold_lock(output: Path, pid: int) -> int:
    output.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(output), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)
    os.write(fd, f"{pid}\n".encode())
    return fd


def test_no_wait_names_the_holder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    toml = make_project(tmp_path)
    fd = _hold_lock(tmp_path / "output", 424242)
    try:
        with pytest.raises(CimError, match="pid 424242"):
            build_project(toml, progress=False, wait=False)
        assert main(["build", str(toml), "--no-wait"]) == 1
        lines = _error_lines(capsys.readouterr().err)
        assert len(lines) == 1 and "pid 424242" in lines[0] and "--no-wait" in lines[0]
    finally:
        os.close(fd)
    assert not (tmp_path / "output").exists()
    build_project(toml, progress=False, wait=False)  # free again


def test_second_build_waits_for_the_first(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    toml = make_project(tmp_path)
    fd = _hold_lock(tmp_path / "output", 31337)
    done: list[object] = []
    caplog.set_level(logging.INFO, logger="cim.output")
    worker = threading.Thread(target=lambda: done.append(build_project(toml, progress=False)))
    worker.start()
    try:
        time.sleep(1.0)
        assert not done and worker.is_alive()  # blocked on the lock
        assert "waiting for the build of pid 31337" in caplog.text
    finally:
        os.close(fd)
    worker.join(60)
    assert done and (tmp_path / "output" / "manifest.json").is_file()


def test_two_concurrent_cli_builds_both_succeed(tmp_path: Path) -> None:
    toml = make_project(tmp_path)
    cmd = [sys.executable, "-m", "cim.cli", "build", str(toml), "-j", "1", "--force"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    manifest = json.loads((tmp_path / "output" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["layers"]["l2"]["buildings"] == 12
    assert not [p for p in tmp_path.glob(".output.*") if p.name != ".output.lock"]


# --- crash recovery ---------------------------------------------------------------------


def _fake_tmp(output: Path, pid: int, marked: bool = True) -> Path:
    folder = output.parent / f".{output.name}.tmp-{pid}"
    (folder / "tiles").mkdir(parents=True)
    (folder / "tiles" / "half.glb").write_bytes(b"\0" * 1000)
    if marked:
        (folder / MARKER).write_text("cim-toolkit\n", encoding="utf-8")
    return folder


def test_leftovers_of_killed_builds_are_removed(tmp_path: Path) -> None:
    toml = make_project(tmp_path)
    build_project(toml, progress=False)
    out = tmp_path / "output"
    before = (out / "manifest.json").read_bytes()
    dead_tmp = _fake_tmp(out, 999991)
    foreign = _fake_tmp(out, 999992, marked=False)  # looks like ours, but is not marked
    old = tmp_path / ".output.old-999993"  # a swap that was cut while removing the old
    old.mkdir()
    (old / "manifest.json").write_text('{"generator": "cim-toolkit 0.1.0"}', encoding="utf-8")
    result = build_project(toml, progress=False)
    assert result.up_to_date  # recovery does not force a rebuild
    assert not dead_tmp.exists() and not old.exists()
    assert foreign.exists() and (foreign / "tiles" / "half.glb").is_file()
    assert len(result.recovered) == 2
    assert (out / "manifest.json").read_bytes() == before


def test_cut_swap_restores_the_previous_output(tmp_path: Path) -> None:
    toml = make_project(tmp_path)
    build_project(toml, progress=False)
    out = tmp_path / "output"
    before = checksums(out)
    # killed between the two renames: old renamed away, the new one not yet in place
    out.rename(tmp_path / f".output.old-{999995}")
    _fake_tmp(out, 999996)
    assert main(["info", str(out), "--json"]) == 0  # cim info survives (and repairs)
    assert checksums(out) == before
    assert [p.name for p in tmp_path.glob(".output.*")] == [".output.lock"]
    assert build_project(toml, progress=False).up_to_date


def test_cut_swap_while_a_build_holds_the_lock(tmp_path: Path) -> None:
    """Readers fall back to the previous output; the running build repairs it."""
    toml = make_project(tmp_path)
    build_project(toml, progress=False)
    out = tmp_path / "output"
    old = tmp_path / ".output.old-999997"
    out.rename(old)
    fd = _hold_lock(out, 999998)
    try:
        assert readable_output(out) == old  # nothing renamed under a running build
        assert old.is_dir() and not out.exists()
    finally:
        os.close(fd)
    result = build_project(toml, progress=False)
    assert result.up_to_date and result.recovered and out.is_dir() and not old.exists()


def test_recover_leaves_folders_it_did_not_write(tmp_path: Path) -> None:
    out = tmp_path / "output"
    other = tmp_path / ".output.old-5"
    other.mkdir()
    (other / "thesis.tex").write_text("x", encoding="utf-8")
    empty = tmp_path / ".output.tmp-6"  # killed between mkdir and the marker: nothing lost
    empty.mkdir()
    assert recover(out) == ["removed .output.tmp-6, left by a build that did not finish"]
    assert not out.exists() and not empty.exists() and (other / "thesis.tex").is_file()
    discard(other)  # a failed build's clean-up spares it too
    assert (other / "thesis.tex").is_file()


@pytest.mark.parametrize("exchange", [True, False])
def test_swap_replaces_the_output(
    tmp_path: Path, exchange: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not exchange:  # the two-rename path (no renameat2 on this system)
        monkeypatch.setattr("cim.output._exchange", lambda a, b: False)
    out = tmp_path / "output"
    first = temp_folder(out)
    (first / "a.txt").write_text("1", encoding="utf-8")
    swap(first, out)
    second = temp_folder(out)
    (second / "a.txt").write_text("2", encoding="utf-8")
    swap(second, out)
    assert (out / "a.txt").read_text(encoding="utf-8") == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["output"]


def test_interrupted_build_keeps_the_last_good_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cim.build

    toml = make_project(tmp_path)
    build_project(toml, progress=False)
    out = tmp_path / "output"
    before = checksums(out)
    real = cim.build._run_stage

    def interrupted(stage, ctx):  # the signature of _run_stage
        if stage.name == "l2":
            raise KeyboardInterrupt
        return real(stage, ctx)

    monkeypatch.setattr(cim.build, "_run_stage", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_project(toml, progress=False, force=True)
    assert checksums(out) == before
    assert [p.name for p in tmp_path.glob(".output.*")] == [".output.lock"]


# --- workers die with their parent ------------------------------------------------------

_POOL_SCRIPT = """
import os, sys, time
sys.path.insert(0, {repo!r})
from tiling.pool import run_tasks

def noop():
    pass

def nap(i):
    open(os.path.join({folder!r}, str(os.getpid())), "w").close()
    time.sleep(60)
    return i

if __name__ == "__main__":
    for _ in run_tasks(nap, [0, 1, 2, 3], jobs=2, initializer=noop, initargs=()):
        pass
"""

_MP_SCRIPT = """
import multiprocessing, os, sys, time
sys.path.insert(0, {repo!r})
from tiling.pool import die_with_parent

def nap(i):
    open(os.path.join({folder!r}, str(os.getpid())), "w").close()
    time.sleep(60)
    return i

if __name__ == "__main__":
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        list(pool.imap_unordered(nap, range(4)))
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie is dead, just not yet reaped


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("script", [_POOL_SCRIPT, _MP_SCRIPT], ids=["run_tasks", "mp.Pool"])
def test_workers_die_with_a_killed_parent(tmp_path: Path, script: str) -> None:
    folder = tmp_path / "pids"
    folder.mkdir()
    path = tmp_path / "parent.py"
    path.write_text(
        textwrap.dedent(script.format(repo=str(REPO), folder=str(folder))), encoding="utf-8"
    )
    parent = subprocess.Popen([sys.executable, str(path)])
    try:
        deadline = time.monotonic() + 30
        while len(list(folder.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = [int(p.name) for p in folder.iterdir()]
        assert len(workers) == 2 and all(_alive(w) for w in workers)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 5
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [w for w in workers if _alive(w)]


def test_worker_of_an_already_dead_parent_exits(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from tiling.pool import die_with_parent; die_with_parent({gone.pid}); print('alive')",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert run.returncode == 1 and "alive" not in run.stdout


def test_serve_repairs_a_cut_swap_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cim.cli

    toml = make_project(tmp_path)
    build_project(toml, progress=False)
    out = tmp_path / "output"
    out.rename(tmp_path / ".output.old-999999")
    seen: list[bool] = []

    class Plugin:
        name = "serve"

        def load(self):  # an entry point's load
            return lambda project, **_: seen.append((out / "manifest.json").is_file())

    monkeypatch.setattr(cim.cli, "entry_points", lambda group: [Plugin()])
    assert main(["serve", str(toml)]) == 0
    assert seen == [True]


def test_build_paths_are_what_builds_leave_in_the_project(tmp_path: Path) -> None:
    toml = make_project(tmp_path)
    inputs = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    out = tmp_path / "output"
    assert build_paths(out) == []
    build_project(toml, progress=False)
    dead = _fake_tmp(out, 999997)
    assert build_paths(out) == [out, lock_path(out), dead]
    after = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert sorted(p for p in after if not any(p.is_relative_to(b) for b in build_paths(out))) == (
        inputs
    )
