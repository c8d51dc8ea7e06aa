"""How an ingest worker is put together: its devices (from the registry, kept current, or from a devices
file) and the pipeline and worker over them. `zhijian ingest run` and `zhijian demo` both build it here.

With a snapshot path (`zhijian ingest run` puts one beside its state), devices come from the snapshot of
the source's current revision when there is one (see :mod:`cloud_ingest.device_snapshot`), else from the
source, and a snapshot is written for the next start (and after every registry reload).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from anti_cheat import Engine
from anti_cheat.fact_columns import FactError
from cloud_ingest import DeviceFile, InfluxClient, IngestError, IngestSettings, IngestWorker, Pipeline
from cloud_ingest.case_outbox import CaseOutbox
from cloud_ingest.case_reporter import CaseReporter
from cloud_ingest.dead_letters import DeadLetters
from cloud_ingest.device_snapshot import load_snapshot, save_snapshot
from cloud_ingest.device_table import DeviceRows, DeviceTable
from cloud_ingest.live_devices import LiveDevices, Snapshot
from cloud_ingest.nats_worker import PartitionedWorker
from cloud_ingest.place_findings import PlaceFindings
from cloud_ingest.registry_file import file_revision
from cloud_ingest.senders import SenderRules
from cloud_ingest.sensor_alerts import AlertBook
from cloud_ingest.sequences import SequenceBook
from cloud_ingest.spool import Spool
from cloud_ingest.state_store import import_earlier_files, open_store
from cloud_ingest.status_points import StatusWriter

from .registry_client import CliError

MIB = 1024 * 1024


log = logging.getLogger(__name__)  # where the devices came from is DEBUG (`-v`): a failed start says one line


def _save(path: Path, table: DeviceTable, revision: str) -> None:
    """Write a snapshot; a failure is logged, never raised (the snapshot only saves time at the next start)."""
    started = time.monotonic()
    try:
        save_snapshot(path, table, revision)
    except (OSError, ValueError) as exc:
        log.warning("%s: device snapshot not written: %s", path, exc)
        return
    log.debug("%s: device snapshot of %s written in %.1f s", path, revision, time.monotonic() - started)


def file_devices(path: Path, snapshot: Path | None = None) -> DeviceTable:
    """The devices file at ``path``: from ``snapshot`` when it is of the file's content, else read (and
    the snapshot written)."""
    try:
        revision = file_revision(path)
    except OSError as exc:
        raise IngestError(f"{path}: not a usable devices file: {exc}") from exc
    table = load_snapshot(snapshot, revision) if snapshot else None
    if table is None:
        started = time.monotonic()
        table = DeviceFile.load(path)
        log.debug("%s: %d devices read in %.1f s", path, len(table), time.monotonic() - started)
        if snapshot:
            _save(snapshot, table, revision)
    table.release_columns()
    return table


def registry_devices(
    url: str,
    key_secret: bytes,
    *,
    refresh_s: float = 10.0,
    commodity_median: dict[str, int] | None = None,
    snapshot: Path | None = None,
) -> LiveDevices:
    """Devices from the registry at ``url``; keys are derived again from ``key_secret``. With ``snapshot``,
    the start reads it when it is of the registry's current revision, and every reload rewrites it."""
    from device_registry import ingest_view  # the registry's stack only for an ingest that reads it
    from device_registry.db import connect, sessions

    make_session = sessions(connect(url))
    source = hashlib.sha256(b"zhijian-devices\0" + url.encode() + b"\0" + key_secret).hexdigest()[:16]

    def revision() -> int:
        with make_session() as db:
            return ingest_view.registry_revision(db)

    def load(with_facts: bool) -> Snapshot:
        started = time.monotonic()
        rows = DeviceRows()
        with make_session() as db:
            rev, found = ingest_view.ingest_rows(db, key_secret)
            for r in found:
                rows.add_row(
                    r.device,
                    key=r.key,
                    revoked=r.revoked,
                    profile=r.profile,
                    tags=r.tags,
                    crop=r.crop,
                    limits=r.limits,
                    fact=r.fact,
                    verification=r.verification,
                    unverified=r.unverified,
                )
            rows.places = ingest_view.ingest_places(db)
        table = rows.build(commodity_median, with_facts=with_facts)
        log.debug("registry: %d devices read in %.1f s (revision %d)", len(table), time.monotonic() - started, rev)
        return Snapshot(table, rev)

    first = None
    if snapshot is not None:
        rev = revision()
        table = load_snapshot(snapshot, f"registry:{source}:{rev}")
        first = Snapshot(table, rev) if table is not None else None

    def write(snap: Snapshot) -> None:
        # on the batch thread, after the reload it follows (which reads the whole registry anyway): no
        # writer left behind at exit, and the file is of the revision the ingest now serves
        if snapshot is not None and snap.table.fact_columns is not None:
            _save(snapshot, snap.table, f"registry:{source}:{snap.revision}")

    live = LiveDevices(revision, load, refresh_s=refresh_s, first=first, on_reload=write)
    if first is None:
        write(Snapshot(live.current, live.revision))
    live.current.release_columns()
    return live


def ingest_devices(settings: IngestSettings, config: Path | None = None) -> tuple[DeviceTable, LiveDevices | None]:
    """The ingest's devices: from the registry when ``ZHIJIAN_REGISTRY_URL`` is set (with the live view that
    keeps them current), else from the devices file. Raises :class:`CliError` saying what is wrong."""
    snapshot = settings.devices_snapshot_path if settings.devices_snapshot else None
    if not settings.registry_url:  # an ingest without a registry does not import its stack (30 MB)
        try:
            return _trimmed(file_devices(settings.devices_file, snapshot)), None
        except IngestError as exc:
            raise CliError(str(exc)) from exc
    from sqlalchemy.exc import SQLAlchemyError

    from device_registry import RegistryError
    from device_registry.settings import RegistrySettings

    try:
        secret = RegistrySettings(_env_file=config).key_secret_bytes()
        live = registry_devices(settings.registry_url, secret, refresh_s=settings.registry_refresh_s, snapshot=snapshot)
    except (IngestError, RegistryError, SQLAlchemyError, FactError) as exc:
        raise CliError(str(exc)) from exc
    return _trimmed(live.current), live


def _trimmed(table: DeviceTable) -> DeviceTable:
    """``table``, once the memory its load freed is given back to the system: glibc keeps freed blocks
    below its mmap threshold in the heap, where a load's temporaries (~200 MB for a million devices)
    would otherwise stay in the RSS."""
    with contextlib.suppress(AttributeError, OSError):  # not glibc: nothing to do
        ctypes.CDLL(None).malloc_trim(0)
    return table


def build_pipeline(
    settings: IngestSettings, influx: InfluxClient, devices: DeviceTable, live: LiveDevices | None = None
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
    case_outbox = CaseOutbox(open_store(state), max_events=settings.case_outbox_max_events)
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
        vendor_for=source.vendor_for,
    )
    pipeline.unknown_grace_s = settings.unknown_device_grace_s
    if settings.registry_api_url:  # an outbox without a reporter would only fill: kept empty otherwise
        pipeline.case_outbox = case_outbox
    if live is not None:
        live.attach(pipeline.engine, pipeline.alert_book)
        pipeline.before_batch = live.refresh
        pipeline.on_unknown_device = live.request_refresh
    else:
        pipeline.alert_book.limits = devices.alert_limits()
        pipeline.alert_book.crops = devices.crops()

    def close() -> None:
        for store in (dead_letters, spool, sequences, alert_book, case_outbox):
            closer = getattr(store, "close", None)
            if closer is not None:
                closer()

    return pipeline, close


def build_worker(
    settings: IngestSettings, influx: InfluxClient, devices: DeviceTable, live: LiveDevices | None = None
) -> IngestWorker:
    """The worker (not started) for ``settings``, storing into ``influx``; with ``live``, it follows the registry."""
    pipeline, _close = build_pipeline(settings, influx, devices, live)
    worker = IngestWorker(settings, pipeline)
    worker.partition_key = (live or devices).partition_key
    worker.case_reporter = case_reporter(settings, pipeline, influx)
    if settings.partitions == 1 and settings.status_period_s > 0:  # one writer sees every device
        worker.status = status_writer(settings, influx, pipeline, devices, live)
    return worker


def case_reporter(settings: IngestSettings, pipeline: Pipeline, influx: InfluxClient) -> CaseReporter | None:
    """The reporter (not started) that takes ``pipeline``'s case outbox to the registry API, when
    ``ZHIJIAN_REGISTRY_API_URL`` is set (docs/cases.md); it writes the ``case`` series into ``influx``."""
    if pipeline.case_outbox is None or not settings.registry_api_url or settings.registry_api_token is None:
        return None
    return CaseReporter(
        pipeline.case_outbox,
        api_url=settings.registry_api_url,
        token=settings.registry_api_token.get_secret_value(),
        influx=influx,
        counts_interval_s=settings.case_counts_interval_s,
    )


def status_writer(
    settings: IngestSettings, influx: InfluxClient, pipeline: Pipeline, devices: DeviceTable, live: LiveDevices | None
) -> StatusWriter:
    """The ``scale_status`` and ``place`` writer over ``pipeline``'s devices (see cloud_ingest.status_points)."""
    pipeline.track_status = True
    pipeline.findings = PlaceFindings()  # the place series' open_flags and open_alerts
    return StatusWriter(
        influx,
        (lambda: live.current) if live is not None else (lambda: devices),
        lambda: pipeline.engine.facts,
        pipeline.seen_ms,
        pipeline.last_sale_ms,
        period_s=settings.status_period_s,
        online_s=settings.online_window_s,
        findings=pipeline.findings,
        open_alerts=pipeline.alert_book.open_by_device,
    )


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
    devices: DeviceTable,
    live_for: Callable[[], LiveDevices | None] = lambda: None,
) -> PartitionedWorker:
    """The NATS worker (not started): each partition it takes gets a pipeline over its own state directory
    (``live_for`` gives each its own live registry view, or None for the devices file)."""

    def factory(state_dir: Path) -> tuple[Pipeline, Callable[[], None]]:
        pipeline, close = build_pipeline(partition_settings(settings, state_dir), influx, devices, live_for())
        reporter = case_reporter(settings, pipeline, influx)
        if reporter is None:
            return pipeline, close
        reporter.start()  # a partition's outbox travels with its state directory; its reporter with the partition

        def close_all() -> None:
            reporter.stop()
            close()

        return pipeline, close_all

    worker_id = settings.nats_worker_id or f"{socket.gethostname()}-{os.getpid()}".replace(".", "-")
    return PartitionedWorker(settings, factory, worker_id=worker_id)
