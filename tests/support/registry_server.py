"""A real registry API for tests that need one: `zhijian registry init` and `zhijian registry serve` (uvicorn)
in a process of their own, on any database URL, seeded with places and devices for the case tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.registry import VALID_LICENCES
from tests.support.waiting import wait_until


def answers_health(url: str) -> bool:
    """Whether the registry at ``url`` is up: /health answers 200."""
    try:
        return httpx.get(f"{url}/health", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def registry_env(url: str, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "ZHIJIAN_REGISTRY_URL": url, "ZHIJIAN_KEY_SECRET_FILE": str(tmp_path / "registry.key")}


def init_registry(env: dict[str, str]) -> str:
    """Migrate the registry and return its bootstrap admin token."""
    init = subprocess.run(
        [sys.executable, "-m", "zhijian_cli", "registry", "init", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    token: str = json.loads(init.stdout)["admin_token"]
    return token


@contextmanager
def serve_registry(env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """`zhijian registry serve` on ``port`` until the block ends; its URL once /health answers."""
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "zhijian_cli", "registry", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            up = wait_until(lambda: server.poll() is not None or answers_health(url), 60)  # a loaded machine
            assert up and server.poll() is None, log.read_text()
            yield url
        finally:
            server.terminate()
            server.wait(20)


def call(url: str, token: str, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
    r = httpx.request(method, url + path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == expect, (method, path, r.status_code, r.text)
    return r.json()


def seed_case_places(url: str, admin: str) -> dict[str, str]:
    """Futian (market futian-no1, stall A-017 with scale-0001) and Nanshan (market nanshan-no2 with
    scale-0002; planting base base-7 with gateway base-0007); tokens for the ingest and supervisors."""
    for district, market, n in (("futian", "futian-no1", 0), ("nanshan", "nanshan-no2", 1)):
        call(url, admin, "POST", "/v1/districts", {"id": district, "name": district.title()}, 201)
        market_doc = {"id": market, "name": f"{market} market", "district_id": district, "operator": "Markets Co."}
        call(url, admin, "POST", "/v1/markets", market_doc, 201)
        stall = {"market_id": market, "code": "A-017", "vendor": "Li Si", "business_licence": VALID_LICENCES[n]}
        call(url, admin, "POST", "/v1/stalls", stall, 201)
        device = {"id": f"scale-000{n + 1}", "profile": "zj-pcs-30", "serial_no": "S", "market_id": market}
        call(url, admin, "POST", "/v1/devices", {**device, "stall_code": "A-017"}, 201)
    call(url, admin, "POST", "/v1/bases", {"id": "base-7", "name": "Veg base", "district_id": "nanshan"}, 201)
    gateway = {"id": "base-0007", "profile": "soil-rs485", "serial_no": "B", "base_id": "base-7"}
    call(url, admin, "POST", "/v1/devices", gateway, 201)
    tokens = {"admin": admin}
    for name, role, scope in (
        ("ingest", "ingest", {}),
        ("sup-futian-no1", "supervisor", {"markets": ["futian-no1"]}),
        ("sup-nanshan-no2", "supervisor", {"markets": ["nanshan-no2"]}),
        ("sup-nanshan", "supervisor", {"districts": ["nanshan"]}),
        ("viewer", "viewer", {}),
    ):
        tokens[name] = call(url, admin, "POST", "/v1/tokens", {"name": name, "role": role, **scope}, 201)["token"]
    return tokens
