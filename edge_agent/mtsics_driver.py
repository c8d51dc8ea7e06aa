"""Driver for a scale speaking MT-SICS plus its profile's extension commands, over any pyserial URL.

It owns the bytes and the port; parsing is :mod:`device_profiles.codecs.mtsics`. Commands and fields come
from the profile (``mtsics.extensions``), so a vendor with other command names needs a profile, not code.
Requests are strictly one at a time: a command is sent only after the previous reply (or its timeout).
Replies go through one :class:`~device_profiles.codecs.frame_buffer.FrameBuffer`, which keeps each reply
line's own bytes: a bad transaction is kept as a dead letter with exactly the bytes the scale sent.
Everything a scale can answer ends as a record, a :class:`BadTransaction` or another
:class:`~edge_agent.errors.DeviceError`, never as another exception.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from typing import Any

import serial

from device_profiles import EnvelopeError, Profile, check_record
from device_profiles.codecs import mtsics
from device_profiles.codecs.frame_buffer import Frame, FrameBuffer, Rejected
from device_profiles.records import RECORD_TYPES, FieldKind

from .errors import DeviceError, DeviceTimeout

log = logging.getLogger(__name__)
_KINDS: dict[str, FieldKind] = {
    n: s.kind for t in ("scale_state", "sale", "reweigh") for n, s in RECORD_TYPES[t].fields.items()
} | {"ts": "int"}


class BadTransaction(DeviceError):
    """The scale returned a transaction that breaks the contract; ``line`` holds its bytes."""

    def __init__(self, message: str, *, txn: int | None, line: bytes) -> None:
        super().__init__(message)
        self.txn = txn
        self.line = line


class UnreadableReply(DeviceError):
    """Bytes that start as the reply to our command but that no MT-SICS line can be made of."""

    def __init__(self, message: str, raw: bytes) -> None:
        super().__init__(message)
        self.raw = raw


def _answers(raw: bytes, command: str) -> bool:
    """True if ``command`` stands near the start of ``raw``, followed by anything but a letter: the scale
    answering it, badly (garbage before it, tabs or quotes after it)."""
    at = raw.find(command.encode("ascii"), 0, 32)
    end = at + len(command)
    return at >= 0 and (end == len(raw) or not chr(raw[end]).isalnum())


_DIGITS_RE = re.compile(rb"[0-9]{1,18}")


def _lenient_txn(raw: bytes, command: str) -> int | None:
    """The transaction number of a garbled reply ``<command> A <txn> …``: the first number after the
    command within 64 bytes, whatever stands between (blanks, tabs, quotes); None if there is none."""
    at = raw.find(command.encode("ascii"), 0, 32)
    found = _DIGITS_RE.search(raw, at + len(command), at + len(command) + 64) if at >= 0 else None
    return int(found.group()) if found else None


class MtSicsScale:
    """One MT-SICS scale on a serial port (``/dev/ttyUSB0``, ``/dev/pts/3``, ``socket://host:port``)."""

    def __init__(self, profile: Profile, url: str) -> None:
        if profile.mtsics is None or profile.serial is None:
            raise ValueError(f"profile {profile.id} is not an MT-SICS serial scale")
        self.profile = profile
        self.spec = profile.mtsics
        self.url = url
        # fields a transaction reply may leave out (older firmware) or send as "" (not reported this time)
        self._optional = frozenset(
            n for n, f in RECORD_TYPES[self.spec.transaction_record].fields.items() if not f.required
        )
        self._port: serial.Serial | None = None
        # a few lines' worth: replies are short, and stale ones are dropped at each request anyway
        self._frames: FrameBuffer[mtsics.Line] = FrameBuffer(mtsics.decode, max_bytes=4 * mtsics.MAX_LINE)

    @property
    def frame_errors(self) -> Counter[str]:
        """Lines dropped as unreadable, per reason (``not_ascii``, ``bad_syntax``, ``line_too_long`` …)."""
        return self._frames.errors

    # -- port -------------------------------------------------------------------------------------
    def open(self) -> None:
        s = self.profile.serial
        assert s is not None
        try:
            port = serial.serial_for_url(
                self.url,
                baudrate=s.baudrate,
                bytesize=s.bytesize,
                parity=s.parity,
                stopbits=s.stopbits,
                timeout=0.05,
            )
        except (serial.SerialException, OSError) as exc:
            raise DeviceError(f"cannot open {self.url}: {exc}") from exc
        self._port = port
        self._frames.clear()

    def close(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            finally:
                self._port = None

    @property
    def is_open(self) -> bool:
        return self._port is not None

    # -- requests ---------------------------------------------------------------------------------
    def command(self, *tokens: str) -> mtsics.Line:
        """Send one command and return its reply line."""
        return self._request(*tokens).value

    def _request(self, *tokens: str) -> Frame[mtsics.Line]:
        """Send one command and return its reply line with the bytes it came in."""
        if self._port is None:
            self.open()
        port = self._port
        assert port is not None and self.profile.serial is not None
        request = mtsics.encode(*tokens)
        try:
            port.reset_input_buffer()
            self._frames.clear()
            port.write(request)
            deadline = time.monotonic() + self.profile.serial.timeout_s
            while time.monotonic() < deadline:
                for item in self._frames.receive(port.read(max(1, port.in_waiting))):
                    if isinstance(item, Rejected):
                        log.debug("%s: dropped %d bytes: %s", self.url, item.error.consumed, item.error)
                        if _answers(item.raw, tokens[0]):  # our reply, but no line can be made of it
                            raise UnreadableReply(f"{tokens[0]}: {item.error}", item.raw)
                        continue
                    line = item.value
                    if line.command in mtsics.ERROR_REPLIES:
                        raise DeviceError(f"{tokens[0]}: scale answered {line.command}")
                    if line.command == tokens[0]:
                        return item  # lines after it answer nothing we asked: the next request drops them
                    log.debug("%s: stale reply %r to %s", self.url, line.tokens, tokens[0])
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise DeviceError(f"{self.url}: {exc}") from exc
        log.debug("%s: timeout on %s; recent frames %s", self.url, tokens[0], self._frames.dump())
        raise DeviceTimeout(f"{self.url}: no reply to {tokens[0]} within {self.profile.serial.timeout_s} s")

    def _extension(self, role: str, *args: str) -> dict[str, Any]:
        ext = self.spec.extensions[role]
        line = self.command(ext.command, *args)
        if line.status != "A":
            raise DeviceError(f"{ext.command}: status {line.status!r}")
        try:
            raw = mtsics.fields_of(line, ext.reply)
            return {n: mtsics.convert(v, _KINDS[n]) for n, v in raw.items()}
        except ValueError as exc:
            raise DeviceError(f"{ext.command}: {exc}") from exc

    # -- what the agent asks ----------------------------------------------------------------------
    def read_state(self, *, ts_ms: int) -> dict[str, Any]:
        """A ``scale_state`` record: data plate, coefficient, zero, counters, software id."""
        record: dict[str, Any] = {"type": "scale_state", "ts": ts_ms}
        for role in ("metrology", "coefficient", "counters", "software_id", "raw_counts"):
            record.update(self._extension(role))
        record.pop("raw_counts", None)
        record["coefficient"] = float(record["coefficient"])
        try:
            check_record(record)
        except EnvelopeError as exc:  # the scale's answers break the contract: the device is wrong
            raise DeviceError(f"scale_state: {exc}") from exc
        return record

    def take_transaction(self) -> dict[str, Any] | None:
        """The oldest unacknowledged transaction (a ``sale``, or a fair scale's ``reweigh``), or None.

        A reply that breaks the contract, or that no line can be made of (too long, tabs, binary), is a
        :class:`BadTransaction` with the bytes the scale sent and, when it can be read off them, the
        transaction number: the agent uploads it as evidence and acknowledges it, so one bad transaction
        never stops the ones behind it."""
        ext = self.spec.extensions["transaction"]
        try:
            frame = self._request(ext.command)
        except UnreadableReply as exc:
            raise BadTransaction(str(exc), txn=_lenient_txn(exc.raw, ext.command), line=exc.raw) from exc
        line = frame.value
        if ext.empty_status is not None and line.status == ext.empty_status:
            return None
        txn: int | None = None
        try:
            if line.status != "A":
                raise ValueError(f"status {line.status!r}")
            if "txn" in ext.reply and len(line.values) > ext.reply.index("txn"):  # even when the rest is wrong
                token = line.values[ext.reply.index("txn")]
                txn = int(token) if token.isdigit() and len(token) <= 18 else None
            values = mtsics.fields_of(line, ext.reply, self._optional)
            record = {
                "type": self.spec.transaction_record,
                **{n: mtsics.convert(v, _KINDS[n]) for n, v in values.items()},
            }
            check_record(record)
        except (ValueError, EnvelopeError) as exc:
            raise BadTransaction(f"{ext.command}: {exc}", txn=txn, line=frame.raw) from exc
        return record

    def ack_transaction(self, txn: int) -> None:
        """Let the scale forget transaction ``txn`` (it is in the outbox)."""
        got = self._extension("transaction_ack", str(txn))
        if got.get("txn") != txn:
            raise DeviceError(f"scale acknowledged {got.get('txn')} instead of {txn}")
