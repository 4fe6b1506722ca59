"""CIM toolkit core: city project config, CRS and height datums, data model, readers.

The core imports none of ``tiling``, ``layers`` or ``server``; build stages plug in
through the ``cim.stages`` entry point group (see :mod:`cim.stages`).
"""

__version__ = "0.1.0"
