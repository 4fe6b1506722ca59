"""Addresses, the build side: read points, attach them to buildings, write the index.

The read side (normalisation, parsing, :class:`AddressIndex`) lives in
:mod:`cim.addresses` and is re-exported here for the stage and its tests.

- :func:`normalize` / :func:`parse_address`: Chinese (and Latin) address
  normalisation and GB/T 23705 component parsing;
- :func:`build_index`: write ``addresses.sqlite`` and join points to buildings;
- :class:`AddressIndex`: ``search(query, limit)`` and ``reverse(lon, lat, limit)``
  returning :class:`Candidate` objects; thread-safe, read-only;
- :class:`tiling.addresses.stage.AddressStage`: the ``addresses`` build stage.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cim.addresses import (
        WEIGHTS,
        AddressIndex,
        Candidate,
        Components,
        normalize,
        parse_address,
    )
    from tiling.addresses.build import AddressRecords, BuildResult, build_index
    from tiling.addresses.config import AddressesConfig

#: where each name lives: imported on first use (PEP 562), because every build imports
#: this package to discover the address stage, and the matcher (rapidfuzz) and the
#: index writer are needed only by projects with ``[addresses]``
_HOMES = {
    "WEIGHTS": "cim.addresses",
    "AddressIndex": "cim.addresses",
    "Candidate": "cim.addresses",
    "Components": "cim.addresses",
    "normalize": "cim.addresses",
    "parse_address": "cim.addresses",
    "AddressRecords": "tiling.addresses.build",
    "BuildResult": "tiling.addresses.build",
    "build_index": "tiling.addresses.build",
    "AddressesConfig": "tiling.addresses.config",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


__all__ = [
    "WEIGHTS",
    "AddressIndex",
    "AddressRecords",
    "AddressesConfig",
    "BuildResult",
    "Candidate",
    "Components",
    "build_index",
    "normalize",
    "parse_address",
]
