"""The technician CLI against a real registry API server (`zhijian registry serve`, uvicorn on a free
port, in its own process) with a token: remote register and provision, refusals explained."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.bundle_file import load_bundle
from tests.support.cli_helpers import cli, seed_market
from tests.support.registry_server import init_registry, registry_env, serve_registry
from zhijian_cli.servers import free_port


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    env = registry_env(f"sqlite:///{tmp_path / 'registry.sqlite'}", tmp_path)
    token = init_registry(env)
    with serve_registry(env, free_port(), tmp_path / "registry.log") as url:
        # the CLI below must not find the database: everything goes through the API
        monkeypatch.setenv("ZHIJIAN_REGISTRY_URL", f"sqlite:///{tmp_path / 'not-here.sqlite'}")
        yield url, token


def test_remote_provisioning_with_a_token(api: tuple[str, str], tmp_path: Path) -> None:
    url, token = api
    remote = f"--api {url} --token {token}"
    seed_market(remote)
    code, out = cli(f"device {remote} register scale-0001 --profile zj-pcs-30 --serial S --market m1 --stall A-1")
    assert code == 0, out
    bundle = tmp_path / "bundle.yaml"
    code, out = cli(f"device {remote} provision scale-0001 --out {bundle} --json")
    assert code == 0, out
    assert json.loads(out)["key_version"] == 1 and "password" in bundle.read_text()
    assert load_bundle(bundle).broker.username == "scale-0001"  # the agent reads what the technician wrote
    code, out = cli(f"registry {remote} token create tech --role viewer --json")
    viewer = json.loads(out)["token"]
    code, out = cli(f"device --api {url} --token {viewer} revoke scale-0001 --reason because --yes")
    assert code == 1 and "role viewer may not revoke (HTTP 403)" in out
    code, out = cli(f"device --api {url} --token zjt_000000000000_{'x' * 32} list")
    assert code == 1 and "invalid or revoked API token (HTTP 401)" in out
    code, out = cli(f"device --api {url} list --json")
    assert code == 1 and "needs a token" in out


def test_an_unreachable_api_is_one_clear_line() -> None:
    code, out = cli(f"device --api http://127.0.0.1:{free_port()} --token t list")
    assert code == 1 and "cannot reach the registry API" in out and "Traceback" not in out


def test_api_and_token_after_the_subcommand_and_from_the_environment(
    api: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, token = api
    seed_market(f"--api {url} --token {token}")
    code, out = cli(f"device register scale-0001 --profile zj-pcs-30 --serial S --market m1 --stall A-1 --api {url} "
                    f"--token {token}")  # fmt: skip
    assert code == 0, out
    code, out = cli(f"device list --api {url} --token {token} --json")
    assert code == 0 and [d["id"] for d in json.loads(out)] == ["scale-0001"], out
    code, out = cli(f"registry token list --api {url} --token {token} --json")
    assert code == 0 and [t["role"] for t in json.loads(out)] == ["admin"], out
    # the registry refuses a device at the wrong kind of place itself, over HTTP, in words
    code, out = cli(f"device register soil-0001 --profile soil-rs485 --serial G --market m1 --stall A-1 --api {url} "
                    f"--token {token}")  # fmt: skip
    assert code == 1 and "cannot be at a market stall: it belongs at a planting base (--base) (HTTP 422)" in out
    code, out = cli(
        f"device register Scale_1 --profile zj-pcs-30 --serial S --market m1 --stall A-1 --api {url} --token {token}"
    )
    assert code == 1 and "a device id is 3-64 lower-case letters" in out and "not 'Scale_1'" in out, out
    code, out = cli(f"device list --api {url}/v1 --token {token}")
    assert code == 1 and f"without /v1 (the CLI adds it): --api {url}" in out, out
    monkeypatch.setenv("ZHIJIAN_API_URL", url)
    monkeypatch.setenv("ZHIJIAN_API_TOKEN", token)
    code, out = cli("device show scale-0001 --json")
    assert code == 0 and json.loads(out)["id"] == "scale-0001", out
