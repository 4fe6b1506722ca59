"""The ``cim`` command line.

Commands
--------
``cim sample DIR``          write the generated sample city project into DIR
``cim build CITY.toml``     run every stage whose inputs are present
``cim info OUTPUT_DIR``     summarise a built output folder (or a city.toml's)
``cim serve CITY.toml``     serve the output and the viewer (plug-in from ``server``)

Exit codes
----------
0 success · 1 other toolkit error · 2 city.toml problem · 3 CRS problem ·
4 unusable input data · 5 file cannot be read or written · 6 not found ·
70 internal error (a bug: rerun with -v and report the traceback) · 130 interrupted
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from cim import __version__
from cim.errors import CimError, NotFoundError

log = logging.getLogger("cim")
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args) or 0)
    except CimError as exc:
        log.error("%s", exc)
        if args.verbose:
            log.exception("traceback")
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: say so, and show the traceback with -v
        log.error(
            "internal error: %s: %s (rerun with -v for the traceback)", type(exc).__name__, exc
        )
        if args.verbose:
            log.exception("traceback")
        return EXIT_INTERNAL


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cim", description="City information model toolkit")
    p.add_argument("--version", action="version", version=f"cim {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug output and tracebacks")
    p.add_argument("-q", "--quiet", action="store_true", help="only errors, no progress bars")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("sample", help="write the generated sample city project")
    s.add_argument("dir", type=Path)
    s.add_argument("--seed", type=int, default=2026)
    s.set_defaults(func=_cmd_sample)

    b = sub.add_parser("build", help="build a city project's output folder")
    b.add_argument("project", type=Path, help="city.toml")
    b.add_argument(
        "-j", "--jobs", type=int, default=None, help="worker processes (default: all cores)"
    )
    b.add_argument("--force", action="store_true", help="rebuild even when inputs are unchanged")
    b.set_defaults(func=_cmd_build)

    i = sub.add_parser("info", help="summarise a built output folder")
    i.add_argument("path", type=Path, help="output folder or city.toml")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")
    i.set_defaults(func=_cmd_info)

    v = sub.add_parser("serve", help="serve the output and the viewer")
    v.add_argument("project", type=Path, help="city.toml")
    v.add_argument("--host", default="127.0.0.1")
    v.add_argument("--port", type=int, default=8000)
    v.add_argument("--debug", action="store_true", help="Flask's debug server instead of waitress")
    v.set_defaults(func=_cmd_serve)
    return p


def _configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("cim: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("rasterio").setLevel(max(level, logging.WARNING))
    logging.getLogger("pyogrio").setLevel(max(level, logging.WARNING))
    _QUIET["progress"] = not quiet and sys.stderr.isatty()


_QUIET: dict[str, bool] = {"progress": True}


def _cmd_sample(args: argparse.Namespace) -> int:
    from cim.sample import write_sample

    toml = write_sample(args.dir, seed=args.seed)
    log.info("sample city written: %s", toml)
    print(toml)
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    import os

    from cim.build import build_project

    jobs = args.jobs or os.cpu_count() or 1
    result = build_project(args.project, jobs=jobs, progress=_QUIET["progress"], force=args.force)
    if result.up_to_date:
        print(f"{result.output}: up to date")
    else:
        print(
            f"{result.output}: built {', '.join(result.ran)} in {result.seconds:.1f} s"
            + (f" (reused {', '.join(result.reused)})" if result.reused else "")
        )
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    summary = summarise(args.path)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=1))
        return 0
    print(f"{summary['name']}  ({summary['output']})")
    print(f"  built {summary['built_at']} by {summary['generator']}; source CRS {summary['crs']}")
    if summary["extent"]:
        w, s, e, n = summary["extent"]
        print(f"  extent  lon {w:.5f} … {e:.5f}, lat {s:.5f} … {n:.5f}")
    for name, st in summary["stages"].items():
        tag = " (reused)" if st.get("reused") else ""
        print(
            f"  {name:<10} read {st['read']:>9,}  written {st['written']:>9,}  "
            f"repaired {st['repaired']:>7,}  skipped {st['skipped']:>6,}  "
            f"{st['seconds']:7.1f} s{tag}"
        )
    for key, layer in summary["layers"].items():
        print(
            f"  layer {key:<10} {layer['url']:<28} {layer['files']:>7,} files  "
            f"{_size(layer['bytes'])}"
        )
    return 0


def summarise(path: Path) -> dict[str, Any]:
    """Summary of a built output folder: manifest figures plus sizes on disk.

    ``path`` may be the output folder or a city.toml (its output folder is used).
    """
    if path.suffix == ".toml":
        from cim.config import load_project

        path = load_project(path).output
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise NotFoundError(
            "no manifest.json: not a built output folder (run cim build)", path=path
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    layers = {}
    for key, layer in manifest.get("layers", {}).items():
        target = path / layer["url"]
        folder = target.parent if target.suffix == ".json" else target
        files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else [target]
        layers[key] = {
            "url": layer["url"],
            "files": len(files),
            "bytes": sum(p.stat().st_size for p in files if p.exists()),
        }
    return {
        "name": manifest.get("name"),
        "output": str(path),
        "crs": manifest.get("crs"),
        "extent": manifest.get("extent"),
        "centre": manifest.get("centre"),
        "built_at": manifest.get("built_at"),
        "generator": manifest.get("generator"),
        "stages": manifest.get("stages", {}),
        "layers": layers,
    }


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _cmd_serve(args: argparse.Namespace) -> int:
    plugins = {ep.name: ep for ep in entry_points(group="cim.commands")}
    if "serve" not in plugins:
        raise NotFoundError("the server package is not installed (pip install -e .)")
    serve = plugins["serve"].load()
    serve(args.project, host=args.host, port=args.port, debug=args.debug)
    return 0


if __name__ == "__main__":
    sys.exit(main())
