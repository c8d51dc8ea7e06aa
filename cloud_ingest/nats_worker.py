"""A partitioned ingest worker: owns some partitions of the JetStream ingest stream, one pipeline each.

``zhijian ingest run`` with ``ZHIJIAN_TRANSPORT=nats``. Per partition it owns (:mod:`cloud_ingest.leases`):

1. **Take over**: read the partition's checkpoint (:mod:`cloud_ingest.checkpoints`), rebuild its state
   directory from it, build a pipeline on that directory (``pipeline_factory``), restore the engine;
   then (re)create the partition's durable pull consumer to start at the stream sequence after the
   checkpoint's. Messages the previous owner had received but not checkpointed are so delivered again
   at once, not after an ack timeout; any at or below the checkpoint's sequence are skipped.
2. **Run**: fetch a batch, ``prepare`` / ``commit`` it (retried while InfluxDB is away and the spool is
   full), acknowledge the devices end to end over MQTT, as the single worker does.
3. **Checkpoint**: at most every ``nats_checkpoint_max_s`` and whenever the partition goes idle, the
   state snapshot goes to NATS with the last sequence it includes, and only then the stream messages up
   to it are acknowledged (AckAll). A SIGKILL between two checkpoints costs the next owner a replay of
   what came after the last one; writes are idempotent and the state is the one that had seen exactly the
   messages before it, so flags come out the same.
4. **Release** (over our fair share, or stopping): finish the batch in hand, checkpoint, delete the lease.

Threads: the ``ingest-nats`` thread runs the asyncio loop (NATS connection, leases, fetches, checkpoint
uploads); the pipelines' blocking work (decode, score, InfluxDB writes, snapshots) runs on a small thread
pool, one batch at a time per partition, so the loop never waits on InfluxDB.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from paho.mqtt.enums import CallbackAPIVersion

from device_profiles.topics import parse

from . import mqtt_properties
from .checkpoints import Checkpoint, CheckpointStore, LostCheckpoint, restore, snapshot
from .device_messages import DeviceAcks, publish_alert, take_reply
from .errors import StoreUnavailable
from .leases import Leases
from .nats_stream import TOPIC_HEADER, LoopThread, connect, consumer_name, ensure_stream, never_raises, subject
from .pipeline import Pipeline
from .rapid_tests import Alert
from .settings import IngestSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
#: builds the pipeline of one partition over its state directory; returns it and what closes its files
PipelineFactory = Callable[[Path], tuple[Pipeline, Callable[[], None]]]
_COUNTED = ("received", "accepted_records", "stored_points", "flagged")


class _Aborted(Exception):
    """A batch given up half-way (stopping while InfluxDB is away): the partition's state is not checkpointed."""


@dataclass
class _Partition:
    number: int
    pipeline: Pipeline
    close: Callable[[], None]
    state_dir: Path
    checkpoint: Checkpoint
    sub: JetStreamContext.PullSubscription
    done_seq: int = 0  # the last stream sequence processed
    last_msg: Msg | None = None  # the highest-sequence message fetched (AckAll acknowledges up to it)
    checkpointed_at: float = field(default_factory=time.monotonic)
    replayed_at: float = 0.0
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    dirty: bool = False  # a batch was given up half-way: never checkpoint this state


class PartitionedWorker:
    """Takes its share of the stream's partitions and ingests them; see the module docstring."""

    def __init__(self, settings: IngestSettings, pipeline_factory: PipelineFactory, *, worker_id: str) -> None:
        self.settings = settings
        self.pipeline_factory = pipeline_factory
        self.worker_id = worker_id
        self.partitions = settings.nats_partitions
        self.parts: dict[int, _Partition] = {}
        self.partition_messages: Counter[int] = Counter()  # stream messages received, by partition
        self.takeovers = 0
        self.totals: Counter[str] = Counter()  # counters of pipelines of partitions no longer ours
        self.retired_by: dict[str, Counter[str]] = {"records_by_type": Counter(), "rejected": Counter()}
        self.connected = threading.Event()
        self.ready = threading.Event()  # leases surveyed once: the worker holds its share
        self.last_error = ""
        self._stop = threading.Event()
        self._loop = LoopThread("ingest-nats")
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ingest-partition")
        self._main: Any = None
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._leases: Leases | None = None
        self._store: CheckpointStore | None = None
        mqtt_properties.install()
        self._mqtt = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"{settings.mqtt_client_id}-{worker_id}",
            protocol=mqtt.MQTTv5,
        )
        if settings.mqtt_username:
            self._mqtt.username_pw_set(settings.mqtt_username, settings.mqtt_password)
        self._mqtt.reconnect_delay_set(min_delay=1, max_delay=15)
        self._mqtt_connected = threading.Event()
        self._mqtt.on_connect = lambda *_: self._mqtt_connected.set()
        self._mqtt.on_disconnect = lambda *_: self._mqtt_connected.clear()
        self.acks = DeviceAcks(self._mqtt, settings.device_ack_interval_s)

    # --- lifecycle (any thread) -----------------------------------------------------------------

    def start(self) -> PartitionedWorker:
        self._mqtt.connect_async(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30, clean_start=True)
        self._mqtt.loop_start()
        self._loop.start()
        self._main = self._loop.submit(self._run())
        return self

    def stop(self) -> None:
        """Release every partition (batch in hand finished, checkpointed), then disconnect."""
        self._stop.set()
        try:
            self._main.result(timeout=60)
        except Exception as exc:
            log.warning("ingest stopped with an error: %s", exc)
        self._loop.stop()
        self._pool.shutdown(wait=True)
        self.acks.flush(now=True)
        self.acks.wait_published(self._mqtt_connected, timeout_s=10)  # they reach the broker before we go
        self._mqtt.disconnect()
        self._mqtt.loop_stop()

    @property
    def owned(self) -> list[int]:
        return sorted(self.parts)

    def counters(self) -> dict[str, Any]:
        """Pipeline counters summed over the partitions held now and before (for metrics and tests)."""
        doc: dict[str, Any] = {name: self.totals[name] for name in _COUNTED}
        by: dict[str, Counter[str]] = {k: Counter(v) for k, v in self.retired_by.items()}
        for part in list(self.parts.values()):
            p = part.pipeline
            for name in _COUNTED:
                doc[name] += getattr(p, name)
            by["records_by_type"].update(p.records_by_type)
            by["rejected"].update(p.rejected)
        return doc | by

    # --- the loop thread ------------------------------------------------------------------------

    async def _in_pool(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def _join(self) -> None:
        """Connect; the stream, the lease bucket and the checkpoint store made if missing."""
        s = self.settings
        if self._nc is None:
            self._nc = await connect(s, f"ingest-{self.worker_id}")
        self._js = self._nc.jetstream()
        self.partitions = await ensure_stream(self._js, s)
        self._leases = await Leases.open(
            self._js, s.nats_stream, self.worker_id, self.partitions, s.nats_lease_s, s.nats_replicas
        )
        self._store = await CheckpointStore.open(self._js, s.nats_stream, replicas=s.nats_replicas)

    async def _run(self) -> None:
        s = self.settings
        logged = False
        while not self._stop.is_set():
            try:
                await self._join()
                break
            except Exception as exc:  # NATS away at our start: wait for it, logged once
                if not logged:
                    log.warning("NATS at %s: %s; retrying every second", s.nats_url, exc)
                    logged = True
                self.last_error = str(exc) or type(exc).__name__
                await asyncio.sleep(1.0)
        if self._nc is None or self._leases is None:
            return
        self.connected.set()
        self.last_error = ""
        log.info("worker %s joined stream %s (%d partitions)", self.worker_id, s.nats_stream, self.partitions)
        tick = s.nats_lease_s / 4
        first = True
        while not self._stop.is_set():
            try:
                await self._tick(first)
                first = False
                self.last_error = ""
            except Exception as exc:  # NATS away or restarting: leases decide, in the next ticks
                if not self.last_error:
                    log.warning("lease round failed (%s); retrying every %.1f s", exc, tick)
                self.last_error = str(exc) or type(exc).__name__
            await asyncio.sleep(tick)
        for p in list(self.parts):
            try:
                await self._release(p)
            except Exception as exc:  # NATS away: the lease expires and the next owner replays from the checkpoint
                log.warning("partition %d not released (%s)", p, exc)
        await self._leases.retire()
        await never_raises("closing NATS", self._nc.close())

    async def _tick(self, first: bool) -> None:
        assert self._leases is not None
        leases = self._leases
        for p in await leases.renew():
            await self._drop(p)
        await leases.announce()
        if first:  # one round to see the workers starting with us, before taking everything
            return
        workers, taken = await leases.survey()
        share = leases.share(len(workers))
        mine = [p for p in leases.preference if p in self.parts]
        for p in mine[share:]:
            log.info("releasing partition %d to a new worker (%d workers, share %d)", p, len(workers), share)
            await self._release(p)
        for p in leases.preference:
            if len(self.parts) >= share:
                break
            if p not in taken and await leases.acquire(p):
                try:
                    await self._acquire(p)
                except Exception:
                    await leases.release(p)
                    raise
        self.ready.set()

    async def _acquire(self, p: int) -> None:
        assert self._store is not None and self._js is not None
        s = self.settings
        checkpoint = await self._store.load(p)
        state_dir = s.nats_state_dir / f"p{p}"
        engine_state = await self._in_pool(lambda: restore(checkpoint.blob, state_dir))
        pipeline, close = await self._in_pool(lambda: self.pipeline_factory(state_dir))
        if engine_state is not None:
            await self._in_pool(lambda: pipeline.engine.restore(engine_state))
        pipeline.alert_sink = self._publish_alert
        name = consumer_name(s.nats_stream, p)
        await never_raises("deleting the old consumer", self._js.delete_consumer(s.nats_stream, name))
        start = checkpoint.sequence + 1
        config = ConsumerConfig(
            durable_name=name,
            ack_policy=AckPolicy.ALL,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if checkpoint.sequence else DeliverPolicy.ALL,
            opt_start_seq=start if checkpoint.sequence else None,
            ack_wait=max(60.0, 10 * s.nats_checkpoint_max_s),
            max_ack_pending=1_000_000,
        )
        sub = await self._js.pull_subscribe(
            subject(s.nats_stream, p), durable=name, stream=s.nats_stream, config=config
        )
        part = _Partition(p, pipeline, close, state_dir, checkpoint, sub, done_seq=checkpoint.sequence)
        part.task = asyncio.get_running_loop().create_task(self._consume(part))
        self.parts[p] = part
        self.takeovers += 1
        log.info("partition %d taken, from stream sequence %d", p, start)

    async def _release(self, p: int) -> None:
        """Ours no more, cleanly: the last batch finished and checkpointed, then the lease deleted."""
        part = self.parts.get(p)
        if part is None:
            return
        await self._halt(part)
        if not part.dirty:
            try:
                await self._checkpoint(part)
            except Exception as exc:  # the next owner starts from the checkpoint before: replays, loses nothing
                log.warning("partition %d: no checkpoint on release (%s); its next owner replays more", p, exc)
        await self._forget(part)
        assert self._leases is not None
        await self._leases.release(p)

    async def _drop(self, p: int) -> None:
        """The lease is lost: stop at once, no checkpoint (the next owner starts from the last one)."""
        part = self.parts.get(p)
        if part is not None:
            await self._halt(part)
            await self._forget(part)

    async def _halt(self, part: _Partition) -> None:
        part.stopping.set()
        if part.task is not None:
            await asyncio.wait({part.task})

    async def _forget(self, part: _Partition) -> None:
        if self.parts.get(part.number) is not part:
            return  # already forgotten (a lost checkpoint and a release may both get here)
        del self.parts[part.number]
        await never_raises("unsubscribing", part.sub.unsubscribe())
        p = part.pipeline
        for name in _COUNTED:
            self.totals[name] += getattr(p, name)
        self.retired_by["records_by_type"].update(p.records_by_type)
        self.retired_by["rejected"].update(p.rejected)
        await self._in_pool(part.close)

    async def _consume(self, part: _Partition) -> None:
        """Fetch, process, checkpoint; until told to stop. A surprise is logged, counted and retried."""
        s = self.settings
        errors = 0
        while not part.stopping.is_set():
            try:
                await self._step(part)
                errors = 0
            except _Aborted:
                part.dirty = True
                return
            except LostCheckpoint as exc:
                log.warning("%s: dropping it", exc)
                part.dirty = True
                part.stopping.set()
                asyncio.get_running_loop().create_task(self._drop_lost(part.number))
                return
            except Exception as exc:  # NATS restarting, a timeout: back off, the same position is kept
                if errors == 0:
                    log.warning("partition %d: %s: %s; retrying", part.number, type(exc).__name__, exc)
                errors += 1
                await asyncio.sleep(min(0.2 * 2**errors, s.nats_lease_s / 4))

    async def _drop_lost(self, p: int) -> None:
        part = self.parts.get(p)
        if part is not None:
            await self._forget(part)
            assert self._leases is not None
            await self._leases.release(p)

    async def _step(self, part: _Partition) -> None:
        s = self.settings
        try:
            msgs = await part.sub.fetch(s.batch_max_messages, timeout=1.0)
        except TimeoutError:
            msgs = []
        if msgs:
            top = max(msgs, key=lambda m: m.metadata.sequence.stream)
            if part.last_msg is None or top.metadata.sequence.stream > part.last_msg.metadata.sequence.stream:
                part.last_msg = top
            fresh = [m for m in msgs if m.metadata.sequence.stream > part.done_seq]
            if fresh:
                await self._in_pool(lambda: self._process(part, fresh))
        self.acks.flush()  # what waits for the interval, once it has passed (also when nothing comes)
        part.pipeline.rejection_log.flush()  # a summary is due even when the rejections have stopped
        if part.pipeline.pending_states and not msgs:  # base acknowledgements heard while no data came
            await self._in_pool(part.pipeline.flush_pending)
        due = time.monotonic() - part.checkpointed_at >= s.nats_checkpoint_max_s
        if part.done_seq > part.checkpoint.sequence and (due or not msgs):
            await self._checkpoint(part)
        if part.pipeline.spool.batches and time.monotonic() - part.replayed_at >= 1.0:
            part.replayed_at = time.monotonic()
            await self._in_pool(part.pipeline.replay_spool)

    async def _checkpoint(self, part: _Partition) -> None:
        assert self._store is not None
        seq = part.done_seq
        if seq <= part.checkpoint.sequence and not part.pipeline.spool.batches:
            return
        blob = await self._in_pool(lambda: snapshot(part.state_dir, part.pipeline.engine.save()))
        part.checkpoint = await self._store.save(part.number, seq, blob, part.checkpoint)
        part.checkpointed_at = time.monotonic()
        if part.last_msg is not None:
            await part.last_msg.ack()  # AckAll: every message of this partition up to it

    # --- the partition pool threads --------------------------------------------------------------

    def _process(self, part: _Partition, msgs: list[Msg]) -> None:
        pipeline = part.pipeline
        data: list[tuple[str, bytes]] = []
        for m in msgs:
            topic_name = urllib.parse.unquote((m.headers or {}).get(TOPIC_HEADER, ""))
            parsed = parse(topic_name)
            if parsed is not None and parsed[1] == "reply":
                try:
                    self._on_reply(pipeline, parsed[0], m.data)
                except Exception as exc:
                    pipeline.surprise(f"a reply on {topic_name}", exc)
            else:
                data.append((topic_name, m.data))
        if data:
            prepared = pipeline.prepare(data)
            delay = 0.5
            while True:
                try:
                    pipeline.commit(prepared)
                    break
                except StoreUnavailable as exc:
                    if part.stopping.is_set() or self._stop.is_set():
                        raise _Aborted from exc
                    log.warning("partition %d: store unavailable, batch held for retry: %s", part.number, exc)
                    time.sleep(delay)
                    delay = min(delay * 2, 10.0)
            self.acks.add(prepared.acks)
        part.done_seq = max(m.metadata.sequence.stream for m in msgs)
        self.partition_messages[part.number] += len(msgs)

    def _on_reply(self, pipeline: Pipeline, device: str, payload: bytes) -> None:
        take_reply(pipeline, device, payload)

    def _publish_alert(self, alert: Alert) -> None:
        publish_alert(self._mqtt, alert)
