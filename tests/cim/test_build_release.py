"""The build's in-memory city is freed on a thread after the output is in place."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import shapely

from cim.build import release_in_background
from cim.model import Buildings, EncodedFootprints


class _Held:
    """Something a stage keeps in memory (weakly referenceable)."""


def _buildings(footprints: object, n: int) -> Buildings:
    return Buildings(
        ids=np.array([str(i) for i in range(n)], dtype=object),
        footprints=footprints,  # type: ignore[arg-type]
        height=np.ones(n),
        floors=np.ones(n),
        base=np.zeros(n),
        name=np.full(n, "", dtype=object),
        use=np.full(n, "", dtype=object),
        roof_type=np.full(n, "", dtype=object),
    )


def test_the_dicts_are_emptied_at_once_and_their_values_freed_by_the_thread() -> None:
    artifacts, stages = {"buildings": _Held()}, {"l2": _Held()}
    refs = [weakref.ref(artifacts["buildings"]), weakref.ref(stages["l2"])]
    thread = release_in_background(artifacts, stages)
    assert artifacts == {} and stages == {}  # nothing the build still reaches holds them
    thread.join(timeout=10)
    assert not thread.is_alive() and thread.daemon
    gc.collect()
    assert [r() for r in refs] == [None, None]


def test_arrays_lists_and_dataclasses_are_emptied_in_place() -> None:
    n = 25_000  # several slices
    objs = np.array([_Held() for _ in range(n)], dtype=object)
    entries = [{"id": str(i)} for i in range(n)]
    refs = [weakref.ref(objs[0]), weakref.ref(objs[-1])]
    buildings = _buildings(objs, n)
    del objs
    release_in_background({"buildings": buildings}, {"entries": entries}).join(timeout=30)
    assert entries == []
    assert (buildings.footprints == None).all()  # noqa: E711 (element-wise)
    gc.collect()
    assert [r() for r in refs] == [None, None]


def test_encoded_footprints_are_freed_without_being_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_decoding(self: EncodedFootprints) -> np.ndarray:
        raise AssertionError("decoded to be freed")

    monkeypatch.setattr(EncodedFootprints, "decode", no_decoding)
    wkb = shapely.to_wkb(shapely.box(np.arange(3), 0, np.arange(3) + 1, 1))
    buildings = _buildings(EncodedFootprints(wkb), 3)
    release_in_background({"buildings": buildings}).join(timeout=10)
    assert (buildings.ids == None).all()  # noqa: E711 (element-wise)
