"""The registry's HTTP API (FastAPI; OpenAPI at ``/openapi.json``, docs at ``/docs``).

Every call but ``/health`` needs ``Authorization: Bearer zjt_…``. A refused call says why (no token,
role may not, not found) without telling whether something outside the caller's scope exists.

The API answers what its OpenAPI document says: every status an operation can answer is listed on it,
a 405 names in ``Allow`` every method of the path, bodies are bounded (:mod:`.body_limit`), and the value
types (:mod:`.wire_types`) accept exactly what their schemas allow. Errors are ``{"detail": "…"}``;
validation errors (422) have FastAPI's list shape.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from . import models as m
from .auth import Principal, Role
from .body_limit import MAX_BODY_BYTES, BodyLimit
from .broker_sync import BrokerSync
from .credentials import secret_matches, split_token
from .db import sessions
from .errors import BrokerFilesStale, InvalidInput, RegistryError, Unauthenticated
from .plain_errors import plain
from .schemas import (
    AuditOut,
    BaseIn,
    BaseOut,
    BrokerOut,
    DeviceIn,
    DeviceOut,
    DeviceUpdate,
    DistrictIn,
    DistrictOut,
    ErrorOut,
    MarketIn,
    MarketOut,
    Page,
    PositionIn,
    ProvisionIn,
    ProvisionOut,
    RevocationOut,
    RevokeIn,
    StallIn,
    StallOut,
    TokenCreated,
    TokenIn,
    TokenOut,
    ValidationErrorOut,
    VehicleIn,
    VehicleOut,
    VendorIn,
    VerificationIn,
    VerificationOut,
    WhoAmI,
)
from .service import BundleDefaults, Registry
from .wire_types import Day, Instant

Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="items to skip")]
DevicePath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{2,63}$")]
Filter = Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]  # PostgreSQL refuses NUL
_bearer = HTTPBearer(auto_error=False, description="an API token: zjt_<id>_<secret>")


_NO_SUCH_TOKEN = "0" * 64


def authenticate(db: Session, token: str) -> Principal:
    """The caller a bearer token names; raises :class:`Unauthenticated` with one message for every failure."""
    parts = split_token(token)
    row = db.get(m.ApiToken, parts[0]) if parts else None
    # the secret is hashed and compared whether or not the id exists, so timing tells nothing either
    ok = secret_matches(parts[1] if parts else token, row.secret_hash if row else _NO_SUCH_TOKEN) and row is not None
    if not ok or row is None or row.revoked_at is not None:
        raise Unauthenticated("invalid or revoked API token")
    if row.expires_at is not None and row.expires_at < dt.datetime.now(dt.UTC):
        raise Unauthenticated("API token expired")
    return Principal(f"token:{row.id}:{row.name}", Role(row.role), frozenset(row.districts), frozenset(row.markets))


class _State:
    """What the routes need from the app that mounts them."""

    def __init__(
        self,
        engine: Engine,
        bundles: BundleDefaults | None,
        broker: BrokerSync | None,
        local_principal: Principal | None,
    ) -> None:
        self.sessions: sessionmaker[Session] = sessions(engine)
        self.bundles = bundles
        self.broker = broker
        self.local_principal = local_principal


def _caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Iterator[Registry]:
    state: _State = request.app.state.registry
    with state.sessions() as session:
        if state.local_principal is not None:
            who = state.local_principal
        elif credentials is None:
            raise Unauthenticated("an API token is needed: Authorization: Bearer zjt_…")
        else:
            who = authenticate(session, credentials.credentials)
        yield Registry(session, who, state.bundles)


Caller = Annotated[Registry, Depends(_caller)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no token, or an unknown, expired or revoked one"},
    403: {"model": ErrorOut, "description": "the caller's role may not do this"},
    404: {"model": ErrorOut, "description": "not found, or outside the caller's scope (not told apart)"},
    409: {"model": ErrorOut, "description": "exists already, or its state forbids the change"},
    502: {"model": ErrorOut, "description": "recorded, but the broker has not applied it (its files or reload failed)"},
}
router = APIRouter(responses=_ERRORS)
_INVALID = "the body breaks the schema"


def _body(invalid: str = "") -> dict[int | str, dict[str, Any]]:
    """What an operation with a request body answers besides its own statuses; ``invalid``: the rules
    beyond the JSON Schema that it checks too (answered 422 like a schema violation)."""
    return {
        400: {"model": ErrorOut, "description": "the body could not be read: not UTF-8 JSON"},
        413: {"model": ErrorOut, "description": "the body is larger than the server's bound (1 MiB by default)"},
        422: {"model": ValidationErrorOut, "description": _INVALID + (f", or {invalid}" if invalid else "")},
    }


_BODY = _body()
_LICENCE = _body("a business licence whose check character (GB 32100-2015) is wrong")


def credentials_changed(reg: Registry, request: Request) -> BrokerOut:
    """Re-write the broker files and have Mosquitto apply them after credentials were issued or revoked;
    raises :class:`BrokerFilesStale` if the broker has not applied them."""
    broker: BrokerSync | None = request.app.state.registry.broker
    if broker is None:
        return BrokerOut(state="off", detail="this registry keeps no broker files (ZHIJIAN_BROKER_PASSWD_FILE unset)")
    update = broker.apply(reg.db)
    return BrokerOut(state="confirmed" if update.state == "confirmed" else "written", detail=update.detail)


def _issued(reg: Registry, request: Request, out: ProvisionOut) -> ProvisionOut:
    # the bundle is the only copy of the new secrets and the old ones are retired: a broker failure is
    # reported beside it, not instead of it
    try:
        broker = credentials_changed(reg, request)
    except BrokerFilesStale as exc:
        broker = BrokerOut(state="failed", detail=f"the broker has not applied the new credentials: {exc}")
    return out.model_copy(update={"broker": broker})


def create_app(
    engine: Engine,
    *,
    bundles: BundleDefaults | None = None,
    broker: BrokerSync | None = None,
    local_principal: Principal | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The API over the registry at ``engine``. ``local_principal`` replaces token authentication; only the
    CLI's in-process mode uses it (a local operator who can read the database file is its admin).
    Request bodies over ``max_body_bytes`` are refused with 413, unread."""
    app = FastAPI(
        title="Zhijian device registry",
        version="1",
        description="Markets, stalls, planting bases, vehicles, devices, verifications, credentials and audit log.",
    )
    app.state.registry = _State(engine, bundles, broker, local_principal)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)  # inside the counter: its 413s are counted
    metrics = CollectorRegistry()
    calls = Counter(
        "zhijian_registry_requests", "API calls by route and status", ["method", "route", "status"], registry=metrics
    )

    @app.middleware("http")
    async def _count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")  # the template (/v1/devices/{device_id}): bounded labels
        calls.labels(request.method, path, str(response.status_code)).inc()
        return response

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse)
    def prometheus() -> PlainTextResponse:
        """Prometheus text format: calls by route and status (401s and 403s show refused access)."""
        return PlainTextResponse(generate_latest(metrics).decode(), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(RegistryError)
    def _registry_error(_request: Request, exc: RegistryError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else None
        detail: Any = str(exc)
        if isinstance(exc, InvalidInput):  # the same shape as FastAPI's own 422s
            detail = [{"type": "value_error", "loc": ["body"], "msg": str(exc)}]
        return JSONResponse({"detail": detail}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's shape; a lone surrogate (JSON "\\ud800") echoed back could not be encoded: replaced
        return JSONResponse({"detail": _encodable(jsonable_encoder(plain(list(exc.errors()))))}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:  # the router names the methods of one route; the path has them all
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(_methods_of(app, request.scope["path"]))}
        return await http_exception_handler(request, exc)

    @app.get("/health", tags=["service"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(router)
    return app


def _methods_of(app: FastAPI, path: str) -> list[str]:
    methods: set[str] = set()
    # the app's own routes and those of `router` (FastAPI keeps an included router as one opaque entry)
    for route in (*app.router.routes, *router.routes):
        if isinstance(route, Route) and route.methods and route.path_regex.match(path):
            methods |= route.methods
    return sorted(methods)


def _encodable(value: Any) -> Any:
    """``value`` with every string made encodable as UTF-8 (lone surrogates become "?") and every number as
    JSON (NaN and the infinities, which Python's parser accepts in a body, become their names as text)."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_encodable(v) for v in value]
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    return value


@router.get("/v1/whoami", tags=["service"])
def whoami(reg: Caller) -> WhoAmI:
    w = reg.who
    return WhoAmI(name=w.name, role=w.role, districts=sorted(w.districts), markets=sorted(w.markets))


@router.get("/v1/districts", tags=["places"])
def list_districts(reg: Caller, limit: Limit = 50, offset: Offset = 0) -> Page[DistrictOut]:
    return reg.districts(limit=limit, offset=offset)


@router.post("/v1/districts", status_code=201, tags=["places"], responses=_BODY)
def add_district(reg: Caller, body: DistrictIn) -> DistrictOut:
    return reg.add_district(body)


@router.get("/v1/markets", tags=["places"])
def list_markets(reg: Caller, district: Filter = None, limit: Limit = 50, offset: Offset = 0) -> Page[MarketOut]:
    return reg.markets(district=district, limit=limit, offset=offset)


@router.post("/v1/markets", status_code=201, tags=["places"], responses=_LICENCE)
def add_market(reg: Caller, body: MarketIn) -> MarketOut:
    return reg.add_market(body)


@router.get("/v1/stalls", tags=["places"])
def list_stalls(reg: Caller, market: Filter = None, limit: Limit = 50, offset: Offset = 0) -> Page[StallOut]:
    return reg.stalls(market=market, limit=limit, offset=offset)


@router.post("/v1/stalls", status_code=201, tags=["places"], responses=_LICENCE)
def add_stall(reg: Caller, body: StallIn) -> StallOut:
    return reg.add_stall(body)


@router.put("/v1/markets/{market_id}/stalls/{code}/vendor", tags=["places"], responses=_LICENCE)
def change_vendor(
    reg: Caller,
    market_id: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")],
    code: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$")],
    body: VendorIn,
) -> StallOut:
    """The stall changed hands: its new vendor and business licence."""
    return reg.change_vendor(market_id, code, body)


_SLUG_PATH = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]


@router.put("/v1/districts/{district_id}/position", tags=["places"], responses=_BODY)
def set_district_position(reg: Caller, district_id: _SLUG_PATH, body: PositionIn) -> DistrictOut:
    """The district's position (WGS-84; both null removes it), e.g. its centre for a map."""
    return reg.set_district_position(district_id, body)


@router.put("/v1/markets/{market_id}/position", tags=["places"], responses=_BODY)
def set_market_position(reg: Caller, market_id: _SLUG_PATH, body: PositionIn) -> MarketOut:
    """The market's position (WGS-84; both null removes it)."""
    return reg.set_market_position(market_id, body)


@router.put("/v1/markets/{market_id}/stalls/{code}/position", tags=["places"], responses=_BODY)
def set_stall_position(
    reg: Caller,
    market_id: _SLUG_PATH,
    code: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$")],
    body: PositionIn,
) -> StallOut:
    """The stall's position (WGS-84; both null removes it)."""
    return reg.set_stall_position(market_id, code, body)


@router.put("/v1/bases/{base_id}/position", tags=["places"], responses=_BODY)
def set_base_position(reg: Caller, base_id: _SLUG_PATH, body: PositionIn) -> BaseOut:
    """The planting base's position (WGS-84; both null removes it)."""
    return reg.set_base_position(base_id, body)


@router.get("/v1/bases", tags=["places"])
def list_bases(reg: Caller, district: Filter = None, limit: Limit = 50, offset: Offset = 0) -> Page[BaseOut]:
    return reg.bases(district=district, limit=limit, offset=offset)


@router.post(
    "/v1/bases", status_code=201, tags=["places"], responses=_body("an alert limit whose low is not below its high")
)
def add_base(reg: Caller, body: BaseIn) -> BaseOut:
    return reg.add_base(body)


@router.get("/v1/vehicles", tags=["places"])
def list_vehicles(reg: Caller, district: Filter = None, limit: Limit = 50, offset: Offset = 0) -> Page[VehicleOut]:
    return reg.vehicles(district=district, limit=limit, offset=offset)


@router.post("/v1/vehicles", status_code=201, tags=["places"], responses=_BODY)
def add_vehicle(reg: Caller, body: VehicleIn) -> VehicleOut:
    return reg.add_vehicle(body)


@router.get("/v1/devices", tags=["devices"])
def list_devices(
    reg: Caller,
    district: Filter = None,
    market: Filter = None,
    kind: Filter = None,
    revoked: bool | None = None,
    due_by: Annotated[
        Day | None,
        Query(description="scales whose verification runs out by this day, never passed one, or last failed"),
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[DeviceOut]:
    return reg.devices(
        district=district, market=market, kind=kind, revoked=revoked, due_by=due_by, limit=limit, offset=offset
    )


_PLACED = _body("a place where the device's kind does not belong (a scale at a planting base)")


@router.post("/v1/devices", status_code=201, tags=["devices"], responses=_PLACED)
def register_device(reg: Caller, body: DeviceIn) -> DeviceOut:
    return reg.register(body)


@router.get("/v1/devices/{device_id}", tags=["devices"])
def show_device(reg: Caller, device_id: DevicePath) -> DeviceOut:
    return reg.device(device_id)


@router.patch("/v1/devices/{device_id}", tags=["devices"], responses=_PLACED)
def update_device(reg: Caller, device_id: DevicePath, body: DeviceUpdate) -> DeviceOut:
    """Change firmware version, software id, serial, production or repair code, or move the device."""
    return reg.update(device_id, body)


@router.post("/v1/devices/{device_id}/provision", tags=["devices"], responses=_BODY)
def provision_device(request: Request, reg: Caller, device_id: DevicePath, body: ProvisionIn) -> ProvisionOut:
    """New credentials and the agent's bundle (shown once). Replaces earlier credentials."""
    return _issued(reg, request, reg.provision(device_id, body))


@router.post("/v1/devices/{device_id}/rotate", tags=["devices"], responses=_BODY)
def rotate_credentials(request: Request, reg: Caller, device_id: DevicePath, body: ProvisionIn) -> ProvisionOut:
    """Like provision, recorded as a rotation: the old password and key stop working."""
    return _issued(reg, request, reg.provision(device_id, body, action="rotate"))


@router.post("/v1/devices/{device_id}/revoke", tags=["devices"], responses=_BODY)
def revoke_device(request: Request, reg: Caller, device_id: DevicePath, body: RevokeIn) -> RevocationOut:
    """The broker refuses the device and ends its session; the ingest rejects its records. Answers 502 if
    the revocation is recorded but the broker has not applied it (the device may still connect)."""
    out = reg.revoke(device_id, body)
    try:
        broker = credentials_changed(reg, request)
    except BrokerFilesStale as exc:
        raise BrokerFilesStale(
            f"{device_id} is revoked in the registry, but the broker has not applied it, so the device may still "
            f"connect: {exc}"
        ) from exc
    return out.model_copy(update={"broker": broker})


@router.post(
    "/v1/devices/{device_id}/verifications",
    status_code=201,
    tags=["verifications"],
    responses=_body("a device whose profile has no metrology and no accuracy_class, max_g and e_mg given"),
)
def record_verification(reg: Caller, device_id: DevicePath, body: VerificationIn) -> VerificationOut:
    return reg.verify(device_id, body)


@router.get("/v1/devices/{device_id}/verifications", tags=["verifications"])
def list_verifications(
    reg: Caller, device_id: DevicePath, limit: Limit = 50, offset: Offset = 0
) -> Page[VerificationOut]:
    return reg.verifications(device_id, limit=limit, offset=offset)


@router.get("/v1/audit", tags=["audit"])
def audit_log(
    reg: Caller,
    entity_id: Filter = None,
    actor: Filter = None,
    since: Annotated[Instant | None, Query(description="from this time on (RFC 3339, with its zone)")] = None,
    until: Annotated[Instant | None, Query(description="before this time (RFC 3339, with its zone)")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[AuditOut]:
    return reg.audit(entity_id=entity_id, actor=actor, since=since, until=until, limit=limit, offset=offset)


@router.get("/v1/tokens", tags=["tokens"])
def list_tokens(reg: Caller, limit: Limit = 50, offset: Offset = 0) -> Page[TokenOut]:
    return reg.tokens(limit=limit, offset=offset)


@router.post("/v1/tokens", status_code=201, tags=["tokens"], responses=_BODY)
def create_token(reg: Caller, body: TokenIn) -> TokenCreated:
    """A new API token; its text is in this response only."""
    return reg.create_token(body)


@router.post("/v1/tokens/{token_id}/revoke", tags=["tokens"])
def revoke_token(reg: Caller, token_id: Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")]) -> TokenOut:
    return reg.revoke_token(token_id)


from . import case_api  # noqa: E402,F401  (its routes join `router`: cases, and the ingest's case events)
