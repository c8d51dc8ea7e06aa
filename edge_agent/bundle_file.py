"""Reading a provisioning bundle file and building the agent it describes.

The bundle's schema is the contract's (:mod:`device_profiles.bundle`); this module owns the agent's side:
the file (YAML, JSON or one line of QR text), errors that name the file and the field, and the sources,
buses and broker settings the agent is built from.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import yaml
from pydantic import ValidationError

from device_profiles import Profile, ProfileError, builtin, load_profile
from device_profiles.bundle import Bundle
from device_profiles.bundle_text import QR_PREFIX, from_qr_text
from device_profiles.private_file import write_private

from .agent import Agent
from .errors import ConfigError
from .modbus_driver import ModbusBus
from .publisher import BrokerConfig
from .sources import ModbusSource, MtSicsSource, Source, StreamSource


def load_bundle(path: str | Path) -> Bundle:
    """Read and validate a bundle; raises ConfigError naming the file and the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = from_qr_text(text) if text.lstrip().startswith(QR_PREFIX) else yaml.safe_load(text)
        return Bundle.model_validate(data)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {field}: {first['msg']}") from exc
    except (yaml.YAMLError, ValueError, zlib.error) as exc:
        raise ConfigError(f"{path}: neither bundle YAML nor bundle QR text: {exc}") from exc


def _profile(ref: str, bundle_dir: Path) -> Profile:
    try:
        if ref.endswith((".yaml", ".yml")):
            return load_profile(bundle_dir / ref)
        return builtin(ref)
    except ProfileError as exc:
        raise ConfigError(str(exc)) from exc


def build_agent(bundle: Bundle, *, bundle_dir: Path = Path()) -> Agent:
    """The agent a bundle describes (not started)."""
    buses: dict[str, ModbusBus] = {}
    sources: list[Source] = []
    for s in bundle.sources:
        profile = _profile(s.profile, bundle_dir)
        if profile.protocol == "mt-sics":
            sources.append(MtSicsSource(profile, s.port))
        elif profile.protocol == "modbus":
            if s.port not in buses:
                timeout = profile.serial.timeout_s if profile.serial else 1.0
                buses[s.port] = ModbusBus(s.port, serial=profile.serial, timeout_s=timeout)
            sources.append(ModbusSource(profile, buses[s.port], unit_id=s.unit_id, interval_s=s.interval_s))
        else:
            sources.append(StreamSource(profile, s.port, silence_s=s.silence_s))
    b = bundle.broker
    tls = b.tls
    bundle.state_dir.mkdir(parents=True, exist_ok=True)
    ca_file = tls.ca_file if tls else None
    cert_file = tls.cert_file if tls else None
    key_file = tls.key_file if tls else None
    if tls is not None and tls.ca_pem is not None:
        ca_file = write_private(bundle.state_dir / "broker-ca.pem", tls.ca_pem)
    if tls is not None and tls.cert_pem is not None and tls.key_pem is not None:
        cert_file = write_private(bundle.state_dir / "client.pem", tls.cert_pem)
        key_file = write_private(bundle.state_dir / "client.key", tls.key_pem)
    return Agent(
        device_id=bundle.device_id,
        key=bundle.key,
        sources=sources,
        outbox_path=bundle.state_dir / "outbox.sqlite",
        outbox_quota_bytes=int(bundle.outbox_quota_mb * 1024 * 1024),
        status_path=bundle.status_path,
        broker=BrokerConfig(
            host=b.host,
            port=b.port,
            username=b.username,
            password=b.password,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            keepalive_s=b.keepalive_s,
        ),
        publisher_options={
            "status_interval_s": bundle.status_interval_s,
            "delivery": bundle.delivery,
            "cloud_ack_timeout_s": bundle.cloud_ack_timeout_s,
        },
    )
