"""Delivering a device's new credentials: where the bundle may go (checked before anything changes) and
writing it there: a file (mode 600), the device over its serial line, QR text, or JSON for a script."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
import yaml

from device_profiles.bundle import Bundle
from device_profiles.private_file import write_private
from edge_agent.errors import AgentError

from .cli_common import console, emit
from .registry_client import CliError


def check_delivery(out: Path | None, qr: bool, serial_port: str | None, as_json: bool) -> None:
    """Refuse before any credential changes when the new secrets would have nowhere to go: the registry
    keeps only hashes, so secrets not delivered now are lost, and the device's working bundle with them."""
    if out is None and not qr and serial_port is None and not as_json:
        raise CliError(
            "nowhere to deliver the new credentials: give --out FILE, --qr or --write-serial PORT "
            "(nothing was changed; the device's current bundle still works)"
        )
    if out is not None:
        if out.is_dir():
            raise CliError(f"--out {out}: is a folder; give a file name (nothing was changed)")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CliError(f"--out {out}: cannot make {out.parent} ({exc.strerror}; nothing was changed)") from exc
        if not os.access(out.parent, os.W_OK):
            raise CliError(f"--out {out}: cannot write in {out.parent} (nothing was changed)")
    if serial_port is not None and "://" not in serial_port and not Path(serial_port).exists():
        raise CliError(f"--write-serial {serial_port}: no such serial port (nothing was changed)")


def write_bundle(out: dict[str, Any], path: Path | None, qr: bool, serial_port: str | None, as_json: bool) -> None:
    """Deliver ``out`` (the API's answer) where asked. The copies that cannot fail halfway come first (the
    file, the QR text), the serial line last: a line that fails then leaves the secrets where they were
    asked for, and the message says what else to do."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        bundle = Bundle.model_validate(out["bundle"]).model_dump(mode="json", exclude_none=True)  # checked, no nulls
        write_private(path, yaml.safe_dump(bundle, sort_keys=False, allow_unicode=True))
    if qr and not as_json:
        console.print("QR text (encode it as a QR code; the agent reads it as a bundle file too):")
        typer.echo(out["qr_text"])
    if serial_port is not None:
        _send(out, serial_port, kept=path is not None or qr or as_json)
    if as_json:
        emit(out, True, print)
        return
    console.print(
        f"[green]provisioned[/] {out['device_id']}: key v{out['key_version']}, fingerprint {out['key_fingerprint']}",
        highlight=False,
    )
    if path is not None:
        console.print(f"bundle written to {path} (mode 600; it holds the device's password and key)")
    if serial_port is not None:
        console.print(f"bundle written to the device on {serial_port}; it confirmed the key fingerprint")


def _send(out: dict[str, Any], serial_port: str, *, kept: bool) -> None:
    from edge_agent.provisioning_line import send_bundle

    try:
        device, fingerprint = send_bundle(serial_port, out["qr_text"])
    except (AgentError, OSError) as exc:
        # the registry holds the new credentials already and the old bundle no longer works: say what to do
        raise CliError(
            f"{exc}: the device on {serial_port} did not take its new bundle, and its old one no longer works"
            f"{'' if kept else ' (the new secrets are kept nowhere)'}: check the line and the device's "
            f"`zhijian agent receive-bundle`, then `zhijian device rotate {out['device_id']}` again"
            f"{'' if kept else ' with --out FILE as well, to keep a copy'}"
        ) from exc
    if (device, fingerprint) != (out["device_id"], out["key_fingerprint"]):
        raise CliError(f"the device on {serial_port} reports {device} / {fingerprint}, not what was issued")
