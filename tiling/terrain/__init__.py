"""Terrain stage: DEM GeoTIFF(s) → quantized-mesh-1.0 tiles (``terrain/``).

See :mod:`tiling.terrain.stage` (the stage), :mod:`tiling.terrain.build` (planning,
workers, layer.json), :mod:`tiling.terrain.mesh` (one crack-free tile),
:mod:`tiling.terrain.qmesh` (the binary format) and :mod:`tiling.terrain.scheme`
(CesiumJS's geographic tiling scheme and error model).
"""
