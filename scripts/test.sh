#!/usr/bin/env bash
# The README's second command: set up, then lint (ruff), type-check (mypy) and run the whole test suite.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
if [ $# -eq 0 ]; then
    echo "== branch coverage of the anti-cheat rules (must be 100 %)"
    .venv/bin/pytest -q tests/anti_cheat --cov=anti_cheat --cov=device_profiles --cov-fail-under=100 --no-header
fi
echo "== pytest"
.venv/bin/pytest "$@"
