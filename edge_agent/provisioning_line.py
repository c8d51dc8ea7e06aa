"""Writing a bundle to a device over its serial line (the technician's laptop on the gateway's console).

One exchange, line-based, ASCII::

    laptop → device   ZJB1:<bundle text>\\r\\n                   (repeated every 2 s until answered)
    device → laptop   OK <device id> <key fingerprint>\\r\\n      or   ERR <reason>\\r\\n

The device validates the bundle as ``zhijian agent run`` would, stores it (mode 0600) and answers with the
fingerprint of the key it now holds, which the technician compares with the registry's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NoReturn

import serial
from pydantic import ValidationError

from device_profiles.bundle import Bundle
from device_profiles.bundle_text import QR_PREFIX, from_qr_text
from device_profiles.envelope import key_fingerprint
from device_profiles.private_file import write_private

from .errors import ConfigError, DeviceTimeout

MAX_LINE = 16_384
RESEND_S = 2.0


def _read_line(port: serial.Serial, timeout_s: float) -> bytes:
    deadline = time.monotonic() + timeout_s
    buf = bytearray()
    while time.monotonic() < deadline and len(buf) < MAX_LINE:
        chunk = port.read(port.in_waiting or 1)
        buf += chunk
        if b"\n" in buf:
            return bytes(buf[: buf.index(b"\n")]).rstrip(b"\r")
    raise DeviceTimeout(f"no complete line within {timeout_s:g} s ({len(buf)} bytes received)")


def _refuse(port: serial.Serial, reason: str, exc: Exception) -> NoReturn:
    port.write(f"ERR {reason}\r\n".encode("ascii", "replace"))
    port.flush()
    raise ConfigError(f"refused a bundle: {reason}") from exc


def send_bundle(port_url: str, text: str, *, baudrate: int = 115_200, timeout_s: float = 10.0) -> tuple[str, str]:
    """Send bundle text to the device on ``port_url``; returns ``(device id, key fingerprint)`` it reports.
    Raises :class:`ConfigError` with the device's reason if it refused the bundle."""
    line = text.strip().encode("ascii") + b"\r\n"
    deadline = time.monotonic() + timeout_s
    with serial.serial_for_url(port_url, baudrate=baudrate, timeout=0.1) as port:
        port.reset_input_buffer()
        while True:  # again every RESEND_S: the device may have opened its port after we wrote
            port.write(line)
            port.flush()
            try:
                reply = _read_line(port, min(RESEND_S, deadline - time.monotonic())).decode("ascii", "replace")
                break
            except DeviceTimeout:
                if time.monotonic() >= deadline:
                    raise DeviceTimeout(f"no answer from the device within {timeout_s:g} s") from None
    status, _, rest = reply.partition(" ")
    if status == "OK" and len(rest.split()) == 2:
        device, fingerprint = rest.split()
        return device, fingerprint
    raise ConfigError(f"the device refused the bundle: {rest or reply}")


def receive_bundle(port_url: str, out: Path, *, baudrate: int = 115_200, timeout_s: float = 600.0) -> Bundle:
    """Wait for one bundle on ``port_url``, store it at ``out`` and confirm; refusals are answered ``ERR``.
    Lines that are not bundles (noise, the tail of a line sent before we opened the port) are skipped."""
    deadline = time.monotonic() + timeout_s
    with serial.serial_for_url(port_url, baudrate=baudrate, timeout=0.1) as port:
        line = ""
        while not line.startswith(QR_PREFIX):
            line = _read_line(port, max(0.0, deadline - time.monotonic())).decode("ascii", "replace").strip()
        try:
            bundle = Bundle.model_validate(from_qr_text(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            reason = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"[:200]
            _refuse(port, reason, exc)
        except ValueError as exc:
            _refuse(port, str(exc)[:200], exc)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_private(out, line + "\n")
        fingerprint = key_fingerprint(bundle.key)
        port.write(f"OK {bundle.device_id} {fingerprint}\r\n".encode("ascii"))
        port.flush()
        return bundle
