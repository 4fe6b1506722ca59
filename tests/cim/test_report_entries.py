"""The report's entries: bulk ones kept as columns read and write like a list of dicts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest

from cim import report as report_module
from cim.build import _write_json
from cim.report import BuildReport, Entries, StageReport, entry


def _mixed() -> tuple[Entries, list[dict[str, str]]]:
    """Entries added one at a time, in bulk as columns and as a list, and the same as
    plain dicts."""
    ids = np.array([f"b{i}" for i in range(7)], dtype=object)
    reasons = np.array(["height-from-floors"] * 5 + ["default-height"] * 2, dtype=object)
    details = np.array([f"height missing; {i} floors" for i in range(7)], dtype=object)
    entries = Entries()
    entries.append(entry("a", "missing-id", "row 0"))
    entries.extend_columns(ids, reasons, details)
    entries.extend([entry("c", "z-dropped"), entry(3, "duplicate-id", "made c~1")])
    entries.append(entry("d", "multipolygon"))
    plain = [entry("a", "missing-id", "row 0")]
    plain += [
        {"id": i, "reason": r, "detail": d}
        for i, r, d in zip(ids.tolist(), reasons.tolist(), details.tolist(), strict=True)
    ]
    plain += [entry("c", "z-dropped"), entry(3, "duplicate-id", "made c~1")]
    plain.append(entry("d", "multipolygon"))
    return entries, plain


def test_entries_read_like_the_list_of_dicts() -> None:
    entries, plain = _mixed()
    assert len(entries) == len(plain) == 11
    assert list(entries) == plain
    assert entries == plain and plain == entries and entries != plain[:-1]
    assert [entries[i] for i in range(-11, 11)] == plain[-11:] + plain
    assert entries[2:9] == plain[2:9]
    assert entries + [entry("z", "x")] == [*plain, entry("z", "x")]  # noqa: RUF005
    assert [entry("z", "x")] + entries == [entry("z", "x"), *plain]  # noqa: RUF005
    with pytest.raises(IndexError):
        entries[11]
    assert entries.reason_counts() == {
        "missing-id": 1,
        "height-from-floors": 5,
        "default-height": 2,
        "z-dropped": 1,
        "duplicate-id": 1,
        "multipolygon": 1,
    }
    copied = Entries()
    copied.extend(entries)
    assert copied == plain
    assert not Entries() and Entries() == []


def test_column_blocks_are_checked_for_equal_lengths() -> None:
    ids = np.array(["a", "b"], dtype=object)
    with pytest.raises(ValueError, match="differ in length"):
        Entries().extend_columns(ids, ids[:1], ids)


def test_entries_write_a_chunk_at_a_time_as_the_same_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(report_module, "_CHUNK", 3)  # several chunks per column block
    entries, plain = _mixed()
    assert orjson.loads(entries.json_bytes()) == plain
    assert orjson.loads(Entries().json_bytes()) == []
    assert list(entries) == plain  # iterating chunk by chunk too


def test_build_report_file_lists_column_entries(tmp_path: Path) -> None:
    report = BuildReport()
    stage = report.stage("buildings")
    entries, plain = _mixed()
    stage.repaired = entries
    stage.skip("e", "sliver", "area 0.1 m²")
    assert isinstance(report.to_json(lazy=True)["stages"]["buildings"]["repaired"], Entries)
    # without ``lazy``, lists any JSON encoder takes (a department layer's upload report)
    assert json.loads(json.dumps(report.to_json()))["stages"]["buildings"]["repaired"] == plain
    _write_json(tmp_path / "build-report.json", report.to_json(lazy=True))
    written = orjson.loads((tmp_path / "build-report.json").read_bytes())["stages"]["buildings"]
    assert written["repaired"] == plain
    assert written["repaired_count"] == 11
    assert written["repair_reasons"]["height-from-floors"] == 5
    assert written["skipped"] == [entry("e", "sliver", "area 0.1 m²")]
    assert written["skip_reasons"] == {"sliver": 1}


def test_a_new_stage_report_has_its_own_entries() -> None:
    one, two = StageReport("a"), StageReport("b")
    one.repair("x", "r")
    assert one.repaired == [entry("x", "r")] and two.repaired == []
