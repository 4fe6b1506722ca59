#!/usr/bin/env bash
# Install everything the toolkit needs on a fresh Debian machine, idempotently:
#   - a Python virtual environment in .venv with the package and its dev extras;
#   - npm packages: CesiumJS for the viewer (viewer/) and the Khronos glTF validator;
#   - with --browser: Debian's chromium (for the headless viewer tests).
# Each step is skipped when what it would install is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

want_browser=0
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=1 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

say() { printf 'setup: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_packages=()
command -v python3 >/dev/null || apt_packages+=(python3 python3-venv)
command -v node >/dev/null || apt_packages+=(nodejs npm)
if [ "$want_browser" = 1 ] && ! command -v chromium >/dev/null; then
  apt_packages+=(chromium fonts-noto-cjk)
fi
# the MQTT tests start their own broker (the Debian service is never started)
if [ "$want_browser" = 1 ] && ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
  apt_packages+=(mosquitto)
fi
# the live-store tests start their own PostgreSQL + PostGIS in a temporary folder
# (tests/layers/conftest.py); the cluster Debian creates is never started
if [ "$want_browser" = 1 ] && ! compgen -G "/usr/share/postgresql/*/extension/postgis.control" >/dev/null; then
  apt_packages+=(postgresql postgresql-postgis)
fi
if [ ${#apt_packages[@]} -gt 0 ]; then
  say "installing Debian packages: ${apt_packages[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

stamp() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

py_stamp=$(stamp setup.cfg pyproject.toml)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.cim-stamp 2>/dev/null)" != "$py_stamp" ]; then
  say "installing Python packages into .venv"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -m pip install -q -e ".[dev]" 2>&1 | grep -v -E "is ignored|^\s*$" || true
  .venv/bin/python -c "import cim, tiling, server" # fails loudly if the install did not work
  echo "$py_stamp" > .venv/.cim-stamp
fi

npm_install() {  # $1: folder with package.json and package-lock.json
  local dir=$1 s
  s=$(stamp "$dir/package-lock.json")
  if [ ! -d "$dir/node_modules" ] || [ "$(cat "$dir/node_modules/.cim-stamp" 2>/dev/null)" != "$s" ]; then
    say "installing npm packages in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$s" > "$dir/node_modules/.cim-stamp"
  fi
}
npm_install .
[ -f viewer/package-lock.json ] && npm_install viewer
say "ready"
