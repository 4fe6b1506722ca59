"""The bad-input corpus: damaged city projects generated in the tests (issue 8).

Every case writes a small project (5–30 features, one tiny DEM where it needs one)
into ``tmp_path``, runs ``cim -q build city.toml -j 1`` in-process through
:func:`cim.cli.main` and checks what the issue promises a GIS office:

* the exit code: 0 with each repair/skip listed in ``build-report.json``, or the
  documented error code (2 config, 3 CRS, 4 input data, 5 I/O); never 70;
* on an error, stderr is exactly one ``cim: ...`` line, without a traceback, naming the
  file / key / feature, and matching the case's regular expression;
* on success, every VALID feature of the input is in the L2 tiles (the ids of every
  ``*.glb`` under ``output/tiles/l2``, read with :func:`tiling.gltf.read_glb` and
  :func:`tiling.gltf.read_property_table`), each bad feature is listed as repaired or
  skipped with a reason, and ``read = written + skipped``;
* no input file was touched: checksums of every file of the project folder before and
  after the build (``city.toml`` included), whatever the output folder is set to.

Classes (one test module each)
------------------------------
``test_corpus_config.py``      city.toml: sections written as strings, wrong types, unknown
                        keys/sections, missing files, TOML syntax, non-UTF-8, and the
                        output-folder policy (input folder, ".", a file, a folder holding
                        a city.toml, a foreign non-empty folder, the parent folder)
``test_corpus_crs.py``         missing/unknown CRS, lon/lat in a Gauss-Krüger file (whole file
                        and one feature), zone prefix, x = 1e12, GCJ-02/BD-09 on GeoJSON
                        and CSV (positions checked), GeoJSON without ``crs`` member,
                        declared CRS vs ``.prj``, DEM in the wrong CRS / with none
``test_corpus_geometry.py``    rings (unclosed, 2-point, tiny, bow-tie), NaN/inf, empty,
                        points/lines, collections, 100k vertices, duplicates, holes, Z,
                        one-part and multi-part MultiPolygons, nothing usable
``test_corpus_attributes.py``  heights as text/negative/absurd/NaN, fractional floors, extras
                        (non-ASCII name, numeric), a 1 MB name, missing columns
``test_corpus_encodings.py``   GBK/GB18030/BOM CSV, wrong declared encoding, GBK shapefile
                        without .cpg, latin-1 accents
``test_corpus_files.py``       empty/header-only/feature-less files, truncated GeoPackage and
                        shapefile, a folder for a file, broken DEMs, a ragged CSV row,
                        one undecodable feature per reader (GeoParquet, GPKG, FGB, SHP)
``test_corpus_addresses.py``   accented Latin and GBK addresses, far-away and broken points
``test_corpus_state.py``       a build killed (``os._exit`` in a subprocess) mid-way and between
                        the renames of its swap, two builds at once, a failed build,
                        no absolute paths in the manifest, options after the command,
                        one real subprocess, the ground outside the DEM

How to add a case
-----------------
Write the damaged project with a :class:`corpus_kit.Project` (``project`` fixture;
the builders and checks live in ``corpus_kit.py``, imported as ``from corpus_kit
import ...``): ``geojson``,
``csv``, ``shapefile``, ``dem``, ``toml``; build it with ``project.build()``; then call
:func:`expect_error` (exit code, message regex) or :func:`expect_built` (valid ids that
must be in the tiles, bad ids that must be listed as repaired/skipped). Both run the
common checks above. Write the expectation from the issue's spec, not from what the
code does today. Keep each case small: the whole corpus must run in about a minute.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from corpus_kit import Project


@pytest.fixture
def project(tmp_path: Path, capsys: pytest.CaptureFixture) -> Project:
    """An empty project folder ``tmp_path/proj`` to write a damaged project into."""
    root = tmp_path / "proj"
    root.mkdir()
    return Project(root, capsys)
