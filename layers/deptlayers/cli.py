"""``cim layers``: add, list, delete, restore and export department layers (and add
the demo's).

Registered through the ``cim.commands`` entry point group. The command line works on
the store named by the project's ``[live]`` section with the operator's rights: ``add``
writes for the ``--department`` named (which must be registered and not revoked),
``delete``/``restore`` act as the administrator (whoever can run the command can
open the store file anyway).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from cim.errors import ConfigError, NotFoundError
from layers.store import Department

#: the principal of console commands other than ``add``
CONSOLE = Department("console", "command line", "admin")


def layers_command(sub: argparse._SubParsersAction) -> None:
    """Add ``cim layers add|list|versions|delete|restore|export`` to the ``cim`` parser."""
    p = sub.add_parser("layers", help="department layers: upload, list, delete, restore")
    lsub = p.add_subparsers(dest="layers_command", required=True)
    a = lsub.add_parser("add", help="upload a file as a department's layer (prints the report)")
    a.add_argument("project", type=Path, help="city.toml")
    a.add_argument("file", type=Path, help="zipped shapefile, KML/KMZ, GPKG, GeoJSON, CSV, FGB")
    a.add_argument("--department", required=True, help="the owning department id, e.g. water")
    a.add_argument("--name", help="layer name (default: the file name)")
    a.add_argument("--crs", help="CRS of a file that carries none, e.g. EPSG:4547 or GCJ-02")
    a.add_argument("--encoding", help="text encoding of a shapefile/CSV, e.g. GBK")
    a.add_argument("--layer", help="layer inside a GeoPackage")
    a.add_argument("--mode", choices=("new", "replace", "append"), default="new")
    a.add_argument("--style", help="style JSON, or @file.json")
    a.add_argument("--readable-by", default=None, help="'all' (default) or dept ids: a,b")
    a.set_defaults(func=_add)
    ls = lsub.add_parser("list", help="list layers")
    ls.add_argument("project", type=Path)
    ls.add_argument("--deleted", action="store_true", help="include deleted layers")
    ls.set_defaults(func=_list)
    v = lsub.add_parser("versions", help="a layer's versions")
    v.add_argument("project", type=Path)
    v.add_argument("id", type=int)
    v.set_defaults(func=_versions)
    d = lsub.add_parser("delete", help="delete a layer (restorable)")
    d.add_argument("project", type=Path)
    d.add_argument("id", type=int)
    d.set_defaults(func=_delete)
    r = lsub.add_parser("restore", help="undelete a layer, or make an earlier version current")
    r.add_argument("project", type=Path)
    r.add_argument("id", type=int)
    r.add_argument("--version", type=int, help="the version to restore (default: current)")
    r.set_defaults(func=_restore)
    e = lsub.add_parser("export", help="write a layer to .geojson or .gpkg")
    e.add_argument("project", type=Path)
    e.add_argument("id", type=int)
    e.add_argument("out", type=Path, help="a new .geojson or .gpkg file")
    e.add_argument("--version", type=int)
    e.set_defaults(func=_export)
    m = lsub.add_parser(
        "demo",
        help="add the demo's layers to a built city: water's hydrants (GBK shapefile, "
        "Gauss-Krüger) and city management's street furniture (GCJ-02 CSV)",
    )
    m.add_argument("project", type=Path)
    m.set_defaults(func=_demo)


def _open(project: Path):
    from layers.config import live_config
    from layers.deptlayers.store import DeptLayers
    from layers.store import open_store

    store = open_store(live_config(project))
    return DeptLayers(store), store


def _add(args: argparse.Namespace) -> int:
    from cim.config import load_project
    from layers.deptlayers.ingest import ingest_file

    style = args.style
    if style and style.startswith("@"):
        style = Path(style[1:]).read_text(encoding="utf-8")
    try:
        style_json = json.loads(style) if style else None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--style is not JSON ({exc})") from exc
    layers, store = _open(args.project)
    try:
        found = store.department_row(args.department)
        if found is None or found[0].revoked:
            raise NotFoundError(
                f"no active department {args.department!r} (cim departments add ...)"
            )
        dept = found[0]
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="cim-layer-") as tmp:
            clean = ingest_file(
                args.file,
                Path(tmp),
                crs=args.crs,
                default_crs=load_project(args.project).crs,
                encoding=args.encoding,
                layer=args.layer,
            )
        name = args.name or args.file.stem
        if args.mode == "new":
            layer = layers.create(
                dept,
                clean,
                name=name,
                style=style_json,
                readable_by=args.readable_by,
                source=args.file.name,
            )
        else:
            same = [
                lay
                for lay in layers.list(dept, deleted=True)
                if lay.name == name and lay.department == dept.id
            ]
            if not same:
                raise NotFoundError(f"no layer named {name!r} of department {dept.id!r}")
            layer = layers.add_version(
                dept, same[0].id, clean, mode=args.mode, source=args.file.name
            )
        seconds = time.perf_counter() - start
        report = layers.report(layer)
    finally:
        store.close()
    print(
        json.dumps(
            {"layer": layer.to_json(), "seconds": round(seconds, 3), "report": report},
            ensure_ascii=False,
            indent=1,
        )
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    layers, store = _open(args.project)
    try:
        for lay in layers.list(CONSOLE, deleted=args.deleted):
            readers = "all" if lay.readable_by is None else ",".join(lay.readable_by)
            state = "deleted" if lay.deleted else "active"
            print(
                f"{lay.id}\t{lay.department}\t{lay.name}\tv{lay.version}\t"
                f"{lay.feature_count} features\treadable by {readers}\t{state}"
            )
    finally:
        store.close()
    return 0


def _versions(args: argparse.Namespace) -> int:
    layers, store = _open(args.project)
    try:
        for v in layers.versions(CONSOLE, args.id):
            mark = "*" if v["current"] else " "
            print(
                f"{mark}{v['version']}\t{v['mode']}\t{v['created']}\t{v['created_by']}\t"
                f"{v['feature_count']} features\t{v['source'] or ''}"
            )
    finally:
        store.close()
    return 0


def _delete(args: argparse.Namespace) -> int:
    layers, store = _open(args.project)
    try:
        layer = layers.delete(CONSOLE, args.id)
    finally:
        store.close()
    print(f"layer {layer.id} ({layer.name}) deleted; `cim layers restore` brings it back")
    return 0


def _restore(args: argparse.Namespace) -> int:
    layers, store = _open(args.project)
    try:
        layer = layers.restore(CONSOLE, args.id, args.version)
    finally:
        store.close()
    print(f"layer {layer.id} ({layer.name}) restored: version {layer.version} is current")
    return 0


def _export(args: argparse.Namespace) -> int:
    from layers.deptlayers.export import write_gpkg
    from layers.deptlayers.store import feature_collection_chunks

    if args.out.exists():
        raise ConfigError(f"{args.out} exists; the toolkit never overwrites what it did not write")
    suffix = args.out.suffix.lower()
    if suffix not in (".geojson", ".gpkg"):
        raise ConfigError("export to a .geojson or .gpkg file")
    layers, store = _open(args.project)
    try:
        layer = layers.get(CONSOLE, args.id)
        rows, _ = layers.features(layer, version=args.version)
        if suffix == ".gpkg":
            write_gpkg(rows, layers.version_fields(layer, args.version), args.out, layer.name)
        else:
            with open(args.out, "w", encoding="utf-8") as fh:
                for chunk in feature_collection_chunks(rows, {"name": layer.name}):
                    fh.write(chunk)
    finally:
        store.close()
    print(f"{len(rows)} features written to {args.out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from layers.deptlayers.demo import add_demo_layers

    for demo, layer, added in add_demo_layers(args.project):
        state = "added" if added else "already there"
        print(
            f"{layer.id}\t{demo.department}\t{layer.name}\t{layer.feature_count} features"
            f"\t{demo.path.name}\t{state}"
        )
    return 0
