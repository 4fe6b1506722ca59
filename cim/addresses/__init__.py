"""The read side of the address index (``addresses.sqlite``), shared by every reader.

- :func:`normalize` / :func:`parse_address`: Chinese and Latin address normalisation
  and GB/T 23705 component parsing (the build uses the same functions, so the keys it
  stores are the keys queries are looked up with);
- :class:`AddressIndex`: ``search(query, limit)``, ``reverse(lon, lat, limit)`` and
  ``building_at(lon, lat)`` returning :class:`Candidate` objects; thread-safe,
  read-only; refuses an index of another :data:`SCHEMA_VERSION`.

The build side (reading address points, joining them to buildings, writing the file)
is the ``addresses`` stage in :mod:`tiling.addresses`.
"""

from cim.addresses.index import SCHEMA_VERSION, WEIGHTS, AddressIndex, Candidate
from cim.addresses.normalize import Components, normalize, parse_address

__all__ = [
    "SCHEMA_VERSION",
    "WEIGHTS",
    "AddressIndex",
    "Candidate",
    "Components",
    "normalize",
    "parse_address",
]
