"""Export a layer version to GeoPackage (GeoJSON is streamed by the API itself).

Attributes keep their types (integer, number, boolean, text); WGS84 lon/lat
(EPSG:4326); mixed geometry types go into one ``GEOMETRY`` layer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio.raw
import shapely

from layers.deptlayers.store import FeatureRows

_NUMPY = {"integer": np.int64, "number": np.float64, "boolean": np.bool_}


def write_gpkg(rows: FeatureRows, fields: dict[str, str], path: Path, layer: str) -> Path:
    """Write features to a GeoPackage at ``path`` (a new file) as layer ``layer``.

    Parameters
    ----------
    rows : FeatureRows
    fields : dict
        Attribute name → type (the layer's ``fields``).
    path : Path
    layer : str
        The layer name inside the GeoPackage.

    Returns
    -------
    Path
    """
    props = [json.loads(p) for p in rows.properties]
    names = ["fid_src", *fields]
    data, masks = [rows.fid.astype(np.int64)], [None]
    for name, kind in fields.items():
        values = [p.get(name) for p in props]
        missing = np.array([v is None for v in values], dtype=bool)
        dtype = _NUMPY.get(kind)
        if dtype is None:
            arr = np.array([None if v is None else str(v) for v in values], dtype=object)
            masks.append(None)
        else:
            fill = False if dtype is np.bool_ else 0
            arr = np.array([fill if v is None else v for v in values], dtype=dtype)
            masks.append(missing if missing.any() else None)
        data.append(arr)
    has_mask = any(m is not None for m in masks)
    field_mask = (
        [m if m is not None else np.zeros(len(rows), bool) for m in masks] if has_mask else None
    )
    pyogrio.raw.write(
        str(path),
        shapely.to_wkb(rows.geometry),
        data,
        names,
        field_mask=field_mask,
        layer=layer,
        driver="GPKG",
        geometry_type="Unknown",
        crs="EPSG:4326",
        encoding="UTF-8",
    )
    return path
