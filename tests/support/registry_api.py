"""The registry's HTTP API in tests: FastAPI's test client over the real app, a token per role."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from device_registry import Principal, Role
from device_registry.api import create_app
from device_registry.db import sessions
from device_registry.schemas import TokenIn
from device_registry.service import BundleDefaults, Registry
from tests.support.registry import KEY_SECRET


class Api:
    """A client per role, with a small helper that raises on unexpected statuses."""

    def __init__(self, engine: Engine) -> None:
        app = create_app(engine, bundles=BundleDefaults(key_secret=KEY_SECRET))
        self.client = TestClient(app)
        self.engine = engine
        self.tokens: dict[str, str] = {}

    def token(self, name: str, role: Role, **scope: list[str]) -> str:
        with sessions(self.engine)() as db:
            reg = Registry(db, Principal("bootstrap", Role.ADMIN))
            text = reg.create_token(TokenIn(name=name, role=role, **scope)).token  # type: ignore[arg-type]
        self.tokens[name] = text
        return text

    def call(self, who: str | None, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        r = self.client.request(method, path, json=body, headers=headers)
        assert r.status_code == expect, (method, path, r.status_code, r.text)
        return r.json()
