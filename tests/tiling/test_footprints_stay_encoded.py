"""A city without DEM, addresses or L3 is built without decoding its footprints in the
build process: the repair's WKB and figures carry everything later steps need."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely
from scale_helpers import write_geoparquet

from cim.build import build_project
from cim.model import Buildings, EncodedFootprints


def _city(root: Path) -> Path:
    (root / "data").mkdir(parents=True)
    write_geoparquet(root / "data" / "buildings.parquet", 300, seed=5)
    toml = root / "city.toml"
    toml.write_text(
        '[city]\nname = "c"\n[buildings]\npath = "data/buildings.parquet"\nid = "id"\n'
        "[l2]\nmax_features_per_tile = 40\n",
        encoding="utf-8",
    )
    return toml


def test_no_footprint_is_decoded_and_the_outputs_hold_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[int] = []
    real = EncodedFootprints.decode

    def counted(self: EncodedFootprints) -> np.ndarray:
        decoded.append(len(self))
        return real(self)

    monkeypatch.setattr(EncodedFootprints, "decode", counted)
    toml = _city(tmp_path)
    result = build_project(toml, jobs=1, progress=False)
    assert decoded == []
    assert result.manifest["layers"]["l2"]["buildings"] == 300
    # what the partitions and buildings.parquet hold is the repaired footprints
    out = tmp_path / "output"
    table = pq.read_table(out / "buildings.parquet")
    footprints = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    assert shapely.is_valid(footprints).all() and len(footprints) == 300
    west, south, east, north = result.manifest["extent"]
    assert tuple(shapely.total_bounds(footprints)) == (west, south, east, north)


def test_text_columns_are_converted_once_and_shared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The id, name, use and roof type go to Arrow once (the partitions and the L2 tiles
    take the same arrays): the L2 stage converts none of them again."""
    import tiling.buildings.l2 as l2
    import tiling.buildings.partitions as partitions

    made: list[int] = []
    converted: list[int] = []
    real_text, real_columns = l2._arrow_text, partitions.text_columns

    def counted_columns(b: Buildings) -> dict:
        made.append(len(b))
        return real_columns(b)

    def counted_text(values: np.ndarray) -> object:
        converted.append(len(values))
        return real_text(values)

    monkeypatch.setattr(partitions, "text_columns", counted_columns)
    monkeypatch.setattr("tiling.buildings.stage.text_columns", counted_columns)
    monkeypatch.setattr(l2, "_arrow_text", counted_text)
    toml = _city(tmp_path)
    build_project(toml, jobs=1, progress=False)
    assert made == [300]
    # the L2 stage converted only the address column's listed values (none here)
    assert 300 not in converted, converted
    table = pq.read_table(tmp_path / "output" / "buildings.parquet")
    source = pq.read_table(tmp_path / "data" / "buildings.parquet")
    source_ids = map(str, source.column("id").to_pylist())
    assert sorted(table.column("id").to_pylist()) == sorted(source_ids)
