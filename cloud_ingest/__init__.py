"""Cloud ingest: MQTT → decode, authenticate, validate → anti-cheat → InfluxDB, acknowledging only what
is stored. See :mod:`cloud_ingest.worker` for the delivery guarantees."""

from .dead_letters import DeadLetters
from .errors import IngestError, StoreRejected, StoreUnavailable
from .influx import InfluxClient
from .pipeline import Pipeline
from .registry_file import DeviceFile, write_device_file
from .settings import IngestSettings
from .worker import IngestWorker

__all__ = [
    "DeadLetters",
    "DeviceFile",
    "InfluxClient",
    "IngestError",
    "IngestSettings",
    "IngestWorker",
    "Pipeline",
    "StoreRejected",
    "StoreUnavailable",
    "write_device_file",
]
