"""Addresses on real data: the sample city 平城 and the Shanghai Lujiazui OSM extract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely

from cim.addresses import AddressIndex
from cim.config import load_project
from cim.model import Buildings
from cim.report import BuildReport, StageReport
from cim.stages import BuildContext
from tiling.addresses import AddressesConfig, build_index
from tiling.addresses.reader import read_addresses
from tiling.addresses.stage import AddressStage

SHANGHAI = Path("/work/shared/realdata/shanghai")
REPO = Path(__file__).resolve().parents[2]


def _shanghai_dir() -> Path:
    for d in (REPO / "sample_data" / "shanghai", SHANGHAI):
        if (d / "shanghai_lujiazui_addresses_osm.csv").is_file():
            return d
    pytest.skip("Shanghai OSM extract not available")


# --- sample city -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_index(sample_city: Path, tmp_path_factory: pytest.TempPathFactory):
    sample = pytest.importorskip("cim.sample")
    prepare = pytest.importorskip("tiling.buildings.prepare")
    project = load_project(sample_city)
    buildings = prepare.read_buildings(project, StageReport("buildings"))
    work = tmp_path_factory.mktemp("sample_addresses")
    ctx = BuildContext(project=project, workdir=work, report=BuildReport(), progress=False)
    ctx.artifacts["buildings"] = buildings
    AddressStage().run(ctx)
    return sample, buildings, ctx, AddressIndex(work / "addresses.sqlite")


def test_sample_known_address(sample_index) -> None:
    sample, buildings, ctx, idx = sample_index
    rep = ctx.report.stages["addresses"]
    assert rep.written > 100
    assert rep.counts["attached"] >= 0.95 * rep.written - 10  # park POIs have no building
    for q in (
        sample.KNOWN_ADDRESS,
        "平城市古城區鼓樓東街十二號",
        "鼓楼东街12号",
        "古城区 鼓楼东街 １２号",
        "平城市鼓楼东街12号3栋2单元",
        "鼓楼东街12号 平城市古城区",
        "平城市古城区鼓楼冬街12号",  # typo
        "火情：平城区鼓楼东街12号",  # the command center's message (wrong district)
    ):
        c = idx.search(q, limit=5)
        assert c, q
        assert c[0].building_id == sample.KNOWN_BUILDING_ID, (q, c[0])
    c = idx.search(sample.KNOWN_ADDRESS, limit=1)[0]
    assert c.score == 100.0
    i = int(np.flatnonzero(buildings.ids == sample.KNOWN_BUILDING_ID)[0])
    assert sample.KNOWN_ADDRESS in tuple(buildings.addresses[i])
    assert c.height == pytest.approx(buildings.base[i] + buildings.height[i])
    assert (
        shapely.contains_xy(buildings.footprints[i], c.lon, c.lat)
        or shapely.distance(buildings.footprints[i], shapely.Point(c.lon, c.lat)) < 3e-4
    )
    r = idx.reverse(c.lon, c.lat, limit=3)
    assert r[0].building_id == sample.KNOWN_BUILDING_ID
    assert idx.building_at(c.lon, c.lat)[0] == sample.KNOWN_BUILDING_ID


def test_sample_all_addresses_find_themselves(sample_index) -> None:
    _sample, _buildings, _ctx, idx = sample_index
    rows = (
        idx._con()
        .execute("SELECT id, address FROM addresses ORDER BY (id * 7919) % 1009 LIMIT 300")
        .fetchall()
    )
    wrong = []
    for rid, address in rows:
        got = idx.search(address, limit=10)
        if not got or got[0].score < 100.0 or rid not in [c.id for c in got if c.score == 100]:
            wrong.append(address)
    assert len(wrong) <= 0.01 * len(rows), wrong[:10]


# --- Shanghai OSM extract -------------------------------------------------------------


@pytest.fixture(scope="module")
def shanghai(tmp_path_factory: pytest.TempPathFactory):
    import pyogrio

    d = _shanghai_dir()
    cfg = AddressesConfig(
        path=d / "shanghai_lujiazui_addresses_osm.csv",
        lon="lon",
        lat="lat",
        id="id",
        street="addr_street",
        number="addr_housenumber",
        poi="name",
        default_city="上海市",
    )
    rec = read_addresses(cfg)
    meta, table = pyogrio.read_arrow(d / "shanghai_lujiazui_buildings_osm.gpkg")
    fp = shapely.from_wkb(np.asarray(table.column(meta["geometry_name"]).to_pylist(), dtype=object))
    n = len(fp)
    height = np.nan_to_num(np.asarray(table.column("height").to_pylist(), dtype=float), nan=12.0)
    b = Buildings(
        ids=np.array([f"W{i}" for i in table.column("id").to_pylist()], dtype=object),
        footprints=fp,
        height=height,
        floors=np.full(n, np.nan),
        base=np.full(n, 8.0),
        name=np.array([v or "" for v in table.column("name").to_pylist()], dtype=object),
        use=np.full(n, "", dtype=object),
        roof_type=np.full(n, "", dtype=object),
    )
    path = tmp_path_factory.mktemp("shanghai") / "addresses.sqlite"
    res = build_index(rec, path, buildings=b, match_distance=30.0, default_city="上海市")
    return rec, b, res, AddressIndex(path)


def test_shanghai_build(shanghai) -> None:
    rec, b, res, _idx = shanghai
    assert len(rec) == 164
    assert res.count + len(res.skipped) == 164
    assert all(reason == "empty-address" for _i, reason, _d in res.skipped)
    assert res.attached >= 0.9 * res.count
    assert res.inside > res.nearest
    assert sum(len(a) for a in b.addresses) >= res.attached - len(res.ambiguous)


@pytest.mark.parametrize(
    ("query", "street", "number"),
    [
        ("陆家嘴环路1388号", "陆家嘴环路", "1388"),
        ("上海市浦东新区陆家嘴环路1388號", "陆家嘴环路", "1388"),
        ("陸家嘴環路一千三百八十八號", "陆家嘴环路", "1388"),
        ("陆家咀环路1388号", "陆家嘴环路", "1388"),  # typo
        ("上海 陆家嘴环路 １３８８", "陆家嘴环路", "1388"),
        ("中山东二路22号", "中山东2路", "22"),
        ("浦东南路100号", "浦东南路", "100"),
        ("张杨路628弄4-7号", "张杨路", "628弄4-7"),
        ("中山东二路505号", "中山东2路", "505"),  # stored as 505號
        ("No. 8 Lujiazui Ring Road", "lujiazui ring road", "8"),
        ("Fucheng Rd 33", "fucheng road", "33"),
        ("33 Sichuan Middle Road", "四川中路", "33"),  # no Latin street: same number only
    ],
)
def test_shanghai_search(shanghai, query: str, street: str, number: str) -> None:
    idx = shanghai[3]
    got = idx.search(query, limit=5)
    assert got
    if street.isascii() or street in query or "陸" in query or "咀" in query or "東" in query:
        assert got[0].components["street"] == street, got[0]
        assert got[0].components["number"] == number
        assert got[0].building_id is not None
        assert got[0].height is not None and got[0].height > 8.0


def test_shanghai_every_point_finds_itself(shanghai) -> None:
    _rec, _b, _res, idx = shanghai
    rows = idx._con().execute("SELECT id, address FROM addresses").fetchall()
    for rid, address in rows:
        got = idx.search(address, limit=10)
        assert rid in [c.id for c in got], address


def test_shanghai_reverse(shanghai) -> None:
    idx = shanghai[3]
    got = idx.reverse(121.4972233, 31.2426598, limit=3)
    assert got[0].address == "陆家嘴环路1388号"
    assert got[0].distance == pytest.approx(0.0, abs=0.5)
    assert got[0].building_id is not None
    assert idx.building_at(121.4972233, 31.2426598)[0] == got[0].building_id
    assert json.dumps([c.to_json() for c in got], ensure_ascii=False)
