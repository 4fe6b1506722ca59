"""Corpus: text encodings (GBK/GB18030/BOM/latin-1) never reach the tiles as byte soup."""

from __future__ import annotations

import pytest
from corpus_kit import (
    Project,
    expect_built,
    expect_error,
    feature,
    polygon,
    square,
    wkt_polygon,
)

IDS = [f"b{k}" for k in range(8)]
NAMES = [f"江岸区第{k}号楼" for k in range(8)]


def _csv(project: Project, names: list[str], encoding: str, bom: bool = False, more: str = ""):
    rows = [(f"b{k}", wkt_polygon(square(k)), 10 + k, names[k]) for k in range(len(names))]
    project.csv("data/b.csv", ["id", "wkt", "height", "name"], rows, encoding=encoding, bom=bom)
    project.toml(f'[buildings]\npath = "data/b.csv"\nid = "id"\ncrs = "EPSG:4326"\n{more}')


def _names(features: dict) -> dict[str, str]:
    return {bid: f["name"] for bid, f in features.items()}


@pytest.mark.parametrize(
    "encoding,bom,names",
    [
        ("gbk", False, NAMES),
        ("gb18030", False, [f"{n}𠀀䶮" for n in NAMES]),  # outside GBK: 4-byte GB18030
        ("utf-8", True, NAMES),
        ("latin-1", False, [f"{k} rue de la Platière" for k in range(8)]),
        ("cp1252", False, [f"Hämeentie {k}" for k in range(8)]),
    ],
    ids=["gbk-undeclared", "gb18030-undeclared", "utf8-bom", "latin1-undeclared", "cp1252"],
)
def test_csv_encoding_detected(project: Project, encoding: str, bom: bool, names: list[str]):
    _csv(project, names, encoding, bom)
    features = expect_built(project, project.build(), IDS)
    assert _names(features) == dict(zip(IDS, names, strict=True))


def test_one_gbk_row_after_many_ascii_rows(project: Project) -> None:
    names = [f"building {k}" for k in range(29)] + ["江岸区第29号楼"]
    rows = [(f"b{k}", wkt_polygon(square(k)), 10, names[k]) for k in range(30)]
    project.csv("data/b.csv", ["id", "wkt", "height", "name"], rows, encoding="gbk")
    project.toml('[buildings]\npath = "data/b.csv"\nid = "id"\ncrs = "EPSG:4326"\n')
    features = expect_built(project, project.build(), [f"b{k}" for k in range(30)])
    assert features["b29"]["name"] == "江岸区第29号楼"


@pytest.mark.parametrize("declared", ["GBK", "gb2312", "cp936", "GB18030"])
def test_csv_encoding_declared(project: Project, declared: str) -> None:
    _csv(project, NAMES, "gbk", more=f'encoding = "{declared}"\n')
    features = expect_built(project, project.build(), IDS)
    assert _names(features) == dict(zip(IDS, NAMES, strict=True))


def test_latin1_declared(project: Project) -> None:
    names = [f"{k} rue de la Platière" for k in range(8)]
    _csv(project, names, "latin-1", more='encoding = "latin-1"\n')
    features = expect_built(project, project.build(), IDS)
    assert _names(features) == dict(zip(IDS, names, strict=True))


def test_declared_utf8_on_a_gbk_file(project: Project) -> None:
    _csv(project, NAMES, "gbk", more='encoding = "UTF-8"\n')
    expect_error(project.build(), {4, 5}, r"b\.csv.*(encoding|UTF-8|utf-8)")


def _shapefile(project: Project, cpg: bool, ldid: int | None, cpg_text: str | None = None):
    feats = [feature(f"b{k}", polygon(square(k)), height=10.0, name=NAMES[k]) for k in range(8)]
    shp = project.shapefile("data/b.shp", feats, encoding="GBK", cpg=cpg)
    if ldid is not None:
        dbf = shp.with_suffix(".dbf")
        raw = bytearray(dbf.read_bytes())
        raw[29] = ldid
        dbf.write_bytes(bytes(raw))
    if cpg_text is not None:
        shp.with_suffix(".cpg").write_text(cpg_text)
    project.toml('[buildings]\npath = "data/b.shp"\nid = "id"\n')


@pytest.mark.parametrize(
    "cpg,ldid,cpg_text",
    [(False, 0, None), (False, 0x4D, None), (True, None, "936"), (True, None, "GBK")],
    ids=["no-cpg-no-ldid", "no-cpg-ldid-936", "cpg-936", "cpg-gbk"],
)
def test_gbk_shapefile(project: Project, cpg: bool, ldid: int | None, cpg_text: str | None):
    _shapefile(project, cpg, ldid, cpg_text)
    features = expect_built(project, project.build(), IDS)
    assert _names(features) == dict(zip(IDS, NAMES, strict=True))
