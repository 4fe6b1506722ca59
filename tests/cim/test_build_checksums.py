"""Input checksums: read once per build, never stale after a change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import cim.build as build
from cim.build import file_checksum


def test_a_file_is_read_once_while_unchanged_and_again_after_a_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build._content_checksum.cache_clear()
    path = tmp_path / "in.csv"
    path.write_bytes(b"id,height\n1,10\n")
    opened: list[str] = []
    real_open = open
    monkeypatch.setattr(
        "builtins.open", lambda p, *a, **k: opened.append(str(p)) or real_open(p, *a, **k)
    )
    first = file_checksum(path)
    assert file_checksum(path) == first and opened.count(str(path)) == 1
    path.write_bytes(b"id,height\n1,12\n")  # same size
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert file_checksum(path) != first and opened.count(str(path)) == 2
    assert file_checksum(tmp_path / "gone.csv") == "missing"
