"""cim.encoding: one rule tells UTF-8, GBK/GB18030 and Latin-1/CP1252 text apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely

from cim import encoding as enc
from cim.errors import InputDataError
from cim.readers import read_features

CHINESE = ["江岸区第3号楼", "北京", "A座", "B栋3单元", "Room A座B", "鼓楼大街𠀀䶮"]
LATIN = ["6 rue de la Platière", "Hämeentie 12", "Müller", "École Sainte-Thérèse", "ÉCOLE"]


def _csv(tmp_path: Path, names: list[str], codec: str, bom: bool = False) -> Path:
    rows = "".join(f"{k},{name}\n" for k, name in enumerate(names))
    path = tmp_path / "t.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + f"id,name\n{rows}".encode(codec))
    return path


@pytest.mark.parametrize("name", CHINESE)
def test_chinese_reads_as_gb18030(tmp_path: Path, name: str) -> None:
    assert enc.detect_text_encoding(_csv(tmp_path, [name], "gb18030")) == "GB18030"


@pytest.mark.parametrize("name", LATIN)
def test_latin_reads_as_cp1252_though_gb18030_decodes_it(tmp_path: Path, name: str) -> None:
    misread = name.encode("cp1252").decode("gb18030")  # the trap: this decodes too
    path = _csv(tmp_path, [name], "cp1252")
    assert enc.detect_text_encoding(path) == "CP1252", misread


def test_utf8_and_bom(tmp_path: Path) -> None:
    assert enc.detect_text_encoding(_csv(tmp_path, CHINESE, "utf-8")) == "UTF-8"
    assert enc.detect_text_encoding(_csv(tmp_path, LATIN, "utf-8", bom=True)) == "UTF-8-SIG"


def test_latin1_bytes_cp1252_lacks_fall_back_to_latin1(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes("id,name\n1,Müller\n".encode("latin-1") + b"2,x\x81y\n")
    assert enc.detect_text_encoding(path) == "latin-1"


def test_gbk_with_a_broken_byte_is_refused_not_read_as_latin(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes("id,name\n1,江岸区第3号楼\n".encode("gbk") + b"2,\xff\n")
    with pytest.raises(InputDataError, match="neither UTF-8, GBK/GB18030 nor Latin-1"):
        enc.detect_text_encoding(path)
    assert enc.detect_text_encoding(path, strict=False) is None


def test_judges_the_whole_file_across_blocks() -> None:
    """A character cut by a block boundary still decodes and samples whole."""
    raw = ("id,name\n" + "x,y\n" * 1000 + "1,江岸区第3号楼\n").encode("gbk")
    cut = raw.index("岸".encode("gbk")) + 1  # inside a two-byte character
    scan = enc.scan_text([raw[:cut], raw[cut:]])
    assert not scan.decodes("utf-8") and scan.decodes("gb18030")
    assert "江岸区第3号楼".encode("gbk") in scan.sample.split(b"\n")
    assert enc.choose_encoding(scan) == "GB18030"


def test_error_offset_counts_earlier_blocks() -> None:
    scan = enc.scan_text([b"a" * 100, b"b\xffc"], ("utf-8",))
    assert "at byte 101" in scan.errors["utf-8"].reason


def test_latin_csv_reads_correctly(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    text = "id,wkt,name\n" + "".join(
        f'{k},"POINT ({k} 0)",{name}\n' for k, name in enumerate(LATIN)
    )
    path.write_bytes(text.encode("cp1252"))
    table = read_features(path)
    assert table.encoding == "CP1252"
    assert list(table.column("name")) == LATIN


def test_cp1252_shapefile_without_cpg(tmp_path: Path) -> None:
    shp = tmp_path / "latin.shp"
    geoms = np.array(shapely.to_wkb([shapely.box(k, 0, k + 1, 1) for k in range(3)]), dtype=object)
    names = np.array(LATIN[:3], dtype=object)
    pyogrio.raw.write(
        shp,
        geoms,
        [names],
        ["name"],
        driver="ESRI Shapefile",
        geometry_type="Polygon",
        crs="EPSG:4326",
        encoding="CP1252",
    )
    shp.with_suffix(".cpg").unlink(missing_ok=True)
    raw = bytearray(shp.with_suffix(".dbf").read_bytes())
    raw[29] = 0  # no language driver id either
    shp.with_suffix(".dbf").write_bytes(bytes(raw))
    assert enc.detect_shapefile_encoding(shp) == "CP1252"
    assert list(read_features(shp).column("name")) == list(names)


def test_vectorised_word_sample_matches_the_word_rule() -> None:
    """Words (maximal runs of bytes >= 0x30 holding a byte > 0x7F) and Latin runs, found
    with numpy, are exactly what the rule's regular expressions find."""
    import random
    import re

    word = re.compile(rb"(?<![\x30-\xff])[\x30-\x7f]*+[\x80-\xff][\x30-\xff]*")
    high_run = re.compile(rb"[\x80-\xff]+")
    rng = random.Random(5)
    alphabet = [b" ", b",", b"a", b"1", b"\x80", b"\xc9", b"\xff", b"0", b"/", b"\x7f", b"\n"]
    for _ in range(3000):
        text = b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        stop = rng.randint(0, len(text))
        assert enc._words(text, stop) == word.findall(text, 0, stop), (text, stop)
        runs = [len(r) for r in high_run.findall(text)]
        latin = sum(runs) > 0 and sum(n for n in runs if n >= 3) * 2 <= sum(runs)
        assert enc.looks_latin(text) == latin, text
