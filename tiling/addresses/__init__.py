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

from cim.addresses import WEIGHTS, AddressIndex, Candidate, Components, normalize, parse_address
from tiling.addresses.build import AddressRecords, BuildResult, build_index
from tiling.addresses.config import AddressesConfig

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
