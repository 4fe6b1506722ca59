"""PostGIS as the footprint input: read by spatial partition with server-side cursors.

A real PostgreSQL + PostGIS server (tests/layers/pgserver.py) holds the synthetic
footprints of a small city; the build from ``postgresql://...?table=`` must give the
same L2 tileset as the build from the same footprints in a GeoParquet file, the SRID
must act as the file's own CRS, and a ``query`` must select rows.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import shapely
from scale_helpers import REPO, output_files

sys.path.insert(0, str(REPO / "tests" / "layers"))
from pgserver import PgServer, pg_missing, start_pg, stop_pg

from bench.synthetic import footprints, write_geoparquet
from cim.build import build_project
from cim.errors import ConfigError
from cim.readers import DatabaseSource, read_features

N = 150


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    problem = pg_missing()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is needed under CI: {problem}")
        pytest.skip(problem)
    server = start_pg()
    try:
        yield server
    finally:
        stop_pg(server)


@pytest.fixture(scope="module")
def db_url(pg: PgServer) -> str:
    import psycopg

    url = pg.fresh_database()
    geoms, cols = footprints(N, seed=5)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA city")
        conn.execute(
            "CREATE TABLE city.buildings (gid serial PRIMARY KEY, id text, height float8,"
            " floors float8, use text, name text, roof_type text, geom geometry(Polygon, 4547))"
        )
        conn.execute("CREATE INDEX ON city.buildings USING gist (geom)")
        rows = [
            (
                cols["id"][i],
                _num(cols["height"][i]),
                _num(cols["floors"][i]),
                cols["use"][i],
                cols["name"][i],
                cols["roof_type"][i],
                shapely.to_wkb(geoms[i]),
            )
            for i in range(N)
        ][::-1]  # another order than the file's: the result must not care
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO city.buildings (id, height, floors, use, name, roof_type, geom) "
                "VALUES (%s, %s, %s, %s, %s, %s, ST_GeomFromWKB(%s, 4547))",
                rows,
            )
        conn.execute("INSERT INTO city.buildings (id, height) VALUES ('nogeom', 10)")
    return url


def _num(v: float) -> float | None:
    return None if np.isnan(v) else float(v)


def _project(root: Path, path: str, extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    toml = root / "city.toml"
    toml.write_text(
        f'[buildings]\npath = "{path}"\nid = "id"\n{extra}\n[l2]\nmax_features_per_tile = 25\n',
        encoding="utf-8",
    )
    return toml


def test_reader_reads_every_row_once_with_the_srid_as_crs(db_url: str) -> None:
    table = read_features(DatabaseSource.parse(f"{db_url}?table=city.buildings"))
    assert len(table) == N + 1
    assert sorted(table.columns["id"].tolist()) == sorted(
        [*footprints(N, seed=5)[1]["id"].tolist(), "nogeom"]
    )
    assert table.crs == "EPSG:4547"
    assert table.columns["floors"].dtype == np.float64
    assert shapely.is_missing(table.geometry).sum() == 1


def test_postgis_build_matches_the_file_build(db_url: str, tmp_path: Path) -> None:
    data = tmp_path / "file" / "b.parquet"
    data.parent.mkdir(parents=True)
    write_geoparquet(data, N, seed=5)
    from_file = _project(tmp_path / "file", "b.parquet")
    from_db = _project(tmp_path / "db", f"{db_url}?table=city.buildings")
    build_project(from_file, progress=False)
    result = build_project(from_db, progress=False)
    a = output_files(tmp_path / "file" / "output")
    b = output_files(tmp_path / "db" / "output")
    tiles = [k for k in a if k.startswith("tiles/l2/")]
    assert len(tiles) > 4
    assert {k: b.get(k) for k in tiles} == {k: a[k] for k in tiles}
    assert result.manifest["crs"] == "EPSG:4547"
    # the database's rows are the input: unchanged rows, nothing rebuilt
    assert build_project(from_db, progress=False).up_to_date


def test_query_selects_rows(db_url: str, tmp_path: Path) -> None:
    toml = _project(
        tmp_path, db_url, 'query = "SELECT id, height, geom FROM city.buildings WHERE height > 20"'
    )
    result = build_project(toml, progress=False)
    heights = footprints(N, seed=5)[1]["height"]
    assert result.manifest["layers"]["l2"]["buildings"] == int(np.sum(heights > 20))


def test_table_and_query_together_are_refused(db_url: str, tmp_path: Path) -> None:
    toml = _project(tmp_path, f"{db_url}?table=city.buildings", 'query = "SELECT 1"')
    with pytest.raises(ConfigError, match="one table"):
        build_project(toml, progress=False)
