"""Errors of the device contract.

Every error this package raises derives from :class:`ContractError`::

    ContractError
    ├── ProfileError        a profile file is missing, unreadable or invalid (names the file and the field)
    ├── FrameError          a peer sent bytes that no codec frame can be made of (the peer is wrong)
    └── EnvelopeError       an MQTT payload breaks the wire contract; ``reason`` is a short stable code
        └── IntegrityError  the integrity tag does not match the bytes and the device's key

"The peer is wrong" errors (FrameError, EnvelopeError) carry a machine-readable ``reason`` so that
callers can count rejections per reason; ProfileError is a configuration mistake of ours.
"""

from __future__ import annotations


class ContractError(Exception):
    """Base class of every error raised by :mod:`device_profiles`."""


class ProfileError(ContractError):
    """A device profile could not be loaded; the message names the file and the offending field."""

    def __init__(self, source: str, field: str, message: str) -> None:
        self.source = source
        self.field = field
        self.message = message
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {message}")


class FrameError(ContractError):
    """Bytes from a device that do not form a valid frame.

    ``consumed`` is how many bytes of the buffer the bad frame occupied: drop them and go on reading,
    so one bad frame never loses the stream behind it.
    """

    def __init__(self, reason: str, consumed: int, detail: str = "") -> None:
        self.reason = reason
        self.consumed = consumed
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class EnvelopeError(ContractError):
    """An MQTT payload that breaks the wire contract. ``reason`` is one of :data:`REJECT_REASONS`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in REJECT_REASONS:
            raise ValueError(f"unknown reject reason {reason!r}")
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class IntegrityError(EnvelopeError):
    """The integrity tag is missing or does not match the payload bytes and the device's key."""


#: Stable reason codes for rejected payloads; ingest counts rejections per reason.
REJECT_REASONS = frozenset(
    {
        "bad_topic",  # not a data topic of our scheme
        "oversized",  # payload larger than the contract allows
        "malformed_json",  # not UTF-8 JSON, or not an object
        "bad_json",  # JSON beyond the contract's limits: nested too deeply, a lone surrogate in a string
        "bad_envelope",  # a required envelope field is missing or of the wrong type, or an unknown member
        "schema_version",  # envelope schema version we do not speak
        "device_mismatch",  # device id in the payload differs from the one in the topic
        "missing_tag",  # no integrity tag at the end of the payload
        "bad_tag",  # integrity tag does not match
        "unknown_device",  # no key known for this device
        "revoked_device",  # the device's credentials were revoked
        "replayed",  # every record lies far below the device's highest sequence number: old traffic again
        "bad_record",  # a record's type, fields, units or ranges are wrong
        "record_not_allowed",  # a record type the sender's device profile does not declare
        "foreign_reference",  # a record about a device outside the sender's market, or about no known device
        "seq_out_of_range",  # seq further ahead of the device's highest than the ingest's bound
        "conflicting_replay",  # a (device, seq) already stored, sent again with other content
        "unprocessable",  # the ingest failed on this message (a bug of ours, isolated); detail names the error
    }
)
