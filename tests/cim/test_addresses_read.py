"""The read side of the address index in the core: Latin addresses, schema version."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from cim.addresses import SCHEMA_VERSION, AddressIndex, normalize, parse_address
from cim.errors import DatasetIOError
from tiling.addresses import AddressRecords, build_index


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("6 rue de la Platière", {"street": "rue de la platiere", "number": "6"}),
        ("Hämeentie 12", {"street": "hameentie", "number": "12"}),
        ("12 Straße des 17. Juni", {"street": "strasse des 17 juni", "number": "12"}),
        ("Straße des 17. Juni 12", {"street": "strasse des 17 juni", "number": "12"}),
        ("Hauptstraße 5a", {"street": "hauptstrasse", "number": "5a"}),
        ("Drottninggatan 53", {"street": "drottninggatan", "number": "53"}),
        ("via Roma 12", {"street": "via roma", "number": "12"}),
        (
            "6 rue de la Platière, 69001 Lyon",
            {"street": "rue de la platiere", "number": "6", "poi": "69001 lyon"},
        ),
        (
            "Mannerheimintie 5, 00100 Helsinki",
            {"street": "mannerheimintie", "number": "5", "poi": "00100 helsinki"},
        ),
        ("Avenue des Champs-Élysées 10", {"street": "avenue des champs-elysees", "number": "10"}),
        ("725 Fifth Avenue", {"street": "fifth avenue", "number": "725"}),
        ("No. 33 Sichuan Middle Rd", {"street": "sichuan middle road", "number": "33"}),
        (
            "平城市古城區鼓樓東街十二號",
            {"city": "平城市", "district": "古城区", "street": "鼓楼东街", "number": "12"},
        ),
    ],
)
def test_parse_latin_and_accented(text: str, expected: dict[str, str]) -> None:
    assert parse_address(text).to_dict() == expected


def test_accents_fold_on_latin_letters_only() -> None:
    assert normalize("Hämeentie") == normalize("Hameentie") == "hameentie"
    assert normalize("Straße") == normalize("STRASSE") == "strasse"
    assert normalize("Sœur Øresund") == "soeur oresund"
    # kana voicing marks and Chinese characters are not Latin accents
    assert normalize("がっこう") == "がっこう"
    assert normalize("鼓樓東街") == "鼓楼东街"


def _latin_index(path: Path) -> AddressIndex:
    texts = [
        "6 rue de la Platière",
        "8 rue de la Platière",
        "Hämeentie 12",
        "12 Straße des 17. Juni",
    ]
    rec = AddressRecords(
        ids=np.array(["a", "b", "c", "d"], dtype=object),
        lon=np.array([4.83, 4.8301, 24.95, 13.36]),
        lat=np.array([45.76, 45.7601, 60.18, 52.51]),
        full=np.array(texts, dtype=object),
    )
    assert build_index(rec, path).count == 4
    return AddressIndex(path)


@pytest.mark.parametrize(
    ("query", "source"),
    [
        ("6 rue de la Platière", "a"),
        ("6 rue de la platiere", "a"),
        ("8 Rue De La Platiere", "b"),
        ("Hameentie 12", "c"),
        ("Hämeentie 12", "c"),
        ("Straße des 17. Juni 12", "d"),
        ("12 Strasse des 17 Juni", "d"),
    ],
)
def test_search_accented_addresses(tmp_path: Path, query: str, source: str) -> None:
    best = _latin_index(tmp_path / "addresses.sqlite").search(query)[0]
    assert best.source_id == source
    assert best.score == 100.0


def test_index_carries_schema_version(tmp_path: Path) -> None:
    _latin_index(tmp_path / "addresses.sqlite")
    with sqlite3.connect(tmp_path / "addresses.sqlite") as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


@pytest.mark.parametrize("version", [0, SCHEMA_VERSION - 1, SCHEMA_VERSION + 1])
def test_index_of_another_version_is_refused(tmp_path: Path, version: int) -> None:
    path = tmp_path / "addresses.sqlite"
    _latin_index(path).close()
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version={version}")
    con.commit()
    con.close()
    with pytest.raises(DatasetIOError) as err:
        AddressIndex(path)
    message = str(err.value)
    assert "\n" not in message
    assert f"schema version {version}" in message and "rebuild" in message
    assert "cim build --force" in message
    assert str(tmp_path) not in err.value.message
