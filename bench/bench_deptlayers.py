"""Department layers at size: upload + ingest of a 100,000-feature shapefile, then tiles.

Writes a zipped shapefile of N points (CGCS2000 Gauss-Krüger EPSG:4547, GBK text, no
.cpg, four attributes), POSTs it to ``/api/layers`` (multipart, a department token)
through the app and times the request (upload parsing, unzip, read, CRS conversion,
repair, commit: the response comes after the commit). Then times the tiles the viewer
asks for from a city-wide view down to a street, their feature counts and sizes, and
the GeoJSON export.

    .venv/bin/python bench/bench_deptlayers.py                 # 100,000 points, SQLite
    .venv/bin/python bench/bench_deptlayers.py --features 20000 --store postgresql://...

Target (issue "Department layers"): upload and ingest of 100,000 features ≤ 10 s.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pyogrio.raw
import shapely
from pyproj import Transformer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LON0, LAT0 = 114.30, 30.58  # Wuhan, inside EPSG:4547's zone


def write_shapefile(folder: Path, n: int, seed: int = 7) -> tuple[Path, float]:
    """A zipped GBK point shapefile of ``n`` features; returns it and the seconds taken."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    lon = LON0 + rng.uniform(-0.12, 0.12, n)  # a city of ~23 × 27 km
    lat = LAT0 + rng.uniform(-0.12, 0.12, n)
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:4547", always_xy=True).transform(lon, lat)
    kinds = np.array(["消火栓", "阀门", "水表", "检查井"], dtype=object)
    fields = [
        np.array([f"设施{i:06d}" for i in range(n)], dtype=object),
        kinds[rng.integers(0, 4, n)],
        rng.integers(1990, 2025, n).astype(np.int64),
        rng.uniform(0.1, 0.6, n).round(3),
    ]
    shp = folder / "设施.shp"
    pyogrio.raw.write(
        str(shp),
        shapely.to_wkb(shapely.points(x, y)),
        fields,
        ["名称", "类型", "年份", "压力"],
        driver="ESRI Shapefile",
        geometry_type="Point",
        crs="EPSG:4547",
        encoding="GBK",
    )
    shp.with_suffix(".cpg").unlink(missing_ok=True)
    out = folder / "facilities.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for part in folder.glob("设施.*"):
            zf.write(part, part.name)
    return out, time.perf_counter() - t0


def _breakdown(zpath: Path, folder: Path, store_url: str) -> None:
    """The ingest again, stage by stage, in-process (where the time goes)."""
    from cim.readers import detect_shapefile_encoding
    from layers.deptlayers.ingest import clean_features, read_upload, unpack
    from layers.deptlayers.store import DeptLayers
    from layers.store import Department, open_store

    work = folder / "breakdown"
    work.mkdir()
    times = {}
    t = time.perf_counter()
    shp = unpack(zpath, work)
    times["unzip"] = time.perf_counter() - t
    t = time.perf_counter()
    encoding = detect_shapefile_encoding(shp)
    times[f"encoding detection ({encoding})"] = time.perf_counter() - t
    t = time.perf_counter()
    table = read_upload(shp, encoding=encoding)
    times["read (pyogrio, given the encoding)"] = time.perf_counter() - t
    t = time.perf_counter()
    clean = clean_features(table)
    times["CRS + repair"] = time.perf_counter() - t
    store = open_store(store_url)
    layers = DeptLayers(store)
    t = time.perf_counter()
    layers.create(Department("water", "水务局"), clean, name="breakdown")
    times["store (one transaction)"] = time.perf_counter() - t
    store.close()
    print("  of which (measured again, in-process):")
    for name, seconds in times.items():
        print(f"    {name:<36} {seconds:6.2f} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=int, default=100_000)
    ap.add_argument("--store", help="a PostgreSQL URL (default: a temporary SQLite file)")
    args = ap.parse_args(argv)

    from layers.departments import add_department
    from layers.deptlayers.tiles import TILE_BUDGET
    from layers.store import open_store
    from server import create_app

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store_url = args.store or str(folder / "live.sqlite")
        st = open_store(store_url)
        token = add_department(st, "water", "水务局")
        st.close()
        app = create_app({"LIVE_STORE": store_url, "TESTING": True})
        client = app.test_client()
        src = folder / "src"
        src.mkdir()
        zpath, t_write = write_shapefile(src, args.features)
        size_mb = zpath.stat().st_size / 1e6
        body = zpath.read_bytes()
        t0, c0 = time.perf_counter(), time.process_time()
        r = client.post(
            "/api/layers",
            data={
                "file": (io.BytesIO(body), zpath.name),
                "name": "供水设施",
                "style": json.dumps(
                    {
                        "by": {"kind": "category", "attribute": "类型"},
                        "label": {"attribute": "名称"},
                    }
                ),
            },
            headers={"Authorization": f"Bearer {token}"},
            content_type="multipart/form-data",
        )
        t_ingest, c_ingest = time.perf_counter() - t0, time.process_time() - c0
        if r.status_code != 201:
            print(r.get_json())
            return 1
        layer = r.get_json()["layer"]
        lid = layer["id"]
        print(f"features                 {args.features:,} points (EPSG:4547, GBK, no .cpg)")
        print(f"shapefile zip            {size_mb:.1f} MB (written in {t_write:.1f} s)")
        print(
            f"upload + ingest          {t_ingest:.2f} s wall, {c_ingest:.2f} s CPU "
            f"(target ≤ 10 s)  "
            f"-> {layer['feature_count']:,} features, serve={layer['serve']}"
        )
        _breakdown(zpath, folder, store_url)
        rows = []
        for z in (9, 10, 11, 12, 13, 14, 15):
            size = 180.0 / 2**z
            x = int((LON0 + 180.0) // size)
            y = int((90.0 - LAT0) // size)
            t1 = time.perf_counter()
            resp = client.get(f"/api/layers/{lid}/tiles/{z}/{x}/{y}.json")
            dt = time.perf_counter() - t1
            tile = json.loads(resp.data)
            rows.append(
                (z, dt, len(resp.data), len(tile["features"]), tile["count"], tile["complete"])
            )
        print(f"tiles (budget {TILE_BUDGET} features; first call builds the layer's index):")
        print("  z    ms      KB   features  in cell  complete")
        for z, dt, nbytes, nf, cnt, comp in rows:
            print(f"  {z:<3} {dt * 1000:6.1f} {nbytes / 1024:7.1f} {nf:9,} {cnt:9,}  {comp}")
        t2 = time.perf_counter()
        resp = client.get(f"/api/layers/{lid}/export.geojson")
        data = resp.get_data()
        print(
            f"export.geojson           {time.perf_counter() - t2:.2f} s, {len(data) / 1e6:.1f} MB"
        )
        t3 = time.perf_counter()
        resp = client.get(f"/api/layers/{lid}/features?q=设施000123")
        print(
            f"search q=                {(time.perf_counter() - t3) * 1000:.0f} ms, "
            f"{len(json.loads(resp.data)['features'])} features"
        )
        app.extensions["cim.live"].store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
