"""How the device commands show a device and a verification: one device in full, one line naming a device
for a confirmation, a verification's readings against the MPE with its verdict and its warnings.

Values from the registry are escaped before Rich prints them: a serial number or a vendor's name may hold
``[…]``, which Rich would otherwise take for markup and drop."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from .cli_common import console, err_console
from .cli_common import table as print_table
from .registry_client import CliError, RegistryClient

VERIFICATION_FAILED_EXIT = 3  # recorded, but the scale failed: not 1 (refused), so scripts can tell them apart


def place_text(d: dict[str, Any]) -> str:
    p = d["place"]
    if p["kind"] == "stall":
        return f"{p['market_id']}/{p['stall_code']}"
    return str(p.get("base_id") or p.get("vehicle_id"))


def last_verified(v: dict[str, Any] | None) -> str:
    """The ``verified`` column of `device list`: the day of the last verification if it passed, FAILED if
    it failed (its day is in `device show`; the column stays narrow enough not to wrap)."""
    if v is None:
        return "never"
    return str(v["verified_on"]) if v["passed"] else "FAILED"


def show_device(d: dict[str, Any]) -> None:
    v = d.get("last_verification")
    key = f"key v{d['key_version']}, fingerprint {d['key_fingerprint']}" if d["key_version"] else "not provisioned"
    if v is None:
        verified = "never"
    elif v["passed"]:
        verified = f"{v['verified_on']} cert {v['certificate_no']} PASSED, due {v['due_on']}"
    else:
        verified = f"{v['verified_on']} cert {v['certificate_no']} FAILED: not fit for trade until verified again"
    software = d.get("approved_software_id") or "-"
    lines = [
        f"[bold]{escape(d['id'])}[/]  " + escape(f"{d['kind']} ({d['profile']}), serial {d['serial_no']}"),
        escape(f"  at          {d['place']['kind']} {place_text(d)} in {d['place']['district_id']}"),
        escape(f"  credentials {key}"),
        escape(f"  software    {software} approved, firmware {d.get('firmware_version') or '-'}"),
        escape(f"  verified    {verified}"),
    ]
    if d.get("revoked_at"):
        lines.append(f"  [red]REVOKED at {d['revoked_at']}[/]")
    console.print("\n".join(lines), highlight=False)


def describe_device(api: RegistryClient, d: dict[str, Any]) -> str:
    """One line naming a device, its place and who is there (a stall's vendor, a base's name, a vehicle's
    plate), for a confirmation before its credentials end."""
    p = d["place"]
    where = f"{p['kind']} {place_text(d)} in {p['district_id']}"
    try:
        if p["kind"] == "stall":
            stalls = api.pages("/v1/stalls", market=p["market_id"])
            stall = next((s for s in stalls if s["code"] == p["stall_code"]), None)
            if stall is not None:
                where += f", vendor {stall['vendor']} (licence {stall['business_licence']})"
        elif p["kind"] == "base":
            base = next((b for b in api.pages("/v1/bases", district=p["district_id"]) if b["id"] == p["base_id"]), None)
            where += f" ({base['name']})" if base else ""
        else:
            vehicles = api.pages("/v1/vehicles", district=p["district_id"])
            vehicle = next((v for v in vehicles if v["id"] == p["vehicle_id"]), None)
            where += f" (plate {vehicle['plate']})" if vehicle else ""
    except CliError:  # a caller who may not list places: the device and its place still say enough
        pass
    return f"{d['id']} ({d['kind']} {d['profile']}, serial {d['serial_no']}) at {where}"


def render_verification(device_id: str, v: dict[str, Any]) -> None:
    print_table(
        v["reference_weights"],
        [
            ("reference g", lambda r: r["reference_g"]),
            ("indicated g", lambda r: r["indicated_g"]),
            ("error g", lambda r: f"{r['error_g']:+g}"),
            ("MPE g", lambda r: f"±{r['mpe_g']:g}"),
            ("", lambda r: "ok" if r["within_mpe"] else "[red]OUT[/]"),
        ],
        escape(f"{device_id}: verification {v['certificate_no']}"),
    )
    for warning in v.get("warnings", []):
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    if v["passed"]:
        console.print(f"[green]PASSED[/]; coefficient {v['coefficient']:g}, next due {v['due_on']}", highlight=False)
    else:
        console.print(
            "[red]FAILED[/]: a reading is outside the MPE; recorded with no due date. The scale is not fit for "
            "trade until it is adjusted or repaired and verified again.",
            highlight=False,
        )
