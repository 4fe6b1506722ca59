"""Removing the previous output: off the build's critical path, and crash-safe."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

import cim.output
from cim.build import build_project
from cim.errors import CimError
from cim.output import (
    MARKER,
    leftovers,
    recover,
    remove_in_background,
    swap,
    temp_folder,
    written_by_cim,
)


def _cim_folder(path: Path, files: int = 20) -> Path:
    path.mkdir(parents=True)
    (path / MARKER).write_text("cim\n", encoding="utf-8")
    (path / "tiles").mkdir()
    for i in range(files):
        (path / "tiles" / f"{i}.glb").write_bytes(b"x" * 100)
        (path / f"{i}.json").write_text("{}", encoding="utf-8")
    return path


def test_swap_leaves_the_previous_output_to_remove_aside(tmp_path: Path) -> None:
    out = _cim_folder(tmp_path / "out")
    (out / "old.txt").write_text("old", encoding="utf-8")
    work = temp_folder(out)
    (work / "new.txt").write_text("new", encoding="utf-8")
    previous = swap(work, out, remove=False)
    assert previous is not None and (previous / "old.txt").read_text() == "old"
    assert (out / "new.txt").read_text() == "new" and not (out / "old.txt").exists()
    join = remove_in_background(previous)
    join()
    assert not previous.exists()
    assert leftovers(out) == ([], [])


def test_first_swap_has_no_previous_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    work = temp_folder(out)
    assert swap(work, out, remove=False) is None
    remove_in_background(None)()  # nothing to wait for
    assert (out / MARKER).is_file()


def test_background_removal_refuses_a_folder_cim_did_not_write(tmp_path: Path) -> None:
    foreign = tmp_path / "data"
    foreign.mkdir()
    (foreign / "survey.csv").write_text("precious", encoding="utf-8")
    join = remove_in_background(foreign)
    with pytest.raises(CimError, match="did not write"):
        join()
    assert (foreign / "survey.csv").read_text() == "precious"


def test_a_removal_cut_short_stays_recognisably_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _cim_folder(tmp_path / "out")
    old = _cim_folder(tmp_path / f".out.old-{os.getpid() + 1}")
    real_unlink, calls = os.unlink, []

    def dying_unlink(path: str | Path, *args: object, **kwargs: object) -> None:
        calls.append(path)
        if len(calls) > 5:  # the process "dies" part way through
            raise OSError("killed")
        real_unlink(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cim.output.os, "unlink", dying_unlink)
    with pytest.raises(OSError, match="killed"):
        remove_in_background(old)()
    monkeypatch.undo()
    assert old.exists() and written_by_cim(old)  # the marker went last, so not yet
    assert recover(out) and not old.exists()
    assert (out / MARKER).is_file()


def test_build_removes_the_previous_output_on_a_thread_before_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = [[121.5, 31.24], [121.5001, 31.24], [121.5001, 31.2401], [121.5, 31.2401]]
    feature = {
        "type": "Feature",
        "properties": {"id": "b0", "height": 12},
        "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
    }
    (tmp_path / "b.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": [feature]}), encoding="utf-8"
    )
    toml = tmp_path / "city.toml"
    toml.write_text(
        '[city]\nname = "t"\n[output]\ndir = "out"\n[buildings]\npath = "b.geojson"\nid = "id"\n',
        encoding="utf-8",
    )
    build_project(toml, progress=False)
    first = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    removed_by: list[tuple[str, bool]] = []
    real = cim.output._remove_ours

    def spy(folder: Path) -> None:
        removed_by.append((threading.current_thread().name, written_by_cim(folder)))
        real(folder)

    monkeypatch.setattr(cim.output, "_remove_ours", spy)
    build_project(toml, progress=False, force=True)
    assert removed_by == [("cim-remove-previous", True)]
    # joined before the build returned: no leftover, and the new output in place
    assert leftovers(tmp_path / "out") == ([], [])
    second = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert second["built_at"] >= first["built_at"]
