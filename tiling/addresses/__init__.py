"""Addresses: normalise, index, attach to buildings, search.

- :func:`normalize` / :func:`parse_address`: Chinese (and Latin) address
  normalisation and GB/T 23705 component parsing;
- :func:`build_index`: write ``addresses.sqlite`` and join points to buildings;
- :class:`AddressIndex`: ``search(query, limit)`` and ``reverse(lon, lat, limit)``
  returning :class:`Candidate` objects; thread-safe, read-only;
- :class:`tiling.addresses.stage.AddressStage`: the ``addresses`` build stage.
"""

from tiling.addresses.build import AddressRecords, BuildResult, build_index
from tiling.addresses.config import AddressesConfig
from tiling.addresses.index import WEIGHTS, AddressIndex, Candidate
from tiling.addresses.normalize import Components, normalize, parse_address

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
