"""Delivering a device's new credentials: where the bundle may go (checked before anything changes) and
writing it there: a file (mode 600), the device over its serial line, QR text, or JSON for a script."""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.markup import escape

from device_profiles.bundle import Bundle
from device_profiles.bundle_text import QR_PREFIX, from_qr_text
from device_profiles.private_file import write_private
from edge_agent.errors import AgentError

from .cli_common import console, emit, err_console
from .registry_client import CliError

RESERVE_BYTES = 64 * 1024  # more than any bundle (password, key, CA certificate): written as a trial first


def check_delivery(
    out: Path | None, qr: bool, serial_port: str | None, as_json: bool, device_id: str | None = None
) -> None:
    """Refuse before any credential changes when the new secrets would have nowhere to go: the registry
    keeps only hashes, so secrets not delivered now are lost, and the device's working bundle with them.
    The file is tried for real (a trial write of :data:`RESERVE_BYTES`: a full disk, a read-only mount or
    /proc fail here, not after the rotation); a file that is not a regular file, or that holds another
    device's bundle, is not overwritten; the serial port is opened once."""
    if out is None and not qr and serial_port is None and not as_json:
        raise CliError(
            "nowhere to deliver the new credentials: give --out FILE, --qr or --write-serial PORT "
            "(nothing was changed; the device's current bundle still works)"
        )
    if out is not None:
        _check_file(out, device_id)
    if serial_port is not None:
        _check_port(serial_port)


def _check_file(out: Path, device_id: str | None) -> None:
    if out.is_dir():
        raise CliError(f"--out {out}: is a folder; give a file name (nothing was changed)")
    if out.is_symlink() or (out.exists() and not out.is_file()):
        raise CliError(f"--out {out}: not a regular file (a link or a device); give a file name (nothing was changed)")
    if out.is_file() and device_id is not None:
        holder = _bundle_device(out)
        if holder is not None and holder != device_id:
            raise CliError(
                f"--out {out}: holds the bundle of {holder}; give another file, or move that one away first "
                "(nothing was changed)"
            )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        trial = out.with_name(f".{out.name}.trial")
        fd = os.open(trial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"\0" * RESERVE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
            trial.unlink(missing_ok=True)
    except OSError as exc:
        raise CliError(f"--out {out}: cannot write there ({exc.strerror or exc}; nothing was changed)") from exc


def _bundle_device(path: Path) -> str | None:
    """The device whose bundle ``path`` holds, if it is one."""
    try:
        text = path.read_text(encoding="utf-8")
        doc = from_qr_text(text.strip()) if text.lstrip().startswith(QR_PREFIX) else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError, zlib.error):
        return None
    device = doc.get("device_id") if isinstance(doc, dict) else None
    return device if isinstance(device, str) else None


def _check_port(serial_port: str) -> None:
    import serial

    if "://" not in serial_port and not Path(serial_port).exists():
        raise CliError(f"--write-serial {serial_port}: no such serial port (nothing was changed)")
    try:
        serial.serial_for_url(serial_port, timeout=0.1).close()
    except (serial.SerialException, OSError, ValueError) as exc:
        raise CliError(
            f"--write-serial {serial_port}: cannot open it as a serial port ({exc}; nothing was changed)"
        ) from exc


def _rescue(out: dict[str, Any], why: str) -> None:
    """The new credentials are in force and could not be delivered: show the bundle once, so it is not lost."""
    err_console.print(
        escape(
            f"{why}. The new credentials are in force and the device's old bundle no longer works. Here is the new "
            "bundle (the agent reads this text as a bundle file); save it now, it is shown only this once:"
        ),
        highlight=False,
    )
    typer.echo(out["qr_text"], err=True)


def write_bundle(out: dict[str, Any], path: Path | None, qr: bool, serial_port: str | None, as_json: bool) -> None:
    """Deliver ``out`` (the API's answer) where asked. The copies that cannot fail halfway come first (the
    file, the QR text), the serial line last: a line that fails then leaves the secrets where they were
    asked for, and the message says what else to do."""
    if path is not None:
        bundle = Bundle.model_validate(out["bundle"]).model_dump(mode="json", exclude_none=True)  # checked, no nulls
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_private(path, yaml.safe_dump(bundle, sort_keys=False, allow_unicode=True))
        except OSError as exc:
            _rescue(out, f"could not write {path} ({exc.strerror or exc})")
            raise CliError(f"--out {path}: not written; the bundle is shown above") from exc
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
        if not kept:
            _rescue(out, f"the device on {serial_port} did not take its new bundle ({exc})")
        where = "the new bundle is shown above" if not kept else "the new bundle is where you asked for a copy"
        raise CliError(
            f"{exc}: the device on {serial_port} did not take its new bundle, and its old one no longer works "
            f"({where}): check the line and the device's `zhijian agent receive-bundle`, then give the device "
            f"that bundle, or run `zhijian device rotate {out['device_id']}` again"
        ) from exc
    if (device, fingerprint) != (out["device_id"], out["key_fingerprint"]):
        raise CliError(f"the device on {serial_port} reports {device} / {fingerprint}, not what was issued")
