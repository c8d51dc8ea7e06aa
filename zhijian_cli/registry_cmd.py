"""``zhijian registry …``: create and serve the registry, its places and API tokens, the broker files."""

from __future__ import annotations

import datetime as dt
import getpass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from .cli_common import (
    ApiOption,
    JsonOption,
    TokenOption,
    client,
    console,
    emit,
    err_console,
    friendly_errors,
    remember_connection,
)
from .cli_common import table as print_table
from .registry_client import CliError, broker_sync, bundle_defaults

if TYPE_CHECKING:
    from device_registry.settings import RegistrySettings


def _settings() -> RegistrySettings:
    from device_registry.settings import RegistrySettings  # imported when used: keeps `zhijian` quick to start

    return RegistrySettings()


app = typer.Typer(
    rich_markup_mode="markdown",
    help="The device registry: set it up, serve its HTTP API, add places and API tokens, apply broker files.",
    no_args_is_help=True,
)
add_app = typer.Typer(
    rich_markup_mode="markdown",
    help="Add districts, markets, stalls, planting bases and rapid-test vehicles.",
    no_args_is_help=True,
)
token_app = typer.Typer(
    rich_markup_mode="markdown", help="API tokens (admin only): create, list, revoke.", no_args_is_help=True
)
app.add_typer(add_app, name="add")
app.add_typer(token_app, name="token")


@app.callback()
def _connection(ctx: typer.Context, api: ApiOption = None, token: TokenOption = None) -> None:
    remember_connection(ctx, api, token)


TOKEN_DAYS = 90  # device_registry.schemas.TOKEN_DAYS, not imported: keeps `zhijian --help` quick
ExpiresDays = Annotated[
    int, typer.Option(help=f"Days until the token expires (at least 1; {TOKEN_DAYS} unless given).")
]


def _check_days(days: int) -> None:
    if days < 1:
        raise CliError(f"--expires-days must be at least 1, not {days}: API tokens always expire")


@app.command("init")
def init(
    admin_name: Annotated[str, typer.Option(help="Name of the first admin token.")] = "first admin",
    expires_days: ExpiresDays = TOKEN_DAYS,
    no_expiry: Annotated[
        bool,
        typer.Option(
            "--no-expiry",
            help="Make the first admin token never expire (recorded in the audit log); only here, for bootstrapping.",
        ),
    ] = False,
    new_admin_token: Annotated[
        bool,
        typer.Option(
            "--new-admin-token",
            help="On a registry initialised already: mint another admin token anyway (e.g. the first one is lost).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Create or migrate the registry database (ZHIJIAN_REGISTRY_URL) to the latest schema; create the key
    secret file if there is none (mode 600); print a first admin API token (shown once), which expires after
    --expires-days unless --no-expiry. Run again, it migrates and checks, says the registry is initialised
    already and prints no new token (exit status 0) unless --new-admin-token."""
    with friendly_errors():
        _check_days(expires_days)
    settings = _settings()
    from device_profiles.private_file import write_private
    from device_registry.credentials import new_key_secret
    from device_registry.db import connect, sessions, upgrade
    from device_registry.service import admin_token_count, bootstrap_admin_token

    with friendly_errors():
        upgrade(settings.registry_url)
        created_secret = False
        if settings.key_secret is None and not settings.key_secret_file.exists():
            settings.key_secret_file.parent.mkdir(parents=True, exist_ok=True)
            write_private(settings.key_secret_file, new_key_secret().hex() + "\n")
            created_secret = True
        settings.key_secret_bytes()  # usable?
        engine = connect(settings.registry_url)
        with sessions(engine)() as db:
            existing = admin_token_count(db)
            admin = None
            if existing == 0 or new_admin_token:
                admin = bootstrap_admin_token(
                    db, admin_name, f"local:{getpass.getuser()}", expires_days=expires_days, never_expires=no_expiry
                )
        engine.dispose()
    doc: dict[str, Any] = {"registry_url": settings.registry_url, "key_secret_file": str(settings.key_secret_file)}
    doc |= {"created_key_secret": created_secret, "already_initialised": existing > 0, "admin_token": None}
    if admin is not None:
        doc |= {"admin_token": admin.token, "admin_token_expires_at": admin.expires_at and admin.expires_at.isoformat()}
    emit(doc, as_json, _print_init)


def _print_init(d: dict[str, Any]) -> None:
    ready = "initialised already" if d["already_initialised"] else "ready"
    console.print(
        f"registry {ready} at {d['registry_url']} (schema up to date)\n"
        f"key secret {'created in' if d['created_key_secret'] else 'kept in'} {d['key_secret_file']} "
        "(back it up; the ingest needs it too)",
        highlight=False,
    )
    if d["admin_token"] is None:
        console.print(
            "no new admin token: the first one was printed when the registry was initialised. Another: "
            "`zhijian registry token create NAME --role admin`, or `zhijian registry init --new-admin-token`",
            highlight=False,
        )
        return
    console.print(
        f"admin API token (shown once): [bold]{d['admin_token']}[/]\n"
        f"it expires {d['admin_token_expires_at'] or 'never (--no-expiry; recorded in the audit log)'}",
        highlight=False,
    )


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (default ZHIJIAN_API_HOST or 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default ZHIJIAN_API_PORT or 8080).")] = None,
) -> None:
    """Serve the registry's HTTP API (OpenAPI at /openapi.json, docs at /docs) until Ctrl-C or SIGTERM."""
    import uvicorn

    from device_registry.api import create_app
    from device_registry.db import open_current

    settings = _settings()
    with friendly_errors():
        engine = open_current(settings.registry_url)
        bundles = bundle_defaults(settings)
        if bundles is None:
            err_console.print("[yellow]no key secret: provisioning is refused until ZHIJIAN_KEY_SECRET_FILE is set[/]")
        app_ = create_app(engine, bundles=bundles, broker=broker_sync(settings))
    uvicorn.run(app_, host=host or settings.api_host, port=port or settings.api_port, log_level="info")


@app.command("broker-files")
def broker_files(
    no_check: Annotated[
        bool,
        typer.Option(
            "--no-check", help="Write the files only; do not wait for the broker (e.g. before it first starts)."
        ),
    ] = False,
) -> None:
    """Write the Mosquitto password file and ACL from the registry now and have Mosquitto apply them
    (ZHIJIAN_BROKER_PASSWD_FILE, _ACL_FILE, _SERVICE_ACCOUNTS, _FILES_GROUP, _PID_FILE, _CHECK_HOST). The API
    and the CLI also do this after every provision, rotation and revocation. Exits 1 if the broker did not
    confirm it applied them (with ZHIJIAN_BROKER_CHECK_HOST set)."""
    import dataclasses

    settings = _settings()
    from device_registry.db import connect, sessions

    with friendly_errors():
        sync = broker_sync(settings)
        if sync is None:
            raise CliError("set ZHIJIAN_BROKER_PASSWD_FILE and ZHIJIAN_BROKER_ACL_FILE")
        if no_check:
            sync = dataclasses.replace(sync, check=None)
        engine = connect(settings.registry_url)
        try:
            with sessions(engine)() as db:
                update = sync.apply(db)
        finally:
            engine.dispose()
    console.print(
        f"wrote {sync.passwd_file} ({update.devices} devices) and {sync.acl_file}: {update.detail}", highlight=False
    )


@app.command("broker-reloader")
def broker_reloader(
    watch: Annotated[
        list[Path], typer.Option("--watch", help="A broker file the registry writes (password file, ACL); repeat.")
    ],
    pid_file: Annotated[Path, typer.Option(help="Mosquitto's pid file.")] = Path("/run/mosquitto/mosquitto.pid"),
    interval: Annotated[float, typer.Option(min=0.05, help="Seconds between looks at the files.")] = 0.5,
) -> None:
    """Run as Mosquitto's user (deploy/systemd/zhijian-broker-reloader.service): signal Mosquitto to re-read
    its files whenever the registry rewrites them, after checking that the pid file names Mosquitto. The
    registry, running as another user, may not signal it itself."""
    import contextlib
    import logging

    from device_registry.broker_reload import watch as watch_files

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C when run by hand; systemd stops it with SIGTERM
        watch_files(watch, pid_file, interval_s=interval)


def _add(
    ctx: typer.Context,
    path: str,
    body: dict[str, Any],
    as_json: bool,
    what: str,
    api: str | None = None,
    token: str | None = None,
) -> None:
    with friendly_errors():
        out = client(ctx, api, token).call("POST", path, {k: v for k, v in body.items() if v is not None})
    emit(out, as_json, lambda o: console.print(escape(f"added {what} {o.get('id')}"), highlight=False))


Name = Annotated[str, typer.Option(help="Display name.")]
District = Annotated[str, typer.Option(help="District id.")]
MarketOpt = Annotated[str, typer.Option("--market", help="Market id.")]
StallCodeOpt = Annotated[str, typer.Option("--code", help="Stall number, e.g. A-017.")]
VendorOpt = Annotated[str, typer.Option("--vendor", help="Vendor (经营者) name.")]
LicenceOpt = Annotated[
    str, typer.Option("--licence", help="Business licence: 18-character unified social credit code.")
]


LatOpt = Annotated[float | None, typer.Option("--lat", help="WGS-84 latitude, degrees (with --lon).")]
LonOpt = Annotated[float | None, typer.Option("--lon", help="WGS-84 longitude, degrees (with --lat).")]


@add_app.command("district")
def add_district(
    ctx: typer.Context,
    district_id: str,
    name: Name,
    lat: LatOpt = None,
    lon: LonOpt = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """A district (区) of the city."""
    _add(
        ctx, "/v1/districts", {"id": district_id, "name": name, "lat": lat, "lon": lon}, as_json, "district", api, token
    )


@add_app.command("market")
def add_market(
    ctx: typer.Context,
    market_id: str,
    name: Name,
    district: District,
    operator: Annotated[str, typer.Option(help="Company running the market (市场开办方).")],
    operator_licence: Annotated[str | None, typer.Option(help="Its unified social credit code.")] = None,
    lat: LatOpt = None,
    lon: LonOpt = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """A market (农贸市场) and its operator."""
    body = {"id": market_id, "name": name, "district_id": district, "operator": operator, "lat": lat, "lon": lon}
    _add(ctx, "/v1/markets", body | {"operator_licence": operator_licence}, as_json, "market", api, token)


@add_app.command("stall")
def add_stall(
    ctx: typer.Context,
    market: MarketOpt,
    code: StallCodeOpt,
    vendor: VendorOpt,
    licence: LicenceOpt,
    lat: LatOpt = None,
    lon: LonOpt = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """A stall in a market, with its vendor and business licence (the check character is verified)."""
    body = {"market_id": market, "code": code, "vendor": vendor, "business_licence": licence, "lat": lat, "lon": lon}
    _add(ctx, "/v1/stalls", body, as_json, f"stall {market}/{code}, id", api, token)


@app.command("change-vendor")
def change_vendor(
    ctx: typer.Context,
    market: MarketOpt,
    code: StallCodeOpt,
    vendor: VendorOpt,
    licence: LicenceOpt,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """A stall changed hands: record its new vendor and licence (the previous ones stay in the audit log)."""
    with friendly_errors():
        out = client(ctx, api, token).call(
            "PUT", f"/v1/markets/{market}/stalls/{code}/vendor", {"vendor": vendor, "business_licence": licence}
        )
    emit(out, as_json, lambda o: console.print(escape(f"stall {market}/{code}: {_holder(o)}"), highlight=False))


def _holder(stall: dict[str, Any]) -> str:
    return f"{stall['vendor']} ({stall['business_licence']})"


@app.command("position")
def set_position(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="district, market, stall or base.")],
    place_id: Annotated[str, typer.Argument(help="Its id (a stall: its code, with --market).")],
    lat: LatOpt = None,
    lon: LonOpt = None,
    market: Annotated[str | None, typer.Option("--market", help="A stall's market.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Set (or, without --lat/--lon, remove) a place's WGS-84 position, as GPS and OpenStreetMap give it (a
    Chinese basemap such as AutoNavi or Tencent needs GCJ-02: the registry keeps WGS-84, see docs/registry.md)."""
    paths = {"district": "/v1/districts/{}", "market": "/v1/markets/{}", "base": "/v1/bases/{}"}
    with friendly_errors():
        if kind == "stall":
            if not market:
                raise CliError("a stall is named by --market and its code")
            path = f"/v1/markets/{market}/stalls/{place_id}/position"
        elif kind in paths:
            path = paths[kind].format(place_id) + "/position"
        else:
            raise CliError(f"{kind!r}: a position belongs to a district, market, stall or base")
        out = client(ctx).call("PUT", path, {"lat": lat, "lon": lon})
    where = "no position" if out.get("lat") is None else f"{out['lat']}, {out['lon']} (WGS-84)"
    emit(out, as_json, lambda o: console.print(f"{kind} {place_id}: {where}", highlight=False))


@add_app.command("base")
def add_base(
    ctx: typer.Context,
    base_id: str,
    name: Name,
    district: District,
    crop: Annotated[list[str] | None, typer.Option(help="A crop grown there; repeat.")] = None,
    limit: Annotated[
        list[str] | None,
        typer.Option(
            help="Alert limits of a channel: CHANNEL=LOW:HIGH (either may be empty), e.g. "
            "soil.moisture_pct=20:45; repeat. Channels without one use the crop's or the defaults."
        ),
    ] = None,
    lat: LatOpt = None,
    lon: LonOpt = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """A planting base (种植基地), its crops and its sensor alert limits."""
    with friendly_errors():
        limits = dict(_parse_limit(text) for text in limit or [])
    body: dict[str, Any] = {"id": base_id, "name": name, "district_id": district, "crops": crop or []}
    body |= {"alert_limits": limits, "lat": lat, "lon": lon}
    _add(ctx, "/v1/bases", body, as_json, "base", api, token)


def _parse_limit(text: str) -> tuple[str, dict[str, float]]:
    channel, sep, bounds = text.partition("=")
    low, colon, high = bounds.partition(":")
    try:
        if not (sep and colon):
            raise ValueError
        doc = {k: float(v) for k, v in (("low", low), ("high", high)) if v.strip()}
    except ValueError as exc:
        raise CliError(f"--limit {text!r}: write CHANNEL=LOW:HIGH, e.g. soil.moisture_pct=20:45") from exc
    return channel.strip(), doc


@add_app.command("vehicle")
def add_vehicle(
    ctx: typer.Context,
    vehicle_id: str,
    plate: Annotated[str, typer.Option(help="Licence plate.")],
    district: District,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """A rapid-test vehicle (快检车)."""
    body = {"id": vehicle_id, "plate": plate, "district_id": district}
    _add(ctx, "/v1/vehicles", body, as_json, "vehicle", api, token)


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: str,
    role: Annotated[str, typer.Option(help="admin, technician, supervisor, viewer or ingest (the ingest's account).")],
    district: Annotated[list[str] | None, typer.Option(help="Limit to this district; repeat.")] = None,
    market: Annotated[list[str] | None, typer.Option(help="Limit to this market; repeat.")] = None,
    expires_days: ExpiresDays = TOKEN_DAYS,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Create an API token; its text is printed once (only its hash is kept). Supervisors need a scope.
    Every token expires (after 90 days unless --expires-days says otherwise)."""
    body = {"name": name, "role": role, "districts": district or [], "markets": market or []}
    with friendly_errors():
        _check_days(expires_days)
        out = client(ctx, api, token).call("POST", "/v1/tokens", body | {"expires_days": expires_days})
    emit(
        out,
        as_json,
        lambda o: console.print(f"token {o['id']} ({o['role']}, expires {o['expires_at']}), shown once:\n{o['token']}"),
    )


@token_app.command("list")
def token_list(
    ctx: typer.Context, as_json: JsonOption = False, api: ApiOption = None, token: TokenOption = None
) -> None:
    """API tokens (never their secrets)."""
    with friendly_errors():
        items = client(ctx, api, token).pages("/v1/tokens")
    emit(
        items,
        as_json,
        lambda rows: print_table(
            rows,
            [
                ("id", lambda t: t["id"]),
                ("name", lambda t: t["name"]),
                ("role", lambda t: t["role"]),
                ("scope", lambda t: ", ".join(t["districts"] + t["markets"]) or "everywhere"),
                ("expires", lambda t: t["expires_at"]),
                ("state", lambda t: "revoked" if t["revoked_at"] else "active"),
            ],
            "API tokens",
        ),
    )


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context, token_id: str, as_json: JsonOption = False, api: ApiOption = None, token: TokenOption = None
) -> None:
    """Revoke an API token at once."""
    with friendly_errors():
        out = client(ctx, api, token).call("POST", f"/v1/tokens/{token_id}/revoke")
    emit(out, as_json, lambda o: console.print(f"token {o['id']} revoked"))


@app.command("audit")
def audit(
    ctx: typer.Context,
    entity_id: Annotated[str | None, typer.Option("--device", help="Only entries about this device (or id).")] = None,
    actor: Annotated[str | None, typer.Option(help="Only entries by this actor.")] = None,
    days: Annotated[int | None, typer.Option(min=1, help="Only the last N days.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Newest entries to show.")] = 50,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """The audit log, newest first: who changed what, when."""
    with friendly_errors():
        since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).isoformat() if days else None
        registry = client(ctx, api, token)
        page = registry.call("GET", "/v1/audit", entity_id=entity_id, actor=actor, since=since, limit=limit)
    emit(
        page["items"],
        as_json,
        lambda rows: print_table(
            rows,
            [
                ("at", lambda e: e["at"][:19]),
                ("actor", lambda e: e["actor"]),
                ("action", lambda e: e["action"]),
                ("what", lambda e: f"{e['entity']} {e['entity_id']}"),
                ("detail", lambda e: ", ".join(f"{k}={v}" for k, v in e["detail"].items())[:80]),
            ],
            f"audit log ({len(rows)} of {page['total']})",
        ),
    )


ca_app = typer.Typer(
    rich_markup_mode="markdown",
    help="A local certificate authority for the broker's TLS listener and devices' certificates.",
)
app.add_typer(ca_app, name="ca")


@ca_app.command("init")
def ca_init(
    folder: Annotated[Path, typer.Option("--dir", help="Where the CA lives (ca.pem, ca.key; keep it private).")],
    broker_host: Annotated[list[str], typer.Option(help="Name or address clients use for the broker; repeat.")],
    port: Annotated[int, typer.Option(help="The TLS listener's port.")] = 8883,
    require_client_cert: Annotated[
        bool, typer.Option(help="Refuse clients without a certificate from this CA.")
    ] = False,
) -> None:
    """Create (or reuse) a local CA and issue the broker's server certificate; print the Mosquitto listener
    lines. Then set ZHIJIAN_BUNDLE_CA_FILE to its ca.pem so bundles carry it, and ZHIJIAN_DEVICE_CA_DIR to the
    folder so each bundle also carries a client certificate for its device (CN = device id)."""
    from device_registry.local_ca import LocalCA

    from .servers import LISTENER_LINES

    ca = LocalCA(folder)
    server = ca.issue("broker", hosts=tuple(broker_host))
    console.print(f"CA {ca.cert_path}; broker certificate {server.cert} for {', '.join(broker_host)}", highlight=False)
    console.print("mosquitto.conf:", highlight=False)
    typer.echo(
        f"listener {port}\ncafile {ca.cert_path}\ncertfile {server.cert}\nkeyfile {server.key}\n"
        f"require_certificate {'true' if require_client_cert else 'false'}\n" + "\n".join(LISTENER_LINES)
    )


@app.command("openapi")
def openapi(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of printing.")] = None,
) -> None:
    """The registry API's OpenAPI document (what `zhijian registry serve` publishes at /openapi.json)."""
    import json

    text = json.dumps(openapi_document(), indent=1, ensure_ascii=False) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")


def openapi_document() -> dict[str, Any]:
    from sqlalchemy import create_engine

    from device_registry.api import create_app

    spec: dict[str, Any] = create_app(create_engine("sqlite://")).openapi()
    return spec
