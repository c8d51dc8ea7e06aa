"""Toledo continuous codec: resynchronisation on STX, checksums, status bits, units."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_profiles import FrameError
from device_profiles.codecs import toledo
from tests.support.codec_harness import drain, never_crashes, three_ways


def frame(**over) -> toledo.ToledoFrame:
    base = dict(
        weight=1275,
        tare=50,
        decimal_code=5,
        increment=5,
        net=True,
        negative=False,
        out_of_range=False,
        motion=False,
        unit="kg",
    )
    base.update(over)
    return toledo.ToledoFrame(**base)


FRAMES = [
    frame(),
    frame(weight=0, motion=True),
    frame(negative=True, weight=5),
    frame(unit="g", decimal_code=2),
    frame(unit="lb", decimal_code=4, weight=250),
]


def test_three_ways_with_and_without_checksum() -> None:
    for with_checksum in (True, False):
        stream = b"".join(toledo.encode(f, with_checksum=with_checksum) for f in FRAMES)
        got = three_ways(
            lambda b, c=with_checksum: toledo.decode(b, with_checksum=c), stream, toledo.encode(frame())[:9]
        )
        assert got == FRAMES


def test_every_truncated_prefix_is_incomplete() -> None:
    raw = toledo.encode(frame())
    for cut in range(1, len(raw)):
        assert toledo.decode(raw[:cut]) == (None, 0)


def test_weights_in_mg() -> None:
    assert frame().weight_mg == 1_275_000 and frame().tare_mg == 50_000  # 1.275 kg, 0.050 kg
    assert frame(negative=True, weight=5).weight_mg == -5_000
    assert frame(unit="g", decimal_code=2, weight=750).weight_mg == 750_000
    assert frame(decimal_code=0, weight=12).weight_mg == 1_200_000_000  # ×100 kg
    assert frame(unit="lb", decimal_code=4, weight=250).weight_mg == round(2.5 * 453_592.37)


def test_checksum_is_twos_complement_of_the_7_bit_sum() -> None:
    raw = toledo.encode(frame())
    assert (sum(raw[:17]) + raw[17]) & 0x7F == 0


def test_garbage_and_bad_frames_are_dropped_and_the_stream_kept() -> None:
    good = toledo.encode(frame())
    corrupted = bytearray(good)
    corrupted[8] ^= 0x01  # a digit changed in transit
    broken = good[:10] + good  # a frame cut short, then a whole one
    stream = b"\xff\x00noise" + good + bytes(corrupted) + broken + good
    frames, errors = drain(toledo.decode, bytearray(stream))
    assert frames == [frame(), frame(), frame()]
    assert "garbage" in errors and "bad_checksum" in errors


def test_bad_status_or_digits_are_refused() -> None:
    raw = bytearray(toledo.encode(frame()))
    raw[5] = ord("x")
    with pytest.raises(FrameError, match="bad_frame"):
        toledo.decode(raw)
    with pytest.raises(ValueError):
        toledo.encode(frame(weight=1_000_000))


@given(st.binary(max_size=200))
def test_fuzz(data: bytes) -> None:
    never_crashes(toledo.decode, data)


@given(
    st.lists(
        st.builds(
            frame,
            weight=st.integers(0, 999_999),
            tare=st.integers(0, 999_999),
            decimal_code=st.integers(0, 7),
            increment=st.sampled_from([1, 2, 5]),
            net=st.booleans(),
            negative=st.booleans(),
            motion=st.booleans(),
            unit=st.sampled_from(["kg", "g", "lb"]),
        ),
        max_size=5,
    ),
    st.binary(max_size=30),
)
def test_fuzz_frames_behind_garbage_are_found(frames, garbage: bytes) -> None:
    stream = b"".join(toledo.encode(f) for f in frames)
    got, _ = drain(toledo.decode, bytearray(garbage.replace(b"\x02", b"") + stream))
    assert got == frames


def test_a_run_that_cannot_start_a_frame_is_one_rejection() -> None:
    good = toledo.encode(frame())
    stream = b"\x02" * 500 + good[:5] + b"\x02\x02" + good
    frames, errors = drain(toledo.decode, stream)
    assert frames == [frame()]
    assert errors == ["bad_frame"]  # not one per STX: a flood of them costs one count, one log line
