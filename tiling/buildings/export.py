"""Write the building footprint table ``buildings.parquet`` (GeoParquet 1.1).

One row per building as it stands in the tiles: id, name, use, roof type, base
(WGS84 ellipsoidal metres), height, floors and the footprint as WKB in lon/lat
(OGC:CRS84). The read side is :class:`cim.outputs.BuildOutputs` ("which building is
at this point", "building by id"), used by the server and the live layers.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cim.errors import DatasetIOError
from cim.model import Buildings, as_wkb_arrow
from cim.outputs import BUILDINGS_FILE, BUILDINGS_TABLE_VERSION
from tiling.buildings.footprints import FootprintArrays
from tiling.buildings.partitions import dictionary_columns

log = logging.getLogger(__name__)

__all__ = ["write_buildings_table"]

#: The table's columns, in order.
COLUMNS = ("id", "name", "use", "roof_type", "base", "height", "floors", "geometry")


def _strings(values: np.ndarray) -> pa.Array:
    try:  # the usual case: every value is already a str
        return pc.fill_null(pa.array(values, pa.string()), "")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array(["" if v is None else str(v) for v in values.tolist()], pa.string())


def write_buildings_table(
    buildings: Buildings,
    folder: Path,
    *,
    columns: pa.Table | None = None,
    figures: FootprintArrays | None = None,
    extent: tuple[float, float, float, float] | None = None,
) -> Path:
    """Write ``buildings.parquet`` into ``folder``.

    Parameters
    ----------
    buildings : Buildings
        The prepared, grounded buildings.
    folder : Path
        The build's output (work) folder.
    columns : pyarrow.Table, optional
        A table of ``buildings`` that already holds the columns of this one under the
        same names (the building partitions'): they are taken from it, not converted
        again.
    figures : FootprintArrays, optional
        The footprints' WKB, bounds and types when the caller has them (row for row
        with ``buildings``): not computed again.
    extent : (west, south, east, north), optional
        ``figures.total_bounds()`` when the caller has it: ``figures.bounds`` is not
        read then (the caller may have let it go).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    DatasetIOError
        When the file cannot be written.
    """
    path = Path(folder) / BUILDINGS_FILE
    if figures is None:
        figures = FootprintArrays.of(buildings.footprints)
    kinds = [str(k) for k in np.unique(figures.kinds).tolist()]
    names = {"3": "Polygon", "6": "MultiPolygon"}
    extent = figures.total_bounds() if extent is None else extent
    bbox = [float(b) for b in extent] if len(buildings) else []
    geo = {
        "version": "1.1.0",
        "primary_column": "geometry",
        "columns": {
            "geometry": {
                "encoding": "WKB",
                "geometry_types": [names.get(k, "Unknown") for k in kinds],
                "bbox": bbox,
            }
        },
    }
    if columns is not None:
        table = columns.select(list(COLUMNS))
    else:
        table = pa.table(
            {
                "id": _strings(buildings.ids),
                "name": _strings(buildings.name),
                "use": _strings(buildings.use),
                "roof_type": _strings(buildings.roof_type),
                "base": pa.array(np.asarray(buildings.base, dtype=np.float64)),
                "height": pa.array(np.asarray(buildings.height, dtype=np.float64)),
                "floors": pa.array(np.asarray(buildings.floors, dtype=np.float64)),
                "geometry": as_wkb_arrow(figures.wkb),
            }
        )
    meta = {
        b"geo": json.dumps(geo).encode(),
        b"cim:buildings": json.dumps({"version": BUILDINGS_TABLE_VERSION}).encode(),
    }
    table = table.replace_schema_metadata(meta)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(table, tmp, compression="zstd", use_dictionary=dictionary_columns(table))
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DatasetIOError(f"cannot write {BUILDINGS_FILE} ({exc})", path=path) from exc
    log.debug("%s: %d buildings", path, len(buildings))
    return path
