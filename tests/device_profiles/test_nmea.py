"""NMEA 0183: the real receiver captures in shared/data/nmea, checksums, invalid fixes, talkers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pynmea2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_profiles import FrameError, check_record
from device_profiles.codecs import nmea
from tests.support.codec_harness import drain, never_crashes, three_ways

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "nmea"  # copied from shared/data/nmea (gpsd, BSD-2)


def fixes(data: bytes, talkers=("GP", "GN", "GL", "GB", "BD")) -> tuple[list[dict], nmea.FixAssembler, list[str]]:
    sentences, errors = drain(nmea.decode, bytearray(data))
    asm = nmea.FixAssembler(talkers)
    records = [r for r in (asm.feed(s) for s in sentences) if r is not None]
    return records, asm, errors


@pytest.mark.parametrize(("name", "rmc_count"), [("bu353s4", 25), ("mt3339", 30)])
def test_real_captures_give_every_valid_fix(name: str, rmc_count: int) -> None:
    path = CAPTURES / f"{name}.nmea"
    assert path.exists(), f"missing capture {path}"
    data = path.read_bytes()
    records, asm, errors = fixes(data)
    valid_rmc = [ln for ln in data.decode().splitlines() if ln[3:6] == "RMC" and ln.split(",")[2] == "A"]
    assert len(valid_rmc) == rmc_count == len(records)
    assert errors == [] and not asm.dropped
    for rec, line in zip(records, valid_rmc, strict=True):
        check_record(rec)
        f = line.split(",")
        hhmmss, ddmmyy = f[1], f[9]
        when = datetime(
            2000 + int(ddmmyy[4:]),
            int(ddmmyy[2:4]),
            int(ddmmyy[:2]),
            int(hhmmss[:2]),
            int(hhmmss[2:4]),
            int(hhmmss[4:6]),
            tzinfo=UTC,
        )
        assert rec["ts"] == int(when.timestamp() * 1000)
        lat = (int(f[3][:2]) + float(f[3][2:]) / 60) * (-1 if f[4] == "S" else 1)
        lon = (int(f[5][:3]) + float(f[5][3:]) / 60) * (-1 if f[6] == "W" else 1)
        assert rec["lat_deg"] == pytest.approx(lat, abs=1e-6) and rec["lon_deg"] == pytest.approx(lon, abs=1e-6)
        assert "satellites" in rec and "altitude_m" in rec  # GGA of the same second merged in
    if name == "bu353s4":
        assert records[0]["lat_deg"] == pytest.approx(-37.78478833) and records[0]["fix_quality"] == 1


def test_capture_three_ways() -> None:
    data = (CAPTURES / "mt3339.nmea").read_bytes()

    def as_text(buf: bytearray) -> tuple[str | None, int]:
        sentence, used = nmea.decode(buf)  # pynmea2 sentences compare by identity: compare their text
        return (None if sentence is None else str(sentence)), used

    sentences = three_ways(as_text, data, b"$GPRMC,2026")
    assert len(sentences) == len(data.splitlines())


GOOD_RMC = nmea.encode("GNRMC,120000.00,A,3110.0000,N,12120.0000,E,10.0,90.0,251126,,,A")


def test_bad_checksums_invalid_fixes_and_foreign_talkers_are_dropped_and_counted() -> None:
    bad_sum = GOOD_RMC.replace(b"*", b"*0")[:-3] + b"\r\n"
    void = nmea.encode("GPRMC,120001.00,V,,,,,,,251126,,,N")
    no_fix = nmea.encode("GPGGA,120002.00,,,,,0,00,99.9,,M,,M,,")
    no_sum = b"$GPRMC,120003.00,A,3110.0000,N,12120.0000,E,10.0,90.0,251126,,,A\r\n"
    other_talker = nmea.encode("GARMC,120004.00,A,3110.0000,N,12120.0000,E,10.0,90.0,251126,,,A")
    records, asm, errors = fixes(bad_sum + void + no_fix + no_sum + other_talker + GOOD_RMC, talkers=("GP", "GN"))
    assert errors == ["bad_checksum", "bad_checksum"]
    assert asm.dropped == {"invalid_fix": 2, "foreign_talker": 1}
    assert len(records) == 1 and records[0]["speed_kmh"] == pytest.approx(18.52)


def test_beidou_talkers() -> None:
    for talker in ("BD", "GB"):
        records, _, _ = fixes(nmea.encode(f"{talker}RMC,120000.00,A,3110.0000,N,12120.0000,E,0.0,0.0,251126,,,A"))
        assert len(records) == 1 and records[0]["lat_deg"] == pytest.approx(31 + 10 / 60)


def test_truncated_prefixes_are_incomplete() -> None:
    for cut in range(len(GOOD_RMC)):
        assert nmea.decode(GOOD_RMC[:cut]) == (None, 0)


@given(st.binary(max_size=300))
def test_fuzz(data: bytes) -> None:
    never_crashes(nmea.decode, data)
    sentences, _ = drain(nmea.decode, bytearray(data))
    asm = nmea.FixAssembler()
    for s in sentences:
        asm.feed(s)


def _reason_without_precheck(text: str) -> str:
    """The reason the codec gave before it refused bad checksum tails itself: pynmea2's own verdict."""
    try:
        pynmea2.parse(text, check=True)
    except pynmea2.ChecksumError:
        return "bad_checksum"
    except (pynmea2.ParseError, ValueError, TypeError, AttributeError, LookupError):
        return "bad_sentence"
    return "ok"


@given(st.text(alphabet="$GPRMC,*0aF \t\x1c", max_size=30))
def test_refusing_bad_checksum_tails_early_gives_pynmea2s_verdict(body: str) -> None:
    text = "$" + body.lstrip("$")
    try:
        nmea.decode(text.encode() + b"\r\n")
        got = "ok"
    except FrameError as exc:
        got = exc.reason
    assert got == _reason_without_precheck(text)


@pytest.mark.parametrize("body", ["PUBX", "PASHR", "PSXN", "PTNL"])
def test_proprietary_sentences_pynmea2_cannot_index_are_bad_sentences(body: str) -> None:
    with pytest.raises(FrameError, match="bad_sentence"):
        nmea.decode(nmea.encode(body))
