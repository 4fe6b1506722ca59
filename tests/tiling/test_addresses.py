"""Address normalisation, parsing, index build, search, reverse, join, stage."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
import shapely

from cim.addresses import AddressIndex, Candidate, normalize, parse_address
from cim.addresses.normalize import chinese_numerals_to_digits
from cim.config import load_project
from cim.errors import ConfigError, InputDataError, NotFoundError
from cim.model import Buildings
from cim.report import BuildReport
from cim.stages import BuildContext, Stage
from tiling.addresses import AddressesConfig, AddressRecords, build_index
from tiling.addresses.attach import INSIDE, NEAREST, UNMATCHED, attach_points
from tiling.addresses.stage import AddressStage
from tiling.addresses.synthetic import generate_addresses, make_variants, to_chinese_numeral

# --- normalisation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("平城市古城区鼓楼东街12号", "平城市古城区鼓楼东街12号"),
        ("平城市 古城區 鼓樓東街 十二號", "平城市古城区鼓楼东街12号"),
        ("鼓楼东街１２号", "鼓楼东街12号"),  # full-width digits
        ("鼓楼东街　12　号", "鼓楼东街12号"),  # ideographic spaces
        ("鼓楼东街，12号。", "鼓楼东街12号"),
        ("鼓楼东街12#", "鼓楼东街12号"),
        ("二〇三室", "203室"),
        ("一百零五号", "105号"),
        ("二十号", "20号"),
        ("No. 33, Sichuan Middle Rd", "33 sichuan middle road"),
        ("Lujiazui Ring Road No. 8", "lujiazui ring road 8"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalize(text: str | None, expected: str) -> None:
    assert normalize(text) == expected


def test_chinese_numerals_round_trip() -> None:
    for n in (1, 9, 10, 12, 20, 99, 100, 105, 110, 203, 1000, 1388, 2005):
        for style in ("units", "digits"):
            assert chinese_numerals_to_digits(to_chinese_numeral(n, style)) == str(n)


def test_normalize_is_idempotent() -> None:
    for t in ("平城市 古城區 鼓樓東街 十二號3棟2單元501室", "No. 8 Lujiazui Ring Rd, Pudong"):
        once = normalize(t)
        assert normalize(once) == once


def test_parse_full_hierarchy() -> None:
    c = parse_address("江南省青川市古城区鼓楼东街12号3栋2单元501室")
    assert c.to_dict() == {
        "province": "江南省",
        "city": "青川市",
        "district": "古城区",
        "street": "鼓楼东街",
        "number": "12",
        "building": "3",
        "unit": "2",
        "room": "501",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "上海市浦东新区陆家嘴环路1388号",
            {"city": "上海市", "district": "浦东新区", "street": "陆家嘴环路", "number": "1388"},
        ),
        ("张杨路628弄4-7号", {"street": "张杨路", "number": "628弄4-7"}),
        ("中山东二路22号", {"street": "中山东2路", "number": "22"}),
        (
            "鼓楼东街12号3-2-501",
            {"street": "鼓楼东街", "number": "12", "building": "3", "unit": "2", "room": "501"},
        ),
        ("鼓楼东街12号东方大厦", {"street": "鼓楼东街", "number": "12", "poi": "东方大厦"}),
        (
            "平城市古城区鼓楼东街12",
            {"city": "平城市", "district": "古城区", "street": "鼓楼东街", "number": "12"},
        ),
        ("新市路12号", {"street": "新市路", "number": "12"}),
        (
            "鼓楼东街12号院3号楼2单元",
            {"street": "鼓楼东街", "number": "12", "building": "3", "unit": "2"},
        ),
        ("鼓楼东街十二号楼", {"street": "鼓楼东街", "number": "12"}),
        ("中山东一路15甲", {"street": "中山东1路", "number": "15甲"}),
        ("东方明珠广播电视塔", {"poi": "东方明珠广播电视塔"}),
        ("No. 33 Sichuan Middle Road", {"street": "sichuan middle road", "number": "33"}),
        (
            "8 Lujiazui Ring Rd, Pudong District",
            {"street": "lujiazui ring road", "number": "8", "district": "pudong district"},
        ),
    ],
)
def test_parse_examples(text: str, expected: dict[str, str]) -> None:
    assert parse_address(text).to_dict() == expected


# --- index on a small synthetic city -------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory):
    addrs, lon, lat = generate_addresses(20_000, seed=3)
    rec = AddressRecords(
        ids=np.array([str(a.index) for a in addrs], dtype=object),
        lon=lon,
        lat=lat,
        full=np.array([a.full() for a in addrs], dtype=object),
    )
    path = tmp_path_factory.mktemp("addr") / "addresses.sqlite"
    res = build_index(rec, path)
    assert res.count == len(addrs)
    return addrs, lon, lat, AddressIndex(path)


def test_variants_accuracy(synthetic) -> None:
    addrs, _lon, _lat, idx = synthetic
    variants = make_variants(addrs, 600, seed=5)
    top1 = top5 = 0
    for q, truth, _kind in variants:
        cands = idx.search(q, limit=5)
        assert all(0.0 <= c.score <= 100.0 for c in cands)
        got = [c.source_id for c in cands]
        top1 += bool(got) and got[0] == str(truth)
        top5 += str(truth) in got
    assert top1 / len(variants) >= 0.95
    assert top5 / len(variants) >= 0.99


def test_search_ranks_house_before_flats_and_scores(synthetic) -> None:
    addrs, _lon, _lat, idx = synthetic
    a = next(a for a in addrs if not a.building)
    cands = idx.search(a.full(), limit=3)
    assert cands[0].source_id == str(a.index)
    assert cands[0].score == 100.0
    assert all(x.score <= cands[0].score for x in cands)
    flat = next(a for a in addrs if a.building and a.room)
    cands = idx.search(flat.full(), limit=3)
    assert cands[0].source_id == str(flat.index)
    assert cands[0].components["room"] == str(flat.room)


def test_search_street_only_and_unknown_number(synthetic) -> None:
    addrs, _lon, _lat, idx = synthetic
    a = addrs[7]
    got = idx.search(a.street, limit=5)
    assert got and all(c.components["street"] == a.street for c in got)
    got = idx.search(f"{a.city}{a.street}9999号", limit=3)
    assert got and got[0].components["street"] == a.street
    assert got[0].score < 100.0


def test_search_empty_and_garbage(synthetic) -> None:
    idx = synthetic[3]
    assert idx.search("") == []
    assert idx.search("   ，。") == []
    assert isinstance(idx.search("zzzz qqqq"), list)
    assert idx.search(None) == []  # type: ignore[arg-type]
    assert isinstance(idx.search("鼓楼东街12号" * 100, limit=10**9), list)
    assert idx.reverse(float("nan"), 40.0) == []


def test_candidate_json(synthetic) -> None:
    addrs, _lon, _lat, idx = synthetic
    c = idx.search(addrs[0].full(), limit=1)[0]
    assert isinstance(c, Candidate)
    with pytest.raises(AttributeError):
        c.score = 1.0  # type: ignore[misc]
    d = json.loads(json.dumps(c.to_json(), ensure_ascii=False))
    assert d["address"] == addrs[0].full()
    assert set(d) >= {"score", "components", "lon", "lat", "height", "building_id"}


def test_reverse(synthetic) -> None:
    _addrs, lon, lat, idx = synthetic
    i = 123
    cands = idx.reverse(float(lon[i]), float(lat[i]), limit=5)
    assert cands[0].source_id == str(i)
    assert cands[0].distance == pytest.approx(0.0, abs=0.01)
    assert [c.distance for c in cands] == sorted(c.distance for c in cands)
    assert len(cands) == 5
    # far away from everything
    assert idx.reverse(0.0, 0.0) == []


def test_reverse_matches_brute_force(synthetic) -> None:
    _addrs, lon, lat, idx = synthetic
    rng = np.random.default_rng(1)
    for _ in range(20):
        x = 116.0 + rng.random() * 0.5
        y = 39.6 + rng.random() * 0.5
        got = idx.reverse(x, y, limit=3)
        dx = np.radians(lon - x) * np.cos(np.radians(y)) * 6371008.8
        dy = np.radians(lat - y) * 6371008.8
        best = np.argsort(np.hypot(dx, dy))[:3]
        assert [c.source_id for c in got] == [str(b) for b in best]


def test_threads_share_one_index(synthetic) -> None:
    addrs, _lon, _lat, idx = synthetic
    errors: list[BaseException] = []
    results: dict[int, str] = {}

    def work(k: int) -> None:
        try:
            for j in range(30):
                a = addrs[(k * 97 + j * 13) % len(addrs)]
                c = idx.search(a.full(), limit=1)
                assert c and c[0].source_id == str(a.index)
            results[k] = threading.current_thread().name
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 6


def test_index_is_read_only(synthetic) -> None:
    idx = synthetic[3]
    with pytest.raises(sqlite3.OperationalError):
        idx._con().execute("DELETE FROM addresses")


def test_missing_index() -> None:
    with pytest.raises(NotFoundError):
        AddressIndex("/nonexistent/addresses.sqlite")


# --- structured parts, defaults, skips -----------------------------------------------


def test_structured_parts_defaults_and_skips(tmp_path: Path) -> None:
    rec = AddressRecords(
        ids=np.array(["a", "b", "c", "d", "e"], dtype=object),
        lon=np.array([113.30, 113.31, np.nan, 113.32, 113.33]),
        lat=np.array([40.09, 40.09, 40.09, 40.09, 40.09]),
        parts={
            "street": np.array(
                ["鼓楼东街", "鼓樓西街", "鼓楼东街", "", "Drum Tower Rd"], dtype=object
            ),
            "number": np.array(["12", "三号", "1", "", "No. 5"], dtype=object),
            "poi": np.array([None, "", "", "", None], dtype=object),
        },
    )
    res = build_index(rec, tmp_path / "a.sqlite", default_city="平城市", default_district="古城区")
    assert res.count == 3
    assert {(s[0], s[1]) for s in res.skipped} == {("c", "bad-coordinates"), ("d", "empty-address")}
    idx = AddressIndex(tmp_path / "a.sqlite")
    c = idx.search("平城市古城区鼓楼东街12号")[0]
    assert c.source_id == "a" and c.score == 100.0
    assert c.address == "鼓楼东街12号"
    assert c.components["district"] == "古城区"
    assert idx.search("鼓楼西街3号")[0].source_id == "b"
    assert idx.search("古城區鼓樓西街三號")[0].source_id == "b"
    latin = idx.search("5 Drum Tower Road")[0]
    assert latin.source_id == "e" and latin.address == "No. 5 Drum Tower Rd"


def test_wrong_district_scores_lower(tmp_path: Path) -> None:
    rec = AddressRecords(
        ids=np.array(["a", "b"], dtype=object),
        lon=np.array([113.30, 113.31]),
        lat=np.array([40.09, 40.09]),
        full=np.array(["平城市古城区鼓楼东街12号", "平城市新城区鼓楼东街12号"], dtype=object),
    )
    build_index(rec, tmp_path / "a.sqlite")
    idx = AddressIndex(tmp_path / "a.sqlite")
    got = idx.search("新城区鼓楼东街12号")
    assert got[0].source_id == "b" and got[0].score > got[1].score
    # no district: both equal
    got = idx.search("鼓楼东街12号")
    assert got[0].score == got[1].score == 100.0


# --- join to buildings ---------------------------------------------------------------


def _buildings(polys: list[shapely.Polygon], ids: list[str] | None = None) -> Buildings:
    n = len(polys)
    return Buildings(
        ids=np.array(ids or [f"B{i}" for i in range(n)], dtype=object),
        footprints=np.array(polys, dtype=object),
        height=np.full(n, 20.0),
        floors=np.full(n, np.nan),
        base=np.full(n, 1000.0),
        name=np.full(n, "", dtype=object),
        use=np.full(n, "", dtype=object),
        roof_type=np.full(n, "", dtype=object),
    )


def _square(lon: float, lat: float, size: float = 0.0002) -> shapely.Polygon:
    return shapely.box(lon, lat, lon + size, lat + size)


def test_attach_points_inside_nearest_unmatched_ambiguous() -> None:
    fps = np.array(
        [
            _square(113.300, 40.090),
            _square(113.301, 40.090),
            shapely.box(113.3010, 40.0900, 113.3011, 40.0901),  # inside B1: overlap
        ],
        dtype=object,
    )
    lon = np.array([113.3001, 113.30105, 113.3003, 113.310])
    lat = np.array([40.0901, 40.09005, 40.0901, 40.090])
    res = attach_points(lon, lat, fps, max_distance=30.0)
    assert res.status.tolist() == [INSIDE, INSIDE, NEAREST, UNMATCHED]
    assert res.building.tolist()[:3] == [0, 2, 0]  # smallest footprint wins
    assert res.ambiguous.tolist() == [False, True, False, False]
    assert 5.0 < res.distance[2] < 15.0  # 0.0001° of longitude ≈ 8.5 m


def test_attach_tie_is_ambiguous() -> None:
    fps = np.array([_square(113.300, 40.090), _square(113.3004, 40.090)], dtype=object)
    res = attach_points(np.array([113.3003]), np.array([40.0901]), fps, max_distance=30.0)
    assert res.status[0] == NEAREST and res.ambiguous[0]


def test_build_index_with_buildings(tmp_path: Path) -> None:
    b = _buildings([_square(113.300, 40.090), _square(113.301, 40.090)])
    own = b.addresses  # the buildings stage shares it as the footprints' own addresses
    rec = AddressRecords(
        ids=np.array(["p1", "p2", "p3"], dtype=object),
        lon=np.array([113.3001, 113.30125, 113.5]),
        lat=np.array([40.0901, 40.0901, 40.09]),
        full=np.array(["鼓楼东街12号", "鼓楼东街14号", "鼓楼东街99号"], dtype=object),
    )
    res = build_index(rec, tmp_path / "a.sqlite", buildings=b, match_distance=30.0)
    assert (res.attached, res.inside, res.nearest) == (2, 1, 1)
    assert res.unmatched == [("p3", "鼓楼东街99号")]
    # joined into a copy put in the array's place: the shared one is unchanged
    assert b.addresses is not own and own.tolist() == [(), ()]
    assert tuple(b.addresses[0]) == ("鼓楼东街12号",)
    assert tuple(b.addresses[1]) == ("鼓楼东街14号",)
    idx = AddressIndex(tmp_path / "a.sqlite")
    c = idx.search("鼓楼东街十二号")[0]
    assert c.building_id == "B0" and c.height == pytest.approx(1020.0)
    c = idx.search("鼓楼东街99号")[0]
    assert c.building_id is None and c.height is None
    r = idx.reverse(113.3001, 40.0901, limit=1)[0]
    assert r.building_id == "B0"
    assert idx.building_at(113.3011, 40.0901) == ("B1", pytest.approx(1020.0))
    assert idx.building_at(113.3005, 40.0901) is None


def test_reverse_puts_the_building_there_first(tmp_path: Path) -> None:
    # a long building whose address point is at its east end; a point of another
    # building lies just outside its west end
    b = _buildings(
        [shapely.box(113.300, 40.090, 113.303, 40.0902), _square(113.2995, 40.090)],
        ids=["LONG", "SMALL"],
    )
    rec = AddressRecords(
        ids=np.array(["east", "small"], dtype=object),
        lon=np.array([113.3029, 113.2996]),
        lat=np.array([40.0901, 40.0901]),
        full=np.array(["长街1号", "短街2号"], dtype=object),
    )
    build_index(rec, tmp_path / "a.sqlite", buildings=b)
    idx = AddressIndex(tmp_path / "a.sqlite")
    got = idx.reverse(113.3001, 40.0901, limit=2)
    assert got[0].building_id == "LONG" and got[0].address == "长街1号"
    assert got[1].building_id == "SMALL" and got[1].distance < got[0].distance
    # without footprints stored: nearest first
    build_index(rec, tmp_path / "b.sqlite", buildings=b, store_footprints=False)
    got = AddressIndex(tmp_path / "b.sqlite").reverse(113.3001, 40.0901, limit=2)
    assert got[0].building_id == "SMALL"


# --- config, reader and stage --------------------------------------------------------


def test_config_validation(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        AddressesConfig(path=tmp_path, x="x")
    with pytest.raises(ConfigError):
        AddressesConfig(path=tmp_path, x="x", y="y", lon="lon", lat="lat")
    with pytest.raises(ConfigError):
        AddressesConfig(path=tmp_path, match_distance=-1.0)


def _project(tmp_path: Path, section: str) -> Path:
    toml = tmp_path / "city.toml"
    toml.write_text(
        '[city]\nname = "平城"\ncrs = "EPSG:4547"\n\n[addresses]\n' + section, encoding="utf-8"
    )
    return toml


def _gk(lon: list[float], lat: list[float]) -> tuple[np.ndarray, np.ndarray]:
    from pyproj import Transformer

    t = Transformer.from_crs("EPSG:4326", "EPSG:4547", always_xy=True)
    return t.transform(np.array(lon), np.array(lat))


def test_stage_csv_projected_with_buildings(tmp_path: Path) -> None:
    x, y = _gk([113.3001, 113.30125, 113.5, 113.3], [40.0901, 40.0901, 40.09, 40.09])
    lines = ["x,y,address,district"]
    for xi, yi, a, d in zip(
        x,
        y,
        ["平城市古城区鼓楼东街12号", "鼓楼东街14号", "鼓楼东街99号", ""],
        ["古城区", "", "", ""],
        strict=True,
    ):
        lines.append(f"{xi:.3f},{yi:.3f},{a},{d}")
    lines.append("bad,1,鼓楼东街1号,")
    (tmp_path / "addr.csv").write_text("\n".join(lines) + "\n", encoding="gbk")
    toml = _project(
        tmp_path,
        'path = "addr.csv"\nencoding = "gbk"\nx = "x"\ny = "y"\nfull = "address"\n'
        'district = "district"\ndefault_city = "平城市"\nmatch_distance = 25\n',
    )
    project = load_project(toml)
    stage = AddressStage()
    assert isinstance(stage, Stage)
    assert stage.enabled(project)
    assert stage.inputs(project) == [tmp_path / "addr.csv"]
    assert stage.outputs() == ["addresses.sqlite"]
    work = tmp_path / "work"
    work.mkdir()
    b = _buildings([_square(113.300, 40.090), _square(113.301, 40.090)])
    ctx = BuildContext(project=project, workdir=work, report=BuildReport(), progress=False)
    ctx.artifacts["buildings"] = b
    stage.run(ctx)
    rep = ctx.report.stages["addresses"].to_json()
    assert rep["read"] == 5
    assert rep["written"] == 3
    assert rep["skip_reasons"] == {"bad-coordinates": 1, "empty-address": 1}
    assert rep["counts"]["attached"] == 2
    assert rep["counts"]["unmatched"] == 1
    assert rep["flag_reasons"] == {"no-building": 1}
    assert rep["flagged"][0]["detail"].startswith("鼓楼东街99号")
    assert ctx.manifest["layers"]["addresses"] == {"url": "addresses.sqlite", "count": 3}
    assert tuple(b.addresses[0]) == ("平城市古城区鼓楼东街12号",)
    idx = AddressIndex(work / "addresses.sqlite")
    c = idx.search("平城市鼓楼东街14号")[0]
    assert c.building_id == "B1"
    assert c.lon == pytest.approx(113.30125, abs=1e-6)
    assert c.components["city"] == "平城市"


def test_stage_geojson_without_buildings(tmp_path: Path) -> None:
    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [121.4972233, 31.2426598]},
                "properties": {
                    "addr_street": "陆家嘴环路",
                    "addr_housenumber": "1388",
                    "name": None,
                },
            }
        ],
    }
    (tmp_path / "a.geojson").write_text(json.dumps(fc, ensure_ascii=False), encoding="utf-8")
    toml = _project(
        tmp_path,
        'path = "a.geojson"\nstreet = "addr_street"\nnumber = "addr_housenumber"\npoi = "name"\n',
    )
    project = load_project(toml)
    ctx = BuildContext(project=project, workdir=tmp_path, report=BuildReport(), progress=False)
    AddressStage().run(ctx)
    rep = ctx.report.stages["addresses"]
    assert rep.written == 1 and rep.warnings
    c = AddressIndex(tmp_path / "addresses.sqlite").search("陆家嘴环路1388号")[0]
    # the file's CRS (WGS84) wins over [city] crs
    assert c.lon == pytest.approx(121.4972233) and c.building_id is None


def test_stage_missing_column(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("lon,lat,addr\n113.3,40.09,鼓楼东街1号\n", encoding="utf-8")
    toml = _project(tmp_path, 'path = "a.csv"\nfull = "address"\n')
    ctx = BuildContext(
        project=load_project(toml), workdir=tmp_path, report=BuildReport(), progress=False
    )
    with pytest.raises(InputDataError, match="address"):
        AddressStage().run(ctx)


def test_stage_unknown_key(tmp_path: Path) -> None:
    toml = _project(tmp_path, 'path = "a.csv"\nmatch_distanse = 3\n')
    with pytest.raises(ConfigError, match="match_distance"):
        AddressStage().inputs(load_project(toml))


def _write_vector(path: Path, geoms: list, encoding: str | None = None, **cols: list) -> None:
    import pyarrow as pa
    import pyogrio

    data = {k: pa.array(v, pa.string()) for k, v in cols.items()}
    data["geometry"] = pa.array(shapely.to_wkb(np.array(geoms, dtype=object)).tolist(), pa.binary())
    pyogrio.write_arrow(
        pa.table(data),
        path,
        geometry_name="geometry",
        geometry_type="Unknown",
        crs="EPSG:4547",
        encoding=encoding,
    )


@pytest.mark.parametrize("kind", ["shp", "gpkg"])
def test_stage_shapefile_gbk_and_gpkg_polygons(tmp_path: Path, kind: str) -> None:
    x, y = _gk([113.3001, 113.3012], [40.0901, 40.0901])
    if kind == "shp":
        geoms = [shapely.Point(x[0], y[0]), shapely.Point(x[1], y[1])]
    else:  # polygons: their point on surface
        geoms = [shapely.box(xi - 5, yi - 5, xi + 5, yi + 5) for xi, yi in zip(x, y, strict=True)]
    path = tmp_path / f"addr.{kind}"
    _write_vector(
        path,
        geoms,
        encoding="GBK" if kind == "shp" else None,
        street=["鼓樓東街", "鼓楼东街"],
        number=["12号", "十四号"],
    )
    toml = _project(tmp_path, f'path = "addr.{kind}"\nstreet = "street"\nnumber = "number"\n')
    project = load_project(toml)
    if kind == "shp":
        assert tmp_path / "addr.dbf" in AddressStage().inputs(project)
    ctx = BuildContext(project=project, workdir=tmp_path, report=BuildReport(), progress=False)
    AddressStage().run(ctx)
    idx = AddressIndex(tmp_path / "addresses.sqlite")
    c = idx.search("鼓楼东街12号")[0]
    assert c.address == "鼓樓東街12号"
    assert c.lon == pytest.approx(113.3001, abs=1e-5) and c.lat == pytest.approx(40.0901, abs=1e-5)
    c = idx.search("鼓楼东街14号")[0]
    assert c.lon == pytest.approx(113.3012, abs=1e-5)


def test_build_project_runs_the_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cb = pytest.importorskip("cim.build")
    (tmp_path / "a.csv").write_text(
        "lon,lat,address\n113.3001,40.0901,平城市古城区鼓楼东街12号\n113.31,40.09,\n",
        encoding="utf-8",
    )
    toml = _project(tmp_path, 'path = "a.csv"\n')
    monkeypatch.setattr(cb, "discover_stages", lambda: [AddressStage()])
    res = cb.build_project(toml, progress=False)
    assert res.ran == ["addresses"]
    out = res.output
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["layers"]["addresses"] == {"url": "addresses.sqlite", "count": 1}
    report = json.loads((out / "build-report.json").read_text(encoding="utf-8"))
    assert report["stages"]["addresses"]["skip_reasons"] == {"empty-address": 1}
    assert AddressIndex(out / "addresses.sqlite").search("鼓楼东街12号")[0].score == 100.0
    again = cb.build_project(toml, progress=False)
    assert again.up_to_date
