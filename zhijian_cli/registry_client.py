"""How the CLI reaches the registry: the HTTP API with a token (``--api``/``ZHIJIAN_API_URL``), or, on
the registry's own host, the same API in process over the local database (the operator who can read
the database file acts as admin, recorded in the audit log as ``local:<user>``)."""

from __future__ import annotations

import getpass
import warnings
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:  # imported when used: `zhijian agent run` must start fast, without FastAPI and SQLAlchemy
    from device_registry.broker_sync import BrokerSync
    from device_registry.service import BundleDefaults
    from device_registry.settings import RegistrySettings


class CliError(Exception):
    """A message for the user; the command exits with status 1."""


def describe_refusal(response: httpx.Response) -> str:
    """The API's reason, in one line: ``detail`` as text, or its validation errors as ``field: message``."""
    try:
        detail = response.json().get("detail")
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if isinstance(detail, list):
        parts = []
        for err in detail:
            loc = [str(p) for p in err.get("loc", []) if p not in ("body", "query", "path")]
            parts.append(f"{'.'.join(loc) + ': ' if loc else ''}{err.get('msg', '')}")
        return "; ".join(parts)
    return str(detail)


def _check_path(path: str) -> None:
    """Refuse a path whose ids would name another resource: the CLI puts ids typed by a technician into
    paths (``/v1/markets/{market}/stalls/{code}``), and ``zz/../futian-no1`` or ``a?b`` must not travel."""
    segments = path.split("?", 1)[0].split("/")
    if any(s in (".", "..") for s in segments) or any(c in path for c in "?#%\\") or "//" in path:
        raise CliError(f"{path!r}: an id holds '/', '..', '?', '#', '%' or '\\', which no registry id has")


class RegistryClient:
    """Calls the registry API; raises :class:`CliError` with the API's reason when refused."""

    def __init__(self, http: httpx.Client, where: str) -> None:
        self.http = http
        self.where = where

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        _check_path(path)
        query = {k: v for k, v in params.items() if v is not None}
        try:
            r = self.http.request(method, path, json=body, params=query)
        except httpx.TransportError as exc:
            raise CliError(f"cannot reach the registry API at {self.where}: {exc}") from exc
        if r.status_code >= 400:
            raise CliError(f"{describe_refusal(r)} (HTTP {r.status_code})")
        return r.json()

    def pages(self, path: str, **params: Any) -> list[Any]:
        """Every item of a paginated listing."""
        items: list[Any] = []
        while True:
            page = self.call("GET", path, limit=500, offset=len(items), **params)
            items += page["items"]
            if not page["items"] or len(items) >= page["total"]:
                return items


def check_api_url(api: str) -> None:
    """Refuse, with the fix, the two base URLs people write by mistake: without a scheme, and with the
    API's version path (the CLI adds ``/v1/…`` itself; ``…/v1`` would call ``/v1/v1/…``, a bare 404)."""
    if not api.startswith(("http://", "https://")):
        raise CliError(f"--api {api!r}: give the registry's URL with http:// or https://, e.g. https://{api}")
    trimmed = api.rstrip("/")
    if trimmed.endswith("/v1"):
        raise CliError(
            f"--api {api!r}: give the registry's base URL without /v1 (the CLI adds it): --api {trimmed[:-3]}"
        )


def open_client(api: str | None, token: str | None, settings: RegistrySettings | None = None) -> RegistryClient:
    """A client on the remote API if ``api`` is given, else on the local registry database."""
    from device_registry import Principal, RegistryError, Role
    from device_registry.api import create_app
    from device_registry.db import open_current
    from device_registry.settings import RegistrySettings

    if api:
        check_api_url(api)
        if not token:
            raise CliError("--api needs a token: --token or ZHIJIAN_API_TOKEN")
        headers = {"Authorization": f"Bearer {token}"}
        return RegistryClient(httpx.Client(base_url=api, headers=headers, timeout=30), api)
    with warnings.catch_warnings():  # starlette announces a future move to httpx2; nothing for our users to do
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    settings = settings or RegistrySettings()
    try:
        engine = open_current(settings.registry_url)
    except RegistryError as exc:
        raise CliError(str(exc)) from exc
    app = create_app(
        engine,
        bundles=bundle_defaults(settings),
        broker=broker_sync(settings),
        local_principal=Principal(f"local:{getpass.getuser()}", Role.ADMIN),
    )
    return RegistryClient(TestClient(app), settings.registry_url)


def bundle_defaults(settings: RegistrySettings) -> BundleDefaults | None:
    from device_registry import RegistryError
    from device_registry.local_ca import LocalCA
    from device_registry.service import BundleDefaults

    try:
        secret = settings.key_secret_bytes()
    except RegistryError:
        return None
    ca = settings.bundle_ca_file.read_text(encoding="ascii") if settings.bundle_ca_file else None
    return BundleDefaults(
        key_secret=secret,
        broker_host=settings.bundle_broker_host,
        broker_port=settings.bundle_broker_port,
        ca_pem=ca,
        state_dir=settings.bundle_state_dir,
        client_ca=LocalCA(settings.device_ca_dir) if settings.device_ca_dir else None,
    )


def broker_sync(settings: RegistrySettings) -> BrokerSync | None:
    from device_registry.broker_sync import BrokerCheck, BrokerSync

    if settings.broker_passwd_file is None or settings.broker_acl_file is None:
        return None
    check = None
    if settings.broker_check_host:
        check = BrokerCheck(settings.broker_check_host, settings.broker_check_port, settings.broker_check_timeout_s)
    return BrokerSync(
        passwd_file=settings.broker_passwd_file,
        acl_file=settings.broker_acl_file,
        service_accounts=settings.broker_service_accounts,
        pid_file=settings.broker_pid_file,
        group=settings.broker_files_group,
        check=check,
    )
