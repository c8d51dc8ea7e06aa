"""The agent loop for one MT-SICS scale: take each transaction into the outbox, then acknowledge it.

The order is what makes the edge lossless: a transaction is acknowledged to the scale (which then forgets
it) only after the outbox has it on disk. A scale that stops answering is logged once when it goes away
and once when it comes back; the loop retries with a capped backoff and never exits on device errors.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from device_profiles import Profile

from .errors import DeviceError, OutboxFull
from .mtsics_driver import BadTransaction, MtSicsScale
from .outbox import Outbox
from .publisher import BrokerConfig, Publisher

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class ScaleAgentConfig:
    """Everything one scale's agent needs."""

    device_id: str
    key: bytes
    profile: Profile
    port_url: str
    outbox_path: Path
    broker: BrokerConfig
    poll_interval_s: float = 0.2
    outbox_quota_bytes: int = 64 * 1024 * 1024


class ScaleAgent:
    """Reads one scale and publishes its records."""

    def __init__(self, config: ScaleAgentConfig) -> None:
        self.config = config
        self.boot = uuid.uuid4().hex
        self.outbox = Outbox(config.outbox_path, quota_bytes=config.outbox_quota_bytes)
        self.scale = MtSicsScale(config.profile, config.port_url)
        self.publisher = Publisher(
            device_id=config.device_id,
            key=config.key,
            boot=self.boot,
            outbox=self.outbox,
            broker=config.broker,
        )
        self.taken = 0
        self.bad_transactions = 0
        self.device_up = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"scale-{config.device_id}", daemon=True)

    def start(self) -> ScaleAgent:
        self.publisher.start()
        self._thread.start()
        return self

    def stop(self, *, drain_s: float = 0.0) -> None:
        """Stop reading, publish what the outbox holds for up to ``drain_s``, close. Safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=5)
        self.scale.close()
        self.publisher.stop(drain_s=drain_s)
        self.outbox.close()

    def _run(self) -> None:
        state_sent = False
        backoff = self.config.poll_interval_s
        while not self._stop.is_set():
            try:
                if not state_sent:
                    self.outbox.put(self.scale.read_state(ts_ms=int(time.time() * 1000)))
                    state_sent = True
                got = self._take_one()
                self._device_is_up()
                backoff = self.config.poll_interval_s
                if not got:
                    self._stop.wait(self.config.poll_interval_s)
            except OutboxFull as exc:
                self.publisher.last_error = str(exc)
                self._stop.wait(1.0)
            except DeviceError as exc:
                self._device_is_down(exc)
                self.scale.close()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _take_one(self) -> bool:
        try:
            record = self.scale.take_transaction()
        except BadTransaction as exc:
            self.bad_transactions += 1
            self.outbox.dead_letter(str(exc), exc.line, at_ms=int(time.time() * 1000))
            log.warning("%s: bad transaction kept in dead letters: %s", self.config.device_id, exc)
            if exc.txn is not None:
                self.scale.ack_transaction(exc.txn)
            return True
        if record is None:
            return False
        txn = int(record["txn"])
        if self.outbox.put(record, source="txn", source_id=txn) is not None:
            self.taken += 1
            self.publisher.wake.set()
        self.scale.ack_transaction(txn)
        return True

    def _device_is_down(self, exc: Exception) -> None:
        if self.device_up:
            log.warning("%s: scale went away: %s", self.config.device_id, exc)
            self.publisher.last_error = str(exc)
            self.device_up = False

    def _device_is_up(self) -> None:
        if not self.device_up:
            log.info("%s: scale is back", self.config.device_id)
            self.device_up = True
