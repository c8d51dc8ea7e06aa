"""Replaying dead letters, so the running ingest judges them anew: which selected letters can be replayed
(:func:`plan`), and publishing them (:func:`publish`): the exact stored bytes on the letter's own data
topic, MQTT 5 at QoS 1, each one confirmed by its PUBACK's reason code before it is marked replayed.

A PUBACK is not always a delivery. Mosquitto answers a publish its ACL refuses with 0x87 (Not
authorized) and one no session subscribes to with 0x10 (No matching subscribers), and drops both: neither
is a replay, so neither letter is marked. Only a success code other than 0x10 means the broker took the
message for the ingest's session (which keeps it while the ingest is away).

The account is an admin's (``zhijian-admin[-<who>]``), never an ingest worker's: a Zhijian broker names
every session by its account (``use_username_as_clientid``), so connecting as ``zhijian-ingest-1`` would
end the running worker's connection, and a clean start would discard the queue the broker keeps for it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from cloud_ingest.dead_letters import DeadLetterFile, LetterQuery
from device_registry.broker_files import service_role

from .registry_client import CliError

CHUNK = 100  # letters published before waiting for their PUBACKs (and marked in one transaction)
NO_MATCHING_SUBSCRIBERS = 0x10
ANONYMOUS_CLIENT_ID = "zhijian-admin-replay"  # an open broker (tests, a laptop): no account to name it


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the broker said about one published letter: ``ok``, or why not in ``problem``."""

    letter_id: int
    ok: bool
    problem: str = ""


def check_account(username: str | None) -> None:
    """Refuse an ingest worker's account, which would take over that worker's session (see the module)."""
    if username and service_role(username) == "ingest":
        raise CliError(
            f"{username} is an ingest worker's broker account: connecting with it would take over that worker's "
            "session (client id = account) and may discard its queue; replay with an admin account "
            "(--username zhijian-admin-<who>, or ZHIJIAN_ADMIN_MQTT_USERNAME)"
        )


class Replayer:
    """One MQTT 5 connection that publishes letters and waits for each PUBACK."""

    def __init__(
        self, host: str, port: int, *, username: str | None, password: str | None, timeout_s: float = 30.0
    ) -> None:
        check_account(username)
        self.timeout_s = timeout_s
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=username or ANONYMOUS_CLIENT_ID,
            protocol=mqtt.MQTTv5,
        )
        if username:
            self._client.username_pw_set(username, password)
        self._cond = threading.Condition()
        self._acks: dict[int, ReasonCode] = {}
        self._connack: ReasonCode | None = None
        self._gone: str | None = None
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        try:
            self._client.connect(host, port, keepalive=30, clean_start=True)
        except OSError as exc:
            raise CliError(f"cannot reach the broker at {host}:{port}: {exc}") from exc
        self._client.loop_start()
        with self._cond:
            self._cond.wait_for(lambda: self._connack is not None or self._gone is not None, timeout_s)
        connack = self._connack
        if connack is None or connack.is_failure:
            self.close()
            why = connack if connack is not None else self._gone or f"no answer within {timeout_s:g} s"
            raise CliError(f"the broker at {host}:{port} refused the connection as {username or 'anonymous'}: {why}")

    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, reason: ReasonCode, _p: Properties | None) -> None:
        with self._cond:
            self._connack = reason
            self._cond.notify_all()

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, reason: ReasonCode, _p: Properties | None
    ) -> None:
        with self._cond:
            self._gone = f"disconnected: {reason}"
            self._cond.notify_all()

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, reason: ReasonCode, _p: Properties | None) -> None:
        with self._cond:
            self._acks[mid] = reason
            self._cond.notify_all()

    def publish(self, letters: Iterable[tuple[int, str, bytes]]) -> list[Outcome]:
        """Publish (id, topic, payload) each at QoS 1; one outcome per letter once every PUBACK is in
        (or the timeout passed)."""
        sent: list[tuple[int, int]] = []  # (letter id, mid)
        outcomes: list[Outcome] = []
        for letter_id, topic_name, payload in letters:
            info = self._client.publish(topic_name, payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                outcomes.append(Outcome(letter_id, False, f"not sent: {mqtt.error_string(info.rc)}"))
            else:
                sent.append((letter_id, info.mid))
        deadline = time.monotonic() + self.timeout_s
        with self._cond:
            self._cond.wait_for(
                lambda: self._gone is not None or all(mid in self._acks for _, mid in sent),
                max(0.0, deadline - time.monotonic()),
            )
            acks = {mid: self._acks.pop(mid) for _, mid in sent if mid in self._acks}
        for letter_id, mid in sent:
            reason = acks.get(mid)
            if reason is None:
                outcomes.append(Outcome(letter_id, False, self._gone or f"no PUBACK within {self.timeout_s:g} s"))
            elif reason.is_failure:
                outcomes.append(Outcome(letter_id, False, f"refused by the broker: {reason}"))
            elif reason.value == NO_MATCHING_SUBSCRIBERS:
                outcomes.append(
                    Outcome(letter_id, False, "dropped by the broker: no ingest session subscribes to its topic")
                )
            else:
                outcomes.append(Outcome(letter_id, True))
        return sorted(outcomes, key=lambda o: o.letter_id)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def publish(letters: DeadLetterFile, todo: list[int], replayer: Replayer, console: Console) -> list[Outcome]:
    """Publish the letters ``todo`` in chunks, marking each chunk's acknowledged ones as replayed (a progress
    bar on ``console`` for many); the outcomes of those that were not."""
    failures: list[Outcome] = []
    with Progress(
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
        disable=len(todo) < CHUNK,
    ) as progress:
        task = progress.add_task("replay", total=len(todo))
        for start in range(0, len(todo), CHUNK):
            ids = todo[start : start + CHUNK]
            chunk = list(letters.letters(LetterQuery(ids=tuple(ids))))
            outcomes = replayer.publish((letter.id, letter.topic, letter.payload) for letter in chunk)
            letters.mark_replayed([o.letter_id for o in outcomes if o.ok])
            failures += [o for o in outcomes if not o.ok]
            gone = set(ids) - {letter.id for letter in chunk}
            failures += [Outcome(i, False, "evicted meanwhile by its quota") for i in sorted(gone)]
            progress.advance(task, len(ids))
    return failures


def plan(
    letters: DeadLetterFile, query: LetterQuery, ids: list[int], *, again: bool
) -> tuple[list[int], list[str], list[str]]:
    """The ids to publish, a line for each kind of selected letter that will not be (and why), and a line
    for each id asked for that is not there."""
    todo: list[int] = []
    found: set[int] = set()
    not_replayable: Counter[str] = Counter()
    replayed: list[int] = []
    for letter in letters.letters(query):
        found.add(letter.id)
        if not letter.replayable:
            not_replayable[letter.topic] += 1
        elif letter.replayed_at_ms is not None and not again:
            replayed.append(letter.id)
        else:
            todo.append(letter.id)
    missing = [f"no dead letter {i} (or it does not match the filters)" for i in ids if i not in found]
    skipped = [
        f"skipped {n:,} letter(s) on {topic!r}: not a device data topic, so the ingest cannot judge them again "
        "through the broker"
        for topic, n in not_replayable.items()
    ]
    if replayed:
        skipped.append(
            f"skipped {len(replayed):,} letter(s) already replayed ({short_list(replayed)}): --again to replay them"
        )
    return todo, skipped, missing


def short_list(ids: list[int]) -> str:
    return ", ".join(map(str, ids[:20])) + (" …" if len(ids) > 20 else "")
