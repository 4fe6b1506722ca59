"""The viewer's side of the manifest contract: what it reads is what the schema defines.

The manifest is typed in the core (``cim/manifest.py``) and described by
``cim/manifest.schema.json``; these tests hold the viewer to the same schema, so a key
renamed on one side fails here rather than in an operator's browser.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "cim" / "manifest.schema.json").read_text(encoding="utf-8"))
VIEWER_SRC = ROOT / "viewer" / "src"


def _viewer_manifest_keys() -> set[str]:
    """Top-level manifest keys the viewer's modules read (``manifest.X`` / ``manifest?.X``)."""
    keys: set[str] = set()
    for path in VIEWER_SRC.rglob("*.js"):
        text = path.read_text(encoding="utf-8")
        keys.update(re.findall(r"\bmanifest\??\.([A-Za-z_]\w*)", text))
    return keys


def test_every_manifest_key_the_viewer_reads_is_in_the_schema() -> None:
    read = _viewer_manifest_keys()
    assert {"name", "layers", "centre"} <= read, read  # the scan itself works
    unknown = read - set(SCHEMA["properties"])
    assert not unknown, f"viewer reads manifest keys the schema does not define: {unknown}"


def test_served_manifest_matches_the_schema(live_server: Any, viewer_city: Any) -> None:
    if viewer_city.kind != "sample":
        pytest.skip("the generated fixture city writes a hand-made manifest")
    with urllib.request.urlopen(live_server.url + "api/manifest", timeout=30) as resp:
        manifest = json.loads(resp.read())
    jsonschema.validate(manifest, SCHEMA)
    for key, layer in manifest["layers"].items():
        assert not str(layer.get("url", "")).startswith("/"), (key, layer)
