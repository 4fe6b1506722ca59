#!/usr/bin/env bash
# The test command: set up (including chromium for the browser tests) and run the
# whole suite except tests marked slow. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
.venv/bin/ruff check .
# the viewer: ESLint, the type check of its // @ts-check modules, its unit tests
npm --prefix viewer run lint
npm --prefix viewer run typecheck
npm --prefix viewer test
exec .venv/bin/python -m pytest -m "not slow" -p no:cacheprovider "$@"
