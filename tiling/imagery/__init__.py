"""Imagery stage: orthophoto GeoTIFF(s) → geographic tile pyramid (``imagery/``).

See :mod:`tiling.imagery.stage` (the stage) and :mod:`tiling.imagery.build`.
"""
