"""How an ingest worker is put together: its devices (from the registry, kept current, or from a devices
file) and the pipeline and worker over them. `zhijian ingest run` and `zhijian demo` both build it here."""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from anti_cheat import Engine
from cloud_ingest import DeviceFile, InfluxClient, IngestError, IngestSettings, IngestWorker, Pipeline
from cloud_ingest.dead_letters import DeadLetters
from cloud_ingest.live_devices import LiveDevices, Snapshot
from cloud_ingest.nats_worker import PartitionedWorker
from cloud_ingest.senders import SenderRules
from cloud_ingest.sensor_alerts import AlertBook
from cloud_ingest.sequences import SequenceBook
from cloud_ingest.spool import Spool
from cloud_ingest.state_store import import_earlier_files, open_store
from device_registry import RegistryError
from device_registry.db import connect, sessions
from device_registry.ingest_view import ingest_view, registry_revision
from device_registry.settings import RegistrySettings

from .registry_client import CliError

MIB = 1024 * 1024


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


def build_pipeline(
    settings: IngestSettings, influx: InfluxClient, devices: DeviceFile, live: LiveDevices | None = None
) -> tuple[Pipeline, Callable[[], None]]:
    """The pipeline for ``settings`` (its state in the files the settings name), and what closes them."""
    source = live or devices
    try:
        state = open_store(settings.state_path)
        import_earlier_files(state, settings)
    except sqlite3.DatabaseError as exc:
        raise CliError(
            f"{settings.state_path}: not a usable ingest state file ({exc}); move it aside to start with a new one "
            "(the broker keeps what it has not been acknowledged)"
        ) from exc
    dead_letters = DeadLetters(
        settings.dead_letter_path or state,
        device_quota_bytes=int(settings.dead_letter_device_quota_mb * MIB),
        total_quota_bytes=int(settings.dead_letter_quota_mb * MIB),
    )
    spool = Spool(settings.spool_path, quota_bytes=int(settings.spool_quota_mb * MIB))
    sequences = SequenceBook(
        settings.sequence_path or state, window=settings.replay_window, max_ahead=settings.seq_max_ahead
    )
    alert_book = AlertBook(settings.alert_path or state)
    state.close()  # the books hold it now: the last book's close closes the file
    pipeline = Pipeline(
        key_for=source.key_for,
        engine=Engine(devices.facts),
        store=influx,
        dead_letters=dead_letters,
        spool=spool,
        sequences=sequences,
        revoked=source.is_revoked,
        tags_for=source.tags_for,
        alert_book=alert_book,
        senders=SenderRules(profile_for=source.profile_for, tags_for=source.tags_for, known=source.is_known),
    )
    pipeline.unknown_grace_s = settings.unknown_device_grace_s
    if live is not None:
        live.attach(pipeline.engine, pipeline.alert_book)
        pipeline.before_batch = live.refresh
        pipeline.on_unknown_device = live.request_refresh
    else:
        pipeline.alert_book.limits = devices.alert_limits()
        pipeline.alert_book.crops = devices.crops()

    def close() -> None:
        for store in (dead_letters, spool, sequences, alert_book):
            closer = getattr(store, "close", None)
            if closer is not None:
                closer()

    return pipeline, close


def build_worker(
    settings: IngestSettings, influx: InfluxClient, devices: DeviceFile, live: LiveDevices | None = None
) -> IngestWorker:
    """The worker (not started) for ``settings``, storing into ``influx``; with ``live``, it follows the registry."""
    pipeline, _close = build_pipeline(settings, influx, devices, live)
    worker = IngestWorker(settings, pipeline)
    worker.partition_key = (live or devices).partition_key
    return worker


def partition_settings(settings: IngestSettings, state_dir: Path) -> IngestSettings:
    """``settings`` with every state file (each ``*_path`` setting) moved into ``state_dir``: a partition's
    state is whatever files its pipeline keeps, all in its own directory (checkpointed as a whole)."""
    moved = {
        name: state_dir / value.name for name, value in settings if name.endswith("_path") and isinstance(value, Path)
    }
    return settings.model_copy(update=moved)


def build_partitioned_worker(
    settings: IngestSettings,
    influx: InfluxClient,
    devices: DeviceFile,
    live_for: Callable[[], LiveDevices | None] = lambda: None,
) -> PartitionedWorker:
    """The NATS worker (not started): each partition it takes gets a pipeline over its own state directory
    (``live_for`` gives each its own live registry view, or None for the devices file)."""

    def factory(state_dir: Path) -> tuple[Pipeline, Callable[[], None]]:
        return build_pipeline(partition_settings(settings, state_dir), influx, devices, live_for())

    worker_id = settings.nats_worker_id or f"{socket.gethostname()}-{os.getpid()}".replace(".", "-")
    return PartitionedWorker(settings, factory, worker_id=worker_id)
