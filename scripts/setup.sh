#!/usr/bin/env bash
# Set up this machine for Zhijian, idempotently: the Debian packages that provide the real servers
# (mosquitto, influxd, nats-server) and npm (a dashboards test) when their binaries are missing, then a virtual environment in .venv
# with the project and its dev extras. Safe to run again; does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }

missing=()
have mosquitto || missing+=(mosquitto)
have influxd || missing+=(influxdb)
have nats-server || missing+=(nats-server)
have npm || missing+=(npm)  # tests/dashboards/test_schema_ts.py: TypeScript over Grafana's schema
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
# Re-install only when pyproject.toml changed since the last successful install.
stamp=.venv/.zhijian-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing zhijian and its dev extras into .venv"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e '.[dev]'
    touch "$stamp"
fi
