"""Builders and checks of the bad-input corpus (see conftest.py for the overview)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cim.cli import main

#: origin of the generated footprints: Wuhan, on the central meridian of EPSG:4547
LON0, LAT0 = 114.30, 30.55
GK = "EPSG:4547"  # CGCS2000 / 3-degree Gauss-Krüger CM 114E (no zone prefix)
GK_ZONE = "EPSG:4526"  # CGCS2000 / 3-degree Gauss-Krüger zone 38 (x carries "38")
M_LAT = 110_574.0
M_LON = 111_320.0 * np.cos(np.radians(LAT0))


# --- geometry helpers ---------------------------------------------------------------


def square(i: int, size: float = 10.0, spacing: float = 30.0) -> list[list[float]]:
    """Closed counter-clockwise lon/lat ring of a ``size`` m square, number ``i`` of a grid."""
    x = LON0 + (i % 6) * spacing / M_LON
    y = LAT0 + (i // 6) * spacing / M_LAT
    dx, dy = size / M_LON, size / M_LAT
    return [[x, y], [x + dx, y], [x + dx, y + dy], [x, y + dy], [x, y]]


def centre(i: int, spacing: float = 30.0) -> tuple[float, float]:
    """lon/lat of the centre of square ``i``."""
    ring = square(i, spacing=spacing)
    return (ring[0][0] + ring[2][0]) / 2, (ring[0][1] + ring[2][1]) / 2


def transform(ring: Sequence[Sequence[float]], dst: str, src: str = "EPSG:4326") -> list:
    """Ring coordinates from ``src`` to ``dst`` (x/lon first)."""
    from pyproj import Transformer

    t = Transformer.from_crs(src, dst, always_xy=True)
    xs, ys = t.transform([p[0] for p in ring], [p[1] for p in ring])
    return [[float(a), float(b)] for a, b in zip(xs, ys, strict=True)]


def wkt_polygon(ring: Sequence[Sequence[float]]) -> str:
    """WKT of a one-ring polygon."""
    return "POLYGON((" + ",".join(f"{float(x)!r} {float(y)!r}" for x, y in ring) + "))"


def feature(fid: str | None, geometry: dict | None, **props: Any) -> dict:
    """A GeoJSON feature with an ``id`` property (unless ``fid`` is None)."""
    properties = {"id": fid, **props} if fid is not None else dict(props)
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def polygon(ring: list, *holes: list) -> dict:
    """A GeoJSON Polygon."""
    return {"type": "Polygon", "coordinates": [ring, *holes]}


def good_features(n: int = 8, prefix: str = "b", start: int = 0, **props: Any) -> list[dict]:
    """``n`` valid 10 m square buildings ``{prefix}{k}`` with heights 10, 11, ..."""
    return [
        feature(f"{prefix}{k}", polygon(square(start + k)), height=10.0 + k, name=f"楼{k}", **props)
        for k in range(n)
    ]


# --- the project --------------------------------------------------------------------


@dataclass
class Outcome:
    """What one ``cim build`` did."""

    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        """Non-empty stderr lines."""
        return [ln for ln in self.stderr.splitlines() if ln.strip()]


@dataclass
class Project:
    """A damaged city project being written into ``root``."""

    root: Path
    capsys: pytest.CaptureFixture
    #: files written by the toolkit's previous runs or by the test as build leftovers
    toolkit_paths: set[Path] = field(default_factory=set)
    output_name: str = "output"

    @property
    def toml_path(self) -> Path:
        """The ``city.toml``."""
        return self.root / "city.toml"

    @property
    def output(self) -> Path:
        """The output folder the project asks for (default ``output``)."""
        return self.root / self.output_name

    def write(self, rel: str, data: str | bytes, encoding: str = "utf-8") -> Path:
        """Write a file (text in ``encoding``) under the project folder."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
        return path

    def toml(self, text: str, encoding: str = "utf-8") -> Path:
        """Write ``city.toml``."""
        return self.write("city.toml", text, encoding)

    def geojson(self, rel: str, features: list[dict], crs: str | None = None) -> Path:
        """A GeoJSON FeatureCollection (optionally with a legacy ``crs`` member)."""
        obj: dict[str, Any] = {"type": "FeatureCollection", "features": features}
        if crs:
            obj["crs"] = {"type": "name", "properties": {"name": crs}}
        return self.write(rel, json.dumps(obj, ensure_ascii=False))

    def csv(
        self,
        rel: str,
        header: Sequence[str],
        rows: Iterable[Sequence[Any]],
        encoding: str = "utf-8",
        bom: bool = False,
    ) -> Path:
        """A CSV file in ``encoding`` (quoted cells; ``bom`` adds a UTF-8 BOM)."""

        def cell(v: Any) -> str:
            return '"' + str(v).replace('"', '""') + '"'

        text = "\n".join(",".join(map(cell, r)) for r in [list(header), *rows]) + "\n"
        data = text.encode(encoding)
        return self.write(rel, (b"\xef\xbb\xbf" if bom else b"") + data)

    def _ogr(self, rel: str, features: list[dict], crs: str | None, driver: str, **kw: Any) -> Path:
        import pyogrio.raw
        import shapely.geometry

        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        names = list(features[0]["properties"])
        columns = [
            np.array([f["properties"].get(k) for f in features], dtype=object) for k in names
        ]
        columns = [c.astype(float) if all(isinstance(v, float) for v in c) else c for c in columns]
        wkb = np.array([shapely.geometry.shape(f["geometry"]).wkb for f in features], dtype=object)
        pyogrio.raw.write(
            path,
            wkb,
            columns,
            names,
            driver=driver,
            geometry_type="Polygon" if driver == "ESRI Shapefile" else "Unknown",
            crs=crs,
            **kw,
        )
        return path

    def shapefile(
        self,
        rel: str,
        features: list[dict],
        crs: str | None = "EPSG:4326",
        encoding: str = "UTF-8",
        cpg: bool = True,
    ) -> Path:
        """A shapefile from GeoJSON-like features (``cpg=False`` drops the .cpg)."""
        path = self._ogr(rel, features, crs, "ESRI Shapefile", encoding=encoding)
        if not cpg:
            path.with_suffix(".cpg").unlink(missing_ok=True)
        return path

    def geopackage(self, rel: str, features: list[dict], crs: str = "EPSG:4326") -> Path:
        """A GeoPackage layer ``buildings``."""
        return self._ogr(rel, features, crs, "GPKG", layer="buildings")

    def dem(
        self,
        rel: str = "dem.tif",
        *,
        crs: str | None = "EPSG:4326",
        value: float = 50.0,
        bounds: tuple[float, float, float, float] | None = None,
        size: int = 24,
    ) -> Path:
        """A tiny float32 GeoTIFF DEM (a gentle slope from ``value``) over ``bounds``.

        ``bounds`` are lon/lat (default: the footprint grid plus a margin); the
        raster is written in ``crs`` (None: no CRS in the file, lon/lat grid).
        """
        import rasterio
        from rasterio.transform import from_bounds

        w, s, e, n = bounds or (LON0 - 0.001, LAT0 - 0.001, LON0 + 0.003, LAT0 + 0.003)
        if crs not in (None, "EPSG:4326"):
            xs, ys = transform([[w, s], [e, n]], crs)[0], transform([[e, n]], crs)[0]
            w, s, e, n = xs[0], xs[1], ys[0], ys[1]
        data = (value + np.linspace(0, 2, size)[None, :] + np.zeros((size, 1))).astype("float32")
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=size,
            height=size,
            count=1,
            dtype="float32",
            crs=crs,
            transform=from_bounds(w, s, e, n, size, size),
        ) as dst:
            dst.write(data, 1)
        return path

    # --- running and checking ---

    def checksums(self) -> dict[Path, str]:
        """Checksums of every input file (everything but the toolkit's own output)."""
        out = {}
        for path in sorted(self.root.rglob("*")):
            if not path.is_file() or self._is_toolkit(path):
                continue
            out[path] = hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
        return out

    def _is_toolkit(self, path: Path) -> bool:
        if any(path == p or p in path.parents for p in self.toolkit_paths):
            return True
        return self.output != self.root and self.output in path.parents

    def build(self, *extra: str, toml: Path | None = None) -> Outcome:
        """``cim -q build city.toml -j 1`` in-process; input files checked untouched."""
        before = self.checksums()
        self.capsys.readouterr()
        argv = ["-q", "build", str(toml or self.toml_path), "-j", "1", *extra]
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
        captured = self.capsys.readouterr()
        outcome = Outcome(int(code), captured.out, captured.err)
        assert code != 70, f"internal error (exit 70): {outcome.stderr}"
        assert "Traceback" not in outcome.stderr, outcome.stderr
        after = self.checksums()
        touched = [str(p) for p, h in before.items() if after.get(p) != h]
        assert not touched, f"input files touched by the build: {touched}"
        return outcome

    def report(self) -> dict[str, Any]:
        """``build-report.json``'s stages."""
        return json.loads((self.output / "build-report.json").read_text(encoding="utf-8"))["stages"]

    def manifest(self) -> dict[str, Any]:
        """``manifest.json``."""
        return json.loads((self.output / "manifest.json").read_text(encoding="utf-8"))

    def tile_features(self) -> dict[str, dict[str, Any]]:
        """Every building in the L2 tiles: id → its metadata row."""
        from tiling.gltf import read_glb, read_property_table

        found: dict[str, dict[str, Any]] = {}
        for path in sorted((self.output / "tiles" / "l2").rglob("*.glb")):
            table = read_property_table(*read_glb(path.read_bytes()))
            for k, bid in enumerate(table["id"]):
                assert bid not in found, f"building {bid} is in two tiles"
                found[bid] = {name: col[k] for name, col in table.items()}
        return found

    def glb_schemas(self) -> list[dict[str, Any]]:
        """The EXT_structural_metadata schema of every L2 glb."""
        from tiling.gltf import read_glb

        return [
            read_glb(p.read_bytes())[0]["extensions"]["EXT_structural_metadata"]["schema"]
            for p in sorted((self.output / "tiles" / "l2").rglob("*.glb"))
        ]


BUILDINGS_TOML = (
    '[city]\nname = "坏数据城"\n[buildings]\npath = "{path}"\nid = "id"\ncrs = "EPSG:4326"\n{more}'
)


def buildings_project(
    project: Project, features: list[dict], more: str = "", path: str = "data/b.geojson"
) -> Project:
    """A project of one GeoJSON buildings file (lon/lat) and ``more`` city.toml lines."""
    project.geojson(path, features)
    project.toml(BUILDINGS_TOML.format(path=path, more=more))
    return project


def expect_error(outcome: Outcome, code: int | set[int], message: str) -> None:
    """An error exit: the code, and one ``cim:`` line matching ``message`` (regex)."""
    codes = {code} if isinstance(code, int) else code
    assert outcome.code in codes, (
        f"exit {outcome.code}, expected {sorted(codes)}; stderr: {outcome.stderr!r}"
    )
    assert len(outcome.lines) == 1, f"stderr is not one line: {outcome.lines!r}"
    line = outcome.lines[0]
    assert line.startswith("cim: "), line
    assert re.search(message, line), f"{line!r} does not match {message!r}"


def expect_built(
    project: Project,
    outcome: Outcome,
    valid: Iterable[str],
    *,
    bad: Iterable[str] = (),
    skipped: Iterable[str] = (),
    repaired: Iterable[str] = (),
    not_repaired: Iterable[str] = (),
) -> dict[str, dict[str, Any]]:
    """Exit 0; every ``valid`` id in the tiles; ``bad`` ids listed; counts add up.

    Returns the tile features (id → metadata) for further checks.
    """
    assert outcome.code == 0, f"exit {outcome.code}: {outcome.stderr!r}"
    stages = project.report()
    st = stages["buildings"]
    assert st["read"] == st["written"] + st["skipped_count"], st
    features = project.tile_features()
    assert len(features) == st["written"], (len(features), st["written"])
    missing = set(valid) - set(features)
    assert not missing, f"valid features lost: {sorted(missing)}; report: {st['skipped']}"
    listed_skip = {r["id"] for r in st["skipped"]}
    listed_repair = {r["id"] for r in st["repaired"]}
    assert all(r["reason"] for r in st["skipped"] + st["repaired"])
    for bid in bad:
        assert bid in listed_skip | listed_repair, f"{bid} neither repaired nor skipped: {st}"
        if bid not in listed_skip:
            assert bid in features, f"{bid} repaired but not in the tiles"
    for bid in skipped:
        assert bid in listed_skip, f"{bid} not listed as skipped: {st['skipped']}"
        assert bid not in features
    for bid in repaired:
        assert bid in listed_repair, f"{bid} not listed as repaired: {st['repaired']}"
        assert bid in features
    for bid in not_repaired:
        assert bid not in listed_repair, f"{bid} counted as a repair: {st['repaired']}"
    return features
