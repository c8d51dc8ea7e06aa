"""`zhijian ingest route` and `zhijian ingest run` with ``ZHIJIAN_TRANSPORT=nats``: the scale-out processes.

Both bind their metrics port first (a second process on a taken port stops with one line, as the single
worker does, see :mod:`zhijian_cli.ingest_start`), then connect, and stop cleanly on SIGTERM: the router
stops receiving and lets what is in flight land; a worker checkpoints and releases its partitions.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.registry import Collector

from cloud_ingest import IngestSettings
from cloud_ingest.live_devices import LiveDevices
from cloud_ingest.metrics import MetricsServer
from cloud_ingest.nats_metrics import PartitionedCollector, RouterCollector, router_health, worker_health
from cloud_ingest.router import Router
from device_profiles.loops import Loop
from device_registry.settings import RegistrySettings

from .ingest_devices import build_partitioned_worker, ingest_devices, registry_devices
from .ingest_start import create_database, influx_client
from .registry_client import CliError


def _serve_until_sigterm(metrics: MetricsServer, stop: threading.Event) -> None:
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    metrics.start()
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    metrics.close()


def _metrics(
    settings: IngestSettings, collector: Collector, health_of: Callable[[], tuple[int, dict[str, Any]]]
) -> MetricsServer:
    try:
        return MetricsServer(
            None, host=settings.metrics_host, port=settings.metrics_port, collector=collector, health_of=health_of
        )
    except OSError as exc:
        raise CliError(
            f"metrics: cannot listen on {settings.metrics_host}:{settings.metrics_port} ({exc.strerror or exc}); "
            "give each process its own ZHIJIAN_METRICS_PORT"
        ) from exc


def run_router(settings: IngestSettings, config: Path | None, say: object = print) -> None:
    devices, live = ingest_devices(settings, config)
    router = Router(settings, (live or devices).partition_key)
    stop = threading.Event()
    follower = None
    if live is not None:  # a market's new scale must be routed by its market, not its id: keep the view current
        view = live

        def follow() -> None:
            if not stop.wait(settings.registry_refresh_s):
                view.refresh()

        follower = Loop("registry-follow", follow, stop=stop)
    metrics = _metrics(settings, collector=RouterCollector(router), health_of=lambda: router_health(router))
    router.start()
    if follower is not None:
        follower.start()
    assert callable(say)
    say(
        f"router running ({router.partitions} partitions); metrics on http://{settings.metrics_host}:{metrics.port}/metrics"
    )
    try:
        _serve_until_sigterm(metrics, stop)
    finally:
        stop.set()
        router.stop()


def run_partitioned(settings: IngestSettings, config: Path | None, say: object = print) -> None:
    devices, live = ingest_devices(settings, config)
    influx = influx_client(settings)
    live_for = (lambda: None) if live is None else (lambda: _live_view(settings, config))
    worker = build_partitioned_worker(settings, influx, devices, live_for)
    metrics = _metrics(settings, collector=PartitionedCollector(worker), health_of=lambda: worker_health(worker))
    create_database(influx, settings)
    settings.nats_state_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    worker.start()
    assert callable(say)
    say(f"ingest worker {worker.worker_id} on NATS; metrics on http://{settings.metrics_host}:{metrics.port}/metrics")
    try:
        _serve_until_sigterm(metrics, stop)
    finally:
        worker.stop()
        influx.close()


def _live_view(settings: IngestSettings, config: Path | None) -> LiveDevices:
    """A registry view of its own for one partition's pipeline (a view follows one engine)."""
    assert settings.registry_url is not None
    secret = RegistrySettings(_env_file=config).key_secret_bytes()
    return registry_devices(settings.registry_url, secret, refresh_s=settings.registry_refresh_s)
