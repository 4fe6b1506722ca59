"""The ``cim`` command line.

Commands
--------
``cim sample DIR``          write the generated sample city project into DIR
``cim build CITY.toml``     run every stage whose inputs are present
``cim info OUTPUT_DIR``     summarise a built output folder (or a city.toml's)
``cim serve CITY.toml``     serve the output and the viewer (plug-in from ``server``)

Global options (``-v``, ``-q``) work before or after the command:
``cim -v build city.toml`` and ``cim build city.toml -v`` are the same.

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
import signal
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


def _global_options(p: argparse.ArgumentParser, default: object) -> None:
    """-v / -q, on the main parser and on every command (after it, as users type them)."""
    p.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="debug output and tracebacks"
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="only errors, no progress bars"
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cim", description="City information model toolkit")
    p.add_argument("--version", action="version", version=f"cim {__version__}")
    _global_options(p, False)
    # on the commands the defaults are suppressed, so a -v given before the command stays
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, parents=[common])

    s = command("sample", "write the generated sample city project")
    s.add_argument("dir", type=Path)
    s.add_argument("--seed", type=int, default=2026)
    s.set_defaults(func=_cmd_sample)

    b = command("build", "build a city project's output folder")
    b.add_argument("project", type=Path, help="city.toml")
    b.add_argument(
        "-j", "--jobs", type=int, default=None, help="worker processes (default: all cores)"
    )
    b.add_argument("--force", action="store_true", help="rebuild even when inputs are unchanged")
    b.add_argument(
        "--scheduler",
        default=None,
        help="run tasks on Dask: tcp://host:port, or local:N for a local cluster of N "
        "processes (default: [build] scheduler, else -j local processes)",
    )
    b.add_argument(
        "--no-wait",
        action="store_true",
        help="fail at once when another build of the same output folder is running",
    )
    b.set_defaults(func=_cmd_build)

    i = command("info", "summarise a built output folder")
    i.add_argument("path", type=Path, help="output folder or city.toml")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")
    i.set_defaults(func=_cmd_info)

    v = command("serve", "serve the output and the viewer")
    v.add_argument("project", type=Path, help="city.toml")
    v.add_argument("--host", default="127.0.0.1")
    v.add_argument("--port", type=int, default=8000)
    v.add_argument("--debug", action="store_true", help="Flask's debug server instead of waitress")
    v.add_argument(
        "--compare",
        type=Path,
        metavar="OTHER",
        help="another build (output folder or city.toml) served read-only for swipe compare",
    )
    v.set_defaults(func=_cmd_serve)
    # other packages' commands (e.g. `departments` from layers) add their own sub-parser
    for ep in entry_points(group="cim.commands"):
        if ep.name != "serve":
            ep.load()(sub)
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
    # a plain `kill` unwinds like Ctrl-C: the temporary folder goes, the output stays
    signal.signal(signal.SIGTERM, _terminated)
    result = build_project(
        args.project,
        jobs=jobs,
        progress=_QUIET["progress"],
        force=args.force,
        wait=not args.no_wait,
        scheduler=args.scheduler,
    )
    if result.up_to_date:
        print(f"{result.output}: up to date")
    else:
        _log_summary(result.manifest, result.warnings)
        print(
            f"{result.output}: built {', '.join(result.ran)} in {result.seconds:.1f} s"
            + (f" (reused {', '.join(result.reused)})" if result.reused else "")
        )
        for name, what in result.partial.items():
            print(f"{result.output}: {name}: {what}, reused")
    return 0


def _terminated(signum: int, _frame: Any) -> None:
    log.error("terminated")
    raise SystemExit(128 + signum)


def _log_summary(manifest: dict[str, Any], warnings: dict[str, list[str]]) -> None:
    """One line of per-stage counts, then every stage warning, on stderr (hidden by -q)."""
    parts = [
        f"{name} {st['read']:,} read, {st['written']:,} written, {st['repaired']:,} repaired, "
        f"{st['skipped']:,} skipped" + (" (reused)" if st.get("reused") else "")
        for name, st in manifest.get("stages", {}).items()
    ]
    log.info("summary: %s", "; ".join(parts))
    for name, messages in warnings.items():
        for message in messages:
            log.warning("warning: %s: %s", name, message)


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
    from cim.output import readable_output

    if path.suffix == ".toml":
        from cim.config import load_project

        path = load_project(path).output
    path = readable_output(path)  # also after a killed build (see cim.output.recover)
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
    if args.project.suffix == ".toml":
        from cim.config import load_project
        from cim.output import readable_output

        # repair what a killed build left (a cut swap) before serving the folder
        readable_output(load_project(args.project).output)
    extra = {"compare": args.compare} if args.compare else {}
    serve(args.project, host=args.host, port=args.port, debug=args.debug, **extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
