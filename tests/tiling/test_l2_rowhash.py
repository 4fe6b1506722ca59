"""Per-row hashes and the L2 tile hashes built from them (incremental rebuilds).

Every value a tile is built from must change its tile's hash, and nothing else's; the
hash the build process takes over the whole city must equal the one a worker takes
over its tile alone.
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

from tiling.buildings import l2
from tiling.buildings.l2 import INDEX_FILE, L2Options, write_l2
from tiling.buildings.rowhash import column_values, hash_rows


def _values() -> np.ndarray:
    """Bytes of every length around the word size, long ones, empty and repeated."""
    rng = np.random.default_rng(4)
    items = [bytes(rng.integers(0, 256, k, dtype=np.uint8)) for k in range(40)]
    items += [b"", b"", b"x" * 5000, bytes(rng.integers(0, 256, 333, dtype=np.uint8))]
    items += [items[9], items[17]]  # equal values hash equal
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _words(values: np.ndarray) -> np.ndarray:
    """The hashes of the text path (Arrow buffer, 8-byte words) for the same bytes."""
    return column_values(pa.array(values.tolist(), pa.binary()))


HASHERS = {"xxh3": column_values, "words": _words}


@pytest.mark.parametrize("path", list(HASHERS))
def test_a_value_hash_depends_on_that_value_alone(path: str) -> None:
    column_values = HASHERS[path]
    values = _values()
    whole = column_values(values)
    assert whole[-2] == whole[9] and whole[-1] == whole[17]
    assert len(np.unique(whole)) == len(set(values.tolist()))  # equal values only
    for idx in ([0], [39, 40, 41], [5, 3, 44], list(range(20, 44))):
        sub = values[idx]
        assert np.array_equal(column_values(sub), whole[idx])
    # the last value read at the very end of the data (no bytes after it)
    for k in range(1, 20):
        one = np.empty(1, dtype=object)
        one[0] = values[k]
        assert column_values(one)[0] == whole[k]


@pytest.mark.parametrize("path", list(HASHERS))
def test_every_byte_and_the_length_count(path: str) -> None:
    column_values = HASHERS[path]
    values = _values()
    base = column_values(values)
    for k in (1, 7, 8, 9, 15, 16, 17, 39, 42):
        raw = bytearray(values[k])
        for pos in range(len(raw)):
            changed = values.copy()
            flipped = raw.copy()
            flipped[pos] ^= 1 << (pos % 8)
            changed[k] = bytes(flipped)
            new = column_values(changed)
            assert new[k] != base[k], (k, pos)
            assert np.array_equal(np.delete(new, k), np.delete(base, k))
        longer = values.copy()
        longer[k] = values[k] + b"\0"  # a trailing zero byte is not the same value
        assert column_values(longer)[k] != base[k]


def test_text_hashes_as_its_utf8_bytes_whatever_the_container() -> None:
    text = np.array(["", "平城", "a" * 9, "é", None, "x"], dtype=object)
    utf8 = np.array([None if t is None else t.encode() for t in text], dtype=object)
    hashes = column_values(text)
    assert np.array_equal(hashes, column_values(utf8))  # not all bytes: as text
    assert np.array_equal(hashes, column_values(pa.array(text)))
    assert np.array_equal(hashes, column_values(pa.array(text, pa.large_string())))
    assert np.array_equal(hashes[1:3], column_values(pa.array(text)[1:3]))  # sliced
    assert hashes[4] not in hashes[[0, 1, 2, 3, 5]]  # missing is not empty
    # what Arrow cannot read (numbers, lone surrogates) hashes as its str()
    odd = np.array(["1", 1, "a\ud800"], dtype=object)
    assert column_values(odd)[1] == column_values(np.array(["1"], dtype=object))[0]
    surrogate = np.array(["a\ud800".encode("utf-8", "surrogatepass")], dtype=object)
    assert column_values(odd)[2] == _words(surrogate)[0]


def test_numbers_hash_by_bits_and_type() -> None:
    f = np.array([0.0, -0.0, 1.5, np.nan])
    h = column_values(f)
    assert len(set(h.tolist())) == 4
    assert column_values(f.astype(np.float32))[2] != h[2]
    assert column_values(np.array([1, 2], dtype=np.int32))[0] != column_values(np.array([1]))[0]
    assert column_values(np.array([True]))[0] != column_values(np.array([False]))[0]


def test_a_change_in_any_one_field_changes_only_its_row() -> None:
    n = 50
    rng = np.random.default_rng(2)
    wkb = shapely.to_wkb(shapely.box(rng.random(n), rng.random(n), 2, 2), output_dimension=2)
    cols = [wkb, rng.random(n), rng.random(n), np.array([f"b{i}" for i in range(n)], object)]
    cols.append(np.array(["a", "b"] * (n // 2), dtype=object))
    base = hash_rows(cols)
    assert len(np.unique(base)) == n
    for c in range(len(cols)):
        changed = [col.copy() for col in cols]
        changed[c][17] = changed[c][18]  # another row's value
        new = hash_rows(changed)
        assert np.flatnonzero(new != base).tolist() == [17], c
    # the same values in other columns are another row
    swapped = [cols[0], cols[1], cols[2], cols[4], cols[3]]
    assert not np.any(hash_rows(swapped) == base)


# --- the L2 writer ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("l2hash") / "a"
    b = _city()
    figures = write_l2(b, out, L2Options(max_features_per_tile=40))
    return out, figures


def _city():
    b = city(300, seed=8)
    extra = np.array([f"e{i % 7}" for i in range(len(b))], dtype=object)
    b = replace(b, extra={"zone": extra, "rank": np.arange(len(b), dtype=np.int64)})
    b.addresses[3] = ("平城大道1号",)
    return b


def _index(out: Path) -> dict[str, str]:
    index = json.loads((out / INDEX_FILE).read_text(encoding="utf-8"))
    return {k: v["hash"] for k, v in index.items()}


def test_unchanged_input_reuses_every_tile(first, tmp_path: Path) -> None:
    out, figures = first
    again = write_l2(_city(), tmp_path / "b", L2Options(max_features_per_tile=40), previous=out)
    assert again["tiles_reused"] == figures["tiles"] > 5
    assert _index(tmp_path / "b") == _index(out)


def _edits():
    def footprint(b):
        f = b.footprints.copy()
        f[11] = shapely.affinity.translate(f[11], 1e-7)
        return replace(b, footprints=f)

    def column(name, value):
        def edit(b):
            col = getattr(b, name).copy()
            col[11] = value(col[11]) if callable(value) else value
            return replace(b, **{name: col})

        return edit

    def extra(name, value):
        def edit(b):
            col = b.extra[name].copy()
            col[11] = value
            return replace(b, extra={**b.extra, name: col})

        return edit

    def address(b):
        b.addresses[11] = ("新地址",)
        return b

    return {
        "footprint": footprint,
        "base": column("base", 3.25),
        "height": column("height", lambda h: h + 1e-6),  # not enough to change its rank
        "floors": column("floors", 77.0),
        "name": column("name", "新名"),
        "use": column("use", "x"),
        "roof_type": column("roof_type", "gabled"),
        "id": column("ids", "B11-renamed"),
        "address": address,
        "extra text": extra("zone", "changed"),
        "extra number": extra("rank", 10_000),
    }


@pytest.mark.parametrize("what", list(_edits()))
def test_one_changed_field_changes_exactly_its_tiles_hash(first, tmp_path: Path, what) -> None:
    out, figures = first
    b = _edits()[what](_city())
    again = write_l2(b, tmp_path / "b", L2Options(max_features_per_tile=40), previous=out)
    old, new = _index(out), _index(tmp_path / "b")
    changed = [k for k in old if old[k] != new.get(k)]
    assert len(changed) == 1, changed
    assert again["tiles_reused"] == figures["tiles"] - len(changed)


def test_the_build_process_and_the_worker_agree(first) -> None:
    b = _city()
    opts = L2Options(max_features_per_tile=40)
    captured: dict[str, str] = {}
    real = l2._run_jobs

    def spy(jobs_list, tasks, executor, track, reuse):
        captured.update(tasks.digests(jobs_list))
        for job in jobs_list:
            assert l2.tile_hash(tasks.make(job)) == captured[job.key]
        yield from real(jobs_list, tasks, executor, track, reuse)

    mp = pytest.MonkeyPatch()
    mp.setattr(l2, "_run_jobs", spy)
    try:
        write_l2(b, first[0].parent / "c", opts)
    finally:
        mp.undo()
    assert captured == _index(first[0])
