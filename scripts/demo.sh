#!/usr/bin/env bash
# The README's first command: set up, then run the local demo of the whole system.
# Extra arguments go to `zhijian demo` (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/zhijian demo "$@"
