"""How `zhijian ingest run` starts, in an order that survives what production throws at a start.

1. The metrics port is bound before anything talks to the broker. A second worker started on a taken
   port (two workers from one unit file, a stale process) stops with one line and exit status 2 before it
   has subscribed, so it leaves no persistent session behind for the broker to fill for a week.
2. InfluxDB may be down: the worker starts all the same, spools what it stores, and the spool is
   replayed when InfluxDB answers (the database is created then: ``InfluxClient(create_missing=True)``).
   That is logged once here; under systemd a crash loop would only have added a traceback every 2 s.
3. Only then the worker connects to the broker.

A misconfiguration that cannot heal by waiting (InfluxDB refusing our credentials, a port we may not
bind) is a :class:`~zhijian_cli.registry_client.CliError`: one line, no traceback.
"""

from __future__ import annotations

import logging

from cloud_ingest import InfluxClient, IngestSettings, IngestWorker
from cloud_ingest.errors import StoreRejected, StoreUnavailable
from cloud_ingest.metrics import MetricsServer

from .registry_client import CliError

log = logging.getLogger(__name__)


def influx_client(settings: IngestSettings) -> InfluxClient:
    """The worker's InfluxDB client; it creates the database when a write finds none."""
    return InfluxClient(
        settings.influx_url,
        settings.influx_db,
        username=settings.influx_username,
        password=settings.influx_password,
        create_missing=True,
    )


def create_database(influx: InfluxClient, settings: IngestSettings) -> None:
    """The database created now if InfluxDB answers; if not, one line, and it is created when it does."""
    try:
        influx.create_database()
    except StoreUnavailable as exc:
        log.warning(
            "InfluxDB does not answer (%s): starting anyway; batches go to the spool %s and are written when it "
            "answers (tried every second)",
            exc,
            settings.spool_path,
        )
    except StoreRejected as exc:
        raise CliError(f"InfluxDB at {settings.influx_url}: {exc}") from exc


def bind_metrics(worker: IngestWorker, settings: IngestSettings) -> MetricsServer:
    """``/metrics`` and ``/health`` bound (not yet served); a taken port is a :class:`CliError`."""
    try:
        return MetricsServer(worker, host=settings.metrics_host, port=settings.metrics_port)
    except OSError as exc:
        raise CliError(
            f"metrics: cannot listen on {settings.metrics_host}:{settings.metrics_port} ({exc.strerror or exc}); "
            "is another worker running with this ZHIJIAN_METRICS_PORT? Give each worker its own"
        ) from exc
