"""The L2 writer's planning in the build process, made cheaper, gives the same tileset.

Areas and vertex counts handed in by the caller, the quadtree's partition, the row
hashes' in-place passes and short-text path, the address column assembled in Arrow
and tile tasks that carry their text as Arrow arrays must each leave every byte of
the output as it was.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import shapely
from test_l2 import city

from cim.model import ArrowText, Buildings, text_values
from tiling.buildings import l2
from tiling.buildings.hierarchy import Node, build_hierarchy
from tiling.buildings.l2 import MAX_FOOTPRINT_VERTICES, L2Options, write_l2
from tiling.buildings.rowhash import _bytes_hashes, column_values, hash_rows, mix, xxh3_hashes
from tiling.gltf import read_glb, read_property_table

OPTIONS = L2Options(max_features_per_tile=60)


def _city() -> Buildings:
    """A small city with addresses, an extra column and one footprint to simplify."""
    b = city(400, seed=5)
    footprints = b.footprints.copy()
    x, y = shapely.get_coordinates(shapely.centroid(footprints[9]))[0]
    angle = np.linspace(0.0, 2 * np.pi, MAX_FOOTPRINT_VERTICES + 300, endpoint=False)
    radius = 0.0001 * (1 + 0.05 * np.sin(40 * angle))
    footprints[9] = shapely.Polygon(
        np.column_stack([x + radius * np.cos(angle), y + radius * np.sin(angle)])
    )
    b = replace(
        b,
        footprints=footprints,
        extra={"zone": np.array([f"z{i % 3}" for i in range(len(b))], dtype=object)},
    )
    b.addresses[3] = ("平城大道1号", "平城大道1号附1")
    b.addresses[20] = ("新建路2号",)
    return b


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("plain")
    return out, write_l2(_city(), out, OPTIONS)


def test_given_areas_and_vertex_counts_change_no_byte(plain, tmp_path: Path) -> None:
    out, figures = plain
    b = _city()
    # as the repair computes them: of the footprints before any simplification
    given = write_l2(
        b,
        tmp_path,
        OPTIONS,
        areas=shapely.area(b.footprints),
        vertex_counts=shapely.get_num_coordinates(b.footprints),
    )
    assert given == figures
    files = _files(out)
    assert len(files) > 5 and _files(tmp_path) == files


def test_given_areas_of_simplified_footprints_are_their_new_ones() -> None:
    b = _city()
    fitted_b, fitted, counts = l2._fit_footprints(
        b, l2.StageReport("l2"), shapely.get_num_coordinates(b.footprints)
    )
    assert fitted.tolist() == [9]
    assert np.array_equal(counts, shapely.get_num_coordinates(fitted_b.footprints))
    areas = l2._areas(fitted_b, shapely.area(b.footprints), fitted)
    assert np.array_equal(areas, shapely.area(fitted_b.footprints))
    assert areas[9] != shapely.area(b.footprints[9])


def test_the_given_arrays_are_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    b = city(200)  # more than a tile holds: no tile's footprints are the whole city
    area, count = shapely.area, shapely.get_num_coordinates
    whole = {"area": 0, "count": 0}

    def spy(name, fn):
        def wrapped(geoms, *a, **k):
            whole[name] += np.ndim(geoms) > 0 and len(geoms) == len(b)
            return fn(geoms, *a, **k)

        return wrapped

    monkeypatch.setattr(shapely, "area", spy("area", area))
    monkeypatch.setattr(shapely, "get_num_coordinates", spy("count", count))
    write_l2(b, tmp_path, OPTIONS, areas=area(b.footprints), vertex_counts=count(b.footprints))
    assert whole == {"area": 0, "count": 0}  # nothing over the whole city again


@pytest.mark.parametrize("what", ["areas", "vertex_counts"])
def test_given_arrays_of_another_length_are_a_bug(what: str, tmp_path: Path) -> None:
    b = city(30)
    with pytest.raises(ValueError, match=what):
        write_l2(b, tmp_path, OPTIONS, **{what: np.ones(29)})


def _index(out: Path) -> dict[str, str]:
    index = json.loads((out / l2.INDEX_FILE).read_text(encoding="utf-8"))
    return {k: v["hash"] for k, v in index.items()}


def _arrow_text(b: Buildings) -> dict[str, pa.Array]:
    return {k: pa.array(getattr(b, "ids" if k == "id" else k).tolist()) for k in TEXT}


TEXT = ("id", "name", "use", "roof_type")


def test_given_footprint_hashes_and_text_change_no_byte(plain, tmp_path: Path) -> None:
    out, figures = plain
    b = _city()
    wkb = shapely.to_wkb(b.footprints, output_dimension=2)
    text = _arrow_text(b)
    text["id"] = pa.chunked_array([text["id"][:100], text["id"][100:]])  # as partitions
    # footprint 9 is simplified: its hash (of the WKB before) must be taken again
    got = write_l2(b, tmp_path, OPTIONS, wkb=wkb, footprint_hashes=xxh3_hashes(wkb), text=text)
    assert got == figures
    assert _files(tmp_path) == _files(out)


def test_given_footprint_hashes_and_text_are_what_is_read(plain, tmp_path: Path) -> None:
    """Not computed again: a (wrong) given value shows in its tile and nowhere else."""
    out, _ = plain
    b = _city()
    wkb = shapely.to_wkb(b.footprints, output_dimension=2)
    hashes = xxh3_hashes(wkb)
    hashes[30] += np.uint64(1)
    write_l2(b, tmp_path / "h", OPTIONS, wkb=wkb, footprint_hashes=hashes)
    text = _arrow_text(b)
    # the same length as the name it stands for: the same byte estimate, the same tree
    assert b.name[7] == "平城中心"
    text["name"] = pa.array(["" if i != 7 else "平城新区" for i in range(len(b))])
    write_l2(b, tmp_path / "t", OPTIONS, text=text)
    for where in ("h", "t"):
        old, new = _index(out), _index(tmp_path / where)
        assert len([k for k in old if old[k] != new[k]]) == 1, where
    names = [
        read_property_table(*read_glb(p.read_bytes())).get("name", [])
        for p in (tmp_path / "t" / "content").glob("*.glb")
    ]
    assert sum(n.count("平城新区") for n in names) == 1


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"footprint_hashes": np.zeros(400, np.uint64)}, "without the wkb"),
        ({"text": {"address": pa.array([""] * 400)}}, "not one of"),
        ({"text": {"name": pa.array([""] * 399)}}, "399 values"),
        ({"text": {"name": pa.array([None] * 400, pa.string())}}, "400 missing"),
        ({"text": {"name": pa.array([1] * 400)}}, "not string"),
    ],
)
def test_given_arrays_that_cannot_be_right_are_a_bug(kw: dict, match: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=match):
        write_l2(_city(), tmp_path, OPTIONS, **kw)


# --- the quadtree ---------------------------------------------------------------------


def _reference_quadtree(
    centre_xy, size, vertices, row_bytes, max_bytes, max_features, max_vertices
):
    """The quadtree as first written: a stable argsort per node, gathers per axis."""
    order = np.argsort(-size, kind="stable")
    lo = centre_xy.min(axis=0)
    span = float(max((centre_xy.max(axis=0) - lo).max(), 1.0)) * (1 + 1e-9)
    nodes = [Node(0, 0, 0, order)]
    stack = [0]
    while stack:
        node = nodes[stack.pop()]
        members = node.members
        cum = np.cumsum(vertices[members])
        take = int(min(max_features, np.searchsorted(cum, max_vertices, side="right")))
        cum_bytes = np.cumsum(row_bytes[members])
        take = max(min(take, int(np.searchsorted(cum_bytes, max_bytes, side="right"))), 1)
        if node.level >= 18:  # max_depth
            take = len(members)
        rest = members[take:]
        node.members = members[:take]
        if len(rest) == 0:
            continue
        node.geometric_error = float(size[rest[0]])
        cell = span / (1 << node.level)
        ox, oy = lo[0] + node.x * cell, lo[1] + node.y * cell
        quadrant = (centre_xy[rest, 0] >= ox + cell / 2).astype(np.int8)
        quadrant += 2 * (centre_xy[rest, 1] >= oy + cell / 2).astype(np.int8)
        rest = rest[np.argsort(quadrant, kind="stable")]
        quadrant = np.sort(quadrant)
        for q in range(4):
            part = rest[quadrant == q]
            if len(part):
                node.children.append(len(nodes))
                stack.append(len(nodes))
                nodes.append(
                    Node(node.level + 1, node.x * 2 + (q & 1), node.y * 2 + (q >> 1), part)
                )
    return nodes


@pytest.mark.parametrize("sizes", ["distinct", "ties", "zeros"])
def test_the_quadtree_is_the_reference_one(sizes: str) -> None:
    rng = np.random.default_rng(7)
    n = 5000
    # clustered centres: cells of very different counts, points on cell edges
    xy = np.round(rng.normal(0, 300, (n, 2)) * rng.choice([1, 0.05], (n, 1)), 1)
    size = {
        "distinct": rng.uniform(1, 90, n),
        "ties": rng.integers(1, 6, n) * 3.0,  # floor heights: many equal sizes
        "zeros": np.where(rng.random(n) < 0.2, 0.0, rng.integers(0, 6, n) * 3.0),
    }[sizes]
    vertices = rng.integers(20, 200, n)
    row_bytes = vertices * 6.0 + rng.integers(0, 500, n)
    kw = dict(row_bytes=row_bytes, max_bytes=40_000.0, max_features=80, max_vertices=6000)
    got = build_hierarchy(xy, size, vertices, **kw)
    want = _reference_quadtree(xy, size, vertices, **kw)
    assert len(got) == len(want) > 20
    for a, b in zip(got, want, strict=True):
        assert (a.key, a.geometric_error, a.children) == (b.key, b.geometric_error, b.children)
        assert np.array_equal(a.members, b.members)


# --- row hashes -----------------------------------------------------------------------


def _obj(items: list) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def test_row_hashes_keep_their_values() -> None:
    """Pinned: other values would make every tiles-index.json of past builds stale."""
    cols = [
        _obj([b"\x01\x03\x00\x00\x00", b"", b"wkb" * 30]),
        np.array([1.5, -0.0, 1e300]),
        np.array([3, 0, -7], dtype=np.int64),
        np.array([True, False, True]),
        np.array([1.25, 2.5, 0.0], dtype=np.float32),
        _obj(["B1", "", "平城大道1号平城大道1号"]),
        pa.array(["x", "12345678", "123456789"]),
        _obj(["a", None, "b"]),
    ]
    assert [hex(v) for v in hash_rows(cols).tolist()] == [
        "0xc8bbf9d91ea3cde9",
        "0x5c88cb962100f384",
        "0x74bfb0772212cb08",
    ]
    assert [hex(v) for v in hash_rows([pa.array(["ab", "", "住宅"])]).tolist()] == [
        "0xadc28a028948f2da",
        "0x99d8603968c7b63a",
        "0x740187fcb2f2ae99",
    ]


def test_hash_rows_is_its_definition() -> None:
    rng = np.random.default_rng(2)
    n = 3000
    cols = [
        rng.random(n),
        rng.integers(-5, 5, n),
        rng.random(n)[::-1],  # not contiguous
        rng.random(n).astype(">f8"),  # not native
        _obj([f"v{i % 37}" * (i % 5) for i in range(n)]),
    ]
    h = np.full(n, np.uint64(0x9E3779B97F4A7C15), dtype=np.uint64)
    for col in cols:
        h = mix(h ^ column_values(col))
    assert np.array_equal(hash_rows(cols), h)


def test_short_text_hashes_as_in_a_column_of_long_text() -> None:
    """Values of at most 8 bytes take a path of their own; a value's hash is its own."""
    rng = np.random.default_rng(3)
    short = ["", "a", "住宅", "12345678", "B0000001", "1234567", "工业"]
    short += ["".join(rng.choice(list("abc平城"), int(rng.integers(0, 3)))) for _ in range(300)]
    mixed = pa.array([*short, "a value longer than eight bytes"])
    alone = pa.array(short)
    assert np.array_equal(_bytes_hashes(alone), _bytes_hashes(mixed)[:-1])
    # a slice (an Arrow offset) and 32/64-bit offsets
    assert np.array_equal(_bytes_hashes(alone.slice(5, 100)), _bytes_hashes(mixed)[5:105])
    assert np.array_equal(_bytes_hashes(pa.array(short, pa.large_string())), _bytes_hashes(alone))
    # nothing but empty values: their length only
    assert np.array_equal(
        _bytes_hashes(pa.array(["", ""])), _bytes_hashes(pa.array(["", "x" * 9]))[:1].repeat(2)
    )


# --- the property table and the tasks -------------------------------------------------


def test_the_address_column_in_arrow_is_the_joined_one() -> None:
    addresses = _obj([(), ("平城大道1号", "附1"), (), ("",), ("x",), ()])
    column, text = l2._address_column(addresses)
    # held as the Arrow array: no object array of one "" per building
    assert isinstance(column, ArrowText) and column.arrow is text
    assert text_values(column).tolist() == ["", "平城大道1号; 附1", "", "", "x", ""]
    text.validate(full=True)
    assert text.equals(pa.array(text_values(column).tolist(), pa.string()))
    # text Arrow cannot hold: the object column alone (then hashed per value)
    column, text = l2._address_column(_obj([("\ud800",), ()]))
    assert column.tolist() == ["\ud800", ""] and text is None


@pytest.mark.parametrize(
    "rest",
    [
        ["平城中心", "x", ""],  # text: an Arrow array equal to the dense conversion
        ["a", None],  # missing values: not all text
        ["a", b"bytes"],
        ["a", 3],
        ["\ud800"],  # a lone surrogate: UTF-8 cannot hold it
    ],
)
def test_mostly_empty_text_converts_as_all_of_it(rest: list) -> None:
    values = _obj([""] * 200 + rest + [""] * 50)
    got = l2._arrow_text(values)
    if len(rest) == 3:
        assert got is not None and got.equals(pa.array(values.tolist()))
        got.validate(full=True)
        assert np.array_equal(_bytes_hashes(got), _bytes_hashes(pa.array(values.tolist())))
    else:
        assert got is None
    assert l2._arrow_text(_obj([""] * 100)).equals(pa.array([""] * 100))


def test_a_task_with_arrow_text_encodes_as_with_object_arrays(plain, tmp_path: Path) -> None:
    captured = []
    real = l2._run_jobs

    def spy(jobs_list, tasks, executor, track, reuse):
        captured.extend(tasks.make(j) for j in jobs_list[:3])
        yield from real(jobs_list, tasks, executor, track, reuse)

    mp = pytest.MonkeyPatch()
    mp.setattr(l2, "_run_jobs", spy)
    try:
        write_l2(_city(), tmp_path / "a", OPTIONS)
    finally:
        mp.undo()
    assert captured
    for task in captured:
        assert isinstance(task.table["id"], pa.Array)  # text went as Arrow
        as_objects = replace(task, table={k: l2._as_numpy(v) for k, v in task.table.items()})
        assert isinstance(as_objects.table["id"], np.ndarray)
        assert l2.tile_hash(as_objects) == l2.tile_hash(task)
        key = l2._content_name(task.key)
        want = (plain[0] / "content" / f"{key}.glb").read_bytes()
        for t, where in ((task, "b"), (as_objects, "c")):
            (tmp_path / where / "content").mkdir(parents=True, exist_ok=True)
            l2._encode_tile(replace(t, shared=replace(t.shared, out_dir=str(tmp_path / where))))
            assert (tmp_path / where / "content" / f"{key}.glb").read_bytes() == want


def test_the_ranking_in_blocks_is_the_whole_citys_to_the_bit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The buildings are ranked a block of rows at a time (blocks of nearly equal size,
    never a lone row), in place: every value is the one the whole-array expressions
    give (the hierarchy, so the tiles, depend on it)."""
    from cim.crs import lonlat_to_enu
    from tiling.buildings.partitions import footprint_centres

    b = _city()
    frame, _ = l2._frame(b)
    centres = footprint_centres(b.footprints)
    areas = shapely.area(b.footprints)
    coords = shapely.get_num_coordinates(b.footprints)
    monkeypatch.setattr(l2, "RANKING_BLOCK", 7)  # many blocks, the last one short
    centre_xy, size, vertices = l2._ranking(b, frame, centres, coords, areas)
    whole = lonlat_to_enu(centres[:, 0], centres[:, 1], b.base, frame)[:, :2]
    area = areas * (111_320.0**2) * np.cos(np.radians(centres[:, 1]))
    expected = np.maximum(b.height, np.sqrt(np.maximum(area, 0.0)))
    assert np.array_equal(centre_xy, whole) and np.array_equal(size, expected)
    assert np.array_equal(vertices, 5 * coords)
