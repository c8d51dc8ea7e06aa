"""The short version of ``benchmarks/codec_fuzz.py``: every codec, a few thousand seeded hostile, random
and mutated inputs, nothing but frames or our FrameError. Timing is left to the benchmark (this suite
runs on busy machines); linearity of the MT-SICS tokeniser is checked in test_mtsics.py."""

from __future__ import annotations

import random

import pytest

from device_profiles.codecs.frame_buffer import FrameBuffer
from tests.support.fuzz_inputs import Target, inputs, run, targets

INPUTS = 3000


@pytest.mark.parametrize("target", targets(), ids=lambda t: t.name)
def test_hostile_random_and_mutated_inputs_give_frames_or_our_error(target: Target) -> None:
    fb: FrameBuffer[object] = FrameBuffer(target.decode)
    frames, failures = 0, []
    for data in inputs(target, random.Random(f"suite-{target.name}"), INPUTS):
        got, exc = run(fb, data)
        frames += got
        if exc is not None:
            failures.append(f"{type(exc).__name__}: {exc} on {data[:80]!r}")
    assert failures == []
    # the inputs reach both sides of the codec, or this test would prove nothing
    assert frames > INPUTS // 20 and sum(fb.errors.values()) > INPUTS // 20
