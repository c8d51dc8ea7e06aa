"""Publishing dead letters again, so the running ingest judges them anew: the exact stored bytes on the
letter's own data topic, MQTT 5 at QoS 1, each one confirmed by its PUBACK's reason code.

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
from collections.abc import Iterable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from device_registry.broker_files import service_role

from .registry_client import CliError

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
