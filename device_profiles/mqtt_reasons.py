"""Why an MQTT connection ended, in words, for the logs of the ingest and the edge agent.

paho reports a connection that ended without a DISCONNECT packet from the broker — a broker that stopped
or restarted, one that dropped this client (a revoked account), a broken network — as reason 128,
"Unspecified error", the same reason it would give for a broker's own unspecified DISCONNECT. Which of the
two it was is in paho's disconnect flags (``is_disconnect_packet_from_server``), so the words depend on
both. Measured on Mosquitto 2.0.11: a clean broker shutdown (SIGTERM) sends MQTT 5 clients no DISCONNECT,
it closes the socket (tests/cloud_ingest/test_operator_logs.py).

Duck-typed on the reason (paho's ``ReasonCode`` or its number) so that the contract does not import paho.
"""

from __future__ import annotations

# MQTT 5.0 section 3.14.2.1: what a broker's DISCONNECT may say
_FROM_BROKER = {
    0x00: "the broker ended the connection normally",
    0x80: "the broker ended the connection without saying why",
    0x81: "the broker received a malformed packet from us",
    0x82: "the broker saw a protocol error from us",
    0x83: "the broker refused a packet of ours (implementation-specific)",
    0x87: "not authorised: the broker no longer accepts this account",
    0x89: "the broker is busy",
    0x8B: "the broker is shutting down",
    0x8D: "the broker heard nothing from us within the keep-alive",
    0x8E: "another client connected with this client id and took over the session",
    0x8F: "the broker refused a topic filter of ours",
    0x90: "the broker refused a topic name of ours",
    0x93: "we sent more unacknowledged messages than the broker's receive maximum",
    0x94: "the broker refused a topic alias of ours",
    0x95: "a packet of ours was larger than the broker allows",
    0x96: "we sent messages faster than the broker allows",
    0x97: "a quota on the broker was exceeded",
    0x98: "an administrator disconnected us",
    0x99: "the broker refused a payload's format",
    0x9A: "the broker does not support retained messages",
    0x9B: "the broker does not support that QoS",
    0x9C: "the broker asks us to use another server for now",
    0x9D: "the broker has moved to another server",
    0x9E: "the broker does not support shared subscriptions",
    0x9F: "we connected more often than the broker allows",
    0xA0: "the broker's maximum connect time has passed",
    0xA1: "the broker does not support subscription identifiers",
    0xA2: "the broker does not support wildcard subscriptions",
}
_CLOSED = (
    "the connection was closed without a word from the broker: the broker stopped or restarted, dropped this "
    "client (e.g. its account was revoked), or the network broke"
)


def _code(reason: object) -> int | None:
    value = getattr(reason, "value", reason)
    return value if isinstance(value, int) else None


def disconnect_words(reason: object, *, from_broker: bool) -> str:
    """Why the connection ended, for an operator: ``reason`` is paho's reason code (or its number),
    ``from_broker`` its ``DisconnectFlags.is_disconnect_packet_from_server``."""
    code = _code(reason)
    if from_broker:
        words = _FROM_BROKER.get(code) if code is not None else None
        return words or f"the broker ended the connection: {reason}"
    if code == 0:
        return "disconnected at our request"
    if code == 0x8D:  # paho's own keep-alive check
        return "no answer from the broker within the keep-alive: the network or the broker stalled"
    if code == 0x82:
        return "protocol error on the connection (ours or the broker's)"
    return _CLOSED
