"""The rapid-test analyzer line format and the GB/T 5009.199 verdict."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_profiles import builtin, check_record
from device_profiles.codecs import rapid_test as rt
from tests.support.codec_harness import drain, never_crashes, three_ways

SPEC = builtin("zj-rt-12").rapid_test


def result(channel: int = 1, a0: float = 0.62, at: float = 0.25, **over) -> dict:
    inhibition, verdict = rt.verdict(a0, at, SPEC)
    rec = {
        "type": "rapid_test",
        "ts": 1_764_000_000_000 + channel,
        "channel": channel,
        "sample_id": f"S-{channel}",
        "sample_name": "韭菜 leek",
        "sample_category": "leafy",
        "source_id": "stall-0012",
        "delta_a0": a0,
        "delta_at": at,
        "inhibition_pct": inhibition,
        "result": verdict,
        "retest": 0,
        "reagent_lot": "L2611",
        "reagent_expiry": "2027-05-01",
        "temperature_c": 25.5,
        "operator": "wang",
    }
    rec.update(over)
    return rec


@pytest.mark.parametrize(
    ("a0", "at", "expected"),
    [
        (0.60, 0.30, (50.0, "positive")),
        (0.60, 0.31, (48.33, "suspect")),
        (0.60, 0.36, (40.0, "suspect")),
        (0.60, 0.37, (38.33, "negative")),
        (0.29, 0.0, (0.0, "invalid")),
        (0.30, 0.30, (0.0, "negative")),
    ],
)
def test_verdict_edges(a0: float, at: float, expected) -> None:
    assert rt.verdict(a0, at, SPEC) == expected


def test_three_ways_and_records_are_valid() -> None:
    records = [result(c, at=0.05 * c) for c in range(1, 13)]
    stream = b"".join(rt.encode(r, SPEC) for r in records)
    got = three_ways(lambda b: rt.decode(b, SPEC), stream, b"$ZJRT,17640")
    assert got == records
    for r in got:
        check_record(r)


def test_bad_lines_are_dropped() -> None:
    good = rt.encode(result(), SPEC)
    bad_sum = good[:-4] + b"00\r\n"
    stream = b"noise\r\n" + bad_sum + good.replace(b"ZJRT", b"XXRT") + good
    frames, errors = drain(lambda b: rt.decode(b, SPEC), bytearray(stream))
    assert frames == [result()]
    assert errors[:2] == ["bad_line", "bad_checksum"] and len(errors) == 3


def test_values_that_would_break_the_line_are_refused() -> None:
    with pytest.raises(ValueError):
        rt.encode(result(sample_name="a,b"), SPEC)


@given(st.binary(max_size=300))
def test_fuzz(data: bytes) -> None:
    never_crashes(lambda b: rt.decode(b, SPEC), data)
