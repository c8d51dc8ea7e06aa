"""The registry API against its own OpenAPI document: schemathesis' engine (examples, coverage, fuzzing,
stateful; every check) against a real `zhijian registry serve` (uvicorn, its own process) on a fresh
SQLite file and a fresh PostgreSQL database, in rounds of different seeds until at least ``--calls``
calls were made on each. Prints calls, server errors and answers outside the document per check.

    .venv/bin/python benchmarks/registry_api_fuzz.py [--calls 5000] [--examples 50] [--database sqlite]

PostgreSQL: ZHIJIAN_TEST_POSTGRES (default postgresql://postgres@127.0.0.1:5432/test, trust auth); each run
makes its own database from template0 and drops it after. The suite runs a small round of the same
(tests/device_registry/test_api_fuzz.py).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
from machine import describe
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the harness lives with the tests

from device_registry.db import connect, upgrade
from tests.support.api_fuzz_harness import Tally, run, seed_registry
from zhijian_cli.servers import free_port

POSTGRES = os.environ.get("ZHIJIAN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'registry.sqlite'}"
        return
    admin = make_url(POSTGRES)
    name = f"zhijian_fuzz_{secrets.token_hex(4)}"
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@contextlib.contextmanager
def server(url: str, folder: Path) -> Iterator[str]:
    key = folder / "registry.key"
    key.write_text(bytes(range(32)).hex() + "\n", encoding="ascii")
    port = free_port()
    env = {**os.environ, "ZHIJIAN_REGISTRY_URL": url, "ZHIJIAN_KEY_SECRET_FILE": str(key)}
    log = (folder / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "zhijian_cli", "registry", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def fuzz(kind: str, calls: int, examples: int) -> Tally:
    total = Tally()
    with tempfile.TemporaryDirectory() as tmp, database(kind, Path(tmp)) as url:
        upgrade(url)
        engine = connect(url)
        seed_registry(engine)
        with server(url, Path(tmp)) as base:
            seed = 1
            while total.calls < calls:
                started = time.monotonic()
                tally = run(engine, base_url=base, max_examples=examples, seed=seed)
                print(
                    f"  {kind} seed {seed}: {tally.calls} calls in {time.monotonic() - started:.0f} s, "
                    f"{tally.server_errors} server errors, {sum(tally.violations.values())} outside the spec",
                    flush=True,
                )
                total.calls += tally.calls
                total.server_errors += tally.server_errors
                total.violations.update(tally.violations)
                total.statuses.update(tally.statuses)
                total.engine_errors += tally.engine_errors
                total.tokens_minted += tally.tokens_minted
                for name, text in tally.first_failure.items():
                    total.first_failure.setdefault(name, text)
                seed += 1
        engine.dispose()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000, help="at least this many calls per database")
    parser.add_argument("--examples", type=int, default=50, help="generated cases per operation and phase")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], action="append")
    args = parser.parse_args()
    print(f"machine: {describe()}")
    results: dict[str, Tally] = collections.OrderedDict()
    for kind in args.database or ["sqlite", "postgresql"]:
        started = time.monotonic()
        results[kind] = fuzz(kind, args.calls, args.examples)
        print(f"{kind} ({time.monotonic() - started:.0f} s): {results[kind].summary()}", flush=True)
    checks = "every check (not_a_server_error, status_code/content_type/response_headers/response_schema "
    checks += "conformance, positive_data_acceptance, negative_data_rejection, missing_required_header, "
    checks += "unsupported_method, allow_header_conformance, use_after_free, ensure_resource_availability, "
    checks += "ignored_auth, object_level_authorization)"
    print(f"\n{checks}")
    for kind, tally in results.items():
        print(f"{kind}: {tally.summary()}")
        if tally.first_failure:
            print(tally.failures_text())


if __name__ == "__main__":
    main()
