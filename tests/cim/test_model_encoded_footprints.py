"""Buildings whose footprints are still WKB: decoded on first read, kept encoded by
take and replace."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import shapely

from cim.model import Buildings, EncodedFootprints


def _buildings(footprints: object, n: int = 3) -> Buildings:
    return Buildings(
        ids=np.array([f"b{i}" for i in range(n)], dtype=object),
        footprints=footprints,  # type: ignore[arg-type]
        height=np.arange(n, dtype=float),
        floors=np.ones(n),
        base=np.zeros(n),
        name=np.full(n, "", dtype=object),
        use=np.full(n, "", dtype=object),
        roof_type=np.full(n, "", dtype=object),
    )


GEOMS = shapely.box(np.arange(3), 0, np.arange(3) + 1, 1)


def _stored(b: Buildings) -> object:
    return vars(b)["_footprints"]


def test_take_and_replace_keep_them_encoded_and_reading_decodes_once() -> None:
    b = _buildings(EncodedFootprints(shapely.to_wkb(GEOMS)))
    picked = b.take(np.array([2, 0])).replace(height=np.array([5.0, 6.0]))
    assert isinstance(_stored(picked), EncodedFootprints)
    assert picked.footprints_wkb is not None and len(picked) == 2
    first = picked.footprints
    assert shapely.equals(first, GEOMS[[2, 0]]).all()
    assert picked.footprints is first  # decoded once, then held
    assert picked.footprints_wkb is None
    assert isinstance(_stored(b), EncodedFootprints)  # the original untouched


def test_plain_geometry_arrays_work_as_before() -> None:
    b = _buildings(GEOMS.copy())
    assert b.footprints_wkb is None
    assert b.take(np.array([1])).footprints[0].equals(GEOMS[1])
    assert b.bounds() == (0.0, 0.0, 3.0, 1.0)


def test_a_footprint_column_of_another_length_is_refused_without_decoding() -> None:
    with pytest.raises(ValueError, match="column footprints has 2 rows, not 3"):
        _buildings(EncodedFootprints(shapely.to_wkb(GEOMS[:2])))


def test_take_with_release_empties_the_table_it_takes_from() -> None:
    b = _buildings(EncodedFootprints(shapely.to_wkb(GEOMS)))
    b.extra["floors_above"] = np.array([1, 2, 3])
    b.arrow_text["ids"] = pa.array(["b0", "b1", "b2"])
    sharing = b.replace(height=b.height.copy())  # shares the extra dict and its columns
    order = np.array([2, 0, 1])
    expected = b.take(order)
    taken = b.take(order, release=True)
    for name in ("ids", "height", "floors", "base", "name", "use", "roof_type", "addresses"):
        assert getattr(taken, name).tolist() == getattr(expected, name).tolist()
        released = getattr(b, name)
        assert len(released) == 0 and released.base is None  # not a view of the column
    assert taken.extra["floors_above"].tolist() == [3, 1, 2]
    assert taken.arrow_text["ids"].to_pylist() == ["b2", "b0", "b1"]
    assert shapely.equals(taken.footprints, GEOMS[order]).all()
    assert len(b) == 0 and b.extra == {} and b.arrow_text == {} and len(_stored(b)) == 0
    # a table that shared its dicts keeps its columns
    assert sharing.extra["floors_above"].tolist() == [1, 2, 3] and len(sharing) == 3
