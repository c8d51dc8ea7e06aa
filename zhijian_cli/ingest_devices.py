"""Where the ingest learns its devices: the registry database (kept current), or a devices file."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from cloud_ingest import DeviceFile, IngestError, IngestSettings
from cloud_ingest.live_devices import LiveDevices, Snapshot
from device_registry import RegistryError
from device_registry.db import connect, sessions
from device_registry.ingest_view import ingest_view, registry_revision
from device_registry.settings import RegistrySettings

from .registry_client import CliError


def registry_devices(
    url: str, key_secret: bytes, *, refresh_s: float = 10.0, commodity_median: dict[str, int] | None = None
) -> LiveDevices:
    """Devices from the registry at ``url``; keys are derived again from ``key_secret``."""
    make_session = sessions(connect(url))

    def revision() -> int:
        with make_session() as db:
            return registry_revision(db)

    def load() -> Snapshot:
        with make_session() as db:
            view = ingest_view(db, key_secret)
        return Snapshot(view.devices, view.revision, view.verification_ids)

    return LiveDevices(revision, load, refresh_s=refresh_s, commodity_median=commodity_median)


def ingest_devices(settings: IngestSettings, config: Path | None = None) -> tuple[DeviceFile, LiveDevices | None]:
    """The ingest's devices: from the registry when ``ZHIJIAN_REGISTRY_URL`` is set (with the live view that
    keeps them current), else from the devices file. Raises :class:`CliError` saying what is wrong."""
    try:
        if settings.registry_url:
            secret = RegistrySettings(_env_file=config).key_secret_bytes()
            live = registry_devices(settings.registry_url, secret, refresh_s=settings.registry_refresh_s)
            return live.current, live
        return DeviceFile.load(settings.devices_file), None
    except (IngestError, RegistryError, SQLAlchemyError) as exc:
        raise CliError(str(exc)) from exc
