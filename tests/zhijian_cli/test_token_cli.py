"""API tokens from the CLI always expire: 90 days unless told, 0 or less refused with the reason; only the
bootstrap admin token of `zhijian registry init --no-expiry` never does, and the audit log says so."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tests.support.cli_helpers import cli


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ZHIJIAN_REGISTRY_URL", f"sqlite:///{tmp_path / 'registry.sqlite'}")
    monkeypatch.setenv("ZHIJIAN_KEY_SECRET_FILE", str(tmp_path / "registry.key"))
    monkeypatch.delenv("ZHIJIAN_API_URL", raising=False)
    return tmp_path


def _days_left(expires_at: str) -> float:
    return (dt.datetime.fromisoformat(expires_at) - dt.datetime.now(dt.UTC)) / dt.timedelta(days=1)


def test_tokens_expire_and_zero_days_is_refused(registry: Path) -> None:
    code, out = cli("registry init --json")
    assert code == 0, out
    assert 89.9 < _days_left(json.loads(out)["admin_token_expires_at"]) <= 90
    code, out = cli("registry token create grafana --role viewer --json")
    assert code == 0, out
    assert 89.9 < _days_left(json.loads(out)["expires_at"]) <= 90
    code, out = cli("registry token create week --role viewer --expires-days 7 --json")
    assert code == 0 and 6.9 < _days_left(json.loads(out)["expires_at"]) <= 7
    for days in ("0", "-3"):
        code, out = cli(f"registry token create forever --role viewer --expires-days {days}")
        assert code == 1 and "--expires-days must be at least 1" in out and "always expire" in out, out
    code, out = cli("registry token list --json")
    assert all(t["expires_at"] for t in json.loads(out))


def test_only_the_bootstrap_admin_token_may_never_expire_and_that_is_audited(registry: Path) -> None:
    code, out = cli("registry init --no-expiry --json")
    assert code == 0, out
    assert json.loads(out)["admin_token_expires_at"] is None
    code, out = cli("registry audit --json")
    (created,) = [e for e in json.loads(out) if e["entity"] == "token"]
    assert created["detail"]["never_expires"] is True and created["actor"].startswith("local:")
    code, out = cli("registry token create --help")
    assert "--no-expiry" not in out  # not offered for any other token
