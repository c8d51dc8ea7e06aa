"""One ingest worker: an MQTT 5 persistent subscription feeding micro-batches to the pipeline.

- The session is persistent (``clean_start=False`` with a session expiry), so the broker keeps QoS 1
  messages for us while we restart, and across a broker restart.
- Scale-out is on NATS JetStream (:mod:`cloud_ingest.router`, :mod:`cloud_ingest.nats_worker`,
  docs/scale_out.md): each worker receives only its partitions' messages. Here, for a small city without
  NATS, N workers may each take ``partition k of N`` of one broker: every worker receives every message and
  keeps the markets whose name hashes (CRC-32) to its partition, acknowledging the others at once (broker
  egress grows with N). Either way a market's records meet one worker, in order, so per-scale state
  (CUSUMs, digit windows, sequence checks) gives the same results with 1 or N workers. Why not MQTT 5
  shared subscriptions (``share_group``, still available for brokers that persist them): on Mosquitto 2.0 a shared
  subscription does not survive a broker restart, and the messages published before the worker
  re-subscribes are lost (tests/cloud_ingest/test_worker.py shows both); and a shared subscription
  spreads one device's records over workers, so per-scale state would diverge.
- Acknowledgements are manual: a message's PUBACK is sent only after its batch is stored and its state
  (sequences, alerts, dead letters and, at a checkpoint, the anti-cheat state) committed in one
  transaction of the state file (:mod:`cloud_ingest.state_store`). If InfluxDB is down, the batch is
  retried and nothing is acknowledged, so the broker keeps the messages.
- The hand-off queue is bounded; when full, paho's network thread waits, and the broker holds back
  (MQTT flow control) instead of anything being dropped.

Threads and what they own: paho's network thread owns the connection and fills the hand-off queue; the
``ingest-batcher`` loop owns the batch in hand, the pipeline (engine state, sequence book, dead letters)
and the acknowledgements; the ``spool-replay`` loop moves spooled points to InfluxDB (the spool locks).
Both loops are :class:`device_profiles.loops.Loop`: a surprise is logged once, counted and retried, and
the batch in hand is kept until it is stored, so nothing received is dropped unacknowledged.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sys
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from device_profiles.durable import replace_durably
from device_profiles.loops import Loop
from device_profiles.mqtt_reasons import disconnect_words
from device_profiles.topics import parse, subscription

from . import mqtt_properties
from .case_reporter import CaseReporter
from .device_messages import DeviceAcks, publish_alert, take_reply
from .errors import StoreUnavailable
from .handoff import Handoff
from .pipeline import Pipeline, Prepared
from .rapid_tests import Alert
from .settings import IngestSettings
from .status_points import StatusWriter

log = logging.getLogger(__name__)


def partition_of(topic_name: str, partitions: int, key_of: Callable[[str], str] = lambda device: device) -> int:
    """The worker partition of the device that owns ``topic_name`` (stable across processes and hosts).

    ``key_of`` maps a device to what is partitioned: by default the device itself; the ingest passes the
    device's market from the registry, so a market's scales and its fair scales meet the same worker and
    the per-stall re-weigh CUSUM sees every fair scale's re-weighs.
    """
    parts = topic_name.split("/")
    device = parts[2] if len(parts) > 2 else topic_name
    return zlib.crc32(key_of(device).encode()) % partitions


class BatchTimer:
    """Batch latencies in Prometheus histogram buckets (seconds), read by :mod:`cloud_ingest.metrics`."""

    BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf"))

    def __init__(self) -> None:
        self.counts = [0] * len(self.BUCKETS)
        self.total = 0.0
        self.n = 0

    def observe(self, seconds: float) -> None:
        self.total += seconds
        self.n += 1
        for i, bound in enumerate(self.BUCKETS):
            if seconds <= bound:
                self.counts[i] += 1


class IngestWorker:
    """Subscribes, batches, processes and acknowledges."""

    def __init__(self, settings: IngestSettings, pipeline: Pipeline) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.batches = 0
        self.last_batch_ms = 0.0
        self.connected = threading.Event()
        self._queue: Handoff[mqtt.MQTTMessage] = Handoff(maxsize=settings.queue_max_messages)
        self._stop = threading.Event()
        self._v5 = settings.mqtt_protocol == "5"
        mqtt_properties.install()  # paho's MQTT 5 property tables built once, not per packet received
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=settings.mqtt_client_id,
            protocol=mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311,
            clean_session=None if self._v5 else False,
        )
        self._client.manual_ack_set(True)
        pipeline.alert_sink = self._publish_alert
        if settings.mqtt_username:
            self._client.username_pw_set(settings.mqtt_username, settings.mqtt_password)
            if settings.mqtt_client_id != settings.mqtt_username:
                log.warning(
                    "client id %s differs from username %s: a Zhijian broker names every session by its account "
                    "(use_username_as_clientid), so workers sharing an account take over each other; "
                    "give each worker its own account",
                    settings.mqtt_client_id,
                    settings.mqtt_username,
                )
        self._client.reconnect_delay_set(min_delay=1, max_delay=15)
        # our own publishes (device acknowledgements, alerts) in flight at once: paho's default of 20 paced a
        # flush to 1 000 devices 20 at a time and dropped what was still queued at a disconnect
        self._client.max_inflight_messages_set(settings.broker_inflight_messages)
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._unreachable_since: float | None = None  # when the broker stopped answering (logged once)
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self.batcher = Loop("ingest-batcher", self._batch_once, stop=self._stop, max_backoff_s=10.0)
        self.replayer = Loop("spool-replay", self._replay_once, stop=self._stop, max_backoff_s=10.0)
        self._held: list[mqtt.MQTTMessage] = []  # the batch in hand, until stored and acknowledged
        self._held_prepared: Prepared | None = None
        self._retry_delay = 0.5
        self.batch_seconds = BatchTimer()
        self.skipped = 0
        self.partition_key: Callable[[str], str] = lambda device: device
        self._unacked: list[mqtt.MQTTMessage] = []
        self._last_save = time.monotonic()
        self._save_cost_s = 0.0  # what the last checkpoint took
        self.acknowledged_alerts = 0
        self.case_reporter: CaseReporter | None = None  # started and stopped with the worker (docs/cases.md)
        self.acks = DeviceAcks(self._client, settings.device_ack_interval_s)
        self._held_since = time.monotonic()
        self.status: StatusWriter | None = None  # scale_status and place points, when the ingest writes them

    def _publish_alert(self, alert: Alert) -> None:
        publish_alert(self._client, alert)

    def _on_reply(self, device: str, payload: bytes) -> None:
        if take_reply(self.pipeline, device, payload):
            self.acknowledged_alerts += 1

    @property
    def loops(self) -> list[Loop]:
        return [self.batcher, self.replayer, *([self.case_reporter.loop] if self.case_reporter else [])]

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, reason: ReasonCode, _p: Properties | None
    ) -> None:
        if reason.is_failure:
            log.error("broker refused the ingest connection: %s", reason)
            return
        if self._unreachable_since is not None:
            log.info(
                "broker %s:%d reached again after %.0f s", *self._broker, time.monotonic() - self._unreachable_since
            )
            self._unreachable_since = None
        client.subscribe([(subscription(kind, share_group=self.settings.share_group), 1) for kind in ("data", "reply")])

    @property
    def _broker(self) -> tuple[str, int]:
        return self.settings.mqtt_host, self.settings.mqtt_port

    def _on_connect_fail(self, _c: mqtt.Client, _u: object) -> None:
        """paho failed to reach the broker (it retries after 1 s, doubling to 15 s): logged once per outage
        with the error, which paho does not pass but is the exception it is handling while it calls us."""
        if self._unreachable_since is None:
            self._unreachable_since = time.monotonic()
            log.warning(
                "broker %s:%d unreachable (%s); retrying after 1 s, doubling to 15 s; logged again when reached",
                *self._broker,
                sys.exc_info()[1] or "connection failed",
            )

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, _mid: int, reasons: list[ReasonCode], _p: Properties | None
    ) -> None:
        # "connected" means ready: subscribed, so nothing published from now on misses this worker
        if any(r.is_failure for r in reasons):
            log.error("broker refused the ingest subscriptions: %s", reasons)
            return
        log.info("ingest connected to %s:%d and subscribed", self.settings.mqtt_host, self.settings.mqtt_port)
        self.connected.set()

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, flags: mqtt.DisconnectFlags, reason: ReasonCode, _p: Properties | None
    ) -> None:
        if self.connected.is_set() and not self._stop.is_set():
            words = disconnect_words(reason, from_broker=flags.is_disconnect_packet_from_server)
            log.warning("ingest disconnected from broker %s:%d: %s; reconnecting", *self._broker, words)
        self.connected.clear()

    def _on_message(self, client: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if (
            self.settings.partitions > 1
            and partition_of(msg.topic, self.settings.partitions, self.partition_key) != self.settings.partition
        ):
            client.ack(msg.mid, msg.qos)  # another worker's device
            self.skipped += 1
            return
        parsed = parse(msg.topic)
        if parsed is not None and parsed[1] == "reply":
            try:
                self._on_reply(parsed[0], bytes(msg.payload))
            except Exception as exc:  # on paho's network thread: a surprise here must not end it
                self.pipeline.surprise(f"a reply on {msg.topic}", exc)
            client.ack(msg.mid, msg.qos)
            return
        while not self._stop.is_set():
            try:
                self._queue.put(msg, timeout=0.5)
                return
            except queue.Full:
                continue

    def start(self) -> IngestWorker:
        path = self.settings.engine_state_path
        if path is not None and path.exists():
            self.pipeline.engine.restore(path.read_bytes())
            log.info("anti-cheat state restored from %s", path)
        elif path is None and (saved := self.pipeline.state.checkpoint()) is not None:
            try:
                self.pipeline.engine.restore(saved)
                log.info("anti-cheat state restored from %s", self.pipeline.state.path)
            except Exception as exc:  # the records are safe; the scales' running sums start again
                kept = Path(self.pipeline.state.path).with_name(f"anti_cheat_state.unreadable-{int(time.time())}.npz")
                kept.write_bytes(saved)
                self.pipeline.surprise("restoring the anti-cheat checkpoint", exc)
                log.error(
                    "the anti-cheat checkpoint in %s cannot be read (%s): the scales' CUSUMs and zero history start "
                    "again; the checkpoint is kept in %s",
                    self.pipeline.state.path,
                    exc,
                    kept,
                )
        if self._v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self.settings.session_expiry_s
            self._client.connect_async(
                self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30, clean_start=False, properties=props
            )
        else:  # clean_session=False: the broker keeps the session until it is ended (or its own expiry)
            self._client.connect_async(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30)
        self._client.loop_start()
        self.batcher.start()
        self.replayer.start()
        if self.case_reporter is not None:
            self.case_reporter.start()
        return self

    def stop(self, *, end_session: bool = False) -> None:
        """Finish the batch in hand, then disconnect; unacknowledged messages stay with the broker.

        A stopped worker's persistent session stays in the shared-subscription group and keeps receiving
        its share of messages until it comes back: right for a restart. For a worker that is gone for good
        (scaled down, a test), ``end_session=True`` ends the session so its share goes to the others.
        """
        self._stop.set()
        self.batcher.join(timeout_s=30)
        self.replayer.join(timeout_s=30)
        self._checkpoint(force=True)
        if self.status is not None:  # the last status, so that a panel shows where the scales stood
            try:
                self.status.tick(force=True)
            except Exception as exc:
                self.pipeline.surprise("writing status points", exc)
        self.acks.flush(now=True)
        self.acks.wait_published(self.connected, timeout_s=10)  # they reach the broker before we go
        props = None
        if end_session and self._v5:
            props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 0
        self._client.disconnect(properties=props)
        self._client.loop_stop()
        if self.case_reporter is not None:
            self.case_reporter.stop()
        if end_session and not self._v5:  # MQTT 3.1.1 ends a session by connecting with clean_session=True
            ender = mqtt.Client(
                callback_api_version=CallbackAPIVersion.VERSION2,
                client_id=self.settings.mqtt_client_id,
                protocol=mqtt.MQTTv311,
                clean_session=True,
            )
            if self.settings.mqtt_username:
                ender.username_pw_set(self.settings.mqtt_username, self.settings.mqtt_password)
            with contextlib.suppress(OSError):
                ender.connect(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=10)
                ender.disconnect()

    def _next_batch(self) -> list[mqtt.MQTTMessage]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.settings.batch_max_ms / 1000
        idle_s = self.settings.batch_idle_ms / 1000
        while len(batch) < self.settings.batch_max_messages:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            # Nothing waiting: end the batch after a short quiet gap rather than at the deadline. The
            # broker sends no more than its inflight window until we acknowledge, so lingering for the
            # whole batch_max_ms after a window's worth stalled a backlog's drain (benchmarks/ingest_shipped.py).
            try:
                batch.append(self._queue.get(timeout=min(left, idle_s)))
            except queue.Empty:
                break
        return batch

    def _batch_once(self) -> None:
        """One step of the batcher: take a batch (or keep the one in hand), store it, acknowledge it.

        The batch stays in hand until it is stored: when InfluxDB is away and the spool full the step
        retries it with a growing delay; if anything unexpected raises, the loop logs it, backs off and
        the next step retries the same batch, so nothing received is dropped from memory unacknowledged.
        """
        self.pipeline.rejection_log.flush()  # a summary is due even when the rejections have stopped
        if self.status is not None:
            try:
                self.status.tick()
            except Exception as exc:  # a panel's series must never stop the records
                self.pipeline.surprise("writing status points", exc)
        if self.pipeline.pending_states and not self._held:  # base acknowledgements heard between batches
            try:
                self.pipeline.flush_pending()
            except Exception as exc:
                self.pipeline.surprise("writing alert_state points", exc)
        if not self._held:
            self._held = self._next_batch()
            self._held_prepared = None
            self._held_since = time.monotonic()
            if not self._held:
                if self._unacked:
                    self._checkpoint()
                self.acks.flush()  # what waits for the interval, once it has passed
                return
        started = time.monotonic()
        if self._held_prepared is None:
            self._held_prepared = self.pipeline.prepare([(m.topic, bytes(m.payload)) for m in self._held])
        # Nothing waiting and half the broker's inflight window unacknowledged: the broker may be holding
        # messages back until we acknowledge, so save and acknowledge now rather than at the interval,
        # which stalled a backlog's drain for up to state_save_interval_s every window
        # (benchmarks/ingest_shipped.py). Under light load the interval holds: a save per batch would cost
        # a large fleet's batcher most of its time.
        waiting = len(self._unacked) + len(self._held)
        checkpoint = self._checkpoint_due(
            force=self._queue.empty() and waiting >= self.settings.broker_inflight_messages // 2
        )
        in_store = checkpoint and self.settings.engine_state_path is None
        try:
            self.pipeline.commit(self._held_prepared, checkpoint=in_store)
        except StoreUnavailable as exc:
            log.warning("store unavailable, batch of %d held for retry: %s", len(self._held), exc)
            self._stop.wait(self._retry_delay)  # not acknowledged: on stop the broker redelivers
            self._retry_delay = min(self._retry_delay * 2, 10.0)
            return
        self._retry_delay = 0.5
        if in_store:
            self._save_cost_s = self.pipeline.checkpoint_seconds
        self.acks.add(self._held_prepared.acks)
        self._unacked.extend(self._held)
        self._held, self._held_prepared = [], None
        if checkpoint:
            self._checkpoint(force=True, saved=in_store)
        self.batches += 1
        self.last_batch_ms = (time.monotonic() - started) * 1000
        self.batch_seconds.observe(self.last_batch_ms / 1000)

    def stalled(self, *, after_s: float = 60.0) -> str:
        """Why the batcher makes no progress while messages wait ('' when it does): a batch in hand for
        longer than ``after_s`` (storing is blocked, or it keeps failing), or a step that never returns."""
        if self.batcher.dead and not self._stop.is_set():
            return "the batcher thread is not running"
        now = time.monotonic()
        if self._held and now - self._held_since > after_s:
            cause = self.batcher.last_error if self.batcher.failing else "InfluxDB away and the spool full"
            return f"a batch of {len(self._held)} held for {now - self._held_since:.0f} s ({cause})"
        stuck_s = now - self.batcher.last_step_at
        if self.backlog and stuck_s > after_s:
            return f"{self.backlog} message(s) waiting, the batcher stuck in one step for {stuck_s:.0f} s"
        return ""

    def _checkpoint_due(self, *, force: bool = False) -> bool:
        """A checkpoint now: ``force``, or the interval has passed; the interval grows to 20 times what the
        last save took, so a large fleet's saves (0.3 s for 100 000 scales) never take over the batcher."""
        interval = max(self.settings.state_save_interval_s, 20 * self._save_cost_s)
        return force or time.monotonic() - self._last_save >= interval

    def _checkpoint(self, *, force: bool = False, saved: bool = False) -> None:
        """Acknowledge stored messages once the anti-cheat state that has seen them is on disk.

        The engine's per-scale state (CUSUMs, digit windows) moves with every batch. It is saved at most
        every ``state_save_interval_s`` (see :meth:`_checkpoint_due`), and at once (``force``) after a batch
        that leaves none waiting while half the broker's inflight window waits for acknowledgement: in the
        batch's own transaction of the state store (``saved``: already done), or, with
        ``engine_state_path`` set, in that file. Messages are acknowledged only after a save that
        includes them: after a crash the broker redelivers exactly the messages the saved state has not
        seen, so results are the same as without the crash.
        """
        if not saved:
            if not self._checkpoint_due(force=force):
                return
            path = self.settings.engine_state_path
            if path is not None:
                started = time.monotonic()
                replace_durably(path, self.pipeline.engine.save())  # fsync'ed: the acknowledgements wait for it
                self._save_cost_s = time.monotonic() - started
            else:
                self.pipeline.checkpoint()
                self._save_cost_s = self.pipeline.checkpoint_seconds
        self._last_save = time.monotonic()
        for m in self._unacked:
            self._client.ack(m.mid, m.qos)
        self._unacked.clear()

    def _replay_once(self) -> None:
        """Drain the spool into InfluxDB whenever it holds something and InfluxDB answers."""
        if self._stop.wait(1.0) or not self.pipeline.spool.batches:
            return
        if self.pipeline.replay_spool():
            log.info("spool drained into InfluxDB")
