#!/usr/bin/env bash
# The main job: set up, generate the sample city, build it, and serve the viewer.
#   scripts/demo.sh [DIR] [--port N] [--host H]
# DIR defaults to ./demo; re-running reuses what is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=demo
serve_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --port|--host) serve_args+=("$1" "$2"); shift 2 ;;
    *) dir=$1; shift ;;
  esac
done
bash scripts/setup.sh
[ -f "$dir/city.toml" ] || .venv/bin/cim sample "$dir"
.venv/bin/cim build "$dir/city.toml"
.venv/bin/cim info "$dir/city.toml"
exec .venv/bin/cim serve "$dir/city.toml" "${serve_args[@]}"
