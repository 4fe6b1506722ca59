"""Department layers: each department's own data on the one base map.

Upload (:mod:`.ingest`: any format the core readers take, zipped shapefiles, KML/KMZ;
the core CRS policy; the buildings' repair rules), versioned storage in the live store
with permissions (:mod:`.store`), typed styles (:mod:`.styles`), tiles for large layers
(:mod:`.tiles`) and GeoPackage export (:mod:`.export`). The HTTP API is
``server/blueprints/layers.py``; the CLI ``cim layers`` (:mod:`.cli`).
"""

from layers.deptlayers.ingest import CleanFeatures, ingest_file
from layers.deptlayers.store import DeptLayers, LayerInfo, LayerPermissionError
from layers.deptlayers.styles import ICONS, Style, StyleError, parse_style

__all__ = [
    "ICONS",
    "CleanFeatures",
    "DeptLayers",
    "LayerInfo",
    "LayerPermissionError",
    "Style",
    "StyleError",
    "ingest_file",
    "parse_style",
]
