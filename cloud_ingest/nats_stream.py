"""The JetStream side of the scale-out: names, the partition of a device, the stream, and a loop thread.

What the router and the partitioned workers must agree on lives here and nowhere else:

- partition ``p`` of the stream is the subject ``<prefix>.<p>``; a message's MQTT topic travels in the
  ``Zhijian-Topic`` header, its payload untouched (the integrity tag covers the exact bytes);
- a device's partition is ``crc32(key) % partitions`` where the key is its market (registry tag), or the
  device itself when it has none or is not known yet: a market's stall scales and its fair scales share
  a partition, so the per-stall re-weigh CUSUM sees every record it needs, in order;
- ``Nats-Msg-Id`` is a digest of topic and payload, so the router sending one MQTT message twice (it
  crashed before its PUBACK reached Mosquitto) stores it once within the stream's duplicate window;
- leases and the list of live workers are keys of one key-value bucket whose ``max_age`` is the lease
  time; checkpoints are objects of an object store, and a key per partition names the current one.

nats-py is asyncio; the ingest's threads are not. :class:`LoopThread` runs one event loop in a thread of
its own, and the blocking work (the pipeline, InfluxDB) stays on other threads.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import zlib
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from .settings import IngestSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
TOPIC_HEADER = "Zhijian-Topic"
MSG_ID_HEADER = "Nats-Msg-Id"


def subject_prefix(stream: str) -> str:
    return stream.lower().replace("-", "_").replace("_", ".")


def subject(stream: str, partition: int) -> str:
    """The subject of ``partition`` in ``stream`` (``ZHIJIAN_INGEST`` → ``zhijian.ingest.7``)."""
    return f"{subject_prefix(stream)}.{partition}"


def partition_of_key(key: str, partitions: int) -> int:
    """The partition of a partition key (a market, or a device without one): CRC-32, stable everywhere."""
    return zlib.crc32(key.encode()) % partitions


def message_id(topic_name: str, payload: bytes) -> str:
    """``Nats-Msg-Id`` of a message: the same bytes on the same topic are one message."""
    digest = hashlib.blake2b(payload, digest_size=16, person=b"zhijian-ingest")
    digest.update(topic_name.encode())
    return digest.hexdigest()


def lease_bucket(stream: str) -> str:
    return f"{stream}_leases"


def checkpoint_bucket(stream: str) -> str:
    return f"{stream}_checkpoints"


def consumer_name(stream: str, partition: int) -> str:
    return f"{stream}_p{partition}"


async def connect(settings: IngestSettings, name: str) -> NatsClient:
    """A client that reconnects for ever (a NATS restart must not end a worker or the router)."""
    nc = NatsClient()

    async def on_disconnect() -> None:
        if not nc.is_closed:  # closing ourselves calls this too
            log.warning("%s: disconnected from NATS; reconnecting", name)

    async def on_reconnect() -> None:
        log.info("%s: reconnected to NATS", name)

    async def on_error(exc: Exception) -> None:
        log.debug("%s: NATS client error: %s", name, exc)

    await nc.connect(
        servers=settings.nats_url.split(","),
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=5,
        allow_reconnect=True,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        error_cb=on_error,
    )
    return nc


async def ensure_stream(js: JetStreamContext, settings: IngestSettings) -> int:
    """The ingest stream, created if missing; returns its number of partitions (from the stream's
    metadata, which wins over the settings: partitions are fixed when the stream is created)."""
    prefix = subject_prefix(settings.nats_stream)
    try:
        info = await js.stream_info(settings.nats_stream)
    except NotFoundError:
        config = StreamConfig(
            name=settings.nats_stream,
            description=f"zhijian ingest, partitions={settings.nats_partitions}",
            subjects=[f"{prefix}.*"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=settings.nats_max_age_s,
            duplicate_window=settings.nats_duplicate_window_s,
            num_replicas=settings.nats_replicas,
        )
        info = await js.add_stream(config)
        log.info("created stream %s with %d partitions", settings.nats_stream, settings.nats_partitions)
    described = (info.config.description or "").rpartition("partitions=")[2]
    partitions = int(described) if described.isdigit() else settings.nats_partitions
    if partitions != settings.nats_partitions:
        log.warning(
            "stream %s has %d partitions (ZHIJIAN_NATS_PARTITIONS=%d ignored: fixed at creation)",
            settings.nats_stream,
            partitions,
            settings.nats_partitions,
        )
    return partitions


class LoopThread:
    """An asyncio event loop in a daemon thread; other threads hand it coroutines with :meth:`submit`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> LoopThread:
        self._thread.start()
        return self

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, fn: Callable[[], object]) -> None:
        self.loop.call_soon_threadsafe(fn)

    def stop(self, timeout_s: float = 10.0) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout_s)


async def never_raises(what: str, aw: Awaitable[T]) -> T | None:
    """``await aw``, logging instead of raising (for best-effort clean-up on the way out)."""
    try:
        return await aw
    except Exception as exc:
        log.debug("%s failed: %s", what, exc)
        return None
