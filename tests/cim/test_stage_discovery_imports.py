"""Stage discovery imports no stage's heavy libraries: a build pays only for what it runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: imported only by stages a buildings-only project does not run (pipelines: networkx,
#: the DEM and datum grids: rasterio; addresses: rapidfuzz and the index writer), or
#: only when needed
HEAVY = (
    "networkx",
    "rasterio",
    "rapidfuzz",
    "cim.pipelines",
    "cim.datum",
    "cim.raster",
    "cim.addresses",
    "tiling.addresses.build",
    "tiling.pipelines.model",
    "tiling.pipelines.tiles",
    "tqdm",  # progress bars: imported only when a build shows them
)

PROBE = """
import json, sys
from cim.stages import discover_stages
names = [s.name for s in discover_stages()]
print(json.dumps({"stages": names, "modules": sorted(sys.modules)}))
"""


def test_discovery_leaves_heavy_modules_unimported() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout
    found = json.loads(out)
    # discovery still finds every stage, its config types included
    assert {"buildings", "l2", "addresses", "pipelines", "l3"} <= set(found["stages"])
    loaded = set(found["modules"])
    assert sorted(m for m in HEAVY if m in loaded) == []


def test_address_package_names_resolve_lazily() -> None:
    probe = (
        "import sys, tiling.addresses as t\n"
        "assert 'cim.addresses' not in sys.modules\n"
        "from tiling.addresses import AddressIndex, build_index\n"
        "import cim.addresses, tiling.addresses.build as b\n"
        "assert AddressIndex is cim.addresses.AddressIndex and build_index is b.build_index\n"
        "assert 'parse_address' in dir(t)\n"
        "try:\n    t.no_such_name\nexcept AttributeError:\n    print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "ok"


def test_progress_off_passes_items_through(tmp_path: Path) -> None:
    from cim.report import BuildReport
    from cim.stages import BuildContext

    ctx = BuildContext(project=None, workdir=tmp_path, report=BuildReport(), progress=False)  # type: ignore[arg-type]
    assert list(ctx.track(range(3), total=3, desc="x")) == [0, 1, 2]
    ctx.progress = True
    assert list(ctx.track(iter("ab"), total=2, desc="x")) == ["a", "b"]
