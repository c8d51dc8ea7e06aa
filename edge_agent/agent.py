"""The edge agent: reads each source into the durable outbox, publishes it, and obeys commands.

Per source, one thread: ``take`` records, store them in the outbox (what one ``take`` returned in one
commit, which the other sources' readers putting at the same time share), then ``confirm`` each to the
device. That order is what makes the edge lossless: a device forgets a record only after it is on disk. A source
that stops answering is logged once when it goes away and once when it comes back; its thread retries
with a capped backoff and never exits on device errors. When the outbox is full the record is not
taken (the device keeps it) and the refusal is counted and shown in the status.

Threads and what each owns (every one is a :class:`device_profiles.loops.Loop`: an unexpected error is
logged once, counted, shown in the status file under ``threads`` and the loop goes on after a backoff):

| thread            | owns                                                              |
|-------------------|-------------------------------------------------------------------|
| ``read-<source>`` | the source's port and driver state; ``up[source]``; writes outbox rows (the outbox locks) |
| ``status-file``   | the status file (written atomically every second)                 |
| ``mqtt-<device>`` | the MQTT connection (paho client network loop), ``connected``     |
| ``publish-<device>`` | reading batches from the outbox, removing them once acknowledged |
| ``command`` (one per command) | the reply to that command; ``open_alerts``, ``alerts_acknowledged`` |

A surprise in a reader closes its source (the next step opens it again), so a driver left in a strange
state starts over; the source then shows ``failing`` in the status until a step succeeds.

Commands (JSON on the device's ``cmd`` topic, answered on ``reply`` with the same ``id``):

| ``cmd``        | ``args``                       | effect                                               |
|----------------|--------------------------------|------------------------------------------------------|
| ``status``     |                                | publish the status now; the reply carries it         |
| ``flush``      | ``timeout_s`` (default 10)     | publish the outbox now; reply with what is left      |
| ``set_interval``| ``seconds`` (1 to 86 400)     | how often polled sensors are read                    |
| ``alert``      | the alert                      | the cloud raised an alert for this base: shown, kept |
| ``ack_alert``  | ``alert_id``, ``by``           | the base acknowledges an alert; the reply carries it |
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from device_profiles.durable import replace_durably
from device_profiles.loops import Loop

from .errors import DeviceError, OutboxFull
from .outbox import Outbox
from .publisher import BrokerConfig, Publisher
from .sources import Source, Taken

log = logging.getLogger(__name__)


class Agent:
    """One device identity (a scale, a base gateway, a vehicle) with its sources."""

    def __init__(
        self,
        *,
        device_id: str,
        key: bytes,
        sources: Sequence[Source],
        outbox_path: Path,
        broker: BrokerConfig,
        outbox_quota_bytes: int = 64 * 1024 * 1024,
        status_path: Path | None = None,
        poll_interval_s: float = 0.2,
        publisher_options: dict[str, Any] | None = None,
    ) -> None:
        self.device_id = device_id
        self.boot = uuid.uuid4().hex
        self.sources = list(sources)
        self.outbox = Outbox(outbox_path, quota_bytes=outbox_quota_bytes)
        self.status_path = status_path
        self.poll_interval_s = poll_interval_s
        self.taken = 0
        self.dead_lettered = 0
        self._eviction_logged = False
        self.up = {s.name: True for s in self.sources}
        self.alerts_acknowledged: list[dict[str, Any]] = []
        self.open_alerts: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._backoff = {s.name: poll_interval_s for s in self.sources}
        self.loops = [
            Loop(f"read-{s.name}", partial(self._read_once, s), stop=self._stop, max_backoff_s=10.0)
            for s in self.sources
        ]
        self.loops.append(Loop("status-file", self._status_once, stop=self._stop))
        self.publisher = Publisher(
            device_id=device_id,
            key=key,
            boot=self.boot,
            outbox=self.outbox,
            broker=broker,
            on_command=self.handle_command,
            status_extra=self._status_extra,
            **(publisher_options or {}),
        )

    def start(self) -> Agent:
        log.info(
            "%s: agent starting, boot %s, %d source(s), %d record(s) waiting in the outbox",
            self.device_id,
            self.boot,
            len(self.sources),
            self.outbox.depth,
        )
        self.publisher.start()
        self._save_status("running")  # at once: `zhijian agent status` right after a start finds it
        for loop in self.loops:
            loop.start()
        return self

    def stop(self, *, drain_s: float = 0.0) -> None:
        """Stop reading, publish what the outbox holds for up to ``drain_s``, close. Safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        for loop in self.loops:
            loop.join(timeout_s=5)
        for s in self.sources:
            s.close()
        self.publisher.stop(drain_s=drain_s)
        self._save_status("stopped")
        self.outbox.close()

    # -- reading ----------------------------------------------------------------------------------
    def _read_once(self, source: Source) -> None:
        """One step of a source's reader: take what it has into the outbox, confirm it, then pace."""
        try:
            got = source.take()
            if got:
                try:  # all of them in one commit, before the device is told of any
                    stored = self.outbox.put_many([(t.record, t.source_id) for t in got], source=source.name)
                except OutboxFull as exc:
                    self._confirm(source, got, exc.stored)  # those before the one that did not fit are on disk
                    raise
                self._confirm(source, got, stored)
            self._dead_letters(source)
            self._source_is_up(source)
            self._backoff[source.name] = self.poll_interval_s
            if got:
                self.publisher.wake.set()
            else:
                self._stop.wait(self.poll_interval_s)
        except OutboxFull as exc:
            self.publisher.last_error = str(exc)
            self._stop.wait(1.0)
        except DeviceError as exc:
            self._source_is_down(source, exc)
            source.close()
            self._stop.wait(self._backoff[source.name])
            self._backoff[source.name] = min(self._backoff[source.name] * 2, 10.0)
        except Exception as exc:  # not the device's fault as far as we know: start the source over
            self.publisher.last_error = f"{source.name}: {type(exc).__name__}: {exc!s:.200}"
            source.close()
            raise

    def _confirm(self, source: Source, got: list[Taken], stored: list[int | None]) -> None:
        """Tell the device the records the outbox holds now (``stored``: the first of ``got``, in order)."""
        for taken, seq in zip(got, stored, strict=False):
            if seq is not None:  # else stored before: read again after a crash before the device was told
                self.taken += 1
            source.confirm(taken)

    def _dead_letters(self, source: Source) -> None:
        while source.dead_letters:
            reason, data = source.dead_letters[0]
            self.outbox.dead_letter(reason, data, at_ms=int(time.time() * 1000))
            source.dead_letters.pop(0)  # only once it is on disk
            self.dead_lettered += 1
            if self.dead_lettered == 1:
                log.warning(
                    "%s: %s: unusable record kept in dead letters: %s (logged once; the status counts them)",
                    self.device_id,
                    source.name,
                    reason,
                )
            if self.outbox.dead_letters_evicted and not self._eviction_logged:
                self._eviction_logged = True
                log.warning("%s: dead letters exceed their quota; the oldest are evicted (logged once)", self.device_id)

    def _source_is_down(self, source: Source, exc: Exception) -> None:
        if self.up[source.name]:
            log.warning("%s: %s went away: %s", self.device_id, source.name, exc)
            self.publisher.last_error = f"{source.name}: {exc}"
            self.up[source.name] = False

    def _source_is_up(self, source: Source) -> None:
        if not self.up[source.name]:
            log.info("%s: %s is back", self.device_id, source.name)
            self.up[source.name] = True

    # -- status and commands ----------------------------------------------------------------------
    def _status_extra(self) -> dict[str, Any]:
        loops = {loop.name: loop for loop in self.loops}
        sources = {}
        for name, up in self.up.items():
            reader = loops[f"read-{name}"]
            sources[name] = "failing" if reader.failing or reader.dead else ("up" if up else "down")
        threads = {loop.name: loop.status() for loop in self.loops}
        dead = {
            "kept_bytes": self.outbox.dead_letter_bytes,
            "written": self.dead_lettered,
            "evicted": self.outbox.dead_letters_evicted,
        }
        frames = {s.name: errors for s in self.sources if (errors := s.frame_errors())}
        return {
            "sources": sources,
            "taken": self.taken,
            "threads": threads,
            "dead_letters": dead,
            "frame_errors": frames,
        }

    def _save_status(self, state: str) -> None:
        if self.status_path is None:
            return
        doc = self.publisher.status(state)
        doc["connected"] = self.publisher.connected.is_set()
        replace_durably(self.status_path, json.dumps(doc, ensure_ascii=False, indent=1))  # whole, and on disk

    def _status_once(self) -> None:
        if not self._stop.wait(1.0):
            self._save_status("running")

    def handle_command(self, command: dict[str, Any]) -> None:
        """Carry out one command from the cloud and publish the reply."""
        cmd, args = command.get("cmd"), command.get("args") or {}
        reply: dict[str, Any] = {"id": command.get("id"), "cmd": cmd, "ok": True}
        try:
            if cmd == "status":
                self.publisher.publish_status()
                reply["status"] = self.publisher.status()
            elif cmd == "flush":
                deadline = time.monotonic() + float(args.get("timeout_s", 10))
                while self.outbox.depth and time.monotonic() < deadline:
                    self.publisher.wake.set()
                    time.sleep(0.05)
                reply["outbox_depth"] = self.outbox.depth
            elif cmd == "set_interval":
                seconds = float(args["seconds"])
                if not 1 <= seconds <= 86_400:
                    raise ValueError("seconds must be between 1 and 86 400")
                for s in self.sources:
                    s.set_interval(seconds)
                reply["seconds"] = seconds
            elif cmd == "alert":
                alert_id = str(command.get("id") or args["id"])
                self.open_alerts[alert_id] = dict(args)
                log.warning("%s: ALERT %s: %s", self.device_id, alert_id, json.dumps(args, ensure_ascii=False))
                reply["received"] = alert_id
            elif cmd == "ack_alert":
                ack = {"alert_id": str(args["alert_id"]), "by": str(args.get("by", "")), "ts": int(time.time() * 1000)}
                self.alerts_acknowledged.append(ack)
                self.open_alerts.pop(str(ack["alert_id"]), {})
                reply["ack_alert"] = ack
            else:
                raise ValueError(f"unknown command {cmd!r}")
        except (KeyError, TypeError, ValueError) as exc:
            reply.update(ok=False, error=str(exc))
        log.info("%s: command %s: %s", self.device_id, cmd, "done" if reply["ok"] else reply.get("error"))
        self.publisher.reply(reply)
