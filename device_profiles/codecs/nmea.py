"""NMEA 0183 from GNSS receivers: sentence framing and checking (pynmea2) and fix assembly. No I/O.

:func:`decode` takes one sentence off a byte buffer and checks its checksum; a sentence without a
checksum, with a wrong one, or that pynmea2 cannot parse raises :class:`FrameError` after consuming it.
Time is linear in the line: pynmea2's sentence pattern backtracks quadratically over white space when
what follows the first ``*`` is not a checksum, so such lines are refused before pynmea2 sees them (with
the reason pynmea2 would give, ``bad_sentence``); the line limit (:data:`MAX_SENTENCE`) bounds the rest.
:class:`FixAssembler` turns RMC (time, date, validity, position, speed, course) and GGA (fix quality,
satellites, HDOP, altitude) into ``gps`` records: one per valid RMC, completed by the GGA of the same
second when it came first (receivers send GGA before RMC in each cycle). Invalid fixes (RMC status V,
GGA quality 0) and talkers the profile does not list are dropped and counted.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from datetime import time
from typing import Any

import pynmea2

from ..errors import FrameError
from .lines import next_line, xor_checksum

MAX_SENTENCE = 100  # NMEA allows 82 characters; some receivers run a little over
KNOT_KMH = 1.852
_CHECKSUM_TAIL_RE = re.compile(r"[0-9A-Fa-f]{2}\s*")  # what pynmea2 accepts after the first "*"


def decode(buf: bytes | bytearray) -> tuple[pynmea2.NMEASentence | None, int]:
    """The first sentence in ``buf``: ``(sentence, consumed)`` or ``(None, 0)`` if incomplete."""
    raw, consumed = next_line(buf, max_len=MAX_SENTENCE)
    if raw is None:
        return None, 0
    start = raw.find(b"$")
    if start < 0:
        raise FrameError("bad_sentence", consumed, repr(raw[:40]))
    try:
        text = raw[start:].decode("ascii")
    except UnicodeDecodeError as exc:
        raise FrameError("not_ascii", consumed, repr(raw[:40])) from exc
    star = text.find("*")
    if star >= 0 and _CHECKSUM_TAIL_RE.fullmatch(text, star + 1) is None:
        raise FrameError("bad_sentence", consumed, text)
    try:
        return pynmea2.parse(text, check=True), consumed
    except pynmea2.ChecksumError as exc:
        raise FrameError("bad_checksum", consumed, text) from exc
    except (pynmea2.ParseError, ValueError, TypeError, AttributeError, LookupError) as exc:
        # LookupError: pynmea2's proprietary sentences index their fields unchecked (``$PUBX*hh``)
        raise FrameError("bad_sentence", consumed, text) from exc


class FixAssembler:
    """Builds ``gps`` records from a receiver's sentences; counts what it drops in ``dropped``."""

    def __init__(self, talkers: Iterable[str] = ("GP", "GN", "GL", "GB", "BD", "GA")) -> None:
        self.talkers = frozenset(talkers)
        self.dropped: Counter[str] = Counter()
        self._gga: pynmea2.NMEASentence | None = None

    def feed(self, sentence: pynmea2.NMEASentence) -> dict[str, Any] | None:
        """A ``gps`` record when ``sentence`` completes a valid fix, else None."""
        kind = getattr(sentence, "sentence_type", "")
        if kind not in ("RMC", "GGA"):
            return None
        if sentence.talker not in self.talkers:
            self.dropped["foreign_talker"] += 1
            return None
        try:
            if kind == "GGA":
                self._gga = sentence if int(sentence.gps_qual or 0) > 0 else None
                if self._gga is None:
                    self.dropped["invalid_fix"] += 1
                return None
            return self._from_rmc(sentence)
        except (ValueError, TypeError, AttributeError):
            self.dropped["bad_field"] += 1
            return None

    def _from_rmc(self, rmc: pynmea2.NMEASentence) -> dict[str, Any] | None:
        if rmc.status != "A" or not rmc.lat or not rmc.lon or rmc.datestamp is None:
            self.dropped["invalid_fix"] += 1
            return None
        stamp = rmc.datetime
        record: dict[str, Any] = {
            "type": "gps",
            "ts": int(stamp.timestamp() * 1000),
            "lat_deg": round(float(rmc.latitude), 7),
            "lon_deg": round(float(rmc.longitude), 7),
        }
        if rmc.spd_over_grnd not in (None, ""):
            record["speed_kmh"] = round(float(rmc.spd_over_grnd) * KNOT_KMH, 3)
        if rmc.true_course not in (None, ""):
            record["course_deg"] = float(rmc.true_course) % 360.0
        gga = self._gga
        if gga is not None and _same_second(gga.timestamp, rmc.timestamp):
            record["fix_quality"] = int(gga.gps_qual)
            if gga.num_sats:
                record["satellites"] = int(gga.num_sats)
            if gga.horizontal_dil:
                record["hdop"] = float(gga.horizontal_dil)
            if gga.altitude is not None:
                record["altitude_m"] = float(gga.altitude)
        return record


def _same_second(a: time | None, b: time | None) -> bool:
    return a is not None and b is not None and a.replace(tzinfo=None) == b.replace(tzinfo=None)


def encode(body: str) -> bytes:
    """``$<body>*hh`` CR LF with the checksum (for simulators)."""
    return f"${body}*{xor_checksum(body.encode('ascii')):02X}\r\n".encode("ascii")
