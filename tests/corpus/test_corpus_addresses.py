"""Corpus: address points: accents, GBK, far away and broken points; buildings untouched."""

from __future__ import annotations

import sqlite3
import unicodedata

from corpus_kit import (
    BUILDINGS_TOML,
    LAT0,
    LON0,
    Project,
    centre,
    expect_built,
    good_features,
)

IDS = [f"b{k}" for k in range(8)]
ADDRESSES = (
    '[addresses]\npath = "data/a.csv"\nid = "id"\nlon = "lon"\nlat = "lat"\nfull = "address"\n'
)


def _project(project: Project, texts: list[str], encoding: str = "utf-8", points=None) -> None:
    project.geojson("data/b.geojson", good_features())
    points = points or [centre(k) for k in range(len(texts))]
    rows = [(f"a{k}", p[0], p[1], t) for k, (p, t) in enumerate(zip(points, texts, strict=True))]
    project.csv("data/a.csv", ["id", "lon", "lat", "address"], rows, encoding=encoding)
    project.toml(BUILDINGS_TOML.format(path="data/b.geojson", more="") + ADDRESSES)


def _rows(project: Project) -> dict[str, dict]:
    with sqlite3.connect(project.output / "addresses.sqlite") as con:
        con.row_factory = sqlite3.Row
        rows = con.execute(
            "SELECT a.*, s.name AS street_name FROM addresses a "
            "LEFT JOIN streets s ON s.id = a.street_id"
        ).fetchall()
    return {r["source_id"]: dict(r) for r in rows}


def fold(text: str) -> str:
    """Case and accents folded: the index may store streets normalised for search."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _counts_add_up(project: Project) -> None:
    st = project.report()["addresses"]
    assert st["read"] == st["written"] + st["skipped_count"], st


def test_accented_latin_addresses_are_parsed(project: Project) -> None:
    texts = ["6 rue de la Platière", "Hämeentie 12", "12 Rue Émile Zola", "Åkersgata 3"]
    _project(project, texts)
    expect_built(project, project.build(), IDS)
    _counts_add_up(project)
    rows = _rows(project)
    expected = {
        "a0": ("6", "Platière"),
        "a1": ("12", "Hämeentie"),
        "a2": ("12", "Émile Zola"),
        "a3": ("3", "Åkersgata"),
    }
    for aid, (number, street) in expected.items():
        assert rows[aid]["number"] == number, rows[aid]
        assert fold(street) in fold(rows[aid]["street_name"] or ""), rows[aid]
        assert rows[aid]["building_id"] == f"b{aid[1:]}"


def test_gbk_addresses_without_encoding(project: Project) -> None:
    texts = [f"武汉市江岸区中山大道{k + 1}号" for k in range(8)]
    _project(project, texts, encoding="gbk")
    features = expect_built(project, project.build(), IDS)
    _counts_add_up(project)
    rows = _rows(project)
    for k in range(8):
        assert rows[f"a{k}"]["number"] == f"{k + 1}号" or rows[f"a{k}"]["number"] == str(k + 1)
        assert "中山大道" in (rows[f"a{k}"]["street_name"] or "")
    assert "中山大道1号" in features["b0"]["address"]


def test_points_far_away(project: Project) -> None:
    texts = [f"中山大道{k + 1}号" for k in range(6)]
    points = [centre(k) for k in range(4)] + [(LON0 + 10, LAT0 + 5), (LON0 - 20, LAT0 - 10)]
    _project(project, texts, points=points)
    expect_built(project, project.build(), IDS)
    _counts_add_up(project)
    rows = _rows(project)
    assert rows["a0"]["building_id"] == "b0"
    for far in ("a4", "a5"):
        assert far in rows or far in {r["id"] for r in project.report()["addresses"]["skipped"]}
        if far in rows:
            assert rows[far]["building_id"] in (None, "")


def test_broken_points_are_skipped_with_a_reason(project: Project) -> None:
    texts = [f"中山大道{k + 1}号" for k in range(7)]
    points = [centre(k) for k in range(4)] + [("", ""), ("nan", "nan"), ("abc", "31")]
    _project(project, texts, points=points)
    expect_built(project, project.build(), IDS)
    _counts_add_up(project)
    rows = _rows(project)
    assert {"a0", "a1", "a2", "a3"} <= set(rows)
    skipped = {r["id"] for r in project.report()["addresses"]["skipped"]}
    assert {"a4", "a5", "a6"} <= skipped | set(rows)
    assert {"a4", "a5", "a6"} & set(rows) == set()
