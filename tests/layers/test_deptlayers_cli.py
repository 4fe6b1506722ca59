"""``cim layers``: add (each department for itself), list, versions, delete, restore, export."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pyogrio
import pytest
from test_deptlayers_data import gbk_shapefile_zip, gcj_csv

from cim.cli import main


def _project(tmp_path: Path) -> Path:
    path = tmp_path / "city.toml"
    path.write_text('[city]\nname = "测试"\ncrs = "EPSG:4547"\n', encoding="utf-8")
    return path


def test_layers_commands(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    toml = _project(tmp_path)
    assert main(["departments", "add", str(toml), "water", "--name", "水务局"]) == 0
    assert main(["departments", "add", str(toml), "city", "--name", "城管局"]) == 0
    capsys.readouterr()
    shp, _ = gbk_shapefile_zip(tmp_path)
    # the zipped shapefile carries its .prj (EPSG:4547): no --crs needed
    assert (
        main(["layers", "add", str(toml), "--department", "water", str(shp), "--name", "消火栓"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["layer"]["department"] == "water" and out["report"]["written"] == 5
    csv, _ = gcj_csv(tmp_path)
    assert (
        main(
            [
                "layers",
                "add",
                str(toml),
                "--department",
                "city",
                str(csv),
                "--crs",
                "GCJ-02",
                "--name",
                "街道家具",
                "--readable-by",
                "water",
            ]
        )
        == 0
    )
    capsys.readouterr()
    # the project's [city] crs (Gauss-Krüger) is no excuse for reading lon/lat GCJ-02 as metres
    assert main(["layers", "add", str(toml), "--department", "city", str(csv)]) == 3
    assert main(["layers", "add", str(toml), "--department", "nobody", str(csv)]) == 6
    assert (
        main(
            [
                "layers",
                "add",
                str(toml),
                "--department",
                "water",
                str(shp),
                "--name",
                "消火栓",
                "--mode",
                "append",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["layers", "list", str(toml)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].split("\t")[:4] == ["2", "city", "街道家具", "v1"]
    assert "readable by water" in lines[0]
    assert lines[1].split("\t")[:5] == ["1", "water", "消火栓", "v2", "10 features"]
    assert main(["layers", "delete", str(toml), "1"]) == 0
    capsys.readouterr()
    main(["layers", "list", str(toml)])
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert main(["layers", "restore", str(toml), "1", "--version", "1"]) == 0
    capsys.readouterr()
    assert main(["layers", "versions", str(toml), "1"]) == 0
    versions = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [(v[0], v[1]) for v in versions] == [(" 1", "new"), (" 2", "append"), ("*3", "restore")]
    gpkg = tmp_path / "out.gpkg"
    assert main(["layers", "export", str(toml), "1", str(gpkg)]) == 0
    _, table = pyogrio.read_arrow(gpkg)
    assert table.num_rows == 5 and table.column("名称").to_pylist()[0].startswith("消火栓")
    assert main(["layers", "export", str(toml), "1", str(gpkg)]) == 2  # never overwrites
    assert main(["layers", "restore", str(toml), "99"]) == 6


def test_layers_demo_adds_two_departments_layers_once(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`cim layers demo` (scripts/demo.sh): water's hydrants from a GBK shapefile in the
    city's Gauss-Krüger zone, city management's furniture from a GCJ-02 CSV, each
    uploaded by its own department, inside the built city; a second run adds nothing."""
    import shapely

    from layers.config import live_config
    from layers.deptlayers.demo import gauss_kruger_zone
    from layers.deptlayers.store import DeptLayers
    from layers.store import open_store

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
    from fixture_city import write_fixture_output

    toml = tmp_path / "city.toml"
    toml.write_text('[city]\nname = "测试"\n', encoding="utf-8")
    output = write_fixture_output(tmp_path / "output")
    extent = json.loads((output / "manifest.json").read_text(encoding="utf-8"))["extent"]
    assert main(["layers", "demo", str(toml)]) == 0
    assert main(["layers", "demo", str(toml)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[-1] for line in lines] == ["added"] * 2 + ["already there"] * 2
    with zipfile.ZipFile(tmp_path / "demo-layers" / "hydrants.zip") as zf:
        names = zf.namelist()
        prj = zf.read("消火栓.prj").decode()
    assert not any(n.endswith(".cpg") for n in names)
    assert gauss_kruger_zone(113.3) == "EPSG:4547" and gauss_kruger_zone(116.39) == "EPSG:4548"
    zone = gauss_kruger_zone((extent[0] + extent[2]) / 2)
    assert "Gauss_Kruger" in prj or "Transverse_Mercator" in prj
    store = open_store(live_config(toml).store)
    try:
        layers = DeptLayers(store)
        listed = {x.name: x for x in layers.list(None)}
        assert {x.department for x in listed.values()} == {"water", "cityadmin"}
        assert listed["消火栓"].department == "water" and listed["消火栓"].feature_count == 300
        assert layers.report(listed["消火栓"])["crs"] == zone  # read from the .prj
        rows, _ = layers.features(listed["街道家具"])
        names = [json.loads(p)["名称"] for p in rows.properties]
        assert names[0] == "街道家具001"  # UTF-8 text kept; GCJ-02 turned to WGS84 inside
        xy = shapely.get_coordinates(rows.geometry)
        w, s, e, n = extent
        assert (xy[:, 0] > w).all() and (xy[:, 0] < e).all()
        assert (xy[:, 1] > s).all() and (xy[:, 1] < n).all()
        hyd, _ = layers.features(listed["消火栓"])
        assert json.loads(hyd.properties[0])["名称"] == "消火栓001号"  # GBK detected
    finally:
        store.close()
