"""``zhijian device …``: what a field technician does with a device, locally or against the registry API."""

from __future__ import annotations

import csv
import datetime as dt
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from device_profiles import builtin
from device_profiles.topics import valid_device_id

from .broker_note import broker_note
from .cli_common import (
    ApiOption,
    JsonOption,
    TokenOption,
    YesOption,
    client,
    confirm,
    console,
    emit,
    err_console,
    friendly_errors,
    remember_connection,
)
from .cli_common import table as print_table
from .credential_delivery import check_delivery, write_bundle
from .device_view import (
    VERIFICATION_FAILED_EXIT,
    describe_device,
    last_verified,
    place_text,
    render_verification,
    show_device,
)
from .registry_client import CliError

app = typer.Typer(
    rich_markup_mode="markdown",
    help="Register, provision, verify, revoke and list devices (scales, sensor gateways, rapid-test analysers). "
    "Works on the local registry, or remotely with --api and --token.",
    no_args_is_help=True,
)


def _device_id(value: str) -> str:
    """A device id as the registry has them, checked before it goes into a URL path (``a/b`` or
    ``x/../scale-0001`` would name another resource)."""
    if not valid_device_id(value):
        raise typer.BadParameter(
            f"{value!r}: a device id is 3-64 lower-case letters, digits and '-', the first a letter or digit "
            "(e.g. scale-0042)"
        )
    return value


DeviceArg = Annotated[
    str, typer.Argument(metavar="DEVICE_ID", help="The device's id (e.g. scale-0042).", callback=_device_id)
]


@app.callback()
def _connection(ctx: typer.Context, api: ApiOption = None, token: TokenOption = None) -> None:
    remember_connection(ctx, api, token)


@app.command("register")
def register(
    ctx: typer.Context,
    device_id: Annotated[str, typer.Argument(help="Device id, also its MQTT username (e.g. scale-0042).")],
    profile: Annotated[str, typer.Option(help="Device profile id (`zhijian profiles list`).")],
    serial_no: Annotated[str, typer.Option("--serial", help="Manufacturer's serial number on the plate.")],
    market: Annotated[str | None, typer.Option(help="Market id of the stall (with --stall).")] = None,
    stall: Annotated[str | None, typer.Option(help="Stall code in that market, e.g. A-017.")] = None,
    base: Annotated[str | None, typer.Option(help="Planting base id (instead of a stall).")] = None,
    vehicle: Annotated[str | None, typer.Option(help="Rapid-test vehicle id (instead of a stall).")] = None,
    production_code: Annotated[str | None, typer.Option(help="Manufacturing licence code (制造许可证).")] = None,
    repair_code: Annotated[str | None, typer.Option(help="Repair licence code, if repaired.")] = None,
    software_id: Annotated[str | None, typer.Option(help="Type-approved legally relevant software id.")] = None,
    firmware: Annotated[str | None, typer.Option(help="Firmware version installed.")] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Register a device at a stall (--market and --stall), a planting base (--base) or a vehicle (--vehicle)."""
    body = {
        "id": device_id,
        "profile": profile,
        "serial_no": serial_no,
        "market_id": market,
        "stall_code": stall,
        "base_id": base,
        "vehicle_id": vehicle,
        "production_code": production_code,
        "repair_code": repair_code,
        "approved_software_id": software_id,
        "firmware_version": firmware,
    }
    with friendly_errors():
        out = client(ctx, api, token).call("POST", "/v1/devices", {k: v for k, v in body.items() if v is not None})
    emit(out, as_json, show_device)


@app.command("update")
def update(
    ctx: typer.Context,
    device_id: DeviceArg,
    firmware: Annotated[str | None, typer.Option(help="Firmware version now installed.")] = None,
    software_id: Annotated[str | None, typer.Option(help="Type-approved software id.")] = None,
    repair_code: Annotated[str | None, typer.Option(help="Repair licence code of the last repair.")] = None,
    production_code: Annotated[str | None, typer.Option(help="Manufacturing licence code.")] = None,
    serial_no: Annotated[str | None, typer.Option("--serial", help="Serial number.")] = None,
    market: Annotated[str | None, typer.Option(help="Move to this market's --stall.")] = None,
    stall: Annotated[str | None, typer.Option(help="Stall code in --market.")] = None,
    base: Annotated[str | None, typer.Option(help="Move to this planting base.")] = None,
    vehicle: Annotated[str | None, typer.Option(help="Move to this rapid-test vehicle.")] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Change what a device has installed (firmware, software id), its codes, or move it to another place.
    The audit log keeps old and new values; the ingest tags its records with the new place."""
    body = {
        "firmware_version": firmware,
        "approved_software_id": software_id,
        "repair_code": repair_code,
        "production_code": production_code,
        "serial_no": serial_no,
        "market_id": market,
        "stall_code": stall,
        "base_id": base,
        "vehicle_id": vehicle,
    }
    with friendly_errors():
        patch = {k: v for k, v in body.items() if v is not None}
        out = client(ctx, api, token).call("PATCH", f"/v1/devices/{device_id}", patch)
    emit(out, as_json, show_device)


OutOption = Annotated[Path | None, typer.Option("--out", "-o", help="Write the agent's bundle (YAML) here.")]
QrOption = Annotated[bool, typer.Option("--qr", help="Print the bundle as text for a QR code.")]
SerialOption = Annotated[
    str | None,
    typer.Option(
        "--write-serial",
        help="Send the bundle to the device over this serial port (it runs "
        "`zhijian agent receive-bundle`) and check the key fingerprint it reports.",
    ),
]
PortOption = Annotated[
    str | None, typer.Option("--port", help="Where the agent reads the device (default /dev/ttyUSB0).")
]


def issue(
    ctx: typer.Context,
    device_id: DeviceArg,
    out: OutOption = None,
    qr: QrOption = False,
    write_serial: SerialOption = None,
    port: PortOption = None,
    yes: YesOption = False,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    action = ctx.info_name or "provision"  # `provision` or `rotate`: the same call, recorded as such
    with friendly_errors():
        check_delivery(out, qr, write_serial, as_json, device_id)
        registry = client(ctx, api, token)
        d = None if yes else registry.call("GET", f"/v1/devices/{device_id}")
        if d is not None and d["key_version"]:  # it has working credentials: this ends them; say so and ask
            err_console.print(
                escape(
                    f"{action}: {describe_device(registry, d)}\n  replaces key v{d['key_version']} "
                    f"(fingerprint {d['key_fingerprint']}): the device's current bundle stops working at once"
                ),
                highlight=False,
            )
            confirm(f"{action} {device_id}?")
        result = registry.call("POST", f"/v1/devices/{device_id}/{action}", {"port": port} if port else {})
        write_bundle(result, out, qr, write_serial, as_json)
        broker_note(result, what="the new credentials are in force", as_json=as_json)


app.command(
    "provision",
    help="Issue the device's credentials (MQTT password, integrity key) and its agent bundle, delivered with "
    "--out, --qr, --write-serial or --json (refused without one: the secrets appear only in this bundle; the "
    "registry keeps hashes). Provisioning again replaces them: it shows the device and asks first (--yes).",
)(issue)
app.command(
    "rotate",
    help="Replace the device's password and key (a new bundle, delivered as for provision); the old ones stop "
    "working at once. Shows the device and asks first (--yes for scripts).",
)(issue)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    device_id: DeviceArg,
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit log), e.g. 'seal broken'.")],
    yes: YesOption = False,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Revoke a device: the broker refuses it and ends its session; the ingest rejects its records. Shows
    the device, its place and vendor and asks first (--yes for scripts; without a terminal --yes is needed).
    A revoked device id cannot be provisioned again."""
    with friendly_errors():
        registry = client(ctx, api, token)
        d = None if yes else registry.call("GET", f"/v1/devices/{device_id}")
        if d is not None and not d.get("revoked_at"):  # revoked already: the API says so, nothing to ask
            err_console.print(escape(f"revoke: {describe_device(registry, d)}\n  reason: {reason}"), highlight=False)
            confirm(f"revoke {device_id} for good?")
        out = registry.call("POST", f"/v1/devices/{device_id}/revoke", {"reason": reason})
    emit(out, as_json, lambda o: console.print(f"[red]revoked[/] {o['device_id']} at {o['revoked_at']}"))
    with friendly_errors():
        broker_note(out, what="it is refused from now on", as_json=as_json)


def _parse_reading(text: str) -> dict[str, float]:
    ref, sep, shown = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return {"reference_g": float(ref), "indicated_g": float(shown)}
    except ValueError as exc:
        raise CliError(f"--reading {text!r}: write REFERENCE_G=INDICATED_G, e.g. 10000=10002.5") from exc


def _read_scale(profile_id: str, port: str) -> dict[str, Any]:
    from edge_agent.mtsics_driver import MtSicsScale

    scale = MtSicsScale(builtin(profile_id), port)
    scale.open()
    try:
        return scale.read_state(ts_ms=int(time.time() * 1000))
    finally:
        scale.close()


@app.command("verify")
def verify(
    ctx: typer.Context,
    device_id: DeviceArg,
    certificate: Annotated[str, typer.Option(help="Verification certificate number (检定证书).")],
    body: Annotated[str, typer.Option(help="Verifying body, e.g. 'Shenzhen Institute of Metrology'.")],
    seal: Annotated[str, typer.Option(help="Number of the seal applied.")],
    technician: Annotated[str, typer.Option(help="Who verified.")],
    reading: Annotated[list[str], typer.Option(help="REFERENCE_G=INDICATED_G for each reference weight; repeat.")],
    from_scale: Annotated[
        str | None, typer.Option(help="Read coefficient, zero, counters and software id from the scale on this port.")
    ] = None,
    coefficient: Annotated[float | None, typer.Option(help="Calibrated coefficient read (counts per kg).")] = None,
    zero_counts: Annotated[int | None, typer.Option(help="Zero in ADC counts read.")] = None,
    calibration_events: Annotated[int | None, typer.Option(help="Calibration event counter read.")] = None,
    configuration_events: Annotated[int | None, typer.Option(help="Configuration event counter read.")] = None,
    software_id: Annotated[str | None, typer.Option(help="Software id shown by the scale.")] = None,
    on: Annotated[str | None, typer.Option("--date", help="Date verified, YYYY-MM-DD (default today).")] = None,
    due: Annotated[
        str | None,
        typer.Option(help="Next verification due, YYYY-MM-DD (default one year on; none if the scale fails)."),
    ] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Record a verification (检定) from readings taken on site; each is judged against the MPE.

    With --from-scale, the scale's coefficient, zero, event counters and software id are read from it
    over its serial line (MT-SICS); otherwise give them. A passed verification restarts the anti-cheat
    baselines of the scale and sets its next due date. A failed one is recorded (FAILED in `device list`),
    sets no due date, and exits with status 3. Weigh several loads from Min up to Max: fewer than five, or
    none near Max, is recorded with a warning."""
    with friendly_errors():
        registry = client(ctx, api, token)
        doc: dict[str, Any] = {
            "certificate_no": certificate,
            "verifying_body": body,
            "seal_no": seal,
            "technician": technician,
            "verified_on": on or dt.date.today().isoformat(),
            "readings": [_parse_reading(r) for r in reading],
            "coefficient": coefficient,
            "zero_counts": zero_counts,
            "calibration_events": calibration_events,
            "configuration_events": configuration_events,
            "software_id": software_id,
            "due_on": due,
        }
        if from_scale:
            state = _read_scale(registry.call("GET", f"/v1/devices/{device_id}")["profile"], from_scale)
            for name in ("coefficient", "zero_counts", "calibration_events", "configuration_events", "software_id"):
                doc[name] = doc[name] if doc[name] is not None else state.get(name)
        missing = [name for name in ("coefficient", "calibration_events", "configuration_events") if doc[name] is None]
        if missing:  # in the technician's words, not the API's field names
            options = ", ".join("--" + name.replace("_", "-") for name in missing)
            raise CliError(f"the scale's readings are missing: give --from-scale PORT to read them, or {options}")
        out = registry.call(
            "POST", f"/v1/devices/{device_id}/verifications", {k: v for k, v in doc.items() if v is not None}
        )
    emit(out, as_json, lambda v: render_verification(device_id, v))
    if not out["passed"]:
        raise typer.Exit(VERIFICATION_FAILED_EXIT)


@app.command("list")
def list_devices(
    ctx: typer.Context,
    market: Annotated[str | None, typer.Option(help="Only this market.")] = None,
    district: Annotated[str | None, typer.Option(help="Only this district.")] = None,
    kind: Annotated[str | None, typer.Option(help="scale, sensor_gateway, rapid_test, …")] = None,
    revoked: Annotated[bool | None, typer.Option("--revoked/--active", help="Only revoked, or only active.")] = None,
    due_within: Annotated[
        int | None,
        typer.Option(min=0, max=3650, help="Only scales to (re-)verify within this many days (0: overdue now)."),
    ] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """List devices (all pages), with where they are and their verification status."""
    due_by = (dt.date.today() + dt.timedelta(days=due_within)).isoformat() if due_within is not None else None
    with friendly_errors():
        items = client(ctx, api, token).pages(
            "/v1/devices", market=market, district=district, kind=kind, revoked=revoked, due_by=due_by
        )
    emit(
        items,
        as_json,
        lambda rows: print_table(
            rows,
            [
                ("device", lambda d: d["id"]),
                ("kind", lambda d: d["kind"]),
                ("profile", lambda d: d["profile"]),
                ("at", place_text),
                ("key", lambda d: f"v{d['key_version']}" if d["key_version"] else "-"),
                ("verified", lambda d: last_verified(d["last_verification"])),
                ("due", lambda d: (d["last_verification"] or {}).get("due_on") or ""),
                ("state", lambda d: "REVOKED" if d["revoked_at"] else "active"),
            ],
            f"{len(rows)} devices",
        ),
    )


@app.command("show")
def show(
    ctx: typer.Context,
    device_id: DeviceArg,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """One device: place, credentials (fingerprint only), last verification, revocation."""
    with friendly_errors():
        out = client(ctx, api, token).call("GET", f"/v1/devices/{device_id}")
    emit(out, as_json, show_device)


IMPORT_COLUMNS = ("id", "profile", "serial_no")


@app.command("import")
def import_csv(
    ctx: typer.Context,
    csv_file: Annotated[
        Path, typer.Argument(help="CSV with a header row (columns below).", exists=True, dir_okay=False)
    ],
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Register many devices from a CSV file, with a progress bar; bad rows are reported, the rest imported.

    Columns: id, profile, serial_no, and market_id + stall_code, or base_id, or vehicle_id; optional: production_code, repair_code, approved_software_id, firmware_version."""  # noqa: E501
    with friendly_errors():
        registry = client(ctx, api, token)
        with csv_file.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
        if rows and not set(IMPORT_COLUMNS) <= set(rows[0]):
            raise CliError(f"{csv_file}: the header must have {', '.join(IMPORT_COLUMNS)}; it has {', '.join(rows[0])}")
        failures: list[dict[str, Any]] = []
        with Progress(
            TextColumn("importing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=as_json,
        ) as progress:
            task = progress.add_task("import", total=len(rows))
            for line, row in enumerate(rows, start=2):
                body = {k: v.strip() for k, v in row.items() if k and v and v.strip()}
                try:
                    registry.call("POST", "/v1/devices", body)
                except CliError as exc:
                    failures.append({"line": line, "id": row.get("id"), "error": str(exc)})
                progress.advance(task)
    summary = {"rows": len(rows), "imported": len(rows) - len(failures), "failed": failures}
    emit(summary, as_json, lambda s: _print_import(s, csv_file))
    if failures:
        raise typer.Exit(1)


def _print_import(s: dict[str, Any], path: Path) -> None:
    console.print(f"{path}: {s['imported']} of {s['rows']} devices registered", highlight=False)
    for f in s["failed"]:
        console.print(f"  [red]line {f['line']}[/] {escape(str(f['id']))}: {escape(f['error'])}", highlight=False)
