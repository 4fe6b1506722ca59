#!/usr/bin/env bash
# The test command: set up (including chromium for the browser tests) and run the
# whole suite except tests marked slow. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -m "not slow" -p no:cacheprovider "$@"
